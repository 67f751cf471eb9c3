/*
 * policy_host.h - the Lua 5.4 policy host: admission.lua runs for every request after validation
 * and before queueing, degradation.lua on a tick. Both are edited live. See docs/policies.md.
 *
 * Each policy lives in its own sandboxed lua_State (lua_state.c). A reload compiles the new file
 * in a fresh state, runs its top level, checks the required function (and, for admission, makes
 * one probe call), and swaps it in only then; otherwise the old state keeps serving and the
 * error ("file:line: message") is logged, kept for GET /admin/policies and counted in
 * gateway_policy_reload_failures_total{policy}. A call that fails or runs out of its instruction
 * budget or memory is counted in gateway_policy_errors_total{policy,kind}; admission then falls
 * back to policies.fail_open. Nothing here can take the gateway down.
 */
#ifndef TLAB_POLICY_HOST_H
#define TLAB_POLICY_HOST_H

#include <event2/event.h>
#include <jansson.h>

#include "config/config.h"
#include "request/request.h"

typedef enum tlab__policy_id { TLAB_POLICY_ADMISSION = 0, TLAB_POLICY_DEGRADATION = 1, TLAB_POLICY__COUNT } tlab__policy_id;

/* What admission.lua sees of the request (the `req` argument of on_request). */
typedef struct tlab__admission_input {
    tlab__api_kind kind;
    int stream;
    long max_tokens;        /* -1: absent (nil in Lua) */
    long prompt_tokens;     /* estimate: token ids + ceil(text bytes / 4) */
    const char *model;      /* NULL: absent */
    const char *api_key_id; /* short non-secret id of the Bearer key, NULL without one */
    const char *api_key_name; /* the key's name in auth.keys_file, NULL with auth off */
    const char *priority;   /* the request's priority class, NULL without one */
    long deadline_ms;       /* its deadline, ms from arrival; -1: none */
    double predicted_finish_s; /* seconds from now to done at the back of the queue; 0: not measured yet */
} tlab__admission_input;

/* What admission.lua decided. Filled by tlab__policy_admission(). */
typedef struct tlab__admission_decision {
    int reject;             /* 1: answer with status / retry_after_s / message instead of queueing */
    int status;
    int retry_after_s;      /* 0: no Retry-After header */
    char message[256];
    char reason[48];        /* label of gateway_admission_rejects_total */
    const char *type;       /* OpenAI error type (static string) */
    long clamp_max_tokens;  /* -1: leave max_tokens alone; else lower it to this */
    char priority[64];      /* "": leave the priority alone */
    long deadline_ms;       /* > 0: the request's new deadline, ms from arrival (gw.set_deadline_ms) */
    int fallback;           /* 1: the policy failed and fail_open decided */
} tlab__admission_decision;

/*
 * Loads the configured scripts and, when base is not NULL, starts the degradation tick and the
 * file watcher (inotify on the scripts' directories; a 1 s poll when inotify is unavailable).
 * Returns 0, or -1 with "file:line: message" in err when a configured script does not load
 * (at start-up there is no older version to keep serving).
 */
int tlab__policies_start(struct event_base *base, const tlab__config *cfg, char *err, size_t errlen);
/* Stops the tick and the watcher and closes every state. Safe to call twice. */
void tlab__policies_stop(void);
/* Reloads one policy from its file. Returns 1 when a new version was swapped in, 0 when the
 * content is unchanged (or the policy is off), -1 when the new version was refused. */
int tlab__policies_reload(tlab__policy_id id);
/* SIGHUP: reloads every configured policy. */
void tlab__policies_reload_all(void);
/*
 * SIGHUP with a re-read config: applies fail_open, instruction_budget, memory_limit_mb,
 * min_restart_interval_s and tick_ms, and points each policy at its (possibly new) path, then
 * reloads it. A new path or new limits are validated like any reload: a version that does not
 * load leaves the old one (and its path) serving. An empty path turns the policy off. Returns 0,
 * or -1 with err set when the watcher or tick cannot be restarted (the policies still serve).
 */
int tlab__policies_apply(struct event_base *base, const tlab__config *cfg, char *err, size_t errlen);
/* Whether an admission policy is loaded (policy_host.c): without one, handle_llm skips the
 * whole step, header lookups included. */
int tlab__policies_has_admission(void);
/* Runs admission.lua for one request. Without an admission policy the decision is "admit". */
void tlab__policy_admission(const tlab__admission_input *in, tlab__admission_decision *d);
/* Runs degradation.lua's on_tick once (the timer calls this). Returns 0, or -1 when it failed. */
int tlab__policies_tick(void);
/* State of every policy for GET /admin/policies. New reference. */
json_t *tlab__policies_describe(void);

#endif
