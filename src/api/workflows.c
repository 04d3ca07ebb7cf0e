/*
 * api: the workflow resources. Reads come from the catalog (cat_wf_*); starting, cancelling
 * and retrying go through the engine (jobs_workflow_*), which does the work in one catalog
 * transaction and wakes the workers. Only diagnostic workflows may be started here (and
 * only with `diagnostics = 1`): the others are started by acervo itself.
 */
#include "api/api_int.h"
#include "jobs/jobs.h"

#include <stdlib.h>
#include <string.h>

/** Default and largest page of GET /api/v1/workflows. */
#define WF_LIST_DEFAULT 50
#define WF_LIST_MAX     1000
/** History rows and activities shown in GET /api/v1/workflows/{id}; the rest is paged. */
#define WF_HISTORY_SHOWN    1000
#define WF_ACTIVITIES_SHOWN 1000
/** History rows read at most to build the attempts of the activities shown. */
#define WF_ATTEMPT_SCAN_MAX 200000
/** Page of GET /api/v1/workflows/{id}/history (the catalog's cap). */
#define WF_HISTORY_PAGE_MAX 1000
/** Longest workflow type (struct cat_workflow.type holds 31). */
#define WF_TYPE_MAX 31
/** Bounds of a start's priority and Idempotency-Key. */
#define WF_PRIORITY_MAX 100
#define WF_IDEM_MAX     128

/** The prefix of the workflow types POST /api/v1/workflows starts. */
static const char diag_prefix[] = "diagnostic.";

static const char *const wf_statuses[] = {WF_RUNNING, WF_COMPLETED, WF_FAILED, WF_CANCELLING,
                                          WF_CANCELLED};

/* ---- encoding ---------------------------------------------------------------------------- */

/* a string member, null when absent or empty */
static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/* an RFC 3339 time with milliseconds, null for 0 (not set) */
static json_t *time_or_null(int64_t ms)
{
    char t[32];

    if (ms <= 0)
        return json_null();
    util_time_rfc3339_ms(ms, t);
    return json_string(t);
}

/* JSON text parsed (any value), or null when absent or unparsable */
static json_t *json_or_null(const char *text)
{
    json_t *v = text && *text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;

    return v ? v : json_null();
}

/* The workflow as lists show it. New reference. */
static json_t *wf_summary_json(const struct cat_workflow *w)
{
    json_t *o = json_object(), *links = json_object();
    char path[128];

    json_object_set_new(o, "id", json_string(w->id));
    json_object_set_new(o, "type", json_string(w->type));
    json_object_set_new(o, "status", json_string(w->status));
    json_object_set_new(o, "asset_id", str_or_null(w->asset_id));
    json_object_set_new(o, "created_by", str_or_null(w->created_by));
    json_object_set_new(o, "error", str_or_null(w->error));
    json_object_set_new(o, "created_at", time_or_null(w->created_at));
    json_object_set_new(o, "updated_at", time_or_null(w->updated_at));
    json_object_set_new(o, "finished_at", time_or_null(w->finished_at));
    snprintf(path, sizeof(path), "/api/v1/workflows/%s", w->id);
    json_object_set_new(links, "self", json_string(path));
    snprintf(path, sizeof(path), "/api/v1/workflows/%s/history", w->id);
    json_object_set_new(links, "history", json_string(path));
    if (w->asset_id[0]) {
        snprintf(path, sizeof(path), "/api/v1/assets/%s", w->asset_id);
        json_object_set_new(links, "asset", json_string(path));
    }
    json_object_set_new(o, "links", links);
    return o;
}

static json_t *step_json(const struct cat_step *s)
{
    json_t *o = json_object();

    json_object_set_new(o, "name", json_string(s->step));
    json_object_set_new(o, "status", json_string(s->status));
    json_object_set_new(o, "jobs_total", json_integer(s->jobs_total));
    json_object_set_new(o, "jobs_done", json_integer(s->jobs_done));
    json_object_set_new(o, "started_at", time_or_null(s->started_at));
    json_object_set_new(o, "finished_at", time_or_null(s->finished_at));
    return o;
}

/* One job as an activity, without its attempts. New reference. */
static json_t *job_json(const struct cat_job *j)
{
    json_t *o = json_object();

    json_object_set_new(o, "id", json_integer(j->id));
    json_object_set_new(o, "step", json_string(j->step));
    json_object_set_new(o, "item", json_integer(j->item));
    json_object_set_new(o, "activity", json_string(j->activity));
    json_object_set_new(o, "queue", json_string(j->queue));
    json_object_set_new(o, "status", json_string(j->status));
    json_object_set_new(o, "priority", json_integer(j->priority));
    json_object_set_new(o, "attempt", json_integer(j->attempt));
    json_object_set_new(o, "max_attempts", json_integer(j->max_attempts));
    json_object_set_new(o, "progress", j->progress < 0 ? json_null() : json_real(j->progress));
    json_object_set_new(o, "progress_detail", str_or_null(j->progress_detail));
    json_object_set_new(o, "lease_owner", str_or_null(j->lease_owner));
    json_object_set_new(o, "lease_until", time_or_null(j->lease_until));
    json_object_set_new(o, "run_after", time_or_null(j->run_after));
    json_object_set_new(o, "error", str_or_null(j->error));
    json_object_set_new(o, "error_class", str_or_null(j->error_class));
    json_object_set_new(o, "idempotency_key", str_or_null(j->idempotency_key));
    json_object_set_new(o, "cancel_requested", json_boolean(j->cancel_requested));
    json_object_set_new(o, "input", json_or_null(j->input));
    json_object_set_new(o, "output", json_or_null(j->output));
    json_object_set_new(o, "created_at", time_or_null(j->created_at));
    json_object_set_new(o, "started_at", time_or_null(j->started_at));
    json_object_set_new(o, "heartbeat_at", time_or_null(j->heartbeat_at));
    json_object_set_new(o, "finished_at", time_or_null(j->finished_at));
    return o;
}

/* ---- validation and loading ---------------------------------------------------------------- */

static int in_set(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return 1;
    return 0;
}

/* A path id: 400 when it is not a UUID (it can never name a workflow). */
static int wf_id_check(const char *id, struct err *err)
{
    if (!util_uuid_valid(id))
        return err_set(err, ERR_INVALID, "a workflow id is a UUID; '%.64s' is not", id);
    return 0;
}

/* Reads workflow id into w (release with cat_workflow_release); 400 / 404 as problems. */
static int wf_load(struct api_state *st, const char *id, struct cat_workflow *w, struct err *err)
{
    memset(w, 0, sizeof(*w));
    if (wf_id_check(id, err) < 0)
        return -1;
    if (cat_wf_get(st->ctx->cat, id, w, err) < 0) {
        if (err->code == ERR_NOTFOUND)
            return err_set(err, ERR_NOTFOUND, "workflow %s not found", id);
        return -1;
    }
    return 0;
}

/* ---- GET /api/v1/workflows --------------------------------------------------------------- */

struct list_ctx {
    json_t *items;
    int count;
    char last[37];
};

static int list_one(void *p, const struct cat_workflow *w)
{
    struct list_ctx *l = p;

    json_array_append_new(l->items, wf_summary_json(w));
    l->count++;
    snprintf(l->last, sizeof(l->last), "%s", w->id);
    return 0;
}

/* An optional query parameter that must be a UUID when present and not empty. */
static int query_uuid(struct http_req *req, const char *name, const char *what, const char **out,
                      struct err *err)
{
    const char *v = http_query(req, name);

    *out = v && *v ? v : NULL;
    if (*out && !util_uuid_valid(*out))
        return err_set(err, ERR_INVALID, "query parameter '%s' must be %s (a UUID)", name, what);
    return 0;
}

void api__workflows_list(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    const char *type, *status = http_query(req, "status");
    const char *queue = http_query(req, "queue"), *cursor = http_query(req, "cursor");
    const char *asset_id, *created_by;
    struct cat_workflow_filter f;
    struct list_ctx l;
    int64_t limit;
    json_t *resp;
    struct err e;

    (void)params;
    if (query_uuid(req, "asset_id", "an asset id", &asset_id, &e) < 0 ||
        query_uuid(req, "created_by", "a user id", &created_by, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (api__query_string(req, "type", 0, WF_TYPE_MAX, 0, &type, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (status && *status && !in_set(status, wf_statuses, ARRAY_LEN(wf_statuses))) {
        api__fail(req, ERR_INVALID,
                  "query parameter 'status' must be one of running, completed, failed, "
                  "cancelling, cancelled");
        return;
    }
    if (queue && *queue && jobs_queue_parse(queue) < 0) {
        api__fail(req, ERR_INVALID,
                  "query parameter 'queue' must be one of ingest, transcode, "
                  "transcode-interactive, ai-enrich, distribution");
        return;
    }
    if (api__query_int(req, "limit", 1, WF_LIST_MAX, WF_LIST_DEFAULT, &limit, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (cursor && !util_uuid_valid(cursor)) {
        api__fail(req, ERR_INVALID, "query parameter 'cursor' must be a workflow id (a UUID)");
        return;
    }
    memset(&f, 0, sizeof(f));
    f.asset_id = asset_id ? asset_id : "";
    f.type = type ? type : "";
    f.status = status ? status : "";
    f.created_by = created_by ? created_by : "";
    f.queue = queue ? queue : "";
    f.after_id = cursor ? cursor : "";
    f.limit = (int)limit;
    memset(&l, 0, sizeof(l));
    l.items = json_array();
    if (cat_wf_list(st->ctx->cat, &f, list_one, &l, &e) < 0) {
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

/* ---- GET /api/v1/workflows/{id} ---------------------------------------------------------- */

static int steps_one(void *p, const struct cat_step *s)
{
    json_array_append_new(p, step_json(s));
    return 0;
}

/* Puts steps (started ones, in start order) in the order of the workflow's definition. */
static void steps_in_definition_order(const char *type, json_t *steps)
{
    const struct jobs_workflow_def *def = jobs_workflow_find(type);
    json_t *sorted;

    if (!def)
        return;
    sorted = json_array();
    for (size_t i = 0; i < def->nsteps; i++) {
        size_t k;
        json_t *s;

        json_array_foreach(steps, k, s)
        {
            if (strcmp(json_string_value(json_object_get(s, "name")), def->steps[i].name) == 0)
                json_array_append(sorted, s);
        }
    }
    if (json_array_size(sorted) == json_array_size(steps)) {
        json_array_clear(steps);
        json_array_extend(steps, sorted);
    }
    json_decref(sorted);
}

/* An activity shown: its job id and its attempts array (borrowed from the activity). */
struct shown_job {
    int64_t id;
    json_t *attempts;
};

/* The activities shown and the attempts built for them from the history. */
struct detail_ctx {
    json_t *activities;
    struct shown_job *shown; /* ascending by id (jobs come in id order) */
    int n;
    int jobs_truncated; /* more jobs than WF_ACTIVITIES_SHOWN */
    json_t *history;
    int64_t events;     /* history rows seen */
    int64_t last_event; /* id of the last one */
};

static int jobs_one(void *p, const struct cat_job *j)
{
    struct detail_ctx *d = p;
    json_t *o, *attempts;

    if (d->n == WF_ACTIVITIES_SHOWN) {
        d->jobs_truncated = 1;
        return 1; /* stop */
    }
    o = job_json(j);
    attempts = json_array();
    json_object_set_new(o, "attempts", attempts);
    d->shown[d->n].id = j->id;
    d->shown[d->n].attempts = attempts;
    d->n++;
    json_array_append_new(d->activities, o);
    return 0;
}

/* The attempts array of job id among those shown, or NULL. */
static json_t *attempts_of(const struct detail_ctx *d, int64_t id)
{
    int lo = 0, hi = d->n - 1;

    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;

        if (d->shown[mid].id == id)
            return d->shown[mid].attempts;
        if (d->shown[mid].id < id)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

/* The last attempt entry numbered attempt in arr, or NULL. */
static json_t *attempt_find(json_t *arr, json_int_t attempt)
{
    for (size_t i = json_array_size(arr); i > 0; i--) {
        json_t *a = json_array_get(arr, i - 1);

        if (json_integer_value(json_object_get(a, "attempt")) == attempt)
            return a;
    }
    return NULL;
}

/*
 * Folds one history row into the attempts of its job: job.started opens an attempt
 * ("running"); job.completed, job.failed, job.retry_scheduled, job.cancelled,
 * job.handed_back and job.lease_expired end the open attempt with that number. After a lease
 * expired, the reaper's retry_scheduled / failed / cancelled row only supplies the error.
 */
static void attempt_fold(struct detail_ctx *d, json_t *ev)
{
    static const struct {
        const char *type;
        const char *outcome;
    } ends[] = {
        {"job.completed", "completed"},
        {"job.failed", "failed"},
        {"job.retry_scheduled", "retry_scheduled"},
        {"job.cancelled", "cancelled"},
        {"job.lease_expired", "lease_expired"},
        {"job.handed_back", "handed_back"},
    };
    const char *type = json_string_value(json_object_get(ev, "type"));
    json_t *jid = json_object_get(ev, "job_id"), *arr, *a, *err_v;
    json_int_t attempt = json_integer_value(json_object_get(ev, "attempt"));
    const char *outcome = NULL, *cur;

    if (!type || !json_is_integer(jid) || strncmp(type, "job.", 4) != 0)
        return;
    arr = attempts_of(d, json_integer_value(jid));
    if (!arr)
        return;
    if (strcmp(type, "job.started") == 0) {
        json_array_append_new(arr, json_pack("{s:I,s:O?,s:O?,s:n,s:s,s:n}", "attempt", attempt,
                                             "worker", json_object_get(ev, "worker"), "started_at",
                                             json_object_get(ev, "ts"), "ended_at", "outcome",
                                             "running", "error"));
        return;
    }
    for (size_t i = 0; i < ARRAY_LEN(ends); i++)
        if (strcmp(type, ends[i].type) == 0)
            outcome = ends[i].outcome;
    a = outcome ? attempt_find(arr, attempt) : NULL;
    if (!a)
        return;
    err_v = json_object_get(json_object_get(ev, "detail"), "error");
    cur = json_string_value(json_object_get(a, "outcome"));
    if (cur && strcmp(cur, "running") == 0) {
        json_object_set_new(a, "outcome", json_string(outcome));
        json_object_set(a, "ended_at", json_object_get(ev, "ts"));
    } else if (!cur || strcmp(cur, "lease_expired") != 0) {
        return; /* ended already: a later row about the same attempt */
    }
    if (json_is_string(err_v) && json_is_null(json_object_get(a, "error")))
        json_object_set(a, "error", err_v);
}

static int events_one(void *p, const char *row)
{
    struct detail_ctx *d = p;
    json_t *ev = json_loads(row, 0, NULL);

    if (!ev) {
        log_write(LOG_ERROR, "api", "workflow history row is not JSON");
        return 0;
    }
    d->events++;
    d->last_event = json_integer_value(json_object_get(ev, "id"));
    attempt_fold(d, ev);
    if (json_array_size(d->history) < WF_HISTORY_SHOWN)
        json_array_append_new(d->history, ev);
    else
        json_decref(ev);
    return 0;
}

/*
 * Reads the history page by page: the first WF_HISTORY_SHOWN rows are shown, every row
 * (up to WF_ATTEMPT_SCAN_MAX) feeds the attempts. *scanned_all is 0 if the scan stopped
 * at its cap.
 */
static int history_scan(struct catalog *cat, const char *id, struct detail_ctx *d, int *scanned_all,
                        struct err *err)
{
    *scanned_all = 1;
    for (;;) {
        int64_t before = d->events;

        if (cat_wf_events(cat, id, d->last_event, WF_HISTORY_PAGE_MAX, events_one, d, err) < 0)
            return -1;
        if (d->events - before < WF_HISTORY_PAGE_MAX)
            return 0;
        if (d->events >= WF_ATTEMPT_SCAN_MAX) {
            *scanned_all = 0;
            return 0;
        }
    }
}

void api__workflows_get(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    struct catalog *cat = st->ctx->cat;
    struct cat_workflow w;
    struct detail_ctx d;
    json_t *o = NULL, *steps;
    int scanned_all, rc;
    struct err e;

    memset(&d, 0, sizeof(d));
    if (wf_load(st, params[0], &w, &e) < 0)
        goto out_err;
    o = wf_summary_json(&w);
    json_object_set_new(o, "input", json_or_null(w.input));
    steps = json_array();
    json_object_set_new(o, "steps", steps);
    if (cat_wf_steps(cat, w.id, steps_one, steps, &e) < 0)
        goto out_err;
    steps_in_definition_order(w.type, steps);
    d.activities = json_array();
    json_object_set_new(o, "activities", d.activities);
    d.shown = arena_alloc(&req->arena, WF_ACTIVITIES_SHOWN * sizeof(*d.shown));
    /* one more than shown, to know whether the list was cut */
    rc = cat_wf_jobs(cat, w.id, WF_ACTIVITIES_SHOWN + 1, jobs_one, &d, &e);
    if (rc < 0)
        goto out_err;
    json_object_set_new(o, "activities_truncated", json_boolean(d.jobs_truncated));
    d.history = json_array();
    json_object_set_new(o, "history", d.history);
    if (history_scan(cat, w.id, &d, &scanned_all, &e) < 0)
        goto out_err;
    json_object_set_new(o, "history_truncated", json_boolean(d.events > WF_HISTORY_SHOWN));
    json_object_set_new(o, "attempts_truncated", json_boolean(!scanned_all));
    cat_workflow_release(&w);
    api__send_json(req, 200, o);
    return;

out_err:
    json_decref(o);
    cat_workflow_release(&w);
    api__send_err(req, &e);
}

/* ---- GET /api/v1/workflows/{id}/history -------------------------------------------------- */

struct page_ctx {
    json_t *items;
    int count;
    int64_t last;
};

static int page_one(void *p, const char *row)
{
    struct page_ctx *pg = p;
    json_t *ev = json_loads(row, 0, NULL);

    if (!ev) {
        log_write(LOG_ERROR, "api", "workflow history row is not JSON");
        return 0;
    }
    pg->count++;
    pg->last = json_integer_value(json_object_get(ev, "id"));
    json_array_append_new(pg->items, ev);
    return 0;
}

void api__workflows_history(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    struct cat_workflow w;
    struct page_ctx pg;
    int64_t after, limit;
    json_t *resp;
    struct err e;

    if (wf_id_check(params[0], &e) < 0 ||
        api__query_int(req, "after", 0, INT64_MAX, 0, &after, &e) < 0 ||
        api__query_int(req, "limit", 1, WF_HISTORY_PAGE_MAX, WF_HISTORY_PAGE_MAX, &limit, &e) < 0 ||
        wf_load(st, params[0], &w, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    cat_workflow_release(&w);
    memset(&pg, 0, sizeof(pg));
    pg.items = json_array();
    if (cat_wf_events(st->ctx->cat, params[0], after, (int)limit, page_one, &pg, &e) < 0) {
        json_decref(pg.items);
        api__send_err(req, &e);
        return;
    }
    resp = json_object();
    json_object_set_new(resp, "items", pg.items);
    json_object_set_new(resp, "next_after",
                        pg.count == (int)limit && pg.count > 0 ? json_integer(pg.last)
                                                               : json_null());
    api__send_json(req, 200, resp);
}

/* ---- POST /api/v1/workflows/{id}/cancel and /retry --------------------------------------------
 */

/* Cancels or retries; 202 with the summary afterwards. */
static void steer(struct http_req *req, const char *id, int cancel)
{
    struct api_state *st = api__state(req);
    const char *action = cancel ? "workflow.cancel" : "workflow.retry";
    struct cat_workflow w;
    int rc;
    struct err e;

    if (wf_id_check(id, &e) < 0)
        goto out_err;
    if (cancel)
        rc = jobs_workflow_cancel(st->ctx->cat, id, st->who.user_id, &e);
    else
        rc = jobs_workflow_retry(st->ctx->cat, id, st->who.user_id, &e);
    if (rc < 0) {
        if (e.code == ERR_NOTFOUND)
            err_set(&e, ERR_NOTFOUND, "workflow %s not found", id);
        goto out_err;
    }
    if (wf_load(st, id, &w, &e) < 0)
        goto out_err;
    api__audit(req, action, "workflow", id,
               json_pack("{s:s,s:s}", "type", w.type, "status", w.status));
    api__send_json(req, 202, wf_summary_json(&w));
    cat_workflow_release(&w);
    return;

out_err:
    api__send_err(req, &e);
}

void api__workflows_cancel(struct http_req *req, const char *const *params)
{
    steer(req, params[0], 1);
}

void api__workflows_retry(struct http_req *req, const char *const *params)
{
    steer(req, params[0], 0);
}

/* ---- POST /api/v1/workflows --------------------------------------------------------------- */

/* Whether this route may start type: 400 unknown, 403 not diagnostic or diagnostics off. */
static int type_allowed(const struct cfg *cfg, const char *type, struct err *err)
{
    if (!jobs_workflow_find(type))
        return err_set(err, ERR_INVALID, "unknown workflow type '%.64s'", type);
    if (strncmp(type, diag_prefix, sizeof(diag_prefix) - 1) != 0)
        return err_set(err, ERR_DENIED,
                       "workflows of type %s are started by acervo itself (ingest starts at "
                       "upload completion)",
                       type);
    if (cfg->diagnostics != 1)
        return err_set(err, ERR_DENIED, "diagnostic workflows are disabled; set diagnostics = 1");
    return 0;
}

void api__workflows_start(struct http_req *req, const char *const *params)
{
    static const char *const fields[] = {"type", "input", "priority", NULL};
    struct api_state *st = api__state(req);
    json_t *body = st->body, *input, *prio;
    const char *type, *idem = NULL;
    char idem_buf[WF_IDEM_MAX + 1];
    struct jobs_start s;
    struct cat_workflow w;
    char id[37];
    int existed = 0;
    struct err e;

    (void)params;
    memset(&w, 0, sizeof(w));
    switch (api__idempotency_key(req, WF_IDEM_MAX, idem_buf, &e)) {
    case -1:
        goto out_err;
    case 1:
        idem = idem_buf;
        break;
    default:
        break;
    }
    if (api__json_known(body, fields, "", &e) < 0 ||
        api__json_string(body, "type", 1, WF_TYPE_MAX, 0, &type, &e) < 0)
        goto out_err;
    if (!type) {
        err_set(&e, ERR_INVALID, "field 'type' is required");
        goto out_err;
    }
    input = json_object_get(body, "input");
    if (input && !json_is_object(input)) {
        err_set(&e, ERR_INVALID, "field 'input' must be an object");
        goto out_err;
    }
    prio = json_object_get(body, "priority");
    if (prio && (!json_is_integer(prio) || json_integer_value(prio) < -WF_PRIORITY_MAX ||
                 json_integer_value(prio) > WF_PRIORITY_MAX)) {
        err_set(&e, ERR_INVALID, "field 'priority' must be an integer from %d to %d",
                -WF_PRIORITY_MAX, WF_PRIORITY_MAX);
        goto out_err;
    }
    if (type_allowed(st->ctx->cfg, type, &e) < 0)
        goto out_err;

    memset(&s, 0, sizeof(s));
    s.type = type;
    s.created_by = st->who.user_id;
    s.input = input;
    s.idempotency_key = idem;
    s.priority = prio ? (int)json_integer_value(prio) : 0;
    if (jobs_workflow_start(st->ctx->cat, &s, id, &existed, &e) < 0)
        goto out_err;
    if (wf_load(st, id, &w, &e) < 0)
        goto out_err;
    if (existed) {
        /* the key names an earlier start: same type is a replay, another is a misuse */
        if (strcmp(w.type, type) != 0) {
            err_set(&e, ERR_CONFLICT,
                    "the Idempotency-Key was already used for workflow %s of type %s", w.id,
                    w.type);
            goto out_err;
        }
        http_resp_header(req, "Idempotent-Replayed", "true");
        api__send_json(req, 200, wf_summary_json(&w));
        goto out;
    }
    api__audit(req, "workflow.start", "workflow", w.id,
               json_pack("{s:s,s:i,s:s?}", "type", w.type, "priority", s.priority,
                         "idempotency_key", idem));
    http_resp_header(req, "Location", arena_printf(&req->arena, "/api/v1/workflows/%s", w.id));
    api__send_json(req, 201, wf_summary_json(&w));
    goto out;

out_err:
    api__send_err(req, &e);
out:
    cat_workflow_release(&w);
}

/* ---- GET /api/v1/queues ------------------------------------------------------------------- */

static int depth_one(void *p, const struct cat_queue_depth *dq)
{
    struct cat_queue_depth *all = p;
    int q = jobs_queue_parse(dq->queue);

    if (q >= 0)
        all[q] = *dq;
    return 0;
}

void api__queues_list(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    struct cat_queue_depth all[JOBS_Q_COUNT];
    json_t *items;
    struct err e;

    (void)params;
    memset(all, 0, sizeof(all));
    if (cat_queue_depths(st->ctx->cat, util_now_ms(), depth_one, all, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    items = json_array();
    for (int q = 0; q < JOBS_Q_COUNT; q++)
        json_array_append_new(items, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "name",
                                               jobs_queue_name((enum jobs_queue)q), "ready",
                                               (json_int_t)all[q].ready, "delayed",
                                               (json_int_t)all[q].delayed, "running",
                                               (json_int_t)all[q].leased, "oldest_ready_age_ms",
                                               (json_int_t)all[q].oldest_ready_ms, "worker_slots",
                                               (json_int_t)all[q].worker_slots));
    api__send_json(req, 200, json_pack("{s:o}", "items", items));
}
