/* http.c: the libmicrohttpd daemon: start-up and shutdown, per-request state, routing, the
 * checks that come before a body is read (route, method, API key, body size), CORS, the common
 * response headers, and the small endpoints (/v1/models, /health, /ready, /metrics).
 * Generation and tokenization live in http_gen.c; pure formatting in http_fmt.c.
 *
 * Threads (STYLE.md 3.8): MHD_USE_THREAD_PER_CONNECTION, so each handler may block: a
 * non-streamed generation waits for its request in the handler, a streamed one in the content
 * reader, both on the request's condvar with 1 s timeouts so they notice shutdown and dead
 * peers. MHD calls the handler (1) when the headers are in, (2) for each piece of body, (3)
 * once the request is complete; a response queued in (1) ends the connection after it, which
 * is what we want for 401/404/405/413 (the body, if any, is never read).
 *
 * Shutdown (cli_serve.c drives it): http_server_begin_drain closes the listening socket and
 * turns /ready to 503; running requests go on; http_server_wait_idle waits for them up to the
 * drain timeout; http_server_destroy sets `stopping` (waits end within a second, cancelling
 * what is left), stops MHD (joining the connection threads) and frees. Only then may the
 * engine be destroyed, since NOTIFY_COMPLETED may still call engine_cancel. */
#include "http_internal.h"

#include "cinder/auth.h"
#include "cinder/buf.h"
#include "cinder/clock.h"
#include "cinder/engine.h"
#include "cinder/log.h"
#include "cinder/metrics.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HTTP_THREAD_STACK_BYTES (8u << 20)
#else
#define HTTP_THREAD_STACK_BYTES (2u << 20)
#endif

struct http_params http_default_params(void)
{
    struct http_params p;
    memset(&p, 0, sizeof(p));
    p.host = "127.0.0.1";
    p.port = 8080;
    p.max_body_bytes = 8 << 20;
    p.max_header_bytes = 16 << 10;
    p.max_connections = 512;
    p.connection_timeout_s = 60;
    return p;
}

/* ---- responses ---- */

void http_add_common_headers(struct http_conn *hc, void *mhd_response, unsigned status)
{
    struct MHD_Response *r = mhd_response;
    struct http_server *s = hc->srv;
    MHD_add_response_header(r, "x-request-id", hc->request_id);
    if (s->p.auth) {
        const char *origin = MHD_lookup_connection_value(hc->mhd, MHD_HEADER_KIND, "Origin");
        if (origin) {
            struct auth_cors cors;
            auth_cors_headers(s->p.auth, origin, false, NULL, &cors);
            for (int32_t i = 0; i < cors.n_headers; i++)
                MHD_add_response_header(r, cors.headers[i].name, cors.headers[i].value);
        }
    }
    if (status == 503)
        MHD_add_response_header(r, "Retry-After", "1");
    if (atomic_load(&s->draining))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
}

int http_send(struct http_conn *hc, unsigned status, const char *content_type, struct buf *body)
{
    size_t len = 0;
    char *data = NULL;
    if (body)
        data = buf_take(body, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, data ? data : (void *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(data);
        return MHD_NO;
    }
    if (content_type && len)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    http_add_common_headers(hc, r, status);
    if (status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 405) {
        const char *m = http_route_method(hc->route);
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW,
                                m && !strcmp(m, "GET") ? "GET, HEAD, OPTIONS" : "POST, OPTIONS");
    }
    int rc = MHD_queue_response(hc->mhd, status, r);
    MHD_destroy_response(r);
    if (hc->srv->p.metrics)
        metrics_inc_http_request(hc->srv->p.metrics, http_route_label(hc->route), (int)status);
    if (status >= 500)
        log_warn("req %s: %s answered %u", hc->request_id, http_route_label(hc->route), status);
    else
        log_debug("req %s: %s answered %u", hc->request_id, http_route_label(hc->route), status);
    return rc;
}

int http_send_error(struct http_conn *hc, const struct openai_error *e)
{
    struct buf b;
    buf_init(&b);
    openai_error_json(&b, e);
    int rc = http_send(hc, (unsigned)e->http_status, "application/json", &b);
    buf_deinit(&b);
    return rc;
}

static int http_send_json(struct http_conn *hc, unsigned status, struct buf *body)
{
    return http_send(hc, status, "application/json", body);
}

/* ---- bookkeeping ---- */

void http_active_begin(struct http_conn *hc)
{
    struct http_server *s = hc->srv;
    if (hc->active)
        return;
    pthread_mutex_lock(&s->lock);
    s->n_active++;
    pthread_mutex_unlock(&s->lock);
    hc->active = true;
}

void http_active_end(struct http_conn *hc)
{
    struct http_server *s = hc->srv;
    if (!hc->active)
        return;
    pthread_mutex_lock(&s->lock);
    s->n_active--;
    if (s->n_active == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->lock);
    hc->active = false;
}

static bool http_fd_peer_closed(int fd)
{
    if (fd < 0)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return true;
    return false;
}

bool http_peer_closed(struct http_conn *hc)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(hc->mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    return ci && http_fd_peer_closed(ci->connect_fd);
}

/* ---- small endpoints ---- */

static int http_handle_models(struct http_conn *hc, const char *url)
{
    struct http_server *s = hc->srv;
    struct openai_model_info mi = {
        .id = s->served_model_name,
        .created = s->p.model_created,
        .max_model_len = s->p.n_ctx,
    };
    struct buf b;
    buf_init(&b);
    int rc;
    if (hc->route == HTTP_ROUTE_MODELS) {
        openai_models_json(&b, &mi, 1);
        rc = http_send_json(hc, 200, &b);
    } else {
        struct openai_error e;
        if (openai_check_model(url + strlen("/v1/models/"), s->served_model_name, &e) != 0) {
            buf_deinit(&b);
            return http_send_error(hc, &e);
        }
        openai_model_json(&b, &mi);
        rc = http_send_json(hc, 200, &b);
    }
    buf_deinit(&b);
    return rc;
}

static int http_handle_health(struct http_conn *hc)
{
    struct http_server *s = hc->srv;
    struct buf b;
    buf_init(&b);
    bool ok = engine_is_healthy(s->p.engine);
    buf_appendf(&b, "{\"status\":\"%s\"}", ok ? "ok" : "unhealthy");
    int rc = http_send_json(hc, ok ? 200 : 503, &b);
    buf_deinit(&b);
    return rc;
}

static int http_handle_ready(struct http_conn *hc)
{
    struct http_server *s = hc->srv;
    struct buf b;
    buf_init(&b);
    bool draining = atomic_load(&s->draining);
    bool healthy = engine_is_healthy(s->p.engine);
    const char *status = draining ? "draining" : healthy ? "ready" : "unhealthy";
    buf_appendf(&b, "{\"status\":\"%s\",\"model\":", status);
    openai_json_string(&b, s->served_model_name, strlen(s->served_model_name));
    buf_append_str(&b, "}");
    int rc = http_send_json(hc, !draining && healthy ? 200 : 503, &b);
    buf_deinit(&b);
    return rc;
}

static int http_handle_metrics(struct http_conn *hc)
{
    struct http_server *s = hc->srv;
    struct buf b;
    buf_init(&b);
    if (s->p.metrics) {
        struct engine_stats st;
        engine_get_stats(s->p.engine, &st);
        metrics_set_requests_running(s->p.metrics, st.n_running);
        metrics_set_requests_waiting(s->p.metrics, st.n_waiting);
        metrics_set_kv_cache_usage(s->p.metrics, st.kv_usage);
        /* count this scrape before rendering, so the page includes itself */
        metrics_inc_http_request(s->p.metrics, http_route_label(hc->route), 200);
        metrics_render(s->p.metrics, &b);
    }
    size_t len = 0;
    char *data = buf_take(&b, &len);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, data ? data : (void *)"", data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8");
    http_add_common_headers(hc, r, 200);
    int rc = MHD_queue_response(hc->mhd, 200, r);
    MHD_destroy_response(r);
    return rc;
}

static int http_handle_preflight(struct http_conn *hc)
{
    struct http_server *s = hc->srv;
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    const char *origin = MHD_lookup_connection_value(hc->mhd, MHD_HEADER_KIND, "Origin");
    const char *acrm =
        MHD_lookup_connection_value(hc->mhd, MHD_HEADER_KIND, "Access-Control-Request-Method");
    const char *acrh =
        MHD_lookup_connection_value(hc->mhd, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    MHD_add_response_header(r, "x-request-id", hc->request_id);
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, POST, HEAD, OPTIONS");
    if (s->p.auth && origin) {
        struct auth_cors cors;
        auth_cors_headers(s->p.auth, origin, acrm != NULL, acrh, &cors);
        for (int32_t i = 0; i < cors.n_headers; i++)
            MHD_add_response_header(r, cors.headers[i].name, cors.headers[i].value);
    }
    int rc = MHD_queue_response(hc->mhd, 204, r);
    MHD_destroy_response(r);
    if (s->p.metrics)
        metrics_inc_http_request(s->p.metrics, "OPTIONS", 204);
    return rc;
}

/* ---- MHD callbacks ---- */

/* First call, headers only: answer what needs no body. Returns true when a response went out
 * (or failed to), with *rc MHD's result. */
static bool http_on_headers(struct http_conn *hc, const char *method, const char *url, int *rc)
{
    struct http_server *s = hc->srv;
    struct openai_error e;
    if (!strcmp(method, "OPTIONS")) {
        *rc = http_handle_preflight(hc);
        return true;
    }
    if (hc->route == HTTP_ROUTE_NONE) {
        openai_error_set(&e, 404, NULL, "Not found: %s %s", method, url);
        snprintf(e.code, sizeof(e.code), "not_found");
        *rc = http_send_error(hc, &e);
        return true;
    }
    const char *want = http_route_method(hc->route);
    bool head_ok = !strcmp(want, "GET") && !strcmp(method, "HEAD");
    if (strcmp(method, want) != 0 && !head_ok) {
        openai_error_set(&e, 405, NULL, "Method %s is not allowed on %s (use %s)", method, url,
                         want);
        snprintf(e.code, sizeof(e.code), "method_not_allowed");
        *rc = http_send_error(hc, &e);
        return true;
    }
    if (s->p.auth && auth_route_needs_key(s->p.auth, url)) {
        const char *authz =
            MHD_lookup_connection_value(hc->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        if (auth_check_bearer(s->p.auth, authz) != 0) {
            openai_error_set(&e, 401, NULL,
                             authz ? "Incorrect API key provided."
                                   : "Missing API key: send it as 'Authorization: Bearer KEY'.");
            snprintf(e.code, sizeof(e.code), "invalid_api_key");
            *rc = http_send_error(hc, &e);
            return true;
        }
    }
    const char *cl =
        MHD_lookup_connection_value(hc->mhd, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > (unsigned long long)s->p.max_body_bytes) {
            openai_error_set(&e, 413, NULL, "The request body is larger than %lld bytes",
                             (long long)s->p.max_body_bytes);
            snprintf(e.code, sizeof(e.code), "request_too_large");
            *rc = http_send_error(hc, &e);
            return true;
        }
    }
    return false;
}

static int http_dispatch(struct http_conn *hc, const char *url)
{
    struct openai_error e;
    if (hc->body_too_large) {
        openai_error_set(&e, 413, NULL, "The request body is larger than %lld bytes",
                         (long long)hc->srv->p.max_body_bytes);
        snprintf(e.code, sizeof(e.code), "request_too_large");
        return http_send_error(hc, &e);
    }
    switch (hc->route) {
    case HTTP_ROUTE_CHAT: return http_handle_generation(hc, OPENAI_KIND_CHAT);
    case HTTP_ROUTE_COMPLETIONS: return http_handle_generation(hc, OPENAI_KIND_COMPLETION);
    case HTTP_ROUTE_MODELS:
    case HTTP_ROUTE_MODEL: return http_handle_models(hc, url);
    case HTTP_ROUTE_TOKENIZE: return http_handle_tokenize(hc);
    case HTTP_ROUTE_DETOKENIZE: return http_handle_detokenize(hc);
    case HTTP_ROUTE_HEALTH: return http_handle_health(hc);
    case HTTP_ROUTE_READY: return http_handle_ready(hc);
    case HTTP_ROUTE_METRICS: return http_handle_metrics(hc);
    case HTTP_ROUTE_NONE: break;
    }
    openai_error_set(&e, 500, NULL, "unrouted request");
    return http_send_error(hc, &e);
}

static enum MHD_Result http_access(void *cls, struct MHD_Connection *c, const char *url,
                                   const char *method, const char *version, const char *upload_data,
                                   size_t *upload_data_size, void **con_cls)
{
    CND_UNUSED(version);
    struct http_server *s = cls;
    struct http_conn *hc = *con_cls;
    if (!hc) {
        log_set_thread_name("http");
        hc = xcalloc(1, sizeof(*hc));
        hc->srv = s;
        hc->mhd = c;
        hc->route = http_route_match(url);
        hc->t_start_us = now_us();
        buf_init(&hc->body);
        const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "x-request-id");
        if (http_request_id_valid(rid))
            snprintf(hc->request_id, sizeof(hc->request_id), "%s", rid);
        else
            http_request_id_make(hc->request_id);
        *con_cls = hc;
        int rc;
        if (http_on_headers(hc, method, url, &rc))
            return rc == MHD_YES ? MHD_YES : MHD_NO;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (!hc->body_too_large) {
            if (hc->body.len + n > (size_t)s->p.max_body_bytes)
                hc->body_too_large = true;
            else
                buf_append(&hc->body, upload_data, n);
        }
        /* a slow sender gets connection_timeout_s for the whole body, not per byte */
        if (s->p.connection_timeout_s > 0 &&
            now_us() - hc->t_start_us > (int64_t)s->p.connection_timeout_s * 1000000) {
            log_info("req %s: body not received within %d s, closing", hc->request_id,
                     s->p.connection_timeout_s);
            return MHD_NO;
        }
        return MHD_YES;
    }
    return http_dispatch(hc, url) == MHD_YES ? MHD_YES : MHD_NO;
}

static void http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                           enum MHD_RequestTerminationCode toe)
{
    CND_UNUSED(c);
    struct http_server *s = cls;
    struct http_conn *hc = *con_cls;
    if (!hc)
        return;
    if (hc->req) {
        pthread_mutex_lock(&hc->req->lock);
        bool finished = hc->req->out.finished;
        pthread_mutex_unlock(&hc->req->lock);
        if (!finished) {
            log_info("req %s: connection ended before the request finished (code %d), "
                     "cancelling",
                     hc->request_id, (int)toe);
            engine_cancel(s->p.engine, hc->req);
            if (s->p.metrics)
                metrics_inc_requests_cancelled(s->p.metrics);
        }
        request_unref(hc->req);
        hc->req = NULL;
    }
    http_active_end(hc);
    buf_deinit(&hc->body);
    free(hc);
    *con_cls = NULL;
}

static void http_mhd_log(void *cls, const char *fmt, va_list ap)
{
    CND_UNUSED(cls);
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    log_debug("mhd: %s", msg);
}

/* ---- lifecycle ---- */

struct http_server *http_server_create(const struct http_params *p, char *err)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr *sa;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG;
    const char *host = p->host && *p->host ? p->host : "127.0.0.1";
    if (p->port < 0 || p->port > 65535) {
        err_set(err, "port %d is out of range", p->port);
        return NULL;
    }
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)p->port);
        sa = (struct sockaddr *)&sin;
    } else if (inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = htons((uint16_t)p->port);
        sa = (struct sockaddr *)&sin6;
        flags |= MHD_USE_IPv6;
    } else {
        /* a name ("localhost"): its first address */
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        int gai = getaddrinfo(host, NULL, &hints, &res);
        if (gai != 0 || !res) {
            err_set(err, "host '%s': %s", host, gai ? gai_strerror(gai) : "no address");
            return NULL;
        }
        if (res->ai_family == AF_INET6) {
            memcpy(&sin6, res->ai_addr, sizeof(sin6));
            sin6.sin6_port = htons((uint16_t)p->port);
            sa = (struct sockaddr *)&sin6;
            flags |= MHD_USE_IPv6;
        } else {
            memcpy(&sin, res->ai_addr, sizeof(sin));
            sin.sin_port = htons((uint16_t)p->port);
            sa = (struct sockaddr *)&sin;
        }
        freeaddrinfo(res);
    }
    if (!p->engine || !p->tok || p->n_ctx <= 0 || !p->served_model_name) {
        err_set(err, "http: engine, tokenizer, n_ctx and served_model_name are required");
        return NULL;
    }

    struct http_server *s = xcalloc(1, sizeof(*s));
    s->p = *p;
    s->served_model_name = xstrdup(p->served_model_name);
    s->p.served_model_name = s->served_model_name;
    s->listen_fd_quiesced = -1;
    atomic_init(&s->draining, false);
    atomic_init(&s->stopping, false);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->idle, NULL);

    /* MHD's per-connection memory pool holds the request line and headers plus the write
     * buffer; give the headers max_header_bytes and the writes 16 KiB on top */
    size_t pool = (size_t)p->max_header_bytes + (16u << 10);
    s->daemon = MHD_start_daemon(
        flags, (uint16_t)p->port, NULL, NULL, http_access, s, MHD_OPTION_EXTERNAL_LOGGER,
        http_mhd_log, s, MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)(p->max_connections > 0 ? p->max_connections : 512),
        MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)(p->connection_timeout_s > 0 ? p->connection_timeout_s : 0),
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool, MHD_OPTION_THREAD_STACK_SIZE,
        (size_t)HTTP_THREAD_STACK_BYTES, MHD_OPTION_NOTIFY_COMPLETED, http_completed, s,
        MHD_OPTION_END);
    if (!s->daemon) {
        err_set(err, "cannot listen on %s:%d: %s", host, p->port,
                errno ? strerror(errno) : "libmicrohttpd refused the settings");
        pthread_mutex_destroy(&s->lock);
        pthread_cond_destroy(&s->idle);
        free(s->served_model_name);
        free(s);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : p->port;
    return s;
}

int32_t http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_begin_drain(struct http_server *s)
{
    if (atomic_exchange(&s->draining, true))
        return;
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);
    s->listen_fd_quiesced = fd == MHD_INVALID_SOCKET ? -1 : (int)fd;
    /* MHD no longer accepts, but the kernel would still complete handshakes into the backlog
     * and leave clients hanging: shutting the listening socket down makes it stop listening
     * (new connections are refused, queued ones reset) while the fd stays ours until
     * MHD_stop_daemon, as MHD asks */
    if (s->listen_fd_quiesced >= 0)
        shutdown(s->listen_fd_quiesced, SHUT_RDWR);
}

int32_t http_server_n_active(struct http_server *s)
{
    pthread_mutex_lock(&s->lock);
    int32_t n = s->n_active;
    pthread_mutex_unlock(&s->lock);
    return n;
}

bool http_server_wait_idle(struct http_server *s, double timeout_s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    double whole = (double)(int64_t)timeout_s;
    deadline.tv_sec += (time_t)whole;
    deadline.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (s->n_active > 0) {
        if (pthread_cond_timedwait(&s->idle, &s->lock, &deadline) == ETIMEDOUT)
            break;
    }
    bool idle = s->n_active == 0;
    pthread_mutex_unlock(&s->lock);
    return idle;
}

void http_server_destroy(struct http_server *s)
{
    if (!s)
        return;
    atomic_store(&s->draining, true);
    atomic_store(&s->stopping, true);
    /* give the waits a moment to notice (they check at least once a second), so streams end
     * with an error event and waiting clients get a 503 before MHD closes their sockets */
    http_server_wait_idle(s, 2.5);
    MHD_stop_daemon(s->daemon);
    if (s->listen_fd_quiesced >= 0)
        close(s->listen_fd_quiesced);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->idle);
    free(s->served_model_name);
    free(s);
}
