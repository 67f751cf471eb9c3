/*
 * auth_keys.c - loads the API keys file (format in auth_keys.h) with libyaml's document API, so
 * every mistake is reported as "file:line:col: message", like the main config. Key text is
 * hashed as soon as it is read and never copied, logged or echoed in a message.
 */
#include "config/auth_keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "common/yaml_json.h"

/* A keys file holds a few hundred entries at most; the cap stops an accidental huge read. */
#define MAX_KEYS 100000

typedef struct kloader {
    const char *file;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
} kloader;

__attribute__((format(printf, 3, 4))) static int kfail(kloader *ld, yaml_mark_t mark, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tlab__yaml_error_at(ld->err, ld->errlen, ld->file, mark, msg);
    return -1;
}

static const char *sval(const yaml_node_t *n) {
    return (const char *)n->data.scalar.value;
}

static int is_scalar_of(const yaml_node_t *n, tlab__yaml_scalar_type t) {
    return n->type == YAML_SCALAR_NODE && tlab__yaml_scalar_type_of(n) == t;
}

int tlab__digest_equal(const uint8_t *a, const uint8_t *b) {
    /* volatile keeps the compiler from turning the loop back into an early-exit memcmp. */
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < TLAB_SHA256_LEN; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

long tlab__keyring_find(const tlab__keyring *kr, const char *key, size_t len) {
    uint8_t d[TLAB_SHA256_LEN];
    tlab__sha256(key, len, d);
    long found = -1;
    /* Every entry is compared, and the match is selected without a branch on its position. */
    for (size_t i = 0; kr && i < kr->n; i++) {
        long eq = tlab__digest_equal(d, kr->keys[i].digest);
        long mask = -eq; /* all ones when equal */
        found = (found & ~mask) | ((long)i & mask);
    }
    return found;
}

static int valid_name(const char *s, size_t len) {
    if (len == 0 || len > TLAB_KEY_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* An integer field in [0, max]. */
static int get_limit(kloader *ld, const yaml_node_t *v, const char *path, long long max, long long *out) {
    char got[64];
    long long x;
    tlab__yaml_describe(v, got, sizeof got);
    if (!is_scalar_of(v, TLAB_YS_INT))
        return kfail(ld, v->start_mark, "'%s' must be an integer, got %s", path, got);
    if (tlab__yaml_scalar_int(v, &x) < 0 || x < 0 || x > max)
        return kfail(ld, v->start_mark, "'%s' must be between 0 (unlimited) and %lld, got %s", path, max, sval(v));
    *out = x;
    return 0;
}

static int load_entry(kloader *ld, tlab__keyring *kr, size_t idx, const yaml_node_t *item) {
    tlab__api_key *k = &kr->keys[idx];
    char path[96], got[64];
    int have_key = 0;
    k->line = (int)item->start_mark.line + 1;
    if (item->type != YAML_MAPPING_NODE) /* not quoted: a bare scalar here is likely a key */
        return kfail(ld, item->start_mark, "'keys[%zu]' must be a mapping with name and key, got a %s", idx,
                     item->type == YAML_SCALAR_NODE ? "scalar" : "sequence");
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key), *v = yaml_document_get_node(ld->doc, p->value);
        if (kn->type != YAML_SCALAR_NODE)
            return kfail(ld, kn->start_mark, "keys in 'keys[%zu]' must be scalars", idx);
        const char *key = sval(kn);
        for (yaml_node_pair_t *q = item->data.mapping.pairs.start; q < p; q++)
            if (strcmp(sval(yaml_document_get_node(ld->doc, q->key)), key) == 0)
                return kfail(ld, kn->start_mark, "duplicate key '%s' in 'keys[%zu]'", key, idx);
        snprintf(path, sizeof path, "keys[%zu].%s", idx, key);
        tlab__yaml_describe(v, got, sizeof got);
        if (strcmp(key, "name") == 0) {
            if (v->type != YAML_SCALAR_NODE || !valid_name(sval(v), v->data.scalar.length))
                return kfail(ld, v->start_mark, "'%s' must be 1..%d characters of A-Z a-z 0-9 _ . -, got %s", path,
                             TLAB_KEY_NAME_MAX, got);
            memcpy(k->name, sval(v), v->data.scalar.length + 1);
        } else if (strcmp(key, "key") == 0 || strcmp(key, "key_sha256") == 0) {
            if (have_key)
                return kfail(ld, kn->start_mark, "'keys[%zu]' has both key and key_sha256; give one", idx);
            have_key = 1;
            /* Never quote the value: it is a secret. */
            if (v->type != YAML_SCALAR_NODE || tlab__yaml_scalar_type_of(v) == TLAB_YS_NULL)
                return kfail(ld, v->start_mark, "'%s' must be a string", path);
            const char *s = sval(v);
            size_t len = v->data.scalar.length;
            if (key[3] == '\0') {
                if (len < TLAB_KEY_MIN_LEN || len > TLAB_KEY_MAX_LEN)
                    return kfail(ld, v->start_mark, "'%s' must be %d..%d characters long, got %zu", path, TLAB_KEY_MIN_LEN,
                                 TLAB_KEY_MAX_LEN, len);
                for (size_t i = 0; i < len; i++)
                    if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
                        return kfail(ld, v->start_mark, "'%s' must be visible ASCII (no spaces), character %zu is not", path,
                                     i + 1);
                tlab__sha256(s, len, k->digest);
            } else {
                int ok = len == 2 * TLAB_SHA256_LEN;
                for (size_t i = 0; ok && i < TLAB_SHA256_LEN; i++) {
                    int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
                    ok = hi >= 0 && lo >= 0;
                    k->digest[i] = (uint8_t)(hi << 4 | lo);
                }
                if (!ok)
                    return kfail(ld, v->start_mark, "'%s' must be 64 hex digits (printf %%s \"$KEY\" | sha256sum)", path);
            }
        } else if (strcmp(key, "requests_per_minute") == 0) {
            if (get_limit(ld, v, path, 1000000000LL, &k->requests_per_minute) < 0)
                return -1;
        } else if (strcmp(key, "tokens_per_minute") == 0) {
            if (get_limit(ld, v, path, 100000000000LL, &k->tokens_per_minute) < 0)
                return -1;
        } else if (strcmp(key, "admin") == 0) {
            if (!is_scalar_of(v, TLAB_YS_BOOL))
                return kfail(ld, v->start_mark, "'%s' must be true or false, got %s", path, got);
            k->admin = sval(v)[0] == 't' || sval(v)[0] == 'T';
        } else {
            return kfail(ld, kn->start_mark,
                         "unknown key '%s' in 'keys[%zu]' (expected: name, key, key_sha256, requests_per_minute, "
                         "tokens_per_minute, admin)",
                         key, idx);
        }
    }
    if (!k->name[0])
        return kfail(ld, item->start_mark, "'keys[%zu]' has no name", idx);
    if (!have_key)
        return kfail(ld, item->start_mark, "'keys[%zu]' (%s) has no key (give key or key_sha256)", idx, k->name);
    for (size_t j = 0; j < idx; j++) {
        if (strcmp(kr->keys[j].name, k->name) == 0)
            return kfail(ld, item->start_mark, "key name '%s' is used twice (first at line %d)", k->name, kr->keys[j].line);
        if (tlab__digest_equal(kr->keys[j].digest, k->digest))
            return kfail(ld, item->start_mark, "'%s' has the same key as '%s' (line %d); each key must be unique", k->name,
                         kr->keys[j].name, kr->keys[j].line);
    }
    return 0;
}

static int load_root(kloader *ld, tlab__keyring *kr, const yaml_node_t *root) {
    char got[64];
    const yaml_node_t *seq = NULL;
    if (root->type != YAML_MAPPING_NODE) {
        tlab__yaml_describe(root, got, sizeof got);
        return kfail(ld, root->start_mark, "the top level must be a mapping with 'keys', got %s", got);
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(ld->doc, p->key);
        if (kn->type != YAML_SCALAR_NODE || strcmp(sval(kn), "keys") != 0) {
            tlab__yaml_describe(kn, got, sizeof got);
            return kfail(ld, kn->start_mark, "unknown key %s at top level (expected: keys)", got);
        }
        if (seq)
            return kfail(ld, kn->start_mark, "duplicate key 'keys' at top level");
        seq = yaml_document_get_node(ld->doc, p->value);
    }
    if (!seq)
        return kfail(ld, root->start_mark, "no 'keys' list: with auth on, no request could pass");
    if (seq->type != YAML_SEQUENCE_NODE) {
        tlab__yaml_describe(seq, got, sizeof got);
        return kfail(ld, seq->start_mark, "'keys' must be a sequence of mappings, got %s", got);
    }
    size_t n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n == 0)
        return kfail(ld, seq->start_mark, "'keys' is empty: with auth on, no request could pass");
    if (n > MAX_KEYS)
        return kfail(ld, seq->start_mark, "more than %d keys", MAX_KEYS);
    if (!(kr->keys = calloc(n, sizeof *kr->keys)))
        return kfail(ld, seq->start_mark, "out of memory");
    kr->n = n;
    for (size_t i = 0; i < n; i++)
        if (load_entry(ld, kr, i, yaml_document_get_node(ld->doc, seq->data.sequence.items.start[i])) < 0)
            return -1;
    return 0;
}

tlab__keyring *tlab__keyring_load(const char *path, char *err, size_t errlen) {
    kloader ld = {.file = path, .err = err, .errlen = errlen};
    yaml_mark_t start = {0, 0, 0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    tlab__keyring *kr = calloc(1, sizeof *kr);
    yaml_parser_t parser;
    yaml_document_t doc;
    int rc = -1;
    if (!kr || !yaml_parser_initialize(&parser)) {
        fclose(f);
        free(kr);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &doc)) {
        kfail(&ld, parser.problem_mark, "%s", parser.problem ? parser.problem : "invalid YAML");
    } else {
        ld.doc = &doc;
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root)
            kfail(&ld, start, "the file is empty: with auth on, no request could pass");
        else
            rc = load_root(&ld, kr, root);
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc < 0) {
        tlab__keyring_free(kr);
        return NULL;
    }
    return kr;
}

void tlab__keyring_free(tlab__keyring *kr) {
    if (!kr)
        return;
    /* Digests are not secrets, but there is no reason to leave them in freed memory either. */
    if (kr->keys)
        memset(kr->keys, 0, kr->n * sizeof *kr->keys);
    free(kr->keys);
    free(kr);
}
