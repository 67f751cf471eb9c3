/*
 * test_sim_cost.c - KV-cache sizing (capacity, concurrency, the three OOM messages) and the step-time
 * formula, against hand-computed values. Profiles are read from the source tree's configs/.
 */
#include <math.h>

#include "sim_cost.h"
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
}

static void test_step_time(void) {
    sim_hw hw;
    sim_modelp m;
    char err[256];
    CHECK(sim_hw_load("configs", "h100-80gb", &hw, err, sizeof err) == 0);
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

int main(void) {
    test_memory();
    test_step_time();
    return tlab_test_finish();
}
