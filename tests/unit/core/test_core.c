#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

static void test_buf_cap(void **state)
{
    struct buf b;
    struct err e = {0};

    (void)state;
    buf_init(&b, 8);
    assert_string_equal(b.buf, "");
    assert_int_equal(buf_adds(&b, "abcd", &e), 0);
    assert_int_equal(buf_addf(&b, &e, "%d", 123), 0);
    assert_string_equal(b.buf, "abcd123");
    assert_int_equal(buf_adds(&b, "xy", &e), -1);
    assert_int_equal(e.code, ERR_LIMIT);
    assert_string_equal(b.buf, "abcd123");
    buf_release(&b);
}

static void test_buf_xml(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    assert_int_equal(buf_add_xml(&b, "a<b>&\"c'", NULL), 0);
    assert_string_equal(b.buf, "a&lt;b&gt;&amp;&quot;c&apos;");
    buf_release(&b);
}

static void test_arena(void **state)
{
    struct arena a;
    char *big;

    (void)state;
    arena_init(&a);
    for (int i = 0; i < 1000; i++)
        assert_non_null(arena_printf(&a, "item-%d", i));
    big = arena_alloc(&a, 100000);
    memset(big, 'x', 100000);
    assert_string_equal(arena_strdup(&a, "hello"), "hello");
    assert_null(arena_strdup(&a, NULL));
    arena_release(&a);
}

static void test_cfg_parse(void **state)
{
    long v;

    (void)state;
    assert_int_equal(cfg_parse_size("64K", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(cfg_parse_size("5MiB", &v), 0);
    assert_int_equal(v, 5L << 20);
    assert_int_equal(cfg_parse_size("x", &v), -1);
    assert_int_equal(cfg_parse_size("5Q", &v), -1);
    assert_int_equal(cfg_parse_duration("15m", &v), 0);
    assert_int_equal(v, 900);
    assert_int_equal(cfg_parse_duration("7d", &v), 0);
    assert_int_equal(v, 7 * 86400);
    assert_int_equal(cfg_parse_duration("7w", &v), -1);
}

static void test_cfg_flags_env(void **state)
{
    struct cfg c;
    struct err e = {0};
    char a0[] = "acervod", a1[] = "--listen", a2[] = "127.0.0.1:9", a3[] = "--min-part-size=6M",
         a4[] = "serve";
    char *argv[] = {a0, a1, a2, a3, a4, NULL};
    int optind = 1;

    (void)state;
    setenv("ACERVO_LISTEN", "127.0.0.1:7", 1);
    setenv("ACERVO_MAX_CONNECTIONS", "3", 1);
    setenv("ACERVO_DATA_DIR", "/nonexistent-acervo-dir", 1);
    assert_int_equal(cfg_load(&c, 5, argv, &optind, &e), 0);
    assert_string_equal(c.listen, "127.0.0.1:9");
    assert_int_equal(c.max_connections, 3);
    assert_int_equal(c.min_part_size, 6L << 20);
    assert_int_equal(optind, 4);
    assert_string_equal(c.public_url, "http://127.0.0.1:9");
    unsetenv("ACERVO_LISTEN");
    unsetenv("ACERVO_MAX_CONNECTIONS");
    unsetenv("ACERVO_DATA_DIR");
}

static void test_cfg_bad(void **state)
{
    struct cfg c;
    struct err e = {0};
    char a0[] = "acervod", a1[] = "--max-connections", a2[] = "lots";
    char *argv[] = {a0, a1, a2, NULL};
    int optind = 1;

    (void)state;
    assert_int_equal(cfg_load(&c, 3, argv, &optind, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_non_null(strstr(e.msg, "max_connections"));
}

static void test_uuid7(void **state)
{
    char a[37], b[37];

    (void)state;
    util_uuid7(a);
    assert_true(util_uuid_valid(a));
    assert_int_equal(a[14], '7');
    util_uuid7(b);
    assert_string_not_equal(a, b);
    for (int i = 0; i < 5000; i++) {
        memcpy(a, b, sizeof(a));
        util_uuid7(b);
        assert_true(strcmp(a, b) < 0);
    }
    assert_false(util_uuid_valid("not-a-uuid"));
    assert_false(util_uuid_valid("0192f0e4-7c2a-7abc-8def-0123456789AB"));
}

static void test_time(void **state)
{
    char s[40];
    int64_t t;

    (void)state;
    util_time_http(784111777, s);
    assert_string_equal(s, "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_int_equal(util_time_http_parse(s, &t), 0);
    assert_int_equal(t, 784111777);
    assert_int_equal(util_time_http_parse("Sun, 06 Nov 1994 08:49:37 XYZ", &t), -1);
    assert_int_equal(util_time_iso_parse("20130524T000000Z", &t), 0);
    assert_int_equal(t, 1369353600);
    assert_int_equal(util_time_iso_parse("2013-05-24T00:00:00.123Z", &t), 0);
    assert_int_equal(t, 1369353600);
    assert_int_equal(util_time_iso_parse("2013-05-24", &t), -1);
    util_time_rfc3339(1369353600, s);
    assert_string_equal(s, "2013-05-24T00:00:00Z");
}

static void test_hash(void **state)
{
    char hex[65];

    (void)state;
    util_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_true(util_streq_ct("abc", "abc"));
    assert_false(util_streq_ct("abc", "abd"));
    assert_false(util_streq_ct("abc", "ab"));
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* file < environment < flags, and the data dir's own acervo.conf when no file is named */
static void test_cfg_file_precedence(void **state)
{
    char dir[] = "/tmp/acervo-cfg-XXXXXX";
    char file[128], own[128], a0[] = "acervod", a1[] = "--config", a3[] = "--listen",
                              a4[] = "127.0.0.1:3";
    char *argv[] = {a0, a1, file, a3, a4, NULL};
    char b0[] = "acervod", b1[] = "--data-dir";
    char *argv2[] = {b0, b1, dir, NULL};
    struct cfg c;
    struct err e = {0};
    int optind = 1;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/explicit.conf", dir);
    write_file(file, "# comment\nlisten = 127.0.0.1:1\nmax_connections = 5\nupload_ttl = 2d\n"
                     "s3_region = eu-south-2\n");
    setenv("ACERVO_MAX_CONNECTIONS", "6", 1);
    assert_int_equal(cfg_load(&c, 5, argv, &optind, &e), 0);
    assert_string_equal(c.listen, "127.0.0.1:3"); /* flag over file */
    assert_int_equal(c.max_connections, 6);       /* environment over file */
    assert_int_equal(c.upload_ttl, 2 * 86400);    /* file over default */
    assert_string_equal(c.s3_region, "eu-south-2");
    unsetenv("ACERVO_MAX_CONNECTIONS");

    snprintf(own, sizeof(own), "%s/acervo.conf", dir);
    write_file(own, "presign_ttl = 5m\n");
    optind = 1;
    assert_int_equal(cfg_load(&c, 3, argv2, &optind, &e), 0);
    assert_int_equal(c.presign_ttl, 300);

    write_file(own, "no_such_setting = 1\n");
    optind = 1;
    assert_int_equal(cfg_load(&c, 3, argv2, &optind, &e), -1);
    assert_non_null(strstr(e.msg, "acervo.conf:1"));
    write_file(own, "max_connections\n");
    optind = 1;
    assert_int_equal(cfg_load(&c, 3, argv2, &optind, &e), -1);
    assert_non_null(strstr(e.msg, "key = value"));
    unlink(own);
    unlink(file);
    rmdir(dir);
}

static void test_utf8(void **state)
{
    static const struct {
        const char *s;
        int valid;
    } cases[] = {
        {"", 1},
        {"plain ascii/key.mp4", 1},
        {"inflaci\xc3\xb3n", 1}, /* U+00F3 */
        {"\xe2\x82\xac", 1},     /* U+20AC */
        {"\xf0\x9f\x8e\xac", 1}, /* U+1F3AC */
        {"\xf4\x8f\xbf\xbf", 1}, /* U+10FFFF, the last */
        {"\xff\xfe", 0},         /* never in UTF-8 */
        {"\xc0\xaf", 0},         /* overlong '/' */
        {"\xe0\x80\xaf", 0},     /* overlong '/', three bytes */
        {"\xf0\x80\x80\xaf", 0}, /* overlong '/', four bytes */
        {"\xed\xa0\x80", 0},     /* a surrogate, U+D800 */
        {"\xf4\x90\x80\x80", 0}, /* past U+10FFFF */
        {"abc\xc3", 0},          /* cut inside a character */
        {"\x80", 0},             /* a lone continuation byte */
        {"a\xe2\x82", 0},        /* cut three-byte character */
    };
    size_t i = 0;
    uint32_t cp = 0;

    (void)state;
    for (size_t k = 0; k < ARRAY_LEN(cases); k++)
        assert_int_equal(util_utf8_valid(cases[k].s, strlen(cases[k].s)), cases[k].valid);
    /* a NUL inside the range is a character like any other */
    assert_int_equal(util_utf8_valid("a\0b", 3), 1);
    assert_int_equal(util_utf8_next((const unsigned char *)"\xc3\xb3", 2, &i, &cp), 1);
    assert_int_equal(cp, 0xf3);
    assert_int_equal(i, 2);
    i = 0;
    assert_int_equal(util_utf8_next((const unsigned char *)"\xc0\xaf", 2, &i, &cp), 0);
    assert_int_equal(i, 1);
}

struct gate_guest {
    struct gate *g;
    atomic_int in;
};

static void *gate_guest_main(void *arg)
{
    struct gate_guest *v = arg;

    if (gate_enter(v->g, 60000) == 0)
        atomic_store(&v->in, 1);
    return NULL;
}

static void wait_waiting(struct gate *g, int n)
{
    while (gate_waiting(g) != n) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
    }
}

static void test_gate(void **state)
{
    struct gate g;
    struct gate_guest a = {&g, 0}, b = {&g, 0};
    pthread_t ta, tb;
    struct timespec ts = {0, 20000000L};

    (void)state;
    gate_init(&g, 2);
    assert_int_equal(gate_enter(&g, 0), 0);
    assert_int_equal(gate_enter(&g, 0), 0);
    /* full: a third gives up after its wait, and leaves no trace in the queue */
    assert_int_equal(gate_enter(&g, 30), -1);
    assert_int_equal(gate_waiting(&g), 0);
    /* first come, first served: a waits before b, so a gets the first place freed */
    assert_int_equal(pthread_create(&ta, NULL, gate_guest_main, &a), 0);
    wait_waiting(&g, 1);
    assert_int_equal(pthread_create(&tb, NULL, gate_guest_main, &b), 0);
    wait_waiting(&g, 2);
    gate_leave(&g);
    pthread_join(ta, NULL);
    assert_int_equal(atomic_load(&a.in), 1);
    nanosleep(&ts, NULL);
    assert_int_equal(atomic_load(&b.in), 0);
    assert_int_equal(gate_waiting(&g), 1);
    /* a newcomer does not overtake b either */
    assert_int_equal(gate_enter(&g, 30), -1);
    gate_leave(&g);
    pthread_join(tb, NULL);
    assert_int_equal(atomic_load(&b.in), 1);
    /* a and b hold the two places; both leave and the gate is free again */
    gate_leave(&g);
    gate_leave(&g);
    assert_int_equal(gate_enter(&g, 0), 0);
    assert_int_equal(gate_enter(&g, 0), 0);
    gate_leave(&g);
    gate_leave(&g);
    gate_release(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_cap),       cmocka_unit_test(test_buf_xml),
        cmocka_unit_test(test_arena),         cmocka_unit_test(test_cfg_parse),
        cmocka_unit_test(test_cfg_flags_env), cmocka_unit_test(test_cfg_bad),
        cmocka_unit_test(test_uuid7),         cmocka_unit_test(test_time),
        cmocka_unit_test(test_hash),          cmocka_unit_test(test_cfg_file_precedence),
        cmocka_unit_test(test_utf8),          cmocka_unit_test(test_gate),
    };
    return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
