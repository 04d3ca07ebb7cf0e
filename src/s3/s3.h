/*
 * s3: the S3-compatible endpoint over the object store (path-style, SigV4 in headers or
 * presigned query). It is the "Ceph" of the embedded deployment: clients upload masters
 * to it with presigned URLs, and any S3 client (boto3, awscli) can use it directly.
 */
#ifndef ACERVO_S3_H
#define ACERVO_S3_H

#include "catalog/catalog.h"
#include "core/core.h"
#include "http/http.h"
#include "store/store.h"

struct s3_key_cache;

/** What the endpoint needs; valid while the listener runs. */
struct s3_ctx {
    const struct cfg *cfg;
    struct catalog *cat;
    struct store *store;
    struct s3_key_cache *keys; /* set by s3_app_init, freed by s3_ctx_release */
};

/**
 * The S3 application to hand to http_server_start; ctx is stored in app->ctx. Sets up
 * ctx->keys, a cache of access keys (entries live S3_KEY_CACHE_TTL_MS, so a revoked key
 * stops working within that time).
 */
void s3_app_init(struct http_app *app, struct s3_ctx *ctx);
/** Frees what s3_app_init set up in ctx. */
void s3_ctx_release(struct s3_ctx *ctx);

/** How long an access key looked up in the catalog is trusted without asking again. */
#define S3_KEY_CACHE_TTL_MS 10000

/**
 * The S3 error code and HTTP status for an error: the code is taken from an
 * "Code: message" prefix of err->msg when it names a known S3 code, else derived from
 * err->code. *message points into err->msg past the prefix.
 */
const char *s3_error_code(const struct err *err, int *status, const char **message);

#endif
