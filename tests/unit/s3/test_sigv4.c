/*
 * Unit tests of AWS Signature Version 4 (src/s3/sigv4.c), against the vectors AWS
 * publishes: the S3 examples of "Signature Calculations for the Authorization Header:
 * Transferring Payload in a Single Chunk", the presigned URL of "Authenticating Requests:
 * Using Query Parameters", and cases of the generic aws-sig-v4-test-suite. Static functions
 * are reached by including the .c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "s3/sigv4.c"

/* ---- fixtures --------------------------------------------------------------------------- */

/** A request header; names are lowercase, several values already joined with ','. */
struct hdr {
    const char *name;
    const char *value;
};

/** The header table a test request reads through sigv4_request.header. */
struct hdrs {
    struct hdr h[8];
};

static const char *hdrs_get(void *ctx, const char *name)
{
    const struct hdrs *t = ctx;

    for (size_t i = 0; i < ARRAY_LEN(t->h) && t->h[i].name; i++)
        if (strcmp(t->h[i].name, name) == 0)
            return t->h[i].value;
    return NULL;
}

static void req_init(struct sigv4_request *r, const char *method, const char *path,
                     const char *query, struct hdrs *h, int s3)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->path = path;
    r->query = query;
    r->header = hdrs_get;
    r->ctx = h;
    r->s3 = s3;
}

/** Asserts that the error message starts with the S3 code and a colon. */
static void assert_code(const struct err *e, enum err_code code, const char *s3code)
{
    size_t n = strlen(s3code);

    if (e->code != code || strncmp(e->msg, s3code, n) != 0 || e->msg[n] != ':')
        fail_msg("expected %d \"%s:...\", got %d \"%s\"", code, s3code, e->code, e->msg);
}

/* ---- S3 examples (AWS docs, single chunk) ------------------------------------------------ */

#define S3_AKID   "AKIAIOSFODNN7EXAMPLE"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_TIME   INT64_C(1369353600) /* 20130524T000000Z */
#define S3_HOST   "examplebucket.s3.amazonaws.com"
#define S3_CRED   "Credential=" S3_AKID "/20130524/us-east-1/s3/aws4_request"
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define PUT_SHA   "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"

struct s3_case {
    const char *name;
    const char *method;
    const char *path;
    const char *query;
    struct hdrs headers;
    const char *signed_headers;
    const char *creq;
    const char *sts;
    const char *signature;
};

static const struct s3_case s3_cases[] = {
    {
        "GET Object",
        "GET",
        "/test.txt",
        "",
        {{{"host", S3_HOST},
          {"range", "bytes=0-9"},
          {"x-amz-content-sha256", EMPTY_SHA},
          {"x-amz-date", "20130524T000000Z"}}},
        "host;range;x-amz-content-sha256;x-amz-date",
        "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
        "x-amz-content-sha256:" EMPTY_SHA "\nx-amz-date:20130524T000000Z\n\n"
        "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
    },
    {
        "PUT Object",
        "PUT",
        "/test%24file.text",
        "",
        {{{"date", "Fri, 24 May 2013 00:00:00 GMT"},
          {"host", S3_HOST},
          {"x-amz-content-sha256", PUT_SHA},
          {"x-amz-date", "20130524T000000Z"},
          {"x-amz-storage-class", "REDUCED_REDUNDANCY"}}},
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
        "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
        "host:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:" PUT_SHA "\n"
        "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
        "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n" PUT_SHA,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
        "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
    },
    {
        "GET Bucket Lifecycle",
        "GET",
        "/",
        "lifecycle",
        {{{"host", S3_HOST},
          {"x-amz-content-sha256", EMPTY_SHA},
          {"x-amz-date", "20130524T000000Z"}}},
        "host;x-amz-content-sha256;x-amz-date",
        "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:" EMPTY_SHA "\nx-amz-date:20130524T000000Z\n\n"
        "host;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
        "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
    },
    {
        "GET Bucket (List Objects)",
        "GET",
        "/",
        "max-keys=2&prefix=J",
        {{{"host", S3_HOST},
          {"x-amz-content-sha256", EMPTY_SHA},
          {"x-amz-date", "20130524T000000Z"}}},
        "host;x-amz-content-sha256;x-amz-date",
        "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\n"
        "x-amz-content-sha256:" EMPTY_SHA "\nx-amz-date:20130524T000000Z\n\n"
        "host;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA,
        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
        "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
        "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
    },
};

static char *s3_authorization(const struct s3_case *c, const char *sep)
{
    struct buf b;

    buf_init(&b, 0);
    assert_int_equal(buf_addf(&b, NULL,
                              "AWS4-HMAC-SHA256 " S3_CRED "%sSignedHeaders=%s%sSignature=%s", sep,
                              c->signed_headers, sep, c->signature),
                     0);
    return buf_detach(&b, NULL);
}

static void test_s3_examples(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(s3_cases); i++) {
        const struct s3_case *c = &s3_cases[i];
        struct hdrs h = c->headers;
        struct sigv4_request req;
        struct sigv4_auth auth;
        struct err e = {0};
        struct buf creq, sts;
        char sig[65];
        char *authz = s3_authorization(c, ",");

        req_init(&req, c->method, c->path, c->query, &h, 1);
        if (sigv4_parse_header(&req, authz, &auth, &e) < 0)
            fail_msg("%s: parse: %s", c->name, e.msg);
        assert_string_equal(auth.access_key, S3_AKID);
        assert_string_equal(auth.date, "20130524");
        assert_string_equal(auth.region, "us-east-1");
        assert_string_equal(auth.service, "s3");
        assert_string_equal(auth.signed_headers, c->signed_headers);
        assert_int_equal(auth.request_time, S3_TIME);
        assert_int_equal(auth.presigned, 0);

        buf_init(&creq, 0);
        buf_init(&sts, 0);
        assert_int_equal(compute_signature(&req, &auth, S3_SECRET,
                                           hdrs_get(&h, "x-amz-content-sha256"), &creq, &sts, sig,
                                           &e),
                         0);
        assert_string_equal(creq.buf, c->creq);
        assert_string_equal(sts.buf, c->sts);
        assert_string_equal(sig, c->signature);
        buf_release(&creq);
        buf_release(&sts);

        if (sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME + 60, 900, &e) < 0)
            fail_msg("%s: verify: %s", c->name, e.msg);
        free(authz);
    }
}

/** The PUT example's key as a client may send it: '$' unencoded. */
static void test_s3_put_raw_dollar(void **state)
{
    const struct s3_case *c = &s3_cases[1];
    struct hdrs h = c->headers;
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct err e = {0};
    char *authz = s3_authorization(c, ", ");

    (void)state;
    req_init(&req, "PUT", "/test$file.text", "", &h, 1);
    assert_int_equal(sigv4_parse_header(&req, authz, &auth, &e), 0);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, PUT_SHA, S3_TIME, 900, &e), 0);
    free(authz);
}

/* ---- presigned URL example (AWS docs, query parameters) ----------------------------------- */

#define PRESIGN_QUERY                                                                              \
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"         \
    "us-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&"               \
    "X-Amz-SignedHeaders=host"
#define PRESIGN_SIG "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"

static void test_presigned_example(void **state)
{
    struct hdrs h = {{{"host", S3_HOST}}};
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct err e = {0};
    struct buf creq, sts;
    char sig[65];

    (void)state;
    req_init(&req, "GET", "/test.txt", PRESIGN_QUERY "&X-Amz-Signature=" PRESIGN_SIG, &h, 1);
    assert_int_equal(sigv4_parse_query(&req, &auth, &e), 1);
    assert_int_equal(auth.presigned, 1);
    assert_int_equal(auth.expires, 86400);
    assert_int_equal(auth.request_time, S3_TIME);
    assert_string_equal(auth.access_key, S3_AKID);
    assert_string_equal(auth.signed_headers, "host");
    assert_string_equal(auth.signature, PRESIGN_SIG);

    buf_init(&creq, 0);
    buf_init(&sts, 0);
    assert_int_equal(
        compute_signature(&req, &auth, S3_SECRET, SIGV4_UNSIGNED_PAYLOAD, &creq, &sts, sig, &e), 0);
    assert_string_equal(creq.buf,
                        "GET\n/test.txt\n" PRESIGN_QUERY
                        "\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD");
    assert_string_equal(sts.buf,
                        "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
                        "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04");
    assert_string_equal(sig, PRESIGN_SIG);
    buf_release(&creq);
    buf_release(&sts);

    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME + 3600, 900, &e), 0);
    /* the last second of validity, then expired */
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME + 86400, 900, &e), 0);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME + 86401, 900, &e), -1);
    assert_code(&e, ERR_DENIED, "AccessDenied");
    assert_non_null(strstr(e.msg, "expired"));
    /* not valid yet: more than skew before X-Amz-Date */
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME - 901, 900, &e), -1);
    assert_code(&e, ERR_DENIED, "AccessDenied");
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME - 900, 900, &e), 0);
}

static void test_presign_matches_example(void **state)
{
    char *url;

    (void)state;
    url = sigv4_presign("GET", "https://" S3_HOST, "/test.txt", "", S3_AKID, S3_SECRET, "us-east-1",
                        S3_TIME, 86400);
    assert_non_null(url);
    assert_string_equal(url, "https://" S3_HOST "/test.txt?" PRESIGN_QUERY
                             "&X-Amz-Signature=" PRESIGN_SIG);
    free(url);
}

/* ---- generic aws-sig-v4-test-suite (s3 = 0) ------------------------------------------------ */

#define G_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define G_TIME   INT64_C(1440938160) /* 20150830T123600Z */
#define G_HOST   "example.amazonaws.com"
#define G_DATE   "20150830T123600Z"
#define G_CRED   "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request"
#define G_STS    "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
#define G_FORM   "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
#define G_TOKEN                                                                                    \
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfp"   \
    "SPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQ"   \
    "DYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+s"   \
    "cqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

struct g_case {
    const char *name;
    const char *method;
    const char *path;
    const char *query;
    struct hdrs headers;
    const char *payload;
    const char *signed_headers;
    const char *creq; /* NULL: not checked */
    const char *sts_hash;
    const char *signature;
};

static const struct g_case g_cases[] = {
    {"get-vanilla",
     "GET",
     "/",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     "GET\n/"
     "\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-vanilla-query-order-key-case",
     "GET",
     "/",
     "Param2=value2&Param1=value1",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n"
     "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA,
     "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"get-vanilla-query-order-key",
     "GET",
     "/",
     "Param1=value2&Param1=Value1",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\n"
     "x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_SHA,
     "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
     "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
    {"get-vanilla-query-order-value",
     "GET",
     "/",
     "Param1=value2&Param1=value1",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     NULL,
     "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
     "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
    {"get-vanilla-query-unreserved",
     "GET",
     "/",
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
     "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     NULL,
     "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
    {"get-vanilla-utf8-query",
     "GET",
     "/",
     "\xe1\x88\xb4=bar",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
     "host;x-amz-date\n" EMPTY_SHA,
     "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
    {"get-header-value-trim",
     "GET",
     "/",
     "",
     {{{"host", G_HOST},
       {"my-header1", " value1"},
       {"my-header2", " \"a   b   c\""},
       {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;my-header1;my-header2;x-amz-date",
     "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
     "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" EMPTY_SHA,
     "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"get-header-key-duplicate",
     "GET",
     "/",
     "",
     {{{"host", G_HOST}, {"my-header1", "value2,value2,value1"}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;my-header1;x-amz-date",
     NULL,
     "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
     "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
    {"get-header-value-order",
     "GET",
     "/",
     "",
     {{{"host", G_HOST}, {"my-header1", "value4,value1,value3,value2"}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;my-header1;x-amz-date",
     NULL,
     "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
     "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
    {"post-header-key-case",
     "POST",
     "/",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     NULL,
     "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-header-value-case",
     "POST",
     "/",
     "",
     {{{"host", G_HOST}, {"my-header1", "VALUE1"}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;my-header1;x-amz-date",
     NULL,
     "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
    {"post-vanilla-query",
     "POST",
     "/",
     "Param1=value1",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     NULL,
     "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
    {"post-x-www-form-urlencoded",
     "POST",
     "/",
     "",
     {{{"content-type", "application/x-www-form-urlencoded"},
       {"host", G_HOST},
       {"x-amz-date", G_DATE},
       {"content-length", "13"}}},
     G_FORM,
     "content-type;host;x-amz-date",
     "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
     "x-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n" G_FORM,
     "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    {"post-sts-header-before",
     "POST",
     "/",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}, {"x-amz-security-token", G_TOKEN}}},
     EMPTY_SHA,
     "host;x-amz-date;x-amz-security-token",
     "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n"
     "x-amz-security-token:" G_TOKEN "\n\nhost;x-amz-date;x-amz-security-token\n" EMPTY_SHA,
     "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
    {"get-unreserved",
     "GET",
     "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     NULL,
     "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
    {"get-utf8",
     "GET",
     "/\xe1\x88\xb4",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     "GET\n/%E1%88%B4\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
     "host;x-amz-date\n" EMPTY_SHA,
     "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
    {"get-space",
     "GET",
     "/example space/",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     "GET\n/example%20space/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
     "host;x-amz-date\n" EMPTY_SHA,
     "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
    /* normalize-path */
    {"get-relative",
     "GET",
     "/example/..",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     NULL,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-relative-relative",
     "GET",
     "/example1/example2/../..",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     NULL,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-slash",
     "GET",
     "//",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     NULL,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-slash-dot-slash",
     "GET",
     "/./",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     NULL,
     "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
     "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
    {"get-slash-pointless-dot",
     "GET",
     "/./example",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     "GET\n/example\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
     "host;x-amz-date\n" EMPTY_SHA,
     "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
     "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"},
    {"get-slashes",
     "GET",
     "//example//",
     "",
     {{{"host", G_HOST}, {"x-amz-date", G_DATE}}},
     EMPTY_SHA,
     "host;x-amz-date",
     "GET\n/example/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
     "host;x-amz-date\n" EMPTY_SHA,
     "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
     "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
};

static void test_generic_suite(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(g_cases); i++) {
        const struct g_case *c = &g_cases[i];
        struct hdrs h = c->headers;
        struct sigv4_request req;
        struct sigv4_auth auth;
        struct err e = {0};
        struct buf creq, sts, authz;
        char sig[65];

        /* the suite's own form: ", " between the parts */
        buf_init(&authz, 0);
        assert_int_equal(buf_addf(&authz, NULL,
                                  "AWS4-HMAC-SHA256 " G_CRED ", SignedHeaders=%s, Signature=%s",
                                  c->signed_headers, c->signature),
                         0);
        req_init(&req, c->method, c->path, c->query, &h, 0);
        if (sigv4_parse_header(&req, authz.buf, &auth, &e) < 0)
            fail_msg("%s: parse: %s", c->name, e.msg);
        assert_string_equal(auth.service, "service");

        buf_init(&creq, 0);
        buf_init(&sts, 0);
        if (compute_signature(&req, &auth, G_SECRET, c->payload, &creq, &sts, sig, &e) < 0)
            fail_msg("%s: sign: %s", c->name, e.msg);
        if (c->creq && strcmp(creq.buf, c->creq) != 0)
            fail_msg("%s: canonical request\n%s\nexpected\n%s", c->name, creq.buf, c->creq);
        if (strncmp(sts.buf, G_STS, strlen(G_STS)) != 0 ||
            strcmp(sts.buf + strlen(G_STS), c->sts_hash) != 0)
            fail_msg("%s: string to sign\n%s", c->name, sts.buf);
        if (strcmp(sig, c->signature) != 0)
            fail_msg("%s: signature %s, expected %s", c->name, sig, c->signature);
        if (sigv4_verify(&req, &auth, G_SECRET, c->payload, G_TIME, 900, &e) < 0)
            fail_msg("%s: verify: %s", c->name, e.msg);
        buf_release(&creq);
        buf_release(&sts);
        buf_release(&authz);
    }
}

/* ---- canonical pieces ------------------------------------------------------------------- */

static void check_uri(const char *path, int s3, const char *expect)
{
    struct buf b;
    struct err e = {0};

    buf_init(&b, 0);
    if (canonical_uri(&b, path, s3, &e) < 0)
        fail_msg("%s: %s", path, e.msg);
    if (strcmp(b.buf, expect) != 0)
        fail_msg("canonical_uri(\"%s\", s3=%d) = \"%s\", expected \"%s\"", path, s3, b.buf, expect);
    buf_release(&b);
}

static void test_canonical_uri(void **state)
{
    struct buf b;
    struct err e = {0};

    (void)state;
    /* S3: decoded and encoded once, never normalised; an encoded '/' stays in its segment */
    check_uri("/test%24file.text", 1, "/test%24file.text");
    check_uri("/test$file.text", 1, "/test%24file.text");
    check_uri("/b/my%20file%C3%BC.txt", 1, "/b/my%20file%C3%BC.txt");
    check_uri("/b/a%2Fb", 1, "/b/a%2Fb");
    check_uri("/b/a%2fb", 1, "/b/a%2Fb");
    check_uri("//b/./x/../y//", 1, "//b/./x/../y//");
    check_uri("/b/a+b", 1, "/b/a%2Bb");
    check_uri("", 1, "/");
    check_uri("/", 1, "/");
    /* generic: normalised and encoded twice */
    check_uri("/a%2Fb", 0, "/a%252Fb");
    check_uri("/example space/", 0, "/example%20space/");
    check_uri("/example%20space/", 0, "/example%2520space/");
    check_uri("/a/b/../../..", 0, "/");
    check_uri("/a/./b/", 0, "/a/b/");
    check_uri("", 0, "/");

    buf_init(&b, 0);
    assert_int_equal(canonical_uri(&b, "/b/bad%zz", 1, &e), -1);
    assert_code(&e, ERR_INVALID, "InvalidURI");
    assert_int_equal(canonical_uri(&b, "/b/nul%00", 1, &e), -1);
    assert_code(&e, ERR_INVALID, "InvalidURI");
    assert_int_equal(canonical_uri(&b, "/b/trunc%4", 1, &e), -1);
    assert_code(&e, ERR_INVALID, "InvalidURI");
    buf_release(&b);
}

static void check_query(const char *query, int presigned, const char *expect)
{
    struct buf b;
    struct err e = {0};

    buf_init(&b, 0);
    if (canonical_query(&b, query, presigned, &e) < 0)
        fail_msg("%s: %s", query, e.msg);
    if (strcmp(b.buf, expect) != 0)
        fail_msg("canonical_query(\"%s\") = \"%s\", expected \"%s\"", query, b.buf, expect);
    buf_release(&b);
}

static void test_canonical_query(void **state)
{
    (void)state;
    check_query("", 0, "");
    check_query("uploads", 0, "uploads=");
    check_query("b&a=1", 0, "a=1&b=");
    check_query("a=10&a=9", 0, "a=10&a=9");
    check_query("x=a.b&x=a%2Fb", 0, "x=a%2Fb&x=a.b");
    check_query("q=a+b", 0, "q=a%2Bb");
    check_query("q=a%20b&&", 0, "q=a%20b");
    check_query("a=1=2", 0, "a=1%3D2");
    check_query("prefix=photos/2024&list-type=2", 0, "list-type=2&prefix=photos%2F2024");
    check_query("a=1&X-Amz-Signature=00", 1, "a=1");
    check_query("a=1&X-Amz-Signature=00", 0, "X-Amz-Signature=00&a=1");
}

static void test_uri_encode_decode(void **state)
{
    struct buf b;
    struct err e = {0};

    (void)state;
    buf_init(&b, 0);
    assert_int_equal(sigv4_uri_encode(&b, "a b/c~*\xc3\xbc", 9, 1, &e), 0);
    assert_string_equal(b.buf, "a%20b/c~%2A%C3%BC");
    buf_reset(&b);
    assert_int_equal(sigv4_uri_encode(&b, "a/b", 3, 0, &e), 0);
    assert_string_equal(b.buf, "a%2Fb");
    buf_reset(&b);
    assert_int_equal(sigv4_uri_decode(&b, "a+b%2fc%C3%BC", 13, &e), 0);
    assert_string_equal(b.buf, "a+b/c\xc3\xbc");
    buf_reset(&b);
    assert_int_equal(sigv4_uri_decode(&b, "%G0", 3, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    buf_release(&b);

    /* the cap of the buffer holds */
    buf_init(&b, 4);
    assert_int_equal(sigv4_uri_encode(&b, "  ", 2, 0, &e), -1);
    assert_int_equal(e.code, ERR_LIMIT);
    buf_release(&b);
}

static void test_header_trim(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    assert_int_equal(add_trimmed(&b, " \t a \t  b   c\t ", NULL), 0);
    assert_string_equal(b.buf, "a b c");
    buf_reset(&b);
    assert_int_equal(add_trimmed(&b, "   ", NULL), 0);
    assert_string_equal(b.buf, "");
    buf_release(&b);
}

/* ---- failures --------------------------------------------------------------------------- */

/** A parsed copy of the S3 GET Object example, ready for verify. */
static void get_object(struct sigv4_request *req, struct hdrs *h, struct sigv4_auth *auth)
{
    struct err e = {0};
    char *authz = s3_authorization(&s3_cases[0], ",");

    *h = s3_cases[0].headers;
    req_init(req, "GET", "/test.txt", "", h, 1);
    assert_int_equal(sigv4_parse_header(req, authz, auth, &e), 0);
    free(authz);
}

static void test_tampered(void **state)
{
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct hdrs h;
    struct err e = {0};

    (void)state;
    /* tampered signature */
    get_object(&req, &h, &auth);
    auth.signature[63] = auth.signature[63] == '1' ? '2' : '1';
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
    assert_string_equal(e.msg,
                        "SignatureDoesNotMatch: The request signature we calculated does not "
                        "match the signature you provided. Check your key and signing method.");

    /* wrong secret */
    get_object(&req, &h, &auth);
    assert_int_equal(sigv4_verify(&req, &auth, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ", NULL,
                                  S3_TIME, 900, &e),
                     -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");

    /* a signed header changed */
    get_object(&req, &h, &auth);
    h.h[1].value = "bytes=0-99";
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");

    /* another path, method, query */
    get_object(&req, &h, &auth);
    req.path = "/test.txt2";
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
    req.path = "/test.txt";
    req.method = "DELETE";
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
    req.method = "GET";
    req.query = "versionId=1";
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");

    /* a signed header removed */
    get_object(&req, &h, &auth);
    h.h[1].name = "x-range";
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");

    /* a presigned URL with another key */
    {
        struct hdrs ph = {{{"host", S3_HOST}}};
        req_init(&req, "GET", "/test.txt", PRESIGN_QUERY "&X-Amz-Signature=" PRESIGN_SIG, &ph, 1);
        assert_int_equal(sigv4_parse_query(&req, &auth, &e), 1);
        req.path = "/other.txt";
        assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
        assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
    }
}

static void test_skew(void **state)
{
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct hdrs h;
    struct err e = {0};

    (void)state;
    get_object(&req, &h, &auth);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME + 900, 900, &e), 0);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME - 900, 900, &e), 0);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME + 901, 900, &e), -1);
    assert_code(&e, ERR_DENIED, "RequestTimeTooSkewed");
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME - 901, 900, &e), -1);
    assert_code(&e, ERR_DENIED, "RequestTimeTooSkewed");
    /* the Date header is used when X-Amz-Date is absent */
    {
        struct hdrs dh = {{{"date", "Fri, 24 May 2013 00:10:00 GMT"}, {"host", S3_HOST}}};
        req_init(&req, "GET", "/", "", &dh, 1);
        assert_int_equal(sigv4_parse_header(&req,
                                            "AWS4-HMAC-SHA256 " S3_CRED ",SignedHeaders=date;host,"
                                            "Signature=" PRESIGN_SIG,
                                            &auth, &e),
                         0);
        assert_int_equal(auth.request_time, S3_TIME + 600);
    }
}

static void test_scope_date_mismatch(void **state)
{
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct hdrs h;
    struct err e = {0};

    (void)state;
    get_object(&req, &h, &auth);
    memcpy(auth.date, "20130523", 8);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_INVALID, "AuthorizationHeaderMalformed");

    /* the header form, parsed */
    h = s3_cases[0].headers;
    req_init(&req, "GET", "/test.txt", "", &h, 1);
    assert_int_equal(sigv4_parse_header(&req,
                                        "AWS4-HMAC-SHA256 Credential=" S3_AKID
                                        "/20130525/us-east-1/s3/aws4_request,SignedHeaders=host,"
                                        "Signature=" PRESIGN_SIG,
                                        &auth, &e),
                     0);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_INVALID, "AuthorizationHeaderMalformed");

    /* the query form */
    {
        struct hdrs ph = {{{"host", S3_HOST}}};
        req_init(&req, "GET", "/test.txt",
                 "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F"
                 "20130523%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&"
                 "X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=" PRESIGN_SIG,
                 &ph, 1);
        assert_int_equal(sigv4_parse_query(&req, &auth, &e), 1);
        assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
        assert_code(&e, ERR_INVALID, "AuthorizationQueryParametersError");
    }

    /* a credential for another service on the S3 endpoint */
    get_object(&req, &h, &auth);
    memcpy(auth.service, "iam", 4);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_INVALID, "AuthorizationHeaderMalformed");
}

struct bad_header {
    const char *authz;
    enum err_code code;
    const char *s3code;
};

#define SH  "SignedHeaders=host;x-amz-date"
#define SIG "Signature=" PRESIGN_SIG

static void test_malformed_headers(void **state)
{
    static const struct bad_header cases[] = {
        {"AWS4-HMAC-SHA512 " S3_CRED ", " SH ", " SIG, ERR_INVALID, CODE_HEADER},
        {"AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=", ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256", ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 ", ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256" S3_CRED ", " SH ", " SIG, ERR_INVALID, CODE_HEADER},
        {"", ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", " SH, ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " SH ", " SIG, ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", " SIG, ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", " SH ", " SIG ",", ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", " S3_CRED ", " SH ", " SIG, ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", " SH ", " SIG ", Foo=bar", ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", " SH ", Signature", ERR_INVALID, CODE_HEADER},
        /* bad scopes */
        {"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3, " SH ", " SIG, ERR_INVALID,
         CODE_HEADER},
        {"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request/x, " SH ", " SIG,
         ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 Credential=/20130524/us-east-1/s3/aws4_request, " SH ", " SIG,
         ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 Credential=AKID/2013052/us-east-1/s3/aws4_request, " SH ", " SIG,
         ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 Credential=AKID/20131324/us-east-1/s3/aws4_request, " SH ", " SIG,
         ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 Credential=AKID/20130524//s3/aws4_request, " SH ", " SIG, ERR_INVALID,
         CODE_HEADER},
        {"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1//aws4_request, " SH ", " SIG,
         ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_requests, " SH ", " SIG,
         ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 Credential=AKID/20130524/us east/s3/aws4_request, " SH ", " SIG,
         ERR_INVALID, CODE_HEADER},
        /* bad signed headers */
        {"AWS4-HMAC-SHA256 " S3_CRED ", SignedHeaders=x-amz-date, " SIG, ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", SignedHeaders=Host;x-amz-date, " SIG, ERR_INVALID,
         CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", SignedHeaders=host;;x-amz-date, " SIG, ERR_INVALID,
         CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", SignedHeaders=host;host, " SIG, ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", SignedHeaders=, " SIG, ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", SignedHeaders=a;b;c;d;e;f;g;h;i;j;k;l;m;n;o;p;q;r;s;t;"
         "u;v;w;x;y;z;aa;bb;cc;dd;ee;host;x-amz-date, " SIG,
         ERR_LIMIT, CODE_HEADER},
        /* bad signatures */
        {"AWS4-HMAC-SHA256 " S3_CRED ", " SH ", Signature=abc", ERR_INVALID, CODE_HEADER},
        {"AWS4-HMAC-SHA256 " S3_CRED ", " SH
         ", Signature=AEEED9BBCCD4D02EE5C0109B86D86835F995330DA4C265957D157751F604D404",
         ERR_INVALID, CODE_HEADER},
    };
    struct hdrs h = {{{"host", S3_HOST}, {"x-amz-date", "20130524T000000Z"}}};
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct err e;

    (void)state;
    req_init(&req, "GET", "/", "", &h, 1);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        memset(&e, 0, sizeof(e));
        if (sigv4_parse_header(&req, cases[i].authz, &auth, &e) != -1)
            fail_msg("accepted: %s", cases[i].authz);
        if (e.code != cases[i].code ||
            strncmp(e.msg, cases[i].s3code, strlen(cases[i].s3code)) != 0 ||
            e.msg[strlen(cases[i].s3code)] != ':')
            fail_msg("%s: got %d \"%s\"", cases[i].authz, e.code, e.msg);
    }

    /* too long */
    {
        char *big = xmalloc(5001);
        memset(big, 'a', 5000);
        big[5000] = '\0';
        memcpy(big, "AWS4-HMAC-SHA256 ", 17);
        assert_int_equal(sigv4_parse_header(&req, big, &auth, &e), -1);
        assert_code(&e, ERR_LIMIT, CODE_HEADER);
        free(big);
    }

    /* no date, bad date */
    {
        struct hdrs nd = {{{"host", S3_HOST}}};
        struct hdrs bd = {{{"host", S3_HOST}, {"x-amz-date", "2013-05-24T00:00:00Z"}}};
        struct hdrs bh = {{{"host", S3_HOST}, {"date", "yesterday"}}};

        req_init(&req, "GET", "/", "", &nd, 1);
        assert_int_equal(
            sigv4_parse_header(&req, "AWS4-HMAC-SHA256 " S3_CRED ", " SH ", " SIG, &auth, &e), -1);
        assert_code(&e, ERR_DENIED, "AccessDenied");
        req.ctx = &bd;
        assert_int_equal(
            sigv4_parse_header(&req, "AWS4-HMAC-SHA256 " S3_CRED ", " SH ", " SIG, &auth, &e), -1);
        assert_code(&e, ERR_DENIED, "AccessDenied");
        req.ctx = &bh;
        assert_int_equal(
            sigv4_parse_header(&req, "AWS4-HMAC-SHA256 " S3_CRED ", " SH ", " SIG, &auth, &e), -1);
        assert_code(&e, ERR_DENIED, "AccessDenied");
    }
}

/** Any order of the parts, spaces and tabs around commas. */
static void test_header_any_order(void **state)
{
    const struct s3_case *c = &s3_cases[0];
    struct hdrs h = c->headers;
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct err e = {0};

    (void)state;
    req_init(&req, "GET", "/test.txt", "", &h, 1);
    assert_int_equal(sigv4_parse_header(&req,
                                        "  AWS4-HMAC-SHA256   Signature=f0e8bdb87c964420e857bd35b5d"
                                        "6ed310bd44f0170aba48dd91039c6036bdb41 ,\tSignedHeaders="
                                        "host;range;x-amz-content-sha256;x-amz-date ,  " S3_CRED
                                        "  ",
                                        &auth, &e),
                     0);
    assert_string_equal(auth.access_key, S3_AKID);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), 0);
}

struct bad_query {
    const char *query;
    enum err_code code;
    const char *s3code;
};

#define Q_ALG  "X-Amz-Algorithm=AWS4-HMAC-SHA256"
#define Q_CRED "X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
#define Q_DATE "X-Amz-Date=20130524T000000Z"
#define Q_EXP  "X-Amz-Expires=86400"
#define Q_SH   "X-Amz-SignedHeaders=host"
#define Q_SIG  "X-Amz-Signature=" PRESIGN_SIG

static void test_malformed_query(void **state)
{
    static const struct bad_query cases[] = {
        {Q_ALG "&" Q_CRED, ERR_INVALID, CODE_QUERY},
        {Q_SIG, ERR_INVALID, CODE_QUERY},
        {Q_ALG "&" Q_CRED "&" Q_DATE "&" Q_EXP "&" Q_SH, ERR_INVALID, CODE_QUERY},
        {"X-Amz-Algorithm=AWS4-HMAC-SHA1&" Q_CRED "&" Q_DATE "&" Q_EXP "&" Q_SH "&" Q_SIG,
         ERR_INVALID, CODE_QUERY},
        {Q_ALG "&X-Amz-Credential=AKID%2F20130524%2Fus-east-1%2Fs3&" Q_DATE "&" Q_EXP "&" Q_SH
               "&" Q_SIG,
         ERR_INVALID, CODE_QUERY},
        {Q_ALG "&" Q_CRED "&X-Amz-Date=20130524&" Q_EXP "&" Q_SH "&" Q_SIG, ERR_INVALID,
         CODE_QUERY},
        {Q_ALG "&" Q_CRED "&" Q_DATE "&X-Amz-Expires=0&" Q_SH "&" Q_SIG, ERR_INVALID, CODE_QUERY},
        {Q_ALG "&" Q_CRED "&" Q_DATE "&X-Amz-Expires=604801&" Q_SH "&" Q_SIG, ERR_INVALID,
         CODE_QUERY},
        {Q_ALG "&" Q_CRED "&" Q_DATE "&X-Amz-Expires=-5&" Q_SH "&" Q_SIG, ERR_INVALID, CODE_QUERY},
        {Q_ALG "&" Q_CRED "&" Q_DATE "&X-Amz-Expires=1h&" Q_SH "&" Q_SIG, ERR_INVALID, CODE_QUERY},
        {Q_ALG "&" Q_CRED "&" Q_DATE "&" Q_EXP "&X-Amz-SignedHeaders=x-amz-date&" Q_SIG,
         ERR_INVALID, CODE_QUERY},
        {Q_ALG "&" Q_CRED "&" Q_DATE "&" Q_EXP "&" Q_SH "&X-Amz-Signature=zz", ERR_INVALID,
         CODE_QUERY},
        {Q_ALG "&" Q_ALG "&" Q_CRED "&" Q_DATE "&" Q_EXP "&" Q_SH "&" Q_SIG, ERR_INVALID,
         CODE_QUERY},
        {Q_ALG "&" Q_CRED "&" Q_DATE "&" Q_EXP "&" Q_SH "&" Q_SIG "&x=%zz", ERR_INVALID,
         "InvalidURI"},
    };
    struct hdrs h = {{{"host", S3_HOST}}};
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct err e;

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        memset(&e, 0, sizeof(e));
        req_init(&req, "GET", "/test.txt", cases[i].query, &h, 1);
        if (sigv4_parse_query(&req, &auth, &e) != -1)
            fail_msg("accepted: %s", cases[i].query);
        if (e.code != cases[i].code ||
            strncmp(e.msg, cases[i].s3code, strlen(cases[i].s3code)) != 0 ||
            e.msg[strlen(cases[i].s3code)] != ':')
            fail_msg("%s: got %d \"%s\"", cases[i].query, e.code, e.msg);
    }

    /* no presigned parameters at all */
    req_init(&req, "GET", "/test.txt", "", &h, 1);
    assert_int_equal(sigv4_parse_query(&req, &auth, &e), 0);
    req_init(&req, "GET", "/test.txt", "list-type=2&prefix=a%2Fb&x-amz-date=1", &h, 1);
    assert_int_equal(sigv4_parse_query(&req, &auth, &e), 0);
    req.query = NULL;
    assert_int_equal(sigv4_parse_query(&req, &auth, &e), 0);
}

/* ---- presign round trip ----------------------------------------------------------------- */

/** Splits url into host, path and query (pointers into a copy the caller frees). */
static char *split_url(const char *url, const char **host, const char **path, const char **query)
{
    char *copy = xstrdup(url), *p, *slash, *q;

    p = strstr(copy, "://");
    assert_non_null(p);
    p += 3;
    slash = strchr(p, '/');
    assert_non_null(slash);
    memmove(p - 1, p, (size_t)(slash - p));
    slash[-1] = '\0';
    *host = p - 1;
    *path = slash;
    q = strchr(slash, '?');
    assert_non_null(q);
    *q = '\0';
    *query = q + 1;
    return copy;
}

static void test_presign_round_trip(void **state)
{
    static const char key[] = "/my bucket/photos 2024/\xc3\xa9t\xc3\xa9 + \xe2\x82\xac 100%.jpg";
    const char *host, *path, *query;
    struct hdrs h;
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct err e = {0};
    char *url, *copy;

    (void)state;
    url = sigv4_presign("GET", "http://127.0.0.1:8081/", key,
                        "response-content-disposition=attachment; filename=\"a b.jpg\"&versionId=",
                        "AKIDACERVO", "s3cr3t/+=", "eu-west-3", S3_TIME, 3600);
    assert_non_null(url);
    assert_non_null(strstr(url, "http://127.0.0.1:8081/my%20bucket/photos%202024/"
                                "%C3%A9t%C3%A9%20%2B%20%E2%82%AC%20100%25.jpg?"
                                "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDACERVO%2F"
                                "20130524%2Feu-west-3%2Fs3%2Faws4_request&X-Amz-Date="
                                "20130524T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&"
                                "response-content-disposition=attachment%3B%20filename%3D%22a%20"
                                "b.jpg%22&versionId=&X-Amz-Signature="));

    copy = split_url(url, &host, &path, &query);
    assert_string_equal(host, "127.0.0.1:8081");
    memset(&h, 0, sizeof(h));
    h.h[0].name = "host";
    h.h[0].value = host;
    req_init(&req, "GET", path, query, &h, 1);
    assert_int_equal(sigv4_parse_query(&req, &auth, &e), 1);
    assert_string_equal(auth.access_key, "AKIDACERVO");
    assert_string_equal(auth.region, "eu-west-3");
    if (sigv4_verify(&req, &auth, "s3cr3t/+=", NULL, S3_TIME + 10, 900, &e) < 0)
        fail_msg("verify: %s", e.msg);
    /* expired after an hour */
    assert_int_equal(sigv4_verify(&req, &auth, "s3cr3t/+=", NULL, S3_TIME + 3601, 900, &e), -1);
    assert_code(&e, ERR_DENIED, "AccessDenied");
    /* another host, method, key or secret does not verify */
    h.h[0].value = "127.0.0.1:8082";
    assert_int_equal(sigv4_verify(&req, &auth, "s3cr3t/+=", NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
    h.h[0].value = host;
    req.method = "PUT";
    assert_int_equal(sigv4_verify(&req, &auth, "s3cr3t/+=", NULL, S3_TIME, 900, &e), -1);
    req.method = "GET";
    req.path = "/my%20bucket/photos%202024/other.jpg";
    assert_int_equal(sigv4_verify(&req, &auth, "s3cr3t/+=", NULL, S3_TIME, 900, &e), -1);
    req.path = path;
    assert_int_equal(sigv4_verify(&req, &auth, "s3cr3t/+==", NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
    free(copy);
    free(url);

    /* a base URL with a path prefix, a key without a leading slash, https */
    url = sigv4_presign("PUT", "https://s3.example.org/store", "b/k", "", "AK", "sk", "us-east-1",
                        S3_TIME, 1);
    assert_non_null(url);
    copy = split_url(url, &host, &path, &query);
    assert_string_equal(host, "s3.example.org");
    assert_string_equal(path, "/store/b/k");
    h.h[0].value = host;
    req_init(&req, "PUT", path, query, &h, 1);
    assert_int_equal(sigv4_parse_query(&req, &auth, &e), 1);
    assert_int_equal(sigv4_verify(&req, &auth, "sk", NULL, S3_TIME + 1, 0, &e), 0);
    assert_int_equal(sigv4_verify(&req, &auth, "sk", NULL, S3_TIME + 2, 0, &e), -1);
    free(copy);
    free(url);

    /* invalid arguments */
    assert_null(sigv4_presign("GET", "ftp://x", "/k", "", "AK", "sk", "r", S3_TIME, 60));
    assert_null(sigv4_presign("GET", "http://", "/k", "", "AK", "sk", "r", S3_TIME, 60));
    assert_null(sigv4_presign("GET", "http://x", "/k", "", "AK", "sk", "r", S3_TIME, 0));
    assert_null(sigv4_presign("GET", "http://x", "/k", "", "AK", "sk", "r", S3_TIME, 604801));
    assert_null(
        sigv4_presign("GET", "http://x", "/k", "X-Amz-Expires=9", "AK", "sk", "r", S3_TIME, 60));
    assert_null(sigv4_presign("GET", "http://x", "/k", "", "A/K", "sk", "r", S3_TIME, 60));
}

/* ---- x-amz-content-sha256 ---------------------------------------------------------------- */

static void test_payload_hash(void **state)
{
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct hdrs h;
    struct err e = {0};
    char body_hash[65];

    (void)state;
    /* the signed payload hash is part of the canonical request */
    get_object(&req, &h, &auth);
    h.h[2].value = SIGV4_UNSIGNED_PAYLOAD;
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
    /* the caller's value wins over the header's */
    get_object(&req, &h, &auth);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, EMPTY_SHA, S3_TIME, 900, &e), 0);
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, PUT_SHA, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
    /* absent: not taken as UNSIGNED-PAYLOAD */
    h.h[2].name = "x-amz-content-sha1";
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, NULL, S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_INVALID, "InvalidRequest");
    /* malformed */
    assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, "abc", S3_TIME, 900, &e), -1);
    assert_code(&e, ERR_INVALID, "InvalidArgument");
    assert_int_equal(
        sigv4_verify(&req, &auth, S3_SECRET,
                     "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", S3_TIME,
                     900, &e),
        -1);
    assert_code(&e, ERR_INVALID, "InvalidArgument");

    /* PUT example: the hash of the body the caller received */
    {
        const struct s3_case *c = &s3_cases[1];
        char *authz = s3_authorization(c, ",");
        static const char body[] = "Welcome to Amazon S3.";

        h = c->headers;
        req_init(&req, "PUT", c->path, "", &h, 1);
        assert_int_equal(sigv4_parse_header(&req, authz, &auth, &e), 0);
        util_sha256_hex(body, strlen(body), body_hash);
        assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, body_hash, S3_TIME, 900, &e), 0);
        util_sha256_hex("Welcome to Amazon S4.", 21, body_hash);
        assert_int_equal(sigv4_verify(&req, &auth, S3_SECRET, body_hash, S3_TIME, 900, &e), -1);
        assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
        free(authz);
    }

    /* UNSIGNED-PAYLOAD and streaming requests sign the literal value */
    {
        static const char *const values[] = {SIGV4_UNSIGNED_PAYLOAD, SIGV4_STREAMING_PAYLOAD};
        for (size_t i = 0; i < ARRAY_LEN(values); i++) {
            struct hdrs uh = {{{"host", "127.0.0.1:8081"},
                               {"x-amz-content-sha256", values[i]},
                               {"x-amz-date", "20130524T000000Z"}}};
            struct buf creq, sts;
            struct sigv4_auth signer;
            char sig[65];

            memset(&signer, 0, sizeof(signer));
            memcpy(signer.date, "20130524", 9);
            memcpy(signer.region, "us-east-1", 10);
            memcpy(signer.service, "s3", 3);
            memcpy(signer.access_key, "AK", 3);
            memcpy(signer.signed_headers, "host;x-amz-content-sha256;x-amz-date", 37);
            signer.request_time = S3_TIME;
            req_init(&req, "PUT", "/b/k", "", &uh, 1);
            buf_init(&creq, 0);
            buf_init(&sts, 0);
            assert_int_equal(
                compute_signature(&req, &signer, "sk", values[i], &creq, &sts, sig, &e), 0);
            assert_non_null(strstr(creq.buf, values[i]));
            memcpy(signer.signature, sig, 65);
            assert_int_equal(sigv4_verify(&req, &signer, "sk", NULL, S3_TIME, 900, &e), 0);
            uh.h[1].value = EMPTY_SHA;
            assert_int_equal(sigv4_verify(&req, &signer, "sk", NULL, S3_TIME, 900, &e), -1);
            assert_code(&e, ERR_UNAUTH, "SignatureDoesNotMatch");
            buf_release(&creq);
            buf_release(&sts);
        }
    }
}

static void test_signing_key(void **state)
{
    /* AWS docs "Deriving the signing key" example (iam, 20120215) */
    unsigned char key[32];
    char hex[65];

    (void)state;
    sigv4_signing_key("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215", "us-east-1", "iam",
                      key);
    util_hex(key, sizeof(key), hex);
    assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_examples),
        cmocka_unit_test(test_s3_put_raw_dollar),
        cmocka_unit_test(test_presigned_example),
        cmocka_unit_test(test_presign_matches_example),
        cmocka_unit_test(test_generic_suite),
        cmocka_unit_test(test_canonical_uri),
        cmocka_unit_test(test_canonical_query),
        cmocka_unit_test(test_uri_encode_decode),
        cmocka_unit_test(test_header_trim),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_skew),
        cmocka_unit_test(test_scope_date_mismatch),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_header_any_order),
        cmocka_unit_test(test_malformed_query),
        cmocka_unit_test(test_presign_round_trip),
        cmocka_unit_test(test_payload_hash),
        cmocka_unit_test(test_signing_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
