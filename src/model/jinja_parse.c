/* jinja_parse.c: lexer and recursive-descent parser of the Jinja subset chat templates use.
 * Whitespace handling follows HF transformers' environment: trim_blocks (drop the first newline
 * after a block or comment tag), lstrip_blocks (drop spaces/tabs before a block or comment tag
 * that starts its line), "-" / "+" tag modifiers, and keep_trailing_newline=False.
 * Operator precedence mirrors Jinja2's parser (filters and tests bind tighter than arithmetic). */
#include "jinja_internal.h"

#include "cinder/status.h"
#include "cinder/xalloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum tk {
    TK_EOF,
    TK_TEXT,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
};

struct tok {
    int t;
    int line;
    const char *p; /* NAME/OP text, TEXT/STRING contents (arena) */
    size_t n;
    int64_t i;
    double f;
};

struct parser {
    struct jarena *a;
    char *err;
    struct tok *toks;
    size_t ntoks, cap, pos;
    int depth;
    bool failed;
};

#define MAX_NEST 200

static void perr(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void perr(struct parser *p, int line, const char *fmt, ...)
{
    if (p->failed)
        return;
    p->failed = true;
    char msg[CND_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    err_set(p->err, "line %d: %s", line, msg);
}

static void push_tok(struct parser *p, struct tok t)
{
    if (p->ntoks == p->cap)
        xgrow((void **)&p->toks, &p->cap, p->ntoks + 1, sizeof(struct tok));
    p->toks[p->ntoks++] = t;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_ident_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int count_lines(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += s[i] == '\n';
    return c;
}

static void utf8_put(struct buf *b, uint32_t cp)
{
    char t[4];
    if (cp < 0x80) {
        t[0] = (char)cp;
        buf_append(b, t, 1);
    } else if (cp < 0x800) {
        t[0] = (char)(0xC0 | cp >> 6);
        t[1] = (char)(0x80 | (cp & 0x3F));
        buf_append(b, t, 2);
    } else if (cp < 0x10000) {
        t[0] = (char)(0xE0 | cp >> 12);
        t[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        t[2] = (char)(0x80 | (cp & 0x3F));
        buf_append(b, t, 3);
    } else {
        t[0] = (char)(0xF0 | cp >> 18);
        t[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        t[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        t[3] = (char)(0x80 | (cp & 0x3F));
        buf_append(b, t, 4);
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Lex a string literal at s[*i] (the quote); Python escape rules. */
static bool lex_string(struct parser *p, const char *s, size_t n, size_t *i, int *line)
{
    char q = s[*i];
    int start_line = *line;
    size_t k = *i + 1;
    struct buf b;
    buf_init(&b);
    while (k < n && s[k] != q) {
        char c = s[k];
        if (c == '\n')
            (*line)++;
        if (c == '\\' && k + 1 < n) {
            char e = s[k + 1];
            k += 2;
            switch (e) {
            case 'n': buf_append(&b, "\n", 1); break;
            case 't': buf_append(&b, "\t", 1); break;
            case 'r': buf_append(&b, "\r", 1); break;
            case '0': buf_append(&b, "\0", 1); break;
            case 'a': buf_append(&b, "\a", 1); break;
            case 'b': buf_append(&b, "\b", 1); break;
            case 'f': buf_append(&b, "\f", 1); break;
            case 'v': buf_append(&b, "\v", 1); break;
            case '\\': buf_append(&b, "\\", 1); break;
            case '\'': buf_append(&b, "'", 1); break;
            case '"': buf_append(&b, "\"", 1); break;
            case '\n': (*line)++; break;
            case 'x':
            case 'u':
            case 'U': {
                int nd = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                uint32_t cp = 0;
                int d;
                for (d = 0; d < nd && k < n && hexval(s[k]) >= 0; d++, k++)
                    cp = cp << 4 | (uint32_t)hexval(s[k]);
                if (d != nd || cp > 0x10FFFF) {
                    buf_deinit(&b);
                    perr(p, *line, "%s", "bad escape in string literal");
                    return false;
                }
                utf8_put(&b, cp);
                break;
            }
            default: {
                char t[2] = {'\\', e};
                buf_append(&b, t, 2);
                if (e == '\n')
                    (*line)++;
            }
            }
            continue;
        }
        buf_append(&b, &c, 1);
        k++;
    }
    if (k >= n) {
        buf_deinit(&b);
        perr(p, start_line, "%s", "unterminated string literal");
        return false;
    }
    struct tok t = {.t = TK_STRING, .line = start_line};
    t.p = ja_strndup(p->a, b.data ? b.data : "", b.len);
    t.n = b.len;
    buf_deinit(&b);
    push_tok(p, t);
    *i = k + 1;
    return true;
}

/* Lex the inside of a {{ }} or {% %} tag starting at s[*i]. kind is '{' or '%'. On return *i is
 * just past the closing delimiter; *strip_after tells whether it was "-}}"/"-%}", *plus whether
 * it was "+%}". */
static bool lex_tag(struct parser *p, const char *s, size_t n, size_t *i, int *line, char kind,
                    bool *strip_after, bool *plus)
{
    size_t k = *i;
    int depth = 0;
    char close = kind == '{' ? '}' : '%';
    *strip_after = false;
    *plus = false;
    for (;;) {
        while (k < n && is_space(s[k])) {
            if (s[k] == '\n')
                (*line)++;
            k++;
        }
        if (k >= n) {
            perr(p, *line, "%s", kind == '{' ? "unclosed '{{'" : "unclosed '{%'");
            return false;
        }
        if (depth == 0) {
            size_t m = k;
            bool strip = false, pl = false;
            if (s[m] == '-' || s[m] == '+') {
                strip = s[m] == '-';
                pl = s[m] == '+';
                m++;
            }
            if (m + 1 < n && s[m] == close && s[m + 1] == '}') {
                *strip_after = strip;
                *plus = pl;
                *i = m + 2;
                push_tok(p,
                         (struct tok){.t = kind == '{' ? TK_VAR_END : TK_BLOCK_END, .line = *line});
                return true;
            }
        }
        char c = s[k];
        if (is_ident_start(c)) {
            size_t st = k;
            while (k < n && (is_ident_start(s[k]) || is_digit(s[k])))
                k++;
            push_tok(p, (struct tok){.t = TK_NAME, .line = *line, .p = s + st, .n = k - st});
            continue;
        }
        if (is_digit(c)) {
            size_t st = k;
            bool is_float = false;
            while (k < n && (is_digit(s[k]) || s[k] == '_'))
                k++;
            if (k + 1 < n && s[k] == '.' && is_digit(s[k + 1])) {
                is_float = true;
                k++;
                while (k < n && (is_digit(s[k]) || s[k] == '_'))
                    k++;
            }
            if (k < n && (s[k] == 'e' || s[k] == 'E')) {
                size_t m = k + 1;
                if (m < n && (s[m] == '+' || s[m] == '-'))
                    m++;
                if (m < n && is_digit(s[m])) {
                    is_float = true;
                    k = m;
                    while (k < n && is_digit(s[k]))
                        k++;
                }
            }
            char numbuf[64];
            size_t nl = 0;
            for (size_t q = st; q < k && nl < sizeof(numbuf) - 1; q++)
                if (s[q] != '_')
                    numbuf[nl++] = s[q];
            numbuf[nl] = 0;
            struct tok t = {.line = *line, .p = s + st, .n = k - st};
            if (is_float) {
                t.t = TK_FLOAT;
                t.f = strtod(numbuf, NULL);
            } else {
                t.t = TK_INT;
                t.i = strtoll(numbuf, NULL, 10);
            }
            push_tok(p, t);
            continue;
        }
        if (c == '\'' || c == '"') {
            if (!lex_string(p, s, n, &k, line))
                return false;
            continue;
        }
        static const char *ops2[] = {"//", "**", "==", "!=", "<=", ">="};
        size_t oplen = 0;
        for (size_t q = 0; q < ARRAY_SIZE(ops2); q++)
            if (k + 1 < n && s[k] == ops2[q][0] && s[k + 1] == ops2[q][1])
                oplen = 2;
        if (!oplen) {
            if (!strchr("+-*/%~<>=()[]{},.:|", c)) {
                char msg[8] = {c, 0};
                perr(p, *line, "unexpected character '%s'", msg);
                return false;
            }
            oplen = 1;
            if (c == '(' || c == '[' || c == '{')
                depth++;
            else if (c == ')' || c == ']' || c == '}')
                depth = depth > 0 ? depth - 1 : 0;
        }
        push_tok(p, (struct tok){.t = TK_OP, .line = *line, .p = s + k, .n = oplen});
        k += oplen;
    }
}

static bool lex(struct parser *p, const char *s, size_t n)
{
    /* keep_trailing_newline=False */
    if (n && s[n - 1] == '\n') {
        n--;
        if (n && s[n - 1] == '\r')
            n--;
    }
    size_t i = 0;
    int line = 1;
    bool line_starting = true;
    while (i <= n) {
        /* find the next tag */
        size_t j = i;
        char kind = 0;
        while (j + 1 < n) {
            if (s[j] == '{' && (s[j + 1] == '{' || s[j + 1] == '%' || s[j + 1] == '#')) {
                kind = s[j + 1];
                break;
            }
            j++;
        }
        if (!kind)
            j = n;
        size_t text_end = j;
        if (kind) {
            char mod = j + 2 < n ? s[j + 2] : 0;
            if (mod == '-') {
                while (text_end > i && is_space(s[text_end - 1]))
                    text_end--;
            } else if (kind != '{' && mod != '+') {
                /* lstrip_blocks */
                size_t ls = text_end;
                while (ls > i && (s[ls - 1] == ' ' || s[ls - 1] == '\t'))
                    ls--;
                if ((ls > i && s[ls - 1] == '\n') || (ls == i && line_starting))
                    text_end = ls;
            }
        }
        if (text_end > i) {
            struct tok t = {.t = TK_TEXT, .line = line, .p = s + i, .n = text_end - i};
            push_tok(p, t);
        }
        line += count_lines(s + i, j - i);
        if (!kind)
            break;
        int tag_line = line;
        size_t k = j + 2;
        if (k < n && (s[k] == '-' || s[k] == '+'))
            k++;
        bool strip_after = false, plus = false;
        if (kind == '#') {
            const char *end = NULL;
            for (size_t q = k; q + 1 < n; q++)
                if (s[q] == '#' && s[q + 1] == '}') {
                    end = s + q;
                    break;
                }
            if (!end) {
                perr(p, tag_line, "%s", "unclosed comment");
                return false;
            }
            size_t e = (size_t)(end - s);
            line += count_lines(s + k, e - k);
            strip_after = e > k && s[e - 1] == '-';
            plus = e > k && s[e - 1] == '+';
            k = e + 2;
        } else {
            push_tok(p, (struct tok){.t = kind == '{' ? TK_VAR_BEGIN : TK_BLOCK_BEGIN,
                                     .line = tag_line});
            if (!lex_tag(p, s, n, &k, &line, kind, &strip_after, &plus))
                return false;
        }
        /* after the tag */
        size_t st = k;
        if (strip_after) {
            while (k < n && is_space(s[k]))
                k++;
        } else if (kind != '{' && !plus) {
            /* trim_blocks */
            if (k < n && s[k] == '\n')
                k++;
            else if (k + 1 < n && s[k] == '\r' && s[k + 1] == '\n')
                k += 2;
        }
        line += count_lines(s + st, k - st);
        line_starting = k > 0 && k <= n && s[k - 1] == '\n';
        i = k;
        if (i >= n)
            break;
    }
    push_tok(p, (struct tok){.t = TK_EOF, .line = line});
    return true;
}

/* ---- parser ---- */

static struct tok *cur(struct parser *p)
{
    return &p->toks[p->pos];
}

static struct tok *peek_at(struct parser *p, size_t k)
{
    size_t i = p->pos + k;
    return &p->toks[i < p->ntoks ? i : p->ntoks - 1];
}

static bool tok_is(const struct tok *t, int type, const char *s)
{
    if (t->t != type)
        return false;
    if (!s)
        return true;
    size_t n = strlen(s);
    return t->n == n && memcmp(t->p, s, n) == 0;
}

static bool at_op(struct parser *p, const char *s)
{
    return tok_is(cur(p), TK_OP, s);
}

static bool at_name(struct parser *p, const char *s)
{
    return tok_is(cur(p), TK_NAME, s);
}

static void advance(struct parser *p)
{
    if (p->pos + 1 < p->ntoks)
        p->pos++;
}

static bool accept_op(struct parser *p, const char *s)
{
    if (at_op(p, s)) {
        advance(p);
        return true;
    }
    return false;
}

static bool accept_name(struct parser *p, const char *s)
{
    if (at_name(p, s)) {
        advance(p);
        return true;
    }
    return false;
}

static void tok_desc(const struct tok *t, char *out, size_t n)
{
    switch (t->t) {
    case TK_EOF: snprintf(out, n, "end of template"); break;
    case TK_VAR_END: snprintf(out, n, "'}}'"); break;
    case TK_BLOCK_END: snprintf(out, n, "'%%}'"); break;
    case TK_STRING: snprintf(out, n, "string"); break;
    default: snprintf(out, n, "'%.*s'", (int)CND_MIN(t->n, 40u), t->p ? t->p : ""); break;
    }
}

static bool expect_op(struct parser *p, const char *s)
{
    if (accept_op(p, s))
        return true;
    char d[64], msg[128];
    tok_desc(cur(p), d, sizeof(d));
    snprintf(msg, sizeof(msg), "expected '%s', got %s", s, d);
    perr(p, cur(p)->line, "%s", msg);
    return false;
}

static bool expect_type(struct parser *p, int type, const char *what)
{
    if (cur(p)->t == type) {
        advance(p);
        return true;
    }
    char d[64], msg[128];
    tok_desc(cur(p), d, sizeof(d));
    snprintf(msg, sizeof(msg), "expected %s, got %s", what, d);
    perr(p, cur(p)->line, "%s", msg);
    return false;
}

static struct jnode *mk(struct parser *p, int kind, int line)
{
    struct jnode *n = ja_alloc(p->a, sizeof(*n));
    n->kind = kind;
    n->line = line;
    return n;
}

static struct jnode *parse_expr(struct parser *p, bool with_cond);
static struct jnode *parse_or(struct parser *p);
static struct jnode *parse_unary(struct parser *p, bool with_filter);
static struct jnode *parse_primary(struct parser *p);
static struct jnode *parse_postfix(struct parser *p, struct jnode *n);

static bool enter(struct parser *p)
{
    if (++p->depth > MAX_NEST) {
        perr(p, cur(p)->line, "%s", "expression nested too deeply");
        return false;
    }
    return true;
}

/* (args) after '(' was consumed: positional into l1, kw into l2. */
static bool parse_call_args(struct parser *p, struct jnodes *args, struct jnodes *kwargs)
{
    while (!at_op(p, ")")) {
        if (p->failed)
            return false;
        if (cur(p)->t == TK_NAME && tok_is(peek_at(p, 1), TK_OP, "=")) {
            struct jnode *kw = mk(p, JN_KW, cur(p)->line);
            kw->name = cur(p)->p;
            kw->name_n = cur(p)->n;
            advance(p);
            advance(p);
            kw->a = parse_expr(p, true);
            if (!kw->a)
                return false;
            jn_push(p->a, kwargs, kw);
        } else {
            if (kwargs->n) {
                perr(p, cur(p)->line, "%s", "positional argument after keyword argument");
                return false;
            }
            struct jnode *e = parse_expr(p, true);
            if (!e)
                return false;
            jn_push(p->a, args, e);
        }
        if (!accept_op(p, ","))
            break;
    }
    return expect_op(p, ")");
}

static struct jnode *parse_filter(struct parser *p, struct jnode *operand)
{
    /* after '|' */
    if (cur(p)->t != TK_NAME) {
        perr(p, cur(p)->line, "%s", "expected filter name");
        return NULL;
    }
    struct jnode *f = mk(p, JN_FILTER, cur(p)->line);
    f->a = operand;
    f->name = cur(p)->p;
    f->name_n = cur(p)->n;
    advance(p);
    if (accept_op(p, "(") && !parse_call_args(p, &f->l1, &f->l2))
        return NULL;
    return f;
}

static bool starts_primary(struct parser *p)
{
    struct tok *t = cur(p);
    if (t->t == TK_STRING || t->t == TK_INT || t->t == TK_FLOAT)
        return true;
    if (t->t == TK_OP)
        return tok_is(t, TK_OP, "(") || tok_is(t, TK_OP, "[") || tok_is(t, TK_OP, "{");
    if (t->t == TK_NAME) {
        static const char *kw[] = {"else", "or",  "and", "if",       "in",
                                   "is",   "not", "for", "recursive"};
        for (size_t i = 0; i < ARRAY_SIZE(kw); i++)
            if (tok_is(t, TK_NAME, kw[i]))
                return false;
        return true;
    }
    return false;
}

static struct jnode *parse_filter_expr(struct parser *p, struct jnode *n)
{
    while (n && !p->failed) {
        if (accept_op(p, "|")) {
            n = parse_filter(p, n);
        } else if (at_name(p, "is")) {
            int line = cur(p)->line;
            advance(p);
            struct jnode *t = mk(p, JN_TEST, line);
            t->a = n;
            t->neg = accept_name(p, "not");
            if (cur(p)->t != TK_NAME) {
                /* `is none`/`is true` are names; allow `is ==` style too? no. */
                perr(p, cur(p)->line, "%s", "expected test name after 'is'");
                return NULL;
            }
            t->name = cur(p)->p;
            t->name_n = cur(p)->n;
            advance(p);
            if (accept_op(p, "(")) {
                struct jnodes kw = {0};
                if (!parse_call_args(p, &t->l1, &kw))
                    return NULL;
            } else if (starts_primary(p)) {
                struct jnode *arg = parse_postfix(p, parse_primary(p));
                if (!arg)
                    return NULL;
                jn_push(p->a, &t->l1, arg);
            }
            n = t;
        } else if (at_op(p, "(")) {
            n = parse_postfix(p, n);
        } else {
            break;
        }
    }
    return p->failed ? NULL : n;
}

static struct jnode *parse_postfix(struct parser *p, struct jnode *n)
{
    while (n && !p->failed) {
        int line = cur(p)->line;
        if (accept_op(p, ".")) {
            struct jnode *a = mk(p, JN_ATTR, line);
            a->a = n;
            if (cur(p)->t == TK_NAME) {
                a->name = cur(p)->p;
                a->name_n = cur(p)->n;
                advance(p);
            } else if (cur(p)->t == TK_INT) {
                /* foo.0 == foo[0] */
                a->kind = JN_ITEM;
                a->b = mk(p, JN_LIT, line);
                a->b->lit = jv_int(cur(p)->i);
                advance(p);
            } else {
                perr(p, line, "%s", "expected attribute name after '.'");
                return NULL;
            }
            n = a;
        } else if (accept_op(p, "[")) {
            struct jnode *start = NULL, *stop = NULL, *step = NULL;
            bool is_slice = false;
            if (!at_op(p, ":"))
                start = parse_expr(p, true);
            if (accept_op(p, ":")) {
                is_slice = true;
                if (!at_op(p, "]") && !at_op(p, ":"))
                    stop = parse_expr(p, true);
                if (accept_op(p, ":") && !at_op(p, "]"))
                    step = parse_expr(p, true);
            }
            if (p->failed || !expect_op(p, "]"))
                return NULL;
            struct jnode *s = mk(p, is_slice ? JN_SLICE : JN_ITEM, line);
            s->a = n;
            s->b = start;
            s->c = stop;
            s->d = step;
            if (!is_slice && !start) {
                perr(p, line, "%s", "empty subscript");
                return NULL;
            }
            n = s;
        } else if (accept_op(p, "(")) {
            struct jnode *c = mk(p, JN_CALL, line);
            c->a = n;
            if (!parse_call_args(p, &c->l1, &c->l2))
                return NULL;
            n = c;
        } else {
            break;
        }
    }
    return p->failed ? NULL : n;
}

static struct jnode *parse_primary(struct parser *p)
{
    struct tok *t = cur(p);
    int line = t->line;
    if (!enter(p))
        return NULL;
    struct jnode *n = NULL;
    if (t->t == TK_NAME) {
        n = mk(p, JN_LIT, line);
        if (tok_is(t, TK_NAME, "true") || tok_is(t, TK_NAME, "True"))
            n->lit = jv_bool(true);
        else if (tok_is(t, TK_NAME, "false") || tok_is(t, TK_NAME, "False"))
            n->lit = jv_bool(false);
        else if (tok_is(t, TK_NAME, "none") || tok_is(t, TK_NAME, "None"))
            n->lit = jv_none();
        else {
            n->kind = JN_NAME;
            n->name = t->p;
            n->name_n = t->n;
        }
        advance(p);
    } else if (t->t == TK_STRING) {
        /* adjacent literals concatenate */
        struct buf b;
        buf_init(&b);
        while (cur(p)->t == TK_STRING) {
            buf_append(&b, cur(p)->p, cur(p)->n);
            advance(p);
        }
        n = mk(p, JN_LIT, line);
        n->lit = jv_str(ja_strndup(p->a, b.data ? b.data : "", b.len), b.len);
        buf_deinit(&b);
    } else if (t->t == TK_INT) {
        n = mk(p, JN_LIT, line);
        n->lit = jv_int(t->i);
        advance(p);
    } else if (t->t == TK_FLOAT) {
        n = mk(p, JN_LIT, line);
        n->lit = jv_float(t->f);
        advance(p);
    } else if (accept_op(p, "(")) {
        if (accept_op(p, ")")) {
            n = mk(p, JN_LIST, line); /* empty tuple */
        } else {
            struct jnode *e = parse_expr(p, true);
            if (e && at_op(p, ",")) {
                n = mk(p, JN_LIST, line);
                jn_push(p->a, &n->l1, e);
                while (accept_op(p, ",") && !at_op(p, ")")) {
                    struct jnode *x = parse_expr(p, true);
                    if (!x)
                        break;
                    jn_push(p->a, &n->l1, x);
                }
            } else {
                n = e;
            }
            if (!p->failed)
                expect_op(p, ")");
        }
    } else if (accept_op(p, "[")) {
        n = mk(p, JN_LIST, line);
        while (!at_op(p, "]") && !p->failed) {
            struct jnode *x = parse_expr(p, true);
            if (!x)
                break;
            jn_push(p->a, &n->l1, x);
            if (!accept_op(p, ","))
                break;
        }
        if (!p->failed)
            expect_op(p, "]");
    } else if (accept_op(p, "{")) {
        n = mk(p, JN_DICT, line);
        while (!at_op(p, "}") && !p->failed) {
            struct jnode *k = parse_expr(p, true);
            if (!k || !expect_op(p, ":"))
                break;
            struct jnode *v = parse_expr(p, true);
            if (!v)
                break;
            jn_push(p->a, &n->l1, k);
            jn_push(p->a, &n->l2, v);
            if (!accept_op(p, ","))
                break;
        }
        if (!p->failed)
            expect_op(p, "}");
    } else {
        char d[64], msg[128];
        tok_desc(t, d, sizeof(d));
        snprintf(msg, sizeof(msg), "unexpected %s in expression", d);
        perr(p, line, "%s", msg);
    }
    p->depth--;
    return p->failed ? NULL : n;
}

static struct jnode *parse_unary(struct parser *p, bool with_filter)
{
    int line = cur(p)->line;
    if (!enter(p))
        return NULL;
    struct jnode *n;
    if (accept_op(p, "-")) {
        n = mk(p, JN_NEG, line);
        n->a = parse_unary(p, false);
    } else if (accept_op(p, "+")) {
        n = mk(p, JN_POS, line);
        n->a = parse_unary(p, false);
    } else {
        n = parse_primary(p);
    }
    if (!p->failed)
        n = parse_postfix(p, n);
    if (!p->failed && with_filter)
        n = parse_filter_expr(p, n);
    p->depth--;
    return p->failed ? NULL : n;
}

static struct jnode *bin(struct parser *p, int op, int line, struct jnode *a, struct jnode *b)
{
    if (!a || !b || p->failed)
        return NULL;
    struct jnode *n = mk(p, JN_BIN, line);
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static struct jnode *parse_pow(struct parser *p)
{
    struct jnode *n = parse_unary(p, true);
    while (n && at_op(p, "**")) {
        int line = cur(p)->line;
        advance(p);
        n = bin(p, JOP_POW, line, n, parse_unary(p, true));
    }
    return n;
}

static struct jnode *parse_math2(struct parser *p)
{
    struct jnode *n = parse_pow(p);
    for (;;) {
        int op = at_op(p, "*")    ? JOP_MUL
                 : at_op(p, "/")  ? JOP_DIV
                 : at_op(p, "//") ? JOP_FLOORDIV
                 : at_op(p, "%")  ? JOP_MOD
                                  : 0;
        if (!n || !op)
            return n;
        int line = cur(p)->line;
        advance(p);
        n = bin(p, op, line, n, parse_pow(p));
    }
}

static struct jnode *parse_concat(struct parser *p)
{
    struct jnode *n = parse_math2(p);
    while (n && at_op(p, "~")) {
        int line = cur(p)->line;
        advance(p);
        n = bin(p, JOP_CONCAT, line, n, parse_math2(p));
    }
    return n;
}

static struct jnode *parse_math1(struct parser *p)
{
    struct jnode *n = parse_concat(p);
    for (;;) {
        int op = at_op(p, "+") ? JOP_ADD : at_op(p, "-") ? JOP_SUB : 0;
        if (!n || !op)
            return n;
        int line = cur(p)->line;
        advance(p);
        n = bin(p, op, line, n, parse_concat(p));
    }
}

static struct jnode *parse_compare(struct parser *p)
{
    struct jnode *n = parse_math1(p);
    for (;;) {
        if (!n)
            return NULL;
        int line = cur(p)->line;
        int op = at_op(p, "==")     ? JOP_EQ
                 : at_op(p, "!=")   ? JOP_NE
                 : at_op(p, "<")    ? JOP_LT
                 : at_op(p, ">")    ? JOP_GT
                 : at_op(p, "<=")   ? JOP_LE
                 : at_op(p, ">=")   ? JOP_GE
                 : at_name(p, "in") ? JOP_IN
                                    : 0;
        if (op) {
            advance(p);
        } else if (at_name(p, "not") && tok_is(peek_at(p, 1), TK_NAME, "in")) {
            advance(p);
            advance(p);
            op = JOP_NOTIN;
        } else {
            return n;
        }
        n = bin(p, op, line, n, parse_math1(p));
    }
}

static struct jnode *parse_not(struct parser *p)
{
    if (at_name(p, "not")) {
        int line = cur(p)->line;
        advance(p);
        if (!enter(p))
            return NULL;
        struct jnode *n = mk(p, JN_NOT, line);
        n->a = parse_not(p);
        p->depth--;
        return n->a ? n : NULL;
    }
    return parse_compare(p);
}

static struct jnode *parse_and(struct parser *p)
{
    struct jnode *n = parse_not(p);
    while (n && at_name(p, "and")) {
        struct jnode *x = mk(p, JN_AND, cur(p)->line);
        advance(p);
        x->a = n;
        x->b = parse_not(p);
        n = x->b ? x : NULL;
    }
    return n;
}

static struct jnode *parse_or(struct parser *p)
{
    struct jnode *n = parse_and(p);
    while (n && at_name(p, "or")) {
        struct jnode *x = mk(p, JN_OR, cur(p)->line);
        advance(p);
        x->a = n;
        x->b = parse_and(p);
        n = x->b ? x : NULL;
    }
    return n;
}

static struct jnode *parse_expr(struct parser *p, bool with_cond)
{
    if (!enter(p))
        return NULL;
    struct jnode *n = parse_or(p);
    while (with_cond && n && at_name(p, "if")) {
        struct jnode *c = mk(p, JN_COND, cur(p)->line);
        advance(p);
        c->a = n;
        c->b = parse_or(p);
        if (!c->b)
            return NULL;
        if (accept_name(p, "else")) {
            c->c = parse_expr(p, true);
            if (!c->c)
                return NULL;
        }
        n = c;
    }
    p->depth--;
    return p->failed ? NULL : n;
}

/* An expression, or a bare tuple `a, b` (as a list). */
static struct jnode *parse_tuple_expr(struct parser *p)
{
    struct jnode *e = parse_expr(p, true);
    if (!e || !at_op(p, ","))
        return e;
    struct jnode *l = mk(p, JN_LIST, e->line);
    jn_push(p->a, &l->l1, e);
    while (accept_op(p, ",")) {
        if (cur(p)->t == TK_BLOCK_END || cur(p)->t == TK_VAR_END)
            break;
        struct jnode *x = parse_expr(p, true);
        if (!x)
            return NULL;
        jn_push(p->a, &l->l1, x);
    }
    return l;
}

/* ---- statements ---- */

static bool parse_body(struct parser *p, struct jnodes *body, const char *const *stops,
                       const char **stopped);

static bool end_block(struct parser *p)
{
    return expect_type(p, TK_BLOCK_END, "'%}'");
}

static bool parse_target_names(struct parser *p, struct jnodes *targets)
{
    bool paren = accept_op(p, "(");
    do {
        if (cur(p)->t != TK_NAME) {
            perr(p, cur(p)->line, "%s", "expected a variable name");
            return false;
        }
        struct jnode *n = mk(p, JN_NAME, cur(p)->line);
        n->name = cur(p)->p;
        n->name_n = cur(p)->n;
        advance(p);
        if (at_op(p, ".")) {
            /* ns.attr */
            advance(p);
            if (cur(p)->t != TK_NAME) {
                perr(p, cur(p)->line, "%s", "expected attribute name");
                return false;
            }
            struct jnode *a = mk(p, JN_ATTR, n->line);
            a->a = n;
            a->name = cur(p)->p;
            a->name_n = cur(p)->n;
            advance(p);
            n = a;
        }
        jn_push(p->a, targets, n);
    } while (accept_op(p, ","));
    if (paren && !expect_op(p, ")"))
        return false;
    return true;
}

static struct jnode *parse_stmt(struct parser *p)
{
    /* BLOCK_BEGIN consumed; at the keyword */
    struct tok *t = cur(p);
    int line = t->line;
    if (t->t != TK_NAME) {
        perr(p, line, "%s", "expected a statement name after '{%'");
        return NULL;
    }
    if (accept_name(p, "if")) {
        struct jnode *n = mk(p, JN_IF, line);
        n->a = parse_expr(p, true);
        if (!n->a || !end_block(p))
            return NULL;
        static const char *const stops[] = {"elif", "else", "endif", NULL};
        const char *stopped = NULL;
        if (!parse_body(p, &n->l1, stops, &stopped))
            return NULL;
        struct jnode *tail = n;
        while (stopped && strcmp(stopped, "elif") == 0) {
            struct jnode *e = mk(p, JN_IF, cur(p)->line);
            e->a = parse_expr(p, true);
            if (!e->a || !end_block(p))
                return NULL;
            if (!parse_body(p, &e->l1, stops, &stopped))
                return NULL;
            jn_push(p->a, &tail->l2, e);
            tail = e;
        }
        if (stopped && strcmp(stopped, "else") == 0) {
            if (!end_block(p))
                return NULL;
            static const char *const stops2[] = {"endif", NULL};
            if (!parse_body(p, &tail->l2, stops2, &stopped))
                return NULL;
        }
        return end_block(p) ? n : NULL;
    }
    if (accept_name(p, "for")) {
        struct jnode *n = mk(p, JN_FOR, line);
        if (!parse_target_names(p, &n->l3))
            return NULL;
        for (size_t i = 0; i < n->l3.n; i++)
            if (n->l3.v[i]->kind != JN_NAME) {
                perr(p, line, "%s", "bad for-loop target");
                return NULL;
            }
        if (!accept_name(p, "in")) {
            perr(p, cur(p)->line, "%s", "expected 'in' in for loop");
            return NULL;
        }
        n->a = parse_expr(p, false);
        if (!n->a)
            return NULL;
        if (at_op(p, ",")) { /* for x in a, b */
            struct jnode *l = mk(p, JN_LIST, line);
            jn_push(p->a, &l->l1, n->a);
            while (accept_op(p, ",")) {
                struct jnode *x = parse_expr(p, false);
                if (!x)
                    return NULL;
                jn_push(p->a, &l->l1, x);
            }
            n->a = l;
        }
        if (accept_name(p, "if")) {
            n->b = parse_expr(p, true);
            if (!n->b)
                return NULL;
        }
        if (accept_name(p, "recursive")) {
            perr(p, line, "%s", "recursive for loops are not supported");
            return NULL;
        }
        if (!end_block(p))
            return NULL;
        static const char *const stops[] = {"else", "endfor", NULL};
        const char *stopped = NULL;
        if (!parse_body(p, &n->l1, stops, &stopped))
            return NULL;
        if (stopped && strcmp(stopped, "else") == 0) {
            if (!end_block(p))
                return NULL;
            static const char *const stops2[] = {"endfor", NULL};
            if (!parse_body(p, &n->l2, stops2, &stopped))
                return NULL;
        }
        return end_block(p) ? n : NULL;
    }
    if (accept_name(p, "set")) {
        struct jnode *n = mk(p, JN_SET, line);
        if (!parse_target_names(p, &n->l3))
            return NULL;
        if (accept_op(p, "=")) {
            n->a = parse_tuple_expr(p);
            if (!n->a)
                return NULL;
            return end_block(p) ? n : NULL;
        }
        if (n->l3.n != 1) {
            perr(p, line, "%s", "block set takes one target");
            return NULL;
        }
        n->kind = JN_SETBLOCK;
        if (accept_op(p, "|")) { /* {% set x | filter %} */
            struct jnode *f = parse_filter(p, NULL);
            while (f && accept_op(p, "|"))
                f = parse_filter(p, f);
            if (!f)
                return NULL;
            n->a = f;
        }
        if (!end_block(p))
            return NULL;
        static const char *const stops[] = {"endset", NULL};
        const char *stopped = NULL;
        if (!parse_body(p, &n->l1, stops, &stopped))
            return NULL;
        return end_block(p) ? n : NULL;
    }
    if (accept_name(p, "macro")) {
        struct jnode *n = mk(p, JN_MACRO, line);
        if (cur(p)->t != TK_NAME) {
            perr(p, line, "%s", "expected macro name");
            return NULL;
        }
        n->name = cur(p)->p;
        n->name_n = cur(p)->n;
        advance(p);
        if (!expect_op(p, "("))
            return NULL;
        while (!at_op(p, ")")) {
            if (cur(p)->t != TK_NAME) {
                perr(p, cur(p)->line, "%s", "expected parameter name");
                return NULL;
            }
            struct jnode *kw = mk(p, JN_KW, cur(p)->line);
            kw->name = cur(p)->p;
            kw->name_n = cur(p)->n;
            advance(p);
            if (accept_op(p, "=")) {
                kw->a = parse_expr(p, true);
                if (!kw->a)
                    return NULL;
            }
            jn_push(p->a, &n->l3, kw);
            if (!accept_op(p, ","))
                break;
        }
        if (!expect_op(p, ")") || !end_block(p))
            return NULL;
        static const char *const stops[] = {"endmacro", NULL};
        const char *stopped = NULL;
        if (!parse_body(p, &n->l1, stops, &stopped))
            return NULL;
        if (cur(p)->t == TK_NAME) /* {% endmacro name %} */
            advance(p);
        return end_block(p) ? n : NULL;
    }
    if (accept_name(p, "filter")) {
        struct jnode *n = mk(p, JN_FILTERBLOCK, line);
        struct jnode *f = parse_filter(p, NULL);
        while (f && accept_op(p, "|"))
            f = parse_filter(p, f);
        if (!f || !end_block(p))
            return NULL;
        n->a = f;
        static const char *const stops[] = {"endfilter", NULL};
        const char *stopped = NULL;
        if (!parse_body(p, &n->l1, stops, &stopped))
            return NULL;
        return end_block(p) ? n : NULL;
    }
    if (accept_name(p, "generation")) {
        struct jnode *n = mk(p, JN_SEQ, line);
        if (!end_block(p))
            return NULL;
        static const char *const stops[] = {"endgeneration", NULL};
        const char *stopped = NULL;
        if (!parse_body(p, &n->l1, stops, &stopped))
            return NULL;
        return end_block(p) ? n : NULL;
    }
    if (accept_name(p, "break") || accept_name(p, "continue")) {
        struct jnode *n = mk(p, tok_is(t, TK_NAME, "break") ? JN_BREAK : JN_CONTINUE, line);
        return end_block(p) ? n : NULL;
    }
    if (accept_name(p, "do")) {
        struct jnode *n = mk(p, JN_DO, line);
        n->a = parse_tuple_expr(p);
        if (!n->a)
            return NULL;
        return end_block(p) ? n : NULL;
    }
    char name[64];
    snprintf(name, sizeof(name), "%.*s", (int)CND_MIN(t->n, 40u), t->p);
    perr(p, line, "unknown or unexpected statement '%s'", name);
    return NULL;
}

/* Parse nodes until EOF (stops == NULL) or a block whose keyword is in stops; on a stop, the
 * keyword is consumed and *stopped names it (the rest of that tag is left to the caller). */
static bool parse_body(struct parser *p, struct jnodes *body, const char *const *stops,
                       const char **stopped)
{
    if (!enter(p))
        return false;
    int open_line = cur(p)->line;
    *stopped = NULL;
    while (!p->failed) {
        struct tok *t = cur(p);
        if (t->t == TK_EOF) {
            if (stops) {
                char msg[128];
                snprintf(msg, sizeof(msg), "missing '{%% %s %%}' for block opened at line %d",
                         stops[0], open_line);
                for (const char *const *s = stops; *s; s++)
                    if (strncmp(*s, "end", 3) == 0)
                        snprintf(msg, sizeof(msg),
                                 "missing '{%% %s %%}' for block opened at line %d", *s, open_line);
                perr(p, t->line, "%s", msg);
                return false;
            }
            break;
        }
        if (t->t == TK_TEXT) {
            struct jnode *n = mk(p, JN_TEXT, t->line);
            n->lit = jv_str(t->p, t->n);
            jn_push(p->a, body, n);
            advance(p);
            continue;
        }
        if (t->t == TK_VAR_BEGIN) {
            advance(p);
            struct jnode *n = mk(p, JN_OUT, t->line);
            n->a = parse_tuple_expr(p);
            if (!n->a || !expect_type(p, TK_VAR_END, "'}}'"))
                return false;
            jn_push(p->a, body, n);
            continue;
        }
        if (t->t == TK_BLOCK_BEGIN) {
            advance(p);
            struct tok *kw = cur(p);
            if (kw->t == TK_NAME) {
                if (stops) {
                    for (const char *const *s = stops; *s; s++) {
                        if (tok_is(kw, TK_NAME, *s)) {
                            *stopped = *s;
                            advance(p);
                            p->depth--;
                            return true;
                        }
                    }
                }
                static const char *const enders[] = {
                    "endif",    "endfor",    "elif",          "else",    "endset",
                    "endmacro", "endfilter", "endgeneration", "endcall", "endraw"};
                for (size_t i = 0; i < ARRAY_SIZE(enders); i++) {
                    if (tok_is(kw, TK_NAME, enders[i])) {
                        perr(p, kw->line, "unexpected '%s'", enders[i]);
                        return false;
                    }
                }
            }
            struct jnode *n = parse_stmt(p);
            if (!n)
                return false;
            jn_push(p->a, body, n);
            continue;
        }
        char d[64], msg[128];
        tok_desc(t, d, sizeof(d));
        snprintf(msg, sizeof(msg), "unexpected %s", d);
        perr(p, t->line, "%s", msg);
        return false;
    }
    p->depth--;
    return !p->failed;
}

struct jnode *jinja_parse(struct jarena *arena, const char *src, size_t n, char *err)
{
    struct parser p = {.a = arena, .err = err};
    struct jnode *root = NULL;
    if (lex(&p, src, n)) {
        root = mk(&p, JN_SEQ, 1);
        const char *stopped = NULL;
        if (!parse_body(&p, &root->l1, NULL, &stopped))
            root = NULL;
    }
    free(p.toks);
    if (p.failed)
        return NULL;
    return root;
}
