/*
 * options.c - command-line parsing for tlab-bench (see options.h; the help text is the reference
 * for every option, and loadtest/README.md explains them at length).
 */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#ifndef TLAB_VERSION
#define TLAB_VERSION "0"
#endif

static void usage(FILE *o) {
    fputs("usage: tlab-bench [options]\n"
          "Open-loop load generator for OpenAI-compatible LLM servers (vLLM, tlab-sim, tlab-gateway).\n"
          "\n"
          "Target and workload:\n"
          "  --url URL              server base URL, or a full endpoint URL (default http://127.0.0.1:8001,\n"
          "                         the gateway; vLLM itself is :8000). The workload's path is appended\n"
          "                         unless the URL already has a /v1/ path\n"
          "  --workload NAME|FILE   configs/workloads/NAME.yaml or a .yaml path (default fixed_200_200)\n"
          "  --model NAME           model name sent in requests (default: the workload's)\n"
          "\n"
          "Arrivals (open loop: a request is sent when due, whatever is still in flight):\n"
          "  --arrival KIND         constant | poisson | ramp | step | closed (default poisson)\n"
          "  --rate R               requests/s (ramp: starting rate; step: base rate) (default 1)\n"
          "  --burstiness K         gamma shape of the gaps: 1 = Poisson, < 1 burstier, > 1 smoother\n"
          "                         (default 1 for poisson; ramp and step use even gaps unless given)\n"
          "  --rate-end R           ramp: final rate (default 2 x --rate)\n"
          "  --ramp-time T          ramp: time to go from --rate to --rate-end (default: the whole run)\n"
          "  --step-factor F        step: rate multiplier during a burst (default 3)\n"
          "  --step-length T        step: burst length (default 20s)\n"
          "  --step-period T        step: one burst at the end of every period (default 60s)\n"
          "  --concurrency N        closed loop with N requests always in flight (implies --arrival closed;\n"
          "                         latency then counts from the actual send, for comparison only)\n"
          "\n"
          "Timing (T: 90, 90s, 1500ms, 10m; a bare number is seconds):\n"
          "  --duration T           measured window (default 10m, the headline measurement)\n"
          "  --warmup T             sent but not counted, before the window (default 30s)\n"
          "  --cooldown T           sent but not counted, after the window (default 10s)\n"
          "  --quick                short run: --duration 60s --warmup 10s --cooldown 5s (explicit values win)\n"
          "  --timeout T            per-request limit, from the send (default 120s)\n"
          "  --max-inflight N       cap on requests in flight; a request due while at the cap is dropped and\n"
          "                         reported as generator lag (default 10000, lowered to fit the fd limit)\n"
          "  --seed N               seed for the arrival schedule (default 0)\n"
          "  --retry-429            send a request answered 429, or 503 with Retry-After, again after its\n"
          "                         retry-after-ms, else Retry-After, as the openai SDKs do (open loop: on\n"
          "                         its own timer; latencies still count from the\n"
          "                         original due time); the JSON's `retry` counts who got in at which retry\n"
          "  --retry-max N          retries per request with --retry-429, 1..255 (default 3)\n"
          "  --retry-default T      wait before retrying a 429 without Retry-After (default 1s)\n"
          "\n"
          "Objectives:\n"
          "  --slo LIST             e.g. e2e_p95=5s,error_rate=0.1%,ttft=500ms (default e2e_p95=5s,error_rate=0.1%,\n"
          "                         the project's reference SLO; \"none\" for none). METRIC is ttft, tpot, itl, e2e;\n"
          "                         METRIC_mean or METRIC_pNN judge the window; plain METRIC is per request\n"
          "                         and only shapes goodput. Times: us, ms, s; a bare number is ms\n"
          "  --fail-on-slo          exit 1 when the SLO verdict is FAIL\n"
          "  --early-stop           open loop: stop as soon as the verdict can only be FAIL (the e2e/ttft quantile\n"
          "                         or error_rate objective is already broken for the whole window, whatever\n"
          "                         the rest does); the report says when and why. Used by tlab-tune's probes\n"
          "\n"
          "Output:\n"
          "  --profile NAME         label of the run, used in the file name (default \"default\")\n"
          "  --output FILE          JSON result path (default experiments/runs/YYYY-MM-DD_runXX_<profile>.json);\n"
          "                         the per-request CSV goes beside it with .csv\n"
          "  --runs-dir DIR         folder for default result paths (default experiments/runs)\n"
          "  --progress WHEN        auto | always | never: the live line (default auto: when stdout is a terminal)\n"
          "  --timeslice T          width of the JSON's per-time-slice counts (offered, admitted, good, rejected,\n"
          "                         errors, p95 e2e), at least 1ms (default 1s); 0 leaves them out\n"
          "  --help, --version\n"
          "\n"
          "Exit status: 0 done; 1 SLO verdict FAIL with --fail-on-slo; 2 bad usage or workload; 3 runtime failure.\n",
          o);
}

static int bad(const char *fmt, const char *a, const char *b) {
    fputs("tlab-bench: ", stderr);
    fprintf(stderr, fmt, a, b);
    fputs("\nTry 'tlab-bench --help'.\n", stderr);
    return 2;
}

static int num(const char *opt, const char *v, double lo, double *out) {
    char *end = NULL;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *end || errno || !isfinite(x) || x < lo)
        return bad("%s: '%s' is not a valid number", opt, v);
    *out = x;
    return 0;
}

static int integer(const char *opt, const char *v, long lo, long *out) {
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo)
        return bad("%s: '%s' is not a valid integer", opt, v);
    *out = x;
    return 0;
}

static int duration(const char *opt, const char *v, double *out) {
    if (tlab_parse_duration(v, 1.0, out) != 0)
        return bad("%s: '%s' is not a duration (e.g. 90, 90s, 1500ms, 10m)", opt, v);
    return 0;
}

enum {
    O_URL = 256, O_WORKLOAD, O_MODEL, O_ARRIVAL, O_RATE, O_BURST, O_RATE_END, O_RAMP_TIME, O_STEP_FACTOR, O_STEP_LEN,
    O_STEP_PERIOD, O_CONC, O_DURATION, O_WARMUP, O_COOLDOWN, O_QUICK, O_TIMEOUT, O_MAXIN, O_SEED, O_SLO, O_FAIL_SLO, O_EARLY,
    O_PROFILE, O_OUTPUT, O_RUNS_DIR, O_PROGRESS, O_HELP, O_VERSION, O_RETRY, O_RETRY_MAX, O_RETRY_DEFAULT, O_SLICE
};

int tlab_options_parse(int argc, char **argv, tlab_options *o) {
    static const struct option longopts[] = {
        {"url", 1, 0, O_URL},           {"workload", 1, 0, O_WORKLOAD},     {"model", 1, 0, O_MODEL},
        {"arrival", 1, 0, O_ARRIVAL},   {"rate", 1, 0, O_RATE},             {"burstiness", 1, 0, O_BURST},
        {"rate-end", 1, 0, O_RATE_END}, {"ramp-time", 1, 0, O_RAMP_TIME},   {"step-factor", 1, 0, O_STEP_FACTOR},
        {"step-length", 1, 0, O_STEP_LEN}, {"step-period", 1, 0, O_STEP_PERIOD}, {"concurrency", 1, 0, O_CONC},
        {"duration", 1, 0, O_DURATION}, {"warmup", 1, 0, O_WARMUP},       {"cooldown", 1, 0, O_COOLDOWN},
        {"quick", 0, 0, O_QUICK},       {"timeout", 1, 0, O_TIMEOUT},       {"max-inflight", 1, 0, O_MAXIN},
        {"seed", 1, 0, O_SEED},         {"slo", 1, 0, O_SLO},               {"fail-on-slo", 0, 0, O_FAIL_SLO},
        {"early-stop", 0, 0, O_EARLY},  {"retry-429", 0, 0, O_RETRY},       {"retry-max", 1, 0, O_RETRY_MAX},
        {"retry-default", 1, 0, O_RETRY_DEFAULT}, {"timeslice", 1, 0, O_SLICE},
        {"profile", 1, 0, O_PROFILE},   {"output", 1, 0, O_OUTPUT},         {"runs-dir", 1, 0, O_RUNS_DIR},
        {"progress", 1, 0, O_PROGRESS}, {"help", 0, 0, O_HELP},             {"version", 0, 0, O_VERSION},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->url = "http://127.0.0.1:8001";
    o->workload = "fixed_200_200";
    o->profile = "default";
    o->runs_dir = "experiments/runs";
    o->slo_spec = "e2e_p95=5s,error_rate=0.1%";
    o->progress = -1;
    tlab_run_cfg *c = &o->run;
    c->arrival = (tlab_arrival_cfg){.kind = TLAB_ARRIVAL_POISSON, .rate = 1, .step_factor = 3, .step_len_s = 20, .step_period_s = 60};
    c->concurrency = 8;
    c->timeout_s = 120;
    c->max_inflight = 10000;
    int arrival_set = 0, burst_set = 0, conc_set = 0, rate_end_set = 0, ramp_set = 0, quick = 0, early = 0;
    int dur_set = 0, warm_set = 0, cool_set = 0, retry = 0;
    long retry_max = 3;
    c->retry_default_s = 1;
    o->timeslice_s = 1;
    double dur = 600, warm = 30, cool = 10;
    long l;
    int rc = 0;
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        const char *opt = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        switch (ch) {
        case O_URL:
            if (strncmp(optarg, "http://", 7) != 0)
                return bad("--url: '%s' must start with http://%s", optarg, "");
            o->url = optarg;
            break;
        case O_WORKLOAD: o->workload = optarg; break;
        case O_MODEL: o->model = optarg; break;
        case O_ARRIVAL:
            arrival_set = 1;
            if (!strcmp(optarg, "constant")) c->arrival.kind = TLAB_ARRIVAL_CONSTANT;
            else if (!strcmp(optarg, "poisson")) c->arrival.kind = TLAB_ARRIVAL_POISSON;
            else if (!strcmp(optarg, "ramp")) c->arrival.kind = TLAB_ARRIVAL_RAMP;
            else if (!strcmp(optarg, "step")) c->arrival.kind = TLAB_ARRIVAL_STEP;
            else if (!strcmp(optarg, "closed")) c->arrival.kind = TLAB_ARRIVAL_CLOSED;
            else return bad("--arrival: '%s' is not one of constant, poisson, ramp, step, closed%s", optarg, "");
            break;
        case O_RATE: rc = num("--rate", optarg, 0, &c->arrival.rate); break;
        case O_BURST: rc = num("--burstiness", optarg, 0, &c->arrival.burstiness); burst_set = 1; break;
        case O_RATE_END: rc = num("--rate-end", optarg, 0, &c->arrival.rate_end); rate_end_set = 1; break;
        case O_RAMP_TIME: rc = duration("--ramp-time", optarg, &c->arrival.ramp_s); ramp_set = 1; break;
        case O_STEP_FACTOR: rc = num("--step-factor", optarg, 0, &c->arrival.step_factor); break;
        case O_STEP_LEN: rc = duration("--step-length", optarg, &c->arrival.step_len_s); break;
        case O_STEP_PERIOD: rc = duration("--step-period", optarg, &c->arrival.step_period_s); break;
        case O_CONC: rc = integer("--concurrency", optarg, 1, &c->concurrency); conc_set = 1; break;
        case O_DURATION: rc = duration("--duration", optarg, &dur); dur_set = 1; break;
        case O_WARMUP: rc = duration("--warmup", optarg, &warm); warm_set = 1; break;
        case O_COOLDOWN: rc = duration("--cooldown", optarg, &cool); cool_set = 1; break;
        case O_QUICK: quick = 1; break;
        case O_EARLY: early = 1; break;
        case O_RETRY: retry = 1; break;
        case O_RETRY_MAX:
            rc = integer("--retry-max", optarg, 1, &retry_max);
            if (!rc && retry_max > 255)
                return bad("--retry-max: '%s' is above 255%s", optarg, "");
            break;
        case O_RETRY_DEFAULT: rc = duration("--retry-default", optarg, &c->retry_default_s); break;
        case O_SLICE:
            rc = duration("--timeslice", optarg, &o->timeslice_s);
            if (!rc && o->timeslice_s != 0 && o->timeslice_s < 1e-3)
                return bad("--timeslice: '%s' is under 1ms (0 turns the slices off)%s", optarg, "");
            break;
        case O_TIMEOUT: rc = duration("--timeout", optarg, &c->timeout_s); break;
        case O_MAXIN: rc = integer("--max-inflight", optarg, 1, &c->max_inflight); break;
        case O_SEED: rc = integer("--seed", optarg, 0, &l); c->seed = (uint64_t)l; break;
        case O_SLO: o->slo_spec = optarg; break;
        case O_FAIL_SLO: o->fail_on_slo = 1; break;
        case O_PROFILE:
            if (!*optarg || strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") != strlen(optarg))
                return bad("--profile: '%s' may only contain letters, digits, '.', '_' and '-'%s", optarg, "");
            o->profile = optarg;
            break;
        case O_OUTPUT: o->output = optarg; break;
        case O_RUNS_DIR: o->runs_dir = optarg; break;
        case O_PROGRESS:
            if (!strcmp(optarg, "auto")) o->progress = -1;
            else if (!strcmp(optarg, "always")) o->progress = 1;
            else if (!strcmp(optarg, "never")) o->progress = 0;
            else return bad("--progress: '%s' is not auto, always or never%s", optarg, "");
            break;
        case O_HELP: usage(stdout); return 1;
        case O_VERSION: printf("tlab-bench %s\n", TLAB_VERSION); return 1;
        case ':': return bad("%s needs a value%s", opt, "");
        default: return bad("unknown option '%s'%s", opt, "");
        }
        if (rc)
            return rc;
    }
    if (optind < argc)
        return bad("unexpected argument '%s'%s", argv[optind], "");
    if (conc_set && !arrival_set)
        c->arrival.kind = TLAB_ARRIVAL_CLOSED;
    if (conc_set && c->arrival.kind != TLAB_ARRIVAL_CLOSED)
        return bad("--concurrency goes with --arrival closed, not --arrival %s%s", tlab_arrival_name(c->arrival.kind), "");
    if (quick) {
        if (!dur_set) dur = 60;
        if (!warm_set) warm = 10;
        if (!cool_set) cool = 5;
    }
    if (!(dur > 0))
        return bad("--duration must be > 0%s%s", "", "");
    if (!(c->timeout_s > 0))
        return bad("--timeout must be > 0%s%s", "", "");
    c->duration_s = dur;
    c->warmup_s = warm;
    c->cooldown_s = cool;
    if (c->arrival.kind == TLAB_ARRIVAL_POISSON && !burst_set)
        c->arrival.burstiness = 1;
    if (c->arrival.kind == TLAB_ARRIVAL_RAMP) {
        if (!rate_end_set)
            c->arrival.rate_end = 2 * c->arrival.rate;
        if (!ramp_set)
            c->arrival.ramp_s = warm + dur + cool;
    }
    const char *why = tlab_arrival_check(&c->arrival);
    if (why)
        return bad("%s%s", why, "");
    char err[256];
    if (tlab_slo_parse(o->slo_spec, &o->slos, err, sizeof err) != 0)
        return bad("%s%s", err, "");
    if (early) {
        if (c->arrival.kind == TLAB_ARRIVAL_CLOSED)
            return bad("--early-stop needs an open-loop arrival (it judges the schedule's window)%s%s", "", "");
        if (tlab_early_rule_from_slo(&o->slos, &o->early) != 0)
            return bad("--early-stop needs an e2e or ttft quantile objective, or error_rate, in --slo%s%s", "", "");
        c->early = &o->early;
    }
    if (retry) {
        /* Early stop counts a rejected request as failed at once; one waiting to retry is not. */
        if (early)
            return bad("--retry-429 and --early-stop do not go together%s%s", "", "");
        if (c->arrival.kind == TLAB_ARRIVAL_CLOSED)
            return bad("--retry-429 needs an open-loop arrival%s%s", "", "");
        c->retry_max = retry_max;
    }
    /* Every request in flight holds a socket: keep the cap inside the fd limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        long fit = rl.rlim_cur == RLIM_INFINITY ? c->max_inflight : (long)rl.rlim_cur - 64;
        if (c->max_inflight > fit) {
            fprintf(stderr, "tlab-bench: --max-inflight lowered to %ld to fit the open-file limit\n", fit > 1 ? fit : 1);
            c->max_inflight = fit > 1 ? fit : 1;
        }
        if (c->arrival.kind == TLAB_ARRIVAL_CLOSED && c->concurrency > c->max_inflight)
            return bad("--concurrency is above --max-inflight (or the open-file limit)%s%s", "", "");
    }
    return 0;
}
