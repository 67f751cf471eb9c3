/*
 * shared_limits.c - per-key buckets in Redis (see shared_limits.h).
 *
 * One connection (hiredis' async API on the loop); each admission is one EVALSHA of a script
 * that refills, checks and charges both buckets atomically. The round trip on loopback is about
 * 0.1 ms and, being a wait on the loop rather than work, adds no gateway CPU beyond one small
 * write and read (docs/kubernetes.md). A script Redis lost (a restart) is sent again whole.
 */
#include "policy/shared_limits.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/util.h>

#include <async.h>
#include <hiredis.h>
#include <adapters/libevent.h>

#include "base/hostport.h"
#include "base/metrics_registry.h"
#include "common/log.h"

/* The bucket as rate_limit.c keeps it, in Redis' numbers (doubles: exact to 2^53, far above a
 * minute's worth of any limit): fields l (level, tokens; below 0 in debt) and t (the refill's
 * time, microseconds of Redis' clock). A missing bucket is full. It expires once it would be full
 * again, plus a second, so idle keys cost Redis nothing. */
#define PRELUDE                                                                                                                    \
    "local t = redis.call('TIME')\n"                                                                                               \
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                                                      \
    "local function level(key, pm)\n"                                                                                              \
    "  local v = redis.call('HMGET', key, 'l', 't')\n"                                                                             \
    "  local l, last = tonumber(v[1]), tonumber(v[2])\n"                                                                           \
    "  if not l then return pm end\n"                                                                                              \
    "  if now > last then l = l + (now - last) * pm / 60000000 end\n"                                                              \
    "  if l > pm then l = pm end\n"                                                                                                \
    "  return l\n"                                                                                                                 \
    "end\n"                                                                                                                        \
    "local function save(key, l, pm)\n"                                                                                            \
    "  redis.call('HSET', key, 'l', string.format('%.17g', l), 't', now)\n"                                                        \
    "  redis.call('PEXPIRE', key, math.ceil((pm - l) * 60000 / pm) + 1000)\n"                                                      \
    "end\n"

/* KEYS: requests bucket, tokens bucket. ARGV: requests/min, tokens/min (0 = none), reserve.
 * Returns {result, retry_after_s, requests left, tokens left} (tlab__limit_result codes). */
static const char admit_script[] = PRELUDE
    "local rpm, tpm, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "if tpm > 0 and n > tpm then return {3, 0, -1, -1} end\n"
    "local rl, tl = -1, -1\n"
    "if rpm > 0 then rl = level(KEYS[1], rpm) end\n"
    "if tpm > 0 then tl = level(KEYS[2], tpm) end\n"
    "local wait, code = 0, 0\n"
    "if rpm > 0 and rl < 1 then wait = (1 - rl) * 60000000 / rpm; code = 1 end\n"
    "if tpm > 0 and tl < n then\n"
    "  local w = (n - tl) * 60000000 / tpm\n"
    "  if code == 0 then code = 2 end\n"
    "  if w > wait then wait = w end\n"
    "end\n"
    "if code ~= 0 then return {code, math.max(1, math.ceil(wait / 1000000)), math.floor(rl), math.floor(tl)} end\n"
    "if rpm > 0 then rl = rl - 1; save(KEYS[1], rl, rpm) end\n"
    "if tpm > 0 then tl = tl - n; save(KEYS[2], tl, tpm) end\n"
    "return {0, 0, math.floor(rl), math.floor(tl)}\n";

/* KEYS: tokens bucket. ARGV: tokens/min, reserved - used (a refund, or a charge when negative). */
static const char settle_script[] = PRELUDE
    "local tpm, d = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "local l = level(KEYS[1], tpm) + d\n"
    "if l > tpm then l = tpm end\n"
    "save(KEYS[1], l, tpm)\n"
    "return 0\n";

enum { ADMIT, SETTLE, N_SCRIPTS };
static const char *const scripts[N_SCRIPTS] = {admit_script, settle_script};

struct tlab__shared_call {
    tlab__shared_admit_fn fn; /* NULL once decided or cancelled */
    void *arg;
    struct event *timer;
    char *argv_buf;           /* the command, kept to send it again whole on NOSCRIPT */
    int argc;
    const char *argv[8];
    size_t argvlen[8];
};

static struct {
    struct event_base *base;
    struct evdns_base *dns;
    struct evdns_getaddrinfo_request *resolving;
    char host[256];
    int port;
    char *prefix;
    struct timeval timeout;
    redisAsyncContext *ac;      /* NULL while not connected */
    int loaded;                 /* scripts' SHAs known: admissions go to Redis */
    char sha[N_SCRIPTS][41];
    struct event *retry;        /* reconnects a second after a failure */
    int up_logged;              /* last state logged: 1 up, 0 down, -1 never */
    int stopping;
} S = {.up_logged = -1};

#define UP "gateway_shared_limit_up"
#define UP_HELP "1 while the per-key rate limits are shared through Redis (auth.redis), 0 while each replica decides alone"
#define FALLBACKS "gateway_shared_limit_fallbacks_total"
#define FALLBACKS_HELP "Admissions decided by the replica's own bucket because Redis did not answer (auth.redis), by reason"

static void set_up(int up) {
    tlab_metric *m = tlab__metric_register(TLAB_METRIC_GAUGE, UP, UP_HELP, NULL, 0);
    if (m)
        tlab__metric_set(m, NULL, up);
    if (up != S.up_logged) {
        if (up)
            LOG_INFO("auth.redis: per-key rate limits shared through Redis at %s:%d", S.host, S.port);
        else
            LOG_WARN("auth.redis: Redis at %s:%d unavailable: each replica enforces the per-key limits alone until it is back",
                     S.host, S.port);
        S.up_logged = up;
    }
}

static void fallback(const char *reason) {
    tlab_metric *m = tlab__metric_register(TLAB_METRIC_COUNTER, FALLBACKS, FALLBACKS_HELP, NULL, 0);
    char labels[48];
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    if (m)
        tlab__metric_add(m, labels, 1);
}

static void connect_now(void);

static void on_retry(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    connect_now();
}

static void retry_later(void) {
    static const struct timeval second = {1, 0};
    if (!S.stopping && S.retry)
        evtimer_add(S.retry, &second);
}

/* ---- one admission's life: sent, then answered, timed out, or failed with the connection ---- */

static void call_free(tlab__shared_call *c) {
    if (c->timer)
        event_free(c->timer);
    free(c->argv_buf);
    free(c);
}

static void decide(tlab__shared_call *c, const tlab__shared_verdict *v) {
    tlab__shared_admit_fn fn = c->fn;
    c->fn = NULL;
    if (c->timer)
        evtimer_del(c->timer);
    if (fn)
        fn(c->arg, v);
}

static void unavailable(tlab__shared_call *c, const char *reason) {
    static const tlab__shared_verdict none = {.result = TLAB_SHARED_UNAVAILABLE};
    if (c->fn)
        fallback(reason);
    decide(c, &none);
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    /* The call stays allocated: hiredis still holds it, and frees it through on_admit_reply
     * when the late answer (or the connection's end) comes. */
    unavailable(arg, "timeout");
}

static int send_call(tlab__shared_call *c);

static int64_t reply_int(const redisReply *r, size_t i) {
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER ? (int64_t)r->element[i]->integer : -1;
}

static void on_admit_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    tlab__shared_call *c = privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && c->fn && S.ac) {
        /* Redis restarted (or SCRIPT FLUSH): send the script itself; it is cached again. */
        c->argv[0] = "EVAL";
        c->argvlen[0] = 4;
        c->argv[1] = scripts[ADMIT];
        c->argvlen[1] = strlen(scripts[ADMIT]);
        if (send_call(c) == 0)
            return;
    }
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
        if (r && r->type == REDIS_REPLY_ERROR && c->fn)
            LOG_WARN("auth.redis: the admission script failed: %s", r->str);
        unavailable(c, r ? "error" : "disconnected");
    } else {
        tlab__shared_verdict v = {(int)reply_int(r, 0), (int)reply_int(r, 1), reply_int(r, 2), reply_int(r, 3)};
        decide(c, &v);
    }
    call_free(c);
}

static int send_call(tlab__shared_call *c) {
    return redisAsyncCommandArgv(S.ac, on_admit_reply, c, c->argc, c->argv, c->argvlen) == REDIS_OK ? 0 : -1;
}

/* The bucket keys: <prefix><name>:requests:<per minute>, so a changed limit starts afresh. */
static int bucket_key(char *out, size_t len, const char *name, const char *what, int64_t per_minute) {
    int n = snprintf(out, len, "%s%s:%s:%lld", S.prefix, name, what, (long long)per_minute);
    return n > 0 && (size_t)n < len ? n : -1;
}

tlab__shared_call *tlab__shared_limits_admit(const char *name, int64_t requests_per_minute, int64_t tokens_per_minute,
                                             int64_t reserve, tlab__shared_admit_fn fn, void *arg) {
    if (!S.ac || !S.loaded) {
        if (S.base)
            fallback("down");
        return NULL;
    }
    tlab__shared_call *c = calloc(1, sizeof *c);
    size_t cap = 2 * (strlen(S.prefix) + strlen(name) + 40) + 3 * 24;
    if (!c || !(c->argv_buf = malloc(cap)) || !(c->timer = evtimer_new(S.base, on_timeout, c))) {
        if (c)
            free(c->argv_buf);
        free(c);
        fallback("memory");
        return NULL;
    }
    char *p = c->argv_buf, *end = c->argv_buf + cap;
    c->argv[0] = "EVALSHA";
    c->argv[1] = S.sha[ADMIT];
    c->argv[2] = "2";
    int i = 3, n;
    c->argv[i] = p, n = bucket_key(p, (size_t)(end - p), name, "requests", requests_per_minute), p += n + 1, i++;
    c->argv[i] = p, n = bucket_key(p, (size_t)(end - p), name, "tokens", tokens_per_minute), p += n + 1, i++;
    c->argv[i] = p, p += snprintf(p, (size_t)(end - p), "%lld", (long long)requests_per_minute) + 1, i++;
    c->argv[i] = p, p += snprintf(p, (size_t)(end - p), "%lld", (long long)tokens_per_minute) + 1, i++;
    c->argv[i] = p, p += snprintf(p, (size_t)(end - p), "%lld", (long long)reserve) + 1, i++;
    c->argc = i;
    for (int k = 0; k < i; k++)
        c->argvlen[k] = strlen(c->argv[k]);
    c->fn = fn;
    c->arg = arg;
    if (send_call(c) != 0) {
        call_free(c);
        fallback("error");
        return NULL;
    }
    evtimer_add(c->timer, &S.timeout);
    return c;
}

void tlab__shared_limits_cancel(tlab__shared_call *c) {
    if (!c)
        return;
    c->fn = NULL;
    evtimer_del(c->timer);
}

static void on_settle_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac, (void)privdata;
    redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR)
        LOG_WARN("auth.redis: settling a reservation failed: %s", r->str);
}

void tlab__shared_limits_settle(const char *name, int64_t tokens_per_minute, int64_t reserved, int64_t used) {
    if (!S.ac || !tokens_per_minute || reserved == used)
        return; /* no connection: the refund is lost and the bucket refills on its own */
    char key[512], pm[24], d[24];
    if (bucket_key(key, sizeof key, name, "tokens", tokens_per_minute) < 0)
        return;
    snprintf(pm, sizeof pm, "%lld", (long long)tokens_per_minute);
    snprintf(d, sizeof d, "%lld", (long long)(reserved - used));
    /* EVAL, not EVALSHA: a settlement has no caller to retry it, and it is one per request. */
    const char *argv[] = {"EVAL", scripts[SETTLE], "1", key, pm, d};
    size_t len[] = {4, strlen(scripts[SETTLE]), 1, strlen(key), strlen(pm), strlen(d)};
    redisAsyncCommandArgv(S.ac, on_settle_reply, NULL, 6, argv, len);
}

/* ---- the connection ---- */

static void on_loaded(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    redisReply *r = reply;
    size_t which = (size_t)(uintptr_t)privdata;
    if (!r || r->type != REDIS_REPLY_STRING || r->len != 40) {
        if (r)
            LOG_WARN("auth.redis: SCRIPT LOAD failed: %s", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return;
    }
    memcpy(S.sha[which], r->str, 40);
    S.sha[which][40] = '\0';
    if (which == N_SCRIPTS - 1) {
        S.loaded = 1;
        set_up(1);
    }
}

static void on_connect(const redisAsyncContext *ac, int status) {
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns */
        if (S.up_logged != 0)
            LOG_WARN("auth.redis: cannot connect to %s:%d: %s", S.host, S.port, ac->errstr);
        S.ac = NULL;
        S.loaded = 0;
        set_up(0);
        retry_later();
        return;
    }
    for (size_t i = 0; i < N_SCRIPTS; i++)
        redisAsyncCommand(S.ac, on_loaded, (void *)(uintptr_t)i, "SCRIPT LOAD %s", scripts[i]);
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    (void)ac;
    S.ac = NULL;
    S.loaded = 0;
    if (S.stopping)
        return;
    if (status != REDIS_OK)
        LOG_WARN("auth.redis: connection to %s:%d lost: %s", S.host, S.port, ac->errstr);
    set_up(0);
    retry_later();
}

static void connect_addr(const char *ip) {
    redisAsyncContext *ac = redisAsyncConnect(ip, S.port);
    if (!ac || ac->err) {
        if (S.up_logged != 0)
            LOG_WARN("auth.redis: cannot connect to %s:%d: %s", S.host, S.port, ac ? ac->errstr : "out of memory");
        if (ac)
            redisAsyncFree(ac);
        set_up(0);
        retry_later();
        return;
    }
    S.ac = ac;
    redisLibeventAttach(ac, S.base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg) {
    (void)arg;
    S.resolving = NULL;
    if (result == EVUTIL_EAI_CANCEL)
        return;
    char ip[INET6_ADDRSTRLEN] = "";
    if (result == 0 && res) {
        const void *a = res->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                                                   : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        inet_ntop(res->ai_family, a, ip, sizeof ip);
    }
    if (res)
        evutil_freeaddrinfo(res);
    if (!ip[0]) {
        if (S.up_logged != 0)
            LOG_WARN("auth.redis: cannot resolve %s: %s", S.host, evutil_gai_strerror(result));
        set_up(0);
        retry_later();
        return;
    }
    connect_addr(ip);
}

static void connect_now(void) {
    if (S.stopping || S.ac || S.resolving)
        return;
    struct in6_addr a6;
    struct in_addr a4;
    if (inet_pton(AF_INET, S.host, &a4) == 1 || inet_pton(AF_INET6, S.host, &a6) == 1)
        return connect_addr(S.host);
    /* A name (a Kubernetes Service): resolved on the loop; hiredis' own getaddrinfo would block it. */
    if (!S.dns && !(S.dns = evdns_base_new(S.base, EVDNS_BASE_INITIALIZE_NAMESERVERS | EVDNS_BASE_DISABLE_WHEN_INACTIVE))) {
        LOG_WARN("auth.redis: no DNS resolver for %s (/etc/resolv.conf)", S.host);
        retry_later();
        return;
    }
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    S.resolving = evdns_getaddrinfo(S.dns, S.host, NULL, &hints, on_resolved, NULL);
}

int tlab__shared_limits_start(struct event_base *base, const char *addr, const char *prefix, long timeout_ms, char *err,
                              size_t errlen) {
    char e[300];
    if (tlab__hostport_parse(addr, 6379, S.host, sizeof S.host, &S.port, e, sizeof e) != 0)
        return snprintf(err, errlen, "auth.redis: %s", e), -1;
    if (!(S.prefix = strdup(prefix)) || !(S.retry = evtimer_new(base, on_retry, NULL))) {
        free(S.prefix);
        S.prefix = NULL;
        return snprintf(err, errlen, "auth.redis: out of memory"), -1;
    }
    S.base = base;
    S.stopping = 0;
    S.timeout.tv_sec = timeout_ms / 1000;
    S.timeout.tv_usec = (timeout_ms % 1000) * 1000;
    tlab__metric_register(TLAB_METRIC_COUNTER, FALLBACKS, FALLBACKS_HELP, NULL, 0);
    tlab_metric *m = tlab__metric_register(TLAB_METRIC_GAUGE, UP, UP_HELP, NULL, 0);
    if (m)
        tlab__metric_set(m, NULL, 0);
    connect_now();
    return 0;
}

void tlab__shared_limits_stop(void) {
    if (!S.base)
        return;
    S.stopping = 1;
    if (S.resolving)
        evdns_getaddrinfo_cancel(S.resolving); /* calls on_resolved with EVUTIL_EAI_CANCEL */
    S.resolving = NULL;
    if (S.ac) {
        redisAsyncContext *ac = S.ac;
        S.ac = NULL;
        redisAsyncFree(ac); /* pending calls get a NULL reply: their requests decide locally */
    }
    if (S.dns)
        evdns_base_free(S.dns, 1);
    if (S.retry)
        event_free(S.retry);
    free(S.prefix);
    memset(&S, 0, sizeof S);
    S.up_logged = -1;
}

int tlab__shared_limits_enabled(void) {
    return S.base != NULL;
}

int tlab__shared_limits_up(void) {
    return S.ac && S.loaded;
}
