/*
 * Text analysis: UTF-8 words -> lowercase -> folded -> Snowball stem (search.h).
 *
 * Letters and digits are told apart from separators with the C.UTF-8 locale's Unicode
 * tables (iswalnum_l, towlower_l), so Cyrillic or Greek words are words too; without that
 * locale every non-ASCII character from U+00C0 counts as a letter. Stems are cached per
 * analyzer (a direct-mapped table of short words): news text is Zipf-distributed, so most
 * words are stemmed once.
 */
#include "search/search.h"

#include <libstemmer.h>
#include <locale.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <wctype.h>

#define CACHE_SLOTS 16384 /* per language */
#define CACHE_WORD  24    /* words up to 23 bytes are cached */

struct cache_slot {
    char word[CACHE_WORD];
    char stem[CACHE_WORD];
};

struct search_analyzer {
    struct sb_stemmer *stemmer[SEARCH_LANG_COUNT];
    struct cache_slot *cache[SEARCH_LANG_COUNT];
};

/* ---- Unicode: the C.UTF-8 locale, once ---------------------------------------------------- */

static pthread_once_t locale_once = PTHREAD_ONCE_INIT;
static locale_t utf8_locale;

static void locale_init(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static int is_word_char(uint32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || (cp >= '0' && cp <= '9');
    if (cp >= 0x300 && cp <= 0x36f) /* combining marks belong to their letter */
        return 1;
    if (utf8_locale)
        return iswalnum_l((wint_t)cp, utf8_locale) != 0;
    return cp >= 0xc0 && cp != 0xd7 && cp != 0xf7;
}

static uint32_t to_lower(uint32_t cp)
{
    if (cp < 0x80)
        return cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;
    if (utf8_locale)
        return (uint32_t)towlower_l((wint_t)cp, utf8_locale);
    if ((cp >= 0xc0 && cp <= 0xde && cp != 0xd7))
        return cp + 32;
    return cp;
}

/* what a lowercase letter folds to: its base letters, or NULL to keep it */
static const struct {
    uint32_t lo, hi;
    const char *to;
} folds[] = {
    {0xdf, 0xdf, "ss"},  {0xe0, 0xe5, "a"},    {0xe6, 0xe6, "ae"},  {0xe7, 0xe7, "c"},
    {0xe8, 0xeb, "e"},   {0xec, 0xef, "i"},    {0xf0, 0xf0, "d"},   {0xf1, 0xf1, "n"},
    {0xf2, 0xf6, "o"},   {0xf8, 0xf8, "o"},    {0xf9, 0xfc, "u"},   {0xfd, 0xfd, "y"},
    {0xfe, 0xfe, "th"},  {0xff, 0xff, "y"},    {0x100, 0x105, "a"}, {0x106, 0x10d, "c"},
    {0x10e, 0x111, "d"}, {0x112, 0x11b, "e"},  {0x11c, 0x123, "g"}, {0x124, 0x127, "h"},
    {0x128, 0x131, "i"}, {0x132, 0x133, "ij"}, {0x134, 0x135, "j"}, {0x136, 0x138, "k"},
    {0x139, 0x142, "l"}, {0x143, 0x14b, "n"},  {0x14c, 0x151, "o"}, {0x152, 0x153, "oe"},
    {0x154, 0x159, "r"}, {0x15a, 0x161, "s"},  {0x162, 0x167, "t"}, {0x168, 0x173, "u"},
    {0x174, 0x175, "w"}, {0x176, 0x178, "y"},  {0x179, 0x17e, "z"}, {0x17f, 0x17f, "s"},
    {0x1cd, 0x1ce, "a"}, {0x1cf, 0x1d0, "i"},  {0x1d1, 0x1d2, "o"}, {0x1d3, 0x1dc, "u"},
    {0x218, 0x219, "s"}, {0x21a, 0x21b, "t"},
};

static const char *fold_of(uint32_t cp)
{
    if (cp < 0xdf || cp > 0x21b)
        return NULL;
    for (size_t i = 0; i < ARRAY_LEN(folds); i++)
        if (cp >= folds[i].lo && cp <= folds[i].hi)
            return folds[i].to;
    return NULL;
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

static size_t utf8_put(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Appends the folded form of cp to out (len bytes used, at most SEARCH_TERM_MAX); 0 when
 * it does not fit (the term is complete). */
static int fold_put(uint32_t cp, char *out, size_t *len)
{
    char tmp[4];
    const char *f;
    size_t n;

    if (cp >= 0x300 && cp <= 0x36f)
        return 1; /* combining marks (decomposed accents) go */
    cp = to_lower(cp);
    f = fold_of(cp);
    if (f) {
        n = strlen(f);
        if (*len + n > SEARCH_TERM_MAX)
            return 0;
        memcpy(out + *len, f, n);
    } else {
        n = utf8_put(cp, tmp);
        if (*len + n > SEARCH_TERM_MAX)
            return 0;
        memcpy(out + *len, tmp, n);
    }
    *len += n;
    return 1;
}

/* ---- the analyzer -------------------------------------------------------------------------- */

static const char *const stemmer_names[SEARCH_LANG_COUNT] = {NULL, "spanish", "english"};

int search_analyzer_new(struct search_analyzer **out, struct err *err)
{
    struct search_analyzer *a = xcalloc(1, sizeof(*a));

    pthread_once(&locale_once, locale_init);
    for (int l = 1; l < SEARCH_LANG_COUNT; l++) {
        a->stemmer[l] = sb_stemmer_new(stemmer_names[l], "UTF_8");
        if (!a->stemmer[l]) {
            search_analyzer_free(a);
            *out = NULL;
            return err_set(err, ERR_BACKEND, "no Snowball stemmer for %s", stemmer_names[l]);
        }
        a->cache[l] = xcalloc(CACHE_SLOTS, sizeof(struct cache_slot));
    }
    *out = a;
    return 0;
}

void search_analyzer_free(struct search_analyzer *a)
{
    if (!a)
        return;
    for (int l = 1; l < SEARCH_LANG_COUNT; l++) {
        if (a->stemmer[l])
            sb_stemmer_delete(a->stemmer[l]);
        free(a->cache[l]);
    }
    free(a);
}

enum search_lang search_lang_parse(const char *code)
{
    size_t n;

    if (!code)
        return SEARCH_LANG_NONE;
    n = strcspn(code, "-_");
    if (n == 2 && (code[0] | 0x20) == 'e' && (code[1] | 0x20) == 's')
        return SEARCH_LANG_ES;
    if (n == 2 && (code[0] | 0x20) == 'e' && (code[1] | 0x20) == 'n')
        return SEARCH_LANG_EN;
    return SEARCH_LANG_NONE;
}

const char *search_lang_code(enum search_lang lang)
{
    return lang == SEARCH_LANG_ES ? "es" : lang == SEARCH_LANG_EN ? "en" : "";
}

static uint32_t fnv1a(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* Stems the folded word in term (len bytes) in place; returns the new length. */
static size_t stem(struct search_analyzer *a, enum search_lang lang, char *term, size_t len)
{
    struct cache_slot *slot = NULL;
    const sb_symbol *r;
    int n;

    if (lang <= SEARCH_LANG_NONE || lang >= SEARCH_LANG_COUNT)
        return len;
    if (len < CACHE_WORD) {
        slot = &a->cache[lang][fnv1a(term, len) % CACHE_SLOTS];
        if (strncmp(slot->word, term, CACHE_WORD) == 0) {
            n = (int)strlen(slot->stem);
            memcpy(term, slot->stem, (size_t)n + 1);
            return (size_t)n;
        }
    }
    r = sb_stemmer_stem(a->stemmer[lang], (const sb_symbol *)term, (int)len);
    n = sb_stemmer_length(a->stemmer[lang]);
    if (!r || n <= 0 || (size_t)n > len)
        return len; /* out of memory in the stemmer, or nothing left: the word as it is */
    if (slot) {
        memcpy(slot->word, term, len + 1);
        memcpy(slot->stem, r, (size_t)n);
        slot->stem[n] = '\0';
    }
    memcpy(term, r, (size_t)n);
    term[n] = '\0';
    return (size_t)n;
}

int search_analyze(struct search_analyzer *a, enum search_lang lang, const char *text, size_t len,
                   search_token_fn fn, void *ctx)
{
    const unsigned char *s = (const unsigned char *)text;
    char term[SEARCH_TERM_MAX + 1];
    size_t i = 0;
    int pos = 0;

    pthread_once(&locale_once, locale_init);
    while (i < len) {
        struct search_token t;
        size_t start = i, tlen = 0, next;
        uint32_t cp;
        int full = 0, rc;

        if (!util_utf8_next(s, len, &i, &cp) || !is_word_char(cp))
            continue;
        /* a word: letters, digits and apostrophes between letters */
        full = !fold_put(cp, term, &tlen);
        for (;;) {
            size_t at = i;
            uint32_t c2;

            if (i >= len || !util_utf8_next(s, len, &i, &cp)) {
                i = at;
                break;
            }
            if ((cp == '\'' || cp == 0x2019) && i < len) {
                next = i;
                if (util_utf8_next(s, len, &next, &c2) && is_word_char(c2))
                    continue; /* the apostrophe goes, the word goes on */
            }
            if (!is_word_char(cp)) {
                i = at;
                break;
            }
            if (!full)
                full = !fold_put(cp, term, &tlen);
        }
        if (tlen == 0)
            continue; /* only combining marks */
        term[tlen] = '\0';
        tlen = stem(a, lang, term, tlen);
        t.term = term;
        t.len = tlen;
        t.pos = pos++;
        t.start = start;
        t.end = i;
        rc = fn(ctx, &t);
        if (rc != 0)
            return rc;
    }
    return 0;
}

size_t search_fold(const char *word, size_t len, char *out, size_t n)
{
    const unsigned char *s = (const unsigned char *)word;
    char term[SEARCH_TERM_MAX + 1];
    size_t i = 0, tlen = 0;
    uint32_t cp;

    pthread_once(&locale_once, locale_init);
    while (i < len) {
        if (!util_utf8_next(s, len, &i, &cp) || !is_word_char(cp))
            continue;
        if (!fold_put(cp, term, &tlen))
            break;
    }
    if (n == 0)
        return 0;
    if (tlen >= n)
        tlen = n - 1;
    memcpy(out, term, tlen);
    out[tlen] = '\0';
    return tlen;
}
