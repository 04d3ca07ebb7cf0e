/*
 * watch: acervo watch DIR - a hot folder. Every regular file that appears in DIR and
 * stops changing (size and modification time the same for --settle seconds) is uploaded,
 * then moved to DIR/done/; one the server refuses goes to DIR/failed/ with NAME.error
 * saying why. Network and server failures leave the file in place to be tried again.
 * An upload's state is removed only after the move, so a watcher stopped at any point
 * resumes a file's upload, or finds it completed, and never sends it twice.
 */
#include "cli/cli_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WATCH_MAX 10000 /* files followed at once */

struct seen {
    char *name;
    int64_t size, mtime_ns, since_ms; /* unchanged since */
    int64_t retry_at;                 /* after a transient failure */
    int tries;
    int present;
};

struct watch {
    struct cli *c;
    const char *dir;
    int64_t settle_ms, interval_ms;
    struct up_opts opts;
    struct seen *v;
    size_t n, cap;
    int uploaded, failed;
};

static struct seen *seen_find(struct watch *w, const char *name)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->v[i].name, name) == 0)
            return &w->v[i];
    if (w->n == WATCH_MAX)
        return NULL;
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->v = xrealloc(w->v, w->cap * sizeof(*w->v));
    }
    w->v[w->n] = (struct seen){.name = xstrdup(name), .size = -1};
    return &w->v[w->n++];
}

static void seen_drop(struct watch *w, struct seen *s)
{
    free(s->name);
    *s = w->v[--w->n];
}

static void say(struct watch *w, const char *what, const char *name, const char *asset_id,
                const char *detail)
{
    if (w->c->json) {
        json_t *j = json_pack("{s:s, s:s}", "event", what, "file", name);
        char *t;

        if (asset_id)
            json_object_set_new(j, "asset_id", json_string(asset_id));
        if (detail)
            json_object_set_new(j, "error", json_string(detail));
        t = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", t);
        free(t);
        json_decref(j);
    } else {
        printf("%s %s%s%s%s%s\n", what, name, asset_id ? " " : "", asset_id ? asset_id : "",
               detail ? ": " : "", detail ? detail : "");
    }
    fflush(stdout);
}

/* moves DIR/name into DIR/sub/, under a free name (name, name.1, name.2 ...) */
static int move_into(struct watch *w, const char *name, const char *sub, char *to, size_t cap,
                     struct err *err)
{
    char from[PATH_MAX];

    (void)snprintf(from, sizeof(from), "%s/%s", w->dir, name);
    for (int k = 0; k < 1000; k++) {
        struct stat st;

        if (k == 0)
            (void)snprintf(to, cap, "%s/%s/%s", w->dir, sub, name);
        else
            (void)snprintf(to, cap, "%s/%s/%s.%d", w->dir, sub, name, k);
        if (lstat(to, &st) < 0 && errno == ENOENT) {
            if (rename(from, to) < 0)
                return err_errno(err, ERR_IO, "cannot move %s to %s", from, to);
            return 0;
        }
    }
    return err_set(err, ERR_IO, "no free name for %s in %s/%s", name, w->dir, sub);
}

/* the server refused the file for good (as opposed to a failure worth trying again) */
static int refused(const struct err *e)
{
    switch (e->code) {
    case ERR_NETWORK:
    case ERR_BACKEND:
    case ERR_INTERNAL:
    case ERR_IO:
        return 0;
    default:
        return 1;
    }
}

/* 0, or -1 with err when the watcher must stop (the key is refused) */
static int handle(struct watch *w, struct seen *s, struct err *err)
{
    char path[PATH_MAX], to[PATH_MAX], *state;
    json_t *asset = NULL;
    struct err e = {0}, me = {0};

    (void)snprintf(path, sizeof(path), "%s/%s", w->dir, s->name);
    {
        /* still as it was when it was last seen settled? (a pass over many files is long) */
        struct stat st;

        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
            seen_drop(w, s);
            return 0;
        }
        if (st.st_size != s->size ||
            (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != s->mtime_ns) {
            s->size = st.st_size;
            s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
            s->since_ms = util_now_ms();
            return 0;
        }
    }
    state = cli__upload_state(w->c, path);
    if (cli__upload_one(w->c, path, &w->opts, &asset, &e) == 0) {
        const char *id = json_string_value(json_object_get(asset, "id"));

        if (move_into(w, s->name, "done", to, sizeof(to), &me) < 0) {
            say(w, "error", s->name, id, me.msg);
        } else {
            /* moved: the upload's record goes before the news (a stop between the two
             * leaves no record behind) */
            if (state)
                cli__upload_state_remove(state);
            say(w, "uploaded", s->name, id, NULL);
            w->uploaded++;
        }
        json_decref(asset);
        seen_drop(w, s);
        free(state);
        return 0;
    }
    free(state);
    if (cli__stop)
        return 0;
    if (e.code == ERR_UNAUTH || e.code == ERR_DENIED) {
        *err = e;
        return -1;
    }
    if (refused(&e)) {
        char note[PATH_MAX + 8];
        int fd;

        if (move_into(w, s->name, "failed", to, sizeof(to), &me) < 0) {
            say(w, "error", s->name, NULL, me.msg);
        } else {
            (void)snprintf(note, sizeof(note), "%s.error", to);
            fd = open(note, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd >= 0) {
                (void)util_write_all(fd, e.msg, strlen(e.msg), NULL);
                (void)util_write_all(fd, "\n", 1, NULL);
                close(fd);
            }
            say(w, "failed", s->name, NULL, e.msg);
            w->failed++;
        }
        seen_drop(w, s);
        return 0;
    }
    /* try again later: 5 s, 10 s ... up to 5 minutes */
    s->tries++;
    {
        int64_t wait = (int64_t)5000 << (s->tries < 8 ? s->tries - 1 : 7);

        s->retry_at = util_now_ms() + (wait < 300000 ? wait : 300000);
    }
    say(w, "retrying", s->name, NULL, e.msg);
    return 0;
}

static int scan(struct watch *w, struct err *err)
{
    DIR *d = opendir(w->dir);
    struct dirent *de;
    int64_t now = util_now_ms();

    if (!d)
        return err_errno(err, ERR_IO, "cannot read %s", w->dir);
    for (size_t i = 0; i < w->n; i++)
        w->v[i].present = 0;
    while ((de = readdir(d))) {
        struct stat st;
        struct seen *s;
        int64_t mt;

        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode))
            continue;
        s = seen_find(w, de->d_name);
        if (!s)
            continue;
        s->present = 1;
        mt = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        if (s->size != st.st_size || s->mtime_ns != mt) {
            s->size = st.st_size;
            s->mtime_ns = mt;
            s->since_ms = now; /* changed: the settle time starts again */
        }
    }
    closedir(d);
    for (size_t i = 0; i < w->n;) {
        if (!w->v[i].present)
            seen_drop(w, &w->v[i]); /* gone (moved away by someone) */
        else
            i++;
    }
    return 0;
}

int cli__cmd_watch(struct cli *c, int argc, char **argv, struct err *err)
{
    static const char usage[] =
        "acervo watch DIR [--settle SECONDS] [--interval SECONDS] [--once] [--type T] "
        "[--tag T ...] [--meta KEY=VALUE ...] [--parallel 1..32] [--limit-rate BYTES/s]";
    struct watch w = {.c = c, .settle_ms = 5000, .interval_ms = 1000};
    char sub[PATH_MAX];
    long v;
    int once = 0, rc = CLI__USAGE_RC;

    w.opts.parallel = 4;
    w.opts.keep_state = 1;
    for (int k = 1; k < argc; k++) {
        const char *val = k + 1 < argc ? argv[k + 1] : NULL;

        if (strcmp(argv[k], "--") == 0 && k + 2 == argc && !w.dir) {
            w.dir = argv[++k]; /* a directory whose name starts with '-' */
            continue;
        }
        if (argv[k][0] != '-' && !w.dir) {
            w.dir = argv[k];
            continue;
        }
        if (strcmp(argv[k], "--once") == 0) {
            once = 1;
            continue;
        }
        if (!val)
            goto usage;
        k++;
        if (strcmp(argv[k - 1], "--settle") == 0 && cli__parse_long(val, 0, 86400, &v) == 0)
            w.settle_ms = v * 1000;
        else if (strcmp(argv[k - 1], "--interval") == 0 && cli__parse_long(val, 1, 3600, &v) == 0)
            w.interval_ms = v * 1000;
        else if (strcmp(argv[k - 1], "--parallel") == 0 && cli__parse_long(val, 1, 32, &v) == 0)
            w.opts.parallel = (int)v;
        else if (strcmp(argv[k - 1], "--type") == 0)
            w.opts.type = val;
        else if (strcmp(argv[k - 1], "--limit-rate") == 0 &&
                 cli__parse_size(val, &w.opts.rate) == 0)
            continue;
        else if (strcmp(argv[k - 1], "--tag") == 0) {
            if (!w.opts.tags)
                w.opts.tags = json_array();
            json_array_append_new(w.opts.tags, json_string(val));
        } else if (strcmp(argv[k - 1], "--meta") == 0) {
            if (cli__meta_add(&w.opts.meta, val, err) < 0)
                goto out;
        } else {
            goto usage;
        }
    }
    if (!w.dir)
        goto usage;
    if (!c->key) {
        rc = err_set(err, ERR_UNAUTH, "not logged in: run acervo login URL first");
        goto out;
    }
    rc = -1;
    {
        struct stat st;

        if (stat(w.dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
            err_set(err, ERR_IO, "%s is not a directory", w.dir);
            goto out;
        }
    }
    (void)snprintf(sub, sizeof(sub), "%s/done", w.dir);
    if (util_mkdirs(sub, err) < 0)
        goto out;
    (void)snprintf(sub, sizeof(sub), "%s/failed", w.dir);
    if (util_mkdirs(sub, err) < 0)
        goto out;
    cli__catch_stop();
    if (!c->json)
        fprintf(stderr, "watching %s (files unchanged for %lld s are uploaded; Ctrl-C stops)\n",
                w.dir, (long long)(w.settle_ms / 1000));
    while (!cli__stop) {
        int64_t now;
        int pending = 0;

        if (scan(&w, err) < 0)
            goto out;
        now = util_now_ms();
        for (size_t i = 0; i < w.n && !cli__stop;) {
            struct seen *s = &w.v[i];
            size_t before = w.n;

            if (now - s->since_ms < w.settle_ms || s->retry_at > now) {
                pending++;
                i++;
                continue;
            }
            if (handle(&w, s, err) < 0)
                goto out;
            now = util_now_ms();
            if (w.n == before) /* kept for a retry */
                i++;
        }
        if (once && pending == 0)
            break;
        for (int64_t slept = 0; slept < w.interval_ms && !cli__stop; slept += 100)
            usleep(100000);
    }
    rc = 0;
    if (cli__stop && !c->json)
        fprintf(stderr, "stopped: %d uploaded, %d failed\n", w.uploaded, w.failed);
    goto out;
usage:
    rc = cli__usage(err, usage);
out:
    for (size_t i = 0; i < w.n; i++)
        free(w.v[i].name);
    free(w.v);
    json_decref(w.opts.tags);
    json_decref(w.opts.meta);
    return rc;
}
