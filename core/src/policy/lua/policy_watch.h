/*
 * policy_watch.h - the script watcher and a tick on the event loop, for the policy host. It knows
 * files and timers, not policies: what a change or a tick means is the hooks' business.
 */
#ifndef TLAB_POLICY_WATCH_H
#define TLAB_POLICY_WATCH_H

#include <stddef.h>

#include <event2/event.h>

#define TLAB_POLICY_WATCH_MAX 8

typedef struct tlab__policy_watch_hooks {
    void (*changed)(size_t index); /* paths[index] was written in place or replaced */
    void (*poll)(void);            /* no inotify: once a second, to check every file */
    void (*tick)(void);            /* every tick_ms */
} tlab__policy_watch_hooks;

/* Starts the tick (every tick_ms; none when tick_ms <= 0) and the watcher of paths[0..n) (NULL
 * entries are skipped; the paths are copied): inotify on each file's directory (editors replace
 * files by rename, so watching the file itself would lose it), or a 1 s poll when inotify is
 * unavailable. Stops a previous watch first. Returns 0, or -1 with err. */
int tlab__policy_watch_start(struct event_base *base, const char *const *paths, size_t n, long tick_ms,
                            const tlab__policy_watch_hooks *hooks, char *err, size_t errlen);
void tlab__policy_watch_stop(void);
/* "inotify", "poll" or "off", for /admin/policies. */
const char *tlab__policy_watch_mode(void);

#endif
