/*
 * gen-corpus: a deterministic corpus of N realistic news assets for the search
 * benchmarks, as JSON lines (one asset a line; the format is in bench/README.md,
 * "Search corpus").
 *
 *   gen-corpus --count N [--seed S] [--first K]
 *
 * Text is drawn from a Zipf-distributed vocabulary per language (Spanish 70%, English
 * 30%): function words first, then real news words with their inflected forms, then a
 * long synthetic tail, so that common words match most documents and rare ones a handful;
 * fixed phrases ("banco central", "climate change") are inserted whole. Categories bias
 * the words drawn, persons, places and organisations are Zipf-distributed too, and video
 * and audio carry 12-24 transcript segments with timestamps, speakers and confidences.
 * Each asset has its own random stream, seeded by the seed and its `seq`, so `--first K`
 * writes exactly the lines K..N of the full run (a large corpus can be made in pieces, in
 * parallel); created_at grows with seq over 2006-2026, denser in recent years.
 */
#include "words.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TAIL_WORDS   60000 /* synthetic words per language */
#define TAGS         3000
#define PERSONS      (ARRAY_LEN(first_names) * ARRAY_LEN(surnames) * ARRAY_LEN(surnames))
#define ZIPF_S       1.0
#define T_START      1136073600LL /* 2006-01-01T00:00:00Z */
#define T_END        1793491200LL /* 2026-11-01T00:00:00Z */

/* ---- random numbers: splitmix64 to seed, xoshiro256** to draw --------------------------- */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* uniform in [0, 1) */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* uniform in [lo, hi] */
static int rng_range(struct rng *r, int lo, int hi)
{
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

/* ---- Zipf sampling: Vose's alias method, O(1) a draw ---------------------------------------- */

struct alias {
    size_t n;
    double *prob;
    uint32_t *alias;
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);

    if (!p) {
        fprintf(stderr, "gen-corpus: out of memory\n");
        exit(1);
    }
    return p;
}

/* weights w[0..n-1] (not necessarily normalised) */
static void alias_init(struct alias *a, const double *w, size_t n)
{
    double sum = 0, *p = xmalloc(n * sizeof(*p));
    uint32_t *small = xmalloc(n * sizeof(*small)), *large = xmalloc(n * sizeof(*large));
    size_t ns = 0, nl = 0;

    for (size_t i = 0; i < n; i++)
        sum += w[i];
    a->n = n;
    a->prob = xmalloc(n * sizeof(*a->prob));
    a->alias = xmalloc(n * sizeof(*a->alias));
    for (size_t i = 0; i < n; i++) {
        p[i] = w[i] * (double)n / sum;
        if (p[i] < 1)
            small[ns++] = (uint32_t)i;
        else
            large[nl++] = (uint32_t)i;
    }
    while (ns && nl) {
        uint32_t s = small[--ns], l = large[--nl];

        a->prob[s] = p[s];
        a->alias[s] = l;
        p[l] = p[l] + p[s] - 1;
        if (p[l] < 1)
            small[ns++] = l;
        else
            large[nl++] = l;
    }
    while (nl)
        a->prob[large[--nl]] = 1;
    while (ns)
        a->prob[small[--ns]] = 1;
    free(p);
    free(small);
    free(large);
}

static void alias_zipf(struct alias *a, size_t n, double s)
{
    double *w = xmalloc(n * sizeof(*w));

    for (size_t i = 0; i < n; i++)
        w[i] = 1.0 / pow((double)(i + 1), s);
    alias_init(a, w, n);
    free(w);
}

static void alias_release(struct alias *a)
{
    free(a->prob);
    free(a->alias);
}

static size_t alias_draw(const struct alias *a, struct rng *r)
{
    size_t i = (size_t)(rng_next(r) % a->n);

    return rng_unit(r) < a->prob[i] ? i : a->alias[i];
}

/* ---- vocabularies --------------------------------------------------------------------------- */

/* A word of the vocabulary: its forms (one for function and tail words). */
struct word {
    const char *forms[8];
    int nforms;
    char *own; /* the bytes of the forms, when split from a spec */
};

struct lang {
    const char *code;
    struct word *words; /* function words, content lemmas, synthetic tail: by rank */
    size_t nwords, nfunction, ncontent;
    struct alias all;     /* every word */
    struct alias content; /* content and tail only (titles, tags) */
    const char *const *phrases;
    size_t nphrases;
    char *tail_text; /* the synthetic words' bytes */
};

static struct lang langs[2];

static void split_forms(const char *spec, struct word *w)
{
    char *copy = strdup(spec), *save = NULL;

    if (!copy) {
        fprintf(stderr, "gen-corpus: out of memory\n");
        exit(1);
    }
    w->nforms = 0;
    w->own = copy;
    for (char *t = strtok_r(copy, "|", &save); t && w->nforms < 8; t = strtok_r(NULL, "|", &save))
        w->forms[w->nforms++] = t;
}

static void lang_init(struct lang *l, const char *code, const char *const *fn, size_t nfn,
                      const char *const *ct, size_t nct, const char *const *syll, size_t nsyll,
                      const char *const *phrases, size_t nphrases, uint64_t seed)
{
    size_t i, at = 0;
    char *p;
    struct rng r;

    l->code = code;
    l->nfunction = nfn;
    l->ncontent = nct;
    l->nwords = nfn + nct + TAIL_WORDS;
    l->words = xmalloc(l->nwords * sizeof(*l->words));
    l->phrases = phrases;
    l->nphrases = nphrases;
    memset(l->words, 0, l->nwords * sizeof(*l->words));
    for (i = 0; i < nfn; i++) {
        l->words[at].forms[0] = fn[i];
        l->words[at++].nforms = 1;
    }
    for (i = 0; i < nct; i++)
        split_forms(ct[i], &l->words[at++]);
    l->tail_text = p = xmalloc(TAIL_WORDS * 32);
    rng_seed(&r, seed ^ 0x7461696cULL);
    for (i = 0; i < TAIL_WORDS; i++) {
        int n = rng_range(&r, 2, 4);

        l->words[at].forms[0] = p;
        l->words[at++].nforms = 1;
        for (int k = 0; k < n; k++) {
            const char *s = syll[rng_next(&r) % nsyll];

            memcpy(p, s, strlen(s));
            p += strlen(s);
        }
        *p++ = '\0';
    }
    alias_zipf(&l->all, l->nwords, ZIPF_S);
    alias_zipf(&l->content, l->nwords - nfn, ZIPF_S);
}

static void lang_release(struct lang *l)
{
    for (size_t i = 0; i < l->nwords; i++)
        free(l->words[i].own);
    free(l->words);
    free(l->tail_text);
    alias_release(&l->all);
    alias_release(&l->content);
}

static const char *word_form(const struct word *w, struct rng *r)
{
    if (w->nforms == 1 || rng_unit(r) < 0.7)
        return w->forms[0];
    return w->forms[1 + rng_next(r) % (uint64_t)(w->nforms - 1)];
}

/* ---- output -----------------------------------------------------------------------------------
 */

struct out {
    char *buf;
    size_t len, cap;
};

static void out_flush(struct out *o)
{
    if (o->len && fwrite(o->buf, 1, o->len, stdout) != o->len) {
        fprintf(stderr, "gen-corpus: write error: %s\n", strerror(errno));
        exit(1);
    }
    o->len = 0;
}

static void out_mem(struct out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap)
        out_flush(o);
    if (n > o->cap) {
        if (fwrite(s, 1, n, stdout) != n)
            exit(1);
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void out_s(struct out *o, const char *s)
{
    out_mem(o, s, strlen(s));
}

static void out_fmt(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void out_fmt(struct out *o, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    out_mem(o, tmp, n < 0 ? 0 : (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* a JSON string body (no quotes): our words hold no quotes, but nothing is assumed */
static void out_esc(struct out *o, const char *s)
{
    const char *start = s;

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\' || c < 0x20) {
            out_mem(o, start, (size_t)(s - start));
            out_fmt(o, "\\u%04x", c);
            start = s + 1;
        }
    }
    out_mem(o, start, (size_t)(s - start));
}

static void out_str(struct out *o, const char *s)
{
    out_s(o, "\"");
    out_esc(o, s);
    out_s(o, "\"");
}

/* ---- text ---------------------------------------------------------------------------------- */

struct text {
    char buf[8192];
    size_t len;
};

static void text_add(struct text *t, const char *w)
{
    size_t n = strlen(w);

    if (t->len + n + 2 >= sizeof(t->buf))
        return;
    if (t->len)
        t->buf[t->len++] = ' ';
    memcpy(t->buf + t->len, w, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

/* the lemmas a category favours: every 20th content lemma, offset by the category */
static const struct word *category_word(const struct lang *l, int cat, struct rng *r)
{
    size_t per = (l->ncontent + ARRAY_LEN(categories) - 1) / ARRAY_LEN(categories);
    size_t k = (size_t)cat + ARRAY_LEN(categories) * (rng_next(r) % per);

    if (k >= l->ncontent)
        k = (size_t)cat;
    return &l->words[l->nfunction + k];
}

/* n words of running text (function words included), category-biased, maybe a phrase */
static void text_words(struct text *t, const struct lang *l, int cat, int n, int titles,
                       struct rng *r)
{
    int phrase_at = rng_unit(r) < 0.2 ? rng_range(r, 0, n - 1) : -1;

    for (int i = 0; i < n; i++) {
        const struct word *w;

        if (i == phrase_at) {
            text_add(t, l->phrases[rng_next(r) % l->nphrases]);
            continue;
        }
        if (rng_unit(r) < 0.2)
            w = category_word(l, cat, r);
        else if (titles)
            w = &l->words[l->nfunction + alias_draw(&l->content, r)];
        else
            w = &l->words[alias_draw(&l->all, r)];
        text_add(t, word_form(w, r));
    }
}

static void person_name(size_t rank, char *out, size_t n)
{
    size_t nf = ARRAY_LEN(first_names), ns = ARRAY_LEN(surnames);

    snprintf(out, n, "%s %s %s", first_names[rank % nf], surnames[(rank / nf) % ns],
             surnames[(rank / nf / ns) % ns]);
}

/* a filename-safe slug of s: ASCII letters and digits, accents folded, '_' between words */
static void slug(const char *s, char *out, size_t n)
{
    static const struct {
        const char *from, *to;
    } fold[] = {{"á", "a"}, {"é", "e"}, {"í", "i"}, {"ó", "o"}, {"ú", "u"}, {"ü", "u"}, {"ñ", "n"},
                {"Á", "a"}, {"É", "e"}, {"Í", "i"}, {"Ó", "o"}, {"Ú", "u"}, {"Ñ", "n"}};
    size_t len = 0;

    while (*s && len + 2 < n) {
        size_t k;

        for (k = 0; k < ARRAY_LEN(fold); k++)
            if (strncmp(s, fold[k].from, strlen(fold[k].from)) == 0)
                break;
        if (k < ARRAY_LEN(fold)) {
            out[len++] = fold[k].to[0];
            s += strlen(fold[k].from);
        } else if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')) {
            out[len++] = *s++;
        } else if (*s >= 'A' && *s <= 'Z') {
            out[len++] = (char)(*s++ - 'A' + 'a');
        } else {
            if (len && out[len - 1] != '_')
                out[len++] = '_';
            s++;
        }
    }
    while (len && out[len - 1] == '_')
        len--;
    out[len] = '\0';
}

/* ---- one asset ------------------------------------------------------------------------------- */

struct shared {
    struct alias persons, places, orgs, programs, tags, objects, categories;
    uint64_t seed;
    int64_t count;
};

static const char *tag_name(const struct lang *l, size_t rank)
{
    /* the commonest tags are content lemmas, the rest tail words */
    if (rank < l->ncontent)
        return l->words[l->nfunction + rank].forms[0];
    return l->words[l->nfunction + l->ncontent + (rank - l->ncontent) % TAIL_WORDS].forms[0];
}

/* k distinct draws from a (fewer if a keeps repeating itself), into picked */
static int draw_distinct(const struct alias *a, struct rng *r, int k, size_t *picked)
{
    int n = 0;

    for (int tries = 0; n < k && tries < 4 * k; tries++) {
        size_t v = alias_draw(a, r);
        int seen = 0;

        for (int i = 0; i < n; i++)
            seen |= picked[i] == v;
        if (!seen)
            picked[n++] = v;
    }
    return n;
}

static void gen_asset(struct out *o, const struct shared *sh, int64_t seq)
{
    struct rng r;
    const struct lang *l;
    const char *type, *status, *ext;
    double u;
    int cat, ntags, nseg = 0, width = 0, height = 0;
    int64_t created, duration_ms = 0;
    struct text title = {.len = 0}, desc = {.len = 0};
    char stamp[32], day[16], name[160], fname[256], persons[3][96];
    size_t picked[8];
    int npersons;
    struct tm tm;
    time_t tt;

    title.buf[0] = desc.buf[0] = '\0';
    rng_seed(&r, sh->seed * 0x9e3779b97f4a7c15ULL + (uint64_t)seq);
    l = &langs[rng_unit(&r) < 0.7 ? 0 : 1];
    u = rng_unit(&r);
    type = u < 0.45 ? "video" : u < 0.85 ? "image" : "audio";
    u = rng_unit(&r);
    status = u < 0.97 ? "ready" : u < 0.99 ? "archived" : "failed";
    cat = (int)alias_draw(&sh->categories, &r);
    /* created_at: monotone in seq, density growing linearly with time */
    created = T_START + (int64_t)((double)(T_END - T_START) *
                                  sqrt(((double)(seq - 1) + rng_unit(&r)) / (double)sh->count));
    tt = (time_t)created;
    gmtime_r(&tt, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);

    text_words(&title, l, cat, rng_range(&r, 6, 12), 1, &r);
    if (title.buf[0] >= 'a' && title.buf[0] <= 'z')
        title.buf[0] = (char)(title.buf[0] - 'a' + 'A');
    text_words(&desc, l, cat, rng_range(&r, 20, 60), 0, &r);

    npersons = rng_range(&r, 0, 3);
    for (int i = 0; i < npersons; i++)
        person_name(alias_draw(&sh->persons, &r), persons[i], sizeof(persons[i]));

    out_fmt(o,
            "{\"seq\":%" PRId64 ",\"id\":\"%08" PRIx64 "-%04" PRIx64 "-7%03" PRIx64 "-8%03" PRIx64
            "-%012" PRIx64 "\",",
            seq, (uint64_t)(created * 1000) >> 16, (uint64_t)(created * 1000) & 0xffff,
            (uint64_t)seq >> 48 & 0xfff, (uint64_t)sh->seed & 0xfff,
            (uint64_t)seq & (uint64_t)0xffffffffffff);
    out_fmt(o, "\"lang\":\"%s\",\"type\":\"%s\",\"status\":\"%s\",\"title\":", l->code, type,
            status);
    out_str(o, title.buf);
    out_s(o, ",\"description\":");
    out_str(o, desc.buf);

    ext = strcmp(type, "video") == 0 ? "mp4" : strcmp(type, "image") == 0 ? "jpg" : "wav";
    slug(title.buf, name, 48);
    snprintf(fname, sizeof(fname), "%s_%.4s%.2s%.2s.%s", name, day, day + 5, day + 8, ext);
    out_s(o, ",\"filename\":");
    out_str(o, fname);

    out_s(o, ",\"tags\":[");
    ntags = draw_distinct(&sh->tags, &r, rng_range(&r, 2, 8), picked);
    for (int i = 0; i < ntags; i++) {
        if (i)
            out_s(o, ",");
        out_str(o, tag_name(l, picked[i]));
    }
    out_s(o, "],\"category\":");
    out_str(o, categories[cat]);
    if (strcmp(type, "image") != 0 && rng_unit(&r) < 0.8) {
        out_s(o, ",\"program\":");
        out_str(o, programs[alias_draw(&sh->programs, &r)]);
        out_fmt(o, ",\"broadcast_date\":\"%s\"", day);
    } else {
        out_s(o, ",\"program\":null,\"broadcast_date\":null");
    }
    out_fmt(o, ",\"created_at\":\"%s\"", stamp);

    if (strcmp(type, "video") == 0 || strcmp(type, "audio") == 0) {
        duration_ms = (int64_t)(exp(log(20.0) + rng_unit(&r) * (log(3600.0) - log(20.0))) * 1000);
        nseg = rng_range(&r, 12, 24);
    }
    if (strcmp(type, "video") == 0) {
        u = rng_unit(&r);
        if (created < 1262304000LL && u < 0.6) { /* before 2010: mostly SD */
            width = 720;
            height = 576;
        } else {
            width = u < 0.6 ? 1920 : u < 0.8 ? 1280 : u < 0.85 ? 3840 : 720;
            height = width == 1920 ? 1080 : width == 1280 ? 720 : width == 3840 ? 2160 : 576;
        }
    } else if (strcmp(type, "image") == 0) {
        u = rng_unit(&r);
        width = u < 0.4 ? 6000 : u < 0.8 ? 4000 : 1920;
        height = width == 6000 ? 4000 : width == 4000 ? 3000 : 1280;
    }
    if (duration_ms)
        out_fmt(o, ",\"duration_ms\":%" PRId64, duration_ms);
    else
        out_s(o, ",\"duration_ms\":null");
    if (width)
        out_fmt(o, ",\"width\":%d,\"height\":%d", width, height);
    else
        out_s(o, ",\"width\":null,\"height\":null");
    out_s(o, strcmp(type, "video") == 0 ? ",\"video_codec\":\"h264\"" : ",\"video_codec\":null");

    /* entities: persons, places, organisations */
    out_s(o, ",\"entities\":[");
    for (int i = 0; i < npersons; i++) {
        out_s(o, i ? ",{\"type\":\"person\",\"name\":" : "{\"type\":\"person\",\"name\":");
        out_str(o, persons[i]);
        out_s(o, "}");
    }
    for (int i = 0, n = rng_range(&r, 1, 2); i < n; i++) {
        out_s(o,
              npersons || i ? ",{\"type\":\"place\",\"name\":" : "{\"type\":\"place\",\"name\":");
        out_str(o, places[alias_draw(&sh->places, &r)]);
        out_s(o, "}");
    }
    for (int i = 0, n = rng_range(&r, 0, 2); i < n; i++) {
        out_s(o, ",{\"type\":\"org\",\"name\":");
        out_str(o, orgs[alias_draw(&sh->orgs, &r)]);
        out_s(o, "}");
    }
    out_s(o, "],\"objects\":[");
    if (strcmp(type, "video") == 0 || strcmp(type, "image") == 0)
        for (int i = 0, n = draw_distinct(&sh->objects, &r, rng_range(&r, 1, 5), picked); i < n;
             i++) {
            if (i)
                out_s(o, ",");
            out_str(o, objects[picked[i]]);
        }
    out_s(o, "],\"faces\":[");
    for (int i = 0; i < npersons && strcmp(type, "video") == 0; i++) {
        if (i)
            out_s(o, ",");
        out_str(o, persons[i]);
    }
    out_s(o, "]");
    if (strcmp(type, "video") == 0 && rng_unit(&r) < 0.4) {
        struct text ocr = {.len = 0};

        text_add(&ocr, l == &langs[0] ? "ÚLTIMA HORA:" : "BREAKING:");
        text_words(&ocr, l, cat, rng_range(&r, 3, 6), 1, &r);
        out_s(o, ",\"ocr_text\":");
        out_str(o, ocr.buf);
    } else {
        out_s(o, ",\"ocr_text\":null");
    }
    out_s(o, ",\"topics\":[");
    out_str(o, categories[cat]);
    if (rng_unit(&r) < 0.3) {
        out_s(o, ",");
        out_str(o, categories[alias_draw(&sh->categories, &r)]);
    }
    out_s(o, "],\"transcript\":");
    if (!nseg) {
        out_s(o, "null}\n");
        return;
    }
    out_s(o, "[");
    for (int i = 0; i < nseg; i++) {
        struct text seg = {.len = 0};
        int64_t start = duration_ms * i / nseg, end = duration_ms * (i + 1) / nseg;

        text_words(&seg, l, cat, rng_range(&r, 10, 30), 0, &r);
        if (npersons && rng_unit(&r) < 0.15)
            text_add(&seg, persons[rng_next(&r) % (uint64_t)npersons]);
        if (rng_unit(&r) < 0.1)
            text_add(&seg, places[alias_draw(&sh->places, &r)]);
        out_fmt(o,
                "%s{\"i\":%d,\"start_ms\":%" PRId64 ",\"end_ms\":%" PRId64
                ",\"speaker\":\"S%d\",\"confidence\":%.2f,\"text\":",
                i ? "," : "", i, start, end, rng_range(&r, 1, 4), 0.6 + 0.39 * sqrt(rng_unit(&r)));
        out_str(o, seg.buf);
        out_s(o, "}");
    }
    out_s(o, "]}\n");
}

/* ---- main ------------------------------------------------------------------------------------ */

static int usage(void)
{
    fprintf(stderr, "usage: gen-corpus --count N [--seed S] [--first K]\n"
                    "  writes assets K..N (default 1..N) as JSON lines on stdout\n");
    return 2;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;

    errno = 0;
    *out = strtoll(s, &end, 10);
    return errno || end == s || *end || *out < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct shared sh = {.seed = 42, .count = 0};
    int64_t first = 1, seed = 42;
    struct out o = {.cap = 1 << 20};

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            if (parse_i64(argv[++i], &sh.count) < 0 || sh.count < 1)
                return usage();
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            if (parse_i64(argv[++i], &seed) < 0)
                return usage();
        } else if (strcmp(argv[i], "--first") == 0 && i + 1 < argc) {
            if (parse_i64(argv[++i], &first) < 0 || first < 1)
                return usage();
        } else {
            return usage();
        }
    }
    if (!sh.count)
        return usage();
    sh.seed = (uint64_t)seed;
    lang_init(&langs[0], "es", es_function, ARRAY_LEN(es_function), es_content,
              ARRAY_LEN(es_content), es_syll, ARRAY_LEN(es_syll), es_phrases, ARRAY_LEN(es_phrases),
              sh.seed);
    lang_init(&langs[1], "en", en_function, ARRAY_LEN(en_function), en_content,
              ARRAY_LEN(en_content), en_syll, ARRAY_LEN(en_syll), en_phrases, ARRAY_LEN(en_phrases),
              sh.seed + 1);
    alias_zipf(&sh.persons, PERSONS, 1.1);
    alias_zipf(&sh.places, ARRAY_LEN(places), 1.0);
    alias_zipf(&sh.orgs, ARRAY_LEN(orgs), 1.0);
    alias_zipf(&sh.programs, ARRAY_LEN(programs), 0.9);
    alias_zipf(&sh.tags, TAGS, 1.0);
    alias_zipf(&sh.objects, ARRAY_LEN(objects), 1.2);
    alias_zipf(&sh.categories, ARRAY_LEN(categories), 0.7);
    o.buf = xmalloc(o.cap);
    for (int64_t seq = first; seq <= sh.count; seq++)
        gen_asset(&o, &sh, seq);
    out_flush(&o);
    free(o.buf);
    for (size_t i = 0; i < ARRAY_LEN(langs); i++)
        lang_release(&langs[i]);
    alias_release(&sh.persons);
    alias_release(&sh.places);
    alias_release(&sh.orgs);
    alias_release(&sh.programs);
    alias_release(&sh.tags);
    alias_release(&sh.objects);
    alias_release(&sh.categories);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "gen-corpus: write error: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
