/*
 * reload.h - SIGHUP: re-read the config file and apply, on the running gateway, what can change
 * safely without a restart.
 *
 * Applied live: log.level, limits.max_tokens, limits.max_body_bytes, limits.client_timeout_ms
 * (new connections), upstream.connect_timeout_ms / first_byte_timeout_ms / total_timeout_ms (new
 * transfers), policies.* except stats_window_s (paths, fail_open, budgets, tick_ms; the scripts
 * are reloaded), shutdown.grace_s. Everything else (listen.*, admin.listen.*, upstream.url,
 * upstream.idle_keepalive_ms, upstream.max_connections, upstream.sse_keepalive_ms,
 * limits.max_client_connections, auth.keys_file, policies.stats_window_s, plugin_dir, plugins)
 * needs a restart: a change there is logged as a warning naming the keys, and the running value
 * stays. The keys file's content is reloaded by tlab__auth_reload(), not here.
 */
#ifndef TLAB_RELOAD_H
#define TLAB_RELOAD_H

#include <stddef.h>

#include "config/config.h"

/*
 * Loads `path` with the same --set overrides as at start-up into a new config and, if it loads,
 * copies the live keys into `live` (the config the gateway runs on) and applies them. Returns 0
 * on success; -1 when the file does not load, with "file:line:col: message" logged and `live`
 * untouched (the policies are still reloaded from their current files, as before).
 * Counted in gateway_config_reloads_total{result="ok|failed"}.
 */
int tlab__reload_config(tlab__config *live, const char *path, const char *const *sets, size_t n_sets);

#endif
