/*
 * plugin_api.h - the core's side of the plugin SDK: the tlab_api table (tlab/plugin.h), each
 * entry adapting one core facility. The gateway hands it to the plugin host at load, so the
 * host (hooks/) never names the layers the table reaches into.
 */
#ifndef TLAB_PLUGIN_API_H
#define TLAB_PLUGIN_API_H

#include "tlab/plugin.h"

/* The table, static storage: it outlives every plugin. */
const tlab_api *tlab__plugin_api(void);

#endif
