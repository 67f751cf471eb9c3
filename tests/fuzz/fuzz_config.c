/*
 * fuzz_config.c - libFuzzer target for the YAML config loader: any file either loads or fails
 * with "file:line:col: message", never a crash, a hang or a leak (aliases included).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/tlab-fuzz-config-%d.yaml", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    tlab__config cfg;
    char err[1024];
    /* A keys file named by the input would be another file (fuzz_keys covers that parser); the
     * --set turns it off after the file's own checks, so every error here is the config's. */
    const char *sets[] = {"auth.keys_file=''"};
    if (tlab__config_load(&cfg, path, sets, 1, err, sizeof err) == 0) {
        tlab__config_free(&cfg);
    } else if (strncmp(err, path, strlen(path)) != 0) {
        abort(); /* every error names the file */
    }
    return 0;
}
