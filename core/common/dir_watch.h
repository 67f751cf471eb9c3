/*
 * dir_watch.h - what the file watchers share (the policy scripts, the discovery file, the config
 * in a ConfigMap): each watches a file's folder with inotify, since editors and kubelet replace
 * files by rename, and reads the events the same way.
 */
#ifndef TLAB_DIR_WATCH_H
#define TLAB_DIR_WATCH_H

#include <stddef.h>
#include <string.h>

/* The folder of `path` ("." when it has none, "/" for a file at the root) into out. */
void tlab__dir_of(const char *path, char *out, size_t cap);

/* The last component of `path`. */
const char *tlab__base_name(const char *path);

/* Reads every pending event of the non-blocking inotify descriptor `fd` and calls seen(arg, wd,
 * name) for each one that names a file. */
void tlab__dir_watch_drain(int fd, void (*seen)(void *arg, int wd, const char *name), void *arg);

/* Whether an event's name is a Kubernetes ConfigMap volume's update: kubelet writes the new
 * files into a fresh folder and renames the "..data" symlink over the old one, so the files' own
 * names see no event. */
static inline int tlab__is_configmap_swap(const char *name) {
    return strcmp(name, "..data") == 0;
}

#endif
