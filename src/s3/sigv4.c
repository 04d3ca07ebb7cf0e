/*
 * AWS Signature Version 4: parsing of the Authorization header and of presigned query
 * parameters, canonical request and string to sign, signing key derivation, verification
 * with the clock and expiry checks, and presigning of URLs.
 *
 * Every error message starts with the S3 error code and a colon; the S3 layer turns that
 * prefix into the <Code> of its XML error body.
 */
#include "s3/sigv4.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIGV4_ALGORITHM  "AWS4-HMAC-SHA256"
#define SIGV4_TERMINATOR "aws4_request"
#define SIGV4_SIG_PARAM  "X-Amz-Signature"

/* Caps on what a client controls. */
#define SIGV4_MAX_EXPIRES        604800L            /* one week, as S3 */
#define SIGV4_MAX_SKEW           INT64_C(315360000) /* ten years: a bound, not a policy */
#define SIGV4_MAX_AUTH_LEN       4096               /* Authorization header */
#define SIGV4_MAX_PATH           8192               /* raw request path */
#define SIGV4_MAX_QUERY          16384              /* raw query string */
#define SIGV4_MAX_QUERY_PARAMS   512                /* parameters in the query */
#define SIGV4_MAX_HEADER_VALUE   8192               /* one signed header's value */
#define SIGV4_SIGNED_HEADERS_LEN sizeof(((struct sigv4_auth *)0)->signed_headers)
#define SIGV4_MAX_CANONICAL      ((size_t)1 << 20) /* canonical request; never reached */

#define CODE_HEADER "AuthorizationHeaderMalformed"
#define CODE_QUERY  "AuthorizationQueryParametersError"

#define MSG_MISMATCH                                                                               \
    "SignatureDoesNotMatch: The request signature we calculated does not match the signature "     \
    "you provided. Check your key and signing method."
#define MSG_NO_DATE   "AccessDenied: AWS authentication requires a valid Date or x-amz-date header"
#define MSG_URI       "InvalidURI: Couldn't parse the specified URI."
#define MSG_TOO_LARGE "MaxMessageLengthExceeded: the request is too large to be authenticated"
#define MSG_QUERY_MISS                                                                             \
    "AuthorizationQueryParametersError: Query-string authentication version 4 requires the "       \
    "X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, "        \
    "and X-Amz-Expires parameters."

/** One query parameter, percent-decoded (no NUL inside, so plain C strings). */
struct qparam {
    const char *name;
    const char *value;
};

/* ---- percent-encoding ------------------------------------------------------------------ */

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int sigv4_uri_encode(struct buf *b, const char *s, size_t n, int keep_slash, struct err *err)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t start = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[3];

        if (is_unreserved(c) || (keep_slash && c == '/'))
            continue;
        if (buf_add(b, s + start, i - start, err) < 0)
            return -1;
        esc[0] = '%';
        esc[1] = hex[c >> 4];
        esc[2] = hex[c & 15];
        if (buf_add(b, esc, sizeof(esc), err) < 0)
            return -1;
        start = i + 1;
    }
    return buf_add(b, s + start, n - start, err);
}

int sigv4_uri_decode(struct buf *b, const char *s, size_t n, struct err *err)
{
    size_t start = 0;

    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        char c;

        if (s[i] == '\0')
            return err_set(err, ERR_INVALID, MSG_URI);
        if (s[i] != '%')
            continue;
        if (n - i < 3)
            return err_set(err, ERR_INVALID, MSG_URI);
        hi = util_hexval((unsigned char)s[i + 1]);
        lo = util_hexval((unsigned char)s[i + 2]);
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
            return err_set(err, ERR_INVALID, MSG_URI);
        if (buf_add(b, s + start, i - start, err) < 0)
            return -1;
        c = (char)(hi << 4 | lo);
        if (buf_add(b, &c, 1, err) < 0)
            return -1;
        i += 2;
        start = i + 1;
    }
    return buf_add(b, s + start, n - start, err);
}

/* ---- small parsers ---------------------------------------------------------------------- */

/** Copies n bytes of s into dst (size bytes) with a NUL; -1 if it does not fit. */
static int copy_field(char *dst, size_t size, const char *s, size_t n)
{
    if (n >= size)
        return -1;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/** 1 if s[0..n) is a region or service name: letters, digits, '-' and '_'. */
static int is_scope_name(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/** 1 if s[0..n) is a plausible access key id: printable ASCII without '/', ',' or '='. */
static int is_access_key(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '/' || s[i] == ',' || s[i] == '=')
            return 0;
    return 1;
}

/** Parses "YYYYMMDDTHHMMSSZ" exactly (the form of X-Amz-Date); -1 if malformed. */
static int parse_amz_date(const char *s, size_t n, int64_t *out)
{
    char tmp[17];

    if (n != 16 || !all_digits(s, 8) || s[8] != 'T' || !all_digits(s + 9, 6) || s[15] != 'Z')
        return -1;
    memcpy(tmp, s, 16);
    tmp[16] = '\0';
    return util_time_iso_parse(tmp, out);
}

/** Formats t as "YYYYMMDDTHHMMSSZ"; -1 if the year does not have four digits. */
static int format_amz_date(int64_t t, char out[17])
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (t < 0 || t > INT64_C(253402300799) || !gmtime_r(&tt, &tm))
        return -1;
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        return -1;
    return 0;
}

/**
 * Parses a credential "AKID/YYYYMMDD/region/service/aws4_request" into out. Sets err with
 * the given S3 code on failure.
 */
static int parse_credential(const char *code, const char *s, size_t n, struct sigv4_auth *out,
                            struct err *err)
{
    const char *part[5];
    size_t len[5];
    const char *p = s, *end = s + n;
    int i;

    for (i = 0; i < 5; i++) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;

        part[i] = p;
        len[i] = (size_t)(stop - p);
        if (!slash) {
            i++;
            break;
        }
        p = slash + 1;
        if (i == 4)
            goto malformed;
    }
    if (i != 5)
        goto malformed;
    if (!is_access_key(part[0], len[0]) ||
        copy_field(out->access_key, sizeof(out->access_key), part[0], len[0]) < 0)
        goto malformed;
    if (len[1] != 8 || !all_digits(part[1], 8))
        goto malformed;
    {
        int month = (part[1][4] - '0') * 10 + (part[1][5] - '0');
        int day = (part[1][6] - '0') * 10 + (part[1][7] - '0');
        if (month < 1 || month > 12 || day < 1 || day > 31)
            goto malformed;
    }
    memcpy(out->date, part[1], 8);
    out->date[8] = '\0';
    if (!is_scope_name(part[2], len[2]) ||
        copy_field(out->region, sizeof(out->region), part[2], len[2]) < 0)
        goto malformed;
    if (!is_scope_name(part[3], len[3]) ||
        copy_field(out->service, sizeof(out->service), part[3], len[3]) < 0)
        goto malformed;
    if (len[4] != strlen(SIGV4_TERMINATOR) || memcmp(part[4], SIGV4_TERMINATOR, len[4]) != 0)
        goto malformed;
    return 0;
malformed:
    return err_set(err, ERR_INVALID,
                   "%s: the Credential is mal-formed; expecting "
                   "\"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"",
                   code);
}

/** 1 if c may appear in a lowercase header field name (RFC 9110 token, lowercase). */
static int is_header_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c);
}

/**
 * Validates a SignedHeaders list (lowercase names separated by ';', no duplicates, at most
 * SIGV4_MAX_SIGNED_HEADERS, 'host' among them) and copies it into out->signed_headers.
 */
static int parse_signed_headers(const char *code, const char *s, size_t n, struct sigv4_auth *out,
                                struct err *err)
{
    const char *name[SIGV4_MAX_SIGNED_HEADERS];
    size_t len[SIGV4_MAX_SIGNED_HEADERS];
    size_t count = 0;
    int host = 0;
    const char *p = s, *end = s + n;

    if (n >= sizeof(out->signed_headers))
        return err_set(err, ERR_LIMIT, "%s: SignedHeaders is longer than %zu bytes", code,
                       sizeof(out->signed_headers) - 1);
    if (n == 0)
        return err_set(err, ERR_INVALID, "%s: SignedHeaders is empty", code);
    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        size_t l = (size_t)(stop - p);

        if (l == 0)
            return err_set(err, ERR_INVALID, "%s: SignedHeaders has an empty name", code);
        for (size_t i = 0; i < l; i++)
            if (!is_header_char((unsigned char)p[i]))
                return err_set(err, ERR_INVALID, "%s: SignedHeaders must be lowercase header names",
                               code);
        if (count == SIGV4_MAX_SIGNED_HEADERS)
            return err_set(err, ERR_LIMIT, "%s: more than %d signed headers", code,
                           SIGV4_MAX_SIGNED_HEADERS);
        for (size_t j = 0; j < count; j++)
            if (len[j] == l && memcmp(name[j], p, l) == 0)
                return err_set(err, ERR_INVALID, "%s: SignedHeaders repeats a header", code);
        name[count] = p;
        len[count] = l;
        count++;
        if (l == 4 && memcmp(p, "host", 4) == 0)
            host = 1;
        if (!semi)
            break;
        p = semi + 1;
    }
    if (!host)
        return err_set(err, ERR_INVALID, "%s: the host header must be signed", code);
    memcpy(out->signed_headers, s, n);
    out->signed_headers[n] = '\0';
    return 0;
}

/** Validates a signature (64 lowercase hex digits) and copies it into out->signature. */
static int parse_signature(const char *code, const char *s, size_t n, struct sigv4_auth *out,
                           struct err *err)
{
    if (n != 64)
        goto malformed;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            goto malformed;
    memcpy(out->signature, s, 64);
    out->signature[64] = '\0';
    return 0;
malformed:
    return err_set(err, ERR_INVALID, "%s: the Signature must be 64 lowercase hex digits", code);
}

/** 1 if h is a payload hash S3 accepts in x-amz-content-sha256. */
static int payload_hash_valid(const char *h)
{
    static const char *const special[] = {
        SIGV4_UNSIGNED_PAYLOAD,
        SIGV4_STREAMING_PAYLOAD,
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    };
    size_t i;

    for (i = 0; i < ARRAY_LEN(special); i++)
        if (strcmp(h, special[i]) == 0)
            return 1;
    for (i = 0; h[i]; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
            return 0;
    return i == 64;
}

/* ---- query strings ---------------------------------------------------------------------- */

/** Percent-decodes s[0..n) into an arena string; NULL with err on a bad escape. */
static char *decode_dup(struct arena *a, struct buf *tmp, const char *s, size_t n, struct err *err)
{
    buf_reset(tmp);
    if (sigv4_uri_decode(tmp, s, n, err) < 0)
        return NULL;
    return arena_strndup(a, tmp->buf, tmp->len);
}

/**
 * Splits a raw query string into decoded name/value pairs allocated in a (valid until
 * arena_release). Empty pieces ("a=1&&b=2") are skipped; a piece without '=' has the
 * value "".
 */
static int query_parse(struct arena *a, const char *query, struct qparam **out, size_t *count,
                       struct err *err)
{
    size_t qlen = strlen(query), pieces = 1, n = 0;
    const char *p = query, *end = query + qlen;
    struct qparam *params;
    struct buf tmp;
    int ret = -1;

    if (qlen > SIGV4_MAX_QUERY)
        return err_set(err, ERR_LIMIT, "%s", MSG_TOO_LARGE);
    for (size_t i = 0; i < qlen; i++)
        if (query[i] == '&')
            pieces++;
    params = arena_alloc(a, pieces * sizeof(*params));
    buf_init(&tmp, SIGV4_MAX_QUERY + 1);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));

        if (stop > p) {
            if (n == SIGV4_MAX_QUERY_PARAMS) {
                err_set(err, ERR_LIMIT, "MaxMessageLengthExceeded: more than %d query parameters",
                        SIGV4_MAX_QUERY_PARAMS);
                goto out_release;
            }
            params[n].name = decode_dup(a, &tmp, p, (size_t)((eq ? eq : stop) - p), err);
            if (!params[n].name)
                goto out_release;
            if (eq)
                params[n].value = decode_dup(a, &tmp, eq + 1, (size_t)(stop - eq - 1), err);
            else
                params[n].value = "";
            if (!params[n].value)
                goto out_release;
            n++;
        }
        p = stop + 1;
    }
    *out = params;
    *count = n;
    ret = 0;
out_release:
    buf_release(&tmp);
    return ret;
}

static int qparam_cmp(const void *a, const void *b)
{
    const struct qparam *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    return c ? c : strcmp(x->value, y->value);
}

/** Encodes s into an arena string per AWS rules ('/' encoded too). */
static char *encode_dup(struct arena *a, struct buf *tmp, const char *s, struct err *err)
{
    buf_reset(tmp);
    if (sigv4_uri_encode(tmp, s, strlen(s), 0, err) < 0)
        return NULL;
    return arena_strndup(a, tmp->buf, tmp->len);
}

/**
 * Appends the canonical query string of a raw query to b: each name and value decoded and
 * re-encoded, sorted by name then value, joined with '&'. X-Amz-Signature is left out when
 * skip_signature is set (presigned requests).
 */
static int canonical_query(struct buf *b, const char *query, int skip_signature, struct err *err)
{
    struct arena a;
    struct qparam *params = NULL, *enc;
    size_t count = 0, n = 0;
    struct buf tmp;
    int ret = -1;

    arena_init(&a);
    buf_init(&tmp, (size_t)3 * SIGV4_MAX_QUERY + 1);
    if (query_parse(&a, query, &params, &count, err) < 0)
        goto out_release;
    enc = arena_alloc(&a, (count ? count : 1) * sizeof(*enc));
    for (size_t i = 0; i < count; i++) {
        if (skip_signature && strcmp(params[i].name, SIGV4_SIG_PARAM) == 0)
            continue;
        enc[n].name = encode_dup(&a, &tmp, params[i].name, err);
        if (!enc[n].name)
            goto out_release;
        enc[n].value = encode_dup(&a, &tmp, params[i].value, err);
        if (!enc[n].value)
            goto out_release;
        n++;
    }
    if (n > 1)
        qsort(enc, n, sizeof(*enc), qparam_cmp);
    for (size_t i = 0; i < n; i++) {
        if (buf_addf(b, err, "%s%s=%s", i ? "&" : "", enc[i].name, enc[i].value) < 0)
            goto out_release;
    }
    ret = 0;
out_release:
    buf_release(&tmp);
    arena_release(&a);
    return ret;
}

/* ---- canonical request ------------------------------------------------------------------ */

/** S3: each '/'-separated segment of the raw path decoded and encoded once, no normalising. */
static int canonical_uri_s3(struct buf *b, const char *path, size_t len, struct err *err)
{
    const char *p = path, *end = path + len;
    struct buf seg;
    int ret = -1;

    buf_init(&seg, SIGV4_MAX_PATH + 1);
    if (len == 0 || path[0] != '/') {
        if (buf_add(b, "/", 1, err) < 0)
            goto out_release;
    }
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;

        buf_reset(&seg);
        if (sigv4_uri_decode(&seg, p, (size_t)(stop - p), err) < 0)
            goto out_release;
        if (sigv4_uri_encode(b, seg.buf, seg.len, 0, err) < 0)
            goto out_release;
        if (!slash)
            break;
        if (buf_add(b, "/", 1, err) < 0)
            goto out_release;
        p = slash + 1;
    }
    ret = 0;
out_release:
    buf_release(&seg);
    return ret;
}

/**
 * Other services (the generic test suite): empty and '.' segments dropped, '..' removes
 * the segment before it, a trailing '/' kept; the result (already encoded on the wire) is
 * encoded once more.
 */
static int canonical_uri_generic(struct buf *b, const char *path, size_t len, struct err *err)
{
    const char **seg = xcalloc(len + 1, sizeof(*seg));
    size_t *seglen = xcalloc(len + 1, sizeof(*seglen));
    size_t n = 0;
    const char *p = path, *end = path + len;
    struct buf norm;
    int ret = -1;

    buf_init(&norm, SIGV4_MAX_PATH + 2);
    while (p < end) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        size_t l = (size_t)(stop - p);

        if (l == 2 && p[0] == '.' && p[1] == '.') {
            if (n > 0)
                n--;
        } else if (l > 0 && !(l == 1 && p[0] == '.')) {
            seg[n] = p;
            seglen[n] = l;
            n++;
        }
        p = stop + 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (buf_add(&norm, "/", 1, err) < 0 || buf_add(&norm, seg[i], seglen[i], err) < 0)
            goto out_free;
    }
    if (n == 0 || (len > 0 && path[len - 1] == '/')) {
        if (buf_add(&norm, "/", 1, err) < 0)
            goto out_free;
    }
    ret = sigv4_uri_encode(b, norm.buf, norm.len, 1, err);
out_free:
    buf_release(&norm);
    free(seglen);
    free(seg);
    return ret;
}

static int canonical_uri(struct buf *b, const char *path, int s3, struct err *err)
{
    size_t len = strlen(path);

    if (len > SIGV4_MAX_PATH)
        return err_set(err, ERR_LIMIT, "%s", MSG_TOO_LARGE);
    if (s3)
        return canonical_uri_s3(b, path, len, err);
    return canonical_uri_generic(b, path, len, err);
}

/** Appends a header value trimmed, with inner runs of spaces and tabs made one space. */
static int add_trimmed(struct buf *b, const char *v, struct err *err)
{
    int pending = 0;

    while (is_space(*v))
        v++;
    while (*v) {
        const char *run = v;

        while (*v && !is_space(*v))
            v++;
        if (v > run) {
            if (pending && buf_add(b, " ", 1, err) < 0)
                return -1;
            if (buf_add(b, run, (size_t)(v - run), err) < 0)
                return -1;
        }
        pending = 0;
        while (is_space(*v)) {
            pending = 1;
            v++;
        }
    }
    return 0;
}

/** Appends "name:value\n" for each signed header, in SignedHeaders order. */
static int canonical_headers(struct buf *b, const struct sigv4_request *req,
                             const char *signed_headers, struct err *err)
{
    const char *p = signed_headers;

    for (;;) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        char name[SIGV4_SIGNED_HEADERS_LEN];
        const char *value = NULL;

        if (copy_field(name, sizeof(name), p, n) < 0)
            return err_set(err, ERR_LIMIT, "%s", MSG_TOO_LARGE);
        if (req->header)
            value = req->header(req->ctx, name);
        if (!value)
            value = "";
        if (strlen(value) > SIGV4_MAX_HEADER_VALUE)
            return err_set(err, ERR_LIMIT,
                           "RequestHeaderSectionTooLarge: the %s header is longer than %d bytes",
                           name, SIGV4_MAX_HEADER_VALUE);
        if (buf_add(b, p, n, err) < 0 || buf_add(b, ":", 1, err) < 0 ||
            add_trimmed(b, value, err) < 0 || buf_add(b, "\n", 1, err) < 0)
            return -1;
        if (!semi)
            break;
        p = semi + 1;
    }
    return 0;
}

/** Builds the canonical request into b (which should be empty). */
static int canonical_request(struct buf *b, const struct sigv4_request *req,
                             const struct sigv4_auth *auth, const char *payload_hash,
                             struct err *err)
{
    if (buf_adds(b, req->method, err) < 0 || buf_add(b, "\n", 1, err) < 0)
        goto fail;
    if (canonical_uri(b, req->path ? req->path : "/", req->s3, err) < 0)
        goto fail;
    if (buf_add(b, "\n", 1, err) < 0)
        goto fail;
    if (canonical_query(b, req->query ? req->query : "", auth->presigned, err) < 0)
        goto fail;
    if (buf_add(b, "\n", 1, err) < 0)
        goto fail;
    if (canonical_headers(b, req, auth->signed_headers, err) < 0)
        goto fail;
    if (buf_addf(b, err, "\n%s\n%s", auth->signed_headers, payload_hash) < 0)
        goto fail;
    return 0;
fail:
    if (err && err->code == ERR_LIMIT && strchr(err->msg, ':') == NULL)
        err_set(err, ERR_LIMIT, "%s", MSG_TOO_LARGE);
    return -1;
}

/** Builds the string to sign of a canonical request into b. */
static int string_to_sign(struct buf *b, const struct sigv4_auth *auth, const char *creq,
                          size_t creq_len, struct err *err)
{
    char amz_date[17], hash[65];

    if (format_amz_date(auth->request_time, amz_date) < 0)
        return err_set(err, ERR_INVALID, "%s", MSG_NO_DATE);
    util_sha256_hex(creq, creq_len, hash);
    return buf_addf(b, err, "%s\n%s\n%s/%s/%s/%s\n%s", SIGV4_ALGORITHM, amz_date, auth->date,
                    auth->region, auth->service, SIGV4_TERMINATOR, hash);
}

void sigv4_signing_key(const char *secret, const char *date, const char *region,
                       const char *service, unsigned char out[32])
{
    size_t slen = strlen(secret);
    char *k = xmalloc(slen + 5);
    unsigned char a[32], b[32];

    (void)snprintf(k, slen + 5, "AWS4%s", secret);
    util_hmac_sha256(k, slen + 4, date, strlen(date), a);
    util_hmac_sha256(a, sizeof(a), region, strlen(region), b);
    util_hmac_sha256(b, sizeof(b), service, strlen(service), a);
    util_hmac_sha256(a, sizeof(a), SIGV4_TERMINATOR, strlen(SIGV4_TERMINATOR), out);
    OPENSSL_cleanse(k, slen + 4);
    OPENSSL_cleanse(a, sizeof(a));
    OPENSSL_cleanse(b, sizeof(b));
    free(k);
}

/**
 * Computes the signature of req under auth's scope and time into sig (64 hex + NUL).
 * The canonical request and string to sign are left in creq and sts for diagnostics.
 */
static int compute_signature(const struct sigv4_request *req, const struct sigv4_auth *auth,
                             const char *secret, const char *payload_hash, struct buf *creq,
                             struct buf *sts, char sig[65], struct err *err)
{
    unsigned char key[32], mac[32];

    if (canonical_request(creq, req, auth, payload_hash, err) < 0)
        return -1;
    if (string_to_sign(sts, auth, creq->buf, creq->len, err) < 0)
        return -1;
    sigv4_signing_key(secret, auth->date, auth->region, auth->service, key);
    util_hmac_sha256(key, sizeof(key), sts->buf, sts->len, mac);
    util_hex(mac, sizeof(mac), sig);
    OPENSSL_cleanse(key, sizeof(key));
    return 0;
}

/* ---- public entry points ---------------------------------------------------------------- */

/** The body of sigv4_parse_header; out may be left partly filled on failure. */
static int parse_header(const struct sigv4_request *req, const char *authorization,
                        struct sigv4_auth *out, struct err *err)
{
    const size_t alg_len = strlen(SIGV4_ALGORITHM);
    const char *p = authorization, *date;
    unsigned have = 0;
    int after_comma = 0;

    memset(out, 0, sizeof(*out));
    if (!authorization)
        return err_set(err, ERR_INVALID, CODE_HEADER ": the authorization header is missing");
    if (strlen(authorization) > SIGV4_MAX_AUTH_LEN)
        return err_set(err, ERR_LIMIT,
                       CODE_HEADER ": the authorization header is longer than %d bytes",
                       SIGV4_MAX_AUTH_LEN);
    while (is_space(*p))
        p++;
    if (strncmp(p, SIGV4_ALGORITHM, alg_len) != 0 || !is_space(p[alg_len]))
        return err_set(err, ERR_INVALID,
                       CODE_HEADER ": unsupported authorization type; only " SIGV4_ALGORITHM
                                   " is accepted");
    p += alg_len;
    for (;;) {
        const char *comma, *stop, *eq, *val;
        size_t klen, vlen;

        while (is_space(*p))
            p++;
        if (!*p) {
            if (after_comma)
                return err_set(err, ERR_INVALID, CODE_HEADER ": trailing comma");
            break;
        }
        comma = strchr(p, ',');
        stop = comma ? comma : p + strlen(p);
        while (stop > p && is_space(stop[-1]))
            stop--;
        eq = memchr(p, '=', (size_t)(stop - p));
        if (!eq)
            return err_set(err, ERR_INVALID, CODE_HEADER ": expected Key=Value components");
        klen = (size_t)(eq - p);
        val = eq + 1;
        vlen = (size_t)(stop - val);
        if (klen == 10 && memcmp(p, "Credential", 10) == 0) {
            if (have & 1)
                return err_set(err, ERR_INVALID, CODE_HEADER ": Credential given twice");
            if (parse_credential(CODE_HEADER, val, vlen, out, err) < 0)
                return -1;
            have |= 1;
        } else if (klen == 13 && memcmp(p, "SignedHeaders", 13) == 0) {
            if (have & 2)
                return err_set(err, ERR_INVALID, CODE_HEADER ": SignedHeaders given twice");
            if (parse_signed_headers(CODE_HEADER, val, vlen, out, err) < 0)
                return -1;
            have |= 2;
        } else if (klen == 9 && memcmp(p, "Signature", 9) == 0) {
            if (have & 4)
                return err_set(err, ERR_INVALID, CODE_HEADER ": Signature given twice");
            if (parse_signature(CODE_HEADER, val, vlen, out, err) < 0)
                return -1;
            have |= 4;
        } else {
            return err_set(err, ERR_INVALID,
                           CODE_HEADER ": unknown component; expecting Credential, "
                                       "SignedHeaders and Signature");
        }
        if (!comma)
            break;
        p = comma + 1;
        after_comma = 1;
    }
    if (have != 7)
        return err_set(err, ERR_INVALID, CODE_HEADER ": the authorization header is missing%s%s%s",
                       (have & 1) ? "" : " Credential", (have & 2) ? "" : " SignedHeaders",
                       (have & 4) ? "" : " Signature");

    date = req->header ? req->header(req->ctx, "x-amz-date") : NULL;
    if (date) {
        size_t n;

        while (is_space(*date))
            date++;
        n = strlen(date);
        while (n > 0 && is_space(date[n - 1]))
            n--;
        if (parse_amz_date(date, n, &out->request_time) < 0)
            return err_set(err, ERR_DENIED, "%s", MSG_NO_DATE);
    } else {
        date = req->header ? req->header(req->ctx, "date") : NULL;
        if (!date || util_time_http_parse(date, &out->request_time) < 0)
            return err_set(err, ERR_DENIED, "%s", MSG_NO_DATE);
    }
    out->presigned = 0;
    out->expires = 0;
    return 0;
}

int sigv4_parse_header(const struct sigv4_request *req, const char *authorization,
                       struct sigv4_auth *out, struct err *err)
{
    if (parse_header(req, authorization, out, err) < 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    return 0;
}

int sigv4_parse_query(const struct sigv4_request *req, struct sigv4_auth *out, struct err *err)
{
    static const char *const names[] = {
        "X-Amz-Algorithm", "X-Amz-Credential",    "X-Amz-Date",
        "X-Amz-Expires",   "X-Amz-SignedHeaders", SIGV4_SIG_PARAM,
    };
    enum { P_ALG, P_CRED, P_DATE, P_EXPIRES, P_HEADERS, P_SIG, P_COUNT };
    const char *val[P_COUNT] = {0};
    struct qparam *params = NULL;
    size_t count = 0;
    unsigned have = 0;
    struct arena a;
    int ret = -1;

    memset(out, 0, sizeof(*out));
    arena_init(&a);
    if (query_parse(&a, req->query ? req->query : "", &params, &count, err) < 0)
        goto out_release;
    for (size_t i = 0; i < count; i++) {
        for (int k = 0; k < P_COUNT; k++) {
            if (strcmp(params[i].name, names[k]) != 0)
                continue;
            if (have & (1u << k)) {
                err_set(err, ERR_INVALID, CODE_QUERY ": %s given more than once", names[k]);
                goto out_release;
            }
            have |= 1u << k;
            val[k] = params[i].value;
        }
    }
    if (have == 0) {
        ret = 0;
        goto out_release;
    }
    if (have != (1u << P_COUNT) - 1) {
        err_set(err, ERR_INVALID, "%s", MSG_QUERY_MISS);
        goto out_release;
    }
    if (strcmp(val[P_ALG], SIGV4_ALGORITHM) != 0) {
        err_set(err, ERR_INVALID,
                CODE_QUERY ": X-Amz-Algorithm only supports \"" SIGV4_ALGORITHM "\"");
        goto out_release;
    }
    if (parse_credential(CODE_QUERY, val[P_CRED], strlen(val[P_CRED]), out, err) < 0)
        goto out_release;
    if (parse_amz_date(val[P_DATE], strlen(val[P_DATE]), &out->request_time) < 0) {
        err_set(err, ERR_INVALID,
                CODE_QUERY
                ": X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"");
        goto out_release;
    }
    if (util_parse_i64(val[P_EXPIRES], &out->expires) < 0 || out->expires < 1 ||
        out->expires > SIGV4_MAX_EXPIRES) {
        err_set(err, ERR_INVALID,
                CODE_QUERY ": X-Amz-Expires must be a number of seconds from 1 to %ld",
                SIGV4_MAX_EXPIRES);
        goto out_release;
    }
    if (parse_signed_headers(CODE_QUERY, val[P_HEADERS], strlen(val[P_HEADERS]), out, err) < 0)
        goto out_release;
    if (parse_signature(CODE_QUERY, val[P_SIG], strlen(val[P_SIG]), out, err) < 0)
        goto out_release;
    out->presigned = 1;
    ret = 1;
out_release:
    arena_release(&a);
    if (ret < 0)
        memset(out, 0, sizeof(*out));
    return ret;
}

int sigv4_verify(const struct sigv4_request *req, const struct sigv4_auth *auth, const char *secret,
                 const char *payload_hash, int64_t now, long skew, struct err *err)
{
    const char *code = auth->presigned ? CODE_QUERY : CODE_HEADER;
    char amz_date[17], sig[65];
    struct buf creq, sts;
    struct sigv4_auth check;
    /* request_time is within years 1970..9999 once formatted: no overflow below */
    int64_t sk = skew < 0 ? 0 : skew > SIGV4_MAX_SKEW ? SIGV4_MAX_SKEW : (int64_t)skew;
    int ret = -1;

    if (!secret || !req->method || !*req->method)
        return err_set(err, ERR_INTERNAL, "InternalError: sigv4_verify called without %s",
                       secret ? "a method" : "a secret");
    /* The auth may have been filled by hand: re-check what the parsers guarantee. */
    memset(&check, 0, sizeof(check));
    if (parse_signed_headers(code, auth->signed_headers, strlen(auth->signed_headers), &check,
                             err) < 0 ||
        parse_signature(code, auth->signature, strlen(auth->signature), &check, err) < 0)
        return -1;
    if (req->s3 && strcmp(auth->service, "s3") != 0)
        return err_set(err, ERR_INVALID,
                       "%s: the Credential has an incorrect service \"%s\"; expecting \"s3\"", code,
                       auth->service);
    if (format_amz_date(auth->request_time, amz_date) < 0)
        return err_set(err, ERR_DENIED, "%s", MSG_NO_DATE);
    if (strlen(auth->date) != 8 || memcmp(auth->date, amz_date, 8) != 0)
        return err_set(err, ERR_INVALID,
                       "%s: Invalid credential date \"%s\". Date is not the same as X-Amz-Date: "
                       "\"%.8s\".",
                       code, auth->date, amz_date);
    if (auth->presigned) {
        if (auth->expires < 1 || auth->expires > SIGV4_MAX_EXPIRES)
            return err_set(err, ERR_INVALID,
                           CODE_QUERY ": X-Amz-Expires must be a number of seconds from 1 to %ld",
                           SIGV4_MAX_EXPIRES);
        if (now < auth->request_time - sk)
            return err_set(err, ERR_DENIED, "AccessDenied: Request is not valid yet");
        if (now > auth->request_time + auth->expires)
            return err_set(err, ERR_DENIED, "AccessDenied: Request has expired");
        payload_hash = SIGV4_UNSIGNED_PAYLOAD;
    } else {
        if (now < auth->request_time - sk || now > auth->request_time + sk)
            return err_set(err, ERR_DENIED,
                           "RequestTimeTooSkewed: The difference between the request time and "
                           "the current time is too large.");
        if (!payload_hash && req->header)
            payload_hash = req->header(req->ctx, "x-amz-content-sha256");
        if (!payload_hash)
            return err_set(err, ERR_INVALID,
                           "InvalidRequest: Missing required header for this "
                           "request: x-amz-content-sha256");
        if (!payload_hash_valid(payload_hash))
            return err_set(err, ERR_INVALID,
                           "InvalidArgument: x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                           "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, or a valid sha256 value.");
    }

    buf_init(&creq, SIGV4_MAX_CANONICAL);
    buf_init(&sts, 1024);
    if (compute_signature(req, auth, secret, payload_hash, &creq, &sts, sig, err) < 0)
        goto out_release;
    if (!util_streq_ct(sig, auth->signature)) {
        err_set(err, ERR_UNAUTH, MSG_MISMATCH);
        goto out_release;
    }
    ret = 0;
out_release:
    OPENSSL_cleanse(sig, sizeof(sig));
    buf_release(&sts);
    buf_release(&creq);
    return ret;
}

/** Header lookup for presigning: only host is known. */
static const char *presign_header(void *ctx, const char *name)
{
    return strcmp(name, "host") == 0 ? ctx : NULL;
}

/** Appends extra_query ("k=v&k2=v2", unencoded) to q, encoded; -1 if it is unusable. */
static int presign_extra_query(struct buf *q, const char *extra, struct err *err)
{
    const char *p = extra, *end = extra + strlen(extra);

    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *name_end = eq ? eq : stop;

        if (stop > p) {
            if ((size_t)(name_end - p) >= 6 && strncmp(p, "X-Amz-", 6) == 0)
                return err_set(err, ERR_INVALID, "InvalidArgument: X-Amz-* in extra query");
            if (q->len && buf_add(q, "&", 1, err) < 0)
                return -1;
            if (sigv4_uri_encode(q, p, (size_t)(name_end - p), 0, err) < 0 ||
                buf_add(q, "=", 1, err) < 0)
                return -1;
            if (eq && sigv4_uri_encode(q, eq + 1, (size_t)(stop - eq - 1), 0, err) < 0)
                return -1;
        }
        p = stop + 1;
    }
    return 0;
}

char *sigv4_presign(const char *method, const char *base_url, const char *path,
                    const char *extra_query, const char *access_key, const char *secret,
                    const char *region, int64_t now, long expires)
{
    struct sigv4_auth auth;
    struct sigv4_request req;
    struct buf upath, query, creq, sts, url, cq;
    const char *authority, *prefix;
    char *host = NULL, *result = NULL;
    char amz_date[17], sig[65];
    size_t prefix_len;
    struct err err;

    if (!method || !*method || !base_url || !path || !access_key || !secret || !region ||
        expires < 1 || expires > SIGV4_MAX_EXPIRES)
        return NULL;
    if (!is_access_key(access_key, strlen(access_key)) ||
        strlen(access_key) >= sizeof(auth.access_key) || !is_scope_name(region, strlen(region)) ||
        strlen(region) >= sizeof(auth.region) || format_amz_date(now, amz_date) < 0)
        return NULL;
    if (strncmp(base_url, "http://", 7) == 0)
        authority = base_url + 7;
    else if (strncmp(base_url, "https://", 8) == 0)
        authority = base_url + 8;
    else
        return NULL;
    prefix = strchr(authority, '/');
    if (!prefix)
        prefix = authority + strlen(authority);
    if (prefix == authority)
        return NULL;
    host = xstrndup(authority, (size_t)(prefix - authority));
    prefix_len = strlen(prefix);
    while (prefix_len > 0 && prefix[prefix_len - 1] == '/')
        prefix_len--;

    memset(&auth, 0, sizeof(auth));
    auth.presigned = 1;
    memcpy(auth.access_key, access_key, strlen(access_key) + 1);
    memcpy(auth.date, amz_date, 8);
    auth.date[8] = '\0';
    memcpy(auth.region, region, strlen(region) + 1);
    memcpy(auth.service, "s3", 3);
    memcpy(auth.signed_headers, "host", 5);
    auth.request_time = now;
    auth.expires = expires;

    buf_init(&upath, SIGV4_MAX_PATH);
    buf_init(&query, SIGV4_MAX_QUERY);
    buf_init(&creq, SIGV4_MAX_CANONICAL);
    buf_init(&sts, 1024);
    buf_init(&cq, SIGV4_MAX_CANONICAL);
    buf_init(&url, 0);
    if (buf_add(&upath, prefix, prefix_len, &err) < 0)
        goto out_release;
    if (path[0] != '/' && buf_add(&upath, "/", 1, &err) < 0)
        goto out_release;
    if (sigv4_uri_encode(&upath, path, strlen(path), 1, &err) < 0)
        goto out_release;
    if (presign_extra_query(&query, extra_query ? extra_query : "", &err) < 0)
        goto out_release;
    if (buf_addf(&query, &err, "%sX-Amz-Algorithm=%s&X-Amz-Credential=", query.len ? "&" : "",
                 SIGV4_ALGORITHM) < 0)
        goto out_release;
    {
        char cred[sizeof(auth.access_key) + sizeof(auth.region) + 32];
        int n = snprintf(cred, sizeof(cred), "%s/%s/%s/s3/%s", access_key, auth.date, region,
                         SIGV4_TERMINATOR);
        if (n < 0 || (size_t)n >= sizeof(cred) ||
            sigv4_uri_encode(&query, cred, (size_t)n, 0, &err) < 0)
            goto out_release;
    }
    if (buf_addf(&query, &err, "&X-Amz-Date=%s&X-Amz-Expires=%ld&X-Amz-SignedHeaders=host",
                 amz_date, expires) < 0)
        goto out_release;

    memset(&req, 0, sizeof(req));
    req.method = method;
    req.path = upath.buf;
    req.query = query.buf;
    req.header = presign_header;
    req.ctx = host;
    req.s3 = 1;
    if (compute_signature(&req, &auth, secret, SIGV4_UNSIGNED_PAYLOAD, &creq, &sts, sig, &err) < 0)
        goto out_release;
    /* The canonical query is sorted and encoded: it is the query of the URL, as boto3's. */
    if (canonical_query(&cq, query.buf, 1, &err) < 0)
        goto out_release;
    if (buf_add(&url, base_url, (size_t)(prefix - base_url), &err) < 0 ||
        buf_add(&url, upath.buf, upath.len, &err) < 0 ||
        buf_addf(&url, &err, "?%s&" SIGV4_SIG_PARAM "=%s", cq.buf, sig) < 0)
        goto out_release;
    result = buf_detach(&url, NULL);
out_release:
    buf_release(&url);
    buf_release(&cq);
    buf_release(&sts);
    buf_release(&creq);
    buf_release(&query);
    buf_release(&upath);
    free(host);
    return result;
}
