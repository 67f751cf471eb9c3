/*
 * worker_scrape.h - reads the worker's Prometheus /metrics on the loop for the autopilot: the
 * few vLLM series it steers by (running, waiting, KV-cache usage, the inter-token and TTFT
 * histograms). One GET at a time; a scrape still under way when the next is due is skipped, so a
 * slow worker never piles up calls, and nothing here ever blocks the loop.
 */
#ifndef TLAB_WORKER_SCRAPE_H
#define TLAB_WORKER_SCRAPE_H

#include <stddef.h>

#include "dispatch/autopilot.h"
#include "upstream/upstream.h"

typedef struct tlab__worker_scrape tlab__worker_scrape;

/* on_reading(arg, reading, why): reading NULL when the scrape failed, with why saying how. */
typedef void (*tlab__worker_reading_fn)(void *arg, const tlab__worker_reading *reading, const char *why);

tlab__worker_scrape *tlab__worker_scrape_new(tlab__upstream *up, const char *url, long timeout_ms, tlab__worker_reading_fn fn,
                                             void *arg);
/* Starts a GET unless one is under way. */
void tlab__worker_scrape_poll(tlab__worker_scrape *s);
void tlab__worker_scrape_free(tlab__worker_scrape *s);

/* Parses Prometheus text exposition. Returns 0 and fills *out when at least the running and
 * waiting gauges are there (series of several models are summed), -1 otherwise. */
int tlab__worker_metrics_parse(const char *text, size_t len, tlab__worker_reading *out);

#endif
