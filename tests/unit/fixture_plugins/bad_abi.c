/* Test plugin: claims a future major ABI, so the gateway must refuse it before calling anything. */
#include <tlab/plugin.h>

static int must_not_run(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t n) {
    (void)ctx, (void)api, (void)config, (void)self, (void)err, (void)n;
    __builtin_trap();
}

static const tlab_plugin desc = {.abi_major = TLAB_ABI_MAJOR + 1, .abi_minor = 3, .size = sizeof(tlab_plugin),
                                 .name = "bad_abi", .init = must_not_run};
TLAB_PLUGIN_DECLARE(desc)
