/*
 * catalog: the cat_* wrappers. They check arguments every backend would otherwise check
 * alike, dispatch through c->ops, and log backend failures once.
 */
#include "catalog/catalog.h"
#include "catalog/catalog_int.h"

#include <jansson.h>
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
    free(a->ai_metadata);
    a->ai_metadata = NULL;
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

void cat_trim(struct catalog *c, int64_t idle_ms)
{
    if (c && c->ops->trim)
        c->ops->trim(c, idle_ms);
}

int cat_schema_version(struct catalog *c)
{
    return c->ops->schema_version(c);
}

/* What a new asset must have. */
static int check_new_asset(const struct cat_asset *a, struct err *err)
{
    if (!util_uuid_valid(a->id))
        return err_set(err, ERR_INVALID, "asset id '%s' is not a uuid", a->id);
    if (check_type(a->type, err) < 0 || check_status(a->status, err) < 0)
        return -1;
    if (!a->original_filename || !a->mime_type)
        return err_set(err, ERR_INVALID, "asset original_filename and mime_type are required");
    if (a->file_size_bytes < 0)
        return err_set(err, ERR_INVALID, "asset file_size_bytes is negative");
    return 0;
}

/* What a new upload row must have. */
static int check_upload(const struct cat_upload *u, struct err *err)
{
    if (check_id("asset", u->asset_id, err) < 0 || check_id("upload", u->upload_id, err) < 0)
        return -1;
    if (!u->bucket[0] || !u->key[0])
        return err_set(err, ERR_INVALID, "upload bucket and key are required");
    return 0;
}

int cat_asset_create(struct catalog *c, const struct cat_asset *a, struct err *err)
{
    if (check_new_asset(a, err) < 0)
        return -1;
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

static int check_idem_key(const char *key, struct err *err)
{
    size_t n = strlen(key);

    if (n < 1 || n > 255)
        return err_set(err, ERR_INVALID, "an idempotency key has 1 to 255 characters");
    return 0;
}

int cat_asset_create_upload(struct catalog *c, const struct cat_asset *a,
                            const struct cat_upload *u, struct cat_idem *k, int *found,
                            struct err *err)
{
    *found = 0;
    if (check_new_asset(a, err) < 0 || check_upload(u, err) < 0)
        return -1;
    if (strcmp(u->asset_id, a->id) != 0)
        return err_set(err, ERR_INVALID, "the upload is of asset %s, not %s", u->asset_id, a->id);
    if (k) {
        if (check_id("user", k->user_id, err) < 0 || check_idem_key(k->key, err) < 0)
            return -1;
        if (strlen(k->fingerprint) != 64)
            return err_set(err, ERR_INVALID, "an idempotency fingerprint is 64 hex digits");
        if (k->expires_at <= k->created_at)
            return err_set(err, ERR_INVALID, "an idempotency key must expire after its creation");
    }
    return logged("asset_create_upload", c->ops->asset_create_upload(c, a, u, k, found, err), err);
}

int cat_idem_get(struct catalog *c, const char *user_id, const char *key, int64_t now_ms,
                 struct cat_idem *out, struct err *err)
{
    if (check_id("user", user_id, err) < 0 || check_idem_key(key, err) < 0)
        return -1;
    return logged("idem_get", c->ops->idem_get(c, user_id, key, now_ms, out, err), err);
}

int cat_idem_expire(struct catalog *c, int64_t now_ms, int64_t *removed, struct err *err)
{
    int64_t n = 0;
    int rc = logged("idem_expire", c->ops->idem_expire(c, now_ms, &n, err), err);

    if (removed)
        *removed = n;
    return rc;
}

int cat_upload_create(struct catalog *c, const struct cat_upload *u, struct err *err)
{
    if (check_upload(u, err) < 0)
        return -1;
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

/* ---- workflow engine ----------------------------------------------------------------------- */

static const char *const wf_statuses[] = {WF_RUNNING, WF_COMPLETED, WF_FAILED, WF_CANCELLING,
                                          WF_CANCELLED};
static const char *const job_statuses[] = {JOB_READY, JOB_LEASED, JOB_COMPLETED, JOB_FAILED,
                                           JOB_CANCELLED};
/* a job attempt ends in one of these (cat_tx_job_finish) */
static const char *const job_ends[] = {JOB_COMPLETED, JOB_FAILED, JOB_CANCELLED};
/* a started step is in one of these */
static const char *const step_statuses[] = {"running", "completed", "failed", "cancelled"};

void cat_workflow_release(struct cat_workflow *w)
{
    if (!w)
        return;
    free(w->input);
    free(w->error);
    w->input = NULL;
    w->error = NULL;
}

void cat_job_release(struct cat_job *j)
{
    if (!j)
        return;
    free(j->input);
    free(j->output);
    free(j->progress_detail);
    free(j->error);
    j->input = NULL;
    j->output = NULL;
    j->progress_detail = NULL;
    j->error = NULL;
}

static int check_in(const char *what, const char *s, const char *const *set, size_t n,
                    struct err *err)
{
    if (!s || !in_set(s, set, n))
        return err_set(err, ERR_INVALID, "unknown %s '%s'", what, s ? s : "");
    return 0;
}

static int check_str(const char *what, const char *s, struct err *err)
{
    if (!s || !*s)
        return err_set(err, ERR_INVALID, "%s is required", what);
    return 0;
}

int cat_tx_run(struct catalog *c, cat_tx_fn fn, void *ctx, struct err *err)
{
    if (!c->ops->wf)
        return err_set(err, ERR_UNSUPPORTED, "catalog backend %s has no workflow engine",
                       c->ops->name);
    return logged("tx_run", c->ops->wf->tx_run(c, fn, ctx, err), err);
}

int cat_tx_wf_insert(struct cat_tx *tx, const struct cat_workflow *w, struct err *err)
{
    if (check_id("workflow", w->id, err) < 0 || check_str("workflow type", w->type, err) < 0 ||
        check_in("workflow status", w->status, wf_statuses, ARRAY_LEN(wf_statuses), err) < 0)
        return -1;
    return logged("wf_insert", tx->ops->wf_insert(tx, w, err), err);
}

int cat_tx_wf_get(struct cat_tx *tx, const char *id, struct cat_workflow *out, struct err *err)
{
    if (check_id("workflow", id, err) < 0)
        return -1;
    return logged("wf_get", tx->ops->wf_get(tx, id, out, err), err);
}

int cat_tx_wf_by_idem(struct cat_tx *tx, const char *key, struct cat_workflow *out, struct err *err)
{
    if (check_str("idempotency key", key, err) < 0)
        return -1;
    return logged("wf_by_idem", tx->ops->wf_by_idem(tx, key, out, err), err);
}

int cat_tx_wf_update(struct cat_tx *tx, const char *wf_id, const char *status, const char *error,
                     int64_t finished_at, struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0 ||
        check_in("workflow status", status, wf_statuses, ARRAY_LEN(wf_statuses), err) < 0)
        return -1;
    return logged("wf_update", tx->ops->wf_update(tx, wf_id, status, error, finished_at, err), err);
}

int cat_tx_step_insert(struct cat_tx *tx, const char *wf_id, const char *step, int total,
                       struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0 || check_str("step", step, err) < 0)
        return -1;
    if (total < 0)
        return err_set(err, ERR_INVALID, "step %s has a negative job count", step);
    return logged("step_insert", tx->ops->step_insert(tx, wf_id, step, total, err), err);
}

int cat_tx_step_get(struct cat_tx *tx, const char *wf_id, const char *step, struct cat_step *out,
                    struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0 || check_str("step", step, err) < 0)
        return -1;
    return logged("step_get", tx->ops->step_get(tx, wf_id, step, out, err), err);
}

int cat_tx_step_add_done(struct cat_tx *tx, const char *wf_id, const char *step,
                         struct cat_step *out, struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0 || check_str("step", step, err) < 0)
        return -1;
    return logged("step_add_done", tx->ops->step_add_done(tx, wf_id, step, out, err), err);
}

int cat_tx_step_set_status(struct cat_tx *tx, const char *wf_id, const char *step,
                           const char *status, struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0 || check_str("step", step, err) < 0 ||
        check_in("step status", status, step_statuses, ARRAY_LEN(step_statuses), err) < 0)
        return -1;
    return logged("step_set_status", tx->ops->step_set_status(tx, wf_id, step, status, err), err);
}

int cat_tx_job_insert(struct cat_tx *tx, struct cat_job *j, struct err *err)
{
    if (check_id("workflow", j->workflow_id, err) < 0 || check_str("job step", j->step, err) < 0 ||
        check_str("job activity", j->activity, err) < 0 ||
        check_str("job queue", j->queue, err) < 0 ||
        check_str("job idempotency key", j->idempotency_key, err) < 0 ||
        check_in("job status", j->status, job_statuses, ARRAY_LEN(job_statuses), err) < 0)
        return -1;
    return logged("job_insert", tx->ops->job_insert(tx, j, err), err);
}

int cat_tx_job_get(struct cat_tx *tx, int64_t id, struct cat_job *out, struct err *err)
{
    return logged("job_get", tx->ops->job_get(tx, id, out, err), err);
}

int cat_tx_job_finish(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                      const char *status, const char *output, const char *error,
                      const char *error_class, struct err *err)
{
    if (check_in("job end status", status, job_ends, ARRAY_LEN(job_ends), err) < 0)
        return -1;
    return logged(
        "job_finish",
        tx->ops->job_finish(tx, id, owner, attempt, status, output, error, error_class, err), err);
}

int cat_tx_job_requeue(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                       int64_t run_after, const char *error, const char *error_class,
                       struct err *err)
{
    return logged("job_requeue",
                  tx->ops->job_requeue(tx, id, owner, attempt, run_after, error, error_class, err),
                  err);
}

int cat_tx_jobs_lease(struct cat_tx *tx, const char *queue, int limit, const char *owner,
                      int64_t lease_until, int (*cb)(void *ctx, const struct cat_job *j), void *ctx,
                      struct err *err)
{
    if (check_str("queue", queue, err) < 0 || check_str("lease owner", owner, err) < 0)
        return -1;
    if (limit <= 0)
        return 0;
    return logged("jobs_lease",
                  tx->ops->jobs_lease(tx, queue, limit, owner, lease_until, cb, ctx, err), err);
}

int cat_tx_jobs_expired(struct cat_tx *tx, int limit, int (*cb)(void *ctx, const struct cat_job *j),
                        void *ctx, struct err *err)
{
    if (limit <= 0)
        return 0;
    return logged("jobs_expired", tx->ops->jobs_expired(tx, limit, cb, ctx, err), err);
}

int cat_tx_jobs_heartbeat(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                          int64_t lease_until, double progress, const char *detail, struct err *err)
{
    if (check_str("lease owner", owner, err) < 0)
        return -1;
    return logged(
        "jobs_heartbeat",
        tx->ops->jobs_heartbeat(tx, id, owner, attempt, lease_until, progress, detail, err), err);
}

int cat_tx_jobs_cancel(struct cat_tx *tx, const char *wf_id, int64_t *leased, struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0)
        return -1;
    return logged("jobs_cancel", tx->ops->jobs_cancel(tx, wf_id, leased, err), err);
}

int cat_tx_jobs_count(struct cat_tx *tx, const char *wf_id, const char *status, int64_t *out,
                      struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0)
        return -1;
    return logged("jobs_count", tx->ops->jobs_count(tx, wf_id, status, out, err), err);
}

int cat_tx_jobs_retry(struct cat_tx *tx, const char *wf_id, struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0)
        return -1;
    return logged("jobs_retry", tx->ops->jobs_retry(tx, wf_id, err), err);
}

int cat_tx_job_outputs(struct cat_tx *tx, const char *wf_id,
                       int (*cb)(void *ctx, const char *step, int item, const char *output),
                       void *ctx, struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0)
        return -1;
    return logged("job_outputs", tx->ops->job_outputs(tx, wf_id, cb, ctx, err), err);
}

int cat_tx_event_append(struct cat_tx *tx, const struct cat_event *ev, struct err *err)
{
    if (check_id("workflow", ev->workflow_id, err) < 0 ||
        check_str("event type", ev->type, err) < 0)
        return -1;
    return logged("event_append", tx->ops->event_append(tx, ev, err), err);
}

int cat_tx_asset_set_status(struct cat_tx *tx, const char *id, const char *from, const char *to,
                            const char *reason, struct err *err)
{
    if (check_id("asset", id, err) < 0 || check_status(to, err) < 0)
        return -1;
    if (from && check_status(from, err) < 0)
        return -1;
    return logged("tx_asset_set_status", tx->ops->asset_set_status(tx, id, from, to, reason, err),
                  err);
}

int cat_wf_get(struct catalog *c, const char *id, struct cat_workflow *out, struct err *err)
{
    if (check_id("workflow", id, err) < 0)
        return -1;
    return logged("wf_get", c->ops->wf->wf_get_ro(c, id, out, err), err);
}

int cat_wf_list(struct catalog *c, const struct cat_workflow_filter *f,
                int (*cb)(void *ctx, const struct cat_workflow *w), void *ctx, struct err *err)
{
    if (f->status && *f->status &&
        check_in("workflow status", f->status, wf_statuses, ARRAY_LEN(wf_statuses), err) < 0)
        return -1;
    return logged("wf_list", c->ops->wf->wf_list(c, f, cb, ctx, err), err);
}

int cat_wf_steps(struct catalog *c, const char *wf_id,
                 int (*cb)(void *ctx, const struct cat_step *s), void *ctx, struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0)
        return -1;
    return logged("wf_steps", c->ops->wf->wf_steps(c, wf_id, cb, ctx, err), err);
}

int cat_wf_jobs(struct catalog *c, const char *wf_id, int limit,
                int (*cb)(void *ctx, const struct cat_job *j), void *ctx, struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0)
        return -1;
    if (limit < 0)
        return err_set(err, ERR_INVALID, "limit must not be negative");
    return logged("wf_jobs", c->ops->wf->wf_jobs(c, wf_id, limit, cb, ctx, err), err);
}

int cat_wf_events(struct catalog *c, const char *wf_id, int64_t after_id, int limit,
                  int (*cb)(void *ctx, const char *json_row), void *ctx, struct err *err)
{
    if (check_id("workflow", wf_id, err) < 0)
        return -1;
    return logged("wf_events", c->ops->wf->wf_events(c, wf_id, after_id, limit, cb, ctx, err), err);
}

int cat_jobs_cancel_requested(struct catalog *c, const char *owner,
                              int (*cb)(void *ctx, int64_t id, int attempt), void *ctx,
                              struct err *err)
{
    if (check_str("lease owner", owner, err) < 0)
        return -1;
    return logged("jobs_cancel_requested",
                  c->ops->wf->jobs_cancel_requested(c, owner, cb, ctx, err), err);
}

int cat_jobs_next_due(struct catalog *c, const char *const *queues, size_t n, int64_t *next_run,
                      int64_t *next_expiry, struct err *err)
{
    for (size_t i = 0; i < n; i++)
        if (check_str("queue", queues[i], err) < 0)
            return -1;
    return logged("jobs_next_due",
                  c->ops->wf->jobs_next_due(c, queues, n, next_run, next_expiry, err), err);
}

int cat_queue_depths(struct catalog *c, int64_t now,
                     int (*cb)(void *ctx, const struct cat_queue_depth *d), void *ctx,
                     struct err *err)
{
    return logged("queue_depths", c->ops->wf->queue_depths(c, now, cb, ctx, err), err);
}

int cat_effect_get(struct catalog *c, const char *key, char **result, struct err *err)
{
    if (check_str("effect key", key, err) < 0)
        return -1;
    return logged("effect_get", c->ops->wf->effect_get(c, key, result, err), err);
}

int cat_effect_put(struct catalog *c, const char *key, int64_t job_id, const char *result,
                   struct err *err)
{
    if (check_str("effect key", key, err) < 0)
        return -1;
    return logged("effect_put", c->ops->wf->effect_put(c, key, job_id, result, err), err);
}

int cat_worker_put(struct catalog *c, const struct cat_worker *w, struct err *err)
{
    if (check_str("worker id", w->id, err) < 0)
        return -1;
    return logged("worker_put", c->ops->wf->worker_put(c, w, err), err);
}

int cat_worker_delete(struct catalog *c, const char *id, struct err *err)
{
    if (check_str("worker id", id, err) < 0)
        return -1;
    return logged("worker_delete", c->ops->wf->worker_delete(c, id, err), err);
}

int cat_workers_expire(struct catalog *c, int64_t before, struct err *err)
{
    return logged("workers_expire", c->ops->wf->workers_expire(c, before, err), err);
}

/* a BCP 47 language tag's start: "es", "en", "spa", "es-ES", "en-419" */
static int check_language(const char *lang, struct err *err)
{
    static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t n = strspn(lang, "abcdefghijklmnopqrstuvwxyz"), len = strlen(lang);

    if (len == 0)
        return 0;
    if ((n == 2 || n == 3) && len < 16 &&
        (lang[n] == '\0' ||
         (lang[n] == '-' && n + 1 < len && strspn(lang + n + 1, alnum) == len - n - 1)))
        return 0;
    return err_set(err, ERR_INVALID, "language '%.32s' is not a language code like es or en-GB",
                   lang);
}

int cat_segment_check(const struct cat_segment *s, const char *label, struct err *err)
{
    if (s->start_ms < 0 || s->end_ms < s->start_ms)
        return err_set(err, ERR_INVALID, "%s runs from %lld to %lld ms", label,
                       (long long)s->start_ms, (long long)s->end_ms);
    if (!(s->confidence == -1 || (s->confidence >= 0 && s->confidence <= 1)))
        return err_set(err, ERR_INVALID, "%s has confidence %g, not 0..1", label, s->confidence);
    if (!s->text)
        return err_set(err, ERR_INVALID, "%s has no text", label);
    return 0;
}

int cat_asset_set_enrichment(struct catalog *c, const char *asset_id, const char *language,
                             const char *ai_json, const struct cat_segment *segs, size_t nsegs,
                             int set_segments, struct err *err)
{
    if (check_id("asset", asset_id, err) < 0)
        return -1;
    if (language && check_language(language, err) < 0)
        return -1;
    if (ai_json) {
        json_t *j = json_loads(ai_json, JSON_REJECT_DUPLICATES, NULL);
        int ok = json_is_object(j);

        json_decref(j);
        if (!ok)
            return err_set(err, ERR_INVALID, "the AI metadata is not a JSON object");
    }
    if (set_segments && nsegs > CAT_MAX_SEGMENTS)
        return err_set(err, ERR_LIMIT, "a transcript has at most %d segments, not %zu",
                       CAT_MAX_SEGMENTS, nsegs);
    for (size_t i = 0; set_segments && i < nsegs; i++) {
        const struct cat_segment *s = &segs[i];

        if (s->idx != (int)i)
            return err_set(err, ERR_INVALID,
                           "segment %zu has idx %d: segments are numbered "
                           "0, 1, 2 ... in order",
                           i, s->idx);
        {
            char label[48];

            (void)snprintf(label, sizeof(label), "segment %zu", i);
            if (cat_segment_check(s, label, err) < 0)
                return -1;
        }
    }
    return logged("asset_set_enrichment",
                  c->ops->search->enrichment_set(c, asset_id, language, ai_json, segs, nsegs,
                                                 set_segments, err),
                  err);
}

static const char *const facet_names[CAT_FACET_COUNT] = {
    "type", "category", "program", "tags", "entities", "objects", "created_year", "created_month",
};

const char *cat_facet_name(enum cat_facet f)
{
    return f < CAT_FACET_COUNT ? facet_names[f] : "";
}

int cat_facet_parse(const char *name)
{
    for (int i = 0; i < CAT_FACET_COUNT; i++)
        if (strcmp(name, facet_names[i]) == 0)
            return i;
    return -1;
}

void cat_search_result_release(struct cat_search_result *r)
{
    for (size_t i = 0; i < r->nhits; i++)
        free(r->hits[i].text);
    free(r->hits);
    for (int f = 0; f < CAT_FACET_COUNT; f++) {
        for (size_t i = 0; i < r->nfacets[f]; i++)
            free(r->facets[f][i].value);
        free(r->facets[f]);
    }
    for (size_t i = 0; i < r->nterms; i++)
        free(r->terms[i]);
    free(r->terms);
    for (size_t i = 0; i < r->nprefixes; i++)
        free(r->prefixes[i]);
    free(r->prefixes);
    memset(r, 0, sizeof(*r));
}

int cat_search(struct catalog *c, const struct cat_search *q, struct cat_search_result *out,
               struct err *err)
{
    memset(out, 0, sizeof(*out));
    if (q->size < 1 || q->size > CAT_SEARCH_SIZE_MAX)
        return err_set(err, ERR_INVALID, "size must be 1..%d", CAT_SEARCH_SIZE_MAX);
    if (q->facet_size < 1 || q->facet_size > 100)
        return err_set(err, ERR_INVALID, "facet_size must be 1..100");
    if (q->min_confidence != -1 && !(q->min_confidence >= 0 && q->min_confidence <= 1))
        return err_set(err, ERR_INVALID, "min_confidence must be 0..1");
    if (logged("search", c->ops->search->search(c, q, out, err), err) < 0) {
        cat_search_result_release(out);
        return -1;
    }
    return 0;
}

int cat_search_suggest(struct catalog *c, const char *prefix, int limit, enum cat_role role,
                       int (*cb)(void *ctx, const struct cat_suggestion *s), void *ctx,
                       struct err *err)
{
    if (limit < 1 || limit > 50)
        return err_set(err, ERR_INVALID, "limit must be 1..50");
    return logged("search_suggest", c->ops->search->suggest(c, prefix, limit, role, cb, ctx, err),
                  err);
}

int cat_segments_list(struct catalog *c, const char *asset_id, int after_idx, int limit,
                      int (*cb)(void *ctx, const struct cat_segment *s), void *ctx, struct err *err)
{
    if (check_id("asset", asset_id, err) < 0)
        return -1;
    if (limit < 1 || limit > 1000)
        return err_set(err, ERR_INVALID, "limit must be 1..1000");
    return logged("segments_list",
                  c->ops->search->segments_list(c, asset_id, after_idx, limit, cb, ctx, err), err);
}

int cat_asset_set_technical(struct catalog *c, const char *id, const char *type,
                            const char *mime_type, const char *technical_json, struct err *err)
{
    if (check_id("asset", id, err) < 0)
        return -1;
    if (type && check_type(type, err) < 0)
        return -1;
    return logged("asset_set_technical",
                  c->ops->wf->asset_set_technical(c, id, type, mime_type, technical_json, err),
                  err);
}

int cat_asset_set_master(struct catalog *c, const char *id, const char *sha256, const char *key,
                         int64_t size, struct err *err)
{
    if (check_id("asset", id, err) < 0)
        return -1;
    if (!sha256 || strlen(sha256) != 64 || strspn(sha256, "0123456789abcdef") != 64)
        return err_set(err, ERR_INVALID, "content hash is not 64 lowercase hex digits");
    if (!key || !*key)
        return err_set(err, ERR_INVALID, "master storage key is required");
    if (size < 0)
        return err_set(err, ERR_INVALID, "master size is negative");
    return logged("asset_set_master", c->ops->wf->asset_set_master(c, id, sha256, key, size, err),
                  err);
}

int cat_asset_mark_duplicate(struct catalog *c, const char *id, const char *duplicate_of,
                             const char *reason, struct err *err)
{
    if (check_id("asset", id, err) < 0 || check_id("duplicate asset", duplicate_of, err) < 0)
        return -1;
    return logged("asset_mark_duplicate",
                  c->ops->wf->asset_mark_duplicate(c, id, duplicate_of, reason, err), err);
}

/* ---- renditions ------------------------------------------------------------------------------ */

static const char *const rend_statuses[] = {REND_PENDING, REND_RUNNING, REND_READY, REND_FAILED,
                                            REND_EXPIRED};

void cat_rendition_release(struct cat_rendition *r)
{
    if (!r)
        return;
    free(r->storage_key);
    free(r->mime_type);
    free(r->files);
    free(r->params);
    free(r->error);
    r->storage_key = NULL;
    r->mime_type = NULL;
    r->files = NULL;
    r->params = NULL;
    r->error = NULL;
}

/* s must end within its field of n bytes (the struct's char arrays). */
static int check_fits(const char *what, const char *s, size_t n, struct err *err)
{
    if (strnlen(s, n) == n)
        return err_set(err, ERR_INVALID, "%s is longer than %zu bytes", what, n - 1);
    return 0;
}

static int check_profile(const char *profile, int version, struct err *err)
{
    size_t max = sizeof(((struct cat_rendition *)NULL)->profile_name) - 1;

    if (!profile || !*profile)
        return err_set(err, ERR_INVALID, "rendition profile name is required");
    if (strnlen(profile, max + 1) > max)
        return err_set(err, ERR_INVALID, "rendition profile name is longer than %zu bytes", max);
    if (version < 1)
        return err_set(err, ERR_INVALID, "rendition profile version %d is less than 1", version);
    return 0;
}

/* "" (the standard rendition) or an on-demand request's id. */
static int check_variant(const char *variant, struct err *err)
{
    if (strnlen(variant, 37) == 37 || (*variant && !util_uuid_valid(variant)))
        return err_set(err, ERR_INVALID, "rendition variant '%.36s' is neither \"\" nor a uuid",
                       variant);
    return 0;
}

static int check_measure(const char *what, int64_t v, struct err *err)
{
    if (v < -1)
        return err_set(err, ERR_INVALID, "rendition %s %lld is negative (-1: unknown)", what,
                       (long long)v);
    return 0;
}

/* The backend's workflow operations (where the renditions are), if it has them. */
static const struct catalog_wf_ops *rend_ops(struct catalog *c, struct err *err)
{
    if (!c->ops->wf)
        err_set(err, ERR_UNSUPPORTED, "catalog backend %s has no renditions", c->ops->name);
    return c->ops->wf;
}

int cat_rendition_put(struct catalog *c, struct cat_rendition *r, struct err *err)
{
    const struct catalog_wf_ops *ops = rend_ops(c, err);

    if (!ops)
        return -1;
    if (check_fits("rendition id", r->id, sizeof(r->id), err) < 0)
        return -1;
    if (r->id[0] && !util_uuid_valid(r->id))
        return err_set(err, ERR_INVALID, "rendition id '%s' is not a uuid", r->id);
    if (check_fits("asset id", r->asset_id, sizeof(r->asset_id), err) < 0 ||
        check_id("asset", r->asset_id, err) < 0 ||
        check_profile(r->profile_name, r->profile_version, err) < 0 ||
        check_variant(r->variant, err) < 0 ||
        check_fits("rendition status", r->status, sizeof(r->status), err) < 0 ||
        check_in("rendition status", r->status, rend_statuses, ARRAY_LEN(rend_statuses), err) < 0 ||
        check_fits("rendition bucket", r->bucket, sizeof(r->bucket), err) < 0 ||
        check_fits("rendition workflow id", r->workflow_id, sizeof(r->workflow_id), err) < 0)
        return -1;
    if (check_measure("file_size_bytes", r->file_size_bytes, err) < 0 ||
        check_measure("width", r->width, err) < 0 || check_measure("height", r->height, err) < 0 ||
        check_measure("duration_ms", r->duration_ms, err) < 0 ||
        check_measure("bitrate_kbps", r->bitrate_kbps, err) < 0)
        return -1;
    if (r->expires_at < 0 || r->created_at < 0)
        return err_set(err, ERR_INVALID, "rendition times must not be negative");
    return logged("rendition_put", ops->rendition_put(c, r, err), err);
}

int cat_rendition_get(struct catalog *c, const char *id, struct cat_rendition *out, struct err *err)
{
    const struct catalog_wf_ops *ops = rend_ops(c, err);

    if (!ops || check_id("rendition", id, err) < 0) {
        memset(out, 0, sizeof(*out)); /* as the backend leaves it on failure */
        return -1;
    }
    return logged("rendition_get", ops->rendition_get(c, id, out, err), err);
}

int cat_rendition_find(struct catalog *c, const char *asset_id, const char *profile, int version,
                       const char *variant, struct cat_rendition *out, struct err *err)
{
    const struct catalog_wf_ops *ops = rend_ops(c, err);

    if (!variant)
        variant = "";
    if (!ops || check_id("asset", asset_id, err) < 0 || check_profile(profile, version, err) < 0 ||
        check_variant(variant, err) < 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    return logged("rendition_find",
                  ops->rendition_find(c, asset_id, profile, version, variant, out, err), err);
}

int cat_rendition_list(struct catalog *c, const char *asset_id,
                       int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                       struct err *err)
{
    const struct catalog_wf_ops *ops = rend_ops(c, err);

    if (!ops || check_id("asset", asset_id, err) < 0)
        return -1;
    return logged("rendition_list", ops->rendition_list(c, asset_id, cb, ctx, err), err);
}

int cat_renditions_expired(struct catalog *c, int64_t now, int limit,
                           int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                           struct err *err)
{
    const struct catalog_wf_ops *ops = rend_ops(c, err);

    if (!ops)
        return -1;
    if (limit <= 0)
        return 0;
    return logged("renditions_expired", ops->renditions_expired(c, now, limit, cb, ctx, err), err);
}
