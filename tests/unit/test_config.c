/*
 * test_config.c - config loading: a table of bad files and --set arguments with the exact
 * "file:line:col:" (or "--set 'k=v':") prefix each must produce, then good files checked field by
 * field, including the shipped configs/gateway.yaml (ctest runs from the source root).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/auth_keys.h"
#include "config/config.h"
#include "tlab_test.h"

static char tmpdir[] = "/tmp/tlab_test_config.XXXXXX";

/* Writes `text` to <tmpdir>/<name> and returns the path (static buffer, valid until next call). */
static const char *write_file(const char *name, const char *text) {
    return tlab_test_write_in(tmpdir, name, text);
}

#define MAX_SETS 3

typedef struct bad_case {
    const char *yaml;           /* NULL: no file, sets only */
    const char *sets[MAX_SETS]; /* NULL-terminated */
    int line, col;              /* expected location; 0 for --set errors */
    const char *needle;         /* expected substring of the message after the prefix */
} bad_case;

/* clang-format off: one case per line reads better than the formatter's column layout */
static const bad_case bad_cases[] = {
    /* unknown keys, reported at the key */
    {"listen:\n  host: 0.0.0.0\nprot: 1\n", {0}, 3, 1, "unknown key 'prot' at top level (expected: listen, upstream"},
    {"listen:\n  prot: 8001\n", {0}, 2, 3, "unknown key 'prot' in 'listen' (expected: host, port)"},
    {"upstream: {url: 'http://x:1', conect_timeout_ms: 5}\n", {0}, 1, 31, "unknown key 'conect_timeout_ms' in 'upstream'"},
    {"plugins:\n  - name: a\n    cfg: {}\n", {0}, 3, 5, "unknown key 'cfg' in 'plugins[0]' (expected: name, path, config)"},
    /* wrong types and ranges, reported at the value */
    {"listen:\n  port: abc\n", {0}, 2, 9, "'listen.port' must be an integer, got 'abc'"},
    {"listen:\n  port: \"8001\"\n", {0}, 2, 9, "'listen.port' must be an integer, got '8001'"},
    {"listen:\n  port: 80.5\n", {0}, 2, 9, "'listen.port' must be an integer, got '80.5'"},
    {"listen:\n  port: 70000\n", {0}, 2, 9, "'listen.port' must be between 0 and 65535, got 70000"},
    {"listen:\n  port: -1\n", {0}, 2, 9, "'listen.port' must be between 0 and 65535, got -1"},
    {"upstream:\n  idle_keepalive_ms: 99999999999999999999999\n", {0}, 2, 22, "must be between 100 and 60000"},
    {"limits:\n  max_body_bytes: 10\n", {0}, 2, 19, "'limits.max_body_bytes' must be between 64 and 1073741824, got 10"},
    {"listen:\n  host: [a, b]\n", {0}, 2, 9, "'listen.host' must be a string, got a sequence"},
    {"listen: 8001\n", {0}, 1, 9, "'listen' must be a mapping, got '8001'"},
    {"plugin_dir:\n", {0}, 1, 12, "'plugin_dir' must be a string, got null"},
    /* duplicates */
    {"listen:\n  port: 1\n  port: 2\n", {0}, 3, 3, "duplicate key 'port' in 'listen'"},
    {"log: {level: info}\nlog: {level: debug}\n", {0}, 2, 1, "duplicate key 'log' in the top level"},
    /* YAML syntax */
    {"listen:\n  port: [1, 2\n", {0}, 3, 1, "did not find expected ',' or ']'"},
    {"listen:\n\tport: 1\n", {0}, 2, 1, "found character that cannot start any token"},
    {"a: *nope\n", {0}, 1, 4, "found undefined alias"},
    {"- a\n- b\n", {0}, 1, 1, "the top level must be a mapping"},
    {"listen: {}\n---\nlisten: {}\n", {0}, 3, 1, "only one YAML document is allowed"},
    /* plugins */
    {"plugins:\n  - path: x.so\n", {0}, 2, 5, "'plugins[0]' has no name"},
    {"plugins:\n  - name: a\n    config: [1, 2]\n", {0}, 3, 13, "'plugins[0].config' must be a mapping, got a sequence"},
    {"plugins:\n  - name: a\n    config: {x: .inf}\n", {0}, 3, 17, "'plugins[0].config.x': infinity and NaN"},
    {"plugins:\n  - name: a\n    config: {x: 1, x: 2}\n", {0}, 3, 20, "duplicate key 'plugins[0].config.x'"},
    {"plugins:\n  - name: a\n  - name: a\n", {0}, 3, 5, "plugin 'a' is listed twice"},
    {"plugins: {name: a}\n", {0}, 1, 10, "'plugins' must be a sequence of mappings"},
    {"plugins: [example]\n", {0}, 1, 11, "'plugins[0]' must be a mapping with a name, got 'example'"},
    {"plugins:\n  - name: a\n    config: &x {loop: *x}\n", {0}, 3, 13, "'plugins[0].config': nested more than 64 levels deep"},
    {"plugins:\n  - name: a\n    config:\n      a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
     "      b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n      c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
     "      d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n      e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n",
     {0},
     4,
     41,
     "'plugins[0].config': more than 100000 values"},
    /* values */
    {"upstream:\n  url: ftp://x\n", {0}, 2, 8, "'upstream.url' must start with http:// or https://"},
    {"upstream:\n  url: http://\n", {0}, 2, 8, "'upstream.url' must start with http:// or https://"},
    {"log:\n  level: verbose\n", {0}, 2, 10, "'log.level' must be one of debug, info, warn, error, got 'verbose'"},
    {"listen:\n  host: ''\n", {0}, 2, 9, "'listen.host' must be a non-empty string"},
    /* policies */
    {"policies:\n  tick_ms: 5\n", {0}, 2, 12, "'policies.tick_ms' must be between 10 and 600000, got 5"},
    {"policies:\n  fail_open: maybe\n", {0}, 2, 14, "'policies.fail_open' must be true or false, got 'maybe'"},
    {"policies:\n  admission:\n", {0}, 2, 13, "'policies.admission' must be a path or \"\" (off), got null"},
    {"policies:\n  admision: x.lua\n", {0}, 2, 3, "unknown key 'admision' in 'policies' (expected: admission, degradation"},
    {"policies:\n  memory_limit_mb: 0\n", {0}, 2, 20, "'policies.memory_limit_mb' must be between 1 and 4096, got 0"},
    {NULL, {"policies.instruction_budget=10"}, 0, 0, "'policies.instruction_budget' must be between 1000 and 100000000"},
    /* --set: same checks, other prefix */
    {NULL, {"listen.prot=1"}, 0, 0, "unknown key 'prot' in 'listen' (expected: host, port)"},
    {NULL, {"bogus=1"}, 0, 0, "unknown key 'bogus' at top level"},
    {NULL, {"plugin_dir.x=1"}, 0, 0, "unknown key 'plugin_dir.x' at top level"},
    {NULL, {"listen.port=abc"}, 0, 0, "'listen.port' must be an integer, got 'abc'"},
    {NULL, {"listen.port=70000"}, 0, 0, "'listen.port' must be between 0 and 65535, got 70000"},
    {NULL, {"upstream.url=localhost:8000"}, 0, 0, "'upstream.url' must start with http:// or https://"},
    {NULL, {"log.level=loud"}, 0, 0, "'log.level' must be one of debug, info, warn, error"},
    {NULL, {"log.level="}, 0, 0, "'log.level' must be a string, got null"},
    {NULL, {"listen.port=[1"}, 0, 0, "invalid value:"},
    {NULL, {"listen=1"}, 0, 0, "'listen' is a section; set one of its keys (host, port)"},
    {NULL, {"listen.port"}, 0, 0, "expected key=value"},
    {NULL, {"plugins=[]"}, 0, 0, "plugins list cannot be set from the command line"},
    {NULL, {"plugins.0.name=x"}, 0, 0, "plugins list cannot be set from the command line"},
    {NULL, {"plugins[0].path=x"}, 0, 0, "plugins list cannot be set from the command line"},
    /* auth and the admin listener (a nested section) */
    {"auth:\n  keys_file:\n", {0}, 2, 13, "'auth.keys_file' must be a path or \"\" (off), got null"},
    {"auth:\n  redis: \"h:1:2\"\n", {0}, 2, 10, "'auth.redis': 'h:1:2' is not host:port"},
    {"auth:\n  redis: 6379\n", {0}, 2, 10, "'auth.redis': '6379' is not host:port"},
    {"auth:\n  redis_timeout_ms: 0\n", {0}, 2, 21, "'auth.redis_timeout_ms' must be between 1 and 60000"},
    {"auth:\n  keys: x\n", {0}, 2, 3, "unknown key 'keys' in 'auth' (expected: keys_file, redis, redis_prefix, redis_timeout_ms)"},
    {"admin:\n  listen:\n    port: 70000\n", {0}, 3, 11, "'admin.listen.port' must be between 0 and 65535, got 70000"},
    {"admin:\n  listen:\n    port: x\n", {0}, 3, 11, "'admin.listen.port' must be an integer or null (none), got 'x'"},
    {"admin:\n  listen:\n    hots: a\n", {0}, 3, 5, "unknown key 'hots' in 'admin.listen' (expected: host, port)"},
    {"admin:\n  lisen: {}\n", {0}, 2, 3, "unknown key 'lisen' in 'admin' (expected: listen)"},
    {"admin: 1\n", {0}, 1, 8, "'admin' must be a mapping, got '1'"},
    {"admin.listen: {port: 1}\n", {0}, 1, 1, "unknown key 'admin.listen' at top level"},
    {NULL, {"admin.listen.port=abc"}, 0, 0, "'admin.listen.port' must be an integer or null (none), got 'abc'"},
    {NULL, {"admin.listen.prot=1"}, 0, 0, "unknown key 'prot' in 'admin.listen' (expected: host, port)"},
    {NULL, {"admin.lisen.port=1"}, 0, 0, "unknown key 'admin.lisen.port' at top level"},
    {NULL, {"admin.port=1"}, 0, 0, "unknown key 'port' in 'admin' (expected: listen)"},
    {NULL, {"admin=1"}, 0, 0, "'admin' is a section; set a key of one of its sections (listen)"},
    {NULL, {"admin.listen=1"}, 0, 0, "'admin.listen' is a section; set one of its keys (host, port)"},
    /* a bad --set after good ones, on top of a good file */
    {"listen: {port: 1}\n",
     {"listen.port=2", "limits.max_tokens=0"},
     0,
     0,
     "'limits.max_tokens' must be between 1 and 10000000, got 0"},
};
/* clang-format on */

static void run_bad_cases(void) {
    char err[512], prefix[PATH_MAX + 64];
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        char name[32];
        snprintf(name, sizeof name, "bad%zu.yaml", i);
        const char *path = c->yaml ? write_file(name, c->yaml) : NULL;
        size_t n_sets = 0;
        while (n_sets < MAX_SETS && c->sets[n_sets])
            n_sets++;
        if (path)
            snprintf(prefix, sizeof prefix, "%s:%d:%d: ", path, c->line, c->col);
        if (c->line == 0)
            snprintf(prefix, sizeof prefix, "--set '%s': ", c->sets[n_sets - 1]);

        tlab__config cfg;
        memset(&cfg, 0x5a, sizeof cfg);
        int rc = tlab__config_load(&cfg, path, c->sets, n_sets, err, sizeof err);
        CHECK_MSG(rc == -1, "case %zu: expected failure", i);
        CHECK_MSG(strncmp(err, prefix, strlen(prefix)) == 0, "case %zu: '%s' does not start with '%s'", i, err, prefix);
        CHECK_MSG(strstr(err, c->needle) != NULL, "case %zu: '%s' lacks '%s'", i, err, c->needle);
        CHECK_MSG(cfg.listen_host == NULL && cfg.plugins == NULL && cfg.n_plugins == 0, "case %zu: cfg not zeroed", i);
    }
}

static void test_missing_file(void) {
    tlab__config cfg;
    char err[512];
    const char *msg = err; /* CHECK_STR_CONTAINS tests for NULL, which an array never is */
    CHECK(tlab__config_load(&cfg, "/nonexistent/gw.yaml", NULL, 0, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(msg, "/nonexistent/gw.yaml: cannot open: No such file or directory");
}

static void test_bad_utf8(void) {
    tlab__config cfg;
    char err[512], prefix[PATH_MAX];
    const char *path = write_file("utf8.yaml", "listen:\n  host: ab\xff\n");
    CHECK(tlab__config_load(&cfg, path, NULL, 0, err, sizeof err) == -1);
    snprintf(prefix, sizeof prefix, "%s:2:11: ", path);
    CHECK_MSG(strncmp(err, prefix, strlen(prefix)) == 0, "'%s' does not start with '%s'", err, prefix);
}

static void check_defaults(const tlab__config *cfg) {
    CHECK(strcmp(cfg->listen_host, "127.0.0.1") == 0);
    CHECK(cfg->listen_port == 8001);
    CHECK(strcmp(cfg->upstream_url, "http://127.0.0.1:8000") == 0);
    CHECK(cfg->connect_timeout_ms == 2000);
    CHECK(cfg->first_byte_timeout_ms == 120000);
    CHECK(cfg->total_timeout_ms == 600000);
    CHECK(cfg->idle_keepalive_ms == 4000);
    CHECK(cfg->max_connections == 1024);
    CHECK(cfg->max_body_bytes == 1048576);
    CHECK(cfg->max_tokens == 4096);
    CHECK(cfg->max_connections_in == 10000);
    CHECK(cfg->client_timeout_ms == 60000);
    CHECK(strcmp(cfg->log_level, "info") == 0);
    CHECK(cfg->plugin_dir != NULL && cfg->plugin_dir[0] == '/');
    CHECK(cfg->n_plugins == 0 && cfg->plugins == NULL);
    /* Without a config file the policies are off: a relative default would depend on the cwd. */
    CHECK(strcmp(cfg->policy_admission, "") == 0 && strcmp(cfg->policy_degradation, "") == 0);
    CHECK(cfg->policy_tick_ms == 1000 && cfg->policy_fail_open == 1 && cfg->policy_instruction_budget == 100000);
    CHECK(cfg->policy_memory_limit_mb == 16 && cfg->policy_stats_window_s == 10 && cfg->policy_min_restart_interval_s == 60);
}

static void test_policies(void) {
    tlab__config cfg;
    char err[512], want[PATH_MAX + 32];
    const char *path = write_file("pol.yaml", "policies:\n  admission: ../s/adm.lua\n  degradation: ''\n"
                                              "  fail_open: false\n  tick_ms: 250\n");
    CHECK_MSG(tlab__config_load(&cfg, path, NULL, 0, err, sizeof err) == 0, "%s", err);
    snprintf(want, sizeof want, "%s/../s/adm.lua", tmpdir); /* relative to the file, like plugin paths */
    CHECK_MSG(strcmp(cfg.policy_admission, want) == 0, "'%s' != '%s'", cfg.policy_admission, want);
    CHECK(strcmp(cfg.policy_degradation, "") == 0);
    CHECK(cfg.policy_fail_open == 0 && cfg.policy_tick_ms == 250);
    tlab__config_free(&cfg);
    /* A --set path is taken as typed (relative to where the operator runs the gateway). */
    const char *sets[] = {"policies.admission=x/a.lua", "policies.fail_open=true"};
    CHECK_MSG(tlab__config_load(&cfg, path, sets, 2, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(cfg.policy_admission, "x/a.lua") == 0 && cfg.policy_fail_open == 1);
    tlab__config_free(&cfg);
}

static void test_defaults(void) {
    tlab__config cfg;
    char err[512];
    CHECK(tlab__config_defaults(&cfg) == 0);
    check_defaults(&cfg);
    tlab__config_free(&cfg);

    CHECK(tlab__config_load(&cfg, NULL, NULL, 0, err, sizeof err) == 0);
    check_defaults(&cfg);
    CHECK(cfg.source == NULL);
    tlab__config_free(&cfg);

    /* An empty file, a comment-only file and empty sections all mean defaults. */
    const char *texts[] = {"", "# nothing\n", "listen:\nupstream:\nlimits:\nlog:\nplugins:\n"};
    for (size_t i = 0; i < 3; i++) {
        const char *path = write_file("empty.yaml", texts[i]);
        CHECK_MSG(tlab__config_load(&cfg, path, NULL, 0, err, sizeof err) == 0, "%s", err);
        check_defaults(&cfg);
        CHECK(cfg.source && strcmp(cfg.source, path) == 0);
        tlab__config_free(&cfg);
    }
}

static void test_full_file(void) {
    tlab__config cfg;
    char err[512];
    const char *path = write_file("full.yaml", "listen: {host: 0.0.0.0, port: 0}\n"
                                               "upstream:\n"
                                               "  url: https://worker:9000/base\n"
                                               "  connect_timeout_ms: 1\n"
                                               "  first_byte_timeout_ms: 3600000\n"
                                               "  total_timeout_ms: 0x10\n"
                                               "  idle_keepalive_ms: 100\n"
                                               "  max_connections: 100000\n"
                                               "limits:\n"
                                               "  max_body_bytes: 1073741824\n"
                                               "  max_tokens: 200\n"
                                               "  max_client_connections: 5\n"
                                               "  client_timeout_ms: 0o17\n"
                                               "log: {level: error}\n"
                                               "plugin_dir: /opt/p\n");
    CHECK_MSG(tlab__config_load(&cfg, path, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(cfg.listen_host, "0.0.0.0") == 0);
    CHECK(cfg.listen_port == 0);
    CHECK(strcmp(cfg.upstream_url, "https://worker:9000/base") == 0);
    CHECK(cfg.connect_timeout_ms == 1);
    CHECK(cfg.first_byte_timeout_ms == 3600000);
    CHECK(cfg.total_timeout_ms == 16);
    CHECK(cfg.idle_keepalive_ms == 100);
    CHECK(cfg.max_connections == 100000);
    CHECK(cfg.max_body_bytes == 1073741824LL);
    CHECK(cfg.max_tokens == 200);
    CHECK(cfg.max_connections_in == 5);
    CHECK(cfg.client_timeout_ms == 15);
    CHECK(strcmp(cfg.log_level, "error") == 0);
    CHECK(strcmp(cfg.plugin_dir, "/opt/p") == 0);
    tlab__config_free(&cfg);
}

static void test_plugins(void) {
    tlab__config cfg;
    char err[512], want[PATH_MAX + 32];
    const char *path = write_file("plugins.yaml", "plugin_dir: /from/file\n"
                                                  "plugins:\n"
                                                  "  - name: example\n"
                                                  "    config:\n"
                                                  "      i: 42\n"
                                                  "      neg: -7\n"
                                                  "      r: 1.5\n"
                                                  "      e: 1e3\n"
                                                  "      t: true\n"
                                                  "      f: False\n"
                                                  "      n: ~\n"
                                                  "      n2: null\n"
                                                  "      s: hello\n"
                                                  "      qi: \"42\"\n"
                                                  "      qt: 'true'\n"
                                                  "      nested: [1, [2, x], {k: v}]\n"
                                                  "  - name: rel\n"
                                                  "    path: sub/rel.so\n"
                                                  "  - {name: abs, path: /lib/abs.so, config: }\n");
    const char *sets[] = {"plugin_dir=/from/set"};
    CHECK_MSG(tlab__config_load(&cfg, path, sets, 1, err, sizeof err) == 0, "%s", err);
    CHECK(cfg.n_plugins == 3);
    if (cfg.n_plugins != 3) {
        tlab__config_free(&cfg);
        return;
    }

    tlab__plugin_conf *ex = &cfg.plugins[0];
    CHECK(strcmp(ex->name, "example") == 0);
    CHECK(strcmp(ex->path, "/from/set/example.so") == 0); /* default path uses the --set plugin_dir */
    CHECK(ex->line == 3 && ex->col == 5);
    json_t *c = ex->config;
    CHECK(json_is_integer(json_object_get(c, "i")) && json_integer_value(json_object_get(c, "i")) == 42);
    CHECK(json_integer_value(json_object_get(c, "neg")) == -7);
    CHECK(json_is_real(json_object_get(c, "r")) && json_real_value(json_object_get(c, "r")) == 1.5);
    CHECK(json_is_real(json_object_get(c, "e")) && json_real_value(json_object_get(c, "e")) == 1000.0);
    CHECK(json_is_true(json_object_get(c, "t")));
    CHECK(json_is_false(json_object_get(c, "f")));
    CHECK(json_is_null(json_object_get(c, "n")));
    CHECK(json_is_null(json_object_get(c, "n2")));
    CHECK(json_is_string(json_object_get(c, "s")) && strcmp(json_string_value(json_object_get(c, "s")), "hello") == 0);
    CHECK(json_is_string(json_object_get(c, "qi")) && strcmp(json_string_value(json_object_get(c, "qi")), "42") == 0);
    CHECK(json_is_string(json_object_get(c, "qt")));
    json_t *expect = json_loads("[1, [2, \"x\"], {\"k\": \"v\"}]", 0, NULL);
    CHECK(json_equal(json_object_get(c, "nested"), expect));
    json_decref(expect);
    CHECK(json_object_size(c) == 12);

    /* A relative path is taken from the config file's directory, not the working directory. */
    snprintf(want, sizeof want, "%s/sub/rel.so", tmpdir);
    CHECK_MSG(strcmp(cfg.plugins[1].path, want) == 0, "'%s' != '%s'", cfg.plugins[1].path, want);
    CHECK(json_is_object(cfg.plugins[1].config) && json_object_size(cfg.plugins[1].config) == 0);
    CHECK(strcmp(cfg.plugins[2].path, "/lib/abs.so") == 0);
    CHECK(json_is_object(cfg.plugins[2].config) && json_object_size(cfg.plugins[2].config) == 0);
    tlab__config_free(&cfg);

    /* Without the --set, the file's plugin_dir applies. */
    CHECK_MSG(tlab__config_load(&cfg, path, NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(cfg.n_plugins == 3 && strcmp(cfg.plugins[0].path, "/from/file/example.so") == 0);
    tlab__config_free(&cfg);
}

static void test_sets(void) {
    tlab__config cfg;
    char err[512];
    const char *path = write_file("sets.yaml", "listen: {port: 9000}\nlog: {level: warn}\n");
    const char *sets[] = {"listen.port=0",           "upstream.url=http://x:1",    "plugin_dir=/x",
                          "log.level=debug",         "limits.max_tokens=100",      "listen.host=::1",
                          "listen.host='localhost'", "limits.max_body_bytes=0x100"};
    CHECK_MSG(tlab__config_load(&cfg, path, sets, 8, err, sizeof err) == 0, "%s", err);
    CHECK(cfg.listen_port == 0);
    CHECK(strcmp(cfg.upstream_url, "http://x:1") == 0);
    CHECK(strcmp(cfg.plugin_dir, "/x") == 0);
    CHECK(strcmp(cfg.log_level, "debug") == 0);
    CHECK(cfg.max_tokens == 100);
    CHECK(strcmp(cfg.listen_host, "localhost") == 0); /* the later --set wins */
    CHECK(cfg.max_body_bytes == 256);
    tlab__config_free(&cfg);

    /* Sets alone, no file. */
    const char *one[] = {"listen.host=::1"};
    CHECK_MSG(tlab__config_load(&cfg, NULL, one, 1, err, sizeof err) == 0, "%s", err);
    CHECK(strcmp(cfg.listen_host, "::1") == 0);
    tlab__config_free(&cfg);
}

/* auth.keys_file (relative to the config file, errors naming the keys file) and admin.listen. */
static void test_auth_admin(void) {
    tlab__config cfg;
    char err[512], want[PATH_MAX + 64];
    CHECK(tlab__config_load(&cfg, NULL, NULL, 0, err, sizeof err) == 0);
    CHECK(strcmp(cfg.auth_keys_file, "") == 0 && cfg.keyring == NULL);
    CHECK(strcmp(cfg.admin_host, "127.0.0.1") == 0 && cfg.admin_port == -1);
    tlab__config_free(&cfg);

    snprintf(want, sizeof want, "mkdir -p '%s/conf/auth'", tmpdir);
    CHECK(system(want) == 0);
    write_file("conf/auth/keys.yaml", "keys:\n  - {name: a, key: sk-0123456789abcdef}\n  - {name: b, key: sk-fedcba9876543210}\n");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", write_file("conf/gw.yaml", "auth:\n  keys_file: auth/keys.yaml\nadmin:\n  listen:\n    port: 9100\n"));
    CHECK_MSG(tlab__config_load(&cfg, path, NULL, 0, err, sizeof err) == 0, "%s", err);
    snprintf(want, sizeof want, "%s/conf/auth/keys.yaml", tmpdir);
    CHECK_MSG(strcmp(cfg.auth_keys_file, want) == 0, "'%s' != '%s'", cfg.auth_keys_file, want);
    CHECK(cfg.keyring && cfg.keyring->n == 2);
    CHECK(cfg.admin_port == 9100 && strcmp(cfg.admin_host, "127.0.0.1") == 0);
    tlab__config_free(&cfg);

    /* --set: the port back to none (null), another host. */
    const char *sets[] = {"admin.listen.port=", "admin.listen.host=::1", "auth.keys_file=''"};
    CHECK_MSG(tlab__config_load(&cfg, path, sets, 3, err, sizeof err) == 0, "%s", err);
    CHECK(cfg.admin_port == -1 && strcmp(cfg.admin_host, "::1") == 0 && cfg.keyring == NULL);
    tlab__config_free(&cfg);

    /* A bad keys file fails the config with the keys file's own line and column. */
    write_file("conf/auth/keys.yaml", "keys:\n  - name: a\n    key: short\n");
    CHECK(tlab__config_load(&cfg, path, NULL, 0, err, sizeof err) == -1);
    snprintf(want, sizeof want, "%s/conf/auth/keys.yaml:3:10: 'keys[0].key' must be 16..512 characters long", tmpdir);
    CHECK_MSG(strncmp(err, want, strlen(want)) == 0, "'%s' does not start with '%s'", err, want);
    CHECK(strstr(err, "short") == NULL); /* never quote a key */
    const char *missing[] = {"auth.keys_file=/nonexistent/keys.yaml"};
    CHECK(tlab__config_load(&cfg, NULL, missing, 1, err, sizeof err) == -1);
    CHECK_STR_CONTAINS(err, "/nonexistent/keys.yaml: cannot open");
}

static void test_shipped_config(void) {
    tlab__config cfg, def;
    char err[512];
    CHECK_MSG(tlab__config_load(&cfg, "configs/gateway.yaml", NULL, 0, err, sizeof err) == 0, "%s", err);
    CHECK(tlab__config_defaults(&def) == 0);
    /* The shipped file documents the defaults; it must not drift from them. */
    CHECK(strcmp(cfg.listen_host, def.listen_host) == 0 && cfg.listen_port == def.listen_port);
    CHECK(strcmp(cfg.upstream_url, def.upstream_url) == 0);
    CHECK(cfg.connect_timeout_ms == def.connect_timeout_ms && cfg.first_byte_timeout_ms == def.first_byte_timeout_ms);
    CHECK(cfg.total_timeout_ms == def.total_timeout_ms && cfg.idle_keepalive_ms == def.idle_keepalive_ms);
    CHECK(cfg.max_connections == def.max_connections && cfg.max_body_bytes == def.max_body_bytes);
    CHECK(cfg.max_tokens == def.max_tokens && cfg.max_connections_in == def.max_connections_in);
    CHECK(cfg.client_timeout_ms == def.client_timeout_ms && strcmp(cfg.log_level, def.log_level) == 0);
    /* The shipped plugin chain: queue, batching (window 0 = pass-through), supervisor (engine auto), metrics. */
    CHECK(cfg.n_plugins == 4 && strcmp(cfg.plugins[0].name, "queue") == 0 && strcmp(cfg.plugins[3].name, "metrics") == 0);
    CHECK(cfg.n_plugins == 4 && json_integer_value(json_object_get(cfg.plugins[1].config, "window_ms")) == 0);
    CHECK(cfg.n_plugins == 4 && strcmp(json_string_value(json_object_get(cfg.plugins[2].config, "engine")), "auto") == 0);
    /* The shipped policies: the scripts next to configs/, and the documented defaults. */
    CHECK(strcmp(cfg.policy_admission, "configs/../scripts-lua/admission.lua") == 0);
    CHECK(strcmp(cfg.policy_degradation, "configs/../scripts-lua/degradation.lua") == 0);
    CHECK(cfg.policy_tick_ms == def.policy_tick_ms && cfg.policy_fail_open == def.policy_fail_open);
    CHECK(cfg.policy_instruction_budget == def.policy_instruction_budget && cfg.policy_memory_limit_mb == def.policy_memory_limit_mb);
    CHECK(strcmp(cfg.auth_keys_file, "") == 0 && cfg.keyring == NULL); /* auth off by default */
    CHECK(strcmp(cfg.auth_redis, "") == 0 && strcmp(cfg.auth_redis_prefix, "tlab:ratelimit:") == 0 && cfg.auth_redis_timeout_ms == 100);
    CHECK(cfg.admin_port == -1 && strcmp(cfg.admin_host, def.admin_host) == 0);
    CHECK(cfg.policy_stats_window_s == def.policy_stats_window_s &&
          cfg.policy_min_restart_interval_s == def.policy_min_restart_interval_s);
    tlab__config_free(&cfg);
    tlab__config_free(&def);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    run_bad_cases();
    test_missing_file();
    test_bad_utf8();
    test_defaults();
    test_full_file();
    test_plugins();
    test_sets();
    test_policies();
    test_auth_admin();
    test_shipped_config();
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tlab_test_finish();
}
