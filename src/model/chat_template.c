/* chat_template.c: the public face of the Jinja interpreter (chat_template.h): parses a model's
 * chat template once, and per request normalises the OpenAI messages (text-part arrays joined,
 * tool-call arguments parsed to objects), builds the HF-style context (messages,
 * add_generation_prompt, bos/eos tokens, extra variables) and renders under limits. Also the
 * plain "role: content" fallback for models that ship no template. */
#include "cinder/chat_template.h"

#include "cinder/status.h"
#include "cinder/xalloc.h"
#include "jinja_internal.h"

#include <stdlib.h>
#include <string.h>

struct chat_template {
    struct jarena arena; /* source copy + AST */
    const struct jnode *root;
};

struct chat_template *chat_template_create(const char *source, char *err)
{
    if (!source) {
        err_set(err, "no template source");
        return NULL;
    }
    struct chat_template *t = xcalloc(1, sizeof(*t));
    ja_init(&t->arena, 0);
    size_t n = strlen(source);
    const char *src = ja_strndup(&t->arena, source, n);
    t->root = jinja_parse(&t->arena, src, n, err);
    if (!t->root) {
        ja_free(&t->arena);
        free(t);
        return NULL;
    }
    return t;
}

void chat_template_destroy(struct chat_template *t)
{
    if (!t)
        return;
    ja_free(&t->arena);
    free(t);
}

/* Concatenate the text parts of an OpenAI content array; false if any part is not text. */
static bool text_parts(const cJSON *content, struct buf *b)
{
    const cJSON *part;
    cJSON_ArrayForEach(part, content)
    {
        if (cJSON_IsString(part)) {
            buf_append_str(b, part->valuestring);
            continue;
        }
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsObject(part) || !cJSON_IsString(type) ||
            strcmp(type->valuestring, "text") != 0 || !cJSON_IsString(text))
            return false;
        buf_append_str(b, text->valuestring);
    }
    return true;
}

static struct jval message_value(struct jarena *a, const cJSON *m, bool null_to_empty)
{
    struct jval v = jv_from_cjson(a, m, false);
    if (v.t != JT_DICT)
        return v;
    struct jdict *d = v.u.d;
    struct jval *cv = jd_gets(d, "content", 7);
    if (null_to_empty && cv && cv->t == JT_NONE)
        *cv = jv_str("", 0);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (cJSON_IsArray(content)) {
        struct buf b;
        buf_init(&b);
        if (text_parts(content, &b))
            jd_set(a, d, jv_str("content", 7),
                   jv_str(ja_strndup(a, b.data ? b.data : "", b.len), b.len));
        buf_deinit(&b);
    }
    struct jval *calls = jd_gets(d, "tool_calls", 10);
    if (calls && calls->t == JT_LIST) {
        for (size_t i = 0; i < calls->u.l->n; i++) {
            struct jval call = calls->u.l->v[i];
            if (call.t != JT_DICT)
                continue;
            struct jval *fn = jd_gets(call.u.d, "function", 8);
            if (!fn || fn->t != JT_DICT)
                continue;
            struct jval *args = jd_gets(fn->u.d, "arguments", 9);
            if (!args || args->t != JT_STR)
                continue;
            cJSON *j = cJSON_ParseWithLength(args->u.s.p, args->u.s.n);
            if (j && cJSON_IsObject(j)) {
                struct jval parsed = jv_from_cjson(a, j, true);
                parsed.u.d->src = args->u.s.p;
                parsed.u.d->src_n = args->u.s.n;
                *args = parsed;
            }
            cJSON_Delete(j);
        }
    }
    return v;
}

static int render_once(const struct chat_template *t, const cJSON *messages,
                       const struct chat_template_params *p, bool null_to_empty, struct buf *out,
                       char *err, bool *raised)
{
    struct jarena a;
    ja_init(&a, CHAT_TEMPLATE_MAX_MEMORY);
    struct jdict *g = jd_new(&a);
    if (cJSON_IsObject(p->extra_context)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, p->extra_context)
        {
            if (e->string)
                jd_set(&a, g, jv_str(e->string, strlen(e->string)), jv_from_cjson(&a, e, false));
        }
    }
    struct jlist *msgs = jl_new(&a, (size_t)cJSON_GetArraySize(messages));
    const cJSON *m;
    cJSON_ArrayForEach(m, messages) jl_push(&a, msgs, message_value(&a, m, null_to_empty));
    jd_set(&a, g, jv_str("messages", 8), jv_list(msgs));
    jd_set(&a, g, jv_str("add_generation_prompt", 21), jv_bool(p->add_generation_prompt));
    const char *bos = p->bos_token ? p->bos_token : "";
    const char *eos = p->eos_token ? p->eos_token : "";
    jd_set(&a, g, jv_str("bos_token", 9), jv_str(bos, strlen(bos)));
    jd_set(&a, g, jv_str("eos_token", 9), jv_str(eos, strlen(eos)));
    struct jinja_render_opts o = {
        .max_output = CHAT_TEMPLATE_MAX_OUTPUT,
        .max_steps = CHAT_TEMPLATE_MAX_STEPS,
        .max_depth = CHAT_TEMPLATE_MAX_DEPTH,
        .now = p->now,
    };
    int rc = jinja_render(t->root, &a, g, &o, out, err);
    *raised = o.raised;
    ja_free(&a);
    return rc;
}

static bool has_null_content(const cJSON *messages)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsNull(c))
            return true;
    }
    return false;
}

int chat_template_render(const struct chat_template *t, const cJSON *messages,
                         const struct chat_template_params *p, struct buf *out, char *err)
{
    if (!t || !cJSON_IsArray(messages) || !p) {
        err_set(err, "messages must be an array");
        return -CND_EINVAL;
    }
    size_t start = out->len;
    bool raised = false;
    int rc = render_once(t, messages, p, false, out, err, &raised);
    /* Many templates do string operations on message.content and break on the null content
     * OpenAI clients send next to tool_calls (HF would fail too). If rendering failed with a
     * runtime error (not the template's own raise_exception), retry once with null content
     * as "". */
    if (rc && !raised && has_null_content(messages)) {
        out->len = start;
        if (out->data)
            out->data[start] = 0;
        rc = render_once(t, messages, p, true, out, err, &raised);
    }
    return rc;
}

int chat_template_render_fallback(const cJSON *messages, const struct chat_template_params *p,
                                  struct buf *out, char *err)
{
    if (!cJSON_IsArray(messages)) {
        err_set(err, "messages must be an array");
        return -CND_EINVAL;
    }
    if (p && p->bos_token)
        buf_append_str(out, p->bos_token);
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            err_set(err, "each message needs a string role");
            return -CND_EINVAL;
        }
        buf_append_str(out, role->valuestring);
        buf_append_str(out, ": ");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsString(content)) {
            buf_append_str(out, content->valuestring);
        } else if (cJSON_IsArray(content)) {
            const cJSON *part;
            cJSON_ArrayForEach(part, content)
            {
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (cJSON_IsString(part))
                    buf_append_str(out, part->valuestring);
                else if (cJSON_IsString(text))
                    buf_append_str(out, text->valuestring);
            }
        }
        buf_append_str(out, "\n");
    }
    if (p && p->add_generation_prompt)
        buf_append_str(out, "assistant:");
    return 0;
}
