/*
 * test_port_owner.c - port_owner.c against real sockets of this process: its LISTEN sockets are
 * found in /proc by address, held by this pid and process group and by no other group, a free
 * port is free again once closed, and the messages name the port and the holder.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/listen_socket.h"
#include "common/port_owner.h"
#include "tlab_test.h"

/* No process group has this id: pid_max is at most 2^22. */
#define NO_GROUP 0x7fffffffL

static int bound_port(int fd) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

/* Which hosts collide with a listener at `listen_host`: a table, as the address rules are the point. */
static const struct {
    const char *listen_host, *host;
    int want;
} collisions[] = {
    {"127.0.0.1", "127.0.0.1", 1}, {"127.0.0.1", "0.0.0.0", 1}, {"127.0.0.1", "localhost", 1},
    {"127.0.0.1", "127.0.0.2", 0}, {"127.0.0.1", "::1", 0},     {"127.0.0.1", "worker.example", 1},
    {"0.0.0.0", "127.0.0.1", 1},   {"0.0.0.0", "10.1.2.3", 1},  {"::1", "::1", 1},
    {"::1", "127.0.0.1", 0},
};

static void test_collisions(void) {
    for (size_t i = 0; i < sizeof collisions / sizeof collisions[0]; i++) {
        int fd = tlab__listen_socket(collisions[i].listen_host, 0);
        if (fd < 0) {
            fprintf(stderr, "skip: cannot listen on %s (no IPv6?)\n", collisions[i].listen_host);
            continue;
        }
        unsigned long inode = 0;
        int n = tlab__port_listeners(collisions[i].host, bound_port(fd), &inode, 1);
        CHECK_MSG(n == collisions[i].want, "listener %s, host %s: %d listeners, want %d", collisions[i].listen_host,
                  collisions[i].host, n, collisions[i].want);
        close(fd);
    }
}

static void test_holder_and_group(void) {
    int fd = tlab__listen_socket("127.0.0.1", 0);
    CHECK(fd >= 0);
    int port = bound_port(fd);
    unsigned long inode = 0;
    CHECK(tlab__port_listeners("127.0.0.1", port, &inode, 1) == 1);
    CHECK(tlab__port_socket_holder(inode, 0) == getpid());
    CHECK(tlab__port_socket_holder(inode, getpgrp()) == getpid());
    CHECK(tlab__port_socket_holder(inode, NO_GROUP) == 0);

    char msg[512], want[64];
    snprintf(want, sizeof want, "port %d is already in use by pid %ld (", port, (long)getpid());
    CHECK(tlab__port_check_free("127.0.0.1", port, msg, sizeof msg) == -1);
    CHECK_MSG(strstr(msg, want) && strstr(msg, "test_port_owner"), "message: %s", msg);

    CHECK(tlab__port_owned_by_group("127.0.0.1", port, getpgrp(), msg, sizeof msg) == TLAB_PORT_OURS);
    CHECK(tlab__port_owned_by_group("127.0.0.1", port, NO_GROUP, msg, sizeof msg) == TLAB_PORT_FOREIGN);
    snprintf(want, sizeof want, "port %d is held by pid %ld", port, (long)getpid());
    CHECK_MSG(strstr(msg, want) != NULL, "message: %s", msg);
    CHECK(tlab__port_owned_by_group("127.0.0.1", port, 0, msg, sizeof msg) == TLAB_PORT_FOREIGN);

    close(fd);
    CHECK(tlab__port_check_free("127.0.0.1", port, msg, sizeof msg) == 0);
    CHECK(tlab__port_owned_by_group("127.0.0.1", port, getpgrp(), msg, sizeof msg) == TLAB_PORT_UNKNOWN);
}

/* A listener in a child of its own process group: foreign to ours, ours to the child's group. */
static void test_other_group(void) {
    int fd = tlab__listen_socket("127.0.0.1", 0);
    CHECK(fd >= 0);
    int port = bound_port(fd);
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t child = fork();
    if (child == 0) {
        setpgid(0, 0);
        (void)!write(ready[1], "x", 1);
        pause(); /* holds the inherited socket until killed */
        _exit(0);
    }
    close(fd); /* now only the child holds it */
    char c;
    CHECK(read(ready[0], &c, 1) == 1);
    char msg[512];
    CHECK(tlab__port_owned_by_group("127.0.0.1", port, getpgrp(), msg, sizeof msg) == TLAB_PORT_FOREIGN);
    CHECK(tlab__port_owned_by_group("127.0.0.1", port, child, msg, sizeof msg) == TLAB_PORT_OURS);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    close(ready[0]);
    close(ready[1]);
}

static void test_describe(void) {
    char out[256];
    tlab__port_describe_pid(getpid(), out, sizeof out);
    CHECK_MSG(strstr(out, "test_port_owner") != NULL, "describe: %s", out);
    tlab__port_describe_pid(NO_GROUP, out, sizeof out);
    CHECK_MSG(strcmp(out, "pid 2147483647") == 0, "describe a gone pid: %s", out);
}

int main(void) {
    test_collisions();
    test_holder_and_group();
    test_other_group();
    test_describe();
    return tlab_test_finish();
}
