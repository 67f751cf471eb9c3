/*
 * yaml_json.c - scalar typing for the config loader, and YAML subtree -> jansson conversion for
 * plugin config blocks. See yaml_json.h for the schema.
 */
#include "common/yaml_json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An alias can point at its own ancestor, and nested aliases expand exponentially (the
 * "billion laughs"); these caps turn both into an error instead of a crash or a hang. */
#define MAX_DEPTH 64
#define MAX_VALUES 100000
#define STR_(x) #x
#define STR(x) STR_(x)

static int is_one_of(const char *s, const char *const *words) {
    for (; *words; words++)
        if (strcmp(s, *words) == 0)
            return 1;
    return 0;
}

static int all_in(const char *s, const char *set) {
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!strchr(set, *s))
            return 0;
    return 1;
}

static int is_int(const char *s) {
    if (s[0] == '0' && s[1] == 'x')
        return all_in(s + 2, "0123456789abcdefABCDEF");
    if (s[0] == '0' && s[1] == 'o')
        return all_in(s + 2, "01234567");
    if (*s == '-' || *s == '+')
        s++;
    return all_in(s, "0123456789");
}

static size_t digits(const char *s) {
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

static int is_real(const char *s) {
    static const char *const specials[] = {".nan", ".NaN", ".NAN", NULL};
    static const char *const infs[] = {".inf", ".Inf", ".INF", NULL};
    if (is_one_of(s, specials))
        return 1;
    if (*s == '-' || *s == '+')
        s++;
    if (is_one_of(s, infs))
        return 1;
    size_t whole = digits(s), frac = 0;
    s += whole;
    if (*s == '.') {
        s++;
        frac = digits(s);
        s += frac;
    }
    if (whole == 0 && frac == 0)
        return 0;
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+')
            s++;
        size_t exp = digits(s);
        if (exp == 0)
            return 0;
        s += exp;
    }
    return *s == '\0';
}

tlab__yaml_scalar_type tlab__yaml_scalar_type_of(const yaml_node_t *node) {
    static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
    static const char *const bools[] = {"true", "True", "TRUE", "false", "False", "FALSE", NULL};
    if (node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return TLAB_YS_STR;
    const char *s = (const char *)node->data.scalar.value;
    if (node->data.scalar.length == 0 || is_one_of(s, nulls))
        return TLAB_YS_NULL;
    if (is_one_of(s, bools))
        return TLAB_YS_BOOL;
    if (is_int(s))
        return TLAB_YS_INT;
    if (is_real(s))
        return TLAB_YS_REAL;
    return TLAB_YS_STR;
}

int tlab__yaml_scalar_int(const yaml_node_t *node, long long *out) {
    const char *s = (const char *)node->data.scalar.value;
    int base = 10;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
        base = s[1] == 'x' ? 16 : 8;
        s += 2;
    }
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, base);
    if (errno == ERANGE || *end)
        return -1;
    *out = v;
    return 0;
}

void tlab__yaml_describe(const yaml_node_t *node, char *buf, size_t len) {
    if (node->type == YAML_MAPPING_NODE) {
        snprintf(buf, len, "a mapping");
    } else if (node->type == YAML_SEQUENCE_NODE) {
        snprintf(buf, len, "a sequence");
    } else if (tlab__yaml_scalar_type_of(node) == TLAB_YS_NULL) {
        snprintf(buf, len, "null");
    } else {
        const int max = 40;
        int n = (int)node->data.scalar.length;
        snprintf(buf, len, "'%.*s%s'", n > max ? max : n, (const char *)node->data.scalar.value, n > max ? "..." : "");
    }
}

typedef struct conv {
    yaml_document_t *doc;
    char *err;
    size_t errlen;
    yaml_mark_t *where;
    const char *root; /* path of the converted block, for errors where the full path would be absurd */
    size_t values;
} conv;

static json_t *conv_fail(conv *c, const yaml_node_t *node, const char *fmt, const char *path) {
    snprintf(c->err, c->errlen, fmt, path);
    *c->where = node->start_mark;
    return NULL;
}

static json_t *scalar_to_json(conv *c, const yaml_node_t *node, const char *path) {
    const char *s = (const char *)node->data.scalar.value;
    long long i;
    switch (tlab__yaml_scalar_type_of(node)) {
    case TLAB_YS_NULL:
        return json_null();
    case TLAB_YS_BOOL:
        return json_boolean(s[0] == 't' || s[0] == 'T');
    case TLAB_YS_INT:
        if (tlab__yaml_scalar_int(node, &i) < 0)
            return conv_fail(c, node, "'%s': integer out of range", path);
        return json_integer(i);
    case TLAB_YS_REAL: {
        /* strtod reads "1e3" and "-.5" but not YAML's ".inf"/".nan"; neither exists in JSON anyway. */
        double d = strtod(s, NULL);
        if (strpbrk(s, "iInN") || !isfinite(d))
            return conv_fail(c, node, "'%s': infinity and NaN have no JSON form", path);
        return json_real(d);
    }
    case TLAB_YS_STR:
        break;
    }
    json_t *str = json_stringn(s, node->data.scalar.length);
    if (!str)
        return conv_fail(c, node, "'%s': string is not valid UTF-8 or contains a NUL byte", path);
    return str;
}

static json_t *node_to_json(conv *c, yaml_node_t *node, const char *path, int depth) {
    if (depth > MAX_DEPTH)
        return conv_fail(c, node, "'%s': nested more than " STR(MAX_DEPTH) " levels deep (an alias that refers to itself?)",
                         c->root);
    if (++c->values > MAX_VALUES)
        return conv_fail(c, node, "'%s': more than " STR(MAX_VALUES) " values (aliases expanding without bound?)", c->root);
    if (node->type == YAML_SCALAR_NODE)
        return scalar_to_json(c, node, path);

    char sub[256];
    if (node->type == YAML_SEQUENCE_NODE) {
        json_t *arr = json_array();
        for (yaml_node_item_t *it = node->data.sequence.items.start; arr && it < node->data.sequence.items.top; it++) {
            snprintf(sub, sizeof sub, "%s[%zu]", path, (size_t)(it - node->data.sequence.items.start));
            json_t *v = node_to_json(c, yaml_document_get_node(c->doc, *it), sub, depth + 1);
            if (!v || json_array_append_new(arr, v) < 0) {
                json_decref(arr);
                return NULL;
            }
        }
        return arr;
    }

    json_t *obj = json_object();
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start; obj && p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        if (k->type != YAML_SCALAR_NODE) {
            json_decref(obj);
            return conv_fail(c, k, "'%s': mapping keys must be scalars", path);
        }
        const char *key = (const char *)k->data.scalar.value;
        snprintf(sub, sizeof sub, "%s.%s", path, key);
        if (json_object_get(obj, key)) {
            json_decref(obj);
            return conv_fail(c, k, "duplicate key '%s'", sub);
        }
        json_t *v = node_to_json(c, yaml_document_get_node(c->doc, p->value), sub, depth + 1);
        /* jansson refuses keys that are not UTF-8; report that rather than fail silently. */
        if (v && json_object_set_new(obj, key, v) < 0) {
            json_decref(obj);
            return conv_fail(c, k, "'%s': key is not valid UTF-8", sub);
        }
        if (!v) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

json_t *tlab__yaml_to_json(yaml_document_t *doc, yaml_node_t *node, const char *path, char *err, size_t errlen, yaml_mark_t *where) {
    conv c = {doc, err, errlen, where, path, 0};
    err[0] = '\0';
    json_t *v = node_to_json(&c, node, path, 0);
    if (!v && !err[0]) {
        snprintf(err, errlen, "'%s': out of memory", path);
        *where = node->start_mark;
    }
    return v;
}

json_t *tlab__yaml_load_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    json_t *out = NULL;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        tlab__yaml_error_at(err, errlen, path, parser.problem_mark, parser.problem ? parser.problem : "YAML syntax error");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) {
            out = json_object(); /* an empty file is an empty mapping */
        } else {
            char msg[256];
            yaml_mark_t where = root->start_mark;
            out = tlab__yaml_to_json(&doc, root, "", msg, sizeof msg, &where);
            if (!out)
                tlab__yaml_error_at(err, errlen, path, where, msg);
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    return out;
}

int tlab__yaml_error_at(char *err, size_t errlen, const char *file, yaml_mark_t mark, const char *msg) {
    snprintf(err, errlen, "%s:%zu:%zu: %s", file, mark.line + 1, mark.column + 1, msg);
    return -1;
}
