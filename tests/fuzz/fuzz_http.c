/*
 * libFuzzer target for the HTTP/1.1 request parser (src/http/parse.c): the search for a
 * head's end fed in pieces, the head's parse, and the chunked decoder over what follows,
 * also fed in pieces. Not built by default; build and run with e.g.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=c17 \
 *     -include src/core/banned.h -Isrc tests/fuzz/fuzz_http.c src/http/parse.c \
 *     src/core/{arena,buf,err,mem,util}.c -lcrypto -o fuzz_http
 *   ./fuzz_http -max_len=65536
 *
 * Input layout: one byte giving the size of the pieces bytes arrive in (1 to 256), then the
 * bytes a client sends: a request head, then a chunked body.
 */
#include "http/http_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* checks what the parser promises about a head it accepted */
static void head_check(const struct http__head *h)
{
    if (h->minor != 0 && h->minor != 1)
        abort();
    if (h->framing == HTTP_BODY_CHUNKED && h->content_length != -1)
        abort();
    if (h->framing == HTTP_BODY_LENGTH && h->content_length <= 0)
        abort();
    if (h->path[0] != '/' && strcmp(h->path, "*") != 0)
        abort();
    if (h->nfields > HTTP_MAX_FIELDS)
        abort();
    for (size_t i = 0; i < h->nfields; i++)
        if (!h->fields[i].name[0] || strpbrk(h->fields[i].value, "\r\n"))
            abort();
}

/* decodes a chunked body in pieces of step bytes; the data never exceeds the input */
static void chunked_run(const char *p, size_t n, size_t step)
{
    struct http__chunked c;
    struct err e;
    size_t off = 0, avail = 0, body = 0;

    http__chunked_init(&c);
    while (off < n && !http__chunked_done(&c)) {
        const char *d;
        size_t dn;
        ssize_t used;

        avail = avail + step < n ? avail + step : n;
        if (off == avail)
            continue;
        used = http__chunked_decode(&c, p + off, avail - off, &d, &dn, &e);
        if (used < 0)
            return;
        if (dn && (d < p + off || d + dn > p + off + (size_t)used))
            abort();
        body += dn;
        off += (size_t)used;
    }
    if (body > n)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data + 1;
    size_t n, step, pos = 0, avail = 0;
    ssize_t end = 0;
    struct err e;

    if (size < 1)
        return 0;
    step = (size_t)data[0] + 1;
    n = size - 1;
    while (end == 0 && avail < n) {
        avail = avail + step < n ? avail + step : n;
        end = http__head_scan(in, avail, &pos, &e);
    }
    if (end > 0) {
        struct arena a;
        struct http__head h;
        char *copy;

        arena_init(&a);
        copy = arena_strndup(&a, in, (size_t)end);
        if (http__head_parse(copy, (size_t)end, &h, &a, &e) == 0)
            head_check(&h);
        arena_release(&a);
        chunked_run(in + end, n - (size_t)end, step);
    } else {
        chunked_run(in, n, step);
    }
    return 0;
}
