/*
 * core: the pieces every other module stands on. Depends on nothing but libc,
 * OpenSSL (hashes) and jansson (JSON helpers).
 */
#ifndef ACERVO_CORE_H
#define ACERVO_CORE_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define ACERVO_VERSION "0.1.0"

#define ATTR_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define ATTR_NORETURN     __attribute__((noreturn))
#define ARRAY_LEN(a)      (sizeof(a) / sizeof((a)[0]))

/* ---- memory: out of memory aborts ------------------------------------------------ */

/** malloc that aborts on failure; never returns NULL. Caller frees. */
void *xmalloc(size_t n);
/** calloc that aborts on failure. Caller frees. */
void *xcalloc(size_t nmemb, size_t size);
/** realloc that aborts on failure. */
void *xrealloc(void *p, size_t n);
/** strdup that aborts on failure. Caller frees. */
char *xstrdup(const char *s);
/** strndup that aborts on failure. Caller frees. */
char *xstrndup(const char *s, size_t n);

/* ---- errors ------------------------------------------------------------------------ */

/** Error classes; each maps to exactly one HTTP status in http_problem_status(). */
enum err_code {
    ERR_OK = 0,
    ERR_INVALID,       /* malformed input (400) */
    ERR_UNAUTH,        /* missing or bad credentials (401) */
    ERR_DENIED,        /* authenticated but not allowed (403) */
    ERR_NOTFOUND,      /* no such thing (404) */
    ERR_METHOD,        /* method not allowed on this resource (405) */
    ERR_CONFLICT,      /* state conflict, duplicate (409) */
    ERR_GONE,          /* expired (410) */
    ERR_PRECONDITION,  /* precondition failed (412) */
    ERR_LIMIT,         /* a size cap was exceeded (413) */
    ERR_HEADERS,       /* request headers too large (431) */
    ERR_MEDIA_TYPE,    /* request body in a media type the resource does not take (415) */
    ERR_UNPROCESSABLE, /* well-formed, but at odds with what it refers to (422) */
    ERR_RANGE,         /* unsatisfiable range (416) */
    ERR_UNSUPPORTED,   /* understood but not supported (501) */
    ERR_IO,            /* local I/O failure (500) */
    ERR_BACKEND,       /* catalog/store backend failure (503) */
    ERR_NETWORK,       /* a remote server could not be reached or cut the exchange (502) */
    ERR_TIMEOUT,       /* the client did not send its request in time (408) */
    ERR_VERSION,       /* an HTTP version the server does not speak (505) */
    ERR_BUSY,          /* no room for the client now; it may retry later (503) */
    ERR_INTERNAL,      /* a bug (500) */
};

/** An error: a class and a human-readable message for the client and the log. */
struct err {
    enum err_code code;
    char msg[256];
};

/** Records an error in e (if non-NULL). Always returns -1. */
int err_set(struct err *e, enum err_code c, const char *fmt, ...) ATTR_PRINTF(3, 4);
/** Like err_set, appending ": strerror(errno)" captured at call time. Returns -1. */
int err_errno(struct err *e, enum err_code c, const char *fmt, ...) ATTR_PRINTF(3, 4);
/** err_set with a va_list. Returns -1. */
int err_vset(struct err *e, enum err_code c, const char *fmt, va_list ap) ATTR_PRINTF(3, 0);
/** Clears e. */
void err_clear(struct err *e);
/** Stable lowercase name of an error class ("invalid", "not_found", ...). Static. */
const char *err_code_name(enum err_code c);

/* ---- growable string buffer with a hard cap (strbuf + toobig) ----------------------- */

/** A growable byte buffer; buf is never NULL and always NUL-terminated. */
struct buf {
    char *buf;
    size_t len;
    size_t alloc;
    size_t max; /* hard cap on len; 0 means SIZE_MAX */
};

/** Initialises b empty, with a cap of max bytes (0: no cap). */
void buf_init(struct buf *b, size_t max);
/** Frees b's contents; b is left empty and reusable. */
void buf_release(struct buf *b);
/** Hands the string over to the caller (who frees it); b is left empty. */
char *buf_detach(struct buf *b, size_t *len);
/** Empties b, keeping its allocation. */
void buf_reset(struct buf *b);
/** Appends n bytes; -1 with ERR_LIMIT if the cap would be exceeded. */
int buf_add(struct buf *b, const void *data, size_t n, struct err *err);
/** Appends a NUL-terminated string. */
int buf_adds(struct buf *b, const char *s, struct err *err);
/** Appends formatted text. */
int buf_addf(struct buf *b, struct err *err, const char *fmt, ...) ATTR_PRINTF(3, 4);
/** Appends s escaped for XML text and attribute content (also HTML5's). */
int buf_add_xml(struct buf *b, const char *s, struct err *err);
/** The same for n bytes of s. */
int buf_add_xml_n(struct buf *b, const char *s, size_t n, struct err *err);

/* ---- arena: request-scoped allocations freed at once -------------------------------- */

struct arena_block;
/** An arena; zero-initialise or arena_init() before use. */
struct arena {
    struct arena_block *head;
};

/** Initialises an empty arena. */
void arena_init(struct arena *a);
/** Frees every allocation of the arena at once. */
void arena_release(struct arena *a);
/** Allocates n zeroed bytes, valid until arena_release. Aborts on OOM. */
void *arena_alloc(struct arena *a, size_t n);
/** Copies s into the arena. NULL stays NULL. */
char *arena_strdup(struct arena *a, const char *s);
/** Copies n bytes of s into the arena and NUL-terminates. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
/** Formats into the arena. */
char *arena_printf(struct arena *a, const char *fmt, ...) ATTR_PRINTF(2, 3);

/* ---- logging: JSON lines, with the current request or job id ------------------------- */

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/** Sets up logging: minimum level, JSON lines (json=1) or plain text, to fd. */
void log_init(enum log_level min, int json, int fd);
/** Parses "debug", "info", "warn", "error"; -1 if unknown. */
int log_level_parse(const char *s);
/** Sets the calling thread's context id (request id, job id); NULL clears it. */
void log_ctx_set(const char *id);
/** The calling thread's context id, or NULL. Valid until the next log_ctx_set. */
const char *log_ctx_get(void);
/** Writes one log line: level, module ("http", "store", ...), message. */
void log_write(enum log_level level, const char *module, const char *fmt, ...) ATTR_PRINTF(3, 4);

/* ---- configuration: one table-driven struct ----------------------------------------- */

/** The daemon's configuration; immutable after start, passed explicitly. */
struct cfg {
    char data_dir[512];
    char listen[128];
    char s3_listen[128];
    char public_url[256];    /* base URL clients use for the API (default from listen) */
    char s3_public_url[256]; /* base URL clients use for presigned S3 URLs */
    char s3_region[64];
    char log_level[16];
    char log_format[16];       /* json | text */
    char role[16];             /* all | api | worker */
    long workers;              /* worker processes under the supervisor */
    char queues[256];          /* "ingest:8,transcode:1,..." per worker process */
    long job_lease;            /* seconds */
    long search_concurrency;   /* searches at once in the API (0: one per CPU) */
    long search_queue_timeout; /* seconds a search waits for its turn */
    long worker_nice;          /* niceness of worker processes (0..19) */
    long diagnostics;          /* 1: diagnostic workflows may be started */
    long catalog_cache;        /* bytes of page cache per catalog connection */
    long catalog_memory;       /* bytes SQLite may hold per process, soft (0: unlimited) */
    long probe_timeout;        /* seconds */
    long probe_memory;         /* bytes */
    long max_media_duration;   /* seconds of a video or audio master */
    long max_video_pixels;     /* width x height of a video master */
    long max_image_pixels;     /* width x height of an image master (<= MEDIA_MAX_PIXELS) */
    long ondemand_ttl;         /* seconds an on-demand rendition is kept */
    long max_connections;      /* per listener; one thread each */
    /* per listener and client address */
    long max_connections_per_address;
    long header_timeout;     /* seconds to send a request's line and headers */
    long body_timeout;       /* seconds of grace before a body must keep up the rate */
    long body_min_rate;      /* bytes per second a body must average after the grace */
    long idle_timeout;       /* seconds a keep-alive connection or a stalled transfer waits */
    long max_json_body;      /* bytes */
    long max_header_bytes;   /* bytes, per request */
    long max_object_size;    /* bytes, single PUT */
    long min_part_size;      /* bytes, every part but the last */
    long part_size;          /* bytes, smallest part size the upload flow hands out */
    long presign_ttl;        /* seconds */
    long clock_skew;         /* seconds */
    long upload_ttl;         /* seconds an incomplete upload lives */
    long sweep_interval;     /* seconds between incomplete-upload sweeps */
    long shutdown_grace;     /* seconds in-flight requests get on SIGTERM */
    long restart_reset;      /* seconds up after which a child's restart backoff resets */
    long sendfile_threshold; /* bytes; smaller downloads are sent from memory */
    char config_file[512];
};

/** Types of configuration entries. */
enum cfg_type { CFG_STR, CFG_LONG, CFG_SIZE, CFG_DURATION };

/** One configuration entry: its name in the file, environment and flags. */
struct cfg_entry {
    const char *name; /* file key and --flag (with '_' as '-') */
    const char *env;  /* ACERVO_... */
    enum cfg_type type;
    const char *def;
    size_t offset;
    size_t size; /* for CFG_STR */
    const char *help;
};

/** The table every configuration source is read through. Static. */
extern const struct cfg_entry cfg_table[];
/** Number of entries in cfg_table. */
extern const size_t cfg_table_len;

/** Fills c with the defaults. */
void cfg_defaults(struct cfg *c);
/**
 * Loads defaults, then the config file (--config, ACERVO_CONFIG or DATA_DIR/acervo.conf),
 * then ACERVO_* environment, then flags from argv[*optind..]. Flags not in the table stop
 * the scan; *optind is left at the first unconsumed argument.
 */
int cfg_load(struct cfg *c, int argc, char **argv, int *optind, struct err *err);
/** Sets one entry by name from its textual value. */
int cfg_set(struct cfg *c, const char *name, const char *value, struct err *err);
/** Writes the flag/env/default help generated from the table. */
void cfg_usage(FILE *out);
/** Writes the table as a Markdown table (docs). */
void cfg_markdown(FILE *out);
/** Parses "64M", "1G", "4096" into bytes; -1 on error. */
int cfg_parse_size(const char *s, long *out);
/** Parses "15m", "7d", "30s", "30" (seconds) into seconds; -1 on error. */
int cfg_parse_duration(const char *s, long *out);

/* ---- gate: bounded concurrency ------------------------------------------------------- */

struct gate_waiter;

/**
 * A gate: at most max holders at once; the others wait in arrival order. For work that
 * costs enough CPU or memory that running it all at once only makes everything slower.
 */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int max;
    int in; /* holders */
    struct gate_waiter *head;
    struct gate_waiter **tail;
};

/** Sets the gate up for max holders (at least 1). */
void gate_init(struct gate *g, int max);
/** Releases what gate_init set up; no one may hold or wait then. */
void gate_release(struct gate *g);
/**
 * Takes a place: at once if one is free and no one waits, else after those waiting
 * before. 0 once in (gate_leave must follow), -1 if none came within timeout_ms.
 */
int gate_enter(struct gate *g, int64_t timeout_ms);
/** Gives the place up: to the oldest waiter if any. */
void gate_leave(struct gate *g);
/** How many wait now (for tests and metrics). */
int gate_waiting(struct gate *g);

/* ---- small utilities ----------------------------------------------------------------- */

/** Fills p with n cryptographically random bytes. Aborts if the kernel cannot. */
void util_random(void *p, size_t n);
/** Writes a UUIDv7 (time-ordered) as 36 chars + NUL into out. */
void util_uuid7(char out[37]);
/** 1 if s is a canonical lowercase UUID string. */
int util_uuid_valid(const char *s);
/** Value of one hex digit (either case), or -1. */
int util_hexval(int c);
/** Hex-encodes n bytes into out (2n+1 chars). */
void util_hex(const unsigned char *in, size_t n, char *out);
/** Random token: n random bytes as lowercase hex into out (2n+1 chars). */
void util_token_hex(char *out, size_t nbytes);
/** Constant-time comparison of two NUL-terminated strings; 1 if equal. */
int util_streq_ct(const char *a, const char *b);
/** Current wall-clock time in milliseconds since the epoch. */
int64_t util_now_ms(void);
/** Monotonic time in milliseconds. */
int64_t util_mono_ms(void);
/** Formats t (seconds since epoch, UTC) as RFC 3339 "2026-01-02T03:04:05Z". */
void util_time_rfc3339(int64_t t, char out[32]);
/** Formats t as RFC 3339 with milliseconds "2026-01-02T03:04:05.678Z". */
void util_time_rfc3339_ms(int64_t ms, char out[32]);
/** Formats t as an HTTP date "Sun, 06 Nov 1994 08:49:37 GMT". */
void util_time_http(int64_t t, char out[40]);
/** Parses an HTTP date (IMF-fixdate); -1 if malformed. */
int util_time_http_parse(const char *s, int64_t *out);
/** Parses RFC 3339 / ISO 8601 basic forms ("20260102T030405Z" or with separators). */
int util_time_iso_parse(const char *s, int64_t *out);
/** Parses a base-10 signed 64-bit integer, whole string; -1 if malformed. */
int util_parse_i64(const char *s, int64_t *out);
/**
 * Decodes the character at s[*i] (len bytes in all) into *cp and moves *i past it.
 * Returns 1, or 0 with *i moved one byte on for a byte that does not start a valid,
 * shortest-form character (overlong forms, surrogates, past U+10FFFF, truncated).
 */
int util_utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp);
/** 1 if the n bytes at s are valid UTF-8 (shortest forms, no surrogates), else 0. */
int util_utf8_valid(const char *s, size_t n);
/** SHA-256 of data as 64 lowercase hex chars + NUL. */
void util_sha256_hex(const void *data, size_t n, char out[65]);
/** HMAC-SHA256 into out (32 bytes). */
void util_hmac_sha256(const void *key, size_t klen, const void *data, size_t n,
                      unsigned char out[32]);
/** Base64 encoding of n bytes (out must hold 4*((n+2)/3)+1). */
void util_base64(const unsigned char *in, size_t n, char *out);
/** Writes the whole buffer, retrying on EINTR and short writes. */
int util_write_all(int fd, const void *p, size_t n, struct err *err);
/** fsyncs the directory at path. */
int util_fsync_dir(const char *path, struct err *err);
/**
 * Prepares the process title: records the memory of argv (and of the environment right
 * after it, which is moved to the heap) so util_proc_title_set can overwrite it. Call once
 * from main before anything else reads argv or the environment through saved pointers:
 * argv's strings are gone after the first util_proc_title_set.
 */
void util_proc_title_init(int argc, char **argv);
/**
 * Names the process for operators: the full title where `ps` shows the command line
 * (with util_proc_title_init), and its first 15 bytes, or comm if given, as the thread's
 * name (PR_SET_NAME: top, ps -e, /proc/PID/comm).
 */
void util_proc_title_set(const char *title, const char *comm);
/** mkdir -p with mode 0700 (the directories acervod makes are its own). */
int util_mkdirs(const char *path, struct err *err);

#endif
