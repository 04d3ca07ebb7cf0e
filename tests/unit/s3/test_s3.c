/* Unit tests of the S3 endpoint's dispatch: error codes, reserved keys and the table of
 * sub-resources. Static functions are reached by including the source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../../src/s3/s3.c"

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
    /* the codes this endpoint's answers use */
    err_set(&e, ERR_CONFLICT, "BucketAlreadyOwnedByYou: yours");
    s3_error_code(&e, &status, &msg);
    assert_int_equal(status, 409);
    err_set(&e, ERR_CONFLICT, "KeyConflict: a is an object");
    assert_string_equal(s3_error_code(&e, &status, &msg), "KeyConflict");
    assert_int_equal(status, 409);
    err_set(&e, ERR_INVALID, "InvalidURI: not UTF-8");
    s3_error_code(&e, &status, &msg);
    assert_int_equal(status, 400);
    err_set(&e, ERR_UNSUPPORTED, "NotImplemented: no");
    s3_error_code(&e, &status, &msg);
    assert_int_equal(status, 501);
    err_set(&e, ERR_INVALID, "MetadataTooLarge: big");
    s3_error_code(&e, &status, &msg);
    assert_int_equal(status, 400);
    /* every table answer that is an error names a code the table knows, as a 404 */
    for (size_t i = 0; i < ARRAY_LEN(subresources); i++) {
        if (subresources[i].bucket_get != OP_ABSENT)
            continue;
        err_set(&e, ERR_NOTFOUND, "%s", subresources[i].bucket_answer);
        s3_error_code(&e, &status, &msg);
        assert_int_equal(status, 404);
        assert_true(strlen(msg) + 2 < strlen(subresources[i].bucket_answer));
    }
}

/* the table of sub-resources: sorted, every answer it points to present */
static void test_subresources(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(subresources); i++) {
        const struct s3_subresource *s = &subresources[i];

        if (i > 0)
            assert_true(strcmp(subresources[i - 1].name, s->name) < 0);
        assert_non_null(s->note);
        if (s->bucket_get == OP_STATIC || s->bucket_get == OP_ABSENT)
            assert_non_null(s->bucket_answer);
        if (s->object_get == OP_STATIC)
            assert_non_null(s->object_answer);
        assert_ptr_equal(subresource_find(s->name, strlen(s->name)), s);
    }
    /* S3's whole list, as its API model names them */
    assert_int_equal(ARRAY_LEN(subresources), 38);
    assert_null(subresource_find("acl2", 4));
    assert_null(subresource_find("ac", 2));
}

static int scan(const char *query, const struct s3_subresource **sub, struct err *e)
{
    struct http_req req;
    struct s3_req r;
    int rc;

    memset(&req, 0, sizeof(req));
    memset(&r, 0, sizeof(r));
    req.query = query;
    rc = scan_query(&req, &r, e);
    *sub = r.sub;
    return rc;
}

static void test_scan_query(void **state)
{
    const struct s3_subresource *sub;
    struct err e = {0};
    int status;
    const char *msg;

    (void)state;
    assert_int_equal(scan("", &sub, &e), 0);
    assert_null(sub);
    assert_int_equal(scan("acl", &sub, &e), 0);
    assert_string_equal(sub->name, "acl");
    assert_int_equal(scan("tagging=", &sub, &e), 0);
    assert_string_equal(sub->name, "tagging");
    assert_int_equal(scan("uploads&prefix=a", &sub, &e), 0);
    assert_string_equal(sub->name, "uploads");
    assert_int_equal(scan("select&select-type=2", &sub, &e), 0);
    assert_string_equal(sub->name, "select");
    /* ordinary parameters, bare or not, and unknown ones with values, are no sub-resource */
    assert_int_equal(scan("uploadId=x&partNumber=1&x-id=PutObject&foo=bar&prefix&&", &sub, &e), 0);
    assert_null(sub);
    assert_int_equal(scan("response-content-type=a&X-Amz-Date=1&versionId", &sub, &e), 0);
    assert_null(sub);
    /* an unknown bare parameter is a sub-resource acervo does not know */
    assert_int_equal(scan("prefix=a&frobnicate", &sub, &e), -1);
    assert_string_equal(s3_error_code(&e, &status, &msg), "NotImplemented");
    assert_non_null(strstr(msg, "?frobnicate"));
    /* two different sub-resources */
    assert_int_equal(scan("acl&tagging", &sub, &e), -1);
    assert_string_equal(s3_error_code(&e, &status, &msg), "InvalidRequest");
    assert_int_equal(scan("acl&acl=", &sub, &e), 0);
}

static void test_reserved_keys(void **state)
{
    (void)state;
    assert_true(s3__reserved_key("archive", "masters/x/y/original.mp4"));
    assert_true(s3__reserved_key("archive", "uploads/x/original.mp4"));
    assert_true(s3__reserved_key("archive", "masters"));
    assert_false(s3__reserved_key("archive", "tests/masters/x"));
    assert_false(s3__reserved_key("archive", "masters2/x"));
    assert_false(s3__reserved_key("proxies", "masters/x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_codes),
        cmocka_unit_test(test_subresources),
        cmocka_unit_test(test_scan_query),
        cmocka_unit_test(test_reserved_keys),
    };
    return cmocka_run_group_tests_name("s3", tests, NULL, NULL);
}
