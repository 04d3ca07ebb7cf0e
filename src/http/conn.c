/*
 * A connection's life, in its own thread: read a request head under an absolute deadline,
 * parse it strictly (parse.c), let the app decide (on_headers), take the body under a
 * minimum-rate deadline, let the app answer, and go on with the next request while the
 * connection stays usable. Every way a request can go wrong gets an answer the client can
 * read (through the app's on_error: problem+json on the REST API, XML on S3), then the
 * connection closes. Also the request and response helpers of http.h.
 */
#include "http/http_int.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* the connection buffer: a whole request head must fit, with room to read past it */
#define BUF_MIN   (64 * 1024)
#define BUF_SLACK (8 * 1024)

/* the lingering close after an answer the client may still be sending a body to (like
 * nginx's lingering_timeout and lingering_time, shorter); a client cut for its slowness
 * gets little of it, or it would hold its slot on past its deadline */
#define LINGER_IDLE_MS  2000
#define LINGER_TOTAL_MS 10000
#define LINGER_SLOW_MS  1000

/* how a read ended */
enum rd { RD_DATA, RD_EOF, RD_TIMEOUT, RD_STOP };

/* how reading a body ended */
enum body_end {
    BODY_DONE,    /* every byte of it read */
    BODY_BAD,     /* its framing broke (err says how) */
    BODY_EOF,     /* the client closed before its end */
    BODY_TIMEOUT, /* too slow: under the minimum rate, or stalled */
    BODY_STOP,    /* the server is stopping or the socket failed */
    BODY_TOO_MUCH /* more is left than is worth reading to drop */
};

static void conn_flush(struct http_conn *c);

/* the connection can no longer be written to (why: a static string); always -1 */
static int conn_failed(struct http_conn *c, const char *why)
{
    if (!c->io_failed)
        c->io_why = why;
    c->io_failed = 1;
    return -1;
}

/* ---- socket I/O with deadlines --------------------------------------------------------- */

/*
 * Waits for events on the connection until deadline_ms. While idle between requests it
 * also gives up when the server quiesces. 1 ready, 0 timed out, -1 stopping or failed.
 */
static int conn_wait(struct http_conn *c, short events, int64_t deadline_ms, int idle)
{
    struct http_server *s = c->srv;
    struct pollfd pf[2] = {{c->fd, events, 0}, {idle ? s->quiesce_fd : s->stop_fd, POLLIN, 0}};

    for (;;) {
        int64_t left = deadline_ms - util_mono_ms();
        int rc;

        if (left <= 0)
            return 0;
        rc = poll(pf, 2, left > INT_MAX ? INT_MAX : (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 || pf[1].revents)
            return -1;
        if (pf[0].revents)
            return 1;
    }
}

/*
 * Reads what the socket has into the buffer, waiting until deadline_ms if it has nothing.
 * wait_first: bytes are unlikely to be there yet (the next request on a keep-alive
 * connection): wait, then read, rather than fail a read first.
 */
static enum rd conn_fill(struct http_conn *c, int64_t deadline_ms, int idle, int wait_first)
{
    if (c->off == c->len) {
        c->off = c->len = 0;
    } else if (c->len == c->cap) {
        memmove(c->buf, c->buf + c->off, c->len - c->off);
        c->len -= c->off;
        c->off = 0;
    }
    if (c->len == c->cap) { /* callers consume or cap what they hold first */
        log_write(LOG_ERROR, c->srv->name, "the connection buffer is full");
        conn_failed(c, "the connection buffer is full");
        return RD_STOP;
    }
    for (;;) {
        int w;

        if (!wait_first) {
            ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);

            if (n > 0) {
                c->len += (size_t)n;
                return RD_DATA;
            }
            if (n == 0)
                return RD_EOF;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                conn_failed(c, "the connection failed");
                return RD_STOP;
            }
        }
        wait_first = 0;
        w = conn_wait(c, POLLIN, deadline_ms, idle);
        if (w == 0)
            return RD_TIMEOUT;
        if (w < 0)
            return RD_STOP;
    }
}

/* waits for room to write; 0 when there is, -1 when the client stalls or the server stops */
static int conn_wait_writable(struct http_conn *c)
{
    int w;

    if (errno == EINTR)
        return 0;
    if (errno != EAGAIN)
        return conn_failed(c, errno == EPIPE || errno == ECONNRESET
                                  ? "the client closed the connection"
                                  : "the connection failed");
    w = conn_wait(c, POLLOUT, util_mono_ms() + c->srv->lim.idle_ms, 0);
    if (w == 1)
        return 0;
    return conn_failed(c, w == 0 ? "the client stopped reading" : "the server stopped");
}

/* writes every byte of iov; more: more follows at once (the head before a sendfile) */
static int conn_send(struct http_conn *c, struct iovec *iov, int cnt, int more)
{
    struct msghdr m;

    while (cnt > 0 && !c->io_failed) {
        ssize_t n;

        memset(&m, 0, sizeof(m));
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)cnt;
        n = sendmsg(c->fd, &m, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (n < 0) {
            if (conn_wait_writable(c) < 0)
                return -1;
            continue;
        }
        c->out_sent += n;
        while (cnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return c->io_failed ? -1 : 0;
}

/* sends n bytes of fd from offset with sendfile(2) */
static int conn_sendfile(struct http_conn *c, int fd, int64_t offset, int64_t n)
{
    off_t off = (off_t)offset;

    while (n > 0 && !c->io_failed) {
        ssize_t w = sendfile(c->fd, fd, &off, n > (1 << 30) ? (size_t)1 << 30 : (size_t)n);

        if (w > 0) {
            n -= w;
            c->out_sent += w;
        } else if (w == 0) {
            log_write(LOG_ERROR, c->srv->name, "the file ended %lld bytes early", (long long)n);
            conn_failed(c, "the file being sent ended early");
        } else if (conn_wait_writable(c) < 0) {
            return -1;
        }
    }
    return c->io_failed ? -1 : 0;
}

/*
 * Closes the connection. If the client may still be sending (a body the answer did not
 * wait for), the write side is shut first and what arrives is read and dropped for a
 * while, so the client reads the answer instead of meeting a reset that discards it.
 */
static void conn_close(struct http_conn *c)
{
    int pending = 0;

    if (!c->io_failed && !c->linger && (ioctl(c->fd, FIONREAD, &pending) < 0 || pending > 0))
        c->linger = 1;
    if (c->linger && !c->io_failed && shutdown(c->fd, SHUT_WR) == 0) {
        int64_t until = util_mono_ms() + (c->slow ? LINGER_SLOW_MS : LINGER_TOTAL_MS);
        size_t dropped = 0;

        while (dropped < HTTP_DRAIN_MAX) {
            int64_t idle = util_mono_ms() + LINGER_IDLE_MS;

            c->off = c->len = 0;
            if (conn_fill(c, idle < until ? idle : until, 0, 1) != RD_DATA)
                break;
            dropped += c->len;
        }
    }
    close(c->fd);
}

/* ---- requests ---------------------------------------------------------------------------- */

/*
 * Request ids: 64 bits from a per-thread xorshift generator seeded from the kernel once,
 * so the hot path makes no getrandom(2) call. Ids are for tracing, not secrets.
 */
static void req_new_id(struct http_req *req)
{
    static _Thread_local uint64_t state;
    unsigned char b[8];

    while (state == 0)
        util_random(&state, sizeof(state));
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(state >> (8 * i));
    util_hex(b, sizeof(b), req->id);
}

static struct http_req *req_new(struct http_conn *c)
{
    struct http_req *req = xcalloc(1, sizeof(*req));
    struct http__head *h;

    arena_init(&req->arena);
    buf_init(&req->body, 0);
    h = arena_alloc(&req->arena, sizeof(*h));
    h->method = h->target = h->path = h->query = "";
    h->content_length = -1;
    req->head = h;
    req->app = c->srv->app;
    req->conn = c;
    req->started_ms = util_mono_ms();
    req->method = req->path = req->query = "";
    req->content_length = -1;
    req_new_id(req);
    atomic_fetch_add(&c->srv->inflight, 1);
    log_ctx_set(req->id);
    return req;
}

/* takes what the parser found, even if it stopped at an error */
static void req_take_head(struct http_req *req)
{
    req->method = req->head->method;
    req->path = req->head->path;
    req->query = req->head->query;
    req->content_length = req->head->content_length;
}

/* the request is over: the app releases its state, the access line is written */
static void req_end(struct http_conn *c, struct http_req *req)
{
    struct http_server *s = c->srv;
    const char *method = req->method[0] ? req->method : "-";
    const char *path = req->path[0] ? req->path : "-";
    const char *query = req->query[0] && strstr(req->query, "Signature") ? "(signed)" : req->query;

    if (req->app->on_free)
        req->app->on_free(req);
    if (req->status && !c->io_failed)
        log_write(req->status >= 500 ? LOG_WARN : LOG_INFO, s->name,
                  "%s %s%s%s %d in %lld bytes out %lld bytes %lld ms", method, path,
                  req->query[0] ? "?" : "", query, req->status, (long long)req->body_received,
                  (long long)req->resp_bytes, (long long)(util_mono_ms() - req->started_ms));
    else if (req->status)
        log_write(LOG_WARN, s->name,
                  "%s %s%s%s %d cut short (%s) in %lld bytes out %lld of %lld bytes %lld ms",
                  method, path, req->query[0] ? "?" : "", query, req->status,
                  c->io_why ? c->io_why : "?", (long long)req->body_received,
                  (long long)c->out_sent, (long long)(c->out_head.len + req->resp_bytes),
                  (long long)(util_mono_ms() - req->started_ms));
    else
        log_write(LOG_WARN, s->name, "%s %s ended early (%s) after %lld bytes in", method, path,
                  c->io_why ? c->io_why : "no answer", (long long)req->body_received);
    buf_release(&req->body);
    arena_release(&req->arena);
    free(req);
    atomic_fetch_sub(&s->inflight, 1);
    log_ctx_set(NULL);
}

/* answers err through the app and closes the connection after it */
static void req_fail(struct http_conn *c, struct http_req *req, const struct err *err)
{
    c->close = 1;
    if (req->status)
        return;
    req->app->on_error(req, err);
    if (!req->status)
        http_send_problem(req, err);
}

static void send_internal(struct http_req *req)
{
    struct err e;

    err_set(&e, ERR_INTERNAL, "the request ended without a response");
    req->app->on_error(req, &e);
    if (!req->status)
        http_send_empty(req, 500);
}

/* ---- reading a request head -------------------------------------------------------------- */

/* how reading a head ended */
enum head_end { HEAD_OK, HEAD_NONE, HEAD_BAD };

/*
 * Reads until buf[off..] holds a whole request head; *n is its length. HEAD_NONE: the
 * connection ended (or idled out, or the server is going) before any byte of a request;
 * HEAD_BAD: err says what went wrong after some bytes came (400, 408, 431).
 */
static enum head_end head_read(struct http_conn *c, int first, size_t *n, struct err *err)
{
    const struct http__limits *l = &c->srv->lim;
    int64_t deadline = first ? c->accepted_ms + l->header_ms : 0;
    size_t scanned = 0;
    int started = 0, blank = 0;

    for (;;) {
        ssize_t end;
        enum rd r;

        /* a few empty lines before a request line are ignored (RFC 9112 2.2) */
        while (c->len - c->off >= 2 && c->buf[c->off] == '\r' && c->buf[c->off + 1] == '\n') {
            c->off += 2;
            if (++blank > 4)
                started = 1;
        }
        if (c->len > c->off && !started) {
            started = 1;
            if (!deadline)
                deadline = util_mono_ms() + l->header_ms;
        }
        end = http__head_scan(c->buf + c->off, c->len - c->off, &scanned, err);
        if (end < 0)
            return HEAD_BAD;
        if (end > 0 && end <= l->max_header_bytes) {
            *n = (size_t)end;
            return HEAD_OK;
        }
        if (end > 0 || c->len - c->off >= (size_t)l->max_header_bytes) {
            int line = memchr(c->buf + c->off, '\n', c->len - c->off) != NULL;
            err_set(err, ERR_HEADERS, "the request %s exceeds the limit of %ld bytes",
                    line ? "line and headers" : "line", l->max_header_bytes);
            return HEAD_BAD;
        }
        if (started && !deadline)
            deadline = util_mono_ms() + l->header_ms;
        r = conn_fill(c, started || first ? deadline : util_mono_ms() + l->idle_ms, !started,
                      c->off == c->len);
        if (r == RD_DATA)
            continue;
        if (!started || r == RD_STOP)
            return HEAD_NONE;
        if (r == RD_EOF)
            err_set(err, ERR_INVALID,
                    "the connection was closed in the middle of the request head");
        else
            err_set(err, ERR_TIMEOUT, "the request line and headers did not arrive within %lld s",
                    (long long)(l->header_ms / 1000));
        return HEAD_BAD;
    }
}

/* the request line of a head that could not be read whole, for the log and the answer */
static void head_line_salvage(struct http_conn *c, struct http_req *req)
{
    const char *p = c->buf + c->off;
    const char *cr = memchr(p, '\r', c->len - c->off);
    struct err ignored;
    char *line;

    if (!cr)
        return;
    line = arena_strndup(&req->arena, p, (size_t)(cr - p));
    http__line_parse(line, (size_t)(cr - p), (struct http__head *)req->head, &ignored);
    req_take_head(req);
}

/* ---- reading a body ---------------------------------------------------------------------- */

/* hands body bytes to the app: its sink, or the buffer; past an error they are dropped */
static void body_deliver(struct http_req *req, const char *p, size_t n)
{
    req->body_received += (int64_t)n;
    if (req->status || req->failed)
        return;
    if (req->sink) {
        if (req->sink(req, p, n, &req->err) < 0)
            req->failed = 1;
    } else if (req->body.len + n > req->body_max) {
        err_set(&req->err, ERR_LIMIT, "the request body exceeds the limit of %zu bytes",
                req->body_max);
        req->failed = 1;
    } else {
        buf_add(&req->body, p, n, NULL);
    }
}

/* when a body read must have made progress by: the grace plus what the minimum rate
 * allows for what came, and never a longer stall than the idle timeout */
static int64_t body_deadline(const struct http__limits *l, int64_t start, int64_t last,
                             int64_t wire)
{
    int64_t by_rate = start + l->body_grace_ms + wire * 1000 / l->body_min_rate;
    int64_t by_stall = last + l->idle_ms;

    return by_rate < by_stall ? by_rate : by_stall;
}

/*
 * Reads the body to its end, delivering it (or dropping it once the request failed or
 * was answered). Gives up early (BODY_TOO_MUCH) once more than HTTP_DRAIN_MAX bytes would
 * have to be dropped.
 */
static enum body_end body_read(struct http_conn *c, struct http_req *req, struct err *err)
{
    const struct http__head *h = req->head;
    const struct http__limits *l = &c->srv->lim;
    struct http__chunked ch;
    int64_t left = h->content_length, wire = 0, dropped = 0;
    int64_t start = util_mono_ms(), last = start;

    http__chunked_init(&ch);
    for (;;) {
        while (c->off < c->len) {
            const char *data = c->buf + c->off;
            size_t n = c->len - c->off;
            ssize_t used;

            if (h->framing == HTTP_BODY_CHUNKED) {
                used = http__chunked_decode(&ch, c->buf + c->off, c->len - c->off, &data, &n, err);
                if (used < 0)
                    return BODY_BAD;
            } else {
                n = (int64_t)n > left ? (size_t)left : n;
                left -= (int64_t)n;
                used = (ssize_t)n;
            }
            c->off += (size_t)used;
            wire += used;
            if (n > 0) {
                if (req->status || req->failed)
                    dropped += (int64_t)n;
                body_deliver(req, data, n);
            }
            if (h->framing == HTTP_BODY_CHUNKED ? http__chunked_done(&ch) : left == 0)
                return BODY_DONE;
            if ((req->status || req->failed) &&
                (dropped > HTTP_DRAIN_MAX ||
                 (h->framing == HTTP_BODY_LENGTH && left > HTTP_DRAIN_MAX)))
                return BODY_TOO_MUCH;
            if (used == 0)
                break;
        }
        switch (conn_fill(c, body_deadline(l, start, last, wire), 0, 0)) {
        case RD_DATA:
            last = util_mono_ms();
            break;
        case RD_EOF:
            if (h->framing == HTTP_BODY_CHUNKED)
                err_set(err, ERR_INVALID,
                        "the connection was closed after %lld bytes of a chunked body, before "
                        "its last chunk",
                        (long long)req->body_received);
            else
                err_set(err, ERR_INVALID,
                        "the connection was closed after %lld of the %lld bytes of the body",
                        (long long)req->body_received, (long long)h->content_length);
            return BODY_EOF;
        case RD_TIMEOUT:
            err_set(err, ERR_TIMEOUT,
                    "the request body came too slowly: %lld bytes in %lld ms; after %lld s a "
                    "body must come at %ld bytes/s or more",
                    (long long)wire, (long long)(util_mono_ms() - start),
                    (long long)(l->body_grace_ms / 1000), l->body_min_rate);
            return BODY_TIMEOUT;
        case RD_STOP:
            return BODY_STOP;
        }
    }
}

/* ---- one request ------------------------------------------------------------------------- */

/* could the answer being sent leave the connection open for another request? */
static int resp_keep_alive(struct http_conn *c, struct http_req *req)
{
    const struct http__head *h = req->head;

    if (c->close || c->io_failed || !h->keep_alive || atomic_load(&c->srv->quiescing))
        return 0;
    if (req->in_headers)
        /* an early answer: keep the connection only for a small body read after it */
        return h->framing == HTTP_BODY_NONE ||
               (h->framing == HTTP_BODY_LENGTH && h->content_length <= HTTP_DRAIN_MAX &&
                !h->expect_continue);
    return 1;
}

/* what the body's end means for the request and the connection */
static void body_ended(struct http_conn *c, struct http_req *req, enum body_end e,
                       const struct err *err)
{
    switch (e) {
    case BODY_DONE:
        break;
    case BODY_TOO_MUCH:
        c->linger = 1;
        req_fail(c, req, &req->err);
        break;
    case BODY_BAD:
    case BODY_TIMEOUT:
        c->linger = 1;
        c->slow = e == BODY_TIMEOUT;
        /* fallthrough */
    case BODY_EOF:
        req->failed = 1;
        req_fail(c, req, err);
        break;
    case BODY_STOP:
        c->close = 1;
        break;
    }
}

/* serves one request whose head is buf[off..off+n); 0 to go on with the connection */
static int serve(struct http_conn *c, struct http_req *req, size_t n)
{
    struct http__head *h = (struct http__head *)req->head;
    char *copy = arena_strndup(&req->arena, c->buf + c->off, n);
    enum body_end e = BODY_DONE;
    struct err err;

    c->off += n;
    if (http__head_parse(copy, n, h, &req->arena, &err) < 0) {
        req_take_head(req);
        c->linger = 1;
        req_fail(c, req, &err);
        conn_flush(c);
        return -1;
    }
    req_take_head(req);

    req->in_headers = 1;
    req->app->on_headers(req);
    if (!req->status && h->framing != HTTP_BODY_NONE && !req->sink && !req->body_max) {
        err_set(&err, ERR_INVALID, "%s %s takes no request body", req->method, req->path);
        req->app->on_error(req, &err);
    }
    req->in_headers = 0;
    conn_flush(c);

    if (req->status) {
        /* answered early: read a small body to keep the connection, else close */
        if (h->framing != HTTP_BODY_NONE) {
            if (c->close)
                c->linger = 1;
            else
                e = body_read(c, req, &err);
            if (e != BODY_DONE) {
                c->close = 1;
                c->linger = 1;
                c->slow = e == BODY_TIMEOUT;
            }
        }
        return c->close ? -1 : 0;
    }

    if (h->expect_continue) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        struct iovec iov = {(void *)(uintptr_t)cont, sizeof(cont) - 1};
        if (conn_send(c, &iov, 1, 0) < 0)
            return -1;
    }
    if (h->framing != HTTP_BODY_NONE)
        e = body_read(c, req, &err);
    body_ended(c, req, e, &err);
    if (e == BODY_DONE && !req->status) {
        if (req->failed)
            req->app->on_error(req, &req->err);
        else
            req->app->on_complete(req);
        if (!req->status)
            send_internal(req);
    }
    conn_flush(c);
    return c->close || c->io_failed ? -1 : 0;
}

void http__conn_run(struct http_conn *c)
{
    struct http_server *s = c->srv;
    size_t cap = (size_t)s->lim.max_header_bytes + BUF_SLACK;

    c->cap = cap > BUF_MIN ? cap : BUF_MIN;
    c->buf = xmalloc(c->cap);
    c->out_fd = -1;
    buf_init(&c->out_head, 0);
    for (int first = 1;; first = 0) {
        struct http_req *req;
        struct err err;
        size_t n = 0;
        enum head_end he = head_read(c, first, &n, &err);
        int more;

        if (he == HEAD_NONE)
            break;
        req = req_new(c);
        if (he == HEAD_BAD) {
            head_line_salvage(c, req);
            c->linger = 1;
            c->slow = err.code == ERR_TIMEOUT;
            req_fail(c, req, &err);
            conn_flush(c);
            req_end(c, req);
            break;
        }
        more = serve(c, req, n) == 0;
        req_end(c, req);
        if (!more)
            break;
    }
    conn_close(c);
    buf_release(&c->out_head);
    free(c->buf);
    http__server_conn_done(s, c->key);
    free(c);
}

/* ---- responses --------------------------------------------------------------------------- */

/* the Date header's value, formatted once a second per thread */
static const char *date_now(void)
{
    static _Thread_local int64_t last = -1;
    static _Thread_local char text[40];
    int64_t now = util_now_ms() / 1000;

    if (now != last) {
        util_time_http(now, text);
        last = now;
    }
    return text;
}

/* adds "name: value" to a response head, unless the value could split the response */
static void head_field(struct http_req *req, struct buf *b, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n:") || strpbrk(value, "\r\n")) {
        log_write(LOG_ERROR, req->app->name, "response header %s dropped: CR or LF in it", name);
        return;
    }
    buf_adds(b, name, NULL);
    buf_add(b, ": ", 2, NULL);
    buf_adds(b, value, NULL);
    buf_add(b, "\r\n", 2, NULL);
}

/*
 * Builds the response head into b. n is the body's length (announced for HEAD too);
 * statuses that never have a body announce none.
 */
static void resp_head(struct http_req *req, int status, const char *content_type, int64_t n,
                      int keep, struct buf *b)
{
    /* headers were pushed in reverse; add them in the order they were given */
    struct http_header *list[64];
    size_t count = 0;
    char num[24];

    buf_addf(b, NULL, "HTTP/1.1 %d %s\r\n", status, http_status_text(status));
    head_field(req, b, "Date", date_now());
    for (struct http_header *h = req->resp_headers; h && count < ARRAY_LEN(list); h = h->next)
        list[count++] = h;
    while (count > 0) {
        struct http_header *h = list[--count];
        head_field(req, b, h->name, h->value);
    }
    if (content_type)
        head_field(req, b, "Content-Type", content_type);
    if (status >= 200 && status != 204 && status != 304) {
        snprintf(num, sizeof(num), "%lld", (long long)n);
        head_field(req, b, "Content-Length", num);
    }
    head_field(req, b, "X-Request-Id", req->id);
    if (!keep)
        head_field(req, b, "Connection", "close");
    else if (req->head->minor == 0)
        head_field(req, b, "Connection", "keep-alive");
    buf_add(b, "\r\n", 2, NULL);
}

/*
 * Records the response to req: its head now (so the app sees req->status at once), its body
 * to go once the app's callback returns (conn_flush), as libmicrohttpd's queueing did: code
 * after http_send_* (an audit row) never waits for a slow client. body is taken over (it
 * was malloc'd, or is NULL); fd >= 0 sends n bytes of fd from offset instead, and is taken
 * over too.
 */
static void respond(struct http_req *req, int status, const char *content_type, char *body,
                    int64_t n, int fd, int64_t offset)
{
    struct http_conn *c = req->conn;
    int head_only = strcmp(req->method, "HEAD") == 0 || status == 204 || status == 304;
    int keep;

    if (req->status) {
        log_write(LOG_ERROR, req->app->name, "a second response (%d) to %s %s was dropped", status,
                  req->method, req->path);
        free(body);
        if (fd >= 0)
            close(fd);
        return;
    }
    keep = resp_keep_alive(c, req);
    if (!keep)
        c->close = 1;
    buf_reset(&c->out_head);
    resp_head(req, status, content_type, n, keep, &c->out_head);
    req->status = status;
    req->resp_bytes = head_only ? 0 : n;
    if (head_only) {
        free(body);
        if (fd >= 0)
            close(fd);
        body = NULL;
        fd = -1;
        n = 0;
    }
    c->out_sent = 0;
    c->out_body = body;
    c->out_fd = fd;
    c->out_off = offset;
    c->out_n = n;
    c->out_pending = 1;
}

/* sends the response recorded by respond(), if any */
static void conn_flush(struct http_conn *c)
{
    if (!c->out_pending)
        return;
    c->out_pending = 0;
    if (c->capture) {
        buf_add(c->capture, c->out_head.buf, c->out_head.len, NULL);
        if (c->out_body)
            buf_add(c->capture, c->out_body, (size_t)c->out_n, NULL);
    } else if (c->out_fd >= 0) {
        struct iovec iov = {c->out_head.buf, c->out_head.len};
        if (conn_send(c, &iov, 1, 1) == 0)
            conn_sendfile(c, c->out_fd, c->out_off, c->out_n);
    } else {
        struct iovec iov[2] = {{c->out_head.buf, c->out_head.len}, {c->out_body, (size_t)c->out_n}};
        conn_send(c, iov, c->out_n > 0 ? 2 : 1, 0);
    }
    free(c->out_body);
    c->out_body = NULL;
    if (c->out_fd >= 0)
        close(c->out_fd);
    c->out_fd = -1;
}

void http_send(struct http_req *req, int status, const char *content_type, const void *data,
               size_t n)
{
    char *copy = xmalloc(n + 1);

    memcpy(copy, data, n);
    respond(req, status, content_type, copy, (int64_t)n, -1, 0);
}

void http_send_buf(struct http_req *req, int status, const char *content_type, struct buf *b)
{
    size_t n;
    char *p = buf_detach(b, &n);

    respond(req, status, content_type, p, (int64_t)n, -1, 0);
}

void http_send_empty(struct http_req *req, int status)
{
    respond(req, status, NULL, NULL, 0, -1, 0);
}

void http_send_redirect(struct http_req *req, int status, const char *location)
{
    http_resp_header(req, "Location", location);
    http_send_empty(req, status);
}

void http_send_fd(struct http_req *req, int status, const char *content_type, int fd,
                  int64_t offset, int64_t n, int64_t small_max)
{
    if (strcmp(req->method, "HEAD") == 0 || n == 0) {
        /* the body is never sent; the response still announces its length */
        close(fd);
        respond(req, status, content_type, NULL, n, -1, 0);
    } else if (n < small_max) {
        char *p = xmalloc((size_t)n);
        int64_t got = 0;

        while (got < n) {
            ssize_t r = pread(fd, p + got, (size_t)(n - got), offset + got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                struct err e;
                free(p);
                close(fd);
                err_set(&e, ERR_IO, "reading the object failed");
                req->app->on_error(req, &e);
                return;
            }
            got += r;
        }
        close(fd);
        respond(req, status, content_type, p, n, -1, 0);
    } else {
        respond(req, status, content_type, NULL, n, fd, offset);
    }
}

void http__conn_refusal(struct http_server *s, const char *peer, const char *why, struct buf *out)
{
    struct http_conn c;
    struct http_req *req;
    struct err e;

    memset(&c, 0, sizeof(c));
    c.srv = s;
    c.fd = -1;
    c.out_fd = -1;
    buf_init(&c.out_head, 0);
    c.close = 1;
    c.capture = out;
    snprintf(c.peer, sizeof(c.peer), "%s", peer);
    req = req_new(&c);
    http_resp_header(req, "Retry-After", HTTP_RETRY_AFTER);
    err_set(&e, ERR_BUSY, "the server is busy: %s; retry after %s seconds", why, HTTP_RETRY_AFTER);
    req->app->on_error(req, &e);
    if (!req->status)
        http_send_problem(req, &e);
    conn_flush(&c);
    buf_release(&c.out_head);
    if (req->app->on_free)
        req->app->on_free(req);
    buf_release(&req->body);
    arena_release(&req->arena);
    free(req);
    atomic_fetch_sub(&s->inflight, 1);
    log_ctx_set(NULL);
}

/* ---- the request's accessors ------------------------------------------------------------- */

const char *http_header(struct http_req *req, const char *name)
{
    const struct http__head *h = req->head;

    for (size_t i = 0; i < h->nfields; i++)
        if (strcasecmp(h->fields[i].name, name) == 0)
            return h->fields[i].value;
    return NULL;
}

const char *http_header_joined(struct http_req *req, const char *name)
{
    const struct http__head *h = req->head;
    struct buf b;
    const char *out;
    int found = 0;

    buf_init(&b, 0);
    for (size_t i = 0; i < h->nfields; i++) {
        if (strcasecmp(h->fields[i].name, name) != 0)
            continue;
        if (found)
            buf_add(&b, ",", 1, NULL);
        buf_adds(&b, h->fields[i].value, NULL);
        found = 1;
    }
    out = found ? arena_strndup(&req->arena, b.buf, b.len) : NULL;
    buf_release(&b);
    return out;
}

void http_headers_each(struct http_req *req, void (*cb)(void *ctx, const char *k, const char *v),
                       void *ctx)
{
    const struct http__head *h = req->head;

    for (size_t i = 0; i < h->nfields; i++)
        cb(ctx, h->fields[i].name, h->fields[i].value);
}

static const char *query_find(struct http_req *req, const char *name, int *found)
{
    const char *p = req->query;
    size_t nlen = strlen(name);
    enum http__pct_mode mode = req->app->query_plus_literal ? HTTP_PCT_QUERY : HTTP_PCT_FORM;

    *found = 0;
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *end = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(end - p));
        const char *kend = eq ? eq : end;
        char *key = http__pct_decode(&req->arena, p, (size_t)(kend - p), mode);

        if (key && strlen(key) == nlen && memcmp(key, name, nlen) == 0) {
            *found = 1;
            if (!eq)
                return "";
            return http__pct_decode(&req->arena, eq + 1, (size_t)(end - eq - 1), mode);
        }
        p = amp ? amp + 1 : end;
    }
    return NULL;
}

const char *http_query(struct http_req *req, const char *name)
{
    int found;

    return query_find(req, name, &found);
}

int http_query_has(struct http_req *req, const char *name)
{
    int found;

    query_find(req, name, &found);
    return found;
}

const char *http_peer(struct http_req *req)
{
    return arena_strdup(&req->arena, req->conn->peer);
}

void http_resp_header(struct http_req *req, const char *name, const char *value)
{
    struct http_header *h = arena_alloc(&req->arena, sizeof(*h));

    h->name = arena_strdup(&req->arena, name);
    h->value = arena_strdup(&req->arena, value);
    h->next = req->resp_headers;
    req->resp_headers = h;
}
