#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* static functions (sqlite_open_tuned, the statement tables) are reached by including the
 * backend */
#include "catalog/catalog_sqlite.c"
#include "catalog/catalog_sqlite_rend.c"
#include "catalog/catalog_sqlite_wf.c"

#include <pthread.h>
#include <unistd.h>

/* every migration applied: the newest version (versions are 1..n, in order) */
#define SCHEMA_LATEST ((int)(sizeof(migrations) / sizeof(migrations[0])))

/** A catalog in a fresh temporary directory. */
struct fixture {
    char dir[64];
    char path[128];
    struct catalog *c;
};

static int teardown(void **state)
{
    struct fixture *f = *state;
    char p[160];

    cat_close(f->c);
    unlink(f->path);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    unlink(p);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    struct err e = {0};

    snprintf(f->dir, sizeof(f->dir), "/tmp/acervo-catalog-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/catalog.db", f->dir);
    *state = f;
    if (cat_sqlite_open(&f->c, f->path, &e) < 0) {
        fprintf(stderr, "open: %s\n", e.msg);
        teardown(state);
        return -1;
    }
    *state = f;
    return 0;
}

/* Runs one SQL statement on a separate raw connection; returns its first integer. */
static int64_t raw_sql(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    int64_t v = -1;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Fills a with a minimal new asset of this type in status uploading. */
static void new_asset(struct cat_asset *a, const char *type, const char *created_by)
{
    memset(a, 0, sizeof(*a));
    util_uuid7(a->id);
    snprintf(a->type, sizeof(a->type), "%s", type);
    snprintf(a->status, sizeof(a->status), "%s", ASSET_UPLOADING);
    a->original_filename = (char *)"clip.mov";
    a->mime_type = (char *)"video/quicktime";
    a->file_size_bytes = 1234;
    if (created_by)
        snprintf(a->created_by, sizeof(a->created_by), "%s", created_by);
}

static void create_asset(struct catalog *c, const char *type, const char *created_by, char id[37])
{
    struct cat_asset a;
    struct err e = {0};

    new_asset(&a, type, created_by);
    assert_int_equal(cat_asset_create(c, &a, &e), 0);
    memcpy(id, a.id, 37);
}

static void hash_of(const char *s, char out[65])
{
    util_sha256_hex(s, strlen(s), out);
}

static void test_migrations(void **state)
{
    struct fixture *f = *state;
    struct err e = {0};

    assert_int_equal(cat_schema_version(f->c), SCHEMA_LATEST);
    cat_close(f->c);
    f->c = NULL;
    assert_int_equal(cat_sqlite_open(&f->c, f->path, &e), 0);
    assert_int_equal(cat_schema_version(f->c), SCHEMA_LATEST);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM schema_migrations"), SCHEMA_LATEST);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM sqlite_master WHERE name = "
                                      "'ux_assets_live_content_hash'"),
                     1);
    assert_int_equal(raw_sql(f->path, "SELECT 1 FROM pragma_journal_mode WHERE journal_mode = "
                                      "'wal'"),
                     1);
}

static void test_migrations_newer_schema(void **state)
{
    struct fixture *f = *state;
    struct catalog *c2 = NULL;
    struct err e = {0};

    raw_sql(f->path, "INSERT INTO schema_migrations VALUES (9999, 0)");
    assert_int_equal(cat_sqlite_open(&c2, f->path, &e), -1);
    assert_int_equal(e.code, ERR_BACKEND);
    assert_non_null(strstr(e.msg, "newer"));
    raw_sql(f->path, "DELETE FROM schema_migrations WHERE version = 9999");
}

static void test_asset_crud(void **state)
{
    struct fixture *f = *state;
    struct cat_user u;
    struct cat_asset a, got, upd;
    struct err e = {0};

    assert_int_equal(cat_user_create(f->c, "ana", ROLE_EDITOR, &u, &e), 0);
    new_asset(&a, "video", u.id);
    a.external_id = (char *)"ext-1";
    a.title = (char *)"Title";
    a.technical_metadata = (char *)"{\"duration\":1.5}";
    assert_int_equal(cat_asset_create(f->c, &a, &e), 0);

    assert_int_equal(cat_asset_get(f->c, a.id, &got, &e), 0);
    assert_string_equal(got.id, a.id);
    assert_string_equal(got.type, "video");
    assert_string_equal(got.status, ASSET_UPLOADING);
    assert_string_equal(got.external_id, "ext-1");
    assert_string_equal(got.title, "Title");
    assert_null(got.description);
    assert_string_equal(got.original_filename, "clip.mov");
    assert_string_equal(got.mime_type, "video/quicktime");
    assert_int_equal(got.file_size_bytes, 1234);
    assert_string_equal(got.content_hash, "");
    assert_null(got.master_storage_key);
    assert_string_equal(got.technical_metadata, "{\"duration\":1.5}");
    assert_string_equal(got.editorial_metadata, "{}");
    assert_string_equal(got.created_by, u.id);
    assert_true(got.created_at > 0);
    assert_int_equal(got.created_at, got.updated_at);
    cat_asset_release(&got);

    /* duplicates */
    a.external_id = (char *)"ext-2";
    assert_int_equal(cat_asset_create(f->c, &a, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "already exists"));
    a.external_id = (char *)"ext-1";
    util_uuid7(a.id);
    assert_int_equal(cat_asset_create(f->c, &a, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "external id ext-1"));

    /* bad input */
    a.external_id = NULL;
    snprintf(a.type, sizeof(a.type), "doc");
    assert_int_equal(cat_asset_create(f->c, &a, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    snprintf(a.type, sizeof(a.type), "image");
    a.editorial_metadata = (char *)"{nope";
    assert_int_equal(cat_asset_create(f->c, &a, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    a.editorial_metadata = NULL;
    snprintf(a.created_by, sizeof(a.created_by), "00000000-0000-7000-8000-000000000000");
    assert_int_equal(cat_asset_create(f->c, &a, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* editorial update: NULL keeps, non-NULL replaces */
    assert_int_equal(
        cat_asset_update_editorial(f->c, got.id, NULL, "Desc", "{\"tags\":[\"a\"]}", &upd, &e), 0);
    assert_string_equal(upd.title, "Title");
    assert_string_equal(upd.description, "Desc");
    assert_string_equal(upd.editorial_metadata, "{\"tags\":[\"a\"]}");
    assert_true(upd.updated_at >= upd.created_at);
    cat_asset_release(&upd);
    assert_int_equal(cat_asset_update_editorial(f->c, got.id, "New", NULL, NULL, NULL, &e), 0);
    assert_int_equal(cat_asset_get(f->c, got.id, &got, &e), 0);
    assert_string_equal(got.title, "New");
    assert_string_equal(got.description, "Desc");
    cat_asset_release(&got);
    assert_int_equal(cat_asset_update_editorial(f->c, got.id, NULL, NULL, "[1,", &upd, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(cat_asset_update_editorial(f->c, "00000000-0000-7000-8000-000000000000", "x",
                                                NULL, NULL, NULL, &e),
                     -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    assert_int_equal(cat_asset_get(f->c, "00000000-0000-7000-8000-000000000000", &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
}

/* collects listed ids */
struct listed {
    char ids[64][37];
    int n;
    int stop_after;
};

static int collect(void *ctx, const struct cat_asset *a)
{
    struct listed *l = ctx;

    assert_true(l->n < 64);
    memcpy(l->ids[l->n++], a->id, 37);
    return l->stop_after && l->n == l->stop_after ? 7 : 0;
}

static void test_asset_list(void **state)
{
    struct fixture *f = *state;
    struct cat_user u1, u2;
    struct err e = {0};
    char ids[30][37], after[37] = "";
    struct listed l;
    int seen = 0;

    assert_int_equal(cat_user_create(f->c, "u1", ROLE_EDITOR, &u1, &e), 0);
    assert_int_equal(cat_user_create(f->c, "u2", ROLE_EDITOR, &u2, &e), 0);
    for (int i = 0; i < 30; i++) {
        create_asset(f->c, i % 3 == 0 ? "image" : "video", i % 2 ? u1.id : u2.id, ids[i]);
        if (i % 5 == 0)
            assert_int_equal(cat_asset_set_status(f->c, ids[i], NULL, ASSET_READY, NULL, &e), 0);
    }

    /* keyset pages of 7: 7, 7, 7, 7, 2, strictly descending, covering all */
    for (int page = 0;; page++) {
        struct cat_asset_filter flt = {.after_id = after, .limit = 7};

        memset(&l, 0, sizeof(l));
        assert_int_equal(cat_asset_list(f->c, &flt, collect, &l, &e), 0);
        if (l.n == 0)
            break;
        assert_int_equal(l.n, page < 4 ? 7 : 2);
        for (int i = 0; i < l.n; i++) {
            if (after[0])
                assert_true(strcmp(l.ids[i], after) < 0);
            memcpy(after, l.ids[i], 37);
        }
        seen += l.n;
    }
    assert_int_equal(seen, 30);

    /* filters */
    {
        struct cat_asset_filter flt = {.type = "image", .limit = 100};

        memset(&l, 0, sizeof(l));
        assert_int_equal(cat_asset_list(f->c, &flt, collect, &l, &e), 0);
        assert_int_equal(l.n, 10);
    }
    {
        struct cat_asset_filter flt = {.status = ASSET_READY, .type = "", .limit = 100};

        memset(&l, 0, sizeof(l));
        assert_int_equal(cat_asset_list(f->c, &flt, collect, &l, &e), 0);
        assert_int_equal(l.n, 6);
    }
    {
        struct cat_asset_filter flt = {.created_by = u1.id, .type = "video", .limit = 100};

        memset(&l, 0, sizeof(l));
        assert_int_equal(cat_asset_list(f->c, &flt, collect, &l, &e), 0);
        assert_int_equal(l.n, 10); /* odd i not divisible by 3 */
    }
    {
        struct cat_asset_filter flt = {.limit = 0};

        memset(&l, 0, sizeof(l));
        assert_int_equal(cat_asset_list(f->c, &flt, collect, &l, &e), 0);
        assert_int_equal(l.n, 1);
    }
    {
        struct cat_asset_filter flt = {.limit = 100000};

        memset(&l, 0, sizeof(l));
        l.stop_after = 4;
        assert_int_equal(cat_asset_list(f->c, &flt, collect, &l, &e), 7);
        assert_int_equal(l.n, 4);
    }
    {
        struct cat_asset_filter flt = {.status = "bogus", .limit = 10};

        assert_int_equal(cat_asset_list(f->c, &flt, collect, &l, &e), -1);
        assert_int_equal(e.code, ERR_INVALID);
    }
}

static void test_set_status(void **state)
{
    struct fixture *f = *state;
    struct cat_asset got;
    struct err e = {0};
    char id[37];

    create_asset(f->c, "audio", NULL, id);
    assert_int_equal(cat_asset_set_status(f->c, id, ASSET_UPLOADING, ASSET_PROCESSING, NULL, &e),
                     0);
    assert_int_equal(cat_asset_set_status(f->c, id, ASSET_UPLOADING, ASSET_READY, NULL, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "is processing, not uploading"));
    assert_int_equal(
        cat_asset_set_status(f->c, id, ASSET_PROCESSING, ASSET_FAILED, "probe failed", &e), 0);
    assert_int_equal(cat_asset_get(f->c, id, &got, &e), 0);
    assert_string_equal(got.status, ASSET_FAILED);
    assert_string_equal(got.failure_reason, "probe failed");
    cat_asset_release(&got);
    assert_int_equal(cat_asset_set_status(f->c, id, NULL, ASSET_ARCHIVED, NULL, &e), 0);
    assert_int_equal(cat_asset_get(f->c, id, &got, &e), 0);
    assert_string_equal(got.status, ASSET_ARCHIVED);
    assert_null(got.failure_reason);
    cat_asset_release(&got);
    assert_int_equal(cat_asset_set_status(f->c, id, NULL, "gone", NULL, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(cat_asset_set_status(f->c, "00000000-0000-7000-8000-000000000000", NULL,
                                          ASSET_READY, NULL, &e),
                     -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
}

static int put_upload_rc(struct catalog *c, const char *asset_id, int64_t expires_at, struct err *e)
{
    struct cat_upload u = {0};

    snprintf(u.asset_id, sizeof(u.asset_id), "%s", asset_id);
    util_token_hex(u.upload_id, 16);
    snprintf(u.bucket, sizeof(u.bucket), "archive");
    snprintf(u.key, sizeof(u.key), "staging/%s", asset_id);
    u.part_size = 8 << 20;
    u.part_count = 3;
    u.expires_at = expires_at;
    return cat_upload_create(c, &u, e);
}

static void put_upload(struct catalog *c, const char *asset_id, int64_t expires_at)
{
    struct err e = {0};

    assert_int_equal(put_upload_rc(c, asset_id, expires_at, &e), 0);
}

static void test_complete(void **state)
{
    struct fixture *f = *state;
    struct cat_asset got;
    struct cat_upload up;
    struct err e = {0};
    char a[37], b[37], hash[65];

    hash_of("master bytes", hash);
    create_asset(f->c, "video", NULL, a);
    create_asset(f->c, "video", NULL, b);
    put_upload(f->c, a, util_now_ms() + 60000);
    put_upload(f->c, b, util_now_ms() + 60000);

    assert_int_equal(cat_asset_complete(f->c, a, hash, "masters/a/orig.mov", 999, &e), 0);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_string_equal(got.status, ASSET_PROCESSING);
    assert_string_equal(got.content_hash, hash);
    assert_string_equal(got.master_storage_key, "masters/a/orig.mov");
    assert_int_equal(got.file_size_bytes, 999);
    cat_asset_release(&got);
    assert_int_equal(cat_upload_get(f->c, a, &up, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* not uploading any more */
    assert_int_equal(cat_asset_complete(f->c, a, hash, "masters/a/orig.mov", 999, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "is processing, not uploading"));

    /* same content on another asset: conflict, nothing changed, upload kept */
    assert_int_equal(cat_asset_complete(f->c, b, hash, "masters/b/orig.mov", 999, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "already has content hash"));
    assert_non_null(strstr(e.msg, a));
    assert_int_equal(cat_asset_get(f->c, b, &got, &e), 0);
    assert_string_equal(got.status, ASSET_UPLOADING);
    assert_string_equal(got.content_hash, "");
    cat_asset_release(&got);
    assert_int_equal(cat_upload_get(f->c, b, &up, &e), 0);

    assert_int_equal(cat_asset_find_by_hash(f->c, hash, &got, &e), 0);
    assert_string_equal(got.id, a);
    cat_asset_release(&got);

    /* once a failed, its content may live again in b; a cannot come back */
    assert_int_equal(cat_asset_set_status(f->c, a, NULL, ASSET_FAILED, "corrupt", &e), 0);
    assert_int_equal(cat_asset_complete(f->c, b, hash, "masters/b/orig.mov", 999, &e), 0);
    assert_int_equal(cat_asset_find_by_hash(f->c, hash, &got, &e), 0);
    assert_string_equal(got.id, b);
    cat_asset_release(&got);
    assert_int_equal(cat_asset_set_status(f->c, a, ASSET_FAILED, ASSET_PROCESSING, NULL, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, b));

    assert_int_equal(cat_asset_complete(f->c, b, "XYZ", "k", 1, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    hash_of("other", hash);
    assert_int_equal(cat_asset_find_by_hash(f->c, hash, &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(
        cat_asset_complete(f->c, "00000000-0000-7000-8000-000000000000", hash, "k", 1, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
}

static void test_delete(void **state)
{
    struct fixture *f = *state;
    struct cat_asset got;
    struct cat_upload up;
    struct err e = {0};
    char a[37], sql[512];

    create_asset(f->c, "image", NULL, a);
    put_upload(f->c, a, util_now_ms() + 1000);
    /* only in the status asked for: checked in the same transaction */
    assert_int_equal(cat_asset_delete(f->c, a, ASSET_PROCESSING, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    cat_asset_release(&got);
    assert_int_equal(cat_asset_delete(f->c, a, ASSET_UPLOADING, &e), 0);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    create_asset(f->c, "image", NULL, a);
    put_upload(f->c, a, util_now_ms() + 1000);
    assert_int_equal(cat_asset_delete(f->c, a, NULL, &e), 0);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_upload_get(f->c, a, &up, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_asset_delete(f->c, a, NULL, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* a distribution keeps its asset */
    create_asset(f->c, "image", NULL, a);
    snprintf(sql, sizeof(sql),
             "INSERT INTO asset_distributions (id, asset_id, channel_type, channel_id, "
             "rendition_key, idempotency_key, created_at) VALUES ('d1', '%s', 'web', 'c', "
             "'k', 'idem-1', 0)",
             a);
    raw_sql(f->path, sql);
    assert_int_equal(cat_asset_delete(f->c, a, NULL, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    cat_asset_release(&got);
}

struct sweep {
    struct catalog *c;
    int n;
    int64_t last_expires;
};

static int sweep_one(void *ctx, const struct cat_upload *u)
{
    struct sweep *s = ctx;
    struct err e = {0};

    assert_true(u->expires_at >= s->last_expires);
    s->last_expires = u->expires_at;
    s->n++;
    /* callbacks may call back into the catalog */
    assert_int_equal(cat_upload_delete(s->c, u->asset_id, &e), 0);
    return 0;
}

static void test_uploads(void **state)
{
    struct fixture *f = *state;
    struct cat_upload u = {0}, got;
    struct sweep s = {0};
    struct err e = {0};
    int64_t now = util_now_ms();
    char a[37];

    create_asset(f->c, "video", NULL, a);
    snprintf(u.asset_id, sizeof(u.asset_id), "%s", a);
    snprintf(u.upload_id, sizeof(u.upload_id), "0123456789abcdef0123456789abcdef");
    snprintf(u.bucket, sizeof(u.bucket), "archive");
    snprintf(u.key, sizeof(u.key), "staging/x");
    u.part_size = 5 << 20;
    u.part_count = 7;
    u.expires_at = now + 1000;
    assert_int_equal(cat_upload_create(f->c, &u, &e), 0);
    assert_int_equal(cat_upload_get(f->c, a, &got, &e), 0);
    assert_string_equal(got.upload_id, u.upload_id);
    assert_string_equal(got.bucket, "archive");
    assert_string_equal(got.key, "staging/x");
    assert_int_equal(got.part_size, 5 << 20);
    assert_int_equal(got.part_count, 7);
    assert_int_equal(got.expires_at, now + 1000);
    assert_true(got.created_at > 0);
    assert_string_equal(got.created_by, "");
    assert_int_equal(cat_upload_create(f->c, &u, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    snprintf(u.asset_id, sizeof(u.asset_id), "00000000-0000-7000-8000-000000000000");
    assert_int_equal(cat_upload_create(f->c, &u, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_upload_delete(f->c, a, &e), 0);
    assert_int_equal(cat_upload_delete(f->c, a, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* 600 uploads (more than one sweep batch), 400 expired */
    for (int i = 0; i < 600; i++) {
        create_asset(f->c, "video", NULL, a);
        put_upload(f->c, a, i < 400 ? now - 1000 + i % 50 : now + 100000);
    }
    s.c = f->c;
    s.last_expires = INT64_MIN;
    assert_int_equal(cat_upload_list_expired(f->c, now, sweep_one, &s, &e), 0);
    assert_int_equal(s.n, 400);
    s.n = 0;
    assert_int_equal(cat_upload_list_expired(f->c, now, sweep_one, &s, &e), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM uploads"), 200);
}

/* An upload row for asset a, as the create of POST /api/v1/assets fills it. */
static void upload_for(struct cat_upload *u, const char *asset_id, int64_t expires_at)
{
    memset(u, 0, sizeof(*u));
    snprintf(u->asset_id, sizeof(u->asset_id), "%s", asset_id);
    util_token_hex(u->upload_id, 16);
    snprintf(u->bucket, sizeof(u->bucket), "archive");
    snprintf(u->key, sizeof(u->key), "uploads/%s/original", asset_id);
    u->part_size = 8 << 20;
    u->part_count = 2;
    u->expires_at = expires_at;
}

static void idem_for(struct cat_idem *k, const char *user_id, const char *key, const char *fp,
                     int64_t now)
{
    memset(k, 0, sizeof(*k));
    snprintf(k->user_id, sizeof(k->user_id), "%s", user_id);
    snprintf(k->key, sizeof(k->key), "%s", key);
    hash_of(fp, k->fingerprint);
    k->created_at = now;
    k->expires_at = now + 1000;
}

static void test_create_upload_keyed(void **state)
{
    struct fixture *f = *state;
    struct cat_user user, other;
    struct cat_asset a, b, got;
    struct cat_upload u, ug;
    struct cat_idem k, held;
    struct err e = {0};
    int64_t now = util_now_ms(), n = -1;
    int found = -1;
    char long_key[300];

    assert_int_equal(cat_user_create(f->c, "ed", ROLE_EDITOR, &user, &e), 0);
    assert_int_equal(cat_user_create(f->c, "other", ROLE_EDITOR, &other, &e), 0);

    /* without a key: the asset and its upload row, together */
    new_asset(&a, "video", user.id);
    upload_for(&u, a.id, now + 5000);
    assert_int_equal(cat_asset_create_upload(f->c, &a, &u, NULL, &found, &e), 0);
    assert_int_equal(found, 0);
    assert_int_equal(cat_upload_get(f->c, a.id, &ug, &e), 0);
    assert_string_equal(ug.upload_id, u.upload_id);

    /* a failing upload row takes the asset with it: one transaction */
    new_asset(&b, "video", user.id);
    upload_for(&u, b.id, now + 5000);
    snprintf(u.upload_id, sizeof(u.upload_id), "%s", ug.upload_id); /* already used */
    assert_int_equal(cat_asset_create_upload(f->c, &b, &u, NULL, &found, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(cat_asset_get(f->c, b.id, &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* with a key: recorded for this asset */
    new_asset(&b, "video", user.id);
    upload_for(&u, b.id, now + 5000);
    idem_for(&k, user.id, "k-1", "request one", now);
    assert_int_equal(cat_asset_create_upload(f->c, &b, &u, &k, &found, &e), 0);
    assert_int_equal(found, 0);
    assert_string_equal(k.asset_id, b.id);
    assert_int_equal(cat_idem_get(f->c, user.id, "k-1", now, &held, &e), 0);
    assert_string_equal(held.asset_id, b.id);
    assert_int_equal(held.expires_at, now + 1000);
    /* the same key again: nothing is written, the record comes back */
    new_asset(&a, "video", user.id);
    upload_for(&u, a.id, now + 5000);
    idem_for(&k, user.id, "k-1", "request two", now + 10);
    assert_int_equal(cat_asset_create_upload(f->c, &a, &u, &k, &found, &e), 0);
    assert_int_equal(found, 1);
    assert_string_equal(k.asset_id, b.id);
    hash_of("request one", held.fingerprint);
    assert_string_equal(k.fingerprint, held.fingerprint);
    assert_int_equal(cat_asset_get(f->c, a.id, &got, &e), -1);
    assert_int_equal(cat_upload_get(f->c, a.id, &ug, &e), -1);
    /* keys are per user */
    idem_for(&k, other.id, "k-1", "request one", now);
    assert_int_equal(cat_asset_create_upload(f->c, &a, &u, &k, &found, &e), 0);
    assert_int_equal(found, 0);
    assert_string_equal(k.asset_id, a.id);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM idempotency_keys"), 2);

    /* an expired key is free again, and replaced */
    assert_int_equal(cat_idem_get(f->c, user.id, "k-1", now + 1000, &held, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    new_asset(&a, "video", user.id);
    upload_for(&u, a.id, now + 5000);
    idem_for(&k, user.id, "k-1", "request three", now + 1000);
    assert_int_equal(cat_asset_create_upload(f->c, &a, &u, &k, &found, &e), 0);
    assert_int_equal(found, 0);
    assert_int_equal(cat_idem_get(f->c, user.id, "k-1", now + 1000, &held, &e), 0);
    assert_string_equal(held.asset_id, a.id);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM idempotency_keys"), 2);

    /* deleting the asset forgets its key */
    assert_int_equal(cat_asset_delete(f->c, a.id, ASSET_UPLOADING, &e), 0);
    assert_int_equal(cat_idem_get(f->c, user.id, "k-1", now + 1000, &held, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* bad keys */
    idem_for(&k, user.id, "", "x", now);
    assert_int_equal(cat_asset_create_upload(f->c, &a, &u, &k, &found, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    assert_int_equal(cat_idem_get(f->c, user.id, long_key, now, &held, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    idem_for(&k, user.id, "k-2", "x", now);
    k.expires_at = now;
    assert_int_equal(cat_asset_create_upload(f->c, &a, &u, &k, &found, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    upload_for(&u, b.id, now + 5000); /* another asset's upload */
    idem_for(&k, user.id, "k-2", "x", now);
    assert_int_equal(cat_asset_create_upload(f->c, &a, &u, &k, &found, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);

    /* expiry in batches: 2,500 keys, 2,100 of them expired */
    for (int i = 0; i < 2500; i++) {
        char key[32];

        new_asset(&a, "audio", user.id);
        upload_for(&u, a.id, now + 5000);
        snprintf(key, sizeof(key), "bulk-%d", i);
        idem_for(&k, user.id, key, key, now - 2000);
        if (i >= 2100)
            k.expires_at = now + 100000;
        assert_int_equal(cat_asset_create_upload(f->c, &a, &u, &k, &found, &e), 0);
    }
    assert_int_equal(cat_idem_expire(f->c, now, &n, &e), 0);
    assert_int_equal(n, 2100);
    /* the other user's k-1 (expiring at now + 1000) and the 400 unexpired stay */
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM idempotency_keys"), 401);
    assert_int_equal(cat_idem_expire(f->c, now, &n, &e), 0);
    assert_int_equal(n, 0);
}

static void make_key(struct cat_key *k, const char *user_id, const char *token, const char *access)
{
    memset(k, 0, sizeof(*k));
    util_uuid7(k->id);
    snprintf(k->user_id, sizeof(k->user_id), "%s", user_id);
    snprintf(k->name, sizeof(k->name), "laptop");
    k->role = ROLE_EDITOR;
    hash_of(token, k->token_hash);
    snprintf(k->s3_access_key, sizeof(k->s3_access_key), "%s", access);
    snprintf(k->s3_secret, sizeof(k->s3_secret), "secret-%s", access);
}

static void test_users_keys(void **state)
{
    struct fixture *f = *state;
    struct cat_user u, got;
    struct cat_key k, k2, kg;
    struct err e = {0};
    int64_t n = -1;
    char th[65];

    assert_string_equal(cat_role_name(ROLE_ADMIN), "admin");
    assert_int_equal(cat_role_parse("viewer"), ROLE_VIEWER);
    assert_int_equal(cat_role_parse("root"), -1);

    assert_int_equal(cat_user_count(f->c, &n, &e), 0);
    assert_int_equal(n, 0);
    assert_int_equal(cat_user_create(f->c, "admin", ROLE_ADMIN, &u, &e), 0);
    assert_true(util_uuid_valid(u.id));
    assert_int_equal(cat_user_create(f->c, "admin", ROLE_VIEWER, &got, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "admin"));
    assert_int_equal(cat_user_create(f->c, "x", (enum cat_role)9, &got, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(cat_user_get(f->c, u.id, &got, &e), 0);
    assert_string_equal(got.name, "admin");
    assert_int_equal(got.role, ROLE_ADMIN);
    assert_int_equal(got.created_at, u.created_at);
    assert_int_equal(cat_user_count(f->c, &n, &e), 0);
    assert_int_equal(n, 1);

    make_key(&k, u.id, "tok-1", "AKIAONE");
    assert_int_equal(cat_key_create(f->c, &k, &e), 0);
    assert_int_equal(cat_key_by_token_hash(f->c, k.token_hash, &kg, &e), 0);
    assert_string_equal(kg.id, k.id);
    assert_string_equal(kg.user_id, u.id);
    assert_int_equal(kg.role, ROLE_EDITOR);
    assert_string_equal(kg.s3_secret, "secret-AKIAONE");
    assert_int_equal(kg.revoked_at, 0);
    assert_int_equal(cat_key_by_access_key(f->c, "AKIAONE", &kg, &e), 0);
    assert_string_equal(kg.id, k.id);

    make_key(&k2, u.id, "tok-1", "AKIATWO");
    assert_int_equal(cat_key_create(f->c, &k2, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    make_key(&k2, u.id, "tok-2", "AKIAONE");
    assert_int_equal(cat_key_create(f->c, &k2, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "AKIAONE"));
    make_key(&k2, "00000000-0000-7000-8000-000000000000", "tok-3", "AKIA3");
    assert_int_equal(cat_key_create(f->c, &k2, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* revoked keys are not found */
    assert_int_equal(cat_key_revoke(f->c, k.id, &e), 0);
    assert_int_equal(cat_key_by_token_hash(f->c, k.token_hash, &kg, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_key_by_access_key(f->c, "AKIAONE", &kg, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_key_revoke(f->c, k.id, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    make_key(&k2, u.id, "tok-4", "");
    k2.revoked_at = util_now_ms();
    assert_int_equal(cat_key_create(f->c, &k2, &e), 0);
    memcpy(th, k2.token_hash, sizeof(th));
    assert_int_equal(cat_key_by_token_hash(f->c, th, &kg, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
}

struct audit_rows {
    json_t *rows[16];
    int n;
};

static int audit_collect(void *ctx, const char *row)
{
    struct audit_rows *r = ctx;
    json_error_t je;

    assert_true(r->n < 16);
    assert_null(strchr(row, '\n'));
    r->rows[r->n] = json_loads(row, 0, &je);
    assert_non_null(r->rows[r->n]);
    r->n++;
    return 0;
}

static void audit_rows_free(struct audit_rows *r)
{
    for (int i = 0; i < r->n; i++)
        json_decref(r->rows[i]);
    r->n = 0;
}

static void test_audit(void **state)
{
    struct fixture *f = *state;
    struct audit_rows r = {0};
    struct err e = {0};
    json_t *o;

    for (int i = 0; i < 5; i++) {
        char detail[64];
        struct cat_audit a = {.actor_user_id = "u-1",
                              .action = i ? "asset.update" : "asset.create",
                              .target_type = "asset",
                              .target_id = i % 2 ? "asset-b" : "asset-a",
                              .detail_json = detail,
                              .request_id = "req-1"};

        snprintf(detail, sizeof(detail), "{\"n\":%d}", i);
        assert_int_equal(cat_audit_append(f->c, &a, &e), 0);
    }
    {
        struct cat_audit a = {.action = "system.start"};

        assert_int_equal(cat_audit_append(f->c, &a, &e), 0);
        a.detail_json = "{bad";
        assert_int_equal(cat_audit_append(f->c, &a, &e), -1);
        assert_int_equal(e.code, ERR_INVALID);
    }

    assert_int_equal(cat_audit_list(f->c, "asset-a", 10, audit_collect, &r, &e), 0);
    assert_int_equal(r.n, 3);
    o = r.rows[0];
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "detail"), "n")), 4);
    assert_int_equal(json_integer_value(json_object_get(r.rows[2], "id")), 1);
    assert_string_equal(json_string_value(json_object_get(r.rows[2], "action")), "asset.create");
    assert_string_equal(json_string_value(json_object_get(o, "target_id")), "asset-a");
    assert_string_equal(json_string_value(json_object_get(o, "target_type")), "asset");
    assert_string_equal(json_string_value(json_object_get(o, "actor_user_id")), "u-1");
    assert_true(json_is_null(json_object_get(o, "actor_key_id")));
    assert_string_equal(json_string_value(json_object_get(o, "request_id")), "req-1");
    {
        const char *ts = json_string_value(json_object_get(o, "ts"));

        assert_non_null(ts);
        assert_int_equal(strlen(ts), 24);
        assert_int_equal(ts[10], 'T');
        assert_int_equal(ts[23], 'Z');
    }
    audit_rows_free(&r);

    assert_int_equal(cat_audit_list(f->c, NULL, 2, audit_collect, &r, &e), 0);
    assert_int_equal(r.n, 2);
    assert_string_equal(json_string_value(json_object_get(r.rows[0], "action")), "system.start");
    assert_true(json_is_null(json_object_get(r.rows[0], "detail")));
    assert_true(json_is_null(json_object_get(r.rows[0], "target_id")));
    audit_rows_free(&r);
}

/* ---- concurrency ------------------------------------------------------------------------ */

struct worker {
    struct catalog *c;
    const char *user_id;
    int64_t until;
    int ops;
    int errors;
    char last_err[256];
};

static int count_row(void *ctx, const struct cat_asset *a)
{
    (void)a;
    (*(int *)ctx)++;
    return 0;
}

static void note(struct worker *w, int rc, const struct err *e)
{
    w->ops++;
    if (rc < 0) {
        w->errors++;
        snprintf(w->last_err, sizeof(w->last_err), "%s", e->msg);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct err e = {0};

    while (util_mono_ms() < w->until) {
        struct cat_asset a = {0}, got;
        struct cat_audit au = {.action = "asset.create", .target_type = "asset"};
        struct cat_asset_filter flt = {.limit = 20};
        char hash[65];
        int n = 0;

        new_asset(&a, "video", w->user_id);
        note(w, cat_asset_create(w->c, &a, &e), &e);
        note(w, put_upload_rc(w->c, a.id, util_now_ms() + 60000, &e), &e);
        note(w, cat_asset_update_editorial(w->c, a.id, "t", NULL, "{\"k\":1}", NULL, &e), &e);
        hash_of(a.id, hash);
        note(w, cat_asset_complete(w->c, a.id, hash, "masters/x", 10, &e), &e);
        note(w, cat_asset_set_status(w->c, a.id, ASSET_PROCESSING, ASSET_READY, NULL, &e), &e);
        au.target_id = a.id;
        note(w, cat_audit_append(w->c, &au, &e), &e);
        note(w, cat_asset_get(w->c, a.id, &got, &e), &e);
        cat_asset_release(&got);
        note(w, cat_asset_list(w->c, &flt, count_row, &n, &e), &e);
        if (w->ops % 5 == 0)
            note(w, cat_asset_delete(w->c, a.id, NULL, &e), &e);
    }
    return NULL;
}

/* 8 threads over two handles on one file (two handles act like two processes: they do
 * not share the in-process write lock, so SQLite's own locking is exercised too). */
static void test_concurrency(void **state)
{
    struct fixture *f = *state;
    struct catalog *c2 = NULL;
    struct worker w[8];
    pthread_t t[8];
    struct cat_user u;
    struct err e = {0};
    int total = 0;

    assert_int_equal(cat_sqlite_open(&c2, f->path, &e), 0);
    assert_int_equal(cat_user_create(f->c, "worker", ROLE_EDITOR, &u, &e), 0);
    for (int i = 0; i < 8; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].c = i % 2 ? c2 : f->c;
        w[i].user_id = u.id;
        w[i].until = util_mono_ms() + 1200;
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        if (w[i].errors)
            fprintf(stderr, "worker %d: %d errors, last: %s\n", i, w[i].errors, w[i].last_err);
        assert_int_equal(w[i].errors, 0);
        assert_true(w[i].ops > 0);
        total += w[i].ops;
    }
    fprintf(stderr, "concurrency: %d operations, 0 errors\n", total);
    cat_close(c2);
}

/* ---- group commit: write bodies queued together share one transaction ---------------- */

/** A test body: inserts its tag into table g, then fails or asks for a retry if told. */
struct gbody {
    struct cat_sqlite *c;
    const char *tag;
    int fail; /* insert, then fail with ERR_CONFLICT */
    int busy; /* the first run answers RC_BUSY (the group runs again) */
    int runs;
    int rc;
    struct err e;
};

static int gbody_fn(struct conn *cn, void *arg, struct err *err)
{
    struct gbody *b = arg;
    char sql[128];

    b->runs++;
    snprintf(sql, sizeof(sql), "INSERT INTO g (tag) VALUES ('%s')", b->tag);
    if (sqlite3_exec(cn->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return err_set(err, ERR_BACKEND, "insert %s: %s", b->tag, sqlite3_errmsg(cn->db));
    if (b->busy && b->runs == 1)
        return RC_BUSY;
    if (b->fail)
        return err_set(err, ERR_CONFLICT, "%s refuses", b->tag);
    return 0;
}

static void *gbody_main(void *arg)
{
    struct gbody *b = arg;

    b->rc = cat__run(b->c, 1, gbody_fn, b, &b->e);
    return NULL;
}

static int gtable_body(struct conn *cn, void *arg, struct err *err)
{
    (void)arg;
    if (sqlite3_exec(cn->db, "CREATE TABLE IF NOT EXISTS g (tag TEXT)", NULL, NULL, NULL) !=
        SQLITE_OK)
        return err_set(err, ERR_BACKEND, "%s", sqlite3_errmsg(cn->db));
    return 0;
}

/* the number of rows of g with tag */
static int gcount_tag;
static const char *gcount_want;

static int gcount_body(struct conn *cn, void *arg, struct err *err)
{
    sqlite3_stmt *st = NULL;

    (void)arg;
    (void)err;
    sqlite3_prepare_v2(cn->db, "SELECT count(*) FROM g WHERE tag = ?1", -1, &st, NULL);
    sqlite3_bind_text(st, 1, gcount_want, -1, SQLITE_STATIC);
    gcount_tag = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return 0;
}

static int gcount(struct cat_sqlite *c, const char *tag)
{
    struct err e = {0};

    gcount_want = tag;
    assert_int_equal(cat__run(c, 0, gcount_body, NULL, &e), 0);
    return gcount_tag;
}

/* the number of bodies waiting in the write queue */
static int gqueued(struct cat_sqlite *c)
{
    int n = 0;

    pthread_mutex_lock(&c->wq_mu);
    for (struct cat__wreq *r = c->wq_head; r; r = r->next)
        n++;
    pthread_mutex_unlock(&c->wq_mu);
    return n;
}

/*
 * catalog_memory: a transaction that writes 40 MiB on a connection whose page cache may
 * reach 256 MiB holds SQLite's heap near the soft limit (the cache spills dirty pages to
 * the WAL); without the limit the same transaction keeps its 40 MiB in the cache.
 */
static size_t write_peak(struct catalog *c, long limit)
{
    const char *sql = "CREATE TABLE IF NOT EXISTS mem_probe (b BLOB); DELETE FROM mem_probe; "
                      "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n "
                      "WHERE x < 40000) INSERT INTO mem_probe SELECT randomblob(1000) FROM n";
    sqlite3_int64 cur = 0, peak = 0;
    struct err e = {0};

    cat_trim(c, 0); /* the next connection opens with the cache set now */
    cat_sqlite_set_memory(limit);
    assert_int_equal(sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &peak, 1), SQLITE_OK);
    assert_int_equal(cat_sqlite_exec(c, sql, NULL, &e), 0);
    assert_int_equal(sqlite3_status64(SQLITE_STATUS_MEMORY_USED, &cur, &peak, 0), SQLITE_OK);
    cat_sqlite_set_memory(0);
    return (size_t)peak;
}

static void test_memory_limit(void **state)
{
    struct fixture *f = *state;

    cat_sqlite_set_cache(256L << 20);
    assert_true(write_peak(f->c, 0) > (size_t)32 << 20);
    assert_true(write_peak(f->c, 8L << 20) < (size_t)16 << 20);
    cat_sqlite_set_cache(0);
    cat_trim(f->c, 0);
}

static void test_group_commit(void **state)
{
    struct fixture *f = *state;
    struct cat_sqlite *c = (struct cat_sqlite *)f->c;
    static const char *const tags[] = {"a", "b", "c", "d", "e", "f"};
    struct gbody b[6];
    pthread_t t[6];
    struct err e = {0};

    assert_int_equal(cat__run(c, 1, gtable_body, NULL, &e), 0);
    /* hold the queue as a running group would, so all six wait and then go as one group */
    pthread_mutex_lock(&c->wq_mu);
    c->wq_leading = 1;
    pthread_mutex_unlock(&c->wq_mu);
    for (int i = 0; i < 6; i++) {
        b[i] = (struct gbody){.c = c, .tag = tags[i], .fail = i == 1 || i == 4, .busy = i == 3};
        assert_int_equal(pthread_create(&t[i], NULL, gbody_main, &b[i]), 0);
        while (gqueued(c) < i + 1) /* in this order */
            sleep_ms(1);
    }
    pthread_mutex_lock(&c->wq_mu);
    c->wq_leading = 0;
    pthread_cond_broadcast(&c->wq_cv);
    pthread_mutex_unlock(&c->wq_mu);
    for (int i = 0; i < 6; i++)
        pthread_join(t[i], NULL);

    for (int i = 0; i < 6; i++) {
        if (b[i].fail) {
            /* failed alone: its error, none of its writes */
            assert_int_equal(b[i].rc, -1);
            assert_int_equal(b[i].e.code, ERR_CONFLICT);
            assert_int_equal(gcount(c, tags[i]), 0);
        } else {
            /* committed once, also after the group ran again for d's busy answer */
            assert_int_equal(b[i].rc, 0);
            assert_int_equal(gcount(c, tags[i]), 1);
        }
    }
    /* the busy answer made the whole group run again: bodies before d ran twice */
    assert_int_equal(b[0].runs, 2);
    assert_int_equal(b[3].runs, 2);
    assert_int_equal(b[5].runs, 1);
    assert_int_equal(gqueued(c), 0);
}

/* Another process holding the write lock: a short hold is waited out, a long one ends
 * in a clear ERR_BACKEND, never in SQLite's "database is locked". */
struct holder {
    const char *path;
    int hold_ms;
    volatile int locked;
};

static void *holder_main(void *arg)
{
    struct holder *h = arg;
    sqlite3 *db;

    assert_int_equal(sqlite3_open(h->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    __atomic_store_n(&h->locked, 1, __ATOMIC_SEQ_CST);
    sleep_ms(h->hold_ms);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return NULL;
}

static void hold_and_write(const char *path, struct catalog *c, int hold_ms, int *rc, struct err *e)
{
    struct holder h = {path, hold_ms, 0};
    struct cat_audit a = {.action = "test.locked"};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, holder_main, &h), 0);
    while (!__atomic_load_n(&h.locked, __ATOMIC_SEQ_CST))
        sleep_ms(1);
    *rc = cat_audit_append(c, &a, e);
    pthread_join(t, NULL);
}

static void test_busy(void **state)
{
    struct fixture *f = *state;
    struct catalog *tuned = NULL;
    struct err e = {0};
    int rc;

    hold_and_write(f->path, f->c, 300, &rc, &e);
    assert_int_equal(rc, 0);

    assert_int_equal(sqlite_open_tuned(&tuned, f->path, 20, 200, 0, &e), 0);
    hold_and_write(f->path, tuned, 1000, &rc, &e);
    assert_int_equal(rc, -1);
    assert_int_equal(e.code, ERR_BACKEND);
    assert_null(strstr(e.msg, "database is locked"));
    assert_non_null(strstr(e.msg, "another writer"));
    /* and it recovers once the lock is gone */
    {
        struct cat_audit a = {.action = "test.unlocked"};

        assert_int_equal(cat_audit_append(tuned, &a, &e), 0);
    }
    cat_close(tuned);
}

/* ---- workflow engine ------------------------------------------------------------------ */

/*
 * A write transaction opened by hand, so a test can step through cat_tx_* calls in line
 * (cat_tx_run itself is exercised in test_tx_run and test_lease_contention).
 */
struct open_tx {
    struct sqlite_tx tx; /* first: &tx.base is the struct cat_tx handed out */
    struct cat_sqlite *c;
};

static struct cat_tx *tx_open(struct catalog *c)
{
    struct open_tx *o = xcalloc(1, sizeof(*o));
    struct err e = {0};

    o->c = (struct cat_sqlite *)c;
    o->tx.base.ops = &cat__sqlite_wf_ops;
    o->tx.cn = pool_get(o->c, &e);
    assert_non_null(o->tx.cn);
    /* lead the write queue, as a group of write bodies does */
    pthread_mutex_lock(&o->c->wq_mu);
    while (o->c->wq_leading)
        pthread_cond_wait(&o->c->wq_cv, &o->c->wq_mu);
    o->c->wq_leading = 1;
    pthread_mutex_unlock(&o->c->wq_mu);
    assert_int_equal(exec_stmt(o->tx.cn, S_BEGIN, &e, "begin"), 0);
    return &o->tx.base;
}

static void tx_commit(struct cat_tx *tx)
{
    struct open_tx *o = (struct open_tx *)tx;
    struct err e = {0};

    assert_int_equal(o->tx.busy, 0);
    assert_int_equal(exec_stmt(o->tx.cn, S_COMMIT, &e, "commit"), 0);
    pthread_mutex_lock(&o->c->wq_mu);
    o->c->wq_leading = 0;
    pthread_cond_broadcast(&o->c->wq_cv);
    pthread_mutex_unlock(&o->c->wq_mu);
    pool_put(o->c, o->tx.cn);
    free(o);
}

/* Inserts a running workflow; id receives its id. */
static void wf_make(struct cat_tx *tx, const char *type, const char *asset_id, const char *idem,
                    char id[37])
{
    struct cat_workflow w = {0};
    struct err e = {0};

    util_uuid7(w.id);
    snprintf(w.type, sizeof(w.type), "%s", type);
    snprintf(w.status, sizeof(w.status), "%s", WF_RUNNING);
    if (asset_id)
        snprintf(w.asset_id, sizeof(w.asset_id), "%s", asset_id);
    if (idem)
        snprintf(w.idempotency_key, sizeof(w.idempotency_key), "%s", idem);
    w.input = (char *)"{\"k\":1}";
    assert_int_equal(cat_tx_wf_insert(tx, &w, &e), 0);
    memcpy(id, w.id, 37);
}

/* Fills j as a ready job of wf on queue; the caller adjusts and inserts it. */
static void job_fill(struct cat_job *j, const char *wf, const char *step, int item,
                     const char *queue, int priority, int64_t run_after)
{
    memset(j, 0, sizeof(*j));
    snprintf(j->workflow_id, sizeof(j->workflow_id), "%s", wf);
    snprintf(j->step, sizeof(j->step), "%s", step);
    j->item = item;
    snprintf(j->activity, sizeof(j->activity), "act_%s", step);
    snprintf(j->queue, sizeof(j->queue), "%s", queue);
    snprintf(j->status, sizeof(j->status), "%s", JOB_READY);
    j->priority = priority;
    j->run_after = run_after;
    j->max_attempts = 5;
    j->progress = -1;
    snprintf(j->idempotency_key, sizeof(j->idempotency_key), "%s/%s/%d", wf, step, item);
}

/* Inserts a ready job; returns its id. */
static int64_t job_make(struct cat_tx *tx, const char *wf, const char *step, int item,
                        const char *queue, int priority, int64_t run_after)
{
    struct cat_job j;
    struct err e = {0};

    job_fill(&j, wf, step, item, queue, priority, run_after);
    assert_int_equal(cat_tx_job_insert(tx, &j, &e), 0);
    assert_true(j.id > 0);
    return j.id;
}

/* What a lease or expiry callback saw, in order. */
struct seen_jobs {
    int n;
    int64_t id[32];
    int attempt[32];
    int priority[32];
    char owner[32][96];
    char status[32][12];
    int64_t lease_until[32];
    int64_t started_at[32];
};

static int seen_job(void *ctx, const struct cat_job *j)
{
    struct seen_jobs *s = ctx;

    assert_true(s->n < 32);
    s->id[s->n] = j->id;
    s->attempt[s->n] = j->attempt;
    s->priority[s->n] = j->priority;
    memcpy(s->owner[s->n], j->lease_owner, sizeof(j->lease_owner));
    memcpy(s->status[s->n], j->status, sizeof(j->status));
    s->lease_until[s->n] = j->lease_until;
    s->started_at[s->n] = j->started_at;
    s->n++;
    return 0;
}

static int lease(struct cat_tx *tx, const char *queue, int limit, const char *owner, int64_t until,
                 struct seen_jobs *s)
{
    struct err e = {0};

    memset(s, 0, sizeof(*s));
    assert_int_equal(cat_tx_jobs_lease(tx, queue, limit, owner, until, seen_job, s, &e), 0);
    return s->n;
}

/* A database with only migration 0001 applied (as acervod before 0002 left it) opens
 * and is upgraded to the latest version, its rows intact. */
static void test_wf_upgrade(void **state)
{
    struct fixture *f = *state;
    char dir[64], path[128], p[160];
    struct catalog *c = NULL;
    struct cat_asset got;
    struct err e = {0};
    sqlite3 *db;

    (void)f;
    snprintf(dir, sizeof(dir), "/tmp/acervo-catalog-v1-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/catalog.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0001, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                                  "applied_at INTEGER NOT NULL) STRICT;"
                                  "INSERT INTO schema_migrations VALUES (1, 0);"
                                  "INSERT INTO assets (id, type, status, original_filename, "
                                  "mime_type, file_size_bytes, created_at, updated_at) VALUES "
                                  "('0190aaaa-0000-7000-8000-000000000001', 'audio', 'ready', "
                                  "'old.wav', 'audio/wav', 77, 1, 2)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM sqlite_master WHERE name = 'jobs'"), 0);

    assert_int_equal(cat_sqlite_open(&c, path, &e), 0);
    assert_int_equal(cat_schema_version(c), SCHEMA_LATEST);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM schema_migrations"), SCHEMA_LATEST);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                                   "name IN ('workflows', 'workflow_steps', 'jobs', "
                                   "'workflow_events', 'activity_effects', 'workers')"),
                     6);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM pragma_table_info('assets') WHERE name "
                                   "IN ('duration_ms', 'frame_rate', 'duplicate_of')"),
                     3);
    assert_int_equal(cat_asset_get(c, "0190aaaa-0000-7000-8000-000000000001", &got, &e), 0);
    assert_string_equal(got.original_filename, "old.wav");
    assert_int_equal(got.file_size_bytes, 77);
    assert_int_equal(got.duration_ms, -1);
    assert_int_equal(got.width, -1);
    assert_true(got.frame_rate < 0);
    assert_string_equal(got.video_codec, "");
    assert_string_equal(got.duplicate_of, "");
    /* 0004: numbered, no language, no enrichment */
    assert_int_equal(got.seq, 1);
    assert_string_equal(got.language, "");
    assert_string_equal(got.ai_metadata, "{}");
    cat_asset_release(&got);
    cat_close(c);
    /* and re-opening changes nothing */
    assert_int_equal(cat_sqlite_open(&c, path, &e), 0);
    assert_int_equal(cat_schema_version(c), SCHEMA_LATEST);
    cat_close(c);

    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    rmdir(dir);
}

static void test_wf_rows(void **state)
{
    struct fixture *f = *state;
    struct cat_tx *tx = tx_open(f->c);
    struct cat_workflow w = {0}, got;
    struct cat_step s;
    struct err e = {0};
    char id[37], id2[37];

    /* insert: input NULL -> {}, "" -> NULL, times filled */
    util_uuid7(w.id);
    snprintf(w.type, sizeof(w.type), "ingest");
    snprintf(w.status, sizeof(w.status), "%s", WF_RUNNING);
    snprintf(w.idempotency_key, sizeof(w.idempotency_key), "idem-1");
    assert_int_equal(cat_tx_wf_insert(tx, &w, &e), 0);
    memcpy(id, w.id, 37);
    assert_int_equal(cat_tx_wf_get(tx, id, &got, &e), 0);
    assert_string_equal(got.type, "ingest");
    assert_string_equal(got.status, WF_RUNNING);
    assert_string_equal(got.input, "{}");
    assert_null(got.error);
    assert_string_equal(got.asset_id, "");
    assert_string_equal(got.created_by, "");
    assert_string_equal(got.idempotency_key, "idem-1");
    assert_true(got.created_at > 0);
    assert_int_equal(got.updated_at, got.created_at);
    assert_int_equal(got.finished_at, 0);
    cat_workflow_release(&got);
    assert_null(got.input);

    assert_int_equal(cat_tx_wf_by_idem(tx, "idem-1", &got, &e), 0);
    assert_string_equal(got.id, id);
    cat_workflow_release(&got);
    assert_int_equal(cat_tx_wf_by_idem(tx, "idem-2", &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* duplicates */
    assert_int_equal(cat_tx_wf_insert(tx, &w, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    util_uuid7(w.id);
    assert_int_equal(cat_tx_wf_insert(tx, &w, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "idem-1"));
    w.idempotency_key[0] = '\0';
    w.input = (char *)"[not json";
    assert_int_equal(cat_tx_wf_insert(tx, &w, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    /* "" idempotency keys are NULL: two workflows without one do not collide */
    wf_make(tx, "ingest", NULL, NULL, id2);
    wf_make(tx, "ingest", NULL, NULL, id2);

    /* update */
    assert_int_equal(cat_tx_wf_update(tx, id, WF_FAILED, "boom", 12345, &e), 0);
    assert_int_equal(cat_tx_wf_get(tx, id, &got, &e), 0);
    assert_string_equal(got.status, WF_FAILED);
    assert_string_equal(got.error, "boom");
    assert_int_equal(got.finished_at, 12345);
    assert_true(got.updated_at >= got.created_at);
    cat_workflow_release(&got);
    assert_int_equal(cat_tx_wf_update(tx, id, WF_RUNNING, NULL, 0, &e), 0);
    assert_int_equal(cat_tx_wf_get(tx, id, &got, &e), 0);
    assert_string_equal(got.status, WF_RUNNING);
    assert_null(got.error);
    assert_int_equal(got.finished_at, 0);
    cat_workflow_release(&got);
    assert_int_equal(
        cat_tx_wf_update(tx, "00000000-0000-7000-8000-000000000000", WF_FAILED, NULL, 0, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_tx_wf_update(tx, id, "sleeping", NULL, 0, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(cat_tx_wf_get(tx, "00000000-0000-7000-8000-000000000000", &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* steps */
    assert_int_equal(cat_tx_step_insert(tx, id, "probe", 3, &e), 0);
    assert_int_equal(cat_tx_step_insert(tx, id, "probe", 3, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(cat_tx_step_insert(tx, "00000000-0000-7000-8000-000000000000", "x", 1, &e),
                     -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_tx_step_get(tx, id, "probe", &s, &e), 0);
    assert_string_equal(s.status, "running");
    assert_int_equal(s.jobs_total, 3);
    assert_int_equal(s.jobs_done, 0);
    assert_true(s.started_at > 0);
    assert_int_equal(s.finished_at, 0);
    assert_int_equal(cat_tx_step_add_done(tx, id, "probe", &s, &e), 0);
    assert_int_equal(s.jobs_done, 1);
    assert_int_equal(cat_tx_step_add_done(tx, id, "probe", &s, &e), 0);
    assert_int_equal(s.jobs_done, 2);
    assert_int_equal(s.jobs_total, 3);
    assert_int_equal(cat_tx_step_get(tx, id, "probe", &s, &e), 0);
    assert_int_equal(s.jobs_done, 2);
    assert_int_equal(cat_tx_step_add_done(tx, id, "nope", &s, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_tx_step_get(tx, id, "nope", &s, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_tx_step_set_status(tx, id, "probe", "completed", &e), 0);
    assert_int_equal(cat_tx_step_get(tx, id, "probe", &s, &e), 0);
    assert_string_equal(s.status, "completed");
    assert_true(s.finished_at >= s.started_at);
    assert_true(s.finished_at > 0);
    assert_int_equal(cat_tx_step_set_status(tx, id, "probe", "running", &e), 0);
    assert_int_equal(cat_tx_step_get(tx, id, "probe", &s, &e), 0);
    assert_int_equal(s.finished_at, 0);
    assert_int_equal(cat_tx_step_set_status(tx, id, "nope", "failed", &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    tx_commit(tx);

    /* outside a transaction */
    assert_int_equal(cat_wf_get(f->c, id, &got, &e), 0);
    assert_string_equal(got.id, id);
    assert_string_equal(got.type, "ingest");
    /* the id may point into out */
    cat_workflow_release(&got);
    assert_int_equal(cat_wf_get(f->c, got.id, &got, &e), 0);
    assert_string_equal(got.id, id);
    cat_workflow_release(&got);
    assert_int_equal(cat_wf_get(f->c, "00000000-0000-7000-8000-000000000000", &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
}

static void test_lease_finish(void **state)
{
    struct fixture *f = *state;
    struct cat_tx *tx = tx_open(f->c);
    int64_t now = util_now_ms(), a, b, c, d, other, until = now + 30000;
    struct seen_jobs s;
    struct cat_job j, got;
    struct err e = {0};
    char wf[37];

    wf_make(tx, "ingest", NULL, NULL, wf);
    a = job_make(tx, wf, "s", 0, "q", 0, now - 1000);
    b = job_make(tx, wf, "s", 1, "q", 5, now - 10);
    c = job_make(tx, wf, "s", 2, "q", 5, now - 2000);
    d = job_make(tx, wf, "s", 3, "q", 9, now + 60000); /* not yet due */
    other = job_make(tx, wf, "s", 4, "other", 7, now - 1000);
    assert_true(a < b && b < c && c < d);

    /* duplicates: (workflow, step, item) and idempotency key */
    job_fill(&j, wf, "s", 1, "q", 0, now);
    snprintf(j.idempotency_key, sizeof(j.idempotency_key), "fresh-key");
    assert_int_equal(cat_tx_job_insert(tx, &j, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    job_fill(&j, wf, "s", 99, "q", 0, now);
    snprintf(j.idempotency_key, sizeof(j.idempotency_key), "%s/s/1", wf);
    assert_int_equal(cat_tx_job_insert(tx, &j, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "idempotency"));

    /* highest priority first, then oldest; not-due and other queues left alone; limit */
    assert_int_equal(lease(tx, "q", 2, "w1", until, &s), 2);
    assert_int_equal(s.id[0], b);
    assert_int_equal(s.id[1], c);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s.attempt[i], 1);
        assert_string_equal(s.owner[i], "w1");
        assert_string_equal(s.status[i], JOB_LEASED);
        assert_int_equal(s.lease_until[i], until);
        assert_true(s.started_at[i] >= now);
    }
    assert_int_equal(lease(tx, "q", 10, "w1", until, &s), 1);
    assert_int_equal(s.id[0], a);
    /* in one lease, the callback sees them in that order too */
    {
        int64_t low = job_make(tx, wf, "p", 0, "p", 1, now - 3000);
        int64_t high1 = job_make(tx, wf, "p", 1, "p", 3, now - 10);
        int64_t high2 = job_make(tx, wf, "p", 2, "p", 3, now - 20);
        int64_t mid = job_make(tx, wf, "p", 3, "p", 2, now - 10);

        assert_int_equal(lease(tx, "p", 10, "w1", until, &s), 4);
        assert_int_equal(s.id[0], high1);
        assert_int_equal(s.id[1], high2);
        assert_int_equal(s.id[2], mid);
        assert_int_equal(s.id[3], low);
        assert_int_equal(s.priority[0], 3);
    }
    /* a second lease gets nothing */
    assert_int_equal(lease(tx, "q", 10, "w2", until, &s), 0);
    assert_int_equal(cat_tx_job_get(tx, d, &got, &e), 0);
    assert_string_equal(got.status, JOB_READY);
    assert_int_equal(got.attempt, 0);
    assert_true(got.progress < 0);
    cat_job_release(&got);
    assert_int_equal(cat_tx_job_get(tx, other, &got, &e), 0);
    assert_string_equal(got.status, JOB_READY);
    cat_job_release(&got);

    /* finish: wrong owner and stale attempt lose; the holder wins once */
    assert_int_equal(cat_tx_job_finish(tx, b, "w2", 1, JOB_COMPLETED, NULL, NULL, NULL, &e), 0);
    assert_int_equal(cat_tx_job_finish(tx, b, "w1", 2, JOB_COMPLETED, NULL, NULL, NULL, &e), 0);
    assert_int_equal(cat_tx_job_finish(tx, b, "w1", 1, "ready", NULL, NULL, NULL, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(cat_tx_job_finish(tx, b, "w1", 1, JOB_COMPLETED, "{bad", NULL, NULL, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(cat_tx_job_finish(tx, b, "w1", 1, JOB_COMPLETED, "{\"x\":1}", NULL, NULL, &e),
                     1);
    assert_int_equal(cat_tx_job_finish(tx, b, "w1", 1, JOB_COMPLETED, NULL, NULL, NULL, &e), 0);
    assert_int_equal(cat_tx_job_get(tx, b, &got, &e), 0);
    assert_string_equal(got.status, JOB_COMPLETED);
    assert_string_equal(got.output, "{\"x\":1}");
    assert_string_equal(got.lease_owner, "w1");
    assert_int_equal(got.lease_until, 0);
    assert_true(got.finished_at >= now);
    assert_true(got.progress == 100);
    assert_int_equal(got.attempt, 1);
    cat_job_release(&got);
    assert_null(got.output);
    /* owner NULL: whoever holds it */
    assert_int_equal(
        cat_tx_job_finish(tx, a, NULL, 1, JOB_FAILED, NULL, "bad input", "invalid", &e), 1);
    assert_int_equal(cat_tx_job_get(tx, a, &got, &e), 0);
    assert_string_equal(got.status, JOB_FAILED);
    assert_string_equal(got.error, "bad input");
    assert_string_equal(got.error_class, "invalid");
    assert_true(got.progress < 0);
    cat_job_release(&got);

    /* requeue, then the next lease bumps the attempt */
    assert_int_equal(cat_tx_job_requeue(tx, c, "w2", 1, now - 1, "lost", "io", &e), 0);
    assert_int_equal(cat_tx_job_requeue(tx, c, "w1", 1, now - 1, "timeout", "transient", &e), 1);
    assert_int_equal(cat_tx_job_get(tx, c, &got, &e), 0);
    assert_string_equal(got.status, JOB_READY);
    assert_string_equal(got.lease_owner, "");
    assert_int_equal(got.lease_until, 0);
    assert_int_equal(got.run_after, now - 1);
    assert_string_equal(got.error, "timeout");
    assert_string_equal(got.error_class, "transient");
    assert_int_equal(got.attempt, 1);
    cat_job_release(&got);
    assert_int_equal(lease(tx, "q", 10, "w2", until, &s), 1);
    assert_int_equal(s.id[0], c);
    assert_int_equal(s.attempt[0], 2);
    assert_string_equal(s.owner[0], "w2");
    assert_int_equal(cat_tx_job_requeue(tx, c, NULL, 1, now, NULL, NULL, &e), 0);
    assert_int_equal(cat_tx_job_requeue(tx, c, NULL, 2, now + 60000, NULL, NULL, &e), 1);
    assert_int_equal(lease(tx, "q", 10, "w2", until, &s), 0); /* not due yet */
    assert_int_equal(cat_tx_job_get(tx, 999999, &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    tx_commit(tx);
}

struct cancel_seen {
    int n;
    int64_t id;
    int attempt;
};

static int cancel_collect(void *ctx, int64_t id, int attempt)
{
    struct cancel_seen *cs = ctx;

    cs->n++;
    cs->id = id;
    cs->attempt = attempt;
    return 0;
}

static void test_heartbeat_cancel_retry(void **state)
{
    struct fixture *f = *state;
    struct cat_tx *tx = tx_open(f->c);
    int64_t now = util_now_ms(), run, queued, done, leased = -1, n = -1;
    struct seen_jobs s;
    struct cat_job got;
    struct cat_step st;
    struct err e = {0};
    char wf[37];

    wf_make(tx, "ingest", NULL, NULL, wf);
    assert_int_equal(cat_tx_step_insert(tx, wf, "s", 3, &e), 0);
    run = job_make(tx, wf, "s", 0, "q", 0, now - 1);
    assert_int_equal(lease(tx, "q", 1, "w1", now + 1000, &s), 1);
    assert_int_equal(s.id[0], run);
    queued = job_make(tx, wf, "s", 1, "q", 0, now + 60000);
    done = job_make(tx, wf, "s", 2, "q", 0, now - 1);
    assert_int_equal(lease(tx, "q", 1, "w1", now + 1000, &s), 1);
    assert_int_equal(cat_tx_job_finish(tx, done, "w1", 1, JOB_COMPLETED, NULL, NULL, NULL, &e), 1);

    /* extended, with progress; -1 and NULL leave them */
    assert_int_equal(cat_tx_jobs_heartbeat(tx, run, "w1", 1, now + 5000, 42.5, "half", &e), 1);
    assert_int_equal(cat_tx_job_get(tx, run, &got, &e), 0);
    assert_int_equal(got.lease_until, now + 5000);
    assert_true(got.progress == 42.5);
    assert_string_equal(got.progress_detail, "half");
    assert_true(got.heartbeat_at >= now);
    cat_job_release(&got);
    assert_int_equal(cat_tx_jobs_heartbeat(tx, run, "w1", 1, now + 6000, -1, NULL, &e), 1);
    assert_int_equal(cat_tx_job_get(tx, run, &got, &e), 0);
    assert_int_equal(got.lease_until, now + 6000);
    assert_true(got.progress == 42.5);
    assert_string_equal(got.progress_detail, "half");
    cat_job_release(&got);
    assert_int_equal(cat_tx_jobs_heartbeat(tx, run, "w2", 1, now + 7000, -1, NULL, &e), 0);
    assert_int_equal(cat_tx_jobs_heartbeat(tx, run, "w1", 2, now + 7000, -1, NULL, &e), 0);

    /* cancel: the queued job ends, the running one is asked to stop */
    assert_int_equal(cat_tx_jobs_cancel(tx, wf, &leased, &e), 0);
    assert_int_equal(leased, 1);
    assert_int_equal(cat_tx_job_get(tx, queued, &got, &e), 0);
    assert_string_equal(got.status, JOB_CANCELLED);
    assert_true(got.finished_at >= now);
    cat_job_release(&got);
    assert_int_equal(cat_tx_job_get(tx, done, &got, &e), 0);
    assert_string_equal(got.status, JOB_COMPLETED);
    cat_job_release(&got);
    assert_int_equal(cat_tx_jobs_heartbeat(tx, run, "w1", 1, now + 8000, 50, NULL, &e), 2);
    assert_int_equal(cat_tx_jobs_heartbeat(tx, run, "w9", 1, now + 8000, 50, NULL, &e), 0);
    assert_int_equal(cat_tx_jobs_count(tx, wf, NULL, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(cat_tx_jobs_count(tx, wf, JOB_CANCELLED, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(cat_tx_jobs_count(tx, wf, JOB_LEASED, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(cat_tx_jobs_count(tx, wf, JOB_FAILED, &n, &e), 0);
    assert_int_equal(n, 0);
    tx_commit(tx);
    {
        struct cancel_seen cs = {0};

        assert_int_equal(cat_jobs_cancel_requested(f->c, "w1", cancel_collect, &cs, &e), 0);
        assert_int_equal(cs.n, 1);
        assert_int_equal(cs.id, run);
        assert_int_equal(cs.attempt, 1);
        cs.n = 0;
        assert_int_equal(cat_jobs_cancel_requested(f->c, "w2", cancel_collect, &cs, &e), 0);
        assert_int_equal(cs.n, 0);
    }

    /* the running job stops as cancelled; retry makes both cancelled jobs ready again */
    tx = tx_open(f->c);
    assert_int_equal(
        cat_tx_job_finish(tx, run, "w1", 1, JOB_CANCELLED, NULL, "cancelled", "cancelled", &e), 1);
    assert_int_equal(cat_tx_step_set_status(tx, wf, "s", "cancelled", &e), 0);
    assert_int_equal(cat_tx_jobs_cancel(tx, wf, &leased, &e), 0);
    assert_int_equal(leased, 0);
    assert_int_equal(cat_tx_jobs_retry(tx, wf, &e), 0);
    assert_int_equal(cat_tx_jobs_count(tx, wf, JOB_READY, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(cat_tx_job_get(tx, run, &got, &e), 0);
    assert_string_equal(got.status, JOB_READY);
    assert_int_equal(got.attempt, 0);
    assert_int_equal(got.cancel_requested, 0);
    assert_null(got.error);
    assert_string_equal(got.error_class, "");
    assert_string_equal(got.lease_owner, "");
    assert_int_equal(got.finished_at, 0);
    assert_true(got.progress < 0);
    assert_true(got.run_after >= now);
    cat_job_release(&got);
    assert_int_equal(cat_tx_job_get(tx, done, &got, &e), 0);
    assert_string_equal(got.status, JOB_COMPLETED); /* untouched */
    cat_job_release(&got);
    assert_int_equal(cat_tx_step_get(tx, wf, "s", &st, &e), 0);
    assert_string_equal(st.status, "running");
    assert_int_equal(st.finished_at, 0);
    assert_int_equal(lease(tx, "q", 10, "w3", now + 1000, &s), 2);
    assert_int_equal(s.attempt[0], 1);
    tx_commit(tx);
}

static void test_expired_next_due(void **state)
{
    struct fixture *f = *state;
    const char *const queues[] = {"q", "r"};
    const char *const other[] = {"zzz"};
    int64_t now = util_now_ms(), j1, j2, j3, j4, run = 0, exp = 0;
    struct seen_jobs s;
    struct cat_tx *tx;
    struct err e = {0};
    char wf[37];

    /* nothing at all */
    assert_int_equal(cat_jobs_next_due(f->c, queues, 2, &run, &exp, &e), 0);
    assert_true(run == INT64_MAX);
    assert_true(exp == INT64_MAX);

    tx = tx_open(f->c);
    wf_make(tx, "ingest", NULL, NULL, wf);
    j1 = job_make(tx, wf, "s", 0, "q", 0, now - 10);
    j2 = job_make(tx, wf, "s", 1, "q", 0, now - 10);
    j3 = job_make(tx, wf, "s", 2, "q", 0, now - 10);
    /* leases ending at now-10, now-1000 and in the future */
    assert_int_equal(lease(tx, "q", 1, "w1", now - 10, &s), 1);
    assert_int_equal(s.id[0], j1);
    assert_int_equal(lease(tx, "q", 1, "w1", now - 1000, &s), 1);
    assert_int_equal(s.id[0], j2);
    assert_int_equal(lease(tx, "q", 1, "w1", now + 60000, &s), 1);
    assert_int_equal(s.id[0], j3);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cat_tx_jobs_expired(tx, 10, seen_job, &s, &e), 0);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.id[0], j2); /* oldest lease first */
    assert_int_equal(s.id[1], j1);
    assert_string_equal(s.status[0], JOB_LEASED);
    memset(&s, 0, sizeof(s));
    assert_int_equal(cat_tx_jobs_expired(tx, 1, seen_job, &s, &e), 0);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.id[0], j2);
    /* the reaper puts it back from its callback's rows */
    assert_int_equal(cat_tx_job_requeue(tx, j2, NULL, 1, now + 5000, "lease expired", NULL, &e), 1);
    j4 = job_make(tx, wf, "s", 3, "r", 0, now + 3000);
    job_make(tx, wf, "s", 4, "zzz", 0, now + 1000);
    tx_commit(tx);
    (void)j4;

    assert_int_equal(cat_jobs_next_due(f->c, queues, 2, &run, &exp, &e), 0);
    assert_int_equal(run, now + 3000);
    assert_int_equal(exp, now - 10);
    assert_int_equal(cat_jobs_next_due(f->c, queues, 1, &run, &exp, &e), 0);
    assert_int_equal(run, now + 5000);
    assert_int_equal(cat_jobs_next_due(f->c, other, 1, &run, &exp, &e), 0);
    assert_int_equal(run, now + 1000);
    assert_int_equal(cat_jobs_next_due(f->c, queues, 0, &run, &exp, &e), 0);
    assert_true(run == INT64_MAX);
    assert_int_equal(exp, now - 10);
}

struct outputs_seen {
    int n;
    char step[8][32];
    int item[8];
    char output[8][64];
};

static int output_collect(void *ctx, const char *step, int item, const char *output)
{
    struct outputs_seen *o = ctx;

    assert_true(o->n < 8);
    snprintf(o->step[o->n], sizeof(o->step[0]), "%s", step);
    o->item[o->n] = item;
    snprintf(o->output[o->n], sizeof(o->output[0]), "%s", output);
    o->n++;
    return 0;
}

struct json_rows {
    int n;
    json_t *rows[16];
};

static int json_collect(void *ctx, const char *row)
{
    struct json_rows *r = ctx;
    json_error_t je;

    assert_true(r->n < 16);
    assert_null(strchr(row, '\n'));
    r->rows[r->n] = json_loads(row, 0, &je);
    assert_non_null(r->rows[r->n]);
    r->n++;
    return 0;
}

static void json_rows_free(struct json_rows *r)
{
    for (int i = 0; i < r->n; i++)
        json_decref(r->rows[i]);
    r->n = 0;
}

/* Completes job id, leased by "w" in attempt 1, with output. */
static void job_complete(struct cat_tx *tx, const char *queue, int64_t id, const char *output)
{
    struct seen_jobs s;
    struct err e = {0};

    assert_int_equal(lease(tx, queue, 1, "w", util_now_ms() + 1000, &s), 1);
    assert_int_equal(s.id[0], id);
    assert_int_equal(cat_tx_job_finish(tx, id, "w", 1, JOB_COMPLETED, output, NULL, NULL, &e), 1);
}

static void test_outputs_events(void **state)
{
    struct fixture *f = *state;
    struct cat_tx *tx = tx_open(f->c);
    int64_t now = util_now_ms(), id;
    struct outputs_seen o = {0};
    struct json_rows r = {0};
    struct seen_jobs s;
    struct err e = {0};
    char wf[37], wf2[37];
    json_t *row;

    wf_make(tx, "ingest", NULL, NULL, wf);
    wf_make(tx, "ingest", NULL, NULL, wf2);
    /* completed in an order unlike (step, item) */
    job_complete(tx, "q", job_make(tx, wf, "b", 1, "q", 0, now - 1), "{\"b\":1}");
    job_complete(tx, "q", job_make(tx, wf, "a", 0, "q", 0, now - 1), "{\"a\":0}");
    job_complete(tx, "q", job_make(tx, wf, "b", 0, "q", 0, now - 1), "[0]");
    job_complete(tx, "q", job_make(tx, wf, "c", 0, "q", 0, now - 1), NULL); /* no output */
    job_complete(tx, "q", job_make(tx, wf2, "a", 0, "q", 0, now - 1), "{\"other\":1}");
    id = job_make(tx, wf, "d", 0, "q", 0, now - 1);
    assert_int_equal(lease(tx, "q", 1, "w", now + 1000, &s), 1);
    assert_int_equal(cat_tx_job_finish(tx, id, "w", 1, JOB_FAILED, "{\"f\":1}", "x", NULL, &e), 1);

    assert_int_equal(cat_tx_job_outputs(tx, wf, output_collect, &o, &e), 0);
    assert_int_equal(o.n, 3);
    assert_string_equal(o.step[0], "a");
    assert_string_equal(o.output[0], "{\"a\":0}");
    assert_string_equal(o.step[1], "b");
    assert_int_equal(o.item[1], 0);
    assert_string_equal(o.output[1], "[0]");
    assert_string_equal(o.step[2], "b");
    assert_int_equal(o.item[2], 1);

    /* history */
    {
        struct cat_event ev = {.workflow_id = wf,
                               .job_id = id,
                               .type = "job.failed",
                               .step = "d",
                               .attempt = 1,
                               .worker = "w",
                               .detail_json = "{\"error\":\"x\"}"};
        struct cat_event bare = {.workflow_id = wf, .type = "workflow.started"};
        struct cat_event other = {.workflow_id = wf2, .type = "workflow.started"};

        assert_int_equal(cat_tx_event_append(tx, &bare, &e), 0);
        assert_int_equal(cat_tx_event_append(tx, &other, &e), 0);
        assert_int_equal(cat_tx_event_append(tx, &ev, &e), 0);
        ev.detail_json = "{nope";
        assert_int_equal(cat_tx_event_append(tx, &ev, &e), -1);
        assert_int_equal(e.code, ERR_INVALID);
    }
    tx_commit(tx);

    assert_int_equal(cat_wf_events(f->c, wf, 0, 100, json_collect, &r, &e), 0);
    assert_int_equal(r.n, 2);
    row = r.rows[0];
    assert_string_equal(json_string_value(json_object_get(row, "type")), "workflow.started");
    assert_true(json_is_integer(json_object_get(row, "id")));
    assert_true(json_is_null(json_object_get(row, "job_id")));
    assert_true(json_is_null(json_object_get(row, "step")));
    assert_true(json_is_null(json_object_get(row, "attempt")));
    assert_true(json_is_null(json_object_get(row, "worker")));
    assert_true(json_is_null(json_object_get(row, "detail")));
    {
        const char *ts = json_string_value(json_object_get(row, "ts"));

        assert_non_null(ts);
        assert_int_equal(strlen(ts), 24);
        assert_int_equal(ts[10], 'T');
    }
    row = r.rows[1];
    assert_true(json_integer_value(json_object_get(row, "id")) >
                json_integer_value(json_object_get(r.rows[0], "id")));
    assert_string_equal(json_string_value(json_object_get(row, "type")), "job.failed");
    assert_int_equal(json_integer_value(json_object_get(row, "job_id")), id);
    assert_string_equal(json_string_value(json_object_get(row, "step")), "d");
    assert_int_equal(json_integer_value(json_object_get(row, "attempt")), 1);
    assert_string_equal(json_string_value(json_object_get(row, "worker")), "w");
    assert_string_equal(json_string_value(json_object_get(json_object_get(row, "detail"), "error")),
                        "x");
    {
        json_int_t first = json_integer_value(json_object_get(r.rows[0], "id"));

        json_rows_free(&r);
        assert_int_equal(cat_wf_events(f->c, wf, first, 100, json_collect, &r, &e), 0);
        assert_int_equal(r.n, 1);
        assert_string_equal(json_string_value(json_object_get(r.rows[0], "type")), "job.failed");
        json_rows_free(&r);
        assert_int_equal(cat_wf_events(f->c, wf, 0, 1, json_collect, &r, &e), 0);
        assert_int_equal(r.n, 1);
        assert_int_equal(json_integer_value(json_object_get(r.rows[0], "id")), first);
        json_rows_free(&r);
    }

    /* steps and jobs of a workflow */
    {
        struct seen_jobs all = {0};

        struct seen_jobs some = {0};

        assert_int_equal(cat_wf_jobs(f->c, wf, 0, seen_job, &all, &e), 0);
        assert_int_equal(all.n, 5);
        for (int i = 1; i < all.n; i++)
            assert_true(all.id[i - 1] < all.id[i]);
        /* a limit reads the first ones only */
        assert_int_equal(cat_wf_jobs(f->c, wf, 2, seen_job, &some, &e), 0);
        assert_int_equal(some.n, 2);
        assert_true(some.id[0] == all.id[0] && some.id[1] == all.id[1]);
        assert_int_equal(cat_wf_jobs(f->c, wf, -1, seen_job, &some, &e), -1);
        assert_int_equal(e.code, ERR_INVALID);
    }
}

struct steps_seen {
    int n;
    char step[8][32];
    int done[8];
};

static int step_collect(void *ctx, const struct cat_step *s)
{
    struct steps_seen *o = ctx;

    assert_true(o->n < 8);
    snprintf(o->step[o->n], sizeof(o->step[0]), "%s", s->step);
    o->done[o->n] = s->jobs_done;
    o->n++;
    return 0;
}

static void test_wf_steps_list(void **state)
{
    struct fixture *f = *state;
    struct cat_tx *tx = tx_open(f->c);
    struct steps_seen ss = {0};
    struct err e = {0};
    char wf[37];

    wf_make(tx, "ingest", NULL, NULL, wf);
    assert_int_equal(cat_tx_step_insert(tx, wf, "zeta", 1, &e), 0);
    tx_commit(tx);
    sleep_ms(3);
    tx = tx_open(f->c);
    assert_int_equal(cat_tx_step_insert(tx, wf, "alpha", 2, &e), 0);
    assert_int_equal(cat_tx_step_insert(tx, wf, "beta", 2, &e), 0);
    assert_int_equal(cat_tx_step_add_done(tx, wf, "beta", NULL, &e), 0);
    tx_commit(tx);
    assert_int_equal(cat_wf_steps(f->c, wf, step_collect, &ss, &e), 0);
    assert_int_equal(ss.n, 3);
    assert_string_equal(ss.step[0], "zeta"); /* started first */
    assert_string_equal(ss.step[1], "alpha");
    assert_string_equal(ss.step[2], "beta");
    assert_int_equal(ss.done[2], 1);
}

struct wf_seen {
    int n;
    char id[16][37];
};

static int wf_collect(void *ctx, const struct cat_workflow *w)
{
    struct wf_seen *o = ctx;

    assert_true(o->n < 16);
    assert_non_null(w->input);
    memcpy(o->id[o->n++], w->id, 37);
    return 0;
}

static int wf_list_n(struct catalog *c, struct cat_workflow_filter *flt, struct wf_seen *o)
{
    struct err e = {0};

    memset(o, 0, sizeof(*o));
    if (!flt->limit)
        flt->limit = 100;
    assert_int_equal(cat_wf_list(c, flt, wf_collect, o, &e), 0);
    return o->n;
}

static void test_wf_list(void **state)
{
    struct fixture *f = *state;
    const char *a1 = "0190aaaa-0000-7000-8000-0000000000a1";
    const char *a2 = "0190aaaa-0000-7000-8000-0000000000a2";
    struct cat_tx *tx = tx_open(f->c);
    int64_t now = util_now_ms();
    struct cat_workflow w = {0};
    struct wf_seen o;
    struct err e = {0};
    char w1[37], w2[37], w3[37], w4[37];

    wf_make(tx, "ingest", a1, NULL, w1);
    wf_make(tx, "diagnostic", a2, NULL, w2);
    wf_make(tx, "ingest", a1, NULL, w3);
    /* w4: created by a user, no asset */
    util_uuid7(w.id);
    snprintf(w.type, sizeof(w.type), "ingest");
    snprintf(w.status, sizeof(w.status), "%s", WF_RUNNING);
    snprintf(w.created_by, sizeof(w.created_by), "user-1");
    assert_int_equal(cat_tx_wf_insert(tx, &w, &e), 0);
    memcpy(w4, w.id, 37);
    assert_int_equal(cat_tx_wf_update(tx, w3, WF_FAILED, "x", now, &e), 0);
    job_make(tx, w1, "s", 0, "transcode", 0, now);
    job_make(tx, w1, "s", 1, "transcode", 0, now);
    job_make(tx, w3, "s", 0, "ingest", 0, now);
    tx_commit(tx);

    {
        struct cat_workflow_filter flt = {0};

        assert_int_equal(wf_list_n(f->c, &flt, &o), 4);
        assert_string_equal(o.id[0], w4); /* newest first */
        assert_string_equal(o.id[3], w1);
    }
    {
        struct cat_workflow_filter flt = {.type = "ingest"};

        assert_int_equal(wf_list_n(f->c, &flt, &o), 3);
        assert_string_equal(o.id[0], w4);
        assert_string_equal(o.id[1], w3);
        assert_string_equal(o.id[2], w1);
    }
    {
        struct cat_workflow_filter flt = {.asset_id = a1};

        assert_int_equal(wf_list_n(f->c, &flt, &o), 2);
        assert_string_equal(o.id[0], w3);
        assert_string_equal(o.id[1], w1);
    }
    {
        struct cat_workflow_filter flt = {.status = WF_FAILED};

        assert_int_equal(wf_list_n(f->c, &flt, &o), 1);
        assert_string_equal(o.id[0], w3);
    }
    {
        struct cat_workflow_filter flt = {.created_by = "user-1"};

        assert_int_equal(wf_list_n(f->c, &flt, &o), 1);
        assert_string_equal(o.id[0], w4);
    }
    {
        struct cat_workflow_filter flt = {.queue = "transcode"};

        assert_int_equal(wf_list_n(f->c, &flt, &o), 1); /* once, though it has two jobs */
        assert_string_equal(o.id[0], w1);
    }
    {
        struct cat_workflow_filter flt = {
            .type = "ingest", .asset_id = a1, .status = WF_RUNNING, .queue = "", .created_by = ""};

        assert_int_equal(wf_list_n(f->c, &flt, &o), 1);
        assert_string_equal(o.id[0], w1);
    }
    {
        struct cat_workflow_filter flt = {.type = "diagnostic", .queue = "ingest"};

        assert_int_equal(wf_list_n(f->c, &flt, &o), 0);
    }
    {
        struct cat_workflow_filter flt = {.status = "bogus"};

        assert_int_equal(cat_wf_list(f->c, &flt, wf_collect, &o, &e), -1);
        assert_int_equal(e.code, ERR_INVALID);
    }
    /* keyset pagination */
    {
        struct cat_workflow_filter flt = {.limit = 3};
        char after[37];

        assert_int_equal(wf_list_n(f->c, &flt, &o), 3);
        assert_string_equal(o.id[2], w2);
        memcpy(after, o.id[2], 37);
        flt.after_id = after;
        assert_int_equal(wf_list_n(f->c, &flt, &o), 1);
        assert_string_equal(o.id[0], w1);
        flt.after_id = w1;
        assert_int_equal(wf_list_n(f->c, &flt, &o), 0);
        flt.after_id = w4;
        flt.type = "ingest";
        flt.limit = 1;
        assert_int_equal(wf_list_n(f->c, &flt, &o), 1);
        assert_string_equal(o.id[0], w3);
        flt.limit = -5; /* clamped to 1 */
        assert_int_equal(wf_list_n(f->c, &flt, &o), 1);
    }
    (void)w2;
}

struct depths_seen {
    int n;
    struct cat_queue_depth d[8];
};

static int depth_collect(void *ctx, const struct cat_queue_depth *d)
{
    struct depths_seen *o = ctx;

    assert_true(o->n < 8);
    o->d[o->n++] = *d;
    return 0;
}

static const struct cat_queue_depth *depth_of(const struct depths_seen *o, const char *q)
{
    for (int i = 0; i < o->n; i++)
        if (strcmp(o->d[i].queue, q) == 0)
            return &o->d[i];
    return NULL;
}

static void test_queue_depths_workers(void **state)
{
    struct fixture *f = *state;
    struct cat_tx *tx = tx_open(f->c);
    int64_t now = util_now_ms();
    const struct cat_queue_depth *d;
    struct depths_seen o = {0};
    struct cat_job j;
    struct err e = {0};
    char wf[37];

    wf_make(tx, "ingest", NULL, NULL, wf);
    job_make(tx, wf, "s", 0, "ingest", 0, now - 5000);
    job_make(tx, wf, "s", 1, "ingest", 3, now - 1000);
    job_make(tx, wf, "s", 2, "ingest", 0, now + 60000);
    /* leased jobs, inserted as such (every field comes from the struct) */
    job_fill(&j, wf, "s", 3, "ingest", 0, now - 9000);
    snprintf(j.status, sizeof(j.status), "%s", JOB_LEASED);
    snprintf(j.lease_owner, sizeof(j.lease_owner), "w1");
    j.lease_until = now + 30000;
    j.attempt = 1;
    j.started_at = now - 10;
    assert_int_equal(cat_tx_job_insert(tx, &j, &e), 0);
    job_fill(&j, wf, "s", 4, "transcode", 0, now - 9000);
    snprintf(j.status, sizeof(j.status), "%s", JOB_LEASED);
    snprintf(j.lease_owner, sizeof(j.lease_owner), "w1");
    j.lease_until = now + 30000;
    j.attempt = 2;
    j.progress = 12.5;
    assert_int_equal(cat_tx_job_insert(tx, &j, &e), 0);
    {
        struct cat_job got;

        assert_int_equal(cat_tx_job_get(tx, j.id, &got, &e), 0);
        assert_string_equal(got.status, JOB_LEASED);
        assert_string_equal(got.lease_owner, "w1");
        assert_int_equal(got.attempt, 2);
        assert_true(got.progress == 12.5);
        assert_int_equal(got.max_attempts, 5);
        assert_string_equal(got.activity, "act_s");
        assert_string_equal(got.idempotency_key, j.idempotency_key);
        cat_job_release(&got);
    }
    /* completed jobs do not count */
    job_fill(&j, wf, "s", 5, "ingest", 0, now - 9000);
    snprintf(j.status, sizeof(j.status), "%s", JOB_COMPLETED);
    assert_int_equal(cat_tx_job_insert(tx, &j, &e), 0);
    tx_commit(tx);

    {
        struct cat_worker w1 = {.id = "host-a:1",
                                .host = "host-a",
                                .pid = 1,
                                .queues_json = "{\"ingest\":4,\"transcode\":2}"};
        struct cat_worker w2 = {.id = "host-b:2",
                                .host = "host-b",
                                .pid = 2,
                                .queues_json = "{\"ingest\":3}",
                                .heartbeat_at = now - 120000}; /* dead */
        struct cat_worker w3 = {
            .id = "host-c:3", .host = "host-c", .pid = 3, .queues_json = "{\"ai_enrich\":1}"};
        struct cat_worker bad = {.id = "host-d:4", .host = "host-d", .queues_json = "{x"};

        assert_int_equal(cat_worker_put(f->c, &w1, &e), 0);
        assert_int_equal(cat_worker_put(f->c, &w2, &e), 0);
        assert_int_equal(cat_worker_put(f->c, &w3, &e), 0);
        w1.pid = 11;
        assert_int_equal(cat_worker_put(f->c, &w1, &e), 0); /* refresh, not a second row */
        assert_int_equal(cat_worker_put(f->c, &bad, &e), -1);
        assert_int_equal(e.code, ERR_INVALID);
    }
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM workers"), 3);
    assert_int_equal(raw_sql(f->path, "SELECT pid FROM workers WHERE id = 'host-a:1'"), 11);

    assert_int_equal(cat_queue_depths(f->c, now, depth_collect, &o, &e), 0);
    assert_int_equal(o.n, 3);
    d = depth_of(&o, "ingest");
    assert_non_null(d);
    assert_int_equal(d->ready, 2);
    assert_int_equal(d->delayed, 1);
    assert_int_equal(d->leased, 1);
    assert_int_equal(d->oldest_ready_ms, 5000);
    assert_int_equal(d->worker_slots, 4); /* the dead worker's 3 do not count */
    d = depth_of(&o, "transcode");
    assert_non_null(d);
    assert_int_equal(d->ready, 0);
    assert_int_equal(d->delayed, 0);
    assert_int_equal(d->leased, 1);
    assert_int_equal(d->oldest_ready_ms, 0);
    assert_int_equal(d->worker_slots, 2);
    d = depth_of(&o, "ai_enrich");
    assert_non_null(d);
    assert_int_equal(d->ready + d->delayed + d->leased, 0);
    assert_int_equal(d->worker_slots, 1);

    assert_int_equal(cat_workers_expire(f->c, now - 60000, &e), 0);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM workers"), 2);
    assert_int_equal(cat_worker_delete(f->c, "host-c:3", &e), 0);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM workers"), 1);
    o.n = 0;
    assert_int_equal(cat_queue_depths(f->c, now, depth_collect, &o, &e), 0);
    assert_int_equal(o.n, 2);
    assert_null(depth_of(&o, "ai_enrich"));
    /* a later now: the delayed job is runnable and the oldest is older */
    o.n = 0;
    assert_int_equal(cat_queue_depths(f->c, now + 120000, depth_collect, &o, &e), 0);
    d = depth_of(&o, "ingest");
    assert_non_null(d);
    assert_int_equal(d->ready, 3);
    assert_int_equal(d->delayed, 0);
    assert_int_equal(d->oldest_ready_ms, 125000);
    assert_int_equal(d->worker_slots, 0); /* w1's heartbeat is two minutes old by then */
}

static void test_effects(void **state)
{
    struct fixture *f = *state;
    struct err e = {0};
    char *res = (char *)"untouched";

    assert_int_equal(cat_effect_get(f->c, "k1", &res, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_effect_put(f->c, "k1", 7, "{\"url\":\"x\"}", &e), 0);
    assert_int_equal(cat_effect_get(f->c, "k1", &res, &e), 0);
    assert_string_equal(res, "{\"url\":\"x\"}");
    free(res);
    assert_int_equal(cat_effect_put(f->c, "k1", 8, "{}", &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(cat_effect_put(f->c, "k2", 0, NULL, &e), 0);
    res = (char *)"untouched";
    assert_int_equal(cat_effect_get(f->c, "k2", &res, &e), 0);
    assert_null(res);
    assert_int_equal(cat_effect_put(f->c, "k3", 0, "{bad", &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(raw_sql(f->path, "SELECT job_id FROM activity_effects WHERE "
                                      "idempotency_key = 'k1'"),
                     7);
}

/* Creates an asset in status processing. */
static void processing_asset(struct catalog *c, char id[37])
{
    struct cat_asset a;
    struct err e = {0};

    new_asset(&a, "video", NULL);
    snprintf(a.status, sizeof(a.status), "%s", ASSET_PROCESSING);
    assert_int_equal(cat_asset_create(c, &a, &e), 0);
    memcpy(id, a.id, 37);
}

static void test_asset_ingest_ops(void **state)
{
    struct fixture *f = *state;
    const char *tech = "{\"format\":{\"x\":1},\"summary\":{\"duration_ms\":12345,\"width\":1920,"
                       "\"height\":1080,\"video_codec\":\"h264\",\"audio_codec\":\"aac\","
                       "\"frame_rate\":29.97,\"bitrate_kbps\":5000,\"container\":\"mov,mp4\","
                       "\"captured_at\":\"2024-01-02T03:04:05Z\"}}";
    const char *none = "00000000-0000-7000-8000-000000000000";
    struct cat_asset got;
    struct cat_tx *tx;
    struct err e = {0};
    char a[37], b[37], up[37], hash[65];

    processing_asset(f->c, a);
    processing_asset(f->c, b);
    create_asset(f->c, "video", NULL, up); /* uploading */
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_int_equal(got.duration_ms, -1);
    assert_int_equal(got.height, -1);
    assert_int_equal(got.bitrate_kbps, -1);
    assert_true(got.frame_rate < 0);
    assert_string_equal(got.container, "");
    cat_asset_release(&got);

    /* technical metadata fills the columns from its summary */
    assert_int_equal(cat_asset_set_technical(f->c, a, "audio", "audio/mp4", tech, &e), 0);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_string_equal(got.type, "audio");
    assert_string_equal(got.mime_type, "audio/mp4");
    assert_string_equal(got.technical_metadata, tech);
    assert_int_equal(got.duration_ms, 12345);
    assert_int_equal(got.width, 1920);
    assert_int_equal(got.height, 1080);
    assert_int_equal(got.bitrate_kbps, 5000);
    assert_true(got.frame_rate > 29.96 && got.frame_rate < 29.98);
    assert_string_equal(got.video_codec, "h264");
    assert_string_equal(got.audio_codec, "aac");
    assert_string_equal(got.container, "mov,mp4");
    assert_string_equal(got.captured_at, "2024-01-02T03:04:05Z");
    assert_true(got.updated_at >= got.created_at);
    cat_asset_release(&got);
    /* without a summary (or with fields of the wrong type) the columns are unknown again */
    assert_int_equal(cat_asset_set_technical(f->c, a, "video", "video/mp4",
                                             "{\"summary\":{\"width\":\"wide\",\"video_codec\":7,"
                                             "\"height\":720}}",
                                             &e),
                     0);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_string_equal(got.type, "video");
    assert_int_equal(got.width, -1);
    assert_int_equal(got.height, 720);
    assert_string_equal(got.video_codec, "");
    assert_int_equal(got.duration_ms, -1);
    cat_asset_release(&got);
    assert_int_equal(cat_asset_set_technical(f->c, a, "video", "video/mp4", "{\"summary\":3}", &e),
                     0);
    assert_int_equal(cat_asset_set_technical(f->c, a, "document", "text/plain", "{}", &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(cat_asset_set_technical(f->c, a, "video", "video/mp4", "{\"summary\":", &e),
                     -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(cat_asset_set_technical(f->c, none, "video", "video/mp4", "{}", &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* the master of a processing asset; another live asset with the content conflicts */
    hash_of("ingested bytes", hash);
    assert_int_equal(cat_asset_set_master(f->c, a, hash, "masters/a", 4096, &e), 0);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_string_equal(got.content_hash, hash);
    assert_string_equal(got.master_storage_key, "masters/a");
    assert_int_equal(got.file_size_bytes, 4096);
    assert_string_equal(got.status, ASSET_PROCESSING);
    cat_asset_release(&got);
    assert_int_equal(cat_asset_set_master(f->c, b, hash, "masters/b", 4096, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "another asset holds this content"));
    assert_int_equal(cat_asset_get(f->c, b, &got, &e), 0);
    assert_string_equal(got.content_hash, "");
    assert_null(got.master_storage_key);
    cat_asset_release(&got);
    assert_int_equal(cat_asset_set_master(f->c, up, hash, "masters/u", 1, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "not processing"));
    assert_int_equal(cat_asset_set_master(f->c, none, hash, "k", 1, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_asset_set_master(f->c, b, "abc", "k", 1, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);

    /* b is a duplicate of a */
    assert_int_equal(cat_asset_mark_duplicate(f->c, b, a, "duplicate content", &e), 0);
    assert_int_equal(cat_asset_get(f->c, b, &got, &e), 0);
    assert_string_equal(got.status, ASSET_FAILED);
    assert_string_equal(got.failure_reason, "duplicate content");
    assert_string_equal(got.duplicate_of, a);
    assert_string_equal(got.content_hash, "");
    cat_asset_release(&got);
    assert_int_equal(cat_asset_mark_duplicate(f->c, b, a, "again", &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(cat_asset_mark_duplicate(f->c, none, a, "x", &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);

    /* asset status inside a transaction */
    tx = tx_open(f->c);
    assert_int_equal(cat_tx_asset_set_status(tx, a, ASSET_PROCESSING, ASSET_READY, NULL, &e), 0);
    assert_int_equal(cat_tx_asset_set_status(tx, a, ASSET_UPLOADING, ASSET_READY, NULL, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "is ready, not uploading"));
    assert_int_equal(cat_tx_asset_set_status(tx, none, NULL, ASSET_READY, NULL, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_tx_asset_set_status(tx, up, NULL, ASSET_FAILED, "gone", &e), 0);
    tx_commit(tx);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_string_equal(got.status, ASSET_READY);
    cat_asset_release(&got);
    assert_int_equal(cat_asset_get(f->c, up, &got, &e), 0);
    assert_string_equal(got.status, ASSET_FAILED);
    assert_string_equal(got.failure_reason, "gone");
    cat_asset_release(&got);
}

/* cat_tx_run: commits on 0, rolls back on -1 */
struct tx_ctx {
    char id[37];
    int runs;
    int fail;
};

static int tx_insert_fn(struct cat_tx *tx, void *ctx, struct err *err)
{
    struct tx_ctx *t = ctx;
    struct cat_workflow w = {0};

    t->runs++;
    memcpy(w.id, t->id, 37);
    snprintf(w.type, sizeof(w.type), "ingest");
    snprintf(w.status, sizeof(w.status), "%s", WF_RUNNING);
    if (cat_tx_wf_insert(tx, &w, err) < 0)
        return -1;
    if (cat_tx_step_insert(tx, w.id, "first", 1, err) < 0)
        return -1;
    if (t->fail)
        return err_set(err, ERR_CONFLICT, "changed my mind");
    return 0;
}

static void test_tx_run(void **state)
{
    struct fixture *f = *state;
    struct catalog *tuned = NULL;
    struct tx_ctx t = {0};
    struct cat_workflow got;
    struct err e = {0};

    util_uuid7(t.id);
    t.fail = 1;
    assert_int_equal(cat_tx_run(f->c, tx_insert_fn, &t, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_string_equal(e.msg, "changed my mind");
    assert_int_equal(t.runs, 1);
    assert_int_equal(cat_wf_get(f->c, t.id, &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM workflow_steps"), 0);

    t.fail = 0;
    assert_int_equal(cat_tx_run(f->c, tx_insert_fn, &t, &e), 0);
    assert_int_equal(cat_wf_get(f->c, t.id, &got, &e), 0);
    cat_workflow_release(&got);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM workflow_steps"), 1);
    /* a failing operation inside fails the whole transaction */
    assert_int_equal(cat_tx_run(f->c, tx_insert_fn, &t, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM workflows"), 1);

    /* another process holding the write lock is waited out (short busy timeout: run()
     * retries after the busy handler gives up) */
    assert_int_equal(sqlite_open_tuned(&tuned, f->path, 20, 5000, 0, &e), 0);
    {
        struct holder h = {f->path, 300, 0};
        pthread_t th;
        int64_t t0;

        assert_int_equal(pthread_create(&th, NULL, holder_main, &h), 0);
        while (!__atomic_load_n(&h.locked, __ATOMIC_SEQ_CST))
            sleep_ms(1);
        t0 = util_mono_ms();
        util_uuid7(t.id);
        t.runs = 0;
        assert_int_equal(cat_tx_run(tuned, tx_insert_fn, &t, &e), 0);
        assert_true(util_mono_ms() - t0 >= 200);
        assert_int_equal(t.runs, 1);
        pthread_join(th, NULL);
    }
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM workflows"), 2);
    cat_close(tuned);
}

/* The busy handler sleeps tens of microseconds at first and gives up at the timeout. */
static void test_busy_handler(void **state)
{
    struct conn cn = {.busy_timeout_ms = 1000, .rng = 12345};
    int64_t t0 = util_mono_ms();

    (void)state;
    for (int i = 0; i < 100; i++)
        assert_int_equal(busy_wait(&cn, 0), 1);
    /* 100 first sleeps of 25..50 us; SQLite's default handler would take 100 ms */
    assert_true(util_mono_ms() - t0 < 60);
    assert_int_equal(busy_wait(&cn, 0), 1);
    assert_int_equal(busy_wait(&cn, 1), 1);
    cn.busy_since_us -= 1000 * 1000; /* the wait began a second ago */
    assert_int_equal(busy_wait(&cn, 2), 0);
    cn.busy_timeout_ms = 0;
    assert_int_equal(busy_wait(&cn, 0), 1);
    assert_int_equal(busy_wait(&cn, 1), 0);
}

/* Workers on separate handles (as separate processes) lease and finish jobs at once:
 * every job runs exactly once. */
struct lease_worker {
    struct catalog *c;
    char owner[16];
    int done;
    int lost;
    int errors;
    int64_t ids[64];
    int n;
};

static int lease_keep(void *ctx, const struct cat_job *j)
{
    struct lease_worker *w = ctx;

    assert_true(w->n < 64);
    w->ids[w->n++] = j->id;
    return 0;
}

static int lease_fn(struct cat_tx *tx, void *ctx, struct err *err)
{
    struct lease_worker *w = ctx;

    w->n = 0; /* may run again */
    return cat_tx_jobs_lease(tx, "q", 4, w->owner, util_now_ms() + 60000, lease_keep, w, err);
}

static int finish_fn(struct cat_tx *tx, void *ctx, struct err *err)
{
    struct lease_worker *w = ctx;
    struct cat_event ev = {.type = "job.completed", .worker = w->owner};

    w->lost = 0;
    for (int i = 0; i < w->n; i++) {
        struct cat_job j;
        int rc;

        if (cat_tx_job_get(tx, w->ids[i], &j, err) < 0)
            return -1;
        rc = cat_tx_job_finish(tx, j.id, w->owner, 1, JOB_COMPLETED, "{}", NULL, NULL, err);
        if (rc < 0) {
            cat_job_release(&j);
            return -1;
        }
        w->lost += rc == 0;
        ev.workflow_id = j.workflow_id;
        ev.job_id = j.id;
        ev.attempt = j.attempt;
        rc = cat_tx_event_append(tx, &ev, err);
        if (rc == 0)
            rc = cat_tx_step_add_done(tx, j.workflow_id, "s", NULL, err);
        cat_job_release(&j);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static void *lease_worker_main(void *arg)
{
    struct lease_worker *w = arg;
    struct err e = {0};

    for (;;) {
        if (cat_tx_run(w->c, lease_fn, w, &e) < 0) {
            w->errors++;
            break;
        }
        if (w->n == 0)
            break;
        if (cat_tx_run(w->c, finish_fn, w, &e) < 0) {
            w->errors++;
            break;
        }
        w->done += w->n - w->lost;
    }
    return NULL;
}

static void test_lease_contention(void **state)
{
    struct fixture *f = *state;
    enum { NJOBS = 400, NW = 4 };
    struct lease_worker w[NW];
    struct catalog *c[NW];
    pthread_t t[NW];
    struct cat_tx *tx = tx_open(f->c);
    int64_t now = util_now_ms(), t0;
    struct err e = {0};
    int total = 0;
    char wf[37];

    wf_make(tx, "ingest", NULL, NULL, wf);
    assert_int_equal(cat_tx_step_insert(tx, wf, "s", NJOBS, &e), 0);
    for (int i = 0; i < NJOBS; i++)
        job_make(tx, wf, "s", i, "q", i % 3, now - 1);
    tx_commit(tx);

    t0 = util_mono_ms();
    for (int i = 0; i < NW; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        assert_int_equal(cat_sqlite_open(&c[i], f->path, &e), 0);
        w[i].c = c[i];
        snprintf(w[i].owner, sizeof(w[i].owner), "w%d", i);
        assert_int_equal(pthread_create(&t[i], NULL, lease_worker_main, &w[i]), 0);
    }
    for (int i = 0; i < NW; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].errors, 0);
        total += w[i].done;
        cat_close(c[i]);
    }
    fprintf(stderr, "lease contention: %d jobs by %d handles in %lld ms\n", total, NW,
            (long long)(util_mono_ms() - t0));
    assert_int_equal(total, NJOBS);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM jobs WHERE status = 'completed' "
                                      "AND attempt = 1"),
                     NJOBS);
    assert_int_equal(raw_sql(f->path, "SELECT jobs_done FROM workflow_steps"), NJOBS);
    assert_int_equal(raw_sql(f->path, "SELECT count(DISTINCT job_id) FROM workflow_events"), NJOBS);
}

/* ---- renditions ------------------------------------------------------------------------------ */

/* Fills r as a pending rendition of asset for profile@version and variant (NULL: ""), with
 * every measure unknown; the caller adjusts it. */
static void rend_fill(struct cat_rendition *r, const char *asset_id, const char *profile,
                      int version, const char *variant)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->asset_id, sizeof(r->asset_id), "%s", asset_id);
    snprintf(r->profile_name, sizeof(r->profile_name), "%s", profile);
    r->profile_version = version;
    snprintf(r->variant, sizeof(r->variant), "%s", variant ? variant : "");
    snprintf(r->status, sizeof(r->status), "%s", REND_PENDING);
    r->file_size_bytes = r->width = r->height = r->duration_ms = r->bitrate_kbps = -1;
}

/* Puts a rendition in status with this expiry and creation time; id (may be NULL) receives
 * its id. */
static void rend_make(struct catalog *c, const char *asset_id, const char *profile, int version,
                      const char *variant, const char *status, int64_t expires_at,
                      int64_t created_at, char id[37])
{
    struct cat_rendition r;
    struct err e = {0};
    int rc;

    rend_fill(&r, asset_id, profile, version, variant);
    snprintf(r.status, sizeof(r.status), "%s", status);
    r.expires_at = expires_at;
    r.created_at = created_at;
    rc = cat_rendition_put(c, &r, &e);
    if (rc < 0)
        fprintf(stderr, "put %s: %s\n", profile, e.msg);
    assert_int_equal(rc, 0);
    if (id)
        memcpy(id, r.id, 37);
}

/* A put that must fail with code and a message containing what. */
static void rend_put_fails(struct catalog *c, struct cat_rendition *r, enum err_code code,
                           const char *what)
{
    struct err e = {0};

    assert_int_equal(cat_rendition_put(c, r, &e), -1);
    assert_int_equal(e.code, code);
    if (!strstr(e.msg, what))
        fprintf(stderr, "'%s' not in '%s'\n", what, e.msg);
    assert_non_null(strstr(e.msg, what));
}

/* What a rendition callback saw, in order. */
struct rend_seen {
    int n;
    int stop_after; /* return 7 after this many rows; 0: never */
    char id[16][37];
    char profile[16][32];
    int version[16];
    char variant[16][37];
    char status[16][12];
    int64_t expires_at[16];
};

static int rend_saw(void *ctx, const struct cat_rendition *r)
{
    struct rend_seen *s = ctx;

    assert_true(s->n < 16);
    memcpy(s->id[s->n], r->id, sizeof(r->id));
    memcpy(s->profile[s->n], r->profile_name, sizeof(r->profile_name));
    s->version[s->n] = r->profile_version;
    memcpy(s->variant[s->n], r->variant, sizeof(r->variant));
    memcpy(s->status[s->n], r->status, sizeof(r->status));
    s->expires_at[s->n] = r->expires_at;
    s->n++;
    return s->stop_after && s->n == s->stop_after ? 7 : 0;
}

static void rend_list_n(struct catalog *c, const char *asset_id, struct rend_seen *s)
{
    struct err e = {0};

    memset(s, 0, sizeof(*s));
    assert_int_equal(cat_rendition_list(c, asset_id, rend_saw, s, &e), 0);
}

static void rend_expired_n(struct catalog *c, int64_t now, int limit, struct rend_seen *s)
{
    struct err e = {0};

    memset(s, 0, sizeof(*s));
    assert_int_equal(cat_renditions_expired(c, now, limit, rend_saw, s, &e), 0);
}

/* A database at version 2 (migrations 0001 and 0002, as acervod before 0003 left it), with
 * rows in the old renditions table, opens and is upgraded to 3 with those rows carried over. */
static void test_rend_upgrade(void **state)
{
    static const char asset[] = "0190aaaa-0000-7000-8000-000000000001";
    static const char proxy[] = "0190aaaa-0000-7000-8000-00000000000a";
    char dir[64], path[128], p[160], sql[256];
    struct catalog *c = NULL;
    struct cat_rendition got, r;
    struct err e = {0};
    sqlite3 *db;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/acervo-catalog-v2-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/catalog.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0001, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0002, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                                  "applied_at INTEGER NOT NULL) STRICT;"
                                  "INSERT INTO schema_migrations VALUES (1, 0), (2, 0);"
                                  "INSERT INTO assets (id, type, status, original_filename, "
                                  "mime_type, file_size_bytes, created_at, updated_at) VALUES "
                                  "('0190aaaa-0000-7000-8000-000000000001', 'video', 'ready', "
                                  "'old.mov', 'video/quicktime', 77, 1, 2);"
                                  "INSERT INTO renditions (id, asset_id, profile_name, status, "
                                  "storage_key, storage_bucket, mime_type, file_size_bytes, "
                                  "width, height, duration_ms, bitrate_kbps, created_at) VALUES "
                                  "('0190aaaa-0000-7000-8000-00000000000a', "
                                  "'0190aaaa-0000-7000-8000-000000000001', 'proxy', 'ready', "
                                  "'proxies/x/proxy.mp4', 'proxies', 'video/mp4', 5000, 1280, "
                                  "720, 10000, 2500, 111), "
                                  "('0190aaaa-0000-7000-8000-00000000000b', "
                                  "'0190aaaa-0000-7000-8000-000000000001', 'thumb', 'done', "
                                  "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 222)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM pragma_table_info('renditions') "
                                   "WHERE name = 'variant'"),
                     0);

    assert_int_equal(cat_sqlite_open(&c, path, &e), 0);
    assert_int_equal(cat_schema_version(c), SCHEMA_LATEST);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM schema_migrations"), SCHEMA_LATEST);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM pragma_table_info('renditions') WHERE "
                                   "name IN ('profile_version', 'variant', 'files', 'params', "
                                   "'workflow_id', 'error', 'expires_at', 'updated_at')"),
                     8);
    /* the sweep's index holds ready renditions only */
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM sqlite_master WHERE name = "
                                   "'idx_renditions_expires' AND sql LIKE "
                                   "'%WHERE status = ''ready'' AND expires_at IS NOT NULL'"),
                     1);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM sqlite_master WHERE name LIKE "
                                   "'%renditions_v3%'"),
                     0);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM renditions"), 2);

    assert_int_equal(cat_rendition_get(c, proxy, &got, &e), 0);
    assert_string_equal(got.asset_id, asset);
    assert_string_equal(got.profile_name, "proxy");
    assert_int_equal(got.profile_version, 1);
    assert_string_equal(got.variant, "");
    assert_string_equal(got.status, REND_READY);
    assert_string_equal(got.bucket, "proxies");
    assert_string_equal(got.storage_key, "proxies/x/proxy.mp4");
    assert_string_equal(got.mime_type, "video/mp4");
    assert_int_equal(got.file_size_bytes, 5000);
    assert_int_equal(got.width, 1280);
    assert_int_equal(got.height, 720);
    assert_int_equal(got.duration_ms, 10000);
    assert_int_equal(got.bitrate_kbps, 2500);
    assert_null(got.files);
    assert_null(got.params);
    assert_null(got.error);
    assert_string_equal(got.workflow_id, "");
    assert_int_equal(got.expires_at, 0);
    assert_int_equal(got.created_at, 111);
    assert_int_equal(got.updated_at, 111);
    cat_rendition_release(&got);
    /* a status the new CHECK does not know becomes pending */
    assert_int_equal(cat_rendition_find(c, asset, "thumb", 1, "", &got, &e), 0);
    assert_string_equal(got.id, "0190aaaa-0000-7000-8000-00000000000b");
    assert_string_equal(got.status, REND_PENDING);
    assert_string_equal(got.bucket, "");
    assert_null(got.storage_key);
    assert_int_equal(got.file_size_bytes, -1);
    assert_int_equal(got.width, -1);
    assert_int_equal(got.created_at, 222);
    cat_rendition_release(&got);
    /* the key now has a version: a second version of the profile is a row of its own */
    rend_fill(&r, asset, "proxy", 2, NULL);
    assert_int_equal(cat_rendition_put(c, &r, &e), 0);
    assert_string_not_equal(r.id, proxy);
    cat_close(c);

    /* and re-opening changes nothing */
    assert_int_equal(cat_sqlite_open(&c, path, &e), 0);
    assert_int_equal(cat_schema_version(c), SCHEMA_LATEST);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM renditions WHERE asset_id = '%s'", asset);
    assert_int_equal(raw_sql(path, sql), 3);
    cat_close(c);

    unlink(path);
    snprintf(p, sizeof(p), "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof(p), "%s-shm", path);
    unlink(p);
    rmdir(dir);
}

/* The columns of rendition id that a put of "nothing known" leaves NULL: 13 of them. */
static int64_t rend_nulls(const char *path, const char *id)
{
    char sql[640];

    snprintf(sql, sizeof(sql),
             "SELECT (storage_bucket IS NULL) + (storage_key IS NULL) + (mime_type IS NULL) + "
             "(file_size_bytes IS NULL) + (width IS NULL) + (height IS NULL) + "
             "(duration_ms IS NULL) + (bitrate_kbps IS NULL) + (files IS NULL) + "
             "(params IS NULL) + (workflow_id IS NULL) + (error IS NULL) + "
             "(expires_at IS NULL) FROM renditions WHERE id = '%s'",
             id);
    return raw_sql(path, sql);
}

/* Put inserts, then updates the same row: same id, created_at kept, every field replaced. */
/* ---- search data (0004) ---------------------------------------------------------------- */

struct segs_seen {
    int n;
    int idx[16];
    char text[16][32];
    double confidence[16];
    char speaker[16][64];
};

static int seg_cb(void *ctx, const struct cat_segment *s)
{
    struct segs_seen *seen = ctx;

    if (seen->n < 16) {
        seen->idx[seen->n] = s->idx;
        snprintf(seen->text[seen->n], sizeof(seen->text[0]), "%s", s->text);
        seen->confidence[seen->n] = s->confidence;
        snprintf(seen->speaker[seen->n], sizeof(seen->speaker[0]), "%s", s->speaker);
    }
    return ++seen->n == 3 ? 1 : 0; /* stops after 3 */
}

static void test_search_data(void **state)
{
    struct fixture *f = *state;
    struct cat_segment segs[5];
    struct segs_seen seen;
    struct cat_asset got;
    struct err e = {0};
    char a[37], b[37], missing[37], text[5][16];

    create_asset(f->c, "video", NULL, a);
    create_asset(f->c, "audio", NULL, b);
    /* numbered in creation order */
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_true(got.seq >= 1);
    assert_string_equal(got.language, "");
    assert_string_equal(got.ai_metadata, "{}");
    {
        int64_t first = got.seq;

        cat_asset_release(&got);
        assert_int_equal(cat_asset_get(f->c, b, &got, &e), 0);
        assert_int_equal(got.seq, first + 1);
        cat_asset_release(&got);
    }

    memset(segs, 0, sizeof(segs));
    for (int i = 0; i < 5; i++) {
        snprintf(text[i], sizeof(text[i]), "segmento %d", i);
        segs[i].idx = i;
        segs[i].start_ms = i * 1000;
        segs[i].end_ms = i * 1000 + 900;
        segs[i].confidence = i == 2 ? -1 : 0.9;
        snprintf(segs[i].speaker, sizeof(segs[i].speaker), "%s", i == 1 ? "S2" : "");
        segs[i].text = text[i];
    }
    assert_int_equal(
        cat_asset_set_enrichment(f->c, a, "es", "{\"topics\":[\"economía\"]}", segs, 5, 1, &e), 0);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_string_equal(got.language, "es");
    assert_string_equal(got.ai_metadata, "{\"topics\":[\"economía\"]}");
    cat_asset_release(&got);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(cat_segments_list(f->c, a, -1, 1000, seg_cb, &seen, &e), 0);
    assert_int_equal(seen.n, 3); /* the callback stopped the list */
    assert_int_equal(seen.idx[2], 2);
    assert_string_equal(seen.text[1], "segmento 1");
    assert_string_equal(seen.speaker[1], "S2");
    assert_string_equal(seen.speaker[0], "");
    assert_true(seen.confidence[2] == -1);
    assert_true(seen.confidence[0] > 0.89 && seen.confidence[0] < 0.91);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(cat_segments_list(f->c, a, 2, 1, seg_cb, &seen, &e), 0);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.idx[0], 3);

    /* NULLs keep, "" clears the language, a new transcript replaces the old one */
    assert_int_equal(cat_asset_set_enrichment(f->c, a, NULL, NULL, segs, 2, 1, &e), 0);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_string_equal(got.language, "es");
    assert_string_equal(got.ai_metadata, "{\"topics\":[\"economía\"]}");
    cat_asset_release(&got);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM transcript_segments"), 2);
    assert_int_equal(cat_asset_set_enrichment(f->c, a, "", NULL, NULL, 0, 0, &e), 0);
    assert_int_equal(cat_asset_get(f->c, a, &got, &e), 0);
    assert_string_equal(got.language, "");
    cat_asset_release(&got);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM transcript_segments"), 2);
    assert_int_equal(cat_asset_set_enrichment(f->c, a, "en-GB", NULL, NULL, 0, 1, &e), 0);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM transcript_segments"), 0);

    /* what is refused changes nothing */
    assert_int_equal(cat_asset_set_enrichment(f->c, a, NULL, NULL, segs, 5, 1, &e), 0);
    util_uuid7(missing);
    assert_int_equal(cat_asset_set_enrichment(f->c, missing, "es", NULL, segs, 5, 1, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_asset_set_enrichment(f->c, a, "Spanish", NULL, NULL, 0, 1, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(cat_asset_set_enrichment(f->c, a, "es-", NULL, NULL, 0, 1, &e), -1);
    assert_int_equal(cat_asset_set_enrichment(f->c, a, NULL, "[1]", NULL, 0, 1, &e), -1);
    assert_string_equal(e.msg, "the AI metadata is not a JSON object");
    assert_int_equal(cat_asset_set_enrichment(f->c, a, NULL, "{\"a\":", NULL, 0, 1, &e), -1);
    segs[3].idx = 4;
    assert_int_equal(cat_asset_set_enrichment(f->c, a, NULL, NULL, segs, 5, 1, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    segs[3].idx = 3;
    segs[3].end_ms = segs[3].start_ms - 1;
    assert_int_equal(cat_asset_set_enrichment(f->c, a, NULL, NULL, segs, 5, 1, &e), -1);
    segs[3].end_ms = segs[3].start_ms;
    segs[4].confidence = 1.5;
    assert_int_equal(cat_asset_set_enrichment(f->c, a, NULL, NULL, segs, 5, 1, &e), -1);
    segs[4].confidence = 1;
    segs[0].text = NULL;
    assert_int_equal(cat_asset_set_enrichment(f->c, a, NULL, NULL, segs, 5, 1, &e), -1);
    segs[0].text = text[0];
    assert_int_equal(
        cat_asset_set_enrichment(f->c, a, NULL, NULL, segs, CAT_MAX_SEGMENTS + 1, 1, &e), -1);
    assert_int_equal(e.code, ERR_LIMIT);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM transcript_segments"), 5);
    assert_int_equal(cat_segments_list(f->c, a, -1, 0, seg_cb, &seen, &e), -1);
    assert_int_equal(cat_segments_list(f->c, a, -1, 1001, seg_cb, &seen, &e), -1);

    /* an asset's transcript goes with it */
    assert_int_equal(cat_asset_delete(f->c, a, ASSET_UPLOADING, &e), 0);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM transcript_segments"), 0);

    /* by hand (acervod sql): no segment for a missing or unheld asset; deleting an asset
     * row takes its transcript and its search document */
    assert_int_equal(cat_sqlite_exec(f->c,
                                     "INSERT INTO transcript_segments (id, start_ms, end_ms, "
                                     "text) VALUES (999 * 131072, 0, 1, 'x')",
                                     NULL, &e),
                     -1);
    assert_non_null(strstr(e.msg, "held out of the search index"));
    assert_int_equal(cat_asset_set_enrichment(f->c, b, "es", NULL, segs, 5, 1, &e), 0);
    {
        char sql[200];

        snprintf(sql, sizeof(sql),
                 "INSERT INTO transcript_segments (id, start_ms, end_ms, text) VALUES "
                 "((SELECT seq FROM assets WHERE id = '%s') * 131072 + 9, 0, 1, 'x')",
                 b);
        assert_int_equal(cat_sqlite_exec(f->c, sql, NULL, &e), -1);
        assert_non_null(strstr(e.msg, "held out of the search index"));
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM search_doc('\"type=audio\"') WHERE rowid = "
                 "(SELECT seq FROM assets WHERE id = '%s')",
                 b);
        assert_int_equal(raw_sql(f->path, sql), 1);
        snprintf(sql, sizeof(sql), "DELETE FROM assets WHERE id = '%s'", b);
        assert_int_equal(cat_sqlite_exec(f->c, sql, NULL, &e), 0);
    }
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM transcript_segments"), 0);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM search_doc('\"type=audio\"')"), 0);
    assert_int_equal(cat_sqlite_exec(f->c,
                                     "INSERT INTO search_doc (search_doc, rank) VALUES "
                                     "('integrity-check', 0)",
                                     NULL, &e),
                     0);
}

/* 0006 keeps a version-5 catalog's transcripts, found and listed as before */
static void test_segments_upgrade(void **state)
{
    struct fixture *f = *state;
    struct search_analyzer *an = NULL;
    struct segs_seen seen;
    char path[600];
    struct catalog *c;
    struct err e = {0};
    sqlite3 *db;

    snprintf(path, sizeof(path), "%s.up5", f->path);
    unlink(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(cat__searchfn_register(db, 0, &an, &e), 0);
    assert_int_equal(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0001, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0002, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0003, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0004, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0005, NULL, NULL, NULL), SQLITE_OK);
    /* segments first (the asset reference is checked at commit), then their assets */
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                     "applied_at INTEGER NOT NULL) STRICT;"
                     "INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0), (4, 0), (5, 0);"
                     "BEGIN;"
                     "INSERT INTO transcript_segments (id, asset_id, idx, start_ms, end_ms, "
                     "speaker, confidence, text) VALUES "
                     "(131072, '0190aaaa-0000-7000-8000-00000000000a', 0, 0, 900, 'S1', 0.5, "
                     "'zx81 sube'), "
                     "(131073, '0190aaaa-0000-7000-8000-00000000000a', 1, 900, 1800, NULL, NULL, "
                     "'el paro baja'), "
                     "(262144, '0190aaaa-0000-7000-8000-00000000000b', 0, 0, 500, NULL, 0.9, "
                     "'qq42 generales');"
                     "INSERT INTO assets (id, type, status, original_filename, mime_type, "
                     "file_size_bytes, created_at, updated_at, seq, language) VALUES "
                     "('0190aaaa-0000-7000-8000-00000000000a', 'video', 'ready', 'a.mov', "
                     "'video/quicktime', 1, 10, 10, 1, 'es'), "
                     "('0190aaaa-0000-7000-8000-00000000000b', 'video', 'ready', 'b.mov', "
                     "'video/quicktime', 1, 20, 20, 2, 'es');"
                     "COMMIT;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db); /* frees the analyzer */

    assert_int_equal(cat_sqlite_open(&c, path, &e), 0);
    assert_int_equal(cat_schema_version(c), SCHEMA_LATEST);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM pragma_table_info('transcript_segments') "
                                   "WHERE name = 'asset_id'"),
                     0);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM transcript_segments"), 3);
    assert_int_equal(raw_sql(path, "SELECT idx FROM transcript_segments WHERE id = 131073"), 1);
    assert_int_equal(raw_sql(path, "SELECT rowid FROM search_doc('ai : zx81')"), 1);
    assert_int_equal(raw_sql(path, "SELECT rowid FROM search_doc('ai : qq42')"), 2);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(
        cat_segments_list(c, "0190aaaa-0000-7000-8000-00000000000a", -1, 10, seg_cb, &seen, &e), 0);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.text[0], "zx81 sube");
    assert_string_equal(seen.speaker[0], "S1");
    assert_int_equal(seen.idx[1], 1);
    assert_true(seen.confidence[1] == -1);
    /* the transcript is replaced and goes with its asset as before */
    {
        char word[] = "pp77";
        struct cat_segment one = {
            .idx = 0, .start_ms = 0, .end_ms = 10, .confidence = -1, .text = word};

        assert_int_equal(cat_asset_set_enrichment(c, "0190aaaa-0000-7000-8000-00000000000a", NULL,
                                                  NULL, &one, 1, 1, &e),
                         0);
    }
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM search_doc('ai : zx81')"), 0);
    assert_int_equal(raw_sql(path, "SELECT rowid FROM search_doc('ai : pp77')"), 1);
    assert_int_equal(cat_asset_delete(c, "0190aaaa-0000-7000-8000-00000000000b", ASSET_READY, &e),
                     0);
    assert_int_equal(raw_sql(path, "SELECT count(*) FROM transcript_segments"), 1);
    cat_close(c);
    unlink(path);
}

/* an import that stops before its end leaves merging off; the next open turns it back on */
static void test_bulk_settle(void **state)
{
    struct fixture *f = *state;
    struct err e = {0};
    const char *merge = "SELECT v FROM search_doc_config WHERE k = 'automerge'";

    assert_int_equal(cat_search_bulk_begin(f->c, &e), 0);
    assert_int_equal(raw_sql(f->path, merge), 0);
    assert_int_equal(raw_sql(f->path, "SELECT v FROM search_title_config WHERE k = 'automerge'"),
                     0);
    assert_int_equal(cat_search_optimize(f->c, &e), 0);
    assert_int_equal(raw_sql(f->path, merge), 4);
    assert_int_equal(raw_sql(f->path, "SELECT v FROM search_doc_config WHERE k = 'hashsize'"),
                     16777216);
    assert_int_equal(cat_search_bulk_begin(f->c, &e), 0);
    cat_close(f->c);
    f->c = NULL;
    assert_int_equal(cat_sqlite_open(&f->c, f->path, &e), 0);
    assert_int_equal(raw_sql(f->path, merge), 4);
    assert_int_equal(raw_sql(f->path, "SELECT v FROM search_title_config WHERE k = 'crisismerge'"),
                     16);
}

static void test_search_seq_upgrade(void **state)
{
    struct fixture *f = *state;
    char path[600];
    struct catalog *c;
    struct err e = {0};
    sqlite3 *db;

    (void)f;
    snprintf(path, sizeof(path), "%s.up4", f->path);
    unlink(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0001, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0002, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, cat_migration_0003, NULL, NULL, NULL), SQLITE_OK);
    /* three assets inserted out of time order; two share a created_at */
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                                  "applied_at INTEGER NOT NULL) STRICT;"
                                  "INSERT INTO schema_migrations VALUES (1, 0), (2, 0), (3, 0);"
                                  "INSERT INTO assets (id, type, status, original_filename, "
                                  "mime_type, file_size_bytes, created_at, updated_at) VALUES "
                                  "('0190aaaa-0000-7000-8000-00000000000c', 'video', 'ready', "
                                  "'c.mov', 'video/quicktime', 1, 30, 30), "
                                  "('0190aaaa-0000-7000-8000-00000000000b', 'video', 'ready', "
                                  "'b.mov', 'video/quicktime', 1, 10, 10), "
                                  "('0190aaaa-0000-7000-8000-00000000000a', 'video', 'ready', "
                                  "'a.mov', 'video/quicktime', 1, 10, 10)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(cat_sqlite_open(&c, path, &e), 0);
    assert_int_equal(cat_schema_version(c), SCHEMA_LATEST);
    cat_close(c);
    /* numbered by created_at, then id */
    assert_int_equal(raw_sql(path, "SELECT seq FROM assets WHERE id LIKE '%0a'"), 1);
    assert_int_equal(raw_sql(path, "SELECT seq FROM assets WHERE id LIKE '%0b'"), 2);
    assert_int_equal(raw_sql(path, "SELECT seq FROM assets WHERE id LIKE '%0c'"), 3);
    /* and a new asset comes after them */
    assert_int_equal(cat_sqlite_open(&c, path, &e), 0);
    {
        char id[37];

        create_asset(c, "image", NULL, id);
    }
    cat_close(c);
    assert_int_equal(raw_sql(path, "SELECT max(seq) FROM assets"), 4);
    unlink(path);
}

static void test_rend_put(void **state)
{
    struct fixture *f = *state;
    struct cat_rendition r, again, got;
    struct err e = {0};
    int64_t before = util_now_ms();
    char a[37], first[37], wf[37], mine[37], sql[256];

    create_asset(f->c, "video", NULL, a);
    rend_fill(&r, a, "proxy", 1, NULL);
    r.created_at = 1000;
    assert_int_equal(cat_rendition_put(f->c, &r, &e), 0);
    assert_true(util_uuid_valid(r.id));
    assert_int_equal(r.created_at, 1000);
    assert_true(r.updated_at >= before);
    memcpy(first, r.id, sizeof(first));
    assert_int_equal(cat_rendition_get(f->c, first, &got, &e), 0);
    assert_string_equal(got.id, first);
    assert_string_equal(got.asset_id, a);
    assert_string_equal(got.profile_name, "proxy");
    assert_int_equal(got.profile_version, 1);
    assert_string_equal(got.variant, "");
    assert_string_equal(got.status, REND_PENDING);
    assert_string_equal(got.bucket, "");
    assert_null(got.storage_key);
    assert_null(got.mime_type);
    assert_int_equal(got.file_size_bytes, -1);
    assert_int_equal(got.width, -1);
    assert_int_equal(got.height, -1);
    assert_int_equal(got.duration_ms, -1);
    assert_int_equal(got.bitrate_kbps, -1);
    assert_null(got.files);
    assert_null(got.params);
    assert_string_equal(got.workflow_id, "");
    assert_null(got.error);
    assert_int_equal(got.expires_at, 0);
    assert_int_equal(got.created_at, 1000);
    assert_int_equal(got.updated_at, r.updated_at);
    cat_rendition_release(&got);
    /* "nothing known" is stored as NULL, not as "" or -1 or 0 */
    assert_int_equal(rend_nulls(f->path, first), 13);

    /* the same key from a fresh row (no id, another created_at): the same row, replaced */
    while (util_now_ms() <= r.updated_at)
        ;
    util_uuid7(wf);
    rend_fill(&again, a, "proxy", 1, NULL);
    snprintf(again.status, sizeof(again.status), "%s", REND_READY);
    snprintf(again.bucket, sizeof(again.bucket), "%s", "proxies");
    snprintf(again.workflow_id, sizeof(again.workflow_id), "%s", wf);
    again.storage_key = (char *)"proxies/a/proxy.mp4";
    again.mime_type = (char *)"video/mp4";
    again.file_size_bytes = 123456;
    again.width = 1280;
    again.height = 720;
    again.duration_ms = 10000;
    again.bitrate_kbps = 2500;
    again.files = (char *)"[{\"key\":\"proxies/a/proxy.mp4\",\"bytes\":123456}]";
    again.params = (char *)"{\"in_ms\":0}";
    again.error = (char *)"retried once";
    again.expires_at = 99999;
    again.created_at = 5;
    assert_int_equal(cat_rendition_put(f->c, &again, &e), 0);
    assert_string_equal(again.id, first);
    assert_int_equal(again.created_at, 1000);
    assert_true(again.updated_at > r.updated_at);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM renditions WHERE asset_id = '%s'", a);
    assert_int_equal(raw_sql(f->path, sql), 1);
    assert_int_equal(cat_rendition_get(f->c, first, &got, &e), 0);
    assert_string_equal(got.status, REND_READY);
    assert_string_equal(got.bucket, "proxies");
    assert_string_equal(got.storage_key, "proxies/a/proxy.mp4");
    assert_string_equal(got.mime_type, "video/mp4");
    assert_int_equal(got.file_size_bytes, 123456);
    assert_int_equal(got.width, 1280);
    assert_int_equal(got.height, 720);
    assert_int_equal(got.duration_ms, 10000);
    assert_int_equal(got.bitrate_kbps, 2500);
    assert_string_equal(got.files, "[{\"key\":\"proxies/a/proxy.mp4\",\"bytes\":123456}]");
    assert_string_equal(got.params, "{\"in_ms\":0}");
    assert_string_equal(got.workflow_id, wf);
    assert_string_equal(got.error, "retried once");
    assert_int_equal(got.expires_at, 99999);
    assert_int_equal(got.created_at, 1000);
    assert_int_equal(got.updated_at, again.updated_at);
    cat_rendition_release(&got);
    assert_int_equal(rend_nulls(f->path, first), 0);

    /* every field is written: a row with nothing known clears them all */
    rend_fill(&r, a, "proxy", 1, NULL);
    snprintf(r.status, sizeof(r.status), "%s", REND_FAILED);
    assert_int_equal(cat_rendition_put(f->c, &r, &e), 0);
    assert_string_equal(r.id, first);
    assert_int_equal(rend_nulls(f->path, first), 13);

    /* a caller's id names a new row; an existing row keeps its own */
    util_uuid7(mine);
    rend_fill(&r, a, "thumb", 1, NULL);
    memcpy(r.id, mine, sizeof(r.id));
    assert_int_equal(cat_rendition_put(f->c, &r, &e), 0);
    assert_string_equal(r.id, mine);
    assert_int_equal(cat_rendition_get(f->c, mine, &got, &e), 0);
    assert_string_equal(got.profile_name, "thumb");
    cat_rendition_release(&got);
    rend_fill(&r, a, "proxy", 1, NULL);
    util_uuid7(r.id);
    memcpy(mine, r.id, sizeof(mine));
    assert_int_equal(cat_rendition_put(f->c, &r, &e), 0);
    assert_string_equal(r.id, first);
    assert_int_equal(cat_rendition_get(f->c, mine, &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    /* an id that is another rendition's */
    rend_fill(&r, a, "hls", 1, NULL);
    memcpy(r.id, first, sizeof(r.id));
    rend_put_fails(f->c, &r, ERR_CONFLICT, first);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM renditions WHERE profile_name = 'hls'");
    assert_int_equal(raw_sql(f->path, sql), 0);
}

/* Variants are rows of their own; a list has the standard renditions by profile then
 * version, then the on-demand ones newest first. */
static void test_rend_list(void **state)
{
    struct fixture *f = *state;
    struct rend_seen s;
    struct err e = {0};
    char a[37], b[37], v1[37], v2[37], v3[37], sql[256];
    static const char *const want_profile[] = {"clip",  "hls",  "proxy", "proxy",
                                               "thumb", "clip", "clip",  "clip"};
    static const int want_version[] = {1, 1, 1, 2, 1, 1, 1, 1};
    const char *want_variant[8];

    create_asset(f->c, "video", NULL, a);
    create_asset(f->c, "video", NULL, b);
    util_uuid7(v1);
    util_uuid7(v2);
    util_uuid7(v3);
    /* in an order that is none of the list's */
    rend_make(f->c, a, "thumb", 1, NULL, REND_READY, 0, 0, NULL);
    rend_make(f->c, a, "clip", 1, v1, REND_READY, 0, 2000, NULL);
    rend_make(f->c, a, "proxy", 2, NULL, REND_PENDING, 0, 0, NULL);
    rend_make(f->c, a, "clip", 1, v3, REND_RUNNING, 0, 1000, NULL);
    rend_make(f->c, a, "hls", 1, NULL, REND_READY, 0, 0, NULL);
    rend_make(f->c, a, "clip", 1, v2, REND_READY, 0, 3000, NULL);
    rend_make(f->c, a, "proxy", 1, NULL, REND_READY, 0, 0, NULL);
    rend_make(f->c, a, "clip", 1, NULL, REND_READY, 0, 0, NULL);
    rend_make(f->c, b, "proxy", 1, NULL, REND_READY, 0, 0, NULL);

    /* the same profile and version: one standard row and one per variant */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM renditions WHERE asset_id = '%s' AND profile_name = 'clip' "
             "AND profile_version = 1",
             a);
    assert_int_equal(raw_sql(f->path, sql), 4);

    want_variant[0] = want_variant[1] = want_variant[2] = want_variant[3] = want_variant[4] = "";
    want_variant[5] = v2;
    want_variant[6] = v1;
    want_variant[7] = v3;
    rend_list_n(f->c, a, &s);
    assert_int_equal(s.n, 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(s.profile[i], want_profile[i]);
        assert_int_equal(s.version[i], want_version[i]);
        assert_string_equal(s.variant[i], want_variant[i]);
    }
    rend_list_n(f->c, b, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.profile[0], "proxy");

    /* a callback's non-zero result stops the list and is returned */
    memset(&s, 0, sizeof(s));
    s.stop_after = 3;
    assert_int_equal(cat_rendition_list(f->c, a, rend_saw, &s, &e), 7);
    assert_int_equal(s.n, 3);

    /* an asset without renditions (or none at all) lists nothing */
    create_asset(f->c, "audio", NULL, b);
    rend_list_n(f->c, b, &s);
    assert_int_equal(s.n, 0);
    rend_list_n(f->c, "00000000-0000-7000-8000-000000000000", &s);
    assert_int_equal(s.n, 0);
    assert_int_equal(cat_rendition_list(f->c, "", rend_saw, &s, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
}

static void test_rend_find(void **state)
{
    struct fixture *f = *state;
    struct cat_rendition got, r;
    struct err e = {0};
    char a[37], v[37], std[37], od[37], other[37], longest[32], too_long[40];

    create_asset(f->c, "video", NULL, a);
    util_uuid7(v);
    rend_make(f->c, a, "proxy", 1, NULL, REND_READY, 0, 0, std);
    rend_make(f->c, a, "proxy", 1, v, REND_RUNNING, 0, 0, od);
    assert_string_not_equal(std, od);

    assert_int_equal(cat_rendition_find(f->c, a, "proxy", 1, "", &got, &e), 0);
    assert_string_equal(got.id, std);
    assert_string_equal(got.status, REND_READY);
    cat_rendition_release(&got);
    assert_int_equal(cat_rendition_find(f->c, a, "proxy", 1, NULL, &got, &e), 0);
    assert_string_equal(got.id, std);
    cat_rendition_release(&got);
    assert_int_equal(cat_rendition_find(f->c, a, "proxy", 1, v, &got, &e), 0);
    assert_string_equal(got.id, od);
    assert_string_equal(got.variant, v);
    assert_string_equal(got.status, REND_RUNNING);
    /* the arguments may point into out (whose heap strings are all NULL here: nothing
     * leaks when it is overwritten) */
    assert_int_equal(cat_rendition_find(f->c, got.asset_id, got.profile_name, got.profile_version,
                                        got.variant, &got, &e),
                     0);
    assert_string_equal(got.id, od);
    assert_int_equal(cat_rendition_get(f->c, got.id, &got, &e), 0);
    assert_string_equal(got.id, od);
    assert_string_equal(got.variant, v);
    cat_rendition_release(&got);

    /* absent: ERR_NOTFOUND, out zeroed */
    memset(&got, 'x', sizeof(got));
    assert_int_equal(cat_rendition_find(f->c, a, "proxy", 2, "", &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_non_null(strstr(e.msg, "proxy"));
    assert_string_equal(got.id, "");
    assert_null(got.storage_key);
    assert_null(got.files);
    util_uuid7(other);
    assert_int_equal(cat_rendition_find(f->c, a, "proxy", 1, other, &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(cat_rendition_find(f->c, a, "thumb", 1, "", &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    memset(&got, 'x', sizeof(got));
    assert_int_equal(cat_rendition_get(f->c, other, &got, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_non_null(strstr(e.msg, other));
    assert_string_equal(got.id, "");
    assert_null(got.mime_type);

    /* arguments (out zeroed all the same) */
    e.code = ERR_OK;
    memset(&got, 'x', sizeof(got));
    assert_int_equal(cat_rendition_find(f->c, a, "", 1, "", &got, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_string_equal(got.id, "");
    assert_null(got.error);
    e.code = ERR_OK;
    assert_int_equal(cat_rendition_find(f->c, a, NULL, 1, "", &got, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    e.code = ERR_OK;
    assert_int_equal(cat_rendition_find(f->c, a, "proxy", 0, "", &got, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    e.code = ERR_OK;
    assert_int_equal(cat_rendition_find(f->c, a, "proxy", 1, "not-a-uuid", &got, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    e.code = ERR_OK;
    assert_int_equal(cat_rendition_find(f->c, "", "proxy", 1, "", &got, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    e.code = ERR_OK;
    memset(&got, 'x', sizeof(got));
    assert_int_equal(cat_rendition_get(f->c, "", &got, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_null(got.params);

    /* a profile name is 1..31 bytes */
    memset(longest, 'p', 31);
    longest[31] = '\0';
    memset(too_long, 'p', 32);
    too_long[32] = '\0';
    rend_make(f->c, a, longest, 1, NULL, REND_READY, 0, 0, NULL);
    assert_int_equal(cat_rendition_find(f->c, a, longest, 1, "", &got, &e), 0);
    assert_string_equal(got.profile_name, longest);
    cat_rendition_release(&got);
    e.code = ERR_OK;
    assert_int_equal(cat_rendition_find(f->c, a, too_long, 1, "", &got, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    rend_fill(&r, a, "x", 1, NULL);
    memset(r.profile_name, 'p', sizeof(r.profile_name)); /* no room left for the NUL */
    rend_put_fails(f->c, &r, ERR_INVALID, "profile name");
}

/* The sweep's listing: ready renditions whose expires_at has passed, soonest first. */
static void test_rend_expired(void **state)
{
    struct fixture *f = *state;
    struct cat_rendition r;
    struct rend_seen s;
    struct err e = {0};
    char a[37], e1[37], e2[37], e3[37];

    create_asset(f->c, "video", NULL, a);
    rend_make(f->c, a, "p3", 1, NULL, REND_READY, 3000, 0, e3);
    rend_make(f->c, a, "p1", 1, NULL, REND_READY, 1000, 0, e1);
    rend_make(f->c, a, "p0", 1, NULL, REND_READY, 0, 0, NULL); /* never expires */
    rend_make(f->c, a, "p2", 1, NULL, REND_READY, 2000, 0, e2);
    rend_make(f->c, a, "pf", 1, NULL, REND_FAILED, 500, 0, NULL);
    rend_make(f->c, a, "px", 1, NULL, REND_EXPIRED, 400, 0, NULL);
    rend_make(f->c, a, "pr", 1, NULL, REND_RUNNING, 100, 0, NULL);
    rend_make(f->c, a, "pp", 1, NULL, REND_PENDING, 200, 0, NULL);
    rend_make(f->c, a, "pl", 1, NULL, REND_READY, 10000, 0, NULL); /* later */

    rend_expired_n(f->c, 5000, 10, &s);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.id[0], e1);
    assert_string_equal(s.id[1], e2);
    assert_string_equal(s.id[2], e3);
    assert_int_equal(s.expires_at[0], 1000);
    assert_int_equal(s.expires_at[2], 3000);
    for (int i = 0; i < s.n; i++)
        assert_string_equal(s.status[i], REND_READY);
    rend_expired_n(f->c, 5000, 2, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.id[0], e1);
    assert_string_equal(s.id[1], e2);
    /* before, not at */
    rend_expired_n(f->c, 1000, 10, &s);
    assert_int_equal(s.n, 0);
    rend_expired_n(f->c, 1001, 10, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.id[0], e1);
    rend_expired_n(f->c, 20000, 10, &s);
    assert_int_equal(s.n, 4);
    /* limits: nothing asked, nothing listed; more than 1000 is 1000 */
    rend_expired_n(f->c, 5000, 0, &s);
    assert_int_equal(s.n, 0);
    rend_expired_n(f->c, 5000, 100000, &s);
    assert_int_equal(s.n, 3);

    /* a swept rendition (status expired) leaves the listing */
    assert_int_equal(cat_rendition_find(f->c, a, "p1", 1, "", &r, &e), 0);
    snprintf(r.status, sizeof(r.status), "%s", REND_EXPIRED);
    assert_int_equal(cat_rendition_put(f->c, &r, &e), 0);
    cat_rendition_release(&r);
    rend_expired_n(f->c, 5000, 10, &s);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.id[0], e2);
    assert_string_equal(s.id[1], e3);

    /* a callback's non-zero result stops the listing and is returned */
    memset(&s, 0, sizeof(s));
    s.stop_after = 1;
    assert_int_equal(cat_renditions_expired(f->c, 5000, 10, rend_saw, &s, &e), 7);
    assert_int_equal(s.n, 1);
}

static void test_rend_errors(void **state)
{
    static const char gone[] = "00000000-0000-7000-8000-000000000000";
    struct fixture *f = *state;
    struct cat_rendition r;
    struct err e = {0};
    char a[37], sql[256];

    /* the asset must exist (the foreign key): ERR_NOTFOUND naming it */
    rend_fill(&r, gone, "proxy", 1, NULL);
    rend_put_fails(f->c, &r, ERR_NOTFOUND, gone);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM renditions"), 0);
    /* renditions go with their asset; a put after the delete is refused alike */
    create_asset(f->c, "video", NULL, a);
    rend_make(f->c, a, "proxy", 1, NULL, REND_READY, 0, 0, NULL);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM renditions"), 1);
    assert_int_equal(cat_asset_delete(f->c, a, NULL, &e), 0);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM renditions"), 0);
    rend_fill(&r, a, "proxy", 1, NULL);
    rend_put_fails(f->c, &r, ERR_NOTFOUND, "not found");

    create_asset(f->c, "video", NULL, a);
    /* a status outside the CHECK: refused by the wrapper, and by the schema behind it */
    rend_fill(&r, a, "proxy", 1, NULL);
    snprintf(r.status, sizeof(r.status), "%s", "done");
    rend_put_fails(f->c, &r, ERR_INVALID, "done");
    e.code = ERR_OK;
    assert_int_equal(f->c->ops->wf->rendition_put(f->c, &r, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_non_null(strstr(e.msg, "status 'done'"));
    r.status[0] = '\0';
    rend_put_fails(f->c, &r, ERR_INVALID, "status");
    snprintf(r.status, sizeof(r.status), "%s", REND_READY);

    /* files and params are JSON */
    r.files = (char *)"[{\"key\":";
    rend_put_fails(f->c, &r, ERR_INVALID, "files");
    r.files = NULL;
    r.params = (char *)"not json";
    rend_put_fails(f->c, &r, ERR_INVALID, "params");
    r.params = NULL;

    /* measures: -1 is unknown, below is refused; times are not negative */
    r.width = -2;
    rend_put_fails(f->c, &r, ERR_INVALID, "width");
    r.width = -1;
    r.expires_at = -5;
    rend_put_fails(f->c, &r, ERR_INVALID, "negative");
    r.expires_at = 0;

    /* ids, key and fixed-size fields */
    snprintf(r.id, sizeof(r.id), "%s", "nope");
    rend_put_fails(f->c, &r, ERR_INVALID, "nope");
    r.id[0] = '\0';
    snprintf(r.variant, sizeof(r.variant), "%s", "on-demand");
    rend_put_fails(f->c, &r, ERR_INVALID, "variant");
    r.variant[0] = '\0';
    r.profile_version = 0;
    rend_put_fails(f->c, &r, ERR_INVALID, "version");
    r.profile_version = 1;
    r.profile_name[0] = '\0';
    rend_put_fails(f->c, &r, ERR_INVALID, "profile name");
    snprintf(r.profile_name, sizeof(r.profile_name), "%s", "proxy");
    memset(r.bucket, 'b', sizeof(r.bucket));
    rend_put_fails(f->c, &r, ERR_INVALID, "bucket");
    r.bucket[0] = '\0';
    r.asset_id[0] = '\0';
    rend_put_fails(f->c, &r, ERR_INVALID, "asset");
    snprintf(r.asset_id, sizeof(r.asset_id), "%s", a);

    /* none of it was written; the row as fixed is */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM renditions WHERE asset_id = '%s'", a);
    assert_int_equal(raw_sql(f->path, sql), 0);
    assert_int_equal(cat_rendition_put(f->c, &r, &e), 0);
    assert_int_equal(raw_sql(f->path, sql), 1);
}

/* cat_rendition_release frees every heap string (ASan reports a leak otherwise). */
static void test_rend_release(void **state)
{
    struct fixture *f = *state;
    struct cat_rendition r, got;
    struct err e = {0};
    char a[37];

    create_asset(f->c, "video", NULL, a);
    rend_fill(&r, a, "proxy", 1, NULL);
    r.storage_key = xstrdup("proxies/a/proxy.mp4");
    r.mime_type = xstrdup("video/mp4");
    r.files = xstrdup("[]");
    r.params = xstrdup("{}");
    r.error = xstrdup("none");
    assert_int_equal(cat_rendition_put(f->c, &r, &e), 0);
    cat_rendition_release(&r);
    assert_null(r.storage_key);
    assert_null(r.mime_type);
    assert_null(r.files);
    assert_null(r.params);
    assert_null(r.error);

    assert_int_equal(cat_rendition_get(f->c, r.id, &got, &e), 0);
    assert_string_equal(got.storage_key, "proxies/a/proxy.mp4");
    assert_string_equal(got.mime_type, "video/mp4");
    assert_string_equal(got.files, "[]");
    assert_string_equal(got.params, "{}");
    assert_string_equal(got.error, "none");
    cat_rendition_release(&got);
    assert_null(got.storage_key);
    assert_null(got.mime_type);
    assert_null(got.files);
    assert_null(got.params);
    assert_null(got.error);
    cat_rendition_release(&got); /* twice is harmless */
    cat_rendition_release(NULL);
}

/* The plan of a statement, one detail line per row, joined with '\n'. */
static void query_plan(const char *path, const char *sql, char *out, size_t n)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    char q[8192];
    size_t len = 0;

    out[0] = '\0';
    snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "plan of %s: %s\n", sql, sqlite3_errmsg(db));
        fail();
    }
    while (sqlite3_step(st) == SQLITE_ROW) {
        int w = snprintf(out + len, n - len, "%s\n", (const char *)sqlite3_column_text(st, 3));

        assert_true(w > 0 && (size_t)w < n - len);
        len += (size_t)w;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/*
 * Asserts that sql's plan uses index and never scans a whole table of those named; with
 * in_order, that it reads rows in the index's order (no sort).
 */
static void plan_check(const char *path, const char *sql, const char *index, int in_order)
{
    static const char *const tables[] = {"jobs", "workflows", "workflow_events", "renditions"};
    char plan[4096];

    query_plan(path, sql, plan, sizeof(plan));
    if (!strstr(plan, index))
        fprintf(stderr, "plan without %s:\n%s\nof %s\n", index, plan, sql);
    assert_non_null(strstr(plan, index));
    for (size_t i = 0; i < ARRAY_LEN(tables); i++) {
        char full[64];
        const char *p = plan;

        snprintf(full, sizeof(full), "SCAN %s\n", tables[i]);
        while ((p = strstr(p, full)) != NULL) {
            if (p == plan || p[-1] == '\n') {
                fprintf(stderr, "full scan of %s:\n%s\nof %s\n", tables[i], plan, sql);
                fail();
            }
            p++;
        }
    }
    if (in_order && strstr(plan, "TEMP B-TREE")) {
        fprintf(stderr, "plan with a sort:\n%s\nof %s\n", plan, sql);
        fail();
    }
}

static void plan_uses(const char *path, const char *sql, const char *index)
{
    plan_check(path, sql, index, 0);
}

static void plan_in_order(const char *path, const char *sql, const char *index)
{
    plan_check(path, sql, index, 1);
}

static void test_query_plans(void **state)
{
    struct fixture *f = *state;
    struct cat_workflow_filter flt = {.limit = 10};
    struct wf_seen o;
    struct err e = {0};
    struct conn *cn;

    plan_in_order(f->path, wf_sql[W_JOBS_LEASE], "idx_jobs_ready");
    plan_in_order(f->path, wf_sql[W_JOBS_EXPIRED], "idx_jobs_leased");
    plan_in_order(f->path, wf_sql[W_NEXT_EXPIRY], "idx_jobs_leased");
    plan_in_order(f->path, wf_sql[W_NEXT_RUN], "idx_jobs_due");
    plan_uses(f->path, wf_sql[W_QUEUE_DEPTHS], "idx_jobs_due");
    plan_uses(f->path, wf_sql[W_QUEUE_DEPTHS], "idx_jobs_leased");
    plan_in_order(f->path, wf_sql[W_JOBS_CANCEL_REQUESTED], "idx_jobs_owner");
    plan_in_order(f->path, wf_sql[W_WF_EVENTS], "idx_workflow_events_workflow");
    /* a workflow's jobs: the UNIQUE (workflow_id, step, item) index */
    plan_uses(f->path, wf_sql[W_WF_JOBS], "sqlite_autoindex_jobs");
    plan_in_order(f->path, wf_sql[W_JOB_OUTPUTS], "sqlite_autoindex_jobs");
    plan_uses(f->path, wf_sql[W_JOBS_COUNT], "sqlite_autoindex_jobs");
    plan_uses(f->path, wf_sql[W_JOBS_CANCEL_READY], "sqlite_autoindex_jobs");
    plan_uses(f->path, wf_sql[W_JOBS_CANCEL_LEASED], "sqlite_autoindex_jobs");
    plan_uses(f->path, wf_sql[W_JOBS_RETRY], "sqlite_autoindex_jobs");
    plan_uses(f->path, wf_sql[W_JOB_FINISH], "INTEGER PRIMARY KEY");
    plan_uses(f->path, wf_sql[W_JOBS_HEARTBEAT], "INTEGER PRIMARY KEY");
    plan_uses(f->path, wf_sql[W_WF_BY_IDEM], "sqlite_autoindex_workflows");
    /* renditions: the sweep in expiry order; by id the primary key's index (autoindex 1);
     * by key and an asset's list the UNIQUE (asset_id, profile, version, variant) one */
    plan_in_order(f->path, rend_sql[RS_EXPIRED], "idx_renditions_expires");
    plan_uses(f->path, rend_sql[RS_GET], "sqlite_autoindex_renditions_1");
    plan_uses(f->path, rend_sql[RS_FIND], "sqlite_autoindex_renditions_2");
    plan_uses(f->path, rend_sql[RS_LIST], "sqlite_autoindex_renditions_2");

    /* the list statements, as built and cached per filter combination */
    flt.asset_id = "a";
    wf_list_n(f->c, &flt, &o);
    flt.asset_id = NULL;
    flt.type = "t";
    wf_list_n(f->c, &flt, &o);
    flt.type = NULL;
    flt.status = WF_FAILED;
    flt.after_id = "0190";
    wf_list_n(f->c, &flt, &o);
    flt.status = NULL;
    flt.after_id = NULL;
    flt.created_by = "u";
    wf_list_n(f->c, &flt, &o);
    flt.created_by = NULL;
    flt.queue = "q";
    wf_list_n(f->c, &flt, &o);
    cn = pool_get((struct cat_sqlite *)f->c, &e);
    assert_non_null(cn);
    plan_in_order(f->path, sqlite3_sql(cn->wlist[WLF_ASSET]), "idx_workflows_asset");
    plan_in_order(f->path, sqlite3_sql(cn->wlist[WLF_TYPE]), "idx_workflows_type");
    plan_in_order(f->path, sqlite3_sql(cn->wlist[WLF_STATUS | WLF_AFTER]), "idx_workflows_status");
    plan_in_order(f->path, sqlite3_sql(cn->wlist[WLF_CREATED_BY]), "idx_workflows_created_by");
    plan_in_order(f->path, sqlite3_sql(cn->wlist[WLF_QUEUE]), "sqlite_autoindex_jobs");
    pool_put((struct cat_sqlite *)f->c, cn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrations_newer_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_asset_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_asset_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_set_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_complete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uploads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_upload_keyed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wf_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wf_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lease_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_cancel_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_next_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outputs_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wf_steps_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wf_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_depths_workers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_effects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_asset_ingest_ops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tx_run, setup, teardown),
        cmocka_unit_test(test_busy_handler),
        cmocka_unit_test_setup_teardown(test_lease_contention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rend_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rend_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search_seq_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_upgrade, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_settle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rend_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rend_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rend_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rend_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rend_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_plans, setup, teardown),
    };

    log_init(LOG_WARN, 0, 2);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
