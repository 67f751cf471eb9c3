/*
 * discovery_file.h - the pool from a file (discovery.file), read again each time it changes.
 *
 * The file holds one worker per line: its base URL, optionally after a name ("gpu0
 * http://10.0.0.7:8000"); '#' starts a comment; blank lines are skipped. Without a name, the
 * worker is named after its host and port. The whole file is the pool: a line removed is a
 * worker that leaves.
 *
 * inotify watches the file's directory for IN_CLOSE_WRITE (written in place) and IN_MOVED_TO
 * (written elsewhere and renamed over it); an event naming the file, or "..data" (how a
 * Kubernetes ConfigMap volume swaps its files: a symlink renamed), reads it again. IN_CREATE and
 * IN_MODIFY are not watched: a file being written would be read half-way, and a half-read file
 * would drop workers. A file that cannot be read or has an error keeps the pool as it is (the
 * error is logged as file:line:col); only a file that reads whole changes it.
 */
#ifndef TLAB_DISCOVERY_FILE_H
#define TLAB_DISCOVERY_FILE_H

#include <stddef.h>

#include <event2/event.h>

#include "discovery/discovered.h"

/* Parses a discovery file's text. Returns the number of workers (0..max) with them in out, or
 * -1 with "path:line:col: message" in err. */
int tlab__discovery_file_parse(const char *text, size_t len, const char *path, tlab__discovered *out, size_t max, char *err,
                               size_t errlen);

/* Reads `path` now and hands its workers to `found` (a missing file: an empty pool, logged),
 * then watches it. -1 with err when the file has an error (a config error at start) or its
 * directory cannot be watched. */
int tlab__discovery_file_start(struct event_base *base, const char *path, tlab__discovered_fn found, char *err,
                               size_t errlen);
void tlab__discovery_file_stop(void);

#endif
