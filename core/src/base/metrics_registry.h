/*
 * metrics_registry.h - the small registry plugins and the core write metrics into. It only
 * stores numbers; rendering (Prometheus text) belongs to the metrics plugin, which walks the
 * registry with tlab__metrics_foreach. Families keep registration order, series keep first-use
 * order, so output is stable between scrapes.
 */
#ifndef TLAB_METRICS_REGISTRY_H
#define TLAB_METRICS_REGISTRY_H

#include "tlab/plugin.h"

/* Registers a family or returns the existing one of the same name and kind (NULL when the kind
 * differs, the name is not a valid Prometheus metric name, or allocation fails). */
tlab_metric *tlab__metric_register(tlab_metric_kind kind, const char *name, const char *help, const double *buckets,
                                  size_t n_buckets);
void tlab__metric_add(tlab_metric *m, const char *labels, double delta);
void tlab__metric_set(tlab_metric *m, const char *labels, double value);
void tlab__metric_observe(tlab_metric *m, const char *labels, double value);
/* Current value (sum for histograms) of one series, 0 when absent. For tests and policies. */
double tlab__metric_value(const tlab_metric *m, const char *labels);
void tlab__metrics_foreach(tlab_metric_visitor visit, void *arg);
/* Frees every family; pointers handed out before become invalid. */
void tlab__metrics_reset(void);

#endif
