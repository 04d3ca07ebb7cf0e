/*
 * Text analysis: words, folding, stemming, offsets, hostile bytes (src/search/analyze.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "search/search.h"

#define MAX_TOKENS 64

struct collected {
    int n;
    char term[MAX_TOKENS][SEARCH_TERM_MAX + 1];
    int pos[MAX_TOKENS];
    size_t start[MAX_TOKENS], end[MAX_TOKENS];
    int stop_after; /* 0: never */
};

static int collect(void *ctx, const struct search_token *t)
{
    struct collected *c = ctx;

    assert_int_equal(strlen(t->term), t->len);
    assert_true(t->len <= SEARCH_TERM_MAX);
    if (c->n < MAX_TOKENS) {
        memcpy(c->term[c->n], t->term, t->len + 1);
        c->pos[c->n] = t->pos;
        c->start[c->n] = t->start;
        c->end[c->n] = t->end;
    }
    c->n++;
    return c->stop_after && c->n == c->stop_after ? 7 : 0;
}

static struct search_analyzer *an;

static int setup(void **state)
{
    struct err e;

    (void)state;
    return search_analyzer_new(&an, &e);
}

static int teardown(void **state)
{
    (void)state;
    search_analyzer_free(an);
    return 0;
}

static void analyze(enum search_lang lang, const char *text, struct collected *c)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(search_analyze(an, lang, text, strlen(text), collect, c), 0);
}

/* the terms of text joined by spaces */
static const char *terms(enum search_lang lang, const char *text)
{
    static char out[1024];
    struct collected c;
    size_t used = 0;

    analyze(lang, text, &c);
    out[0] = '\0';
    for (int i = 0; i < c.n && i < MAX_TOKENS; i++)
        used += (size_t)snprintf(out + used, sizeof(out) - used, "%s%s", i ? " " : "", c.term[i]);
    return out;
}

static void test_spanish_stems_and_accents(void **state)
{
    (void)state;
    /* with or without accents, singular or plural: one term */
    assert_string_equal(terms(SEARCH_LANG_ES, "inflación inflacion inflaciones INFLACIÓN"),
                        "inflacion inflacion inflacion inflacion");
    assert_string_equal(terms(SEARCH_LANG_ES, "elección Elecciones eleccion"),
                        "eleccion eleccion eleccion");
    assert_string_equal(terms(SEARCH_LANG_ES, "políticos politicos Política"), "polit polit polit");
    assert_string_equal(terms(SEARCH_LANG_ES, "niños ninos NIÑOS"), "nin nin nin");
    assert_string_equal(terms(SEARCH_LANG_ES, "campeón campeones"), "campeon campeon");
}

static void test_english_stems(void **state)
{
    (void)state;
    assert_string_equal(terms(SEARCH_LANG_EN, "elections election Elections"), "elect elect elect");
    assert_string_equal(terms(SEARCH_LANG_EN, "prices pricing running"), "price price run");
    /* the apostrophe goes and the word stays whole */
    assert_string_equal(terms(SEARCH_LANG_EN, "people's don't O’Neill"), "peopl dont oneil");
}

static void test_no_stemming_folds_only(void **state)
{
    (void)state;
    assert_string_equal(terms(SEARCH_LANG_NONE, "Inflaciones Müller Straße Ærø Łódź œuvre"),
                        "inflaciones muller strasse aero lodz oeuvre");
    /* other scripts are words, lowercased, not transliterated */
    assert_string_equal(terms(SEARCH_LANG_NONE, "МОСКВА Αθήνα"), "москва αθήνα");
    /* a decomposed accent (e + combining acute) folds like the composed one */
    assert_string_equal(terms(SEARCH_LANG_NONE, "cafe\xcc\x81 caf\xc3\xa9"), "cafe cafe");
}

static void test_separators_digits_and_offsets(void **state)
{
    struct collected c;
    const char *text = "  IPC: 3,2% en 2024 — «récord» covid19!";

    (void)state;
    analyze(SEARCH_LANG_NONE, text, &c);
    assert_int_equal(c.n, 7);
    assert_string_equal(c.term[0], "ipc");
    assert_string_equal(c.term[1], "3");
    assert_string_equal(c.term[2], "2");
    assert_string_equal(c.term[3], "en");
    assert_string_equal(c.term[4], "2024");
    assert_string_equal(c.term[5], "record");
    assert_string_equal(c.term[6], "covid19");
    for (int i = 0; i < c.n; i++)
        assert_int_equal(c.pos[i], i);
    /* offsets are the word's bytes in the input, accents and all */
    assert_int_equal(c.start[0], 2);
    assert_int_equal(c.end[0], 5);
    assert_memory_equal(text + c.start[5], "récord", c.end[5] - c.start[5]);
    assert_int_equal(c.end[5] - c.start[5], strlen("récord"));
}

static void test_hostile_bytes(void **state)
{
    struct collected c;
    char big[5000];
    /* invalid UTF-8 (a lone continuation byte, an overlong slash, a surrogate, a cut
     * sequence at the end) separates words and never reaches a term */
    const char bad[] = "abc\x80"
                       "def\xc0\xaf"
                       "ghi\xed\xa0\x80"
                       "jkl\xe2\x82";

    (void)state;
    analyze(SEARCH_LANG_ES, bad, &c);
    assert_int_equal(c.n, 4);
    assert_string_equal(c.term[0], "abc");
    assert_string_equal(c.term[3], "jkl");
    /* an overlong word is cut at SEARCH_TERM_MAX bytes, at a character boundary */
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    analyze(SEARCH_LANG_NONE, big, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(strlen(c.term[0]), SEARCH_TERM_MAX);
    for (size_t i = 0; i + 2 < sizeof(big); i += 2)
        memcpy(big + i, "\xc3\xa9", 2); /* é: folds to one byte */
    big[sizeof(big) - 2] = '\0';
    analyze(SEARCH_LANG_NONE, big, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(strlen(c.term[0]), SEARCH_TERM_MAX);
    for (size_t i = 0; i + 3 < sizeof(big); i += 3)
        memcpy(big + i, "\xe6\x97\xa5", 3); /* a CJK character: 3 bytes */
    big[sizeof(big) - 3] = '\0';
    analyze(SEARCH_LANG_NONE, big, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(strlen(c.term[0]), 63); /* 21 characters: no half of one */
    /* empty and separator-only text: no term */
    analyze(SEARCH_LANG_ES, "", &c);
    assert_int_equal(c.n, 0);
    analyze(SEARCH_LANG_ES, " ,.;:!? \t\n«»—", &c);
    assert_int_equal(c.n, 0);
}

static void test_callback_stops(void **state)
{
    struct collected c;

    (void)state;
    memset(&c, 0, sizeof(c));
    c.stop_after = 2;
    assert_int_equal(search_analyze(an, SEARCH_LANG_EN, "one two three", 13, collect, &c), 7);
    assert_int_equal(c.n, 2);
}

static void test_stem_cache_is_exact(void **state)
{
    char word[32];

    (void)state;
    /* many distinct words through the cache: each gives what an uncached run gives */
    for (int i = 0; i < 40000; i++) {
        struct search_analyzer *fresh;
        struct collected c1, c2;
        struct err e;

        snprintf(word, sizeof(word), "palabras%dciones", i);
        memset(&c1, 0, sizeof(c1));
        assert_int_equal(search_analyze(an, SEARCH_LANG_ES, word, strlen(word), collect, &c1), 0);
        if (i % 4000 != 0)
            continue;
        assert_int_equal(search_analyzer_new(&fresh, &e), 0);
        memset(&c2, 0, sizeof(c2));
        assert_int_equal(search_analyze(fresh, SEARCH_LANG_ES, word, strlen(word), collect, &c2),
                         0);
        search_analyzer_free(fresh);
        assert_string_equal(c1.term[0], c2.term[0]);
    }
    /* and a cached word still stems right after its slot was reused */
    assert_string_equal(terms(SEARCH_LANG_ES, "inflaciones"), "inflacion");
}

static void test_fold_and_lang(void **state)
{
    char out[SEARCH_TERM_MAX + 1];

    (void)state;
    assert_int_equal(search_fold("Inflació", strlen("Inflació"), out, sizeof(out)), 8);
    assert_string_equal(out, "inflacio");
    assert_int_equal(search_fold("O'Neill-Ruiz", 12, out, sizeof(out)), 10);
    assert_string_equal(out, "oneillruiz");
    assert_int_equal(search_lang_parse("es"), SEARCH_LANG_ES);
    assert_int_equal(search_lang_parse("es-ES"), SEARCH_LANG_ES);
    assert_int_equal(search_lang_parse("EN_gb"), SEARCH_LANG_EN);
    assert_int_equal(search_lang_parse("fr"), SEARCH_LANG_NONE);
    assert_int_equal(search_lang_parse("esp"), SEARCH_LANG_NONE);
    assert_int_equal(search_lang_parse(NULL), SEARCH_LANG_NONE);
    assert_string_equal(search_lang_code(SEARCH_LANG_EN), "en");
    assert_string_equal(search_lang_code(SEARCH_LANG_NONE), "");
}

static char *snip(enum search_lang lang, const char *text, const char *const *terms, size_t nterms,
                  const char *const *prefixes, size_t nprefixes, int max_words, int *lit)
{
    struct search_highlight h = {terms, nterms, prefixes, nprefixes};
    size_t len;
    char *out;

    *lit = search_snippet(an, lang, text, strlen(text), &h, max_words, &out, &len);
    assert_int_equal(strlen(out), len);
    return out;
}

static void test_snippet_highlights_what_the_index_matched(void **state)
{
    static const char *const infl[] = {"inflacion"}, *const pre[] = {"infla"};
    int lit;
    char *s;

    (void)state;
    /* the stem matches every form; the original bytes are kept */
    s = snip(SEARCH_LANG_ES, "La inflación sube. Las inflaciones bajan.", infl, 1, NULL, 0, 30,
             &lit);
    assert_string_equal(s, "La <em>inflación</em> sube. Las <em>inflaciones</em> bajan.");
    assert_int_equal(lit, 2);
    free(s);
    /* a prefix matches the folded word */
    s = snip(SEARCH_LANG_ES, "INFLACIÓN e inflado; nada más", NULL, 0, pre, 1, 30, &lit);
    assert_string_equal(s, "<em>INFLACIÓN</em> e <em>inflado</em>; nada más");
    free(s);
    /* everything else is escaped */
    s = snip(SEARCH_LANG_ES, "<b>inflación</b> & \"IVA\" d'Or", infl, 1, NULL, 0, 30, &lit);
    assert_string_equal(s, "&lt;b&gt;<em>inflación</em>&lt;/b&gt; &amp; &quot;IVA&quot; d&apos;Or");
    free(s);
}

static void test_snippet_window(void **state)
{
    static const char *const ab[] = {"alfa", "beta"};
    char text[4096];
    size_t used = 0;
    int lit;
    char *s;

    (void)state;
    /* alfa alone early and often; alfa and beta together at words 60-61 */
    for (int i = 0; i < 100; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s ",
                                 i < 10 && i % 2 ? "alfa"
                                 : i == 60       ? "alfa"
                                 : i == 61       ? "beta"
                                                 : "palabra");
    s = snip(SEARCH_LANG_NONE, text, ab, 2, NULL, 0, 10, &lit);
    /* both terms, a little context before, cut on both sides */
    assert_string_equal(s, "… palabra palabra palabra <em>alfa</em> <em>beta</em> palabra "
                           "palabra palabra palabra palabra …");
    assert_int_equal(lit, 2);
    free(s);
    /* no match: the beginning */
    s = snip(SEARCH_LANG_NONE, "uno dos tres cuatro cinco", ab, 2, NULL, 0, 3, &lit);
    assert_string_equal(s, "uno dos tres …");
    assert_int_equal(lit, 0);
    free(s);
    /* a match at the very end still shows max_words words */
    s = snip(SEARCH_LANG_NONE, "uno dos tres cuatro beta", ab, 2, NULL, 0, 3, &lit);
    assert_string_equal(s, "… tres cuatro <em>beta</em>");
    free(s);
    /* empty text, and text of separators only */
    s = snip(SEARCH_LANG_NONE, "", ab, 2, NULL, 0, 3, &lit);
    assert_string_equal(s, "");
    free(s);
    s = snip(SEARCH_LANG_NONE, " -- ", ab, 2, NULL, 0, 3, &lit);
    assert_string_equal(s, "");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spanish_stems_and_accents),
        cmocka_unit_test(test_english_stems),
        cmocka_unit_test(test_no_stemming_folds_only),
        cmocka_unit_test(test_separators_digits_and_offsets),
        cmocka_unit_test(test_hostile_bytes),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_stem_cache_is_exact),
        cmocka_unit_test(test_fold_and_lang),
        cmocka_unit_test(test_snippet_highlights_what_the_index_matched),
        cmocka_unit_test(test_snippet_window),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
