/*
 * jobs internals shared by engine.c (state transitions inside catalog transactions),
 * worker.c (the worker process), act.c (the activity context) and doorbell.c.
 */
#ifndef ACERVO_JOBS_INT_H
#define ACERVO_JOBS_INT_H

#include "jobs/jobs.h"

struct jobs_act;

#include <pthread.h>
#include <stdatomic.h>

/** A snapshot of the doorbell's counters. */
struct jobs__bells {
    uint32_t seq;
    uint32_t queue[JOBS_Q_COUNT];
    uint32_t cancel;
};

/** Reads the counters; -1 if no doorbell is open. */
int jobs__doorbell_read(struct jobs__bells *out);
/** Waits until the sequence word differs from seen or timeout_ms passes. */
void jobs__doorbell_wait(uint32_t seen, int64_t timeout_ms);

/** What to wake after a transaction commits. */
struct jobs__rings {
    unsigned queues; /* bit per enum jobs_queue */
    int cancel;
};

/** Rings what rings asks for. */
void jobs__rings_ring(const struct jobs__rings *rings);

/** The end of one attempt, applied by jobs__result_apply. */
struct jobs__result {
    struct cat_job job; /* the leased row (owns its strings) */
    char owner[96];
    int ok;
    int cancelled; /* the activity stopped because cancellation was asked */
    int permanent; /* the failure is not to be retried */
    int lost;      /* the lease was lost: nothing is recorded */
    enum err_code code;
    char msg[256];
    char *output;         /* JSON text (heap) or NULL */
    struct jobs_act *act; /* the run this came from; owns job's strings */
};

/**
 * Applies a finished attempt inside tx: records the job's end, schedules a retry or
 * fails the workflow, and starts the steps that became ready.
 */
int jobs__result_apply(struct cat_tx *tx, const struct jobs__result *r, struct jobs__rings *rings,
                       struct err *err);
/** Handles up to limit expired leases inside tx; *n receives how many. */
int jobs__reap(struct cat_tx *tx, int limit, struct jobs__rings *rings, int *n, struct err *err);
/** Backoff before attempt + 1 after attempt failed, under policy p (defaults filled in). */
int64_t jobs__backoff_ms(const struct jobs_retry_policy *p, int attempt);
/** The policy of an activity with the defaults filled in. */
struct jobs_retry_policy jobs__policy(const struct jobs_activity *a);
/** The workflow definitions and activities (registry.c). */
extern const struct jobs_workflow_def *const jobs__workflows[];
extern const struct jobs_activity *const jobs__activities[];

/** A running activity. */
struct jobs_act {
    struct cat_job job;
    const struct jobs_activity *activity;
    const struct jobs_worker_cfg *w;
    char owner[96];
    json_t *input;    /* parsed job input, or NULL */
    json_t *wf_input; /* loaded on demand */
    json_t *outputs;  /* loaded on demand */
    json_t *output;   /* set by the activity */
    char wf_asset_id[37];
    int wf_loaded;
    int permanent;
    atomic_int cancelled;
    atomic_int child_pgid; /* 0 when no child runs */
    pthread_mutex_t mu;    /* guards progress fields */
    double progress;
    char progress_detail[160];
    int progress_dirty;
    char scratch[640];
};

/** Kills the activity's child process group, if any. */
void jobs__act_kill(struct jobs_act *act);
/** Frees what the context holds (not the struct) and removes its scratch dir. */
void jobs__act_release(struct jobs_act *act);
/* Removes the scratch directories under DATA/tmp of job attempts that no longer hold a
 * lease (left by a worker that was killed or lost its lease mid-activity). */
void jobs__scratch_sweep(const struct cfg *cfg, struct catalog *cat);

#endif
