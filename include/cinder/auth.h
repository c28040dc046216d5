/* auth.h: API-key checks and CORS decisions for the HTTP layer.
 * Keys are kept only as SHA-256 digests and compared in constant time. CORS answers which
 * Access-Control-* headers a response (or a preflight) carries for a request's Origin.
 * Created once at start-up; read-only afterwards, so any thread may call it. */
#ifndef CINDER_AUTH_H
#define CINDER_AUTH_H

#include "cinder/common.h"

struct auth;

struct auth_params {
    char *const *api_keys; /* copied as digests; empty: no authentication */
    int32_t n_api_keys;
    char *const *allowed_origins; /* copied; "*" = any; empty: no CORS headers */
    int32_t n_allowed_origins;
    bool metrics_require_key;
};

/* NULL on failure (an empty key, or a digest failure) with err filled. */
struct auth *auth_create(const struct auth_params *params, char *err);
void auth_destroy(struct auth *a);

/* Whether any key is configured. */
bool auth_enabled(const struct auth *a);
/* Whether a request to path must carry a key: never /health, /ready; /metrics only when
 * metrics_require_key; everything else when keys are configured. */
bool auth_route_needs_key(const struct auth *a, const char *path);
/* Check an Authorization header value ("Bearer KEY"; NULL when absent). Returns 0 when it
 * carries a configured key (or none are configured), else CND_EINVAL: answer 401 with
 * "WWW-Authenticate: Bearer". The time taken does not depend on which key, if any, is close. */
int auth_check_bearer(const struct auth *a, const char *authorization);

#define AUTH_MAX_HEADERS 6
struct auth_header {
    const char *name;
    const char *value; /* static, or borrowed from the arguments of auth_cors */
};

struct auth_cors {
    bool allowed; /* the origin may call us (false also when there is no Origin) */
    int32_t n_headers;
    struct auth_header headers[AUTH_MAX_HEADERS];
};

/* The CORS headers for a request with this Origin (NULL: none; then nothing is added).
 * preflight: an OPTIONS request with Access-Control-Request-Method; request_headers is its
 * Access-Control-Request-Headers (may be NULL). A preflight from a disallowed origin gets no
 * headers, and the browser then refuses; answer it 204 all the same. Values borrow origin and
 * request_headers, so keep those alive until the headers are written. */
void auth_cors_headers(const struct auth *a, const char *origin, bool preflight,
                       const char *request_headers, struct auth_cors *out);

#endif
