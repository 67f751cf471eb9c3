/*
 * supervisor_cmd.h - the supervisor's configuration and the worker's command line: options,
 * model profiles (configs/model_profiles/NAME.yaml), knob overrides, engine choice (vllm, sim,
 * auto) and the argv each engine takes. No state machine here; supervisor.c has that.
 */
#ifndef TLAB_SUPERVISOR_CMD_H
#define TLAB_SUPERVISOR_CMD_H

#include <stddef.h>
#include <stdint.h>

#include <tlab/plugin.h>

typedef enum sup_engine { SUP_ENGINE_AUTO = 0, SUP_ENGINE_VLLM = 1, SUP_ENGINE_SIM = 2 } sup_engine;

typedef struct sup_options {
    sup_engine engine;
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
    int engine_from_env; /* TLAB_ENGINE overrode `engine` */
} sup_options;

/* Reads the plugin's config block; the worker's host and port come from upstream.url.
 * 0, or -1 with a message naming the key. */
int sup_options_parse(sup_options *o, const json_t *cfg, const char *upstream_url, char *err, size_t errlen);
void sup_options_free(sup_options *o);
/* The sleep rung is on when sleep_after_s > 0 and comes before idle_timeout_s. */
int sup_sleep_enabled(const sup_options *o);
/* Loads the model profile and applies the config's overrides. NULL with err on failure. */
json_t *sup_load_profile(const tlab_api *api, const sup_options *o, char *err, size_t errlen);
/* engine auto -> vllm when the vllm command and an NVIDIA device are present, else sim; `why` says which. */
void sup_resolve_engine(sup_options *o, char *why, size_t whylen);
/* Checks a knob object (profile keys only, right types). 0, or -1 with err. */
int sup_check_knobs(const json_t *knobs, char *err, size_t errlen);
/* A new object: base's keys, then over's on top (either may be NULL). */
json_t *sup_merge_knobs(const json_t *base, const json_t *over);
/* The worker's argv (NULL-terminated, malloc'd; free with sup_free_argv), or NULL with err. */
char **sup_build_argv(const sup_options *o, const json_t *knobs, char *err, size_t errlen);
void sup_free_argv(char **argv);
void sup_join_argv(char *const *argv, char *out, size_t len);
/* The last `lines` lines of a file (bounded read of its end); "(no log)" when unreadable. */
void sup_log_tail(const char *path, char *out, size_t len, int lines);

#endif
