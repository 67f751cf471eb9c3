/*
 * exe_path.h - where the running program is, and the programs installed beside it. The gateway
 * finds its plugins from it (config/plugin_dir.c), the supervisor its tlab-sim, tlab-tune its
 * sibling tools: so a build tree or an install works without PATH, and never mixes with another.
 */
#ifndef TLAB_EXE_PATH_H
#define TLAB_EXE_PATH_H

#include <stddef.h>

/* The running executable's absolute path (/proc/self/exe) into buf. Returns its length, or -1
 * when it cannot be read or does not fit. */
int tlab__exe_path(char *buf, size_t len);
/* "<the executable's folder>/<name>" into buf when that file exists and is executable: returns
 * 1. Otherwise 0 (buf then holds nothing useful). */
int tlab__exe_sibling(const char *name, char *buf, size_t len);

#endif
