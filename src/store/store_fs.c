/*
 * store_fs: the filesystem backend. Layout, durability protocol and crash reasoning are
 * in docs/internals/store.md. In short:
 *
 *   root/<bucket>/<key>                     objects; metadata in the user.acervo.meta xattr
 *   root/.tmp/i-<hex>/                      one directory per open store (flock'd while
 *                                           open); temp files, staged objects, dying uploads
 *   root/.multipart/<uploadId>/meta         bucket, key, content type, headers, initiated
 *   root/.multipart/<uploadId>/pNNNNN.<md5> parts; the name carries the ETag
 *   root/.multipart/<uploadId>/data         sized uploads: the object, parts written in
 *                                           place; pNNNNN.<md5> are then empty markers
 *   root/.multipart/<uploadId>/sealed       sized uploads: assembled, parts are frozen
 *
 * Every file is written under .tmp, fsynced with its xattr, then linked or renamed into
 * place and its directory fsynced. Objects are linked without replacing anything. Parts
 * of sized uploads are the exception: they are written in place under an OFD lock on
 * their byte range, and a part counts once its marker exists (created after fdatasync).
 */
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define FS_XATTR      "user.acervo.meta"
#define FS_XATTR_MAX  4096                  /* bytes of the encoded metadata */
#define FS_WBUF       ((size_t)256 * 1024)  /* writer buffer: no tiny write(2)s */
#define FS_RBUF       ((size_t)1024 * 1024) /* read buffer of the assembly hash pass */
#define FS_KICK       ((int64_t)8 << 20)    /* start writeback every this many bytes */
#define FS_META_MAX   8192                  /* bytes of an upload's meta file */
#define FS_ROOT_MAX   2048                  /* leaves room for bucket and a 1024-byte key */
#define FS_PART_NAME  39                    /* "p" 5 digits "." 32 hex */
#define FS_RETRIES    8                     /* races with a concurrent rmdir of a parent */
#define FS_FILE_MODE  0600                  /* private to acervod's user, whatever the umask */
#define FS_DIR_MODE   0700
#define FS_DATA       "data"   /* a sized upload's object file */
#define FS_SEAL       "sealed" /* a sized upload was assembled: its parts are frozen */
#define FS_HASHERS    64       /* hash states kept per store beyond those in use */
#define FS_LOCK_WAIT  10000    /* ms a part writer waits for readers of its region */
#define FS_STRIDE     "stride" /* an unsized upload's parts are written in place this far apart */
#define FS_STRIDE_MIN ((int64_t)1 << 20) /* smaller parts are never written in place */
#define FS_EMPTY_MD5  "d41d8cd98f00b204e9800998ecf8427e" /* the ETag of an empty part */

struct fs_hasher;

/**
 * The filesystem store. Everything but the hash states of sized uploads is immutable
 * after open; those are guarded by hmu (the table) and each state's own mutex.
 */
struct fs_store {
    struct store base;
    char root[PATH_MAX];   /* absolute */
    char tmpdir[PATH_MAX]; /* root/.tmp/i-<hex>, this instance's scratch directory */
    int lockfd;            /* tmpdir, flock'd: tells other openers we are alive */
    pthread_mutex_t hmu;
    struct fs_hasher *hashers; /* the table, a list */
    int nhashers;
    unsigned long hseq; /* use stamps, for eviction */
};

/** What the in-memory hasher knows of one part of a sized upload. */
struct fs_hpart {
    unsigned char md5[16];
    unsigned char known; /* md5 is that of the part's marker as last seen */
    int64_t ino;         /* parts hashed: the marker that described the bytes hashed */
    int64_t mtime_ns;
};

/**
 * The running SHA-256 of a sized upload: parts 1..next-1 are hashed. One thread at a
 * time hashes (busy); it owns sha and save and runs without mu held. Reference-counted:
 * the table holds none, every user one; a state dropped from the table (dead) is freed
 * with its last reference.
 */
struct fs_hasher {
    struct fs_hasher *link;
    char id[33];
    int refs;
    int dead;
    unsigned long used;
    pthread_mutex_t mu;
    pthread_cond_t idle; /* signalled when busy drops */
    int busy;
    int reset;       /* a hashed part changed while busy: start over */
    unsigned kicks;  /* bumped by every part commit, so the hashing thread rechecks */
    atomic_int stop; /* a writer waits for the part being hashed: let go of it */
    int next;        /* first part not hashed */
    int count;
    int64_t part_size;
    int64_t total;
    EVP_MD_CTX *sha;
    EVP_MD_CTX *save;       /* sha before the part being hashed, to undo a part let go */
    struct fs_hpart *parts; /* parts 1..cap; grown as parts are seen (fs_hpart_at) */
    int cap;
    int strided; /* an unsized upload written in place: count and total are bounds */
};

enum fs_writer_kind { FS_W_OBJECT, FS_W_PART, FS_W_SIZED };

/** A streaming writer into a temp file. */
struct fs_writer {
    struct store_writer base;
    enum fs_writer_kind kind;
    int fd;
    int flags;
    int failed; /* a write failed: the data is incomplete */
    int64_t size;
    int64_t max;
    EVP_MD_CTX *md5;
    EVP_MD_CTX *sha256; /* NULL unless STORE_WRITER_SHA256 */
    unsigned char *buf;
    size_t blen;
    char tmp[PATH_MAX];
    char bucket[16];
    char key[STORE_KEY_MAX + 1];
    char upload_id[33];
    int part;
    int64_t off;       /* FS_W_SIZED: where the part's region starts in the data file */
    int64_t want;      /* FS_W_SIZED: the part's exact size */
    int64_t written;   /* bytes written (FS_W_SIZED: into the region) */
    int64_t kicked;    /* bytes of those already handed to writeback */
    int64_t part_size; /* FS_W_SIZED: the upload's layout */
    int64_t total;
    int touched;  /* FS_W_SIZED: the region was written to, the old marker removed */
    int overflow; /* FS_W_SIZED: more bytes came than the part holds */
    int strided;  /* FS_W_SIZED into an unsized upload: part_size is its stride */
};

/** An assembled object waiting in the instance's temp directory. */
struct fs_staged {
    struct store_staged base;
    char tmp[PATH_MAX];
    struct store_meta meta;
};

/** One part file (or marker of a sized upload) as found in an upload directory. */
struct fs_part {
    int number;
    int64_t size;
    int64_t ino;
    struct timespec mtime;
    char md5[33];
    int in_place; /* its bytes are in the upload's data file, not in the part file */
};

/* ---- small helpers --------------------------------------------------------------- */

static struct fs_store *fs_of(struct store *st)
{
    return (struct fs_store *)st;
}

/* formats a path into out[PATH_MAX]; ERR_LIMIT if it does not fit */
static ATTR_PRINTF(3, 4) int fs_path(char *out, struct err *err, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, PATH_MAX, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= PATH_MAX)
        return err_set(err, ERR_LIMIT, "path too long");
    return 0;
}

/* the filesystem's own limit on a key: every segment must fit in a directory entry */
static int fs_key_fits(const char *key, struct err *err)
{
    size_t seg = 0;

    for (size_t i = 0;; i++) {
        if (key[i] == '/' || key[i] == '\0') {
            if (i - seg > NAME_MAX)
                return err_set(err, ERR_INVALID,
                               "KeyTooLongError: key segment longer than %d bytes", NAME_MAX);
            if (key[i] == '\0')
                return 0;
            seg = i + 1;
        }
    }
}

static void fs_close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static int fs_flock(int fd, int op)
{
    int rc;

    do
        rc = flock(fd, op);
    while (rc < 0 && errno == EINTR);
    return rc;
}

static int fs_fsync(int fd, const char *what, struct err *err)
{
    if (fsync(fd) < 0)
        return err_errno(err, ERR_IO, "fsync %s", what);
    return 0;
}

static int fs_pwrite_all(int fd, const void *p, size_t n, off_t off, struct err *err)
{
    const char *q = p;

    while (n > 0) {
        ssize_t w = pwrite(fd, q, n, off);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return err_errno(err, ERR_IO, "write failed");
        }
        q += w;
        n -= (size_t)w;
        off += w;
    }
    return 0;
}

/* nftw callback of fs_remove_tree; removal is best effort */
static int fs_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    (void)remove(path);
    return 0;
}

/* rm -rf path, best effort, never following symlinks or crossing mounts */
static void fs_remove_tree(const char *path)
{
    nftw(path, fs_rm_cb, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

static int fs_is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* decodes 32 hex chars into 16 bytes (input already validated) */
static void fs_unhex16(const char *hex, unsigned char out[16])
{
    for (size_t i = 0; i < 16; i++) {
        int hi = hex[2 * i] <= '9' ? hex[2 * i] - '0' : hex[2 * i] - 'a' + 10;
        int lo = hex[2 * i + 1] <= '9' ? hex[2 * i + 1] - '0' : hex[2 * i + 1] - 'a' + 10;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
}

/* finishes ctx into lowercase hex (out holds 2 * digest size + 1) */
static int fs_digest_hex(EVP_MD_CTX *ctx, char *out, struct err *err)
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;

    if (EVP_DigestFinal_ex(ctx, d, &dlen) != 1)
        return err_set(err, ERR_INTERNAL, "digest failed");
    util_hex(d, dlen, out);
    return 0;
}

static EVP_MD_CTX *fs_digest_new(const EVP_MD *md, struct err *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    if (!ctx) {
        err_set(err, ERR_INTERNAL, "out of memory for a digest");
        return NULL;
    }
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        err_set(err, ERR_INTERNAL, "digest %s unavailable", EVP_MD_get0_name(md));
        return NULL;
    }
    return ctx;
}

/* creates a fresh temp file in the instance directory; *fd and path are the caller's */
static int fs_tmp_create(struct fs_store *fs, const char *tag, char *path, int *fd, struct err *err)
{
    char tok[17];

    for (int i = 0; i < FS_RETRIES; i++) {
        util_token_hex(tok, 8);
        if (fs_path(path, err, "%s/%s-%s", fs->tmpdir, tag, tok) < 0)
            return -1;
        *fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, FS_FILE_MODE);
        if (*fd >= 0)
            return 0;
        if (errno != EEXIST)
            return err_errno(err, ERR_IO, "create temp file in %s", fs->tmpdir);
    }
    return err_set(err, ERR_IO, "cannot find a free temp file name in %s", fs->tmpdir);
}

/*
 * Takes (F_RDLCK, F_WRLCK) or drops (F_UNLCK) an OFD lock on [off, off + len) of fd,
 * waiting if wait. OFD locks belong to the open file description, so two descriptors of
 * one process conflict like two processes do. -1 with errno EAGAIN or EACCES on conflict.
 */
static int fs_range_lock(int fd, short type, int64_t off, int64_t len, int wait)
{
    struct flock fl;
    int rc;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)off;
    fl.l_len = (off_t)len;
    do
        rc = fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
    while (rc < 0 && errno == EINTR);
    return rc;
}

/* the type of a lock that conflicts with type on [off, off + len), F_UNLCK if none */
static short fs_range_holder(int fd, short type, int64_t off, int64_t len, int64_t *start)
{
    struct flock fl;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)off;
    fl.l_len = (off_t)len;
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return F_UNLCK;
    if (start)
        *start = (int64_t)fl.l_start;
    return fl.l_type;
}

static void fs_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* a sized upload's number of parts */
static int fs_layout_count(int64_t part_size, int64_t total)
{
    return (int)((total - 1) / part_size + 1);
}

/* the size of part number of a sized upload (number within 1..count) */
static int64_t fs_layout_len(int64_t part_size, int64_t total, int number)
{
    int count = fs_layout_count(part_size, total);

    if (number < count)
        return part_size;
    return total - (int64_t)(count - 1) * part_size;
}

/*
 * Hashes [off, off + len) of in. Returns 1, having hashed part of it, as soon as *stop
 * (may be NULL) is set.
 */
static int fs_hash_range(int in, int64_t off, int64_t len, EVP_MD_CTX *sha, unsigned char *buf,
                         atomic_int *stop, struct err *err)
{
    int64_t end = off + len;

    while (off < end) {
        size_t want = (size_t)(end - off) < FS_RBUF ? (size_t)(end - off) : FS_RBUF;
        ssize_t r;

        if (stop && atomic_load(stop))
            return 1;
        r = pread(in, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return err_errno(err, ERR_IO, "read part");
        if (r == 0)
            return err_set(err, ERR_IO, "part shrank while reading");
        if (EVP_DigestUpdate(sha, buf, (size_t)r) != 1)
            return err_set(err, ERR_INTERNAL, "digest update failed");
        /* hashed data is durable and written once: drop it from the page cache, so an
         * ingest of tens of gigabytes neither evicts the working set nor makes every later
         * write wait for page reclaim (2 GiB upload: 10-11 -> 5.5 CPU-seconds) */
        (void)posix_fadvise(in, (off_t)off, (off_t)r, POSIX_FADV_DONTNEED);
        off += r;
    }
    return 0;
}

/* ---- object metadata in the xattr ----------------------------------------------- */

/*
 * Appends the header lines of headers ("name:value\n" each, checked by store.c) to b, each
 * as "h=name:value\n": the line format of the xattr and of an upload's meta file.
 */
static void fs_headers_encode(struct buf *b, const char *headers)
{
    for (const char *p = headers; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);

        buf_adds(b, "h=", NULL);
        buf_add(b, p, n, NULL);
        buf_adds(b, "\n", NULL);
        p += n + (nl ? 1 : 0);
    }
}

/* appends one "name:value" line (n bytes at v) to headers[STORE_HEADERS_MAX + 1]; drops
 * what does not fit whole */
static void fs_headers_add(char *headers, const char *v, size_t n)
{
    size_t have = strlen(headers);

    if (have + n + 1 > STORE_HEADERS_MAX)
        return;
    memcpy(headers + have, v, n);
    headers[have + n] = '\n';
    headers[have + n + 1] = '\0';
}

/*
 * Encodes the committed metadata: "v=1", etag, sha256, ct, then one "h=" line per header.
 * Readers skip keys they do not know, so objects written before headers existed read as
 * objects without headers, and the format stays v=1.
 */
static int fs_meta_encode(const struct store_meta *m, struct buf *b, struct err *err)
{
    buf_addf(b, NULL, "v=1\netag=%s\nsha256=%s\nct=%s\n", m->etag, m->sha256, m->content_type);
    fs_headers_encode(b, m->headers);
    if (b->len > FS_XATTR_MAX)
        return err_set(err, ERR_LIMIT, "object metadata longer than %d bytes", FS_XATTR_MAX);
    return 0;
}

/* copies value v (length n) into dst[cap], truncating */
static void fs_field(char *dst, size_t cap, const char *v, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static void fs_meta_decode(const char *s, size_t len, struct store_meta *m)
{
    const char *end = s + len;

    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *eq;
        size_t klen;

        if (!nl)
            nl = end;
        eq = memchr(s, '=', (size_t)(nl - s));
        if (eq) {
            klen = (size_t)(eq - s);
            eq++;
            if (klen == 4 && memcmp(s, "etag", 4) == 0)
                fs_field(m->etag, sizeof(m->etag), eq, (size_t)(nl - eq));
            else if (klen == 6 && memcmp(s, "sha256", 6) == 0)
                fs_field(m->sha256, sizeof(m->sha256), eq, (size_t)(nl - eq));
            else if (klen == 2 && memcmp(s, "ct", 2) == 0)
                fs_field(m->content_type, sizeof(m->content_type), eq, (size_t)(nl - eq));
            else if (klen == 1 && *s == 'h')
                fs_headers_add(m->headers, eq, (size_t)(nl - eq));
        }
        s = nl + 1;
    }
}

/* fills m from an open object: size and mtime from fstat, the rest from the xattr */
static int fs_meta_read(int fd, const struct stat *sb, struct store_meta *m, struct err *err)
{
    char buf[FS_XATTR_MAX];
    ssize_t n;

    memset(m, 0, sizeof(*m));
    m->size = (int64_t)sb->st_size;
    m->mtime = (int64_t)sb->st_mtim.tv_sec;
    n = fgetxattr(fd, FS_XATTR, buf, sizeof(buf));
    if (n < 0) {
        if (errno == ENODATA)
            return 0; /* a file not written by acervo: no etag known */
        return err_errno(err, ERR_IO, "read object metadata");
    }
    fs_meta_decode(buf, (size_t)n, m);
    return 0;
}

static int fs_meta_write(int fd, const struct store_meta *m, struct err *err)
{
    struct buf b;
    int rc = 0;

    buf_init(&b, 0);
    if (fs_meta_encode(m, &b, err) < 0)
        rc = -1;
    else if (fsetxattr(fd, FS_XATTR, b.buf, b.len, 0) < 0)
        rc = errno == ENOSPC || errno == E2BIG
                 ? err_errno(err, ERR_LIMIT, "the filesystem has no room for %zu bytes of metadata",
                             b.len)
                 : err_errno(err, ERR_IO, "set object metadata");
    buf_release(&b);
    return rc;
}

/* ---- placing files durably -------------------------------------------------------- */

/*
 * Creates the directories of dir below base (which exists), fsyncing every directory
 * that gained an entry. On failure errno is kept, so callers can retry on ENOENT (a
 * concurrent object_delete removed an empty parent).
 */
static int fs_mkdirs_durable(const char *base, const char *dir, struct err *err)
{
    char tmp[PATH_MAX];
    size_t blen = strlen(base);
    size_t len = strlen(dir);
    char *p;

    if (len >= sizeof(tmp) || len < blen)
        return err_set(err, ERR_INTERNAL, "bad directory %s", dir);
    memcpy(tmp, dir, len + 1);
    for (p = tmp + blen; p; p = strchr(p + 1, '/')) {
        char *next = strchr(p + 1, '/');

        if (p == tmp + len)
            break;
        if (next)
            *next = '\0';
        if (mkdir(tmp, FS_DIR_MODE) == 0) {
            /* tmp gained a directory entry in its parent, p marks the parent's end */
            *p = '\0';
            if (util_fsync_dir(tmp, err) < 0)
                return -1;
            *p = '/';
        } else if (errno != EEXIST) {
            return err_errno(err, ERR_IO, "mkdir %s", tmp);
        }
        if (next)
            *next = '/';
    }
    return 0;
}

/*
 * Explains why key cannot be placed under base although no object has that key: a key
 * is a path, so an object cannot also be the folder of other keys. ERR_CONFLICT
 * "KeyConflict:" naming the clash and -1, or 0 if there is none (anymore).
 */
static int fs_key_clash(const char *base, const char *key, struct err *err)
{
    char path[PATH_MAX];
    struct stat sb;

    for (const char *p = strchr(key, '/'); p; p = strchr(p + 1, '/')) {
        int n = (int)(p - key);

        if (fs_path(path, NULL, "%s/%.*s", base, n, key) == 0 && lstat(path, &sb) == 0 &&
            !S_ISDIR(sb.st_mode))
            return err_set(err, ERR_CONFLICT,
                           "KeyConflict: %.*s is an object, so no key can continue it with '/' "
                           "(keys are paths: an object is not a folder)",
                           n, key);
    }
    if (fs_path(path, NULL, "%s/%s", base, key) == 0 && lstat(path, &sb) == 0 &&
        S_ISDIR(sb.st_mode))
        return err_set(err, ERR_CONFLICT,
                       "KeyConflict: other keys begin with %s/, so it cannot be an object too "
                       "(keys are paths: a folder is not an object)",
                       key);
    return 0;
}

/*
 * Puts the finished file src at root/bucket/key without replacing anything: renamed when
 * move, hard-linked otherwise; then fsyncs the directory. 0 placed, 1 an object is already
 * there, -1 error (ERR_CONFLICT "KeyConflict:" if the key clashes with a folder).
 */
static int fs_place(struct fs_store *fs, const char *src, const char *bucket, const char *key,
                    int move, struct err *err)
{
    char base[PATH_MAX];
    char dst[PATH_MAX];
    char dir[PATH_MAX];
    char *slash;
    int rc = -1;

    if (fs_path(base, err, "%s/%s", fs->root, bucket) < 0 ||
        fs_path(dst, err, "%s/%s", base, key) < 0)
        return -1;
    memcpy(dir, dst, strlen(dst) + 1);
    slash = strrchr(dir, '/');
    *slash = '\0';
    for (int attempt = 0;; attempt++) {
        if (fs_mkdirs_durable(base, dir, err) < 0) {
            int e = errno;

            if (e == ENOENT && attempt < FS_RETRIES)
                continue;
            if ((e == ENOTDIR || e == EEXIST) && fs_key_clash(base, key, err) == 0)
                return err_set(err, ERR_CONFLICT, "a prefix of key %s is an object", key);
            return -1;
        }
        if (move) {
            rc = renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE);
            if (rc < 0 && (errno == EINVAL || errno == ENOSYS)) {
                /* no RENAME_NOREPLACE here: link (never replaces), then drop src */
                rc = link(src, dst);
                if (rc == 0)
                    unlink(src);
            }
        } else {
            rc = link(src, dst);
        }
        if (rc == 0)
            break;
        if (errno == ENOENT && attempt < FS_RETRIES && access(src, F_OK) == 0)
            continue;
        if (errno == EEXIST || errno == ENOTDIR) {
            int e = errno;

            if (fs_key_clash(base, key, err) < 0)
                return -1;
            if (e == EEXIST)
                return 1;
            return err_set(err, ERR_CONFLICT, "a prefix of key %s is an object", key);
        }
        return err_errno(err, ERR_IO, "place object %s/%s", bucket, key);
    }
    return util_fsync_dir(dir, err);
}

/* ---- open / close ------------------------------------------------------------------- */

static const struct store_ops fs_ops;

/*
 * Removes what crashed instances left in root/.tmp: every entry that is not the
 * directory of a live instance (whose flock we cannot take). Called with .tmp locked.
 */
static int fs_sweep_tmp(const char *tmproot, struct err *err)
{
    char path[PATH_MAX];
    DIR *d = opendir(tmproot);
    struct dirent *de;
    int removed = 0;

    if (!d)
        return err_errno(err, ERR_IO, "open %s", tmproot);
    for (;;) {
        struct stat sb;
        int fd;

        errno = 0;
        de = readdir(d);
        if (!de)
            break;

        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (fs_path(path, NULL, "%s/%s", tmproot, de->d_name) < 0)
            continue;
        if (lstat(path, &sb) < 0)
            continue;
        if (!S_ISDIR(sb.st_mode)) {
            if (unlink(path) == 0)
                removed++;
            continue;
        }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            fs_remove_tree(path);
            removed++;
        }
        close(fd);
    }
    if (errno != 0)
        log_write(LOG_WARN, "store", "reading %s: %s", tmproot, strerror(errno));
    closedir(d);
    if (removed > 0)
        log_write(LOG_INFO, "store", "removed %d stale temp entries from %s", removed, tmproot);
    return 0;
}

/* creates this instance's scratch directory and locks it; .tmp is locked by the caller */
static int fs_instance_create(struct fs_store *fs, const char *tmproot, struct err *err)
{
    char tok[17];

    for (int i = 0; i < FS_RETRIES; i++) {
        util_token_hex(tok, 8);
        if (fs_path(fs->tmpdir, err, "%s/i-%s", tmproot, tok) < 0)
            return -1;
        if (mkdir(fs->tmpdir, FS_DIR_MODE) == 0)
            break;
        if (errno != EEXIST)
            return err_errno(err, ERR_IO, "mkdir %s", fs->tmpdir);
        if (i == FS_RETRIES - 1)
            return err_set(err, ERR_IO, "cannot create an instance directory in %s", tmproot);
    }
    fs->lockfd = open(fs->tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fs->lockfd < 0)
        return err_errno(err, ERR_IO, "open %s", fs->tmpdir);
    if (fs_flock(fs->lockfd, LOCK_EX | LOCK_NB) < 0)
        return err_errno(err, ERR_IO, "lock %s", fs->tmpdir);
    return 0;
}

/* fails with a clear message when the filesystem cannot keep object metadata */
static int fs_probe_xattr(struct fs_store *fs, struct err *err)
{
    char path[PATH_MAX];
    int fd;
    int rc = 0;

    if (fs_tmp_create(fs, "probe", path, &fd, err) < 0)
        return -1;
    if (fsetxattr(fd, FS_XATTR, "v=1\n", 4, 0) < 0) {
        if (errno == ENOTSUP || errno == EOPNOTSUPP || errno == EPERM)
            rc = err_errno(err, ERR_IO,
                           "the filesystem under %s does not support user extended attributes "
                           "(needed for object metadata; mount with user_xattr)",
                           fs->root);
        else
            rc = err_errno(err, ERR_IO, "probe extended attributes under %s", fs->root);
    }
    close(fd);
    unlink(path);
    return rc;
}

int store_fs_open(struct store **out, const char *root, struct err *err)
{
    static const char *const dirs[] = {".tmp", ".multipart", STORE_BUCKET_ARCHIVE,
                                       STORE_BUCKET_PROXIES, STORE_BUCKET_DELIVERY};
    struct fs_store *fs;
    char path[PATH_MAX];
    char real[PATH_MAX];
    int tmpfd = -1;

    *out = NULL;
    if (!root || !*root)
        return err_set(err, ERR_INVALID, "store root is empty");
    if (strlen(root) > FS_ROOT_MAX)
        return err_set(err, ERR_INVALID, "store root longer than %d bytes", FS_ROOT_MAX);
    if (util_mkdirs(root, err) < 0)
        return -1;
    if (!realpath(root, real))
        return err_errno(err, ERR_IO, "resolve %s", root);
    if (strlen(real) > FS_ROOT_MAX)
        return err_set(err, ERR_INVALID, "store root longer than %d bytes", FS_ROOT_MAX);

    fs = xcalloc(1, sizeof(*fs));
    fs->base.ops = &fs_ops;
    fs->lockfd = -1;
    pthread_mutex_init(&fs->hmu, NULL);
    memcpy(fs->root, real, strlen(real) + 1);
    for (size_t i = 0; i < ARRAY_LEN(dirs); i++) {
        if (fs_path(path, err, "%s/%s", fs->root, dirs[i]) < 0)
            goto out_free;
        if (mkdir(path, FS_DIR_MODE) < 0 && errno != EEXIST) {
            err_errno(err, ERR_IO, "mkdir %s", path);
            goto out_free;
        }
    }
    if (util_fsync_dir(fs->root, err) < 0)
        goto out_free;

    /* .tmp's lock serialises openers: an instance directory is locked before anyone else
     * can look at it, and the sweep spares only locked ones */
    if (fs_path(path, err, "%s/.tmp", fs->root) < 0)
        goto out_free;
    tmpfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (tmpfd < 0) {
        err_errno(err, ERR_IO, "open %s", path);
        goto out_free;
    }
    if (fs_flock(tmpfd, LOCK_EX) < 0) {
        err_errno(err, ERR_IO, "lock %s", path);
        goto out_close_tmp;
    }
    if (fs_sweep_tmp(path, err) < 0 || fs_instance_create(fs, path, err) < 0)
        goto out_close_tmp;
    close(tmpfd);
    if (fs_probe_xattr(fs, err) < 0)
        goto out_instance;
    log_write(LOG_INFO, "store", "fs store open at %s", fs->root);
    *out = &fs->base;
    return 0;

out_close_tmp:
    close(tmpfd);
out_instance:
    if (fs->lockfd >= 0) {
        fs_remove_tree(fs->tmpdir);
        close(fs->lockfd);
    }
out_free:
    pthread_mutex_destroy(&fs->hmu);
    free(fs);
    return -1;
}

static void fs_hasher_free(struct fs_hasher *h);

static void fs_close(struct store *st)
{
    struct fs_store *fs = fs_of(st);

    while (fs->hashers) {
        struct fs_hasher *h = fs->hashers;

        fs->hashers = h->link;
        fs_hasher_free(h);
    }
    pthread_mutex_destroy(&fs->hmu);
    fs_remove_tree(fs->tmpdir);
    close(fs->lockfd);
    free(fs);
}

/* ---- incremental hashing of sized uploads ----------------------------------------- */

static int fs_parts_scan(struct fs_store *fs, const char *id, const struct store_upload *u,
                         struct fs_part **parts, size_t *n, struct err *err);

static void fs_hasher_free(struct fs_hasher *h)
{
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->idle);
    EVP_MD_CTX_free(h->sha);
    EVP_MD_CTX_free(h->save);
    free(h->parts);
    free(h);
}

/* starts the hash over; the caller owns the state (mu held and not busy, or busy) */
static void fs_hasher_restart(struct fs_hasher *h)
{
    if (EVP_DigestInit_ex(h->sha, EVP_sha256(), NULL) != 1)
        log_write(LOG_WARN, "store", "cannot restart the hash of upload %s", h->id);
    h->next = 1;
    h->reset = 0;
}

/*
 * The hash state of upload id with a reference (fs_hasher_put releases it); created
 * empty if create and there is none (NULL only then, if a digest cannot be set up).
 * *created (may be NULL) tells the caller to teach it the markers already on disk.
 */
static struct fs_hasher *fs_hasher_get(struct fs_store *fs, const char *id, int64_t part_size,
                                       int64_t total, int create, int *created)
{
    struct fs_hasher *h;
    struct fs_hasher **pp;
    struct fs_hasher **victim = NULL;

    if (created)
        *created = 0;
    pthread_mutex_lock(&fs->hmu);
    for (h = fs->hashers; h; h = h->link)
        if (strcmp(h->id, id) == 0)
            break;
    if (h || !create) {
        if (h) {
            h->refs++;
            h->used = ++fs->hseq;
        }
        pthread_mutex_unlock(&fs->hmu);
        return h;
    }
    /* keep the table bounded: forget the least recently used idle state */
    if (fs->nhashers >= FS_HASHERS) {
        for (pp = &fs->hashers; *pp; pp = &(*pp)->link)
            if ((*pp)->refs == 0 && (!victim || (*pp)->used < (*victim)->used))
                victim = pp;
        if (victim) {
            struct fs_hasher *v = *victim;

            *victim = v->link;
            fs->nhashers--;
            fs_hasher_free(v);
        }
    }
    h = xcalloc(1, sizeof(*h));
    memcpy(h->id, id, sizeof(h->id));
    h->part_size = part_size;
    h->total = total;
    h->count = fs_layout_count(part_size, total);
    h->next = 1;
    h->sha = fs_digest_new(EVP_sha256(), NULL);
    h->save = EVP_MD_CTX_new();
    if (!h->sha || !h->save) {
        EVP_MD_CTX_free(h->sha);
        EVP_MD_CTX_free(h->save);
        free(h);
        pthread_mutex_unlock(&fs->hmu);
        return NULL;
    }
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->idle, NULL);
    atomic_init(&h->stop, 0);
    h->refs = 1;
    h->used = ++fs->hseq;
    h->link = fs->hashers;
    fs->hashers = h;
    fs->nhashers++;
    pthread_mutex_unlock(&fs->hmu);
    if (created)
        *created = 1;
    return h;
}

static void fs_hasher_put(struct fs_store *fs, struct fs_hasher *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&fs->hmu);
    if (--h->refs == 0 && h->dead)
        fs_hasher_free(h);
    pthread_mutex_unlock(&fs->hmu);
}

/* forgets upload id's state (aborted) */
static void fs_hasher_drop(struct fs_store *fs, const char *id)
{
    pthread_mutex_lock(&fs->hmu);
    for (struct fs_hasher **pp = &fs->hashers; *pp; pp = &(*pp)->link) {
        struct fs_hasher *h = *pp;

        if (strcmp(h->id, id) != 0)
            continue;
        *pp = h->link;
        fs->nhashers--;
        if (h->refs == 0)
            fs_hasher_free(h);
        else
            h->dead = 1;
        break;
    }
    pthread_mutex_unlock(&fs->hmu);
}

/*
 * What the state knows of part k (1..count), its slot made if needed; mu held. States of
 * strided uploads may count 10,000 parts of which a few exist: slots come as parts do.
 */
static struct fs_hpart *fs_hpart_at(struct fs_hasher *h, int k)
{
    if (k > h->cap) {
        int cap = h->cap ? h->cap : 16;

        while (cap < k)
            cap *= 2;
        if (cap > h->count)
            cap = h->count;
        h->parts = xrealloc(h->parts, (size_t)cap * sizeof(*h->parts));
        memset(h->parts + h->cap, 0, (size_t)(cap - h->cap) * sizeof(*h->parts));
        h->cap = cap;
    }
    return &h->parts[k - 1];
}

/* records the markers found on disk that the state does not know yet; mu held */
static void fs_hasher_learn(struct fs_hasher *h, const struct fs_part *parts, size_t np)
{
    for (size_t i = 0; i < np; i++) {
        struct fs_hpart *p;

        if (parts[i].number < 1 || parts[i].number > h->count || !parts[i].in_place)
            continue;
        p = fs_hpart_at(h, parts[i].number);
        if (p->known)
            continue;
        fs_unhex16(parts[i].md5, p->md5);
        p->known = 1;
    }
}

/*
 * Part number is about to change (its marker is gone and we hold its region): it is no
 * longer known, and if it was hashed the hash starts over.
 */
static void fs_hasher_invalidate(struct fs_store *fs, const char *id, int number)
{
    struct fs_hasher *h = fs_hasher_get(fs, id, 0, 0, 0, NULL);

    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    if (number <= h->cap)
        h->parts[number - 1].known = 0;
    if (h->next > number) {
        if (h->busy)
            h->reset = 1;
        else
            fs_hasher_restart(h);
    }
    pthread_mutex_unlock(&h->mu);
    fs_hasher_put(fs, h);
}

/*
 * Hashes part k (whose marker should be named md5) into h->sha; the caller is busy.
 * The region is read-locked throughout, so no writer changes it, and the marker is
 * checked under that lock, so the bytes are the ones it describes (*sb: the marker).
 * 0 hashed; 1 not now (a writer holds the region, or asked us to let go); 2 the marker
 * is gone; -1 error. On anything but 0, h->sha is as before.
 */
static int fs_hasher_part(struct fs_store *fs, struct fs_hasher *h, int *fd, unsigned char **buf,
                          int k, const char *md5, struct stat *sb, struct err *err)
{
    char path[PATH_MAX];
    int64_t off = (int64_t)(k - 1) * h->part_size;
    int64_t len = fs_layout_len(h->part_size, h->total, k);
    int rc;

    if (*fd < 0) {
        if (fs_path(path, err, "%s/.multipart/%s/" FS_DATA, fs->root, h->id) < 0)
            return -1;
        *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (*fd < 0)
            return err_errno(err, ERR_IO, "open %s", path);
    }
    if (!*buf)
        *buf = xmalloc(FS_RBUF);
    if (fs_range_lock(*fd, F_RDLCK, off, len, 0) < 0)
        return errno == EAGAIN || errno == EACCES ? 1 : err_errno(err, ERR_IO, "lock part %d", k);
    if (fs_path(path, err, "%s/.multipart/%s/p%05d.%s", fs->root, h->id, k, md5) < 0) {
        rc = -1;
        goto out_unlock;
    }
    if (stat(path, sb) < 0) {
        rc = errno == ENOENT ? 2 : err_errno(err, ERR_IO, "stat part %d", k);
        goto out_unlock;
    }
    if (EVP_MD_CTX_copy_ex(h->save, h->sha) != 1) {
        rc = err_set(err, ERR_INTERNAL, "digest copy failed");
        goto out_unlock;
    }
    rc = fs_hash_range(*fd, off, len, h->sha, *buf, &h->stop, err);
    if (rc != 0 && EVP_MD_CTX_copy_ex(h->sha, h->save) != 1)
        rc = err_set(err, ERR_INTERNAL, "digest copy failed");
out_unlock:
    fs_range_lock(*fd, F_UNLCK, off, len, 0);
    return rc;
}

static int64_t fs_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/*
 * The digest of a fully hashed sized upload, kept next to its parts (FS_DIGEST) with the
 * identity of every part's marker, so another process (a worker assembling the upload)
 * can use it instead of reading the whole data again. A cache: written without fsync,
 * and anything that does not match exactly means "hash again".
 */
#define FS_DIGEST "sha256.digest"

/* Writes the digest file of h (all parts hashed; busy held by the caller, mu held). */
static void fs_digest_save(struct fs_store *fs, struct fs_hasher *h)
{
    char path[PATH_MAX], tmp[PATH_MAX], hex[65];
    EVP_MD_CTX *fin = EVP_MD_CTX_new();
    struct buf b;
    int fd = -1;

    buf_init(&b, 0);
    if (!fin || EVP_MD_CTX_copy_ex(fin, h->sha) != 1 || fs_digest_hex(fin, hex, NULL) < 0)
        goto out;
    buf_addf(&b, NULL, "%s %d %lld %lld\n", hex, h->count, (long long)h->part_size,
             (long long)h->total);
    for (int k = 1; k <= h->count; k++) {
        const struct fs_hpart *p = fs_hpart_at(h, k);
        char md5[33];

        util_hex(p->md5, sizeof(p->md5), md5);
        buf_addf(&b, NULL, "%d %lld %lld %s\n", k, (long long)p->ino, (long long)p->mtime_ns, md5);
    }
    if (fs_path(path, NULL, "%s/.multipart/%s/" FS_DIGEST, fs->root, h->id) < 0 ||
        fs_path(tmp, NULL, "%s/.multipart/%s/" FS_DIGEST ".tmp", fs->root, h->id) < 0)
        goto out;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        goto out;
    if (write(fd, b.buf, b.len) == (ssize_t)b.len && close(fd) == 0) {
        fd = -1;
        if (rename(tmp, path) < 0)
            unlink(tmp);
    } else {
        unlink(tmp);
    }
out:
    if (fd >= 0)
        close(fd);
    EVP_MD_CTX_free(fin);
    buf_release(&b);
}

/*
 * The digest another process saved for this upload, if it covers exactly the markers in
 * parts (one per part, parts[i] is part i + 1): 1 with out set, else 0.
 */
static int fs_digest_load(struct fs_store *fs, const struct fs_hasher *h,
                          const struct fs_part *parts, size_t np, char out[65])
{
    char path[PATH_MAX], hex[65], md5[33];
    long long part_size, total, ino, mtime;
    int count, k, ok = 0;
    FILE *f;

    if (fs_path(path, NULL, "%s/.multipart/%s/" FS_DIGEST, fs->root, h->id) < 0)
        return 0;
    f = fopen(path, "re");
    if (!f)
        return 0;
    if (fscanf(f, "%64s %d %lld %lld", hex, &count, &part_size, &total) != 4 || strlen(hex) != 64 ||
        count != h->count || (size_t)count != np || part_size != h->part_size || total != h->total)
        goto out;
    for (int i = 0; i < count; i++) {
        if (fscanf(f, "%d %lld %lld %32s", &k, &ino, &mtime, md5) != 4 || k != i + 1 ||
            ino != parts[i].ino || mtime != fs_ns(&parts[i].mtime) ||
            strcmp(md5, parts[i].md5) != 0)
            goto out;
    }
    memcpy(out, hex, 65);
    ok = 1;
out:
    fclose(f);
    return ok;
}

/*
 * Hashes the next parts while they are known, in the calling thread. If another thread
 * is hashing already, it returns at once: that thread sees what we recorded.
 */
static void fs_hasher_advance(struct fs_store *fs, struct fs_hasher *h)
{
    unsigned char *buf = NULL;
    int fd = -1;

    pthread_mutex_lock(&h->mu);
    if (h->busy) {
        pthread_mutex_unlock(&h->mu);
        return;
    }
    h->busy = 1;
    atomic_store(&h->stop, 0); /* a writer still waiting asks again */
    for (;;) {
        struct fs_hpart *p;
        struct err e = {0};
        struct stat sb;
        unsigned char md5[16];
        char hex[33];
        unsigned kicks;
        int k;
        int rc;

        if (h->reset)
            fs_hasher_restart(h);
        if (h->next > h->count || h->next > h->cap || atomic_load(&h->stop))
            break;
        p = &h->parts[h->next - 1];
        if (!p->known)
            break;
        k = h->next;
        kicks = h->kicks;
        memcpy(md5, p->md5, sizeof(md5));
        util_hex(md5, sizeof(md5), hex);
        pthread_mutex_unlock(&h->mu);
        rc = fs_hasher_part(fs, h, &fd, &buf, k, hex, &sb, &e);
        pthread_mutex_lock(&h->mu);
        p = &h->parts[k - 1]; /* the array may have grown meanwhile */
        if (rc == 0) {
            p->ino = (int64_t)sb.st_ino;
            p->mtime_ns = fs_ns(&sb.st_mtim);
            h->next = k + 1;
            if (h->next > h->count && !h->reset && !h->strided)
                fs_digest_save(fs, h); /* every part hashed: for the assembling process */
            continue;
        }
        if (rc < 0) {
            log_write(LOG_WARN, "store", "hashing part %d of upload %s: %s", k, h->id, e.msg);
            h->reset = 1; /* the hash may hold part of a part */
        }
        if (rc == 2 && memcmp(p->md5, md5, sizeof(md5)) == 0)
            p->known = 0;
        /* a commit since we looked may have made part k hashable */
        if (rc < 0 || h->kicks == kicks || atomic_load(&h->stop))
            break;
    }
    h->busy = 0;
    atomic_store(&h->stop, 0);
    pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->mu);
    if (fd >= 0)
        close(fd);
    free(buf);
}

/* a part was committed: record it and hash what can be hashed */
static void fs_hasher_committed(struct fs_store *fs, const struct fs_writer *w, const char *md5)
{
    int created;
    struct fs_hasher *h = fs_hasher_get(fs, w->upload_id, w->part_size, w->total, 1, &created);

    if (!h)
        return;
    if (created) {
        /* a fresh state (first part, or after a restart): learn what is on disk */
        struct store_upload u = {0};
        struct fs_part *parts;
        size_t np;

        /* a strided upload lists as an unsized one: its stride tells markers from files */
        u.part_size = w->strided ? 0 : w->part_size;
        u.total_size = w->strided ? 0 : w->total;
        if (fs_parts_scan(fs, w->upload_id, &u, &parts, &np, NULL) == 0) {
            pthread_mutex_lock(&h->mu);
            fs_hasher_learn(h, parts, np);
            pthread_mutex_unlock(&h->mu);
            free(parts);
        }
    }
    pthread_mutex_lock(&h->mu);
    h->strided = w->strided;
    fs_unhex16(md5, fs_hpart_at(h, w->part)->md5);
    fs_hpart_at(h, w->part)->known = 1;
    h->kicks++;
    pthread_mutex_unlock(&h->mu);
    fs_hasher_advance(fs, h);
    fs_hasher_put(fs, h);
}

/*
 * Completes the hash of a sized upload for assembly. The caller holds a read lock on the
 * whole data file fd and passes the markers it checked, one per part (parts[i] is part
 * i + 1). What the state hashed is kept if every hashed part's marker is still the one
 * hashed; the rest is read from fd. out receives the hex digest.
 */
static int fs_hasher_finish(struct fs_store *fs, struct fs_hasher *h, int fd,
                            const struct fs_part *parts, size_t np, char out[65], struct err *err)
{
    unsigned char *buf = NULL;
    EVP_MD_CTX *fin = NULL;
    int broken = 0;
    int rc = -1;

    if (np != (size_t)h->count)
        return err_set(err, ERR_INTERNAL, "assembly of upload %s without all its parts", h->id);
    pthread_mutex_lock(&h->mu);
    while (h->busy)
        pthread_cond_wait(&h->idle, &h->mu);
    h->busy = 1;
    if (h->reset)
        fs_hasher_restart(h);
    fs_hasher_learn(h, parts, np);
    for (int k = 1; k < h->next; k++) {
        const struct fs_hpart *p = fs_hpart_at(h, k);
        unsigned char md5[16];

        fs_unhex16(parts[k - 1].md5, md5);
        if (!p->known || memcmp(p->md5, md5, sizeof(md5)) != 0 || p->ino != parts[k - 1].ino ||
            p->mtime_ns != fs_ns(&parts[k - 1].mtime)) {
            log_write(LOG_INFO, "store", "upload %s: part %d changed since hashed; rehashing",
                      h->id, k);
            fs_hasher_restart(h);
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);

    if (h->next == 1 && fs_digest_load(fs, h, parts, np, out)) {
        /* hashed on arrival by another process (the API's), markers unchanged since */
        rc = 0;
        goto out_idle;
    }
    if (h->next <= h->count) {
        buf = xmalloc(FS_RBUF);
        posix_fadvise(fd, (off_t)((int64_t)(h->next - 1) * h->part_size), 0, POSIX_FADV_SEQUENTIAL);
    }
    while (h->next <= h->count) {
        int k = h->next;
        struct fs_hpart *p;

        if (fs_hash_range(fd, (int64_t)(k - 1) * h->part_size,
                          fs_layout_len(h->part_size, h->total, k), h->sha, buf, NULL, err) < 0) {
            broken = 1; /* a part half hashed */
            goto out_idle;
        }
        pthread_mutex_lock(&h->mu);
        p = fs_hpart_at(h, k);
        fs_unhex16(parts[k - 1].md5, p->md5);
        p->known = 1;
        p->ino = parts[k - 1].ino;
        p->mtime_ns = fs_ns(&parts[k - 1].mtime);
        h->next = k + 1;
        pthread_mutex_unlock(&h->mu);
    }
    /* finish a copy, so a retried assembly can finish again */
    fin = EVP_MD_CTX_new();
    if (!fin || EVP_MD_CTX_copy_ex(fin, h->sha) != 1) {
        err_set(err, ERR_INTERNAL, "digest copy failed");
        goto out_idle;
    }
    rc = fs_digest_hex(fin, out, err);
out_idle:
    EVP_MD_CTX_free(fin);
    free(buf);
    pthread_mutex_lock(&h->mu);
    if (broken)
        h->reset = 1;
    h->busy = 0;
    pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* ---- writers ----------------------------------------------------------------------- */

static void fs_writer_free(struct fs_writer *w)
{
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp[0])
        unlink(w->tmp);
    EVP_MD_CTX_free(w->md5);
    EVP_MD_CTX_free(w->sha256);
    free(w->buf);
    free(w);
}

/* a writer with its digests and buffer, but no file yet */
static struct fs_writer *fs_writer_alloc(struct fs_store *fs, int flags, struct err *err)
{
    struct fs_writer *w = xcalloc(1, sizeof(*w));

    w->base.st = &fs->base;
    w->fd = -1;
    w->flags = flags;
    w->md5 = fs_digest_new(EVP_md5(), err);
    if (!w->md5)
        goto out_free;
    if (flags & STORE_WRITER_SHA256) {
        w->sha256 = fs_digest_new(EVP_sha256(), err);
        if (!w->sha256)
            goto out_free;
    }
    w->buf = xmalloc(FS_WBUF);
    return w;

out_free:
    fs_writer_free(w);
    return NULL;
}

static int fs_writer_new(struct fs_store *fs, int flags, struct fs_writer **out, struct err *err)
{
    struct fs_writer *w = fs_writer_alloc(fs, flags, err);

    if (!w)
        return -1;
    if (fs_tmp_create(fs, "w", w->tmp, &w->fd, err) < 0) {
        w->tmp[0] = '\0';
        fs_writer_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

static int fs_object_writer(struct store *st, const char *bucket, const char *key, int flags,
                            struct store_writer **out, struct err *err)
{
    struct fs_writer *w;

    if (fs_key_fits(key, err) < 0)
        return -1;
    if (fs_writer_new(fs_of(st), flags, &w, err) < 0)
        return -1;
    w->kind = FS_W_OBJECT;
    w->max = STORE_OBJECT_SIZE_MAX;
    fs_field(w->bucket, sizeof(w->bucket), bucket, strlen(bucket));
    fs_field(w->key, sizeof(w->key), key, strlen(key));
    *out = &w->base;
    return 0;
}

static int fs_upload_dir(struct fs_store *fs, const char *id, char *dir, struct err *err)
{
    return fs_path(dir, err, "%s/.multipart/%s", fs->root, id);
}

static int fs_upload_read(struct fs_store *fs, const char *id, struct store_upload *u,
                          struct err *err);
static int fs_no_upload(const char *id, struct err *err);
static int fs_upload_lock(struct fs_store *fs, const char *id, int op, char *dir, int *fd,
                          struct err *err);
static int fs_part_prune(const char *dir, int number, const char *keep, struct err *err);

/* 1 if sized upload id was assembled (its parts are frozen), 0 if not, -1 error */
static int fs_sealed(struct fs_store *fs, const char *id, struct err *err)
{
    char path[PATH_MAX];
    struct stat sb;

    if (fs_path(path, err, "%s/.multipart/%s/" FS_SEAL, fs->root, id) < 0)
        return -1;
    if (lstat(path, &sb) == 0) {
        err_set(err, ERR_CONFLICT, "upload %s is assembled; its parts can no longer change", id);
        return 1;
    }
    if (errno != ENOENT)
        return err_errno(err, ERR_IO, "stat %s", path);
    return 0;
}

/*
 * Takes the write lock on w's region, without waiting for another writer (ERR_CONFLICT)
 * but waiting a while for readers: our own hashing is asked to let go, an assembly or
 * another process is waited for.
 */
static int fs_part_lock(struct fs_store *fs, struct fs_writer *w, struct err *err)
{
    int64_t deadline = util_mono_ms() + FS_LOCK_WAIT;

    for (;;) {
        struct fs_hasher *h;
        short holder;

        if (fs_range_lock(w->fd, F_WRLCK, w->off, w->want, 0) == 0)
            return 0;
        if (errno != EAGAIN && errno != EACCES)
            return err_errno(err, ERR_IO, "lock part %d of upload %s", w->part, w->upload_id);
        holder = fs_range_holder(w->fd, F_WRLCK, w->off, w->want, NULL);
        if (holder == F_WRLCK)
            return err_set(err, ERR_CONFLICT, "part %d is being uploaded by another request",
                           w->part);
        /* readers (or a lock released meanwhile): ask our hashing to let go, then retry */
        h = holder == F_RDLCK ? fs_hasher_get(fs, w->upload_id, 0, 0, 0, NULL) : NULL;
        if (h) {
            atomic_store(&h->stop, 1);
            fs_hasher_put(fs, h);
        }
        if (fs_sealed(fs, w->upload_id, err) != 0)
            return -1;
        if (util_mono_ms() > deadline)
            return err_set(err, ERR_CONFLICT, "part %d is being read by another request; retry",
                           w->part);
        fs_sleep_ms(1);
    }
}

/* a writer of part number of sized upload u: its region of the data file, locked */
static int fs_sized_writer(struct fs_store *fs, const struct store_upload *u, int number, int flags,
                           struct store_writer **out, struct err *err)
{
    int count = fs_layout_count(u->part_size, u->total_size);
    char path[PATH_MAX];
    struct fs_writer *w;

    if (number > count)
        return err_set(err, ERR_INVALID, "InvalidPart: part %d is beyond the last part %d", number,
                       count);
    if (fs_sealed(fs, u->upload_id, err) != 0 ||
        fs_path(path, err, "%s/.multipart/%s/" FS_DATA, fs->root, u->upload_id) < 0)
        return -1;
    w = fs_writer_alloc(fs, flags, err);
    if (!w)
        return -1;
    w->kind = FS_W_SIZED;
    memcpy(w->upload_id, u->upload_id, sizeof(w->upload_id));
    w->part = number;
    w->part_size = u->part_size;
    w->total = u->total_size;
    w->off = (int64_t)(number - 1) * u->part_size;
    w->want = fs_layout_len(u->part_size, u->total_size, number);
    w->max = w->want;
    w->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (w->fd < 0) {
        if (errno == ENOENT)
            fs_no_upload(u->upload_id, err);
        else
            err_errno(err, ERR_IO, "open %s", path);
        goto out_free;
    }
    /* an assembly seals, then read-locks everything: either it sees our lock or we its seal */
    if (fs_part_lock(fs, w, err) < 0 || fs_sealed(fs, u->upload_id, err) != 0)
        goto out_free;
    *out = &w->base;
    return 0;

out_free:
    fs_writer_free(w);
    return -1;
}

/* the number of parts a stride leaves room for, and the bytes they span */
static int fs_stride_count(int64_t stride)
{
    int64_t n = STORE_OBJECT_SIZE_MAX / stride;

    return n < STORE_PART_MAX ? (int)n : STORE_PART_MAX;
}

static int64_t fs_stride_span(int64_t stride)
{
    return (int64_t)fs_stride_count(stride) * stride;
}

/*
 * The stride of unsized upload id into *stride: 0 while none was chosen, else the size of
 * the part that chose it. The caller holds the upload's flock (any mode) or does not mind
 * a stride chosen just after the look.
 */
static int fs_stride_read(struct fs_store *fs, const char *id, int64_t *stride, struct err *err)
{
    char path[PATH_MAX];
    char text[32];
    ssize_t r;
    int fd;

    *stride = 0;
    if (fs_path(path, err, "%s/.multipart/%s/" FS_STRIDE, fs->root, id) < 0)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : err_errno(err, ERR_IO, "open %s", path);
    do
        r = read(fd, text, sizeof(text) - 1);
    while (r < 0 && errno == EINTR);
    close(fd);
    if (r > 0) {
        text[r] = '\0';
        if (util_parse_i64(text, stride) == 0 && *stride >= FS_STRIDE_MIN &&
            *stride <= STORE_PART_SIZE_MAX)
            return 0;
    }
    *stride = 0;
    return err_set(err, ERR_IO, "corrupt stride of upload %s", id);
}

/*
 * The stride of unsized upload id, chosen now as len if none was: the first part of at
 * least FS_STRIDE_MIN bytes to arrive sets it, since every S3 client sends all parts but
 * the last at one size. *stride is 0 for an upload made before strides (no data file).
 * The choice is durable before any part is written at it.
 */
static int fs_stride_claim(struct fs_store *fs, const char *id, int64_t len, int64_t *stride,
                           struct err *err)
{
    char dir[PATH_MAX];
    char text[32];
    struct stat sb;
    int dfd;
    int fd = -1;
    int rc = -1;
    int n;

    if (fs_stride_read(fs, id, stride, err) < 0)
        return -1;
    if (*stride > 0)
        return 0;
    if (fs_upload_lock(fs, id, LOCK_EX, dir, &dfd, err) < 0)
        return -1;
    if (fs_stride_read(fs, id, stride, err) < 0)
        goto out_close;
    if (*stride > 0 || fstatat(dfd, FS_DATA, &sb, AT_SYMLINK_NOFOLLOW) < 0) {
        rc = *stride > 0 || errno == ENOENT ? 0 : err_errno(err, ERR_IO, "stat data of %s", id);
        goto out_close;
    }
    n = snprintf(text, sizeof(text), "%lld", (long long)len);
    fd = openat(dfd, FS_STRIDE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
                FS_FILE_MODE);
    if (fd < 0) {
        err_errno(err, ERR_IO, "create the stride of %s", id);
        goto out_close;
    }
    if (util_write_all(fd, text, (size_t)n, err) < 0 || fs_fsync(fd, "stride", err) < 0)
        goto out_close;
    if (renameat(dfd, FS_STRIDE ".tmp", dfd, FS_STRIDE) < 0) {
        err_errno(err, ERR_IO, "set the stride of %s", id);
        goto out_close;
    }
    if (fs_fsync(dfd, dir, err) < 0)
        goto out_close;
    *stride = len;
    rc = 0;
out_close:
    if (fd >= 0)
        close(fd);
    close(dfd);
    return rc;
}

static int fs_part_writer(struct store *st, const char *upload_id, int part_number, int64_t length,
                          int flags, struct store_writer **out, struct err *err)
{
    struct fs_store *fs = fs_of(st);
    struct store_upload u;
    struct fs_writer *w;
    int64_t stride = 0;

    if (fs_upload_read(fs, upload_id, &u, err) < 0)
        return -1;
    if (u.part_size > 0)
        return fs_sized_writer(fs, &u, part_number, flags, out, err);
    /* a part of the stride's size goes in place, into the data file at (n - 1) * stride:
     * if every part but the last is, assembly neither copies nor rereads */
    if (length >= FS_STRIDE_MIN && length <= STORE_PART_SIZE_MAX &&
        fs_stride_claim(fs, upload_id, length, &stride, err) < 0)
        return -1;
    if (stride > 0 && stride == length && part_number <= fs_stride_count(stride)) {
        u.part_size = stride;
        u.total_size = fs_stride_span(stride);
        if (fs_sized_writer(fs, &u, part_number, flags, out, err) < 0)
            return -1;
        ((struct fs_writer *)*out)->strided = 1;
        return 0;
    }
    if (fs_writer_new(fs, flags, &w, err) < 0)
        return -1;
    w->kind = FS_W_PART;
    w->max = STORE_PART_SIZE_MAX;
    memcpy(w->upload_id, upload_id, sizeof(w->upload_id));
    w->part = part_number;
    *out = &w->base;
    return 0;
}

/*
 * Before the first byte goes into a sized part's region: its marker goes (durably), so a
 * crash or abort from here on leaves the part absent, never described by a stale marker;
 * and the hash forgets it.
 */
static int fs_part_unmark(struct fs_store *fs, struct fs_writer *w, struct err *err)
{
    char dir[PATH_MAX];
    int removed;
    int dfd;

    if (fs_upload_lock(fs, w->upload_id, LOCK_EX, dir, &dfd, err) < 0)
        return -1;
    removed = fs_part_prune(dir, w->part, "", err);
    if (removed > 0 && fs_fsync(dfd, dir, err) < 0)
        removed = -1;
    close(dfd);
    if (removed < 0)
        return -1;
    fs_hasher_invalidate(fs, w->upload_id, w->part);
    w->touched = 1;
    return 0;
}

/* writes data out: appended to the temp file, or into a sized part's region */
static int fs_writer_out(struct fs_writer *w, const void *data, size_t n, struct err *err)
{
    int rc;

    if (w->kind != FS_W_SIZED)
        rc = util_write_all(w->fd, data, n, err);
    else if (!w->touched && fs_part_unmark(fs_of(w->base.st), w, err) < 0)
        rc = -1;
    else if ((int64_t)n > w->want - w->written) /* never past the region */
        rc = err_set(err, ERR_INTERNAL, "part %d overflows its region", w->part);
    else
        rc = fs_pwrite_all(w->fd, data, n, (off_t)(w->off + w->written), err);
    if (rc < 0) {
        w->failed = 1;
        return -1;
    }
    w->written += (int64_t)n;
    /* start writing back as data arrives, so the fdatasync at commit finds little left
     * and the disk works while the network does (a hint: errors surface at fdatasync) */
    if (w->written - w->kicked >= FS_KICK) {
        (void)sync_file_range(w->fd, (off_t)(w->off + w->kicked), (off_t)(w->written - w->kicked),
                              SYNC_FILE_RANGE_WRITE);
        w->kicked = w->written;
    }
    return 0;
}

static int fs_writer_flush(struct fs_writer *w, struct err *err)
{
    if (w->blen == 0)
        return 0;
    if (fs_writer_out(w, w->buf, w->blen, err) < 0)
        return -1;
    w->blen = 0;
    return 0;
}

static int fs_writer_write(struct store_writer *sw, const void *data, size_t n, struct err *err)
{
    struct fs_writer *w = (struct fs_writer *)sw;

    if (w->failed)
        return err_set(err, ERR_IO, "writer failed earlier");
    if (n > (uint64_t)(w->max - w->size)) {
        if (w->kind != FS_W_SIZED)
            return err_set(err, ERR_LIMIT, "EntityTooLarge: more than %lld bytes",
                           (long long)w->max);
        w->failed = 1;
        w->overflow = 1;
        return err_set(err, ERR_INVALID, "InvalidPart: part %d must be %lld bytes, got more",
                       w->part, (long long)w->want);
    }
    if (EVP_DigestUpdate(w->md5, data, n) != 1 ||
        (w->sha256 && EVP_DigestUpdate(w->sha256, data, n) != 1)) {
        w->failed = 1;
        return err_set(err, ERR_INTERNAL, "digest update failed");
    }
    w->size += (int64_t)n;
    if (w->blen + n <= FS_WBUF) {
        memcpy(w->buf + w->blen, data, n);
        w->blen += n;
        return 0;
    }
    if (fs_writer_flush(w, err) < 0)
        return -1;
    if (n >= FS_WBUF)
        return fs_writer_out(w, data, n, err);
    memcpy(w->buf, data, n);
    w->blen = n;
    return 0;
}

/* reports an upload that disappeared (aborted) */
static int fs_no_upload(const char *id, struct err *err)
{
    return err_set(err, ERR_NOTFOUND, "NoSuchUpload: no upload %s", id);
}

/*
 * Opens the upload's directory and flocks it (LOCK_SH readers, LOCK_EX part commits and
 * abort). ERR_NOTFOUND if the upload is gone, also when it was aborted while we waited.
 */
static int fs_upload_lock(struct fs_store *fs, const char *id, int op, char *dir, int *fd,
                          struct err *err)
{
    struct stat a;
    struct stat b;

    *fd = -1;
    if (fs_upload_dir(fs, id, dir, err) < 0)
        return -1;
    *fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fs_no_upload(id, err);
        return err_errno(err, ERR_IO, "open upload %s", id);
    }
    if (fs_flock(*fd, op) < 0) {
        err_errno(err, ERR_IO, "lock upload %s", id);
        goto out_close;
    }
    if (fstat(*fd, &a) < 0 || stat(dir, &b) < 0 || a.st_ino != b.st_ino || a.st_dev != b.st_dev) {
        fs_no_upload(id, err);
        goto out_close;
    }
    return 0;

out_close:
    fs_close_fd(fd);
    return -1;
}

/* parses "pNNNNN.<md5>"; the part number, or 0 if name is not a part file */
static int fs_part_name_parse(const char *name, char md5[33])
{
    int num = 0;

    if (strlen(name) != FS_PART_NAME || name[0] != 'p' || name[6] != '.')
        return 0;
    for (int i = 1; i <= 5; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        num = num * 10 + (name[i] - '0');
    }
    if (num < 1 || num > STORE_PART_MAX || !fs_is_hex(name + 7, 32))
        return 0;
    memcpy(md5, name + 7, 33);
    return num;
}

/*
 * Unlinks every copy of part number other than keep; the caller holds LOCK_EX. The
 * number of names removed, or -1.
 */
static int fs_part_prune(const char *dir, int number, const char *keep, struct err *err)
{
    char prefix[8];
    DIR *d = opendir(dir);
    struct dirent *de;
    int removed = 0;

    if (!d)
        return err_errno(err, ERR_IO, "open %s", dir);
    (void)snprintf(prefix, sizeof(prefix), "p%05d.", number);
    for (;;) {
        errno = 0;
        de = readdir(d);
        if (!de)
            break;
        if (strncmp(de->d_name, prefix, 7) != 0 || strcmp(de->d_name, keep) == 0)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) < 0) {
            if (errno == ENOENT)
                continue;
            err_errno(err, ERR_IO, "remove old part %s", de->d_name);
            closedir(d);
            return -1;
        }
        removed++;
    }
    if (errno != 0) {
        err_errno(err, ERR_IO, "read %s", dir);
        closedir(d);
        return -1;
    }
    closedir(d);
    return removed;
}

static int fs_part_commit(struct fs_store *fs, struct fs_writer *w, const char *md5,
                          struct err *err)
{
    char dir[PATH_MAX];
    char name[FS_PART_NAME + 1];
    int dfd;
    int rc = -1;

    (void)snprintf(name, sizeof(name), "p%05d.%.32s", w->part, md5);
    if (fs_upload_lock(fs, w->upload_id, LOCK_EX, dir, &dfd, err) < 0)
        return -1;
    /* an assembly seals, then lists the parts under the flock: it sees this part or we
     * its seal (an upload with a stride has parts in place, which assembly may use) */
    if (fs_sealed(fs, w->upload_id, err) != 0)
        goto out_close;
    if (renameat(AT_FDCWD, w->tmp, dfd, name) < 0) {
        err_errno(err, ERR_IO, "store part %d of %s", w->part, w->upload_id);
        goto out_close;
    }
    w->tmp[0] = '\0';
    if (fs_part_prune(dir, w->part, name, err) < 0 || fs_fsync(dfd, dir, err) < 0)
        goto out_close;
    rc = 0;
out_close:
    close(dfd);
    if (rc == 0)
        fs_hasher_invalidate(fs, w->upload_id, w->part); /* it may have been in place */
    return rc;
}

/*
 * Commits a sized part: the bytes are made durable in place (fdatasync), then the marker
 * pNNNNN.<md5> is created and its directory fsynced, all while we still hold the region;
 * then the hash moves on. Does not free w.
 */
static int fs_sized_commit(struct fs_store *fs, struct fs_writer *w, struct store_meta *m,
                           struct err *err)
{
    char dir[PATH_MAX];
    char name[FS_PART_NAME + 1];
    struct stat sb;
    int dfd;
    int fd;
    int rc = -1;

    if (w->size != w->want)
        return err_set(err, ERR_INVALID, "InvalidPart: part %d must be %lld bytes, got %lld",
                       w->part, (long long)w->want, (long long)w->size);
    if (fs_writer_flush(w, err) < 0 || fs_digest_hex(w->md5, m->etag, err) < 0)
        return -1;
    if (w->sha256 && fs_digest_hex(w->sha256, m->sha256, err) < 0)
        return -1;
    m->size = w->size;
    if (fdatasync(w->fd) < 0)
        return err_errno(err, ERR_IO, "fdatasync part %d of %s", w->part, w->upload_id);

    (void)snprintf(name, sizeof(name), "p%05d.%.32s", w->part, m->etag);
    if (fs_upload_lock(fs, w->upload_id, LOCK_EX, dir, &dfd, err) < 0)
        return -1;
    fd = openat(dfd, name, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, FS_FILE_MODE);
    if (fd < 0) {
        err_errno(err, ERR_IO, "mark part %d of %s", w->part, w->upload_id);
        goto out_close;
    }
    close(fd);
    if (fs_part_prune(dir, w->part, name, err) < 0 || fs_fsync(dfd, dir, err) < 0)
        goto out_close;
    if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
        m->mtime = (int64_t)sb.st_mtim.tv_sec;
    rc = 0;
out_close:
    close(dfd);
    if (rc < 0)
        return -1;
    fs_close_fd(&w->fd); /* releases the region */
    fs_hasher_committed(fs, w, m->etag);
    return 0;
}

static int fs_writer_commit(struct store_writer *sw, const char *content_type, const char *headers,
                            struct store_meta *out, struct err *err)
{
    struct fs_writer *w = (struct fs_writer *)sw;
    struct fs_store *fs = fs_of(w->base.st);
    struct store_meta m = {0};
    struct stat sb;
    int rc = -1;

    if (w->overflow) {
        err_set(err, ERR_INVALID, "InvalidPart: part %d must be %lld bytes, got more", w->part,
                (long long)w->want);
        goto out_free;
    }
    if (w->failed) {
        err_set(err, ERR_IO, "writer failed earlier");
        goto out_free;
    }
    if (w->kind == FS_W_SIZED) {
        if (fs_sized_commit(fs, w, &m, err) < 0)
            goto out_free;
        if (out)
            *out = m;
        rc = 0;
        goto out_free;
    }
    if (fs_writer_flush(w, err) < 0 || fs_digest_hex(w->md5, m.etag, err) < 0)
        goto out_free;
    if (w->sha256 && fs_digest_hex(w->sha256, m.sha256, err) < 0)
        goto out_free;
    m.size = w->size;
    if (w->kind == FS_W_OBJECT) {
        fs_field(m.content_type, sizeof(m.content_type), content_type ? content_type : "",
                 content_type ? strlen(content_type) : 0);
        fs_field(m.headers, sizeof(m.headers), headers ? headers : "",
                 headers ? strlen(headers) : 0);
        if (fs_meta_write(w->fd, &m, err) < 0)
            goto out_free;
    }
    if (fs_fsync(w->fd, "object", err) < 0)
        goto out_free;
    if (fstat(w->fd, &sb) < 0) {
        err_errno(err, ERR_IO, "stat temp file");
        goto out_free;
    }
    m.mtime = (int64_t)sb.st_mtim.tv_sec;
    fs_close_fd(&w->fd);

    if (w->kind == FS_W_PART) {
        if (fs_part_commit(fs, w, m.etag, err) < 0)
            goto out_free;
    } else {
        int placed = fs_place(fs, w->tmp, w->bucket, w->key, 1, err);

        if (placed < 0)
            goto out_free;
        if (placed == 1) {
            err_set(err, ERR_CONFLICT, "object exists: %s/%s", w->bucket, w->key);
            goto out_free;
        }
        w->tmp[0] = '\0';
    }
    if (out)
        *out = m;
    rc = 0;
out_free:
    fs_writer_free(w);
    return rc;
}

static void fs_writer_abort(struct store_writer *sw)
{
    fs_writer_free((struct fs_writer *)sw);
}

/* ---- objects ----------------------------------------------------------------------- */

/* opens bucket/key read-only; ERR_NOTFOUND unless it is a regular file */
static int fs_object_fd(struct fs_store *fs, const char *bucket, const char *key, int *fd,
                        struct stat *sb, struct err *err)
{
    char path[PATH_MAX];

    *fd = -1;
    if (fs_path(path, err, "%s/%s/%s", fs->root, bucket, key) < 0)
        return -1;
    *fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (*fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG || errno == ELOOP)
            err_set(err, ERR_NOTFOUND, "NoSuchKey: no object %s/%s", bucket, key);
        else
            err_errno(err, ERR_IO, "open object %s/%s", bucket, key);
        return -1;
    }
    if (fstat(*fd, sb) < 0) {
        err_errno(err, ERR_IO, "stat object %s/%s", bucket, key);
        goto out_close;
    }
    if (!S_ISREG(sb->st_mode)) {
        err_set(err, ERR_NOTFOUND, "NoSuchKey: no object %s/%s", bucket, key);
        goto out_close;
    }
    return 0;
out_close:
    fs_close_fd(fd);
    return -1;
}

static int fs_object_open(struct store *st, const char *bucket, const char *key, int *fd,
                          struct store_meta *out, struct err *err)
{
    struct store_meta m;
    struct stat sb;

    if (fs_object_fd(fs_of(st), bucket, key, fd, &sb, err) < 0)
        return -1;
    if (fs_meta_read(*fd, &sb, &m, err) < 0) {
        fs_close_fd(fd);
        return -1;
    }
    if (out)
        *out = m;
    return 0;
}

static int fs_object_stat(struct store *st, const char *bucket, const char *key,
                          struct store_meta *out, struct err *err)
{
    int fd;
    int rc = fs_object_open(st, bucket, key, &fd, out, err);

    if (rc == 0)
        close(fd);
    return rc;
}

/*
 * Copies len bytes of in to out, both from their start: copy_file_range (a reflink or an
 * in-kernel copy where the filesystem can), else read and write.
 */
static int fs_copy_fd(int in, int out, int64_t len, struct err *err)
{
    loff_t ioff = 0;
    loff_t ooff = 0;
    unsigned char *buf;

    while (ioff < len) {
        ssize_t r = copy_file_range(in, &ioff, out, &ooff, (size_t)(len - ioff), 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && ioff == 0 &&
            (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL))
            break;
        if (r < 0)
            return err_errno(err, ERR_IO, "copy object");
        if (r == 0)
            return err_set(err, ERR_IO, "object shrank while copying");
    }
    if (ioff == len)
        return 0;
    buf = xmalloc(FS_RBUF);
    while (ioff < len) {
        size_t want = (size_t)(len - ioff) < FS_RBUF ? (size_t)(len - ioff) : FS_RBUF;
        ssize_t r = pread(in, buf, want, ioff);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0 || fs_pwrite_all(out, buf, (size_t)r, ioff, err) < 0) {
            if (r < 0)
                err_errno(err, ERR_IO, "read object");
            else if (r == 0)
                err_set(err, ERR_IO, "object shrank while copying");
            free(buf);
            return -1;
        }
        ioff += r;
    }
    free(buf);
    return 0;
}

/*
 * A copy with the source's metadata is a hard link (same bytes, same xattr: the same
 * file under a second name); a copy with other metadata is a new file, copied, given its
 * xattr and fsynced before it gets its name, like any object.
 */
static int fs_object_copy(struct store *st, const char *src_bucket, const char *src_key,
                          const char *bucket, const char *key, const struct store_meta *replace,
                          struct store_meta *out, struct err *err)
{
    struct fs_store *fs = fs_of(st);
    char src[PATH_MAX];
    char tmp[PATH_MAX] = "";
    struct store_meta m;
    struct stat sb;
    int in = -1;
    int fd = -1;
    int placed;
    int rc = -1;

    if (fs_key_fits(key, err) < 0 || fs_object_fd(fs, src_bucket, src_key, &in, &sb, err) < 0)
        return -1;
    if (fs_meta_read(in, &sb, &m, err) < 0 ||
        fs_path(src, err, "%s/%s/%s", fs->root, src_bucket, src_key) < 0)
        goto out_close;
    if (!replace || (strcmp(replace->content_type, m.content_type) == 0 &&
                     strcmp(replace->headers, m.headers) == 0)) {
        placed = fs_place(fs, src, bucket, key, 0, err);
    } else {
        memcpy(m.content_type, replace->content_type, sizeof(m.content_type));
        memcpy(m.headers, replace->headers, sizeof(m.headers));
        if (fs_tmp_create(fs, "w", tmp, &fd, err) < 0) {
            tmp[0] = '\0';
            goto out_close;
        }
        if (fs_copy_fd(in, fd, m.size, err) < 0 || fs_meta_write(fd, &m, err) < 0 ||
            fs_fsync(fd, "object", err) < 0)
            goto out_close;
        if (fstat(fd, &sb) < 0) {
            err_errno(err, ERR_IO, "stat temp file");
            goto out_close;
        }
        placed = fs_place(fs, tmp, bucket, key, 1, err);
        if (placed == 0)
            tmp[0] = '\0';
    }
    if (placed < 0)
        goto out_close;
    if (placed == 1) {
        err_set(err, ERR_CONFLICT, "object exists: %s/%s", bucket, key);
        goto out_close;
    }
    m.mtime = (int64_t)sb.st_mtim.tv_sec;
    if (out)
        *out = m;
    rc = 0;
out_close:
    fs_close_fd(&fd);
    if (tmp[0])
        unlink(tmp);
    close(in);
    return rc;
}

static int fs_object_delete(struct store *st, const char *bucket, const char *key, struct err *err)
{
    struct fs_store *fs = fs_of(st);
    char base[PATH_MAX];
    char path[PATH_MAX];
    struct stat sb;
    char *slash;

    if (fs_path(base, err, "%s/%s", fs->root, bucket) < 0 ||
        fs_path(path, err, "%s/%s", base, key) < 0)
        return -1;
    if (lstat(path, &sb) < 0 || !S_ISREG(sb.st_mode))
        return err_set(err, ERR_NOTFOUND, "NoSuchKey: no object %s/%s", bucket, key);
    if (unlink(path) < 0) {
        if (errno == ENOENT)
            return err_set(err, ERR_NOTFOUND, "NoSuchKey: no object %s/%s", bucket, key);
        return err_errno(err, ERR_IO, "delete object %s/%s", bucket, key);
    }
    slash = strrchr(path, '/');
    *slash = '\0';
    if (util_fsync_dir(path, err) < 0)
        return -1;
    /* drop directories the key leaves empty; a concurrent writer retries on ENOENT */
    while (strlen(path) > strlen(base) && rmdir(path) == 0) {
        slash = strrchr(path, '/');
        *slash = '\0';
    }
    return 0;
}

/* one directory entry of a listing */
struct fs_dent {
    char *name;
    size_t len;
    int dir;
};

/* key order: a directory sorts as its name followed by '/' */
static int fs_dent_cmp(const void *pa, const void *pb)
{
    const struct fs_dent *a = pa;
    const struct fs_dent *b = pb;
    size_t n = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->name, b->name, n);
    unsigned char ca;
    unsigned char cb;

    if (c != 0)
        return c;
    ca = a->len > n ? (unsigned char)a->name[n] : (a->dir ? '/' : 0);
    cb = b->len > n ? (unsigned char)b->name[n] : (b->dir ? '/' : 0);
    return (int)ca - (int)cb;
}

struct fs_list {
    const char *base; /* root/bucket */
    const char *prefix;
    size_t plen;
    const char *after; /* start_after, "" for none */
    const char *delim; /* "" for none */
    size_t dlen;
    store_list_fn cb;
    void *ctx;
    char key[STORE_KEY_MAX + 2];
    char cp[STORE_KEY_MAX + 2]; /* the last common prefix met, "" before the first */
    int stop;
};

/* reads the entries of dir, sorted in key order; *ents is the caller's to free */
static int fs_list_read(const char *dir, struct fs_dent **ents, size_t *n, struct err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t cap = 0;

    *ents = NULL;
    *n = 0;
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return err_errno(err, ERR_IO, "open %s", dir);
    }
    for (;;) {
        int isdir;

        errno = 0;
        de = readdir(d);
        if (!de)
            break;

        if (de->d_name[0] == '.' &&
            (de->d_name[1] == '\0' || (de->d_name[1] == '.' && de->d_name[2] == '\0')))
            continue;
        if (de->d_type == DT_DIR || de->d_type == DT_REG) {
            isdir = de->d_type == DT_DIR;
        } else if (de->d_type == DT_UNKNOWN) {
            struct stat sb;

            if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
                continue;
            if (!S_ISDIR(sb.st_mode) && !S_ISREG(sb.st_mode))
                continue;
            isdir = S_ISDIR(sb.st_mode);
        } else {
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *ents = xrealloc(*ents, cap * sizeof(**ents));
        }
        (*ents)[*n].len = strlen(de->d_name);
        (*ents)[*n].name = xstrndup(de->d_name, (*ents)[*n].len);
        (*ents)[*n].dir = isdir;
        (*n)++;
    }
    if (errno != 0) {
        err_errno(err, ERR_IO, "read %s", dir);
        closedir(d);
        for (size_t i = 0; i < *n; i++)
            free((*ents)[i].name);
        free(*ents);
        *ents = NULL;
        *n = 0;
        return -1;
    }
    closedir(d);
    if (*n > 1)
        qsort(*ents, *n, sizeof(**ents), fs_dent_cmp);
    return 0;
}

/* reports the object at l->key (file path) to the callback */
static int fs_list_emit(struct fs_list *l, const char *path, struct err *err)
{
    struct store_meta m;
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

    if (fd < 0)
        return 0; /* deleted meanwhile */
    if (fstat(fd, &sb) < 0) {
        err_errno(err, ERR_IO, "stat %s", path);
        close(fd);
        return -1;
    }
    if (fs_meta_read(fd, &sb, &m, err) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    if (l->cb(l->ctx, l->key, &m) != 0)
        l->stop = 1;
    return 0;
}

/*
 * Rolls key[0..len) (ending in the delimiter) up: reported once however many keys share
 * it, and only if it sorts after start_after.
 */
static void fs_list_prefix(struct fs_list *l, const char *key, size_t len)
{
    if (strlen(l->cp) == len && memcmp(l->cp, key, len) == 0)
        return;
    memcpy(l->cp, key, len);
    l->cp[len] = '\0';
    if (strcmp(l->cp, l->after) <= 0)
        return;
    if (l->cb(l->ctx, l->cp, NULL) != 0)
        l->stop = 1;
}

/*
 * Where the delimiter first occurs in the part of key[0..len) after the prefix: the length
 * of the common prefix it ends, or 0 if there is none (or no delimiter).
 */
static size_t fs_list_rollup(const struct fs_list *l, const char *key, size_t len)
{
    const char *d;

    if (l->dlen == 0 || len <= l->plen)
        return 0;
    d = memmem(key + l->plen, len - l->plen, l->delim, l->dlen);
    return d ? (size_t)(d - key) + l->dlen : 0;
}

/*
 * Walks the directory of key prefix l->key[0..klen) (empty or ending in '/'), calling
 * the callback for matching objects and common prefixes in key order. Only one directory
 * level's entries are held at a time and no directory stays open while recursing; a
 * directory whose keys all sort before start_after, or that a common prefix covers, is
 * not entered, and metadata is read only for the keys reported.
 */
static int fs_list_dir(struct fs_list *l, size_t klen, struct err *err)
{
    char path[PATH_MAX];
    struct fs_dent *ents;
    size_t n;
    int rc = 0;

    if (fs_path(path, err, "%s/%.*s", l->base, (int)klen, l->key) < 0)
        return -1;
    if (fs_list_read(path, &ents, &n, err) < 0)
        return -1;
    for (size_t i = 0; i < n && rc == 0 && !l->stop; i++) {
        size_t nk = klen + ents[i].len + (ents[i].dir ? 1 : 0);
        size_t cmp;
        size_t cp;

        if (nk > STORE_KEY_MAX + (ents[i].dir ? 1 : 0))
            continue;
        memcpy(l->key + klen, ents[i].name, ents[i].len);
        if (ents[i].dir)
            l->key[nk - 1] = '/';
        l->key[nk] = '\0';
        cmp = nk < l->plen ? nk : l->plen;
        if (memcmp(l->key, l->prefix, cmp) != 0)
            continue;
        if (!ents[i].dir && nk < l->plen)
            continue;
        /* every key here sorts at or before start_after: a file, or a folder that
         * start_after does not lead into */
        if (strcmp(l->key, l->after) <= 0 && (!ents[i].dir || strncmp(l->after, l->key, nk) != 0))
            continue;
        cp = fs_list_rollup(l, l->key, nk);
        if (cp > 0)
            fs_list_prefix(l, l->key, cp);
        else if (ents[i].dir)
            rc = fs_list_dir(l, nk, err);
        else if (fs_path(path, err, "%s/%s", l->base, l->key) < 0)
            rc = -1;
        else
            rc = fs_list_emit(l, path, err);
    }
    for (size_t i = 0; i < n; i++)
        free(ents[i].name);
    free(ents);
    return rc;
}

static int fs_object_list(struct store *st, const char *bucket, const struct store_list_query *q,
                          store_list_fn cb, void *ctx, struct err *err)
{
    struct fs_store *fs = fs_of(st);
    char base[PATH_MAX];
    struct fs_list l = {0};
    const char *prefix = q->prefix;
    const char *slash = strrchr(prefix, '/');
    size_t start = 0;

    if (fs_path(base, err, "%s/%s", fs->root, bucket) < 0)
        return -1;
    if (slash) {
        /* start at the deepest directory the prefix names; if that is not a valid key
         * path no key can match, which also keeps the walk inside the bucket */
        char dirpart[STORE_KEY_MAX + 1];

        start = (size_t)(slash - prefix) + 1;
        memcpy(dirpart, prefix, start - 1);
        dirpart[start - 1] = '\0';
        if (store_key_valid(dirpart, NULL) < 0)
            return 0;
    }
    l.base = base;
    l.prefix = prefix;
    l.plen = strlen(prefix);
    l.after = q->start_after;
    l.delim = q->delimiter;
    l.dlen = strlen(q->delimiter);
    l.cb = cb;
    l.ctx = ctx;
    memcpy(l.key, prefix, start);
    l.key[start] = '\0';
    return fs_list_dir(&l, start, err);
}

/* ---- multipart uploads --------------------------------------------------------------- */

/* parses an upload's meta file text into u (upload_id is filled by the caller) */
static int fs_upload_parse(char *s, struct store_upload *u, struct err *err)
{
    int have = 0;

    memset(u->bucket, 0, sizeof(u->bucket));
    u->key[0] = '\0';
    u->content_type[0] = '\0';
    u->headers[0] = '\0';
    u->initiated = 0;
    u->part_size = 0;
    u->total_size = 0;
    while (*s) {
        char *nl = strchr(s, '\n');
        char *eq;

        if (nl)
            *nl = '\0';
        eq = strchr(s, '=');
        if (eq) {
            *eq++ = '\0';
            if (strcmp(s, "bucket") == 0) {
                fs_field(u->bucket, sizeof(u->bucket), eq, strlen(eq));
                have |= 1;
            } else if (strcmp(s, "key") == 0) {
                fs_field(u->key, sizeof(u->key), eq, strlen(eq));
                have |= 2;
            } else if (strcmp(s, "ct") == 0) {
                fs_field(u->content_type, sizeof(u->content_type), eq, strlen(eq));
            } else if (strcmp(s, "h") == 0) {
                fs_headers_add(u->headers, eq, strlen(eq));
            } else if (strcmp(s, "initiated") == 0) {
                if (util_parse_i64(eq, &u->initiated) == 0)
                    have |= 4;
            } else if (strcmp(s, "part_size") == 0) {
                if (util_parse_i64(eq, &u->part_size) == 0)
                    have |= 8;
            } else if (strcmp(s, "total_size") == 0) {
                if (util_parse_i64(eq, &u->total_size) == 0)
                    have |= 16;
            }
        }
        if (!nl)
            break;
        s = nl + 1;
    }
    if ((have & 7) != 7 || store_bucket_valid(u->bucket, NULL) < 0 ||
        store_key_valid(u->key, NULL) < 0)
        return err_set(err, ERR_IO, "corrupt upload metadata");
    /* a sized upload: both sizes, valid (store_upload_create_sized's checks) */
    if (have & 24) {
        if ((have & 24) != 24 || u->part_size < 1 || u->part_size > STORE_PART_SIZE_MAX ||
            u->total_size < 1 || u->total_size > STORE_OBJECT_SIZE_MAX ||
            (u->total_size - 1) / u->part_size + 1 > STORE_PART_MAX)
            return err_set(err, ERR_IO, "corrupt upload metadata");
    }
    return 0;
}

static int fs_upload_read(struct fs_store *fs, const char *id, struct store_upload *u,
                          struct err *err)
{
    char path[PATH_MAX];
    char buf[FS_META_MAX + 1];
    size_t len = 0;
    int fd;

    if (fs_path(path, err, "%s/.multipart/%s/meta", fs->root, id) < 0)
        return -1;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return fs_no_upload(id, err);
        return err_errno(err, ERR_IO, "open upload %s", id);
    }
    while (len < FS_META_MAX) {
        ssize_t r = read(fd, buf + len, FS_META_MAX - len);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err_errno(err, ERR_IO, "read upload %s", id);
            close(fd);
            return -1;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    if (fs_upload_parse(buf, u, err) < 0)
        return err_set(err, ERR_IO, "corrupt metadata of upload %s", id);
    memcpy(u->upload_id, id, sizeof(u->upload_id));
    return 0;
}

/*
 * Creates an upload; sized if part_size > 0, with its data file of total_size bytes
 * (sparse: ftruncate only).
 */
static int fs_upload_make(struct fs_store *fs, const char *bucket, const char *key,
                          const char *content_type, const char *headers, int64_t part_size,
                          int64_t total_size, struct store_upload *out, struct err *err)
{
    struct store_upload u = {0};
    char stage[PATH_MAX];
    char meta[PATH_MAX];
    char dst[PATH_MAX];
    struct buf text;
    int fd = -1;

    if (fs_key_fits(key, err) < 0)
        return -1;
    util_token_hex(u.upload_id, 16);
    fs_field(u.bucket, sizeof(u.bucket), bucket, strlen(bucket));
    fs_field(u.key, sizeof(u.key), key, strlen(key));
    if (content_type)
        fs_field(u.content_type, sizeof(u.content_type), content_type, strlen(content_type));
    if (headers)
        fs_field(u.headers, sizeof(u.headers), headers, strlen(headers));
    u.initiated = util_now_ms() / 1000;
    u.part_size = part_size;
    u.total_size = part_size > 0 ? total_size : 0;
    buf_init(&text, 0);
    buf_addf(&text, NULL, "bucket=%s\nkey=%s\nct=%s\ninitiated=%lld\n", u.bucket, u.key,
             u.content_type, (long long)u.initiated);
    if (u.part_size > 0)
        buf_addf(&text, NULL, "part_size=%lld\ntotal_size=%lld\n", (long long)u.part_size,
                 (long long)u.total_size);
    fs_headers_encode(&text, u.headers);
    if (text.len >= FS_META_MAX) {
        err_set(err, ERR_INTERNAL, "upload metadata too long");
        goto out_text;
    }

    /* the directory is built in our scratch space and renamed in whole, so an upload is
     * never visible without its meta file */
    if (fs_path(stage, err, "%s/u-%s", fs->tmpdir, u.upload_id) < 0 ||
        fs_path(meta, err, "%s/meta", stage) < 0 || fs_upload_dir(fs, u.upload_id, dst, err) < 0)
        goto out_text;
    if (mkdir(stage, FS_DIR_MODE) < 0) {
        err_errno(err, ERR_IO, "mkdir %s", stage);
        goto out_text;
    }
    fd = open(meta, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FS_FILE_MODE);
    if (fd < 0) {
        err_errno(err, ERR_IO, "create %s", meta);
        goto out_remove;
    }
    if (util_write_all(fd, text.buf, text.len, err) < 0 || fs_fsync(fd, meta, err) < 0)
        goto out_remove;
    fs_close_fd(&fd);
    /* the data file: a sized upload's object; an unsized one's parts of its stride's size
     * (empty until the first part chooses the stride) */
    {
        if (fs_path(meta, err, "%s/" FS_DATA, stage) < 0)
            goto out_remove;
        fd = open(meta, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FS_FILE_MODE);
        if (fd < 0) {
            err_errno(err, ERR_IO, "create %s", meta);
            goto out_remove;
        }
        if (ftruncate(fd, (off_t)u.total_size) < 0) {
            err_errno(err, ERR_IO, "size %s", meta);
            goto out_remove;
        }
        if (fs_fsync(fd, meta, err) < 0)
            goto out_remove;
        fs_close_fd(&fd);
    }
    if (util_fsync_dir(stage, err) < 0)
        goto out_remove;
    if (rename(stage, dst) < 0) {
        err_errno(err, ERR_IO, "publish upload %s", u.upload_id);
        goto out_remove;
    }
    if (fs_path(stage, err, "%s/.multipart", fs->root) < 0 || util_fsync_dir(stage, err) < 0) {
        /* it might not survive a crash: withdraw it and report the failure */
        fs_remove_tree(dst);
        goto out_text;
    }
    if (out)
        *out = u;
    buf_release(&text);
    return 0;

out_remove:
    fs_close_fd(&fd);
    fs_remove_tree(stage);
out_text:
    buf_release(&text);
    return -1;
}

static int fs_upload_create(struct store *st, const char *bucket, const char *key,
                            const char *content_type, const char *headers, struct store_upload *out,
                            struct err *err)
{
    return fs_upload_make(fs_of(st), bucket, key, content_type, headers, 0, 0, out, err);
}

static int fs_upload_create_sized(struct store *st, const char *bucket, const char *key,
                                  const char *content_type, int64_t part_size, int64_t total_size,
                                  struct store_upload *out, struct err *err)
{
    return fs_upload_make(fs_of(st), bucket, key, content_type, NULL, part_size, total_size, out,
                          err);
}

static int fs_upload_get(struct store *st, const char *upload_id, struct store_upload *out,
                         struct err *err)
{
    struct store_upload u;

    if (fs_upload_read(fs_of(st), upload_id, &u, err) < 0)
        return -1;
    if (out)
        *out = u;
    return 0;
}

/* newest copy first for equal numbers, so the first of a run is the one that counts */
static int fs_part_cmp(const void *pa, const void *pb)
{
    const struct fs_part *a = pa;
    const struct fs_part *b = pb;

    if (a->number != b->number)
        return a->number < b->number ? -1 : 1;
    if (a->mtime.tv_sec != b->mtime.tv_sec)
        return a->mtime.tv_sec > b->mtime.tv_sec ? -1 : 1;
    if (a->mtime.tv_nsec != b->mtime.tv_nsec)
        return a->mtime.tv_nsec > b->mtime.tv_nsec ? -1 : 1;
    return strcmp(a->md5, b->md5);
}

/*
 * Lists the parts of an upload in number order, one per number (a crash between storing
 * a re-uploaded part and pruning the old copy can leave two: the newest counts). For a
 * sized upload (u, may be NULL otherwise) the markers, with sizes from the layout.
 * *parts is the caller's to free.
 */
static int fs_parts_scan(struct fs_store *fs, const char *id, const struct store_upload *u,
                         struct fs_part **parts, size_t *n, struct err *err)
{
    int sized = u && u->part_size > 0;
    int count = sized ? fs_layout_count(u->part_size, u->total_size) : STORE_PART_MAX;
    int64_t stride = 0;
    char dir[PATH_MAX];
    struct dirent *de;
    size_t cap = 0;
    size_t out = 0;
    DIR *d;
    int dfd;

    *parts = NULL;
    *n = 0;
    if (fs_upload_lock(fs, id, LOCK_SH, dir, &dfd, err) < 0)
        return -1;
    /* read under the flock: a stride is chosen under LOCK_EX */
    if (!sized && fs_stride_read(fs, id, &stride, err) < 0) {
        close(dfd);
        return -1;
    }
    d = fdopendir(dfd);
    if (!d) {
        err_errno(err, ERR_IO, "open %s", dir);
        close(dfd);
        return -1;
    }
    for (;;) {
        struct fs_part p;
        struct stat sb;

        errno = 0;
        de = readdir(d);
        if (!de)
            break;

        p.number = fs_part_name_parse(de->d_name, p.md5);
        if (p.number == 0 || p.number > count)
            continue;
        if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(sb.st_mode))
            continue;
        /* in a strided upload an empty file is a marker of a part in place, unless its
         * ETag says it is an empty part */
        p.in_place = sized || (stride > 0 && sb.st_size == 0 && strcmp(p.md5, FS_EMPTY_MD5) != 0);
        if (sized)
            p.size = fs_layout_len(u->part_size, u->total_size, p.number);
        else
            p.size = p.in_place ? stride : (int64_t)sb.st_size;
        p.ino = (int64_t)sb.st_ino;
        p.mtime = sb.st_mtim;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *parts = xrealloc(*parts, cap * sizeof(**parts));
        }
        (*parts)[(*n)++] = p;
    }
    if (errno != 0) {
        err_errno(err, ERR_IO, "read %s", dir);
        closedir(d);
        free(*parts);
        *parts = NULL;
        *n = 0;
        return -1;
    }
    closedir(d); /* closes dfd and so drops the lock */
    if (*n > 1)
        qsort(*parts, *n, sizeof(**parts), fs_part_cmp);
    for (size_t i = 0; i < *n; i++)
        if (out == 0 || (*parts)[i].number != (*parts)[out - 1].number)
            (*parts)[out++] = (*parts)[i];
    *n = out;
    return 0;
}

static int fs_upload_parts(struct store *st, const char *upload_id, struct store_part **parts,
                           size_t *n, struct err *err)
{
    struct store_upload u;
    struct fs_part *fp;
    size_t fn;
    struct store_part *sp;

    if (fs_upload_read(fs_of(st), upload_id, &u, err) < 0 ||
        fs_parts_scan(fs_of(st), upload_id, &u, &fp, &fn, err) < 0)
        return -1;
    sp = fn ? xcalloc(fn, sizeof(*sp)) : NULL;
    for (size_t i = 0; i < fn; i++) {
        sp[i].number = fp[i].number;
        sp[i].size = fp[i].size;
        sp[i].mtime = (int64_t)fp[i].mtime.tv_sec;
        memcpy(sp[i].etag, fp[i].md5, sizeof(sp[i].etag));
    }
    free(fp);
    *parts = sp;
    *n = fn;
    return 0;
}

static int fs_upload_cmp(const void *pa, const void *pb)
{
    const struct store_upload *a = pa;
    const struct store_upload *b = pb;
    int c = strcmp(a->key, b->key);

    if (c != 0)
        return c;
    if (a->initiated != b->initiated)
        return a->initiated < b->initiated ? -1 : 1;
    return strcmp(a->upload_id, b->upload_id);
}

static int fs_upload_list(struct store *st, const char *bucket,
                          int (*cb)(void *ctx, const struct store_upload *u), void *ctx,
                          struct err *err)
{
    struct fs_store *fs = fs_of(st);
    char dir[PATH_MAX];
    struct store_upload *ups = NULL;
    size_t n = 0;
    size_t cap = 0;
    struct dirent *de;
    DIR *d;
    int rc = -1;

    if (fs_path(dir, err, "%s/.multipart", fs->root) < 0)
        return -1;
    d = opendir(dir);
    if (!d)
        return err_errno(err, ERR_IO, "open %s", dir);
    for (;;) {
        struct store_upload u;
        struct err e = {0};

        errno = 0;
        de = readdir(d);
        if (!de)
            break;
        if (!store_upload_id_valid(de->d_name))
            continue;
        if (fs_upload_read(fs, de->d_name, &u, &e) < 0) {
            if (e.code != ERR_NOTFOUND) /* else aborted meanwhile */
                log_write(LOG_WARN, "store", "skipping upload %s: %s", de->d_name, e.msg);
            errno = 0;
            continue;
        }
        if (bucket && strcmp(bucket, u.bucket) != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ups = xrealloc(ups, cap * sizeof(*ups));
        }
        ups[n++] = u;
    }
    if (errno != 0) {
        err_errno(err, ERR_IO, "read %s", dir);
        goto out_free;
    }
    if (n > 1)
        qsort(ups, n, sizeof(*ups), fs_upload_cmp);
    for (size_t i = 0; i < n; i++)
        if (cb(ctx, &ups[i]) != 0)
            break;
    rc = 0;
out_free:
    closedir(d);
    free(ups);
    return rc;
}

static int fs_upload_abort(struct store *st, const char *upload_id, struct err *err)
{
    struct fs_store *fs = fs_of(st);
    char dir[PATH_MAX];
    char dead[PATH_MAX];
    char mp[PATH_MAX];
    int dfd;
    int rc = -1;

    if (fs_path(dead, err, "%s/dead-%s", fs->tmpdir, upload_id) < 0 ||
        fs_path(mp, err, "%s/.multipart", fs->root) < 0)
        return -1;
    if (fs_upload_lock(fs, upload_id, LOCK_EX, dir, &dfd, err) < 0)
        return -1;
    /* one rename makes the upload vanish; the parts are then removed from scratch space
     * (where a crash leaves them for the next open to sweep) */
    if (rename(dir, dead) < 0) {
        err_errno(err, ERR_IO, "abort upload %s", upload_id);
        goto out_close;
    }
    fs_hasher_drop(fs, upload_id);
    if (util_fsync_dir(mp, err) < 0)
        goto out_remove;
    rc = 0;
out_remove:
    fs_remove_tree(dead);
out_close:
    close(dfd);
    return rc;
}

/* compares a client's etag (quotes allowed, any case) with a stored md5 hex */
static int fs_etag_match(const char *given, const char *md5)
{
    size_t len = strnlen(given, 80);

    if (len >= 2 && given[0] == '"' && given[len - 1] == '"') {
        given++;
        len -= 2;
    }
    return len == 32 && strncasecmp(given, md5, 32) == 0;
}

/* checks the client's list against the parts found; found[i] is the part refs[i] names */
static int fs_refs_check(const char *id, const struct store_part_ref *refs, size_t n,
                         const struct fs_part *parts, size_t np, int64_t min_part_size,
                         const struct fs_part **found, int64_t *total, struct err *err)
{
    size_t j = 0;

    *total = 0;
    for (size_t i = 0; i < n; i++) {
        if (refs[i].number < 1 || refs[i].number > STORE_PART_MAX)
            return err_set(err, ERR_INVALID, "InvalidPart: part number %d out of range",
                           refs[i].number);
        if (i > 0 && refs[i].number <= refs[i - 1].number)
            return err_set(err, ERR_INVALID, "InvalidPartOrder: part %d listed after part %d",
                           refs[i].number, refs[i - 1].number);
    }
    for (size_t i = 0; i < n; i++) {
        while (j < np && parts[j].number < refs[i].number)
            j++;
        if (j == np || parts[j].number != refs[i].number)
            return err_set(err, ERR_INVALID, "InvalidPart: part %d of upload %s not found",
                           refs[i].number, id);
        if (!fs_etag_match(refs[i].etag, parts[j].md5))
            return err_set(err, ERR_INVALID, "InvalidPart: etag of part %d does not match",
                           refs[i].number);
        if (i + 1 < n && parts[j].size < min_part_size)
            return err_set(err, ERR_LIMIT,
                           "EntityTooSmall: part %d is %lld bytes, below the minimum %lld",
                           refs[i].number, (long long)parts[j].size, (long long)min_part_size);
        if (parts[j].size > STORE_OBJECT_SIZE_MAX - *total)
            return err_set(err, ERR_LIMIT, "EntityTooLarge: object over %lld bytes",
                           (long long)STORE_OBJECT_SIZE_MAX);
        *total += parts[j].size;
        found[i] = &parts[j];
    }
    return 0;
}

/* hashes len bytes of in from offset off */
static int fs_hash_fd(int in, int64_t off, int64_t len, EVP_MD_CTX *sha, unsigned char *buf,
                      struct err *err)
{
    posix_fadvise(in, (off_t)off, (off_t)len, POSIX_FADV_SEQUENTIAL);
    return fs_hash_range(in, off, len, sha, buf, NULL, err);
}

/*
 * Writes len bytes of in from in_off at offset off of out and hashes them (sha may be
 * NULL). copy_file_range first (reflinks or in-kernel copy), then a separate sequential
 * hash pass; where the kernel cannot copy (*rw set), one read pass both hashes and writes.
 */
static int fs_copy_part(int in, int64_t in_off, int out, int64_t off, int64_t len, EVP_MD_CTX *sha,
                        unsigned char *buf, int *rw, struct err *err)
{
    loff_t ioff = in_off;
    loff_t ooff = off;

    while (!*rw && ioff < in_off + len) {
        ssize_t r = copy_file_range(in, &ioff, out, &ooff, (size_t)(in_off + len - ioff), 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && ioff == in_off &&
            (errno == EXDEV || errno == ENOSYS || errno == EOPNOTSUPP || errno == EINVAL)) {
            *rw = 1;
            break;
        }
        if (r < 0)
            return err_errno(err, ERR_IO, "copy part");
        if (r == 0)
            return err_set(err, ERR_IO, "part shrank while copying");
    }
    if (!*rw)
        return sha ? fs_hash_fd(in, in_off, len, sha, buf, err) : 0;
    for (int64_t done = 0; done < len;) {
        size_t want = (size_t)(len - done) < FS_RBUF ? (size_t)(len - done) : FS_RBUF;
        ssize_t r = pread(in, buf, want, (off_t)(in_off + done));

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return err_errno(err, ERR_IO, "read part");
        if (r == 0)
            return err_set(err, ERR_IO, "part shrank while copying");
        if (sha && EVP_DigestUpdate(sha, buf, (size_t)r) != 1)
            return err_set(err, ERR_INTERNAL, "digest update failed");
        if (fs_pwrite_all(out, buf, (size_t)r, off + done, err) < 0)
            return -1;
        done += r;
    }
    return 0;
}

/*
 * Builds the staged file: the part itself when there is one, else a copy of them all.
 * Parts in place (a strided upload's) are read from data (its fd) at (number - 1) * stride.
 */
static int fs_assemble_data(struct fs_store *fs, const char *id, const struct fs_part **found,
                            size_t n, int data, int64_t stride, struct fs_staged *sg,
                            EVP_MD_CTX *sha, int *fd, struct err *err)
{
    char path[PATH_MAX];
    unsigned char *buf = xmalloc(FS_RBUF);
    int64_t off = 0;
    int rw = 0;
    int rc = -1;

    if (n == 1 && !found[0]->in_place) {
        /* parts are never modified in place, so a second name for the part is a copy */
        char tok[17];

        util_token_hex(tok, 8);
        if (fs_path(path, err, "%s/.multipart/%s/p%05d.%s", fs->root, id, found[0]->number,
                    found[0]->md5) < 0 ||
            fs_path(sg->tmp, err, "%s/s-%s", fs->tmpdir, tok) < 0)
            goto out_free;
        if (link(path, sg->tmp) < 0) {
            if (errno == ENOENT)
                err_set(err, ERR_INVALID, "InvalidPart: part %d was replaced", found[0]->number);
            else
                err_errno(err, ERR_IO, "stage part %d", found[0]->number);
            sg->tmp[0] = '\0';
            goto out_free;
        }
        *fd = open(sg->tmp, O_RDONLY | O_CLOEXEC);
        if (*fd < 0) {
            err_errno(err, ERR_IO, "open %s", sg->tmp);
            goto out_free;
        }
        rc = fs_hash_fd(*fd, 0, found[0]->size, sha, buf, err);
        goto out_free;
    }
    if (fs_tmp_create(fs, "s", sg->tmp, fd, err) < 0) {
        sg->tmp[0] = '\0';
        goto out_free;
    }
    for (size_t i = 0; i < n; i++) {
        struct stat sb;
        int in;

        if (found[i]->in_place) {
            /* the caller holds the data file sealed and read-locked */
            if (fs_copy_part(data, (int64_t)(found[i]->number - 1) * stride, *fd, off,
                             found[i]->size, sha, buf, &rw, err) < 0)
                goto out_free;
            off += found[i]->size;
            continue;
        }
        /* the name carries the md5: whatever file it names has the checked etag */
        if (fs_path(path, err, "%s/.multipart/%s/p%05d.%s", fs->root, id, found[i]->number,
                    found[i]->md5) < 0)
            goto out_free;
        in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (in < 0) {
            if (errno == ENOENT)
                err_set(err, ERR_INVALID, "InvalidPart: part %d was replaced", found[i]->number);
            else
                err_errno(err, ERR_IO, "open part %d", found[i]->number);
            goto out_free;
        }
        if (fstat(in, &sb) < 0 || (int64_t)sb.st_size != found[i]->size) {
            err_set(err, ERR_INVALID, "InvalidPart: part %d changed", found[i]->number);
            close(in);
            goto out_free;
        }
        if (fs_copy_part(in, 0, *fd, off, found[i]->size, sha, buf, &rw, err) < 0) {
            close(in);
            goto out_free;
        }
        close(in);
        off += found[i]->size;
    }
    rc = 0;
out_free:
    free(buf);
    return rc;
}

/* the S3 multipart ETag, md5(concat(binary part md5s)) "-" N, into out[80] */
static int fs_multipart_etag(const struct fs_part *const *found, size_t n, char *out,
                             struct err *err)
{
    EVP_MD_CTX *md5 = fs_digest_new(EVP_md5(), err);
    char hex[33];
    int rc = -1;

    if (!md5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char bin[16];

        fs_unhex16(found[i]->md5, bin);
        if (EVP_DigestUpdate(md5, bin, sizeof(bin)) != 1) {
            err_set(err, ERR_INTERNAL, "digest update failed");
            goto out_free;
        }
    }
    if (fs_digest_hex(md5, hex, err) < 0)
        goto out_free;
    (void)snprintf(out, 80, "%s-%zu", hex, n);
    rc = 0;
out_free:
    EVP_MD_CTX_free(md5);
    return rc;
}

/*
 * Seals upload id (dir, seal: its directory and seal file): 1 if sealed now (durably), 0 if
 * it was already, -1 on error (ERR_NOTFOUND if the upload is gone).
 */
static int fs_seal(const char *id, const char *dir, const char *seal, struct err *err)
{
    int sfd = open(seal, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, FS_FILE_MODE);

    if (sfd >= 0) {
        close(sfd);
        if (util_fsync_dir(dir, err) < 0) {
            unlink(seal);
            return -1;
        }
        return 1;
    }
    if (errno == ENOENT)
        return fs_no_upload(id, err);
    if (errno != EEXIST)
        return err_errno(err, ERR_IO, "seal upload %s", id);
    return 0;
}

/*
 * The start of an assembly of upload id, whose parts lie in [0, span) of its data file at
 * multiples of stride: opens the data file (dir, data, seal: the upload's directory, data and
 * seal files), takes the assembly lock past span (one assembly at a time), seals the upload
 * (*sealed_here: 1 if this call sealed it) and takes a read lock over [0, span), so that no
 * part is written while the list is read. Returns the data file's descriptor, or -1
 * (ERR_NOTFOUND if the upload is gone, ERR_CONFLICT while a part is being uploaded) with
 * the upload as it was: what this call sealed is unsealed before its locks go.
 */
static int fs_assembly_begin(const char *id, const char *dir, const char *data, const char *seal,
                             int64_t span, int64_t stride, int *sealed_here, struct err *err)
{
    int64_t start = 0;
    int fd = open(data, O_RDWR | O_CLOEXEC | O_NOFOLLOW);

    *sealed_here = 0;
    if (fd < 0) {
        if (errno == ENOENT)
            fs_no_upload(id, err);
        else
            err_errno(err, ERR_IO, "open %s", data);
        return -1;
    }
    if (fs_range_lock(fd, F_WRLCK, span, 1, 1) < 0) {
        err_errno(err, ERR_IO, "lock upload %s for assembly", id);
        goto out_close;
    }
    *sealed_here = fs_seal(id, dir, seal, err);
    if (*sealed_here < 0) {
        *sealed_here = 0;
        goto out_close;
    }
    if (fs_range_lock(fd, F_RDLCK, 0, span, 0) == 0)
        return fd;
    if (errno != EAGAIN && errno != EACCES)
        err_errno(err, ERR_IO, "lock upload %s", id);
    else if (fs_range_holder(fd, F_RDLCK, 0, span, &start) == F_WRLCK)
        err_set(err, ERR_CONFLICT, "part %lld is being uploaded by another request",
                (long long)(start / stride + 1));
    else
        err_set(err, ERR_CONFLICT, "a part of upload %s is being uploaded", id);
    if (*sealed_here && unlink(seal) == 0) /* unsealed before the assembly lock goes */
        (void)util_fsync_dir(dir, NULL);
    *sealed_here = 0;
out_close:
    close(fd); /* drops both locks */
    return -1;
}

/*
 * Gives the sealed data file of upload id a second name in the temporary directory: the
 * staged object sg, without a copy, that an abort of the upload cannot take away.
 */
static int fs_stage_link(struct fs_store *fs, struct fs_staged *sg, const char *id,
                         const char *data, struct err *err)
{
    char tok[17];

    util_token_hex(tok, 8);
    if (fs_path(sg->tmp, err, "%s/s-%s", fs->tmpdir, tok) < 0)
        return -1;
    if (link(data, sg->tmp) < 0) {
        if (errno == ENOENT)
            fs_no_upload(id, err); /* aborted meanwhile */
        else
            err_errno(err, ERR_IO, "stage upload %s", id);
        sg->tmp[0] = '\0';
        return -1;
    }
    return 0;
}

/* fs_refs_check for a sized upload, which must also list every part */
static int fs_sized_check(const struct store_upload *u, const struct store_part_ref *refs, size_t n,
                          const struct fs_part *parts, size_t np, const struct fs_part **found,
                          struct err *err)
{
    int count = fs_layout_count(u->part_size, u->total_size);
    int64_t total;
    size_t j = 0;

    if (fs_refs_check(u->upload_id, refs, n, parts, np, 0, found, &total, err) < 0)
        return -1;
    for (int k = 1; k <= count; k++) {
        if ((size_t)k <= n && refs[k - 1].number == k)
            continue;
        while (j < np && parts[j].number < k)
            j++;
        if (j < np && parts[j].number == k)
            return err_set(err, ERR_INVALID, "InvalidPart: part %d of %d is not listed", k, count);
        return err_set(err, ERR_INVALID, "InvalidPart: part %d of %d was not uploaded", k, count);
    }
    if (total != u->total_size)
        return err_set(err, ERR_INTERNAL, "parts of upload %s do not add up", u->upload_id);
    return 0;
}

/*
 * Assembles a sized upload: checks the list, seals the upload (no part changes from
 * now), makes sure no writer is still in a region (read lock on everything), checks the
 * list again against the markers, finishes the hash and stages the data file itself
 * under a second name (a hard link). One assembly of an upload at a time (a write lock
 * just past the data). A failed assembly unseals what it sealed.
 */
static int fs_sized_assemble(struct fs_store *fs, const struct store_upload *u,
                             const struct store_part_ref *refs, size_t n, struct store_staged **out,
                             struct err *err)
{
    const char *id = u->upload_id;
    struct fs_part *parts = NULL;
    const struct fs_part **found = xcalloc(n, sizeof(*found));
    struct fs_staged *sg = NULL;
    struct fs_hasher *h = NULL;
    char dir[PATH_MAX];
    char data[PATH_MAX];
    char seal[PATH_MAX];
    size_t np = 0;
    int sealed_here = 0;
    int fd = -1;
    int rc = -1;

    if (fs_parts_scan(fs, id, u, &parts, &np, err) < 0 ||
        fs_sized_check(u, refs, n, parts, np, found, err) < 0)
        goto out_free;
    if (fs_upload_dir(fs, id, dir, err) < 0 || fs_path(data, err, "%s/" FS_DATA, dir) < 0 ||
        fs_path(seal, err, "%s/" FS_SEAL, dir) < 0)
        goto out_free;
    fd = fs_assembly_begin(id, dir, data, seal, u->total_size, u->part_size, &sealed_here, err);
    if (fd < 0)
        goto out_free;
    /* the list against the markers as they are now that nothing can change them */
    free(parts);
    parts = NULL;
    if (fs_parts_scan(fs, id, u, &parts, &np, err) < 0 ||
        fs_sized_check(u, refs, n, parts, np, found, err) < 0)
        goto out_free;

    h = fs_hasher_get(fs, id, u->part_size, u->total_size, 1, NULL);
    if (!h) {
        err_set(err, ERR_INTERNAL, "cannot set up the hash of upload %s", id);
        goto out_free;
    }
    sg = xcalloc(1, sizeof(*sg));
    sg->base.st = &fs->base;
    sg->meta.size = u->total_size;
    memcpy(sg->meta.content_type, u->content_type, sizeof(sg->meta.content_type));
    memcpy(sg->meta.headers, u->headers, sizeof(sg->meta.headers));
    if (fs_multipart_etag(found, n, sg->meta.etag, err) < 0 ||
        fs_hasher_finish(fs, h, fd, parts, np, sg->meta.sha256, err) < 0)
        goto out_free;
    if (fs_meta_write(fd, &sg->meta, err) < 0 || fs_fsync(fd, "staged object", err) < 0)
        goto out_free;
    if (fs_stage_link(fs, sg, id, data, err) < 0)
        goto out_free;
    sg->meta.mtime = util_now_ms() / 1000;
    *out = &sg->base;
    sg = NULL;
    rc = 0;

out_free:
    if (rc < 0 && sealed_here > 0 && unlink(seal) == 0)
        (void)util_fsync_dir(dir, NULL);
    if (fd >= 0)
        close(fd); /* drops both locks */
    if (sg) {
        if (sg->tmp[0])
            unlink(sg->tmp);
        free(sg);
    }
    fs_hasher_put(fs, h);
    free(found);
    free(parts);
    return rc;
}

/* unlinks every part of the upload numbered above last (caller holds LOCK_EX on dfd) */
static int fs_parts_drop_after(const char *dir, int last, struct err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int removed = 0;

    if (!d)
        return err_errno(err, ERR_IO, "open %s", dir);
    for (;;) {
        char md5[33];
        int num;

        errno = 0;
        de = readdir(d);
        if (!de)
            break;
        num = fs_part_name_parse(de->d_name, md5);
        if (num <= last)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT) {
            err_errno(err, ERR_IO, "remove part %s", de->d_name);
            closedir(d);
            return -1;
        }
        removed++;
    }
    if (errno != 0) {
        err_errno(err, ERR_IO, "read %s", dir);
        closedir(d);
        return -1;
    }
    closedir(d);
    return removed;
}

/*
 * Makes a strided upload's data file the object of parts 1..k (all but the last in place):
 * parts past k lose their markers (their regions are cut off), a last part that came as a
 * file of its own is copied to its place, and the file is cut to total bytes. The caller
 * holds the upload sealed and its data read-locked (fd).
 */
static int fs_strided_fit(struct fs_store *fs, const char *id, int fd, int64_t stride,
                          const struct fs_part *last, int64_t total, struct err *err)
{
    char dir[PATH_MAX];
    char path[PATH_MAX];
    unsigned char *buf = NULL;
    int removed;
    int dfd;
    int in = -1;
    int rw = 0;
    int rc = -1;

    if (fs_upload_lock(fs, id, LOCK_EX, dir, &dfd, err) < 0)
        return -1;
    removed = fs_parts_drop_after(dir, last->number, err);
    if (removed < 0 || (removed > 0 && fs_fsync(dfd, dir, err) < 0))
        goto out_close;
    if (!last->in_place) {
        if (fs_path(path, err, "%s/p%05d.%s", dir, last->number, last->md5) < 0)
            goto out_close;
        in = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (in < 0) {
            err_errno(err, ERR_IO, "open part %d", last->number);
            goto out_close;
        }
        buf = xmalloc(FS_RBUF);
        if (fs_copy_part(in, 0, fd, (int64_t)(last->number - 1) * stride, last->size, NULL, buf,
                         &rw, err) < 0)
            goto out_close;
    }
    if (ftruncate(fd, (off_t)total) < 0) {
        err_errno(err, ERR_IO, "cut the data of upload %s", id);
        goto out_close;
    }
    rc = 0;
out_close:
    free(buf);
    if (in >= 0)
        close(in);
    close(dfd);
    return rc;
}

/* bounds a strided upload's hash state to its k parts and total bytes, for assembly */
static void fs_hasher_bound(struct fs_hasher *h, int k, int64_t total)
{
    pthread_mutex_lock(&h->mu);
    while (h->busy)
        pthread_cond_wait(&h->idle, &h->mu);
    if (h->next > k + 1)
        fs_hasher_restart(h);
    h->count = k;
    h->total = total;
    pthread_mutex_unlock(&h->mu);
}

/*
 * Assembles an upload whose parts are partly in place (it has a stride). Sealed and
 * read-locked like a sized upload. When the list is parts 1..k and all but the last are
 * in place, the data file becomes the object: no copy, and the hash was mostly taken as
 * the parts arrived. Any other list is copied into a staged file as for files of parts.
 */
static int fs_strided_assemble(struct fs_store *fs, const struct store_upload *u, int64_t stride,
                               const struct store_part_ref *refs, size_t n, int64_t min_part_size,
                               struct store_staged **out, struct err *err)
{
    const char *id = u->upload_id;
    int64_t span = fs_stride_span(stride);
    const struct fs_part **found = xcalloc(n, sizeof(*found));
    struct fs_part *parts = NULL;
    struct fs_staged *sg = NULL;
    struct fs_hasher *h = NULL;
    EVP_MD_CTX *sha = NULL;
    char dir[PATH_MAX];
    char data[PATH_MAX];
    char seal[PATH_MAX];
    size_t np = 0;
    int64_t total;
    int sealed_here = 0;
    int fast = 1;
    int fd = -1;
    int sfd = -1;
    int rc = -1;

    if (fs_parts_scan(fs, id, NULL, &parts, &np, err) < 0 ||
        fs_refs_check(id, refs, n, parts, np, min_part_size, found, &total, err) < 0)
        goto out_free;
    if (fs_upload_dir(fs, id, dir, err) < 0 || fs_path(data, err, "%s/" FS_DATA, dir) < 0 ||
        fs_path(seal, err, "%s/" FS_SEAL, dir) < 0)
        goto out_free;
    fd = fs_assembly_begin(id, dir, data, seal, span, stride, &sealed_here, err);
    if (fd < 0)
        goto out_free;
    /* the list against the parts as they are now that nothing can change them */
    free(parts);
    parts = NULL;
    if (fs_parts_scan(fs, id, NULL, &parts, &np, err) < 0 ||
        fs_refs_check(id, refs, n, parts, np, min_part_size, found, &total, err) < 0)
        goto out_free;
    for (size_t i = 0; i < n; i++)
        if (refs[i].number != (int)i + 1 || (i + 1 < n && !found[i]->in_place))
            fast = 0;

    sg = xcalloc(1, sizeof(*sg));
    sg->base.st = &fs->base;
    sg->meta.size = total;
    memcpy(sg->meta.content_type, u->content_type, sizeof(sg->meta.content_type));
    memcpy(sg->meta.headers, u->headers, sizeof(sg->meta.headers));
    if (fs_multipart_etag(found, n, sg->meta.etag, err) < 0)
        goto out_free;
    if (!fast) {
        sha = fs_digest_new(EVP_sha256(), err);
        if (!sha || fs_assemble_data(fs, id, found, n, fd, stride, sg, sha, &sfd, err) < 0 ||
            fs_digest_hex(sha, sg->meta.sha256, err) < 0 ||
            fs_meta_write(sfd, &sg->meta, err) < 0 || fs_fsync(sfd, "staged object", err) < 0)
            goto out_free;
    } else {
        /* parts[0..n-1] are parts 1..n: the list is them, in order (an empty last part
         * adds nothing to the hash) */
        size_t hashed = found[n - 1]->size == 0 ? n - 1 : n;

        h = fs_hasher_get(fs, id, stride, span, 1, NULL);
        if (!h) {
            err_set(err, ERR_INTERNAL, "cannot set up the hash of upload %s", id);
            goto out_free;
        }
        fs_hasher_bound(h, (int)hashed, total);
        if (fs_strided_fit(fs, id, fd, stride, found[n - 1], total, err) < 0 ||
            fs_hasher_finish(fs, h, fd, parts, hashed, sg->meta.sha256, err) < 0 ||
            fs_meta_write(fd, &sg->meta, err) < 0 || fs_fsync(fd, "staged object", err) < 0)
            goto out_free;
        if (fs_stage_link(fs, sg, id, data, err) < 0)
            goto out_free;
    }
    sg->meta.mtime = util_now_ms() / 1000;
    *out = &sg->base;
    sg = NULL;
    rc = 0;

out_free:
    if (rc < 0 && sealed_here > 0 && unlink(seal) == 0)
        (void)util_fsync_dir(dir, NULL);
    if (sfd >= 0)
        close(sfd);
    if (fd >= 0)
        close(fd); /* drops both locks */
    if (sg) {
        if (sg->tmp[0])
            unlink(sg->tmp);
        free(sg);
    }
    fs_hasher_put(fs, h);
    if (rc < 0 && h)
        fs_hasher_drop(fs, id); /* bounded to this list: the next assembly starts afresh */
    EVP_MD_CTX_free(sha);
    free(found);
    free(parts);
    return rc;
}

static int fs_upload_assemble(struct store *st, const char *upload_id,
                              const struct store_part_ref *refs, size_t n, int64_t min_part_size,
                              struct store_staged **out, struct err *err)
{
    struct fs_store *fs = fs_of(st);
    struct store_upload u;
    struct fs_part *parts = NULL;
    const struct fs_part **found = NULL;
    struct fs_staged *sg = NULL;
    EVP_MD_CTX *sha = NULL;
    size_t np = 0;
    int64_t total;
    int64_t stride = 0;
    int fd = -1;
    int rc = -1;

    if (n == 0)
        return err_set(err, ERR_INVALID, "MalformedXML: no parts given");
    if (n > STORE_PART_MAX)
        return err_set(err, ERR_LIMIT, "InvalidArgument: more than %d parts", STORE_PART_MAX);
    if (fs_upload_read(fs, upload_id, &u, err) < 0)
        return -1;
    if (u.part_size > 0)
        return fs_sized_assemble(fs, &u, refs, n, out, err);
    if (fs_stride_read(fs, upload_id, &stride, err) < 0)
        return -1;
    if (stride > 0)
        return fs_strided_assemble(fs, &u, stride, refs, n, min_part_size, out, err);
    if (fs_parts_scan(fs, upload_id, &u, &parts, &np, err) < 0)
        return -1;
    found = xcalloc(n, sizeof(const struct fs_part *));
    if (fs_refs_check(upload_id, refs, n, parts, np, min_part_size, found, &total, err) < 0)
        goto out_free;
    for (size_t i = 0; i < n; i++) {
        if (found[i]->in_place) {
            /* a part went in place since we looked: the stride is there now */
            free(found);
            free(parts);
            if (fs_stride_read(fs, upload_id, &stride, err) < 0)
                return -1;
            return fs_strided_assemble(fs, &u, stride, refs, n, min_part_size, out, err);
        }
    }

    sha = fs_digest_new(EVP_sha256(), err);
    if (!sha)
        goto out_free;

    sg = xcalloc(1, sizeof(*sg));
    sg->base.st = st;
    if (fs_multipart_etag(found, n, sg->meta.etag, err) < 0)
        goto out_free;
    sg->meta.size = total;
    memcpy(sg->meta.content_type, u.content_type, sizeof(sg->meta.content_type));
    memcpy(sg->meta.headers, u.headers, sizeof(sg->meta.headers));
    if (fs_assemble_data(fs, upload_id, found, n, -1, 0, sg, sha, &fd, err) < 0 ||
        fs_digest_hex(sha, sg->meta.sha256, err) < 0)
        goto out_free;
    if (fs_meta_write(fd, &sg->meta, err) < 0 || fs_fsync(fd, "staged object", err) < 0)
        goto out_free;
    sg->meta.mtime = util_now_ms() / 1000;
    *out = &sg->base;
    sg = NULL;
    rc = 0;

out_free:
    if (fd >= 0)
        close(fd);
    if (sg) {
        if (sg->tmp[0])
            unlink(sg->tmp);
        free(sg);
    }
    EVP_MD_CTX_free(sha);
    free(found);
    free(parts);
    return rc;
}

static const struct store_meta *fs_staged_meta(struct store_staged *ssg)
{
    return &((struct fs_staged *)ssg)->meta;
}

static int fs_staged_commit(struct store_staged *ssg, const char *bucket, const char *key,
                            struct store_meta *out, struct err *err)
{
    struct fs_staged *sg = (struct fs_staged *)ssg;
    struct fs_store *fs = fs_of(ssg->st);
    struct store_meta cur;
    struct stat sb;
    int placed;
    int fd;

    if (fs_key_fits(key, err) < 0)
        return -1;
    if (!sg->tmp[0])
        return err_set(err, ERR_INTERNAL, "staged object has no data");
    placed = fs_place(fs, sg->tmp, bucket, key, 0, err);
    if (placed < 0)
        return -1;
    if (placed == 0) {
        if (stat(sg->tmp, &sb) == 0)
            sg->meta.mtime = (int64_t)sb.st_mtim.tv_sec;
        if (out)
            *out = sg->meta;
        return 0;
    }
    /* something is there: a retried completion of the same data is fine */
    if (fs_object_fd(fs, bucket, key, &fd, &sb, NULL) < 0)
        return err_set(err, ERR_CONFLICT, "object exists: %s/%s", bucket, key);
    if (fs_meta_read(fd, &sb, &cur, err) < 0) {
        close(fd);
        return -1;
    }
    close(fd);
    if (cur.size != sg->meta.size || strcmp(cur.sha256, sg->meta.sha256) != 0)
        return err_set(err, ERR_CONFLICT, "object exists: %s/%s", bucket, key);
    if (out)
        *out = cur;
    return 0;
}

static void fs_staged_free(struct store_staged *ssg)
{
    struct fs_staged *sg = (struct fs_staged *)ssg;

    if (sg->tmp[0])
        unlink(sg->tmp);
    free(sg);
}

static const struct store_ops fs_ops = {
    .name = "fs",
    .close = fs_close,
    .object_writer = fs_object_writer,
    .part_writer = fs_part_writer,
    .writer_write = fs_writer_write,
    .writer_commit = fs_writer_commit,
    .writer_abort = fs_writer_abort,
    .object_stat = fs_object_stat,
    .object_open = fs_object_open,
    .object_delete = fs_object_delete,
    .object_list = fs_object_list,
    .object_copy = fs_object_copy,
    .upload_create = fs_upload_create,
    .upload_create_sized = fs_upload_create_sized,
    .upload_get = fs_upload_get,
    .upload_parts = fs_upload_parts,
    .upload_list = fs_upload_list,
    .upload_abort = fs_upload_abort,
    .upload_assemble = fs_upload_assemble,
    .staged_meta = fs_staged_meta,
    .staged_commit = fs_staged_commit,
    .staged_free = fs_staged_free,
};
