/* Unit tests of the S3 endpoint's own parsing: CompleteMultipartUpload XML and error codes.
 * Static functions are reached by including the source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../../src/s3/s3.c"

static int parse(const char *xml, struct store_part_ref **refs, size_t *n, struct err *e,
                 struct http_req *req)
{
    memset(req, 0, sizeof(*req));
    arena_init(&req->arena);
    buf_init(&req->body, 0);
    buf_adds(&req->body, xml, NULL);
    return parse_complete(req, refs, n, e);
}

static void done(struct http_req *req)
{
    buf_release(&req->body);
    arena_release(&req->arena);
}

static void test_complete_xml(void **state)
{
    struct http_req req;
    struct store_part_ref *refs;
    size_t n = 0;
    struct err e = {0};

    (void)state;
    assert_int_equal(parse("<?xml version=\"1.0\"?><CompleteMultipartUpload xmlns=\"x\">"
                           "<Part><ETag>\"aa\"</ETag><PartNumber>1</PartNumber></Part>"
                           "<Part><PartNumber>2</PartNumber><ETag>&quot;bb&quot;</ETag>"
                           "<ChecksumCRC32>x</ChecksumCRC32></Part></CompleteMultipartUpload>",
                           &refs, &n, &e, &req),
                     0);
    assert_int_equal(n, 2);
    assert_int_equal(refs[0].number, 1);
    assert_string_equal(refs[0].etag, "aa");
    assert_int_equal(refs[1].number, 2);
    assert_string_equal(refs[1].etag, "bb");
    done(&req);
}

static void test_complete_many_parts(void **state)
{
    struct http_req req;
    struct store_part_ref *refs;
    size_t n = 0;
    struct err e = {0};
    struct buf x;

    (void)state;
    buf_init(&x, 0);
    buf_adds(&x, "<CompleteMultipartUpload>", NULL);
    for (int i = 1; i <= 100; i++)
        buf_addf(&x, NULL, "<Part><PartNumber>%d</PartNumber><ETag>e%d</ETag></Part>", i, i);
    buf_adds(&x, "</CompleteMultipartUpload>", NULL);
    assert_int_equal(parse(x.buf, &refs, &n, &e, &req), 0);
    assert_int_equal(n, 100);
    assert_int_equal(refs[99].number, 100);
    assert_string_equal(refs[99].etag, "e100");
    done(&req);
    buf_release(&x);
}

static void test_complete_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "<Foo/>",
        "<CompleteMultipartUpload></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>a</ETag>",
        "<CompleteMultipartUpload><Part><ETag>a</ETag></Part></CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber></Part></"
        "CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>0</PartNumber><ETag>a</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>10001</PartNumber><ETag>a</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>x1</PartNumber><ETag>a</ETag></Part>"
        "</CompleteMultipartUpload>",
        "<CompleteMultipartUpload><Part><PartNumber>99999999999999999999999</PartNumber>"
        "<ETag>a</ETag></Part></CompleteMultipartUpload>",
    };

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct http_req req;
        struct store_part_ref *refs = NULL;
        size_t n = 0;
        struct err e = {0};
        int status;
        const char *msg;

        assert_int_equal(parse(bad[i], &refs, &n, &e, &req), -1);
        assert_true(e.code == ERR_INVALID || e.code == ERR_LIMIT);
        s3_error_code(&e, &status, &msg);
        assert_int_equal(status, 400);
        done(&req);
    }
}

static void test_error_codes(void **state)
{
    struct err e;
    int status;
    const char *msg;

    (void)state;
    err_set(&e, ERR_INVALID, "InvalidPart: part 3 is missing");
    assert_string_equal(s3_error_code(&e, &status, &msg), "InvalidPart");
    assert_int_equal(status, 400);
    assert_string_equal(msg, "part 3 is missing");
    err_set(&e, ERR_UNAUTH, "SignatureDoesNotMatch: no");
    assert_string_equal(s3_error_code(&e, &status, &msg), "SignatureDoesNotMatch");
    assert_int_equal(status, 403);
    err_set(&e, ERR_NOTFOUND, "NoSuchUpload: gone");
    s3_error_code(&e, &status, &msg);
    assert_int_equal(status, 404);
    err_set(&e, ERR_INVALID, "MissingContentLength: give it");
    s3_error_code(&e, &status, &msg);
    assert_int_equal(status, 411);
    /* without a known prefix the class decides */
    err_set(&e, ERR_NOTFOUND, "no such thing: really");
    assert_string_equal(s3_error_code(&e, &status, &msg), "NoSuchKey");
    assert_string_equal(msg, "no such thing: really");
    err_set(&e, ERR_CONFLICT, "exists");
    assert_string_equal(s3_error_code(&e, &status, &msg), "PreconditionFailed");
    assert_int_equal(status, 412);
    err_set(&e, ERR_IO, "disk");
    assert_string_equal(s3_error_code(&e, &status, &msg), "InternalError");
    assert_int_equal(status, 500);
}

static void test_reserved_keys(void **state)
{
    (void)state;
    assert_true(reserved_key("archive", "masters/x/y/original.mp4"));
    assert_true(reserved_key("archive", "uploads/x/original.mp4"));
    assert_false(reserved_key("archive", "tests/masters/x"));
    assert_false(reserved_key("proxies", "masters/x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_xml),       cmocka_unit_test(test_complete_many_parts),
        cmocka_unit_test(test_complete_malformed), cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_reserved_keys),
    };
    return cmocka_run_group_tests_name("s3", tests, NULL, NULL);
}
