/*
 * early_stop.h - deciding, while a run is still going, that its SLO verdict can only be FAIL.
 *
 * Used by tlab-tune's probes (`tlab-bench --early-stop`): a probe far above the sustainable rate
 * shows it within seconds, and waiting out its whole window only burns benchmark time. The test
 * is exact, not statistical: it stops only when no outcome of the requests still to come could
 * turn the verdict into PASS.
 *
 * For an objective "quantile q of metric <= T" over the N requests due in the window, at most
 * floor((1 - q) x N) + 1 of them may exceed T while the quantile is still within it (a margin of
 * one covers any interpolation between order statistics). For error_rate <= e, at most e x N may
 * fail. A request still in flight that is already older than T will end as a late success or as
 * a failure; the verdict is certain only when every way of splitting those breaks an objective.
 */
#ifndef TLAB_BENCH_EARLY_STOP_H
#define TLAB_BENCH_EARLY_STOP_H

#include <stddef.h>

#include "slo.h"

/* What the window holds so far. Each request due in the window is in at most one bucket. */
typedef struct {
    size_t planned;       /* requests due in the whole window (known from the schedule) */
    size_t failed;        /* ended with an error (any kind, dropped included) */
    size_t late_ok;       /* ended OK, but with the objective's metric over its limit */
    size_t late_inflight; /* still in flight and already older than the limit */
} tlab_early_counts;

/* The objectives that early stop can judge: one e2e or ttft quantile, and error_rate. */
typedef struct {
    int has_latency;
    int metric;           /* TLAB_M_E2E or TLAB_M_TTFT */
    double q, limit_s;
    int has_error_rate;
    double error_limit;   /* fraction */
} tlab_early_rule;

/* Picks the rule from an SLO set: the first aggregate e2e/ttft quantile and error_rate.
 * Returns 0, or -1 when the set holds neither (early stop would never fire). */
int tlab_early_rule_from_slo(const tlab_slo_set *slos, tlab_early_rule *rule);

/* 1 when no future outcome can make the verdict PASS; then `why` (may be NULL) says why. */
int tlab_early_certain_fail(const tlab_early_rule *rule, const tlab_early_counts *c, char *why, size_t whylen);

#endif
