/*
 * catalog_sqlite_plan: the search planner on the SQLite catalog (docs/internals/search.md).
 * A query tree becomes one FTS5 expression over pre-analysed terms (every word in each
 * language's analysis), run newest-first over a capped candidate set from the asset index
 * and the title index, scored by acervo_rank with cached document frequencies and by
 * recency; totals are exact up to CAT_SEARCH_EXACT_MAX hits and extrapolated beyond, and
 * facets are counted over every hit or over a stratified sample of them.
 */
#include "catalog/catalog_sqlite_int.h"
#include "search/search.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#define CAND_MAX          2000 /* relevance candidates from the asset index */
#define CAND_TITLE        500  /* and from the title index */
#define DF_SAMPLE         1000 /* document frequency: exact below, extrapolated above */
#define TRANSCRIPT_ASSETS 200  /* transcripts a transcript search reads for one page */
#define PREFIX_TERMS      16   /* terms a prefix stands for: its most frequent ones */
#define STRATA            8    /* facet sample: id ranges */
#define STRATUM_TAKE      160  /* hits read per range */
#define FACETS_EXACT_MAX  2500 /* facets counted over every hit up to this many */
#define EXPR_MAX          65536

/* ---- building the FTS5 expression --------------------------------------------------------- */

struct phrase {
    char *text;   /* as in the expression: "a b" */
    int word;     /* query word, -1 for keys */
    int key;      /* a key (filter): not scored */
    char *group;  /* a prefix expansion's first phrase: the whole group (its rarity) */
    int in_group; /* a later phrase of a prefix expansion: the group's rarity */
};

struct xb {
    struct search_analyzer *an;
    sqlite3 *db;    /* the vocabulary (prefix expansion) */
    int transcript; /* the transcript scope: words in the ai column only */
    struct phrase *ph;
    size_t nph;
    int nwords;
    int64_t created_lo, created_hi, dur_lo, dur_hi;
    char **terms, **prefixes;
    size_t nterms, nprefixes;
    struct err *err;
};

static int fail_pos(struct xb *x, const struct search_node *n, const char *fmt, ...)
    ATTR_PRINTF(3, 4);
static int fail_pos(struct xb *x, const struct search_node *n, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return err_set(x->err, ERR_INVALID, "position %zu: %s", n->pos, msg);
}

static void add_str(char ***v, size_t *n, const char *s, size_t len)
{
    for (size_t i = 0; i < *n; i++)
        if (strlen((*v)[i]) == len && memcmp((*v)[i], s, len) == 0)
            return;
    *v = xrealloc(*v, (*n + 1) * sizeof(**v));
    (*v)[(*n)++] = xstrndup(s, len);
}

static int phrase_add(struct xb *x, struct buf *out, const char *text, int word, int key)
{
    if (x->nph >= CAT_RANK_PHRASES)
        return err_set(x->err, ERR_INVALID, "the query has too many terms once analysed");
    x->ph = xrealloc(x->ph, (x->nph + 1) * sizeof(*x->ph));
    x->ph[x->nph].text = xstrdup(text);
    x->ph[x->nph].word = word;
    x->ph[x->nph].key = key;
    x->ph[x->nph].group = NULL;
    x->ph[x->nph].in_group = 0;
    x->nph++;
    /* the transcript scope looks for words in the transcript (the ai column) only */
    if (x->transcript && !key && buf_adds(out, "ai : ", x->err) < 0)
        return -1;
    return buf_adds(out, text, x->err);
}

/* a variant: the terms of one analysis, as an FTS5 string */
struct variant {
    struct buf b;
    struct xb *x;
};

static int variant_term(void *ctx, const struct search_token *t)
{
    struct variant *v = ctx;

    add_str(&v->x->terms, &v->x->nterms, t->term, t->len);
    if (v->b.len > 1 && buf_add(&v->b, " ", 1, NULL) < 0)
        return 1;
    return buf_add(&v->b, t->term, t->len, NULL) < 0;
}

/* a word or phrase: its analysis in each language, distinct ones ORed */
static int build_words(struct xb *x, const struct search_node *n, struct buf *out)
{
    static const enum search_lang langs[] = {SEARCH_LANG_ES, SEARCH_LANG_EN, SEARCH_LANG_NONE};
    char *seen[ARRAY_LEN(langs)];
    size_t nseen = 0;
    int word = x->nwords, rc = 0;

    for (size_t i = 0; i < ARRAY_LEN(langs); i++) {
        struct variant v = {.x = x};
        int dup = 0;

        buf_init(&v.b, 4096);
        buf_add(&v.b, "\"", 1, NULL);
        search_analyze(x->an, langs[i], n->text, strlen(n->text), variant_term, &v);
        buf_add(&v.b, "\"", 1, NULL);
        if (v.b.len <= 2) { /* no letters or digits */
            buf_release(&v.b);
            continue;
        }
        for (size_t j = 0; j < nseen; j++)
            dup |= strcmp(seen[j], v.b.buf) == 0;
        if (dup) {
            buf_release(&v.b);
            continue;
        }
        seen[nseen++] = buf_detach(&v.b, NULL);
    }
    if (nseen == 0)
        return 0;
    x->nwords++;
    if (nseen > 1)
        rc = buf_add(out, "(", 1, x->err);
    for (size_t j = 0; j < nseen && rc == 0; j++) {
        if (j)
            rc = buf_adds(out, " OR ", x->err);
        if (rc == 0)
            rc = phrase_add(x, out, seen[j], word, 0);
    }
    if (rc == 0 && nseen > 1)
        rc = buf_add(out, ")", 1, x->err);
    for (size_t j = 0; j < nseen; j++)
        free(seen[j]);
    return rc < 0 ? -1 : 1;
}

/*
 * A prefix: the PREFIX_TERMS most frequent terms of the vocabulary that start with it (as
 * folded), ORed. A prefix of nothing known stays, matching nothing.
 */
static int build_prefix(struct xb *x, const struct search_node *n, struct buf *out)
{
    char folded[SEARCH_TERM_MAX + 1], upper[SEARCH_TERM_MAX + 1], text[SEARCH_TERM_MAX + 8];
    size_t len = search_fold(n->text, strlen(n->text), folded, sizeof(folded));
    sqlite3_stmt *st = NULL;
    int word = x->nwords, k = 0, rc;
    size_t first = x->nph, open;

    if (len < 2)
        return fail_pos(x, n, "a prefix needs at least 2 letters or digits, not '%s'", n->text);
    add_str(&x->prefixes, &x->nprefixes, folded, len);
    memcpy(upper, folded, len + 1);
    upper[len - 1]++; /* UTF-8 never ends in 0xff */
    rc = sqlite3_prepare_v2(x->db,
                            "SELECT term, n FROM search_terms WHERE term >= ?1 AND term < ?2 "
                            "ORDER BY n DESC LIMIT ?3",
                            -1, &st, NULL);
    if (rc != SQLITE_OK)
        return err_set(x->err, ERR_BACKEND, "cannot expand a prefix: %s", sqlite3_errmsg(x->db));
    sqlite3_bind_text(st, 1, folded, (int)len, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, upper, (int)len, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, PREFIX_TERMS);
    x->nwords++;
    rc = buf_add(out, "(", 1, x->err);
    open = out->len;
    while (rc == 0 && sqlite3_step(st) == SQLITE_ROW && x->nph + 8 < CAT_RANK_PHRASES) {
        (void)snprintf(text, sizeof(text), "\"%s\"", (const char *)sqlite3_column_text(st, 0));
        if (k++)
            rc = buf_adds(out, " OR ", x->err);
        if (rc == 0)
            rc = phrase_add(x, out, text, word, 0);
        if (rc == 0 && k > 1)
            x->ph[x->nph - 1].in_group = 1;
    }
    sqlite3_finalize(st);
    if (rc == 0 && k == 0) {
        (void)snprintf(text, sizeof(text), "\"%s\"", folded);
        rc = phrase_add(x, out, text, word, 0);
    }
    if (rc == 0)
        rc = buf_add(out, ")", 1, x->err);
    if (rc == 0 && x->nph > first) /* the group's own expression: its rarity */
        x->ph[first].group = xstrndup(out->buf + open - 1, out->len - open + 1);
    return rc < 0 ? -1 : 1;
}

static int build_key(struct xb *x, const struct search_node *n, struct buf *out)
{
    struct buf k;
    int rc;

    buf_init(&k, 1024);
    buf_add(&k, "\"", 1, NULL);
    rc = search_key(x->an, search_field_name(n->field), n->text, strlen(n->text), &k);
    if (rc == 0)
        rc = buf_add(&k, "\"", 1, x->err);
    if (rc == 0)
        rc = phrase_add(x, out, k.buf, -1, 1);
    buf_release(&k);
    return rc < 0 ? -1 : 1;
}

static int build(struct xb *x, const struct search_node *n, struct buf *out, int top);

/* a range filter: only where it narrows the whole query */
static int build_range(struct xb *x, const struct search_node *n, int top)
{
    if (top != 1)
        return fail_pos(x, n,
                        "%s: narrows the whole query; it cannot be an alternative (OR) or "
                        "an exclusion",
                        search_field_name(n->field));
    if (n->field == SEARCH_F_CREATED) {
        x->created_lo = n->lo > x->created_lo ? n->lo : x->created_lo;
        x->created_hi = n->hi < x->created_hi ? n->hi : x->created_hi;
    } else {
        x->dur_lo = n->lo > x->dur_lo ? n->lo : x->dur_lo;
        x->dur_hi = n->hi < x->dur_hi ? n->hi : x->dur_hi;
    }
    return 0;
}

static int build_and(struct xb *x, const struct search_node *n, struct buf *out, int top)
{
    struct buf pos, neg;
    int npos = 0, nneg = 0, rc = 0;

    buf_init(&pos, EXPR_MAX);
    buf_init(&neg, EXPR_MAX);
    /* positives first: FTS5 numbers phrases in the order they are written */
    for (int pass = 0; pass < 2 && rc >= 0; pass++) {
        for (size_t i = 0; i < n->nkids && rc >= 0; i++) {
            const struct search_node *k = n->kids[i];
            struct buf one;

            if ((k->kind == SEARCH_N_NOT) != pass)
                continue;
            buf_init(&one, EXPR_MAX);
            /* top: 1 at the top level, 2 for an exclusion there, 0 below */
            rc = build(x, pass ? k->kids[0] : k, &one, top ? 1 + pass : 0);
            if (rc > 0) {
                struct buf *dst = pass ? &neg : &pos;
                int *cnt = pass ? &nneg : &npos;

                rc = buf_addf(dst, x->err, "%s(%s)", *cnt ? (pass ? " NOT " : " AND ") : "",
                              one.buf);
                (*cnt)++;
            }
            buf_release(&one);
        }
    }
    if (rc >= 0 && nneg && !npos)
        rc = fail_pos(x, n,
                      "an exclusion needs a word or filter to exclude from (as in "
                      "'elecciones -municipales')");
    if (rc >= 0 && npos) {
        rc = buf_addf(out, x->err, "(%s)", pos.buf);
        if (rc >= 0 && nneg)
            rc = buf_addf(out, x->err, " NOT %s", neg.buf);
        rc = rc < 0 ? -1 : 1;
    }
    buf_release(&pos);
    buf_release(&neg);
    return rc;
}

static int build_or(struct xb *x, const struct search_node *n, struct buf *out)
{
    int nk = 0, rc = 0;

    for (size_t i = 0; i < n->nkids && rc >= 0; i++) {
        struct buf one;

        if (n->kids[i]->kind == SEARCH_N_NOT)
            return fail_pos(x, n->kids[i], "an exclusion cannot be an alternative (OR)");
        buf_init(&one, EXPR_MAX);
        rc = build(x, n->kids[i], &one, 0);
        if (rc > 0) {
            rc = buf_addf(out, x->err, "%s(%s)", nk ? " OR " : "(", one.buf);
            nk++;
        }
        buf_release(&one);
    }
    if (rc < 0)
        return -1;
    if (nk && buf_add(out, ")", 1, x->err) < 0)
        return -1;
    return nk ? 1 : 0;
}

/* 1: out holds an expression; 0: nothing to match (ranges only); -1: error */
static int build(struct xb *x, const struct search_node *n, struct buf *out, int top)
{
    switch (n->kind) {
    case SEARCH_N_TERM:
    case SEARCH_N_PHRASE:
        return build_words(x, n, out);
    case SEARCH_N_PREFIX:
        return build_prefix(x, n, out);
    case SEARCH_N_FILTER:
        if (n->field == SEARCH_F_CREATED || n->field == SEARCH_F_DURATION)
            return build_range(x, n, top);
        if (x->transcript && !top)
            return fail_pos(x, n,
                            "in the transcript scope, %s: narrows the whole query; it cannot be "
                            "an alternative (OR)",
                            search_field_name(n->field));
        return build_key(x, n, out);
    case SEARCH_N_AND:
        return build_and(x, n, out, top);
    case SEARCH_N_OR:
        return build_or(x, n, out);
    case SEARCH_N_NOT:
        return fail_pos(x, n,
                        "an exclusion needs a word or filter to exclude from (as in "
                        "'elecciones -municipales')");
    }
    return err_set(x->err, ERR_INTERNAL, "unknown query node");
}

static void xb_release(struct xb *x)
{
    for (size_t i = 0; i < x->nph; i++) {
        free(x->ph[i].text);
        free(x->ph[i].group);
    }
    free(x->ph);
    for (size_t i = 0; i < x->nterms; i++)
        free(x->terms[i]);
    free(x->terms);
    for (size_t i = 0; i < x->nprefixes; i++)
        free(x->prefixes[i]);
    free(x->prefixes);
}

/* ---- document frequencies (cached per process) --------------------------------------------- */

#define DF_SLOTS 16384

static struct df_slot {
    uint64_t key;
    int64_t df;
} df_cache[DF_SLOTS];
static pthread_mutex_t df_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * The number of documents up to ceil (the newest a search sees) a phrase or group is in:
 * counted up to DF_SAMPLE newest, then extrapolated from the id span they cover. A
 * function of (phrase, ceil) only, so every page of one search scores alike; cached so.
 */
static int phrase_df(struct conn *cn, const char *phrase, int64_t ceil, int64_t *df,
                     struct err *err)
{
    uint64_t key = 14695981039346656037ull;
    struct df_slot *slot;
    sqlite3_stmt *st = NULL;
    int64_t n = 0, last = 0;
    int rc;

    for (const char *c = phrase; *c; c++)
        key = (key ^ (unsigned char)*c) * 1099511628211ull;
    key = ((key ^ (uint64_t)ceil) * 1099511628211ull) | 1;
    slot = &df_cache[key % DF_SLOTS];
    pthread_mutex_lock(&df_lock);
    if (slot->key == key) {
        *df = slot->df;
        pthread_mutex_unlock(&df_lock);
        return 0;
    }
    pthread_mutex_unlock(&df_lock);
    rc = cat__prepare(cn,
                      "SELECT rowid FROM search_doc WHERE search_doc MATCH ?1 AND rowid <= ?2 "
                      "ORDER BY rowid DESC LIMIT ?3",
                      &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, phrase);
    bind_i64(cn, st, 2, ceil);
    bind_i64(cn, st, 3, DF_SAMPLE);
    while ((rc = step(cn, st)) == SQLITE_ROW) {
        last = sqlite3_column_int64(st, 0);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return cat__db_fail(cn, rc, err, "count a search term");
    if (n >= DF_SAMPLE && last > 0 && ceil >= last)
        n = (int64_t)((double)n * (double)ceil / (double)(ceil - last + 1));
    *df = n;
    pthread_mutex_lock(&df_lock);
    slot->key = key;
    slot->df = n;
    pthread_mutex_unlock(&df_lock);
    return 0;
}

/* ---- running ------------------------------------------------------------------------------- */

enum src { SRC_DOC, SRC_TITLE, SRC_META };

struct plan {
    struct conn *cn;
    const struct cat_search *q;
    struct xb x;
    struct buf expr;
    int has_expr;
    int64_t lo, hi; /* seq range */
    int64_t maxseq; /* newest document */
    int64_t ref_ms; /* recency is age before the newest document the search sees */
    struct month {
        int64_t lo, hi, start_ms;
    } * months; /* search_months, by lo */
    size_t nmonths;
    struct cat_rank_params rank[2]; /* search_doc, search_title */
    int viewer;
    struct err *err;
};

/* what a scan selects */
enum sel { SEL_RANK, SEL_IDS, SEL_FACETS };

static int scan_prepare(struct plan *p, enum src src, enum sel sel, int desc, sqlite3_stmt **st)
{
    const char *t = src == SRC_DOC ? "search_doc" : "search_title";
    struct buf b;
    int rc;

    buf_init(&b, 8192);
    if (src == SRC_META)
        buf_addf(&b, NULL,
                 "SELECT m.seq, 0, m.created_at, m.type, m.facets FROM search_meta m "
                 "WHERE m.seq BETWEEN :lo AND :hi");
    else if (sel == SEL_FACETS || p->x.created_lo != INT64_MIN || p->x.created_hi != INT64_MAX ||
             p->x.dur_lo != INT64_MIN || p->x.dur_hi != INT64_MAX)
        buf_addf(&b, NULL,
                 "SELECT d.rowid, %s, m.created_at, m.type, m.facets FROM %s d "
                 "JOIN search_meta m ON m.seq = d.rowid "
                 "WHERE %s MATCH :q AND d.rowid BETWEEN :lo AND :hi",
                 sel == SEL_RANK ? (src == SRC_DOC ? "acervo_rank(search_doc, :rank)"
                                                   : "acervo_rank(search_title, :rank)")
                                 : "0",
                 t, t);
    else /* the age of a candidate comes from its seq (search_months): no row to read */
        buf_addf(&b, NULL,
                 "SELECT d.rowid, %s, NULL, NULL, NULL FROM %s d "
                 "WHERE %s MATCH :q AND d.rowid BETWEEN :lo AND :hi",
                 sel == SEL_RANK ? (src == SRC_DOC ? "acervo_rank(search_doc, :rank)"
                                                   : "acervo_rank(search_title, :rank)")
                                 : "0",
                 t, t);
    /* seq follows created_at but need not (an import of old material): check it */
    if (p->x.created_lo != INT64_MIN || p->x.created_hi != INT64_MAX)
        buf_addf(&b, NULL, " AND m.created_at BETWEEN :clo AND :chi");
    if (p->x.dur_lo != INT64_MIN || p->x.dur_hi != INT64_MAX)
        buf_addf(&b, NULL, " AND m.duration_ms BETWEEN :dlo AND :dhi");
    if (p->viewer && src == SRC_META)
        buf_addf(&b, NULL, " AND m.status IN ('ready', 'archived')");
    buf_addf(&b, NULL, " ORDER BY %s %s LIMIT :lim", src == SRC_META ? "m.seq" : "d.rowid",
             desc ? "DESC" : "ASC");
    rc = cat__prepare(p->cn, b.buf, st, p->err);
    buf_release(&b);
    return rc;
}

static void bind_named_i64(struct conn *cn, sqlite3_stmt *st, const char *name, int64_t v)
{
    int i = sqlite3_bind_parameter_index(st, name);

    if (i)
        bind_i64(cn, st, i, v);
}

static void scan_bind(struct plan *p, sqlite3_stmt *st, enum src src, int64_t lo, int64_t hi,
                      int64_t limit)
{
    int i;

    stmt_ready(p->cn, st);
    if ((i = sqlite3_bind_parameter_index(st, ":q")))
        bind_str(p->cn, st, i, p->expr.buf);
    if ((i = sqlite3_bind_parameter_index(st, ":rank")))
        bind_rc(p->cn, sqlite3_bind_blob(st, i, &p->rank[src == SRC_TITLE], sizeof(p->rank[0]),
                                         SQLITE_STATIC));
    bind_named_i64(p->cn, st, ":lo", lo);
    bind_named_i64(p->cn, st, ":hi", hi);
    bind_named_i64(p->cn, st, ":clo", p->x.created_lo);
    bind_named_i64(p->cn, st, ":chi", p->x.created_hi);
    bind_named_i64(p->cn, st, ":dlo", p->x.dur_lo);
    bind_named_i64(p->cn, st, ":dhi", p->x.dur_hi);
    bind_named_i64(p->cn, st, ":lim", limit);
}

/* ---- candidates ---- */

struct cand {
    int64_t id; /* seq */
    double score;
    int64_t created_at;
};

struct cands {
    struct cand *v;
    size_t n, alloc;
    int64_t last; /* the last id read (the oldest, reading newest-first) */
    int exhausted;
};

static void cands_push(struct cands *c, int64_t id, double score, int64_t created)
{
    if (c->n == c->alloc) {
        c->alloc = c->alloc ? c->alloc * 2 : 256;
        c->v = xrealloc(c->v, c->alloc * sizeof(*c->v));
    }
    c->v[c->n].id = id;
    c->v[c->n].score = score;
    c->v[c->n].created_at = created;
    c->n++;
}

static int read_cands(struct plan *p, enum src src, enum sel sel, int64_t lo, int64_t hi,
                      int64_t limit, int desc, struct cands *out)
{
    sqlite3_stmt *st = NULL;
    int rc = scan_prepare(p, src, sel, desc, &st);
    int64_t n = 0;

    if (rc < 0)
        return rc;
    scan_bind(p, st, src, lo, hi, limit);
    while ((rc = step(p->cn, st)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(st, 0);

        cands_push(out, id, sqlite3_column_double(st, 1), sqlite3_column_int64(st, 2));
        out->last = id;
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return cat__db_fail(p->cn, rc, p->err, "search");
    out->exhausted = n < limit;
    return 0;
}

/* ---- totals ---- */

/*
 * The total, given the first candidates read newest-first: exact when they, or a count
 * going on below them up to CAT_SEARCH_EXACT_MAX, end the hits; otherwise the count times
 * the id span over the span it covered (marked an estimate).
 */
static int total_of(struct plan *p, enum src src, const struct cands *c, int64_t *total, int *exact)
{
    int64_t counted = (int64_t)c->n, last = c->last;

    *exact = 1;
    if (c->exhausted) {
        *total = counted;
        return 0;
    }
    if (counted < CAT_SEARCH_EXACT_MAX) {
        struct cands more = {0};
        int64_t want = CAT_SEARCH_EXACT_MAX - counted + 1;

        if (read_cands(p, src, SEL_IDS, p->lo, last - 1, want, 1, &more) < 0)
            return -1;
        free(more.v);
        counted += (int64_t)more.n;
        if (more.exhausted) {
            *total = counted;
            return 0;
        }
        last = more.last;
    }
    *exact = 0;
    {
        double span = (double)(p->hi - p->lo + 1), covered = (double)(p->hi - last + 1);

        *total = covered > 0 ? (int64_t)llround((double)counted * span / covered) : counted;
    }
    return 0;
}

/* ---- facets ---- */

struct fslot {
    char *value;
    size_t len;
    uint64_t hash;
    double count;
};

struct fmap {
    struct fslot *v;
    size_t n, alloc;
};

static void fmap_add(struct fmap *m, const char *value, size_t len, double w)
{
    uint64_t h = 14695981039346656037ull;

    if (len == 0)
        return;
    if ((m->n + 1) * 2 > m->alloc) { /* linear probing, at most half full */
        size_t cap = m->alloc ? m->alloc * 2 : 64;
        struct fslot *v = xcalloc(cap, sizeof(*v));

        for (size_t i = 0; i < m->alloc; i++)
            if (m->v[i].value) {
                size_t j = m->v[i].hash & (cap - 1);

                while (v[j].value)
                    j = (j + 1) & (cap - 1);
                v[j] = m->v[i];
            }
        free(m->v);
        m->v = v;
        m->alloc = cap;
    }
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)value[i]) * 1099511628211ull;
    for (size_t i = h & (m->alloc - 1);; i = (i + 1) & (m->alloc - 1)) {
        struct fslot *sl = &m->v[i];

        if (!sl->value) {
            *sl = (struct fslot){xstrndup(value, len), len, h, w};
            m->n++;
            return;
        }
        if (sl->hash == h && sl->len == len && memcmp(sl->value, value, len) == 0) {
            sl->count += w;
            return;
        }
    }
}

static void fmap_release(struct fmap *m)
{
    for (size_t i = 0; i < m->alloc; i++)
        free(m->v[i].value);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

static int fslot_cmp(const void *a, const void *b)
{
    const struct fslot *x = a, *y = b;

    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->value, y->value);
}

static int fslot_cmp_value(const void *a, const void *b)
{
    const struct fslot *x = a, *y = b;

    return strcmp(x->value, y->value);
}

struct facets {
    struct fmap m[CAT_FACET_COUNT];
    unsigned want;
    int64_t day; /* the day of ym, +1: rows of a day share it */
    char ym[32]; /* "YYYY-MM" */
};

static void facets_add_row(struct facets *f, const char *type, int64_t created, const char *fac,
                           double w)
{
    static const struct {
        const char *field;
        enum cat_facet facet;
    } map[] = {
        {"category", CAT_FACET_CATEGORY}, {"program", CAT_FACET_PROGRAM}, {"tag", CAT_FACET_TAG},
        {"entity", CAT_FACET_ENTITY},     {"object", CAT_FACET_OBJECT},
    };
    int64_t day = created / 86400000 + 1;

    if (f->want & (1u << CAT_FACET_TYPE) && type)
        fmap_add(&f->m[CAT_FACET_TYPE], type, strlen(type), w);
    if (f->want & (3u << CAT_FACET_YEAR)) {
        if (day != f->day) {
            time_t t = (time_t)(created / 1000);
            struct tm tm;

            gmtime_r(&t, &tm);
            (void)snprintf(f->ym, sizeof(f->ym), "%04d-%02d", (tm.tm_year + 1900) % 10000,
                           (tm.tm_mon + 1) % 100);
            f->day = day;
        }
        if (f->want & (1u << CAT_FACET_YEAR))
            fmap_add(&f->m[CAT_FACET_YEAR], f->ym, 4, w);
        if (f->want & (1u << CAT_FACET_MONTH))
            fmap_add(&f->m[CAT_FACET_MONTH], f->ym, 7, w);
    }
    for (const char *line = fac; line && *line;) {
        const char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');

        if (!tab || !nl || tab > nl)
            break;
        for (size_t i = 0; i < ARRAY_LEN(map); i++)
            if ((size_t)(tab - line) == strlen(map[i].field) &&
                memcmp(line, map[i].field, (size_t)(tab - line)) == 0 &&
                (f->want & (1u << map[i].facet)))
                fmap_add(&f->m[map[i].facet], tab + 1, (size_t)(nl - tab - 1), w);
        line = nl + 1;
    }
}

/*
 * Reads the hits of [lo, hi], newest first, at most limit (*n of them, the oldest *last);
 * their facet values are kept in rows (reused) until the caller knows their weight.
 */
struct frow {
    int64_t created;
    size_t type, fac; /* offsets into the buffer */
};

struct fbatch {
    struct buf b;
    struct frow *v;
    size_t n, alloc;
};

static int facets_scan(struct plan *p, sqlite3_stmt *st, enum src src, struct fbatch *rows,
                       int64_t lo, int64_t hi, int64_t limit, int64_t *n, int64_t *last)
{
    int rc;

    scan_bind(p, st, src, lo, hi, limit);
    *n = 0;
    rows->n = 0;
    buf_reset(&rows->b);
    while ((rc = step(p->cn, st)) == SQLITE_ROW) {
        const char *type = (const char *)sqlite3_column_text(st, 3);
        const char *fac = (const char *)sqlite3_column_text(st, 4);
        struct frow *r;

        if (rows->n == rows->alloc) {
            rows->alloc = rows->alloc ? rows->alloc * 2 : 256;
            rows->v = xrealloc(rows->v, rows->alloc * sizeof(*rows->v));
        }
        r = &rows->v[rows->n++];
        r->created = sqlite3_column_int64(st, 2);
        r->type = rows->b.len;
        if (buf_adds(&rows->b, type ? type : "", p->err) < 0 ||
            buf_add(&rows->b, "", 1, p->err) < 0)
            break;
        r->fac = rows->b.len;
        if (buf_adds(&rows->b, fac ? fac : "", p->err) < 0 || buf_add(&rows->b, "", 1, p->err) < 0)
            break;
        *last = sqlite3_column_int64(st, 0);
        (*n)++;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return -1; /* the buffer is full: p->err says so */
    return rc == SQLITE_DONE ? 0 : cat__db_fail(p->cn, rc, p->err, "count facets");
}

static void facets_add_rows(struct facets *f, const struct fbatch *rows, double w)
{
    for (size_t i = 0; i < rows->n; i++)
        facets_add_row(f, rows->b.buf + rows->v[i].type, rows->v[i].created,
                       rows->b.buf + rows->v[i].fac, w);
}

/* counts the facets of the given hits (every hit of the search, read already) */
static int facets_of(struct plan *p, struct facets *f, const struct cands *c)
{
    sqlite3_stmt *st = NULL;
    int rc = cat__prepare(p->cn, "SELECT type, created_at, facets FROM search_meta WHERE seq = ?1",
                          &st, p->err);

    for (size_t i = 0; rc == 0 && i < c->n; i++) {
        stmt_ready(p->cn, st);
        bind_i64(p->cn, st, 1, c->v[i].id);
        rc = step(p->cn, st);
        if (rc == SQLITE_ROW) {
            facets_add_row(f, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1),
                           (const char *)sqlite3_column_text(st, 2), 1.0);
            rc = 0;
        } else if (rc == SQLITE_DONE) {
            rc = 0; /* deleted meanwhile */
        } else {
            rc = cat__db_fail(p->cn, rc, p->err, "count facets");
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/*
 * Facet counts of the whole result: over every hit up to FACETS_EXACT_MAX; otherwise
 * over a stratified sample, the newest STRATUM_TAKE hits of each of STRATA id ranges,
 * each weighted by its range's estimated number of hits.
 */
static int count_facets(struct plan *p, enum src src, const struct cands *c, int exact_total,
                        int64_t total, struct cat_search_result *out)
{
    struct facets f = {.want = p->q->facets};
    struct fbatch rows = {0};
    sqlite3_stmt *st = NULL;
    int64_t n = 0, last = 0;
    int rc = 0;

    buf_init(&rows.b, 64u << 20);
    if (!(c->exhausted && c->n <= FACETS_EXACT_MAX) && scan_prepare(p, src, SEL_FACETS, 1, &st) < 0)
        return -1;
    if (c->exhausted && c->n <= FACETS_EXACT_MAX) {
        rc = facets_of(p, &f, c); /* every hit is among the candidates */
        out->facets_exact = 1;
    } else if (exact_total && total <= FACETS_EXACT_MAX) {
        rc = facets_scan(p, st, src, &rows, p->lo, p->hi, FACETS_EXACT_MAX + 1, &n, &last);
        if (rc == 0)
            facets_add_rows(&f, &rows, 1.0);
        out->facets_exact = 1;
    } else {
        double span = (double)(p->hi - p->lo + 1) / STRATA;

        for (int s = 0; s < STRATA && rc == 0; s++) {
            int64_t lo = p->lo + (int64_t)(span * s);
            int64_t hi = s == STRATA - 1 ? p->hi : p->lo + (int64_t)(span * (s + 1)) - 1;

            if (hi < lo)
                continue;
            rc = facets_scan(p, st, src, &rows, lo, hi, STRATUM_TAKE, &n, &last);
            if (rc == 0 && n > 0) {
                double est = n < STRATUM_TAKE
                                 ? (double)n
                                 : (double)n * (double)(hi - lo + 1) / (double)(hi - last + 1);

                facets_add_rows(&f, &rows, est / (double)n);
            }
        }
        out->facets_exact = 0;
    }
    for (int k = 0; rc == 0 && k < CAT_FACET_COUNT; k++) {
        struct fslot *all;
        size_t m = 0, keep;

        if (!(p->q->facets & (1u << k)))
            continue;
        all = xcalloc(f.m[k].n + 1, sizeof(*all));
        for (size_t i = 0; i < f.m[k].alloc; i++)
            if (f.m[k].v[i].value && f.m[k].v[i].count >= 0.5)
                all[m++] = f.m[k].v[i];
        qsort(all, m, sizeof(*all), fslot_cmp);
        keep = m < (size_t)p->q->facet_size ? m : (size_t)p->q->facet_size;
        /* a histogram reads in time order: the biggest buckets, sorted by date */
        if (k == CAT_FACET_YEAR || k == CAT_FACET_MONTH)
            qsort(all, keep, sizeof(*all), fslot_cmp_value);
        out->facets[k] = xcalloc(keep + 1, sizeof(**out->facets));
        for (size_t i = 0; i < keep; i++) {
            out->facets[k][i].value = xstrdup(all[i].value);
            out->facets[k][i].count = (int64_t)llround(all[i].count);
        }
        out->nfacets[k] = keep;
        free(all);
    }
    for (int k = 0; k < CAT_FACET_COUNT; k++)
        fmap_release(&f.m[k]);
    buf_release(&rows.b);
    free(rows.v);
    sqlite3_finalize(st);
    return rc;
}

/* ---- cursors ---- */

struct cursor {
    char kind; /* 0: none; 'r' relevance, 'n' newest, 'o' oldest, 't' transcript */
    int64_t ceil_seq;
    double score;
    int64_t seq;
    int idx;
};

static int cursor_parse(struct plan *p, struct cursor *c)
{
    const char *s = p->q->cursor;
    unsigned long long bits = 0;
    long long a = 0, b = 0;
    int used = 0, idx = 0;

    memset(c, 0, sizeof(*c));
    if (!s || !*s)
        return 0;
    if (sscanf(s, "r1.%lld.%16llx.%lld%n", &a, &bits, &b, &used) == 3 && s[used] == '\0' && a > 0 &&
        b >= 0) {
        c->kind = 'r';
    } else if (sscanf(s, "t1.%lld.%16llx.%lld.%d%n", &a, &bits, &b, &idx, &used) == 4 &&
               s[used] == '\0' && a > 0 && b >= 0 && idx >= 0) {
        c->kind = 't';
    } else if ((sscanf(s, "n1.%lld%n", &b, &used) == 1 || sscanf(s, "o1.%lld%n", &b, &used) == 1) &&
               s[used] == '\0' && b >= 0) {
        c->kind = s[0];
    } else {
        return err_set(p->err, ERR_INVALID, "cursor '%.64s' is not one this search returned", s);
    }
    c->ceil_seq = a;
    memcpy(&c->score, &bits, sizeof(c->score));
    c->seq = b;
    c->idx = idx;
    return 1;
}

static int cursor_expect(struct plan *p, const struct cursor *c, char kind)
{
    if (c->kind && c->kind != kind)
        return err_set(p->err, ERR_INVALID, "cursor '%.64s' belongs to another search",
                       p->q->cursor);
    return 0;
}

/* ---- the plan ---- */

static int cand_cmp(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;

    if (x->score != y->score)
        return x->score < y->score ? 1 : -1;
    return (x->id < y->id) - (x->id > y->id);
}

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static int64_t month_of(int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms / 1000 < -62135596800LL || ms / 1000 > 253402300799LL)
        return ms < 0 ? 0 : 999912;
    gmtime_r(&t, &tm);
    return (int64_t)(tm.tm_year + 1900) * 100 + tm.tm_mon + 1;
}

static int64_t month_start_ms(int64_t month)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = (int)(month / 100) - 1900;
    tm.tm_mon = (int)(month % 100) - 1;
    tm.tm_mday = 1;
    return (int64_t)timegm(&tm) * 1000;
}

static int month_cmp(const void *a, const void *b)
{
    const struct month *x = a, *y = b;

    return (x->lo > y->lo) - (x->lo < y->lo);
}

/*
 * The newest seq, and the seq range of a created: filter from search_months (whole months:
 * the scans check created_at itself at the edges); the months, for the candidates' ages.
 */
static int seq_bounds(struct plan *p)
{
    sqlite3_stmt *st = NULL;
    int64_t mlo = p->x.created_lo == INT64_MIN ? 0 : month_of(p->x.created_lo);
    int64_t mhi = p->x.created_hi == INT64_MAX ? 999912 : month_of(p->x.created_hi);
    int64_t lo = INT64_MAX, hi = 0;
    size_t cap = 0;
    int rc;

    rc = cat__prepare(p->cn, "SELECT coalesce(max(seq), 0) FROM search_meta", &st, p->err);
    if (rc < 0)
        return rc;
    rc = step(p->cn, st);
    p->maxseq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return cat__db_fail(p->cn, rc, p->err, "bound the search");
    rc = cat__prepare(p->cn, "SELECT month, lo, hi FROM search_months", &st, p->err);
    if (rc < 0)
        return rc;
    while ((rc = step(p->cn, st)) == SQLITE_ROW) {
        struct month m = {sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 2),
                          month_start_ms(sqlite3_column_int64(st, 0))};
        int64_t month = sqlite3_column_int64(st, 0);

        if (p->nmonths == cap) {
            cap = cap ? cap * 2 : 256;
            p->months = xrealloc(p->months, cap * sizeof(*p->months));
        }
        p->months[p->nmonths++] = m;
        if (month >= mlo && month <= mhi) {
            lo = m.lo < lo ? m.lo : lo;
            hi = m.hi > hi ? m.hi : hi;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return cat__db_fail(p->cn, rc, p->err, "bound the search");
    qsort(p->months, p->nmonths, sizeof(*p->months), month_cmp);
    p->lo = 1;
    p->hi = p->maxseq;
    if (p->x.created_lo != INT64_MIN || p->x.created_hi != INT64_MAX) {
        p->lo = lo == INT64_MAX ? p->maxseq + 1 : lo;
        p->hi = hi < p->maxseq ? hi : p->maxseq;
    }
    return 0;
}

/* a candidate's creation time, from the month its seq falls in (or as read) */
static int64_t created_of(const struct plan *p, const struct cand *c)
{
    size_t lo = 0, hi = p->nmonths;

    if (c->created_at)
        return c->created_at;
    while (lo < hi) { /* the last month whose range starts at or before the seq */
        size_t mid = (lo + hi) / 2;

        if (p->months[mid].lo <= c->id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo ? p->months[lo - 1].start_ms + 15LL * 86400000 : p->ref_ms;
}

static int rank_params(struct plan *p)
{
    /* weights and typical lengths (terms) of search_doc's columns (title, names, body, ai,
     * keys) and search_title's (title, keys): fixed, so scores do not drift as documents
     * come, and every page of a search compares alike */
    static const double doc_w[] = {10, 5, 2, 1, 0}, title_w[] = {10, 0}, ai_w[] = {0, 0, 0, 1, 0};
    static const double doc_avg[] = {10, 12, 60, 300, 15}, title_avg[] = {10, 15};
    int transcript = p->q->scope == CAT_SCOPE_TRANSCRIPT;
    const double *w[2] = {transcript ? ai_w : doc_w, title_w}, *avg[2] = {doc_avg, title_avg};
    size_t nw[2] = {ARRAY_LEN(doc_w), ARRAY_LEN(title_w)};
    double docs = (double)(p->hi > 0 ? p->hi : 1), idf = 0;

    for (int r = 0; r < 2; r++) {
        memset(&p->rank[r], 0, sizeof(p->rank[r]));
        for (size_t c = 0; c < nw[r]; c++) {
            p->rank[r].weight[c] = w[r][c];
            p->rank[r].avg[c] = avg[r][c];
        }
        p->rank[r].nwords = p->x.nwords;
        p->rank[r].title_tier = !transcript;
    }
    {
        /* recency counts from the newest document the search sees, not the clock: every
         * page of a search scores alike */
        sqlite3_stmt *st = NULL;
        int rc = cat__prepare(p->cn,
                              "SELECT created_at FROM search_meta WHERE seq <= ?1 "
                              "ORDER BY seq DESC LIMIT 1",
                              &st, p->err);

        if (rc < 0)
            return rc;
        bind_i64(p->cn, st, 1, p->hi);
        rc = step(p->cn, st);
        p->ref_ms = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        sqlite3_finalize(st);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return cat__db_fail(p->cn, rc, p->err, "rank the search");
    }
    for (size_t i = 0; i < p->x.nph; i++) {
        const struct phrase *ph = &p->x.ph[i];
        int64_t df = 0;

        if (ph->key) {
            idf = 0;
        } else if (!ph->in_group) {
            if (phrase_df(p->cn, ph->group ? ph->group : ph->text, p->hi, &df, p->err) < 0)
                return -1;
            idf = cat__rank_idf(docs, (double)df);
            if (idf < 0.01)
                idf = 0.01; /* a word in every document still counts a little */
        } /* a prefix group's later phrases: the group's idf, kept from its first */
        for (int r = 0; r < 2; r++) {
            p->rank[r].idf[i] = idf;
            p->rank[r].word[i] = (int16_t)ph->word;
        }
    }
    return 0;
}

static struct cat_search_hit *hit_push(struct cat_search_result *out, size_t *alloc)
{
    if (out->nhits == *alloc) {
        *alloc = *alloc ? *alloc * 2 : 32;
        out->hits = xrealloc(out->hits, *alloc * sizeof(*out->hits));
    }
    memset(&out->hits[out->nhits], 0, sizeof(*out->hits));
    out->hits[out->nhits].confidence = -1;
    return &out->hits[out->nhits++];
}

/* the asset ids of the page's hits */
static int page_ids(struct plan *p, struct cat_search_result *out)
{
    sqlite3_stmt *st = NULL;
    int rc = cat__prepare(p->cn, "SELECT asset_id FROM search_meta WHERE seq = ?1", &st, p->err);

    for (size_t i = 0; rc == 0 && i < out->nhits; i++) {
        stmt_ready(p->cn, st);
        bind_i64(p->cn, st, 1, out->hits[i].seq);
        rc = step(p->cn, st);
        if (rc == SQLITE_ROW) {
            col_copy(out->hits[i].asset_id, sizeof(out->hits[i].asset_id), st, 0);
            rc = 0;
        } else {
            rc = cat__db_fail(p->cn, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, p->err, "read a hit");
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static void page_from(struct cat_search_result *out, const struct cand *v, size_t n)
{
    size_t alloc = 0;

    for (size_t i = 0; i < n; i++) {
        struct cat_search_hit *h = hit_push(out, &alloc);

        h->seq = v[i].id;
        h->score = v[i].score;
        h->created_at = v[i].created_at;
    }
}

/* newest or oldest first: keyset on seq */
static int run_by_date(struct plan *p, enum src src, struct cat_search_result *out)
{
    struct cands c = {0};
    struct cursor cur;
    int64_t lo = p->lo, hi = p->hi;
    int desc = p->q->sort != CAT_SORT_OLDEST;
    int rc = cursor_parse(p, &cur);
    size_t n;

    if (rc < 0 || cursor_expect(p, &cur, desc ? 'n' : 'o') < 0)
        return -1;
    if (cur.kind && desc)
        hi = hi < cur.seq - 1 ? hi : cur.seq - 1;
    else if (cur.kind)
        lo = lo > cur.seq + 1 ? lo : cur.seq + 1;
    rc = read_cands(p, src, SEL_IDS, lo, hi, p->q->size + 1, desc, &c);
    if (rc == 0) {
        n = c.n > (size_t)p->q->size ? (size_t)p->q->size : c.n;
        if (c.n > n)
            (void)snprintf(out->next_cursor, sizeof(out->next_cursor), "%s.%lld",
                           desc ? "n1" : "o1", (long long)c.v[n - 1].id);
        for (size_t i = 0; i < n; i++)
            c.v[i].score = 0;
        page_from(out, c.v, n);
    }
    free(c.v);
    return rc;
}

/*
 * Relevance: the newest CAND_MAX hits of the asset index and CAND_TITLE of the title index,
 * scored by acervo_rank (the title tier first) times recency. Every page of one search sees
 * the same documents: none newer than the first page's newest (the cursor's ceiling).
 * all/nall: the scored candidates, best first (the transcript scope reads on from them).
 */
static int rank_cands(struct plan *p, struct cands *main_c, struct cand **all, size_t *nall)
{
    struct cands t = {0};
    int64_t *ids;
    size_t total;
    int rc;

    rc = read_cands(p, SRC_DOC, SEL_RANK, p->lo, p->hi, CAND_MAX, 1, main_c);
    if (rc == 0 && p->q->scope == CAT_SCOPE_ASSETS)
        rc = read_cands(p, SRC_TITLE, SEL_RANK, p->lo, p->hi, CAND_TITLE, 1, &t);
    if (rc < 0) {
        free(t.v);
        return rc;
    }
    /* the asset index's candidates, and the title index's not among them */
    *all = xmalloc((main_c->n + t.n + 1) * sizeof(**all));
    if (main_c->n)
        memcpy(*all, main_c->v, main_c->n * sizeof(**all));
    total = main_c->n;
    ids = xmalloc((main_c->n + 1) * sizeof(*ids));
    for (size_t i = 0; i < main_c->n; i++)
        ids[i] = main_c->v[i].id;
    qsort(ids, main_c->n, sizeof(*ids), i64_cmp);
    for (size_t i = 0; i < t.n; i++)
        if (!bsearch(&t.v[i].id, ids, main_c->n, sizeof(*ids), i64_cmp))
            (*all)[total++] = t.v[i];
    free(ids);
    free(t.v);
    for (size_t i = 0; i < total; i++) {
        struct cand *c = &(*all)[i];
        double tier = floor(c->score / CAT_RANK_TIER) * CAT_RANK_TIER;

        c->created_at = created_of(p, c);
        c->score = tier + (c->score - tier) * cat__rank_recency(p->ref_ms - c->created_at);
    }
    qsort(*all, total, sizeof(**all), cand_cmp);
    *nall = total;
    return 0;
}

static int run_by_relevance(struct plan *p, struct cat_search_result *out, struct cands *main_c)
{
    struct cand *all = NULL;
    struct cursor cur;
    size_t nall = 0, from = 0, n;
    int rc = cursor_parse(p, &cur);

    if (rc < 0 || cursor_expect(p, &cur, 'r') < 0)
        return -1;
    if (cur.kind && cur.ceil_seq < p->hi)
        p->hi = cur.ceil_seq;
    if (rank_params(p) < 0 || rank_cands(p, main_c, &all, &nall) < 0)
        return -1;
    if (cur.kind) /* past the cursor: (score, seq) below the last hit's */
        while (from < nall && (all[from].score > cur.score ||
                               (all[from].score == cur.score && all[from].id >= cur.seq)))
            from++;
    n = nall - from < (size_t)p->q->size ? nall - from : (size_t)p->q->size;
    if (nall - from > n) {
        uint64_t bits;

        memcpy(&bits, &all[from + n - 1].score, sizeof(bits));
        (void)snprintf(out->next_cursor, sizeof(out->next_cursor), "r1.%lld.%016llx.%lld",
                       (long long)p->hi, (unsigned long long)bits, (long long)all[from + n - 1].id);
    }
    page_from(out, all + from, n);
    free(all);
    return 0;
}

/* ---- the transcript scope ---- */

/*
 * The segments of one asset that match the query, in time order, from the cursor's
 * position on; appends hits (at most room). Returns how many matched in all (for the
 * estimate of the total), or -1.
 */
static int segments_of(struct plan *p, const struct cand *c, int after_idx, size_t room,
                       struct cat_search_result *out, size_t *alloc, int *more)
{
    sqlite3_stmt *st = NULL;
    enum search_lang lang = SEARCH_LANG_NONE;
    int rc, matched = 0;

    rc = cat__prepare(p->cn,
                      "SELECT s.idx, s.start_ms, s.end_ms, s.speaker, s.confidence, s.text, "
                      "a.id, acervo_lang(a.language, a.title, a.description) "
                      "FROM assets a JOIN transcript_segments s "
                      "ON s.id BETWEEN a.seq * 131072 AND a.seq * 131072 + 131071 "
                      "WHERE a.seq = ?1 ORDER BY s.id",
                      &st, p->err);
    if (rc < 0)
        return rc;
    bind_i64(p->cn, st, 1, c->id);
    while ((rc = step(p->cn, st)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 5);
        int idx = sqlite3_column_int(st, 0), hits = 0;
        double conf = col_double_or(st, 4, -1);

        if (lang == SEARCH_LANG_NONE)
            lang = search_lang_parse((const char *)sqlite3_column_text(st, 7));
        if (p->q->min_confidence >= 0 && conf < p->q->min_confidence)
            continue;
        if (!text || search_match(p->cn->an, p->q->root, lang, text,
                                  (size_t)sqlite3_column_bytes(st, 5), &hits) <= 0)
            continue;
        matched++;
        if (idx <= after_idx)
            continue;
        if (room == 0) {
            *more = 1;
            continue;
        }
        {
            struct cat_search_hit *h = hit_push(out, alloc);

            h->seq = c->id;
            h->score = c->score;
            h->created_at = c->created_at;
            h->idx = idx;
            h->start_ms = sqlite3_column_int64(st, 1);
            h->end_ms = sqlite3_column_int64(st, 2);
            col_copy(h->speaker, sizeof(h->speaker), st, 3);
            h->confidence = conf;
            h->text = xstrdup(text);
            col_copy(h->asset_id, sizeof(h->asset_id), st, 6);
            room--;
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return cat__db_fail(p->cn, rc, p->err, "read a transcript");
    return matched;
}

/*
 * Transcript scope: candidate assets from the ai column (newest first, or scored), then
 * their segments that match the query, read from the transcript itself: a page reads the
 * transcripts of at most TRANSCRIPT_ASSETS assets. The total is the matching assets times
 * the matching segments per asset seen, exact when every candidate was read.
 */
static int run_transcript(struct plan *p, struct cat_search_result *out, int64_t *assets_total,
                          int *assets_exact)
{
    struct cands main_c = {0};
    struct cand *all = NULL;
    struct cursor cur;
    size_t nall = 0, alloc = 0, from = 0, read = 0;
    int64_t segs_seen = 0;
    int rc = cursor_parse(p, &cur), more = 0, ranked = p->q->sort == CAT_SORT_RELEVANCE;
    int desc = p->q->sort != CAT_SORT_OLDEST;

    if (rc < 0 || cursor_expect(p, &cur, 't') < 0)
        return -1;
    if (cur.kind && cur.ceil_seq < p->hi)
        p->hi = cur.ceil_seq;
    if (ranked) {
        rc = rank_params(p);
        if (rc == 0)
            rc = rank_cands(p, &main_c, &all, &nall);
    } else {
        rc = read_cands(p, SRC_DOC, SEL_IDS, p->lo, p->hi, CAND_MAX, desc, &main_c);
        if (rc == 0) {
            all = xmalloc((main_c.n + 1) * sizeof(*all));
            if (main_c.n)
                memcpy(all, main_c.v, main_c.n * sizeof(*all));
            nall = main_c.n;
            for (size_t i = 0; i < nall; i++)
                all[i].score = 0;
        }
    }
    if (rc == 0)
        rc = desc || ranked ? total_of(p, SRC_DOC, &main_c, assets_total, assets_exact) : 0;
    if (rc == 0 && !desc && !ranked) { /* oldest first: count from the oldest end */
        *assets_total = (int64_t)main_c.n;
        *assets_exact = main_c.exhausted;
    }
    free(main_c.v);
    if (rc < 0) {
        free(all);
        return rc;
    }
    /* past the cursor's asset; within it, past its segment */
    if (cur.kind)
        while (from < nall && (ranked ? all[from].score > cur.score ||
                                            (all[from].score == cur.score && all[from].id > cur.seq)
                                      : (desc ? all[from].id > cur.seq : all[from].id < cur.seq)))
            from++;
    for (size_t i = from; i < nall && read < TRANSCRIPT_ASSETS && !more; i++) {
        size_t before = out->nhits;
        int after = cur.kind && all[i].id == cur.seq ? cur.idx : -1;
        int m = segments_of(p, &all[i], after, (size_t)p->q->size - out->nhits, out, &alloc, &more);

        if (m < 0) {
            free(all);
            return -1;
        }
        segs_seen += m;
        read++;
        (void)before;
        if (out->nhits == (size_t)p->q->size && !more && i + 1 < nall)
            more = 1; /* the next assets may hold more: a cursor lets the caller look */
    }
    if (more && out->nhits > 0) {
        const struct cat_search_hit *h = &out->hits[out->nhits - 1];
        uint64_t bits;

        memcpy(&bits, &h->score, sizeof(bits));
        (void)snprintf(out->next_cursor, sizeof(out->next_cursor), "t1.%lld.%016llx.%lld.%d",
                       (long long)p->hi, (unsigned long long)bits, (long long)h->seq, h->idx);
    }
    /* segments: exact when every candidate asset was read; else per-asset rate times assets */
    if (from == 0 && read == nall && *assets_exact) {
        out->total = segs_seen;
        out->total_exact = 1;
    } else {
        out->total =
            read ? (int64_t)llround((double)segs_seen / (double)read * (double)*assets_total)
                 : *assets_total;
        out->total_exact = 0;
    }
    free(all);
    return 0;
}

static double mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct run_args {
    const struct cat_search *q;
    struct cat_search_result *out;
};

static int search_body(struct conn *cn, void *arg, struct err *err)
{
    struct run_args *a = arg;
    const struct cat_search *q = a->q;
    struct cat_search_result *out = a->out;
    struct plan p = {.cn = cn, .q = q, .err = err};
    struct cands c = {0};
    enum src src;
    int64_t total = 0;
    int exact = 1, rc = 0;
    double t0 = mono_ms(), t;

    cat_search_result_release(out); /* a retried body starts again */
    p.viewer = q->role < ROLE_EDITOR;
    p.x.an = cn->an;
    p.x.db = cn->db;
    p.x.err = err;
    p.x.transcript = q->scope == CAT_SCOPE_TRANSCRIPT;
    p.x.created_lo = p.x.dur_lo = INT64_MIN;
    p.x.created_hi = p.x.dur_hi = INT64_MAX;
    buf_init(&p.expr, EXPR_MAX);
    /* viewers see finished material: ready or archived (finer permissions: more keys here) */
    if (p.viewer) {
        rc = buf_adds(&p.expr, "(", err);
        if (rc == 0)
            rc = phrase_add(&p.x, &p.expr, "\"status=ready\"", -1, 1);
        if (rc == 0)
            rc = buf_adds(&p.expr, " OR ", err);
        if (rc == 0)
            rc = phrase_add(&p.x, &p.expr, "\"status=archived\"", -1, 1);
        if (rc == 0)
            rc = buf_adds(&p.expr, ")", err);
    }
    if (rc == 0 && q->root) {
        struct buf e;

        buf_init(&e, EXPR_MAX);
        rc = build(&p.x, q->root, &e, 1);
        if (rc > 0) {
            p.has_expr = 1;
            rc = buf_addf(&p.expr, err, "%s(%s)", p.expr.len ? " AND " : "", e.buf);
        }
        buf_release(&e);
    }
    if (rc < 0)
        goto out;
    if (p.x.transcript && (!p.has_expr || p.x.nwords == 0)) {
        rc = err_set(err, ERR_INVALID, "a transcript search needs words to find");
        goto out;
    }
    if (p.viewer)
        p.has_expr = 1;
    rc = seq_bounds(&p);
    if (rc < 0)
        goto out;
    /* the terms that matched, for highlighting */
    out->terms = p.x.terms;
    out->nterms = p.x.nterms;
    out->prefixes = p.x.prefixes;
    out->nprefixes = p.x.nprefixes;
    p.x.terms = p.x.prefixes = NULL;
    p.x.nterms = p.x.nprefixes = 0;
    if (p.lo > p.hi || p.maxseq == 0) {
        out->total_exact = out->facets_exact = 1;
        goto out;
    }
    src = p.has_expr ? SRC_DOC : SRC_META;
    if (p.x.transcript) {
        t = mono_ms();
        out->ms_plan = t - t0;
        rc = run_transcript(&p, out, &total, &exact);
        out->ms_candidates = mono_ms() - t;
        goto out;
    }
    t = mono_ms();
    out->ms_plan = t - t0;
    if (q->sort == CAT_SORT_RELEVANCE && src == SRC_DOC) {
        rc = run_by_relevance(&p, out, &c);
    } else {
        rc = run_by_date(&p, src, out);
        if (rc == 0)
            rc = read_cands(&p, src, SEL_IDS, p.lo, p.hi, CAT_SEARCH_EXACT_MAX, 1, &c);
    }
    out->ms_candidates = mono_ms() - t;
    t = mono_ms();
    if (rc == 0)
        rc = total_of(&p, src, &c, &out->total, &out->total_exact);
    if (rc == 0)
        rc = page_ids(&p, out);
    out->ms_total = mono_ms() - t;
    t = mono_ms();
    if (rc == 0 && q->facets)
        rc = count_facets(&p, src, &c, out->total_exact, out->total, out);
    out->ms_facets = mono_ms() - t;
out:
    free(c.v);
    free(p.months);
    buf_release(&p.expr);
    xb_release(&p.x);
    return rc < 0 ? rc : 0;
}

int cat__sqlite_search(struct catalog *c, const struct cat_search *q, struct cat_search_result *out,
                       struct err *err)
{
    struct run_args a = {q, out};

    return cat__run((struct cat_sqlite *)c, 0, search_body, &a, err);
}

/* ---- suggestions --------------------------------------------------------------------------- */

struct suggest_args {
    const char *prefix;
    int limit;
    enum cat_role role;
    struct cat_suggestion *rows;
    size_t n;
};

static void suggest_release(struct suggest_args *a)
{
    for (size_t i = 0; i < a->n; i++)
        free(a->rows[i].value);
    free(a->rows);
    a->rows = NULL;
    a->n = 0;
}

/* tags, programs, categories and entities whose folded name starts with the folded prefix */
static int suggest_names(struct conn *cn, struct suggest_args *a, const char *key, int limit,
                         struct err *err)
{
    sqlite3_stmt *st = NULL;
    size_t klen = strlen(key);
    char *upper;
    int rc;

    if (klen == 0 || limit <= 0)
        return 0;
    upper = xstrdup(key);
    upper[klen - 1]++; /* UTF-8 never ends in 0xff: the first key past the prefix */
    rc = cat__prepare(cn,
                      "SELECT kind, value, n FROM search_suggest WHERE key >= ?1 AND key < ?2 "
                      "AND n > 0 ORDER BY n DESC, value LIMIT ?3",
                      &st, err);
    if (rc == 0) {
        bind_str(cn, st, 1, key);
        bind_str(cn, st, 2, upper);
        bind_i64(cn, st, 3, limit);
        while ((rc = step(cn, st)) == SQLITE_ROW) {
            struct cat_suggestion *s = &a->rows[a->n++];

            col_copy(s->kind, sizeof(s->kind), st, 0);
            s->value = col_dup_nn(st, 1);
            s->count = sqlite3_column_int64(st, 2);
        }
        rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "suggest");
        sqlite3_finalize(st);
    }
    free(upper);
    return rc;
}

/* the newest titles with every word typed, the last one as a prefix */
static int suggest_titles(struct conn *cn, struct suggest_args *a, int limit, struct err *err)
{
    struct search_query q = {0};
    size_t pos = 0, len = strlen(a->prefix);
    struct xb x = {.an = cn->an, .db = cn->db, .err = err};
    struct buf expr;
    sqlite3_stmt *st = NULL;
    struct err perr = {0};
    int rc;

    if (limit <= 0 || len == 0 || len > 200 || strpbrk(a->prefix, "\"():*-"))
        return 0;
    {
        /* "banco cen" -> banco cen*: the word being typed is a prefix */
        char *text = xmalloc(len + 2);

        memcpy(text, a->prefix, len);
        text[len] = a->prefix[len - 1] == ' ' ? '\0' : '*';
        text[len + 1] = '\0';
        rc = search_query_parse(text, strlen(text), &q, &pos, &perr);
        free(text);
    }
    if (rc < 0 || !q.root) {
        search_query_release(&q);
        return 0; /* not a query: nothing to complete from titles */
    }
    x.created_lo = x.dur_lo = INT64_MIN;
    x.created_hi = x.dur_hi = INT64_MAX;
    buf_init(&expr, EXPR_MAX);
    if (a->role < ROLE_EDITOR)
        buf_adds(&expr, "(\"status=ready\" OR \"status=archived\") AND ", NULL);
    rc = build(&x, q.root, &expr, 1);
    if (rc <= 0) {
        rc = 0; /* a prefix too short, filters only: no titles */
        goto out;
    }
    rc = cat__prepare(cn,
                      "SELECT a.id, a.title FROM search_title t JOIN assets a ON a.seq = t.rowid "
                      "WHERE search_title MATCH ?1 AND a.title IS NOT NULL "
                      "ORDER BY t.rowid DESC LIMIT ?2",
                      &st, err);
    if (rc < 0)
        goto out;
    bind_str(cn, st, 1, expr.buf);
    bind_i64(cn, st, 2, limit);
    while ((rc = step(cn, st)) == SQLITE_ROW) {
        struct cat_suggestion *s = &a->rows[a->n++];

        (void)snprintf(s->kind, sizeof(s->kind), "title");
        col_copy(s->asset_id, sizeof(s->asset_id), st, 0);
        s->value = col_dup_nn(st, 1);
        s->count = 1;
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "suggest titles");
    sqlite3_finalize(st);
out:
    err_clear(&perr);
    buf_release(&expr);
    xb_release(&x);
    search_query_release(&q);
    return rc;
}

static int suggest_body(struct conn *cn, void *arg, struct err *err)
{
    struct suggest_args *a = arg;
    struct buf key;
    int names, rc;

    suggest_release(a);
    a->rows = xcalloc((size_t)a->limit * 2 + 1, sizeof(*a->rows));
    buf_init(&key, 4096);
    rc = search_doc_terms(cn->an, SEARCH_LANG_NONE, a->prefix, strnlen(a->prefix, 1024), &key);
    /* a trailing space: the last word is complete */
    if (rc == 0 && key.len && a->prefix[0] && a->prefix[strlen(a->prefix) - 1] == ' ')
        rc = buf_add(&key, " ", 1, err);
    names = a->limit - a->limit / 3;
    if (rc == 0)
        rc = suggest_names(cn, a, key.buf ? key.buf : "", names, err);
    if (rc == 0)
        rc = suggest_titles(cn, a, a->limit - (int)a->n, err);
    buf_release(&key);
    return rc;
}

int cat__sqlite_suggest(struct catalog *c, const char *prefix, int limit, enum cat_role role,
                        int (*cb)(void *ctx, const struct cat_suggestion *s), void *ctx,
                        struct err *err)
{
    struct suggest_args a = {prefix, limit, role, NULL, 0};
    int rc = cat__run((struct cat_sqlite *)c, 0, suggest_body, &a, err);

    for (size_t i = 0; rc == 0 && i < a.n; i++)
        if (cb(ctx, &a.rows[i]) != 0)
            break;
    suggest_release(&a);
    return rc;
}
