/*
 * The S3-compatible endpoint: request parsing, authentication, classification, dispatch
 * and errors. The operations live in object.c, multipart.c and list.c; bodies of
 * PutObject and UploadPart stream straight into a store writer, nothing is held whole in
 * memory.
 */
#include "s3/s3_int.h"

#include "s3/sigv4.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define S3_XML "application/xml"

/* Largest CompleteMultipartUpload body: 10000 parts of about 100 bytes each. */
#define COMPLETE_BODY_MAX (2 * 1024 * 1024)
/* Largest CreateBucket body (a CreateBucketConfiguration, read and ignored). */
#define CREATE_BUCKET_BODY_MAX (64 * 1024)

static const struct {
    const char *code;
    int status;
} s3_codes[] = {
    {"AccessDenied", 403},
    {"AuthorizationHeaderMalformed", 400},
    {"AuthorizationQueryParametersError", 400},
    {"BadDigest", 400},
    {"BucketAlreadyOwnedByYou", 409},
    {"EntityTooLarge", 400},
    {"EntityTooSmall", 400},
    {"IncompleteBody", 400},
    {"InternalError", 500},
    {"InvalidAccessKeyId", 403},
    {"InvalidArgument", 400},
    {"InvalidBucketName", 400},
    {"InvalidDigest", 400},
    {"InvalidPart", 400},
    {"InvalidPartNumber", 416},
    {"InvalidPartOrder", 400},
    {"InvalidRange", 416},
    {"InvalidRequest", 400},
    {"InvalidURI", 400},
    {"KeyConflict", 409},
    {"KeyTooLongError", 400},
    {"MalformedXML", 400},
    {"MetadataTooLarge", 400},
    {"MethodNotAllowed", 405},
    {"MissingContentLength", 411},
    {"MissingSecurityHeader", 400},
    {"NoSuchBucket", 404},
    {"NoSuchBucketPolicy", 404},
    {"NoSuchCORSConfiguration", 404},
    {"NoSuchKey", 404},
    {"NoSuchLifecycleConfiguration", 404},
    {"NoSuchPublicAccessBlockConfiguration", 404},
    {"NoSuchTagSet", 404},
    {"NoSuchUpload", 404},
    {"NoSuchWebsiteConfiguration", 404},
    {"NotImplemented", 501},
    {"ObjectLockConfigurationNotFoundError", 404},
    {"OwnershipControlsNotFoundError", 404},
    {"PreconditionFailed", 412},
    {"ReplicationConfigurationNotFoundError", 404},
    {"RequestHeaderSectionTooLarge", 400},
    {"RequestTimeTooSkewed", 403},
    {"ServerSideEncryptionConfigurationNotFoundError", 404},
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

void s3__send_error(struct http_req *req, const struct err *err)
{
    struct buf b;
    int status;
    const char *message;
    const char *code = s3_error_code(err, &status, &message);
    struct s3_req *r = req->state;

    /* not implemented is no fault; refusals are logged by the server */
    if (status >= 500 && status != 501 && err->code != ERR_BUSY)
        log_write(LOG_ERROR, "s3", "%s %s: %s", req->method, req->path, err->msg);
    buf_init(&b, 0);
    buf_adds(&b, S3_XML_HEADER "<Error><Code>", NULL);
    buf_adds(&b, code, NULL);
    buf_adds(&b, "</Code><Message>", NULL);
    s3__xml_str(&b, message, 0);
    buf_adds(&b, "</Message>", NULL);
    if (r && r->key) {
        buf_adds(&b, "<Key>", NULL);
        s3__xml_str(&b, r->key, 0);
        buf_adds(&b, "</Key>", NULL);
    }
    if (r && r->bucket && !r->key) {
        buf_adds(&b, "<BucketName>", NULL);
        s3__xml_str(&b, r->bucket, 0);
        buf_adds(&b, "</BucketName>", NULL);
    }
    buf_adds(&b, "<Resource>", NULL);
    s3__xml_str(&b, req->path, 0);
    buf_addf(&b, NULL, "</Resource><RequestId>%s</RequestId></Error>", req->id);
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_buf(req, status, S3_XML, &b);
}

void s3__fail(struct http_req *req, enum err_code c, const char *fmt, ...)
{
    struct err e;
    va_list ap;

    va_start(ap, fmt);
    err_vset(&e, c, fmt, ap);
    va_end(ap);
    s3__send_error(req, &e);
}

void s3__send_xml(struct http_req *req, int status, struct buf *b)
{
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_buf(req, status, S3_XML, b);
}

void s3__send_conflict(struct http_req *req, struct s3_req *r, const struct err *err)
{
    /* a clash with a folder of other keys says so; an object in the way is S3's 412 */
    if (strncmp(err->msg, "KeyConflict:", 12) == 0)
        s3__send_error(req, err);
    else
        s3__fail(req, ERR_PRECONDITION,
                 "PreconditionFailed: objects are immutable and %s/%s already exists", r->bucket,
                 r->key);
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
    if (presigned == 0 &&
        ((authz && strncmp(authz, "AWS ", 4) == 0) ||
         (!authz && http_query_has(req, "AWSAccessKeyId") && http_query_has(req, "Signature"))))
        return err_set(err, ERR_INVALID,
                       "InvalidRequest: The authorization mechanism you have provided is not "
                       "supported. Please use AWS4-HMAC-SHA256. (acervo does not support "
                       "Signature Version 2; sign with AWS Signature Version 4)");
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
    int rc = 0;

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
    if (sigv4_uri_decode(&b, slash + 1, strlen(slash + 1), err) < 0)
        rc = err_set(err, ERR_INVALID,
                     "InvalidArgument: the object key is not valid percent-encoded text");
    else
        r->key = arena_strndup(&req->arena, b.buf, b.len);
    buf_release(&b);
    if (rc == 0 && strlen(r->key) > STORE_KEY_MAX)
        rc = err_set(err, ERR_INVALID, "KeyTooLongError: Your key is too long");
    return rc;
}

int s3__writes_allowed(const struct s3_req *r, struct err *err)
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
int s3__reserved_key(const char *bucket, const char *key)
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
    if (r->op == OP_UPLOAD_PART || r->op == OP_UPLOAD_PART_COPY) {
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

int s3__load_upload(struct http_req *req, struct s3_req *r, struct store_upload *u, struct err *err)
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

/* ---- classification --------------------------------------------------------------- */

#define NS " xmlns=\"" S3_NS "\""

/*
 * Every sub-resource of S3's API (the bare query parameters that name an operation), and
 * what acervo answers. Reads of a configuration acervo's buckets never have answer what
 * S3 answers for a bucket without it; everything else is NotImplemented and writes
 * nothing. Sorted by name.
 */
static const struct s3_subresource subresources[] = {
    {"abac", 0, 0, 0, "attribute-based access control", NULL, NULL},
    {"accelerate", OP_STATIC, 0, 0, "transfer acceleration", "<AccelerateConfiguration" NS "/>",
     NULL},
    {"acl", OP_GET_ACL, OP_GET_ACL, 0, "access is governed by acervo's roles, not ACLs", NULL,
     NULL},
    {"analytics", 0, 0, 0, "storage class analysis", NULL, NULL},
    {"attributes", 0, 0, 0, "GetObjectAttributes; HEAD the object", NULL, NULL},
    {"cors", OP_ABSENT, 0, 0, "CORS is not configurable",
     "NoSuchCORSConfiguration: The CORS configuration does not exist", NULL},
    {"delete", 0, 0, 0, "objects are immutable; nothing is deleted through S3", NULL, NULL},
    {"encryption", OP_ABSENT, 0, 0, "acervo does not encrypt objects itself",
     "ServerSideEncryptionConfigurationNotFoundError: The server side encryption "
     "configuration was not found",
     NULL},
    {"intelligent-tiering", 0, 0, 0, "storage tiering", NULL, NULL},
    {"inventory", 0, 0, 0, "inventory reports", NULL, NULL},
    {"legal-hold", 0, 0, 0, "object lock (objects are immutable anyway)", NULL, NULL},
    {"lifecycle", OP_ABSENT, 0, 0, "objects are kept forever",
     "NoSuchLifecycleConfiguration: The lifecycle configuration does not exist", NULL},
    {"location", OP_GET_LOCATION, 0, 0, "the region is acervo's configuration", NULL, NULL},
    {"logging", OP_STATIC, 0, 0, "access logs are acervod's own", "<BucketLoggingStatus" NS "/>",
     NULL},
    {"metadataConfiguration", 0, 0, 0, "metadata tables", NULL, NULL},
    {"metadataInventoryTable", 0, 0, 0, "metadata tables", NULL, NULL},
    {"metadataJournalTable", 0, 0, 0, "metadata tables", NULL, NULL},
    {"metadataTable", 0, 0, 0, "metadata tables", NULL, NULL},
    {"metrics", 0, 0, 0, "request metrics (the REST API has /metrics)", NULL, NULL},
    {"notification", OP_STATIC, 0, 0, "event notifications", "<NotificationConfiguration" NS "/>",
     NULL},
    {"object-lock", OP_ABSENT, 0, 0, "object lock (objects are immutable anyway)",
     "ObjectLockConfigurationNotFoundError: Object Lock configuration does not exist for "
     "this bucket",
     NULL},
    {"ownershipControls", OP_ABSENT, 0, 0, "ownership controls",
     "OwnershipControlsNotFoundError: The bucket ownership controls were not found", NULL},
    {"policy", OP_ABSENT, 0, 0, "access is governed by acervo's roles, not policies",
     "NoSuchBucketPolicy: The bucket policy does not exist", NULL},
    {"policyStatus", OP_ABSENT, 0, 0, "access is governed by acervo's roles, not policies",
     "NoSuchBucketPolicy: The bucket policy does not exist", NULL},
    {"publicAccessBlock", OP_ABSENT, 0, 0, "nothing is public",
     "NoSuchPublicAccessBlockConfiguration: The public access block configuration was not "
     "found",
     NULL},
    {"renameObject", 0, 0, 0, "objects are immutable; a key is never renamed", NULL, NULL},
    {"replication", OP_ABSENT, 0, 0, "replication",
     "ReplicationConfigurationNotFoundError: The replication configuration was not found", NULL},
    {"requestPayment", OP_STATIC, 0, 0, "requester pays",
     "<RequestPaymentConfiguration" NS "><Payer>BucketOwner</Payer></RequestPaymentConfiguration>",
     NULL},
    {"restore", 0, 0, 0, "there is no archive storage class to restore from", NULL, NULL},
    {"retention", 0, 0, 0, "object lock (objects are immutable anyway)", NULL, NULL},
    {"select", 0, 0, 0, "S3 Select", NULL, NULL},
    {"session", 0, 0, 0, "directory bucket sessions", NULL, NULL},
    {"tagging", OP_ABSENT, OP_STATIC, 0, "acervo keeps no tags",
     "NoSuchTagSet: The TagSet does not exist", "<Tagging" NS "><TagSet/></Tagging>"},
    {"torrent", 0, 0, 0, "torrents", NULL, NULL},
    {"uploads", OP_LIST_UPLOADS, 0, OP_CREATE_UPLOAD, "multipart uploads", NULL, NULL},
    {"versioning", OP_STATIC, 0, 0, "versioning is never enabled: a key is written once",
     "<VersioningConfiguration" NS "/>", NULL},
    {"versions", 0, 0, 0, "versioning is never enabled: a key is written once", NULL, NULL},
    {"website", OP_ABSENT, 0, 0, "static websites",
     "NoSuchWebsiteConfiguration: The specified bucket does not have a website configuration",
     NULL},
};

/* Query parameters of S3 requests that are not sub-resources, also when sent bare. */
static const char *const plain_params[] = {
    "continuation-token",
    "delimiter",
    "encoding-type",
    "fetch-owner",
    "key-marker",
    "list-type",
    "marker",
    "max-keys",
    "max-parts",
    "max-uploads",
    "part-number-marker",
    "partNumber",
    "prefix",
    "select-type",
    "start-after",
    "upload-id-marker",
    "uploadId",
    "version-id-marker",
    "versionId",
    "x-id",
    "AWSAccessKeyId",
    "Expires",
    "Signature",
};

static int param_is(const char *name, size_t len, const char *what)
{
    return strlen(what) == len && memcmp(name, what, len) == 0;
}

static const struct s3_subresource *subresource_find(const char *name, size_t len)
{
    for (size_t i = 0; i < ARRAY_LEN(subresources); i++)
        if (param_is(name, len, subresources[i].name))
            return &subresources[i];
    return NULL;
}

static int plain_param(const char *name, size_t len)
{
    if ((len > 9 && strncmp(name, "response-", 9) == 0) ||
        (len > 6 && strncasecmp(name, "x-amz-", 6) == 0))
        return 1;
    for (size_t i = 0; i < ARRAY_LEN(plain_params); i++)
        if (param_is(name, len, plain_params[i]))
            return 1;
    return 0;
}

/*
 * Finds the sub-resource the query names (r->sub). Two different ones are InvalidRequest;
 * a bare parameter that is neither a sub-resource nor a parameter S3 knows is taken for a
 * sub-resource acervo does not know: NotImplemented, never a plain request.
 */
static int scan_query(struct http_req *req, struct s3_req *r, struct err *err)
{
    const char *q = req->query;

    while (*q) {
        const char *amp = strchr(q, '&');
        size_t seg = amp ? (size_t)(amp - q) : strlen(q);
        const char *eq = memchr(q, '=', seg);
        size_t len = eq ? (size_t)(eq - q) : seg;
        const struct s3_subresource *sub = len ? subresource_find(q, len) : NULL;

        if (sub && r->sub && r->sub != sub)
            return err_set(err, ERR_INVALID,
                           "InvalidRequest: the request names two sub-resources, ?%s and ?%s",
                           r->sub->name, sub->name);
        if (sub)
            r->sub = sub;
        else if (len && !eq && !plain_param(q, len))
            return err_set(err, ERR_UNSUPPORTED,
                           "NotImplemented: ?%.*s is not a sub-resource acervo implements",
                           (int)(len > 64 ? 64 : len), q);
        q += seg + (amp ? 1 : 0);
    }
    return 0;
}

static enum s3_op classify(struct http_req *req, struct s3_req *r)
{
    const char *m = req->method;
    int get = strcmp(m, "GET") == 0, head = strcmp(m, "HEAD") == 0;
    int put = strcmp(m, "PUT") == 0, post = strcmp(m, "POST") == 0;
    int copy = http_header(req, "x-amz-copy-source") != NULL;

    if (r->sub) {
        if (get && r->bucket && !r->key)
            return r->sub->bucket_get;
        if (get && r->key)
            return r->sub->object_get;
        if (post && r->key)
            return r->sub->object_post;
        return OP_NOT_IMPLEMENTED;
    }
    if (!r->bucket)
        return get ? OP_LIST_BUCKETS : OP_NONE;
    if (!r->key) {
        if (head)
            return OP_HEAD_BUCKET;
        if (get)
            return OP_LIST_OBJECTS;
        if (put)
            return OP_CREATE_BUCKET;
        return post ? OP_NOT_IMPLEMENTED : OP_NONE;
    }
    if (put && (http_query_has(req, "uploadId") || http_query_has(req, "partNumber")))
        return copy ? OP_UPLOAD_PART_COPY : OP_UPLOAD_PART;
    if (put)
        return copy ? OP_COPY_OBJECT : OP_PUT_OBJECT;
    if (post)
        return http_query_has(req, "uploadId") ? OP_COMPLETE_UPLOAD : OP_NONE;
    if (strcmp(m, "DELETE") == 0)
        return http_query_has(req, "uploadId") ? OP_ABORT_UPLOAD : OP_NONE;
    if (get && http_query_has(req, "uploadId"))
        return OP_LIST_PARTS;
    if (get || head)
        return OP_GET_OBJECT;
    return OP_NONE;
}

/* why a request is not served: MethodNotAllowed or NotImplemented */
static void refuse_op(struct http_req *req, struct s3_req *r, struct err *err)
{
    if (r->op == OP_NONE && strcmp(req->method, "DELETE") == 0)
        err_set(err, ERR_METHOD,
                "MethodNotAllowed: objects and buckets are immutable; nothing is deleted "
                "through S3");
    else if (r->op == OP_NONE)
        err_set(err, ERR_METHOD, "MethodNotAllowed: %s is not supported on this resource",
                req->method);
    else if (r->sub)
        err_set(err, ERR_UNSUPPORTED, "NotImplemented: %s ?%s is not implemented by acervo (%s)",
                req->method, r->sub->name, r->sub->note);
    else
        err_set(err, ERR_UNSUPPORTED,
                "NotImplemented: %s %s is not implemented by acervo (POST uploads through HTML "
                "forms)",
                req->method, r->key ? "of an object" : "of a bucket");
}

/* a bucket name S3 would accept: 3..63 of [a-z0-9.-], starting and ending alphanumeric */
static int bucket_name_ok(const char *b)
{
    size_t n = strlen(b);

    if (n < 3 || n > 63 || b[0] == '.' || b[0] == '-' || b[n - 1] == '.' || b[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
              b[i] == '-'))
            return 0;
    return 1;
}

/* the bucket and key of the request, checked; CreateBucket of any name is answered here */
static int check_names(struct http_req *req, struct s3_req *r, struct err *err)
{
    const char *version = http_query(req, "versionId");

    if (r->bucket && store_bucket_valid(r->bucket, err) < 0) {
        if (r->op != OP_CREATE_BUCKET)
            return err_set(err, ERR_NOTFOUND, "NoSuchBucket: The specified bucket does not exist");
        if (!bucket_name_ok(r->bucket))
            return err_set(err, ERR_INVALID,
                           "InvalidBucketName: The specified bucket is not valid.");
        return err_set(err, ERR_DENIED,
                       "AccessDenied: acervo's buckets are fixed (archive, proxies, delivery); it "
                       "creates no others");
    }
    if (r->key && store_key_valid(r->key, err) < 0) {
        char msg[sizeof(err->msg)];

        snprintf(msg, sizeof(msg), "%s", err->msg);
        if (!util_utf8_valid(r->key, strlen(r->key)))
            return err_set(err, ERR_INVALID,
                           "InvalidURI: Couldn't parse the specified URI: the object key is not "
                           "valid UTF-8");
        return err_set(err, ERR_INVALID, "InvalidArgument: %s", msg);
    }
    /* versioning is never enabled: the only version of an object is "null" */
    if (r->key && version && strcmp(version, "null") != 0)
        return err_set(err, ERR_INVALID, "InvalidArgument: Invalid version id specified");
    return 0;
}

/* who may do what: writes need an editor, acervo's own keys are its own */
static int check_access(struct http_req *req, struct s3_req *r, struct err *err)
{
    switch (r->op) {
    case OP_PUT_OBJECT:
    case OP_COPY_OBJECT:
    case OP_CREATE_UPLOAD:
    case OP_COMPLETE_UPLOAD:
        if (s3__reserved_key(r->bucket, r->key))
            return err_set(err, ERR_DENIED,
                           "AccessDenied: keys under archive/masters/ and archive/uploads/ are "
                           "written by acervo itself; use the REST API");
        /* fallthrough */
    case OP_UPLOAD_PART:
    case OP_UPLOAD_PART_COPY:
    case OP_ABORT_UPLOAD:
        if (s3__writes_allowed(r, err) < 0)
            return -1;
        break;
    default:
        break;
    }
    if (r->key && s3__reserved_key(r->bucket, r->key)) {
        if (r->op == OP_ABORT_UPLOAD)
            return err_set(err, ERR_DENIED,
                           "AccessDenied: an upload acervo started is aborted with DELETE "
                           "/api/v1/assets/{id}/upload");
        if ((r->op == OP_UPLOAD_PART || r->op == OP_UPLOAD_PART_COPY || r->op == OP_LIST_PARTS) &&
            rest_upload_owner(req, r, err) < 0)
            return -1;
    }
    return 0;
}

/* ---- the application ---------------------------------------------------------------------- */

static void s3_on_headers(struct http_req *req)
{
    struct s3_ctx *ctx = (struct s3_ctx *)req->app->ctx;
    struct s3_req *r = arena_alloc(&req->arena, sizeof(*r));
    struct err e;

    memset(r, 0, sizeof(*r));
    r->ctx = ctx;
    req->state = r;
    if (decode_path(req, r, &e) < 0 || scan_query(req, r, &e) < 0)
        goto fail;
    r->op = classify(req, r);
    if (r->op == OP_NONE || r->op == OP_NOT_IMPLEMENTED) {
        refuse_op(req, r, &e);
        goto fail;
    }
    if (s3_authenticate(req, r, &e) < 0 || check_names(req, r, &e) < 0 ||
        s3__refuse_headers(req, r, &e) < 0 || check_access(req, r, &e) < 0)
        goto fail;
    switch (r->op) {
    case OP_PUT_OBJECT:
        if (s3__object_headers(req, r, &e) < 0 || s3__begin_write(req, r, &e) < 0)
            goto fail;
        return;
    case OP_UPLOAD_PART:
        if (s3__begin_write(req, r, &e) < 0)
            goto fail;
        return;
    case OP_CREATE_UPLOAD:
        if (s3__object_headers(req, r, &e) < 0)
            goto fail;
        return;
    case OP_COMPLETE_UPLOAD:
        req->body_max = COMPLETE_BODY_MAX;
        return;
    case OP_CREATE_BUCKET:
        req->body_max = CREATE_BUCKET_BODY_MAX;
        return;
    default:
        return;
    }
fail:
    s3__send_error(req, &e);
}

static void s3_on_complete(struct http_req *req)
{
    struct s3_req *r = req->state;
    struct err e;

    switch (r->op) {
    case OP_LIST_BUCKETS:
        s3__op_list_buckets(req, r);
        break;
    case OP_HEAD_BUCKET:
        http_resp_header(req, "x-amz-request-id", req->id);
        http_resp_header(req, "x-amz-bucket-region", r->ctx->cfg->s3_region);
        http_send_empty(req, 200);
        break;
    case OP_CREATE_BUCKET:
        s3__op_create_bucket(req, r);
        break;
    case OP_LIST_OBJECTS:
        s3__op_list_objects(req, r);
        break;
    case OP_LIST_UPLOADS:
        s3__op_list_uploads(req, r);
        break;
    case OP_GET_LOCATION:
        s3__op_get_location(req, r);
        break;
    case OP_GET_ACL:
        s3__op_get_acl(req, r);
        break;
    case OP_STATIC:
        s3__op_static(req, r);
        break;
    case OP_ABSENT:
        err_set(&e, ERR_NOTFOUND, "%s", r->sub->bucket_answer);
        s3__send_error(req, &e);
        break;
    case OP_PUT_OBJECT:
    case OP_UPLOAD_PART:
        s3__finish_write(req, r);
        break;
    case OP_COPY_OBJECT:
        s3__op_copy_object(req, r);
        break;
    case OP_UPLOAD_PART_COPY:
        s3__op_upload_part_copy(req, r);
        break;
    case OP_CREATE_UPLOAD:
        s3__op_create_upload(req, r);
        break;
    case OP_COMPLETE_UPLOAD:
        s3__op_complete_upload(req, r);
        break;
    case OP_ABORT_UPLOAD:
        s3__op_abort_upload(req, r);
        break;
    case OP_LIST_PARTS:
        s3__op_list_parts(req, r);
        break;
    case OP_GET_OBJECT:
        s3__op_get_object(req, r);
        break;
    case OP_NONE:
    case OP_NOT_IMPLEMENTED:
        refuse_op(req, r, &e);
        s3__send_error(req, &e);
        break;
    }
}

static void s3_on_error(struct http_req *req, const struct err *err)
{
    if (!req->state) {
        struct s3_req *r = arena_alloc(&req->arena, sizeof(*r));
        memset(r, 0, sizeof(*r));
        r->ctx = (struct s3_ctx *)req->app->ctx;
        req->state = r;
    }
    s3__send_error(req, err);
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
