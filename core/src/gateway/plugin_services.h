/* plugin_services.h - implementations behind the process, HTTP-client and misc entries of tlab_api. */
#ifndef TLAB_PLUGIN_SERVICES_H
#define TLAB_PLUGIN_SERVICES_H

#include "tlab/plugin.h"

long tlab__svc_process_spawn(tlab_plugin_ctx *ctx, const char *const *argv, const char *const *env, const char *log_path,
                            size_t log_max_bytes, void (*on_exit)(void *arg, long pid, int wait_status), void *arg, char *err,
                            size_t errlen);
int tlab__svc_process_signal(long pid, int sig);
tlab_http_call *tlab__svc_http_request(tlab_plugin_ctx *ctx, const char *method, const char *url, const char *body,
                                      long timeout_ms, void (*cb)(void *arg, int status, const char *body, size_t len),
                                      void *arg);
void tlab__svc_http_cancel(tlab_http_call *c);
size_t tlab__svc_fail_waiting(int status, const char *type, const char *message, int retry_after_s);
json_t *tlab__svc_yaml_load(const char *path, char *err, size_t errlen);
const char *tlab__svc_upstream_url(void);

#endif
