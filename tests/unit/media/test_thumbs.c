/*
 * Unit tests of the thumbnails of src/media (thumbs.c): fixtures are made at test time
 * with ImageMagick, exiftool and libvips in a temporary directory. argv[1], when given,
 * is the acervo-probe binary, run with --thumbs as a child as the worker does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "media/media_int.h"

static char dir[64];
static const char *probe_bin;
static int have_heif; /* libvips could write a HEIF (AVIF) fixture */

static const int sizes3[] = {300, 800, 1200, 0};

/* ---- fixtures --------------------------------------------------------------------------- */

#include "fixtures.h"

/* src converted through libvips' built-in ICC profile (cmyk, p3) into dst, profile kept */
static int make_icc(const char *src, const char *profile, const char *dst)
{
    char in[128], out[128];
    VipsImage *a = NULL, *b = NULL;
    int rc = -1;

    fixture(in, sizeof(in), src);
    fixture(out, sizeof(out), dst);
    a = vips_image_new_from_file(in, NULL);
    if (a && vips_icc_transform(a, &b, profile, NULL) == 0 &&
        vips_image_write_to_file(b, out, NULL) == 0)
        rc = 0;
    else
        fprintf(stderr, "libvips cannot make %s: %s\n", dst, vips_error_buffer());
    vips_error_clear();
    if (a)
        g_object_unref(a);
    if (b)
        g_object_unref(b);
    return rc;
}

/* an AVIF through libvips' heifsave, if this libheif has an AV1 encoder */
static int make_avif(void)
{
    char in[128], out[128];
    VipsImage *a;
    int rc;

    fixture(in, sizeof(in), "grad.jpg");
    fixture(out, sizeof(out), "photo.avif");
    a = vips_image_new_from_file(in, NULL);
    if (!a)
        return -1;
    rc = vips_heifsave(a, out, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1, NULL);
    vips_error_clear();
    g_object_unref(a);
    return rc == 0 ? 0 : -1;
}

static int setup(void **state)
{
    struct err err = {0};

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/acervo-thumbs-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (media_libs_init("test_thumbs", &err) < 0) {
        fprintf(stderr, "media_libs_init: %s\n", err.msg);
        return -1;
    }
    /* stored red at the top, blue at the bottom; orientation 6 turns that to the right */
    if (run("cd %s && convert -size 6000x4000 gradient:red-blue -quality 85 big.jpg && "
            "exiftool -q -overwrite_original -Orientation#=6 big.jpg",
            dir) < 0 ||
        run("cd %s && convert -size 640x480 gradient:red-blue -quality 95 grad.jpg", dir) < 0 ||
        run("cd %s && convert grad.jpg -colorspace CMYK cmyk.jpg", dir) < 0 ||
        run("cd %s && convert -size 640x480 gradient:red-blue -depth 16 png16.png", dir) < 0 ||
        run("cd %s && convert -size 640x480 gradient:red-blue -alpha set -channel A -evaluate set "
            "50%% +channel -depth 8 alpha.png",
            dir) < 0 ||
        run("cd %s && convert -size 200x100 xc:'rgb(0,128,0)' small.jpg", dir) < 0 ||
        run("cd %s && convert -delay 10 -size 320x240 xc:red xc:blue xc:lime anim.gif", dir) < 0 ||
        run("cd %s && convert -size 640x480 gradient:white-black -colorspace Gray grey.jpg", dir) <
            0 ||
        run("cd %s && ffmpeg -nostdin -v error -y -f lavfi -i sine=frequency=440:sample_rate=8000 "
            "-t 0.2 a.wav",
            dir) < 0 ||
        make_icc("grad.jpg", "cmyk", "cmyk-icc.jpg") < 0 ||
        make_icc("grad.jpg", "p3", "p3.jpg") < 0 || make_png_bomb("bomb.png", 40000, 40000, 2) < 0)
        return -1;
    have_heif = make_avif() == 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    media_libs_release();
    return run("rm -rf '%s'", dir);
}

/* ---- helpers ---------------------------------------------------------------------------- */

/* a fresh empty output directory under the fixtures */
static void out_dir(char *out, size_t n, const char *name)
{
    char path[128];

    snprintf(path, sizeof(path), "out-%s", name);
    fixture(out, n, path);
    assert_int_equal(run("rm -rf '%s' && mkdir '%s'", out, out), 0);
}

/* media_thumbs_make of fixture name with sizes; the result, its files in outdir */
static json_t *thumbs(const char *name, const int *sizes, char *outdir, size_t n)
{
    struct err err = {0};
    char path[128];
    json_t *o = NULL;

    fixture(path, sizeof(path), name);
    out_dir(outdir, n, name);
    if (media_thumbs_make(path, sizes, outdir, &o, &err) < 0)
        fail_msg("thumbnails of %s failed: %s", name, err.msg);
    assert_non_null(o);
    return o;
}

static json_int_t num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

static json_t *thumb_at(json_t *o, size_t i)
{
    json_t *t = json_array_get(json_object_get(o, "thumbs"), i);

    if (!t)
        fail_msg("no thumbnail %zu", i);
    return t;
}

/*
 * Checks thumbnail i of o: its size and name, width x height in the JSON and in the file,
 * the file's byte count, the WebP magic, 8-bit sRGB with bands bands (3, or 4 with alpha),
 * no metadata left. Returns the image, loaded, for pixel checks (caller unrefs).
 */
static VipsImage *check_thumb(json_t *o, size_t i, const char *outdir, int size, int w, int h,
                              int bands)
{
    json_t *t = thumb_at(o, i);
    char path[256], file[32];
    VipsImage *img;
    size_t len = 0;
    char *data;

    snprintf(file, sizeof(file), "thumb_%d.webp", size);
    assert_int_equal(num(t, "size"), size);
    assert_string_equal(json_string_value(json_object_get(t, "file")), file);
    if (num(t, "width") != w || num(t, "height") != h)
        fail_msg("%s is %lld x %lld, want %d x %d", file, (long long)num(t, "width"),
                 (long long)num(t, "height"), w, h);
    snprintf(path, sizeof(path), "%s/%s", outdir, file);
    data = slurp_path(path, &len);
    assert_non_null(data);
    assert_int_equal((json_int_t)len, num(t, "bytes"));
    assert_true(len > 12 && memcmp(data, "RIFF", 4) == 0 && memcmp(data + 8, "WEBP", 4) == 0);
    free(data);

    img = vips_image_new_from_file(path, NULL);
    if (!img)
        fail_msg("libvips cannot read %s: %s", path, vips_error_buffer());
    assert_int_equal(vips_image_get_width(img), w);
    assert_int_equal(vips_image_get_height(img), h);
    assert_int_equal(vips_image_get_interpretation(img), VIPS_INTERPRETATION_sRGB);
    assert_int_equal(vips_image_get_format(img), VIPS_FORMAT_UCHAR);
    assert_int_equal(vips_image_get_bands(img), bands);
    assert_int_equal(vips_image_get_typeof(img, VIPS_META_EXIF_NAME), 0);
    assert_int_equal(vips_image_get_typeof(img, VIPS_META_ICC_NAME), 0);
    assert_int_equal(vips_image_get_typeof(img, VIPS_META_XMP_NAME), 0);
    return img;
}

/* the pixel of img at x, y (at most 4 bands) */
static void pixel(VipsImage *img, int x, int y, double px[4])
{
    double *v = NULL;
    int n = 0;

    memset(px, 0, 4 * sizeof(double));
    if (vips_getpoint(img, &v, &n, x, y, NULL) != 0)
        fail_msg("vips_getpoint: %s", vips_error_buffer());
    for (int i = 0; i < n && i < 4; i++)
        px[i] = v[i];
    g_free(v);
}

/* red-ish: the top of a red-blue gradient (CMYK round trips dull it) */
static void assert_reddish(const double *px)
{
    if (!(px[0] > 180 && px[0] > px[1] + 100 && px[0] > px[2] + 100))
        fail_msg("pixel %.0f,%.0f,%.0f is not red", px[0], px[1], px[2]);
}

static void assert_blueish(const double *px)
{
    if (!(px[2] > 100 && px[2] > px[0] + 60 && px[2] > px[1] + 60))
        fail_msg("pixel %.0f,%.0f,%.0f is not blue", px[0], px[1], px[2]);
}

static void expect_failure(const char *name, const int *sizes, enum err_code code,
                           const char *reason)
{
    struct err err = {0};
    char path[128], outdir[128];
    json_t *o = (json_t *)&err; /* must come back NULL */

    fixture(path, sizeof(path), name);
    out_dir(outdir, sizeof(outdir), "fail");
    assert_int_equal(media_thumbs_make(path, sizes, outdir, &o, &err), -1);
    assert_null(o);
    if (err.code != code)
        fail_msg("%s: code %s, want %s (%s)", name, err_code_name(err.code), err_code_name(code),
                 err.msg);
    if (!strstr(err.msg, reason))
        fail_msg("%s: \"%s\" does not say \"%s\"", name, err.msg, reason);
    /* nothing is left behind */
    assert_int_equal(run("test -z \"$(ls -A '%s')\"", outdir), 0);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_orientation(void **state)
{
    char outdir[128];
    json_t *o = thumbs("big.jpg", sizes3, outdir, sizeof(outdir)), *src;
    VipsImage *img;
    double px[4];

    (void)state;
    /* stored 6000 x 4000, orientation 6: shown 4000 x 6000, so portrait thumbnails */
    src = json_object_get(o, "source");
    assert_int_equal(num(src, "width"), 6000);
    assert_int_equal(num(src, "height"), 4000);
    assert_int_equal(num(src, "orientation"), 6);
    assert_int_equal(num(src, "display_width"), 4000);
    assert_int_equal(num(src, "display_height"), 6000);
    assert_int_equal(json_array_size(json_object_get(o, "thumbs")), 3);
    img = check_thumb(o, 0, outdir, 300, 200, 300, 3);
    /* the stored top (red) is on the right once upright, the bottom (blue) on the left */
    pixel(img, 195, 150, px);
    assert_reddish(px);
    pixel(img, 4, 150, px);
    assert_blueish(px);
    g_object_unref(img);
    g_object_unref(check_thumb(o, 1, outdir, 800, 533, 800, 3));
    img = check_thumb(o, 2, outdir, 1200, 800, 1200, 3);
    pixel(img, 795, 600, px);
    assert_reddish(px);
    g_object_unref(img);
    json_decref(o);
}

static void test_colour(void **state)
{
    static const char *const reds[] = {"cmyk.jpg", "cmyk-icc.jpg", "png16.png", "p3.jpg"};
    static const int one[] = {300, 0};
    char outdir[128];
    VipsImage *img;
    double px[4];
    json_t *o;

    (void)state;
    /* CMYK (with and without a profile), 16-bit and Display P3 all end as 8-bit sRGB with
     * the gradient's colours */
    for (size_t i = 0; i < ARRAY_LEN(reds); i++) {
        o = thumbs(reds[i], one, outdir, sizeof(outdir));
        img = check_thumb(o, 0, outdir, 300, 300, 225, 3);
        pixel(img, 150, 2, px);
        assert_reddish(px);
        /* P3 numbers read as sRGB would give a dull red, green ~45: converted, it is ~0 */
        if (strcmp(reds[i], "p3.jpg") == 0 && !(px[0] > 235 && px[1] < 20))
            fail_msg("p3.jpg: top pixel %.0f,%.0f,%.0f is not sRGB red", px[0], px[1], px[2]);
        pixel(img, 150, 222, px);
        assert_blueish(px);
        g_object_unref(img);
        json_decref(o);
    }

    /* greyscale: sRGB with three equal channels */
    o = thumbs("grey.jpg", one, outdir, sizeof(outdir));
    img = check_thumb(o, 0, outdir, 300, 300, 225, 3);
    pixel(img, 150, 2, px);
    assert_true(px[0] > 230 && px[0] - px[1] < 3 && px[1] - px[0] < 3 && px[2] - px[0] < 3 &&
                px[0] - px[2] < 3);
    pixel(img, 150, 222, px);
    assert_true(px[0] < 25 && px[1] < 25 && px[2] < 25);
    g_object_unref(img);
    json_decref(o);
}

static void test_alpha(void **state)
{
    char outdir[128];
    json_t *o = thumbs("alpha.png", sizes3, outdir, sizeof(outdir));
    VipsImage *img;
    double px[4];

    (void)state;
    img = check_thumb(o, 0, outdir, 300, 300, 225, 4);
    pixel(img, 150, 2, px);
    assert_reddish(px);
    assert_true(px[3] > 120 && px[3] < 136); /* 50% alpha */
    g_object_unref(img);
    /* 640 x 480: the 800 and 1200 are the source's size, named by the size asked */
    g_object_unref(check_thumb(o, 1, outdir, 800, 640, 480, 4));
    g_object_unref(check_thumb(o, 2, outdir, 1200, 640, 480, 4));
    json_decref(o);
}

static void test_no_upscale(void **state)
{
    char outdir[128];
    json_t *o = thumbs("small.jpg", sizes3, outdir, sizeof(outdir));
    VipsImage *img;
    double px[4];

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        img = check_thumb(o, i, outdir, sizes3[i], 200, 100, 3);
        pixel(img, 100, 50, px);
        assert_true(px[0] < 20 && px[1] > 110 && px[1] < 145 && px[2] < 20);
        g_object_unref(img);
    }
    assert_int_equal(num(json_object_get(o, "source"), "orientation"), 1);
    json_decref(o);

    /* the order asked is the order listed */
    {
        static const int desc[] = {150, 50, 0};
        o = thumbs("small.jpg", desc, outdir, sizeof(outdir));
        g_object_unref(check_thumb(o, 0, outdir, 150, 150, 75, 3));
        g_object_unref(check_thumb(o, 1, outdir, 50, 50, 25, 3));
        json_decref(o);
    }
}

static void test_animated(void **state)
{
    char outdir[128];
    json_t *o = thumbs("anim.gif", sizes3, outdir, sizeof(outdir));
    VipsImage *img;
    double px[4];

    (void)state;
    /* the first frame (red), and one frame only */
    img = check_thumb(o, 0, outdir, 300, 300, 225, 3);
    pixel(img, 150, 112, px);
    assert_reddish(px);
    assert_int_equal(vips_image_get_n_pages(img), 1);
    g_object_unref(img);
    g_object_unref(check_thumb(o, 2, outdir, 1200, 320, 240, 3));
    json_decref(o);
}

static void test_heif(void **state)
{
    char outdir[128];
    json_t *o;
    VipsImage *img;
    double px[4];

    (void)state;
    if (!have_heif)
        skip();
    o = thumbs("photo.avif", sizes3, outdir, sizeof(outdir));
    img = check_thumb(o, 0, outdir, 300, 300, 225, 3);
    pixel(img, 150, 2, px);
    assert_reddish(px);
    g_object_unref(img);
    json_decref(o);
}

static void test_refused(void **state)
{
    static const int one[] = {300, 0};
    static const int dup[] = {300, 300, 0};
    static const int big[] = {300, MEDIA_MAX_THUMB_SIZE + 1, 0};
    static const int none[] = {0};
    int64_t t0;

    (void)state;
    t0 = util_mono_ms();
    expect_failure("bomb.png", sizes3, ERR_LIMIT,
                   "image is 40000 x 40000 pixels, over the limit of 1000000000");
    assert_true(util_mono_ms() - t0 < 1000); /* from the header: nothing decoded */
    expect_failure("a.wav", one, ERR_UNSUPPORTED, "not an image: audio (audio/wav)");
    expect_failure("no-such-file", one, ERR_NOTFOUND, "no such file");
    expect_failure("small.jpg", dup, ERR_INVALID, "thumbnail size 300 is given twice");
    expect_failure("small.jpg", big, ERR_INVALID, "thumbnail size 4097 is not within 1..4096");
    expect_failure("small.jpg", none, ERR_INVALID, "no thumbnail size");
}

static void test_out_dir(void **state)
{
    static const int one[] = {300, 0};
    struct err err = {0};
    char path[128], missing[128];
    json_t *o = NULL;

    (void)state;
    fixture(path, sizeof(path), "small.jpg");
    fixture(missing, sizeof(missing), "no-such-dir");
    assert_int_equal(media_thumbs_make(path, one, missing, &o, &err), -1);
    assert_int_equal(err.code, ERR_IO);
    assert_null(o);
    assert_int_equal(media_thumbs_make(path, one, path, &o, &err), -1);
    assert_int_equal(err.code, ERR_IO);
    assert_non_null(strstr(err.msg, "not a directory"));
}

static void test_sizes_parse(void **state)
{
    int s[MEDIA_MAX_THUMBS + 1];
    struct err err = {0};

    (void)state;
    assert_int_equal(media_thumbs_sizes_parse("300,800,1200", s, &err), 0);
    assert_int_equal(s[0], 300);
    assert_int_equal(s[1], 800);
    assert_int_equal(s[2], 1200);
    assert_int_equal(s[3], 0);
    assert_int_equal(media_thumbs_sizes_parse("4096", s, &err), 0);
    assert_int_equal(s[0], 4096);
    assert_int_equal(s[1], 0);
    assert_int_equal(media_thumbs_sizes_parse("1,2,3,4,5,6,7,8", s, &err), 0);
    assert_int_equal(s[8], 0);

    static const char *const bad[] = {"",
                                      ",",
                                      "300,",
                                      ",300",
                                      "300,,800",
                                      "0",
                                      "4097",
                                      "-300",
                                      "+300",
                                      "300 ",
                                      "3e2",
                                      "300,300",
                                      "1,2,3,4,5,6,7,8,9",
                                      "99999999999999999999"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        memset(&err, 0, sizeof(err));
        if (media_thumbs_sizes_parse(bad[i], s, &err) != -1 || err.code != ERR_INVALID)
            fail_msg("\"%s\" was accepted", bad[i]);
    }
}

/* ---- acervo-probe --thumbs, as the worker runs it ------------------------------------- */

static int cli(const char *args, char **out, char **errout)
{
    char cmd[1024];
    size_t len;
    int rc;

    snprintf(cmd, sizeof(cmd), "'%s' %s >'%s/stdout' 2>'%s/stderr'", probe_bin, args, dir, dir);
    rc = system(cmd);
    *out = slurp("stdout", &len);
    *errout = slurp("stderr", &len);
    assert_non_null(*out);
    assert_non_null(*errout);
    if (rc < 0 || !WIFEXITED(rc))
        fail_msg("acervo-probe %s died: status %d; stderr: %s", args, rc, *errout);
    return WEXITSTATUS(rc);
}

static void test_cli(void **state)
{
    char args[512], outdir[128], *out, *errout;
    json_error_t jerr;
    json_t *o;

    (void)state;
    if (!probe_bin)
        skip();
    out_dir(outdir, sizeof(outdir), "cli");
    snprintf(args, sizeof(args), "--thumbs '%s' 300,800,1200 '%s/big.jpg'", outdir, dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_OK);
    assert_string_equal(errout, "");
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
    o = json_loads(out, 0, &jerr);
    assert_non_null(o);
    g_object_unref(check_thumb(o, 0, outdir, 300, 200, 300, 3));
    g_object_unref(check_thumb(o, 1, outdir, 800, 533, 800, 3));
    g_object_unref(check_thumb(o, 2, outdir, 1200, 800, 1200, 3));
    assert_int_equal(num(json_object_get(o, "source"), "orientation"), 6);
    json_decref(o);
    free(out);
    free(errout);

    out_dir(outdir, sizeof(outdir), "cli");
    snprintf(args, sizeof(args), "--thumbs '%s' 300 '%s/bomb.png'", outdir, dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_UNSUPPORTED);
    assert_string_equal(out, "");
    assert_string_equal(errout, "acervo-probe: image is 40000 x 40000 pixels, over the limit of "
                                "1000000000\n");
    free(out);
    free(errout);

    snprintf(args, sizeof(args), "--thumbs '%s' 300,abc '%s/small.jpg'", outdir, dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_USAGE);
    assert_non_null(strstr(errout, "acervo-probe: bad thumbnail size list"));
    assert_non_null(strstr(errout, "usage: acervo-probe"));
    free(out);
    free(errout);

    snprintf(args, sizeof(args), "--thumbs '%s' 300", outdir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_USAGE);
    free(out);
    free(errout);

    snprintf(args, sizeof(args), "--thumbs '%s' 300 '%s/no-such-file'", outdir, dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_ERROR);
    assert_non_null(strstr(errout, "acervo-probe: no such file"));
    free(out);
    free(errout);

    snprintf(args, sizeof(args), "--thumbs '%s' 300 '%s/a.wav'", outdir, dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_UNSUPPORTED);
    assert_string_equal(errout, "acervo-probe: not an image: audio (audio/wav)\n");
    free(out);
    free(errout);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_orientation), cmocka_unit_test(test_colour),
        cmocka_unit_test(test_alpha),       cmocka_unit_test(test_no_upscale),
        cmocka_unit_test(test_animated),    cmocka_unit_test(test_heif),
        cmocka_unit_test(test_refused),     cmocka_unit_test(test_out_dir),
        cmocka_unit_test(test_sizes_parse), cmocka_unit_test(test_cli),
    };

    if (argc > 1)
        probe_bin = argv[1];
    return cmocka_run_group_tests(tests, setup, teardown);
}
