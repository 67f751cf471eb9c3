/*
 * test_auth_keys.c - the API keys file (auth_keys.c): a table of bad files with the exact
 * "file:line:col:" each must produce (and no key text in any message), good files read field by
 * field, the constant-time lookup, and SHA-256 against the FIPS 180-4 test vectors.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/auth_keys.h"
#include "base/sha256.h"
#include "tlab_test.h"

static char tmpdir[] = "/tmp/tlab_test_auth.XXXXXX";

static const char *write_file(const char *name, const char *text) {
    return tlab_test_write_in(tmpdir, name, text);
}

static void hex(const uint8_t *d, char *out) {
    for (int i = 0; i < TLAB_SHA256_LEN; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void test_sha256(void) {
    static const struct {
        const char *in;
        size_t repeat;
        const char *want;
    } cases[] = {
        {"", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"a", 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
        /* 55, 56 and 64 bytes: the padding's one-block / two-block edges */
        {"a", 55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
        {"a", 56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
        {"a", 64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].in) * cases[i].repeat;
        char *buf = malloc(len + 1);
        for (size_t j = 0; j < cases[i].repeat; j++)
            memcpy(buf + j * strlen(cases[i].in), cases[i].in, strlen(cases[i].in));
        uint8_t d[TLAB_SHA256_LEN];
        char got[2 * TLAB_SHA256_LEN + 1];
        tlab__sha256(buf, len, d);
        hex(d, got);
        CHECK_MSG(strcmp(got, cases[i].want) == 0, "case %zu: %s", i, got);
        free(buf);
    }
    uint8_t a[TLAB_SHA256_LEN] = {0}, b[TLAB_SHA256_LEN] = {0};
    CHECK(tlab__digest_equal(a, b));
    b[TLAB_SHA256_LEN - 1] = 1;
    CHECK(!tlab__digest_equal(a, b));
    b[TLAB_SHA256_LEN - 1] = 0;
    b[0] = 0x80;
    CHECK(!tlab__digest_equal(a, b));
}

typedef struct bad_case {
    const char *yaml;
    int line, col;
    const char *needle;
} bad_case;

#define K "key: sk-0123456789abcdef"

/* clang-format off */
static const bad_case bad_cases[] = {
    {"", 1, 1, "the file is empty"},
    {"- a\n", 1, 1, "the top level must be a mapping with 'keys', got a sequence"},
    {"kyes: []\n", 1, 1, "unknown key 'kyes' at top level (expected: keys)"},
    {"keys: []\nkeys: []\n", 2, 1, "duplicate key 'keys' at top level"},
    {"keys:\n", 1, 6, "'keys' must be a sequence of mappings, got null"},
    {"keys: []\n", 1, 7, "'keys' is empty"},
    {"keys: {name: a}\n", 1, 7, "'keys' must be a sequence of mappings, got a mapping"},
    {"keys: [sk-0123456789abcdef]\n", 1, 8, "'keys[0]' must be a mapping with name and key, got a scalar"},
    {"keys:\n  - " K "\n", 2, 5, "'keys[0]' has no name"},
    {"keys:\n  - name: a\n", 2, 5, "'keys[0]' (a) has no key (give key or key_sha256)"},
    {"keys:\n  - name: a b\n    " K "\n", 2, 11, "'keys[0].name' must be 1..64 characters of A-Z a-z 0-9 _ . -, got 'a b'"},
    {"keys:\n  - name: \"\"\n    " K "\n", 2, 11, "'keys[0].name' must be 1..64 characters"},
    {"keys:\n  - name: a\"b\n    " K "\n", 2, 11, "'keys[0].name' must be 1..64"},
    {"keys:\n  - name: a\n    key: short\n", 3, 10, "'keys[0].key' must be 16..512 characters long, got 5"},
    {"keys:\n  - name: a\n    key: \"sk-0123 456789abcdef\"\n", 3, 10, "'keys[0].key' must be visible ASCII (no spaces), character 8 is not"},
    {"keys:\n  - name: a\n    key:\n", 3, 9, "'keys[0].key' must be a string"},
    {"keys:\n  - name: a\n    key: [x]\n", 3, 10, "'keys[0].key' must be a string"},
    {"keys:\n  - name: a\n    key_sha256: abc\n", 3, 17, "'keys[0].key_sha256' must be 64 hex digits"},
    {"keys:\n  - name: a\n    " K "\n    key_sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n", 4, 5, "has both key and key_sha256"},
    {"keys:\n  - name: a\n    " K "\n    requests_per_minute: -1\n", 4, 26, "'keys[0].requests_per_minute' must be between 0 (unlimited) and 1000000000, got -1"},
    {"keys:\n  - name: a\n    " K "\n    requests_per_minute: lots\n", 4, 26, "'keys[0].requests_per_minute' must be an integer, got 'lots'"},
    {"keys:\n  - name: a\n    " K "\n    tokens_per_minute: 100000000001\n", 4, 24, "'keys[0].tokens_per_minute' must be between 0 (unlimited) and 100000000000"},
    {"keys:\n  - name: a\n    " K "\n    tokens_per_minute: 1.5\n", 4, 24, "must be an integer, got '1.5'"},
    {"keys:\n  - name: a\n    " K "\n    admin: yes\n", 4, 12, "'keys[0].admin' must be true or false, got 'yes'"},
    {"keys:\n  - name: a\n    " K "\n    rpm: 5\n", 4, 5, "unknown key 'rpm' in 'keys[0]' (expected: name, key, key_sha256, requests_per_minute"},
    {"keys:\n  - name: a\n    name: b\n", 3, 5, "duplicate key 'name' in 'keys[0]'"},
    {"keys:\n  - {name: a, " K "}\n  - {name: a, key: sk-aaaaaaaaaaaaaaaa}\n", 3, 5, "key name 'a' is used twice (first at line 2)"},
    {"keys:\n  - {name: a, " K "}\n  - {name: b, " K "}\n", 3, 5, "'b' has the same key as 'a' (line 2)"},
    {"keys:\n  - {name: a, " K "}\n  - {name: b, key_sha256: 7c8b0e8e0ba7e6d5e7f3bb2ec8b1b0b91eba4d6d06ac4a7e3bd5bc3f5e1d6b21}\n"
     "  - {name: c, key_sha256: 7C8B0E8E0BA7E6D5E7F3BB2EC8B1B0B91EBA4D6D06AC4A7E3BD5BC3F5E1D6B21}\n", 4, 5, "'c' has the same key as 'b' (line 3)"},
    {"keys:\n  - name: a\n    key: [1, 2\n", 4, 1, "did not find expected ',' or ']'"},
};
/* clang-format on */

static void run_bad_cases(void) {
    char err[512], prefix[PATH_MAX + 64], name[32];
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        snprintf(name, sizeof name, "bad%zu.yaml", i);
        const char *path = write_file(name, c->yaml);
        snprintf(prefix, sizeof prefix, "%s:%d:%d: ", path, c->line, c->col);
        tlab__keyring *kr = tlab__keyring_load(path, err, sizeof err);
        CHECK_MSG(kr == NULL, "case %zu: expected failure", i);
        tlab__keyring_free(kr);
        CHECK_MSG(strncmp(err, prefix, strlen(prefix)) == 0, "case %zu: '%s' does not start with '%s'", i, err, prefix);
        CHECK_MSG(strstr(err, c->needle) != NULL, "case %zu: '%s' lacks '%s'", i, err, c->needle);
        /* A message may name a key's entry, never its text. */
        CHECK_MSG(strstr(err, "0123456789abcdef") == NULL && strstr(err, "short") == NULL, "case %zu leaks a key: %s", i, err);
    }
    CHECK(tlab__keyring_load("/nonexistent/keys.yaml", err, sizeof err) == NULL);
    CHECK_STR_CONTAINS(err, "/nonexistent/keys.yaml: cannot open: ");
}

static void test_good_file(void) {
    char err[512];
    const char *path = write_file("good.yaml",
                                  "# a comment\n"
                                  "keys:\n"
                                  "  - name: team-a\n"
                                  "    key: sk-tlab-team-a-0123456789\n"
                                  "    requests_per_minute: 600\n"
                                  "    tokens_per_minute: 200000\n"
                                  "  - name: ops.admin_1\n"
                                  "    key_sha256: 9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\n"
                                  "    admin: true\n"
                                  "  - {name: bare, key: '!#$%&()*+,-./0123456789:;<=>?@[]^_`{|}~'}\n");
    tlab__keyring *kr = tlab__keyring_load(path, err, sizeof err);
    CHECK_MSG(kr != NULL, "%s", err);
    if (!kr)
        return;
    CHECK(kr->n == 3);
    CHECK(strcmp(kr->keys[0].name, "team-a") == 0 && kr->keys[0].requests_per_minute == 600 &&
          kr->keys[0].tokens_per_minute == 200000 && !kr->keys[0].admin && kr->keys[0].line == 3);
    CHECK(strcmp(kr->keys[1].name, "ops.admin_1") == 0 && kr->keys[1].admin && kr->keys[1].requests_per_minute == 0 &&
          kr->keys[1].tokens_per_minute == 0);
    CHECK(strcmp(kr->keys[2].name, "bare") == 0);

    /* Lookup: exact matches only; prefixes, extensions, case changes and the digest's own text fail. */
    static const struct {
        const char *key;
        long want;
    } lookups[] = {
        {"sk-tlab-team-a-0123456789", 0},
        {"test", 1}, /* sha256("test") = 9f86d0...: the key_sha256 entry */
        {"!#$%&()*+,-./0123456789:;<=>?@[]^_`{|}~", 2},
        {"sk-tlab-team-a-012345678", -1},
        {"sk-tlab-team-a-01234567890", -1},
        {"SK-TLAB-TEAM-A-0123456789", -1},
        {"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", -1},
        {"", -1},
    };
    for (size_t i = 0; i < sizeof lookups / sizeof lookups[0]; i++)
        CHECK_MSG(tlab__keyring_find(kr, lookups[i].key, strlen(lookups[i].key)) == lookups[i].want, "lookup %zu", i);
    CHECK(tlab__keyring_find(NULL, "x", 1) == -1);
    tlab__keyring_free(kr);

    /* The shipped example must load. */
    kr = tlab__keyring_load("configs/auth/keys.example.yaml", err, sizeof err);
    CHECK_MSG(kr != NULL && kr->n >= 2, "%s", err);
    tlab__keyring_free(kr);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_sha256();
    run_bad_cases();
    test_good_file();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tlab_test_finish();
}
