/*
 * acervo-probe: the type and technical metadata of one media file, as one line of JSON.
 *
 *   acervo-probe [--detect] FILE
 *   acervo-probe --thumbs OUT_DIR SIZE[,SIZE...] FILE
 *
 * Worker processes run it as a child, with an address-space limit and a timeout, on
 * every master they ingest, and with --thumbs to make the WebP thumbnails of an image
 * (OUT_DIR/thumb_SIZE.webp; the JSON lists them): untrusted media is parsed and decoded
 * here, never in acervod. It is a program of its own so the decoding libraries (FFmpeg,
 * libvips, libexif, libmagic, libwebp) are not even loaded by acervod's processes. Exit
 * status: 0 the JSON is on stdout; 1 an internal error; 2 a usage error; 3 FILE is not
 * supported media or is over a limit, with the reason on stderr as one line
 * "acervo-probe: REASON" (docs/internals/media.md).
 */
#include "core/core.h"
#include "media/media.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int usage(void)
{
    fprintf(stderr, "usage: acervo-probe [--detect] FILE\n"
                    "       acervo-probe --thumbs OUT_DIR SIZE[,SIZE...] FILE\n");
    return MEDIA_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    const char *file = NULL, *thumbs_dir = NULL;
    int sizes[MEDIA_MAX_THUMBS + 1];
    struct err err = {0};
    json_t *out = NULL;
    char *text = NULL;
    int detect = 0, rc = MEDIA_EXIT_ERROR;

    umask(077); /* thumbnails are private to the worker's user, as everything it writes */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--detect") == 0 && !detect && !thumbs_dir) {
            detect = 1;
        } else if (strcmp(argv[i], "--thumbs") == 0 && !detect && !thumbs_dir && i + 2 < argc) {
            thumbs_dir = argv[++i];
            if (media_thumbs_sizes_parse(argv[++i], sizes, &err) < 0) {
                fprintf(stderr, "acervo-probe: %s\n", err.msg);
                return usage();
            }
        } else if (strcmp(argv[i], "--") == 0 && i + 2 == argc && !file) {
            file = argv[++i];
        } else if (argv[i][0] == '-' || file) {
            return usage();
        } else {
            file = argv[i];
        }
    }
    if (!file)
        return usage();
    if (media_libs_init(argv[0], &err) < 0)
        goto fail;
    if (detect) {
        struct media_kind kind;
        if (media_kind_detect(file, &kind, &err) < 0)
            goto fail;
        out = media_kind_json(&kind);
    } else if (thumbs_dir) {
        if (media_thumbs_make(file, sizes, thumbs_dir, &out, &err) < 0)
            goto fail;
    } else if (media_file_probe(file, &out, &err) < 0) {
        goto fail;
    }
    text = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (!text) {
        err_set(&err, ERR_INTERNAL, "cannot serialise the result");
        goto fail;
    }
    if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
        err_errno(&err, ERR_IO, "cannot write the result");
        goto fail;
    }
    rc = MEDIA_EXIT_OK;
    goto out;
fail:
    fprintf(stderr, "acervo-probe: %s\n", err.msg);
    if (err.code == ERR_UNSUPPORTED || err.code == ERR_LIMIT)
        rc = MEDIA_EXIT_UNSUPPORTED;
out:
    free(text);
    json_decref(out);
    media_libs_release();
    return rc;
}
