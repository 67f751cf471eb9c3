/*
 * worker_cmd.c - options, model profiles, engine choice and argv for the worker.
 */
#define _POSIX_C_SOURCE 200809L

#include "common/worker_cmd.h"

#include "common/exe_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const knob_keys[] = {"model", "max_model_len", "max_num_seqs", "max_num_batched_tokens",
                                        "gpu_memory_utilization", "enable_chunked_prefill", "extra_args", NULL};

/* A bare command name (no '/') becomes the program of that name beside the running executable
 * (the gateway) when one is there, else it stays a name for PATH. So `build/bin/tlab-gateway -c
 * configs/gateway.yaml` starts build/bin/tlab-sim without build/bin on PATH, as tlab-tune finds
 * its sibling programs, and an installed gateway starts the tlab-sim installed with it. 0, or -1
 * when out of memory. */
static int prefer_sibling(char **cmd) {
    char path[4096];
    if (strchr(*cmd, '/') || !tlab__exe_sibling(*cmd, path, sizeof path))
        return 0;
    char *copy = strdup(path);
    if (!copy)
        return -1;
    free(*cmd);
    *cmd = copy;
    return 0;
}

static char *str_or(const json_t *cfg, const char *key, const char *dflt, int *bad) {
    const json_t *v = json_object_get(cfg, key);
    if (v && !json_is_string(v))
        *bad = 1;
    return strdup(v && json_is_string(v) ? json_string_value(v) : dflt);
}

static int string_array(const json_t *cfg, const char *key, json_t **out, char *err, size_t errlen) {
    const json_t *v = json_object_get(cfg, key);
    if (!v) {
        *out = json_array();
        return 0;
    }
    size_t i;
    const json_t *item;
    if (!json_is_array(v))
        goto bad;
    json_array_foreach(v, i, item) if (!json_is_string(item) && !json_is_number(item)) goto bad;
    *out = json_deep_copy(v);
    return 0;
bad:
    snprintf(err, errlen, "'%s' must be a list of strings", key);
    return -1;
}

static int parse_url(const char *url, char **host, int *port) {
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    const char *colon = strrchr(p, ':'), *slash = strchr(p, '/');
    if (!colon || (slash && colon > slash))
        return -1;
    *host = strndup(p, (size_t)(colon - p));
    *port = atoi(colon + 1);
    return *host && *port > 0 && *port < 65536 ? 0 : -1;
}

int tlab__worker_options_parse(tlab__worker_options *o, const json_t *cfg, const char *upstream_url, char *err, size_t errlen) {
    static const char *const keys[] = {"engine", "profile", "profiles_dir", "overrides", "sim_command", "sim_args",
                                       "vllm_command", "extra_args", "health_path", "health_interval_ms", "startup_timeout_s",
                                       "idle_timeout_s", "stop_grace_s", "always_on", "backoff_min_ms", "backoff_max_ms",
                                       "log_file", "log_max_bytes", "sleep_after_s", "sleep_level", "sleep_mode_flag",
                                       "verify_port_owner", NULL};
    memset(o, 0, sizeof *o);
    long long interval, startup, idle, grace, bmin, bmax, logmax, sleep_after, sleep_level;
    if (tlab_config_check_keys(cfg, keys, err, errlen) ||
        tlab_config_int(cfg, "health_interval_ms", 100, 5, 60000, &interval, err, errlen) ||
        tlab_config_int(cfg, "startup_timeout_s", 600, 1, 86400, &startup, err, errlen) ||
        tlab_config_int(cfg, "idle_timeout_s", 180, 1, 31536000, &idle, err, errlen) ||
        tlab_config_int(cfg, "stop_grace_s", 10, 1, 3600, &grace, err, errlen) ||
        tlab_config_int(cfg, "backoff_min_ms", 1000, 1, 3600000, &bmin, err, errlen) ||
        tlab_config_int(cfg, "backoff_max_ms", 30000, 1, 3600000, &bmax, err, errlen) ||
        tlab_config_int(cfg, "log_max_bytes", 64LL << 20, 0, 1LL << 40, &logmax, err, errlen) ||
        tlab_config_int(cfg, "sleep_after_s", 30, 0, 31536000, &sleep_after, err, errlen) ||
        tlab_config_int(cfg, "sleep_level", 1, 1, 2, &sleep_level, err, errlen))
        return -1;
    o->sleep_after_us = (uint64_t)sleep_after * 1000000;
    o->sleep_level = (int)sleep_level;
    const json_t *flag = json_object_get(cfg, "sleep_mode_flag");
    if (flag && !json_is_boolean(flag)) {
        snprintf(err, errlen, "'sleep_mode_flag' must be true or false");
        return -1;
    }
    o->sleep_mode_flag = !flag || json_is_true(flag);
    const json_t *verify = json_object_get(cfg, "verify_port_owner");
    if (verify && !json_is_boolean(verify)) {
        snprintf(err, errlen, "'verify_port_owner' must be true or false");
        return -1;
    }
    o->verify_port_owner = !verify || json_is_true(verify);
    o->health_interval_us = (uint64_t)interval * 1000;
    o->health_timeout_ms = interval * 5 < 2000 ? 2000 : interval * 5;
    o->startup_timeout_us = (uint64_t)startup * 1000000;
    o->idle_timeout_us = (uint64_t)idle * 1000000;
    o->stop_grace_us = (uint64_t)grace * 1000000;
    o->backoff_min_us = (uint64_t)bmin * 1000;
    o->backoff_max_us = (uint64_t)(bmax < bmin ? bmin : bmax) * 1000;
    o->log_max_bytes = (size_t)logmax;
    const json_t *always = json_object_get(cfg, "always_on");
    if (always && !json_is_boolean(always)) {
        snprintf(err, errlen, "'always_on' must be true or false");
        return -1;
    }
    o->always_on = always && json_is_true(always);

    int bad = 0;
    char *engine = str_or(cfg, "engine", "auto", &bad);
    const char *env_engine = getenv("TLAB_ENGINE"); /* make run's switch; see the README */
    if (env_engine && *env_engine && strcmp(env_engine, "external") != 0) {
        free(engine);
        engine = strdup(env_engine);
        o->engine_from_env = 1;
    }
    char *profile = str_or(cfg, "profile", "safe", &bad);
    char *dir = str_or(cfg, "profiles_dir", "configs/model_profiles", &bad);
    char *health_path = str_or(cfg, "health_path", "/health", &bad);
    o->sim_command = str_or(cfg, "sim_command", "tlab-sim", &bad);
    o->vllm_command = str_or(cfg, "vllm_command", "vllm", &bad);
    o->log_file = str_or(cfg, "log_file", "experiments/worker.log", &bad);
    int rc = -1;
    if (bad) {
        snprintf(err, errlen, "engine, profile, profiles_dir, health_path, sim_command, vllm_command and log_file must be strings");
        goto out;
    }
    if (prefer_sibling(&o->sim_command) != 0 || prefer_sibling(&o->vllm_command) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (strcmp(engine, "auto") == 0)
        o->engine = TLAB_WORKER_ENGINE_AUTO;
    else if (strcmp(engine, "vllm") == 0)
        o->engine = TLAB_WORKER_ENGINE_VLLM;
    else if (strcmp(engine, "sim") == 0)
        o->engine = TLAB_WORKER_ENGINE_SIM;
    else {
        snprintf(err, errlen, "'engine' must be auto, vllm or sim, got '%s'", engine);
        goto out;
    }
    if (parse_url(upstream_url, &o->host, &o->port) != 0) {
        snprintf(err, errlen, "upstream.url '%s' must name a host and a port (the worker's)", upstream_url);
        goto out;
    }
    size_t n = strlen(o->host) + strlen(health_path) + 32;
    o->health_url = malloc(n);
    snprintf(o->health_url, n, "http://%s:%d%s", o->host, o->port, health_path);
    int is_path = strchr(profile, '/') || strstr(profile, ".yaml");
    n = strlen(dir) + strlen(profile) + 8;
    o->profile_path = malloc(n);
    snprintf(o->profile_path, n, is_path ? "%s" : "%s/%s.yaml", is_path ? profile : dir, profile);
    const json_t *ov = json_object_get(cfg, "overrides");
    if (ov && (!json_is_object(ov) || tlab__worker_check_knobs(ov, err, errlen) != 0)) {
        if (!json_is_object(ov))
            snprintf(err, errlen, "'overrides' must be a mapping of model-profile keys");
        goto out;
    }
    o->overrides = ov ? json_deep_copy(ov) : json_object();
    if (string_array(cfg, "sim_args", &o->sim_args, err, errlen) || string_array(cfg, "extra_args", &o->extra_args, err, errlen))
        goto out;
    rc = 0;
out:
    free(engine);
    free(profile);
    free(dir);
    free(health_path);
    return rc;
}

int tlab__worker_sleep_enabled(const tlab__worker_options *o) {
    return o->sleep_after_us > 0 && o->sleep_after_us < o->idle_timeout_us;
}

void tlab__worker_options_free(tlab__worker_options *o) {
    free(o->profile_path);
    free(o->host);
    free(o->health_url);
    free(o->sim_command);
    free(o->vllm_command);
    free(o->log_file);
    json_decref(o->sim_args);
    json_decref(o->extra_args);
    json_decref(o->overrides);
}

int tlab__worker_check_knobs(const json_t *knobs, char *err, size_t errlen) {
    if (tlab_config_check_keys(knobs, knob_keys, err, errlen))
        return -1;
    long long x;
    double f;
    if (tlab_config_int(knobs, "max_model_len", 0, 16, 10000000, &x, err, errlen) ||
        tlab_config_int(knobs, "max_num_seqs", 0, 1, 100000, &x, err, errlen) ||
        tlab_config_int(knobs, "max_num_batched_tokens", 0, 1, 100000000, &x, err, errlen) ||
        tlab_config_number(knobs, "gpu_memory_utilization", 0.9, 0.01, 1.0, &f, err, errlen))
        return -1;
    const json_t *m = json_object_get(knobs, "model"), *c = json_object_get(knobs, "enable_chunked_prefill"),
                 *e = json_object_get(knobs, "extra_args");
    if ((m && !json_is_string(m)) || (c && !json_is_boolean(c)) || (e && !json_is_array(e))) {
        snprintf(err, errlen, "'model' must be a string, 'enable_chunked_prefill' a boolean, 'extra_args' a list");
        return -1;
    }
    return 0;
}

json_t *tlab__worker_merge_knobs(const json_t *base, const json_t *over) {
    json_t *out = base ? json_deep_copy(base) : json_object();
    if (out && over)
        json_object_update(out, (json_t *)over);
    return out;
}

json_t *tlab__worker_load_profile(tlab__yaml_loader load, const tlab__worker_options *o, char *err, size_t errlen) {
    char msg[512];
    json_t *p = load(o->profile_path, msg, sizeof msg);
    if (!p) {
        snprintf(err, errlen, "model profile: %s", msg);
        return NULL;
    }
    if (!json_is_object(p) || tlab__worker_check_knobs(p, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "model profile %s: %s", o->profile_path, json_is_object(p) ? msg : "must be a mapping");
        json_decref(p);
        return NULL;
    }
    if (!json_is_string(json_object_get(p, "model"))) {
        snprintf(err, errlen, "model profile %s: 'model' is required", o->profile_path);
        json_decref(p);
        return NULL;
    }
    json_t *merged = tlab__worker_merge_knobs(p, o->overrides);
    json_decref(p);
    return merged;
}

static int on_path(const char *cmd) {
    if (strchr(cmd, '/'))
        return access(cmd, X_OK) == 0;
    const char *path = getenv("PATH");
    char buf[4096];
    for (const char *p = path ? path : ""; *p;) {
        const char *end = strchr(p, ':');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, cmd);
        if (access(buf, X_OK) == 0)
            return 1;
        p += n + (end ? 1 : 0);
    }
    return 0;
}

void tlab__worker_resolve_engine(tlab__worker_options *o, char *why, size_t whylen) {
    if (o->engine != TLAB_WORKER_ENGINE_AUTO) {
        snprintf(why, whylen, "engine: %s %s", o->engine == TLAB_WORKER_ENGINE_VLLM ? "vllm" : "sim",
                 o->engine_from_env ? "from $TLAB_ENGINE" : "in the config");
        return;
    }
    int has_vllm = on_path(o->vllm_command);
    int has_gpu = access("/dev/nvidiactl", F_OK) == 0 || access("/dev/nvidia0", F_OK) == 0;
    o->engine = has_vllm && has_gpu ? TLAB_WORKER_ENGINE_VLLM : TLAB_WORKER_ENGINE_SIM;
    snprintf(why, whylen, "engine auto%s: %s command %s, NVIDIA device %s", o->engine_from_env ? " from $TLAB_ENGINE" : "",
             o->vllm_command, has_vllm ? "found" : "not found",
             has_gpu ? "present" : "absent");
}

static int push(char ***argv, size_t *n, const char *s) {
    char **grown = realloc(*argv, (*n + 2) * sizeof **argv);
    if (!grown)
        return -1;
    *argv = grown;
    grown[*n] = strdup(s);
    grown[*n + 1] = NULL;
    return grown[(*n)++] ? 0 : -1;
}

static int push_array(char ***argv, size_t *n, const json_t *arr) {
    size_t i;
    const json_t *v;
    char num[64];
    json_array_foreach(arr, i, v) {
        if (json_is_number(v))
            snprintf(num, sizeof num, "%g", json_number_value(v));
        if (push(argv, n, json_is_string(v) ? json_string_value(v) : num))
            return -1;
    }
    return 0;
}

/* Whether a list of extra arguments sets the flag itself (`--flag N` or `--flag=N`). */
static int sets_flag(const json_t *args, const char *flag) {
    size_t i, len = strlen(flag);
    const json_t *a;
    json_array_foreach(args, i, a) {
        const char *v = json_string_value(a);
        if (v && strncmp(v, flag, len) == 0 && (v[len] == '\0' || v[len] == '='))
            return 1;
    }
    return 0;
}

long tlab__worker_max_num_seqs(const tlab__worker_options *o, const json_t *knobs) {
    /* An extra argument comes after the knob on the command line, and the engine takes the last. */
    if (sets_flag(json_object_get(knobs, "extra_args"), "--max-num-seqs") || sets_flag(o->extra_args, "--max-num-seqs") ||
        sets_flag(o->sim_args, "--max-num-seqs"))
        return 0;
    const json_t *v = json_object_get(knobs, "max_num_seqs");
    return json_is_integer(v) && json_integer_value(v) > 0 ? (long)json_integer_value(v) : 0;
}

char **tlab__worker_build_argv(const tlab__worker_options *o, const json_t *knobs, char *err, size_t errlen) {
    char **argv = NULL;
    size_t n = 0;
    char num[64];
    int vllm = o->engine == TLAB_WORKER_ENGINE_VLLM, fail = 0;
    const char *model = json_string_value(json_object_get(knobs, "model"));
    if (vllm)
        fail |= push(&argv, &n, o->vllm_command) | push(&argv, &n, "serve") | push(&argv, &n, model ? model : "");
    else
        fail |= push(&argv, &n, o->sim_command) | push(&argv, &n, "--model") | push(&argv, &n, model ? model : "");
    snprintf(num, sizeof num, "%d", o->port);
    fail |= push(&argv, &n, "--host") | push(&argv, &n, o->host) | push(&argv, &n, "--port") | push(&argv, &n, num);
    static const char *const int_knobs[][2] = {{"max_model_len", "--max-model-len"},
                                               {"max_num_seqs", "--max-num-seqs"},
                                               {"max_num_batched_tokens", "--max-num-batched-tokens"}};
    for (size_t i = 0; i < 3; i++) {
        const json_t *v = json_object_get(knobs, int_knobs[i][0]);
        if (!v)
            continue;
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v));
        fail |= push(&argv, &n, int_knobs[i][1]) | push(&argv, &n, num);
    }
    const json_t *g = json_object_get(knobs, "gpu_memory_utilization");
    if (g) {
        snprintf(num, sizeof num, "%g", json_number_value(g));
        fail |= push(&argv, &n, "--gpu-memory-utilization") | push(&argv, &n, num);
    }
    const json_t *c = json_object_get(knobs, "enable_chunked_prefill");
    if (c)
        fail |= push(&argv, &n, json_is_true(c) ? "--enable-chunked-prefill" : "--no-enable-chunked-prefill");
    const json_t *extra = json_object_get(knobs, "extra_args");
    if (extra)
        fail |= push_array(&argv, &n, extra);
    if (tlab__worker_sleep_enabled(o) && o->sleep_mode_flag)
        fail |= push(&argv, &n, "--enable-sleep-mode");
    fail |= push_array(&argv, &n, o->extra_args);
    if (!vllm)
        fail |= push_array(&argv, &n, o->sim_args);
    if (fail || !model) {
        snprintf(err, errlen, fail ? "out of memory building the worker command" : "no model in the profile");
        tlab__worker_free_argv(argv);
        return NULL;
    }
    return argv;
}

void tlab__worker_free_argv(char **argv) {
    for (size_t i = 0; argv && argv[i]; i++)
        free(argv[i]);
    free(argv);
}

void tlab__worker_join_argv(char *const *argv, char *out, size_t len) {
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; argv[i] && off < len; i++) {
        int w = snprintf(out + off, len - off, "%s%s", i ? " " : "", argv[i]);
        if (w < 0)
            break;
        off += (size_t)w;
    }
}

void tlab__worker_log_tail(const char *path, char *out, size_t len, int lines) {
    snprintf(out, len, "(no log)");
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    char buf[4096];
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    long from = size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0;
    fseek(f, from, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    char *start = buf + n;
    for (int seen = 0; start > buf; start--)
        if (start[-1] == '\n' && ++seen == lines)
            break;
    snprintf(out, len, "%s", n ? start : "(empty log)");
}
