/*
 * auth.c - API keys and per-key limits on the request path (see auth.h). Keys are looked up by
 * their SHA-256 in constant time (auth_keys.c); the limits are token buckets (rate_limit.c)
 * evaluated on the loop, so nothing here blocks or needs a thread.
 *
 * The keys live in a key set: one generation of the keys file with its buckets. A reload
 * (SIGHUP) builds a new set and swaps it in only if the file loads; buckets of keys that keep
 * their name and limits carry over. A request holds a reference to the set it was admitted
 * under, and settles against the bucket of the same name in the current set.
 */
#include "policy/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "config/auth_keys.h"
#include "base/clock.h"
#include "common/log.h"
#include "base/metrics_registry.h"
#include "policy/rate_limit.h"
#include "policy/shared_limits.h"
#include "policy/usage_meter.h"

typedef struct tlab__access tlab__access;

typedef struct keyset {
    tlab__keyring *kr;
    tlab__limiter *limiters; /* one per key, same order */
    unsigned refs;          /* 1 while current, plus one per request holding one of its keys */
} keyset;

struct tlab__access {
    keyset *set;
    long key;
    int64_t reserved;        /* tokens the request reserves (reserve_for), taken from the bucket once admitted */
    int64_t prompt_estimate; /* the prompt's share of `reserved` */
    int admitted;
    int metering; /* admitted: the response is read for usage (meter initialised) */
    int shared;   /* admitted by Redis' buckets (auth.redis): settled there */
    tlab__shared_call *call;       /* Redis' answer awaited; NULL otherwise */
    tlab__auth_admitted_fn then;   /* runs once Redis admits the request */
    tlab__usage_meter meter;
};

static keyset *current; /* NULL: auth off */
static char *keys_path;
static long default_max_tokens;

/* Failed attempts can come in floods: one log line per second at most, with a count. */
static uint64_t last_fail_log_us;
static unsigned long fails_unlogged;

static void count(const char *family, const char *help, const char *labels, double n) {
    tlab_metric *m = tlab__metric_register(TLAB_METRIC_COUNTER, family, help, NULL, 0);
    if (m)
        tlab__metric_add(m, labels, n);
}

#define AUTH_FAILURES "gateway_auth_failures_total"
#define AUTH_FAILURES_HELP "Requests refused for a missing, unknown or insufficient API key, by reason"
#define RATE_LIMITED "gateway_rate_limited_total"
#define RATE_LIMITED_HELP "Requests refused by a key's rate limit, by key name and limit (requests, tokens, too_large)"
#define KEY_TOKENS "gateway_key_tokens_total"
#define KEY_TOKENS_HELP "Tokens charged to each API key after settlement (prompt + completion)"
#define RELOADS "gateway_auth_reloads_total"
#define RELOADS_HELP "Reloads of auth.keys_file (SIGHUP), by result: ok, or error (the old keys stay)"

static void keyset_unref(keyset *ks) {
    if (ks && --ks->refs == 0) {
        tlab__keyring_free(ks->kr);
        free(ks->limiters);
        free(ks);
    }
}

/* A set around `kr` (taken). Buckets of keys found in `prev` with the same name and limits keep
 * their level, so a reload is no way to reset a limit. NULL on allocation failure (kr freed). */
static keyset *keyset_new(tlab__keyring *kr, const keyset *prev) {
    keyset *ks = calloc(1, sizeof *ks);
    if (!ks || !(ks->limiters = calloc(kr->n, sizeof *ks->limiters))) {
        free(ks);
        tlab__keyring_free(kr);
        return NULL;
    }
    ks->kr = kr;
    ks->refs = 1;
    uint64_t now = tlab__now_us();
    for (size_t i = 0; i < kr->n; i++) {
        const tlab__api_key *k = &kr->keys[i];
        tlab__limiter_init(&ks->limiters[i], k->requests_per_minute, k->tokens_per_minute, now);
        for (size_t j = 0; prev && j < prev->kr->n; j++) {
            const tlab__api_key *o = &prev->kr->keys[j];
            if (strcmp(o->name, k->name) == 0 && o->requests_per_minute == k->requests_per_minute &&
                o->tokens_per_minute == k->tokens_per_minute)
                ks->limiters[i] = prev->limiters[j];
        }
    }
    return ks;
}

/* The bucket pair for key `key` of set `ks` as it stands now: the current set's key of the same
 * name (NULL once it was removed by a reload). */
static tlab__limiter *current_limiter(const keyset *ks, long key) {
    if (!current)
        return NULL;
    if (ks == current)
        return &current->limiters[key];
    for (size_t i = 0; i < current->kr->n; i++)
        if (strcmp(current->kr->keys[i].name, ks->kr->keys[key].name) == 0)
            return &current->limiters[i];
    return NULL;
}

int tlab__auth_init(tlab__config *cfg, struct event_base *base, char *err, size_t errlen) {
    default_max_tokens = cfg->max_tokens;
    if (!cfg->keyring) {
        if (cfg->auth_redis[0])
            LOG_WARN("auth.redis is set but auth.keys_file is not: there are no per-key limits to share");
        return 0;
    }
    if (cfg->auth_redis[0] &&
        tlab__shared_limits_start(base, cfg->auth_redis, cfg->auth_redis_prefix, cfg->auth_redis_timeout_ms, err, errlen) != 0)
        return -1;
    if (!(keys_path = strdup(cfg->auth_keys_file)))
        return snprintf(err, errlen, "out of memory setting up the API keys' limits"), -1;
    tlab__keyring *kr = cfg->keyring;
    cfg->keyring = NULL; /* ours now: reloads replace it */
    if (!(current = keyset_new(kr, NULL)))
        return snprintf(err, errlen, "out of memory setting up the API keys' limits"), -1;
    /* Registered up front so /metrics shows the families before the first refusal. */
    tlab__metric_register(TLAB_METRIC_COUNTER, AUTH_FAILURES, AUTH_FAILURES_HELP, NULL, 0);
    tlab__metric_register(TLAB_METRIC_COUNTER, RATE_LIMITED, RATE_LIMITED_HELP, NULL, 0);
    tlab__metric_register(TLAB_METRIC_COUNTER, KEY_TOKENS, KEY_TOKENS_HELP, NULL, 0);
    tlab__metric_register(TLAB_METRIC_COUNTER, RELOADS, RELOADS_HELP, NULL, 0);
    return 0;
}

void tlab__auth_set_default_max_tokens(long max_tokens) {
    default_max_tokens = max_tokens;
}

int tlab__auth_reload(void) {
    if (!current)
        return 0;
    char err[1024];
    tlab__keyring *kr = tlab__keyring_load(keys_path, err, sizeof err);
    keyset *ks = kr ? keyset_new(kr, current) : NULL;
    if (!ks) {
        LOG_ERROR("auth: keys file not reloaded, the previous keys stay in force: %s", kr ? "out of memory" : err);
        count(RELOADS, RELOADS_HELP, "result=\"error\"", 1);
        return -1;
    }
    keyset *old = current;
    current = ks;
    keyset_unref(old); /* freed when its last request settles */
    LOG_INFO("auth: reloaded %zu API key%s from %s", ks->kr->n, ks->kr->n == 1 ? "" : "s", keys_path);
    count(RELOADS, RELOADS_HELP, "result=\"ok\"", 1);
    return 0;
}

void tlab__auth_shutdown(void) {
    tlab__shared_limits_stop();
    keyset_unref(current);
    current = NULL;
    free(keys_path);
    keys_path = NULL;
}

int tlab__auth_enabled(void) {
    return current != NULL;
}

size_t tlab__auth_key_count(void) {
    return current ? current->kr->n : 0;
}

const char *tlab__auth_key_name(long key) {
    return current && key >= 0 && (size_t)key < current->kr->n ? current->kr->keys[key].name : NULL;
}

static void refuse(tlab__http_req *http, int status, const char *type, const char *reason, const char *message) {
    char labels[64];
    snprintf(labels, sizeof labels, "reason=\"%s\"", reason);
    count(AUTH_FAILURES, AUTH_FAILURES_HELP, labels, 1);

    uint64_t now = tlab__now_us();
    if (now - last_fail_log_us >= 1000000) {
        uint16_t port = 0;
        const char *peer = tlab__http_req_peer(http, &port);
        char more[64] = "", path[96];
        if (fails_unlogged)
            snprintf(more, sizeof more, " (and %lu more refused since the last line)", fails_unlogged);
        /* The path only (a query string may carry a key), short and printable: the client wrote it. */
        const char *p = tlab__http_req_path(http);
        size_t n = 0;
        for (; p[n] && n + 1 < sizeof path; n++)
            path[n] = p[n] > 0x20 && p[n] < 0x7f ? p[n] : '?';
        path[n] = '\0';
        tlab__log(TLAB_LOG_INFO, "auth", "%d %s from %s:%u on %s%s", status, reason, peer ? peer : "?", (unsigned)port, path, more);
        last_fail_log_us = now;
        fails_unlogged = 0;
    } else {
        fails_unlogged++;
    }
    tlab__error err;
    tlab__error_set(&err, status, type, NULL, "%s", message);
    err.code = status == 401 ? "invalid_api_key" : NULL;
    if (status == 401)
        tlab__http_add_header(http, "WWW-Authenticate", "Bearer");
    tlab__http_send_error(http, &err, 0);
}

long tlab__auth_check(tlab__http_req *http, int need_admin) {
    if (!current)
        return TLAB_AUTH_OPEN;
    const char *h = tlab__http_req_header(http, "Authorization");
    const char *key = NULL;
    if (h && strncasecmp(h, "Bearer ", 7) == 0) {
        for (key = h + 7; *key == ' '; key++)
            ;
        if (!*key)
            key = NULL;
    }
    if (!key) {
        refuse(http, 401, "invalid_request_error", "missing_key",
               "You didn't provide an API key. You need to provide your API key in an Authorization header using "
               "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).");
        return -1;
    }
    /* The key is never echoed, not even in part: a log or an error body is no place for it. */
    long idx = tlab__keyring_find(current->kr, key, strlen(key));
    if (idx < 0) {
        refuse(http, 401, "invalid_request_error", "invalid_key", "Incorrect API key provided.");
        return -1;
    }
    if (need_admin && !current->kr->keys[idx].admin) {
        refuse(http, 403, "permission_error", "not_admin", "This API key is not allowed to use admin routes.");
        return -1;
    }
    return idx;
}

/* Relayed worker bytes (request.h on_relayed): read for `usage`. */
static void on_relayed(tlab_request *r, const char *data, size_t len) {
    if (r->access && r->access->metering)
        tlab__usage_meter_feed(&r->access->meter, data, len);
}

/* The cleanup handler of a request with a key: refund or charge the difference. */
static void settle(tlab_request *r, void *data) {
    (void)data;
    tlab__access *a = r->access;
    if (!a)
        return;
    r->access = NULL;
    tlab__shared_limits_cancel(a->call); /* the request ended while Redis decided */
    if (a->admitted) {
        tlab__usage_meter_end(&a->meter);
        int64_t used = tlab__usage_charge(&a->meter, r->t[TLAB_EV_DISPATCHED] != 0, r->status, a->prompt_estimate, a->reserved);
        const tlab__api_key *k = &a->set->kr->keys[a->key];
        const char *name = k->name;
        tlab__limiter *l;
        if (a->shared) /* the bucket the admission charged: named by the limits it had then */
            tlab__shared_limits_settle(name, k->requests_per_minute, k->tokens_per_minute, a->reserved, used);
        else if ((l = current_limiter(a->set, a->key))) /* NULL: the key was removed by a reload meanwhile */
            tlab__limiter_settle(l, a->reserved, used, tlab__now_us());
        tlab__usage_meter_free(&a->meter);
        char labels[96];
        snprintf(labels, sizeof labels, "key=\"%s\"", name);
        count(KEY_TOKENS, KEY_TOKENS_HELP, labels, (double)used);
        tlab__log(TLAB_LOG_DEBUG, r->id, "key=%s reserved=%lld charged=%lld tokens", name, (long long)a->reserved, (long long)used);
    }
    keyset_unref(a->set);
    free(a);
}

int tlab__auth_attach(tlab_request *r, long key) {
    if (key < 0 || !current)
        return 0;
    if (!(r->access = calloc(1, sizeof *r->access)))
        return -1;
    r->access->set = current;
    current->refs++;
    r->access->key = key;
    r->on_relayed = on_relayed;
    if (!tlab__request_cleanup_add(r, settle, NULL)) {
        settle(r, NULL);
        return -1;
    }
    return 0;
}

const char *tlab__auth_request_key_name(const tlab_request *r) {
    return r->access ? r->access->set->kr->keys[r->access->key].name : NULL;
}

static void add_header(tlab_request *r, const char *name, long long value) {
    char v[32];
    snprintf(v, sizeof v, "%lld", value);
    tlab__request_add_response_header(r, name, v); /* out of memory: the reply goes without it */
}

/* OpenAI's x-ratelimit-* headers, for the limits the key has (added last to first: the list
 * is sent from its head). */
static void add_limit_headers(tlab_request *r, const tlab__api_key *k, int64_t requests_left, int64_t tokens_left) {
    if (k->tokens_per_minute) {
        add_header(r, "x-ratelimit-remaining-tokens", tokens_left);
        add_header(r, "x-ratelimit-limit-tokens", k->tokens_per_minute);
    }
    if (k->requests_per_minute) {
        add_header(r, "x-ratelimit-remaining-requests", requests_left);
        add_header(r, "x-ratelimit-limit-requests", k->requests_per_minute);
    }
}

static const char *limit_name(tlab__limit_result res) {
    return res == TLAB_LIMIT_REQUESTS ? "requests" : res == TLAB_LIMIT_TOKENS ? "tokens" : "too_large";
}

static void rate_limited(const char *key_name, tlab__limit_result res) {
    char labels[128];
    snprintf(labels, sizeof labels, "key=\"%s\",limit=\"%s\"", key_name, limit_name(res));
    count(RATE_LIMITED, RATE_LIMITED_HELP, labels, 1);
}

/* The tokens r reserves (prompt estimate + max_tokens, limits.max_tokens when absent), kept in
 * its access: a SIGHUP may change limits.max_tokens before Redis answers. */
static void reserve_for(tlab_request *r) {
    tlab__access *a = r->access;
    a->prompt_estimate = tlab__request_info_prompt_tokens(&r->info);
    a->reserved = a->prompt_estimate + (r->info.max_tokens >= 0 ? r->info.max_tokens : default_max_tokens);
}

/* Answers r with 429 for `res`, whoever decided it (the local buckets or Redis'). */
static void refuse_limit(tlab_request *r, const tlab__api_key *k, tlab__limit_result res, int retry) {
    long long reserve = r->access->reserved, prompt = r->access->prompt_estimate;
    tlab__error err;
    if (res == TLAB_LIMIT_TOO_LARGE)
        tlab__error_set(&err, 429, "tokens", NULL,
                       "Request too large for key '%s': it reserves %lld tokens (prompt estimate %lld + max_tokens, "
                       "limits.max_tokens when absent), more than its limit of %lld tokens per minute. Lower max_tokens.",
                       k->name, reserve, prompt, k->tokens_per_minute);
    else if (res == TLAB_LIMIT_REQUESTS)
        tlab__error_set(&err, 429, "requests", NULL,
                       "Rate limit reached for key '%s' on requests per minute: limit %lld. Please try again in %ds.", k->name,
                       k->requests_per_minute, retry);
    else
        tlab__error_set(&err, 429, "tokens", NULL,
                       "Rate limit reached for key '%s' on tokens per minute: limit %lld, requested %lld. Please try "
                       "again in %ds.",
                       k->name, k->tokens_per_minute, reserve, retry);
    err.code = "rate_limit_exceeded";
    rate_limited(k->name, res);
    tlab__request_fail(r, &err, retry);
}

static void admitted(tlab_request *r, const tlab__api_key *k) {
    tlab__access *a = r->access;
    a->admitted = 1;
    /* Every admitted request is metered, so gateway_key_tokens_total is real usage for
     * unlimited keys too; only keys with a token limit have a bucket to settle. */
    a->metering = 1;
    tlab__usage_meter_init(&a->meter, r->info.stream);
    tlab__log(TLAB_LOG_DEBUG, r->id, "key=%s reserved=%lld tokens%s", k->name, (long long)a->reserved, a->shared ? " (Redis)" : "");
}

/* The key's own buckets in this process: 0 admitted, -1 refused (answered). */
static int admit_locally(tlab_request *r) {
    tlab__access *a = r->access;
    tlab__limiter *l = current_limiter(a->set, a->key);
    const tlab__api_key *k = &a->set->kr->keys[a->key];
    if (!l) { /* removed by a reload while Redis decided: its old limits, unenforced, as for requests under way */
        admitted(r, k);
        return 0;
    }
    uint64_t now = tlab__now_us();
    int retry = 0;
    tlab__limit_result res = tlab__limiter_admit(l, a->reserved, now, &retry);
    add_limit_headers(r, k, tlab__bucket_tokens(&l->requests, now), tlab__bucket_tokens(&l->tokens, now));
    if (res != TLAB_LIMIT_OK) {
        refuse_limit(r, k, res, retry);
        return -1;
    }
    admitted(r, k);
    return 0;
}

/* Redis' answer for r (shared_limits.h). */
static void on_shared_verdict(void *arg, const tlab__shared_verdict *v) {
    tlab_request *r = arg;
    tlab__access *a = r->access;
    a->call = NULL;
    if (v->result == TLAB_SHARED_UNAVAILABLE) {
        if (admit_locally(r) == 0)
            a->then(r);
        return;
    }
    const tlab__api_key *k = &a->set->kr->keys[a->key];
    add_limit_headers(r, k, v->remaining_requests, v->remaining_tokens);
    if (v->result != TLAB_LIMIT_OK) {
        refuse_limit(r, k, (tlab__limit_result)v->result, v->retry_after_s);
        return;
    }
    a->shared = 1;
    admitted(r, k);
    a->then(r);
}

int tlab__auth_admit(tlab_request *r, tlab__auth_admitted_fn then) {
    tlab__access *a = r->access;
    if (!a)
        return 0;
    const tlab__api_key *k = &a->set->kr->keys[a->key];
    reserve_for(r);
    if (tlab__shared_limits_enabled() && (k->requests_per_minute || k->tokens_per_minute)) {
        a->then = then;
        a->call = tlab__shared_limits_admit(k->name, k->requests_per_minute, k->tokens_per_minute, a->reserved, on_shared_verdict, r);
        if (a->call)
            return 1;
        /* not connected: this replica decides alone (counted in gateway_shared_limit_fallbacks_total) */
    }
    return admit_locally(r);
}

int tlab__auth_admit_call(tlab__http_req *http, long key) {
    if (key < 0 || !current)
        return 0;
    int retry = 0;
    tlab__limit_result res = tlab__limiter_admit(&current->limiters[key], 0, tlab__now_us(), &retry);
    if (res == TLAB_LIMIT_OK)
        return 0;
    const tlab__api_key *k = &current->kr->keys[key];
    tlab__error err;
    tlab__error_set(&err, 429, "requests", NULL,
                   "Rate limit reached for key '%s' on requests per minute: limit %lld. Please try again in %ds.", k->name,
                   k->requests_per_minute, retry);
    err.code = "rate_limit_exceeded";
    rate_limited(k->name, res);
    tlab__http_send_error(http, &err, retry);
    return -1;
}

