/*
 * Whether one text matches a query tree (search.h): the transcript scope's test of each
 * segment of a candidate asset. The text is analysed in its document's language; a word
 * or phrase matches when any of its analyses (Spanish, English, folded) occurs in it, as
 * the index looks it up. Filters are the asset's business and match here.
 */
#include "search/search.h"

#include <stdlib.h>
#include <string.h>

#define MATCH_TERMS_MAX 100000 /* terms of one text considered */

struct mterm {
    char term[SEARCH_TERM_MAX + 1];
};

struct mtext {
    struct mterm *v;
    size_t n, alloc;
};

static int collect(void *ctx, const struct search_token *t)
{
    struct mtext *m = ctx;

    if (m->n == MATCH_TERMS_MAX)
        return 1;
    if (m->n == m->alloc) {
        m->alloc = m->alloc ? m->alloc * 2 : 64;
        m->v = xrealloc(m->v, m->alloc * sizeof(*m->v));
    }
    memcpy(m->v[m->n].term, t->term, t->len);
    m->v[m->n].term[t->len] = '\0';
    m->n++;
    return 0;
}

/* occurrences of the term sequence q[0..nq) in the text */
static int occurrences(const struct mtext *t, const struct mtext *q)
{
    int n = 0;

    if (q->n == 0 || q->n > t->n)
        return 0;
    for (size_t i = 0; i + q->n <= t->n; i++) {
        size_t j = 0;

        while (j < q->n && strcmp(t->v[i + j].term, q->v[j].term) == 0)
            j++;
        n += j == q->n;
    }
    return n;
}

static int words(struct search_analyzer *a, const struct search_node *n, const struct mtext *t,
                 int *hits)
{
    static const enum search_lang langs[] = {SEARCH_LANG_ES, SEARCH_LANG_EN, SEARCH_LANG_NONE};
    int best = 0;

    for (size_t i = 0; i < ARRAY_LEN(langs); i++) {
        struct mtext q = {0};
        int k;

        search_analyze(a, langs[i], n->text, strlen(n->text), collect, &q);
        k = occurrences(t, &q);
        free(q.v);
        best = k > best ? k : best;
    }
    *hits += best;
    return best > 0;
}

static int prefix(const struct search_node *n, const struct mtext *t, int *hits)
{
    char folded[SEARCH_TERM_MAX + 1];
    size_t len = search_fold(n->text, strlen(n->text), folded, sizeof(folded));
    int k = 0;

    if (len == 0)
        return 0;
    for (size_t i = 0; i < t->n; i++)
        k += strncmp(t->v[i].term, folded, len) == 0;
    *hits += k;
    return k > 0;
}

static int eval(struct search_analyzer *a, const struct search_node *n, const struct mtext *t,
                int *hits)
{
    int any = 0;

    switch (n->kind) {
    case SEARCH_N_TERM:
    case SEARCH_N_PHRASE:
        return words(a, n, t, hits);
    case SEARCH_N_PREFIX:
        return prefix(n, t, hits);
    case SEARCH_N_FILTER:
        return 1;
    case SEARCH_N_NOT: {
        int ignored = 0;

        return !eval(a, n->kids[0], t, &ignored);
    }
    case SEARCH_N_AND:
        for (size_t i = 0; i < n->nkids; i++)
            if (!eval(a, n->kids[i], t, hits))
                return 0;
        return 1;
    case SEARCH_N_OR:
        for (size_t i = 0; i < n->nkids; i++)
            any |= eval(a, n->kids[i], t, hits);
        return any;
    }
    return 0;
}

int search_match(struct search_analyzer *a, const struct search_node *root, enum search_lang lang,
                 const char *text, size_t len, int *hits)
{
    struct mtext t = {0};
    int rc;

    *hits = 0;
    if (!root)
        return 1;
    search_analyze(a, lang, text, len, collect, &t);
    rc = eval(a, root, &t, hits);
    free(t.v);
    return rc;
}
