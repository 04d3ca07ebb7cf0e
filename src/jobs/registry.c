/* The workflow types and activities this build knows (const tables, one entry each). */
#include "jobs/jobs_int.h"
#include "jobs/workflows/workflows.h"

const struct jobs_workflow_def *const jobs__workflows[] = {
    &wf__ingest,
    &wf__rendition,
    &wf__diag_noop,
    &wf__diag_fanout,
    &wf__diag_gated,
    &wf__diag_sleep,
    &wf__diag_sleep_transcode,
    &wf__diag_sleep_interactive,
    &wf__diag_fail,
    &wf__diag_delayed,
    NULL,
};

const struct jobs_activity *const jobs__activities[] = {
    &wf__act_assemble,  &wf__act_detect, &wf__act_probe, &wf__act_index,
    &wf__act_rendition, &wf__act_noop,   &wf__act_sleep, &wf__act_fail,
    &wf__act_join,      &wf__act_gate,   NULL,
};
