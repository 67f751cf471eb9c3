/*
 * policy_watch.h - internal to the policy host: the degradation tick and the script watcher on
 * the event loop.
 */
#ifndef TLAB_POLICY_WATCH_H
#define TLAB_POLICY_WATCH_H

#include <stddef.h>

#include <event2/event.h>

#include "policy/lua/policy_host.h"

/* Starts the tick (every tick_ms, when degradation is on) and the watcher: inotify on each
 * script's directory (editors replace files by rename, so watching the file itself would lose
 * it), or a 1 s poll when inotify is unavailable. Returns 0, or -1 with err. */
int tlab_policy_watch_start(struct event_base *base, long tick_ms, char *err, size_t errlen);
void tlab_policy_watch_stop(void);
/* "inotify", "poll" or "off", for /admin/policies. */
const char *tlab_policy_watch_mode(void);
/* The configured path of a policy, NULL when it is off (policy_host.c). */
const char *tlab_policies_path(tlab_policy_id id);

#endif
