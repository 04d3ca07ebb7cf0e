/*
 * The HTTP/1.1 request parser (RFC 9112): the end of a request head, the request line, the
 * header fields and the message's framing, and the chunked transfer coding. Pure functions
 * over bytes: no sockets, no clocks, so unit tests and a fuzzer drive them directly.
 *
 * Strict on purpose: whatever two HTTP implementations could read differently (several
 * Content-Length fields, a Transfer-Encoding that is not exactly chunked, whitespace before
 * a colon, folded lines, bare CR or LF) is refused, because a request one reader frames
 * differently from another is how requests are smuggled.
 */
#include "http/http_int.h"

#include <string.h>
#include <strings.h>

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." / "^" /
 * "_" / "`" / "|" / "~" / DIGIT / ALPHA */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP or HTAB: what a field value (and a chunk extension) may hold */
static int is_field_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* a printable byte of a request-target (obs-text allowed, as clients send raw UTF-8) */
static int is_target_char(unsigned char c)
{
    return c > 0x20 && c != 0x7f;
}

/* a character a Host value may hold: RFC 3986 host (reg-name, IP literal) and port */
static int is_host_char(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != '\0' && strchr("-._~!$&'()*+,;=:[]%", c) != NULL;
}

/* a byte for a message: printable ASCII as is, anything else as \xNN */
static const char *show_byte(unsigned char c, char out[8])
{
    if (c > 0x20 && c < 0x7f)
        snprintf(out, 8, "'%c'", c);
    else
        snprintf(out, 8, "\\x%02x", c);
    return out;
}

ssize_t http__head_scan(const char *buf, size_t n, size_t *pos, struct err *err)
{
    size_t i;

    for (i = *pos; i < n; i++) {
        if (buf[i] == '\r') {
            if (i + 1 == n)
                break; /* the LF may be in the next read */
            if (buf[i + 1] != '\n')
                return err_set(err, ERR_INVALID,
                               "a carriage return (CR) in the request head is not followed by "
                               "a line feed (LF)");
        } else if (buf[i] == '\n') {
            if (i == 0 || buf[i - 1] != '\r')
                return err_set(err, ERR_INVALID,
                               "a line of the request head ends with a bare line feed (LF); "
                               "lines end with CRLF");
            if (i >= 3 && buf[i - 2] == '\n')
                return (ssize_t)(i + 1);
        } else if (buf[i] == '\0') {
            return err_set(err, ERR_INVALID, "the request head contains a NUL byte");
        }
    }
    *pos = i;
    return 0;
}

/* "HTTP/1.1": the minor version (0 or 1); -1 with ERR_VERSION or ERR_INVALID otherwise */
static int parse_version(const char *v, size_t n, struct err *err)
{
    if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return err_set(err, ERR_INVALID,
                       "the request line does not end with an HTTP version (HTTP/1.1)");
    if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
        return err_set(err, ERR_VERSION, "HTTP/%c.%c is not supported; use HTTP/1.1 or HTTP/1.0",
                       v[5], v[7]);
    return v[7] - '0';
}

/* splits the request-target into path and query (in place) */
static int parse_target(char *t, struct http__head *h, struct err *err)
{
    char *q;

    if (strncasecmp(t, "http://", 7) == 0 || strncasecmp(t, "https://", 8) == 0) {
        /* absolute-form (RFC 9112 3.2.2): the path starts after the authority */
        char *auth = strstr(t, "//") + 2;
        char *slash = auth + strcspn(auth, "/?");

        if (slash == auth)
            return err_set(err, ERR_INVALID, "the request-target %.64s has no host", t);
        if (*slash != '/')
            return err_set(err, ERR_INVALID,
                           "the request-target %.64s has no path; send at least '/'", t);
        t = slash;
    } else if (strcmp(t, "*") == 0) {
        if (strcmp(h->method, "OPTIONS") != 0)
            return err_set(err, ERR_INVALID, "the request-target '*' is only for OPTIONS");
    } else if (t[0] != '/') {
        return err_set(err, ERR_INVALID,
                       "the request-target %.64s is not a path starting with '/' (nor an "
                       "absolute URL)",
                       t);
    }
    q = strchr(t, '?');
    h->query = "";
    if (q) {
        *q = '\0';
        h->query = q + 1;
    }
    h->path = t;
    return 0;
}

int http__line_parse(char *line, size_t n, struct http__head *h, struct err *err)
{
    char *sp1, *sp2;
    char bad[8];
    size_t i;
    int minor;

    for (i = 0; i < n && is_tchar((unsigned char)line[i]); i++)
        ;
    if (i == 0 || i == n)
        return err_set(err, ERR_INVALID, "the request line is not METHOD TARGET HTTP/1.1");
    if (line[i] != ' ')
        return err_set(err, ERR_INVALID, "the method contains the character %s",
                       show_byte((unsigned char)line[i], bad));
    sp1 = line + i;
    for (i++; i < n && is_target_char((unsigned char)line[i]); i++)
        ;
    if (i == n || line + i == sp1 + 1)
        return err_set(err, ERR_INVALID, "the request line is not METHOD TARGET HTTP/1.1");
    if (line[i] != ' ')
        return err_set(err, ERR_INVALID, "the request-target contains the character %s",
                       show_byte((unsigned char)line[i], bad));
    sp2 = line + i;
    *sp1 = '\0';
    *sp2 = '\0';
    h->method = line;
    minor = parse_version(sp2 + 1, n - (size_t)(sp2 + 1 - line), err);
    if (minor < 0)
        return -1;
    h->minor = minor;
    h->target = sp1 + 1;
    return parse_target(sp1 + 1, h, err);
}

/* the Content-Length value: 1*DIGIT, no sign, no list, no overflow */
static int parse_length(const char *v, int64_t *out, struct err *err)
{
    int64_t n = 0;

    if (!*v)
        return err_set(err, ERR_INVALID, "Content-Length is empty");
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9')
            return err_set(err, ERR_INVALID, "Content-Length '%.40s' is not a number of bytes", v);
        if (n > (INT64_MAX - (*p - '0')) / 10)
            return err_set(err, ERR_INVALID, "Content-Length '%.40s' is out of range", v);
        n = n * 10 + (*p - '0');
    }
    *out = n;
    return 0;
}

/* 1 if the comma-separated list v holds token (case-insensitive) */
static int list_has(const char *v, const char *token)
{
    size_t tn = strlen(token);

    while (*v) {
        size_t n;

        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        n = strcspn(v, ",");
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n == tn && strncasecmp(v, token, n) == 0)
            return 1;
        v += strcspn(v, ",");
    }
    return 0;
}

/* parses one field line (without its CRLF) into f, in place */
static int parse_field(char *line, size_t n, struct http__field *f, struct err *err)
{
    char bad[8];
    size_t i, end;

    if (line[0] == ' ' || line[0] == '\t')
        return err_set(err, ERR_INVALID,
                       "a header line starts with whitespace (obsolete line folding is not "
                       "accepted)");
    for (i = 0; i < n && line[i] != ':'; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == ' ' || c == '\t')
            return err_set(err, ERR_INVALID,
                           "whitespace between the header name %.*s and its colon", (int)i, line);
        if (!is_tchar(c))
            return err_set(err, ERR_INVALID, "the header name %.*s contains the character %s",
                           (int)(i < 64 ? i : 64), line, show_byte(c, bad));
    }
    if (i == n)
        return err_set(err, ERR_INVALID, "the header line %.*s has no colon",
                       (int)(n < 64 ? n : 64), line);
    if (i == 0)
        return err_set(err, ERR_INVALID, "a header line has an empty name");
    line[i] = '\0';
    f->name = line;
    for (i++; i < n && (line[i] == ' ' || line[i] == '\t'); i++)
        ;
    end = n;
    while (end > i && (line[end - 1] == ' ' || line[end - 1] == '\t'))
        end--;
    for (size_t j = i; j < end; j++)
        if (!is_field_char((unsigned char)line[j]))
            return err_set(err, ERR_INVALID, "the value of header %s contains the byte %s", f->name,
                           show_byte((unsigned char)line[j], bad));
    line[end] = '\0';
    f->value = line + i;
    return 0;
}

/* reads the fields that frame the message and steer the connection */
static int head_semantics(struct http__head *h, struct err *err)
{
    const char *host = NULL, *cl = NULL, *te = NULL;
    int nhost = 0, ncl = 0, nte = 0;

    h->keep_alive = h->minor == 1;
    for (size_t i = 0; i < h->nfields; i++) {
        const struct http__field *f = &h->fields[i];

        if (strcasecmp(f->name, "Host") == 0) {
            host = f->value;
            nhost++;
        } else if (strcasecmp(f->name, "Content-Length") == 0) {
            cl = f->value;
            ncl++;
        } else if (strcasecmp(f->name, "Transfer-Encoding") == 0) {
            te = f->value;
            nte++;
        } else if (strcasecmp(f->name, "Connection") == 0) {
            if (list_has(f->value, "close"))
                h->keep_alive = 0;
            else if (h->minor == 0 && list_has(f->value, "keep-alive"))
                h->keep_alive = 1;
        } else if (strcasecmp(f->name, "Expect") == 0) {
            h->expect_continue = h->minor == 1 && strcasecmp(f->value, "100-continue") == 0;
        }
    }
    /* RFC 9112 3.2 */
    if (nhost > 1)
        return err_set(err, ERR_INVALID, "the request has %d Host headers; send one", nhost);
    if (nhost == 0 && h->minor == 1)
        return err_set(err, ERR_INVALID, "an HTTP/1.1 request needs a Host header");
    for (const char *p = host; p && *p; p++)
        if (!is_host_char((unsigned char)*p))
            return err_set(err, ERR_INVALID, "the Host header '%.64s' is not a host[:port]", host);
    /* RFC 9112 6.1 and 6.3: one unambiguous framing or none */
    h->framing = HTTP_BODY_NONE;
    h->content_length = -1;
    if (nte > 0) {
        if (ncl > 0)
            return err_set(err, ERR_INVALID,
                           "the request has both Content-Length and Transfer-Encoding");
        if (nte > 1)
            return err_set(err, ERR_INVALID,
                           "the request has %d Transfer-Encoding headers; send one: chunked", nte);
        if (h->minor == 0)
            return err_set(err, ERR_INVALID, "Transfer-Encoding is not part of HTTP/1.0");
        if (strcasecmp(te, "chunked") != 0)
            return err_set(err, ERR_INVALID,
                           "Transfer-Encoding '%.64s' is not supported; only 'chunked' is", te);
        h->framing = HTTP_BODY_CHUNKED;
    } else if (ncl > 1) {
        return err_set(err, ERR_INVALID, "the request has %d Content-Length headers; send one",
                       ncl);
    } else if (ncl == 1) {
        if (parse_length(cl, &h->content_length, err) < 0)
            return -1;
        h->framing = h->content_length > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
    }
    if (h->framing == HTTP_BODY_NONE)
        h->expect_continue = 0;
    return 0;
}

int http__head_parse(char *p, size_t n, struct http__head *h, struct arena *a, struct err *err)
{
    size_t lines = 0, line_len;
    char *eol;

    memset(h, 0, sizeof(*h));
    h->method = h->target = h->path = h->query = "";
    h->content_length = -1;
    if (n < 4 || memcmp(p + n - 4, "\r\n\r\n", 4) != 0)
        return err_set(err, ERR_INVALID, "the request head does not end with an empty line");
    for (size_t i = 0; i < n; i++)
        lines += p[i] == '\n';
    if (lines - 2 > HTTP_MAX_FIELDS)
        return err_set(err, ERR_HEADERS, "the request has %zu header fields; the limit is %d",
                       lines - 2, HTTP_MAX_FIELDS);
    h->fields = arena_alloc(a, (lines - 1) * sizeof(*h->fields));

    eol = memchr(p, '\r', n);
    line_len = (size_t)(eol - p);
    if (http__line_parse(p, line_len, h, err) < 0)
        return -1;
    p = eol + 2;
    while (*p != '\r') {
        eol = strchr(p, '\r'); /* head_scan refused NULs: the CR is there */
        if (parse_field(p, (size_t)(eol - p), &h->fields[h->nfields], err) < 0)
            return -1;
        h->nfields++;
        p = eol + 2;
    }
    return head_semantics(h, err);
}

/* ---- the chunked transfer coding (RFC 9112 7.1) ----------------------------------------- */

enum {
    CH_SIZE = 0, /* chunk-size digits */
    CH_SIZE_WS,  /* whitespace after the size, before ';' */
    CH_EXT,      /* a chunk extension, up to CR */
    CH_SIZE_LF,  /* the LF of the size line */
    CH_DATA,     /* chunk data */
    CH_DATA_CR,  /* the CRLF after chunk data */
    CH_DATA_LF,
    CH_TRAILER,      /* the start of a trailer line (or the final CRLF) */
    CH_TRAILER_NAME, /* a trailer field name */
    CH_TRAILER_VAL,  /* its value, up to CR */
    CH_TRAILER_LF,
    CH_FINAL_LF,
    CH_DONE,
};

void http__chunked_init(struct http__chunked *c)
{
    memset(c, 0, sizeof(*c));
}

/* one framing byte; -1 with err if it breaks the coding */
static int chunked_byte(struct http__chunked *c, unsigned char b, struct err *err)
{
    char bad[8];
    int v;

    switch (c->state) {
    case CH_SIZE:
        v = util_hexval(b);
        if (v >= 0) {
            if (c->size > (uint64_t)(INT64_MAX >> 4))
                return err_set(err, ERR_INVALID, "a chunk size overflows 63 bits");
            if (c->digits >= HTTP_CHUNK_SIZE_DIGITS)
                return err_set(err, ERR_INVALID, "a chunk size has over %d digits",
                               HTTP_CHUNK_SIZE_DIGITS);
            c->size = c->size << 4 | (uint64_t)v;
            c->digits++;
        } else if (c->digits == 0) {
            return err_set(err, ERR_INVALID, "a chunk size starts with %s, not a hex digit",
                           show_byte(b, bad));
        } else if (b == ';') {
            c->state = CH_EXT;
        } else if (b == ' ' || b == '\t') {
            c->state = CH_SIZE_WS;
        } else if (b == '\r') {
            c->state = CH_SIZE_LF;
        } else {
            return err_set(err, ERR_INVALID, "a chunk size contains %s, not a hex digit",
                           show_byte(b, bad));
        }
        break;
    case CH_SIZE_WS:
        if (b == ';')
            c->state = CH_EXT;
        else if (b != ' ' && b != '\t')
            return err_set(err, ERR_INVALID,
                           "a chunk size is followed by %s; only a ';' extension may follow",
                           show_byte(b, bad));
        else if (++c->ext_bytes > HTTP_CHUNK_EXT_MAX)
            return err_set(err, ERR_INVALID, "chunk size lines take over %d bytes of whitespace",
                           HTTP_CHUNK_EXT_MAX);
        break;
    case CH_EXT:
        if (b == '\r') {
            c->state = CH_SIZE_LF;
            break;
        }
        if (!is_field_char(b))
            return err_set(err, ERR_INVALID, "a chunk extension contains the byte %s",
                           show_byte(b, bad));
        if (++c->ext_bytes > HTTP_CHUNK_EXT_MAX)
            return err_set(err, ERR_INVALID,
                           "chunk extensions take over %d bytes; they are not used here",
                           HTTP_CHUNK_EXT_MAX);
        break;
    case CH_SIZE_LF:
        if (b != '\n')
            return err_set(err, ERR_INVALID, "a chunk size line does not end with CRLF");
        c->state = c->size == 0 ? CH_TRAILER : CH_DATA;
        c->digits = 0;
        break;
    case CH_DATA_CR:
        if (b != '\r')
            return err_set(err, ERR_INVALID, "chunk data is not followed by CRLF (found %s)",
                           show_byte(b, bad));
        c->state = CH_DATA_LF;
        break;
    case CH_DATA_LF:
        if (b != '\n')
            return err_set(err, ERR_INVALID, "chunk data is not followed by CRLF");
        c->state = CH_SIZE;
        break;
    case CH_TRAILER:
        if (b == '\r') {
            c->state = CH_FINAL_LF;
            break;
        }
        c->state = CH_TRAILER_NAME;
        /* fallthrough */
    case CH_TRAILER_NAME:
        if (b == ':' && c->state == CH_TRAILER_NAME && c->digits > 0)
            c->state = CH_TRAILER_VAL;
        else if (!is_tchar(b))
            return err_set(err, ERR_INVALID, "a trailer field name contains %s", show_byte(b, bad));
        c->digits++; /* length of the name */
        break;
    case CH_TRAILER_VAL:
        if (b == '\r')
            c->state = CH_TRAILER_LF;
        else if (!is_field_char(b))
            return err_set(err, ERR_INVALID, "a trailer field contains the byte %s",
                           show_byte(b, bad));
        break;
    case CH_TRAILER_LF:
        if (b != '\n')
            return err_set(err, ERR_INVALID, "a trailer line does not end with CRLF");
        c->state = CH_TRAILER;
        c->digits = 0;
        break;
    case CH_FINAL_LF:
        if (b != '\n')
            return err_set(err, ERR_INVALID, "the chunked body does not end with CRLF");
        c->state = CH_DONE;
        break;
    default:
        return err_set(err, ERR_INTERNAL, "chunked decoder in state %d", c->state);
    }
    if (c->state >= CH_TRAILER && c->state <= CH_TRAILER_LF &&
        ++c->trailer_bytes > HTTP_TRAILER_MAX)
        return err_set(err, ERR_INVALID, "the trailer section takes over %d bytes",
                       HTTP_TRAILER_MAX);
    return 0;
}

ssize_t http__chunked_decode(struct http__chunked *c, const char *in, size_t n, const char **data,
                             size_t *data_n, struct err *err)
{
    size_t i = 0;

    *data = NULL;
    *data_n = 0;
    while (i < n && c->state != CH_DONE) {
        if (c->state == CH_DATA) {
            size_t take = n - i;

            if ((uint64_t)take > c->size)
                take = (size_t)c->size;
            *data = in + i;
            *data_n = take;
            c->size -= take;
            if (c->size == 0)
                c->state = CH_DATA_CR;
            return (ssize_t)(i + take);
        }
        if (chunked_byte(c, (unsigned char)in[i], err) < 0)
            return -1;
        i++;
    }
    return (ssize_t)i;
}

int http__chunked_done(const struct http__chunked *c)
{
    return c->state == CH_DONE;
}
