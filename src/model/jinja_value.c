/* jinja_value.c: the Jinja interpreter's value layer: the bump arena every render (and every
 * parsed template) allocates from, lists and insertion-ordered dicts, truthiness, equality and
 * ordering with Python semantics, str()/repr() and json.dumps-compatible output (tojson). */
#include "jinja_internal.h"

#include "cinder/xalloc.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

struct jchunk {
    struct jchunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define JA_CHUNK (64u << 10)

void ja_init(struct jarena *a, size_t limit)
{
    a->head = NULL;
    a->total = 0;
    a->limit = limit;
    a->over = false;
}

void ja_free(struct jarena *a)
{
    struct jchunk *c = a->head;
    while (c) {
        struct jchunk *n = c->next;
        free(c);
        c = n;
    }
    a->head = NULL;
    a->total = 0;
}

void *ja_alloc(struct jarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    a->total += n;
    if (a->limit && a->total > a->limit)
        a->over = true;
    struct jchunk *c = a->head;
    if (!c || c->cap - c->used < n) {
        if (n > JA_CHUNK / 4) {
            /* Big block: own chunk, linked behind the current one so it stays current. */
            struct jchunk *b = xmalloc(sizeof(*b) + n);
            b->used = n;
            b->cap = n;
            if (c) {
                b->next = c->next;
                c->next = b;
            } else {
                b->next = NULL;
                a->head = b;
            }
            memset(b->data, 0, n);
            return b->data;
        }
        c = xmalloc(sizeof(*c) + JA_CHUNK);
        c->used = 0;
        c->cap = JA_CHUNK;
        c->next = a->head;
        a->head = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *ja_strndup(struct jarena *a, const char *s, size_t n)
{
    char *p = ja_alloc(a, n + 1);
    if (n)
        memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void jn_push(struct jarena *a, struct jnodes *l, struct jnode *n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        struct jnode **v = ja_alloc(a, cap * sizeof(*v));
        if (l->n)
            memcpy(v, l->v, l->n * sizeof(*v));
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = n;
}

/* ---- lists and dicts ---- */

struct jlist *jl_new(struct jarena *a, size_t cap)
{
    struct jlist *l = ja_alloc(a, sizeof(*l));
    if (cap) {
        l->v = ja_alloc(a, cap * sizeof(struct jval));
        l->cap = cap;
    }
    return l;
}

void jl_push(struct jarena *a, struct jlist *l, struct jval v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        struct jval *nv = ja_alloc(a, cap * sizeof(*nv));
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof(*nv));
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
}

struct jval jv_list(struct jlist *l)
{
    struct jval v = {.t = JT_LIST};
    v.u.l = l;
    return v;
}

struct jdict *jd_new(struct jarena *a)
{
    return ja_alloc(a, sizeof(struct jdict));
}

struct jval jv_dict(struct jdict *d)
{
    struct jval v = {.t = JT_DICT};
    v.u.d = d;
    return v;
}

struct jval *jd_gets(const struct jdict *d, const char *key, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == JT_STR && d->k[i].u.s.n == n && memcmp(d->k[i].u.s.p, key, n) == 0)
            return &d->v[i];
    return NULL;
}

struct jval *jd_get(const struct jdict *d, struct jval key)
{
    if (key.t == JT_STR)
        return jd_gets(d, key.u.s.p, key.u.s.n);
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], key))
            return &d->v[i];
    return NULL;
}

void jd_set(struct jarena *a, struct jdict *d, struct jval key, struct jval v)
{
    struct jval *slot = jd_get(d, key);
    if (slot) {
        *slot = v;
        return;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        struct jval *nk = ja_alloc(a, cap * sizeof(*nk));
        struct jval *nv = ja_alloc(a, cap * sizeof(*nv));
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(*nk));
            memcpy(nv, d->v, d->n * sizeof(*nv));
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n] = v;
    d->n++;
}

bool jd_del(struct jdict *d, struct jval key)
{
    for (size_t i = 0; i < d->n; i++) {
        if (jv_equal(d->k[i], key)) {
            memmove(&d->k[i], &d->k[i + 1], (d->n - i - 1) * sizeof(struct jval));
            memmove(&d->v[i], &d->v[i + 1], (d->n - i - 1) * sizeof(struct jval));
            d->n--;
            return true;
        }
    }
    return false;
}

/* ---- utf-8 ---- */

size_t utf8_len(const char *p, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] & 0xC0) != 0x80)
            c++;
    return c;
}

size_t utf8_offset(const char *p, size_t n, size_t ci)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)p[i] & 0xC0) != 0x80) {
            if (c == ci)
                return i;
            c++;
        }
    }
    return n;
}

/* ---- truthiness, equality, ordering ---- */

bool jv_truthy(struct jval v)
{
    switch (v.t) {
    case JT_UNDEF:
    case JT_NONE: return false;
    case JT_BOOL: return v.u.b;
    case JT_INT: return v.u.i != 0;
    case JT_FLOAT: return v.u.f != 0.0;
    case JT_STR: return v.u.s.n > 0;
    case JT_LIST: return v.u.l->n > 0;
    case JT_DICT: return v.u.d->n > 0 || v.u.d->ns;
    default: return true;
    }
}

static bool is_num(struct jval v)
{
    return v.t == JT_INT || v.t == JT_FLOAT || v.t == JT_BOOL;
}

static double num_of(struct jval v)
{
    return v.t == JT_FLOAT ? v.u.f : v.t == JT_INT ? (double)v.u.i : (double)v.u.b;
}

bool jv_equal(struct jval a, struct jval b)
{
    if (is_num(a) && is_num(b)) {
        if (a.t != JT_FLOAT && b.t != JT_FLOAT) {
            int64_t x = a.t == JT_INT ? a.u.i : a.u.b, y = b.t == JT_INT ? b.u.i : b.u.b;
            return x == y;
        }
        return num_of(a) == num_of(b);
    }
    if (a.t != b.t)
        return false;
    switch (a.t) {
    case JT_UNDEF:
    case JT_NONE: return true;
    case JT_STR: return a.u.s.n == b.u.s.n && memcmp(a.u.s.p, b.u.s.p, a.u.s.n) == 0;
    case JT_LIST:
        if (a.u.l->n != b.u.l->n)
            return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->v[i], b.u.l->v[i]))
                return false;
        return true;
    case JT_DICT:
        if (a.u.d == b.u.d)
            return true;
        if (a.u.d->n != b.u.d->n)
            return false;
        for (size_t i = 0; i < a.u.d->n; i++) {
            struct jval *o = jd_get(b.u.d, a.u.d->k[i]);
            if (!o || !jv_equal(a.u.d->v[i], *o))
                return false;
        }
        return true;
    case JT_FUNC: return a.u.fn.id == b.u.fn.id && a.u.fn.macro == b.u.fn.macro;
    }
    return false;
}

static int lower_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t n = CND_MIN(an, bn);
    for (size_t i = 0; i < n; i++) {
        int x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x += 32;
        if (y >= 'A' && y <= 'Z')
            y += 32;
        if (x != y)
            return x - y;
    }
    return an < bn ? -1 : an > bn ? 1 : 0;
}

int jv_compare(struct jval a, struct jval b, bool ci, bool *ok)
{
    *ok = true;
    if (is_num(a) && is_num(b)) {
        if (a.t != JT_FLOAT && b.t != JT_FLOAT) {
            int64_t x = a.t == JT_INT ? a.u.i : a.u.b, y = b.t == JT_INT ? b.u.i : b.u.b;
            return x < y ? -1 : x > y;
        }
        double x = num_of(a), y = num_of(b);
        return x < y ? -1 : x > y;
    }
    if (a.t == JT_STR && b.t == JT_STR) {
        if (ci)
            return lower_cmp(a.u.s.p, a.u.s.n, b.u.s.p, b.u.s.n);
        size_t n = CND_MIN(a.u.s.n, b.u.s.n);
        int c = n ? memcmp(a.u.s.p, b.u.s.p, n) : 0;
        if (c)
            return c;
        return a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n;
    }
    if (a.t == JT_LIST && b.t == JT_LIST) {
        size_t n = CND_MIN(a.u.l->n, b.u.l->n);
        for (size_t i = 0; i < n; i++) {
            int c = jv_compare(a.u.l->v[i], b.u.l->v[i], ci, ok);
            if (c || !*ok)
                return c;
        }
        return a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
    }
    *ok = false;
    return a.t - b.t;
}

/* ---- str / repr ---- */

void jv_format_float(struct buf *b, double f)
{
    if (isnan(f)) {
        buf_append_str(b, "nan");
        return;
    }
    if (isinf(f)) {
        buf_append_str(b, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, f);
        if (strtod(tmp, NULL) == f)
            break;
    }
    /* Python writes 1e-05 / 1e+16 like C; it needs ".0" on integral values without exponent. */
    if (!strpbrk(tmp, ".en"))
        strcat(tmp, ".0");
    buf_append_str(b, tmp);
}

static void repr_str(struct buf *b, const char *p, size_t n)
{
    bool has_sq = memchr(p, '\'', n) != NULL, has_dq = memchr(p, '"', n) != NULL;
    char q = has_sq && !has_dq ? '"' : '\'';
    buf_append(b, &q, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '\\')
            buf_append_str(b, "\\\\");
        else if (c == (unsigned char)q) {
            buf_append(b, "\\", 1);
            buf_append(b, &q, 1);
        } else if (c == '\n')
            buf_append_str(b, "\\n");
        else if (c == '\r')
            buf_append_str(b, "\\r");
        else if (c == '\t')
            buf_append_str(b, "\\t");
        else if (c < 0x20 || c == 0x7f)
            buf_appendf(b, "\\x%02x", c);
        else
            buf_append(b, &p[i], 1);
    }
    buf_append(b, &q, 1);
}

void jv_repr(struct buf *b, struct jval v)
{
    switch (v.t) {
    case JT_STR: repr_str(b, v.u.s.p, v.u.s.n); return;
    case JT_LIST:
        buf_append(b, "[", 1);
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i)
                buf_append(b, ", ", 2);
            jv_repr(b, v.u.l->v[i]);
        }
        buf_append(b, "]", 1);
        return;
    case JT_DICT:
        if (v.u.d->ns)
            buf_append_str(b, "<Namespace ");
        buf_append(b, "{", 1);
        for (size_t i = 0; i < v.u.d->n; i++) {
            if (i)
                buf_append(b, ", ", 2);
            jv_repr(b, v.u.d->k[i]);
            buf_append(b, ": ", 2);
            jv_repr(b, v.u.d->v[i]);
        }
        buf_append(b, "}", 1);
        if (v.u.d->ns)
            buf_append(b, ">", 1);
        return;
    default: jv_to_str(b, v); return;
    }
}

void jv_to_str(struct buf *b, struct jval v)
{
    switch (v.t) {
    case JT_UNDEF: return;
    case JT_NONE: buf_append_str(b, "None"); return;
    case JT_BOOL: buf_append_str(b, v.u.b ? "True" : "False"); return;
    case JT_INT: buf_appendf(b, "%lld", (long long)v.u.i); return;
    case JT_FLOAT: jv_format_float(b, v.u.f); return;
    case JT_STR: buf_append(b, v.u.s.p, v.u.s.n); return;
    case JT_DICT:
        if (v.u.d->src) {
            buf_append(b, v.u.d->src, v.u.d->src_n);
            return;
        }
        jv_repr(b, v);
        return;
    case JT_LIST: jv_repr(b, v); return;
    case JT_FUNC: buf_append_str(b, "<function>"); return;
    }
}

const char *jv_type_name(struct jval v)
{
    static const char *names[] = {"undefined", "none", "bool", "int",     "float",
                                  "str",       "list", "dict", "function"};
    return names[v.t];
}

/* ---- json ---- */

static void json_str(struct buf *b, const char *p, size_t n, bool ensure_ascii)
{
    buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        switch (c) {
        case '"': buf_append_str(b, "\\\""); break;
        case '\\': buf_append_str(b, "\\\\"); break;
        case '\n': buf_append_str(b, "\\n"); break;
        case '\r': buf_append_str(b, "\\r"); break;
        case '\t': buf_append_str(b, "\\t"); break;
        case '\b': buf_append_str(b, "\\b"); break;
        case '\f': buf_append_str(b, "\\f"); break;
        default:
            if (c < 0x20) {
                buf_appendf(b, "\\u%04x", c);
            } else if (c >= 0x80 && ensure_ascii) {
                /* decode one UTF-8 sequence; invalid bytes pass as U+FFFD */
                uint32_t cp = 0xFFFD;
                size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
                if (len > 1 && i + len <= n) {
                    cp = c & (0x3F >> (len - 1));
                    for (size_t k = 1; k < len; k++)
                        cp = cp << 6 | ((unsigned char)p[i + k] & 0x3F);
                    i += len - 1;
                }
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    buf_appendf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
                } else {
                    buf_appendf(b, "\\u%04x", cp);
                }
            } else {
                buf_append(b, &p[i], 1);
            }
        }
    }
    buf_append(b, "\"", 1);
}

static void json_nl(struct buf *b, int indent, int depth)
{
    buf_append(b, "\n", 1);
    for (int i = 0; i < indent * depth; i++)
        buf_append(b, " ", 1);
}

struct json_opts {
    int indent;
    const char *isep, *ksep;
    bool ascii, sort;
};

static void json_val(struct buf *b, struct jval v, const struct json_opts *o, int depth)
{
    switch (v.t) {
    case JT_UNDEF:
    case JT_NONE: buf_append_str(b, "null"); return;
    case JT_BOOL: buf_append_str(b, v.u.b ? "true" : "false"); return;
    case JT_INT: buf_appendf(b, "%lld", (long long)v.u.i); return;
    case JT_FLOAT:
        if (isnan(v.u.f))
            buf_append_str(b, "NaN");
        else if (isinf(v.u.f))
            buf_append_str(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            jv_format_float(b, v.u.f);
        return;
    case JT_STR: json_str(b, v.u.s.p, v.u.s.n, o->ascii); return;
    case JT_FUNC: buf_append_str(b, "null"); return;
    case JT_LIST:
        if (v.u.l->n == 0 || depth > 200) {
            buf_append_str(b, "[]");
            return;
        }
        buf_append(b, "[", 1);
        for (size_t i = 0; i < v.u.l->n; i++) {
            if (i)
                buf_append_str(b, o->isep);
            if (o->indent >= 0)
                json_nl(b, o->indent, depth + 1);
            json_val(b, v.u.l->v[i], o, depth + 1);
        }
        if (o->indent >= 0)
            json_nl(b, o->indent, depth);
        buf_append(b, "]", 1);
        return;
    case JT_DICT: {
        struct jdict *d = v.u.d;
        if (d->n == 0 || depth > 200) {
            buf_append_str(b, "{}");
            return;
        }
        size_t *ord = xmalloc(d->n * sizeof(size_t));
        for (size_t i = 0; i < d->n; i++)
            ord[i] = i;
        if (o->sort) { /* insertion sort: stable, dicts are small */
            for (size_t i = 1; i < d->n; i++) {
                size_t x = ord[i], j = i;
                bool ok;
                while (j > 0 && jv_compare(d->k[ord[j - 1]], d->k[x], false, &ok) > 0) {
                    ord[j] = ord[j - 1];
                    j--;
                }
                ord[j] = x;
            }
        }
        buf_append(b, "{", 1);
        for (size_t i = 0; i < d->n; i++) {
            if (i)
                buf_append_str(b, o->isep);
            if (o->indent >= 0)
                json_nl(b, o->indent, depth + 1);
            struct jval k = d->k[ord[i]];
            if (k.t == JT_STR) {
                json_str(b, k.u.s.p, k.u.s.n, o->ascii);
            } else {
                struct buf t;
                buf_init(&t);
                if (k.t == JT_NONE)
                    buf_append_str(&t, "null");
                else if (k.t == JT_BOOL)
                    buf_append_str(&t, k.u.b ? "true" : "false");
                else
                    jv_to_str(&t, k);
                json_str(b, t.data ? t.data : "", t.len, o->ascii);
                buf_deinit(&t);
            }
            buf_append_str(b, o->ksep);
            json_val(b, d->v[ord[i]], o, depth + 1);
        }
        free(ord);
        if (o->indent >= 0)
            json_nl(b, o->indent, depth);
        buf_append(b, "}", 1);
        return;
    }
    }
}

void jv_to_json(struct buf *b, struct jval v, int indent, const char *item_sep, const char *key_sep,
                bool ensure_ascii, bool sort_keys)
{
    struct json_opts o = {indent, item_sep, key_sep, ensure_ascii, sort_keys};
    json_val(b, v, &o, 0);
}

/* ---- from cJSON ---- */

struct jval jv_from_cjson(struct jarena *a, const cJSON *j, bool copy)
{
    if (!j || cJSON_IsNull(j))
        return jv_none();
    if (cJSON_IsBool(j))
        return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            return jv_int((int64_t)d);
        return jv_float(d);
    }
    if (cJSON_IsString(j)) {
        size_t n = strlen(j->valuestring);
        return jv_str(copy ? ja_strndup(a, j->valuestring, n) : j->valuestring, n);
    }
    if (cJSON_IsArray(j)) {
        struct jlist *l = jl_new(a, (size_t)cJSON_GetArraySize(j));
        const cJSON *e;
        cJSON_ArrayForEach(e, j) jl_push(a, l, jv_from_cjson(a, e, copy));
        return jv_list(l);
    }
    if (cJSON_IsObject(j)) {
        struct jdict *d = jd_new(a);
        const cJSON *e;
        cJSON_ArrayForEach(e, j)
        {
            const char *k = e->string ? e->string : "";
            size_t kn = strlen(k);
            jd_set(a, d, jv_str(copy ? ja_strndup(a, k, kn) : k, kn), jv_from_cjson(a, e, copy));
        }
        return jv_dict(d);
    }
    return jv_none();
}
