/*
 * curl_loop.h - libcurl's multi interface driven by a libevent loop (curl_multi_socket_action):
 * curl says which sockets to watch and when its timer is due; libevent says when they fire.
 * Shared by the gateway's upstream client and tlab-bench, so both have one copy of the glue.
 *
 * on_done(arg, easy, result) runs for each finished transfer, from the loop and never from
 * inside a curl callback, so it may remove, re-add or clean up easy handles.
 */
#ifndef TLAB_CURL_LOOP_H
#define TLAB_CURL_LOOP_H

#include <curl/curl.h>
#include <event2/event.h>

typedef struct tlab__curl_loop tlab__curl_loop;
typedef void (*tlab__curl_done_fn)(void *arg, CURL *easy, CURLcode result);

/* Calls curl_global_init on first use. NULL on failure. */
tlab__curl_loop *tlab__curl_loop_new(struct event_base *base, tlab__curl_done_fn on_done, void *arg);
CURLM *tlab__curl_loop_multi(tlab__curl_loop *loop);
/* Cleans up the multi handle; easy handles still attached are the caller's to free first. */
void tlab__curl_loop_free(tlab__curl_loop *loop);

/* For a CURLOPT_HEADERFUNCTION line: 1 when it is the blank line that ends a final (non-1xx)
 * header block, with *status and *content_type (NULL when absent; curl owns it) read from easy;
 * 0 for any other line. Interim 1xx blocks end with 0, so the caller sees one final block. */
int tlab__curl_final_headers(CURL *easy, const char *line, size_t len, long *status, char **content_type);

#endif
