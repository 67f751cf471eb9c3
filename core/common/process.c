/*
 * process.c - fork/exec with an exec-failure pipe, and a SIGCHLD watcher on the loop.
 *
 * The child reports a failed exec through a close-on-exec pipe, so the parent tells "cannot
 * start vllm: No such file or directory" from "vllm started and exited": a read of zero bytes
 * means the exec succeeded. That read happens once per spawn and ends as soon as the child
 * execs, so it does not stall the loop.
 */
#include "common/process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"

typedef struct child {
    long pid;
    tlab__process_exit_cb on_exit;
    void *arg;
    struct child *next;
} child;

static struct event *sigchld_ev;
static child *children;

static void on_sigchld(evutil_socket_t sig, short what, void *arg) {
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (child **cp = &children; *cp; cp = &(*cp)->next) {
            if ((*cp)->pid != pid)
                continue;
            child *c = *cp;
            *cp = c->next;
            c->on_exit(c->arg, c->pid, status);
            free(c);
            break;
        }
    }
}

int tlab__process_init(struct event_base *base) {
    sigchld_ev = evsignal_new(base, SIGCHLD, on_sigchld, NULL);
    return sigchld_ev && evsignal_add(sigchld_ev, NULL) == 0 ? 0 : -1;
}

void tlab__process_shutdown(void) {
    if (sigchld_ev)
        event_free(sigchld_ev);
    sigchld_ev = NULL;
    while (children) {
        child *c = children;
        children = c->next;
        free(c);
    }
}

static void rotate(const char *log_path, size_t max_bytes) {
    struct stat st;
    if (!log_path || !max_bytes || stat(log_path, &st) != 0 || (size_t)st.st_size <= max_bytes)
        return;
    char old[4096];
    snprintf(old, sizeof old, "%s.1", log_path);
    if (rename(log_path, old) != 0)
        LOG_WARN("cannot rotate %s: %s", log_path, strerror(errno));
}

/* In the child: never returns. Reports a failed exec's errno through `report`. */
static void exec_child(const char *const *argv, const char *const *env, const char *log_path, int flags, int report,
                       pid_t parent) {
    setpgid(0, 0);
    /* A parent that died before prctl took effect sends no signal: check it is still the same one. */
    if ((flags & TLAB_PROCESS_DIE_WITH_PARENT) && (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent))
        _exit(127);
    int in = open("/dev/null", O_RDONLY);
    int out = open(log_path ? log_path : "/dev/null",
                   O_WRONLY | O_CREAT | ((flags & TLAB_PROCESS_TRUNCATE_LOG) ? O_TRUNC : O_APPEND), 0644);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0) {
        int e = errno;
        (void)!write(report, &e, sizeof e);
        _exit(127);
    }
    for (int fd = 3; fd < 1024; fd++)
        if (fd != report)
            close(fd);
    for (size_t i = 0; env && env[i]; i++)
        putenv((char *)env[i]);
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[0], (char *const *)argv);
    int e = errno;
    (void)!write(report, &e, sizeof e);
    _exit(127);
}

long tlab__process_start(const char *const *argv, const char *const *env, const char *log_path, int flags, char *err,
                        size_t errlen) {
    if (!argv || !argv[0]) {
        snprintf(err, errlen, "no command");
        return -1;
    }
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0)
        exec_child(argv, env, log_path, flags, pipefd[1], parent);
    setpgid(pid, pid); /* also in the parent, so signalling the group never races the child's setpgid */
    close(pipefd[1]);
    int child_errno = 0;
    ssize_t n;
    do
        n = read(pipefd[0], &child_errno, sizeof child_errno);
    while (n < 0 && errno == EINTR);
    close(pipefd[0]);
    if (n > 0) {
        /* The child is exiting with 127; reap it now so no exit is reported for it. */
        waitpid(pid, NULL, 0);
        snprintf(err, errlen, "cannot start '%s': %s", argv[0], strerror(child_errno));
        return -1;
    }
    return pid;
}

long tlab__process_spawn(const char *const *argv, const char *const *env, const char *log_path, size_t log_max_bytes,
                        tlab__process_exit_cb on_exit, void *arg, char *err, size_t errlen) {
    child *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rotate(log_path, log_max_bytes);
    /* A worker never outlives the gateway, even one killed by SIGKILL (see process.h). */
    long pid = tlab__process_start(argv, env, log_path, TLAB_PROCESS_DIE_WITH_PARENT, err, errlen);
    if (pid < 0) {
        free(c);
        return -1;
    }
    c->pid = (pid_t)pid;
    c->on_exit = on_exit;
    c->arg = arg;
    c->next = children;
    children = c;
    return pid;
}

int tlab__process_signal(long pid, int sig) {
    if (pid <= 0) {
        errno = ESRCH;
        return -1;
    }
    return kill(-(pid_t)pid, sig);
}
