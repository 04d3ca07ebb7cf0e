/*
 * catalog_sqlite internals shared by catalog_sqlite.c (connections, pool, run(), the
 * asset/upload/user/key/audit operations), catalog_sqlite_wf.c (the workflow engine's
 * operations) and catalog_sqlite_rend.c (renditions). See docs/internals/catalog.md.
 */
#ifndef ACERVO_CATALOG_SQLITE_INT_H
#define ACERVO_CATALOG_SQLITE_INT_H

#include "catalog/catalog.h"
#include "catalog/catalog_int.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define LIST_MAX 1000 /* cap on every list (assets, audit, workflows, events, leases) */

/* Internal result of a body: the database was busy or locked; run() retries. */
#define RC_BUSY (-2)

/* The statements of catalog_sqlite.c (stmt_sql[] there). */
enum stmt_id {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_SAVEPOINT,
    S_RELEASE,
    S_ROLLBACK_TO,
    S_ASSET_INSERT,
    S_ASSET_GET,
    S_ASSET_STATUS,
    S_ASSET_EDITORIAL,
    S_ASSET_SET_STATUS,
    S_ASSET_COMPLETE,
    S_ASSET_DELETE,
    S_ASSET_BY_HASH,
    S_ASSET_HASH_OWNER,
    S_ASSET_EXISTS,
    S_UPLOAD_INSERT,
    S_UPLOAD_GET,
    S_UPLOAD_DELETE,
    S_UPLOAD_EXPIRED,
    S_IDEM_GET,
    S_IDEM_INSERT,
    S_IDEM_EXPIRE,
    S_USER_INSERT,
    S_USER_GET,
    S_USER_COUNT,
    S_USER_EXISTS,
    S_KEY_INSERT,
    S_KEY_BY_TOKEN,
    S_KEY_BY_ACCESS,
    S_KEY_REVOKE,
    S_AUDIT_INSERT,
    S_AUDIT_ALL,
    S_AUDIT_TARGET,
    S_COUNT
};

/* asset_list filters, one bit each; each combination is its own cached statement */
enum { LF_TYPE = 1, LF_STATUS = 2, LF_CREATED_BY = 4, LF_AFTER = 8, LF_COUNT = 16 };

/* The statements of catalog_sqlite_wf.c (wf_sql[] there). */
enum wf_stmt_id {
    W_WF_INSERT,
    W_WF_GET,
    W_WF_BY_IDEM,
    W_WF_UPDATE,
    W_STEP_INSERT,
    W_STEP_GET,
    W_STEP_ADD_DONE,
    W_STEP_SET_STATUS,
    W_JOB_INSERT,
    W_JOB_GET,
    W_JOB_FINISH,
    W_JOB_REQUEUE,
    W_JOBS_LEASE,
    W_JOBS_EXPIRED,
    W_JOBS_HEARTBEAT,
    W_JOBS_CANCEL_READY,
    W_JOBS_CANCEL_LEASED,
    W_JOBS_COUNT,
    W_JOBS_RETRY,
    W_STEPS_RETRY,
    W_JOB_OUTPUTS,
    W_EVENT_INSERT,
    W_WF_STEPS,
    W_WF_JOBS,
    W_WF_EVENTS,
    W_JOBS_CANCEL_REQUESTED,
    W_NEXT_RUN,
    W_NEXT_EXPIRY,
    W_QUEUE_DEPTHS,
    W_EFFECT_GET,
    W_EFFECT_PUT,
    W_WORKER_PUT,
    W_WORKER_DELETE,
    W_WORKERS_EXPIRE,
    W_ASSET_TECHNICAL,
    W_ASSET_MASTER,
    W_ASSET_DUPLICATE,
    W_COUNT
};

/* workflow list filters, one bit each; each combination is its own cached statement */
enum {
    WLF_ASSET = 1,
    WLF_TYPE = 2,
    WLF_STATUS = 4,
    WLF_CREATED_BY = 8,
    WLF_QUEUE = 16,
    WLF_AFTER = 32,
    WLF_COUNT = 64
};

/* The statements of catalog_sqlite_rend.c (rend_sql[] there). */
enum rend_stmt_id { RS_PUT, RS_GET, RS_FIND, RS_LIST, RS_EXPIRED, RS_COUNT };

/** One pooled connection; used by one thread at a time. */
struct conn {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    sqlite3_stmt *list[LF_COUNT];
    sqlite3_stmt *wst[W_COUNT];
    sqlite3_stmt *wlist[WLF_COUNT];
    sqlite3_stmt *rst[RS_COUNT];
    int bind_rc;                /* first failed bind since the last step */
    int busy_timeout_ms;        /* how long the busy handler waits for a lock */
    int64_t busy_since_us;      /* when the current wait began (monotonic) */
    uint64_t rng;               /* xorshift state for the busy handler's jitter */
    struct search_analyzer *an; /* the search functions' analyzer (owned by the db) */
    int64_t idle_since_ms;      /* when it went back to the pool (monotonic) */
    struct conn *next;
};

/* ---- search (catalog_sqlite_searchfn.c) ---- */

#define CAT_RANK_COLS    8
#define CAT_RANK_PHRASES 256
#define CAT_RANK_TIER    1000.0 /* added per title tier: title matches come first */

/** acervo_rank's parameters, passed as a blob: per column and per phrase of the MATCH. */
struct cat_rank_params {
    double weight[CAT_RANK_COLS];   /* BM25 weight of each column (0: not scored) */
    double avg[CAT_RANK_COLS];      /* typical length of each column, in terms */
    double idf[CAT_RANK_PHRASES];   /* rarity of each phrase (0: a key, not scored) */
    int16_t word[CAT_RANK_PHRASES]; /* the query word a phrase stands for, -1: none */
    int32_t nwords;                 /* query words (for the title tier and adjacency) */
    int32_t title_tier;             /* column 0 is the title: add the tier */
};

struct search_analyzer;

/**
 * Registers the index functions (acervo_lang, acervo_terms, acervo_fold, acervo_names,
 * acervo_body, acervo_ai, acervo_keys, acervo_facets, acervo_bulk) and the FTS5 function
 * acervo_rank on db; *an is the analyzer they use (freed with db).
 */
int cat__searchfn_register(sqlite3 *db, int bulk, struct search_analyzer **an, struct err *err);
/**
 * Holds asset_id's search document out of the index (search_hold = 1; always, or only if
 * it has a transcript) and deletes its transcript segments, inside the caller's write.
 */
int cat__transcript_drop(struct conn *cn, const char *asset_id, int always, struct err *err);
/** The planner (catalog_sqlite_plan.c): catalog_search_ops.search and .suggest. */
int cat__sqlite_search(struct catalog *c, const struct cat_search *q, struct cat_search_result *out,
                       struct err *err);
int cat__sqlite_suggest(struct catalog *c, const char *prefix, int limit, enum cat_role role,
                        int (*cb)(void *ctx, const struct cat_suggestion *s), void *ctx,
                        struct err *err);
/** Recency factor of a document age_ms old: 1.0 new, 0.65 at a year, towards 0.3. */
double cat__rank_recency(int64_t age_ms);
/** BM25 inverse document frequency. */
double cat__rank_idf(double docs, double df);

/** The SQLite catalog. */
struct cat_sqlite {
    struct catalog base;
    char *path;
    int version;
    int pool_max;
    int bulk; /* opened for a bulk import: a bigger page cache, synchronous = NORMAL */
    int busy_timeout_ms;
    int busy_bound_ms;
    pthread_mutex_t mu; /* guards idle and nopen */
    pthread_cond_t cv;  /* signalled when a connection is returned */
    struct conn *idle;
    int nopen;
    /* write bodies wait in a queue; one thread at a time (the leader) runs every body
     * queued so far in one transaction, so they share one commit (group commit) */
    pthread_mutex_t wq_mu;
    pthread_cond_t wq_cv; /* signalled when a group is done */
    struct cat__wreq *wq_head;
    struct cat__wreq **wq_tail;
    int wq_leading;
};

/** A write body waiting for (or in) a group. */
struct cat__wreq {
    struct cat__wreq *next;
    int (*fn)(struct conn *cn, void *arg, struct err *err);
    void *arg;
    struct err *err;
    int rc;
    int finished; /* the leader's: the body's result is final (rc) */
    int done;     /* set under wq_mu once the group is over: the waiter may return */
};

/**
 * A unit of work on one connection: 0, -1 with err set, or RC_BUSY. A body may run
 * more than once (after a busy retry), so it must not keep effects outside the database
 * from an earlier run.
 */
typedef int (*body_fn)(struct conn *cn, void *arg, struct err *err);

/*
 * Runs fn on a pooled connection; write bodies run inside BEGIN IMMEDIATE ... COMMIT,
 * together with the write bodies other threads queued meanwhile (each in a savepoint, so
 * one that fails is rolled back alone; all share the commit and its fsync). Busy results
 * roll back and retry with backoff for up to busy_bound_ms.
 */
int cat__run(struct cat_sqlite *c, int write, body_fn fn, void *arg, struct err *err);
/* turns the search indexes' merging back on after an interrupted bulk import */
int cat__search_settle(struct cat_sqlite *c, struct err *err);

/*
 * Maps a failed SQLite result to the caller's error: busy/locked -> RC_BUSY (retried),
 * CHECK/NOT NULL -> ERR_INVALID, other constraints -> ERR_CONFLICT, else ERR_BACKEND.
 * The message is copied at once: sqlite3_errmsg's buffer belongs to the connection.
 */
int cat__db_fail(struct conn *cn, int rc, struct err *err, const char *what);

/** Prepares sql on cn with SQLITE_PREPARE_PERSISTENT (for the statement caches). */
int cat__prepare(struct conn *cn, const char *sql, sqlite3_stmt **out, struct err *err);

/** Reads the status and content hash of asset id; ERR_NOTFOUND if absent. */
int cat__asset_status(struct conn *cn, const char *id, char status[16], char hash[65],
                      struct err *err);

/** The body of asset_set_status, on cn inside an open write transaction. */
int cat__asset_set_status(struct conn *cn, const char *id, const char *from, const char *to,
                          const char *reason, struct err *err);

/** The workflow-engine operations (catalog_sqlite_wf.c). */
extern const struct catalog_wf_ops cat__sqlite_wf_ops;
/** The search-data operations (catalog_sqlite_search.c). */
extern const struct catalog_search_ops cat__sqlite_search_ops;

/* The rendition operations (catalog_sqlite_rend.c), members of cat__sqlite_wf_ops. */
int cat__sqlite_rendition_put(struct catalog *c, struct cat_rendition *r, struct err *err);
int cat__sqlite_rendition_get(struct catalog *c, const char *id, struct cat_rendition *out,
                              struct err *err);
int cat__sqlite_rendition_find(struct catalog *c, const char *asset_id, const char *profile,
                               int version, const char *variant, struct cat_rendition *out,
                               struct err *err);
int cat__sqlite_rendition_list(struct catalog *c, const char *asset_id,
                               int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                               struct err *err);
int cat__sqlite_renditions_expired(struct catalog *c, int64_t now, int limit,
                                   int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                                   struct err *err);

/* ---- binding and columns ------------------------------------------------------------------- */

/* Readies a cached statement for a new use: reset, bindings cleared. */
static inline void stmt_ready(struct conn *cn, sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    cn->bind_rc = SQLITE_OK;
}

static inline void bind_rc(struct conn *cn, int rc)
{
    if (rc != SQLITE_OK && cn->bind_rc == SQLITE_OK)
        cn->bind_rc = rc;
}

/* Binds s as text; NULL binds NULL. */
static inline void bind_str(struct conn *cn, sqlite3_stmt *st, int i, const char *s)
{
    bind_rc(cn, s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i));
}

/* Binds s as text; NULL and "" bind NULL. */
static inline void bind_opt(struct conn *cn, sqlite3_stmt *st, int i, const char *s)
{
    bind_str(cn, st, i, s && *s ? s : NULL);
}

static inline void bind_i64(struct conn *cn, sqlite3_stmt *st, int i, int64_t v)
{
    bind_rc(cn, sqlite3_bind_int64(st, i, v));
}

/* Binds v; 0 binds NULL (times and ids that are "none" when 0). */
static inline void bind_i64_nz(struct conn *cn, sqlite3_stmt *st, int i, int64_t v)
{
    bind_rc(cn, v ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i));
}

static inline void bind_double(struct conn *cn, sqlite3_stmt *st, int i, double v)
{
    bind_rc(cn, sqlite3_bind_double(st, i, v));
}

/* Steps st, reporting a failed bind first. */
static inline int step(struct conn *cn, sqlite3_stmt *st)
{
    if (cn->bind_rc != SQLITE_OK)
        return cn->bind_rc;
    return sqlite3_step(st);
}

/* A heap copy of column i; NULL stays NULL. */
static inline char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    return s ? xstrdup((const char *)s) : NULL;
}

/* A heap copy of a NOT NULL column ("" should SQLite fail to produce it). */
static inline char *col_dup_nn(sqlite3_stmt *st, int i)
{
    char *s = col_dup(st, i);

    return s ? s : xstrdup("");
}

/* Copies column i into dst[n] ("" for NULL). */
static inline void col_copy(char *dst, size_t n, sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);

    (void)snprintf(dst, n, "%s", s ? (const char *)s : "");
}

/* Column i as an integer; NULL reads as dflt. */
static inline int64_t col_i64_or(sqlite3_stmt *st, int i, int64_t dflt)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? dflt : sqlite3_column_int64(st, i);
}

/* Column i as a double; NULL reads as dflt. */
static inline double col_double_or(sqlite3_stmt *st, int i, double dflt)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? dflt : sqlite3_column_double(st, i);
}

#endif
