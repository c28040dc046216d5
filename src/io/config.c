/* config.c: settings from defaults, a YAML file, CINDER_* variables and flags.
 *
 * One table (config_table) names every key once: its YAML name, env variable, flag, type,
 * default and range. Defaults are written as strings and applied through the same setter as
 * every other layer, so the documented default is the parsed default, and a bad default would
 * fail the unit test rather than hide. Each layer simply overwrites what came before, which is
 * all "defaults < file < env < CLI" needs as long as the caller applies them in that order.
 * Lists are replaced, never merged: a later layer that sets api_keys sets all of them. */
#include "cinder/config.h"
#include "cinder/buf.h"
#include "cinder/log.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

extern char **environ;

#define KEY(n, e, f, sf, t, d, c, lo, hi, off, h)                                                  \
    {                                                                                              \
        {n, "CINDER_" e, "--" f, sf, t, d, c, lo, hi, h}, off                                      \
    }

struct config_entry {
    struct config_key key;
    size_t offset; /* of the field in struct cnd_config; kvmem: of kv_cache_memory_bytes */
};

#define OFF(field) offsetof(struct cnd_config, field)
#define MiB        (1024LL * 1024)

static const struct config_entry config_table[] = {
    KEY("host", "HOST", "host", NULL, CONFIG_TYPE_STRING, "127.0.0.1", NULL, 0, 0, OFF(host),
        "address to listen on (0.0.0.0 for all interfaces)"),
    KEY("port", "PORT", "port", NULL, CONFIG_TYPE_INT, "8080", NULL, 0, 65535, OFF(port),
        "TCP port; 0 picks a free one"),
    KEY("model", "MODEL", "model", "-m", CONFIG_TYPE_STRING, "", NULL, 0, 0, OFF(model),
        "path to the model (.gguf file; AWQ checkpoints are not supported yet)"),
    KEY("served_model_name", "SERVED_MODEL_NAME", "served-model-name", NULL, CONFIG_TYPE_STRING, "",
        NULL, 0, 0, OFF(served_model_name),
        "model id shown in /v1/models and responses; empty: the file name"),
    KEY("ctx_size", "CTX_SIZE", "ctx-size", "-c", CONFIG_TYPE_INT, "0", NULL, 0, 16 * 1024 * 1024,
        OFF(ctx_size), "context length in tokens; 0 = the model's own"),
    KEY("threads", "THREADS", "threads", "-t", CONFIG_TYPE_INT, "0", NULL, 0, 4096, OFF(threads),
        "CPU worker threads; 0 = all cores"),
    KEY("device", "DEVICE", "device", NULL, CONFIG_TYPE_DEVICE, "auto", NULL, 0, 0, OFF(device),
        "auto | cpu | cuda | cuda:N"),
    KEY("api_keys", "API_KEYS", "api-keys", NULL, CONFIG_TYPE_LIST, "", NULL, 0, 0, OFF(api_keys),
        "accepted bearer keys; empty: no authentication"),
    KEY("allowed_origins", "ALLOWED_ORIGINS", "allowed-origins", NULL, CONFIG_TYPE_LIST, "", NULL,
        0, 0, OFF(allowed_origins), "CORS origins allowed to call the API; \"*\" = any"),
    KEY("metrics_require_key", "METRICS_REQUIRE_KEY", "metrics-require-key", NULL, CONFIG_TYPE_BOOL,
        "false", NULL, 0, 0, OFF(metrics_require_key), "ask for an API key on /metrics too"),
    KEY("max_body_bytes", "MAX_BODY_BYTES", "max-body-bytes", NULL, CONFIG_TYPE_BYTES, "8MiB", NULL,
        1024, 1024 * MiB, OFF(max_body_bytes), "largest request body accepted (413 above)"),
    KEY("max_header_bytes", "MAX_HEADER_BYTES", "max-header-bytes", NULL, CONFIG_TYPE_BYTES,
        "16KiB", NULL, 1024, 16 * MiB, OFF(max_header_bytes),
        "memory per connection for the request line and headers"),
    KEY("max_connections", "MAX_CONNECTIONS", "max-connections", NULL, CONFIG_TYPE_INT, "512", NULL,
        1, 1000000, OFF(max_connections), "concurrent HTTP connections"),
    KEY("connection_timeout_s", "CONNECTION_TIMEOUT_S", "connection-timeout-s", NULL,
        CONFIG_TYPE_INT, "60", NULL, 0, 86400, OFF(connection_timeout_s),
        "idle/read timeout of a connection in seconds; 0 = none"),
    KEY("drain_timeout_s", "DRAIN_TIMEOUT_S", "drain-timeout-s", NULL, CONFIG_TYPE_INT, "30", NULL,
        0, 86400, OFF(drain_timeout_s), "on SIGTERM, seconds to let running requests finish"),
    KEY("max_tokens_cap", "MAX_TOKENS_CAP", "max-tokens-cap", NULL, CONFIG_TYPE_INT, "0", NULL, 0,
        16 * 1024 * 1024, OFF(max_tokens_cap),
        "upper bound on max_tokens of any request; 0 = context only"),
    KEY("chat_template", "CHAT_TEMPLATE", "chat-template", NULL, CONFIG_TYPE_STRING, "", NULL, 0, 0,
        OFF(chat_template), "file with a Jinja chat template overriding the model's"),
    KEY("log_level", "LOG_LEVEL", "log-level", NULL, CONFIG_TYPE_ENUM, "info",
        "debug|info|warn|error|none", 0, 0, OFF(log_level), "debug | info | warn | error | none"),
    KEY("kv_cache_memory", "KV_CACHE_MEMORY", "kv-cache-memory", NULL, CONFIG_TYPE_KVMEM, "0.5",
        NULL, 0, 0, OFF(kv_cache_memory_bytes),
        "KV cache budget: bytes (2GiB, 512MiB) or a fraction 0<x<=1 of free memory after weights"),
    KEY("block_size", "BLOCK_SIZE", "block-size", NULL, CONFIG_TYPE_INT, "16", NULL, 1, 1024,
        OFF(block_size), "tokens per KV cache block (a power of two)"),
    KEY("kv_cache_type", "KV_CACHE_TYPE", "kv-cache-type", NULL, CONFIG_TYPE_ENUM, "f16", "f16|f32",
        0, 0, OFF(kv_cache_type), "element type of the KV cache: f16 | f32"),
    KEY("max_num_batched_tokens", "MAX_NUM_BATCHED_TOKENS", "max-num-batched-tokens", NULL,
        CONFIG_TYPE_INT, "2048", NULL, 1, 1 << 24, OFF(max_num_batched_tokens),
        "token budget of one engine step (decode tokens + prefill chunks)"),
    KEY("max_num_prefill_tokens", "MAX_NUM_PREFILL_TOKENS", "max-num-prefill-tokens", NULL,
        CONFIG_TYPE_INT, "48", NULL, 0, 1 << 24, OFF(max_num_prefill_tokens),
        "prompt tokens computed per step at most while others decode; 0 = no cap"),
    KEY("max_num_seqs", "MAX_NUM_SEQS", "max-num-seqs", NULL, CONFIG_TYPE_INT, "256", NULL, 1,
        65536, OFF(max_num_seqs), "most requests running at once"),
    KEY("max_waiting", "MAX_WAITING", "max-waiting", NULL, CONFIG_TYPE_INT, "1024", NULL, 0,
        1 << 24, OFF(max_waiting), "queued requests beyond which new ones get 503"),
    KEY("engine_stall_timeout_s", "ENGINE_STALL_TIMEOUT_S", "engine-stall-timeout-s", NULL,
        CONFIG_TYPE_INT, "120", NULL, 0, 86400, OFF(engine_stall_timeout_s),
        "seconds without engine progress before /health fails; 0 = never"),
    KEY("random_weights", "RANDOM_WEIGHTS", "random-weights", NULL, CONFIG_TYPE_STRING, "", NULL, 0,
        0, OFF(random_weights),
        "benchmark: serve a seeded random-weight model of this preset (tiny, mid, llama3-8b, "
        "qwen2.5-7b) with weight_type weights instead of a model file"),
    KEY("weight_type", "WEIGHT_TYPE", "weight-type", NULL, CONFIG_TYPE_ENUM, "f16",
        "f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q2_k|q3_k|q4_k|q5_k|q6_k", 0, 0, OFF(weight_type),
        "weight type used with random_weights"),
};

#define CONFIG_N_KEYS ARRAY_SIZE(config_table)

const struct config_key *config_keys(size_t *n)
{
    /* callers index a plain array of config_key, so copy the keys out of the wrapper once */
    static struct config_key keys[CONFIG_N_KEYS];
    static bool built;
    if (!built) {
        for (size_t i = 0; i < CONFIG_N_KEYS; i++)
            keys[i] = config_table[i].key;
        built = true;
    }
    if (n)
        *n = CONFIG_N_KEYS;
    return keys;
}

static const struct config_entry *config_entry_find(const char *name)
{
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        const struct config_key *k = &config_table[i].key;
        if (strcmp(k->name, name) == 0 || strcmp(k->env, name) == 0)
            return &config_table[i];
    }
    return NULL;
}

const struct config_key *config_find_key(const char *name)
{
    const struct config_entry *e = name ? config_entry_find(name) : NULL;
    return e ? &e->key : NULL;
}

const struct config_key *config_find_flag(const char *flag)
{
    if (!flag)
        return NULL;
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        const struct config_key *k = &config_table[i].key;
        if (k->short_flag && strcmp(k->short_flag, flag) == 0)
            return k;
        if (strncmp(flag, "--", 2) != 0)
            continue;
        /* accept --ctx-size and --ctx_size alike */
        const char *a = flag + 2, *b = k->flag + 2;
        while (*a && *b && (*a == *b || (*a == '_' && *b == '-')))
            a++, b++;
        if (!*a && !*b)
            return k;
    }
    return NULL;
}

/* ---- value parsing ---- */

static bool config_is_blank(const char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return *s == 0;
}

static int config_parse_int(const char *s, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || errno)
        return CND_EINVAL;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return CND_EINVAL;
    *out = v;
    return 0;
}

static int config_parse_bool(const char *s, bool *out)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return CND_EINVAL;
}

int config_parse_bytes(const char *s, int64_t *out)
{
    char *end;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return CND_EINVAL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !(v >= 0))
        return CND_EINVAL;
    while (isspace((unsigned char)*end))
        end++;
    char unit = (char)tolower((unsigned char)*end);
    double mul = 1;
    if (unit) {
        static const char units[] = "kmgt";
        const char *u = strchr(units, unit);
        if (!u)
            return CND_EINVAL;
        int exp = (int)(u - units) + 1;
        end++;
        bool decimal = false;
        if (*end == 'i' || *end == 'I') {
            end++;
            if (*end == 'B' || *end == 'b')
                end++;
        } else if (*end == 'B' || *end == 'b') {
            decimal = true; /* KB, MB, GB: SI, as disk vendors and Kubernetes' "G" use */
            end++;
        }
        for (int i = 0; i < exp; i++)
            mul *= decimal ? 1000.0 : 1024.0;
    } else if (*end) {
        return CND_EINVAL;
    }
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return CND_EINVAL;
    double bytes = v * mul;
    if (bytes > 9.0e18 || bytes != floor(bytes))
        return CND_EINVAL;
    *out = (int64_t)bytes;
    return 0;
}

static bool config_enum_has(const char *choices, const char *s)
{
    size_t n = strlen(s);
    const char *p = choices;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncasecmp(p, s, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static bool config_device_ok(const char *s)
{
    if (!strcmp(s, "auto") || !strcmp(s, "cpu") || !strcmp(s, "cuda"))
        return true;
    if (strncmp(s, "cuda:", 5) != 0 || !s[5])
        return false;
    for (const char *p = s + 5; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return strlen(s + 5) <= 4;
}

static void config_list_free(char ***items, int32_t *n)
{
    for (int32_t i = 0; i < *n; i++)
        free((*items)[i]);
    free(*items);
    *items = NULL;
    *n = 0;
}

static void config_list_push(char ***items, int32_t *n, const char *s, size_t len)
{
    *items = xrealloc(*items, sizeof(char *) * (size_t)(*n + 1));
    (*items)[(*n)++] = xstrndup(s, len);
}

/* Trimmed comma-separated items; empty items are dropped. */
static void config_list_set(char ***items, int32_t *n, const char *value)
{
    config_list_free(items, n);
    const char *p = value;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *a = p;
        while (a < e && isspace((unsigned char)*a))
            a++;
        const char *b = e;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a)
            config_list_push(items, n, a, (size_t)(b - a));
        p = comma ? comma + 1 : e;
    }
}

static int32_t *config_list_count(struct cnd_config *cfg, size_t offset)
{
    if (offset == OFF(api_keys))
        return &cfg->n_api_keys;
    CND_ASSERT(offset == OFF(allowed_origins));
    return &cfg->n_allowed_origins;
}

static int config_set_entry(struct cnd_config *cfg, const struct config_entry *e, const char *value,
                            const char *origin, char *err)
{
    const struct config_key *k = &e->key;
    char *field = (char *)cfg + e->offset;
    int64_t iv = 0;
    switch (k->type) {
    case CONFIG_TYPE_STRING: {
        char **p = (char **)(void *)field;
        free(*p);
        *p = config_is_blank(value) ? NULL : xstrdup(value);
        return 0;
    }
    case CONFIG_TYPE_ENUM:
    case CONFIG_TYPE_DEVICE: {
        bool ok = k->type == CONFIG_TYPE_ENUM ? config_enum_has(k->choices, value)
                                              : config_device_ok(value);
        if (!ok) {
            err_set(err, "%s: %s: '%s' is not one of %s", origin, k->name, value,
                    k->type == CONFIG_TYPE_ENUM ? k->choices : "auto|cpu|cuda|cuda:N");
            return CND_EINVAL;
        }
        char **p = (char **)(void *)field;
        free(*p);
        *p = xstrdup(value);
        for (char *c = *p; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        return 0;
    }
    case CONFIG_TYPE_INT:
        if (config_parse_int(value, &iv) < 0) {
            err_set(err, "%s: %s: '%s' is not an integer", origin, k->name, value);
            return CND_EINVAL;
        }
        if (iv < k->min || iv > k->max) {
            err_set(err, "%s: %s: %lld is out of range [%lld, %lld]", origin, k->name,
                    (long long)iv, (long long)k->min, (long long)k->max);
            return CND_EINVAL;
        }
        *(int32_t *)(void *)field = (int32_t)iv;
        return 0;
    case CONFIG_TYPE_BYTES:
        if (config_parse_bytes(value, &iv) < 0) {
            err_set(err, "%s: %s: '%s' is not a byte size (e.g. 8MiB, 512k, 1048576)", origin,
                    k->name, value);
            return CND_EINVAL;
        }
        if (iv < k->min || iv > k->max) {
            err_set(err, "%s: %s: %lld bytes is out of range [%lld, %lld]", origin, k->name,
                    (long long)iv, (long long)k->min, (long long)k->max);
            return CND_EINVAL;
        }
        *(int64_t *)(void *)field = iv;
        return 0;
    case CONFIG_TYPE_BOOL: {
        bool b = false;
        if (config_parse_bool(value, &b) < 0) {
            err_set(err, "%s: %s: '%s' is not a boolean (true/false)", origin, k->name, value);
            return CND_EINVAL;
        }
        *(bool *)(void *)field = b;
        return 0;
    }
    case CONFIG_TYPE_LIST: {
        char ***items = (char ***)(void *)field;
        config_list_set(items, config_list_count(cfg, e->offset), value);
        return 0;
    }
    case CONFIG_TYPE_KVMEM: {
        /* A plain number up to 1 (with a dot or not) is a fraction; anything else is bytes.
         * "1" is therefore "all free memory", never one byte: nobody wants a 1-byte cache. */
        char *end;
        errno = 0;
        double f = strtod(value, &end);
        while (end && isspace((unsigned char)*end))
            end++;
        if (end != value && !errno && !*end && f <= 1.0) {
            if (!(f > 0)) {
                err_set(err, "%s: %s: a fraction must be in (0, 1], got '%s'", origin, k->name,
                        value);
                return CND_EINVAL;
            }
            cfg->kv_cache_memory_frac = f;
            cfg->kv_cache_memory_bytes = 0;
            return 0;
        }
        if (config_parse_bytes(value, &iv) < 0 || iv < 1024 * 1024) {
            err_set(err,
                    "%s: %s: '%s' is neither a fraction in (0, 1] nor a size of at least 1MiB "
                    "(e.g. 2GiB)",
                    origin, k->name, value);
            return CND_EINVAL;
        }
        cfg->kv_cache_memory_bytes = iv;
        cfg->kv_cache_memory_frac = 0;
        return 0;
    }
    }
    CND_PANIC("config: bad key type %d", (int)k->type);
}

int config_set(struct cnd_config *cfg, const char *key, const char *value, const char *origin,
               char *err)
{
    const struct config_entry *e = config_entry_find(key);
    if (!origin)
        origin = "config";
    if (!e) {
        err_set(err, "%s: unknown key '%s'", origin, key);
        return CND_ENOTFOUND;
    }
    return config_set_entry(cfg, e, value ? value : "", origin, err);
}

void config_default(struct cnd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    char err[CND_ERR_LEN];
    for (size_t i = 0; i < CONFIG_N_KEYS; i++)
        if (config_set_entry(cfg, &config_table[i], config_table[i].key.def, "default", err) < 0)
            CND_PANIC("config default: %s", err);
}

void config_deinit(struct cnd_config *cfg)
{
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        const struct config_entry *e = &config_table[i];
        char *field = (char *)cfg + e->offset;
        switch (e->key.type) {
        case CONFIG_TYPE_STRING:
        case CONFIG_TYPE_ENUM:
        case CONFIG_TYPE_DEVICE:
            free(*(char **)(void *)field);
            *(char **)(void *)field = NULL;
            break;
        case CONFIG_TYPE_LIST:
            config_list_free((char ***)(void *)field, config_list_count(cfg, e->offset));
            break;
        default: break;
        }
    }
}

/* ---- YAML ---- */

static const char *config_scalar(yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A YAML null (~, null, or nothing) reads as an empty value: unset for strings and lists. */
static bool config_yaml_is_null(yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = config_scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int config_apply_node(struct cnd_config *cfg, yaml_document_t *doc,
                             const struct config_entry *e, yaml_node_t *val, const char *where,
                             char *err)
{
    if (val->type == YAML_SCALAR_NODE) {
        const char *s = config_yaml_is_null(val) ? "" : config_scalar(val);
        if (!*s && e->key.type != CONFIG_TYPE_STRING && e->key.type != CONFIG_TYPE_LIST) {
            err_set(err, "%s: %s: empty value", where, e->key.name);
            return CND_EINVAL;
        }
        return config_set_entry(cfg, e, s, where, err);
    }
    if (val->type != YAML_SEQUENCE_NODE || e->key.type != CONFIG_TYPE_LIST) {
        err_set(err, "%s: %s: expected a single value, not a %s", where, e->key.name,
                val->type == YAML_SEQUENCE_NODE ? "list" : "mapping");
        return CND_EINVAL;
    }
    char ***items = (char ***)(void *)((char *)cfg + e->offset);
    int32_t *n = config_list_count(cfg, e->offset);
    config_list_free(items, n);
    for (yaml_node_item_t *it = val->data.sequence.items.start; it < val->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        if (!item || item->type != YAML_SCALAR_NODE || config_yaml_is_null(item)) {
            err_set(err, "%s:%lu: %s: list items must be non-empty strings", where,
                    item ? (unsigned long)item->start_mark.line + 1 : 0UL, e->key.name);
            return CND_EINVAL;
        }
        const char *s = config_scalar(item);
        config_list_push(items, n, s, strlen(s));
    }
    return 0;
}

int config_load_string(struct cnd_config *cfg, const char *yaml, size_t len, const char *name,
                       char *err)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        err_set(err, "%s: cannot initialise the YAML parser", name);
        return CND_ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        err_set(err, "%s:%lu: YAML syntax error: %s", name,
                (unsigned long)parser.problem_mark.line + 1,
                parser.problem ? parser.problem : "unknown");
        yaml_parser_delete(&parser);
        return CND_EFORMAT;
    }
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || config_yaml_is_null(root)) {
        goto out; /* empty file or only comments: nothing to change */
    }
    if (root->type != YAML_MAPPING_NODE) {
        err_set(err, "%s:%lu: the top level must be a mapping of key: value", name,
                (unsigned long)root->start_mark.line + 1);
        rc = CND_EFORMAT;
        goto out;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        char where[CND_ERR_LEN / 2];
        snprintf(where, sizeof(where), "%s:%lu", name,
                 k ? (unsigned long)k->start_mark.line + 1 : 0UL);
        if (!k || !v || k->type != YAML_SCALAR_NODE) {
            err_set(err, "%s: keys must be plain names", where);
            rc = CND_EFORMAT;
            goto out;
        }
        const struct config_entry *e = config_entry_find(config_scalar(k));
        if (!e || strcmp(e->key.name, config_scalar(k)) != 0) {
            err_set(err, "%s: unknown key '%s'", where, config_scalar(k));
            rc = CND_ENOTFOUND;
            goto out;
        }
        if ((rc = config_apply_node(cfg, &doc, e, v, where, err)) < 0)
            goto out;
    }
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

int config_load_file(struct cnd_config *cfg, const char *path, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return CND_EIO;
    }
    struct buf b;
    buf_init(&b);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        err_set(err, "%s: read error", path);
        buf_deinit(&b);
        return CND_EIO;
    }
    int rc = config_load_string(cfg, b.data ? b.data : "", b.len, path, err);
    buf_deinit(&b);
    return rc;
}

int config_apply_env(struct cnd_config *cfg, char *const *envp, char *err)
{
    if (!envp)
        envp = environ;
    for (; envp && *envp; envp++) {
        const char *kv = *envp;
        if (strncmp(kv, "CINDER_", 7) != 0)
            continue;
        const char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        char name[128];
        size_t len = (size_t)(eq - kv);
        if (len >= sizeof(name)) {
            err_set(err, "environment: %.40s...: unknown variable", kv);
            return CND_ENOTFOUND;
        }
        memcpy(name, kv, len);
        name[len] = 0;
        if (!strcmp(name, "CINDER_CONFIG"))
            continue;
        const struct config_entry *e = NULL;
        for (size_t i = 0; i < CONFIG_N_KEYS && !e; i++)
            if (!strcmp(config_table[i].key.env, name))
                e = &config_table[i];
        if (!e) {
            err_set(err, "environment: %s: unknown variable (no config key '%s')", name, name + 7);
            return CND_ENOTFOUND;
        }
        int rc = config_set_entry(cfg, e, eq + 1, name, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int config_validate(const struct cnd_config *cfg, char *err)
{
    if (cfg->block_size & (cfg->block_size - 1)) {
        err_set(err, "block_size: %d is not a power of two", cfg->block_size);
        return CND_EINVAL;
    }
    if (!cfg->model && !cfg->random_weights) {
        err_set(err, "model: no model given (set model, CINDER_MODEL or -m)");
        return CND_EINVAL;
    }
    if (cfg->ctx_size && cfg->max_tokens_cap > cfg->ctx_size) {
        err_set(err, "max_tokens_cap: %d exceeds ctx_size %d", cfg->max_tokens_cap, cfg->ctx_size);
        return CND_EINVAL;
    }
    if (cfg->max_num_batched_tokens < cfg->max_num_seqs) {
        /* every running sequence needs one decode token per step */
        err_set(err, "max_num_batched_tokens (%d) must be >= max_num_seqs (%d)",
                cfg->max_num_batched_tokens, cfg->max_num_seqs);
        return CND_EINVAL;
    }
    for (int32_t i = 0; i < cfg->n_allowed_origins; i++) {
        const char *o = cfg->allowed_origins[i];
        if (strcmp(o, "*") != 0 && strncmp(o, "http://", 7) != 0 &&
            strncmp(o, "https://", 8) != 0) {
            err_set(err, "allowed_origins: '%s' must be \"*\" or start with http:// or https://",
                    o);
            return CND_EINVAL;
        }
    }
    return 0;
}

static void config_dump_str(struct buf *b, const char *s)
{
    buf_append_str(b, "\"");
    for (; s && *s; s++) {
        if (*s == '"' || *s == '\\')
            buf_appendf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            buf_appendf(b, "\\x%02x", (unsigned char)*s);
        else
            buf_append(b, s, 1);
    }
    buf_append_str(b, "\"");
}

char *config_dump(const struct cnd_config *cfg)
{
    struct buf b;
    buf_init(&b);
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        const struct config_entry *e = &config_table[i];
        const char *field = (const char *)cfg + e->offset;
        buf_appendf(&b, "%s: ", e->key.name);
        switch (e->key.type) {
        case CONFIG_TYPE_STRING:
        case CONFIG_TYPE_ENUM:
        case CONFIG_TYPE_DEVICE: {
            const char *s = *(char *const *)(const void *)field;
            if (s)
                config_dump_str(&b, s);
            else
                buf_append_str(&b, "\"\"");
            break;
        }
        case CONFIG_TYPE_INT: buf_appendf(&b, "%d", *(const int32_t *)(const void *)field); break;
        case CONFIG_TYPE_BYTES:
            buf_appendf(&b, "%lld", (long long)*(const int64_t *)(const void *)field);
            break;
        case CONFIG_TYPE_BOOL:
            buf_append_str(&b, *(const bool *)(const void *)field ? "true" : "false");
            break;
        case CONFIG_TYPE_KVMEM:
            if (cfg->kv_cache_memory_bytes > 0)
                buf_appendf(&b, "%lld", (long long)cfg->kv_cache_memory_bytes);
            else
                buf_appendf(&b, "%g", cfg->kv_cache_memory_frac);
            break;
        case CONFIG_TYPE_LIST: {
            char *const *items = *(char **const *)(const void *)field;
            int32_t n = e->offset == OFF(api_keys) ? cfg->n_api_keys : cfg->n_allowed_origins;
            buf_append_str(&b, "[");
            for (int32_t j = 0; j < n; j++) {
                if (j)
                    buf_append_str(&b, ", ");
                config_dump_str(&b, e->offset == OFF(api_keys) ? "<redacted>" : items[j]);
            }
            buf_append_str(&b, "]");
            break;
        }
        }
        buf_append_str(&b, "\n");
    }
    return buf_take(&b, NULL);
}
