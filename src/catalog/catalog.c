/*
 * catalog: the cat_* wrappers. They check arguments every backend would otherwise check
 * alike, dispatch through c->ops, and log backend failures once.
 */
#include "catalog/catalog.h"

#include <stdlib.h>
#include <string.h>

static const char *const role_names[] = {
    [ROLE_VIEWER] = "viewer",
    [ROLE_EDITOR] = "editor",
    [ROLE_ADMIN] = "admin",
};

static const char *const asset_types[] = {"video", "audio", "image"};
static const char *const asset_statuses[] = {ASSET_UPLOADING, ASSET_PROCESSING, ASSET_READY,
                                             ASSET_FAILED, ASSET_ARCHIVED};

const char *cat_role_name(enum cat_role r)
{
    if ((int)r < ROLE_VIEWER || (int)r > ROLE_ADMIN)
        return "unknown";
    return role_names[r];
}

int cat_role_parse(const char *s)
{
    if (!s)
        return -1;
    for (int r = ROLE_VIEWER; r <= ROLE_ADMIN; r++)
        if (strcmp(s, role_names[r]) == 0)
            return r;
    return -1;
}

void cat_asset_release(struct cat_asset *a)
{
    if (!a)
        return;
    free(a->external_id);
    free(a->title);
    free(a->description);
    free(a->original_filename);
    free(a->mime_type);
    free(a->master_storage_key);
    free(a->technical_metadata);
    free(a->editorial_metadata);
    free(a->failure_reason);
    a->external_id = NULL;
    a->title = NULL;
    a->description = NULL;
    a->original_filename = NULL;
    a->mime_type = NULL;
    a->master_storage_key = NULL;
    a->technical_metadata = NULL;
    a->editorial_metadata = NULL;
    a->failure_reason = NULL;
}

static int in_set(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return 1;
    return 0;
}

static int check_type(const char *type, struct err *err)
{
    if (!type || !in_set(type, asset_types, ARRAY_LEN(asset_types)))
        return err_set(err, ERR_INVALID, "asset type '%s' is not video, audio or image",
                       type ? type : "");
    return 0;
}

static int check_status(const char *status, struct err *err)
{
    if (!status || !in_set(status, asset_statuses, ARRAY_LEN(asset_statuses)))
        return err_set(err, ERR_INVALID, "unknown asset status '%s'", status ? status : "");
    return 0;
}

static int check_id(const char *what, const char *id, struct err *err)
{
    if (!id || !*id)
        return err_set(err, ERR_INVALID, "%s id is required", what);
    return 0;
}

static int check_role(enum cat_role role, struct err *err)
{
    if ((int)role < ROLE_VIEWER || (int)role > ROLE_ADMIN)
        return err_set(err, ERR_INVALID, "unknown role %d", (int)role);
    return 0;
}

/* Logs a backend failure once, here, so every caller need not. Returns rc. */
static int logged(const char *op, int rc, const struct err *err)
{
    if (rc < 0 && err && (err->code == ERR_BACKEND || err->code == ERR_INTERNAL))
        log_write(LOG_ERROR, "catalog", "%s: %s", op, err->msg);
    return rc;
}

void cat_close(struct catalog *c)
{
    if (c)
        c->ops->close(c);
}

int cat_schema_version(struct catalog *c)
{
    return c->ops->schema_version(c);
}

int cat_asset_create(struct catalog *c, const struct cat_asset *a, struct err *err)
{
    if (!util_uuid_valid(a->id))
        return err_set(err, ERR_INVALID, "asset id '%s' is not a uuid", a->id);
    if (check_type(a->type, err) < 0 || check_status(a->status, err) < 0)
        return -1;
    if (!a->original_filename || !a->mime_type)
        return err_set(err, ERR_INVALID, "asset original_filename and mime_type are required");
    if (a->file_size_bytes < 0)
        return err_set(err, ERR_INVALID, "asset file_size_bytes is negative");
    return logged("asset_create", c->ops->asset_create(c, a, err), err);
}

int cat_asset_get(struct catalog *c, const char *id, struct cat_asset *out, struct err *err)
{
    if (check_id("asset", id, err) < 0)
        return -1;
    return logged("asset_get", c->ops->asset_get(c, id, out, err), err);
}

int cat_asset_update_editorial(struct catalog *c, const char *id, const char *title,
                               const char *description, const char *editorial_json,
                               struct cat_asset *out, struct err *err)
{
    if (check_id("asset", id, err) < 0)
        return -1;
    return logged(
        "asset_update_editorial",
        c->ops->asset_update_editorial(c, id, title, description, editorial_json, out, err), err);
}

int cat_asset_set_status(struct catalog *c, const char *id, const char *from, const char *to,
                         const char *reason, struct err *err)
{
    if (check_id("asset", id, err) < 0 || check_status(to, err) < 0)
        return -1;
    if (from && check_status(from, err) < 0)
        return -1;
    return logged("asset_set_status", c->ops->asset_set_status(c, id, from, to, reason, err), err);
}

int cat_asset_complete(struct catalog *c, const char *id, const char *sha256,
                       const char *storage_key, int64_t size, struct err *err)
{
    if (check_id("asset", id, err) < 0)
        return -1;
    if (!sha256 || strlen(sha256) != 64 || strspn(sha256, "0123456789abcdef") != 64)
        return err_set(err, ERR_INVALID, "content hash is not 64 lowercase hex digits");
    if (!storage_key || !*storage_key)
        return err_set(err, ERR_INVALID, "master storage key is required");
    if (size < 0)
        return err_set(err, ERR_INVALID, "master size is negative");
    return logged("asset_complete", c->ops->asset_complete(c, id, sha256, storage_key, size, err),
                  err);
}

int cat_asset_delete(struct catalog *c, const char *id, const char *status, struct err *err)
{
    if (check_id("asset", id, err) < 0)
        return -1;
    return logged("asset_delete", c->ops->asset_delete(c, id, status, err), err);
}

int cat_asset_find_by_hash(struct catalog *c, const char *sha256, struct cat_asset *out,
                           struct err *err)
{
    if (!sha256 || !*sha256)
        return err_set(err, ERR_INVALID, "content hash is required");
    return logged("asset_find_by_hash", c->ops->asset_find_by_hash(c, sha256, out, err), err);
}

int cat_asset_list(struct catalog *c, const struct cat_asset_filter *f,
                   int (*cb)(void *ctx, const struct cat_asset *a), void *ctx, struct err *err)
{
    if (f->type && *f->type && check_type(f->type, err) < 0)
        return -1;
    if (f->status && *f->status && check_status(f->status, err) < 0)
        return -1;
    return logged("asset_list", c->ops->asset_list(c, f, cb, ctx, err), err);
}

int cat_upload_create(struct catalog *c, const struct cat_upload *u, struct err *err)
{
    if (check_id("asset", u->asset_id, err) < 0 || check_id("upload", u->upload_id, err) < 0)
        return -1;
    if (!u->bucket[0] || !u->key[0])
        return err_set(err, ERR_INVALID, "upload bucket and key are required");
    return logged("upload_create", c->ops->upload_create(c, u, err), err);
}

int cat_upload_get(struct catalog *c, const char *asset_id, struct cat_upload *out, struct err *err)
{
    if (check_id("asset", asset_id, err) < 0)
        return -1;
    return logged("upload_get", c->ops->upload_get(c, asset_id, out, err), err);
}

int cat_upload_delete(struct catalog *c, const char *asset_id, struct err *err)
{
    if (check_id("asset", asset_id, err) < 0)
        return -1;
    return logged("upload_delete", c->ops->upload_delete(c, asset_id, err), err);
}

int cat_upload_list_expired(struct catalog *c, int64_t now_ms,
                            int (*cb)(void *ctx, const struct cat_upload *u), void *ctx,
                            struct err *err)
{
    return logged("upload_list_expired", c->ops->upload_list_expired(c, now_ms, cb, ctx, err), err);
}

int cat_user_create(struct catalog *c, const char *name, enum cat_role role, struct cat_user *out,
                    struct err *err)
{
    if (!name || !*name)
        return err_set(err, ERR_INVALID, "user name is required");
    if (strlen(name) >= sizeof(out->name))
        return err_set(err, ERR_INVALID, "user name is longer than %zu bytes",
                       sizeof(out->name) - 1);
    if (check_role(role, err) < 0)
        return -1;
    return logged("user_create", c->ops->user_create(c, name, role, out, err), err);
}

int cat_user_get(struct catalog *c, const char *id, struct cat_user *out, struct err *err)
{
    if (check_id("user", id, err) < 0)
        return -1;
    return logged("user_get", c->ops->user_get(c, id, out, err), err);
}

int cat_user_count(struct catalog *c, int64_t *out, struct err *err)
{
    return logged("user_count", c->ops->user_count(c, out, err), err);
}

int cat_key_create(struct catalog *c, const struct cat_key *k, struct err *err)
{
    if (check_id("key", k->id, err) < 0 || check_id("user", k->user_id, err) < 0)
        return -1;
    if (!k->token_hash[0])
        return err_set(err, ERR_INVALID, "key token hash is required");
    if (check_role(k->role, err) < 0)
        return -1;
    return logged("key_create", c->ops->key_create(c, k, err), err);
}

int cat_key_by_token_hash(struct catalog *c, const char *token_hash, struct cat_key *out,
                          struct err *err)
{
    if (!token_hash || !*token_hash)
        return err_set(err, ERR_INVALID, "token hash is required");
    return logged("key_by_token_hash", c->ops->key_by_token_hash(c, token_hash, out, err), err);
}

int cat_key_by_access_key(struct catalog *c, const char *access_key, struct cat_key *out,
                          struct err *err)
{
    if (!access_key || !*access_key)
        return err_set(err, ERR_INVALID, "access key is required");
    return logged("key_by_access_key", c->ops->key_by_access_key(c, access_key, out, err), err);
}

int cat_key_revoke(struct catalog *c, const char *id, struct err *err)
{
    if (check_id("key", id, err) < 0)
        return -1;
    return logged("key_revoke", c->ops->key_revoke(c, id, err), err);
}

int cat_audit_append(struct catalog *c, const struct cat_audit *a, struct err *err)
{
    if (!a->action || !*a->action)
        return err_set(err, ERR_INVALID, "audit action is required");
    return logged("audit_append", c->ops->audit_append(c, a, err), err);
}

int cat_audit_list(struct catalog *c, const char *target_id, int limit,
                   int (*cb)(void *ctx, const char *json_row), void *ctx, struct err *err)
{
    return logged("audit_list", c->ops->audit_list(c, target_id, limit, cb, ctx, err), err);
}
