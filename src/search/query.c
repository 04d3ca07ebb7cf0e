/*
 * The query language of POST /api/v1/search (search.h, docs/internals/search.md):
 * a recursive-descent parser into a small tree, with bounds on length, terms and depth.
 *
 *   query   = or EOF
 *   or      = and { "OR" and }
 *   and     = unary { ["AND"] unary }
 *   unary   = "-" primary | primary
 *   primary = "(" or ")" | '"' phrase '"' | field ":" value | word ["*"]
 */
#include "search/search.h"

#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const field_names[SEARCH_F_COUNT] = {
    "",       "type", "status",  "tag",      "program", "category",   "entity",
    "object", "lang", "created", "duration", "codec",   "resolution",
};

static const char *const types[] = {"video", "audio", "image"};
static const char *const statuses[] = {"uploading", "processing", "ready", "failed", "archived"};

struct parser {
    const char *q;
    size_t len, i;
    int depth, nterms;
    size_t *err_pos;
    struct err *err;
};

const char *search_field_name(enum search_field f)
{
    return f > SEARCH_F_NONE && f < SEARCH_F_COUNT ? field_names[f] : "";
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static void node_free(struct search_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->nkids; i++)
        node_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

static struct search_node *node_new(enum search_node_kind kind, size_t pos)
{
    struct search_node *n = xcalloc(1, sizeof(*n));

    n->kind = kind;
    n->pos = pos;
    n->lo = INT64_MIN;
    n->hi = INT64_MAX;
    return n;
}

static void node_add(struct search_node *parent, struct search_node *kid)
{
    parent->kids = xrealloc(parent->kids, (parent->nkids + 1) * sizeof(*parent->kids));
    parent->kids[parent->nkids++] = kid;
}

/* a group of one is its member; an empty group is nothing */
static struct search_node *node_collapse(struct search_node *n)
{
    struct search_node *only;

    if (n->nkids == 0) {
        node_free(n);
        return NULL;
    }
    if (n->nkids != 1)
        return n;
    only = n->kids[0];
    free(n->kids);
    free(n);
    return only;
}

/* ---- errors --------------------------------------------------------------------------------- */

static int fail_at(struct parser *p, size_t pos, enum err_code code, const char *fmt, ...)
    ATTR_PRINTF(4, 5);

static int fail_at(struct parser *p, size_t pos, enum err_code code, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    *p->err_pos = pos;
    return err_set(p->err, code, "position %zu: %s", pos, msg);
}

/* ---- lexing helpers ------------------------------------------------------------------------- */

static void skip_space(struct parser *p)
{
    while (p->i < p->len && isspace((unsigned char)p->q[p->i]))
        p->i++;
}

static int word_char(char c)
{
    return c != '(' && c != ')' && c != '"' && !isspace((unsigned char)c);
}

/* the length of the word at i */
static size_t word_len(const struct parser *p, size_t i)
{
    size_t n = 0;

    while (i + n < p->len && word_char(p->q[i + n]))
        n++;
    return n;
}

static int is_keyword(const struct parser *p, const char *kw)
{
    size_t n = strlen(kw);

    return p->i + n <= p->len && memcmp(p->q + p->i, kw, n) == 0 && word_len(p, p->i) == n;
}

static int count_term(struct parser *p, size_t pos)
{
    if (++p->nterms > SEARCH_QUERY_MAX_TERMS)
        return fail_at(p, pos, ERR_LIMIT, "more than %d words, phrases and filters",
                       SEARCH_QUERY_MAX_TERMS);
    return 0;
}

/* does the text fold to at least one letter or digit? */
static int has_letters(const char *s, size_t n)
{
    char out[SEARCH_TERM_MAX + 1];

    return search_fold(s, n, out, sizeof(out)) > 0;
}

/* ---- values of filters ------------------------------------------------------------------------
 */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int month_days(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return days[m - 1];
}

/* "2024", "2024-11" or "2024-11-03" (exactly n bytes) into [lo, hi) in epoch ms */
static int parse_date(const char *s, size_t n, int64_t *lo, int64_t *hi)
{
    int y = 0, m = 0, d = 0, k = 0;
    char buf[16];

    if (n < 4 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)buf[i]) && buf[i] != '-')
            return -1;
    if (n == 4 && sscanf(buf, "%4d%n", &y, &k) == 1 && k == 4) {
        *lo = days_from_civil(y, 1, 1) * 86400000LL;
        *hi = days_from_civil(y + 1, 1, 1) * 86400000LL;
    } else if (n == 7 && sscanf(buf, "%4d-%2d%n", &y, &m, &k) == 2 && k == 7 && m >= 1 && m <= 12) {
        *lo = days_from_civil(y, m, 1) * 86400000LL;
        *hi = (m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1)) * 86400000LL;
    } else if (n == 10 && sscanf(buf, "%4d-%2d-%2d%n", &y, &m, &d, &k) == 3 && k == 10 && m >= 1 &&
               m <= 12 && d >= 1 && d <= month_days(y, m)) {
        *lo = days_from_civil(y, m, d) * 86400000LL;
        *hi = *lo + 86400000LL;
    } else {
        return -1;
    }
    return y >= 1800 ? 0 : -1;
}

/* "90", "90s", "1.5m", "250ms", "2h" (exactly n bytes) into [lo, hi) in ms: the value
 * to the precision of its unit */
static int parse_duration(const char *s, size_t n, int64_t *lo, int64_t *hi)
{
    char buf[32], *end;
    double v, unit = 1000;

    if (n == 0 || n >= sizeof(buf) || !(isdigit((unsigned char)s[0]) || s[0] == '.'))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    v = strtod(buf, &end);
    if (end == buf || v < 0 || v > 1e9)
        return -1;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "") == 0 || strcmp(end, "s") == 0)
        unit = 1000;
    else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
        unit = 60000;
    else if (strcmp(end, "h") == 0)
        unit = 3600000;
    else
        return -1;
    *lo = (int64_t)(v * unit + 0.5);
    *hi = *lo + (int64_t)(unit < 1000 ? 1 : 1000);
    return 0;
}

typedef int (*range_fn)(const char *s, size_t n, int64_t *lo, int64_t *hi);

/* a..b, a.., ..b, >a, >=a, <a, <=a or a, for dates or durations */
static int parse_range(struct parser *p, struct search_node *n, const char *v, size_t vn,
                       size_t vpos, range_fn one, const char *what)
{
    int64_t alo, ahi, blo, bhi;
    const char *dots = NULL;

    for (size_t i = 0; i + 1 < vn; i++)
        if (v[i] == '.' && v[i + 1] == '.') {
            dots = v + i;
            break;
        }
    if (dots) {
        size_t an = (size_t)(dots - v), bn = vn - an - 2;

        if (an == 0 && bn == 0)
            goto bad;
        if (an && one(v, an, &alo, &ahi) < 0)
            goto bad;
        if (bn && one(dots + 2, bn, &blo, &bhi) < 0)
            goto bad;
        n->lo = an ? alo : INT64_MIN;
        n->hi = bn ? bhi : INT64_MAX;
        if (an && bn && n->lo >= n->hi)
            return fail_at(p, vpos, ERR_INVALID, "the %s range %.*s is empty", what, (int)vn, v);
        return 0;
    }
    if (vn >= 2 && (v[0] == '>' || v[0] == '<') && v[1] == '=') {
        if (one(v + 2, vn - 2, &alo, &ahi) < 0)
            goto bad;
        if (v[0] == '>')
            n->lo = alo;
        else
            n->hi = ahi;
        return 0;
    }
    if (vn >= 1 && (v[0] == '>' || v[0] == '<')) {
        if (one(v + 1, vn - 1, &alo, &ahi) < 0)
            goto bad;
        if (v[0] == '>')
            n->lo = ahi;
        else
            n->hi = alo;
        return 0;
    }
    if (one(v, vn, &n->lo, &n->hi) < 0)
        goto bad;
    return 0;
bad:
    if (one == parse_date)
        return fail_at(p, vpos, ERR_INVALID,
                       "expected a date (2024, 2024-11 or 2024-11-03), a range (a..b) or a "
                       "comparison (>=2024) after '%s:', not '%.*s'",
                       what, (int)(vn > 40 ? 40 : vn), v);
    return fail_at(p, vpos, ERR_INVALID,
                   "expected a duration (90, 90s, 1.5m, 2h, 250ms), a range (1m..5m) or a "
                   "comparison (>60s) after '%s:', not '%.*s'",
                   what, (int)(vn > 40 ? 40 : vn), v);
}

static int one_of(const char *v, size_t vn, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strlen(set[i]) == vn && strncasecmp(set[i], v, vn) == 0)
            return 1;
    return 0;
}

/* ---- the grammar ---------------------------------------------------------------------------- */

static struct search_node *parse_or(struct parser *p);

/* a quoted string starting at p->i (the quote): its content into *s / *n */
static int quoted(struct parser *p, const char **s, size_t *n)
{
    size_t open = p->i, close;

    for (close = open + 1; close < p->len && p->q[close] != '"'; close++)
        ;
    if (close >= p->len)
        return fail_at(p, open, ERR_INVALID, "expected a closing quote for the one opened here");
    *s = p->q + open + 1;
    *n = close - open - 1;
    p->i = close + 1;
    return 0;
}

static struct search_node *parse_filter(struct parser *p, size_t start, size_t name_len)
{
    enum search_field f = SEARCH_F_NONE;
    struct search_node *n;
    const char *v = NULL;
    size_t vn = 0, vpos;
    char known[160] = "";
    size_t used = 0;

    for (int k = 1; k < SEARCH_F_COUNT; k++)
        if (strlen(field_names[k]) == name_len &&
            strncasecmp(field_names[k], p->q + start, name_len) == 0)
            f = (enum search_field)k;
    if (f == SEARCH_F_NONE) {
        for (int k = 1; k < SEARCH_F_COUNT; k++)
            used += (size_t)snprintf(known + used, sizeof(known) - used, "%s%s", k > 1 ? ", " : "",
                                     field_names[k]);
        fail_at(p, start, ERR_INVALID, "unknown field '%.*s' (fields: %s)",
                (int)(name_len > 32 ? 32 : name_len), p->q + start, known);
        return NULL;
    }
    p->i = start + name_len + 1;
    vpos = p->i;
    if (p->i < p->len && p->q[p->i] == '"') {
        if (quoted(p, &v, &vn) < 0)
            return NULL;
    } else {
        vn = word_len(p, p->i);
        v = p->q + p->i;
        p->i += vn;
    }
    if (vn == 0) {
        fail_at(p, vpos, ERR_INVALID, "expected a value after '%s:'", field_names[f]);
        return NULL;
    }
    if (count_term(p, start) < 0)
        return NULL;
    n = node_new(SEARCH_N_FILTER, start);
    n->field = f;
    n->text = xstrndup(v, vn);
    switch (f) {
    case SEARCH_F_TYPE:
        if (!one_of(v, vn, types, ARRAY_LEN(types))) {
            fail_at(p, vpos, ERR_INVALID,
                    "expected video, audio or image after 'type:', not '%.*s'",
                    (int)(vn > 40 ? 40 : vn), v);
            goto fail;
        }
        break;
    case SEARCH_F_STATUS:
        if (!one_of(v, vn, statuses, ARRAY_LEN(statuses))) {
            fail_at(p, vpos, ERR_INVALID,
                    "expected uploading, processing, ready, failed or archived after "
                    "'status:', not '%.*s'",
                    (int)(vn > 40 ? 40 : vn), v);
            goto fail;
        }
        break;
    case SEARCH_F_RESOLUTION: {
        static const char *const names[][2] = {
            {"sd", "sd"},   {"480p", "sd"},       {"576p", "sd"},      {"hd", "hd"},
            {"720p", "hd"}, {"fullhd", "fullhd"}, {"1080p", "fullhd"}, {"uhd", "uhd"},
            {"4k", "uhd"},  {"2160p", "uhd"},
        };
        const char *canon = NULL;

        for (size_t k = 0; k < ARRAY_LEN(names); k++)
            if (strlen(names[k][0]) == vn && strncasecmp(names[k][0], v, vn) == 0)
                canon = names[k][1];
        if (!canon) {
            fail_at(p, vpos, ERR_INVALID,
                    "expected sd, hd, fullhd or uhd (or 720p, 1080p, 4k) after 'resolution:', "
                    "not '%.*s'",
                    (int)(vn > 40 ? 40 : vn), v);
            goto fail;
        }
        free(n->text);
        n->text = xstrdup(canon);
        break;
    }
    case SEARCH_F_CREATED:
        if (parse_range(p, n, v, vn, vpos, parse_date, "created") < 0)
            goto fail;
        break;
    case SEARCH_F_DURATION:
        if (parse_range(p, n, v, vn, vpos, parse_duration, "duration") < 0)
            goto fail;
        break;
    default:
        if (!has_letters(v, vn)) {
            fail_at(p, vpos, ERR_INVALID, "expected letters or digits after '%s:'", field_names[f]);
            goto fail;
        }
        break;
    }
    return n;
fail:
    node_free(n);
    return NULL;
}

/* *out is NULL for a word without letters or digits (punctuation: ignored) */
static int parse_primary(struct parser *p, struct search_node **out)
{
    size_t start = p->i, n = 0, colon;
    const char *s = NULL;

    *out = NULL;
    if (p->q[p->i] == '(') {
        struct search_node *inner;

        if (++p->depth > SEARCH_QUERY_MAX_DEPTH)
            return fail_at(p, start, ERR_LIMIT, "parentheses nested more than %d deep",
                           SEARCH_QUERY_MAX_DEPTH);
        p->i++;
        inner = parse_or(p);
        if (!inner && p->err->code != ERR_OK)
            return -1;
        skip_space(p);
        if (p->i >= p->len || p->q[p->i] != ')') {
            node_free(inner);
            return fail_at(p, start, ERR_INVALID, "expected a ')' to close the '(' opened here");
        }
        p->i++;
        p->depth--;
        *out = inner;
        return 0;
    }
    if (p->q[p->i] == '"') {
        if (quoted(p, &s, &n) < 0)
            return -1;
        if (!has_letters(s, n))
            return 0;
        if (count_term(p, start) < 0)
            return -1;
        *out = node_new(SEARCH_N_PHRASE, start);
        (*out)->text = xstrndup(s, n);
        return 0;
    }
    n = word_len(p, p->i);
    s = p->q + p->i;
    for (colon = 0; colon < n && isalpha((unsigned char)s[colon]); colon++)
        ;
    if (colon > 0 && colon < n && s[colon] == ':' &&
        (colon + 1 < n || (p->i + n < p->len && p->q[p->i + n] == '"'))) {
        *out = parse_filter(p, start, colon);
        return *out ? 0 : -1;
    }
    p->i += n;
    if (n > 0 && s[n - 1] == '*') {
        size_t k = n;

        while (k > 0 && s[k - 1] == '*')
            k--;
        if (!has_letters(s, k))
            return fail_at(p, start, ERR_INVALID, "expected letters or digits before '*'");
        if (count_term(p, start) < 0)
            return -1;
        *out = node_new(SEARCH_N_PREFIX, start);
        (*out)->text = xstrndup(s, k);
        return 0;
    }
    if (!has_letters(s, n))
        return 0;
    if (count_term(p, start) < 0)
        return -1;
    *out = node_new(SEARCH_N_TERM, start);
    (*out)->text = xstrndup(s, n);
    return 0;
}

static int parse_unary(struct parser *p, struct search_node **out)
{
    size_t start = p->i;

    if (p->q[p->i] == '-' && p->i + 1 < p->len && !isspace((unsigned char)p->q[p->i + 1]) &&
        p->q[p->i + 1] != ')' && p->q[p->i + 1] != '-') {
        struct search_node *inner;

        p->i++;
        if (parse_primary(p, &inner) < 0)
            return -1;
        if (!inner) {
            *out = NULL;
            return 0;
        }
        *out = node_new(SEARCH_N_NOT, start);
        node_add(*out, inner);
        return 0;
    }
    return parse_primary(p, out);
}

/* a node that matches nothing by itself: an exclusion, or a group of exclusions */
static int negative_only(const struct search_node *n)
{
    if (n->kind == SEARCH_N_NOT)
        return 1;
    if (n->kind == SEARCH_N_AND) {
        for (size_t i = 0; i < n->nkids; i++)
            if (!negative_only(n->kids[i]))
                return 0;
        return 1;
    }
    if (n->kind == SEARCH_N_OR) {
        for (size_t i = 0; i < n->nkids; i++)
            if (negative_only(n->kids[i]))
                return 1;
        return 0;
    }
    return 0;
}

static struct search_node *parse_and(struct parser *p)
{
    struct search_node *all = node_new(SEARCH_N_AND, p->i);

    for (;;) {
        struct search_node *kid;
        size_t kw = 0;

        skip_space(p);
        if (p->i >= p->len || p->q[p->i] == ')' || is_keyword(p, "OR"))
            break;
        if (is_keyword(p, "AND")) {
            kw = p->i;
            p->i += 3;
            skip_space(p);
            if (all->nkids == 0 || p->i >= p->len || p->q[p->i] == ')' || is_keyword(p, "OR") ||
                is_keyword(p, "AND")) {
                fail_at(p, kw, ERR_INVALID, "expected a word on each side of 'AND'");
                goto fail;
            }
        }
        if (parse_unary(p, &kid) < 0)
            goto fail;
        if (kid)
            node_add(all, kid);
    }
    return node_collapse(all);
fail:
    node_free(all);
    return NULL;
}

static struct search_node *parse_or(struct parser *p)
{
    struct search_node *any = node_new(SEARCH_N_OR, p->i), *side;

    for (;;) {
        size_t at;

        skip_space(p);
        at = p->i;
        side = parse_and(p);
        if (!side && p->err->code != ERR_OK)
            goto fail;
        skip_space(p);
        if (!is_keyword(p, "OR")) {
            if (side)
                node_add(any, side);
            else if (any->nkids > 0) {
                fail_at(p, at, ERR_INVALID, "expected a word after 'OR'");
                goto fail;
            }
            break;
        }
        if (!side) {
            fail_at(p, p->i, ERR_INVALID, "expected a word before 'OR'");
            goto fail;
        }
        node_add(any, side);
        p->i += 2;
    }
    return node_collapse(any);
fail:
    node_free(any);
    return NULL;
}

int search_query_parse(const char *q, size_t len, struct search_query *out, size_t *err_pos,
                       struct err *err)
{
    struct parser p = {.q = q, .len = len, .err_pos = err_pos, .err = err};
    struct search_node *root;

    memset(out, 0, sizeof(*out));
    *err_pos = 0;
    err->code = ERR_OK;
    err->msg[0] = '\0';
    if (len > SEARCH_QUERY_MAX)
        return fail_at(&p, SEARCH_QUERY_MAX, ERR_LIMIT, "the query is %zu bytes; at most %d", len,
                       SEARCH_QUERY_MAX);
    if (memchr(q, '\0', len))
        return fail_at(&p, (size_t)((const char *)memchr(q, '\0', len) - q), ERR_INVALID,
                       "a NUL byte in the query");
    root = parse_or(&p);
    if (!root && err->code != ERR_OK)
        return -1;
    skip_space(&p);
    if (p.i < p.len) {
        node_free(root);
        return fail_at(&p, p.i, ERR_INVALID, "unexpected '%c' (no '(' to close)", p.q[p.i]);
    }
    if (root && negative_only(root)) {
        node_free(root);
        return fail_at(&p, 0, ERR_INVALID,
                       "a query of exclusions only would match almost everything: add a word "
                       "or a filter to each part");
    }
    out->root = root;
    out->nterms = p.nterms;
    return 0;
}

void search_query_release(struct search_query *q)
{
    node_free(q->root);
    q->root = NULL;
}

struct search_node *search_node_filter(enum search_field field, const char *value)
{
    struct search_node *n = node_new(SEARCH_N_FILTER, 0);

    n->field = field;
    n->text = xstrdup(value);
    return n;
}

void search_query_and(struct search_query *q, struct search_node *n)
{
    struct search_node *and;

    if (!n)
        return;
    if (!q->root) {
        q->root = n;
        return;
    }
    if (q->root->kind == SEARCH_N_AND) {
        node_add(q->root, n);
        return;
    }
    and = node_new(SEARCH_N_AND, q->root->pos);
    node_add(and, q->root);
    node_add(and, n);
    q->root = and;
}

struct search_node *search_query_take(struct search_query *q)
{
    struct search_node *n = q->root;

    q->root = NULL;
    return n;
}
