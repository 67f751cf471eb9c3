/*
 * yaml_json.h - how the gateway reads YAML scalars, and the conversion of a YAML subtree (a
 * plugin's `config:` block) into the jansson value that reaches the plugin's init().
 *
 * One place decides what a plain scalar means, so the typed config keys and the plugin blocks
 * agree (YAML 1.2 core schema): null/~/empty -> null, true/false -> bool, 12 / 0x1f / 0o17 ->
 * integer, 1.5 / 1e3 -> real, anything else or any quoted scalar -> string.
 */
#ifndef TLAB_YAML_JSON_H
#define TLAB_YAML_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <yaml.h>

typedef enum tlab__yaml_scalar_type {
    TLAB_YS_NULL,
    TLAB_YS_BOOL,
    TLAB_YS_INT,
    TLAB_YS_REAL,
    TLAB_YS_STR,
} tlab__yaml_scalar_type;

/* The type of a scalar node under the core schema above. `node` must be a scalar. */
tlab__yaml_scalar_type tlab__yaml_scalar_type_of(const yaml_node_t *node);

/*
 * Parses an integer scalar (TLAB_YS_INT). Returns 0 and stores it in *out, or -1 when the value
 * does not fit in a long long.
 */
int tlab__yaml_scalar_int(const yaml_node_t *node, long long *out);

/*
 * Converts `node` (from `doc`) into a new JSON value. On failure returns NULL, writes a message
 * without location into err, and stores in *where the mark of the offending node. `path` names
 * `node` in messages ("plugins[0].config"). Mappings must have scalar, unique keys. Depth and
 * total size are capped, because aliases can make a small file expand without bound (and even
 * refer to their own ancestor).
 */
/* Writes "file:line:col: message" into err (1-based line and column, as compilers print them):
 * the one format of every YAML error the gateway and the tools report. Returns -1 for tail calls. */
int tlab__yaml_error_at(char *err, size_t errlen, const char *file, yaml_mark_t mark, const char *msg);

json_t *tlab__yaml_to_json(yaml_document_t *doc, yaml_node_t *node, const char *path, char *err, size_t errlen, yaml_mark_t *where);

/* Reads a whole YAML file into a new JSON value (same scalar typing). NULL on failure, with
 * "file:line:col: message" (or "file: cannot open: ...") in err. */
json_t *tlab__yaml_load_file(const char *path, char *err, size_t errlen);

/* Short description of a node for "got ..." in messages: "'abc'", "null", "a mapping", "a sequence". */
void tlab__yaml_describe(const yaml_node_t *node, char *buf, size_t len);

#endif
