/*
 * Detection: libmagic classifies the content, then the library that will read the file
 * confirms it (libvips' loader lookup for images, libavformat for audio and video).
 */
#include "media/media_int.h"

#include <errno.h>
#include <fcntl.h>
#include <magic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int libs_ready;

int media_libs_init(const char *argv0, struct err *err)
{
    if (libs_ready)
        return 0;
    if (VIPS_INIT(argv0 ? argv0 : "acervod") != 0) {
        char msg[200];
        media__text_copy(msg, sizeof(msg), vips_error_buffer(), SIZE_MAX, 1);
        vips_error_clear();
        return err_set(err, ERR_BACKEND, "libvips cannot start: %s", msg);
    }
    /* loaders libvips marks untrusted (ImageMagick, matio, ...) are refused outright */
    vips_block_untrusted_set(TRUE);
    vips_cache_set_max(0);
    vips_concurrency_set(1);
    media__vips_log_init();
    media__av_log_init();
    libs_ready = 1;
    return 0;
}

void media_libs_release(void)
{
    if (!libs_ready)
        return;
    vips_shutdown();
    libs_ready = 0;
}

const char *media_type_name(enum media_type t)
{
    switch (t) {
    case MEDIA_VIDEO:
        return "video";
    case MEDIA_AUDIO:
        return "audio";
    case MEDIA_IMAGE:
        return "image";
    }
    return "unknown";
}

json_t *media_kind_json(const struct media_kind *k)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string(media_type_name(k->type)));
    json_object_set_new(o, "mime_type", media__json_text(k->mime_type, sizeof(k->mime_type)));
    json_object_set_new(o, "format", media__json_text(k->format, sizeof(k->format)));
    json_object_set_new(o, "format_long_name",
                        media__json_text(k->format_long_name, sizeof(k->format_long_name)));
    json_object_set_new(o, "magic", media__json_text(k->magic, sizeof(k->magic)));
    return o;
}

/* libmagic's MIME type and description of the open file */
static int magic_classify(struct media__src *src, struct err *err)
{
    magic_t m = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS);
    const char *r;
    int rc = -1;

    if (!m)
        return err_errno(err, ERR_BACKEND, "libmagic cannot start");
    if (magic_load(m, NULL) != 0) {
        err_set(err, ERR_BACKEND, "libmagic cannot load its database: %s",
                magic_error(m) ? magic_error(m) : "unknown error");
        goto out;
    }
    r = magic_descriptor(m, src->fd);
    if (!r || lseek(src->fd, 0, SEEK_SET) < 0) {
        err_set(err, ERR_IO, "libmagic cannot read the file: %s",
                magic_error(m) ? magic_error(m) : "unknown error");
        goto out;
    }
    media__text_copy(src->magic_mime, sizeof(src->magic_mime), r, SIZE_MAX, 1);
    if (magic_setflags(m, MAGIC_NO_CHECK_COMPRESS) < 0) {
        err_set(err, ERR_BACKEND, "libmagic: %s", magic_error(m) ? magic_error(m) : "bad flags");
        goto out;
    }
    r = magic_descriptor(m, src->fd);
    if (!r || lseek(src->fd, 0, SEEK_SET) < 0) {
        err_set(err, ERR_IO, "libmagic cannot read the file: %s",
                magic_error(m) ? magic_error(m) : "unknown error");
        goto out;
    }
    media__text_copy(src->kind.magic, sizeof(src->kind.magic), r, SIZE_MAX, 1);
    rc = 0;
out:
    magic_close(m);
    return rc;
}

static int has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

int media__src_open(struct media__src *src, const char *path, struct err *err)
{
    const char *mime;
    struct stat sb;

    memset(src, 0, sizeof(*src));
    src->fd = -1;
    src->path = path;
    if (!libs_ready)
        return err_set(err, ERR_INTERNAL, "media_libs_init was not called");
    /* O_NONBLOCK: a FIFO must not block the open; it is refused just below */
    src->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (src->fd < 0) {
        if (errno == ENOENT)
            return err_set(err, ERR_NOTFOUND, "no such file: %s", path);
        return err_errno(err, ERR_IO, "cannot open %s", path);
    }
    if (fstat(src->fd, &sb) < 0) {
        err_errno(err, ERR_IO, "cannot stat %s", path);
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        err_set(err, ERR_UNSUPPORTED, "not a regular file");
        goto fail;
    }
    src->size = (int64_t)sb.st_size;
    if (src->size == 0) {
        err_set(err, ERR_UNSUPPORTED, "the file is empty");
        goto fail;
    }
    if (magic_classify(src, err) < 0)
        goto fail;

    mime = src->magic_mime;
    if (has_prefix(mime, "image/")) {
        if (media__image_open(src, err) < 0)
            goto fail;
    } else if (has_prefix(mime, "video/") || has_prefix(mime, "audio/") ||
               strcmp(mime, "application/mxf") == 0 || strcmp(mime, "application/ogg") == 0) {
        if (media__av_open(src, 0, err) < 0)
            goto fail;
    } else if (strcmp(mime, "application/octet-stream") == 0) {
        /* libmagic misses some containers (MPEG-TS without a leading sync run, raw MP3) */
        if (media__av_open(src, 1, err) < 0)
            goto fail;
    } else {
        err_set(err, ERR_UNSUPPORTED, "unrecognised content (libmagic: %s)", src->kind.magic);
        goto fail;
    }
    return 0;
fail:
    media__src_close(src);
    return -1;
}

void media__src_close(struct media__src *src)
{
    if (src->fmt)
        avformat_close_input(&src->fmt);
    if (src->pb) {
        av_freep(&src->pb->buffer);
        avio_context_free(&src->pb);
    }
    if (src->img) {
        g_object_unref(src->img);
        src->img = NULL;
    }
    if (src->fd >= 0) {
        close(src->fd);
        src->fd = -1;
    }
}

int media_kind_detect(const char *path, struct media_kind *out, struct err *err)
{
    struct media__src src;

    if (media__src_open(&src, path, err) < 0)
        return -1;
    *out = src.kind;
    media__src_close(&src);
    return 0;
}
