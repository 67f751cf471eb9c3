/*
 * test_worker_cmd.c - the worker's command line as the autopilot reads it (core/common/
 * worker_cmd.c): tlab__worker_max_num_seqs is the knob the worker is started with, and unknown
 * (0) when an extra argument sets --max-num-seqs itself, since it comes later and wins.
 */
#include <jansson.h>

#include "common/worker_cmd.h"
#include "tlab_test.h"

static long seqs_of(const char *knobs_json, const char *opt_extra_json) {
    tlab__worker_options o = {0};
    json_t *knobs = json_loads(knobs_json, 0, NULL);
    o.extra_args = opt_extra_json ? json_loads(opt_extra_json, 0, NULL) : NULL;
    long n = tlab__worker_max_num_seqs(&o, knobs);
    json_decref(knobs);
    json_decref(o.extra_args);
    return n;
}

int main(void) {
    CHECK(seqs_of("{\"model\": \"m\", \"max_num_seqs\": 32}", NULL) == 32);
    CHECK(seqs_of("{\"model\": \"m\"}", NULL) == 0); /* the engine's default: depends on the GPU */
    CHECK(seqs_of("{\"model\": \"m\", \"max_num_seqs\": 32, \"extra_args\": [\"--max-num-seqs\", \"64\"]}", NULL) == 0);
    CHECK(seqs_of("{\"model\": \"m\", \"max_num_seqs\": 32, \"extra_args\": [\"--max-num-seqs=64\"]}", NULL) == 0);
    CHECK(seqs_of("{\"model\": \"m\", \"max_num_seqs\": 32}", "[\"--max-num-seqs\", \"8\"]") == 0);
    CHECK(seqs_of("{\"model\": \"m\", \"max_num_seqs\": 32, \"extra_args\": [\"--max-num-seqs-x\"]}", NULL) == 32);
    CHECK(seqs_of("{\"model\": \"m\", \"max_num_seqs\": 32}", "[\"--seed\", \"1\"]") == 32);
    return tlab_test_finish();
}
