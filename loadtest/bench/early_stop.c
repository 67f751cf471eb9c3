/*
 * early_stop.c - the certain-FAIL test behind `tlab-bench --early-stop` (see early_stop.h).
 */
#include "early_stop.h"

#include <math.h>
#include <stdio.h>

int tlab_early_rule_from_slo(const tlab_slo_set *slos, tlab_early_rule *rule) {
    *rule = (tlab_early_rule){0};
    for (int i = 0; i < slos->n; i++) {
        const tlab_slo *s = &slos->items[i];
        if (s->metric == TLAB_M_ERROR_RATE && !rule->has_error_rate) {
            rule->has_error_rate = 1;
            rule->error_limit = s->limit;
        } else if (s->agg == TLAB_AGG_QUANTILE && (s->metric == TLAB_M_E2E || s->metric == TLAB_M_TTFT) && !rule->has_latency) {
            rule->has_latency = 1;
            rule->metric = (int)s->metric;
            rule->q = s->q;
            rule->limit_s = s->limit;
        }
    }
    return rule->has_latency || rule->has_error_rate ? 0 : -1;
}

int tlab_early_certain_fail(const tlab_early_rule *rule, const tlab_early_counts *c, char *why, size_t whylen) {
    if (c->planned == 0)
        return 0;
    double n = (double)c->planned;
    /* Allowances; an objective that is absent allows everything. */
    double late_allowed = rule->has_latency ? floor((1.0 - rule->q) * n) + 1.0 : INFINITY;
    double errors_allowed = rule->has_error_rate ? rule->error_limit * n : INFINITY;
    double late = (double)c->late_ok, failed = (double)c->failed, pending = (double)c->late_inflight;
    const char *what = NULL;
    if (late > late_allowed)
        what = "requests over the latency limit";
    else if (failed > errors_allowed)
        what = "failed requests";
    /* The in-flight late ones may split between the two allowances in the most favourable way. */
    else if (late + failed + pending > late_allowed + errors_allowed)
        what = "late or failed requests (counting those still in flight)";
    if (!what)
        return 0;
    if (why)
        snprintf(why, whylen, "%s: %zu late, %zu failed, %zu late in flight, of %zu due in the window", what, c->late_ok,
                 c->failed, c->late_inflight, c->planned);
    return 1;
}
