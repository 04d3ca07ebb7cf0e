/*
 * catalog_sqlite_searchfn: the SQL functions the search index's triggers call (migration
 * 0005), and acervo_rank, the FTS5 ranking function of the planner. Registered on every
 * catalog connection; each connection has its own analyzer (a connection is used by one
 * thread at a time). See docs/internals/search.md.
 */
#include "catalog/catalog_sqlite_int.h"
#include "search/search.h"

#include <math.h>
#include <string.h>

#define FN_TEXT_MAX (256u << 20) /* a column's terms: far above any real document */

struct searchfn {
    struct search_analyzer *an;
    struct buf b;
    /* the last acervo_lang answer: triggers ask for one row's language several times */
    uint64_t lang_key;
    enum search_lang lang;
    int bulk;
    /* the last editorial and AI JSON parsed: a trigger asks for one row's columns in turn */
    struct json_memo {
        char *text;
        size_t len;
        json_t *j;
    } memo[2];
};

/* the parsed object of JSON text, from the memo when it is the same text */
static json_t *memo_json(struct json_memo *m, sqlite3_value *v)
{
    const char *t = (const char *)sqlite3_value_text(v);
    size_t n = t ? (size_t)sqlite3_value_bytes(v) : 0;

    if (!t)
        return NULL;
    if (m->text && m->len == n && memcmp(m->text, t, n) == 0)
        return m->j;
    json_decref(m->j);
    free(m->text);
    m->text = xstrndup(t, n);
    m->len = n;
    m->j = search_doc_json(m->text);
    return m->j;
}

static void fn_destroy(void *p)
{
    struct searchfn *s = p;

    search_analyzer_free(s->an);
    buf_release(&s->b);
    for (size_t i = 0; i < ARRAY_LEN(s->memo); i++) {
        json_decref(s->memo[i].j);
        free(s->memo[i].text);
    }
    free(s);
}

static const char *arg_text(sqlite3_value *v, size_t *len)
{
    const char *s = (const char *)sqlite3_value_text(v);

    *len = s ? (size_t)sqlite3_value_bytes(v) : 0;
    return s;
}

static enum search_lang arg_lang(sqlite3_value *v)
{
    const char *s = (const char *)sqlite3_value_text(v);

    return s ? search_lang_parse(s) : SEARCH_LANG_NONE;
}

static void result_buf(sqlite3_context *ctx, struct searchfn *s, int rc)
{
    if (rc < 0) {
        sqlite3_result_error(ctx, "search document too large", -1);
        return;
    }
    sqlite3_result_text(ctx, s->b.buf ? s->b.buf : "", (int)s->b.len, SQLITE_TRANSIENT);
}

static struct searchfn *fn_state(sqlite3_context *ctx)
{
    struct searchfn *s = sqlite3_user_data(ctx);

    buf_reset(&s->b);
    return s;
}

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return (h ^ n) * 1099511628211ull;
}

/* acervo_lang(language, title, description): 'es', 'en' or '' (search_doc_lang) */
static void fn_lang(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = sqlite3_user_data(ctx);
    size_t ln, tn, dn;
    const char *l = arg_text(argv[0], &ln), *t = arg_text(argv[1], &tn),
               *d = arg_text(argv[2], &dn);
    uint64_t key = 14695981039346656037ull;

    (void)argc;
    key = fnv(fnv(fnv(key, l ? l : "\1", l ? ln : 1), t ? t : "\1", t ? tn : 1), d ? d : "\1",
              d ? dn : 1);
    if (key != s->lang_key) {
        s->lang = search_doc_lang(s->an, l, t, d);
        s->lang_key = key;
    }
    sqlite3_result_text(ctx, s->lang == SEARCH_LANG_NONE ? "" : search_lang_code(s->lang), -1,
                        SQLITE_STATIC);
}

/* acervo_terms(lang, text) */
static void fn_terms(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = fn_state(ctx);
    size_t n;
    const char *t = arg_text(argv[1], &n);

    (void)argc;
    result_buf(ctx, s, search_doc_terms(s->an, arg_lang(argv[0]), t, n, &s->b));
}

/* acervo_fold(text): the folded words of a name, space-separated */
static void fn_fold(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = fn_state(ctx);
    size_t n;
    const char *t = arg_text(argv[0], &n);

    (void)argc;
    result_buf(ctx, s, search_doc_terms(s->an, SEARCH_LANG_NONE, t, n, &s->b));
}

/* acervo_names(editorial, ai) */
static void fn_names(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = fn_state(ctx);

    (void)argc;
    result_buf(ctx, s,
               search_doc_names(s->an, memo_json(&s->memo[0], argv[0]),
                                memo_json(&s->memo[1], argv[1]), &s->b));
}

/* acervo_body(lang, description, filename, editorial) */
static void fn_body(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = fn_state(ctx);

    (void)argc;
    result_buf(ctx, s,
               search_doc_body(s->an, arg_lang(argv[0]), (const char *)sqlite3_value_text(argv[1]),
                               (const char *)sqlite3_value_text(argv[2]),
                               memo_json(&s->memo[0], argv[3]), &s->b));
}

/* acervo_ai(lang, ai, transcript) */
static void fn_ai(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = fn_state(ctx);

    (void)argc;
    result_buf(ctx, s,
               search_doc_ai(s->an, arg_lang(argv[0]), memo_json(&s->memo[1], argv[1]),
                             (const char *)sqlite3_value_text(argv[2]), &s->b));
}

/* acervo_keys(type, status, lang, created_at, editorial, ai, video_codec, audio_codec, width,
 * height) */
static void fn_keys(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = fn_state(ctx);

    (void)argc;
    result_buf(ctx, s,
               search_doc_keys(s->an, (const char *)sqlite3_value_text(argv[0]),
                               (const char *)sqlite3_value_text(argv[1]), arg_lang(argv[2]),
                               sqlite3_value_int64(argv[3]), memo_json(&s->memo[0], argv[4]),
                               memo_json(&s->memo[1], argv[5]),
                               (const char *)sqlite3_value_text(argv[6]),
                               (const char *)sqlite3_value_text(argv[7]),
                               sqlite3_value_int64(argv[8]), sqlite3_value_int64(argv[9]), &s->b));
}

/* acervo_facets(editorial, ai) */
static void fn_facets(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = fn_state(ctx);

    (void)argc;
    result_buf(
        ctx, s,
        search_doc_facets(memo_json(&s->memo[0], argv[0]), memo_json(&s->memo[1], argv[1]), &s->b));
}

static int vocab_put(void *ctx, const char *term, size_t len)
{
    struct buf *b = ctx;
    struct err e = {0};

    if ((b->len > 1 && buf_add(b, ",", 1, &e) < 0) || buf_add(b, "\"", 1, &e) < 0 ||
        buf_add(b, term, len, &e) < 0 || buf_add(b, "\"", 1, &e) < 0)
        return -1;
    return 0;
}

/* acervo_vocab(text, ...): the distinct terms of the texts as a JSON array (for json_each) */
static void fn_vocab(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = fn_state(ctx);
    const char *texts[8];
    size_t n = 0;
    int rc;

    for (int i = 0; i < argc && n < ARRAY_LEN(texts); i++)
        texts[n++] = (const char *)sqlite3_value_text(argv[i]);
    rc = buf_add(&s->b, "[", 1, NULL);
    if (rc == 0)
        rc = search_terms_distinct(texts, n, vocab_put, &s->b);
    if (rc == 0)
        rc = buf_add(&s->b, "]", 1, NULL);
    result_buf(ctx, s, rc);
}

/* acervo_bulk(): whether this connection belongs to a bulk import (cat_sqlite_open_bulk) */
static void fn_bulk(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct searchfn *s = sqlite3_user_data(ctx);

    (void)argc;
    (void)argv;
    sqlite3_result_int(ctx, s->bulk);
}

/* ---- acervo_rank ---------------------------------------------------------------------------- */

/*
 * acervo_rank(table, params): column-weighted BM25 (k1 1.2, b 0.75) of the current row with
 * the rarity of each phrase given by the caller (struct cat_rank_params as a blob), not
 * counted by scanning the phrase's whole document list as FTS5's bm25() does; plus the
 * title tier and the adjacency of consecutive query words. See cat__rank_score.
 */
static void rank_fn(const Fts5ExtensionApi *api, Fts5Context *fts, sqlite3_context *ctx, int nval,
                    sqlite3_value **val)
{
    const struct cat_rank_params *p;
    int ncols = api->xColumnCount(fts), ninst = 0, nphrase = api->xPhraseCount(fts);
    double tf[CAT_RANK_PHRASES][CAT_RANK_COLS];
    unsigned char word_in_title[CAT_RANK_PHRASES] = {0};
    int rc;

    if (nval != 1 || sqlite3_value_bytes(val[0]) != (int)sizeof(*p)) {
        sqlite3_result_error(ctx, "acervo_rank: bad parameters", -1);
        return;
    }
    p = sqlite3_value_blob(val[0]);
    if (ncols > CAT_RANK_COLS || nphrase > CAT_RANK_PHRASES) {
        sqlite3_result_error(ctx, "acervo_rank: too many columns or phrases", -1);
        return;
    }
    memset(tf, 0, sizeof(tf));
    rc = api->xInstCount(fts, &ninst);
    for (int i = 0; rc == SQLITE_OK && i < ninst; i++) {
        int ph, col, off;

        if (api->xInst(fts, i, &ph, &col, &off) != SQLITE_OK)
            break;
        if (ph < nphrase && col < ncols)
            tf[ph][col] += 1;
    }
    {
        double bm = 0;
        int words = 0, titled = 0, adjacent = 0;

        for (int ph = 0; ph < nphrase; ph++) {
            double idf = p->idf[ph];

            if (idf <= 0)
                continue;
            for (int c = 0; c < ncols; c++) {
                int len = 0;
                double w = p->weight[c], norm;

                if (tf[ph][c] == 0 || w == 0)
                    continue;
                api->xColumnSize(fts, c, &len);
                norm = 1.2 * (0.25 + 0.75 * len / (p->avg[c] > 0 ? p->avg[c] : 1));
                bm += idf * w * tf[ph][c] * 2.2 / (tf[ph][c] + norm);
                if (c == 0 && p->word[ph] >= 0 && p->word[ph] < CAT_RANK_PHRASES)
                    word_in_title[p->word[ph]] = 1;
            }
        }
        for (int w = 0; w < p->nwords && w < CAT_RANK_PHRASES; w++) {
            words++;
            titled += word_in_title[w];
        }
        /* consecutive query words side by side somewhere: phrase-like, above scattered */
        if (p->nwords > 1 && ninst < 4096) {
            for (int i = 0; i < ninst && !adjacent; i++) {
                int pa, ca, oa;

                if (api->xInst(fts, i, &pa, &ca, &oa) != SQLITE_OK || p->word[pa] < 0)
                    continue;
                for (int j = 0; j < ninst; j++) {
                    int pb, cb, ob;

                    if (api->xInst(fts, j, &pb, &cb, &ob) != SQLITE_OK)
                        continue;
                    if (cb == ca && ob == oa + 1 && p->word[pb] == p->word[pa] + 1) {
                        adjacent = 1;
                        break;
                    }
                }
            }
        }
        if (adjacent)
            bm *= 1.5;
        if (p->title_tier && words > 0 && titled > 0)
            bm += titled == words ? 2 * CAT_RANK_TIER : CAT_RANK_TIER;
        sqlite3_result_double(ctx, bm);
    }
}

static fts5_api *fts5_of(sqlite3 *db)
{
    fts5_api *api = NULL;
    sqlite3_stmt *st = NULL;

    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &st, NULL) != SQLITE_OK)
        return NULL;
    sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
    sqlite3_step(st);
    sqlite3_finalize(st);
    return api;
}

int cat__searchfn_register(sqlite3 *db, int bulk, struct search_analyzer **an, struct err *err)
{
    static const struct {
        const char *name;
        int nargs;
        void (*fn)(sqlite3_context *, int, sqlite3_value **);
    } fns[] = {
        {"acervo_lang", 3, fn_lang},  {"acervo_terms", 2, fn_terms},
        {"acervo_fold", 1, fn_fold},  {"acervo_names", 2, fn_names},
        {"acervo_body", 4, fn_body},  {"acervo_ai", 3, fn_ai},
        {"acervo_keys", 10, fn_keys}, {"acervo_facets", 2, fn_facets},
        {"acervo_bulk", 0, fn_bulk},  {"acervo_vocab", -1, fn_vocab},
    };
    struct searchfn *s = xcalloc(1, sizeof(*s));
    fts5_api *fts;

    if (search_analyzer_new(&s->an, err) < 0) {
        free(s);
        return -1;
    }
    buf_init(&s->b, FN_TEXT_MAX);
    s->bulk = bulk;
    *an = s->an;
    for (size_t i = 0; i < ARRAY_LEN(fns); i++) {
        /* the first registration owns s: it is freed when the connection closes */
        int rc = sqlite3_create_function_v2(db, fns[i].name, fns[i].nargs,
                                            SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
                                            s, fns[i].fn, NULL, NULL, i == 0 ? fn_destroy : NULL);

        if (rc != SQLITE_OK) {
            if (i == 0)
                fn_destroy(s);
            return err_set(err, ERR_BACKEND, "cannot register %s: %s", fns[i].name,
                           sqlite3_errmsg(db));
        }
    }
    fts = fts5_of(db);
    if (!fts || fts->iVersion < 2)
        return err_set(err, ERR_BACKEND, "this SQLite has no FTS5 (search needs it)");
    if (fts->xCreateFunction(fts, "acervo_rank", NULL, rank_fn, NULL) != SQLITE_OK)
        return err_set(err, ERR_BACKEND, "cannot register acervo_rank: %s", sqlite3_errmsg(db));
    return 0;
}

double cat__rank_recency(int64_t age_ms)
{
    double days = age_ms > 0 ? (double)age_ms / 86400000.0 : 0;

    return 0.3 + 0.7 / (1.0 + days / 365.0);
}

double cat__rank_idf(double docs, double df)
{
    if (df < 0)
        df = 0;
    if (df > docs)
        df = docs;
    return log(1.0 + (docs - df + 0.5) / (df + 0.5));
}
