/*
 * catalog_sqlite_wf: the workflow engine's operations on the SQLite catalog (migration
 * 0002): workflows, their steps, jobs and leases, history, effects, workers, and the
 * asset updates an ingest makes.
 *
 * The cat_tx_* operations run on the connection of one write body (cat__run(c, 1, ...):
 * BEGIN IMMEDIATE ... COMMIT), each a single cached statement where one does it; the
 * others are bodies of their own, reads in autocommit mode. Every statement is prepared
 * once per connection (wf_sql[], struct conn's wst[] and wlist[]). Callbacks get rows
 * read first, so they may call back into the catalog. See docs/internals/catalog.md.
 */
#include "catalog/catalog_sqlite_int.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ---- statements ------------------------------------------------------------------------------ */

#define WF_COLS                                                                                    \
    "id, type, status, asset_id, created_by, input, error, idempotency_key, created_at, "          \
    "updated_at, finished_at"
#define STEP_COLS "step, status, jobs_total, jobs_done, started_at, finished_at"
#define JOB_COLS                                                                                   \
    "id, workflow_id, step, item, activity, queue, status, priority, run_after, attempt, "         \
    "max_attempts, lease_owner, lease_until, input, output, progress, progress_detail, error, "    \
    "error_class, idempotency_key, cancel_requested, created_at, started_at, heartbeat_at, "       \
    "finished_at"
/* the lease a job_finish/job_requeue/heartbeat must still hold: ?1 id, ?2 owner (NULL: any),
 * ?3 attempt */
#define HELD_LEASE                                                                                 \
    "id = ?1 AND status = 'leased' AND attempt = ?3 AND (?2 IS NULL OR lease_owner = ?2)"

/* a field of the technical "summary" object s, NULL unless it has the right JSON type */
#define SUM_INT(f)                                                                                 \
    "CASE WHEN json_type(s, '$." f "') IN ('integer', 'real') "                                    \
    "THEN CAST(json_extract(s, '$." f "') AS INTEGER) END"
#define SUM_REAL(f)                                                                                \
    "CASE WHEN json_type(s, '$." f "') IN ('integer', 'real') THEN json_extract(s, '$." f "') END"
#define SUM_TEXT(f) "CASE WHEN json_type(s, '$." f "') = 'text' THEN json_extract(s, '$." f "') END"
#define SUMMARY_COLS                                                                                                  \
    SUM_INT("duration_ms")                                                                                            \
    ", " SUM_INT("width") ", " SUM_INT("height") ", " SUM_INT("bitrate_kbps") ", " SUM_REAL(                          \
        "fram"                                                                                                        \
        "e_"                                                                                                          \
        "rat"                                                                                                         \
        "e") ", " SUM_TEXT("video_codec") ", " SUM_TEXT("audio_codec") ", " SUM_TEXT("container") ", " SUM_TEXT("cap" \
                                                                                                                "tur" \
                                                                                                                "ed_" \
                                                                                                                "at")

static const char *const wf_sql[W_COUNT] = {
    [W_WF_INSERT] = "INSERT INTO workflows (" WF_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, "
                    "coalesce(?6, '{}'), ?7, ?8, ?9, ?10, ?11)",
    [W_WF_GET] = "SELECT " WF_COLS " FROM workflows WHERE id = ?1",
    [W_WF_BY_IDEM] = "SELECT " WF_COLS " FROM workflows WHERE idempotency_key = ?1",
    [W_WF_UPDATE] = "UPDATE workflows SET status = ?2, error = ?3, finished_at = ?4, "
                    "updated_at = ?5 WHERE id = ?1",
    [W_STEP_INSERT] = "INSERT INTO workflow_steps (workflow_id, step, status, jobs_total, "
                      "jobs_done, started_at) VALUES (?1, ?2, 'running', ?3, 0, ?4)",
    [W_STEP_GET] = "SELECT " STEP_COLS " FROM workflow_steps WHERE workflow_id = ?1 AND step = ?2",
    [W_STEP_ADD_DONE] = "UPDATE workflow_steps SET jobs_done = jobs_done + 1 "
                        "WHERE workflow_id = ?1 AND step = ?2 RETURNING " STEP_COLS,
    [W_STEP_SET_STATUS] = "UPDATE workflow_steps SET status = ?3, "
                          "finished_at = CASE WHEN ?3 = 'running' THEN NULL ELSE ?4 END "
                          "WHERE workflow_id = ?1 AND step = ?2",
    [W_JOB_INSERT] = "INSERT INTO jobs (workflow_id, step, item, activity, queue, status, "
                     "priority, run_after, attempt, max_attempts, lease_owner, lease_until, "
                     "input, output, progress, progress_detail, error, error_class, "
                     "idempotency_key, cancel_requested, created_at, started_at, heartbeat_at, "
                     "finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                     "?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24)",
    [W_JOB_GET] = "SELECT " JOB_COLS " FROM jobs WHERE id = ?1",
    [W_JOB_FINISH] = "UPDATE jobs SET status = ?4, output = ?5, error = ?6, error_class = ?7, "
                     "finished_at = ?8, lease_until = NULL, "
                     "progress = CASE WHEN ?4 = 'completed' THEN 100 ELSE progress END "
                     "WHERE " HELD_LEASE,
    [W_JOB_REQUEUE] = "UPDATE jobs SET status = 'ready', lease_owner = NULL, lease_until = NULL, "
                      "run_after = ?4, error = ?5, error_class = ?6 WHERE " HELD_LEASE,
    /* INDEXED BY: without statistics the planner prefers idx_jobs_due's run_after range and
     * sorts every due job of the queue; idx_jobs_ready is walked in lease order and stops
     * after limit rows */
    [W_JOBS_LEASE] =
        "UPDATE jobs SET status = 'leased', lease_owner = ?1, lease_until = ?2, "
        "attempt = attempt + 1, started_at = ?3, heartbeat_at = ?3, progress = NULL, "
        "progress_detail = NULL WHERE id IN (SELECT id FROM jobs INDEXED BY idx_jobs_ready "
        "WHERE status = 'ready' AND queue = ?4 AND run_after <= ?3 "
        "ORDER BY priority DESC, id LIMIT ?5) RETURNING " JOB_COLS,
    [W_JOBS_EXPIRED] = "SELECT " JOB_COLS " FROM jobs WHERE status = 'leased' "
                       "AND lease_until < ?1 ORDER BY lease_until LIMIT ?2",
    [W_JOBS_HEARTBEAT] = "UPDATE jobs SET lease_until = ?4, heartbeat_at = ?5, "
                         "progress = CASE WHEN ?6 < 0 THEN progress ELSE ?6 END, "
                         "progress_detail = coalesce(?7, progress_detail) "
                         "WHERE " HELD_LEASE " RETURNING cancel_requested",
    [W_JOBS_CANCEL_READY] = "UPDATE jobs SET status = 'cancelled', finished_at = ?2 "
                            "WHERE workflow_id = ?1 AND status = 'ready'",
    [W_JOBS_CANCEL_LEASED] = "UPDATE jobs SET cancel_requested = 1 "
                             "WHERE workflow_id = ?1 AND status = 'leased'",
    [W_JOBS_COUNT] = "SELECT count(*) FROM jobs WHERE workflow_id = ?1 "
                     "AND (?2 IS NULL OR status = ?2)",
    [W_JOBS_RETRY] = "UPDATE jobs SET status = 'ready', attempt = 0, run_after = ?2, "
                     "cancel_requested = 0, lease_owner = NULL, lease_until = NULL, "
                     "finished_at = NULL, error = NULL, error_class = NULL, progress = NULL, "
                     "progress_detail = NULL "
                     "WHERE workflow_id = ?1 AND status IN ('failed', 'cancelled')",
    [W_STEPS_RETRY] = "UPDATE workflow_steps SET status = 'running', finished_at = NULL "
                      "WHERE workflow_id = ?1 AND status IN ('failed', 'cancelled')",
    [W_JOB_OUTPUTS] = "SELECT step, item, output FROM jobs WHERE workflow_id = ?1 "
                      "AND status = 'completed' AND output IS NOT NULL ORDER BY step, item",
    [W_EVENT_INSERT] = "INSERT INTO workflow_events (workflow_id, job_id, ts, type, step, "
                       "attempt, worker, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [W_WF_STEPS] = "SELECT " STEP_COLS " FROM workflow_steps WHERE workflow_id = ?1 "
                   "ORDER BY started_at, step",
    [W_WF_JOBS] = "SELECT " JOB_COLS " FROM jobs WHERE workflow_id = ?1 ORDER BY id LIMIT ?2",
    [W_WF_EVENTS] = "SELECT id, ts, type, job_id, step, attempt, worker, detail "
                    "FROM workflow_events WHERE workflow_id = ?1 AND id > ?2 "
                    "ORDER BY id LIMIT ?3",
    [W_JOBS_CANCEL_REQUESTED] = "SELECT id, attempt FROM jobs WHERE status = 'leased' "
                                "AND lease_owner = ?1 AND cancel_requested = 1",
    /* the first entry of idx_jobs_due / idx_jobs_leased (no row: none) */
    [W_NEXT_RUN] = "SELECT run_after FROM jobs WHERE status = 'ready' AND queue = ?1 "
                   "ORDER BY run_after LIMIT 1",
    [W_NEXT_EXPIRY] = "SELECT lease_until FROM jobs WHERE status = 'leased' "
                      "AND lease_until IS NOT NULL ORDER BY lease_until LIMIT 1",
    /* ready jobs through idx_jobs_due (covering), leased ones through idx_jobs_leased,
     * worker slots from the live workers' queue maps */
    [W_QUEUE_DEPTHS] =
        "WITH r AS (SELECT queue, sum(run_after <= ?1) AS ready, sum(run_after > ?1) AS delayed, "
        "min(CASE WHEN run_after <= ?1 THEN run_after END) AS oldest "
        "FROM jobs INDEXED BY idx_jobs_due WHERE status = 'ready' GROUP BY queue), "
        "l AS (SELECT queue, count(*) AS leased FROM jobs INDEXED BY idx_jobs_leased "
        "WHERE status = 'leased' GROUP BY queue), "
        "w AS (SELECT q.key AS queue, sum(q.value) AS slots FROM workers, "
        "json_each(workers.queues) q "
        "WHERE workers.heartbeat_at > ?1 - 60000 GROUP BY q.key), "
        "n AS (SELECT queue FROM r UNION SELECT queue FROM l UNION SELECT queue FROM w) "
        "SELECT n.queue, coalesce(r.ready, 0), coalesce(r.delayed, 0), coalesce(l.leased, 0), "
        "coalesce(?1 - r.oldest, 0), coalesce(w.slots, 0) FROM n "
        "LEFT JOIN r ON r.queue = n.queue LEFT JOIN l ON l.queue = n.queue "
        "LEFT JOIN w ON w.queue = n.queue ORDER BY n.queue",
    [W_EFFECT_GET] = "SELECT result FROM activity_effects WHERE idempotency_key = ?1",
    [W_EFFECT_PUT] = "INSERT INTO activity_effects (idempotency_key, job_id, result, created_at) "
                     "VALUES (?1, ?2, ?3, ?4)",
    [W_WORKER_PUT] = "INSERT OR REPLACE INTO workers (id, host, pid, queues, started_at, "
                     "heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [W_WORKER_DELETE] = "DELETE FROM workers WHERE id = ?1",
    [W_WORKERS_EXPIRE] = "DELETE FROM workers WHERE heartbeat_at < ?1",
    /* s: the "summary" object, NULL if ?4 is not valid JSON (its CHECK then fails) or has
     * no summary object; CASE keeps json_type() away from malformed text */
    [W_ASSET_TECHNICAL] = "UPDATE assets SET type = coalesce(?2, type), "
                          "mime_type = coalesce(?3, mime_type), technical_metadata = ?4, "
                          "(duration_ms, width, height, bitrate_kbps, frame_rate, video_codec, "
                          "audio_codec, container, captured_at) = (SELECT " SUMMARY_COLS
                          " FROM (SELECT CASE WHEN json_valid(?4) THEN CASE "
                          "WHEN json_type(?4, '$.summary') = 'object' "
                          "THEN json_extract(?4, '$.summary') END END AS s)), "
                          "updated_at = ?5 WHERE id = ?1",
    [W_ASSET_MASTER] = "UPDATE assets SET content_hash = ?2, master_storage_key = ?3, "
                       "file_size_bytes = ?4, updated_at = ?5 "
                       "WHERE id = ?1 AND status = 'processing'",
    [W_ASSET_DUPLICATE] = "UPDATE assets SET status = 'failed', failure_reason = ?3, "
                          "duplicate_of = ?2, updated_at = ?4 "
                          "WHERE id = ?1 AND status = 'processing'",
};

/* The cached statement id, prepared on first use, reset and with bindings cleared. */
static int wstmt(struct conn *cn, enum wf_stmt_id id, sqlite3_stmt **out, struct err *err)
{
    if (!cn->wst[id]) {
        int rc = cat__prepare(cn, wf_sql[id], &cn->wst[id], err);

        if (rc < 0)
            return rc;
    }
    stmt_ready(cn, cn->wst[id]);
    *out = cn->wst[id];
    return 0;
}

/* Steps a statement returning no rows: the number of rows it changed, or < 0. */
static int wexec(struct conn *cn, sqlite3_stmt *st, struct err *err, const char *what)
{
    int rc = step(cn, st);

    rc = rc == SQLITE_DONE ? sqlite3_changes(cn->db) : cat__db_fail(cn, rc, err, what);
    sqlite3_reset(st);
    return rc;
}

/* ---- rows --------------------------------------------------------------------------------- */

static void wf_read(sqlite3_stmt *st, struct cat_workflow *w)
{
    memset(w, 0, sizeof(*w));
    col_copy(w->id, sizeof(w->id), st, 0);
    col_copy(w->type, sizeof(w->type), st, 1);
    col_copy(w->status, sizeof(w->status), st, 2);
    col_copy(w->asset_id, sizeof(w->asset_id), st, 3);
    col_copy(w->created_by, sizeof(w->created_by), st, 4);
    w->input = col_dup_nn(st, 5);
    w->error = col_dup(st, 6);
    col_copy(w->idempotency_key, sizeof(w->idempotency_key), st, 7);
    w->created_at = sqlite3_column_int64(st, 8);
    w->updated_at = sqlite3_column_int64(st, 9);
    w->finished_at = col_i64_or(st, 10, 0);
}

static void step_read(sqlite3_stmt *st, struct cat_step *s)
{
    memset(s, 0, sizeof(*s));
    col_copy(s->step, sizeof(s->step), st, 0);
    col_copy(s->status, sizeof(s->status), st, 1);
    s->jobs_total = sqlite3_column_int(st, 2);
    s->jobs_done = sqlite3_column_int(st, 3);
    s->started_at = sqlite3_column_int64(st, 4);
    s->finished_at = col_i64_or(st, 5, 0);
}

static void job_read(sqlite3_stmt *st, struct cat_job *j)
{
    memset(j, 0, sizeof(*j));
    j->id = sqlite3_column_int64(st, 0);
    col_copy(j->workflow_id, sizeof(j->workflow_id), st, 1);
    col_copy(j->step, sizeof(j->step), st, 2);
    j->item = sqlite3_column_int(st, 3);
    col_copy(j->activity, sizeof(j->activity), st, 4);
    col_copy(j->queue, sizeof(j->queue), st, 5);
    col_copy(j->status, sizeof(j->status), st, 6);
    j->priority = sqlite3_column_int(st, 7);
    j->run_after = sqlite3_column_int64(st, 8);
    j->attempt = sqlite3_column_int(st, 9);
    j->max_attempts = sqlite3_column_int(st, 10);
    col_copy(j->lease_owner, sizeof(j->lease_owner), st, 11);
    j->lease_until = col_i64_or(st, 12, 0);
    j->input = col_dup(st, 13);
    j->output = col_dup(st, 14);
    j->progress = col_double_or(st, 15, -1);
    j->progress_detail = col_dup(st, 16);
    j->error = col_dup(st, 17);
    col_copy(j->error_class, sizeof(j->error_class), st, 18);
    col_copy(j->idempotency_key, sizeof(j->idempotency_key), st, 19);
    j->cancel_requested = sqlite3_column_int(st, 20);
    j->created_at = sqlite3_column_int64(st, 21);
    j->started_at = col_i64_or(st, 22, 0);
    j->heartbeat_at = col_i64_or(st, 23, 0);
    j->finished_at = col_i64_or(st, 24, 0);
}

/* A growable array of jobs read before their callback runs. */
struct job_rows {
    struct cat_job *v;
    size_t n, alloc;
};

static struct cat_job *job_rows_add(struct job_rows *r)
{
    if (r->n == r->alloc) {
        r->alloc = r->alloc ? 2 * r->alloc : 16;
        r->v = xrealloc(r->v, r->alloc * sizeof(*r->v));
    }
    return &r->v[r->n++];
}

/* Releases the rows (kept allocated for a rerun of the body). */
static void job_rows_clear(struct job_rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        cat_job_release(&r->v[i]);
    r->n = 0;
}

static void job_rows_free(struct job_rows *r)
{
    job_rows_clear(r);
    free(r->v);
    r->v = NULL;
    r->alloc = 0;
}

/* Steps st to its end, appending each row to r. */
static int job_rows_fill(struct conn *cn, sqlite3_stmt *st, struct job_rows *r, struct err *err,
                         const char *what)
{
    int rc;

    job_rows_clear(r);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW)
            break;
        job_read(st, job_rows_add(r));
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, what);
    sqlite3_reset(st);
    return rc;
}

/* Hands each row to cb until it returns non-zero. */
static int job_rows_each(const struct job_rows *r, int (*cb)(void *ctx, const struct cat_job *j),
                         void *ctx)
{
    int rc = 0;

    for (size_t i = 0; rc == 0 && i < r->n; i++)
        rc = cb(ctx, &r->v[i]);
    return rc;
}

static int clamp_limit(int limit)
{
    return limit < 1 ? 1 : limit > LIST_MAX ? LIST_MAX : limit;
}

/* ---- transactions --------------------------------------------------------------------------- */

/** The SQLite transaction handle: the connection of the write body running it. */
struct sqlite_tx {
    struct cat_tx base;
    struct conn *cn;
    int busy; /* an operation met SQLITE_BUSY: the whole body is retried */
};

static struct conn *tx_conn(struct cat_tx *tx)
{
    return ((struct sqlite_tx *)tx)->cn;
}

/*
 * The result of an operation inside a transaction. RC_BUSY must not reach the caller's
 * body (it returns -1 and expects err set): it becomes ERR_BACKEND, and the transaction
 * remembers it so run() retries the whole body rather than failing.
 */
static int tx_rc(struct cat_tx *tx, int rc, struct err *err)
{
    if (rc != RC_BUSY)
        return rc;
    ((struct sqlite_tx *)tx)->busy = 1;
    return err_set(err, ERR_BACKEND, "catalog is busy");
}

struct tx_args {
    cat_tx_fn fn;
    void *ctx;
};

static int tx_body(struct conn *cn, void *arg, struct err *err)
{
    struct tx_args *a = arg;
    struct sqlite_tx tx = {.base.ops = &cat__sqlite_wf_ops, .cn = cn};
    int rc = a->fn(&tx.base, a->ctx, err);

    if (tx.busy)
        return RC_BUSY;
    return rc == 0 ? 0 : -1;
}

static int sqlite_tx_run(struct catalog *c, cat_tx_fn fn, void *ctx, struct err *err)
{
    struct tx_args a = {fn, ctx};

    return cat__run((struct cat_sqlite *)c, 1, tx_body, &a, err);
}

/* ---- workflows ---------------------------------------------------------------------------- */

static int wf_insert_on(struct conn *cn, const struct cat_workflow *w, struct err *err)
{
    int64_t now = util_now_ms();
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_WF_INSERT, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, w->id);
    bind_str(cn, st, 2, w->type);
    bind_str(cn, st, 3, w->status);
    bind_opt(cn, st, 4, w->asset_id);
    bind_opt(cn, st, 5, w->created_by);
    bind_str(cn, st, 6, w->input);
    bind_str(cn, st, 7, w->error);
    bind_opt(cn, st, 8, w->idempotency_key);
    bind_i64(cn, st, 9, w->created_at ? w->created_at : now);
    bind_i64(cn, st, 10, w->updated_at ? w->updated_at : now);
    bind_i64_nz(cn, st, 11, w->finished_at);
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = err_set(err, ERR_CONFLICT, "workflow %s already exists", w->id);
    else if (rc == SQLITE_CONSTRAINT_UNIQUE)
        rc = err_set(err, ERR_CONFLICT, "a workflow with idempotency key %s already exists",
                     w->idempotency_key);
    else
        rc = cat__db_fail(cn, rc, err, "insert workflow");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_wf_insert(struct cat_tx *tx, const struct cat_workflow *w, struct err *err)
{
    return tx_rc(tx, wf_insert_on(tx_conn(tx), w, err), err);
}

/* Reads the workflow statement sid finds by key into out (zeroed on failure). */
static int wf_fetch(struct conn *cn, enum wf_stmt_id sid, const char *key, struct cat_workflow *out,
                    struct err *err)
{
    sqlite3_stmt *st;
    int rc = wstmt(cn, sid, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, key); /* copied: key may point into out */
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        wf_read(st, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = sid == W_WF_BY_IDEM
                 ? err_set(err, ERR_NOTFOUND, "no workflow has idempotency key %s", key)
                 : err_set(err, ERR_NOTFOUND, "workflow %s not found", key);
    } else {
        rc = cat__db_fail(cn, rc, err, "read workflow");
    }
    sqlite3_reset(st);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

static int sqlite_wf_get(struct cat_tx *tx, const char *id, struct cat_workflow *out,
                         struct err *err)
{
    return tx_rc(tx, wf_fetch(tx_conn(tx), W_WF_GET, id, out, err), err);
}

static int sqlite_wf_by_idem(struct cat_tx *tx, const char *key, struct cat_workflow *out,
                             struct err *err)
{
    return tx_rc(tx, wf_fetch(tx_conn(tx), W_WF_BY_IDEM, key, out, err), err);
}

static int sqlite_wf_update(struct cat_tx *tx, const char *id, const char *status,
                            const char *error, int64_t finished_at, struct err *err)
{
    struct conn *cn = tx_conn(tx);
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_WF_UPDATE, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, id);
    bind_str(cn, st, 2, status);
    bind_str(cn, st, 3, error);
    bind_i64_nz(cn, st, 4, finished_at);
    bind_i64(cn, st, 5, util_now_ms());
    rc = wexec(cn, st, err, "update workflow");
    if (rc == 0)
        return err_set(err, ERR_NOTFOUND, "workflow %s not found", id);
    return tx_rc(tx, rc < 0 ? rc : 0, err);
}

struct wf_get_args {
    const char *id;
    struct cat_workflow *out;
};

static int wf_get_body(struct conn *cn, void *arg, struct err *err)
{
    struct wf_get_args *g = arg;

    return wf_fetch(cn, W_WF_GET, g->id, g->out, err);
}

static int sqlite_wf_get_ro(struct catalog *c, const char *id, struct cat_workflow *out,
                            struct err *err)
{
    /* id may point into out (out->id), which a failed run clears: copy it */
    struct wf_get_args g = {xstrdup(id), out};
    int rc = cat__run((struct cat_sqlite *)c, 0, wf_get_body, &g, err);

    free((char *)g.id);
    return rc;
}

/* ---- steps ---------------------------------------------------------------------------------- */

static int sqlite_step_insert(struct cat_tx *tx, const char *wf_id, const char *step_name,
                              int total, struct err *err)
{
    struct conn *cn = tx_conn(tx);
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_STEP_INSERT, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, wf_id);
    bind_str(cn, st, 2, step_name);
    bind_i64(cn, st, 3, total);
    bind_i64(cn, st, 4, util_now_ms());
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = err_set(err, ERR_CONFLICT, "step %s of workflow %s has already started", step_name,
                     wf_id);
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = err_set(err, ERR_NOTFOUND, "workflow %s not found", wf_id);
    else
        rc = cat__db_fail(cn, rc, err, "insert step");
    sqlite3_reset(st);
    return tx_rc(tx, rc, err);
}

/* Runs sid (a step read or a step update RETURNING the step) into out. */
static int step_fetch(struct conn *cn, enum wf_stmt_id sid, const char *wf_id,
                      const char *step_name, struct cat_step *out, struct err *err)
{
    sqlite3_stmt *st;
    int rc = wstmt(cn, sid, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, wf_id);
    bind_str(cn, st, 2, step_name);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        if (out)
            step_read(st, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = err_set(err, ERR_NOTFOUND, "step %s of workflow %s has not started", step_name, wf_id);
    } else {
        rc = cat__db_fail(cn, rc, err, "read step");
    }
    sqlite3_reset(st); /* also runs an UPDATE ... RETURNING to completion */
    return rc;
}

static int sqlite_step_get(struct cat_tx *tx, const char *wf_id, const char *step_name,
                           struct cat_step *out, struct err *err)
{
    return tx_rc(tx, step_fetch(tx_conn(tx), W_STEP_GET, wf_id, step_name, out, err), err);
}

static int sqlite_step_add_done(struct cat_tx *tx, const char *wf_id, const char *step_name,
                                struct cat_step *out, struct err *err)
{
    return tx_rc(tx, step_fetch(tx_conn(tx), W_STEP_ADD_DONE, wf_id, step_name, out, err), err);
}

static int sqlite_step_set_status(struct cat_tx *tx, const char *wf_id, const char *step_name,
                                  const char *status, struct err *err)
{
    struct conn *cn = tx_conn(tx);
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_STEP_SET_STATUS, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, wf_id);
    bind_str(cn, st, 2, step_name);
    bind_str(cn, st, 3, status);
    bind_i64(cn, st, 4, util_now_ms());
    rc = wexec(cn, st, err, "update step");
    if (rc == 0)
        return err_set(err, ERR_NOTFOUND, "step %s of workflow %s has not started", step_name,
                       wf_id);
    return tx_rc(tx, rc < 0 ? rc : 0, err);
}

/* ---- jobs ----------------------------------------------------------------------------------- */

static int sqlite_job_insert(struct cat_tx *tx, struct cat_job *j, struct err *err)
{
    struct conn *cn = tx_conn(tx);
    const char *msg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOB_INSERT, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, j->workflow_id);
    bind_str(cn, st, 2, j->step);
    bind_i64(cn, st, 3, j->item);
    bind_str(cn, st, 4, j->activity);
    bind_str(cn, st, 5, j->queue);
    bind_str(cn, st, 6, j->status);
    bind_i64(cn, st, 7, j->priority);
    bind_i64(cn, st, 8, j->run_after);
    bind_i64(cn, st, 9, j->attempt);
    bind_i64(cn, st, 10, j->max_attempts);
    bind_opt(cn, st, 11, j->lease_owner);
    bind_i64_nz(cn, st, 12, j->lease_until);
    bind_str(cn, st, 13, j->input);
    bind_str(cn, st, 14, j->output);
    if (j->progress >= 0)
        bind_double(cn, st, 15, j->progress);
    bind_str(cn, st, 16, j->progress_detail);
    bind_str(cn, st, 17, j->error);
    bind_opt(cn, st, 18, j->error_class);
    bind_opt(cn, st, 19, j->idempotency_key);
    bind_i64(cn, st, 20, j->cancel_requested ? 1 : 0);
    bind_i64(cn, st, 21, j->created_at ? j->created_at : util_now_ms());
    bind_i64_nz(cn, st, 22, j->started_at);
    bind_i64_nz(cn, st, 23, j->heartbeat_at);
    bind_i64_nz(cn, st, 24, j->finished_at);
    rc = step(cn, st);
    msg = sqlite3_errmsg(cn->db);
    if (rc == SQLITE_DONE) {
        j->id = sqlite3_last_insert_rowid(cn->db);
        rc = 0;
    } else if (rc == SQLITE_CONSTRAINT_UNIQUE && strstr(msg, "jobs.idempotency_key")) {
        rc = err_set(err, ERR_CONFLICT, "a job with idempotency key %s already exists",
                     j->idempotency_key);
    } else if (rc == SQLITE_CONSTRAINT_UNIQUE) {
        rc = err_set(err, ERR_CONFLICT, "workflow %s already has job %s/%d", j->workflow_id,
                     j->step, j->item);
    } else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY) {
        rc = err_set(err, ERR_NOTFOUND, "workflow %s not found", j->workflow_id);
    } else {
        rc = cat__db_fail(cn, rc, err, "insert job");
    }
    sqlite3_reset(st);
    return tx_rc(tx, rc, err);
}

static int job_fetch(struct conn *cn, int64_t id, struct cat_job *out, struct err *err)
{
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOB_GET, &st, err);

    if (rc < 0)
        return rc;
    bind_i64(cn, st, 1, id);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        job_read(st, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = err_set(err, ERR_NOTFOUND, "job %lld not found", (long long)id);
    } else {
        rc = cat__db_fail(cn, rc, err, "read job");
    }
    sqlite3_reset(st);
    if (rc < 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

static int sqlite_job_get(struct cat_tx *tx, int64_t id, struct cat_job *out, struct err *err)
{
    return tx_rc(tx, job_fetch(tx_conn(tx), id, out, err), err);
}

static int sqlite_job_finish(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                             const char *status, const char *output, const char *error,
                             const char *error_class, struct err *err)
{
    struct conn *cn = tx_conn(tx);
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOB_FINISH, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_i64(cn, st, 1, id);
    bind_str(cn, st, 2, owner);
    bind_i64(cn, st, 3, attempt);
    bind_str(cn, st, 4, status);
    bind_str(cn, st, 5, output);
    bind_str(cn, st, 6, error);
    bind_opt(cn, st, 7, error_class);
    bind_i64(cn, st, 8, util_now_ms());
    rc = wexec(cn, st, err, "finish job");
    return tx_rc(tx, rc < 0 ? rc : rc > 0, err);
}

static int sqlite_job_requeue(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                              int64_t run_after, const char *error, const char *error_class,
                              struct err *err)
{
    struct conn *cn = tx_conn(tx);
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOB_REQUEUE, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_i64(cn, st, 1, id);
    bind_str(cn, st, 2, owner);
    bind_i64(cn, st, 3, attempt);
    bind_i64(cn, st, 4, run_after);
    bind_str(cn, st, 5, error);
    bind_opt(cn, st, 6, error_class);
    rc = wexec(cn, st, err, "requeue job");
    return tx_rc(tx, rc < 0 ? rc : rc > 0, err);
}

/* Lease order: highest priority first, then oldest (RETURNING gives no order). */
static int lease_order(const void *a, const void *b)
{
    const struct cat_job *x = a, *y = b;

    if (x->priority != y->priority)
        return x->priority > y->priority ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int sqlite_jobs_lease(struct cat_tx *tx, const char *queue, int limit, const char *owner,
                             int64_t lease_until, int (*cb)(void *ctx, const struct cat_job *j),
                             void *ctx, struct err *err)
{
    struct conn *cn = tx_conn(tx);
    struct job_rows rows = {0};
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOBS_LEASE, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, owner);
    bind_i64(cn, st, 2, lease_until);
    bind_i64(cn, st, 3, util_now_ms());
    bind_str(cn, st, 4, queue);
    bind_i64(cn, st, 5, clamp_limit(limit));
    rc = job_rows_fill(cn, st, &rows, err, "lease jobs");
    if (rc == 0) {
        if (rows.n > 1)
            qsort(rows.v, rows.n, sizeof(*rows.v), lease_order);
        rc = job_rows_each(&rows, cb, ctx);
    }
    job_rows_free(&rows);
    return tx_rc(tx, rc, err);
}

static int sqlite_jobs_expired(struct cat_tx *tx, int limit,
                               int (*cb)(void *ctx, const struct cat_job *j), void *ctx,
                               struct err *err)
{
    struct conn *cn = tx_conn(tx);
    struct job_rows rows = {0};
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOBS_EXPIRED, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_i64(cn, st, 1, util_now_ms());
    bind_i64(cn, st, 2, clamp_limit(limit));
    rc = job_rows_fill(cn, st, &rows, err, "list expired leases");
    if (rc == 0)
        rc = job_rows_each(&rows, cb, ctx);
    job_rows_free(&rows);
    return tx_rc(tx, rc, err);
}

static int sqlite_jobs_heartbeat(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                                 int64_t lease_until, double progress, const char *detail,
                                 struct err *err)
{
    struct conn *cn = tx_conn(tx);
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOBS_HEARTBEAT, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_i64(cn, st, 1, id);
    bind_str(cn, st, 2, owner);
    bind_i64(cn, st, 3, attempt);
    bind_i64(cn, st, 4, lease_until);
    bind_i64(cn, st, 5, util_now_ms());
    bind_double(cn, st, 6, progress < 0 ? -1 : progress);
    bind_str(cn, st, 7, detail);
    rc = step(cn, st);
    if (rc == SQLITE_ROW)
        rc = sqlite3_column_int(st, 0) ? 2 : 1;
    else if (rc == SQLITE_DONE)
        rc = 0;
    else
        rc = cat__db_fail(cn, rc, err, "heartbeat job");
    sqlite3_reset(st);
    return tx_rc(tx, rc, err);
}

static int sqlite_jobs_cancel(struct cat_tx *tx, const char *wf_id, int64_t *leased,
                              struct err *err)
{
    struct conn *cn = tx_conn(tx);
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOBS_CANCEL_READY, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, wf_id);
    bind_i64(cn, st, 2, util_now_ms());
    rc = wexec(cn, st, err, "cancel jobs");
    if (rc < 0)
        return tx_rc(tx, rc, err);
    rc = wstmt(cn, W_JOBS_CANCEL_LEASED, &st, err);
    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, wf_id);
    rc = wexec(cn, st, err, "cancel leased jobs");
    if (rc < 0)
        return tx_rc(tx, rc, err);
    if (leased)
        *leased = rc; /* every leased job of the workflow was updated */
    return 0;
}

static int jobs_count_on(struct conn *cn, const char *wf_id, const char *status, int64_t *out,
                         struct err *err)
{
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOBS_COUNT, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, wf_id);
    bind_opt(cn, st, 2, status);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = 0;
    } else {
        rc = cat__db_fail(cn, rc, err, "count jobs");
    }
    sqlite3_reset(st);
    return rc;
}

static int sqlite_jobs_count(struct cat_tx *tx, const char *wf_id, const char *status, int64_t *out,
                             struct err *err)
{
    return tx_rc(tx, jobs_count_on(tx_conn(tx), wf_id, status, out, err), err);
}

static int sqlite_jobs_retry(struct cat_tx *tx, const char *wf_id, struct err *err)
{
    struct conn *cn = tx_conn(tx);
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOBS_RETRY, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, wf_id);
    bind_i64(cn, st, 2, util_now_ms());
    rc = wexec(cn, st, err, "retry jobs");
    if (rc < 0)
        return tx_rc(tx, rc, err);
    rc = wstmt(cn, W_STEPS_RETRY, &st, err);
    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, wf_id);
    rc = wexec(cn, st, err, "retry steps");
    return tx_rc(tx, rc < 0 ? rc : 0, err);
}

struct output_row {
    char step[32];
    int item;
    char *output;
};

static int sqlite_job_outputs(struct cat_tx *tx, const char *wf_id,
                              int (*cb)(void *ctx, const char *step, int item, const char *output),
                              void *ctx, struct err *err)
{
    struct conn *cn = tx_conn(tx);
    struct output_row *rows = NULL;
    size_t n = 0, alloc = 0;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOB_OUTPUTS, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, wf_id);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW)
            break;
        if (n == alloc) {
            alloc = alloc ? 2 * alloc : 16;
            rows = xrealloc(rows, alloc * sizeof(*rows));
        }
        col_copy(rows[n].step, sizeof(rows[n].step), st, 0);
        rows[n].item = sqlite3_column_int(st, 1);
        rows[n].output = col_dup_nn(st, 2);
        n++;
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "read job outputs");
    sqlite3_reset(st);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cb(ctx, rows[i].step, rows[i].item, rows[i].output);
    for (size_t i = 0; i < n; i++)
        free(rows[i].output);
    free(rows);
    return tx_rc(tx, rc, err);
}

static int sqlite_event_append(struct cat_tx *tx, const struct cat_event *ev, struct err *err)
{
    struct conn *cn = tx_conn(tx);
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_EVENT_INSERT, &st, err);

    if (rc < 0)
        return tx_rc(tx, rc, err);
    bind_str(cn, st, 1, ev->workflow_id);
    bind_i64_nz(cn, st, 2, ev->job_id);
    bind_i64(cn, st, 3, util_now_ms());
    bind_str(cn, st, 4, ev->type);
    bind_opt(cn, st, 5, ev->step);
    bind_i64_nz(cn, st, 6, ev->attempt);
    bind_opt(cn, st, 7, ev->worker);
    bind_str(cn, st, 8, ev->detail_json);
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_CHECK)
        rc = err_set(err, ERR_INVALID, "event detail is not valid JSON");
    else
        rc = cat__db_fail(cn, rc, err, "append event");
    sqlite3_reset(st);
    return tx_rc(tx, rc, err);
}

static int sqlite_tx_asset_set_status(struct cat_tx *tx, const char *id, const char *from,
                                      const char *to, const char *reason, struct err *err)
{
    return tx_rc(tx, cat__asset_set_status(tx_conn(tx), id, from, to, reason, err), err);
}

/* ---- workflow list ------------------------------------------------------------------------ */

/* The cached list statement for this combination of filters. */
static int wf_list_stmt(struct conn *cn, unsigned mask, sqlite3_stmt **out, struct err *err)
{
    struct buf sql;
    int rc = 0;

    if (!cn->wlist[mask]) {
        buf_init(&sql, 0);
        buf_adds(&sql, "SELECT " WF_COLS " FROM workflows WHERE 1", NULL);
        if (mask & WLF_ASSET)
            buf_adds(&sql, " AND asset_id = ?1", NULL);
        if (mask & WLF_TYPE)
            buf_adds(&sql, " AND type = ?2", NULL);
        if (mask & WLF_STATUS)
            buf_adds(&sql, " AND status = ?3", NULL);
        if (mask & WLF_CREATED_BY)
            buf_adds(&sql, " AND created_by = ?4", NULL);
        if (mask & WLF_QUEUE)
            buf_adds(&sql,
                     " AND EXISTS (SELECT 1 FROM jobs WHERE jobs.workflow_id = workflows.id "
                     "AND jobs.queue = ?5)",
                     NULL);
        if (mask & WLF_AFTER)
            buf_adds(&sql, " AND id < ?6", NULL);
        buf_adds(&sql, " ORDER BY id DESC LIMIT ?7", NULL);
        rc = cat__prepare(cn, sql.buf, &cn->wlist[mask], err);
        buf_release(&sql);
        if (rc < 0)
            return rc;
    }
    stmt_ready(cn, cn->wlist[mask]);
    *out = cn->wlist[mask];
    return 0;
}

struct wf_list_args {
    const struct cat_workflow_filter *f;
    unsigned mask;
    int limit;
    struct cat_workflow *rows;
    size_t n, alloc;
};

static void wf_rows_clear(struct wf_list_args *l)
{
    for (size_t i = 0; i < l->n; i++)
        cat_workflow_release(&l->rows[i]);
    l->n = 0;
}

static int wf_list_body(struct conn *cn, void *arg, struct err *err)
{
    struct wf_list_args *l = arg;
    sqlite3_stmt *st;
    int rc = wf_list_stmt(cn, l->mask, &st, err);

    if (rc < 0)
        return rc;
    wf_rows_clear(l);
    if (l->mask & WLF_ASSET)
        bind_str(cn, st, 1, l->f->asset_id);
    if (l->mask & WLF_TYPE)
        bind_str(cn, st, 2, l->f->type);
    if (l->mask & WLF_STATUS)
        bind_str(cn, st, 3, l->f->status);
    if (l->mask & WLF_CREATED_BY)
        bind_str(cn, st, 4, l->f->created_by);
    if (l->mask & WLF_QUEUE)
        bind_str(cn, st, 5, l->f->queue);
    if (l->mask & WLF_AFTER)
        bind_str(cn, st, 6, l->f->after_id);
    bind_i64(cn, st, 7, l->limit);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW)
            break;
        if (l->n == l->alloc) {
            l->alloc = l->alloc ? 2 * l->alloc : 32;
            l->rows = xrealloc(l->rows, l->alloc * sizeof(*l->rows));
        }
        wf_read(st, &l->rows[l->n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "list workflows");
    sqlite3_reset(st);
    return rc;
}

static int given(const char *s)
{
    return s && *s;
}

static int sqlite_wf_list(struct catalog *c, const struct cat_workflow_filter *f,
                          int (*cb)(void *ctx, const struct cat_workflow *w), void *ctx,
                          struct err *err)
{
    struct wf_list_args l = {.f = f, .limit = clamp_limit(f->limit)};
    int rc;

    l.mask = (given(f->asset_id) ? WLF_ASSET : 0) | (given(f->type) ? WLF_TYPE : 0) |
             (given(f->status) ? WLF_STATUS : 0) | (given(f->created_by) ? WLF_CREATED_BY : 0) |
             (given(f->queue) ? WLF_QUEUE : 0) | (given(f->after_id) ? WLF_AFTER : 0);
    rc = cat__run((struct cat_sqlite *)c, 0, wf_list_body, &l, err);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = cb(ctx, &l.rows[i]);
    wf_rows_clear(&l);
    free(l.rows);
    return rc;
}

/* ---- a workflow's steps, jobs and history ------------------------------------------------ */

struct wf_steps_args {
    const char *wf_id;
    struct cat_step *rows;
    size_t n, alloc;
};

static int wf_steps_body(struct conn *cn, void *arg, struct err *err)
{
    struct wf_steps_args *l = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_WF_STEPS, &st, err);

    if (rc < 0)
        return rc;
    l->n = 0;
    bind_str(cn, st, 1, l->wf_id);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW)
            break;
        if (l->n == l->alloc) {
            l->alloc = l->alloc ? 2 * l->alloc : 16;
            l->rows = xrealloc(l->rows, l->alloc * sizeof(*l->rows));
        }
        step_read(st, &l->rows[l->n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "list steps");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_wf_steps(struct catalog *c, const char *wf_id,
                           int (*cb)(void *ctx, const struct cat_step *s), void *ctx,
                           struct err *err)
{
    struct wf_steps_args l = {.wf_id = wf_id};
    int rc = cat__run((struct cat_sqlite *)c, 0, wf_steps_body, &l, err);

    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = cb(ctx, &l.rows[i]);
    free(l.rows);
    return rc;
}

struct wf_jobs_args {
    const char *wf_id;
    int limit; /* 0: all */
    struct job_rows rows;
};

static int wf_jobs_body(struct conn *cn, void *arg, struct err *err)
{
    struct wf_jobs_args *l = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_WF_JOBS, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, l->wf_id);
    bind_i64(cn, st, 2, l->limit > 0 ? l->limit : -1); /* LIMIT -1: no limit */
    return job_rows_fill(cn, st, &l->rows, err, "list jobs");
}

static int sqlite_wf_jobs(struct catalog *c, const char *wf_id, int limit,
                          int (*cb)(void *ctx, const struct cat_job *j), void *ctx, struct err *err)
{
    struct wf_jobs_args l = {.wf_id = wf_id, .limit = limit};
    int rc = cat__run((struct cat_sqlite *)c, 0, wf_jobs_body, &l, err);

    if (rc == 0)
        rc = job_rows_each(&l.rows, cb, ctx);
    job_rows_free(&l.rows);
    return rc;
}

/* A JSON string of column i, or null (also for text that is not UTF-8). */
static json_t *event_json_str(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    json_t *j = s ? json_string((const char *)s) : NULL;

    return j ? j : json_null();
}

/* A JSON integer of column i, or null. */
static json_t *event_json_int(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return json_null();
    return json_integer(sqlite3_column_int64(st, i));
}

/* One history row (W_WF_EVENTS) as compact JSON text, ts as in the audit log; caller frees. */
static char *event_row_json(sqlite3_stmt *st)
{
    const unsigned char *detail = sqlite3_column_text(st, 7);
    json_t *o = json_object();
    json_t *d = NULL;
    char ts[32];
    char *text;

    util_time_rfc3339_ms(sqlite3_column_int64(st, 1), ts);
    json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "type", event_json_str(st, 2));
    json_object_set_new(o, "job_id", event_json_int(st, 3));
    json_object_set_new(o, "step", event_json_str(st, 4));
    json_object_set_new(o, "attempt", event_json_int(st, 5));
    json_object_set_new(o, "worker", event_json_str(st, 6));
    if (detail)
        d = json_loads((const char *)detail, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "detail", d ? d : json_null());
    text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!text)
        abort(); /* jansson only fails to allocate */
    return text;
}

struct wf_events_args {
    const char *wf_id;
    int64_t after_id;
    int limit;
    char **rows;
    int n;
};

static void event_rows_clear(struct wf_events_args *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->rows[i]);
    l->n = 0;
}

static int wf_events_body(struct conn *cn, void *arg, struct err *err)
{
    struct wf_events_args *l = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_WF_EVENTS, &st, err);

    if (rc < 0)
        return rc;
    event_rows_clear(l);
    bind_str(cn, st, 1, l->wf_id);
    bind_i64(cn, st, 2, l->after_id);
    bind_i64(cn, st, 3, l->limit);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW || l->n == l->limit)
            break;
        l->rows[l->n++] = event_row_json(st);
    }
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : cat__db_fail(cn, rc, err, "list events");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_wf_events(struct catalog *c, const char *wf_id, int64_t after_id, int limit,
                            int (*cb)(void *ctx, const char *json_row), void *ctx, struct err *err)
{
    struct wf_events_args l = {.wf_id = wf_id, .after_id = after_id, .limit = clamp_limit(limit)};
    int rc;

    l.rows = xcalloc((size_t)l.limit, sizeof(*l.rows));
    rc = cat__run((struct cat_sqlite *)c, 0, wf_events_body, &l, err);
    for (int i = 0; rc == 0 && i < l.n; i++)
        rc = cb(ctx, l.rows[i]);
    event_rows_clear(&l);
    free(l.rows);
    return rc;
}

/* ---- workers' reads ------------------------------------------------------------------------ */

struct cancel_req_args {
    const char *owner;
    struct cancel_req {
        int64_t id;
        int attempt;
    } * rows;
    size_t n, alloc;
};

static int cancel_requested_body(struct conn *cn, void *arg, struct err *err)
{
    struct cancel_req_args *l = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_JOBS_CANCEL_REQUESTED, &st, err);

    if (rc < 0)
        return rc;
    l->n = 0;
    bind_str(cn, st, 1, l->owner);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW)
            break;
        if (l->n == l->alloc) {
            l->alloc = l->alloc ? 2 * l->alloc : 16;
            l->rows = xrealloc(l->rows, l->alloc * sizeof(*l->rows));
        }
        l->rows[l->n].id = sqlite3_column_int64(st, 0);
        l->rows[l->n].attempt = sqlite3_column_int(st, 1);
        l->n++;
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "list cancel requests");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_jobs_cancel_requested(struct catalog *c, const char *owner,
                                        int (*cb)(void *ctx, int64_t id, int attempt), void *ctx,
                                        struct err *err)
{
    struct cancel_req_args l = {.owner = owner};
    int rc = cat__run((struct cat_sqlite *)c, 0, cancel_requested_body, &l, err);

    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = cb(ctx, l.rows[i].id, l.rows[i].attempt);
    free(l.rows);
    return rc;
}

struct next_due_args {
    const char *const *queues;
    size_t n;
    int64_t next_run, next_expiry;
};

/* Steps a query for the first of some times: its value, or INT64_MAX if none. */
static int min_of(struct conn *cn, sqlite3_stmt *st, int64_t *out, struct err *err)
{
    int rc = step(cn, st);

    if (rc == SQLITE_ROW) {
        *out = col_i64_or(st, 0, INT64_MAX);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        *out = INT64_MAX;
        rc = 0;
    } else {
        rc = cat__db_fail(cn, rc, err, "read next due time");
    }
    sqlite3_reset(st);
    return rc;
}

static int next_due_body(struct conn *cn, void *arg, struct err *err)
{
    struct next_due_args *a = arg;
    sqlite3_stmt *st;
    int64_t v = INT64_MAX;
    int rc;

    a->next_run = INT64_MAX;
    for (size_t i = 0; i < a->n; i++) {
        rc = wstmt(cn, W_NEXT_RUN, &st, err);
        if (rc < 0)
            return rc;
        bind_str(cn, st, 1, a->queues[i]);
        rc = min_of(cn, st, &v, err);
        if (rc < 0)
            return rc;
        if (v < a->next_run)
            a->next_run = v;
    }
    rc = wstmt(cn, W_NEXT_EXPIRY, &st, err);
    if (rc < 0)
        return rc;
    return min_of(cn, st, &a->next_expiry, err);
}

static int sqlite_jobs_next_due(struct catalog *c, const char *const *queues, size_t n,
                                int64_t *next_run, int64_t *next_expiry, struct err *err)
{
    struct next_due_args a = {.queues = queues, .n = n};
    int rc = cat__run((struct cat_sqlite *)c, 0, next_due_body, &a, err);

    if (rc == 0) {
        if (next_run)
            *next_run = a.next_run;
        if (next_expiry)
            *next_expiry = a.next_expiry;
    }
    return rc;
}

struct depths_args {
    int64_t now;
    struct cat_queue_depth *rows;
    size_t n, alloc;
};

static int queue_depths_body(struct conn *cn, void *arg, struct err *err)
{
    struct depths_args *l = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_QUEUE_DEPTHS, &st, err);

    if (rc < 0)
        return rc;
    l->n = 0;
    bind_i64(cn, st, 1, l->now);
    for (;;) {
        struct cat_queue_depth *d;

        rc = step(cn, st);
        if (rc != SQLITE_ROW)
            break;
        if (l->n == l->alloc) {
            l->alloc = l->alloc ? 2 * l->alloc : 8;
            l->rows = xrealloc(l->rows, l->alloc * sizeof(*l->rows));
        }
        d = &l->rows[l->n++];
        memset(d, 0, sizeof(*d));
        col_copy(d->queue, sizeof(d->queue), st, 0);
        d->ready = sqlite3_column_int64(st, 1);
        d->delayed = sqlite3_column_int64(st, 2);
        d->leased = sqlite3_column_int64(st, 3);
        d->oldest_ready_ms = sqlite3_column_int64(st, 4);
        d->worker_slots = sqlite3_column_int64(st, 5);
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "read queue depths");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_queue_depths(struct catalog *c, int64_t now,
                               int (*cb)(void *ctx, const struct cat_queue_depth *d), void *ctx,
                               struct err *err)
{
    struct depths_args l = {.now = now};
    int rc = cat__run((struct cat_sqlite *)c, 0, queue_depths_body, &l, err);

    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = cb(ctx, &l.rows[i]);
    free(l.rows);
    return rc;
}

/* ---- effects and workers --------------------------------------------------------------------- */

struct effect_args {
    const char *key;
    int64_t job_id;
    const char *result_in;
    char *result;
};

static int effect_get_body(struct conn *cn, void *arg, struct err *err)
{
    struct effect_args *a = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_EFFECT_GET, &st, err);

    if (rc < 0)
        return rc;
    free(a->result);
    a->result = NULL;
    bind_str(cn, st, 1, a->key);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        a->result = col_dup(st, 0);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = err_set(err, ERR_NOTFOUND, "effect %s is not recorded", a->key);
    } else {
        rc = cat__db_fail(cn, rc, err, "read effect");
    }
    sqlite3_reset(st);
    return rc;
}

static int sqlite_effect_get(struct catalog *c, const char *key, char **result, struct err *err)
{
    struct effect_args a = {.key = key};
    int rc = cat__run((struct cat_sqlite *)c, 0, effect_get_body, &a, err);

    if (rc == 0 && result)
        *result = a.result;
    else
        free(a.result);
    return rc;
}

static int effect_put_body(struct conn *cn, void *arg, struct err *err)
{
    struct effect_args *a = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_EFFECT_PUT, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->key);
    bind_i64_nz(cn, st, 2, a->job_id);
    bind_str(cn, st, 3, a->result_in);
    bind_i64(cn, st, 4, util_now_ms());
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = err_set(err, ERR_CONFLICT, "effect %s is already recorded", a->key);
    else if (rc == SQLITE_CONSTRAINT_CHECK)
        rc = err_set(err, ERR_INVALID, "effect result is not valid JSON");
    else
        rc = cat__db_fail(cn, rc, err, "record effect");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_effect_put(struct catalog *c, const char *key, int64_t job_id, const char *result,
                             struct err *err)
{
    struct effect_args a = {.key = key, .job_id = job_id, .result_in = result};

    return cat__run((struct cat_sqlite *)c, 1, effect_put_body, &a, err);
}

static int worker_put_body(struct conn *cn, void *arg, struct err *err)
{
    const struct cat_worker *w = arg;
    int64_t now = util_now_ms();
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_WORKER_PUT, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, w->id);
    bind_str(cn, st, 2, w->host);
    bind_i64(cn, st, 3, w->pid);
    bind_str(cn, st, 4, w->queues_json ? w->queues_json : "{}");
    bind_i64(cn, st, 5, w->started_at ? w->started_at : now);
    bind_i64(cn, st, 6, w->heartbeat_at ? w->heartbeat_at : now);
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_CHECK)
        rc = err_set(err, ERR_INVALID, "worker queues are not valid JSON");
    else
        rc = cat__db_fail(cn, rc, err, "record worker");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_worker_put(struct catalog *c, const struct cat_worker *w, struct err *err)
{
    return cat__run((struct cat_sqlite *)c, 1, worker_put_body, (void *)w, err);
}

struct worker_del_args {
    enum wf_stmt_id sid;
    const char *id;
    int64_t before;
};

static int worker_delete_body(struct conn *cn, void *arg, struct err *err)
{
    struct worker_del_args *a = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, a->sid, &st, err);

    if (rc < 0)
        return rc;
    if (a->sid == W_WORKER_DELETE)
        bind_str(cn, st, 1, a->id);
    else
        bind_i64(cn, st, 1, a->before);
    rc = wexec(cn, st, err, "delete workers");
    return rc < 0 ? rc : 0;
}

static int sqlite_worker_delete(struct catalog *c, const char *id, struct err *err)
{
    struct worker_del_args a = {.sid = W_WORKER_DELETE, .id = id};

    return cat__run((struct cat_sqlite *)c, 1, worker_delete_body, &a, err);
}

static int sqlite_workers_expire(struct catalog *c, int64_t before, struct err *err)
{
    struct worker_del_args a = {.sid = W_WORKERS_EXPIRE, .before = before};

    return cat__run((struct cat_sqlite *)c, 1, worker_delete_body, &a, err);
}

/* ---- assets, as an ingest updates them --------------------------------------------------------
 */

struct technical_args {
    const char *id, *type, *mime_type, *json;
};

static int asset_technical_body(struct conn *cn, void *arg, struct err *err)
{
    struct technical_args *a = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_ASSET_TECHNICAL, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->id);
    bind_opt(cn, st, 2, a->type);
    bind_opt(cn, st, 3, a->mime_type);
    bind_str(cn, st, 4, a->json);
    bind_i64(cn, st, 5, util_now_ms());
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = sqlite3_changes(cn->db) ? 0 : err_set(err, ERR_NOTFOUND, "asset %s not found", a->id);
    else if (rc == SQLITE_CONSTRAINT_CHECK && strstr(sqlite3_errmsg(cn->db), "technical_metadata"))
        rc = err_set(err, ERR_INVALID, "technical metadata of asset %s is not valid JSON", a->id);
    else if (rc == SQLITE_CONSTRAINT_CHECK)
        rc = err_set(err, ERR_INVALID, "asset type '%s' is not video, audio or image",
                     a->type ? a->type : "");
    else
        rc = cat__db_fail(cn, rc, err, "set technical metadata");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_asset_set_technical(struct catalog *c, const char *id, const char *type,
                                      const char *mime_type, const char *technical_json,
                                      struct err *err)
{
    struct technical_args a = {id, type, mime_type, technical_json};

    return cat__run((struct cat_sqlite *)c, 1, asset_technical_body, &a, err);
}

/*
 * Why a conditional asset update (status = 'processing') changed nothing: the asset is
 * absent (ERR_NOTFOUND) or in another status (ERR_CONFLICT).
 */
static int not_processing(struct conn *cn, const char *id, struct err *err)
{
    char status[16], hash[65];
    int rc = cat__asset_status(cn, id, status, hash, err);

    if (rc < 0)
        return rc;
    return err_set(err, ERR_CONFLICT, "asset %s is %s, not processing", id, status);
}

struct master_args {
    const char *id, *sha256, *key;
    int64_t size;
};

static int asset_master_body(struct conn *cn, void *arg, struct err *err)
{
    struct master_args *a = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_ASSET_MASTER, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->id);
    bind_str(cn, st, 2, a->sha256);
    bind_str(cn, st, 3, a->key);
    bind_i64(cn, st, 4, a->size);
    bind_i64(cn, st, 5, util_now_ms());
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = sqlite3_changes(cn->db) ? 0 : 1;
    else if (rc == SQLITE_CONSTRAINT_UNIQUE && strstr(sqlite3_errmsg(cn->db), "content_hash"))
        rc = err_set(err, ERR_CONFLICT, "another asset holds this content (hash %s)", a->sha256);
    else
        rc = cat__db_fail(cn, rc, err, "set master");
    sqlite3_reset(st);
    return rc == 1 ? not_processing(cn, a->id, err) : rc;
}

static int sqlite_asset_set_master(struct catalog *c, const char *id, const char *sha256,
                                   const char *key, int64_t size, struct err *err)
{
    struct master_args a = {id, sha256, key, size};

    return cat__run((struct cat_sqlite *)c, 1, asset_master_body, &a, err);
}

struct duplicate_args {
    const char *id, *duplicate_of, *reason;
};

static int asset_duplicate_body(struct conn *cn, void *arg, struct err *err)
{
    struct duplicate_args *a = arg;
    sqlite3_stmt *st;
    int rc = wstmt(cn, W_ASSET_DUPLICATE, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->id);
    bind_str(cn, st, 2, a->duplicate_of);
    bind_str(cn, st, 3, a->reason);
    bind_i64(cn, st, 4, util_now_ms());
    rc = wexec(cn, st, err, "mark duplicate");
    if (rc == 0)
        return not_processing(cn, a->id, err);
    return rc < 0 ? rc : 0;
}

static int sqlite_asset_mark_duplicate(struct catalog *c, const char *id, const char *duplicate_of,
                                       const char *reason, struct err *err)
{
    struct duplicate_args a = {id, duplicate_of, reason};

    return cat__run((struct cat_sqlite *)c, 1, asset_duplicate_body, &a, err);
}

const struct catalog_wf_ops cat__sqlite_wf_ops = {
    .tx_run = sqlite_tx_run,
    .wf_insert = sqlite_wf_insert,
    .wf_get = sqlite_wf_get,
    .wf_by_idem = sqlite_wf_by_idem,
    .wf_update = sqlite_wf_update,
    .step_insert = sqlite_step_insert,
    .step_get = sqlite_step_get,
    .step_add_done = sqlite_step_add_done,
    .step_set_status = sqlite_step_set_status,
    .job_insert = sqlite_job_insert,
    .job_get = sqlite_job_get,
    .job_finish = sqlite_job_finish,
    .job_requeue = sqlite_job_requeue,
    .jobs_lease = sqlite_jobs_lease,
    .jobs_expired = sqlite_jobs_expired,
    .jobs_heartbeat = sqlite_jobs_heartbeat,
    .jobs_cancel = sqlite_jobs_cancel,
    .jobs_count = sqlite_jobs_count,
    .jobs_retry = sqlite_jobs_retry,
    .job_outputs = sqlite_job_outputs,
    .event_append = sqlite_event_append,
    .asset_set_status = sqlite_tx_asset_set_status,
    .wf_get_ro = sqlite_wf_get_ro,
    .wf_list = sqlite_wf_list,
    .wf_steps = sqlite_wf_steps,
    .wf_jobs = sqlite_wf_jobs,
    .wf_events = sqlite_wf_events,
    .jobs_cancel_requested = sqlite_jobs_cancel_requested,
    .jobs_next_due = sqlite_jobs_next_due,
    .queue_depths = sqlite_queue_depths,
    .effect_get = sqlite_effect_get,
    .effect_put = sqlite_effect_put,
    .worker_put = sqlite_worker_put,
    .worker_delete = sqlite_worker_delete,
    .workers_expire = sqlite_workers_expire,
    .asset_set_technical = sqlite_asset_set_technical,
    .asset_set_master = sqlite_asset_set_master,
    .asset_mark_duplicate = sqlite_asset_mark_duplicate,
    /* renditions: catalog_sqlite_rend.c */
    .rendition_put = cat__sqlite_rendition_put,
    .rendition_get = cat__sqlite_rendition_get,
    .rendition_find = cat__sqlite_rendition_find,
    .rendition_list = cat__sqlite_rendition_list,
    .renditions_expired = cat__sqlite_renditions_expired,
};
