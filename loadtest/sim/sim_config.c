/*
 * sim_config.c - flag parsing and validation for tlab-sim. Defaults follow vLLM V1's OpenAI server:
 * gpu_memory_utilization 0.9, block_size 16, chunked prefill on, max_model_len from the model, and
 * max_num_seqs / max_num_batched_tokens from vLLM's get_batch_defaults (vllm/engine/arg_utils.py):
 * 1024 / 8192 on GPUs with >= 70 GiB other than the A100 (PR #17885 kept the A100 at 2048, where the
 * larger budget cost throughput), 256 / 2048 everywhere else.
 */
#include "sim_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <ctype.h>
#include <string.h>

#ifndef TLAB_SIM_CONFIG_DIR
#define TLAB_SIM_CONFIG_DIR "configs"
#endif
#ifndef TLAB_VERSION
#define TLAB_VERSION "0.0.0"
#endif

void sim_config_defaults(sim_config *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->host, sizeof cfg->host, "0.0.0.0");
    cfg->port = 8000;
    cfg->gpu_memory_utilization = 0.9;
    cfg->chunked_prefill = 1;
    cfg->async_scheduling = 1;
    cfg->block_size = 16;
    snprintf(cfg->hardware, sizeof cfg->hardware, "rtx3050-4gb");
    const char *env = getenv("TLAB_CONFIG_DIR");
    snprintf(cfg->config_dir, sizeof cfg->config_dir, "%s", env && *env ? env : TLAB_SIM_CONFIG_DIR);
    cfg->startup_seconds = 2.0;
    cfg->time_scale = 1.0;
    cfg->seed = 0;
}

void sim_config_usage(FILE *out) {
    fprintf(out,
            "usage: tlab-sim [options]\n"
            "A simulated vLLM OpenAI-compatible server (no GPU needed).\n\n"
            "vLLM flags (same meaning as `vllm serve`):\n"
            "  --model NAME                    served model name (default: the model profile's name)\n"
            "  --host HOST                     bind address (default 0.0.0.0)\n"
            "  --port PORT                     port (default 8000)\n"
            "  --max-model-len N               context length (default: from the model profile)\n"
            "  --max-num-seqs N                max running sequences per step (default 256; 1024 on >=70 GiB\n"
            "                                  GPUs other than the A100, as vLLM's get_batch_defaults)\n"
            "  --max-num-batched-tokens N      token budget per step (default 2048; 8192 on >=70 GiB GPUs\n"
            "                                  other than the A100; max(max_model_len, that) without chunking)\n"
            "  --gpu-memory-utilization F      fraction of GPU memory vLLM may use (default 0.9)\n"
            "  --enable-chunked-prefill / --no-enable-chunked-prefill   (default on, as vLLM V1)\n"
            "  --async-scheduling / --no-async-scheduling   plan step n+1 while step n runs (default on, as\n"
            "                                  vLLM since v0.14; off: a new request can join the next step)\n"
            "  --block-size N                  KV block size in tokens (default 16)\n"
            "  --enable-sleep-mode             serve POST /sleep, POST /wake_up, GET /is_sleeping; as in vLLM,\n"
            "                                  only when the environment also has VLLM_SERVER_DEV_MODE=1\n"
            "Simulator flags:\n"
            "  --hardware NAME|FILE            GPU profile from <config-dir>/hardware (default rtx3050-4gb)\n"
            "  --model-profile NAME|FILE       model from <config-dir>/hardware/models (default: --model's\n"
            "                                  basename if such a profile exists, else Qwen2.5-0.5B-Instruct)\n"
            "  --config-dir DIR                where profiles live (default $TLAB_CONFIG_DIR, else %s)\n"
            "  --startup-seconds S             simulated cold start before the port opens (default 2)\n"
            "  --time-scale F                  the simulated clock runs F times faster than real time (default 1)\n"
            "  --seed N                        seed for sampled (temperature > 0) text (default 0)\n"
            "Prediction (no server; a closed-loop `vllm bench serve` with ignore_eos, on the simulated clock):\n"
            "  --predict                       print TTFT, TPOT, throughput and whether the model fits, then exit\n"
            "  --predict-batch                 read one set of flags per line on stdin, print one JSON line each\n"
            "  --concurrency N                 requests in flight (default 1)\n"
            "  --input-len N, --output-len N   tokens per prompt / per output (default 200 / 200)\n"
            "  --num-prompts N                 requests in all (default 10 x concurrency)\n"
            "  --help, --version\n",
            TLAB_SIM_CONFIG_DIR);
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out, char *err, size_t errlen) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        snprintf(err, errlen, "tlab-sim: error: argument %s: invalid int value: '%s' (expected %d..%d)", flag, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_double(const char *flag, const char *v, double lo, double hi, double *out, char *err, size_t errlen) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        snprintf(err, errlen, "tlab-sim: error: argument %s: invalid float value: '%s' (expected %g..%g)", flag, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int copy_str(const char *flag, const char *v, char *dst, size_t dstlen, char *err, size_t errlen) {
    if (!*v || strlen(v) >= dstlen) {
        snprintf(err, errlen, "tlab-sim: error: argument %s: value is empty or too long", flag);
        return -1;
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

int sim_config_parse(sim_config *cfg, int argc, char **argv, char *err, size_t errlen) {
    for (int i = 1; i < argc; i++) {
        char flag[96];
        const char *arg = argv[i];
        const char *val = NULL;
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errlen, "tlab-sim: error: unrecognized arguments: %s", arg);
            return -1;
        }
        const char *eq = strchr(arg, '=');
        size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
        if (n >= sizeof flag) {
            snprintf(err, errlen, "tlab-sim: error: unrecognized arguments: %s", arg);
            return -1;
        }
        for (size_t k = 0; k < n; k++)
            flag[k] = arg[k] == '_' ? '-' : arg[k];
        flag[n] = '\0';
        if (eq)
            val = eq + 1;

        if (!strcmp(flag, "--help") || !strcmp(flag, "--version")) {
            if (flag[2] == 'h')
                sim_config_usage(stdout);
            else
                printf("tlab-sim %s\n", TLAB_VERSION);
            return 1;
        }
        /* Boolean flags take an optional =true/=false and a --no- form, as vLLM's argparse. */
        int *bool_dst = NULL, on = 1;
        if (!strcmp(flag, "--enable-chunked-prefill") || !strcmp(flag, "--no-enable-chunked-prefill"))
            bool_dst = &cfg->chunked_prefill;
        else if (!strcmp(flag, "--enable-sleep-mode") || !strcmp(flag, "--no-enable-sleep-mode"))
            bool_dst = &cfg->enable_sleep_mode;
        else if (!strcmp(flag, "--async-scheduling") || !strcmp(flag, "--no-async-scheduling"))
            bool_dst = &cfg->async_scheduling;
        if (!strcmp(flag, "--predict") || !strcmp(flag, "--predict-batch")) {
            cfg->predict = flag[9] == '-' ? 2 : 1;
            continue;
        }
        if (bool_dst) {
            on = strncmp(flag, "--no-", 5) != 0;
            if (val) {
                if (!strcmp(val, "true") || !strcmp(val, "True") || !strcmp(val, "1"))
                    on = on ? 1 : 0;
                else if (!strcmp(val, "false") || !strcmp(val, "False") || !strcmp(val, "0"))
                    on = on ? 0 : 1;
                else {
                    snprintf(err, errlen, "tlab-sim: error: argument %s: expected true or false, got '%s'", flag, val);
                    return -1;
                }
            }
            *bool_dst = on;
            continue;
        }
        static const char *const with_value[] = {"--model", "--host", "--port", "--max-model-len", "--max-num-seqs",
                                                 "--max-num-batched-tokens", "--gpu-memory-utilization", "--block-size",
                                                 "--hardware", "--model-profile", "--config-dir", "--startup-seconds",
                                                 "--time-scale", "--seed", "--concurrency", "--input-len",
                                                 "--output-len", "--num-prompts", NULL};
        int known = 0;
        for (int k = 0; with_value[k]; k++)
            known |= !strcmp(flag, with_value[k]);
        if (!known) {
            snprintf(err, errlen, "tlab-sim: error: unrecognized arguments: %s (see --help)", arg);
            return -1;
        }
        if (!val) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "tlab-sim: error: argument %s: expected one argument", flag);
                return -1;
            }
            val = argv[++i];
        }
        int rc = 0, tmp;
        if (!strcmp(flag, "--model"))
            rc = copy_str(flag, val, cfg->model, sizeof cfg->model, err, errlen);
        else if (!strcmp(flag, "--host"))
            rc = copy_str(flag, val, cfg->host, sizeof cfg->host, err, errlen);
        else if (!strcmp(flag, "--port"))
            rc = parse_int(flag, val, 0, 65535, &cfg->port, err, errlen);
        else if (!strcmp(flag, "--max-model-len"))
            rc = parse_int(flag, val, 1, 1 << 30, &cfg->max_model_len, err, errlen);
        else if (!strcmp(flag, "--max-num-seqs"))
            rc = parse_int(flag, val, 1, 1 << 20, &cfg->max_num_seqs, err, errlen);
        else if (!strcmp(flag, "--max-num-batched-tokens"))
            rc = parse_int(flag, val, 1, 1 << 30, &cfg->max_num_batched_tokens, err, errlen);
        else if (!strcmp(flag, "--gpu-memory-utilization"))
            rc = parse_double(flag, val, 1e-6, 1.0, &cfg->gpu_memory_utilization, err, errlen);
        else if (!strcmp(flag, "--block-size")) {
            rc = parse_int(flag, val, 1, 1024, &tmp, err, errlen);
            if (!rc && tmp != 1 && tmp != 8 && tmp != 16 && tmp != 32 && tmp != 64 && tmp != 128) {
                snprintf(err, errlen, "tlab-sim: error: argument --block-size: invalid choice: %d (choose from 1, 8, 16, 32, 64, 128)", tmp);
                rc = -1;
            }
            if (!rc) /* tmp is unset when parse_int failed (gcc -O2: maybe-uninitialized) */
                cfg->block_size = tmp;
        } else if (!strcmp(flag, "--hardware"))
            rc = copy_str(flag, val, cfg->hardware, sizeof cfg->hardware, err, errlen);
        else if (!strcmp(flag, "--model-profile"))
            rc = copy_str(flag, val, cfg->model_profile, sizeof cfg->model_profile, err, errlen);
        else if (!strcmp(flag, "--config-dir"))
            rc = copy_str(flag, val, cfg->config_dir, sizeof cfg->config_dir, err, errlen);
        else if (!strcmp(flag, "--startup-seconds"))
            rc = parse_double(flag, val, 0, 86400, &cfg->startup_seconds, err, errlen);
        else if (!strcmp(flag, "--time-scale"))
            rc = parse_double(flag, val, 1e-3, 1e6, &cfg->time_scale, err, errlen);
        else if (!strcmp(flag, "--concurrency"))
            rc = parse_int(flag, val, 1, 1 << 20, &cfg->concurrency, err, errlen);
        else if (!strcmp(flag, "--input-len"))
            rc = parse_int(flag, val, 1, 1 << 24, &cfg->input_len, err, errlen);
        else if (!strcmp(flag, "--output-len"))
            rc = parse_int(flag, val, 1, 1 << 24, &cfg->output_len, err, errlen);
        else if (!strcmp(flag, "--num-prompts"))
            rc = parse_int(flag, val, 1, 1 << 24, &cfg->num_prompts, err, errlen);
        else if (!strcmp(flag, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(val, &end, 10);
            if (errno || end == val || *end) {
                snprintf(err, errlen, "tlab-sim: error: argument --seed: invalid int value: '%s'", val);
                rc = -1;
            }
            cfg->seed = s;
        }
        if (rc)
            return -1;
    }
    return 0;
}

sim_sched_cfg sim_config_sched(const sim_config *cfg, long num_blocks) {
    return (sim_sched_cfg){.max_num_seqs = cfg->max_num_seqs,
                           .max_num_batched_tokens = cfg->max_num_batched_tokens,
                           .block_size = cfg->block_size,
                           .num_blocks = num_blocks,
                           .max_model_len = cfg->max_model_len,
                           .chunked_prefill = cfg->chunked_prefill != 0,
                           .async_scheduling = cfg->async_scheduling != 0};
}

int sim_config_finalize(sim_config *cfg, const sim_hw *hw, const sim_modelp *m, char *err, size_t errlen) {
    if (!cfg->model[0])
        snprintf(cfg->model, sizeof cfg->model, "%s", m->name);
    if (cfg->max_model_len == 0)
        cfg->max_model_len = m->max_model_len;
    else if (cfg->max_model_len > m->max_model_len) {
        snprintf(err, errlen,
                 "ValueError: User-specified max_model_len (%d) is greater than the derived max_model_len "
                 "(max_position_embeddings=%d or model_max_length=None in model's config.json). To allow overriding "
                 "this maximum, set the env var VLLM_ALLOW_LONG_MAX_MODEL_LEN=1.",
                 cfg->max_model_len, m->max_model_len);
        return -1;
    }
    /* vLLM's order (_set_default_max_num_seqs_and_batched_tokens_args): the sequence default first,
     * then the token default clamped to what max_num_seqs sequences could use, then the sequences
     * clamped to the tokens. */
    int def_tokens, def_seqs, seqs_given = cfg->max_num_seqs > 0;
    sim_config_batch_defaults(hw, &def_tokens, &def_seqs);
    if (!seqs_given)
        cfg->max_num_seqs = def_seqs;
    if (cfg->max_num_batched_tokens == 0) {
        long t = def_tokens;
        if (!cfg->chunked_prefill && cfg->max_model_len > t) /* without chunking a whole prompt must fit */
            t = cfg->max_model_len;
        if ((long)cfg->max_num_seqs * cfg->max_model_len < t)
            t = (long)cfg->max_num_seqs * cfg->max_model_len;
        cfg->max_num_batched_tokens = (int)t;
    }
    if (!seqs_given && cfg->max_num_seqs > cfg->max_num_batched_tokens)
        cfg->max_num_seqs = cfg->max_num_batched_tokens;
    if (cfg->max_num_batched_tokens < cfg->max_num_seqs) {
        snprintf(err, errlen,
                 "ValueError: max_num_batched_tokens (%d) must be greater than or equal to max_num_seqs (%d).",
                 cfg->max_num_batched_tokens, cfg->max_num_seqs);
        return -1;
    }
    if (!cfg->chunked_prefill && cfg->max_num_batched_tokens < cfg->max_model_len) {
        snprintf(err, errlen,
                 "ValueError: max_num_batched_tokens (%d) is smaller than max_model_len (%d). This effectively limits "
                 "the maximum sequence length to max_num_batched_tokens and makes vLLM reject longer sequences. Please "
                 "increase max_num_batched_tokens or decrease max_model_len.",
                 cfg->max_num_batched_tokens, cfg->max_model_len);
        return -1;
    }
    return 0;
}

void sim_config_batch_defaults(const sim_hw *hw, int *max_num_batched_tokens, int *max_num_seqs) {
    char lower[sizeof hw->device_name];
    size_t i = 0;
    for (; hw->device_name[i] && i + 1 < sizeof lower; i++)
        lower[i] = (char)tolower((unsigned char)hw->device_name[i]);
    lower[i] = '\0';
    int big = hw->mem_bytes >= 70.0 * 1073741824.0 && !strstr(lower, "a100");
    *max_num_batched_tokens = hw->default_batched > 0 ? hw->default_batched : big ? 8192 : 2048;
    *max_num_seqs = big ? 1024 : 256;
}

int sim_config_load_profiles(sim_config *cfg, sim_hw *hw, sim_modelp *m, char *err, size_t errlen) {
    char why[768];
    if (sim_hw_load(cfg->config_dir, cfg->hardware, hw, why, sizeof why)) {
        snprintf(err, errlen, "--hardware: %s", why);
        return -1;
    }
    if (!cfg->model_profile[0]) {
        /* --model Qwen/Qwen2.5-3B-Instruct picks that profile when one exists. */
        if (cfg->model[0] && sim_model_load(cfg->config_dir, cfg->model, m, why, sizeof why) == 0)
            snprintf(cfg->model_profile, sizeof cfg->model_profile, "%s", cfg->model);
        else
            snprintf(cfg->model_profile, sizeof cfg->model_profile, "Qwen2.5-0.5B-Instruct");
    }
    if (sim_model_load(cfg->config_dir, cfg->model_profile, m, why, sizeof why)) {
        snprintf(err, errlen, "--model-profile: %s", why);
        return -1;
    }
    return 0;
}
