/*
 * plugin_dir.h - where tlab-gateway looks for a plugin listed without a `path` when the config
 * sets no plugin_dir: next to its own executable, never at a path compiled in.
 *
 * A compiled-in absolute folder (/usr/local/lib/tlab/plugins) made `cmake --install --prefix`
 * write outside its prefix, and made a gateway run from a build tree load whatever stale copy an
 * earlier install had left there (issue 17). The folder now follows the executable:
 *   - in a build tree (the marker file CMake writes at <build>/tlab-build-tree sits beside bin/):
 *     <build>/lib/plugins, where the build puts the plugins;
 *   - otherwise, an install: <prefix>/<bindir>/../<libdir>/tlab/plugins, i.e. the install layout's
 *     bin-to-plugins path (../lib/tlab/plugins with the default GNUInstallDirs).
 */
#ifndef TLAB_PLUGIN_DIR_H
#define TLAB_PLUGIN_DIR_H

/* The default plugin folder for the executable at `exe_path` (an absolute path to the program
 * file). malloc'd; NULL only when out of memory. */
char *tlab__plugin_dir_for_exe(const char *exe_path);

/* The default plugin folder of the running program (/proc/self/exe). Without /proc the program
 * cannot be found, and the answer is the install layout's folder relative to the working
 * directory, which the plugin load then names in its error. malloc'd; NULL when out of memory. */
char *tlab__default_plugin_dir(void);

#endif
