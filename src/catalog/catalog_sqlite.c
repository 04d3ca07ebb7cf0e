/*
 * catalog_sqlite: the embedded catalog backend, one SQLite database in WAL mode.
 *
 * A small pool of connections (opened lazily) serves many threads; each connection
 * caches its prepared statements. Every operation is a "body" run by run(): reads in
 * autocommit mode, writes inside BEGIN IMMEDIATE ... COMMIT, serialised in this process
 * by a mutex, and retried with backoff when another process holds the database, so
 * SQLITE_BUSY never reaches a caller. See docs/internals/catalog.md.
 */
#include "catalog/catalog_sqlite_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ---- migrations (embedded by src/catalog/meson.build) ------------------------------ */

extern const char cat_migration_0001[];
extern const char cat_migration_0002[];
extern const char cat_migration_0003[];
extern const char cat_migration_0004[];
extern const char cat_migration_0005[];
extern const char cat_migration_0006[];
extern const char cat_migration_0007[];

/** One schema step; applied in version order, each in its own transaction. */
struct migration {
    int version;
    const char *sql;
};

static const struct migration migrations[] = {
    {1, cat_migration_0001}, {2, cat_migration_0002}, {3, cat_migration_0003},
    {4, cat_migration_0004}, {5, cat_migration_0005}, {6, cat_migration_0006},
    {7, cat_migration_0007},
};

/* ---- tuning ------------------------------------------------------------------------ */

#define POOL_MAX          8     /* connections per catalog */
#define POOL_WAIT_MS      30000 /* longest wait for a free connection */
#define BUSY_TIMEOUT_MS   10000 /* the busy handler's wait for a lock, per statement */
#define BUSY_BOUND_MS     30000 /* longest we keep retrying a busy operation */
#define BACKOFF_MAX_MS    100
#define BUSY_SLEEP_MIN_US 50   /* first sleep of the busy handler */
#define BUSY_SLEEP_MAX_US 2000 /* its longest sleep */
#define SWEEP_BATCH       256  /* expired uploads read per connection checkout */
#define IDEM_BATCH        1000 /* expired idempotency keys deleted per transaction */

/* the map each connection asks for (Debian's SQLite maps at most this much of the file) */
#define MAP_BYTES_TEXT "2147418112"
#define MAP_BYTES      2147418112LL

/* ---- prepared statements ------------------------------------------------------------ */

/* the columns an insert sets; the technical columns are filled later (asset_set_technical) */
#define ASSET_INSERT_COLS                                                                          \
    "id, type, status, external_id, title, description, original_filename, mime_type, "            \
    "file_size_bytes, content_hash, master_storage_key, technical_metadata, "                      \
    "editorial_metadata, failure_reason, created_by, created_at, updated_at"
#define ASSET_COLS                                                                                 \
    ASSET_INSERT_COLS ", duration_ms, width, height, bitrate_kbps, frame_rate, video_codec, "      \
                      "audio_codec, container, captured_at, duplicate_of, seq, language, "         \
                      "ai_metadata"
#define UPLOAD_COLS                                                                                \
    "asset_id, upload_id, bucket, key, part_size, part_count, created_by, created_at, "            \
    "expires_at"
#define IDEM_COLS "user_id, key, fingerprint, asset_id, created_at, expires_at"
#define KEY_COLS                                                                                   \
    "id, user_id, name, role, token_hash, s3_access_key, s3_secret, created_at, revoked_at"
#define AUDIT_COLS                                                                                 \
    "id, ts, actor_user_id, actor_key_id, action, target_type, target_id, detail, request_id"
/* the partial unique index's predicate, spelled so the planner can use that index */
#define LIVE_HASH "content_hash = ?1 AND status NOT IN ('failed') AND content_hash IS NOT NULL"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_SAVEPOINT] = "SAVEPOINT body",
    [S_RELEASE] = "RELEASE body",
    [S_ROLLBACK_TO] = "ROLLBACK TO body",
    [S_ASSET_INSERT] =
        "INSERT INTO assets (" ASSET_INSERT_COLS ", seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
        "?8, ?9, ?10, ?11, ?12, coalesce(?13, '{}'), ?14, ?15, ?16, ?17, "
        "(SELECT coalesce(max(seq), 0) + 1 FROM assets))",
    [S_ASSET_GET] = "SELECT " ASSET_COLS " FROM assets WHERE id = ?1",
    [S_ASSET_STATUS] = "SELECT status, content_hash FROM assets WHERE id = ?1",
    [S_ASSET_EDITORIAL] = "UPDATE assets SET title = coalesce(?2, title), "
                          "description = coalesce(?3, description), "
                          "editorial_metadata = coalesce(?4, editorial_metadata), "
                          "updated_at = ?5 WHERE id = ?1",
    [S_ASSET_SET_STATUS] = "UPDATE assets SET status = ?2, failure_reason = ?3, updated_at = ?4 "
                           "WHERE id = ?1",
    [S_ASSET_COMPLETE] = "UPDATE assets SET content_hash = ?2, master_storage_key = ?3, "
                         "file_size_bytes = ?4, status = 'processing', updated_at = ?5 "
                         "WHERE id = ?1",
    [S_ASSET_DELETE] = "DELETE FROM assets WHERE id = ?1",
    [S_ASSET_BY_HASH] = "SELECT " ASSET_COLS " FROM assets WHERE " LIVE_HASH " LIMIT 1",
    [S_ASSET_HASH_OWNER] = "SELECT id FROM assets WHERE " LIVE_HASH " AND id <> ?2 LIMIT 1",
    [S_ASSET_EXISTS] = "SELECT 1 FROM assets WHERE id = ?1",
    [S_UPLOAD_INSERT] = "INSERT INTO uploads (" UPLOAD_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                        "?7, ?8, ?9)",
    [S_UPLOAD_GET] = "SELECT " UPLOAD_COLS " FROM uploads WHERE asset_id = ?1",
    [S_UPLOAD_DELETE] = "DELETE FROM uploads WHERE asset_id = ?1",
    [S_UPLOAD_EXPIRED] = "SELECT " UPLOAD_COLS " FROM uploads WHERE expires_at < ?1 "
                         "AND (expires_at, asset_id) > (?2, ?3) "
                         "ORDER BY expires_at, asset_id LIMIT ?4",
    [S_IDEM_GET] = "SELECT " IDEM_COLS " FROM idempotency_keys WHERE user_id = ?1 AND key = ?2",
    [S_IDEM_INSERT] = "INSERT OR REPLACE INTO idempotency_keys (" IDEM_COLS ") VALUES (?1, ?2, "
                      "?3, ?4, ?5, ?6)",
    [S_IDEM_EXPIRE] = "DELETE FROM idempotency_keys WHERE (user_id, key) IN (SELECT user_id, key "
                      "FROM idempotency_keys WHERE expires_at <= ?1 LIMIT ?2)",
    [S_USER_INSERT] = "INSERT INTO users (id, name, role, created_at) VALUES (?1, ?2, ?3, ?4)",
    [S_USER_GET] = "SELECT id, name, role, created_at FROM users WHERE id = ?1",
    [S_USER_COUNT] = "SELECT count(*) FROM users",
    [S_USER_EXISTS] = "SELECT 1 FROM users WHERE id = ?1",
    [S_KEY_INSERT] = "INSERT INTO api_keys (" KEY_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                     "?8, ?9)",
    [S_KEY_BY_TOKEN] = "SELECT " KEY_COLS " FROM api_keys WHERE token_hash = ?1 "
                       "AND revoked_at IS NULL",
    [S_KEY_BY_ACCESS] = "SELECT " KEY_COLS " FROM api_keys WHERE s3_access_key = ?1 "
                        "AND revoked_at IS NULL",
    [S_KEY_REVOKE] = "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
    [S_AUDIT_INSERT] = "INSERT INTO audit_log (ts, actor_user_id, actor_key_id, action, "
                       "target_type, target_id, detail, request_id) "
                       "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [S_AUDIT_ALL] = "SELECT " AUDIT_COLS " FROM audit_log ORDER BY id DESC LIMIT ?1",
    [S_AUDIT_TARGET] = "SELECT " AUDIT_COLS " FROM audit_log WHERE target_id = ?2 "
                       "ORDER BY id DESC LIMIT ?1",
};

/* ---- errors -------------------------------------------------------------------------- */

int cat__db_fail(struct conn *cn, int rc, struct err *err, const char *what)
{
    int prim = rc & 0xff;

    if (prim == SQLITE_BUSY || prim == SQLITE_LOCKED)
        return RC_BUSY;
    if (rc == SQLITE_CONSTRAINT_CHECK || rc == SQLITE_CONSTRAINT_NOTNULL)
        return err_set(err, ERR_INVALID, "%s: %s", what, sqlite3_errmsg(cn->db));
    if (prim == SQLITE_CONSTRAINT)
        return err_set(err, ERR_CONFLICT, "%s: %s", what, sqlite3_errmsg(cn->db));
    return err_set(err, ERR_BACKEND, "catalog: %s: %s", what, sqlite3_errmsg(cn->db));
}

/* ---- statements, binding, columns ---------------------------------------------------- */

int cat__prepare(struct conn *cn, const char *sql, sqlite3_stmt **out, struct err *err)
{
    int rc = sqlite3_prepare_v3(cn->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);

    if (rc != SQLITE_OK)
        return cat__db_fail(cn, rc, err, "prepare");
    return 0;
}

/* The cached statement id, prepared on first use, reset and with bindings cleared. */
static int stmt_get(struct conn *cn, enum stmt_id id, sqlite3_stmt **out, struct err *err)
{
    if (!cn->st[id]) {
        int rc = cat__prepare(cn, stmt_sql[id], &cn->st[id], err);

        if (rc < 0)
            return rc;
    }
    stmt_ready(cn, cn->st[id]);
    *out = cn->st[id];
    return 0;
}

/* Runs a cached statement returning no rows. */
static int exec_stmt(struct conn *cn, enum stmt_id id, struct err *err, const char *what)
{
    sqlite3_stmt *st;
    int rc = stmt_get(cn, id, &st, err);

    if (rc < 0)
        return rc;
    rc = step(cn, st);
    if (rc != SQLITE_DONE)
        rc = cat__db_fail(cn, rc, err, what);
    else
        rc = 0;
    sqlite3_reset(st);
    return rc;
}

/* 1 if a row with this id exists (st is S_*_EXISTS), 0 if not, or a negative failure. */
static int row_exists(struct conn *cn, enum stmt_id id, const char *key, struct err *err)
{
    sqlite3_stmt *st;
    int rc = stmt_get(cn, id, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, key);
    rc = step(cn, st);
    if (rc == SQLITE_ROW)
        rc = 1;
    else if (rc == SQLITE_DONE)
        rc = 0;
    else
        rc = cat__db_fail(cn, rc, err, "lookup");
    sqlite3_reset(st);
    return rc;
}

/* Fills a (zeroed or released) from a row of ASSET_COLS. */
static void asset_read(sqlite3_stmt *st, struct cat_asset *a)
{
    memset(a, 0, sizeof(*a));
    col_copy(a->id, sizeof(a->id), st, 0);
    col_copy(a->type, sizeof(a->type), st, 1);
    col_copy(a->status, sizeof(a->status), st, 2);
    a->external_id = col_dup(st, 3);
    a->title = col_dup(st, 4);
    a->description = col_dup(st, 5);
    a->original_filename = col_dup_nn(st, 6);
    a->mime_type = col_dup_nn(st, 7);
    a->file_size_bytes = sqlite3_column_int64(st, 8);
    col_copy(a->content_hash, sizeof(a->content_hash), st, 9);
    a->master_storage_key = col_dup(st, 10);
    a->technical_metadata = col_dup(st, 11);
    a->editorial_metadata = col_dup_nn(st, 12);
    a->failure_reason = col_dup(st, 13);
    col_copy(a->created_by, sizeof(a->created_by), st, 14);
    a->created_at = sqlite3_column_int64(st, 15);
    a->updated_at = sqlite3_column_int64(st, 16);
    a->duration_ms = col_i64_or(st, 17, -1);
    a->width = col_i64_or(st, 18, -1);
    a->height = col_i64_or(st, 19, -1);
    a->bitrate_kbps = col_i64_or(st, 20, -1);
    a->frame_rate = col_double_or(st, 21, -1);
    col_copy(a->video_codec, sizeof(a->video_codec), st, 22);
    col_copy(a->audio_codec, sizeof(a->audio_codec), st, 23);
    col_copy(a->container, sizeof(a->container), st, 24);
    col_copy(a->captured_at, sizeof(a->captured_at), st, 25);
    col_copy(a->duplicate_of, sizeof(a->duplicate_of), st, 26);
    a->seq = col_i64_or(st, 27, 0);
    col_copy(a->language, sizeof(a->language), st, 28);
    a->ai_metadata = col_dup_nn(st, 29);
}

static void upload_read(sqlite3_stmt *st, struct cat_upload *u)
{
    memset(u, 0, sizeof(*u));
    col_copy(u->asset_id, sizeof(u->asset_id), st, 0);
    col_copy(u->upload_id, sizeof(u->upload_id), st, 1);
    col_copy(u->bucket, sizeof(u->bucket), st, 2);
    col_copy(u->key, sizeof(u->key), st, 3);
    u->part_size = sqlite3_column_int64(st, 4);
    u->part_count = sqlite3_column_int(st, 5);
    col_copy(u->created_by, sizeof(u->created_by), st, 6);
    u->created_at = sqlite3_column_int64(st, 7);
    u->expires_at = sqlite3_column_int64(st, 8);
}

static enum cat_role role_read(sqlite3_stmt *st, int i)
{
    int r = cat_role_parse((const char *)sqlite3_column_text(st, i));

    return r < 0 ? ROLE_VIEWER : (enum cat_role)r;
}

static void key_read(sqlite3_stmt *st, struct cat_key *k)
{
    memset(k, 0, sizeof(*k));
    col_copy(k->id, sizeof(k->id), st, 0);
    col_copy(k->user_id, sizeof(k->user_id), st, 1);
    col_copy(k->name, sizeof(k->name), st, 2);
    k->role = role_read(st, 3);
    col_copy(k->token_hash, sizeof(k->token_hash), st, 4);
    col_copy(k->s3_access_key, sizeof(k->s3_access_key), st, 5);
    col_copy(k->s3_secret, sizeof(k->s3_secret), st, 6);
    k->created_at = sqlite3_column_int64(st, 7);
    k->revoked_at = sqlite3_column_int64(st, 8);
}

/* ---- connections and the pool ------------------------------------------------------- */

static void conn_close(struct conn *cn)
{
    if (!cn)
        return;
    for (size_t i = 0; i < ARRAY_LEN(cn->st); i++)
        sqlite3_finalize(cn->st[i]);
    for (size_t i = 0; i < ARRAY_LEN(cn->list); i++)
        sqlite3_finalize(cn->list[i]);
    for (size_t i = 0; i < ARRAY_LEN(cn->wst); i++)
        sqlite3_finalize(cn->wst[i]);
    for (size_t i = 0; i < ARRAY_LEN(cn->wlist); i++)
        sqlite3_finalize(cn->wlist[i]);
    for (size_t i = 0; i < ARRAY_LEN(cn->rst); i++)
        sqlite3_finalize(cn->rst[i]);
    sqlite3_close(cn->db);
    free(cn);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Sleeps before retry number attempt: exponential up to BACKOFF_MAX_MS, with jitter. */
static void backoff(int attempt)
{
    int cap = attempt < 7 ? 1 << attempt : BACKOFF_MAX_MS;
    unsigned char r;

    if (cap > BACKOFF_MAX_MS)
        cap = BACKOFF_MAX_MS;
    util_random(&r, 1);
    sleep_ms(1 + cap / 2 + (int)r % (cap / 2 + 1));
}

/* A monotonic clock in microseconds. */
static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * SQLite's busy handler for our connections. The default one (sqlite3_busy_timeout)
 * sleeps 1, 2, 5, 10 ... 100 ms, so a lock another process holds for a millisecond costs
 * a waiter several; this one polls in short jittered sleeps (BUSY_SLEEP_MIN_US doubling
 * to BUSY_SLEEP_MAX_US), so contending processes take the lock within a fraction of a
 * millisecond of its release. Gives up (SQLITE_BUSY, retried by run()) after
 * busy_timeout_ms.
 */
static int busy_wait(void *arg, int count)
{
    struct conn *cn = arg;
    int64_t now = mono_us();
    int64_t cap = BUSY_SLEEP_MAX_US;
    uint64_t x = cn->rng;

    if (count == 0)
        cn->busy_since_us = now;
    else if (now - cn->busy_since_us >= (int64_t)cn->busy_timeout_ms * 1000)
        return 0;
    if (count < 8 && ((int64_t)BUSY_SLEEP_MIN_US << count) < cap)
        cap = (int64_t)BUSY_SLEEP_MIN_US << count;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    cn->rng = x;
    sleep_us(cap / 2 + (int64_t)(x % (uint64_t)(cap / 2 + 1)));
    return 1;
}

/* Runs a one-row PRAGMA and copies its text result into out[n]; retries while busy. */
static int pragma_text(struct cat_sqlite *c, struct conn *cn, const char *sql, char *out, size_t n,
                       struct err *err)
{
    int64_t deadline = util_mono_ms() + c->busy_bound_ms;
    int rc;

    for (int attempt = 0;; attempt++) {
        sqlite3_stmt *st = NULL;

        rc = cat__prepare(cn, sql, &st, err);
        if (rc == 0) {
            rc = sqlite3_step(st);
            if (rc == SQLITE_ROW) {
                col_copy(out, n, st, 0);
                rc = 0;
            } else {
                rc = cat__db_fail(cn, rc, err, sql);
            }
        }
        sqlite3_finalize(st);
        if (rc != RC_BUSY)
            return rc;
        if (util_mono_ms() >= deadline)
            return err_set(err, ERR_BACKEND, "catalog: '%s' stayed busy for %d ms", sql,
                           c->busy_bound_ms);
        backoff(attempt);
    }
}

/* Opens and configures one connection. */
/* page cache of every connection this process opens (cat_sqlite_set_cache), KiB; 0: 16 MiB */
static long cache_kib;

static int conn_open(struct cat_sqlite *c, struct conn **out, struct err *err)
{
    /* mmap: the search index is read in place, shared by every connection and process */
    static const char *const setup = "PRAGMA foreign_keys = ON;"
                                     "PRAGMA synchronous = FULL;"
                                     "PRAGMA journal_size_limit = 67108864;"
                                     "PRAGMA mmap_size = " MAP_BYTES_TEXT ";"
                                     "PRAGMA cache_size = -16384;";
    static const char *const bulk = "PRAGMA synchronous = NORMAL;"
                                    "PRAGMA temp_store = MEMORY;"
                                    "PRAGMA wal_autocheckpoint = 65536;"
                                    "PRAGMA cache_size = -524288;";
    struct conn *cn = xcalloc(1, sizeof(*cn));
    char mode[16];
    int rc;

    rc = sqlite3_open_v2(c->path, &cn->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err_set(err, ERR_BACKEND, "cannot open catalog %s: %s", c->path,
                cn->db ? sqlite3_errmsg(cn->db) : sqlite3_errstr(rc));
        goto out_close;
    }
    sqlite3_extended_result_codes(cn->db, 1);
    cn->busy_timeout_ms = c->busy_timeout_ms;
    util_random(&cn->rng, sizeof(cn->rng));
    cn->rng |= 1; /* xorshift state must not be 0 */
    sqlite3_busy_handler(cn->db, busy_wait, cn);
    sqlite3_db_config(cn->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    if (cat__searchfn_register(cn->db, c->bulk, &cn->an, err) < 0)
        goto out_close;
    if (pragma_text(c, cn, "PRAGMA journal_mode = WAL", mode, sizeof(mode), err) < 0)
        goto out_close;
    if (strcmp(mode, "wal") != 0) {
        err_set(err, ERR_BACKEND, "catalog %s cannot use WAL journal mode (got '%s')", c->path,
                mode);
        goto out_close;
    }
    rc = sqlite3_exec(cn->db, setup, NULL, NULL, NULL);
    if (rc == SQLITE_OK && cache_kib > 0) {
        char sql[64];

        (void)snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%ld", cache_kib);
        rc = sqlite3_exec(cn->db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && c->bulk)
        rc = sqlite3_exec(cn->db, bulk, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        err_set(err, ERR_BACKEND, "cannot configure catalog %s: %s", c->path,
                sqlite3_errmsg(cn->db));
        goto out_close;
    }
    *out = cn;
    return 0;

out_close:
    conn_close(cn);
    return -1;
}

void cat_sqlite_set_cache(long bytes)
{
    cache_kib = bytes > 0 ? bytes / 1024 : 0;
}

/* cat_sqlite_set_memory's limit, bytes (0: none) */
static long memory_limit;

/*
 * Sets SQLite's soft heap limit: memory_limit, plus, for a catalog at path larger than the
 * map, what is past the map up to one connection's page cache (searches read those pages
 * through the cache; a 1M-asset catalog is 5 GB).
 */
static void memory_apply(const char *path)
{
    sqlite3_int64 limit = memory_limit;
    struct stat sb;

    if (limit > 0 && path && stat(path, &sb) == 0 && sb.st_size > MAP_BYTES) {
        sqlite3_int64 past = (sqlite3_int64)sb.st_size - MAP_BYTES;
        sqlite3_int64 cache = cache_kib > 0 ? (sqlite3_int64)cache_kib * 1024 : 16 << 20;

        limit += past < cache ? past : cache;
    }
    (void)sqlite3_soft_heap_limit64(limit);
}

void cat_sqlite_set_memory(long bytes)
{
    memory_limit = bytes > 0 ? bytes : 0;
    memory_apply(NULL);
}

/* Takes an idle connection, opens one if the pool has room, or waits for one. */
static struct conn *pool_get(struct cat_sqlite *c, struct err *err)
{
    struct timespec deadline;
    struct conn *cn = NULL;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += POOL_WAIT_MS / 1000;
    pthread_mutex_lock(&c->mu);
    while (!c->idle && c->nopen >= c->pool_max) {
        int rc = pthread_cond_timedwait(&c->cv, &c->mu, &deadline);

        if (rc == ETIMEDOUT && !c->idle && c->nopen >= c->pool_max) {
            pthread_mutex_unlock(&c->mu);
            err_set(err, ERR_BACKEND, "catalog: all %d connections stayed in use for %d s",
                    c->pool_max, POOL_WAIT_MS / 1000);
            return NULL;
        }
    }
    if (c->idle) {
        cn = c->idle;
        c->idle = cn->next;
        pthread_mutex_unlock(&c->mu);
        cn->next = NULL;
        return cn;
    }
    c->nopen++;
    pthread_mutex_unlock(&c->mu);
    if (conn_open(c, &cn, err) < 0) {
        pthread_mutex_lock(&c->mu);
        c->nopen--;
        pthread_cond_signal(&c->cv);
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    return cn;
}

/* Returns a connection to the pool with no statement running and no transaction open. */
static void pool_put(struct cat_sqlite *c, struct conn *cn)
{
    sqlite3_stmt *st = NULL;

    while ((st = sqlite3_next_stmt(cn->db, st)) != NULL)
        if (sqlite3_stmt_busy(st))
            sqlite3_reset(st);
    if (!sqlite3_get_autocommit(cn->db))
        sqlite3_exec(cn->db, "ROLLBACK", NULL, NULL, NULL);
    cn->idle_since_ms = util_mono_ms();
    pthread_mutex_lock(&c->mu);
    cn->next = c->idle;
    c->idle = cn;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/*
 * Closes the connections idle for idle_ms or more. The pool hands out the most recently
 * returned connection first, so under a steady load the same few stay warm and the rest
 * go idle: a busy spell's extra connections (each with its page cache and its own map of
 * the catalog file) are given back once it is over.
 */
static void sqlite_trim(struct catalog *cat, int64_t idle_ms)
{
    struct cat_sqlite *c = (struct cat_sqlite *)cat;
    int64_t now = util_mono_ms();
    struct conn *gone = NULL;

    pthread_mutex_lock(&c->mu);
    for (struct conn **pp = &c->idle; *pp;) {
        struct conn *cn = *pp;

        if (now - cn->idle_since_ms < idle_ms) {
            pp = &cn->next;
            continue;
        }
        *pp = cn->next;
        cn->next = gone;
        gone = cn;
        c->nopen--;
    }
    pthread_cond_broadcast(&c->cv); /* a waiter may open one now */
    pthread_mutex_unlock(&c->mu);
    while (gone) {
        struct conn *cn = gone;

        gone = cn->next;
        conn_close(cn);
    }
}

/* ---- running bodies ------------------------------------------------------------------- */

#define GROUP_MAX 64 /* write bodies in one transaction at most */

/* ends a group's bodies that are not done yet with rc, copying err into theirs */
static void group_fail(struct cat__wreq *g, int rc, const struct err *err)
{
    for (; g; g = g->next) {
        if (g->finished)
            continue;
        if (g->err && err && g->err != err)
            *g->err = *err;
        g->rc = rc;
        g->finished = 1;
    }
}

/*
 * One attempt at a group: BEGIN IMMEDIATE, each body not done yet in a savepoint (alone:
 * none), COMMIT. A body that fails (any result but 0, as a lone body's has always been)
 * is rolled back to its savepoint and done with that result; the others commit. Returns 0
 * when every body is done, RC_BUSY to retry the group (nothing committed), or -1 with err
 * for a failure of the transaction itself.
 */
static int group_try(struct conn *cn, struct cat__wreq *g, int alone, struct err *err)
{
    int rc = exec_stmt(cn, S_BEGIN, err, "begin");

    if (rc < 0)
        return rc;
    for (struct cat__wreq *r = g; r; r = r->next) {
        int brc;

        if (r->finished)
            continue;
        if (!alone && (rc = exec_stmt(cn, S_SAVEPOINT, err, "savepoint")) < 0)
            goto out_rollback;
        brc = r->fn(cn, r->arg, r->err);
        if (brc == RC_BUSY || sqlite3_get_autocommit(cn->db)) {
            /* the transaction is gone or cannot go on: the group runs again (a body
             * that failed on its own while taking it down is done with its failure) */
            if (brc != RC_BUSY && brc != 0) {
                r->rc = brc;
                r->finished = 1;
            }
            rc = RC_BUSY;
            goto out_rollback;
        }
        if (brc != 0) {
            r->rc = brc;
            r->finished = 1;
            if (alone)
                goto out_rollback;
            if ((rc = exec_stmt(cn, S_ROLLBACK_TO, err, "rollback to savepoint")) < 0)
                goto out_rollback;
        }
        if (!alone && (rc = exec_stmt(cn, S_RELEASE, err, "release savepoint")) < 0)
            goto out_rollback;
    }
    rc = exec_stmt(cn, S_COMMIT, err, "commit");
    if (rc < 0)
        goto out_rollback;
    for (struct cat__wreq *r = g; r; r = r->next) {
        if (!r->finished) {
            r->rc = 0;
            r->finished = 1;
        }
    }
    return 0;

out_rollback:
    if (!sqlite3_get_autocommit(cn->db))
        exec_stmt(cn, S_ROLLBACK, NULL, "rollback");
    if (alone && g->finished)
        return 0; /* the lone body's own failure, recorded */
    return rc;
}

/* runs a group to its end: retried while busy for up to busy_bound_ms */
static void group_run(struct cat_sqlite *c, struct cat__wreq *g)
{
    int64_t deadline = util_mono_ms() + c->busy_bound_ms;
    struct conn *cn;
    struct err e = {0};
    int alone = g->next == NULL;
    int rc;

    cn = pool_get(c, &e);
    if (!cn) {
        group_fail(g, -1, &e);
        return;
    }
    for (int attempt = 0;; attempt++) {
        rc = group_try(cn, g, alone, &e);
        if (rc != RC_BUSY)
            break;
        if (util_mono_ms() >= deadline) {
            err_set(&e, ERR_BACKEND, "catalog is held by another writer; gave up after %d ms",
                    c->busy_bound_ms);
            rc = -1;
            break;
        }
        backoff(attempt);
    }
    if (rc < 0)
        group_fail(g, -1, &e);
    pool_put(c, cn);
}

/*
 * A write body: queued, then run by whichever waiting thread leads next, with the bodies
 * queued before it, in one transaction. The leader takes up to GROUP_MAX bodies in order;
 * others wait until theirs is done or no group runs (then one of them leads).
 */
static int run_write(struct cat_sqlite *c, body_fn fn, void *arg, struct err *err)
{
    struct cat__wreq r = {NULL, fn, arg, err, 0, 0, 0};

    pthread_mutex_lock(&c->wq_mu);
    *c->wq_tail = &r;
    c->wq_tail = &r.next;
    while (!r.done) {
        struct cat__wreq *g;
        struct cat__wreq **end;
        int n = 1;

        if (c->wq_leading) {
            pthread_cond_wait(&c->wq_cv, &c->wq_mu);
            continue;
        }
        /* lead: take the queue's head (ours is in it, it waits until done) */
        c->wq_leading = 1;
        g = c->wq_head;
        end = &g->next;
        while (*end && n < GROUP_MAX) {
            end = &(*end)->next;
            n++;
        }
        c->wq_head = *end;
        if (!c->wq_head)
            c->wq_tail = &c->wq_head;
        *end = NULL;
        pthread_mutex_unlock(&c->wq_mu);
        group_run(c, g);
        pthread_mutex_lock(&c->wq_mu);
        for (struct cat__wreq *x = g; x; x = x->next)
            x->done = 1; /* published under the lock: each waiter reads its own */
        c->wq_leading = 0;
        pthread_cond_broadcast(&c->wq_cv);
    }
    pthread_mutex_unlock(&c->wq_mu);
    return r.rc;
}

int cat__run(struct cat_sqlite *c, int write, body_fn fn, void *arg, struct err *err)
{
    int64_t deadline = util_mono_ms() + c->busy_bound_ms;
    struct conn *cn;
    int rc;

    if (write)
        return run_write(c, fn, arg, err);
    cn = pool_get(c, err);
    if (!cn)
        return -1;
    for (int attempt = 0;; attempt++) {
        rc = fn(cn, arg, err);
        if (rc != RC_BUSY)
            break;
        if (util_mono_ms() >= deadline) {
            rc = err_set(err, ERR_BACKEND, "catalog is held by another writer; gave up after %d ms",
                         c->busy_bound_ms);
            break;
        }
        backoff(attempt);
    }
    pool_put(c, cn);
    return rc;
}

/* ---- migrations ------------------------------------------------------------------------ */

static int migrations_table_body(struct conn *cn, void *arg, struct err *err)
{
    int rc;

    (void)arg;
    rc = sqlite3_exec(cn->db,
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      "version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL) STRICT",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return cat__db_fail(cn, rc, err, "create schema_migrations");
    return 0;
}

static int schema_version_body(struct conn *cn, void *arg, struct err *err)
{
    sqlite3_stmt *st = NULL;
    int *version = arg;
    int rc = cat__prepare(cn, "SELECT coalesce(max(version), 0) FROM schema_migrations", &st, err);

    if (rc < 0)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *version = sqlite3_column_int(st, 0);
        rc = 0;
    } else {
        rc = cat__db_fail(cn, rc, err, "read schema version");
    }
    sqlite3_finalize(st);
    return rc;
}

static int migration_body(struct conn *cn, void *arg, struct err *err)
{
    const struct migration *m = arg;
    sqlite3_stmt *st = NULL;
    int rc = cat__prepare(cn, "SELECT 1 FROM schema_migrations WHERE version = ?1", &st, err);

    if (rc < 0)
        return rc;
    sqlite3_bind_int(st, 1, m->version);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (rc == SQLITE_ROW)
        return 0; /* applied meanwhile by another process */
    if (rc != SQLITE_DONE)
        return cat__db_fail(cn, rc, err, "read schema_migrations");
    rc = sqlite3_exec(cn->db, m->sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
            return RC_BUSY;
        return err_set(err, ERR_BACKEND, "catalog migration %04d failed: %s", m->version,
                       sqlite3_errmsg(cn->db));
    }
    rc = cat__prepare(cn, "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                      &st, err);
    if (rc < 0)
        return rc;
    sqlite3_bind_int(st, 1, m->version);
    sqlite3_bind_int64(st, 2, util_now_ms());
    rc = sqlite3_step(st);
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "record migration");
    sqlite3_finalize(st);
    return rc;
}

/* Applies every migration newer than the database's version, one transaction each. */
static int migrate(struct cat_sqlite *c, struct err *err)
{
    int known = migrations[ARRAY_LEN(migrations) - 1].version;
    int version = 0;

    if (cat__run(c, 1, migrations_table_body, NULL, err) < 0)
        return -1;
    if (cat__run(c, 0, schema_version_body, &version, err) < 0)
        return -1;
    if (version > known)
        return err_set(err, ERR_BACKEND,
                       "catalog %s has schema version %d, newer than this acervod knows (%d)",
                       c->path, version, known);
    for (size_t i = 0; i < ARRAY_LEN(migrations); i++) {
        if (migrations[i].version <= version)
            continue;
        if (cat__run(c, 1, migration_body, (void *)&migrations[i], err) < 0)
            return -1;
        log_write(LOG_INFO, "catalog", "applied migration %04d", migrations[i].version);
    }
    if (cat__run(c, 0, schema_version_body, &c->version, err) < 0)
        return -1;
    return 0;
}

/* ---- assets ---------------------------------------------------------------------------- */

/* The conflict of a write that tripped the live content-hash index. */
static int hash_conflict(struct conn *cn, const char *id, const char *hash, struct err *err)
{
    sqlite3_stmt *st;
    char other[37] = "";

    if (stmt_get(cn, S_ASSET_HASH_OWNER, &st, NULL) == 0) {
        bind_str(cn, st, 1, hash);
        bind_str(cn, st, 2, id);
        if (step(cn, st) == SQLITE_ROW)
            col_copy(other, sizeof(other), st, 0);
        sqlite3_reset(st);
    }
    if (other[0])
        return err_set(err, ERR_CONFLICT, "another asset (%s) already has content hash %s", other,
                       hash);
    return err_set(err, ERR_CONFLICT, "another asset already has content hash %s", hash);
}

/* Names the constraint a write to assets violated. */
static int asset_fail(struct conn *cn, int rc, const struct cat_asset *a, const char *hash,
                      struct err *err)
{
    const char *msg = sqlite3_errmsg(cn->db);

    if ((rc & 0xff) != SQLITE_CONSTRAINT)
        return cat__db_fail(cn, rc, err, "write asset");
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || strstr(msg, "assets.id"))
        return err_set(err, ERR_CONFLICT, "asset %s already exists", a->id);
    if (strstr(msg, "assets.external_id"))
        return err_set(err, ERR_CONFLICT, "another asset already has external id %s",
                       a->external_id ? a->external_id : "");
    if (strstr(msg, "assets.content_hash"))
        return hash_conflict(cn, a->id, hash, err);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        return err_set(err, ERR_CONFLICT, "asset %s is still referenced (distributions)", a->id);
    return cat__db_fail(cn, rc, err, "write asset");
}

static int asset_create_body(struct conn *cn, void *arg, struct err *err)
{
    const struct cat_asset *a = arg;
    sqlite3_stmt *st;
    int64_t now = util_now_ms();
    int rc;

    if (a->created_by[0]) {
        rc = row_exists(cn, S_USER_EXISTS, a->created_by, err);
        if (rc < 0)
            return rc;
        if (rc == 0)
            return err_set(err, ERR_NOTFOUND, "user %s not found", a->created_by);
    }
    rc = stmt_get(cn, S_ASSET_INSERT, &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, a->id);
    bind_str(cn, st, 2, a->type);
    bind_str(cn, st, 3, a->status);
    bind_opt(cn, st, 4, a->external_id);
    bind_str(cn, st, 5, a->title);
    bind_str(cn, st, 6, a->description);
    bind_str(cn, st, 7, a->original_filename);
    bind_str(cn, st, 8, a->mime_type);
    bind_i64(cn, st, 9, a->file_size_bytes);
    bind_opt(cn, st, 10, a->content_hash);
    bind_opt(cn, st, 11, a->master_storage_key);
    bind_opt(cn, st, 12, a->technical_metadata);
    bind_opt(cn, st, 13, a->editorial_metadata);
    bind_str(cn, st, 14, a->failure_reason);
    bind_opt(cn, st, 15, a->created_by);
    bind_i64(cn, st, 16, a->created_at ? a->created_at : now);
    bind_i64(cn, st, 17, a->updated_at ? a->updated_at : now);
    rc = step(cn, st);
    rc = rc == SQLITE_DONE ? 0 : asset_fail(cn, rc, a, a->content_hash, err);
    sqlite3_reset(st);
    return rc;
}

static int sqlite_asset_create(struct catalog *c, const struct cat_asset *a, struct err *err)
{
    return cat__run((struct cat_sqlite *)c, 1, asset_create_body, (void *)a, err);
}

/* Reads asset id into out (released first) using statement sid bound with key. */
static int asset_fetch(struct conn *cn, enum stmt_id sid, const char *key, struct cat_asset *out,
                       struct err *err)
{
    sqlite3_stmt *st;
    int rc = stmt_get(cn, sid, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, key);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        cat_asset_release(out);
        asset_read(st, out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = sid == S_ASSET_BY_HASH
                 ? err_set(err, ERR_NOTFOUND, "no live asset has content hash %s", key)
                 : err_set(err, ERR_NOTFOUND, "asset %s not found", key);
    } else {
        rc = cat__db_fail(cn, rc, err, "read asset");
    }
    sqlite3_reset(st);
    return rc;
}

struct asset_get_args {
    const char *key;
    struct cat_asset *out;
};

static int asset_get_body(struct conn *cn, void *arg, struct err *err)
{
    struct asset_get_args *g = arg;

    return asset_fetch(cn, S_ASSET_GET, g->key, g->out, err);
}

static int asset_by_hash_body(struct conn *cn, void *arg, struct err *err)
{
    struct asset_get_args *g = arg;

    return asset_fetch(cn, S_ASSET_BY_HASH, g->key, g->out, err);
}

static int sqlite_asset_get(struct catalog *c, const char *id, struct cat_asset *out,
                            struct err *err)
{
    /* key may point into out (e.g. out->id): copy it before out is cleared */
    struct asset_get_args g = {.key = xstrdup(id), .out = out};
    int rc;

    memset(out, 0, sizeof(*out));
    rc = cat__run((struct cat_sqlite *)c, 0, asset_get_body, &g, err);
    free((char *)g.key);
    return rc;
}

static int sqlite_asset_find_by_hash(struct catalog *c, const char *sha256, struct cat_asset *out,
                                     struct err *err)
{
    /* key may point into out (e.g. out->id): copy it before out is cleared */
    struct asset_get_args g = {.key = xstrdup(sha256), .out = out};
    int rc;

    memset(out, 0, sizeof(*out));
    rc = cat__run((struct cat_sqlite *)c, 0, asset_by_hash_body, &g, err);
    free((char *)g.key);
    return rc;
}

struct editorial_args {
    const char *id, *title, *description, *editorial_json;
    struct cat_asset *out;
};

static int asset_editorial_body(struct conn *cn, void *arg, struct err *err)
{
    struct editorial_args *e = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_ASSET_EDITORIAL, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, e->id);
    bind_str(cn, st, 2, e->title);
    bind_str(cn, st, 3, e->description);
    bind_str(cn, st, 4, e->editorial_json);
    bind_i64(cn, st, 5, util_now_ms());
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = sqlite3_changes(cn->db) ? 0 : err_set(err, ERR_NOTFOUND, "asset %s not found", e->id);
    else if (rc == SQLITE_CONSTRAINT_CHECK)
        rc = err_set(err, ERR_INVALID, "editorial metadata of asset %s is not valid JSON", e->id);
    else
        rc = cat__db_fail(cn, rc, err, "update asset");
    sqlite3_reset(st);
    if (rc == 0 && e->out)
        rc = asset_fetch(cn, S_ASSET_GET, e->id, e->out, err);
    return rc;
}

static int sqlite_asset_update_editorial(struct catalog *c, const char *id, const char *title,
                                         const char *description, const char *editorial_json,
                                         struct cat_asset *out, struct err *err)
{
    /* id may point into out (out->id): copy it before out is cleared */
    struct editorial_args e = {xstrdup(id), title, description, editorial_json, out};
    int rc;

    if (out)
        memset(out, 0, sizeof(*out));
    rc = cat__run((struct cat_sqlite *)c, 1, asset_editorial_body, &e, err);
    if (rc < 0)
        cat_asset_release(out);
    free((char *)e.id);
    return rc;
}

/* Reads the status and content hash of asset id; ERR_NOTFOUND if absent. */
int cat__asset_status(struct conn *cn, const char *id, char status[16], char hash[65],
                      struct err *err)
{
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_ASSET_STATUS, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, id);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        col_copy(status, 16, st, 0);
        col_copy(hash, 65, st, 1);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = err_set(err, ERR_NOTFOUND, "asset %s not found", id);
    } else {
        rc = cat__db_fail(cn, rc, err, "read asset status");
    }
    sqlite3_reset(st);
    return rc;
}

struct status_args {
    const char *id, *from, *to, *reason;
};

int cat__asset_set_status(struct conn *cn, const char *id, const char *from, const char *to,
                          const char *reason, struct err *err)
{
    struct cat_asset a = {0};
    char status[16], hash[65];
    sqlite3_stmt *st;
    int rc = cat__asset_status(cn, id, status, hash, err);

    if (rc < 0)
        return rc;
    if (from && strcmp(status, from) != 0)
        return err_set(err, ERR_CONFLICT, "asset %s is %s, not %s", id, status, from);
    rc = stmt_get(cn, S_ASSET_SET_STATUS, &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, id);
    bind_str(cn, st, 2, to);
    bind_str(cn, st, 3, reason);
    bind_i64(cn, st, 4, util_now_ms());
    rc = step(cn, st);
    (void)snprintf(a.id, sizeof(a.id), "%s", id);
    rc = rc == SQLITE_DONE ? 0 : asset_fail(cn, rc, &a, hash, err);
    sqlite3_reset(st);
    return rc;
}

static int asset_set_status_body(struct conn *cn, void *arg, struct err *err)
{
    struct status_args *s = arg;

    return cat__asset_set_status(cn, s->id, s->from, s->to, s->reason, err);
}

static int sqlite_asset_set_status(struct catalog *c, const char *id, const char *from,
                                   const char *to, const char *reason, struct err *err)
{
    struct status_args s = {id, from, to, reason};

    return cat__run((struct cat_sqlite *)c, 1, asset_set_status_body, &s, err);
}

struct complete_args {
    const char *id, *sha256, *storage_key;
    int64_t size;
};

static int asset_complete_body(struct conn *cn, void *arg, struct err *err)
{
    struct complete_args *m = arg;
    struct cat_asset a = {0};
    char status[16], hash[65];
    sqlite3_stmt *st;
    int rc = cat__asset_status(cn, m->id, status, hash, err);

    if (rc < 0)
        return rc;
    if (strcmp(status, ASSET_UPLOADING) != 0)
        return err_set(err, ERR_CONFLICT, "asset %s is %s, not uploading", m->id, status);
    rc = stmt_get(cn, S_ASSET_COMPLETE, &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, m->id);
    bind_str(cn, st, 2, m->sha256);
    bind_str(cn, st, 3, m->storage_key);
    bind_i64(cn, st, 4, m->size);
    bind_i64(cn, st, 5, util_now_ms());
    rc = step(cn, st);
    (void)snprintf(a.id, sizeof(a.id), "%s", m->id);
    rc = rc == SQLITE_DONE ? 0 : asset_fail(cn, rc, &a, m->sha256, err);
    sqlite3_reset(st);
    if (rc < 0)
        return rc;
    rc = stmt_get(cn, S_UPLOAD_DELETE, &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, m->id);
    rc = step(cn, st);
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "delete upload");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_asset_complete(struct catalog *c, const char *id, const char *sha256,
                                 const char *storage_key, int64_t size, struct err *err)
{
    struct complete_args m = {id, sha256, storage_key, size};

    return cat__run((struct cat_sqlite *)c, 1, asset_complete_body, &m, err);
}

struct delete_args {
    const char *id, *status;
};

static int asset_delete_body(struct conn *cn, void *arg, struct err *err)
{
    struct delete_args *d = arg;
    struct cat_asset a = {0};
    sqlite3_stmt *st;
    int rc;

    if (d->status) {
        char status[16], hash[65];
        if (cat__asset_status(cn, d->id, status, hash, err) < 0)
            return -1;
        if (strcmp(status, d->status) != 0)
            return err_set(err, ERR_CONFLICT, "asset %s is %s, not %s", d->id, status, d->status);
    }
    if (cat__transcript_drop(cn, d->id, 0, err) < 0)
        return -1;
    rc = stmt_get(cn, S_ASSET_DELETE, &st, err);
    if (rc < 0)
        return rc;
    (void)snprintf(a.id, sizeof(a.id), "%s", d->id);
    bind_str(cn, st, 1, d->id);
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = sqlite3_changes(cn->db) ? 0 : err_set(err, ERR_NOTFOUND, "asset %s not found", a.id);
    else
        rc = asset_fail(cn, rc, &a, NULL, err);
    sqlite3_reset(st);
    return rc;
}

static int sqlite_asset_delete(struct catalog *c, const char *id, const char *status,
                               struct err *err)
{
    struct delete_args d = {id, status};

    return cat__run((struct cat_sqlite *)c, 1, asset_delete_body, &d, err);
}

/* ---- asset list ------------------------------------------------------------------------ */

struct asset_list_args {
    const struct cat_asset_filter *f;
    unsigned mask;
    int limit;
    struct cat_asset *rows;
    size_t n, alloc;
};

static void asset_rows_release(struct asset_list_args *l)
{
    for (size_t i = 0; i < l->n; i++)
        cat_asset_release(&l->rows[i]);
    l->n = 0;
}

/* The cached list statement for this combination of filters. */
static int list_stmt(struct conn *cn, unsigned mask, sqlite3_stmt **out, struct err *err)
{
    struct buf sql;
    int rc = 0;

    if (!cn->list[mask]) {
        buf_init(&sql, 0);
        buf_adds(&sql, "SELECT " ASSET_COLS " FROM assets WHERE 1", NULL);
        if (mask & LF_TYPE)
            buf_adds(&sql, " AND type = ?1", NULL);
        if (mask & LF_STATUS)
            buf_adds(&sql, " AND status = ?2", NULL);
        if (mask & LF_CREATED_BY)
            buf_adds(&sql, " AND created_by = ?3", NULL);
        if (mask & LF_AFTER)
            buf_adds(&sql, " AND id < ?4", NULL);
        buf_adds(&sql, " ORDER BY id DESC LIMIT ?5", NULL);
        rc = cat__prepare(cn, sql.buf, &cn->list[mask], err);
        buf_release(&sql);
        if (rc < 0)
            return rc;
    }
    stmt_ready(cn, cn->list[mask]);
    *out = cn->list[mask];
    return 0;
}

static int asset_list_body(struct conn *cn, void *arg, struct err *err)
{
    struct asset_list_args *l = arg;
    sqlite3_stmt *st;
    int rc = list_stmt(cn, l->mask, &st, err);

    if (rc < 0)
        return rc;
    asset_rows_release(l);
    if (l->mask & LF_TYPE)
        bind_str(cn, st, 1, l->f->type);
    if (l->mask & LF_STATUS)
        bind_str(cn, st, 2, l->f->status);
    if (l->mask & LF_CREATED_BY)
        bind_str(cn, st, 3, l->f->created_by);
    if (l->mask & LF_AFTER)
        bind_str(cn, st, 4, l->f->after_id);
    bind_i64(cn, st, 5, l->limit);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW)
            break;
        if (l->n == l->alloc) {
            l->alloc = l->alloc ? 2 * l->alloc : 32;
            l->rows = xrealloc(l->rows, l->alloc * sizeof(*l->rows));
        }
        asset_read(st, &l->rows[l->n++]);
    }
    rc = rc == SQLITE_DONE ? 0 : cat__db_fail(cn, rc, err, "list assets");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_asset_list(struct catalog *c, const struct cat_asset_filter *f,
                             int (*cb)(void *ctx, const struct cat_asset *a), void *ctx,
                             struct err *err)
{
    struct asset_list_args l = {.f = f};
    int rc;

    l.limit = f->limit < 1 ? 1 : f->limit > LIST_MAX ? LIST_MAX : f->limit;
    l.mask = (f->type && *f->type ? LF_TYPE : 0) | (f->status && *f->status ? LF_STATUS : 0) |
             (f->created_by && *f->created_by ? LF_CREATED_BY : 0) |
             (f->after_id && *f->after_id ? LF_AFTER : 0);
    rc = cat__run((struct cat_sqlite *)c, 0, asset_list_body, &l, err);
    for (size_t i = 0; rc == 0 && i < l.n; i++)
        rc = cb(ctx, &l.rows[i]);
    asset_rows_release(&l);
    free(l.rows);
    return rc;
}

/* ---- uploads --------------------------------------------------------------------------- */

static int upload_create_body(struct conn *cn, void *arg, struct err *err)
{
    const struct cat_upload *u = arg;
    const char *msg;
    sqlite3_stmt *st;
    int rc = row_exists(cn, S_ASSET_EXISTS, u->asset_id, err);

    if (rc < 0)
        return rc;
    if (rc == 0)
        return err_set(err, ERR_NOTFOUND, "asset %s not found", u->asset_id);
    rc = stmt_get(cn, S_UPLOAD_INSERT, &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, u->asset_id);
    bind_str(cn, st, 2, u->upload_id);
    bind_str(cn, st, 3, u->bucket);
    bind_str(cn, st, 4, u->key);
    bind_i64(cn, st, 5, u->part_size);
    bind_i64(cn, st, 6, u->part_count);
    bind_opt(cn, st, 7, u->created_by);
    bind_i64(cn, st, 8, u->created_at ? u->created_at : util_now_ms());
    bind_i64(cn, st, 9, u->expires_at);
    rc = step(cn, st);
    msg = sqlite3_errmsg(cn->db);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY ||
             (rc == SQLITE_CONSTRAINT_UNIQUE && strstr(msg, "uploads.asset_id")))
        rc = err_set(err, ERR_CONFLICT, "asset %s already has an upload", u->asset_id);
    else if (rc == SQLITE_CONSTRAINT_UNIQUE && strstr(msg, "uploads.upload_id"))
        rc = err_set(err, ERR_CONFLICT, "upload id %s is already in use", u->upload_id);
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = err_set(err, ERR_NOTFOUND, "user %s not found", u->created_by);
    else
        rc = cat__db_fail(cn, rc, err, "create upload");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_upload_create(struct catalog *c, const struct cat_upload *u, struct err *err)
{
    return cat__run((struct cat_sqlite *)c, 1, upload_create_body, (void *)u, err);
}

struct upload_get_args {
    const char *asset_id;
    struct cat_upload *out;
};

static int upload_get_body(struct conn *cn, void *arg, struct err *err)
{
    struct upload_get_args *g = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_UPLOAD_GET, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, g->asset_id);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        upload_read(st, g->out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = err_set(err, ERR_NOTFOUND, "asset %s has no upload", g->asset_id);
    } else {
        rc = cat__db_fail(cn, rc, err, "read upload");
    }
    sqlite3_reset(st);
    return rc;
}

static int sqlite_upload_get(struct catalog *c, const char *asset_id, struct cat_upload *out,
                             struct err *err)
{
    struct upload_get_args g = {asset_id, out};

    return cat__run((struct cat_sqlite *)c, 0, upload_get_body, &g, err);
}

static int upload_delete_body(struct conn *cn, void *arg, struct err *err)
{
    const char *asset_id = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_UPLOAD_DELETE, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, asset_id);
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = sqlite3_changes(cn->db)
                 ? 0
                 : err_set(err, ERR_NOTFOUND, "asset %s has no upload", asset_id);
    else
        rc = cat__db_fail(cn, rc, err, "delete upload");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_upload_delete(struct catalog *c, const char *asset_id, struct err *err)
{
    return cat__run((struct cat_sqlite *)c, 1, upload_delete_body, (void *)asset_id, err);
}

struct expired_args {
    int64_t now;
    int64_t after_expires; /* keyset cursor: (expires_at, asset_id) > this */
    char after_id[37];
    struct cat_upload rows[SWEEP_BATCH];
    int n;
};

static int upload_expired_body(struct conn *cn, void *arg, struct err *err)
{
    struct expired_args *x = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_UPLOAD_EXPIRED, &st, err);

    if (rc < 0)
        return rc;
    x->n = 0;
    bind_i64(cn, st, 1, x->now);
    bind_i64(cn, st, 2, x->after_expires);
    bind_str(cn, st, 3, x->after_id);
    bind_i64(cn, st, 4, SWEEP_BATCH);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW || x->n == SWEEP_BATCH)
            break;
        upload_read(st, &x->rows[x->n++]);
    }
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : cat__db_fail(cn, rc, err, "list uploads");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_upload_list_expired(struct catalog *c, int64_t now_ms,
                                      int (*cb)(void *ctx, const struct cat_upload *u), void *ctx,
                                      struct err *err)
{
    struct expired_args *x = xcalloc(1, sizeof(*x));
    int rc;

    x->now = now_ms;
    x->after_expires = INT64_MIN;
    do {
        rc = cat__run((struct cat_sqlite *)c, 0, upload_expired_body, x, err);
        for (int i = 0; rc == 0 && i < x->n; i++)
            rc = cb(ctx, &x->rows[i]);
        if (rc == 0 && x->n > 0) {
            x->after_expires = x->rows[x->n - 1].expires_at;
            memcpy(x->after_id, x->rows[x->n - 1].asset_id, sizeof(x->after_id));
        }
    } while (rc == 0 && x->n == SWEEP_BATCH);
    free(x);
    return rc;
}

/* ---- idempotency keys ------------------------------------------------------------------ */

/* Reads the user's key into out: 0, 1 if there is none, -1 on error. */
static int idem_read(struct conn *cn, const char *user_id, const char *key, struct cat_idem *out,
                     struct err *err)
{
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_IDEM_GET, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, user_id);
    bind_str(cn, st, 2, key);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof(*out));
        col_copy(out->user_id, sizeof(out->user_id), st, 0);
        col_copy(out->key, sizeof(out->key), st, 1);
        col_copy(out->fingerprint, sizeof(out->fingerprint), st, 2);
        col_copy(out->asset_id, sizeof(out->asset_id), st, 3);
        out->created_at = sqlite3_column_int64(st, 4);
        out->expires_at = sqlite3_column_int64(st, 5);
        rc = 0;
    } else {
        rc = rc == SQLITE_DONE ? 1 : cat__db_fail(cn, rc, err, "read idempotency key");
    }
    sqlite3_reset(st);
    return rc;
}

struct idem_get_args {
    const char *user_id;
    const char *key;
    int64_t now;
    struct cat_idem *out;
};

static int idem_get_body(struct conn *cn, void *arg, struct err *err)
{
    struct idem_get_args *g = arg;
    int rc = idem_read(cn, g->user_id, g->key, g->out, err);

    if (rc < 0)
        return rc;
    if (rc == 1 || g->out->expires_at <= g->now)
        return err_set(err, ERR_NOTFOUND, "no idempotency key '%s'", g->key);
    return 0;
}

static int sqlite_idem_get(struct catalog *c, const char *user_id, const char *key, int64_t now_ms,
                           struct cat_idem *out, struct err *err)
{
    struct idem_get_args g = {user_id, key, now_ms, out};

    return cat__run((struct cat_sqlite *)c, 0, idem_get_body, &g, err);
}

struct create_upload_args {
    const struct cat_asset *a;
    const struct cat_upload *u;
    struct cat_idem *k; /* NULL: no key */
    int64_t now;        /* the request's time: a key held with expires_at <= now is gone */
    int *found;
};

/* Records the key of x for x->a, replacing an expired one that was not swept yet. */
static int idem_insert(struct conn *cn, struct create_upload_args *x, struct err *err)
{
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_IDEM_INSERT, &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, x->k->user_id);
    bind_str(cn, st, 2, x->k->key);
    bind_str(cn, st, 3, x->k->fingerprint);
    bind_str(cn, st, 4, x->a->id);
    bind_i64(cn, st, 5, x->k->created_at);
    bind_i64(cn, st, 6, x->k->expires_at);
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        rc = err_set(err, ERR_NOTFOUND, "user %s not found", x->k->user_id);
    else
        rc = cat__db_fail(cn, rc, err, "record idempotency key");
    sqlite3_reset(st);
    if (rc == 0)
        snprintf(x->k->asset_id, sizeof(x->k->asset_id), "%s", x->a->id);
    return rc;
}

static int asset_create_upload_body(struct conn *cn, void *arg, struct err *err)
{
    struct create_upload_args *x = arg;
    int rc;

    *x->found = 0;
    if (x->k) {
        struct cat_idem held;

        rc = idem_read(cn, x->k->user_id, x->k->key, &held, err);
        if (rc < 0)
            return rc;
        if (rc == 0 && held.expires_at > x->now) { /* held: nothing is written */
            *x->k = held;
            *x->found = 1;
            return 0;
        }
    }
    rc = asset_create_body(cn, (void *)x->a, err);
    if (rc == 0)
        rc = upload_create_body(cn, (void *)x->u, err);
    if (rc == 0 && x->k)
        rc = idem_insert(cn, x, err);
    return rc;
}

static int sqlite_asset_create_upload(struct catalog *c, const struct cat_asset *a,
                                      const struct cat_upload *u, struct cat_idem *k, int *found,
                                      struct err *err)
{
    struct create_upload_args x = {a, u, k, k ? k->created_at : 0, found};

    return cat__run((struct cat_sqlite *)c, 1, asset_create_upload_body, &x, err);
}

struct idem_expire_args {
    int64_t now;
    int64_t n; /* rows deleted by the last batch */
};

static int idem_expire_body(struct conn *cn, void *arg, struct err *err)
{
    struct idem_expire_args *x = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_IDEM_EXPIRE, &st, err);

    if (rc < 0)
        return rc;
    bind_i64(cn, st, 1, x->now);
    bind_i64(cn, st, 2, IDEM_BATCH);
    rc = step(cn, st);
    if (rc == SQLITE_DONE) {
        x->n = sqlite3_changes(cn->db);
        rc = 0;
    } else {
        rc = cat__db_fail(cn, rc, err, "expire idempotency keys");
    }
    sqlite3_reset(st);
    return rc;
}

/* In batches, so that the write lock is never held for long. */
static int sqlite_idem_expire(struct catalog *c, int64_t now_ms, int64_t *removed, struct err *err)
{
    struct idem_expire_args x = {now_ms, 0};

    *removed = 0;
    do {
        if (cat__run((struct cat_sqlite *)c, 1, idem_expire_body, &x, err) < 0)
            return -1;
        *removed += x.n;
    } while (x.n == IDEM_BATCH);
    return 0;
}

/* ---- users and keys ---------------------------------------------------------------------- */

static int user_create_body(struct conn *cn, void *arg, struct err *err)
{
    struct cat_user *u = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_USER_INSERT, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, u->id);
    bind_str(cn, st, 2, u->name);
    bind_str(cn, st, 3, cat_role_name(u->role));
    bind_i64(cn, st, 4, u->created_at);
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_UNIQUE && strstr(sqlite3_errmsg(cn->db), "users.name"))
        rc = err_set(err, ERR_CONFLICT, "user name %s is already taken", u->name);
    else
        rc = cat__db_fail(cn, rc, err, "create user");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_user_create(struct catalog *c, const char *name, enum cat_role role,
                              struct cat_user *out, struct err *err)
{
    struct cat_user u = {.role = role, .created_at = util_now_ms()};
    int rc;

    util_uuid7(u.id);
    (void)snprintf(u.name, sizeof(u.name), "%s", name);
    rc = cat__run((struct cat_sqlite *)c, 1, user_create_body, &u, err);
    if (rc == 0 && out)
        *out = u;
    return rc;
}

struct user_get_args {
    const char *id;
    struct cat_user *out;
};

static int user_get_body(struct conn *cn, void *arg, struct err *err)
{
    struct user_get_args *g = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_USER_GET, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, g->id);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        memset(g->out, 0, sizeof(*g->out));
        col_copy(g->out->id, sizeof(g->out->id), st, 0);
        col_copy(g->out->name, sizeof(g->out->name), st, 1);
        g->out->role = role_read(st, 2);
        g->out->created_at = sqlite3_column_int64(st, 3);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        rc = err_set(err, ERR_NOTFOUND, "user %s not found", g->id);
    } else {
        rc = cat__db_fail(cn, rc, err, "read user");
    }
    sqlite3_reset(st);
    return rc;
}

static int sqlite_user_get(struct catalog *c, const char *id, struct cat_user *out, struct err *err)
{
    struct user_get_args g = {id, out};

    return cat__run((struct cat_sqlite *)c, 0, user_get_body, &g, err);
}

static int user_count_body(struct conn *cn, void *arg, struct err *err)
{
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_USER_COUNT, &st, err);

    if (rc < 0)
        return rc;
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        *(int64_t *)arg = sqlite3_column_int64(st, 0);
        rc = 0;
    } else {
        rc = cat__db_fail(cn, rc, err, "count users");
    }
    sqlite3_reset(st);
    return rc;
}

static int sqlite_user_count(struct catalog *c, int64_t *out, struct err *err)
{
    return cat__run((struct cat_sqlite *)c, 0, user_count_body, out, err);
}

static int key_create_body(struct conn *cn, void *arg, struct err *err)
{
    const struct cat_key *k = arg;
    const char *msg;
    sqlite3_stmt *st;
    int rc = row_exists(cn, S_USER_EXISTS, k->user_id, err);

    if (rc < 0)
        return rc;
    if (rc == 0)
        return err_set(err, ERR_NOTFOUND, "user %s not found", k->user_id);
    rc = stmt_get(cn, S_KEY_INSERT, &st, err);
    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, k->id);
    bind_str(cn, st, 2, k->user_id);
    bind_str(cn, st, 3, k->name);
    bind_str(cn, st, 4, cat_role_name(k->role));
    bind_str(cn, st, 5, k->token_hash);
    bind_opt(cn, st, 6, k->s3_access_key);
    bind_opt(cn, st, 7, k->s3_secret);
    bind_i64(cn, st, 8, k->created_at ? k->created_at : util_now_ms());
    if (k->revoked_at)
        bind_i64(cn, st, 9, k->revoked_at);
    rc = step(cn, st);
    msg = sqlite3_errmsg(cn->db);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        rc = err_set(err, ERR_CONFLICT, "key %s already exists", k->id);
    else if (rc == SQLITE_CONSTRAINT_UNIQUE && strstr(msg, "api_keys.token_hash"))
        rc = err_set(err, ERR_CONFLICT, "a key with this token already exists");
    else if (rc == SQLITE_CONSTRAINT_UNIQUE && strstr(msg, "api_keys.s3_access_key"))
        rc = err_set(err, ERR_CONFLICT, "access key %s is already in use", k->s3_access_key);
    else
        rc = cat__db_fail(cn, rc, err, "create key");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_key_create(struct catalog *c, const struct cat_key *k, struct err *err)
{
    return cat__run((struct cat_sqlite *)c, 1, key_create_body, (void *)k, err);
}

struct key_get_args {
    enum stmt_id sid;
    const char *value;
    struct cat_key *out;
};

static int key_get_body(struct conn *cn, void *arg, struct err *err)
{
    struct key_get_args *g = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, g->sid, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, g->value);
    rc = step(cn, st);
    if (rc == SQLITE_ROW) {
        key_read(st, g->out);
        rc = 0;
    } else if (rc == SQLITE_DONE) {
        /* never echo a token hash or access key: the message may reach a client */
        rc = err_set(err, ERR_NOTFOUND, "no live key matches");
    } else {
        rc = cat__db_fail(cn, rc, err, "read key");
    }
    sqlite3_reset(st);
    return rc;
}

static int sqlite_key_by_token_hash(struct catalog *c, const char *token_hash, struct cat_key *out,
                                    struct err *err)
{
    struct key_get_args g = {S_KEY_BY_TOKEN, token_hash, out};

    return cat__run((struct cat_sqlite *)c, 0, key_get_body, &g, err);
}

static int sqlite_key_by_access_key(struct catalog *c, const char *access_key, struct cat_key *out,
                                    struct err *err)
{
    struct key_get_args g = {S_KEY_BY_ACCESS, access_key, out};

    return cat__run((struct cat_sqlite *)c, 0, key_get_body, &g, err);
}

static int key_revoke_body(struct conn *cn, void *arg, struct err *err)
{
    const char *id = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_KEY_REVOKE, &st, err);

    if (rc < 0)
        return rc;
    bind_str(cn, st, 1, id);
    bind_i64(cn, st, 2, util_now_ms());
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = sqlite3_changes(cn->db)
                 ? 0
                 : err_set(err, ERR_NOTFOUND, "key %s not found or already revoked", id);
    else
        rc = cat__db_fail(cn, rc, err, "revoke key");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_key_revoke(struct catalog *c, const char *id, struct err *err)
{
    return cat__run((struct cat_sqlite *)c, 1, key_revoke_body, (void *)id, err);
}

/* ---- audit log ------------------------------------------------------------------------- */

static int audit_append_body(struct conn *cn, void *arg, struct err *err)
{
    const struct cat_audit *a = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, S_AUDIT_INSERT, &st, err);

    if (rc < 0)
        return rc;
    bind_i64(cn, st, 1, util_now_ms());
    bind_opt(cn, st, 2, a->actor_user_id);
    bind_opt(cn, st, 3, a->actor_key_id);
    bind_str(cn, st, 4, a->action);
    bind_opt(cn, st, 5, a->target_type);
    bind_opt(cn, st, 6, a->target_id);
    bind_opt(cn, st, 7, a->detail_json);
    bind_opt(cn, st, 8, a->request_id);
    rc = step(cn, st);
    if (rc == SQLITE_DONE)
        rc = 0;
    else if (rc == SQLITE_CONSTRAINT_CHECK)
        rc = err_set(err, ERR_INVALID, "audit detail is not valid JSON");
    else
        rc = cat__db_fail(cn, rc, err, "append audit");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_audit_append(struct catalog *c, const struct cat_audit *a, struct err *err)
{
    return cat__run((struct cat_sqlite *)c, 1, audit_append_body, (void *)a, err);
}

/* A JSON string of column i, or null (also for text that is not UTF-8). */
static json_t *col_json_str(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    json_t *j = s ? json_string((const char *)s) : NULL;

    return j ? j : json_null();
}

/* One audit row as compact JSON text; the caller frees. */
static char *audit_row_json(sqlite3_stmt *st)
{
    static const char *const names[] = {"actor_user_id", "actor_key_id", "action", "target_type",
                                        "target_id"};
    const unsigned char *detail = sqlite3_column_text(st, 7);
    json_t *o = json_object();
    json_t *d = NULL;
    char ts[32];
    char *text;

    util_time_rfc3339_ms(sqlite3_column_int64(st, 1), ts);
    json_object_set_new(o, "id", json_integer(sqlite3_column_int64(st, 0)));
    json_object_set_new(o, "ts", json_string(ts));
    for (int i = 0; i < (int)ARRAY_LEN(names); i++)
        json_object_set_new(o, names[i], col_json_str(st, 2 + i));
    if (detail)
        d = json_loads((const char *)detail, JSON_DECODE_ANY, NULL);
    json_object_set_new(o, "detail", d ? d : json_null());
    json_object_set_new(o, "request_id", col_json_str(st, 8));
    text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        abort(); /* jansson only fails to allocate */
    return text;
}

struct audit_list_args {
    const char *target_id;
    int limit;
    char **rows;
    int n;
};

static void audit_rows_release(struct audit_list_args *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->rows[i]);
    l->n = 0;
}

static int audit_list_body(struct conn *cn, void *arg, struct err *err)
{
    struct audit_list_args *l = arg;
    sqlite3_stmt *st;
    int rc = stmt_get(cn, l->target_id ? S_AUDIT_TARGET : S_AUDIT_ALL, &st, err);

    if (rc < 0)
        return rc;
    audit_rows_release(l);
    bind_i64(cn, st, 1, l->limit);
    if (l->target_id)
        bind_str(cn, st, 2, l->target_id);
    for (;;) {
        rc = step(cn, st);
        if (rc != SQLITE_ROW || l->n == l->limit)
            break;
        l->rows[l->n++] = audit_row_json(st);
    }
    rc = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : cat__db_fail(cn, rc, err, "list audit");
    sqlite3_reset(st);
    return rc;
}

static int sqlite_audit_list(struct catalog *c, const char *target_id, int limit,
                             int (*cb)(void *ctx, const char *json_row), void *ctx, struct err *err)
{
    struct audit_list_args l = {.target_id = target_id && *target_id ? target_id : NULL};
    int rc;

    l.limit = limit < 1 ? 1 : limit > LIST_MAX ? LIST_MAX : limit;
    l.rows = xcalloc((size_t)l.limit, sizeof(*l.rows));
    rc = cat__run((struct cat_sqlite *)c, 0, audit_list_body, &l, err);
    for (int i = 0; rc == 0 && i < l.n; i++)
        rc = cb(ctx, l.rows[i]);
    audit_rows_release(&l);
    free(l.rows);
    return rc;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static int sqlite_schema_version(struct catalog *c)
{
    return ((struct cat_sqlite *)c)->version;
}

static void sqlite_close(struct catalog *base)
{
    struct cat_sqlite *c = (struct cat_sqlite *)base;

    while (c->idle) {
        struct conn *cn = c->idle;

        c->idle = cn->next;
        sqlite3_exec(cn->db, "PRAGMA optimize", NULL, NULL, NULL);
        conn_close(cn);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->wq_mu);
    pthread_cond_destroy(&c->wq_cv);
    free(c->path);
    free(c);
}

static const struct catalog_ops sqlite_ops = {
    .name = "sqlite",
    .close = sqlite_close,
    .trim = sqlite_trim,
    .asset_create = sqlite_asset_create,
    .asset_get = sqlite_asset_get,
    .asset_update_editorial = sqlite_asset_update_editorial,
    .asset_set_status = sqlite_asset_set_status,
    .asset_complete = sqlite_asset_complete,
    .asset_delete = sqlite_asset_delete,
    .asset_find_by_hash = sqlite_asset_find_by_hash,
    .asset_list = sqlite_asset_list,
    .upload_create = sqlite_upload_create,
    .upload_get = sqlite_upload_get,
    .upload_delete = sqlite_upload_delete,
    .upload_list_expired = sqlite_upload_list_expired,
    .asset_create_upload = sqlite_asset_create_upload,
    .idem_get = sqlite_idem_get,
    .idem_expire = sqlite_idem_expire,
    .user_create = sqlite_user_create,
    .user_get = sqlite_user_get,
    .user_count = sqlite_user_count,
    .key_create = sqlite_key_create,
    .key_by_token_hash = sqlite_key_by_token_hash,
    .key_by_access_key = sqlite_key_by_access_key,
    .audit_append = sqlite_audit_append,
    .audit_list = sqlite_audit_list,
    .schema_version = sqlite_schema_version,
    .key_revoke = sqlite_key_revoke,
    .wf = &cat__sqlite_wf_ops,
    .search = &cat__sqlite_search_ops,
};

/* cat_sqlite_open with explicit busy limits (tests shorten them). */
static int sqlite_open_tuned(struct catalog **out, const char *path, int busy_timeout_ms,
                             int busy_bound_ms, int bulk, struct err *err)
{
    struct cat_sqlite *c = xcalloc(1, sizeof(*c));
    pthread_condattr_t ca;

    c->base.ops = &sqlite_ops;
    c->path = xstrdup(path);
    c->pool_max = POOL_MAX;
    c->bulk = bulk;
    c->busy_timeout_ms = busy_timeout_ms;
    c->busy_bound_ms = busy_bound_ms;
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->wq_mu, NULL);
    pthread_cond_init(&c->wq_cv, NULL);
    c->wq_tail = &c->wq_head;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (sqlite3_threadsafe() == 0) {
        err_set(err, ERR_BACKEND, "the linked SQLite was built without thread support");
        goto out_close;
    }
    if (migrate(c, err) < 0 || (!bulk && cat__search_settle(c, err) < 0))
        goto out_close;
    memory_apply(path);
    *out = &c->base;
    return 0;

out_close:
    sqlite_close(&c->base);
    return -1;
}

int cat_sqlite_open(struct catalog **out, const char *path, struct err *err)
{
    return sqlite_open_tuned(out, path, BUSY_TIMEOUT_MS, BUSY_BOUND_MS, 0, err);
}

int cat_sqlite_open_bulk(struct catalog **out, const char *path, struct err *err)
{
    return sqlite_open_tuned(out, path, BUSY_TIMEOUT_MS, BUSY_BOUND_MS, 1, err);
}
