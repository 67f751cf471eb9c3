/*
 * tune_probe.c - one tlab-bench run per probe, its result read back and judged (see tune_probe.h).
 */
#include "tune_probe.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/process.h"
#include "slo.h"
#include "tune_worker.h"

double tune_probe_duration(double rate, long min_requests, double min_s, double max_s) {
    double d = rate > 0 ? (double)min_requests / rate : max_s;
    return d < min_s ? min_s : d > max_s ? max_s : d;
}

void tune_wilson(long k, long n, double *lo, double *hi) {
    if (n <= 0) {
        *lo = 0;
        *hi = 1;
        return;
    }
    const double z = 1.96;
    double p = (double)k / (double)n, nn = (double)n;
    double denom = 1 + z * z / nn;
    double centre = (p + z * z / (2 * nn)) / denom;
    double half = z * sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn)) / denom;
    *lo = centre - half < 0 ? 0 : centre - half;
    *hi = centre + half > 1 ? 1 : centre + half;
}

/* The SLO in the bench's clock: every time limit divided by `scale`. Also returns the share of
 * requests the latency objective lets miss (1 - q of its quantile; 0 when it has none), its limit
 * in workload seconds (0 when none), and the error-rate limit (1 when none). */
static int scale_slo(const char *spec, double scale, char *out, size_t len, double *miss_fraction, double *latency_s,
                     double *error_limit, char *err, size_t errlen) {
    tlab_slo_set set = {0};
    if (tlab_slo_parse(spec, &set, err, errlen) != 0)
        return -1;
    size_t off = 0;
    out[0] = '\0';
    *miss_fraction = 0;
    *latency_s = 0;
    *error_limit = 1;
    for (int i = 0; i < set.n; i++) {
        const tlab_slo *s = &set.items[i];
        int w;
        if (s->metric == TLAB_M_ERROR_RATE)
            w = snprintf(out + off, len - off, "%s%s=%.9g", off ? "," : "", s->name, s->limit);
        else
            w = snprintf(out + off, len - off, "%s%s=%.9gs", off ? "," : "", s->name, s->limit / scale);
        if (w < 0 || (size_t)w >= len - off) {
            snprintf(err, errlen, "SLO too long");
            return -1;
        }
        off += (size_t)w;
        if (s->agg == TLAB_AGG_QUANTILE && (s->metric == TLAB_M_E2E || s->metric == TLAB_M_TTFT) && *miss_fraction == 0) {
            *miss_fraction = 1 - s->q;
            *latency_s = s->limit;
        }
        if (s->metric == TLAB_M_ERROR_RATE)
            *error_limit = s->limit;
    }
    if (!off)
        snprintf(out, len, "none");
    return 0;
}

static double num(const json_t *o, const char *key) {
    return json_number_value(json_object_get(o, key));
}

int tune_probe_parse(const json_t *j, double scale, double miss_fraction, double error_limit, tune_probe *p) {
    if (!json_is_object(j) || !json_object_get(j, "completed")) {
        snprintf(p->error, sizeof p->error, "tlab-bench wrote no usable result");
        return -1;
    }
    const json_t *slo = json_object_get(j, "slo"), *gen = json_object_get(j, "generator");
    if (json_is_true(json_object_get(gen, "interrupted"))) {
        snprintf(p->error, sizeof p->error, "interrupted: the window was cut short, so this is no measurement");
        return -1;
    }
    p->due = (long)num(j, "num_prompts");
    p->completed = (long)num(j, "completed");
    p->failed = (long)num(j, "failed");
    p->good = (long)json_integer_value(json_object_get(slo, "good_requests"));
    /* The bench's clock runs `scale` times faster: its rates are `scale` times higher, its times shorter. */
    p->throughput = num(j, "request_throughput") / scale;
    p->goodput = num(j, "request_goodput") / scale;
    p->output_tps = num(j, "output_throughput") / scale;
    p->error_rate = num(j, "error_rate");
    p->e2e_p50_s = num(j, "median_e2el_ms") * 1e-3 * scale;
    p->e2e_p95_s = num(j, "p95_e2el_ms") * 1e-3 * scale;
    p->ttft_p95_s = num(j, "p95_ttft_ms") * 1e-3 * scale;
    p->tpot_p50_s = num(j, "median_tpot_ms") * 1e-3 * scale;
    p->bench_s = num(gen, "wall_seconds") * scale;
    p->pass = json_is_string(json_object_get(slo, "verdict")) && !strcmp(json_string_value(json_object_get(slo, "verdict")), "pass");
    p->early_stopped = json_is_object(json_object_get(j, "early_stop"));
    tune_wilson(p->due - p->good, p->due, &p->miss_lo, &p->miss_hi);
    if (p->early_stopped)
        p->certain = 1;
    else if (miss_fraction > 0)
        p->certain = p->pass ? p->miss_hi <= miss_fraction : p->miss_lo > miss_fraction || p->error_rate > error_limit;
    else
        p->certain = 1;
    p->ok = 1;
    return 0;
}

int tune_probe_run(const tune_bench_env *env, const tune_probe_plan *plan, tune_probe *p) {
    memset(p, 0, sizeof *p);
    p->plan = *plan;
    double f = env->time_scale, miss = 0, latency = 0, error_limit = 1;
    char slo[512], out[1024], log[1024], rate[64], dur[64], warm[64], cool[64], timeout[64], seed[32];
    if (scale_slo(env->slo, f, slo, sizeof slo, &miss, &latency, &error_limit, p->error, sizeof p->error) != 0)
        return -1;
    snprintf(out, sizeof out, "%s/probe.json", env->scratch_dir);
    snprintf(log, sizeof log, "%s/probe.log", env->scratch_dir);
    snprintf(rate, sizeof rate, "%.9g", plan->rate * f);
    snprintf(dur, sizeof dur, "%.6fs", plan->duration_s / f);
    snprintf(warm, sizeof warm, "%.6fs", env->warmup_s / f);
    snprintf(cool, sizeof cool, "%.6fs", env->cooldown_s / f);
    /* A request four times past the latency limit is a miss whatever else happens; waiting longer
     * only drains an overloaded worker slowly. At least 20 s, and 60 s without a latency limit. */
    double timeout_s = latency > 0 ? (4 * latency > 20 ? 4 * latency : 20) : 60;
    snprintf(timeout, sizeof timeout, "%.6fs", timeout_s / f);
    snprintf(seed, sizeof seed, "%u", plan->seed);
    const char *argv[40] = {env->bench, "--url", env->url, "--workload", env->workload, "--rate", rate, "--duration", dur,
                            "--warmup", warm, "--cooldown", cool, "--timeout", timeout, "--slo", slo, "--seed", seed,
                            "--output", out, "--progress", "never", "--profile", "tune"};
    size_t n = 25;
    if (plan->early_stop)
        argv[n++] = "--early-stop";
    argv[n] = NULL;
    unlink(out);
    char err[256];
    /* Its own process group and death with the tuner: a Ctrl-C reaches it through the tuner,
     * which asks it to stop and still reads what it measured. */
    pid_t pid = (pid_t)tlab__process_start(argv, NULL, log, TLAB_PROCESS_TRUNCATE_LOG | TLAB_PROCESS_DIE_WITH_PARENT, err, sizeof err);
    if (pid < 0) {
        snprintf(p->error, sizeof p->error, "tlab-bench: %s", err);
        return -1;
    }
    /* The bench ends by itself after warm-up, window, cool-down and at most one timeout of
     * draining; past that (and a margin) it is hung, and is killed rather than waited for. */
    double limit = tune_mono() + (env->warmup_s + plan->duration_s + env->cooldown_s + timeout_s) / f + 30;
    int st = 0, signalled = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (env->stop_flag && *env->stop_flag && !signalled) {
            kill(pid, SIGINT); /* the bench stops sending and reports what it measured */
            signalled = 1;
        }
        if (tune_mono() > limit) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            snprintf(p->error, sizeof p->error, "tlab-bench did not finish in time and was killed");
            return -1;
        }
        tune_nap(0.05);
    }
    if (!WIFEXITED(st) || (WEXITSTATUS(st) != 0 && WEXITSTATUS(st) != 1)) {
        char tail[1024];
        tune_log_tail(log, tail, sizeof tail, 4);
        snprintf(p->error, sizeof p->error, "tlab-bench failed (%s %d): %s", WIFEXITED(st) ? "exit" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), tune_last_chars(tail, 400));
        tune_clean_utf8(p->error);
        return -1;
    }
    json_error_t je;
    json_t *j = json_load_file(out, 0, &je);
    if (!j) {
        snprintf(p->error, sizeof p->error, "cannot read %.300s: %.150s", out, je.text);
        return -1;
    }
    int rc = tune_probe_parse(j, f, miss, error_limit, p);
    json_decref(j);
    return rc;
}

json_t *tune_probe_to_json(const tune_probe *p) {
    if (!p->ok)
        return json_pack("{s:f, s:f, s:s}", "rate", p->plan.rate, "duration_s", p->plan.duration_s, "error", p->error);
    return json_pack("{s:f, s:f, s:i, s:b, s:s, s:b, s:b, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
                     "s:f}",
                     "rate", p->plan.rate, "duration_s", p->plan.duration_s, "seed", (int)p->plan.seed, "early_stop_enabled",
                     p->plan.early_stop, "verdict", p->pass ? "pass" : "fail", "certain", p->certain, "early_stopped",
                     p->early_stopped, "due", (json_int_t)p->due, "completed", (json_int_t)p->completed, "failed",
                     (json_int_t)p->failed, "good", (json_int_t)p->good, "miss_ci_lo", p->miss_lo, "miss_ci_hi", p->miss_hi,
                     "throughput", p->throughput, "goodput", p->goodput, "output_tokens_per_s", p->output_tps, "error_rate",
                     p->error_rate, "e2e_p50_s", p->e2e_p50_s, "e2e_p95_s", p->e2e_p95_s, "ttft_p95_s", p->ttft_p95_s,
                     "tpot_p50_s", p->tpot_p50_s, "bench_s", p->bench_s);
}
