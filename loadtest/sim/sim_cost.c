/*
 * sim_cost.c - KV-cache sizing at start-up and the step time.
 * Why host time at all: for sub-2B models a decode step is dominated by host work (scheduling, sampling,
 * detokenizing); a pure roofline predicts ~0.6 ms on an A100 where vLLM measures ~4.2 ms. Why v2 takes
 * the larger of GPU and host time instead of their sum (v1): vLLM V1 overlaps them, and v1's sum made
 * 1.7B-8B models 15-50 % too slow on A100/H100 (issue 20; docs/simulator.md, section 3).
 */
#include "sim_cost.h"

#include <math.h>
#include <stdio.h>

#define GIB 1073741824.0

int sim_memory_plan(const sim_hw *hw, const sim_modelp *m, double gpu_util, int block_size, int max_model_len,
                    sim_memory *out, char *err, size_t errlen) {
    out->requested_bytes = hw->mem_bytes * gpu_util;
    out->weight_bytes = sim_model_weight_bytes(m);
    out->kv_bytes_per_token = sim_model_kv_bytes_per_token(m);
    out->kv_avail_bytes = out->requested_bytes - out->weight_bytes - hw->overhead_bytes;
    out->num_blocks = 0;
    out->capacity_tokens = 0;
    out->max_concurrency = 0;
    if (out->weight_bytes > hw->mem_bytes) {
        /* vLLM never gets to the KV check: loading the weights fails inside torch. */
        snprintf(err, errlen,
                 "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate %.2f GiB. GPU 0 has a total capacity of "
                 "%.2f GiB of which %.2f GiB is free.",
                 out->weight_bytes / GIB, hw->mem_bytes / GIB, 0.0);
        return -1;
    }
    if (out->kv_avail_bytes <= 0) {
        snprintf(err, errlen,
                 "ValueError: No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
                 "initializing the engine.");
        return -1;
    }
    double block_bytes = out->kv_bytes_per_token * block_size;
    out->num_blocks = (long)floor(out->kv_avail_bytes / block_bytes);
    out->capacity_tokens = out->num_blocks * (long)block_size;
    out->max_concurrency = (double)out->capacity_tokens / max_model_len;
    double needed = ceil((double)max_model_len / block_size) * block_bytes;
    if (needed > out->kv_avail_bytes) {
        long est = out->capacity_tokens; /* vLLM binary-searches the same quantity */
        snprintf(err, errlen,
                 "ValueError: To serve at least one request with the models's max seq len (%d), (%.2f GiB KV cache is "
                 "needed, which is larger than the available KV cache memory (%.2f GiB). Based on the available memory, "
                 "the estimated maximum model length is %ld. Try increasing `gpu_memory_utilization` or decreasing "
                 "`max_model_len` when initializing the engine.",
                 max_model_len, needed / GIB, out->kv_avail_bytes / GIB, est);
        return -1;
    }
    return 0;
}

/* The roofline part shared by both step models: the larger of the FLOPs and the bytes. v2 also prices
 * attention's own FLOPs (QK^T and AV: 2 x 2 x head_dim per query head, layer and (query, key) pair):
 * the weights' 2 x params per token miss them, and for a 32K-token prompt of Qwen3-14B they add 44 %
 * (prefill of the GPUStack H100 points, docs/simulator.md section 6). v1 keeps its fitted form. */
static double roofline(const sim_hw *hw, const sim_modelp *m, const sim_step_shape *s, int attention) {
    double tokens = (double)s->prefill_tokens + s->decode_seqs;
    double flop = 2.0 * m->params * tokens;
    if (attention)
        flop += 4.0 * m->layers * m->q_heads * m->head_dim * (double)s->attn_pairs;
    double compute = flop / (hw->flops * hw->eff_compute);
    double memory = (sim_model_weight_bytes(m) + (double)s->ctx_tokens * sim_model_kv_bytes_per_token(m)) /
                    (hw->bw_bytes_s * hw->eff_mem);
    return compute > memory ? compute : memory;
}

void sim_step_split(const sim_hw *hw, const sim_modelp *m, const sim_step_shape *s, sim_step_parts *out) {
    int seqs = s->decode_seqs + s->prefill_seqs;
    out->gpu = m->layers * hw->layer_launch_s + roofline(hw, m, s, 1);
    out->host = hw->host_step_s + hw->host_seq_s * seqs + hw->beta1_s * s->prefill_tokens;
    /* A prefill chunk that is not the prompt's last sends nothing; counting it keeps the scheduler
     * out of the cost model and errs by at most one token per long prompt. */
    out->api = hw->api_token_s * seqs;
}

double sim_api_ready(const sim_hw *hw, double *api_free, double arrival) {
    double serial = hw->api_serial_s < hw->api_overhead_s ? hw->api_serial_s : hw->api_overhead_s;
    double start = arrival + hw->api_overhead_s - serial;
    if (start < *api_free)
        start = *api_free;
    *api_free = start + serial;
    return *api_free;
}

double sim_step_seconds(const sim_hw *hw, const sim_modelp *m, const sim_step_shape *s) {
    if (hw->step_model != 2)
        return hw->beta0_s + roofline(hw, m, s, 0) + hw->beta1_s * s->prefill_tokens + hw->beta2_s * s->decode_seqs;
    sim_step_parts p;
    sim_step_split(hw, m, s, &p);
    double d = p.gpu > p.host ? p.gpu : p.host;
    return d > p.api ? d : p.api;
}
