/* Range requests, conditional requests and serving an object from a file. */
#include "http/http.h"

#include <ctype.h>
#include <string.h>
#include <unistd.h>

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* parses digits into *v; returns the end or NULL */
static const char *parse_num(const char *p, int64_t *v)
{
    int64_t n = 0;

    if (!isdigit((unsigned char)*p))
        return NULL;
    while (isdigit((unsigned char)*p)) {
        if (n > (INT64_MAX - 9) / 10)
            return NULL;
        n = n * 10 + (*p - '0');
        p++;
    }
    *v = n;
    return p;
}

int http_range_parse(const char *header, int64_t size, struct http_range *out, int max,
                     struct err *err)
{
    const char *p = skip_ws(header);
    int count = 0, specs = 0;

    if (strncmp(p, "bytes=", 6) != 0)
        return 0;
    p += 6;
    for (;;) {
        int64_t a = -1, b = -1;

        p = skip_ws(p);
        if (*p == '-') {
            int64_t suffix;
            p = parse_num(p + 1, &suffix);
            if (!p)
                return 0;
            if (suffix > 0 && size > 0) {
                a = suffix >= size ? 0 : size - suffix;
                b = size - 1;
            }
        } else {
            p = parse_num(p, &a);
            if (!p || *p != '-')
                return 0;
            p++;
            if (isdigit((unsigned char)*p)) {
                p = parse_num(p, &b);
                if (!p || b < a)
                    return 0;
            } else {
                b = size - 1;
            }
            if (a >= size)
                a = -1; /* unsatisfiable spec */
            else if (b >= size)
                b = size - 1;
        }
        specs++;
        if (specs > 100)
            return 0; /* too many ranges: serve the whole representation */
        if (a >= 0 && count < max) {
            out[count].start = a;
            out[count].end = b;
            count++;
        } else if (a >= 0) {
            count++;
        }
        p = skip_ws(p);
        if (*p == '\0')
            break;
        if (*p != ',')
            return 0;
        p++;
    }
    if (count == 0)
        return err_set(err, ERR_RANGE, "none of the requested ranges is within the %lld bytes",
                       (long long)size);
    return count > max ? 0 : count;
}

/* does the If-Match / If-None-Match list match etag? weak: W/ prefixes ignored */
static int etag_list_match(const char *list, const char *etag, int weak)
{
    const char *p = list;
    size_t elen = strlen(etag);

    p = skip_ws(p);
    if (strcmp(p, "*") == 0)
        return 1;
    while (*p) {
        int is_weak = 0;
        const char *start, *end;

        p = skip_ws(p);
        if (strncmp(p, "W/", 2) == 0) {
            is_weak = 1;
            p += 2;
        }
        if (*p == '"') {
            start = ++p;
            end = strchr(p, '"');
            if (!end)
                return 0;
            p = end + 1;
        } else {
            /* lenient: unquoted tags as some clients send them */
            start = p;
            end = p + strcspn(p, ", ");
            p = end;
        }
        if ((weak || !is_weak) && (size_t)(end - start) == elen && memcmp(start, etag, elen) == 0)
            return 1;
        p = skip_ws(p);
        if (*p == ',')
            p++;
    }
    return 0;
}

enum http_cond http_conditional(struct http_req *req, const char *etag, int64_t mtime)
{
    const char *im = http_header_joined(req, "If-Match");
    const char *inm = http_header_joined(req, "If-None-Match");
    const char *ius = http_header(req, "If-Unmodified-Since");
    const char *ims = http_header(req, "If-Modified-Since");
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    int64_t t;

    if (im) {
        if (!etag_list_match(im, etag, 0))
            return HTTP_COND_FAILED;
    } else if (ius && util_time_http_parse(ius, &t) == 0) {
        if (mtime > t)
            return HTTP_COND_FAILED;
    }
    if (inm) {
        if (etag_list_match(inm, etag, 1))
            return get ? HTTP_COND_NOT_MODIFIED : HTTP_COND_FAILED;
    } else if (get && ims && util_time_http_parse(ims, &t) == 0) {
        if (mtime <= t)
            return HTTP_COND_NOT_MODIFIED;
    }
    return HTTP_COND_PROCEED;
}

/* If-Range: the Range applies only if the validator still matches */
static int if_range_ok(struct http_req *req, const char *etag, int64_t mtime)
{
    const char *ir = http_header(req, "If-Range");
    int64_t t;

    if (!ir)
        return 1;
    if (ir[0] == '"') {
        size_t n = strlen(etag);
        return strlen(ir) == n + 2 && memcmp(ir + 1, etag, n) == 0 && ir[n + 1] == '"';
    }
    if (util_time_http_parse(ir, &t) == 0)
        return mtime == t;
    return 0;
}

void http_send_object(struct http_req *req, int fd, const struct http_object *obj)
{
    char etag[96], lm[40], cr[96];
    const char *ct =
        obj->content_type && *obj->content_type ? obj->content_type : "application/octet-stream";
    const char *range = http_header(req, "Range");
    enum http_cond cond;
    struct http_range r;
    struct err e;

    snprintf(etag, sizeof(etag), "\"%s\"", obj->etag);
    util_time_http(obj->mtime, lm);
    cond = http_conditional(req, obj->etag, obj->mtime);
    if (cond == HTTP_COND_NOT_MODIFIED) {
        close(fd);
        http_resp_header(req, "ETag", etag);
        http_resp_header(req, "Last-Modified", lm);
        if (obj->cache_control)
            http_resp_header(req, "Cache-Control", obj->cache_control);
        http_send_empty(req, 304);
        return;
    }
    if (cond == HTTP_COND_FAILED) {
        close(fd);
        err_set(&e, ERR_PRECONDITION,
                "the object's current ETag %s or date does not satisfy "
                "the request's preconditions",
                etag);
        req->app->on_error(req, &e);
        return;
    }
    http_resp_header(req, "ETag", etag);
    http_resp_header(req, "Last-Modified", lm);
    http_resp_header(req, "Accept-Ranges", "bytes");
    if (obj->cache_control)
        http_resp_header(req, "Cache-Control", obj->cache_control);
    if (obj->disposition)
        http_resp_header(req, "Content-Disposition", obj->disposition);

    if (range && if_range_ok(req, obj->etag, obj->mtime)) {
        int n = http_range_parse(range, obj->size, &r, 1, &e);
        if (n < 0) {
            close(fd);
            snprintf(cr, sizeof(cr), "bytes */%lld", (long long)obj->size);
            http_resp_header(req, "Content-Range", cr);
            req->app->on_error(req, &e);
            return;
        }
        if (n == 1) {
            snprintf(cr, sizeof(cr), "bytes %lld-%lld/%lld", (long long)r.start, (long long)r.end,
                     (long long)obj->size);
            http_resp_header(req, "Content-Range", cr);
            http_send_fd(req, 206, ct, fd, r.start, r.end - r.start + 1, obj->small_max);
            return;
        }
    }
    http_send_fd(req, 200, ct, fd, 0, obj->size, obj->small_max);
}
