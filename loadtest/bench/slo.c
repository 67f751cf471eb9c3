/*
 * slo.c - SLO and duration parsing (see slo.h).
 */
#include "slo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *tlab_metric_name(tlab_metric m) {
    switch (m) {
    case TLAB_M_TTFT: return "ttft";
    case TLAB_M_TPOT: return "tpot";
    case TLAB_M_ITL: return "itl";
    case TLAB_M_E2E: return "e2e";
    case TLAB_M_ERROR_RATE: return "error_rate";
    }
    return "?";
}

int tlab_parse_duration(const char *text, double bare_unit_s, double *out_s) {
    char *end = NULL;
    if (!text || !*text)
        return -1;
    double v = strtod(text, &end);
    if (end == text || !isfinite(v) || v < 0)
        return -1;
    double unit;
    if (*end == '\0')
        unit = bare_unit_s;
    else if (strcmp(end, "us") == 0)
        unit = 1e-6;
    else if (strcmp(end, "ms") == 0)
        unit = 1e-3;
    else if (strcmp(end, "s") == 0)
        unit = 1;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        unit = 60;
    else if (strcmp(end, "h") == 0)
        unit = 3600;
    else
        return -1;
    *out_s = v * unit;
    return 0;
}

static int parse_metric(const char *name, size_t len, tlab_metric *m) {
    static const struct {
        const char *n;
        tlab_metric m;
    } names[] = {{"ttft", TLAB_M_TTFT}, {"tpot", TLAB_M_TPOT}, {"itl", TLAB_M_ITL},
                 {"e2e", TLAB_M_E2E},   {"e2el", TLAB_M_E2E},  {"error_rate", TLAB_M_ERROR_RATE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].n) == len && memcmp(names[i].n, name, len) == 0) {
            *m = names[i].m;
            return 0;
        }
    return -1;
}

static int parse_one(const char *item, tlab_slo *s, char *err, size_t errlen) {
    const char *eq = strchr(item, '=');
    if (!eq || eq == item || !eq[1]) {
        snprintf(err, errlen, "--slo: '%s' is not NAME=VALUE", item);
        return -1;
    }
    size_t nlen = (size_t)(eq - item);
    if (nlen >= sizeof s->name || strlen(eq + 1) >= sizeof s->value) {
        snprintf(err, errlen, "--slo: '%s' is too long", item);
        return -1;
    }
    memset(s, 0, sizeof *s);
    memcpy(s->name, item, nlen);
    snprintf(s->value, sizeof s->value, "%s", eq + 1);

    const char *us = strrchr(s->name, '_');
    size_t mlen = nlen;
    s->agg = TLAB_AGG_REQUEST;
    if (strcmp(s->name, "error_rate") != 0 && us) {
        const char *suffix = us + 1;
        mlen = (size_t)(us - s->name);
        if (strcmp(suffix, "mean") == 0) {
            s->agg = TLAB_AGG_MEAN;
        } else if (suffix[0] == 'p' && suffix[1]) {
            char *end = NULL;
            double p = strtod(suffix + 1, &end);
            if (*end || !(p > 0 && p < 100)) {
                snprintf(err, errlen, "--slo: '%s': percentile must be p<number between 0 and 100>", s->name);
                return -1;
            }
            s->agg = TLAB_AGG_QUANTILE;
            s->q = p / 100.0;
        } else {
            snprintf(err, errlen, "--slo: '%s': suffix must be _mean or _pNN", s->name);
            return -1;
        }
    }
    if (parse_metric(s->name, mlen, &s->metric) != 0) {
        snprintf(err, errlen, "--slo: unknown metric in '%s' (ttft, tpot, itl, e2e, error_rate)", s->name);
        return -1;
    }
    if (s->metric == TLAB_M_ERROR_RATE) {
        char *end = NULL;
        double v = strtod(s->value, &end);
        if (end == s->value || !isfinite(v) || v < 0) {
            snprintf(err, errlen, "--slo: error_rate '%s' is not a number", s->value);
            return -1;
        }
        if (strcmp(end, "%") == 0)
            v /= 100.0;
        else if (*end) {
            snprintf(err, errlen, "--slo: error_rate '%s': write 0.1%% or 0.001", s->value);
            return -1;
        }
        if (v > 1) {
            snprintf(err, errlen, "--slo: error_rate '%s' is above 100%%", s->value);
            return -1;
        }
        s->limit = v;
        return 0;
    }
    if (tlab_parse_duration(s->value, 1e-3, &s->limit) != 0) {
        snprintf(err, errlen, "--slo: '%s=%s': a time such as 5s, 500ms or 500 (ms)", s->name, s->value);
        return -1;
    }
    return 0;
}

int tlab_slo_parse(const char *spec, tlab_slo_set *out, char *err, size_t errlen) {
    if (!spec || !*spec || strcmp(spec, "none") == 0)
        return 0;
    char *copy = strdup(spec);
    if (!copy) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (out->n >= TLAB_SLO_MAX) {
            snprintf(err, errlen, "--slo: at most %d objectives", TLAB_SLO_MAX);
            rc = -1;
            break;
        }
        if (parse_one(tok, &out->items[out->n], err, errlen) != 0) {
            rc = -1;
            break;
        }
        out->n++;
    }
    free(copy);
    return rc;
}
