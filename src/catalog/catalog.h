/*
 * catalog: the source of truth for assets, uploads, users, keys and the audit log.
 * Backends are vtables (catalog_sqlite.c; PostgreSQL later); callers use the cat_*
 * wrappers only. Every function is safe to call from many threads at once.
 */
#ifndef ACERVO_CATALOG_H
#define ACERVO_CATALOG_H

#include "core/core.h"

#include <stdint.h>

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

struct catalog;

/** A backend; each backend's struct begins with struct catalog. */
struct catalog_ops {
    const char *name;
    void (*close)(struct catalog *c);
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
/** Closes and frees the catalog. NULL is a no-op. */
void cat_close(struct catalog *c);
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

#endif
