/*
 * config_schema.h - the config's keys as data (internal to config*.c): each key's type, bounds and
 * place in tlab__config, grouped in sections. config.c's loader walks these tables; adding a key is
 * one line in config_schema.c's tables, one field in config.h and its default in
 * tlab__config_defaults() (config_schema.c).
 */
#ifndef TLAB_CONFIG_SCHEMA_H
#define TLAB_CONFIG_SCHEMA_H

#include <stddef.h>

#include "config/config.h"

/* F_OPT_INT: an integer, or null for "none" (stored as -1). */
typedef enum ftype { F_STR, F_URL, F_LEVEL, F_INT, F_OPT_INT, F_LONG, F_LLONG, F_PATH, F_BOOL, F_HOSTPORT } ftype;

typedef struct field {
    const char *key;
    ftype type;
    size_t off; /* into tlab__config */
    long long min, max;
} field;

typedef struct section {
    const char *name; /* NULL for the top level's scalar keys; "a.b" for a section nested in "a" */
    const field *fields;
    size_t n;
} section;

extern const section tlab__config_sections[];
extern const size_t tlab__config_n_sections;
extern const section tlab__config_top_section;
/* For "expected one of ..." messages at the top level. */
extern const char *const tlab__config_top_expected;
extern const char *const tlab__config_log_levels[];

#endif
