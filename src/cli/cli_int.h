/* cli_int: shared by the files of the acervo client (see cli.h) */
#ifndef ACERVO_CLI_INT_H
#define ACERVO_CLI_INT_H

#include "cli/cli.h"

#include <curl/curl.h>
#include <signal.h>

/* what a command returns when its command line is wrong: the command exits CLI_USAGE */
#define CLI__USAGE_RC (-2)

/** Sets err to "usage: ..." and returns CLI__USAGE_RC. */
int cli__usage(struct err *err, const char *usage);
/** Sets err to a message about a bad argument and returns CLI__USAGE_RC. */
int cli__bad(struct err *err, const char *fmt, ...) ATTR_PRINTF(2, 3);
/** Parses a decimal in [lo, hi]; -1 if it is not one. */
int cli__parse_long(const char *s, long lo, long hi, long *out);
/** Parses a byte count: 500000, 64k, 50M, 1.5G (powers of 1024); -1 if it is not one. */
int cli__parse_size(const char *s, int64_t *out);
/** Adds KEY=VALUE to *meta (an object, made when NULL); -1 with err when there is no '='. */
int cli__meta_add(json_t **meta, const char *kv, struct err *err);
/** Makes the directory (mkdir -p) and sets it to mode 0700. */
int cli__private_dir(const char *path, struct err *err);
/** A transfer's progress bar on stderr (terminals only): bytes, rate, ETA. */
struct cli_bar {
    const char *name;
    int64_t total;      /* bytes of the whole file */
    int64_t base;       /* bytes done before this run (a resume): not in the rate */
    int64_t started_ms; /* when this run started */
    int64_t last_ms;    /* last drawn (at most five times a second) */
    /* several files: this one's number (1..), how many, bytes of the files before this
     * one and of them all; files 0 draws no total */
    int file_no, files;
    int64_t files_before, files_total;
};
/** Draws b with done bytes of b->total; final ends the line. */
void cli__bar_show(struct cli_bar *b, int64_t done, int final);
/** Formats n bytes for people (1.5 GiB). */
void cli__human_bytes(char *out, size_t cap, double n);

/** What an item of a transfer pool is at a moment (cli_pool.state). */
enum { CLI_POOL_DONE, CLI_POOL_READY, CLI_POOL_WAIT };

/**
 * A transfer's items (an upload's parts, a download's ranges) for cli_pool_run, which
 * runs them at most parallel at once in one libcurl multi until every one is done, one
 * fails for good, or Ctrl-C. A try of an item is the transfer's own struct, whose easy
 * handle has it as CURLOPT_PRIVATE.
 */
struct cli_pool {
    void *ctx;
    int n, parallel;
    const char *stopped; /* what a Ctrl-C says after "interrupted: " */
    /* item i: CLI_POOL_DONE, CLI_POOL_READY to start now, or CLI_POOL_WAIT (it runs, it
     * waits for its backoff or for something turn brings) */
    int (*state)(void *ctx, int i, int64_t now);
    /* a try of item i, its handle added to m */
    void *(*start)(void *ctx, CURLM *m, int i);
    /* the try ended with rc: 0 (the item is done, or will be tried again), -1 with err */
    int (*finish)(void *ctx, void *x, CURLcode rc, struct err *err);
    /* frees a try, finished or not (its handle taken out of m) */
    void (*release)(void *ctx, CURLM *m, void *x);
    /* bytes a running try has moved */
    int64_t (*moved)(void *x);
    /* after each turn, idle when nothing runs; inflight the bytes of the running tries:
     * progress, fresh URLs; -1 with err stops the pool */
    int (*turn)(void *ctx, int idle, int64_t inflight, struct err *err);
};
/** Runs the pool: 0 when every item is done, else -1 with err. */
int cli_pool_run(const struct cli_pool *p, struct err *err);

/** Set by SIGINT or SIGTERM once cli__catch_stop ran: transfers stop, resumable. */
extern volatile sig_atomic_t cli__stop;
void cli__catch_stop(void);

/** What an upload sends besides the file. */
struct up_opts {
    const char *type, *title, *description;
    json_t *tags, *meta;
    int parallel;
    int64_t rate;
    int keep_state; /* keep the state file after completing (the watcher removes it) */
    /* the total bar of several files (struct cli_bar's fields of the same names) */
    int file_no, files;
    int64_t files_before, files_total;
};
/**
 * Uploads one file, resuming what an earlier run of the same file sent; *asset is the
 * asset as completed (json_decref it). An upload completed before is found and not sent
 * again.
 */
int cli__upload_one(struct cli *c, const char *path, const struct up_opts *o, json_t **asset,
                    struct err *err);
/** The state file of a file (NULL when it cannot be read); free it. */
char *cli__upload_state(const struct cli *c, const char *path);
/** Removes an upload's state file (and what a replace of it left behind). */
void cli__upload_state_remove(const char *state);

/* the commands: argv[0] is the command's name; 0, -1 with err, or CLI__USAGE_RC */
int cli__cmd_login(struct cli *c, int argc, char **argv, struct err *err);
int cli__cmd_whoami(struct cli *c, int argc, char **argv, struct err *err);
int cli__cmd_show(struct cli *c, int argc, char **argv, struct err *err);
int cli__cmd_ls(struct cli *c, int argc, char **argv, struct err *err);
int cli__cmd_search(struct cli *c, int argc, char **argv, struct err *err);
int cli__cmd_edit(struct cli *c, int argc, char **argv, struct err *err);
int cli__cmd_jobs(struct cli *c, int argc, char **argv, struct err *err);
int cli__cmd_upload(struct cli *c, int argc, char **argv, struct err *err);
int cli__cmd_download(struct cli *c, int argc, char **argv, struct err *err);
int cli__cmd_watch(struct cli *c, int argc, char **argv, struct err *err);

#endif
