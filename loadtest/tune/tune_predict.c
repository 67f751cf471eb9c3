/*
 * tune_predict.c - asks tlab-sim for the knee of a configuration (see tune_predict.h). One process
 * answers every concurrency (flag lines on stdin, JSON lines out), in well under a second.
 */
#include "tune_predict.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slo.h"

#define MAX_LEVELS 12 /* 1 .. 2048 in flight */

double tune_predict_e2e_bound(const char *slo_spec) {
    tlab_slo_set set = {0};
    char err[256];
    if (!slo_spec || tlab_slo_parse(slo_spec, &set, err, sizeof err))
        return 0;
    for (int i = 0; i < set.n; i++)
        if (set.items[i].metric == TLAB_M_E2E && set.items[i].agg != TLAB_AGG_REQUEST)
            return set.items[i].limit;
    return 0;
}

/* The worker's flags on one line; server-only flags are harmless to --predict, so all go through. */
static int flags_line(char *const *argv, char *out, size_t len) {
    size_t n = 0;
    out[0] = '\0';
    for (int i = 1; argv[i]; i++) {
        if (strpbrk(argv[i], " \t\n"))
            return -1; /* --predict-batch splits on blanks */
        int w = snprintf(out + n, len - n, "%s ", argv[i]);
        if (w < 0 || (size_t)w >= len - n)
            return -1;
        n += (size_t)w;
    }
    return 0;
}

int tune_predict(char *const *worker_argv, long prompt_tokens, long max_tokens, double e2e_bound_s, tune_prediction *out,
                 char *why, size_t whylen) {
    memset(out, 0, sizeof *out);
    char flags[3072], in_path[] = "/tmp/tlab-tune-predict-XXXXXX";
    if (!worker_argv || !worker_argv[0] || flags_line(worker_argv, flags, sizeof flags)) {
        snprintf(why, whylen, "cannot pass the worker's flags to --predict-batch");
        return -1;
    }
    int fd = mkstemp(in_path);
    FILE *in = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!in) {
        snprintf(why, whylen, "cannot create %s", in_path);
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (int k = 0, c = 1; k < MAX_LEVELS; k++, c *= 2)
        fprintf(in, "%s--concurrency %d --input-len %ld --output-len %ld --num-prompts %d\n", flags, c, prompt_tokens,
                max_tokens, 4 * c);
    fclose(in);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --predict-batch < '%s' 2>&1", worker_argv[0], in_path);
    FILE *p = popen(cmd, "r");
    if (!p) {
        unlink(in_path);
        snprintf(why, whylen, "cannot run %s", worker_argv[0]);
        return -1;
    }
    char line[4096];
    int lines = 0, rc = 0;
    for (int c = 1; fgets(line, sizeof line, p); c *= 2) {
        lines++;
        json_t *j = json_loads(line, 0, NULL);
        if (!j) {
            snprintf(why, whylen, "--predict-batch said: %.300s", line);
            rc = -1;
            break;
        }
        if (lines == 1)
            out->fits = json_is_true(json_object_get(j, "fits"));
        if (!json_is_true(json_object_get(j, "ok"))) {
            const char *e = json_string_value(json_object_get(j, "error"));
            if (lines == 1)
                snprintf(out->error, sizeof out->error, "%s", e ? e : "");
            json_decref(j);
            break; /* out of memory for this many, or not startable at all */
        }
        double e2e = json_number_value(json_object_get(j, "e2e_median_ms")) / 1e3;
        long seqs = (long)json_integer_value(json_object_get(j, "max_num_seqs"));
        if (e2e <= e2e_bound_s) {
            out->rate = json_number_value(json_object_get(j, "req_per_s"));
            out->concurrency = c;
            out->e2e_s = e2e;
        }
        json_decref(j);
        if (e2e > e2e_bound_s || c >= seqs)
            break; /* past the knee, or every sequence already runs */
    }
    pclose(p);
    unlink(in_path);
    if (!rc && lines == 0 && !out->error[0]) {
        snprintf(why, whylen, "--predict-batch gave no answer (is %s a tlab-sim?)", worker_argv[0]);
        rc = -1;
    }
    return rc;
}
