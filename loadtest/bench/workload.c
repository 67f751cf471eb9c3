/*
 * workload.c - reads a workload YAML file (libyaml) and builds the request body (jansson).
 */
#include "workload.h"

#include "common/yaml_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <yaml.h>

#ifndef TLAB_SOURCE_CONFIG_DIR
#define TLAB_SOURCE_CONFIG_DIR "configs"
#endif

#define DEFAULT_MODEL "Qwen/Qwen2.5-0.5B-Instruct"

typedef struct {
    char *endpoint, *model, *prompt_file, *description;
    long prompt_tokens, max_tokens;
    double temperature;
    int ignore_eos, stream, include_usage;
    int has_temperature, has_ignore_eos;
} spec;

const char *tlab_workload_path(const tlab_workload *w) {
    return w->chat ? "/v1/chat/completions" : "/v1/completions";
}

void tlab_workload_free(tlab_workload *w) {
    free(w->name);
    free(w->path);
    free(w->body);
    memset(w, 0, sizeof *w);
}

static char *resolve(const char *name) {
    size_t n = strlen(name);
    if (strchr(name, '/') || (n > 5 && strcmp(name + n - 5, ".yaml") == 0))
        return strdup(name);
    const char *dirs[3] = {getenv("TLAB_CONFIG_DIR"), "configs", TLAB_SOURCE_CONFIG_DIR};
    for (int i = 0; i < 3; i++) {
        if (!dirs[i] || !*dirs[i])
            continue;
        char buf[4096];
        snprintf(buf, sizeof buf, "%s/workloads/%s.yaml", dirs[i], name);
        if (access(buf, R_OK) == 0)
            return strdup(buf);
    }
    return NULL;
}

static int parse_bool(const char *v, int *out) {
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) {
        *out = 0;
        return 0;
    }
    return -1;
}

static int parse_long(const char *v, long lo, long hi, long *out) {
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi)
        return -1;
    *out = x;
    return 0;
}

/* Applies one key; returns NULL or an error message. */
static const char *set_key(spec *s, const char *k, const char *v) {
    if (!strcmp(k, "endpoint")) {
        if (strcmp(v, "chat") && strcmp(v, "completions"))
            return "endpoint must be chat or completions";
        free(s->endpoint);
        s->endpoint = strdup(v);
    } else if (!strcmp(k, "model")) {
        free(s->model);
        s->model = strdup(v);
    } else if (!strcmp(k, "prompt_file")) {
        free(s->prompt_file);
        s->prompt_file = strdup(v);
    } else if (!strcmp(k, "description") || !strcmp(k, "name")) {
        /* informational only */
    } else if (!strcmp(k, "prompt_tokens")) {
        if (parse_long(v, 1, 1000000, &s->prompt_tokens))
            return "prompt_tokens must be an integer from 1 to 1000000";
    } else if (!strcmp(k, "max_tokens")) {
        if (parse_long(v, 1, 1000000, &s->max_tokens))
            return "max_tokens must be an integer from 1 to 1000000";
    } else if (!strcmp(k, "temperature")) {
        char *end = NULL;
        s->temperature = strtod(v, &end);
        if (end == v || *end || s->temperature < 0)
            return "temperature must be a number >= 0";
        s->has_temperature = 1;
    } else if (!strcmp(k, "ignore_eos")) {
        if (parse_bool(v, &s->ignore_eos))
            return "ignore_eos must be true or false";
        s->has_ignore_eos = 1;
    } else if (!strcmp(k, "stream")) {
        if (parse_bool(v, &s->stream))
            return "stream must be true or false";
    } else if (!strcmp(k, "include_usage")) {
        if (parse_bool(v, &s->include_usage))
            return "include_usage must be true or false";
    } else {
        return "unknown key (endpoint, model, prompt_file, prompt_tokens, max_tokens, temperature, ignore_eos, "
               "stream, include_usage, description)";
    }
    return NULL;
}

static int read_spec(const char *path, spec *s, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    int rc = 0, depth = 0, done = 0;
    char *key = NULL;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            tlab__yaml_error_at(err, errlen, path, p.problem_mark, p.problem ? p.problem : "YAML error");
            rc = -1;
            break;
        }
        size_t line = ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            if (depth > 0 || ev.type == YAML_SEQUENCE_START_EVENT) {
                snprintf(err, errlen, "%s:%zu: a workload is a flat mapping of key: value", path, line);
                rc = -1;
                done = 1;
            }
            depth++;
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (!key) {
                key = strdup(v);
            } else {
                const char *msg = set_key(s, key, v);
                if (msg) {
                    snprintf(err, errlen, "%s:%zu: %s: %s", path, line, key, msg);
                    rc = -1;
                    done = 1;
                }
                free(key);
                key = NULL;
            }
            break;
        }
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    free(key);
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}

static char *read_file(const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    buf[len] = '\0';
    /* A trailing newline is an editor's artefact, not part of the prompt. */
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    return buf;
}

/* prompt_file is relative to the directory of the workload file. */
static char *prompt_path(const char *workload_path, const char *prompt_file) {
    if (prompt_file[0] == '/')
        return strdup(prompt_file);
    const char *slash = strrchr(workload_path, '/');
    int dlen = slash ? (int)(slash - workload_path) : 1;
    const char *dir = slash ? workload_path : ".";
    size_t n = (size_t)dlen + strlen(prompt_file) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%.*s/%s", dlen, dir, prompt_file);
    return p;
}

static int build_body(const spec *s, const char *wpath, const char *model_override, tlab_workload *w, char *err,
                      size_t errlen) {
    json_t *body = json_object();
    json_object_set_new(body, "model", json_string(model_override ? model_override : s->model ? s->model : DEFAULT_MODEL));
    if (w->chat) {
        if (!s->prompt_file) {
            snprintf(err, errlen, "%s: a chat workload needs prompt_file", wpath);
            json_decref(body);
            return -1;
        }
        char *pp = prompt_path(wpath, s->prompt_file);
        char *text = pp ? read_file(pp, err, errlen) : NULL;
        free(pp);
        if (!text) {
            json_decref(body);
            return -1;
        }
        json_t *msg = json_pack("{s:s, s:s}", "role", "user", "content", text);
        free(text);
        json_object_set_new(body, "messages", json_pack("[o]", msg));
    } else {
        if (s->prompt_tokens <= 0) {
            snprintf(err, errlen, "%s: a completions workload needs prompt_tokens", wpath);
            json_decref(body);
            return -1;
        }
        /* Spread the ids over a range of ordinary vocabulary so no tokenizer sees one repeated id. */
        json_t *ids = json_array();
        for (long i = 0; i < s->prompt_tokens; i++)
            json_array_append_new(ids, json_integer(1000 + (i * 7919) % 20000));
        json_object_set_new(body, "prompt", ids);
    }
    json_object_set_new(body, "max_tokens", json_integer(s->max_tokens));
    if (s->has_temperature)
        json_object_set_new(body, "temperature", json_real(s->temperature));
    if (s->has_ignore_eos)
        json_object_set_new(body, "ignore_eos", json_boolean(s->ignore_eos));
    json_object_set_new(body, "stream", json_boolean(s->stream));
    if (s->stream && s->include_usage)
        json_object_set_new(body, "stream_options", json_pack("{s:b}", "include_usage", 1));
    w->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!w->body) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->body_len = strlen(w->body);
    return 0;
}

int tlab_workload_load(const char *name_or_path, const char *model_override, tlab_workload *w, char *err, size_t errlen) {
    memset(w, 0, sizeof *w);
    char *path = resolve(name_or_path);
    if (!path) {
        snprintf(err, errlen, "workload '%s' not found (looked for workloads/%s.yaml under $TLAB_CONFIG_DIR, ./configs and %s)",
                 name_or_path, name_or_path, TLAB_SOURCE_CONFIG_DIR);
        return -1;
    }
    spec s = {.max_tokens = 200, .stream = 1, .include_usage = 1};
    int rc = read_spec(path, &s, err, errlen);
    if (rc == 0) {
        w->chat = !s.endpoint || strcmp(s.endpoint, "chat") == 0;
        w->stream = s.stream;
        w->prompt_tokens = s.prompt_tokens;
        w->max_tokens = s.max_tokens;
        w->path = path;
        const char *base = strrchr(path, '/');
        w->name = strdup(base ? base + 1 : path);
        if (w->name) {
            size_t n = strlen(w->name);
            if (n > 5 && strcmp(w->name + n - 5, ".yaml") == 0)
                w->name[n - 5] = '\0';
        }
        rc = build_body(&s, path, model_override, w, err, errlen);
    } else {
        free(path);
    }
    free(s.endpoint);
    free(s.model);
    free(s.prompt_file);
    free(s.description);
    if (rc != 0)
        tlab_workload_free(w);
    return rc;
}
