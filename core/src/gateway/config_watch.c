/*
 * config_watch.c - the ConfigMap swap watcher (config_watch.h).
 */
#include "gateway/config_watch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/dir_watch.h"
#include "common/log.h"

static struct {
    int fd;
    struct event *ev;
    void (*reload)(void);
} cw = {.fd = -1};

static void seen(void *arg, int wd, const char *name) {
    (void)wd;
    if (tlab__is_configmap_swap(name))
        *(int *)arg = 1;
}

static void on_inotify(evutil_socket_t fd, short what, void *arg) {
    (void)what, (void)arg;
    int swapped = 0;
    tlab__dir_watch_drain(fd, seen, &swapped);
    if (swapped && cw.reload)
        cw.reload();
}

int tlab__config_watch_start(struct event_base *base, const char *config_path, void (*reload)(void)) {
    tlab__config_watch_stop();
    if (!config_path)
        return 0;
    char dir[1024];
    tlab__dir_of(config_path, dir, sizeof dir);
    cw.reload = reload;
    cw.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (cw.fd < 0 || inotify_add_watch(cw.fd, dir, IN_MOVED_TO) < 0 ||
        !(cw.ev = event_new(base, cw.fd, EV_READ | EV_PERSIST, on_inotify, NULL)) || event_add(cw.ev, NULL) != 0) {
        LOG_WARN("cannot watch %s for ConfigMap updates (%s); the config reloads on SIGHUP only", dir, strerror(errno));
        tlab__config_watch_stop();
        return -1;
    }
    return 0;
}

void tlab__config_watch_stop(void) {
    if (cw.ev)
        event_free(cw.ev);
    if (cw.fd >= 0)
        close(cw.fd);
    cw.ev = NULL;
    cw.fd = -1;
    cw.reload = NULL;
}
