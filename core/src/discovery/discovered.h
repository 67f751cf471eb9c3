/*
 * discovered.h - what a discovery source hands over: the workers it found, whole, each time.
 * A source never says "added" or "removed"; discovery.c compares the list with the pool.
 */
#ifndef TLAB_DISCOVERED_H
#define TLAB_DISCOVERED_H

#include <stddef.h>

#define TLAB_DISCOVERED_NAME 64 /* a name is a metric label: letters, digits, '.', '_', '-' */
#define TLAB_DISCOVERED_URL 512

typedef struct tlab__discovered {
    char name[TLAB_DISCOVERED_NAME];
    char url[TLAB_DISCOVERED_URL]; /* base URL, no trailing '/' */
} tlab__discovered;

/* The source's latest answer: these n workers are the pool (n may be 0). Called on the loop. */
typedef void (*tlab__discovered_fn)(const tlab__discovered *list, size_t n, const char *source);

/* A worker name from a host and port ("10.0.0.7-8000", "fd00--7-8000"): each character a
 * label may not hold becomes '-'. */
void tlab__discovered_name_from(char *out, size_t cap, const char *host, const char *port);

#endif
