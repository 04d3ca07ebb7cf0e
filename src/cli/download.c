/*
 * download: acervo download ID [--rendition NAME] [-o PATH] - ranged GETs in parallel (a
 * libcurl multi) written in place into PATH.part, resumable: PATH.part.acervo records the
 * chunks written, so a run after any stop fetches only the others. A thread hashes the
 * file as its written prefix grows; the master's SHA-256 is checked at the end, then
 * PATH.part becomes PATH.
 * Memory is constant. See docs/internals/cli.md.
 */
#include "cli/cli_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (16 << 20) /* bytes a ranged GET asks for */

struct dl_chunk {
    int64_t off, len;
    int done, running, attempts;
    int64_t retry_at;
};

struct dl_xfer {
    struct dl_chunk *k;
    int fd;
    int64_t pos, end;
    int write_errno;
    CURL *h;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
};

/*
 * The SHA-256 of the file, computed by a thread that follows the ranges written in order
 * (reading them back from the page cache) while later ones are still coming.
 */
struct dl_hash {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, failed, running;
    char hex[65];
};

struct dl {
    struct cli *c;
    struct dl_hash hash;
    char url[512];   /* path under the server */
    char sha256[65]; /* the master's, or "" (a rendition) */
    int64_t size;
    int fd;
    char *part, *state; /* PATH.part, PATH.part.acervo */
    struct dl_chunk *chunks;
    int nchunks, parallel;
    int64_t rate; /* bytes/s for the file (0: no limit) */
    int64_t got;
    struct cli_bar bar;
    const char *name;
};

/* ---- what to fetch ------------------------------------------------------------------- */

/* the asset's master, or its rendition NAME: the URL, a file name, the SHA-256 to check */
static int dl_target(struct dl *d, const char *id, const char *rendition, char *name, size_t cap,
                     struct err *err)
{
    char path[128];
    json_t *a = NULL, *list = NULL, *v;
    size_t i;
    int rc = -1;

    (void)snprintf(path, sizeof(path), "/api/v1/assets/%s", id);
    if (cli_call_opt(d->c, "GET", path, NULL, &cli_call_retried, &a, err) < 0)
        return -1;
    if (!rendition) {
        const char *h = json_string_value(json_object_get(a, "content_hash"));
        const char *fn = json_string_value(json_object_get(a, "original_filename"));

        if (!h) {
            err_set(err, ERR_CONFLICT, "asset %s has no master yet (status %s)", id,
                    json_string_value(json_object_get(a, "status")));
            goto out;
        }
        (void)snprintf(d->sha256, sizeof(d->sha256), "%s", h);
        (void)snprintf(d->url, sizeof(d->url), "/api/v1/assets/%s/download", id);
        (void)snprintf(name, cap, "%s", fn && fn[0] && !strchr(fn, '/') ? fn : id);
        rc = 0;
        goto out;
    }
    (void)snprintf(path, sizeof(path), "/api/v1/assets/%s/renditions", id);
    if (cli_call_opt(d->c, "GET", path, NULL, &cli_call_retried, &list, err) < 0)
        goto out;
    json_array_foreach(json_object_get(list, "items"), i, v)
    {
        const char *p = json_string_value(json_object_get(v, "profile"));
        const char *st = json_string_value(json_object_get(v, "status"));
        const char *mime = json_string_value(json_object_get(v, "mime_type"));
        const char *ext = !mime                                   ? ""
                          : strcmp(mime, "video/mp4") == 0        ? ".mp4"
                          : strcmp(mime, "audio/mpeg") == 0       ? ".mp3"
                          : strcmp(mime, "audio/wav") == 0        ? ".wav"
                          : strcmp(mime, "image/webp") == 0       ? ".webp"
                          : strcmp(mime, "image/jpeg") == 0       ? ".jpg"
                          : strcmp(mime, "image/png") == 0        ? ".png"
                          : strcmp(mime, "application/json") == 0 ? ".json"
                                                                  : "";

        if (!p || strcmp(p, rendition) != 0)
            continue;
        if (!st || strcmp(st, "ready") != 0) {
            err_set(err, ERR_CONFLICT, "rendition %s of asset %s is %s, not ready", rendition, id,
                    st ? st : "unknown");
            goto out;
        }
        (void)snprintf(d->url, sizeof(d->url), "/api/v1/renditions/%s/download",
                       json_string_value(json_object_get(v, "id")));
        (void)snprintf(name, cap, "%s_%s%s", id, rendition, ext);
        rc = 0;
        goto out;
    }
    err_set(err, ERR_NOTFOUND, "asset %s has no rendition %s", id, rendition);
out:
    json_decref(a);
    json_decref(list);
    return rc;
}

/* ---- the partial file and its record --------------------------------------------------- */

/*
 * PATH.part.acervo: "acervo-download 1 URL SIZE SHA256|-" then a line per chunk written
 * ("N"). A record for another file, size or hash means starting over.
 */
static void dl_state_read(struct dl *d)
{
    FILE *f = fopen(d->state, "r");
    char line[1024], want[1024];
    int n;

    if (!f)
        return;
    (void)snprintf(want, sizeof(want), "acervo-download 1 %s %lld %s\n", d->url, (long long)d->size,
                   d->sha256[0] ? d->sha256 : "-");
    if (fgets(line, sizeof(line), f) && strcmp(line, want) == 0)
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "%d", &n) == 1 && n >= 0 && n < d->nchunks && !d->chunks[n].done) {
                d->chunks[n].done = 1;
                d->got += d->chunks[n].len;
            }
    fclose(f);
}

static int dl_state_write(struct dl *d, const char *line, int create, struct err *err)
{
    int fd = open(d->state, O_WRONLY | O_CREAT | O_CLOEXEC | (create ? O_TRUNC : O_APPEND), 0600);

    if (fd < 0)
        return err_errno(err, ERR_IO, "cannot write %s", d->state);
    if (util_write_all(fd, line, strlen(line), err) < 0) {
        close(fd);
        return err_errno(err, ERR_IO, "cannot write %s", d->state);
    }
    close(fd);
    return 0;
}

/* ---- transfers ------------------------------------------------------------------------- */

static size_t dl_on_body(char *data, size_t size, size_t n, void *arg)
{
    struct dl_xfer *x = arg;
    size_t len = size * n, off = 0;

    if (x->pos + (int64_t)len > x->end)
        return 0; /* more than asked for: fail the transfer */
    while (off < len) {
        ssize_t w = pwrite(x->fd, data + off, len - off, (off_t)(x->pos));

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            x->write_errno = w < 0 ? errno : EIO;
            return 0;
        }
        off += (size_t)w;
        x->pos += w;
    }
    return len;
}

static void *dl_start(void *ctx, CURLM *m, int i)
{
    struct dl *d = ctx;
    struct dl_chunk *k = &d->chunks[i];
    struct dl_xfer *x = xcalloc(1, sizeof(*x));
    struct buf b;

    x->k = k;
    x->fd = d->fd;
    x->pos = k->off;
    x->end = k->off + k->len;
    buf_init(&b, 0);
    buf_addf(&b, NULL, "Authorization: Bearer %s", d->c->key);
    x->hdrs = curl_slist_append(NULL, b.buf);
    buf_reset(&b);
    buf_addf(&b, NULL, "%s%s", d->c->server, d->url);
    x->h = curl_easy_init();
    curl_easy_setopt(x->h, CURLOPT_URL, b.buf);
    buf_reset(&b);
    buf_addf(&b, NULL, "%lld-%lld", (long long)k->off, (long long)(k->off + k->len - 1));
    curl_easy_setopt(x->h, CURLOPT_RANGE, b.buf);
    buf_release(&b);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, dl_on_body);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(x->h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->h, CURLOPT_BUFFERSIZE, 512L * 1024);
    if (d->rate > 0)
        curl_easy_setopt(x->h, CURLOPT_MAX_RECV_SPEED_LARGE,
                         (curl_off_t)(d->rate / d->parallel > 0 ? d->rate / d->parallel : 1));
    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "acervo/" ACERVO_VERSION);
    k->running = 1;
    k->attempts++;
    curl_multi_add_handle(m, x->h);
    return x;
}

static void dl_free(void *ctx, CURLM *m, void *xv)
{
    struct dl_xfer *x = xv;

    (void)ctx;
    x->k->running = 0;
    curl_multi_remove_handle(m, x->h);
    curl_easy_cleanup(x->h);
    curl_slist_free_all(x->hdrs);
    free(x);
}

static int dl_done(void *ctx, void *xv, CURLcode rc, struct err *err)
{
    struct dl *d = ctx;
    struct dl_xfer *x = xv;
    struct dl_chunk *k = x->k;
    long status = 0;
    char line[32];

    k->running = 0;
    if (x->write_errno) {
        errno = x->write_errno;
        return err_errno(err, ERR_IO, "cannot write %s (kept: run the same command again)",
                         d->part);
    }
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && (status == 206 || (status == 200 && k->off == 0 && k->len == d->size)) &&
        x->pos == x->end) {
        /* recorded without a sync: a process stop keeps it (page cache); after a machine
         * crash a range lost anyway fails the SHA-256 check, and the run starts over */
        pthread_mutex_lock(&d->hash.mu);
        k->done = 1;
        pthread_cond_signal(&d->hash.cv);
        pthread_mutex_unlock(&d->hash.mu);
        d->got += k->len;
        /* the disk starts writing it now, so the final fsync has little left to wait for */
        (void)sync_file_range(d->fd, (off_t)k->off, (off_t)k->len, SYNC_FILE_RANGE_WRITE);
        (void)snprintf(line, sizeof(line), "%d\n", (int)(k - d->chunks));
        return dl_state_write(d, line, 0, err);
    }
    if (rc == CURLE_OK && status >= 400 && status < 500 && status != 408 && status != 429) {
        struct cli_resp r = {.status = status};
        char what[600];

        (void)snprintf(what, sizeof(what), "GET %s", d->url);
        buf_init(&r.body, 0);
        cli_fail_response(&r, what, err);
        buf_release(&r.body);
        return -1;
    }
    if (k->attempts >= CLI_RETRY_MAX)
        return err_set(err, rc != CURLE_OK ? ERR_NETWORK : ERR_BACKEND,
                       "bytes %lld-%lld failed %d times; the last: %s", (long long)k->off,
                       (long long)(k->off + k->len - 1), k->attempts,
                       rc != CURLE_OK ? (x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc))
                                      : "a short or unexpected answer");
    k->retry_at = util_now_ms() + cli_backoff_ms(k->attempts);
    return 0;
}

static int chunk_state(void *ctx, int i, int64_t now)
{
    struct dl *d = ctx;
    struct dl_chunk *k = &d->chunks[i];

    if (k->done)
        return CLI_POOL_DONE;
    return k->running || k->retry_at > now ? CLI_POOL_WAIT : CLI_POOL_READY;
}

static int64_t dl_moved(void *xv)
{
    struct dl_xfer *x = xv;

    return x->pos - x->k->off;
}

static int dl_turn(void *ctx, int idle, int64_t inflight, struct err *err)
{
    struct dl *d = ctx;

    (void)err;
    if (!idle && d->c->tty)
        cli__bar_show(&d->bar, d->got + inflight, 0);
    return 0;
}

/* fetches every range not done, d->parallel at once */
static int dl_fetch(struct dl *d, struct err *err)
{
    const struct cli_pool pool = {
        .ctx = d,
        .n = d->nchunks,
        .parallel = d->parallel,
        .stopped = "run the same command again to fetch the rest",
        .state = chunk_state,
        .start = dl_start,
        .finish = dl_done,
        .release = dl_free,
        .moved = dl_moved,
        .turn = dl_turn,
    };

    return cli_pool_run(&pool, err);
}

static void *dl_hash_main(void *arg)
{
    struct dl *d = arg;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char *buf = xmalloc(1 << 20), dig[32];

    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (int i = 0; i < d->nchunks; i++) {
        int64_t pos = d->chunks[i].off, end = pos + d->chunks[i].len;

        int stop;

        pthread_mutex_lock(&d->hash.mu);
        while (!d->chunks[i].done && !d->hash.stop)
            pthread_cond_wait(&d->hash.cv, &d->hash.mu);
        stop = d->hash.stop;
        pthread_mutex_unlock(&d->hash.mu);
        if (stop)
            goto out;
        while (pos < end) {
            ssize_t r = pread(d->fd, buf, (size_t)(end - pos < (1 << 20) ? end - pos : (1 << 20)),
                              (off_t)pos);

            if (r <= 0) {
                d->hash.failed = r < 0 ? errno : EIO;
                goto out;
            }
            EVP_DigestUpdate(md, buf, (size_t)r);
            pos += r;
        }
    }
    EVP_DigestFinal_ex(md, dig, NULL);
    util_hex(dig, 32, d->hash.hex);
out:
    EVP_MD_CTX_free(md);
    free(buf);
    return NULL;
}

static int dl_hash_start(struct dl *d, struct err *err)
{
    pthread_mutex_init(&d->hash.mu, NULL);
    pthread_cond_init(&d->hash.cv, NULL);
    if (pthread_create(&d->hash.thread, NULL, dl_hash_main, d) != 0)
        return err_set(err, ERR_INTERNAL, "cannot start the hashing thread");
    d->hash.running = 1;
    return 0;
}

/* waits for the hash (stop: gives it up); the file's SHA-256 checked against the master's */
static int dl_hash_end(struct dl *d, int stop, struct err *err)
{
    if (!d->hash.running)
        return 0;
    pthread_mutex_lock(&d->hash.mu);
    d->hash.stop = stop;
    pthread_cond_signal(&d->hash.cv);
    pthread_mutex_unlock(&d->hash.mu);
    pthread_join(d->hash.thread, NULL);
    d->hash.running = 0;
    pthread_cond_destroy(&d->hash.cv);
    pthread_mutex_destroy(&d->hash.mu);
    if (stop)
        return 0;
    if (d->hash.failed) {
        errno = d->hash.failed;
        return err_errno(err, ERR_IO, "cannot read %s back", d->part);
    }
    if (strcmp(d->hash.hex, d->sha256) != 0) {
        /* not the master: nothing of it can be trusted, the next run starts over */
        unlink(d->state);
        unlink(d->part);
        return err_set(err, ERR_BACKEND,
                       "the file's SHA-256 is %s, not the master's %s; removed, run again",
                       d->hash.hex, d->sha256);
    }
    return 0;
}

int cli__cmd_download(struct cli *c, int argc, char **argv, struct err *err)
{
    static const char usage[] =
        "acervo download ID [--rendition NAME] [-o PATH] [--parallel 1..32] [--limit-rate BYTES/s]";
    const char *id = NULL, *rendition = NULL, *out = NULL;
    struct dl d = {.c = c, .fd = -1, .parallel = 4};
    char name[300], path[PATH_MAX];
    struct cli_resp head;
    struct stat st;
    long par = 4;
    int rc = -1;

    for (int k = 1; k < argc; k++) {
        const char *v = k + 1 < argc ? argv[k + 1] : NULL;

        if (argv[k][0] != '-' && !id) {
            id = argv[k];
        } else if (v && strcmp(argv[k], "--rendition") == 0) {
            rendition = v;
            k++;
        } else if (v && (strcmp(argv[k], "-o") == 0 || strcmp(argv[k], "--output") == 0)) {
            out = v;
            k++;
        } else if (v && strcmp(argv[k], "--limit-rate") == 0 && cli__parse_size(v, &d.rate) == 0) {
            k++;
        } else if (v && strcmp(argv[k], "--parallel") == 0 &&
                   cli__parse_long(v, 1, 32, &par) == 0) {
            d.parallel = (int)par;
            k++;
        } else {
            return cli__usage(err, usage);
        }
    }
    if (!id)
        return cli__usage(err, usage);
    if (!util_uuid_valid(id))
        return cli__bad(err, "'%.64s' is not an asset id (a UUID)", id);
    if (!c->key)
        return err_set(err, ERR_UNAUTH, "not logged in: run acervo login URL first");
    if (dl_target(&d, id, rendition, name, sizeof(name), err) < 0)
        return -1;
    /* the size, from the server */
    if (cli_http(c, "HEAD", d.url, NULL, NULL, 0, &head, err) < 0)
        return -1;
    if (head.status != 200) {
        char what[600];

        (void)snprintf(what, sizeof(what), "HEAD %s", d.url);
        cli_fail_response(&head, what, err);
        cli_resp_release(&head);
        return -1;
    }
    d.size = head.length;
    cli_resp_release(&head);
    if (d.size < 0)
        return err_set(err, ERR_BACKEND, "the server did not say how large the file is");
    if (!out)
        out = name;
    if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
        (void)snprintf(path, sizeof(path), "%s/%s", out, name);
    else
        (void)snprintf(path, sizeof(path), "%s", out);
    {
        struct buf b;

        buf_init(&b, 0);
        buf_addf(&b, NULL, "%s.part", path);
        d.part = buf_detach(&b, NULL);
        buf_addf(&b, NULL, "%s.part.acervo", path);
        d.state = buf_detach(&b, NULL);
    }
    d.name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    d.nchunks = d.size ? (int)((d.size + CHUNK - 1) / CHUNK) : 0;
    d.chunks = xcalloc((size_t)d.nchunks + 1, sizeof(*d.chunks));
    for (int i = 0; i < d.nchunks; i++) {
        d.chunks[i].off = (int64_t)i * CHUNK;
        d.chunks[i].len = i == d.nchunks - 1 ? d.size - d.chunks[i].off : CHUNK;
    }
    dl_state_read(&d);
    if (d.got == 0) {
        char line[1024];

        (void)snprintf(line, sizeof(line), "acervo-download 1 %s %lld %s\n", d.url,
                       (long long)d.size, d.sha256[0] ? d.sha256 : "-");
        if (dl_state_write(&d, line, 1, err) < 0)
            goto out;
    }
    d.fd = open(d.part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (d.fd < 0) {
        err_errno(err, ERR_IO, "cannot write %s", d.part);
        goto out;
    }
    /* the space, taken now: a full disk is said before anything is fetched */
    if (d.size > 0) {
        int e = posix_fallocate(d.fd, 0, (off_t)d.size);

        if (e == ENOSPC || e == EDQUOT) {
            char need[32];

            cli__human_bytes(need, sizeof(need), (double)d.size);
            err_set(err, ERR_IO, "not enough space for %s (%s)", path, need);
            goto out;
        }
        if (e != 0 && e != EOPNOTSUPP && e != EINVAL) {
            errno = e;
            err_errno(err, ERR_IO, "cannot write %s", d.part);
            goto out;
        }
    }
    cli__catch_stop();
    d.bar = (struct cli_bar){
        .name = d.name, .total = d.size, .base = d.got, .started_ms = util_now_ms()};
    if (d.sha256[0] && dl_hash_start(&d, err) < 0)
        goto out;
    if (dl_fetch(&d, err) < 0)
        goto out;
    if (c->tty)
        cli__bar_show(&d.bar, d.got, 1);
    if (dl_hash_end(&d, 0, err) < 0)
        goto out;
    if (fsync(d.fd) < 0 || rename(d.part, path) < 0) {
        err_errno(err, ERR_IO, "cannot write %s", path);
        goto out;
    }
    unlink(d.state);
    if (c->json)
        printf("{\"asset_id\": \"%s\", \"path\": \"%s\", \"bytes\": %lld, \"sha256\": \"%s\"}\n",
               id, path, (long long)d.size, d.sha256);
    else
        printf("%s\n", path);
    rc = 0;
out:
    dl_hash_end(&d, 1, NULL);
    if (d.fd >= 0)
        close(d.fd);
    free(d.chunks);
    free(d.part);
    free(d.state);
    return rc;
}
