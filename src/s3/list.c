/*
 * Listings on the S3 endpoint: ListBuckets, ListObjects (V1 with Marker/NextMarker, V2 with
 * continuation tokens), ListMultipartUploads and ListParts. Object listings stream from
 * the store (store_object_list_query): a page reads the metadata of its own keys only,
 * and common prefixes are rolled up by the store without walking what they cover.
 */
#include "s3/s3_int.h"

#include <stdlib.h>
#include <string.h>

/* Most entries of one page (S3's limit); larger requests get this many. */
#define PAGE_MAX 1000

#define OWNER "<ID>" S3_OWNER_ID "</ID><DisplayName>" S3_OWNER_NAME "</DisplayName>"

/*
 * The page size parameter name: absent means PAGE_MAX, above it is capped; not a
 * non-negative integer is InvalidArgument.
 */
static int page_size(struct http_req *req, const char *name, int *out, struct err *err)
{
    const char *v = http_query(req, name);
    int64_t n = PAGE_MAX;

    if (v && (util_parse_i64(v, &n) < 0 || n < 0))
        return err_set(err, ERR_INVALID,
                       "InvalidArgument: Provided %s not an integer or within integer range", name);
    *out = n > PAGE_MAX ? PAGE_MAX : (int)n;
    return 0;
}

/* encoding-type: 1 for "url", 0 when absent; anything else is InvalidArgument */
static int encoding_type(struct http_req *req, int *url, struct err *err)
{
    const char *v = http_query(req, "encoding-type");

    *url = 0;
    if (!v || !*v)
        return 0;
    if (strcmp(v, "url") != 0)
        return err_set(err, ERR_INVALID,
                       "InvalidArgument: Invalid Encoding Method specified in Request");
    *url = 1;
    return 0;
}

/*
 * A query parameter echoed in the answer: without url encoding it must be text XML can
 * carry exactly (no key can hold anything else), or the client is told to ask with
 * encoding-type=url.
 */
static int echo_param(struct http_req *req, const char *name, int url, const char **out,
                      struct err *err)
{
    const char *v = http_query(req, name);

    *out = v && *v ? v : NULL;
    if (*out && !url && !s3__xml_exact(v, strlen(v)))
        return err_set(err, ERR_INVALID,
                       "InvalidArgument: %s holds characters an XML answer cannot carry; ask "
                       "with encoding-type=url",
                       name);
    return 0;
}

/* <tag>value</tag> with value escaped (and url-encoded when url) */
static void element(struct buf *b, const char *tag, const char *value, int url)
{
    buf_addf(b, NULL, "<%s>", tag);
    s3__xml_str(b, value ? value : "", url);
    buf_addf(b, NULL, "</%s>", tag);
}

void s3__op_list_buckets(struct http_req *req, struct s3_req *r)
{
    static const char *const buckets[] = {STORE_BUCKET_ARCHIVE, STORE_BUCKET_PROXIES,
                                          STORE_BUCKET_DELIVERY};
    struct buf b;

    (void)r;
    buf_init(&b, 0);
    buf_adds(&b,
             S3_XML_HEADER "<ListAllMyBucketsResult xmlns=\"" S3_NS "\"><Owner>" OWNER
                           "</Owner><Buckets>",
             NULL);
    for (size_t i = 0; i < ARRAY_LEN(buckets); i++)
        buf_addf(&b, NULL,
                 "<Bucket><Name>%s</Name><CreationDate>2026-01-01T00:00:00.000Z</CreationDate>"
                 "</Bucket>",
                 buckets[i]);
    buf_adds(&b, "</Buckets></ListAllMyBucketsResult>", NULL);
    s3__send_xml(req, 200, &b);
}

/* ---- objects ------------------------------------------------------------------------------ */

struct list_ctx {
    struct buf contents; /* <Contents> */
    struct buf prefixes; /* <CommonPrefixes> */
    int url;
    int owner; /* an <Owner> in each <Contents> */
    int max;
    int count; /* keys and common prefixes on the page */
    int truncated;
    char last[STORE_KEY_MAX + 2]; /* the last key or common prefix on the page */
};

static int list_object_cb(void *ctx, const char *key, const struct store_meta *m)
{
    struct list_ctx *l = ctx;
    char ts[32];

    if (l->count >= l->max) {
        l->truncated = 1;
        return 1;
    }
    if (!m) {
        buf_adds(&l->prefixes, "<CommonPrefixes>", NULL);
        element(&l->prefixes, "Prefix", key, l->url);
        buf_adds(&l->prefixes, "</CommonPrefixes>", NULL);
    } else {
        util_time_rfc3339_ms(m->mtime * 1000, ts);
        buf_adds(&l->contents, "<Contents>", NULL);
        element(&l->contents, "Key", key, l->url);
        buf_addf(&l->contents, NULL,
                 "<LastModified>%s</LastModified><ETag>&quot;%s&quot;</ETag><Size>%lld</Size>", ts,
                 m->etag, (long long)m->size);
        if (l->owner)
            buf_adds(&l->contents, "<Owner>" OWNER "</Owner>", NULL);
        buf_adds(&l->contents, "<StorageClass>STANDARD</StorageClass></Contents>", NULL);
    }
    snprintf(l->last, sizeof(l->last), "%s", key);
    l->count++;
    return 0;
}

/* V2 continuation tokens are the hex of the last key or prefix a page returned */
static void token_encode(struct buf *b, const char *key)
{
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        buf_addf(b, NULL, "%02x", *p);
}

static int token_decode(struct http_req *req, const char *token, const char **key, struct err *err)
{
    size_t n = strlen(token);
    char *out;

    if (n % 2 != 0 || n / 2 > STORE_KEY_MAX + 1)
        goto bad;
    out = arena_alloc(&req->arena, n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int hi = util_hexval(token[2 * i]);
        int lo = util_hexval(token[2 * i + 1]);

        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            goto bad;
        out[i] = (char)(hi << 4 | lo);
    }
    out[n / 2] = '\0';
    *key = out;
    return 0;
bad:
    return err_set(err, ERR_INVALID,
                   "InvalidArgument: The continuation token provided is incorrect");
}

void s3__op_list_objects(struct http_req *req, struct s3_req *r)
{
    const char *list_type = http_query(req, "list-type");
    const char *token = http_query(req, "continuation-token");
    const char *fetch_owner = http_query(req, "fetch-owner");
    const char *prefix;
    const char *delimiter;
    const char *marker = NULL;
    const char *start_after = NULL;
    const char *after = NULL;
    struct store_list_query q;
    struct list_ctx l;
    struct buf b;
    struct err e;
    int v2 = list_type != NULL;
    int url;

    memset(&l, 0, sizeof(l));
    buf_init(&l.contents, 0);
    buf_init(&l.prefixes, 0);
    if (v2 && strcmp(list_type, "2") != 0) {
        err_set(&e, ERR_INVALID, "InvalidArgument: Invalid List Type specified");
        goto fail;
    }
    if (encoding_type(req, &url, &e) < 0 || page_size(req, "max-keys", &l.max, &e) < 0 ||
        echo_param(req, "prefix", url, &prefix, &e) < 0 ||
        echo_param(req, "delimiter", url, &delimiter, &e) < 0 ||
        echo_param(req, v2 ? "start-after" : "marker", url, v2 ? &start_after : &marker, &e) < 0)
        goto fail;
    if (v2 && token && *token && token_decode(req, token, &after, &e) < 0)
        goto fail;
    if (!after)
        after = v2 ? start_after : marker;
    l.url = url;
    l.owner = !v2 || (fetch_owner && strcmp(fetch_owner, "true") == 0);
    q.prefix = prefix;
    q.start_after = after;
    q.delimiter = delimiter;
    if (l.max > 0 &&
        store_object_list_query(r->ctx->store, r->bucket, &q, list_object_cb, &l, &e) < 0)
        goto fail;

    buf_init(&b, 0);
    buf_adds(&b, S3_XML_HEADER "<ListBucketResult xmlns=\"" S3_NS "\">", NULL);
    element(&b, "Name", r->bucket, 0);
    element(&b, "Prefix", prefix, url);
    if (v2) {
        if (token && *token)
            element(&b, "ContinuationToken", token, 0);
        if (start_after)
            element(&b, "StartAfter", start_after, url);
        buf_addf(&b, NULL, "<KeyCount>%d</KeyCount>", l.count);
    } else {
        element(&b, "Marker", marker, url);
        /* S3 gives NextMarker with a delimiter only; without, the last key is the marker */
        if (l.truncated && delimiter)
            element(&b, "NextMarker", l.last, url);
    }
    buf_addf(&b, NULL, "<MaxKeys>%d</MaxKeys>", l.max);
    if (delimiter)
        element(&b, "Delimiter", delimiter, url);
    buf_addf(&b, NULL, "<IsTruncated>%s</IsTruncated>", l.truncated ? "true" : "false");
    if (v2 && l.truncated) {
        buf_adds(&b, "<NextContinuationToken>", NULL);
        token_encode(&b, l.last);
        buf_adds(&b, "</NextContinuationToken>", NULL);
    }
    if (url)
        buf_adds(&b, "<EncodingType>url</EncodingType>", NULL);
    buf_add(&b, l.contents.buf, l.contents.len, NULL);
    buf_add(&b, l.prefixes.buf, l.prefixes.len, NULL);
    buf_adds(&b, "</ListBucketResult>", NULL);
    buf_release(&l.contents);
    buf_release(&l.prefixes);
    s3__send_xml(req, 200, &b);
    return;
fail:
    buf_release(&l.contents);
    buf_release(&l.prefixes);
    s3__send_error(req, &e);
}

/* ---- multipart uploads ---------------------------------------------------------------- */

struct uploads_ctx {
    struct buf uploads;
    struct buf prefixes;
    const char *prefix;
    const char *delimiter;
    const char *key_marker;
    const char *id_marker;
    int passed;        /* the upload named by upload-id-marker was met */
    int show_reserved; /* admins see acervo's own uploads too */
    int url;
    int max;
    int count;
    int truncated;
    char cp[STORE_KEY_MAX + 2];       /* the last common prefix met */
    char next_key[STORE_KEY_MAX + 2]; /* the last key or prefix on the page */
    char next_id[33];                 /* and its upload id ("" for a prefix) */
};

/* 1 if upload u lies at or before the markers (it was on an earlier page) */
static int upload_before_markers(struct uploads_ctx *l, const struct store_upload *u)
{
    int c;

    if (!l->key_marker)
        return 0;
    c = strcmp(u->key, l->key_marker);
    if (c != 0 || !l->id_marker)
        return c <= 0;
    if (!l->passed) {
        l->passed = strcmp(u->upload_id, l->id_marker) == 0;
        return 1;
    }
    return 0;
}

static int list_upload_cb(void *ctx, const struct store_upload *u)
{
    struct uploads_ctx *l = ctx;
    size_t plen = l->prefix ? strlen(l->prefix) : 0;
    const char *d;
    char ts[32];

    if ((plen && strncmp(u->key, l->prefix, plen) != 0) ||
        (!l->show_reserved && s3__reserved_key(u->bucket, u->key)) || upload_before_markers(l, u))
        return 0;
    d = l->delimiter ? strstr(u->key + plen, l->delimiter) : NULL;
    if (d) {
        size_t len = (size_t)(d - u->key) + strlen(l->delimiter);

        if (strlen(l->cp) == len && strncmp(l->cp, u->key, len) == 0)
            return 0;
        snprintf(l->cp, sizeof(l->cp), "%.*s", (int)len, u->key);
        if (l->key_marker && strcmp(l->cp, l->key_marker) <= 0)
            return 0;
    }
    if (l->count >= l->max) {
        l->truncated = 1;
        return 1;
    }
    if (d) {
        buf_adds(&l->prefixes, "<CommonPrefixes>", NULL);
        element(&l->prefixes, "Prefix", l->cp, l->url);
        buf_adds(&l->prefixes, "</CommonPrefixes>", NULL);
        snprintf(l->next_key, sizeof(l->next_key), "%s", l->cp);
        l->next_id[0] = '\0';
    } else {
        util_time_rfc3339_ms(u->initiated * 1000, ts);
        buf_adds(&l->uploads, "<Upload>", NULL);
        element(&l->uploads, "Key", u->key, l->url);
        buf_addf(&l->uploads, NULL,
                 "<UploadId>%s</UploadId><Initiator>" OWNER "</Initiator><Owner>" OWNER
                 "</Owner><StorageClass>STANDARD</StorageClass><Initiated>%s</Initiated>"
                 "</Upload>",
                 u->upload_id, ts);
        snprintf(l->next_key, sizeof(l->next_key), "%s", u->key);
        snprintf(l->next_id, sizeof(l->next_id), "%s", u->upload_id);
    }
    l->count++;
    return 0;
}

void s3__op_list_uploads(struct http_req *req, struct s3_req *r)
{
    struct uploads_ctx l;
    struct buf b;
    struct err e;

    memset(&l, 0, sizeof(l));
    buf_init(&l.uploads, 0);
    buf_init(&l.prefixes, 0);
    l.show_reserved = r->principal.role == ROLE_ADMIN;
    if (encoding_type(req, &l.url, &e) < 0 || page_size(req, "max-uploads", &l.max, &e) < 0 ||
        echo_param(req, "prefix", l.url, &l.prefix, &e) < 0 ||
        echo_param(req, "delimiter", l.url, &l.delimiter, &e) < 0 ||
        echo_param(req, "key-marker", l.url, &l.key_marker, &e) < 0 ||
        echo_param(req, "upload-id-marker", 0, &l.id_marker, &e) < 0)
        goto fail;
    if (l.max > 0 && store_upload_list(r->ctx->store, r->bucket, list_upload_cb, &l, &e) < 0)
        goto fail;

    buf_init(&b, 0);
    buf_adds(&b, S3_XML_HEADER "<ListMultipartUploadsResult xmlns=\"" S3_NS "\">", NULL);
    element(&b, "Bucket", r->bucket, 0);
    element(&b, "KeyMarker", l.key_marker, l.url);
    /* without a key marker S3 ignores the upload id marker */
    element(&b, "UploadIdMarker", l.key_marker ? l.id_marker : NULL, 0);
    if (l.truncated) {
        element(&b, "NextKeyMarker", l.next_key, l.url);
        element(&b, "NextUploadIdMarker", l.next_id, 0);
    }
    if (l.prefix)
        element(&b, "Prefix", l.prefix, l.url);
    if (l.delimiter)
        element(&b, "Delimiter", l.delimiter, l.url);
    buf_addf(&b, NULL, "<MaxUploads>%d</MaxUploads><IsTruncated>%s</IsTruncated>", l.max,
             l.truncated ? "true" : "false");
    if (l.url)
        buf_adds(&b, "<EncodingType>url</EncodingType>", NULL);
    buf_add(&b, l.uploads.buf, l.uploads.len, NULL);
    buf_add(&b, l.prefixes.buf, l.prefixes.len, NULL);
    buf_adds(&b, "</ListMultipartUploadsResult>", NULL);
    buf_release(&l.uploads);
    buf_release(&l.prefixes);
    s3__send_xml(req, 200, &b);
    return;
fail:
    buf_release(&l.uploads);
    buf_release(&l.prefixes);
    s3__send_error(req, &e);
}

void s3__op_list_parts(struct http_req *req, struct s3_req *r)
{
    struct store_upload u;
    struct store_part *parts = NULL;
    size_t n = 0;
    struct err e;
    struct buf b;
    const char *marker = http_query(req, "part-number-marker");
    int64_t after = 0;
    int max = 0;
    int shown = 0;
    int last = 0;
    int truncated = 0;
    int url;

    if (encoding_type(req, &url, &e) < 0 || page_size(req, "max-parts", &max, &e) < 0)
        goto fail;
    if (marker && *marker && (util_parse_i64(marker, &after) < 0 || after < 0)) {
        err_set(&e, ERR_INVALID, "InvalidArgument: part-number-marker must be a part number");
        goto fail;
    }
    if (s3__load_upload(req, r, &u, &e) < 0 ||
        store_upload_parts(r->ctx->store, u.upload_id, &parts, &n, &e) < 0)
        goto fail;
    buf_init(&b, 0);
    buf_adds(&b, S3_XML_HEADER "<ListPartsResult xmlns=\"" S3_NS "\">", NULL);
    element(&b, "Bucket", r->bucket, 0);
    element(&b, "Key", r->key, url);
    buf_addf(&b, NULL,
             "<UploadId>%s</UploadId><Initiator>" OWNER "</Initiator><Owner>" OWNER
             "</Owner><StorageClass>STANDARD</StorageClass>"
             "<PartNumberMarker>%lld</PartNumberMarker>",
             u.upload_id, (long long)after);
    for (size_t i = 0; i < n; i++) {
        char ts[32];

        if (parts[i].number <= after)
            continue;
        if (shown >= max) {
            truncated = max > 0;
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
             "<NextPartNumberMarker>%d</NextPartNumberMarker><MaxParts>%d</MaxParts>"
             "<IsTruncated>%s</IsTruncated>",
             last, max, truncated ? "true" : "false");
    if (url)
        buf_adds(&b, "<EncodingType>url</EncodingType>", NULL);
    buf_adds(&b, "</ListPartsResult>", NULL);
    free(parts);
    s3__send_xml(req, 200, &b);
    return;
fail:
    s3__send_error(req, &e);
}
