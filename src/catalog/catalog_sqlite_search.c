/*
 * catalog_sqlite_search: the data search indexes besides an asset's own fields, on the
 * SQLite catalog (migration 0004): the language, the AI enrichment and the transcript
 * segments. Setting them is one write transaction (the asset's row and its whole
 * transcript together); reads are autocommit. See docs/internals/catalog.md.
 */
#include "catalog/catalog_sqlite_int.h"

#include <stdlib.h>
#include <string.h>

struct enrich_args {
    const char *id, *language, *ai_json;
    const struct cat_segment *segs;
    size_t nsegs;
    int set_segments;
};

/* the ids of the segments of the asset whose id is ?1 (a segment's id is seq << 17 | idx) */
#define SEG_RANGE                                                                                  \
    "(SELECT seq FROM assets WHERE id = ?1) * 131072 AND "                                         \
    "(SELECT seq FROM assets WHERE id = ?1) * 131072 + 131071"

static int prepare(struct conn *cn, const char *sql, sqlite3_stmt **st, struct err *err)
{
    return cat__prepare(cn, sql, st, err);
}

static int exec1(struct conn *cn, const char *sql, const char *id, const char *what,
                 struct err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(cn, sql, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, id);
    rc = step(cn, st);
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, what);
    sqlite3_finalize(st);
    return rc;
}

/*
 * Holds the asset's search document out of the index and removes its transcript (the
 * index triggers allow transcript changes only so); the next update with search_hold = 0
 * indexes the document again. An asset without segments is left alone.
 */
int cat__transcript_drop(struct conn *cn, const char *asset_id, int always, struct err *err)
{
    if (exec1(cn,
              always ? "UPDATE assets SET search_hold = 1 WHERE id = ?1"
                     : "UPDATE assets SET search_hold = 1 WHERE id = ?1 AND EXISTS "
                       "(SELECT 1 FROM transcript_segments WHERE id BETWEEN " SEG_RANGE ")",
              asset_id, "hold the search document", err) < 0)
        return -1;
    return exec1(cn, "DELETE FROM transcript_segments WHERE id BETWEEN " SEG_RANGE, asset_id,
                 "remove the transcript", err);
}

static int enrich_segments(struct conn *cn, const struct enrich_args *a, struct err *err)
{
    sqlite3_stmt *st = NULL;
    int rc;

    if (cat__transcript_drop(cn, a->id, 1, err) < 0)
        return -1;
    if (a->nsegs == 0)
        return 0;
    rc = prepare(cn,
                 "INSERT INTO transcript_segments (id, start_ms, end_ms, speaker, confidence, "
                 "text) VALUES ((SELECT seq FROM assets WHERE id = ?1) * 131072 + ?2, ?3, ?4, "
                 "?5, ?6, ?7)",
                 &st, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < a->nsegs && rc == 0; i++) {
        const struct cat_segment *s = &a->segs[i];

        stmt_ready(cn, st);
        bind_str(cn, st, 1, a->id);
        bind_i64(cn, st, 2, s->idx);
        bind_i64(cn, st, 3, s->start_ms);
        bind_i64(cn, st, 4, s->end_ms);
        bind_str(cn, st, 5, s->speaker[0] ? s->speaker : NULL);
        bind_rc(cn, s->confidence < 0 ? sqlite3_bind_null(st, 6)
                                      : sqlite3_bind_double(st, 6, s->confidence));
        bind_str(cn, st, 7, s->text);
        rc = step(cn, st);
        rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "store a transcript segment");
    }
    sqlite3_finalize(st);
    return rc;
}

static int enrich_body(struct conn *cn, void *arg, struct err *err)
{
    struct enrich_args *a = arg;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = prepare(cn, "SELECT 1 FROM assets WHERE id = ?1", &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->id);
    rc = step(cn, st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return err_set(err, ERR_NOTFOUND, "asset %s not found", a->id);
    if (rc != SQLITE_ROW)
        return cat__db_fail(cn, rc, err, "find the asset");
    if (a->set_segments && enrich_segments(cn, a, err) < 0)
        return -1;
    /* the document is indexed again here, with its new language, AI fields and transcript */
    rc = prepare(cn,
                 "UPDATE assets SET language = CASE WHEN ?2 IS NULL THEN language "
                 "WHEN ?2 = '' THEN NULL ELSE ?2 END, "
                 "ai_metadata = coalesce(?3, ai_metadata), updated_at = ?4, search_hold = 0 "
                 "WHERE id = ?1",
                 &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->id);
    bind_str(cn, st, 2, a->language);
    bind_str(cn, st, 3, a->ai_json);
    bind_i64(cn, st, 4, util_now_ms());
    rc = step(cn, st);
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "set the enrichment");
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_enrichment_set(struct catalog *c, const char *asset_id, const char *language,
                                 const char *ai_json, const struct cat_segment *segs, size_t nsegs,
                                 int set_segments, struct err *err)
{
    struct enrich_args a = {asset_id, language, ai_json, segs, nsegs, set_segments};

    return cat__run((struct cat_sqlite *)c, 1, enrich_body, &a, err);
}

struct seg_list {
    const char *asset_id;
    int after, limit;
    struct cat_segment *rows;
    size_t n;
};

static void seg_list_release(struct seg_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->rows[i].text);
    free(l->rows);
    l->rows = NULL;
    l->n = 0;
}

static int seg_list_body(struct conn *cn, void *arg, struct err *err)
{
    struct seg_list *l = arg;
    sqlite3_stmt *st = NULL;
    int rc;

    seg_list_release(l); /* a retried body starts again */
    rc = prepare(cn,
                 "SELECT idx, start_ms, end_ms, speaker, confidence, text FROM "
                 "transcript_segments WHERE id BETWEEN (SELECT seq FROM assets WHERE id = ?1) * "
                 "131072 + ?2 + 1 AND (SELECT seq FROM assets WHERE id = ?1) * 131072 + 131071 "
                 "ORDER BY id LIMIT ?3",
                 &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, l->asset_id);
    bind_i64(cn, st, 2, l->after);
    bind_i64(cn, st, 3, l->limit);
    l->rows = xcalloc((size_t)l->limit, sizeof(*l->rows));
    while ((rc = step(cn, st)) == SQLITE_ROW) {
        struct cat_segment *s = &l->rows[l->n++];

        s->idx = sqlite3_column_int(st, 0);
        s->start_ms = sqlite3_column_int64(st, 1);
        s->end_ms = sqlite3_column_int64(st, 2);
        col_copy(s->speaker, sizeof(s->speaker), st, 3);
        s->confidence = col_double_or(st, 4, -1);
        s->text = col_dup_nn(st, 5);
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "list the transcript");
    sqlite3_finalize(st);
    return rc;
}

static int sqlite_segments_list(struct catalog *c, const char *asset_id, int after_idx, int limit,
                                int (*cb)(void *ctx, const struct cat_segment *s), void *ctx,
                                struct err *err)
{
    struct seg_list l = {asset_id, after_idx, limit, NULL, 0};
    int rc = cat__run((struct cat_sqlite *)c, 0, seg_list_body, &l, err);

    for (size_t i = 0; rc == 0 && i < l.n; i++)
        if (cb(ctx, &l.rows[i]) != 0)
            break;
    seg_list_release(&l);
    return rc;
}

/* ---- bulk import ------------------------------------------------------------------------ */

/*
 * A bulk import writes on a connection where acervo_bulk() is 1, so the insert trigger
 * stays out of the way. The records' index rows, made by cat_import_analyze (the same as
 * the trigger would), are inserted into the FTS5 tables at the end of the batch, one after
 * the other: FTS5 writes its pending terms out as a new segment at every statement
 * savepoint, and each asset insert opens one (its table has triggers), so rows inserted
 * between them would each become a tiny segment. The suggestions, months and vocabulary
 * of the batch are counted once at its end.
 */
enum {
    IS_HAS,
    IS_ASSET,
    IS_SEG,
    IS_META,
    IS_SUGGEST,
    IS_TERM,
    IS_MONTH,
    IS_DOC,
    IS_TITLE,
    IS_COUNT
};

static const char *const import_sql[IS_COUNT] = {
    [IS_HAS] = "SELECT 1 FROM assets WHERE id = ?1",
    [IS_ASSET] = "INSERT INTO assets (id, type, status, title, description, original_filename, "
                 "mime_type, file_size_bytes, editorial_metadata, created_at, updated_at, "
                 "duration_ms, width, height, video_codec, seq, language, ai_metadata) VALUES "
                 "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?11, ?12, ?13, ?14, ?15, ?16, "
                 "?17)",
    [IS_SEG] = "INSERT INTO transcript_segments (id, start_ms, end_ms, speaker, confidence, "
               "text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [IS_DOC] = "INSERT INTO search_doc (rowid, title, names, body, ai, keys) "
               "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [IS_TITLE] = "INSERT INTO search_title (rowid, title, keys) VALUES (?1, ?2, ?3)",
    [IS_MONTH] = "INSERT INTO search_months (month, lo, hi) "
                 "SELECT CAST(strftime('%Y%m', created_at / 1000, 'unixepoch') AS INTEGER), "
                 "min(seq), max(seq) FROM assets WHERE seq BETWEEN ?1 AND ?2 GROUP BY 1 "
                 "ON CONFLICT (month) DO UPDATE SET lo = min(lo, excluded.lo), "
                 "hi = max(hi, excluded.hi)",
    [IS_TERM] = "INSERT INTO search_terms (term, n) VALUES (?1, ?2) "
                "ON CONFLICT (term) DO UPDATE SET n = n + excluded.n",
    [IS_META] = "INSERT INTO search_meta (seq, asset_id, type, status, created_at, duration_ms, "
                "facets) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [IS_SUGGEST] = "INSERT INTO search_suggest (kind, value, key, n) VALUES (?1, ?2, ?3, ?4) "
                   "ON CONFLICT (kind, value) DO UPDATE SET n = n + excluded.n",
};

struct import_args {
    struct cat_import *v;
    size_t n;
    const struct cat_vocab *vocab;
    size_t inserted;
};

static int step_done(struct conn *cn, sqlite3_stmt *st, const char *what, struct err *err)
{
    int rc = step(cn, st);

    return rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, what);
}

static int import_one(struct conn *cn, sqlite3_stmt **st, struct cat_import *r, int64_t seq,
                      int *added, struct err *err)
{
    int rc;

    *added = 0;
    stmt_ready(cn, st[IS_HAS]);
    bind_str(cn, st[IS_HAS], 1, r->id);
    rc = step(cn, st[IS_HAS]);
    if (rc == SQLITE_ROW)
        return 0; /* imported before */
    if (rc != SQLITE_DONE)
        return cat__db_fail(cn, rc, err, "import an asset");
    for (size_t i = 0; i < r->nsegs; i++) {
        const struct cat_segment *s = &r->segs[i];
        sqlite3_stmt *g = st[IS_SEG];

        stmt_ready(cn, g);
        bind_i64(cn, g, 1, (seq << 17) + s->idx);
        bind_i64(cn, g, 2, s->start_ms);
        bind_i64(cn, g, 3, s->end_ms);
        bind_opt(cn, g, 4, s->speaker);
        bind_rc(cn, s->confidence < 0 ? sqlite3_bind_null(g, 5)
                                      : sqlite3_bind_double(g, 5, s->confidence));
        bind_str(cn, g, 6, s->text);
        if (step_done(cn, g, "import a transcript segment", err) < 0)
            return -1;
    }
    {
        sqlite3_stmt *a = st[IS_ASSET];

        stmt_ready(cn, a);
        bind_str(cn, a, 1, r->id);
        bind_str(cn, a, 2, r->type);
        bind_str(cn, a, 3, r->status);
        bind_str(cn, a, 4, r->title);
        bind_str(cn, a, 5, r->description);
        bind_str(cn, a, 6, r->filename);
        bind_str(cn, a, 7, r->mime_type);
        bind_i64(cn, a, 8, r->size);
        bind_str(cn, a, 9, r->editorial);
        bind_i64(cn, a, 10, r->created_at);
        bind_rc(cn, r->duration_ms >= 0 ? sqlite3_bind_int64(a, 11, r->duration_ms)
                                        : sqlite3_bind_null(a, 11));
        bind_rc(cn, r->width > 0 ? sqlite3_bind_int64(a, 12, r->width) : sqlite3_bind_null(a, 12));
        bind_rc(cn,
                r->height > 0 ? sqlite3_bind_int64(a, 13, r->height) : sqlite3_bind_null(a, 13));
        bind_opt(cn, a, 14, r->video_codec);
        bind_i64(cn, a, 15, seq);
        bind_opt(cn, a, 16, r->language);
        bind_str(cn, a, 17, r->ai);
        if (step_done(cn, a, "import an asset", err) < 0)
            return -1;
    }
    stmt_ready(cn, st[IS_META]);
    bind_i64(cn, st[IS_META], 1, seq);
    bind_str(cn, st[IS_META], 2, r->id);
    bind_str(cn, st[IS_META], 3, r->type);
    bind_str(cn, st[IS_META], 4, r->status);
    bind_i64(cn, st[IS_META], 5, r->created_at);
    bind_rc(cn, r->duration_ms >= 0 ? sqlite3_bind_int64(st[IS_META], 6, r->duration_ms)
                                    : sqlite3_bind_null(st[IS_META], 6));
    bind_str(cn, st[IS_META], 7, r->facets);
    if (step_done(cn, st[IS_META], "index an imported asset", err) < 0)
        return -1;
    *added = 1;
    return 0;
}

/* the batch's suggestions: each distinct (kind, value) once, with its count */
struct sugg {
    const char *kind, *value, *key;
    int64_t n;
};

static int sugg_cmp(const void *a, const void *b)
{
    const struct sugg *x = a, *y = b;
    int c = strcmp(x->kind, y->kind);

    return c ? c : strcmp(x->value, y->value);
}

static int import_suggest(struct conn *cn, sqlite3_stmt *st, const struct cat_import *v, size_t n,
                          const unsigned char *added, struct err *err)
{
    size_t total = 0, m = 0;
    struct sugg *all;
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        total += added[i] ? v[i].nnames : 0;
    all = xcalloc(total + 1, sizeof(*all));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; added[i] && j < v[i].nnames; j++)
            all[m++] =
                (struct sugg){v[i].names[3 * j], v[i].names[3 * j + 1], v[i].names[3 * j + 2], 1};
    qsort(all, m, sizeof(*all), sugg_cmp);
    for (size_t i = 0; i < m && rc == 0;) {
        size_t j = i + 1;

        while (j < m && sugg_cmp(&all[i], &all[j]) == 0)
            j++;
        stmt_ready(cn, st);
        bind_str(cn, st, 1, all[i].kind);
        bind_str(cn, st, 2, all[i].value);
        bind_str(cn, st, 3, all[i].key);
        bind_i64(cn, st, 4, (int64_t)(j - i));
        rc = step_done(cn, st, "count the suggestions", err);
        i = j;
    }
    free(all);
    return rc;
}

static int import_body(struct conn *cn, void *arg, struct err *err)
{
    struct import_args *a = arg;
    sqlite3_stmt *st[IS_COUNT] = {0}, *mx = NULL;
    unsigned char *added = xcalloc(a->n + 1, 1);
    int64_t seq = 0;
    int rc;

    a->inserted = 0;
    rc = prepare(cn, "SELECT coalesce(max(seq), 0) FROM assets", &mx, err);
    if (rc == 0) {
        rc = step(cn, mx);
        if (rc == SQLITE_ROW) {
            seq = sqlite3_column_int64(mx, 0);
            rc = 0;
        } else {
            rc = cat__db_fail(cn, rc, err, "number the imported assets");
        }
    }
    sqlite3_finalize(mx);
    for (int i = 0; i < IS_COUNT && rc == 0; i++)
        rc = prepare(cn, import_sql[i], &st[i], err);
    for (size_t i = 0; rc == 0 && i < a->n; i++) {
        int one = 0;

        rc = import_one(cn, st, &a->v[i], seq + 1, &one, err);
        added[i] = (unsigned char)one;
        if (rc == 0 && one) {
            seq++;
            a->inserted++;
        }
    }
    if (rc == 0)
        rc = import_suggest(cn, st[IS_SUGGEST], a->v, a->n, added, err);
    /* the vocabulary of this batch and those before it not counted yet (records imported
     * before count again: n is only a measure) */
    for (size_t i = 0; rc == 0 && i < a->vocab->len; i++) {
        stmt_ready(cn, st[IS_TERM]);
        bind_str(cn, st[IS_TERM], 1, a->vocab->terms[i]);
        bind_i64(cn, st[IS_TERM], 2, a->vocab->n[i]);
        rc = step_done(cn, st[IS_TERM], "count the vocabulary", err);
    }
    if (rc == 0 && a->inserted) {
        stmt_ready(cn, st[IS_MONTH]);
        bind_i64(cn, st[IS_MONTH], 1, seq - (int64_t)a->inserted + 1);
        bind_i64(cn, st[IS_MONTH], 2, seq);
        rc = step_done(cn, st[IS_MONTH], "index the imported months", err);
    }
    /* the FTS5 rows last, one after the other: nothing between them opens a savepoint */
    for (size_t i = 0, k = 0; rc == 0 && i < a->n; i++) {
        const struct cat_import *r = &a->v[i];
        int64_t rs = seq - (int64_t)a->inserted + 1 + (int64_t)k;

        if (!added[i])
            continue;
        k++;
        stmt_ready(cn, st[IS_DOC]);
        bind_i64(cn, st[IS_DOC], 1, rs);
        bind_str(cn, st[IS_DOC], 2, r->t_title);
        bind_str(cn, st[IS_DOC], 3, r->t_names);
        bind_str(cn, st[IS_DOC], 4, r->t_body);
        bind_str(cn, st[IS_DOC], 5, r->t_ai);
        bind_str(cn, st[IS_DOC], 6, r->t_keys);
        rc = step_done(cn, st[IS_DOC], "index an imported asset", err);
        if (rc < 0)
            break;
        stmt_ready(cn, st[IS_TITLE]);
        bind_i64(cn, st[IS_TITLE], 1, rs);
        bind_str(cn, st[IS_TITLE], 2, r->t_title);
        bind_str(cn, st[IS_TITLE], 3, r->t_keys);
        rc = step_done(cn, st[IS_TITLE], "index an imported asset", err);
    }
    for (int i = 0; i < IS_COUNT; i++)
        sqlite3_finalize(st[i]);
    free(added);
    return rc;
}

static int sqlite_import(struct catalog *c, struct cat_import *v, size_t n,
                         const struct cat_vocab *vocab, size_t *inserted, struct err *err)
{
    struct import_args a = {v, n, vocab, 0};
    int rc;

    if (!((struct cat_sqlite *)c)->bulk)
        return err_set(err, ERR_INVALID, "a bulk import needs a catalog opened for it");
    rc = cat__run((struct cat_sqlite *)c, 1, import_body, &a, err);
    *inserted = rc == 0 ? a.inserted : 0;
    return rc;
}

/* ---- acervod sql ------------------------------------------------------------------------ */

struct exec_args {
    const char *sql;
    FILE *out;
};

static int exec_row(void *ctx, int n, char **vals, char **names)
{
    FILE *out = ctx;

    (void)names;
    for (int i = 0; i < n; i++)
        fprintf(out, "%s%s", i ? "\t" : "", vals[i] ? vals[i] : "");
    fputc('\n', out);
    return 0;
}

static int exec_body(struct conn *cn, void *arg, struct err *err)
{
    struct exec_args *a = arg;
    char *msg = NULL;
    int rc = sqlite3_exec(cn->db, a->sql, a->out ? exec_row : NULL, a->out, &msg);

    if (rc == SQLITE_OK)
        return 0;
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED) {
        sqlite3_free(msg);
        return RC_BUSY;
    }
    err_set(err, ERR_INVALID, "%s", msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return -1;
}

/*
 * FTS5 settings (kept in each index's _config table, so they apply to every connection).
 * During a bulk import nothing is merged: each batch's terms become a segment or a few
 * (64 MiB of pending terms), merged once at the end, so a term's list is written twice,
 * not once more per merge level (1M assets: 147 s of writing instead of 202). crisismerge
 * still merges a level of 1,000 segments. The usual ones are migration 0005's and
 * FTS5's defaults: merges of 4 segments as they come.
 */
#define FTS_SET(t, k, v) "INSERT INTO " t " (" t ", rank) VALUES ('" k "', " v ");"
#define FTS_BULK(t)                                                                                \
    FTS_SET(t, "automerge", "0")                                                                   \
    FTS_SET(t, "crisismerge", "1000") FTS_SET(t, "hashsize", "67108864")
#define FTS_USUAL(t)                                                                               \
    FTS_SET(t, "automerge", "4") FTS_SET(t, "crisismerge", "16") FTS_SET(t, "hashsize", "16777216")

int cat_search_bulk_begin(struct catalog *c, struct err *err)
{
    return cat_sqlite_exec(c, FTS_BULK("search_doc") FTS_BULK("search_title"), NULL, err);
}

int cat_search_optimize(struct catalog *c, struct err *err)
{
    return cat_sqlite_exec(c,
                           "INSERT INTO search_doc (search_doc) VALUES ('optimize');"
                           "INSERT INTO search_title (search_title) VALUES ('optimize');" FTS_USUAL(
                               "search_doc") FTS_USUAL("search_title"),
                           NULL, err);
}

static int bulk_left_body(struct conn *cn, void *arg, struct err *err)
{
    sqlite3_stmt *st = NULL;
    int rc = prepare(cn,
                     "SELECT 1 FROM search_doc_config WHERE k = 'automerge' AND v = 0 UNION ALL "
                     "SELECT 1 FROM search_title_config WHERE k = 'automerge' AND v = 0",
                     &st, err);

    if (rc < 0)
        return rc;
    rc = step(cn, st);
    *(int *)arg = rc == SQLITE_ROW;
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE
               ? 0
               : cat__db_fail(cn, rc, err, "read the index settings");
}

/*
 * A bulk import that stopped before its end leaves merging off: the index would then grow
 * a segment per write. Opening the catalog for anything else turns it back on (the merge
 * of what the import wrote happens as later writes come, or with its next run).
 */
int cat__search_settle(struct cat_sqlite *c, struct err *err)
{
    int left = 0;

    if (cat__run(c, 0, bulk_left_body, &left, err) < 0)
        return -1;
    if (!left)
        return 0;
    log_write(LOG_WARN, "catalog",
              "a bulk import stopped before its end: search index merging turned back on");
    return cat_sqlite_exec(&c->base, FTS_USUAL("search_doc") FTS_USUAL("search_title"), NULL, err);
}

int cat_sqlite_exec(struct catalog *c, const char *sql, FILE *out, struct err *err)
{
    struct exec_args a = {sql, out};

    if (strcmp(c->ops->name, "sqlite") != 0)
        return err_set(err, ERR_INVALID, "the catalog is not SQLite");
    return cat__run((struct cat_sqlite *)c, 1, exec_body, &a, err);
}

const struct catalog_search_ops cat__sqlite_search_ops = {
    .enrichment_set = sqlite_enrichment_set,
    .segments_list = sqlite_segments_list,
    .search = cat__sqlite_search,
    .suggest = cat__sqlite_suggest,
    .import = sqlite_import,
};
