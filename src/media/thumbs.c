/*
 * Thumbnails of images: the source is decoded once, shrunk on load to what the largest
 * thumbnail needs (libjpeg's DCT scaling, libwebp's scaled decoding, HEIF's stored
 * thumbnail), turned upright and into sRGB; every smaller size is resized from that
 * decoded image in memory, and each is saved as WebP.
 */
#include "media/media_int.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <webp/encode.h>

/*
 * WebP settings of every thumbnail. Method 2 is the knee measured on 4000x3000 photos
 * (docs/internals/media.md): 4 (libwebp's default) makes files 6% smaller, PSNR within
 * 0.1 dB, for 30% more time per image; 0 and 1 save little time and grow the files.
 */
#define THUMB_QUALITY 80 /* libwebp's Q, as vipsthumbnail's .webp[Q=80] */
#define THUMB_EFFORT  2  /* libwebp's method, 0 (fastest) .. 6 (smallest) */

/** One thumbnail being made. */
struct thumb {
    int64_t bytes;
    int size;          /* requested longest side */
    int width, height; /* as written */
    int written;       /* the file exists: removed if the call fails */
    char file[32];
};

static int sizes_check(const int *sizes, size_t *count, struct err *err)
{
    size_t n;

    for (n = 0; sizes[n] != 0; n++) {
        if (n == MEDIA_MAX_THUMBS)
            return err_set(err, ERR_INVALID, "more than %d thumbnail sizes", MEDIA_MAX_THUMBS);
        if (sizes[n] < 1 || sizes[n] > MEDIA_MAX_THUMB_SIZE)
            return err_set(err, ERR_INVALID, "thumbnail size %d is not within 1..%d", sizes[n],
                           MEDIA_MAX_THUMB_SIZE);
        for (size_t j = 0; j < n; j++)
            if (sizes[j] == sizes[n])
                return err_set(err, ERR_INVALID, "thumbnail size %d is given twice", sizes[n]);
    }
    if (n == 0)
        return err_set(err, ERR_INVALID, "no thumbnail size");
    *count = n;
    return 0;
}

int media_thumbs_sizes_parse(const char *list, int *sizes, struct err *err)
{
    const char *p = list;
    size_t n = 0, count;

    sizes[0] = 0;
    for (;;) {
        const char *start = p;
        long v = 0;

        while (*p >= '0' && *p <= '9' && p - start < 9)
            v = v * 10 + (*p++ - '0');
        if (p == start || (*p != ',' && *p != '\0'))
            return err_set(err, ERR_INVALID,
                           "bad thumbnail size list: want sizes in pixels separated by commas, "
                           "such as 300,800,1200");
        if (v < 1 || v > MEDIA_MAX_THUMB_SIZE)
            return err_set(err, ERR_INVALID, "thumbnail size %ld is not within 1..%d", v,
                           MEDIA_MAX_THUMB_SIZE);
        if (n == MEDIA_MAX_THUMBS)
            return err_set(err, ERR_INVALID, "more than %d thumbnail sizes", MEDIA_MAX_THUMBS);
        sizes[n++] = (int)v;
        sizes[n] = 0;
        if (*p == '\0')
            break;
        p++;
    }
    return sizes_check(sizes, &count, err);
}

/*
 * Removes the metadata blobs (EXIF, XMP, ICC, ...) of img: the thumbnails carry none, and
 * libvips 8.14's heifload leaves its EXIF blob pointing into memory it frees with the
 * loader (webpsave read it after the loader was gone).
 */
static void thumbs_blobs_remove(VipsImage *img)
{
    gchar **names = vips_image_get_fields(img);

    for (size_t i = 0; names[i]; i++)
        if (vips_image_get_typeof(img, names[i]) == VIPS_TYPE_BLOB)
            vips_image_remove(img, names[i]);
    g_strfreev(names);
}

/*
 * The one decode: the source fitted into size x size (never enlarged), upright, as 8-bit
 * sRGB with its alpha, in memory. A source with an ICC profile is transformed to sRGB
 * through it (Display P3, Adobe RGB); CMYK goes through its own profile or libvips'
 * fallback CMYK profile inside vips_colourspace, so it is not given an export profile
 * (libvips 8.14 would apply the CMYK profile a second time to the converted pixels).
 */
static VipsImage *thumbs_decode(const char *vpath, int size, int icc_to_srgb)
{
    VipsImage *t[4] = {NULL, NULL, NULL, NULL}, *in, *mem = NULL;
    int r;

    if (icc_to_srgb)
        r = vips_thumbnail(vpath, &t[0], size, "height", size, "size", VIPS_SIZE_DOWN,
                           "export_profile", "srgb", NULL);
    else
        r = vips_thumbnail(vpath, &t[0], size, "height", size, "size", VIPS_SIZE_DOWN, NULL);
    if (r != 0)
        return NULL;
    in = t[0];
    /* greyscale, 16-bit and whatever an ICC transform left become 8-bit sRGB */
    if (vips_image_get_interpretation(in) != VIPS_INTERPRETATION_sRGB ||
        vips_image_get_format(in) != VIPS_FORMAT_UCHAR) {
        if (vips_colourspace(in, &t[1], VIPS_INTERPRETATION_sRGB, NULL) != 0)
            goto out;
        in = t[1];
    }
    if (vips_image_get_format(in) != VIPS_FORMAT_UCHAR) {
        if (vips_cast_uchar(in, &t[2], NULL) != 0)
            goto out;
        in = t[2];
    }
    /* RGB and alpha; extra bands beyond those are dropped */
    if (vips_image_get_bands(in) > 4) {
        if (vips_extract_band(in, &t[3], 0, "n", 4, NULL) != 0)
            goto out;
        in = t[3];
    }
    mem = vips_image_copy_memory(in); /* decodes, once */
    if (mem)
        thumbs_blobs_remove(mem); /* before the loader goes */
out:
    for (size_t i = 0; i < ARRAY_LEN(t); i++)
        if (t[i])
            g_object_unref(t[i]);
    return mem;
}

/* mem fitted into size x size: mem itself when it is no larger (never upscaled) */
static int thumbs_resize(VipsImage *mem, int size, VipsImage **out)
{
    if (size >= vips_image_get_width(mem) && size >= vips_image_get_height(mem)) {
        g_object_ref(mem);
        *out = mem;
        return 0;
    }
    /* premultiplies alpha around the resize; mem is already upright sRGB */
    return vips_thumbnail_image(mem, out, size, "height", size, "size", VIPS_SIZE_DOWN, "no_rotate",
                                TRUE, NULL);
}

/* img (8-bit sRGB, 3 or 4 bands) as lossy WebP into w, through libwebp's advanced API */
static int thumbs_encode(VipsImage *img, WebPMemoryWriter *w, char *reason, size_t n)
{
    int width = vips_image_get_width(img), height = vips_image_get_height(img);
    int bands = vips_image_get_bands(img), ok;
    WebPConfig config;
    WebPPicture pic;
    VipsImage *mem;

    if (bands != 3 && bands != 4) {
        snprintf(reason, n, "%d bands", bands);
        return -1;
    }
    mem = vips_image_copy_memory(img);
    if (!mem) {
        media__vips_error(reason, n);
        return -1;
    }
    if (!WebPConfigPreset(&config, WEBP_PRESET_DEFAULT, THUMB_QUALITY) || !WebPPictureInit(&pic)) {
        g_object_unref(mem);
        snprintf(reason, n, "libwebp version mismatch");
        return -1;
    }
    config.method = THUMB_EFFORT;
    pic.width = width;
    pic.height = height;
    pic.writer = WebPMemoryWrite;
    pic.custom_ptr = w;
    /* packed rows, as VIPS_IMAGE_ADDR lays a memory image out */
    if (bands == 4)
        ok = WebPPictureImportRGBA(&pic, VIPS_IMAGE_ADDR(mem, 0, 0), width * 4);
    else
        ok = WebPPictureImportRGB(&pic, VIPS_IMAGE_ADDR(mem, 0, 0), width * 3);
    ok = ok && WebPEncode(&config, &pic);
    if (!ok)
        snprintf(reason, n, "libwebp error %d", (int)pic.error_code);
    WebPPictureFree(&pic);
    g_object_unref(mem);
    return ok ? 0 : -1;
}

/*
 * Encodes img into out_dir/thumb_<size>.webp. libwebp directly rather than webpsave:
 * libvips 8.14.1's webpsave ignores strip and always writes an EXIF chunk.
 */
static int thumbs_save(VipsImage *img, const char *out_dir, struct thumb *t, struct err *err)
{
    char path[PATH_MAX], reason[256];
    WebPMemoryWriter w;
    int fd, rc = -1;

    snprintf(t->file, sizeof(t->file), "thumb_%d.webp", t->size);
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", out_dir, t->file) >= sizeof(path))
        return err_set(err, ERR_INVALID, "output directory name too long");
    WebPMemoryWriterInit(&w);
    if (thumbs_encode(img, &w, reason, sizeof(reason)) < 0) {
        err_set(err, ERR_INTERNAL, "cannot encode %s: %s", t->file, reason);
        goto out_clear;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        err_errno(err, ERR_IO, "cannot create %s", path);
        goto out_clear;
    }
    t->written = 1;
    if (util_write_all(fd, w.mem, w.size, err) < 0) {
        close(fd);
        goto out_clear;
    }
    if (close(fd) < 0) {
        err_errno(err, ERR_IO, "cannot write %s", path);
        goto out_clear;
    }
    t->width = vips_image_get_width(img);
    t->height = vips_image_get_height(img);
    t->bytes = (int64_t)w.size;
    rc = 0;
out_clear:
    WebPMemoryWriterClear(&w);
    return rc;
}

static json_t *thumbs_json(const struct thumb *th, size_t n, int w, int h, int orientation)
{
    json_t *o = json_object(), *list = json_array(), *source = json_object();
    int swap = orientation >= 5 && orientation <= 8;

    for (size_t i = 0; i < n; i++) {
        json_t *t = json_object();
        json_object_set_new(t, "size", json_integer(th[i].size));
        json_object_set_new(t, "file", json_string(th[i].file));
        json_object_set_new(t, "width", json_integer(th[i].width));
        json_object_set_new(t, "height", json_integer(th[i].height));
        json_object_set_new(t, "bytes", json_integer(th[i].bytes));
        json_array_append_new(list, t);
    }
    json_object_set_new(source, "width", json_integer(w));
    json_object_set_new(source, "height", json_integer(h));
    json_object_set_new(source, "orientation", json_integer(orientation));
    json_object_set_new(source, "display_width", json_integer(swap ? h : w));
    json_object_set_new(source, "display_height", json_integer(swap ? w : h));
    json_object_set_new(o, "thumbs", list);
    json_object_set_new(o, "source", source);
    return o;
}

int media_thumbs_make(const char *path, const int *sizes, const char *out_dir, json_t **out,
                      struct err *err)
{
    struct thumb th[MEDIA_MAX_THUMBS];
    struct media__src src;
    VipsImage *mem = NULL;
    char fdpath[64], reason[256], file[PATH_MAX];
    const char *vpath;
    struct stat sb;
    size_t n;
    int w, h, orientation, icc_to_srgb, largest = 0, rc = -1;

    *out = NULL;
    if (sizes_check(sizes, &n, err) < 0)
        return -1;
    memset(th, 0, sizeof(th));
    for (size_t i = 0; i < n; i++) {
        th[i].size = sizes[i];
        if (sizes[i] > largest)
            largest = sizes[i];
    }
    if (stat(out_dir, &sb) < 0)
        return err_errno(err, ERR_IO, "cannot use the output directory %s", out_dir);
    if (!S_ISDIR(sb.st_mode))
        return err_set(err, ERR_IO, "the output %s is not a directory", out_dir);

    /* the type from the content, the loader table and the pixel cap, from the header */
    if (media__src_open(&src, path, err) < 0)
        return -1;
    if (src.kind.type != MEDIA_IMAGE) {
        err_set(err, ERR_UNSUPPORTED, "not an image: %s (%s)", media_type_name(src.kind.type),
                src.kind.mime_type);
        goto out_close;
    }
    w = vips_image_get_width(src.img);
    h = vips_image_get_height(src.img);
    orientation = vips_image_get_orientation(src.img);
    icc_to_srgb = vips_image_get_typeof(src.img, VIPS_META_ICC_NAME) != 0 &&
                  vips_image_get_interpretation(src.img) != VIPS_INTERPRETATION_CMYK;
    g_object_unref(src.img); /* the header's loader: the decode opens its own */
    src.img = NULL;

    vpath = media__image_path(&src, fdpath, sizeof(fdpath));
    mem = thumbs_decode(vpath, largest, icc_to_srgb);
    if (!mem) {
        media__vips_error(reason, sizeof(reason));
        err_set(err, ERR_UNSUPPORTED, "invalid %s: %s", src.kind.format_long_name, reason);
        goto out_close;
    }
    for (size_t i = 0; i < n; i++) {
        VipsImage *img;

        if (thumbs_resize(mem, th[i].size, &img) != 0) {
            media__vips_error(reason, sizeof(reason));
            err_set(err, ERR_INTERNAL, "cannot resize %s to %d: %s", src.kind.format_long_name,
                    th[i].size, reason);
            goto out_unlink;
        }
        if (thumbs_save(img, out_dir, &th[i], err) < 0) {
            g_object_unref(img);
            goto out_unlink;
        }
        g_object_unref(img);
    }
    *out = thumbs_json(th, n, w, h, orientation);
    rc = 0;
out_unlink:
    for (size_t i = 0; rc < 0 && i < n; i++)
        if (th[i].written &&
            (size_t)snprintf(file, sizeof(file), "%s/%s", out_dir, th[i].file) < sizeof(file))
            unlink(file);
    g_object_unref(mem);
out_close:
    media__src_close(&src);
    return rc;
}
