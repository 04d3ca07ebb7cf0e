/*
 * acervod: the daemon and its operator commands.
 *
 *   acervod [serve] [flags]       supervisor (role all) starting the API process and the
 *                                 worker processes, only the workers (--role worker), or
 *                                 the API process alone (--role api)
 *   acervod keys create ...       provision an API key offline
 *   acervod fsck ...              re-hash every master against the catalog
 *   acervod import ...            bulk-load asset records (JSON lines) into the catalog
 *   acervod sql ...               run SQL on the catalog with the search index's functions
 *
 * Process model: the supervisor owns no sockets and no database handles; it creates the
 * first admin, then forks the API process and `workers` worker processes and restarts
 * any that dies, each with its own backoff. Workers run the workflow engine's jobs
 * (src/jobs); the processes of one data dir wake each other through DATA/run/doorbell.
 */
#include "api/api.h"
#include "catalog/catalog.h"
#include "core/core.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "s3/s3.h"
#include "search/search.h"
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <malloc.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* exit status of a process that cannot start (bad config, port taken): no restart */
#define EXIT_FATAL 2

static void usage(FILE *out)
{
    fprintf(out, "usage: acervod [serve] [flags]\n"
                 "       acervod keys create --data-dir DIR --role admin|editor|viewer "
                 "[--name NAME]\n"
                 "       acervod fsck --data-dir DIR\n"
                 "       acervod import --data-dir DIR [--batch N] FILE.jsonl|-\n"
                 "       acervod sql --data-dir DIR 'SQL'\n"
                 "       acervod --help | --version | --help-markdown\n\n"
                 "flags (each also settable as ACERVO_* and in the config file):\n");
    cfg_usage(out);
}

static void paths(const struct cfg *cfg, char *db, size_t dbn, char *objects, size_t on)
{
    snprintf(db, dbn, "%s/catalog.db", cfg->data_dir);
    snprintf(objects, on, "%s/objects", cfg->data_dir);
}

static int open_catalog(const struct cfg *cfg, struct catalog **cat, struct err *err)
{
    char db[600], objects[600];

    if (util_mkdirs(cfg->data_dir, err) < 0)
        return -1;
    paths(cfg, db, sizeof(db), objects, sizeof(objects));
    cat_sqlite_set_cache(cfg->catalog_cache);
    cat_sqlite_set_memory(cfg->catalog_memory);
    return cat_sqlite_open(cat, db, err);
}

static int open_store(const struct cfg *cfg, struct store **st, struct err *err)
{
    char db[600], objects[600];

    paths(cfg, db, sizeof(db), objects, sizeof(objects));
    return store_fs_open(st, objects, err);
}

/* The doorbell shared by this data dir's processes (DATA/run). */
static int open_doorbell(const struct cfg *cfg, struct err *err)
{
    char dir[600];

    snprintf(dir, sizeof(dir), "%s/run", cfg->data_dir);
    return jobs_doorbell_open(dir, err);
}

static int load_cfg(struct cfg *cfg, int argc, char **argv, int first, struct err *err)
{
    int optind = first;

    if (cfg_load(cfg, argc, argv, &optind, err) < 0)
        return -1;
    if (optind < argc)
        return err_set(err, ERR_INVALID, "unknown argument '%s' (see --help)", argv[optind]);
    log_init((enum log_level)log_level_parse(cfg->log_level), strcmp(cfg->log_format, "json") == 0,
             2);
    return 0;
}

/* ---- keys create ---------------------------------------------------------------------- */

static int cmd_keys_create(int argc, char **argv)
{
    const char *role_s = NULL, *name = NULL;
    char **rest = xcalloc((size_t)argc + 1, sizeof(char *));
    int nrest = 0, role, rc = EXIT_FATAL;
    struct cfg cfg;
    struct catalog *cat = NULL;
    struct err err = {0};
    char *json = NULL;

    rest[nrest++] = argv[0];
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
            role_s = argv[++i];
        else if (strncmp(argv[i], "--role=", 7) == 0)
            role_s = argv[i] + 7;
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if (strncmp(argv[i], "--name=", 7) == 0)
            name = argv[i] + 7;
        else
            rest[nrest++] = argv[i];
    }
    if (!role_s) {
        fprintf(stderr, "acervod keys create: --role admin|editor|viewer is required\n");
        goto out;
    }
    role = cat_role_parse(role_s);
    if (role < 0) {
        fprintf(stderr, "acervod keys create: unknown role '%s' (admin, editor or viewer)\n",
                role_s);
        goto out;
    }
    if (load_cfg(&cfg, nrest, rest, 1, &err) < 0 || open_catalog(&cfg, &cat, &err) < 0 ||
        api_key_provision(cat, (enum cat_role)role, name, NULL, &json, &err) < 0) {
        fprintf(stderr, "acervod keys create: %s\n", err.msg);
        goto out;
    }
    printf("%s\n", json);
    rc = 0;
out:
    free(json);
    cat_close(cat);
    free(rest);
    return rc;
}

/* ---- fsck -------------------------------------------------------------------------------- */

/*
 * An object under masters/ younger than this is not called an orphan: an ingest commits
 * the master a moment before the catalog records it, and removes it again when it turns
 * out to be a duplicate.
 */
#define FSCK_ORPHAN_GRACE_S 3600

struct fsck {
    struct store *st;
    struct catalog *cat;
    int64_t now; /* seconds since epoch, when the listing of objects began */
    json_t *mismatches, *missing, *orphans;
    char **keys;
    size_t nkeys, cap;
    long checked, ok, in_flight;
    char last_id[37];
    int page;
};

static int hash_fd(int fd, char hex[65], int64_t *size)
{
    static unsigned char buf[1 << 20];
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char out[32];
    unsigned int len = 0;
    ssize_t r;

    *size = 0;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while ((r = read(fd, buf, sizeof(buf))) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            EVP_MD_CTX_free(md);
            return -1;
        }
        EVP_DigestUpdate(md, buf, (size_t)r);
        *size += r;
    }
    EVP_DigestFinal_ex(md, out, &len);
    EVP_MD_CTX_free(md);
    util_hex(out, 32, hex);
    return 0;
}

/* records a problem; a row jansson cannot build (text that is not UTF-8) still counts */
static void fsck_note(json_t *list, json_t *row, const char *asset_id)
{
    if (!row)
        row = json_pack("{s:s, s:s}", "asset_id", asset_id, "error", "unprintable detail");
    if (!row)
        row = json_string("unprintable problem");
    json_array_append_new(list, row);
}

static int fsck_asset(void *ctx, const struct cat_asset *a)
{
    struct fsck *f = ctx;
    struct store_meta m;
    struct err err;
    char hex[65];
    int64_t size;
    int fd;

    snprintf(f->last_id, sizeof(f->last_id), "%s", a->id);
    f->page++;
    if (!a->master_storage_key)
        return 0;
    if (f->nkeys == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 256;
        f->keys = xrealloc(f->keys, f->cap * sizeof(char *));
    }
    f->keys[f->nkeys++] = xstrdup(a->master_storage_key);
    f->checked++;
    if (store_object_open(f->st, STORE_BUCKET_ARCHIVE, a->master_storage_key, &fd, &m, &err) < 0) {
        fsck_note(f->missing,
                  json_pack("{s:s, s:s, s:s}", "asset_id", a->id, "key", a->master_storage_key,
                            "error", err.msg),
                  a->id);
        return 0;
    }
    if (hash_fd(fd, hex, &size) < 0) {
        fsck_note(f->missing,
                  json_pack("{s:s, s:s, s:s}", "asset_id", a->id, "key", a->master_storage_key,
                            "error", strerror(errno)),
                  a->id);
        close(fd);
        return 0;
    }
    close(fd);
    if (strcmp(hex, a->content_hash) != 0 || size != a->file_size_bytes) {
        fsck_note(f->mismatches,
                  json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "asset_id", a->id, "key",
                            a->master_storage_key, "expected", a->content_hash, "actual", hex,
                            "expected_size", (json_int_t)a->file_size_bytes, "actual_size",
                            (json_int_t)size),
                  a->id);
        return 0;
    }
    f->ok++;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * 1 if an object under masters/ that the first pass over the catalog did not reference is
 * explained by work in flight: the catalog references it now (an ingest recorded it since),
 * its asset is still processing (its ingest commits the master, then records it), or it is
 * younger than FSCK_ORPHAN_GRACE_S.
 */
static int fsck_in_flight(struct fsck *f, const char *key, const struct store_meta *m)
{
    char id[37];
    struct cat_asset a;
    struct err e;
    int explained;

    if (m->mtime > f->now - FSCK_ORPHAN_GRACE_S)
        return 1;
    /* masters/{asset id}/{sha256}/original{ext} */
    if (strncmp(key, "masters/", 8) != 0 || strlen(key) < 8 + 36 || key[8 + 36] != '/')
        return 0;
    memcpy(id, key + 8, 36);
    id[36] = '\0';
    memset(&a, 0, sizeof(a));
    if (!util_uuid_valid(id) || cat_asset_get(f->cat, id, &a, &e) < 0)
        return 0;
    explained = (a.master_storage_key && strcmp(a.master_storage_key, key) == 0) ||
                strcmp(a.status, ASSET_PROCESSING) == 0;
    cat_asset_release(&a);
    return explained;
}

static int fsck_object(void *ctx, const char *key, const struct store_meta *m)
{
    struct fsck *f = ctx;

    if (f->nkeys > 0 && bsearch(&key, f->keys, f->nkeys, sizeof(char *), cmp_str))
        return 0;
    if (fsck_in_flight(f, key, m))
        f->in_flight++;
    else
        fsck_note(f->orphans, json_string(key), "");
    return 0;
}

static int cmd_fsck(int argc, char **argv)
{
    struct cfg cfg;
    struct catalog *cat = NULL;
    struct fsck f;
    struct err err = {0};
    int rc = EXIT_FATAL;
    json_t *report;
    char *text;

    memset(&f, 0, sizeof(f));
    if (load_cfg(&cfg, argc, argv, 2, &err) < 0 || open_catalog(&cfg, &cat, &err) < 0 ||
        open_store(&cfg, &f.st, &err) < 0) {
        fprintf(stderr, "acervod fsck: %s\n", err.msg);
        goto out;
    }
    f.mismatches = json_array();
    f.missing = json_array();
    f.orphans = json_array();
    for (;;) {
        struct cat_asset_filter filter = {NULL, NULL, NULL, f.last_id[0] ? f.last_id : NULL, 1000};
        f.page = 0;
        if (cat_asset_list(cat, &filter, fsck_asset, &f, &err) < 0) {
            fprintf(stderr, "acervod fsck: %s\n", err.msg);
            goto out_json;
        }
        if (f.page < 1000)
            break;
    }
    if (f.nkeys > 0)
        qsort(f.keys, f.nkeys, sizeof(char *), cmp_str);
    f.cat = cat;
    f.now = util_now_ms() / 1000;
    if (store_object_list(f.st, STORE_BUCKET_ARCHIVE, "masters/", fsck_object, &f, &err) < 0) {
        fprintf(stderr, "acervod fsck: %s\n", err.msg);
        goto out_json;
    }
    report = json_pack("{s:I, s:I, s:O, s:O, s:O, s:I}", "checked", (json_int_t)f.checked, "ok",
                       (json_int_t)f.ok, "mismatches", f.mismatches, "missing", f.missing,
                       "orphans", f.orphans, "in_flight", (json_int_t)f.in_flight);
    text = json_dumps(report, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
    json_decref(report);
    rc = json_array_size(f.mismatches) || json_array_size(f.missing) || json_array_size(f.orphans)
             ? 1
             : 0;
out_json:
    json_decref(f.mismatches);
    json_decref(f.missing);
    json_decref(f.orphans);
out:
    for (size_t i = 0; i < f.nkeys; i++)
        free(f.keys[i]);
    free(f.keys);
    store_close(f.st);
    cat_close(cat);
    return rc;
}

/* ---- import ------------------------------------------------------------------------------ */

#define IMPORT_BATCH_MAX 50000
#define IMPORT_REPORT    20 /* rejected lines shown one by one */
/* the vocabulary is written with the batch after this many records or distinct terms */
#define IMPORT_VOCAB_RECORDS 100000
#define IMPORT_VOCAB_TERMS   (1 << 20)

static double mono_s(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* splits "acervod CMD [flags] ARG": the one positional argument, and the flags for cfg */
static int one_positional(int argc, char **argv, char ***rest, int *nrest, const char **arg,
                          long *batch)
{
    *rest = xcalloc((size_t)argc + 1, sizeof(char *));
    *nrest = 0;
    (*rest)[(*nrest)++] = argv[0];
    *arg = NULL;
    for (int i = 2; i < argc; i++) {
        if (batch && strcmp(argv[i], "--batch") == 0 && i + 1 < argc) {
            char *end;

            *batch = strtol(argv[++i], &end, 10);
            if (*end || *batch < 1 || *batch > IMPORT_BATCH_MAX)
                return -1;
        } else if (strncmp(argv[i], "--", 2) == 0 && strchr(argv[i], '=')) {
            (*rest)[(*nrest)++] = argv[i];
        } else if (strncmp(argv[i], "--", 2) == 0 && i + 1 < argc) {
            (*rest)[(*nrest)++] = argv[i];
            (*rest)[(*nrest)++] = argv[++i];
        } else if (strcmp(argv[i], "-") == 0 || argv[i][0] != '-') {
            if (*arg)
                return -1;
            *arg = argv[i];
        } else {
            (*rest)[(*nrest)++] = argv[i];
        }
    }
    return *arg ? 0 : -1;
}

/*
 * The import runs as a pipeline: a reader thread parses and analyses batches (JSON and
 * text analysis are half the work) while this thread writes the previous one.
 */
struct import_pipe {
    FILE *in;
    size_t batch;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct cat_import *ready; /* a full batch waiting for the writer, or NULL */
    size_t ready_n;
    struct cat_vocab ready_vocab;
    int eof, failed, stop;
    size_t lines, rejected;
    char error[300];
};

static void *import_reader(void *arg)
{
    struct import_pipe *p = arg;
    struct search_analyzer *an = NULL;
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;
    struct cat_import *v = xcalloc(p->batch, sizeof(*v));
    struct cat_vocab_acc *acc = cat_vocab_acc_new();
    size_t counted = 0; /* records in acc */
    struct err err = {0};

    if (search_analyzer_new(&an, &err) < 0) {
        pthread_mutex_lock(&p->mu);
        p->failed = 1;
        (void)snprintf(p->error, sizeof(p->error), "%s", err.msg);
        goto done;
    }
    for (;;) {
        len = getline(&line, &cap, p->in);
        if (len >= 0) {
            p->lines++;
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                line[--len] = '\0';
            if (len == 0)
                continue;
            if (cat_import_parse(line, (size_t)len, &v[n], &err) < 0 ||
                cat_import_analyze(&v[n], an, &err) < 0) {
                cat_import_release(&v[n]);
                if (p->rejected++ < IMPORT_REPORT)
                    fprintf(stderr, "acervod import: line %zu: %s\n", p->lines, err.msg);
                continue;
            }
            if (++n < p->batch)
                continue;
        }
        /* hand the batch over (also the last, short one), with the vocabulary now and then */
        struct cat_vocab vocab = {0};

        cat_vocab_acc_add(acc, v, n);
        counted += n;
        if (len < 0 || counted >= IMPORT_VOCAB_RECORDS ||
            cat_vocab_acc_len(acc) >= IMPORT_VOCAB_TERMS) {
            cat_vocab_acc_take(acc, &vocab);
            counted = 0;
        }
        pthread_mutex_lock(&p->mu);
        while (p->ready && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) {
            pthread_mutex_unlock(&p->mu);
            cat_vocab_release(&vocab);
            break;
        }
        p->ready = v;
        p->ready_n = n;
        p->ready_vocab = vocab;
        if (len < 0) {
            if (ferror(p->in)) {
                p->failed = 1;
                (void)snprintf(p->error, sizeof(p->error), "reading: %s", strerror(errno));
            }
            p->eof = 1;
            v = NULL;
            pthread_cond_broadcast(&p->cv);
            goto done;
        }
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        v = xcalloc(p->batch, sizeof(*v));
        n = 0;
    }
    pthread_mutex_lock(&p->mu);
done:
    p->eof = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    if (v) {
        for (size_t i = 0; i < n; i++)
            cat_import_release(&v[i]);
        free(v);
    }
    free(line);
    cat_vocab_acc_free(acc);
    search_analyzer_free(an);
    return NULL;
}

static int cmd_import(int argc, char **argv)
{
    char **rest = NULL, db[600], objects[600];
    const char *file = NULL;
    long batch = 20000;
    int nrest = 0, rc = EXIT_FATAL, started = 0;
    struct cfg cfg;
    struct catalog *cat = NULL;
    struct import_pipe p;
    pthread_t reader;
    size_t imported = 0, skipped = 0;
    double t0 = mono_s();
    struct err err = {0};

    memset(&p, 0, sizeof(p));
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.cv, NULL);
    if (one_positional(argc, argv, &rest, &nrest, &file, &batch) < 0) {
        fprintf(stderr, "usage: acervod import --data-dir DIR [--batch 1..%d] FILE.jsonl|-\n",
                IMPORT_BATCH_MAX);
        goto out;
    }
    if (load_cfg(&cfg, nrest, rest, 1, &err) < 0 || util_mkdirs(cfg.data_dir, &err) < 0) {
        fprintf(stderr, "acervod import: %s\n", err.msg);
        goto out;
    }
    paths(&cfg, db, sizeof(db), objects, sizeof(objects));
    if (cat_sqlite_open_bulk(&cat, db, &err) < 0 || cat_search_bulk_begin(cat, &err) < 0) {
        fprintf(stderr, "acervod import: %s\n", err.msg);
        goto out;
    }
    p.in = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (!p.in) {
        fprintf(stderr, "acervod import: cannot open %s: %s\n", file, strerror(errno));
        goto out;
    }
    p.batch = (size_t)batch;
    if (pthread_create(&reader, NULL, import_reader, &p) != 0) {
        fprintf(stderr, "acervod import: cannot start the reader thread\n");
        goto out;
    }
    started = 1;
    for (;;) {
        struct cat_import *v;
        struct cat_vocab vocab;
        size_t n, added = 0;
        int wrc;

        pthread_mutex_lock(&p.mu);
        while (!p.ready && !p.eof)
            pthread_cond_wait(&p.cv, &p.mu);
        v = p.ready;
        n = p.ready_n;
        vocab = p.ready_vocab;
        memset(&p.ready_vocab, 0, sizeof(p.ready_vocab));
        p.ready = NULL;
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        if (!v)
            break;
        wrc = cat_import_batch(cat, v, n, &vocab, &added, &err);
        for (size_t i = 0; i < n; i++)
            cat_import_release(&v[i]);
        free(v);
        cat_vocab_release(&vocab);
        if (wrc < 0) {
            fprintf(stderr, "acervod import: %s\n", err.msg);
            goto out;
        }
        imported += added;
        skipped += n - added;
    }
    if (p.failed) {
        fprintf(stderr, "acervod import: %s\n", p.error);
        goto out;
    }
    /* one segment per index: a search then reads one document list per term */
    if (imported && cat_search_optimize(cat, &err) < 0) {
        fprintf(stderr, "acervod import: %s\n", err.msg);
        goto out;
    }
    {
        double s = mono_s() - t0;

        printf("{\"lines\": %zu, \"imported\": %zu, \"skipped\": %zu, \"rejected\": %zu, "
               "\"seconds\": %.2f, \"assets_per_second\": %.0f}\n",
               p.lines, imported, skipped, p.rejected, s, s > 0 ? (double)imported / s : 0);
    }
    rc = p.rejected ? 1 : 0;
out:
    if (started) {
        pthread_mutex_lock(&p.mu);
        p.stop = 1;
        if (p.ready) {
            for (size_t i = 0; i < p.ready_n; i++)
                cat_import_release(&p.ready[i]);
            free(p.ready);
            p.ready = NULL;
            cat_vocab_release(&p.ready_vocab);
        }
        pthread_cond_broadcast(&p.cv);
        pthread_mutex_unlock(&p.mu);
        pthread_join(reader, NULL);
        if (p.ready) {
            for (size_t i = 0; i < p.ready_n; i++)
                cat_import_release(&p.ready[i]);
            free(p.ready);
        }
        cat_vocab_release(&p.ready_vocab);
    }
    if (p.in && p.in != stdin)
        fclose(p.in);
    pthread_mutex_destroy(&p.mu);
    pthread_cond_destroy(&p.cv);
    cat_close(cat);
    free(rest);
    return rc;
}

/* ---- sql ----------------------------------------------------------------------------------- */

static int cmd_sql(int argc, char **argv)
{
    char **rest = NULL;
    const char *sql = NULL;
    int nrest = 0, rc = EXIT_FATAL;
    struct cfg cfg;
    struct catalog *cat = NULL;
    struct err err = {0};

    if (one_positional(argc, argv, &rest, &nrest, &sql, NULL) < 0) {
        fprintf(stderr, "usage: acervod sql --data-dir DIR 'SQL'\n");
        goto out;
    }
    if (load_cfg(&cfg, nrest, rest, 1, &err) < 0 || open_catalog(&cfg, &cat, &err) < 0 ||
        cat_sqlite_exec(cat, sql, stdout, &err) < 0) {
        fprintf(stderr, "acervod sql: %s\n", err.msg);
        rc = 1;
        goto out;
    }
    rc = 0;
out:
    cat_close(cat);
    free(rest);
    return rc;
}

/* ---- the API process ----------------------------------------------------------------------- */

/* A store upload of the REST flow (archive, uploads/{asset id}/...) without its catalog
 * row is unreachable once this old: every row is written moments after its store upload. */
#define SWEEP_ROWLESS_S 3600

struct sweep_ctx {
    struct store *st;
    struct catalog *cat;
    int64_t now, cutoff;
    int swept;
};

/* 1 if u is a REST upload whose catalog row still names it */
static int rest_upload_has_row(struct sweep_ctx *s, const struct store_upload *u)
{
    char id[37];
    struct cat_upload row;
    struct err err;

    if (strlen(u->key) < 8 + 36 + 1 || u->key[8 + 36] != '/')
        return 0;
    memcpy(id, u->key + 8, 36);
    id[36] = '\0';
    if (!util_uuid_valid(id))
        return 0;
    if (cat_upload_get(s->cat, id, &row, &err) < 0)
        return err.code != ERR_NOTFOUND; /* a catalog that cannot answer keeps it */
    return strcmp(row.upload_id, u->upload_id) == 0;
}

static int sweep_store_upload(void *ctx, const struct store_upload *u)
{
    struct sweep_ctx *s = ctx;
    struct err err;

    if (strcmp(u->bucket, STORE_BUCKET_ARCHIVE) == 0 && strncmp(u->key, "uploads/", 8) == 0) {
        /* uploads of the REST flow are swept through the catalog while it has their row;
         * without one (a crash between the two writes, a failed abort) they go now */
        if (u->initiated >= s->now - SWEEP_ROWLESS_S || rest_upload_has_row(s, u))
            return 0;
    } else if (u->initiated >= s->cutoff) {
        return 0;
    }
    if (store_upload_abort(s->st, u->upload_id, &err) == 0)
        s->swept++;
    return 0;
}

static void sweep(struct api_ctx *ctx)
{
    struct err err;
    struct sweep_ctx s = {ctx->store, ctx->cat, util_now_ms() / 1000,
                          util_now_ms() / 1000 - ctx->cfg->upload_ttl, 0};
    int n;

    log_ctx_set("sweep");
    n = api_sweep_uploads(ctx, util_now_ms(), &err);
    if (n < 0)
        log_write(LOG_WARN, "sweep", "sweeping expired uploads failed: %s", err.msg);
    if (store_upload_list(ctx->store, NULL, sweep_store_upload, &s, &err) < 0)
        log_write(LOG_WARN, "sweep", "listing S3 uploads failed: %s", err.msg);
    if (api_resume_ingests(ctx, &err) < 0)
        log_write(LOG_WARN, "sweep", "resuming ingests failed: %s", err.msg);
    if (api_sweep_renditions(ctx, util_now_ms(), &err) < 0)
        log_write(LOG_WARN, "sweep", "expiring on-demand renditions failed: %s", err.msg);
    if (n > 0 || s.swept > 0)
        log_write(LOG_INFO, "sweep", "removed %d expired asset uploads and %d S3 uploads",
                  n > 0 ? n : 0, s.swept);
    log_ctx_set(NULL);
}

/* how often the API process looks for memory to give back, and after how long unused a
 * catalog connection goes */
#define TRIM_EVERY_MS 5000
#define TRIM_IDLE_MS  10000

static int run_api(const struct cfg *cfg)
{
    struct catalog *cat = NULL;
    struct store *st = NULL;
    struct http_server *api_srv = NULL, *s3_srv = NULL;
    struct api_ctx actx;
    struct s3_ctx sctx = {0};
    struct http_app api_app, s3_app;
    struct http_listen_opts lo;
    struct err err = {0};
    sigset_t set;
    int64_t next_sweep, next_trim;
    int actx_ready = 0;
    int rc = EXIT_FATAL;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits this; main waits */
    signal(SIGPIPE, SIG_IGN);

    if (open_catalog(cfg, &cat, &err) < 0 || open_store(cfg, &st, &err) < 0) {
        log_write(LOG_ERROR, "main", "cannot start: %s", err.msg);
        goto out;
    }
    if (open_doorbell(cfg, &err) < 0)
        log_write(LOG_WARN, "main", "workers will not be woken at once: %s", err.msg);
    api_ctx_init(&actx, cfg, cat, st);
    actx_ready = 1;
    sctx = (struct s3_ctx){cfg, cat, st, NULL};
    api_app_init(&api_app, &actx);
    s3_app_init(&s3_app, &sctx);
    memset(&lo, 0, sizeof(lo));
    lo.max_header_bytes = cfg->max_header_bytes;
    lo.connection_limit = cfg->max_connections;
    lo.per_address_limit = cfg->max_connections_per_address;
    lo.header_timeout_s = cfg->header_timeout;
    lo.body_timeout_s = cfg->body_timeout;
    lo.body_min_rate = cfg->body_min_rate;
    lo.idle_timeout_s = cfg->idle_timeout;
    lo.listen = cfg->listen;
    if (http_server_start(&api_srv, &api_app, &lo, &err) < 0) {
        log_write(LOG_ERROR, "main", "cannot start the API listener: %s", err.msg);
        goto out;
    }
    lo.listen = cfg->s3_listen;
    if (http_server_start(&s3_srv, &s3_app, &lo, &err) < 0) {
        log_write(LOG_ERROR, "main", "cannot start the S3 listener: %s", err.msg);
        goto out;
    }
    log_write(LOG_INFO, "main", "api listening on %s, s3 on %s, data in %s", cfg->listen,
              cfg->s3_listen, cfg->data_dir);

    sweep(&actx);
    next_sweep = util_mono_ms() + cfg->sweep_interval * 1000;
    next_trim = util_mono_ms() + TRIM_EVERY_MS;
    for (;;) {
        struct timespec ts;
        int64_t now = util_mono_ms();
        int64_t wait_ms = (next_sweep < next_trim ? next_sweep : next_trim) - now;
        int sig;

        if (wait_ms < 0)
            wait_ms = 0;
        ts.tv_sec = (time_t)(wait_ms / 1000);
        ts.tv_nsec = (long)(wait_ms % 1000) * 1000000L;
        sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGTERM || sig == SIGINT)
            break;
        if (sig >= 0 || errno != EAGAIN)
            continue;
        if (util_mono_ms() >= next_trim) {
            /* catalog connections no longer needed go with their caches and maps, and the
             * allocator gives the free pages of its arenas back to the system: under load
             * too, where memory freed between allocations still in use (a search's, the
             * catalog's pages) would otherwise stay resident in each thread's arena */
            cat_trim(cat, TRIM_IDLE_MS);
            malloc_trim(0);
            next_trim = util_mono_ms() + TRIM_EVERY_MS;
        }
        if (util_mono_ms() >= next_sweep) {
            sweep(&actx);
            next_sweep = util_mono_ms() + cfg->sweep_interval * 1000;
        }
    }

    /* graceful: stop accepting, let in-flight requests finish, then close */
    log_write(LOG_INFO, "main", "shutting down: waiting for %ld in-flight requests",
              http_server_inflight(api_srv) + http_server_inflight(s3_srv));
    http_server_quiesce(api_srv);
    http_server_quiesce(s3_srv);
    {
        int64_t deadline = util_mono_ms() + cfg->shutdown_grace * 1000;
        while ((http_server_inflight(api_srv) > 0 || http_server_inflight(s3_srv) > 0) &&
               util_mono_ms() < deadline) {
            struct timespec d = {0, 20 * 1000000L};
            nanosleep(&d, NULL);
        }
        if (http_server_inflight(api_srv) > 0 || http_server_inflight(s3_srv) > 0)
            log_write(LOG_WARN, "main", "grace period over; closing %ld requests",
                      http_server_inflight(api_srv) + http_server_inflight(s3_srv));
    }
    rc = 0;
out:
    http_server_stop(api_srv);
    http_server_stop(s3_srv);
    s3_ctx_release(&sctx);
    if (actx_ready)
        api_ctx_release(&actx);
    store_close(st);
    cat_close(cat);
    if (rc == 0)
        log_write(LOG_INFO, "main", "stopped");
    return rc;
}

/* ---- the supervisor ------------------------------------------------------------------------ */

/* creates the first admin at first start and says how to reach everything */
static int first_start(const struct cfg *cfg, struct err *err)
{
    int json_logs = strcmp(cfg->log_format, "json") == 0;
    struct catalog *cat = NULL;
    int64_t users = 0;
    char *json = NULL;
    int rc = -1;

    if (open_catalog(cfg, &cat, err) < 0)
        return -1;
    if (cat_user_count(cat, &users, err) < 0)
        goto out;
    if (users == 0) {
        const char *token = getenv("ACERVO_ADMIN_TOKEN");
        char path[600];
        json_t *o;
        int fd;

        if (api_key_provision(cat, ROLE_ADMIN, "admin", token && *token ? token : NULL, &json,
                              err) < 0)
            goto out;
        o = json_loads(json, 0, NULL);
        snprintf(path, sizeof(path), "%s/admin-credentials.json", cfg->data_dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || fchmod(fd, 0600) < 0 || util_write_all(fd, json, strlen(json), err) < 0 ||
            util_write_all(fd, "\n", 1, err) < 0 || fsync(fd) < 0)
            log_write(LOG_WARN, "main", "could not save the admin credentials in %s: %s", path,
                      strerror(errno));
        if (fd >= 0)
            close(fd);
        if (json_logs) {
            /* a log collector keeps lines forever: point at the file, never show secrets */
            log_write(LOG_INFO, "main", "first start: admin created; credentials in %s", path);
        } else {
            /* a person at a terminal (make run); a token they chose is never echoed */
            fprintf(stderr,
                    "acervo: first start, admin created (also saved, mode 0600, in %s)\n"
                    "  API token:      %s\n  S3 access key:  %s\n  S3 secret key:  %s\n",
                    path,
                    token && *token ? "(the one in ACERVO_ADMIN_TOKEN)"
                                    : json_string_value(json_object_get(o, "token")),
                    json_string_value(json_object_get(o, "s3_access_key")),
                    json_string_value(json_object_get(o, "s3_secret_key")));
        }
        json_decref(o);
    }
    if (json_logs)
        log_write(LOG_INFO, "main", "acervo %s: api %s/api/v1, s3 %s, data dir %s", ACERVO_VERSION,
                  cfg->public_url, cfg->s3_public_url, cfg->data_dir);
    else
        fprintf(stderr,
                "acervo %s\n  API:      %s/api/v1  (OpenAPI: %s/api/v1/openapi.json)\n"
                "  S3:       %s  (buckets archive, proxies, delivery)\n  data dir: %s\n",
                ACERVO_VERSION, cfg->public_url, cfg->public_url, cfg->s3_public_url,
                cfg->data_dir);
    rc = 0;
out:
    free(json);
    cat_close(cat);
    return rc;
}

/* ---- the worker process ------------------------------------------------------------------ */

static atomic_int worker_stop;

static void worker_on_signal(int sig)
{
    (void)sig;
    atomic_store(&worker_stop, 1); /* lock-free: safe in a signal handler */
}

static int run_worker(const struct cfg *cfg, int index)
{
    struct jobs_worker_cfg w;
    struct catalog *cat = NULL;
    struct store *st = NULL;
    struct sigaction sa;
    struct err err = {0};
    int rc = EXIT_FATAL;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = worker_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    memset(&w, 0, sizeof(w));
    /* batch work yields the CPU to the API; ffmpeg and the probes inherit it */
    if (cfg->worker_nice > 0 && setpriority(PRIO_PROCESS, 0, (int)cfg->worker_nice) < 0)
        log_write(LOG_WARN, "main", "worker %d: cannot lower its priority: %s", index,
                  strerror(errno));
    if (jobs_queues_parse(cfg->queues, w.slots, &err) < 0 || open_catalog(cfg, &cat, &err) < 0 ||
        open_store(cfg, &st, &err) < 0) {
        log_write(LOG_ERROR, "main", "worker %d cannot start: %s", index, err.msg);
        goto out;
    }
    if (open_doorbell(cfg, &err) < 0)
        log_write(LOG_WARN, "main", "worker %d will only find work at due times: %s", index,
                  err.msg);
    w.cat = cat;
    w.store = st;
    w.cfg = cfg;
    w.lease_ms = cfg->job_lease * 1000;
    w.heartbeat_ms = w.lease_ms / 10;
    if (w.heartbeat_ms < 100)
        w.heartbeat_ms = 100;
    if (w.heartbeat_ms > 5000)
        w.heartbeat_ms = 5000;
    if (jobs_worker_run(&w, &worker_stop, &err) < 0) {
        log_write(LOG_ERROR, "main", "worker %d: %s", index, err.msg);
        goto out;
    }
    rc = 0;
out:
    store_close(st);
    cat_close(cat);
    return rc;
}

/* ---- the supervisor -------------------------------------------------------------------------- */

/*
 * Waits up to wait_ms for a stop signal or a child's exit, with the signals blocked and
 * taken synchronously, so none can slip between a check and the wait. Returns the signal
 * (SIGTERM/SIGINT), SIGCHLD, or 0 on timeout.
 */
static int supervisor_wait(const sigset_t *set, int64_t wait_ms)
{
    struct timespec ts;
    int sig;

    if (wait_ms < 0)
        wait_ms = 0;
    ts.tv_sec = (time_t)(wait_ms / 1000);
    ts.tv_nsec = (long)(wait_ms % 1000) * 1000000L;
    do
        sig = sigtimedwait(set, NULL, &ts);
    while (sig < 0 && errno == EINTR);
    return sig < 0 ? 0 : sig;
}

/** A process the supervisor keeps running. */
struct child {
    const char *name; /* "api", "worker" */
    int index;
    pid_t pid;          /* 0 while not running */
    int64_t started;    /* mono ms */
    int64_t restart_at; /* mono ms; 0 when running */
    long backoff_ms;
};

static pid_t child_start(const struct cfg *cfg, struct child *ch, const sigset_t *old)
{
    pid_t self = getpid();
    pid_t pid = fork();

    if (pid < 0) {
        log_write(LOG_ERROR, "supervisor", "fork failed: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* a child never outlives its supervisor */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != self)
            _exit(0);
        sigprocmask(SIG_SETMASK, old, NULL);
        if (strcmp(ch->name, "api") == 0) {
            util_proc_title_set("acervod: api", NULL);
            _exit(run_api(cfg));
        }
        {
            char title[40], comm[16];

            snprintf(title, sizeof(title), "acervod: worker %d", ch->index);
            snprintf(comm, sizeof(comm), "acervod: w%d", ch->index);
            util_proc_title_set(title, comm);
        }
        _exit(run_worker(cfg, ch->index));
    }
    ch->pid = pid;
    ch->started = util_mono_ms();
    ch->restart_at = 0;
    log_write(LOG_INFO, "supervisor", "%s process %d started (pid %d)", ch->name, ch->index,
              (int)pid);
    return pid;
}

static int supervise(const struct cfg *cfg)
{
    struct child kids[257];
    sigset_t set, old;
    size_t n = 0;
    int stopping = 0, fatal = 0;
    int64_t stop_deadline = 0, reset_ms = (int64_t)cfg->restart_reset * 1000;
    struct err err = {0};
    int slots[JOBS_Q_COUNT];

    if (cfg->workers > 0 && jobs_queues_parse(cfg->queues, slots, &err) < 0) {
        log_write(LOG_ERROR, "supervisor", "cannot start: %s", err.msg);
        return EXIT_FATAL;
    }
    util_proc_title_set("acervod: supervisor", "acervod: super");
    if (strcmp(cfg->role, "all") == 0)
        kids[n++] = (struct child){.name = "api", .backoff_ms = 1000};
    for (long i = 0; i < cfg->workers && n < ARRAY_LEN(kids); i++)
        kids[n++] = (struct child){.name = "worker", .index = (int)i, .backoff_ms = 1000};

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, &old);
    signal(SIGPIPE, SIG_IGN);

    for (size_t i = 0; i < n; i++)
        if (child_start(cfg, &kids[i], &old) < 0)
            return EXIT_FATAL;
    for (;;) {
        int64_t now = util_mono_ms(), wait_ms = 1000;
        size_t alive = 0;
        int status, sig;
        pid_t pid;

        /* reap whatever exited */
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            for (size_t i = 0; i < n; i++) {
                struct child *ch = &kids[i];

                if (ch->pid != pid)
                    continue;
                ch->pid = 0;
                if (stopping)
                    break;
                if (WIFSIGNALED(status))
                    log_write(LOG_ERROR, "supervisor",
                              "%s process %d (pid %d) killed by signal "
                              "%d",
                              ch->name, ch->index, (int)pid, WTERMSIG(status));
                else
                    log_write(LOG_ERROR, "supervisor", "%s process %d (pid %d) exited with %d",
                              ch->name, ch->index, (int)pid, WEXITSTATUS(status));
                if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_FATAL) {
                    log_write(LOG_ERROR, "supervisor", "%s process cannot start; giving up",
                              ch->name);
                    fatal = 1;
                }
                if (now - ch->started >= reset_ms)
                    ch->backoff_ms = 1000;
                ch->restart_at = now + ch->backoff_ms;
                log_write(LOG_INFO, "supervisor", "restarting %s process %d in %ld ms", ch->name,
                          ch->index, ch->backoff_ms);
                ch->backoff_ms = ch->backoff_ms * 2 > 30000 ? 30000 : ch->backoff_ms * 2;
            }
        }
        if (fatal && !stopping) {
            stopping = 1;
            stop_deadline = now + cfg->shutdown_grace * 1000 + 5000;
            for (size_t i = 0; i < n; i++)
                if (kids[i].pid > 0)
                    kill(kids[i].pid, SIGTERM);
        }
        for (size_t i = 0; i < n; i++) {
            struct child *ch = &kids[i];

            if (ch->pid > 0) {
                alive++;
                /* up long enough after a restart: the next crash starts over at 1 s */
                if (ch->backoff_ms > 1000 && now - ch->started >= reset_ms) {
                    ch->backoff_ms = 1000;
                    log_write(LOG_INFO, "supervisor",
                              "%s process %d has run %ld s since its restart; its restart delay "
                              "is back to 1000 ms",
                              ch->name, ch->index, cfg->restart_reset);
                } else if (ch->backoff_ms > 1000 && ch->started + reset_ms - now < wait_ms) {
                    wait_ms = ch->started + reset_ms - now;
                }
                continue;
            }
            if (stopping || !ch->restart_at)
                continue;
            if (now >= ch->restart_at) {
                if (child_start(cfg, ch, &old) > 0)
                    alive++;
                else
                    ch->restart_at = now + ch->backoff_ms;
            } else if (ch->restart_at - now < wait_ms) {
                wait_ms = ch->restart_at - now;
            }
        }
        if (stopping && alive == 0)
            return fatal ? EXIT_FATAL : 0;
        if (stopping && now >= stop_deadline) {
            for (size_t i = 0; i < n; i++)
                if (kids[i].pid > 0)
                    kill(kids[i].pid, SIGKILL);
        }
        sig = supervisor_wait(&set, wait_ms);
        if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
            stopping = 1;
            /* workers get the grace to finish or hand back their jobs, then a kill */
            stop_deadline = util_mono_ms() + cfg->shutdown_grace * 1000 + 5000;
            for (size_t i = 0; i < n; i++)
                if (kids[i].pid > 0)
                    kill(kids[i].pid, SIGTERM);
        }
    }
}

int main(int argc, char **argv)
{
    struct cfg cfg;
    struct err err = {0};
    int first = 1;

    /* everything acervod and its children write (catalog and its -wal/-shm, objects, job
     * scratch, credentials) is its user's alone, whatever umask it was started with */
    umask(077);
    util_proc_title_init(argc, argv);
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--help-markdown") == 0) {
        cfg_markdown(stdout);
        return 0;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("acervod %s\n", ACERVO_VERSION);
        return 0;
    }
    if (argc > 2 && strcmp(argv[1], "keys") == 0 && strcmp(argv[2], "create") == 0)
        return cmd_keys_create(argc, argv);
    if (argc > 1 && strcmp(argv[1], "keys") == 0) {
        fprintf(stderr, "usage: acervod keys create --data-dir DIR --role ROLE [--name N]\n");
        return EXIT_FATAL;
    }
    if (argc > 1 && strcmp(argv[1], "fsck") == 0)
        return cmd_fsck(argc, argv);
    if (argc > 1 && strcmp(argv[1], "import") == 0)
        return cmd_import(argc, argv);
    if (argc > 1 && strcmp(argv[1], "sql") == 0)
        return cmd_sql(argc, argv);
    if (argc > 1 && strcmp(argv[1], "serve") == 0)
        first = 2;
    if (load_cfg(&cfg, argc, argv, first, &err) < 0) {
        fprintf(stderr, "acervod: %s\n", err.msg);
        return EXIT_FATAL;
    }
    if (first_start(&cfg, &err) < 0) {
        fprintf(stderr, "acervod: cannot start: %s\n", err.msg);
        return EXIT_FATAL;
    }
    if (strcmp(cfg.role, "api") == 0) {
        util_proc_title_set("acervod: api", NULL);
        return run_api(&cfg);
    }
    /* role all and worker: the supervisor and its children */
    return supervise(&cfg);
}
