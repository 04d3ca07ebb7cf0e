/*
 * http: acervo's HTTP/1.1 server (one thread per connection so handlers may block on the
 * catalog or the disk; strict framing; deadlines for headers and bodies; connection limits
 * per client address), request/response helpers, Range and conditional GET, the route
 * table matcher and the one place an err_code becomes an HTTP status.
 */
#ifndef ACERVO_HTTP_H
#define ACERVO_HTTP_H

#include "core/core.h"

#include <stdint.h>

struct http_req;
struct http_server;
struct http_conn;  /* the connection a request came on (server internals) */
struct http__head; /* the parsed request head (server internals) */
struct json_t;     /* jansson's json_t */

/** Streams a chunk of the request body; -1 with err set stops the request. */
typedef int (*http_sink_fn)(struct http_req *req, const char *data, size_t n, struct err *err);

/** An application served by a listener (the REST API, the S3 endpoint). */
struct http_app {
    const char *name; /* "api", "s3": for logs */
    /* Headers are in. May send a response at once (http_send_*), or choose how the body
     * is taken: req->sink (streamed) or req->body_max (buffered into req->body). */
    void (*on_headers)(struct http_req *req);
    /* The whole body is in (skipped if a response was already sent). Must send one. */
    void (*on_complete)(struct http_req *req);
    /* Renders an error (body too large, sink failure, internal error) as a response. */
    void (*on_error)(struct http_req *req, const struct err *err);
    /* The request is over (response sent or connection lost): release app state. */
    void (*on_free)(struct http_req *req);
    void *ctx;
    /* 1: a '+' in the query is a literal plus (S3, whose signatures read it so); 0: a
     * space, as HTML forms and most HTTP clients send it */
    int query_plus_literal;
};

/** A request. Everything hanging off it lives in req->arena until the request ends. */
struct http_req {
    struct arena arena;
    const struct http_app *app;
    struct http_conn *conn;
    const struct http__head *head;
    char id[24];
    const char *method;
    const char *path;       /* raw (still percent-encoded) path */
    const char *query;      /* raw query string without '?', "" if none */
    int64_t content_length; /* -1 if not given (chunked) */
    int64_t started_ms;

    /* body handling, chosen in on_headers */
    http_sink_fn sink;
    size_t body_max; /* >0: buffer the body up to this many bytes */
    struct buf body;
    int64_t body_received;

    /* set by the app */
    void *state; /* app's per-request state */
    int status;  /* status sent, 0 until then */
    int64_t resp_bytes;
    int failed; /* the body could not be taken */
    struct err err;

    /* response headers accumulated before the response is sent */
    struct http_header *resp_headers;

    int in_headers; /* 1 while on_headers runs: an answer now is an early one */
};

/** A response header in the arena. */
struct http_header {
    struct http_header *next;
    const char *name;
    const char *value;
};

/** Options of one listener. Zero or negative values take the defaults shown. */
struct http_listen_opts {
    const char *listen;     /* "HOST:PORT" */
    long max_header_bytes;  /* request line plus headers (24 KiB) */
    long connection_limit;  /* open connections, one thread each (1024) */
    long per_address_limit; /* open connections of one client address (256) */
    long header_timeout_s;  /* deadline for a request's line and headers (20 s) */
    long body_timeout_s;    /* grace before a body must keep up body_min_rate (20 s) */
    long body_min_rate;     /* bytes per second a body must average after the grace (500) */
    long idle_timeout_s;    /* keep-alive wait, and longest a read or write stalls (60 s) */
};

/**
 * Starts a listener serving app on opts->listen. The socket is bound before return,
 * so a caller can print the address at once.
 */
int http_server_start(struct http_server **out, const struct http_app *app,
                      const struct http_listen_opts *opts, struct err *err);
/** The port the listener is bound to (useful with port 0). */
int http_server_port(struct http_server *s);
/** Stops accepting new connections; in-flight requests go on. */
void http_server_quiesce(struct http_server *s);
/** Number of requests in flight. */
long http_server_inflight(struct http_server *s);
/** Stops the listener, closing connections, and frees it. */
void http_server_stop(struct http_server *s);

/** A request header (case-insensitive name), or NULL. Valid until the request ends. */
const char *http_header(struct http_req *req, const char *name);
/** Every header value of name joined with ','. NULL if absent. In the arena. */
const char *http_header_joined(struct http_req *req, const char *name);
/** A query parameter, percent-decoded, or NULL; "" for a bare "name". In the arena. */
const char *http_query(struct http_req *req, const char *name);
/** 1 if the query has parameter name (with or without a value). */
int http_query_has(struct http_req *req, const char *name);
/** The peer's address as text. In the arena. */
const char *http_peer(struct http_req *req);
/** Calls cb for each request header in order. */
void http_headers_each(struct http_req *req, void (*cb)(void *ctx, const char *k, const char *v),
                       void *ctx);

/** Adds a response header (copied into the arena) to the response to come. */
void http_resp_header(struct http_req *req, const char *name, const char *value);

/** Sends a response with a body copied from data. */
void http_send(struct http_req *req, int status, const char *content_type, const void *data,
               size_t n);
/** Sends a response whose body is the buffer's contents (taken over and freed). */
void http_send_buf(struct http_req *req, int status, const char *content_type, struct buf *b);
/** Sends status with no body. */
void http_send_empty(struct http_req *req, int status);
/** Sends a 302/303/307 with Location. */
void http_send_redirect(struct http_req *req, int status, const char *location);
/**
 * Sends n bytes of fd from offset (zero-copy sendfile). Takes fd over: it is closed when
 * the response is done. Sizes below small_max are read into memory and fd is closed now.
 */
void http_send_fd(struct http_req *req, int status, const char *content_type, int fd,
                  int64_t offset, int64_t n, int64_t small_max);

/** The HTTP status of an error class: the one place the mapping lives. */
int http_problem_status(enum err_code code);
/** Standard reason phrase of a status ("Not Found"). Static. */
const char *http_status_text(int status);
/** Sends an RFC 9457 problem+json: type, title, status, detail (err->msg), instance. */
void http_send_problem(struct http_req *req, const struct err *err);
/**
 * Like http_send_problem, with the members of extra (a JSON object, may be NULL; not taken
 * over) added to the problem. Members of the standard set (type, title, ...) win.
 */
void http_send_problem_extra(struct http_req *req, const struct err *err, struct json_t *extra);

/** One satisfiable byte range [start, end] (inclusive). */
struct http_range {
    int64_t start;
    int64_t end;
};

/**
 * Parses a Range header against a representation of size bytes. Returns the number of
 * ranges (1..max) to serve, 0 if the header should be ignored (not bytes, or malformed:
 * RFC 9110 says serve the whole), or -1 with ERR_RANGE if none is satisfiable.
 */
int http_range_parse(const char *header, int64_t size, struct http_range *out, int max,
                     struct err *err);

/** Outcome of conditional request evaluation. */
enum http_cond { HTTP_COND_PROCEED = 0, HTTP_COND_NOT_MODIFIED = 304, HTTP_COND_FAILED = 412 };

/**
 * Evaluates If-Match, If-Unmodified-Since, If-None-Match and If-Modified-Since (RFC 9110
 * section 13.2.2 order) for a representation with etag (without quotes) and mtime.
 */
enum http_cond http_conditional(struct http_req *req, const char *etag, int64_t mtime);

/** What http_send_object serves. */
struct http_object {
    int64_t size;
    int64_t mtime;
    const char *etag;          /* without quotes */
    const char *content_type;  /* may be NULL: application/octet-stream */
    const char *cache_control; /* may be NULL */
    const char *disposition;   /* Content-Disposition, may be NULL */
    int64_t small_max;         /* below this, read into memory instead of sendfile */
};

/**
 * Serves an object from fd with ETag, Last-Modified, Accept-Ranges, conditional requests
 * (304/412) and a single Range (206/416). Takes fd over. On errors calls the app's
 * on_error with ERR_RANGE / ERR_PRECONDITION.
 */
void http_send_object(struct http_req *req, int fd, const struct http_object *obj);

/** A route: method + pattern with {name} segments. */
struct http_route {
    const char *method;
    const char *pattern;
    void (*handler)(struct http_req *req, const char *const *params);
    int min_role; /* app-defined (the API's roles) */
    int flags;    /* app-defined */
};

/**
 * Finds the route for method and path (percent-encoded; each {param} segment is decoded
 * into params[], at most 4, in the arena). Returns the route, or NULL; *path_matched is
 * set to 1 if some route matched the path with another method (405 rather than 404).
 */
const struct http_route *http_route_find(struct http_req *req, const struct http_route *routes,
                                         size_t n, const char **params, int *path_matched);

#endif
