/*
 * tune_runfile.h - the run's record, experiments/runs/YYYY-MM-DD_<strategy>_<HHMMSS>.json:
 * environment, configuration, and one entry per (stage, point) with every probe. It is
 * rewritten whole after every probe (write to a temporary file, then rename), so it is always
 * complete and valid JSON even when the tuner is killed, and `--resume` can pick it up.
 */
#ifndef TLAB_TUNE_RUNFILE_H
#define TLAB_TUNE_RUNFILE_H

#include <jansson.h>
#include <stddef.h>

typedef struct {
    char path[1024];
    json_t *doc;
} tune_runfile;

/* A new record at `path` (folders created). 0, or -1 with err. */
int tune_runfile_create(tune_runfile *rf, const char *path, const char *strategy, json_t *config, json_t *environment,
                        char *err, size_t errlen);
/* An existing record, for --resume; its configuration must equal `config` (the grid may not
 * change under a resumed run). 0, or -1 with err. */
int tune_runfile_resume(tune_runfile *rf, const char *path, const char *strategy, const json_t *config, char *err,
                        size_t errlen);
/* Rewrites the file atomically. 0, or -1 with errno. */
int tune_runfile_save(tune_runfile *rf);
void tune_runfile_close(tune_runfile *rf);

/* The entry of (stage, id), or NULL. */
json_t *tune_runfile_find(tune_runfile *rf, const char *stage, const char *id);
/* The entry of (stage, id), created with status "running" and no probes when absent (an
 * unfinished entry from an interrupted run is reset, its probes dropped). Borrowed reference. */
json_t *tune_runfile_begin(tune_runfile *rf, const char *stage, const char *id, const json_t *knobs);
/* 1 when the entry has a final status (ok, unconfirmed, infeasible, oom, crash, timeout, skipped, ...). */
int tune_entry_finished(const json_t *entry);

/* Sum of bench_s over every probe of every entry (stage NULL) or of one stage. */
double tune_runfile_bench_seconds(const tune_runfile *rf, const char *stage);

#endif
