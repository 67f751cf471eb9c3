/*
 * pool_supervisor.c - the supervised workers' state machines (pool_supervisor.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "supervise/pool_supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "base/clock.h"
#include "base/metrics_registry.h"
#include "common/log.h"
#include "common/port_owner.h"
#include "common/process.h"
#include "common/worker_cmd.h"
#include "common/yaml_json.h"
#include "dispatch/breaker.h"
#include "dispatch/dispatch.h"
#include "dispatch/gate.h"
#include "dispatch/pool.h"

#define TICK_US 100000

typedef struct sup {
    tlab__pool_worker *w;
    tlab__worker_options opt;
    json_t *knobs;
    char **env; /* the entry's env (not owned) and VLLM_SERVER_DEV_MODE=1 for the sleep rung; the array is owned */
    int port;
    long pid;
    uint64_t since_us, idle_since_us, backoff_until_us, backoff_us, last_poll_us, stop_deadline_us;
    struct tlab__xfer *health;
    int health_status;
    struct tlab__xfer *call; /* POST /sleep or /wake_up under way */
    int call_status, call_is_wake;
    int sleep_supported;     /* cleared when the worker answers 404 to /sleep: the ladder falls back to stop */
    int waking;              /* starting because of POST /wake_up, not a spawn */
    const char *stop_reason; /* why it is stopping: "idle", "stalled" */
} sup;

static struct {
    sup *s;
    size_t n;
    struct event *timer;
    tlab__upstream *up;
    void (*wake)(void);
    long min_ready;
    tlab_metric *m_state, *m_starts, *m_crashes, *m_stops, *m_failures, *m_sleeps, *m_wakes;
} ps;

static void on_health_data_ignored(void *arg, const char *data, size_t len) {
    (void)arg, (void)data, (void)len;
}

static void set_state(sup *s, tlab_worker_state st, const char *why) {
    if (s->w->sup_state == (int)st)
        return;
    tlab__log(st == TLAB_WORKER_FAILED ? TLAB_LOG_WARN : TLAB_LOG_INFO, NULL, "worker %s %s -> %s (%s)", s->w->name,
              tlab_worker_state_name((tlab_worker_state)s->w->sup_state), tlab_worker_state_name(st), why);
    s->w->sup_state = (int)st;
    s->since_us = tlab__now_us();
    tlab__metric_set(ps.m_state, s->w->labels, (double)st);
}

static void cancel_health(sup *s) {
    if (s->health)
        tlab__xfer_abort(s->health);
    s->health = NULL;
    if (s->call)
        tlab__xfer_abort(s->call);
    s->call = NULL;
    s->waking = 0;
}

/* The idle ladder's first rung (sleep) is on: configured before idle_timeout_s, and the worker
 * did not say it has no sleep mode. */
static int ladder(const sup *s) {
    return s->sleep_supported && tlab__worker_sleep_enabled(&s->opt);
}

static void fail_start(sup *s, const char *what) {
    char tail[1200];
    cancel_health(s);
    if (s->pid > 0)
        tlab__process_signal(s->pid, SIGKILL);
    tlab__worker_log_tail(s->opt.log_file, tail, sizeof tail, 8);
    tlab__log(TLAB_LOG_ERROR, NULL, "worker %s failed to start: %s; next try in %.1f s. Last lines of %s:\n%s", s->w->name, what,
              (double)s->backoff_us / 1e6, s->opt.log_file, tail);
    tlab__metric_add(ps.m_failures, s->w->labels, 1);
    s->backoff_until_us = tlab__now_us() + s->backoff_us;
    s->backoff_us = s->backoff_us * 2 > s->opt.backoff_max_us ? s->opt.backoff_max_us : s->backoff_us * 2;
    set_state(s, TLAB_WORKER_FAILED, what);
}

static void on_exit_cb(void *arg, long pid, int status) {
    sup *s = arg;
    tlab__process_signal(pid, SIGKILL); /* what it started itself dies with it (its process group) */
    if (pid != s->pid)
        return;
    s->pid = 0;
    s->w->sup_pid = 0;
    cancel_health(s);
    char how[64];
    if (WIFSIGNALED(status))
        snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(how, sizeof how, "exit status %d", WEXITSTATUS(status));
    int st = s->w->sup_state;
    if (st == TLAB_WORKER_STARTING) {
        fail_start(s, how);
        return;
    }
    if (st == TLAB_WORKER_STOPPING) {
        tlab__metric_add(ps.m_stops, s->w->labels, 1);
        set_state(s, TLAB_WORKER_IDLE, s->stop_reason ? s->stop_reason : "stopped");
        return;
    }
    char tail[1200];
    tlab__worker_log_tail(s->opt.log_file, tail, sizeof tail, 8);
    tlab__log(TLAB_LOG_ERROR, NULL, "worker %s crashed (%s); its requests go to other workers. Last lines of %s:\n%s",
              s->w->name, how, s->opt.log_file, tail);
    tlab__metric_add(ps.m_crashes, s->w->labels, 1);
    set_state(s, TLAB_WORKER_IDLE, "crashed");
}

static void start(sup *s, const char *why) {
    char err[512], line[1024];
    /* Never adopt what listens on its port: a stranger cannot prove it is this worker. */
    if (tlab__port_check_free("127.0.0.1", s->port, err, sizeof err) != 0) {
        fail_start(s, err);
        return;
    }
    char **argv = tlab__worker_build_argv(&s->opt, s->knobs, err, sizeof err);
    if (!argv) {
        fail_start(s, err);
        return;
    }
    /* Its log's folder (experiments/ by default) may not exist yet in a fresh checkout. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s", s->opt.log_file);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            tlab__log(TLAB_LOG_WARN, NULL, "worker %s: cannot create %s: %s", s->w->name, dir, strerror(errno));
    }
    tlab__worker_join_argv(argv, line, sizeof line);
    s->pid = tlab__process_spawn((const char *const *)argv, (const char *const *)s->env, s->opt.log_file, s->opt.log_max_bytes,
                                 on_exit_cb, s, err, sizeof err);
    tlab__worker_free_argv(argv);
    if (s->pid <= 0) {
        s->pid = 0;
        fail_start(s, err);
        return;
    }
    s->w->sup_pid = s->pid;
    s->w->sup_max_num_seqs = tlab__worker_max_num_seqs(&s->opt, s->knobs);
    tlab__metric_add(ps.m_starts, s->w->labels, 1);
    tlab__log(TLAB_LOG_INFO, NULL, "worker %s starting (%s): pid %ld: %s", s->w->name, why, s->pid, line);
    s->last_poll_us = 0;
    set_state(s, TLAB_WORKER_STARTING, why);
}

static void stop(sup *s, const char *why, int sig) {
    cancel_health(s);
    s->stop_reason = why;
    s->stop_deadline_us = tlab__now_us() + s->opt.stop_grace_us;
    set_state(s, TLAB_WORKER_STOPPING, why);
    if (s->pid > 0)
        tlab__process_signal(s->pid, sig);
}

/* s takes requests from now on: "ready in 2.1 s", "woken in 0.4 s"; the dispatcher runs. */
static void now_running(sup *s, const char *how) {
    char why[64];
    snprintf(why, sizeof why, "%s in %.2f s", how, (double)(tlab__now_us() - s->since_us) / 1e6);
    s->idle_since_us = 0;
    set_state(s, TLAB_WORKER_RUNNING, why);
    if (ps.wake)
        ps.wake();
}

static void on_call_headers(void *arg, int status, const char *ctype) {
    (void)ctype;
    ((sup *)arg)->call_status = status;
}

static void on_call_done(void *arg, tlab__xfer_result result, const char *detail) {
    sup *s = arg;
    s->call = NULL;
    int ok = result == TLAB_XFER_OK && s->call_status == 200;
    const char *what = result == TLAB_XFER_OK ? "" : detail ? detail : "failed";
    if (!s->call_is_wake) {
        if (s->w->sup_state != TLAB_WORKER_SLEEPING)
            return;
        if (ok) {
            tlab__metric_add(ps.m_sleeps, s->w->labels, 1);
            return;
        }
        if (s->call_status == 404) {
            s->sleep_supported = 0;
            tlab__log(TLAB_LOG_WARN, NULL, "worker %s has no sleep mode (POST /sleep answered 404): its idle ladder falls back to stop",
                      s->w->name);
        } else {
            tlab__log(TLAB_LOG_WARN, NULL, "worker %s: POST /sleep failed (status %d %s); staying awake", s->w->name, s->call_status,
                      what);
        }
        s->idle_since_us = tlab__now_us();
        set_state(s, TLAB_WORKER_RUNNING, "sleep failed");
        return;
    }
    if (s->w->sup_state != TLAB_WORKER_STARTING || !s->waking)
        return;
    s->waking = 0;
    if (!ok) {
        tlab__log(TLAB_LOG_WARN, NULL, "worker %s: POST /wake_up failed (status %d %s); restarting it", s->w->name, s->call_status,
                  what);
        stop(s, "wake failed: restarted", SIGKILL);
        return;
    }
    tlab__metric_add(ps.m_wakes, s->w->labels, 1);
    now_running(s, "woken");
}

static const tlab__xfer_callbacks call_cb = {on_call_headers, on_health_data_ignored, on_call_done};

/* POST <root>/sleep?level=N or /wake_up: vLLM's sleep mode (in its dev mode), tlab-sim's too. */
static void post(sup *s, const char *path, int is_wake) {
    char url[600];
    snprintf(url, sizeof url, "%s%s", s->w->root_url, path);
    s->call_status = 0;
    s->call_is_wake = is_wake;
    s->call = tlab__upstream_start(ps.up, "POST", url, "", 0, NULL, is_wake ? (long)(s->opt.startup_timeout_us / 1000) : 30000,
                                   &call_cb, s);
}

static void go_to_sleep(sup *s) {
    char path[48];
    snprintf(path, sizeof path, "/sleep?level=%d", s->opt.sleep_level);
    /* Out of routing before the call: vLLM aborts what runs when it falls asleep. */
    set_state(s, TLAB_WORKER_SLEEPING, "idle: sleep mode");
    post(s, path, 0);
}

static void wake_up(sup *s, const char *why) {
    s->waking = 1;
    set_state(s, TLAB_WORKER_STARTING, why);
    post(s, "/wake_up", 1);
}

static void on_health_headers(void *arg, int status, const char *ctype) {
    (void)ctype;
    ((sup *)arg)->health_status = status;
}

static void on_health_done(void *arg, tlab__xfer_result result, const char *detail) {
    sup *s = arg;
    (void)detail;
    s->health = NULL;
    if (result != TLAB_XFER_OK || s->health_status != 200 || s->w->sup_state != TLAB_WORKER_STARTING)
        return;
    char msg[512];
    if (s->opt.verify_port_owner &&
        tlab__port_owned_by_group("127.0.0.1", s->port, s->pid, msg, sizeof msg) == TLAB_PORT_FOREIGN) {
        fail_start(s, msg); /* a 200 from a stranger on its port: not this worker */
        return;
    }
    tlab__pool_worker *w = s->w;
    /* A fresh process: what the old one did (failures, a stall) says nothing about it. */
    tlab__breaker_init(&w->breaker, w->breaker.threshold, w->breaker.base_us);
    w->health_ok = 1;
    w->stalled = 0;
    s->backoff_us = s->opt.backoff_min_us;
    now_running(s, "ready");
}

static const tlab__xfer_callbacks health_cb = {on_health_headers, on_health_data_ignored, on_health_done};

static void poll_health(sup *s, uint64_t now) {
    if (s->health || now - s->last_poll_us < s->opt.health_interval_us)
        return;
    s->last_poll_us = now;
    char url[600];
    snprintf(url, sizeof url, "%s%s", s->w->root_url, "/health");
    s->health_status = 0;
    s->health = tlab__upstream_start(ps.up, "GET", url, NULL, 0, NULL, s->opt.health_timeout_ms, &health_cb, s);
}

/* Demand for one more worker: requests wait and no running worker has room under its gate, or
 * admission just refused one because none was started. */
static int want_more(uint64_t now) {
    if (tlab__pool_demand_since(now - 2 * TICK_US))
        return 1;
    if (!tlab__dispatch_waiting())
        return 0;
    for (size_t i = 0; i < tlab__pool_size(); i++) {
        const tlab__pool_worker *w = tlab__pool_worker_at(i);
        if (tlab__pool_worker_routable(w, now) && tlab__gate_worker_open(w))
            return 0;
    }
    return 1;
}

static void tick_one(sup *s, uint64_t now) {
    tlab__pool_worker *w = s->w;
    switch ((tlab_worker_state)w->sup_state) {
    case TLAB_WORKER_STARTING:
        if (now - s->since_us > s->opt.startup_timeout_us) {
            char why[96];
            snprintf(why, sizeof why, "not ready after startup_timeout_s = %.0f s", (double)s->opt.startup_timeout_us / 1e6);
            fail_start(s, why);
        } else if (!s->waking) {
            poll_health(s, now); /* a waking worker answers /health asleep too: its wake call decides */
        }
        break;
    case TLAB_WORKER_RUNNING:
        if (w->stalled) {
            /* SIGKILL: a stopped (SIGSTOP) or wedged process may never act on SIGTERM. */
            tlab__log(TLAB_LOG_WARN, NULL, "worker %s stalled: restarting it", w->name);
            stop(s, "stalled: restarted", SIGKILL);
            break;
        }
        if (w->in_flight)
            s->idle_since_us = 0;
        else if (!s->idle_since_us)
            s->idle_since_us = now;
        break;
    case TLAB_WORKER_STOPPING:
        if (s->pid > 0 && now > s->stop_deadline_us) {
            tlab__process_signal(s->pid, SIGKILL);
            s->stop_deadline_us = now + 1000000;
        }
        break;
    case TLAB_WORKER_FAILED:
        if (now >= s->backoff_until_us)
            set_state(s, TLAB_WORKER_IDLE, "backoff over");
        break;
    default:
        break;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg) {
    (void)fd, (void)what, (void)arg;
    uint64_t now = tlab__now_us();
    size_t up = 0, starting = 0;
    for (size_t i = 0; i < ps.n; i++) {
        tick_one(&ps.s[i], now);
        int st = ps.s[i].w->sup_state;
        up += st == TLAB_WORKER_RUNNING;
        starting += st == TLAB_WORKER_STARTING;
    }
    /* Scale up: min_ready, always_on, then demand; one start per tick, in the list's order. */
    int more = want_more(now);
    /* A sleeping worker first: waking it takes seconds where a start takes minutes. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < ps.n; i++) {
            sup *s = &ps.s[i];
            int st = s->w->sup_state;
            if (pass == 0 ? st != TLAB_WORKER_SLEEPING || s->call : st != TLAB_WORKER_IDLE)
                continue;
            const char *why = up + starting < (size_t)ps.min_ready ? "pool.min_ready"
                              : s->opt.always_on                  ? "always_on"
                              : more && !starting                 ? "requests waiting"
                                                                  : NULL;
            if (!why)
                continue;
            if (pass == 0)
                wake_up(s, why);
            else
                start(s, why);
            pass = 2;
            break;
        }
    /* Scale down, the idle ladder: a running worker idle for sleep_after_s sleeps (when it has a
     * sleep mode), a sleeping one idle for idle_timeout_s in all stops, and without sleep mode a
     * running one stops at idle_timeout_s; never below min_ready running, never while requests wait. */
    if (tlab__dispatch_waiting())
        return;
    for (size_t i = ps.n; i-- > 0;) {
        sup *s = &ps.s[i];
        uint64_t idle = s->idle_since_us ? now - s->idle_since_us : 0;
        if (s->w->sup_state == TLAB_WORKER_SLEEPING && !s->call && idle >= s->opt.idle_timeout_us) {
            stop(s, "idle", SIGTERM);
            continue;
        }
        if (s->w->sup_state != TLAB_WORKER_RUNNING || s->opt.always_on || !s->idle_since_us || up <= (size_t)ps.min_ready)
            continue;
        if (ladder(s) && idle >= s->opt.sleep_after_us) {
            go_to_sleep(s);
            up--;
        } else if (!ladder(s) && idle >= s->opt.idle_timeout_us) {
            stop(s, "idle", SIGTERM);
            up--;
        }
    }
}

static int setup(sup *s, tlab__pool_worker *w, const tlab__worker_conf *wc, char *err, size_t errlen) {
    char why[256];
    s->w = w;
    s->port = wc->port;
    if (tlab__worker_options_parse(&s->opt, wc->supervise, wc->url, why, sizeof why) != 0)
        return snprintf(err, errlen, "workers[%s]: %s", wc->name, why), -1;
    tlab__worker_resolve_engine(&s->opt, why, sizeof why);
    tlab__log(TLAB_LOG_INFO, NULL, "worker %s: %s", wc->name, why);
    if (!(s->knobs = tlab__worker_load_profile(tlab__yaml_load_file, &s->opt, why, sizeof why)))
        return snprintf(err, errlen, "worker %s: %s", wc->name, why), -1;
    s->backoff_us = s->opt.backoff_min_us;
    s->sleep_supported = 1;
    /* vLLM serves /sleep and /wake_up only in its dev mode: the entry's env plus that one. */
    size_t n = 0;
    while (wc->env && wc->env[n])
        n++;
    if (!(s->env = calloc(n + 2, sizeof *s->env)))
        return snprintf(err, errlen, "out of memory"), -1;
    for (size_t i = 0; i < n; i++)
        s->env[i] = wc->env[i];
    if (tlab__worker_sleep_enabled(&s->opt) && s->opt.sleep_mode_flag)
        s->env[n] = "VLLM_SERVER_DEV_MODE=1";
    w->sup_state = TLAB_WORKER_IDLE;
    return 0;
}

int tlab__pool_supervisor_init(struct event_base *base, tlab__upstream *up, const tlab__config *cfg, void (*wake)(void),
                               char *err, size_t errlen) {
    memset(&ps, 0, sizeof ps);
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_workers; i++)
        n += cfg->workers[i].supervise != NULL;
    if (!n)
        return 0;
    if (!(ps.s = calloc(n, sizeof *ps.s)))
        return snprintf(err, errlen, "out of memory"), -1;
    ps.up = up;
    ps.wake = wake;
    ps.min_ready = cfg->pool_min_ready;
    ps.m_state = tlab__metric_register(TLAB_METRIC_GAUGE, "gateway_worker_state",
                                       "Each supervised worker: 0 idle, 1 starting, 2 running, 3 stopping, 5 failed", NULL, 0);
    ps.m_starts = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_starts_total", "Worker processes started", NULL, 0);
    ps.m_crashes = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_crashes_total",
                                         "Workers that exited while running", NULL, 0);
    ps.m_stops = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_stops_total",
                                       "Workers stopped by the gateway (idle, stalled)", NULL, 0);
    ps.m_sleeps = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_sleeps_total",
                                        "Workers put to sleep (vLLM sleep mode) when idle", NULL, 0);
    ps.m_wakes = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_wakes_total", "Sleeping workers woken by demand",
                                       NULL, 0);
    ps.m_failures = tlab__metric_register(TLAB_METRIC_COUNTER, "gateway_worker_start_failures_total",
                                          "Starts that did not reach READY", NULL, 0);
    for (size_t i = 0; i < cfg->n_workers; i++) {
        if (!cfg->workers[i].supervise)
            continue;
        sup *s = &ps.s[ps.n++];
        if (setup(s, tlab__pool_worker_at(i), &cfg->workers[i], err, errlen) != 0)
            return -1;
        const char *l = s->w->labels;
        tlab__metric_set(ps.m_state, l, TLAB_WORKER_IDLE);
        tlab__metric_add(ps.m_starts, l, 0);
        tlab__metric_add(ps.m_crashes, l, 0);
        tlab__metric_add(ps.m_stops, l, 0);
        tlab__metric_add(ps.m_failures, l, 0);
        tlab__metric_add(ps.m_sleeps, l, 0);
        tlab__metric_add(ps.m_wakes, l, 0);
    }
    if (!(ps.timer = event_new(base, -1, EV_PERSIST, on_tick, NULL)))
        return snprintf(err, errlen, "out of memory"), -1;
    struct timeval tv = {0, TICK_US};
    event_add(ps.timer, &tv);
    on_tick(-1, 0, NULL); /* min_ready and always_on start now, not a tick later */
    return 0;
}

void tlab__pool_supervisor_shutdown(void) {
    for (size_t i = 0; i < ps.n; i++) {
        sup *s = &ps.s[i];
        cancel_health(s);
        if (s->pid > 0)
            tlab__process_signal(s->pid, SIGTERM);
        tlab__worker_options_free(&s->opt);
        json_decref(s->knobs);
        free(s->env);
    }
    if (ps.timer)
        event_free(ps.timer);
    free(ps.s);
    memset(&ps, 0, sizeof ps);
}

size_t tlab__pool_supervisor_count(void) {
    return ps.n;
}
