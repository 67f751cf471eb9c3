/*
 * sim_predict_cli.c - the command-line face of sim_predict: sets the profiles and vLLM's defaults up as
 * the server would (same checks, same messages), sizes the KV cache, runs the closed-loop benchmark on
 * the simulated clock, and prints the result. Batch mode exists so a calibration or a tuner can ask
 * for thousands of predictions from one process.
 */
#include "sim_predict_cli.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_cost.h"
#include "sim_predict.h"

#define GIB 1073741824.0

/* One prediction's inputs and outputs; stage says how far it got. */
typedef struct predict_result {
    enum { P_BAD_PROFILE, P_REFUSED, P_FAILED, P_OK } stage;
    char err[1024];
    sim_hw hw;
    sim_modelp m;
    sim_memory mem;
    sim_predict_in in;
    sim_predict_out out;
} predict_result;

static void predict(sim_config *cfg, predict_result *r) {
    memset(r, 0, sizeof *r);
    if (sim_config_load_profiles(cfg, &r->hw, &r->m, r->err, sizeof r->err)) {
        r->stage = P_BAD_PROFILE;
        return;
    }
    r->stage = P_REFUSED;
    if (sim_config_finalize(cfg, &r->hw, &r->m, r->err, sizeof r->err) ||
        sim_memory_plan(&r->hw, &r->m, cfg->gpu_memory_utilization, cfg->block_size, cfg->max_model_len, &r->mem,
                        r->err, sizeof r->err))
        return;
    r->stage = P_FAILED;
    sim_predict_in *in = &r->in;
    in->concurrency = cfg->concurrency > 0 ? cfg->concurrency : 1;
    in->num_prompts = cfg->num_prompts > 0 ? cfg->num_prompts : 10 * in->concurrency;
    in->input_len = cfg->input_len > 0 ? cfg->input_len : 200;
    in->output_len = cfg->output_len > 0 ? cfg->output_len : 200;
    in->sched = sim_config_sched(cfg, r->mem.num_blocks);
    if (sim_predict_run(&r->hw, &r->m, in, &r->out, r->err, sizeof r->err) == 0)
        r->stage = P_OK;
}

static void print_text(const sim_config *cfg, const predict_result *r) {
    if (r->stage == P_BAD_PROFILE) {
        fprintf(stderr, "tlab-sim: error: %s\n", r->err);
        return;
    }
    printf("model %s on %s (step model v%d)\n", r->m.name, r->hw.name, r->hw.step_model);
    if (r->stage == P_REFUSED) {
        printf("fits: no -- vLLM would not start:\n  %s\n", r->err);
        return;
    }
    const sim_memory *mem = &r->mem;
    const sim_predict_in *in = &r->in;
    long need = (long)in->concurrency * (in->input_len + in->output_len);
    printf("settings: max_model_len %d, max_num_seqs %d, max_num_batched_tokens %d, chunked prefill %s, "
           "async scheduling %s, gpu_memory_utilization %.2f\n",
           cfg->max_model_len, cfg->max_num_seqs, cfg->max_num_batched_tokens, cfg->chunked_prefill ? "on" : "off",
           cfg->async_scheduling ? "on" : "off", cfg->gpu_memory_utilization);
    printf("memory: weights %.2f GiB, KV cache %.2f GiB = %ld tokens (%.2fx max_model_len)\n", mem->weight_bytes / GIB,
           mem->kv_avail_bytes / GIB, mem->capacity_tokens, mem->max_concurrency);
    printf("fits: yes%s\n", need > mem->capacity_tokens ? " (but the benchmark's requests need more KV than that: "
                                                          "expect preemptions)" : "");
    printf("benchmark: %d prompts, %d in flight, %d input + %d output tokens, ignore_eos\n", in->num_prompts,
           in->concurrency, in->input_len, in->output_len);
    if (r->stage == P_FAILED) {
        printf("prediction failed: %s\n", r->err);
        return;
    }
    const sim_predict_out *o = &r->out;
    printf("TTFT  mean %8.2f ms   median %8.2f ms\n", o->ttft_mean_s * 1e3, o->ttft_median_s * 1e3);
    printf("TPOT  mean %8.3f ms   median %8.3f ms\n", o->tpot_mean_s * 1e3, o->tpot_median_s * 1e3);
    printf("E2E   mean %8.1f ms   median %8.1f ms\n", o->e2e_mean_s * 1e3, o->e2e_median_s * 1e3);
    printf("throughput %.3f req/s, %.1f output tok/s over %.2f s (%ld steps, %llu preemptions, GPU-bound %.0f %% of "
           "the time)\n",
           o->req_per_s, o->out_tok_per_s, o->duration_s, o->steps, o->preemptions, o->gpu_bound_frac * 100);
}

static void print_json(const sim_config *cfg, const predict_result *r) {
    json_t *j = json_object();
    json_object_set_new(j, "ok", json_boolean(r->stage == P_OK));
    if (r->stage != P_BAD_PROFILE)
        json_object_set_new(j, "fits", json_boolean(r->stage != P_REFUSED));
    if (r->stage != P_OK)
        json_object_set_new(j, "error", json_string(r->err));
    if (r->stage >= P_FAILED) {
        json_object_set_new(j, "max_num_seqs", json_integer(cfg->max_num_seqs));
        json_object_set_new(j, "max_num_batched_tokens", json_integer(cfg->max_num_batched_tokens));
        json_object_set_new(j, "kv_capacity_tokens", json_integer(r->mem.capacity_tokens));
    }
    if (r->stage == P_OK) {
        const sim_predict_out *o = &r->out;
        json_object_set_new(j, "ttft_mean_ms", json_real(o->ttft_mean_s * 1e3));
        json_object_set_new(j, "ttft_median_ms", json_real(o->ttft_median_s * 1e3));
        json_object_set_new(j, "tpot_mean_ms", json_real(o->tpot_mean_s * 1e3));
        json_object_set_new(j, "tpot_median_ms", json_real(o->tpot_median_s * 1e3));
        json_object_set_new(j, "e2e_mean_ms", json_real(o->e2e_mean_s * 1e3));
        json_object_set_new(j, "e2e_median_ms", json_real(o->e2e_median_s * 1e3));
        json_object_set_new(j, "req_per_s", json_real(o->req_per_s));
        json_object_set_new(j, "output_tok_per_s", json_real(o->out_tok_per_s));
        json_object_set_new(j, "preemptions", json_integer((json_int_t)o->preemptions));
        json_object_set_new(j, "gpu_bound_frac", json_real(o->gpu_bound_frac));
    }
    char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", s ? s : "{\"ok\":false,\"error\":\"out of memory\"}");
    free(s);
    json_decref(j);
}

/* Splits line into at most max-1 whitespace-separated words after a dummy argv[0]; modifies line. */
static int split_words(char *line, char **argv, int max) {
    int n = 0;
    argv[n++] = "tlab-sim";
    for (char *save = NULL, *w = strtok_r(line, " \t\r\n", &save); w && n < max; w = strtok_r(NULL, " \t\r\n", &save))
        argv[n++] = w;
    return n;
}

int sim_predict_cli(sim_config *cfg) {
    static predict_result r; /* large (two profiles, messages): keep it off the stack */
    if (cfg->predict == 1) {
        predict(cfg, &r);
        print_text(cfg, &r);
        return r.stage == P_BAD_PROFILE ? 2 : r.stage == P_OK ? 0 : 1;
    }
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        char *argv[128];
        int argc = split_words(line, argv, 128);
        if (argc == 1)
            continue;
        sim_config c;
        sim_config_defaults(&c);
        snprintf(c.config_dir, sizeof c.config_dir, "%s", cfg->config_dir);
        if (sim_config_parse(&c, argc, argv, r.err, sizeof r.err) != 0) {
            r.stage = P_BAD_PROFILE;
            print_json(&c, &r);
        } else {
            predict(&c, &r);
            print_json(&c, &r);
        }
        fflush(stdout);
    }
    return 0;
}
