/*
 * policy_watch.c - notices script edits and drives the degradation tick, all on the event loop.
 *
 * inotify watches the directory of each script for IN_CLOSE_WRITE (written in place) and
 * IN_MOVED_TO (written elsewhere and renamed over it, as editors and atomic writers do); an
 * event naming a script reloads it at once, and so does a Kubernetes ConfigMap update (its
 * volume renames a "..data" symlink over the old one: every script in that folder is read again). The reload itself skips content it has already
 * judged, so repeated events cost a read and a hash. Without inotify, a 1 s timer re-reads the
 * scripts instead.
 */
#include "policy/lua/policy_watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/dir_watch.h"
#include "common/log.h"

static struct {
    int fd;
    size_t n;
    char *path[TLAB_POLICY_WATCH_MAX]; /* copies; NULL: that slot is not watched */
    int wd[TLAB_POLICY_WATCH_MAX];
    tlab__policy_watch_hooks hooks;
    struct event *inotify_ev, *poll_ev, *tick_ev;
    const char *mode;
} w = {.fd = -1, .mode = "off"};

static void seen(void *arg, int wd, const char *name) {
    int *touched = arg;
    for (size_t i = 0; i < w.n; i++) {
        const char *path = w.path[i];
        /* A ConfigMap update swaps every file of the folder at once. */
        if (path && wd == w.wd[i] && (strcmp(name, tlab__base_name(path)) == 0 || tlab__is_configmap_swap(name)))
            touched[i] = 1;
    }
}

static void on_inotify(evutil_socket_t fd, short what, void *arg) {
    int touched[TLAB_POLICY_WATCH_MAX] = {0};
    tlab__dir_watch_drain(fd, seen, touched);
    for (size_t i = 0; i < w.n; i++)
        if (touched[i] && w.hooks.changed)
            w.hooks.changed(i);
}

static void on_poll(evutil_socket_t fd, short what, void *arg) {
    if (w.hooks.poll)
        w.hooks.poll();
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    if (w.hooks.tick)
        w.hooks.tick();
}

/* Adds a watch on the directory of `path`; returns the watch descriptor or -1. */
static int watch_dir(const char *path) {
    char dir[1024];
    tlab__dir_of(path, dir, sizeof dir);
    return inotify_add_watch(w.fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO);
}

int tlab__policy_watch_start(struct event_base *base, const char *const *paths, size_t n, long tick_ms,
                            const tlab__policy_watch_hooks *hooks, char *err, size_t errlen) {
    tlab__policy_watch_stop();
    if (n > TLAB_POLICY_WATCH_MAX)
        return snprintf(err, errlen, "at most %d policy files can be watched", TLAB_POLICY_WATCH_MAX), -1;
    w.hooks = *hooks;
    w.n = n;
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        if (paths[i] && !(w.path[i] = strdup(paths[i])))
            return snprintf(err, errlen, "out of memory"), -1;
        any |= paths[i] != NULL;
    }
    if (tick_ms > 0) {
        struct timeval tv = {tick_ms / 1000, (tick_ms % 1000) * 1000};
        if (!(w.tick_ev = event_new(base, -1, EV_PERSIST, on_tick, NULL)) || event_add(w.tick_ev, &tv) != 0)
            return snprintf(err, errlen, "cannot start the degradation tick"), -1;
    }
    if (!any)
        return 0;
    w.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int ok = w.fd >= 0;
    for (size_t i = 0; ok && i < w.n; i++) {
        const char *path = w.path[i];
        w.wd[i] = path ? watch_dir(path) : -1;
        ok = !path || w.wd[i] >= 0;
    }
    if (ok && (w.inotify_ev = event_new(base, w.fd, EV_READ | EV_PERSIST, on_inotify, NULL)) && event_add(w.inotify_ev, NULL) == 0) {
        w.mode = "inotify";
        return 0;
    }
    LOG_WARN("inotify unavailable (%s); checking the policy scripts every second instead", strerror(errno));
    if (w.inotify_ev)
        event_free(w.inotify_ev);
    w.inotify_ev = NULL;
    if (w.fd >= 0)
        close(w.fd);
    w.fd = -1;
    struct timeval one = {1, 0};
    if (!(w.poll_ev = event_new(base, -1, EV_PERSIST, on_poll, NULL)) || event_add(w.poll_ev, &one) != 0)
        return snprintf(err, errlen, "cannot start the policy file poll"), -1;
    w.mode = "poll";
    return 0;
}

void tlab__policy_watch_stop(void) {
    struct event **evs[] = {&w.inotify_ev, &w.poll_ev, &w.tick_ev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++) {
        if (*evs[i])
            event_free(*evs[i]);
        *evs[i] = NULL;
    }
    if (w.fd >= 0)
        close(w.fd);
    w.fd = -1;
    for (size_t i = 0; i < w.n; i++) {
        free(w.path[i]);
        w.path[i] = NULL;
    }
    w.n = 0;
    w.mode = "off";
}

const char *tlab__policy_watch_mode(void) {
    return w.mode;
}
