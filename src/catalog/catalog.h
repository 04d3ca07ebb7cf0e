/*
 * catalog: the source of truth for assets, uploads, users, keys and the audit log.
 * Backends are vtables (catalog_sqlite.c; PostgreSQL later); callers use the cat_*
 * wrappers only. Every function is safe to call from many threads at once.
 */
#ifndef ACERVO_CATALOG_H
#define ACERVO_CATALOG_H

#include "core/core.h"

#include <stdint.h>
#include <stdio.h>

/** Roles, from least to most privileged. */
enum cat_role { ROLE_VIEWER = 1, ROLE_EDITOR = 2, ROLE_ADMIN = 3 };

/** "viewer", "editor", "admin". Static. */
const char *cat_role_name(enum cat_role r);
/** Parses a role name; -1 if unknown. */
int cat_role_parse(const char *s);

/** Asset lifecycle states (the seed's). */
#define ASSET_UPLOADING  "uploading"
#define ASSET_PROCESSING "processing"
#define ASSET_READY      "ready"
#define ASSET_FAILED     "failed"
#define ASSET_ARCHIVED   "archived"

/** An asset row. Strings marked "may be NULL" are heap-allocated; cat_asset_release frees. */
struct cat_asset {
    char id[37];
    char type[8];            /* video | audio | image */
    char status[16];         /* ASSET_* */
    char *external_id;       /* may be NULL */
    char *title;             /* may be NULL */
    char *description;       /* may be NULL */
    char *original_filename; /* never NULL once read */
    char *mime_type;         /* never NULL once read */
    int64_t file_size_bytes;
    char content_hash[65];    /* SHA-256 hex, "" until complete */
    char *master_storage_key; /* may be NULL (until complete) */
    char *technical_metadata; /* JSON text, may be NULL */
    char *editorial_metadata; /* JSON text, "{}" when empty */
    char *failure_reason;     /* may be NULL */
    char created_by[37];      /* user id, "" if none */
    int64_t created_at;       /* ms since epoch */
    int64_t updated_at;       /* ms since epoch */
    /* technical columns, filled by the ingest from technical_metadata (-1 / "" if unknown) */
    int64_t duration_ms;
    int64_t width;
    int64_t height;
    int64_t bitrate_kbps;
    double frame_rate;
    char video_codec[32];
    char audio_codec[32];
    char container[64];
    char captured_at[40];
    char duplicate_of[37]; /* the asset this one duplicates, "" if none */
    /* search (migration 0004) */
    int64_t seq;       /* document number, in creation order (the search index's id) */
    char language[16]; /* es, en ...: the stemmer of its text; "" if not known */
    char *ai_metadata; /* JSON object of the analyzers' output, "{}" when none */
};

/** Frees the heap strings of a (not the struct). */
void cat_asset_release(struct cat_asset *a);

/** Upload bookkeeping: which store upload carries an asset's master. */
struct cat_upload {
    char asset_id[37];
    char upload_id[33];
    char bucket[64];
    char key[1025]; /* the staging key the parts are uploaded to */
    int64_t part_size;
    int part_count;
    char created_by[37];
    int64_t created_at; /* ms */
    int64_t expires_at; /* ms */
};

/**
 * An idempotency key: the asset a user's POST /api/v1/assets created under that key, and
 * the fingerprint of that request. Kept until expires_at or until the asset is deleted.
 */
struct cat_idem {
    char user_id[37];
    char key[256];        /* as the client sent it, 1..255 printable characters */
    char fingerprint[65]; /* SHA-256 hex of the request */
    char asset_id[37];
    int64_t created_at; /* ms */
    int64_t expires_at; /* ms */
};

/** A user. */
struct cat_user {
    char id[37];
    char name[128];
    enum cat_role role;
    int64_t created_at;
};

/** An API key row; the token itself is never stored, only its SHA-256. */
struct cat_key {
    char id[37];
    char user_id[37];
    char name[128];
    enum cat_role role;
    char token_hash[65];
    char s3_access_key[32];
    char s3_secret[64];
    int64_t created_at;
    int64_t revoked_at; /* 0 if live */
};

/** Filters and cursor of cat_asset_list. Empty strings mean "any". */
struct cat_asset_filter {
    const char *type;
    const char *status;
    const char *created_by;
    const char *after_id; /* keyset cursor: return assets older than this id */
    int limit;            /* 1..1000 */
};

/** One audit row to append. */
struct cat_audit {
    const char *actor_user_id; /* may be NULL (system) */
    const char *actor_key_id;  /* may be NULL */
    const char *action;        /* "asset.create", "asset.complete", "key.create", ... */
    const char *target_type;   /* "asset", "key", ... */
    const char *target_id;
    const char *detail_json; /* may be NULL */
    const char *request_id;  /* may be NULL */
};

/* ---- the workflow engine's tables (used through src/jobs; see docs/internals/jobs.md) ---- */

/** Workflow states. */
#define WF_RUNNING    "running"
#define WF_COMPLETED  "completed"
#define WF_FAILED     "failed"
#define WF_CANCELLING "cancelling"
#define WF_CANCELLED  "cancelled"

/** Job states. */
#define JOB_READY     "ready"
#define JOB_LEASED    "leased"
#define JOB_COMPLETED "completed"
#define JOB_FAILED    "failed"
#define JOB_CANCELLED "cancelled"

/** A workflow row. input and error are heap strings (cat_workflow_release frees). */
struct cat_workflow {
    char id[37];
    char type[32];
    char status[16];
    char asset_id[37];         /* "" if none */
    char created_by[37];       /* "" if none (system) */
    char *input;               /* JSON object text; never NULL once read */
    char *error;               /* may be NULL */
    char idempotency_key[129]; /* "" if none */
    int64_t created_at;
    int64_t updated_at;
    int64_t finished_at; /* 0 while not finished */
};

/** Frees the heap strings of w. */
void cat_workflow_release(struct cat_workflow *w);

/** A job row. Heap strings may be NULL; cat_job_release frees them. */
struct cat_job {
    int64_t id;
    char workflow_id[37];
    char step[32];
    int item;
    char activity[32];
    char queue[32];
    char status[12];
    int priority;
    int64_t run_after;
    int attempt; /* attempts started so far */
    int max_attempts;
    char lease_owner[96];
    int64_t lease_until;
    char *input;
    char *output;
    char *progress_detail;
    char *error;
    double progress; /* 0..100, or -1 if never reported */
    char error_class[24];
    char idempotency_key[192];
    int cancel_requested;
    int64_t created_at;
    int64_t started_at;
    int64_t heartbeat_at;
    int64_t finished_at;
};

/** Frees the heap strings of j. */
void cat_job_release(struct cat_job *j);

/** A started step of a workflow. */
struct cat_step {
    char step[32];
    char status[12];
    int jobs_total;
    int jobs_done;
    int64_t started_at;
    int64_t finished_at;
};

/** One history row to append. */
struct cat_event {
    const char *workflow_id;
    int64_t job_id; /* 0 if none */
    const char *type;
    const char *step;        /* may be NULL */
    int attempt;             /* 0 if none */
    const char *worker;      /* may be NULL */
    const char *detail_json; /* may be NULL */
};

/** Filters and cursor of cat_workflow_list. NULL or "" means "any". */
struct cat_workflow_filter {
    const char *asset_id;
    const char *type;
    const char *status;
    const char *created_by;
    const char *queue;    /* workflows with a job on this queue */
    const char *after_id; /* keyset cursor: workflows older than this id */
    int limit;            /* 1..1000 */
};

/** Depth of one queue. */
struct cat_queue_depth {
    char queue[32];
    int64_t ready;           /* runnable now */
    int64_t delayed;         /* ready but with run_after in the future */
    int64_t leased;          /* running */
    int64_t oldest_ready_ms; /* age of the oldest runnable job, 0 if none */
    int64_t worker_slots;    /* slots of live workers serving the queue */
};

/** A live worker process. */
struct cat_worker {
    char id[96];
    char host[64];
    int pid;
    const char *queues_json; /* {"ingest":8,...} */
    int64_t started_at;
    int64_t heartbeat_at;
};

struct catalog;

/* ---- renditions ------------------------------------------------------------------------ */

/** Rendition states. */
#define REND_PENDING "pending"
#define REND_RUNNING "running"
#define REND_READY   "ready"
#define REND_FAILED  "failed"
#define REND_EXPIRED "expired"

/** A rendition row: one profile (version) of an asset's master, standard or on demand. */
struct cat_rendition {
    char id[37];
    char asset_id[37];
    char profile_name[32];
    int profile_version;
    char variant[37];        /* "" for the standard rendition; an on-demand request's id */
    char status[12];         /* REND_* */
    char bucket[16];         /* of the main file, "" until ready */
    char *storage_key;       /* the main file (heap, may be NULL) */
    char *mime_type;         /* heap, may be NULL */
    int64_t file_size_bytes; /* -1 if unknown (also below) */
    int64_t width;
    int64_t height;
    int64_t duration_ms;
    int64_t bitrate_kbps;
    char *files;  /* JSON array of every file {key, bytes, ...} (heap, may be NULL) */
    char *params; /* JSON object of on-demand parameters (heap, may be NULL) */
    char workflow_id[37];
    char *error;        /* heap, may be NULL */
    int64_t expires_at; /* ms, 0: never */
    int64_t created_at;
    int64_t updated_at;
};

/** Frees the heap strings of r. */
void cat_rendition_release(struct cat_rendition *r);

/** An open write transaction; only valid inside a cat_tx_run callback. */
struct cat_tx;

/** A transaction body: 0, or -1 with err set (the transaction rolls back). */
typedef int (*cat_tx_fn)(struct cat_tx *tx, void *ctx, struct err *err);

/** Workflow-engine operations of a backend; see the cat_tx_* and cat_wf* wrappers. */
struct catalog_wf_ops {
    int (*tx_run)(struct catalog *c, cat_tx_fn fn, void *ctx, struct err *err);
    int (*wf_insert)(struct cat_tx *tx, const struct cat_workflow *w, struct err *err);
    int (*wf_get)(struct cat_tx *tx, const char *id, struct cat_workflow *out, struct err *err);
    int (*wf_by_idem)(struct cat_tx *tx, const char *key, struct cat_workflow *out,
                      struct err *err);
    int (*wf_update)(struct cat_tx *tx, const char *id, const char *status, const char *error,
                     int64_t finished_at, struct err *err);
    int (*step_insert)(struct cat_tx *tx, const char *wf_id, const char *step, int total,
                       struct err *err);
    int (*step_get)(struct cat_tx *tx, const char *wf_id, const char *step, struct cat_step *out,
                    struct err *err);
    int (*step_add_done)(struct cat_tx *tx, const char *wf_id, const char *step,
                         struct cat_step *out, struct err *err);
    int (*step_set_status)(struct cat_tx *tx, const char *wf_id, const char *step,
                           const char *status, struct err *err);
    int (*job_insert)(struct cat_tx *tx, struct cat_job *j, struct err *err);
    int (*job_get)(struct cat_tx *tx, int64_t id, struct cat_job *out, struct err *err);
    int (*job_finish)(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                      const char *status, const char *output, const char *error,
                      const char *error_class, struct err *err);
    int (*job_requeue)(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                       int64_t run_after, const char *error, const char *error_class,
                       struct err *err);
    int (*jobs_lease)(struct cat_tx *tx, const char *queue, int limit, const char *owner,
                      int64_t lease_until, int (*cb)(void *ctx, const struct cat_job *j), void *ctx,
                      struct err *err);
    int (*jobs_expired)(struct cat_tx *tx, int limit, int (*cb)(void *ctx, const struct cat_job *j),
                        void *ctx, struct err *err);
    int (*jobs_heartbeat)(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                          int64_t lease_until, double progress, const char *detail,
                          struct err *err);
    int (*jobs_cancel)(struct cat_tx *tx, const char *wf_id, int64_t *leased, struct err *err);
    int (*jobs_count)(struct cat_tx *tx, const char *wf_id, const char *status, int64_t *out,
                      struct err *err);
    int (*jobs_retry)(struct cat_tx *tx, const char *wf_id, struct err *err);
    int (*job_outputs)(struct cat_tx *tx, const char *wf_id,
                       int (*cb)(void *ctx, const char *step, int item, const char *output),
                       void *ctx, struct err *err);
    int (*event_append)(struct cat_tx *tx, const struct cat_event *ev, struct err *err);
    int (*asset_set_status)(struct cat_tx *tx, const char *id, const char *from, const char *to,
                            const char *reason, struct err *err);
    /* outside transactions */
    int (*wf_get_ro)(struct catalog *c, const char *id, struct cat_workflow *out, struct err *err);
    int (*wf_list)(struct catalog *c, const struct cat_workflow_filter *f,
                   int (*cb)(void *ctx, const struct cat_workflow *w), void *ctx, struct err *err);
    int (*wf_steps)(struct catalog *c, const char *wf_id,
                    int (*cb)(void *ctx, const struct cat_step *s), void *ctx, struct err *err);
    int (*wf_jobs)(struct catalog *c, const char *wf_id, int limit,
                   int (*cb)(void *ctx, const struct cat_job *j), void *ctx, struct err *err);
    int (*wf_events)(struct catalog *c, const char *wf_id, int64_t after_id, int limit,
                     int (*cb)(void *ctx, const char *json_row), void *ctx, struct err *err);
    int (*jobs_cancel_requested)(struct catalog *c, const char *owner,
                                 int (*cb)(void *ctx, int64_t id, int attempt), void *ctx,
                                 struct err *err);
    int (*jobs_next_due)(struct catalog *c, const char *const *queues, size_t n, int64_t *next_run,
                         int64_t *next_expiry, struct err *err);
    int (*queue_depths)(struct catalog *c, int64_t now,
                        int (*cb)(void *ctx, const struct cat_queue_depth *d), void *ctx,
                        struct err *err);
    int (*effect_get)(struct catalog *c, const char *key, char **result, struct err *err);
    int (*effect_put)(struct catalog *c, const char *key, int64_t job_id, const char *result,
                      struct err *err);
    int (*worker_put)(struct catalog *c, const struct cat_worker *w, struct err *err);
    int (*worker_delete)(struct catalog *c, const char *id, struct err *err);
    int (*workers_expire)(struct catalog *c, int64_t before, struct err *err);
    int (*asset_set_technical)(struct catalog *c, const char *id, const char *type,
                               const char *mime_type, const char *technical_json, struct err *err);
    int (*asset_set_master)(struct catalog *c, const char *id, const char *sha256, const char *key,
                            int64_t size, struct err *err);
    int (*asset_mark_duplicate)(struct catalog *c, const char *id, const char *duplicate_of,
                                const char *reason, struct err *err);
    int (*rendition_put)(struct catalog *c, struct cat_rendition *r, struct err *err);
    int (*rendition_get)(struct catalog *c, const char *id, struct cat_rendition *out,
                         struct err *err);
    int (*rendition_find)(struct catalog *c, const char *asset_id, const char *profile, int version,
                          const char *variant, struct cat_rendition *out, struct err *err);
    int (*rendition_list)(struct catalog *c, const char *asset_id,
                          int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                          struct err *err);
    int (*renditions_expired)(struct catalog *c, int64_t now, int limit,
                              int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                              struct err *err);
};

/** One timestamped segment of an asset's transcript. */
struct cat_segment {
    int idx; /* 0, 1, 2 ... in time order */
    int64_t start_ms;
    int64_t end_ms;
    char speaker[64];  /* "" if not known */
    double confidence; /* 0..1, or -1 if not known */
    char *text;        /* never NULL */
};

/* ---- search (migration 0005; docs/internals/search.md) ---- */

struct search_node;

enum cat_search_scope { CAT_SCOPE_ASSETS, CAT_SCOPE_TRANSCRIPT };
enum cat_search_sort { CAT_SORT_RELEVANCE, CAT_SORT_NEWEST, CAT_SORT_OLDEST };

/** Facets a search can count. */
enum cat_facet {
    CAT_FACET_TYPE,
    CAT_FACET_CATEGORY,
    CAT_FACET_PROGRAM,
    CAT_FACET_TAG,
    CAT_FACET_ENTITY,
    CAT_FACET_OBJECT,
    CAT_FACET_YEAR,  /* created_at, by year */
    CAT_FACET_MONTH, /* created_at, by month */
    CAT_FACET_COUNT
};

/** "type", "category", "program", "tags", "entities", "objects", "created_year", "created_month".
 */
const char *cat_facet_name(enum cat_facet f);
/** The facet of a name; -1 if unknown. */
int cat_facet_parse(const char *name);

#define CAT_SEARCH_SIZE_MAX  100
#define CAT_SEARCH_EXACT_MAX 10000 /* totals and facets are exact up to this many hits */

/** A search. */
struct cat_search {
    const struct search_node *root; /* the parsed query with its filters; NULL: every asset */
    enum cat_search_scope scope;
    enum cat_search_sort sort;
    int size;              /* hits per page, 1..CAT_SEARCH_SIZE_MAX */
    const char *cursor;    /* next_cursor of the previous page, or NULL */
    unsigned facets;       /* 1 << enum cat_facet for each facet wanted */
    int facet_size;        /* values per facet, 1..100 */
    double min_confidence; /* transcript scope: segments at least this confident; -1: any */
    enum cat_role role;    /* the caller's: what it may see */
};

/** One hit: an asset, or (transcript scope) one segment of an asset's transcript. */
struct cat_search_hit {
    int64_t seq;
    char asset_id[37];
    double score; /* relevance sort; 0 otherwise */
    int64_t created_at;
    /* transcript scope */
    int idx;
    int64_t start_ms, end_ms;
    double confidence; /* -1 if not known */
    char speaker[64];
    char *text; /* the segment's text (heap) */
};

struct cat_facet_value {
    char *value;
    int64_t count;
};

struct cat_search_result {
    struct cat_search_hit *hits;
    size_t nhits;
    int64_t total;   /* hits of the whole search */
    int total_exact; /* 0: total is an estimate (beyond CAT_SEARCH_EXACT_MAX) */
    struct cat_facet_value *facets[CAT_FACET_COUNT];
    size_t nfacets[CAT_FACET_COUNT];
    int facets_exact;      /* 0: counts estimated from a sample of the hits */
    char next_cursor[128]; /* "" on the last page */
    /* what a hit's text matched: whole terms (analysed) and folded prefixes */
    char **terms;
    size_t nterms;
    char **prefixes;
    size_t nprefixes;
    /* where the time went, ms: planning, candidates (and scoring), totals, facets */
    double ms_plan, ms_candidates, ms_total, ms_facets;
};

void cat_search_result_release(struct cat_search_result *r);

/**
 * Runs a search (docs/internals/search.md). Fails ERR_INVALID with "position N: ..." for a
 * query the index cannot answer as written, or a bad cursor.
 */
int cat_search(struct catalog *c, const struct cat_search *q, struct cat_search_result *out,
               struct err *err);

/** A completion for the search bar. */
struct cat_suggestion {
    char kind[16]; /* tag, program, category, entity, title */
    char *value;
    int64_t count;     /* assets carrying it (titles: 1) */
    char asset_id[37]; /* titles: the asset */
};

/** Up to limit (1..50) completions of prefix, the most used first. */
int cat_search_suggest(struct catalog *c, const char *prefix, int limit, enum cat_role role,
                       int (*cb)(void *ctx, const struct cat_suggestion *s), void *ctx,
                       struct err *err);

/* ---- bulk import (import.c; acervod import) ---- */

/** One imported asset record: a metadata-only asset with its enrichment and transcript. */
struct cat_import {
    char id[37];
    char type[8];
    char status[16];
    char language[16];
    char *title, *description, *filename, *mime_type;     /* heap; title/description may be NULL */
    char *editorial;                                      /* JSON object text */
    char *ai;                                             /* JSON object text */
    int64_t created_at, size, duration_ms, width, height; /* -1: not known */
    char video_codec[32];
    struct cat_segment *segs;
    size_t nsegs;
    /* what the index holds for it (cat_import_analyze; NULL: the backend makes it) */
    char lang[4];
    char *t_title, *t_names, *t_body, *t_ai, *t_keys, *facets;
    char **names; /* kind, value, key triples of its suggestions, nnames of them */
    size_t nnames;
};

/** Checks a transcript segment's times, confidence and text; errors name it by label. */
int cat_segment_check(const struct cat_segment *s, const char *label, struct err *err);

/** Parses one JSON record (the bench/gen-corpus shape); ERR_INVALID says what is wrong. */
int cat_import_parse(const char *line, size_t len, struct cat_import *r, struct err *err);
void cat_import_release(struct cat_import *r);

/** The terms of analysed records, each with the number of records holding it. */
struct cat_vocab {
    char **terms;
    int64_t *n;
    size_t len;
};

void cat_vocab_release(struct cat_vocab *vocab);

/**
 * The vocabulary of several batches, counted together: an import writes it every few
 * batches, not each (a term's row is then updated once for all of them).
 */
struct cat_vocab_acc;
struct cat_vocab_acc *cat_vocab_acc_new(void);
/** Adds the distinct terms of each of the n analysed records. */
void cat_vocab_acc_add(struct cat_vocab_acc *acc, const struct cat_import *v, size_t n);
/** The number of distinct terms counted so far. */
size_t cat_vocab_acc_len(const struct cat_vocab_acc *acc);
/** Moves what was counted into out (cat_vocab_release it) and starts again from nothing. */
void cat_vocab_acc_take(struct cat_vocab_acc *acc, struct cat_vocab *out);
void cat_vocab_acc_free(struct cat_vocab_acc *acc);

struct search_analyzer;
/**
 * Makes what the search index holds for r, exactly as the catalog's own indexing would
 * from the stored record, so a bulk import can analyse on other threads than its writer.
 */
int cat_import_analyze(struct cat_import *r, struct search_analyzer *an, struct err *err);
/**
 * Writes n analysed records in one transaction, indexed for search as they go, and counts
 * vocab (the terms of these records and of earlier batches not counted yet; may be empty)
 * into the index's vocabulary; records whose id exists already are skipped (an import can
 * be run again, and then counts their terms again: the counts only order prefix
 * expansions). *inserted counts the new ones. The catalog must be opened for bulk import
 * (cat_sqlite_open_bulk).
 */
int cat_import_batch(struct catalog *c, struct cat_import *v, size_t n,
                     const struct cat_vocab *vocab, size_t *inserted, struct err *err);

/**
 * Before a bulk import: the search indexes stop merging their segments as they are
 * written (cat_search_optimize merges them all once at the end). A catalog opened for
 * anything else turns merging back on if an import never reached its end.
 */
int cat_search_bulk_begin(struct catalog *c, struct err *err);
/**
 * Merges each search index into one segment (after a bulk import: FTS5 otherwise keeps
 * several, and a search reads every one of them for each term), and sets the indexes'
 * usual merging back.
 */
int cat_search_optimize(struct catalog *c, struct err *err);

/**
 * Runs SQL statements on the SQLite catalog in one write transaction, with the search
 * index's functions registered (acervod sql: hand repairs the sqlite3 shell cannot make,
 * as the index's triggers need those functions). Rows are printed to out, tab-separated.
 */
int cat_sqlite_exec(struct catalog *c, const char *sql, FILE *out, struct err *err);

/** Search-data operations of a backend (migration 0004); see cat_asset_set_enrichment. */
struct catalog_search_ops {
    int (*enrichment_set)(struct catalog *c, const char *asset_id, const char *language,
                          const char *ai_json, const struct cat_segment *segs, size_t nsegs,
                          int set_segments, struct err *err);
    int (*segments_list)(struct catalog *c, const char *asset_id, int after_idx, int limit,
                         int (*cb)(void *ctx, const struct cat_segment *s), void *ctx,
                         struct err *err);
    int (*search)(struct catalog *c, const struct cat_search *q, struct cat_search_result *out,
                  struct err *err);
    int (*suggest)(struct catalog *c, const char *prefix, int limit, enum cat_role role,
                   int (*cb)(void *ctx, const struct cat_suggestion *s), void *ctx,
                   struct err *err);
    int (*import)(struct catalog *c, struct cat_import *v, size_t n, const struct cat_vocab *vocab,
                  size_t *inserted, struct err *err);
};

struct catalog;

/** A backend; each backend's struct begins with struct catalog. */
struct catalog_ops {
    const char *name;
    void (*close)(struct catalog *c);
    /* optional: gives back what connections idle for idle_ms hold (caches, maps) */
    void (*trim)(struct catalog *c, int64_t idle_ms);
    int (*asset_create)(struct catalog *c, const struct cat_asset *a, struct err *err);
    int (*asset_get)(struct catalog *c, const char *id, struct cat_asset *out, struct err *err);
    int (*asset_update_editorial)(struct catalog *c, const char *id, const char *title,
                                  const char *description, const char *editorial_json,
                                  struct cat_asset *out, struct err *err);
    int (*asset_set_status)(struct catalog *c, const char *id, const char *from, const char *to,
                            const char *reason, struct err *err);
    int (*asset_complete)(struct catalog *c, const char *id, const char *sha256,
                          const char *storage_key, int64_t size, struct err *err);
    int (*asset_delete)(struct catalog *c, const char *id, const char *status, struct err *err);
    int (*asset_find_by_hash)(struct catalog *c, const char *sha256, struct cat_asset *out,
                              struct err *err);
    int (*asset_list)(struct catalog *c, const struct cat_asset_filter *f,
                      int (*cb)(void *ctx, const struct cat_asset *a), void *ctx, struct err *err);
    int (*upload_create)(struct catalog *c, const struct cat_upload *u, struct err *err);
    int (*asset_create_upload)(struct catalog *c, const struct cat_asset *a,
                               const struct cat_upload *u, struct cat_idem *k, int *found,
                               struct err *err);
    int (*idem_get)(struct catalog *c, const char *user_id, const char *key, int64_t now_ms,
                    struct cat_idem *out, struct err *err);
    int (*idem_expire)(struct catalog *c, int64_t now_ms, int64_t *removed, struct err *err);
    int (*upload_get)(struct catalog *c, const char *asset_id, struct cat_upload *out,
                      struct err *err);
    int (*upload_delete)(struct catalog *c, const char *asset_id, struct err *err);
    int (*upload_list_expired)(struct catalog *c, int64_t now_ms,
                               int (*cb)(void *ctx, const struct cat_upload *u), void *ctx,
                               struct err *err);
    int (*user_create)(struct catalog *c, const char *name, enum cat_role role,
                       struct cat_user *out, struct err *err);
    int (*user_get)(struct catalog *c, const char *id, struct cat_user *out, struct err *err);
    int (*user_count)(struct catalog *c, int64_t *out, struct err *err);
    int (*key_create)(struct catalog *c, const struct cat_key *k, struct err *err);
    int (*key_by_token_hash)(struct catalog *c, const char *token_hash, struct cat_key *out,
                             struct err *err);
    int (*key_by_access_key)(struct catalog *c, const char *access_key, struct cat_key *out,
                             struct err *err);
    int (*audit_append)(struct catalog *c, const struct cat_audit *a, struct err *err);
    int (*audit_list)(struct catalog *c, const char *target_id, int limit,
                      int (*cb)(void *ctx, const char *json_row), void *ctx, struct err *err);
    int (*schema_version)(struct catalog *c);
    int (*key_revoke)(struct catalog *c, const char *id, struct err *err);
    const struct catalog_wf_ops *wf;
    const struct catalog_search_ops *search;
};

/** The handle; each backend's struct embeds it first. */
struct catalog {
    const struct catalog_ops *ops;
};

/**
 * Opens (creating if needed) the SQLite catalog at path, in WAL mode, and applies any
 * pending migrations in one transaction each.
 */
int cat_sqlite_open(struct catalog **out, const char *path, struct err *err);
/**
 * The page cache of each catalog connection this process opens from now on (the config's
 * catalog_cache): searches read the index through it beyond the 2 GiB SQLite maps.
 */
void cat_sqlite_set_cache(long bytes);
/**
 * The most memory SQLite may hold in this process (the config's catalog_memory), a soft
 * limit over every connection: near it page caches recycle pages (dirty ones are spilled
 * to the WAL) instead of growing. A catalog opened later that is larger than the 2 GiB
 * SQLite maps adds what lies past the map, up to one connection's page cache. 0: no limit.
 */
void cat_sqlite_set_memory(long bytes);
/** cat_sqlite_open for a bulk import: a 512 MiB page cache and synchronous = NORMAL. */
int cat_sqlite_open_bulk(struct catalog **out, const char *path, struct err *err);
/** Closes and frees the catalog. NULL is a no-op. */
void cat_close(struct catalog *c);
/**
 * Gives back the memory of connections that have been idle for idle_ms or more: their
 * page caches and mappings of the catalog file go (they are opened again when needed).
 * For a process going quiet after a busy spell. A no-op on backends without it.
 */
void cat_trim(struct catalog *c, int64_t idle_ms);
/** The schema version after migrations. */
int cat_schema_version(struct catalog *c);

/*
 * Iteration (cat_asset_list, cat_upload_list_expired, cat_audit_list): cb returns 0 to
 * go on; any other value stops the iteration and is returned as is, with err untouched
 * (the callback keeps its own error in ctx). Callbacks run with no database connection
 * held, so they may call back into the catalog.
 */

/**
 * Inserts an asset. a->id, type, status, original_filename, mime_type, file_size_bytes
 * are required; created_at/updated_at are set by the catalog when 0. ERR_CONFLICT if
 * the id or external_id exists.
 */
int cat_asset_create(struct catalog *c, const struct cat_asset *a, struct err *err);
/** Reads an asset into out (release with cat_asset_release). ERR_NOTFOUND if absent. */
int cat_asset_get(struct catalog *c, const char *id, struct cat_asset *out, struct err *err);
/**
 * Replaces title, description and editorial metadata where the arguments are non-NULL,
 * bumps updated_at, and reads the row back into out (may be NULL).
 */
int cat_asset_update_editorial(struct catalog *c, const char *id, const char *title,
                               const char *description, const char *editorial_json,
                               struct cat_asset *out, struct err *err);
/**
 * Moves an asset from status `from` (NULL: any) to `to`, recording reason (may be NULL).
 * ERR_CONFLICT if the asset is not in `from`; ERR_NOTFOUND if absent.
 */
int cat_asset_set_status(struct catalog *c, const char *id, const char *from, const char *to,
                         const char *reason, struct err *err);
/**
 * Records a completed master: hash, key and size, status uploading -> processing, and
 * deletes the upload row, in one transaction. ERR_CONFLICT if the asset is not
 * uploading or another live asset already has this hash.
 */
int cat_asset_complete(struct catalog *c, const char *id, const char *sha256,
                       const char *storage_key, int64_t size, struct err *err);
/**
 * Deletes an asset row (its upload and renditions go with it), only if it is in `status`
 * (NULL: any), checked in the same transaction. ERR_NOTFOUND if absent, ERR_CONFLICT if
 * it is in another status or distributions still refer to it.
 */
int cat_asset_delete(struct catalog *c, const char *id, const char *status, struct err *err);
/** The live (not failed) asset holding this master hash; ERR_NOTFOUND if none. */
int cat_asset_find_by_hash(struct catalog *c, const char *sha256, struct cat_asset *out,
                           struct err *err);
/**
 * Calls cb for each asset matching f, newest first (id order: ids are UUIDv7), at most
 * f->limit. The asset passed to cb is valid during the call only.
 */
int cat_asset_list(struct catalog *c, const struct cat_asset_filter *f,
                   int (*cb)(void *ctx, const struct cat_asset *a), void *ctx, struct err *err);

/**
 * Creates asset a and its upload u (u->asset_id == a->id) in one transaction, and with
 * them, if k is not NULL, the idempotency key k (user_id, key, fingerprint, created_at,
 * expires_at; asset_id is set to a->id). *found is set to 0. If the user already holds that
 * key, unexpired at k->created_at, nothing is written: *found is set to 1 and k is
 * overwritten with the record held, whose fingerprint and asset the caller compares. A
 * held key that has expired is replaced.
 */
int cat_asset_create_upload(struct catalog *c, const struct cat_asset *a,
                            const struct cat_upload *u, struct cat_idem *k, int *found,
                            struct err *err);
/** The user's idempotency key, unexpired at now_ms; ERR_NOTFOUND if none. */
int cat_idem_get(struct catalog *c, const char *user_id, const char *key, int64_t now_ms,
                 struct cat_idem *out, struct err *err);
/** Forgets the idempotency keys expired by now_ms; *removed (may be NULL) gets their count. */
int cat_idem_expire(struct catalog *c, int64_t now_ms, int64_t *removed, struct err *err);

/** Records an upload for an asset. */
int cat_upload_create(struct catalog *c, const struct cat_upload *u, struct err *err);
/** The upload of an asset; ERR_NOTFOUND if none. */
int cat_upload_get(struct catalog *c, const char *asset_id, struct cat_upload *out,
                   struct err *err);
/** Removes the upload row of an asset; ERR_NOTFOUND if it has none. */
int cat_upload_delete(struct catalog *c, const char *asset_id, struct err *err);
/** Calls cb for every upload whose expires_at is before now_ms. */
int cat_upload_list_expired(struct catalog *c, int64_t now_ms,
                            int (*cb)(void *ctx, const struct cat_upload *u), void *ctx,
                            struct err *err);

/** Creates a user with a new id. */
int cat_user_create(struct catalog *c, const char *name, enum cat_role role, struct cat_user *out,
                    struct err *err);
/** Reads a user. */
int cat_user_get(struct catalog *c, const char *id, struct cat_user *out, struct err *err);
/** Number of users. */
int cat_user_count(struct catalog *c, int64_t *out, struct err *err);

/** Inserts a key (all fields filled by the caller). ERR_CONFLICT on a duplicate. */
int cat_key_create(struct catalog *c, const struct cat_key *k, struct err *err);
/** The live key with this token hash; ERR_NOTFOUND if none or revoked. */
int cat_key_by_token_hash(struct catalog *c, const char *token_hash, struct cat_key *out,
                          struct err *err);
/** The live key with this S3 access key; ERR_NOTFOUND if none or revoked. */
int cat_key_by_access_key(struct catalog *c, const char *access_key, struct cat_key *out,
                          struct err *err);
/** Revokes a key (sets revoked_at to now). ERR_NOTFOUND if absent or already revoked. */
int cat_key_revoke(struct catalog *c, const char *id, struct err *err);

/** Appends an audit row. */
int cat_audit_append(struct catalog *c, const struct cat_audit *a, struct err *err);
/** Calls cb with each audit row (as a JSON object text) for target_id (NULL: all),
 * newest first, at most limit. */
int cat_audit_list(struct catalog *c, const char *target_id, int limit,
                   int (*cb)(void *ctx, const char *json_row), void *ctx, struct err *err);

/* ---- workflow engine: transactions ------------------------------------------------------ */

/*
 * cat_tx_run runs fn inside one write transaction and commits it if fn returns 0. The
 * backend may run fn more than once (a busy database is retried), so fn must reset any
 * state it keeps outside the database at its start. The cat_tx_* calls are valid only
 * inside fn, on its tx. Times are milliseconds since the epoch (util_now_ms()).
 */
int cat_tx_run(struct catalog *c, cat_tx_fn fn, void *ctx, struct err *err);
/** Inserts a workflow. ERR_CONFLICT if its id or idempotency key exists. */
int cat_tx_wf_insert(struct cat_tx *tx, const struct cat_workflow *w, struct err *err);
/** Reads a workflow (release with cat_workflow_release). ERR_NOTFOUND if absent. */
int cat_tx_wf_get(struct cat_tx *tx, const char *id, struct cat_workflow *out, struct err *err);
/** The workflow with this idempotency key; ERR_NOTFOUND if none. */
int cat_tx_wf_by_idem(struct cat_tx *tx, const char *key, struct cat_workflow *out,
                      struct err *err);
/** Sets status, error (NULL clears it) and finished_at (0 clears it); bumps updated_at. */
int cat_tx_wf_update(struct cat_tx *tx, const char *wf_id, const char *status, const char *error,
                     int64_t finished_at, struct err *err);
/** Records that step started with total jobs (status running). */
int cat_tx_step_insert(struct cat_tx *tx, const char *wf_id, const char *step, int total,
                       struct err *err);
/** Reads a step; ERR_NOTFOUND if it has not started. */
int cat_tx_step_get(struct cat_tx *tx, const char *wf_id, const char *step, struct cat_step *out,
                    struct err *err);
/** Counts one more job of the step done and reads the step back into out. */
int cat_tx_step_add_done(struct cat_tx *tx, const char *wf_id, const char *step,
                         struct cat_step *out, struct err *err);
/** Sets a step's status (finished_at is set for every status but running). */
int cat_tx_step_set_status(struct cat_tx *tx, const char *wf_id, const char *step,
                           const char *status, struct err *err);
/** Inserts a job (j->id receives its id). ERR_CONFLICT on a duplicate idempotency key. */
int cat_tx_job_insert(struct cat_tx *tx, struct cat_job *j, struct err *err);
/** Reads a job (release with cat_job_release). ERR_NOTFOUND if absent. */
int cat_tx_job_get(struct cat_tx *tx, int64_t id, struct cat_job *out, struct err *err);
/**
 * Ends the attempt of a job that owner holds in its attempt-th attempt: status
 * completed, failed or cancelled, with output/error (may be NULL). Returns 1 if done, 0 if
 * the job is no longer that lease (it expired and moved on): the result is not recorded.
 */
int cat_tx_job_finish(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                      const char *status, const char *output, const char *error,
                      const char *error_class, struct err *err);
/**
 * Puts a leased job back to ready at run_after, with the error of the attempt that ended.
 * owner NULL: whoever holds it (the reaper, for an expired lease). 1 if done, 0 if the job
 * is no longer that lease.
 */
int cat_tx_job_requeue(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                       int64_t run_after, const char *error, const char *error_class,
                       struct err *err);
/**
 * Leases up to limit ready jobs of queue whose run_after has come, highest priority then
 * oldest first, for owner until lease_until (attempt + 1, started_at and heartbeat_at
 * now); cb sees each leased job (valid during the call).
 */
int cat_tx_jobs_lease(struct cat_tx *tx, const char *queue, int limit, const char *owner,
                      int64_t lease_until, int (*cb)(void *ctx, const struct cat_job *j), void *ctx,
                      struct err *err);
/** Calls cb for up to limit leased jobs whose lease has expired. */
int cat_tx_jobs_expired(struct cat_tx *tx, int limit, int (*cb)(void *ctx, const struct cat_job *j),
                        void *ctx, struct err *err);
/**
 * Extends owner's lease of a job and records progress (-1: unchanged) and detail (NULL:
 * unchanged). Returns 1 if extended, 2 if extended but cancellation was requested, 0 if
 * the lease was lost.
 */
int cat_tx_jobs_heartbeat(struct cat_tx *tx, int64_t id, const char *owner, int attempt,
                          int64_t lease_until, double progress, const char *detail,
                          struct err *err);
/**
 * Cancels a workflow's jobs: ready ones become cancelled, leased ones get
 * cancel_requested; *leased receives how many are still running.
 */
int cat_tx_jobs_cancel(struct cat_tx *tx, const char *wf_id, int64_t *leased, struct err *err);
/** Number of a workflow's jobs in status (NULL: any). */
int cat_tx_jobs_count(struct cat_tx *tx, const char *wf_id, const char *status, int64_t *out,
                      struct err *err);
/**
 * Makes a failed or cancelled workflow's failed and cancelled jobs ready again with their
 * attempts reset, and its failed or cancelled steps running.
 */
int cat_tx_jobs_retry(struct cat_tx *tx, const char *wf_id, struct err *err);
/** Calls cb with each completed job's output (non-NULL) of a workflow. */
int cat_tx_job_outputs(struct cat_tx *tx, const char *wf_id,
                       int (*cb)(void *ctx, const char *step, int item, const char *output),
                       void *ctx, struct err *err);
/** Appends a history row. */
int cat_tx_event_append(struct cat_tx *tx, const struct cat_event *ev, struct err *err);
/** cat_asset_set_status inside a transaction. */
int cat_tx_asset_set_status(struct cat_tx *tx, const char *id, const char *from, const char *to,
                            const char *reason, struct err *err);

/* ---- workflow engine: reads and single statements ----------------------------------------- */

/** Reads a workflow; ERR_NOTFOUND if absent. */
int cat_wf_get(struct catalog *c, const char *id, struct cat_workflow *out, struct err *err);
/** Calls cb for each workflow matching f, newest first, at most f->limit. */
int cat_wf_list(struct catalog *c, const struct cat_workflow_filter *f,
                int (*cb)(void *ctx, const struct cat_workflow *w), void *ctx, struct err *err);
/** Calls cb for each started step of a workflow, in start order. */
int cat_wf_steps(struct catalog *c, const char *wf_id,
                 int (*cb)(void *ctx, const struct cat_step *s), void *ctx, struct err *err);
/** Calls cb for the first limit jobs of a workflow (0: all), in creation order. */
int cat_wf_jobs(struct catalog *c, const char *wf_id, int limit,
                int (*cb)(void *ctx, const struct cat_job *j), void *ctx, struct err *err);
/** Calls cb with each history row (JSON object text) with id > after_id, oldest first. */
int cat_wf_events(struct catalog *c, const char *wf_id, int64_t after_id, int limit,
                  int (*cb)(void *ctx, const char *json_row), void *ctx, struct err *err);
/** Calls cb for each job owner holds whose cancellation was requested. */
int cat_jobs_cancel_requested(struct catalog *c, const char *owner,
                              int (*cb)(void *ctx, int64_t id, int attempt), void *ctx,
                              struct err *err);
/**
 * The earliest run_after of a ready job on one of queues (INT64_MAX if none) and the
 * earliest lease expiry of any leased job (INT64_MAX if none).
 */
int cat_jobs_next_due(struct catalog *c, const char *const *queues, size_t n, int64_t *next_run,
                      int64_t *next_expiry, struct err *err);
/** Calls cb with the depth of every queue that has jobs or workers. */
int cat_queue_depths(struct catalog *c, int64_t now,
                     int (*cb)(void *ctx, const struct cat_queue_depth *d), void *ctx,
                     struct err *err);
/** The recorded result (heap, may be NULL) of the effect with this key; ERR_NOTFOUND if none. */
int cat_effect_get(struct catalog *c, const char *key, char **result, struct err *err);
/** Records an effect as done. ERR_CONFLICT if the key is already recorded. */
int cat_effect_put(struct catalog *c, const char *key, int64_t job_id, const char *result,
                   struct err *err);
/** Inserts or refreshes a worker row. */
int cat_worker_put(struct catalog *c, const struct cat_worker *w, struct err *err);
/** Removes a worker row (a clean stop). */
int cat_worker_delete(struct catalog *c, const char *id, struct err *err);
/** Removes worker rows whose heartbeat is older than before. */
int cat_workers_expire(struct catalog *c, int64_t before, struct err *err);
/**
 * Records an asset's detected type and media type and its technical metadata (JSON with
 * a "summary" object whose fields fill the technical columns).
 */
int cat_asset_set_technical(struct catalog *c, const char *id, const char *type,
                            const char *mime_type, const char *technical_json, struct err *err);
/**
 * Records the master of a processing asset: hash, key and size. ERR_CONFLICT if another
 * live asset has this hash; ERR_NOTFOUND if absent.
 */
int cat_asset_set_master(struct catalog *c, const char *id, const char *sha256, const char *key,
                         int64_t size, struct err *err);
/** Marks a processing asset failed as a duplicate of another, with reason. */
int cat_asset_mark_duplicate(struct catalog *c, const char *id, const char *duplicate_of,
                             const char *reason, struct err *err);

/* ---- search data ----------------------------------------------------------------------------- */

/** Most segments one transcript may have. */
#define CAT_MAX_SEGMENTS 100000

/**
 * Sets what search indexes about an asset besides its own fields, in one transaction:
 * its language (NULL keeps it; "" clears it; else a language code: 2 or 3 lowercase
 * letters, then optionally '-' and a region), its AI enrichment (ai_json: a JSON object,
 * or NULL to keep it) and, when set_segments, its whole transcript (segs[0..nsegs):
 * idx 0, 1, 2 ... in order, start_ms <= end_ms, confidence 0..1 or -1, text not NULL;
 * nsegs 0 removes the transcript). ERR_NOTFOUND for no such asset, ERR_INVALID for
 * anything malformed (nothing is changed then), ERR_LIMIT beyond CAT_MAX_SEGMENTS.
 */
int cat_asset_set_enrichment(struct catalog *c, const char *asset_id, const char *language,
                             const char *ai_json, const struct cat_segment *segs, size_t nsegs,
                             int set_segments, struct err *err);

/**
 * Calls cb with the transcript segments of asset_id whose idx > after_idx (-1: from the
 * start), at most limit (1..1000) of them, in idx order; cb's non-zero return stops the
 * list. Segments are read before cb runs (it may call the catalog).
 */
int cat_segments_list(struct catalog *c, const char *asset_id, int after_idx, int limit,
                      int (*cb)(void *ctx, const struct cat_segment *s), void *ctx,
                      struct err *err);

/* ---- renditions ---------------------------------------------------------------------------- */

/**
 * Inserts or updates the rendition (asset_id, profile_name, profile_version, variant):
 * every field of r is written (NULL heap strings, "" bucket and workflow_id, -1 measures
 * and expires_at 0 as NULL). id: kept if the row exists, else r->id or a new UUIDv7;
 * created_at: kept if the row exists, else r->created_at or now; updated_at now. r->id,
 * r->created_at and r->updated_at receive the row's. ERR_NOTFOUND if the asset is gone;
 * ERR_INVALID for a bad field (status, files or params not JSON); ERR_CONFLICT if r->id
 * is another rendition's.
 */
int cat_rendition_put(struct catalog *c, struct cat_rendition *r, struct err *err);
/**
 * Reads a rendition by id into out (release with cat_rendition_release; out is overwritten,
 * zeroed on failure). ERR_NOTFOUND if absent.
 */
int cat_rendition_get(struct catalog *c, const char *id, struct cat_rendition *out,
                      struct err *err);
/**
 * Reads the rendition of asset for profile@version and variant ("" or NULL: the standard
 * one) into out, as cat_rendition_get. ERR_NOTFOUND if absent.
 */
int cat_rendition_find(struct catalog *c, const char *asset_id, const char *profile, int version,
                       const char *variant, struct cat_rendition *out, struct err *err);
/**
 * Calls cb for each rendition of an asset: standard ones by profile name then version,
 * then on-demand ones newest first (created_at). Iteration as for cat_asset_list.
 */
int cat_rendition_list(struct catalog *c, const char *asset_id,
                       int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                       struct err *err);
/**
 * Calls cb for up to limit (at most 1000) ready renditions whose expires_at is before now
 * (0 never is), soonest expiry first. Iteration as for cat_asset_list.
 */
int cat_renditions_expired(struct catalog *c, int64_t now, int limit,
                           int (*cb)(void *ctx, const struct cat_rendition *r), void *ctx,
                           struct err *err);

#endif
