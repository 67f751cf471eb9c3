/*
 * tune_worker.h - the worker (vLLM or tlab-sim) that tlab-tune measures: started with one
 * point's knobs in its own process group, judged ready by polling /health from the moment it
 * is spawned, stopped by process group.
 *
 * Two failure modes of vLLM's own auto_tune script are designed out: readiness is a health
 * answer, not a line in a log, so a worker that is healthy before anyone looks is not missed;
 * and the child's exit is checked before every poll, so a worker that died while starting
 * (OOM, a bad flag) is reported at once with the tail of its log, not after a timeout.
 * This is a command-line tool, so waiting here blocks on purpose; there is no event loop.
 */
#ifndef TLAB_TUNE_WORKER_H
#define TLAB_TUNE_WORKER_H

#include <stddef.h>
#include <sys/types.h>

typedef enum {
    TUNE_WORKER_READY = 0,
    TUNE_WORKER_OOM,        /* exited while starting, and its log says it ran out of GPU memory */
    TUNE_WORKER_CRASH,      /* exited while starting for another reason */
    TUNE_WORKER_TIMEOUT,    /* never became healthy in time */
    TUNE_WORKER_SPAWN,      /* could not be started at all (no such program, port taken) */
    TUNE_WORKER_INTERRUPTED /* tlab-tune was asked to stop */
} tune_worker_status;

typedef struct {
    pid_t pid;              /* also its process group */
    int port;
    char log_path[1024];
    char error[2048];       /* why it is not ready: the log's last lines */
} tune_worker;

/* Monotonic seconds, and a sleep that survives signals: the tuner's clock (a CLI tool may block). */
double tune_mono(void);
void tune_nap(double seconds);

/* Replaces every byte that is not part of valid UTF-8 with '?', in place: log text goes into the
 * JSON record, and jansson refuses invalid UTF-8 (a progress bar cut mid-character would lose it). */
void tune_clean_utf8(char *s);

/* The newest part of `text` that fits in n bytes, starting on a UTF-8 character boundary. */
const char *tune_last_chars(const char *text, size_t n);

/* The last `lines` lines of a log (the supervisor's own reader: tlab__worker_log_tail). */
void tune_log_tail(const char *path, char *out, size_t len, int lines);

/* A free TCP port on 127.0.0.1, or -1. */
int tune_free_port(void);

/* Starts argv (argv[0] looked up in PATH) with stdout and stderr to log_path (truncated), `env`
 * extra "NAME=value" entries (may be NULL), and waits until GET http://127.0.0.1:port/health
 * answers 200, the child exits, or timeout_s passes. Refuses to start when something already
 * answers on the port (it would be measured instead). On any status but READY the worker has
 * been stopped and w->error says why. *stop_flag (may be NULL) is polled to abandon the wait. */
tune_worker_status tune_worker_start(tune_worker *w, char *const *argv, char *const *env, int port, const char *log_path,
                                     double timeout_s, volatile int *stop_flag);

/* 1 while the worker process is alive; 0 after it exited (then w->error has its log's tail). */
int tune_worker_alive(tune_worker *w);

/* SIGTERM to the process group, SIGKILL after grace_s, and reaps the child. Idempotent. */
void tune_worker_stop(tune_worker *w, double grace_s);

const char *tune_worker_status_name(tune_worker_status s);

/* The value of an unlabelled-or-first sample of `metric` on the worker's GET /metrics, or NAN
 * when absent or unreachable. Used for tlab-sim's own health (tlab_sim:step_lag_max_seconds). */
double tune_worker_metric(const tune_worker *w, const char *metric);

#endif
