/*
 * libFuzzer target for the SigV4 parsers (src/s3/sigv4.c): the Authorization header, the
 * presigned query and, when either parses, the canonicalisation done by sigv4_verify.
 * Not built by default; build and run with e.g.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -std=c17 \
 *     -include src/core/banned.h -Isrc tests/fuzz/fuzz_sigv4.c src/s3/sigv4.c \
 *     src/core/{arena,buf,err,mem,util}.c -lcrypto -o fuzz_sigv4
 *   ./fuzz_sigv4 -max_len=8192
 *
 * Input layout: lines separated by '\n': Authorization, path, query, then headers as
 * "name:value" (names as given; the verifier asks for lowercase ones).
 */
#include "s3/sigv4.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_HEADERS 16

/** Headers of a fuzzed request. */
struct fuzz_headers {
    const char *name[FUZZ_MAX_HEADERS];
    const char *value[FUZZ_MAX_HEADERS];
    size_t count;
};

static const char *fuzz_header(void *ctx, const char *name)
{
    const struct fuzz_headers *h = ctx;

    for (size_t i = 0; i < h->count; i++)
        if (strcmp(h->name[i], name) == 0)
            return h->value[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = xmalloc(size + 1);
    const char *line[3] = {"", "/", ""};
    char *p = copy, *end;
    struct fuzz_headers h;
    struct sigv4_request req;
    struct sigv4_auth auth;
    struct err err;
    size_t n = 0;

    memcpy(copy, data, size);
    copy[size] = '\0';
    end = copy + strlen(copy);
    memset(&h, 0, sizeof(h));
    while (p < end) {
        char *nl = strchr(p, '\n');

        if (nl)
            *nl = '\0';
        if (n < 3) {
            line[n++] = p;
        } else if (h.count < FUZZ_MAX_HEADERS) {
            char *colon = strchr(p, ':');
            if (colon) {
                *colon = '\0';
                h.name[h.count] = p;
                h.value[h.count] = colon + 1;
                h.count++;
            }
        }
        if (!nl)
            break;
        p = nl + 1;
    }

    memset(&req, 0, sizeof(req));
    req.method = "GET";
    req.path = line[1];
    req.query = line[2];
    req.header = fuzz_header;
    req.ctx = &h;
    for (int s3 = 0; s3 < 2; s3++) {
        req.s3 = s3;
        if (sigv4_parse_header(&req, line[0], &auth, &err) == 0)
            (void)sigv4_verify(&req, &auth, "secret", NULL, auth.request_time, 900, &err);
        if (sigv4_parse_query(&req, &auth, &err) == 1)
            (void)sigv4_verify(&req, &auth, "secret", NULL, auth.request_time, 900, &err);
    }
    free(copy);
    return 0;
}
