/*
 * port_owner.c - LISTEN sockets from /proc/net/tcp{,6}, their holders from /proc/<pid>/fd, and a
 * test bind for where /proc says nothing. Linux only, like the PR_SET_PDEATHSIG in process.c.
 */
#include "common/port_owner.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct addr {
    int family;          /* AF_INET or AF_INET6 */
    unsigned char a[16]; /* network byte order; IPv4 in the first 4 bytes */
} addr;

static size_t addr_len(const addr *x) {
    return x->family == AF_INET ? 4 : 16;
}

static int is_wildcard(const addr *x) {
    for (size_t i = 0; i < addr_len(x); i++)
        if (x->a[i])
            return 0;
    return 1;
}

/* ::ffff:a.b.c.d is a.b.c.d: a dual-stack socket reports IPv4 peers that way. */
static void unmap_v4(addr *x) {
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (x->family == AF_INET6 && memcmp(x->a, prefix, sizeof prefix) == 0) {
        memmove(x->a, x->a + 12, 4);
        memset(x->a + 4, 0, 12);
        x->family = AF_INET;
    }
}

/* 1 when host is a numeric address (or "localhost", which the worker resolves to 127.0.0.1). */
static int parse_host(const char *host, addr *out) {
    memset(out, 0, sizeof *out);
    if (!host || !*host)
        return 0;
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, out->a) == 1) {
        out->family = AF_INET;
        return 1;
    }
    if (inet_pton(AF_INET6, host, out->a) == 1) {
        out->family = AF_INET6;
        unmap_v4(out);
        return 1;
    }
    return 0;
}

/* Would a server at `want` (NULL: unknown, so any) collide with a listener at `have`? Wildcards
 * collide with everything: a dual-stack [::] takes IPv4 too, and v6only is not in /proc. */
static int collides(const addr *want, const addr *have) {
    if (!want || is_wildcard(want) || is_wildcard(have))
        return 1;
    return want->family == have->family && memcmp(want->a, have->a, addr_len(want)) == 0;
}

/* The kernel prints each 32-bit word of the address as a host-order number ("%08X"), so parsing
 * the word back into a host integer restores the original bytes on either endianness. */
static int parse_proc_addr(const char *hex, addr *out) {
    size_t n = strlen(hex);
    if (n != 8 && n != 32)
        return -1;
    memset(out, 0, sizeof *out);
    out->family = n == 8 ? AF_INET : AF_INET6;
    for (size_t w = 0; w < n / 8; w++) {
        char word[9];
        memcpy(word, hex + w * 8, 8);
        word[8] = '\0';
        uint32_t v = (uint32_t)strtoul(word, NULL, 16);
        memcpy(out->a + w * 4, &v, 4);
    }
    unmap_v4(out);
    return 0;
}

/* Adds the matching LISTEN inodes of one /proc/net file to inodes[*count...]. -1 when unreadable. */
static int scan_net_file(const char *path, const addr *want, int port, unsigned long *inodes, size_t max, int *count) {
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char hex[40];
        unsigned lport, st;
        unsigned long inode;
        addr have;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode; the header line does not parse */
        if (sscanf(line, " %*d: %39[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %lu", hex, &lport, &st, &inode) != 4)
            continue;
        if (st != 0x0A /* TCP_LISTEN */ || (int)lport != port || parse_proc_addr(hex, &have) != 0 || !collides(want, &have))
            continue;
        if ((size_t)*count < max)
            inodes[*count] = inode;
        (*count)++;
    }
    fclose(f);
    return 0;
}

int tlab__port_listeners(const char *host, int port, unsigned long *inodes, size_t max) {
    addr want;
    const addr *w = parse_host(host, &want) ? &want : NULL;
    int count = 0;
    int v4 = scan_net_file("/proc/net/tcp", w, port, inodes, max, &count);
    int v6 = scan_net_file("/proc/net/tcp6", w, port, inodes, max, &count); /* absent without IPv6 */
    return v4 < 0 && v6 < 0 ? -1 : count;
}

/* The process group of pid, from field 5 of /proc/<pid>/stat; -1 when it has gone. */
static long pid_pgid(long pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* The command name (field 2) may hold spaces and parentheses: the last ')' ends it. */
    const char *p = strrchr(buf, ')');
    long pgid;
    return p && sscanf(p + 1, " %*c %*d %ld", &pgid) == 1 ? pgid : -1;
}

static int holds_socket(long pid, const char *link) {
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
    DIR *d = opendir(dir); /* EACCES for another user's process: not visible, not ours */
    if (!d)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[sizeof dir + sizeof e->d_name], target[64];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            found = strcmp(target, link) == 0;
        }
    }
    closedir(d);
    return found;
}

long tlab__port_socket_holder(unsigned long inode, long pgid) {
    DIR *proc = opendir("/proc");
    if (!proc)
        return 0;
    char link[48];
    snprintf(link, sizeof link, "socket:[%lu]", inode);
    long holder = 0;
    struct dirent *e;
    while (!holder && (e = readdir(proc))) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        long pid = strtol(e->d_name, NULL, 10);
        if (pgid > 0 && pid_pgid(pid) != pgid)
            continue;
        if (holds_socket(pid, link))
            holder = pid;
    }
    closedir(proc);
    return holder;
}

void tlab__port_describe_pid(long pid, char *out, size_t len) {
    char path[64], cmd[160] = "";
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, cmd, sizeof cmd - 1) : -1;
    if (fd >= 0)
        close(fd);
    if (n > 0) {
        cmd[n] = '\0';
        for (ssize_t i = 0; i < n; i++) /* arguments are NUL-separated */
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        while (n > 0 && cmd[n - 1] == ' ')
            cmd[--n] = '\0';
        if (n == (ssize_t)sizeof cmd - 1)
            memcpy(cmd + n - 3, "...", 3);
    }
    snprintf(out, len, n > 0 ? "pid %ld (%s)" : "pid %ld", pid, cmd);
}

/* 1 when a test bind of host:port says EADDRINUSE. SO_REUSEADDR as the workers use it (tlab-sim,
 * uvicorn), so a closed worker's TIME_WAIT connections do not count as "in use". */
static int bind_says_in_use(const char *host, int port) {
    addr a;
    if (!parse_host(host, &a))
        return 0;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (a.family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        memcpy(&s4->sin_addr, a.a, 4);
        sl = sizeof *s4;
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        memcpy(&s6->sin6_addr, a.a, 16);
        sl = sizeof *s6;
    }
    int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    int in_use = bind(fd, (struct sockaddr *)&ss, sl) != 0 && errno == EADDRINUSE;
    close(fd);
    return in_use;
}

int tlab__port_check_free(const char *host, int port, char *msg, size_t len) {
    unsigned long inodes[8];
    int n = tlab__port_listeners(host, port, inodes, sizeof inodes / sizeof inodes[0]);
    if (n > 0) {
        long holder = 0;
        for (int i = 0; i < n && i < (int)(sizeof inodes / sizeof inodes[0]) && !holder; i++)
            holder = tlab__port_socket_holder(inodes[i], 0);
        char who[200];
        if (holder)
            tlab__port_describe_pid(holder, who, sizeof who);
        snprintf(msg, len, "port %d is already in use by %s", port, holder ? who : "a process this user cannot inspect");
        return -1;
    }
    if (bind_says_in_use(host, port)) {
        snprintf(msg, len, "port %d is already in use (a test bind says so; its holder is not in /proc/net/tcp)", port);
        return -1;
    }
    return 0;
}

tlab__port_owner tlab__port_owned_by_group(const char *host, int port, long pgid, char *msg, size_t len) {
    if (pgid <= 0) { /* 0 would mean every process to tlab__port_socket_holder */
        snprintf(msg, len, "no process group to check port %d against", port);
        return TLAB_PORT_FOREIGN;
    }
    unsigned long inodes[16];
    int n = tlab__port_listeners(host, port, inodes, sizeof inodes / sizeof inodes[0]);
    if (n < 0) {
        snprintf(msg, len, "cannot read /proc/net/tcp or /proc/net/tcp6");
        return TLAB_PORT_UNKNOWN;
    }
    if (n == 0) {
        snprintf(msg, len, "no listening socket on port %d in /proc/net/tcp (another network namespace?)", port);
        return TLAB_PORT_UNKNOWN;
    }
    for (int i = 0; i < n && i < (int)(sizeof inodes / sizeof inodes[0]); i++) {
        if (tlab__port_socket_holder(inodes[i], pgid))
            continue;
        long other = tlab__port_socket_holder(inodes[i], 0);
        char who[200];
        if (other)
            tlab__port_describe_pid(other, who, sizeof who);
        snprintf(msg, len, "port %d is held by %s, outside the worker's process group %ld", port,
                 other ? who : "a process this user cannot inspect", pgid);
        return TLAB_PORT_FOREIGN;
    }
    return TLAB_PORT_OURS;
}
