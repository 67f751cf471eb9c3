/*
 * pool.h - the workers the gateway routes to (docs/workers.md): the `workers:` list of the
 * config, the workers discovery finds (discovery.h), or one worker at upstream.url (the
 * supervisor plugin's, when it is loaded).
 *
 * The pool is a table of slots whose addresses never move (requests name their worker by slot,
 * request.worker_id). A discovered pool has TLAB_POOL_MAX slots; a worker that leaves it stays
 * in its slot, out of routing, until its last request ends; only then is the slot given to a
 * newcomer. Loops over the pool visit every slot up to tlab__pool_size() and check `member`.
 *
 * Each worker carries its own concurrency gate and autopilot (gate.c), its load (route.c), its
 * circuit breaker and health (breaker.h, pool_health.c). This file owns the list, the per-worker
 * metrics and the /admin/workers listing; the fields below say which file writes each group.
 */
#ifndef TLAB_POOL_H
#define TLAB_POOL_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "config/config.h"
#include "dispatch/autopilot.h"
#include "dispatch/breaker.h"
#include "tlab/plugin.h"

struct tlab__worker_scrape;
struct tlab__xfer;

typedef struct tlab__pool_worker {
    int id;          /* its index: request.worker_id */
    char *name;      /* workers[i].name, or "default" for upstream.url */
    char *url;       /* base URL: a request goes to url + its path */
    char *root_url;  /* url without a trailing /v1: /health and /metrics live there */
    char labels[96]; /* worker="<name>", for the per-worker metric series */
    int listed;      /* from the workers list or discovery (external, health-polled); 0: upstream.url */
    int member;      /* in the pool now; 0: it left (discovery) and finishes what it has in flight */
    int supervised;  /* the gateway starts and stops it (a workers entry with a port: pool_supervisor.h) */
    int sup_state;   /* supervised: its tlab_worker_state, written by pool_supervisor.c only */
    long sup_pid;    /* supervised: its process (group) id while it runs, else 0; pool_supervisor.c */
    long sup_max_num_seqs; /* supervised: the max_num_seqs it was started with (0: not set); pool_supervisor.c */

    /* gate.c: the worker's autopilot and scrape */
    tlab__autopilot *ap;
    struct tlab__worker_scrape *scrape;
    double time_scale;
    uint64_t last_scrape_us, last_log_us, left_running_us, up_since_us;
    const char *last_logged_reason;
    int logged_scrape_failure, prev_state;

    /* route.c and pool.c: the load */
    size_t in_flight;         /* legs under way */
    double in_flight_tokens;  /* their prompt tokens plus max_tokens (estimated) */
    uint64_t last_progress_us;/* the latest byte from it, or the start of a leg on an idle worker */

    /* breaker.c and pool_health.c: health */
    tlab__breaker breaker;
    struct tlab__xfer *health_xfer;
    int health_ok;            /* the latest /health answered 200 (1 before any poll): a listed worker
                                 whose last poll failed gets no request, not even a breaker's trial */
    int health_answer_ok;     /* the poll under way answered 200 so far */
    int stalled;              /* ejected for making no progress; cleared by a success or a healthy poll */
    uint64_t last_stall_sweep_us; /* gate.c: when its stuck requests were last moved */
    uint64_t served, failed, failovers;
} tlab__pool_worker;

/* Bit i of a request's tried-workers mask is slot i: a pool holds at most 64 workers. */
#define TLAB_POOL_MAX 64

int tlab__pool_init(const tlab__config *cfg);
void tlab__pool_shutdown(void);
/* Slots in use so far (members and leavers): loops run to here and check `member`. */
size_t tlab__pool_size(void);
/* Workers in the pool now. */
size_t tlab__pool_members(void);
/* The pool of one fixed worker (no workers list, no discovery, or a list of one external
 * worker): that worker is never ejected, and its gate alone decides. */
int tlab__pool_single(void);
/* Discovery (discovery.h) only. The member named `name`, or NULL. */
tlab__pool_worker *tlab__pool_find(const char *name);
/* Discovery only. Adds a worker: back into its old slot when it is still finishing there (its
 * state kept), else into a free slot, reset (the caller gives it a gate: tlab__gate_worker_reset).
 * NULL when all TLAB_POOL_MAX slots are busy or out of memory; *fresh says whether it was reset. */
tlab__pool_worker *tlab__pool_add(const char *name, const char *url, int *fresh);
/* Discovery only. w leaves: no new request goes there; those in flight finish. */
void tlab__pool_remove(tlab__pool_worker *w);
tlab__pool_worker *tlab__pool_worker_at(size_t i);
/* The worker of a request (request.worker_id), NULL when none or out of range. */
tlab__pool_worker *tlab__pool_worker_of(int id);
/* The worker's state: a supervised entry's own, the supervisor plugin's for the pool of one at
 * upstream.url; -1 (external, always up) for external listed and discovered workers. */
int tlab__pool_worker_state(const tlab__pool_worker *w);
/* The max_num_seqs w was started with, when the gateway started it (its own supervisor or the
 * supervisor plugin); 0 when unknown (external workers, a command line without one). */
long tlab__pool_worker_max_num_seqs(const tlab__pool_worker *w);
/* Whether w takes requests at `now`: not ejected. The only worker is always routable (a
 * supervised one's state is its plugin gate's business). */
int tlab__pool_worker_routable(const tlab__pool_worker *w, uint64_t now);

/* A leg starts on / ends at w: the load and the breaker. `verdict` 1: the worker answered (any
 * status below 500); 0: it failed (unreachable, 5xx, cut, timed out), which counts toward
 * ejection; -1: no verdict (the client left). Returns 1 when the failure ejected it. */
void tlab__pool_leg_started(tlab__pool_worker *w, double tokens, uint64_t now);
int tlab__pool_leg_ended(tlab__pool_worker *w, double tokens, int verdict, uint64_t now);
/* A byte came from w. */
void tlab__pool_progress(tlab__pool_worker *w, uint64_t now);
/* A request left w before its first byte for another worker. */
void tlab__pool_count_failover(tlab__pool_worker *from);
/* w was ejected without a request's failure (health check, stall): counted in the metrics. */
void tlab__pool_count_ejection(tlab__pool_worker *w);
/* Admission refused a request because no worker was started (its start would take too long):
 * the supervised workers take it as demand all the same (pool_supervisor.h). */
void tlab__pool_note_demand(uint64_t now);
/* Whether demand was noted at or after `since`. */
int tlab__pool_demand_since(uint64_t since);
/* Publishes the per-worker gauges (gateway_worker_*). */
void tlab__pool_publish(void);
/* /admin/workers: one object per worker. New reference, NULL on allocation failure. */
json_t *tlab__pool_describe(void);

#endif
