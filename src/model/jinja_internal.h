/* jinja_internal.h: shared types of the Jinja-subset interpreter behind chat_template.h:
 * the bump arena (all values and AST nodes live in one, freed at once), values, AST nodes,
 * and the entry points of the parser (jinja_parse.c), value helpers (jinja_value.c) and
 * evaluator (jinja_eval.c). Not a public header. */
#ifndef CINDER_JINJA_INTERNAL_H
#define CINDER_JINJA_INTERNAL_H

#include "cinder/common.h"
#include "cinder/buf.h"

#include <cjson/cJSON.h>

/* ---- arena ---- */
struct jchunk;
struct jarena {
    struct jchunk *head;
    size_t total; /* bytes handed out */
    size_t limit; /* 0 = unlimited; past it, `over` is set (allocation still succeeds) */
    bool over;
};
void ja_init(struct jarena *a, size_t limit);
void ja_free(struct jarena *a);
void *ja_alloc(struct jarena *a, size_t n); /* zeroed, 16-aligned, never NULL */
char *ja_strndup(struct jarena *a, const char *s, size_t n);

/* ---- values ---- */
enum jtype { JT_UNDEF, JT_NONE, JT_BOOL, JT_INT, JT_FLOAT, JT_STR, JT_LIST, JT_DICT, JT_FUNC };

struct jnode;
struct jlist;
struct jdict;

struct jval {
    int t;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct jlist *l;
        struct jdict *d;
        struct {
            int id;                    /* builtin function id, or 0 for a macro */
            const struct jnode *macro; /* JN_MACRO */
        } fn;
    } u;
};

struct jlist {
    struct jval *v;
    size_t n, cap;
};

struct jdict {
    struct jval *k, *v;
    size_t n, cap;
    bool ns; /* a namespace() object */
    /* Tool-call arguments parsed from a JSON string keep that string: str(d) and "text" + d
     * give it back, so templates that expect a string still work. */
    const char *src;
    size_t src_n;
};

static inline struct jval jv_undef(void)
{
    struct jval v = {.t = JT_UNDEF};
    return v;
}
static inline struct jval jv_none(void)
{
    struct jval v = {.t = JT_NONE};
    return v;
}
static inline struct jval jv_bool(bool b)
{
    struct jval v = {.t = JT_BOOL, .u.b = b};
    return v;
}
static inline struct jval jv_int(int64_t i)
{
    struct jval v = {.t = JT_INT, .u.i = i};
    return v;
}
static inline struct jval jv_float(double f)
{
    struct jval v = {.t = JT_FLOAT, .u.f = f};
    return v;
}
static inline struct jval jv_str(const char *p, size_t n)
{
    struct jval v = {.t = JT_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

struct jlist *jl_new(struct jarena *a, size_t cap);
void jl_push(struct jarena *a, struct jlist *l, struct jval v);
struct jval jv_list(struct jlist *l);
struct jdict *jd_new(struct jarena *a);
struct jval jv_dict(struct jdict *d);
struct jval *jd_get(const struct jdict *d, struct jval key);
struct jval *jd_gets(const struct jdict *d, const char *key, size_t n);
void jd_set(struct jarena *a, struct jdict *d, struct jval key, struct jval v);
bool jd_del(struct jdict *d, struct jval key);

bool jv_truthy(struct jval v);
bool jv_equal(struct jval a, struct jval b);
/* <0, 0, >0; sets *ok=false when the types cannot be ordered. */
int jv_compare(struct jval a, struct jval b, bool case_insensitive, bool *ok);
/* str(): undefined "", None, True, 1, 1.5, python repr for lists/dicts. */
void jv_to_str(struct buf *b, struct jval v);
/* repr(): strings quoted. */
void jv_repr(struct buf *b, struct jval v);
/* json.dumps(v, ensure_ascii, indent (<0: none), separators item_sep/key_sep, sort_keys). */
void jv_to_json(struct buf *b, struct jval v, int indent, const char *item_sep, const char *key_sep,
                bool ensure_ascii, bool sort_keys);
void jv_format_float(struct buf *b, double f); /* python repr(float) */
/* copy_strings: copy string bytes into the arena (else point into j, which must outlive use). */
struct jval jv_from_cjson(struct jarena *a, const cJSON *j, bool copy_strings);
const char *jv_type_name(struct jval v);
size_t utf8_len(const char *p, size_t n);
/* Byte offset of codepoint index ci (clamped to n). */
size_t utf8_offset(const char *p, size_t n, size_t ci);

/* ---- AST ---- */
enum jnkind {
    /* expressions */
    JN_LIT,
    JN_NAME,
    JN_ATTR,
    JN_ITEM,
    JN_SLICE,
    JN_CALL,
    JN_FILTER,
    JN_TEST,
    JN_BIN,
    JN_NOT,
    JN_NEG,
    JN_POS,
    JN_AND,
    JN_OR,
    JN_COND,
    JN_LIST,
    JN_DICT,
    JN_KW,
    /* statements */
    JN_TEXT,
    JN_OUT,
    JN_IF,
    JN_FOR,
    JN_SET,
    JN_SETBLOCK,
    JN_MACRO,
    JN_FILTERBLOCK,
    JN_BREAK,
    JN_CONTINUE,
    JN_DO,
    JN_SEQ,
};

enum jop {
    JOP_ADD = 1,
    JOP_SUB,
    JOP_MUL,
    JOP_DIV,
    JOP_FLOORDIV,
    JOP_MOD,
    JOP_POW,
    JOP_CONCAT,
    JOP_EQ,
    JOP_NE,
    JOP_LT,
    JOP_GT,
    JOP_LE,
    JOP_GE,
    JOP_IN,
    JOP_NOTIN,
};

struct jnodes {
    struct jnode **v;
    size_t n, cap;
};

/* Fields per kind:
 * LIT lit | NAME name | ATTR a.name | ITEM a[b] | SLICE a[b:c:d] (each may be NULL)
 * CALL a(l1, kwargs l2 of JN_KW) | FILTER a|name(l1, l2) (a NULL inside a filter block)
 * TEST a is [not] name(l1) (neg) | BIN a op b | NOT/NEG/POS a | AND/OR a b
 * COND a if b else c (c may be NULL) | LIST l1 | DICT keys l1 values l2 | KW name=a
 * TEXT lit | OUT a | IF a: l1 else l2 | FOR l3 targets in a if b: l1 else l2
 * SET l3 targets (NAME or ATTR) = a | SETBLOCK l3 target: l1 | MACRO name(l3 of KW, a default
 * may be NULL): l1 | FILTERBLOCK a (chain of FILTER): l1 | DO a | SEQ l1 */
struct jnode {
    int kind;
    int line;
    int op;
    bool neg;
    struct jval lit;
    const char *name;
    size_t name_n;
    struct jnode *a, *b, *c, *d;
    struct jnodes l1, l2, l3;
};

void jn_push(struct jarena *a, struct jnodes *l, struct jnode *n);

/* Parse src into a JN_SEQ root allocated in arena; NULL + err on error. */
struct jnode *jinja_parse(struct jarena *arena, const char *src, size_t n, char *err);

/* Render root with the variables in globals (a dict in arena `a`). */
struct jinja_render_opts {
    size_t max_output;
    uint64_t max_steps;
    int max_depth;
    int64_t now;
    bool raised; /* out: the error came from raise_exception() */
};
int jinja_render(const struct jnode *root, struct jarena *a, struct jdict *globals,
                 struct jinja_render_opts *o, struct buf *out, char *err);

#endif
