/*
 * test_rate_limit.c - the per-key limits without a clock or a network: token buckets stepped
 * through tables of (operation, time) with exact expected levels and waits, the two-bucket
 * limiter's admit/settle sequences with their Retry-After, the usage meter fed every way a
 * response can be split, and the settlement rule (what a request is charged).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/rate_limit.h"
#include "tlab_test.h"
#include "policy/usage_meter.h"

#define S 1000000ULL /* one second in microseconds */

typedef enum { WAIT, TAKE, GIVE, TOKENS } bop;

typedef struct bstep {
    bop op;
    int64_t n;
    uint64_t t_us;
    int64_t want; /* WAIT: microseconds (-1 never); TOKENS: whole tokens; TAKE/GIVE: unused */
} bstep;

typedef struct bcase {
    const char *what;
    int64_t per_minute;
    bstep steps[12];
} bcase;

/* clang-format off */
static const bcase bucket_cases[] = {
    {"one token a second", 60, {
        {TOKENS, 0, 0, 60}, {TAKE, 60, 0, 0}, {TOKENS, 0, 0, 0}, {WAIT, 1, 0, 1000000}, {WAIT, 1, S / 2, 500000},
        {TOKENS, 0, S, 1}, {WAIT, 61, S, -1}, {GIVE, 100, S, 0}, {TOKENS, 0, S, 60}, {TAKE, 100, S, 0},
        {TOKENS, 0, S, -40}, {WAIT, 10, S, 50000000}}},
    {"debt is paid back by refill, then the level stops at the capacity", 60, {
        {TAKE, 100, 0, 0}, {TOKENS, 0, 0, -40}, {TOKENS, 0, 40 * S, 0}, {TOKENS, 0, 40 * S + 1, 0},
        {TOKENS, 0, 100 * S, 60}, {TOKENS, 0, 1000 * S, 60}}},
    {"a rate that does not divide a minute rounds the wait up", 7, {
        {TAKE, 7, 0, 0}, {WAIT, 1, 0, 8571429}, {TOKENS, 0, 8571428, 0}, {TOKENS, 0, 8571429, 1}, {WAIT, 1, 8571429, 0}}},
    {"unlimited", 0, {
        {WAIT, 1000000000, 0, 0}, {TAKE, 1000000000, 0, 0}, {TOKENS, 0, 0, 0}, {WAIT, 1, 0, 0}}},
    {"the largest capacity survives a long idle spell without overflow", 100000000000LL, {
        {TAKE, 100000000000LL, 0, 0}, {TOKENS, 0, 0, 0}, {WAIT, 100000000000LL, 0, 60000000}, {TOKENS, 0, 1000000000000000ULL, 100000000000LL}}},
    {"absurd debt is clamped, and a refund fills up to the capacity only", 1, {
        {TAKE, INT64_MAX / 2, 0, 0}, {WAIT, 1, 0, 1}, {GIVE, INT64_MAX, 0, 0}, {TOKENS, 0, 0, 1}, {WAIT, 1, 0, 0}}},
    {"time going backwards changes nothing", 60, {
        {TAKE, 60, 10 * S, 0}, {TOKENS, 0, 5 * S, 0}, {TOKENS, 0, 11 * S, 1}}},
};
/* clang-format on */

static void run_bucket_cases(void) {
    for (size_t i = 0; i < sizeof bucket_cases / sizeof bucket_cases[0]; i++) {
        const bcase *c = &bucket_cases[i];
        tlab__bucket b;
        tlab__bucket_init(&b, c->per_minute, c->steps[0].t_us);
        for (size_t j = 0; j < 12; j++) {
            const bstep *s = &c->steps[j];
            if (j > 0 && s->op == WAIT && s->n == 0 && s->t_us == 0)
                break; /* the zeroed tail of the table */
            int64_t got;
            switch (s->op) {
            case WAIT:
                got = tlab__bucket_wait_us(&b, s->n, s->t_us);
                if (s->want == 1) /* "some wait": the clamped-debt case */
                    CHECK_MSG(got > 0, "%s, step %zu: wait %lld", c->what, j, (long long)got);
                else
                    CHECK_MSG(got == s->want, "%s, step %zu: wait %lld, want %lld", c->what, j, (long long)got, (long long)s->want);
                break;
            case TAKE: tlab__bucket_take(&b, s->n, s->t_us); break;
            case GIVE: tlab__bucket_give(&b, s->n, s->t_us); break;
            case TOKENS:
                got = tlab__bucket_tokens(&b, s->t_us);
                CHECK_MSG(got == s->want, "%s, step %zu: %lld tokens, want %lld", c->what, j, (long long)got, (long long)s->want);
                break;
            }
        }
    }
}

typedef enum { ADMIT, SETTLE } lop;

typedef struct lstep {
    lop op;
    int64_t a, b; /* ADMIT: reserve, -; SETTLE: reserved, used */
    uint64_t t_us;
    tlab__limit_result want;
    int retry_after_s;
} lstep;

typedef struct lcase {
    const char *what;
    int64_t rpm, tpm;
    lstep steps[8];
} lcase;

/* clang-format off */
static const lcase limiter_cases[] = {
    {"requests per minute", 2, 0, {
        {ADMIT, 100, 0, 0, TLAB_LIMIT_OK, 0}, {ADMIT, 100, 0, 0, TLAB_LIMIT_OK, 0},
        {ADMIT, 100, 0, 0, TLAB_LIMIT_REQUESTS, 30}, {ADMIT, 100, 0, 29 * S, TLAB_LIMIT_REQUESTS, 1},
        {ADMIT, 100, 0, 30 * S, TLAB_LIMIT_OK, 0}}},
    {"two 100-token reservations do not fit in 150; a short real usage makes room", 0, 150, {
        {ADMIT, 101, 0, 0, TLAB_LIMIT_OK, 0}, {ADMIT, 101, 0, 0, TLAB_LIMIT_TOKENS, 21},
        {SETTLE, 101, 21, 0, TLAB_LIMIT_OK, 0}, {ADMIT, 101, 0, 0, TLAB_LIMIT_OK, 0},
        {ADMIT, 151, 0, 0, TLAB_LIMIT_TOO_LARGE, 0}}},
    {"a cancelled request gives its whole reservation back", 0, 100, {
        {ADMIT, 100, 0, 0, TLAB_LIMIT_OK, 0}, {ADMIT, 1, 0, 0, TLAB_LIMIT_TOKENS, 1},
        {SETTLE, 100, 0, 0, TLAB_LIMIT_OK, 0}, {ADMIT, 100, 0, 0, TLAB_LIMIT_OK, 0}}},
    {"both limits hit: Retry-After is the longer wait", 1, 60, {
        {ADMIT, 30, 0, 0, TLAB_LIMIT_OK, 0}, {ADMIT, 60, 0, 0, TLAB_LIMIT_REQUESTS, 60},
        {ADMIT, 30, 0, 0, TLAB_LIMIT_REQUESTS, 60}}},
    {"a refusal costs nothing", 1, 100, {
        {ADMIT, 200, 0, 0, TLAB_LIMIT_TOO_LARGE, 0}, {ADMIT, 50, 0, 0, TLAB_LIMIT_OK, 0}}},
    {"usage above the reservation leaves a debt", 0, 60, {
        {ADMIT, 60, 0, 0, TLAB_LIMIT_OK, 0}, {SETTLE, 60, 90, 0, TLAB_LIMIT_OK, 0},
        {ADMIT, 1, 0, 0, TLAB_LIMIT_TOKENS, 31}, {ADMIT, 1, 0, 31 * S, TLAB_LIMIT_OK, 0}}},
    {"unlimited key", 0, 0, {
        {ADMIT, 1000000000, 0, 0, TLAB_LIMIT_OK, 0}, {ADMIT, 1000000000, 0, 0, TLAB_LIMIT_OK, 0}}},
};
/* clang-format on */

static void run_limiter_cases(void) {
    for (size_t i = 0; i < sizeof limiter_cases / sizeof limiter_cases[0]; i++) {
        const lcase *c = &limiter_cases[i];
        tlab__limiter l;
        tlab__limiter_init(&l, c->rpm, c->tpm, 0);
        for (size_t j = 0; j < 8 && c->steps[j].a; j++) {
            const lstep *s = &c->steps[j];
            if (s->op == SETTLE) {
                tlab__limiter_settle(&l, s->a, s->b, s->t_us);
                continue;
            }
            int retry = -1;
            tlab__limit_result got = tlab__limiter_admit(&l, s->a, s->t_us, &retry);
            CHECK_MSG(got == s->want && retry == s->retry_after_s, "%s, step %zu: result %d retry %d, want %d retry %d",
                      c->what, j, (int)got, retry, (int)s->want, s->retry_after_s);
        }
    }
}

typedef struct mcase {
    const char *what;
    int stream;
    const char *body;
    int have_usage;
    int64_t prompt, completion, events;
} mcase;

#define SSE_TOK(t) "data: {\"choices\":[{\"index\":0,\"text\":\"" t "\"}]}\n\n"

/* clang-format off */
static const mcase meter_cases[] = {
    {"JSON with usage", 0,
     "{\"id\":\"c\",\"choices\":[{\"text\":\" \\\"usage\\\": {\"}],\"usage\":{\"prompt_tokens\":3,\"total_tokens\":8,\"completion_tokens\":5}}",
     1, 3, 5, 0},
    {"JSON without usage", 0, "{\"id\":\"c\",\"choices\":[]}", 0, 0, 0, 0},
    {"JSON usage null", 0, "{\"usage\":null}", 0, 0, 0, 0},
    {"JSON usage with a negative count", 0, "{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":5}}", 0, 0, 0, 0},
    {"JSON usage past any plausible count (and an overflowing sum)", 0,
     "{\"usage\":{\"prompt_tokens\":9223372036854775807,\"completion_tokens\":9223372036854775807}}", 0, 0, 0, 0},
    {"JSON cut short", 0, "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":5}", 0, 0, 0, 0},
    {"not JSON at all", 0, "Internal Server Error", 0, 0, 0, 0},
    {"SSE without usage", 1, SSE_TOK("a") SSE_TOK("b") SSE_TOK("c") "data: [DONE]\n\n", 0, 0, 0, 3},
    {"SSE with include_usage", 1,
     SSE_TOK("a") SSE_TOK("b") "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"total_tokens\":3,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
     1, 1, 2, 3},
    {"SSE with CRLF and no space after data:", 1,
     "data:{\"choices\":[{\"text\":\"a\"}]}\r\n\r\ndata:{\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":1}}\r\n\r\ndata:[DONE]\r\n\r\n",
     1, 4, 1, 2},
    {"SSE with usage null until a running total (last one wins)", 1,
     "data: {\"choices\":[{\"text\":\"a\"}],\"usage\":null}\n\n"
     "data: {\"choices\":[{\"text\":\"b\"}],\"usage\": {\"prompt_tokens\":2,\"completion_tokens\":1}}\n\n"
     "data: {\"choices\":[{\"text\":\"c\"}],\"usage\": {\"prompt_tokens\":2,\"completion_tokens\":2}}\n\n",
     1, 2, 2, 3},
    {"SSE keep-alive comments and other fields are not events", 1,
     ": waiting for worker\n\nevent: x\nid: 1\n" SSE_TOK("a") ": waiting\n\n", 0, 0, 0, 1},
    {"SSE whose last line has no newline", 1, SSE_TOK("a") "data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}", 1, 1, 1, 2},
};
/* clang-format on */

static void check_meter(const mcase *c, const tlab__usage_meter *m, const char *how) {
    CHECK_MSG(m->have_usage == c->have_usage, "%s (%s): have_usage %d", c->what, how, m->have_usage);
    if (c->have_usage)
        CHECK_MSG(m->prompt_tokens == c->prompt && m->completion_tokens == c->completion, "%s (%s): usage %lld+%lld", c->what,
                  how, (long long)m->prompt_tokens, (long long)m->completion_tokens);
    if (c->stream)
        CHECK_MSG(m->events == c->events, "%s (%s): %lld events", c->what, how, (long long)m->events);
    CHECK_MSG(m->bytes == strlen(c->body), "%s (%s): bytes", c->what, how);
}

static void run_meter_cases(void) {
    for (size_t i = 0; i < sizeof meter_cases / sizeof meter_cases[0]; i++) {
        const mcase *c = &meter_cases[i];
        size_t len = strlen(c->body);
        tlab__usage_meter m;
        /* Every split into two pieces, then one byte at a time: chunk boundaries must not matter. */
        for (size_t cut = 0; cut <= len; cut++) {
            tlab__usage_meter_init(&m, c->stream);
            tlab__usage_meter_feed(&m, c->body, cut);
            tlab__usage_meter_feed(&m, c->body + cut, len - cut);
            tlab__usage_meter_end(&m);
            char how[32];
            snprintf(how, sizeof how, "cut at %zu", cut);
            check_meter(c, &m, how);
            tlab__usage_meter_free(&m);
        }
        tlab__usage_meter_init(&m, c->stream);
        for (size_t k = 0; k < len; k++)
            tlab__usage_meter_feed(&m, c->body + k, 1);
        tlab__usage_meter_end(&m);
        check_meter(c, &m, "byte by byte");
        tlab__usage_meter_free(&m);
    }
}

static void test_meter_caps(void) {
    /* A JSON body past the cap is not read (charged its reservation); memory stays bounded. */
    tlab__usage_meter m;
    tlab__usage_meter_init(&m, 0);
    char *big = malloc(TLAB_USAGE_BODY_CAP);
    memset(big, ' ', TLAB_USAGE_BODY_CAP);
    tlab__usage_meter_feed(&m, "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1},\"pad\":\"", 58);
    tlab__usage_meter_feed(&m, big, TLAB_USAGE_BODY_CAP);
    tlab__usage_meter_feed(&m, "\"}", 2);
    tlab__usage_meter_end(&m);
    CHECK(m.overflow && !m.have_usage && m.cap <= 2 * TLAB_USAGE_BODY_CAP);
    CHECK(tlab__usage_charge(&m, 1, 200, 1, 101) == 101);
    tlab__usage_meter_free(&m);

    /* An SSE line past the cap still counts as one event, and the next line is read normally. */
    tlab__usage_meter_init(&m, 1);
    tlab__usage_meter_feed(&m, "data: {\"choices\":[{\"text\":\"", 28);
    tlab__usage_meter_feed(&m, big, TLAB_USAGE_LINE_CAP + 10);
    tlab__usage_meter_feed(&m, "\"}]}\n\ndata: {\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":9}}\n\n", 66);
    tlab__usage_meter_end(&m);
    CHECK_MSG(m.events == 2 && m.have_usage && m.prompt_tokens == 7 && m.completion_tokens == 9 && m.cap <= 2 * TLAB_USAGE_LINE_CAP,
              "events %lld usage %d", (long long)m.events, m.have_usage);
    tlab__usage_meter_free(&m);
    free(big);
}

typedef struct ccase {
    const char *what;
    int stream;
    const char *body; /* relayed bytes, NULL for none */
    int dispatched, status;
    int64_t prompt_estimate, reserved, want;
} ccase;

/* clang-format off */
static const ccase charge_cases[] = {
    {"usage wins", 0, "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":20}}", 1, 200, 1, 101, 23},
    {"usage above the reservation is charged in full", 0, "{\"usage\":{\"prompt_tokens\":30,\"completion_tokens\":100}}", 1, 200, 1, 101, 130},
    {"stream without usage: prompt estimate + events", 1, SSE_TOK("a") SSE_TOK("b") SSE_TOK("c"), 1, 200, 1, 101, 4},
    {"stream cut by the client: the same", 1, SSE_TOK("a") SSE_TOK("b"), 1, 499, 5, 105, 7},
    {"stream events never exceed the reservation", 1, SSE_TOK("a") SSE_TOK("b") SSE_TOK("c"), 1, 200, 1, 2, 2},
    {"JSON without usage keeps the reservation", 0, "{\"choices\":[]}", 1, 200, 1, 101, 101},
    {"never dispatched (queue timeout, policy, shutdown)", 0, NULL, 0, 503, 1, 101, 0},
    {"worker unreachable", 0, NULL, 1, 503, 1, 101, 0},
    {"worker answered an error", 0, NULL, 1, 400, 1, 101, 0},
    {"client left while the worker generated", 0, NULL, 1, 499, 1, 101, 101},
    {"timed out at the worker", 1, NULL, 1, 504, 1, 101, 101},
};
/* clang-format on */

static void run_charge_cases(void) {
    for (size_t i = 0; i < sizeof charge_cases / sizeof charge_cases[0]; i++) {
        const ccase *c = &charge_cases[i];
        tlab__usage_meter m;
        tlab__usage_meter_init(&m, c->stream);
        if (c->body)
            tlab__usage_meter_feed(&m, c->body, strlen(c->body));
        tlab__usage_meter_end(&m);
        int64_t got = tlab__usage_charge(&m, c->dispatched, c->status, c->prompt_estimate, c->reserved);
        CHECK_MSG(got == c->want, "%s: charged %lld, want %lld", c->what, (long long)got, (long long)c->want);
        tlab__usage_meter_free(&m);
    }
}

int main(void) {
    run_bucket_cases();
    run_limiter_cases();
    run_meter_cases();
    test_meter_caps();
    run_charge_cases();
    return tlab_test_finish();
}
