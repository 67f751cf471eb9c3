/*
 * main.c - tlab-bench: parse options, load the workload, run, report, choose the exit status.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "options.h"
#include "report.h"
#include "runner.h"
#include "workload.h"

/* The endpoint URL: the given one if it names a /v1/ path, else base + the workload's path. */
static char *endpoint_url(const char *url, const tlab_workload *w) {
    const char *path = tlab_workload_path(w);
    size_t n = strlen(url) + strlen(path) + 1;
    char *out = malloc(n);
    if (!out)
        return NULL;
    if (strstr(url + 7, "/v1/")) {
        snprintf(out, n, "%s", url);
    } else {
        size_t len = strlen(url);
        while (len > 7 && url[len - 1] == '/')
            len--;
        snprintf(out, n, "%.*s%s", (int)len, url, path);
    }
    return out;
}

/* FILE.json -> FILE.csv; other names get .csv appended. */
static void csv_path_for(const char *json, char *out, size_t len) {
    size_t n = strlen(json);
    if (n > 5 && strcmp(json + n - 5, ".json") == 0)
        snprintf(out, len, "%.*s.csv", (int)(n - 5), json);
    else
        snprintf(out, len, "%s.csv", json);
}

static const char *model_of(const tlab_workload *w, char *buf, size_t len) {
    const char *m = strstr(w->body, "\"model\":\"");
    if (!m)
        return "";
    m += 9;
    const char *e = strchr(m, '"');
    snprintf(buf, len, "%.*s", e ? (int)(e - m) : 0, m);
    return buf;
}

int main(int argc, char **argv) {
    tlab_options o;
    int rc = tlab_options_parse(argc, argv, &o);
    if (rc == 1)
        return 0;
    if (rc != 0)
        return 2;
    tlab_workload w;
    char err[1024];
    if (tlab_workload_load(o.workload, o.model, &w, err, sizeof err) != 0) {
        fprintf(stderr, "tlab-bench: %s\n", err);
        return 2;
    }
    char *url = endpoint_url(o.url, &w);
    if (!url) {
        tlab_workload_free(&w);
        return 3;
    }
    o.run.url = url;
    o.run.progress = o.progress < 0 ? isatty(STDOUT_FILENO) : o.progress;

    char json_path[4096], csv_path[4200];
    if (o.output) {
        snprintf(json_path, sizeof json_path, "%s", o.output);
    } else if (tlab_report_default_path(o.runs_dir, o.profile, json_path, sizeof json_path) != 0) {
        fprintf(stderr, "tlab-bench: cannot use %s: %s\n", o.runs_dir, strerror(errno));
        free(url);
        tlab_workload_free(&w);
        return 3;
    }
    csv_path_for(json_path, csv_path, sizeof csv_path);

    char date[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", &tm);
    double total = o.run.warmup_s + o.run.duration_s + o.run.cooldown_s;
    fprintf(stderr, "tlab-bench: %s %s at %s, %.0f s (%.0f warm-up + %.0f measured + %.0f cool-down)\n", w.name,
            o.run.arrival.kind == TLAB_ARRIVAL_CLOSED ? "closed loop" : tlab_arrival_name(o.run.arrival.kind), url, total,
            o.run.warmup_s, o.run.duration_s, o.run.cooldown_s);

    tlab_run_result res;
    rc = tlab_run(&o.run, &w, &res, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "tlab-bench: %s\n", err);
        tlab_run_result_free(&res);
        free(url);
        tlab_workload_free(&w);
        return 3;
    }
    tlab_report rep;
    int status = 0;
    if (tlab_report_compute(&res, &o.slos, w.prompt_tokens, &rep) != 0) {
        fprintf(stderr, "tlab-bench: out of memory while computing the report\n");
        status = 3;
    }
    tlab_timeslices slices;
    if (tlab_timeslices_compute(&res, &o.slos, o.timeslice_s, &slices) != 0) {
        fprintf(stderr, "tlab-bench: out of memory while computing the time slices\n");
        status = 3;
    }
    char model[256];
    tlab_report_meta meta = {.url = url,
                             .workload = w.name,
                             .endpoint_type = w.chat ? "openai-chat" : "openai",
                             .model = model_of(&w, model, sizeof model),
                             .profile = o.profile,
                             .cfg = &o.run,
                             .date = date,
                             .csv_path = csv_path,
                             .run = &res,
                             .slices = &slices};
    tlab_report_print(&rep, &meta, stdout);
    if (tlab_report_write_csv(&res, csv_path) != 0) {
        fprintf(stderr, "tlab-bench: cannot write %s: %s\n", csv_path, strerror(errno));
        status = 3;
    }
    if (tlab_report_write_json(&rep, &meta, json_path) != 0) {
        fprintf(stderr, "tlab-bench: cannot write %s: %s\n", json_path, strerror(errno));
        status = 3;
    } else {
        printf("Result: %s\nPer request: %s\n", json_path, csv_path);
    }
    if (!status && o.fail_on_slo && rep.n_aggregate && !rep.slo_pass)
        status = 1;
    tlab_timeslices_free(&slices);
    tlab_run_result_free(&res);
    free(url);
    tlab_workload_free(&w);
    return status;
}
