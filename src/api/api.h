/*
 * api: the REST resources under /api/v1 plus /healthz, /readyz and the OpenAPI document.
 * Thin: decode the request, check the role, call the catalog and the store, encode.
 */
#ifndef ACERVO_API_H
#define ACERVO_API_H

#include "catalog/catalog.h"
#include "core/core.h"
#include "http/http.h"
#include "store/store.h"

struct search_analyzer;

/** What the API needs; owned by the process, valid while the listener runs. */
struct api_ctx {
    const struct cfg *cfg;
    struct catalog *cat;
    struct store *store;
    struct gate gate; /* the API_GATED routes' places (search) */
    /* analyzers for search snippets, kept between searches (api/search.c) */
    pthread_mutex_t an_mu;
    struct search_analyzer *an_pool[8];
    int an_n;
};

/** Sets ctx up for cfg, cat and store (not taken over). */
void api_ctx_init(struct api_ctx *ctx, const struct cfg *cfg, struct catalog *cat,
                  struct store *store);
/** Releases what api_ctx_init set up. */
void api_ctx_release(struct api_ctx *ctx);

/** The identity a request authenticated as. */
struct api_principal {
    char user_id[37];
    char key_id[37];
    enum cat_role role;
    char s3_access_key[32];
    char s3_secret[64];
};

/** The REST application to hand to http_server_start; ctx is stored in app->ctx. */
void api_app_init(struct http_app *app, struct api_ctx *ctx);

/**
 * Removes uploads whose expiry has passed: the store upload, the upload row, and the
 * asset still in "uploading" (audited as asset.expire), and the idempotency keys that
 * expired with them. Returns how many uploads were swept.
 */
int api_sweep_uploads(struct api_ctx *ctx, int64_t now_ms, struct err *err);
/**
 * Starts an ingest for every asset that is processing without one (completed before the
 * workflow engine existed, or whose workflow was lost). Returns how many were started.
 */
int api_resume_ingests(struct api_ctx *ctx, struct err *err);
/** Removes the files of on-demand renditions past their expiry and marks them expired;
 * returns how many. */
int api_sweep_renditions(struct api_ctx *ctx, int64_t now_ms, struct err *err);

/**
 * Creates a user and an API key with role, filling the token (64 hex), S3 access key and
 * secret. token_in (may be NULL) is used as the token instead of a random one.
 * Writes {"token","s3_access_key","s3_secret_key","role","name","key_id","user_id"}
 * as one JSON object into out (caller frees).
 */
int api_key_provision(struct catalog *cat, enum cat_role role, const char *name,
                      const char *token_in, char **out_json, struct err *err);

#endif
