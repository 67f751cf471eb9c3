/*
 * test_sim_config.c - flag parsing (both spellings, '_' for '-', bad flags) and the checks vLLM makes,
 * as a table of cases.
 */
#include "sim_config.h"
#include "tlab_test.h"

/* Passes an array as a pointer, so CHECK_STR_CONTAINS's NULL test does not trip -Waddress. */
static inline const char *S(const char *s) { return s; }

typedef struct pcase {
    const char *argv[8];
    int rc;
    const char *err; /* substring of the message, for rc != 0 */
} pcase;

static const pcase parse_cases[] = {
    {{"tlab-sim", "--port", "9000"}, 0, NULL},
    {{"tlab-sim", "--port=9000", "--max_num_seqs=8"}, 0, NULL},
    {{"tlab-sim", "--no-enable-chunked-prefill"}, 0, NULL},
    {{"tlab-sim", "--bogus"}, -1, "unrecognized arguments: --bogus"},
    {{"tlab-sim", "--port"}, -1, "expected one argument"},
    {{"tlab-sim", "--port", "http"}, -1, "invalid int value: 'http'"},
    {{"tlab-sim", "--gpu-memory-utilization", "1.5"}, -1, "invalid float value"},
    {{"tlab-sim", "--block-size", "7"}, -1, "invalid choice: 7"},
    {{"tlab-sim", "positional"}, -1, "unrecognized arguments: positional"},
    {{"tlab-sim", "--time-scale", "0"}, -1, "invalid float value"},
    {{"tlab-sim", "--async-scheduling=maybe"}, -1, "expected true or false, got 'maybe'"},
};

static int argc_of(const char *const *argv) {
    int n = 0;
    while (n < 8 && argv[n])
        n++;
    return n;
}

static void test_parse(void) {
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const pcase *c = &parse_cases[i];
        sim_config cfg;
        char err[512] = "";
        sim_config_defaults(&cfg);
        int rc = sim_config_parse(&cfg, argc_of(c->argv), (char **)c->argv, err, sizeof err);
        CHECK_MSG(rc == c->rc, "case %zu: rc %d", i, rc);
        if (c->err)
            CHECK_STR_CONTAINS(S(err), c->err);
    }
    sim_config cfg;
    char err[256];
    const char *argv[] = {"tlab-sim", "--port=9001", "--max_num_seqs", "8", "--no-enable-chunked-prefill", "--seed=7"};
    sim_config_defaults(&cfg);
    CHECK(sim_config_parse(&cfg, 6, (char **)argv, err, sizeof err) == 0);
    CHECK(cfg.port == 9001 && cfg.max_num_seqs == 8 && cfg.chunked_prefill == 0 && cfg.seed == 7);
    /* Async scheduling is on by default, as in vLLM since v0.14; both forms and =false turn it off. */
    CHECK(cfg.async_scheduling == 1);
    const char *off[][2] = {{"tlab-sim", "--no-async-scheduling"}, {"tlab-sim", "--async-scheduling=false"},
                            {"tlab-sim", "--async_scheduling=0"}};
    for (size_t i = 0; i < sizeof off / sizeof off[0]; i++) {
        sim_config_defaults(&cfg);
        CHECK(sim_config_parse(&cfg, 2, (char **)off[i], err, sizeof err) == 0);
        CHECK_MSG(cfg.async_scheduling == 0, "%s", off[i][1]);
    }
    const char *on[] = {"tlab-sim", "--no-async-scheduling", "--async-scheduling"};
    sim_config_defaults(&cfg);
    CHECK(sim_config_parse(&cfg, 3, (char **)on, err, sizeof err) == 0 && cfg.async_scheduling == 1);
}

static void test_finalize(void) {
    sim_hw hw;
    sim_modelp m;
    char err[1024];
    CHECK(sim_hw_load("configs", "rtx3050-4gb", &hw, err, sizeof err) == 0);
    CHECK(sim_model_load("configs", "Qwen2.5-0.5B-Instruct", &m, err, sizeof err) == 0);
    sim_config cfg;

    sim_config_defaults(&cfg);
    CHECK(sim_config_finalize(&cfg, &hw, &m, err, sizeof err) == 0);
    CHECK(cfg.max_model_len == 32768 && cfg.max_num_batched_tokens == 2048 && cfg.max_num_seqs == 256);
    CHECK(!strcmp(cfg.model, "Qwen/Qwen2.5-0.5B-Instruct"));

    sim_config_defaults(&cfg);
    cfg.chunked_prefill = 0;
    CHECK(sim_config_finalize(&cfg, &hw, &m, err, sizeof err) == 0);
    CHECK(cfg.max_num_batched_tokens == 32768); /* max(max_model_len, 2048) without chunking */

    /* max_num_seqs left to vLLM's default is clamped to the token budget, as vLLM does. */
    sim_config_defaults(&cfg);
    cfg.max_num_batched_tokens = 100;
    CHECK(sim_config_finalize(&cfg, &hw, &m, err, sizeof err) == 0);
    CHECK(cfg.max_num_seqs == 100);

    sim_config_defaults(&cfg);
    cfg.max_num_seqs = 256;
    cfg.max_num_batched_tokens = 100;
    CHECK(sim_config_finalize(&cfg, &hw, &m, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(S(err), "max_num_batched_tokens (100) must be greater than or equal to max_num_seqs (256).");

    sim_config_defaults(&cfg);
    cfg.chunked_prefill = 0;
    cfg.max_num_batched_tokens = 1024;
    cfg.max_model_len = 4096;
    CHECK(sim_config_finalize(&cfg, &hw, &m, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(S(err), "is smaller than max_model_len (4096)");

    sim_config_defaults(&cfg);
    cfg.max_model_len = 65536;
    CHECK(sim_config_finalize(&cfg, &hw, &m, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(S(err), "User-specified max_model_len (65536) is greater than the derived max_model_len");
}

/* vLLM's get_batch_defaults by GPU class, and its clamps (vllm/engine/arg_utils.py). */
static void test_batch_defaults(void) {
    static const struct {
        const char *device;
        double gib;
        int chunked, max_model_len, tokens, seqs;
    } cases[] = {
        {"NVIDIA H100 80GB HBM3", 79.19, 1, 4096, 8192, 1024},
        {"NVIDIA H200", 139.8, 1, 4096, 8192, 1024},
        {"NVIDIA A100-SXM4-80GB", 79.15, 1, 4096, 2048, 256}, /* the A100 is excluded (vLLM PR #17885) */
        {"NVIDIA A100-SXM4-40GB", 39.39, 1, 4096, 2048, 256},
        {"NVIDIA L40S", 44.39, 1, 4096, 2048, 256},
        {"NVIDIA H100 80GB HBM3", 79.19, 1, 4, 4096, 1024},    /* tokens <= max_num_seqs x max_model_len */
        {"NVIDIA H100 80GB HBM3", 79.19, 0, 32768, 32768, 1024}, /* unchunked: max(max_model_len, default) */
        {"NVIDIA L4", 22.03, 1, 2, 512, 256},                   /* 256 x 2 = 512 tokens; seqs <= tokens */
        {"NVIDIA L4", 22.03, 1, 1, 256, 256},
    };
    sim_modelp m;
    char err[1024];
    CHECK(sim_model_load("configs", "Qwen2.5-0.5B-Instruct", &m, err, sizeof err) == 0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sim_hw hw = {.mem_bytes = cases[i].gib * 1073741824.0};
        snprintf(hw.device_name, sizeof hw.device_name, "%s", cases[i].device);
        sim_config cfg;
        sim_config_defaults(&cfg);
        cfg.chunked_prefill = cases[i].chunked;
        cfg.max_model_len = cases[i].max_model_len;
        CHECK_MSG(sim_config_finalize(&cfg, &hw, &m, err, sizeof err) == 0, "case %zu: %s", i, err);
        CHECK_MSG(cfg.max_num_batched_tokens == cases[i].tokens && cfg.max_num_seqs == cases[i].seqs,
                  "case %zu (%s, max_model_len %d): %d tokens / %d seqs, want %d / %d", i, cases[i].device,
                  cases[i].max_model_len, cfg.max_num_batched_tokens, cfg.max_num_seqs, cases[i].tokens, cases[i].seqs);
    }
    /* An explicit --max-num-seqs is kept, and a profile's override replaces the token figure. */
    sim_hw hw = {.mem_bytes = 79.19 * 1073741824.0, .default_batched = 4096};
    snprintf(hw.device_name, sizeof hw.device_name, "NVIDIA H100 80GB HBM3");
    sim_config cfg;
    sim_config_defaults(&cfg);
    cfg.max_num_seqs = 64;
    cfg.max_model_len = 4096;
    CHECK(sim_config_finalize(&cfg, &hw, &m, err, sizeof err) == 0);
    CHECK(cfg.max_num_seqs == 64 && cfg.max_num_batched_tokens == 4096);
}

int main(void) {
    test_parse();
    test_finalize();
    test_batch_defaults();
    return tlab_test_finish();
}
