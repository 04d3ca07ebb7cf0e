/*
 * The listener: a socket, an acceptor thread, and the limits that keep one client from
 * holding the server. Each admitted connection gets its own thread (conn.c) with a bounded
 * stack; a connection over the total or per-address limit is answered 503 with Retry-After
 * by the acceptor itself and closed after a short lingering drain, with no thread of its
 * own, so refusing costs a few bytes, not a thread.
 */
#include "http/http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_MAX_HEADER    (24 * 1024)
#define DEFAULT_CONNECTIONS   1024
#define DEFAULT_PER_ADDRESS   256
#define DEFAULT_HEADER_S      20
#define DEFAULT_BODY_GRACE_S  20
#define DEFAULT_BODY_MIN_RATE 500
#define DEFAULT_IDLE_S        60

/*
 * Connection threads' stacks: handlers run JSON, SQLite and OpenSSL code, none of which
 * needs much; the default 8 MiB a thread would reserve a lot of address space for 1024 of
 * them. Sanitizers grow frames several times over.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CONN_STACK (4 << 20)
#else
#define CONN_STACK (1 << 20)
#endif

/* refused connections: the answer is written at once, then what the client sends is read
 * and dropped for a little while so it reads the answer instead of meeting a reset */
#define REFUSED_MAX       128         /* refused connections lingering at once */
#define REFUSED_LINGER_MS 2000        /* how long one lingers at most */
#define REFUSED_DRAIN     (64 * 1024) /* bytes read from one before it is closed */

struct refused {
    int fd;
    int64_t until_ms;
    size_t drained;
};

/* ---- the address table --------------------------------------------------------------- */

/* IPv4 as its IPv4-mapped IPv6 form; IPv6 by its /64 (one host's usual allotment) */
static void peer_key(const struct sockaddr_storage *ss, unsigned char key[16], char *text, size_t n)
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ss;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &in->sin_addr, 4);
        inet_ntop(AF_INET, &in->sin_addr, text, (socklen_t)n);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            memcpy(key, &in6->sin6_addr, 16);
            inet_ntop(AF_INET, (const unsigned char *)&in6->sin6_addr + 12, text, (socklen_t)n);
        } else {
            memcpy(key, &in6->sin6_addr, 8);
            inet_ntop(AF_INET6, &in6->sin6_addr, text, (socklen_t)n);
        }
    } else {
        snprintf(text, n, "?");
    }
}

static size_t peer_bucket(const struct http_server *s, const unsigned char key[16])
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */

    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ULL;
    return (size_t)h & (s->npeers - 1);
}

/* the address's entry, created with count 0 if create; under s->mu */
static struct http__peer *peer_find(struct http_server *s, const unsigned char key[16], int create)
{
    size_t b = peer_bucket(s, key);
    struct http__peer *p;

    for (p = s->peers[b]; p; p = p->next)
        if (memcmp(p->key, key, 16) == 0)
            return p;
    if (!create)
        return NULL;
    p = xcalloc(1, sizeof(*p));
    memcpy(p->key, key, 16);
    p->next = s->peers[b];
    s->peers[b] = p;
    return p;
}

static void peer_drop(struct http_server *s, const unsigned char key[16])
{
    struct http__peer **pp = &s->peers[peer_bucket(s, key)];

    for (; *pp; pp = &(*pp)->next) {
        if (memcmp((*pp)->key, key, 16) != 0)
            continue;
        if (--(*pp)->count <= 0) {
            struct http__peer *dead = *pp;
            *pp = dead->next;
            free(dead);
        }
        return;
    }
}

/*
 * Takes a slot for a connection from key, or says why not: the listener is full, the
 * address holds its share, or only the reserve is left and the address already holds
 * more than a newcomer's share of it. Under s->mu.
 */
static const char *slot_take(struct http_server *s, const unsigned char key[16])
{
    const struct http__limits *l = &s->lim;
    struct http__peer *p = peer_find(s, key, 0);
    long held = p ? p->count : 0;

    if (s->nconn >= l->connections)
        return "the server has no free connection";
    if (held >= l->per_address)
        return "your address holds as many connections as one address may";
    if (s->nconn >= l->connections - l->reserve && held >= l->reserve_per_address)
        return "the connections left are kept for other addresses";
    p = p ? p : peer_find(s, key, 1);
    p->count++;
    s->nconn++;
    return NULL;
}

void http__server_conn_done(struct http_server *s, const unsigned char key[16])
{
    pthread_mutex_lock(&s->mu);
    peer_drop(s, key);
    s->nconn--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- the acceptor -------------------------------------------------------------------- */

static void *conn_thread(void *arg)
{
    http__conn_run(arg);
    return NULL;
}

/* answers a connection there is no room for and keeps it to linger, if there is room */
static void refuse(struct http_server *s, int fd, const char *peer, const char *why,
                   struct refused *r, size_t *nr)
{
    struct buf out;
    ssize_t w;

    buf_init(&out, 0);
    http__conn_refusal(s, peer, why, &out);
    /* the socket's send buffer is empty: the answer (under 1 KiB) goes in one call */
    w = send(fd, out.buf, out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    buf_release(&out);
    if (w < 0 || *nr >= REFUSED_MAX || shutdown(fd, SHUT_WR) < 0) {
        close(fd);
        return;
    }
    r[*nr].fd = fd;
    r[*nr].until_ms = util_mono_ms() + REFUSED_LINGER_MS;
    r[*nr].drained = 0;
    (*nr)++;
}

/* reads and drops what refused clients send; closes those done; returns the next wake */
static int64_t refused_drain(struct refused *r, size_t *nr, const struct pollfd *pf)
{
    int64_t now = util_mono_ms(), next = -1;
    char sink[4096];

    for (size_t i = 0; i < *nr;) {
        int done = now >= r[i].until_ms;

        if (!done && pf && (pf[i].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t n = recv(r[i].fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (n > 0)
                r[i].drained += (size_t)n;
            done = n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
                   r[i].drained > REFUSED_DRAIN;
        }
        if (done) {
            close(r[i].fd);
            r[i] = r[--*nr];
            pf = NULL; /* indexes moved: look again at the next wake */
            continue;
        }
        if (next < 0 || r[i].until_ms < next)
            next = r[i].until_ms;
        i++;
    }
    return next;
}

/* logs refusals at most once a second, with how many there were */
static void refusal_log(struct http_server *s, const char *peer, const char *why, long *count,
                        int64_t *last_ms)
{
    int64_t now = util_mono_ms();

    (*count)++;
    if (now - *last_ms < 1000)
        return;
    log_write(LOG_WARN, s->name, "refused %ld connection%s with 503 (last from %s: %s)", *count,
              *count == 1 ? "" : "s", peer, why);
    *count = 0;
    *last_ms = now;
}

/* accepts one connection and admits or refuses it; -1 when there was none to accept */
static int accept_one(struct http_server *s, struct refused *r, size_t *nr, long *refused,
                      int64_t *refused_ms)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    struct http_conn *c;
    const char *why;
    pthread_t t;
    int one = 1;
    int fd = accept4(s->lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
        int e = errno;

        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            struct timespec d = {0, 50 * 1000000L};
            log_write(LOG_WARN, s->name, "accept: %s", strerror(e));
            nanosleep(&d, NULL); /* let connections end before trying again */
        }
        return e == EINTR || e == ECONNABORTED ? 0 : -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c = xcalloc(1, sizeof(*c));
    c->srv = s;
    c->fd = fd;
    c->accepted_ms = util_mono_ms();
    peer_key(&ss, c->key, c->peer, sizeof(c->peer));

    pthread_mutex_lock(&s->mu);
    why = slot_take(s, c->key);
    pthread_mutex_unlock(&s->mu);
    if (!why && pthread_create(&t, &s->attr, conn_thread, c) != 0) {
        http__server_conn_done(s, c->key);
        why = "no thread could be started for the connection";
    }
    if (why) {
        refusal_log(s, c->peer, why, refused, refused_ms);
        refuse(s, fd, c->peer, why, r, nr);
        free(c);
    }
    return 0;
}

static void *acceptor(void *arg)
{
    struct http_server *s = arg;
    struct refused r[REFUSED_MAX];
    struct pollfd pf[REFUSED_MAX + 2];
    size_t nr = 0;
    long refused = 0;
    int64_t refused_ms = 0;

    log_ctx_set(NULL);
    for (;;) {
        int64_t next = refused_drain(r, &nr, NULL);
        int timeout = next < 0 ? -1 : (int)(next - util_mono_ms() + 1);
        size_t base;

        pf[0] = (struct pollfd){s->wake_fd, POLLIN, 0};
        pf[1] = (struct pollfd){s->lfd, POLLIN, 0};
        base = s->lfd >= 0 ? 2 : 1;
        for (size_t i = 0; i < nr; i++)
            pf[base + i] = (struct pollfd){r[i].fd, POLLIN, 0};
        if (poll(pf, base + nr, timeout < 0 ? -1 : timeout) < 0 && errno != EINTR)
            break;
        if (pf[0].revents & POLLIN) {
            uint64_t v;
            if (read(s->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                log_write(LOG_ERROR, s->name, "eventfd read: %s", strerror(errno));
        }
        if (atomic_load(&s->stopping))
            break;
        if (atomic_load(&s->quiescing) && s->lfd >= 0) {
            close(s->lfd);
            pthread_mutex_lock(&s->mu);
            s->lfd = -1;
            s->listen_closed = 1;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        refused_drain(r, &nr, pf + base);
        if (base == 2 && (pf[1].revents & POLLIN))
            for (int i = 0; i < 64; i++) /* a burst at a time, then the others' turn */
                if (accept_one(s, r, &nr, &refused, &refused_ms) < 0)
                    break;
    }
    for (size_t i = 0; i < nr; i++)
        close(r[i].fd);
    return NULL;
}

/* ---- start, quiesce, stop ------------------------------------------------------------ */

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

static int listen_socket(const char *addr, int *port, struct err *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1;
    int fd;

    if (parse_listen(addr, &ss, &len, err) < 0)
        return -1;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_errno(err, ERR_IO, "cannot listen on %s", addr);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
        err_errno(err, ERR_IO, "cannot listen on %s", addr);
        close(fd);
        return -1;
    }
    len = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)(void *)&ss)->sin6_port
                                           : ((struct sockaddr_in *)(void *)&ss)->sin_port);
    return fd;
}

static long or_default(long v, long def)
{
    return v > 0 ? v : def;
}

static void limits_init(struct http__limits *l, const struct http_listen_opts *o)
{
    l->max_header_bytes = or_default(o->max_header_bytes, DEFAULT_MAX_HEADER);
    l->connections = or_default(o->connection_limit, DEFAULT_CONNECTIONS);
    l->per_address = or_default(o->per_address_limit, DEFAULT_PER_ADDRESS);
    if (l->per_address > l->connections)
        l->per_address = l->connections;
    /* an eighth of the slots is kept for addresses holding under an eighth of their share */
    l->reserve = l->connections / 8;
    l->reserve_per_address = l->per_address / 8 > 0 ? l->per_address / 8 : 1;
    l->header_ms = or_default(o->header_timeout_s, DEFAULT_HEADER_S) * 1000;
    l->body_grace_ms = or_default(o->body_timeout_s, DEFAULT_BODY_GRACE_S) * 1000;
    l->body_min_rate = or_default(o->body_min_rate, DEFAULT_BODY_MIN_RATE);
    l->idle_ms = or_default(o->idle_timeout_s, DEFAULT_IDLE_S) * 1000;
}

/* frees a server with no thread left: its sockets, locks and (empty) address table */
static void server_free(struct http_server *s)
{
    int fds[] = {s->lfd, s->wake_fd, s->quiesce_fd, s->stop_fd};

    for (size_t i = 0; i < ARRAY_LEN(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    pthread_attr_destroy(&s->attr);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s->peers); /* every connection dropped its entry */
    free(s);
}

int http_server_start(struct http_server **out, const struct http_app *app,
                      const struct http_listen_opts *opts, struct err *err)
{
    struct http_server *s = xcalloc(1, sizeof(*s));

    s->app = app;
    snprintf(s->name, sizeof(s->name), "%s", app->name);
    limits_init(&s->lim, opts);
    s->npeers = 64;
    while (s->npeers < (size_t)s->lim.connections)
        s->npeers <<= 1;
    s->peers = xcalloc(s->npeers, sizeof(*s->peers));
    s->wake_fd = s->quiesce_fd = s->stop_fd = -1;
    atomic_init(&s->inflight, 0);
    atomic_init(&s->quiescing, 0);
    atomic_init(&s->stopping, 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_attr_init(&s->attr);
    pthread_attr_setdetachstate(&s->attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&s->attr, CONN_STACK);

    s->lfd = listen_socket(opts->listen, &s->port, err);
    if (s->lfd < 0)
        goto fail;
    s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->quiesce_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wake_fd < 0 || s->quiesce_fd < 0 || s->stop_fd < 0) {
        err_errno(err, ERR_IO, "eventfd");
        goto fail;
    }
    if (pthread_create(&s->acceptor, NULL, acceptor, s) != 0) {
        err_set(err, ERR_IO, "cannot start the acceptor thread of %s", opts->listen);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    server_free(s);
    return -1;
}

int http_server_port(struct http_server *s)
{
    return s->port;
}

static void signal_fd(int fd)
{
    uint64_t one = 1;

    if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_write(LOG_ERROR, "http", "eventfd write: %s", strerror(errno));
}

void http_server_quiesce(struct http_server *s)
{
    atomic_store(&s->quiescing, 1);
    signal_fd(s->quiesce_fd);
    signal_fd(s->wake_fd);
    pthread_mutex_lock(&s->mu);
    while (!s->listen_closed && !atomic_load(&s->stopping))
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

long http_server_inflight(struct http_server *s)
{
    return atomic_load(&s->inflight);
}

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    atomic_store(&s->quiescing, 1);
    atomic_store(&s->stopping, 1);
    signal_fd(s->stop_fd);
    signal_fd(s->quiesce_fd);
    signal_fd(s->wake_fd);
    pthread_join(s->acceptor, NULL);
    /* connection threads see stop_fd at their next wait; a handler still running is
     * waited for (it may be in the middle of an fsync) */
    pthread_mutex_lock(&s->mu);
    while (s->nconn > 0)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    server_free(s);
}
