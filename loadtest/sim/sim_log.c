/* sim_log.c - see sim_log.h. */
#include "sim_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

void sim_log(const char *level, const char *where, const char *fmt, ...) {
    char ts[32];
    time_t t = time(NULL);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "%s %s [%s] ", level, ts, where);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
