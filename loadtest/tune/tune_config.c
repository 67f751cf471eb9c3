/*
 * tune_config.c - the grid file: load with marks, check, expand into points (see tune_config.h).
 */
#include "tune_config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "common/worker_cmd.h"
#include "common/yaml_json.h"

/* Where each node sits in the file, keyed by its path ("search.tolerance", "grid.max_num_seqs[1]"),
 * so checks made on the JSON value can still point at the line. */
static void collect_marks(yaml_document_t *doc, yaml_node_t *node, const char *path, json_t *marks, int depth) {
    if (!node || depth > 16)
        return;
    json_object_set_new(marks, path, json_pack("[i,i]", (int)node->start_mark.line + 1, (int)node->start_mark.column + 1));
    char sub[512];
    if (node->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = node->data.mapping.pairs.start; p < node->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key);
            if (!k || k->type != YAML_SCALAR_NODE)
                continue;
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", (const char *)k->data.scalar.value);
            collect_marks(doc, yaml_document_get_node(doc, p->value), sub, marks, depth + 1);
        }
    } else if (node->type == YAML_SEQUENCE_NODE) {
        int i = 0;
        for (yaml_node_item_t *it = node->data.sequence.items.start; it < node->data.sequence.items.top; it++, i++) {
            snprintf(sub, sizeof sub, "%s[%d]", path, i);
            collect_marks(doc, yaml_document_get_node(doc, *it), sub, marks, depth + 1);
        }
    }
}

typedef struct {
    const char *file;
    json_t *marks;
    char *err;
    size_t errlen;
} checker;

/* Writes "file:line:col: key: message" for the node at `key` (or the closest parent that has a mark). */
static int fail(checker *k, const char *key, const char *fmt, const char *arg) {
    char path[512], msg[512];
    snprintf(path, sizeof path, "%s", key);
    json_t *m = NULL;
    while (!(m = json_object_get(k->marks, path))) {
        char *cut = strrchr(path, '.');
        char *br = strrchr(path, '[');
        char *at = cut > br ? cut : br;
        if (!at) {
            m = json_object_get(k->marks, "");
            break;
        }
        *at = '\0';
    }
    snprintf(msg, sizeof msg, fmt, arg);
    snprintf(k->err, k->errlen, "%s:%lld:%lld: %s: %s", k->file, m ? json_integer_value(json_array_get(m, 0)) : 1LL,
             m ? json_integer_value(json_array_get(m, 1)) : 1LL, key, msg);
    return -1;
}

static int check_keys(checker *k, const json_t *obj, const char *prefix, const char *const *allowed) {
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v) {
        int ok = 0;
        for (size_t i = 0; allowed[i]; i++)
            ok |= strcmp(key, allowed[i]) == 0;
        if (!ok) {
            char path[256];
            snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
            return fail(k, path, "unknown key%s", "");
        }
    }
    return 0;
}

static int get_string(checker *k, const json_t *obj, const char *key, const char *dflt, char **out) {
    const json_t *v = json_object_get(obj, key);
    if (v && !json_is_string(v))
        return fail(k, key, "must be a string%s", "");
    *out = strdup(v ? json_string_value(v) : dflt);
    return *out ? 0 : fail(k, key, "out of memory%s", "");
}

static int get_number(checker *k, const json_t *obj, const char *prefix, const char *key, double dflt, double min, double max,
                      double *out) {
    char path[256], range[96];
    snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
    const json_t *v = json_object_get(obj, key);
    *out = v ? json_number_value(v) : dflt;
    snprintf(range, sizeof range, "%g..%g", min, max);
    if (v && !json_is_number(v))
        return fail(k, path, "must be a number in %s", range);
    if (!(*out >= min && *out <= max))
        return fail(k, path, "must be in %s", range);
    return 0;
}

static int get_int(checker *k, const json_t *obj, const char *prefix, const char *key, long dflt, long min, long max, long *out) {
    double d;
    char path[256];
    snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", key);
    const json_t *v = json_object_get(obj, key);
    if (v && !json_is_integer(v))
        return fail(k, path, "must be a whole number%s", "");
    if (get_number(k, obj, prefix, key, (double)dflt, (double)min, (double)max, &d))
        return -1;
    *out = (long)d;
    return 0;
}

static int get_string_list(checker *k, const json_t *obj, const char *key, json_t **out) {
    const json_t *v = json_object_get(obj, key);
    *out = json_array();
    if (!v)
        return 0;
    size_t i;
    const json_t *item;
    if (!json_is_array(v))
        return fail(k, key, "must be a list of strings%s", "");
    json_array_foreach(v, i, item) {
        if (!json_is_string(item) && !json_is_number(item)) {
            char path[256];
            snprintf(path, sizeof path, "%s[%zu]", key, i);
            return fail(k, path, "must be a string%s", "");
        }
        json_array_append(*out, (json_t *)item);
    }
    return 0;
}

/* A knob set, checked the way the supervisor checks model profiles. */
static int check_knobs(checker *k, const char *path, const json_t *knobs) {
    char msg[256];
    if (tlab__worker_check_knobs(knobs, msg, sizeof msg) == 0)
        return 0;
    const char *key;
    const json_t *v;
    /* Name the offending key when there is one, so the mark points at its line. */
    json_object_foreach((json_t *)knobs, key, v) {
        json_t *one = json_pack("{s:O}", key, v);
        char one_msg[256];
        int bad = tlab__worker_check_knobs(one, one_msg, sizeof one_msg);
        json_decref(one);
        if (bad) {
            char p[256];
            snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", key);
            return fail(k, p, "%s", one_msg);
        }
    }
    return fail(k, path, "%s", msg);
}

static int load_search(checker *k, const json_t *s, tune_search_params *p) {
    static const char *const keys[] = {"start_rate", "min_rate", "max_rate", "growth", "tolerance", "min_requests",
                                       "min_duration_s", "max_duration_s", "warmup_s", "cooldown_s", "confirm_runs",
                                       "confirm_requests", "startup_timeout_s", NULL};
    if (s && !json_is_object(s))
        return fail(k, "search", "must be a mapping%s", "");
    json_t *empty = json_object();
    const json_t *o = s ? s : empty;
    int rc = check_keys(k, o, "search", keys) || get_number(k, o, "search", "start_rate", 1, 1e-3, 1e6, &p->start_rate) ||
             get_number(k, o, "search", "min_rate", 0.25, 1e-3, 1e6, &p->min_rate) ||
             get_number(k, o, "search", "max_rate", 256, 1e-3, 1e6, &p->max_rate) ||
             get_number(k, o, "search", "growth", 2, 1.1, 16, &p->growth) ||
             get_number(k, o, "search", "tolerance", 0.05, 0.005, 0.5, &p->tolerance) ||
             get_int(k, o, "search", "min_requests", 300, 10, 10000000, &p->min_requests) ||
             get_number(k, o, "search", "min_duration_s", 30, 1, 86400, &p->min_duration_s) ||
             get_number(k, o, "search", "max_duration_s", 600, 1, 86400, &p->max_duration_s) ||
             get_number(k, o, "search", "warmup_s", 10, 0, 3600, &p->warmup_s) ||
             get_number(k, o, "search", "cooldown_s", 5, 0, 3600, &p->cooldown_s) ||
             get_int(k, o, "search", "confirm_runs", 3, 1, 99, &p->confirm_runs) ||
             get_int(k, o, "search", "confirm_requests", 600, 10, 10000000, &p->confirm_requests) ||
             get_number(k, o, "search", "startup_timeout_s", 600, 1, 86400, &p->startup_timeout_s);
    json_decref(empty);
    if (rc)
        return -1;
    if (p->min_rate > p->start_rate || p->start_rate > p->max_rate)
        return fail(k, "search", "needs min_rate <= start_rate <= max_rate%s", "");
    if (p->min_duration_s > p->max_duration_s)
        return fail(k, "search", "needs min_duration_s <= max_duration_s%s", "");
    return 0;
}

static int load_smart(checker *k, const json_t *s, tune_smart_params *p) {
    static const char *const keys[] = {"screen_requests", "screen_tolerance", "keep_fraction", "finalists", NULL};
    if (s && !json_is_object(s))
        return fail(k, "smart", "must be a mapping%s", "");
    json_t *empty = json_object();
    const json_t *o = s ? s : empty;
    int rc = check_keys(k, o, "smart", keys) || get_int(k, o, "smart", "screen_requests", 120, 10, 10000000, &p->screen_requests) ||
             get_number(k, o, "smart", "screen_tolerance", 0.15, 0.005, 0.5, &p->screen_tolerance) ||
             get_number(k, o, "smart", "keep_fraction", 0.25, 0.01, 1, &p->keep_fraction) ||
             get_int(k, o, "smart", "finalists", 2, 1, 1000, &p->finalists);
    json_decref(empty);
    return rc ? -1 : 0;
}

static int load_axes(checker *k, const json_t *grid, tune_config *c) {
    if (!json_is_object(grid) || json_object_size(grid) == 0)
        return fail(k, "grid", "must be a mapping of knob: [values] with at least one knob%s", "");
    c->axes = json_object();
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)grid, key, v) {
        char path[256];
        snprintf(path, sizeof path, "grid.%s", key);
        if (!json_is_array(v) || json_array_size(v) == 0)
            return fail(k, path, "must be a non-empty list of values%s", "");
        if (json_object_get(c->fixed, key))
            return fail(k, path, "is also under 'fixed'%s", "");
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) {
            json_t *one = json_pack("{s:O}", key, item);
            char ipath[300];
            snprintf(ipath, sizeof ipath, "%s[%zu]", path, i);
            char msg[256];
            int bad = tlab__worker_check_knobs(one, msg, sizeof msg);
            json_decref(one);
            if (bad)
                return fail(k, ipath, "%s", msg);
        }
        json_object_set(c->axes, key, (json_t *)v);
    }
    return 0;
}

int tune_config_load(const char *path, tune_config *c, char *err, size_t errlen) {
    memset(c, 0, sizeof *c);
    c->path = strdup(path);
    json_t *root = tlab__yaml_load_file(path, err, errlen);
    if (!root) {
        tune_config_free(c);
        return -1;
    }
    checker k = {.file = path, .marks = json_object(), .err = err, .errlen = errlen};
    FILE *f = fopen(path, "rb");
    if (f) {
        yaml_parser_t parser;
        yaml_document_t doc;
        yaml_parser_initialize(&parser);
        yaml_parser_set_input_file(&parser, f);
        if (yaml_parser_load(&parser, &doc)) {
            collect_marks(&doc, yaml_document_get_root_node(&doc), "", k.marks, 0);
            yaml_document_delete(&doc);
        }
        yaml_parser_delete(&parser);
        fclose(f);
    }
    static const char *const keys[] = {"engine", "model_profile", "profiles_dir", "workload", "slo", "time_scale", "fixed",
                                       "grid", "sim_args", "vllm_args", "search", "smart", NULL};
    int rc = -1;
    if (!json_is_object(root)) {
        fail(&k, "", "the grid file must be a mapping%s", "");
        goto out;
    }
    if (check_keys(&k, root, "", keys) || get_string(&k, root, "engine", "auto", &c->engine) ||
        get_string(&k, root, "model_profile", "safe", &c->profile) ||
        get_string(&k, root, "profiles_dir", "configs/model_profiles", &c->profiles_dir) ||
        get_string(&k, root, "workload", "fixed_200_200", &c->workload) ||
        get_string(&k, root, "slo", "e2e_p95=5s,error_rate=0.1%", &c->slo) ||
        get_number(&k, root, "", "time_scale", 1, 0.01, 1000, &c->time_scale) ||
        get_string_list(&k, root, "sim_args", &c->sim_args) || get_string_list(&k, root, "vllm_args", &c->vllm_args))
        goto out;
    if (strcmp(c->engine, "auto") && strcmp(c->engine, "sim") && strcmp(c->engine, "vllm")) {
        fail(&k, "engine", "must be auto, sim or vllm, got '%s'", c->engine);
        goto out;
    }
    const json_t *fixed = json_object_get(root, "fixed");
    if (fixed && !json_is_object(fixed)) {
        fail(&k, "fixed", "must be a mapping of model-profile knobs%s", "");
        goto out;
    }
    c->fixed = fixed ? json_deep_copy(fixed) : json_object();
    if (check_knobs(&k, "fixed", c->fixed) || load_axes(&k, json_object_get(root, "grid"), c) ||
        load_search(&k, json_object_get(root, "search"), &c->search) || load_smart(&k, json_object_get(root, "smart"), &c->smart))
        goto out;
    rc = 0;
out:
    json_decref(k.marks);
    json_decref(root);
    if (rc)
        tune_config_free(c);
    return rc;
}

void tune_config_quick(tune_config *c) {
    const char *key;
    json_t *v;
    json_object_foreach(c->axes, key, v) {
        size_t n = json_array_size(v);
        if (n <= 2)
            continue;
        json_t *two = json_pack("[O,O]", json_array_get(v, 0), json_array_get(v, n - 1));
        json_object_set_new(c->axes, key, two);
    }
    tune_search_params *s = &c->search;
    s->min_requests = s->min_requests / 2 > 60 ? s->min_requests / 2 : 60;
    s->min_duration_s = s->min_duration_s / 2 > 10 ? s->min_duration_s / 2 : 10;
    s->tolerance = s->tolerance < 0.1 ? 0.1 : s->tolerance;
    s->confirm_runs = 1;
    s->confirm_requests = s->confirm_requests / 2 > 100 ? s->confirm_requests / 2 : 100;
    c->smart.screen_requests = c->smart.screen_requests / 2 > 40 ? c->smart.screen_requests / 2 : 40;
}

void tune_config_free(tune_config *c) {
    free(c->path);
    free(c->engine);
    free(c->profile);
    free(c->profiles_dir);
    free(c->workload);
    free(c->slo);
    json_decref(c->fixed);
    json_decref(c->axes);
    json_decref(c->sim_args);
    json_decref(c->vllm_args);
    memset(c, 0, sizeof *c);
}

json_t *tune_config_to_json(const tune_config *c) {
    const tune_search_params *s = &c->search;
    const tune_smart_params *m = &c->smart;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:O, s:O, s:O, s:O,"
                     " s:{s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:f, s:I, s:I, s:f},"
                     " s:{s:I, s:f, s:f, s:I}}",
                     "engine", c->engine, "model_profile", c->profile, "profiles_dir", c->profiles_dir, "workload", c->workload,
                     "slo", c->slo, "time_scale", c->time_scale, "fixed", c->fixed, "grid", c->axes, "sim_args", c->sim_args,
                     "vllm_args", c->vllm_args, "search", "start_rate", s->start_rate, "min_rate", s->min_rate, "max_rate",
                     s->max_rate, "growth", s->growth, "tolerance", s->tolerance, "min_requests", (json_int_t)s->min_requests,
                     "min_duration_s", s->min_duration_s, "max_duration_s", s->max_duration_s, "warmup_s", s->warmup_s,
                     "cooldown_s", s->cooldown_s, "confirm_runs", (json_int_t)s->confirm_runs, "confirm_requests",
                     (json_int_t)s->confirm_requests, "startup_timeout_s", s->startup_timeout_s, "smart", "screen_requests",
                     (json_int_t)m->screen_requests, "screen_tolerance", m->screen_tolerance, "keep_fraction",
                     m->keep_fraction, "finalists", (json_int_t)m->finalists);
}

static void format_value(const json_t *v, char *buf, size_t len) {
    if (json_is_string(v))
        snprintf(buf, len, "%s", json_string_value(v));
    else if (json_is_integer(v))
        snprintf(buf, len, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v))
        snprintf(buf, len, "%g", json_real_value(v));
    else if (json_is_boolean(v))
        snprintf(buf, len, "%s", json_is_true(v) ? "true" : "false");
    else
        snprintf(buf, len, "...");
}

tune_point *tune_points_expand(const tune_config *c, size_t *n) {
    size_t naxes = json_object_size(c->axes), total = 1;
    const char *names[64];
    const json_t *values[64];
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(c->axes, key, v) {
        if (i == 64)
            break;
        names[i] = key;
        values[i++] = v;
        total *= json_array_size(v);
    }
    naxes = i;
    tune_point *pts = calloc(total ? total : 1, sizeof *pts);
    if (!pts)
        return NULL;
    for (size_t p = 0; p < total; p++) {
        pts[p].knobs = json_deep_copy(c->fixed);
        size_t rest = p, off = 0;
        /* The last axis varies fastest, like nested loops written in file order. */
        size_t idx[64];
        for (size_t a = naxes; a-- > 0;) {
            size_t m = json_array_size(values[a]);
            idx[a] = rest % m;
            rest /= m;
        }
        for (size_t a = 0; a < naxes; a++) {
            json_t *val = json_array_get(values[a], idx[a]);
            json_object_set(pts[p].knobs, names[a], val);
            char buf[96];
            format_value(val, buf, sizeof buf);
            int w = snprintf(pts[p].id + off, sizeof pts[p].id - off, "%s%s=%s", a ? "," : "", names[a], buf);
            off += w > 0 && (size_t)w < sizeof pts[p].id - off ? (size_t)w : sizeof pts[p].id - off;
        }
        /* An id that did not fit still names one point: the run record keys entries by it. */
        if (off >= sizeof pts[p].id - 1)
            snprintf(pts[p].id + sizeof pts[p].id - 32, 32, "...#%zu", p + 1);
    }
    *n = total;
    return pts;
}

void tune_points_free(tune_point *p, size_t n) {
    for (size_t i = 0; p && i < n; i++)
        json_decref(p[i].knobs);
    free(p);
}

int tune_needs_more_memory(const json_t *a, const json_t *b) {
    static const char *const grows[] = {"max_num_seqs", "max_num_batched_tokens", "max_model_len"};
    const char *key;
    json_t *va;
    /* Every other knob must match exactly, in both directions. */
    json_object_foreach((json_t *)a, key, va) {
        int grow = 0;
        for (size_t i = 0; i < 3; i++)
            grow |= strcmp(key, grows[i]) == 0;
        json_t *vb = json_object_get(b, key);
        if (grow) {
            if (!vb || !json_is_number(va) || !json_is_number(vb) || json_number_value(vb) < json_number_value(va))
                return 0;
        } else if (!vb || !json_equal(va, vb)) {
            return 0;
        }
    }
    json_t *vb;
    json_object_foreach((json_t *)b, key, vb) if (!json_object_get(a, key)) return 0;
    return 1;
}
