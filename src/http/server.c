/*
 * The libmicrohttpd glue: one thread per connection, raw (not unescaped) paths and
 * queries so signatures can be checked over what the client sent, bodies either
 * buffered with a cap or streamed to the app's sink.
 */
#include "http/http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct http_server {
    struct MHD_Daemon *daemon;
    const struct http_app *app;
    long max_header_bytes;
    atomic_long inflight;
    char name[16];
};

/*
 * An answer given while the headers are all that arrived (a bad signature, a missing
 * length) is held until a body of up to this many bytes has been read and thrown away:
 * a client still sending would otherwise meet a closed connection and never read the
 * answer. Larger bodies are answered at once and the connection closed after it (clients
 * that send "Expect: 100-continue" never send the body at all).
 */
#define DRAIN_MAX ((int64_t)1 << 20)

/*
 * Per-connection memory: headers must fit in it, and body chunks arrive in pieces of it.
 * Kept small on purpose: libmicrohttpd clears it for every request, so a large pool
 * costs more on small requests than it saves on uploads (whose store writer batches
 * writes anyway). It is max_header_bytes plus some slack, at least 32 KiB.
 */
#define CONN_MEMORY_SLACK (8 * 1024)
#define CONN_MEMORY_MIN   (32 * 1024)

/* keeps the path and query exactly as sent */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

struct query_ctx {
    struct buf *b;
};

static enum MHD_Result query_collect(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    struct buf *b = cls;

    (void)kind;
    if (b->len)
        buf_add(b, "&", 1, NULL);
    buf_adds(b, key, NULL);
    if (value) {
        buf_add(b, "=", 1, NULL);
        buf_adds(b, value, NULL);
    }
    return MHD_YES;
}

struct header_size_ctx {
    size_t total;
};

static enum MHD_Result header_size(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct header_size_ctx *h = cls;

    (void)kind;
    h->total += strlen(key) + (value ? strlen(value) : 0) + 4;
    return MHD_YES;
}

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

static void send_internal(struct http_req *req)
{
    struct err e;

    err_set(&e, ERR_INTERNAL, "the request ended without a response");
    req->app->on_error(req, &e);
    if (!req->status)
        http_send_empty(req, 500);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_req *req = *con_cls;

    (void)version;
    if (!req) {
        const char *cl;
        struct buf q;
        struct header_size_ctx hs = {strlen(url) + strlen(method) + 16};

        req = xcalloc(1, sizeof(*req));
        arena_init(&req->arena);
        buf_init(&req->body, 0);
        req->app = s->app;
        req->conn = conn;
        req->started_ms = util_mono_ms();
        req->method = arena_strdup(&req->arena, method);
        req->path = arena_strdup(&req->arena, url);
        buf_init(&q, 0);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_collect, &q);
        req->query = arena_strndup(&req->arena, q.buf, q.len);
        buf_release(&q);
        req->content_length = -1;
        cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            int64_t v;
            if (util_parse_i64(cl, &v) == 0 && v >= 0)
                req->content_length = v;
        }
        req_new_id(req);
        *con_cls = req;
        atomic_fetch_add(&s->inflight, 1);
        log_ctx_set(req->id);

        MHD_get_connection_values(conn, MHD_HEADER_KIND, header_size, &hs);
        if ((long)hs.total > s->max_header_bytes) {
            struct err e;
            err_set(&e, ERR_HEADERS, "request line and headers take %zu bytes; the limit is %ld",
                    hs.total, s->max_header_bytes);
            req->in_headers = 1;
            s->app->on_error(req, &e);
            req->in_headers = 0;
            return MHD_YES;
        }
        req->in_headers = 1;
        s->app->on_headers(req);
        req->in_headers = 0;
        return MHD_YES;
    }

    log_ctx_set(req->id);
    if (*upload_data_size) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        req->body_received += (int64_t)n;
        if (req->pending && req->body_received > DRAIN_MAX)
            return MHD_NO; /* too much to drain for a held answer: close */
        if (req->status || req->failed)
            return MHD_YES; /* discarding what follows an error */
        if (req->sink) {
            if (req->sink(req, upload_data, n, &req->err) < 0)
                req->failed = 1;
        } else if (req->body_max) {
            if (req->body.len + n > req->body_max) {
                err_set(&req->err, ERR_LIMIT, "request body exceeds the limit of %zu bytes",
                        req->body_max);
                req->failed = 1;
            } else {
                buf_add(&req->body, upload_data, n, NULL);
            }
        } else {
            err_set(&req->err, ERR_INVALID, "%s %s takes no request body", req->method, req->path);
            req->failed = 1;
        }
        return MHD_YES;
    }

    if (req->pending) {
        if (MHD_queue_response(conn, (unsigned int)req->status, req->pending) != MHD_YES)
            log_write(LOG_ERROR, req->app->name, "could not queue the %d response", req->status);
        MHD_destroy_response(req->pending);
        req->pending = NULL;
        return MHD_YES;
    }
    if (!req->status) {
        if (req->failed)
            req->app->on_error(req, &req->err);
        else
            req->app->on_complete(req);
        if (!req->status)
            send_internal(req);
    }
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *req = *con_cls;

    (void)conn;
    if (!req)
        return;
    log_ctx_set(req->id);
    if (req->pending)
        MHD_destroy_response(req->pending);
    if (req->app->on_free)
        req->app->on_free(req);
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        log_write(req->status >= 500 ? LOG_WARN : LOG_INFO, s->name,
                  "%s %s%s%s %d in %lld bytes out %lld bytes %lld ms", req->method, req->path,
                  req->query[0] ? "?" : "",
                  req->query[0] && strstr(req->query, "Signature") ? "(signed)" : req->query,
                  req->status, (long long)req->body_received, (long long)req->resp_bytes,
                  (long long)(util_mono_ms() - req->started_ms));
    else
        log_write(LOG_WARN, s->name, "%s %s ended early (code %d) after %lld bytes in", req->method,
                  req->path, (int)toe, (long long)req->body_received);
    buf_release(&req->body);
    arena_release(&req->arena);
    free(req);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
    log_ctx_set(NULL);
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    log_write(LOG_WARN, "mhd", "%s", msg);
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
                        struct err *err)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints, *res = NULL;
    size_t hl;
    int rc;

    if (!colon || colon == listen)
        return err_set(err, ERR_INVALID, "listen address '%s' is not HOST:PORT", listen);
    hl = (size_t)(colon - listen);
    if (listen[0] == '[' && hl >= 2 && listen[hl - 1] == ']') {
        listen++;
        hl -= 2;
    }
    if (hl >= sizeof(host))
        return err_set(err, ERR_INVALID, "listen host too long");
    memcpy(host, listen, hl);
    host[hl] = '\0';
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0)
        return err_set(err, ERR_INVALID, "listen address '%s': %s", listen, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int http_server_start(struct http_server **out, const struct http_app *app,
                      const struct http_listen_opts *opts, struct err *err)
{
    struct http_server *s;
    struct sockaddr_storage ss;
    socklen_t sslen;
    size_t conn_memory;
    unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
                         MHD_USE_ERROR_LOG | MHD_USE_TURBO | MHD_USE_ITC;

    if (parse_listen(opts->listen, &ss, &sslen, err) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s = xcalloc(1, sizeof(*s));
    s->app = app;
    s->max_header_bytes = opts->max_header_bytes > 0 ? opts->max_header_bytes : 32768;
    snprintf(s->name, sizeof(s->name), "%s", app->name);
    atomic_init(&s->inflight, 0);
    conn_memory = (size_t)s->max_header_bytes + CONN_MEMORY_SLACK;
    if (conn_memory < CONN_MEMORY_MIN)
        conn_memory = CONN_MEMORY_MIN;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, s, MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        conn_memory, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int)(opts->connection_limit > 0 ? opts->connection_limit : 1024),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)(opts->timeout_s > 0 ? opts->timeout_s : 300),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape,
        NULL, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024, MHD_OPTION_END);
    if (!s->daemon) {
        free(s);
        return err_errno(err, ERR_IO, "cannot listen on %s", opts->listen);
    }
    *out = s;
    return 0;
}

int http_server_port(struct http_server *s)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);

    return info ? (int)info->port : 0;
}

void http_server_quiesce(struct http_server *s)
{
    MHD_socket fd = MHD_quiesce_daemon(s->daemon);

    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

long http_server_inflight(struct http_server *s)
{
    return atomic_load(&s->inflight);
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    MHD_stop_daemon(s->daemon);
    free(s);
}

const char *http_header(struct http_req *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

struct joined_ctx {
    const char *name;
    struct buf b;
    int found;
};

static enum MHD_Result join_values(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct joined_ctx *j = cls;

    (void)kind;
    if (strcasecmp(key, j->name) != 0)
        return MHD_YES;
    if (j->found)
        buf_add(&j->b, ",", 1, NULL);
    buf_adds(&j->b, value ? value : "", NULL);
    j->found = 1;
    return MHD_YES;
}

const char *http_header_joined(struct http_req *req, const char *name)
{
    struct joined_ctx j = {name, {0}, 0};
    const char *out;

    buf_init(&j.b, 0);
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, join_values, &j);
    out = j.found ? arena_strndup(&req->arena, j.b.buf, j.b.len) : NULL;
    buf_release(&j.b);
    return out;
}

struct each_ctx {
    void (*cb)(void *ctx, const char *k, const char *v);
    void *ctx;
};

static enum MHD_Result each_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct each_ctx *e = cls;

    (void)kind;
    e->cb(e->ctx, key, value ? value : "");
    return MHD_YES;
}

void http_headers_each(struct http_req *req, void (*cb)(void *ctx, const char *k, const char *v),
                       void *ctx)
{
    struct each_ctx e = {cb, ctx};

    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, each_header, &e);
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
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[INET6_ADDRSTRLEN] = "?";

    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, host,
                      sizeof(host));
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, host,
                      sizeof(host));
    }
    return arena_strdup(&req->arena, host);
}

void http_resp_header(struct http_req *req, const char *name, const char *value)
{
    struct http_header *h = arena_alloc(&req->arena, sizeof(*h));

    h->name = arena_strdup(&req->arena, name);
    h->value = arena_strdup(&req->arena, value);
    h->next = req->resp_headers;
    req->resp_headers = h;
}

/* does an early answer wait for the body (a small one the client is about to send)? */
static int body_to_drain(struct http_req *req)
{
    const char *expect = http_header(req, "Expect");
    int chunked = req->content_length < 0 && http_header(req, "Transfer-Encoding") != NULL;

    if (expect && strcasecmp(expect, "100-continue") == 0)
        return 0;
    return (req->content_length > 0 && req->content_length <= DRAIN_MAX) || chunked;
}

static void queue(struct http_req *req, int status, struct MHD_Response *resp,
                  const char *content_type, int64_t n)
{
    /* headers were pushed in reverse; add them in the order they were given */
    struct http_header *list[64];
    size_t count = 0;

    for (struct http_header *h = req->resp_headers; h && count < ARRAY_LEN(list); h = h->next)
        list[count++] = h;
    while (count > 0) {
        struct http_header *h = list[--count];
        MHD_add_response_header(resp, h->name, h->value);
    }
    if (content_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    if (req->failed || (req->content_length > req->body_received && status >= 400))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (req->in_headers && body_to_drain(req)) {
        req->pending = resp;
        req->status = status;
        req->resp_bytes = n;
        return;
    }
    if (MHD_queue_response(req->conn, (unsigned int)status, resp) != MHD_YES)
        log_write(LOG_ERROR, req->app->name, "could not queue the %d response", status);
    MHD_destroy_response(resp);
    req->status = status;
    req->resp_bytes = n;
}

void http_send(struct http_req *req, int status, const char *content_type, const void *data,
               size_t n)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, (void *)(uintptr_t)data, MHD_RESPMEM_MUST_COPY);

    queue(req, status, resp, content_type, (int64_t)n);
}

void http_send_buf(struct http_req *req, int status, const char *content_type, struct buf *b)
{
    size_t n;
    char *p = buf_detach(b, &n);
    struct MHD_Response *resp = MHD_create_response_from_buffer(n, p, MHD_RESPMEM_MUST_FREE);

    queue(req, status, resp, content_type, (int64_t)n);
}

void http_send_empty(struct http_req *req, int status)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    queue(req, status, resp, NULL, 0);
}

void http_send_redirect(struct http_req *req, int status, const char *location)
{
    http_resp_header(req, MHD_HTTP_HEADER_LOCATION, location);
    http_send_empty(req, status);
}

/* the body of a HEAD response: MHD never asks for it, but needs a reader to announce the
 * length */
static ssize_t head_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_OF_STREAM;
}

void http_send_fd(struct http_req *req, int status, const char *content_type, int fd,
                  int64_t offset, int64_t n, int64_t small_max)
{
    struct MHD_Response *resp;

    if (strcmp(req->method, "HEAD") == 0) {
        /* the body is never sent; the response still announces its length */
        close(fd);
        resp = MHD_create_response_from_callback((uint64_t)n, 4096, head_body, NULL, NULL);
    } else if (n < small_max) {
        char *p = xmalloc((size_t)n + 1);
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
        resp = MHD_create_response_from_buffer((size_t)n, p, MHD_RESPMEM_MUST_FREE);
    } else {
        resp = MHD_create_response_from_fd_at_offset64((uint64_t)n, fd, (uint64_t)offset);
        if (!resp)
            close(fd);
    }
    if (!resp) {
        struct err e;
        err_set(&e, ERR_INTERNAL, "cannot create the response");
        req->app->on_error(req, &e);
        return;
    }
    queue(req, status, resp, content_type, n);
}
