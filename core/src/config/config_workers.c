/*
 * config_workers.c - the `workers:` list (config_workers.h).
 */
#include "config/config_workers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/yaml_json.h"

/* Supervised pool entries (engine, profile, port, env) would need one supervisor per entry;
 * until then such keys get this answer rather than being ignored. */
static const char *const supervised_keys[] = {"engine", "profile", "port", "env", "model", NULL};

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

static int load_one(ctx *c, yaml_document_t *doc, const yaml_node_t *item, size_t idx, tlab__worker_conf *w) {
    char got[64];
    w->line = (int)item->start_mark.line + 1;
    w->col = (int)item->start_mark.column + 1;
    if (item->type != YAML_MAPPING_NODE) {
        tlab__yaml_describe(item, got, sizeof got);
        return fail(c, item->start_mark, "'workers[%zu]' must be a mapping with a name and a url, got %s", idx, got);
    }
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key), *v = yaml_document_get_node(doc, p->value);
        const char *key = scalar_of(k);
        if (!key)
            return fail(c, k->start_mark, "keys in 'workers[%zu]' must be scalars", idx);
        char **dst = strcmp(key, "name") == 0 ? &w->name : strcmp(key, "url") == 0 ? &w->url : NULL;
        if (!dst) {
            for (size_t i = 0; supervised_keys[i]; i++)
                if (strcmp(key, supervised_keys[i]) == 0)
                    return fail(c, k->start_mark,
                                "'workers[%zu].%s': supervised pool workers are not supported yet; start the worker "
                                "yourself and give its url (the supervisor plugin runs one worker, at upstream.url, "
                                "without a workers list)",
                                idx, key);
            return fail(c, k->start_mark, "unknown key '%s' in 'workers[%zu]' (expected: name, url)", key, idx);
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
    if (!w->url)
        return fail(c, item->start_mark, "'workers[%zu]' has no url", idx);
    return 0;
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
