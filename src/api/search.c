/*
 * POST /api/v1/search and GET /api/v1/search/suggest (docs/internals/search.md, OpenAPI):
 * the query language and the filters become one query tree; the catalog's planner finds
 * the hits; this file shows them, with highlighted snippets.
 */
#include "search/search.h"
#include "api/api_int.h"
#include "catalog/catalog.h"
#include "http/http.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define SNIPPET_WORDS 30
#define TITLE_WORDS   80
#define SUGGEST_MAX   50

/* ---- analyzers for snippets: a few, shared ------------------------------------------------ */

/*
 * An analyzer (its stemmers and their caches, ~1.6 MiB) for the snippets of one search.
 * Taken from the context's pool, made if the pool is empty: searches pass the gate a few
 * at a time, so a few analyzers serve them all (one per connection thread, as before,
 * held ~1.6 MiB for each of 150 clients). The caller gives it back with analyzer_give.
 */
static struct search_analyzer *analyzer_take(struct api_ctx *ctx, struct err *err)
{
    struct search_analyzer *a = NULL;

    pthread_mutex_lock(&ctx->an_mu);
    if (ctx->an_n > 0)
        a = ctx->an_pool[--ctx->an_n];
    pthread_mutex_unlock(&ctx->an_mu);
    if (!a && search_analyzer_new(&a, err) < 0)
        return NULL;
    return a;
}

static void analyzer_give(struct api_ctx *ctx, struct search_analyzer *a)
{
    pthread_mutex_lock(&ctx->an_mu);
    if (ctx->an_n < (int)ARRAY_LEN(ctx->an_pool)) {
        ctx->an_pool[ctx->an_n++] = a;
        a = NULL;
    }
    pthread_mutex_unlock(&ctx->an_mu);
    search_analyzer_free(a); /* more than the pool keeps */
}

/* ---- the request ---------------------------------------------------------------------------- */

static const struct {
    const char *name;
    enum search_field field;
} key_filters[] = {
    {"type", SEARCH_F_TYPE},       {"status", SEARCH_F_STATUS},     {"tags", SEARCH_F_TAG},
    {"program", SEARCH_F_PROGRAM}, {"category", SEARCH_F_CATEGORY}, {"entities", SEARCH_F_ENTITY},
    {"objects", SEARCH_F_OBJECT},  {"lang", SEARCH_F_LANG},
};

static int one_of(const char *v, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(v, *set) == 0)
            return 1;
    return 0;
}

/* a filter value: a string, or an array of strings that must all match */
static int filter_values(struct search_query *q, const char *name, enum search_field field,
                         json_t *v, struct err *err)
{
    static const char *const types[] = {"video", "audio", "image", NULL};
    static const char *const statuses[] = {"uploading", "processing", "ready",
                                           "failed",    "archived",   NULL};
    json_t *one = v;
    size_t i = 0, n = json_is_array(v) ? json_array_size(v) : 1;

    if (json_is_array(v) && (n == 0 || n > 32))
        return err_set(err, ERR_INVALID, "filters.%s must list 1 to 32 values", name);
    for (i = 0; i < n; i++) {
        const char *s;

        if (json_is_array(v))
            one = json_array_get(v, i);
        if (!json_is_string(one) || json_string_length(one) == 0 || json_string_length(one) > 200)
            return err_set(err, ERR_INVALID,
                           "filters.%s must be a string of 1 to 200 bytes or an array of them",
                           name);
        s = json_string_value(one);
        if (field == SEARCH_F_TYPE && !one_of(s, types))
            return err_set(err, ERR_INVALID, "filters.type '%.32s' is not video, audio or image",
                           s);
        if (field == SEARCH_F_STATUS && !one_of(s, statuses))
            return err_set(err, ERR_INVALID,
                           "filters.status '%.32s' is not uploading, processing, ready, failed "
                           "or archived",
                           s);
        search_query_and(q, search_node_filter(field, s));
    }
    return 0;
}

/* a range filter: written in the query language and parsed, so both agree */
static int filter_range(struct search_query *q, const char *name, const char *field, const char *lo,
                        const char *hi, struct err *err)
{
    char text[160];
    struct search_query r = {0};
    size_t pos = 0;
    struct err e = {0};

    for (const char *p = lo ? lo : ""; *p; p++)
        if (!strchr("0123456789-:TZ.smh", *p))
            return err_set(err, ERR_INVALID, "filters.%s has a bad bound '%.32s'", name, lo);
    for (const char *p = hi ? hi : ""; *p; p++)
        if (!strchr("0123456789-:TZ.smh", *p))
            return err_set(err, ERR_INVALID, "filters.%s has a bad bound '%.32s'", name, hi);
    if (!lo && !hi)
        return 0;
    if (lo && hi)
        (void)snprintf(text, sizeof(text), "%s:%.60s..%.60s", field, lo, hi);
    else if (lo)
        (void)snprintf(text, sizeof(text), "%s:>=%.60s", field, lo);
    else
        (void)snprintf(text, sizeof(text), "%s:<=%.60s", field, hi);
    if (search_query_parse(text, strlen(text), &r, &pos, &e) < 0)
        return err_set(err, ERR_INVALID, "filters.%s: %s", name, e.msg);
    search_query_and(q, search_query_take(&r));
    return 0;
}

static int range_bound(json_t *o, const char *name, const char *key, const char **out, char *tmp,
                       size_t tmpn, struct err *err)
{
    json_t *v = json_object_get(o, key);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_string(v) && json_string_length(v) <= 60) {
        *out = json_string_value(v);
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        (void)snprintf(tmp, tmpn, "%lldms", (long long)json_integer_value(v));
        *out = tmp;
        return 0;
    }
    return err_set(err, ERR_INVALID, "filters.%s.%s must be %s", name, key,
                   strcmp(name, "created") == 0 ? "a date (2024-11-01)"
                                                : "milliseconds or a duration (90s)");
}

static int parse_filters(json_t *f, struct search_query *q, struct err *err)
{
    const char *k;
    json_t *v;

    if (!f || json_is_null(f))
        return 0;
    if (!json_is_object(f))
        return err_set(err, ERR_INVALID, "filters must be an object");
    json_object_foreach(f, k, v)
    {
        size_t i;
        int done = 0;

        for (i = 0; i < ARRAY_LEN(key_filters) && !done; i++)
            if (strcmp(k, key_filters[i].name) == 0) {
                if (filter_values(q, k, key_filters[i].field, v, err) < 0)
                    return -1;
                done = 1;
            }
        if (done)
            continue;
        if (strcmp(k, "codec") == 0 || strcmp(k, "resolution") == 0) {
            /* through the query language, which knows their values */
            struct search_query r = {0};
            char text[80];
            size_t pos = 0;
            struct err e = {0};
            const char *val = json_string_value(v);

            if (!val || !*val || strlen(val) > 40 ||
                strspn(val, "abcdefghijklmnopqrstuvwxyz"
                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                            "0123456789_.-") != strlen(val))
                return err_set(err, ERR_INVALID,
                               "filters.%s must be a name of letters, digits, '.', '_' or '-'", k);
            (void)snprintf(text, sizeof(text), "%s:%s", k, val);
            if (search_query_parse(text, strlen(text), &r, &pos, &e) < 0)
                return err_set(err, ERR_INVALID, "filters.%s: %s", k, e.msg);
            search_query_and(q, search_query_take(&r));
            continue;
        }
        if (strcmp(k, "created") == 0 || strcmp(k, "duration") == 0) {
            int created = k[0] == 'c';
            const char *lo, *hi;
            char a[32], b[32];

            if (!json_is_object(v) ||
                api__json_known(v,
                                created ? (const char *const[]){"from", "to", NULL}
                                        : (const char *const[]){"min", "max", NULL},
                                created ? "filters.created." : "filters.duration.", err) < 0)
                return err->code ? -1
                                 : err_set(err, ERR_INVALID, "filters.%s must be an object", k);
            if (range_bound(v, k, created ? "from" : "min", &lo, a, sizeof(a), err) < 0 ||
                range_bound(v, k, created ? "to" : "max", &hi, b, sizeof(b), err) < 0)
                return -1;
            if (filter_range(q, k, k, lo, hi, err) < 0)
                return -1;
            continue;
        }
        return err_set(err, ERR_INVALID,
                       "filters.%.32s is not a filter (type, status, tags, program, category, "
                       "entities, objects, lang, codec, resolution, created, duration)",
                       k);
    }
    return 0;
}

/* ---- the response --------------------------------------------------------------------------- */

static json_t *highlight(struct search_analyzer *an, enum search_lang lang, const char *text,
                         const struct search_highlight *h, int words, int only_if_match)
{
    char *out = NULL;
    size_t len = 0;
    json_t *j;

    if (!text || !*text)
        return NULL;
    if (search_snippet(an, lang, text, strlen(text), h, words, &out, &len) < 0)
        return NULL;
    if (only_if_match && !strstr(out, "<em>")) {
        free(out);
        return NULL;
    }
    j = json_stringn(out, len);
    free(out);
    return j;
}

/* whether the highlighted word w (up to "</em>") is one of the title's highlighted words */
static int in_title(const char *w, const char *title)
{
    const char *end = strstr(w, "</em>");
    size_t n = end ? (size_t)(end - w) : strlen(w);

    for (const char *t = title; t && (t = strstr(t, "<em>")); t += 4) {
        const char *te = strstr(t + 4, "</em>");

        if (te && (size_t)(te - t - 4) == n && strncasecmp(t + 4, w, n) == 0)
            return 1;
    }
    return 0;
}

/* how telling a snippet is: its matched words, twice for those the title does not show */
static int ems(json_t *j, const char *title)
{
    int n = 0;

    for (const char *s = j ? json_string_value(j) : NULL; s && (s = strstr(s, "<em>")); s += 4)
        n += in_title(s + 4, title) ? 1 : 2;
    return n;
}

struct seg_find {
    const char *title; /* the highlighted title */
    struct search_analyzer *an;
    enum search_lang lang;
    const struct search_highlight *h;
    json_t *best;
    int best_n;
    int64_t start_ms;
    int last;
};

static int seg_match(void *ctx, const struct cat_segment *s)
{
    struct seg_find *f = ctx;
    json_t *t = highlight(f->an, f->lang, s->text, f->h, SNIPPET_WORDS, 1);
    int n = ems(t, f->title);

    f->last = s->idx;
    if (t && n > f->best_n) {
        json_decref(f->best);
        f->best = t;
        f->best_n = n;
        f->start_ms = s->start_ms;
    } else {
        json_decref(t);
    }
    return 0;
}

/*
 * The asset hit's highlights: its title, and of its description, OCR text and transcript
 * (the best segment, with the moment it is said) the one with the most matched words.
 */
static json_t *asset_highlights(struct search_analyzer *an, struct catalog *cat,
                                const struct cat_asset *a, const struct search_highlight *h)
{
    enum search_lang lang = search_doc_lang(an, a->language, a->title, a->description);
    json_t *o = json_object(), *t, *ai, *desc, *ocr;
    struct seg_find f = {NULL, an, lang, h, NULL, 0, 0, -1};
    struct err e = {0};
    int nd, no;

    if ((t = highlight(an, lang, a->title, h, TITLE_WORDS, 1))) {
        json_object_set_new(o, "title", t);
        f.title = json_string_value(t);
    }
    desc = highlight(an, lang, a->description, h, SNIPPET_WORDS, 1);
    ai = a->ai_metadata ? json_loads(a->ai_metadata, 0, NULL) : NULL;
    ocr = ai ? highlight(an, lang, json_string_value(json_object_get(ai, "ocr_text")), h,
                         SNIPPET_WORDS, 1)
             : NULL;
    json_decref(ai);
    /* the first segments (bounded for long programmes): the best matching one */
    for (int page = 0; page < 3; page++) {
        int before = f.last;

        if (cat_segments_list(cat, a->id, f.last, 200, seg_match, &f, &e) < 0 || f.last == before)
            break;
    }
    nd = ems(desc, f.title);
    no = ems(ocr, f.title);
    if (desc && nd >= no && nd >= f.best_n) {
        json_object_set_new(o, "description", desc);
        desc = NULL;
    } else if (ocr && no >= f.best_n) {
        json_object_set_new(o, "ocr_text", ocr);
        ocr = NULL;
    } else if (f.best) {
        json_t *tr = json_object();

        json_object_set_new(tr, "text", f.best);
        json_object_set_new(tr, "start_ms", json_integer(f.start_ms));
        json_object_set_new(o, "transcript", tr);
        f.best = NULL;
    }
    json_decref(desc);
    json_decref(ocr);
    json_decref(f.best);
    return o;
}

static json_t *facets_json(const struct cat_search_result *r, unsigned want)
{
    json_t *o = json_object();

    for (int k = 0; k < CAT_FACET_COUNT; k++) {
        json_t *arr;

        if (!(want & (1u << k)))
            continue;
        arr = json_array();
        for (size_t i = 0; i < r->nfacets[k]; i++) {
            json_t *v = json_object();

            json_object_set_new(v, "value", json_string(r->facets[k][i].value));
            json_object_set_new(v, "count", json_integer(r->facets[k][i].count));
            json_array_append_new(arr, v);
        }
        json_object_set_new(o, cat_facet_name((enum cat_facet)k), arr);
    }
    return o;
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int parse_facets(json_t *f, unsigned *out, struct err *err)
{
    size_t i;
    json_t *v;

    *out = 0;
    if (!f || json_is_null(f))
        return 0;
    if (!json_is_array(f))
        return err_set(err, ERR_INVALID, "facets must be an array of facet names");
    json_array_foreach(f, i, v)
    {
        int k = json_is_string(v) ? cat_facet_parse(json_string_value(v)) : -1;

        if (k < 0)
            return err_set(err, ERR_INVALID,
                           "facets[%zu] is not one of type, category, program, tags, entities, "
                           "objects, created_year, created_month",
                           i);
        *out |= 1u << k;
    }
    return 0;
}

static int parse_enum(json_t *body, const char *name, const char *const *names, int def, int *out,
                      struct err *err)
{
    json_t *v = json_object_get(body, name);

    *out = def;
    if (!v || json_is_null(v))
        return 0;
    for (int i = 0; json_is_string(v) && names[i]; i++)
        if (strcmp(json_string_value(v), names[i]) == 0) {
            *out = i;
            return 0;
        }
    return err_set(err, ERR_INVALID, "%s must be one of %s%s%s%s%s", name, names[0],
                   names[1] ? ", " : "", names[1] ? names[1] : "", names[2] ? ", " : "",
                   names[2] ? names[2] : "");
}

static int parse_int(json_t *body, const char *name, int lo, int hi, int def, int *out,
                     struct err *err)
{
    json_t *v = json_object_get(body, name);

    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return err_set(err, ERR_INVALID, "%s must be an integer from %d to %d", name, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* a parse error at a position: 400 with the position as a member */
static void send_query_err(struct http_req *req, const struct err *in, size_t pos, int have_pos)
{
    json_t *extra = json_object();
    struct err copy = *in, *e = &copy;

    copy.code = ERR_INVALID; /* too many terms or too deep is a query to rewrite: 400 too */
    if (have_pos)
        json_object_set_new(extra, "position", json_integer((json_int_t)pos));
    http_send_problem_extra(req, e, extra);
    json_decref(extra);
}

static json_t *hit_json(struct search_analyzer *an, struct catalog *cat,
                        const struct cat_search_hit *h, const struct search_highlight *hl,
                        enum cat_search_scope scope, enum cat_search_sort sort)
{
    json_t *o = json_object();
    struct cat_asset a;
    struct err e = {0};

    memset(&a, 0, sizeof(a));
    if (cat_asset_get(cat, h->asset_id, &a, &e) < 0) {
        json_decref(o);
        return NULL; /* deleted meanwhile */
    }
    if (sort == CAT_SORT_RELEVANCE)
        json_object_set_new(o, "score", json_real(h->score));
    if (scope == CAT_SCOPE_TRANSCRIPT) {
        enum search_lang lang = search_doc_lang(an, a.language, a.title, a.description);
        json_t *asset = json_object(), *t;

        json_object_set_new(o, "asset_id", json_string(h->asset_id));
        json_object_set_new(asset, "id", json_string(a.id));
        json_object_set_new(asset, "type", json_string(a.type));
        json_object_set_new(asset, "title",
                            a.title && *a.title ? json_string(a.title) : json_null());
        json_object_set_new(asset, "duration_ms",
                            a.duration_ms >= 0 ? json_integer(a.duration_ms) : json_null());
        json_object_set_new(o, "asset", asset);
        json_object_set_new(o, "idx", json_integer(h->idx));
        json_object_set_new(o, "start_ms", json_integer(h->start_ms));
        json_object_set_new(o, "end_ms", json_integer(h->end_ms));
        json_object_set_new(o, "speaker", h->speaker[0] ? json_string(h->speaker) : json_null());
        json_object_set_new(o, "confidence",
                            h->confidence >= 0 ? json_real(h->confidence) : json_null());
        t = highlight(an, lang, h->text, hl, 1000, 0);
        json_object_set_new(o, "text", t ? t : json_string(h->text ? h->text : ""));
    } else {
        json_object_set_new(o, "asset", api__asset_json(&a));
        json_object_set_new(o, "highlights", asset_highlights(an, cat, &a, hl));
    }
    cat_asset_release(&a);
    return o;
}

void api__search(struct http_req *req, const char *const *params)
{
    static const char *const fields[] = {"q",      "filters", "facets", "facet_size",     "sort",
                                         "cursor", "size",    "scope",  "min_confidence", "profile",
                                         NULL};
    static const char *const sorts[] = {"relevance", "newest", "oldest", NULL};
    static const char *const scopes[] = {"assets", "transcript", NULL};
    struct api_state *st = api__state(req);
    json_t *body = st->body, *resp, *hits, *v;
    struct search_query q = {0};
    struct cat_search s = {0};
    struct cat_search_result r = {0};
    struct search_analyzer *an;
    const char *text = NULL, *cursor = NULL;
    size_t pos = 0;
    int sort, scope, have_sort;
    int64_t t0 = now_us();
    struct err e = {0};

    (void)params;
    if (api__json_known(body, fields, "", &e) < 0)
        goto fail;
    if (api__json_string(body, "q", 0, SEARCH_QUERY_MAX * 4, API_NULLABLE | API_MULTILINE, &text,
                         &e) < 0)
        goto fail;
    if (text && strlen(text) > SEARCH_QUERY_MAX) {
        err_set(&e, ERR_INVALID, "q is %zu bytes; a query has at most %d", strlen(text),
                SEARCH_QUERY_MAX);
        goto fail;
    }
    if (text && search_query_parse(text, strlen(text), &q, &pos, &e) < 0) {
        send_query_err(req, &e, pos, 1);
        return;
    }
    if (parse_filters(json_object_get(body, "filters"), &q, &e) < 0 ||
        parse_facets(json_object_get(body, "facets"), &s.facets, &e) < 0 ||
        parse_int(body, "facet_size", 1, 100, 10, &s.facet_size, &e) < 0 ||
        parse_int(body, "size", 1, CAT_SEARCH_SIZE_MAX, 20, &s.size, &e) < 0 ||
        parse_enum(body, "scope", scopes, CAT_SCOPE_ASSETS, &scope, &e) < 0 ||
        parse_enum(body, "sort", sorts, CAT_SORT_RELEVANCE, &sort, &e) < 0 ||
        api__json_string(body, "cursor", 1, 120, API_NULLABLE, &cursor, &e) < 0)
        goto fail;
    have_sort = json_object_get(body, "sort") && !json_is_null(json_object_get(body, "sort"));
    s.min_confidence = -1;
    v = json_object_get(body, "min_confidence");
    if (v && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1) {
            err_set(&e, ERR_INVALID, "min_confidence must be a number from 0 to 1");
            goto fail;
        }
        if (scope != CAT_SCOPE_TRANSCRIPT) {
            err_set(&e, ERR_INVALID, "min_confidence applies to the transcript scope");
            goto fail;
        }
        s.min_confidence = json_number_value(v);
    }
    if (scope == CAT_SCOPE_TRANSCRIPT && s.facets) {
        err_set(&e, ERR_INVALID,
                "facets count assets; the transcript scope returns segments (search the "
                "assets scope for facets)");
        goto fail;
    }
    /* without words there is nothing to rank: newest first */
    if (!have_sort && (!text || !*text))
        sort = CAT_SORT_NEWEST;
    s.root = q.root;
    s.scope = (enum cat_search_scope)scope;
    s.sort = (enum cat_search_sort)sort;
    s.cursor = cursor;
    s.role = st->who.role;
    if (cat_search(st->ctx->cat, &s, &r, &e) < 0) {
        const char *m = e.msg;
        int have_pos = strncmp(m, "position ", 9) == 0;

        search_query_release(&q);
        if (have_pos) {
            send_query_err(req, &e, (size_t)strtoul(m + 9, NULL, 10), 1);
            return;
        }
        api__send_err(req, &e);
        return;
    }
    an = analyzer_take(st->ctx, &e);
    if (!an) {
        cat_search_result_release(&r);
        goto fail;
    }
    {
        struct search_highlight hl = {(const char *const *)r.terms, r.nterms,
                                      (const char *const *)r.prefixes, r.nprefixes};
        json_t *total = json_object();

        hits = json_array();
        for (size_t i = 0; i < r.nhits; i++) {
            json_t *h = hit_json(an, st->ctx->cat, &r.hits[i], &hl, s.scope, s.sort);

            if (h)
                json_array_append_new(hits, h);
        }
        analyzer_give(st->ctx, an);
        resp = json_object();
        json_object_set_new(resp, "hits", hits);
        json_object_set_new(total, "value", json_integer(r.total));
        json_object_set_new(total, "exact", json_boolean(r.total_exact));
        json_object_set_new(resp, "total", total);
        if (s.facets) {
            json_object_set_new(resp, "facets", facets_json(&r, s.facets));
            json_object_set_new(resp, "facets_exact", json_boolean(r.facets_exact));
        }
        json_object_set_new(resp, "next_cursor",
                            r.next_cursor[0] ? json_string(r.next_cursor) : json_null());
        json_object_set_new(resp, "took_ms", json_real((double)(now_us() - t0) / 1000.0));
        if (json_is_true(json_object_get(body, "profile"))) {
            json_t *pr = json_object();

            json_object_set_new(pr, "plan_ms", json_real(r.ms_plan));
            json_object_set_new(pr, "candidates_ms", json_real(r.ms_candidates));
            json_object_set_new(pr, "total_ms", json_real(r.ms_total));
            json_object_set_new(pr, "facets_ms", json_real(r.ms_facets));
            json_object_set_new(resp, "profile", pr);
        }
    }
    cat_search_result_release(&r);
    search_query_release(&q);
    api__send_json(req, 200, resp);
    return;
fail:
    search_query_release(&q);
    api__send_err(req, &e);
}

struct suggest_ctx {
    json_t *arr;
};

static int suggest_one(void *ctx, const struct cat_suggestion *s)
{
    struct suggest_ctx *c = ctx;
    json_t *o = json_object();

    json_object_set_new(o, "kind", json_string(s->kind));
    json_object_set_new(o, "value", json_string(s->value));
    if (strcmp(s->kind, "title") == 0)
        json_object_set_new(o, "asset_id", json_string(s->asset_id));
    else
        json_object_set_new(o, "count", json_integer(s->count));
    json_array_append_new(c->arr, o);
    return 0;
}

void api__search_suggest(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    const char *q;
    struct suggest_ctx c;
    int64_t limit;
    json_t *resp;
    struct err e = {0};

    (void)params;
    if (api__query_string(req, "q", 0, 200, 0, &q, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (!q) {
        api__fail(req, ERR_INVALID, "query parameter 'q' is required (what has been typed)");
        return;
    }
    if (strlen(q) > 200) {
        api__fail(req, ERR_INVALID, "query parameter 'q' is %zu bytes; at most 200", strlen(q));
        return;
    }
    if (api__query_int(req, "limit", 1, SUGGEST_MAX, 10, &limit, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    c.arr = json_array();
    if (cat_search_suggest(st->ctx->cat, q, (int)limit, st->who.role, suggest_one, &c, &e) < 0) {
        json_decref(c.arr);
        api__send_err(req, &e);
        return;
    }
    resp = json_object();
    json_object_set_new(resp, "suggestions", c.arr);
    api__send_json(req, 200, resp);
}
