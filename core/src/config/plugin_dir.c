/*
 * plugin_dir.c - the default plugin folder, found from the running executable (plugin_dir.h).
 */
#include "config/plugin_dir.h"

#include "common/exe_path.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Paths relative to the folder holding the executable, from CMake (core/CMakeLists.txt): the
 * install layout's, the build tree's, and the build tree's marker. */
#ifndef TLAB_PLUGIN_DIR_FROM_BIN
#define TLAB_PLUGIN_DIR_FROM_BIN "../lib/tlab/plugins"
#endif
#ifndef TLAB_BUILD_PLUGIN_DIR_FROM_BIN
#define TLAB_BUILD_PLUGIN_DIR_FROM_BIN "../lib/plugins"
#endif
#ifndef TLAB_BUILD_MARKER_FROM_BIN
#define TLAB_BUILD_MARKER_FROM_BIN "../tlab-build-tree"
#endif

char *tlab__plugin_dir_for_exe(const char *exe_path) {
    const char *slash = strrchr(exe_path, '/');
    int dir_len = slash ? (int)(slash - exe_path) : 1;
    const char *dir = slash ? exe_path : ".";
    char *marker = NULL, *out = NULL;
    if (asprintf(&marker, "%.*s/%s", dir_len, dir, TLAB_BUILD_MARKER_FROM_BIN) < 0)
        return NULL;
    int in_build_tree = access(marker, F_OK) == 0;
    free(marker);
    if (asprintf(&out, "%.*s/%s", dir_len, dir, in_build_tree ? TLAB_BUILD_PLUGIN_DIR_FROM_BIN : TLAB_PLUGIN_DIR_FROM_BIN) < 0)
        return NULL;
    return out;
}

char *tlab__default_plugin_dir(void) {
    char self[PATH_MAX];
    if (tlab__exe_path(self, sizeof self) < 0)
        return strdup(TLAB_PLUGIN_DIR_FROM_BIN);
    return tlab__plugin_dir_for_exe(self);
}
