/*
 * upload: acervo upload FILE... - multipart to the presigned part URLs, parts in parallel
 * (a libcurl multi), each part's MD5 checked against the ETag the server answers, and
 * resumable: a state file per file identity (server, path, device, inode, size, mtime)
 * names the asset being uploaded and the MD5 of each part sent, so the same command run
 * again asks the server which parts it has (GET /api/v1/assets/{id}/upload) and sends only
 * the others. Memory is constant: parts are read from the file as libcurl sends them.
 * See docs/internals/cli.md.
 */
#include "cli/cli_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LOW_SPEED_BYTES 1024L /* a part slower than this ... */
#define LOW_SPEED_S     60L   /* ... for this long has stalled: retried */

struct up_part {
    int n;
    int64_t off, len;
    char *url;
    char md5[33]; /* hex, once the server has it */
    int done, running, attempts;
    int64_t retry_at; /* ms */
};

struct up_xfer {
    struct up_part *p;
    int fd;
    CURL *h;
    struct curl_slist *hdrs;
    int64_t pos, left;
    EVP_MD_CTX *md;
    char etag[160];
    char errbuf[CURL_ERROR_SIZE];
    int read_errno;
};

struct up {
    struct cli *c;
    const char *path;
    int fd;
    int64_t size;
    char asset_id[37];
    char idem[48]; /* the Idempotency-Key of the create: "acervo-" and 32 hex digits */
    int64_t part_size;
    int nparts;
    struct up_part *parts;
    char *state;         /* the state file's path */
    int parallel;        /* parts at once */
    int64_t rate;        /* bytes/s for the whole file (0: no limit), shared by the parts */
    int64_t sent;        /* bytes of parts done */
    struct cli_bar *bar; /* on a terminal */
    int refresh;         /* a part URL expired: fresh ones before the next parts */
};

/* ---- the file and its state ----------------------------------------------------------- */

static const struct {
    const char *ext, *mime, *type;
} mimes[] = {
    {".mp4", "video/mp4", "video"},        {".m4v", "video/mp4", "video"},
    {".mov", "video/quicktime", "video"},  {".mxf", "application/mxf", "video"},
    {".mkv", "video/x-matroska", "video"}, {".webm", "video/webm", "video"},
    {".avi", "video/x-msvideo", "video"},  {".ts", "video/mp2t", "video"},
    {".mpg", "video/mpeg", "video"},       {".wav", "audio/wav", "audio"},
    {".mp3", "audio/mpeg", "audio"},       {".aac", "audio/aac", "audio"},
    {".m4a", "audio/mp4", "audio"},        {".flac", "audio/flac", "audio"},
    {".ogg", "audio/ogg", "audio"},        {".jpg", "image/jpeg", "image"},
    {".jpeg", "image/jpeg", "image"},      {".png", "image/png", "image"},
    {".tif", "image/tiff", "image"},       {".tiff", "image/tiff", "image"},
    {".webp", "image/webp", "image"},      {".heic", "image/heic", "image"},
    {".gif", "image/gif", "image"},
};

/*
 * The MIME type and asset type from the name (NULL type: unknown, the server is asked to
 * tell from the MIME type, or --type says). The server finds the real type from the
 * content anyway.
 */
static const char *mime_of(const char *name, const char **type)
{
    const char *dot = strrchr(name, '.');

    for (size_t i = 0; dot && i < ARRAY_LEN(mimes); i++)
        if (strcasecmp(dot, mimes[i].ext) == 0) {
            *type = mimes[i].type;
            return mimes[i].mime;
        }
    *type = NULL;
    return "application/octet-stream";
}

/* the state file of this file on this server: a hash of what identifies them */
static char *state_path(const struct cli *c, const char *real, const struct stat *st)
{
    char id[1200], hex[65];
    struct buf b;

    (void)snprintf(id, sizeof(id), "%s\n%s\n%llu %llu %lld %lld.%09ld", c->server, real,
                   (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
                   (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    util_sha256_hex(id, strlen(id), hex);
    buf_init(&b, 0);
    buf_addf(&b, NULL, "%s/upload-%.32s", c->state_dir, hex);
    return buf_detach(&b, NULL);
}

char *cli__upload_state(const struct cli *c, const char *path)
{
    char real[PATH_MAX];
    struct stat st;

    if (!realpath(path, real) || stat(real, &st) < 0)
        return NULL;
    return state_path(c, real, &st);
}

/*
 * The state file: "acervo-upload 1 ASSET PART_SIZE PARTS" then one "N MD5" line per part
 * the server answered for, appended as they come (a line lost in a crash only costs that
 * part's MD5 being computed again from the file). Before the asset exists it holds
 * "acervo-upload-key 1 KEY": the Idempotency-Key the create is sent with, so that a run
 * stopped before it heard the answer gets the same asset from the next one.
 *
 * Returns 1 (an asset), 2 (a key only, in u->idem) or 0 (none, or unreadable: start over).
 */
static int state_read(struct up *u, char asset_id[37], int64_t *part_size, int *nparts)
{
    FILE *f = fopen(u->state, "r");
    char line[256], key[48];
    long long ps = 0;
    int n = 0;

    asset_id[0] = '\0';
    if (!f)
        return 0;
    if (!fgets(line, sizeof(line), f)) {
        fclose(f);
        return 0;
    }
    if (sscanf(line, "acervo-upload-key 1 %47s", key) == 1) {
        fclose(f);
        if (strncmp(key, "acervo-", 7) != 0 || strlen(key) != 39 ||
            strspn(key + 7, "0123456789abcdef") != 32)
            return 0;
        memcpy(u->idem, key, sizeof(u->idem));
        return 2;
    }
    if (sscanf(line, "acervo-upload 1 %36s %lld %d", asset_id, &ps, &n) != 3 ||
        !util_uuid_valid(asset_id) || ps <= 0 || n <= 0) {
        fclose(f);
        asset_id[0] = '\0';
        return 0;
    }
    *part_size = ps;
    *nparts = n;
    u->nparts = n;
    u->parts = xcalloc((size_t)n, sizeof(*u->parts));
    while (fgets(line, sizeof(line), f)) {
        int k;
        char md5[40];

        if (sscanf(line, "%d %39s", &k, md5) == 2 && k >= 1 && k <= n && strlen(md5) == 32)
            memcpy(u->parts[k - 1].md5, md5, 33);
    }
    fclose(f);
    return 1;
}

static int state_append(struct up *u, const char *line, struct err *err)
{
    int fd = open(u->state, O_WRONLY | O_CREAT | O_CLOEXEC | O_APPEND, 0600);

    if (fd < 0)
        return err_errno(err, ERR_IO, "cannot write the upload state %s", u->state);
    if (util_write_all(fd, line, strlen(line), err) < 0) {
        close(fd);
        return err_set(err, ERR_IO, "cannot write the upload state %s", u->state);
    }
    close(fd);
    return 0;
}

void cli__upload_state_remove(const char *state)
{
    size_t n = strlen(state) + 8;
    char *tmp = xmalloc(n);

    (void)snprintf(tmp, n, "%s.new", state);
    unlink(tmp); /* a replace a stop cut short */
    unlink(state);
    free(tmp);
}

/* Replaces the state with line, durably: a crash leaves the old state or the new one. */
static int state_replace(struct up *u, const char *line, struct err *err)
{
    size_t n = strlen(u->state) + 8;
    char *tmp = xmalloc(n);
    int fd, rc = -1;

    (void)snprintf(tmp, n, "%s.new", u->state);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err_errno(err, ERR_IO, "cannot write the upload state %s", tmp);
        goto out;
    }
    if (util_write_all(fd, line, strlen(line), err) < 0 || fsync(fd) < 0 ||
        rename(tmp, u->state) < 0) {
        err_errno(err, ERR_IO, "cannot write the upload state %s", u->state);
        close(fd);
        unlink(tmp);
        goto out;
    }
    close(fd);
    fd = open(u->c->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { /* the rename itself, through a power loss */
        (void)fsync(fd);
        close(fd);
    }
    rc = 0;
out:
    free(tmp);
    return rc;
}

/* ---- parts --------------------------------------------------------------------------- */

static void parts_layout(struct up *u)
{
    if (!u->parts)
        u->parts = xcalloc((size_t)u->nparts, sizeof(*u->parts));
    for (int i = 0; i < u->nparts; i++) {
        struct up_part *p = &u->parts[i];

        p->n = i + 1;
        p->off = (int64_t)i * u->part_size;
        p->len = i == u->nparts - 1 ? u->size - p->off : u->part_size;
    }
}

/* the URLs of parts the server does not have, from a create or a resume answer */
static void parts_urls(struct up *u, const json_t *list)
{
    size_t i;
    json_t *v;

    json_array_foreach(list, i, v)
    {
        json_int_t n = json_integer_value(json_object_get(v, "partNumber"));
        const char *url = json_string_value(json_object_get(v, "url"));

        if (n >= 1 && n <= u->nparts && url) {
            free(u->parts[n - 1].url);
            u->parts[n - 1].url = xstrdup(url);
        }
    }
}

static int part_md5(struct up *u, struct up_part *p, char out[33], struct err *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char buf[1 << 16], d[16];
    int64_t pos = p->off, left = p->len;

    if (!md || EVP_DigestInit_ex(md, EVP_md5(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return err_set(err, ERR_INTERNAL, "MD5 is not available");
    }
    while (left > 0) {
        ssize_t r =
            pread(u->fd, buf, left < (int64_t)sizeof(buf) ? (size_t)left : sizeof(buf), (off_t)pos);

        if (r <= 0) {
            EVP_MD_CTX_free(md);
            return r < 0 ? err_errno(err, ERR_IO, "cannot read %s", u->path)
                         : err_set(err, ERR_IO, "%s got shorter while uploading", u->path);
        }
        EVP_DigestUpdate(md, buf, (size_t)r);
        pos += r;
        left -= r;
    }
    EVP_DigestFinal_ex(md, d, NULL);
    EVP_MD_CTX_free(md);
    util_hex(d, 16, out);
    return 0;
}

/* an ETag is the part's MD5, quoted */
static int etag_is(const char *etag, const char *md5)
{
    size_t n = strlen(etag);

    if (n >= 2 && etag[0] == '"' && etag[n - 1] == '"')
        return n - 2 == 32 && strncasecmp(etag + 1, md5, 32) == 0;
    return strcasecmp(etag, md5) == 0;
}

/*
 * Resuming: what the server has. A part it has whose ETag is the MD5 we recorded (or, not
 * recorded, of the file's bytes now) is done; any other is sent again.
 */
static int parts_received(struct up *u, const json_t *received, struct err *err)
{
    size_t i;
    json_t *v;

    json_array_foreach(received, i, v)
    {
        json_int_t n = json_integer_value(json_object_get(v, "partNumber"));
        const char *etag = json_string_value(json_object_get(v, "etag"));
        struct up_part *p;

        if (n < 1 || n > u->nparts || !etag)
            continue;
        p = &u->parts[n - 1];
        if (!p->md5[0] && part_md5(u, p, p->md5, err) < 0)
            return -1;
        if (json_integer_value(json_object_get(v, "size")) == p->len && etag_is(etag, p->md5)) {
            p->done = 1;
            u->sent += p->len;
        }
    }
    return 0;
}

/* ---- sending parts -------------------------------------------------------------------- */

static size_t on_read(char *out, size_t size, size_t n, void *arg)
{
    struct up_xfer *x = arg;
    size_t want = size * n;
    ssize_t r;

    if (x->left <= 0)
        return 0;
    if ((int64_t)want > x->left)
        want = (size_t)x->left;
    r = pread(x->fd, out, want, (off_t)x->pos);
    if (r <= 0) {
        x->read_errno = r < 0 ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    EVP_DigestUpdate(x->md, out, (size_t)r);
    x->pos += r;
    x->left -= r;
    return (size_t)r;
}

static size_t on_part_header(char *data, size_t size, size_t n, void *arg)
{
    struct up_xfer *x = arg;
    size_t len = size * n;

    if (len > 5 && strncasecmp(data, "etag:", 5) == 0) {
        const char *v = data + 5;
        size_t vn = len - 5;

        while (vn > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vn--;
        }
        while (vn > 0 && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' '))
            vn--;
        if (vn >= sizeof(x->etag))
            vn = sizeof(x->etag) - 1;
        memcpy(x->etag, v, vn);
        x->etag[vn] = '\0';
    }
    return len;
}

static size_t on_discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

static void *xfer_start(void *ctx, CURLM *m, int i)
{
    struct up *u = ctx;
    struct up_part *p = &u->parts[i];
    struct up_xfer *x = xcalloc(1, sizeof(*x));

    x->p = p;
    x->fd = u->fd;
    x->pos = p->off;
    x->left = p->len;
    x->md = EVP_MD_CTX_new();
    EVP_DigestInit_ex(x->md, EVP_md5(), NULL);
    x->h = curl_easy_init();
    x->hdrs = curl_slist_append(NULL, "Expect:");
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type:");
    curl_easy_setopt(x->h, CURLOPT_URL, p->url);
    curl_easy_setopt(x->h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(x->h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)p->len);
    curl_easy_setopt(x->h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(x->h, CURLOPT_READDATA, x);
    curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, on_part_header);
    curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_discard);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, LOW_SPEED_BYTES);
    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME, LOW_SPEED_S);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "acervo/" ACERVO_VERSION);
    curl_easy_setopt(x->h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    if (u->rate > 0)
        curl_easy_setopt(x->h, CURLOPT_MAX_SEND_SPEED_LARGE,
                         (curl_off_t)(u->rate / u->parallel > 0 ? u->rate / u->parallel : 1));
    p->running = 1;
    p->attempts++;
    curl_multi_add_handle(m, x->h);
    return x;
}

static void xfer_free(void *ctx, CURLM *m, void *xv)
{
    struct up_xfer *x = xv;

    (void)ctx;
    x->p->running = 0;
    curl_multi_remove_handle(m, x->h);
    curl_easy_cleanup(x->h);
    curl_slist_free_all(x->hdrs);
    EVP_MD_CTX_free(x->md);
    free(x);
}

/* fresh URLs for the parts not done (they are valid 15 minutes) */
static int urls_refresh(struct up *u, struct err *err)
{
    char path[128];
    json_t *st = NULL;

    (void)snprintf(path, sizeof(path), "/api/v1/assets/%s/upload", u->asset_id);
    if (cli_call_opt(u->c, "GET", path, NULL, &cli_call_retried, &st, err) < 0)
        return -1;
    parts_urls(u, json_object_get(st, "missing"));
    json_decref(st);
    return 0;
}

/*
 * One finished transfer: done when the server answered 200 with the part's MD5 as ETag.
 * Network failures, 5xx, 408 and 429 come back later (backoff); an expired URL (403) comes
 * back at once with a fresh one; anything else fails the upload.
 */
static int xfer_done(void *ctx, void *xv, CURLcode rc, struct err *err)
{
    struct up *u = ctx;
    struct up_xfer *x = xv;
    struct up_part *p = x->p;
    long status = 0;
    unsigned char d[16];
    char md5[33], line[64];
    int transient;

    p->running = 0;
    if (x->read_errno) {
        errno = x->read_errno;
        return err_errno(err, ERR_IO, "cannot read %s", u->path);
    }
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    EVP_DigestFinal_ex(x->md, d, NULL);
    util_hex(d, 16, md5);
    if (rc == CURLE_OK && status == 200) {
        if (!etag_is(x->etag, md5))
            return err_set(err, ERR_BACKEND,
                           "part %d of %s: the server's ETag %s is not the MD5 of what was sent "
                           "(%s)",
                           p->n, u->path, x->etag, md5);
        memcpy(p->md5, md5, sizeof(md5));
        p->done = 1;
        u->sent += p->len;
        (void)snprintf(line, sizeof(line), "%d %s\n", p->n, md5);
        return state_append(u, line, err);
    }
    if (rc == CURLE_OK && status == 403 && p->attempts < CLI_RETRY_MAX) {
        u->refresh = 1; /* an expired signature: new URLs, and again */
        return 0;
    }
    transient = rc != CURLE_OK || status >= 500 || status == 408 || status == 429;
    if (!transient)
        return err_set(err, status == 413 ? ERR_LIMIT : ERR_INVALID,
                       "part %d of %s: the server refused it (HTTP %ld)", p->n, u->path, status);
    if (p->attempts >= CLI_RETRY_MAX) {
        if (rc != CURLE_OK)
            return err_set(err, ERR_NETWORK, "part %d of %s failed %d times; the last: %s", p->n,
                           u->path, p->attempts, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
        return err_set(err, ERR_BACKEND, "part %d of %s failed %d times; the last: HTTP %ld", p->n,
                       u->path, p->attempts, status);
    }
    p->retry_at = util_now_ms() + cli_backoff_ms(p->attempts);
    return 0;
}

static int part_state(void *ctx, int i, int64_t now)
{
    struct up *u = ctx;
    struct up_part *p = &u->parts[i];

    if (p->done)
        return CLI_POOL_DONE;
    return p->running || p->retry_at > now || !p->url ? CLI_POOL_WAIT : CLI_POOL_READY;
}

static int64_t xfer_moved(void *xv)
{
    struct up_xfer *x = xv;

    return x->pos - x->p->off;
}

/* fresh URLs when an expired one was refused, or when parts wait for one; the bar */
static int parts_turn(void *ctx, int idle, int64_t inflight, struct err *err)
{
    struct up *u = ctx;

    for (int i = 0; idle && !u->refresh && i < u->nparts; i++)
        u->refresh = !u->parts[i].done && !u->parts[i].url;
    if (u->refresh) {
        u->refresh = 0;
        if (urls_refresh(u, err) < 0)
            return -1;
    }
    if (!idle && u->bar)
        cli__bar_show(u->bar, u->sent + inflight, 0);
    return 0;
}

/* sends every part not done, u->parallel at once */
static int parts_send(struct up *u, struct err *err)
{
    const struct cli_pool pool = {
        .ctx = u,
        .n = u->nparts,
        .parallel = u->parallel,
        .stopped = "run the same command again to send the rest",
        .state = part_state,
        .start = xfer_start,
        .finish = xfer_done,
        .release = xfer_free,
        .moved = xfer_moved,
        .turn = parts_turn,
    };

    return cli_pool_run(&pool, err);
}

/* ---- one file -------------------------------------------------------------------------- */

/* an upload the server no longer has (expired, aborted) or already completed */
static int resume(struct up *u, json_t **done, struct err *err)
{
    char path[128];
    json_t *st = NULL;
    struct err e = {0};

    (void)snprintf(path, sizeof(path), "/api/v1/assets/%s/upload", u->asset_id);
    if (cli_call_opt(u->c, "GET", path, NULL, &cli_call_retried, &st, &e) < 0) {
        if (e.code == ERR_NOTFOUND)
            return 0; /* gone: start over */
        if (e.code == ERR_CONFLICT) {
            /* completed before (the run that completed it stopped before saying so) */
            (void)snprintf(path, sizeof(path), "/api/v1/assets/%s", u->asset_id);
            if (cli_call_opt(u->c, "GET", path, NULL, &cli_call_retried, done, err) < 0)
                return -1;
            return 1;
        }
        *err = e;
        return -1;
    }
    if (json_integer_value(json_object_get(st, "partSize")) != u->part_size ||
        json_integer_value(json_object_get(st, "partCount")) != u->nparts) {
        json_decref(st);
        return 0;
    }
    parts_layout(u);
    parts_urls(u, json_object_get(st, "missing"));
    if (parts_received(u, json_object_get(st, "received"), err) < 0) {
        json_decref(st);
        return -1;
    }
    json_decref(st);
    return 2;
}

/* Drops an upload on the server (best effort: what is left expires). */
static void abort_upload(struct cli *c, const char *asset_id)
{
    struct cli_resp gone;
    char path[128];

    (void)snprintf(path, sizeof(path), "/api/v1/assets/%s/upload", asset_id);
    if (cli_http(c, "DELETE", path, NULL, NULL, 0, &gone, NULL) == 0)
        cli_resp_release(&gone);
}

/* A new Idempotency-Key for the create, recorded before the create is sent. */
static int idem_new(struct up *u, struct err *err)
{
    char hex[33], line[96];

    util_token_hex(hex, 16);
    (void)snprintf(u->idem, sizeof(u->idem), "acervo-%s", hex);
    (void)snprintf(line, sizeof(line), "acervo-upload-key 1 %s\n", u->idem);
    return state_replace(u, line, err);
}

/*
 * POST /api/v1/assets under u->idem (made and recorded first when there is none): a create
 * whose answer was lost, in this run (a retry) or in one that was stopped, gets the same
 * asset back. A key the server refuses for this request (the options changed between runs,
 * or the asset it made is past uploading) is dropped for a new one.
 */
static int create(struct up *u, const struct up_opts *o, struct err *err)
{
    const char *base = strrchr(u->path, '/') ? strrchr(u->path, '/') + 1 : u->path;
    const char *type = NULL, *mime = mime_of(base, &type);
    json_t *body = json_pack("{s:s, s:I, s:s}", "filename", base, "size", (json_int_t)u->size,
                             "mime_type", mime);
    json_t *res = NULL, *problem = NULL;
    struct cli_call_opt opt = cli_call_retried;
    char line[128];
    int rc, remembered = u->idem[0] != '\0';

    if (o->type || type)
        json_object_set_new(body, "type", json_string(o->type ? o->type : type));
    if (o->title)
        json_object_set_new(body, "title", json_string(o->title));
    if (o->description)
        json_object_set_new(body, "description", json_string(o->description));
    if (o->tags)
        json_object_set(body, "tags", o->tags);
    if (o->meta)
        json_object_set(body, "editorial_metadata", o->meta);
    if (!remembered && idem_new(u, err) < 0) {
        json_decref(body);
        return -1;
    }
    opt.idempotency_key = u->idem;
    opt.problem = &problem;
    rc = cli_call_opt(u->c, "POST", "/api/v1/assets", body, &opt, &res, err);
    if (rc < 0 && remembered && (err->code == ERR_UNPROCESSABLE || err->code == ERR_CONFLICT)) {
        const char *made = json_string_value(json_object_get(problem, "asset_id"));

        /* asked with other options the last time: what that run made is nobody's */
        if (err->code == ERR_UNPROCESSABLE && made && util_uuid_valid(made))
            abort_upload(u->c, made);
        json_decref(problem);
        problem = NULL;
        rc = idem_new(u, err);
        if (rc == 0)
            rc = cli_call_opt(u->c, "POST", "/api/v1/assets", body, &opt, &res, err);
    }
    json_decref(problem);
    json_decref(body);
    if (rc < 0) {
        /* refused: no asset was made and the key is of no use; else (no answer, 5xx) one
         * may have been, and the next run asks again under the key */
        if (err->code != ERR_NETWORK && err->code != ERR_BACKEND && err->code != ERR_INTERNAL)
            cli__upload_state_remove(u->state);
        return -1;
    }
    {
        const char *id = json_string_value(json_object_get(res, "assetId"));

        (void)snprintf(u->asset_id, sizeof(u->asset_id), "%s", id ? id : "");
    }
    u->part_size = json_integer_value(json_object_get(res, "partSize"));
    u->nparts = (int)json_integer_value(json_object_get(res, "partCount"));
    if (!util_uuid_valid(u->asset_id) || u->part_size <= 0 || u->nparts <= 0) {
        json_decref(res);
        return err_set(err, ERR_BACKEND, "the server's answer to the upload has no asset or parts");
    }
    free(u->parts);
    u->parts = NULL;
    parts_layout(u);
    parts_urls(u, json_object_get(res, "parts"));
    json_decref(res);
    (void)snprintf(line, sizeof(line), "acervo-upload 1 %s %lld %d\n", u->asset_id,
                   (long long)u->part_size, u->nparts);
    return state_replace(u, line, err);
}

static int complete(struct up *u, json_t **out, struct err *err)
{
    json_t *parts = json_array(), *body;
    char path[128];
    int rc;

    for (int i = 0; i < u->nparts; i++)
        json_array_append_new(parts, json_pack("{s:i, s:s++}", "partNumber", u->parts[i].n, "etag",
                                               "\"", u->parts[i].md5, "\""));
    body = json_pack("{s:o}", "parts", parts);
    (void)snprintf(path, sizeof(path), "/api/v1/assets/%s/complete", u->asset_id);
    rc = cli_call_opt(u->c, "POST", path, body, &cli_call_retried, out, err);
    json_decref(body);
    if (rc < 0 && err && err->code == ERR_CONFLICT) {
        /* completed already: an answer lost on the way, then this retry */
        json_t *a = NULL;
        struct err e2 = {0};

        (void)snprintf(path, sizeof(path), "/api/v1/assets/%s", u->asset_id);
        if (cli_call_opt(u->c, "GET", path, NULL, &cli_call_retried, &a, &e2) == 0) {
            const char *st = json_string_value(json_object_get(a, "status"));

            if (st && strcmp(st, "uploading") != 0) {
                *out = a;
                return 0;
            }
        }
        json_decref(a);
    }
    return rc;
}

static void up_release(struct up *u)
{
    for (int i = 0; u->parts && i < u->nparts; i++)
        free(u->parts[i].url);
    free(u->parts);
    free(u->state);
    if (u->fd >= 0)
        close(u->fd);
}

/* uploads one file; *asset the asset as the server has it after completion */
int cli__upload_one(struct cli *c, const char *path, const struct up_opts *o, json_t **asset,
                    struct err *err)
{
    struct up u = {.c = c, .path = path, .fd = -1, .parallel = o->parallel, .rate = o->rate};
    struct cli_bar bar = {0};
    char real[PATH_MAX];
    struct stat st;
    int rc = -1, r;

    *asset = NULL;
    u.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (u.fd < 0 || fstat(u.fd, &st) < 0) {
        err_errno(err, ERR_IO, "cannot read %s", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err_set(err, ERR_IO, "%s is not a regular file", path);
        goto out;
    }
    if (!realpath(path, real)) {
        err_errno(err, ERR_IO, "cannot read %s", path);
        goto out;
    }
    u.size = st.st_size;
    if (cli__private_dir(c->state_dir, err) < 0)
        goto out;
    u.state = state_path(c, real, &st);
    /* an asset recorded: resume it; only a key: the create again, under that key */
    r = state_read(&u, u.asset_id, &u.part_size, &u.nparts);
    r = r == 1 ? resume(&u, asset, err) : 0;
    if (r < 0)
        goto out;
    if (r == 1) { /* completed before */
        if (!o->keep_state)
            cli__upload_state_remove(u.state);
        rc = 0;
        goto out;
    }
    if (r == 0 && create(&u, o, err) < 0)
        goto out;
    if (c->tty) {
        bar.name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        bar.total = u.size;
        bar.base = u.sent;
        bar.started_ms = util_now_ms();
        bar.file_no = o->file_no;
        bar.files = o->files;
        bar.files_before = o->files_before;
        bar.files_total = o->files_total;
        u.bar = &bar;
    }
    if (parts_send(&u, err) < 0)
        goto out;
    if (u.bar)
        cli__bar_show(u.bar, u.sent, 1);
    /* a file written to while it was sent: what the server has is no version of it */
    {
        struct stat now;

        if (fstat(u.fd, &now) < 0 || now.st_size != st.st_size ||
            now.st_mtim.tv_sec != st.st_mtim.tv_sec || now.st_mtim.tv_nsec != st.st_mtim.tv_nsec) {
            abort_upload(c, u.asset_id);
            cli__upload_state_remove(u.state);
            err_set(err, ERR_IO,
                    "%s changed while it was sent; the upload is dropped: send it "
                    "again once it is complete",
                    path);
            goto out;
        }
    }
    if (complete(&u, asset, err) < 0)
        goto out;
    if (!o->keep_state)
        cli__upload_state_remove(u.state);
    rc = 0;
out:
    up_release(&u);
    return rc;
}

int cli__cmd_upload(struct cli *c, int argc, char **argv, struct err *err)
{
    static const char usage[] = "acervo upload FILE... [--type video|audio|image] [--title T] "
                                "[--description D] [--tag T ...] "
                                "[--meta KEY=VALUE ...] [--parallel 1..32] [--limit-rate BYTES/s]";
    struct up_opts o = {.parallel = 4};
    const char **files = xcalloc((size_t)argc + 1, sizeof(*files));
    int64_t *sizes = NULL;
    int nfiles = 0, failed = 0, rc = CLI__USAGE_RC;
    long par = 4;

    for (int k = 1; k < argc; k++) {
        const char *v = k + 1 < argc ? argv[k + 1] : NULL;

        if (strcmp(argv[k], "--") == 0) { /* files only from here on */
            while (++k < argc)
                files[nfiles++] = argv[k];
            break;
        }
        if (argv[k][0] != '-' || strcmp(argv[k], "-") == 0) {
            files[nfiles++] = argv[k];
            continue;
        }
        if (!v)
            goto usage;
        k++;
        if (strcmp(argv[k - 1], "--title") == 0)
            o.title = v;
        else if (strcmp(argv[k - 1], "--type") == 0)
            o.type = v;
        else if (strcmp(argv[k - 1], "--description") == 0)
            o.description = v;
        else if (strcmp(argv[k - 1], "--tag") == 0) {
            if (!o.tags)
                o.tags = json_array();
            json_array_append_new(o.tags, json_string(v));
        } else if (strcmp(argv[k - 1], "--meta") == 0) {
            if (cli__meta_add(&o.meta, v, err) < 0)
                goto out;
        } else if (strcmp(argv[k - 1], "--limit-rate") == 0) {
            if (cli__parse_size(v, &o.rate) < 0)
                goto usage;
        } else if (strcmp(argv[k - 1], "--parallel") == 0) {
            if (cli__parse_long(v, 1, 32, &par) < 0)
                goto usage;
            o.parallel = (int)par;
        } else {
            goto usage;
        }
    }
    if (nfiles == 0)
        goto usage;
    cli__catch_stop();
    rc = 0;
    sizes = xcalloc((size_t)nfiles, sizeof(*sizes));
    o.files = nfiles;
    for (int i = 0; i < nfiles; i++) {
        struct stat st;

        if (stat(files[i], &st) == 0 && S_ISREG(st.st_mode))
            sizes[i] = st.st_size;
        o.files_total += sizes[i];
    }
    for (int i = 0; i < nfiles && !cli__stop; o.files_before += sizes[i], i++) {
        json_t *asset = NULL;
        struct err e = {0};

        o.file_no = i + 1;

        if (cli__upload_one(c, files[i], &o, &asset, &e) < 0) {
            if (nfiles > 1)
                fprintf(stderr, "acervo: %s: %s\n", files[i], e.msg);
            else
                *err = e;
            failed++;
            continue;
        }
        {
            const char *id = json_string_value(json_object_get(asset, "id"));
            const char *status = json_string_value(json_object_get(asset, "status"));

            if (c->json) {
                /* jansson escapes what a file name may hold (quotes, backslashes) */
                json_t *line = json_pack("{s:s?,s:s,s:s}", "file", files[i], "asset_id",
                                         id ? id : "", "status", status ? status : "");
                char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;

                printf("%s\n", text ? text : "{}");
                free(text);
                json_decref(line);
            } else
                printf("%s\n", id ? id : "");
        }
        fflush(stdout);
        json_decref(asset);
    }
    if (failed) {
        /* one file: its error and exit code; several: each said above, and exit 1 */
        if (nfiles > 1)
            err_set(err, ERR_INTERNAL, "%d of %d files were not uploaded", failed, nfiles);
        rc = -1;
    }
    goto out;
usage:
    rc = cli__usage(err, usage);
out:
    free(sizes);
    json_decref(o.tags);
    json_decref(o.meta);
    free(files);
    return rc;
}
