/*
 * dir_watch.c - the file watchers' shared parts (dir_watch.h).
 */
#include "common/dir_watch.h"

#include <stdio.h>
#include <sys/inotify.h>
#include <unistd.h>

void tlab__dir_of(const char *path, char *out, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else
        snprintf(out, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

const char *tlab__base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

void tlab__dir_watch_drain(int fd, void (*seen)(void *arg, int wd, const char *name), void *arg) {
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            if (ev->len)
                seen(arg, ev->wd, ev->name);
            p += sizeof *ev + ev->len;
        }
    }
}
