/*
 * store: the object store interface. Buckets hold immutable objects under validated
 * keys; multipart uploads assemble parts into a staged object that is committed under
 * a key chosen after hashing. Backends are vtables (store_fs.c; S3 later); callers use
 * the store_* wrappers only.
 */
#ifndef ACERVO_STORE_H
#define ACERVO_STORE_H

#include "core/core.h"

#include <stdint.h>

/** The buckets acervo uses; any other name is NoSuchBucket. */
#define STORE_BUCKET_ARCHIVE  "archive"
#define STORE_BUCKET_PROXIES  "proxies"
#define STORE_BUCKET_DELIVERY "delivery"

/** Largest key in bytes (S3's limit). */
#define STORE_KEY_MAX 1024
/** Largest part number (S3's limit). */
#define STORE_PART_MAX 10000
/** Largest part in bytes (S3's limit, 5 GiB); a writer past it fails with ERR_LIMIT. */
#define STORE_PART_SIZE_MAX (INT64_C(5) << 30)
/** Largest object in bytes (S3's limit, 5 TiB); writers and assembly fail with ERR_LIMIT. */
#define STORE_OBJECT_SIZE_MAX (INT64_C(5) << 40)
/** Longest content type in bytes (fits struct store_meta.content_type). */
#define STORE_CONTENT_TYPE_MAX 127
/**
 * Largest block of headers kept with an object (struct store_meta.headers), in bytes:
 * S3's 2 KiB of user metadata plus room for the standard representation headers.
 */
#define STORE_HEADERS_MAX 3072

/** What the store keeps about an object, committed atomically with it. */
struct store_meta {
    int64_t size;
    int64_t mtime;          /* seconds since epoch */
    char etag[80];          /* S3 ETag without quotes: md5 hex, or md5-of-md5s "-N" */
    char sha256[65];        /* hex, "" when not computed */
    char content_type[128]; /* "" when unknown */
    /* headers the client gave the object (x-amz-meta-*, Cache-Control, ...): "name:value\n"
     * lines, names lowercase, in the order given; "" when none (see store_headers_valid) */
    char headers[STORE_HEADERS_MAX + 1];
};

/** One part of a multipart upload as stored. */
struct store_part {
    int number;
    int64_t size;
    int64_t mtime;
    char etag[33]; /* md5 hex, no quotes */
};

/** A part named by the client at completion. */
struct store_part_ref {
    int number;
    char etag[80]; /* as sent, quotes allowed */
};

/**
 * An in-progress multipart upload. A sized upload (store_upload_create_sized) has its
 * layout fixed up front: part n covers bytes [(n-1) * part_size, n * part_size) of
 * total_size, the last one what remains; both are 0 for an unsized upload.
 */
struct store_upload {
    char upload_id[33];
    char bucket[64];
    char key[STORE_KEY_MAX + 1];
    char content_type[128];
    char headers[STORE_HEADERS_MAX + 1]; /* for the object, as in struct store_meta */
    int64_t initiated;                   /* seconds since epoch */
    int64_t part_size;  /* sized uploads: bytes of every part but the last; else 0 */
    int64_t total_size; /* sized uploads: bytes of the object; else 0 */
};

struct store;

/** A writer; each backend's writer struct embeds it first. */
struct store_writer {
    struct store *st; /* the store whose ops serve this writer */
};

/** An assembled, not yet committed object; each backend's struct embeds it first. */
struct store_staged {
    struct store *st;
};

/**
 * What a listing returns (store_object_list_query): keys starting with prefix that sort
 * after start_after, in key order (bytewise). With a delimiter, every key whose rest after
 * the prefix contains it is rolled up into one common prefix (the key up to and including
 * the first delimiter), reported once, in key order among the keys, and only if it sorts
 * after start_after (so a page that starts after a common prefix never repeats it).
 */
struct store_list_query {
    const char *prefix;      /* NULL or "": every key */
    const char *start_after; /* NULL or "": from the first key */
    const char *delimiter;   /* NULL or "": no roll-up */
};

/**
 * Called by a listing for each key (m its metadata) or common prefix (m NULL); non-zero
 * stops the listing.
 */
typedef int (*store_list_fn)(void *ctx, const char *key, const struct store_meta *m);

/** Flags for store_object_writer / store_part_writer. */
enum store_writer_flags {
    STORE_WRITER_SHA256 = 1, /* also compute the SHA-256 while streaming */
};

/** A backend. Every backend struct begins with struct store. */
struct store_ops {
    const char *name;
    void (*close)(struct store *st);

    int (*object_writer)(struct store *st, const char *bucket, const char *key, int flags,
                         struct store_writer **out, struct err *err);
    int (*part_writer)(struct store *st, const char *upload_id, int part_number, int64_t length,
                       int flags, struct store_writer **out, struct err *err);
    int (*writer_write)(struct store_writer *w, const void *data, size_t n, struct err *err);
    int (*writer_commit)(struct store_writer *w, const char *content_type, const char *headers,
                         struct store_meta *out, struct err *err);
    void (*writer_abort)(struct store_writer *w);

    int (*object_stat)(struct store *st, const char *bucket, const char *key,
                       struct store_meta *out, struct err *err);
    int (*object_open)(struct store *st, const char *bucket, const char *key, int *fd,
                       struct store_meta *out, struct err *err);
    int (*object_delete)(struct store *st, const char *bucket, const char *key, struct err *err);
    int (*object_list)(struct store *st, const char *bucket, const struct store_list_query *q,
                       store_list_fn cb, void *ctx, struct err *err);
    int (*object_copy)(struct store *st, const char *src_bucket, const char *src_key,
                       const char *bucket, const char *key, const struct store_meta *replace,
                       struct store_meta *out, struct err *err);

    int (*upload_create)(struct store *st, const char *bucket, const char *key,
                         const char *content_type, const char *headers, struct store_upload *out,
                         struct err *err);
    int (*upload_create_sized)(struct store *st, const char *bucket, const char *key,
                               const char *content_type, int64_t part_size, int64_t total_size,
                               struct store_upload *out, struct err *err);
    int (*upload_get)(struct store *st, const char *upload_id, struct store_upload *out,
                      struct err *err);
    int (*upload_parts)(struct store *st, const char *upload_id, struct store_part **parts,
                        size_t *n, struct err *err);
    int (*upload_list)(struct store *st, const char *bucket,
                       int (*cb)(void *ctx, const struct store_upload *u), void *ctx,
                       struct err *err);
    int (*upload_abort)(struct store *st, const char *upload_id, struct err *err);
    int (*upload_assemble)(struct store *st, const char *upload_id,
                           const struct store_part_ref *refs, size_t n, int64_t min_part_size,
                           struct store_staged **out, struct err *err);
    const struct store_meta *(*staged_meta)(struct store_staged *sg);
    int (*staged_commit)(struct store_staged *sg, const char *bucket, const char *key,
                         struct store_meta *out, struct err *err);
    void (*staged_free)(struct store_staged *sg);
};

/** The handle; each backend's struct embeds it first. */
struct store {
    const struct store_ops *ops;
};

/**
 * Opens the filesystem backend rooted at root (created if missing), with the three
 * buckets. Stale temporary files from a crash are removed (never those of another live
 * store open on the same root, so several processes may share it). Fails with ERR_IO if
 * the filesystem lacks user extended attributes.
 */
int store_fs_open(struct store **out, const char *root, struct err *err);
/**
 * Wraps inner so that the nth call (1-based, counting every fallible call through the
 * store, its writers and staged objects) and every call after it fails with ERR_IO
 * "injected fault"; n == 0 never fails. close, writer_abort, staged_meta and staged_free
 * are not counted and always pass through. For tests of error paths.
 */
int store_faulty_open(struct store **out, struct store *inner, long n, struct err *err);
/** Closes the store and frees it (an inner store of a faulty one is closed too). */
void store_close(struct store *st);
/** The backend's name ("fs", "faulty"). */
const char *store_backend_name(const struct store *st);

/** 0 if bucket is one of acervo's buckets, else -1 with ERR_NOTFOUND. */
int store_bucket_valid(const char *bucket, struct err *err);
/**
 * Validates an object key: 1..1024 bytes of valid UTF-8, no NUL or control characters, no
 * U+FFFE or U+FFFF (XML cannot carry them), no leading '/', no empty, "." or ".."
 * segments, no trailing '/'. -1 with ERR_INVALID otherwise.
 */
int store_key_valid(const char *key, struct err *err);
/** 1 if id looks like an upload id (32 lowercase hex). */
int store_upload_id_valid(const char *id);
/**
 * Validates a content type: NULL or at most STORE_CONTENT_TYPE_MAX bytes (else ERR_LIMIT)
 * of printable characters (else ERR_INVALID).
 */
int store_content_type_valid(const char *content_type, struct err *err);
/**
 * Validates a block of object headers: NULL, or "name:value\n" lines where name is a
 * lowercase HTTP token and value valid UTF-8 without control characters (tab allowed);
 * at most STORE_HEADERS_MAX bytes (else ERR_LIMIT), else ERR_INVALID.
 */
int store_headers_valid(const char *headers, struct err *err);

/**
 * Opens a writer for a new object. The object becomes visible at commit only; an object
 * already at that key is never replaced (commit fails with ERR_CONFLICT).
 */
int store_object_writer(struct store *st, const char *bucket, const char *key, int flags,
                        struct store_writer **out, struct err *err);
/**
 * Opens a writer for part part_number of an upload; commit replaces an earlier copy.
 * length is the number of bytes the part will have, or -1 if not known: with it, a part of
 * an unsized upload may be written in place (the first part of at least 1 MiB sets the
 * upload's stride; parts of that size then land at (n - 1) * stride in one file), so that
 * assembly of parts 1..k, all but the last of the stride's size, neither copies nor
 * rereads them. A length that the bytes then do not match fails the part at commit.
 * For a sized upload: a part number beyond the last part fails with ERR_INVALID
 * "InvalidPart"; another writer of the same part still open fails with ERR_CONFLICT; an
 * upload already assembled fails with ERR_CONFLICT (its parts can no longer change). The
 * part must be exactly its layout size: more bytes fail at the write that exceeds it,
 * fewer at commit, both with ERR_INVALID "InvalidPart" and nothing recorded. Once the
 * writer has written into the upload, an earlier copy of the part is gone even if the
 * writer is then aborted.
 */
int store_part_writer(struct store *st, const char *upload_id, int part_number, int64_t length,
                      int flags, struct store_writer **out, struct err *err);
/** Appends data; the MD5 (and SHA-256 if asked) advance as it streams. */
int store_writer_write(struct store_writer *w, const void *data, size_t n, struct err *err);
/**
 * Makes the data durable (fsync, rename, fsync dir) and frees w, successful or not. An
 * object keeps content_type and headers (both may be NULL; store_headers_valid) with it;
 * parts ignore them. out (may be NULL) receives size, etag and sha256.
 */
int store_writer_commit(struct store_writer *w, const char *content_type, const char *headers,
                        struct store_meta *out, struct err *err);
/** Discards the data and frees w. NULL is a no-op. */
void store_writer_abort(struct store_writer *w);

/** Metadata of an object; ERR_NOTFOUND if absent. */
int store_object_stat(struct store *st, const char *bucket, const char *key, struct store_meta *out,
                      struct err *err);
/**
 * Opens an object for reading; *fd is the caller's to close. Backends without local
 * files fail with ERR_UNSUPPORTED.
 */
int store_object_open(struct store *st, const char *bucket, const char *key, int *fd,
                      struct store_meta *out, struct err *err);
/** Removes an object (used for orphans only; objects are otherwise never removed). */
int store_object_delete(struct store *st, const char *bucket, const char *key, struct err *err);
/** Calls cb for every object whose key starts with prefix, in key order; cb returning
 * non-zero stops the walk. */
int store_object_list(struct store *st, const char *bucket, const char *prefix, store_list_fn cb,
                      void *ctx, struct err *err);
/**
 * A listing as q describes (struct store_list_query), streamed: keys before start_after
 * are passed over without reading their metadata, and a common prefix is not walked into
 * when the backend can skip it whole. Prefix, start_after and delimiter are at most
 * STORE_KEY_MAX bytes (else ERR_INVALID).
 */
int store_object_list_query(struct store *st, const char *bucket, const struct store_list_query *q,
                            store_list_fn cb, void *ctx, struct err *err);
/**
 * Copies src_bucket/src_key to bucket/key, which must be free (ERR_CONFLICT otherwise,
 * as for a writer). With replace NULL the copy keeps the source's content type and
 * headers, else it takes replace->content_type and replace->headers; size, etag and
 * sha256 are the source's. The fs backend gives an unchanged copy a second name of the
 * same file. ERR_NOTFOUND if the source is missing. out (may be NULL) describes the copy.
 */
int store_object_copy(struct store *st, const char *src_bucket, const char *src_key,
                      const char *bucket, const char *key, const struct store_meta *replace,
                      struct store_meta *out, struct err *err);

/**
 * Starts a multipart upload for bucket/key; out receives its id. The object will carry
 * content_type and headers (both may be NULL; store_headers_valid).
 */
int store_upload_create(struct store *st, const char *bucket, const char *key,
                        const char *content_type, const char *headers, struct store_upload *out,
                        struct err *err);
/**
 * Starts a sized multipart upload: total_size bytes in parts of part_size bytes (the last
 * part gets the remainder), fixed now. Parts are written in place and hashed as they
 * arrive, so assembly neither copies nor rereads what arrived in order. part_size and
 * total_size below 1 fail with ERR_INVALID; a part over STORE_PART_SIZE_MAX, an object
 * over STORE_OBJECT_SIZE_MAX or more than STORE_PART_MAX parts with ERR_LIMIT.
 */
int store_upload_create_sized(struct store *st, const char *bucket, const char *key,
                              const char *content_type, int64_t part_size, int64_t total_size,
                              struct store_upload *out, struct err *err);
/** Looks an upload up; ERR_NOTFOUND if unknown, aborted or completed. */
int store_upload_get(struct store *st, const char *upload_id, struct store_upload *out,
                     struct err *err);
/** The parts received so far in part-number order; *parts is the caller's to free(). */
int store_upload_parts(struct store *st, const char *upload_id, struct store_part **parts,
                       size_t *n, struct err *err);
/** Calls cb for every upload in bucket (NULL: every bucket). */
int store_upload_list(struct store *st, const char *bucket,
                      int (*cb)(void *ctx, const struct store_upload *u), void *ctx,
                      struct err *err);
/** Removes an upload and its parts. ERR_NOTFOUND if unknown. */
int store_upload_abort(struct store *st, const char *upload_id, struct err *err);
/**
 * Checks the client's part list (ascending numbers: ERR_INVALID "InvalidPartOrder";
 * unknown part or etag mismatch: ERR_INVALID "InvalidPart"; a part but the last smaller
 * than min_part_size: ERR_LIMIT "EntityTooSmall"; err->msg starts with the S3 code and a
 * colon) and assembles them into a staged object, hashing SHA-256 in one sequential pass.
 * A sized upload must list every part (else ERR_INVALID "InvalidPart"; min_part_size is
 * not used): its data is staged without a copy, only what was not hashed on arrival is
 * read, and from then on its parts can no longer change (part writers fail with
 * ERR_CONFLICT; a part writer still open makes assembly fail with ERR_CONFLICT).
 * The upload itself stays until store_upload_abort, so a crash before the caller records
 * the result loses nothing.
 */
int store_upload_assemble(struct store *st, const char *upload_id,
                          const struct store_part_ref *refs, size_t n, int64_t min_part_size,
                          struct store_staged **out, struct err *err);
/** Size, etag ("md5-N") and sha256 of a staged object. Valid until it is freed. */
const struct store_meta *store_staged_meta(struct store_staged *sg);
/**
 * Commits a staged object under bucket/key. If an object with the same size and SHA-256
 * is already there the commit succeeds without change (a retried complete); any other
 * object there fails with ERR_CONFLICT. Does not free sg.
 */
int store_staged_commit(struct store_staged *sg, const char *bucket, const char *key,
                        struct store_meta *out, struct err *err);
/** Frees a staged object, removing its data if it was not committed. NULL is a no-op. */
void store_staged_free(struct store_staged *sg);

#endif
