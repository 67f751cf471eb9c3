/*
 * discovery_file.c - the pool from a watched file (discovery_file.h).
 */
#include "discovery/discovery_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/dir_watch.h"
#include "common/log.h"
#include "dispatch/pool.h"

#define MAX_FILE_BYTES (1024 * 1024) /* 64 workers are a few kilobytes; this only stops a wrong path */

static struct {
    int fd;
    struct event *ev;
    char *path;
    const char *base; /* the file's name within its directory */
    tlab__discovered_fn found;
    tlab__discovered list[TLAB_POOL_MAX];
    int missing_logged;
} fw = {.fd = -1};

static int fail(char *err, size_t errlen, const char *path, int line, int col, const char *msg, const char *tok, int toklen) {
    if (tok)
        snprintf(err, errlen, "%s:%d:%d: %s, got '%.*s'", path, line, col, msg, toklen > 200 ? 200 : toklen, tok);
    else
        snprintf(err, errlen, "%s:%d:%d: %s", path, line, col, msg);
    return -1;
}

static int valid_name(const char *s, size_t n) {
    if (!n || n >= TLAB_DISCOVERED_NAME)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
              s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* "http://host:port/..." -> host and port (80 / 443 by default) for a default name. 0 or -1. */
static int host_port(const char *url, size_t n, char *host, size_t hcap, char *port, size_t pcap) {
    size_t skip = strncmp(url, "https://", 8) == 0 ? 8 : 7;
    const char *h = url + skip, *end = url + n;
    const char *stop = memchr(h, '/', (size_t)(end - h));
    if (!stop)
        stop = end;
    const char *colon = NULL;
    if (*h == '[') { /* [v6]:port */
        const char *close = memchr(h, ']', (size_t)(stop - h));
        if (!close)
            return -1;
        snprintf(host, hcap, "%.*s", (int)(close - h - 1), h + 1);
        colon = close + 1 < stop && close[1] == ':' ? close + 1 : NULL;
    } else {
        colon = memchr(h, ':', (size_t)(stop - h));
        snprintf(host, hcap, "%.*s", (int)((colon ? colon : stop) - h), h);
    }
    if (!*host)
        return -1;
    if (colon)
        snprintf(port, pcap, "%.*s", (int)(stop - colon - 1), colon + 1);
    else
        snprintf(port, pcap, "%s", skip == 8 ? "443" : "80");
    return 0;
}

int tlab__discovery_file_parse(const char *text, size_t len, const char *path, tlab__discovered *out, size_t max, char *err,
                               size_t errlen) {
    size_t count = 0;
    int line = 0;
    for (size_t pos = 0; pos < len;) {
        const char *s = text + pos;
        const char *nl = memchr(s, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - s) : len - pos;
        pos += n + 1;
        line++;
        const char *hash = memchr(s, '#', n);
        if (hash)
            n = (size_t)(hash - s);
        /* Up to two fields: [name] url */
        const char *tok[3];
        size_t tlen[3];
        int k = 0;
        for (size_t i = 0; i < n;) {
            if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r') {
                i++;
                continue;
            }
            if (s[i] == '\0')
                return fail(err, errlen, path, line, (int)i + 1, "a NUL byte in the file", NULL, 0);
            size_t j = i;
            while (j < n && s[j] != ' ' && s[j] != '\t' && s[j] != '\r' && s[j] != '\0')
                j++;
            if (k == 2)
                return fail(err, errlen, path, line, (int)i + 1, "a line holds a URL, or a name and a URL; unexpected",
                            s + i, (int)(j - i));
            tok[k] = s + i;
            tlen[k++] = j - i;
            i = j;
        }
        if (!k)
            continue;
        const char *url = tok[k - 1];
        size_t ulen = tlen[k - 1];
        int ucol = (int)(url - s) + 1;
        if (!((ulen > 7 && strncmp(url, "http://", 7) == 0) || (ulen > 8 && strncmp(url, "https://", 8) == 0)))
            return fail(err, errlen, path, line, ucol,
                        k == 1 ? "expected a worker's URL (http://host:port), optionally after a name"
                               : "the URL must start with http:// or https:// and name a host",
                        url, (int)ulen);
        while (ulen > 8 && url[ulen - 1] == '/')
            ulen--;
        if (ulen >= TLAB_DISCOVERED_URL)
            return fail(err, errlen, path, line, ucol, "the URL is too long (511 bytes at most)", NULL, 0);
        if (count == max) {
            char msg[96];
            snprintf(msg, sizeof msg, "more than %zu workers: a pool holds at most %d", max, TLAB_POOL_MAX);
            return fail(err, errlen, path, line, (int)(tok[0] - s) + 1, msg, NULL, 0);
        }
        tlab__discovered *d = &out[count];
        snprintf(d->url, sizeof d->url, "%.*s", (int)ulen, url);
        if (k == 2) {
            if (!valid_name(tok[0], tlen[0]))
                return fail(err, errlen, path, line, (int)(tok[0] - s) + 1,
                            "a worker's name is 1 to 63 letters, digits, '.', '_' or '-' (it is a metric label)", tok[0],
                            (int)tlen[0]);
            snprintf(d->name, sizeof d->name, "%.*s", (int)tlen[0], tok[0]);
        } else {
            char host[256], port[16];
            if (host_port(d->url, strlen(d->url), host, sizeof host, port, sizeof port) != 0)
                return fail(err, errlen, path, line, ucol, "the URL names no host", url, (int)ulen);
            tlab__discovered_name_from(d->name, sizeof d->name, host, port);
        }
        for (size_t i = 0; i < count; i++) {
            if (strcmp(out[i].name, d->name) == 0)
                return fail(err, errlen, path, line, (int)(tok[0] - s) + 1, "this worker's name is listed twice", d->name,
                            (int)strlen(d->name));
            if (strcmp(out[i].url, d->url) == 0)
                return fail(err, errlen, path, line, ucol, "this URL is listed twice", d->url, (int)strlen(d->url));
        }
        count++;
    }
    return (int)count;
}

/* Reads the file whole. 1: read, 0: it does not exist, -1: another error (in err). */
static int slurp(const char *path, char **buf, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    char *b = malloc(MAX_FILE_BYTES + 1);
    size_t n = b ? fread(b, 1, MAX_FILE_BYTES + 1, f) : 0;
    int bad = !b || ferror(f);
    fclose(f);
    if (bad || n > MAX_FILE_BYTES) {
        free(b);
        snprintf(err, errlen, "%s: %s", path, !b ? "out of memory" : bad ? "read error" : "larger than 1 MiB: not a worker list");
        return -1;
    }
    *buf = b;
    *len = n;
    return 1;
}

/* 1: the pool was handed over, 0: kept (missing file, logged), -1: an error in err. */
static int load(char *err, size_t errlen) {
    char *buf = NULL;
    size_t len = 0;
    int r = slurp(fw.path, &buf, &len, err, errlen);
    if (r <= 0) {
        if (r == 0 && !fw.missing_logged) {
            tlab__log(TLAB_LOG_WARN, NULL, "discovery file %s does not exist: the pool stays as it is until it does", fw.path);
            fw.missing_logged = 1;
        }
        return r;
    }
    fw.missing_logged = 0;
    int n = tlab__discovery_file_parse(buf, len, fw.path, fw.list, TLAB_POOL_MAX, err, errlen);
    free(buf);
    if (n < 0)
        return -1;
    fw.found(fw.list, (size_t)n, "discovery file");
    return 1;
}

static void seen(void *arg, int wd, const char *name) {
    (void)wd;
    if (strcmp(name, fw.base) == 0 || tlab__is_configmap_swap(name))
        *(int *)arg = 1;
}

static void on_inotify(evutil_socket_t fd, short what, void *arg) {
    (void)what, (void)arg;
    int touched = 0;
    tlab__dir_watch_drain(fd, seen, &touched);
    char err[512];
    if (touched && load(err, sizeof err) < 0)
        tlab__log(TLAB_LOG_ERROR, NULL, "%s; the pool stays as it was", err);
}

int tlab__discovery_file_start(struct event_base *base, const char *path, tlab__discovered_fn found, char *err,
                               size_t errlen) {
    tlab__discovery_file_stop();
    fw.found = found;
    if (!(fw.path = strdup(path)))
        return snprintf(err, errlen, "out of memory"), -1;
    fw.base = tlab__base_name(fw.path);
    char dir[1024];
    tlab__dir_of(fw.path, dir, sizeof dir);
    if (load(err, errlen) < 0)
        return -1;
    fw.fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fw.fd < 0 || inotify_add_watch(fw.fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
        snprintf(err, errlen, "discovery.file: cannot watch the directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!(fw.ev = event_new(base, fw.fd, EV_READ | EV_PERSIST, on_inotify, NULL)) || event_add(fw.ev, NULL) != 0)
        return snprintf(err, errlen, "discovery.file: cannot add the watch to the loop"), -1;
    return 0;
}

void tlab__discovery_file_stop(void) {
    if (fw.ev)
        event_free(fw.ev);
    if (fw.fd >= 0)
        close(fw.fd);
    free(fw.path);
    fw.ev = NULL;
    fw.fd = -1;
    fw.path = NULL;
    fw.missing_logged = 0;
}
