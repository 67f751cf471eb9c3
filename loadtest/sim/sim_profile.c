/*
 * sim_profile.c - loads hardware and model profiles from flat "key: scalar" YAML files with libyaml.
 * Only top-level scalar pairs are read; comments carry the sources of each value (see the files).
 */
#include "sim_profile.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define SIM_MAX_KEYS 48

typedef struct kv_file {
    int n;
    char key[SIM_MAX_KEYS][64];
    char val[SIM_MAX_KEYS][256];
} kv_file;

/* Parses a flat mapping into kv. Returns 0, or -1 with err set (file:line on YAML errors). */
static int kv_parse(const char *path, kv_file *kv, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t p;
    yaml_event_t ev;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    memset(kv, 0, sizeof(*kv));
    int depth = 0, rc = 0, want_key = 1;
    char key[64] = "";
    for (;;) {
        if (!yaml_parser_parse(&p, &ev)) {
            snprintf(err, errlen, "%s:%zu: %s", path, p.problem_mark.line + 1, p.problem ? p.problem : "YAML error");
            rc = -1;
            break;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT) {
            depth++;
            if (depth > 1) {
                snprintf(err, errlen, "%s:%zu: nested values are not supported in a profile", path, ev.start_mark.line + 1);
                rc = -1;
            }
        } else if (t == YAML_MAPPING_END_EVENT || t == YAML_SEQUENCE_END_EVENT) {
            depth--;
        } else if (t == YAML_SCALAR_EVENT && depth == 1) {
            const char *s = (const char *)ev.data.scalar.value;
            if (want_key) {
                snprintf(key, sizeof key, "%s", s);
            } else if (kv->n < SIM_MAX_KEYS) {
                snprintf(kv->key[kv->n], sizeof kv->key[0], "%s", key);
                snprintf(kv->val[kv->n], sizeof kv->val[0], "%s", s);
                kv->n++;
            }
            want_key = !want_key;
        }
        yaml_event_delete(&ev);
        if (rc || t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

static const char *kv_get(const kv_file *kv, const char *key) {
    for (int i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], key) == 0)
            return kv->val[i];
    return NULL;
}

/* Reads a required finite non-negative number; -1 with err naming the file and key when missing or bad. */
static int kv_num(const kv_file *kv, const char *path, const char *key, double *out, char *err, size_t errlen) {
    const char *s = kv_get(kv, key);
    char *end;
    if (!s) {
        snprintf(err, errlen, "%s: missing key '%s'", path, key);
        return -1;
    }
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < 0) { /* strtod takes "nan" and "inf" */
        snprintf(err, errlen, "%s: '%s' must be a finite non-negative number, got '%s'", path, key, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Builds the file path for NAME: NAME itself when it ends in .yaml, else dir/sub/<basename of NAME>.yaml. */
static void resolve(const char *dir, const char *sub, const char *name, char *out, size_t outlen) {
    size_t n = strlen(name);
    if (n > 5 && strcmp(name + n - 5, ".yaml") == 0) {
        snprintf(out, outlen, "%s", name);
    } else {
        const char *base = strrchr(name, '/'); /* "Qwen/Qwen2.5-0.5B-Instruct" -> its basename */
        snprintf(out, outlen, "%s/%s/%s.yaml", dir, sub, base ? base + 1 : name);
    }
}

double sim_model_weight_bytes(const sim_modelp *m) { return m->params * m->dtype_bytes; }

double sim_model_kv_bytes_per_token(const sim_modelp *m) {
    return 2.0 * m->layers * m->kv_heads * m->head_dim * m->dtype_bytes;
}

/* Reads an optional non-negative number: def when the key is absent, -1 with err when it is bad. */
static int kv_opt(const kv_file *kv, const char *path, const char *key, double def, double *out, char *err,
                  size_t errlen) {
    if (!kv_get(kv, key)) {
        *out = def;
        return 0;
    }
    return kv_num(kv, path, key, out, err, errlen);
}

/*
 * A profile with host_step_ms uses step model v2 (docs/simulator.md, section 3); one without it is a
 * v1 profile and needs beta0_ms. Either way the v1 and v2 keys that do not apply may be left out, so
 * profiles written for v1 keep loading unchanged.
 */
int sim_hw_load(const char *config_dir, const char *name, sim_hw *hw, char *err, size_t errlen) {
    char path[1024];
    kv_file kv;
    double gib, bw, tf, ec, em, b0, b1, b2, ov, dbt, api, h2d, rel, wfix, lay, hstep, hseq, apitok, apiser;
    resolve(config_dir, "hardware", name, path, sizeof path);
    if (kv_parse(path, &kv, err, errlen))
        return -1;
    int v2 = kv_get(&kv, "host_step_ms") != NULL;
    if (kv_num(&kv, path, "gpu_memory_gib", &gib, err, errlen) || kv_num(&kv, path, "memory_bandwidth_gb_s", &bw, err, errlen) ||
        kv_num(&kv, path, "peak_tflops", &tf, err, errlen) || kv_num(&kv, path, "compute_efficiency", &ec, err, errlen) ||
        kv_num(&kv, path, "memory_efficiency", &em, err, errlen) ||
        (v2 ? kv_opt(&kv, path, "beta0_ms", 0, &b0, err, errlen) : kv_num(&kv, path, "beta0_ms", &b0, err, errlen)) ||
        kv_opt(&kv, path, "beta1_us_per_prefill_token", 0, &b1, err, errlen) ||
        kv_opt(&kv, path, "beta2_us_per_decode_seq", 0, &b2, err, errlen) || kv_num(&kv, path, "overhead_gib", &ov, err, errlen) ||
        kv_opt(&kv, path, "default_max_num_batched_tokens", 0, &dbt, err, errlen) ||
        kv_num(&kv, path, "api_overhead_ms", &api, err, errlen) || kv_num(&kv, path, "h2d_gb_s", &h2d, err, errlen) ||
        kv_num(&kv, path, "weight_reload_gb_s", &rel, err, errlen) || kv_num(&kv, path, "wake_fixed_s", &wfix, err, errlen) ||
        kv_opt(&kv, path, "layer_launch_us", 0, &lay, err, errlen) || kv_opt(&kv, path, "host_step_ms", 0, &hstep, err, errlen) ||
        kv_opt(&kv, path, "host_seq_us", 0, &hseq, err, errlen) || kv_opt(&kv, path, "api_token_us", 0, &apitok, err, errlen) ||
        kv_opt(&kv, path, "api_serial_ms", 0, &apiser, err, errlen))
        return -1;
    if (h2d <= 0 || rel <= 0) {
        snprintf(err, errlen, "%s: h2d_gb_s and weight_reload_gb_s must be > 0", path);
        return -1;
    }
    if (ec <= 0 || ec > 1 || em <= 0 || em > 1 || bw <= 0 || tf <= 0 || gib <= 0) {
        snprintf(err, errlen, "%s: bandwidth, peak_tflops, memory must be > 0 and efficiencies in (0, 1]", path);
        return -1;
    }
    const char *nm = kv_get(&kv, "name");
    const char *dev = kv_get(&kv, "device_name");
    snprintf(hw->name, sizeof hw->name, "%s", nm ? nm : name);
    /* Without device_name the profile name stands in: vLLM only looks for "a100" in it. */
    snprintf(hw->device_name, sizeof hw->device_name, "%s", dev ? dev : hw->name);
    hw->step_model = v2 ? 2 : 1;
    hw->mem_bytes = gib * 1073741824.0;
    hw->bw_bytes_s = bw * 1e9;
    hw->flops = tf * 1e12;
    hw->eff_compute = ec;
    hw->eff_mem = em;
    hw->beta0_s = b0 * 1e-3;
    hw->beta1_s = b1 * 1e-6;
    hw->beta2_s = b2 * 1e-6;
    hw->layer_launch_s = lay * 1e-6;
    hw->host_step_s = hstep * 1e-3;
    hw->host_seq_s = hseq * 1e-6;
    hw->api_token_s = apitok * 1e-6;
    hw->overhead_bytes = ov * 1073741824.0;
    hw->default_batched = (int)dbt;
    hw->api_overhead_s = api * 1e-3;
    hw->api_serial_s = apiser * 1e-3;
    hw->h2d_bytes_s = h2d * 1e9;
    hw->reload_bytes_s = rel * 1e9;
    hw->wake_fixed_s = wfix;
    return 0;
}

int sim_model_load(const char *config_dir, const char *name, sim_modelp *m, char *err, size_t errlen) {
    char path[1024];
    kv_file kv;
    double params, layers, kvh, hd, db, mml, qh;
    resolve(config_dir, "hardware/models", name, path, sizeof path);
    if (kv_parse(path, &kv, err, errlen))
        return -1;
    if (kv_num(&kv, path, "params", &params, err, errlen) || kv_num(&kv, path, "num_layers", &layers, err, errlen) ||
        kv_num(&kv, path, "num_kv_heads", &kvh, err, errlen) || kv_num(&kv, path, "head_dim", &hd, err, errlen) ||
        kv_num(&kv, path, "dtype_bytes", &db, err, errlen) || kv_num(&kv, path, "max_model_len", &mml, err, errlen) ||
        kv_opt(&kv, path, "num_attention_heads", 0, &qh, err, errlen))
        return -1;
    if (params <= 0 || layers < 1 || kvh < 1 || hd < 1 || db < 1 || mml < 1) {
        snprintf(err, errlen, "%s: params, num_layers, num_kv_heads, head_dim, dtype_bytes, max_model_len must be >= 1", path);
        return -1;
    }
    /* kv_num has already refused NaN and the infinities; here only the range and GQA's divisibility. */
    if (kv_get(&kv, "num_attention_heads") &&
        !(qh >= 1 && qh <= 1e6 && qh == floor(qh) && fmod(qh, floor(kvh)) == 0)) {
        snprintf(err, errlen,
                 "%s: num_attention_heads must be a whole number from 1 to 1000000 and a multiple of num_kv_heads "
                 "(or left out)",
                 path);
        return -1;
    }
    const char *nm = kv_get(&kv, "name");
    snprintf(m->name, sizeof m->name, "%s", nm ? nm : name);
    m->params = params;
    m->layers = (int)layers;
    m->kv_heads = (int)kvh;
    m->head_dim = (int)hd;
    m->q_heads = (int)qh;
    m->dtype_bytes = (int)db;
    m->max_model_len = (int)mml;
    return 0;
}
