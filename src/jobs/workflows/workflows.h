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
extern const struct jobs_activity wf__act_rendition;
extern const struct jobs_workflow_def wf__rendition;

/**
 * The renditions step's fan-out: one job {profile, version} per profile (not on demand)
 * that applies to the detected type and the streams the probe found.
 */
int wf__renditions_fanout(const json_t *input, const json_t *outputs, json_t **items,
                          struct err *err);

/* ---- child processes (child.c) ---------------------------------------------------------- */

/** The path of program prog installed next to acervod. */
int wf__beside(const char *prog, char *out, size_t n, struct err *err);
/** "SIGSEGV" for SIGSEGV, ... (static). */
const char *wf__sig_name(int sig);
/**
 * The failure of a child process ended by signal sig; what names it ("the media probe").
 * Killed (SIGKILL, SIGTERM: the OOM killer, an operator) or crashed, it is retryable
 * (ERR_IO): the machine may be at fault as much as the file, and a file that kills its
 * child every time fails after the attempts with this reason. SIGXCPU (RLIMIT_CPU) is
 * permanent, as a timeout is. Returns -1.
 */
int wf__child_signalled(struct jobs_act *act, const char *what, int sig, struct err *err);
/** The last line of a child's stderr tail, without prefix (may be NULL), into out. */
void wf__last_line(const char *tail, const char *prefix, char *out, size_t n);
/** Opens the master of the activity's asset for reading; *fd is the caller's to close. */
int wf__master_open(struct jobs_act *act, int *fd, struct err *err);
/**
 * Runs acervo-probe with args (NULL-ended; stdin_fd as its stdin, or -1) under the probe
 * limits; *out is the JSON object it printed. Unsupported media, a crash or a timeout
 * fail permanently with the reason.
 */
int wf__probe(struct jobs_act *act, char *const args[], int stdin_fd, json_t **out,
              struct err *err);

#endif
