/*
 * tune_worker.c - start, health-wait and stop the measured worker (see tune_worker.h).
 */
#include "tune_worker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/process.h"
#include "common/worker_cmd.h"

double tune_mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void tune_nap(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void tune_clean_utf8(char *s) {
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3 : (*p & 0xF8) == 0xF0 ? 4 : 0;
        int ok = n > 0;
        for (int i = 1; ok && i < n; i++)
            ok = (p[i] & 0xC0) == 0x80;
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

const char *tune_last_chars(const char *text, size_t n) {
    size_t len = strlen(text);
    const char *p = len > n ? text + len - n : text;
    while (p > text && ((unsigned char)*p & 0xC0) == 0x80 && *p)
        p++;
    return p;
}

void tune_log_tail(const char *path, char *out, size_t len, int lines) {
    tlab__worker_log_tail(path, out, len, lines);
}

int tune_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int port_answers(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static size_t discard(char *p, size_t size, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return size * n;
}

/* 1 when /health answers 200 within a second. */
static int healthy(int port) {
    CURL *c = curl_easy_init();
    if (!c)
        return 0;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/health", port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 1000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status == 200;
}

/* vLLM's (and tlab-sim's) ways of saying the GPU is too small for these knobs, searched in the
 * log's last 64 KiB: vLLM V1's engine process prints the cause, then the API server's own
 * traceback fills the last lines. */
static int log_says_oom(const char *path) {
    static const char *const marks[] = {"OutOfMemoryError", "out of memory", "No available memory for the cache blocks",
                                        "larger than the available KV cache memory", NULL};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char *buf = malloc(65537);
    long size = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : 0;
    fseek(f, size > 65536 ? size - 65536 : 0, SEEK_SET);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    fclose(f);
    int found = 0;
    if (buf) {
        for (size_t i = 0; i < n; i++)
            if (!buf[i])
                buf[i] = ' ';
        buf[n] = '\0';
        for (size_t i = 0; marks[i] && !found; i++)
            found = strstr(buf, marks[i]) != NULL;
    }
    free(buf);
    return found;
}

tune_worker_status tune_worker_start(tune_worker *w, char *const *argv, char *const *env, int port, const char *log_path,
                                     double timeout_s, volatile int *stop_flag) {
    memset(w, 0, sizeof *w);
    w->pid = -1;
    w->port = port;
    snprintf(w->log_path, sizeof w->log_path, "%s", log_path);
    if (port_answers(port)) {
        snprintf(w->error, sizeof w->error, "something already listens on 127.0.0.1:%d; it would be measured instead of the worker",
                 port);
        return TUNE_WORKER_SPAWN;
    }
    w->pid = (pid_t)tlab__process_start((const char *const *)argv, (const char *const *)env, log_path,
                                       TLAB_PROCESS_TRUNCATE_LOG | TLAB_PROCESS_DIE_WITH_PARENT, w->error, sizeof w->error);
    if (w->pid < 0)
        return TUNE_WORKER_SPAWN;
    double deadline = tune_mono() + timeout_s;
    for (;;) {
        if (!tune_worker_alive(w))
            return log_says_oom(w->log_path) ? TUNE_WORKER_OOM : TUNE_WORKER_CRASH;
        if (healthy(port))
            return TUNE_WORKER_READY;
        if (stop_flag && *stop_flag) {
            tune_worker_stop(w, 5);
            snprintf(w->error, sizeof w->error, "interrupted while the worker was starting");
            return TUNE_WORKER_INTERRUPTED;
        }
        if (tune_mono() > deadline) {
            char tail[4096];
            tlab__worker_log_tail(w->log_path, tail, sizeof tail, 8);
            tune_worker_stop(w, 10);
            snprintf(w->error, sizeof w->error, "not healthy after %.0f s; log: %.1900s", timeout_s,
                     tune_last_chars(tail, sizeof w->error - 64));
            tune_clean_utf8(w->error);
            return TUNE_WORKER_TIMEOUT;
        }
        tune_nap(0.1);
    }
}

int tune_worker_alive(tune_worker *w) {
    if (w->pid <= 0)
        return 0;
    int st;
    pid_t r = waitpid(w->pid, &st, WNOHANG);
    if (r == 0)
        return 1;
    if (r == w->pid) {
        char tail[4096];
        tlab__worker_log_tail(w->log_path, tail, sizeof tail, 8);
        snprintf(w->error, sizeof w->error, "%s (%s %d); log: %.1900s", "worker exited",
                 WIFSIGNALED(st) ? "signal" : "status", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st),
                 tune_last_chars(tail, sizeof w->error - 64));
        tune_clean_utf8(w->error);
        kill(-w->pid, SIGKILL); /* whatever it left in its group */
        w->pid = -1;
    }
    return 0;
}

void tune_worker_stop(tune_worker *w, double grace_s) {
    if (w->pid <= 0)
        return;
    kill(-w->pid, SIGTERM);
    double deadline = tune_mono() + grace_s;
    int st;
    while (waitpid(w->pid, &st, WNOHANG) == 0) {
        if (tune_mono() > deadline) {
            kill(-w->pid, SIGKILL);
            waitpid(w->pid, &st, 0);
            break;
        }
        tune_nap(0.05);
    }
    /* Children that outlived their leader (vLLM's engine process) are not ours to reap; wait until
     * the group is gone, so the next point does not start while GPU memory is still held. */
    kill(-w->pid, SIGKILL);
    double gone = tune_mono() + 5;
    while (kill(-w->pid, 0) == 0 && tune_mono() < gone)
        tune_nap(0.02);
    w->pid = -1;
}

typedef struct {
    char buf[1 << 20];
    size_t n;
} body;

static size_t keep(char *p, size_t size, size_t n, void *ud) {
    body *b = ud;
    size_t len = size * n, room = sizeof b->buf - 1 - b->n;
    memcpy(b->buf + b->n, p, len < room ? len : room);
    b->n += len < room ? len : room;
    return len;
}

double tune_worker_metric(const tune_worker *w, const char *metric) {
    CURL *c = curl_easy_init();
    body *b = calloc(1, sizeof *b);
    double value = NAN;
    if (!c || !b)
        goto out;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", w->port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, keep);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    if (curl_easy_perform(c) != CURLE_OK)
        goto out;
    b->buf[b->n] = '\0';
    size_t mlen = strlen(metric);
    for (char *line = b->buf; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, metric, mlen) != 0 || (line[mlen] != ' ' && line[mlen] != '{'))
            continue;
        char *sp = line[mlen] == '{' ? strchr(line + mlen, '}') : line + mlen;
        sp = sp ? strchr(sp, ' ') : NULL;
        if (sp)
            value = strtod(sp + 1, NULL);
        break;
    }
out:
    if (c)
        curl_easy_cleanup(c);
    free(b);
    return value;
}

const char *tune_worker_status_name(tune_worker_status s) {
    static const char *const names[] = {"ready", "oom", "crash", "timeout", "spawn_failed", "interrupted"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "?";
}
