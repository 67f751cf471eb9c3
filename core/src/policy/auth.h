/*
 * auth.h - access control on the request path: API keys (Authorization: Bearer), each key's
 * request and token rate limits, and the settlement of token reservations when a request ends.
 * Everything here is off (every call a cheap no-op) when auth.keys_file is "".
 *
 * A request's walk with auth on (docs/security.md):
 *   tlab__auth_check      before anything is parsed: 401 for no or an unknown key
 *   tlab__auth_attach     the key goes with the request (policies see its name)
 *   tlab__auth_admit      after validation and admission.lua: 429 unless both buckets allow it;
 *                        reserves prompt estimate + max_tokens (in Redis with auth.redis: then
 *                        the request goes on when Redis answers, shared_limits.h)
 *   (on_relayed)         relayed worker bytes, read for `usage` (the request's on_relayed hook)
 *   (settle)             the request's cleanup handler, before DONE: refund or charge the difference
 */
#ifndef TLAB_AUTH_H
#define TLAB_AUTH_H

#include <stddef.h>

#include <event2/event.h>

#include "config/config.h"
#include "http/http_front.h"
#include "request/request.h"

#define TLAB_AUTH_OPEN (-2L) /* auth is off: no key is needed and none is checked */

/* Takes over cfg->keyring (NULL: auth off; cfg->keyring is NULL afterwards), sets up one
 * limiter per key and, with auth.redis, starts connecting to Redis. Returns 0, or -1 with a
 * message. */
int tlab__auth_init(tlab__config *cfg, struct event_base *base, char *err, size_t errlen);
/*
 * Reads auth.keys_file again (SIGHUP). On success the new keys apply to the next request, and
 * each key that keeps its name and limits keeps its buckets; requests under way settle against
 * their key's new bucket. On failure the old keys stay in force, the error is logged, and -1 is
 * returned. A no-op with auth off (turning auth on or off needs a restart).
 */
int tlab__auth_reload(void);
/* SIGHUP with a new limits.max_tokens: the token reservation of a request without max_tokens. */
void tlab__auth_set_default_max_tokens(long max_tokens);
void tlab__auth_shutdown(void);
int tlab__auth_enabled(void);
size_t tlab__auth_key_count(void);

/*
 * Checks the Authorization header of `http`. Returns the key's index (>= 0), or TLAB_AUTH_OPEN
 * when auth is off. Otherwise it has answered itself - 401 invalid_api_key for a missing or
 * unknown key, 403 when need_admin and the key is not an admin key - and returns -1.
 */
long tlab__auth_check(tlab__http_req *http, int need_admin);
/* The configured name of key `key`, NULL for TLAB_AUTH_OPEN. Safe to log. */
const char *tlab__auth_key_name(long key);

/* Binds key `key` (from tlab__auth_check) to `r`: registers the settlement as r's cleanup handler
 * and the usage reader as its on_relayed. Returns 0, or -1 on allocation failure. */
int tlab__auth_attach(tlab_request *r, long key);
/* The name of r's key, NULL without one. */
const char *tlab__auth_request_key_name(const tlab_request *r);
typedef void (*tlab__auth_admitted_fn)(tlab_request *r);
/*
 * Applies r's key limits: reserves tokens for r (prompt estimate + max_tokens, or
 * limits.max_tokens when the request has none). Returns 0 when admitted; -1 after answering r
 * with 429 (Retry-After from the buckets' refill); or 1 when Redis decides (auth.redis): then
 * `then(r)` runs once it admits r, and otherwise r is answered 429 - or r ends first (its client
 * left) and nothing runs. When Redis does not answer in time the local buckets decide.
 */
int tlab__auth_admit(tlab_request *r, tlab__auth_admitted_fn then);
/* Request-rate limit alone, for calls that are not LLM requests (/v1/models): 0 to go on, or
 * -1 after answering 429 on `http`. Always this replica's own bucket, even with auth.redis. */
int tlab__auth_admit_call(tlab__http_req *http, long key);

#endif
