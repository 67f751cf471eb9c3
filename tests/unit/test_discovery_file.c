/*
 * test_discovery_file.c - the discovery file's grammar (core/src/discovery/discovery_file.c):
 * URLs with and without names, comments and blank lines, default names from host and port
 * (IPv6 included), and each error as "path:line:col: message" naming what was wrong.
 */
#include <string.h>

#include "discovery/discovery_file.h"
#include "dispatch/pool.h"
#include "tlab_test.h"

static tlab__discovered list[TLAB_POOL_MAX];
static char err[512];

static int parse(const char *text) {
    err[0] = '\0';
    return tlab__discovery_file_parse(text, strlen(text), "w.txt", list, TLAB_POOL_MAX, err, sizeof err);
}

static void names_urls_and_comments(void) {
    CHECK(parse("# the pool\n\ngpu0 http://10.0.0.7:8000/   # first\n  http://10.0.0.8:8000\r\nhttps://[fd00::7]:9000/v1\n") ==
          3);
    CHECK_STR_CONTAINS(list[0].name, "gpu0");
    CHECK(strcmp(list[0].url, "http://10.0.0.7:8000") == 0); /* trailing '/' dropped */
    CHECK(strcmp(list[1].name, "10.0.0.8-8000") == 0);
    CHECK(strcmp(list[1].url, "http://10.0.0.8:8000") == 0);
    CHECK(strcmp(list[2].name, "fd00--7-9000") == 0);
    CHECK(strcmp(list[2].url, "https://[fd00::7]:9000/v1") == 0);
    CHECK(parse("") == 0);
    CHECK(parse("# nobody yet\n") == 0);
    CHECK(parse("http://host") == 1 && strcmp(list[0].name, "host-80") == 0);
}

static void errors_name_the_place(void) {
    CHECK(parse("gpu0 http://a:1\n10.0.0.9:8000\n") == -1);
    CHECK_STR_CONTAINS(err, "w.txt:2:1: expected a worker's URL");
    CHECK_STR_CONTAINS(err, "got '10.0.0.9:8000'");
    CHECK(parse("gpu0 ftp://a:1\n") == -1);
    CHECK_STR_CONTAINS(err, "w.txt:1:6: the URL must start with http://");
    CHECK(parse("gpu0 http://a:1 extra\n") == -1);
    CHECK_STR_CONTAINS(err, "w.txt:1:17:");
    CHECK_STR_CONTAINS(err, "'extra'");
    CHECK(parse("gp{u} http://a:1\n") == -1);
    CHECK_STR_CONTAINS(err, "w.txt:1:1: a worker's name is 1 to 63 letters");
    CHECK(parse("a http://x:1\na http://y:1\n") == -1);
    CHECK_STR_CONTAINS(err, "w.txt:2:1: this worker's name is listed twice");
    CHECK(parse("a http://x:1\nb http://x:1/\n") == -1);
    CHECK_STR_CONTAINS(err, "w.txt:2:3: this URL is listed twice");
    CHECK(parse("http://\n") == -1);
    CHECK_STR_CONTAINS(err, "w.txt:1:1:");
}

static void at_most_a_pool(void) {
    char text[TLAB_POOL_MAX * 32 + 64];
    size_t off = 0;
    for (int i = 0; i <= TLAB_POOL_MAX; i++)
        off += (size_t)snprintf(text + off, sizeof text - off, "http://h%d:1\n", i);
    CHECK(parse(text) == -1);
    CHECK_STR_CONTAINS(err, "w.txt:65:1: more than 64 workers");
}

int main(void) {
    names_urls_and_comments();
    errors_name_the_place();
    at_most_a_pool();
    return tlab_test_finish();
}
