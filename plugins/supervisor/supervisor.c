/*
 * supervisor.c - owns the worker process: start on demand, health to READY, stop when idle,
 * restart on crash, restart with new knobs. Scale-to-zero after Knative's activator and
 * llama-swap: requests that find no worker wait in the gateway queue while it starts.
 *
 * States (gateway_worker_state): idle 0 -> starting 1 -> running 2 -> stopping 3 -> idle, and
 * failed 5 (a start that did not reach READY; retried after a backoff when there is demand).
 *
 * The idle ladder: running -> (idle sleep_after_s) sleeping 4 via vLLM's POST /sleep, which frees
 * the GPU but keeps the process -> (idle idle_timeout_s in total) stopped. A request that finds
 * the worker asleep wakes it (POST /wake_up, state starting while it wakes), which is far faster
 * than a cold start. A worker that answers 404 to /sleep has no sleep mode: the ladder turns
 * itself off and the worker is stopped and started as before.
 *
 * The dispatch gate holds every request while the worker is not running, and a held request is
 * the demand that starts it. READY is the first 200 from the health URL, polled on the loop.
 * A worker that exits while starting (vLLM exits on a config that does not fit the GPU) fails
 * the start at once, and the waiting requests get 503 with the worker's own last log lines.
 * A crash while running is counted and logged, and the worker is started again, after a
 * backoff, as long as anything waits. Requests that were at the worker when it died and had
 * received nothing go back to the queue (the core does that). Those already streaming get an
 * error event.
 *
 * No orphans, no impostors: the worker gets SIGTERM when the gateway dies (process.h), and its
 * process group is killed when it exits, so nothing it started keeps the port. A start refuses a
 * port that something already listens on (never adopting it: a stranger cannot prove it is ours),
 * and the first 200 from the health URL counts as READY only when the port's listener is in the
 * worker's process group (port_owner.h), so an orphan of an earlier gateway is not taken for it.
 */
#define _POSIX_C_SOURCE 200809L

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tlab/plugin.h>

#include "common/port_owner.h"
#include "common/worker_cmd.h"

typedef struct supervisor {
    const tlab_api *api;
    tlab_plugin_ctx *ctx;
    tlab__worker_options opt;
    json_t *profile;   /* the model profile's knobs */
    json_t *overrides; /* knobs from restart_worker, on top of the profile */
    long max_num_seqs; /* of the worker started last (0: its command line did not set it) */
    tlab_worker_state state;
    long pid;
    int restart_pending; /* restart_worker: drain, stop, then start with overrides */
    uint64_t state_since_us, last_activity_us, ready_at_us, backoff_until_us;
    uint64_t backoff_us;
    int dispatched_since_ready;
    int sleep_supported;   /* cleared when the worker answers 404 to /sleep */
    int sleep_in_progress; /* POST /sleep sent: hold dispatch (vLLM aborts in-flight work on sleep) */
    int waking;            /* state starting because of POST /wake_up, not a spawn */
    int warned_unverified; /* the port owner could not be checked: said once, not on every start */
    uint64_t wake_started_us;
    tlab_http_call *sleep_call;
    tlab_timer *health_timer, *startup_timer, *stop_timer, *tick_timer, *backoff_timer;
    tlab_http_call *health_call;
    tlab_metric *starts, *stops, *crashes, *cold_start, *ready_to_dispatch, *failures, *sleeps, *wakes, *wake_seconds;
} supervisor;

static const double ready_buckets[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25};
static const double cold_start_buckets[] = {0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300};
static const double wake_buckets[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30};

static void start_worker(supervisor *s, const char *why);

static void set_state(supervisor *s, tlab_worker_state st, const char *reason) {
    if (s->state == st)
        return;
    s->api->log(s->ctx, TLAB_LOG_INFO, "worker %s -> %s (%s)", tlab_worker_state_name(s->state), tlab_worker_state_name(st), reason);
    s->state = st;
    s->state_since_us = s->api->now_us();
}

static void stop_timers(supervisor *s) {
    s->api->timer_stop(s->health_timer);
    s->api->timer_stop(s->startup_timer);
    if (s->health_call) {
        s->api->http_cancel(s->health_call);
        s->health_call = NULL;
    }
    if (s->sleep_call) {
        s->api->http_cancel(s->sleep_call);
        s->sleep_call = NULL;
    }
    s->sleep_in_progress = 0;
    s->waking = 0;
}

static int demand(const supervisor *s) {
    return s->api->waiting() > 0;
}

/* The failed start's requests get the worker's own words, so an operator sees "OOM" at once.
 * with_log 0: no worker ran this time, so its log holds an earlier run's lines; leave them out. */
static void fail_start_log(supervisor *s, const char *what, int with_log) {
    char tail[1600], msg[2048];
    tlab__worker_log_tail(s->opt.log_file, tail, sizeof tail, 12);
    stop_timers(s);
    if (s->pid > 0)
        s->api->process_signal(s->pid, SIGKILL);
    if (with_log)
        snprintf(msg, sizeof msg, "the worker failed to start: %s. Last lines of %s:\n%s", what, s->opt.log_file, tail);
    else
        snprintf(msg, sizeof msg, "the worker failed to start: %s", what);
    s->api->log(s->ctx, TLAB_LOG_ERROR, "%s", msg);
    s->api->metric_add(s->failures, NULL, 1);
    set_state(s, TLAB_WORKER_FAILED, what);
    size_t n = s->api->fail_waiting(503, "worker_start_failed", msg, (int)(s->backoff_us / 1000000) + 1);
    s->api->log(s->ctx, TLAB_LOG_WARN, "answered %zu waiting request(s) with 503; next start in %.1f s", n,
                (double)s->backoff_us / 1e6);
    s->backoff_until_us = s->api->now_us() + s->backoff_us;
    s->api->timer_start(s->backoff_timer, s->backoff_us, 0);
    s->backoff_us = s->backoff_us * 2 > s->opt.backoff_max_us ? s->opt.backoff_max_us : s->backoff_us * 2;
}

static void fail_start(supervisor *s, const char *what) {
    fail_start_log(s, what, 1);
}

/* A worker's process group never outlives its leader: a member left behind (vLLM's engine core
 * after its API server crashed) would hold the GPU and maybe the port, with nobody to stop it.
 * The group's id is not reused while a member lives, so the signal cannot reach a stranger.
 * 1 when members were still there. */
static int kill_leftovers(supervisor *s, long pid) {
    return s->api->process_signal(pid, SIGKILL) == TLAB_OK;
}

static void on_exit_cb(void *arg, long pid, int status) {
    supervisor *s = arg;
    int leftovers = kill_leftovers(s, pid);
    if (pid != s->pid)
        return;
    s->pid = 0;
    char how[96];
    if (WIFEXITED(status))
        snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof how, "killed by signal %d", WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    switch (s->state) {
    case TLAB_WORKER_STARTING: {
        char what[160];
        snprintf(what, sizeof what, "it exited during start-up (%s)", how);
        fail_start(s, what);
        return;
    }
    case TLAB_WORKER_STOPPING:
        s->api->timer_stop(s->stop_timer);
        s->api->metric_add(s->stops, NULL, 1);
        set_state(s, TLAB_WORKER_IDLE, how);
        if (leftovers && (s->restart_pending || demand(s))) {
            /* They die at once, but only once the kernel has run them: start after that, so the
             * port check does not find them still listening. */
            s->backoff_until_us = s->api->now_us() + 100000;
            s->api->timer_start(s->backoff_timer, 100000, 0);
        } else if (s->restart_pending || demand(s)) {
            s->restart_pending = 0;
            start_worker(s, "requests are waiting");
        }
        return;
    case TLAB_WORKER_RUNNING:
    case TLAB_WORKER_SLEEPING: {
        char tail[1200];
        stop_timers(s);
        tlab__worker_log_tail(s->opt.log_file, tail, sizeof tail, 8);
        s->api->metric_add(s->crashes, NULL, 1);
        s->api->log(s->ctx, TLAB_LOG_ERROR, "worker crashed (%s); last lines of %s:\n%s", how, s->opt.log_file, tail);
        set_state(s, TLAB_WORKER_IDLE, "crashed");
        /* Restart after a backoff if anything is waiting or was in flight (it comes back queued). */
        s->backoff_until_us = s->api->now_us() + s->backoff_us;
        s->api->timer_start(s->backoff_timer, s->backoff_us, 0);
        return;
    }
    default:
        return;
    }
}

/* Did the worker we started answer the health check, or a stranger on its port (an orphan of an
 * earlier gateway, say)? Reads /proc once per start, never per request. 0 when it failed the
 * start. Where /proc cannot tell (no /proc, another network namespace) the answer is trusted,
 * with one warning. */
static int verify_port_owner(supervisor *s) {
    if (!s->opt.verify_port_owner)
        return 1;
    char why[512], what[700];
    tlab__port_owner own = tlab__port_owned_by_group(s->opt.host, s->opt.port, s->pid, why, sizeof why);
    if (own == TLAB_PORT_FOREIGN) {
        snprintf(what, sizeof what, "its health check was answered by another server: %s", why);
        fail_start(s, what);
        return 0;
    }
    if (own == TLAB_PORT_UNKNOWN && !s->warned_unverified) {
        s->warned_unverified = 1;
        s->api->log(s->ctx, TLAB_LOG_WARN,
                    "cannot verify that the worker itself answers on port %d (%s); trusting its health check", s->opt.port, why);
    }
    return 1;
}

static void on_health(void *arg, int status, const char *body, size_t len) {
    supervisor *s = arg;
    (void)body, (void)len;
    s->health_call = NULL;
    if (s->state != TLAB_WORKER_STARTING)
        return;
    if (status != 200) {
        s->api->timer_start(s->health_timer, s->opt.health_interval_us, 0);
        return;
    }
    if (!verify_port_owner(s))
        return;
    uint64_t now = s->api->now_us();
    s->api->timer_stop(s->startup_timer);
    s->api->metric_observe(s->cold_start, NULL, (double)(now - s->state_since_us) / 1e6);
    s->api->log(s->ctx, TLAB_LOG_INFO, "worker READY after %.2f s (pid %ld)", (double)(now - s->state_since_us) / 1e6, s->pid);
    s->ready_at_us = now;
    s->dispatched_since_ready = 0;
    s->backoff_us = s->opt.backoff_min_us;
    s->last_activity_us = now;
    set_state(s, TLAB_WORKER_RUNNING, "health answered 200");
    s->api->dispatch_wake();
}

static void on_health_timer(void *arg) {
    supervisor *s = arg;
    if (s->state != TLAB_WORKER_STARTING || s->health_call)
        return;
    s->health_call = s->api->http_request(s->ctx, "GET", s->opt.health_url, NULL, s->opt.health_timeout_ms, on_health, s);
    if (!s->health_call)
        s->api->timer_start(s->health_timer, s->opt.health_interval_us, 0);
}

static void on_startup_timeout(void *arg) {
    supervisor *s = arg;
    char what[128];
    snprintf(what, sizeof what, "%s within startup_timeout_s=%llu", s->waking ? "did not wake" : "not READY",
             (unsigned long long)(s->opt.startup_timeout_us / 1000000));
    fail_start(s, what);
}

static void start_worker(supervisor *s, const char *why) {
    if (s->state != TLAB_WORKER_IDLE && s->state != TLAB_WORKER_FAILED)
        return;
    /* Never share the port: a server already there would answer in the worker's place. Adopting
     * it is not offered, since nothing it could say proves it is ours. A bind test and a /proc
     * read, once per start. */
    char busy[400];
    if (tlab__port_check_free(s->opt.host, s->opt.port, busy, sizeof busy) != 0) {
        char what[600];
        snprintf(what, sizeof what, "%s: stop it, or give the worker another port (upstream.url)", busy);
        s->state = TLAB_WORKER_STARTING;
        fail_start_log(s, what, 0);
        return;
    }
    s->restart_pending = 0; /* this start takes the overrides as they are now */
    json_t *knobs = tlab__worker_merge_knobs(s->profile, s->overrides);
    char err[512];
    char **argv = tlab__worker_build_argv(&s->opt, knobs, err, sizeof err);
    s->max_num_seqs = tlab__worker_max_num_seqs(&s->opt, knobs);
    json_decref(knobs);
    if (!argv) {
        s->state = TLAB_WORKER_STARTING;
        fail_start(s, err);
        return;
    }
    char cmdline[1024];
    tlab__worker_join_argv(argv, cmdline, sizeof cmdline);
    s->api->log(s->ctx, TLAB_LOG_INFO, "starting worker (%s): %s", why, cmdline);
    set_state(s, TLAB_WORKER_STARTING, why);
    /* vLLM serves /sleep and /wake_up only in its dev mode. */
    static const char *const sleep_env[] = {"VLLM_SERVER_DEV_MODE=1", NULL};
    const char *const *env = tlab__worker_sleep_enabled(&s->opt) && s->opt.sleep_mode_flag ? sleep_env : NULL;
    s->pid = s->api->process_spawn(s->ctx, (const char *const *)argv, env, s->opt.log_file, s->opt.log_max_bytes, on_exit_cb, s,
                                   err, sizeof err);
    tlab__worker_free_argv(argv);
    s->api->metric_add(s->starts, NULL, 1);
    if (s->pid < 0) {
        s->pid = 0;
        fail_start(s, err);
        return;
    }
    s->api->timer_start(s->startup_timer, s->opt.startup_timeout_us, 0);
    s->api->timer_start(s->health_timer, s->opt.health_interval_us, 0);
}

static void stop_worker(supervisor *s, const char *why) {
    if (s->state != TLAB_WORKER_RUNNING && s->state != TLAB_WORKER_STARTING && s->state != TLAB_WORKER_SLEEPING)
        return;
    stop_timers(s);
    set_state(s, TLAB_WORKER_STOPPING, why);
    if (s->pid <= 0 || s->api->process_signal(s->pid, SIGTERM) != TLAB_OK) {
        set_state(s, TLAB_WORKER_IDLE, "no process to stop");
        return;
    }
    s->api->timer_start(s->stop_timer, s->opt.stop_grace_us, 0);
}

static void on_stop_grace(void *arg) {
    supervisor *s = arg;
    if (s->state == TLAB_WORKER_STOPPING && s->pid > 0) {
        s->api->log(s->ctx, TLAB_LOG_WARN, "worker did not exit within stop_grace_s; SIGKILL");
        s->api->process_signal(s->pid, SIGKILL);
    }
}

static void on_backoff(void *arg) {
    supervisor *s = arg;
    if (s->state == TLAB_WORKER_FAILED)
        set_state(s, TLAB_WORKER_IDLE, "backoff over");
    if (s->state == TLAB_WORKER_IDLE && (demand(s) || s->opt.always_on || s->restart_pending)) {
        start_worker(s, s->opt.always_on ? "always_on" : "requests are waiting");
    }
}

static void on_sleep_done(void *arg, int status, const char *body, size_t len) {
    supervisor *s = arg;
    (void)len;
    s->sleep_call = NULL;
    s->sleep_in_progress = 0;
    if (s->state != TLAB_WORKER_RUNNING)
        return;
    if (status == 200) {
        s->api->metric_add(s->sleeps, NULL, 1);
        char why[64];
        snprintf(why, sizeof why, "idle %llu s: sleep level %d", (unsigned long long)(s->opt.sleep_after_us / 1000000),
                 s->opt.sleep_level);
        set_state(s, TLAB_WORKER_SLEEPING, why);
        return;
    }
    if (status == 404) {
        s->sleep_supported = 0;
        s->api->log(s->ctx, TLAB_LOG_WARN, "the worker has no sleep mode (POST /sleep answered 404); the idle ladder falls back to stop");
    } else {
        s->api->log(s->ctx, TLAB_LOG_WARN, "POST /sleep failed (status %d: %.200s); staying awake", status, body);
    }
    s->api->dispatch_wake(); /* dispatch was held during the attempt */
}

static void go_to_sleep(supervisor *s) {
    char url[512];
    snprintf(url, sizeof url, "http://%s:%d/sleep?level=%d", s->opt.host, s->opt.port, s->opt.sleep_level);
    s->sleep_in_progress = 1;
    s->sleep_call = s->api->http_request(s->ctx, "POST", url, "", 120000, on_sleep_done, s);
    if (!s->sleep_call)
        s->sleep_in_progress = 0;
}

static void on_wake_done(void *arg, int status, const char *body, size_t len) {
    supervisor *s = arg;
    (void)len;
    s->sleep_call = NULL;
    if (s->state != TLAB_WORKER_STARTING || !s->waking)
        return;
    s->waking = 0;
    s->api->timer_stop(s->startup_timer);
    if (status != 200) {
        s->api->log(s->ctx, TLAB_LOG_WARN, "POST /wake_up failed (status %d: %.200s); restarting the worker", status, body);
        set_state(s, TLAB_WORKER_RUNNING, "wake failed");
        s->restart_pending = 1;
        stop_worker(s, "wake failed: restart");
        return;
    }
    uint64_t now = s->api->now_us();
    double took = (double)(now - s->wake_started_us) / 1e6;
    s->api->metric_add(s->wakes, NULL, 1);
    s->api->metric_observe(s->wake_seconds, NULL, took);
    s->api->log(s->ctx, TLAB_LOG_INFO, "worker woke in %.3f s", took);
    s->ready_at_us = s->last_activity_us = now;
    s->dispatched_since_ready = 0;
    set_state(s, TLAB_WORKER_RUNNING, "woken");
    s->api->dispatch_wake();
}

static void wake_worker(supervisor *s) {
    char url[512];
    snprintf(url, sizeof url, "http://%s:%d/wake_up", s->opt.host, s->opt.port);
    set_state(s, TLAB_WORKER_STARTING, "a request is waiting: waking");
    s->waking = 1;
    s->wake_started_us = s->api->now_us();
    s->api->timer_start(s->startup_timer, s->opt.startup_timeout_us, 0);
    s->sleep_call = s->api->http_request(s->ctx, "POST", url, "", 120000, on_wake_done, s);
    if (!s->sleep_call)
        on_wake_done(s, 0, "cannot send", 0);
}

static void maybe_restart_drained(supervisor *s) {
    if (s->restart_pending && s->state == TLAB_WORKER_RUNNING && s->api->in_flight() == 0)
        stop_worker(s, "restart_worker: drained, restarting with new knobs");
}

static void on_tick(void *arg) {
    supervisor *s = arg;
    uint64_t now = s->api->now_us();
    maybe_restart_drained(s);
    int busy = s->api->waiting() > 0 || s->api->in_flight() > 0;
    if (s->state == TLAB_WORKER_RUNNING && !s->opt.always_on && !s->restart_pending && !s->sleep_in_progress) {
        if (busy)
            s->last_activity_us = now;
        else if (now - s->last_activity_us >= s->opt.idle_timeout_us)
            stop_worker(s, "idle");
        else if (s->sleep_supported && tlab__worker_sleep_enabled(&s->opt) && now - s->last_activity_us >= s->opt.sleep_after_us)
            go_to_sleep(s);
    } else if (s->state == TLAB_WORKER_SLEEPING && !busy && now - s->last_activity_us >= s->opt.idle_timeout_us) {
        stop_worker(s, "idle while asleep");
    }
}

static int gate(void *self, tlab_request *r) {
    supervisor *s = self;
    (void)r;
    s->last_activity_us = s->api->now_us();
    if (s->state == TLAB_WORKER_RUNNING && !s->restart_pending && !s->sleep_in_progress)
        return TLAB_OK;
    if (s->state == TLAB_WORKER_IDLE && s->api->now_us() >= s->backoff_until_us)
        start_worker(s, "a request is waiting");
    else if (s->state == TLAB_WORKER_SLEEPING)
        wake_worker(s);
    return TLAB_AGAIN;
}

static void on_event(void *self, tlab_request *r, tlab_event ev) {
    supervisor *s = self;
    (void)r;
    if (ev == TLAB_EV_DISPATCHED && !s->dispatched_since_ready && s->ready_at_us) {
        s->dispatched_since_ready = 1;
        double delay = (double)(s->api->now_us() - s->ready_at_us) / 1e6;
        s->api->metric_observe(s->ready_to_dispatch, NULL, delay);
        s->api->log(s->ctx, TLAB_LOG_INFO, "first request dispatched %.3f ms after READY", delay * 1000);
    } else if (ev == TLAB_EV_DONE) {
        maybe_restart_drained(s);
    }
}

static long role_max_num_seqs(void *self) {
    return ((supervisor *)self)->max_num_seqs;
}

static tlab_worker_state role_state(void *self) {
    return ((supervisor *)self)->state;
}

static void role_demand(void *self) {
    supervisor *s = self;
    if (s->state == TLAB_WORKER_IDLE)
        start_worker(s, "demand");
    else if (s->state == TLAB_WORKER_SLEEPING)
        wake_worker(s);
}

static int role_restart(void *self, const json_t *overrides) {
    supervisor *s = self;
    char err[256];
    if (overrides && tlab__worker_check_knobs(overrides, err, sizeof err) != 0) {
        s->api->log(s->ctx, TLAB_LOG_WARN, "restart_worker refused: %s", err);
        return TLAB_ERROR;
    }
    json_t *merged = tlab__worker_merge_knobs(s->overrides, overrides);
    json_decref(s->overrides);
    s->overrides = merged;
    char *text = json_dumps(overrides ? overrides : json_object(), JSON_COMPACT);
    s->api->log(s->ctx, TLAB_LOG_INFO, "restart_worker %s: draining %zu in flight", text ? text : "", s->api->in_flight());
    free(text);
    if (s->state == TLAB_WORKER_RUNNING) {
        s->restart_pending = 1;
        maybe_restart_drained(s);
    } else if (s->state == TLAB_WORKER_STARTING || s->state == TLAB_WORKER_SLEEPING) {
        /* A sleeping worker would wake with its old knobs: replace it. */
        s->restart_pending = 1;
        stop_worker(s, s->state == TLAB_WORKER_SLEEPING ? "restart_worker while asleep" : "restart_worker during start-up");
    }
    /* idle, failed or stopping: the next start uses the new knobs anyway */
    return TLAB_OK;
}

static int command(void *self, const char *verb, const json_t *args, json_t **result) {
    if (strcmp(verb, "restart_worker") == 0)
        return role_restart(self, args);
    if (strcmp(verb, "worker_state") == 0) {
        supervisor *s = self;
        if (result)
            *result = json_pack("{s:s, s:I}", "state", tlab_worker_state_name(s->state), "pid", (json_int_t)s->pid);
        return TLAB_OK;
    }
    return TLAB_DECLINED;
}

static json_t *describe(const supervisor *s) {
    json_t *knobs = tlab__worker_merge_knobs(s->profile, s->overrides);
    return json_pack("{s:s, s:I, s:f, s:o, s:s, s:b}", "state", tlab_worker_state_name(s->state), "pid", (json_int_t)s->pid, "state_for_s",
                     (double)(s->api->now_us() - s->state_since_us) / 1e6, "knobs", knobs, "engine",
                     s->opt.engine == TLAB_WORKER_ENGINE_VLLM ? "vllm" : "sim", "restart_pending", s->restart_pending);
}

static void reply_json(const supervisor *s, tlab_exchange *ex, int status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    s->api->exchange_reply(ex, text ? status : 500, "application/json", text ? text : "{}", text ? strlen(text) : 2);
    free(text);
    json_decref(body);
}

/* GET /admin/worker: state, pid and the knobs the next start uses. */
static void on_admin_state(void *arg, tlab_exchange *ex) {
    supervisor *s = arg;
    reply_json(s, ex, 200, describe(s));
}

/* POST /admin/worker/restart {knobs}: drain, stop, start with the knobs (the tuner's and the
 * operator's way in; Lua policies use gw.restart_worker). */
static void on_admin_restart(void *arg, tlab_exchange *ex) {
    supervisor *s = arg;
    size_t len;
    const char *body = s->api->exchange_body(ex, &len);
    json_error_t jerr;
    json_t *knobs = len ? json_loadb(body, len, 0, &jerr) : json_object();
    char err[256];
    if (!knobs || !json_is_object(knobs) || tlab__worker_check_knobs(knobs, err, sizeof err) != 0) {
        if (!knobs || !json_is_object(knobs))
            snprintf(err, sizeof err, "the body must be a JSON object of model-profile knobs");
        reply_json(s, ex, 400, json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message", err, "type", "invalid_request_error", "param", "code"));
        json_decref(knobs);
        return;
    }
    role_restart(s, knobs);
    json_decref(knobs);
    reply_json(s, ex, 202, describe(s));
}

/* Gateway exit: the worker must not outlive it. The loop has stopped, so waiting here is fine. */
static void sup_shutdown(void *self) {
    supervisor *s = self;
    if (!s)
        return;
    if (s->pid > 0) {
        s->api->log(s->ctx, TLAB_LOG_INFO, "stopping worker pid %ld", s->pid);
        s->api->process_signal(s->pid, SIGTERM);
        for (uint64_t waited = 0; waited < s->opt.stop_grace_us && kill((pid_t)s->pid, 0) == 0; waited += 20000) {
            if (waitpid((pid_t)s->pid, NULL, WNOHANG) == (pid_t)s->pid)
                break;
            usleep(20000);
        }
        s->api->process_signal(s->pid, SIGKILL);
        waitpid((pid_t)s->pid, NULL, WNOHANG);
    }
    if (s->health_call)
        s->api->http_cancel(s->health_call);
    if (s->sleep_call)
        s->api->http_cancel(s->sleep_call);
    tlab_timer *timers[] = {s->health_timer, s->startup_timer, s->stop_timer, s->tick_timer, s->backoff_timer};
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++)
        if (timers[i])
            s->api->timer_free(timers[i]);
    json_decref(s->profile);
    json_decref(s->overrides);
    tlab__worker_options_free(&s->opt);
    free(s);
}

static int sup_init(tlab_plugin_ctx *ctx, const tlab_api *api, const json_t *config, void **self, char *err, size_t errlen) {
    supervisor *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return TLAB_ERROR;
    }
    s->api = api;
    s->ctx = ctx;
    if (tlab__worker_options_parse(&s->opt, config, api->upstream_url(), err, errlen) != 0 ||
        !(s->profile = tlab__worker_load_profile(api->yaml_load, &s->opt, err, errlen))) {
        sup_shutdown(s);
        return TLAB_ERROR;
    }
    char why[256];
    tlab__worker_resolve_engine(&s->opt, why, sizeof why);
    if (tlab__worker_sleep_enabled(&s->opt))
        api->log(ctx, TLAB_LOG_INFO, "idle ladder: sleep (level %d) after %llu s idle, stop after %llu s", s->opt.sleep_level,
                 (unsigned long long)(s->opt.sleep_after_us / 1000000), (unsigned long long)(s->opt.idle_timeout_us / 1000000));
    api->log(ctx, TLAB_LOG_INFO, "engine %s (%s); worker at %s; idle_timeout %llu s%s", s->opt.engine == TLAB_WORKER_ENGINE_VLLM ? "vllm" : "sim",
             why, s->opt.health_url, (unsigned long long)(s->opt.idle_timeout_us / 1000000), s->opt.always_on ? ", always on" : "");
    s->overrides = json_object();
    s->backoff_us = s->opt.backoff_min_us;
    s->sleep_supported = 1;
    s->health_timer = api->timer_new(ctx, on_health_timer, s);
    s->startup_timer = api->timer_new(ctx, on_startup_timeout, s);
    s->stop_timer = api->timer_new(ctx, on_stop_grace, s);
    s->tick_timer = api->timer_new(ctx, on_tick, s);
    s->backoff_timer = api->timer_new(ctx, on_backoff, s);
    s->starts = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_worker_starts_total", "Worker process starts by the supervisor", NULL, 0);
    s->stops = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_worker_stops_total", "Worker process stops by the supervisor", NULL, 0);
    s->crashes = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_worker_crashes_total", "Unexpected worker exits", NULL, 0);
    s->failures = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_worker_start_failures_total",
                                       "Worker starts that did not reach READY", NULL, 0);
    s->cold_start = api->metric_register(ctx, TLAB_METRIC_HISTOGRAM, "gateway_worker_cold_start_seconds", "Time from worker start to READY",
                                         cold_start_buckets, sizeof cold_start_buckets / sizeof cold_start_buckets[0]);
    s->ready_to_dispatch = api->metric_register(ctx, TLAB_METRIC_HISTOGRAM, "gateway_worker_ready_to_dispatch_seconds",
                                                "Gateway-added cold-start delay: READY seen to first request dispatched",
                                                ready_buckets, sizeof ready_buckets / sizeof ready_buckets[0]);
    s->sleeps = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_worker_sleeps_total", "Worker put to sleep (vLLM sleep mode)", NULL, 0);
    s->wakes = api->metric_register(ctx, TLAB_METRIC_COUNTER, "gateway_worker_wakes_total", "Worker woken from sleep", NULL, 0);
    s->wake_seconds = api->metric_register(ctx, TLAB_METRIC_HISTOGRAM, "gateway_worker_wake_seconds", "Time for POST /wake_up to finish",
                                           wake_buckets, sizeof wake_buckets / sizeof wake_buckets[0]);
    if (!s->health_timer || !s->startup_timer || !s->stop_timer || !s->tick_timer || !s->backoff_timer || !s->starts ||
        !s->cold_start || !s->ready_to_dispatch) {
        snprintf(err, errlen, "cannot create timers or metrics");
        sup_shutdown(s);
        return TLAB_ERROR;
    }
    if (api->route_add(ctx, "GET", "/admin/worker", on_admin_state, s) != TLAB_OK ||
        api->route_add(ctx, "POST", "/admin/worker/restart", on_admin_restart, s) != TLAB_OK) {
        snprintf(err, errlen, "cannot register /admin/worker routes (taken?)");
        sup_shutdown(s);
        return TLAB_ERROR;
    }
    api->metric_add(s->starts, NULL, 0);
    api->metric_add(s->failures, NULL, 0);
    api->metric_add(s->sleeps, NULL, 0);
    api->metric_add(s->wakes, NULL, 0);
    api->metric_add(s->wake_seconds, NULL, 0);
    api->timer_start(s->tick_timer, 1000000 < s->opt.idle_timeout_us / 4 ? 1000000 : s->opt.idle_timeout_us / 4 + 1, 1);
    s->state = TLAB_WORKER_IDLE;
    s->state_since_us = s->last_activity_us = api->now_us();
    if (s->opt.always_on)
        start_worker(s, "always_on");
    *self = s;
    return TLAB_OK;
}

static const tlab_worker_role worker_role = {
    .size = sizeof(tlab_worker_role),
    .state = role_state,
    .demand = role_demand,
    .restart = role_restart,
    .max_num_seqs = role_max_num_seqs,
};

static const tlab_plugin supervisor_plugin = {
    TLAB_PLUGIN_HEADER,
    .name = "supervisor",
    .version = "1.0.0",
    .init = sup_init,
    .shutdown = sup_shutdown,
    .on_event = on_event,
    .events = TLAB_EVENT_BIT(TLAB_EV_DISPATCHED) | TLAB_EVENT_BIT(TLAB_EV_DONE),
    .dispatch_gate = gate,
    .worker = &worker_role,
    .command = command,
};

TLAB_PLUGIN_DECLARE(supervisor_plugin)
