/*
 * auth_keys.h - the API keys file (auth.keys_file): who may call the gateway, and each key's
 * limits. Format (YAML; see configs/auth/keys.example.yaml and docs/security.md):
 *
 *   keys:
 *     - name: team-a                  # 1..64 of [A-Za-z0-9_.-]; logs and metric labels use it
 *       key: sk-tlab-...              # 16..512 visible ASCII characters, or instead:
 *       # key_sha256: <64 hex digits> # the SHA-256 of the key, so the file holds no secret
 *       requests_per_minute: 600      # 0..1000000000, 0 = unlimited (default)
 *       tokens_per_minute: 200000     # 0..100000000000, 0 = unlimited (default)
 *       admin: false                  # may call /metrics and /admin/... on the main port
 *
 * Only the SHA-256 of each key is kept in memory. Lookups hash the presented key and compare
 * it with every entry's digest in constant time, so neither timing nor length tells an attacker
 * how close a guess was.
 */
#ifndef TLAB_AUTH_KEYS_H
#define TLAB_AUTH_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "base/sha256.h"

#define TLAB_KEY_NAME_MAX 64
#define TLAB_KEY_MIN_LEN 16
#define TLAB_KEY_MAX_LEN 512

typedef struct tlab__api_key {
    char name[TLAB_KEY_NAME_MAX + 1];
    uint8_t digest[TLAB_SHA256_LEN];
    long long requests_per_minute; /* 0 = unlimited */
    long long tokens_per_minute;   /* 0 = unlimited */
    int admin;
    int line; /* where the entry starts in the file (1-based), for messages */
} tlab__api_key;

typedef struct tlab__keyring {
    tlab__api_key *keys;
    size_t n;
} tlab__keyring;

/*
 * Loads and checks `path`. Returns a new keyring, or NULL with "path:line:col: message" in err
 * (or "path: cannot open: ..."). A file with no keys is an error: with auth on, nobody could call.
 */
tlab__keyring *tlab__keyring_load(const char *path, char *err, size_t errlen);
void tlab__keyring_free(tlab__keyring *kr);

/*
 * The index of the key whose text is key[0..len), or -1. Takes the same time whichever entry
 * matches, or none: every digest is compared in full.
 */
long tlab__keyring_find(const tlab__keyring *kr, const char *key, size_t len);

/* 1 when a and b (TLAB_SHA256_LEN bytes each) are equal; no early exit. */
int tlab__digest_equal(const uint8_t *a, const uint8_t *b);

#endif
