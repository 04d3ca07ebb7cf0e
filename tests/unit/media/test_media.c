/*
 * Unit tests of src/media: fixtures are made at test time with ffmpeg, ImageMagick and
 * exiftool in a temporary directory. argv[1], when given, is the acervo-probe binary,
 * run as a child as the worker does.
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

/* ---- fixtures --------------------------------------------------------------------------- */

#include "fixtures.h"

#define FF "ffmpeg -nostdin -v error -y"

static int setup(void **state)
{
    struct err err = {0};
    unsigned char noise[65536];
    char *data;
    size_t len;

    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/acervo-media-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    if (media_libs_init("test_media", &err) < 0) {
        fprintf(stderr, "media_libs_init: %s\n", err.msg);
        return -1;
    }
    if (run("cd %s && " FF " -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i "
            "sine=frequency=1000:sample_rate=48000 -t 2 -c:v libx264 -pix_fmt yuv420p -c:a aac "
            "-metadata creation_time=2024-05-01T10:00:00Z out.mp4",
            dir) < 0 ||
        run("cd %s && " FF " -i out.mp4 -map 0 -c copy -metadata:s:v:0 rotate=90 rot.mp4", dir) <
            0 ||
        run("cd %s && " FF " -f lavfi -i sine=frequency=440:sample_rate=48000 -t 1 a.wav", dir) <
            0 ||
        run("cd %s && " FF " -f lavfi -i sine=frequency=440:sample_rate=44100 -t 1 -c:a libmp3lame "
            "a.mp3",
            dir) < 0 ||
        run("cd %s && " FF
            " -f lavfi -i sine=frequency=440:sample_rate=48000 -t 1 -c:a aac aonly.mp4",
            dir) < 0 ||
        run("cd %s && convert -size 64x48 gradient:red-blue photo.jpg && exiftool -q "
            "-overwrite_original -Make=Canon -Model='EOS R5' -LensModel='RF24-70mm F2.8 L IS USM' "
            "-ExposureTime=1/250 -FNumber=2.8 -ISO=400 -FocalLength=50 "
            "-DateTimeOriginal='2024:05:01 10:00:00' -OffsetTimeOriginal=+02:00 "
            "-GPSLatitude=40.4168 -GPSLatitudeRef=N -GPSLongitude=3.7038 -GPSLongitudeRef=W "
            "-GPSAltitude=650 -Orientation#=6 photo.jpg",
            dir) < 0 ||
        run("cd %s && " FF
            " -i a.mp3 -i photo.jpg -map 0 -map 1 -c copy -disposition:v attached_pic "
            "-id3v2_version 3 cover.mp3",
            dir) < 0 ||
        run("cd %s && convert -size 64x48 gradient:red-blue -colorspace CMYK cmyk.jpg", dir) < 0 ||
        run("cd %s && convert -size 64x48 gradient:red-blue -depth 16 png16.png && cp png16.png "
            "exif.png && exiftool -q -q -overwrite_original -EXIF:Make=Nikon exif.png",
            dir) < 0)
        return -1;

    /* hostile: empty, random bytes named like an MP4, text, truncated MP4 and JPEG */
    util_random(noise, sizeof(noise));
    if (spit("empty", "", 0) < 0 || spit("x.mp4", noise, sizeof(noise)) < 0 ||
        spit("notes.txt", "minutes of the meeting\nnothing to see here\n", 43) < 0 ||
        make_png_bomb("huge.png", 40000, 30000, 0) < 0)
        return -1;
    data = slurp("out.mp4", &len);
    if (!data)
        return -1;
    /* the moov atom must be at the end for the truncated copy to lack it */
    if (!memmem(data, len, "moov", 4) || memmem(data, len * 3 / 10, "moov", 4) ||
        spit("trunc.mp4", data, len * 3 / 10) < 0) {
        free(data);
        return -1;
    }
    free(data);
    data = slurp("photo.jpg", &len);
    if (!data || len < 200 || spit("trunc.jpg", data, 200) < 0) {
        free(data);
        return -1;
    }
    free(data);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    media_libs_release();
    return run("rm -rf '%s'", dir);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static json_t *probe(const char *name)
{
    struct err err = {0};
    char path[128];
    json_t *o = NULL;

    fixture(path, sizeof(path), name);
    if (media_file_probe(path, &o, &err) < 0)
        fail_msg("probing %s failed: %s", name, err.msg);
    assert_non_null(o);
    return o;
}

static json_t *get(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (!v)
        fail_msg("no \"%s\" in the result", key);
    return v;
}

static const char *str(json_t *o, const char *key)
{
    json_t *v = get(o, key);

    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", key);
    return json_string_value(v);
}

static json_int_t num(json_t *o, const char *key)
{
    json_t *v = get(o, key);

    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", key);
    return json_integer_value(v);
}

static double real(json_t *o, const char *key)
{
    json_t *v = get(o, key);

    if (!json_is_number(v))
        fail_msg("\"%s\" is not a number", key);
    return json_number_value(v);
}

static void assert_near(double v, double want, double tolerance)
{
    if (v < want - tolerance || v > want + tolerance)
        fail_msg("%f is not within %f of %f", v, tolerance, want);
}

static json_t *stream_of(json_t *o, const char *type)
{
    json_t *streams = get(o, "streams"), *st;
    size_t i;

    json_array_foreach(streams, i, st)
    {
        if (strcmp(str(st, "type"), type) == 0)
            return st;
    }
    fail_msg("no %s stream", type);
    return NULL;
}

/* ---- audio and video -------------------------------------------------------------------- */

static void test_video(void **state)
{
    json_t *o = probe("out.mp4"), *sum = get(o, "summary"), *v, *a;

    (void)state;
    assert_string_equal(str(o, "type"), "video");
    assert_string_equal(str(o, "mime_type"), "video/mp4");
    assert_string_equal(str(o, "format"), "mov,mp4,m4a,3gp,3g2,mj2");
    assert_non_null(strstr(str(o, "magic"), "ISO Media"));
    assert_true(num(o, "file_size_bytes") > 10000);
    assert_near((double)num(o, "duration_ms"), 2000, 100);
    assert_true(num(o, "bit_rate") > 0);
    assert_string_equal(str(o, "creation_time"), "2024-05-01T10:00:00Z");
    assert_true(json_is_null(get(o, "timecode")));
    assert_string_equal(str(get(o, "tags"), "major_brand"), "isom");
    assert_int_equal(num(o, "stream_count"), 2);

    v = stream_of(o, "video");
    assert_string_equal(str(v, "codec"), "h264");
    assert_non_null(strstr(str(v, "codec_long_name"), "H.264"));
    assert_string_equal(str(v, "profile"), "High");
    assert_int_equal(num(v, "width"), 320);
    assert_int_equal(num(v, "height"), 240);
    assert_string_equal(str(v, "pix_fmt"), "yuv420p");
    assert_string_equal(str(v, "display_aspect_ratio"), "4:3");
    assert_near(real(v, "frame_rate"), 25.0, 0.0005);
    assert_string_equal(str(v, "field_order"), "progressive");
    assert_int_equal(num(v, "rotation"), 0);
    assert_true(json_is_false(get(v, "attached_pic")));
    a = stream_of(o, "audio");
    assert_string_equal(str(a, "codec"), "aac");
    assert_int_equal(num(a, "sample_rate"), 48000);
    assert_int_equal(num(a, "channels"), 1);
    assert_string_equal(str(a, "channel_layout"), "mono");

    assert_string_equal(str(sum, "type"), "video");
    assert_string_equal(str(sum, "video_codec"), "h264");
    assert_string_equal(str(sum, "audio_codec"), "aac");
    assert_int_equal(num(sum, "width"), 320);
    assert_int_equal(num(sum, "height"), 240);
    assert_near((double)num(sum, "duration_ms"), 2000, 100);
    assert_near(real(sum, "frame_rate"), 25.0, 0.0005);
    assert_int_equal(num(sum, "sample_rate"), 48000);
    assert_int_equal(num(sum, "audio_channels"), 1);
    assert_true(num(sum, "bitrate_kbps") > 0);
    assert_string_equal(str(sum, "captured_at"), "2024-05-01T10:00:00Z");
    assert_string_equal(str(sum, "container"), "mp4");
    json_decref(o);
}

static void test_video_rotated(void **state)
{
    json_t *o = probe("rot.mp4"), *sum = get(o, "summary"), *v = stream_of(o, "video");
    json_int_t rot = num(v, "rotation");

    (void)state;
    /* ffmpeg 5.1 writes rotate=90 as a matrix turning the other way: either is a quarter turn */
    assert_true(rot == 90 || rot == 270);
    assert_int_equal(num(v, "width"), 320);
    assert_int_equal(num(v, "height"), 240);
    assert_int_equal(num(sum, "width"), 240);
    assert_int_equal(num(sum, "height"), 320);
    json_decref(o);
}

static void test_audio(void **state)
{
    json_t *o = probe("a.wav"), *a;

    (void)state;
    assert_string_equal(str(o, "type"), "audio");
    assert_string_equal(str(o, "mime_type"), "audio/wav");
    a = stream_of(o, "audio");
    assert_string_equal(str(a, "codec"), "pcm_s16le");
    assert_int_equal(num(a, "bits_per_sample"), 16);
    assert_int_equal(num(a, "sample_rate"), 48000);
    assert_true(json_is_null(get(get(o, "summary"), "width")));
    assert_true(json_is_null(get(get(o, "summary"), "video_codec")));
    assert_near((double)num(get(o, "summary"), "duration_ms"), 1000, 50);
    json_decref(o);

    o = probe("a.mp3");
    assert_string_equal(str(o, "type"), "audio");
    assert_string_equal(str(o, "mime_type"), "audio/mpeg");
    assert_string_equal(str(o, "format"), "mp3");
    assert_string_equal(str(get(o, "summary"), "audio_codec"), "mp3");
    assert_int_equal(num(get(o, "summary"), "sample_rate"), 44100);
    json_decref(o);
}

static void test_audio_with_picture(void **state)
{
    json_t *o = probe("cover.mp3"), *v;

    (void)state;
    /* cover art is a video stream, marked as an attached picture: still audio */
    assert_string_equal(str(o, "type"), "audio");
    v = stream_of(o, "video");
    assert_true(json_is_true(get(v, "attached_pic")));
    assert_string_equal(str(v, "codec"), "mjpeg");
    assert_true(json_is_null(get(get(o, "summary"), "video_codec")));
    assert_true(json_is_null(get(get(o, "summary"), "width")));
    json_decref(o);

    o = probe("aonly.mp4");
    assert_string_equal(str(o, "type"), "audio");
    assert_string_equal(str(o, "mime_type"), "audio/mp4");
    assert_string_equal(str(get(o, "summary"), "audio_codec"), "aac");
    json_decref(o);
}

/* ---- images ------------------------------------------------------------------------------- */

static void test_image_exif(void **state)
{
    json_t *o = probe("photo.jpg"), *x, *gps, *sum = get(o, "summary");

    (void)state;
    assert_string_equal(str(o, "type"), "image");
    assert_string_equal(str(o, "mime_type"), "image/jpeg");
    assert_string_equal(str(o, "format"), "jpeg");
    assert_int_equal(num(o, "width"), 64);
    assert_int_equal(num(o, "height"), 48);
    assert_int_equal(num(o, "bands"), 3);
    assert_string_equal(str(o, "interpretation"), "srgb");
    assert_int_equal(num(o, "bits_per_sample"), 8);
    assert_true(json_is_false(get(o, "has_alpha")));
    assert_int_equal(num(o, "orientation"), 6);
    assert_int_equal(num(o, "display_width"), 48);
    assert_int_equal(num(o, "display_height"), 64);
    assert_int_equal(num(o, "pages"), 1);
    assert_true(json_is_null(get(sum, "duration_ms")));
    assert_int_equal(num(sum, "width"), 48);
    assert_int_equal(num(sum, "height"), 64);
    assert_string_equal(str(sum, "captured_at"), "2024-05-01T10:00:00+02:00");
    assert_string_equal(str(sum, "container"), "jpeg");

    x = get(o, "exif");
    assert_string_equal(str(x, "make"), "Canon");
    assert_string_equal(str(x, "model"), "EOS R5");
    assert_string_equal(str(x, "lens_model"), "RF24-70mm F2.8 L IS USM");
    assert_string_equal(str(x, "exposure_time"), "1/250");
    assert_near(real(x, "exposure_time_s"), 0.004, 1e-9);
    assert_near(real(x, "f_number"), 2.8, 1e-9);
    assert_int_equal(num(x, "iso"), 400);
    assert_near(real(x, "focal_length_mm"), 50, 1e-9);
    assert_string_equal(str(x, "capture_time"), "2024-05-01T10:00:00+02:00");
    gps = get(x, "gps");
    assert_near(real(gps, "latitude"), 40.4168, 1e-5);
    assert_near(real(gps, "longitude"), -3.7038, 1e-5);
    assert_near(real(gps, "altitude_m"), 650, 0.01);
    json_decref(o);
}

static void test_image_formats(void **state)
{
    json_t *o = probe("cmyk.jpg");

    (void)state;
    assert_string_equal(str(o, "interpretation"), "cmyk");
    assert_string_equal(str(o, "color_space"), "cmyk");
    assert_int_equal(num(o, "bands"), 4);
    assert_int_equal(num(o, "orientation"), 1);
    assert_true(json_is_null(get(o, "exif")));
    assert_true(json_is_null(get(get(o, "summary"), "captured_at")));
    json_decref(o);

    o = probe("png16.png");
    assert_string_equal(str(o, "mime_type"), "image/png");
    assert_string_equal(str(o, "interpretation"), "rgb16");
    assert_int_equal(num(o, "bits_per_sample"), 16);
    json_decref(o);

    /* PNG carries EXIF without the "Exif\0\0" header */
    o = probe("exif.png");
    assert_string_equal(str(get(o, "exif"), "make"), "Nikon");
    json_decref(o);
}

/* ---- what is not media ------------------------------------------------------------------- */

static void expect_failure(const char *name, enum err_code code, const char *reason)
{
    struct err err = {0};
    struct media_kind kind;
    char path[128];
    json_t *o = (json_t *)&err; /* must come back NULL */

    fixture(path, sizeof(path), name);
    assert_int_equal(media_file_probe(path, &o, &err), -1);
    assert_null(o);
    if (err.code != code)
        fail_msg("%s: code %s, want %s (%s)", name, err_code_name(err.code), err_code_name(code),
                 err.msg);
    if (!strstr(err.msg, reason))
        fail_msg("%s: \"%s\" does not say \"%s\"", name, err.msg, reason);
    memset(&err, 0, sizeof(err));
    assert_int_equal(media_kind_detect(path, &kind, &err), -1);
    assert_int_equal(err.code, code);
    assert_non_null(strstr(err.msg, reason));
}

static void test_hostile(void **state)
{
    (void)state;
    expect_failure("empty", ERR_UNSUPPORTED, "the file is empty");
    expect_failure("x.mp4", ERR_UNSUPPORTED, "unrecognised content (libmagic: ");
    expect_failure("notes.txt", ERR_UNSUPPORTED, "unrecognised content (libmagic: ASCII text");
    expect_failure("trunc.mp4", ERR_UNSUPPORTED, "invalid MP4: moov atom not found");
    expect_failure("trunc.jpg", ERR_UNSUPPORTED, "invalid JPEG: ");
    expect_failure("huge.png", ERR_LIMIT, "image is 40000 x 30000 pixels, over the limit of");
    expect_failure("no-such-file", ERR_NOTFOUND, "no such file");
    expect_failure(".", ERR_UNSUPPORTED, "not a regular file");
}

static void test_detect(void **state)
{
    struct media_kind k;
    struct err err = {0};
    char path[128];
    json_t *o;

    (void)state;
    fixture(path, sizeof(path), "aonly.mp4");
    assert_int_equal(media_kind_detect(path, &k, &err), 0);
    assert_int_equal(k.type, MEDIA_AUDIO);
    assert_string_equal(k.mime_type, "audio/mp4");
    fixture(path, sizeof(path), "cmyk.jpg");
    assert_int_equal(media_kind_detect(path, &k, &err), 0);
    assert_int_equal(k.type, MEDIA_IMAGE);
    assert_string_equal(k.format, "jpeg");
    assert_string_equal(k.format_long_name, "JPEG");
    o = media_kind_json(&k);
    assert_int_equal(json_object_size(o), 5);
    assert_string_equal(str(o, "type"), "image");
    assert_string_equal(str(o, "mime_type"), "image/jpeg");
    assert_non_null(strstr(str(o, "magic"), "JPEG image data"));
    json_decref(o);
}

static void test_text_copy(void **state)
{
    char out[8];

    (void)state;
    media__text_copy(out, sizeof(out),
                     "ab\xff"
                     "c",
                     SIZE_MAX, 0);
    assert_string_equal(out, "ab?c");
    media__text_copy(out, sizeof(out), "a\xc0\xafz", SIZE_MAX, 0); /* overlong '/' */
    assert_string_equal(out, "a??z");
    media__text_copy(out, sizeof(out), "\xed\xa0\x80", SIZE_MAX, 0); /* a surrogate */
    assert_string_equal(out, "???");
    media__text_copy(out, sizeof(out), "a\nb\tc", SIZE_MAX, 1);
    assert_string_equal(out, "a b c");
    media__text_copy(out, sizeof(out), "a\nb", SIZE_MAX, 0);
    assert_string_equal(out, "a\nb");
    media__text_copy(out, sizeof(out), "abcdef\xc3\xa9", SIZE_MAX, 0); /* no room for the é */
    assert_string_equal(out, "abcdef");
    media__text_copy(out, sizeof(out), "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", SIZE_MAX, 0);
    assert_string_equal(out, "\xc3\xa9\xc3\xa9\xc3\xa9");
    media__text_copy(out, sizeof(out), "abc\xc3", 4, 0); /* cut inside a character */
    assert_string_equal(out, "abc?");
    media__text_copy(out, sizeof(out), "ab\0cd", 5, 0);
    assert_string_equal(out, "ab");
}

/* ---- acervo-probe, as the worker runs it ---------------------------------------------- */

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
    char args[256], *out, *errout;
    json_error_t jerr;
    json_t *o;

    (void)state;
    if (!probe_bin)
        skip();
    snprintf(args, sizeof(args), "'%s/out.mp4'", dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_OK);
    assert_string_equal(errout, "");
    assert_non_null(strchr(out, '\n'));
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1); /* one line */
    o = json_loads(out, 0, &jerr);
    assert_non_null(o);
    assert_string_equal(str(get(o, "summary"), "video_codec"), "h264");
    json_decref(o);
    free(out);
    free(errout);

    snprintf(args, sizeof(args), "--detect '%s/photo.jpg'", dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_OK);
    o = json_loads(out, 0, &jerr);
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 5);
    assert_string_equal(str(o, "mime_type"), "image/jpeg");
    json_decref(o);
    free(out);
    free(errout);

    snprintf(args, sizeof(args), "'%s/trunc.mp4'", dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_UNSUPPORTED);
    assert_string_equal(out, "");
    assert_string_equal(errout, "acervo-probe: invalid MP4: moov atom not found\n");
    free(out);
    free(errout);

    snprintf(args, sizeof(args), "'%s/huge.png'", dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_UNSUPPORTED);
    assert_non_null(strstr(errout, "over the limit"));
    free(out);
    free(errout);

    snprintf(args, sizeof(args), "'%s/no-such-file'", dir);
    assert_int_equal(cli(args, &out, &errout), MEDIA_EXIT_ERROR);
    free(out);
    free(errout);

    assert_int_equal(cli("", &out, &errout), MEDIA_EXIT_USAGE);
    assert_non_null(strstr(errout, "usage: acervo-probe"));
    free(out);
    free(errout);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_video),      cmocka_unit_test(test_video_rotated),
        cmocka_unit_test(test_audio),      cmocka_unit_test(test_audio_with_picture),
        cmocka_unit_test(test_image_exif), cmocka_unit_test(test_image_formats),
        cmocka_unit_test(test_hostile),    cmocka_unit_test(test_detect),
        cmocka_unit_test(test_text_copy),  cmocka_unit_test(test_cli),
    };

    if (argc > 1)
        probe_bin = argv[1];
    return cmocka_run_group_tests(tests, setup, teardown);
}
