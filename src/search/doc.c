/*
 * The search document of an asset (search.h, docs/internals/search.md): what each index
 * column holds, made from the asset's own fields by the shared analyzer. Backends call
 * these from their write path (the SQLite catalog from its triggers), so every backend
 * indexes the same terms.
 */
#include "search/search.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define JSON_DEPTH_MAX 4

/* appends each term of a text, separated by spaces */
struct put_ctx {
    struct buf *out;
    int failed;
};

static int put_term(void *ctx, const struct search_token *t)
{
    struct put_ctx *p = ctx;
    struct err e = {0};

    if ((p->out->len && buf_add(p->out, " ", 1, &e) < 0) ||
        buf_add(p->out, t->term, t->len, &e) < 0) {
        p->failed = 1;
        return 1;
    }
    return 0;
}

int search_doc_terms(struct search_analyzer *a, enum search_lang lang, const char *text, size_t len,
                     struct buf *out)
{
    struct put_ctx p = {out, 0};

    if (text && len)
        search_analyze(a, lang, text, len, put_term, &p);
    return p.failed ? -1 : 0;
}

/* ---- language ----------------------------------------------------------------------------- */

static const char *const stop_es[] = {
    "de", "la",   "que",  "el",    "en",  "y",     "los",     "del",  "se",  "las",  "por",
    "un", "para", "con",  "una",   "su",  "al",    "lo",      "como", "mas", "pero", "sus",
    "le", "ya",   "esta", "entre", "sin", "sobre", "tambien", "hay",  "muy"};
static const char *const stop_en[] = {"the", "of",    "and",  "to",   "in",    "is",   "for",
                                      "on",  "that",  "with", "was",  "as",    "it",   "by",
                                      "at",  "from",  "be",   "this", "are",   "have", "has",
                                      "an",  "which", "will", "were", "after", "over", "its"};

struct detect {
    int es, en;
};

static int in_set(const char *w, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(w, set[i]) == 0)
            return 1;
    return 0;
}

static int count_stop(void *ctx, const struct search_token *t)
{
    struct detect *d = ctx;

    d->es += in_set(t->term, stop_es, ARRAY_LEN(stop_es));
    d->en += in_set(t->term, stop_en, ARRAY_LEN(stop_en));
    return 0;
}

enum search_lang search_doc_lang(struct search_analyzer *a, const char *language, const char *title,
                                 const char *description)
{
    struct detect d = {0, 0};

    if (language && *language)
        return search_lang_parse(language);
    if (title)
        search_analyze(a, SEARCH_LANG_NONE, title, strlen(title), count_stop, &d);
    if (description)
        search_analyze(a, SEARCH_LANG_NONE, description, strnlen(description, 4096), count_stop,
                       &d);
    if (d.es > d.en)
        return SEARCH_LANG_ES;
    if (d.en > d.es)
        return SEARCH_LANG_EN;
    return SEARCH_LANG_NONE;
}

/* ---- JSON fields -------------------------------------------------------------------------- */

json_t *search_doc_json(const char *json)
{
    json_t *j = json && *json ? json_loads(json, JSON_REJECT_DUPLICATES, NULL) : NULL;

    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* the text of a name-like value: a string, or an object's "name" or "label" */
static const char *name_of(json_t *v)
{
    json_t *n;

    if (json_is_string(v))
        return json_string_value(v);
    if (!json_is_object(v))
        return NULL;
    n = json_object_get(v, "name");
    if (!json_is_string(n))
        n = json_object_get(v, "label");
    return json_is_string(n) ? json_string_value(n) : NULL;
}

/* calls fn for a name-like value or each of an array of them */
typedef int (*name_fn)(void *ctx, const char *field, const char *name);

static int each_name(json_t *obj, const char *key, const char *field, name_fn fn, void *ctx)
{
    json_t *v = json_object_get(obj, key), *it;
    size_t i;
    const char *s;

    if (json_is_array(v)) {
        json_array_foreach(v, i, it)
        {
            if ((s = name_of(it)) && *s && fn(ctx, field, s) < 0)
                return -1;
        }
        return 0;
    }
    if ((s = name_of(v)) && *s)
        return fn(ctx, field, s);
    return 0;
}

/* the name-like fields of a document: field of the facet or key, object, JSON key */
static const struct {
    const char *field;
    int ai;
    const char *key;
} name_fields[] = {
    {"tag", 0, "tags"},        {"program", 0, "program"}, {"category", 0, "category"},
    {"entity", 1, "entities"}, {"object", 1, "objects"},  {"face", 1, "faces"},
    {"topic", 1, "topics"},
};

static int each_field_name(json_t *ed, json_t *ai, name_fn fn, void *ctx)
{
    for (size_t i = 0; i < ARRAY_LEN(name_fields); i++) {
        json_t *o = name_fields[i].ai ? ai : ed;

        if (o && each_name(o, name_fields[i].key, name_fields[i].field, fn, ctx) < 0)
            return -1;
    }
    return 0;
}

struct names_ctx {
    struct search_analyzer *a;
    struct buf *out;
};

static int name_terms(void *ctx, const char *field, const char *name)
{
    struct names_ctx *n = ctx;

    (void)field;
    return search_doc_terms(n->a, SEARCH_LANG_NONE, name, strlen(name), n->out);
}

int search_doc_names(struct search_analyzer *a, json_t *ed, json_t *aj, struct buf *out)
{
    struct names_ctx n = {a, out};

    return each_field_name(ed, aj, name_terms, &n);
}

/* every string of a JSON value but the name-like fields' (already in names), bounded */
static int json_text(struct search_analyzer *a, enum search_lang lang, json_t *v, int depth,
                     struct buf *out)
{
    const char *k;
    json_t *it;
    size_t i;

    if (depth > JSON_DEPTH_MAX)
        return 0;
    if (json_is_string(v))
        return search_doc_terms(a, lang, json_string_value(v), json_string_length(v), out);
    if (json_is_array(v)) {
        json_array_foreach(v, i, it)
        {
            if (json_text(a, lang, it, depth + 1, out) < 0)
                return -1;
        }
    } else if (json_is_object(v)) {
        json_object_foreach(v, k, it)
        {
            if (json_text(a, lang, it, depth + 1, out) < 0)
                return -1;
        }
    }
    return 0;
}

int search_doc_body(struct search_analyzer *a, enum search_lang lang, const char *description,
                    const char *filename, json_t *ed, struct buf *out)
{
    int rc = 0;

    if (description)
        rc = search_doc_terms(a, lang, description, strlen(description), out);
    if (rc == 0 && filename)
        rc = search_doc_terms(a, lang, filename, strlen(filename), out);
    if (rc == 0 && ed)
        rc = json_text(a, lang, ed, 0, out);
    return rc;
}

int search_doc_ai(struct search_analyzer *a, enum search_lang lang, json_t *aj,
                  const char *transcript, struct buf *out)
{
    json_t *ocr = aj ? json_object_get(aj, "ocr_text") : NULL;
    int rc = 0;

    if (json_is_string(ocr))
        rc = search_doc_terms(a, lang, json_string_value(ocr), json_string_length(ocr), out);
    if (rc == 0 && transcript)
        rc = search_doc_terms(a, lang, transcript, strlen(transcript), out);
    return rc;
}

/* ---- keys: the exact values filters match ------------------------------------------------- */

struct key_ctx {
    struct buf *out;
    int failed;
    size_t key_start, value_start;
};

static int key_part(void *ctx, const struct search_token *t)
{
    struct key_ctx *k = ctx;
    struct err e = {0};

    if (k->out->len - k->key_start + t->len + 1 > SEARCH_KEY_MAX)
        return 1;
    if ((k->out->len > k->value_start && buf_add(k->out, "_", 1, &e) < 0) ||
        buf_add(k->out, t->term, t->len, &e) < 0) {
        k->failed = 1;
        return 1;
    }
    return 0;
}

int search_key(struct search_analyzer *a, const char *field, const char *value, size_t len,
               struct buf *out)
{
    struct err e = {0};
    struct key_ctx k = {out, 0, out->len, 0};

    if (buf_adds(out, field, &e) < 0 || buf_add(out, "=", 1, &e) < 0)
        return -1;
    k.value_start = out->len;
    search_analyze(a, SEARCH_LANG_NONE, value, len, key_part, &k);
    if (k.failed)
        return -1;
    if (out->len == k.value_start) /* no letters or digits: the key of "nothing" */
        return buf_add(out, "_", 1, &e);
    return 0;
}

struct keys_ctx {
    struct search_analyzer *a;
    struct buf *out;
};

static int key_sep(struct buf *out)
{
    struct err e = {0};

    return out->len ? buf_add(out, " ", 1, &e) : 0;
}

static int name_key(void *ctx, const char *field, const char *name)
{
    struct keys_ctx *k = ctx;

    if (strcmp(field, "topic") == 0)
        return 0;
    if (key_sep(k->out) < 0)
        return -1;
    return search_key(k->a, field, name, strlen(name), k->out);
}

const char *search_resolution(int64_t width, int64_t height)
{
    int64_t s = width < height ? width : height;

    if (width <= 0 || height <= 0)
        return NULL;
    return s < 720 ? "sd" : s < 1080 ? "hd" : s < 2160 ? "fullhd" : "uhd";
}

int search_doc_keys(struct search_analyzer *a, const char *type, const char *status,
                    enum search_lang lang, int64_t created_ms, json_t *ed, json_t *aj,
                    const char *video_codec, const char *audio_codec, int64_t width, int64_t height,
                    struct buf *out)
{
    const char *res = search_resolution(width, height);
    struct keys_ctx k = {a, out};
    struct err e = {0};
    time_t t = (time_t)(created_ms / 1000);
    struct tm tm;
    int rc = 0;

    gmtime_r(&t, &tm);
    if (key_sep(out) < 0 ||
        buf_addf(out, &e, "type=%s status=%s lang=%s year=%04d month=%04d%02d", type ? type : "_",
                 status ? status : "_", lang == SEARCH_LANG_NONE ? "_" : search_lang_code(lang),
                 tm.tm_year + 1900, tm.tm_year + 1900, tm.tm_mon + 1) < 0)
        rc = -1;
    if (rc == 0)
        rc = each_field_name(ed, aj, name_key, &k);
    if (rc == 0 && video_codec && *video_codec)
        rc = name_key(&k, "codec", video_codec);
    if (rc == 0 && audio_codec && *audio_codec)
        rc = name_key(&k, "codec", audio_codec);
    if (rc == 0 && res)
        rc = buf_addf(out, &e, " resolution=%s", res);
    return rc;
}

/* ---- facets: the display values counted for a result set ---------------------------------- */

static int facet_put(void *ctx, const char *field, const char *name)
{
    struct buf *out = ctx;
    struct err e = {0};
    size_t n = strnlen(name, 200);

    if (strcmp(field, "face") == 0 || strcmp(field, "topic") == 0)
        return 0;
    if (buf_adds(out, field, &e) < 0 || buf_add(out, "\t", 1, &e) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = name[i] == '\t' || name[i] == '\n' ? ' ' : name[i];

        if (buf_add(out, &c, 1, &e) < 0)
            return -1;
    }
    return buf_add(out, "\n", 1, &e);
}

int search_doc_facets(json_t *ed, json_t *aj, struct buf *out)
{
    return each_field_name(ed, aj, facet_put, out);
}

/* ---- the distinct terms of a document (the vocabulary of prefix queries) ------------------ */

struct term_ref {
    const char *p;
    size_t n;
};

int search_terms_distinct(const char *const *texts, size_t ntexts,
                          int (*fn)(void *ctx, const char *term, size_t len), void *ctx)
{
    size_t cap = 1024, used = 0;
    struct term_ref *set = xcalloc(cap, sizeof(*set));
    int rc = 0;

    for (size_t t = 0; t < ntexts && rc == 0; t++) {
        const char *p = texts[t];

        while (p && *p && rc == 0) {
            const char *e = strchr(p, ' ');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            uint64_t h = 14695981039346656037ull;
            size_t i;

            for (size_t k = 0; k < n; k++)
                h = (h ^ (unsigned char)p[k]) * 1099511628211ull;
            if ((used + 1) * 2 > cap) {
                size_t ncap = cap * 2;
                struct term_ref *bigger = xcalloc(ncap, sizeof(*set));

                for (size_t k = 0; k < cap; k++)
                    if (set[k].p) {
                        uint64_t g = 14695981039346656037ull;

                        for (size_t m = 0; m < set[k].n; m++)
                            g = (g ^ (unsigned char)set[k].p[m]) * 1099511628211ull;
                        for (i = g & (ncap - 1); bigger[i].p; i = (i + 1) & (ncap - 1))
                            ;
                        bigger[i] = set[k];
                    }
                free(set);
                set = bigger;
                cap = ncap;
            }
            for (i = h & (cap - 1); set[i].p; i = (i + 1) & (cap - 1))
                if (set[i].n == n && memcmp(set[i].p, p, n) == 0)
                    break;
            if (!set[i].p && n > 0) {
                set[i].p = p;
                set[i].n = n;
                used++;
                rc = fn(ctx, p, n);
            }
            p = e ? e + 1 : NULL;
        }
    }
    free(set);
    return rc;
}
