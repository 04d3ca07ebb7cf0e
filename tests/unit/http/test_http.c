/* Unit tests of the http module's parsers: Range, routes, percent-decoding, statuses. */
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
    assert_string_equal(http_status_text(416), "Range Not Satisfiable");
    assert_string_equal(http_status_text(422), "Unprocessable Content");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_forms),
        cmocka_unit_test(test_range_ignored_or_unsatisfiable),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_pct_decode),
        cmocka_unit_test(test_problem_status),
    };
    return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
