/*
 * Writes on the S3 endpoint: the streamed bodies of PutObject and UploadPart, and the
 * multipart operations (create, complete, abort). A body goes straight into a store
 * writer while its SHA-256 (when signed) and Content-MD5 are checked; nothing is
 * committed unless both match.
 */
#include "s3/s3_int.h"

#include "s3/sigv4.h"

#include <string.h>
#include <strings.h>

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

/* the digests a body is checked with: SHA-256 when signed, MD5 when Content-MD5 is given */
static void digests_begin(struct http_req *req, struct s3_req *r)
{
    if (r->payload_hash && strcmp(r->payload_hash, SIGV4_UNSIGNED_PAYLOAD) != 0) {
        r->sha = EVP_MD_CTX_new();
        EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL);
    }
    r->content_md5 = http_header(req, "Content-MD5");
    if (r->content_md5) {
        r->md5 = EVP_MD_CTX_new();
        EVP_DigestInit_ex(r->md5, EVP_md5(), NULL);
    }
}

int s3__begin_write(struct http_req *req, struct s3_req *r, struct err *err)
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
    if (r->op == OP_PUT_OBJECT) {
        struct store_meta m;
        struct err e2;

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
        if (s3__load_upload(req, r, &u, err) < 0)
            return -1;
        /* the length lets parts of one size go in place (see store_part_writer) */
        rc = store_part_writer(r->ctx->store, r->upload_id, r->part_number, req->content_length, 0,
                               &r->writer, err);
    }
    if (rc < 0)
        return -1;
    digests_begin(req, r);
    req->sink = s3_sink;
    return 0;
}

/* the body's digests against x-amz-content-sha256 and Content-MD5, once it is all in */
static int check_digests(struct s3_req *r, struct err *err)
{
    if (r->sha) {
        unsigned char md[32];
        char hex[65];
        unsigned int len = 0;

        EVP_DigestFinal_ex(r->sha, md, &len);
        util_hex(md, 32, hex);
        if (strcasecmp(hex, r->payload_hash) != 0)
            return err_set(err, ERR_INVALID,
                           "XAmzContentSHA256Mismatch: The provided 'x-amz-content-sha256' "
                           "header does not match what was computed.");
    }
    if (r->md5) {
        unsigned char md[16];
        char b64[32];
        unsigned int len = 0;

        EVP_DigestFinal_ex(r->md5, md, &len);
        util_base64(md, 16, b64);
        if (strcmp(b64, r->content_md5) != 0)
            return err_set(err, ERR_INVALID,
                           "BadDigest: The Content-MD5 you specified did not match what we "
                           "received.");
    }
    return 0;
}

void s3__finish_write(struct http_req *req, struct s3_req *r)
{
    struct store_meta m;
    struct err e;
    char etag[96];
    struct store_writer *w = r->writer;

    r->writer = NULL;
    if (req->body_received != req->content_length) {
        store_writer_abort(w);
        s3__fail(req, ERR_INVALID,
                 "IncompleteBody: You did not provide the number of bytes specified by the "
                 "Content-Length HTTP header");
        return;
    }
    if (check_digests(r, &e) < 0) {
        store_writer_abort(w);
        s3__send_error(req, &e);
        return;
    }
    if (store_writer_commit(w, r->content_type, r->headers, &m, &e) < 0) {
        if (e.code == ERR_CONFLICT)
            s3__send_conflict(req, r, &e);
        else
            s3__send_error(req, &e);
        return;
    }
    snprintf(etag, sizeof(etag), "\"%s\"", m.etag);
    http_resp_header(req, "ETag", etag);
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_empty(req, 200);
}

/* ---- multipart operations -------------------------------------------------------------- */

void s3__op_create_upload(struct http_req *req, struct s3_req *r)
{
    struct store_upload u;
    struct err e;
    struct buf b;

    if (store_upload_create(r->ctx->store, r->bucket, r->key, r->content_type, r->headers, &u, &e) <
        0) {
        s3__send_error(req, &e);
        return;
    }
    buf_init(&b, 0);
    buf_adds(&b, S3_XML_HEADER "<InitiateMultipartUploadResult xmlns=\"" S3_NS "\"><Bucket>", NULL);
    s3__xml_str(&b, r->bucket, 0);
    buf_adds(&b, "</Bucket><Key>", NULL);
    s3__xml_str(&b, r->key, 0);
    buf_addf(&b, NULL, "</Key><UploadId>%s</UploadId></InitiateMultipartUploadResult>",
             u.upload_id);
    s3__send_xml(req, 200, &b);
}

void s3__op_abort_upload(struct http_req *req, struct s3_req *r)
{
    struct store_upload u;
    struct err e;

    if (s3__load_upload(req, r, &u, &e) < 0 ||
        store_upload_abort(r->ctx->store, u.upload_id, &e) < 0) {
        s3__send_error(req, &e);
        return;
    }
    http_resp_header(req, "x-amz-request-id", req->id);
    http_send_empty(req, 204);
}

/*
 * The ETag of the object the listed parts make: md5 of their binary MD5s, "-", count.
 * 0 if a listed ETag is not an MD5 (then no object of ours can have it).
 */
static int refs_etag(const struct store_part_ref *refs, size_t n, char out[80])
{
    EVP_MD_CTX *md5 = EVP_MD_CTX_new();
    unsigned char d[16];
    unsigned int len = 0;
    char hex[33];
    int ok = 1;

    EVP_DigestInit_ex(md5, EVP_md5(), NULL);
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char bin[16];

        ok = strlen(refs[i].etag) == 32;
        for (size_t k = 0; ok && k < 16; k++) {
            int hi = util_hexval(refs[i].etag[2 * k]);
            int lo = util_hexval(refs[i].etag[2 * k + 1]);

            ok = hi >= 0 && lo >= 0;
            bin[k] = (unsigned char)(hi << 4 | lo);
        }
        if (ok)
            EVP_DigestUpdate(md5, bin, sizeof(bin));
    }
    EVP_DigestFinal_ex(md5, d, &len);
    EVP_MD_CTX_free(md5);
    util_hex(d, 16, hex);
    snprintf(out, 80, "%s-%zu", hex, n);
    return ok;
}

/*
 * Whether the upload is gone because it was completed with exactly these parts (a
 * concurrent or retried CompleteMultipartUpload): then the object is there with the ETag
 * they make, and S3 answers with it. 1 and *m set, or 0.
 */
static int completed_already(struct s3_req *r, const struct store_part_ref *refs, size_t n,
                             struct store_meta *m)
{
    char want[80];
    struct err e;

    return refs_etag(refs, n, want) &&
           store_object_stat(r->ctx->store, r->bucket, r->key, m, &e) == 0 &&
           strcasecmp(m->etag, want) == 0;
}

/* 1 if the request's upload no longer exists */
static int upload_gone(struct http_req *req, struct s3_req *r)
{
    struct store_upload u;
    struct err e;

    return s3__load_upload(req, r, &u, &e) < 0 && e.code == ERR_NOTFOUND;
}

static void send_completed(struct http_req *req, struct s3_req *r, const struct store_meta *m)
{
    struct buf b;

    buf_init(&b, 0);
    buf_adds(&b, S3_XML_HEADER "<CompleteMultipartUploadResult xmlns=\"" S3_NS "\"><Location>",
             NULL);
    s3__xml_str(&b, r->ctx->cfg->s3_public_url, 0);
    s3__xml_str(&b, req->path, 0);
    buf_adds(&b, "</Location><Bucket>", NULL);
    s3__xml_str(&b, r->bucket, 0);
    buf_adds(&b, "</Bucket><Key>", NULL);
    s3__xml_str(&b, r->key, 0);
    buf_addf(&b, NULL, "</Key><ETag>&quot;%s&quot;</ETag></CompleteMultipartUploadResult>",
             m->etag);
    s3__send_xml(req, 200, &b);
}

/*
 * Completion. Several requests may complete one upload at once (a client retrying, or
 * racing itself): one assembles and commits; the others either commit the same bytes
 * (the store takes an identical object as success) or find the upload gone - removed by
 * the one that won - and then answer with the object it made, or NoSuchUpload if there is
 * no such object (the upload was aborted).
 */
void s3__op_complete_upload(struct http_req *req, struct s3_req *r)
{
    struct store_upload u;
    struct store_part_ref *refs = NULL;
    struct store_staged *sg = NULL;
    struct store_meta m;
    size_t n = 0;
    struct err e;

    /* the buffered body, checked as a streamed one is */
    digests_begin(req, r);
    if (r->sha)
        EVP_DigestUpdate(r->sha, req->body.buf, req->body.len);
    if (r->md5)
        EVP_DigestUpdate(r->md5, req->body.buf, req->body.len);
    if (check_digests(r, &e) < 0 ||
        s3__complete_parse(&req->arena, req->body.buf ? req->body.buf : "", req->body.len, &refs,
                           &n, &e) < 0)
        goto fail;
    if (s3__load_upload(req, r, &u, &e) < 0 ||
        store_upload_assemble(r->ctx->store, u.upload_id, refs, n, r->ctx->cfg->min_part_size, &sg,
                              &e) < 0) {
        if (upload_gone(req, r))
            goto gone;
        goto fail;
    }
    if (store_staged_commit(sg, r->bucket, r->key, &m, &e) < 0) {
        store_staged_free(sg);
        if (e.code == ERR_CONFLICT)
            s3__send_conflict(req, r, &e);
        else
            s3__send_error(req, &e);
        return;
    }
    store_staged_free(sg);
    if (store_upload_abort(r->ctx->store, u.upload_id, &e) < 0 && e.code != ERR_NOTFOUND)
        log_write(LOG_WARN, "s3", "completed upload %s but could not remove its parts: %s",
                  u.upload_id, e.msg);
    send_completed(req, r, &m);
    return;
gone:
    if (completed_already(r, refs, n, &m)) {
        send_completed(req, r, &m);
        return;
    }
    err_set(&e, ERR_NOTFOUND,
            "NoSuchUpload: The specified upload does not exist. The upload ID may be invalid, "
            "or the upload may have been aborted or completed.");
fail:
    s3__send_error(req, &e);
}
