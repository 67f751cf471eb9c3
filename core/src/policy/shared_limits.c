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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/dns.h>
#include <event2/util.h>
#include <openssl/sha.h>

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
 * Returns {result, retry_after_s, requests left, tokens left} (tlab__limit_result codes). The
 * order of the checks and the rounding are rate_limit.c's. */
static const char admit_script[] = PRELUDE
    "local rpm, tpm, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local rl, tl = -1, -1\n"
    "if rpm > 0 then rl = level(KEYS[1], rpm) end\n"
    "if tpm > 0 then tl = level(KEYS[2], tpm) end\n"
    "if tpm > 0 and n > tpm then return {3, 0, math.floor(rl), math.floor(tl)} end\n"
    "local wait, code = 0, 0\n"
    "if rpm > 0 and rl < 1 then wait = (1 - rl) * 60000000 / rpm; code = 1 end\n"
    "if tpm > 0 and n > 0 and tl < n then\n"
    "  local w = (n - tl) * 60000000 / tpm\n"
    "  if code == 0 then code = 2 end\n"
    "  if w > wait then wait = w end\n"
    "end\n"
    "if code ~= 0 then\n"
    "  return {code, math.min(31536000, math.max(1, math.ceil(wait / 1000000))), math.floor(rl), math.floor(tl)}\n"
    "end\n"
    "if rpm > 0 then rl = rl - 1; save(KEYS[1], rl, rpm) end\n"
    "if tpm > 0 then tl = tl - n; save(KEYS[2], tl, tpm) end\n"
    "return {0, 0, math.floor(rl), math.floor(tl)}\n";

/* KEYS: requests bucket, tokens bucket. ARGV: requests/min, tokens/min, requests and tokens to
 * give back (a token charge when negative). A settlement gives back reserved - used tokens; a
 * release undoes an admission nobody waited for (1 request and the whole reservation). */
static const char settle_script[] = PRELUDE
    "local function give(key, pm, d)\n"
    "  if pm <= 0 or d == 0 then return end\n"
    "  local l = level(key, pm) + d\n"
    "  if l > pm then l = pm end\n"
    "  save(key, l, pm)\n"
    "end\n"
    "give(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[3]))\n"
    "give(KEYS[2], tonumber(ARGV[2]), tonumber(ARGV[4]))\n"
    "return 0\n";

enum { ADMIT, SETTLE, N_SCRIPTS };
static const char *const scripts[N_SCRIPTS] = {admit_script, settle_script};

/* One script call: an admission (fn set until decided), or a settlement or release (no fn). The
 * command's words are kept, so a script Redis lost can be sent again whole. */
struct tlab__shared_call {
    tlab__shared_admit_fn fn; /* NULL once decided or cancelled, and for settlements */
    void *arg;
    struct event *timer;      /* admissions: auth.redis_timeout_ms */
    int script;               /* ADMIT or SETTLE */
    int64_t limits[2];        /* requests and tokens per minute */
    int64_t reserve;          /* an admission's reservation, released if nobody waits for it */
    const char *name;         /* the API key's name (in buf: the call may outlive the key set) */
    char *buf;                /* the name, the bucket keys and numbers: argv's strings */
    const char *argv[9];
    size_t argvlen[9];
    int argc;
};

#define MAX_PENDING 10000 /* calls in flight on one connection: past it Redis is too slow to matter */
#define DROP_AFTER_TIMEOUTS 3 /* admissions in a row past the timeout: the connection is dropped */

static struct {
    struct event_base *base;
    struct evdns_base *dns;
    struct evdns_getaddrinfo_request *resolving;
    char host[256];
    int port;
    char *prefix;
    struct timeval timeout;
    redisAsyncContext *ac;      /* NULL while not connected or connecting */
    int connected;              /* ac has connected: admissions go to Redis */
    char sha[N_SCRIPTS][41];    /* the scripts' SHA1, computed here: EVALSHA needs no SCRIPT LOAD */
    struct event *retry;        /* reconnects a second after a failure */
    struct event *connect_timer; /* gives up a connect that hangs (a black-holed address) */
    struct event *drop;         /* frees a stuck connection outside hiredis' callbacks */
    int pending;                /* calls sent and not answered */
    int timeouts_in_a_row;
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

/* Lost the connection (hiredis frees the context itself after the callback that tells us). */
static void lost(void) {
    S.ac = NULL;
    S.connected = 0;
    S.timeouts_in_a_row = 0;
    if (S.connect_timer)
        evtimer_del(S.connect_timer);
    if (S.stopping)
        return;
    set_up(0);
    retry_later();
}

/* Frees the context from a timer, never from inside one of its own callbacks: every call still
 * waiting gets a NULL reply (decided locally), then the disconnect callback (or none, when it
 * never connected) runs. */
static void drop_connection(const char *why) {
    if (!S.ac)
        return;
    LOG_WARN("auth.redis: dropping the connection to %s:%d: %s", S.host, S.port, why);
    redisAsyncContext *ac = S.ac;
    int tcp_up = (ac->c.flags & REDIS_CONNECTED) != 0;
    redisAsyncFree(ac);
    if (!tcp_up) /* no callback ran */
        lost();
}

static void on_drop(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what;
    drop_connection(arg);
}

/* ---- calls: sent, then answered, timed out, or failed with the connection ---- */

static void call_free(tlab__shared_call *c) {
    if (c->timer)
        event_free(c->timer);
    free(c->buf);
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
    /* The call stays allocated: hiredis still holds it, and frees it through on_reply when the
     * late answer (or the connection's end) comes; a late admission is then released. */
    unavailable(arg, "timeout");
    if (++S.timeouts_in_a_row >= DROP_AFTER_TIMEOUTS && S.drop)
        event_active(S.drop, EV_TIMEOUT, 0); /* a hung server or a silent peer: start afresh */
}

static int send_call(tlab__shared_call *c);
static tlab__shared_call *call_new(int script, const char *name, int64_t requests_per_minute, int64_t tokens_per_minute,
                                   int64_t a, int64_t b);

static int64_t reply_int(const redisReply *r, size_t i) {
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER ? (int64_t)r->element[i]->integer : -1;
}

/* An admission Redis granted after its request stopped waiting (timed out, or its client left):
 * the request was decided elsewhere or not at all, so the charge goes back. */
static void release(const tlab__shared_call *c) {
    tlab__shared_call *r = call_new(SETTLE, c->name, c->limits[0], c->limits[1], 1, c->reserve);
    if (r && send_call(r) != 0)
        call_free(r);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    tlab__shared_call *c = privdata;
    redisReply *r = reply;
    S.pending--;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && S.ac && (c->fn || c->script == SETTLE)) {
        /* Redis does not have the script (a restart, SCRIPT FLUSH): send it whole; cached again. */
        c->argv[0] = "EVAL";
        c->argvlen[0] = 4;
        c->argv[1] = scripts[c->script];
        c->argvlen[1] = strlen(scripts[c->script]);
        if (send_call(c) == 0)
            return;
    }
    if (r && r->type == REDIS_REPLY_ERROR)
        LOG_WARN("auth.redis: the %s script failed: %s", c->script == ADMIT ? "admission" : "settlement", r->str);
    if (c->script == ADMIT) {
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 4) {
            S.timeouts_in_a_row = 0;
            tlab__shared_verdict v = {(int)reply_int(r, 0), (int)reply_int(r, 1), reply_int(r, 2), reply_int(r, 3)};
            if (!c->fn && v.result == TLAB_LIMIT_OK && S.ac)
                release(c);
            decide(c, &v);
        } else {
            unavailable(c, r ? "error" : "disconnected");
        }
    }
    call_free(c);
}

static int send_call(tlab__shared_call *c) {
    if (!S.ac || redisAsyncCommandArgv(S.ac, on_reply, c, c->argc, c->argv, c->argvlen) != REDIS_OK)
        return -1;
    S.pending++;
    return 0;
}

/* The bucket keys: <prefix>{<name>}:requests:<per minute>. A changed limit starts afresh; the
 * braces (a hash tag) keep a key's two buckets in one slot of a Redis Cluster. */
static int bucket_key(char *out, size_t len, const char *name, const char *what, int64_t per_minute) {
    int n = snprintf(out, len, "%s{%s}:%s:%lld", S.prefix, name, what, (long long)per_minute);
    return n > 0 && (size_t)n < len ? n : -1;
}

/* A call of `script` on key `name`'s two buckets with ARGV limits, then a and b (an admission:
 * the reservation alone; a settlement: the requests and tokens to give back). */
static tlab__shared_call *call_new(int script, const char *name, int64_t requests_per_minute, int64_t tokens_per_minute,
                                   int64_t a, int64_t b) {
    tlab__shared_call *c = calloc(1, sizeof *c);
    size_t name_len = strlen(name), cap = name_len + 1 + 2 * (strlen(S.prefix) + name_len + 48) + 4 * 24;
    if (!c || !(c->buf = malloc(cap))) {
        free(c);
        return NULL;
    }
    char *p = c->buf, *end = c->buf + cap;
    c->name = memcpy(p, name, name_len + 1), p += name_len + 1;
    c->script = script;
    c->limits[0] = requests_per_minute;
    c->limits[1] = tokens_per_minute;
    c->argv[0] = "EVALSHA";
    c->argv[1] = S.sha[script];
    c->argv[2] = "2";
    int i = 3;
    c->argv[i++] = p, p += bucket_key(p, (size_t)(end - p), name, "requests", requests_per_minute) + 1;
    c->argv[i++] = p, p += bucket_key(p, (size_t)(end - p), name, "tokens", tokens_per_minute) + 1;
    const int64_t nums[4] = {requests_per_minute, tokens_per_minute, a, b};
    for (int k = 0; k < (script == ADMIT ? 3 : 4); k++)
        c->argv[i++] = p, p += snprintf(p, (size_t)(end - p), "%lld", (long long)nums[k]) + 1;
    c->argc = i;
    for (int k = 0; k < i; k++)
        c->argvlen[k] = strlen(c->argv[k]);
    return c;
}

tlab__shared_call *tlab__shared_limits_admit(const char *name, int64_t requests_per_minute, int64_t tokens_per_minute,
                                             int64_t reserve, tlab__shared_admit_fn fn, void *arg) {
    if (!S.connected) {
        if (S.base)
            fallback("down");
        return NULL;
    }
    if (S.pending >= MAX_PENDING) {
        fallback("backlog");
        return NULL;
    }
    tlab__shared_call *c = call_new(ADMIT, name, requests_per_minute, tokens_per_minute, reserve, 0);
    if (!c || !(c->timer = evtimer_new(S.base, on_timeout, c))) {
        if (c)
            call_free(c);
        fallback("memory");
        return NULL;
    }
    c->reserve = reserve;
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
    c->fn = NULL; /* its answer, when it comes, is released if Redis admitted it */
    evtimer_del(c->timer);
}

void tlab__shared_limits_settle(const char *name, int64_t requests_per_minute, int64_t tokens_per_minute, int64_t reserved,
                                int64_t used) {
    if (!S.connected || !tokens_per_minute || reserved == used)
        return; /* no connection: the refund is lost and the bucket refills on its own */
    tlab__shared_call *c = call_new(SETTLE, name, requests_per_minute, tokens_per_minute, 0, reserved - used);
    if (c && send_call(c) != 0)
        call_free(c);
    else if (!c)
        LOG_WARN("auth.redis: out of memory settling a reservation of key %s", name);
}

/* ---- the connection ---- */

/* Redis answered the first PING: the connection is up. A stopped or overloaded server accepts
 * TCP connections in its backlog and answers nothing, so the connect alone proves nothing. */
static void on_pong(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac, (void)privdata;
    redisReply *r = reply;
    if (!r || S.connected)
        return;
    if (r->type == REDIS_REPLY_ERROR) { /* -LOADING, -NOAUTH...: the connect timer retries */
        LOG_WARN("auth.redis: %s:%d answers PING with %s", S.host, S.port, r->str);
        return;
    }
    evtimer_del(S.connect_timer);
    S.connected = 1;
    S.timeouts_in_a_row = 0;
    set_up(1);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    if (status != REDIS_OK) {
        evtimer_del(S.connect_timer);
        if (S.up_logged != 0)
            LOG_WARN("auth.redis: cannot connect to %s:%d: %s", S.host, S.port, ac->errstr);
        lost(); /* hiredis frees the context after this returns */
        return;
    }
    /* A peer that vanishes without a FIN (a node gone) is noticed by TCP keepalive. */
    redisEnableKeepAlive((redisContext *)&ac->c);
    redisAsyncCommand(S.ac, on_pong, NULL, "PING"); /* the connect timer runs until it answers */
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    if (status != REDIS_OK && !S.stopping)
        LOG_WARN("auth.redis: connection to %s:%d lost: %s", S.host, S.port, ac->errstr);
    lost();
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    if (S.ac && !S.connected)
        drop_connection("no answer to PING within 2 s of connecting");
}

static void connect_addr(const char *ip) {
    static const struct timeval connect_timeout = {2, 0};
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
    S.connected = 0;
    S.pending = 0;
    redisLibeventAttach(ac, S.base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    evtimer_add(S.connect_timer, &connect_timeout);
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
    if (!(S.prefix = strdup(prefix)) || !(S.retry = evtimer_new(base, on_retry, NULL)) ||
        !(S.connect_timer = evtimer_new(base, on_connect_timeout, NULL)) ||
        !(S.drop = event_new(base, -1, 0, on_drop, "several admissions in a row timed out"))) {
        tlab__shared_limits_stop();
        return snprintf(err, errlen, "auth.redis: out of memory"), -1;
    }
    for (int i = 0; i < N_SCRIPTS; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)scripts[i], strlen(scripts[i]), md);
        for (int k = 0; k < SHA_DIGEST_LENGTH; k++)
            snprintf(S.sha[i] + 2 * k, 3, "%02x", md[k]);
    }
    S.base = base;
    S.stopping = 0;
    S.timeout.tv_sec = timeout_ms / 1000;
    S.timeout.tv_usec = (timeout_ms % 1000) * 1000;
    tlab__metric_register(TLAB_METRIC_COUNTER, FALLBACKS, FALLBACKS_HELP, NULL, 0);
    tlab_metric *m = tlab__metric_register(TLAB_METRIC_GAUGE, UP, UP_HELP, NULL, 0);
    if (m) /* 0 until connected; the first line logged is the first connect or its failure */
        tlab__metric_set(m, NULL, 0);
    connect_now();
    return 0;
}

void tlab__shared_limits_stop(void) {
    S.stopping = 1;
    if (S.resolving)
        evdns_getaddrinfo_cancel(S.resolving); /* calls on_resolved with EVUTIL_EAI_CANCEL */
    S.resolving = NULL;
    if (S.ac) {
        redisAsyncContext *ac = S.ac;
        S.ac = NULL;
        S.connected = 0;
        redisAsyncFree(ac); /* pending calls get a NULL reply: their requests decide locally */
    }
    if (S.dns)
        evdns_base_free(S.dns, 1);
    if (S.retry)
        event_free(S.retry);
    if (S.connect_timer)
        event_free(S.connect_timer);
    if (S.drop)
        event_free(S.drop);
    free(S.prefix);
    memset(&S, 0, sizeof S);
    S.up_logged = -1;
}

int tlab__shared_limits_enabled(void) {
    return S.base != NULL;
}
