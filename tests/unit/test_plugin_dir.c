/*
 * test_plugin_dir.c - the default plugin folder follows the executable (core/src/config/plugin_dir.h):
 * a build tree's lib/plugins when the build marker sits beside bin/, the install layout's
 * ../lib/tlab/plugins otherwise, and never a compiled-in absolute folder such as
 * /usr/local/lib/tlab/plugins (which let a build-tree gateway load a stale installed copy).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/plugin_dir.h"
#include "tlab_test.h"

static char tmpdir[] = "/tmp/tlab-plugin-dir-XXXXXX";

static void test_install_layout(void) {
    char exe[PATH_MAX], want[PATH_MAX];
    snprintf(exe, sizeof exe, "%s/prefix/bin/tlab-gateway", tmpdir);
    snprintf(want, sizeof want, "%s/prefix/bin/../lib/tlab/plugins", tmpdir);
    char *dir = tlab__plugin_dir_for_exe(exe);
    CHECK_MSG(dir && strcmp(dir, want) == 0, "got %s, want %s", dir ? dir : "(null)", want);
    free(dir);
}

static void test_build_tree(void) {
    char path[PATH_MAX], exe[PATH_MAX], want[PATH_MAX];
    snprintf(path, sizeof path, "%s/build", tmpdir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/build/bin", tmpdir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/build/tlab-build-tree", tmpdir);
    tlab_test_write(path, "marker\n");
    snprintf(exe, sizeof exe, "%s/build/bin/tlab-gateway", tmpdir);
    snprintf(want, sizeof want, "%s/build/bin/../lib/plugins", tmpdir);
    char *dir = tlab__plugin_dir_for_exe(exe);
    CHECK_MSG(dir && strcmp(dir, want) == 0, "got %s, want %s", dir ? dir : "(null)", want);
    free(dir);
}

/* The config's default is the running program's folder, whatever the install prefix was. */
static void test_config_default(void) {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    CHECK(n > 0);
    if (n <= 0)
        return;
    self[n] = '\0';
    *strrchr(self, '/') = '\0';
    tlab__config cfg;
    CHECK(tlab__config_defaults(&cfg) == 0);
    CHECK_MSG(strncmp(cfg.plugin_dir, self, strlen(self)) == 0 && cfg.plugin_dir[strlen(self)] == '/',
              "default plugin_dir %s is not beside the executable in %s", cfg.plugin_dir, self);
    CHECK(strstr(cfg.plugin_dir, "/usr/local") == NULL || strncmp(self, "/usr/local", 10) == 0);
    tlab__config_free(&cfg);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_install_layout();
    test_build_tree();
    test_config_default();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tlab_test_finish();
}
