/*
 * port_owner.h - who listens on a TCP port, from Linux's /proc: the supervisor's guard against a
 * worker port that something else holds (an orphaned worker of an earlier gateway, a stray
 * server). Before a start it names the process in the way; after the first healthy answer it
 * checks that the listener belongs to the worker it started, so a stranger's 200 is never taken
 * for READY.
 *
 * How: the LISTEN sockets on the port come from /proc/net/tcp and /proc/net/tcp6 (their inodes),
 * and a socket's holder is the process with "socket:[inode]" among its /proc/<pid>/fd links.
 * /proc is kernel memory, not disk, so a scan costs CPU only (a few ms with thousands of
 * processes); the supervisor runs it once per start, never per request. Only the caller's network
 * namespace is seen, and the fds of other users' processes only with the privilege to read them.
 */
#ifndef TLAB_PORT_OWNER_H
#define TLAB_PORT_OWNER_H

#include <stddef.h>

/*
 * The inodes of the TCP sockets in LISTEN state on `port` whose address a server at `host` would
 * collide with (the same address, or either side a wildcard; a host that is not a numeric address
 * matches every address). Fills up to `max` inodes and returns how many there are (which may be
 * more than max), or -1 when neither /proc/net/tcp nor /proc/net/tcp6 can be read.
 */
int tlab__port_listeners(const char *host, int port, unsigned long *inodes, size_t max);

/*
 * The pid of a process that holds socket `inode`, looking only at processes whose process group
 * is `pgid` (0: every process this user may inspect). 0 when none is found.
 */
long tlab__port_socket_holder(unsigned long inode, long pgid);

/* "pid 1234 (tlab-sim --port 8000 ...)" from /proc/<pid>/cmdline, cut to fit `len`. */
void tlab__port_describe_pid(long pid, char *out, size_t len);

/*
 * Before starting a server on host:port: 0 when the port is free; -1 with a message such as
 * "port 8000 is already in use by pid 1234 (tlab-sim ...)" when a listener holds it (found in
 * /proc) or a test bind says EADDRINUSE (the fallback where /proc is unreadable). Never blocks:
 * a bind is answered by the kernel at once, and nothing connects.
 */
int tlab__port_check_free(const char *host, int port, char *msg, size_t len);

typedef enum tlab__port_owner {
    TLAB_PORT_OURS = 0,     /* every listener on the port is held by the process group */
    TLAB_PORT_FOREIGN = 1,  /* a listener is held outside it (msg names it) */
    TLAB_PORT_UNKNOWN = -1, /* /proc unreadable, or no listener visible there (msg says which) */
} tlab__port_owner;

/* After a server on host:port answered: is every listener on the port held by process group `pgid`? */
tlab__port_owner tlab__port_owned_by_group(const char *host, int port, long pgid, char *msg, size_t len);

#endif
