/*
 * jobs: the durable workflow engine. A workflow is a small DAG of steps; each step is
 * one activity fanned out over one or more jobs on a task queue. Worker processes lease
 * jobs, heartbeat while they run, and commit results; a lease that expires puts its job
 * back. All state lives in the catalog (struct catalog_wf_ops); see docs/internals/jobs.md.
 */
#ifndef ACERVO_JOBS_H
#define ACERVO_JOBS_H

#include "catalog/catalog.h"
#include "core/core.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

struct store;

/* ---- queues -------------------------------------------------------------------------------- */

/** The task queues, in a fixed order (their index is used by the doorbell). */
enum jobs_queue {
    JOBS_Q_INGEST,
    JOBS_Q_TRANSCODE,
    JOBS_Q_TRANSCODE_INTERACTIVE,
    JOBS_Q_AI_ENRICH,
    JOBS_Q_DISTRIBUTION,
    JOBS_Q_COUNT
};

/** The name of queue q ("ingest", ...). Static. */
const char *jobs_queue_name(enum jobs_queue q);
/** The queue named s, or -1. */
int jobs_queue_parse(const char *s);

/* ---- definitions ----------------------------------------------------------------------------- */

/** A running activity, handed to its function (see the jobs_act_* calls). */
struct jobs_act;

/**
 * An activity: 0 on success (the output is what jobs_act_set_output gave), -1 with err
 * set on failure. Failures are retried unless their code is non-retryable for the
 * activity or the activity called jobs_act_permanent().
 */
typedef int (*jobs_activity_fn)(struct jobs_act *act, struct err *err);

/** Retry policy of an activity; zero fields take the engine defaults. */
struct jobs_retry_policy {
    int64_t initial_ms; /* first backoff (default 1000) */
    double multiplier;  /* growth per attempt (default 2) */
    int64_t max_ms;     /* backoff cap (default 300000) */
    int max_attempts;   /* attempts in all (default 5) */
};

/** An activity's registration. */
struct jobs_activity {
    const char *name;
    jobs_activity_fn run;
    struct jobs_retry_policy retry;
    /*
     * err codes (as 1u << code) that fail at once; 0 takes the default: ERR_INVALID,
     * ERR_UNSUPPORTED, ERR_LIMIT, ERR_DENIED, ERR_UNAUTH, ERR_NOTFOUND, ERR_MEDIA_TYPE.
     */
    unsigned nonretryable;
};

/**
 * Fan-out of a step: from the workflow's input and the outputs of its completed steps
 * ({"step": output, or [outputs] for a fanned-out step}), a JSON array whose items
 * become the inputs of the step's jobs (an empty array completes the step at once).
 */
typedef int (*jobs_fanout_fn)(const json_t *input, const json_t *outputs, json_t **items,
                              struct err *err);

/** One step of a workflow definition. */
struct jobs_step {
    const char *name;
    const char *activity;
    enum jobs_queue queue;
    /* steps this one waits for; all NULL: the previous entry (none for the first) */
    const char *after[4];
    jobs_fanout_fn fanout; /* NULL: one job whose input is the workflow's input */
    int priority;          /* added to the workflow's priority */
    int64_t delay_ms;      /* the step's jobs become runnable this long after it starts */
};

/** A workflow definition: adding a step is adding one entry to steps. */
struct jobs_workflow_def {
    const char *type;
    const struct jobs_step *steps;
    size_t nsteps;
    int asset_fails; /* failure or cancellation marks the workflow's asset failed */
};

/** The definition of type, or NULL. */
const struct jobs_workflow_def *jobs_workflow_find(const char *type);
/** The activity named name, or NULL. */
const struct jobs_activity *jobs_activity_find(const char *name);

/* ---- starting and steering workflows ------------------------------------------------------- */

/** What jobs_workflow_start needs. */
struct jobs_start {
    const char *type;
    const char *asset_id;        /* may be NULL */
    const char *created_by;      /* user id, may be NULL */
    const json_t *input;         /* JSON object, may be NULL ({}) */
    const char *idempotency_key; /* may be NULL; a second start with it returns the first */
    int priority;
    /* runs first inside the same transaction (may be NULL): what must commit together
     * with the start, such as the asset's move to processing */
    cat_tx_fn in_tx;
    void *in_tx_ctx;
};

/**
 * Starts a workflow: its row, its first steps' jobs and their history, in one
 * transaction, then wakes the workers. id receives the workflow id; *existed (may be
 * NULL) is set to 1 if the idempotency key named an existing workflow (nothing started).
 * ERR_INVALID for an unknown type or a non-object input.
 */
int jobs_workflow_start(struct catalog *c, const struct jobs_start *s, char id[37], int *existed,
                        struct err *err);
/**
 * Cancels a running workflow: queued jobs are cancelled at once and running ones are
 * told to stop (their child processes are killed); the workflow ends cancelled when the
 * last one stops. ERR_CONFLICT if it already finished; ERR_NOTFOUND if absent.
 */
int jobs_workflow_cancel(struct catalog *c, const char *id, const char *by, struct err *err);
/**
 * Runs a failed or cancelled workflow again from where it stopped: its failed and
 * cancelled jobs get fresh attempts. ERR_CONFLICT unless it is failed or cancelled.
 */
int jobs_workflow_retry(struct catalog *c, const char *id, const char *by, struct err *err);

/* ---- wake-ups -------------------------------------------------------------------------------- */

/**
 * Opens (creating) the doorbell under run_dir shared by the processes of one data dir;
 * once per process, before starting or running workflows. Without it nothing is woken
 * and workers find work only at their next due time.
 */
int jobs_doorbell_open(const char *run_dir, struct err *err);
/** Wakes the workers serving queue q (JOBS_Q_COUNT: all of them, for cancellations). */
void jobs_doorbell_ring(enum jobs_queue q);

/* ---- the worker ------------------------------------------------------------------------------ */

/** A worker process's settings. */
struct jobs_worker_cfg {
    struct catalog *cat;
    struct store *store;
    const struct cfg *cfg;
    int slots[JOBS_Q_COUNT]; /* concurrency per queue; 0: not served */
    int64_t lease_ms;        /* lease length (heartbeats renew it) */
    int64_t heartbeat_ms;    /* heartbeat period */
};

/**
 * Parses "ingest:8,transcode:2" into slots (queues not named get 0). ERR_INVALID with the
 * offending entry on a bad name, count (1..256) or syntax.
 */
int jobs_queues_parse(const char *spec, int slots[JOBS_Q_COUNT], struct err *err);

/**
 * Runs a worker until *stop becomes non-zero (set from a signal handler), then lets its
 * running activities finish or hand their jobs back, and returns 0 (-1 with err if it
 * could not start).
 */
int jobs_worker_run(const struct jobs_worker_cfg *w, atomic_int *stop, struct err *err);

/* ---- inside an activity ---------------------------------------------------------------------- */

/** The job's input (its fan-out item, or the workflow's input). Valid during the run. */
const json_t *jobs_act_input(struct jobs_act *act);
/** The workflow's input. Valid during the run. */
const json_t *jobs_act_workflow_input(struct jobs_act *act);
/** The outputs of the workflow's completed steps ({"step": output | [outputs]}). */
const json_t *jobs_act_outputs(struct jobs_act *act);
/** Sets the activity's output (a JSON value; the reference is stolen). */
void jobs_act_set_output(struct jobs_act *act, json_t *output);
/** Reports progress (0..100) and a short detail (may be NULL); sent with the heartbeat. */
void jobs_act_progress(struct jobs_act *act, double percent, const char *detail);
/** 1 once cancellation of this job was requested. */
int jobs_act_cancelled(struct jobs_act *act);
/** Makes the failure being returned non-retryable whatever its code. */
void jobs_act_permanent(struct jobs_act *act);
/** The job's idempotency key (the same across its attempts). */
const char *jobs_act_idempotency_key(struct jobs_act *act);
/** The workflow id and its asset id ("" if none). */
const char *jobs_act_workflow_id(struct jobs_act *act);
const char *jobs_act_asset_id(struct jobs_act *act);
/** The attempt being run (1-based). */
int jobs_act_attempt(struct jobs_act *act);
/** The process's catalog, store and configuration. */
struct catalog *jobs_act_catalog(struct jobs_act *act);
struct store *jobs_act_store(struct jobs_act *act);
const struct cfg *jobs_act_cfg(struct jobs_act *act);
/** The directory for this job's scratch files (created on first call, removed after). */
const char *jobs_act_scratch(struct jobs_act *act, struct err *err);

/**
 * The result of an effect named name that this job (in any attempt) already recorded:
 * 1 with *result (a new reference, may be NULL) if done, 0 if not, -1 on failure.
 */
int jobs_act_effect_get(struct jobs_act *act, const char *name, json_t **result, struct err *err);
/** Records effect name as done with result (may be NULL; not stolen). */
int jobs_act_effect_put(struct jobs_act *act, const char *name, const json_t *result,
                        struct err *err);

/** Options of jobs_act_spawn. */
struct jobs_spawn_opts {
    int64_t timeout_ms; /* killed after this long (0: no limit) */
    int64_t max_memory; /* RLIMIT_AS in bytes (0: no limit) */
    int64_t max_cpu_s;  /* RLIMIT_CPU (0: no limit) */
    size_t max_stdout;  /* stdout kept up to this many bytes (0: discarded) */
    int use_stdin;      /* give the child stdin_fd as its stdin (else /dev/null) */
    int stdin_fd;
    /* sees stdout as it arrives (progress reports), besides max_stdout; may be NULL */
    void (*on_stdout)(void *ctx, const char *data, size_t n);
    void *on_stdout_ctx;
};

/** What a child left behind. */
struct jobs_child {
    int status; /* waitpid status */
    char *out;  /* stdout (heap, NUL-terminated, may be NULL); caller frees */
    size_t out_len;
    char err_tail[512]; /* the last line(s) of stderr */
};

/**
 * Runs argv[0] (a path) with argv in its own process group, stdin from /dev/null, and
 * waits for it. The group is killed (SIGKILL) when the job is cancelled (within the
 * cancellation latency), on timeout, or when the worker stops. 0 when it ran (look at
 * res->status), -1 with ERR_CONFLICT "cancelled", ERR_LIMIT on timeout, ERR_IO if it could
 * not start.
 */
int jobs_act_spawn(struct jobs_act *act, char *const argv[], const struct jobs_spawn_opts *o,
                   struct jobs_child *res, struct err *err);

#endif
