/*
 * Objects on the S3 endpoint: the headers an object keeps (Content-Type, x-amz-meta-*,
 * Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires), the
 * headers acervo refuses because it cannot honour them, GetObject/HeadObject, CopyObject
 * and UploadPartCopy, and the answers about buckets that need no listing.
 */
#include "s3/s3_int.h"

#include "s3/sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Largest source of a copy without a range (S3's limit, 5 GiB). */
#define COPY_MAX STORE_PART_SIZE_MAX
/* Read size of UploadPartCopy. */
#define COPY_BUF ((size_t)1024 * 1024)

/* ---- headers acervo cannot honour ------------------------------------------------------ */

/*
 * Request headers that ask for something acervo does not do. A prefix entry covers every
 * header that starts with it; allowed lists the values that ask for what acervo does
 * anyway ("private" access, the STANDARD storage class), separated by '|'.
 */
static const struct {
    const char *name;
    int prefix;
    const char *allowed;
    const char *why;
} refused_headers[] = {
    {"x-amz-acl", 0, "private|bucket-owner-full-control",
     "access is governed by acervo's roles, not ACLs"},
    {"x-amz-bucket-object-lock-enabled", 0, "false", "object lock"},
    {"x-amz-copy-source-server-side-encryption", 1, NULL, "acervo does not encrypt objects itself"},
    {"x-amz-grant-", 1, NULL, "access is governed by acervo's roles, not ACLs"},
    {"x-amz-object-lock-", 1, NULL, "object lock (objects are immutable anyway)"},
    {"x-amz-server-side-encryption", 1, NULL, "acervo does not encrypt objects itself"},
    {"x-amz-storage-class", 0, "STANDARD", "there is one storage class"},
    {"x-amz-tagging", 0, NULL, "acervo keeps no tags"},
    {"x-amz-website-redirect-location", 0, NULL, "static websites"},
};

struct refuse_ctx {
    struct err *err;
    int refused;
};

/* 1 if value is one of the '|'-separated words of allowed (case-insensitive) */
static int value_allowed(const char *allowed, const char *value)
{
    size_t n = strlen(value);

    for (const char *p = allowed; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);

        if (len == n && strncasecmp(p, value, n) == 0)
            return 1;
        p += len + (bar ? 1 : 0);
    }
    return 0;
}

static void refuse_cb(void *ctx, const char *name, const char *value)
{
    struct refuse_ctx *c = ctx;

    if (c->refused)
        return;
    for (size_t i = 0; i < ARRAY_LEN(refused_headers); i++) {
        size_t n = strlen(refused_headers[i].name);
        int match = refused_headers[i].prefix ? strncasecmp(name, refused_headers[i].name, n) == 0
                                              : strcasecmp(name, refused_headers[i].name) == 0;

        if (!match || (refused_headers[i].allowed &&
                       value_allowed(refused_headers[i].allowed, value ? value : "")))
            continue;
        err_set(c->err, ERR_UNSUPPORTED,
                "NotImplemented: A header you provided implies functionality that is not "
                "implemented: %.64s: %.64s (%s)",
                name, value ? value : "", refused_headers[i].why);
        c->refused = 1;
        return;
    }
}

int s3__refuse_headers(struct http_req *req, struct s3_req *r, struct err *err)
{
    struct refuse_ctx c = {err, 0};

    (void)r;
    http_headers_each(req, refuse_cb, &c);
    return c.refused ? -1 : 0;
}

/* ---- the headers an object keeps ----------------------------------------------------- */

/* The representation headers an object keeps besides Content-Type (lowercase). */
static const char *const kept_headers[] = {"cache-control", "content-disposition",
                                           "content-encoding", "content-language", "expires"};

#define META_PREFIX     "x-amz-meta-"
#define META_PREFIX_LEN 11

struct meta_ctx {
    struct http_req *req;
    struct buf b;
    size_t user; /* bytes of user metadata, counted as S3 does */
    struct err *err;
    int failed;
};

static int kept_header(const char *lower)
{
    if (strncmp(lower, META_PREFIX, META_PREFIX_LEN) == 0)
        return 1;
    for (size_t i = 0; i < ARRAY_LEN(kept_headers); i++)
        if (strcmp(lower, kept_headers[i]) == 0)
            return 1;
    return 0;
}

/* 1 if the block already has a line for name */
static int block_has(const struct buf *b, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < b->len;) {
        const char *nl = memchr(b->buf + i, '\n', b->len - i);

        if (b->len - i > n && memcmp(b->buf + i, name, n) == 0 && b->buf[i + n] == ':')
            return 1;
        if (!nl)
            break;
        i = (size_t)(nl - b->buf) + 1;
    }
    return 0;
}

/* Content-Encoding without aws-chunked (S3 drops it: it describes the transfer only) */
static const char *strip_aws_chunked(struct http_req *req, const char *v)
{
    struct buf out;
    const char *res;

    if (!strcasestr(v, "aws-chunked"))
        return v;
    buf_init(&out, 0);
    for (const char *p = v; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        const char *t = p;
        size_t tl = len;

        while (tl && isspace((unsigned char)*t)) {
            t++;
            tl--;
        }
        while (tl && isspace((unsigned char)t[tl - 1]))
            tl--;
        if (tl && !(tl == 11 && strncasecmp(t, "aws-chunked", 11) == 0)) {
            if (out.len)
                buf_adds(&out, ",", NULL);
            buf_add(&out, t, tl, NULL);
        }
        p += len + (comma ? 1 : 0);
    }
    res = arena_strndup(&req->arena, out.len ? out.buf : "", out.len);
    buf_release(&out);
    return res;
}

static void meta_cb(void *ctx, const char *name, const char *value)
{
    struct meta_ctx *c = ctx;
    char lower[128];
    size_t n = strlen(name);
    const char *v;

    (void)value;
    if (c->failed || n >= sizeof(lower))
        return;
    for (size_t i = 0; i <= n; i++)
        lower[i] = (char)tolower((unsigned char)name[i]);
    if (!kept_header(lower) || block_has(&c->b, lower))
        return;
    if (n == META_PREFIX_LEN) {
        err_set(c->err, ERR_INVALID, "InvalidArgument: x-amz-meta- needs a name after it");
        c->failed = 1;
        return;
    }
    v = http_header_joined(c->req, name); /* repeated headers, joined with ',' */
    if (strcmp(lower, "content-encoding") == 0) {
        v = strip_aws_chunked(c->req, v);
        if (!*v)
            return;
    }
    for (const char *p = v; *p; p++) {
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
            err_set(c->err, ERR_INVALID, "InvalidArgument: the %s header has a control character",
                    lower);
            c->failed = 1;
            return;
        }
    }
    if (!util_utf8_valid(v, strlen(v))) {
        err_set(c->err, ERR_INVALID,
                "InvalidArgument: the %s header is not UTF-8 text (encode other text as RFC "
                "2047 words)",
                lower);
        c->failed = 1;
        return;
    }
    if (n > META_PREFIX_LEN)
        c->user += n - META_PREFIX_LEN + strlen(v);
    buf_addf(&c->b, NULL, "%s:%s\n", lower, v);
}

int s3__object_headers(struct http_req *req, struct s3_req *r, struct err *err)
{
    struct meta_ctx c = {req, {0}, 0, err, 0};
    const char *ct = http_header(req, "Content-Type");
    int rc = 0;

    if (store_content_type_valid(ct, err) < 0)
        return err_set(err, ERR_INVALID, "InvalidArgument: the Content-Type header is not valid");
    r->content_type = ct;
    buf_init(&c.b, 0);
    http_headers_each(req, meta_cb, &c);
    if (c.failed)
        rc = -1;
    else if (c.user > S3_USER_META_MAX)
        rc = err_set(err, ERR_INVALID,
                     "MetadataTooLarge: Your metadata headers exceed the maximum allowed metadata "
                     "size (%zu bytes of x-amz-meta-* names and values; the limit is %d)",
                     c.user, S3_USER_META_MAX);
    else if (c.b.len > STORE_HEADERS_MAX)
        rc = err_set(err, ERR_INVALID,
                     "MetadataTooLarge: Your metadata headers exceed the maximum allowed metadata "
                     "size (%zu bytes of headers kept with the object; the limit is %d)",
                     c.b.len, STORE_HEADERS_MAX);
    else if (c.b.len && store_headers_valid(c.b.buf, err) < 0)
        rc = -1;
    else
        r->headers = c.b.len ? arena_strndup(&req->arena, c.b.buf, c.b.len) : NULL;
    buf_release(&c.b);
    return rc;
}

/* value as a header value: as it is if ASCII, else one RFC 2047 word (as S3 answers) */
static const char *header_value(struct http_req *req, const char *v, size_t n)
{
    char *b64;
    const char *out;

    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)v[i] >= 0x80)
            goto encode;
    }
    return arena_strndup(&req->arena, v, n);
encode:
    b64 = xmalloc(4 * ((n + 2) / 3) + 1);
    util_base64((const unsigned char *)v, n, b64);
    out = arena_printf(&req->arena, "=?UTF-8?B?%s?=", b64);
    free(b64);
    return out;
}

/* the response-* override of a header, checked; NULL if none. -1 if it is not valid */
static int override(struct http_req *req, const char *param, const char **out, struct err *err)
{
    const char *v = http_query(req, param);

    *out = NULL;
    if (!v)
        return 0;
    for (const char *p = v; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return err_set(err, ERR_INVALID, "InvalidArgument: %s has a control character", param);
    *out = v;
    return 0;
}

/*
 * Puts the object's headers on the response: Cache-Control and Content-Disposition into
 * obj (http_send_object writes them), the others at once; a response-* parameter of the
 * request replaces the stored value.
 */
static int object_headers_out(struct http_req *req, const struct store_meta *m,
                              struct http_object *obj, struct err *err)
{
    static const char *const names[] = {"cache-control",    "content-disposition",
                                        "content-encoding", "content-language",
                                        "expires",          "content-type"};
    static const char *const params[] = {
        "response-cache-control",    "response-content-disposition",
        "response-content-encoding", "response-content-language",
        "response-expires",          "response-content-type"};
    const char *over[ARRAY_LEN(names)];
    const char *val[ARRAY_LEN(names)] = {0};

    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (override(req, params[i], &over[i], err) < 0)
            return -1;
    for (const char *p = m->headers; *p;) {
        const char *colon = strchr(p, ':');
        const char *nl = strchr(p, '\n');
        size_t nlen;

        if (!colon || !nl || colon > nl)
            break;
        nlen = (size_t)(colon - p);
        if (nlen > META_PREFIX_LEN && strncmp(p, META_PREFIX, META_PREFIX_LEN) == 0) {
            char *name = arena_strndup(&req->arena, p, nlen);

            http_resp_header(req, name, header_value(req, colon + 1, (size_t)(nl - colon - 1)));
        } else {
            for (size_t i = 0; i < ARRAY_LEN(names); i++)
                if (strlen(names[i]) == nlen && memcmp(names[i], p, nlen) == 0)
                    val[i] = header_value(req, colon + 1, (size_t)(nl - colon - 1));
        }
        p = nl + 1;
    }
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if (over[i])
            val[i] = over[i];
    obj->cache_control = val[0];
    obj->disposition = val[1];
    if (val[2])
        http_resp_header(req, "Content-Encoding", val[2]);
    if (val[3])
        http_resp_header(req, "Content-Language", val[3]);
    if (val[4])
        http_resp_header(req, "Expires", val[4]);
    obj->content_type = val[5] ? val[5] : arena_strdup(&req->arena, m->content_type);
    return 0;
}

/* ---- GetObject / HeadObject ------------------------------------------------------------ */

void s3__op_get_object(struct http_req *req, struct s3_req *r)
{
    const char *pn = http_query(req, "partNumber");
    struct store_meta m;
    struct http_object obj;
    struct err e;
    int64_t part = 0;
    int fd;

    if (pn && (util_parse_i64(pn, &part) < 0 || part < 1 || part > STORE_PART_MAX)) {
        s3__fail(req, ERR_INVALID,
                 "InvalidArgument: Part number must be an integer between 1 and 10000, "
                 "inclusive");
        return;
    }
    if (store_object_open(r->ctx->store, r->bucket, r->key, &fd, &m, &e) < 0) {
        if (e.code == ERR_NOTFOUND)
            err_set(&e, ERR_NOTFOUND, "NoSuchKey: The specified key does not exist.");
        s3__send_error(req, &e);
        return;
    }
    if (part > 0 && strchr(m.etag, '-')) {
        close(fd);
        s3__fail(req, ERR_UNSUPPORTED,
                 "NotImplemented: acervo does not keep where the parts of an object began; "
                 "GET it whole or by Range");
        return;
    }
    if (part > 1) {
        close(fd);
        s3__fail(req, ERR_RANGE,
                 "InvalidPartNumber: The requested partnumber is not satisfiable (the object "
                 "has one part)");
        return;
    }
    memset(&obj, 0, sizeof(obj));
    if (object_headers_out(req, &m, &obj, &e) < 0) {
        close(fd);
        s3__send_error(req, &e);
        return;
    }
    obj.size = m.size;
    obj.mtime = m.mtime;
    obj.etag = arena_strdup(&req->arena, m.etag);
    obj.small_max = r->ctx->cfg->sendfile_threshold;
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_object(req, fd, &obj);
}

/* ---- copies ---------------------------------------------------------------------------- */

/** The source of a CopyObject or UploadPartCopy. */
struct copy_source {
    const char *bucket;
    const char *key;
    struct store_meta meta;
};

/* 1 if the If-Match style list (quoted ETags separated by ',', or '*') names etag */
static int etag_listed(const char *list, const char *etag)
{
    size_t n = strlen(etag);

    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t seg = comma ? (size_t)(comma - p) : strlen(p);
        size_t len = seg;
        const char *t = p;

        while (len && isspace((unsigned char)*t)) {
            t++;
            len--;
        }
        while (len && isspace((unsigned char)t[len - 1]))
            len--;
        if (len >= 2 && t[0] == '"' && t[len - 1] == '"') {
            t++;
            len -= 2;
        }
        if ((len == 1 && *t == '*') || (len == n && strncmp(t, etag, n) == 0))
            return 1;
        p += seg + (comma ? 1 : 0);
    }
    return 0;
}

/* the x-amz-copy-source-if-* conditions against the source, S3's rules */
static int copy_conditions(struct http_req *req, const struct store_meta *m, struct err *err)
{
    const char *im = http_header(req, "x-amz-copy-source-if-match");
    const char *inm = http_header(req, "x-amz-copy-source-if-none-match");
    const char *ius = http_header(req, "x-amz-copy-source-if-unmodified-since");
    const char *ims = http_header(req, "x-amz-copy-source-if-modified-since");
    int64_t t;
    int ok = 1;

    if (im)
        ok = etag_listed(im, m->etag);
    else if (ius && util_time_http_parse(ius, &t) == 0)
        ok = m->mtime <= t;
    if (ok && inm)
        ok = !etag_listed(inm, m->etag);
    else if (ok && ims && util_time_http_parse(ims, &t) == 0)
        ok = m->mtime > t;
    if (!ok)
        return err_set(err, ERR_PRECONDITION,
                       "PreconditionFailed: At least one of the pre-conditions you specified did "
                       "not hold (the copy source's ETag is \"%s\")",
                       m->etag);
    return 0;
}

/* the answer of a copy: <root> with the copy's LastModified and ETag */
static void send_copy_result(struct http_req *req, const char *root, int64_t mtime_ms,
                             const char *etag)
{
    struct buf b;
    char ts[32];

    util_time_rfc3339_ms(mtime_ms, ts);
    buf_init(&b, 0);
    buf_addf(&b, NULL,
             S3_XML_HEADER "<%s xmlns=\"" S3_NS "\"><LastModified>%s</LastModified>"
                           "<ETag>&quot;%s&quot;</ETag></%s>",
             root, ts, etag, root);
    s3__send_xml(req, 200, &b);
}

/* parses x-amz-copy-source ("[/]bucket/key[?versionId=null]", percent-encoded) into src and
 * looks the source up, checking the copy conditions */
static int copy_source(struct http_req *req, struct s3_req *r, struct copy_source *src,
                       struct err *err)
{
    const char *h = http_header(req, "x-amz-copy-source");
    const char *q;
    const char *slash;
    char *decoded;
    struct buf b;
    struct err e;

    (void)r;
    if (*h == '/')
        h++;
    q = strchr(h, '?');
    if (q && strcmp(q, "?versionId=null") != 0)
        return err_set(err, ERR_INVALID,
                       strncmp(q, "?versionId=", 11) == 0
                           ? "InvalidArgument: Invalid version id specified"
                           : "InvalidArgument: x-amz-copy-source takes no parameter but versionId");
    buf_init(&b, (size_t)4 * STORE_KEY_MAX);
    if (sigv4_uri_decode(&b, h, q ? (size_t)(q - h) : strlen(h), &e) < 0) {
        buf_release(&b);
        return err_set(err, ERR_INVALID,
                       "InvalidArgument: x-amz-copy-source is not valid percent-encoded text");
    }
    decoded = arena_strndup(&req->arena, b.buf, b.len);
    buf_release(&b);
    slash = strchr(decoded, '/');
    if (!slash || slash == decoded || slash[1] == '\0')
        return err_set(err, ERR_INVALID,
                       "InvalidArgument: Copy Source must mention the source bucket and key: "
                       "sourcebucket/sourcekey");
    src->bucket = arena_strndup(&req->arena, decoded, (size_t)(slash - decoded));
    src->key = slash + 1;
    if (store_bucket_valid(src->bucket, &e) < 0)
        return err_set(err, ERR_NOTFOUND,
                       "NoSuchBucket: The specified bucket does not exist (the copy source's)");
    if (store_key_valid(src->key, &e) < 0)
        return err_set(err, ERR_INVALID, "InvalidArgument: the copy source's key: %s", e.msg);
    if (store_object_stat(r->ctx->store, src->bucket, src->key, &src->meta, err) < 0) {
        if (err->code == ERR_NOTFOUND)
            return err_set(err, ERR_NOTFOUND,
                           "NoSuchKey: The specified key does not exist (the copy source %s/%s)",
                           src->bucket, src->key);
        return -1;
    }
    return copy_conditions(req, &src->meta, err);
}

void s3__op_copy_object(struct http_req *req, struct s3_req *r)
{
    const char *directive = http_header(req, "x-amz-metadata-directive");
    struct copy_source src = {0};
    struct store_meta rep;
    struct store_meta m;
    struct err e;
    int replace = directive && strcasecmp(directive, "REPLACE") == 0;

    if (directive && !replace && strcasecmp(directive, "COPY") != 0) {
        s3__fail(req, ERR_INVALID, "InvalidArgument: Unknown metadata directive.");
        return;
    }
    if (copy_source(req, r, &src, &e) < 0 || (replace && s3__object_headers(req, r, &e) < 0)) {
        s3__send_error(req, &e);
        return;
    }
    if (replace) {
        memset(&rep, 0, sizeof(rep));
        snprintf(rep.content_type, sizeof(rep.content_type), "%s",
                 r->content_type ? r->content_type : "");
        snprintf(rep.headers, sizeof(rep.headers), "%s", r->headers ? r->headers : "");
    }
    if (store_object_copy(r->ctx->store, src.bucket, src.key, r->bucket, r->key,
                          replace ? &rep : NULL, &m, &e) < 0) {
        if (e.code == ERR_CONFLICT)
            s3__send_conflict(req, r, &e);
        else
            s3__send_error(req, &e);
        return;
    }
    send_copy_result(req, "CopyObjectResult", m.mtime * 1000, m.etag);
}

/* x-amz-copy-source-range "bytes=first-last" within size into *off, *len */
static int copy_range(struct http_req *req, int64_t size, int64_t *off, int64_t *len,
                      struct err *err)
{
    const char *h = http_header(req, "x-amz-copy-source-range");
    int64_t first;
    int64_t last;
    char a[24];
    char b[24];
    const char *dash;

    if (!h) {
        if (size > COPY_MAX)
            return err_set(err, ERR_INVALID,
                           "InvalidRequest: The specified copy source is larger than the maximum "
                           "allowable size for a copy source: %lld",
                           (long long)COPY_MAX);
        *off = 0;
        *len = size;
        return 0;
    }
    dash = strncmp(h, "bytes=", 6) == 0 ? strchr(h + 6, '-') : NULL;
    if (!dash || dash - (h + 6) >= (ptrdiff_t)sizeof(a) || strlen(dash + 1) >= sizeof(b))
        goto bad;
    snprintf(a, sizeof(a), "%.*s", (int)(dash - (h + 6)), h + 6);
    snprintf(b, sizeof(b), "%s", dash + 1);
    if (util_parse_i64(a, &first) < 0 || util_parse_i64(b, &last) < 0 || first < 0 || last < first)
        goto bad;
    if (last >= size)
        return err_set(err, ERR_INVALID,
                       "InvalidArgument: Range specified is not valid for source object of size: "
                       "%lld",
                       (long long)size);
    *off = first;
    *len = last - first + 1;
    return 0;
bad:
    return err_set(err, ERR_INVALID,
                   "InvalidArgument: The x-amz-copy-source-range value must be of the form "
                   "bytes=first-last where first and last are the zero-based offsets of the first "
                   "and last bytes to copy");
}

/* streams len bytes of fd from off into w */
static int copy_into(int fd, int64_t off, int64_t len, struct store_writer *w, struct err *err)
{
    char *buf = xmalloc(COPY_BUF);
    int rc = 0;

    while (rc == 0 && len > 0) {
        size_t want = len < (int64_t)COPY_BUF ? (size_t)len : COPY_BUF;
        ssize_t got = pread(fd, buf, want, (off_t)off);

        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            rc = got < 0 ? err_errno(err, ERR_IO, "read the copy source")
                         : err_set(err, ERR_IO, "the copy source ended early");
        else
            rc = store_writer_write(w, buf, (size_t)got, err);
        off += got;
        len -= got;
    }
    free(buf);
    return rc;
}

void s3__op_upload_part_copy(struct http_req *req, struct s3_req *r)
{
    const char *pn = http_query(req, "partNumber");
    struct copy_source src = {0};
    struct store_upload u;
    struct store_writer *w = NULL;
    struct store_meta m;
    struct err e;
    int64_t v;
    int64_t off = 0;
    int64_t len = 0;
    int fd = -1;

    if (!pn || util_parse_i64(pn, &v) < 0 || v < 1 || v > STORE_PART_MAX) {
        s3__fail(req, ERR_INVALID,
                 "InvalidArgument: Part number must be an integer between 1 and 10000, "
                 "inclusive");
        return;
    }
    if (copy_source(req, r, &src, &e) < 0 || copy_range(req, src.meta.size, &off, &len, &e) < 0 ||
        s3__load_upload(req, r, &u, &e) < 0 ||
        store_object_open(r->ctx->store, src.bucket, src.key, &fd, NULL, &e) < 0)
        goto fail;
    if (store_part_writer(r->ctx->store, u.upload_id, (int)v, len, 0, &w, &e) < 0)
        goto fail;
    if (copy_into(fd, off, len, w, &e) < 0) {
        store_writer_abort(w);
        goto fail;
    }
    if (store_writer_commit(w, NULL, NULL, &m, &e) < 0)
        goto fail;
    close(fd);
    send_copy_result(req, "CopyPartResult", util_now_ms(), m.etag);
    return;
fail:
    if (fd >= 0)
        close(fd);
    s3__send_error(req, &e);
}

/* ---- buckets ---------------------------------------------------------------------------- */

void s3__op_create_bucket(struct http_req *req, struct s3_req *r)
{
    (void)r;
    /* acervo's buckets always exist and are shared by every key: "you" own them */
    s3__fail(req, ERR_CONFLICT,
             "BucketAlreadyOwnedByYou: Your previous request to create the named bucket "
             "succeeded and you already own it.");
}

void s3__op_get_location(struct http_req *req, struct s3_req *r)
{
    const char *region = r->ctx->cfg->s3_region;
    struct buf b;

    buf_init(&b, 0);
    buf_adds(&b, S3_XML_HEADER "<LocationConstraint xmlns=\"" S3_NS "\">", NULL);
    /* S3 names us-east-1 by an empty constraint, and clients expect that */
    if (strcmp(region, "us-east-1") != 0)
        s3__xml_str(&b, region, 0);
    buf_adds(&b, "</LocationConstraint>", NULL);
    s3__send_xml(req, 200, &b);
}

/* a key's object must exist for a sub-resource of it to be answered */
static int object_exists(struct http_req *req, struct s3_req *r)
{
    struct store_meta m;
    struct err e;

    if (!r->key || store_object_stat(r->ctx->store, r->bucket, r->key, &m, &e) == 0)
        return 1;
    if (e.code == ERR_NOTFOUND)
        err_set(&e, ERR_NOTFOUND, "NoSuchKey: The specified key does not exist.");
    s3__send_error(req, &e);
    return 0;
}

void s3__op_get_acl(struct http_req *req, struct s3_req *r)
{
    struct buf b;

    if (!object_exists(req, r))
        return;
    buf_init(&b, 0);
    buf_adds(&b,
             S3_XML_HEADER
             "<AccessControlPolicy xmlns=\"" S3_NS "\"><Owner><ID>" S3_OWNER_ID
             "</ID><DisplayName>" S3_OWNER_NAME "</DisplayName></Owner><AccessControlList>"
             "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
             "xsi:type=\"CanonicalUser\"><ID>" S3_OWNER_ID "</ID><DisplayName>" S3_OWNER_NAME
             "</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"
             "</AccessControlList></AccessControlPolicy>",
             NULL);
    s3__send_xml(req, 200, &b);
}

void s3__op_static(struct http_req *req, struct s3_req *r)
{
    struct buf b;

    if (!object_exists(req, r))
        return;
    buf_init(&b, 0);
    buf_adds(&b, S3_XML_HEADER, NULL);
    buf_adds(&b, r->key ? r->sub->object_answer : r->sub->bucket_answer, NULL);
    s3__send_xml(req, 200, &b);
}
