/*
 * The engine's state transitions. Every change runs inside one catalog transaction and
 * appends its history rows there, so a workflow's state and its history never disagree
 * and a crash between two transitions loses nothing: the next worker picks up from the
 * last committed state (docs/internals/jobs.md).
 */
#include "jobs/jobs_int.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const queue_names[JOBS_Q_COUNT] = {
    [JOBS_Q_INGEST] = "ingest",
    [JOBS_Q_TRANSCODE] = "transcode",
    [JOBS_Q_TRANSCODE_INTERACTIVE] = "transcode-interactive",
    [JOBS_Q_AI_ENRICH] = "ai-enrich",
    [JOBS_Q_DISTRIBUTION] = "distribution",
};

const char *jobs_queue_name(enum jobs_queue q)
{
    return (int)q >= 0 && q < JOBS_Q_COUNT ? queue_names[q] : "?";
}

int jobs_queue_parse(const char *s)
{
    for (int i = 0; i < JOBS_Q_COUNT; i++)
        if (strcmp(s, queue_names[i]) == 0)
            return i;
    return -1;
}

const struct jobs_workflow_def *jobs_workflow_find(const char *type)
{
    for (size_t i = 0; jobs__workflows[i]; i++)
        if (strcmp(jobs__workflows[i]->type, type) == 0)
            return jobs__workflows[i];
    return NULL;
}

const struct jobs_activity *jobs_activity_find(const char *name)
{
    for (size_t i = 0; jobs__activities[i]; i++)
        if (strcmp(jobs__activities[i]->name, name) == 0)
            return jobs__activities[i];
    return NULL;
}

struct jobs_retry_policy jobs__policy(const struct jobs_activity *a)
{
    struct jobs_retry_policy p = a ? a->retry : (struct jobs_retry_policy){0};

    if (p.initial_ms <= 0)
        p.initial_ms = 1000;
    if (p.multiplier < 1)
        p.multiplier = 2;
    if (p.max_ms <= 0)
        p.max_ms = 300000;
    if (p.max_attempts <= 0)
        p.max_attempts = 5;
    return p;
}

int64_t jobs__backoff_ms(const struct jobs_retry_policy *p, int attempt)
{
    double ms = (double)p->initial_ms * pow(p->multiplier, attempt > 1 ? attempt - 1 : 0);

    return ms > (double)p->max_ms ? p->max_ms : (int64_t)ms;
}

void jobs__rings_ring(const struct jobs__rings *rings)
{
    for (int q = 0; q < JOBS_Q_COUNT; q++)
        if (rings->queues & (1u << q))
            jobs_doorbell_ring((enum jobs_queue)q);
    if (rings->cancel)
        jobs_doorbell_ring(JOBS_Q_COUNT);
}

/* ---- definitions ------------------------------------------------------------------------- */

static const struct jobs_step *def_step(const struct jobs_workflow_def *def, const char *name)
{
    for (size_t i = 0; i < def->nsteps; i++)
        if (strcmp(def->steps[i].name, name) == 0)
            return &def->steps[i];
    return NULL;
}

/* The steps step i waits for: its after list, or the previous entry. Returns the count. */
static size_t step_deps(const struct jobs_workflow_def *def, size_t i, const char *out[4])
{
    size_t n = 0;

    for (size_t k = 0; k < ARRAY_LEN(def->steps[i].after) && def->steps[i].after[k]; k++)
        out[n++] = def->steps[i].after[k];
    if (n == 0 && i > 0)
        out[n++] = def->steps[i - 1].name;
    return n;
}

/* ---- history ------------------------------------------------------------------------------- */

static int event(struct cat_tx *tx, const char *wf_id, const struct cat_job *j, const char *type,
                 const char *worker, json_t *detail, struct err *err)
{
    struct cat_event ev = {
        .workflow_id = wf_id,
        .job_id = j ? j->id : 0,
        .type = type,
        .step = j ? j->step : NULL,
        .attempt = j ? j->attempt : 0,
        .worker = worker,
    };
    char *text = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    int rc;

    ev.detail_json = text;
    rc = cat_tx_event_append(tx, &ev, err);
    free(text);
    json_decref(detail);
    return rc;
}

/* A history row about a step. */
static int step_event(struct cat_tx *tx, const char *wf_id, const char *step, const char *type,
                      int jobs, struct err *err)
{
    struct cat_event ev = {.workflow_id = wf_id, .type = type, .step = step};
    char detail[96];

    snprintf(detail, sizeof(detail), "{\"jobs\":%d}", jobs);
    ev.detail_json = detail;
    return cat_tx_event_append(tx, &ev, err);
}

/* ---- starting steps ------------------------------------------------------------------------ */

struct outputs_ctx {
    const struct jobs_workflow_def *def;
    json_t *obj;
};

static int outputs_cb(void *p, const char *step, int item, const char *output)
{
    struct outputs_ctx *o = p;
    const struct jobs_step *s = def_step(o->def, step);
    json_t *v = json_loads(output, JSON_DECODE_ANY, NULL);

    (void)item;
    if (!v)
        return 0;
    if (s && s->fanout) {
        json_t *arr = json_object_get(o->obj, step);

        if (!arr) {
            arr = json_array();
            json_object_set_new(o->obj, step, arr);
        }
        json_array_append_new(arr, v);
    } else {
        json_object_set_new(o->obj, step, v);
    }
    return 0;
}

/* The outputs of a workflow's completed jobs, {"step": output | [outputs]} (new ref). */
static json_t *outputs_load(struct cat_tx *tx, const struct jobs_workflow_def *def,
                            const char *wf_id, struct err *err)
{
    struct outputs_ctx o = {def, json_object()};

    if (cat_tx_job_outputs(tx, wf_id, outputs_cb, &o, err) < 0) {
        json_decref(o.obj);
        return NULL;
    }
    return o.obj;
}

/* The workflow's base priority, from one of its jobs. */
static int base_priority(const struct jobs_workflow_def *def, const struct cat_job *j)
{
    const struct jobs_step *s = def_step(def, j->step);

    return j->priority - (s ? s->priority : 0);
}

static int advance(struct cat_tx *tx, const struct jobs_workflow_def *def,
                   const struct cat_workflow *wf, int priority, struct jobs__rings *rings,
                   struct err *err);

/* Starts step i of wf: its jobs (one per fan-out item), their history, and the wake-up. */
static int step_start(struct cat_tx *tx, const struct jobs_workflow_def *def,
                      const struct cat_workflow *wf, size_t i, int priority,
                      struct jobs__rings *rings, struct err *err)
{
    const struct jobs_step *s = &def->steps[i];
    const struct jobs_activity *act = jobs_activity_find(s->activity);
    struct jobs_retry_policy pol = jobs__policy(act);
    json_t *items = NULL;
    int64_t now = util_now_ms();
    size_t n = 1;
    int rc = -1;

    if (s->fanout) {
        json_t *input = json_loads(wf->input, 0, NULL);
        json_t *outputs = outputs_load(tx, def, wf->id, err);

        if (!outputs) {
            json_decref(input);
            return -1;
        }
        rc = s->fanout(input, outputs, &items, err);
        json_decref(input);
        json_decref(outputs);
        if (rc < 0)
            return -1;
        if (!json_is_array(items)) {
            json_decref(items);
            return err_set(err, ERR_INTERNAL, "step %s: fan-out did not give an array", s->name);
        }
        n = json_array_size(items);
    }
    if (cat_tx_step_insert(tx, wf->id, s->name, (int)n, err) < 0)
        goto out;
    if (step_event(tx, wf->id, s->name, "step.started", (int)n, err) < 0)
        goto out;
    if (n == 0) {
        /* nothing to fan out over: the step is done at once */
        rc = cat_tx_step_set_status(tx, wf->id, s->name, JOB_COMPLETED, err);
        if (rc == 0)
            rc = step_event(tx, wf->id, s->name, "step.completed", 0, err);
        if (rc == 0)
            rc = advance(tx, def, wf, priority, rings, err);
        goto out;
    }
    if (!act) {
        err_set(err, ERR_INTERNAL, "workflow %s: step %s names unknown activity %s", def->type,
                s->name, s->activity);
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        struct cat_job j;
        char *in = NULL;

        memset(&j, 0, sizeof(j));
        snprintf(j.workflow_id, sizeof(j.workflow_id), "%s", wf->id);
        snprintf(j.step, sizeof(j.step), "%s", s->name);
        j.item = (int)k;
        snprintf(j.activity, sizeof(j.activity), "%s", s->activity);
        snprintf(j.queue, sizeof(j.queue), "%s", jobs_queue_name(s->queue));
        snprintf(j.status, sizeof(j.status), "%s", JOB_READY);
        j.priority = priority + s->priority;
        j.run_after = now + s->delay_ms;
        j.max_attempts = pol.max_attempts;
        j.progress = -1;
        snprintf(j.idempotency_key, sizeof(j.idempotency_key), "%s/%s/%zu", wf->id, s->name, k);
        if (items) {
            in = json_dumps(json_array_get(items, k), JSON_COMPACT | JSON_ENCODE_ANY);
            j.input = in;
        }
        j.created_at = now;
        rc = cat_tx_job_insert(tx, &j, err);
        free(in);
        if (rc < 0)
            goto out;
        rc = event(tx, wf->id, &j, "job.enqueued", NULL,
                   json_pack("{s:s,s:s,s:I}", "activity", j.activity, "queue", j.queue, "run_after",
                             (json_int_t)j.run_after),
                   err);
        if (rc < 0)
            goto out;
    }
    rings->queues |= 1u << s->queue;
    rc = 0;
out:
    json_decref(items);
    return rc;
}

/* Completes wf if every step has completed. */
static int maybe_complete(struct cat_tx *tx, const struct jobs_workflow_def *def,
                          const struct cat_workflow *wf, struct err *err)
{
    for (size_t i = 0; i < def->nsteps; i++) {
        struct cat_step st;

        if (cat_tx_step_get(tx, wf->id, def->steps[i].name, &st, err) < 0)
            return err->code == ERR_NOTFOUND ? 0 : -1;
        if (strcmp(st.status, JOB_COMPLETED) != 0)
            return 0;
    }
    if (cat_tx_wf_update(tx, wf->id, WF_COMPLETED, NULL, util_now_ms(), err) < 0)
        return -1;
    return event(tx, wf->id, NULL, "workflow.completed", NULL, NULL, err);
}

/*
 * Starts every step of wf that has not started and whose dependencies have all
 * completed, then completes wf when nothing is left.
 */
static int advance(struct cat_tx *tx, const struct jobs_workflow_def *def,
                   const struct cat_workflow *wf, int priority, struct jobs__rings *rings,
                   struct err *err)
{
    for (size_t i = 0; i < def->nsteps; i++) {
        const char *deps[4];
        size_t nd = step_deps(def, i, deps);
        struct cat_step st;
        int ready = 1;

        if (cat_tx_step_get(tx, wf->id, def->steps[i].name, &st, err) == 0)
            continue; /* started already */
        if (err->code != ERR_NOTFOUND)
            return -1;
        for (size_t k = 0; k < nd && ready; k++) {
            if (cat_tx_step_get(tx, wf->id, deps[k], &st, err) < 0) {
                if (err->code != ERR_NOTFOUND)
                    return -1;
                ready = 0;
            } else if (strcmp(st.status, JOB_COMPLETED) != 0) {
                ready = 0;
            }
        }
        if (ready && step_start(tx, def, wf, i, priority, rings, err) < 0)
            return -1;
    }
    return maybe_complete(tx, def, wf, err);
}

/* ---- ending workflows ------------------------------------------------------------------------ */

static int asset_fail(struct cat_tx *tx, const struct jobs_workflow_def *def,
                      const struct cat_workflow *wf, const char *reason, struct err *err)
{
    if (!def || !def->asset_fails || !wf->asset_id[0])
        return 0;
    if (cat_tx_asset_set_status(tx, wf->asset_id, ASSET_PROCESSING, ASSET_FAILED, reason, err) <
        0) {
        /* the asset moved on (a duplicate already failed it, or it was removed) */
        if (err->code == ERR_CONFLICT || err->code == ERR_NOTFOUND)
            return 0;
        return -1;
    }
    return 0;
}

/* Fails wf with reason: its other jobs are cancelled, its asset fails. */
static int workflow_fail(struct cat_tx *tx, const struct jobs_workflow_def *def,
                         const struct cat_workflow *wf, const char *reason,
                         struct jobs__rings *rings, struct err *err)
{
    int64_t leased = 0;

    if (cat_tx_jobs_cancel(tx, wf->id, &leased, err) < 0)
        return -1;
    if (leased > 0)
        rings->cancel = 1;
    if (cat_tx_wf_update(tx, wf->id, WF_FAILED, reason, util_now_ms(), err) < 0)
        return -1;
    if (event(tx, wf->id, NULL, "workflow.failed", NULL, json_pack("{s:s}", "error", reason), err) <
        0)
        return -1;
    return asset_fail(tx, def, wf, reason, err);
}

/* After a job of a cancelling workflow stopped: ends it when none runs any more. */
static int cancel_settle(struct cat_tx *tx, const struct jobs_workflow_def *def,
                         const struct cat_workflow *wf, struct err *err)
{
    int64_t n = 0;

    if (strcmp(wf->status, WF_CANCELLING) != 0)
        return 0;
    if (cat_tx_jobs_count(tx, wf->id, JOB_LEASED, &n, err) < 0)
        return -1;
    if (n > 0)
        return 0;
    if (cat_tx_wf_update(tx, wf->id, WF_CANCELLED, "cancelled", util_now_ms(), err) < 0)
        return -1;
    if (event(tx, wf->id, NULL, "workflow.cancelled", NULL, NULL, err) < 0)
        return -1;
    return asset_fail(tx, def, wf, "cancelled: the workflow was cancelled", err);
}

/* ---- results --------------------------------------------------------------------------------- */

static int code_nonretryable(const struct jobs_activity *a, enum err_code code)
{
    unsigned mask = a && a->nonretryable
                        ? a->nonretryable
                        : (1u << ERR_INVALID) | (1u << ERR_UNSUPPORTED) | (1u << ERR_LIMIT) |
                              (1u << ERR_DENIED) | (1u << ERR_UNAUTH) | (1u << ERR_NOTFOUND) |
                              (1u << ERR_MEDIA_TYPE);

    return (mask & (1u << code)) != 0;
}

/* A job that will not run again failed: the job, its step and its workflow. */
static int job_failed(struct cat_tx *tx, const struct jobs_workflow_def *def,
                      const struct cat_workflow *wf, const struct cat_job *j, const char *msg,
                      struct jobs__rings *rings, struct err *err)
{
    char reason[512];

    if (cat_tx_step_set_status(tx, wf->id, j->step, JOB_FAILED, err) < 0)
        return -1;
    if (strcmp(wf->status, WF_RUNNING) != 0)
        return cancel_settle(tx, def, wf, err);
    snprintf(reason, sizeof(reason), "%s failed after %d attempt%s: %s", j->step, j->attempt,
             j->attempt == 1 ? "" : "s", msg);
    return workflow_fail(tx, def, wf, reason, rings, err);
}

int jobs__result_apply(struct cat_tx *tx, const struct jobs__result *r, struct jobs__rings *rings,
                       struct err *err)
{
    const struct cat_job *j = &r->job;
    const struct jobs_activity *act = jobs_activity_find(j->activity);
    const struct jobs_workflow_def *def;
    struct jobs_retry_policy pol = jobs__policy(act);
    struct cat_workflow wf;
    const char *cls = err_code_name(r->code);
    int rc = -1, changed;

    memset(&wf, 0, sizeof(wf));
    if (cat_tx_wf_get(tx, j->workflow_id, &wf, err) < 0)
        return err->code == ERR_NOTFOUND ? 0 : -1; /* the workflow is gone: nothing to do */
    def = jobs_workflow_find(wf.type);
    if (r->ok) {
        changed = cat_tx_job_finish(tx, j->id, r->owner, j->attempt, JOB_COMPLETED, r->output, NULL,
                                    NULL, err);
        if (changed <= 0) {
            rc = changed;
            goto out;
        }
        if (event(tx, wf.id, j, "job.completed", r->owner, NULL, err) < 0)
            goto out;
        {
            struct cat_step st;

            /* counted whatever the workflow's state: a retry of a failed or cancelled
             * workflow must find the jobs that did complete counted */
            if (cat_tx_step_add_done(tx, wf.id, j->step, &st, err) < 0)
                goto out;
            if (st.jobs_done >= st.jobs_total &&
                (cat_tx_step_set_status(tx, wf.id, j->step, JOB_COMPLETED, err) < 0 ||
                 step_event(tx, wf.id, j->step, "step.completed", st.jobs_total, err) < 0))
                goto out;
            if (strcmp(wf.status, WF_RUNNING) != 0) {
                rc = cancel_settle(tx, def, &wf, err);
                goto out;
            }
            if (st.jobs_done < st.jobs_total) {
                rc = 0;
                goto out;
            }
        }
        rc = def ? advance(tx, def, &wf, base_priority(def, j), rings, err) : 0;
        goto out;
    }
    if (r->cancelled) {
        changed = cat_tx_job_finish(tx, j->id, r->owner, j->attempt, JOB_CANCELLED, NULL,
                                    "cancelled", "cancelled", err);
        if (changed <= 0) {
            rc = changed;
            goto out;
        }
        if (event(tx, wf.id, j, "job.cancelled", r->owner, NULL, err) < 0 ||
            cat_tx_step_set_status(tx, wf.id, j->step, JOB_CANCELLED, err) < 0)
            goto out;
        rc = cancel_settle(tx, def, &wf, err);
        goto out;
    }
    if (!r->permanent && !code_nonretryable(act, r->code) && j->attempt < j->max_attempts &&
        strcmp(wf.status, WF_RUNNING) == 0) {
        int64_t at = util_now_ms() + jobs__backoff_ms(&pol, j->attempt);

        changed = cat_tx_job_requeue(tx, j->id, r->owner, j->attempt, at, r->msg, cls, err);
        if (changed <= 0) {
            rc = changed;
            goto out;
        }
        rc = event(tx, wf.id, j, "job.retry_scheduled", r->owner,
                   json_pack("{s:s,s:s,s:I}", "error", r->msg, "error_class", cls, "run_after",
                             (json_int_t)at),
                   err);
        rings->queues |= 1u << (unsigned)jobs_queue_parse(j->queue);
        goto out;
    }
    changed =
        cat_tx_job_finish(tx, j->id, r->owner, j->attempt, JOB_FAILED, NULL, r->msg, cls, err);
    if (changed <= 0) {
        rc = changed;
        goto out;
    }
    if (event(tx, wf.id, j, "job.failed", r->owner,
              json_pack("{s:s,s:s,s:b}", "error", r->msg, "error_class", cls, "retryable",
                        !r->permanent && !code_nonretryable(act, r->code)),
              err) < 0)
        goto out;
    rc = job_failed(tx, def, &wf, j, r->msg, rings, err);
out:
    cat_workflow_release(&wf);
    return rc < 0 ? -1 : 0;
}

/* ---- expired leases ---------------------------------------------------------------------------
 */

struct reap_ctx {
    struct cat_job jobs[64];
    int n;
};

static int reap_cb(void *p, const struct cat_job *j)
{
    struct reap_ctx *c = p;

    if (c->n < (int)ARRAY_LEN(c->jobs)) {
        c->jobs[c->n] = *j;
        c->jobs[c->n].input = NULL;
        c->jobs[c->n].output = NULL;
        c->jobs[c->n].progress_detail = NULL;
        c->jobs[c->n].error = NULL;
        c->n++;
    }
    return 0;
}

static int reap_one(struct cat_tx *tx, const struct cat_job *j, struct jobs__rings *rings,
                    struct err *err)
{
    struct cat_workflow wf;
    const struct jobs_workflow_def *def;
    char msg[256];
    int rc = -1;

    memset(&wf, 0, sizeof(wf));
    snprintf(msg, sizeof(msg), "lease expired: worker %s stopped heartbeating", j->lease_owner);
    if (cat_tx_wf_get(tx, j->workflow_id, &wf, err) < 0)
        return err->code == ERR_NOTFOUND ? 0 : -1;
    def = jobs_workflow_find(wf.type);
    if (event(tx, wf.id, j, "job.lease_expired", j->lease_owner, NULL, err) < 0)
        goto out;
    if (j->cancel_requested || strcmp(wf.status, WF_RUNNING) != 0) {
        if (cat_tx_job_finish(tx, j->id, NULL, j->attempt, JOB_CANCELLED, NULL, msg, "cancelled",
                              err) < 0 ||
            event(tx, wf.id, j, "job.cancelled", NULL, NULL, err) < 0)
            goto out;
        rc = cancel_settle(tx, def, &wf, err);
        goto out;
    }
    if (j->attempt < j->max_attempts) {
        /* the worker is gone, not the job's fault: run it again at once */
        if (cat_tx_job_requeue(tx, j->id, NULL, j->attempt, util_now_ms(), msg, "lease", err) < 0)
            goto out;
        rings->queues |= 1u << (unsigned)jobs_queue_parse(j->queue);
        rc = event(tx, wf.id, j, "job.retry_scheduled", NULL,
                   json_pack("{s:s,s:s,s:I}", "error", msg, "error_class", "lease", "run_after",
                             (json_int_t)util_now_ms()),
                   err);
        goto out;
    }
    if (cat_tx_job_finish(tx, j->id, NULL, j->attempt, JOB_FAILED, NULL, msg, "lease", err) < 0 ||
        event(tx, wf.id, j, "job.failed", NULL,
              json_pack("{s:s,s:s,s:b}", "error", msg, "error_class", "lease", "retryable", 1),
              err) < 0)
        goto out;
    rc = job_failed(tx, def, &wf, j, msg, rings, err);
out:
    cat_workflow_release(&wf);
    return rc;
}

int jobs__reap(struct cat_tx *tx, int limit, struct jobs__rings *rings, int *n, struct err *err)
{
    struct reap_ctx *c = xcalloc(1, sizeof(*c));
    int rc = 0;

    if (limit > (int)ARRAY_LEN(c->jobs))
        limit = (int)ARRAY_LEN(c->jobs);
    *n = 0;
    if (cat_tx_jobs_expired(tx, limit, reap_cb, c, err) < 0)
        rc = -1;
    for (int i = 0; rc == 0 && i < c->n; i++)
        rc = reap_one(tx, &c->jobs[i], rings, err);
    if (rc == 0)
        *n = c->n;
    free(c);
    return rc;
}

/* ---- starting, cancelling, retrying -------------------------------------------------------- */

struct start_ctx {
    const struct jobs_start *s;
    const struct jobs_workflow_def *def;
    char *input;
    char id[37];
    int existed;
    struct jobs__rings rings;
};

static int start_body(struct cat_tx *tx, void *p, struct err *err)
{
    struct start_ctx *c = p;
    struct cat_workflow wf;

    memset(&c->rings, 0, sizeof(c->rings));
    c->existed = 0;
    memset(&wf, 0, sizeof(wf));
    if (c->s->idempotency_key && *c->s->idempotency_key) {
        if (cat_tx_wf_by_idem(tx, c->s->idempotency_key, &wf, err) == 0) {
            snprintf(c->id, sizeof(c->id), "%s", wf.id);
            cat_workflow_release(&wf);
            c->existed = 1;
            return 0;
        }
        if (err->code != ERR_NOTFOUND)
            return -1;
    }
    if (c->s->in_tx && c->s->in_tx(tx, c->s->in_tx_ctx, err) < 0)
        return -1;
    util_uuid7(c->id);
    snprintf(wf.id, sizeof(wf.id), "%s", c->id);
    snprintf(wf.type, sizeof(wf.type), "%s", c->def->type);
    snprintf(wf.status, sizeof(wf.status), "%s", WF_RUNNING);
    snprintf(wf.asset_id, sizeof(wf.asset_id), "%s", c->s->asset_id ? c->s->asset_id : "");
    snprintf(wf.created_by, sizeof(wf.created_by), "%s", c->s->created_by ? c->s->created_by : "");
    snprintf(wf.idempotency_key, sizeof(wf.idempotency_key), "%s",
             c->s->idempotency_key ? c->s->idempotency_key : "");
    wf.input = c->input;
    if (cat_tx_wf_insert(tx, &wf, err) < 0)
        return -1;
    if (event(tx, wf.id, NULL, "workflow.started", NULL,
              json_pack("{s:s,s:s?,s:s?}", "type", wf.type, "asset_id",
                        wf.asset_id[0] ? wf.asset_id : NULL, "created_by",
                        wf.created_by[0] ? wf.created_by : NULL),
              err) < 0)
        return -1;
    return advance(tx, c->def, &wf, c->s->priority, &c->rings, err);
}

int jobs_workflow_start(struct catalog *c, const struct jobs_start *s, char id[37], int *existed,
                        struct err *err)
{
    struct start_ctx sc = {.s = s};
    int rc;

    sc.def = jobs_workflow_find(s->type);
    if (!sc.def)
        return err_set(err, ERR_INVALID, "unknown workflow type '%s'", s->type);
    if (s->input && !json_is_object(s->input))
        return err_set(err, ERR_INVALID, "a workflow's input must be a JSON object");
    sc.input = s->input ? json_dumps(s->input, JSON_COMPACT) : xstrdup("{}");
    rc = cat_tx_run(c, start_body, &sc, err);
    free(sc.input);
    if (rc < 0)
        return -1;
    jobs__rings_ring(&sc.rings);
    snprintf(id, 37, "%s", sc.id);
    if (existed)
        *existed = sc.existed;
    return 0;
}

struct steer_ctx {
    const char *id;
    const char *by;
    struct jobs__rings rings;
};

static int cancel_body(struct cat_tx *tx, void *p, struct err *err)
{
    struct steer_ctx *c = p;
    const struct jobs_workflow_def *def;
    struct cat_workflow wf;
    int64_t leased = 0;
    int rc = -1;

    memset(&c->rings, 0, sizeof(c->rings));
    memset(&wf, 0, sizeof(wf));
    if (cat_tx_wf_get(tx, c->id, &wf, err) < 0)
        return -1;
    def = jobs_workflow_find(wf.type);
    if (strcmp(wf.status, WF_RUNNING) != 0) {
        if (strcmp(wf.status, WF_CANCELLING) == 0)
            rc = 0; /* asked already */
        else
            err_set(err, ERR_CONFLICT,
                    "workflow %s is %s; only a running workflow can be "
                    "cancelled",
                    wf.id, wf.status);
        goto out;
    }
    if (cat_tx_jobs_cancel(tx, wf.id, &leased, err) < 0)
        goto out;
    if (event(tx, wf.id, NULL, "workflow.cancel_requested", NULL,
              json_pack("{s:s?,s:I}", "by", c->by, "running_jobs", (json_int_t)leased), err) < 0)
        goto out;
    if (cat_tx_wf_update(tx, wf.id, WF_CANCELLING, NULL, 0, err) < 0)
        goto out;
    snprintf(wf.status, sizeof(wf.status), "%s", WF_CANCELLING);
    if (leased > 0)
        c->rings.cancel = 1;
    rc = cancel_settle(tx, def, &wf, err);
out:
    cat_workflow_release(&wf);
    return rc;
}

/* Runs a steering transaction (cancel, retry) on workflow id, then wakes who it says. */
static int steer(struct catalog *c, const char *id, const char *by, cat_tx_fn body, struct err *err)
{
    struct steer_ctx sc = {.id = id, .by = by};

    if (cat_tx_run(c, body, &sc, err) < 0)
        return -1;
    jobs__rings_ring(&sc.rings);
    return 0;
}

int jobs_workflow_cancel(struct catalog *c, const char *id, const char *by, struct err *err)
{
    return steer(c, id, by, cancel_body, err);
}

static int retry_body(struct cat_tx *tx, void *p, struct err *err)
{
    struct steer_ctx *c = p;
    const struct jobs_workflow_def *def;
    struct cat_workflow wf;
    int rc = -1;

    memset(&c->rings, 0, sizeof(c->rings));
    memset(&wf, 0, sizeof(wf));
    if (cat_tx_wf_get(tx, c->id, &wf, err) < 0)
        return -1;
    def = jobs_workflow_find(wf.type);
    if (strcmp(wf.status, WF_FAILED) != 0 && strcmp(wf.status, WF_CANCELLED) != 0) {
        err_set(err, ERR_CONFLICT,
                "workflow %s is %s; only a failed or cancelled workflow can be retried", wf.id,
                wf.status);
        goto out;
    }
    if (!def) {
        err_set(err, ERR_CONFLICT, "workflow %s has type '%s', which this version does not know",
                wf.id, wf.type);
        goto out;
    }
    if (def->asset_fails && wf.asset_id[0] &&
        cat_tx_asset_set_status(tx, wf.asset_id, ASSET_FAILED, ASSET_PROCESSING, NULL, err) < 0) {
        if (err->code == ERR_CONFLICT)
            err_set(err, ERR_CONFLICT,
                    "asset %s is no longer failed; its workflow cannot be "
                    "retried",
                    wf.asset_id);
        goto out;
    }
    if (cat_tx_jobs_retry(tx, wf.id, err) < 0 ||
        cat_tx_wf_update(tx, wf.id, WF_RUNNING, NULL, 0, err) < 0)
        goto out;
    snprintf(wf.status, sizeof(wf.status), "%s", WF_RUNNING);
    if (event(tx, wf.id, NULL, "workflow.retried", NULL, json_pack("{s:s?}", "by", c->by), err) < 0)
        goto out;
    c->rings.queues = (1u << JOBS_Q_COUNT) - 1;
    rc = advance(tx, def, &wf, 0, &c->rings, err);
out:
    cat_workflow_release(&wf);
    return rc;
}

int jobs_workflow_retry(struct catalog *c, const char *id, const char *by, struct err *err)
{
    return steer(c, id, by, retry_body, err);
}
