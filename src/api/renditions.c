/*
 * api: renditions. GET /api/v1/assets/{id}/renditions lists an asset's renditions with
 * their status and download links; POST /api/v1/assets/{id}/renditions asks for one on
 * demand (a `rendition` workflow on transcode-interactive, kept `ondemand_ttl`); GET
 * /api/v1/renditions/{id}/download serves a rendition's main file and
 * /api/v1/renditions/{id}/files/{name} any file it wrote (thumbnail sizes, and HLS/DASH
 * playlists and segments, whose relative links resolve there), with Range.
 */
#include "api/api_int.h"
#include "jobs/jobs.h"
#include "media/profile.h"

#include <string.h>

#define CLIP_MIN_MS 100 /* shortest subclip */

static json_t *int_or_null(int64_t v)
{
    return v >= 0 ? json_integer(v) : json_null();
}

static json_t *text_json(const char *text)
{
    json_t *v = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;

    return v ? v : json_null();
}

/* The API view of a rendition (new reference). */
static json_t *rendition_json(const struct cat_rendition *r)
{
    json_t *o = json_object(), *files = json_array(), *in = text_json(r->files), *f;
    char t[32], path[256];
    size_t i;

    json_object_set_new(o, "id", json_string(r->id));
    json_object_set_new(o, "asset_id", json_string(r->asset_id));
    json_object_set_new(o, "profile", json_string(r->profile_name));
    json_object_set_new(o, "version", json_integer(r->profile_version));
    json_object_set_new(o, "on_demand", json_boolean(r->variant[0] != '\0'));
    json_object_set_new(o, "status", json_string(r->status));
    json_object_set_new(o, "mime_type", r->mime_type ? json_string(r->mime_type) : json_null());
    json_object_set_new(o, "file_size_bytes", int_or_null(r->file_size_bytes));
    json_object_set_new(o, "width", int_or_null(r->width));
    json_object_set_new(o, "height", int_or_null(r->height));
    json_object_set_new(o, "duration_ms", int_or_null(r->duration_ms));
    json_object_set_new(o, "bitrate_kbps", int_or_null(r->bitrate_kbps));
    json_object_set_new(o, "params", text_json(r->params));
    json_object_set_new(o, "error", r->error ? json_string(r->error) : json_null());
    if (r->expires_at > 0) {
        util_time_rfc3339_ms(r->expires_at, t);
        json_object_set_new(o, "expires_at", json_string(t));
    } else {
        json_object_set_new(o, "expires_at", json_null());
    }
    util_time_rfc3339_ms(r->created_at, t);
    json_object_set_new(o, "created_at", json_string(t));
    util_time_rfc3339_ms(r->updated_at, t);
    json_object_set_new(o, "updated_at", json_string(t));
    json_array_foreach(in, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));

        snprintf(path, sizeof(path), "/api/v1/renditions/%s/files/%s", r->id, name ? name : "");
        json_array_append_new(files, json_pack("{s:O,s:O,s:s}", "name", json_object_get(f, "name"),
                                               "bytes", json_object_get(f, "bytes"), "href", path));
    }
    json_decref(in);
    json_object_set_new(o, "files", files);
    /* the main file under files/, so the relative links of an HLS or DASH playlist
     * resolve next to it */
    if (r->storage_key && strrchr(r->storage_key, '/'))
        snprintf(path, sizeof(path), "/api/v1/renditions/%s/files/%s", r->id,
                 strrchr(r->storage_key, '/') + 1);
    else
        snprintf(path, sizeof(path), "/api/v1/renditions/%s/download", r->id);
    json_object_set_new(o, "links", json_pack("{s:s}", "download", path));
    if (r->workflow_id[0]) {
        snprintf(path, sizeof(path), "/api/v1/workflows/%s", r->workflow_id);
        json_object_set_new(json_object_get(o, "links"), "workflow", json_string(path));
    }
    return o;
}

static int asset_get(struct api_state *st, const char *id, struct cat_asset *a, struct err *err)
{
    memset(a, 0, sizeof(*a));
    if (!util_uuid_valid(id))
        return err_set(err, ERR_INVALID, "'%s' is not an asset id", id);
    return cat_asset_get(st->ctx->cat, id, a, err);
}

/* ---- GET /api/v1/assets/{id}/renditions --------------------------------------------------- */

static int list_one(void *p, const struct cat_rendition *r)
{
    json_array_append_new(p, rendition_json(r));
    return 0;
}

void api__renditions_list(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    struct cat_asset a;
    json_t *items;
    struct err e;

    if (asset_get(st, params[0], &a, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    items = json_array();
    if (cat_rendition_list(st->ctx->cat, a.id, list_one, items, &e) < 0) {
        json_decref(items);
        api__send_err(req, &e);
    } else {
        api__send_json(req, 200, json_pack("{s:o}", "items", items));
    }
    cat_asset_release(&a);
}

/* ---- POST /api/v1/assets/{id}/renditions ---------------------------------------------------- */

static unsigned type_bit(const char *type)
{
    return strcmp(type, "video") == 0   ? MEDIA_T_VIDEO
           : strcmp(type, "audio") == 0 ? MEDIA_T_AUDIO
           : strcmp(type, "image") == 0 ? MEDIA_T_IMAGE
                                        : 0;
}

/* Checks {"in_ms", "out_ms"} against the asset's duration. */
static int clip_check(json_t *clip, const struct cat_asset *a, struct err *err)
{
    static const char *const fields[] = {"in_ms", "out_ms", NULL};
    json_t *in = json_object_get(clip, "in_ms"), *out = json_object_get(clip, "out_ms");

    if (!json_is_object(clip))
        return err_set(err, ERR_INVALID, "field 'clip' must be an object {in_ms, out_ms}");
    if (api__json_known(clip, fields, "clip", err) < 0)
        return -1;
    if (!json_is_integer(in) || !json_is_integer(out))
        return err_set(err, ERR_INVALID, "fields 'clip.in_ms' and 'clip.out_ms' are integers");
    if (json_integer_value(in) < 0 ||
        json_integer_value(out) - json_integer_value(in) < CLIP_MIN_MS)
        return err_set(err, ERR_INVALID,
                       "the clip must start at 0 ms or later and last at least %d ms", CLIP_MIN_MS);
    if (a->duration_ms >= 0 && json_integer_value(out) > a->duration_ms)
        return err_set(err, ERR_INVALID, "the clip ends at %lld ms, after the asset's %lld ms",
                       (long long)json_integer_value(out), (long long)a->duration_ms);
    return 0;
}

void api__renditions_create(struct http_req *req, const char *const *params)
{
    static const char *const fields[] = {"profile", "clip", NULL};
    struct api_state *st = api__state(req);
    const struct media_profile *p;
    json_t *body = st->body, *clip, *input = NULL;
    struct cat_rendition r;
    struct cat_asset a;
    struct jobs_start js;
    const char *name;
    char wf_id[37], ikey[64];
    struct err e;

    memset(&r, 0, sizeof(r));
    if (asset_get(st, params[0], &a, &e) < 0)
        goto out_err;
    if (api__json_known(body, fields, "", &e) < 0)
        goto out_release;
    name = json_string_value(json_object_get(body, "profile"));
    if (!name) {
        err_set(&e, ERR_INVALID, "field 'profile' (a rendition profile name) is required");
        goto out_release;
    }
    p = media_profile_find(name);
    if (!p) {
        err_set(&e, ERR_INVALID, "unknown rendition profile '%s'", name);
        goto out_release;
    }
    if (!(p->types & type_bit(a.type))) {
        err_set(&e, ERR_INVALID, "profile '%s' does not apply to %s assets", name, a.type);
        goto out_release;
    }
    if (strcmp(a.status, ASSET_READY) != 0) {
        err_set(&e, ERR_CONFLICT, "asset %s is %s; renditions are made of ready assets", a.id,
                a.status);
        goto out_release;
    }
    clip = json_object_get(body, "clip");
    if (clip && clip_check(clip, &a, &e) < 0)
        goto out_release;
    if (!clip && strcmp(name, "subclip") == 0) {
        err_set(&e, ERR_INVALID, "profile 'subclip' needs field 'clip' {in_ms, out_ms}");
        goto out_release;
    }

    /* the row first, so GET lists it at once; then its workflow */
    util_uuid7(r.variant);
    snprintf(r.asset_id, sizeof(r.asset_id), "%s", a.id);
    snprintf(r.profile_name, sizeof(r.profile_name), "%s", p->name);
    r.profile_version = p->version;
    snprintf(r.status, sizeof(r.status), "%s", REND_PENDING);
    r.file_size_bytes = r.width = r.height = r.duration_ms = r.bitrate_kbps = -1;
    r.params = clip ? json_dumps(clip, JSON_COMPACT) : NULL;
    r.expires_at = util_now_ms() + (int64_t)st->ctx->cfg->ondemand_ttl * 1000;
    input = json_pack("{s:s,s:i,s:s,s:I}", "profile", p->name, "version", p->version, "variant",
                      r.variant, "expires_at", (json_int_t)r.expires_at);
    if (clip)
        json_object_set(input, "clip", clip);
    snprintf(ikey, sizeof(ikey), "rendition:%s", r.variant);
    memset(&js, 0, sizeof(js));
    js.type = "rendition";
    js.asset_id = a.id;
    js.created_by = st->who.user_id;
    js.input = input;
    js.idempotency_key = ikey;
    if (jobs_workflow_start(st->ctx->cat, &js, wf_id, NULL, &e) < 0)
        goto out_release;
    snprintf(r.workflow_id, sizeof(r.workflow_id), "%s", wf_id);
    if (cat_rendition_put(st->ctx->cat, &r, &e) < 0)
        goto out_release;
    api__audit(req, "rendition.request", "asset", a.id,
               json_pack("{s:s,s:s,s:s,s:O?}", "rendition_id", r.id, "profile", p->name,
                         "workflow_id", wf_id, "clip", clip));
    http_resp_header(req, "Location",
                     arena_printf(&req->arena, "/api/v1/renditions/%s/download", r.id));
    {
        json_t *o = rendition_json(&r);

        json_object_set_new(o, "workflow_id", json_string(wf_id));
        api__send_json(req, 202, o);
    }
    json_decref(input);
    cat_rendition_release(&r);
    cat_asset_release(&a);
    return;

out_release:
    json_decref(input);
    cat_rendition_release(&r);
    cat_asset_release(&a);
out_err:
    api__send_err(req, &e);
}

/* ---- GET /api/v1/renditions/{id}/download ---------------------------------------------------- */

void api__renditions_download(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    const char *want = params[1]; /* NULL on .../download: the main file */
    struct cat_rendition r;
    struct http_object obj;
    struct store_meta m;
    const char *key = NULL;
    json_t *files = NULL, *f;
    size_t i;
    int fd;
    struct err e;

    memset(&r, 0, sizeof(r));
    if (!util_uuid_valid(params[0])) {
        api__fail(req, ERR_INVALID, "'%s' is not a rendition id", params[0]);
        return;
    }
    if (cat_rendition_get(st->ctx->cat, params[0], &r, &e) < 0)
        goto out_err;
    if (strcmp(r.status, REND_EXPIRED) == 0) {
        err_set(&e, ERR_GONE, "rendition %s expired; ask for it again", r.id);
        goto out_err;
    }
    if (strcmp(r.status, REND_READY) != 0) {
        err_set(&e, ERR_CONFLICT, "rendition %s is %s", r.id, r.status);
        goto out_err;
    }
    files = text_json(r.files);
    key = r.storage_key;
    if (want) {
        key = NULL;
        json_array_foreach(files, i, f)
        {
            if (strcmp(json_string_value(json_object_get(f, "name")), want) == 0)
                key = json_string_value(json_object_get(f, "key"));
        }
        if (!key) {
            err_set(&e, ERR_NOTFOUND, "rendition %s has no file '%s'", r.id, want);
            goto out_err;
        }
    }
    if (store_object_open(st->ctx->store, r.bucket, key, &fd, &m, &e) < 0)
        goto out_err;
    memset(&obj, 0, sizeof(obj));
    obj.size = m.size;
    obj.mtime = m.mtime;
    obj.etag = m.sha256[0] ? m.sha256 : m.etag;
    obj.content_type = m.content_type[0] ? m.content_type : NULL;
    obj.cache_control = "public, max-age=31536000, immutable";
    obj.small_max = st->ctx->cfg->sendfile_threshold;
    http_send_object(req, fd, &obj);
    goto out;

out_err:
    api__send_err(req, &e);
out:
    json_decref(files);
    cat_rendition_release(&r);
}

/* ---- expiry ------------------------------------------------------------------------------------
 */

struct expire_ctx {
    struct api_ctx *ctx;
    int n;
};

static int expire_one(void *p, const struct cat_rendition *r)
{
    struct expire_ctx *c = p;
    struct cat_rendition row = *r;
    json_t *files = text_json(r->files), *f;
    size_t i;
    struct err e;

    json_array_foreach(files, i, f)
    {
        const char *key = json_string_value(json_object_get(f, "key"));

        if (key && store_object_delete(c->ctx->store, r->bucket, key, &e) < 0 &&
            e.code != ERR_NOTFOUND)
            log_write(LOG_WARN, "sweep", "cannot remove %s of rendition %s: %s", key, r->id, e.msg);
    }
    json_decref(files);
    snprintf(row.status, sizeof(row.status), "%s", REND_EXPIRED);
    if (cat_rendition_put(c->ctx->cat, &row, &e) < 0)
        log_write(LOG_WARN, "sweep", "cannot mark rendition %s expired: %s", r->id, e.msg);
    else
        c->n++;
    return 0;
}

int api_sweep_renditions(struct api_ctx *ctx, int64_t now_ms, struct err *err)
{
    struct expire_ctx c = {ctx, 0};

    if (cat_renditions_expired(ctx->cat, now_ms, 1000, expire_one, &c, err) < 0)
        return -1;
    return c.n;
}
