/* jinja_eval.c: tree-walking evaluator of the Jinja subset: statements, expressions, scoping
 * (for loops and macros open a scope, `set` writes to the innermost one, namespace() objects
 * carry state out of loops), filters, tests, Python string/dict/list methods and the globals HF
 * provides (raise_exception, strftime_now, range, namespace, dict).
 * Undefined is lenient: it renders as "", is falsy, iterates as empty, and attribute or item
 * access on it gives undefined. Every evaluation step, output byte and arena byte is counted
 * against the render limits, so hostile templates fail instead of hanging. */
#include "jinja_internal.h"

#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BF_MACRO = 0, BF_RANGE, BF_NAMESPACE, BF_DICT, BF_RAISE, BF_STRFTIME, BF_JOINER_CALL };
enum { CTL_NONE = 0, CTL_BREAK, CTL_CONTINUE };

struct frame {
    struct jdict *vars;
    struct frame *parent;
};

struct ctx {
    struct jarena *a;
    struct jdict *globals;
    struct frame *root, *top;
    struct buf *out;
    char *err;
    bool failed, raised;
    uint64_t steps, max_steps;
    size_t max_output;
    int depth, max_depth;
    int ctl;
    int64_t now;
};

struct args {
    struct jval *pos;
    size_t npos;
    const struct jnode *const *kwn; /* JN_KW nodes (names) */
    struct jval *kwv;
    size_t nkw;
};

static int fail(struct ctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct ctx *c, int line, const char *fmt, ...)
{
    if (!c->failed) {
        char msg[CND_ERR_LEN];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        err_set(c->err, "line %d: %s", line, msg);
        c->failed = true;
    }
    return -1;
}

static int step(struct ctx *c, int line)
{
    if (c->failed)
        return -1;
    if (++c->steps > c->max_steps)
        return fail(c, line, "template exceeded the evaluation step limit");
    if (c->a->over)
        return fail(c, line, "template exceeded the memory limit");
    return 0;
}

static bool name_eq(const char *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n == k && memcmp(p, s, n) == 0;
}

static struct jval mkstr(struct ctx *c, const char *p, size_t n)
{
    return jv_str(ja_strndup(c->a, p, n), n);
}

static struct jval buf_val(struct ctx *c, struct buf *b)
{
    struct jval v = mkstr(c, b->data ? b->data : "", b->len);
    buf_deinit(b);
    return v;
}

static struct jval as_str(struct ctx *c, struct jval v)
{
    if (v.t == JT_STR)
        return v;
    struct buf b;
    buf_init(&b);
    jv_to_str(&b, v);
    return buf_val(c, &b);
}

static int emit(struct ctx *c, int line, const char *p, size_t n)
{
    if (c->out->len + n > c->max_output)
        return fail(c, line, "template output exceeded %zu bytes", c->max_output);
    buf_append(c->out, p, n);
    return 0;
}

static struct jval *argget(const struct args *a, size_t idx, const char *kw)
{
    if (idx < a->npos)
        return &a->pos[idx];
    if (kw)
        for (size_t i = 0; i < a->nkw; i++)
            if (name_eq(a->kwn[i]->name, a->kwn[i]->name_n, kw))
                return &a->kwv[i];
    return NULL;
}

static struct jval lookup(struct ctx *c, const char *name, size_t n);
static int eval(struct ctx *c, const struct jnode *n, struct jval *out);
static int exec_body(struct ctx *c, const struct jnodes *body);
static int apply_filter(struct ctx *c, int line, const char *name, size_t nn, struct jval v,
                        const struct args *a, struct jval *out);
static int apply_test(struct ctx *c, int line, const char *name, size_t nn, struct jval v,
                      const struct args *a, bool *out);
static int call_value(struct ctx *c, int line, struct jval fn, const struct args *a,
                      const char *what, struct jval *out);

static int eval_args(struct ctx *c, const struct jnodes *pos, const struct jnodes *kw,
                     struct args *a)
{
    a->npos = pos->n;
    a->nkw = kw->n;
    a->pos = pos->n ? ja_alloc(c->a, pos->n * sizeof(struct jval)) : NULL;
    a->kwv = kw->n ? ja_alloc(c->a, kw->n * sizeof(struct jval)) : NULL;
    a->kwn = (const struct jnode *const *)kw->v;
    for (size_t i = 0; i < pos->n; i++)
        if (eval(c, pos->v[i], &a->pos[i]))
            return -1;
    for (size_t i = 0; i < kw->n; i++)
        if (eval(c, kw->v[i]->a, &a->kwv[i]))
            return -1;
    return 0;
}

/* ---- string helpers ---- */

static bool ws(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

static bool in_set(char ch, const struct jval *chars)
{
    if (!chars || chars->t != JT_STR)
        return ws(ch);
    return memchr(chars->u.s.p, ch, chars->u.s.n) != NULL;
}

static struct jval str_strip(struct jval s, bool left, bool right, const struct jval *chars)
{
    const char *p = s.u.s.p;
    size_t b = 0, e = s.u.s.n;
    if (left)
        while (b < e && in_set(p[b], chars))
            b++;
    if (right)
        while (e > b && in_set(p[e - 1], chars))
            e--;
    return jv_str(p + b, e - b);
}

enum { CASE_UPPER, CASE_LOWER, CASE_TITLE, CASE_CAP, CASE_PYTITLE };

static struct jval str_case(struct ctx *c, struct jval s, int mode)
{
    char *d = ja_alloc(c->a, s.u.s.n + 1);
    bool boundary = true;
    for (size_t i = 0; i < s.u.s.n; i++) {
        char ch = s.u.s.p[i];
        bool up = mode == CASE_UPPER ||
                  ((mode == CASE_TITLE || mode == CASE_PYTITLE) && boundary) ||
                  (mode == CASE_CAP && i == 0);
        if (up && ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 32);
        else if (!up && mode != CASE_UPPER && ch >= 'A' && ch <= 'Z')
            ch = (char)(ch + 32);
        d[i] = ch;
        char o = s.u.s.p[i];
        bool alpha = (o >= 'a' && o <= 'z') || (o >= 'A' && o <= 'Z') || (unsigned char)o >= 0x80;
        if (mode == CASE_PYTITLE)
            boundary = !alpha;
        else
            boundary = ws(o) || o == '-' || o == '(' || o == '{' || o == '[' || o == '<';
    }
    return jv_str(d, s.u.s.n);
}

static struct jval str_replace(struct ctx *c, struct jval s, struct jval from, struct jval to,
                               int64_t count)
{
    if (from.u.s.n == 0 && count != 0) {
        /* python: insert `to` between characters */
        struct buf b;
        buf_init(&b);
        int64_t done = 0;
        for (size_t i = 0; i <= s.u.s.n; i++) {
            bool start = i == s.u.s.n || ((unsigned char)s.u.s.p[i] & 0xC0) != 0x80;
            if (start && (count < 0 || done < count)) {
                buf_append(&b, to.u.s.p, to.u.s.n);
                done++;
            }
            if (i < s.u.s.n)
                buf_append(&b, &s.u.s.p[i], 1);
        }
        return buf_val(c, &b);
    }
    struct buf b;
    buf_init(&b);
    size_t i = 0;
    int64_t done = 0;
    while (i < s.u.s.n) {
        const char *hit = (count < 0 || done < count) && from.u.s.n
                              ? memmem(s.u.s.p + i, s.u.s.n - i, from.u.s.p, from.u.s.n)
                              : NULL;
        if (!hit) {
            buf_append(&b, s.u.s.p + i, s.u.s.n - i);
            break;
        }
        size_t at = (size_t)(hit - s.u.s.p);
        buf_append(&b, s.u.s.p + i, at - i);
        buf_append(&b, to.u.s.p, to.u.s.n);
        i = at + from.u.s.n;
        done++;
    }
    return buf_val(c, &b);
}

/* python str.split(sep=None, maxsplit=-1); rsplit when from_right */
static struct jval str_split(struct ctx *c, struct jval s, const struct jval *sep, int64_t maxsplit,
                             bool from_right)
{
    struct jlist *l = jl_new(c->a, 0);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n;
    if (!sep || sep->t != JT_STR) {
        if (from_right) {
            /* collect from the right, then reverse */
            size_t e = n;
            int64_t done = 0;
            while (e > 0) {
                while (e > 0 && ws(p[e - 1]))
                    e--;
                if (e == 0)
                    break;
                size_t b = e;
                if (maxsplit >= 0 && done >= maxsplit) {
                    size_t st = 0;
                    while (st < e && ws(p[st]))
                        st++;
                    jl_push(c->a, l, jv_str(p + st, e - st));
                    break;
                }
                while (b > 0 && !ws(p[b - 1]))
                    b--;
                jl_push(c->a, l, jv_str(p + b, e - b));
                done++;
                e = b;
            }
            for (size_t i = 0; i < l->n / 2; i++) {
                struct jval t = l->v[i];
                l->v[i] = l->v[l->n - 1 - i];
                l->v[l->n - 1 - i] = t;
            }
            return jv_list(l);
        }
        size_t i = 0;
        int64_t done = 0;
        while (i < n) {
            while (i < n && ws(p[i]))
                i++;
            if (i >= n)
                break;
            if (maxsplit >= 0 && done >= maxsplit) {
                size_t e = n;
                while (e > i && ws(p[e - 1]))
                    e--;
                jl_push(c->a, l, jv_str(p + i, e - i));
                break;
            }
            size_t st = i;
            while (i < n && !ws(p[i]))
                i++;
            jl_push(c->a, l, jv_str(p + st, i - st));
            done++;
        }
        return jv_list(l);
    }
    const char *sp = sep->u.s.p;
    size_t sn = sep->u.s.n;
    if (from_right) {
        size_t e = n;
        int64_t done = 0;
        struct jlist *r = jl_new(c->a, 0);
        for (;;) {
            const char *hit = NULL;
            if (maxsplit < 0 || done < maxsplit)
                for (size_t k = e; k >= sn && !hit; k--)
                    if (memcmp(p + k - sn, sp, sn) == 0)
                        hit = p + k - sn;
            if (!hit) {
                jl_push(c->a, r, jv_str(p, e));
                break;
            }
            size_t at = (size_t)(hit - p);
            jl_push(c->a, r, jv_str(p + at + sn, e - at - sn));
            e = at;
            done++;
        }
        for (size_t i = r->n; i > 0; i--)
            jl_push(c->a, l, r->v[i - 1]);
        return jv_list(l);
    }
    size_t i = 0;
    int64_t done = 0;
    for (;;) {
        const char *hit = (maxsplit < 0 || done < maxsplit) ? memmem(p + i, n - i, sp, sn) : NULL;
        if (!hit) {
            jl_push(c->a, l, jv_str(p + i, n - i));
            break;
        }
        size_t at = (size_t)(hit - p);
        jl_push(c->a, l, jv_str(p + i, at - i));
        i = at + sn;
        done++;
    }
    return jv_list(l);
}

static bool str_has_prefix(struct jval s, struct jval x, bool suffix)
{
    if (x.t == JT_LIST) {
        for (size_t i = 0; i < x.u.l->n; i++)
            if (str_has_prefix(s, x.u.l->v[i], suffix))
                return true;
        return false;
    }
    if (x.t != JT_STR || x.u.s.n > s.u.s.n)
        return false;
    const char *at = suffix ? s.u.s.p + s.u.s.n - x.u.s.n : s.u.s.p;
    return memcmp(at, x.u.s.p, x.u.s.n) == 0;
}

/* ---- containers ---- */

static int to_list(struct ctx *c, int line, struct jval v, struct jlist **out)
{
    switch (v.t) {
    case JT_UNDEF:
    case JT_NONE: *out = jl_new(c->a, 0); return 0;
    case JT_LIST: *out = v.u.l; return 0;
    case JT_DICT: {
        struct jlist *l = jl_new(c->a, v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++)
            jl_push(c->a, l, v.u.d->k[i]);
        *out = l;
        return 0;
    }
    case JT_STR: {
        struct jlist *l = jl_new(c->a, v.u.s.n);
        const char *p = v.u.s.p;
        size_t n = v.u.s.n, i = 0;
        while (i < n) {
            size_t k = i + 1;
            while (k < n && ((unsigned char)p[k] & 0xC0) == 0x80)
                k++;
            jl_push(c->a, l, jv_str(p + i, k - i));
            i = k;
        }
        *out = l;
        return 0;
    }
    default: return fail(c, line, "'%s' object is not iterable", jv_type_name(v));
    }
}

static struct jval copy_list(struct ctx *c, const struct jlist *src)
{
    struct jlist *l = jl_new(c->a, src->n);
    for (size_t i = 0; i < src->n; i++)
        jl_push(c->a, l, src->v[i]);
    return jv_list(l);
}

static struct jval dict_items(struct ctx *c, const struct jdict *d)
{
    struct jlist *l = jl_new(c->a, d->n);
    for (size_t i = 0; i < d->n; i++) {
        struct jlist *pair = jl_new(c->a, 2);
        jl_push(c->a, pair, d->k[i]);
        jl_push(c->a, pair, d->v[i]);
        jl_push(c->a, l, jv_list(pair));
    }
    return jv_list(l);
}

static int contains(struct ctx *c, int line, struct jval hay, struct jval needle, bool *out)
{
    switch (hay.t) {
    case JT_STR:
        if (needle.t != JT_STR)
            return fail(c, line, "'in <string>' requires string as left operand, not %s",
                        jv_type_name(needle));
        *out =
            needle.u.s.n == 0 || memmem(hay.u.s.p, hay.u.s.n, needle.u.s.p, needle.u.s.n) != NULL;
        return 0;
    case JT_LIST:
        *out = false;
        for (size_t i = 0; i < hay.u.l->n; i++)
            if (jv_equal(hay.u.l->v[i], needle)) {
                *out = true;
                break;
            }
        return 0;
    case JT_DICT: *out = jd_get(hay.u.d, needle) != NULL; return 0;
    case JT_UNDEF:
    case JT_NONE: *out = false; return 0;
    default: return fail(c, line, "argument of type '%s' is not iterable", jv_type_name(hay));
    }
}

static struct jval get_attr(struct jval v, const char *name, size_t n)
{
    if (v.t == JT_DICT) {
        struct jval *x = jd_gets(v.u.d, name, n);
        if (x)
            return *x;
    }
    return jv_undef();
}

static int64_t norm_index(int64_t i, size_t n)
{
    return i < 0 ? i + (int64_t)n : i;
}

static struct jval get_item(struct ctx *c, struct jval v, struct jval k)
{
    if (v.t == JT_DICT) {
        struct jval *x = jd_get(v.u.d, k);
        return x ? *x : jv_undef();
    }
    if (k.t == JT_BOOL)
        k = jv_int(k.u.b);
    if (v.t == JT_LIST && k.t == JT_INT) {
        int64_t i = norm_index(k.u.i, v.u.l->n);
        return i >= 0 && (size_t)i < v.u.l->n ? v.u.l->v[i] : jv_undef();
    }
    if (v.t == JT_STR && k.t == JT_INT) {
        size_t len = utf8_len(v.u.s.p, v.u.s.n);
        int64_t i = norm_index(k.u.i, len);
        if (i < 0 || (size_t)i >= len)
            return jv_undef();
        size_t b = utf8_offset(v.u.s.p, v.u.s.n, (size_t)i);
        size_t e = utf8_offset(v.u.s.p, v.u.s.n, (size_t)i + 1);
        return jv_str(v.u.s.p + b, e - b);
    }
    if (v.t == JT_STR && k.t == JT_STR)
        return jv_undef();
    (void)c;
    return jv_undef();
}

static int do_slice(struct ctx *c, int line, struct jval v, const struct jval *start,
                    const struct jval *stop, const struct jval *stepv, struct jval *out)
{
    int64_t st = 1;
    if (stepv && stepv->t != JT_NONE && stepv->t != JT_UNDEF) {
        if (stepv->t != JT_INT)
            return fail(c, line, "slice step must be an integer");
        st = stepv->u.i;
        if (st == 0)
            return fail(c, line, "slice step cannot be zero");
    }
    size_t len;
    if (v.t == JT_LIST)
        len = v.u.l->n;
    else if (v.t == JT_STR)
        len = utf8_len(v.u.s.p, v.u.s.n);
    else if (v.t == JT_UNDEF || v.t == JT_NONE) {
        *out = jv_undef();
        return 0;
    } else
        return fail(c, line, "'%s' object is not subscriptable", jv_type_name(v));
    int64_t L = (int64_t)len, b, e;
    bool has_b = start && start->t == JT_INT, has_e = stop && stop->t == JT_INT;
    if (st > 0) {
        b = has_b ? norm_index(start->u.i, len) : 0;
        e = has_e ? norm_index(stop->u.i, len) : L;
        b = b < 0 ? 0 : b > L ? L : b;
        e = e < 0 ? 0 : e > L ? L : e;
    } else {
        b = has_b ? norm_index(start->u.i, len) : L - 1;
        e = has_e ? norm_index(stop->u.i, len) : -1;
        b = b < -1 ? -1 : b >= L ? L - 1 : b;
        e = e < -1 ? -1 : e >= L ? L - 1 : e;
    }
    if (v.t == JT_LIST) {
        struct jlist *l = jl_new(c->a, 0);
        for (int64_t i = b; st > 0 ? i < e : i > e; i += st)
            jl_push(c->a, l, v.u.l->v[i]);
        *out = jv_list(l);
        return 0;
    }
    if (st == 1) {
        if (e < b)
            e = b;
        size_t ob = utf8_offset(v.u.s.p, v.u.s.n, (size_t)b);
        size_t oe = utf8_offset(v.u.s.p, v.u.s.n, (size_t)e);
        *out = jv_str(v.u.s.p + ob, oe - ob);
        return 0;
    }
    struct buf bb;
    buf_init(&bb);
    for (int64_t i = b; st > 0 ? i < e : i > e; i += st) {
        size_t ob = utf8_offset(v.u.s.p, v.u.s.n, (size_t)i);
        size_t oe = utf8_offset(v.u.s.p, v.u.s.n, (size_t)i + 1);
        buf_append(&bb, v.u.s.p + ob, oe - ob);
    }
    *out = buf_val(c, &bb);
    return 0;
}

/* ---- sorting (stable merge sort, counted in steps) ---- */

struct sort_key {
    struct jval key;
    struct jval val;
};

struct sorter {
    struct ctx *c;
    int line;
    bool ci, reverse, bad;
};

static int sk_cmp(struct sorter *s, const struct sort_key *x, const struct sort_key *y)
{
    bool ok;
    int r = jv_compare(x->key, y->key, s->ci, &ok);
    if (!ok)
        s->bad = true;
    s->c->steps++;
    return s->reverse ? -r : r;
}

static void msort(struct sorter *s, struct sort_key *v, struct sort_key *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    msort(s, v, tmp, h);
    msort(s, v + h, tmp, n - h);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = sk_cmp(s, &v[j], &v[i]) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof(*v));
}

static struct jval attr_path(struct jval v, struct jval attr)
{
    if (attr.t == JT_INT)
        return v.t == JT_LIST ? get_item(NULL, v, attr) : get_attr(v, "", 0);
    if (attr.t != JT_STR)
        return jv_undef();
    const char *p = attr.u.s.p, *e = p + attr.u.s.n;
    while (p <= e) {
        const char *dot = memchr(p, '.', (size_t)(e - p));
        const char *end = dot ? dot : e;
        if (v.t == JT_LIST) {
            char num[24];
            size_t ln = CND_MIN((size_t)(end - p), sizeof(num) - 1);
            memcpy(num, p, ln);
            num[ln] = 0;
            v = get_item(NULL, v, jv_int(strtoll(num, NULL, 10)));
        } else {
            v = get_attr(v, p, (size_t)(end - p));
        }
        if (!dot)
            break;
        p = dot + 1;
    }
    return v;
}

static int sort_list(struct ctx *c, int line, const struct jlist *src, bool reverse, bool ci,
                     const struct jval *attribute, bool by_value_pairs, struct jlist **out)
{
    size_t n = src->n;
    struct sort_key *v = xmalloc((n ? n : 1) * sizeof(*v));
    struct sort_key *tmp = xmalloc((n ? n : 1) * sizeof(*tmp));
    for (size_t i = 0; i < n; i++) {
        v[i].val = src->v[i];
        if (by_value_pairs)
            v[i].key = get_item(c, src->v[i], jv_int(attribute ? 1 : 0));
        else if (attribute && attribute->t != JT_NONE && attribute->t != JT_UNDEF)
            v[i].key = attr_path(src->v[i], *attribute);
        else
            v[i].key = src->v[i];
    }
    struct sorter s = {c, line, ci, reverse, false};
    msort(&s, v, tmp, n);
    struct jlist *l = jl_new(c->a, n);
    for (size_t i = 0; i < n; i++)
        jl_push(c->a, l, v[i].val);
    free(v);
    free(tmp);
    *out = l;
    if (s.bad)
        return fail(c, line, "cannot sort values of different types");
    return step(c, line);
}

/* ---- printf-style and str.format ---- */

static int percent_format(struct ctx *c, int line, struct jval fmt, struct jval args,
                          struct jval *out)
{
    struct buf b;
    buf_init(&b);
    size_t ai = 0;
    const char *p = fmt.u.s.p;
    for (size_t i = 0; i < fmt.u.s.n; i++) {
        if (p[i] != '%' || i + 1 >= fmt.u.s.n) {
            buf_append(&b, &p[i], 1);
            continue;
        }
        char f = p[++i];
        if (f == '%') {
            buf_append(&b, "%", 1);
            continue;
        }
        struct jval a;
        if (args.t == JT_LIST) {
            if (ai >= args.u.l->n) {
                buf_deinit(&b);
                return fail(c, line, "not enough arguments for format string");
            }
            a = args.u.l->v[ai++];
        } else {
            if (ai++ > 0) {
                buf_deinit(&b);
                return fail(c, line, "not enough arguments for format string");
            }
            a = args;
        }
        if (f == 's')
            jv_to_str(&b, a);
        else if (f == 'r')
            jv_repr(&b, a);
        else if (f == 'd' || f == 'i')
            buf_appendf(&b, "%lld",
                        (long long)(a.t == JT_FLOAT ? (int64_t)a.u.f
                                    : a.t == JT_INT ? a.u.i
                                                    : 0));
        else if (f == 'f')
            buf_appendf(&b, "%f", a.t == JT_FLOAT ? a.u.f : a.t == JT_INT ? (double)a.u.i : 0.0);
        else {
            buf_deinit(&b);
            return fail(c, line, "unsupported format character '%c'", f);
        }
    }
    *out = buf_val(c, &b);
    return 0;
}

static int str_format(struct ctx *c, int line, struct jval fmt, const struct args *a,
                      struct jval *out)
{
    struct buf b;
    buf_init(&b);
    const char *p = fmt.u.s.p;
    size_t n = fmt.u.s.n, auto_idx = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '{' && i + 1 < n && p[i + 1] == '{') {
            buf_append(&b, "{", 1);
            i++;
        } else if (p[i] == '}' && i + 1 < n && p[i + 1] == '}') {
            buf_append(&b, "}", 1);
            i++;
        } else if (p[i] == '{') {
            const char *close = memchr(p + i, '}', n - i);
            if (!close) {
                buf_deinit(&b);
                return fail(c, line, "bad format string");
            }
            size_t fb = i + 1, fe = (size_t)(close - p);
            const char *colon = memchr(p + fb, ':', fe - fb);
            size_t ne = colon ? (size_t)(colon - p) : fe;
            struct jval *v = NULL;
            if (ne == fb) {
                v = argget(a, auto_idx++, NULL);
            } else if (p[fb] >= '0' && p[fb] <= '9') {
                v = argget(a, (size_t)strtoul(p + fb, NULL, 10), NULL);
            } else {
                for (size_t k = 0; k < a->nkw; k++)
                    if (a->kwn[k]->name_n == ne - fb &&
                        memcmp(a->kwn[k]->name, p + fb, ne - fb) == 0)
                        v = &a->kwv[k];
            }
            if (!v) {
                buf_deinit(&b);
                return fail(c, line, "format: missing argument");
            }
            jv_to_str(&b, *v);
            i = fe;
        } else {
            buf_append(&b, &p[i], 1);
        }
    }
    *out = buf_val(c, &b);
    return 0;
}

/* ---- methods ---- */

static int64_t int_arg(const struct jval *v, int64_t def)
{
    if (!v)
        return def;
    if (v->t == JT_INT)
        return v->u.i;
    if (v->t == JT_BOOL)
        return v->u.b;
    if (v->t == JT_FLOAT)
        return (int64_t)v->u.f;
    return def;
}

static bool need_str(struct ctx *c, int line, const struct jval *v, const char *what)
{
    if (v && v->t == JT_STR)
        return true;
    fail(c, line, "%s expects a string argument", what);
    return false;
}

/* Returns 1 if handled, 0 if o has no such method, -1 on error. */
static int call_method(struct ctx *c, int line, struct jval o, const char *m, size_t mn,
                       const struct args *a, struct jval *out)
{
#define M(s) name_eq(m, mn, s)
    struct jval *a0 = argget(a, 0, NULL), *a1 = argget(a, 1, NULL), *a2 = argget(a, 2, NULL);
    if (o.t == JT_STR) {
        if (M("strip") || M("lstrip") || M("rstrip")) {
            const struct jval *chars = a0 && a0->t == JT_STR ? a0 : NULL;
            *out = str_strip(o, !M("rstrip"), !M("lstrip"), chars);
        } else if (M("split") || M("rsplit")) {
            struct jval *sep = argget(a, 0, "sep");
            struct jval *mx = argget(a, 1, "maxsplit");
            if (sep && sep->t == JT_STR && sep->u.s.n == 0)
                return fail(c, line, "empty separator");
            *out = str_split(c, o, sep, int_arg(mx, -1), M("rsplit"));
        } else if (M("startswith") || M("endswith")) {
            if (!a0)
                return fail(c, line, "%.*s() takes an argument", (int)mn, m);
            *out = jv_bool(str_has_prefix(o, *a0, M("endswith")));
        } else if (M("upper")) {
            *out = str_case(c, o, CASE_UPPER);
        } else if (M("lower")) {
            *out = str_case(c, o, CASE_LOWER);
        } else if (M("title")) {
            *out = str_case(c, o, CASE_PYTITLE);
        } else if (M("capitalize")) {
            *out = str_case(c, o, CASE_CAP);
        } else if (M("replace")) {
            if (!need_str(c, line, a0, "replace()") || !need_str(c, line, a1, "replace()"))
                return -1;
            *out = str_replace(c, o, *a0, *a1, int_arg(a2, -1));
        } else if (M("find") || M("rfind") || M("index") || M("count")) {
            if (!need_str(c, line, a0, "find()"))
                return -1;
            if (M("count")) {
                int64_t cnt = 0;
                if (a0->u.s.n == 0) {
                    cnt = (int64_t)utf8_len(o.u.s.p, o.u.s.n) + 1;
                } else {
                    const char *q = o.u.s.p, *e = o.u.s.p + o.u.s.n;
                    while ((q = memmem(q, (size_t)(e - q), a0->u.s.p, a0->u.s.n))) {
                        cnt++;
                        q += a0->u.s.n;
                    }
                }
                *out = jv_int(cnt);
                return 1;
            }
            const char *hit = NULL;
            if (M("rfind")) {
                for (size_t k = o.u.s.n + 1; k-- > 0 && !hit;)
                    if (k + a0->u.s.n <= o.u.s.n && memcmp(o.u.s.p + k, a0->u.s.p, a0->u.s.n) == 0)
                        hit = o.u.s.p + k;
            } else {
                hit = a0->u.s.n ? memmem(o.u.s.p, o.u.s.n, a0->u.s.p, a0->u.s.n) : o.u.s.p;
            }
            if (!hit && M("index"))
                return fail(c, line, "substring not found");
            *out = jv_int(hit ? (int64_t)utf8_len(o.u.s.p, (size_t)(hit - o.u.s.p)) : -1);
        } else if (M("join")) {
            struct jlist *l;
            if (!a0 || to_list(c, line, *a0, &l))
                return a0 ? -1 : fail(c, line, "join() takes an argument");
            struct buf b;
            buf_init(&b);
            for (size_t i = 0; i < l->n; i++) {
                if (i)
                    buf_append(&b, o.u.s.p, o.u.s.n);
                jv_to_str(&b, l->v[i]);
            }
            *out = buf_val(c, &b);
        } else if (M("format")) {
            return str_format(c, line, o, a, out) ? -1 : 1;
        } else if (M("splitlines")) {
            struct jlist *l = jl_new(c->a, 0);
            size_t i = 0;
            while (i < o.u.s.n) {
                const char *nl = memchr(o.u.s.p + i, '\n', o.u.s.n - i);
                size_t e = nl ? (size_t)(nl - o.u.s.p) : o.u.s.n;
                size_t ee = e > i && o.u.s.p[e - 1] == '\r' ? e - 1 : e;
                jl_push(c->a, l, jv_str(o.u.s.p + i, ee - i));
                i = e + 1;
            }
            *out = jv_list(l);
        } else if (M("isdigit") || M("isalpha") || M("isalnum") || M("isspace") || M("islower") ||
                   M("isupper")) {
            bool r = o.u.s.n > 0, any_cased = false;
            for (size_t i = 0; i < o.u.s.n; i++) {
                char ch = o.u.s.p[i];
                bool d = ch >= '0' && ch <= '9', lo = ch >= 'a' && ch <= 'z',
                     up = ch >= 'A' && ch <= 'Z';
                any_cased |= lo || up;
                if (M("isdigit"))
                    r &= d;
                else if (M("isalpha"))
                    r &= lo || up;
                else if (M("isalnum"))
                    r &= lo || up || d;
                else if (M("isspace"))
                    r &= ws(ch);
                else if (M("islower"))
                    r &= !up;
                else
                    r &= !lo;
            }
            if (M("islower") || M("isupper"))
                r = r && any_cased;
            *out = jv_bool(r);
        } else {
            return 0;
        }
        return 1;
    }
    if (o.t == JT_DICT) {
        if (M("get")) {
            if (!a0)
                return fail(c, line, "get() takes a key");
            struct jval *x = jd_get(o.u.d, *a0);
            *out = x ? *x : a1 ? *a1 : jv_none();
        } else if (M("items")) {
            *out = dict_items(c, o.u.d);
        } else if (M("keys")) {
            struct jlist *l;
            to_list(c, line, o, &l);
            *out = jv_list(l);
        } else if (M("values")) {
            struct jlist *l = jl_new(c->a, o.u.d->n);
            for (size_t i = 0; i < o.u.d->n; i++)
                jl_push(c->a, l, o.u.d->v[i]);
            *out = jv_list(l);
        } else if (M("pop")) {
            if (!a0)
                return fail(c, line, "pop() takes a key");
            struct jval *x = jd_get(o.u.d, *a0);
            if (!x && !a1)
                return fail(c, line, "pop(): key not found");
            *out = x ? *x : *a1;
            if (x)
                jd_del(o.u.d, *a0);
        } else if (M("update")) {
            if (a0 && a0->t == JT_DICT)
                for (size_t i = 0; i < a0->u.d->n; i++)
                    jd_set(c->a, o.u.d, a0->u.d->k[i], a0->u.d->v[i]);
            for (size_t i = 0; i < a->nkw; i++)
                jd_set(c->a, o.u.d, jv_str(a->kwn[i]->name, a->kwn[i]->name_n), a->kwv[i]);
            *out = jv_none();
        } else if (M("setdefault")) {
            if (!a0)
                return fail(c, line, "setdefault() takes a key");
            struct jval *x = jd_get(o.u.d, *a0);
            if (!x)
                jd_set(c->a, o.u.d, *a0, a1 ? *a1 : jv_none());
            *out = x ? *x : a1 ? *a1 : jv_none();
        } else if (M("copy")) {
            struct jdict *d = jd_new(c->a);
            for (size_t i = 0; i < o.u.d->n; i++)
                jd_set(c->a, d, o.u.d->k[i], o.u.d->v[i]);
            *out = jv_dict(d);
        } else {
            return 0;
        }
        return 1;
    }
    if (o.t == JT_LIST) {
        struct jlist *l = o.u.l;
        if (M("append")) {
            if (!a0)
                return fail(c, line, "append() takes an argument");
            jl_push(c->a, l, *a0);
            *out = jv_none();
        } else if (M("extend")) {
            struct jlist *x;
            if (!a0 || to_list(c, line, *a0, &x))
                return a0 ? -1 : fail(c, line, "extend() takes an argument");
            size_t xn = x->n;
            for (size_t i = 0; i < xn; i++)
                jl_push(c->a, l, x->v[i]);
            *out = jv_none();
        } else if (M("pop")) {
            if (l->n == 0)
                return fail(c, line, "pop from empty list");
            int64_t i = norm_index(int_arg(a0, -1), l->n);
            if (i < 0 || (size_t)i >= l->n)
                return fail(c, line, "pop index out of range");
            *out = l->v[i];
            memmove(&l->v[i], &l->v[i + 1], (l->n - (size_t)i - 1) * sizeof(struct jval));
            l->n--;
        } else if (M("insert")) {
            if (!a0 || !a1)
                return fail(c, line, "insert() takes two arguments");
            int64_t i = norm_index(int_arg(a0, 0), l->n);
            i = i < 0 ? 0 : (size_t)i > l->n ? (int64_t)l->n : i;
            jl_push(c->a, l, jv_none());
            memmove(&l->v[i + 1], &l->v[i], (l->n - 1 - (size_t)i) * sizeof(struct jval));
            l->v[i] = *a1;
            *out = jv_none();
        } else if (M("index") || M("count")) {
            if (!a0)
                return fail(c, line, "%.*s() takes an argument", (int)mn, m);
            int64_t cnt = 0, first = -1;
            for (size_t i = 0; i < l->n; i++)
                if (jv_equal(l->v[i], *a0)) {
                    if (first < 0)
                        first = (int64_t)i;
                    cnt++;
                }
            if (M("index") && first < 0)
                return fail(c, line, "value is not in list");
            *out = jv_int(M("index") ? first : cnt);
        } else if (M("copy")) {
            *out = copy_list(c, l);
        } else if (M("reverse")) {
            for (size_t i = 0; i < l->n / 2; i++) {
                struct jval t = l->v[i];
                l->v[i] = l->v[l->n - 1 - i];
                l->v[l->n - 1 - i] = t;
            }
            *out = jv_none();
        } else {
            return 0;
        }
        return 1;
    }
#undef M
    return 0;
}

/* ---- globals ---- */

static int call_builtin(struct ctx *c, int line, int id, const struct args *a, struct jval *out)
{
    switch (id) {
    case BF_RANGE: {
        int64_t st = 0, en, sp = 1;
        if (a->npos == 1) {
            en = int_arg(&a->pos[0], 0);
        } else if (a->npos == 2 || a->npos == 3) {
            st = int_arg(&a->pos[0], 0);
            en = int_arg(&a->pos[1], 0);
            if (a->npos == 3)
                sp = int_arg(&a->pos[2], 1);
        } else {
            return fail(c, line, "range() takes 1 to 3 arguments");
        }
        if (sp == 0)
            return fail(c, line, "range() step must not be zero");
        double count = ceil(((double)en - (double)st) / (double)sp);
        if (count > 1e6)
            return fail(c, line, "range() too large");
        struct jlist *l = jl_new(c->a, count > 0 ? (size_t)count : 0);
        for (int64_t i = st; sp > 0 ? i < en : i > en; i += sp)
            jl_push(c->a, l, jv_int(i));
        c->steps += l->n;
        *out = jv_list(l);
        return 0;
    }
    case BF_NAMESPACE:
    case BF_DICT: {
        struct jdict *d = jd_new(c->a);
        d->ns = id == BF_NAMESPACE;
        if (a->npos >= 1 && a->pos[0].t == JT_DICT)
            for (size_t i = 0; i < a->pos[0].u.d->n; i++)
                jd_set(c->a, d, a->pos[0].u.d->k[i], a->pos[0].u.d->v[i]);
        for (size_t i = 0; i < a->nkw; i++)
            jd_set(c->a, d, jv_str(a->kwn[i]->name, a->kwn[i]->name_n), a->kwv[i]);
        *out = jv_dict(d);
        return 0;
    }
    case BF_RAISE: {
        if (!c->failed) {
            struct buf b;
            buf_init(&b);
            if (a->npos)
                jv_to_str(&b, a->pos[0]);
            err_set(c->err, "%s", b.data ? b.data : "template raised an exception");
            buf_deinit(&b);
            c->failed = true;
            c->raised = true;
        }
        return -1;
    }
    case BF_STRFTIME: {
        if (a->npos < 1 || a->pos[0].t != JT_STR)
            return fail(c, line, "strftime_now() takes a format string");
        time_t t = c->now ? (time_t)c->now : time(NULL);
        struct tm tm;
        if (c->now)
            gmtime_r(&t, &tm);
        else
            localtime_r(&t, &tm);
        char fmt[256], res[512];
        snprintf(fmt, sizeof(fmt), "%.*s", (int)CND_MIN(a->pos[0].u.s.n, 255u), a->pos[0].u.s.p);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
        size_t n = strftime(res, sizeof(res), fmt, &tm);
#pragma GCC diagnostic pop
        *out = mkstr(c, res, n);
        return 0;
    }
    }
    return fail(c, line, "unknown builtin");
}

static int call_macro(struct ctx *c, int line, const struct jnode *m, const struct args *a,
                      struct jval *out)
{
    if (c->depth >= c->max_depth)
        return fail(c, line, "macro recursion deeper than %d", c->max_depth);
    struct frame f = {jd_new(c->a), c->root};
    struct frame *saved_top = c->top;
    struct buf *saved_out = c->out;
    int saved_ctl = c->ctl;
    c->top = &f;
    size_t np = m->l3.n;
    int rc = 0;
    for (size_t i = 0; i < np && !rc; i++) {
        const struct jnode *param = m->l3.v[i];
        struct jval v = jv_undef();
        bool found = false;
        if (i < a->npos) {
            v = a->pos[i];
            found = true;
        } else {
            for (size_t k = 0; k < a->nkw; k++)
                if (a->kwn[k]->name_n == param->name_n &&
                    memcmp(a->kwn[k]->name, param->name, param->name_n) == 0) {
                    v = a->kwv[k];
                    found = true;
                }
        }
        if (!found && param->a)
            rc = eval(c, param->a, &v);
        jd_set(c->a, f.vars, jv_str(param->name, param->name_n), v);
    }
    if (!rc) {
        struct jlist *varargs = jl_new(c->a, 0);
        for (size_t i = np; i < a->npos; i++)
            jl_push(c->a, varargs, a->pos[i]);
        jd_set(c->a, f.vars, jv_str("varargs", 7), jv_list(varargs));
        struct jdict *kwargs = jd_new(c->a);
        for (size_t k = 0; k < a->nkw; k++) {
            bool is_param = false;
            for (size_t i = 0; i < np; i++)
                is_param |= a->kwn[k]->name_n == m->l3.v[i]->name_n &&
                            memcmp(a->kwn[k]->name, m->l3.v[i]->name, m->l3.v[i]->name_n) == 0;
            if (!is_param)
                jd_set(c->a, kwargs, jv_str(a->kwn[k]->name, a->kwn[k]->name_n), a->kwv[k]);
        }
        jd_set(c->a, f.vars, jv_str("kwargs", 6), jv_dict(kwargs));
    }
    struct buf b;
    buf_init(&b);
    if (!rc) {
        c->out = &b;
        c->depth++;
        c->ctl = CTL_NONE;
        rc = exec_body(c, &m->l1);
        c->depth--;
    }
    c->out = saved_out;
    c->top = saved_top;
    c->ctl = saved_ctl;
    *out = buf_val(c, &b);
    return rc;
}

static int call_value(struct ctx *c, int line, struct jval fn, const struct args *a,
                      const char *what, struct jval *out)
{
    if (fn.t != JT_FUNC) {
        if (fn.t == JT_UNDEF)
            return fail(c, line, "'%s' is undefined", what);
        return fail(c, line, "'%s' (%s) is not callable", what, jv_type_name(fn));
    }
    if (fn.u.fn.id == BF_MACRO)
        return call_macro(c, line, fn.u.fn.macro, a, out);
    return call_builtin(c, line, fn.u.fn.id, a, out);
}

/* ---- tests ---- */

static int apply_test(struct ctx *c, int line, const char *name, size_t nn, struct jval v,
                      const struct args *a, bool *out)
{
#define T(s) name_eq(name, nn, s)
    struct jval *a0 = argget(a, 0, NULL);
    if (T("defined"))
        *out = v.t != JT_UNDEF;
    else if (T("undefined"))
        *out = v.t == JT_UNDEF;
    else if (T("none"))
        *out = v.t == JT_NONE;
    else if (T("string"))
        *out = v.t == JT_STR;
    else if (T("mapping"))
        *out = v.t == JT_DICT && !v.u.d->ns;
    else if (T("iterable"))
        *out = v.t == JT_STR || v.t == JT_LIST || v.t == JT_DICT;
    else if (T("sequence"))
        *out = v.t == JT_STR || v.t == JT_LIST || (v.t == JT_DICT && !v.u.d->ns);
    else if (T("number"))
        *out = v.t == JT_INT || v.t == JT_FLOAT || v.t == JT_BOOL;
    else if (T("integer"))
        *out = v.t == JT_INT;
    else if (T("float"))
        *out = v.t == JT_FLOAT;
    else if (T("boolean"))
        *out = v.t == JT_BOOL;
    else if (T("true"))
        *out = v.t == JT_BOOL && v.u.b;
    else if (T("false"))
        *out = v.t == JT_BOOL && !v.u.b;
    else if (T("callable"))
        *out = v.t == JT_FUNC;
    else if (T("odd") || T("even")) {
        if (v.t != JT_INT)
            return fail(c, line, "'%.*s' test needs an integer", (int)nn, name);
        *out = (v.u.i % 2 != 0) == T("odd");
    } else if (T("divisibleby")) {
        int64_t d = int_arg(a0, 0);
        if (v.t != JT_INT || d == 0)
            return fail(c, line, "bad divisibleby test");
        *out = v.u.i % d == 0;
    } else if (T("lower") || T("upper")) {
        bool r = v.t == JT_STR;
        for (size_t i = 0; r && i < v.u.s.n; i++)
            r = T("lower") ? !(v.u.s.p[i] >= 'A' && v.u.s.p[i] <= 'Z')
                           : !(v.u.s.p[i] >= 'a' && v.u.s.p[i] <= 'z');
        *out = r;
    } else if (T("in")) {
        if (!a0)
            return fail(c, line, "'in' test takes an argument");
        return contains(c, line, *a0, v, out);
    } else {
        int cmp = T("equalto") || T("eq") || T("==") ? 1
                  : T("ne") || T("!=")               ? 2
                  : T("lt") || T("lessthan")         ? 3
                  : T("le")                          ? 4
                  : T("gt") || T("greaterthan")      ? 5
                  : T("ge")                          ? 6
                  : T("sameas")                      ? 7
                                                     : 0;
        if (!cmp)
            return fail(c, line, "unknown test '%.*s'", (int)nn, name);
        if (!a0)
            return fail(c, line, "test '%.*s' takes an argument", (int)nn, name);
        if (cmp == 1 || cmp == 2) {
            *out = jv_equal(v, *a0) == (cmp == 1);
        } else if (cmp == 7) {
            *out = v.t == a0->t && jv_equal(v, *a0) && (v.t != JT_LIST || v.u.l == a0->u.l) &&
                   (v.t != JT_DICT || v.u.d == a0->u.d);
        } else {
            bool ok;
            int r = jv_compare(v, *a0, false, &ok);
            if (!ok)
                return fail(c, line, "cannot compare %s and %s", jv_type_name(v),
                            jv_type_name(*a0));
            *out = cmp == 3 ? r < 0 : cmp == 4 ? r <= 0 : cmp == 5 ? r > 0 : r >= 0;
        }
    }
#undef T
    return 0;
}

/* ---- filters ---- */

/* select/reject/selectattr/rejectattr: args after the attribute name: test name + test args */
static int select_filter(struct ctx *c, int line, struct jval v, const struct args *a, bool by_attr,
                         bool keep, struct jval *out)
{
    struct jlist *l;
    if (to_list(c, line, v, &l))
        return -1;
    size_t first = by_attr ? 1 : 0;
    struct jval *attr = by_attr ? argget(a, 0, NULL) : NULL;
    if (by_attr && !attr)
        return fail(c, line, "selectattr/rejectattr need an attribute name");
    struct jval *tname = argget(a, first, NULL);
    struct args ta = {0};
    if (tname) {
        if (tname->t != JT_STR)
            return fail(c, line, "test name must be a string");
        ta.pos = a->pos + first + 1;
        ta.npos = a->npos - first - 1;
    }
    struct jlist *r = jl_new(c->a, 0);
    for (size_t i = 0; i < l->n; i++) {
        struct jval x = by_attr ? attr_path(l->v[i], *attr) : l->v[i];
        bool t;
        if (tname) {
            if (apply_test(c, line, tname->u.s.p, tname->u.s.n, x, &ta, &t))
                return -1;
        } else {
            t = jv_truthy(x);
        }
        if (t == keep)
            jl_push(c->a, r, l->v[i]);
        if (step(c, line))
            return -1;
    }
    *out = jv_list(r);
    return 0;
}

static int to_int(struct jval v, int64_t def, int64_t *out)
{
    switch (v.t) {
    case JT_INT: *out = v.u.i; return 0;
    case JT_BOOL: *out = v.u.b; return 0;
    case JT_FLOAT: *out = (int64_t)v.u.f; return 0;
    case JT_STR: {
        char tmp[64];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)CND_MIN(v.u.s.n, 63u), v.u.s.p);
        char *end;
        long long x = strtoll(tmp, &end, 10);
        while (*end && ws(*end))
            end++;
        if (*end == 0 && end != tmp) {
            *out = x;
            return 0;
        }
        double d = strtod(tmp, &end);
        while (*end && ws(*end))
            end++;
        *out = *end == 0 && end != tmp ? (int64_t)d : def;
        return 0;
    }
    default: *out = def; return 0;
    }
}

static int apply_filter(struct ctx *c, int line, const char *name, size_t nn, struct jval v,
                        const struct args *a, struct jval *out)
{
#define F(s) name_eq(name, nn, s)
    struct jval *a0 = argget(a, 0, NULL);
    if (step(c, line))
        return -1;
    if (F("trim")) {
        struct jval s = as_str(c, v);
        *out = str_strip(s, true, true, argget(a, 0, "chars"));
    } else if (F("length") || F("count")) {
        switch (v.t) {
        case JT_STR: *out = jv_int((int64_t)utf8_len(v.u.s.p, v.u.s.n)); break;
        case JT_LIST: *out = jv_int((int64_t)v.u.l->n); break;
        case JT_DICT: *out = jv_int((int64_t)v.u.d->n); break;
        case JT_UNDEF: *out = jv_int(0); break;
        default: return fail(c, line, "object of type '%s' has no len()", jv_type_name(v));
        }
    } else if (F("upper") || F("lower") || F("title") || F("capitalize")) {
        *out = str_case(c, as_str(c, v),
                        F("upper")   ? CASE_UPPER
                        : F("lower") ? CASE_LOWER
                        : F("title") ? CASE_TITLE
                                     : CASE_CAP);
    } else if (F("default") || F("d")) {
        struct jval *def = argget(a, 0, "default_value");
        struct jval *boolean = argget(a, 1, "boolean");
        bool use = v.t == JT_UNDEF || (boolean && jv_truthy(*boolean) && !jv_truthy(v));
        *out = use ? (def ? *def : mkstr(c, "", 0)) : v;
    } else if (F("tojson")) {
        struct jval *ind = argget(a, 0, "indent");
        struct jval *seps = argget(a, 99, "separators");
        struct jval *asc = argget(a, 99, "ensure_ascii");
        struct jval *sk = argget(a, 99, "sort_keys");
        int indent = ind && ind->t == JT_INT ? (int)CND_MIN(ind->u.i, 64) : -1;
        const char *isep = indent >= 0 ? "," : ", ", *ksep = ": ";
        char sbuf[2][16];
        if (seps && seps->t == JT_LIST && seps->u.l->n == 2 && seps->u.l->v[0].t == JT_STR &&
            seps->u.l->v[1].t == JT_STR) {
            snprintf(sbuf[0], sizeof(sbuf[0]), "%.*s", (int)CND_MIN(seps->u.l->v[0].u.s.n, 15u),
                     seps->u.l->v[0].u.s.p);
            snprintf(sbuf[1], sizeof(sbuf[1]), "%.*s", (int)CND_MIN(seps->u.l->v[1].u.s.n, 15u),
                     seps->u.l->v[1].u.s.p);
            isep = sbuf[0];
            ksep = sbuf[1];
        }
        struct buf b;
        buf_init(&b);
        jv_to_json(&b, v, indent, isep, ksep, asc && jv_truthy(*asc), sk && jv_truthy(*sk));
        *out = buf_val(c, &b);
    } else if (F("string")) {
        *out = as_str(c, v);
    } else if (F("int")) {
        int64_t x;
        to_int(v, int_arg(argget(a, 0, "default"), 0), &x);
        *out = jv_int(x);
    } else if (F("float")) {
        double d = 0;
        if (v.t == JT_INT)
            d = (double)v.u.i;
        else if (v.t == JT_FLOAT)
            d = v.u.f;
        else if (v.t == JT_BOOL)
            d = v.u.b;
        else if (v.t == JT_STR) {
            char tmp[64], *end;
            snprintf(tmp, sizeof(tmp), "%.*s", (int)CND_MIN(v.u.s.n, 63u), v.u.s.p);
            d = strtod(tmp, &end);
            if (end == tmp)
                d = 0;
        }
        *out = jv_float(d);
    } else if (F("join")) {
        struct jlist *l;
        if (to_list(c, line, v, &l))
            return -1;
        struct jval *sep = argget(a, 0, "d");
        struct jval *attr = argget(a, 1, "attribute");
        struct buf b;
        buf_init(&b);
        for (size_t i = 0; i < l->n; i++) {
            if (i && sep)
                jv_to_str(&b, *sep);
            jv_to_str(&b, attr ? attr_path(l->v[i], *attr) : l->v[i]);
        }
        *out = buf_val(c, &b);
    } else if (F("first") || F("last")) {
        struct jlist *l;
        if (to_list(c, line, v, &l))
            return -1;
        *out = l->n ? l->v[F("first") ? 0 : l->n - 1] : jv_undef();
    } else if (F("list")) {
        struct jlist *l;
        if (to_list(c, line, v, &l))
            return -1;
        *out = copy_list(c, l);
    } else if (F("items")) {
        if (v.t == JT_UNDEF || v.t == JT_NONE)
            *out = jv_list(jl_new(c->a, 0));
        else if (v.t != JT_DICT)
            return fail(c, line, "items filter needs a mapping, got %s", jv_type_name(v));
        else
            *out = dict_items(c, v.u.d);
    } else if (F("dictsort")) {
        if (v.t != JT_DICT)
            return fail(c, line, "dictsort needs a mapping");
        struct jval *cs = argget(a, 0, "case_sensitive");
        struct jval *by = argget(a, 1, "by");
        struct jval *rev = argget(a, 2, "reverse");
        struct jval items = dict_items(c, v.u.d);
        bool by_value = by && by->t == JT_STR && name_eq(by->u.s.p, by->u.s.n, "value");
        struct jval one = jv_int(1);
        struct jlist *l;
        if (sort_list(c, line, items.u.l, rev && jv_truthy(*rev), !(cs && jv_truthy(*cs)),
                      by_value ? &one : NULL, true, &l))
            return -1;
        *out = jv_list(l);
    } else if (F("sort")) {
        struct jlist *src;
        if (to_list(c, line, v, &src))
            return -1;
        struct jval *rev = argget(a, 0, "reverse");
        struct jval *cs = argget(a, 1, "case_sensitive");
        struct jval *attr = argget(a, 2, "attribute");
        struct jlist *l;
        if (sort_list(c, line, src, rev && jv_truthy(*rev), !(cs && jv_truthy(*cs)), attr, false,
                      &l))
            return -1;
        *out = jv_list(l);
    } else if (F("reverse")) {
        if (v.t == JT_STR) {
            struct jval s1 = jv_int(-1);
            return do_slice(c, line, v, NULL, NULL, &s1, out);
        }
        struct jlist *src;
        if (to_list(c, line, v, &src))
            return -1;
        struct jlist *l = jl_new(c->a, src->n);
        for (size_t i = src->n; i > 0; i--)
            jl_push(c->a, l, src->v[i - 1]);
        *out = jv_list(l);
    } else if (F("unique")) {
        struct jlist *src;
        if (to_list(c, line, v, &src))
            return -1;
        struct jval *cs = argget(a, 0, "case_sensitive");
        struct jval *attr = argget(a, 1, "attribute");
        bool ci = !(cs && jv_truthy(*cs));
        struct jlist *l = jl_new(c->a, 0);
        struct jlist *keys = jl_new(c->a, 0);
        for (size_t i = 0; i < src->n; i++) {
            struct jval k = attr ? attr_path(src->v[i], *attr) : src->v[i];
            if (ci && k.t == JT_STR)
                k = str_case(c, k, CASE_LOWER);
            bool seen = false;
            for (size_t j = 0; j < keys->n && !seen; j++)
                seen = jv_equal(keys->v[j], k);
            c->steps += keys->n;
            if (!seen) {
                jl_push(c->a, keys, k);
                jl_push(c->a, l, src->v[i]);
            }
        }
        *out = jv_list(l);
    } else if (F("selectattr") || F("rejectattr")) {
        return select_filter(c, line, v, a, true, F("selectattr"), out);
    } else if (F("select") || F("reject")) {
        return select_filter(c, line, v, a, false, F("select"), out);
    } else if (F("map")) {
        struct jlist *src;
        if (to_list(c, line, v, &src))
            return -1;
        struct jval *attr = argget(a, 99, "attribute");
        struct jval *def = argget(a, 99, "default");
        struct jlist *l = jl_new(c->a, src->n);
        if (attr) {
            for (size_t i = 0; i < src->n; i++) {
                struct jval x = attr_path(src->v[i], *attr);
                if (x.t == JT_UNDEF && def)
                    x = *def;
                jl_push(c->a, l, x);
            }
        } else {
            if (!a0 || a0->t != JT_STR)
                return fail(c, line, "map() needs a filter name or attribute=");
            struct args fa = {a->pos + 1, a->npos - 1, a->kwn, a->kwv, a->nkw};
            for (size_t i = 0; i < src->n; i++) {
                struct jval x;
                if (apply_filter(c, line, a0->u.s.p, a0->u.s.n, src->v[i], &fa, &x))
                    return -1;
                jl_push(c->a, l, x);
            }
        }
        *out = jv_list(l);
    } else if (F("replace")) {
        struct jval *b1 = argget(a, 1, "new");
        if (!need_str(c, line, a0, "replace") || !need_str(c, line, b1, "replace"))
            return -1;
        *out = str_replace(c, as_str(c, v), *a0, *b1, int_arg(argget(a, 2, "count"), -1));
    } else if (F("split")) {
        struct jval *sep = argget(a, 0, "sep");
        if (sep && sep->t == JT_STR && sep->u.s.n == 0)
            return fail(c, line, "empty separator");
        *out = str_split(c, as_str(c, v), sep, int_arg(argget(a, 1, "maxsplit"), -1), false);
    } else if (F("safe")) {
        *out = v;
    } else if (F("escape") || F("e") || F("forceescape")) {
        struct jval s = as_str(c, v);
        struct buf b;
        buf_init(&b);
        for (size_t i = 0; i < s.u.s.n; i++) {
            char ch = s.u.s.p[i];
            const char *rep = ch == '&'    ? "&amp;"
                              : ch == '<'  ? "&lt;"
                              : ch == '>'  ? "&gt;"
                              : ch == '"'  ? "&#34;"
                              : ch == '\'' ? "&#39;"
                                           : NULL;
            if (rep)
                buf_append_str(&b, rep);
            else
                buf_append(&b, &ch, 1);
        }
        *out = buf_val(c, &b);
    } else if (F("round")) {
        int64_t prec = int_arg(argget(a, 0, "precision"), 0);
        struct jval *meth = argget(a, 1, "method");
        double x = v.t == JT_FLOAT ? v.u.f : v.t == JT_INT ? (double)v.u.i : 0;
        double m = pow(10.0, (double)prec);
        double r = x * m;
        if (meth && meth->t == JT_STR && name_eq(meth->u.s.p, meth->u.s.n, "floor"))
            r = floor(r);
        else if (meth && meth->t == JT_STR && name_eq(meth->u.s.p, meth->u.s.n, "ceil"))
            r = ceil(r);
        else
            r = rint(r); /* python round(): half to even */
        *out = jv_float(r / m);
    } else if (F("abs")) {
        if (v.t == JT_INT)
            *out = jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        else if (v.t == JT_FLOAT)
            *out = jv_float(fabs(v.u.f));
        else
            return fail(c, line, "bad operand type for abs(): '%s'", jv_type_name(v));
    } else if (F("indent")) {
        struct jval *w = argget(a, 0, "width");
        bool first = jv_truthy(argget(a, 1, "first") ? *argget(a, 1, "first") : jv_bool(false));
        bool blank = jv_truthy(argget(a, 2, "blank") ? *argget(a, 2, "blank") : jv_bool(false));
        struct jval pad;
        if (w && w->t == JT_STR)
            pad = *w;
        else {
            int64_t wn = int_arg(w, 4);
            wn = wn < 0 ? 0 : wn > 256 ? 256 : wn;
            char *sp = ja_alloc(c->a, (size_t)wn + 1);
            memset(sp, ' ', (size_t)wn);
            pad = jv_str(sp, (size_t)wn);
        }
        struct jval s = as_str(c, v);
        struct buf b;
        buf_init(&b);
        size_t i = 0;
        bool first_line = true;
        while (i <= s.u.s.n) {
            const char *nl = memchr(s.u.s.p + i, '\n', s.u.s.n - i);
            size_t e = nl ? (size_t)(nl - s.u.s.p) : s.u.s.n;
            bool empty = e == i;
            if ((first_line ? first : true) && (!empty || blank) && !(first_line && !first))
                buf_append(&b, pad.u.s.p, pad.u.s.n);
            buf_append(&b, s.u.s.p + i, e - i);
            first_line = false;
            if (!nl)
                break;
            buf_append(&b, "\n", 1);
            i = e + 1;
        }
        *out = buf_val(c, &b);
    } else if (F("from_json")) {
        struct jval s = as_str(c, v);
        cJSON *j = cJSON_ParseWithLength(s.u.s.p, s.u.s.n);
        if (!j)
            return fail(c, line, "from_json: invalid JSON");
        *out = jv_from_cjson(c->a, j, true);
        cJSON_Delete(j);
    } else if (F("sum") || F("min") || F("max")) {
        struct jlist *l;
        if (to_list(c, line, v, &l))
            return -1;
        struct jval *attr = argget(a, F("sum") ? 0 : 1, "attribute");
        if (F("sum")) {
            int64_t si = 0;
            double sf = 0;
            bool isf = false;
            for (size_t i = 0; i < l->n; i++) {
                struct jval x = attr ? attr_path(l->v[i], *attr) : l->v[i];
                if (x.t == JT_FLOAT) {
                    isf = true;
                    sf += x.u.f;
                } else {
                    si += int_arg(&x, 0);
                }
            }
            *out = isf ? jv_float(sf + (double)si) : jv_int(si);
        } else {
            struct jval best = jv_undef();
            for (size_t i = 0; i < l->n; i++) {
                struct jval x = attr ? attr_path(l->v[i], *attr) : l->v[i];
                bool ok;
                if (best.t == JT_UNDEF || (jv_compare(x, best, true, &ok) < 0) == (bool)F("min"))
                    if (best.t == JT_UNDEF || jv_compare(x, best, true, &ok) != 0)
                        best = x;
            }
            *out = best;
        }
    } else if (F("attr")) {
        if (!need_str(c, line, a0, "attr"))
            return -1;
        *out = get_attr(v, a0->u.s.p, a0->u.s.n);
    } else if (F("format")) {
        struct jval s = as_str(c, v);
        struct jval lst = jv_list(jl_new(c->a, a->npos));
        for (size_t i = 0; i < a->npos; i++)
            jl_push(c->a, lst.u.l, a->pos[i]);
        return percent_format(c, line, s, lst, out);
    } else if (F("wordcount")) {
        struct jval parts = str_split(c, as_str(c, v), NULL, -1, false);
        *out = jv_int((int64_t)parts.u.l->n);
    } else if (F("center")) {
        *out = as_str(c, v);
    } else if (F("batch")) {
        int64_t sz = int_arg(a0, 1);
        struct jlist *src;
        if (sz <= 0 || to_list(c, line, v, &src))
            return sz <= 0 ? fail(c, line, "batch size must be positive") : -1;
        struct jlist *l = jl_new(c->a, 0);
        for (size_t i = 0; i < src->n; i += (size_t)sz) {
            struct jlist *g = jl_new(c->a, 0);
            for (size_t k = i; k < src->n && k < i + (size_t)sz; k++)
                jl_push(c->a, g, src->v[k]);
            jl_push(c->a, l, jv_list(g));
        }
        *out = jv_list(l);
    } else {
        return fail(c, line, "unknown filter '%.*s'", (int)nn, name);
    }
#undef F
    return 0;
}

/* ---- expressions ---- */

static struct jval lookup(struct ctx *c, const char *name, size_t n)
{
    for (struct frame *f = c->top; f; f = f->parent) {
        struct jval *v = jd_gets(f->vars, name, n);
        if (v)
            return *v;
    }
    struct jval *g = jd_gets(c->globals, name, n);
    if (g)
        return *g;
    static const struct {
        const char *name;
        int id;
    } builtins[] = {{"range", BF_RANGE},
                    {"namespace", BF_NAMESPACE},
                    {"dict", BF_DICT},
                    {"raise_exception", BF_RAISE},
                    {"strftime_now", BF_STRFTIME}};
    for (size_t i = 0; i < ARRAY_SIZE(builtins); i++)
        if (name_eq(name, n, builtins[i].name)) {
            struct jval v = {.t = JT_FUNC};
            v.u.fn.id = builtins[i].id;
            return v;
        }
    return jv_undef();
}

static int arith(struct ctx *c, int line, int op, struct jval x, struct jval y, struct jval *out)
{
    /* lenient: undefined or none acts as "" next to a string (Python would raise) */
    if (op == JOP_ADD && (x.t == JT_UNDEF || x.t == JT_NONE) && y.t == JT_STR)
        x = jv_str("", 0);
    if (op == JOP_ADD && (y.t == JT_UNDEF || y.t == JT_NONE) && x.t == JT_STR)
        y = jv_str("", 0);
    /* tool-call arguments parsed from a string concatenate as that string */
    if (op == JOP_ADD && x.t == JT_DICT && x.u.d->src && y.t == JT_STR)
        x = jv_str(x.u.d->src, x.u.d->src_n);
    if (op == JOP_ADD && y.t == JT_DICT && y.u.d->src && x.t == JT_STR)
        y = jv_str(y.u.d->src, y.u.d->src_n);
    bool xn = x.t == JT_INT || x.t == JT_FLOAT || x.t == JT_BOOL;
    bool yn = y.t == JT_INT || y.t == JT_FLOAT || y.t == JT_BOOL;
    if (xn && yn) {
        bool ints = x.t != JT_FLOAT && y.t != JT_FLOAT;
        int64_t a = x.t == JT_INT ? x.u.i : x.t == JT_BOOL ? x.u.b : 0;
        int64_t b = y.t == JT_INT ? y.u.i : y.t == JT_BOOL ? y.u.b : 0;
        double fa = x.t == JT_FLOAT ? x.u.f : (double)a, fb = y.t == JT_FLOAT ? y.u.f : (double)b;
        int64_t r;
        switch (op) {
        case JOP_ADD:
            if (ints && !__builtin_add_overflow(a, b, &r))
                *out = jv_int(r);
            else
                *out = jv_float(fa + fb);
            return 0;
        case JOP_SUB:
            if (ints && !__builtin_sub_overflow(a, b, &r))
                *out = jv_int(r);
            else
                *out = jv_float(fa - fb);
            return 0;
        case JOP_MUL:
            if (ints && !__builtin_mul_overflow(a, b, &r))
                *out = jv_int(r);
            else
                *out = jv_float(fa * fb);
            return 0;
        case JOP_DIV:
            if (fb == 0)
                return fail(c, line, "division by zero");
            *out = jv_float(fa / fb);
            return 0;
        case JOP_FLOORDIV:
        case JOP_MOD:
            if (fb == 0)
                return fail(c, line, "division by zero");
            if (ints) {
                if (a == INT64_MIN && b == -1)
                    return fail(c, line, "integer overflow");
                int64_t q = a / b, m = a % b;
                if (m != 0 && ((m < 0) != (b < 0))) {
                    q--;
                    m += b;
                }
                *out = jv_int(op == JOP_MOD ? m : q);
            } else {
                double q = floor(fa / fb), m = fmod(fa, fb);
                if (m != 0 && ((m < 0) != (fb < 0)))
                    m += fb;
                *out = jv_float(op == JOP_MOD ? m : q);
            }
            return 0;
        case JOP_POW:
            if (ints && b >= 0) {
                int64_t acc = 1;
                bool ovf = false;
                for (int64_t i = 0; i < b && !ovf; i++)
                    ovf = __builtin_mul_overflow(acc, a, &acc) || i > 64;
                if (!ovf) {
                    *out = jv_int(acc);
                    return 0;
                }
            }
            *out = jv_float(pow(fa, fb));
            return 0;
        }
    }
    if (op == JOP_ADD && x.t == JT_STR && y.t == JT_STR) {
        size_t n = x.u.s.n + y.u.s.n;
        char *p = ja_alloc(c->a, n + 1);
        memcpy(p, x.u.s.p, x.u.s.n);
        memcpy(p + x.u.s.n, y.u.s.p, y.u.s.n);
        *out = jv_str(p, n);
        return 0;
    }
    if (op == JOP_ADD && x.t == JT_LIST && y.t == JT_LIST) {
        struct jlist *l = jl_new(c->a, x.u.l->n + y.u.l->n);
        for (size_t i = 0; i < x.u.l->n; i++)
            jl_push(c->a, l, x.u.l->v[i]);
        for (size_t i = 0; i < y.u.l->n; i++)
            jl_push(c->a, l, y.u.l->v[i]);
        *out = jv_list(l);
        return 0;
    }
    if (op == JOP_MUL && (x.t == JT_INT || y.t == JT_INT) &&
        (x.t == JT_STR || y.t == JT_STR || x.t == JT_LIST || y.t == JT_LIST)) {
        struct jval s = x.t == JT_INT ? y : x;
        int64_t k = x.t == JT_INT ? x.u.i : y.u.i;
        if (k < 0)
            k = 0;
        size_t unit = s.t == JT_STR ? s.u.s.n : s.u.l->n * sizeof(struct jval);
        if (unit && (uint64_t)k > (uint64_t)c->max_output / unit)
            return fail(c, line, "repetition too large");
        if (s.t == JT_STR) {
            struct buf b;
            buf_init(&b);
            for (int64_t i = 0; i < k; i++)
                buf_append(&b, s.u.s.p, s.u.s.n);
            *out = buf_val(c, &b);
        } else {
            struct jlist *l = jl_new(c->a, 0);
            for (int64_t i = 0; i < k; i++)
                for (size_t j = 0; j < s.u.l->n; j++)
                    jl_push(c->a, l, s.u.l->v[j]);
            *out = jv_list(l);
        }
        return 0;
    }
    if (op == JOP_MOD && x.t == JT_STR)
        return percent_format(c, line, x, y, out);
    static const char *opnames[] = {"", "+", "-", "*", "/", "//", "%", "**"};
    return fail(c, line, "unsupported operand types for %s: '%s' and '%s'",
                op < (int)ARRAY_SIZE(opnames) ? opnames[op] : "?", jv_type_name(x),
                jv_type_name(y));
}

static int eval_filter_chain(struct ctx *c, const struct jnode *n, struct jval base,
                             struct jval *out)
{
    struct jval v = base;
    if (n->a && eval_filter_chain(c, n->a, base, &v))
        return -1;
    struct args a;
    if (eval_args(c, &n->l1, &n->l2, &a))
        return -1;
    return apply_filter(c, n->line, n->name, n->name_n, v, &a, out);
}

static int eval(struct ctx *c, const struct jnode *n, struct jval *out)
{
    if (step(c, n->line))
        return -1;
    switch (n->kind) {
    case JN_LIT: *out = n->lit; return 0;
    case JN_NAME: *out = lookup(c, n->name, n->name_n); return 0;
    case JN_ATTR: {
        struct jval o;
        if (eval(c, n->a, &o))
            return -1;
        *out = get_attr(o, n->name, n->name_n);
        return 0;
    }
    case JN_ITEM: {
        struct jval o, k;
        if (eval(c, n->a, &o) || eval(c, n->b, &k))
            return -1;
        *out = get_item(c, o, k);
        return 0;
    }
    case JN_SLICE: {
        struct jval o, s[3];
        const struct jnode *parts[3] = {n->b, n->c, n->d};
        if (eval(c, n->a, &o))
            return -1;
        for (int i = 0; i < 3; i++) {
            s[i] = jv_none();
            if (parts[i] && eval(c, parts[i], &s[i]))
                return -1;
        }
        return do_slice(c, n->line, o, &s[0], &s[1], &s[2], out);
    }
    case JN_CALL: {
        struct args a;
        const struct jnode *callee = n->a;
        if (callee->kind == JN_ATTR) {
            struct jval o;
            if (eval(c, callee->a, &o) || eval_args(c, &n->l1, &n->l2, &a))
                return -1;
            int r = call_method(c, n->line, o, callee->name, callee->name_n, &a, out);
            if (r)
                return r < 0 ? -1 : 0;
            struct jval fn = get_attr(o, callee->name, callee->name_n);
            char what[64];
            snprintf(what, sizeof(what), "%s.%.*s", jv_type_name(o),
                     (int)CND_MIN(callee->name_n, 40u), callee->name);
            return call_value(c, n->line, fn, &a, what, out);
        }
        struct jval fn;
        if (eval(c, callee, &fn) || eval_args(c, &n->l1, &n->l2, &a))
            return -1;
        char what[64];
        if (callee->kind == JN_NAME)
            snprintf(what, sizeof(what), "%.*s", (int)CND_MIN(callee->name_n, 60u), callee->name);
        else
            snprintf(what, sizeof(what), "expression");
        return call_value(c, n->line, fn, &a, what, out);
    }
    case JN_FILTER: {
        struct jval v;
        if (eval(c, n->a, &v))
            return -1;
        struct args a;
        if (eval_args(c, &n->l1, &n->l2, &a))
            return -1;
        return apply_filter(c, n->line, n->name, n->name_n, v, &a, out);
    }
    case JN_TEST: {
        struct jval v;
        if (eval(c, n->a, &v))
            return -1;
        struct args a;
        struct jnodes none = {0};
        if (eval_args(c, &n->l1, &none, &a))
            return -1;
        bool r;
        if (apply_test(c, n->line, n->name, n->name_n, v, &a, &r))
            return -1;
        *out = jv_bool(r != n->neg);
        return 0;
    }
    case JN_BIN: {
        struct jval x, y;
        if (eval(c, n->a, &x) || eval(c, n->b, &y))
            return -1;
        switch (n->op) {
        case JOP_CONCAT: {
            struct buf b;
            buf_init(&b);
            jv_to_str(&b, x);
            jv_to_str(&b, y);
            *out = buf_val(c, &b);
            return 0;
        }
        case JOP_EQ: *out = jv_bool(jv_equal(x, y)); return 0;
        case JOP_NE: *out = jv_bool(!jv_equal(x, y)); return 0;
        case JOP_LT:
        case JOP_GT:
        case JOP_LE:
        case JOP_GE: {
            bool ok;
            int r = jv_compare(x, y, false, &ok);
            if (!ok)
                return fail(c, n->line, "cannot compare %s with %s", jv_type_name(x),
                            jv_type_name(y));
            *out = jv_bool(n->op == JOP_LT   ? r < 0
                           : n->op == JOP_GT ? r > 0
                           : n->op == JOP_LE ? r <= 0
                                             : r >= 0);
            return 0;
        }
        case JOP_IN:
        case JOP_NOTIN: {
            bool r;
            if (contains(c, n->line, y, x, &r))
                return -1;
            *out = jv_bool(r == (n->op == JOP_IN));
            return 0;
        }
        default: return arith(c, n->line, n->op, x, y, out);
        }
    }
    case JN_NOT: {
        struct jval v;
        if (eval(c, n->a, &v))
            return -1;
        *out = jv_bool(!jv_truthy(v));
        return 0;
    }
    case JN_NEG:
    case JN_POS: {
        struct jval v;
        if (eval(c, n->a, &v))
            return -1;
        if (n->kind == JN_POS) {
            *out = v;
            return 0;
        }
        if (v.t == JT_INT && v.u.i != INT64_MIN)
            *out = jv_int(-v.u.i);
        else if (v.t == JT_FLOAT)
            *out = jv_float(-v.u.f);
        else if (v.t == JT_BOOL)
            *out = jv_int(-(int64_t)v.u.b);
        else
            return fail(c, n->line, "bad operand type for unary -: '%s'", jv_type_name(v));
        return 0;
    }
    case JN_AND:
    case JN_OR: {
        struct jval x;
        if (eval(c, n->a, &x))
            return -1;
        if (jv_truthy(x) == (n->kind == JN_OR)) {
            *out = x;
            return 0;
        }
        return eval(c, n->b, out);
    }
    case JN_COND: {
        struct jval cond;
        if (eval(c, n->b, &cond))
            return -1;
        if (jv_truthy(cond))
            return eval(c, n->a, out);
        if (n->c)
            return eval(c, n->c, out);
        *out = jv_undef();
        return 0;
    }
    case JN_LIST: {
        struct jlist *l = jl_new(c->a, n->l1.n);
        for (size_t i = 0; i < n->l1.n; i++) {
            struct jval v;
            if (eval(c, n->l1.v[i], &v))
                return -1;
            jl_push(c->a, l, v);
        }
        *out = jv_list(l);
        return 0;
    }
    case JN_DICT: {
        struct jdict *d = jd_new(c->a);
        for (size_t i = 0; i < n->l1.n; i++) {
            struct jval k, v;
            if (eval(c, n->l1.v[i], &k) || eval(c, n->l2.v[i], &v))
                return -1;
            jd_set(c->a, d, k, v);
        }
        *out = jv_dict(d);
        return 0;
    }
    default: return fail(c, n->line, "internal: not an expression (%d)", n->kind);
    }
}

/* ---- statements ---- */

static int assign(struct ctx *c, const struct jnode *target, struct jval v)
{
    if (target->kind == JN_NAME) {
        jd_set(c->a, c->top->vars, jv_str(target->name, target->name_n), v);
        return 0;
    }
    /* ns.attr */
    struct jval o = lookup(c, target->a->name, target->a->name_n);
    if (o.t != JT_DICT)
        return fail(c, target->line, "cannot assign attribute on %s '%.*s'", jv_type_name(o),
                    (int)CND_MIN(target->a->name_n, 40u), target->a->name);
    jd_set(c->a, o.u.d, jv_str(target->name, target->name_n), v);
    return 0;
}

static int assign_targets(struct ctx *c, int line, const struct jnodes *targets, struct jval v)
{
    if (targets->n == 1)
        return assign(c, targets->v[0], v);
    struct jlist *l;
    if (v.t == JT_LIST)
        l = v.u.l;
    else if (to_list(c, line, v, &l))
        return -1;
    if (l->n != targets->n)
        return fail(c, line, "cannot unpack %zu values into %zu names", l->n, targets->n);
    for (size_t i = 0; i < targets->n; i++)
        if (assign(c, targets->v[i], l->v[i]))
            return -1;
    return 0;
}

enum {
    LP_INDEX,
    LP_INDEX0,
    LP_REVINDEX,
    LP_REVINDEX0,
    LP_FIRST,
    LP_LAST,
    LP_LENGTH,
    LP_PREV,
    LP_NEXT,
    LP_DEPTH,
    LP_DEPTH0,
    LP_N
};

static int exec_for(struct ctx *c, const struct jnode *n)
{
    struct jval it;
    if (eval(c, n->a, &it))
        return -1;
    struct jlist *src;
    if (to_list(c, n->line, it, &src))
        return -1;
    size_t count = src->n;
    struct jval *items = ja_alloc(c->a, (count ? count : 1) * sizeof(struct jval));
    if (count)
        memcpy(items, src->v, count * sizeof(struct jval));
    struct frame f = {jd_new(c->a), c->top};
    c->top = &f;
    int rc = 0;
    if (n->b) { /* loop filter: applied before loop.* is computed */
        size_t k = 0;
        for (size_t i = 0; i < count && !rc; i++) {
            struct jval cond;
            rc = assign_targets(c, n->line, &n->l3, items[i]);
            if (!rc)
                rc = eval(c, n->b, &cond);
            if (!rc && jv_truthy(cond))
                items[k++] = items[i];
        }
        count = k;
    }
    struct jdict *loop = jd_new(c->a);
    static const char *const lnames[LP_N] = {"index",    "index0", "revindex", "revindex0",
                                             "first",    "last",   "length",   "previtem",
                                             "nextitem", "depth",  "depth0"};
    for (int i = 0; i < LP_N; i++)
        jd_set(c->a, loop, jv_str(lnames[i], strlen(lnames[i])), jv_none());
    jd_set(c->a, f.vars, jv_str("loop", 4), jv_dict(loop));
    for (size_t i = 0; i < count && !rc; i++) {
        if ((rc = step(c, n->line)))
            break;
        loop->v[LP_INDEX] = jv_int((int64_t)i + 1);
        loop->v[LP_INDEX0] = jv_int((int64_t)i);
        loop->v[LP_REVINDEX] = jv_int((int64_t)(count - i));
        loop->v[LP_REVINDEX0] = jv_int((int64_t)(count - i - 1));
        loop->v[LP_FIRST] = jv_bool(i == 0);
        loop->v[LP_LAST] = jv_bool(i + 1 == count);
        loop->v[LP_LENGTH] = jv_int((int64_t)count);
        loop->v[LP_PREV] = i > 0 ? items[i - 1] : jv_undef();
        loop->v[LP_NEXT] = i + 1 < count ? items[i + 1] : jv_undef();
        loop->v[LP_DEPTH] = jv_int(1);
        loop->v[LP_DEPTH0] = jv_int(0);
        /* the body may have rebound `loop` */
        jd_set(c->a, f.vars, jv_str("loop", 4), jv_dict(loop));
        rc = assign_targets(c, n->line, &n->l3, items[i]);
        if (!rc)
            rc = exec_body(c, &n->l1);
        if (c->ctl == CTL_BREAK) {
            c->ctl = CTL_NONE;
            break;
        }
        c->ctl = CTL_NONE;
    }
    if (!rc && count == 0 && n->l2.n)
        rc = exec_body(c, &n->l2);
    c->top = f.parent;
    return rc;
}

static int capture(struct ctx *c, const struct jnodes *body, struct jval *out)
{
    struct buf b;
    buf_init(&b);
    struct buf *saved = c->out;
    c->out = &b;
    int rc = exec_body(c, body);
    c->out = saved;
    *out = buf_val(c, &b);
    return rc;
}

static int exec(struct ctx *c, const struct jnode *n)
{
    if (step(c, n->line))
        return -1;
    switch (n->kind) {
    case JN_TEXT: return emit(c, n->line, n->lit.u.s.p, n->lit.u.s.n);
    case JN_OUT: {
        struct jval v;
        if (eval(c, n->a, &v))
            return -1;
        if (v.t == JT_STR)
            return emit(c, n->line, v.u.s.p, v.u.s.n);
        size_t before = c->out->len;
        jv_to_str(c->out, v);
        if (c->out->len > c->max_output) {
            c->out->len = before;
            c->out->data[before] = 0;
            return fail(c, n->line, "template output exceeded %zu bytes", c->max_output);
        }
        return 0;
    }
    case JN_IF: {
        struct jval cond;
        if (eval(c, n->a, &cond))
            return -1;
        return exec_body(c, jv_truthy(cond) ? &n->l1 : &n->l2);
    }
    case JN_FOR: return exec_for(c, n);
    case JN_SET: {
        struct jval v;
        if (eval(c, n->a, &v))
            return -1;
        return assign_targets(c, n->line, &n->l3, v);
    }
    case JN_SETBLOCK: {
        struct jval v;
        if (capture(c, &n->l1, &v))
            return -1;
        if (n->a && eval_filter_chain(c, n->a, v, &v))
            return -1;
        return assign(c, n->l3.v[0], v);
    }
    case JN_MACRO: {
        struct jval v = {.t = JT_FUNC};
        v.u.fn.id = BF_MACRO;
        v.u.fn.macro = n;
        jd_set(c->a, c->top->vars, jv_str(n->name, n->name_n), v);
        return 0;
    }
    case JN_FILTERBLOCK: {
        struct jval v;
        if (capture(c, &n->l1, &v) || eval_filter_chain(c, n->a, v, &v))
            return -1;
        struct jval s = as_str(c, v);
        return emit(c, n->line, s.u.s.p, s.u.s.n);
    }
    case JN_BREAK: c->ctl = CTL_BREAK; return 0;
    case JN_CONTINUE: c->ctl = CTL_CONTINUE; return 0;
    case JN_DO: {
        struct jval v;
        return eval(c, n->a, &v);
    }
    case JN_SEQ: return exec_body(c, &n->l1);
    default: return fail(c, n->line, "internal: not a statement (%d)", n->kind);
    }
}

static int exec_body(struct ctx *c, const struct jnodes *body)
{
    for (size_t i = 0; i < body->n; i++) {
        if (exec(c, body->v[i]))
            return -1;
        if (c->ctl)
            break;
    }
    return 0;
}

int jinja_render(const struct jnode *root, struct jarena *a, struct jdict *globals,
                 struct jinja_render_opts *o, struct buf *out, char *err)
{
    struct frame root_frame = {jd_new(a), NULL};
    struct ctx c = {
        .a = a,
        .globals = globals,
        .root = &root_frame,
        .top = &root_frame,
        .out = out,
        .err = err,
        .max_steps = o->max_steps,
        .max_output = o->max_output,
        .max_depth = o->max_depth,
        .now = o->now,
    };
    int rc = exec(&c, root);
    o->raised = c.raised;
    return rc || c.failed ? -CND_EINVAL : 0;
}
