/* ctest-labels: unit */
/* test_config.c: defaults, YAML, environment and flag layers, and their error messages. */
#include "cinder/config.h"
#include "cinder/status.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>

static void test_defaults(void)
{
    struct cnd_config c;
    config_default(&c);
    CHECK_STR(c.host, "127.0.0.1");
    CHECK_EQ_INT(c.port, 8080);
    CHECK(c.model == NULL);
    CHECK_EQ_INT(c.ctx_size, 0);
    CHECK_EQ_INT(c.threads, 0);
    CHECK_EQ_INT(c.n_api_keys, 0);
    CHECK_EQ_INT(c.n_allowed_origins, 0);
    CHECK(!c.metrics_require_key);
    CHECK_EQ_INT(c.max_body_bytes, 8 * 1024 * 1024);
    CHECK_EQ_INT(c.block_size, 16);
    CHECK_STR(c.kv_cache_type, "f16");
    CHECK_STR(c.device, "auto");
    CHECK_STR(c.log_level, "info");
    CHECK_NEAR(c.kv_cache_memory_frac, 0.5, 1e-12);
    CHECK_EQ_INT(c.kv_cache_memory_bytes, 0);
    CHECK(!c.random_weights);
    config_deinit(&c);
}

static void test_bytes(void)
{
    int64_t v;
    CHECK(config_parse_bytes("1024", &v) == 0 && v == 1024);
    CHECK(config_parse_bytes("8MiB", &v) == 0 && v == 8 << 20);
    CHECK(config_parse_bytes("8M", &v) == 0 && v == 8 << 20);
    CHECK(config_parse_bytes("512k", &v) == 0 && v == 512 << 10);
    CHECK(config_parse_bytes("2GiB", &v) == 0 && v == 2LL << 30);
    CHECK(config_parse_bytes("2 GB", &v) == 0 && v == 2000000000LL);
    CHECK(config_parse_bytes("1.5Gi", &v) == 0 && v == 3LL << 29);
    CHECK(config_parse_bytes("1TiB", &v) == 0 && v == 1LL << 40);
    CHECK(config_parse_bytes("", &v) < 0);
    CHECK(config_parse_bytes("-1", &v) < 0);
    CHECK(config_parse_bytes("12X", &v) < 0);
    CHECK(config_parse_bytes("MiB", &v) < 0);
    CHECK(config_parse_bytes("1MiBx", &v) < 0);
    CHECK(config_parse_bytes("0.3", &v) < 0);
}

static void test_set(void)
{
    struct cnd_config c;
    char err[CND_ERR_LEN] = "";
    config_default(&c);
    CHECK(config_set(&c, "port", "9000", "--port", err) == 0);
    CHECK_EQ_INT(c.port, 9000);
    CHECK(config_set(&c, "port", "70000", "--port", err) == CND_EINVAL);
    CHECK(strstr(err, "--port") && strstr(err, "out of range"));
    CHECK(config_set(&c, "port", "80x", "--port", err) == CND_EINVAL);
    CHECK(config_set(&c, "nope", "1", "--nope", err) == CND_ENOTFOUND);
    CHECK(strstr(err, "unknown key 'nope'") != NULL);
    CHECK(config_set(&c, "api_keys", "a, b ,,c", "--api-keys", err) == 0);
    CHECK_EQ_INT(c.n_api_keys, 3);
    if (c.n_api_keys == 3) {
        CHECK_STR(c.api_keys[0], "a");
        CHECK_STR(c.api_keys[1], "b");
        CHECK_STR(c.api_keys[2], "c");
    }
    CHECK(config_set(&c, "api_keys", "", "--api-keys", err) == 0);
    CHECK_EQ_INT(c.n_api_keys, 0);
    CHECK(config_set(&c, "metrics_require_key", "yes", "x", err) == 0 && c.metrics_require_key);
    CHECK(config_set(&c, "metrics_require_key", "maybe", "x", err) == CND_EINVAL);
    CHECK(config_set(&c, "kv_cache_memory", "2GiB", "x", err) == 0);
    CHECK_EQ_INT(c.kv_cache_memory_bytes, 2LL << 30);
    CHECK_NEAR(c.kv_cache_memory_frac, 0, 0);
    CHECK(config_set(&c, "kv_cache_memory", "0.8", "x", err) == 0);
    CHECK_EQ_INT(c.kv_cache_memory_bytes, 0);
    CHECK_NEAR(c.kv_cache_memory_frac, 0.8, 1e-12);
    CHECK(config_set(&c, "kv_cache_memory", "1", "x", err) == 0);
    CHECK_NEAR(c.kv_cache_memory_frac, 1.0, 1e-12);
    CHECK(config_set(&c, "kv_cache_memory", "0", "x", err) == CND_EINVAL);
    CHECK(config_set(&c, "kv_cache_memory", "1.5", "x", err) == CND_EINVAL);
    CHECK(config_set(&c, "kv_cache_memory", "100", "x", err) == CND_EINVAL); /* < 1 MiB */
    CHECK(config_set(&c, "device", "cuda:1", "x", err) == 0);
    CHECK_STR(c.device, "cuda:1");
    CHECK(config_set(&c, "device", "cuda:", "x", err) == CND_EINVAL);
    CHECK(config_set(&c, "device", "tpu", "x", err) == CND_EINVAL);
    CHECK(config_set(&c, "kv_cache_type", "F32", "x", err) == 0);
    CHECK_STR(c.kv_cache_type, "f32");
    CHECK(config_set(&c, "kv_cache_type", "q8", "x", err) == CND_EINVAL);
    CHECK(strstr(err, "f16|f32") != NULL);
    CHECK(config_set(&c, "log_level", "debug", "x", err) == 0);
    CHECK(config_set(&c, "model", "/m.gguf", "-m", err) == 0);
    CHECK_STR(c.model, "/m.gguf");
    CHECK(config_set(&c, "model", "", "-m", err) == 0 && c.model == NULL);
    CHECK(config_set(&c, "CINDER_THREADS", "4", "x", err) == 0 && c.threads == 4);
    config_deinit(&c);
}

static void test_flags(void)
{
    CHECK(config_find_flag("--ctx-size") == config_find_key("ctx_size"));
    CHECK(config_find_flag("--ctx_size") == config_find_key("ctx_size"));
    CHECK(config_find_flag("-c") == config_find_key("ctx_size"));
    CHECK(config_find_flag("-m") == config_find_key("model"));
    CHECK(config_find_flag("--port") == config_find_key("port"));
    CHECK(config_find_flag("--ctx") == NULL);
    CHECK(config_find_flag("port") == NULL);
    size_t n;
    const struct config_key *keys = config_keys(&n);
    CHECK(n >= 25);
    for (size_t i = 0; i < n; i++) {
        CHECK(strncmp(keys[i].env, "CINDER_", 7) == 0);
        CHECK(config_find_key(keys[i].name) == config_find_key(keys[i].env));
        CHECK(config_find_flag(keys[i].flag) != NULL);
        CHECK(keys[i].help && *keys[i].help);
    }
}

static const char yaml_ok[] = "# comment\n"
                              "host: 0.0.0.0\n"
                              "port: 9001\n"
                              "model: /models/x.gguf\n"
                              "api_keys:\n"
                              "  - key-one\n"
                              "  - \"key two\"\n"
                              "allowed_origins: [\"https://a.example\", \"*\"]\n"
                              "max_body_bytes: 1MiB\n"
                              "kv_cache_memory: 512MiB\n"
                              "served_model_name: ~\n"
                              "metrics_require_key: true\n";

static void test_yaml(void)
{
    struct cnd_config c;
    char err[CND_ERR_LEN] = "";
    config_default(&c);
    int rc = config_load_string(&c, yaml_ok, strlen(yaml_ok), "t.yaml", err);
    CHECK_MSG(rc == 0, "%s", err);
    CHECK_STR(c.host, "0.0.0.0");
    CHECK_EQ_INT(c.port, 9001);
    CHECK_STR(c.model, "/models/x.gguf");
    CHECK_EQ_INT(c.n_api_keys, 2);
    if (c.n_api_keys == 2)
        CHECK_STR(c.api_keys[1], "key two");
    CHECK_EQ_INT(c.n_allowed_origins, 2);
    CHECK_EQ_INT(c.max_body_bytes, 1 << 20);
    CHECK_EQ_INT(c.kv_cache_memory_bytes, 512 << 20);
    CHECK(c.served_model_name == NULL);
    CHECK(c.metrics_require_key);
    CHECK_MSG(config_validate(&c, err) == 0, "%s", err);
    config_deinit(&c);
}

static void test_yaml_errors(void)
{
    struct cnd_config c;
    char err[CND_ERR_LEN] = "";
    static const struct {
        const char *yaml;
        int rc;
        const char *want;
    } cases[] = {
        {"port: 1\nprot: 2\n", CND_ENOTFOUND, "t.yaml:2: unknown key 'prot'"},
        {"port: 1\n\nport: abc\n", CND_EINVAL, "t.yaml:3: port: 'abc' is not an integer"},
        {"host: [a, b]\n", CND_EINVAL, "t.yaml:1: host: expected a single value"},
        {"port: {a: 1}\n", CND_EINVAL, "t.yaml:1: port: expected a single value"},
        {"- a\n- b\n", CND_EFORMAT, "top level must be a mapping"},
        {"port: [1\n", CND_EFORMAT, "YAML syntax error"},
        {"block_size:\n", CND_EINVAL, "t.yaml:1: block_size: empty value"},
        {"api_keys: [a, ~]\n", CND_EINVAL, "list items must be non-empty"},
        {"CINDER_PORT: 1\n", CND_ENOTFOUND, "unknown key 'CINDER_PORT'"},
        {"max_body_bytes: 12 parsecs\n", CND_EINVAL, "max_body_bytes"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        config_default(&c);
        err[0] = 0;
        int rc = config_load_string(&c, cases[i].yaml, strlen(cases[i].yaml), "t.yaml", err);
        CHECK_MSG(rc == cases[i].rc, "case %zu: rc %d", i, rc);
        CHECK_MSG(strstr(err, cases[i].want) != NULL, "case %zu: '%s'", i, err);
        config_deinit(&c);
    }
    /* an empty file (or only comments) is fine */
    config_default(&c);
    CHECK(config_load_string(&c, "", 0, "e.yaml", err) == 0);
    CHECK(config_load_string(&c, "# x\n", 4, "e.yaml", err) == 0);
    config_deinit(&c);
}

static void test_file_and_precedence(void)
{
    struct cnd_config c;
    char err[CND_ERR_LEN] = "";
    config_default(&c);
    CHECK(config_load_file(&c, "/nonexistent/cinder.yaml", err) == CND_EIO);
    CHECK(strstr(err, "/nonexistent/cinder.yaml") != NULL);

    /* the shipped example must load and leave every default unchanged */
    int rc = config_load_file(&c, CND_SOURCE_DIR "/configs/cinder.yaml", err);
    CHECK_MSG(rc == 0, "%s", err);
    struct cnd_config d;
    config_default(&d);
    char *a = config_dump(&c), *b = config_dump(&d);
    CHECK_STR(a, b);
    free(a);
    free(b);
    config_deinit(&d);

    /* file < env < CLI */
    const char *y = "port: 1000\nthreads: 3\nctx_size: 512\n";
    CHECK(config_load_string(&c, y, strlen(y), "f.yaml", err) == 0);
    char *env[] = {"PATH=/bin", "CINDER_PORT=2000", "CINDER_THREADS=5", "CINDER_CONFIG=/x.yaml",
                   NULL};
    CHECK_MSG(config_apply_env(&c, env, err) == 0, "%s", err);
    CHECK(config_set(&c, "port", "3000", "--port", err) == 0);
    CHECK_EQ_INT(c.port, 3000);
    CHECK_EQ_INT(c.threads, 5);
    CHECK_EQ_INT(c.ctx_size, 512);

    char *bad_env[] = {"CINDER_PROT=1", NULL};
    CHECK(config_apply_env(&c, bad_env, err) == CND_ENOTFOUND);
    CHECK(strstr(err, "CINDER_PROT") != NULL);
    char *bad_val[] = {"CINDER_BLOCK_SIZE=big", NULL};
    CHECK(config_apply_env(&c, bad_val, err) == CND_EINVAL);
    CHECK(strstr(err, "CINDER_BLOCK_SIZE: block_size") != NULL);
    config_deinit(&c);
}

static void test_validate(void)
{
    struct cnd_config c;
    char err[CND_ERR_LEN] = "";
    config_default(&c);
    CHECK(config_validate(&c, err) == CND_EINVAL); /* no model */
    CHECK(strstr(err, "model") != NULL);
    config_set(&c, "random_weights", "mid", "x", err);
    CHECK(config_validate(&c, err) == 0);
    config_set(&c, "block_size", "24", "x", err);
    CHECK(config_validate(&c, err) == CND_EINVAL);
    config_set(&c, "block_size", "32", "x", err);
    config_set(&c, "allowed_origins", "example.com", "x", err);
    CHECK(config_validate(&c, err) == CND_EINVAL);
    config_set(&c, "allowed_origins", "http://example.com,*", "x", err);
    CHECK(config_validate(&c, err) == 0);
    config_set(&c, "api_keys", "secret", "x", err);
    char *dump = config_dump(&c);
    CHECK(strstr(dump, "secret") == NULL && strstr(dump, "<redacted>") != NULL);
    free(dump);
    config_deinit(&c);
}

int main(void)
{
    RUN(test_defaults);
    RUN(test_bytes);
    RUN(test_set);
    RUN(test_flags);
    RUN(test_yaml);
    RUN(test_yaml_errors);
    RUN(test_file_and_precedence);
    RUN(test_validate);
    return test_summary();
}
