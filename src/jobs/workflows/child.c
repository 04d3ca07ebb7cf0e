/*
 * Child processes of the workflows: acervo-probe (installed next to acervod) and the
 * masters they read. Untrusted media is parsed only in such children.
 */
#include "jobs/workflows/workflows.h"
#include "store/store.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PROBE_EXIT_UNSUPPORTED 3 /* acervo-probe: not supported media, or over a limit */
#define PROBE_STDOUT_MAX       (4u << 20)

int wf__beside(const char *prog, char *out, size_t n, struct err *err)
{
    char *slash;
    ssize_t len = readlink("/proc/self/exe", out, n - 1);

    if (len <= 0)
        return err_errno(err, ERR_IO, "cannot find the acervod executable");
    out[len] = '\0';
    slash = strrchr(out, '/');
    if (!slash || (size_t)(slash - out) + 1 + strlen(prog) + 1 > n)
        return err_set(err, ERR_IO, "cannot place %s next to %s", prog, out);
    snprintf(slash + 1, n - (size_t)(slash + 1 - out), "%s", prog);
    return 0;
}

const char *wf__sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGKILL:
        return "SIGKILL";
    case SIGXCPU:
        return "SIGXCPU";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGHUP:
        return "SIGHUP";
    default:
        return "a signal";
    }
}

int wf__child_signalled(struct jobs_act *act, const char *what, int sig, struct err *err)
{
    /* RLIMIT_CPU: the same file needs the same time again, as after a timeout */
    if (sig == SIGXCPU) {
        jobs_act_permanent(act);
        return err_set(err, ERR_LIMIT, "%s ran out of CPU time (SIGXCPU, signal %d)", what, sig);
    }
    /* the OOM killer or an operator, not the file: retried like any transient failure */
    if (sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP)
        return err_set(err, ERR_IO, "%s was killed by signal %d (%s)", what, sig,
                       wf__sig_name(sig));
    /* a crash may be the file's or the machine's; a file that crashes its decoder every
     * time still fails, with this reason, once the attempts are used up */
    return err_set(err, ERR_IO, "%s crashed (%s, signal %d)", what, wf__sig_name(sig), sig);
}

void wf__last_line(const char *tail, const char *prefix, char *out, size_t n)
{
    const char *p = tail, *nl;
    size_t len = strlen(tail), plen = prefix ? strlen(prefix) : 0;

    while (len && (tail[len - 1] == '\n' || tail[len - 1] == '\r' || tail[len - 1] == ' '))
        len--;
    for (nl = memchr(p, '\n', len); nl; nl = memchr(p, '\n', len - (size_t)(p - tail)))
        p = nl + 1;
    len -= (size_t)(p - tail);
    if (plen && len >= plen && strncmp(p, prefix, plen) == 0) {
        p += plen;
        len -= plen;
    }
    if (!len)
        snprintf(out, n, "no reason given");
    else
        snprintf(out, n, "%.*s", (int)len, p);
}

int wf__master_open(struct jobs_act *act, int *fd, struct err *err)
{
    struct cat_asset a;
    struct store_meta m;
    int rc = -1;

    *fd = -1;
    memset(&a, 0, sizeof(a));
    if (cat_asset_get(jobs_act_catalog(act), jobs_act_asset_id(act), &a, err) < 0)
        return -1;
    if (!a.master_storage_key)
        err_set(err, ERR_CONFLICT, "asset %s has no master", a.id);
    else
        rc = store_object_open(jobs_act_store(act), STORE_BUCKET_ARCHIVE, a.master_storage_key, fd,
                               &m, err);
    cat_asset_release(&a);
    return rc;
}

int wf__probe(struct jobs_act *act, char *const args[], int stdin_fd, json_t **out, struct err *err)
{
    const struct cfg *cfg = jobs_act_cfg(act);
    struct jobs_spawn_opts o = {0};
    struct jobs_child ch;
    char exe[1024], reason[200];
    char *argv[16];
    int n = 0, rc = -1;

    *out = NULL;
    if (wf__beside("acervo-probe", exe, sizeof(exe), err) < 0)
        return -1;
    argv[n++] = exe;
    for (size_t i = 0; args[i] && n < (int)ARRAY_LEN(argv) - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    o.timeout_ms = (int64_t)cfg->probe_timeout * 1000;
    o.max_memory = cfg->probe_memory;
    o.max_cpu_s = cfg->probe_timeout;
    o.max_stdout = PROBE_STDOUT_MAX;
    o.use_stdin = stdin_fd >= 0;
    o.stdin_fd = stdin_fd;
    if (jobs_act_spawn(act, argv, &o, &ch, err) < 0) {
        if (err->code == ERR_LIMIT)
            jobs_act_permanent(act); /* the same file will hang the same way */
        return -1;
    }
    if (WIFSIGNALED(ch.status)) {
        wf__child_signalled(act, "the media probe", WTERMSIG(ch.status), err);
    } else if (WEXITSTATUS(ch.status) == PROBE_EXIT_UNSUPPORTED) {
        jobs_act_permanent(act);
        wf__last_line(ch.err_tail, "acervo-probe: ", reason, sizeof(reason));
        err_set(err, ERR_UNSUPPORTED, "%s", reason);
    } else if (WEXITSTATUS(ch.status) != 0) {
        wf__last_line(ch.err_tail, "acervo-probe: ", reason, sizeof(reason));
        err_set(err, ERR_IO, "the media probe failed (exit %d): %s", WEXITSTATUS(ch.status),
                reason);
    } else if (!ch.out || !(*out = json_loads(ch.out, 0, NULL)) || !json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        err_set(err, ERR_INTERNAL, "the media probe printed no JSON object");
    } else {
        rc = 0;
    }
    free(ch.out);
    return rc;
}
