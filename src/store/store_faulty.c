/*
 * store_faulty: a test backend wrapping another store. Every fallible call through it
 * (store, writer and staged ops alike) is counted; the nth and all later ones fail with
 * ERR_IO "injected fault" without reaching the inner store. Calls that cannot fail
 * (close, writer_abort, staged_meta, staged_free) pass through uncounted, so cleanup
 * always works. Writers and staged objects are wrapped so their calls are counted too.
 */
#include "store/store.h"

#include <stdatomic.h>
#include <stdlib.h>

struct faulty_store {
    struct store base;
    struct store *inner;
    long n;            /* first failing call, 1-based; 0 never fails */
    atomic_long calls; /* fallible calls so far */
};

struct faulty_writer {
    struct store_writer base;
    struct store_writer *inner;
};

struct faulty_staged {
    struct store_staged base;
    struct store_staged *inner;
};

static struct faulty_store *faulty_of(struct store *st)
{
    return (struct faulty_store *)st;
}

/* counts one call; -1 with ERR_IO once the nth call is reached */
static int faulty_tick(struct store *st, const char *op, struct err *err)
{
    struct faulty_store *f = faulty_of(st);
    long call = atomic_fetch_add(&f->calls, 1) + 1;

    if (f->n > 0 && call >= f->n)
        return err_set(err, ERR_IO, "injected fault (call %ld, %s)", call, op);
    return 0;
}

static void faulty_close(struct store *st)
{
    struct faulty_store *f = faulty_of(st);

    store_close(f->inner);
    free(f);
}

static int faulty_wrap_writer(struct store *st, struct store_writer *inner,
                              struct store_writer **out)
{
    struct faulty_writer *w = xcalloc(1, sizeof(*w));

    w->base.st = st;
    w->inner = inner;
    *out = &w->base;
    return 0;
}

static int faulty_object_writer(struct store *st, const char *bucket, const char *key, int flags,
                                struct store_writer **out, struct err *err)
{
    struct store_writer *inner;

    if (faulty_tick(st, "object_writer", err) < 0 ||
        store_object_writer(faulty_of(st)->inner, bucket, key, flags, &inner, err) < 0)
        return -1;
    return faulty_wrap_writer(st, inner, out);
}

static int faulty_part_writer(struct store *st, const char *upload_id, int part_number,
                              int64_t length, int flags, struct store_writer **out, struct err *err)
{
    struct store_writer *inner;

    if (faulty_tick(st, "part_writer", err) < 0 ||
        store_part_writer(faulty_of(st)->inner, upload_id, part_number, length, flags, &inner,
                          err) < 0)
        return -1;
    return faulty_wrap_writer(st, inner, out);
}

static int faulty_writer_write(struct store_writer *sw, const void *data, size_t n, struct err *err)
{
    struct faulty_writer *w = (struct faulty_writer *)sw;

    if (faulty_tick(sw->st, "writer_write", err) < 0)
        return -1;
    return store_writer_write(w->inner, data, n, err);
}

static int faulty_writer_commit(struct store_writer *sw, const char *content_type,
                                const char *headers, struct store_meta *out, struct err *err)
{
    struct faulty_writer *w = (struct faulty_writer *)sw;
    int rc;

    if (faulty_tick(sw->st, "writer_commit", err) < 0) {
        store_writer_abort(w->inner);
        rc = -1;
    } else {
        rc = store_writer_commit(w->inner, content_type, headers, out, err);
    }
    free(w);
    return rc;
}

static void faulty_writer_abort(struct store_writer *sw)
{
    struct faulty_writer *w = (struct faulty_writer *)sw;

    store_writer_abort(w->inner);
    free(w);
}

static int faulty_object_stat(struct store *st, const char *bucket, const char *key,
                              struct store_meta *out, struct err *err)
{
    if (faulty_tick(st, "object_stat", err) < 0)
        return -1;
    return store_object_stat(faulty_of(st)->inner, bucket, key, out, err);
}

static int faulty_object_open(struct store *st, const char *bucket, const char *key, int *fd,
                              struct store_meta *out, struct err *err)
{
    if (faulty_tick(st, "object_open", err) < 0)
        return -1;
    return store_object_open(faulty_of(st)->inner, bucket, key, fd, out, err);
}

static int faulty_object_delete(struct store *st, const char *bucket, const char *key,
                                struct err *err)
{
    if (faulty_tick(st, "object_delete", err) < 0)
        return -1;
    return store_object_delete(faulty_of(st)->inner, bucket, key, err);
}

static int faulty_object_list(struct store *st, const char *bucket,
                              const struct store_list_query *q, store_list_fn cb, void *ctx,
                              struct err *err)
{
    if (faulty_tick(st, "object_list", err) < 0)
        return -1;
    return store_object_list_query(faulty_of(st)->inner, bucket, q, cb, ctx, err);
}

static int faulty_object_copy(struct store *st, const char *src_bucket, const char *src_key,
                              const char *bucket, const char *key, const struct store_meta *replace,
                              struct store_meta *out, struct err *err)
{
    if (faulty_tick(st, "object_copy", err) < 0)
        return -1;
    return store_object_copy(faulty_of(st)->inner, src_bucket, src_key, bucket, key, replace, out,
                             err);
}

static int faulty_upload_create(struct store *st, const char *bucket, const char *key,
                                const char *content_type, const char *headers,
                                struct store_upload *out, struct err *err)
{
    if (faulty_tick(st, "upload_create", err) < 0)
        return -1;
    return store_upload_create(faulty_of(st)->inner, bucket, key, content_type, headers, out, err);
}

static int faulty_upload_create_sized(struct store *st, const char *bucket, const char *key,
                                      const char *content_type, int64_t part_size,
                                      int64_t total_size, struct store_upload *out, struct err *err)
{
    if (faulty_tick(st, "upload_create_sized", err) < 0)
        return -1;
    return store_upload_create_sized(faulty_of(st)->inner, bucket, key, content_type, part_size,
                                     total_size, out, err);
}

static int faulty_upload_get(struct store *st, const char *upload_id, struct store_upload *out,
                             struct err *err)
{
    if (faulty_tick(st, "upload_get", err) < 0)
        return -1;
    return store_upload_get(faulty_of(st)->inner, upload_id, out, err);
}

static int faulty_upload_parts(struct store *st, const char *upload_id, struct store_part **parts,
                               size_t *n, struct err *err)
{
    if (faulty_tick(st, "upload_parts", err) < 0)
        return -1;
    return store_upload_parts(faulty_of(st)->inner, upload_id, parts, n, err);
}

static int faulty_upload_list(struct store *st, const char *bucket,
                              int (*cb)(void *ctx, const struct store_upload *u), void *ctx,
                              struct err *err)
{
    if (faulty_tick(st, "upload_list", err) < 0)
        return -1;
    return store_upload_list(faulty_of(st)->inner, bucket, cb, ctx, err);
}

static int faulty_upload_abort(struct store *st, const char *upload_id, struct err *err)
{
    if (faulty_tick(st, "upload_abort", err) < 0)
        return -1;
    return store_upload_abort(faulty_of(st)->inner, upload_id, err);
}

static int faulty_upload_assemble(struct store *st, const char *upload_id,
                                  const struct store_part_ref *refs, size_t n,
                                  int64_t min_part_size, struct store_staged **out, struct err *err)
{
    struct faulty_staged *sg;
    struct store_staged *inner;

    if (faulty_tick(st, "upload_assemble", err) < 0 ||
        store_upload_assemble(faulty_of(st)->inner, upload_id, refs, n, min_part_size, &inner,
                              err) < 0)
        return -1;
    sg = xcalloc(1, sizeof(*sg));
    sg->base.st = st;
    sg->inner = inner;
    *out = &sg->base;
    return 0;
}

static const struct store_meta *faulty_staged_meta(struct store_staged *ssg)
{
    return store_staged_meta(((struct faulty_staged *)ssg)->inner);
}

static int faulty_staged_commit(struct store_staged *ssg, const char *bucket, const char *key,
                                struct store_meta *out, struct err *err)
{
    if (faulty_tick(ssg->st, "staged_commit", err) < 0)
        return -1;
    return store_staged_commit(((struct faulty_staged *)ssg)->inner, bucket, key, out, err);
}

static void faulty_staged_free(struct store_staged *ssg)
{
    struct faulty_staged *sg = (struct faulty_staged *)ssg;

    store_staged_free(sg->inner);
    free(sg);
}

static const struct store_ops faulty_ops = {
    .name = "faulty",
    .close = faulty_close,
    .object_writer = faulty_object_writer,
    .part_writer = faulty_part_writer,
    .writer_write = faulty_writer_write,
    .writer_commit = faulty_writer_commit,
    .writer_abort = faulty_writer_abort,
    .object_stat = faulty_object_stat,
    .object_open = faulty_object_open,
    .object_delete = faulty_object_delete,
    .object_list = faulty_object_list,
    .object_copy = faulty_object_copy,
    .upload_create = faulty_upload_create,
    .upload_create_sized = faulty_upload_create_sized,
    .upload_get = faulty_upload_get,
    .upload_parts = faulty_upload_parts,
    .upload_list = faulty_upload_list,
    .upload_abort = faulty_upload_abort,
    .upload_assemble = faulty_upload_assemble,
    .staged_meta = faulty_staged_meta,
    .staged_commit = faulty_staged_commit,
    .staged_free = faulty_staged_free,
};

int store_faulty_open(struct store **out, struct store *inner, long n, struct err *err)
{
    struct faulty_store *f;

    *out = NULL;
    if (!inner)
        return err_set(err, ERR_INVALID, "faulty store needs an inner store");
    if (n < 0)
        return err_set(err, ERR_INVALID, "fault index must be >= 0");
    f = xcalloc(1, sizeof(*f));
    f->base.ops = &faulty_ops;
    f->inner = inner;
    f->n = n;
    atomic_init(&f->calls, 0);
    *out = &f->base;
    return 0;
}
