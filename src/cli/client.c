/*
 * client: the REST API over libcurl, and the config file. One easy handle per call: the
 * commands here make a few calls each, and transfers (upload.c, download.c) keep their
 * own handles in a multi.
 */
#include "cli/cli_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BODY_MAX     (64u << 20) /* a JSON response larger than this is refused */
#define CONNECT_S    10L         /* connecting gives up after this */
#define CALL_TIMEOUT 300L        /* and a JSON call after this */

/* ---- configuration ---------------------------------------------------------------------- */

static char *config_dir(void)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    struct buf b;

    buf_init(&b, 0);
    if (xdg && xdg[0] == '/')
        buf_addf(&b, NULL, "%s/acervo", xdg);
    else
        buf_addf(&b, NULL, "%s/.config/acervo", home && home[0] ? home : ".");
    return buf_detach(&b, NULL);
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? xstrdup(v) : NULL;
}

/* "key = value" lines; '#' comments */
static int config_read(struct cli *c, int have_server, int have_key, struct err *err)
{
    FILE *f = fopen(c->config, "r");
    char line[4096];

    if (!f) {
        if (errno == ENOENT)
            return 0;
        return err_errno(err, ERR_IO, "cannot read %s", c->config);
    }
    while (fgets(line, sizeof(line), f)) {
        char *eq = strchr(line, '='), *k = line, *v, *end;

        if (line[strspn(line, " \t")] == '#' || !eq)
            continue;
        *eq = '\0';
        v = eq + 1;
        while (*k == ' ' || *k == '\t')
            k++;
        for (end = eq; end > k && (end[-1] == ' ' || end[-1] == '\t'); end--)
            end[-1] = '\0';
        while (*v == ' ' || *v == '\t')
            v++;
        v[strcspn(v, "\r\n")] = '\0';
        for (end = v + strlen(v); end > v && (end[-1] == ' ' || end[-1] == '\t'); end--)
            end[-1] = '\0';
        if (strcmp(k, "server") == 0 && !have_server)
            set_str(&c->server, v);
        else if (strcmp(k, "key") == 0 && !have_key)
            set_str(&c->key, v);
    }
    fclose(f);
    return 0;
}

int cli_load(struct cli *c, struct err *err)
{
    char *dir = config_dir();
    int have_server = c->server != NULL, have_key = c->key != NULL;
    struct buf b;

    buf_init(&b, 0);
    buf_addf(&b, NULL, "%s/config", dir);
    c->config = buf_detach(&b, NULL);
    buf_addf(&b, NULL, "%s/transfers", dir);
    c->state_dir = buf_detach(&b, NULL);
    free(dir);
    if (!have_server && getenv("ACERVO_SERVER") && getenv("ACERVO_SERVER")[0]) {
        set_str(&c->server, getenv("ACERVO_SERVER"));
        have_server = 1;
    }
    if (!have_key && getenv("ACERVO_KEY") && getenv("ACERVO_KEY")[0]) {
        set_str(&c->key, getenv("ACERVO_KEY"));
        have_key = 1;
    }
    if (config_read(c, have_server, have_key, err) < 0)
        return -1;
    if (c->server) {
        size_t n = strlen(c->server);

        while (n > 0 && c->server[n - 1] == '/')
            c->server[--n] = '\0';
        if (strncmp(c->server, "http://", 7) != 0 && strncmp(c->server, "https://", 8) != 0)
            return err_set(err, ERR_INVALID,
                           "the server '%.200s' is not an http:// or https:// URL", c->server);
    }
    return 0;
}

void cli_release(struct cli *c)
{
    free(c->server);
    free(c->key);
    free(c->config);
    free(c->state_dir);
    memset(c, 0, sizeof(*c));
}

/* the directory (and those above it) made, and readable by its owner only */
int cli__private_dir(const char *path, struct err *err)
{
    if (util_mkdirs(path, err) < 0)
        return -1;
    if (chmod(path, 0700) < 0)
        return err_errno(err, ERR_IO, "cannot make %s private", path);
    return 0;
}

int cli_save(const struct cli *c, struct err *err)
{
    char *dir = xstrdup(c->config), *slash = strrchr(dir, '/');
    struct buf tmp, text;
    int fd = -1, rc = -1;

    if (slash)
        *slash = '\0';
    buf_init(&tmp, 0);
    buf_init(&text, 0);
    if (cli__private_dir(dir, err) < 0)
        goto out;
    buf_addf(&tmp, NULL, "%s.tmp.%ld", c->config, (long)getpid());
    buf_addf(&text, NULL, "# acervo client: written by acervo login\nserver = %s\nkey = %s\n",
             c->server, c->key ? c->key : "");
    fd = open(tmp.buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_errno(err, ERR_IO, "cannot write %s", tmp.buf);
        goto out;
    }
    if (fchmod(fd, 0600) < 0 || util_write_all(fd, text.buf, text.len, err) < 0 || fsync(fd) < 0) {
        if (!err || !err->msg[0])
            err_errno(err, ERR_IO, "cannot write %s", tmp.buf);
        goto out_unlink;
    }
    if (close(fd) < 0) {
        fd = -1;
        err_errno(err, ERR_IO, "cannot write %s", tmp.buf);
        goto out_unlink;
    }
    fd = -1;
    if (rename(tmp.buf, c->config) < 0) {
        err_errno(err, ERR_IO, "cannot write %s", c->config);
        goto out_unlink;
    }
    rc = 0;
    goto out;
out_unlink:
    if (fd >= 0)
        close(fd);
    unlink(tmp.buf);
out:
    buf_release(&tmp);
    buf_release(&text);
    free(dir);
    return rc;
}

/* ---- HTTP ------------------------------------------------------------------------------- */

int cli_global_init(struct err *err)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return err_set(err, ERR_INTERNAL, "libcurl cannot start");
    return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct cli_resp *r = arg;

    if (buf_add(&r->body, data, size * n, NULL) < 0)
        return 0; /* too big: the transfer fails */
    return size * n;
}

/* the network failure, said for a person */
static int net_fail(const struct cli *c, CURLcode rc, const char *detail, struct err *err)
{
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        return err_set(err, ERR_NETWORK, "cannot connect to %s: is acervod running there?",
                       c->server);
    case CURLE_COULDNT_RESOLVE_HOST:
        return err_set(err, ERR_NETWORK, "cannot resolve the server's host in %s", c->server);
    case CURLE_OPERATION_TIMEDOUT:
        return err_set(err, ERR_NETWORK, "%s did not answer in time", c->server);
    case CURLE_WRITE_ERROR:
        return err_set(err, ERR_NETWORK, "the server's answer was too large");
    default:
        return err_set(err, ERR_NETWORK, "the exchange with %s failed: %s", c->server,
                       detail && detail[0] ? detail : curl_easy_strerror(rc));
    }
}

/* cli_http, with one more request header line (NULL: none) */
static int exchange(const struct cli *c, const char *method, const char *path,
                    const char *content_type, const char *extra, const void *body, size_t len,
                    struct cli_resp *r, struct err *err)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct buf url, line;
    CURLcode rc;
    int own = path[0] == '/';

    memset(r, 0, sizeof(*r));
    buf_init(&r->body, BODY_MAX);
    if (!h)
        return err_set(err, ERR_INTERNAL, "libcurl cannot make a handle");
    if (own && !c->server) {
        curl_easy_cleanup(h);
        return err_set(err, ERR_UNAUTH, "no server: run acervo login URL first");
    }
    buf_init(&url, 0);
    buf_init(&line, 0);
    if (own)
        buf_addf(&url, NULL, "%s%s", c->server, path);
    else
        buf_adds(&url, path, NULL);
    if (own && c->key) {
        buf_addf(&line, NULL, "Authorization: Bearer %s", c->key);
        hdrs = curl_slist_append(hdrs, line.buf);
    }
    if (content_type) {
        buf_reset(&line);
        buf_addf(&line, NULL, "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, line.buf);
    }
    if (extra)
        hdrs = curl_slist_append(hdrs, extra);
    hdrs = curl_slist_append(hdrs, "Expect:");
    curl_easy_setopt(h, CURLOPT_URL, url.buf);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, CALL_TIMEOUT);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "acervo/" ACERVO_VERSION);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
        strcmp(method, "PATCH") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
    }
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK) {
        curl_off_t cl = -1;

        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        r->length = (int64_t)cl;
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    buf_release(&url);
    buf_release(&line);
    if (rc != CURLE_OK) {
        buf_release(&r->body);
        return net_fail(c, rc, errbuf, err);
    }
    return 0;
}

int cli_http(const struct cli *c, const char *method, const char *path, const char *content_type,
             const void *body, size_t len, struct cli_resp *r, struct err *err)
{
    return exchange(c, method, path, content_type, NULL, body, len, r, err);
}

void cli_resp_release(struct cli_resp *r)
{
    buf_release(&r->body);
}

static enum err_code status_class(long status)
{
    switch (status) {
    case 400:
        return ERR_INVALID;
    case 401:
        return ERR_UNAUTH;
    case 403:
        return ERR_DENIED;
    case 404:
        return ERR_NOTFOUND;
    case 405:
        return ERR_METHOD;
    case 409:
        return ERR_CONFLICT;
    case 410:
        return ERR_GONE;
    case 412:
        return ERR_PRECONDITION;
    case 413:
        return ERR_LIMIT;
    case 415:
        return ERR_MEDIA_TYPE;
    case 416:
        return ERR_RANGE;
    case 422:
        return ERR_UNPROCESSABLE;
    case 431:
        return ERR_HEADERS;
    default:
        return status >= 500 ? ERR_BACKEND : ERR_INVALID;
    }
}

int cli_fail_response(const struct cli_resp *r, const char *what, struct err *err)
{
    enum err_code code = status_class(r->status);
    json_t *j = json_loadb(r->body.buf, r->body.len, 0, NULL);
    const char *detail = json_string_value(json_object_get(j, "detail"));
    const char *title = json_string_value(json_object_get(j, "title"));
    const char *msg = detail && detail[0] ? detail : title && title[0] ? title : NULL;

    if (r->status == 401)
        err_set(err, code, "%s: the server does not accept the key%s%s (acervo login)", what,
                msg ? ": " : "", msg ? msg : "");
    else if (msg)
        err_set(err, code, "%s: %s", what, msg);
    else
        err_set(err, code, "%s: the server answered HTTP %ld", what, r->status);
    json_decref(j);
    return -1;
}

const struct cli_call_opt cli_call_retried = {.attempts = CLI_RETRY_MAX};

int64_t cli_backoff_ms(int failed)
{
    int shift = failed <= 1 ? 0 : failed - 1 < 6 ? failed - 1 : 6;
    int64_t wait = INT64_C(500) << shift;

    return wait < 30000 ? wait : 30000;
}

/* One try: 0 with *out, or -1 with err and *status (0: no answer came). */
static int call_once(const struct cli *c, const char *method, const char *path, const char *text,
                     const char *extra, long *status, json_t **out, json_t **problem,
                     struct err *err)
{
    struct cli_resp r;

    *out = NULL;
    *status = 0;
    if (exchange(c, method, path, text ? "application/json" : NULL, extra, text,
                 text ? strlen(text) : 0, &r, err) < 0)
        return -1;
    *status = r.status;
    if (r.status < 200 || r.status > 299) {
        char what[96];

        (void)snprintf(what, sizeof(what), "%s %s", method, path);
        what[strcspn(what, "?")] = '\0';
        cli_fail_response(&r, what, err);
        if (problem)
            *problem = json_loadb(r.body.buf, r.body.len, 0, NULL);
        cli_resp_release(&r);
        return -1;
    }
    if (r.body.len > 0) {
        json_error_t je;

        *out = json_loadb(r.body.buf, r.body.len, 0, &je);
        if (!*out) {
            cli_resp_release(&r);
            return err_set(err, ERR_BACKEND, "the server's answer is not JSON: %s", je.text);
        }
    }
    cli_resp_release(&r);
    return 0;
}

int cli_call_opt(const struct cli *c, const char *method, const char *path, const json_t *body,
                 const struct cli_call_opt *o, json_t **out, struct err *err)
{
    char *text = NULL, *extra = NULL;
    int attempts = o && o->attempts > 1 ? o->attempts : 1, rc;
    long status;

    *out = NULL;
    if (o && o->problem)
        *o->problem = NULL;
    if (!c->key)
        return err_set(err, ERR_UNAUTH, "not logged in: run acervo login URL first");
    text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (o && o->idempotency_key) {
        size_t n = strlen(o->idempotency_key) + 20;

        extra = xmalloc(n);
        (void)snprintf(extra, n, "Idempotency-Key: \"%s\"", o->idempotency_key);
    }
    for (int tried = 1;; tried++) {
        int64_t wait;

        if (o && o->problem) {
            json_decref(*o->problem);
            *o->problem = NULL;
        }
        rc = call_once(c, method, path, text, extra, &status, out, o ? o->problem : NULL, err);
        if (rc == 0 || tried >= attempts ||
            !(status == 0 || status >= 500 || status == 408 || status == 429))
            break;
        wait = cli_backoff_ms(tried);
        /* an answer's message names the call already; no answer's does not */
        (void)fprintf(stderr, "acervo: %s%s%s%s%s; trying again in %.1f s (%d of %d)\n",
                      status ? "" : method, status ? "" : " ", status ? "" : path,
                      status ? "" : ": ", err->msg, (double)wait / 1000.0, tried + 1, attempts);
        for (int64_t slept = 0; slept < wait && !cli__stop; slept += 100)
            usleep(100000);
        if (cli__stop)
            break; /* Ctrl-C: the caller sees the last failure */
    }
    free(extra);
    free(text);
    return rc;
}

int cli_call(const struct cli *c, const char *method, const char *path, const json_t *body,
             json_t **out, struct err *err)
{
    return cli_call_opt(c, method, path, body, NULL, out, err);
}

enum cli_exit cli_exit_code(const struct err *err)
{
    switch (err->code) {
    case ERR_OK:
        return CLI_OK;
    case ERR_UNAUTH:
    case ERR_DENIED:
        return CLI_AUTH;
    case ERR_NOTFOUND:
        return CLI_NOTFOUND;
    case ERR_NETWORK:
        return CLI_NETWORK;
    case ERR_BACKEND:
        return CLI_SERVER;
    case ERR_IO:
        return CLI_LOCAL;
    case ERR_INTERNAL:
        return CLI_FAILED;
    default:
        return CLI_REFUSED;
    }
}

int cli_query_add(struct buf *b, const char *name, const char *value, struct err *err)
{
    static const char hex[] = "0123456789ABCDEF";

    if (buf_adds(b, strchr(b->buf, '?') ? "&" : "?", err) < 0 || buf_adds(b, name, err) < 0 ||
        buf_adds(b, "=", err) < 0)
        return -1;
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        int plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~';

        if (buf_add(b, plain ? (const char *)p : enc, plain ? 1 : 3, err) < 0)
            return -1;
    }
    return 0;
}
