/*
 * Unit tests of the http server over loopback sockets, with a small app: many clients at
 * once on keep-alive connections (the ThreadSanitizer lane runs this), refusals over the
 * per-address limit, quiesce and stop with connections open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define CLIENTS  8
#define REQUESTS 40

static atomic_long freed;

/* /echo buffers its body and sends it back; /early answers before the body; anything
 * else is "ok" */
static void t_headers(struct http_req *req)
{
    if (strcmp(req->path, "/early") == 0)
        http_send(req, 401, "text/plain", "no", 2);
    else if (strcmp(req->path, "/echo") == 0)
        req->body_max = 1 << 20;
}

static void t_complete(struct http_req *req)
{
    if (strcmp(req->path, "/inject") == 0) {
        http_resp_header(req, "X-A", "a\r\nX-Injected: 1");
        http_resp_header(req, "X-B", "b");
    }
    if (strcmp(req->path, "/echo") == 0)
        http_send(req, 200, "application/octet-stream", req->body.buf, req->body.len);
    else
        http_send(req, 200, "text/plain", "ok", 2);
}

static void t_error(struct http_req *req, const struct err *err)
{
    http_send_problem(req, err);
}

static void t_free(struct http_req *req)
{
    (void)req;
    atomic_fetch_add(&freed, 1);
}

static const struct http_app app = {"t", t_headers, t_complete, t_error, t_free, NULL, 0};

static struct http_server *start(long per_address)
{
    struct http_listen_opts o;
    struct http_server *s;
    struct err e;

    memset(&o, 0, sizeof(o));
    o.listen = "127.0.0.1:0";
    o.per_address_limit = per_address;
    o.connection_limit = 64;
    if (http_server_start(&s, &app, &o, &e) < 0)
        fail_msg("start: %s", e.msg);
    return s;
}

static int client(int port)
{
    struct sockaddr_in a;
    struct timeval tv = {30, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
        return -1;
    return fd;
}

static int send_all(int fd, const char *s)
{
    size_t n = strlen(s);

    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* a client's receive buffer: responses are read off its front */
struct rbuf {
    char b[8192];
    size_t len;
};

/* reads one response; returns its status, with its body copied to body (NUL-ended);
 * -1 on EOF or error */
static int response(int fd, struct rbuf *r, char *body, size_t cap)
{
    char *end;
    const char *cl;
    size_t head, n;
    int status;

    while (!(end = memmem(r->b, r->len, "\r\n\r\n", 4))) {
        ssize_t got = recv(fd, r->b + r->len, sizeof(r->b) - r->len, 0);
        if (got <= 0)
            return -1;
        r->len += (size_t)got;
    }
    head = (size_t)(end - r->b) + 4;
    status = atoi(r->b + 9);
    cl = memmem(r->b, head, "Content-Length: ", 16);
    n = cl ? (size_t)atol(cl + 16) : 0;
    while (r->len < head + n) {
        ssize_t got = recv(fd, r->b + r->len, sizeof(r->b) - r->len, 0);
        if (got <= 0)
            return -1;
        r->len += (size_t)got;
    }
    snprintf(body, cap, "%.*s", (int)n, r->b + head);
    memmove(r->b, r->b + head + n, r->len - head - n);
    r->len -= head + n;
    return status;
}

/* 1 once the server closed the connection */
static int at_eof(int fd)
{
    char c;

    return recv(fd, &c, 1, 0) == 0;
}

struct worker {
    pthread_t t;
    int port;
    int ok;
};

/* pairs of pipelined requests on one keep-alive connection */
static void *work(void *arg)
{
    struct worker *w = arg;
    struct rbuf r = {{0}, 0};
    char body[64];
    int fd = client(w->port);

    for (int i = 0; fd >= 0 && i < REQUESTS; i += 2) {
        char req[256];
        snprintf(req, sizeof(req),
                 "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
                 "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\n%06d",
                 i);
        char want[8];

        if (send_all(fd, req) < 0 || response(fd, &r, body, sizeof(body)) != 200 ||
            strcmp(body, "ok") != 0 || response(fd, &r, body, sizeof(body)) != 200)
            break;
        snprintf(want, sizeof(want), "%06d", i);
        if (strcmp(body, want) != 0)
            break;
        w->ok += 2;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void test_clients_at_once_then_stop(void **state)
{
    struct http_server *s = start(0);
    struct worker w[CLIENTS];
    struct rbuf r = {{0}, 0};
    char body[64];
    int idle, busy;

    (void)state;
    atomic_store(&freed, 0);
    for (int i = 0; i < CLIENTS; i++) {
        w[i].port = http_server_port(s);
        w[i].ok = 0;
        pthread_create(&w[i].t, NULL, work, &w[i]);
    }
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(w[i].t, NULL);
        assert_int_equal(w[i].ok, REQUESTS);
    }
    /* one connection idle between requests, one in the middle of a body */
    idle = client(http_server_port(s));
    assert_int_equal(send_all(idle, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(response(idle, &r, body, sizeof(body)), 200);
    busy = client(http_server_port(s));
    assert_int_equal(send_all(busy, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\n"
                                    "Expect: 100-continue\r\n\r\n"),
                     0);
    r.len = 0;
    assert_int_equal(response(busy, &r, body, sizeof(body)), 100);
    assert_int_equal(send_all(busy, "abc"), 0);
    http_server_stop(s); /* returns once every connection thread is gone */
    assert_true(at_eof(idle));
    assert_true(at_eof(busy)); /* no answer to a request the stop cut */
    assert_int_equal(atomic_load(&freed), CLIENTS * REQUESTS + 2);
    close(idle);
    close(busy);
}

static void test_refused_over_the_address_limit(void **state)
{
    struct http_server *s = start(2);
    struct rbuf r = {{0}, 0}, r3 = {{0}, 0};
    char body[1024];
    int a = client(http_server_port(s)), b = client(http_server_port(s));
    int c;

    (void)state;
    /* both admitted: each is served */
    assert_int_equal(send_all(a, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(response(a, &r, body, sizeof(body)), 200);
    r.len = 0;
    assert_int_equal(send_all(b, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"), 0);
    assert_int_equal(response(b, &r, body, sizeof(body)), 200);
    /* the third is answered without being read */
    c = client(http_server_port(s));
    assert_int_equal(response(c, &r3, body, sizeof(body)), 503);
    assert_non_null(strstr(body, "your address holds as many connections"));
    assert_true(at_eof(c));
    close(c);
    /* a slot freed is taken again */
    close(a);
    for (int tries = 0;; tries++) {
        struct rbuf rr = {{0}, 0};
        int d = client(http_server_port(s));
        int st;

        send_all(d, "GET /x HTTP/1.1\r\nHost: t\r\n\r\n");
        st = response(d, &rr, body, sizeof(body));
        close(d);
        if (st == 200)
            break;
        assert_true(tries < 300);
        usleep(10000);
    }
    close(b);
    http_server_stop(s);
}

static void test_quiesce(void **state)
{
    struct http_server *s = start(0);
    int port = http_server_port(s);
    struct rbuf r = {{0}, 0};
    char body[256];
    int fd = client(port);

    (void)state;
    /* once 100 Continue is back, the request is in flight */
    assert_int_equal(send_all(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n"
                                  "Expect: 100-continue\r\n\r\n"),
                     0);
    assert_int_equal(response(fd, &r, body, sizeof(body)), 100);
    assert_int_equal(send_all(fd, "ab"), 0);
    http_server_quiesce(s);
    /* no new connections; the request under way finishes, and its connection closes */
    assert_int_equal(client(port), -1);
    assert_int_equal(http_server_inflight(s), 1);
    assert_int_equal(send_all(fd, "cd"), 0);
    assert_int_equal(response(fd, &r, body, sizeof(body)), 200);
    assert_string_equal(body, "abcd");
    assert_true(at_eof(fd));
    close(fd);
    for (int tries = 0; http_server_inflight(s) > 0; tries++) {
        assert_true(tries < 3000);
        usleep(1000);
    }
    http_server_stop(s);
}

static void test_early_answer_keeps_a_small_body_out(void **state)
{
    struct http_server *s = start(0);
    struct rbuf r = {{0}, 0};
    char body[64];
    int fd = client(http_server_port(s));

    (void)state;
    /* the body of the refused request is read and dropped, not taken for a request */
    assert_int_equal(send_all(fd, "POST /early HTTP/1.1\r\nHost: t\r\nContent-Length: 28\r\n\r\n"
                                  "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
                                  "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"),
                     0);
    assert_int_equal(response(fd, &r, body, sizeof(body)), 401);
    assert_int_equal(response(fd, &r, body, sizeof(body)), 200);
    assert_int_equal(send_all(fd, "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"), 0);
    assert_int_equal(response(fd, &r, body, sizeof(body)), 200);
    assert_true(at_eof(fd));
    close(fd);
    http_server_stop(s);
}

/* a header value with CR or LF in it never splits the response */
static void test_no_response_splitting(void **state)
{
    struct http_server *s = start(0);
    int fd = client(http_server_port(s));
    char got[2048];
    size_t len = 0;
    ssize_t n;

    (void)state;
    assert_int_equal(send_all(fd, "GET /inject HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
                     0);
    while ((n = recv(fd, got + len, sizeof(got) - 1 - len, 0)) > 0)
        len += (size_t)n;
    got[len] = '\0';
    assert_non_null(strstr(got, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(got, "\r\nX-B: b\r\n"));
    assert_null(strstr(got, "X-Injected"));
    assert_null(strstr(got, "X-A"));
    close(fd);
    http_server_stop(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clients_at_once_then_stop),
        cmocka_unit_test(test_refused_over_the_address_limit),
        cmocka_unit_test(test_quiesce),
        cmocka_unit_test(test_early_answer_keeps_a_small_body_out),
        cmocka_unit_test(test_no_response_splitting),
    };
    return cmocka_run_group_tests_name("http server", tests, NULL, NULL);
}
