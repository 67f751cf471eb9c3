/*
 * sim_log.h - log lines in vLLM's format ("INFO 11-23 14:08:23 [file.py] message") on stderr, so
 * tools that grep vLLM's log (start-up capacity, sleep and wake times) work on tlab-sim's too.
 */
#ifndef SIM_LOG_H
#define SIM_LOG_H

void sim_log(const char *level, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
