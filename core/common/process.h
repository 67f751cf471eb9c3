/*
 * process.h - child processes owned by the gateway (the worker, started by the supervisor
 * plugin): spawn in a new process group with output to a log file, signal the group, and learn
 * of exits on the event loop (SIGCHLD through libevent, then waitpid).
 */
#ifndef TLAB_PROCESS_H
#define TLAB_PROCESS_H

#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>

typedef void (*tlab__process_exit_cb)(void *arg, long pid, int wait_status);

/* Installs the SIGCHLD watcher on `base`. Returns 0, or -1. */
int tlab__process_init(struct event_base *base);
/* Removes the watcher; children still running are left alone (their owner stops them). */
void tlab__process_shutdown(void);

/*
 * Starts argv (argv[0] looked up in PATH) in a new process group with stdin from /dev/null and
 * stdout and stderr appended to `log_path` (NULL: /dev/null), and with TLAB_PROCESS_DIE_WITH_PARENT:
 * a gateway that dies, by SIGKILL too, leaves no worker behind holding the port or the GPU. `env` adds "NAME=value" entries
 * (NULL-terminated, may be NULL). Before starting, a log larger than `log_max_bytes` (0: no cap)
 * is rotated to "<log_path>.1", so at most about twice the cap is kept.
 * Returns the pid, or -1 with a message in err when the program could not be started (exec
 * failures are reported here, not as an exit). on_exit runs once on the loop when it exits.
 */
long tlab__process_spawn(const char *const *argv, const char *const *env, const char *log_path, size_t log_max_bytes,
                        tlab__process_exit_cb on_exit, void *arg, char *err, size_t errlen);
enum {
    TLAB_PROCESS_TRUNCATE_LOG = 1,    /* start the log afresh instead of appending */
    TLAB_PROCESS_DIE_WITH_PARENT = 2, /* SIGTERM to the child when its parent dies, even by kill -9 */
};
/*
 * TLAB_PROCESS_DIE_WITH_PARENT is Linux's PR_SET_PDEATHSIG. SIGTERM, not SIGKILL, so the worker
 * can stop what it started itself before it exits. The signal reaches the direct child only: a
 * grandchild outlives it unless the child stops it or it watches its own parent (see
 * docs/scale-to-zero.md for what is known of vLLM's). The kernel ties the signal to the thread that forked, so
 * fork from the thread that lives as long as the process (the gateway's loop thread does).
 */
/*
 * The part of tlab__process_spawn that needs no event loop, for command-line tools (tlab-tune):
 * fork, new process group, stdin from /dev/null, stdout and stderr to `log_path`, exec. `flags`
 * are TLAB_PROCESS_* bits. Returns the pid, or -1 with a message in err (exec failures
 * included). The caller reaps the child (waitpid).
 */
long tlab__process_start(const char *const *argv, const char *const *env, const char *log_path, int flags, char *err,
                        size_t errlen);
/* Sends `sig` to the process group of `pid`. 0, or -1 with errno. */
int tlab__process_signal(long pid, int sig);

#endif
