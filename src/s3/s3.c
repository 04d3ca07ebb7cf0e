/*
 * The S3-compatible endpoint: request parsing, authentication, dispatch and the XML of
 * each operation. Bodies of PutObject and UploadPart stream straight into a store
 * writer; nothing is held whole in memory.
 */
#include "s3/s3.h"

#include "s3/sigv4.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define XML_HEADER "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
#define S3_NS      "http://s3.amazonaws.com/doc/2006-03-01/"
#define S3_XML     "application/xml"

/* Largest CompleteMultipartUpload body: 10000 parts of about 100 bytes each. */
#define COMPLETE_BODY_MAX (2 * 1024 * 1024)

enum s3_op {
    OP_NONE,
    OP_LIST_BUCKETS,
    OP_HEAD_BUCKET,
    OP_LIST_OBJECTS,
    OP_LIST_UPLOADS,
    OP_PUT_OBJECT,
    OP_UPLOAD_PART,
    OP_CREATE_UPLOAD,
    OP_COMPLETE_UPLOAD,
    OP_ABORT_UPLOAD,
    OP_LIST_PARTS,
    OP_GET_OBJECT,
};

/* per-request state */
struct s3_req {
    struct s3_ctx *ctx;
    enum s3_op op;
    const char *bucket;
    const char *key;
    const char *upload_id;
    int part_number;
    struct cat_key principal;
    struct store_writer *writer;
    EVP_MD_CTX *sha; /* verifies a signed payload hash */
    EVP_MD_CTX *md5; /* verifies Content-MD5 */
    const char *payload_hash;
    const char *content_md5;
};

static const struct {
    const char *code;
    int status;
} s3_codes[] = {
    {"AccessDenied", 403},
    {"AuthorizationHeaderMalformed", 400},
    {"AuthorizationQueryParametersError", 400},
    {"BadDigest", 400},
    {"EntityTooLarge", 400},
    {"EntityTooSmall", 400},
    {"IncompleteBody", 400},
    {"InternalError", 500},
    {"InvalidAccessKeyId", 403},
    {"InvalidArgument", 400},
    {"InvalidBucketName", 400},
    {"InvalidDigest", 400},
    {"InvalidPart", 400},
    {"InvalidPartOrder", 400},
    {"InvalidRange", 416},
    {"InvalidRequest", 400},
    {"KeyTooLongError", 400},
    {"MalformedXML", 400},
    {"MethodNotAllowed", 405},
    {"MissingContentLength", 411},
    {"MissingSecurityHeader", 400},
    {"NoSuchBucket", 404},
    {"NoSuchKey", 404},
    {"NoSuchUpload", 404},
    {"NotImplemented", 501},
    {"PreconditionFailed", 412},
    {"RequestHeaderSectionTooLarge", 400},
    {"RequestTimeTooSkewed", 403},
    {"ServiceUnavailable", 503},
    {"SignatureDoesNotMatch", 403},
    {"XAmzContentSHA256Mismatch", 400},
};

const char *s3_error_code(const struct err *err, int *status, const char **message)
{
    const char *colon = strchr(err->msg, ':');

    *message = err->msg;
    if (colon) {
        size_t n = (size_t)(colon - err->msg);
        for (size_t i = 0; i < ARRAY_LEN(s3_codes); i++) {
            if (strlen(s3_codes[i].code) == n && memcmp(s3_codes[i].code, err->msg, n) == 0) {
                *status = s3_codes[i].status;
                *message = colon[1] == ' ' ? colon + 2 : colon + 1;
                return s3_codes[i].code;
            }
        }
    }
    switch (err->code) {
    case ERR_INVALID:
        *status = 400;
        return "InvalidArgument";
    case ERR_UNAUTH:
    case ERR_DENIED:
        *status = 403;
        return "AccessDenied";
    case ERR_NOTFOUND:
        *status = 404;
        return "NoSuchKey";
    case ERR_GONE:
        *status = 404;
        return "NoSuchUpload";
    case ERR_METHOD:
        *status = 405;
        return "MethodNotAllowed";
    case ERR_CONFLICT:
    case ERR_PRECONDITION:
        *status = 412;
        return "PreconditionFailed";
    case ERR_LIMIT:
        *status = 400;
        return "EntityTooLarge";
    case ERR_HEADERS:
        *status = 400;
        return "RequestHeaderSectionTooLarge";
    case ERR_RANGE:
        *status = 416;
        return "InvalidRange";
    case ERR_UNSUPPORTED:
        *status = 501;
        return "NotImplemented";
    case ERR_BACKEND:
        *status = 503;
        return "ServiceUnavailable";
    case ERR_BUSY:
        *status = 503;
        return "SlowDown";
    case ERR_TIMEOUT:
        *status = 400;
        return "RequestTimeout";
    case ERR_VERSION:
        *status = 505;
        return "HttpVersionNotSupported";
    default:
        *status = 500;
        return "InternalError";
    }
}

static void s3_send_error(struct http_req *req, const struct err *err)
{
    struct buf b;
    int status;
    const char *message;
    const char *code = s3_error_code(err, &status, &message);
    struct s3_req *r = req->state;

    if (status >= 500 && err->code != ERR_BUSY) /* refusals are logged by the server */
        log_write(LOG_ERROR, "s3", "%s %s: %s", req->method, req->path, err->msg);
    buf_init(&b, 0);
    buf_adds(&b, XML_HEADER "<Error><Code>", NULL);
    buf_adds(&b, code, NULL);
    buf_adds(&b, "</Code><Message>", NULL);
    buf_add_xml(&b, message, NULL);
    buf_adds(&b, "</Message>", NULL);
    if (r && r->key) {
        buf_adds(&b, "<Key>", NULL);
        buf_add_xml(&b, r->key, NULL);
        buf_adds(&b, "</Key>", NULL);
    }
    if (r && r->bucket && !r->key) {
        buf_adds(&b, "<BucketName>", NULL);
        buf_add_xml(&b, r->bucket, NULL);
        buf_adds(&b, "</BucketName>", NULL);
    }
    buf_adds(&b, "<Resource>", NULL);
    buf_add_xml(&b, req->path, NULL);
    buf_addf(&b, NULL, "</Resource><RequestId>%s</RequestId></Error>", req->id);
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_buf(req, status, S3_XML, &b);
}

static void s3_fail(struct http_req *req, enum err_code c, const char *fmt, ...) ATTR_PRINTF(3, 4);

static void s3_fail(struct http_req *req, enum err_code c, const char *fmt, ...)
{
    struct err e;
    va_list ap;

    va_start(ap, fmt);
    err_vset(&e, c, fmt, ap);
    va_end(ap);
    s3_send_error(req, &e);
}

static void s3_send_xml(struct http_req *req, int status, struct buf *b)
{
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_buf(req, status, S3_XML, b);
}

static const char *sigv4_header_cb(void *ctx, const char *name)
{
    return http_header_joined(ctx, name);
}

/* ---- access keys: a small direct-mapped cache in front of the catalog ------------------ */

#define KEY_CACHE_SLOTS 512

struct key_slot {
    struct cat_key key;
    int64_t expires_ms; /* monotonic; 0: empty */
};

struct s3_key_cache {
    pthread_rwlock_t lock;
    struct key_slot slots[KEY_CACHE_SLOTS];
};

static size_t key_slot_of(const char *access_key)
{
    uint32_t h = 2166136261u;

    for (const char *p = access_key; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return h % KEY_CACHE_SLOTS;
}

/* the key for an access key, from the cache or the catalog */
static int key_lookup(struct s3_ctx *ctx, const char *access_key, struct cat_key *out,
                      struct err *err)
{
    struct s3_key_cache *c = ctx->keys;
    struct key_slot *slot = &c->slots[key_slot_of(access_key)];
    int64_t now = util_mono_ms();
    int hit = 0;

    pthread_rwlock_rdlock(&c->lock);
    if (slot->expires_ms > now && strcmp(slot->key.s3_access_key, access_key) == 0) {
        *out = slot->key;
        hit = 1;
    }
    pthread_rwlock_unlock(&c->lock);
    if (hit)
        return 0;
    if (cat_key_by_access_key(ctx->cat, access_key, out, err) < 0)
        return -1;
    pthread_rwlock_wrlock(&c->lock);
    slot->key = *out;
    slot->expires_ms = now + S3_KEY_CACHE_TTL_MS;
    pthread_rwlock_unlock(&c->lock);
    return 0;
}

/* ---- authentication ---------------------------------------------------------------- */

static int s3_authenticate(struct http_req *req, struct s3_req *r, struct err *err)
{
    const struct cfg *cfg = r->ctx->cfg;
    struct sigv4_request sr = {req->method, req->path, req->query, sigv4_header_cb, req, 1};
    struct sigv4_auth auth;
    const char *authz = http_header(req, "Authorization");
    int presigned = sigv4_parse_query(&sr, &auth, err);
    struct err lookup;

    if (presigned < 0)
        return -1;
    if (presigned == 1 && authz)
        return err_set(err, ERR_INVALID,
                       "InvalidArgument: Only one auth mechanism allowed; only the "
                       "X-Amz-Algorithm query parameter or the Authorization header should "
                       "be specified");
    if (presigned == 0) {
        if (!authz)
            return err_set(err, ERR_DENIED,
                           "AccessDenied: anonymous access is not allowed; sign the request "
                           "with AWS Signature Version 4");
        if (sigv4_parse_header(&sr, authz, &auth, err) < 0)
            return -1;
        r->payload_hash = http_header(req, "x-amz-content-sha256");
        if (!r->payload_hash)
            return err_set(err, ERR_INVALID,
                           "InvalidRequest: Missing required header for this request: "
                           "x-amz-content-sha256");
        if (strcmp(r->payload_hash, SIGV4_STREAMING_PAYLOAD) == 0 ||
            strncmp(r->payload_hash, "STREAMING-", 10) == 0)
            return err_set(err, ERR_UNSUPPORTED,
                           "NotImplemented: aws-chunked (streaming) payloads are not supported; "
                           "send the payload hash or UNSIGNED-PAYLOAD");
    }
    if (strcmp(auth.region, cfg->s3_region) != 0)
        return err_set(err, ERR_INVALID,
                       "AuthorizationHeaderMalformed: the region '%s' is wrong; expecting '%s'",
                       auth.region, cfg->s3_region);
    if (strcmp(auth.service, "s3") != 0)
        return err_set(err, ERR_INVALID,
                       "AuthorizationHeaderMalformed: the service '%s' is wrong; expecting 's3'",
                       auth.service);
    if (key_lookup(r->ctx, auth.access_key, &r->principal, &lookup) < 0) {
        if (lookup.code == ERR_NOTFOUND)
            return err_set(err, ERR_DENIED,
                           "InvalidAccessKeyId: The AWS Access Key Id you provided does not "
                           "exist in our records.");
        *err = lookup;
        return -1;
    }
    if (sigv4_verify(&sr, &auth, r->principal.s3_secret, presigned ? NULL : r->payload_hash,
                     util_now_ms() / 1000, cfg->clock_skew, err) < 0)
        return -1;
    if (presigned)
        r->payload_hash = NULL;
    return 0;
}

/* ---- request parsing ----------------------------------------------------------------- */

static int decode_path(struct http_req *req, struct s3_req *r, struct err *err)
{
    const char *p = req->path;
    const char *slash;
    struct buf b;

    if (*p != '/')
        return err_set(err, ERR_INVALID, "InvalidRequest: the path must start with '/'");
    p++;
    if (*p == '\0')
        return 0;
    slash = strchr(p, '/');
    r->bucket = arena_strndup(&req->arena, p, slash ? (size_t)(slash - p) : strlen(p));
    if (!slash || slash[1] == '\0')
        return 0;
    buf_init(&b, 4 * STORE_KEY_MAX);
    if (sigv4_uri_decode(&b, slash + 1, strlen(slash + 1), err) < 0) {
        buf_release(&b);
        return err_set(err, ERR_INVALID,
                       "InvalidArgument: the object key is not valid "
                       "percent-encoded text");
    }
    r->key = arena_strndup(&req->arena, b.buf, b.len);
    buf_release(&b);
    if (strlen(r->key) > STORE_KEY_MAX)
        return err_set(err, ERR_INVALID, "KeyTooLongError: Your key is too long");
    return 0;
}

static int writes_allowed(struct s3_req *r, struct err *err)
{
    if (r->principal.role < ROLE_EDITOR)
        return err_set(err, ERR_DENIED, "AccessDenied: the %s role may read but not write",
                       cat_role_name(r->principal.role));
    return 0;
}

/* 1 if key is dir or lies under dir/ */
static int key_under(const char *key, const char *dir)
{
    size_t n = strlen(dir);

    return strncmp(key, dir, n) == 0 && (key[n] == '\0' || key[n] == '/');
}

/* Keys under which acervo itself writes: masters and the staging area of its uploads
 * (the bare names too: an object "masters" would block every "masters/..." key). */
static int reserved_key(const char *bucket, const char *key)
{
    return strcmp(bucket, STORE_BUCKET_ARCHIVE) == 0 &&
           (key_under(key, "masters") || key_under(key, "uploads"));
}

/*
 * A REST upload's parts (archive/uploads/{assetId}/...) may be sent and listed only by
 * the user who started it (with the presigned URLs the API handed out) or an admin.
 */
static int rest_upload_owner(struct http_req *req, struct s3_req *r, struct err *err)
{
    char asset_id[37];
    struct cat_upload u;
    const char *upload_id = http_query(req, "uploadId");
    struct err e;

    if (strncmp(r->key, "uploads/", 8) != 0 || strlen(r->key) < 8 + 36 + 1 || r->key[8 + 36] != '/')
        return err_set(err, ERR_DENIED, "AccessDenied: not an upload acervo started");
    memcpy(asset_id, r->key + 8, 36);
    asset_id[36] = '\0';
    if (!util_uuid_valid(asset_id) || cat_upload_get(r->ctx->cat, asset_id, &u, &e) < 0 ||
        !upload_id || strcmp(u.upload_id, upload_id) != 0)
        return err_set(err, ERR_NOTFOUND,
                       "NoSuchUpload: The specified upload does not exist. The upload ID may "
                       "be invalid, or the upload may have been aborted or completed.");
    if (r->principal.role != ROLE_ADMIN && strcmp(u.created_by, r->principal.user_id) != 0)
        return err_set(err, ERR_DENIED,
                       "AccessDenied: this upload belongs to another user; use the part URLs "
                       "its owner was given");
    if (r->op == OP_UPLOAD_PART) {
        /* once completed, the parts belong to the ingest: none may change under it */
        struct cat_asset a;
        int uploading;

        memset(&a, 0, sizeof(a));
        if (cat_asset_get(r->ctx->cat, asset_id, &a, &e) < 0)
            return err_set(err, e.code == ERR_NOTFOUND ? ERR_NOTFOUND : e.code, "%s",
                           e.code == ERR_NOTFOUND ? "NoSuchUpload: the asset is gone" : e.msg);
        uploading = strcmp(a.status, ASSET_UPLOADING) == 0;
        cat_asset_release(&a);
        if (!uploading)
            return err_set(err, ERR_NOTFOUND,
                           "NoSuchUpload: this upload was completed; its parts can no longer "
                           "change");
    }
    return 0;
}

static enum s3_op classify(struct http_req *req, struct s3_req *r)
{
    const char *m = req->method;
    int get = strcmp(m, "GET") == 0, head = strcmp(m, "HEAD") == 0;

    if (!r->bucket)
        return get ? OP_LIST_BUCKETS : OP_NONE;
    if (!r->key) {
        if (head)
            return OP_HEAD_BUCKET;
        if (get && http_query_has(req, "uploads"))
            return OP_LIST_UPLOADS;
        if (get)
            return OP_LIST_OBJECTS;
        return OP_NONE;
    }
    if (strcmp(m, "PUT") == 0)
        return http_query_has(req, "uploadId") || http_query_has(req, "partNumber") ? OP_UPLOAD_PART
                                                                                    : OP_PUT_OBJECT;
    if (strcmp(m, "POST") == 0) {
        if (http_query_has(req, "uploads"))
            return OP_CREATE_UPLOAD;
        if (http_query_has(req, "uploadId"))
            return OP_COMPLETE_UPLOAD;
        return OP_NONE;
    }
    if (strcmp(m, "DELETE") == 0)
        return http_query_has(req, "uploadId") ? OP_ABORT_UPLOAD : OP_NONE;
    if (get && http_query_has(req, "uploadId"))
        return OP_LIST_PARTS;
    if (get || head)
        return OP_GET_OBJECT;
    return OP_NONE;
}

static int load_upload(struct http_req *req, struct s3_req *r, struct store_upload *u,
                       struct err *err)
{
    const char *id = http_query(req, "uploadId");

    if (!id || !store_upload_id_valid(id))
        return err_set(err, ERR_NOTFOUND,
                       "NoSuchUpload: The specified upload does not exist. The upload ID may "
                       "be invalid, or the upload may have been aborted or completed.");
    r->upload_id = id;
    if (store_upload_get(r->ctx->store, id, u, err) < 0) {
        if (err->code == ERR_NOTFOUND)
            return err_set(err, ERR_NOTFOUND,
                           "NoSuchUpload: The specified upload does not exist. The upload ID "
                           "may be invalid, or the upload may have been aborted or completed.");
        return -1;
    }
    if (strcmp(u->bucket, r->bucket) != 0 || strcmp(u->key, r->key) != 0)
        return err_set(err, ERR_NOTFOUND,
                       "NoSuchUpload: upload %s belongs to another bucket or key", id);
    return 0;
}

/* ---- streamed bodies ------------------------------------------------------------------- */

static int s3_sink(struct http_req *req, const char *data, size_t n, struct err *err)
{
    struct s3_req *r = req->state;

    if (req->body_received > req->content_length)
        return err_set(err, ERR_INVALID, "IncompleteBody: more data than Content-Length");
    if (r->sha)
        EVP_DigestUpdate(r->sha, data, n);
    if (r->md5)
        EVP_DigestUpdate(r->md5, data, n);
    return store_writer_write(r->writer, data, n, err);
}

static int begin_write(struct http_req *req, struct s3_req *r, struct err *err)
{
    const struct cfg *cfg = r->ctx->cfg;
    int rc;

    if (req->content_length < 0)
        return err_set(err, ERR_INVALID,
                       "MissingContentLength: You must provide the Content-Length HTTP header.");
    if (req->content_length > cfg->max_object_size)
        return err_set(err, ERR_LIMIT,
                       "EntityTooLarge: Your proposed upload of %lld bytes exceeds the maximum "
                       "allowed size of %ld bytes",
                       (long long)req->content_length, cfg->max_object_size);
    if (store_content_type_valid(http_header(req, "Content-Type"), err) < 0)
        return err_set(err, ERR_INVALID, "InvalidArgument: the Content-Type header is not valid");
    if (r->op == OP_PUT_OBJECT) {
        struct store_meta m;
        struct err e2;
        if (http_header(req, "x-amz-copy-source"))
            return err_set(err, ERR_UNSUPPORTED, "NotImplemented: CopyObject is not supported");
        if (store_object_stat(r->ctx->store, r->bucket, r->key, &m, &e2) == 0)
            return err_set(err, ERR_PRECONDITION,
                           "PreconditionFailed: objects are immutable and %s/%s already exists",
                           r->bucket, r->key);
        rc = store_object_writer(r->ctx->store, r->bucket, r->key, 0, &r->writer, err);
    } else {
        struct store_upload u;
        const char *pn = http_query(req, "partNumber");
        int64_t v;
        if (!pn || util_parse_i64(pn, &v) < 0 || v < 1 || v > STORE_PART_MAX)
            return err_set(err, ERR_INVALID,
                           "InvalidArgument: Part number must be an integer between 1 and "
                           "10000, inclusive");
        r->part_number = (int)v;
        if (load_upload(req, r, &u, err) < 0)
            return -1;
        rc = store_part_writer(r->ctx->store, r->upload_id, r->part_number, 0, &r->writer, err);
    }
    if (rc < 0)
        return -1;
    if (r->payload_hash && strcmp(r->payload_hash, SIGV4_UNSIGNED_PAYLOAD) != 0) {
        r->sha = EVP_MD_CTX_new();
        EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL);
    }
    r->content_md5 = http_header(req, "Content-MD5");
    if (r->content_md5) {
        r->md5 = EVP_MD_CTX_new();
        EVP_DigestInit_ex(r->md5, EVP_md5(), NULL);
    }
    req->sink = s3_sink;
    return 0;
}

static void finish_write(struct http_req *req, struct s3_req *r)
{
    struct store_meta m;
    struct err e;
    char etag[96];
    struct store_writer *w = r->writer;

    r->writer = NULL;
    if (req->body_received != req->content_length) {
        store_writer_abort(w);
        s3_fail(req, ERR_INVALID,
                "IncompleteBody: You did not provide the number of bytes specified by the "
                "Content-Length HTTP header");
        return;
    }
    if (r->sha) {
        unsigned char md[32];
        char hex[65];
        unsigned int len = 0;
        EVP_DigestFinal_ex(r->sha, md, &len);
        util_hex(md, 32, hex);
        if (strcasecmp(hex, r->payload_hash) != 0) {
            store_writer_abort(w);
            s3_fail(req, ERR_INVALID,
                    "XAmzContentSHA256Mismatch: The provided 'x-amz-content-sha256' header "
                    "does not match what was computed.");
            return;
        }
    }
    if (r->md5) {
        unsigned char md[16];
        char b64[32];
        unsigned int len = 0;
        EVP_DigestFinal_ex(r->md5, md, &len);
        util_base64(md, 16, b64);
        if (strcmp(b64, r->content_md5) != 0) {
            store_writer_abort(w);
            s3_fail(req, ERR_INVALID,
                    "BadDigest: The Content-MD5 you specified did not match what we received.");
            return;
        }
    }
    if (store_writer_commit(w, http_header(req, "Content-Type"), &m, &e) < 0) {
        if (e.code == ERR_CONFLICT)
            s3_fail(req, ERR_PRECONDITION,
                    "PreconditionFailed: objects are immutable and %s/%s already exists", r->bucket,
                    r->key);
        else
            s3_send_error(req, &e);
        return;
    }
    snprintf(etag, sizeof(etag), "\"%s\"", m.etag);
    http_resp_header(req, "ETag", etag);
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_empty(req, 200);
}

/* ---- operations -------------------------------------------------------------------------- */

static void op_list_buckets(struct http_req *req, struct s3_req *r)
{
    static const char *const buckets[] = {STORE_BUCKET_ARCHIVE, STORE_BUCKET_PROXIES,
                                          STORE_BUCKET_DELIVERY};
    struct buf b;

    buf_init(&b, 0);
    buf_adds(&b, XML_HEADER "<ListAllMyBucketsResult xmlns=\"" S3_NS "\"><Owner><ID>", NULL);
    buf_add_xml(&b, r->principal.user_id, NULL);
    buf_adds(&b, "</ID><DisplayName>", NULL);
    buf_add_xml(&b, r->principal.name, NULL);
    buf_adds(&b, "</DisplayName></Owner><Buckets>", NULL);
    for (size_t i = 0; i < ARRAY_LEN(buckets); i++)
        buf_addf(&b, NULL,
                 "<Bucket><Name>%s</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate>"
                 "</Bucket>",
                 buckets[i]);
    buf_adds(&b, "</Buckets></ListAllMyBucketsResult>", NULL);
    s3_send_xml(req, 200, &b);
}

struct list_ctx {
    struct buf *b;
    const char *start_after;
    int max;
    int count;
    int truncated;
    char last[STORE_KEY_MAX + 1];
};

static int list_object_cb(void *ctx, const char *key, const struct store_meta *m)
{
    struct list_ctx *l = ctx;
    char ts[32];

    if (l->start_after && strcmp(key, l->start_after) <= 0)
        return 0;
    if (l->count >= l->max) {
        l->truncated = 1;
        return 1;
    }
    util_time_rfc3339_ms(m->mtime * 1000, ts);
    buf_adds(l->b, "<Contents><Key>", NULL);
    buf_add_xml(l->b, key, NULL);
    buf_addf(l->b, NULL,
             "</Key><LastModified>%s</LastModified><ETag>&quot;%s&quot;</ETag><Size>%lld</Size>"
             "<StorageClass>STANDARD</StorageClass></Contents>",
             ts, m->etag, (long long)m->size);
    snprintf(l->last, sizeof(l->last), "%s", key);
    l->count++;
    return 0;
}

static void op_list_objects(struct http_req *req, struct s3_req *r)
{
    const char *prefix = http_query(req, "prefix");
    const char *token = http_query(req, "continuation-token");
    const char *start = http_query(req, "start-after");
    const char *mk = http_query(req, "max-keys");
    struct list_ctx l = {0};
    struct buf items, b;
    struct err e;
    int64_t max = 1000;

    if (http_query(req, "delimiter")) {
        s3_fail(req, ERR_UNSUPPORTED,
                "NotImplemented: listing with a delimiter is not "
                "supported");
        return;
    }
    if (mk && (util_parse_i64(mk, &max) < 0 || max < 0 || max > 1000)) {
        s3_fail(req, ERR_INVALID, "InvalidArgument: max-keys must be between 0 and 1000");
        return;
    }
    buf_init(&items, 0);
    l.b = &items;
    l.max = (int)max;
    l.start_after = token && *token ? token : start;
    if (store_object_list(r->ctx->store, r->bucket, prefix ? prefix : "", list_object_cb, &l, &e) <
        0) {
        buf_release(&items);
        s3_send_error(req, &e);
        return;
    }
    buf_init(&b, 0);
    buf_adds(&b, XML_HEADER "<ListBucketResult xmlns=\"" S3_NS "\"><Name>", NULL);
    buf_add_xml(&b, r->bucket, NULL);
    buf_adds(&b, "</Name><Prefix>", NULL);
    buf_add_xml(&b, prefix ? prefix : "", NULL);
    buf_addf(&b, NULL, "</Prefix><KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys>", l.count, (int)max);
    buf_addf(&b, NULL, "<IsTruncated>%s</IsTruncated>", l.truncated ? "true" : "false");
    if (l.truncated) {
        buf_adds(&b, "<NextContinuationToken>", NULL);
        buf_add_xml(&b, l.last, NULL);
        buf_adds(&b, "</NextContinuationToken>", NULL);
    }
    buf_add(&b, items.buf, items.len, NULL);
    buf_adds(&b, "</ListBucketResult>", NULL);
    buf_release(&items);
    s3_send_xml(req, 200, &b);
}

struct uploads_ctx {
    struct buf *b;
    const char *prefix;
    int count;
    int show_reserved; /* admins see acervo's own uploads too */
};

static int list_upload_cb(void *ctx, const struct store_upload *u)
{
    struct uploads_ctx *l = ctx;
    char ts[32];

    if (l->prefix && strncmp(u->key, l->prefix, strlen(l->prefix)) != 0)
        return 0;
    if (!l->show_reserved && reserved_key(u->bucket, u->key))
        return 0;
    if (l->count >= 1000)
        return 1;
    util_time_rfc3339_ms(u->initiated * 1000, ts);
    buf_adds(l->b, "<Upload><Key>", NULL);
    buf_add_xml(l->b, u->key, NULL);
    buf_addf(l->b, NULL,
             "</Key><UploadId>%s</UploadId><Initiated>%s</Initiated>"
             "<StorageClass>STANDARD</StorageClass></Upload>",
             u->upload_id, ts);
    l->count++;
    return 0;
}

static void op_list_uploads(struct http_req *req, struct s3_req *r)
{
    struct buf items, b;
    struct uploads_ctx l = {&items, http_query(req, "prefix"), 0, r->principal.role == ROLE_ADMIN};
    struct err e;

    buf_init(&items, 0);
    if (store_upload_list(r->ctx->store, r->bucket, list_upload_cb, &l, &e) < 0) {
        buf_release(&items);
        s3_send_error(req, &e);
        return;
    }
    buf_init(&b, 0);
    buf_adds(&b, XML_HEADER "<ListMultipartUploadsResult xmlns=\"" S3_NS "\"><Bucket>", NULL);
    buf_add_xml(&b, r->bucket, NULL);
    buf_adds(&b, "</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>", NULL);
    buf_addf(&b, NULL, "<MaxUploads>1000</MaxUploads><IsTruncated>%s</IsTruncated>",
             l.count >= 1000 ? "true" : "false");
    buf_add(&b, items.buf, items.len, NULL);
    buf_adds(&b, "</ListMultipartUploadsResult>", NULL);
    buf_release(&items);
    s3_send_xml(req, 200, &b);
}

static void op_create_upload(struct http_req *req, struct s3_req *r)
{
    struct store_upload u;
    struct err e;
    struct buf b;

    if (store_upload_create(r->ctx->store, r->bucket, r->key, http_header(req, "Content-Type"), &u,
                            &e) < 0) {
        s3_send_error(req, &e);
        return;
    }
    buf_init(&b, 0);
    buf_adds(&b, XML_HEADER "<InitiateMultipartUploadResult xmlns=\"" S3_NS "\"><Bucket>", NULL);
    buf_add_xml(&b, r->bucket, NULL);
    buf_adds(&b, "</Bucket><Key>", NULL);
    buf_add_xml(&b, r->key, NULL);
    buf_addf(&b, NULL, "</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>",
             u.upload_id);
    s3_send_xml(req, 200, &b);
}

static void op_list_parts(struct http_req *req, struct s3_req *r)
{
    struct store_upload u;
    struct store_part *parts = NULL;
    size_t n = 0;
    struct err e;
    struct buf b;
    const char *mp = http_query(req, "max-parts");
    const char *marker = http_query(req, "part-number-marker");
    int64_t max = 1000, after = 0;
    int shown = 0, last = 0, truncated = 0;

    if ((mp && (util_parse_i64(mp, &max) < 0 || max < 0 || max > 1000)) ||
        (marker && (util_parse_i64(marker, &after) < 0 || after < 0))) {
        s3_fail(req, ERR_INVALID,
                "InvalidArgument: max-parts must be 0..1000 and "
                "part-number-marker a part number");
        return;
    }
    if (load_upload(req, r, &u, &e) < 0 ||
        store_upload_parts(r->ctx->store, u.upload_id, &parts, &n, &e) < 0) {
        s3_send_error(req, &e);
        return;
    }
    buf_init(&b, 0);
    buf_adds(&b, XML_HEADER "<ListPartsResult xmlns=\"" S3_NS "\"><Bucket>", NULL);
    buf_add_xml(&b, r->bucket, NULL);
    buf_adds(&b, "</Bucket><Key>", NULL);
    buf_add_xml(&b, r->key, NULL);
    buf_addf(&b, NULL, "</Key><UploadId>%s</UploadId><PartNumberMarker>%lld</PartNumberMarker>",
             u.upload_id, (long long)after);
    for (size_t i = 0; i < n; i++) {
        char ts[32];
        if (parts[i].number <= after)
            continue;
        if (shown >= max) {
            truncated = 1;
            break;
        }
        util_time_rfc3339_ms(parts[i].mtime * 1000, ts);
        buf_addf(&b, NULL,
                 "<Part><PartNumber>%d</PartNumber><LastModified>%s</LastModified>"
                 "<ETag>&quot;%s&quot;</ETag><Size>%lld</Size></Part>",
                 parts[i].number, ts, parts[i].etag, (long long)parts[i].size);
        last = parts[i].number;
        shown++;
    }
    buf_addf(&b, NULL,
             "<NextPartNumberMarker>%d</NextPartNumberMarker><MaxParts>%lld</MaxParts>"
             "<IsTruncated>%s</IsTruncated><StorageClass>STANDARD</StorageClass>"
             "</ListPartsResult>",
             last, (long long)max, truncated ? "true" : "false");
    free(parts);
    s3_send_xml(req, 200, &b);
}

static void op_abort_upload(struct http_req *req, struct s3_req *r)
{
    struct store_upload u;
    struct err e;

    if (load_upload(req, r, &u, &e) < 0 || store_upload_abort(r->ctx->store, u.upload_id, &e) < 0) {
        s3_send_error(req, &e);
        return;
    }
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_empty(req, 204);
}

/* the text between <tag> and </tag> inside [p, end), or NULL */
static const char *xml_text(const char *p, const char *end, const char *tag, size_t *len)
{
    char open[40], close[40];
    const char *s, *e;

    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    s = memmem(p, (size_t)(end - p), open, strlen(open));
    if (!s)
        return NULL;
    s += strlen(open);
    e = memmem(s, (size_t)(end - s), close, strlen(close));
    if (!e)
        return NULL;
    *len = (size_t)(e - s);
    return s;
}

/* parses the CompleteMultipartUpload document into refs (arena); -1 on malformed XML */
static int parse_complete(struct http_req *req, struct store_part_ref **out, size_t *count,
                          struct err *err)
{
    const char *p = req->body.buf, *end = req->body.buf + req->body.len;
    size_t cap = 16, n = 0;
    struct store_part_ref *refs = arena_alloc(&req->arena, cap * sizeof(*refs));

    if (!memmem(p, req->body.len, "<CompleteMultipartUpload", 24))
        return err_set(err, ERR_INVALID,
                       "MalformedXML: The XML you provided was not well-formed or did not "
                       "validate against our published schema.");
    for (;;) {
        const char *ps = memmem(p, (size_t)(end - p), "<Part>", 6);
        const char *pe, *t;
        size_t len;
        char num[16];
        int64_t v;

        if (!ps)
            break;
        pe = memmem(ps, (size_t)(end - ps), "</Part>", 7);
        if (!pe)
            return err_set(err, ERR_INVALID, "MalformedXML: unterminated <Part>");
        if (n >= STORE_PART_MAX)
            return err_set(err, ERR_LIMIT, "InvalidArgument: more than 10000 parts");
        if (n == cap) {
            struct store_part_ref *bigger = arena_alloc(&req->arena, 2 * cap * sizeof(*refs));
            memcpy(bigger, refs, cap * sizeof(*refs));
            refs = bigger;
            cap *= 2;
        }
        t = xml_text(ps, pe, "PartNumber", &len);
        if (!t || len == 0 || len >= sizeof(num))
            return err_set(err, ERR_INVALID, "MalformedXML: a <Part> without a <PartNumber>");
        memcpy(num, t, len);
        num[len] = '\0';
        if (util_parse_i64(num, &v) < 0 || v < 1 || v > STORE_PART_MAX)
            return err_set(err, ERR_INVALID, "InvalidArgument: part number '%s' is not 1..10000",
                           num);
        refs[n].number = (int)v;
        t = xml_text(ps, pe, "ETag", &len);
        if (!t)
            return err_set(err, ERR_INVALID, "MalformedXML: part %d has no <ETag>", (int)v);
        {
            /* ETags arrive quoted, as "..." or &quot;...&quot; */
            size_t j = 0;
            for (size_t i = 0; i < len && j + 1 < sizeof(refs[n].etag); i++) {
                if (t[i] == '"')
                    continue;
                if (t[i] == '&' && i + 6 <= len && memcmp(t + i, "&quot;", 6) == 0) {
                    i += 5;
                    continue;
                }
                refs[n].etag[j++] = t[i];
            }
            refs[n].etag[j] = '\0';
        }
        n++;
        p = pe + 7;
    }
    if (n == 0)
        return err_set(err, ERR_INVALID, "MalformedXML: the part list is empty");
    *out = refs;
    *count = n;
    return 0;
}

/* a buffered body against the signed x-amz-content-sha256 and Content-MD5 */
static int check_body_digests(struct http_req *req, struct s3_req *r, struct err *err)
{
    const char *md5_hdr = http_header(req, "Content-MD5");

    if (r->payload_hash && strcmp(r->payload_hash, SIGV4_UNSIGNED_PAYLOAD) != 0) {
        char hex[65];
        util_sha256_hex(req->body.buf, req->body.len, hex);
        if (strcasecmp(hex, r->payload_hash) != 0)
            return err_set(err, ERR_INVALID,
                           "XAmzContentSHA256Mismatch: The provided 'x-amz-content-sha256' "
                           "header does not match what was computed.");
    }
    if (md5_hdr) {
        unsigned char md[16];
        unsigned int len = 0;
        char b64[32];
        EVP_Digest(req->body.buf, req->body.len, md, &len, EVP_md5(), NULL);
        util_base64(md, 16, b64);
        if (strcmp(b64, md5_hdr) != 0)
            return err_set(err, ERR_INVALID,
                           "BadDigest: The Content-MD5 you specified did not "
                           "match what we received.");
    }
    return 0;
}

static void op_complete_upload(struct http_req *req, struct s3_req *r)
{
    struct store_upload u;
    struct store_part_ref *refs = NULL;
    struct store_staged *sg = NULL;
    struct store_meta m;
    size_t n = 0;
    struct err e;
    struct buf b;

    if (check_body_digests(req, r, &e) < 0 || load_upload(req, r, &u, &e) < 0 ||
        parse_complete(req, &refs, &n, &e) < 0 ||
        store_upload_assemble(r->ctx->store, u.upload_id, refs, n, r->ctx->cfg->min_part_size, &sg,
                              &e) < 0) {
        s3_send_error(req, &e);
        return;
    }
    if (store_staged_commit(sg, r->bucket, r->key, &m, &e) < 0) {
        store_staged_free(sg);
        if (e.code == ERR_CONFLICT)
            s3_fail(req, ERR_PRECONDITION,
                    "PreconditionFailed: objects are immutable and %s/%s already exists", r->bucket,
                    r->key);
        else
            s3_send_error(req, &e);
        return;
    }
    store_staged_free(sg);
    if (store_upload_abort(r->ctx->store, u.upload_id, &e) < 0)
        log_write(LOG_WARN, "s3", "completed upload %s but could not remove its parts: %s",
                  u.upload_id, e.msg);
    buf_init(&b, 0);
    buf_adds(&b, XML_HEADER "<CompleteMultipartUploadResult xmlns=\"" S3_NS "\"><Location>", NULL);
    buf_add_xml(&b, r->ctx->cfg->s3_public_url, NULL);
    buf_add_xml(&b, req->path, NULL);
    buf_adds(&b, "</Location><Bucket>", NULL);
    buf_add_xml(&b, r->bucket, NULL);
    buf_adds(&b, "</Bucket><Key>", NULL);
    buf_add_xml(&b, r->key, NULL);
    buf_addf(&b, NULL, "</Key><ETag>&quot;%s&quot;</ETag></CompleteMultipartUploadResult>", m.etag);
    s3_send_xml(req, 200, &b);
}

static void op_get_object(struct http_req *req, struct s3_req *r)
{
    struct store_meta m;
    struct err e;
    int fd;
    const char *ct_override = http_query(req, "response-content-type");
    const char *cd_override = http_query(req, "response-content-disposition");
    const char *cc_override = http_query(req, "response-cache-control");
    struct http_object obj;

    if (store_object_open(r->ctx->store, r->bucket, r->key, &fd, &m, &e) < 0) {
        if (e.code == ERR_NOTFOUND)
            err_set(&e, ERR_NOTFOUND, "NoSuchKey: The specified key does not exist.");
        s3_send_error(req, &e);
        return;
    }
    memset(&obj, 0, sizeof(obj));
    obj.size = m.size;
    obj.mtime = m.mtime;
    obj.etag = arena_strdup(&req->arena, m.etag);
    obj.content_type = ct_override ? ct_override : arena_strdup(&req->arena, m.content_type);
    obj.cache_control = cc_override;
    obj.disposition = cd_override;
    obj.small_max = r->ctx->cfg->sendfile_threshold;
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_object(req, fd, &obj);
}

/* ---- the application ---------------------------------------------------------------------- */

static void s3_on_headers(struct http_req *req)
{
    struct s3_ctx *ctx = (struct s3_ctx *)req->app->ctx;
    struct s3_req *r = arena_alloc(&req->arena, sizeof(*r));
    struct err e;

    r->ctx = ctx;
    req->state = r;
    if (decode_path(req, r, &e) < 0)
        goto fail;
    r->op = classify(req, r);
    if (r->op == OP_NONE) {
        err_set(&e, ERR_METHOD, "MethodNotAllowed: %s is not supported on this resource",
                req->method);
        goto fail;
    }
    if (s3_authenticate(req, r, &e) < 0)
        goto fail;
    if (r->bucket && store_bucket_valid(r->bucket, &e) < 0) {
        err_set(&e, ERR_NOTFOUND, "NoSuchBucket: The specified bucket does not exist");
        goto fail;
    }
    if (r->key && store_key_valid(r->key, &e) < 0) {
        char msg[sizeof(e.msg)];
        snprintf(msg, sizeof(msg), "%s", e.msg);
        err_set(&e, ERR_INVALID, "InvalidArgument: %s", msg);
        goto fail;
    }
    switch (r->op) {
    case OP_PUT_OBJECT:
    case OP_CREATE_UPLOAD:
    case OP_COMPLETE_UPLOAD:
        if (reserved_key(r->bucket, r->key)) {
            err_set(&e, ERR_DENIED,
                    "AccessDenied: keys under archive/masters/ and archive/uploads/ are "
                    "written by acervo itself; use the REST API");
            goto fail;
        }
        /* fallthrough */
    case OP_UPLOAD_PART:
    case OP_ABORT_UPLOAD:
        if (writes_allowed(r, &e) < 0)
            goto fail;
        break;
    default:
        break;
    }
    if (r->key && reserved_key(r->bucket, r->key)) {
        if (r->op == OP_ABORT_UPLOAD) {
            err_set(&e, ERR_DENIED,
                    "AccessDenied: an upload acervo started is aborted with DELETE "
                    "/api/v1/assets/{id}/upload");
            goto fail;
        }
        if ((r->op == OP_UPLOAD_PART || r->op == OP_LIST_PARTS) &&
            rest_upload_owner(req, r, &e) < 0)
            goto fail;
    }
    switch (r->op) {
    case OP_PUT_OBJECT:
    case OP_UPLOAD_PART:
        if (begin_write(req, r, &e) < 0)
            goto fail;
        return;
    case OP_COMPLETE_UPLOAD:
        req->body_max = COMPLETE_BODY_MAX;
        return;
    default:
        return;
    }
fail:
    s3_send_error(req, &e);
}

static void s3_on_complete(struct http_req *req)
{
    struct s3_req *r = req->state;

    switch (r->op) {
    case OP_LIST_BUCKETS:
        op_list_buckets(req, r);
        break;
    case OP_HEAD_BUCKET:
        http_resp_header(req, "x-amz-request-id", req->id);
        http_resp_header(req, "x-amz-bucket-region", r->ctx->cfg->s3_region);
        http_send_empty(req, 200);
        break;
    case OP_LIST_OBJECTS:
        op_list_objects(req, r);
        break;
    case OP_LIST_UPLOADS:
        op_list_uploads(req, r);
        break;
    case OP_PUT_OBJECT:
    case OP_UPLOAD_PART:
        finish_write(req, r);
        break;
    case OP_CREATE_UPLOAD:
        op_create_upload(req, r);
        break;
    case OP_COMPLETE_UPLOAD:
        op_complete_upload(req, r);
        break;
    case OP_ABORT_UPLOAD:
        op_abort_upload(req, r);
        break;
    case OP_LIST_PARTS:
        op_list_parts(req, r);
        break;
    case OP_GET_OBJECT:
        op_get_object(req, r);
        break;
    case OP_NONE:
        s3_fail(req, ERR_METHOD, "MethodNotAllowed: not supported");
        break;
    }
}

static void s3_on_error(struct http_req *req, const struct err *err)
{
    if (!req->state) {
        struct s3_req *r = arena_alloc(&req->arena, sizeof(*r));
        r->ctx = (struct s3_ctx *)req->app->ctx;
        req->state = r;
    }
    s3_send_error(req, err);
}

static void s3_on_free(struct http_req *req)
{
    struct s3_req *r = req->state;

    if (!r)
        return;
    store_writer_abort(r->writer);
    r->writer = NULL;
    if (r->sha)
        EVP_MD_CTX_free(r->sha);
    if (r->md5)
        EVP_MD_CTX_free(r->md5);
    r->sha = r->md5 = NULL;
}

void s3_ctx_release(struct s3_ctx *ctx)
{
    if (!ctx->keys)
        return;
    pthread_rwlock_destroy(&ctx->keys->lock);
    free(ctx->keys);
    ctx->keys = NULL;
}

void s3_app_init(struct http_app *app, struct s3_ctx *ctx)
{
    ctx->keys = xcalloc(1, sizeof(*ctx->keys));
    pthread_rwlock_init(&ctx->keys->lock, NULL);
    memset(app, 0, sizeof(*app));
    app->name = "s3";
    app->on_headers = s3_on_headers;
    app->on_complete = s3_on_complete;
    app->on_error = s3_on_error;
    app->on_free = s3_on_free;
    app->ctx = ctx;
    app->query_plus_literal = 1;
}
