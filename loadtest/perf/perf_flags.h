/*
 * perf_flags.h - --help and --version for the small perf programs (tlab-perf-upstream,
 * tlab-perf-latency, tlab-admission-cost). They parse their other arguments by hand, and before
 * this an unknown flag was read as a value: `tlab-perf-upstream --help` started a server. Every
 * program in build/bin answers both flags and exits 0; tests/programs/help_version.py checks it.
 */
#ifndef TLAB_PERF_FLAGS_H
#define TLAB_PERF_FLAGS_H

#include <stdio.h>
#include <string.h>

/* Prints `usage` (for -h/--help) or "<prog> <version>" (for -V/--version) to stdout when argv
 * holds either flag anywhere, and returns 1: the caller then exits 0. Returns 0 otherwise. */
static inline int perf_help_or_version(int argc, char **argv, const char *prog, const char *usage) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 1;
        }
        if (!strcmp(argv[i], "--version") || !strcmp(argv[i], "-V")) {
            printf("%s %s\n", prog, TLAB_VERSION);
            return 1;
        }
    }
    return 0;
}

#endif
