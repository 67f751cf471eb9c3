/*
 * sha256.c - tlab__sha256 over OpenSSL's libcrypto (Debian libssl-dev): a vetted implementation,
 * not a hand-written one, behind the one-function interface the key store uses.
 */
#include "base/sha256.h"

#include <openssl/evp.h>

void tlab__sha256(const void *data, size_t len, uint8_t out[TLAB_SHA256_LEN]) {
    unsigned int n = TLAB_SHA256_LEN;
    /* EVP_Digest fails only when out of memory; the key store then sees an all-zero digest,
     * which no key hashes to in practice, so nothing matches rather than everything. */
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1)
        for (size_t i = 0; i < TLAB_SHA256_LEN; i++)
            out[i] = 0;
}
