/*
 * cli: the acervo command-line client's building blocks (docs/internals/cli.md). A
 * struct cli holds where the server is and the key to use; cli_call talks JSON to the
 * REST API over libcurl and turns a failure into a struct err whose class says which
 * exit code the command ends with (cli_exit_code).
 */
#ifndef ACERVO_CLI_H
#define ACERVO_CLI_H

#include "core/core.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/** Exit codes of every acervo command (docs/cli.md). */
enum cli_exit {
    CLI_OK = 0,
    CLI_FAILED = 1,   /* some of the work failed (one file of several), or a bug */
    CLI_USAGE = 2,    /* bad command line */
    CLI_AUTH = 3,     /* not logged in, a wrong key, or a role that may not do it */
    CLI_NOTFOUND = 4, /* no such asset, rendition or workflow */
    CLI_NETWORK = 5,  /* the server cannot be reached (refused, timed out, cut off) */
    CLI_SERVER = 6,   /* the server failed (5xx) */
    CLI_REFUSED = 7,  /* the server refused the request (400, 409, 413 ...) */
    CLI_LOCAL = 8,    /* a local file cannot be read or written (disk full ...) */
};

/** The client's settings: from flags, then the environment, then the config file. */
struct cli {
    char *server;      /* base URL without a trailing slash, e.g. http://127.0.0.1:8080 */
    char *key;         /* API key (bearer token), or NULL */
    int key_from_flag; /* --key was given (login then does not ask for one) */
    int json;          /* machine-readable output */
    int tty;           /* stdout is a terminal (progress bars, tables) */
    char *config;      /* the config file's path */
    char *state_dir;   /* where resumable transfers keep their state */
};

/** A response: status, Content-Length and body (capped). */
struct cli_resp {
    long status;
    int64_t length; /* Content-Length, -1 when not said */
    struct buf body;
};

/**
 * Fills c from the flags already in it, ACERVO_SERVER / ACERVO_KEY, and the config file
 * (XDG_CONFIG_HOME/acervo/config, else ~/.config/acervo/config). A missing file is no
 * error. Release with cli_release.
 */
int cli_load(struct cli *c, struct err *err);
void cli_release(struct cli *c);
/** Writes server and key to the config file (mode 0600, its directory 0700), atomically. */
int cli_save(const struct cli *c, struct err *err);

/** Starts libcurl (once per process). */
int cli_global_init(struct err *err);

/**
 * One request: method, a path under the server (starting with '/') or a full URL, an
 * optional body. Sends the key when there is one and the URL is the server's. On a
 * response (any status) returns 0 with r filled (cli_resp_release it); -1 with
 * ERR_NETWORK when no response came.
 */
int cli_http(const struct cli *c, const char *method, const char *path, const char *content_type,
             const void *body, size_t len, struct cli_resp *r, struct err *err);
void cli_resp_release(struct cli_resp *r);

/**
 * A JSON call to the API: body may be NULL. 2xx: 0, *out the parsed body (NULL for an
 * empty one; json_decref it). Otherwise -1 with err saying what the server said (its
 * problem+json detail) in a class cli_exit_code maps: ERR_UNAUTH/ERR_DENIED, ERR_NOTFOUND,
 * ERR_BACKEND (5xx), ERR_NETWORK, or the 4xx's class.
 */
int cli_call(const struct cli *c, const char *method, const char *path, const json_t *body,
             json_t **out, struct err *err);

/** What cli_call_opt adds to a call. */
struct cli_call_opt {
    const char *idempotency_key; /* sent as Idempotency-Key: "KEY" (NULL: none) */
    int attempts; /* tries in all, when no answer came or it was 5xx, 408 or 429: 0 or 1, once */
    json_t **problem; /* on a refusal, its problem+json (json_decref it); NULL: not wanted */
};

/**
 * cli_call with options: an Idempotency-Key, and retries with backoff (cli_backoff_ms) of
 * transient failures, each announced on stderr. Only for calls that are safe to repeat.
 */
int cli_call_opt(const struct cli *c, const char *method, const char *path, const json_t *body,
                 const struct cli_call_opt *o, json_t **out, struct err *err);

/** Tries of one transfer step (a part, a range, a call) before a transfer gives up. */
#define CLI_RETRY_MAX 10
/** The wait after failed tries (1..): 0.5 s, doubling, at most 30 s. */
int64_t cli_backoff_ms(int failed);
/** The calls of a transfer ride out a short outage, as its parts do: CLI_RETRY_MAX tries. */
extern const struct cli_call_opt cli_call_retried;
/** Sets err from a non-2xx response (its problem+json detail when there is one). */
int cli_fail_response(const struct cli_resp *r, const char *what, struct err *err);

/** The exit code a failure of this class ends the command with. */
enum cli_exit cli_exit_code(const struct err *err);

/** Percent-encodes s for a query string into b. */
int cli_query_add(struct buf *b, const char *name, const char *value, struct err *err);

#endif
