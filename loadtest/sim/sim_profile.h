/*
 * sim_profile.h - hardware and model profiles for tlab-sim, loaded from flat YAML files under
 * <config-dir>/hardware/<name>.yaml and <config-dir>/hardware/models/<name>.yaml (libyaml).
 */
#ifndef SIM_PROFILE_H
#define SIM_PROFILE_H

#include <stddef.h>

/* A GPU as the step-time model sees it. Units are SI (bytes, seconds, FLOP/s). */
typedef struct sim_hw {
    char name[64];
    double mem_bytes;       /* total device memory, as torch reports it */
    double bw_bytes_s;      /* peak memory bandwidth */
    double flops;           /* peak dense FP16/BF16 tensor FLOP/s */
    double eff_compute;     /* achievable fraction of flops */
    double eff_mem;         /* achievable fraction of bandwidth */
    int step_model;         /* 1: beta0 + roofline + betas (v1); 2: GPU time overlapped with host time (v2) */
    double beta0_s;         /* v1: fixed cost per step */
    double beta1_s;         /* v1: extra cost per prefill token; v2: host cost per prefill token */
    double beta2_s;         /* v1: extra cost per decoding sequence */
    double layer_launch_s;  /* v2, GPU: kernel-launch / CUDA-graph-replay cost per layer per step */
    double host_step_s;     /* v2, host: engine-core work per step (schedule, prepare inputs, sample, output) */
    double host_seq_s;      /* v2, host: engine-core work per scheduled sequence per step */
    double api_token_s;     /* v2, API server process: detokenize + stream one output token */
    double overhead_bytes;  /* activations + CUDA graphs + non-torch memory, taken before the KV cache */
    char device_name[96];   /* what torch.cuda.get_device_name() says; vLLM's defaults test it for "a100" */
    int default_batched;    /* 0: vLLM's get_batch_defaults rule; > 0: an explicit override from the profile */
    double api_overhead_s;  /* HTTP + tokenization + hand-off to the engine, before a request can be scheduled */
    double api_serial_s;    /* the part of it that holds the API server's one event loop (requests queue for it) */
    double h2d_bytes_s;     /* achievable host<->device copy rate (pinned memory, the card's PCIe link) */
    double reload_bytes_s;  /* weight load rate from disk / page cache after a level-2 sleep */
    double wake_fixed_s;    /* wake cost that does not scale with the weights (KV cache re-allocation) */
} sim_hw;

/* A dense decoder model: enough to size weights and the KV cache. */
typedef struct sim_modelp {
    char name[128];
    double params;
    int layers, kv_heads, head_dim, dtype_bytes;
    int q_heads; /* num_attention_heads; 0 (not in the profile): attention FLOPs are not priced */
    int max_model_len;
} sim_modelp;

/* Bytes of weights and of KV cache per token (K and V, all layers). */
double sim_model_weight_bytes(const sim_modelp *m);
double sim_model_kv_bytes_per_token(const sim_modelp *m);

/*
 * Resolves NAME (a path if it contains '/' or ends in .yaml, else <dir>/<name>.yaml) and loads it.
 * Returns 0 on success; on failure returns -1 and writes a one-line reason into err.
 */
int sim_hw_load(const char *config_dir, const char *name, sim_hw *hw, char *err, size_t errlen);
int sim_model_load(const char *config_dir, const char *name, sim_modelp *m, char *err, size_t errlen);

#endif
