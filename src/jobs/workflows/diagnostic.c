/*
 * Diagnostic workflows: canaries an operator (or a benchmark, or a test) starts through
 * POST /api/v1/workflows when `diagnostics` is on, to prove the engine end to end —
 * wake-up latency, throughput, retries, fan-out/fan-in, delays, cancellation of child
 * processes, lease recovery and idempotent effects — with no asset involved.
 */
#include "jobs/workflows/workflows.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define COUNT_MAX 100000

/* "count": how many jobs the work step fans out over (default 1). */
static int fanout_count(const json_t *input, const json_t *outputs, json_t **items, struct err *err)
{
    json_t *n = json_object_get(input, "count");
    json_int_t count = n ? json_integer_value(n) : 1;

    (void)outputs;
    if (n && (!json_is_integer(n) || count < 0 || count > COUNT_MAX))
        return err_set(err, ERR_INVALID, "input 'count' must be an integer from 0 to %d",
                       COUNT_MAX);
    *items = json_array();
    for (json_int_t i = 0; i < count; i++)
        json_array_append_new(*items, json_pack("{s:I}", "n", i));
    return 0;
}

/* noop: does nothing and says which item it was. */
static int act_noop(struct jobs_act *act, struct err *err)
{
    (void)err;
    jobs_act_set_output(act, json_deep_copy(jobs_act_input(act)));
    return 0;
}

/*
 * sleep: runs /bin/sleep for input "seconds" (default 1) as a child process, so
 * cancellation has a real process to kill; with "marker", appends one line to that
 * file after the sleep, once per job whatever happens to its attempts (an effect
 * guarded by the job's idempotency key).
 */
static int act_sleep(struct jobs_act *act, struct err *err)
{
    const json_t *in = jobs_act_workflow_input(act);
    json_t *secs = json_object_get(in, "seconds");
    const char *marker = json_string_value(json_object_get(in, "marker"));
    char arg[32], prog[] = "/bin/sleep";
    char *argv[] = {prog, arg, NULL};
    struct jobs_spawn_opts o = {0};
    struct jobs_child ch;
    json_t *done = NULL;
    double s = secs ? json_number_value(secs) : 1;

    if (secs && (!json_is_number(secs) || s < 0 || s > 86400))
        return err_set(err, ERR_INVALID, "input 'seconds' must be a number from 0 to 86400");
    snprintf(arg, sizeof(arg), "%.3f", s);
    jobs_act_progress(act, 0, "sleeping");
    if (jobs_act_spawn(act, argv, &o, &ch, err) < 0)
        return -1;
    free(ch.out);
    if (!WIFEXITED(ch.status) || WEXITSTATUS(ch.status) != 0)
        return err_set(err, ERR_IO, "sleep ended with status %d", ch.status);
    jobs_act_progress(act, 100, "slept");
    if (marker) {
        int rc = jobs_act_effect_get(act, "marker", &done, err);

        if (rc < 0)
            return -1;
        json_decref(done);
        if (rc == 0) {
            char line[160];
            int fd = open(marker, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
            int len;

            if (fd < 0)
                return err_errno(err, ERR_IO, "cannot open marker %s", marker);
            len = snprintf(line, sizeof(line), "%s attempt %d\n", jobs_act_idempotency_key(act),
                           jobs_act_attempt(act));
            if (write(fd, line, (size_t)len) != len) {
                close(fd);
                return err_errno(err, ERR_IO, "cannot write marker %s", marker);
            }
            fsync(fd);
            close(fd);
            if (jobs_act_effect_put(act, "marker", NULL, err) < 0)
                return -1;
        }
    }
    jobs_act_set_output(act, json_pack("{s:f}", "slept", s));
    return 0;
}

/*
 * fail: fails with input "error" ("io": retryable, "invalid": not) until the attempt
 * input "succeed_on" (0: never).
 */
static int act_fail(struct jobs_act *act, struct err *err)
{
    const json_t *in = jobs_act_workflow_input(act);
    const char *kind = json_string_value(json_object_get(in, "error"));
    json_int_t ok_at = json_integer_value(json_object_get(in, "succeed_on"));

    if (ok_at > 0 && jobs_act_attempt(act) >= ok_at) {
        jobs_act_set_output(act, json_pack("{s:i}", "succeeded_on", jobs_act_attempt(act)));
        return 0;
    }
    if (kind && strcmp(kind, "invalid") == 0)
        return err_set(err, ERR_INVALID, "diagnostic failure (not retryable) on attempt %d",
                       jobs_act_attempt(act));
    return err_set(err, ERR_IO, "diagnostic failure (retryable) on attempt %d",
                   jobs_act_attempt(act));
}

/*
 * gate: items listed in input "gated" (default [0]) fail, not retryably, while the file
 * named by input "gate" does not exist; the others pass. What a retry after fixing the
 * cause looks like.
 */
static int act_gate(struct jobs_act *act, struct err *err)
{
    const json_t *wf = jobs_act_workflow_input(act);
    const char *gate = json_string_value(json_object_get(wf, "gate"));
    const json_t *gated = json_object_get(wf, "gated");
    json_int_t n = json_integer_value(json_object_get(jobs_act_input(act), "n"));
    int shut = 0;
    size_t i;
    json_t *v;

    if (!gated)
        shut = n == 0;
    json_array_foreach(gated, i, v)
    {
        if (json_integer_value(v) == n)
            shut = 1;
    }
    if (shut && (!gate || access(gate, F_OK) != 0))
        return err_set(err, ERR_INVALID, "item %lld: the gate is closed", (long long)n);
    jobs_act_set_output(act, json_deep_copy(jobs_act_input(act)));
    return 0;
}

/* join: checks it sees the outputs of every job of the fan-out step before it. */
static int act_join(struct jobs_act *act, struct err *err)
{
    const json_t *outs = json_object_get(jobs_act_outputs(act), "work");
    json_int_t want = json_integer_value(json_object_get(jobs_act_workflow_input(act), "count"));
    size_t n = json_array_size(outs);

    if (!json_object_get(jobs_act_workflow_input(act), "count"))
        want = 1;
    if ((json_int_t)n != want)
        return err_set(err, ERR_INTERNAL, "join saw %zu outputs of 'work', expected %lld", n,
                       (long long)want);
    jobs_act_set_output(act, json_pack("{s:I}", "joined", (json_int_t)n));
    return 0;
}

const struct jobs_activity wf__act_noop = {.name = "diagnostic.noop", .run = act_noop};
const struct jobs_activity wf__act_sleep = {.name = "diagnostic.sleep", .run = act_sleep};
const struct jobs_activity wf__act_fail = {.name = "diagnostic.fail", .run = act_fail};
const struct jobs_activity wf__act_join = {.name = "diagnostic.join", .run = act_join};
const struct jobs_activity wf__act_gate = {.name = "diagnostic.gate", .run = act_gate};

/* count no-op jobs on ingest: throughput and wake-up latency */
static const struct jobs_step noop_steps[] = {
    {.name = "work", .activity = "diagnostic.noop", .queue = JOBS_Q_INGEST, .fanout = fanout_count},
};
/* split -> count jobs in parallel -> join: fan-out and fan-in */
static const struct jobs_step fanout_steps[] = {
    {.name = "split", .activity = "diagnostic.noop", .queue = JOBS_Q_INGEST},
    {.name = "work", .activity = "diagnostic.noop", .queue = JOBS_Q_INGEST, .fanout = fanout_count},
    {.name = "join", .activity = "diagnostic.join", .queue = JOBS_Q_INGEST},
};
/* the same with a work item that fails until a file exists: retry after a fix */
static const struct jobs_step gated_steps[] = {
    {.name = "split", .activity = "diagnostic.noop", .queue = JOBS_Q_INGEST},
    {.name = "work", .activity = "diagnostic.gate", .queue = JOBS_Q_INGEST, .fanout = fanout_count},
    {.name = "join", .activity = "diagnostic.join", .queue = JOBS_Q_INGEST},
};
static const struct jobs_step sleep_steps[] = {
    {.name = "sleep", .activity = "diagnostic.sleep", .queue = JOBS_Q_INGEST},
};
static const struct jobs_step sleep_transcode_steps[] = {
    {.name = "sleep", .activity = "diagnostic.sleep", .queue = JOBS_Q_TRANSCODE},
};
static const struct jobs_step sleep_interactive_steps[] = {
    {.name = "sleep", .activity = "diagnostic.sleep", .queue = JOBS_Q_TRANSCODE_INTERACTIVE},
};
static const struct jobs_step fail_steps[] = {
    {.name = "fail", .activity = "diagnostic.fail", .queue = JOBS_Q_INGEST},
};
static const struct jobs_step delayed_steps[] = {
    {.name = "wait", .activity = "diagnostic.noop", .queue = JOBS_Q_INGEST, .delay_ms = 1500},
};

const struct jobs_workflow_def wf__diag_noop = {"diagnostic.noop", noop_steps,
                                                ARRAY_LEN(noop_steps), 0};
const struct jobs_workflow_def wf__diag_fanout = {"diagnostic.fanout", fanout_steps,
                                                  ARRAY_LEN(fanout_steps), 0};
const struct jobs_workflow_def wf__diag_gated = {"diagnostic.gated-fanout", gated_steps,
                                                 ARRAY_LEN(gated_steps), 0};
const struct jobs_workflow_def wf__diag_sleep = {"diagnostic.sleep", sleep_steps,
                                                 ARRAY_LEN(sleep_steps), 0};
const struct jobs_workflow_def wf__diag_sleep_transcode = {
    "diagnostic.sleep-transcode", sleep_transcode_steps, ARRAY_LEN(sleep_transcode_steps), 0};
const struct jobs_workflow_def wf__diag_sleep_interactive = {
    "diagnostic.sleep-interactive", sleep_interactive_steps, ARRAY_LEN(sleep_interactive_steps), 0};
const struct jobs_workflow_def wf__diag_fail = {"diagnostic.fail", fail_steps,
                                                ARRAY_LEN(fail_steps), 0};
const struct jobs_workflow_def wf__diag_delayed = {"diagnostic.delayed", delayed_steps,
                                                   ARRAY_LEN(delayed_steps), 0};
