/*
 * tune_main.c - tlab-tune's command line: options, the grid file, signals, exit status.
 */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/exe_path.h"
#include "tune_config.h"
#include "tune_run.h"

static volatile int stop_requested;

static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *o) {
    fputs("usage: tlab-tune [options]\n"
          "Finds the worker knobs (max_num_seqs, max_num_batched_tokens, ...) that give the most requests/s\n"
          "inside the SLO: for each point of the grid it (re)starts the worker, brackets and bisects the\n"
          "highest rate that passes (each probe a tlab-bench run), and confirms it.\n"
          "\n"
          "  --grid FILE           grid file (default configs/tuning/grid.yaml; see docs/tuning.md)\n"
          "  --strategy S          grid (every point, full search, confirmed) or smart (screen with short probes\n"
          "                        that stop early, refine the best, confirm the finalists) (default grid)\n"
          "  --quick               first look: 2 values per axis, shorter probes, 1 confirming run\n"
          "  --baseline            also measure the base model profile as it is, and report the gain\n"
          "  --engine E            auto | sim | vllm (overrides the grid file)\n"
          "  --time-scale F        tlab-sim only: its clock runs F times faster; rates and latencies are\n"
          "                        reported in the workload's time (overrides the grid file)\n"
          "  --hardware NAME       tlab-sim's GPU profile (adds --hardware NAME to its arguments)\n"
          "  --output FILE         the run record (default <runs-dir>/YYYY-MM-DD_<strategy>_<HHMMSS>.json)\n"
          "  --runs-dir DIR        default experiments/runs\n"
          "  --resume FILE         continue an interrupted run: finished points are kept, not measured again\n"
          "  --tuned-out FILE      model profile for the best point (default configs/model_profiles/tuned.yaml;\n"
          "                        \"\" writes none)\n"
          "  --port N              the worker's port (default: a free one on 127.0.0.1)\n"
          "  --bench PATH, --sim PATH, --vllm PATH\n"
          "                        the programs (default: next to tlab-tune, else on PATH; vllm on PATH)\n"
          "  --config-dir DIR      tlab-sim's profile folder (--config-dir), when not the default\n"
          "  --dry-run             check the grid, print the points and exit\n"
          "  --progress WHEN       auto | always | never: the live line (default auto: stderr is a terminal)\n"
          "  --help, --version\n"
          "\n"
          "Exit status: 0 done; 1 no point met the SLO; 2 bad usage or grid; 3 runtime failure;\n"
          "130 interrupted (the record says where; --resume continues).\n",
          o);
}

/* A sibling program of this executable when it exists (a build tree or an install), else the bare name. */
static const char *sibling(const char *name, char *buf, size_t len) {
    return tlab__exe_sibling(name, buf, len) ? buf : name;
}

/* configs/tuning/NAME: $TLAB_CONFIG_DIR, ./configs, then the source tree. */
static const char *find_grid(const char *arg, char *buf, size_t len) {
    if (strchr(arg, '/') || access(arg, R_OK) == 0)
        return arg;
    const char *dirs[] = {getenv("TLAB_CONFIG_DIR"), "configs", TLAB_SOURCE_CONFIG_DIR};
    for (size_t i = 0; i < 3; i++) {
        if (!dirs[i])
            continue;
        snprintf(buf, len, "%s/tuning/%s%s", dirs[i], arg, strstr(arg, ".yaml") ? "" : ".yaml");
        if (access(buf, R_OK) == 0)
            return buf;
    }
    return arg;
}

static int bad(const char *msg, const char *arg) {
    fprintf(stderr, "tlab-tune: %s%s\nTry 'tlab-tune --help'.\n", msg, arg);
    return 2;
}

int main(int argc, char **argv) {
    enum { O_GRID = 1, O_STRATEGY, O_QUICK, O_BASELINE, O_ENGINE, O_SCALE, O_HW, O_OUTPUT, O_RUNS, O_RESUME, O_TUNED,
           O_PORT, O_BENCH, O_SIM, O_VLLM, O_CFGDIR, O_DRY, O_PROGRESS, O_HELP, O_VERSION };
    static const struct option longopts[] = {
        {"grid", 1, 0, O_GRID},         {"strategy", 1, 0, O_STRATEGY}, {"quick", 0, 0, O_QUICK},
        {"baseline", 0, 0, O_BASELINE}, {"engine", 1, 0, O_ENGINE},     {"time-scale", 1, 0, O_SCALE},
        {"hardware", 1, 0, O_HW},       {"output", 1, 0, O_OUTPUT},     {"runs-dir", 1, 0, O_RUNS},
        {"resume", 1, 0, O_RESUME},     {"tuned-out", 1, 0, O_TUNED},   {"port", 1, 0, O_PORT},
        {"bench", 1, 0, O_BENCH},       {"sim", 1, 0, O_SIM},           {"vllm", 1, 0, O_VLLM},
        {"config-dir", 1, 0, O_CFGDIR}, {"dry-run", 0, 0, O_DRY},       {"progress", 1, 0, O_PROGRESS},
        {"help", 0, 0, O_HELP},         {"version", 0, 0, O_VERSION},   {0, 0, 0, 0}};
    const char *grid = "grid", *strategy = "grid", *engine = NULL, *hardware = NULL, *output = NULL, *runs_dir = "experiments/runs",
               *resume = NULL, *tuned = "configs/model_profiles/tuned.yaml", *bench = NULL, *sim = NULL, *vllm = "vllm",
               *config_dir = NULL;
    double scale = 0;
    int quick = 0, baseline = 0, dry = 0, progress = -1;
    long port = 0;
    char b1[PATH_MAX], b2[PATH_MAX], gbuf[PATH_MAX];
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case O_GRID: grid = optarg; break;
        case O_STRATEGY:
            if (strcmp(optarg, "grid") && strcmp(optarg, "smart"))
                return bad("--strategy must be grid or smart, not ", optarg);
            strategy = optarg;
            break;
        case O_QUICK: quick = 1; break;
        case O_BASELINE: baseline = 1; break;
        case O_ENGINE:
            if (strcmp(optarg, "auto") && strcmp(optarg, "sim") && strcmp(optarg, "vllm"))
                return bad("--engine must be auto, sim or vllm, not ", optarg);
            engine = optarg;
            break;
        case O_SCALE:
            scale = strtod(optarg, &end);
            if (!end || *end || !(scale >= 0.01 && scale <= 1000))
                return bad("--time-scale must be a number in 0.01..1000, not ", optarg);
            break;
        case O_HW: hardware = optarg; break;
        case O_OUTPUT: output = optarg; break;
        case O_RUNS: runs_dir = optarg; break;
        case O_RESUME: resume = optarg; break;
        case O_TUNED: tuned = optarg; break;
        case O_PORT:
            port = strtol(optarg, &end, 10);
            if (!end || *end || port < 1 || port > 65535)
                return bad("--port must be 1..65535, not ", optarg);
            break;
        case O_BENCH: bench = optarg; break;
        case O_SIM: sim = optarg; break;
        case O_VLLM: vllm = optarg; break;
        case O_CFGDIR: config_dir = optarg; break;
        case O_DRY: dry = 1; break;
        case O_PROGRESS:
            progress = !strcmp(optarg, "always") ? 1 : !strcmp(optarg, "never") ? 0 : !strcmp(optarg, "auto") ? -1 : -2;
            if (progress == -2)
                return bad("--progress must be auto, always or never, not ", optarg);
            break;
        case O_HELP: usage(stdout); return 0;
        case O_VERSION: printf("tlab-tune %s\n", TLAB_VERSION); return 0;
        default: return bad("unknown or incomplete option ", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bad("unexpected argument ", argv[optind]);
    if (resume && output && strcmp(resume, output))
        return bad("--resume and --output name different records", "");

    tune_config cfg;
    char err[2048];
    const char *grid_path = find_grid(grid, gbuf, sizeof gbuf);
    if (tune_config_load(grid_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (engine) {
        free(cfg.engine);
        cfg.engine = strdup(engine);
    }
    if (scale > 0)
        cfg.time_scale = scale;
    if (hardware) {
        json_array_append_new(cfg.sim_args, json_string("--hardware"));
        json_array_append_new(cfg.sim_args, json_string(hardware));
    }
    if (quick)
        tune_config_quick(&cfg);

    size_t n = 0;
    tune_point *pts = tune_points_expand(&cfg, &n);
    if (dry) {
        printf("%s: %zu points, strategy %s%s\n", grid_path, n, strategy, quick ? " (--quick)" : "");
        for (size_t i = 0; i < n; i++) {
            char *k = json_dumps(pts[i].knobs, JSON_COMPACT | JSON_SORT_KEYS);
            printf("  %2zu. %s  %s\n", i + 1, pts[i].id, k ? k : "");
            free(k);
        }
        tune_points_free(pts, n);
        tune_config_free(&cfg);
        return 0;
    }
    tune_points_free(pts, n);

    char out_path[PATH_MAX];
    if (resume)
        snprintf(out_path, sizeof out_path, "%s", resume);
    else if (output)
        snprintf(out_path, sizeof out_path, "%s", output);
    else {
        time_t now = time(NULL);
        char stamp[64];
        strftime(stamp, sizeof stamp, "%Y-%m-%d_%%s_%H%M%S", localtime(&now));
        char name[128];
        snprintf(name, sizeof name, stamp, strategy);
        snprintf(out_path, sizeof out_path, "%s/%s.json", runs_dir, name);
    }
    if (resume && access(resume, R_OK) != 0)
        return bad("--resume: cannot read ", resume);

    char cmdline[4096] = "";
    size_t off = 0;
    for (int i = 0; i < argc && off < sizeof cmdline; i++)
        off += (size_t)snprintf(cmdline + off, sizeof cmdline - off, "%s%s", i ? " " : "", argv[i]);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    tune_options o = {.cfg = &cfg,
                      .strategy = strategy,
                      .bench_cmd = bench ? bench : sibling("tlab-bench", b1, sizeof b1),
                      .sim_cmd = sim ? sim : sibling("tlab-sim", b2, sizeof b2),
                      .vllm_cmd = vllm,
                      .run_path = out_path,
                      .resume = resume != NULL,
                      .tuned_out = tuned,
                      .config_dir = config_dir,
                      .port = (int)port,
                      .tty = progress < 0 ? isatty(STDERR_FILENO) : progress,
                      .baseline = baseline,
                      .command_line = cmdline};
    int status = tune_run(&o, &stop_requested);
    tune_config_free(&cfg);
    curl_global_cleanup();
    return status;
}
