/*
 * Images through libvips, header only: the loader is found from the content, must be one
 * of the table below, and is called by name so the path is never parsed for options.
 */
#include "media/media_int.h"

#include <string.h>

/** An image format acervo accepts: its libvips loader and its names. */
struct image_format {
    const char *loader; /* libvips nickname */
    const char *format;
    const char *long_name;
    const char *mime; /* NULL: libmagic's (HEIF holds HEIC and AVIF) */
};

static const struct image_format image_formats[] = {
    {"jpegload", "jpeg", "JPEG", "image/jpeg"},    {"pngload", "png", "PNG", "image/png"},
    {"tiffload", "tiff", "TIFF", "image/tiff"},    {"webpload", "webp", "WebP", "image/webp"},
    {"gifload", "gif", "GIF", "image/gif"},        {"heifload", "heif", "HEIF", NULL},
    {"jp2kload", "jp2", "JPEG 2000", "image/jp2"}, {"jxlload", "jxl", "JPEG XL", "image/jxl"},
};

/* the last warning libvips (or a library under it) logged: some failures say no more */
static _Thread_local char vips_last_warning[256];

static void vips_log_capture(const gchar *domain, GLogLevelFlags level, const gchar *msg,
                             gpointer data)
{
    (void)domain;
    (void)level;
    (void)data;
    if (msg && msg[0])
        media__text_copy(vips_last_warning, sizeof(vips_last_warning), msg, SIZE_MAX, 1);
}

void media__vips_log_init(void)
{
    g_log_set_handler("VIPS", G_LOG_LEVEL_MASK, vips_log_capture, NULL);
    g_log_set_handler("GLib-GObject", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE, vips_log_capture,
                      NULL);
}

void media__vips_error(char *out, size_t n)
{
    const char *text = vips_error_buffer();
    size_t len;

    if (!text[0])
        text = vips_last_warning;
    len = strcspn(text, "\n");

    while (len > 0 && (text[len - 1] == ' ' || text[len - 1] == '.'))
        len--;
    media__text_copy(out, n, text, len, 1);
    vips_error_clear();
    vips_last_warning[0] = '\0';
    if (!out[0])
        snprintf(out, n, "unknown error");
}

static void set_str(char *dst, size_t n, const char *s)
{
    media__text_copy(dst, n, s, SIZE_MAX, 1);
}

const char *media__image_path(const struct media__src *src, char *buf, size_t n)
{
    size_t len = strlen(src->path);

    /* libvips reads "name.jpg[opts]" as options: such a name is reached through the fd */
    if (len > 0 && src->path[len - 1] == ']') {
        snprintf(buf, n, "/proc/self/fd/%d", src->fd);
        return buf;
    }
    return src->path;
}

int media__image_open(struct media__src *src, struct err *err)
{
    const struct image_format *f = NULL;
    const char *loader, *nick, *vpath;
    char fdpath[64], reason[256];
    int64_t w, h;

    vpath = media__image_path(src, fdpath, sizeof(fdpath));
    vips_last_warning[0] = '\0';
    loader = vips_foreign_find_load(vpath);
    if (!loader) {
        vips_error_clear();
        /* heifload is a loadable module of libvips: say so when it is the one missing */
        if ((strcmp(src->magic_mime, "image/heic") == 0 ||
             strcmp(src->magic_mime, "image/heif") == 0 ||
             strcmp(src->magic_mime, "image/avif") == 0) &&
            vips_type_find("VipsOperation", "heifload") == 0)
            return err_set(err, ERR_UNSUPPORTED,
                           "unsupported image: %s needs libvips' heifload, which this libvips "
                           "lacks (libmagic: %s)",
                           src->magic_mime, src->kind.magic);
        return err_set(err, ERR_UNSUPPORTED,
                       "unsupported image: libvips cannot read it (libmagic: %s)", src->kind.magic);
    }
    nick = vips_nickname_find(g_type_from_name(loader));
    for (size_t i = 0; nick && i < ARRAY_LEN(image_formats); i++)
        if (strcmp(image_formats[i].loader, nick) == 0)
            f = &image_formats[i];
    if (!f)
        return err_set(err, ERR_UNSUPPORTED,
                       "unsupported image format (libvips loader %s; libmagic: %s)",
                       nick ? nick : loader, src->kind.magic);
    if (vips_call(f->loader, vpath, &src->img, "access", VIPS_ACCESS_SEQUENTIAL, NULL) != 0) {
        src->img = NULL;
        media__vips_error(reason, sizeof(reason));
        return err_set(err, ERR_UNSUPPORTED, "invalid %s: %s", f->long_name, reason);
    }
    w = vips_image_get_width(src->img);
    h = vips_image_get_height(src->img);
    if (w <= 0 || h <= 0)
        return err_set(err, ERR_UNSUPPORTED, "invalid %s: no pixels", f->long_name);
    if (w * h > MEDIA_MAX_PIXELS)
        return err_set(err, ERR_LIMIT, "image is %lld x %lld pixels, over the limit of %lld",
                       (long long)w, (long long)h, (long long)MEDIA_MAX_PIXELS);

    src->kind.type = MEDIA_IMAGE;
    set_str(src->kind.format, sizeof(src->kind.format), f->format);
    set_str(src->kind.format_long_name, sizeof(src->kind.format_long_name), f->long_name);
    set_str(src->kind.container, sizeof(src->kind.container), f->format);
    if (f->mime) {
        set_str(src->kind.mime_type, sizeof(src->kind.mime_type), f->mime);
    } else if (strcmp(src->magic_mime, "image/avif") == 0) {
        set_str(src->kind.mime_type, sizeof(src->kind.mime_type), "image/avif");
        set_str(src->kind.format, sizeof(src->kind.format), "avif");
        set_str(src->kind.format_long_name, sizeof(src->kind.format_long_name), "AVIF");
        set_str(src->kind.container, sizeof(src->kind.container), "avif");
    } else if (strcmp(src->magic_mime, "image/heic") == 0) {
        set_str(src->kind.mime_type, sizeof(src->kind.mime_type), "image/heic");
    } else {
        set_str(src->kind.mime_type, sizeof(src->kind.mime_type), "image/heif");
    }
    return 0;
}

/* ---- ICC profile description -------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* UTF-16BE (no surrogates) as UTF-8 into out; '?' for what is not in the BMP */
static void utf16be_copy(char *out, size_t n, const unsigned char *p, size_t units)
{
    size_t o = 0;

    for (size_t i = 0; i < units; i++) {
        unsigned c = (unsigned)p[2 * i] << 8 | p[2 * i + 1];
        if (c == 0)
            break;
        if (c >= 0xd800 && c <= 0xdfff)
            c = '?';
        if (c < 0x80 && o + 1 < n) {
            out[o++] = (char)c;
        } else if (c < 0x800 && o + 2 < n) {
            out[o++] = (char)(0xc0 | c >> 6);
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else if (c >= 0x800 && o + 3 < n) {
            out[o++] = (char)(0xe0 | c >> 12);
            out[o++] = (char)(0x80 | ((c >> 6) & 0x3f));
            out[o++] = (char)(0x80 | (c & 0x3f));
        } else {
            break;
        }
    }
    out[o] = '\0';
}

/* the 'desc' tag of an ICC profile (v2 textDescriptionType or v4 mluc); 0 if none */
static int icc_description(const unsigned char *p, size_t n, char *out, size_t outn)
{
    uint32_t count;
    char tmp[256];

    out[0] = '\0';
    if (n < 132)
        return 0;
    count = be32(p + 128);
    for (uint32_t i = 0; i < count && i < 100 && 132 + (size_t)(i + 1) * 12 <= n; i++) {
        const unsigned char *t = p + 132 + (size_t)i * 12;
        size_t off = be32(t + 4), size = be32(t + 8);
        const unsigned char *d;

        if (memcmp(t, "desc", 4) != 0)
            continue;
        if (off > n || size > n - off || size < 12)
            return 0;
        d = p + off;
        if (memcmp(d, "desc", 4) == 0) {
            size_t len = be32(d + 8);
            if (len > size - 12)
                len = size - 12;
            media__text_copy(out, outn, (const char *)d + 12, len, 1);
        } else if (memcmp(d, "mluc", 4) == 0 && size >= 28) {
            size_t len = be32(d + 20), soff = be32(d + 24); /* the first record */
            if (be32(d + 8) == 0 || be32(d + 12) < 12 || soff > size || len > size - soff)
                return 0;
            utf16be_copy(tmp, sizeof(tmp), d + soff, len / 2);
            media__text_copy(out, outn, tmp, SIZE_MAX, 1);
        }
        return out[0] != '\0';
    }
    return 0;
}

static json_t *icc_json(VipsImage *img)
{
    const void *data;
    size_t n;
    char desc[128];

    if (vips_image_get_typeof(img, VIPS_META_ICC_NAME) == 0 ||
        vips_image_get_blob(img, VIPS_META_ICC_NAME, &data, &n) != 0) {
        vips_error_clear();
        return json_false();
    }
    if (icc_description(data, n, desc, sizeof(desc)))
        return json_string(desc);
    return json_true();
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static const char *color_space(VipsInterpretation i)
{
    switch (i) {
    case VIPS_INTERPRETATION_sRGB:
    case VIPS_INTERPRETATION_RGB16:
    case VIPS_INTERPRETATION_RGB:
        return "rgb";
    case VIPS_INTERPRETATION_scRGB:
        return "scrgb";
    case VIPS_INTERPRETATION_B_W:
    case VIPS_INTERPRETATION_GREY16:
        return "gray";
    case VIPS_INTERPRETATION_CMYK:
        return "cmyk";
    case VIPS_INTERPRETATION_LAB:
    case VIPS_INTERPRETATION_LABQ:
    case VIPS_INTERPRETATION_LABS:
        return "lab";
    case VIPS_INTERPRETATION_XYZ:
        return "xyz";
    default:
        return NULL;
    }
}

static int bits_per_sample(VipsImage *img)
{
    int bits;

    if (vips_image_get_typeof(img, "bits-per-sample") != 0 &&
        vips_image_get_int(img, "bits-per-sample", &bits) == 0 && bits > 0 && bits <= 64)
        return bits;
    vips_error_clear();
    return (int)vips_format_sizeof(vips_image_get_format(img)) * 8;
}

void media__image_json(struct media__src *src, json_t *o, struct media__summary *sum)
{
    VipsImage *img = src->img;
    VipsInterpretation interp = vips_image_get_interpretation(img);
    const char *cs = color_space(interp);
    int w = vips_image_get_width(img), h = vips_image_get_height(img);
    int orientation = vips_image_get_orientation(img);
    int swap = orientation >= 5 && orientation <= 8;
    const void *exif;
    size_t exif_n;

    json_object_set_new(o, "width", json_integer(w));
    json_object_set_new(o, "height", json_integer(h));
    json_object_set_new(o, "bands", json_integer(vips_image_get_bands(img)));
    json_object_set_new(o, "interpretation",
                        json_string(vips_enum_nick(VIPS_TYPE_INTERPRETATION, interp)));
    json_object_set_new(o, "color_space", cs ? json_string(cs) : json_null());
    json_object_set_new(o, "bits_per_sample", json_integer(bits_per_sample(img)));
    json_object_set_new(o, "has_alpha", json_boolean(vips_image_hasalpha(img)));
    json_object_set_new(o, "orientation", json_integer(orientation));
    json_object_set_new(o, "display_width", json_integer(swap ? h : w));
    json_object_set_new(o, "display_height", json_integer(swap ? w : h));
    json_object_set_new(o, "icc_profile", icc_json(img));
    json_object_set_new(o, "pages", json_integer(vips_image_get_n_pages(img)));
    if (vips_image_get_typeof(img, VIPS_META_EXIF_NAME) != 0 &&
        vips_image_get_blob(img, VIPS_META_EXIF_NAME, &exif, &exif_n) == 0)
        json_object_set_new(o, "exif", media__exif_json(exif, exif_n, sum->captured_at));
    else
        json_object_set_new(o, "exif", json_null());
    vips_error_clear();

    sum->width = swap ? h : w;
    sum->height = swap ? w : h;
}
