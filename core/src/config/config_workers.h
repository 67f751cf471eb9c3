/*
 * config_workers.h - the config's `workers:` list (internal to config*.c): each entry a mapping
 * with a name and a url. Errors are "file:line:col: message", as everywhere in the config.
 */
#ifndef TLAB_CONFIG_WORKERS_H
#define TLAB_CONFIG_WORKERS_H

#include <yaml.h>

#include "config/config.h"

/* Reads `seq` into cfg->workers. 0, or -1 with the error in err. */
int tlab__config_load_workers(tlab__config *cfg, yaml_document_t *doc, const yaml_node_t *seq, const char *file, char *err,
                              size_t errlen);

#endif
