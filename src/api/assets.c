/*
 * api: the asset resources. An asset is created "uploading" together with a store
 * multipart upload (staging key uploads/{id}/original{ext}) whose parts the client PUTs to
 * presigned URLs; completion checks the part list and starts the ingest workflow
 * (src/jobs/workflows/ingest.c), which assembles and hashes the parts, deduplicates by
 * SHA-256, commits the master under masters/{id}/{sha256}/original{ext} and probes it.
 */
#include "api/api_int.h"
#include "jobs/jobs.h"
#include "s3/sigv4.h"

#include <string.h>

#define MIB (INT64_C(1) << 20)

static const char *const asset_types[] = {"video", "audio", "image"};
static const char *const asset_statuses[] = {ASSET_UPLOADING, ASSET_PROCESSING, ASSET_READY,
                                             ASSET_FAILED, ASSET_ARCHIVED};

/** What a direct upload holds while its body streams in. */
struct api_direct {
    char asset_id[37];
    struct cat_upload upload;
    struct store_writer *w;
    int asset_created;
    int upload_created;
    int settled; /* the asset was completed or removed: nothing to undo */
};

static int in_set(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return 1;
    return 0;
}

/* Writes ".ext" (lowercase) if filename ends in a dot and 1..10 of [A-Za-z0-9], else "". */
static void filename_ext(const char *filename, char out[12])
{
    const char *dot = strrchr(filename, '.');
    size_t n, i;

    out[0] = '\0';
    if (!dot || dot == filename)
        return;
    n = strlen(dot + 1);
    if (n < 1 || n > 10)
        return;
    for (i = 0; i < n; i++) {
        char c = dot[1 + i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            out[0] = '\0';
            return;
        }
        out[1 + i] = c;
    }
    out[0] = '.';
    out[1 + n] = '\0';
}

/* The asset type a media type implies ("video/mp4" -> "video"), or NULL. */
static const char *type_from_mime(const char *mime)
{
    static const struct {
        const char *mime, *type;
    } named[] = {
        /* registered types of media containers outside video/, audio/ and image/ */
        {"application/mxf", "video"},
        {"application/ogg", "audio"},
        {"application/vnd.apple.mpegurl", "video"},
        {"application/dash+xml", "video"},
    };

    for (size_t i = 0; i < ARRAY_LEN(asset_types); i++) {
        size_t n = strlen(asset_types[i]);
        if (strncasecmp(mime, asset_types[i], n) == 0 && mime[n] == '/')
            return asset_types[i];
    }
    for (size_t i = 0; i < ARRAY_LEN(named); i++)
        if (strcasecmp(mime, named[i].mime) == 0)
            return named[i].type;
    return NULL;
}

/* The asset type a file name's extension suggests ("clip.MXF" -> "video"), or NULL. */
static const char *type_from_filename(const char *filename)
{
    static const struct {
        const char *type, *exts;
    } by_ext[] = {
        {"video", " .mp4 .m4v .mov .qt .mxf .mkv .webm .avi .mpg .mpeg .m2v .ts .mts .m2ts .vob "
                  ".flv .wmv .asf .3gp .3g2 .dv .mj2 .ogv "},
        {"audio", " .mp3 .wav .bwf .w64 .rf64 .aif .aiff .aifc .flac .aac .m4a .ogg .oga .opus "
                  ".wma .caf .ac3 .eac3 .amr .wv .mka "},
        {"image", " .jpg .jpeg .png .tif .tiff .webp .gif .heic .heif .avif .jp2 .j2k .jxl "},
    };
    char ext[12], word[16];

    filename_ext(filename, ext);
    if (!ext[0])
        return NULL;
    snprintf(word, sizeof(word), " %s ", ext);
    for (size_t i = 0; i < ARRAY_LEN(by_ext); i++)
        if (strstr(by_ext[i].exts, word))
            return by_ext[i].type;
    return NULL;
}

/* Checks filename rules beyond length: no '/', no NUL. */
static int filename_check(const char *field, const char *s, size_t len, struct err *err)
{
    if (api__string_check(field, s, len, 1, API_FNAME_CHARS, err) < 0)
        return -1;
    if (strchr(s, '/'))
        return err_set(err, ERR_INVALID, "field '%s' must not contain '/'", field);
    return 0;
}

/*
 * Settles the asset's type: the one given, else what the media type or the file name
 * suggests, else video. Without an explicit type this is only a hint: the ingest detects
 * the real type from the content and the asset takes it (src/jobs/workflows/ingest.c).
 * *out is static.
 */
static int type_resolve(const char *given, const char *mime, const char *filename, const char **out,
                        struct err *err)
{
    if (given) {
        for (size_t i = 0; i < ARRAY_LEN(asset_types); i++)
            if (strcmp(given, asset_types[i]) == 0) {
                *out = asset_types[i];
                return 0;
            }
        return err_set(err, ERR_INVALID, "field 'type' must be video, audio or image");
    }
    *out = type_from_mime(mime);
    if (!*out)
        *out = type_from_filename(filename);
    if (!*out)
        *out = "video";
    return 0;
}

/*
 * The part size and count for size bytes: cfg->part_size, grown to the smallest multiple
 * of 1 MiB that keeps the count within STORE_PART_MAX.
 */
static int part_plan(const struct cfg *cfg, int64_t size, int64_t *part, int *count,
                     struct err *err)
{
    int64_t p = cfg->part_size > 0 ? cfg->part_size : 16 * MIB;

    if (size > STORE_OBJECT_SIZE_MAX)
        return err_set(err, ERR_LIMIT, "size %lld exceeds the largest object of %lld bytes",
                       (long long)size, (long long)STORE_OBJECT_SIZE_MAX);
    if ((size + p - 1) / p > STORE_PART_MAX) {
        int64_t need = (size + STORE_PART_MAX - 1) / STORE_PART_MAX;
        p = (need + MIB - 1) / MIB * MIB;
    }
    if (p > STORE_PART_SIZE_MAX)
        return err_set(err, ERR_LIMIT,
                       "size %lld needs parts of %lld bytes; parts are at most %lld",
                       (long long)size, (long long)p, (long long)STORE_PART_SIZE_MAX);
    *part = p;
    *count = (int)((size + p - 1) / p);
    return 0;
}

/* Reads asset id; ERR_NOTFOUND with a message that does not echo junk ids. */
static int asset_load(struct api_state *st, const char *id, struct cat_asset *a, struct err *err)
{
    memset(a, 0, sizeof(*a));
    if (!util_uuid_valid(id))
        return err_set(err, ERR_NOTFOUND, "no such asset (the id is not a UUID)");
    if (cat_asset_get(st->ctx->cat, id, a, err) < 0) {
        if (err->code == ERR_NOTFOUND)
            return err_set(err, ERR_NOTFOUND, "asset %s not found", id);
        return -1;
    }
    return 0;
}

/*
 * An upload in progress is its creator's: only that user or an admin may read its part
 * URLs, abort it or complete it (as on the S3 endpoint, rest_upload_owner in src/s3/s3.c).
 * The asset itself is no secret (viewers list it), so another editor gets 403, not 404.
 */
static int upload_owner_check(const struct api_state *st, const struct cat_asset *a,
                              struct err *err)
{
    if (st->who.role == ROLE_ADMIN || strcmp(a->created_by, st->who.user_id) == 0)
        return 0;
    return err_set(err, ERR_DENIED,
                   "the upload of asset %s belongs to the user who started it; only that user "
                   "or an admin may read, abort or complete it",
                   a->id);
}

/*
 * The title of an asset created without one: its file name without the extension
 * ("Interview 2.final.mov" -> "Interview 2.final"), as other DAMs do. A name that is all
 * extension (".mov") is kept whole. In the request's arena.
 */
static char *title_from_filename(struct http_req *req, const char *filename)
{
    const char *dot = strrchr(filename, '.');
    size_t n = dot && dot != filename ? (size_t)(dot - filename) : strlen(filename);

    return arena_strndup(&req->arena, filename, n);
}

static int require_uploading(const struct cat_asset *a, struct err *err)
{
    if (strcmp(a->status, ASSET_UPLOADING) != 0)
        return err_set(err, ERR_CONFLICT, "asset %s is %s, not uploading", a->id, a->status);
    return 0;
}

static int upload_load(struct api_state *st, const struct cat_asset *a, struct cat_upload *u,
                       struct err *err)
{
    if (cat_upload_get(st->ctx->cat, a->id, u, err) < 0) {
        if (err->code == ERR_NOTFOUND)
            return err_set(err, ERR_CONFLICT, "asset %s has no upload in progress", a->id);
        return -1;
    }
    return 0;
}

/* Presigned URL for method on bucket/key, valid presign_ttl from now. Caller frees. */
static char *presign(struct api_state *st, const char *method, const char *bucket, const char *key,
                     const char *query, int64_t now)
{
    const struct cfg *cfg = st->ctx->cfg;
    struct buf path;
    char *url;

    buf_init(&path, 0);
    buf_addf(&path, NULL, "/%s/%s", bucket, key);
    url = sigv4_presign(method, cfg->s3_public_url, path.buf, query, st->who.s3_access_key,
                        st->who.s3_secret, cfg->s3_region, now, cfg->presign_ttl);
    buf_release(&path);
    return url;
}

/* {"partNumber","url"} for part n of u. */
static int part_url_json(struct api_state *st, const struct cat_upload *u, int n, int64_t now,
                         json_t *arr, struct err *err)
{
    char q[96];
    char *url;

    snprintf(q, sizeof(q), "partNumber=%d&uploadId=%s", n, u->upload_id);
    url = presign(st, "PUT", u->bucket, u->key, q, now);
    if (!url)
        return err_set(err, ERR_INTERNAL, "presigning part %d failed", n);
    json_array_append_new(arr, json_pack("{s:i,s:s}", "partNumber", n, "url", url));
    free(url);
    return 0;
}

/* The members create and resume share. */
static json_t *upload_json(struct api_state *st, const struct cat_upload *u, int64_t now)
{
    char t[32];

    util_time_rfc3339(now + st->ctx->cfg->presign_ttl, t);
    return json_pack("{s:s,s:s,s:I,s:i,s:s}", "assetId", u->asset_id, "uploadId", u->upload_id,
                     "partSize", (json_int_t)u->part_size, "partCount", u->part_count, "expiresAt",
                     t);
}

/* ---- POST /api/v1/assets ------------------------------------------------------------------ */

#define IDEM_KEY_MAX 255 /* the longest Idempotency-Key of a create */

/* The answer to a create: 201 for the asset and upload just made, 200 for the ones made
 * before under the request's Idempotency-Key (a replay). */
static int create_respond(struct http_req *req, struct api_state *st, const struct cat_asset *a,
                          const struct cat_upload *u, int64_t now, int replayed, struct err *err)
{
    json_t *resp = upload_json(st, u, now), *parts = json_array();

    for (int n = 1; n <= u->part_count; n++) {
        if (part_url_json(st, u, n, now, parts, err) < 0) {
            json_decref(parts);
            json_decref(resp);
            return -1;
        }
    }
    json_object_set_new(resp, "parts", parts);
    json_object_set_new(resp, "asset", api__asset_json(a));
    http_resp_header(req, "Location", api__asset_path(req, a->id));
    if (replayed)
        http_resp_header(req, "Idempotent-Replayed", "true");
    api__send_json(req, replayed ? 200 : 201, resp);
    return 0;
}

/*
 * A create retried under an Idempotency-Key the user holds (k, the record): the same request
 * gets the same asset and upload, with fresh part URLs, while the upload is open.
 */
static void create_replay(struct http_req *req, struct api_state *st, const struct cat_idem *k,
                          const char *fingerprint, int64_t now)
{
    struct cat_asset a;
    struct cat_upload u;
    struct err e;

    memset(&a, 0, sizeof(a));
    if (strcmp(k->fingerprint, fingerprint) != 0) {
        err_set(&e, ERR_UNPROCESSABLE,
                "Idempotency-Key '%s' was already used for a different request (it created "
                "asset %s); a new request needs a new key",
                k->key, k->asset_id);
        goto out_err;
    }
    if (cat_asset_get(st->ctx->cat, k->asset_id, &a, &e) < 0) {
        if (e.code == ERR_NOTFOUND) /* deleted since: the key goes with it */
            err_set(&e, ERR_CONFLICT,
                    "the asset created under Idempotency-Key '%s' was just removed; send the "
                    "request again",
                    k->key);
        goto out_err;
    }
    if (strcmp(a.status, ASSET_UPLOADING) != 0) {
        http_resp_header(req, "Location", api__asset_path(req, a.id));
        err_set(&e, ERR_CONFLICT,
                "Idempotency-Key '%s' already created asset %s, whose upload is over (it is "
                "%s)",
                k->key, a.id, a.status);
        goto out_err;
    }
    if (cat_upload_get(st->ctx->cat, a.id, &u, &e) < 0) {
        if (e.code == ERR_NOTFOUND) /* completed or aborted a moment ago */
            err_set(&e, ERR_CONFLICT,
                    "asset %s, created under Idempotency-Key '%s', has no upload in progress", a.id,
                    k->key);
        goto out_err;
    }
    log_write(LOG_INFO, "api", "asset %s: create replayed for Idempotency-Key '%s'", a.id, k->key);
    if (create_respond(req, st, &a, &u, now, 1, &e) < 0)
        goto out_err;
    cat_asset_release(&a);
    return;
out_err: /* the asset the key names, for a client to act on (abort it, fetch it) */
    cat_asset_release(&a);
    {
        json_t *extra = json_pack("{s:s}", "asset_id", k->asset_id);

        http_send_problem_extra(req, &e, extra);
        json_decref(extra);
    }
}

void api__assets_create(struct http_req *req, const char *const *params)
{
    static const char *const fields[] = {
        "filename",    "size", "mime_type",          "type",        "title",
        "description", "tags", "editorial_metadata", "external_id", NULL,
    };
    struct api_state *st = api__state(req);
    const struct cfg *cfg = st->ctx->cfg;
    json_t *body = st->body, *jsize, *tags, *em_in, *em = NULL;
    const char *filename, *mime, *type_in, *type, *title, *desc, *extid;
    struct cat_asset a;
    struct cat_upload u;
    struct cat_idem k, held;
    struct store_upload up;
    int64_t size, part_size = 0, now_ms = util_now_ms(), now = now_ms / 1000;
    int part_count = 0, found = 0, pt;
    char ext[12], fingerprint[65], *em_text = NULL;
    int idem;
    struct err e;

    (void)params;
    memset(&a, 0, sizeof(a));
    memset(&u, 0, sizeof(u));
    memset(&k, 0, sizeof(k));
    idem = api__idempotency_key(req, IDEM_KEY_MAX, k.key, &e);
    if (idem < 0)
        goto out_err;
    if (api__json_known(body, fields, "", &e) < 0)
        goto out_err;
    if (api__json_string(body, "filename", 1, API_FNAME_CHARS, 0, &filename, &e) < 0)
        goto out_err;
    if (!filename) {
        err_set(&e, ERR_INVALID, "field 'filename' is required");
        goto out_err;
    }
    if (filename_check("filename", filename, strlen(filename), &e) < 0)
        goto out_err;
    jsize = json_object_get(body, "size");
    if (!jsize) {
        err_set(&e, ERR_INVALID, "field 'size' is required");
        goto out_err;
    }
    if (!json_is_integer(jsize) || json_integer_value(jsize) < 1) {
        err_set(&e, ERR_INVALID, "field 'size' must be an integer of at least 1");
        goto out_err;
    }
    size = json_integer_value(jsize);
    if (api__json_string(body, "mime_type", 1, STORE_CONTENT_TYPE_MAX, 0, &mime, &e) < 0)
        goto out_err;
    if (!mime) {
        err_set(&e, ERR_INVALID, "field 'mime_type' is required");
        goto out_err;
    }
    if (!api__mime_valid(mime)) {
        err_set(&e, ERR_INVALID, "field 'mime_type' must be a media type 'type/subtype'");
        goto out_err;
    }
    if (api__json_string(body, "type", 1, 16, API_NULLABLE, &type_in, &e) < 0 ||
        type_resolve(type_in, mime, filename, &type, &e) < 0)
        goto out_err;
    if ((pt = api__json_string(body, "title", 0, API_TITLE_CHARS, API_NULLABLE, &title, &e)) < 0 ||
        api__json_string(body, "description", 0, API_DESC_CHARS, API_NULLABLE | API_MULTILINE,
                         &desc, &e) < 0 ||
        api__json_string(body, "external_id", 1, API_EXTID_CHARS, API_NULLABLE, &extid, &e) < 0)
        goto out_err;
    tags = json_object_get(body, "tags");
    if (tags && api__tags_check("tags", tags, &e) < 0)
        goto out_err;
    em_in = json_object_get(body, "editorial_metadata");
    if (em_in && !json_is_object(em_in)) {
        err_set(&e, ERR_INVALID, "field 'editorial_metadata' must be an object");
        goto out_err;
    }
    em = em_in ? json_deep_copy(em_in) : json_object();
    if (tags)
        json_object_set(em, "tags", tags);
    if (api__editorial_check("editorial_metadata", em, &e) < 0)
        goto out_err;
    if (part_plan(cfg, size, &part_size, &part_count, &e) < 0)
        goto out_err;
    em_text = json_dumps(em, JSON_COMPACT);
    if (idem) {
        /* the request as JSON with sorted keys: a retry has the same fingerprint */
        char *canon = json_dumps(body, JSON_SORT_KEYS | JSON_COMPACT);

        util_sha256_hex(canon, strlen(canon), fingerprint);
        free(canon);
        if (cat_idem_get(st->ctx->cat, st->who.user_id, k.key, now_ms, &held, &e) == 0) {
            create_replay(req, st, &held, fingerprint, now);
            goto out;
        }
        if (e.code != ERR_NOTFOUND)
            goto out_err;
        snprintf(k.user_id, sizeof(k.user_id), "%s", st->who.user_id);
        snprintf(k.fingerprint, sizeof(k.fingerprint), "%s", fingerprint);
        k.created_at = now_ms;
        k.expires_at = now_ms + (int64_t)cfg->upload_ttl * 1000;
    }

    util_uuid7(a.id);
    snprintf(a.type, sizeof(a.type), "%s", type);
    snprintf(a.status, sizeof(a.status), "%s", ASSET_UPLOADING);
    a.external_id = arena_strdup(&req->arena, extid);
    /* no title: the file name's; an explicit null or "" means none */
    a.title =
        pt == API_ABSENT ? title_from_filename(req, filename) : arena_strdup(&req->arena, title);
    a.description = arena_strdup(&req->arena, desc);
    a.original_filename = arena_strdup(&req->arena, filename);
    a.mime_type = arena_strdup(&req->arena, mime);
    a.file_size_bytes = size;
    a.editorial_metadata = em_text;
    snprintf(a.created_by, sizeof(a.created_by), "%s", st->who.user_id);
    a.created_at = now_ms;
    a.updated_at = now_ms;

    filename_ext(filename, ext);
    snprintf(u.asset_id, sizeof(u.asset_id), "%s", a.id);
    snprintf(u.bucket, sizeof(u.bucket), "%s", STORE_BUCKET_ARCHIVE);
    snprintf(u.key, sizeof(u.key), "uploads/%s/original%s", a.id, ext);
    /* sized: parts are written in place and hashed as they arrive; a part of the wrong
     * size is refused when it is PUT */
    if (store_upload_create_sized(st->ctx->store, u.bucket, u.key, mime, part_size, size, &up, &e) <
        0)
        goto out_err;
    snprintf(u.upload_id, sizeof(u.upload_id), "%s", up.upload_id);
    u.part_size = part_size;
    u.part_count = part_count;
    snprintf(u.created_by, sizeof(u.created_by), "%s", st->who.user_id);
    u.created_at = now_ms;
    u.expires_at = now_ms + (int64_t)cfg->upload_ttl * 1000;
    /* the asset, its upload row and the key in one transaction: a crash leaves all or none
     * (a store upload without its rows is swept a day after the upload TTL) */
    if (cat_asset_create_upload(st->ctx->cat, &a, &u, idem ? &k : NULL, &found, &e) < 0)
        goto out_abort_upload;
    if (found) { /* a concurrent request with the same key got there first */
        if (store_upload_abort(st->ctx->store, u.upload_id, NULL) < 0)
            log_write(LOG_WARN, "api", "could not abort unused upload %s", u.upload_id);
        create_replay(req, st, &k, fingerprint, now);
        goto out;
    }
    api__audit(req, "asset.create", "asset", a.id,
               json_pack("{s:s,s:I,s:s,s:s,s:i,s:b}", "filename", filename, "size",
                         (json_int_t)size, "mime_type", mime, "upload_id", u.upload_id,
                         "part_count", part_count, "idempotency_key", idem));
    if (create_respond(req, st, &a, &u, now, 0, &e) < 0)
        goto out_delete_asset;
    goto out;

out_delete_asset: /* the rows go with the asset */
    if (cat_asset_delete(st->ctx->cat, a.id, ASSET_UPLOADING, NULL) < 0)
        log_write(LOG_WARN, "api", "could not remove asset %s after a failed create", a.id);
out_abort_upload:
    if (store_upload_abort(st->ctx->store, u.upload_id, NULL) < 0)
        log_write(LOG_WARN, "api", "could not abort upload %s of asset %s", u.upload_id, a.id);
out_err:
    api__send_err(req, &e);
out:
    free(em_text);
    json_decref(em);
}

/* ---- GET/DELETE /api/v1/assets/{id}/upload ------------------------------------------------ */

void api__assets_upload_get(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    struct cat_asset a;
    struct cat_upload u;
    struct store_part *parts = NULL;
    size_t n = 0, j = 0;
    int64_t now = util_now_ms() / 1000;
    json_t *resp = NULL, *received, *missing;
    struct err e;

    if (asset_load(st, params[0], &a, &e) < 0)
        goto out_err;
    if (upload_owner_check(st, &a, &e) < 0 || require_uploading(&a, &e) < 0 ||
        upload_load(st, &a, &u, &e) < 0 ||
        store_upload_parts(st->ctx->store, u.upload_id, &parts, &n, &e) < 0)
        goto out_release;
    resp = upload_json(st, &u, now);
    received = json_array();
    missing = json_array();
    json_object_set_new(resp, "received", received);
    json_object_set_new(resp, "missing", missing);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(received,
                              json_pack("{s:i,s:I,s:s}", "partNumber", parts[i].number, "size",
                                        (json_int_t)parts[i].size, "etag", parts[i].etag));
    for (int p = 1; p <= u.part_count; p++) {
        while (j < n && parts[j].number < p)
            j++;
        if (j < n && parts[j].number == p)
            continue;
        if (part_url_json(st, &u, p, now, missing, &e) < 0)
            goto out_release;
    }
    free(parts);
    cat_asset_release(&a);
    api__send_json(req, 200, resp);
    return;

out_release:
    json_decref(resp);
    free(parts);
    cat_asset_release(&a);
out_err:
    api__send_err(req, &e);
}

void api__assets_upload_abort(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    struct cat_asset a;
    struct cat_upload u;
    struct err e;
    int have_upload;

    if (asset_load(st, params[0], &a, &e) < 0)
        goto out_err;
    if (upload_owner_check(st, &a, &e) < 0 || require_uploading(&a, &e) < 0)
        goto out_release;
    have_upload = cat_upload_get(st->ctx->cat, a.id, &u, &e) == 0;
    if (!have_upload && e.code != ERR_NOTFOUND)
        goto out_release;
    /* the catalog decides first: a complete that wins the race keeps its asset (409 here),
     * and one that loses finds the asset gone and removes the master it committed */
    if (cat_asset_delete(st->ctx->cat, a.id, ASSET_UPLOADING, &e) < 0)
        goto out_release;
    if (have_upload && store_upload_abort(st->ctx->store, u.upload_id, &e) < 0 &&
        e.code != ERR_NOTFOUND)
        log_write(LOG_WARN, "api",
                  "asset %s removed but its upload %s remains: %s (the sweep "
                  "of stale uploads removes it)",
                  a.id, u.upload_id, e.msg);
    api__audit(req, "asset.abort", "asset", a.id,
               have_upload ? json_pack("{s:s}", "upload_id", u.upload_id) : NULL);
    cat_asset_release(&a);
    http_send_empty(req, 204);
    return;

out_release:
    cat_asset_release(&a);
out_err:
    api__send_err(req, &e);
}

/* ---- completion, shared by the multipart and the direct flow ------------------------------ */

/*
 * After a failed completion step: if a concurrent request completed, aborted or removed
 * the asset meanwhile, that is what the client should hear.
 */
static void race_recheck(struct api_state *st, const char *id, struct err *err)
{
    struct cat_asset now;
    struct err e2;

    memset(&now, 0, sizeof(now));
    if (cat_asset_get(st->ctx->cat, id, &now, &e2) < 0) {
        if (e2.code == ERR_NOTFOUND)
            err_set(err, ERR_NOTFOUND, "asset %s not found (it was removed meanwhile)", id);
        return;
    }
    if (strcmp(now.status, ASSET_UPLOADING) != 0)
        err_set(err, ERR_CONFLICT, "asset %s is %s, not uploading", id, now.status);
    cat_asset_release(&now);
}

/* An etag as the client sent it, without quotes. */
static void etag_bare(const char *in, char out[80])
{
    size_t n = strlen(in);

    if (n >= 2 && in[0] == '"' && in[n - 1] == '"')
        snprintf(out, 80, "%.*s", (int)(n - 2), in + 1);
    else
        snprintf(out, 80, "%s", in);
}

/*
 * Checks the client's part list against the parts received, without reading any data:
 * ascending numbers, each part present with its etag, every part but the last at least
 * min_part_size, and their sizes adding up to the declared size. The ingest workflow
 * assembles and checks again; this answers the client's mistakes at once, with the asset
 * still uploading so the client can fix them.
 */
static int parts_check(struct api_state *st, const struct cat_asset *a, const struct cat_upload *u,
                       const struct store_part_ref *refs, size_t n, struct err *err)
{
    struct store_part *parts = NULL;
    size_t np = 0, k = 0;
    int64_t total = 0;
    int rc = -1;

    if (store_upload_parts(st->ctx->store, u->upload_id, &parts, &np, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char etag[80];

        if (i > 0 && refs[i].number <= refs[i - 1].number) {
            err_set(err, ERR_INVALID,
                    "InvalidPartOrder: part numbers must ascend (part %d after %d)", refs[i].number,
                    refs[i - 1].number);
            goto out;
        }
        while (k < np && parts[k].number < refs[i].number)
            k++;
        etag_bare(refs[i].etag, etag);
        if (k == np || parts[k].number != refs[i].number) {
            err_set(err, ERR_INVALID, "InvalidPart: part %d was not uploaded", refs[i].number);
            goto out;
        }
        if (strcmp(parts[k].etag, etag) != 0) {
            err_set(err, ERR_INVALID, "InvalidPart: part %d has etag \"%s\", not the \"%s\" listed",
                    refs[i].number, parts[k].etag, etag);
            goto out;
        }
        if (i + 1 < n && parts[k].size < st->ctx->cfg->min_part_size) {
            err_set(err, ERR_LIMIT,
                    "EntityTooSmall: part %d has %lld bytes; every part but the "
                    "last needs at least %ld",
                    refs[i].number, (long long)parts[k].size, st->ctx->cfg->min_part_size);
            goto out;
        }
        total += parts[k].size;
    }
    if (total != a->file_size_bytes) {
        err_set(err, ERR_INVALID, "the listed parts hold %lld bytes, not the declared %lld",
                (long long)total, (long long)a->file_size_bytes);
        goto out;
    }
    rc = 0;
out:
    free(parts);
    return rc;
}

/* What commits with the start of the ingest: the asset leaves "uploading". */
static int complete_in_tx(struct cat_tx *tx, void *p, struct err *err)
{
    const struct cat_asset *a = p;

    return cat_tx_asset_set_status(tx, a->id, ASSET_UPLOADING, ASSET_PROCESSING, NULL, err);
}

/*
 * Completes an upload: checks the part list, then, in one transaction, moves the asset to
 * processing and starts its ingest workflow, which assembles, hashes, deduplicates and
 * probes it. Answers 202 at once whatever the size. Returns 1 if the asset left
 * "uploading", 0 if not; sends the response in every case.
 */
static int upload_finish(struct http_req *req, const struct cat_asset *a,
                         const struct cat_upload *u, const struct store_part_ref *refs, size_t n)
{
    struct api_state *st = api__state(req);
    struct jobs_start js;
    json_t *input, *parts, *resp;
    struct cat_asset done;
    char ext[12], wf_id[37], ikey[64];
    int existed = 0;
    struct err e;

    memset(&done, 0, sizeof(done));
    if (parts_check(st, a, u, refs, n, &e) < 0)
        goto out_fail;
    parts = json_array();
    for (size_t i = 0; i < n; i++) {
        char etag[80];

        etag_bare(refs[i].etag, etag);
        json_array_append_new(parts,
                              json_pack("{s:i,s:s}", "number", refs[i].number, "etag", etag));
    }
    filename_ext(a->original_filename, ext);
    input = json_pack("{s:s,s:o,s:s}", "upload_id", u->upload_id, "parts", parts, "ext", ext);
    snprintf(ikey, sizeof(ikey), "ingest:%s", a->id);
    memset(&js, 0, sizeof(js));
    js.type = "ingest";
    js.asset_id = a->id;
    js.created_by = st->who.user_id;
    js.input = input;
    js.idempotency_key = ikey;
    js.in_tx = complete_in_tx;
    js.in_tx_ctx = (void *)a;
    if (jobs_workflow_start(st->ctx->cat, &js, wf_id, &existed, &e) < 0) {
        json_decref(input);
        goto out_fail;
    }
    json_decref(input);
    if (existed) {
        /* a concurrent complete of this asset started its ingest first */
        err_set(&e, ERR_CONFLICT,
                "asset %s is processing, not uploading (completed by a "
                "concurrent request)",
                a->id);
        api__send_err(req, &e);
        return 0;
    }
    api__audit(req, "asset.complete", "asset", a->id,
               json_pack("{s:s,s:i,s:s}", "upload_id", u->upload_id, "parts", (int)n, "workflow_id",
                         wf_id));
    if (cat_asset_get(st->ctx->cat, a->id, &done, &e) < 0)
        goto out_fail;
    resp = api__asset_json(&done);
    json_object_set_new(resp, "workflow_id", json_string(wf_id));
    http_resp_header(req, "Location", api__asset_path(req, a->id));
    api__send_json(req, 202, resp);
    cat_asset_release(&done);
    return 1;

out_fail:
    race_recheck(st, a->id, &e);
    api__send_err(req, &e);
    return 0;
}

/* Parses {"parts":[{"partNumber","etag"}...]} into a heap array (caller frees). */
static int parts_parse(json_t *body, struct store_part_ref **out, size_t *n, struct err *err)
{
    static const char *const fields[] = {"parts", NULL};
    static const char *const part_fields[] = {"partNumber", "etag", NULL};
    json_t *parts = json_object_get(body, "parts"), *p;
    struct store_part_ref *refs;
    size_t i;

    if (api__json_known(body, fields, "", err) < 0)
        return -1;
    if (!parts)
        return err_set(err, ERR_INVALID, "field 'parts' is required");
    if (!json_is_array(parts))
        return err_set(err, ERR_INVALID, "field 'parts' must be an array");
    if (json_array_size(parts) < 1)
        return err_set(err, ERR_INVALID, "field 'parts' must list at least one part");
    if (json_array_size(parts) > STORE_PART_MAX)
        return err_set(err, ERR_LIMIT, "field 'parts' lists %zu parts; at most %d are allowed",
                       json_array_size(parts), STORE_PART_MAX);
    refs = xcalloc(json_array_size(parts), sizeof(*refs));
    json_array_foreach(parts, i, p)
    {
        char where[32];
        json_t *num, *etag;

        snprintf(where, sizeof(where), "parts[%zu]", i);
        if (!json_is_object(p)) {
            err_set(err, ERR_INVALID, "field '%s' must be an object", where);
            goto out_free;
        }
        if (api__json_known(p, part_fields, where, err) < 0)
            goto out_free;
        num = json_object_get(p, "partNumber");
        etag = json_object_get(p, "etag");
        if (!json_is_integer(num) || json_integer_value(num) < 1 ||
            json_integer_value(num) > STORE_PART_MAX) {
            err_set(err, ERR_INVALID, "field '%s.partNumber' must be an integer from 1 to %d",
                    where, STORE_PART_MAX);
            goto out_free;
        }
        if (!json_is_string(etag) || json_string_length(etag) < 1 ||
            json_string_length(etag) >= sizeof(refs[i].etag) ||
            strlen(json_string_value(etag)) != json_string_length(etag)) {
            err_set(err, ERR_INVALID, "field '%s.etag' must be a string of 1 to %zu bytes", where,
                    sizeof(refs[i].etag) - 1);
            goto out_free;
        }
        refs[i].number = (int)json_integer_value(num);
        snprintf(refs[i].etag, sizeof(refs[i].etag), "%s", json_string_value(etag));
    }
    *out = refs;
    *n = json_array_size(parts);
    return 0;

out_free:
    free(refs);
    return -1;
}

void api__assets_complete(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    struct store_part_ref *refs = NULL;
    struct cat_asset a;
    struct cat_upload u;
    size_t n = 0;
    struct err e;

    memset(&a, 0, sizeof(a));
    if (parts_parse(st->body, &refs, &n, &e) < 0 || asset_load(st, params[0], &a, &e) < 0 ||
        upload_owner_check(st, &a, &e) < 0 || require_uploading(&a, &e) < 0 ||
        upload_load(st, &a, &u, &e) < 0) {
        api__send_err(req, &e);
        goto out;
    }
    upload_finish(req, &a, &u, refs, n);
out:
    free(refs);
    cat_asset_release(&a);
}

/* ---- POST /api/v1/assets/direct ----------------------------------------------------------- */

/* media types that say nothing about the content */
static int generic_type(const char *mime)
{
    static const char *const generic[] = {
        "application/octet-stream", "binary/octet-stream",  "application/x-www-form-urlencoded",
        "multipart/form-data",      "application/x-binary",
    };

    for (size_t i = 0; i < ARRAY_LEN(generic); i++)
        if (strcasecmp(mime, generic[i]) == 0)
            return 1;
    return 0;
}

/* The Content-Type of the request without parameters, if it names real media, or NULL. */
static const char *request_media_type(struct http_req *req)
{
    const char *ct = http_header(req, "Content-Type");
    size_t n;
    char *mime;

    if (!ct)
        return NULL;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    n = strcspn(ct, "; \t");
    mime = arena_strndup(&req->arena, ct, n);
    if (!api__mime_valid(mime) || generic_type(mime))
        return NULL;
    return mime;
}

/*
 * How long a direct upload may take: its Content-Length at DIRECT_MIN_RATE, and at least
 * DIRECT_MIN_TTL_MS. Past that its request cannot be running (the body would have
 * stalled past idle_timeout), and its upload row expires for the sweep.
 */
#define DIRECT_MIN_TTL_MS (INT64_C(3600) * 1000)
#define DIRECT_MIN_RATE   (64 * 1024) /* bytes a second */

static int64_t direct_ttl_ms(int64_t size)
{
    int64_t t = size / DIRECT_MIN_RATE * 1000;

    return t > DIRECT_MIN_TTL_MS ? t : DIRECT_MIN_TTL_MS;
}

static int direct_sink(struct http_req *req, const char *data, size_t n, struct err *err)
{
    struct api_direct *d = api__state(req)->direct;

    if (!d || !d->w)
        return err_set(err, ERR_INTERNAL, "the upload writer is gone");
    return store_writer_write(d->w, data, n, err);
}

void api__assets_direct_begin(struct http_req *req)
{
    struct api_state *st = api__state(req);
    const struct cfg *cfg = st->ctx->cfg;
    struct api_direct *d;
    struct cat_asset a;
    struct store_upload up;
    const char *filename, *mime, *type_in, *type, *title, *desc;
    int64_t now_ms = util_now_ms();
    int found = 0;
    char ext[12];
    struct err e;

    if (api__query_string(req, "filename", 1, API_FNAME_CHARS, 0, &filename, &e) < 0)
        goto out_err;
    if (!filename) {
        err_set(&e, ERR_INVALID, "query parameter 'filename' is required");
        goto out_err;
    }
    if (filename_check("filename", filename, strlen(filename), &e) < 0)
        goto out_err;
    mime = http_query(req, "mime_type");
    if (mime && !api__mime_valid(mime)) {
        err_set(&e, ERR_INVALID,
                "query parameter 'mime_type' must be a media type "
                "'type/subtype'");
        goto out_err;
    }
    if (!mime)
        mime = request_media_type(req);
    if (!mime) /* a hint only: the ingest detects the real type from the content */
        mime = "application/octet-stream";
    type_in = http_query(req, "type");
    if (type_resolve(type_in, mime, filename, &type, &e) < 0)
        goto out_err;
    if (api__query_string(req, "title", 0, API_TITLE_CHARS, 0, &title, &e) < 0 ||
        api__query_string(req, "description", 0, API_DESC_CHARS, API_MULTILINE, &desc, &e) < 0)
        goto out_err;
    if (req->content_length < 0) {
        err_set(&e, ERR_INVALID, "Content-Length is required");
        goto out_err;
    }
    if (req->content_length == 0) {
        err_set(&e, ERR_INVALID, "the request body is empty; an asset needs at least one byte");
        goto out_err;
    }
    if (req->content_length > cfg->part_size) {
        err_set(&e, ERR_LIMIT,
                "a direct upload takes at most %ld bytes; use POST /api/v1/assets for %lld",
                cfg->part_size, (long long)req->content_length);
        goto out_err;
    }

    d = arena_alloc(&req->arena, sizeof(*d));
    st->direct = d;
    memset(&a, 0, sizeof(a));
    util_uuid7(a.id);
    snprintf(d->asset_id, sizeof(d->asset_id), "%s", a.id);
    snprintf(a.type, sizeof(a.type), "%s", type);
    snprintf(a.status, sizeof(a.status), "%s", ASSET_UPLOADING);
    /* no title: the file name's; an explicit empty title= means none */
    a.title = title ? arena_strdup(&req->arena, title) : title_from_filename(req, filename);
    a.description = arena_strdup(&req->arena, desc);
    a.original_filename = arena_strdup(&req->arena, filename);
    a.mime_type = arena_strdup(&req->arena, mime);
    a.file_size_bytes = req->content_length;
    a.editorial_metadata = arena_strdup(&req->arena, "{}");
    snprintf(a.created_by, sizeof(a.created_by), "%s", st->who.user_id);
    a.created_at = now_ms;
    a.updated_at = now_ms;

    filename_ext(filename, ext);
    snprintf(d->upload.asset_id, sizeof(d->upload.asset_id), "%s", a.id);
    snprintf(d->upload.bucket, sizeof(d->upload.bucket), "%s", STORE_BUCKET_ARCHIVE);
    snprintf(d->upload.key, sizeof(d->upload.key), "uploads/%s/original%s", a.id, ext);
    /* one part of exactly Content-Length bytes */
    if (store_upload_create_sized(st->ctx->store, d->upload.bucket, d->upload.key, mime,
                                  req->content_length, req->content_length, &up, &e) < 0)
        goto out_err;
    d->upload_created = 1;
    snprintf(d->upload.upload_id, sizeof(d->upload.upload_id), "%s", up.upload_id);
    d->upload.part_size = cfg->part_size;
    d->upload.part_count = 1;
    snprintf(d->upload.created_by, sizeof(d->upload.created_by), "%s", st->who.user_id);
    d->upload.created_at = now_ms;
    /* only this request can finish the upload: once it cannot be running any more (an API
     * process that crashed took it along), the sweep removes what it left */
    d->upload.expires_at = now_ms + direct_ttl_ms(req->content_length);
    /* the asset and its upload row in one transaction: a crash leaves both or neither */
    if (cat_asset_create_upload(st->ctx->cat, &a, &d->upload, NULL, &found, &e) < 0)
        goto out_err;
    d->asset_created = 1;
    if (store_part_writer(st->ctx->store, d->upload.upload_id, 1, -1, 0, &d->w, &e) < 0)
        goto out_err;
    api__audit(req, "asset.create", "asset", a.id,
               json_pack("{s:s,s:I,s:s,s:s,s:b}", "filename", filename, "size",
                         (json_int_t)req->content_length, "mime_type", mime, "upload_id",
                         d->upload.upload_id, "direct", 1));
    req->sink = direct_sink;
    return;

out_err:
    /* what was created is undone in on_free (api__assets_direct_free) */
    api__send_err(req, &e);
}

void api__assets_direct(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    struct api_direct *d = st->direct;
    struct store_part_ref ref;
    struct store_meta m;
    struct cat_asset a;
    struct err e;
    int rc;

    (void)params;
    if (!d || !d->w) {
        api__fail(req, ERR_INTERNAL, "the direct upload was not set up");
        return;
    }
    if (req->body_received != req->content_length) {
        api__fail(req, ERR_INVALID, "the body ended after %lld of %lld bytes",
                  (long long)req->body_received, (long long)req->content_length);
        return;
    }
    rc = store_writer_commit(d->w, NULL, NULL, &m, &e);
    d->w = NULL;
    if (rc < 0) {
        api__send_err(req, &e);
        return;
    }
    memset(&ref, 0, sizeof(ref));
    ref.number = 1;
    snprintf(ref.etag, sizeof(ref.etag), "%s", m.etag);
    if (cat_asset_get(st->ctx->cat, d->asset_id, &a, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (upload_finish(req, &a, &d->upload, &ref, 1))
        d->settled = 1;
    cat_asset_release(&a);
}

void api__assets_direct_free(struct http_req *req)
{
    struct api_state *st = api__state(req);
    struct api_direct *d = st->direct;
    struct err e;

    if (!d)
        return;
    store_writer_abort(d->w);
    d->w = NULL;
    if (d->settled)
        return;
    if (d->upload_created && store_upload_abort(st->ctx->store, d->upload.upload_id, &e) < 0 &&
        e.code != ERR_NOTFOUND)
        log_write(LOG_WARN, "api", "could not abort direct upload %s: %s", d->upload.upload_id,
                  e.msg);
    if (d->asset_created && cat_asset_delete(st->ctx->cat, d->asset_id, ASSET_UPLOADING, &e) < 0 &&
        e.code != ERR_NOTFOUND)
        log_write(LOG_WARN, "api", "could not remove unfinished asset %s: %s", d->asset_id, e.msg);
    if (d->asset_created) {
        log_write(LOG_INFO, "api", "direct upload of asset %s did not finish; removed it",
                  d->asset_id);
        api__audit(req, "asset.abort", "asset", d->asset_id,
                   json_pack("{s:s,s:I}", "reason", "the direct upload did not finish",
                             "bytes_received", (json_int_t)req->body_received));
    }
    d->settled = 1;
}

/* ---- GET/PATCH /api/v1/assets/{id} -------------------------------------------------------- */

void api__assets_get(struct http_req *req, const char *const *params)
{
    struct cat_asset a;
    struct err e;

    if (asset_load(api__state(req), params[0], &a, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    api__send_json(req, 200, api__asset_json(&a));
    cat_asset_release(&a);
}

/* RFC 7396 JSON merge patch of target (may be NULL) with patch. New reference. */
static json_t *merge_patch(json_t *target, json_t *patch)
{
    json_t *res, *v;
    const char *k;

    if (!json_is_object(patch))
        return json_deep_copy(patch);
    res = json_is_object(target) ? json_deep_copy(target) : json_object();
    json_object_foreach(patch, k, v)
    {
        if (json_is_null(v))
            json_object_del(res, k);
        else
            json_object_set_new(res, k, merge_patch(json_object_get(res, k), v));
    }
    return res;
}

/* The audit detail of a patch: the patch itself, or only its field names if it is large. */
static json_t *patch_detail(json_t *body)
{
    json_t *names, *v;
    const char *k;

    if (json_dumpb(body, NULL, 0, JSON_COMPACT) <= API_AUDIT_DETAIL_MAX)
        return json_incref(body);
    names = json_array();
    json_object_foreach(body, k, v)
    {
        json_array_append_new(names, json_string(k));
    }
    return json_pack("{s:b,s:o}", "truncated", 1, "fields", names);
}

void api__assets_patch(struct http_req *req, const char *const *params)
{
    static const char *const fields[] = {"title",    "description", "tags", "editorial_metadata",
                                         "language", NULL};
    struct api_state *st = api__state(req);
    json_t *body = st->body, *tags, *patch, *em = NULL;
    const char *title, *desc, *lang = NULL;
    char *em_text = NULL;
    struct cat_asset a, out;
    int pt, pd, pl;
    struct err e;

    memset(&a, 0, sizeof(a));
    memset(&out, 0, sizeof(out));
    if (api__json_known(body, fields, "", &e) < 0)
        goto out_err;
    pt = api__json_string(body, "title", 0, API_TITLE_CHARS, API_NULLABLE, &title, &e);
    if (pt < 0)
        goto out_err;
    pd = api__json_string(body, "description", 0, API_DESC_CHARS, API_NULLABLE | API_MULTILINE,
                          &desc, &e);
    if (pd < 0)
        goto out_err;
    /* null clears: the catalog keeps "" and the API shows null */
    if (pt == API_NULL)
        title = "";
    if (pd == API_NULL)
        desc = "";
    /* the language of the asset's text (which stemmer search uses); null clears it */
    pl = api__json_string(body, "language", 0, 15, API_NULLABLE, &lang, &e);
    if (pl < 0)
        goto out_err;
    if (pl == API_NULL)
        lang = "";
    tags = json_object_get(body, "tags");
    if (tags && api__tags_check("tags", tags, &e) < 0)
        goto out_err;
    patch = json_object_get(body, "editorial_metadata");
    if (patch && !json_is_object(patch)) {
        err_set(&e, ERR_INVALID, "field 'editorial_metadata' must be an object");
        goto out_err;
    }
    if (asset_load(st, params[0], &a, &e) < 0)
        goto out_err;
    if (tags || patch) {
        json_t *cur = a.editorial_metadata ? json_loads(a.editorial_metadata, 0, NULL) : NULL;

        em = patch                 ? merge_patch(cur, patch)
             : json_is_object(cur) ? json_incref(cur)
                                   : json_object();
        json_decref(cur);
        if (tags)
            json_object_set(em, "tags", tags);
        if (api__editorial_check("editorial_metadata", em, &e) < 0)
            goto out_err;
        em_text = json_dumps(em, JSON_COMPACT);
    }
    /* the language first: the catalog checks it, and the update below reads it back */
    if (pl != API_ABSENT &&
        cat_asset_set_enrichment(st->ctx->cat, a.id, lang, NULL, NULL, 0, 0, &e) < 0)
        goto out_err;
    if (cat_asset_update_editorial(st->ctx->cat, a.id, title, desc, em_text, &out, &e) < 0)
        goto out_err;
    api__audit(req, "asset.patch", "asset", a.id, patch_detail(body));
    api__send_json(req, 200, api__asset_json(&out));
    goto out;

out_err:
    api__send_err(req, &e);
out:
    free(em_text);
    json_decref(em);
    cat_asset_release(&a);
    cat_asset_release(&out);
}

/* ---- GET /api/v1/assets ------------------------------------------------------------------- */

struct list_ctx {
    json_t *items;
    int count;
    char last[37];
};

static int list_one(void *p, const struct cat_asset *a)
{
    struct list_ctx *l = p;

    json_array_append_new(l->items, api__asset_json(a));
    l->count++;
    snprintf(l->last, sizeof(l->last), "%s", a->id);
    return 0;
}

void api__assets_list(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    const char *type = http_query(req, "type"), *status = http_query(req, "status");
    const char *cursor = http_query(req, "cursor");
    struct cat_asset_filter f;
    struct list_ctx l;
    int64_t limit;
    json_t *resp;
    struct err e;

    (void)params;
    if (type && *type && !in_set(type, asset_types, ARRAY_LEN(asset_types))) {
        api__fail(req, ERR_INVALID, "query parameter 'type' must be video, audio or image");
        return;
    }
    if (status && *status && !in_set(status, asset_statuses, ARRAY_LEN(asset_statuses))) {
        api__fail(req, ERR_INVALID,
                  "query parameter 'status' must be one of uploading, "
                  "processing, ready, failed, archived");
        return;
    }
    if (api__query_int(req, "limit", 1, 1000, 50, &limit, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (cursor && !util_uuid_valid(cursor)) {
        api__fail(req, ERR_INVALID, "query parameter 'cursor' must be an asset id (a UUID)");
        return;
    }
    memset(&f, 0, sizeof(f));
    f.type = type ? type : "";
    f.status = status ? status : "";
    f.created_by = "";
    f.after_id = cursor ? cursor : "";
    f.limit = (int)limit;
    memset(&l, 0, sizeof(l));
    l.items = json_array();
    if (cat_asset_list(st->ctx->cat, &f, list_one, &l, &e) < 0) {
        json_decref(l.items);
        api__send_err(req, &e);
        return;
    }
    resp = json_object();
    json_object_set_new(resp, "items", l.items);
    json_object_set_new(resp, "next_cursor",
                        l.count == (int)limit && l.count > 0 ? json_string(l.last) : json_null());
    api__send_json(req, 200, resp);
}

/* ---- GET/HEAD /api/v1/assets/{id}/download ------------------------------------------------ */

/* attachment; filename="<safe ASCII>"; filename*=UTF-8''<percent-encoded> */
static const char *content_disposition(struct http_req *req, const char *name)
{
    static const char hex[] = "0123456789ABCDEF";
    struct buf b;
    const char *out;

    buf_init(&b, 0);
    buf_adds(&b, "attachment; filename=\"", NULL);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p & 0xC0) == 0x80)
            continue; /* one '_' per non-ASCII character */
        if (*p < 0x20 || *p >= 0x7f || *p == '"' || *p == '\\')
            buf_add(&b, "_", 1, NULL);
        else
            buf_add(&b, p, 1, NULL);
    }
    buf_adds(&b, "\"; filename*=UTF-8''", NULL);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("!#$&+-.^_`|~", *p)) {
            buf_add(&b, p, 1, NULL);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            buf_add(&b, enc, 3, NULL);
        }
    }
    out = arena_strndup(&req->arena, b.buf, b.len);
    buf_release(&b);
    return out;
}

/* does the request's Range start at byte 0 (a player's first request)? */
static int range_from_start(struct http_req *req, int64_t size)
{
    const char *h = http_header(req, "Range");
    struct http_range r;
    struct err e;

    return h && http_range_parse(h, size, &r, 1, &e) == 1 && r.start == 0;
}

void api__assets_download(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    const struct cfg *cfg = st->ctx->cfg;
    const char *mode = http_query(req, "mode");
    int is_get = strcmp(req->method, "GET") == 0;
    int64_t now = util_now_ms() / 1000;
    struct http_object obj;
    struct store_meta m;
    struct cat_asset a;
    char *url;
    int fd;
    struct err e;

    if (mode && (strcmp(mode, "stream") == 0 || strcmp(mode, "direct") == 0))
        mode = NULL;
    if (mode && strcmp(mode, "redirect") != 0 && strcmp(mode, "url") != 0) {
        api__fail(req, ERR_INVALID, "query parameter 'mode' must be stream, redirect or url");
        return;
    }
    if (asset_load(st, params[0], &a, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (!a.master_storage_key || !a.master_storage_key[0]) {
        err_set(&e, ERR_CONFLICT, "asset %s has no master yet (it is %s)", a.id, a.status);
        goto out_err;
    }
    if (!mode) {
        if (store_object_open(st->ctx->store, STORE_BUCKET_ARCHIVE, a.master_storage_key, &fd, &m,
                              &e) < 0) {
            if (e.code != ERR_UNSUPPORTED)
                goto out_err;
            mode = "redirect"; /* a backend without local files: send the client there */
        } else {
            memset(&obj, 0, sizeof(obj));
            obj.size = m.size;
            obj.mtime = m.mtime;
            obj.etag = a.content_hash;
            obj.content_type = a.mime_type;
            obj.cache_control = "public, max-age=31536000, immutable";
            obj.disposition = content_disposition(req, a.original_filename);
            obj.small_max = cfg->sendfile_threshold;
            http_send_object(req, fd, &obj);
            /* one audit row per download, not one per seek of a player */
            if (is_get &&
                (req->status == 200 || (req->status == 206 && range_from_start(req, m.size))))
                api__audit(req, "asset.download", "asset", a.id,
                           json_pack("{s:s,s:i}", "mode", "direct", "status", req->status));
            goto out;
        }
    }
    url = presign(st, "GET", STORE_BUCKET_ARCHIVE, a.master_storage_key, "", now);
    if (!url) {
        err_set(&e, ERR_INTERNAL, "presigning the download failed");
        goto out_err;
    }
    if (strcmp(mode, "redirect") == 0) {
        http_send_redirect(req, 302, url);
    } else {
        char t[32];

        util_time_rfc3339(now + cfg->presign_ttl, t);
        api__send_json(req, 200, json_pack("{s:s,s:s}", "url", url, "expires_at", t));
    }
    free(url);
    if (is_get)
        api__audit(req, "asset.download", "asset", a.id, json_pack("{s:s}", "mode", mode));
    goto out;

out_err:
    api__send_err(req, &e);
out:
    cat_asset_release(&a);
}

/* ---- the sweeper -------------------------------------------------------------------------- */

struct sweep_ctx {
    struct api_ctx *ctx;
    int swept;
};

struct sweep_master_ctx {
    struct store *store;
};

static int sweep_master(void *p, const char *key, const struct store_meta *m)
{
    struct sweep_master_ctx *c = p;
    struct err e;

    (void)m;
    if (store_object_delete(c->store, STORE_BUCKET_ARCHIVE, key, &e) < 0)
        log_write(LOG_WARN, "api", "sweep: cannot remove unreferenced master %s: %s", key, e.msg);
    else
        log_write(LOG_INFO, "api", "sweep: removed unreferenced master %s", key);
    return 0;
}

/* removes masters/{asset_id}/... of an asset that no longer exists */
static void sweep_masters(struct store *store, const char *asset_id)
{
    struct sweep_master_ctx c = {store};
    char prefix[64];
    struct err e;

    snprintf(prefix, sizeof(prefix), "masters/%s/", asset_id);
    if (store_object_list(store, STORE_BUCKET_ARCHIVE, prefix, sweep_master, &c, &e) < 0)
        log_write(LOG_WARN, "api", "sweep: cannot list %s: %s", prefix, e.msg);
}

static int sweep_one(void *p, const struct cat_upload *u)
{
    struct sweep_ctx *s = p;
    struct catalog *cat = s->ctx->cat;
    struct cat_audit row;
    char *detail;
    struct err e;

    /* the catalog decides first, as for an abort: a complete that got there first keeps
     * its asset, and one that comes later finds it gone and removes its master */
    if (cat_asset_delete(cat, u->asset_id, ASSET_UPLOADING, &e) < 0) {
        if (e.code == ERR_CONFLICT) {
            struct cat_asset now;
            int ingesting = 0;

            /* it moved on: while its ingest has not assembled the parts, they are the
             * ingest's (it drops them itself); after that, only the upload row is stale */
            memset(&now, 0, sizeof(now));
            if (cat_asset_get(cat, u->asset_id, &now, &e) == 0) {
                ingesting = strcmp(now.status, ASSET_PROCESSING) == 0 && !now.master_storage_key;
                cat_asset_release(&now);
            }
            if (ingesting)
                return 0;
            if (cat_upload_delete(cat, u->asset_id, &e) < 0 && e.code != ERR_NOTFOUND)
                log_write(LOG_WARN, "api", "sweep: cannot remove the upload row of %s: %s",
                          u->asset_id, e.msg);
            return 0;
        }
        if (e.code != ERR_NOTFOUND) {
            log_write(LOG_WARN, "api", "sweep: cannot remove asset %s: %s", u->asset_id, e.msg);
            return 0; /* the row stays; the next sweep tries again */
        }
    }
    if (store_upload_abort(s->ctx->store, u->upload_id, &e) < 0 && e.code != ERR_NOTFOUND)
        log_write(LOG_WARN, "api",
                  "sweep: cannot abort upload %s of asset %s: %s (the sweep of "
                  "stale store uploads retries)",
                  u->upload_id, u->asset_id, e.msg);
    /* a complete that committed the master but never reached the catalog */
    sweep_masters(s->ctx->store, u->asset_id);
    {
        json_t *d = json_pack("{s:s,s:I}", "upload_id", u->upload_id, "expires_at",
                              (json_int_t)u->expires_at);
        detail = json_dumps(d, JSON_COMPACT);
        json_decref(d);
    }
    memset(&row, 0, sizeof(row));
    row.action = "asset.expire";
    row.target_type = "asset";
    row.target_id = u->asset_id;
    row.detail_json = detail;
    if (cat_audit_append(cat, &row, &e) < 0)
        log_write(LOG_ERROR, "api", "sweep: audit of asset %s failed: %s", u->asset_id, e.msg);
    free(detail);
    log_write(LOG_INFO, "api", "swept expired upload %s of asset %s", u->upload_id, u->asset_id);
    s->swept++;
    return 0;
}

/*
 * Pages through the assets of one status, oldest last, 256 ids at a time, so the sweeps
 * can call the catalog for each of them between pages. page_next fills the next page:
 * the number of ids (0 at the end) or -1.
 */
struct asset_page {
    char ids[256][37];
    int64_t created[256];
    int n;
    char last[37];
};

static int page_collect(void *p, const struct cat_asset *a)
{
    struct asset_page *pg = p;

    snprintf(pg->ids[pg->n], 37, "%s", a->id);
    pg->created[pg->n++] = a->created_at;
    snprintf(pg->last, sizeof(pg->last), "%s", a->id);
    return 0;
}

static int page_next(struct catalog *cat, const char *status, struct asset_page *pg,
                     struct err *err)
{
    struct cat_asset_filter f = {.status = status,
                                 .after_id = pg->last[0] ? pg->last : NULL,
                                 .limit = (int)ARRAY_LEN(pg->ids)};

    if (pg->n > 0 && pg->n < (int)ARRAY_LEN(pg->ids))
        return 0; /* the last page was short: that was all */
    pg->n = 0;
    if (cat_asset_list(cat, &f, page_collect, pg, err) < 0)
        return -1;
    return pg->n;
}

/*
 * Removes assets that are uploading without an upload row, once they are older than
 * DIRECT_MIN_TTL_MS: every upload writes its row in the transaction that creates the
 * asset, so nothing can still be filling such an asset. Their staging data goes with the
 * sweep of stale store uploads (acervod's sweep). Returns how many went.
 */
static int sweep_rowless(struct api_ctx *ctx, int64_t now_ms, struct err *err)
{
    struct asset_page *c = xcalloc(1, sizeof(*c));
    int swept = 0, n;

    while ((n = page_next(ctx->cat, ASSET_UPLOADING, c, err)) > 0) {
        for (int i = 0; i < n; i++) {
            struct cat_upload u;
            struct cat_audit row;
            struct err e;

            if (c->created[i] > now_ms - DIRECT_MIN_TTL_MS)
                continue;
            if (cat_upload_get(ctx->cat, c->ids[i], &u, &e) == 0 || e.code != ERR_NOTFOUND)
                continue;
            if (cat_asset_delete(ctx->cat, c->ids[i], ASSET_UPLOADING, &e) < 0) {
                if (e.code != ERR_NOTFOUND && e.code != ERR_CONFLICT)
                    log_write(LOG_WARN, "api", "sweep: cannot remove asset %s: %s", c->ids[i],
                              e.msg);
                continue;
            }
            memset(&row, 0, sizeof(row));
            row.action = "asset.expire";
            row.target_type = "asset";
            row.target_id = c->ids[i];
            row.detail_json = "{\"reason\":\"uploading without an upload\"}";
            if (cat_audit_append(ctx->cat, &row, &e) < 0)
                log_write(LOG_ERROR, "api", "sweep: audit of asset %s failed: %s", c->ids[i],
                          e.msg);
            log_write(LOG_INFO, "api", "swept asset %s, uploading without an upload", c->ids[i]);
            swept++;
        }
    }
    free(c);
    return n < 0 ? -1 : swept;
}

int api_sweep_uploads(struct api_ctx *ctx, int64_t now_ms, struct err *err)
{
    struct sweep_ctx s = {ctx, 0};
    int64_t keys = 0;
    int rowless;

    if (cat_upload_list_expired(ctx->cat, now_ms, sweep_one, &s, err) < 0)
        return -1;
    rowless = sweep_rowless(ctx, now_ms, err);
    if (rowless < 0)
        return -1;
    s.swept += rowless;
    /* idempotency keys live as long as the upload they created could */
    if (cat_idem_expire(ctx->cat, now_ms, &keys, err) < 0)
        return -1;
    if (keys > 0)
        log_write(LOG_INFO, "api", "forgot %lld expired idempotency keys", (long long)keys);
    return s.swept;
}

/* ---- assets left processing without an ingest ------------------------------------------ */

static int resume_has_ingest(void *p, const struct cat_workflow *w)
{
    (void)w;
    *(int *)p = 1;
    return 1; /* one is enough */
}

int api_resume_ingests(struct api_ctx *ctx, struct err *err)
{
    struct asset_page *r = xcalloc(1, sizeof(*r));
    int started = 0, n;

    while ((n = page_next(ctx->cat, ASSET_PROCESSING, r, err)) > 0) {
        for (int i = 0; i < n; i++) {
            struct cat_workflow_filter wf = {.asset_id = r->ids[i], .type = "ingest", .limit = 1};
            struct jobs_start js;
            char ikey[64], wf_id[37];
            int has = 0, existed = 0;
            struct err e;

            if (cat_wf_list(ctx->cat, &wf, resume_has_ingest, &has, &e) < 0 && !has) {
                log_write(LOG_WARN, "sweep", "cannot read the workflows of asset %s: %s", r->ids[i],
                          e.msg);
                continue;
            }
            if (has)
                continue;
            /* processing with no ingest: completed before the workflow engine existed (or
             * its workflow was lost); the ingest takes the recorded master from there */
            memset(&js, 0, sizeof(js));
            snprintf(ikey, sizeof(ikey), "ingest:%s", r->ids[i]);
            js.type = "ingest";
            js.asset_id = r->ids[i];
            js.idempotency_key = ikey;
            if (jobs_workflow_start(ctx->cat, &js, wf_id, &existed, &e) < 0) {
                log_write(LOG_WARN, "sweep", "cannot start the ingest of asset %s: %s", r->ids[i],
                          e.msg);
                continue;
            }
            if (!existed) {
                log_write(LOG_INFO, "sweep",
                          "asset %s was processing without an ingest; "
                          "started workflow %s",
                          r->ids[i], wf_id);
                started++;
            }
        }
    }
    free(r);
    return n < 0 ? -1 : started;
}
