/*
 * catalog_sqlite_rend: renditions on the SQLite catalog (migration 0003). A rendition is
 * keyed by (asset_id, profile_name, profile_version, variant); put is one UPSERT that
 * returns the row's id and created_at, the reads are single statements in autocommit
 * mode. Statements are prepared once per connection (rend_sql[], struct conn's rst[]);
 * lists are read completely before their callback runs, so it may call back into the
 * catalog. See docs/internals/catalog.md.
 */
#include "catalog/catalog_sqlite_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- statements ------------------------------------------------------------------------------ */

#define REND_COLS                                                                                  \
    "id, asset_id, profile_name, profile_version, variant, status, storage_bucket, storage_key, "  \
    "mime_type, file_size_bytes, width, height, duration_ms, bitrate_kbps, files, params, "        \
    "workflow_id, error, expires_at, created_at, updated_at"

static const char *const rend_sql[RS_COUNT] = {
    /* every column but the key, id and created_at comes from the caller's row */
    [RS_PUT] = "INSERT INTO renditions (" REND_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
               "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) "
               "ON CONFLICT (asset_id, profile_name, profile_version, variant) DO UPDATE SET "
               "status = excluded.status, storage_bucket = excluded.storage_bucket, "
               "storage_key = excluded.storage_key, mime_type = excluded.mime_type, "
               "file_size_bytes = excluded.file_size_bytes, width = excluded.width, "
               "height = excluded.height, duration_ms = excluded.duration_ms, "
               "bitrate_kbps = excluded.bitrate_kbps, files = excluded.files, "
               "params = excluded.params, workflow_id = excluded.workflow_id, "
               "error = excluded.error, expires_at = excluded.expires_at, "
               "updated_at = excluded.updated_at "
               "RETURNING id, created_at, updated_at",
    [RS_GET] = "SELECT " REND_COLS " FROM renditions WHERE id = ?1",
    [RS_FIND] = "SELECT " REND_COLS " FROM renditions WHERE asset_id = ?1 AND profile_name = ?2 "
                "AND profile_version = ?3 AND variant = ?4",
    /* standard renditions (variant '') by profile and version, then on-demand ones newest
     * first; an asset has few rows, sorted after the unique index's range */
    [RS_LIST] = "SELECT " REND_COLS " FROM renditions WHERE asset_id = ?1 "
                "ORDER BY variant <> '', CASE WHEN variant = '' THEN profile_name END, "
                "CASE WHEN variant = '' THEN profile_version END, created_at DESC, id DESC",
    /* status = 'ready' spelled literally: it is idx_renditions_expires' predicate */
    [RS_EXPIRED] = "SELECT " REND_COLS " FROM renditions WHERE status = 'ready' "
                   "AND expires_at < ?1 ORDER BY expires_at LIMIT ?2",
};

/* The cached statement id, prepared on first use, reset and with bindings cleared. */
static int rstmt(struct conn *cn, enum rend_stmt_id id, sqlite3_stmt **out, struct err *err)
{
    if (!cn->rst[id]) {
        int rc = cat__prepare(cn, rend_sql[id], &cn->rst[id], err);

        if (rc < 0)
            return rc;
    }
    stmt_ready(cn, cn->rst[id]);
    *out = cn->rst[id];
    return 0;
}

/* Binds a size or measure; -1 (unknown) binds NULL. */
static void bind_measure(struct conn *cn, sqlite3_stmt *st, int i, int64_t v)
{
    bind_rc(cn, v < 0 ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v));
}

/* ---- rows ------------------------------------------------------------------------------------ */

/* Fills r (zeroed first: release it before) from a row of REND_COLS. */
static void rend_read(sqlite3_stmt *st, struct cat_rendition *r)
{
    memset(r, 0, sizeof(*r));
    col_copy(r->id, sizeof(r->id), st, 0);
    col_copy(r->asset_id, sizeof(r->asset_id), st, 1);
    col_copy(r->profile_name, sizeof(r->profile_name), st, 2);
    r->profile_version = sqlite3_column_int(st, 3);
    col_copy(r->variant, sizeof(r->variant), st, 4);
    col_copy(r->status, sizeof(r->status), st, 5);
    col_copy(r->bucket, sizeof(r->bucket), st, 6);
    r->storage_key = col_dup(st, 7);
    r->mime_type = col_dup(st, 8);
    r->file_size_bytes = col_i64_or(st, 9, -1);
    r->width = col_i64_or(st, 10, -1);
    r->height = col_i64_or(st, 11, -1);
    r->duration_ms = col_i64_or(st, 12, -1);
    r->bitrate_kbps = col_i64_or(st, 13, -1);
    r->files = col_dup(st, 14);
    r->params = col_dup(st, 15);
    col_copy(r->workflow_id, sizeof(r->workflow_id), st, 16);
    r->error = col_dup(st, 17);
    r->expires_at = col_i64_or(st, 18, 0);
    r->created_at = sqlite3_column_int64(st, 19);
    r->updated_at = sqlite3_column_int64(st, 20);
}

/* Renditions read before their callback runs. */
struct rend_rows {
    struct cat_rendition *v;
    size_t n, alloc;
};

/* Releases the rows, keeping the array for a rerun of the body. */
static void rend_rows_clear(struct rend_rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        cat_rendition_release(&r->v[i]);
    r->n = 0;
}

static void rend_rows_free(struct rend_rows *r)
{
    rend_rows_clear(r);
    free(r->v);
    r->v = NULL;
    r->alloc = 0;
}

/* Steps st to its end, appending each row to r (cleared first). */
static int rend_rows_fill(struct conn *cn, sqlite3_stmt *st, struct rend_rows *r, struct err *err,
                          const char *what)
{
    int rc;

    rend_rows_clear(r);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW)
            break;
        if (r->n == r->alloc) {
            r->alloc = r->alloc ? 2 * r->alloc : 16;
            r->v = xrealloc(r->v, r->alloc * sizeof(*r->v));
        }
        rend_read(st, &r->v[r->n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, what);
    sqlite3_reset(st);
    return rc;
}

/* Hands each row to cb until it returns non-zero; frees the rows. */
static int rend_rows_each(struct rend_rows *r, int (*cb)(void *ctx, const struct cat_rendition *r),
                          void *ctx)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < r->n; i++)
        rc = cb(ctx, &r->v[i]);
    rend_rows_free(r);
    return rc;
}

/* ---- put ------------------------------------------------------------------------------------- */

struct put_args {
    const struct cat_rendition *r;
    char id[37]; /* of the row if it is new */
    int64_t now;
    /* what the row holds after the put */
    char id_out[37];
    int64_t created_at, updated_at;
};

/* Names what a failed put violated. */
static int put_fail(struct conn *cn, int rc, const struct put_args *a, struct err *err)
{
    const struct cat_rendition *r = a->r;
    const char *msg = sqlite3_errmsg(cn->db);

    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return err_set(err, ERR_NOTFOUND, "asset %s not found: cannot record its rendition %s v%d",
                       r->asset_id, r->profile_name, r->profile_version);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
        (rc == SQLITE_CONSTRAINT_UNIQUE && strstr(msg, "renditions.id")))
        return err_set(err, ERR_CONFLICT, "rendition id %s belongs to another rendition", a->id);
    if (rc == SQLITE_CONSTRAINT_CHECK && strstr(msg, "json_valid(files)"))
        return err_set(err, ERR_INVALID, "files of rendition %s v%d are not valid JSON",
                       r->profile_name, r->profile_version);
    if (rc == SQLITE_CONSTRAINT_CHECK && strstr(msg, "json_valid(params)"))
        return err_set(err, ERR_INVALID, "params of rendition %s v%d are not valid JSON",
                       r->profile_name, r->profile_version);
    if (rc == SQLITE_CONSTRAINT_CHECK && strstr(msg, "status"))
        return err_set(err, ERR_INVALID,
                       "rendition status '%s' is not pending, running, ready, failed or expired",
                       r->status);
    return cat__db_fail(cn, rc, err, "record rendition");
}

static int put_body(struct conn *cn, void *arg, struct err *err)
{
    struct put_args *a = arg;
    const struct cat_rendition *r = a->r;
    sqlite3_stmt *st;
    int rc = rstmt(cn, RS_PUT, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->id);
    bind_str(cn, st, 2, r->asset_id);
    bind_str(cn, st, 3, r->profile_name);
    bind_i64(cn, st, 4, r->profile_version);
    bind_str(cn, st, 5, r->variant);
    bind_str(cn, st, 6, r->status);
    bind_opt(cn, st, 7, r->bucket);
    bind_str(cn, st, 8, r->storage_key);
    bind_str(cn, st, 9, r->mime_type);
    bind_measure(cn, st, 10, r->file_size_bytes);
    bind_measure(cn, st, 11, r->width);
    bind_measure(cn, st, 12, r->height);
    bind_measure(cn, st, 13, r->duration_ms);
    bind_measure(cn, st, 14, r->bitrate_kbps);
    bind_str(cn, st, 15, r->files);
    bind_str(cn, st, 16, r->params);
    bind_opt(cn, st, 17, r->workflow_id);
    bind_str(cn, st, 18, r->error);
    bind_i64_nz(cn, st, 19, r->expires_at);
    bind_i64(cn, st, 20, r->created_at ? r->created_at : a->now); /* kept by an update */
    bind_i64(cn, st, 21, a->now);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        col_copy(a->id_out, sizeof(a->id_out), st, 0);
        a->created_at = sqlite3_column_int64(st, 1);
        a->updated_at = sqlite3_column_int64(st, 2);
        rc = 0;
    } else {
        rc = put_fail(cn, rc, a, err);
    }
    sqlite3_reset(st);
    return rc;
}

int cat__sqlite_rendition_put(struct catalog *c, struct cat_rendition *r, struct err *err)
{
    struct put_args a = {.r = r, .now = util_now_ms()};
    int rc;

    if (r->id[0])
        memcpy(a.id, r->id, sizeof(a.id));
    else
        util_uuid7(a.id);
    rc = cat__run((struct cat_sqlite *)c, 1, put_body, &a, err);
    if (rc == 0) {
        memcpy(r->id, a.id_out, sizeof(r->id));
        r->created_at = a.created_at;
        r->updated_at = a.updated_at;
    }
    return rc;
}

/* ---- get and find ---------------------------------------------------------------------------- */

/* A lookup by id (RS_GET) or by key (RS_FIND); the strings are copies (they may point into
 * out, which is cleared first). */
struct fetch_args {
    enum rend_stmt_id sid;
    char *id, *asset_id, *profile, *variant;
    int version;
    struct cat_rendition *out;
};

static int fetch_body(struct conn *cn, void *arg, struct err *err)
{
    struct fetch_args *g = arg;
    sqlite3_stmt *st;
    int rc = rstmt(cn, g->sid, &st, err);

    if (rc < 0)
        return rc;
    if (g->sid == RS_GET) {
        bind_str(cn, st, 1, g->id);
    } else {
        bind_str(cn, st, 1, g->asset_id);
        bind_str(cn, st, 2, g->profile);
        bind_i64(cn, st, 3, g->version);
        bind_str(cn, st, 4, g->variant);
    }
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        cat_rendition_release(g->out);
        rend_read(st, g->out);
        rc = 0;
    } else if (rc == SQLITE_DONE && g->sid == RS_GET) {
        rc = err_set(err, ERR_NOTFOUND, "rendition %s not found", g->id);
    } else if (rc == SQLITE_DONE) {
        rc = err_set(err, ERR_NOTFOUND, "asset %s has no rendition %s v%d%s%s", g->asset_id,
                     g->profile, g->version, *g->variant ? " variant " : "", g->variant);
    } else {
        rc = cat__db_fail(cn, rc, err, "read rendition");
    }
    sqlite3_reset(st);
    return rc;
}

/* Runs a lookup into out, which is zeroed first and stays zeroed on failure. */
static int fetch(struct catalog *c, struct fetch_args *g, struct err *err)
{
    int rc;

    memset(g->out, 0, sizeof(*g->out));
    rc = cat__run((struct cat_sqlite *)c, 0, fetch_body, g, err);
    free(g->id);
    free(g->asset_id);
    free(g->profile);
    free(g->variant);
    return rc;
}

int cat__sqlite_rendition_get(struct catalog *c, const char *id, struct cat_rendition *out,
                              struct err *err)
{
    struct fetch_args g = {.sid = RS_GET, .id = xstrdup(id), .out = out};

    return fetch(c, &g, err);
}

int cat__sqlite_rendition_find(struct catalog *c, const char *asset_id, const char *profile,
                               int version, const char *variant, struct cat_rendition *out,
                               struct err *err)
{
    struct fetch_args g = {.sid = RS_FIND,
                           .asset_id = xstrdup(asset_id),
                           .profile = xstrdup(profile),
                           .variant = xstrdup(variant ? variant : ""),
                           .version = version,
                           .out = out};

    return fetch(c, &g, err);
}

/* ---- lists ----------------------------------------------------------------------------------- */

struct list_args {
    enum rend_stmt_id sid;
    const char *asset_id; /* RS_LIST */
    int64_t now;          /* RS_EXPIRED */
    int limit;
    struct rend_rows rows;
};

static int list_body(struct conn *cn, void *arg, struct err *err)
{
    struct list_args *l = arg;
    sqlite3_stmt *st;
    int rc = rstmt(cn, l->sid, &st, err);

    if (rc < 0)
        return rc;
    if (l->sid == RS_LIST) {
        bind_str(cn, st, 1, l->asset_id);
    } else {
        bind_i64(cn, st, 1, l->now);
        bind_i64(cn, st, 2, l->limit);
    }
    return rend_rows_fill(cn, st, &l->rows, err, "list renditions");
}

static int list_run(struct catalog *c, struct list_args *l,
                    int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx, struct err *err)
{
    int rc = cat__run((struct cat_sqlite *)c, 0, list_body, l, err);

    if (rc < 0) {
        rend_rows_free(&l->rows);
        return rc;
    }
    return rend_rows_each(&l->rows, cb, ctx);
}

int cat__sqlite_rendition_list(struct catalog *c, const char *asset_id,
                               int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                               struct err *err)
{
    struct list_args l = {.sid = RS_LIST, .asset_id = asset_id};

    return list_run(c, &l, cb, ctx, err);
}

int cat__sqlite_renditions_expired(struct catalog *c, int64_t now, int limit,
                                   int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                                   struct err *err)
{
    struct list_args l = {.sid = RS_EXPIRED, .now = now};

    l.limit = limit < 1 ? 1 : limit > LIST_MAX ? LIST_MAX : limit;
    return list_run(c, &l, cb, ctx, err);
}
