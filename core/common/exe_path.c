/*
 * exe_path.c - see exe_path.h.
 */
#include "common/exe_path.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

int tlab__exe_path(char *buf, size_t len) {
    if (len < 2)
        return -1;
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    if (n <= 0 || (size_t)n >= len - 1)
        return -1; /* unreadable, or possibly truncated */
    buf[n] = '\0';
    return (int)n;
}

int tlab__exe_sibling(const char *name, char *buf, size_t len) {
    char self[4096];
    if (tlab__exe_path(self, sizeof self) < 0)
        return 0;
    char *slash = strrchr(self, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    int w = snprintf(buf, len, "%s/%s", self, name); /* a truncated path is not the sibling */
    return w > 0 && (size_t)w < len && access(buf, X_OK) == 0;
}
