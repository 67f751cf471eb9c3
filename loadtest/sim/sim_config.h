/*
 * sim_config.h - tlab-sim's command line: vLLM's serving flags with vLLM's meaning and defaults, plus
 * the simulator's own (--hardware, --model-profile, --startup-seconds, --time-scale, --seed,
 * --config-dir), and the checks vLLM makes on them, with vLLM's wording.
 */
#ifndef SIM_CONFIG_H
#define SIM_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sim_profile.h"
#include "sim_sched.h"

typedef struct sim_config {
    char model[256];          /* served model name; "" = the model profile's name */
    char host[128];
    int port;
    int max_model_len;        /* 0 = from the model profile */
    int max_num_seqs;         /* 0 = vLLM's default for this GPU (get_batch_defaults) */
    int max_num_batched_tokens; /* 0 = vLLM's default for this GPU */
    double gpu_memory_utilization;
    int chunked_prefill;      /* 1 on (V1 default), 0 off */
    int async_scheduling;     /* 1 on (vLLM's default since v0.14, PR #27614), 0 off */
    int enable_sleep_mode;    /* --enable-sleep-mode: /sleep, /wake_up, /is_sleeping (with VLLM_SERVER_DEV_MODE=1) */
    int block_size;
    char hardware[512];
    char model_profile[512];  /* "" = from --model if such a profile exists, else Qwen2.5-0.5B-Instruct */
    char config_dir[1024];
    double startup_seconds;   /* simulated seconds before the port opens */
    double time_scale;        /* simulated seconds per real second */
    uint64_t seed;
    /* --predict / --predict-batch: no server; print what a closed-loop benchmark would measure. */
    int predict;              /* 1 --predict (text), 2 --predict-batch (flag lines on stdin, JSON lines out) */
    int concurrency, input_len, output_len, num_prompts; /* the benchmark; num_prompts 0 = 10 x concurrency */
} sim_config;

/* Fills cfg with defaults (config dir from $TLAB_CONFIG_DIR, else the compiled-in source tree path). */
void sim_config_defaults(sim_config *cfg);

/*
 * Parses argv (both "--flag value" and "--flag=value"; '_' and '-' are interchangeable as in vLLM).
 * Returns 0 to run, 1 when --help or --version was printed (exit 0), and -1 on a bad flag with the
 * message in err (exit 2).
 */
int sim_config_parse(sim_config *cfg, int argc, char **argv, char *err, size_t errlen);

/*
 * Applies defaults that depend on the profiles and rejects what vLLM rejects. Returns 0, or -1 with
 * vLLM's message in err (the process then exits 1, as vLLM does on a ValueError).
 */
int sim_config_finalize(sim_config *cfg, const sim_hw *hw, const sim_modelp *m, char *err, size_t errlen);

/*
 * Loads the hardware profile and the model profile (from --model-profile, else --model's basename when
 * such a profile exists, else Qwen2.5-0.5B-Instruct; cfg->model_profile is filled in). Returns 0, or
 * -1 with "--hardware: ..." or "--model-profile: ..." in err (a usage error: exit 2).
 */
int sim_config_load_profiles(sim_config *cfg, sim_hw *hw, sim_modelp *m, char *err, size_t errlen);

/*
 * vLLM's get_batch_defaults for the OpenAI server: GPUs with >= 70 GiB whose name does not contain
 * "a100" get 8192 batched tokens and 1024 sequences, every other GPU 2048 and 256 (a profile's
 * default_max_num_batched_tokens overrides the token figure).
 */
void sim_config_batch_defaults(const sim_hw *hw, int *max_num_batched_tokens, int *max_num_seqs);

/* The scheduler's settings from a finalized config and the memory plan's KV block count: the one place
 * the server (sim_engine) and --predict take them from, so both schedule alike. */
sim_sched_cfg sim_config_sched(const sim_config *cfg, long num_blocks);

void sim_config_usage(FILE *out);

#endif
