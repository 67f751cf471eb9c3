/*
 * config_watch.c - the ConfigMap swap watcher (config_watch.h).
 */
#include "gateway/config_watch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/log.h"

static struct {
    int fd;
    struct event *ev;
    void (*reload)(void);
} cw = {.fd = -1};

static void on_inotify(evutil_socket_t fd, short what, void *arg) {
    (void)what, (void)arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    int swapped = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->len && strcmp(ev->name, "..data") == 0)
                swapped = 1;
            p += sizeof *ev + ev->len;
        }
    }
    if (swapped && cw.reload)
        cw.reload();
}

int tlab__config_watch_start(struct event_base *base, const char *config_path, void (*reload)(void)) {
    tlab__config_watch_stop();
    if (!config_path)
        return 0;
    char dir[1024];
    const char *slash = strrchr(config_path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == config_path ? 1 : (int)(slash - config_path), config_path);
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
