/* auth.c: API keys and CORS.
 *
 * Keys: we keep SHA-256 digests, never the keys, so a heap dump or core file does not leak
 * them, and comparing fixed-size digests with CRYPTO_memcmp takes the same time whatever the
 * presented key is — a byte-by-byte strcmp on the raw key would leak its prefix length. Every
 * configured digest is compared (no early exit), so the time does not say which key matched.
 *
 * CORS: a listed origin is echoed back with "Vary: Origin" (so caches keep answers per
 * origin); "*" answers "*". Browsers do not let "*" in Allow-Headers cover Authorization, so a
 * preflight echoes the headers the browser asked for (the OpenAI JS SDK sends x-stainless-*
 * ones) after checking they are plain header names. */
#include "cinder/auth.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_DIGEST_LEN 32

struct auth {
    unsigned char (*digests)[AUTH_DIGEST_LEN];
    int32_t n_keys;
    char **origins;
    int32_t n_origins;
    bool any_origin;
    bool metrics_require_key;
};

static int auth_sha256(const void *data, size_t len, unsigned char out[AUTH_DIGEST_LEN])
{
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 || n != AUTH_DIGEST_LEN)
        return CND_EINTERNAL;
    return 0;
}

/* Origins compare without a trailing slash and case-insensitively (scheme and host are). */
static size_t auth_origin_len(const char *o)
{
    size_t n = strlen(o);
    while (n > 0 && o[n - 1] == '/')
        n--;
    return n;
}

struct auth *auth_create(const struct auth_params *p, char *err)
{
    struct auth *a = xcalloc(1, sizeof(*a));
    a->metrics_require_key = p->metrics_require_key;
    if (p->n_api_keys > 0)
        a->digests = xcalloc((size_t)p->n_api_keys, AUTH_DIGEST_LEN);
    for (int32_t i = 0; i < p->n_api_keys; i++) {
        const char *k = p->api_keys[i];
        if (!k || !*k) {
            err_set(err, "api_keys: key %d is empty", i + 1);
            auth_destroy(a);
            return NULL;
        }
        if (auth_sha256(k, strlen(k), a->digests[i]) < 0) {
            err_set(err, "api_keys: SHA-256 failed (OpenSSL)");
            auth_destroy(a);
            return NULL;
        }
        a->n_keys++;
    }
    if (p->n_allowed_origins > 0)
        a->origins = xcalloc((size_t)p->n_allowed_origins, sizeof(char *));
    for (int32_t i = 0; i < p->n_allowed_origins; i++) {
        const char *o = p->allowed_origins[i];
        if (!strcmp(o, "*"))
            a->any_origin = true;
        a->origins[a->n_origins++] = xstrndup(o, auth_origin_len(o));
    }
    return a;
}

void auth_destroy(struct auth *a)
{
    if (!a)
        return;
    if (a->digests)
        OPENSSL_cleanse(a->digests, (size_t)a->n_keys * AUTH_DIGEST_LEN);
    free(a->digests);
    for (int32_t i = 0; i < a->n_origins; i++)
        free(a->origins[i]);
    free(a->origins);
    free(a);
}

bool auth_enabled(const struct auth *a)
{
    return a->n_keys > 0;
}

bool auth_route_needs_key(const struct auth *a, const char *path)
{
    if (!a->n_keys)
        return false;
    if (!strcmp(path, "/health") || !strcmp(path, "/ready"))
        return false;
    if (!strcmp(path, "/metrics"))
        return a->metrics_require_key;
    return true;
}

int auth_check_bearer(const struct auth *a, const char *authorization)
{
    if (!a->n_keys)
        return 0;
    if (!authorization)
        return CND_EINVAL;
    const char *p = authorization;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\t'))
        return CND_EINVAL;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n == 0)
        return CND_EINVAL;
    unsigned char d[AUTH_DIGEST_LEN];
    if (auth_sha256(p, n, d) < 0)
        return CND_EINVAL;
    int match = 0;
    for (int32_t i = 0; i < a->n_keys; i++)
        match |= CRYPTO_memcmp(d, a->digests[i], AUTH_DIGEST_LEN) == 0;
    OPENSSL_cleanse(d, sizeof(d));
    return match ? 0 : CND_EINVAL;
}

static bool auth_origin_listed(const struct auth *a, const char *origin)
{
    size_t n = auth_origin_len(origin);
    for (int32_t i = 0; i < a->n_origins; i++)
        if (strlen(a->origins[i]) == n && strncasecmp(a->origins[i], origin, n) == 0)
            return true;
    return false;
}

/* A comma-separated list of header names (RFC 9110 tokens), nothing else. */
static bool auth_header_list_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 1024)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~, ", c))
            return false;
    }
    return true;
}

static void auth_cors_add(struct auth_cors *out, const char *name, const char *value)
{
    CND_ASSERT(out->n_headers < AUTH_MAX_HEADERS);
    out->headers[out->n_headers].name = name;
    out->headers[out->n_headers].value = value;
    out->n_headers++;
}

void auth_cors_headers(const struct auth *a, const char *origin, bool preflight,
                       const char *request_headers, struct auth_cors *out)
{
    memset(out, 0, sizeof(*out));
    if (!origin || !*origin || !a->n_origins)
        return;
    bool listed = auth_origin_listed(a, origin);
    if (!listed && !a->any_origin)
        return;
    out->allowed = true;
    if (listed && !a->any_origin) {
        auth_cors_add(out, "Access-Control-Allow-Origin", origin);
        auth_cors_add(out, "Vary", "Origin");
    } else {
        auth_cors_add(out, "Access-Control-Allow-Origin", "*");
    }
    if (preflight) {
        auth_cors_add(out, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        auth_cors_add(out, "Access-Control-Allow-Headers",
                      auth_header_list_ok(request_headers) ? request_headers
                                                           : "Authorization, Content-Type");
        auth_cors_add(out, "Access-Control-Max-Age", "600");
    }
}
