/*
 * Unit tests of the http module's parsers: the request head and the chunked coding
 * (parse.c), Range, routes, percent-decoding, statuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "http/http_int.h"

static void test_range_forms(void **state)
{
    struct http_range r[2];
    struct err e = {0};

    (void)state;
    assert_int_equal(http_range_parse("bytes=0-9", 100, r, 1, &e), 1);
    assert_int_equal(r[0].start, 0);
    assert_int_equal(r[0].end, 9);
    assert_int_equal(http_range_parse("bytes=90-", 100, r, 1, &e), 1);
    assert_int_equal(r[0].start, 90);
    assert_int_equal(r[0].end, 99);
    assert_int_equal(http_range_parse("bytes=-10", 100, r, 1, &e), 1);
    assert_int_equal(r[0].start, 90);
    assert_int_equal(r[0].end, 99);
    /* a suffix longer than the representation is the whole of it */
    assert_int_equal(http_range_parse("bytes=-1000", 100, r, 1, &e), 1);
    assert_int_equal(r[0].start, 0);
    /* an end past the size is clipped */
    assert_int_equal(http_range_parse("bytes=50-5000", 100, r, 1, &e), 1);
    assert_int_equal(r[0].end, 99);
    assert_int_equal(http_range_parse(" bytes=1-2", 100, r, 1, &e), 1);
}

static void test_range_ignored_or_unsatisfiable(void **state)
{
    struct http_range r[1];
    struct err e = {0};

    (void)state;
    /* malformed or foreign units: ignore the header, serve the whole */
    assert_int_equal(http_range_parse("items=0-1", 100, r, 1, &e), 0);
    assert_int_equal(http_range_parse("bytes=5-1", 100, r, 1, &e), 0);
    assert_int_equal(http_range_parse("bytes=a-b", 100, r, 1, &e), 0);
    assert_int_equal(http_range_parse("bytes=0-1;", 100, r, 1, &e), 0);
    assert_int_equal(http_range_parse("bytes=99999999999999999999-", 100, r, 1, &e), 0);
    /* more ranges than served: whole representation */
    assert_int_equal(http_range_parse("bytes=0-1,5-6", 100, r, 1, &e), 0);
    /* unsatisfiable */
    assert_int_equal(http_range_parse("bytes=100-", 100, r, 1, &e), -1);
    assert_int_equal(e.code, ERR_RANGE);
    assert_int_equal(http_range_parse("bytes=-0", 100, r, 1, &e), -1);
    assert_int_equal(http_range_parse("bytes=0-", 0, r, 1, &e), -1);
}

static void h_a(struct http_req *req, const char *const *params)
{
    (void)req;
    (void)params;
}

static void h_b(struct http_req *req, const char *const *params)
{
    (void)req;
    (void)params;
}

static const struct http_route routes[] = {
    {"GET", "/api/v1/assets", h_a, 0, 0},
    {"GET", "/api/v1/assets/{id}", h_b, 1, 0},
    {"PATCH", "/api/v1/assets/{id}", h_a, 2, 0},
    {"POST", "/api/v1/assets/{id}/complete", h_b, 2, 0},
};

static const struct http_route *find(struct http_req *req, const char *method, const char *path,
                                     const char **params, int *matched)
{
    req->method = method;
    req->path = path;
    return http_route_find(req, routes, ARRAY_LEN(routes), params, matched);
}

static void test_routes(void **state)
{
    struct http_req req;
    const char *params[4];
    int matched;
    const struct http_route *r;

    (void)state;
    memset(&req, 0, sizeof(req));
    arena_init(&req.arena);
    r = find(&req, "GET", "/api/v1/assets", params, &matched);
    assert_ptr_equal(r, &routes[0]);
    r = find(&req, "GET", "/api/v1/assets/abc%20d", params, &matched);
    assert_ptr_equal(r, &routes[1]);
    assert_string_equal(params[0], "abc d");
    r = find(&req, "HEAD", "/api/v1/assets/x", params, &matched);
    assert_ptr_equal(r, &routes[1]);
    r = find(&req, "POST", "/api/v1/assets/x/complete", params, &matched);
    assert_ptr_equal(r, &routes[3]);
    /* wrong method: 405, not 404 */
    r = find(&req, "DELETE", "/api/v1/assets/x", params, &matched);
    assert_null(r);
    assert_int_equal(matched, 1);
    r = find(&req, "GET", "/api/v1/nothing", params, &matched);
    assert_null(r);
    assert_int_equal(matched, 0);
    /* an encoded slash or NUL never makes a parameter; empty segments do not match */
    assert_null(find(&req, "GET", "/api/v1/assets/..%2Fx", params, &matched));
    assert_null(find(&req, "GET", "/api/v1/assets/a%00", params, &matched));
    assert_null(find(&req, "GET", "/api/v1/assets/", params, &matched));
    assert_null(find(&req, "GET", "/api/v1/assets/%zz", params, &matched));
    assert_null(find(&req, "GET", "/api/v1/assets/x/", params, &matched));
    arena_release(&req.arena);
}

static void test_pct_decode(void **state)
{
    struct arena a;

    (void)state;
    arena_init(&a);
    assert_string_equal(http__pct_decode(&a, "a+b%2Fc", 7, HTTP_PCT_FORM), "a b/c");
    assert_string_equal(http__pct_decode(&a, "a+b", 3, HTTP_PCT_SEGMENT), "a+b");
    /* S3 reads '+' as the signature does: a plus, and a decoded slash is fine in a value */
    assert_string_equal(http__pct_decode(&a, "a+b%2Fc", 7, HTTP_PCT_QUERY), "a+b/c");
    assert_null(http__pct_decode(&a, "a%2Fc", 5, HTTP_PCT_SEGMENT));
    assert_null(http__pct_decode(&a, "%4", 2, HTTP_PCT_FORM));
    assert_null(http__pct_decode(&a, "%00", 3, HTTP_PCT_FORM));
    assert_string_equal(http__pct_decode(&a, "%C3%A9", 6, HTTP_PCT_FORM), "\xc3\xa9");
    arena_release(&a);
}

static void test_problem_status(void **state)
{
    (void)state;
    assert_int_equal(http_problem_status(ERR_INVALID), 400);
    assert_int_equal(http_problem_status(ERR_UNAUTH), 401);
    assert_int_equal(http_problem_status(ERR_DENIED), 403);
    assert_int_equal(http_problem_status(ERR_NOTFOUND), 404);
    assert_int_equal(http_problem_status(ERR_CONFLICT), 409);
    assert_int_equal(http_problem_status(ERR_LIMIT), 413);
    assert_int_equal(http_problem_status(ERR_RANGE), 416);
    assert_int_equal(http_problem_status(ERR_UNPROCESSABLE), 422);
    assert_int_equal(http_problem_status(ERR_NETWORK), 502);
    assert_int_equal(http_problem_status(ERR_HEADERS), 431);
    assert_int_equal(http_problem_status(ERR_BACKEND), 503);
    assert_int_equal(http_problem_status(ERR_TIMEOUT), 408);
    assert_int_equal(http_problem_status(ERR_VERSION), 505);
    assert_int_equal(http_problem_status(ERR_BUSY), 503);
    assert_string_equal(http_status_text(416), "Range Not Satisfiable");
    assert_string_equal(http_status_text(422), "Unprocessable Content");
    assert_string_equal(http_status_text(408), "Request Timeout");
    assert_string_equal(http_status_text(505), "HTTP Version Not Supported");
}

/* ---- request heads ------------------------------------------------------------------------ */

/* parses text as a whole head; returns 0 or -1 with e set; h's strings live in a */
static int parse(const char *text, struct http__head *h, struct arena *a, struct err *e)
{
    size_t n = strlen(text);
    char *copy = arena_strndup(a, text, n);
    size_t pos = 0;
    ssize_t end = http__head_scan(copy, n, &pos, e);

    if (end < 0)
        return -1;
    assert_int_equal(end, (ssize_t)n); /* the tests give whole heads */
    return http__head_parse(copy, n, h, a, e);
}

/* the head is refused with code, and the message says something about what */
static void refused(const char *text, enum err_code code, const char *what)
{
    struct arena a;
    struct http__head h;
    struct err e = {0};

    arena_init(&a);
    if (parse(text, &h, &a, &e) != -1)
        fail_msg("accepted: %s", text);
    assert_int_equal(e.code, code);
    if (!strstr(e.msg, what))
        fail_msg("'%s' does not mention '%s' (head %s)", e.msg, what, text);
    arena_release(&a);
}

static void test_head_scan(void **state)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /next";
    size_t end = strlen("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    struct err e = {0};

    (void)state;
    /* bytes arriving one at a time: found exactly when the empty line is complete */
    for (size_t n = 1; n <= end; n++) {
        size_t pos = 0;
        ssize_t r = http__head_scan(head, n, &pos, &e);
        assert_int_equal(r, n == end ? (ssize_t)end : 0);
    }
    {
        size_t pos = 0;
        ssize_t r = 0;
        for (size_t n = 1; n <= sizeof(head) - 1 && r == 0; n++)
            r = http__head_scan(head, n, &pos, &e);
        assert_int_equal(r, (ssize_t)end); /* resumed scans find the same end */
    }
    {
        size_t pos = 0;
        assert_int_equal(http__head_scan("GET / HTTP/1.1\nHost: x\n\n", 24, &pos, &e), -1);
        assert_non_null(strstr(e.msg, "bare line feed"));
        pos = 0;
        assert_int_equal(http__head_scan("GET / HTTP/1.1\rHost: x\r\n\r\n", 27, &pos, &e), -1);
        assert_non_null(strstr(e.msg, "carriage return"));
        pos = 0;
        assert_int_equal(http__head_scan("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 28, &pos, &e), -1);
        assert_non_null(strstr(e.msg, "NUL"));
    }
}

static void test_head_valid(void **state)
{
    struct arena a;
    struct http__head h;
    struct err e = {0};

    (void)state;
    arena_init(&a);
    assert_int_equal(parse("PUT /archive/k%20y?partNumber=1&uploadId=a+b HTTP/1.1\r\n"
                           "Host: 127.0.0.1:8081\r\nContent-Length: 12\r\n"
                           "X-Amz-Meta-A:   spaced value \t\r\nx-amz-meta-a: second\r\n"
                           "Expect: 100-Continue\r\nEmpty:\r\n\r\n",
                           &h, &a, &e),
                     0);
    assert_string_equal(h.method, "PUT");
    assert_string_equal(h.path, "/archive/k%20y"); /* raw, for signatures */
    assert_string_equal(h.query, "partNumber=1&uploadId=a+b");
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.framing, HTTP_BODY_LENGTH);
    assert_int_equal(h.content_length, 12);
    assert_int_equal(h.keep_alive, 1);
    assert_int_equal(h.expect_continue, 1);
    assert_int_equal(h.nfields, 6);
    assert_string_equal(h.fields[2].name, "X-Amz-Meta-A");
    assert_string_equal(h.fields[2].value, "spaced value");
    assert_string_equal(h.fields[3].value, "second");
    assert_string_equal(h.fields[5].name, "Empty");
    assert_string_equal(h.fields[5].value, "");

    /* HTTP/1.0: no Host needed, closes unless asked to keep alive */
    assert_int_equal(parse("GET /healthz HTTP/1.0\r\n\r\n", &h, &a, &e), 0);
    assert_int_equal(h.minor, 0);
    assert_int_equal(h.keep_alive, 0);
    assert_int_equal(h.framing, HTTP_BODY_NONE);
    assert_int_equal(h.content_length, -1);
    assert_int_equal(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &h, &a, &e), 0);
    assert_int_equal(h.keep_alive, 1);
    assert_int_equal(
        parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", &h, &a, &e), 0);
    assert_int_equal(h.keep_alive, 0);

    /* chunked (any case); Content-Length: 0 is no body; Expect without a body is moot */
    assert_int_equal(
        parse("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n", &h, &a, &e), 0);
    assert_int_equal(h.framing, HTTP_BODY_CHUNKED);
    assert_int_equal(h.content_length, -1);
    assert_int_equal(parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
                           "Expect: 100-continue\r\n\r\n",
                           &h, &a, &e),
                     0);
    assert_int_equal(h.framing, HTTP_BODY_NONE);
    assert_int_equal(h.content_length, 0);
    assert_int_equal(h.expect_continue, 0);

    /* absolute-form and OPTIONS * */
    assert_int_equal(
        parse("GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: x\r\n\r\n", &h, &a, &e), 0);
    assert_string_equal(h.path, "/a/b");
    assert_string_equal(h.query, "c=d");
    assert_int_equal(parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", &h, &a, &e), 0);
    assert_string_equal(h.path, "*");
    /* raw UTF-8 in a target, as curl sends it, is passed on */
    assert_int_equal(parse("GET /archive/\xc3\xb1 HTTP/1.1\r\nHost: x\r\n\r\n", &h, &a, &e), 0);
    assert_string_equal(h.path, "/archive/\xc3\xb1");
    /* a large but valid Content-Length */
    assert_int_equal(parse("PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807"
                           "\r\n\r\n",
                           &h, &a, &e),
                     0);
    assert_int_equal(h.content_length, INT64_MAX);
    arena_release(&a);
}

static void test_head_request_line_refused(void **state)
{
    (void)state;
    refused("GET\r\n\r\n", ERR_INVALID, "METHOD TARGET");
    refused("THIS IS NOT HTTP\r\n\r\n", ERR_INVALID, "HTTP version");
    refused("GET  / HTTP/1.1\r\nHost: x\r\n\r\n", ERR_INVALID, "METHOD TARGET");
    refused("GET / HTTP/1.1 \r\nHost: x\r\n\r\n", ERR_INVALID, "HTTP version");
    refused("G(T / HTTP/1.1\r\nHost: x\r\n\r\n", ERR_INVALID, "method contains");
    refused("GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", ERR_INVALID, "request-target contains");
    refused("GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", ERR_INVALID, "request-target contains");
    refused("GET a/b HTTP/1.1\r\nHost: x\r\n\r\n", ERR_INVALID, "starting with '/'");
    refused("GET * HTTP/1.1\r\nHost: x\r\n\r\n", ERR_INVALID, "only for OPTIONS");
    refused("GET http:///a HTTP/1.1\r\nHost: x\r\n\r\n", ERR_INVALID, "no host");
    refused("GET / HTTP/2.0\r\nHost: x\r\n\r\n", ERR_VERSION, "HTTP/2.0 is not supported");
    refused("GET / HTTP/1.2\r\nHost: x\r\n\r\n", ERR_VERSION, "not supported");
    refused("GET / HTTP/0.9\r\n\r\n", ERR_VERSION, "not supported");
    refused("GET / http/1.1\r\nHost: x\r\n\r\n", ERR_INVALID, "HTTP version");
    refused("GET / HTTP/1.10\r\nHost: x\r\n\r\n", ERR_INVALID, "HTTP version");
    refused("GET / HTTP/1\r\nHost: x\r\n\r\n", ERR_INVALID, "HTTP version");
}

static void test_head_fields_refused(void **state)
{
    char many[8192];
    size_t n;

    (void)state;
    refused("GET / HTTP/1.1\r\nHost : x\r\n\r\n", ERR_INVALID, "whitespace between");
    refused("GET / HTTP/1.1\r\nHost\t: x\r\n\r\n", ERR_INVALID, "whitespace between");
    refused("GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", ERR_INVALID,
            "obsolete line folding");
    refused("GET / HTTP/1.1\r\n Host: x\r\n\r\n", ERR_INVALID, "starts with whitespace");
    refused("GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", ERR_INVALID, "no colon");
    refused("GET / HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n", ERR_INVALID, "empty name");
    refused("GET / HTTP/1.1\r\nHost: x\r\nX(y): 1\r\n\r\n", ERR_INVALID, "contains the char");
    refused("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01"
            "b\r\n\r\n",
            ERR_INVALID, "\\x01");
    refused("GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n", ERR_INVALID, "\\x7f");
    /* Host: needed on HTTP/1.1, once, and a host */
    refused("GET / HTTP/1.1\r\n\r\n", ERR_INVALID, "needs a Host");
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", ERR_INVALID, "2 Host headers");
    refused("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", ERR_INVALID, "not a host");
    refused("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", ERR_INVALID, "not a host");
    /* over the field count cap: 431 */
    n = (size_t)snprintf(many, sizeof(many), "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < HTTP_MAX_FIELDS; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "X-%d: v\r\n", i);
    snprintf(many + n, sizeof(many) - n, "\r\n");
    refused(many, ERR_HEADERS, "header fields");
}

/* RFC 9112 6.3: every way of framing a body two readers could disagree on */
static void test_head_framing_refused(void **state)
{
    (void)state;
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            ERR_INVALID, "2 Content-Length headers");
    /* even two identical ones */
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            ERR_INVALID, "2 Content-Length headers");
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", ERR_INVALID,
            "not a number");
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", ERR_INVALID,
            "not a number");
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", ERR_INVALID,
            "not a number");
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", ERR_INVALID,
            "not a number");
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5 5\r\n\r\n", ERR_INVALID,
            "not a number");
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", ERR_INVALID, "empty");
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n",
            ERR_INVALID, "out of range");
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            ERR_INVALID, "out of range");
    refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"
            "\r\n\r\n",
            ERR_INVALID, "both Content-Length and Transfer-Encoding");
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5"
            "\r\n\r\n",
            ERR_INVALID, "both Content-Length and Transfer-Encoding");
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ERR_INVALID,
            "only 'chunked'");
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            ERR_INVALID, "only 'chunked'");
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", ERR_INVALID,
            "only 'chunked'");
    refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
            "Transfer-Encoding: chunked\r\n\r\n",
            ERR_INVALID, "2 Transfer-Encoding headers");
    refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ERR_INVALID,
            "not part of HTTP/1.0");
}

/* ---- chunked bodies ----------------------------------------------------------------------- */

/* decodes text fed n bytes at a time into out; returns 0 when done, 1 if more is needed,
 * -1 with e set */
static int dechunk(const char *text, size_t len, size_t step, struct buf *out, struct err *e)
{
    struct http__chunked c;
    size_t fed = 0, off = 0;

    http__chunked_init(&c);
    buf_reset(out);
    while (!http__chunked_done(&c) && off < len) {
        fed = fed + step < len ? fed + step : len;
        while (off < fed && !http__chunked_done(&c)) {
            const char *data;
            size_t n;
            ssize_t used = http__chunked_decode(&c, text + off, fed - off, &data, &n, e);
            if (used < 0)
                return -1;
            if (n)
                buf_add(out, data, n, NULL);
            off += (size_t)used;
            if (used == 0)
                break;
        }
    }
    return http__chunked_done(&c) ? 0 : 1;
}

static void chunk_refused(const char *text, const char *what)
{
    struct buf out;
    struct err e = {0};

    buf_init(&out, 0);
    if (dechunk(text, strlen(text), 4096, &out, &e) != -1)
        fail_msg("accepted: %s", text);
    assert_int_equal(e.code, ERR_INVALID);
    if (!strstr(e.msg, what))
        fail_msg("'%s' does not mention '%s'", e.msg, what);
    buf_release(&out);
}

static void test_chunked_valid(void **state)
{
    static const char body[] = "5\r\nhello\r\n0006;name=value;q=\"a b\"\r\n world\r\n"
                               "A \t;x\r\n0123456789\r\n0\r\nX-Checksum: abc\r\nY: \r\n\r\nNEXT";
    struct buf out;
    struct err e = {0};
    size_t len = sizeof(body) - 1 - 4;

    (void)state;
    buf_init(&out, 0);
    /* the same result whatever the bytes' arrival */
    for (size_t step = 1; step <= len; step++) {
        assert_int_equal(dechunk(body, len, step, &out, &e), 0);
        assert_int_equal(out.len, 21);
        assert_memory_equal(out.buf, "hello world0123456789", 21);
    }
    /* the decoder stops at the body's end: what follows is the next request's */
    {
        struct http__chunked c;
        const char *data;
        size_t n, off = 0;
        http__chunked_init(&c);
        while (!http__chunked_done(&c)) {
            ssize_t used =
                http__chunked_decode(&c, body + off, sizeof(body) - 1 - off, &data, &n, &e);
            assert_true(used > 0);
            off += (size_t)used;
        }
        assert_string_equal(body + off, "NEXT");
    }
    assert_int_equal(dechunk("0\r\n\r\n", 5, 1, &out, &e), 0);
    assert_int_equal(out.len, 0);
    /* a truncated body just needs more */
    assert_int_equal(dechunk("5\r\nhel", 6, 4, &out, &e), 1);
    buf_release(&out);
}

static void test_chunked_refused(void **state)
{
    char big[HTTP_CHUNK_EXT_MAX + 64], trailer[HTTP_TRAILER_MAX + 64];
    size_t n;

    (void)state;
    chunk_refused("ffffffffffffffff\r\n", "overflows");
    chunk_refused("8000000000000000\r\n", "overflows");
    chunk_refused("000000000000000000000000000000001\r\nx\r\n0\r\n\r\n", "over 32 digits");
    chunk_refused("zz\r\n", "starts with 'z'");
    chunk_refused("\r\n", "starts with \\x0d");
    chunk_refused("-5\r\n", "starts with '-'");
    chunk_refused("5x\r\nhello\r\n", "contains 'x'");
    chunk_refused("0x5\r\nhello\r\n", "contains 'x'");
    chunk_refused("5 \r\nhello\r\n", "only a ';' extension");
    chunk_refused("5\nhello\r\n", "contains \\x0a");
    chunk_refused("5\rhello\r\n", "does not end with CRLF");
    chunk_refused("5\r\nhelloX\r\n0\r\n\r\n", "not followed by CRLF");
    chunk_refused("5\r\nhello\rX0\r\n\r\n", "not followed by CRLF");
    chunk_refused("5\r\nhello\n0\r\n\r\n", "not followed by CRLF");
    chunk_refused("5;a\x01"
                  "b\r\nhello\r\n",
                  "extension contains");
    chunk_refused("0\r\nX : y\r\n\r\n", "trailer field name");
    chunk_refused("0\r\n: y\r\n\r\n", "trailer field name");
    chunk_refused("0\r\nX: a\x01\r\n\r\n", "trailer field contains");
    chunk_refused("0\r\nX: a\rb\r\n\r\n", "trailer line does not end");
    chunk_refused("0\r\n\rX", "does not end with CRLF");
    /* extensions and trailers are bounded */
    n = (size_t)snprintf(big, sizeof(big), "1;");
    memset(big + n, 'e', HTTP_CHUNK_EXT_MAX + 1);
    snprintf(big + n + HTTP_CHUNK_EXT_MAX + 1, sizeof(big) - n - HTTP_CHUNK_EXT_MAX - 1,
             "\r\nx\r\n");
    chunk_refused(big, "chunk extensions take over");
    n = (size_t)snprintf(trailer, sizeof(trailer), "0\r\nX: ");
    memset(trailer + n, 'v', HTTP_TRAILER_MAX);
    snprintf(trailer + n + HTTP_TRAILER_MAX, sizeof(trailer) - n - HTTP_TRAILER_MAX, "\r\n\r\n");
    chunk_refused(trailer, "trailer section takes over");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_forms),
        cmocka_unit_test(test_range_ignored_or_unsatisfiable),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_problem_status),
        cmocka_unit_test(test_head_scan),
        cmocka_unit_test(test_head_valid),
        cmocka_unit_test(test_head_request_line_refused),
        cmocka_unit_test(test_head_fields_refused),
        cmocka_unit_test(test_head_framing_refused),
        cmocka_unit_test(test_chunked_valid),
        cmocka_unit_test(test_chunked_refused),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
