/*
 * fuzz_keys.c - libFuzzer target for the API keys file loader (auth_keys.c): any file either
 * loads or fails with "file:line:col: message", never a crash, a hang or a leak; a loaded
 * keyring's lookups work on every entry.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/auth_keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/tlab-fuzz-keys-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    char err[1024];
    tlab__keyring *kr = tlab__keyring_load(path, err, sizeof err);
    if (!kr) {
        if (strncmp(err, path, strlen(path)) != 0)
            abort(); /* every error names the file */
        return 0;
    }
    if (kr->n == 0)
        abort(); /* an empty keyring must have been refused */
    for (size_t i = 0; i < kr->n; i++)
        if (!kr->keys[i].name[0])
            abort();
    (void)tlab__keyring_find(kr, (const char *)data, size);
    tlab__keyring_free(kr);
    return 0;
}
