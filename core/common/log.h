/*
 * log.h - one line per event on stderr: "<UTC time> <LEVEL> [<source>] <message>".
 * <source> is "core", a plugin name, or a request id. Lines below the configured level are
 * dropped before formatting, so debug logging costs one comparison when it is off.
 */
#ifndef TLAB_LOG_H
#define TLAB_LOG_H

#include <stdarg.h>
#include "tlab/plugin.h"

void tlab__log_set_level(tlab_log_level level);
/* Parses "debug|info|warn|error"; returns -1 for anything else. */
int tlab__log_level_parse(const char *name);
int tlab__log_enabled(tlab_log_level level);
void tlab__log(tlab_log_level level, const char *source, const char *fmt, ...) TLAB_PRINTF(3, 4);
void tlab__logv(tlab_log_level level, const char *source, const char *fmt, va_list ap);

#define LOG_DEBUG(...) tlab__log(TLAB_LOG_DEBUG, "core", __VA_ARGS__)
#define LOG_INFO(...) tlab__log(TLAB_LOG_INFO, "core", __VA_ARGS__)
#define LOG_WARN(...) tlab__log(TLAB_LOG_WARN, "core", __VA_ARGS__)
#define LOG_ERROR(...) tlab__log(TLAB_LOG_ERROR, "core", __VA_ARGS__)

#endif
