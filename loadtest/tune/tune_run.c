/*
 * tune_run.c - the grid and smart strategies over one worker at a time (see tune_run.h).
 */
#include "tune_run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "common/worker_cmd.h"
#include "tune_predict.h"
#include "tune_probe.h"
#include "tune_progress.h"
#include "tune_report.h"
#include "tune_runfile.h"
#include "tune_search.h"
#include "tune_worker.h"
#include "common/yaml_json.h"
#include "workload.h"

typedef struct {
    const tune_options *o;
    tune_config *cfg;
    tune_runfile rf;
    tune_progress prog;
    tune_bench_env benv;
    tlab__worker_options sup;
    json_t *base_profile;
    char dir[1100];           /* <run>.d: worker logs and the bench's scratch files */
    char url[64];
    volatile int *stop;
    int fatal;                /* the record cannot be written: stop, exit 3 */
    json_t *entry;            /* the entry being measured */
    tune_worker worker;
    int worker_died;
    long wl_prompt, wl_output; /* the workload's lengths, for tlab-sim's prediction; 0 = unknown */
} tuner;

/* --- probes -------------------------------------------------------------------------------- */

static int probe_cb(void *ctx, const tune_probe_plan *plan, const char *phase, tune_probe *out) {
    tuner *t = ctx;
    if (*t->stop || t->fatal) {
        memset(out, 0, sizeof *out);
        out->plan = *plan;
        snprintf(out->error, sizeof out->error, "interrupted");
        return -1;
    }
    tune_progress_probe(&t->prog, phase, plan->rate, plan->duration_s);
    int rc = tune_probe_run(&t->benv, plan, out);
    if (!tune_worker_alive(&t->worker)) {
        t->worker_died = 1;
        out->ok = 0;
        snprintf(out->error, sizeof out->error, "the worker died during the probe: %s", tune_last_chars(t->worker.error, 400));
        rc = -1;
    }
    tune_clean_utf8(out->error);
    return *t->stop || t->fatal ? -1 : rc;
}

static void on_probe(void *ctx, const tune_probe *p, const char *phase) {
    tuner *t = ctx;
    if (*t->stop && !p->ok)
        return; /* a probe cut by the interruption is not a measurement */
    json_t *j = tune_probe_to_json(p);
    json_object_set_new(j, "phase", json_string(phase));
    json_array_append_new(json_object_get(t->entry, "probes"), j);
    tune_progress_result(&t->prog, phase, p);
    if (tune_runfile_save(&t->rf) != 0 && !t->fatal) {
        /* Hours of measurement nobody could resume: stop now. */
        char msg[1200];
        snprintf(msg, sizeof msg, "cannot write the run record %s: %s", t->rf.path, strerror(errno));
        tune_progress_say(&t->prog, msg);
        t->fatal = 1;
    }
}

/* --- one point ----------------------------------------------------------------------------- */

/* An entry that ran out of memory with knobs that `knobs` meets or exceeds, or NULL. */
static const json_t *oom_ancestor(tuner *t, const json_t *knobs) {
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(t->rf.doc, "entries"), i, e) {
        const char *st = json_string_value(json_object_get(e, "status"));
        if (st && !strcmp(st, "oom") && tune_needs_more_memory(json_object_get(e, "knobs"), knobs))
            return e;
    }
    return NULL;
}

static void set_status(json_t *e, const char *status, const char *error) {
    json_object_set_new(e, "status", json_string(status));
    if (error)
        json_object_set_new(e, "error", json_string(error));
}

/* Confirming runs at `rate`; a majority must pass, else the rate backs off by the tolerance
 * (twice at most). Fills entry.confirm. 1 confirmed, 0 not even after backing off, -1 when
 * interrupted or a run could not be made. */
static int confirm(tuner *t, json_t *e, double rate, long runs) {
    const tune_search_params *s = &t->cfg->search;
    for (int attempt = 0; attempt < 3; attempt++) {
        double rps[100], p95[100], ttft[100], good[100], tps[100];
        long passes = 0;
        for (long i = 0; i < runs && i < 100; i++) {
            tune_probe_plan plan = {.rate = rate,
                                    .duration_s = tune_probe_duration(rate, s->confirm_requests, s->min_duration_s, s->max_duration_s),
                                    .seed = 1000u + (unsigned)(attempt * 100 + i)};
            tune_probe p;
            if (probe_cb(t, &plan, "confirm", &p) != 0) {
                on_probe(t, &p, "confirm");
                return -1;
            }
            on_probe(t, &p, "confirm");
            passes += p.pass;
            rps[i] = p.throughput;
            p95[i] = p.e2e_p95_s;
            ttft[i] = p.ttft_p95_s;
            good[i] = p.goodput;
            tps[i] = p.output_tps;
        }
        size_t n = (size_t)(runs < 100 ? runs : 100);
        int majority = passes * 2 > runs;
        json_object_set_new(e, "confirm",
                            json_pack("{s:f, s:I, s:I, s:b, s:f, s:f, s:f, s:f, s:f}", "rate", rate, "runs", (json_int_t)runs,
                                      "passes", (json_int_t)passes, "confirmed", majority, "median_rps", tune_median(rps, n),
                                      "median_e2e_p95_s", tune_median(p95, n), "median_ttft_p95_s", tune_median(ttft, n),
                                      "median_goodput", tune_median(good, n), "median_output_tps", tune_median(tps, n)));
        if (majority)
            return 1;
        rate *= 1 - s->tolerance;
    }
    return 0;
}

/* tlab-sim says how well it kept its clock; a lagging simulator makes every figure suspect,
 * so the record keeps it for each point. */
static void record_sim_health(tuner *t, json_t *e) {
    if (t->sup.engine != TLAB_WORKER_ENGINE_SIM || t->worker.pid <= 0)
        return;
    double lag = tune_worker_metric(&t->worker, "tlab_sim:step_lag_max_seconds");
    if (!isnan(lag))
        json_object_set_new(e, "sim_step_lag_max_s", json_real(lag * t->cfg->time_scale));
}

static void stop_worker(tuner *t) {
    if (t->entry)
        record_sim_health(t, t->entry);
    tune_worker_stop(&t->worker, 15);
}

/*
 * With a tlab-sim worker and no bracket known yet, asks tlab-sim where the knee should be and starts
 * the search there (recorded in the entry as "prediction"). Returns the search to run: *seeded, or
 * search itself when there is no prediction.
 */
static const tune_search_cfg *predict_start(tuner *t, char *const *argv, const tune_search_cfg *search,
                                            tune_search_cfg *seeded) {
    double bound = tune_predict_e2e_bound(t->cfg->slo);
    if (t->sup.engine != TLAB_WORKER_ENGINE_SIM || bound <= 0 || t->wl_prompt <= 0 || t->wl_output <= 0)
        return search;
    tune_prediction pr;
    char why[512];
    if (tune_predict(argv, t->wl_prompt, t->wl_output, bound, &pr, why, sizeof why) != 0) {
        json_object_set_new(t->entry, "prediction", json_pack("{s:s}", "error", why));
        return search;
    }
    json_object_set_new(t->entry, "prediction", json_pack("{s:f, s:i, s:f, s:b, s:s}", "rate", pr.rate, "concurrency",
                                                          pr.concurrency, "e2e_s", pr.e2e_s, "fits", pr.fits, "error",
                                                          pr.error));
    if (pr.rate <= 0)
        return search;
    *seeded = *search;
    seeded->hint_lo = pr.rate; /* the bracket grows or shrinks from here as the probes say */
    return seeded;
}

/*
 * Measures one point in one stage: skipped if a point it dominates in memory ran out of it,
 * else the worker is started, `search` (NULL: none; `rate` is taken as the answer) finds the
 * rate, and `confirm_runs` confirm it. Returns the entry, or NULL when interrupted.
 */
static json_t *measure(tuner *t, const char *stage, size_t index, const char *id, const json_t *knobs,
                       const tune_search_cfg *search, double rate, long confirm_runs) {
    json_t *e = tune_runfile_find(&t->rf, stage, id);
    tune_progress_point(&t->prog, index, id);
    if (e && tune_entry_finished(e)) {
        tune_progress_point_done(&t->prog, "already measured (resumed run)");
        return e;
    }
    e = t->entry = tune_runfile_begin(&t->rf, stage, id, knobs);
    char msg[2048];
    const json_t *oom = oom_ancestor(t, knobs);
    if (oom) {
        snprintf(msg, sizeof msg, "skipped: needs at least as much GPU memory as %s, which ran out of it",
                 json_string_value(json_object_get(oom, "id")));
        set_status(e, "skipped", msg);
        tune_runfile_save(&t->rf);
        tune_progress_point_done(&t->prog, msg);
        return e;
    }
    json_t *merged = tlab__worker_merge_knobs(t->base_profile, knobs);
    char **argv = tlab__worker_build_argv(&t->sup, merged, msg, sizeof msg);
    json_decref(merged);
    if (!argv) {
        set_status(e, "spawn_failed", msg);
        tune_runfile_save(&t->rf);
        return e;
    }
    char cmd[4096], log[1300];
    tlab__worker_join_argv(argv, cmd, sizeof cmd);
    snprintf(log, sizeof log, "%s/%s_%zu.log", t->dir, stage, index + 1);
    json_object_set_new(e, "worker_command", json_string(cmd));
    json_object_set_new(e, "worker_log", json_string(log));
    tune_search_cfg seeded;
    if (search && search->hint_lo <= 0)
        search = predict_start(t, argv, search, &seeded);
    char *env[] = {NULL};
    double t0 = tune_progress_elapsed(&t->prog);
    tune_progress_note(&t->prog, "starting the worker");
    tune_worker_status ws = tune_worker_start(&t->worker, argv, env, t->sup.port, log, t->cfg->search.startup_timeout_s, t->stop);
    tlab__worker_free_argv(argv);
    if (ws == TUNE_WORKER_INTERRUPTED)
        return NULL;
    /* For a failure, how long it took to notice: a worker that dies while starting must be seen at once. */
    json_object_set_new(e, "startup_s", json_real(tune_progress_elapsed(&t->prog) - t0));
    if (ws != TUNE_WORKER_READY) {
        set_status(e, tune_worker_status_name(ws), t->worker.error);
        tune_runfile_save(&t->rf);
        snprintf(msg, sizeof msg, "%s: %.300s", tune_worker_status_name(ws), t->worker.error);
        tune_progress_point_done(&t->prog, msg);
        return e;
    }
    json_object_set_new(e, "worker_pid", json_integer(t->worker.pid));
    tune_runfile_save(&t->rf);
    t->worker_died = 0;
    tune_search_result res = {.best_rate = rate};
    if (search) {
        tune_search(search, probe_cb, t, on_probe, &res);
        if (res.aborted) {
            stop_worker(t);
            if (*t->stop || t->fatal)
                return NULL;
            const json_t *last = json_array_get(json_object_get(e, "probes"), json_array_size(json_object_get(e, "probes")) - 1);
            set_status(e, t->worker_died ? "crash" : "error", json_string_value(json_object_get(last, "error")));
            tune_runfile_save(&t->rf);
            tune_progress_point_done(&t->prog, t->worker_died ? "the worker crashed" : "a probe failed");
            return e;
        }
        json_object_set_new(e, "max_rate", json_real(res.best_rate));
        json_object_set_new(e, "fail_rate", json_real(res.fail_rate));
        json_object_set_new(e, "hit_max_rate", json_boolean(res.hit_max));
        if (res.best_rate > 0)
            json_object_set_new(e, "best_probe", tune_probe_to_json(&res.best_probe));
    } else {
        json_object_set_new(e, "max_rate", json_real(rate));
    }
    if (res.infeasible || res.best_rate <= 0) {
        stop_worker(t);
        set_status(e, "infeasible", "the SLO fails even at the lowest rate (search.min_rate)");
        tune_runfile_save(&t->rf);
        tune_progress_point_done(&t->prog, "infeasible: the SLO fails even at the lowest rate");
        return e;
    }
    int confirmed = confirm_runs > 0 ? confirm(t, e, res.best_rate, confirm_runs) : 1;
    if (confirmed < 0) {
        stop_worker(t);
        if (*t->stop || t->fatal)
            return NULL;
        set_status(e, t->worker_died ? "crash" : "error", "a confirming run failed");
        tune_runfile_save(&t->rf);
        return e;
    }
    stop_worker(t);
    if (!confirmed) {
        set_status(e, "unconfirmed", "most confirming runs missed the SLO, even after backing off twice");
        tune_runfile_save(&t->rf);
        tune_progress_point_done(&t->prog, "unconfirmed: most confirming runs missed the SLO");
        return e;
    }
    set_status(e, "ok", NULL);
    tune_runfile_save(&t->rf);
    snprintf(msg, sizeof msg, "max %.3g req/s%s", tune_entry_score(e), res.hit_max ? " (search.max_rate reached)" : "");
    tune_progress_point_done(&t->prog, msg);
    return e;
}

/* --- strategies ---------------------------------------------------------------------------- */

static tune_search_cfg full_search(const tune_config *c) {
    const tune_search_params *s = &c->search;
    return (tune_search_cfg){.start_rate = s->start_rate, .min_rate = s->min_rate, .max_rate = s->max_rate, .growth = s->growth,
                             .tolerance = s->tolerance, .min_requests = s->min_requests, .min_duration_s = s->min_duration_s,
                             .max_duration_s = s->max_duration_s, .retry_uncertain = 1};
}

static int run_grid(tuner *t, tune_point *pts, size_t n) {
    tune_search_cfg sc = full_search(t->cfg);
    tune_progress_stage(&t->prog, "grid", n);
    for (size_t i = 0; i < n; i++)
        if (!measure(t, "grid", i, pts[i].id, pts[i].knobs, &sc, 0, t->cfg->search.confirm_runs))
            return -1;
    return 0;
}

typedef struct {
    size_t index;
    double score;
    const json_t *entry;
} ranked;

static int by_score_desc(const void *a, const void *b) {
    double x = ((const ranked *)a)->score, y = ((const ranked *)b)->score;
    return (x < y) - (x > y);
}

static int run_smart(tuner *t, tune_point *pts, size_t n) {
    const tune_config *c = t->cfg;
    ranked *rk = calloc(n ? n : 1, sizeof *rk);
    if (!rk)
        return -1;
    int rc = -1;
    /* 1. Screen every point: short probes, early stop, coarse tolerance, warm start. */
    tune_search_cfg sc = full_search(c);
    sc.min_requests = c->smart.screen_requests;
    sc.min_duration_s = c->search.min_duration_s / 3 > 5 ? c->search.min_duration_s / 3 : 5;
    sc.tolerance = c->smart.screen_tolerance;
    sc.early_stop = 1;
    sc.retry_uncertain = 0;
    tune_progress_stage(&t->prog, "screen", n);
    double last_best = 0;
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        sc.hint_lo = last_best;
        const json_t *e = measure(t, "screen", i, pts[i].id, pts[i].knobs, &sc, 0, 0);
        if (!e)
            goto out;
        double score = tune_entry_score(e);
        if (score > 0) {
            last_best = json_number_value(json_object_get(e, "max_rate"));
            rk[nr++] = (ranked){i, score, e};
        }
    }
    qsort(rk, nr, sizeof *rk, by_score_desc);
    /* 2. Refine the best: full-size probes inside the screened bracket. */
    size_t keep = (size_t)ceil(c->smart.keep_fraction * (double)n);
    keep = keep < 2 ? 2 : keep;
    keep = keep > nr ? nr : keep;
    tune_search_cfg fc = full_search(c);
    fc.early_stop = 1;
    tune_progress_stage(&t->prog, "refine", keep);
    for (size_t k = 0; k < keep; k++) {
        size_t i = rk[k].index;
        double lo = json_number_value(json_object_get(rk[k].entry, "max_rate"));
        double hi = json_number_value(json_object_get(rk[k].entry, "fail_rate"));
        fc.hint_lo = lo * (1 - c->smart.screen_tolerance);
        fc.hint_hi = hi > 0 ? hi : lo * (1 + c->smart.screen_tolerance);
        const json_t *e = measure(t, "refine", k, pts[i].id, pts[i].knobs, &fc, 0, 0);
        if (!e)
            goto out;
        rk[k].score = tune_entry_score(e);
        rk[k].entry = e;
    }
    qsort(rk, keep, sizeof *rk, by_score_desc);
    /* 3. Confirm the finalists at their refined rate. */
    size_t fin = (size_t)c->smart.finalists < keep ? (size_t)c->smart.finalists : keep;
    tune_progress_stage(&t->prog, "confirm", fin);
    for (size_t k = 0; k < fin; k++) {
        if (rk[k].score <= 0)
            continue;
        size_t i = rk[k].index;
        double rate = json_number_value(json_object_get(rk[k].entry, "max_rate"));
        if (!measure(t, "confirm", k, pts[i].id, pts[i].knobs, NULL, rate, c->search.confirm_runs))
            goto out;
    }
    rc = 0;
out:
    free(rk);
    return rc;
}

/* --- set-up -------------------------------------------------------------------------------- */

/* First line of `cmd`'s output, or "unknown". */
static void first_line(const char *cmd, char *out, size_t len) {
    snprintf(out, len, "unknown");
    FILE *p = popen(cmd, "r");
    if (!p)
        return;
    if (fgets(out, (int)len, p))
        out[strcspn(out, "\r\n")] = '\0';
    else
        snprintf(out, len, "unknown");
    pclose(p);
}

/* `version`: the worker's own --version line, read once by the start-up check. */
static json_t *environment(const tuner *t, const char *engine_why, const char *version) {
    const tune_options *o = t->o;
    int vllm = t->sup.engine == TLAB_WORKER_ENGINE_VLLM;
    char gpu[256] = "none (tlab-sim)", hw[300] = "rtx3050-4gb (tlab-sim default)";
    if (vllm) {
        first_line("nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null", gpu, sizeof gpu);
        snprintf(hw, sizeof hw, "%s", gpu);
    } else {
        size_t i;
        json_t *a;
        json_array_foreach(t->cfg->sim_args, i, a) if (json_is_string(a) && !strcmp(json_string_value(a), "--hardware"))
            snprintf(hw, sizeof hw, "%s", json_string_value(json_array_get(t->cfg->sim_args, i + 1)));
    }
    struct utsname u;
    uname(&u);
    time_t now = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:s, s:{s:s, s:s, s:i}, s:s}", "date", date, "tlab_version",
                     TLAB_VERSION, "engine", vllm ? "vllm" : "sim", "engine_choice", engine_why, "engine_version", version,
                     "hardware", hw, "gpu", gpu, "time_scale", t->cfg->time_scale, "workload", t->cfg->workload, "slo",
                     t->cfg->slo, "host", "system", u.sysname, "kernel", u.release, "cpus", (int)sysconf(_SC_NPROCESSORS_ONLN),
                     "command_line", o->command_line ? o->command_line : "");
}

static int setup_worker_options(tuner *t, char *why, size_t whylen) {
    const tune_config *c = t->cfg;
    tlab__worker_options *s = &t->sup;
    memset(s, 0, sizeof *s);
    s->engine = !strcmp(c->engine, "vllm") ? TLAB_WORKER_ENGINE_VLLM : !strcmp(c->engine, "sim") ? TLAB_WORKER_ENGINE_SIM : TLAB_WORKER_ENGINE_AUTO;
    s->sim_command = (char *)t->o->sim_cmd;
    s->vllm_command = (char *)t->o->vllm_cmd;
    tlab__worker_resolve_engine(s, why, whylen);
    if (s->engine == TLAB_WORKER_ENGINE_VLLM && c->time_scale != 1) {
        snprintf(why, whylen, "time_scale applies to tlab-sim only; real vLLM runs at 1");
        return -1;
    }
    s->host = (char *)"127.0.0.1";
    s->port = t->o->port ? t->o->port : tune_free_port();
    s->extra_args = s->engine == TLAB_WORKER_ENGINE_VLLM ? json_copy(c->vllm_args) : json_array();
    s->sim_args = json_copy(c->sim_args);
    if (s->engine == TLAB_WORKER_ENGINE_SIM) {
        char ts[32];
        snprintf(ts, sizeof ts, "%g", c->time_scale);
        json_array_append_new(s->sim_args, json_string("--time-scale"));
        json_array_append_new(s->sim_args, json_string(ts));
        if (t->o->config_dir) {
            json_array_append_new(s->sim_args, json_string("--config-dir"));
            json_array_append_new(s->sim_args, json_string(t->o->config_dir));
        }
    }
    snprintf(t->url, sizeof t->url, "http://127.0.0.1:%d", s->port);
    return s->port > 0 ? 0 : -1;
}

static json_t *load_base_profile(const tune_config *c, char *err, size_t errlen) {
    char path[2048];
    int is_path = strchr(c->profile, '/') || strstr(c->profile, ".yaml");
    snprintf(path, sizeof path, is_path ? "%s" : "%s/%s.yaml", is_path ? c->profile : c->profiles_dir, c->profile);
    json_t *p = tlab__yaml_load_file(path, err, errlen);
    if (!p)
        return NULL;
    char msg[256];
    if (!json_is_object(p) || tlab__worker_check_knobs(p, msg, sizeof msg) != 0 || !json_is_string(json_object_get(p, "model"))) {
        snprintf(err, errlen, "model profile %.1700s: %s", path, json_is_object(p) ? msg : "must be a mapping with a model");
        json_decref(p);
        return NULL;
    }
    return p;
}

int tune_run(const tune_options *o, volatile int *stop) {
    tuner t = {.o = o, .cfg = o->cfg, .stop = stop};
    char err[2048], why[512];
    int status = 3;
    size_t n = 0;
    tune_point *pts = NULL;
    t.base_profile = load_base_profile(o->cfg, err, sizeof err);
    if (!t.base_profile) {
        fprintf(stderr, "tlab-tune: %s\n", err);
        return 2;
    }
    if (setup_worker_options(&t, why, sizeof why) != 0) {
        fprintf(stderr, "tlab-tune: %s\n", why);
        status = 2;
        goto out;
    }
    /* The programs must be there before hours of work depend on them. */
    char cmd[1200], line[256];
    int vllm = t.sup.engine == TLAB_WORKER_ENGINE_VLLM;
    snprintf(cmd, sizeof cmd, "'%s' --version 2>/dev/null", o->bench_cmd);
    first_line(cmd, line, sizeof line);
    if (strncmp(line, "tlab-bench", 10) != 0) {
        fprintf(stderr, "tlab-tune: cannot run tlab-bench as '%s' (give --bench PATH)\n", o->bench_cmd);
        goto out;
    }
    snprintf(cmd, sizeof cmd, "'%s' --version 2>&1", vllm ? o->vllm_cmd : o->sim_cmd);
    first_line(cmd, line, sizeof line);
    if (!vllm ? strncmp(line, "tlab-sim", 8) != 0 : (!strcmp(line, "unknown") || strstr(line, "not found") != NULL)) {
        fprintf(stderr, "tlab-tune: cannot run the worker as '%s' (give --%s PATH)\n", vllm ? o->vllm_cmd : o->sim_cmd,
                vllm ? "vllm" : "sim");
        goto out;
    }
    pts = tune_points_expand(o->cfg, &n);
    if (!pts)
        goto out;
    json_t *cfg_json = tune_config_to_json(o->cfg);
    json_object_set_new(cfg_json, "baseline", json_boolean(o->baseline));
    int rc = o->resume ? tune_runfile_resume(&t.rf, o->run_path, o->strategy, cfg_json, err, sizeof err)
                       : tune_runfile_create(&t.rf, o->run_path, o->strategy, json_incref(cfg_json), environment(&t, why, line), err,
                                             sizeof err);
    json_decref(cfg_json);
    if (rc != 0) {
        fprintf(stderr, "tlab-tune: %s\n", err);
        status = o->resume ? 2 : 3;
        goto out;
    }
    snprintf(t.dir, sizeof t.dir, "%.*s.d", (int)(strlen(o->run_path) > 5 ? strlen(o->run_path) - 5 : strlen(o->run_path)),
             o->run_path);
    mkdir(t.dir, 0755);
    t.benv = (tune_bench_env){.bench = o->bench_cmd, .url = t.url, .workload = o->cfg->workload, .slo = o->cfg->slo,
                              .time_scale = o->cfg->time_scale, .warmup_s = o->cfg->search.warmup_s,
                              .cooldown_s = o->cfg->search.cooldown_s, .scratch_dir = t.dir, .stop_flag = stop};
    tlab_workload wl;
    if (tlab_workload_load(o->cfg->workload, NULL, &wl, err, sizeof err) == 0) { /* else tlab-bench will say why */
        t.wl_prompt = wl.prompt_tokens;
        t.wl_output = wl.max_tokens;
        tlab_workload_free(&wl);
    }
    tune_progress_init(&t.prog, o->tty);
    snprintf(err, sizeof err, "%s %s: %zu points, %s; record %s", o->resume ? "resuming" : "starting", o->strategy, n, why,
             o->run_path);
    tune_progress_say(&t.prog, err);
    if (o->baseline) {
        tune_search_cfg sc = full_search(o->cfg);
        tune_progress_stage(&t.prog, "baseline", 1);
        json_t *none = json_object();
        char id[300];
        snprintf(id, sizeof id, "baseline (%s as it is)", o->cfg->profile);
        const json_t *b = measure(&t, "baseline", 0, id, none, &sc, 0, o->cfg->search.confirm_runs);
        json_decref(none);
        if (!b)
            goto interrupted;
    }
    if ((!strcmp(o->strategy, "smart") ? run_smart(&t, pts, n) : run_grid(&t, pts, n)) != 0)
        goto interrupted;
    json_object_set_new(t.rf.doc, "status", json_string("done"));
    status = tune_report_finish(&t.rf, t.base_profile, o->tuned_out, tune_progress_elapsed(&t.prog), stdout) == 0 ? 0 : 1;
    if (tune_runfile_save(&t.rf) != 0) {
        fprintf(stderr, "tlab-tune: cannot write %s: %s\n", o->run_path, strerror(errno));
        status = 3;
    }
    goto out;
interrupted:
    stop_worker(&t);
    if (t.fatal) /* the record could not be written: already said */
        goto out;
    if (!*stop) {
        fprintf(stderr, "tlab-tune: stopped: out of memory\n");
        goto out;
    }
    json_object_set_new(t.rf.doc, "status", json_string("interrupted"));
    tune_runfile_save(&t.rf);
    tune_progress_say(&t.prog, "interrupted; continue with --resume");
    fprintf(stderr, "tlab-tune: resume with: --resume %s\n", o->run_path);
    status = 130;
out:
    stop_worker(&t);
    tune_points_free(pts, n);
    tune_runfile_close(&t.rf);
    json_decref(t.base_profile);
    json_decref(t.sup.extra_args);
    json_decref(t.sup.sim_args);
    return status;
}
