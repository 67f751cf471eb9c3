/*
 * test_tune_config.c - the grid file: defaults, expansion order and ids, --quick, the memory
 * dominance used to skip points after an OOM, and a table of bad files with the exact
 * file:line:col each must report.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tlab_test.h"
#include "tune_config.h"

static char path[] = "/tmp/tlab-tune-test-XXXXXX";

static void write_file(const char *text) {
    tlab_test_write(path, text);
}

static void test_expand(void) {
    write_file("fixed: {max_model_len: 512}\n"
               "grid:\n"
               "  max_num_seqs: [64, 128, 256]\n"
               "  max_num_batched_tokens: [4096, 8192]\n");
    tune_config c;
    char err[512];
    CHECK_MSG(tune_config_load(path, &c, err, sizeof err) == 0, "%s", err);
    CHECK(!strcmp(c.engine, "auto") && !strcmp(c.profile, "safe") && c.time_scale == 1 && c.search.confirm_runs == 3);
    size_t n = 0;
    tune_point *p = tune_points_expand(&c, &n);
    CHECK(n == 6);
    CHECK(!strcmp(p[0].id, "max_num_seqs=64,max_num_batched_tokens=4096"));
    CHECK(!strcmp(p[1].id, "max_num_seqs=64,max_num_batched_tokens=8192")); /* the last axis varies fastest */
    CHECK(!strcmp(p[5].id, "max_num_seqs=256,max_num_batched_tokens=8192"));
    CHECK(json_integer_value(json_object_get(p[3].knobs, "max_model_len")) == 512);
    CHECK(json_integer_value(json_object_get(p[3].knobs, "max_num_seqs")) == 128);
    /* Memory dominance: more seqs and tokens, all else equal. */
    CHECK(tune_needs_more_memory(p[0].knobs, p[5].knobs));
    CHECK(tune_needs_more_memory(p[0].knobs, p[0].knobs));
    CHECK(!tune_needs_more_memory(p[5].knobs, p[0].knobs));
    CHECK(!tune_needs_more_memory(p[1].knobs, p[2].knobs)); /* more seqs but fewer tokens */
    json_t *other = json_deep_copy(p[5].knobs);
    json_object_set_new(other, "gpu_memory_utilization", json_real(0.95));
    CHECK(!tune_needs_more_memory(p[0].knobs, other)); /* another knob differs: no conclusion */
    json_decref(other);
    json_t *cj = tune_config_to_json(&c);
    CHECK(cj && json_equal(json_object_get(cj, "grid"), c.axes));
    json_decref(cj);
    tune_points_free(p, n);
    tune_config_quick(&c);
    p = tune_points_expand(&c, &n);
    CHECK(n == 4 && !strcmp(p[2].id, "max_num_seqs=256,max_num_batched_tokens=4096"));
    CHECK(c.search.confirm_runs == 1 && c.search.min_requests == 150);
    tune_points_free(p, n);
    tune_config_free(&c);
}

static void test_errors(void) {
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"grid: {max_num_seqs: [1]}\nbogus: 3\n", ":2:8: bogus: unknown key"},
        {"grid:\n  max_num_seqs: [64, x]\n", ":2:22: grid.max_num_seqs[1]: 'max_num_seqs' must be an integer"},
        {"grid:\n  max_num_seqs: []\n", ":2:17: grid.max_num_seqs: must be a non-empty list"},
        {"grid:\n  colour: [1]\n", ":2:12: grid.colour[0]: unknown key 'colour'"},
        {"fixed: {max_num_seqs: 0}\ngrid: {max_model_len: [512]}\n", ":1:23: fixed.max_num_seqs: 'max_num_seqs' must be"},
        {"grid: {max_num_seqs: [1]}\nsearch:\n  tolerance: 0.9\n", ":3:14: search.tolerance: must be in 0.005..0.5"},
        {"grid: {max_num_seqs: [1]}\nsearch: {confirm_runs: 1.5}\n", "search.confirm_runs: must be a whole number"},
        {"grid: {max_num_seqs: [1]}\nsearch: {start_rate: 0.1}\n", "search: needs min_rate <= start_rate <= max_rate"},
        {"grid: {max_num_seqs: [1]}\nengine: gpu\n", ":2:9: engine: must be auto, sim or vllm, got 'gpu'"},
        {"grid: {max_num_seqs: [1]}\nfixed: {max_num_seqs: 2}\n", "grid.max_num_seqs: is also under 'fixed'"},
        {"engine: sim\n", "grid: must be a mapping"},
        {"grid: [1, 2\n", ":2:1:"},
        {"- a\n- b\n", "the grid file must be a mapping"},
        {"grid: {max_num_seqs: [1]}\nsim_args: [--x, {a: 1}]\n", ":2:17: sim_args[1]: must be a string"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_file(cases[i].text);
        tune_config c;
        char err[512] = "";
        int rc = tune_config_load(path, &c, err, sizeof err);
        CHECK_MSG(rc == -1, "case %zu loaded", i);
        if (rc == 0)
            tune_config_free(&c);
        CHECK_MSG(strncmp(err, path, strlen(path)) == 0, "case %zu: '%s' does not start with the file", i, err);
        CHECK_STR_CONTAINS(err, cases[i].want);
    }
    tune_config c;
    char err[512];
    CHECK(tune_config_load("/nonexistent/grid.yaml", &c, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "cannot open");
}

static void test_shipped_grid(void) {
    tune_config c;
    char err[512];
    CHECK_MSG(tune_config_load("configs/tuning/grid.yaml", &c, err, sizeof err) == 0, "%s", err);
    size_t n = 0;
    tune_point *p = tune_points_expand(&c, &n);
    CHECK(n == 16); /* the seed plan's 4 x 4 */
    tune_points_free(p, n);
    tune_config_free(&c);
}

int main(void) {
    int fd = mkstemp(path);
    if (fd >= 0)
        close(fd);
    test_expand();
    test_errors();
    test_shipped_grid();
    unlink(path);
    return tlab_test_finish();
}
