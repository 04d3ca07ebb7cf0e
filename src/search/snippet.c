/*
 * Highlighted snippets (search.h): the window of a text that best shows why it matched.
 *
 * The text is analysed once (the same analyzer as the index, so a query word matches
 * exactly the words the index matched: `inflaciones` lights up for the query
 * `inflación`); a sliding window over the words picks the best span in one pass; the
 * output copies the original bytes, HTML-escaped, with <em> around matched words.
 */
#include "search/search.h"

#include <stdlib.h>
#include <string.h>

#define SNIPPET_MAX_WORDS 20000 /* words of a text looked at; the rest is not shown anyway */
#define MAX_IDS           (2 * SEARCH_QUERY_MAX_TERMS)

struct word {
    size_t start, end;
    int id; /* which query term or prefix it matched, -1 for none */
};

struct collect {
    const struct search_highlight *h;
    const char *text;
    struct word *w;
    size_t n;
};

static int match_id(const struct collect *c, const struct search_token *t)
{
    char folded[SEARCH_TERM_MAX + 1];
    size_t fl;

    for (size_t i = 0; i < c->h->nterms && i < SEARCH_QUERY_MAX_TERMS; i++)
        if (strcmp(c->h->terms[i], t->term) == 0)
            return (int)i;
    if (!c->h->nprefixes)
        return -1;
    fl = search_fold(c->text + t->start, t->end - t->start, folded, sizeof(folded));
    for (size_t i = 0; i < c->h->nprefixes && i < SEARCH_QUERY_MAX_TERMS; i++) {
        size_t pl = strlen(c->h->prefixes[i]);

        if (pl && pl <= fl && memcmp(folded, c->h->prefixes[i], pl) == 0)
            return SEARCH_QUERY_MAX_TERMS + (int)i;
    }
    return -1;
}

static int on_token(void *ctx, const struct search_token *t)
{
    struct collect *c = ctx;

    if (c->n == SNIPPET_MAX_WORDS)
        return 1;
    c->w[c->n].start = t->start;
    c->w[c->n].end = t->end;
    c->w[c->n].id = match_id(c, t);
    c->n++;
    return 0;
}

/* [*from, *to) of w: the window of at most max words that holds the most distinct
 * matched ids, then the most matches, then has its first match closest to the third
 * word (a little context before it) */
static void best_window(const struct word *w, size_t n, size_t max, size_t *from, size_t *to)
{
    int count[MAX_IDS] = {0}, distinct = 0, matches = 0;
    int best_d = -1, best_m = -1;
    size_t best_lead = (size_t)-1, first = 0; /* first match in the current window */
    size_t have;

    *from = 0;
    *to = n < max ? n : max;
    for (size_t end = 0; end < n; end++) {
        size_t start;

        if (w[end].id >= 0) {
            if (count[w[end].id]++ == 0)
                distinct++;
            matches++;
        }
        if (end + 1 > max) {
            const struct word *gone = &w[end - max];

            if (gone->id >= 0) {
                if (--count[gone->id] == 0)
                    distinct--;
                matches--;
            }
        }
        start = end + 1 > max ? end + 1 - max : 0;
        if (first < start)
            first = start;
        while (first <= end && w[first].id < 0)
            first++;
        if (first > end)
            continue; /* no match in this window */
        {
            size_t lead = first - start, off = lead > 3 ? lead - 3 : 3 - lead;

            if (distinct > best_d || (distinct == best_d && matches > best_m) ||
                (distinct == best_d && matches == best_m && off < best_lead)) {
                best_d = distinct;
                best_m = matches;
                best_lead = off;
                *from = start;
                *to = end + 1;
            }
        }
    }
    /* a window shorter than max (it ends at its last match) takes the words after it,
     * then, where the text runs out, words before it */
    *to = *from + max < n ? *from + max : n;
    have = *to - *from;
    if (have < max) {
        size_t room = max - have;

        *from = *from > room ? *from - room : 0;
    }
}

int search_snippet(struct search_analyzer *a, enum search_lang lang, const char *text, size_t len,
                   const struct search_highlight *h, int max_words, char **out, size_t *out_len)
{
    struct collect c = {.h = h, .text = text};
    size_t from, to, pos;
    struct buf b;
    int lit = 0;

    if (max_words < 1)
        max_words = 1;
    c.w = xmalloc(SNIPPET_MAX_WORDS * sizeof(*c.w));
    search_analyze(a, lang, text, len, on_token, &c);
    buf_init(&b, 0);
    if (c.n == 0) {
        *out = buf_detach(&b, out_len);
        free(c.w);
        return 0;
    }
    best_window(c.w, c.n, (size_t)max_words, &from, &to);
    if (from > 0)
        buf_adds(&b, "… ", NULL);
    /* from the start of the text: what comes before the first word, unless it is long */
    pos = from > 0 || c.w[0].start > 64 ? c.w[from].start : 0;
    for (size_t i = from; i < to; i++) {
        buf_add_xml_n(&b, text + pos, c.w[i].start - pos, NULL); /* between words */
        if (c.w[i].id >= 0) {
            buf_adds(&b, "<em>", NULL);
            buf_add_xml_n(&b, text + c.w[i].start, c.w[i].end - c.w[i].start, NULL);
            buf_adds(&b, "</em>", NULL);
            lit++;
        } else {
            buf_add_xml_n(&b, text + c.w[i].start, c.w[i].end - c.w[i].start, NULL);
        }
        pos = c.w[i].end;
    }
    if (to < c.n)
        buf_adds(&b, " …", NULL);
    else if (len - pos <= 64) /* to the end: the closing punctuation */
        buf_add_xml_n(&b, text + pos, len - pos, NULL);
    *out = buf_detach(&b, out_len);
    free(c.w);
    return lit;
}
