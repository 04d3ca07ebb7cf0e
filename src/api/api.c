/*
 * api: the REST application. Routing, authentication and role checks happen once the
 * headers are in; JSON bodies are buffered (capped at max_json_body) and parsed before the
 * handler runs; every error leaves as problem+json through http_send_problem.
 */
#include "api/api_int.h"
#include "search/search.h"

#include <string.h>
#include <unistd.h>

/* generated from docs/openapi.yaml by scripts/embed.py */
extern const char openapi_json[];
extern const size_t openapi_json_len;

static void api_healthz(struct http_req *req, const char *const *params);
static void api_readyz(struct http_req *req, const char *const *params);
static void api_openapi(struct http_req *req, const char *const *params);

/* Order matters where patterns overlap: /assets/direct comes before /assets/{id}. */
static const struct http_route api_routes[] = {
    {"GET", "/healthz", api_healthz, 0, 0},
    {"GET", "/readyz", api_readyz, 0, 0},
    {"GET", "/api/v1/openapi.json", api_openapi, 0, 0},
    {"POST", "/api/v1/assets", api__assets_create, ROLE_EDITOR, API_BODY_JSON},
    {"GET", "/api/v1/assets", api__assets_list, ROLE_VIEWER, 0},
    {"POST", "/api/v1/assets/direct", api__assets_direct, ROLE_EDITOR, API_BODY_STREAM},
    {"GET", "/api/v1/assets/{id}", api__assets_get, ROLE_VIEWER, 0},
    {"PATCH", "/api/v1/assets/{id}", api__assets_patch, ROLE_EDITOR, API_BODY_JSON},
    {"GET", "/api/v1/assets/{id}/upload", api__assets_upload_get, ROLE_EDITOR, 0},
    {"DELETE", "/api/v1/assets/{id}/upload", api__assets_upload_abort, ROLE_EDITOR, 0},
    {"POST", "/api/v1/assets/{id}/complete", api__assets_complete, ROLE_EDITOR, API_BODY_JSON},
    {"PUT", "/api/v1/assets/{id}/complete", api__assets_complete, ROLE_EDITOR, API_BODY_JSON},
    {"GET", "/api/v1/assets/{id}/download", api__assets_download, ROLE_VIEWER, 0},
    {"GET", "/api/v1/assets/{id}/renditions", api__renditions_list, ROLE_VIEWER, 0},
    {"POST", "/api/v1/assets/{id}/renditions", api__renditions_create, ROLE_EDITOR, API_BODY_JSON},
    {"GET", "/api/v1/renditions/{id}/download", api__renditions_download, ROLE_VIEWER, 0},
    {"GET", "/api/v1/renditions/{id}/files/{name}", api__renditions_download, ROLE_VIEWER, 0},
    {"POST", "/api/v1/keys", api__keys_create, ROLE_ADMIN, API_BODY_JSON},
    {"DELETE", "/api/v1/keys/{id}", api__keys_revoke, ROLE_ADMIN, 0},
    {"GET", "/api/v1/me", api__me, ROLE_VIEWER, 0},
    {"GET", "/api/v1/audit", api__audit_list, ROLE_ADMIN, 0},
    {"GET", "/api/v1/workflows", api__workflows_list, ROLE_VIEWER, 0},
    {"POST", "/api/v1/workflows", api__workflows_start, ROLE_ADMIN, API_BODY_JSON},
    {"GET", "/api/v1/workflows/{id}", api__workflows_get, ROLE_VIEWER, 0},
    {"GET", "/api/v1/workflows/{id}/history", api__workflows_history, ROLE_VIEWER, 0},
    {"POST", "/api/v1/workflows/{id}/cancel", api__workflows_cancel, ROLE_EDITOR, 0},
    {"POST", "/api/v1/workflows/{id}/retry", api__workflows_retry, ROLE_EDITOR, 0},
    {"GET", "/api/v1/queues", api__queues_list, ROLE_VIEWER, 0},
    {"POST", "/api/v1/search", api__search, ROLE_VIEWER, API_BODY_JSON | API_GATED},
    {"GET", "/api/v1/search/suggest", api__search_suggest, ROLE_VIEWER, 0},
};

/* ---- small helpers ---------------------------------------------------------------------- */

struct api_state *api__state(struct http_req *req)
{
    return req->state;
}

void api__send_err(struct http_req *req, const struct err *err)
{
    http_send_problem(req, err);
}

void api__fail(struct http_req *req, enum err_code code, const char *fmt, ...)
{
    struct err e;
    va_list ap;

    va_start(ap, fmt);
    err_vset(&e, code, fmt, ap);
    va_end(ap);
    http_send_problem(req, &e);
}

void api__send_json(struct http_req *req, int status, json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    if (!text) {
        api__fail(req, ERR_INTERNAL, "the response could not be encoded as JSON");
        return;
    }
    http_send(req, status, "application/json", text, strlen(text));
    free(text);
}

void api__audit(struct http_req *req, const char *action, const char *target_type,
                const char *target_id, json_t *detail)
{
    struct api_state *st = api__state(req);
    char *dj = detail ? json_dumps(detail, JSON_COMPACT) : NULL;
    struct cat_audit a = {
        .actor_user_id = st->authed ? st->who.user_id : NULL,
        .actor_key_id = st->authed ? st->who.key_id : NULL,
        .action = action,
        .target_type = target_type,
        .target_id = target_id,
        .detail_json = dj,
        .request_id = req->id,
    };
    struct err e;

    if (cat_audit_append(st->ctx->cat, &a, &e) < 0)
        log_write(LOG_ERROR, "api", "audit %s of %s %s failed: %s", action,
                  target_type ? target_type : "-", target_id ? target_id : "-", e.msg);
    free(dj);
    json_decref(detail);
}

const char *api__asset_path(struct http_req *req, const char *id)
{
    return arena_printf(&req->arena, "/api/v1/assets/%s", id);
}

/* ---- JSON validation -------------------------------------------------------------------- */

int api__json_known(json_t *o, const char *const *allowed, const char *where, struct err *err)
{
    const char *k;
    json_t *v;

    json_object_foreach(o, k, v)
    {
        size_t i;

        for (i = 0; allowed[i]; i++)
            if (strcmp(k, allowed[i]) == 0)
                break;
        if (!allowed[i])
            return err_set(err, ERR_INVALID, "unknown field '%s%s%.64s'", where,
                           where[0] ? "." : "", k);
    }
    return 0;
}

/*
 * What a text value may hold: valid UTF-8 (shortest forms, no surrogates), no NUL, no
 * control characters (C0, DEL, C1) but tab, line feed and carriage return in multi-line
 * text, and min_chars..max_chars characters. kind and field name it in the message:
 * "field 'title'", "query parameter 'title'".
 */
static int text_check(const char *kind, const char *field, const char *s, size_t len,
                      size_t min_chars, size_t max_chars, unsigned flags, struct err *err)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n = 0;

    if (strlen(s) != len)
        return err_set(err, ERR_INVALID, "%s '%s' must not contain NUL characters", kind, field);
    while (i < len) {
        uint32_t cp = p[i];
        size_t at = i;

        if (cp < 0x80)
            i++;
        else if (!util_utf8_next(p, len, &i, &cp))
            return err_set(err, ERR_INVALID,
                           "%s '%s' is not valid UTF-8 (byte 0x%02x at offset %zu)", kind, field,
                           p[at], at);
        n++;
        if ((cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) &&
            !((flags & API_MULTILINE) && (cp == '\t' || cp == '\n' || cp == '\r')))
            return err_set(err, ERR_INVALID,
                           "%s '%s' must not contain control characters (U+%04X at character "
                           "%zu)",
                           kind, field, (unsigned)cp, n);
    }
    if (n < min_chars)
        return err_set(err, ERR_INVALID, "%s '%s' must have at least %zu character%s", kind, field,
                       min_chars, min_chars == 1 ? "" : "s");
    if (n > max_chars)
        return err_set(err, ERR_INVALID, "%s '%s' must have at most %zu characters", kind, field,
                       max_chars);
    return 0;
}

int api__string_check(const char *field, const char *s, size_t len, size_t min_chars,
                      size_t max_chars, struct err *err)
{
    return text_check("field", field, s, len, min_chars, max_chars, 0, err);
}

int api__query_string(struct http_req *req, const char *name, size_t min_chars, size_t max_chars,
                      unsigned flags, const char **out, struct err *err)
{
    const char *v = http_query(req, name);

    *out = v;
    if (!v)
        return 0;
    return text_check("query parameter", name, v, strlen(v), min_chars, max_chars, flags, err);
}

int api__json_string(json_t *o, const char *name, size_t min_chars, size_t max_chars,
                     unsigned flags, const char **out, struct err *err)
{
    json_t *v = json_object_get(o, name);

    *out = NULL;
    if (!v)
        return API_ABSENT;
    if (json_is_null(v)) {
        if (flags & API_NULLABLE)
            return API_NULL;
        return err_set(err, ERR_INVALID, "field '%s' must be a string, not null", name);
    }
    if (!json_is_string(v))
        return err_set(err, ERR_INVALID, "field '%s' must be a string", name);
    if (text_check("field", name, json_string_value(v), json_string_length(v), min_chars, max_chars,
                   flags, err) < 0)
        return -1;
    *out = json_string_value(v);
    return API_PRESENT;
}

int api__tags_check(const char *field, json_t *tags, struct err *err)
{
    size_t i;
    json_t *t;

    if (!json_is_array(tags))
        return err_set(err, ERR_INVALID, "field '%s' must be an array of strings", field);
    if (json_array_size(tags) > API_TAGS_MAX)
        return err_set(err, ERR_INVALID, "field '%s' has %zu tags; at most %d are allowed", field,
                       json_array_size(tags), API_TAGS_MAX);
    json_array_foreach(tags, i, t)
    {
        char name[64];

        snprintf(name, sizeof(name), "%s[%zu]", field, i);
        if (!json_is_string(t))
            return err_set(err, ERR_INVALID, "field '%s' must be a string", name);
        if (api__string_check(name, json_string_value(t), json_string_length(t), 1, API_TAG_CHARS,
                              err) < 0)
            return -1;
    }
    return 0;
}

/* nesting depth of v (scalars 0, a container 1 + its deepest child), stopping past limit */
static int json_depth(json_t *v, int limit)
{
    int deepest = 0;

    if (limit < 0)
        return 1;
    if (json_is_object(v)) {
        const char *k;
        json_t *c;

        json_object_foreach(v, k, c)
        {
            int d = json_depth(c, limit - 1);
            if (d > deepest)
                deepest = d;
            if (deepest > limit)
                break;
        }
        return deepest + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *c;

        json_array_foreach(v, i, c)
        {
            int d = json_depth(c, limit - 1);
            if (d > deepest)
                deepest = d;
            if (deepest > limit)
                break;
        }
        return deepest + 1;
    }
    return 0;
}

int api__editorial_check(const char *field, json_t *em, struct err *err)
{
    json_t *tags;
    size_t size;

    if (!json_is_object(em))
        return err_set(err, ERR_INVALID, "field '%s' must be an object", field);
    if (json_depth(em, API_EDITORIAL_DEPTH) > API_EDITORIAL_DEPTH)
        return err_set(err, ERR_LIMIT, "field '%s' nests deeper than %d levels", field,
                       API_EDITORIAL_DEPTH);
    size = json_dumpb(em, NULL, 0, JSON_COMPACT);
    if (size > API_EDITORIAL_MAX)
        return err_set(err, ERR_LIMIT, "field '%s' takes %zu bytes as JSON; the limit is %d", field,
                       size, API_EDITORIAL_MAX);
    tags = json_object_get(em, "tags");
    if (tags) {
        char name[64];

        snprintf(name, sizeof(name), "%s.tags", field);
        if (api__tags_check(name, tags, err) < 0)
            return -1;
    }
    return 0;
}

static int is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

int api__idempotency_key(struct http_req *req, size_t max, char *out, struct err *err)
{
    const char *p = http_header_joined(req, "Idempotency-Key");
    size_t n = 0;

    if (!p)
        return 0;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '"') {
        for (p++; *p && *p != '"'; p++) {
            if (*p == '\\') {
                p++;
                if (*p != '"' && *p != '\\')
                    goto bad;
            }
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e || n == max)
                goto bad;
            out[n++] = *p;
        }
        if (*p != '"')
            goto bad;
        p++;
    } else {
        /* a bare key: no spaces, quotes or commas */
        for (; *p && *p != ' ' && *p != '\t'; p++) {
            if ((unsigned char)*p <= 0x20 || (unsigned char)*p > 0x7e || *p == '"' || *p == ',' ||
                n == max)
                goto bad;
            out[n++] = *p;
        }
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p || n == 0)
        goto bad;
    out[n] = '\0';
    return 1;
bad:
    out[0] = '\0';
    return err_set(err, ERR_INVALID,
                   "header 'Idempotency-Key' must be one key of 1 to %zu printable ASCII "
                   "characters, quoted (\"key\") or bare",
                   max);
}

int api__mime_valid(const char *s)
{
    size_t type = 0, sub = 0;
    const char *p = s;

    if (strlen(s) > STORE_CONTENT_TYPE_MAX)
        return 0;
    while (is_tchar(*p)) {
        p++;
        type++;
    }
    if (*p != '/' || type == 0)
        return 0;
    p++;
    while (is_tchar(*p)) {
        p++;
        sub++;
    }
    return *p == '\0' && sub > 0;
}

int api__query_int(struct http_req *req, const char *name, int64_t lo, int64_t hi, int64_t def,
                   int64_t *out, struct err *err)
{
    const char *v = http_query(req, name);
    int64_t n;

    if (!v) {
        *out = def;
        return 0;
    }
    if (util_parse_i64(v, &n) < 0 || n < lo || n > hi)
        return err_set(err, ERR_INVALID,
                       "query parameter '%s' must be an integer from %lld to %lld", name,
                       (long long)lo, (long long)hi);
    *out = n;
    return 0;
}

/* ---- asset JSON --------------------------------------------------------------------------- */

/* a string member, null when absent or empty */
static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

/* a technical column, null when unknown (-1) */
static json_t *int_or_null(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

json_t *api__asset_json(const struct cat_asset *a)
{
    json_t *o = json_object();
    json_t *em = NULL, *tm = NULL, *tags, *links;
    char t[32];

    json_object_set_new(o, "id", json_string(a->id));
    json_object_set_new(o, "type", json_string(a->type));
    json_object_set_new(o, "status", json_string(a->status));
    json_object_set_new(o, "title", str_or_null(a->title));
    json_object_set_new(o, "description", str_or_null(a->description));
    json_object_set_new(o, "original_filename", str_or_null(a->original_filename));
    json_object_set_new(o, "mime_type", str_or_null(a->mime_type));
    json_object_set_new(o, "file_size_bytes", json_integer(a->file_size_bytes));
    json_object_set_new(o, "content_hash", str_or_null(a->content_hash));
    json_object_set_new(o, "master_storage_key", str_or_null(a->master_storage_key));
    if (a->technical_metadata)
        tm = json_loads(a->technical_metadata, 0, NULL);
    if (!json_is_object(tm)) {
        json_decref(tm);
        tm = json_null();
    }
    json_object_set_new(o, "technical_metadata", tm);
    json_object_set_new(o, "duration_ms", int_or_null(a->duration_ms));
    json_object_set_new(o, "width", int_or_null(a->width));
    json_object_set_new(o, "height", int_or_null(a->height));
    json_object_set_new(o, "video_codec", str_or_null(a->video_codec));
    json_object_set_new(o, "audio_codec", str_or_null(a->audio_codec));
    json_object_set_new(o, "frame_rate",
                        a->frame_rate < 0 ? json_null() : json_real(a->frame_rate));
    json_object_set_new(o, "bitrate_kbps", int_or_null(a->bitrate_kbps));
    json_object_set_new(o, "container", str_or_null(a->container));
    json_object_set_new(o, "captured_at", str_or_null(a->captured_at));
    json_object_set_new(o, "duplicate_of", str_or_null(a->duplicate_of));
    if (a->editorial_metadata)
        em = json_loads(a->editorial_metadata, 0, NULL);
    if (!json_is_object(em)) {
        json_decref(em);
        em = json_object();
    }
    tags = json_object_get(em, "tags");
    json_object_set_new(o, "tags", json_is_array(tags) ? json_deep_copy(tags) : json_array());
    json_object_set_new(o, "editorial_metadata", em);
    json_object_set_new(o, "language", str_or_null(a->language));
    {
        json_t *ai = a->ai_metadata ? json_loads(a->ai_metadata, 0, NULL) : NULL;

        if (!json_is_object(ai)) {
            json_decref(ai);
            ai = json_object();
        }
        json_object_set_new(o, "ai_metadata", ai);
    }
    json_object_set_new(o, "failure_reason", str_or_null(a->failure_reason));
    json_object_set_new(o, "created_by", str_or_null(a->created_by));
    util_time_rfc3339_ms(a->created_at, t);
    json_object_set_new(o, "created_at", json_string(t));
    util_time_rfc3339_ms(a->updated_at, t);
    json_object_set_new(o, "updated_at", json_string(t));

    links = json_object();
    {
        char path[128];

        snprintf(path, sizeof(path), "/api/v1/assets/%s", a->id);
        json_object_set_new(links, "self", json_string(path));
        snprintf(path, sizeof(path), "/api/v1/assets/%s/download", a->id);
        json_object_set_new(links, "download", json_string(path));
        snprintf(path, sizeof(path), "/api/v1/workflows?asset_id=%s", a->id);
        json_object_set_new(links, "workflows", json_string(path));
        if (strcmp(a->status, ASSET_UPLOADING) == 0) {
            snprintf(path, sizeof(path), "/api/v1/assets/%s/upload", a->id);
            json_object_set_new(links, "upload", json_string(path));
        }
    }
    json_object_set_new(o, "links", links);
    return o;
}

/* ---- authentication ------------------------------------------------------------------------ */

static int authenticate(struct http_req *req, struct api_state *st, struct err *err)
{
    const char *h = http_header(req, "Authorization");
    const char *tok;
    size_t n;
    char hash[65];
    struct cat_key k;

    if (!h || !*h)
        return err_set(err, ERR_UNAUTH, "missing Authorization header (expected 'Bearer <token>')");
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return err_set(err, ERR_UNAUTH, "the Authorization header must use the Bearer scheme");
    tok = h + 6;
    while (*tok == ' ' || *tok == '\t')
        tok++;
    n = strlen(tok);
    while (n && (tok[n - 1] == ' ' || tok[n - 1] == '\t'))
        n--;
    if (n == 0)
        return err_set(err, ERR_UNAUTH, "the Bearer token is empty");
    util_sha256_hex(tok, n, hash);
    if (cat_key_by_token_hash(st->ctx->cat, hash, &k, err) < 0) {
        if (err->code == ERR_NOTFOUND || err->code == ERR_INVALID)
            return err_set(err, ERR_UNAUTH,
                           "the Bearer token is not a valid API key "
                           "(unknown or revoked)");
        return -1;
    }
    snprintf(st->who.user_id, sizeof(st->who.user_id), "%s", k.user_id);
    snprintf(st->who.key_id, sizeof(st->who.key_id), "%s", k.id);
    st->who.role = k.role;
    snprintf(st->who.s3_access_key, sizeof(st->who.s3_access_key), "%s", k.s3_access_key);
    snprintf(st->who.s3_secret, sizeof(st->who.s3_secret), "%s", k.s3_secret);
    st->authed = 1;
    return 0;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static int allow_has(const struct buf *b, const char *m)
{
    size_t n = strlen(m);
    const char *p = b->buf;

    while ((p = strstr(p, m)) != NULL) {
        if ((p == b->buf || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
            return 1;
        p += n;
    }
    return 0;
}

static void allow_add(struct buf *b, const char *m)
{
    if (allow_has(b, m))
        return;
    if (b->len)
        buf_adds(b, ", ", NULL);
    buf_adds(b, m, NULL);
}

static void send_not_allowed(struct http_req *req)
{
    struct buf b;

    buf_init(&b, 256);
    for (size_t i = 0; i < ARRAY_LEN(api_routes); i++) {
        const char *tmp[4] = {0};
        int matched;

        http_route_find(req, &api_routes[i], 1, tmp, &matched);
        if (!matched)
            continue;
        allow_add(&b, api_routes[i].method);
        if (strcmp(api_routes[i].method, "GET") == 0)
            allow_add(&b, "HEAD");
    }
    http_resp_header(req, "Allow", b.buf);
    api__fail(req, ERR_METHOD, "%s is not allowed here; allowed: %s", req->method, b.buf);
    buf_release(&b);
}

/* 1 if the request's Content-Type is application/json (parameters allowed) */
static int is_json_type(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    if (!ct)
        return 0;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

static void api_on_headers(struct http_req *req)
{
    struct api_state *st = arena_alloc(&req->arena, sizeof(*st));
    const struct http_route *r;
    int matched;
    struct err e;

    st->ctx = req->app->ctx;
    req->state = st;
    r = http_route_find(req, api_routes, ARRAY_LEN(api_routes), st->params, &matched);
    if (!r) {
        if (matched)
            send_not_allowed(req);
        else
            api__fail(req, ERR_NOTFOUND, "there is no resource at this path");
        return;
    }
    st->route = r;
    if (r->min_role > 0) {
        if (authenticate(req, st, &e) < 0) {
            api__send_err(req, &e);
            return;
        }
        if ((int)st->who.role < r->min_role) {
            api__fail(req, ERR_DENIED, "%s %s needs the %s role; this key has the %s role",
                      r->method, r->pattern, cat_role_name((enum cat_role)r->min_role),
                      cat_role_name(st->who.role));
            return;
        }
    }
    if (r->flags & API_BODY_JSON) {
        if (!is_json_type(http_header(req, "Content-Type"))) {
            api__fail(req, ERR_MEDIA_TYPE,
                      "the request body must be sent with Content-Type: application/json");
            return;
        }
        if (req->content_length > st->ctx->cfg->max_json_body) {
            api__fail(req, ERR_LIMIT, "the request body of %lld bytes exceeds the limit of %ld",
                      (long long)req->content_length, st->ctx->cfg->max_json_body);
            return;
        }
        req->body_max = (size_t)st->ctx->cfg->max_json_body;
    } else if (r->flags & API_BODY_STREAM) {
        api__assets_direct_begin(req);
    }
}

static void api_on_complete(struct http_req *req)
{
    struct api_state *st = api__state(req);

    if (!st || !st->route) {
        api__fail(req, ERR_INTERNAL, "the request has no route");
        return;
    }
    if (st->route->flags & API_BODY_JSON) {
        json_error_t je;

        st->body = json_loadb(req->body.buf, req->body.len, JSON_REJECT_DUPLICATES, &je);
        if (!st->body) {
            api__fail(req, ERR_INVALID, "invalid JSON at line %d, column %d: %s", je.line,
                      je.column, je.text);
            return;
        }
        if (!json_is_object(st->body)) {
            api__fail(req, ERR_INVALID, "the request body must be a JSON object");
            return;
        }
    }
    if (!(st->route->flags & API_GATED)) {
        st->route->handler(req, st->params);
        return;
    }
    /* a few at a time: the rest wait in order, so cheap requests keep the CPU they need
     * and memory stays bounded however many clients search at once */
    if (gate_enter(&st->ctx->gate, st->ctx->cfg->search_queue_timeout * 1000) < 0) {
        http_resp_header(req, "Retry-After", "1");
        api__fail(req, ERR_BUSY,
                  "%d searches are running and others waited %ld s before this "
                  "one; retry in a moment",
                  st->ctx->gate.max, st->ctx->cfg->search_queue_timeout);
        return;
    }
    st->route->handler(req, st->params);
    gate_leave(&st->ctx->gate);
}

void api_ctx_init(struct api_ctx *ctx, const struct cfg *cfg, struct catalog *cat,
                  struct store *store)
{
    long n = cfg->search_concurrency;

    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    ctx->cfg = cfg;
    ctx->cat = cat;
    ctx->store = store;
    gate_init(&ctx->gate, n > 0 ? (int)n : 1);
    pthread_mutex_init(&ctx->an_mu, NULL);
    ctx->an_n = 0;
}

void api_ctx_release(struct api_ctx *ctx)
{
    while (ctx->an_n > 0)
        search_analyzer_free(ctx->an_pool[--ctx->an_n]);
    pthread_mutex_destroy(&ctx->an_mu);
    gate_release(&ctx->gate);
}

static void api_on_error(struct http_req *req, const struct err *err)
{
    http_send_problem(req, err);
}

static void api_on_free(struct http_req *req)
{
    struct api_state *st = api__state(req);

    if (!st)
        return;
    if (st->direct)
        api__assets_direct_free(req);
    json_decref(st->body);
    st->body = NULL;
}

void api_app_init(struct http_app *app, struct api_ctx *ctx)
{
    memset(app, 0, sizeof(*app));
    app->name = "api";
    app->on_headers = api_on_headers;
    app->on_complete = api_on_complete;
    app->on_error = api_on_error;
    app->on_free = api_on_free;
    app->ctx = ctx;
}

/* ---- health and the OpenAPI document ---------------------------------------------------- */

static void api_healthz(struct http_req *req, const char *const *params)
{
    (void)params;
    api__send_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

static void api_readyz(struct http_req *req, const char *const *params)
{
    struct api_ctx *ctx = api__state(req)->ctx;
    struct store_meta m;
    int64_t users;
    struct err e;

    (void)params;
    if (cat_user_count(ctx->cat, &users, &e) < 0) {
        api__fail(req, ERR_BACKEND, "catalog not ready: %.200s", e.msg);
        return;
    }
    if (store_object_stat(ctx->store, STORE_BUCKET_ARCHIVE, "readyz/probe", &m, &e) < 0 &&
        e.code != ERR_NOTFOUND) {
        api__fail(req, ERR_BACKEND, "store not ready: %.200s", e.msg);
        return;
    }
    api__send_json(req, 200, json_pack("{s:s}", "status", "ready"));
}

static void api_openapi(struct http_req *req, const char *const *params)
{
    (void)params;
    http_send(req, 200, "application/json", openapi_json, openapi_json_len);
}
