/*
 * The activity context: what a running activity reads (inputs, outputs of earlier
 * steps), reports (progress, output), records (effects), and the child processes it
 * runs, which are killed as a group when the job is cancelled.
 */
#include "jobs/jobs_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- inputs and outputs -----------------------------------------------------------------------
 */

/* Loads the workflow's input and asset id once. */
static void wf_load(struct jobs_act *act)
{
    struct cat_workflow wf;
    struct err e;

    if (act->wf_loaded)
        return;
    act->wf_loaded = 1;
    memset(&wf, 0, sizeof(wf));
    if (cat_wf_get(act->w->cat, act->job.workflow_id, &wf, &e) < 0) {
        log_write(LOG_WARN, "jobs", "cannot read workflow %s: %s", act->job.workflow_id, e.msg);
        act->wf_input = json_object();
        return;
    }
    act->wf_input = json_loads(wf.input ? wf.input : "{}", 0, NULL);
    if (!act->wf_input)
        act->wf_input = json_object();
    snprintf(act->wf_asset_id, sizeof(act->wf_asset_id), "%s", wf.asset_id);
    cat_workflow_release(&wf);
}

const json_t *jobs_act_input(struct jobs_act *act)
{
    if (act->input)
        return act->input;
    wf_load(act);
    return act->wf_input;
}

const json_t *jobs_act_workflow_input(struct jobs_act *act)
{
    wf_load(act);
    return act->wf_input;
}

struct outputs_ctx {
    struct jobs_act *act;
    const struct jobs_workflow_def *def;
    json_t *obj;
};

static int output_cb(void *p, const struct cat_job *j)
{
    struct outputs_ctx *o = p;
    const struct jobs_step *s = NULL;
    json_t *v;

    if (strcmp(j->status, JOB_COMPLETED) != 0 || !j->output)
        return 0;
    v = json_loads(j->output, JSON_DECODE_ANY, NULL);
    if (!v)
        return 0;
    for (size_t i = 0; o->def && i < o->def->nsteps; i++)
        if (strcmp(o->def->steps[i].name, j->step) == 0)
            s = &o->def->steps[i];
    if (s && s->fanout) {
        json_t *arr = json_object_get(o->obj, j->step);

        if (!arr) {
            arr = json_array();
            json_object_set_new(o->obj, j->step, arr);
        }
        json_array_append_new(arr, v);
    } else {
        json_object_set_new(o->obj, j->step, v);
    }
    return 0;
}

const json_t *jobs_act_outputs(struct jobs_act *act)
{
    struct cat_workflow wf;
    struct outputs_ctx o = {act, NULL, NULL};
    struct err e;

    if (act->outputs)
        return act->outputs;
    memset(&wf, 0, sizeof(wf));
    if (cat_wf_get(act->w->cat, act->job.workflow_id, &wf, &e) == 0) {
        o.def = jobs_workflow_find(wf.type);
        cat_workflow_release(&wf);
    }
    o.obj = json_object();
    if (cat_wf_jobs(act->w->cat, act->job.workflow_id, 0, output_cb, &o, &e) < 0)
        log_write(LOG_WARN, "jobs", "cannot read outputs of workflow %s: %s", act->job.workflow_id,
                  e.msg);
    act->outputs = o.obj;
    return act->outputs;
}

void jobs_act_set_output(struct jobs_act *act, json_t *output)
{
    json_decref(act->output);
    act->output = output;
}

void jobs_act_progress(struct jobs_act *act, double percent, const char *detail)
{
    if (percent < 0)
        percent = 0;
    if (percent > 100)
        percent = 100;
    pthread_mutex_lock(&act->mu);
    act->progress = percent;
    snprintf(act->progress_detail, sizeof(act->progress_detail), "%s", detail ? detail : "");
    act->progress_dirty = 1;
    pthread_mutex_unlock(&act->mu);
}

int jobs_act_cancelled(struct jobs_act *act)
{
    return atomic_load(&act->cancelled) != 0;
}

void jobs_act_permanent(struct jobs_act *act)
{
    act->permanent = 1;
}

const char *jobs_act_idempotency_key(struct jobs_act *act)
{
    return act->job.idempotency_key;
}

const char *jobs_act_workflow_id(struct jobs_act *act)
{
    return act->job.workflow_id;
}

const char *jobs_act_asset_id(struct jobs_act *act)
{
    wf_load(act);
    return act->wf_asset_id;
}

int jobs_act_attempt(struct jobs_act *act)
{
    return act->job.attempt;
}

struct catalog *jobs_act_catalog(struct jobs_act *act)
{
    return act->w->cat;
}

struct store *jobs_act_store(struct jobs_act *act)
{
    return act->w->store;
}

const struct cfg *jobs_act_cfg(struct jobs_act *act)
{
    return act->w->cfg;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* DATA/tmp/job-<job>-<attempt>: the scratch directory of one attempt of a job. */
static int scratch_path(const struct cfg *cfg, int64_t job, int attempt, char *out, size_t n)
{
    return (size_t)snprintf(out, n, "%.500s/tmp/job-%lld-%d", cfg->data_dir, (long long)job,
                            attempt) < n
               ? 0
               : -1;
}

const char *jobs_act_scratch(struct jobs_act *act, struct err *err)
{
    char dir[600];

    if (act->scratch[0])
        return act->scratch;
    snprintf(dir, sizeof(dir), "%s/tmp", act->w->cfg->data_dir);
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        err_errno(err, ERR_IO, "cannot create %s", dir);
        return NULL;
    }
    if (scratch_path(act->w->cfg, act->job.id, act->job.attempt, act->scratch,
                     sizeof(act->scratch)) < 0) {
        act->scratch[0] = '\0';
        err_set(err, ERR_LIMIT, "the data dir path is too long for scratch files");
        return NULL;
    }
    /* an earlier attempt of this job that died (its worker killed, its lease lost) may
     * have left its directory: only the attempt holding the lease writes here now */
    for (int a = act->job.attempt - 1; a >= 1 && a >= act->job.attempt - 16; a--) {
        char old[700];

        if (scratch_path(act->w->cfg, act->job.id, a, old, sizeof(old)) == 0 &&
            access(old, F_OK) == 0) {
            nftw(old, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
            log_write(LOG_INFO, "jobs", "removed %s, left by an attempt that did not finish", old);
        }
    }
    if (mkdir(act->scratch, 0700) < 0 && errno != EEXIST) {
        err_errno(err, ERR_IO, "cannot create %s", act->scratch);
        act->scratch[0] = '\0';
        return NULL;
    }
    return act->scratch;
}

/* ---- effects ----------------------------------------------------------------------------------
 */

static void effect_key(struct jobs_act *act, const char *name, char *out, size_t n)
{
    snprintf(out, n, "%s#%s", act->job.idempotency_key, name);
}

int jobs_act_effect_get(struct jobs_act *act, const char *name, json_t **result, struct err *err)
{
    char key[256];
    char *text = NULL;

    effect_key(act, name, key, sizeof(key));
    *result = NULL;
    if (cat_effect_get(act->w->cat, key, &text, err) < 0)
        return err->code == ERR_NOTFOUND ? 0 : -1;
    if (text) {
        *result = json_loads(text, JSON_DECODE_ANY, NULL);
        free(text);
    }
    return 1;
}

int jobs_act_effect_put(struct jobs_act *act, const char *name, const json_t *result,
                        struct err *err)
{
    char key[256];
    char *text = result ? json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    int rc;

    effect_key(act, name, key, sizeof(key));
    rc = cat_effect_put(act->w->cat, key, act->job.id, text, err);
    free(text);
    return rc;
}

/* ---- child processes ------------------------------------------------------------------------ */

void jobs__act_kill(struct jobs_act *act)
{
    int pgid = atomic_load(&act->child_pgid);

    if (pgid > 0)
        kill(-pgid, SIGKILL);
}

/* Keeps the last bytes of stderr in tail (NUL-terminated). */
static void tail_append(char *tail, size_t cap, const char *data, size_t n)
{
    size_t have = strlen(tail);

    if (n >= cap - 1) {
        memcpy(tail, data + n - (cap - 1), cap - 1);
        tail[cap - 1] = '\0';
        return;
    }
    if (have + n >= cap) {
        size_t drop = have + n - (cap - 1);

        memmove(tail, tail + drop, have - drop + 1);
        have -= drop;
    }
    memcpy(tail + have, data, n);
    tail[have + n] = '\0';
}

/* What runs in the child between fork and exec: async-signal-safe calls only. */
static void child_exec(char *const argv[], const struct jobs_spawn_opts *o, int in_fd, int out_fd,
                       int err_fd)
{
    struct rlimit rl;

    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(127);
    syscall(SYS_close_range, 3U, ~0U, 0U);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    /* (AddressSanitizer and ThreadSanitizer reserve terabytes of shadow address space: a
     * sanitizer build cannot run under an address-space limit, so its children go
     * without) */
    if (o && o->max_memory > 0) {
        rl.rlim_cur = rl.rlim_max = (rlim_t)o->max_memory;
        setrlimit(RLIMIT_AS, &rl);
    }
#endif
    if (o && o->max_cpu_s > 0) {
        rl.rlim_cur = (rlim_t)o->max_cpu_s;
        rl.rlim_max = (rlim_t)o->max_cpu_s + 5;
        setrlimit(RLIMIT_CPU, &rl);
    }
    rl.rlim_cur = rl.rlim_max = 0;
    setrlimit(RLIMIT_CORE, &rl);
    execv(argv[0], argv);
    _exit(127);
}

int jobs_act_spawn(struct jobs_act *act, char *const argv[], const struct jobs_spawn_opts *o,
                   struct jobs_child *res, struct err *err)
{
    int outp[2] = {-1, -1}, errp[2] = {-1, -1};
    int in_fd = -1, rc = -1, timed_out = 0;
    size_t out_cap = o ? o->max_stdout : 0;
    int64_t deadline = o && o->timeout_ms > 0 ? util_mono_ms() + o->timeout_ms : 0;
    struct buf out;
    pid_t pid;

    memset(res, 0, sizeof(*res));
    buf_init(&out, 0);
    if (jobs_act_cancelled(act)) {
        buf_release(&out);
        return err_set(err, ERR_CONFLICT, "cancelled");
    }
    in_fd = o && o->use_stdin ? fcntl(o->stdin_fd, F_DUPFD_CLOEXEC, 3)
                              : open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in_fd < 0 || pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
        err_errno(err, ERR_IO, "cannot set up a child process for %s", argv[0]);
        goto out_close;
    }
    pid = fork();
    if (pid < 0) {
        err_errno(err, ERR_IO, "cannot start %s", argv[0]);
        goto out_close;
    }
    if (pid == 0)
        child_exec(argv, o, in_fd, outp[1], errp[1]);
    setpgid(pid, pid); /* also in the parent, so the group exists before any kill */
    atomic_store(&act->child_pgid, (int)pid);
    if (jobs_act_cancelled(act))
        jobs__act_kill(act); /* cancelled between the check and the fork */
    close(outp[1]);
    close(errp[1]);
    outp[1] = errp[1] = -1;
    for (int open_n = 2; open_n > 0;) {
        struct pollfd pf[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
        char chunk[16384];
        int wait_ms = 200;

        if (deadline) {
            int64_t left = deadline - util_mono_ms();

            if (left <= 0 && !timed_out) {
                timed_out = 1;
                jobs__act_kill(act);
            }
            if (left > 0 && left < wait_ms)
                wait_ms = (int)left;
        }
        if (poll(pf, 2, wait_ms) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            ssize_t n;

            if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            n = read(pf[i].fd, chunk, sizeof(chunk));
            if (n <= 0) {
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                    continue;
                close(pf[i].fd);
                if (i == 0)
                    outp[0] = -1;
                else
                    errp[0] = -1;
                open_n--;
                continue;
            }
            if (i == 0 && o && o->on_stdout)
                o->on_stdout(o->on_stdout_ctx, chunk, (size_t)n);
            if (i == 0 && out_cap && out.len < out_cap) {
                size_t take = (size_t)n;

                if (take > out_cap - out.len)
                    take = out_cap - out.len;
                buf_add(&out, chunk, take, NULL);
            } else if (i == 1) {
                tail_append(res->err_tail, sizeof(res->err_tail), chunk, (size_t)n);
            }
        }
    }
    while (waitpid(pid, &res->status, 0) < 0 && errno == EINTR)
        ;
    jobs__act_kill(act); /* whatever the child left in its group goes with it */
    atomic_store(&act->child_pgid, 0);
    if (jobs_act_cancelled(act)) {
        err_set(err, ERR_CONFLICT, "cancelled");
        goto out_close;
    }
    if (timed_out) {
        err_set(err, ERR_LIMIT, "%s timed out after %lld s", argv[0],
                (long long)(o->timeout_ms / 1000));
        goto out_close;
    }
    if (out_cap) {
        res->out_len = out.len;
        res->out = buf_detach(&out, NULL);
    }
    rc = 0;
out_close:
    buf_release(&out);
    if (in_fd >= 0)
        close(in_fd);
    for (int i = 0; i < 2; i++) {
        if (outp[i] >= 0)
            close(outp[i]);
        if (errp[i] >= 0)
            close(errp[i]);
    }
    return rc;
}

/* ---- lifetime ---------------------------------------------------------------------------------
 */

/* ---- leftover scratch directories ------------------------------------------------------------ */

#define SWEEP_MAX 1024 /* directories looked at per sweep; the next sweep does the rest */

struct sweep_dir {
    int64_t job;
    int attempt;
    int keep;
};

struct sweep_ctx {
    struct sweep_dir *d;
    size_t n;
};

static int sweep_body(struct cat_tx *tx, void *p, struct err *err)
{
    struct sweep_ctx *c = p;

    for (size_t i = 0; i < c->n; i++) {
        struct cat_job j;
        struct err e;

        memset(&j, 0, sizeof(j));
        if (cat_tx_job_get(tx, c->d[i].job, &j, &e) < 0) {
            if (e.code != ERR_NOTFOUND)
                return err_set(err, e.code, "%s", e.msg);
            c->d[i].keep = 0;
            continue;
        }
        /* only the attempt that holds the lease may still be writing there */
        c->d[i].keep = strcmp(j.status, JOB_LEASED) == 0 && j.attempt == c->d[i].attempt;
        cat_job_release(&j);
    }
    return 0;
}

void jobs__scratch_sweep(const struct cfg *cfg, struct catalog *cat)
{
    struct sweep_ctx c = {xcalloc(SWEEP_MAX, sizeof(struct sweep_dir)), 0};
    struct dirent *de;
    char path[700];
    struct err e;
    DIR *d;

    snprintf(path, sizeof(path), "%.500s/tmp", cfg->data_dir);
    d = opendir(path);
    while (d && (de = readdir(d)) != NULL && c.n < SWEEP_MAX) {
        long long job;
        int attempt, end = 0;

        if (sscanf(de->d_name, "job-%lld-%d%n", &job, &attempt, &end) == 2 &&
            de->d_name[end] == '\0') {
            c.d[c.n].job = job;
            c.d[c.n].attempt = attempt;
            c.n++;
        }
    }
    if (d)
        closedir(d);
    if (c.n && cat_tx_run(cat, sweep_body, &c, &e) < 0) {
        log_write(LOG_WARN, "jobs", "cannot check leftover scratch directories: %s", e.msg);
        c.n = 0;
    }
    for (size_t i = 0; i < c.n; i++) {
        if (c.d[i].keep)
            continue;
        if (scratch_path(cfg, c.d[i].job, c.d[i].attempt, path, sizeof(path)) < 0)
            continue;
        nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        log_write(LOG_INFO, "jobs", "removed %s, left by an attempt that did not finish", path);
    }
    free(c.d);
}

void jobs__act_release(struct jobs_act *act)
{
    if (act->scratch[0])
        nftw(act->scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    json_decref(act->input);
    json_decref(act->wf_input);
    json_decref(act->outputs);
    json_decref(act->output);
    cat_job_release(&act->job);
    pthread_mutex_destroy(&act->mu);
}
