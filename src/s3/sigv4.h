/*
 * AWS Signature Version 4: verification of the Authorization header and presigned
 * query forms, and presigning of URLs. S3 rules: the path is not normalised and each
 * segment is URI-encoded once.
 */
#ifndef ACERVO_S3_SIGV4_H
#define ACERVO_S3_SIGV4_H

#include "core/core.h"

#include <stdint.h>

/** Largest number of headers a signature may cover. */
#define SIGV4_MAX_SIGNED_HEADERS 32

/** The payload hash values that are not a hex SHA-256. */
#define SIGV4_UNSIGNED_PAYLOAD  "UNSIGNED-PAYLOAD"
#define SIGV4_STREAMING_PAYLOAD "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"

/** The parsed credential and signature of a request. */
struct sigv4_auth {
    int presigned; /* 1: from the query string, 0: from Authorization */
    char access_key[128];
    char date[9]; /* YYYYMMDD of the credential scope */
    char region[64];
    char service[32];
    char signed_headers[1024]; /* ';'-separated, lowercase, sorted */
    char signature[65];
    int64_t request_time; /* X-Amz-Date (or Date) as seconds since epoch */
    int64_t expires;      /* presigned: X-Amz-Expires seconds; 0 otherwise */
};

/** What the verifier needs to know of the request. */
struct sigv4_request {
    const char *method;
    const char *path;  /* raw path as received, percent-encoded, without the query */
    const char *query; /* raw query string without '?', "" if none */
    /* Returns the value of header `name` (lowercase), or NULL. Several values of one
     * header must be returned joined with ','. */
    const char *(*header)(void *ctx, const char *name);
    void *ctx;
    /* S3 (1): path used as-is, encoded once. Other services (0): path normalised and
     * encoded twice, as the generic test suite expects. */
    int s3;
};

/**
 * Parses an "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=..." header
 * (and takes X-Amz-Date or Date through req->header). ERR_INVALID if malformed
 * (err->msg starts with the S3 code: "AuthorizationHeaderMalformed:"), ERR_LIMIT if a part
 * is too long or too many headers are signed, ERR_DENIED "AccessDenied:" if the request
 * has no valid X-Amz-Date or Date header.
 */
int sigv4_parse_header(const struct sigv4_request *req, const char *authorization,
                       struct sigv4_auth *out, struct err *err);
/**
 * Parses the X-Amz-* parameters of a presigned URL from req->query. Returns 1 if the
 * query carries a presigned signature, 0 if it carries none, -1 with ERR_INVALID if it is
 * malformed ("AuthorizationQueryParametersError:").
 */
int sigv4_parse_query(const struct sigv4_request *req, struct sigv4_auth *out, struct err *err);
/**
 * Checks the signature with the secret key. payload_hash is the value of
 * x-amz-content-sha256 for header auth (NULL: take it from the header; if the header is
 * absent too, ERR_INVALID "InvalidRequest:" rather than assuming UNSIGNED-PAYLOAD), ignored
 * for presigned (always UNSIGNED-PAYLOAD). It must be 64 lowercase hex digits,
 * UNSIGNED-PAYLOAD or a STREAMING-* value (ERR_INVALID "InvalidArgument:"); checking it
 * against the body, and chunk signatures, is the caller's job.
 * Also checks the credential scope date against the request time (ERR_INVALID), the clock
 * skew (|now - request_time| <= skew for header auth, ERR_DENIED "RequestTimeTooSkewed:")
 * and expiry for presigned URLs (1..604800 s, ERR_DENIED "AccessDenied: Request has
 * expired"; a request_time more than skew in the future is "AccessDenied: Request is not
 * valid yet"). With req->s3 the credential's service must be "s3".
 * Mismatch: ERR_UNAUTH "SignatureDoesNotMatch: ...".
 */
int sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth, const char *secret,
                 const char *payload_hash, int64_t now, long skew, struct err *err);
/**
 * Builds a presigned URL: base_url ("http://127.0.0.1:8081") + path (unencoded; each
 * segment is encoded here) + the sorted query made of extra_query (unencoded "k=v" pairs
 * separated by '&', may be "") and the X-Amz-* parameters, signed for host (taken from
 * base_url) only. The result is heap-allocated; caller frees. NULL if an argument is
 * invalid (base_url not http(s)://host, expires outside 1..604800, X-Amz-* in extra_query).
 */
char *sigv4_presign(const char *method, const char *base_url, const char *path,
                    const char *extra_query, const char *access_key, const char *secret,
                    const char *region, int64_t now, long expires);

/**
 * Derives the SigV4 signing key HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region),
 * service), "aws4_request") into out; the S3 layer needs it to check the chunk signatures
 * of STREAMING-AWS4-HMAC-SHA256-PAYLOAD bodies. Callers should OPENSSL_cleanse it after use.
 */
void sigv4_signing_key(const char *secret, const char *date, const char *region,
                       const char *service, unsigned char out[32]);

/** Percent-encodes s per AWS rules (unreserved kept; '/' kept when keep_slash) into b. */
int sigv4_uri_encode(struct buf *b, const char *s, size_t n, int keep_slash, struct err *err);
/** Percent-decodes n bytes of s into b ('+' stays '+'). ERR_INVALID on bad escapes or NUL. */
int sigv4_uri_decode(struct buf *b, const char *s, size_t n, struct err *err);

#endif
