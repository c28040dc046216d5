/* config.h: the daemon's settings as one plain struct, filled in layers:
 * defaults < YAML file < CINDER_* environment < command line (DESIGN.md §4).
 * Every key is described once in a table (config_keys) that the loader, the environment pass,
 * the CLI flag lookup and the docs all follow, so a key cannot exist in one place only.
 * Not thread-safe: fill it at start-up, then treat it as read-only. */
#ifndef CINDER_CONFIG_H
#define CINDER_CONFIG_H

#include "cinder/common.h"

struct cnd_config {
    /* HTTP */
    char *host;      /* "127.0.0.1" */
    int32_t port;    /* 8080; 0 = pick a free port */
    char **api_keys; /* empty: no auth */
    int32_t n_api_keys;
    char **allowed_origins; /* CORS; empty: no CORS headers; "*" = any */
    int32_t n_allowed_origins;
    bool metrics_require_key; /* /metrics behind the API key too */
    int64_t max_body_bytes;   /* 8 MiB */
    int64_t max_header_bytes; /* 16 KiB */
    int32_t max_connections;
    int32_t connection_timeout_s; /* idle/read timeout of one connection */
    int32_t drain_timeout_s;      /* on SIGTERM: wait this long for running requests */
    int32_t max_tokens_cap;       /* 0 = no cap beyond the context */

    /* model */
    char *model;             /* path to .gguf or AWQ directory; NULL = none given */
    char *served_model_name; /* NULL: derived from the model file name */
    int32_t ctx_size;        /* 0 = the model's own */
    char *chat_template;     /* path to a template file overriding the model's; NULL = none */
    char *random_weights;    /* benchmark preset (tiny, mid, llama3-8b, qwen2.5-7b) or NULL */
    char *weight_type;       /* "f16" etc., used with random_weights */

    /* compute */
    int32_t threads; /* 0 = all cores */
    char *device;    /* "auto" | "cpu" | "cuda" | "cuda:N" */

    /* KV cache and scheduling (vLLM's names) */
    int64_t kv_cache_memory_bytes; /* > 0: absolute budget ... */
    double kv_cache_memory_frac;   /* ... else this fraction (0,1] of free memory */
    int32_t block_size;            /* tokens per KV block */
    char *kv_cache_type;           /* "f16" | "f32" */
    int32_t max_num_batched_tokens;
    int32_t max_num_prefill_tokens; /* 0 = no cap */
    int32_t max_num_seqs;
    int32_t max_waiting; /* beyond this, 503 + Retry-After */
    int32_t engine_stall_timeout_s;

    /* logging */
    char *log_level; /* "debug" | "info" | "warn" | "error" | "none" */
};

enum config_type {
    CONFIG_TYPE_STRING,
    CONFIG_TYPE_INT, /* int32_t with a range */
    CONFIG_TYPE_BOOL,
    CONFIG_TYPE_BYTES, /* int64_t, accepts 8MiB, 512k, 2GB ... */
    CONFIG_TYPE_LIST,  /* YAML sequence, or comma-separated in env/CLI */
    CONFIG_TYPE_ENUM,  /* string restricted to choices */
    CONFIG_TYPE_KVMEM, /* bytes with a suffix, or a fraction 0 < x <= 1 */
    CONFIG_TYPE_DEVICE,
};

/* One key. All strings are static. */
struct config_key {
    const char *name;       /* YAML key, e.g. "ctx_size" */
    const char *env;        /* "CINDER_CTX_SIZE" */
    const char *flag;       /* "--ctx-size" */
    const char *short_flag; /* "-c" or NULL */
    enum config_type type;
    const char *def;     /* default, as it would be written in YAML ("" = unset) */
    const char *choices; /* ENUM: "f16|f32"; else NULL */
    int64_t min, max;    /* INT and BYTES */
    const char *help;    /* one line */
};

/* The key table; *n gets its length. Static storage. */
const struct config_key *config_keys(size_t *n);
/* Look a key up by YAML name, env name, or CLI flag ("--ctx-size", "--ctx_size", "-c");
 * NULL when there is none. */
const struct config_key *config_find_key(const char *name);
const struct config_key *config_find_flag(const char *flag);

/* Fill cfg with the defaults. Always succeeds; pair with config_deinit. */
void config_default(struct cnd_config *cfg);
void config_deinit(struct cnd_config *cfg);

/* Set one key from its string form. origin names where the value came from ("--port",
 * "CINDER_PORT", "cinder.yaml:12") and starts the error message. A list value is split on
 * commas; an empty string empties it. Returns 0, CND_ENOTFOUND for an unknown key,
 * or CND_EINVAL for a bad value. */
int config_set(struct cnd_config *cfg, const char *key, const char *value, const char *origin,
               char *err);

/* Apply a YAML file: a mapping of keys to scalars (lists may be sequences). Unknown keys,
 * bad values and syntax errors are errors naming path:line and the key. */
int config_load_file(struct cnd_config *cfg, const char *path, char *err);
/* Same, from memory; name is used in messages. */
int config_load_string(struct cnd_config *cfg, const char *yaml, size_t len, const char *name,
                       char *err);

/* Apply CINDER_<KEY> variables from envp (NULL-terminated "K=V" strings; NULL = environ).
 * CINDER_CONFIG is skipped (the CLI reads it as the file path); other unknown CINDER_*
 * names are errors, so a typo does not go unnoticed. */
int config_apply_env(struct cnd_config *cfg, char *const *envp, char *err);

/* Checks across keys, after all layers are applied. */
int config_validate(const struct cnd_config *cfg, char *err);

/* Write the effective settings as YAML (for `--print-config` and logs; API keys redacted).
 * Returns a malloc'd string the caller frees. */
char *config_dump(const struct cnd_config *cfg);

/* Parse "8MiB", "512k", "2GB", "1024" into bytes (binary for Ki/Mi/Gi/Ti and bare k/m/g/t,
 * decimal for KB/MB/GB/TB). Returns 0 or CND_EINVAL. */
int config_parse_bytes(const char *s, int64_t *out);

#endif
