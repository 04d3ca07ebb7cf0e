/* The acervo client's building blocks: the config file, query strings, error classes and
 * exit codes, arguments. The HTTP side runs against acervod in tests/e2e/test_acervo_cli.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* static functions (config_read, status_class) are reached by including the files */
#include "cli/args.c"
#include "cli/client.c"
#include "cli/pool.c"
#include "cli/upload.c"

#include <sys/stat.h>

struct home {
    char dir[64];
};

static int setup(void **state)
{
    struct home *h = calloc(1, sizeof(*h));

    snprintf(h->dir, sizeof(h->dir), "/tmp/acervo-cli-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    setenv("HOME", h->dir, 1);
    unsetenv("XDG_CONFIG_HOME");
    unsetenv("ACERVO_SERVER");
    unsetenv("ACERVO_KEY");
    *state = h;
    return 0;
}

static int teardown(void **state)
{
    struct home *h = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", h->dir);
    assert_int_equal(system(cmd), 0);
    free(h);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_config_roundtrip(void **state)
{
    struct home *h = *state;
    struct cli c = {0}, d = {0};
    struct err e = {0};
    struct stat st;
    char path[128];

    /* no file: nothing set, no error */
    assert_int_equal(cli_load(&c, &e), 0);
    assert_null(c.server);
    assert_null(c.key);
    snprintf(path, sizeof(path), "%s/.config/acervo/config", h->dir);
    assert_string_equal(c.config, path);
    c.server = xstrdup("http://127.0.0.1:8080");
    c.key = xstrdup("k1");
    assert_int_equal(cli_save(&c, &e), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/.config/acervo", h->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(cli_load(&d, &e), 0);
    assert_string_equal(d.server, "http://127.0.0.1:8080");
    assert_string_equal(d.key, "k1");
    cli_release(&c);
    cli_release(&d);
}

static void test_config_precedence(void **state)
{
    struct home *h = *state;
    struct cli c = {0};
    struct err e = {0};
    char path[128];

    snprintf(path, sizeof(path), "%s/.config", h->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/.config/acervo", h->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/.config/acervo/config", h->dir);
    write_file(path,
               "# comment\n  server =  http://files:1/// \nkey=from-file\r\nother = x\nnoeq\n");
    assert_int_equal(cli_load(&c, &e), 0);
    assert_string_equal(c.server, "http://files:1"); /* trailing slashes go */
    assert_string_equal(c.key, "from-file");
    cli_release(&c);

    setenv("ACERVO_KEY", "from-env", 1);
    assert_int_equal(cli_load(&c, &e), 0);
    assert_string_equal(c.key, "from-env");
    cli_release(&c);

    c.key = xstrdup("from-flag");
    c.server = xstrdup("https://flag/");
    assert_int_equal(cli_load(&c, &e), 0);
    assert_string_equal(c.key, "from-flag");
    assert_string_equal(c.server, "https://flag");
    cli_release(&c);
    unsetenv("ACERVO_KEY");

    /* XDG_CONFIG_HOME moves the file */
    setenv("XDG_CONFIG_HOME", h->dir, 1);
    assert_int_equal(cli_load(&c, &e), 0);
    snprintf(path, sizeof(path), "%s/acervo/config", h->dir);
    assert_string_equal(c.config, path);
    assert_null(c.key);
    cli_release(&c);
    unsetenv("XDG_CONFIG_HOME");

    setenv("ACERVO_SERVER", "ftp://nope", 1);
    assert_int_equal(cli_load(&c, &e), -1);
    assert_int_equal(e.code, ERR_INVALID);
    assert_non_null(strstr(e.msg, "not an http:// or https:// URL"));
    cli_release(&c);
    unsetenv("ACERVO_SERVER");
}

static void test_query_encoding(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    buf_adds(&b, "/api/v1/assets", NULL);
    assert_int_equal(cli_query_add(&b, "q", "a b&c=ñ/~", NULL), 0);
    assert_int_equal(cli_query_add(&b, "type", "video", NULL), 0);
    assert_string_equal(b.buf, "/api/v1/assets?q=a%20b%26c%3D%C3%B1%2F~&type=video");
    buf_release(&b);
}

static void test_errors_and_exit_codes(void **state)
{
    static const struct {
        long status;
        enum cli_exit exit;
    } map[] = {{400, CLI_REFUSED}, {401, CLI_AUTH},    {403, CLI_AUTH},    {404, CLI_NOTFOUND},
               {409, CLI_REFUSED}, {413, CLI_REFUSED}, {416, CLI_REFUSED}, {500, CLI_SERVER},
               {503, CLI_SERVER},  {418, CLI_REFUSED}, {422, CLI_REFUSED}};
    struct cli_resp r;
    struct err e = {0};

    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(map); i++) {
        memset(&r, 0, sizeof(r));
        buf_init(&r.body, 0);
        r.status = map[i].status;
        assert_int_equal(cli_fail_response(&r, "GET /x", &e), -1);
        assert_int_equal(cli_exit_code(&e), map[i].exit);
        buf_release(&r.body);
    }
    /* a create's key refused for another request is told from other refusals */
    memset(&r, 0, sizeof(r));
    buf_init(&r.body, 0);
    r.status = 422;
    cli_fail_response(&r, "POST /api/v1/assets", &e);
    assert_int_equal(e.code, ERR_UNPROCESSABLE);
    buf_release(&r.body);
    /* the problem's detail, else its title, else the status */
    memset(&r, 0, sizeof(r));
    buf_init(&r.body, 0);
    r.status = 409;
    buf_adds(&r.body,
             "{\"title\":\"Conflict\",\"status\":409,\"detail\":\"the asset is not uploading\"}",
             NULL);
    cli_fail_response(&r, "POST /api/v1/assets/x/complete", &e);
    assert_string_equal(e.msg, "POST /api/v1/assets/x/complete: the asset is not uploading");
    buf_reset(&r.body);
    buf_adds(&r.body, "{\"title\":\"Not Found\"}", NULL);
    r.status = 404;
    cli_fail_response(&r, "GET /y", &e);
    assert_string_equal(e.msg, "GET /y: Not Found");
    buf_reset(&r.body);
    buf_adds(&r.body, "<html>bad gateway</html>", NULL);
    r.status = 502;
    cli_fail_response(&r, "GET /z", &e);
    assert_string_equal(e.msg, "GET /z: the server answered HTTP 502");
    assert_int_equal(cli_exit_code(&e), CLI_SERVER);
    buf_release(&r.body);

    err_set(&e, ERR_NETWORK, "x");
    assert_int_equal(cli_exit_code(&e), CLI_NETWORK);
    err_set(&e, ERR_IO, "x");
    assert_int_equal(cli_exit_code(&e), CLI_LOCAL);
    err_set(&e, ERR_INTERNAL, "x");
    assert_int_equal(cli_exit_code(&e), CLI_FAILED);
    assert_string_equal(err_code_name(ERR_NETWORK), "network");
}

static void test_args(void **state)
{
    struct err e = {0};
    json_t *meta = NULL;
    long v = 0;

    (void)state;
    assert_int_equal(cli__parse_long("42", 1, 100, &v), 0);
    assert_int_equal(v, 42);
    assert_int_equal(cli__parse_long("0", 1, 100, &v), -1);
    assert_int_equal(cli__parse_long("4x", 1, 100, &v), -1);
    assert_int_equal(cli__parse_long("", 1, 100, &v), -1);
    assert_int_equal(cli__parse_long("99999999999999999999", 1, 100, &v), -1);
    assert_int_equal(cli__meta_add(&meta, "program=Hoy = noticias", &e), 0);
    assert_string_equal(json_string_value(json_object_get(meta, "program")), "Hoy = noticias");
    assert_int_equal(cli__meta_add(&meta, "=x", &e), -1);
    assert_int_equal(cli__meta_add(&meta, "nokey", &e), -1);
    assert_non_null(strstr(e.msg, "KEY=VALUE"));
    json_decref(meta);
    assert_int_equal(cli__usage(&e, "acervo show ID"), CLI__USAGE_RC);
    assert_string_equal(e.msg, "usage: acervo show ID");
}

static void test_upload_helpers(void **state)
{
    const char *type = "x";
    int64_t v = 0;

    (void)state;
    assert_string_equal(mime_of("/media/PLENO.MXF", &type), "application/mxf");
    assert_string_equal(type, "video");
    assert_string_equal(mime_of("a.b.wav", &type), "audio/wav");
    assert_string_equal(type, "audio");
    assert_string_equal(mime_of("noext", &type), "application/octet-stream");
    assert_null(type);
    assert_true(
        etag_is("\"0cc175b9c0f1b6a831c399e269772661\"", "0cc175b9c0f1b6a831c399e269772661"));
    assert_true(etag_is("0CC175B9C0F1B6A831C399E269772661", "0cc175b9c0f1b6a831c399e269772661"));
    assert_false(
        etag_is("\"0cc175b9c0f1b6a831c399e269772661-2\"", "0cc175b9c0f1b6a831c399e269772661"));
    assert_false(etag_is("\"\"", "0cc175b9c0f1b6a831c399e269772661"));
    assert_int_equal(cli__parse_size("50M", &v), 0);
    assert_int_equal(v, 50 << 20);
    assert_int_equal(cli__parse_size("1.5g", &v), 0);
    assert_int_equal(v, 3LL << 29);
    assert_int_equal(cli__parse_size("64k", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(cli__parse_size("1000", &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(cli__parse_size("fast", &v), -1);
    assert_int_equal(cli__parse_size("0", &v), -1);
    assert_int_equal(cli__parse_size("5MB", &v), -1);
}

/* the state file: a torn or foreign file means starting over, part lines are checked */
static void test_upload_state(void **state)
{
    struct home *h = *state;
    struct up u = {.fd = -1};
    char path[128], id[37];
    int64_t ps = 0;
    int n = 0;

    snprintf(path, sizeof(path), "%s/state", h->dir);
    u.state = path;
    assert_int_equal(state_read(&u, id, &ps, &n), 0); /* none */
    write_file(path, "acervo-upload 1 0190aaaa-0000-7000-8000-00000000000a 5242880 3\n"
                     "2 0cc175b9c0f1b6a831c399e269772661\n9 0cc175b9c0f1b6a831c399e269772661\n"
                     "1 short\n3 92eb5ffee6ae2fec3ad71c777531578f");
    assert_int_equal(state_read(&u, id, &ps, &n), 1);
    assert_string_equal(id, "0190aaaa-0000-7000-8000-00000000000a");
    assert_int_equal(ps, 5242880);
    assert_int_equal(n, 3);
    assert_string_equal(u.parts[1].md5, "0cc175b9c0f1b6a831c399e269772661");
    assert_string_equal(u.parts[0].md5, "");                                 /* malformed */
    assert_string_equal(u.parts[2].md5, "92eb5ffee6ae2fec3ad71c777531578f"); /* no newline */
    free(u.parts);
    u.parts = NULL;
    write_file(path, "acervo-upload 1 not-an-id 5242880 3\n");
    assert_int_equal(state_read(&u, id, &ps, &n), 0);
    write_file(path, "acervo-upl");
    assert_int_equal(state_read(&u, id, &ps, &n), 0);
    assert_string_equal(id, "");

    /* before the asset: the create's Idempotency-Key */
    write_file(path, "acervo-upload-key 1 acervo-0123456789abcdef0123456789abcdef\n");
    assert_int_equal(state_read(&u, id, &ps, &n), 2);
    assert_string_equal(u.idem, "acervo-0123456789abcdef0123456789abcdef");
    memset(u.idem, 0, sizeof(u.idem));
    write_file(path, "acervo-upload-key 1 acervo-0123\n"); /* torn */
    assert_int_equal(state_read(&u, id, &ps, &n), 0);
    write_file(path, "acervo-upload-key 1 other-0123456789abcdef0123456789abcdef\n");
    assert_int_equal(state_read(&u, id, &ps, &n), 0);
    assert_string_equal(u.idem, "");
}

/* the backoff of transfers and calls: 0.5 s doubling to 30 s */
static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(cli_backoff_ms(0), 500);
    assert_int_equal(cli_backoff_ms(1), 500);
    assert_int_equal(cli_backoff_ms(2), 1000);
    assert_int_equal(cli_backoff_ms(6), 16000);
    assert_int_equal(cli_backoff_ms(7), 30000);
    assert_int_equal(cli_backoff_ms(100), 30000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_precedence, setup, teardown),
        cmocka_unit_test(test_query_encoding),
        cmocka_unit_test(test_errors_and_exit_codes),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_upload_helpers),
        cmocka_unit_test_setup_teardown(test_upload_state, setup, teardown),
        cmocka_unit_test(test_backoff),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
