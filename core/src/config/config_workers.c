/*
 * config_workers.c - the `workers:` list (config_workers.h).
 */
#include "config/config_workers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/worker_cmd.h"
#include "common/yaml_json.h"

typedef struct ctx {
    const char *file;
    char *err;
    size_t errlen;
} ctx;

__attribute__((format(printf, 3, 4))) static int fail(ctx *c, yaml_mark_t at, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tlab__yaml_error_at(c->err, c->errlen, c->file, at, msg);
    return -1;
}

static const char *scalar_of(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length && !memchr(n->data.scalar.value, '\0', n->data.scalar.length)
               ? (const char *)n->data.scalar.value
               : NULL;
}

static int valid_name(const char *s) {
    if (!*s || strlen(s) > 63)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' ||
              *s == '-'))
            return 0;
    return 1;
}

static int valid_url(const char *s) {
    return (strncmp(s, "http://", 7) == 0 && s[7]) || (strncmp(s, "https://", 8) == 0 && s[8]);
}

/* env: a mapping of NAME: value, into a NULL-terminated "NAME=value" list. */
static int load_env(ctx *c, yaml_document_t *doc, const yaml_node_t *map, size_t idx, tlab__worker_conf *w) {
    char got[64];
    if (map->type != YAML_MAPPING_NODE) {
        tlab__yaml_describe(map, got, sizeof got);
        return fail(c, map->start_mark, "'workers[%zu].env' must be a mapping of NAME: value, got %s", idx, got);
    }
    size_t n = (size_t)(map->data.mapping.pairs.top - map->data.mapping.pairs.start), i = 0;
    if (!(w->env = calloc(n + 1, sizeof *w->env)))
        return fail(c, map->start_mark, "out of memory");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++, i++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar_of(k), *val = v->type == YAML_SCALAR_NODE ? (const char *)v->data.scalar.value : NULL;
        if (!key || strchr(key, '='))
            return fail(c, k->start_mark, "'workers[%zu].env' names must be non-empty strings without '='", idx);
        if (!val || memchr(val, '\0', v->data.scalar.length)) {
            tlab__yaml_describe(v, got, sizeof got);
            return fail(c, v->start_mark, "'workers[%zu].env.%s' must be a string, got %s", idx, key, got);
        }
        size_t len = strlen(key) + strlen(val) + 2;
        if (!(w->env[i] = malloc(len)))
            return fail(c, v->start_mark, "out of memory");
        snprintf(w->env[i], len, "%s=%s", key, val);
    }
    return 0;
}

/* A supervised entry: its port, env, and the rest as the supervisor's options (worker_cmd.h),
 * checked here so that a bad one is a config error at start. */
static int load_supervised(ctx *c, yaml_document_t *doc, const yaml_node_t *item, size_t idx, tlab__worker_conf *w) {
    char got[64], path[48], why[400];
    yaml_mark_t where = item->start_mark;
    snprintf(path, sizeof path, "workers[%zu]", idx);
    json_t *all = tlab__yaml_to_json(doc, (yaml_node_t *)item, path, why, sizeof why, &where);
    if (!all)
        return fail(c, where, "%s", why);
    json_t *port = json_object_get(all, "port");
    if (!json_is_integer(port) || json_integer_value(port) < 1 || json_integer_value(port) > 65535) {
        json_decref(all);
        for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
            if (scalar_of(k) && strcmp(scalar_of(k), "port") == 0) {
                tlab__yaml_describe(v, got, sizeof got);
                return fail(c, v->start_mark, "'workers[%zu].port' must be an integer from 1 to 65535, got %s", idx, got);
            }
        }
        return fail(c, item->start_mark,
                    "'workers[%zu]' needs a url (a worker you start) or a port (a worker the gateway starts: engine, "
                    "profile, port, env)", idx);
    }
    w->port = (int)json_integer_value(port);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", w->port);
    w->url = strdup(url);
    json_object_del(all, "name");
    json_object_del(all, "port");
    json_object_del(all, "env");
    /* Each worker logs to its own file unless told otherwise. */
    if (!json_object_get(all, "log_file")) {
        char log[128];
        snprintf(log, sizeof log, "experiments/worker-%s.log", w->name);
        json_object_set_new(all, "log_file", json_string(log));
    }
    tlab__worker_options o;
    memset(&o, 0, sizeof o);
    int bad = !w->url || tlab__worker_options_parse(&o, all, w->url, why, sizeof why) != 0;
    tlab__worker_options_free(&o); /* what it read before the error too */
    if (bad) {
        json_decref(all);
        return fail(c, item->start_mark, "'workers[%zu]': %s", idx, w->url ? why : "out of memory");
    }
    w->supervise = all;
    return 0;
}

static int load_one(ctx *c, yaml_document_t *doc, const yaml_node_t *item, size_t idx, tlab__worker_conf *w) {
    char got[64];
    w->line = (int)item->start_mark.line + 1;
    w->col = (int)item->start_mark.column + 1;
    if (item->type != YAML_MAPPING_NODE) {
        tlab__yaml_describe(item, got, sizeof got);
        return fail(c, item->start_mark, "'workers[%zu]' must be a mapping with a name and a url (or a port), got %s", idx, got);
    }
    const yaml_node_t *env = NULL, *other = NULL;
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar_of(k);
        if (!key)
            return fail(c, k->start_mark, "keys in 'workers[%zu]' must be scalars", idx);
        char **dst = strcmp(key, "name") == 0 ? &w->name : strcmp(key, "url") == 0 ? &w->url : NULL;
        if (strcmp(key, "env") == 0) {
            env = v;
            continue;
        }
        if (!dst) {
            if (!other)
                other = k;
            continue;
        }
        if (*dst)
            return fail(c, k->start_mark, "duplicate key '%s' in 'workers[%zu]'", key, idx);
        const char *val = scalar_of(v);
        if (!val) {
            tlab__yaml_describe(v, got, sizeof got);
            return fail(c, v->start_mark, "'workers[%zu].%s' must be a non-empty string, got %s", idx, key, got);
        }
        if (dst == &w->name && !valid_name(val))
            return fail(c, v->start_mark,
                        "'workers[%zu].name' must be 1 to 63 letters, digits, '.', '_' or '-' (it is a metric label), got '%s'",
                        idx, val);
        if (dst == &w->url && !valid_url(val))
            return fail(c, v->start_mark, "'workers[%zu].url' must be an http:// or https:// URL, got '%s'", idx, val);
        if (!(*dst = strdup(val)))
            return fail(c, v->start_mark, "out of memory");
    }
    if (!w->name)
        return fail(c, item->start_mark, "'workers[%zu]' has no name", idx);
    if (w->url) {
        /* An external worker: the gateway only sends it requests. */
        if (other || env)
            return fail(c, other ? other->start_mark : env->start_mark,
                        "'workers[%zu]' has a url, so it is a worker you start yourself: '%s' belongs to a worker the "
                        "gateway starts (give a port instead of the url)",
                        idx, other ? scalar_of(other) : "env");
        return 0;
    }
    if (env && load_env(c, doc, env, idx, w) < 0)
        return -1;
    return load_supervised(c, doc, item, idx, w);
}

int tlab__config_load_workers(tlab__config *cfg, yaml_document_t *doc, const yaml_node_t *seq, const char *file, char *err,
                              size_t errlen) {
    ctx c = {file, err, errlen};
    char got[64];
    if (seq->type == YAML_SCALAR_NODE && tlab__yaml_scalar_type_of(seq) == TLAB_YS_NULL)
        return 0;
    if (seq->type != YAML_SEQUENCE_NODE) {
        tlab__yaml_describe(seq, got, sizeof got);
        return fail(&c, seq->start_mark, "'workers' must be a sequence of mappings (name, url), got %s", got);
    }
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    /* route.c keeps the workers a request tried in a 64-bit mask */
    if (n > 64)
        return fail(&c, seq->start_mark, "'workers' lists %zu workers; at most 64 are supported", n);
    if (n == 0)
        return 0;
    if (!(cfg->workers = calloc(n, sizeof *cfg->workers)))
        return fail(&c, seq->start_mark, "out of memory");
    cfg->n_workers = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = yaml_document_get_node(doc, seq->data.sequence.items.start[i]);
        if (load_one(&c, doc, item, i, &cfg->workers[i]) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->workers[j].name, cfg->workers[i].name) == 0)
                return fail(&c, item->start_mark, "worker '%s' is listed twice (first at line %d)", cfg->workers[i].name,
                            cfg->workers[j].line);
    }
    return 0;
}
