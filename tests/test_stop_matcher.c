/* ctest-labels: unit */
/* test_stop_matcher.c: stop strings across deltas, hold-back, UTF-8 safety, and a randomised
 * check that the output never depends on how the text is cut into deltas. */
#include "cinder/stop_matcher.h"
#include "test.h"

#include <stdlib.h>

/* Feed text cut at the given lengths (0-terminated list; the rest in one piece), then flush
 * if nothing matched. Returns the emitted text (static) and the matched index. */
static const char *run_cuts(char *const *stops, int n_stops, const char *text, const int *cuts,
                            int32_t *matched)
{
    static char res[1024];
    struct stop_matcher m;
    struct buf out;
    buf_init(&out);
    stop_matcher_init(&m, stops, n_stops);
    size_t pos = 0, len = strlen(text);
    for (int i = 0; cuts && cuts[i] && pos < len; i++) {
        size_t n = CND_MIN((size_t)cuts[i], len - pos);
        size_t before = out.len;
        size_t r = stop_matcher_feed(&m, text + pos, n, &out);
        CHECK_EQ_INT(r, out.len - before);
        pos += n;
    }
    stop_matcher_feed(&m, text + pos, len - pos, &out);
    *matched = stop_matcher_matched(&m);
    if (*matched < 0)
        stop_matcher_flush(&m, &out);
    snprintf(res, sizeof(res), "%s", out.data ? out.data : "");
    stop_matcher_deinit(&m);
    buf_deinit(&out);
    return res;
}

static void test_basic(void)
{
    char *stops[] = {"\n\n", "END"};
    int32_t mi;
    CHECK_STR(run_cuts(stops, 2, "hello END world", NULL, &mi), "hello ");
    CHECK_EQ_INT(mi, 1);
    CHECK_STR(run_cuts(stops, 2, "no stop here", NULL, &mi), "no stop here");
    CHECK_EQ_INT(mi, -1);
    CHECK_STR(run_cuts(stops, 2, "a\n\nb", NULL, &mi), "a");
    CHECK_EQ_INT(mi, 0);
    CHECK_STR(run_cuts(stops, 2, "END", NULL, &mi), "");
    CHECK_EQ_INT(mi, 1);
    /* a partial stop at the very end is emitted on flush */
    CHECK_STR(run_cuts(stops, 2, "tail EN", NULL, &mi), "tail EN");
    CHECK_EQ_INT(mi, -1);
}

static void test_across_tokens(void)
{
    char *stops[] = {"<|end|>"};
    struct stop_matcher m;
    struct buf out;
    buf_init(&out);
    stop_matcher_init(&m, stops, 1);
    CHECK_EQ_INT(stop_matcher_feed(&m, "Hi", 2, &out), 2);
    CHECK_EQ_INT(stop_matcher_feed(&m, " <|", 3, &out), 1); /* " " out, "<|" held */
    CHECK_EQ_INT(stop_matcher_held(&m), 2);
    CHECK_EQ_INT(stop_matcher_feed(&m, "en", 2, &out), 0);
    CHECK_EQ_INT(stop_matcher_held(&m), 4);
    CHECK_EQ_INT(stop_matcher_feed(&m, "d|> after", 9, &out), 0);
    CHECK_EQ_INT(stop_matcher_matched(&m), 0);
    CHECK_STR(out.data, "Hi ");
    CHECK_EQ_INT(stop_matcher_feed(&m, "more", 4, &out), 0);
    CHECK_EQ_INT(stop_matcher_flush(&m, &out), 0);
    CHECK_STR(out.data, "Hi ");
    stop_matcher_deinit(&m);

    /* a false start is released as soon as it cannot be a stop any more */
    stop_matcher_init(&m, stops, 1);
    buf_reset(&out);
    stop_matcher_feed(&m, "a<|e", 4, &out);
    CHECK_STR(out.data, "a");
    stop_matcher_feed(&m, "x", 1, &out);
    CHECK_STR(out.data, "a<|ex");
    CHECK_EQ_INT(stop_matcher_held(&m), 0);
    stop_matcher_deinit(&m);
    buf_deinit(&out);
}

static void test_overlapping(void)
{
    /* "aab" inside "aaab": the held "aa" must not lose the second start */
    char *s1[] = {"aab"};
    int32_t mi;
    int ones[] = {1, 1, 1, 1, 1, 1, 0};
    CHECK_STR(run_cuts(s1, 1, "xaaab!", ones, &mi), "xa");
    CHECK_EQ_INT(mi, 0);
    CHECK_STR(run_cuts(s1, 1, "xaaab!", NULL, &mi), "xa");
    /* two stops: the one that completes first wins, whatever the cuts */
    char *s2[] = {"bc", "abcd"};
    CHECK_STR(run_cuts(s2, 2, "zabcd", NULL, &mi), "za");
    CHECK_EQ_INT(mi, 0);
    CHECK_STR(run_cuts(s2, 2, "zabcd", ones, &mi), "za");
    /* same end: the longer one */
    char *s3[] = {"cd", "bcd"};
    CHECK_STR(run_cuts(s3, 2, "abcd", NULL, &mi), "a");
    CHECK_EQ_INT(mi, 1);
    /* one stop a prefix of another */
    char *s4[] = {"abc", "ab"};
    CHECK_STR(run_cuts(s4, 2, "xabc", NULL, &mi), "x");
    CHECK_EQ_INT(mi, 1);
}

static void test_empty_and_none(void)
{
    char *stops[] = {"", NULL, "x"};
    struct stop_matcher m;
    stop_matcher_init(&m, stops, 3);
    CHECK_EQ_INT(m.n_stops, 1);
    stop_matcher_deinit(&m);
    int32_t mi;
    CHECK_STR(run_cuts(NULL, 0, "plain text", NULL, &mi), "plain text");
    CHECK_EQ_INT(mi, -1);
    struct buf out;
    buf_init(&out);
    stop_matcher_init(&m, NULL, 0);
    CHECK_EQ_INT(stop_matcher_feed(&m, "", 0, &out), 0);
    CHECK_EQ_INT(stop_matcher_flush(&m, &out), 0);
    stop_matcher_deinit(&m);
    buf_deinit(&out);
}

static void test_utf8(void)
{
    struct stop_matcher m;
    struct buf out;
    buf_init(&out);
    /* no stops: an incomplete character is held until it completes */
    stop_matcher_init(&m, NULL, 0);
    CHECK_EQ_INT(stop_matcher_feed(&m, "a\xE2\x82", 3, &out), 1);
    CHECK_EQ_INT(stop_matcher_held(&m), 2);
    CHECK_EQ_INT(stop_matcher_feed(&m, "\xAC", 1, &out), 3);
    CHECK_STR(out.data, "a\xE2\x82\xAC");
    CHECK_EQ_INT(stop_matcher_feed(&m, "\xF0\x9F", 2, &out), 0);
    CHECK_EQ_INT(stop_matcher_feed(&m, "\x98", 1, &out), 0);
    CHECK_EQ_INT(stop_matcher_feed(&m, "\x80!", 2, &out), 5);
    stop_matcher_deinit(&m);

    /* a stop string that shares a lead byte with the text: "€" = E2 82 AC, stop "₂" = E2 82 82 */
    char *stops[] = {"\xE2\x82\x82"};
    stop_matcher_init(&m, stops, 1);
    buf_reset(&out);
    CHECK_EQ_INT(stop_matcher_feed(&m, "x\xE2\x82", 3, &out), 1);
    CHECK_EQ_INT(stop_matcher_feed(&m, "\xAC", 1, &out), 3);
    CHECK_STR(out.data, "x\xE2\x82\xAC");
    CHECK_EQ_INT(stop_matcher_feed(&m, "\xE2\x82\x82rest", 7, &out), 0);
    CHECK_EQ_INT(stop_matcher_matched(&m), 0);
    stop_matcher_deinit(&m);

    /* a stop ending in the middle of a character: the emit point is moved back to its start */
    char *ascii_then_lead[] = {"ab\xC3"};
    stop_matcher_init(&m, ascii_then_lead, 1);
    buf_reset(&out);
    stop_matcher_feed(&m, "\xC3\xA9", 2, &out);
    CHECK_STR(out.data, "\xC3\xA9");
    stop_matcher_feed(&m, "a", 1, &out);
    CHECK_EQ_INT(stop_matcher_held(&m), 1);
    stop_matcher_deinit(&m);

    /* stray continuation bytes are not waited for */
    stop_matcher_init(&m, NULL, 0);
    buf_reset(&out);
    CHECK_EQ_INT(stop_matcher_feed(&m, "\x80\x80", 2, &out), 2);
    stop_matcher_deinit(&m);
    buf_deinit(&out);
}

/* Reference: earliest-ending match over the whole text, longest on a tie. */
static const char *reference(char *const *stops, int n, const char *text, int32_t *mi)
{
    static char res[512];
    size_t len = strlen(text);
    *mi = -1;
    for (size_t end = 1; end <= len && *mi < 0; end++) {
        size_t best = 0;
        for (int i = 0; i < n; i++) {
            size_t sl = strlen(stops[i]);
            if (sl <= end && memcmp(text + end - sl, stops[i], sl) == 0 && sl > best) {
                best = sl;
                *mi = i;
            }
        }
        if (*mi >= 0) {
            memcpy(res, text, end - best);
            res[end - best] = 0;
            return res;
        }
    }
    snprintf(res, sizeof(res), "%s", text);
    return res;
}

static void test_random_cuts(void)
{
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
#define NEXT() test_xorshift64(&rng)
    static const char alphabet[] = "abc\xC3\xA9";
    int fails = 0;
    for (int iter = 0; iter < 3000 && fails < 5; iter++) {
        char sbuf[3][8];
        char *stops[3];
        int n = 1 + (int)(NEXT() % 3);
        for (int i = 0; i < n; i++) {
            int l = 1 + (int)(NEXT() % 4);
            for (int k = 0; k < l; k++)
                sbuf[i][k] = alphabet[NEXT() % 3];
            sbuf[i][l] = 0;
            stops[i] = sbuf[i];
        }
        char text[64];
        int tl = (int)(NEXT() % 40);
        for (int k = 0; k < tl; k++)
            text[k] = alphabet[NEXT() % 3];
        text[tl] = 0;
        int cuts[64];
        int nc = 0;
        for (int left = tl; left > 0 && nc < 63;) {
            int c = 1 + (int)(NEXT() % 5);
            cuts[nc++] = c;
            left -= c;
        }
        cuts[nc] = 0;
        int32_t mi_ref, mi_got;
        char want[512];
        snprintf(want, sizeof(want), "%s", reference(stops, n, text, &mi_ref));
        const char *got = run_cuts(stops, n, text, cuts, &mi_got);
        if (strcmp(got, want) != 0 || (mi_ref < 0) != (mi_got < 0) ||
            (mi_ref >= 0 && strcmp(stops[mi_ref], stops[mi_got]) != 0)) {
            CHECK_MSG(0, "text '%s' stops %d: got '%s' (%d) want '%s' (%d)", text, n, got, mi_got,
                      want, mi_ref);
            fails++;
        }
    }
    /* and with multi-byte characters cut anywhere: output is always whole characters */
    for (int iter = 0; iter < 500; iter++) {
        char text[64];
        int tl = 0;
        while (tl < 40) {
            if (NEXT() % 2) {
                text[tl++] = '\xC3';
                text[tl++] = '\xA9';
            } else {
                text[tl++] = 'a';
            }
        }
        text[tl] = 0;
        char *stops[] = {"\xC3\xA9"
                         "b"};
        struct stop_matcher m;
        struct buf out;
        buf_init(&out);
        stop_matcher_init(&m, stops, 1);
        int pos = 0;
        while (pos < tl) {
            int c = CND_MIN(1 + (int)(NEXT() % 3), tl - pos);
            size_t before = out.len;
            stop_matcher_feed(&m, text + pos, (size_t)c, &out);
            pos += c;
            if (out.len > before)
                CHECK((unsigned char)out.data[out.len - 1] != 0xC3);
        }
        stop_matcher_flush(&m, &out);
        CHECK_STR(out.data, text);
        stop_matcher_deinit(&m);
        buf_deinit(&out);
    }
}

int main(void)
{
    RUN(test_basic);
    RUN(test_across_tokens);
    RUN(test_overlapping);
    RUN(test_empty_and_none);
    RUN(test_utf8);
    RUN(test_random_cuts);
    return test_summary();
}
