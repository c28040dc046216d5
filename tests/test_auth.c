/* ctest-labels: unit */
/* test_auth.c: bearer keys against digests, routes, and CORS header decisions. */
#include "cinder/auth.h"
#include "cinder/status.h"
#include "test.h"

static const char *hdr(const struct auth_cors *c, const char *name)
{
    for (int32_t i = 0; i < c->n_headers; i++)
        if (!strcmp(c->headers[i].name, name))
            return c->headers[i].value;
    return NULL;
}

static void test_keys(void)
{
    char *keys[] = {"sk-one", "sk-two"};
    struct auth_params p = {keys, 2, NULL, 0, false};
    char err[CND_ERR_LEN];
    struct auth *a = auth_create(&p, err);
    CHECK(a != NULL);
    CHECK(auth_enabled(a));
    CHECK(auth_check_bearer(a, "Bearer sk-one") == 0);
    CHECK(auth_check_bearer(a, "Bearer sk-two") == 0);
    CHECK(auth_check_bearer(a, "bearer   sk-two  ") == 0);
    CHECK(auth_check_bearer(a, "Bearer sk-on") == CND_EINVAL);
    CHECK(auth_check_bearer(a, "Bearer sk-one1") == CND_EINVAL);
    CHECK(auth_check_bearer(a, "Bearer ") == CND_EINVAL);
    CHECK(auth_check_bearer(a, "Bearersk-one") == CND_EINVAL);
    CHECK(auth_check_bearer(a, "Basic c2stb25lOg==") == CND_EINVAL);
    CHECK(auth_check_bearer(a, "sk-one") == CND_EINVAL);
    CHECK(auth_check_bearer(a, NULL) == CND_EINVAL);
    CHECK(auth_route_needs_key(a, "/v1/chat/completions"));
    CHECK(auth_route_needs_key(a, "/v1/models"));
    CHECK(!auth_route_needs_key(a, "/health"));
    CHECK(!auth_route_needs_key(a, "/ready"));
    CHECK(!auth_route_needs_key(a, "/metrics"));
    auth_destroy(a);

    p.metrics_require_key = true;
    a = auth_create(&p, err);
    CHECK(auth_route_needs_key(a, "/metrics"));
    auth_destroy(a);

    /* no keys: everything open */
    struct auth_params none = {NULL, 0, NULL, 0, true};
    a = auth_create(&none, err);
    CHECK(!auth_enabled(a));
    CHECK(auth_check_bearer(a, NULL) == 0);
    CHECK(!auth_route_needs_key(a, "/metrics"));
    auth_destroy(a);

    char *bad[] = {"ok", ""};
    struct auth_params pb = {bad, 2, NULL, 0, false};
    CHECK(auth_create(&pb, err) == NULL);
    CHECK(strstr(err, "empty") != NULL);
    auth_destroy(NULL);
}

static void test_cors_list(void)
{
    char *origins[] = {"https://app.example.com/", "http://localhost:3000"};
    struct auth_params p = {NULL, 0, origins, 2, false};
    struct auth *a = auth_create(&p, NULL);
    struct auth_cors c;

    auth_cors_headers(a, NULL, false, NULL, &c);
    CHECK(!c.allowed && c.n_headers == 0);
    auth_cors_headers(a, "https://evil.example", false, NULL, &c);
    CHECK(!c.allowed && c.n_headers == 0);
    auth_cors_headers(a, "https://evil.example", true, "authorization", &c);
    CHECK(!c.allowed && c.n_headers == 0);

    auth_cors_headers(a, "https://APP.example.com", false, NULL, &c);
    CHECK(c.allowed);
    CHECK_STR(hdr(&c, "Access-Control-Allow-Origin"), "https://APP.example.com");
    CHECK_STR(hdr(&c, "Vary"), "Origin");
    CHECK(hdr(&c, "Access-Control-Allow-Methods") == NULL);

    auth_cors_headers(a, "http://localhost:3000", true,
                      "authorization, content-type, x-stainless-os", &c);
    CHECK(c.allowed);
    CHECK_STR(hdr(&c, "Access-Control-Allow-Origin"), "http://localhost:3000");
    CHECK_STR(hdr(&c, "Access-Control-Allow-Methods"), "GET, POST, OPTIONS");
    CHECK_STR(hdr(&c, "Access-Control-Allow-Headers"),
              "authorization, content-type, x-stainless-os");
    CHECK_STR(hdr(&c, "Access-Control-Max-Age"), "600");
    /* header injection attempt falls back to the fixed list */
    auth_cors_headers(a, "http://localhost:3000", true, "x\r\nSet-Cookie: a=b", &c);
    CHECK_STR(hdr(&c, "Access-Control-Allow-Headers"), "Authorization, Content-Type");
    auth_cors_headers(a, "http://localhost:3000", true, NULL, &c);
    CHECK_STR(hdr(&c, "Access-Control-Allow-Headers"), "Authorization, Content-Type");
    /* a different port is a different origin */
    auth_cors_headers(a, "http://localhost:3001", false, NULL, &c);
    CHECK(!c.allowed);
    auth_destroy(a);
}

static void test_cors_any(void)
{
    char *origins[] = {"*"};
    struct auth_params p = {NULL, 0, origins, 1, false};
    struct auth *a = auth_create(&p, NULL);
    struct auth_cors c;
    auth_cors_headers(a, "https://anything.example", false, NULL, &c);
    CHECK(c.allowed);
    CHECK_STR(hdr(&c, "Access-Control-Allow-Origin"), "*");
    CHECK(hdr(&c, "Vary") == NULL);
    auth_cors_headers(a, "https://anything.example", true, "authorization", &c);
    CHECK_STR(hdr(&c, "Access-Control-Allow-Headers"), "authorization");
    auth_destroy(a);

    /* nothing configured: no CORS at all */
    struct auth_params none = {NULL, 0, NULL, 0, false};
    a = auth_create(&none, NULL);
    auth_cors_headers(a, "https://anything.example", true, NULL, &c);
    CHECK(!c.allowed && c.n_headers == 0);
    auth_destroy(a);
}

int main(void)
{
    RUN(test_keys);
    RUN(test_cors_list);
    RUN(test_cors_any);
    return test_summary();
}
