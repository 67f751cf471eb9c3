/*
 * test_sim_sleep.c - sleep-mode timing (docs/simulator.md, "Sleep mode") against hand-computed values
 * for every shipped GPU profile, and the property the supervisor relies on: at default settings a
 * level-1 wake is at least 10x shorter than tlab-sim's cold start (--startup-seconds 2).
 */
#include <math.h>

#include "sim_config.h"
#include "sim_sleep.h"
#include "tlab_test.h"

#define NEAR(a, b, rel) (fabs((a) - (b)) <= (rel) * fabs(b) + 1e-12)

static void test_reference(void) {
    sim_hw hw;
    sim_modelp m;
    char err[1024];
    CHECK(sim_hw_load("configs", "rtx3050-4gb", &hw, err, sizeof err) == 0);
    CHECK(sim_model_load("configs", "Qwen2.5-0.5B-Instruct", &m, err, sizeof err) == 0);
    double w = 494032768.0 * 2; /* BF16 weights */
    CHECK(NEAR(hw.h2d_bytes_s, 12e9, 1e-12) && NEAR(hw.reload_bytes_s, 2e9, 1e-12) && NEAR(hw.wake_fixed_s, 0.1, 1e-12));
    CHECK(NEAR(sim_sleep_seconds(&hw, &m, 1), w / 12e9, 1e-9));           /* 0.0823 s */
    CHECK(sim_sleep_seconds(&hw, &m, 2) == 0.0);                          /* freeing only */
    CHECK(NEAR(sim_wake_seconds(&hw, &m, 1, SIM_TAG_ALL), w / 12e9 + 0.1, 1e-9)); /* 0.1823 s */
    CHECK(NEAR(sim_wake_seconds(&hw, &m, 2, SIM_TAG_ALL), w / 2e9 + 0.1, 1e-9));  /* 0.594 s */
    CHECK(NEAR(sim_wake_seconds(&hw, &m, 1, SIM_TAG_WEIGHTS), w / 12e9, 1e-9));
    CHECK(NEAR(sim_wake_seconds(&hw, &m, 2, SIM_TAG_KV_CACHE), 0.1, 1e-9));
    CHECK(sim_wake_seconds(&hw, &m, 1, 0) == 0.0);

    sim_config cfg;
    sim_config_defaults(&cfg);
    CHECK(cfg.startup_seconds / sim_wake_seconds(&hw, &m, 1, SIM_TAG_ALL) >= 10.0);
    CHECK(cfg.enable_sleep_mode == 0);
}

/* Every profile loads its sleep fields, and a faster link wakes faster. */
static void test_profiles(void) {
    static const char *const names[] = {"rtx3050-4gb", "t4-16gb", "l4-24gb", "rtx4090-24gb", "a100-80gb", "h100-80gb"};
    sim_modelp m;
    char err[1024];
    CHECK(sim_model_load("configs", "Qwen3-4B", &m, err, sizeof err) == 0);
    double prev_h2d = 0;
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        sim_hw hw;
        CHECK(sim_hw_load("configs", names[i], &hw, err, sizeof err) == 0);
        CHECK(hw.h2d_bytes_s >= 10e9 && hw.reload_bytes_s > 0 && hw.wake_fixed_s > 0);
        CHECK(sim_wake_seconds(&hw, &m, 2, SIM_TAG_ALL) > sim_wake_seconds(&hw, &m, 1, SIM_TAG_ALL));
        if (i == 5)
            CHECK(hw.h2d_bytes_s > prev_h2d); /* PCIe 5.0 on H100 */
        prev_h2d = hw.h2d_bytes_s;
    }
}

int main(void) {
    test_reference();
    test_profiles();
    return tlab_test_finish();
}
