/* cli_serve.c: `cinder serve`: settings in layers (defaults < --config FILE or $CINDER_CONFIG <
 * CINDER_* environment < flags), then start-up in order: model, chat template, CPU backend,
 * engine thread, metrics and auth, HTTP daemon, READY=1; then the main thread only waits for
 * signals (and feeds the systemd watchdog while the engine makes progress). On SIGTERM/SIGINT:
 * STOPPING=1, stop accepting, let running requests finish for up to drain_timeout_s (a second
 * signal cuts that short), then tear down in reverse order and exit 0.
 *
 * Signals are blocked before any thread starts, so every thread inherits the mask and only
 * sigtimedwait here ever sees them. */
#include "cinder/auth.h"
#include "cinder/backend.h"
#include "cinder/chat_template.h"
#include "cinder/clock.h"
#include "cinder/config.h"
#include "cinder/device.h"
#include "cinder/engine.h"
#include "cinder/gguf.h"
#include "cinder/http.h"
#include "cinder/log.h"
#include "cinder/metrics.h"
#include "cinder/model.h"
#include "cinder/notify.h"
#include "cinder/request.h"
#include "cinder/status.h"
#include "cinder/tokenizer.h"
#include "cinder/xalloc.h"
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- usage, generated from the key table ---- */

static const char *serve_type_hint(const struct config_key *k)
{
    switch (k->type) {
    case CONFIG_TYPE_STRING: return "STR";
    case CONFIG_TYPE_INT: return "N";
    case CONFIG_TYPE_BOOL: return "[BOOL]";
    case CONFIG_TYPE_BYTES: return "BYTES";
    case CONFIG_TYPE_LIST: return "A,B,..";
    case CONFIG_TYPE_ENUM: return "CHOICE";
    case CONFIG_TYPE_KVMEM: return "BYTES|FRAC";
    case CONFIG_TYPE_DEVICE: return "DEVICE";
    }
    return "VALUE";
}

static void serve_usage(FILE *f)
{
    fprintf(f,
            "usage: cinder serve [-m MODEL.gguf] [--host ADDR] [--port N] [--config FILE] [flags]\n"
            "Serves the OpenAI-compatible API until SIGTERM/SIGINT, then drains and exits 0.\n"
            "Settings: defaults < --config FILE (or $CINDER_CONFIG) < CINDER_* environment < "
            "flags.\n\n"
            "  %-34s %s\n  %-34s %s\n  %-34s %s\n  %-34s %s\n\n",
            "--config FILE", "YAML file of the keys below (configs/cinder.yaml)", "--api-key KEY",
            "accept this bearer key (repeatable; replaces the file's and environment's keys; "
            "$CINDER_API_KEY adds one)",
            "--print-config", "print the effective settings as YAML and exit", "-h, --help",
            "this list");
    size_t n;
    const struct config_key *keys = config_keys(&n);
    for (size_t i = 0; i < n; i++) {
        const struct config_key *k = &keys[i];
        char left[96];
        if (k->short_flag)
            snprintf(left, sizeof(left), "%s, %s %s", k->short_flag, k->flag, serve_type_hint(k));
        else
            snprintf(left, sizeof(left), "%s %s", k->flag, serve_type_hint(k));
        fprintf(f, "  %-34s %s", left, k->help);
        if (k->choices)
            fprintf(f, " (%s)", k->choices);
        if (k->def && *k->def)
            fprintf(f, " [default %s]", k->def);
        fprintf(f, "  {%s}\n", k->env);
    }
    fprintf(f, "\nBOOL flags alone mean true (--metrics-require-key); also --flag=false.\n"
               "Without -m, ../shared/models/stories260K.gguf is used when it exists.\n");
}

/* ---- arguments ---- */

struct serve_args {
    const char *config_path;
    bool print_config;
    const char **api_keys; /* from --api-key */
    int n_api_keys;
};

/* Split "--flag=value"; returns the flag part in buf (NUL-terminated) and *value or NULL. */
static const char *serve_split_flag(const char *arg, char *buf, size_t cap, const char **value)
{
    const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
    if (!eq) {
        *value = NULL;
        return arg;
    }
    snprintf(buf, cap, "%.*s", (int)(eq - arg), arg);
    *value = eq + 1;
    return buf;
}

/* Pass 1: --help, --config, --print-config (everything else is left to pass 2).
 * Returns 0, 1 (usage error, printed), or -1 (help printed). */
static int serve_pass1(int argc, char **argv, struct serve_args *a)
{
    for (int i = 1; i < argc; i++) {
        char fb[128];
        const char *v;
        const char *f = serve_split_flag(argv[i], fb, sizeof(fb), &v);
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) {
            serve_usage(stdout);
            return -1;
        }
        if (!strcmp(f, "--config")) {
            if (!v) {
                if (i + 1 >= argc) {
                    fprintf(stderr, "cinder serve: --config needs a file\n");
                    return 1;
                }
                v = argv[++i];
            }
            a->config_path = v;
        } else if (!strcmp(f, "--print-config")) {
            a->print_config = true;
        }
    }
    return 0;
}

/* Pass 2: every config flag, and --api-key. Returns 0 or 1 (error printed). */
static int serve_pass2(int argc, char **argv, struct cnd_config *cfg, struct serve_args *a)
{
    char err[CND_ERR_LEN];
    for (int i = 1; i < argc; i++) {
        char fb[128];
        const char *v;
        const char *f = serve_split_flag(argv[i], fb, sizeof(fb), &v);
        if (!strcmp(f, "--print-config"))
            continue;
        if (!strcmp(f, "--config")) {
            if (!v)
                i++;
            continue;
        }
        if (!strcmp(f, "--api-key")) {
            if (!v && i + 1 >= argc) {
                fprintf(stderr, "cinder serve: --api-key needs a value\n");
                return 1;
            }
            a->api_keys = xrealloc(a->api_keys, (size_t)(a->n_api_keys + 1) * sizeof(char *));
            a->api_keys[a->n_api_keys++] = v ? v : argv[++i];
            continue;
        }
        const struct config_key *k = f[0] == '-' ? config_find_flag(f) : NULL;
        if (!k) {
            fprintf(stderr, "cinder serve: unknown option '%s' (cinder serve --help lists them)\n",
                    argv[i]);
            return 1;
        }
        if (!v) {
            if (k->type == CONFIG_TYPE_BOOL) {
                /* a bare boolean flag means true; an explicit value may follow */
                const char *next = i + 1 < argc ? argv[i + 1] : NULL;
                bool explicit_value =
                    next &&
                    (!strcasecmp(next, "true") || !strcasecmp(next, "false") ||
                     !strcasecmp(next, "yes") || !strcasecmp(next, "no") || !strcmp(next, "1") ||
                     !strcmp(next, "0") || !strcasecmp(next, "on") || !strcasecmp(next, "off"));
                v = explicit_value ? argv[++i] : "true";
            } else if (i + 1 >= argc) {
                fprintf(stderr, "cinder serve: %s needs a value\n", f);
                return 1;
            } else {
                v = argv[++i];
            }
        }
        if (config_set(cfg, k->name, v, f, err) != 0) {
            fprintf(stderr, "cinder serve: %s\n", err);
            return 1;
        }
    }
    if (a->n_api_keys > 0) {
        /* the flag's keys replace what file and environment said, as any CLI setting does */
        for (int32_t i = 0; i < cfg->n_api_keys; i++)
            free(cfg->api_keys[i]);
        free(cfg->api_keys);
        cfg->api_keys = xcalloc((size_t)a->n_api_keys, sizeof(char *));
        cfg->n_api_keys = a->n_api_keys;
        for (int i = 0; i < a->n_api_keys; i++) {
            if (!a->api_keys[i][0]) {
                fprintf(stderr, "cinder serve: --api-key: an empty key is not allowed\n");
                return 1;
            }
            cfg->api_keys[i] = xstrdup(a->api_keys[i]);
        }
    }
    return 0;
}

/* The CINDER_* layer. CINDER_API_KEY (one key, the name OpenAI's SDKs use for theirs) is not a
 * config key: it adds its key to the api_keys of the file and of CINDER_API_KEYS. */
extern char **environ;

static int serve_apply_env(struct cnd_config *cfg, char *err)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **envp = xcalloc(n + 1, sizeof(char *));
    const char *single = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "CINDER_API_KEY=", 15) == 0)
            single = environ[i] + 15;
        else
            envp[k++] = environ[i];
    }
    int rc = config_apply_env(cfg, envp, err);
    free(envp);
    if (rc != 0 || !single)
        return rc;
    if (!*single) {
        err_set(err, "CINDER_API_KEY: an empty key is not allowed");
        return CND_EINVAL;
    }
    cfg->api_keys = xrealloc(cfg->api_keys, (size_t)(cfg->n_api_keys + 1) * sizeof(char *));
    cfg->api_keys[cfg->n_api_keys++] = xstrdup(single);
    return 0;
}

/* ---- metrics observer (engine thread; must not block) ---- */

static void serve_on_finished(void *ud, const struct request *req)
{
    struct metrics *m = ud;
    metrics_inc_request_success(m, request_finish_reason(req->status));
    metrics_add_prompt_tokens(m, req->n_prompt);
    metrics_add_generation_tokens(m, req->n_generated);
    metrics_observe_e2e(m, (double)(now_us() - req->t_arrival_us) / 1e6);
}

static void serve_on_first_token(void *ud, const struct request *req, double ttft_s)
{
    CND_UNUSED(req);
    metrics_observe_ttft(ud, ttft_s);
}

static void serve_on_token(void *ud, const struct request *req, double inter_token_s)
{
    CND_UNUSED(req);
    metrics_observe_inter_token(ud, inter_token_s);
}

static void serve_on_scheduled(void *ud, const struct request *req, double queue_s)
{
    CND_UNUSED(req);
    metrics_observe_queue_time(ud, queue_s);
}

static void serve_on_preempt(void *ud, const struct request *req)
{
    CND_UNUSED(req);
    metrics_add_preemptions(ud, 1);
}

static void serve_on_prefix_cache(void *ud, int64_t n_queried, int64_t n_hit)
{
    metrics_add_prefix_cache(ud, n_queried, n_hit);
}

/* ---- start-up helpers ---- */

static char *serve_read_file(const char *path, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct buf b;
    buf_init(&b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        buf_append(&b, chunk, n);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        err_set(err, "%s: read error", path);
        buf_deinit(&b);
        return NULL;
    }
    buf_append(&b, "", 0);
    size_t len;
    char *s = buf_take(&b, &len);
    return s ? s : xstrdup("");
}

/* MemAvailable from /proc/meminfo in bytes, or 0 when unknown. */
static int64_t serve_mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return 0;
    char line[256];
    long long kib = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %lld kB", &kib) == 1)
            break;
    fclose(f);
    return (int64_t)kib * 1024;
}

/* The KV pool budget: an absolute size, or a fraction of available memory, never more than
 * max_num_seqs full-length sequences need. */
static int64_t serve_kv_bytes(const struct cnd_config *cfg, const struct model *m, int32_t n_ctx,
                              enum cnd_dtype kv_type)
{
    int64_t per_token =
        2LL * m->hp.n_layer * m->hp.n_head_kv * m->hp.head_dim * (kv_type == CND_DTYPE_F32 ? 4 : 2);
    int64_t need = per_token * n_ctx * cfg->max_num_seqs;
    if (cfg->kv_cache_memory_bytes > 0)
        return cfg->kv_cache_memory_bytes;
    int64_t avail = serve_mem_available();
    if (avail <= 0)
        return need;
    int64_t budget = (int64_t)((double)avail * cfg->kv_cache_memory_frac);
    if (budget < per_token * n_ctx)
        log_warn("KV budget %lld bytes holds less than one %d-token sequence", (long long)budget,
                 n_ctx);
    return CND_MIN(budget, need);
}

static struct chat_template *serve_load_template(const struct cnd_config *cfg,
                                                 const struct model *m, bool *failed, char *err)
{
    *failed = false;
    char terr[CND_ERR_LEN];
    if (cfg->chat_template && *cfg->chat_template) {
        char *src = serve_read_file(cfg->chat_template, err);
        if (!src) {
            *failed = true;
            return NULL;
        }
        struct chat_template *t = chat_template_create(src, terr);
        free(src);
        if (!t) {
            err_set(err, "chat template %s: %s", cfg->chat_template, terr);
            *failed = true;
        }
        return t;
    }
    char *src = m->gguf ? gguf_get_str_dup(m->gguf, "tokenizer.chat_template") : NULL;
    if (!src) {
        log_info("the model has no chat template: chat requests use the plain fallback "
                 "(\"role: content\" lines)");
        return NULL;
    }
    struct chat_template *t = chat_template_create(src, terr);
    free(src);
    if (!t)
        log_warn("the model's chat template does not parse (%s): chat requests use the plain "
                 "fallback; pass --chat-template FILE to fix",
                 terr);
    return t;
}

/* ---- signals ---- */

static int serve_wait_signal(const sigset_t *set, double timeout_s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)timeout_s;
    ts.tv_nsec = (long)((timeout_s - (double)ts.tv_sec) * 1e9);
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

/* ---- main ---- */

int cli_serve_main(int argc, char **argv)
{
    struct serve_args a;
    memset(&a, 0, sizeof(a));
    int prc = serve_pass1(argc, argv, &a);
    if (prc != 0)
        return prc < 0 ? 0 : 2;

    char err[CND_ERR_LEN] = "";
    struct cnd_config cfg;
    config_default(&cfg);
    int exit_code = 1;
    struct model *model = NULL;
    struct chat_template *tmpl = NULL;
    struct backend *be = NULL;
    struct engine *engine = NULL;
    struct metrics *metrics = NULL;
    struct auth *auth = NULL;
    struct http_server *http = NULL;

    const char *cfg_path = a.config_path ? a.config_path : getenv("CINDER_CONFIG");
    if (cfg_path && *cfg_path && config_load_file(&cfg, cfg_path, err) != 0) {
        fprintf(stderr, "cinder serve: %s\n", err);
        exit_code = 2;
        goto out;
    }
    if (serve_apply_env(&cfg, err) != 0) {
        fprintf(stderr, "cinder serve: %s\n", err);
        exit_code = 2;
        goto out;
    }
    if (serve_pass2(argc, argv, &cfg, &a) != 0) {
        exit_code = 2;
        goto out;
    }
    if (!cfg.model && !cfg.random_weights) {
        const char *def = cli_default_model();
        if (def)
            config_set(&cfg, "model", def, "default", NULL);
    }
    if (!cfg.model && !cfg.random_weights) {
        fprintf(stderr, "cinder serve: no model given: pass -m/--model PATH.gguf (or set "
                        "model: in the --config file, or CINDER_MODEL); the default "
                        "../shared/models/stories260K.gguf does not exist here\n");
        exit_code = 2;
        goto out;
    }
    if (config_validate(&cfg, err) != 0) {
        fprintf(stderr, "cinder serve: %s\n", err);
        exit_code = 2;
        goto out;
    }
    if (a.print_config) {
        char *dump = config_dump(&cfg);
        fputs(dump, stdout);
        free(dump);
        exit_code = 0;
        goto out;
    }
    enum log_level ll;
    if (cfg.log_level && log_level_parse(cfg.log_level, &ll) == 0)
        log_set_level(ll);

    /* block the stop signals in every thread we are about to start */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* model */
    int64_t t0 = now_us();
    if (cfg.random_weights) {
        enum cnd_dtype wt = CND_DTYPE_F16;
        dtype_from_name(cfg.weight_type, &wt);
        model = model_create_random(cfg.random_weights, wt, 42, err);
    } else {
        model = model_load(cfg.model, err);
    }
    if (!model) {
        fprintf(stderr, "cinder serve: %s\n", err);
        goto out;
    }
    const char *served =
        cfg.served_model_name && *cfg.served_model_name ? cfg.served_model_name : model->name;
    int32_t n_ctx = cfg.ctx_size > 0 ? cfg.ctx_size : model->hp.n_ctx_train;
    if (n_ctx <= 0)
        n_ctx = 2048;
    if (cfg.max_tokens_cap > n_ctx) {
        fprintf(stderr, "cinder serve: max_tokens_cap %d exceeds the context %d\n",
                cfg.max_tokens_cap, n_ctx);
        exit_code = 2;
        goto out;
    }
    bool tmpl_failed;
    tmpl = serve_load_template(&cfg, model, &tmpl_failed, err);
    if (tmpl_failed) {
        fprintf(stderr, "cinder serve: %s\n", err);
        exit_code = 2;
        goto out;
    }

    /* compute */
    struct device_spec dspec;
    struct device_choice dchoice;
    if (device_parse(cfg.device ? cfg.device : "auto", &dspec, err) != 0 ||
        device_select(&dspec, model->weight_bytes, &dchoice, err) != 0) {
        fprintf(stderr, "cinder serve: device: %s\n", err);
        exit_code = 2;
        goto out;
    }
    be = device_create_backend(&dchoice, cfg.threads, err);
    if (!be) { /* the engine uploads the weights (load_model) */
        fprintf(stderr, "cinder serve: backend: %s\n", err);
        goto out;
    }

    metrics = metrics_create(served);
    struct engine_params ep = engine_default_params();
    ep.model = model;
    ep.backend = be;
    ep.n_ctx = n_ctx;
    ep.block_size = cfg.block_size;
    ep.kv_type =
        cfg.kv_cache_type && !strcmp(cfg.kv_cache_type, "f32") ? CND_DTYPE_F32 : CND_DTYPE_F16;
    ep.kv_cache_bytes = serve_kv_bytes(&cfg, model, n_ctx, ep.kv_type);
    ep.max_num_seqs = cfg.max_num_seqs;
    ep.max_num_batched_tokens = cfg.max_num_batched_tokens;
    ep.max_num_prefill_tokens = cfg.max_num_prefill_tokens;
    ep.max_waiting = cfg.max_waiting;
    ep.stall_timeout_s = cfg.engine_stall_timeout_s;
    ep.observer = (struct engine_observer){
        .ud = metrics,
        .on_request_finished = serve_on_finished,
        .on_first_token = serve_on_first_token,
        .on_token = serve_on_token,
        .on_scheduled = serve_on_scheduled,
        .on_preempt = serve_on_preempt,
        .on_prefix_cache = serve_on_prefix_cache,
    };
    engine = engine_create(&ep, err);
    if (!engine) {
        fprintf(stderr, "cinder serve: engine: %s\n", err);
        goto out;
    }

    struct auth_params ap = {
        .api_keys = cfg.api_keys,
        .n_api_keys = cfg.n_api_keys,
        .allowed_origins = cfg.allowed_origins,
        .n_allowed_origins = cfg.n_allowed_origins,
        .metrics_require_key = cfg.metrics_require_key,
    };
    auth = auth_create(&ap, err);
    if (!auth) {
        fprintf(stderr, "cinder serve: %s\n", err);
        exit_code = 2;
        goto out;
    }

    struct http_params hp = http_default_params();
    hp.host = cfg.host;
    hp.port = cfg.port;
    hp.max_body_bytes = cfg.max_body_bytes;
    hp.max_header_bytes = cfg.max_header_bytes;
    hp.max_connections = cfg.max_connections;
    hp.connection_timeout_s = cfg.connection_timeout_s;
    hp.max_tokens_cap = cfg.max_tokens_cap;
    hp.served_model_name = served;
    hp.model_created = (int64_t)time(NULL);
    hp.n_ctx = n_ctx;
    hp.tok = model->tok;
    hp.chat_template = tmpl;
    hp.engine = engine;
    hp.auth = auth;
    hp.metrics = metrics;
    http = http_server_create(&hp, err);
    if (!http) {
        fprintf(stderr, "cinder serve: %s\n", err);
        goto out;
    }
    log_info("serving '%s' (%s, context %d) on http://%s:%d%s in %.2f s", served,
             cfg.random_weights ? "random weights" : cfg.model, n_ctx, cfg.host,
             http_server_port(http), auth_enabled(auth) ? " (API key required)" : "",
             (double)(now_us() - t0) / 1e6);
    /* tests and scripts read this line to find the port when --port 0 */
    fprintf(stderr, "cinder serve: listening on http://%s:%d\n", cfg.host, http_server_port(http));
    fflush(stderr);
    notify_ready();
    notify_status("serving %s on %s:%d", served, cfg.host, http_server_port(http));

    uint64_t wd_us = notify_watchdog_usec();
    double tick_s = wd_us ? CND_MIN(1.0, (double)wd_us / 2e6) : 1.0;
    int sig;
    for (;;) {
        sig = serve_wait_signal(&sigs, tick_s);
        if (sig)
            break;
        if (wd_us && engine_is_healthy(engine))
            notify_watchdog();
    }

    /* drain */
    log_info("%s: draining (up to %d s for %d running requests)", strsignal(sig),
             cfg.drain_timeout_s, http_server_n_active(http));
    notify_stopping();
    http_server_begin_drain(http);
    engine_begin_drain(engine);
    int64_t deadline = now_us() + (int64_t)cfg.drain_timeout_s * 1000000;
    for (;;) {
        double slice = CND_MIN(tick_s, 0.25);
        if (http_server_wait_idle(http, slice))
            break;
        if (now_us() >= deadline) {
            log_warn("drain timeout: %d requests still running are cancelled",
                     http_server_n_active(http));
            break;
        }
        if (serve_wait_signal(&sigs, 0) > 0) {
            log_warn("second signal: stopping now");
            break;
        }
        if (wd_us && engine_is_healthy(engine))
            notify_watchdog();
    }
    exit_code = 0;

out:
    http_server_destroy(http);
    if (engine)
        engine_destroy(engine, 0);
    auth_destroy(auth);
    metrics_destroy(metrics);
    backend_destroy(be);
    chat_template_destroy(tmpl);
    model_destroy(model);
    config_deinit(&cfg);
    free(a.api_keys);
    if (exit_code == 0 && !a.print_config)
        log_info("stopped");
    return exit_code;
}
