/*
 * tune_runfile.c - the run's JSON record (see tune_runfile.h).
 */
#include "tune_runfile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void make_parents(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
}

int tune_runfile_create(tune_runfile *rf, const char *path, const char *strategy, json_t *config, json_t *environment,
                        char *err, size_t errlen) {
    snprintf(rf->path, sizeof rf->path, "%s", path);
    make_parents(path);
    rf->doc = json_pack("{s:s, s:s, s:s, s:o, s:o, s:[], s:n}", "tool", "tlab-tune", "strategy", strategy, "status", "running",
                        "environment", environment, "config", config, "entries", "result");
    if (!rf->doc || tune_runfile_save(rf) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int tune_runfile_resume(tune_runfile *rf, const char *path, const char *strategy, const json_t *config, char *err,
                        size_t errlen) {
    snprintf(rf->path, sizeof rf->path, "%s", path);
    json_error_t je;
    rf->doc = json_load_file(path, 0, &je);
    if (!rf->doc) {
        snprintf(err, errlen, "%s:%d:%d: %s", path, je.line, je.column, je.text);
        return -1;
    }
    const json_t *s = json_object_get(rf->doc, "strategy");
    if (!json_is_array(json_object_get(rf->doc, "entries")) || !json_is_string(s)) {
        snprintf(err, errlen, "%s: not a tlab-tune run record", path);
        goto bad;
    }
    if (strcmp(json_string_value(s), strategy) != 0) {
        snprintf(err, errlen, "%s was a --strategy %s run; resume it with the same strategy", path, json_string_value(s));
        goto bad;
    }
    if (!json_equal(json_object_get(rf->doc, "config"), (json_t *)config)) {
        snprintf(err, errlen, "%s was made with another grid or other options; resume it with the same ones", path);
        goto bad;
    }
    json_object_set_new(rf->doc, "status", json_string("running"));
    return 0;
bad:
    json_decref(rf->doc);
    rf->doc = NULL;
    return -1;
}

int tune_runfile_save(tune_runfile *rf) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", rf->path);
    if (json_dump_file(rf->doc, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(17)) != 0) {
        if (!errno)
            errno = EIO;
        return -1;
    }
    return rename(tmp, rf->path);
}

void tune_runfile_close(tune_runfile *rf) {
    json_decref(rf->doc);
    rf->doc = NULL;
}

json_t *tune_runfile_find(tune_runfile *rf, const char *stage, const char *id) {
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(rf->doc, "entries"), i, e) {
        if (!strcmp(json_string_value(json_object_get(e, "stage")), stage) && !strcmp(json_string_value(json_object_get(e, "id")), id))
            return e;
    }
    return NULL;
}

int tune_entry_finished(const json_t *e) {
    const char *s = json_string_value(json_object_get(e, "status"));
    return s && strcmp(s, "running") != 0;
}

json_t *tune_runfile_begin(tune_runfile *rf, const char *stage, const char *id, const json_t *knobs) {
    json_t *e = tune_runfile_find(rf, stage, id);
    if (!e) {
        e = json_object();
        json_array_append_new(json_object_get(rf->doc, "entries"), e);
    }
    json_object_clear(e);
    json_object_set_new(e, "stage", json_string(stage));
    json_object_set_new(e, "id", json_string(id));
    json_object_set_new(e, "knobs", json_deep_copy(knobs));
    json_object_set_new(e, "status", json_string("running"));
    json_object_set_new(e, "probes", json_array());
    return e;
}

double tune_runfile_bench_seconds(const tune_runfile *rf, const char *stage) {
    double total = 0;
    size_t i, k;
    json_t *e, *p;
    json_array_foreach(json_object_get(rf->doc, "entries"), i, e) {
        if (stage && strcmp(json_string_value(json_object_get(e, "stage")), stage) != 0)
            continue;
        json_array_foreach(json_object_get(e, "probes"), k, p) total += json_number_value(json_object_get(p, "bench_s"));
    }
    return total;
}
