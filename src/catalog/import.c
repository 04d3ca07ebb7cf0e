/*
 * Bulk import of asset records (acervod import; docs/operations.md): one JSON object per
 * line, the shape bench/gen-corpus writes and a legacy catalogue can be converted to.
 * Each record becomes a metadata-only asset (no master) with its editorial fields, AI
 * enrichment and transcript, written in batches of one transaction each; the search index
 * follows inside the same transactions.
 */
#include "catalog/catalog.h"
#include "search/search.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const types[] = {"video", "audio", "image", NULL};
/* an imported record has no master: nothing for an upload or an ingest to finish */
static const char *const statuses[] = {"ready", "failed", "archived", NULL};

static int in(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return 1;
    return 0;
}

void cat_import_release(struct cat_import *r)
{
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i].text);
    free(r->segs);
    free(r->title);
    free(r->description);
    free(r->filename);
    free(r->mime_type);
    free(r->editorial);
    free(r->ai);
    free(r->t_title);
    free(r->t_names);
    free(r->t_body);
    free(r->t_ai);
    free(r->t_keys);
    free(r->facets);
    for (size_t i = 0; i < r->nnames * 3; i++)
        free(r->names[i]);
    free(r->names);
    memset(r, 0, sizeof(*r));
}

static const char *str(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);

    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int opt_str(json_t *o, const char *k, size_t max, char **out, struct err *err)
{
    json_t *v = json_object_get(o, k);

    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v) || json_string_length(v) > max)
        return err_set(err, ERR_INVALID, "'%s' must be a string of at most %zu bytes", k, max);
    *out = xstrndup(json_string_value(v), json_string_length(v));
    return 0;
}

/* 2024-11-03T18:22:41Z (util_time_iso_parse), or a date alone (its midnight, UTC) -> ms */
static int parse_time(const char *s, int64_t *out)
{
    char full[32];
    int64_t secs;
    int y, mo, d, n = 0;

    if (util_time_iso_parse(s, &secs) == 0) {
        *out = secs * 1000;
        return 0;
    }
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10 || s[n] != '\0')
        return -1;
    (void)snprintf(full, sizeof(full), "%.10sT00:00:00Z", s);
    if (util_time_iso_parse(full, &secs) < 0)
        return -1;
    *out = secs * 1000;
    return 0;
}

static int segments(json_t *arr, struct cat_import *r, struct err *err)
{
    char label[48];
    json_t *s;
    size_t i;

    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr) || json_array_size(arr) > CAT_MAX_SEGMENTS)
        return err_set(err, ERR_INVALID, "'transcript' must be an array of at most %d segments",
                       CAT_MAX_SEGMENTS);
    r->segs = xcalloc(json_array_size(arr) + 1, sizeof(*r->segs));
    json_array_foreach(arr, i, s)
    {
        struct cat_segment *g = &r->segs[i];
        json_t *c = json_object_get(s, "confidence");
        const char *text = str(s, "text"), *spk = str(s, "speaker");

        if (!json_is_object(s) || !text || !json_is_integer(json_object_get(s, "start_ms")) ||
            !json_is_integer(json_object_get(s, "end_ms")))
            return err_set(err, ERR_INVALID,
                           "transcript[%zu] needs start_ms, end_ms (integers) and text", i);
        g->idx = (int)i;
        g->start_ms = json_integer_value(json_object_get(s, "start_ms"));
        g->end_ms = json_integer_value(json_object_get(s, "end_ms"));
        g->confidence = json_is_number(c) ? json_number_value(c) : -1;
        (void)snprintf(g->speaker, sizeof(g->speaker), "%s", spk ? spk : "");
        g->text = xstrdup(text);
        r->nsegs++;
        (void)snprintf(label, sizeof(label), "transcript[%zu]", i);
        if (cat_segment_check(g, label, err) < 0)
            return -1;
    }
    return 0;
}

/* the members of o named in keys, copied into a new object (those present and not null) */
static json_t *pick(json_t *o, const char *const *keys)
{
    json_t *out = json_object();

    for (; *keys; keys++) {
        json_t *v = json_object_get(o, *keys);

        if (v && !json_is_null(v))
            json_object_set(out, *keys, v);
    }
    return out;
}

int cat_import_parse(const char *line, size_t len, struct cat_import *r, struct err *err)
{
    static const char *const ed_keys[] = {"tags", "category", "program", "broadcast_date", NULL};
    static const char *const ai_keys[] = {"entities", "objects", "faces",
                                          "ocr_text", "topics",  NULL};
    json_error_t je;
    json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je), *ed = NULL, *ai = NULL, *v;
    const char *s;
    int rc = -1;

    memset(r, 0, sizeof(*r));
    r->duration_ms = r->width = r->height = -1;
    if (!o || !json_is_object(o)) {
        err_set(err, ERR_INVALID, "not a JSON object: %s", o ? "another JSON value" : je.text);
        goto out;
    }
    s = str(o, "id");
    if (s && !util_uuid_valid(s)) {
        err_set(err, ERR_INVALID, "'id' is not a UUID");
        goto out;
    }
    if (s)
        (void)snprintf(r->id, sizeof(r->id), "%s", s);
    else
        util_uuid7(r->id);
    s = str(o, "type");
    if (!s || !in(s, types)) {
        err_set(err, ERR_INVALID, "'type' must be video, audio or image");
        goto out;
    }
    (void)snprintf(r->type, sizeof(r->type), "%s", s);
    s = str(o, "status");
    if (s && !in(s, statuses)) {
        err_set(err, ERR_INVALID,
                "'status' '%.32s' cannot be imported: a record without a master is ready, "
                "archived or failed",
                s);
        goto out;
    }
    (void)snprintf(r->status, sizeof(r->status), "%s", s ? s : "ready");
    s = str(o, "lang");
    if (!s)
        s = str(o, "language");
    if (s && (strlen(s) < 2 || strlen(s) > 15)) {
        err_set(err, ERR_INVALID, "'lang' '%.32s' is not a language code", s);
        goto out;
    }
    (void)snprintf(r->language, sizeof(r->language), "%s", s ? s : "");
    if (opt_str(o, "title", 4000, &r->title, err) < 0 ||
        opt_str(o, "description", 80000, &r->description, err) < 0 ||
        opt_str(o, "filename", 2000, &r->filename, err) < 0 ||
        opt_str(o, "mime_type", 127, &r->mime_type, err) < 0)
        goto out;
    if (!r->filename)
        r->filename = xstrdup("imported");
    if (!r->mime_type)
        r->mime_type = xstrdup(strcmp(r->type, "video") == 0   ? "video/mp4"
                               : strcmp(r->type, "audio") == 0 ? "audio/mpeg"
                                                               : "image/jpeg");
    s = str(o, "created_at");
    r->created_at = util_now_ms();
    if (s && parse_time(s, &r->created_at) < 0) {
        err_set(err, ERR_INVALID, "'created_at' '%.40s' is not a UTC time (2024-11-03T18:22:41Z)",
                s);
        goto out;
    }
    v = json_object_get(o, "duration_ms");
    if (json_is_integer(v) && json_integer_value(v) >= 0)
        r->duration_ms = json_integer_value(v);
    v = json_object_get(o, "width");
    if (json_is_integer(v) && json_integer_value(v) > 0)
        r->width = json_integer_value(v);
    v = json_object_get(o, "height");
    if (json_is_integer(v) && json_integer_value(v) > 0)
        r->height = json_integer_value(v);
    s = str(o, "video_codec");
    (void)snprintf(r->video_codec, sizeof(r->video_codec), "%s", s ? s : "");
    v = json_object_get(o, "size");
    r->size = json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : 0;
    ed = json_is_object(json_object_get(o, "editorial_metadata"))
             ? json_deep_copy(json_object_get(o, "editorial_metadata"))
             : json_object();
    {
        json_t *more = pick(o, ed_keys);

        json_object_update(ed, more);
        json_decref(more);
    }
    ai = pick(o, ai_keys);
    r->editorial = json_dumps(ed, JSON_COMPACT);
    r->ai = json_dumps(ai, JSON_COMPACT);
    if (!r->editorial || !r->ai || strlen(r->editorial) > 64 * 1024 || strlen(r->ai) > 1 << 20) {
        err_set(err, ERR_INVALID, "the editorial (64 KiB) or AI (1 MiB) fields are too large");
        goto out;
    }
    if (segments(json_object_get(o, "transcript"), r, err) < 0)
        goto out;
    rc = 0;
out:
    json_decref(ed);
    json_decref(ai);
    json_decref(o);
    if (rc < 0)
        cat_import_release(r);
    return rc;
}

/* ---- analysis for the index (the view search_src and search_names, in C) ---- */

static char *terms_of(struct buf *b)
{
    char *s = buf_detach(b, NULL);

    return s ? s : xstrdup("");
}

/* characters, as SQLite's length() counts them */
static size_t chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void name_add(struct cat_import *r, const char *kind, const char *value,
                     struct search_analyzer *an)
{
    struct buf k;
    size_t n = strlen(value);

    if (n < 1 || chars(value) > 200)
        return;
    for (size_t i = 0; i < r->nnames; i++) /* distinct per asset */
        if (strcmp(r->names[3 * i], kind) == 0 && strcmp(r->names[3 * i + 1], value) == 0)
            return;
    buf_init(&k, 1 << 20);
    search_doc_terms(an, SEARCH_LANG_NONE, value, n, &k);
    r->names = xrealloc(r->names, (r->nnames + 1) * 3 * sizeof(*r->names));
    r->names[3 * r->nnames] = xstrdup(kind);
    r->names[3 * r->nnames + 1] = xstrdup(value);
    r->names[3 * r->nnames + 2] = terms_of(&k);
    r->nnames++;
}

int cat_import_analyze(struct cat_import *r, struct search_analyzer *an, struct err *err)
{
    json_t *ed = search_doc_json(r->editorial), *ai = search_doc_json(r->ai), *v, *it;
    enum search_lang lang = search_doc_lang(an, r->language, r->title, r->description);
    struct buf b, tr;
    size_t i;
    int rc = 0;

    (void)snprintf(r->lang, sizeof(r->lang), "%s",
                   lang == SEARCH_LANG_NONE ? "" : search_lang_code(lang));
    buf_init(&b, 256u << 20);
    if (r->title)
        rc |= search_doc_terms(an, lang, r->title, strlen(r->title), &b);
    r->t_title = terms_of(&b);
    rc |= search_doc_names(an, ed, ai, &b);
    r->t_names = terms_of(&b);
    rc |= search_doc_body(an, lang, r->description, r->filename, ed, &b);
    r->t_body = terms_of(&b);
    /* the transcript as the view joins it: segment texts in idx order, one space apart */
    buf_init(&tr, 256u << 20);
    for (i = 0; i < r->nsegs; i++) {
        if (i)
            rc |= buf_add(&tr, " ", 1, err);
        rc |= buf_adds(&tr, r->segs[i].text, err);
    }
    rc |= search_doc_ai(an, lang, ai, r->nsegs ? (tr.buf ? tr.buf : "") : NULL, &b);
    buf_release(&tr);
    r->t_ai = terms_of(&b);
    rc |= search_doc_keys(an, r->type, r->status, lang, r->created_at, ed, ai, r->video_codec, NULL,
                          r->width, r->height, &b);
    r->t_keys = terms_of(&b);
    rc |= search_doc_facets(ed, ai, &b);
    r->facets = terms_of(&b);
    /* suggestions: as the view search_names lists them */
    v = ed ? json_object_get(ed, "tags") : NULL;
    if (json_is_array(v))
        json_array_foreach(v, i, it) if (json_is_string(it))
            name_add(r, "tag", json_string_value(it), an);
    v = ed ? json_object_get(ed, "program") : NULL;
    if (json_is_string(v))
        name_add(r, "program", json_string_value(v), an);
    v = ed ? json_object_get(ed, "category") : NULL;
    if (json_is_string(v))
        name_add(r, "category", json_string_value(v), an);
    v = ai ? json_object_get(ai, "entities") : NULL;
    if (json_is_array(v))
        json_array_foreach(v, i, it)
        {
            json_t *nm = json_object_get(it, "name");

            if (json_is_string(nm))
                name_add(r, "entity", json_string_value(nm), an);
            else if (json_is_string(it))
                name_add(r, "entity", json_string_value(it), an);
        }
    json_decref(ed);
    json_decref(ai);
    if (rc)
        return err_set(err, ERR_LIMIT, "the record's search document is too large");
    return 0;
}

int cat_import_batch(struct catalog *c, struct cat_import *v, size_t n,
                     const struct cat_vocab *vocab, size_t *inserted, struct err *err)
{
    *inserted = 0;
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!v[i].t_title)
            return err_set(err, ERR_INTERNAL, "import record %zu was not analysed", i);
    return c->ops->search->import(c, v, n, vocab, inserted, err);
}

/* ---- the vocabulary of batches ---- */

struct vslot {
    char *p; /* owned, NUL-terminated */
    size_t len;
    int64_t n;
};

struct cat_vocab_acc {
    struct vslot *v;
    size_t cap, used;
};

static uint64_t vhash(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ull;

    for (size_t k = 0; k < n; k++)
        h = (h ^ (unsigned char)p[k]) * 1099511628211ull;
    return h;
}

static void vgrow(struct cat_vocab_acc *c)
{
    struct vslot *old = c->v;
    size_t ocap = c->cap;

    c->cap = ocap ? ocap * 2 : 4096;
    c->v = xcalloc(c->cap, sizeof(*c->v));
    for (size_t j = 0; j < ocap; j++)
        if (old[j].p) {
            size_t i = vhash(old[j].p, old[j].len) & (c->cap - 1);

            while (c->v[i].p)
                i = (i + 1) & (c->cap - 1);
            c->v[i] = old[j];
        }
    free(old);
}

static int vterm(void *ctx, const char *p, size_t n)
{
    struct cat_vocab_acc *c = ctx;
    size_t i;

    if ((c->used + 1) * 2 > c->cap)
        vgrow(c);
    for (i = vhash(p, n) & (c->cap - 1); c->v[i].p; i = (i + 1) & (c->cap - 1))
        if (c->v[i].len == n && memcmp(c->v[i].p, p, n) == 0) {
            c->v[i].n++;
            return 0;
        }
    c->v[i] = (struct vslot){xstrndup(p, n), n, 1};
    c->used++;
    return 0;
}

struct cat_vocab_acc *cat_vocab_acc_new(void)
{
    return xcalloc(1, sizeof(struct cat_vocab_acc));
}

void cat_vocab_acc_add(struct cat_vocab_acc *acc, const struct cat_import *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *texts[] = {v[i].t_title, v[i].t_names, v[i].t_body, v[i].t_ai};

        search_terms_distinct(texts, ARRAY_LEN(texts), vterm, acc);
    }
}

size_t cat_vocab_acc_len(const struct cat_vocab_acc *acc)
{
    return acc->used;
}

void cat_vocab_acc_take(struct cat_vocab_acc *acc, struct cat_vocab *out)
{
    size_t m = 0;

    out->terms = xcalloc(acc->used + 1, sizeof(*out->terms));
    out->n = xcalloc(acc->used + 1, sizeof(*out->n));
    for (size_t j = 0; j < acc->cap; j++)
        if (acc->v[j].p) {
            out->terms[m] = acc->v[j].p;
            out->n[m++] = acc->v[j].n;
        }
    out->len = m;
    free(acc->v);
    memset(acc, 0, sizeof(*acc));
}

void cat_vocab_acc_free(struct cat_vocab_acc *acc)
{
    if (!acc)
        return;
    for (size_t j = 0; j < acc->cap; j++)
        free(acc->v[j].p);
    free(acc->v);
    free(acc);
}

void cat_vocab_release(struct cat_vocab *vocab)
{
    for (size_t i = 0; i < vocab->len; i++)
        free(vocab->terms[i]);
    free(vocab->terms);
    free(vocab->n);
    memset(vocab, 0, sizeof(*vocab));
}
