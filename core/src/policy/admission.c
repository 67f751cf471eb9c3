/*
 * admission.c - the admission step of a request's walk: builds what admission.lua sees of the
 * request (`req`), runs the policy (lua/policy_host.c) and applies its decision: a refusal
 * answers the request, a clamp rewrites max_tokens, a class sets the priority.
 */
#include "policy/admission.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/fnv1a.h"
#include "base/metrics_registry.h"
#include "dispatch/dispatch.h"
#include "dispatch/gate.h"
#include "policy/auth.h"
#include "policy/lua/policy_host.h"

/* A short id of the Bearer key: the key itself never reaches a policy or a log line. */
static const char *api_key_id(tlab_request *r, char *buf, size_t len) {
    const char *auth = r->http ? tlab__http_req_header(r->http, "authorization") : NULL;
    if (!auth)
        return NULL;
    if (strncasecmp(auth, "Bearer ", 7) == 0)
        auth += 7;
    while (*auth == ' ')
        auth++;
    if (!*auth)
        return NULL;
    snprintf(buf, len, "k%08x", (unsigned)(tlab__fnv1a64(auth, strlen(auth)) >> 32));
    return buf;
}

static void apply_clamp(tlab_request *r, long n) {
    if (r->body && json_is_object(r->body)) {
        json_object_set_new(r->body, "max_tokens", json_integer(n));
        if (json_object_get(r->body, "max_completion_tokens"))
            json_object_set_new(r->body, "max_completion_tokens", json_integer(n));
        r->body_dirty = 1;
    }
    r->info.max_tokens = n;
}

/* The client's own deadline: x-request-deadline-ms, milliseconds from arrival (the header's
 * documented meaning, docs/autopilot.md), else slo.e2e_ms. -1 with a 400 sent when malformed. */
static int set_deadline(tlab_request *r) {
    const char *h = r->http ? tlab__http_req_header(r->http, TLAB_DEADLINE_HEADER) : NULL;
    uint64_t budget_us = tlab__gate_slo_us();
    if (h) {
        char *end;
        while (*h == ' ')
            h++;
        long long ms = *h >= '0' && *h <= '9' ? strtoll(h, &end, 10) : -1;
        if (ms >= 0)
            while (*end == ' ')
                end++;
        if (ms < 1 || ms > 86400000 || *end) {
            tlab__error err;
            tlab__error_set(&err, 400, "invalid_request_error", TLAB_DEADLINE_HEADER,
                            "the %s header must be a whole number of milliseconds from 1 to 86400000 (the time the "
                            "request may take, from its arrival)", TLAB_DEADLINE_HEADER);
            tlab__request_fail(r, &err, 0);
            return -1;
        }
        budget_us = (uint64_t)ms * 1000;
    }
    r->deadline_us = budget_us ? r->t[TLAB_EV_ARRIVED] + budget_us : 0;
    return 0;
}

/* Seconds from now until r would be done if it joined the back of the queue (every class
 * counted: the queue's own judgement knows the classes); 0 before anything is measured. */
static double predicted_finish_s(const tlab_request *r) {
    double service = tlab__gate_service_s(r->info.max_tokens);
    return service > 0 ? tlab__gate_wait_s((double)tlab__dispatch_waiting()) + service : 0;
}

int tlab__policy_admit_request(tlab_request *r) {
    if (set_deadline(r) != 0)
        return -1;
    if (!tlab__policies_has_admission())
        return 0;
    char key_buf[16];
    tlab__admission_input in = {
        .kind = r->kind,
        .stream = r->info.stream,
        .max_tokens = r->info.max_tokens,
        .prompt_tokens = tlab__request_info_prompt_tokens(&r->info),
        .model = r->info.model,
        .api_key_id = api_key_id(r, key_buf, sizeof key_buf),
        .api_key_name = tlab__auth_request_key_name(r),
        .priority = tlab__request_priority(r),
        .deadline_ms = r->deadline_us ? (long)((r->deadline_us - r->t[TLAB_EV_ARRIVED]) / 1000) : -1,
        .predicted_finish_s = predicted_finish_s(r),
    };
    tlab__admission_decision d;
    tlab__policy_admission(&in, &d);
    if (d.reject) {
        tlab_metric *m = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_admission_rejects_total",
                                              "Requests rejected by the admission policy, by reason", NULL, 0);
        char labels[80];
        snprintf(labels, sizeof labels, "reason=\"%s\"", d.reason);
        if (m)
            tlab__metric_add(m, labels, 1);
        tlab__error err;
        tlab__error_set(&err, d.status, d.type, NULL, "%s", d.message);
        tlab__request_fail(r, &err, d.retry_after_s);
        return -1;
    }
    if (d.clamp_max_tokens >= 0)
        apply_clamp(r, d.clamp_max_tokens);
    if (d.deadline_ms > 0)
        r->deadline_us = r->t[TLAB_EV_ARRIVED] + (uint64_t)d.deadline_ms * 1000;
    if (d.priority[0])
        tlab__request_set_priority(r, d.priority); /* out of memory: the class stays as it was */
    return 0;
}
