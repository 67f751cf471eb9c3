/*
 * worker_cmd.h - the supervisor's configuration and the worker's command line: options,
 * model profiles (configs/model_profiles/NAME.yaml), knob overrides, engine choice (vllm, sim,
 * auto) and the argv each engine takes. Shared by the supervisor plugin and tlab-tune, so both
 * start the worker the same way. No state machine here; plugins/supervisor/supervisor.c has that.
 */
#ifndef TLAB_WORKER_CMD_H
#define TLAB_WORKER_CMD_H

#include <stddef.h>
#include <stdint.h>

#include <tlab/plugin.h>

typedef enum tlab__worker_engine { TLAB_WORKER_ENGINE_AUTO = 0, TLAB_WORKER_ENGINE_VLLM = 1, TLAB_WORKER_ENGINE_SIM = 2 } tlab__worker_engine;

typedef struct tlab__worker_options {
    tlab__worker_engine engine;
    char *profile_path;
    char *host;
    int port;
    char *health_url;
    char *sim_command, *vllm_command;
    json_t *sim_args, *extra_args, *overrides; /* arrays of strings; knob object */
    char *log_file;
    size_t log_max_bytes;
    uint64_t health_interval_us, startup_timeout_us, idle_timeout_us, stop_grace_us, backoff_min_us, backoff_max_us;
    long health_timeout_ms;
    int always_on;
    uint64_t sleep_after_us; /* idle time before POST /sleep; 0 = no sleep rung */
    int sleep_level;         /* 1: weights to CPU RAM; 2: weights discarded */
    int sleep_mode_flag;     /* add --enable-sleep-mode and VLLM_SERVER_DEV_MODE=1 to the worker */
    int verify_port_owner;   /* READY only when the port's listener is in the worker's process group */
    int engine_from_env; /* TLAB_ENGINE overrode `engine` */
} tlab__worker_options;

/* Reads the plugin's config block; the worker's host and port come from upstream.url.
 * 0, or -1 with a message naming the key. */
int tlab__worker_options_parse(tlab__worker_options *o, const json_t *cfg, const char *upstream_url, char *err, size_t errlen);
void tlab__worker_options_free(tlab__worker_options *o);
/* The sleep rung is on when sleep_after_s > 0 and comes before idle_timeout_s. */
int tlab__worker_sleep_enabled(const tlab__worker_options *o);
/* Reads a YAML file into JSON: the plugin API's yaml_load in the supervisor, tlab__yaml_load_file
 * in tlab-tune (the same code behind both). */
typedef json_t *(*tlab__yaml_loader)(const char *path, char *err, size_t errlen);
/* Loads the model profile with `load` and applies the config's overrides. NULL with err on failure. */
json_t *tlab__worker_load_profile(tlab__yaml_loader load, const tlab__worker_options *o, char *err, size_t errlen);
/* engine auto -> vllm when the vllm command and an NVIDIA device are present, else sim; `why` says which. */
void tlab__worker_resolve_engine(tlab__worker_options *o, char *why, size_t whylen);
/* Checks a knob object (profile keys only, right types). 0, or -1 with err. */
int tlab__worker_check_knobs(const json_t *knobs, char *err, size_t errlen);
/* A new object: base's keys, then over's on top (either may be NULL). */
json_t *tlab__worker_merge_knobs(const json_t *base, const json_t *over);
/* The max_num_seqs the worker's command line gives it: the knob's, 0 when there is none or when
 * an extra argument sets --max-num-seqs itself (it comes later and wins; its value is not read). */
long tlab__worker_max_num_seqs(const tlab__worker_options *o, const json_t *knobs);
/* The worker's argv (NULL-terminated, malloc'd; free with tlab__worker_free_argv), or NULL with err. */
char **tlab__worker_build_argv(const tlab__worker_options *o, const json_t *knobs, char *err, size_t errlen);
void tlab__worker_free_argv(char **argv);
void tlab__worker_join_argv(char *const *argv, char *out, size_t len);
/* The last `lines` lines of a file (bounded read of its end); "(no log)" when unreadable. */
void tlab__worker_log_tail(const char *path, char *out, size_t len, int lines);

#endif
