/*
 * workload.h - a workload file (configs/workloads/NAME.yaml) turned into the one request body
 * every request of a run sends.
 *
 * Keys (a flat YAML mapping; unknown keys are errors, so a typo never silently changes a run):
 *   endpoint       chat | completions                      (default chat)
 *   model          model name sent in the body              (default Qwen/Qwen2.5-0.5B-Instruct)
 *   prompt_file    chat: file whose text is the user message, relative to the workload file
 *   prompt_tokens  completions: the prompt is exactly this many token ids; chat: the declared
 *                  prompt length, used for total_input_tokens when the server reports no usage
 *   max_tokens, temperature, ignore_eos, stream (default true), include_usage (default true)
 *   description    free text
 */
#ifndef TLAB_BENCH_WORKLOAD_H
#define TLAB_BENCH_WORKLOAD_H

#include <stddef.h>

typedef struct {
    char *name;     /* file name without .yaml */
    char *path;     /* the file read */
    int chat;       /* 1: /v1/chat/completions, 0: /v1/completions */
    int stream;
    long prompt_tokens;
    long max_tokens;
    char *body;     /* the JSON request body */
    size_t body_len;
} tlab_workload;

/* Loads NAME (looked up as workloads/NAME.yaml under $TLAB_CONFIG_DIR, ./configs and the source
 * tree's configs) or a path to a .yaml file. model_override, if not NULL, replaces the model.
 * Returns 0, or -1 with "file:line: message" in err; *w is then empty. */
int tlab_workload_load(const char *name_or_path, const char *model_override, tlab_workload *w, char *err, size_t errlen);
void tlab_workload_free(tlab_workload *w);
/* "/v1/chat/completions" or "/v1/completions". */
const char *tlab_workload_path(const tlab_workload *w);

#endif
