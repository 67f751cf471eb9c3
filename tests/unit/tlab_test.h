/*
 * tlab_test.h - a tiny assertion harness for the unit tests. Each test binary prints one line
 * per failure and closes with "N passed, N failed"; its exit code is non-zero on any failure.
 */
#ifndef TLAB_TEST_H
#define TLAB_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tlab_test_passed, tlab_test_failed;

#define CHECK(cond)                                                                                                        \
    do {                                                                                                                   \
        if (cond) {                                                                                                        \
            tlab_test_passed++;                                                                                            \
        } else {                                                                                                           \
            tlab_test_failed++;                                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                                       \
        }                                                                                                                  \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                                               \
    do {                                                                                                                   \
        if (cond) {                                                                                                        \
            tlab_test_passed++;                                                                                            \
        } else {                                                                                                           \
            tlab_test_failed++;                                                                                            \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                                                                  \
            fputc('\n', stderr);                                                                                           \
        }                                                                                                                  \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle) tlab_check_contains(__FILE__, __LINE__, (hay), (needle))

static inline void tlab_check_contains(const char *file, int line, const char *hay, const char *needle) {
    if (hay && strstr(hay, needle)) {
        tlab_test_passed++;
    } else {
        tlab_test_failed++;
        fprintf(stderr, "%s:%d: CHECK failed: '%s' lacks '%s'\n", file, line, hay ? hay : "(null)", needle);
    }
}

/* Writes `text` to `path`, or stops the test binary (exit 2): a fixture that cannot be written
 * is a broken test environment, not a failed check. */
static inline void tlab_test_write(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(2);
    }
    fputs(text, f);
    fclose(f);
}

/* Writes `text` to <dir>/<name>; returns the path (a static buffer, valid until the next call). */
static inline const char *tlab_test_write_in(const char *dir, const char *name, const char *text) {
    static char path[4096];
    /* Checked, not ignored: gcc's -O2 format-truncation analysis (unit.optimized_warnings) */
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        fprintf(stderr, "tlab_test_write_in: path too long: %s/%s\n", dir, name);
        exit(2);
    }
    tlab_test_write(path, text);
    return path;
}

static inline int tlab_test_finish(void) {
    printf("%d passed, %d failed\n", tlab_test_passed, tlab_test_failed);
    return tlab_test_failed ? 1 : 0;
}

#endif
