/*
 * The worker process. One engine thread does all of its catalog work: each round it
 * commits, in one transaction, the results of the activities that finished, the
 * heartbeats that are due, the expired leases it reaps and the new leases for its free
 * slots (group commit: one fsync for many jobs). Runner threads only run activities. A
 * watcher thread turns doorbell rings into wake-ups of the engine thread, which
 * otherwise sleeps until its next due time (docs/internals/jobs.md).
 */
#include "jobs/jobs_int.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define REAP_BATCH        64
#define LEASE_MAX         256 /* jobs leased per queue per round */
#define IDLE_WAIT_MS      5000
#define WORKER_ROW_MS     10000  /* a worker refreshes its row this often */
#define SCRATCH_SWEEP_MS  600000 /* and looks for leftover scratch directories this often */
#define WORKER_ROW_TTL_MS 60000  /* rows older than this belong to dead workers */
#define ISOLATE_AFTER     3      /* failed rounds before results are recorded one at a time */

/** The worker's shared state. */
struct worker {
    const struct jobs_worker_cfg *w;
    char owner[96];
    atomic_int *stop;

    pthread_mutex_t mu;
    pthread_cond_t ready_cv;
    struct jobs_act **ready; /* leased, waiting for a runner */
    size_t nready, ready_cap;
    struct jobs_act **running; /* being run (or waiting in ready) */
    size_t nrunning, running_cap;
    struct jobs__result *done; /* finished, to be committed */
    size_t ndone, done_cap;
    int busy[JOBS_Q_COUNT];
    int quit;

    _Atomic uint32_t wake; /* the engine thread's futex word */
    pthread_t *runners;
    int nrunners;
    pthread_t watcher;
};

static void wake_engine(struct worker *wk)
{
    atomic_fetch_add(&wk->wake, 1);
    syscall(SYS_futex, (uint32_t *)&wk->wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void wait_engine(struct worker *wk, uint32_t seen, int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    syscall(SYS_futex, (uint32_t *)&wk->wake, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
}

/* ---- runners ----------------------------------------------------------------------------------
 */

/* The result of act's run; its job row stays owned by act (freed after the commit). */
static void result_from(struct worker *wk, struct jobs_act *act, int rc, const struct err *e,
                        struct jobs__result *r)
{
    memset(r, 0, sizeof(*r));
    r->job = act->job;
    r->act = act;
    snprintf(r->owner, sizeof(r->owner), "%s", wk->owner);
    r->ok = rc == 0;
    if (rc == 0) {
        r->output = act->output ? json_dumps(act->output, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        return;
    }
    r->cancelled = jobs_act_cancelled(act) && atomic_load(&act->cancelled) == 1;
    r->lost = atomic_load(&act->cancelled) == 2; /* handed back: lease lost or stopping */
    r->permanent = act->permanent;
    r->code = e->code;
    snprintf(r->msg, sizeof(r->msg), "%s", e->msg[0] ? e->msg : "failed without a reason");
}

static void *runner_main(void *p)
{
    struct worker *wk = p;

    for (;;) {
        struct jobs_act *act;
        struct jobs__result r;
        struct err e = {0};
        int rc;

        pthread_mutex_lock(&wk->mu);
        while (!wk->nready && !wk->quit)
            pthread_cond_wait(&wk->ready_cv, &wk->mu);
        if (!wk->nready) {
            pthread_mutex_unlock(&wk->mu);
            return NULL;
        }
        act = wk->ready[0];
        memmove(wk->ready, wk->ready + 1, --wk->nready * sizeof(*wk->ready));
        pthread_mutex_unlock(&wk->mu);

        log_ctx_set(act->job.idempotency_key);
        if (jobs_act_cancelled(act)) {
            rc = err_set(&e, ERR_CONFLICT, "cancelled");
        } else {
            rc = act->activity->run(act, &e);
            if (rc < 0 && e.code == ERR_OK)
                e.code = ERR_INTERNAL;
        }
        if (rc < 0 && !jobs_act_cancelled(act))
            log_write(LOG_WARN, "jobs", "%s (job %lld, attempt %d) failed: %s", act->job.activity,
                      (long long)act->job.id, act->job.attempt, e.msg);
        result_from(wk, act, rc, &e, &r);
        log_ctx_set(NULL);

        pthread_mutex_lock(&wk->mu);
        for (size_t i = 0; i < wk->nrunning; i++) {
            if (wk->running[i] == act) {
                wk->running[i] = wk->running[--wk->nrunning];
                break;
            }
        }
        {
            int q = jobs_queue_parse(r.job.queue);

            if (q >= 0)
                wk->busy[q]--;
        }
        if (wk->ndone == wk->done_cap) {
            wk->done_cap = wk->done_cap ? wk->done_cap * 2 : 64;
            wk->done = xrealloc(wk->done, wk->done_cap * sizeof(*wk->done));
        }
        wk->done[wk->ndone++] = r;
        pthread_mutex_unlock(&wk->mu);
        wake_engine(wk);
    }
}

/* ---- the watcher
 * --------------------------------------------------------------------------------- */

static void *watcher_main(void *p)
{
    struct worker *wk = p;
    struct jobs__bells b;

    while (!atomic_load(wk->stop)) {
        if (jobs__doorbell_read(&b) < 0)
            return NULL;
        jobs__doorbell_wait(b.seq, 1000);
        wake_engine(wk);
    }
    return NULL;
}

/* ---- the engine thread ----------------------------------------------------------------------- */

/** One round's work and what it produced (reset at each run of the transaction body). */
struct round {
    struct worker *wk;
    struct jobs__result *results;
    size_t nresults;
    int want[JOBS_Q_COUNT]; /* jobs to lease per queue */
    int reap;
    int heartbeat;
    struct jobs_act **hb; /* running activities to heartbeat */
    size_t nhb;
    /* outputs */
    struct cat_job *leased;
    size_t nleased, leased_cap;
    int got[JOBS_Q_COUNT];
    int reaped;
    struct jobs__rings rings;
};

static int lease_cb(void *p, const struct cat_job *j)
{
    struct round *r = p;
    struct cat_job *c;

    if (r->nleased == r->leased_cap) {
        r->leased_cap = r->leased_cap ? r->leased_cap * 2 : 64;
        r->leased = xrealloc(r->leased, r->leased_cap * sizeof(*r->leased));
    }
    c = &r->leased[r->nleased++];
    *c = *j;
    c->input = j->input ? xstrdup(j->input) : NULL;
    c->output = NULL;
    c->progress_detail = NULL;
    c->error = NULL;
    return 0;
}

static void round_drop_leased(struct round *r)
{
    for (size_t i = 0; i < r->nleased; i++)
        cat_job_release(&r->leased[i]);
    r->nleased = 0;
    memset(r->got, 0, sizeof(r->got));
}

static int round_body(struct cat_tx *tx, void *p, struct err *err)
{
    struct round *r = p;
    struct worker *wk = r->wk;
    int64_t lease_until = util_now_ms() + wk->w->lease_ms;

    round_drop_leased(r);
    memset(&r->rings, 0, sizeof(r->rings));
    r->reaped = 0;
    for (size_t i = 0; i < r->nresults; i++) {
        const struct jobs__result *res = &r->results[i];

        if (res->lost) {
            /* handed back (the worker stops, or its lease was lost): run it again at once,
             * not counted as a failure; a lost lease changes nothing (0) */
            struct cat_event ev = {.workflow_id = res->job.workflow_id,
                                   .job_id = res->job.id,
                                   .type = "job.handed_back",
                                   .step = res->job.step,
                                   .attempt = res->job.attempt,
                                   .worker = res->owner};
            int changed = cat_tx_job_requeue(tx, res->job.id, res->owner, res->job.attempt,
                                             util_now_ms(), res->msg, "handed_back", err);

            if (changed < 0)
                return -1;
            if (changed == 0)
                continue;
            if (cat_tx_event_append(tx, &ev, err) < 0)
                return -1;
            r->rings.queues |= 1u << (unsigned)jobs_queue_parse(res->job.queue);
            continue;
        }
        if (jobs__result_apply(tx, res, &r->rings, err) < 0)
            return -1;
    }
    if (r->heartbeat) {
        for (size_t i = 0; i < r->nhb; i++) {
            struct jobs_act *a = r->hb[i];
            double progress;
            char detail[160];
            int hb;

            pthread_mutex_lock(&a->mu);
            progress = a->progress_dirty ? a->progress : -1;
            snprintf(detail, sizeof(detail), "%s", a->progress_detail);
            pthread_mutex_unlock(&a->mu);
            hb = cat_tx_jobs_heartbeat(tx, a->job.id, wk->owner, a->job.attempt, lease_until,
                                       progress, progress >= 0 && detail[0] ? detail : NULL, err);
            if (hb < 0)
                return -1;
            if (hb == 0 || hb == 2) {
                int expect = 0;

                /* 1: cancelled as asked; 2: the lease is gone, hand the result back */
                atomic_compare_exchange_strong(&a->cancelled, &expect, hb == 2 ? 1 : 2);
                jobs__act_kill(a);
            }
        }
    }
    if (r->reap && jobs__reap(tx, REAP_BATCH, &r->rings, &r->reaped, err) < 0)
        return -1;
    for (int q = 0; q < JOBS_Q_COUNT; q++) {
        size_t before = r->nleased;

        if (r->want[q] <= 0)
            continue;
        if (cat_tx_jobs_lease(tx, jobs_queue_name((enum jobs_queue)q), r->want[q], wk->owner,
                              lease_until, lease_cb, r, err) < 0)
            return -1;
        r->got[q] = (int)(r->nleased - before);
    }
    /* the history of a lease is one row per job */
    for (size_t i = 0; i < r->nleased; i++) {
        struct cat_event ev = {.workflow_id = r->leased[i].workflow_id,
                               .job_id = r->leased[i].id,
                               .type = "job.started",
                               .step = r->leased[i].step,
                               .attempt = r->leased[i].attempt,
                               .worker = wk->owner};

        if (cat_tx_event_append(tx, &ev, err) < 0)
            return -1;
    }
    return 0;
}

/* Hands the jobs leased in a round to the runners. */
static void dispatch(struct worker *wk, struct round *r)
{
    pthread_mutex_lock(&wk->mu);
    for (size_t i = 0; i < r->nleased; i++) {
        struct jobs_act *act = xcalloc(1, sizeof(*act));
        int q = jobs_queue_parse(r->leased[i].queue);

        act->job = r->leased[i];
        memset(&r->leased[i], 0, sizeof(r->leased[i]));
        act->w = wk->w;
        act->activity = jobs_activity_find(act->job.activity);
        snprintf(act->owner, sizeof(act->owner), "%s", wk->owner);
        pthread_mutex_init(&act->mu, NULL);
        act->progress = -1;
        if (act->job.input)
            act->input = json_loads(act->job.input, JSON_DECODE_ANY, NULL);
        if (!act->activity) {
            /* a job of an activity this build does not know: fail it, permanently */
            struct jobs__result res;
            struct err e;

            err_set(&e, ERR_UNSUPPORTED, "this worker has no activity '%s'", act->job.activity);
            act->permanent = 1;
            result_from(wk, act, -1, &e, &res);
            if (wk->ndone == wk->done_cap) {
                wk->done_cap = wk->done_cap ? wk->done_cap * 2 : 64;
                wk->done = xrealloc(wk->done, wk->done_cap * sizeof(*wk->done));
            }
            wk->done[wk->ndone++] = res;
            continue;
        }
        if (q >= 0)
            wk->busy[q]++;
        if (wk->nrunning == wk->running_cap) {
            wk->running_cap = wk->running_cap ? wk->running_cap * 2 : 64;
            wk->running = xrealloc(wk->running, wk->running_cap * sizeof(*wk->running));
        }
        wk->running[wk->nrunning++] = act;
        if (wk->nready == wk->ready_cap) {
            wk->ready_cap = wk->ready_cap ? wk->ready_cap * 2 : 64;
            wk->ready = xrealloc(wk->ready, wk->ready_cap * sizeof(*wk->ready));
        }
        wk->ready[wk->nready++] = act;
    }
    r->nleased = 0;
    pthread_cond_broadcast(&wk->ready_cv);
    pthread_mutex_unlock(&wk->mu);
}

struct cancel_ctx {
    struct worker *wk;
};

static int cancel_cb(void *p, int64_t id, int attempt)
{
    struct worker *wk = ((struct cancel_ctx *)p)->wk;

    pthread_mutex_lock(&wk->mu);
    for (size_t i = 0; i < wk->nrunning; i++) {
        struct jobs_act *a = wk->running[i];
        int expect = 0;

        if (a->job.id == id && a->job.attempt == attempt) {
            atomic_compare_exchange_strong(&a->cancelled, &expect, 1);
            jobs__act_kill(a);
            log_write(LOG_INFO, "jobs", "job %lld cancelled", (long long)id);
        }
    }
    pthread_mutex_unlock(&wk->mu);
    return 0;
}

/* Registers the worker row (and refreshes it: it doubles as the worker's heartbeat). */
static void worker_row(struct worker *wk, int64_t started)
{
    char queues[256];
    size_t n = 0;
    char host[64] = "";
    struct cat_worker row;
    struct err e;

    gethostname(host, sizeof(host) - 1);
    n += (size_t)snprintf(queues, sizeof(queues), "{");
    for (int q = 0; q < JOBS_Q_COUNT; q++)
        if (wk->w->slots[q] > 0 && n < sizeof(queues))
            n += (size_t)snprintf(queues + n, sizeof(queues) - n, "%s\"%s\":%d", n > 1 ? "," : "",
                                  jobs_queue_name((enum jobs_queue)q), wk->w->slots[q]);
    if (n < sizeof(queues))
        snprintf(queues + n, sizeof(queues) - n, "}");
    memset(&row, 0, sizeof(row));
    snprintf(row.id, sizeof(row.id), "%s", wk->owner);
    snprintf(row.host, sizeof(row.host), "%s", host);
    row.pid = (int)getpid();
    row.queues_json = queues;
    row.started_at = started;
    row.heartbeat_at = util_now_ms();
    if (cat_worker_put(wk->w->cat, &row, &e) < 0)
        log_write(LOG_WARN, "jobs", "cannot record worker %s: %s", wk->owner, e.msg);
    /* rows of workers that died without removing theirs (kill -9, power loss) */
    if (cat_workers_expire(wk->w->cat, row.heartbeat_at - WORKER_ROW_TTL_MS, &e) < 0)
        log_write(LOG_WARN, "jobs", "cannot expire stale worker rows: %s", e.msg);
}

int jobs_queues_parse(const char *spec, int slots[JOBS_Q_COUNT], struct err *err)
{
    const char *p = spec;
    int any = 0;

    memset(slots, 0, sizeof(int) * JOBS_Q_COUNT);
    while (*p) {
        size_t n = strcspn(p, ",");
        char entry[64], *colon, *end;
        long count;
        int q;

        if (n == 0 || n >= sizeof(entry))
            return err_set(err, ERR_INVALID, "queues: bad entry in '%s' (want NAME:COUNT,...)",
                           spec);
        memcpy(entry, p, n);
        entry[n] = '\0';
        colon = strchr(entry, ':');
        if (!colon)
            return err_set(err, ERR_INVALID, "queues: '%s' has no ':COUNT'", entry);
        *colon = '\0';
        q = jobs_queue_parse(entry);
        if (q < 0)
            return err_set(err, ERR_INVALID,
                           "queues: unknown queue '%s' (ingest, transcode, "
                           "transcode-interactive, ai-enrich, distribution)",
                           entry);
        errno = 0;
        count = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || count < 1 || count > 256)
            return err_set(err, ERR_INVALID, "queues: count of '%s' must be 1 to 256", entry);
        slots[q] = (int)count;
        any = 1;
        p += n;
        if (*p == ',')
            p++;
    }
    if (!any)
        return err_set(err, ERR_INVALID, "queues: no queue named");
    return 0;
}

int jobs_worker_run(const struct jobs_worker_cfg *w, atomic_int *stop, struct err *err)
{
    struct worker *wk = xcalloc(1, sizeof(*wk));
    struct round r;
    struct jobs__bells seen, now_b;
    const char *served[JOBS_Q_COUNT];
    size_t nserved = 0;
    int dirty[JOBS_Q_COUNT];
    int64_t started = util_now_ms(), next_hb, next_row, stop_deadline = 0, backoff = 0;
    int64_t next_expiry = 0, next_sweep;
    int fails = 0, isolate = 0;
    int total = 0, have_bells, rc = 0;
    char host[64] = "";

    gethostname(host, sizeof(host) - 1);
    wk->w = w;
    wk->stop = stop;
    snprintf(wk->owner, sizeof(wk->owner), "%.40s/%d/%lld", host, (int)getpid(),
             (long long)started);
    pthread_mutex_init(&wk->mu, NULL);
    pthread_cond_init(&wk->ready_cv, NULL);
    for (int q = 0; q < JOBS_Q_COUNT; q++) {
        total += w->slots[q];
        dirty[q] = w->slots[q] > 0;
        if (w->slots[q] > 0)
            served[nserved++] = jobs_queue_name((enum jobs_queue)q);
    }
    if (total == 0) {
        free(wk);
        return err_set(err, ERR_INVALID, "the worker serves no queue");
    }
    worker_row(wk, started);
    wk->runners = xcalloc((size_t)total, sizeof(*wk->runners));
    for (int i = 0; i < total; i++) {
        if (pthread_create(&wk->runners[i], NULL, runner_main, wk) != 0) {
            rc = err_set(err, ERR_IO, "cannot start runner threads");
            break;
        }
        wk->nrunners++;
    }
    have_bells = jobs__doorbell_read(&seen) == 0;
    if (have_bells && pthread_create(&wk->watcher, NULL, watcher_main, wk) != 0)
        have_bells = 0;
    log_write(LOG_INFO, "jobs", "worker %s serving %d slots", wk->owner, total);

    memset(&r, 0, sizeof(r));
    r.wk = wk;
    next_hb = util_mono_ms() + w->heartbeat_ms;
    next_row = util_mono_ms() + WORKER_ROW_MS;
    jobs__scratch_sweep(w->cfg, w->cat);
    next_sweep = util_mono_ms() + SCRATCH_SWEEP_MS;
    while (rc == 0) {
        uint32_t wake_seen = atomic_load(&wk->wake);
        int64_t mono = util_mono_ms(), now = util_now_ms(), next_run = INT64_MAX,
                next_exp = INT64_MAX, wait_ms;
        int check_cancel = 0, work = 0, idle;
        struct err e;

        if (atomic_load(stop) && !stop_deadline) {
            stop_deadline = mono + (int64_t)w->cfg->shutdown_grace * 1000;
            log_write(LOG_INFO, "jobs", "worker %s stopping", wk->owner);
        }
        if (have_bells && jobs__doorbell_read(&now_b) == 0) {
            for (int q = 0; q < JOBS_Q_COUNT; q++)
                if (now_b.queue[q] != seen.queue[q] && w->slots[q] > 0)
                    dirty[q] = 1;
            check_cancel = now_b.cancel != seen.cancel;
            seen = now_b;
        }
        if (check_cancel) {
            struct cancel_ctx cc = {wk};

            if (cat_jobs_cancel_requested(w->cat, wk->owner, cancel_cb, &cc, &e) < 0)
                log_write(LOG_WARN, "jobs", "cannot read cancellations: %s", e.msg);
        }
        if (stop_deadline && mono >= stop_deadline) {
            /* out of grace: stop what still runs and hand its jobs back */
            pthread_mutex_lock(&wk->mu);
            for (size_t i = 0; i < wk->nrunning; i++) {
                int expect = 0;

                atomic_compare_exchange_strong(&wk->running[i]->cancelled, &expect, 2);
                jobs__act_kill(wk->running[i]);
            }
            pthread_mutex_unlock(&wk->mu);
        }

        /* what this round does */
        pthread_mutex_lock(&wk->mu);
        if (isolate && wk->ndone > 1) {
            /* rounds keep failing: one result at a time, to find the one at fault */
            r.results = xmalloc(sizeof(*r.results));
            r.results[0] = wk->done[0];
            r.nresults = 1;
            memmove(wk->done, wk->done + 1, --wk->ndone * sizeof(*wk->done));
        } else {
            r.results = wk->done;
            r.nresults = wk->ndone;
            wk->done = NULL;
            wk->ndone = wk->done_cap = 0;
        }
        for (int q = 0; q < JOBS_Q_COUNT; q++) {
            int free_slots = w->slots[q] - wk->busy[q];

            r.want[q] = !atomic_load(stop) && dirty[q] && free_slots > 0 ? free_slots : 0;
            if (r.want[q] > LEASE_MAX)
                r.want[q] = LEASE_MAX;
            work |= r.want[q] > 0;
        }
        r.heartbeat = mono >= next_hb && wk->nrunning > 0;
        if (r.heartbeat) {
            r.hb = xrealloc(r.hb, (wk->nrunning + 1) * sizeof(*r.hb));
            memcpy(r.hb, wk->running, wk->nrunning * sizeof(*r.hb));
            r.nhb = wk->nrunning;
        }
        idle = wk->nrunning == 0;
        pthread_mutex_unlock(&wk->mu);
        /* reap when a lease is known to have expired (and at the first round) */
        r.reap = !atomic_load(stop) && now > next_expiry;
        work |= r.nresults > 0 || r.heartbeat;
        if (atomic_load(stop) && idle && r.nresults == 0)
            break;
        if (work && r.nresults == 0 && !r.heartbeat && !r.reap) {
            /* only leasing: a read (which takes no lock) first, so a ring that another
             * worker answered costs no write transaction */
            work = 0;
            for (int q = 0; q < JOBS_Q_COUNT; q++) {
                const char *name = jobs_queue_name((enum jobs_queue)q);

                if (r.want[q] <= 0)
                    continue;
                if (cat_jobs_next_due(w->cat, &name, 1, &next_run, &next_exp, &e) == 0 &&
                    next_run > util_now_ms()) {
                    r.want[q] = 0;
                    dirty[q] = 0;
                }
                work |= r.want[q] > 0;
            }
        }

        if (work || r.reap) {
            if (cat_tx_run(w->cat, round_body, &r, &e) < 0) {
                /* nothing was recorded: keep the results for the next round */
                log_write(LOG_ERROR, "jobs", "worker round failed: %s", e.msg);
                fails++;
                isolate = fails >= ISOLATE_AFTER && e.code != ERR_BACKEND;
                if (isolate && r.nresults == 1 && fails >= 2 * ISOLATE_AFTER) {
                    /* this result alone cannot be recorded, again and again: drop it; its
                     * lease runs out and the job runs again (and fails for good once its
                     * attempts are spent), rather than blocking every other job */
                    log_write(LOG_ERROR, "jobs",
                              "dropping the result of job %lld (attempt %d) that cannot be "
                              "recorded: %s",
                              (long long)r.results[0].job.id, r.results[0].job.attempt, e.msg);
                    jobs__act_release(r.results[0].act);
                    free(r.results[0].act);
                    free(r.results[0].output);
                    r.nresults = 0;
                    fails = 0;
                }
                pthread_mutex_lock(&wk->mu);
                if (r.nresults) {
                    size_t need = wk->ndone + r.nresults;

                    wk->done = xrealloc(wk->done, need * sizeof(*wk->done));
                    memmove(wk->done + r.nresults, wk->done, wk->ndone * sizeof(*wk->done));
                    memcpy(wk->done, r.results, r.nresults * sizeof(*wk->done));
                    wk->ndone = wk->done_cap = need;
                }
                pthread_mutex_unlock(&wk->mu);
                free(r.results);
                r.results = NULL;
                round_drop_leased(&r);
                backoff = backoff ? (backoff * 2 > 2000 ? 2000 : backoff * 2) : 50;
                wait_engine(wk, wake_seen, backoff);
                continue;
            }
            backoff = 0;
            fails = 0;
            isolate = isolate && wk->ndone > 0;
            for (size_t i = 0; i < r.nresults; i++) {
                /* only now may the activity go: a heartbeat may have been reading it */
                jobs__act_release(r.results[i].act);
                free(r.results[i].act);
                free(r.results[i].output);
            }
            free(r.results);
            r.results = NULL;
            r.nresults = 0;
            for (int q = 0; q < JOBS_Q_COUNT; q++)
                if (r.want[q] > 0 && r.got[q] < r.want[q])
                    dirty[q] = 0; /* drained: wait for a ring or a due time */
            if (r.heartbeat)
                next_hb = mono + w->heartbeat_ms;
            dispatch(wk, &r);
            jobs__rings_ring(&r.rings);
            if (r.reaped > 0)
                continue; /* there may be more */
        }
        if (mono >= next_row) {
            worker_row(wk, started);
            next_row = mono + WORKER_ROW_MS;
        }
        if (mono >= next_sweep) {
            jobs__scratch_sweep(w->cfg, w->cat);
            next_sweep = mono + SCRATCH_SWEEP_MS;
        }

        /* sleep until a ring, a finished activity, or the next due time */
        for (int q = 0; q < JOBS_Q_COUNT; q++)
            if (dirty[q] && r.want[q] > 0 && r.got[q] == r.want[q])
                goto again; /* more may be waiting */
        wait_ms = IDLE_WAIT_MS;
        for (size_t i = 0; i < nserved; i++) {
            int q = jobs_queue_parse(served[i]);
            int free_slots;

            if (cat_jobs_next_due(w->cat, &served[i], 1, &next_run, &next_exp, &e) < 0) {
                log_write(LOG_WARN, "jobs", "cannot read due times: %s", e.msg);
                next_run = INT64_MAX;
                next_exp = util_now_ms() + 1000;
            }
            now = util_now_ms();
            pthread_mutex_lock(&wk->mu);
            free_slots = w->slots[q] - wk->busy[q];
            pthread_mutex_unlock(&wk->mu);
            if (next_run <= now) {
                dirty[q] = 1;
                if (free_slots > 0 && !atomic_load(stop))
                    goto again; /* runnable now, and room for it */
                /* no room: a finishing activity wakes us */
            } else if (next_run != INT64_MAX && next_run - now < wait_ms) {
                wait_ms = next_run - now;
            }
        }
        next_expiry = next_exp;
        if (next_exp != INT64_MAX && next_exp + 1 - now < wait_ms)
            wait_ms = next_exp + 1 - now > 0 ? next_exp + 1 - now : 0;
        pthread_mutex_lock(&wk->mu);
        idle = wk->nrunning == 0;
        pthread_mutex_unlock(&wk->mu);
        if (!idle && next_hb - util_mono_ms() < wait_ms)
            wait_ms = next_hb - util_mono_ms();
        if (stop_deadline)
            wait_ms = wait_ms > 100 ? 100 : wait_ms;
        if (wait_ms > 0)
            wait_engine(wk, wake_seen, wait_ms);
        for (size_t i = 0; i < nserved; i++)
            dirty[jobs_queue_parse(served[i])] = 1; /* a ring, a due time, or a free slot */
    again:;
    }

    pthread_mutex_lock(&wk->mu);
    wk->quit = 1;
    pthread_cond_broadcast(&wk->ready_cv);
    pthread_mutex_unlock(&wk->mu);
    for (int i = 0; i < wk->nrunners; i++)
        pthread_join(wk->runners[i], NULL);
    if (have_bells)
        pthread_join(wk->watcher, NULL);
    {
        struct err e;

        if (cat_worker_delete(w->cat, wk->owner, &e) < 0)
            log_write(LOG_WARN, "jobs", "cannot remove worker row %s: %s", wk->owner, e.msg);
    }
    log_write(LOG_INFO, "jobs", "worker %s stopped", wk->owner);
    free(r.hb);
    free(r.leased);
    free(wk->runners);
    free(wk->ready);
    free(wk->running);
    free(wk->done);
    pthread_cond_destroy(&wk->ready_cv);
    pthread_mutex_destroy(&wk->mu);
    free(wk);
    return rc;
}
