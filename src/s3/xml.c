/*
 * XML for the S3 endpoint: a small, strict, bounded reader for the documents clients send
 * (CompleteMultipartUpload), and the escaping of what answers echo. The reader accepts
 * well-formed XML 1.0 in UTF-8 only: character and entity references are decoded (Go
 * clients such as rclone write quotes as &#34;), CDATA sections, comments and processing
 * instructions are understood, a DOCTYPE is refused (so no entity can be declared), and
 * nesting, names, attributes and text have fixed limits.
 */
#include "s3/s3_int.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REPLACEMENT "\xef\xbf\xbd" /* U+FFFD */

/* ---- writing ------------------------------------------------------------------------ */

static int xml_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~' || c == '/';
}

/* 1 if code point cp (decoded from valid UTF-8) is a character XML 1.0 allows */
static int xml_char_ok(uint32_t cp)
{
    if (cp < 0x20)
        return cp == '\t' || cp == '\n' || cp == '\r';
    return cp != 0xfffe && cp != 0xffff;
}

void s3__xml_text(struct buf *b, const char *s, size_t n, int url)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        unsigned char c = u[i];
        size_t start = i;
        uint32_t cp;

        if (url) {
            if (xml_unreserved(c))
                buf_add(b, s + i, 1, NULL);
            else
                buf_addf(b, NULL, "%%%02X", c);
            i++;
            continue;
        }
        if (c >= 0x80) {
            if (util_utf8_next(u, n, &i, &cp) && xml_char_ok(cp))
                buf_add(b, s + start, i - start, NULL);
            else
                buf_adds(b, REPLACEMENT, NULL);
            continue;
        }
        i++;
        switch (c) {
        case '&':
            buf_adds(b, "&amp;", NULL);
            break;
        case '<':
            buf_adds(b, "&lt;", NULL);
            break;
        case '>':
            buf_adds(b, "&gt;", NULL);
            break;
        case '"':
            buf_adds(b, "&quot;", NULL);
            break;
        case '\'':
            buf_adds(b, "&apos;", NULL);
            break;
        case '\t':
        case '\n':
        case '\r':
            buf_addf(b, NULL, "&#%d;", c);
            break;
        default:
            if (c < 0x20)
                buf_adds(b, REPLACEMENT, NULL);
            else
                buf_add(b, s + start, 1, NULL);
        }
    }
}

void s3__xml_str(struct buf *b, const char *s, int url)
{
    s3__xml_text(b, s, strlen(s), url);
}

int s3__xml_exact(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < n) {
        uint32_t cp;

        if (!util_utf8_next(u, n, &i, &cp) || !xml_char_ok(cp))
            return 0;
    }
    return 1;
}

/* ---- reading ------------------------------------------------------------------------- */

struct xml_reader {
    struct arena *a;
    const char *s;
    size_t n;
    size_t i;
    struct err *err;
};

static int xml_fail(struct xml_reader *x, const char *what)
{
    return err_set(x->err, ERR_INVALID,
                   "MalformedXML: The XML you provided was not well-formed or did not validate "
                   "against our published schema (%s at byte %zu)",
                   what, x->i);
}

static int xml_at(const struct xml_reader *x, const char *lit)
{
    size_t n = strlen(lit);

    return x->n - x->i >= n && memcmp(x->s + x->i, lit, n) == 0;
}

static int xml_is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* 1 if the n bytes at s are all white space */
static int xml_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!xml_is_ws(s[i]))
            return 0;
    return 1;
}

/* skips white space; the number of bytes skipped */
static size_t xml_ws(struct xml_reader *x)
{
    size_t from = x->i;

    while (x->i < x->n && xml_is_ws(x->s[x->i]))
        x->i++;
    return x->i - from;
}

static int xml_name_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || c >= 0x80;
}

static int xml_name_char(unsigned char c)
{
    return xml_name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* reads a Name at the position; *len its length */
static int xml_name(struct xml_reader *x, const char **name, size_t *len)
{
    size_t from = x->i;

    if (x->i >= x->n || !xml_name_start((unsigned char)x->s[x->i]))
        return xml_fail(x, "expected a name");
    while (x->i < x->n && xml_name_char((unsigned char)x->s[x->i]))
        x->i++;
    if (x->i - from > S3_XML_NAME_MAX)
        return err_set(x->err, ERR_LIMIT, "MalformedXML: a name longer than %d bytes at byte %zu",
                       S3_XML_NAME_MAX, from);
    *name = x->s + from;
    *len = x->i - from;
    return 0;
}

/* moves past the first occurrence of end; what came before must not contain bad */
static int xml_until(struct xml_reader *x, const char *end, const char *bad, const char *what)
{
    const char *p = memmem(x->s + x->i, x->n - x->i, end, strlen(end));
    size_t stop;

    if (!p)
        return xml_fail(x, what);
    stop = (size_t)(p - x->s);
    if (bad && memmem(x->s + x->i, stop - x->i, bad, strlen(bad)))
        return xml_fail(x, what);
    x->i = stop + strlen(end);
    return 0;
}

/* a processing instruction at "<?"; the XML declaration only where decl is allowed */
static int xml_pi(struct xml_reader *x, int decl)
{
    const char *name;
    const char *body;
    size_t len;

    x->i += 2;
    if (xml_name(x, &name, &len) < 0)
        return -1;
    body = x->s + x->i;
    if (xml_until(x, "?>", NULL, "an unterminated processing instruction") < 0)
        return -1;
    if (len == 3 && strncasecmp(name, "xml", 3) == 0) {
        const char *enc;
        size_t blen = (size_t)(x->s + x->i - 2 - body);

        if (!decl || memcmp(name, "xml", 3) != 0)
            return xml_fail(x, "a misplaced XML declaration");
        enc = memmem(body, blen, "encoding", 8);
        if (enc) {
            const char *q = enc + 8;

            while (q < body + blen && (xml_is_ws(*q) || *q == '='))
                q++;
            if (q + 6 >= body + blen || (*q != '"' && *q != '\'') ||
                strncasecmp(q + 1, "utf-8", 5) != 0 || q[6] != *q)
                return xml_fail(x, "a document not in UTF-8");
        }
    }
    return 0;
}

/* comments, processing instructions and white space outside the root element */
static int xml_misc(struct xml_reader *x)
{
    for (;;) {
        xml_ws(x);
        if (xml_at(x, "<!--")) {
            x->i += 4;
            if (xml_until(x, "-->", "--", "a malformed comment") < 0)
                return -1;
        } else if (xml_at(x, "<?")) {
            if (xml_pi(x, 0) < 0)
                return -1;
        } else if (xml_at(x, "<!DOCTYPE")) {
            return xml_fail(x, "a DOCTYPE, which is not allowed");
        } else {
            return 0;
        }
    }
}

/* appends code point cp as UTF-8 */
static int xml_put_cp(struct buf *b, uint32_t cp, struct err *err)
{
    char u[4];
    size_t n;

    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return buf_add(b, u, n, err);
}

static int xml_too_long(struct xml_reader *x)
{
    return err_set(x->err, ERR_LIMIT, "MalformedXML: text longer than %d bytes at byte %zu",
                   S3_XML_TEXT_MAX, x->i);
}

/* adds n bytes of character data to text, within the limit */
static int xml_text_add(struct xml_reader *x, struct buf *text, const char *s, size_t n)
{
    if (buf_add(text, s, n, NULL) < 0)
        return xml_too_long(x);
    return 0;
}

/* a reference at '&', decoded into b */
static int xml_reference(struct xml_reader *x, struct buf *b)
{
    static const struct {
        const char *name;
        char c;
    } predefined[] = {{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"quot;", '"'}, {"apos;", '\''}};
    uint32_t cp = 0;
    size_t from = x->i;
    int hex;
    int digits = 0;

    x->i++;
    if (x->i >= x->n || x->s[x->i] != '#') {
        for (size_t k = 0; k < ARRAY_LEN(predefined); k++) {
            if (xml_at(x, predefined[k].name)) {
                x->i += strlen(predefined[k].name);
                return xml_text_add(x, b, &predefined[k].c, 1);
            }
        }
        x->i = from;
        return xml_fail(x, "an unknown entity (only &lt; &gt; &amp; &quot; &apos; are defined)");
    }
    x->i++;
    hex = x->i < x->n && x->s[x->i] == 'x';
    if (hex)
        x->i++;
    for (; x->i < x->n && x->s[x->i] != ';'; x->i++) {
        int v = hex ? util_hexval(x->s[x->i])
                    : (x->s[x->i] >= '0' && x->s[x->i] <= '9' ? x->s[x->i] - '0' : -1);

        if (v < 0 || ++digits > 8)
            return xml_fail(x, "a malformed character reference");
        cp = cp * (hex ? 16 : 10) + (uint32_t)v;
    }
    if (x->i >= x->n || digits == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
        !xml_char_ok(cp)) {
        x->i = from;
        return xml_fail(x, "a character reference to no XML character");
    }
    x->i++;
    if (xml_put_cp(b, cp, NULL) < 0)
        return xml_too_long(x);
    return 0;
}

/* an attribute value at its opening quote (references checked, the value dropped) */
static int xml_attr_value(struct xml_reader *x)
{
    char q;
    struct buf scratch;
    int rc = 0;

    if (x->i >= x->n || (x->s[x->i] != '"' && x->s[x->i] != '\''))
        return xml_fail(x, "an attribute value without quotes");
    q = x->s[x->i++];
    buf_init(&scratch, 16);
    while (rc == 0) {
        if (x->i >= x->n) {
            rc = xml_fail(x, "an unterminated attribute value");
        } else if (x->s[x->i] == q) {
            x->i++;
            break;
        } else if (x->s[x->i] == '<') {
            rc = xml_fail(x, "'<' in an attribute value");
        } else if (x->s[x->i] == '&') {
            buf_reset(&scratch);
            rc = xml_reference(x, &scratch);
        } else {
            x->i++;
        }
    }
    buf_release(&scratch);
    return rc;
}

/* the attributes after an element's name, up to and including '>' or "/>"; *empty for
 * the latter */
static int xml_attributes(struct xml_reader *x, int *empty)
{
    const char *names[S3_XML_ATTR_MAX];
    size_t lens[S3_XML_ATTR_MAX];
    int count = 0;

    for (;;) {
        size_t ws = xml_ws(x);
        const char *name;
        size_t len;

        if (xml_at(x, "/>")) {
            x->i += 2;
            *empty = 1;
            return 0;
        }
        if (xml_at(x, ">")) {
            x->i++;
            *empty = 0;
            return 0;
        }
        if (x->i >= x->n)
            return xml_fail(x, "an unterminated start tag");
        if (ws == 0)
            return xml_fail(x, "an attribute not preceded by a space");
        if (xml_name(x, &name, &len) < 0)
            return -1;
        if (count == S3_XML_ATTR_MAX)
            return err_set(x->err, ERR_LIMIT, "MalformedXML: more than %d attributes at byte %zu",
                           S3_XML_ATTR_MAX, x->i);
        for (int k = 0; k < count; k++)
            if (lens[k] == len && memcmp(names[k], name, len) == 0)
                return xml_fail(x, "an attribute given twice");
        names[count] = name;
        lens[count++] = len;
        xml_ws(x);
        if (!xml_at(x, "="))
            return xml_fail(x, "an attribute without '='");
        x->i++;
        xml_ws(x);
        if (xml_attr_value(x) < 0)
            return -1;
    }
}

/* the content of an element up to and including its end tag </name> */
static int xml_content(struct xml_reader *x, int depth, const char *name, size_t len,
                       struct s3_xml_node *node, struct buf *text);

/* an element at '<'; *out is made in the arena */
static int xml_element(struct xml_reader *x, int depth, struct s3_xml_node **out)
{
    struct s3_xml_node *node;
    struct buf text;
    const char *name;
    const char *colon;
    size_t len;
    int empty = 0;
    int rc;

    if (depth >= S3_XML_DEPTH_MAX)
        return err_set(x->err, ERR_LIMIT,
                       "MalformedXML: elements nested deeper than %d at byte %zu", S3_XML_DEPTH_MAX,
                       x->i);
    x->i++;
    if (xml_name(x, &name, &len) < 0 || xml_attributes(x, &empty) < 0)
        return -1;
    node = arena_alloc(x->a, sizeof(*node));
    memset(node, 0, sizeof(*node));
    colon = memrchr(name, ':', len);
    node->name = colon ? arena_strndup(x->a, colon + 1, len - (size_t)(colon + 1 - name))
                       : arena_strndup(x->a, name, len);
    buf_init(&text, S3_XML_TEXT_MAX);
    rc = empty ? 0 : xml_content(x, depth, name, len, node, &text);
    if (rc == 0) {
        node->text = arena_strndup(x->a, text.len ? text.buf : "", text.len);
        node->text_len = text.len;
        *out = node;
    }
    buf_release(&text);
    return rc;
}

static int xml_content(struct xml_reader *x, int depth, const char *name, size_t len,
                       struct s3_xml_node *node, struct buf *text)
{
    struct s3_xml_node **tail = &node->child;

    for (;;) {
        const char *p;
        size_t stop;

        if (x->i >= x->n)
            return xml_fail(x, "an element without its end tag");
        if (xml_at(x, "</")) {
            const char *end;
            size_t elen;

            x->i += 2;
            if (xml_name(x, &end, &elen) < 0)
                return -1;
            if (elen != len || memcmp(end, name, len) != 0)
                return xml_fail(x, "an end tag that does not match its start tag");
            xml_ws(x);
            if (!xml_at(x, ">"))
                return xml_fail(x, "an unterminated end tag");
            x->i++;
            return 0;
        }
        if (xml_at(x, "<!--")) {
            x->i += 4;
            if (xml_until(x, "-->", "--", "a malformed comment") < 0)
                return -1;
        } else if (xml_at(x, "<![CDATA[")) {
            x->i += 9;
            p = memmem(x->s + x->i, x->n - x->i, "]]>", 3);
            if (!p)
                return xml_fail(x, "an unterminated CDATA section");
            stop = (size_t)(p - x->s);
            if (xml_text_add(x, text, x->s + x->i, stop - x->i) < 0)
                return -1;
            x->i = stop + 3;
        } else if (xml_at(x, "<?")) {
            if (xml_pi(x, 0) < 0)
                return -1;
        } else if (xml_at(x, "<!")) {
            return xml_fail(x, "markup that is not allowed here");
        } else if (xml_at(x, "<")) {
            struct s3_xml_node *child;

            if (xml_element(x, depth + 1, &child) < 0)
                return -1;
            /* white space that only lays children out is not text (a pretty-printed
             * list of 10000 parts would otherwise overflow the limit) */
            if (!node->child && xml_blank(text->buf, text->len))
                buf_reset(text);
            *tail = child;
            tail = &child->next;
        } else if (xml_at(x, "&")) {
            if (xml_reference(x, text) < 0)
                return -1;
        } else {
            stop = x->i;
            while (stop < x->n && x->s[stop] != '<' && x->s[stop] != '&')
                stop++;
            if (memmem(x->s + x->i, stop - x->i, "]]>", 3))
                return xml_fail(x, "']]>' in text");
            if (!(node->child && xml_blank(x->s + x->i, stop - x->i)) &&
                xml_text_add(x, text, x->s + x->i, stop - x->i) < 0)
                return -1;
            x->i = stop;
        }
    }
}

int s3__xml_parse(struct arena *a, const char *s, size_t n, struct s3_xml_node **root,
                  struct err *err)
{
    struct xml_reader x = {a, s, n, 0, err};

    *root = NULL;
    if (!s3__xml_exact(s, n))
        return err_set(err, ERR_INVALID,
                       "MalformedXML: The XML you provided was not well-formed (it is not UTF-8 "
                       "text made of XML characters)");
    if (xml_at(&x, "\xef\xbb\xbf"))
        x.i += 3;
    if (xml_at(&x, "<?xml") && x.i + 5 < n && xml_is_ws(s[x.i + 5]) && xml_pi(&x, 1) < 0)
        return -1;
    if (xml_misc(&x) < 0)
        return -1;
    if (!xml_at(&x, "<") || xml_at(&x, "<!") || xml_at(&x, "</"))
        return xml_fail(&x, "no root element");
    if (xml_element(&x, 0, root) < 0 || xml_misc(&x) < 0)
        return -1;
    if (x.i != n)
        return xml_fail(&x, "content after the root element");
    return 0;
}

const struct s3_xml_node *s3__xml_child(const struct s3_xml_node *parent, const char *name)
{
    for (const struct s3_xml_node *c = parent->child; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* the text of node without surrounding white space, into out[cap]; -1 if it is longer */
static int xml_trimmed(const struct s3_xml_node *node, char *out, size_t cap)
{
    const char *s = node->text;
    size_t n = node->text_len;

    while (n > 0 && xml_is_ws(*s)) {
        s++;
        n--;
    }
    while (n > 0 && xml_is_ws(s[n - 1]))
        n--;
    if (n >= cap)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

int s3__complete_parse(struct arena *a, const char *s, size_t n, struct store_part_ref **refs,
                       size_t *count, struct err *err)
{
    struct s3_xml_node *root;
    struct store_part_ref *out;
    size_t parts = 0;
    size_t k = 0;

    if (s3__xml_parse(a, s, n, &root, err) < 0)
        return -1;
    if (strcmp(root->name, "CompleteMultipartUpload") != 0)
        return err_set(err, ERR_INVALID,
                       "MalformedXML: the document is a <%.64s>, not a <CompleteMultipartUpload>",
                       root->name);
    for (const struct s3_xml_node *c = root->child; c; c = c->next)
        parts += strcmp(c->name, "Part") == 0;
    if (parts == 0)
        return err_set(err, ERR_INVALID, "MalformedXML: the part list is empty");
    if (parts > STORE_PART_MAX)
        return err_set(err, ERR_LIMIT, "InvalidArgument: more than %d parts", STORE_PART_MAX);
    out = arena_alloc(a, parts * sizeof(*out));
    for (const struct s3_xml_node *c = root->child; c; c = c->next) {
        const struct s3_xml_node *num;
        const struct s3_xml_node *etag;
        char text[32];
        int64_t v;
        size_t len;

        if (strcmp(c->name, "Part") != 0)
            continue;
        num = s3__xml_child(c, "PartNumber");
        if (!num)
            return err_set(err, ERR_INVALID, "MalformedXML: a <Part> without a <PartNumber>");
        if (xml_trimmed(num, text, sizeof(text)) < 0 || util_parse_i64(text, &v) < 0 || v < 1 ||
            v > STORE_PART_MAX)
            return err_set(err, ERR_INVALID, "InvalidArgument: part number '%.20s' is not 1..%d",
                           num->text, STORE_PART_MAX);
        out[k].number = (int)v;
        etag = s3__xml_child(c, "ETag");
        if (!etag)
            return err_set(err, ERR_INVALID, "MalformedXML: part %d has no <ETag>", (int)v);
        if (xml_trimmed(etag, out[k].etag, sizeof(out[k].etag)) < 0)
            return err_set(err, ERR_INVALID, "InvalidPart: the ETag of part %d is too long",
                           (int)v);
        len = strlen(out[k].etag);
        if (len >= 2 && out[k].etag[0] == '"' && out[k].etag[len - 1] == '"') {
            memmove(out[k].etag, out[k].etag + 1, len - 2);
            out[k].etag[len - 2] = '\0';
        }
        k++;
    }
    *refs = out;
    *count = k;
    return 0;
}
