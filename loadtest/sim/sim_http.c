/*
 * sim_http.c - routes and request lifecycle. Each chat/completion request becomes a sim_req that embeds
 * the engine's sim_job; tokens arrive through req_on_token at each step's end and are written as SSE
 * chunks (stream) or gathered into one reply at the finish (non-stream; the text is regenerated from
 * its seed, so nothing is buffered per token).
 *
 * Disconnects: evhttp does not read from a connection while its request is being handled, so a peer
 * close would go unnoticed until we write. Checked with libevent 2.1.12 by disabling the watch below:
 * no non-streaming abort was ever seen, and a waiting stream only after its first token was written.
 * Each pending request therefore watches its socket for
 * readability; a MSG_PEEK of 0 bytes means EOF, and the request is aborted at once (its KV blocks are
 * freed). evhttp's own close callback covers the cases it does see (write errors while streaming).
 */
#include "sim_http.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "sim_api.h"
#include "sim_log.h"
#include "sim_sleep.h"
#include "sim_text.h"

struct sim_http {
    struct event_base *base;
    struct evhttp *http;
    const sim_config *cfg;
    sim_engine *engine;
    struct evbuffer *scratch;
    char model_json[512]; /* served model name, JSON-escaped once */
    uint64_t counter;
    long long started;
    int sleep_routes; /* --enable-sleep-mode and VLLM_SERVER_DEV_MODE=1, as vLLM requires both */
};

typedef struct sim_req {
    sim_job job; /* first: the engine hands us back &job */
    sim_http *h;
    struct evhttp_request *http;
    struct evhttp_connection *conn;
    struct event *watch;
    sim_api_fmt fmt;
    uint64_t text_seed;
    int text_offset; /* output tokens already in the prompt (a continuation): token i is text i + this */
    int stream, include_usage;
} sim_req;

static void send_json(struct evhttp_request *req, int code, const char *reason, struct evbuffer *body) {
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, code, reason, body);
}

static void send_error(sim_http *h, struct evhttp_request *req, int code, const char *msg, const char *type) {
    struct evbuffer *b = evbuffer_new();
    sim_api_error(b, msg, type, code);
    send_json(req, code, code == 404 ? "Not Found" : "Bad Request", b);
    evbuffer_free(b);
    sim_engine_count_rejected(h->engine);
}

#define SIM_IDLE_TIMEOUT 5       /* uvicorn's keep-alive timeout, which vLLM inherits */
#define SIM_BUSY_TIMEOUT 86400   /* a request may wait and stream for a long time */

/* Detaches r from its connection (close callback, fd watch, long timeout) and frees it. */
static void req_release(sim_req *r) {
    if (r->watch) {
        event_free(r->watch);
        r->watch = NULL;
    }
    if (r->conn) {
        evhttp_connection_set_closecb(r->conn, NULL, NULL);
        evhttp_connection_set_timeout(r->conn, SIM_IDLE_TIMEOUT);
    }
    free(r);
}

/* The client is gone: abort in the engine; close the connection ourselves if evhttp has not. */
static void req_abort(sim_req *r, int close_conn) {
    struct evhttp_connection *conn = r->conn;
    sim_engine_abort(r->h->engine, &r->job);
    req_release(r);
    if (close_conn && conn)
        evhttp_connection_free(conn); /* also frees the pending evhttp_request */
}

static void on_conn_close(struct evhttp_connection *conn, void *arg) {
    (void)conn;
    sim_req *r = arg;
    struct evhttp_request *req = r->http;
    r->conn = NULL; /* evhttp is freeing it right now */
    req_abort(r, 0);
    /* On EOF or a write error evhttp detaches a request the user has not finished and leaves it to us
     * (evhttp_connection_incoming_fail); one still attached is freed with its connection. */
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
}

static void on_peer_readable(evutil_socket_t fd, short what, void *arg) {
    (void)what;
    sim_req *r = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        req_abort(r, 1);
        return;
    }
    if (n < 0)
        event_add(r->watch, NULL);
    /* n > 0: the client sent more (pipelining); stop watching and rely on evhttp's close callback. */
}

static void req_on_token(sim_job *job, int idx, int finish) {
    sim_req *r = (sim_req *)job;
    sim_http *h = r->h;
    const sim_seq *q = &job->seq;
    if (r->stream) {
        /* The EOS token (finish == stop) carries no text, as in vLLM. */
        const char *text = finish == SIM_FINISH_STOP || finish == SIM_FINISH_ABORT ? "" : sim_token_text(r->text_seed, idx + r->text_offset);
        /* An abort (/sleep) ends the stream with an empty chunk carrying finish_reason "abort". */
        sim_api_chunk(h->scratch, &r->fmt, text, finish == SIM_FINISH_ABORT ? q->num_output == 0 : idx == 0, finish);
        if (finish) {
            if (r->include_usage)
                sim_api_usage_chunk(h->scratch, &r->fmt, q->prompt_len, q->num_output);
            sim_api_done(h->scratch);
        }
        evhttp_send_reply_chunk(r->http, h->scratch);
        if (finish) {
            struct evhttp_request *req = r->http;
            req_release(r);
            evhttp_send_reply_end(req);
        }
        return;
    }
    if (!finish)
        return;
    int ntext = q->num_output - (finish == SIM_FINISH_STOP ? 1 : 0);
    char *text = malloc((size_t)ntext * SIM_TOKEN_BYTES + 1);
    if (!text) {
        struct evhttp_request *req = r->http;
        req_release(r);
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    for (int i = 0; i < ntext; i++)
        memcpy(text + (size_t)i * SIM_TOKEN_BYTES, sim_token_text(r->text_seed, i + r->text_offset), SIM_TOKEN_BYTES);
    text[(size_t)ntext * SIM_TOKEN_BYTES] = '\0';
    sim_api_full(h->scratch, &r->fmt, text, finish, q->prompt_len, q->num_output);
    free(text);
    struct evhttp_request *req = r->http;
    req_release(r);
    send_json(req, 200, "OK", h->scratch);
}

/* Builds a vLLM-like request id: prefix + 32 hex digits. */
static void make_id(sim_http *h, const char *prefix, char *out, size_t outlen) {
    uint64_t a = sim_mix(++h->counter ^ 0x5151ULL), b = sim_mix(a ^ (uint64_t)h->started);
    snprintf(out, outlen, "%s%016llx%016llx", prefix, (unsigned long long)a, (unsigned long long)b);
}

static void handle_generate(sim_http *h, struct evhttp_request *req, int kind) {
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = (const char *)evbuffer_pullup(in, -1);
    char msg[512];
    const char *etype = "BadRequestError";
    sim_api_req ar;
    int rc = sim_api_parse(kind, body ? body : "", body ? len : 0, h->cfg->model, h->cfg->max_model_len, &ar, msg,
                           sizeof msg, &etype);
    if (rc) {
        send_error(h, req, rc, msg, etype);
        return;
    }
    sim_req *r = calloc(1, sizeof(*r));
    if (!r) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    r->h = h;
    r->http = req;
    r->conn = evhttp_request_get_connection(req);
    r->stream = ar.stream;
    r->include_usage = ar.include_usage;
    r->fmt.kind = kind;
    r->fmt.created = (long long)time(NULL);
    r->fmt.model = h->model_json;
    make_id(h, kind == SIM_API_CHAT ? "chatcmpl-" : "cmpl-", r->fmt.id, sizeof r->fmt.id);
    /* Greedy decoding depends on the prompt only; sampling also on the seed (request's, else server's). */
    r->text_seed = ar.prompt_hash;
    if (ar.temperature > 0)
        r->text_seed = sim_mix(ar.prompt_hash ^ sim_mix(ar.has_seed ? ar.seed : h->cfg->seed + h->counter));
    sim_seq *q = &r->job.seq;
    q->prompt_len = ar.prompt_tokens;
    q->max_tokens = ar.max_tokens;
    q->min_tokens = ar.min_tokens;
    q->ignore_eos = ar.ignore_eos != 0;
    /* A continuation stops where the whole answer would have: its EOS less what came before. */
    r->text_offset = ar.text_offset;
    q->eos_at = sim_eos_position(r->text_seed) - r->text_offset;
    if (q->eos_at < 1)
        q->eos_at = 1;
    r->job.on_token = req_on_token;

    evhttp_connection_set_closecb(r->conn, on_conn_close, r);
    /* evhttp's timeout also runs while a request waits or streams slowly; vLLM never cuts those. */
    evhttp_connection_set_timeout(r->conn, SIM_BUSY_TIMEOUT);
    struct bufferevent *bev = evhttp_connection_get_bufferevent(r->conn);
    evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
    if (fd >= 0) {
        r->watch = event_new(h->base, fd, EV_READ, on_peer_readable, r);
        if (r->watch)
            event_add(r->watch, NULL);
    }
    if (r->stream) {
        struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
        evhttp_add_header(hd, "Content-Type", "text/event-stream; charset=utf-8");
        evhttp_add_header(hd, "Cache-Control", "no-cache");
        evhttp_send_reply_start(req, 200, "OK");
    }
    sim_engine_submit(h->engine, &r->job);
}

static void handle_models(sim_http *h, struct evhttp_request *req) {
    json_t *perm = json_pack("{s:s,s:s,s:I,s:b,s:b,s:b,s:b,s:b,s:b,s:s,s:n,s:b}", "id", "modelperm-tlabsim", "object",
                             "model_permission", "created", (json_int_t)h->started, "allow_create_engine", 0,
                             "allow_sampling", 1, "allow_logprobs", 1, "allow_search_indices", 0, "allow_view", 1,
                             "allow_fine_tuning", 0, "organization", "*", "group", "is_blocking", 0);
    json_t *model = json_pack("{s:s,s:s,s:I,s:s,s:s,s:n,s:i,s:[o]}", "id", h->cfg->model, "object", "model", "created",
                              (json_int_t)h->started, "owned_by", "vllm", "root", h->cfg->model, "parent",
                              "max_model_len", h->cfg->max_model_len, "permission", perm);
    json_t *o = json_pack("{s:s,s:[o]}", "object", "list", "data", model);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    evbuffer_add(h->scratch, s, strlen(s));
    free(s);
    json_decref(o);
    send_json(req, 200, "OK", h->scratch);
}

/* ---- sleep mode: vLLM's dev routes (vllm/entrypoints/serve/sleep/api_router.py) ------------ */

/* /sleep and /wake_up answer 200 with an empty body once the engine has done the work. */
static void reply_empty(void *arg, int sleeping) {
    (void)sleeping;
    evhttp_send_reply(arg, 200, "OK", NULL);
}

static void reply_is_sleeping(void *arg, int sleeping) {
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add_printf(b, "{\"is_sleeping\":%s}", sleeping ? "true" : "false"); /* Starlette's compact JSON */
    evhttp_add_header(evhttp_request_get_output_headers(arg), "Content-Type", "application/json");
    evhttp_send_reply(arg, 200, "OK", b);
    if (b)
        evbuffer_free(b);
}

/* What FastAPI answers when a handler raises (vLLM's int(level) on a non-number). */
static void reply_500(struct evhttp_request *req) {
    struct evbuffer *b = evbuffer_new();
    if (b)
        evbuffer_add_printf(b, "Internal Server Error");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; charset=utf-8");
    evhttp_send_reply(req, 500, "Internal Server Error", b);
    if (b)
        evbuffer_free(b);
}

static void handle_sleep(sim_http *h, struct evhttp_request *req, const struct evkeyvalq *q) {
    const char *lv = evhttp_find_header(q, "level"), *mode = evhttp_find_header(q, "mode");
    char *end = NULL;
    long level = lv ? strtol(lv, &end, 10) : 1;
    if (lv && (end == lv || *end)) {
        sim_log("ERROR", "api_server.py", "ValueError: invalid literal for int() with base 10: '%s'", lv);
        reply_500(req);
        return;
    }
    char msg[160];
    if (level < 1) { /* vLLM >= 0.13 has a level 0 (pause scheduling only); not emulated */
        snprintf(msg, sizeof msg, "tlab-sim emulates sleep levels 1 and 2, not %ld", level);
        send_error(h, req, 400, msg, "BadRequestError");
        return;
    }
    int m = SIM_SLEEP_ABORT;
    if (mode && !strcmp(mode, "wait"))
        m = SIM_SLEEP_WAIT;
    else if (mode && strcmp(mode, "abort")) {
        snprintf(msg, sizeof msg, "tlab-sim emulates sleep modes 'abort' and 'wait', not '%.60s'", mode);
        send_error(h, req, 400, msg, "BadRequestError");
        return;
    }
    sim_engine_sleep(h->engine, (int)level, m, reply_empty, req);
}

static void handle_wake_up(sim_http *h, struct evhttp_request *req, const struct evkeyvalq *q) {
    int tags = 0, given = 0;
    for (const struct evkeyval *kv = q->tqh_first; kv; kv = kv->next.tqe_next) {
        if (strcmp(kv->key, "tags"))
            continue;
        given = 1;
        if (!strcmp(kv->value, "weights"))
            tags |= SIM_TAG_WEIGHTS;
        else if (!strcmp(kv->value, "kv_cache"))
            tags |= SIM_TAG_KV_CACHE;
        else
            sim_log("WARNING", "abstract.py", "Tag %.60s is not in sleeping tags {'weights', 'kv_cache'}", kv->value);
    }
    static const char *const names[] = {"[]", "['weights']", "['kv_cache']", "['weights', 'kv_cache']"};
    sim_log("INFO", "api_router.py", "wake up the engine with tags: %s", given ? names[tags & SIM_TAG_ALL] : "None");
    if (given && !tags) { /* only unknown tags: nothing to wake */
        reply_empty(req, 0);
        return;
    }
    sim_engine_wake_up(h->engine, tags, reply_empty, req);
}

/* Returns 1 if path is a sleep-mode route and was handled (or refused with 405). */
static int route_sleep(sim_http *h, struct evhttp_request *req, const char *path, const char *uri, int get, int post) {
    int is_sleep = !strcmp(path, "/sleep"), is_wake = !strcmp(path, "/wake_up"), is_q = !strcmp(path, "/is_sleeping");
    if (!h->sleep_routes || !(is_sleep || is_wake || is_q))
        return 0;
    if ((is_q && !get) || (!is_q && !post)) {
        evbuffer_add_printf(h->scratch, "{\"detail\":\"Method Not Allowed\"}");
        send_json(req, 405, "Method Not Allowed", h->scratch);
        return 1;
    }
    if (is_q) {
        sim_engine_is_sleeping(h->engine, reply_is_sleeping, req);
        return 1;
    }
    struct evkeyvalq q;
    const char *qs = strchr(uri, '?');
    memset(&q, 0, sizeof q); /* evhttp_parse_query_str initialises it; empty when there is no query */
    if (qs && evhttp_parse_query_str(qs + 1, &q) != 0) {
        evhttp_clear_headers(&q);
        reply_500(req);
        return 1;
    }
    if (is_sleep)
        handle_sleep(h, req, &q);
    else
        handle_wake_up(h, req, &q);
    evhttp_clear_headers(&q);
    return 1;
}

static void on_request(struct evhttp_request *req, void *arg) {
    sim_http *h = arg;
    const char *uri = evhttp_request_get_uri(req);
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    char path[256];
    size_t n = strcspn(uri, "?");
    if (n >= sizeof path)
        n = sizeof path - 1;
    memcpy(path, uri, n);
    path[n] = '\0';
    int get = cmd == EVHTTP_REQ_GET, post = cmd == EVHTTP_REQ_POST;

    if (route_sleep(h, req, path, uri, get, post)) {
        /* handled */
    } else if (!strcmp(path, "/health") && get) {
        evhttp_send_reply(req, 200, "OK", NULL);
    } else if (!strcmp(path, "/v1/models") && get) {
        handle_models(h, req);
    } else if (!strcmp(path, "/metrics") && get) {
        sim_engine_render_metrics(h->engine, h->scratch);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        evhttp_send_reply(req, 200, "OK", h->scratch);
    } else if (!strcmp(path, "/version") && get) {
        evbuffer_add_printf(h->scratch, "{\"version\":\"tlab-sim\"}");
        send_json(req, 200, "OK", h->scratch);
    } else if (!strcmp(path, "/v1/chat/completions") && post) {
        handle_generate(h, req, SIM_API_CHAT);
    } else if (!strcmp(path, "/v1/completions") && post) {
        handle_generate(h, req, SIM_API_COMPLETION);
    } else if (!strcmp(path, "/v1/chat/completions") || !strcmp(path, "/v1/completions") || !strcmp(path, "/health") ||
               !strcmp(path, "/v1/models") || !strcmp(path, "/metrics")) {
        evbuffer_add_printf(h->scratch, "{\"detail\":\"Method Not Allowed\"}");
        send_json(req, 405, "Method Not Allowed", h->scratch);
    } else {
        evbuffer_add_printf(h->scratch, "{\"detail\":\"Not Found\"}"); /* FastAPI's 404 body */
        send_json(req, 404, "Not Found", h->scratch);
    }
    evbuffer_drain(h->scratch, evbuffer_get_length(h->scratch));
}

sim_http *sim_http_new(struct event_base *base, const sim_config *cfg, sim_engine *engine, evutil_socket_t fd) {
    sim_http *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->base = base;
    h->cfg = cfg;
    h->engine = engine;
    h->started = (long long)time(NULL);
    /* vLLM registers these routes only in dev mode (envs.VLLM_SERVER_DEV_MODE = bool(int(...))). */
    const char *dev = getenv("VLLM_SERVER_DEV_MODE");
    h->sleep_routes = cfg->enable_sleep_mode && dev && strtol(dev, NULL, 10) != 0;
    sim_api_json_escape(cfg->model, h->model_json, sizeof h->model_json);
    h->scratch = evbuffer_new();
    h->http = evhttp_new(base);
    if (!h->scratch || !h->http || evhttp_accept_socket(h->http, fd) != 0) {
        sim_http_free(h);
        return NULL;
    }
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(h->http, 64 << 20);
    /* uvicorn (vLLM) closes idle keep-alive connections after 5 s; requests lift it while they run. */
    evhttp_set_timeout(h->http, SIM_IDLE_TIMEOUT);
    evhttp_set_gencb(h->http, on_request, h);
    return h;
}

void sim_http_free(sim_http *h) {
    if (!h)
        return;
    if (h->http)
        evhttp_free(h->http);
    if (h->scratch)
        evbuffer_free(h->scratch);
    free(h);
}
