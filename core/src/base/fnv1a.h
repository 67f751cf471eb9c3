/*
 * fnv1a.h - FNV-1a, 64 bits, for ids that only have to tell things apart.
 */
#ifndef TLAB_FNV1A_H
#define TLAB_FNV1A_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 64 bits: the content hash shown by /admin/policies and the API key id. Not a
 * cryptographic hash; it only has to tell versions (and keys) apart. */
static inline uint64_t tlab__fnv1a64(const void *data, size_t len) {
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

#endif
