/*
 * libFuzzer target for the S3 endpoint's XML (src/s3/xml.c): the strict reader on any
 * bytes, the CompleteMultipartUpload reading on top of it, and the escaping of answers,
 * whose output must always read back (and give back exact text unchanged).
 * Not built by default; build and run with e.g.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=c17 \
 *     -include src/core/banned.h -Isrc tests/fuzz/fuzz_s3_xml.c src/s3/xml.c \
 *     src/core/{arena,buf,err,log,mem,util}.c -lcrypto -o fuzz_s3_xml
 *   ./fuzz_s3_xml -max_len=65536
 */
#include "s3/s3_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* every node's text is NUL-terminated UTF-8 of its stated length; depth is bounded */
static void fuzz_walk(const struct s3_xml_node *n, int depth)
{
    for (; n; n = n->next) {
        if (depth > S3_XML_DEPTH_MAX || strlen(n->text) != n->text_len ||
            n->text_len > S3_XML_TEXT_MAX || !util_utf8_valid(n->text, n->text_len) ||
            strlen(n->name) > S3_XML_NAME_MAX)
            abort();
        fuzz_walk(n->child, depth + 1);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct s3_xml_node *root;
    struct store_part_ref *refs;
    struct arena a;
    struct err e;
    struct buf doc;
    size_t n;

    arena_init(&a);
    if (s3__xml_parse(&a, s, size, &root, &e) == 0)
        fuzz_walk(root, 0);
    else if (strncmp(e.msg, "MalformedXML:", 13) != 0)
        abort();
    if (s3__complete_parse(&a, s, size, &refs, &n, &e) == 0) {
        if (n == 0 || n > STORE_PART_MAX)
            abort();
        for (size_t i = 0; i < n; i++)
            if (refs[i].number < 1 || refs[i].number > STORE_PART_MAX)
                abort();
    }
    arena_release(&a);

    /* whatever the escaping makes of the input reads back as one element */
    buf_init(&doc, 0);
    buf_adds(&doc, "<k>", NULL);
    s3__xml_text(&doc, s, size, 0);
    buf_adds(&doc, "</k>", NULL);
    arena_init(&a);
    if (s3__xml_parse(&a, doc.buf, doc.len, &root, &e) < 0) {
        /* only the text limit may stop it */
        if (e.code != ERR_LIMIT)
            abort();
    } else if (s3__xml_exact(s, size) &&
               (root->text_len != size || memcmp(root->text, s, size) != 0)) {
        abort();
    }
    arena_release(&a);
    buf_release(&doc);
    return 0;
}
