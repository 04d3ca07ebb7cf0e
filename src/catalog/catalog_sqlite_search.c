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

static int prepare(struct conn *cn, const char *sql, sqlite3_stmt **st, struct err *err)
{
    return cat__prepare(cn, sql, st, err);
}

static int enrich_body(struct conn *cn, void *arg, struct err *err)
{
    struct enrich_args *a = arg;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = prepare(cn,
                 "UPDATE assets SET language = CASE WHEN ?2 IS NULL THEN language "
                 "WHEN ?2 = '' THEN NULL ELSE ?2 END, "
                 "ai_metadata = coalesce(?3, ai_metadata), updated_at = ?4 WHERE id = ?1",
                 &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->id);
    bind_str(cn, st, 2, a->language);
    bind_str(cn, st, 3, a->ai_json);
    bind_i64(cn, st, 4, util_now_ms());
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = sqlite3_changes(cn->db) ? 0 : err_set(err, ERR_NOTFOUND, "asset %s not found", a->id);
    else
        rc = cat__db_fail(cn, rc, err, "set the enrichment");
    sqlite3_finalize(st);
    if (rc < 0 || !a->set_segments)
        return rc;

    rc = prepare(cn, "DELETE FROM transcript_segments WHERE asset_id = ?1", &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->id);
    rc = step(cn, st);
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "remove the transcript");
    sqlite3_finalize(st);
    if (rc < 0 || a->nsegs == 0)
        return rc;

    rc = prepare(cn,
                 "INSERT INTO transcript_segments (asset_id, idx, start_ms, end_ms, speaker, "
                 "confidence, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
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
                 "transcript_segments WHERE asset_id = ?1 AND idx > ?2 ORDER BY idx LIMIT ?3",
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

const struct catalog_search_ops cat__sqlite_search_ops = {
    .enrichment_set = sqlite_enrichment_set,
    .segments_list = sqlite_segments_list,
};
