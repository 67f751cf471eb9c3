/*
 * lua_state.h - one sandboxed Lua state: counting allocator (memory cap), instruction budget
 * (count hook), the _ENV sandbox with an allow-list of libraries and the `gw` table, text-only
 * loading, and protected calls whose errors come back as "file:line: message".
 */
#ifndef TLAB_LUA_STATE_H
#define TLAB_LUA_STATE_H

#include <stddef.h>

#include <lua.h>

#include "policy/lua/lua_gw.h"

typedef enum tlab__lua_fail { TLAB_LUA_OK = 0, TLAB_LUA_ERROR = 1, TLAB_LUA_BUDGET = 2, TLAB_LUA_MEMORY = 3 } tlab__lua_fail;

typedef struct tlab__lstate {
    tlab__lua_ctx ctx; /* first: lua_getextraspace points here */
    lua_State *L;
    int msgh_ref; /* the traceback message handler */
} tlab__lstate;

/*
 * Builds a state for policy `id`, loads `src` (text only) as chunk `chunkname` ("@path" gives
 * "path:line:" in messages), runs its top level under `budget` x 10 instructions, checks that it
 * defined the global function `required_fn`, then seals the environment (assigning an undeclared
 * global raises an error from then on). Returns the state, or NULL with the message in err.
 */
tlab__lstate *tlab__lstate_new(tlab__policy_id id, const char *chunkname, const char *src, size_t len, const char *required_fn,
                             long budget, size_t mem_limit, int probing, char *err, size_t errlen);
void tlab__lstate_free(tlab__lstate *s);
/* Pushes the message handler and then `fn`, or the bound required function when fn is NULL;
 * returns the handler's stack index. Push the arguments, then call tlab__lstate_pcall. Nothing
 * here allocates, so it is safe outside a protected call. */
int tlab__lstate_prepare(tlab__lstate *s, lua_CFunction fn);
/* Calls the prepared function with `nargs` arguments under the budget. On failure writes the
 * first line of the error ("file:line: message") into err and the traceback into trace (either
 * may be NULL). Leaves the stack as it was before tlab__lstate_prepare. */
tlab__lua_fail tlab__lstate_pcall(tlab__lstate *s, int msgh, int nargs, char *err, size_t errlen, char *trace, size_t tracelen);
const char *tlab__lua_fail_kind(tlab__lua_fail f);

#endif
