#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* static functions (sqlite_open_tuned) are reached by including the backend */
#include "catalog/catalog_sqlite.c"

#include <pthread.h>
#include <unistd.h>

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

    assert_int_equal(cat_schema_version(f->c), 1);
    cat_close(f->c);
    f->c = NULL;
    assert_int_equal(cat_sqlite_open(&f->c, f->path, &e), 0);
    assert_int_equal(cat_schema_version(f->c), 1);
    assert_int_equal(raw_sql(f->path, "SELECT count(*) FROM schema_migrations"), 1);
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

    assert_int_equal(sqlite_open_tuned(&tuned, f->path, 20, 200, &e), 0);
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
        cmocka_unit_test_setup_teardown(test_users_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrency, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy, setup, teardown),
    };

    log_init(LOG_WARN, 0, 2);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
