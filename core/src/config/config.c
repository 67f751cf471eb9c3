/*
 * config.c - loads the gateway's YAML config (libyaml document API) against a fixed schema, then
 * applies --set overrides through the same per-key checks, so a value is accepted or refused the
 * same way wherever it comes from. See config.h for the contract and configs/gateway.yaml for the
 * keys.
 */
#include "config/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "base/hostport.h"
#include "config/auth_keys.h"
#include "config/config_schema.h"
#include "config/config_workers.h"
#include "common/yaml_json.h"

/* Config files are a few kilobytes; the cap only stops an accidental multi-gigabyte read. */
#define MAX_CONFIG_BYTES (16 * 1024 * 1024)

/* Where a value came from, so one error function can phrase both kinds of message. */
typedef struct loader {
    tlab__config *cfg;
    yaml_document_t *doc;
    const char *file; /* for "file:line:col:" */
    const char *set;  /* the "k=v" being applied, or NULL while reading the file */
    char *dir;        /* the config file's directory, for relative plugin paths */
    char *err;
    size_t errlen;
} loader;

__attribute__((format(printf, 3, 4))) static int fail(loader *ld, yaml_mark_t mark, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (ld->set)
        snprintf(ld->err, ld->errlen, "--set '%s': %s", ld->set, msg);
    else
        tlab__yaml_error_at(ld->err, ld->errlen, ld->file, mark, msg);
    return -1;
}

static int fail_oom(loader *ld) {
    yaml_mark_t none = {0, 0, 0};
    return fail(ld, none, "out of memory");
}

static const char *scalar(const yaml_node_t *n) {
    return (const char *)n->data.scalar.value;
}

static int is_null(const yaml_node_t *n) {
    return n->type == YAML_SCALAR_NODE && tlab__yaml_scalar_type_of(n) == TLAB_YS_NULL;
}

static void expected_keys(const section *s, char *buf, size_t len) {
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < s->n && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", s->fields[i].key);
}

static const field *find_field(const section *s, const char *key) {
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->fields[i].key, key) == 0)
            return &s->fields[i];
    return NULL;
}

static const section *find_section(const char *name) {
    for (size_t i = 0; i < tlab__config_n_sections; i++)
        if (strcmp(tlab__config_sections[i].name, name) == 0)
            return &tlab__config_sections[i];
    return NULL;
}

/* A parent is a name that only groups sections ("admin" for "admin.listen"). */
static int is_parent(const char *name) {
    size_t n = strlen(name);
    for (size_t i = 0; i < tlab__config_n_sections; i++)
        if (strncmp(tlab__config_sections[i].name, name, n) == 0 && tlab__config_sections[i].name[n] == '.')
            return 1;
    return 0;
}

/* "listen, ..." : the sections right under parent `name`. */
static void child_names(const char *name, char *buf, size_t len) {
    size_t n = strlen(name), used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < tlab__config_n_sections && used < len; i++)
        if (strncmp(tlab__config_sections[i].name, name, n) == 0 && tlab__config_sections[i].name[n] == '.')
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "", tlab__config_sections[i].name + n + 1);
}

static int unknown_key(loader *ld, yaml_mark_t mark, const section *s, const char *key) {
    if (!s->name)
        return fail(ld, mark, "unknown key '%s' at top level (expected: %s)", key, tlab__config_top_expected);
    char expected[256];
    expected_keys(s, expected, sizeof expected);
    return fail(ld, mark, "unknown key '%s' in '%s' (expected: %s)", key, s->name, expected);
}

/*
 * Reads a non-empty string out of a scalar node for the key named `path`. Returns a malloc'd copy
 * or NULL after writing the error.
 */
static char *get_string(loader *ld, const yaml_node_t *n, const char *path) {
    char got[64];
    if (n->type != YAML_SCALAR_NODE || is_null(n)) {
        tlab__yaml_describe(n, got, sizeof got);
        fail(ld, n->start_mark, "'%s' must be a string, got %s", path, got);
        return NULL;
    }
    if (n->data.scalar.length == 0 || memchr(scalar(n), '\0', n->data.scalar.length)) {
        fail(ld, n->start_mark, "'%s' must be a non-empty string without NUL bytes", path);
        return NULL;
    }
    char *s = strdup(scalar(n));
    if (!s)
        fail_oom(ld);
    return s;
}

static char *resolve_path(loader *ld, const char *p);

/* autopilot.start_file: tlab-tune's tuned-gateway.yaml; its initial_limit starts the autopilot.
 * Its errors name that file (file:line:col from the YAML reader). */
static int load_start_file(tlab__config *cfg, char *err, size_t errlen) {
    const char *path = cfg->autopilot_start_file;
    json_t *doc = tlab__yaml_load_file(path, err, errlen);
    if (!doc)
        return -1;
    static const char *const keys[] = {"initial_limit", "rate_rps", "e2e_p95_s", NULL};
    const char *k;
    json_t *v;
    int rc = 0;
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "%s: autopilot.start_file must be a mapping with initial_limit (tlab-tune's tuned-gateway.yaml)",
                 path);
        rc = -1;
    }
    json_object_foreach(rc == 0 ? doc : NULL, k, v) {
        int known = 0;
        for (size_t i = 0; keys[i]; i++)
            known |= strcmp(k, keys[i]) == 0;
        if (!known) {
            snprintf(err, errlen, "%s: unknown key '%s' (expected: initial_limit, rate_rps, e2e_p95_s)", path, k);
            rc = -1;
            break;
        }
    }
    json_t *lim = rc == 0 ? json_object_get(doc, "initial_limit") : NULL;
    if (rc == 0 && (!json_is_integer(lim) || json_integer_value(lim) < 1 || json_integer_value(lim) > 1000000)) {
        snprintf(err, errlen, "%s: 'initial_limit' must be an integer from 1 to 1000000", path);
        rc = -1;
    }
    if (rc == 0)
        cfg->autopilot_start_limit = (long)json_integer_value(lim);
    json_decref(doc);
    return rc;
}

/* Checks `n` against field `f` and stores it in the config. The single gate for file and --set. */
static int set_field(loader *ld, const field *f, const char *path, const yaml_node_t *n) {
    char got[64];
    tlab__yaml_describe(n, got, sizeof got);
    void *dst = (char *)ld->cfg + f->off;

    if (f->type == F_PATH) {
        /* "" is allowed and means "off"; anything else is a path, relative ones from the file's directory. */
        if (n->type != YAML_SCALAR_NODE || is_null(n) || memchr(scalar(n), '\0', n->data.scalar.length))
            return fail(ld, n->start_mark, "'%s' must be a path or \"\" (off), got %s", path, got);
        /* A --set path is the operator's, typed relative to where they stand: no joining. */
        char *s = n->data.scalar.length == 0 || ld->set ? strdup(scalar(n)) : resolve_path(ld, scalar(n));
        if (!s)
            return fail_oom(ld);
        char **slot = dst;
        free(*slot);
        *slot = s;
        return 0;
    }
    if (f->type == F_BOOL) {
        if (n->type != YAML_SCALAR_NODE || tlab__yaml_scalar_type_of(n) != TLAB_YS_BOOL)
            return fail(ld, n->start_mark, "'%s' must be true or false, got %s", path, got);
        *(int *)dst = scalar(n)[0] == 't' || scalar(n)[0] == 'T';
        return 0;
    }
    if (f->type == F_STR || f->type == F_URL || f->type == F_LEVEL || f->type == F_HOSTPORT) {
        /* An address may be "" (off); the other strings may not. */
        int off = f->type == F_HOSTPORT && n->type == YAML_SCALAR_NODE && !is_null(n) && n->data.scalar.length == 0;
        char *s = off ? strdup("") : get_string(ld, n, path);
        if (!s)
            return off ? fail_oom(ld) : -1;
        char host[256], why[320];
        int port;
        if (f->type == F_HOSTPORT && *s && tlab__hostport_parse(s, 6379, host, sizeof host, &port, why, sizeof why) != 0) {
            free(s);
            return fail(ld, n->start_mark, "'%s': %s", path, why);
        }
        if (f->type == F_URL && !((strncmp(s, "http://", 7) == 0 && s[7]) || (strncmp(s, "https://", 8) == 0 && s[8]))) {
            free(s);
            return fail(ld, n->start_mark, "'%s' must start with http:// or https:// and name a host, got %s", path, got);
        }
        int level_ok = 0;
        for (const char *const *l = tlab__config_log_levels; f->type == F_LEVEL && *l; l++)
            level_ok |= strcmp(s, *l) == 0;
        if (f->type == F_LEVEL && !level_ok) {
            free(s);
            return fail(ld, n->start_mark, "'%s' must be one of debug, info, warn, error, got %s", path, got);
        }
        char **slot = dst;
        free(*slot);
        *slot = s;
        return 0;
    }

    long long v;
    if (f->type == F_OPT_INT && is_null(n)) {
        *(int *)dst = -1;
        return 0;
    }
    if (n->type != YAML_SCALAR_NODE || tlab__yaml_scalar_type_of(n) != TLAB_YS_INT)
        return fail(ld, n->start_mark, "'%s' must be an integer%s, got %s", path, f->type == F_OPT_INT ? " or null (none)" : "",
                    got);
    if (tlab__yaml_scalar_int(n, &v) < 0 || v < f->min || v > f->max)
        return fail(ld, n->start_mark, "'%s' must be between %lld and %lld, got %s", path, f->min, f->max, scalar(n));
    if (f->type == F_INT || f->type == F_OPT_INT)
        *(int *)dst = (int)v;
    else if (f->type == F_LONG)
        *(long *)dst = (long)v;
    else
        *(long long *)dst = v;
    return 0;
}

/* Keys must be scalars and appear once; checked before any value so the first problem wins. */
static int check_keys(loader *ld, const yaml_node_t *map, const char *where) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail(ld, k->start_mark, "keys in %s must be scalars", where);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++)
            if (strcmp(scalar(yaml_document_get_node(ld->doc, q->key)), scalar(k)) == 0)
                return fail(ld, k->start_mark, "duplicate key '%s' in %s", scalar(k), where);
    }
    return 0;
}

#define FOR_PAIRS(ld, map, k, v)                                                                                                   \
    for (yaml_node_pair_t *p_ = (map)->data.mapping.pairs.start; p_ < (map)->data.mapping.pairs.top; p_++)                         \
        for (yaml_node_t *k = yaml_document_get_node((ld)->doc, p_->key), *v = yaml_document_get_node((ld)->doc, p_->value); k;    \
             k = NULL)

/* A section left empty ("listen:" with every key commented out) is null, and means "all defaults". */
static int load_section(loader *ld, const section *s, const yaml_node_t *map) {
    char where[64], path[128], got[64];
    snprintf(where, sizeof where, "'%s'", s->name);
    if (is_null(map))
        return 0;
    if (map->type != YAML_MAPPING_NODE) {
        tlab__yaml_describe(map, got, sizeof got);
        return fail(ld, map->start_mark, "'%s' must be a mapping, got %s", s->name, got);
    }
    if (check_keys(ld, map, where) < 0)
        return -1;
    FOR_PAIRS(ld, map, k, v) {
        const field *f = find_field(s, scalar(k));
        if (!f)
            return unknown_key(ld, k->start_mark, s, scalar(k));
        snprintf(path, sizeof path, "%s.%s", s->name, f->key);
        if (set_field(ld, f, path, v) < 0)
            return -1;
    }
    return 0;
}

/* A parent mapping ("admin:") holds only sections; null means "all defaults". */
static int load_parent(loader *ld, const char *name, const yaml_node_t *map) {
    char where[64], sub[128], got[64];
    snprintf(where, sizeof where, "'%s'", name);
    if (is_null(map))
        return 0;
    if (map->type != YAML_MAPPING_NODE) {
        tlab__yaml_describe(map, got, sizeof got);
        return fail(ld, map->start_mark, "'%s' must be a mapping, got %s", name, got);
    }
    if (check_keys(ld, map, where) < 0)
        return -1;
    FOR_PAIRS(ld, map, k, v) {
        snprintf(sub, sizeof sub, "%s.%s", name, scalar(k));
        const section *s = strchr(scalar(k), '.') ? NULL : find_section(sub);
        if (!s) {
            char expected[256];
            child_names(name, expected, sizeof expected);
            return fail(ld, k->start_mark, "unknown key '%s' in '%s' (expected: %s)", scalar(k), name, expected);
        }
        if (load_section(ld, s, v) < 0)
            return -1;
    }
    return 0;
}

/* Joins a plugin path given in the file onto the file's directory, unless it is absolute. */
static char *resolve_path(loader *ld, const char *p) {
    char *out = NULL;
    if (p[0] == '/' || !ld->dir)
        out = strdup(p);
    else if (asprintf(&out, "%s/%s", ld->dir, p) < 0)
        out = NULL;
    if (!out)
        fail_oom(ld);
    return out;
}

static int load_plugin(loader *ld, tlab__plugin_conf *pc, size_t idx, const yaml_node_t *item) {
    char where[64], path[128], got[64];
    snprintf(where, sizeof where, "'plugins[%zu]'", idx);
    pc->line = (int)item->start_mark.line + 1;
    pc->col = (int)item->start_mark.column + 1;
    if (item->type != YAML_MAPPING_NODE) {
        tlab__yaml_describe(item, got, sizeof got);
        return fail(ld, item->start_mark, "'plugins[%zu]' must be a mapping with a name, got %s", idx, got);
    }
    if (check_keys(ld, item, where) < 0)
        return -1;
    FOR_PAIRS(ld, item, k, v) {
        const char *key = scalar(k);
        snprintf(path, sizeof path, "plugins[%zu].%s", idx, key);
        if (strcmp(key, "name") == 0) {
            if (!(pc->name = get_string(ld, v, path)))
                return -1;
        } else if (strcmp(key, "path") == 0) {
            char *raw = get_string(ld, v, path);
            if (!raw)
                return -1;
            pc->path = resolve_path(ld, raw);
            free(raw);
            if (!pc->path)
                return -1;
        } else if (strcmp(key, "config") == 0) {
            if (is_null(v))
                continue;
            if (v->type != YAML_MAPPING_NODE) {
                tlab__yaml_describe(v, got, sizeof got);
                return fail(ld, v->start_mark, "'%s' must be a mapping, got %s", path, got);
            }
            char msg[300];
            yaml_mark_t at;
            json_t *j = tlab__yaml_to_json(ld->doc, (yaml_node_t *)v, path, msg, sizeof msg, &at);
            if (!j)
                return fail(ld, at, "%s", msg);
            json_decref(pc->config);
            pc->config = j;
        } else {
            return fail(ld, k->start_mark, "unknown key '%s' in 'plugins[%zu]' (expected: name, path, config)", key, idx);
        }
    }
    if (!pc->name)
        return fail(ld, item->start_mark, "'plugins[%zu]' has no name", idx);
    return 0;
}

static int load_plugins(loader *ld, const yaml_node_t *seq) {
    char got[64];
    tlab__config *cfg = ld->cfg;
    if (is_null(seq))
        return 0;
    if (seq->type != YAML_SEQUENCE_NODE) {
        tlab__yaml_describe(seq, got, sizeof got);
        return fail(ld, seq->start_mark, "'plugins' must be a sequence of mappings, got %s", got);
    }
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n == 0)
        return 0;
    if (!(cfg->plugins = calloc(n, sizeof *cfg->plugins)))
        return fail_oom(ld);
    cfg->n_plugins = n;
    for (size_t i = 0; i < n; i++) {
        tlab__plugin_conf *pc = &cfg->plugins[i];
        yaml_node_t *item = yaml_document_get_node(ld->doc, seq->data.sequence.items.start[i]);
        if (load_plugin(ld, pc, i, item) < 0)
            return -1;
        /* The plugin host keys plugins by name; loading one .so twice would run its init twice. */
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->plugins[j].name, pc->name) == 0)
                return fail(ld, item->start_mark, "plugin '%s' is listed twice (first at line %d)", pc->name, cfg->plugins[j].line);
    }
    return 0;
}

static int load_root(loader *ld, const yaml_node_t *root) {
    char got[64];
    if (root->type != YAML_MAPPING_NODE) {
        tlab__yaml_describe(root, got, sizeof got);
        return fail(ld, root->start_mark, "the top level must be a mapping of keys (%s), got %s", tlab__config_top_expected, got);
    }
    if (check_keys(ld, root, "the top level") < 0)
        return -1;
    FOR_PAIRS(ld, root, k, v) {
        const char *key = scalar(k);
        const section *s = strchr(key, '.') ? NULL : find_section(key);
        const field *f = find_field(&tlab__config_top_section, key);
        int rc;
        if (s && strcmp(key, "discovery") == 0) {
            ld->cfg->discovery_line = (int)k->start_mark.line + 1;
            ld->cfg->discovery_col = (int)k->start_mark.column + 1;
        }
        if (s)
            rc = load_section(ld, s, v);
        else if (!strchr(key, '.') && is_parent(key))
            rc = load_parent(ld, key, v);
        else if (f)
            rc = set_field(ld, f, key, v);
        else if (strcmp(key, "plugins") == 0)
            rc = load_plugins(ld, v);
        else if (strcmp(key, "workers") == 0)
            rc = tlab__config_load_workers(ld->cfg, ld->doc, v, ld->file, ld->err, ld->errlen);
        else
            rc = unknown_key(ld, k->start_mark, &tlab__config_top_section, key);
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* libyaml reports reader errors (bad UTF-8) as a byte offset only; turn it into line:col. */
static yaml_mark_t mark_at_offset(const char *buf, size_t len, size_t off) {
    yaml_mark_t m = {off, 0, 0};
    for (size_t i = 0; i < off && i < len; i++) {
        if (buf[i] == '\n') {
            m.line++;
            m.column = 0;
        } else {
            m.column++;
        }
    }
    return m;
}

static int fail_parser(loader *ld, const yaml_parser_t *p, const char *buf, size_t len) {
    const char *problem = p->problem ? p->problem : "invalid YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return fail_oom(ld);
    if (p->error == YAML_READER_ERROR)
        return fail(ld, mark_at_offset(buf, len, p->problem_offset), "%s", problem);
    if (p->context)
        return fail(ld, p->problem_mark, "%s (%s at line %zu, column %zu)", problem, p->context, p->context_mark.line + 1,
                    p->context_mark.column + 1);
    return fail(ld, p->problem_mark, "%s", problem);
}

static int read_file(loader *ld, const char *path, char **buf, size_t *len) {
    yaml_mark_t none = {0, 0, 0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return snprintf(ld->err, ld->errlen, "%s: cannot open: %s", path, strerror(errno)), -1;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap || cap >= MAX_CONFIG_BYTES)
            break;
        char *nb = realloc(b, cap * 2);
        if (!nb)
            free(b);
        b = nb;
        cap *= 2;
    }
    int rd_err = ferror(f) ? errno : 0;
    fclose(f);
    if (!b)
        return fail_oom(ld);
    if (rd_err || n == cap) {
        free(b);
        if (rd_err)
            return snprintf(ld->err, ld->errlen, "%s: cannot read: %s", path, strerror(rd_err)), -1;
        return fail(ld, none, "file is larger than %d bytes", MAX_CONFIG_BYTES);
    }
    *buf = b;
    *len = n;
    return 0;
}

static int load_file(loader *ld, const char *path) {
    char *buf = NULL; /* set by read_file; initialised so -O2 (maybe-uninitialized) builds with -Werror */
    size_t len = 0;
    if (read_file(ld, path, &buf, &len) < 0)
        return -1;
    const char *slash = strrchr(path, '/');
    ld->dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!ld->dir) {
        free(buf);
        return fail_oom(ld);
    }

    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int rc = -1;
    if (!yaml_parser_initialize(&parser)) {
        free(buf);
        return fail_oom(ld);
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = fail_parser(ld, &parser, buf, len);
    } else {
        ld->doc = &doc;
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) {
            rc = 0; /* an empty file means all defaults */
        } else if ((rc = load_root(ld, root)) == 0) {
            /* A second document would be silently ignored; say so instead. */
            if (!yaml_parser_load(&parser, &extra)) {
                rc = fail_parser(ld, &parser, buf, len);
            } else {
                yaml_node_t *r2 = yaml_document_get_root_node(&extra);
                if (r2)
                    rc = fail(ld, r2->start_mark, "only one YAML document is allowed");
                yaml_document_delete(&extra);
            }
        }
        ld->doc = NULL;
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    free(buf);
    return rc;
}

/* Applies one --set: the value is read as a YAML scalar and handed to the same set_field(). */
static int apply_set(loader *ld, const char *set) {
    yaml_mark_t none = {0, 0, 0};
    ld->set = set;
    const char *eq = strchr(set, '=');
    if (!eq || eq == set)
        return fail(ld, none, "expected key=value, e.g. listen.port=8001");
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(eq - set), set);
    if (strncmp(key, "plugins", 7) == 0 && (key[7] == '\0' || key[7] == '[' || key[7] == '.'))
        return fail(ld, none, "entries of the plugins list cannot be set from the command line; edit the config file");
    if (strncmp(key, "workers", 7) == 0 && (key[7] == '\0' || key[7] == '[' || key[7] == '.'))
        return fail(ld, none, "entries of the workers list cannot be set from the command line; edit the config file");

    /* "a.b.c": section "a.b", key "c"; a name with no section is a top-level key. */
    char expected[256];
    if (find_section(key)) {
        expected_keys(find_section(key), expected, sizeof expected);
        return fail(ld, none, "'%s' is a section; set one of its keys (%s)", key, expected);
    }
    if (is_parent(key)) {
        child_names(key, expected, sizeof expected);
        return fail(ld, none, "'%s' is a section; set a key of one of its sections (%s)", key, expected);
    }
    char *dot = strrchr(key, '.');
    const section *s = NULL;
    const field *f = NULL;
    char path[160];
    if (dot) {
        *dot = '\0';
        s = find_section(key);
        if (!s && is_parent(key)) {
            child_names(key, expected, sizeof expected);
            return fail(ld, none, "unknown key '%s' in '%s' (expected: %s)", dot + 1, key, expected);
        }
        if (s && !(f = find_field(s, dot + 1)))
            return unknown_key(ld, none, s, dot + 1);
        *dot = '.';
    }
    if (!s && !(f = find_field(&tlab__config_top_section, key)))
        return unknown_key(ld, none, &tlab__config_top_section, key);
    snprintf(path, sizeof path, "%.*s", (int)(eq - set), set);

    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        return fail_oom(ld);
    yaml_parser_set_input_string(&parser, (const unsigned char *)(eq + 1), strlen(eq + 1));
    int rc;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = fail(ld, none, "invalid value: %s", parser.problem ? parser.problem : "not a YAML scalar");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        /* "k=" yields no node at all; give set_field the empty plain scalar YAML means by it. */
        yaml_node_t empty = {.type = YAML_SCALAR_NODE};
        empty.data.scalar.value = (yaml_char_t *)"";
        empty.data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
        ld->doc = &doc;
        rc = set_field(ld, f, path, root ? root : &empty);
        ld->doc = NULL;
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Runs after every --set, so `--set plugin_dir=...` moves every plugin that names no path. */
static int finish_plugins(loader *ld) {
    for (size_t i = 0; i < ld->cfg->n_plugins; i++) {
        tlab__plugin_conf *pc = &ld->cfg->plugins[i];
        if (!pc->path && asprintf(&pc->path, "%s/%s.so", ld->cfg->plugin_dir, pc->name) < 0) {
            pc->path = NULL;
            return fail_oom(ld);
        }
        if (!pc->config && !(pc->config = json_object()))
            return fail_oom(ld);
    }
    return 0;
}

/* Discovery fills the pool by itself: with a workers list, or with both sources, which would
 * win is a guess, so the config says. */
static int check_discovery(loader *ld) {
    const tlab__config *cfg = ld->cfg;
    const char *why = NULL;
    if (cfg->discovery_file[0] && cfg->discovery_dns[0])
        why = "discovery.file and discovery.dns are both set: pick one source of workers";
    else if ((cfg->discovery_file[0] || cfg->discovery_dns[0]) && cfg->n_workers)
        why = "discovery and a workers list are both set: the discovered workers are the pool; drop one of them";
    if (!why)
        return 0;
    if (cfg->discovery_line && ld->file)
        snprintf(ld->err, ld->errlen, "%s:%d:%d: %s", ld->file, cfg->discovery_line, cfg->discovery_col, why);
    else
        snprintf(ld->err, ld->errlen, "%s", why);
    return -1;
}

int tlab__config_load(tlab__config *cfg, const char *path, const char *const *sets, size_t n_sets, char *err, size_t errlen) {
    loader ld = {.cfg = cfg, .file = path, .err = err, .errlen = errlen};
    int rc = 0;
    err[0] = '\0';
    if (tlab__config_defaults(cfg) < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (path && !(cfg->source = strdup(path)))
        rc = fail_oom(&ld);
    if (rc == 0 && path)
        rc = load_file(&ld, path);
    for (size_t i = 0; rc == 0 && i < n_sets; i++)
        rc = apply_set(&ld, sets[i]);
    ld.set = NULL;
    if (rc == 0)
        rc = finish_plugins(&ld);
    if (rc == 0)
        rc = check_discovery(&ld);
    if (rc == 0 && cfg->autopilot_start_file[0] && load_start_file(cfg, err, errlen) != 0)
        rc = -1;
    /* Last, so a --set auth.keys_file is the one loaded; its errors name the keys file. */
    if (rc == 0 && cfg->auth_keys_file[0] && !(cfg->keyring = tlab__keyring_load(cfg->auth_keys_file, err, errlen)))
        rc = -1;
    free(ld.dir);
    if (rc < 0)
        tlab__config_free(cfg);
    return rc;
}
