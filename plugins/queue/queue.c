/*
 * queue.c - the buffer between admission and the worker, where bursts wait and where policies
 * can see them.
 *
 * - Bounded: past max_depth a request gets 429 with Retry-After.
 * - Priority classes: FIFO within a class, strict priority between classes, except that a
 *   non-empty class passed over starvation_limit times in a row goes next (anti-starvation).
 *   The class comes from the policy (request_priority), the x-priority header, the API key's
 *   default, or default_class, in that order.
 * - A deadline per class (queue_timeout_ms): a request that waits longer gets 503 with
 *   Retry-After. Within a class the promised retries (below) and the fresh arrivals are each in
 *   arrival order, so one timer per class, armed for the earlier of their two heads, is enough.
 * - Retry-After is kept (ABI 1.3): a retry that comes back when a deadline refusal told it to
 *   (api->request_promised) goes after the class's other promised retries and before its fresh
 *   arrivals, and is judged with only those ahead. Without this, 42 % of retries got in at their
 *   first retry during a 3x burst: they came back into a queue new arrivals had filled.
 * Wait times are measured from the lifecycle events by the metrics plugin
 * (gateway_queue_wait_seconds); this plugin counts what only it knows: timeouts, refusals and
 * per-class depth.
 * - Deadlines (ABI 1.2, docs/autopilot.md): at push, a request that the autopilot predicts cannot
 *   finish inside its deadline from its place in the queue gets 429 with a computed Retry-After;
 *   a lower class may plan with less of its deadline (headroom_pct kept for the higher ones), so
 *   it is shed first. Every 200 ms the waiting requests are judged again, and one whose deadline
 *   became unreachable (predicted to finish more than 25 % past it) leaves with 503 and Retry-After.
 * - An optional fixed concurrency cap (max_inflight; 0, the default, leaves it to the core's
 *   autopilot gate).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include <tlab/plugin.h>

#define MAX_CLASSES 8
#define UNREACHABLE_SHARE 1.25 /* a waiting request leaves when predicted this far past its deadline */

typedef struct node {
    tlab_request *r;
    struct node *prev, *next;
    int cls;
    int promised; /* in the class's promised prefix */
    uint64_t enqueued_us;
} node;

typedef struct qclass {
    char *name;
    char label[96]; /* class="<name>", the metric label, made once: publish_depth runs twice per request */
    uint64_t timeout_us;
    node *head, *tail;
    node *promised_tail; /* the promised retries are a prefix of the list; its last one, or NULL */
    size_t len, promised_len;
    unsigned passed_over; /* consecutive dispatches from higher classes while this one waited */
    tlab_timer *deadline;
    struct queue *q;
} qclass;

typedef struct queue {
    const tlab_api *api;
    tlab_plugin_ctx *ctx;
    qclass classes[MAX_CLASSES];
    int n_classes;
    int default_class;
    size_t depth, max_depth;
    size_t max_inflight; /* 0: no cap of its own; the autopilot's gate (docs/autopilot.md) decides */
    double headroom;     /* share of a deadline the lowest class may not use: kept for the higher ones */
    tlab_timer *judge_timer; /* re-judges the waiting requests against their deadlines */
    uint64_t cold_start_timeout_us; /* deadline while the worker is not running (scale-to-zero) */
    unsigned starvation_limit;
    int retry_after_s;
    json_t *api_keys; /* key -> class name */
    tlab_metric *timeouts, *rejected, *class_depth;
} queue;

/* The share of its remaining time a request of class `cls` may plan to use: the highest class all
 * of it, the lowest 1 - headroom, the ones between in proportion. So, as the predicted wait
 * grows, the lowest class is refused first and the highest keeps the headroom. */
static double class_share(const queue *q, int cls) {
    return q->n_classes > 1 ? 1.0 - q->headroom * (double)cls / (double)(q->n_classes - 1) : 1.0;
}

/* Requests that go before a newcomer of class `cls`: every one in the classes above, and in its
 * own class every one (a fresh arrival) or the promised retries (a promised one). */
static size_t ahead_of(const queue *q, int cls, int promised) {
    size_t n = 0;
    for (int i = 0; i < cls; i++)
        n += q->classes[i].len;
    return n + (promised ? q->classes[cls].promised_len : q->classes[cls].len);
}

/* The first fresh arrival of class c (after the promised prefix), or NULL. */
static node *first_fresh(const qclass *c) {
    return c->promised_tail ? c->promised_tail->next : c->head;
}

/* Of the class's two arrival-ordered runs, the head that waited longest: the next to time out. */
static node *oldest(const qclass *c) {
    node *p = c->promised_tail ? c->head : NULL, *f = first_fresh(c);
    return !p ? f : !f ? p : p->enqueued_us <= f->enqueued_us ? p : f;
}

static void count_reject(queue *q, const char *reason, int cls) {
    char labels[160];
    snprintf(labels, sizeof labels, "reason=\"%s\",class=\"%s\"", reason, cls >= 0 ? q->classes[cls].name : "");
    q->api->metric_add(q->rejected, labels, 1);
}

static int class_index(const queue *q, const char *name) {
    for (int i = 0; name && i < q->n_classes; i++)
        if (strcmp(q->classes[i].name, name) == 0)
            return i;
    return -1;
}

static void publish_depth(queue *q, int cls) {
    q->api->metric_set(q->class_depth, q->classes[cls].label, (double)q->classes[cls].len);
}

/* A request waiting on a cold start gets cold_start_timeout_ms instead of its class deadline
 * when that is longer: the worker is coming, and a 503 now would only make the client retry. */
static uint64_t effective_timeout(const qclass *c) {
    int ws = c->q->api->worker_state();
    int cold = ws == TLAB_WORKER_IDLE || ws == TLAB_WORKER_STARTING || ws == TLAB_WORKER_STOPPING || ws == TLAB_WORKER_SLEEPING;
    return cold && c->q->cold_start_timeout_us > c->timeout_us ? c->q->cold_start_timeout_us : c->timeout_us;
}

static void arm_deadline(qclass *c) {
    node *o = oldest(c);
    if (!o) {
        c->q->api->timer_stop(c->deadline);
        return;
    }
    uint64_t now = c->q->api->now_us(), due = o->enqueued_us + effective_timeout(c);
    c->q->api->timer_start(c->deadline, due > now ? due - now : 0, 0);
}

static void unlink_node(queue *q, node *n) {
    qclass *c = &q->classes[n->cls];
    int was_head = c->head == n || first_fresh(c) == n;
    if (n->promised) {
        if (c->promised_tail == n)
            c->promised_tail = n->prev; /* a prefix: what is before a promised node is promised */
        c->promised_len--;
    }
    if (n->prev)
        n->prev->next = n->next;
    else
        c->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        c->tail = n->prev;
    c->len--;
    q->depth--;
    q->api->request_set_data(q->ctx, n->r, NULL);
    publish_depth(q, n->cls);
    if (was_head)
        arm_deadline(c);
    free(n);
}

static void on_deadline(void *arg) {
    qclass *c = arg;
    queue *q = c->q;
    uint64_t now = q->api->now_us();
    char msg[192];
    /* request_reject removes the request through remove(), which re-arms the timer. */
    uint64_t limit = effective_timeout(c);
    node *n;
    while ((n = oldest(c)) != NULL && n->enqueued_us + limit <= now) {
        snprintf(msg, sizeof msg, "the request waited %llu ms in the '%s' queue without reaching a worker (%s %llu)",
                 (unsigned long long)((now - n->enqueued_us) / 1000), c->name,
                 limit == c->timeout_us ? "queue_timeout_ms" : "cold_start_timeout_ms", (unsigned long long)(limit / 1000));
        q->api->metric_add(q->timeouts, c->label, 1);
        count_reject(q, "queue_timeout", (int)(c - q->classes));
        if (q->api->request_reject(n->r, 503, "queue_timeout", msg, q->retry_after_s) != TLAB_OK)
            unlink_node(q, n); /* cannot happen for a queued request; never spin on it */
    }
    arm_deadline(c);
}

/* The class that goes next: the first starving class, else the highest non-empty one. */
static int next_class(const queue *q) {
    int best = -1;
    for (int i = 0; i < q->n_classes; i++) {
        if (!q->classes[i].head)
            continue;
        if (best < 0)
            best = i;
        if (q->classes[i].passed_over >= q->starvation_limit && i != best)
            return i;
    }
    return best;
}

static int choose_class(queue *q, tlab_request *r) {
    const char *want = q->api->request_priority(r);
    if (want) {
        int i = class_index(q, want);
        if (i < 0) {
            char msg[160];
            snprintf(msg, sizeof msg, "unknown priority class '%.64s' (x-priority)", want);
            q->api->request_reject(r, 400, "invalid_request_error", msg, 0);
        }
        return i;
    }
    const char *auth = q->api->request_header(r, "Authorization");
    if (auth && q->api_keys && strncmp(auth, "Bearer ", 7) == 0) {
        int i = class_index(q, json_string_value(json_object_get(q->api_keys, auth + 7)));
        if (i >= 0)
            return i;
    }
    return q->default_class;
}

static int q_push(void *self, tlab_request *r) {
    queue *q = self;
    if (q->depth >= q->max_depth) {
        char msg[160];
        snprintf(msg, sizeof msg, "the gateway queue is full (%zu requests waiting, max_depth %zu); retry later", q->depth,
                 q->max_depth);
        count_reject(q, "full", -1);
        q->api->request_reject(r, 429, "rate_limit_exceeded", msg, q->retry_after_s);
        return TLAB_ERROR;
    }
    int cls = choose_class(q, r);
    if (cls < 0)
        return TLAB_ERROR; /* choose_class answered it */
    char why[320];
    int retry = 0;
    int promised = TLAB_API_HAS(q->api, request_promised) && q->api->request_promised(r);
    if (TLAB_API_HAS(q->api, request_judge) &&
        q->api->request_judge(r, (double)ahead_of(q, cls, promised), class_share(q, cls), why, sizeof why, &retry) != TLAB_OK) {
        count_reject(q, "deadline", cls);
        q->api->request_reject(r, 429, "rate_limit_exceeded", why, retry);
        return TLAB_ERROR;
    }
    node *n = calloc(1, sizeof *n);
    if (!n) {
        q->api->request_reject(r, 503, "service_unavailable", "out of memory queueing the request", 1);
        return TLAB_ERROR;
    }
    qclass *c = &q->classes[cls];
    n->r = r;
    n->cls = cls;
    n->promised = promised;
    n->enqueued_us = q->api->now_us();
    node *after = promised ? c->promised_tail : c->tail;
    n->prev = after;
    n->next = after ? after->next : c->head;
    if (n->next)
        n->next->prev = n;
    else
        c->tail = n;
    if (after)
        after->next = n;
    else
        c->head = n;
    if (promised) {
        c->promised_tail = n;
        c->promised_len++;
    }
    c->len++;
    q->depth++;
    q->api->request_set_data(q->ctx, r, n);
    publish_depth(q, cls);
    if (c->head == n || first_fresh(c) == n)
        arm_deadline(c);
    return TLAB_OK;
}

static tlab_request *q_peek(void *self) {
    queue *q = self;
    int cls = next_class(q);
    return cls < 0 ? NULL : q->classes[cls].head->r;
}

static tlab_request *q_pop(void *self) {
    queue *q = self;
    int cls = next_class(q);
    if (cls < 0)
        return NULL;
    for (int i = 0; i < q->n_classes; i++)
        if (i != cls && q->classes[i].head && i > cls)
            q->classes[i].passed_over++;
    q->classes[cls].passed_over = 0;
    node *n = q->classes[cls].head;
    tlab_request *r = n->r;
    unlink_node(q, n);
    return r;
}

/* Called when r's client left or r was rejected; r may never have been pushed. */
static void q_remove(void *self, tlab_request *r) {
    queue *q = self;
    node *n = q->api->request_get_data(q->ctx, r);
    if (n)
        unlink_node(q, n);
}

static size_t q_depth(void *self) {
    return ((queue *)self)->depth;
}

static int q_gate(void *self, tlab_request *r) {
    queue *q = self;
    (void)r;
    /* The core wakes the dispatcher whenever an in-flight request ends, so AGAIN is safe. */
    return !q->max_inflight || q->api->in_flight() < q->max_inflight ? TLAB_OK : TLAB_AGAIN;
}

/* A waiting request whose deadline can no longer be met leaves now with 503 and Retry-After,
 * not later with a 504: judged in dispatch order, each against the requests before it, with the
 * worker's measured start time while it is cold. */
static void on_judge(void *arg) {
    queue *q = arg;
    size_t ahead = 0;
    char why[320], msg[400];
    for (int i = 0; i < q->n_classes; i++) {
        for (node *n = q->classes[i].head, *next; n; n = next) {
            next = n->next;
            int retry = 0;
            /* Unreachable, not merely tight: a prediction is an average, and a request admitted
             * on it keeps its chance unless it is 25 % past its deadline. */
            if (q->api->request_judge(n->r, (double)ahead, UNREACHABLE_SHARE, why, sizeof why, &retry) == TLAB_OK) {
                ahead++;
                continue;
            }
            snprintf(msg, sizeof msg, "left the queue: %s", why);
            count_reject(q, "deadline_unreachable", i);
            if (q->api->request_reject(n->r, 503, "service_unavailable", msg, retry > 0 ? retry : q->retry_after_s) != TLAB_OK)
                unlink_node(q, n);
        }
    }
}

static void q_shutdown(void *self) {
    queue *q = self;
    if (!q)
        return;
    for (int i = 0; i < q->n_classes; i++) {
        for (node *n = q->classes[i].head; n;) {
            node *next = n->next;
            free(n);
            n = next;
        }
        if (q->classes[i].deadline)
            q->api->timer_free(q->classes[i].deadline);
        free(q->classes[i].name);
    }
    if (q->judge_timer)
        q->api->timer_free(q->judge_timer);
    json_decref(q->api_keys);
    free(q);
}

static int add_class(queue *q, const char *name, long long timeout_ms, char *err, size_t errlen) {
    if (q->n_classes == MAX_CLASSES) {
        snprintf(err, errlen, "at most %d priority classes", MAX_CLASSES);
        return TLAB_ERROR;
    }
    if (class_index(q, name) >= 0) {
        snprintf(err, errlen, "class '%s' is listed twice", name);
        return TLAB_ERROR;
    }
    qclass *c = &q->classes[q->n_classes];
    c->q = q;
    c->name = strdup(name);
    c->timeout_us = (uint64_t)timeout_ms * 1000;
    c->deadline = q->api->timer_new(q->ctx, on_deadline, c);
    q->n_classes++; /* counted before the checks so shutdown frees a half-made class */
    if (!c->name || !c->deadline) {
        snprintf(err, errlen, "out of memory");
        return TLAB_ERROR;
    }
    snprintf(c->label, sizeof c->label, "class=\"%s\"", name);
    return TLAB_OK;
}

static int parse_config(queue *q, const json_t *cfg, char *err, size_t errlen) {
    static const char *const keys[] = {"max_depth", "max_inflight", "queue_timeout_ms", "cold_start_timeout_ms", "retry_after_s",
                                       "starvation_limit", "classes", "default_class", "api_keys", "headroom_pct", NULL};
    long long max_depth, max_inflight, timeout_ms, retry_after, starvation, cold_ms, headroom;
    if (tlab_config_check_keys(cfg, keys, err, errlen) || tlab_config_int(cfg, "max_depth", 1024, 1, 10000000, &max_depth, err, errlen) ||
        tlab_config_int(cfg, "max_inflight", 0, 0, 1000000, &max_inflight, err, errlen) ||
        tlab_config_int(cfg, "headroom_pct", 20, 0, 90, &headroom, err, errlen) ||
        tlab_config_int(cfg, "queue_timeout_ms", 30000, 1, 86400000, &timeout_ms, err, errlen) ||
        tlab_config_int(cfg, "retry_after_s", 1, 1, 3600, &retry_after, err, errlen) ||
        tlab_config_int(cfg, "starvation_limit", 16, 1, 1000000, &starvation, err, errlen) ||
        tlab_config_int(cfg, "cold_start_timeout_ms", 600000, 1, 86400000, &cold_ms, err, errlen))
        return TLAB_ERROR;
    q->cold_start_timeout_us = (uint64_t)cold_ms * 1000;
    q->max_depth = (size_t)max_depth;
    q->max_inflight = (size_t)max_inflight;
    q->headroom = (double)headroom / 100.0;
    q->retry_after_s = (int)retry_after;
    q->starvation_limit = (unsigned)starvation;

    const json_t *classes = json_object_get(cfg, "classes");
    if (classes && (!json_is_array(classes) || json_array_size(classes) == 0)) {
        snprintf(err, errlen, "'classes' must be a non-empty list, highest priority first");
        return TLAB_ERROR;
    }
    if (!classes) {
        if (add_class(q, "high", timeout_ms, err, errlen) || add_class(q, "normal", timeout_ms, err, errlen) ||
            add_class(q, "low", timeout_ms, err, errlen))
            return TLAB_ERROR;
    }
    size_t i;
    const json_t *c;
    json_array_foreach(classes, i, c) {
        static const char *const class_keys[] = {"name", "queue_timeout_ms", NULL};
        const char *name = json_string_value(json_object_get(c, "name"));
        long long t;
        if (!json_is_object(c) || !name) {
            snprintf(err, errlen, "classes[%zu] must be a mapping with a string 'name'", i);
            return TLAB_ERROR;
        }
        char sub[200];
        if (tlab_config_check_keys(c, class_keys, sub, sizeof sub) ||
            tlab_config_int(c, "queue_timeout_ms", timeout_ms, 1, 86400000, &t, sub, sizeof sub)) {
            snprintf(err, errlen, "classes[%zu]: %s", i, sub);
            return TLAB_ERROR;
        }
        if (add_class(q, name, t, err, errlen))
            return TLAB_ERROR;
    }
    const char *dflt = json_string_value(json_object_get(cfg, "default_class"));
    if (json_object_get(cfg, "default_class") && !dflt) {
        snprintf(err, errlen, "'default_class' must be a string");
        return TLAB_ERROR;
    }
    /* Without default_class: "normal" when there is such a class, else the lowest class. */
    q->default_class = dflt ? class_index(q, dflt) : (class_index(q, "normal") >= 0 ? class_index(q, "normal") : q->n_classes - 1);
    if (q->default_class < 0) {
        snprintf(err, errlen, "'default_class' '%s' is not one of the classes", dflt);
        return TLAB_ERROR;
    }
    const json_t *keys_map = json_object_get(cfg, "api_keys");
    if (keys_map) {
        const char *k;
        json_t *v;
        if (!json_is_object(keys_map)) {
            snprintf(err, errlen, "'api_keys' must be a mapping of API key to class name");
            return TLAB_ERROR;
        }
        json_object_foreach((json_t *)keys_map, k, v) {
            if (class_index(q, json_string_value(v)) < 0) {
                snprintf(err, errlen, "api_keys: the key ending '%s' maps to an unknown class", strlen(k) > 4 ? k + strlen(k) - 4 : "");
                return TLAB_ERROR;
            }
        }
        q->api_keys = json_deep_copy(keys_map);
    }
    return TLAB_OK;
}

static int q_init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t errlen) {
    queue *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(err, errlen, "out of memory");
        return TLAB_ERROR;
    }
    q->api = api;
    q->ctx = ctx;
    if (parse_config(q, config, err, errlen) != TLAB_OK) {
        q_shutdown(q);
        return TLAB_ERROR;
    }
    q->timeouts = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_queue_timeouts_total",
                                       "Requests answered 503 because they outwaited queue_timeout_ms", NULL, 0);
    q->rejected = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_queue_rejected_total",
                                       "Requests refused by the queue, by reason", NULL, 0);
    q->class_depth = api->metric_register(ctx, TLAB_METRIC_GAUGE, "gateway_queue_class_depth",
                                          "Requests waiting in each priority class", NULL, 0);
    for (int i = 0; i < q->n_classes; i++)
        publish_depth(q, i);
    if (TLAB_API_HAS(api, request_judge)) {
        /* Every 200 ms: a deadline is seconds long, and a walk of even 1,000 waiting requests
         * costs microseconds. */
        q->judge_timer = api->timer_new(ctx, on_judge, q);
        if (!q->judge_timer || api->timer_start(q->judge_timer, 200000, 1) != TLAB_OK) {
            snprintf(err, errlen, "out of memory");
            q_shutdown(q);
            return TLAB_ERROR;
        }
    }
    api->log(ctx, TLAB_LOG_INFO, "max_depth %zu, max_inflight %zu, %d classes (default '%s'), starvation_limit %u",
             q->max_depth, q->max_inflight, q->n_classes, q->classes[q->default_class].name, q->starvation_limit);
    *self = q;
    return TLAB_OK;
}

static const tlab_queue_role queue_role = {
    .size = sizeof(tlab_queue_role),
    .push = q_push,
    .peek = q_peek,
    .pop = q_pop,
    .remove = q_remove,
    .depth = q_depth,
};

static const tlab_plugin queue_plugin = {
    TLAB_PLUGIN_HEADER,
    .name = "queue",
    .version = "1.0.0",
    .init = q_init,
    .shutdown = q_shutdown,
    .dispatch_gate = q_gate,
    .queue = &queue_role,
};

TLAB_PLUGIN_DECLARE(queue_plugin)
