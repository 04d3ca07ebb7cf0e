/*
 * The workflow definitions and their activities, one file per workflow family. The
 * registry (src/jobs/registry.c) lists them; adding a workflow or an activity is one
 * entry there and its definition here.
 */
#ifndef ACERVO_JOBS_WORKFLOWS_H
#define ACERVO_JOBS_WORKFLOWS_H

#include "jobs/jobs.h"

extern const struct jobs_workflow_def wf__diag_noop;
extern const struct jobs_workflow_def wf__diag_fanout;
extern const struct jobs_workflow_def wf__diag_sleep;
extern const struct jobs_workflow_def wf__diag_sleep_transcode;
extern const struct jobs_workflow_def wf__diag_sleep_interactive;
extern const struct jobs_workflow_def wf__diag_fail;
extern const struct jobs_workflow_def wf__diag_delayed;
extern const struct jobs_activity wf__act_noop;
extern const struct jobs_activity wf__act_sleep;
extern const struct jobs_activity wf__act_fail;
extern const struct jobs_activity wf__act_join;
extern const struct jobs_activity wf__act_gate;
extern const struct jobs_workflow_def wf__diag_gated;
extern const struct jobs_workflow_def wf__ingest;
extern const struct jobs_activity wf__act_assemble;
extern const struct jobs_activity wf__act_detect;
extern const struct jobs_activity wf__act_probe;
extern const struct jobs_activity wf__act_index;

#endif
