/*
 * api internals shared by api.c (dispatch, auth, JSON helpers), assets.c, keys.c and
 * workflows.c.
 * Nothing here is used outside src/api.
 */
#ifndef ACERVO_API_INT_H
#define ACERVO_API_INT_H

#include "api/api.h"

#include <jansson.h>

/* Route flags (struct http_route.flags). */
#define API_BODY_JSON   1 /* the body is a JSON object, parsed into st->body */
#define API_BODY_STREAM 2 /* the route streams its body; api__assets_direct_begin sets it up */
#define API_GATED       4 /* costly: runs only search_concurrency at a time (ctx->gate) */

/** Largest serialized editorial_metadata, in bytes. */
#define API_EDITORIAL_MAX (64 * 1024)
/** Deepest editorial_metadata nesting (the object itself is depth 1). */
#define API_EDITORIAL_DEPTH 8
/** Most tags an asset may carry, and the longest tag in characters. */
#define API_TAGS_MAX    100
#define API_TAG_CHARS   100
#define API_TITLE_CHARS 500
#define API_DESC_CHARS  10000
#define API_FNAME_CHARS 500
#define API_EXTID_CHARS 100
/** Largest audit detail copied from a request, in bytes. */
#define API_AUDIT_DETAIL_MAX (128 * 1024)

struct api_direct;

/** Per-request state of the REST application, in the request's arena. */
struct api_state {
    struct api_ctx *ctx;
    const struct http_route *route;
    const char *params[4];
    struct api_principal who; /* valid when authed */
    int authed;
    json_t *body;              /* API_BODY_JSON routes: the parsed object; freed in on_free */
    struct api_direct *direct; /* POST /api/v1/assets/direct only */
};

/** Presence of an optional JSON member. */
enum api_presence { API_ABSENT = 0, API_NULL, API_PRESENT };

/** The request's API state. Valid until the request ends. */
struct api_state *api__state(struct http_req *req);

/** Sends o (taken over) as application/json with status. */
void api__send_json(struct http_req *req, int status, json_t *o);
/** Sends a problem built from code and a formatted detail. */
void api__fail(struct http_req *req, enum err_code code, const char *fmt, ...) ATTR_PRINTF(3, 4);

/**
 * Appends an audit row for the request's principal and request id. detail (may be NULL) is
 * taken over. A failure is logged, never returned: the action has already happened.
 */
void api__audit(struct http_req *req, const char *action, const char *target_type,
                const char *target_id, json_t *detail);

/**
 * Fails with ERR_INVALID "unknown field 'where.name'" if o has a member not in allowed
 * (NULL-terminated). where may be "" for the top level.
 */
int api__json_known(json_t *o, const char *const *allowed, const char *where, struct err *err);
/* Flags of the text checks. */
#define API_NULLABLE  1u /* null is accepted (api__json_string) */
#define API_MULTILINE 2u /* tab, line feed and carriage return are accepted */

/**
 * Reads string member name of o: *out points into o (valid while o lives) or is NULL.
 * Returns the presence, or -1 with ERR_INVALID naming the field when it is not a string of
 * min_chars..max_chars characters of valid UTF-8 without NUL or control characters (null
 * is accepted only with API_NULLABLE; tab and line breaks only with API_MULTILINE).
 */
int api__json_string(json_t *o, const char *name, size_t min_chars, size_t max_chars,
                     unsigned flags, const char **out, struct err *err);
/** Validates a one-line string value (already known to be a JSON string) the same way. */
int api__string_check(const char *field, const char *s, size_t len, size_t min_chars,
                      size_t max_chars, struct err *err);
/**
 * Reads query parameter name as optional text with the same rules (*out NULL when absent;
 * it lives in the request's arena); -1 with ERR_INVALID naming the parameter.
 */
int api__query_string(struct http_req *req, const char *name, size_t min_chars, size_t max_chars,
                      unsigned flags, const char **out, struct err *err);
/** Validates a tags array (at most API_TAGS_MAX strings of 1..API_TAG_CHARS characters). */
int api__tags_check(const char *field, json_t *tags, struct err *err);
/** Validates editorial metadata: an object within API_EDITORIAL_MAX and API_EDITORIAL_DEPTH,
 * whose "tags" member, if any, passes api__tags_check. */
int api__editorial_check(const char *field, json_t *em, struct err *err);
/** 1 if s is a media type "type/subtype" of RFC 9110 tokens, at most 127 bytes. */
int api__mime_valid(const char *s);
/**
 * The request's Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a structured
 * field String ("..." with \" and \\ escapes) or, as many clients send it, the bare key;
 * 1..max printable ASCII characters, unquoted into out (max + 1 bytes). 1 if there is one,
 * 0 if not, -1 with ERR_INVALID if it is malformed (two headers, joined, are refused).
 */
int api__idempotency_key(struct http_req *req, size_t max, char *out, struct err *err);
/** Parses a query integer in lo..hi (default def when absent); ERR_INVALID naming it. */
int api__query_int(struct http_req *req, const char *name, int64_t lo, int64_t hi, int64_t def,
                   int64_t *out, struct err *err);

/** The asset as the API shows it. New reference. */
json_t *api__asset_json(const struct cat_asset *a);
/** "/api/v1/assets/{id}" in the request's arena. */
const char *api__asset_path(struct http_req *req, const char *id);

/** Sends an error as problem+json (the err_code -> status mapping lives in http). */
void api__send_err(struct http_req *req, const struct err *err);

/* ---- route handlers ------------------------------------------------------------------ */

void api__assets_create(struct http_req *req, const char *const *params);
void api__assets_list(struct http_req *req, const char *const *params);
void api__assets_get(struct http_req *req, const char *const *params);
void api__assets_patch(struct http_req *req, const char *const *params);
void api__assets_upload_get(struct http_req *req, const char *const *params);
void api__assets_upload_abort(struct http_req *req, const char *const *params);
void api__assets_complete(struct http_req *req, const char *const *params);
void api__assets_download(struct http_req *req, const char *const *params);
void api__assets_direct(struct http_req *req, const char *const *params);
/** Headers time of POST /api/v1/assets/direct: creates the asset and opens the part writer,
 * or sends a problem. */
void api__assets_direct_begin(struct http_req *req);
/** Releases what a direct upload holds; an unfinished one is removed entirely. */
void api__assets_direct_free(struct http_req *req);

void api__renditions_list(struct http_req *req, const char *const *params);
void api__renditions_create(struct http_req *req, const char *const *params);
void api__renditions_download(struct http_req *req, const char *const *params);
void api__keys_create(struct http_req *req, const char *const *params);
void api__me(struct http_req *req, const char *const *params);
void api__keys_revoke(struct http_req *req, const char *const *params);
void api__audit_list(struct http_req *req, const char *const *params);

void api__workflows_list(struct http_req *req, const char *const *params);
void api__workflows_start(struct http_req *req, const char *const *params);
void api__workflows_get(struct http_req *req, const char *const *params);
void api__workflows_history(struct http_req *req, const char *const *params);
void api__workflows_cancel(struct http_req *req, const char *const *params);
void api__workflows_retry(struct http_req *req, const char *const *params);
void api__queues_list(struct http_req *req, const char *const *params);

void api__search(struct http_req *req, const char *const *params);
void api__search_suggest(struct http_req *req, const char *const *params);

#endif
