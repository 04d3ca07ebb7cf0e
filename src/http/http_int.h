/* Internals shared by the files of the http module. */
#ifndef ACERVO_HTTP_INT_H
#define ACERVO_HTTP_INT_H

#include "http/http.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

/** How http__pct_decode treats the text. */
enum http__pct_mode {
    HTTP_PCT_SEGMENT, /* a path segment: a decoded '/' is refused */
    HTTP_PCT_FORM,    /* a query value: '+' is a space */
    HTTP_PCT_QUERY,   /* a query value: '+' is a plus */
};

/**
 * Percent-decodes n bytes of s into the arena. NULL on a malformed escape or a decoded
 * NUL (and, for a path segment, a decoded '/'). Valid until the arena is released.
 */
char *http__pct_decode(struct arena *a, const char *s, size_t n, enum http__pct_mode mode);

/* ---- the request parser (parse.c): pure functions over bytes ---------------------------- */

#define HTTP_MAX_FIELDS        100       /* header fields of one request (431 beyond) */
#define HTTP_CHUNK_SIZE_DIGITS 32        /* hex digits of one chunk size, leading zeros too */
#define HTTP_CHUNK_EXT_MAX     16384     /* chunk extension bytes of one body */
#define HTTP_TRAILER_MAX       16384     /* trailer section bytes of one body */
#define HTTP_DRAIN_MAX         (1 << 20) /* body bytes read and dropped to keep a connection */

/** A request header field; both strings point into the request's copy of its head. */
struct http__field {
    const char *name;
    const char *value; /* without surrounding whitespace */
};

/** How a request's body is delimited (RFC 9112 6.3). */
enum http__framing {
    HTTP_BODY_NONE,    /* no body (no Content-Length, or 0) */
    HTTP_BODY_LENGTH,  /* Content-Length bytes */
    HTTP_BODY_CHUNKED, /* Transfer-Encoding: chunked */
};

/** A parsed request head. Strings point into the parsed buffer (cut in place). */
struct http__head {
    const char *method;
    const char *target; /* as sent */
    const char *path;   /* raw path ("*" for OPTIONS *) */
    const char *query;  /* raw query without '?', "" if none */
    int minor;          /* HTTP/1.minor: 0 or 1 */
    struct http__field *fields;
    size_t nfields;
    enum http__framing framing;
    int64_t content_length; /* -1 without a Content-Length field */
    int keep_alive;         /* the client allows another request on the connection */
    int expect_continue;    /* Expect: 100-continue on a request with a body */
};

/**
 * Looks for the end of a request head (the empty line) in buf[0..n), starting at *pos,
 * the offset already scanned (0 at first; updated so a later call with more bytes goes
 * on from there). Returns the head's length including the empty line, 0 if more bytes are
 * needed, or -1 with ERR_INVALID on a bare CR or LF or a NUL byte.
 */
ssize_t http__head_scan(const char *buf, size_t n, size_t *pos, struct err *err);

/**
 * Parses a request line (n bytes, without CRLF) in place into h's method, target, path,
 * query and minor. -1 with ERR_INVALID (400) or ERR_VERSION (505). What was parsed before
 * an error stays in h.
 */
int http__line_parse(char *line, size_t n, struct http__head *h, struct err *err);

/**
 * Parses a whole request head (n bytes, as http__head_scan delimited it) in place: the
 * request line, the fields (array in a), the framing and connection semantics. -1 with
 * ERR_INVALID (400), ERR_HEADERS (431: too many fields) or ERR_VERSION (505). h's method
 * and path are "" until the request line is parsed, and stay set after a later error.
 */
int http__head_parse(char *p, size_t n, struct http__head *h, struct arena *a, struct err *err);

/** State of a chunked body decoder. */
struct http__chunked {
    int state;
    int digits;           /* of the chunk size (or the trailer name) so far */
    uint64_t size;        /* chunk size, then what is left of the chunk's data */
    size_t ext_bytes;     /* chunk extension bytes so far */
    size_t trailer_bytes; /* trailer section bytes so far */
};

/** Starts decoding a chunked body. */
void http__chunked_init(struct http__chunked *c);
/**
 * Decodes chunked bytes in[0..n). Returns how many were consumed, or -1 with ERR_INVALID.
 * Body data found is returned as one span of in (*data, *data_n; else NULL, 0), and the
 * call returns right after it so the caller can deliver it; call again with the rest.
 */
ssize_t http__chunked_decode(struct http__chunked *c, const char *in, size_t n, const char **data,
                             size_t *data_n, struct err *err);
/** 1 once the last chunk and the trailer section were read. */
int http__chunked_done(const struct http__chunked *c);

/* ---- the server (server.c: listener, acceptor, limits; conn.c: a connection's life) ----- */

/** Seconds a client refused for lack of room is told to wait (Retry-After). */
#define HTTP_RETRY_AFTER "5"

/** Limits and deadlines of a listener, resolved from struct http_listen_opts. */
struct http__limits {
    long max_header_bytes;
    long connections;
    long per_address;
    long reserve;             /* the last slots, kept for addresses holding few */
    long reserve_per_address; /* what an address may hold to get a reserved slot */
    int64_t header_ms;
    int64_t body_grace_ms;
    long body_min_rate;
    int64_t idle_ms;
};

/** Connections of one client address (an IPv6 /64), in the server's table. */
struct http__peer {
    struct http__peer *next;
    unsigned char key[16];
    long count;
};

struct http_server {
    const struct http_app *app;
    struct http__limits lim;
    char name[16];
    int lfd; /* the listening socket; -1 once quiesced */
    int port;
    int wake_fd;    /* eventfd: wakes the acceptor (quiesce, stop) */
    int quiesce_fd; /* eventfd, written at quiesce and stop: idle connections close */
    int stop_fd;    /* eventfd, written at stop: every connection closes */
    atomic_int quiescing;
    atomic_int stopping;
    atomic_long inflight;
    pthread_t acceptor;
    pthread_attr_t attr; /* connection threads: detached, bounded stack */

    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t cv;  /* a connection ended, or the listener closed */
    long nconn;
    int listen_closed;
    struct http__peer **peers; /* hash table of addresses with connections */
    size_t npeers;             /* buckets, a power of two */
};

/** One client connection, owned by its thread. */
struct http_conn {
    struct http_server *srv;
    int fd;
    char peer[48];         /* the client's address as text */
    unsigned char key[16]; /* its key in the address table */
    int64_t accepted_ms;
    char *buf; /* received bytes not yet consumed are buf[off..len) */
    size_t cap, off, len;
    struct buf out_head; /* the response recorded, sent once the app's callback returns */
    char *out_body;      /* its body (malloc'd), or NULL */
    int out_fd;          /* or the file it is sent from, -1 if none */
    int64_t out_off, out_n;
    int out_pending;
    int64_t out_sent;    /* bytes of it written so far */
    int close;           /* close after the current request */
    int linger;          /* bytes may still come: close with a lingering close */
    int slow;            /* cut for being too slow: little lingering */
    int io_failed;       /* the socket failed or timed out: nothing more goes out */
    const char *io_why;  /* why, for the log (static) */
    struct buf *capture; /* if set, responses are written here (the acceptor's answers) */
};

/** Serves a connection until it closes; frees c. The body of a connection thread. */
void http__conn_run(struct http_conn *c);
/**
 * Renders the answer to a connection refused for lack of room (503, Retry-After) into out,
 * through the app's on_error, without reading the request.
 */
void http__conn_refusal(struct http_server *s, const char *peer, const char *why, struct buf *out);
/** Called by a connection thread as it ends: frees its slot. */
void http__server_conn_done(struct http_server *s, const unsigned char key[16]);

#endif
