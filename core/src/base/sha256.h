/*
 * sha256.h - SHA-256 (FIPS 180-4), one-shot. The gateway hashes API keys so it can compare
 * fixed-size digests in constant time and keep no key text in memory after loading.
 */
#ifndef TLAB_SHA256_H
#define TLAB_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define TLAB_SHA256_LEN 32

/* Writes the SHA-256 digest of data[0..len) into out. Never fails. */
void tlab__sha256(const void *data, size_t len, uint8_t out[TLAB_SHA256_LEN]);

#endif
