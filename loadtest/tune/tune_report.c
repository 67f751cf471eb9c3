/*
 * tune_report.c - best point, gain, table and tuned.yaml (see tune_report.h).
 */
#include "tune_report.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double num(const json_t *o, const char *k) {
    return json_number_value(json_object_get(o, k));
}

static const char *str(const json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

double tune_entry_score(const json_t *e) {
    if (strcmp(str(e, "status"), "ok") != 0)
        return 0;
    const json_t *c = json_object_get(e, "confirm");
    if (c)
        return json_is_true(json_object_get(c, "confirmed")) ? num(c, "median_rps") : 0;
    return num(e, "max_rate");
}

static void write_value(FILE *f, const json_t *v) {
    if (json_is_string(v)) {
        char *s = json_dumps(v, JSON_ENCODE_ANY); /* a JSON string is a valid YAML double-quoted scalar */
        fputs(s ? s : "\"\"", f);
        free(s);
    } else if (json_is_integer(v)) {
        fprintf(f, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        fprintf(f, "%.6g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        fputs(json_is_true(v) ? "true" : "false", f);
    } else if (json_is_array(v)) {
        fputc('[', f);
        size_t i;
        json_t *x;
        json_array_foreach((json_t *)v, i, x) {
            if (i)
                fputs(", ", f);
            write_value(f, x);
        }
        fputc(']', f);
    } else {
        fputs("null", f);
    }
}

int tune_write_profile(const char *path, const json_t *base, const json_t *knobs, const char *header) {
    static const char *const order[] = {"model", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
                                        "gpu_memory_utilization", "enable_chunked_prefill", "extra_args", NULL};
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    for (const char *line = header; line && *line;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        fprintf(f, "# %.*s\n", (int)n, line);
        line += n + (nl ? 1 : 0);
    }
    for (size_t i = 0; order[i]; i++) {
        const json_t *v = json_object_get(knobs, order[i]);
        if (!v)
            v = json_object_get(base, order[i]);
        if (!v)
            continue;
        fprintf(f, "%s: ", order[i]);
        write_value(f, v);
        fputc('\n', f);
    }
    int rc = fclose(f);
    return rc == 0 ? rename(tmp, path) : -1;
}

static json_t *summary(const json_t *e) {
    const json_t *c = json_object_get(e, "confirm"), *b = json_object_get(e, "best_probe");
    json_t *s = json_pack("{s:s, s:s, s:O, s:f, s:f}", "stage", str(e, "stage"), "id", str(e, "id"), "knobs",
                          json_object_get(e, "knobs"), "max_rate", num(e, "max_rate"), "rps", tune_entry_score(e));
    if (c) {
        json_object_set_new(s, "e2e_p95_s", json_real(num(c, "median_e2e_p95_s")));
        json_object_set_new(s, "ttft_p95_s", json_real(num(c, "median_ttft_p95_s")));
        json_object_set_new(s, "goodput", json_real(num(c, "median_goodput")));
        json_object_set_new(s, "output_tokens_per_s", json_real(num(c, "median_output_tps")));
    } else if (b) {
        json_object_set_new(s, "e2e_p95_s", json_real(num(b, "e2e_p95_s")));
        json_object_set_new(s, "ttft_p95_s", json_real(num(b, "ttft_p95_s")));
        json_object_set_new(s, "goodput", json_real(num(b, "goodput")));
        json_object_set_new(s, "output_tokens_per_s", json_real(num(b, "output_tokens_per_s")));
    }
    return s;
}

static void print_row(FILE *o, const json_t *e) {
    const json_t *s = summary(e);
    const char *st = str(e, "status");
    if (!strcmp(st, "ok"))
        fprintf(o, "%-8s %-52s %-11s %9.3g %9.3g %8.2f %8.3f %8.3g %8.0f\n", str(e, "stage"), str(e, "id"), st,
                num(e, "max_rate"), tune_entry_score(e), num(s, "e2e_p95_s"), num(s, "ttft_p95_s"), num(s, "goodput"),
                num(s, "output_tokens_per_s"));
    else
        fprintf(o, "%-8s %-52s %-11s %.80s\n", str(e, "stage"), str(e, "id"), st, str(e, "error"));
    json_decref((json_t *)s);
}

/* <dir of tuned_out>/tuned-gateway.yaml */
static int gateway_snippet_path(const char *tuned_out, char *out, size_t cap) {
    const char *slash = strrchr(tuned_out, '/');
    int n = slash ? snprintf(out, cap, "%.*s/tuned-gateway.yaml", (int)(slash - tuned_out), tuned_out)
                  : snprintf(out, cap, "tuned-gateway.yaml");
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* The gateway's side of the best point: the SLO autopilot's starting limit. The requests in
 * flight at the best rate, by Little's law, rate x E2E; with the p95 E2E (what the confirming
 * runs keep) it is an upper estimate, capped at the point's max_num_seqs. The autopilot adapts
 * from there. */
static int write_gateway_snippet(const char *path, const json_t *best, const char *header) {
    double rate = tune_entry_score(best);
    const json_t *c = json_object_get(best, "confirm"), *b = json_object_get(best, "best_probe");
    double e2e = c ? num(c, "median_e2e_p95_s") : b ? num(b, "e2e_p95_s") : 0;
    long limit = (long)(rate * e2e + 0.5);
    json_t *seqs = json_object_get(json_object_get(best, "knobs"), "max_num_seqs");
    if (json_is_integer(seqs) && limit > json_integer_value(seqs))
        limit = (long)json_integer_value(seqs);
    if (limit < 1)
        limit = 1;
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs("# ", f);
    for (const char *p = header; *p; p++) {
        fputc(*p, f);
        if (*p == '\n')
            fputs("# ", f);
    }
    fprintf(f, "\n# The gateway's side: the SLO autopilot's starting point (docs/autopilot.md). Point the gateway\n"
               "# at this file with autopilot.start_file; it adapts from there.\n"
               "initial_limit: %ld   # requests in flight at the best rate: rate x p95 E2E (Little's law), at most max_num_seqs\n"
               "rate_rps: %.4g\n"
               "e2e_p95_s: %.4g\n", limit, rate, e2e);
    return fclose(f) == 0 ? 0 : -1;
}

int tune_report_finish(tune_runfile *rf, const json_t *base_profile, const char *tuned_out, double wall_s, FILE *o) {
    const char *strategy = str(rf->doc, "strategy");
    const char *final_stage = !strcmp(strategy, "smart") ? "confirm" : "grid";
    const json_t *best = NULL, *baseline = NULL, *env = json_object_get(rf->doc, "environment");
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(rf->doc, "entries"), i, e) {
        if (!strcmp(str(e, "stage"), "baseline"))
            baseline = e;
        if (strcmp(str(e, "stage"), final_stage) == 0 && tune_entry_score(e) > 0 && (!best || tune_entry_score(e) > tune_entry_score(best)))
            best = e;
    }
    json_t *result = json_object();
    json_t *stages = json_object();
    static const char *const names[] = {"baseline", "grid", "screen", "refine", "confirm", NULL};
    for (size_t k = 0; names[k]; k++) {
        double s = tune_runfile_bench_seconds(rf, names[k]);
        if (s > 0)
            json_object_set_new(stages, names[k], json_real(s));
    }
    double bench_total = tune_runfile_bench_seconds(rf, NULL);
    json_object_set_new(result, "bench_seconds", json_real(bench_total));
    json_object_set_new(result, "bench_seconds_by_stage", stages);
    json_object_set_new(result, "wall_seconds", json_real(wall_s));
    json_object_set_new(result, "best", best ? summary(best) : json_null());
    json_object_set_new(result, "baseline", baseline ? summary(baseline) : json_null());
    double gain = best && baseline && tune_entry_score(baseline) > 0 ? tune_entry_score(best) / tune_entry_score(baseline) : 0;
    json_object_set_new(result, "gain_over_baseline", gain > 0 ? json_real(gain) : json_null());

    fprintf(o, "tlab-tune %s: workload %s, SLO %s, %s on %s, time scale %g\n", strategy, str(env, "workload"), str(env, "slo"),
            str(env, "engine"), str(env, "hardware"), num(env, "time_scale"));
    fprintf(o, "%-8s %-52s %-11s %9s %9s %8s %8s %8s %8s\n", "stage", "point", "status", "max rate", "req/s", "p95 e2e",
            "p95 ttft", "goodput", "tok/s");
    json_array_foreach(json_object_get(rf->doc, "entries"), i, e) print_row(o, e);
    fprintf(o, "benchmark time: %.0f s of workload time (%.0f s wall, worker start-ups included)\n", bench_total, wall_s);
    if (!best) {
        fprintf(o, "no point met the SLO\n");
        json_object_set_new(rf->doc, "result", result);
        return -1;
    }
    fprintf(o, "best: %s: %.3g req/s (p95 e2e %.2f s)", str(best, "id"), tune_entry_score(best),
            num(json_object_get(best, "confirm"), "median_e2e_p95_s"));
    if (gain > 0)
        fprintf(o, ", x%.2f the baseline (%s: %.3g req/s)", gain, str(baseline, "id"), tune_entry_score(baseline));
    fputc('\n', o);
    if (tuned_out && *tuned_out) {
        char header[2048];
        snprintf(header, sizeof header,
                 "tuned: written by tlab-tune (%s) from %s.\n"
                 "Best point %s: %.3g req/s (median of the confirming runs) inside %s,\n"
                 "workload %s, %s on %s, measured %s.%s",
                 strategy, rf->path, str(best, "id"), tune_entry_score(best), str(env, "slo"), str(env, "workload"),
                 str(env, "engine"), str(env, "hardware"), str(env, "date"),
                 num(env, "time_scale") != 1 ? "\nMeasured on tlab-sim with a faster clock (time_scale); rates are in the workload's time." : "");
        if (tune_write_profile(tuned_out, base_profile, json_object_get(best, "knobs"), header) != 0)
            fprintf(stderr, "tlab-tune: cannot write %s: %s\n", tuned_out, strerror(errno));
        else {
            fprintf(o, "model profile: %s (supervisor: profile: tuned)\n", tuned_out);
            json_object_set_new(result, "tuned_profile", json_string(tuned_out));
        }
        char gw_out[4096];
        if (gateway_snippet_path(tuned_out, gw_out, sizeof gw_out) == 0) {
            if (write_gateway_snippet(gw_out, best, header) != 0)
                fprintf(stderr, "tlab-tune: cannot write %s: %s\n", gw_out, strerror(errno));
            else {
                fprintf(o, "gateway start: %s (autopilot.start_file)\n", gw_out);
                json_object_set_new(result, "gateway_start_file", json_string(gw_out));
            }
        }
    }
    json_object_set_new(rf->doc, "result", result);
    return 0;
}
