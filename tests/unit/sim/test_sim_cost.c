/*
 * test_sim_cost.c - KV-cache sizing (capacity, concurrency, the three OOM messages) and the step-time
 * formula, against hand-computed values. Profiles are read from the source tree's configs/.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sim_cost.h"
#include "sim_predict.h"
#include "tlab_test.h"

/* Passes an array as a pointer, so CHECK_STR_CONTAINS's NULL test does not trip -Waddress. */
static inline const char *S(const char *s) { return s; }

#define NEAR(a, b, rel) (fabs((a) - (b)) <= (rel) * fabs(b))

static void test_memory(void) {
    sim_hw hw;
    sim_modelp m;
    sim_memory mem;
    char err[1024];
    CHECK(sim_hw_load("configs", "rtx3050-4gb", &hw, err, sizeof err) == 0);
    CHECK(sim_model_load("configs", "Qwen2.5-0.5B-Instruct", &m, err, sizeof err) == 0);
    CHECK(sim_model_kv_bytes_per_token(&m) == 12288.0); /* 2 * 24 layers * 2 heads * 64 * 2 bytes */
    CHECK(sim_memory_plan(&hw, &m, 0.9, 16, 32768, &mem, err, sizeof err) == 0);
    double avail = 3.81 * 0.9 * 1073741824.0 - 494032768.0 * 2 - 0.6 * 1073741824.0;
    CHECK(mem.capacity_tokens == (long)floor(avail / (12288.0 * 16)) * 16);
    CHECK(NEAR(mem.max_concurrency, mem.capacity_tokens / 32768.0, 1e-9));

    /* Too little left for one max_model_len sequence: vLLM's ValueError with the estimate. */
    CHECK(sim_memory_plan(&hw, &m, 0.45, 16, 32768, &mem, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(S(err), "To serve at least one request with the models's max seq len (32768)");
    CHECK_STR_CONTAINS(S(err), "Based on the available memory, the estimated maximum model length is");
    CHECK_STR_CONTAINS(S(err), "Try increasing `gpu_memory_utilization` or decreasing `max_model_len`");

    /* Nothing left after weights and overhead. */
    CHECK(sim_memory_plan(&hw, &m, 0.2, 16, 512, &mem, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(S(err), "No available memory for the cache blocks");

    /* Weights larger than the GPU. */
    sim_modelp big;
    CHECK(sim_model_load("configs", "Qwen2.5-3B-Instruct", &big, err, sizeof err) == 0);
    CHECK(sim_memory_plan(&hw, &big, 0.9, 16, 512, &mem, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(S(err), "CUDA out of memory");

    CHECK(sim_hw_load("configs", "no-such-gpu", &hw, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(S(err), "no-such-gpu");

    /* The h100-80gb profile against vLLM v0.19.0's own start-up logs on an H100 80GB (TP 1,
     * --gpu-memory-utilization 0.95; llm-d-planner's accuracy report, docs/simulator.md section 1):
     * "GPU KV cache size" 476,016 tokens for Llama-3.1-8B-Instruct and 1,096,000 for Qwen2.5-7B-Instruct. */
    static const struct {
        const char *model;
        double tokens;
    } logged[] = {{"Llama-3.1-8B-Instruct", 476016}, {"Qwen2.5-7B-Instruct", 1096000}};
    CHECK(sim_hw_load("configs", "h100-80gb", &hw, err, sizeof err) == 0);
    for (size_t i = 0; i < sizeof logged / sizeof logged[0]; i++) {
        CHECK(sim_model_load("configs", logged[i].model, &m, err, sizeof err) == 0);
        CHECK(sim_memory_plan(&hw, &m, 0.95, 16, 16384, &mem, err, sizeof err) == 0);
        CHECK_MSG(NEAR((double)mem.capacity_tokens, logged[i].tokens, 0.02), "%s: %ld tokens, vLLM logged %.0f",
                  logged[i].model, mem.capacity_tokens, logged[i].tokens);
    }
}

static void test_step_time(void) {
    sim_hw hw;
    sim_modelp m;
    char err[256];
    /* A v1 profile (today's h100-80gb, kept for the calibration's comparison) still loads and prices
     * steps with the v1 formula. */
    CHECK(sim_hw_load("configs", "loadtest/sim/calibration/v1/h100-80gb.yaml", &hw, err, sizeof err) == 0);
    CHECK(hw.step_model == 1);
    CHECK(sim_model_load("configs", "Qwen2.5-0.5B-Instruct", &m, err, sizeof err) == 0);
    sim_step_shape one = {.decode_seqs = 1, .ctx_tokens = 300};
    double mem = (494032768.0 * 2 + 300 * 12288.0) / (3350e9 * 0.75);
    double want = 3.3e-3 + mem + 20e-6;
    CHECK_MSG(NEAR(sim_step_seconds(&hw, &m, &one), want, 1e-9), "%g vs %g", sim_step_seconds(&hw, &m, &one), want);
    /* A big prefill is compute bound. */
    sim_step_shape pf = {.prefill_tokens = 8192, .ctx_tokens = 8192};
    double comp = 2 * 494032768.0 * 8192 / (989e12 * 0.5);
    CHECK(NEAR(sim_step_seconds(&hw, &m, &pf), 3.3e-3 + comp + 2e-6 * 8192, 1e-9));
    /* More decoding sequences never make a step shorter. */
    double prev = 0;
    for (int n = 1; n <= 512; n *= 2) {
        sim_step_shape s = {.decode_seqs = n, .ctx_tokens = 400LL * n};
        double d = sim_step_seconds(&hw, &m, &s);
        CHECK(d >= prev);
        prev = d;
    }
}

/* A made-up GPU and model with round numbers, so every case below is checkable by hand. */
static const sim_hw HW2 = {.step_model = 2, .mem_bytes = 80.0 * 1073741824.0, .bw_bytes_s = 1000e9, .flops = 100e12,
                           .eff_compute = 0.5, .eff_mem = 0.8, .layer_launch_s = 40e-6, .host_step_s = 4e-3,
                           .host_seq_s = 20e-6, .beta1_s = 2e-6, .api_token_s = 10e-6, .api_overhead_s = 10e-3};
static const sim_modelp M2 = {.params = 1e9, .layers = 24, .kv_heads = 2, .head_dim = 64, .dtype_bytes = 2,
                              .max_model_len = 4096}; /* 2 GB of weights, 12,288 KV bytes per token */

/* Step model v2: max(GPU, host, API server), each part hand-computed. */
static void test_step_time_v2(void) {
    static const struct {
        const char *what;
        sim_step_shape shape;
        double gpu_ms, host_ms, api_ms, step_ms;
    } cases[] = {
        /* gpu = 24 x 40 us + (2e9 + 300 x 12288) / 800e9 = 0.96 + 2.5046; host = 4 + 0.02 */
        {"lone decode: host-bound", {.decode_seqs = 1, .ctx_tokens = 300}, 3.46461, 4.02, 0.01, 4.02},
        /* compute = 2e9 x 256 / 50e12 = 10.24 > memory 4.073; host = 4 + 256 x 0.02 = 9.12 */
        {"256 decodes: compute-bound", {.decode_seqs = 256, .ctx_tokens = 102400}, 11.2, 9.12, 2.56, 11.2},
        /* compute = 2e9 x 2048 / 50e12 = 81.92; host = 4 + 0.02 + 2048 x 0.002 */
        {"2048-token prefill", {.prefill_tokens = 2048, .prefill_seqs = 1, .ctx_tokens = 2048}, 82.88, 8.116, 0.01,
         82.88},
        /* 8 prompt chunks and 100 decodes: host = 4 + 108 x 0.02 + 1000 x 0.002 = 8.16;
         * compute = 2e9 x 1100 / 50e12 = 44 */
        {"mixed step", {.prefill_tokens = 1000, .prefill_seqs = 8, .decode_seqs = 100, .ctx_tokens = 40000}, 44.96,
         8.16, 1.08, 44.96},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_step_parts p;
        sim_step_split(&HW2, &M2, &cases[i].shape, &p);
        double d = sim_step_seconds(&HW2, &M2, &cases[i].shape);
        CHECK_MSG(NEAR(p.gpu * 1e3, cases[i].gpu_ms, 1e-5) && NEAR(p.host * 1e3, cases[i].host_ms, 1e-9) &&
                      NEAR(p.api * 1e3, cases[i].api_ms, 1e-9) && NEAR(d * 1e3, cases[i].step_ms, 1e-5),
                  "%s: gpu %.5f host %.5f api %.5f step %.5f ms", cases[i].what, p.gpu * 1e3, p.host * 1e3,
                  p.api * 1e3, d * 1e3);
    }
    /* Attention FLOPs, with the model's query heads given: a 2048-token prompt has 2048 x 2049 / 2
     * (query, key) pairs at 4 x 24 layers x 8 heads x 64 = 49,152 FLOPs each, 103.1 GFLOPs on top of
     * the weights' 4,096: compute = 4,199.1 GFLOPs / 50 TFLOP/s = 83.983 ms, GPU 84.943 ms. */
    sim_modelp heads = M2;
    heads.q_heads = 8;
    sim_step_shape pf = {.prefill_tokens = 2048, .prefill_seqs = 1, .ctx_tokens = 2048, .attn_pairs = 2048LL * 2049 / 2};
    sim_step_parts pa;
    sim_step_split(&HW2, &heads, &pf, &pa);
    CHECK_MSG(NEAR(pa.gpu * 1e3, 0.96 + (4.096e12 + 49152.0 * 2098176) / 50e12 * 1e3, 1e-9) && NEAR(pa.gpu * 1e3, 84.942, 1e-3),
              "attention FLOPs: gpu %.5f ms", pa.gpu * 1e3);
    /* The API server can be the bottleneck: 10 ms per token x 32 streams. */
    sim_hw slow_api = HW2;
    slow_api.api_token_s = 10e-3;
    sim_step_shape s = {.decode_seqs = 32, .ctx_tokens = 32 * 300};
    CHECK(NEAR(sim_step_seconds(&slow_api, &M2, &s), 0.32, 1e-9));
    /* A v1 profile ignores the v2 keys. */
    sim_hw v1 = HW2;
    v1.step_model = 1;
    v1.beta0_s = 3e-3;
    v1.beta2_s = 20e-6;
    sim_step_shape one = {.decode_seqs = 1, .ctx_tokens = 300};
    CHECK(NEAR(sim_step_seconds(&v1, &M2, &one), 3e-3 + (2e9 + 300 * 12288.0) / 800e9 + 20e-6, 1e-9));
    /* and prices no attention FLOPs (its constants were fitted without them) */
    CHECK(NEAR(sim_step_seconds(&v1, &heads, &pf), 3e-3 + 4.096e12 / 50e12 + 2048 * 2e-6, 1e-9));
}

/* The API server: a lone request waits api_overhead; a burst queues on the serial part, which is the
 * last api_serial of each request's api_overhead. */
static void test_api_ready(void) {
    sim_hw hw = HW2; /* api_overhead 10 ms */
    hw.api_serial_s = 4e-3;
    double busy = 0;
    CHECK(NEAR(sim_api_ready(&hw, &busy, 1.0), 1.010, 1e-12)); /* alone: 10 ms */
    CHECK(NEAR(busy, 1.010, 1e-12));
    /* Five at once at t = 2: serial parts start at 2.006 and run back to back, 4 ms each. */
    double want[] = {2.010, 2.014, 2.018, 2.022, 2.026};
    for (int i = 0; i < 5; i++) {
        double r = sim_api_ready(&hw, &busy, 2.0);
        CHECK_MSG(NEAR(r, want[i], 1e-12), "burst %d: %.6f want %.6f", i, r, want[i]);
    }
    /* One that arrives while the loop is still busy with the burst starts its serial part after it:
     * at 2.026, not at 2.018 + 0.006 = 2.024. */
    CHECK(NEAR(sim_api_ready(&hw, &busy, 2.018), 2.030, 1e-12));
    hw.api_serial_s = 0; /* v1 profiles: pure latency */
    busy = 0;
    for (int i = 0; i < 3; i++)
        CHECK(NEAR(sim_api_ready(&hw, &busy, 3.0), 3.010, 1e-12));
    hw.api_serial_s = 20e-3; /* above the overhead: the serial part is all of it */
    busy = 0;
    CHECK(NEAR(sim_api_ready(&hw, &busy, 4.0), 4.010, 1e-12));
    CHECK(NEAR(sim_api_ready(&hw, &busy, 4.0), 4.020, 1e-12));
}

/* Every shipped GPU and model profile loads; the GPUs use step model v2; the model's bytes are sane. */
static void test_profiles(void) {
    static const char *const gpus[] = {"rtx3050-4gb", "t4-16gb", "l4-24gb", "a10g-24gb", "rtx4090-24gb", "l40s-48gb",
                                       "a100-40gb", "a100-80gb", "h100-80gb", "h200-141gb"};
    static const char *const models[] = {"Qwen2.5-0.5B-Instruct", "Qwen2.5-1.5B-Instruct", "Qwen2.5-3B-Instruct",
                                         "Qwen2.5-7B-Instruct", "Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B", "Qwen3-8B",
                                         "Qwen3-14B", "Llama-3.2-1B-Instruct", "Llama-3.2-3B-Instruct",
                                         "Llama-3.1-8B-Instruct", "Mistral-7B-Instruct-v0.3"};
    char err[1024];
    for (size_t i = 0; i < sizeof gpus / sizeof gpus[0]; i++) {
        sim_hw hw;
        CHECK_MSG(sim_hw_load("configs", gpus[i], &hw, err, sizeof err) == 0, "%s: %s", gpus[i], err);
        CHECK_MSG(hw.step_model == 2 && hw.host_step_s > 0 && hw.layer_launch_s > 0 && hw.device_name[0], "%s",
                  gpus[i]);
    }
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        sim_modelp m;
        CHECK_MSG(sim_model_load("configs", models[i], &m, err, sizeof err) == 0, "%s: %s", models[i], err);
        CHECK_MSG(m.params > 4e8 && m.params < 1.6e10 && m.max_model_len >= 32768, "%s", models[i]);
        /* every shipped model prices attention: its query heads are a multiple of its KV heads (GQA) */
        CHECK_MSG(m.q_heads >= m.kv_heads && m.q_heads % m.kv_heads == 0, "%s: %d query heads", models[i], m.q_heads);
    }
    /* A made-up profile: num_attention_heads may be left out (no attention FLOPs); given, it is a whole
     * multiple of the 2 KV heads. */
    char dir[] = "/tmp/tlab-sim-model-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/m.yaml", dir);
    static const char *const heads[] = {"", "num_attention_heads: 16\n", "num_attention_heads: 0\n",
                                        "num_attention_heads: 3\n", "num_attention_heads: 16.5\n",
                                        "num_attention_heads: nan\n"};
    for (int k = 0; k < (int)(sizeof heads / sizeof heads[0]); k++) {
        FILE *f = fopen(path, "w");
        CHECK(f != NULL);
        if (!f)
            break;
        fprintf(f, "params: 1000000000\nnum_layers: 24\nnum_kv_heads: 2\nhead_dim: 64\ndtype_bytes: 2\n"
                   "max_model_len: 4096\n%s", heads[k]);
        fclose(f);
        sim_modelp m;
        int rc = sim_model_load("configs", path, &m, err, sizeof err);
        CHECK_MSG(k < 2 ? rc == 0 && m.q_heads == 16 * k : rc == -1 && strstr(err, "num_attention_heads"), "case %d: %s", k,
                  err);
    }
    /* Every numeric key of a GPU profile refuses what strtod reads but no GPU has: NaN, infinities,
     * negatives (here peak_tflops in a copy of the rtx3050 profile); the error names the key. */
    static const char *const bad[] = {"nan", "inf", "-inf", "-1", "1e999", "12x"};
    for (int k = -1; k < (int)(sizeof bad / sizeof bad[0]); k++) {
        FILE *in = fopen("configs/hardware/rtx3050-4gb.yaml", "r"), *out = fopen(path, "w");
        CHECK(in != NULL && out != NULL);
        if (!in || !out) {
            if (in)
                fclose(in);
            if (out)
                fclose(out);
            break;
        }
        char line[512];
        while (fgets(line, sizeof line, in))
            if (strncmp(line, "peak_tflops:", 12) == 0)
                fprintf(out, "peak_tflops: %s\n", k < 0 ? "13.5" : bad[k]); /* 13.5: the copy is what loads */
            else
                fputs(line, out);
        fclose(in);
        fclose(out);
        sim_hw hw;
        int rc = sim_hw_load("configs", path, &hw, err, sizeof err);
        CHECK_MSG(k < 0 ? rc == 0 && hw.flops == 13.5e12
                        : rc == -1 && strstr(err, "'peak_tflops' must be a finite non-negative number") != NULL,
                  "peak_tflops %s: %s", k < 0 ? "13.5" : bad[k], err);
    }
    remove(path);
    rmdir(dir);
    /* Llama-3.1-8B: 32 layers x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 131,072 bytes per token. */
    sim_modelp l;
    CHECK(sim_model_load("configs", "Llama-3.1-8B-Instruct", &l, err, sizeof err) == 0);
    CHECK(sim_model_kv_bytes_per_token(&l) == 131072.0 && l.params == 8030261248.0);
}

/* The closed-loop prediction on the same GPU: lone requests, then a batch. */
static void test_predict(void) {
    sim_predict_in in = {.concurrency = 1, .num_prompts = 2, .input_len = 128, .output_len = 4,
                         .sched = {.max_num_seqs = 256, .max_num_batched_tokens = 2048, .block_size = 16,
                                   .num_blocks = 10000, .max_model_len = 4096, .chunked_prefill = true}};
    sim_predict_out out;
    char err[256];
    CHECK(sim_predict_run(&HW2, &M2, &in, &out, err, sizeof err) == 0);
    /* TTFT = API server 10 ms + the prefill step: gpu 0.96 + max(2e9 x 128 / 50e12 = 5.12, 2.502) = 6.08 ms
     * (host 4 + 0.02 + 0.256 = 4.276). Each decode is host-bound at 4.02 ms. */
    CHECK_MSG(NEAR(out.ttft_mean_s, 16.08e-3, 1e-6) && NEAR(out.ttft_median_s, 16.08e-3, 1e-6), "ttft %g",
              out.ttft_mean_s);
    CHECK_MSG(NEAR(out.tpot_mean_s, 4.02e-3, 1e-6), "tpot %g", out.tpot_mean_s);
    CHECK_MSG(NEAR(out.e2e_mean_s, 16.08e-3 + 3 * 4.02e-3, 1e-6), "e2e %g", out.e2e_mean_s);
    /* The second request is sent when the first ends: the run lasts two E2Es. */
    CHECK(NEAR(out.duration_s, 2 * 28.14e-3, 1e-6) && NEAR(out.req_per_s, 2 / 56.28e-3, 1e-6));
    CHECK(out.steps == 8 && out.preemptions == 0 && out.gpu_bound_frac > 0.2 && out.gpu_bound_frac < 0.5);

    /* 8 in flight, arriving together: one step prefills all 8 prompts (1024 tokens in the 2048 budget),
     * so every TTFT is the same, and the decodes stay host-bound (4 + 8 x 0.02 = 4.16 ms). */
    in.concurrency = 8;
    in.num_prompts = 8;
    CHECK(sim_predict_run(&HW2, &M2, &in, &out, err, sizeof err) == 0);
    double pf = 0.96e-3 + 2 * 1e9 * 1024 / 50e12; /* 41.92 ms, compute-bound */
    CHECK_MSG(NEAR(out.ttft_mean_s, 10e-3 + pf, 1e-6), "ttft %g want %g", out.ttft_mean_s, 10e-3 + pf);
    CHECK_MSG(NEAR(out.tpot_mean_s, 4.16e-3, 1e-6), "tpot %g", out.tpot_mean_s);
    CHECK(NEAR(out.out_tok_per_s, 32 / (10e-3 + pf + 3 * 4.16e-3), 1e-6));

    /* Over a budget of 512 tokens the prompts are chunked FIFO after the running decodes.
     * step 1: prompts 1-4 whole (512 tokens): 0.96 + 2e9 x 512 / 50e12 = 21.44 ms -> 4 first tokens;
     * step 2: 4 decodes first, then 508 prompt tokens: prompts 5-7 whole, prompt 8 gets 124 of 128;
     *         512 tokens again -> 21.44 ms -> 3 first tokens;
     * step 3: 7 decodes + prompt 8's last 4 tokens: host-bound, 4 + 8 x 0.02 + 4 x 0.002 = 4.168 ms. */
    in.sched.max_num_batched_tokens = 512;
    CHECK(sim_predict_run(&HW2, &M2, &in, &out, err, sizeof err) == 0);
    double want_mean = 10e-3 + (4 * 21.44e-3 + 3 * 42.88e-3 + (42.88e-3 + 4.168e-3)) / 8;
    double want_median = 10e-3 + (21.44e-3 + 42.88e-3) / 2;
    CHECK_MSG(NEAR(out.ttft_mean_s, want_mean, 1e-6), "ttft mean %g want %g", out.ttft_mean_s, want_mean);
    CHECK_MSG(NEAR(out.ttft_median_s, want_median, 1e-6), "ttft median %g want %g", out.ttft_median_s, want_median);

    /* A prompt larger than the whole KV cache can never run. */
    in.sched.num_blocks = 4;
    CHECK(sim_predict_run(&HW2, &M2, &in, &out, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(S(err), "can never be scheduled");
}

int main(void) {
    test_memory();
    test_step_time();
    test_step_time_v2();
    test_api_ready();
    test_profiles();
    test_predict();
    return tlab_test_finish();
}
