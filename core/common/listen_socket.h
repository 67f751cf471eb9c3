/*
 * listen_socket.h - the listening socket of the gateway and of tlab-sim, opened one way.
 */
#ifndef TLAB_LISTEN_SOCKET_H
#define TLAB_LISTEN_SOCKET_H

/*
 * Listens on host:port (port 0: any free port) with a deep backlog (4096: a burst of 1,000
 * clients would otherwise see connection resets), SO_REUSEADDR, TCP_NODELAY, non-blocking and
 * close-on-exec. TCP_NODELAY because SSE tokens are small writes: without it Nagle's algorithm
 * holds each one back until the client's delayed ACK (~40 ms); Linux copies the option from the
 * listening socket to every accepted one. Returns the descriptor, or -1 with errno set
 * (EADDRNOTAVAIL when host does not resolve).
 */
int tlab__listen_socket(const char *host, int port);

#endif
