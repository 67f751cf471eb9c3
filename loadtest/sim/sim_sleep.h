/*
 * sim_sleep.h - how long vLLM's sleep mode takes on a given GPU: pure functions of the hardware and
 * model profiles (see docs/simulator.md, "Sleep mode"). Times are simulated seconds.
 */
#ifndef SIM_SLEEP_H
#define SIM_SLEEP_H

#include "sim_profile.h"

/* What a sleeping engine has dropped; /wake_up?tags=... restores a subset. */
enum sim_sleep_tag { SIM_TAG_WEIGHTS = 1, SIM_TAG_KV_CACHE = 2, SIM_TAG_ALL = 3 };

/*
 * Falling asleep: level 1 copies the weights to pinned host memory over PCIe (weights / h2d);
 * level 2 only frees device memory, which costs nothing measurable next to a copy.
 */
double sim_sleep_seconds(const sim_hw *hw, const sim_modelp *m, int level);

/*
 * Waking the parts in tags (SIM_TAG_*) after a sleep at level:
 *   weights:  level 1 -> weights / h2d (copy back from host memory)
 *             level 2 -> weights / weight_reload (read again from disk or the page cache)
 *   kv_cache: wake_fixed (re-mapping the allocator's pool and zeroing the KV cache)
 */
double sim_wake_seconds(const sim_hw *hw, const sim_modelp *m, int level, int tags);

#endif
