/*
 * The query language: what parses into what, every error with its position, and the
 * bounds that keep hostile queries cheap (src/search/query.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "search/search.h"

static const char *const kinds[] = {"TERM", "PHRASE", "PREFIX", "AND", "OR", "NOT", "FILTER"};

static void dump(const struct search_node *n, char *out, size_t cap, size_t *used)
{
    *used += (size_t)snprintf(out + *used, cap - *used, "(%s", kinds[n->kind]);
    if (n->kind == SEARCH_N_FILTER)
        *used += (size_t)snprintf(out + *used, cap - *used, " %s", search_field_name(n->field));
    if (n->text)
        *used += (size_t)snprintf(out + *used, cap - *used, " %s", n->text);
    for (size_t i = 0; i < n->nkids; i++) {
        *used += (size_t)snprintf(out + *used, cap - *used, " ");
        dump(n->kids[i], out, cap, used);
    }
    *used += (size_t)snprintf(out + *used, cap - *used, ")");
}

/* the tree of q as an S-expression ("" for an empty query), or "ERR <pos> <message>" */
static const char *parse(const char *q)
{
    static char out[4096];
    struct search_query sq;
    struct err e;
    size_t pos, used = 0;

    out[0] = '\0';
    if (search_query_parse(q, strlen(q), &sq, &pos, &e) < 0) {
        snprintf(out, sizeof(out), "ERR %zu %s", pos, e.msg);
        return out;
    }
    if (sq.root)
        dump(sq.root, out, sizeof(out), &used);
    search_query_release(&sq);
    return out;
}

static int64_t ms(int y, int m, int d)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d};

    return (int64_t)timegm(&tm) * 1000;
}

/* the range of the only filter of q */
static void range(const char *q, int64_t *lo, int64_t *hi)
{
    struct search_query sq;
    struct err e;
    size_t pos;

    assert_int_equal(search_query_parse(q, strlen(q), &sq, &pos, &e), 0);
    assert_non_null(sq.root);
    assert_int_equal(sq.root->kind, SEARCH_N_FILTER);
    *lo = sq.root->lo;
    *hi = sq.root->hi;
    search_query_release(&sq);
}

static void test_words_phrases_prefixes(void **state)
{
    (void)state;
    assert_string_equal(parse("inflación"), "(TERM inflación)");
    assert_string_equal(parse("  inflación   madrid "), "(AND (TERM inflación) (TERM madrid))");
    assert_string_equal(parse("\"banco central\" tipos"),
                        "(AND (PHRASE banco central) (TERM tipos))");
    assert_string_equal(parse("infla* covid-19"), "(AND (PREFIX infla) (TERM covid-19))");
    assert_string_equal(parse("infla***"), "(PREFIX infla)");
    assert_string_equal(parse(""), "");
    assert_string_equal(parse("   "), "");
    /* punctuation alone is no word */
    assert_string_equal(parse("paro — récord ¿ ! \"\""), "(AND (TERM paro) (TERM récord))");
    /* a colon after digits or with a space is not a field */
    assert_string_equal(parse("10:30 nota: algo"), "(AND (TERM 10:30) (TERM nota:) (TERM algo))");
}

static void test_operators(void **state)
{
    (void)state;
    assert_string_equal(parse("a b OR c"), "(OR (AND (TERM a) (TERM b)) (TERM c))");
    assert_string_equal(parse("a AND b OR c AND d"),
                        "(OR (AND (TERM a) (TERM b)) (AND (TERM c) (TERM d)))");
    assert_string_equal(parse("(a OR b) c"), "(AND (OR (TERM a) (TERM b)) (TERM c))");
    assert_string_equal(parse("elecciones -municipales"),
                        "(AND (TERM elecciones) (NOT (TERM municipales)))");
    assert_string_equal(parse("paro -(madrid OR barcelona)"),
                        "(AND (TERM paro) (NOT (OR (TERM madrid) (TERM barcelona))))");
    assert_string_equal(parse("a - b"), "(AND (TERM a) (TERM b))"); /* a lone dash */
    /* lowercase or/and are words */
    assert_string_equal(parse("rock and roll or"),
                        "(AND (TERM rock) (TERM and) (TERM roll) (TERM or))");
}

static void test_filters(void **state)
{
    (void)state;
    assert_string_equal(parse("type:video paro"), "(AND (FILTER type video) (TERM paro))");
    assert_string_equal(parse("Type:VIDEO"), "(FILTER type VIDEO)");
    assert_string_equal(parse("resolution:1080p codec:H264"),
                        "(AND (FILTER resolution fullhd) (FILTER codec H264))");
    assert_string_equal(parse("resolution:4K"), "(FILTER resolution uhd)");
    assert_string_equal(parse("tag:\"cambio climático\" program:Telediario"),
                        "(AND (FILTER tag cambio climático) (FILTER program Telediario))");
    assert_string_equal(parse("entity:\"Banco de España\" -object:car status:ready lang:es"),
                        "(AND (FILTER entity Banco de España) (NOT (FILTER object car)) "
                        "(FILTER status ready) (FILTER lang es))");
    assert_string_equal(parse("category:economía created:2024"),
                        "(AND (FILTER category economía) (FILTER created 2024))");
}

static void test_ranges(void **state)
{
    int64_t lo, hi;

    (void)state;
    range("created:2024", &lo, &hi);
    assert_int_equal(lo, ms(2024, 1, 1));
    assert_int_equal(hi, ms(2025, 1, 1));
    range("created:2024-02", &lo, &hi);
    assert_int_equal(lo, ms(2024, 2, 1));
    assert_int_equal(hi, ms(2024, 3, 1));
    range("created:2024-12", &lo, &hi);
    assert_int_equal(hi, ms(2025, 1, 1));
    range("created:2024-02-29", &lo, &hi);
    assert_int_equal(lo, ms(2024, 2, 29));
    assert_int_equal(hi, ms(2024, 3, 1));
    range("created:2024-11-01..2024-12-31", &lo, &hi);
    assert_int_equal(lo, ms(2024, 11, 1));
    assert_int_equal(hi, ms(2025, 1, 1)); /* the last day included */
    range("created:2020..", &lo, &hi);
    assert_int_equal(lo, ms(2020, 1, 1));
    assert_true(hi == INT64_MAX);
    range("created:..2010-06", &lo, &hi);
    assert_true(lo == INT64_MIN);
    assert_int_equal(hi, ms(2010, 7, 1));
    range("created:>2020", &lo, &hi);
    assert_int_equal(lo, ms(2021, 1, 1));
    range("created:>=2020", &lo, &hi);
    assert_int_equal(lo, ms(2020, 1, 1));
    range("created:<2020-03", &lo, &hi);
    assert_int_equal(hi, ms(2020, 3, 1));
    range("created:<=2020-03", &lo, &hi);
    assert_int_equal(hi, ms(2020, 4, 1));

    range("duration:>60s", &lo, &hi);
    assert_int_equal(lo, 61000);
    assert_true(hi == INT64_MAX);
    range("duration:>=60", &lo, &hi);
    assert_int_equal(lo, 60000);
    range("duration:1m..5m", &lo, &hi);
    assert_int_equal(lo, 60000);
    assert_int_equal(hi, 301000);
    range("duration:<1.5h", &lo, &hi);
    assert_int_equal(hi, 5400000);
    range("duration:250ms", &lo, &hi);
    assert_int_equal(lo, 250);
    assert_int_equal(hi, 251);
}

static void test_errors_say_where_and_what(void **state)
{
    (void)state;
    assert_string_equal(parse("paro \"banco central"),
                        "ERR 5 position 5: expected a closing quote for the one opened here");
    assert_string_equal(
        parse("typ:video"),
        "ERR 0 position 0: unknown field 'typ' (fields: type, status, tag, "
        "program, category, entity, object, lang, created, duration, codec, resolution)");
    assert_string_equal(parse("resolution:8k"),
                        "ERR 11 position 11: expected sd, hd, fullhd or uhd (or 720p, 1080p, 4k) "
                        "after 'resolution:', not '8k'");
    assert_string_equal(parse("a type:movie"),
                        "ERR 7 position 7: expected video, audio or image after 'type:', not "
                        "'movie'");
    assert_string_equal(parse("status:gone"),
                        "ERR 7 position 7: expected uploading, processing, ready, failed or "
                        "archived after 'status:', not 'gone'");
    assert_string_equal(parse("created:2024-13"),
                        "ERR 8 position 8: expected a date (2024, 2024-11 or 2024-11-03), a "
                        "range (a..b) or a comparison (>=2024) after 'created:', not '2024-13'");
    assert_non_null(strstr(parse("created:2023-02-29"), "ERR 8 "));
    assert_non_null(strstr(parse("created:2024-12..2024-01"), "range 2024-12..2024-01 is empty"));
    assert_non_null(strstr(parse("created:.."), "ERR 8 "));
    assert_non_null(strstr(parse("duration:long"), "ERR 9 position 9: expected a duration"));
    assert_non_null(strstr(parse("duration:5x"), "ERR 9 "));
    assert_string_equal(parse("tag:\"\""), "ERR 4 position 4: expected a value after 'tag:'");
    assert_string_equal(parse("tag:-"),
                        "ERR 4 position 4: expected letters or digits after 'tag:'");
    assert_string_equal(parse("a OR"), "ERR 4 position 4: expected a word after 'OR'");
    assert_string_equal(parse("OR a"), "ERR 0 position 0: expected a word before 'OR'");
    assert_string_equal(parse("a OR OR b"), "ERR 5 position 5: expected a word before 'OR'");
    assert_string_equal(parse("AND a"), "ERR 0 position 0: expected a word on each side of 'AND'");
    assert_string_equal(parse("(a b"), "ERR 0 position 0: expected a ')' to close the '(' "
                                       "opened here");
    assert_string_equal(parse("a b)"), "ERR 3 position 3: unexpected ')' (no '(' to close)");
    assert_string_equal(parse("*"), "ERR 0 position 0: expected letters or digits before '*'");
    assert_non_null(strstr(parse("-paro"), "ERR 0 position 0: a query of exclusions only"));
    assert_non_null(strstr(parse("-a -b"), "exclusions only"));
    assert_non_null(strstr(parse("a OR -b"), "exclusions only"));
    assert_string_equal(parse("-a b"), "(AND (NOT (TERM a)) (TERM b))");
}

static void test_bounds(void **state)
{
    char q[SEARCH_QUERY_MAX + 64];
    size_t used = 0, pos;
    struct search_query sq;
    struct err e;
    clock_t t0;

    (void)state;
    /* too long */
    memset(q, 'a', SEARCH_QUERY_MAX + 1);
    q[SEARCH_QUERY_MAX + 1] = '\0';
    assert_int_equal(search_query_parse(q, strlen(q), &sq, &pos, &e), -1);
    assert_int_equal(e.code, ERR_LIMIT);
    assert_string_equal(e.msg, "position 2048: the query is 2049 bytes; at most 2048");
    /* one word of the longest length is fine */
    q[SEARCH_QUERY_MAX] = '\0';
    assert_int_equal(search_query_parse(q, strlen(q), &sq, &pos, &e), 0);
    search_query_release(&sq);
    /* too many terms: the 65th is named */
    for (int i = 0; i < 65; i++)
        used += (size_t)snprintf(q + used, sizeof(q) - used, "w%d ", i);
    assert_int_equal(search_query_parse(q, strlen(q), &sq, &pos, &e), -1);
    assert_int_equal(e.code, ERR_LIMIT);
    assert_int_equal(pos, strstr(q, "w64") - q);
    /* too deep */
    snprintf(q, sizeof(q), "((((((((( a )))))))))");
    assert_int_equal(search_query_parse(q, strlen(q), &sq, &pos, &e), -1);
    assert_int_equal(e.code, ERR_LIMIT);
    assert_int_equal(pos, 8);
    snprintf(q, sizeof(q), "(((((((( a ))))))))");
    assert_int_equal(search_query_parse(q, strlen(q), &sq, &pos, &e), 0);
    search_query_release(&sq);
    /* a NUL byte */
    assert_int_equal(search_query_parse("a\0b", 3, &sq, &pos, &e), -1);
    assert_int_equal(pos, 1);
    /* hostile shapes stay cheap: 2 KB of quotes, of parentheses, of dashes, of ORs */
    t0 = clock();
    for (int shape = 0; shape < 5; shape++) {
        const char *unit = (const char *[]){"\"", "(", "-", "a OR ", "x:\""}[shape];
        size_t n = strlen(unit);

        used = 0;
        while (used + n < SEARCH_QUERY_MAX) {
            memcpy(q + used, unit, n);
            used += n;
        }
        q[used] = '\0';
        if (search_query_parse(q, used, &sq, &pos, &e) == 0)
            search_query_release(&sq);
    }
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0); /* linear: far below */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words_phrases_prefixes),
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_errors_say_where_and_what),
        cmocka_unit_test(test_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
