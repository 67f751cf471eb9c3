/*
 * metrics_registry.c - storage for counters, gauges and histograms. A family owns a list of
 * series keyed by their label text. Families are few (tens) and series per family are few
 * (status codes, routes), so linear lookup beats hashing here.
 */
#include "base/metrics_registry.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

typedef struct series {
    char *labels;
    double value; /* counter/gauge value, histogram sum */
    uint64_t count;
    uint64_t *bucket_counts; /* cumulative at render time; stored per bucket here */
    struct series *next;
} series;

struct tlab_metric {
    tlab_metric_kind kind;
    char *name;
    char *help;
    double *buckets;
    size_t n_buckets;
    series *first, *last;
    struct tlab_metric *next;
};

static tlab_metric *families_first, *families_last;

static int valid_metric_name(const char *name) {
    if (!name || !*name || !(isalpha((unsigned char)name[0]) || name[0] == '_' || name[0] == ':'))
        return 0;
    for (const char *p = name; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == ':'))
            return 0;
    return 1;
}

tlab_metric *tlab__metric_register(tlab_metric_kind kind, const char *name, const char *help, const double *buckets,
                                  size_t n_buckets) {
    if (!valid_metric_name(name))
        return NULL;
    for (tlab_metric *m = families_first; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m->kind == kind ? m : NULL;
    tlab_metric *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->kind = kind;
    m->name = strdup(name);
    m->help = strdup(help ? help : "");
    if (kind == TLAB_METRIC_HISTOGRAM && n_buckets > 0) {
        m->buckets = malloc(n_buckets * sizeof *m->buckets);
        if (m->buckets)
            memcpy(m->buckets, buckets, n_buckets * sizeof *m->buckets);
        m->n_buckets = n_buckets;
    }
    if (!m->name || !m->help || (m->n_buckets && !m->buckets)) {
        free(m->name);
        free(m->help);
        free(m->buckets);
        free(m);
        return NULL;
    }
    if (families_last)
        families_last->next = m;
    else
        families_first = m;
    families_last = m;
    return m;
}

static series *find_series(tlab_metric *m, const char *labels, int create) {
    if (!labels)
        labels = "";
    for (series *s = m->first; s; s = s->next)
        if (strcmp(s->labels, labels) == 0)
            return s;
    if (!create)
        return NULL;
    series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->labels = strdup(labels);
    if (m->n_buckets)
        s->bucket_counts = calloc(m->n_buckets, sizeof *s->bucket_counts);
    if (!s->labels || (m->n_buckets && !s->bucket_counts)) {
        free(s->labels);
        free(s->bucket_counts);
        free(s);
        return NULL;
    }
    if (m->last)
        m->last->next = s;
    else
        m->first = s;
    m->last = s;
    return s;
}

void tlab__metric_add(tlab_metric *m, const char *labels, double delta) {
    series *s = m ? find_series(m, labels, 1) : NULL;
    if (s)
        s->value += delta;
}

void tlab__metric_set(tlab_metric *m, const char *labels, double value) {
    series *s = m ? find_series(m, labels, 1) : NULL;
    if (s)
        s->value = value;
}

void tlab__metric_observe(tlab_metric *m, const char *labels, double value) {
    series *s = m ? find_series(m, labels, 1) : NULL;
    if (!s)
        return;
    s->value += value;
    s->count++;
    for (size_t i = 0; i < m->n_buckets; i++)
        if (value <= m->buckets[i]) {
            s->bucket_counts[i]++;
            break;
        }
}

double tlab__metric_value(const tlab_metric *m, const char *labels) {
    series *s = m ? find_series((tlab_metric *)m, labels, 0) : NULL;
    return s ? s->value : 0.0;
}

void tlab__metrics_foreach(tlab_metric_visitor visit, void *arg) {
    uint64_t cumulative_stack[64];
    for (tlab_metric *m = families_first; m; m = m->next) {
        uint64_t *cumulative = m->n_buckets <= 64 ? cumulative_stack : malloc(m->n_buckets * sizeof *cumulative);
        if (!cumulative)
            continue;
        for (series *s = m->first; s; s = s->next) {
            uint64_t running = 0;
            for (size_t i = 0; i < m->n_buckets; i++) {
                running += s->bucket_counts[i];
                cumulative[i] = running;
            }
            tlab_metric_sample sample = {.name = m->name,
                                         .help = m->help,
                                         .kind = m->kind,
                                         .labels = s->labels,
                                         .value = s->value,
                                         .count = s->count,
                                         .n_buckets = m->n_buckets,
                                         .buckets = m->buckets,
                                         .bucket_counts = cumulative};
            visit(arg, &sample);
        }
        if (cumulative != cumulative_stack)
            free(cumulative);
    }
}

void tlab__metrics_reset(void) {
    tlab_metric *m = families_first;
    while (m) {
        tlab_metric *next_m = m->next;
        series *s = m->first;
        while (s) {
            series *next_s = s->next;
            free(s->labels);
            free(s->bucket_counts);
            free(s);
            s = next_s;
        }
        free(m->name);
        free(m->help);
        free(m->buckets);
        free(m);
        m = next_m;
    }
    families_first = families_last = NULL;
}
