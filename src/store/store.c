/*
 * store: validation helpers and the thin wrappers every caller goes through. The
 * wrappers check arguments once, dispatch through the backend's ops and write one
 * debug log line per call (store_writer_write excepted: it is called per chunk).
 */
#include "store/store.h"

#include <string.h>

static const char *const store_buckets[] = {STORE_BUCKET_ARCHIVE, STORE_BUCKET_PROXIES,
                                            STORE_BUCKET_DELIVERY};

int store_bucket_valid(const char *bucket, struct err *err)
{
    if (bucket)
        for (size_t i = 0; i < ARRAY_LEN(store_buckets); i++)
            if (strcmp(bucket, store_buckets[i]) == 0)
                return 0;
    return err_set(err, ERR_NOTFOUND, "NoSuchBucket: no bucket named %.64s",
                   bucket ? bucket : "(null)");
}

int store_key_valid(const char *key, struct err *err)
{
    size_t len;
    size_t seg = 0; /* start of the current segment */

    if (!key)
        return err_set(err, ERR_INVALID, "missing key");
    len = strnlen(key, STORE_KEY_MAX + 1);
    if (len == 0)
        return err_set(err, ERR_INVALID, "empty key");
    if (len > STORE_KEY_MAX)
        return err_set(err, ERR_INVALID, "key longer than %d bytes", STORE_KEY_MAX);
    if (!util_utf8_valid(key, len))
        return err_set(err, ERR_INVALID, "key is not valid UTF-8");
    /* U+FFFE and U+FFFF (EF BF BE/BF) are not characters XML 1.0 can carry */
    for (size_t i = 0; i + 2 < len; i++) {
        const unsigned char *u = (const unsigned char *)key + i;

        if (u[0] == 0xef && u[1] == 0xbf && (u[2] & 0xfe) == 0xbe)
            return err_set(err, ERR_INVALID, "key contains U+FFFE or U+FFFF");
    }
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)key[i];

        if (c != '\0' && c != '/') {
            if (c < 0x20 || c == 0x7f)
                return err_set(err, ERR_INVALID, "key contains a control character");
            continue;
        }
        /* key[seg..i) is one segment */
        if (i == seg)
            return err_set(err, ERR_INVALID, "key has an empty segment");
        if ((i - seg == 1 && key[seg] == '.') ||
            (i - seg == 2 && key[seg] == '.' && key[seg + 1] == '.'))
            return err_set(err, ERR_INVALID, "key has a \".\" or \"..\" segment");
        seg = i + 1;
    }
    return 0;
}

int store_upload_id_valid(const char *id)
{
    size_t i;

    if (!id)
        return 0;
    for (i = 0; i < 32; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return id[i] == '\0';
}

int store_content_type_valid(const char *content_type, struct err *err)
{
    size_t len;

    if (!content_type)
        return 0;
    len = strnlen(content_type, STORE_CONTENT_TYPE_MAX + 1);
    if (len > STORE_CONTENT_TYPE_MAX)
        return err_set(err, ERR_LIMIT, "content type longer than %d bytes", STORE_CONTENT_TYPE_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)content_type[i];

        if (c < 0x20 || c >= 0x7f)
            return err_set(err, ERR_INVALID, "content type has a non-printable character");
    }
    return 0;
}

/* 1 if c may appear in an HTTP header name (RFC 9110 token), lowercase only */
static int store_header_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int store_headers_valid(const char *headers, struct err *err)
{
    size_t len;
    const char *p;

    if (!headers)
        return 0;
    len = strnlen(headers, STORE_HEADERS_MAX + 1);
    if (len > STORE_HEADERS_MAX)
        return err_set(err, ERR_LIMIT, "object headers longer than %d bytes", STORE_HEADERS_MAX);
    if (!util_utf8_valid(headers, len))
        return err_set(err, ERR_INVALID, "object headers are not valid UTF-8");
    for (p = headers; *p;) {
        const char *colon = p;
        const char *nl;

        while (store_header_name_char((unsigned char)*colon))
            colon++;
        if (colon == p || *colon != ':')
            return err_set(err, ERR_INVALID, "object header without a lowercase name");
        nl = strchr(colon, '\n');
        if (!nl)
            return err_set(err, ERR_INVALID, "object header line without its newline");
        for (const char *v = colon + 1; v < nl; v++)
            if (((unsigned char)*v < 0x20 && *v != '\t') || *v == 0x7f)
                return err_set(err, ERR_INVALID, "object header %.*s has a control character",
                               (int)(colon - p), p);
        p = nl + 1;
    }
    return 0;
}

/* checks an upload id for the wrappers: unknown shapes are simply not found */
static int store_check_upload_id(const char *id, struct err *err)
{
    if (!store_upload_id_valid(id))
        return err_set(err, ERR_NOTFOUND, "NoSuchUpload: no upload %.40s", id ? id : "(null)");
    return 0;
}

/* logs the outcome of one call at debug level and passes rc through */
static int store_logged(int rc, const char *op, const char *what, const struct err *err)
{
    if (rc == 0)
        log_write(LOG_DEBUG, "store", "%s %s ok", op, what);
    else
        log_write(LOG_DEBUG, "store", "%s %s failed (%s): %s", op, what,
                  err ? err_code_name(err->code) : "?", err ? err->msg : "");
    return rc;
}

void store_close(struct store *st)
{
    if (!st)
        return;
    log_write(LOG_DEBUG, "store", "close %s", st->ops->name);
    st->ops->close(st);
}

const char *store_backend_name(const struct store *st)
{
    return st->ops->name;
}

int store_object_writer(struct store *st, const char *bucket, const char *key, int flags,
                        struct store_writer **out, struct err *err)
{
    int rc;

    *out = NULL;
    if (store_bucket_valid(bucket, err) < 0 || store_key_valid(key, err) < 0)
        return -1;
    rc = st->ops->object_writer(st, bucket, key, flags, out, err);
    return store_logged(rc, "object_writer", key, err);
}

int store_part_writer(struct store *st, const char *upload_id, int part_number, int64_t length,
                      int flags, struct store_writer **out, struct err *err)
{
    int rc;

    *out = NULL;
    if (store_check_upload_id(upload_id, err) < 0)
        return -1;
    if (part_number < 1 || part_number > STORE_PART_MAX)
        return err_set(err, ERR_INVALID, "InvalidArgument: part number must be 1..%d",
                       STORE_PART_MAX);
    rc = st->ops->part_writer(st, upload_id, part_number, length, flags, out, err);
    return store_logged(rc, "part_writer", upload_id, err);
}

int store_writer_write(struct store_writer *w, const void *data, size_t n, struct err *err)
{
    if (n == 0)
        return 0;
    return w->st->ops->writer_write(w, data, n, err);
}

int store_writer_commit(struct store_writer *w, const char *content_type, const char *headers,
                        struct store_meta *out, struct err *err)
{
    int rc;

    if (store_content_type_valid(content_type, err) < 0 || store_headers_valid(headers, err) < 0) {
        w->st->ops->writer_abort(w);
        return -1;
    }
    rc = w->st->ops->writer_commit(w, content_type, headers, out, err);
    return store_logged(rc, "writer_commit", "", err);
}

void store_writer_abort(struct store_writer *w)
{
    if (!w)
        return;
    log_write(LOG_DEBUG, "store", "writer_abort");
    w->st->ops->writer_abort(w);
}

int store_object_stat(struct store *st, const char *bucket, const char *key, struct store_meta *out,
                      struct err *err)
{
    int rc;

    if (store_bucket_valid(bucket, err) < 0 || store_key_valid(key, err) < 0)
        return -1;
    rc = st->ops->object_stat(st, bucket, key, out, err);
    return store_logged(rc, "object_stat", key, err);
}

int store_object_open(struct store *st, const char *bucket, const char *key, int *fd,
                      struct store_meta *out, struct err *err)
{
    int rc;

    *fd = -1;
    if (store_bucket_valid(bucket, err) < 0 || store_key_valid(key, err) < 0)
        return -1;
    rc = st->ops->object_open(st, bucket, key, fd, out, err);
    return store_logged(rc, "object_open", key, err);
}

int store_object_delete(struct store *st, const char *bucket, const char *key, struct err *err)
{
    int rc;

    if (store_bucket_valid(bucket, err) < 0 || store_key_valid(key, err) < 0)
        return -1;
    rc = st->ops->object_delete(st, bucket, key, err);
    return store_logged(rc, "object_delete", key, err);
}

int store_object_list(struct store *st, const char *bucket, const char *prefix, store_list_fn cb,
                      void *ctx, struct err *err)
{
    struct store_list_query q = {prefix, NULL, NULL};

    return store_object_list_query(st, bucket, &q, cb, ctx, err);
}

int store_object_list_query(struct store *st, const char *bucket, const struct store_list_query *q,
                            store_list_fn cb, void *ctx, struct err *err)
{
    static const char *const names[] = {"prefix", "start_after", "delimiter"};
    const char *given[3] = {q->prefix, q->start_after, q->delimiter};
    struct store_list_query norm;
    int rc;

    if (store_bucket_valid(bucket, err) < 0)
        return -1;
    for (size_t i = 0; i < ARRAY_LEN(given); i++) {
        if (given[i] && strnlen(given[i], STORE_KEY_MAX + 1) > STORE_KEY_MAX)
            return err_set(err, ERR_INVALID, "%s longer than %d bytes", names[i], STORE_KEY_MAX);
        if (!given[i])
            given[i] = "";
    }
    norm.prefix = given[0];
    norm.start_after = given[1];
    norm.delimiter = given[2];
    rc = st->ops->object_list(st, bucket, &norm, cb, ctx, err);
    return store_logged(rc, "object_list", bucket, err);
}

int store_object_copy(struct store *st, const char *src_bucket, const char *src_key,
                      const char *bucket, const char *key, const struct store_meta *replace,
                      struct store_meta *out, struct err *err)
{
    int rc;

    if (store_bucket_valid(src_bucket, err) < 0 || store_key_valid(src_key, err) < 0 ||
        store_bucket_valid(bucket, err) < 0 || store_key_valid(key, err) < 0)
        return -1;
    if (replace && (store_content_type_valid(replace->content_type, err) < 0 ||
                    store_headers_valid(replace->headers, err) < 0))
        return -1;
    rc = st->ops->object_copy(st, src_bucket, src_key, bucket, key, replace, out, err);
    return store_logged(rc, "object_copy", key, err);
}

int store_upload_create(struct store *st, const char *bucket, const char *key,
                        const char *content_type, const char *headers, struct store_upload *out,
                        struct err *err)
{
    int rc;

    if (store_bucket_valid(bucket, err) < 0 || store_key_valid(key, err) < 0 ||
        store_content_type_valid(content_type, err) < 0 || store_headers_valid(headers, err) < 0)
        return -1;
    rc = st->ops->upload_create(st, bucket, key, content_type, headers, out, err);
    return store_logged(rc, "upload_create", key, err);
}

int store_upload_create_sized(struct store *st, const char *bucket, const char *key,
                              const char *content_type, int64_t part_size, int64_t total_size,
                              struct store_upload *out, struct err *err)
{
    int rc;

    if (store_bucket_valid(bucket, err) < 0 || store_key_valid(key, err) < 0 ||
        store_content_type_valid(content_type, err) < 0)
        return -1;
    if (part_size < 1)
        return err_set(err, ERR_INVALID, "InvalidArgument: part size must be at least 1 byte");
    if (total_size < 1)
        return err_set(err, ERR_INVALID, "InvalidArgument: total size must be at least 1 byte");
    if (part_size > STORE_PART_SIZE_MAX)
        return err_set(err, ERR_LIMIT, "EntityTooLarge: parts are at most %lld bytes",
                       (long long)STORE_PART_SIZE_MAX);
    if (total_size > STORE_OBJECT_SIZE_MAX)
        return err_set(err, ERR_LIMIT, "EntityTooLarge: objects are at most %lld bytes",
                       (long long)STORE_OBJECT_SIZE_MAX);
    if ((total_size - 1) / part_size + 1 > STORE_PART_MAX)
        return err_set(err, ERR_LIMIT,
                       "InvalidArgument: %lld bytes in parts of %lld make more than %d parts",
                       (long long)total_size, (long long)part_size, STORE_PART_MAX);
    rc = st->ops->upload_create_sized(st, bucket, key, content_type, part_size, total_size, out,
                                      err);
    return store_logged(rc, "upload_create_sized", key, err);
}

int store_upload_get(struct store *st, const char *upload_id, struct store_upload *out,
                     struct err *err)
{
    int rc;

    if (store_check_upload_id(upload_id, err) < 0)
        return -1;
    rc = st->ops->upload_get(st, upload_id, out, err);
    return store_logged(rc, "upload_get", upload_id, err);
}

int store_upload_parts(struct store *st, const char *upload_id, struct store_part **parts,
                       size_t *n, struct err *err)
{
    int rc;

    *parts = NULL;
    *n = 0;
    if (store_check_upload_id(upload_id, err) < 0)
        return -1;
    rc = st->ops->upload_parts(st, upload_id, parts, n, err);
    return store_logged(rc, "upload_parts", upload_id, err);
}

int store_upload_list(struct store *st, const char *bucket,
                      int (*cb)(void *ctx, const struct store_upload *u), void *ctx,
                      struct err *err)
{
    int rc;

    if (bucket && store_bucket_valid(bucket, err) < 0)
        return -1;
    rc = st->ops->upload_list(st, bucket, cb, ctx, err);
    return store_logged(rc, "upload_list", bucket ? bucket : "*", err);
}

int store_upload_abort(struct store *st, const char *upload_id, struct err *err)
{
    int rc;

    if (store_check_upload_id(upload_id, err) < 0)
        return -1;
    rc = st->ops->upload_abort(st, upload_id, err);
    return store_logged(rc, "upload_abort", upload_id, err);
}

int store_upload_assemble(struct store *st, const char *upload_id,
                          const struct store_part_ref *refs, size_t n, int64_t min_part_size,
                          struct store_staged **out, struct err *err)
{
    int rc;

    *out = NULL;
    if (store_check_upload_id(upload_id, err) < 0)
        return -1;
    if (n == 0)
        return err_set(err, ERR_INVALID, "MalformedXML: no parts given");
    if (n > STORE_PART_MAX)
        return err_set(err, ERR_LIMIT, "InvalidArgument: more than %d parts", STORE_PART_MAX);
    rc = st->ops->upload_assemble(st, upload_id, refs, n, min_part_size, out, err);
    return store_logged(rc, "upload_assemble", upload_id, err);
}

const struct store_meta *store_staged_meta(struct store_staged *sg)
{
    return sg->st->ops->staged_meta(sg);
}

int store_staged_commit(struct store_staged *sg, const char *bucket, const char *key,
                        struct store_meta *out, struct err *err)
{
    int rc;

    if (store_bucket_valid(bucket, err) < 0 || store_key_valid(key, err) < 0)
        return -1;
    rc = sg->st->ops->staged_commit(sg, bucket, key, out, err);
    return store_logged(rc, "staged_commit", key, err);
}

void store_staged_free(struct store_staged *sg)
{
    if (!sg)
        return;
    sg->st->ops->staged_free(sg);
}
