/* openai.c: the OpenAI wire format, both ways, with no HTTP and no model.
 *
 * Parsing: cJSON reads the body; each field OpenAI defines is checked for type and range and
 * copied into struct openai_request, and the tree is freed before returning (STYLE §3.5) —
 * except the chat messages, which are detached, normalised (text parts joined into one
 * string) and kept, because the chat template consumes them later on the same thread.
 * Fields we do not implement but that change the meaning of a request (tools, n > 1, echo,
 * response_format json ...) are refused with a 400 naming the param: silently ignoring them
 * would return something the client did not ask for. Unknown fields are ignored, because the
 * SDKs send fields newer than us.
 *
 * Responses are written by hand into a buf rather than through cJSON: token text is raw
 * bytes that may be half a UTF-8 character or contain NUL, which cJSON's C strings cannot
 * carry, and the streaming path builds one chunk per token so fewer allocations matter. */
#include "cinder/openai.h"
#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <math.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- errors ---- */

static const char *openai_error_type(int http_status)
{
    switch (http_status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "invalid_request_error";
    case 429: return "rate_limit_error";
    case 503: return "service_unavailable_error";
    default: return http_status >= 500 ? "server_error" : "invalid_request_error";
    }
}

void openai_error_set(struct openai_error *e, int http_status, const char *param, const char *fmt,
                      ...)
{
    if (!e)
        return;
    e->http_status = http_status;
    e->type = openai_error_type(http_status);
    snprintf(e->param, sizeof(e->param), "%s", param ? param : "");
    e->code[0] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

void openai_error_from_status(struct openai_error *e, int status, const char *message)
{
    int http;
    switch (status) {
    case CND_EINVAL:
    case CND_ERANGE:
    case CND_EUNSUPPORTED:
    case CND_EFORMAT: http = 400; break;
    case CND_ENOTFOUND: http = 404; break;
    case CND_EOVERLOAD:
    case CND_ENOSPC: http = 503; break;
    default: http = 500; break;
    }
    openai_error_set(e, http, NULL, "%s", message ? message : cnd_status_str(status));
}

int openai_check_model(const char *model, const char *served, struct openai_error *e)
{
    if (!model || !served || strcmp(model, served) == 0)
        return 0;
    openai_error_set(e, 404, "model", "The model '%s' does not exist (this server serves '%s')",
                     model, served);
    snprintf(e->code, sizeof(e->code), "model_not_found");
    return CND_ENOTFOUND;
}

static void openai_json_str_or_null(struct buf *out, const char *s)
{
    if (s && *s)
        openai_json_string(out, s, strlen(s));
    else
        buf_append_str(out, "null");
}

void openai_error_json(struct buf *out, const struct openai_error *e)
{
    buf_append_str(out, "{\"error\":{\"message\":");
    openai_json_string(out, e->message, strlen(e->message));
    buf_append_str(out, ",\"type\":");
    openai_json_str_or_null(out, e->type ? e->type : openai_error_type(e->http_status));
    buf_append_str(out, ",\"param\":");
    openai_json_str_or_null(out, e->param);
    buf_append_str(out, ",\"code\":");
    openai_json_str_or_null(out, e->code);
    buf_append_str(out, "}}");
}

/* ---- JSON output helpers ---- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if it is not one. Rejects overlong
 * forms, surrogates and values above U+10FFFF, as a strict JSON reader would. */
static size_t openai_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

void openai_json_string(struct buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    buf_append(out, "\"", 1);
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            run++, i++;
            continue;
        }
        if (c >= 0x80) {
            size_t n = openai_utf8_len(p + i, len - i);
            if (n) {
                run += n, i += n;
                continue;
            }
        }
        buf_append(out, p + i - run, run);
        run = 0;
        switch (c) {
        case '"': buf_append(out, "\\\"", 2); break;
        case '\\': buf_append(out, "\\\\", 2); break;
        case '\n': buf_append(out, "\\n", 2); break;
        case '\r': buf_append(out, "\\r", 2); break;
        case '\t': buf_append(out, "\\t", 2); break;
        case '\b': buf_append(out, "\\b", 2); break;
        case '\f': buf_append(out, "\\f", 2); break;
        default:
            if (c < 0x20) {
                char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                buf_append(out, u, 6);
            } else {
                buf_append(out, "\xEF\xBF\xBD", 3); /* invalid byte: U+FFFD */
            }
        }
        i++;
    }
    buf_append(out, p + len - run, run);
    buf_append(out, "\"", 1);
}

/* JSON has no -Infinity; OpenAI reports impossible tokens as -9999.0. */
static void openai_json_logprob(struct buf *out, float lp)
{
    double v = isfinite(lp) ? (double)lp : -9999.0;
    if (v < -9999.0)
        v = -9999.0;
    buf_appendf(out, "%.9g", v);
}

static void openai_json_bytes(struct buf *out, const char *s, size_t len)
{
    buf_append_str(out, "[");
    for (size_t i = 0; i < len; i++)
        buf_appendf(out, i ? ",%u" : "%u", (unsigned)(unsigned char)s[i]);
    buf_append_str(out, "]");
}

void openai_make_id(char *dst, size_t cap, const char *prefix)
{
    unsigned char rnd[12];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        /* ids need only be unique, not secret: fall back to time and a counter */
        static unsigned long counter;
        uint64_t t = (uint64_t)time(NULL) ^
                     ((uint64_t)__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) << 32);
        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (unsigned char)(t >> ((i % 8) * 8)) ^ (unsigned char)(i * 37);
    }
    char hex[2 * sizeof(rnd) + 1];
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    snprintf(dst, cap, "%s%s", prefix, hex);
}

/* ---- request parsing helpers ---- */

static bool openai_is_null(const cJSON *j)
{
    return !j || cJSON_IsNull(j);
}

/* An integer-valued JSON number within [lo, hi]. */
static int openai_get_int(const cJSON *j, const char *param, int64_t lo, int64_t hi, int64_t *out,
                          struct openai_error *e)
{
    if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble) ||
        !isfinite(j->valuedouble)) {
        openai_error_set(e, 400, param, "'%s' must be an integer", param);
        return CND_EINVAL;
    }
    double v = j->valuedouble;
    if (v < (double)lo || v > (double)hi) {
        openai_error_set(e, 400, param, "'%s' must be between %lld and %lld, got %.17g", param,
                         (long long)lo, (long long)hi, v);
        return CND_EINVAL;
    }
    *out = (int64_t)v;
    return 0;
}

/* A number in [lo, hi] (or (lo, hi] when lo_open). */
static int openai_get_num(const cJSON *j, const char *param, double lo, bool lo_open, double hi,
                          float *out, struct openai_error *e)
{
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble)) {
        openai_error_set(e, 400, param, "'%s' must be a number", param);
        return CND_EINVAL;
    }
    double v = j->valuedouble;
    if (v > hi || (lo_open ? v <= lo : v < lo)) {
        openai_error_set(e, 400, param, "'%s' must be in %c%g, %g], got %g", param,
                         lo_open ? '(' : '[', lo, hi, v);
        return CND_EINVAL;
    }
    *out = (float)v;
    return 0;
}

static int openai_get_bool(const cJSON *j, const char *param, bool *out, struct openai_error *e)
{
    if (!cJSON_IsBool(j)) {
        openai_error_set(e, 400, param, "'%s' must be a boolean", param);
        return CND_EINVAL;
    }
    *out = cJSON_IsTrue(j);
    return 0;
}

static int openai_get_string(const cJSON *j, const char *param, char **out, struct openai_error *e)
{
    if (!cJSON_IsString(j)) {
        openai_error_set(e, 400, param, "'%s' must be a string", param);
        return CND_EINVAL;
    }
    free(*out);
    *out = xstrdup(j->valuestring);
    return 0;
}

static int openai_unsupported(struct openai_error *e, const char *param, const char *what)
{
    openai_error_set(e, 400, param, "'%s' is not supported by this server%s%s", param,
                     what ? ": " : "", what ? what : "");
    return CND_EUNSUPPORTED;
}

static cJSON *openai_parse_body(const char *body, size_t len, struct openai_error *e)
{
    cJSON *root = cJSON_ParseWithLengthOpts(body, len, NULL, 0);
    if (!root) {
        openai_error_set(e, 400, NULL, "The request body is not valid JSON (error near byte %zu)",
                         (size_t)(cJSON_GetErrorPtr() && cJSON_GetErrorPtr() >= body
                                      ? cJSON_GetErrorPtr() - body
                                      : 0));
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        openai_error_set(e, 400, NULL, "The request body must be a JSON object");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Field by exact (case-sensitive) name; cJSON's default lookup ignores case. */
static const cJSON *openai_field(const cJSON *root, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(root, name);
}

static const char *const openai_role_names[] = {
    [OPENAI_ROLE_SYSTEM] = "system",       [OPENAI_ROLE_USER] = "user",
    [OPENAI_ROLE_ASSISTANT] = "assistant", [OPENAI_ROLE_TOOL] = "tool",
    [OPENAI_ROLE_DEVELOPER] = "developer",
};

/* Check messages, replace each content with one string, and fill the borrowed view.
 * Takes ownership of arr. */
static int openai_messages_take(cJSON *arr, const char *param, cJSON **out_arr,
                                struct openai_message **out_msgs, int32_t *out_n,
                                struct openai_error *e)
{
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0) {
        openai_error_set(e, 400, param, "'%s' must be a non-empty array", param);
        cJSON_Delete(arr);
        return CND_EINVAL;
    }
    int32_t n = cJSON_GetArraySize(arr);
    struct openai_message *msgs = xcalloc((size_t)n, sizeof(*msgs));
    char where[64];
    int32_t i = 0;
    int rc = 0;
    for (cJSON *m = arr->child; m; m = m->next, i++) {
        snprintf(where, sizeof(where), "%s[%d]", param, i);
        if (!cJSON_IsObject(m)) {
            openai_error_set(e, 400, where, "'%s' must be an object", where);
            rc = CND_EINVAL;
            break;
        }
        const cJSON *role = openai_field(m, "role");
        int r = -1;
        if (cJSON_IsString(role))
            for (size_t k = 0; k < ARRAY_SIZE(openai_role_names); k++)
                if (!strcmp(role->valuestring, openai_role_names[k]))
                    r = (int)k;
        if (r < 0) {
            snprintf(where, sizeof(where), "%s[%d].role", param, i);
            openai_error_set(e, 400, where,
                             "'%s' must be one of system, developer, user, assistant, tool", where);
            rc = CND_EINVAL;
            break;
        }
        const cJSON *tc = openai_field(m, "tool_calls");
        if (!openai_is_null(tc) && !(cJSON_IsArray(tc) && cJSON_GetArraySize(tc) == 0)) {
            snprintf(where, sizeof(where), "%s[%d].tool_calls", param, i);
            rc = openai_unsupported(e, where, "tool calling is not implemented");
            break;
        }
        if (!openai_is_null(openai_field(m, "function_call"))) {
            snprintf(where, sizeof(where), "%s[%d].function_call", param, i);
            rc = openai_unsupported(e, where, "function calling is not implemented");
            break;
        }
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        snprintf(where, sizeof(where), "%s[%d].content", param, i);
        if (openai_is_null(content)) {
            if (r != OPENAI_ROLE_ASSISTANT) {
                openai_error_set(e, 400, where, "'%s' is required for role '%s'", where,
                                 openai_role_names[r]);
                rc = CND_EINVAL;
                break;
            }
            cJSON_DeleteItemFromObjectCaseSensitive(m, "content");
            cJSON_AddStringToObject(m, "content", "");
        } else if (cJSON_IsArray(content)) {
            struct buf text;
            buf_init(&text);
            int32_t j = 0;
            for (const cJSON *part = content->child; part; part = part->next, j++) {
                const cJSON *type = openai_field(part, "type");
                const cJSON *t = openai_field(part, "text");
                snprintf(where, sizeof(where), "%s[%d].content[%d]", param, i, j);
                if (!cJSON_IsObject(part) || !cJSON_IsString(type)) {
                    openai_error_set(e, 400, where, "'%s' must be an object with a \"type\"",
                                     where);
                    rc = CND_EINVAL;
                    break;
                }
                if (strcmp(type->valuestring, "text") != 0) {
                    openai_error_set(e, 400, where,
                                     "content parts of type '%.32s' are not supported; only "
                                     "\"text\" parts are (this model takes text only)",
                                     type->valuestring);
                    rc = CND_EUNSUPPORTED;
                    break;
                }
                if (!cJSON_IsString(t)) {
                    openai_error_set(e, 400, where, "'%s.text' must be a string", where);
                    rc = CND_EINVAL;
                    break;
                }
                if (j)
                    buf_append_str(&text, "\n");
                buf_append_str(&text, t->valuestring);
            }
            if (rc == 0)
                cJSON_ReplaceItemInObjectCaseSensitive(
                    m, "content", cJSON_CreateString(text.data ? text.data : ""));
            buf_deinit(&text);
            if (rc)
                break;
        } else if (!cJSON_IsString(content)) {
            openai_error_set(e, 400, where, "'%s' must be a string or an array of text parts",
                             where);
            rc = CND_EINVAL;
            break;
        }
        const cJSON *name = openai_field(m, "name");
        if (!openai_is_null(name) && !cJSON_IsString(name)) {
            snprintf(where, sizeof(where), "%s[%d].name", param, i);
            openai_error_set(e, 400, where, "'%s' must be a string", where);
            rc = CND_EINVAL;
            break;
        }
        msgs[i].role = (enum openai_role)r;
        msgs[i].role_name = openai_role_names[r];
        msgs[i].content = openai_field(m, "content")->valuestring;
        msgs[i].name = cJSON_IsString(name) ? name->valuestring : NULL;
    }
    if (rc) {
        free(msgs);
        cJSON_Delete(arr);
        return rc;
    }
    *out_arr = arr;
    *out_msgs = msgs;
    *out_n = n;
    return 0;
}

static int openai_token_array(const cJSON *arr, const char *param, int32_t **out, int32_t *n_out,
                              struct openai_error *e)
{
    int32_t n = cJSON_GetArraySize(arr);
    int32_t *toks = xmalloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    int32_t i = 0;
    char where[64];
    for (const cJSON *t = arr->child; t; t = t->next, i++) {
        int64_t v;
        snprintf(where, sizeof(where), "%s[%d]", param, i);
        if (openai_get_int(t, where, 0, INT32_MAX, &v, e) < 0) {
            snprintf(e->param, sizeof(e->param), "%s", param);
            free(toks);
            return CND_EINVAL;
        }
        toks[i] = (int32_t)v;
    }
    *out = toks;
    *n_out = n;
    return 0;
}

static int openai_parse_prompt(const cJSON *p, struct openai_request *req, struct openai_error *e)
{
    if (openai_is_null(p)) {
        openai_error_set(e, 400, "prompt", "'prompt' is required");
        return CND_EINVAL;
    }
    if (cJSON_IsString(p)) {
        req->prompt = xstrdup(p->valuestring);
        return 0;
    }
    if (!cJSON_IsArray(p)) {
        openai_error_set(e, 400, "prompt", "'prompt' must be a string or an array of token ids");
        return CND_EINVAL;
    }
    const cJSON *first = p->child;
    if (!first) {
        openai_error_set(e, 400, "prompt", "'prompt' must not be empty");
        return CND_EINVAL;
    }
    if (cJSON_IsString(first) || cJSON_IsArray(first)) {
        /* a batch: one string (or one token list) is the same as no batch */
        if (first->next) {
            openai_error_set(e, 400, "prompt",
                             "batched prompts (an array of %d prompts) are not supported; send "
                             "one prompt per request",
                             cJSON_GetArraySize(p));
            return CND_EUNSUPPORTED;
        }
        if (cJSON_IsString(first)) {
            req->prompt = xstrdup(first->valuestring);
            return 0;
        }
        p = first;
        if (!p->child) {
            openai_error_set(e, 400, "prompt", "'prompt' must not be empty");
            return CND_EINVAL;
        }
    }
    return openai_token_array(p, "prompt", &req->prompt_tokens, &req->n_prompt_tokens, e);
}

static int openai_parse_stop(const cJSON *s, struct gen_params *gp, struct openai_error *e)
{
    if (openai_is_null(s))
        return 0;
    const cJSON *items[GEN_MAX_STOP];
    int n = 0;
    if (cJSON_IsString(s)) {
        items[n++] = s;
    } else if (cJSON_IsArray(s)) {
        if (cJSON_GetArraySize(s) > GEN_MAX_STOP) {
            openai_error_set(e, 400, "stop", "'stop' takes at most %d sequences, got %d",
                             GEN_MAX_STOP, cJSON_GetArraySize(s));
            return CND_EINVAL;
        }
        for (const cJSON *it = s->child; it; it = it->next) {
            if (!cJSON_IsString(it)) {
                openai_error_set(e, 400, "stop", "'stop' must be a string or an array of strings");
                return CND_EINVAL;
            }
            items[n++] = it;
        }
    } else {
        openai_error_set(e, 400, "stop", "'stop' must be a string or an array of strings");
        return CND_EINVAL;
    }
    for (int i = 0; i < n; i++) {
        if (!items[i]->valuestring[0]) {
            openai_error_set(e, 400, "stop", "'stop' sequences must not be empty");
            return CND_EINVAL;
        }
    }
    for (int i = 0; i < n; i++)
        gp->stop[gp->n_stop++] = xstrdup(items[i]->valuestring);
    return 0;
}

static int openai_parse_logit_bias(const cJSON *lb, struct gen_params *gp, struct openai_error *e)
{
    if (openai_is_null(lb))
        return 0;
    if (!cJSON_IsObject(lb)) {
        openai_error_set(e, 400, "logit_bias",
                         "'logit_bias' must be an object of token id -> bias");
        return CND_EINVAL;
    }
    int32_t n = cJSON_GetArraySize(lb);
    if (n == 0)
        return 0;
    if (n > 1024) {
        openai_error_set(e, 400, "logit_bias", "'logit_bias' has more than 1024 entries");
        return CND_EINVAL;
    }
    struct sampler_logit_bias *b = xcalloc((size_t)n, sizeof(*b));
    int32_t i = 0;
    for (const cJSON *it = lb->child; it; it = it->next, i++) {
        const char *k = it->string;
        char *end;
        long id = strtol(k, &end, 10);
        if (!*k || *end || id < 0 || id > INT32_MAX || k[0] == '+' || k[0] == ' ') {
            openai_error_set(e, 400, "logit_bias",
                             "'logit_bias' keys must be token ids, got '%.64s'", k);
            free(b);
            return CND_EINVAL;
        }
        float v;
        if (openai_get_num(it, "logit_bias", -100, false, 100, &v, e) < 0) {
            free(b);
            return CND_EINVAL;
        }
        b[i].token = (int32_t)id;
        b[i].bias = v;
    }
    gp->sampling.logit_bias = b;
    gp->sampling.n_logit_bias = n;
    return 0;
}

/* Fields that must be absent, null, or the one value meaning "off". */
static int openai_refuse_unimplemented(const cJSON *root, enum openai_kind kind,
                                       struct openai_error *e)
{
    const cJSON *j;
    j = openai_field(root, "tools");
    if (!openai_is_null(j) && !(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 0))
        return openai_unsupported(e, "tools", "tool calling is not implemented");
    j = openai_field(root, "functions");
    if (!openai_is_null(j) && !(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 0))
        return openai_unsupported(e, "functions", "function calling is not implemented");
    static const char *const choice_params[] = {"tool_choice", "function_call"};
    for (size_t i = 0; i < ARRAY_SIZE(choice_params); i++) {
        j = openai_field(root, choice_params[i]);
        if (!openai_is_null(j) && !(cJSON_IsString(j) && (!strcmp(j->valuestring, "none") ||
                                                          !strcmp(j->valuestring, "auto"))))
            return openai_unsupported(e, choice_params[i], "tool calling is not implemented");
    }
    j = openai_field(root, "parallel_tool_calls");
    if (!openai_is_null(j) && !cJSON_IsFalse(j))
        return openai_unsupported(e, "parallel_tool_calls", "tool calling is not implemented");
    j = openai_field(root, "response_format");
    if (!openai_is_null(j)) {
        const cJSON *t = cJSON_IsObject(j) ? openai_field(j, "type") : NULL;
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "text") != 0)
            return openai_unsupported(e, "response_format",
                                      "only {\"type\": \"text\"} is implemented");
    }
    j = openai_field(root, "best_of");
    if (!openai_is_null(j)) {
        int64_t n;
        if (openai_get_int(j, "best_of", 1, 128, &n, e) < 0)
            return CND_EINVAL;
        if (n != 1)
            return openai_unsupported(e, "best_of", "only best_of=1 is implemented");
    }
    if (kind == OPENAI_KIND_COMPLETION) {
        j = openai_field(root, "echo");
        if (!openai_is_null(j) && !cJSON_IsFalse(j))
            return openai_unsupported(e, "echo", "echo is not implemented");
        j = openai_field(root, "suffix");
        if (!openai_is_null(j) && !(cJSON_IsString(j) && !j->valuestring[0]))
            return openai_unsupported(e, "suffix", "insertion (suffix) is not implemented");
    }
    static const char *const never[] = {"audio", "prediction", "web_search_options"};
    for (size_t i = 0; i < ARRAY_SIZE(never); i++)
        if (!openai_is_null(openai_field(root, never[i])))
            return openai_unsupported(e, never[i], NULL);
    j = openai_field(root, "modalities");
    if (!openai_is_null(j)) {
        bool text_only = cJSON_IsArray(j);
        for (const cJSON *m = cJSON_IsArray(j) ? j->child : NULL; m; m = m->next)
            text_only = text_only && cJSON_IsString(m) && !strcmp(m->valuestring, "text");
        if (!text_only)
            return openai_unsupported(e, "modalities", "only [\"text\"] is implemented");
    }
    return 0;
}

static int openai_parse_sampling(const cJSON *root, enum openai_kind kind,
                                 struct openai_request *req, struct openai_error *e)
{
    struct gen_params *gp = &req->params;
    struct sampler_params *sp = &gp->sampling;
    const cJSON *j;
    int64_t iv;

    /* max_completion_tokens is the chat name since 2024; it wins over the deprecated one */
    const cJSON *mt = openai_field(root, "max_tokens");
    const char *mt_name = "max_tokens";
    if (kind == OPENAI_KIND_CHAT && !openai_is_null(openai_field(root, "max_completion_tokens"))) {
        mt = openai_field(root, "max_completion_tokens");
        mt_name = "max_completion_tokens";
    }
    if (!openai_is_null(mt)) {
        if (openai_get_int(mt, mt_name, 1, INT32_MAX, &iv, e) < 0)
            return CND_EINVAL;
        gp->max_tokens = (int32_t)iv;
        req->max_tokens_given = true;
    }
    if (!openai_is_null(j = openai_field(root, "min_tokens"))) {
        if (openai_get_int(j, "min_tokens", 0, INT32_MAX, &iv, e) < 0)
            return CND_EINVAL;
        gp->min_tokens = (int32_t)iv;
        if (gp->max_tokens >= 0 && gp->min_tokens > gp->max_tokens) {
            openai_error_set(e, 400, "min_tokens",
                             "'min_tokens' (%d) must not exceed max_tokens (%d)", gp->min_tokens,
                             gp->max_tokens);
            return CND_EINVAL;
        }
    }
    if (!openai_is_null(j = openai_field(root, "temperature")) &&
        openai_get_num(j, "temperature", 0, false, 2, &sp->temperature, e) < 0)
        return CND_EINVAL;
    if (!openai_is_null(j = openai_field(root, "top_p")) &&
        openai_get_num(j, "top_p", 0, true, 1, &sp->top_p, e) < 0)
        return CND_EINVAL;
    if (!openai_is_null(j = openai_field(root, "top_k"))) {
        if (openai_get_int(j, "top_k", -1, INT32_MAX, &iv, e) < 0)
            return CND_EINVAL;
        sp->top_k = iv < 0 ? 0 : (int32_t)iv;
    }
    if (!openai_is_null(j = openai_field(root, "min_p")) &&
        openai_get_num(j, "min_p", 0, false, 1, &sp->min_p, e) < 0)
        return CND_EINVAL;
    if (!openai_is_null(j = openai_field(root, "presence_penalty")) &&
        openai_get_num(j, "presence_penalty", -2, false, 2, &sp->presence_penalty, e) < 0)
        return CND_EINVAL;
    if (!openai_is_null(j = openai_field(root, "frequency_penalty")) &&
        openai_get_num(j, "frequency_penalty", -2, false, 2, &sp->frequency_penalty, e) < 0)
        return CND_EINVAL;
    if (!openai_is_null(j = openai_field(root, "repetition_penalty")) &&
        openai_get_num(j, "repetition_penalty", 0, true, 100, &sp->repetition_penalty, e) < 0)
        return CND_EINVAL;
    if (!openai_is_null(j = openai_field(root, "seed"))) {
        /* doubles hold integers exactly only up to 2^53; the range check keeps us there */
        if (openai_get_int(j, "seed", -(1LL << 53), 1LL << 53, &iv, e) < 0)
            return CND_EINVAL;
        sp->seed = (uint64_t)iv;
        sp->has_seed = true;
    }
    if (openai_parse_stop(openai_field(root, "stop"), gp, e) < 0)
        return CND_EINVAL;
    if (openai_parse_logit_bias(openai_field(root, "logit_bias"), gp, e) < 0)
        return CND_EINVAL;
    if (!openai_is_null(j = openai_field(root, "ignore_eos")) &&
        openai_get_bool(j, "ignore_eos", &gp->ignore_eos, e) < 0)
        return CND_EINVAL;

    j = openai_field(root, "logprobs");
    if (kind == OPENAI_KIND_CHAT) {
        if (!openai_is_null(j) && openai_get_bool(j, "logprobs", &gp->logprobs, e) < 0)
            return CND_EINVAL;
        if (!openai_is_null(j = openai_field(root, "top_logprobs"))) {
            if (openai_get_int(j, "top_logprobs", 0, 20, &iv, e) < 0)
                return CND_EINVAL;
            if (iv > 0 && !gp->logprobs) {
                openai_error_set(e, 400, "top_logprobs",
                                 "'top_logprobs' requires 'logprobs' to be true");
                return CND_EINVAL;
            }
            gp->top_logprobs = (int32_t)iv;
        }
    } else if (!openai_is_null(j)) {
        if (openai_get_int(j, "logprobs", 0, 5, &iv, e) < 0)
            return CND_EINVAL;
        gp->logprobs = true;
        gp->top_logprobs = (int32_t)iv;
    }
    return 0;
}

int openai_request_parse(const char *body, size_t len, enum openai_kind kind,
                         struct openai_request *req, struct openai_error *e)
{
    memset(req, 0, sizeof(*req));
    req->kind = kind;
    req->params = gen_params_default();
    req->add_generation_prompt = true;
    if (kind == OPENAI_KIND_COMPLETION)
        req->params.max_tokens = 16; /* OpenAI's documented default for completions */

    cJSON *root = openai_parse_body(body, len, e);
    if (!root)
        return CND_EINVAL;
    int rc;
    const cJSON *j;
    if ((rc = openai_refuse_unimplemented(root, kind, e)) < 0)
        goto fail;
    j = openai_field(root, "model");
    if (!openai_is_null(j) && (rc = openai_get_string(j, "model", &req->model, e)) < 0)
        goto fail;
    if (kind == OPENAI_KIND_CHAT) {
        cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(root, "messages");
        if (!m) {
            openai_error_set(e, 400, "messages", "'messages' is required");
            rc = CND_EINVAL;
            goto fail;
        }
        if ((rc = openai_messages_take(m, "messages", &req->messages, &req->msgs, &req->n_msgs,
                                       e)) < 0)
            goto fail;
        j = openai_field(root, "add_generation_prompt");
        if (!openai_is_null(j) &&
            (rc = openai_get_bool(j, "add_generation_prompt", &req->add_generation_prompt, e)) < 0)
            goto fail;
    } else if ((rc = openai_parse_prompt(openai_field(root, "prompt"), req, e)) < 0) {
        goto fail;
    }
    if ((rc = openai_parse_sampling(root, kind, req, e)) < 0)
        goto fail;
    j = openai_field(root, "n");
    if (!openai_is_null(j)) {
        int64_t n;
        if ((rc = openai_get_int(j, "n", 1, OPENAI_MAX_N, &n, e)) < 0)
            goto fail;
        req->params.n = (int32_t)n;
    }
    j = openai_field(root, "stream");
    if (!openai_is_null(j) && (rc = openai_get_bool(j, "stream", &req->stream, e)) < 0)
        goto fail;
    j = openai_field(root, "stream_options");
    if (!openai_is_null(j)) {
        if (!req->stream) {
            openai_error_set(e, 400, "stream_options",
                             "'stream_options' is only allowed when 'stream' is true");
            rc = CND_EINVAL;
            goto fail;
        }
        if (!cJSON_IsObject(j)) {
            openai_error_set(e, 400, "stream_options", "'stream_options' must be an object");
            rc = CND_EINVAL;
            goto fail;
        }
        const cJSON *iu = openai_field(j, "include_usage");
        if (!openai_is_null(iu) &&
            (rc = openai_get_bool(iu, "stream_options.include_usage", &req->include_usage, e)) < 0)
            goto fail;
    }
    cJSON_Delete(root);
    return 0;
fail:
    cJSON_Delete(root);
    openai_request_deinit(req);
    return rc;
}

void openai_request_deinit(struct openai_request *req)
{
    free(req->model);
    cJSON_Delete(req->messages);
    free(req->msgs);
    free(req->prompt);
    free(req->prompt_tokens);
    gen_params_deinit(&req->params);
    memset(req, 0, sizeof(*req));
    req->params = gen_params_default();
}

/* ---- tokenize / detokenize ---- */

int openai_tokenize_parse(const char *body, size_t len, struct openai_tokenize_request *req,
                          struct openai_error *e)
{
    memset(req, 0, sizeof(*req));
    req->add_generation_prompt = true;
    cJSON *root = openai_parse_body(body, len, e);
    if (!root)
        return CND_EINVAL;
    int rc = 0;
    const cJSON *j = openai_field(root, "model");
    if (!openai_is_null(j) && (rc = openai_get_string(j, "model", &req->model, e)) < 0)
        goto fail;
    const cJSON *prompt = openai_field(root, "prompt");
    cJSON *messages = cJSON_DetachItemFromObjectCaseSensitive(root, "messages");
    if (messages && cJSON_IsNull(messages)) {
        cJSON_Delete(messages);
        messages = NULL;
    }
    if (!openai_is_null(prompt) == !!messages) {
        cJSON_Delete(messages);
        openai_error_set(e, 400, openai_is_null(prompt) ? "prompt" : "messages",
                         "exactly one of 'prompt' and 'messages' is required");
        rc = CND_EINVAL;
        goto fail;
    }
    if (messages) {
        req->add_special_tokens = false; /* the chat template writes them */
        if ((rc = openai_messages_take(messages, "messages", &req->messages, &req->msgs,
                                       &req->n_msgs, e)) < 0)
            goto fail;
    } else {
        req->add_special_tokens = true;
        if ((rc = openai_get_string(prompt, "prompt", &req->prompt, e)) < 0)
            goto fail;
    }
    j = openai_field(root, "add_special_tokens");
    if (!openai_is_null(j) &&
        (rc = openai_get_bool(j, "add_special_tokens", &req->add_special_tokens, e)) < 0)
        goto fail;
    j = openai_field(root, "add_generation_prompt");
    if (!openai_is_null(j) &&
        (rc = openai_get_bool(j, "add_generation_prompt", &req->add_generation_prompt, e)) < 0)
        goto fail;
    cJSON_Delete(root);
    return 0;
fail:
    cJSON_Delete(root);
    openai_tokenize_deinit(req);
    return rc;
}

void openai_tokenize_deinit(struct openai_tokenize_request *req)
{
    free(req->model);
    free(req->prompt);
    cJSON_Delete(req->messages);
    free(req->msgs);
    memset(req, 0, sizeof(*req));
}

void openai_tokenize_json(struct buf *out, const int32_t *tokens, int32_t n_tokens,
                          int32_t max_model_len)
{
    buf_append_str(out, "{\"tokens\":[");
    for (int32_t i = 0; i < n_tokens; i++)
        buf_appendf(out, i ? ",%d" : "%d", tokens[i]);
    buf_appendf(out, "],\"count\":%d,\"max_model_len\":%d}", n_tokens, max_model_len);
}

int openai_detokenize_parse(const char *body, size_t len, struct openai_detokenize_request *req,
                            struct openai_error *e)
{
    memset(req, 0, sizeof(*req));
    cJSON *root = openai_parse_body(body, len, e);
    if (!root)
        return CND_EINVAL;
    int rc = 0;
    const cJSON *j = openai_field(root, "model");
    if (!openai_is_null(j) && (rc = openai_get_string(j, "model", &req->model, e)) < 0)
        goto fail;
    j = openai_field(root, "tokens");
    if (!cJSON_IsArray(j)) {
        openai_error_set(e, 400, "tokens", "'tokens' must be an array of token ids");
        rc = CND_EINVAL;
        goto fail;
    }
    if ((rc = openai_token_array(j, "tokens", &req->tokens, &req->n_tokens, e)) < 0)
        goto fail;
    cJSON_Delete(root);
    return 0;
fail:
    cJSON_Delete(root);
    openai_detokenize_deinit(req);
    return rc;
}

void openai_detokenize_deinit(struct openai_detokenize_request *req)
{
    free(req->model);
    free(req->tokens);
    memset(req, 0, sizeof(*req));
}

void openai_detokenize_json(struct buf *out, const char *text, size_t len)
{
    buf_append_str(out, "{\"prompt\":");
    openai_json_string(out, text, len);
    buf_append_str(out, "}");
}

/* ---- responses ---- */

static void openai_head(struct buf *out, const struct openai_meta *m, const char *object)
{
    buf_append_str(out, "{\"id\":");
    openai_json_string(out, m->id, strlen(m->id));
    buf_appendf(out, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object,
                (long long)m->created);
    openai_json_string(out, m->model, strlen(m->model));
    if (m->system_fingerprint) {
        buf_append_str(out, ",\"system_fingerprint\":");
        openai_json_string(out, m->system_fingerprint, strlen(m->system_fingerprint));
    }
}

static void openai_usage_json(struct buf *out, const struct openai_usage *u)
{
    buf_appendf(out,
                "{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d,"
                "\"prompt_tokens_details\":{\"cached_tokens\":%d}}",
                u->prompt_tokens, u->completion_tokens, u->prompt_tokens + u->completion_tokens,
                u->cached_tokens);
}

static void openai_finish_json(struct buf *out, const char *finish_reason)
{
    buf_append_str(out, ",\"finish_reason\":");
    openai_json_str_or_null(out, finish_reason);
}

/* {"content":[{"token","logprob","bytes","top_logprobs":[...]}...]} */
static void openai_chat_logprobs_json(struct buf *out, const struct openai_choice *c)
{
    if (!c->has_logprobs) {
        buf_append_str(out, "null");
        return;
    }
    buf_append_str(out, "{\"content\":[");
    for (int32_t i = 0; i < c->n_logprobs; i++) {
        const struct openai_logprob *lp = &c->logprobs[i];
        buf_append_str(out, i ? ",{\"token\":" : "{\"token\":");
        openai_json_string(out, lp->token, lp->len);
        buf_append_str(out, ",\"logprob\":");
        openai_json_logprob(out, lp->logprob);
        buf_append_str(out, ",\"bytes\":");
        openai_json_bytes(out, lp->token, lp->len);
        buf_append_str(out, ",\"top_logprobs\":[");
        for (int32_t k = 0; k < lp->n_top; k++) {
            const struct openai_top_logprob *t = &lp->top[k];
            buf_append_str(out, k ? ",{\"token\":" : "{\"token\":");
            openai_json_string(out, t->token, t->len);
            buf_append_str(out, ",\"logprob\":");
            openai_json_logprob(out, t->logprob);
            buf_append_str(out, ",\"bytes\":");
            openai_json_bytes(out, t->token, t->len);
            buf_append_str(out, "}");
        }
        buf_append_str(out, "]}");
    }
    buf_append_str(out, "],\"refusal\":null}");
}

/* {"tokens":[],"token_logprobs":[],"top_logprobs":[{tok:lp}],"text_offset":[]} */
static void openai_legacy_logprobs_json(struct buf *out, const struct openai_choice *c)
{
    if (!c->has_logprobs) {
        buf_append_str(out, "null");
        return;
    }
    buf_append_str(out, "{\"tokens\":[");
    for (int32_t i = 0; i < c->n_logprobs; i++) {
        if (i)
            buf_append_str(out, ",");
        openai_json_string(out, c->logprobs[i].token, c->logprobs[i].len);
    }
    buf_append_str(out, "],\"token_logprobs\":[");
    for (int32_t i = 0; i < c->n_logprobs; i++) {
        if (i)
            buf_append_str(out, ",");
        openai_json_logprob(out, c->logprobs[i].logprob);
    }
    buf_append_str(out, "],\"top_logprobs\":[");
    for (int32_t i = 0; i < c->n_logprobs; i++) {
        const struct openai_logprob *lp = &c->logprobs[i];
        buf_append_str(out, i ? ",{" : "{");
        for (int32_t k = 0; k < lp->n_top; k++) {
            if (k)
                buf_append_str(out, ",");
            openai_json_string(out, lp->top[k].token, lp->top[k].len);
            buf_append_str(out, ":");
            openai_json_logprob(out, lp->top[k].logprob);
        }
        buf_append_str(out, "}");
    }
    buf_append_str(out, "],\"text_offset\":[");
    for (int32_t i = 0; i < c->n_logprobs; i++)
        buf_appendf(out, i ? ",%d" : "%d", c->logprobs[i].text_offset);
    buf_append_str(out, "]}");
}

static void openai_text(struct buf *out, const struct openai_choice *c)
{
    openai_json_string(out, c->text ? c->text : "", c->text ? c->len : 0);
}

void openai_chat_completion_json(struct buf *out, const struct openai_meta *m,
                                 const struct openai_choice *c, const struct openai_usage *u)
{
    openai_chat_completion_json_n(out, m, c, 1, u);
}

void openai_chat_completion_json_n(struct buf *out, const struct openai_meta *m,
                                   const struct openai_choice *cs, int32_t n,
                                   const struct openai_usage *u)
{
    openai_head(out, m, "chat.completion");
    buf_append_str(out, ",\"choices\":[");
    for (int32_t i = 0; i < n; i++) {
        const struct openai_choice *c = &cs[i];
        buf_appendf(out, "%s{\"index\":%d,\"message\":{\"role\":\"assistant\",\"content\":",
                    i ? "," : "", c->index);
        openai_text(out, c);
        buf_append_str(out, ",\"refusal\":null},\"logprobs\":");
        openai_chat_logprobs_json(out, c);
        openai_finish_json(out, c->finish_reason ? c->finish_reason : "stop");
        buf_append_str(out, "}");
    }
    buf_append_str(out, "],\"usage\":");
    openai_usage_json(out, u);
    buf_append_str(out, "}");
}

void openai_chat_chunk_json(struct buf *out, const struct openai_meta *m,
                            const struct openai_choice *c, const struct openai_usage *u,
                            bool with_usage_null)
{
    openai_head(out, m, "chat.completion.chunk");
    if (!c) {
        buf_append_str(out, ",\"choices\":[],\"usage\":");
        openai_usage_json(out, u);
        buf_append_str(out, "}");
        return;
    }
    buf_appendf(out, ",\"choices\":[{\"index\":%d,\"delta\":{", c->index);
    /* the finishing chunk has an empty delta, as OpenAI sends it */
    bool comma = false;
    if (c->first) {
        buf_append_str(out, "\"role\":\"assistant\"");
        comma = true;
    }
    if (c->first || c->len > 0 || !c->finish_reason) {
        buf_append_str(out, comma ? ",\"content\":" : "\"content\":");
        openai_text(out, c);
    }
    buf_append_str(out, "},\"logprobs\":");
    openai_chat_logprobs_json(out, c);
    openai_finish_json(out, c->finish_reason);
    buf_append_str(out, "}]");
    if (with_usage_null)
        buf_append_str(out, ",\"usage\":null");
    buf_append_str(out, "}");
}

static void openai_completion_body(struct buf *out, const struct openai_meta *m,
                                   const struct openai_choice *cs, int32_t n,
                                   const struct openai_usage *u, bool final, bool with_usage_null)
{
    openai_head(out, m, "text_completion");
    if (!cs) {
        buf_append_str(out, ",\"choices\":[],\"usage\":");
        openai_usage_json(out, u);
        buf_append_str(out, "}");
        return;
    }
    buf_append_str(out, ",\"choices\":[");
    for (int32_t i = 0; i < n; i++) {
        const struct openai_choice *c = &cs[i];
        buf_appendf(out, "%s{\"index\":%d,\"text\":", i ? "," : "", c->index);
        openai_text(out, c);
        buf_append_str(out, ",\"logprobs\":");
        openai_legacy_logprobs_json(out, c);
        openai_finish_json(out, final && !c->finish_reason ? "stop" : c->finish_reason);
        buf_append_str(out, "}");
    }
    buf_append_str(out, "]");
    if (final) {
        buf_append_str(out, ",\"usage\":");
        openai_usage_json(out, u);
    } else if (with_usage_null) {
        buf_append_str(out, ",\"usage\":null");
    }
    buf_append_str(out, "}");
}

void openai_completion_json(struct buf *out, const struct openai_meta *m,
                            const struct openai_choice *c, const struct openai_usage *u)
{
    openai_completion_body(out, m, c, 1, u, true, false);
}

void openai_completion_json_n(struct buf *out, const struct openai_meta *m,
                              const struct openai_choice *cs, int32_t n,
                              const struct openai_usage *u)
{
    openai_completion_body(out, m, cs, n, u, true, false);
}

void openai_completion_chunk_json(struct buf *out, const struct openai_meta *m,
                                  const struct openai_choice *c, const struct openai_usage *u,
                                  bool with_usage_null)
{
    openai_completion_body(out, m, c, 1, u, false, with_usage_null);
}

void openai_model_json(struct buf *out, const struct openai_model_info *mi)
{
    buf_append_str(out, "{\"id\":");
    openai_json_string(out, mi->id, strlen(mi->id));
    buf_appendf(out,
                ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"cinder\","
                "\"max_model_len\":%d}",
                (long long)mi->created, mi->max_model_len);
}

void openai_models_json(struct buf *out, const struct openai_model_info *models, int32_t n)
{
    buf_append_str(out, "{\"object\":\"list\",\"data\":[");
    for (int32_t i = 0; i < n; i++) {
        if (i)
            buf_append_str(out, ",");
        openai_model_json(out, &models[i]);
    }
    buf_append_str(out, "]}");
}
