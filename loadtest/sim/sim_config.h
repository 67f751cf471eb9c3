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

typedef struct sim_config {
    char model[256];          /* served model name; "" = the model profile's name */
    char host[128];
    int port;
    int max_model_len;        /* 0 = from the model profile */
    int max_num_seqs;
    int max_num_batched_tokens; /* 0 = vLLM's default for this GPU */
    double gpu_memory_utilization;
    int chunked_prefill;      /* 1 on (V1 default), 0 off */
    int enable_sleep_mode;    /* --enable-sleep-mode: /sleep, /wake_up, /is_sleeping (with VLLM_SERVER_DEV_MODE=1) */
    int block_size;
    char hardware[512];
    char model_profile[512];  /* "" = from --model if such a profile exists, else Qwen2.5-0.5B-Instruct */
    char config_dir[1024];
    double startup_seconds;   /* simulated seconds before the port opens */
    double time_scale;        /* simulated seconds per real second */
    uint64_t seed;
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

void sim_config_usage(FILE *out);

#endif
