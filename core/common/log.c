/*
 * log.c - stderr logging. One fprintf per line keeps lines whole when several processes share
 * a terminal or a log file.
 */
#include "common/log.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static tlab_log_level current_level = TLAB_LOG_INFO;
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void tlab__log_set_level(tlab_log_level level) {
    current_level = level;
}

int tlab__log_level_parse(const char *name) {
    static const char *const lower[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, lower[i]) == 0)
            return i;
    return -1;
}

int tlab__log_enabled(tlab_log_level level) {
    return level >= current_level;
}

void tlab__logv(tlab_log_level level, const char *source, const char *fmt, va_list ap) {
    if (!tlab__log_enabled(level))
        return;
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    int lvl = level < 0 || level > TLAB_LOG_ERROR ? TLAB_LOG_ERROR : level;
    fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000, level_names[lvl], source ? source : "core", msg);
}

void tlab__log(tlab_log_level level, const char *source, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    tlab__logv(level, source, fmt, ap);
    va_end(ap);
}
