/*
 * tune_config.h - what tlab-tune explores and how it measures: the grid file
 * (configs/tuning/grid.yaml), its checks with file:line:col messages, and the expansion of the
 * grid into points (one knob set each, in the file's order).
 */
#ifndef TLAB_TUNE_CONFIG_H
#define TLAB_TUNE_CONFIG_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    /* rate search, in requests/s of the workload's own clock */
    double start_rate, min_rate, max_rate, growth, tolerance;
    long min_requests;        /* a probe lasts long enough for this many requests due in its window */
    double min_duration_s, max_duration_s, warmup_s, cooldown_s;
    long confirm_runs;        /* confirming runs at the point's best rate (median taken) */
    long confirm_requests;    /* size of each confirming run */
    double startup_timeout_s; /* worker start-up, health included */
} tune_search_params;

typedef struct {
    long screen_requests;     /* size of a screening probe (early stop on) */
    double screen_tolerance;  /* bisection tolerance while screening */
    double keep_fraction;     /* share of points kept after screening (at least 2) */
    long finalists;           /* points confirmed at the end */
} tune_smart_params;

typedef struct {
    char *path;
    char *engine;             /* auto | sim | vllm */
    char *profile;            /* base model profile: name under profiles_dir, or a path */
    char *profiles_dir;
    char *workload;           /* tlab-bench workload name or file */
    char *slo;                /* tlab-bench --slo syntax, in the workload's time */
    double time_scale;        /* sim only: its clock runs this much faster; the tuner rescales */
    json_t *fixed;            /* knobs set at every point */
    json_t *axes;             /* knob -> array of values, in file order */
    json_t *sim_args, *vllm_args; /* extra worker arguments (arrays of strings) */
    tune_search_params search;
    tune_smart_params smart;
} tune_config;

/* Loads and checks a grid file. 0, or -1 with "file:line:col: message" in err. */
int tune_config_load(const char *path, tune_config *c, char *err, size_t errlen);
/* --quick: each axis keeps its first and last value, probes and confirmations shrink. */
void tune_config_quick(tune_config *c);
void tune_config_free(tune_config *c);
/* The configuration as JSON, for the run file and for checking that a resumed run matches. */
json_t *tune_config_to_json(const tune_config *c);

typedef struct {
    char id[256];             /* "max_num_seqs=64,max_num_batched_tokens=4096" (too long: cut, "...#N") */
    json_t *knobs;            /* fixed + this point's axis values */
} tune_point;

/* Every combination of the axes (the first axis varies slowest). NULL when out of memory. */
tune_point *tune_points_expand(const tune_config *c, size_t *n);
void tune_points_free(tune_point *p, size_t n);

/* 1 when `b` needs at least as much GPU memory as `a` by the knobs that only grow memory
 * (max_num_seqs, max_num_batched_tokens, max_model_len), every other knob being equal. */
int tune_needs_more_memory(const json_t *a, const json_t *b);

#endif
