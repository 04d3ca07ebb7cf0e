#include "core.h"

#include <stdlib.h>
#include <string.h>

static char buf_empty[1];

void buf_init(struct buf *b, size_t max)
{
    b->buf = buf_empty;
    b->len = 0;
    b->alloc = 0;
    b->max = max ? max : SIZE_MAX - 1;
}

void buf_release(struct buf *b)
{
    if (b->alloc)
        free(b->buf);
    b->buf = buf_empty;
    b->len = 0;
    b->alloc = 0;
}

char *buf_detach(struct buf *b, size_t *len)
{
    char *p;

    if (!b->alloc)
        p = xstrdup("");
    else
        p = b->buf;
    if (len)
        *len = b->len;
    b->buf = buf_empty;
    b->len = 0;
    b->alloc = 0;
    return p;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->alloc)
        b->buf[0] = '\0';
}

static int buf_grow(struct buf *b, size_t extra, struct err *err)
{
    size_t want;

    if (extra > b->max || b->len > b->max - extra)
        return err_set(err, ERR_LIMIT, "buffer limit of %zu bytes exceeded", b->max);
    want = b->len + extra + 1;
    if (want <= b->alloc)
        return 0;
    {
        size_t n = b->alloc ? b->alloc : 64;
        while (n < want)
            n = n < SIZE_MAX / 2 ? n * 2 : want;
        if (!b->alloc) {
            b->buf = xmalloc(n);
            b->buf[0] = '\0';
        } else {
            b->buf = xrealloc(b->buf, n);
        }
        b->alloc = n;
    }
    return 0;
}

int buf_add(struct buf *b, const void *data, size_t n, struct err *err)
{
    if (buf_grow(b, n, err) < 0)
        return -1;
    if (n)
        memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return 0;
}

int buf_adds(struct buf *b, const char *s, struct err *err)
{
    return buf_add(b, s, strlen(s), err);
}

int buf_addf(struct buf *b, struct err *err, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return err_set(err, ERR_INTERNAL, "bad format");
    if (buf_grow(b, (size_t)n, err) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->buf + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_add_xml_n(struct buf *b, const char *s, size_t n, struct err *err)
{
    size_t from = 0;

    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;

        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&apos;";
            break;
        default:
            continue;
        }
        if (buf_add(b, s + from, i - from, err) < 0 || buf_adds(b, rep, err) < 0)
            return -1;
        from = i + 1;
    }
    return buf_add(b, s + from, n - from, err);
}

int buf_add_xml(struct buf *b, const char *s, struct err *err)
{
    return buf_add_xml_n(b, s, strlen(s), err);
}
