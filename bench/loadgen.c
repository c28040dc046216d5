/* loadgen.c: a load generator for any OpenAI-compatible server, like vLLM's `bench serve`.
 *
 * It sends streaming requests ("stream": true, SSE `data:` lines) to /v1/completions or
 * /v1/chat/completions, either at a fixed concurrency (N client threads, each sending its next
 * request as soon as the previous one ends) or at a fixed request rate (Poisson arrivals served
 * by a pool of client threads). Every request asks for exactly max_tokens output tokens
 * ("ignore_eos": true, "temperature": 0) and for a final usage chunk
 * ("stream_options": {"include_usage": true}); output tokens are counted from that chunk, or
 * from the number of content chunks when the server sends no usage.
 *
 * Metrics follow vLLM's definitions:
 *   TTFT  request start (before connect) to the first chunk with non-empty text/content;
 *   TPOT  (E2E - TTFT) / (output_tokens - 1), per request with more than one output token;
 *   ITL   time between consecutive content chunks, over all chunks of all requests;
 *   E2E   request start to the end of the response;
 *   throughputs are totals over the benchmark duration (start to the last response's end).
 *
 * Build: cc -O2 -Wall -Wextra -Werror -std=c11 bench/loadgen.c $(pkg-config --cflags --libs
 *        libcurl) -lpthread -lm -o build/loadgen
 * Usage: loadgen --help. Exit status: 0 when at least one request succeeded, 1 when none did
 * (or the JSON file could not be written), 2 on a usage error. */
#define _POSIX_C_SOURCE 200809L

#include <curl/curl.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_KINDS 16

/* ---------- small utilities ---------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("loadgen: out of memory\n", stderr);
        exit(1);
    }
    return q;
}

struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_reserve(struct sbuf *b, size_t extra)
{
    if (b->len + extra + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + extra + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
}

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    sb_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap, aq;
    va_start(ap, fmt);
    va_copy(aq, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        sb_reserve(b, (size_t)n);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, aq);
        b->len += (size_t)n;
    }
    va_end(aq);
}

static void sb_clear(struct sbuf *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = 0;
}

/* A JSON string literal (with quotes) of s. */
static void sb_json_str(struct sbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            sb_add(b, e, 2);
        } else if (*p == '\n') {
            sb_add(b, "\\n", 2);
        } else if (*p == '\t') {
            sb_add(b, "\\t", 2);
        } else if (*p == '\r') {
            sb_add(b, "\\r", 2);
        } else if (*p < 0x20) {
            sb_printf(b, "\\u%04x", *p);
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
    sb_add(b, "\"", 1);
}

/* splitmix64: prompt words and Poisson gaps, reproducible from --seed. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s) /* [0, 1) */
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---------- a minimal JSON reader (enough for SSE chunks and error bodies) ---------- */

static const char *j_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at '"': returns the position after the closing quote, or NULL. */
static const char *j_str_end(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Skips one value at p (after whitespace); returns the position after it, or NULL. */
static const char *j_skip(const char *p, const char *e, int depth)
{
    p = j_ws(p, e);
    if (p >= e || depth > 64)
        return NULL;
    if (*p == '"')
        return j_str_end(p, e);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        p = j_ws(p + 1, e);
        if (p < e && *p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                p = j_ws(p, e);
                if (p >= e || *p != '"' || !(p = j_str_end(p, e)))
                    return NULL;
                p = j_ws(p, e);
                if (p >= e || *p != ':')
                    return NULL;
                p++;
            }
            if (!(p = j_skip(p, e, depth + 1)))
                return NULL;
            p = j_ws(p, e);
            if (p >= e)
                return NULL;
            if (*p == ',') {
                p++;
                continue;
            }
            return *p == close ? p + 1 : NULL;
        }
    }
    const char *s = p;
    while (p < e && (*p == '-' || *p == '+' || *p == '.' || (*p >= '0' && *p <= '9') ||
                     (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
        p++;
    return p > s ? p : NULL;
}

/* obj: an object value (whitespace allowed before it). Returns the start of key's value. */
static const char *j_get(const char *obj, const char *e, const char *key)
{
    if (!obj)
        return NULL;
    const char *p = j_ws(obj, e);
    if (p >= e || *p != '{')
        return NULL;
    size_t kl = strlen(key);
    p = j_ws(p + 1, e);
    if (p < e && *p == '}')
        return NULL;
    for (;;) {
        p = j_ws(p, e);
        if (p >= e || *p != '"')
            return NULL;
        const char *ks = p + 1, *ke = j_str_end(p, e);
        if (!ke)
            return NULL;
        p = j_ws(ke, e);
        if (p >= e || *p != ':')
            return NULL;
        const char *v = j_ws(p + 1, e);
        if ((size_t)(ke - 1 - ks) == kl && memcmp(ks, key, kl) == 0)
            return v;
        if (!(p = j_skip(v, e, 1)))
            return NULL;
        p = j_ws(p, e);
        if (p >= e || *p != ',')
            return NULL;
        p++;
    }
}

/* arr: an array value; returns the start of element idx. */
static const char *j_idx(const char *arr, const char *e, int idx)
{
    if (!arr)
        return NULL;
    const char *p = j_ws(arr, e);
    if (p >= e || *p != '[')
        return NULL;
    p = j_ws(p + 1, e);
    if (p < e && *p == ']')
        return NULL;
    for (int i = 0;; i++) {
        p = j_ws(p, e);
        if (i == idx)
            return p;
        if (!(p = j_skip(p, e, 1)))
            return NULL;
        p = j_ws(p, e);
        if (p >= e || *p != ',')
            return NULL;
        p++;
    }
}

static int j_is(const char *v, const char *e, char c)
{
    return v && v < e && *v == c;
}

static int j_nonempty_str(const char *v, const char *e)
{
    return j_is(v, e, '"') && v + 1 < e && v[1] != '"';
}

static long j_long(const char *v, const char *e, long dflt)
{
    if (!v || v >= e || !(*v == '-' || (*v >= '0' && *v <= '9')))
        return dflt;
    return (long)strtod(v, NULL); /* the buffers are NUL-terminated */
}

/* Copies a string value (escapes reduced to their character, \uXXXX to '?') into out. */
static void j_copy_str(const char *v, const char *e, char *out, size_t n)
{
    size_t o = 0;
    if (!j_is(v, e, '"')) {
        if (n)
            out[0] = 0;
        return;
    }
    for (const char *p = v + 1; p < e && *p != '"' && o + 1 < n; p++) {
        if (*p == '\\' && p + 1 < e) {
            p++;
            char c = *p == 'n' ? ' ' : *p == 't' ? ' ' : *p == 'u' ? '?' : *p;
            if (*p == 'u')
                p += (e - p > 4) ? 4 : 0;
            out[o++] = c;
        } else {
            out[o++] = *p;
        }
    }
    if (n)
        out[o] = 0;
}

/* ---------- options ---------- */

static struct {
    const char *url, *model, *prompt, *json_path, *api_key;
    int chat;
    int concurrency;
    double rate;
    int max_concurrency;
    int num_requests;
    int prompt_len, shared_prefix_len;
    int max_tokens;
    double timeout_s;
    uint64_t seed;
    int quiet, no_calibrate;
    /* --prompt-len in words, from calibration (tokens per word and fixed overhead) */
    int prompt_words, prefix_words;
    double tok_per_word, tok_overhead;
    int calibrated;
    char endpoint_url[2048];
    char model_buf[256];
} opt = {
    .url = "http://127.0.0.1:8080",
    .concurrency = 0,
    .max_concurrency = 512,
    .num_requests = 0,
    .max_tokens = 64,
    .timeout_s = 300,
    .seed = 0,
};

static void usage(FILE *f)
{
    fputs("usage: loadgen --url http://127.0.0.1:8080 [--model NAME] [options]\n"
          "\n"
          "Streams requests to an OpenAI-compatible server and reports vLLM bench-serve metrics.\n"
          "\n"
          "  --url URL               server base URL (default http://127.0.0.1:8080); a URL\n"
          "                          ending in /v1 or naming a /v1/... path also works\n"
          "  --model NAME            model name (default: the first id of GET /v1/models)\n"
          "  --endpoint E            completions (default) or chat\n"
          "  --concurrency N         N client threads sending requests back to back (default 1)\n"
          "  --rate R                Poisson arrivals at R requests/s instead\n"
          "  --max-concurrency N     with --rate: most requests in flight (default 512)\n"
          "  --num-requests K        total requests (default 16, or 4*N with --concurrency N)\n"
          "  --prompt TEXT           the same prompt for every request (default \"Once upon a "
          "time\")\n"
          "  --prompt-len L          synthetic prompts of about L tokens, built from random words\n"
          "                          (the word count is calibrated with two small requests)\n"
          "  --shared-prefix-len P   with --prompt-len: the first ~P tokens are the same for all\n"
          "                          requests (prefix caching); default 0 = nothing shared\n"
          "  --no-calibrate          take one word as one token instead of calibrating\n"
          "  --max-tokens M          output tokens per request, with ignore_eos (default 64)\n"
          "  --timeout S             per-request timeout in seconds (default 300)\n"
          "  --json FILE             also write the results as JSON ('-' = stdout)\n"
          "  --api-key KEY           send Authorization: Bearer KEY\n"
          "  --seed S                seed for prompts and arrivals (default 0)\n"
          "  --quiet                 no progress or banner on stderr\n",
          f);
}

static long parse_long(const char *flag, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        die("%s: '%s' is not an integer in [%ld, %ld]", flag, v, lo, hi);
    return x;
}

static double parse_double(const char *flag, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi))
        die("%s: '%s' is not a number in [%g, %g]", flag, v, lo, hi);
    return x;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--quiet")) {
            opt.quiet = 1;
            continue;
        }
        if (!strcmp(a, "--no-calibrate")) {
            opt.no_calibrate = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0)
            die("unexpected argument '%s' (see --help)", a);
        /* --flag=value or --flag value */
        char name[64];
        const char *v = NULL;
        const char *eq = strchr(a, '=');
        if (eq) {
            size_t n = (size_t)(eq - a);
            if (n >= sizeof(name))
                die("unknown option '%s'", a);
            memcpy(name, a, n);
            name[n] = 0;
            v = eq + 1;
        } else {
            if (strlen(a) >= sizeof(name))
                die("unknown option '%s'", a);
            strcpy(name, a);
            if (i + 1 >= argc)
                die("%s needs a value", a);
            v = argv[++i];
        }
        if (!strcmp(name, "--url"))
            opt.url = v;
        else if (!strcmp(name, "--model"))
            opt.model = v;
        else if (!strcmp(name, "--endpoint")) {
            if (!strcmp(v, "completions") || !strcmp(v, "/v1/completions"))
                opt.chat = 0;
            else if (!strcmp(v, "chat") || !strcmp(v, "chat/completions") ||
                     !strcmp(v, "/v1/chat/completions"))
                opt.chat = 1;
            else
                die("--endpoint: '%s' is not completions or chat", v);
        } else if (!strcmp(name, "--concurrency"))
            opt.concurrency = (int)parse_long(name, v, 1, 4096);
        else if (!strcmp(name, "--rate"))
            opt.rate = parse_double(name, v, 1e-6, 1e6);
        else if (!strcmp(name, "--max-concurrency"))
            opt.max_concurrency = (int)parse_long(name, v, 1, 4096);
        else if (!strcmp(name, "--num-requests"))
            opt.num_requests = (int)parse_long(name, v, 1, 10000000);
        else if (!strcmp(name, "--prompt"))
            opt.prompt = v;
        else if (!strcmp(name, "--prompt-len"))
            opt.prompt_len = (int)parse_long(name, v, 1, 10000000);
        else if (!strcmp(name, "--shared-prefix-len"))
            opt.shared_prefix_len = (int)parse_long(name, v, 0, 10000000);
        else if (!strcmp(name, "--max-tokens"))
            opt.max_tokens = (int)parse_long(name, v, 1, 10000000);
        else if (!strcmp(name, "--timeout"))
            opt.timeout_s = parse_double(name, v, 0.001, 1e7);
        else if (!strcmp(name, "--json"))
            opt.json_path = v;
        else if (!strcmp(name, "--api-key"))
            opt.api_key = v;
        else if (!strcmp(name, "--seed"))
            opt.seed = (uint64_t)parse_long(name, v, 0, 0x7fffffffffffffffL);
        else
            die("unknown option '%s' (see --help)", name);
    }
    if (opt.concurrency && opt.rate > 0)
        die("--concurrency and --rate exclude each other");
    if (opt.prompt && opt.prompt_len)
        die("--prompt and --prompt-len exclude each other");
    if (opt.shared_prefix_len && !opt.prompt_len)
        die("--shared-prefix-len needs --prompt-len");
    if (opt.shared_prefix_len > opt.prompt_len)
        die("--shared-prefix-len %d is longer than --prompt-len %d", opt.shared_prefix_len,
            opt.prompt_len);
    if (!opt.rate && !opt.concurrency)
        opt.concurrency = 1;
    if (!opt.num_requests)
        opt.num_requests =
            opt.concurrency ? (opt.concurrency * 4 > 16 ? opt.concurrency * 4 : 16) : 16;
    if (!opt.prompt && !opt.prompt_len)
        opt.prompt = "Once upon a time";

    /* the endpoint URL */
    size_t n = strlen(opt.url);
    while (n && opt.url[n - 1] == '/')
        n--;
    if (n + 32 >= sizeof(opt.endpoint_url))
        die("--url is too long");
    const char *path = opt.chat ? "/chat/completions" : "/completions";
    if (strstr(opt.url, "/v1/"))
        snprintf(opt.endpoint_url, sizeof(opt.endpoint_url), "%.*s", (int)n, opt.url);
    else if (n >= 3 && !memcmp(opt.url + n - 3, "/v1", 3))
        snprintf(opt.endpoint_url, sizeof(opt.endpoint_url), "%.*s%s", (int)n, opt.url, path);
    else
        snprintf(opt.endpoint_url, sizeof(opt.endpoint_url), "%.*s/v1%s", (int)n, opt.url, path);
}

/* ---------- prompts ---------- */

/* Common short English words: most tokenizers give one token for " word". */
static const char *const WORDS[] = {
    "the",     "of",       "and",    "to",      "in",       "is",     "was",    "that",
    "for",     "on",       "are",    "with",    "as",       "his",    "they",   "be",
    "at",      "one",      "have",   "this",    "from",     "by",     "hot",    "word",
    "but",     "what",     "some",   "we",      "can",      "out",    "other",  "were",
    "all",     "there",    "when",   "up",      "use",      "your",   "how",    "said",
    "an",      "each",     "she",    "which",   "do",       "their",  "time",   "if",
    "will",    "way",      "about",  "many",    "then",     "them",   "write",  "would",
    "like",    "so",       "these",  "her",     "long",     "make",   "thing",  "see",
    "him",     "two",      "has",    "look",    "more",     "day",    "could",  "go",
    "come",    "did",      "number", "sound",   "no",       "most",   "people", "my",
    "over",    "know",     "water",  "than",    "call",     "first",  "who",    "may",
    "down",    "side",     "been",   "now",     "find",     "any",    "new",    "work",
    "part",    "take",     "get",    "place",   "made",     "live",   "where",  "after",
    "back",    "little",   "only",   "round",   "man",      "year",   "came",   "show",
    "every",   "good",     "me",     "give",    "our",      "under",  "name",   "very",
    "through", "just",     "form",   "great",   "think",    "say",    "help",   "low",
    "line",    "before",   "turn",   "cause",   "same",     "mean",   "move",   "right",
    "boy",     "old",      "too",    "does",    "tell",     "set",    "three",  "want",
    "air",     "well",     "also",   "play",    "small",    "end",    "put",    "home",
    "read",    "hand",     "port",   "large",   "spell",    "add",    "even",   "land",
    "here",    "must",     "big",    "high",    "such",     "follow", "act",    "why",
    "ask",     "men",      "change", "went",    "light",    "kind",   "off",    "need",
    "house",   "picture",  "try",    "us",      "again",    "animal", "point",  "mother",
    "world",   "near",     "build",  "self",    "earth",    "father", "head",   "stand",
    "own",     "page",     "should", "country", "found",    "answer", "school", "grow",
    "study",   "still",    "learn",  "plant",   "cover",    "food",   "sun",    "four",
    "thought", "let",      "keep",   "eye",     "never",    "last",   "door",   "between",
    "city",    "tree",     "cross",  "since",   "hard",     "start",  "might",  "story",
    "saw",     "far",      "sea",    "draw",    "left",     "late",   "run",    "while",
    "press",   "close",    "night",  "real",    "life",     "few",    "stop",   "open",
    "seem",    "together", "next",   "white",   "children", "begin",  "got",    "walk",
    "example", "ease",     "paper",  "often",   "always",   "music",  "those",  "both",
    "mark",    "book",     "letter", "until",   "mile",     "river",  "car",    "feet",
    "care",    "second",   "group",  "carry",   "took",     "rain",
};
#define NWORDS (sizeof(WORDS) / sizeof(WORDS[0]))

static void add_words(struct sbuf *b, uint64_t *rng, int n)
{
    for (int i = 0; i < n; i++) {
        if (b->len)
            sb_add(b, " ", 1);
        sb_puts(b, WORDS[rng_next(rng) % NWORDS]);
    }
}

/* ---------- requests ---------- */

struct req {
    char *body;
    size_t body_len;
    int prompt_words; /* estimate when the server sends no usage */
    double sched;     /* rate mode: arrival time after the start */
    /* results, times in seconds after the benchmark start */
    double t_start, t_first, t_last, t_end;
    double *itl;
    int n_itl, cap_itl;
    int chunks;
    long usage_out, usage_in;
    long http_status;
    int done, stream_error, success, late;
    char kind[32];
    char err[200];
};

static struct req *reqs;
static double t0;
static atomic_int next_req;
static atomic_int n_finished;
static struct curl_slist *headers;

static void make_body(struct sbuf *body, const char *prompt, int max_tokens, int stream)
{
    sb_clear(body);
    sb_puts(body, "{\"model\":");
    sb_json_str(body, opt.model);
    if (opt.chat) {
        sb_puts(body, ",\"messages\":[{\"role\":\"user\",\"content\":");
        sb_json_str(body, prompt);
        sb_puts(body, "}]");
    } else {
        sb_puts(body, ",\"prompt\":");
        sb_json_str(body, prompt);
    }
    sb_printf(body, ",\"max_tokens\":%d,\"temperature\":0,\"ignore_eos\":true", max_tokens);
    if (stream)
        sb_puts(body, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    sb_puts(body, "}");
}

static size_t on_collect(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct sbuf *b = ud;
    size_t n = size * nmemb;
    if (b->len < (1u << 20))
        sb_add(b, ptr, n);
    return n;
}

/* A non-streaming request of `words` random words and max_tokens 1: the server's
 * usage.prompt_tokens, or -1. */
static long prompt_tokens_of(int words, uint64_t seed)
{
    struct sbuf prompt = {0}, body = {0}, resp = {0};
    uint64_t rng = seed;
    add_words(&prompt, &rng, words);
    make_body(&body, prompt.p, 1, 0);
    CURL *c = curl_easy_init();
    long status = 0, pt = -1;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, opt.endpoint_url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.p);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body.len);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(opt.timeout_s * 1000));
        if (curl_easy_perform(c) == CURLE_OK) {
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
            const char *e = resp.p ? resp.p + resp.len : NULL;
            if (status == 200 && resp.p)
                pt = j_long(j_get(j_get(resp.p, e, "usage"), e, "prompt_tokens"), e, -1);
        }
        curl_easy_cleanup(c);
    }
    free(prompt.p);
    free(body.p);
    free(resp.p);
    return pt;
}

/* Tokens per word (and a fixed overhead: BOS, chat template) from two small prompts, so that
 * --prompt-len and --shared-prefix-len come out near their token counts on any tokenizer. */
static void calibrate(void)
{
    opt.tok_per_word = 1.0;
    opt.tok_overhead = 0;
    if (!opt.no_calibrate) {
        const int w1 = 16, w2 = 144;
        long t1 = prompt_tokens_of(w1, opt.seed ^ 0x1234567ULL);
        long t2 = t1 > 0 ? prompt_tokens_of(w2, opt.seed ^ 0x7654321ULL) : -1;
        if (t1 > 0 && t2 > t1) {
            opt.tok_per_word = (double)(t2 - t1) / (w2 - w1);
            opt.tok_overhead = (double)t1 - opt.tok_per_word * w1;
            if (opt.tok_overhead < 0)
                opt.tok_overhead = 0;
            opt.calibrated = 1;
        } else if (!opt.quiet) {
            fprintf(stderr, "loadgen: no usage.prompt_tokens from the server: taking one word "
                            "as one token\n");
        }
    }
    double body_tokens = opt.prompt_len - opt.tok_overhead;
    if (body_tokens < opt.tok_per_word)
        body_tokens = opt.tok_per_word;
    opt.prompt_words = (int)lround(body_tokens / opt.tok_per_word);
    if (opt.prompt_words < 1)
        opt.prompt_words = 1;
    opt.prefix_words = 0;
    if (opt.shared_prefix_len) {
        double pw = (opt.shared_prefix_len - opt.tok_overhead) / opt.tok_per_word;
        opt.prefix_words = pw < 1 ? 1 : (int)lround(pw);
        if (opt.prefix_words > opt.prompt_words)
            opt.prefix_words = opt.prompt_words;
    }
}

static void build_requests(void)
{
    int k = opt.num_requests;
    reqs = calloc((size_t)k, sizeof(*reqs));
    if (!reqs)
        die("out of memory");
    struct sbuf prefix = {0};
    uint64_t prng = opt.seed * 0x2545F4914F6CDD1DULL + 0x51ed27;
    if (opt.prefix_words)
        add_words(&prefix, &prng, opt.prefix_words);
    uint64_t arr_rng = opt.seed ^ 0xa5a5a5a5deadbeefULL;
    double t = 0;
    struct sbuf prompt = {0}, body = {0};
    for (int i = 0; i < k; i++) {
        struct req *r = &reqs[i];
        sb_clear(&prompt);
        if (opt.prompt_len) {
            uint64_t rng = (opt.seed + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)i << 20);
            rng_next(&rng);
            if (prefix.len)
                sb_add(&prompt, prefix.p, prefix.len);
            add_words(&prompt, &rng, opt.prompt_words - opt.prefix_words);
            r->prompt_words = opt.prompt_words;
        } else {
            sb_puts(&prompt, opt.prompt);
            int w = 0, in = 0;
            for (const char *p = opt.prompt; *p; p++) {
                int sp = *p == ' ' || *p == '\n' || *p == '\t';
                w += !sp && !in;
                in = !sp;
            }
            r->prompt_words = w;
        }
        make_body(&body, prompt.p, opt.max_tokens, 1);
        r->body = malloc(body.len + 1);
        if (!r->body)
            die("out of memory");
        memcpy(r->body, body.p, body.len + 1);
        r->body_len = body.len;
        r->usage_out = r->usage_in = -1;
        if (opt.rate > 0) {
            r->sched = t;
            t += -log(1.0 - rng_unit(&arr_rng)) / opt.rate;
        }
    }
    free(prefix.p);
    free(prompt.p);
    free(body.p);
}

/* ---------- one transfer: SSE parsing ---------- */

struct xfer {
    CURL *curl;
    struct req *r;
    int status_known;
    struct sbuf line; /* the current, incomplete line */
    struct sbuf data; /* the data: lines of the current event */
    struct sbuf errbody;
};

static void on_event_json(struct xfer *x, const char *s, const char *e, double t)
{
    struct req *r = x->r;
    const char *err = j_get(s, e, "error");
    if (err && !j_is(err, e, 'n')) {
        const char *msg = j_is(err, e, '{') ? j_get(err, e, "message") : err;
        r->stream_error = 1;
        if (!r->err[0]) {
            snprintf(r->err, sizeof(r->err), "error event: ");
            size_t l = strlen(r->err);
            j_copy_str(msg, e, r->err + l, sizeof(r->err) - l);
        }
        return;
    }
    const char *c0 = j_idx(j_get(s, e, "choices"), e, 0);
    if (c0) {
        int tok;
        if (opt.chat) {
            const char *d = j_get(c0, e, "delta");
            tok = j_nonempty_str(j_get(d, e, "content"), e) ||
                  j_nonempty_str(j_get(d, e, "reasoning_content"), e) ||
                  j_nonempty_str(j_get(d, e, "reasoning"), e);
        } else {
            tok = j_nonempty_str(j_get(c0, e, "text"), e);
        }
        if (tok) {
            if (r->chunks == 0) {
                r->t_first = t;
            } else {
                if (r->n_itl == r->cap_itl) {
                    r->cap_itl = r->cap_itl ? r->cap_itl * 2 : 64;
                    r->itl = xrealloc(r->itl, (size_t)r->cap_itl * sizeof(double));
                }
                r->itl[r->n_itl++] = t - r->t_last;
            }
            r->t_last = t;
            r->chunks++;
        }
    }
    const char *u = j_get(s, e, "usage");
    if (j_is(u, e, '{')) {
        long ct = j_long(j_get(u, e, "completion_tokens"), e, -1);
        long pt = j_long(j_get(u, e, "prompt_tokens"), e, -1);
        if (ct >= 0)
            r->usage_out = ct;
        if (pt >= 0)
            r->usage_in = pt;
    }
}

static void dispatch(struct xfer *x, double t)
{
    const char *s = x->data.p, *e = x->data.p + x->data.len;
    if (!x->data.len)
        return;
    s = j_ws(s, e);
    while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t'))
        e--;
    if (e - s == 6 && !memcmp(s, "[DONE]", 6))
        x->r->done = 1;
    else if (s < e && *s == '{')
        on_event_json(x, s, e, t);
    sb_clear(&x->data);
}

static void on_line(struct xfer *x, char *l, size_t n, double t)
{
    if (n && l[n - 1] == '\r')
        n--;
    if (n == 0) {
        dispatch(x, t);
        return;
    }
    if (n >= 5 && !memcmp(l, "data:", 5)) {
        const char *v = l + 5;
        size_t vn = n - 5;
        if (vn && *v == ' ')
            v++, vn--;
        if (x->data.len) {
            /* lenient: a server that omits the blank line between events */
            const char *s = j_ws(x->data.p, x->data.p + x->data.len);
            const char *end = j_skip(s, x->data.p + x->data.len, 0);
            if (!strcmp(x->data.p, "[DONE]") ||
                (end && j_ws(end, x->data.p + x->data.len) == x->data.p + x->data.len))
                dispatch(x, t);
            else
                sb_add(&x->data, "\n", 1);
        }
        sb_add(&x->data, v, vn);
    }
    /* comments (":"), event:, id:, retry: are ignored */
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    double t = now_s() - t0;
    if (!x->status_known) {
        curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &x->r->http_status);
        x->status_known = 1;
    }
    if (x->r->http_status != 200) {
        if (x->errbody.len < 4096)
            sb_add(&x->errbody, ptr, n < 4096 ? n : 4096);
        return n;
    }
    size_t i = 0;
    while (i < n) {
        char *nl = memchr(ptr + i, '\n', n - i);
        if (!nl) {
            sb_add(&x->line, ptr + i, n - i);
            break;
        }
        size_t seg = (size_t)(nl - (ptr + i));
        if (x->line.len) {
            sb_add(&x->line, ptr + i, seg);
            on_line(x, x->line.p, x->line.len, t);
            sb_clear(&x->line);
        } else {
            on_line(x, ptr + i, seg, t);
        }
        i += seg + 1;
    }
    return n;
}

static void set_kind(struct req *r, const char *kind)
{
    snprintf(r->kind, sizeof(r->kind), "%s", kind);
}

static void run_one(struct xfer *x, struct req *r)
{
    CURL *c = x->curl;
    x->r = r;
    x->status_known = 0;
    sb_clear(&x->line);
    sb_clear(&x->data);
    sb_clear(&x->errbody);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
    r->t_start = now_s() - t0;
    CURLcode rc = curl_easy_perform(c);
    double t = now_s() - t0;
    if (x->line.len) /* a last line without its newline */
        on_line(x, x->line.p, x->line.len, t);
    dispatch(x, t);
    r->t_end = t;
    if (!x->status_known)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->http_status);

    if (rc == CURLE_OPERATION_TIMEDOUT) {
        set_kind(r, "timeout");
        snprintf(r->err, sizeof(r->err), "timed out after %.1f s (%d content chunks)",
                 r->t_end - r->t_start, r->chunks);
    } else if (rc != CURLE_OK && r->http_status == 0) {
        set_kind(r, rc == CURLE_COULDNT_CONNECT ? "connect error" : "transport error");
        snprintf(r->err, sizeof(r->err), "%s", curl_easy_strerror(rc));
    } else if (r->http_status != 200) {
        char k[32];
        snprintf(k, sizeof(k), "HTTP %ld", r->http_status);
        set_kind(r, k);
        const char *s = x->errbody.p, *e = s ? s + x->errbody.len : NULL;
        const char *er = s ? j_get(s, e, "error") : NULL;
        const char *msg = j_is(er, e, '{') ? j_get(er, e, "message") : er;
        char m[160] = "";
        if (j_is(msg, e, '"'))
            j_copy_str(msg, e, m, sizeof(m));
        else if (s)
            snprintf(m, sizeof(m), "%.150s", s);
        snprintf(r->err, sizeof(r->err), "HTTP %ld: %s", r->http_status, m);
    } else if (rc != CURLE_OK) {
        set_kind(r, "transport error");
        snprintf(r->err, sizeof(r->err), "%s after %d content chunks", curl_easy_strerror(rc),
                 r->chunks);
    } else if (r->stream_error) {
        set_kind(r, "stream error");
    } else if (!r->done) {
        set_kind(r, "incomplete stream");
        snprintf(r->err, sizeof(r->err), "stream ended without data: [DONE] (%d content chunks)",
                 r->chunks);
    } else if (r->chunks == 0) {
        set_kind(r, "no content");
        snprintf(r->err, sizeof(r->err), "no chunk with non-empty text");
    } else {
        r->success = 1;
    }
}

static void *worker(void *arg)
{
    (void)arg;
    struct xfer x = {0};
    x.curl = curl_easy_init();
    if (!x.curl) {
        fputs("loadgen: curl_easy_init failed\n", stderr);
        atomic_fetch_add(&n_finished, 1);
        return NULL;
    }
    curl_easy_setopt(x.curl, CURLOPT_URL, opt.endpoint_url);
    curl_easy_setopt(x.curl, CURLOPT_POST, 1L);
    curl_easy_setopt(x.curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(x.curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x.curl, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(x.curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x.curl, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(x.curl, CURLOPT_TIMEOUT_MS, (long)(opt.timeout_s * 1000));
    curl_easy_setopt(x.curl, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(opt.timeout_s < 10 ? opt.timeout_s * 1000 : 10000));
    curl_easy_setopt(x.curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    for (;;) {
        int i = atomic_fetch_add(&next_req, 1);
        if (i >= opt.num_requests)
            break;
        struct req *r = &reqs[i];
        if (opt.rate > 0) {
            double wait = r->sched - (now_s() - t0);
            if (wait > 0)
                sleep_s(wait);
            else if (wait < -0.01)
                r->late = 1;
        }
        run_one(&x, r);
        atomic_fetch_add(&n_finished, 1);
    }
    curl_easy_cleanup(x.curl);
    free(x.line.p);
    free(x.data.p);
    free(x.errbody.p);
    return NULL;
}

/* GET /v1/models for the first model id when --model is not given. */
static void discover_model(void)
{
    char url[2100];
    const char *v1 = strstr(opt.endpoint_url, "/v1/");
    snprintf(url, sizeof(url), "%.*s/v1/models", (int)(v1 - opt.endpoint_url), opt.endpoint_url);
    CURL *c = curl_easy_init();
    struct sbuf b = {0};
    long status = 0;
    CURLcode rc = CURLE_FAILED_INIT;
    if (c) {
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_collect);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
        rc = curl_easy_perform(c);
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
    }
    const char *e = b.p ? b.p + b.len : NULL;
    const char *id = b.p ? j_get(j_idx(j_get(b.p, e, "data"), e, 0), e, "id") : NULL;
    if (rc != CURLE_OK || status != 200 || !j_is(id, e, '"'))
        die("no --model given and GET %s failed (%s, HTTP %ld)", url,
            rc == CURLE_OK ? "no model id" : curl_easy_strerror(rc), status);
    j_copy_str(id, e, opt.model_buf, sizeof(opt.model_buf));
    opt.model = opt.model_buf;
    free(b.p);
}

/* ---------- statistics ---------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct stat {
    double mean, median, p90, p99, min, max;
    int n;
};

/* Percentiles by linear interpolation between closest ranks (numpy's default). */
static double pct(const double *v, int n, double p)
{
    if (n <= 0)
        return 0;
    double pos = p / 100.0 * (n - 1);
    int lo = (int)pos;
    if (lo >= n - 1)
        return v[n - 1];
    return v[lo] + (v[lo + 1] - v[lo]) * (pos - lo);
}

static struct stat stats(double *v, int n)
{
    struct stat s = {0};
    s.n = n;
    if (n == 0)
        return s;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += v[i];
    s.mean = sum / n;
    s.median = pct(v, n, 50);
    s.p90 = pct(v, n, 90);
    s.p99 = pct(v, n, 99);
    s.min = v[0];
    s.max = v[n - 1];
    return s;
}

struct kindcount {
    char kind[32];
    char first_err[200];
    int count;
};

/* ---------- report ---------- */

static void json_stat(struct sbuf *b, const char *name, struct stat s)
{
    sb_printf(b, ",\n  \"mean_%s_ms\": %.4f, \"median_%s_ms\": %.4f, \"p90_%s_ms\": %.4f", name,
              s.mean * 1e3, name, s.median * 1e3, name, s.p90 * 1e3);
    sb_printf(b, ", \"p99_%s_ms\": %.4f, \"min_%s_ms\": %.4f, \"max_%s_ms\": %.4f", name,
              s.p99 * 1e3, name, s.min * 1e3, name, s.max * 1e3);
}

static void print_stat(const char *title, const char *abbr, struct stat s)
{
    char line[64];
    int pad = (50 - (int)strlen(title) - 2) / 2;
    memset(line, '-', sizeof(line));
    printf("%.*s%s%.*s\n", pad, line, title, 50 - pad - (int)strlen(title), line);
    char k[64];
    snprintf(k, sizeof(k), "Mean %s (ms):", abbr);
    printf("%-40s %.2f\n", k, s.mean * 1e3);
    snprintf(k, sizeof(k), "Median %s (ms):", abbr);
    printf("%-40s %.2f\n", k, s.median * 1e3);
    snprintf(k, sizeof(k), "P99 %s (ms):", abbr);
    printf("%-40s %.2f\n", k, s.p99 * 1e3);
}

static int report(void)
{
    int k = opt.num_requests, ok = 0, late = 0, short_out = 0, no_usage = 0, est_in = 0;
    long in_tok = 0, out_tok = 0;
    double duration = 0;
    int n_itl = 0;
    for (int i = 0; i < k; i++) {
        if (reqs[i].t_end > duration)
            duration = reqs[i].t_end;
        n_itl += reqs[i].success ? reqs[i].n_itl : 0;
    }
    double *ttft = xrealloc(NULL, (size_t)k * sizeof(double));
    double *tpot = xrealloc(NULL, (size_t)k * sizeof(double));
    double *e2e = xrealloc(NULL, (size_t)k * sizeof(double));
    double *itl = xrealloc(NULL, (size_t)(n_itl ? n_itl : 1) * sizeof(double));
    int n_tpot = 0;
    n_itl = 0;
    struct kindcount kinds[MAX_KINDS];
    int nk = 0;
    for (int i = 0; i < k; i++) {
        struct req *r = &reqs[i];
        late += r->late;
        if (!r->success) {
            int j;
            for (j = 0; j < nk; j++)
                if (!strcmp(kinds[j].kind, r->kind))
                    break;
            if (j == nk && nk < MAX_KINDS) {
                snprintf(kinds[nk].kind, sizeof(kinds[nk].kind), "%s", r->kind);
                snprintf(kinds[nk].first_err, sizeof(kinds[nk].first_err), "%s", r->err);
                kinds[nk++].count = 0;
            }
            if (j < nk)
                kinds[j].count++;
            continue;
        }
        long out = r->usage_out >= 0 ? r->usage_out : r->chunks;
        no_usage += r->usage_out < 0;
        short_out += out != opt.max_tokens;
        out_tok += out;
        if (r->usage_in >= 0) {
            in_tok += r->usage_in;
        } else {
            in_tok += r->prompt_words;
            est_in++;
        }
        ttft[ok] = r->t_first - r->t_start;
        e2e[ok] = r->t_end - r->t_start;
        if (out > 1)
            tpot[n_tpot++] = (e2e[ok] - ttft[ok]) / (double)(out - 1);
        for (int j = 0; j < r->n_itl; j++)
            itl[n_itl++] = r->itl[j];
        ok++;
    }
    int failed = k - ok;
    struct stat s_ttft = stats(ttft, ok), s_tpot = stats(tpot, n_tpot), s_itl = stats(itl, n_itl),
                s_e2e = stats(e2e, ok);
    double req_tput = duration > 0 ? ok / duration : 0;
    double out_tput = duration > 0 ? out_tok / duration : 0;
    double tot_tput = duration > 0 ? (in_tok + out_tok) / duration : 0;

    char mode[64];
    if (opt.rate > 0)
        snprintf(mode, sizeof(mode), "rate %.2f req/s (Poisson, <= %d in flight)", opt.rate,
                 opt.max_concurrency);
    else
        snprintf(mode, sizeof(mode), "concurrency %d", opt.concurrency);
    printf("============ Serving Benchmark Result ============\n");
    printf("%-40s %s\n", "Endpoint:", opt.endpoint_url);
    printf("%-40s %s\n", "Model:", opt.model);
    printf("%-40s %s\n", "Mode:", mode);
    printf("%-40s %d\n", "Successful requests:", ok);
    printf("%-40s %d\n", "Failed requests:", failed);
    for (int j = 0; j < nk; j++) {
        char l[64];
        snprintf(l, sizeof(l), "  %.31s:", kinds[j].kind);
        printf("%-40s %d   (e.g. %s)\n", l, kinds[j].count, kinds[j].first_err);
    }
    printf("%-40s %.2f\n", "Benchmark duration (s):", duration);
    printf("%-40s %ld%s\n", "Total input tokens:", in_tok,
           est_in ? "  (partly estimated: no usage)" : "");
    if (ok)
        printf("%-40s %.1f\n", "Mean input tokens per request:", (double)in_tok / ok);
    printf("%-40s %ld%s\n", "Total generated tokens:", out_tok,
           no_usage ? "  (partly counted as chunks: no usage)" : "");
    printf("%-40s %.2f\n", "Request throughput (req/s):", req_tput);
    printf("%-40s %.2f\n", "Output token throughput (tok/s):", out_tput);
    printf("%-40s %.2f\n", "Total token throughput (tok/s):", tot_tput);
    if (short_out)
        printf("%-40s %d\n", "Outputs with != max_tokens tokens:", short_out);
    if (late)
        printf("%-40s %d\n", "Requests started late (pool full):", late);
    print_stat("Time to First Token", "TTFT", s_ttft);
    print_stat("Time per Output Token (excl. 1st token)", "TPOT", s_tpot);
    print_stat("Inter-token Latency", "ITL", s_itl);
    print_stat("End-to-end Latency", "E2EL", s_e2e);
    printf("==================================================\n");
    fflush(stdout);

    int rc = ok > 0 ? 0 : 1;
    if (opt.json_path) {
        struct sbuf b = {0};
        sb_puts(&b, "{\n  \"endpoint\": ");
        sb_json_str(&b, opt.endpoint_url);
        sb_puts(&b, ", \"model\": ");
        sb_json_str(&b, opt.model);
        sb_printf(&b, ", \"endpoint_type\": \"%s\"", opt.chat ? "chat" : "completions");
        if (opt.rate > 0)
            sb_printf(&b, ", \"request_rate\": %.6g, \"max_concurrency\": %d", opt.rate,
                      opt.max_concurrency);
        else
            sb_printf(&b, ", \"request_rate\": null, \"max_concurrency\": %d", opt.concurrency);
        sb_printf(&b,
                  ",\n  \"num_prompts\": %d, \"max_tokens\": %d, \"prompt_len\": %d, "
                  "\"shared_prefix_len\": %d, \"seed\": %llu",
                  k, opt.max_tokens, opt.prompt_len, opt.shared_prefix_len,
                  (unsigned long long)opt.seed);
        if (opt.prompt_len)
            sb_printf(&b,
                      ", \"prompt_words\": %d, \"shared_prefix_words\": %d, "
                      "\"tokens_per_word\": %.4f, \"calibrated\": %s",
                      opt.prompt_words, opt.prefix_words, opt.tok_per_word,
                      opt.calibrated ? "true" : "false");
        sb_printf(&b, ",\n  \"completed\": %d, \"failed\": %d, \"failures\": {", ok, failed);
        for (int j = 0; j < nk; j++) {
            sb_puts(&b, j ? ", " : "");
            sb_json_str(&b, kinds[j].kind);
            sb_printf(&b, ": %d", kinds[j].count);
        }
        sb_puts(&b, "}, \"errors\": [");
        for (int j = 0; j < nk; j++) {
            sb_puts(&b, j ? ", " : "");
            sb_json_str(&b, kinds[j].first_err);
        }
        sb_printf(&b,
                  "],\n  \"duration\": %.6f, \"total_input_tokens\": %ld, "
                  "\"total_output_tokens\": %ld",
                  duration, in_tok, out_tok);
        sb_printf(&b, ", \"input_tokens_estimated\": %s, \"outputs_not_max_tokens\": %d",
                  est_in ? "true" : "false", short_out);
        sb_printf(&b,
                  ",\n  \"request_throughput\": %.4f, \"output_throughput\": %.4f, "
                  "\"total_token_throughput\": %.4f, \"late_starts\": %d",
                  req_tput, out_tput, tot_tput, late);
        json_stat(&b, "ttft", s_ttft);
        json_stat(&b, "tpot", s_tpot);
        json_stat(&b, "itl", s_itl);
        json_stat(&b, "e2el", s_e2e);
        sb_puts(&b, ",\n  \"requests\": [");
        for (int i = 0; i < k; i++) {
            struct req *r = &reqs[i];
            long out = r->usage_out >= 0 ? r->usage_out : r->chunks;
            sb_printf(&b,
                      "%s\n    {\"success\": %s, \"http_status\": %ld, \"start_s\": %.6f, "
                      "\"ttft_ms\": %.4f, \"e2el_ms\": %.4f, \"prompt_tokens\": %ld, "
                      "\"output_tokens\": %ld, \"chunks\": %d, \"error\": ",
                      i ? "," : "", r->success ? "true" : "false", r->http_status, r->t_start,
                      r->chunks ? (r->t_first - r->t_start) * 1e3 : 0.0,
                      (r->t_end - r->t_start) * 1e3, r->usage_in, out, r->chunks);
            sb_json_str(&b, r->err);
            sb_puts(&b, "}");
        }
        sb_puts(&b, "\n  ]\n}\n");
        FILE *f = strcmp(opt.json_path, "-") ? fopen(opt.json_path, "w") : stdout;
        if (!f || fwrite(b.p, 1, b.len, f) != b.len || (f != stdout && fclose(f) != 0)) {
            fprintf(stderr, "loadgen: cannot write %s: %s\n", opt.json_path, strerror(errno));
            rc = 1;
        }
        free(b.p);
    }
    free(ttft);
    free(tpot);
    free(e2e);
    free(itl);
    return rc;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        die("curl_global_init failed");
    headers = curl_slist_append(NULL, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: text/event-stream");
    headers = curl_slist_append(headers, "Expect:");
    if (opt.api_key) {
        struct sbuf h = {0};
        sb_printf(&h, "Authorization: Bearer %s", opt.api_key);
        headers = curl_slist_append(headers, h.p);
        free(h.p);
    }
    if (!opt.model)
        discover_model();
    if (opt.prompt_len)
        calibrate();
    build_requests();

    int nthreads = opt.rate > 0 ? opt.max_concurrency : opt.concurrency;
    if (nthreads > opt.num_requests)
        nthreads = opt.num_requests;
    if (!opt.quiet) {
        fprintf(stderr, "loadgen: %s, %d requests, ", opt.endpoint_url, opt.num_requests);
        if (opt.rate > 0)
            fprintf(stderr, "rate %.2f req/s (%d threads)", opt.rate, nthreads);
        else
            fprintf(stderr, "concurrency %d", opt.concurrency);
        if (opt.prompt_len)
            fprintf(stderr, ", prompts of ~%d tokens = %d words (%d shared; %.2f tokens/word%s)",
                    opt.prompt_len, opt.prompt_words, opt.prefix_words, opt.tok_per_word,
                    opt.calibrated ? ", calibrated" : ", assumed");
        fprintf(stderr, ", max_tokens %d\n", opt.max_tokens);
    }

    pthread_t *th = calloc((size_t)nthreads, sizeof(*th));
    if (!th)
        die("out of memory");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 512 * 1024);
    t0 = now_s();
    int started = 0;
    for (int i = 0; i < nthreads; i++) {
        int e = pthread_create(&th[i], &attr, worker, NULL);
        if (e) {
            fprintf(stderr, "loadgen: pthread_create: %s (running with %d threads)\n", strerror(e),
                    started);
            break;
        }
        started++;
    }
    pthread_attr_destroy(&attr);
    if (!started)
        die("no client thread could start");
    /* progress on a terminal; the workers bound the run (each request has a timeout) */
    int tty = !opt.quiet && isatty(2);
    double last = 0;
    while (tty && atomic_load(&n_finished) < opt.num_requests) {
        sleep_s(0.2);
        double t = now_s() - t0;
        if (t - last >= 1.0) {
            fprintf(stderr, "\rloadgen: %d/%d done, %.0f s", atomic_load(&n_finished),
                    opt.num_requests, t);
            last = t;
        }
    }
    if (tty && last > 0)
        fputc('\n', stderr);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);

    int rc = report();
    for (int i = 0; i < opt.num_requests; i++) {
        free(reqs[i].body);
        free(reqs[i].itl);
    }
    free(reqs);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    return rc;
}
