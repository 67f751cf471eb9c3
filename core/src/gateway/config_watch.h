/*
 * config_watch.h - reloads the config when it sits in a Kubernetes ConfigMap volume and the
 * ConfigMap changes: kubelet writes the new files into a fresh folder and renames the "..data"
 * symlink over the old one, so the config file's own name sees no event. inotify watches the
 * config's folder for that rename (IN_MOVED_TO of "..data") and runs the same reload as SIGHUP.
 * Anywhere else the config reloads on SIGHUP only: a file being edited is never taken half-way.
 */
#ifndef TLAB_CONFIG_WATCH_H
#define TLAB_CONFIG_WATCH_H

#include <event2/event.h>

/* Watches the folder of `config_path` (nothing to do when NULL); `reload` runs on the loop after
 * each swap. 0, or -1 when inotify is unavailable (logged; SIGHUP still works). */
int tlab__config_watch_start(struct event_base *base, const char *config_path, void (*reload)(void));
void tlab__config_watch_stop(void);

#endif
