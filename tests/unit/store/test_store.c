#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/store.h"
/* static functions of the fs backend (fs_copy_part, fs_dent_cmp) are tested directly */
#include "store/store_fs.c"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIN_PART ((size_t)256 * 1024)
#define ROOT_MAX 256

/** A temporary store root and the fs store opened on it. */
struct fixture {
    char root[ROOT_MAX];
    struct store *st;
};

/* ---- helpers ------------------------------------------------------------------------ */

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *path)
{
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_root(char *root)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(root, ROOT_MAX, "%.200s/acervo-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(root));
}

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof(*fx));
    struct err e = {0};

    make_root(fx->root);
    if (store_fs_open(&fx->st, fx->root, &e) < 0) {
        fprintf(stderr, "store_fs_open: %s\n", e.msg);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;

    store_close(fx->st);
    rm_tree(fx->root);
    free(fx);
    return 0;
}

static void md5_hex(const void *data, size_t n, char out[33])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    assert_int_equal(EVP_Digest(data, n, d, &dlen, EVP_md5(), NULL), 1);
    util_hex(d, dlen, out);
}

/* deterministic pseudo-random bytes */
static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *p = xmalloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

/* writes data through w in uneven chunks */
static int write_chunks(struct store_writer *w, const unsigned char *data, size_t n, struct err *e)
{
    static const size_t sizes[] = {1, 7, 4096, 300 * 1024, 100, 65536, 1 << 20};
    size_t off = 0;

    for (size_t i = 0; off < n; i++) {
        size_t c = sizes[i % ARRAY_LEN(sizes)];

        if (c > n - off)
            c = n - off;
        if (store_writer_write(w, data + off, c, e) < 0)
            return -1;
        off += c;
    }
    return 0;
}

static int put(struct store *st, const char *bucket, const char *key, const void *data, size_t n,
               const char *ct, struct store_meta *m, struct err *e)
{
    struct store_writer *w;

    if (store_object_writer(st, bucket, key, STORE_WRITER_SHA256, &w, e) < 0)
        return -1;
    if (write_chunks(w, data, n, e) < 0) {
        store_writer_abort(w);
        return -1;
    }
    return store_writer_commit(w, ct, NULL, m, e);
}

static int put_part(struct store *st, const char *id, int number, const void *data, size_t n,
                    struct store_meta *m, struct err *e)
{
    struct store_writer *w;

    if (store_part_writer(st, id, number, (int64_t)n, 0, &w, e) < 0)
        return -1;
    if (write_chunks(w, data, n, e) < 0) {
        store_writer_abort(w);
        return -1;
    }
    return store_writer_commit(w, NULL, NULL, m, e);
}

/* asserts that bucket/key holds exactly data */
static void assert_object(struct store *st, const char *bucket, const char *key, const void *data,
                          size_t n)
{
    struct store_meta m;
    struct err e = {0};
    unsigned char *got = xmalloc(n + 1);
    size_t len = 0;
    int fd;

    assert_int_equal(store_object_open(st, bucket, key, &fd, &m, &e), 0);
    assert_int_equal(m.size, (int64_t)n);
    for (;;) {
        ssize_t r = read(fd, got + len, n + 1 - len);

        assert_true(r >= 0);
        if (r == 0)
            break;
        len += (size_t)r;
        assert_true(len <= n);
    }
    close(fd);
    assert_int_equal(len, n);
    assert_memory_equal(got, data, n);
    free(got);
}

/* number of entries in dir, "." and ".." excluded; -1 if it cannot be read */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    for (;;) {
        de = readdir(d);
        if (!de)
            break;
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    }
    closedir(d);
    return n;
}

/* number of files in the (single) instance directory of the store under root */
static int count_tmp_files(const char *root)
{
    char path[PATH_MAX];
    DIR *d;
    struct dirent *de;
    int n = 0;

    snprintf(path, sizeof(path), "%s/.tmp", root);
    d = opendir(path);
    assert_non_null(d);
    for (;;) {
        char sub[PATH_MAX + 300];

        de = readdir(d);
        if (!de)
            break;
        if (de->d_name[0] == '.')
            continue;
        snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
        n += count_entries(sub) > 0 ? count_entries(sub) : 0;
    }
    closedir(d);
    return n;
}

static int count_fds(void)
{
    return count_entries("/proc/self/fd");
}

/* the S3 multipart etag of the given parts */
static void multipart_etag(const unsigned char *const *data, const size_t *len, size_t n,
                           char out[48])
{
    unsigned char *cat = xmalloc(16 * n);
    char hex[33];

    for (size_t i = 0; i < n; i++) {
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dlen = 0;

        assert_int_equal(EVP_Digest(data[i], len[i], d, &dlen, EVP_md5(), NULL), 1);
        memcpy(cat + 16 * i, d, 16);
    }
    md5_hex(cat, 16 * n, hex);
    snprintf(out, 48, "%s-%zu", hex, n);
    free(cat);
}

/* ---- validation --------------------------------------------------------------------- */

static void test_validation(void **state)
{
    static const char *const good[] = {"a",
                                       "a/b/c",
                                       "masters/x/y/original.mov",
                                       "..a",
                                       "a..",
                                       ".a",
                                       "a/.../b",
                                       "a b/c~d",
                                       "\xc3\xa1ngel",
                                       "\xe2\x82\xac/\xf0\x9f\x8e\xac",
                                       "a\xef\xbf\xbd"};
    static const char *const bad[] = {"", "/a", "a/", "a//b", "a/./b", "a/../b", "..", ".", "../x",
                                      "x/..", "a\x01z", "a\x7f", "a\nb", "a\tb", "/", "./a",
                                      /* not UTF-8: stray bytes, overlong '/', a surrogate,
                                       * truncated; and U+FFFE / U+FFFF */
                                      "probe/\xff\xfe",
                                      "a\xc0\xaf"
                                      "b",
                                      "\xed\xa0\x80", "a\xe2\x82", "a\xef\xbf\xbe",
                                      "\xef\xbf\xbfz"};
    char key[STORE_KEY_MAX + 2];
    struct err e = {0};

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(good); i++)
        assert_int_equal(store_key_valid(good[i], &e), 0);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        err_clear(&e);
        assert_int_equal(store_key_valid(bad[i], &e), -1);
        assert_int_equal(e.code, ERR_INVALID);
    }
    assert_int_equal(store_key_valid(NULL, &e), -1);
    memset(key, 'k', STORE_KEY_MAX);
    key[STORE_KEY_MAX] = '\0';
    assert_int_equal(store_key_valid(key, &e), 0);
    key[STORE_KEY_MAX] = 'k';
    key[STORE_KEY_MAX + 1] = '\0';
    assert_int_equal(store_key_valid(key, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);

    assert_int_equal(store_bucket_valid(STORE_BUCKET_ARCHIVE, &e), 0);
    assert_int_equal(store_bucket_valid(STORE_BUCKET_PROXIES, &e), 0);
    assert_int_equal(store_bucket_valid(STORE_BUCKET_DELIVERY, &e), 0);
    assert_int_equal(store_bucket_valid("archive2", &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(store_bucket_valid(NULL, &e), -1);

    assert_true(store_upload_id_valid("0123456789abcdef0123456789abcdef"));
    assert_false(store_upload_id_valid("0123456789ABCDEF0123456789abcdef"));
    assert_false(store_upload_id_valid("0123456789abcdef0123456789abcde"));
    assert_false(store_upload_id_valid("0123456789abcdef0123456789abcdef0"));
    assert_false(store_upload_id_valid("../3456789abcdef0123456789abcdef"));
    assert_false(store_upload_id_valid(NULL));

    assert_int_equal(store_content_type_valid(NULL, &e), 0);
    assert_int_equal(store_content_type_valid("video/mp4; codecs=\"avc1\"", &e), 0);
    assert_int_equal(store_content_type_valid("text/plain\nX-Evil: 1", &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    memset(key, 'c', 200);
    key[200] = '\0';
    assert_int_equal(store_content_type_valid(key, &e), -1);
    assert_int_equal(e.code, ERR_LIMIT);

    assert_int_equal(store_headers_valid(NULL, &e), 0);
    assert_int_equal(store_headers_valid("", &e), 0);
    assert_int_equal(store_headers_valid("x-amz-meta-a:1\ncache-control:no-cache\n", &e), 0);
    assert_int_equal(store_headers_valid("x-amz-meta-e:\nx-amz-meta-u:\xc3\xb1\tb\n", &e), 0);
    {
        static const char *const bad_headers[] = {
            "x-amz-meta-a:1",      /* no newline */
            "X-Amz-Meta-A:1\n",    /* not lowercase */
            ":v\n",                /* no name */
            "a b:v\n",             /* not a token */
            "x-amz-meta-a:1\r\n",  /* a control character */
            "x-amz-meta-a:\xff\n", /* not UTF-8 */
            "x-amz-meta-a\n",      /* no colon */
        };
        char big[STORE_HEADERS_MAX + 64];

        for (size_t i = 0; i < ARRAY_LEN(bad_headers); i++) {
            err_clear(&e);
            assert_int_equal(store_headers_valid(bad_headers[i], &e), -1);
            assert_int_equal(e.code, ERR_INVALID);
        }
        snprintf(big, sizeof(big), "x-amz-meta-big:");
        memset(big + 15, 'v', STORE_HEADERS_MAX - 15);
        big[STORE_HEADERS_MAX] = '\0';
        big[STORE_HEADERS_MAX - 1] = '\n';
        assert_int_equal(store_headers_valid(big, &e), 0);
        big[STORE_HEADERS_MAX - 1] = 'v';
        big[STORE_HEADERS_MAX] = '\n';
        big[STORE_HEADERS_MAX + 1] = '\0';
        assert_int_equal(store_headers_valid(big, &e), -1);
        assert_int_equal(e.code, ERR_LIMIT);
    }
}

/* the wrappers refuse bad names before any backend sees them */
static void test_wrapper_checks(void **state)
{
    struct fixture *fx = *state;
    struct store_writer *w = (struct store_writer *)1;
    struct store_staged *sg = (struct store_staged *)1;
    struct store_part_ref ref = {1, "x"};
    struct store_meta m;
    struct err e = {0};
    char seg[300];

    assert_int_equal(store_object_writer(fx->st, "nope", "a", 0, &w, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_null(w);
    assert_int_equal(store_object_writer(fx->st, "archive", "../etc/passwd", 0, &w, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(store_object_stat(fx->st, "archive", "a/../../x", &m, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(store_part_writer(fx->st, "nothex", 1, -1, 0, &w, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(
        store_part_writer(fx->st, "0123456789abcdef0123456789abcdef", 0, -1, 0, &w, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(
        store_part_writer(fx->st, "0123456789abcdef0123456789abcdef", 10001, -1, 0, &w, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(
        store_upload_assemble(fx->st, "0123456789abcdef0123456789abcdef", &ref, 1, 0, &sg, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_null(sg);
    /* a segment longer than the filesystem's NAME_MAX */
    memset(seg, 's', 299);
    seg[299] = '\0';
    assert_int_equal(store_object_writer(fx->st, "archive", seg, 0, &w, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_string_equal(store_backend_name(fx->st), "fs");
}

/* ---- objects -------------------------------------------------------------------------- */

static void test_put_read(void **state)
{
    struct fixture *fx = *state;
    size_t n = 700 * 1024 + 3;
    unsigned char *data = pattern(n, 1);
    struct store_meta m;
    struct store_meta s;
    struct store_writer *w;
    struct err e = {0};
    char md5[33];
    char sha[65];
    int fd;

    md5_hex(data, n, md5);
    util_sha256_hex(data, n, sha);
    assert_int_equal(
        put(fx->st, "archive", "masters/a1/x/original.mov", data, n, "video/quicktime", &m, &e), 0);
    assert_int_equal(m.size, (int64_t)n);
    assert_string_equal(m.etag, md5);
    assert_string_equal(m.sha256, sha);
    assert_string_equal(m.content_type, "video/quicktime");
    assert_true(m.mtime > 0);

    assert_int_equal(store_object_stat(fx->st, "archive", "masters/a1/x/original.mov", &s, &e), 0);
    assert_int_equal(s.size, (int64_t)n);
    assert_string_equal(s.etag, md5);
    assert_string_equal(s.sha256, sha);
    assert_string_equal(s.content_type, "video/quicktime");
    assert_int_equal(s.mtime, m.mtime);
    assert_object(fx->st, "archive", "masters/a1/x/original.mov", data, n);

    /* the same key in another bucket is another object */
    assert_int_equal(store_object_stat(fx->st, "proxies", "masters/a1/x/original.mov", &s, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    /* a directory is not an object, nor is a path through an object */
    assert_int_equal(store_object_stat(fx->st, "archive", "masters/a1", &s, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(
        store_object_open(fx->st, "archive", "masters/a1/x/original.mov/y", &fd, &s, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(fd, -1);

    /* without the SHA-256 flag, no sha256; an empty object is fine */
    assert_int_equal(store_object_writer(fx->st, "proxies", "empty", 0, &w, &e), 0);
    assert_int_equal(store_writer_commit(w, NULL, NULL, &m, &e), 0);
    assert_int_equal(m.size, 0);
    assert_string_equal(m.etag, "d41d8cd98f00b204e9800998ecf8427e");
    assert_string_equal(m.sha256, "");
    assert_int_equal(store_object_stat(fx->st, "proxies", "empty", &s, &e), 0);
    assert_string_equal(s.etag, "d41d8cd98f00b204e9800998ecf8427e");
    assert_string_equal(s.content_type, "");

    /* a bad content type aborts the writer (ASan checks it is freed) */
    assert_int_equal(store_object_writer(fx->st, "proxies", "badct", 0, &w, &e), 0);
    assert_int_equal(store_writer_commit(w, "a\r\nb", NULL, &m, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(store_object_stat(fx->st, "proxies", "badct", &s, &e), -1);

    assert_int_equal(count_tmp_files(fx->root), 0);
    free(data);
}

static void test_no_overwrite(void **state)
{
    struct fixture *fx = *state;
    struct store_meta m;
    struct err e = {0};

    assert_int_equal(put(fx->st, "archive", "k/v", "first", 5, NULL, &m, &e), 0);
    assert_int_equal(put(fx->st, "archive", "k/v", "second!", 7, NULL, &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_object(fx->st, "archive", "k/v", "first", 5);
    /* a key below an object, and a key that is a prefix of objects, conflict too */
    assert_int_equal(put(fx->st, "archive", "k/v/w", "x", 1, NULL, &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "KeyConflict: k/v is an object"));
    assert_int_equal(put(fx->st, "archive", "k/v/w/z", "x", 1, NULL, &m, &e), -1);
    assert_non_null(strstr(e.msg, "KeyConflict: k/v is an object"));
    assert_int_equal(put(fx->st, "archive", "k", "x", 1, NULL, &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_non_null(strstr(e.msg, "KeyConflict: other keys begin with k/"));
    /* the plain case says nothing of folders */
    assert_int_equal(put(fx->st, "archive", "k/v", "x", 1, NULL, &m, &e), -1);
    assert_null(strstr(e.msg, "KeyConflict"));
    assert_object(fx->st, "archive", "k/v", "first", 5);
    assert_int_equal(count_tmp_files(fx->root), 0);
}

static void test_writer_abort(void **state)
{
    struct fixture *fx = *state;
    unsigned char *data = pattern(600000, 2);
    struct store_writer *w;
    struct store_meta m;
    struct err e = {0};

    assert_int_equal(store_object_writer(fx->st, "delivery", "web/a/b.m3u8", 0, &w, &e), 0);
    assert_int_equal(write_chunks(w, data, 600000, &e), 0);
    assert_true(count_tmp_files(fx->root) == 1);
    store_writer_abort(w);
    store_writer_abort(NULL);
    assert_int_equal(store_object_stat(fx->st, "delivery", "web/a/b.m3u8", &m, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(count_tmp_files(fx->root), 0);
    free(data);
}

struct list_ctx {
    char keys[16][64];
    int n;
    int stop_at;
};

static int list_cb(void *ctx, const char *key, const struct store_meta *m)
{
    struct list_ctx *l = ctx;

    assert_true(m->size > 0);
    assert_true(l->n < 16);
    snprintf(l->keys[l->n++], sizeof(l->keys[0]), "%s", key);
    return l->stop_at && l->n == l->stop_at;
}

static int count_cb(void *ctx, const char *key, const struct store_meta *m)
{
    (void)key;
    (void)m;
    (*(int *)ctx)++;
    return 0;
}

static void list_expect(struct store *st, const char *prefix, const char *const *want, int nwant)
{
    struct list_ctx l = {0};
    struct err e = {0};

    assert_int_equal(store_object_list(st, "archive", prefix, list_cb, &l, &e), 0);
    assert_int_equal(l.n, nwant);
    for (int i = 0; i < nwant; i++)
        assert_string_equal(l.keys[i], want[i]);
}

static void test_list_delete(void **state)
{
    struct fixture *fx = *state;
    static const char *const keys[] = {"b", "a0", "a/d/e", "a-b", "a/c", "a/d.x"};
    static const char *const all[] = {"a-b", "a/c", "a/d.x", "a/d/e", "a0", "b"};
    static const char *const under_a[] = {"a/c", "a/d.x", "a/d/e"};
    static const char *const a_d[] = {"a/d.x", "a/d/e"};
    static const char *const a_d_[] = {"a/d/e"};
    struct list_ctx l = {.stop_at = 2};
    struct store_meta m;
    struct err e = {0};
    char path[PATH_MAX];
    struct stat sb;

    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        assert_int_equal(put(fx->st, "archive", keys[i], "data", 4, NULL, &m, &e), 0);
    list_expect(fx->st, "", all, 6);
    list_expect(fx->st, "a/", under_a, 3);
    list_expect(fx->st, "a/d", a_d, 2);
    list_expect(fx->st, "a/d/", a_d_, 1);
    list_expect(fx->st, "a/d/e", a_d_, 1);
    list_expect(fx->st, "zz/", NULL, 0);
    list_expect(fx->st, "../", NULL, 0);
    list_expect(fx->st, "a/../", NULL, 0);
    list_expect(fx->st, "//", NULL, 0);
    assert_int_equal(store_object_list(fx->st, "archive", NULL, list_cb, &l, &e), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(store_object_list(fx->st, "nope", "", list_cb, &l, &e), -1);

    assert_int_equal(store_object_delete(fx->st, "archive", "a/d/e", &e), 0);
    snprintf(path, sizeof(path), "%s/archive/a/d", fx->root);
    assert_int_equal(stat(path, &sb), -1); /* the emptied directory went too */
    assert_int_equal(store_object_delete(fx->st, "archive", "a/d/e", &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(store_object_delete(fx->st, "archive", "a", &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    list_expect(fx->st, "a/", under_a, 2);
    /* the key can be written again once deleted */
    assert_int_equal(put(fx->st, "archive", "a/d/e", "new", 3, NULL, &m, &e), 0);
    assert_object(fx->st, "archive", "a/d/e", "new", 3);
}

/* ---- headers, listing queries, copies ---------------------------------------------- */

#define HEADERS                                                                                    \
    "x-amz-meta-mtime:1700000000.5\ncache-control:max-age=60\n"                                    \
    "content-disposition:attachment; filename=\"a b.mp4\"\nx-amz-meta-city:S\xc3\xa3o Paulo\n"

static int headers_cb(void *ctx, const char *key, const struct store_meta *m)
{
    int *seen = ctx;

    (void)key;
    assert_string_equal(m->headers, HEADERS);
    (*seen)++;
    return 0;
}

static void test_headers(void **state)
{
    struct fixture *fx = *state;
    struct store_writer *w;
    struct store_upload u;
    struct store_upload g;
    struct store_part_ref ref;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};
    char big[STORE_HEADERS_MAX + 1];
    int seen = 0;

    /* an object keeps its headers, committed with it */
    assert_int_equal(store_object_writer(fx->st, "archive", "h/put", 0, &w, &e), 0);
    assert_int_equal(store_writer_write(w, "body", 4, &e), 0);
    assert_int_equal(store_writer_commit(w, "video/mp4", HEADERS, &m, &e), 0);
    assert_string_equal(m.headers, HEADERS);
    memset(&m, 0, sizeof(m));
    assert_int_equal(store_object_stat(fx->st, "archive", "h/put", &m, &e), 0);
    assert_string_equal(m.content_type, "video/mp4");
    assert_string_equal(m.headers, HEADERS);

    /* a multipart upload carries them to the object it makes */
    assert_int_equal(store_upload_create(fx->st, "archive", "h/mpu", "audio/wav", HEADERS, &u, &e),
                     0);
    assert_int_equal(store_upload_get(fx->st, u.upload_id, &g, &e), 0);
    assert_string_equal(g.headers, HEADERS);
    assert_string_equal(g.content_type, "audio/wav");
    assert_int_equal(put_part(fx->st, u.upload_id, 1, "part", 4, &m, &e), 0);
    ref.number = 1;
    memcpy(ref.etag, m.etag, 33);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, &ref, 1, MIN_PART, &sg, &e), 0);
    assert_int_equal(store_staged_commit(sg, "archive", "h/mpu", &m, &e), 0);
    store_staged_free(sg);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    assert_string_equal(m.headers, HEADERS);

    /* both survive a reopen, and listings see them */
    store_close(fx->st);
    assert_int_equal(store_fs_open(&fx->st, fx->root, &e), 0);
    assert_int_equal(store_object_stat(fx->st, "archive", "h/mpu", &m, &e), 0);
    assert_string_equal(m.headers, HEADERS);
    assert_string_equal(m.content_type, "audio/wav");
    assert_int_equal(store_object_list(fx->st, "archive", "h/", headers_cb, &seen, &e), 0);
    assert_int_equal(seen, 2);

    /* the largest block fits this filesystem's xattr */
    memset(big, 'v', sizeof(big));
    memcpy(big, "x-amz-meta-big:", 15);
    big[STORE_HEADERS_MAX - 1] = '\n';
    big[STORE_HEADERS_MAX] = '\0';
    assert_int_equal(store_object_writer(fx->st, "archive", "h/big", 0, &w, &e), 0);
    assert_int_equal(store_writer_commit(w, "application/octet-stream", big, &m, &e), 0);
    assert_int_equal(store_object_stat(fx->st, "archive", "h/big", &m, &e), 0);
    assert_string_equal(m.headers, big);
    /* a bad block aborts the writer and writes nothing */
    assert_int_equal(store_object_writer(fx->st, "archive", "h/bad", 0, &w, &e), 0);
    assert_int_equal(store_writer_commit(w, NULL, "x-amz-meta-a:1\r\n", &m, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(store_object_stat(fx->st, "archive", "h/bad", &m, &e), -1);
    assert_int_equal(store_upload_create(fx->st, "archive", "h/bad", NULL, "Bad:1\n", &u, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(count_tmp_files(fx->root), 0);
}

/* objects written before headers existed (the v=1 xattr without h= lines) still read */
static void test_old_xattr(void **state)
{
    static const char old[] =
        "v=1\netag=0123456789abcdef0123456789abcdef\nsha256=\nct=text/plain\n";
    struct fixture *fx = *state;
    struct store_meta m;
    struct err e = {0};
    char path[PATH_MAX];
    int fd;
    int seen = 0;

    snprintf(path, sizeof(path), "%s/archive/legacy", fx->root);
    assert_int_equal(mkdir(path, 0750), 0);
    snprintf(path, sizeof(path), "%s/archive/legacy/obj", fx->root);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "old!", 4), 4);
    assert_int_equal(fsetxattr(fd, FS_XATTR, old, sizeof(old) - 1, 0), 0);
    close(fd);
    memset(&m, 0x55, sizeof(m));
    assert_int_equal(store_object_stat(fx->st, "archive", "legacy/obj", &m, &e), 0);
    assert_string_equal(m.etag, "0123456789abcdef0123456789abcdef");
    assert_string_equal(m.content_type, "text/plain");
    assert_string_equal(m.headers, "");
    assert_int_equal(m.size, 4);
    assert_int_equal(store_object_list(fx->st, "archive", "legacy/", count_cb, &seen, &e), 0);
    assert_int_equal(seen, 1);
    /* and a copy of it keeps what it had */
    assert_int_equal(
        store_object_copy(fx->st, "archive", "legacy/obj", "proxies", "legacy/copy", NULL, &m, &e),
        0);
    assert_string_equal(m.etag, "0123456789abcdef0123456789abcdef");
    assert_object(fx->st, "proxies", "legacy/copy", "old!", 4);
}

/* what a listing query returned: "K:key" or "P:common prefix" */
struct query_ctx {
    char got[32][48];
    int n;
    int stop_at;
};

static int query_cb(void *ctx, const char *key, const struct store_meta *m)
{
    struct query_ctx *q = ctx;

    assert_true(q->n < 32);
    if (m)
        assert_int_equal(m->size, 4);
    snprintf(q->got[q->n++], sizeof(q->got[0]), "%s:%s", m ? "K" : "P", key);
    return q->stop_at && q->n == q->stop_at;
}

static void query_expect(struct store *st, const char *prefix, const char *after, const char *delim,
                         const char *want)
{
    struct store_list_query q = {prefix, after, delim};
    struct query_ctx c = {0};
    struct err e = {0};
    struct buf got;

    buf_init(&got, 0);
    buf_adds(&got, "", NULL);
    assert_int_equal(store_object_list_query(st, "archive", &q, query_cb, &c, &e), 0);
    for (int i = 0; i < c.n; i++)
        buf_addf(&got, NULL, "%s%s", i ? " " : "", c.got[i]);
    assert_string_equal(got.buf, want);
    buf_release(&got);
}

static void test_list_query(void **state)
{
    static const char *const keys[] = {"a-1", "a/b/c", "a/b/d", "a/x",   "a0", "b/c/d/e",
                                       "b/z", "c",     "d-1-x", "d-1-y", "d-2"};
    struct fixture *fx = *state;
    struct store_list_query q = {"", "", "/"};
    struct query_ctx c = {.stop_at = 2};
    struct store_meta m;
    struct err e = {0};
    char long_after[STORE_KEY_MAX + 2];

    for (size_t i = 0; i < ARRAY_LEN(keys); i++)
        assert_int_equal(put(fx->st, "archive", keys[i], "data", 4, NULL, &m, &e), 0);
    query_expect(fx->st, "", "", "",
                 "K:a-1 K:a/b/c K:a/b/d K:a/x K:a0 K:b/c/d/e K:b/z K:c K:d-1-x K:d-1-y K:d-2");
    query_expect(fx->st, "", "", "/", "K:a-1 P:a/ K:a0 P:b/ K:c K:d-1-x K:d-1-y K:d-2");
    query_expect(fx->st, "a/", "", "/", "P:a/b/ K:a/x");
    query_expect(fx->st, "a/b", "", "/", "P:a/b/");
    query_expect(fx->st, "", "", "-", "P:a- K:a/b/c K:a/b/d K:a/x K:a0 K:b/c/d/e K:b/z K:c P:d-");
    query_expect(fx->st, "d-", "", "-", "P:d-1- K:d-2");
    /* a delimiter of several bytes, across a folder's end */
    query_expect(fx->st, "a", "", "/b/", "K:a-1 P:a/b/ K:a/x K:a0");
    /* start_after: inside a folder, at a common prefix (never repeated), past everything */
    query_expect(fx->st, "", "a/b/c", "",
                 "K:a/b/d K:a/x K:a0 K:b/c/d/e K:b/z K:c K:d-1-x K:d-1-y K:d-2");
    query_expect(fx->st, "", "a/", "/", "K:a0 P:b/ K:c K:d-1-x K:d-1-y K:d-2");
    query_expect(fx->st, "", "a/b/c", "/", "K:a0 P:b/ K:c K:d-1-x K:d-1-y K:d-2");
    query_expect(fx->st, "", "a-1", "/", "P:a/ K:a0 P:b/ K:c K:d-1-x K:d-1-y K:d-2");
    query_expect(fx->st, "", "b/c", "/", "K:c K:d-1-x K:d-1-y K:d-2");
    query_expect(fx->st, "d-", "d-1-", "-", "K:d-2");
    query_expect(fx->st, "", "d-1-", "-", "");
    query_expect(fx->st, "b/", "b/c/d/e", "", "K:b/z");
    query_expect(fx->st, "", "zzz", "/", "");
    query_expect(fx->st, "", "0", "/", "K:a-1 P:a/ K:a0 P:b/ K:c K:d-1-x K:d-1-y K:d-2");
    /* the callback stops it */
    assert_int_equal(store_object_list_query(fx->st, "archive", &q, query_cb, &c, &e), 0);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.got[1], "P:a/");
    /* oversized arguments are refused */
    memset(long_after, 'z', sizeof(long_after) - 1);
    long_after[sizeof(long_after) - 1] = '\0';
    q.start_after = long_after;
    assert_int_equal(store_object_list_query(fx->st, "archive", &q, query_cb, &c, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
}

static void test_copy(void **state)
{
    struct fixture *fx = *state;
    unsigned char *data = pattern(300000, 7);
    struct store_meta src;
    struct store_meta m;
    struct store_meta rep = {0};
    struct err e = {0};
    char a[PATH_MAX];
    char b[PATH_MAX];
    struct stat sa;
    struct stat sb;

    assert_int_equal(put(fx->st, "archive", "src/x", data, 300000, "video/mp4", &src, &e), 0);
    assert_int_equal(store_object_stat(fx->st, "archive", "src/x", &src, &e), 0);

    /* unchanged metadata: a second name of the same file */
    assert_int_equal(
        store_object_copy(fx->st, "archive", "src/x", "archive", "dst/same", NULL, &m, &e), 0);
    assert_string_equal(m.etag, src.etag);
    assert_string_equal(m.sha256, src.sha256);
    assert_string_equal(m.content_type, "video/mp4");
    assert_object(fx->st, "archive", "dst/same", data, 300000);
    snprintf(a, sizeof(a), "%s/archive/src/x", fx->root);
    snprintf(b, sizeof(b), "%s/archive/dst/same", fx->root);
    assert_int_equal(stat(a, &sa), 0);
    assert_int_equal(stat(b, &sb), 0);
    assert_int_equal(sa.st_ino, sb.st_ino);

    /* other metadata: a file of its own, the source untouched */
    snprintf(rep.content_type, sizeof(rep.content_type), "application/octet-stream");
    snprintf(rep.headers, sizeof(rep.headers), "x-amz-meta-b:2\n");
    assert_int_equal(
        store_object_copy(fx->st, "archive", "src/x", "proxies", "dst/other", &rep, &m, &e), 0);
    assert_string_equal(m.etag, src.etag);
    assert_string_equal(m.content_type, "application/octet-stream");
    assert_string_equal(m.headers, "x-amz-meta-b:2\n");
    assert_object(fx->st, "proxies", "dst/other", data, 300000);
    assert_int_equal(store_object_stat(fx->st, "proxies", "dst/other", &m, &e), 0);
    assert_string_equal(m.headers, "x-amz-meta-b:2\n");
    assert_string_equal(m.sha256, src.sha256);
    snprintf(b, sizeof(b), "%s/proxies/dst/other", fx->root);
    assert_int_equal(stat(b, &sb), 0);
    assert_true(sa.st_ino != sb.st_ino);
    assert_int_equal(store_object_stat(fx->st, "archive", "src/x", &m, &e), 0);
    assert_string_equal(m.content_type, "video/mp4");
    assert_string_equal(m.headers, "");

    /* never onto an object, nor through one; a missing source is not found */
    assert_int_equal(
        store_object_copy(fx->st, "archive", "src/x", "proxies", "dst/other", &rep, &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(
        store_object_copy(fx->st, "archive", "src/x", "archive", "dst/same", NULL, &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(
        store_object_copy(fx->st, "archive", "src/x", "archive", "src/x/y", NULL, &m, &e), -1);
    assert_non_null(strstr(e.msg, "KeyConflict: src/x is an object"));
    assert_int_equal(
        store_object_copy(fx->st, "archive", "src/none", "archive", "dst/none", NULL, &m, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(
        store_object_copy(fx->st, "archive", "src", "archive", "dst/none", NULL, &m, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_object(fx->st, "proxies", "dst/other", data, 300000);
    assert_int_equal(count_tmp_files(fx->root), 0);
    free(data);
}

/* ---- multipart ----------------------------------------------------------------------- */

static void test_multipart(void **state)
{
    struct fixture *fx = *state;
    size_t len[3] = {MIN_PART + 5, MIN_PART, 1000};
    unsigned char *data[3];
    unsigned char *old2 = pattern(MIN_PART + 77, 99);
    unsigned char *all;
    struct store_upload u;
    struct store_upload g;
    struct store_part *parts;
    struct store_part_ref refs[3];
    struct store_staged *sg;
    struct store_staged *sg2;
    struct store_meta m;
    struct store_meta pm;
    struct err e = {0};
    char etag[48];
    char sha[65];
    char md5[3][33];
    char path[PATH_MAX];
    size_t n;

    for (int i = 0; i < 3; i++) {
        data[i] = pattern(len[i], (unsigned)i + 10);
        md5_hex(data[i], len[i], md5[i]);
    }
    all = xmalloc(len[0] + len[1] + len[2]);
    memcpy(all, data[0], len[0]);
    memcpy(all + len[0], data[1], len[1]);
    memcpy(all + len[0] + len[1], data[2], len[2]);
    util_sha256_hex(all, len[0] + len[1] + len[2], sha);
    multipart_etag((const unsigned char *const *)data, len, 3, etag);

    assert_int_equal(store_upload_create(fx->st, "archive", "masters/x/big.mxf", "application/mxf",
                                         NULL, &u, &e),
                     0);
    assert_true(store_upload_id_valid(u.upload_id));
    assert_int_equal(store_upload_get(fx->st, u.upload_id, &g, &e), 0);
    assert_string_equal(g.bucket, "archive");
    assert_string_equal(g.key, "masters/x/big.mxf");
    assert_string_equal(g.content_type, "application/mxf");
    assert_int_equal(g.initiated, u.initiated);

    /* out of order, with part 2 uploaded twice: the second copy wins */
    assert_int_equal(put_part(fx->st, u.upload_id, 3, data[2], len[2], &pm, &e), 0);
    assert_string_equal(pm.etag, md5[2]);
    assert_int_equal(put_part(fx->st, u.upload_id, 2, old2, MIN_PART + 77, &pm, &e), 0);
    assert_int_equal(put_part(fx->st, u.upload_id, 1, data[0], len[0], &pm, &e), 0);
    assert_int_equal(put_part(fx->st, u.upload_id, 2, data[1], len[1], &pm, &e), 0);
    assert_string_equal(pm.etag, md5[1]);
    assert_int_equal(pm.size, (int64_t)len[1]);
    snprintf(path, sizeof(path), "%s/.multipart/%s", fx->root, u.upload_id);
    assert_int_equal(count_entries(path), 5); /* meta + data + three parts */

    assert_int_equal(store_upload_parts(fx->st, u.upload_id, &parts, &n, &e), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(parts[i].number, i + 1);
        assert_int_equal(parts[i].size, (int64_t)len[i]);
        assert_string_equal(parts[i].etag, md5[i]);
        assert_true(parts[i].mtime > 0);
    }
    free(parts);

    /* etags as clients send them: quoted, any case */
    for (int i = 0; i < 3; i++) {
        refs[i].number = i + 1;
        snprintf(refs[i].etag, sizeof(refs[i].etag), "\"%.32s\"", md5[i]);
    }
    for (char *p = refs[1].etag; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 3, MIN_PART, &sg, &e), 0);
    assert_int_equal(store_staged_meta(sg)->size, (int64_t)(len[0] + len[1] + len[2]));
    assert_string_equal(store_staged_meta(sg)->sha256, sha);
    assert_string_equal(store_staged_meta(sg)->etag, etag);
    assert_int_equal(store_object_stat(fx->st, "archive", "masters/x/big.mxf", &m, &e), -1);

    assert_int_equal(store_staged_commit(sg, "archive", "masters/x/big.mxf", &m, &e), 0);
    assert_string_equal(m.sha256, sha);
    assert_string_equal(m.etag, etag);
    assert_object(fx->st, "archive", "masters/x/big.mxf", all, len[0] + len[1] + len[2]);
    assert_int_equal(store_object_stat(fx->st, "archive", "masters/x/big.mxf", &m, &e), 0);
    assert_string_equal(m.sha256, sha);
    assert_string_equal(m.etag, etag);
    assert_string_equal(m.content_type, "application/mxf");

    /* a retried completion: same object, success without change */
    assert_int_equal(store_staged_commit(sg, "archive", "masters/x/big.mxf", &m, &e), 0);
    store_staged_free(sg);
    assert_int_equal(store_upload_get(fx->st, u.upload_id, &g, &e), 0); /* still there */
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 3, MIN_PART, &sg, &e), 0);
    assert_int_equal(store_staged_commit(sg, "archive", "masters/x/big.mxf", &m, &e), 0);
    assert_string_equal(m.sha256, sha);
    /* different content at the same key conflicts */
    refs[1] = refs[2];
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 2, MIN_PART, &sg2, &e), 0);
    assert_string_not_equal(store_staged_meta(sg2)->sha256, sha);
    assert_int_equal(store_staged_commit(sg2, "archive", "masters/x/big.mxf", &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    /* ...but may go elsewhere */
    assert_int_equal(store_staged_commit(sg2, "archive", "masters/x/other.mxf", &m, &e), 0);
    store_staged_free(sg2);
    store_staged_free(sg);
    assert_object(fx->st, "archive", "masters/x/big.mxf", all, len[0] + len[1] + len[2]);

    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    assert_int_equal(store_upload_get(fx->st, u.upload_id, &g, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(put_part(fx->st, u.upload_id, 1, "x", 1, &pm, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(store_upload_parts(fx->st, u.upload_id, &parts, &n, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    assert_int_equal(count_entries(path), -1);
    /* the committed objects outlive the upload */
    assert_object(fx->st, "archive", "masters/x/big.mxf", all, len[0] + len[1] + len[2]);
    assert_int_equal(count_tmp_files(fx->root), 0);

    for (int i = 0; i < 3; i++)
        free(data[i]);
    free(old2);
    free(all);
}

static void expect_assemble_error(struct store *st, const char *id,
                                  const struct store_part_ref *refs, size_t n, int64_t min,
                                  enum err_code code, const char *prefix)
{
    struct store_staged *sg = NULL;
    struct err e = {0};

    assert_int_equal(store_upload_assemble(st, id, refs, n, min, &sg, &e), -1);
    assert_null(sg);
    assert_int_equal(e.code, code);
    if (strncmp(e.msg, prefix, strlen(prefix)) != 0)
        fail_msg("expected \"%s...\", got \"%s\"", prefix, e.msg);
}

static void test_assemble_errors(void **state)
{
    struct fixture *fx = *state;
    unsigned char *small = pattern(100, 5);
    unsigned char *big = pattern(MIN_PART, 6);
    struct store_part_ref refs[3];
    struct store_part_ref *many;
    struct store_upload u;
    struct store_meta m;
    struct err e = {0};
    char md5s[33];
    char md5b[33];

    md5_hex(small, 100, md5s);
    md5_hex(big, MIN_PART, md5b);
    assert_int_equal(store_upload_create(fx->st, "proxies", "p/q", NULL, NULL, &u, &e), 0);
    assert_int_equal(put_part(fx->st, u.upload_id, 1, small, 100, &m, &e), 0);
    assert_int_equal(put_part(fx->st, u.upload_id, 2, big, MIN_PART, &m, &e), 0);
    assert_int_equal(put_part(fx->st, u.upload_id, 3, small, 100, &m, &e), 0);

    expect_assemble_error(fx->st, u.upload_id, refs, 0, 0, ERR_INVALID, "MalformedXML:");
    refs[0] = (struct store_part_ref){2, ""};
    refs[1] = (struct store_part_ref){1, ""};
    memcpy(refs[0].etag, md5b, 33);
    memcpy(refs[1].etag, md5s, 33);
    expect_assemble_error(fx->st, u.upload_id, refs, 2, 0, ERR_INVALID, "InvalidPartOrder:");
    refs[1] = refs[0];
    expect_assemble_error(fx->st, u.upload_id, refs, 2, 0, ERR_INVALID, "InvalidPartOrder:");
    /* a part never uploaded */
    refs[1] = (struct store_part_ref){4, ""};
    memcpy(refs[1].etag, md5s, 33);
    expect_assemble_error(fx->st, u.upload_id, refs, 2, 0, ERR_INVALID, "InvalidPart:");
    /* a wrong etag, a malformed one, and a quote only on one side */
    refs[1] = (struct store_part_ref){3, "\"0123456789abcdef0123456789abcdef\""};
    expect_assemble_error(fx->st, u.upload_id, refs, 2, 0, ERR_INVALID, "InvalidPart:");
    refs[1] = (struct store_part_ref){3, "zz"};
    expect_assemble_error(fx->st, u.upload_id, refs, 2, 0, ERR_INVALID, "InvalidPart:");
    refs[1].number = 3;
    snprintf(refs[1].etag, sizeof(refs[1].etag), "\"%s", md5s);
    expect_assemble_error(fx->st, u.upload_id, refs, 2, 0, ERR_INVALID, "InvalidPart:");
    refs[1] = (struct store_part_ref){0, ""};
    expect_assemble_error(fx->st, u.upload_id, refs + 1, 1, 0, ERR_INVALID, "InvalidPart:");
    /* part 1 (100 bytes) is not last: too small; part 3 last: fine */
    refs[0] = (struct store_part_ref){1, ""};
    refs[1] = (struct store_part_ref){2, ""};
    refs[2] = (struct store_part_ref){3, ""};
    memcpy(refs[0].etag, md5s, 33);
    memcpy(refs[1].etag, md5b, 33);
    memcpy(refs[2].etag, md5s, 33);
    expect_assemble_error(fx->st, u.upload_id, refs, 3, MIN_PART, ERR_LIMIT, "EntityTooSmall:");
    expect_assemble_error(fx->st, u.upload_id, refs + 1, 2, MIN_PART + 1, ERR_LIMIT,
                          "EntityTooSmall:");
    many = xcalloc(STORE_PART_MAX + 1, sizeof(*many));
    for (int i = 0; i <= STORE_PART_MAX; i++)
        many[i].number = i + 1;
    expect_assemble_error(fx->st, u.upload_id, many, STORE_PART_MAX + 1, 0, ERR_LIMIT, "");
    free(many);
    expect_assemble_error(fx->st, "ffffffffffffffffffffffffffffffff", refs, 1, 0, ERR_NOTFOUND,
                          "NoSuchUpload");
    /* nothing of all that left anything behind */
    assert_int_equal(count_tmp_files(fx->root), 0);
    assert_int_equal(store_object_stat(fx->st, "proxies", "p/q", &m, &e), -1);
    free(small);
    free(big);
}

static void test_single_part(void **state)
{
    struct fixture *fx = *state;
    unsigned char *data = pattern(12345, 7);
    const unsigned char *parts[1];
    size_t lens[1] = {12345};
    struct store_part_ref ref = {1, ""};
    struct store_upload u;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};
    char etag[48];
    char sha[65];

    parts[0] = data;
    multipart_etag(parts, lens, 1, etag);
    util_sha256_hex(data, 12345, sha);
    assert_int_equal(
        store_upload_create(fx->st, "delivery", "one/part", "image/webp", NULL, &u, &e), 0);
    assert_int_equal(put_part(fx->st, u.upload_id, 1, data, 12345, &m, &e), 0);
    memcpy(ref.etag, m.etag, 33);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, &ref, 1, MIN_PART, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->etag, etag);
    assert_string_equal(store_staged_meta(sg)->sha256, sha);
    assert_int_equal(store_staged_commit(sg, "delivery", "one/part", &m, &e), 0);
    store_staged_free(sg);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    assert_object(fx->st, "delivery", "one/part", data, 12345);
    assert_int_equal(store_object_stat(fx->st, "delivery", "one/part", &m, &e), 0);
    assert_string_equal(m.etag, etag);
    assert_string_equal(m.sha256, sha);
    assert_string_equal(m.content_type, "image/webp");
    free(data);
}

struct up_ctx {
    struct store_upload u[8];
    int n;
    int stop_at;
};

static int up_cb(void *ctx, const struct store_upload *u)
{
    struct up_ctx *c = ctx;

    assert_true(c->n < 8);
    c->u[c->n++] = *u;
    return c->stop_at && c->n == c->stop_at;
}

static void test_upload_list_reopen(void **state)
{
    struct fixture *fx = *state;
    struct store_upload a;
    struct store_upload b;
    struct store_upload c;
    struct store_upload g;
    struct store_part *parts;
    struct up_ctx l = {0};
    struct store_meta m;
    struct err e = {0};
    char path[PATH_MAX];
    size_t n;

    assert_int_equal(store_upload_create(fx->st, "archive", "zeta", NULL, NULL, &a, &e), 0);
    assert_int_equal(store_upload_create(fx->st, "archive", "alpha", "video/mp4", NULL, &b, &e), 0);
    assert_int_equal(store_upload_create(fx->st, "proxies", "mid", NULL, NULL, &c, &e), 0);
    assert_int_equal(put_part(fx->st, b.upload_id, 7, "seven", 5, &m, &e), 0);
    /* junk in .multipart is ignored */
    snprintf(path, sizeof(path), "%s/.multipart/not-an-upload", fx->root);
    assert_int_equal(mkdir(path, 0750), 0);

    assert_int_equal(store_upload_list(fx->st, "archive", up_cb, &l, &e), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.u[0].key, "alpha");
    assert_string_equal(l.u[0].upload_id, b.upload_id);
    assert_string_equal(l.u[0].content_type, "video/mp4");
    assert_string_equal(l.u[1].key, "zeta");
    l.n = 0;
    assert_int_equal(store_upload_list(fx->st, NULL, up_cb, &l, &e), 0);
    assert_int_equal(l.n, 3);
    l.n = 0;
    l.stop_at = 1;
    assert_int_equal(store_upload_list(fx->st, NULL, up_cb, &l, &e), 0);
    assert_int_equal(l.n, 1);

    store_close(fx->st);
    assert_int_equal(store_fs_open(&fx->st, fx->root, &e), 0);
    assert_int_equal(store_upload_get(fx->st, b.upload_id, &g, &e), 0);
    assert_string_equal(g.key, "alpha");
    assert_int_equal(g.initiated, b.initiated);
    assert_int_equal(store_upload_parts(fx->st, b.upload_id, &parts, &n, &e), 0);
    assert_int_equal(n, 1);
    assert_int_equal(parts[0].number, 7);
    assert_int_equal(parts[0].size, 5);
    free(parts);
    l.n = 0;
    l.stop_at = 0;
    assert_int_equal(store_upload_list(fx->st, "proxies", up_cb, &l, &e), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.u[0].upload_id, c.upload_id);
    assert_int_equal(store_upload_abort(fx->st, a.upload_id, &e), 0);
    l.n = 0;
    assert_int_equal(store_upload_list(fx->st, NULL, up_cb, &l, &e), 0);
    assert_int_equal(l.n, 2);
}

static void test_stale_tmp(void **state)
{
    struct fixture *fx = *state;
    struct store *other;
    struct store_writer *w;
    struct store_meta m;
    struct err e = {0};
    char path[PATH_MAX];
    struct stat sb;
    int fd;

    /* leftovers of a crash: a loose file and a dead instance's directory */
    snprintf(path, sizeof(path), "%s/.tmp/w-deadbeef", fx->root);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    assert_true(fd >= 0);
    close(fd);
    snprintf(path, sizeof(path), "%s/.tmp/i-0000000000000000", fx->root);
    assert_int_equal(mkdir(path, 0750), 0);
    snprintf(path, sizeof(path), "%s/.tmp/i-0000000000000000/w-1", fx->root);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    assert_true(fd >= 0);
    close(fd);

    /* fx->st is alive with a write in flight: a second opener must spare it */
    assert_int_equal(store_object_writer(fx->st, "archive", "inflight", 0, &w, &e), 0);
    assert_int_equal(store_writer_write(w, "abc", 3, &e), 0);
    assert_int_equal(store_fs_open(&other, fx->root, &e), 0);
    snprintf(path, sizeof(path), "%s/.tmp/w-deadbeef", fx->root);
    assert_int_equal(stat(path, &sb), -1);
    snprintf(path, sizeof(path), "%s/.tmp/i-0000000000000000", fx->root);
    assert_int_equal(stat(path, &sb), -1);
    snprintf(path, sizeof(path), "%s/.tmp", fx->root);
    assert_int_equal(count_entries(path), 2); /* the two live instances */
    assert_int_equal(store_writer_commit(w, NULL, NULL, &m, &e), 0);
    assert_object(other, "archive", "inflight", "abc", 3);
    store_close(other);
    assert_int_equal(count_entries(path), 1);
}

/* ---- concurrency ---------------------------------------------------------------------- */

struct worker {
    struct store *st;
    const char *id;
    int first;
    int count;
    unsigned seed;
    int failures;
};

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct err e = {0};
    struct store_meta m;

    for (int i = 0; i < wk->count; i++) {
        /* every thread also writes part 1, racing re-uploads of one number */
        int number = i == 0 ? 1 : wk->first + i;
        size_t n = 1000 + (size_t)(wk->seed % 5000);
        unsigned char *data = pattern(n, wk->seed + (unsigned)i);

        if (put_part(wk->st, wk->id, number, data, n, &m, &e) < 0)
            wk->failures++;
        free(data);
    }
    return NULL;
}

static void test_concurrent_parts(void **state)
{
    struct fixture *fx = *state;
    struct worker wk[4];
    pthread_t th[4];
    struct store_upload u;
    struct store_part *parts;
    struct err e = {0};
    char path[PATH_MAX];
    size_t n;

    assert_int_equal(store_upload_create(fx->st, "archive", "race", NULL, NULL, &u, &e), 0);
    for (int i = 0; i < 4; i++) {
        wk[i] = (struct worker){fx->st, u.upload_id, 100 * (i + 1), 12, (unsigned)i * 7919u, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker_main, &wk[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(wk[i].failures, 0);
    }
    assert_int_equal(store_upload_parts(fx->st, u.upload_id, &parts, &n, &e), 0);
    assert_int_equal(n, 1 + 4 * 11);
    assert_int_equal(parts[0].number, 1);
    free(parts);
    snprintf(path, sizeof(path), "%s/.multipart/%s", fx->root, u.upload_id);
    assert_int_equal(count_entries(path),
                     2 + 1 + 4 * 11); /* meta, data; one copy of part 1 survives */
    assert_int_equal(count_tmp_files(fx->root), 0);
}

/* ---- sized uploads ------------------------------------------------------------------- */

/** A sized upload's expected content, cut into its parts. */
struct sized {
    unsigned char *all;
    size_t total;
    size_t part_size;
    int count;
    char sha[65];
    char etag[48];
};

static void sized_init(struct sized *z, size_t part_size, size_t total, unsigned seed)
{
    const unsigned char **parts;
    size_t *lens;

    z->all = pattern(total, seed);
    z->total = total;
    z->part_size = part_size;
    z->count = (int)((total - 1) / part_size + 1);
    util_sha256_hex(z->all, total, z->sha);
    parts = xcalloc((size_t)z->count, sizeof(*parts));
    lens = xcalloc((size_t)z->count, sizeof(*lens));
    for (int i = 0; i < z->count; i++) {
        parts[i] = z->all + (size_t)i * part_size;
        lens[i] = i + 1 < z->count ? part_size : total - (size_t)i * part_size;
    }
    multipart_etag(parts, lens, (size_t)z->count, z->etag);
    free(parts);
    free(lens);
}

static const unsigned char *sized_part(const struct sized *z, int number, size_t *len)
{
    size_t off = (size_t)(number - 1) * z->part_size;

    *len = number < z->count ? z->part_size : z->total - off;
    return z->all + off;
}

/* uploads part number of z; 0 or -1 with e set */
static int sized_put(struct store *st, const char *id, const struct sized *z, int number,
                     struct store_meta *m, struct err *e)
{
    size_t len;
    const unsigned char *p = sized_part(z, number, &len);

    return put_part(st, id, number, p, len, m, e);
}

/* the refs of every part of z, as uploaded */
static struct store_part_ref *sized_refs(const struct sized *z)
{
    struct store_part_ref *refs = xcalloc((size_t)z->count, sizeof(*refs));

    for (int i = 0; i < z->count; i++) {
        size_t len;
        const unsigned char *p = sized_part(z, i + 1, &len);

        refs[i].number = i + 1;
        md5_hex(p, len, refs[i].etag);
    }
    return refs;
}

/* parts 1..next-1 hashed by the in-memory state of upload id (0: no state) */
static int hashed_next(struct store *st, const char *id)
{
    struct fs_hasher *h = fs_hasher_get(fs_of(st), id, 0, 0, 0, NULL);
    int next;

    if (!h)
        return 0;
    pthread_mutex_lock(&h->mu);
    next = h->next;
    pthread_mutex_unlock(&h->mu);
    fs_hasher_put(fs_of(st), h);
    return next;
}

/* number of markers of part number in the upload's directory */
static int count_markers(const char *root, const char *id, int number)
{
    char path[PATH_MAX];
    char prefix[8];
    struct dirent *de;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "%s/.multipart/%s", root, id);
    snprintf(prefix, sizeof(prefix), "p%05d.", number);
    d = opendir(path);
    assert_non_null(d);
    for (;;) {
        de = readdir(d);
        if (!de)
            break;
        if (strncmp(de->d_name, prefix, 7) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static void sized_free(struct sized *z)
{
    free(z->all);
}

static void test_sized_out_of_order(void **state)
{
    struct fixture *fx = *state;
    static const int order[] = {3, 1, 4, 2};
    static const int want_next[] = {1, 2, 2, 5};
    struct sized z;
    struct store_upload u;
    struct store_upload g;
    struct store_part *parts;
    struct store_part_ref *refs;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};
    char path[PATH_MAX];
    struct stat data_sb;
    struct stat obj_sb;
    size_t n;

    /* parts bigger than the writer buffer, the last one short */
    sized_init(&z, FS_WBUF + 4096, 3 * (FS_WBUF + 4096) + 1234, 41);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "masters/s/a.mov", "video/mp4",
                                               (int64_t)z.part_size, (int64_t)z.total, &u, &e),
                     0);
    assert_int_equal(u.part_size, (int64_t)z.part_size);
    assert_int_equal(u.total_size, (int64_t)z.total);
    assert_int_equal(store_upload_get(fx->st, u.upload_id, &g, &e), 0);
    assert_int_equal(g.part_size, (int64_t)z.part_size);
    assert_int_equal(g.total_size, (int64_t)z.total);
    /* the data file is sparse: nothing is allocated up front */
    snprintf(path, sizeof(path), "%s/.multipart/%s/data", fx->root, u.upload_id);
    assert_int_equal(stat(path, &data_sb), 0);
    assert_int_equal(data_sb.st_size, (off_t)z.total);
    assert_int_equal(data_sb.st_blocks, 0);

    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        assert_int_equal(sized_put(fx->st, u.upload_id, &z, order[i], &m, &e), 0);
        assert_int_equal(hashed_next(fx->st, u.upload_id), want_next[i]);
    }
    assert_int_equal(store_upload_parts(fx->st, u.upload_id, &parts, &n, &e), 0);
    assert_int_equal(n, 4);
    refs = sized_refs(&z);
    for (int i = 0; i < 4; i++) {
        size_t len;

        (void)sized_part(&z, i + 1, &len);
        assert_int_equal(parts[i].number, i + 1);
        assert_int_equal(parts[i].size, (int64_t)len);
        assert_string_equal(parts[i].etag, refs[i].etag);
    }
    free(parts);

    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 4, MIN_PART, &sg, &e), 0);
    assert_int_equal(store_staged_meta(sg)->size, (int64_t)z.total);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_string_equal(store_staged_meta(sg)->etag, z.etag);
    assert_int_equal(store_staged_commit(sg, "archive", "masters/s/a.mov", &m, &e), 0);
    assert_string_equal(m.sha256, z.sha);
    assert_string_equal(m.etag, z.etag);
    /* idempotent: the same staged object again, then a fresh assembly of the same upload */
    assert_int_equal(store_staged_commit(sg, "archive", "masters/s/a.mov", &m, &e), 0);
    store_staged_free(sg);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 4, MIN_PART, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_int_equal(store_staged_commit(sg, "archive", "masters/s/a.mov", &m, &e), 0);
    /* ...while other content at that key conflicts */
    assert_int_equal(put(fx->st, "archive", "masters/s/other", "x", 1, NULL, &m, &e), 0);
    assert_int_equal(store_staged_commit(sg, "archive", "masters/s/other", &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    store_staged_free(sg);

    /* no copy: the object is the upload's data file */
    assert_int_equal(stat(path, &data_sb), 0);
    snprintf(path, sizeof(path), "%s/archive/masters/s/a.mov", fx->root);
    assert_int_equal(stat(path, &obj_sb), 0);
    assert_int_equal(obj_sb.st_ino, data_sb.st_ino);
    assert_object(fx->st, "archive", "masters/s/a.mov", z.all, z.total);
    assert_int_equal(store_object_stat(fx->st, "archive", "masters/s/a.mov", &m, &e), 0);
    assert_string_equal(m.sha256, z.sha);
    assert_string_equal(m.etag, z.etag);
    assert_string_equal(m.content_type, "video/mp4");

    /* assembled: the parts are frozen */
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 2, &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);

    /* abort drops the upload but not the object */
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 0);
    assert_object(fx->st, "archive", "masters/s/a.mov", z.all, z.total);
    assert_int_equal(count_tmp_files(fx->root), 0);
    free(refs);
    sized_free(&z);
}

static void test_sized_small_parts(void **state)
{
    struct fixture *fx = *state;
    struct sized z;
    struct store_upload u;
    struct store_part_ref *refs;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};

    /* parts of 1000 bytes (never flushed before commit), a one-byte last part */
    sized_init(&z, 1000, 7001, 43);
    assert_int_equal(
        store_upload_create_sized(fx->st, "proxies", "small", NULL, 1000, 7001, &u, &e), 0);
    for (int k = z.count; k >= 1; k--)
        assert_int_equal(sized_put(fx->st, u.upload_id, &z, k, &m, &e), 0);
    assert_int_equal(hashed_next(fx->st, u.upload_id), z.count + 1);
    refs = sized_refs(&z);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, (size_t)z.count, 0, &sg, &e),
                     0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_string_equal(store_staged_meta(sg)->etag, z.etag);
    assert_int_equal(store_staged_commit(sg, "proxies", "small", &m, &e), 0);
    store_staged_free(sg);
    assert_object(fx->st, "proxies", "small", z.all, z.total);

    /* a one-part upload */
    sized_free(&z);
    sized_init(&z, 5000, 5000, 44);
    assert_int_equal(store_upload_create_sized(fx->st, "proxies", "one", NULL, 5000, 5000, &u, &e),
                     0);
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 1, &m, &e), 0);
    free(refs);
    refs = sized_refs(&z);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 1, MIN_PART, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_string_equal(store_staged_meta(sg)->etag, z.etag);
    assert_int_equal(store_staged_commit(sg, "proxies", "one", &m, &e), 0);
    store_staged_free(sg);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    assert_object(fx->st, "proxies", "one", z.all, z.total);
    free(refs);
    sized_free(&z);
}

static void test_sized_validation(void **state)
{
    struct fixture *fx = *state;
    struct store_upload u;
    struct err e = {0};

    assert_int_equal(store_upload_create_sized(fx->st, "archive", "v", NULL, 0, 10, &u, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "v", NULL, 10, 0, &u, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "v", NULL, -5, 10, &u, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_int_equal(
        store_upload_create_sized(fx->st, "archive", "v", NULL, 1, STORE_PART_MAX + 1, &u, &e), -1);
    assert_int_equal(e.code, ERR_LIMIT);
    assert_int_equal(
        store_upload_create_sized(fx->st, "archive", "v", NULL, 1, STORE_PART_MAX, &u, &e), 0);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "v", NULL,
                                               STORE_PART_SIZE_MAX + 1, 10, &u, &e),
                     -1);
    assert_int_equal(e.code, ERR_LIMIT);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "v", NULL, STORE_PART_SIZE_MAX,
                                               STORE_OBJECT_SIZE_MAX + 1, &u, &e),
                     -1);
    assert_int_equal(e.code, ERR_LIMIT);
    assert_int_equal(store_upload_create_sized(fx->st, "nope", "v", NULL, 1, 1, &u, &e), -1);
    assert_int_equal(e.code, ERR_NOTFOUND);
    /* the largest layout: no space is taken up front */
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "v", NULL, STORE_PART_SIZE_MAX,
                                               STORE_OBJECT_SIZE_MAX / 4, &u, &e),
                     0);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
}

static void expect_msg(const struct err *e, enum err_code code, const char *prefix)
{
    assert_int_equal(e->code, code);
    if (strncmp(e->msg, prefix, strlen(prefix)) != 0)
        fail_msg("expected \"%s...\", got \"%s\"", prefix, e->msg);
}

static void test_sized_reupload(void **state)
{
    struct fixture *fx = *state;
    struct sized z;
    struct sized y; /* the same layout, other bytes */
    struct store_upload u;
    struct store_writer *w;
    struct store_part_ref *refs;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};
    size_t len;
    const unsigned char *p;

    sized_init(&z, FS_WBUF * 2, FS_WBUF * 5, 45);
    sized_init(&y, FS_WBUF * 2, FS_WBUF * 5, 46);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "re", NULL, (int64_t)z.part_size,
                                               (int64_t)z.total, &u, &e),
                     0);
    for (int k = 1; k <= 3; k++)
        assert_int_equal(sized_put(fx->st, u.upload_id, &z, k, &m, &e), 0);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 4);

    /* re-upload part 2 with y's bytes: once its region is written, the hash starts over */
    p = sized_part(&y, 2, &len);
    assert_int_equal(store_part_writer(fx->st, u.upload_id, 2, -1, 0, &w, &e), 0);
    assert_int_equal(count_markers(fx->root, u.upload_id, 2), 1);
    assert_int_equal(store_writer_write(w, p, FS_WBUF + 10, &e), 0);
    assert_int_equal(count_markers(fx->root, u.upload_id, 2), 0);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 1);
    assert_int_equal(store_writer_write(w, p + FS_WBUF + 10, len - FS_WBUF - 10, &e), 0);
    assert_int_equal(store_writer_commit(w, NULL, NULL, &m, &e), 0);
    assert_int_equal(count_markers(fx->root, u.upload_id, 2), 1);
    /* rehashed 1..3 in the committing thread */
    assert_int_equal(hashed_next(fx->st, u.upload_id), 4);

    /* the expected object: z with y's part 2 */
    memcpy(z.all + z.part_size, p, len);
    sized_free(&y);
    util_sha256_hex(z.all, z.total, z.sha);
    refs = sized_refs(&z);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 2, 0, &sg, &e), -1);
    expect_msg(&e, ERR_INVALID, "InvalidPart: part 3 of 3 is not listed");
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 3, &m, &e), 0); /* same bytes again */
    assert_int_equal(hashed_next(fx->st, u.upload_id), 4);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 3, 0, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_int_equal(store_staged_commit(sg, "archive", "re", &m, &e), 0);
    store_staged_free(sg);
    assert_object(fx->st, "archive", "re", z.all, z.total);
    free(refs);
    sized_free(&z);
}

static void test_sized_wrong_size(void **state)
{
    struct fixture *fx = *state;
    struct sized z;
    struct store_upload u;
    struct store_writer *w;
    struct store_part *parts;
    struct store_meta m;
    struct err e = {0};
    size_t len;
    const unsigned char *p;
    size_t n;

    sized_init(&z, FS_WBUF + 100, 2 * (FS_WBUF + 100) + 50, 47);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "ws", NULL, (int64_t)z.part_size,
                                               (int64_t)z.total, &u, &e),
                     0);
    /* short, in a small write and in a flushed one */
    p = sized_part(&z, 1, &len);
    assert_int_equal(put_part(fx->st, u.upload_id, 1, p, 10, &m, &e), -1);
    expect_msg(&e, ERR_INVALID, "InvalidPart: part 1 must be 262244 bytes, got 10");
    assert_int_equal(put_part(fx->st, u.upload_id, 1, p, len - 1, &m, &e), -1);
    expect_msg(&e, ERR_INVALID, "InvalidPart: part 1 must be");
    /* the last part has its own size */
    p = sized_part(&z, 3, &len);
    assert_int_equal(len, 50);
    assert_int_equal(put_part(fx->st, u.upload_id, 3, z.all, z.part_size, &m, &e), -1);
    expect_msg(&e, ERR_INVALID, "InvalidPart: part 3 must be 50 bytes, got more");
    /* too long fails at the write that exceeds, and commit too */
    assert_int_equal(store_part_writer(fx->st, u.upload_id, 2, -1, 0, &w, &e), 0);
    assert_int_equal(store_writer_write(w, z.all, z.part_size, &e), 0);
    assert_int_equal(store_writer_write(w, "x", 1, &e), -1);
    expect_msg(&e, ERR_INVALID, "InvalidPart: part 2 must be 262244 bytes, got more");
    assert_int_equal(store_writer_commit(w, NULL, NULL, &m, &e), -1);
    expect_msg(&e, ERR_INVALID, "InvalidPart:");
    /* nothing was marked */
    assert_int_equal(store_upload_parts(fx->st, u.upload_id, &parts, &n, &e), 0);
    assert_int_equal(n, 0);
    free(parts);
    for (int k = 1; k <= 3; k++)
        assert_int_equal(count_markers(fx->root, u.upload_id, k), 0);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 0);

    /* a good part survives a short re-upload that never reached its region */
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 3, &m, &e), 0);
    assert_int_equal(put_part(fx->st, u.upload_id, 3, "ab", 2, &m, &e), -1);
    expect_msg(&e, ERR_INVALID, "InvalidPart: part 3 must be 50 bytes, got 2");
    assert_int_equal(count_markers(fx->root, u.upload_id, 3), 1);

    /* beyond the last part */
    assert_int_equal(store_part_writer(fx->st, u.upload_id, 4, -1, 0, &w, &e), -1);
    expect_msg(&e, ERR_INVALID, "InvalidPart: part 4 is beyond the last part 3");
    assert_null(w);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    assert_int_equal(count_tmp_files(fx->root), 0);
    sized_free(&z);
}

static void test_sized_conflict(void **state)
{
    struct fixture *fx = *state;
    struct sized z;
    struct store_upload u;
    struct store_writer *a;
    struct store_writer *b;
    struct store_part_ref *refs;
    struct store_staged *sg = NULL;
    struct store_meta m;
    struct err e = {0};
    size_t len;
    const unsigned char *p;
    char path[PATH_MAX];
    struct stat sb;

    sized_init(&z, 4000, 10000, 48);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "cf", NULL, 4000, 10000, &u, &e),
                     0);
    for (int k = 2; k <= 3; k++)
        assert_int_equal(sized_put(fx->st, u.upload_id, &z, k, &m, &e), 0);
    p = sized_part(&z, 1, &len);
    assert_int_equal(store_part_writer(fx->st, u.upload_id, 1, -1, 0, &a, &e), 0);
    assert_int_equal(store_writer_write(a, p, 100, &e), 0);
    /* a second writer of part 1 is refused while a is open; other parts are fine */
    assert_int_equal(store_part_writer(fx->st, u.upload_id, 1, -1, 0, &b, &e), -1);
    expect_msg(&e, ERR_CONFLICT, "part 1 is being uploaded by another request");
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 3, &m, &e), 0);

    /* an assembly while a writer is open fails and leaves the upload open */
    refs = sized_refs(&z);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs + 1, 2, 0, &sg, &e), -1);
    expect_msg(&e, ERR_INVALID, "InvalidPart: part 1 of 3 was not uploaded");
    assert_int_equal(store_writer_write(a, p + 100, len - 100, &e), 0);
    assert_int_equal(store_writer_commit(a, NULL, NULL, &m, &e), 0);

    assert_int_equal(store_part_writer(fx->st, u.upload_id, 2, -1, 0, &b, &e), 0);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 3, 0, &sg, &e), -1);
    expect_msg(&e, ERR_CONFLICT, "part 2 is being uploaded by another request");
    assert_null(sg);
    snprintf(path, sizeof(path), "%s/.multipart/%s/sealed", fx->root, u.upload_id);
    assert_int_equal(stat(path, &sb), -1);
    store_writer_abort(b);
    assert_int_equal(count_markers(fx->root, u.upload_id, 2), 1); /* b wrote nothing */

    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 3, 0, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_int_equal(stat(path, &sb), 0);
    /* sealed: no writer can start */
    assert_int_equal(store_part_writer(fx->st, u.upload_id, 2, -1, 0, &b, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(store_staged_commit(sg, "archive", "cf", &m, &e), 0);
    store_staged_free(sg);
    assert_object(fx->st, "archive", "cf", z.all, z.total);
    free(refs);
    sized_free(&z);
}

struct racer {
    struct store *st;
    const char *id;
    const struct sized *z;
    int first;
    int step;
    int conflicts;
    int failures;
};

static void *racer_main(void *arg)
{
    struct racer *r = arg;
    struct store_meta m;
    struct err e = {0};

    for (int k = r->first; k <= r->z->count; k += r->step) {
        /* every racer also writes part 1, so writers of one part collide */
        for (int pass = 0; pass < 2; pass++) {
            int number = pass == 0 ? k : 1;

            for (;;) {
                if (sized_put(r->st, r->id, r->z, number, &m, &e) == 0)
                    break;
                if (e.code != ERR_CONFLICT) {
                    r->failures++;
                    break;
                }
                r->conflicts++;
            }
        }
    }
    return NULL;
}

static void test_sized_concurrent(void **state)
{
    struct fixture *fx = *state;
    struct racer r[4];
    pthread_t th[4];
    struct sized z;
    struct store_upload u;
    struct store_part_ref *refs;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};

    sized_init(&z, 30000, 30000 * 40 - 7, 49);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "race-sized", NULL, 30000,
                                               (int64_t)z.total, &u, &e),
                     0);
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){fx->st, u.upload_id, &z, i + 1, 4, 0, 0};
        assert_int_equal(pthread_create(&th[i], NULL, racer_main, &r[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(r[i].failures, 0);
    }
    refs = sized_refs(&z);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, (size_t)z.count, 0, &sg, &e),
                     0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_int_equal(store_staged_commit(sg, "archive", "race-sized", &m, &e), 0);
    store_staged_free(sg);
    assert_object(fx->st, "archive", "race-sized", z.all, z.total);
    free(refs);
    sized_free(&z);
}

static void test_sized_missing(void **state)
{
    struct fixture *fx = *state;
    struct sized z;
    struct store_upload u;
    struct store_part_ref *refs;
    struct store_part_ref two[2];
    struct store_meta m;
    struct err e = {0};
    char path[PATH_MAX];
    struct stat sb;

    sized_init(&z, 1000, 2500, 50);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "miss", NULL, 1000, 2500, &u, &e),
                     0);
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 1, &m, &e), 0);
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 3, &m, &e), 0);
    refs = sized_refs(&z);
    two[0] = refs[0];
    two[1] = refs[2];
    expect_assemble_error(fx->st, u.upload_id, two, 2, 0, ERR_INVALID,
                          "InvalidPart: part 2 of 3 was not uploaded");
    expect_assemble_error(fx->st, u.upload_id, refs, 3, 0, ERR_INVALID, "InvalidPart:");
    expect_assemble_error(fx->st, u.upload_id, refs, 1, 0, ERR_INVALID,
                          "InvalidPart: part 2 of 3 was not uploaded");
    two[0] = refs[2];
    two[1] = refs[0];
    expect_assemble_error(fx->st, u.upload_id, two, 2, 0, ERR_INVALID, "InvalidPartOrder:");
    two[0] = refs[0];
    two[1] = refs[2];
    snprintf(two[1].etag, sizeof(two[1].etag), "0123456789abcdef0123456789abcdef");
    expect_assemble_error(fx->st, u.upload_id, two, 2, 0, ERR_INVALID, "InvalidPart:");
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 2, &m, &e), 0);
    two[1] = refs[2];
    expect_assemble_error(fx->st, u.upload_id, two, 2, 0, ERR_INVALID,
                          "InvalidPart: part 2 of 3 is not listed");
    /* failed assemblies leave the upload unsealed */
    snprintf(path, sizeof(path), "%s/.multipart/%s/sealed", fx->root, u.upload_id);
    assert_int_equal(stat(path, &sb), -1);
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 2, &m, &e), 0);
    assert_int_equal(count_tmp_files(fx->root), 0);
    free(refs);
    sized_free(&z);
}

/* a writer that dies mid-part (aborted, as a crash or a hang-up does) */
static void test_sized_torn_part(void **state)
{
    struct fixture *fx = *state;
    struct sized z;
    struct store_upload u;
    struct store_writer *w;
    struct store_part *parts;
    struct store_part_ref *refs;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};
    unsigned char *junk = pattern(FS_WBUF * 2, 77);
    unsigned char *got;
    char path[PATH_MAX];
    size_t n;
    int fd;

    sized_init(&z, FS_WBUF * 3, FS_WBUF * 9, 51);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "torn", NULL,
                                               (int64_t)z.part_size, (int64_t)z.total, &u, &e),
                     0);
    for (int k = 1; k <= 3; k++)
        assert_int_equal(sized_put(fx->st, u.upload_id, &z, k, &m, &e), 0);
    assert_int_equal(store_part_writer(fx->st, u.upload_id, 2, -1, 0, &w, &e), 0);
    assert_int_equal(store_writer_write(w, junk, FS_WBUF * 2, &e), 0);
    store_writer_abort(w);

    assert_int_equal(store_upload_parts(fx->st, u.upload_id, &parts, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(parts[0].number, 1);
    assert_int_equal(parts[1].number, 3);
    free(parts);
    assert_int_equal(count_markers(fx->root, u.upload_id, 2), 0);
    /* parts 1 and 3 are intact in the data file */
    snprintf(path, sizeof(path), "%s/.multipart/%s/data", fx->root, u.upload_id);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    got = xmalloc(z.part_size);
    assert_int_equal(pread(fd, got, z.part_size, 0), (ssize_t)z.part_size);
    assert_memory_equal(got, z.all, z.part_size);
    assert_int_equal(pread(fd, got, z.part_size, (off_t)(2 * z.part_size)), (ssize_t)z.part_size);
    assert_memory_equal(got, z.all + 2 * z.part_size, z.part_size);
    close(fd);
    free(got);

    refs = sized_refs(&z);
    expect_assemble_error(fx->st, u.upload_id, refs, 3, 0, ERR_INVALID,
                          "InvalidPart: part 2 of upload");
    /* after a restart the state is gone; the part comes again and all is well */
    store_close(fx->st);
    assert_int_equal(store_fs_open(&fx->st, fx->root, &e), 0);
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 2, &m, &e), 0);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 4); /* learnt 1 and 3 from disk */
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 3, 0, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_int_equal(store_staged_commit(sg, "archive", "torn", &m, &e), 0);
    store_staged_free(sg);
    assert_object(fx->st, "archive", "torn", z.all, z.total);
    free(refs);
    free(junk);
    sized_free(&z);
}

/* a part uploaded again after the digest was saved: the saved digest no longer applies */
static void test_sized_saved_digest_invalidated(void **state)
{
    struct fixture *fx = *state;
    struct sized z, z2;
    struct store_upload u;
    struct store_part_ref *refs;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};

    sized_init(&z, 70000, 70000 * 4, 61);
    sized_init(&z2, 70000, 70000 * 4, 62);
    assert_int_equal(
        store_upload_create_sized(fx->st, "archive", "redo", NULL, 70000, (int64_t)z.total, &u, &e),
        0);
    for (int k = 1; k <= 4; k++)
        assert_int_equal(sized_put(fx->st, u.upload_id, &z, k, &m, &e), 0);
    store_close(fx->st); /* the saved digest covers z */
    assert_int_equal(store_fs_open(&fx->st, fx->root, &e), 0);
    for (int k = 1; k <= 4; k++) /* every part again, with other bytes, in a new instance */
        assert_int_equal(sized_put(fx->st, u.upload_id, &z2, k, &m, &e), 0);
    store_close(fx->st);
    assert_int_equal(store_fs_open(&fx->st, fx->root, &e), 0);
    refs = sized_refs(&z2);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 4, 0, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z2.sha);
    store_staged_free(sg);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    free(refs);
    sized_free(&z);
    sized_free(&z2);
}

static void test_sized_reopen(void **state)
{
    struct fixture *fx = *state;
    struct sized z;
    struct store_upload u;
    struct store_part_ref *refs;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};

    sized_init(&z, 70000, 70000 * 6, 52);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "reopen", NULL, 70000,
                                               (int64_t)z.total, &u, &e),
                     0);
    for (int k = 1; k <= 6; k++)
        assert_int_equal(sized_put(fx->st, u.upload_id, &z, k, &m, &e), 0);
    store_close(fx->st);
    assert_int_equal(store_fs_open(&fx->st, fx->root, &e), 0);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 0);
    refs = sized_refs(&z);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 6, 0, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_string_equal(store_staged_meta(sg)->etag, z.etag);
    /* the digest the first instance saved when it had hashed every part was used: this
     * instance (another process, in production) hashed nothing */
    assert_int_equal(hashed_next(fx->st, u.upload_id), 1);
    store_staged_free(sg); /* not committed: the upload is sealed but stays */
    store_close(fx->st);
    assert_int_equal(store_fs_open(&fx->st, fx->root, &e), 0);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 6, 0, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_int_equal(store_staged_commit(sg, "archive", "reopen", &m, &e), 0);
    store_staged_free(sg);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    assert_object(fx->st, "archive", "reopen", z.all, z.total);
    free(refs);
    sized_free(&z);
}

/* a hashed part that changed behind the state's back (another process) is rehashed */
static void test_sized_foreign_change(void **state)
{
    struct fixture *fx = *state;
    struct sized z;
    struct store *other;
    struct store_upload u;
    struct store_part_ref *refs;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};
    unsigned char *alt = pattern(5000, 99);

    sized_init(&z, 5000, 15000, 53);
    assert_int_equal(
        store_upload_create_sized(fx->st, "archive", "foreign", NULL, 5000, 15000, &u, &e), 0);
    for (int k = 1; k <= 3; k++)
        assert_int_equal(sized_put(fx->st, u.upload_id, &z, k, &m, &e), 0);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 4);
    assert_int_equal(store_fs_open(&other, fx->root, &e), 0);
    assert_int_equal(put_part(other, u.upload_id, 2, alt, 5000, &m, &e), 0);
    store_close(other);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 4); /* fx->st did not see it */
    memcpy(z.all + 5000, alt, 5000);
    util_sha256_hex(z.all, z.total, z.sha);
    refs = sized_refs(&z);
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 3, 0, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    store_staged_free(sg);
    free(refs);
    free(alt);
    sized_free(&z);
}

struct late_put {
    struct store *st;
    const char *id;
    const struct sized *z;
    int rc;
    int64_t waited_ms;
};

static void *late_put_main(void *arg)
{
    struct late_put *lp = arg;
    struct store_meta m;
    struct err e = {0};
    int64_t t0 = util_mono_ms();

    lp->rc = sized_put(lp->st, lp->id, lp->z, 1, &m, &e);
    lp->waited_ms = util_mono_ms() - t0;
    return NULL;
}

/* a writer waits for a reader of its region (hashing, assembly) instead of failing */
static void test_sized_reader_wait(void **state)
{
    struct fixture *fx = *state;
    struct late_put lp;
    struct sized z;
    struct store_upload u;
    pthread_t th;
    struct store_meta m;
    struct err e = {0};
    char path[PATH_MAX];
    int fd;

    sized_init(&z, 3000, 6000, 54);
    assert_int_equal(store_upload_create_sized(fx->st, "archive", "wait", NULL, 3000, 6000, &u, &e),
                     0);
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 1, &m, &e), 0);
    snprintf(path, sizeof(path), "%s/.multipart/%s/data", fx->root, u.upload_id);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(fs_range_lock(fd, F_RDLCK, 0, 3000, 0), 0);
    lp = (struct late_put){fx->st, u.upload_id, &z, -1, 0};
    assert_int_equal(pthread_create(&th, NULL, late_put_main, &lp), 0);
    fs_sleep_ms(100);
    close(fd);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(lp.rc, 0);
    assert_true(lp.waited_ms >= 90);
    sized_free(&z);
}

/* ---- internals ------------------------------------------------------------------------ */

/* the assembly copy: copy_file_range and the read/write fallback give the same bytes */
/* ---- strided uploads: unsized, parts of the stride's size written in place ------------- */

/* the upload's data file */
static void data_stat(const char *root, const char *id, struct stat *sb)
{
    char path[PATH_MAX];

    snprintf(path, sizeof(path), "%s/.multipart/%s/data", root, id);
    assert_int_equal(stat(path, sb), 0);
}

/* the object's inode */
static ino_t object_ino(const char *root, const char *key)
{
    char path[PATH_MAX];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/archive/%s", root, key);
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_ino;
}

/* assembles refs[0..n) of upload id, commits it at key and checks it holds want */
static ino_t strided_complete(struct fixture *fx, const char *id, const struct store_part_ref *refs,
                              size_t n, const char *key, const unsigned char *want, size_t len)
{
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};
    char sha[65];

    util_sha256_hex(want, len, sha);
    if (store_upload_assemble(fx->st, id, refs, n, MIN_PART, &sg, &e) < 0)
        fail_msg("assembly of %s: %s", key, e.msg);
    assert_int_equal(store_staged_meta(sg)->size, (int64_t)len);
    assert_string_equal(store_staged_meta(sg)->sha256, sha);
    assert_int_equal(store_staged_commit(sg, "archive", key, &m, &e), 0);
    store_staged_free(sg);
    assert_object(fx->st, "archive", key, want, len);
    assert_int_equal(store_object_stat(fx->st, "archive", key, &m, &e), 0);
    assert_string_equal(m.sha256, sha);
    return object_ino(fx->root, key);
}

static void test_strided_in_place(void **state)
{
    struct fixture *fx = *state;
    static const int order[] = {3, 1, 4, 2};
    static const int want_next[] = {1, 2, 2, 4};
    struct sized z;
    struct store_upload u;
    struct store_part *parts;
    struct store_part_ref *refs;
    struct store_staged *sg;
    struct store_meta m;
    struct err e = {0};
    struct stat data_sb;
    char path[PATH_MAX];
    char text[32] = {0};
    size_t n;
    int fd;

    /* three parts of 1 MiB + 4 KiB in place, the short last one a file of its own */
    sized_init(&z, FS_STRIDE_MIN + 4096, 3 * (FS_STRIDE_MIN + 4096) + 1234, 61);
    assert_int_equal(store_upload_create(fx->st, "archive", "s3/strided", NULL, NULL, &u, &e), 0);
    assert_int_equal(u.part_size, 0);
    for (size_t i = 0; i < ARRAY_LEN(order); i++) {
        assert_int_equal(sized_put(fx->st, u.upload_id, &z, order[i], &m, &e), 0);
        assert_int_equal(hashed_next(fx->st, u.upload_id), want_next[i]);
    }
    /* the first part of at least 1 MiB chose the stride; parts in place are empty markers */
    snprintf(path, sizeof(path), "%s/.multipart/%s/stride", fx->root, u.upload_id);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(read(fd, text, sizeof(text) - 1) > 0);
    close(fd);
    assert_int_equal(atoll(text), (long long)z.part_size);
    data_stat(fx->root, u.upload_id, &data_sb);
    assert_int_equal(data_sb.st_size, (off_t)(3 * z.part_size));
    assert_int_equal(store_upload_parts(fx->st, u.upload_id, &parts, &n, &e), 0);
    assert_int_equal(n, 4);
    refs = sized_refs(&z);
    for (int i = 0; i < 4; i++) {
        size_t len;

        (void)sized_part(&z, i + 1, &len);
        assert_int_equal(parts[i].size, (int64_t)len);
        assert_string_equal(parts[i].etag, refs[i].etag);
    }
    free(parts);

    /* parts 1..4, all but the last in place: the object is the data file itself */
    assert_int_equal(strided_complete(fx, u.upload_id, refs, 4, "s3/strided", z.all, z.total),
                     data_sb.st_ino);
    assert_int_equal(store_object_stat(fx->st, "archive", "s3/strided", &m, &e), 0);
    assert_string_equal(m.etag, z.etag);
    /* a retried complete assembles the same again; the parts are frozen meanwhile */
    assert_int_equal(store_upload_assemble(fx->st, u.upload_id, refs, 4, MIN_PART, &sg, &e), 0);
    assert_string_equal(store_staged_meta(sg)->sha256, z.sha);
    assert_int_equal(store_staged_commit(sg, "archive", "s3/strided", &m, &e), 0);
    store_staged_free(sg);
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 2, &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(sized_put(fx->st, u.upload_id, &z, 4, &m, &e), -1);
    assert_int_equal(e.code, ERR_CONFLICT);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    assert_object(fx->st, "archive", "s3/strided", z.all, z.total);
    free(refs);
    sized_free(&z);
    assert_int_equal(count_tmp_files(fx->root), 0);
}

static void test_strided_other_lists(void **state)
{
    struct fixture *fx = *state;
    size_t ps = FS_STRIDE_MIN;
    unsigned char *p[5];
    unsigned char *want = xmalloc(4 * ps);
    struct store_part_ref refs[4];
    struct store_upload u;
    struct store_part *parts;
    struct store_meta m;
    struct stat data_sb;
    struct err e = {0};
    size_t n;

    for (int i = 0; i < 5; i++)
        p[i] = pattern(2 * ps, 70 + (unsigned)i);

    /* parts uploaded but not listed: the object is parts 1..3, still without a copy */
    assert_int_equal(store_upload_create(fx->st, "archive", "s3/unlisted", NULL, NULL, &u, &e), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(put_part(fx->st, u.upload_id, i + 1, p[i], ps, &m, &e), 0);
        if (i < 3) {
            refs[i].number = i + 1;
            memcpy(refs[i].etag, m.etag, 33);
            memcpy(want + (size_t)i * ps, p[i], ps);
        }
    }
    data_stat(fx->root, u.upload_id, &data_sb);
    assert_int_equal(strided_complete(fx, u.upload_id, refs, 3, "s3/unlisted", want, 3 * ps),
                     data_sb.st_ino);
    assert_int_equal(count_markers(fx->root, u.upload_id, 4), 0);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);

    /* a list with a gap (1, 3): copied, from the data file */
    assert_int_equal(store_upload_create(fx->st, "archive", "s3/gap", NULL, NULL, &u, &e), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(put_part(fx->st, u.upload_id, i + 1, p[i], ps, &m, &e), 0);
        if (i != 1) {
            refs[i / 2].number = i + 1;
            memcpy(refs[i / 2].etag, m.etag, 33);
        }
    }
    memcpy(want, p[0], ps);
    memcpy(want + ps, p[2], ps);
    data_stat(fx->root, u.upload_id, &data_sb);
    assert_true(strided_complete(fx, u.upload_id, refs, 2, "s3/gap", want, 2 * ps) !=
                data_sb.st_ino);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);

    /* the stride chosen by a short last part that came first: the others are files, copied */
    assert_int_equal(store_upload_create(fx->st, "archive", "s3/late", NULL, NULL, &u, &e), 0);
    assert_int_equal(put_part(fx->st, u.upload_id, 3, p[2], ps + 100, &m, &e), 0);
    refs[2].number = 3;
    memcpy(refs[2].etag, m.etag, 33);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(put_part(fx->st, u.upload_id, i + 1, p[i], 2 * ps, &m, &e), 0);
        refs[i].number = i + 1;
        memcpy(refs[i].etag, m.etag, 33);
    }
    assert_int_equal(store_upload_parts(fx->st, u.upload_id, &parts, &n, &e), 0);
    assert_int_equal(n, 3);
    assert_int_equal(parts[0].size, (int64_t)(2 * ps));
    assert_int_equal(parts[2].size, (int64_t)(ps + 100));
    free(parts);
    free(want);
    want = xmalloc(5 * ps + 100);
    memcpy(want, p[0], 2 * ps);
    memcpy(want + 2 * ps, p[1], 2 * ps);
    memcpy(want + 4 * ps, p[2], ps + 100);
    (void)strided_complete(fx, u.upload_id, refs, 3, "s3/late", want, 5 * ps + 100);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);

    /* an empty last part is a file of its own, not a marker */
    assert_int_equal(store_upload_create(fx->st, "archive", "s3/empty-last", NULL, NULL, &u, &e),
                     0);
    assert_int_equal(put_part(fx->st, u.upload_id, 1, p[3], ps, &m, &e), 0);
    refs[0].number = 1;
    memcpy(refs[0].etag, m.etag, 33);
    assert_int_equal(put_part(fx->st, u.upload_id, 2, "", 0, &m, &e), 0);
    assert_string_equal(m.etag, FS_EMPTY_MD5);
    refs[1].number = 2;
    memcpy(refs[1].etag, m.etag, 33);
    assert_int_equal(store_upload_parts(fx->st, u.upload_id, &parts, &n, &e), 0);
    assert_int_equal(n, 2);
    assert_int_equal(parts[0].size, (int64_t)ps);
    assert_int_equal(parts[1].size, 0);
    free(parts);
    data_stat(fx->root, u.upload_id, &data_sb);
    assert_int_equal(strided_complete(fx, u.upload_id, refs, 2, "s3/empty-last", p[3], ps),
                     data_sb.st_ino);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);

    for (int i = 0; i < 5; i++)
        free(p[i]);
    free(want);
    assert_int_equal(count_tmp_files(fx->root), 0);
}

static void test_strided_reupload(void **state)
{
    struct fixture *fx = *state;
    size_t ps = FS_STRIDE_MIN;
    unsigned char *a = pattern(3 * ps, 81);
    unsigned char *b = pattern(2 * ps, 82);
    unsigned char *want = xmalloc(4 * ps);
    struct store_part_ref refs[3];
    struct store_upload u;
    struct store_meta m;
    struct stat data_sb;
    struct err e = {0};

    assert_int_equal(store_upload_create(fx->st, "archive", "s3/again", NULL, NULL, &u, &e), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(put_part(fx->st, u.upload_id, i + 1, a + (size_t)i * ps, ps, &m, &e), 0);
        refs[i].number = i + 1;
        memcpy(refs[i].etag, m.etag, 33);
    }
    assert_int_equal(hashed_next(fx->st, u.upload_id), 4);
    /* part 2 again, in place with other bytes: the hash starts over */
    assert_int_equal(put_part(fx->st, u.upload_id, 2, b, ps, &m, &e), 0);
    memcpy(refs[1].etag, m.etag, 33);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 4);
    memcpy(want, a, ps);
    memcpy(want + ps, b, ps);
    memcpy(want + 2 * ps, a + 2 * ps, ps);
    data_stat(fx->root, u.upload_id, &data_sb);
    assert_int_equal(strided_complete(fx, u.upload_id, refs, 3, "s3/again-1", want, 3 * ps),
                     data_sb.st_ino);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);

    /* part 2 again as a file of another size: the hash forgets it, the list is copied */
    assert_int_equal(store_upload_create(fx->st, "archive", "s3/again", NULL, NULL, &u, &e), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(put_part(fx->st, u.upload_id, i + 1, a + (size_t)i * ps, ps, &m, &e), 0);
        refs[i].number = i + 1;
        memcpy(refs[i].etag, m.etag, 33);
    }
    assert_int_equal(put_part(fx->st, u.upload_id, 2, b, 2 * ps, &m, &e), 0);
    memcpy(refs[1].etag, m.etag, 33);
    assert_int_equal(count_markers(fx->root, u.upload_id, 2), 1);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 1);
    memcpy(want + ps, b, 2 * ps);
    memcpy(want + 3 * ps, a + 2 * ps, ps);
    (void)strided_complete(fx, u.upload_id, refs, 3, "s3/again-2", want, 4 * ps);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);

    /* after a restart the hash state is gone: assembly hashes the data file */
    assert_int_equal(store_upload_create(fx->st, "archive", "s3/again", NULL, NULL, &u, &e), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(put_part(fx->st, u.upload_id, i + 1, a + (size_t)i * ps, ps, &m, &e), 0);
        refs[i].number = i + 1;
        memcpy(refs[i].etag, m.etag, 33);
    }
    store_close(fx->st);
    assert_int_equal(store_fs_open(&fx->st, fx->root, &e), 0);
    assert_int_equal(hashed_next(fx->st, u.upload_id), 0);
    data_stat(fx->root, u.upload_id, &data_sb);
    assert_int_equal(strided_complete(fx, u.upload_id, refs, 3, "s3/again-3", a, 3 * ps),
                     data_sb.st_ino);
    assert_int_equal(store_upload_abort(fx->st, u.upload_id, &e), 0);
    free(a);
    free(b);
    free(want);
    assert_int_equal(count_tmp_files(fx->root), 0);
}

static void test_copy_part(void **state)
{
    size_t n = 3 * FS_RBUF + 17;
    unsigned char *data = pattern(n, 31);
    unsigned char *buf = xmalloc(FS_RBUF);
    unsigned char *got = xmalloc(n);
    char want[65];
    char root[ROOT_MAX];
    char path[PATH_MAX];
    struct err e = {0};

    (void)state;
    util_sha256_hex(data, n, want);
    make_root(root);
    for (int mode = 0; mode < 2; mode++) {
        EVP_MD_CTX *sha = EVP_MD_CTX_new();
        char hex[65];
        int rw = mode;
        int in;
        int out;

        snprintf(path, sizeof(path), "%s/in", root);
        in = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        assert_true(in >= 0);
        assert_int_equal(util_write_all(in, data, n, &e), 0);
        snprintf(path, sizeof(path), "%s/out", root);
        out = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        assert_true(out >= 0);
        assert_int_equal(EVP_DigestInit_ex(sha, EVP_sha256(), NULL), 1);
        assert_int_equal(util_write_all(out, "head", 4, &e), 0);
        assert_int_equal(fs_copy_part(in, 0, out, 4, (int64_t)n, sha, buf, &rw, &e), 0);
        assert_int_equal(rw, mode);
        assert_int_equal(fs_digest_hex(sha, hex, &e), 0);
        assert_string_equal(hex, want);
        assert_int_equal(pread(out, got, n, 4), (ssize_t)n);
        assert_memory_equal(got, data, n);
        /* a part shorter than recorded is an error, not a short object */
        assert_int_equal(fs_copy_part(in, 0, out, 4, (int64_t)n + 1, sha, buf, &rw, &e), -1);
        assert_int_equal(e.code, ERR_IO);
        EVP_MD_CTX_free(sha);
        close(in);
        close(out);
    }
    rm_tree(root);
    free(data);
    free(buf);
    free(got);
}

/* a directory sorts as its name followed by '/', which gives key order */
static void test_dent_order(void **state)
{
    char names[5][4] = {"a0", "a", "a-b", "a.b", "b"};
    struct fs_dent d[] = {
        {names[0], 2, 0}, {names[1], 1, 1}, {names[2], 3, 0}, {names[3], 3, 1}, {names[4], 1, 0}};
    static const char *const want[] = {"a-b", "a.b", "a", "a0", "b"};

    (void)state;
    qsort(d, ARRAY_LEN(d), sizeof(d[0]), fs_dent_cmp);
    for (size_t i = 0; i < ARRAY_LEN(d); i++)
        assert_string_equal(d[i].name, want[i]);
}

/* ---- fault injection -------------------------------------------------------------------- */

/* what the scenario managed to commit */
struct outcome {
    int put_ok;
    int copy_ok;
    int commit_ok;
    int sized_ok;
    int done;
};

/*
 * A put, a two-part upload and a two-part sized upload of the same bytes through st,
 * stopping (and cleaning up) at the first failure, as a careful caller would.
 */
static void scenario(struct store *st, const unsigned char *a, size_t alen, const unsigned char *p1,
                     size_t l1, const unsigned char *p2, size_t l2, struct outcome *o)
{
    struct store_writer *w = NULL;
    struct store_staged *sg = NULL;
    struct store_part_ref refs[2];
    struct store_part *parts;
    struct store_upload u;
    struct store_meta m;
    struct err e = {0};
    size_t n;

    memset(o, 0, sizeof(*o));
    if (store_object_writer(st, "archive", "obj/a", STORE_WRITER_SHA256, &w, &e) < 0)
        return;
    if (write_chunks(w, a, alen, &e) < 0) {
        store_writer_abort(w);
        return;
    }
    if (store_writer_commit(w, "application/octet-stream", NULL, &m, &e) < 0)
        return;
    o->put_ok = 1;
    if (store_object_stat(st, "archive", "obj/a", &m, &e) < 0)
        return;
    memset(&m, 0, sizeof(m));
    snprintf(m.headers, sizeof(m.headers), "x-amz-meta-copy:1\n");
    if (store_object_copy(st, "archive", "obj/a", "archive", "obj/d", &m, NULL, &e) < 0)
        return;
    o->copy_ok = 1;
    if (store_upload_create(st, "archive", "obj/b", NULL, NULL, &u, &e) < 0)
        return;
    if (put_part(st, u.upload_id, 2, p2, l2, &m, &e) < 0)
        return;
    refs[1].number = 2;
    memcpy(refs[1].etag, m.etag, 33);
    if (put_part(st, u.upload_id, 1, p1, l1, &m, &e) < 0)
        return;
    refs[0].number = 1;
    memcpy(refs[0].etag, m.etag, 33);
    if (store_upload_parts(st, u.upload_id, &parts, &n, &e) < 0)
        return;
    free(parts);
    if (store_upload_assemble(st, u.upload_id, refs, 2, MIN_PART, &sg, &e) < 0)
        return;
    if (store_staged_commit(sg, "archive", "obj/b", &m, &e) < 0) {
        store_staged_free(sg);
        return;
    }
    o->commit_ok = 1;
    store_staged_free(sg);
    if (store_upload_abort(st, u.upload_id, &e) < 0)
        return;

    if (store_upload_create_sized(st, "archive", "obj/c", "video/mp4", (int64_t)l1,
                                  (int64_t)(l1 + l2), &u, &e) < 0)
        return;
    if (put_part(st, u.upload_id, 2, p2, l2, &m, &e) < 0)
        return;
    memcpy(refs[1].etag, m.etag, 33);
    if (put_part(st, u.upload_id, 1, p1, l1, &m, &e) < 0)
        return;
    memcpy(refs[0].etag, m.etag, 33);
    if (store_upload_parts(st, u.upload_id, &parts, &n, &e) < 0)
        return;
    free(parts);
    if (store_upload_assemble(st, u.upload_id, refs, 2, MIN_PART, &sg, &e) < 0)
        return;
    if (store_staged_commit(sg, "archive", "obj/c", &m, &e) < 0) {
        store_staged_free(sg);
        return;
    }
    o->sized_ok = 1;
    store_staged_free(sg);
    if (store_upload_abort(st, u.upload_id, &e) < 0)
        return;
    o->done = 1;
}

static void test_faulty(void **state)
{
    size_t alen = 600 * 1024;
    size_t l1 = FS_STRIDE_MIN; /* obj/b's part 1 goes in place */
    size_t l2 = 4321;
    unsigned char *a = pattern(alen, 21);
    unsigned char *p1 = pattern(l1, 22);
    unsigned char *p2 = pattern(l2, 23);
    unsigned char *b = xmalloc(l1 + l2);
    int fds = count_fds();
    char sha[65];
    long n;

    (void)state;
    memcpy(b, p1, l1);
    memcpy(b + l1, p2, l2);
    util_sha256_hex(b, l1 + l2, sha);
    for (n = 1; n < 1000; n++) {
        char root[ROOT_MAX];
        char path[PATH_MAX];
        struct store *inner;
        struct store *st;
        struct store *check;
        struct store_meta m;
        struct outcome o;
        struct err e = {0};

        make_root(root);
        assert_int_equal(store_fs_open(&inner, root, &e), 0);
        assert_int_equal(store_faulty_open(&st, inner, n, &e), 0);
        assert_string_equal(store_backend_name(st), "faulty");
        scenario(st, a, alen, p1, l1, p2, l2, &o);
        store_close(st);
        /* nothing is left in scratch space once the store is closed */
        snprintf(path, sizeof(path), "%s/.tmp", root);
        assert_int_equal(count_entries(path), 0);
        assert_int_equal(count_fds(), fds);

        assert_int_equal(store_fs_open(&check, root, &e), 0);
        if (o.put_ok) {
            assert_object(check, "archive", "obj/a", a, alen);
        } else {
            assert_int_equal(store_object_stat(check, "archive", "obj/a", &m, &e), -1);
            assert_int_equal(e.code, ERR_NOTFOUND);
        }
        if (o.copy_ok) {
            assert_object(check, "archive", "obj/d", a, alen);
            assert_int_equal(store_object_stat(check, "archive", "obj/d", &m, &e), 0);
            assert_string_equal(m.headers, "x-amz-meta-copy:1\n");
        } else {
            assert_int_equal(store_object_stat(check, "archive", "obj/d", &m, &e), -1);
            assert_int_equal(e.code, ERR_NOTFOUND);
        }
        if (o.commit_ok) {
            assert_object(check, "archive", "obj/b", b, l1 + l2);
        } else {
            assert_int_equal(store_object_stat(check, "archive", "obj/b", &m, &e), -1);
            assert_int_equal(e.code, ERR_NOTFOUND);
        }
        if (o.sized_ok) {
            assert_object(check, "archive", "obj/c", b, l1 + l2);
            assert_int_equal(store_object_stat(check, "archive", "obj/c", &m, &e), 0);
            assert_string_equal(m.sha256, sha);
            assert_string_equal(m.content_type, "video/mp4");
        } else {
            assert_int_equal(store_object_stat(check, "archive", "obj/c", &m, &e), -1);
            assert_int_equal(e.code, ERR_NOTFOUND);
        }
        store_close(check);
        rm_tree(root);
        if (o.done)
            break;
    }
    /* the scenario makes well over two dozen calls, each of which failed once */
    assert_true(n > 24);
    assert_true(n < 1000);

    /* n == 0 never fails */
    {
        struct store *st;
        struct outcome o;
        struct err e = {0};
        char root[ROOT_MAX];
        struct store *inner;

        make_root(root);
        assert_int_equal(store_fs_open(&inner, root, &e), 0);
        assert_int_equal(store_faulty_open(&st, inner, 0, &e), 0);
        scenario(st, a, alen, p1, l1, p2, l2, &o);
        assert_true(o.done);
        store_close(st);
        rm_tree(root);
    }
    free(a);
    free(p1);
    free(p2);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test_setup_teardown(test_wrapper_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_xattr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_multipart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assemble_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_part, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_list_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stale_tmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_out_of_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_small_parts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_reupload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_wrong_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_torn_part, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_saved_digest_invalidated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_foreign_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_reader_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strided_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strided_other_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strided_reupload, setup, teardown),
        cmocka_unit_test(test_copy_part),
        cmocka_unit_test(test_dent_order),
        cmocka_unit_test(test_faulty),
    };

    log_init(LOG_WARN, 0, 2);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
