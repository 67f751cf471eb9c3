/*
 * sim_sleep.c - sleep and wake durations. The weight copy is the only part that scales with the
 * model; everything else vLLM keeps alive across a sleep (CUDA context, CUDA graphs, compiled
 * kernels), which is why a wake is so much cheaper than a cold start.
 */
#include "sim_sleep.h"

double sim_sleep_seconds(const sim_hw *hw, const sim_modelp *m, int level) {
    if (level >= 2)
        return 0.0;
    return sim_model_weight_bytes(m) / hw->h2d_bytes_s;
}

double sim_wake_seconds(const sim_hw *hw, const sim_modelp *m, int level, int tags) {
    double t = 0.0;
    if (tags & SIM_TAG_WEIGHTS)
        t += sim_model_weight_bytes(m) / (level >= 2 ? hw->reload_bytes_s : hw->h2d_bytes_s);
    if (tags & SIM_TAG_KV_CACHE)
        t += hw->wake_fixed_s;
    return t;
}
