/*
 * sim_cost.h - the two formulas the simulator is built on: how many tokens of KV cache fit on the GPU
 * at start-up, and how long one continuous-batching step takes. Pure functions; see docs/simulator.md.
 */
#ifndef SIM_COST_H
#define SIM_COST_H

#include <stddef.h>

#include "sim_profile.h"

/* Result of the start-up memory accounting (vLLM's gpu_worker determine_available_memory). */
typedef struct sim_memory {
    double requested_bytes; /* total * gpu_memory_utilization */
    double weight_bytes;
    double kv_avail_bytes;  /* what is left for the KV cache; may be <= 0 */
    double kv_bytes_per_token;
    long num_blocks;        /* KV blocks of block_size tokens */
    long capacity_tokens;   /* num_blocks * block_size */
    double max_concurrency; /* capacity_tokens / max_model_len */
} sim_memory;

/*
 * Sizes the KV cache. Returns 0 when at least one max_model_len sequence fits; otherwise -1 with a
 * vLLM-worded error in err (the CUDA OOM when weights exceed the GPU, "No available memory for the
 * cache blocks" when nothing is left, or "To serve at least one request ..." when too little is).
 */
int sim_memory_plan(const sim_hw *hw, const sim_modelp *m, double gpu_util, int block_size, int max_model_len,
                    sim_memory *out, char *err, size_t errlen);

/* What one step computes: the scheduler fills it, the cost model prices it. */
typedef struct sim_step_shape {
    int prefill_tokens;    /* prompt tokens computed this step (all chunks) */
    int decode_seqs;       /* sequences decoding one token */
    int prefill_seqs;      /* sequences computing a prompt chunk (v2 prices their host work per sequence) */
    long long ctx_tokens;  /* sum over scheduled sequences of their context length after the step */
    long long attn_pairs;  /* causal attention's (query, key) pairs this step: a sequence computing n tokens
                              after c cached ones has n x c + n (n + 1) / 2 */
} sim_step_shape;

/* The three parts of a v2 step; they run concurrently, so the step takes the longest of them. */
typedef struct sim_step_parts {
    double gpu;  /* layers * layer_launch + max(compute, memory) */
    double host; /* host_step + host_seq * sequences + beta1 * prefill_tokens (engine core) */
    double api;  /* api_token * tokens sent (the API server process) */
} sim_step_parts;

/*
 * Simulated duration of one step in seconds.
 *   compute = 2 * params * (prefill_tokens + decode_seqs) / (peak_flops * eff_compute)
 *             (v2 adds 4 * layers * q_heads * head_dim * attn_pairs to the FLOPs)
 *   memory  = (weight_bytes + ctx_tokens * kv_bytes_per_token) / (bandwidth * eff_mem)
 * Step model 1 (profiles without host_step_ms):
 *   beta0 + max(compute, memory) + beta1 * prefill_tokens + beta2 * decode_seqs
 * Step model 2: max(gpu, host, api) of sim_step_split(), because vLLM V1 overlaps its CPU work with the
 * GPU's (the API server is a process of its own; the engine core launches the GPU's work and prepares
 * while it runs) and published single-stream TPOTs fit the larger of the two, not their sum, with
 * async scheduling off as well as on (docs/simulator.md §3). The flag changes admission only.
 */
double sim_step_seconds(const sim_hw *hw, const sim_modelp *m, const sim_step_shape *s);

/* The v2 parts of a step (also defined for v1 profiles, whose host-side keys are then zero). */
void sim_step_split(const sim_hw *hw, const sim_modelp *m, const sim_step_shape *s, sim_step_parts *out);

/*
 * When a request sent at `arrival` reaches the engine core. vLLM's API server is one process with one
 * event loop: part of each request's pre-processing (api_serial: parsing, tokenization, hand-off) runs
 * there one request at a time, the rest (api_overhead in all) is latency that overlaps. The serial part
 * is the last api_serial of the api_overhead (clipped to it), so a lone request waits api_overhead and
 * the n-th of a burst sent together api_overhead + (n - 1) x api_serial: a closed-loop wave reaches the
 * engine spread out, which is what makes TTFT grow with concurrency. *api_free is the loop's busy-until
 * time (start at 0); arrivals must come in time order.
 */
double sim_api_ready(const sim_hw *hw, double *api_free, double arrival);

#endif
