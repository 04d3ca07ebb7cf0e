/*
 * Unit tests of the rendition encoding layer (encode.c, profile.c): the pure parts (sizes,
 * ladders, command lines, timeouts, progress, peaks, checks) and real encodes of small
 * sources generated at test time, run with /usr/bin/ffmpeg as the worker runs it, probed
 * with acervo-probe (argv[1]) and checked. Static helpers are reached by including the .c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "media/encode.c"

#include <sys/wait.h>

#define FFMPEG "/usr/bin/ffmpeg"
#define FF     FFMPEG " -nostdin -v error -y"

static char dir[64];
static const char *probe_bin;
static int have_x265;

#include "fixtures.h"

/* ---- helpers ---------------------------------------------------------------------------- */

/* runs argv (no shell) with stdin from stdin_fd (-1: /dev/null); stdout into *out (the
 * caller frees), stderr's end into errtail; returns the wait status */
static int capture(char *const argv[], int stdin_fd, char **out, char *errtail, size_t n)
{
    char errpath[128], chunk[4096];
    struct buf b;
    int pipefd[2], status = 0;
    ssize_t r;
    pid_t pid;
    FILE *f;

    fixture(errpath, sizeof(errpath), "stderr.txt");
    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int efd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int in = stdin_fd >= 0 ? stdin_fd : open("/dev/null", O_RDONLY);

        if (efd < 0 || in < 0 || dup2(in, 0) < 0 || dup2(pipefd[1], 1) < 0 || dup2(efd, 2) < 0)
            _exit(126);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    buf_init(&b, 16u << 20);
    for (;;) {
        r = read(pipefd[0], chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        assert_int_equal(buf_add(&b, chunk, (size_t)r, NULL), 0);
    }
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    errtail[0] = '\0';
    f = fopen(errpath, "r");
    if (f) {
        size_t got;

        if (fseek(f, -(long)(n - 1), SEEK_END) < 0)
            rewind(f);
        got = fread(errtail, 1, n - 1, f);
        errtail[got] = '\0';
        fclose(f);
    }
    *out = buf_detach(&b, NULL);
    return status;
}

static json_t *probe_path(const char *path)
{
    char *argv[3] = {(char *)probe_bin, (char *)path, NULL}, *out, errtail[512];
    json_error_t jerr;
    json_t *o;
    int st;

    st = capture(argv, -1, &out, errtail, sizeof(errtail));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("acervo-probe %s: status %d: %s", path, st, errtail);
    o = json_loads(out, 0, &jerr);
    free(out);
    if (!o)
        fail_msg("acervo-probe %s: not JSON: %s", path, jerr.text);
    return o;
}

static void source_of(const char *name, struct media_source *s)
{
    char path[128];
    struct err err = {0};
    json_t *o;

    fixture(path, sizeof(path), name);
    o = probe_path(path);
    if (media_source_from_probe(o, s, &err) < 0)
        fail_msg("%s: %s", name, err.msg);
    json_decref(o);
}

static const struct media_profile *profile(const char *name)
{
    const struct media_profile *p = media_profile_find(name);

    if (!p)
        fail_msg("no profile %s", name);
    return p;
}

/* argv as one line, for substring checks */
static char *joined(char **argv)
{
    struct buf b;

    buf_init(&b, 0);
    for (char **a = argv; *a; a++) {
        buf_adds(&b, *a, NULL);
        buf_adds(&b, " ", NULL);
    }
    return buf_detach(&b, NULL);
}

/* index of the first argument equal to s, -1 if none */
static int arg_at(char **argv, const char *s)
{
    for (int i = 0; argv[i]; i++)
        if (strcmp(argv[i], s) == 0)
            return i;
    return -1;
}

static const char *arg_after(char **argv, const char *s)
{
    int i = arg_at(argv, s);

    return i >= 0 && argv[i + 1] ? argv[i + 1] : "";
}

struct encoded {
    char out_dir[128];
    char main[192];
    json_t *probe; /* acervo-probe of the main file (NULL for HLS and the waveform) */
    struct media_source src;
};

/*
 * Encodes fixture source with profile name (and clip) through the real ffmpeg into a directory
 * of its own; the exit status must be 0, progress must reach 100 at progress=end, and
 * the output must pass media_output_check (media_hls_check for HLS).
 */
static void encode(const char *name, const char *source, const struct media_clip *clip,
                   int via_stdin, struct encoded *e)
{
    const struct media_profile *p = profile(name);
    struct media_progress pr;
    struct err err = {0};
    char input[128], errtail[1024], **argv = NULL, *out;
    int st, fd = -1;

    memset(e, 0, sizeof(*e));
    source_of(source, &e->src);
    snprintf(e->out_dir, sizeof(e->out_dir), "%s/%s-%s%s", dir, source, name, clip ? "-clip" : "");
    assert_int_equal(mkdir(e->out_dir, 0700), 0);
    fixture(input, sizeof(input), source);
    if (via_stdin) {
        fd = open(input, O_RDONLY);
        assert_true(fd >= 0);
    }
    if (media_encode_argv(p, &e->src, FFMPEG, via_stdin ? "/dev/stdin" : input, e->out_dir, clip,
                          &argv, &err) < 0)
        fail_msg("%s of %s: %s", name, source, err.msg);
    media_progress_init(&pr, clip ? clip->out_s - clip->in_s : e->src.duration_s);
    st = capture(argv, fd, &out, errtail, sizeof(errtail));
    if (fd >= 0)
        close(fd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *line = joined(argv);
        fprintf(stderr, "%s\n", line);
        free(line);
        fail_msg("ffmpeg %s of %s: status %d: %s", name, source, st, errtail);
    }
    media_argv_free(argv);
    assert_string_equal(errtail, ""); /* -loglevel error: nothing said */
    media_progress_feed(&pr, out, strlen(out));
    free(out);
    assert_true(pr.ended);
    assert_int_equal(pr.percent, 100);

    snprintf(e->main, sizeof(e->main), "%s/%s", e->out_dir,
             p->output == MEDIA_OUT_WAVEFORM ? MEDIA_WAVEFORM_PCM : p->file);
    if (p->output == MEDIA_OUT_HLS) {
        if (media_hls_check(p, &e->src, clip, e->out_dir, &err) < 0)
            fail_msg("%s", err.msg);
    } else if (p->output != MEDIA_OUT_WAVEFORM) {
        e->probe = probe_path(e->main);
        if (media_output_check(p, &e->src, clip, e->probe, &err) < 0)
            fail_msg("%s", err.msg);
    }
}

static const json_t *stream_of(const json_t *o, const char *type)
{
    const json_t *streams = json_object_get(o, "streams"), *st;
    size_t i;

    json_array_foreach(streams, i, st)
    {
        if (strcmp(jstr(st, "type"), type) == 0)
            return st;
    }
    return NULL;
}

static int count_of(const json_t *o, const char *type)
{
    const json_t *streams = json_object_get(o, "streams"), *st;
    size_t i;
    int n = 0;

    json_array_foreach(streams, i, st)
    {
        n += strcmp(jstr(st, "type"), type) == 0;
    }
    return n;
}

static void assert_near(double v, double want, double tolerance)
{
    if (v < want - tolerance || v > want + tolerance)
        fail_msg("%f is not within %f of %f", v, tolerance, want);
}

/* mean luma (0..255) of a picture, decoded to grey by ffmpeg */
static double mean_luma(const char *path)
{
    char raw[192];
    unsigned char chunk[4096];
    double sum = 0;
    size_t total = 0, r;
    FILE *f;

    snprintf(raw, sizeof(raw), "%s.gray", path);
    assert_int_equal(run(FF " -i '%s' -f rawvideo -pix_fmt gray '%s'", path, raw), 0);
    f = fopen(raw, "rb");
    assert_non_null(f);
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        for (size_t i = 0; i < r; i++)
            sum += chunk[i];
        total += r;
    }
    fclose(f);
    assert_true(total > 0);
    return sum / (double)total;
}

/* ---- fixtures ----------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/acervo-encode-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    have_x265 = run(FFMPEG " -hide_banner -encoders 2>/dev/null | grep -q libx265") == 0;
    if (!probe_bin)
        return 0; /* the pure tests still run */
    return run("cd %s && " FF " -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i "
               "sine=frequency=440:sample_rate=44100 -t 3 -c:v libx264 -preset ultrafast "
               "-pix_fmt yuv420p -c:a aac -ac 2 land.mp4",
               dir) < 0 ||
                   run("cd %s && " FF " -f lavfi -i testsrc2=size=1920x1080:rate=25 -t 1 -c:v "
                       "libx264 -preset ultrafast -pix_fmt yuv420p big.mp4",
                       dir) < 0 ||
                   /* a phone held upright: stored 1920x1080, turned 90 for display */
                   run("cd %s && " FF " -f lavfi -i testsrc2=size=1920x1080:rate=30 -f lavfi -i "
                       "sine=sample_rate=48000 -t 2 -c:v libx264 -preset ultrafast -pix_fmt "
                       "yuv420p -c:a aac tmp.mp4 && " FF " -i tmp.mp4 -map 0 -c copy "
                       "-metadata:s:v:0 rotate=90 portrait.mp4 && rm tmp.mp4",
                       dir) < 0 ||
                   /* PAL SD, 4:3 (non-square pixels), interlaced top field first, mono */
                   run("cd %s && " FF " -f lavfi -i testsrc2=size=720x576:rate=25,setdar=4/3 -f "
                       "lavfi -i sine=sample_rate=48000 -t 3 -c:v libx264 -preset ultrafast "
                       "-flags +ilme+ildct -x264opts tff=1 -pix_fmt yuv420p -c:a aac -ac 1 sd.mp4",
                       dir) < 0 ||
                   run("cd %s && " FF " -f lavfi -i testsrc2=size=320x240:rate=25 -t 2 -c:v "
                       "libx264 -preset ultrafast -pix_fmt yuv420p silent.mp4",
                       dir) < 0 ||
                   /* variable frame rate: 30 fps for a second, then 10 */
                   run("cd %s && " FF " -f lavfi -i testsrc2=size=320x240:rate=30 -t 3 -vf "
                       "\"select='lt(n\\,30)+not(mod(n\\,3))'\" -fps_mode vfr -c:v libx264 "
                       "-preset ultrafast vfr.mp4",
                       dir) < 0 ||
                   /* a second of black, a second of fade-in, then the picture; and mostly black */
                   run("cd %s && " FF " -f lavfi -i testsrc2=size=320x240:rate=25,fade=in:st=1:d=1 "
                       "-t 3 -c:v libx264 -preset ultrafast -pix_fmt yuv420p fade.mp4 && " FF
                       " -f lavfi -i testsrc2=size=320x240:rate=25,fade=in:st=2.2:d=0.04 -t 3 "
                       "-c:v libx264 -preset ultrafast -pix_fmt yuv420p dark.mp4 && " FF
                       " -f lavfi -i color=black:size=320x240:rate=25 -t 2 -c:v libx264 "
                       "-preset ultrafast -pix_fmt yuv420p black.mp4",
                       dir) < 0 ||
                   run("cd %s && " FF " -f lavfi -i sine=frequency=440:sample_rate=48000 -t 3 "
                       "mono.wav && " FF " -f lavfi -i sine=frequency=330:sample_rate=44100 -t 3 "
                       "-ac 2 -c:a libmp3lame -b:a 192k stereo.mp3",
                       dir) < 0 ||
                   (have_x265 &&
                    run("cd %s && " FF " -f lavfi -i testsrc2=size=640x360:rate=25 -t 2 -vf "
                        "format=yuv420p10le -c:v libx265 -preset ultrafast -x265-params "
                        "log-level=error -color_primaries bt2020 -color_trc arib-std-b67 "
                        "-colorspace bt2020nc hlg.mp4",
                        dir) < 0)
               ? -1
               : 0;
}

static int teardown(void **state)
{
    (void)state;
    return run("rm -rf '%s'", dir);
}

/* ---- profiles ------------------------------------------------------------------------------- */

static void test_profiles(void **state)
{
    char prefix[256];
    int n = 0;

    (void)state;
    for (const struct media_profile *p = media_profiles; p->name; p++, n++) {
        assert_ptr_equal(media_profile_find(p->name), p);
        assert_int_equal(p->version, 1);
        assert_non_null(p->file);
        assert_non_null(p->mime_type);
        assert_true(strcmp(p->bucket, "proxies") == 0 || strcmp(p->bucket, "delivery") == 0);
        if (p->output == MEDIA_OUT_MP4 || p->output == MEDIA_OUT_HLS)
            assert_non_null(p->preset);
    }
    assert_int_equal(n, 9);
    assert_null(media_profile_find("nope"));
    assert_null(media_profile_find(NULL));

    media_profile_prefix(profile("proxy"), "0190-a", "abcd", prefix, sizeof(prefix));
    assert_string_equal(prefix, "proxies/0190-a/abcd/proxy-v1/");
    media_profile_prefix(profile("hls"), "0190-a", "abcd", prefix, sizeof(prefix));
    assert_string_equal(prefix, "web/0190-a/abcd/hls-v1/");
    media_profile_prefix(profile("thumbs"), "0190-a", "abcd", prefix, sizeof(prefix));
    assert_string_equal(prefix, "proxies/0190-a/abcd/thumbs-v1/");
    media_profile_prefix(profile("proxy"), "0190-a", "abcd", prefix, 10);
    assert_string_equal(prefix, "proxies/0");

    assert_string_equal(profile("hls")->bucket, "delivery");
    assert_string_equal(profile("hls")->file, "master.m3u8");
    assert_int_equal(profile("hls")->ladder[0].height, 1080);
    assert_int_equal(profile("hls")->ladder[2].video_kbps, 800);
    assert_int_equal(profile("hls")->ladder[3].height, 0);
    assert_string_equal(profile("thumbs")->file, "thumb_300.webp");
    assert_int_equal(profile("thumbs")->sizes[2], 1200);
    assert_int_equal(profile("thumbs")->sizes[3], 0);
    assert_true(profile("waveform")->needs_audio);
    assert_int_equal(profile("waveform")->types, MEDIA_T_VIDEO | MEDIA_T_AUDIO);
    assert_true(profile("subclip")->on_demand);
    assert_false(profile("proxy")->on_demand);
    assert_int_equal(profile("broadcast")->audio_rate, 48000);
}

/* ---- the source ----------------------------------------------------------------------------- */

static void source_json(const char *text, struct media_source *s)
{
    struct err err = {0};
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);

    if (!o)
        fail_msg("bad test JSON: %s", jerr.text);
    if (media_source_from_probe(o, s, &err) < 0)
        fail_msg("%s", err.msg);
    json_decref(o);
}

static void test_source_from_probe(void **state)
{
    struct media_source s;
    struct err err = {0};
    json_t *o;

    (void)state;
    source_json("{\"type\":\"video\",\"format\":\"mov,mp4,m4a,3gp,3g2,mj2\",\"duration_ms\":10000,"
                "\"streams\":[{\"index\":0,\"type\":\"video\",\"attached_pic\":true,\"width\":"
                "600,\"height\":600},"
                "{\"index\":1,\"type\":\"video\",\"attached_pic\":false,\"width\":1920,"
                "\"height\":1080,\"rotation\":270,\"field_order\":\"bt\",\"pix_fmt\":"
                "\"yuv422p10le\",\"sample_aspect_ratio\":\"4:3\",\"frame_rate\":30.0,"
                "\"avg_frame_rate\":29.5,\"color_transfer\":\"smpte2084\",\"color_primaries\":"
                "\"bt2020\",\"color_space\":\"bt2020nc\"},"
                "{\"index\":2,\"type\":\"audio\",\"channels\":6,\"sample_rate\":48000},"
                "{\"index\":3,\"type\":\"audio\",\"channels\":2,\"sample_rate\":44100}]}",
                &s);
    assert_int_equal(s.type, MEDIA_T_VIDEO);
    assert_string_equal(s.format, "mov");
    assert_near(s.duration_s, 10.0, 1e-9);
    assert_true(s.has_video);
    assert_int_equal(s.video_index, 1); /* not the cover art */
    assert_int_equal(s.width, 1920);
    assert_int_equal(s.height, 1080);
    assert_int_equal(s.rotation, 270);
    assert_int_equal(s.sar_num, 4);
    assert_int_equal(s.sar_den, 3);
    assert_true(s.interlaced);
    assert_true(s.top_field_first); /* bt: bottom coded first, top shown first */
    assert_int_equal(s.bit_depth, 10);
    assert_true(s.hdr);
    assert_string_equal(s.color_primaries, "bt2020");
    assert_true(s.vfr); /* 30 and 29.5 are 1.7% apart */
    assert_true(s.has_audio);
    assert_int_equal(s.audio_index, 2);
    assert_int_equal(s.channels, 6);
    assert_int_equal(s.sample_rate, 48000);

    /* an audio file with cover art; hostile names are not kept */
    source_json("{\"type\":\"audio\",\"format\":\"mp3;rm -rf\",\"summary\":{\"duration_ms\":"
                "2500},\"streams\":[{\"index\":0,\"type\":\"audio\",\"channels\":1,"
                "\"sample_rate\":44100},{\"index\":1,\"type\":\"video\",\"attached_pic\":true,"
                "\"width\":500,\"height\":500,\"color_transfer\":\"a b\"}]}",
                &s);
    assert_int_equal(s.type, MEDIA_T_AUDIO);
    assert_string_equal(s.format, "");
    assert_near(s.duration_s, 2.5, 1e-9);
    assert_false(s.has_video);
    assert_int_equal(s.video_index, -1);
    assert_true(s.has_audio);
    assert_int_equal(s.audio_index, 0);

    /* progressive, 8-bit, constant rate (0.04% apart), tb: bottom shown first */
    source_json("{\"type\":\"video\",\"format\":\"matroska,webm\",\"streams\":[{\"index\":0,"
                "\"type\":\"video\",\"width\":720,\"height\":480,\"field_order\":\"tb\","
                "\"pix_fmt\":\"yuv420p\",\"frame_rate\":25.0,\"avg_frame_rate\":24.99,"
                "\"rotation\":45}]}",
                &s);
    assert_string_equal(s.format, "matroska");
    assert_true(s.interlaced);
    assert_false(s.top_field_first);
    assert_int_equal(s.bit_depth, 8);
    assert_false(s.vfr);
    assert_false(s.hdr);
    assert_int_equal(s.rotation, 0);
    assert_false(s.has_audio);
    assert_near(s.duration_s, 0, 0);

    source_json("{\"type\":\"image\",\"width\":4000,\"height\":3000}", &s);
    assert_int_equal(s.type, MEDIA_T_IMAGE);
    assert_int_equal(s.width, 4000);

    o = json_pack("[]");
    assert_int_equal(media_source_from_probe(o, &s, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    json_decref(o);
    o = json_pack("{s:s}", "type", "text");
    assert_int_equal(media_source_from_probe(o, &s, &err), -1);
    json_decref(o);

    assert_int_equal(pix_fmt_depth("yuv420p"), 8);
    assert_int_equal(pix_fmt_depth("nv12"), 8);
    assert_int_equal(pix_fmt_depth("yuvj420p"), 8);
    assert_int_equal(pix_fmt_depth("yuv420p10le"), 10);
    assert_int_equal(pix_fmt_depth("yuva444p12be"), 12);
    assert_int_equal(pix_fmt_depth("gbrp16le"), 16);
    assert_int_equal(pix_fmt_depth("p010le"), 10);
    assert_int_equal(pix_fmt_depth("p216le"), 16);
    assert_int_equal(pix_fmt_depth("gray10le"), 10);
    assert_int_equal(pix_fmt_depth("rgb48le"), 16);
    assert_int_equal(pix_fmt_depth("rgb24"), 8);
    assert_int_equal(pix_fmt_depth(NULL), 8);
}

/* ---- sizes ------------------------------------------------------------------------------------
 */

static void fit(int w, int h, int rot, int sar_n, int sar_d, int bw, int bh, int want_w, int want_h)
{
    struct media_source s = {.width = w, .height = h, .rotation = rot};
    int gw, gh;

    s.sar_num = sar_n;
    s.sar_den = sar_d;
    media_fit(&s, bw, bh, &gw, &gh);
    if (gw != want_w || gh != want_h)
        fail_msg("%dx%d rot %d sar %d:%d in %dx%d: %dx%d, want %dx%d", w, h, rot, sar_n, sar_d, bw,
                 bh, gw, gh, want_w, want_h);
}

static void test_fit(void **state)
{
    (void)state;
    fit(1920, 1080, 0, 1, 1, 1920, 1080, 1920, 1080);
    fit(3840, 2160, 0, 1, 1, 1920, 1080, 1920, 1080);
    fit(3840, 2160, 0, 1, 1, 1280, 720, 1280, 720);
    fit(1280, 720, 0, 1, 1, 1920, 1080, 1280, 720); /* never upscaled */
    fit(320, 240, 0, 1, 1, 1920, 1080, 320, 240);
    fit(1440, 1080, 0, 1, 1, 1280, 720, 960, 720);   /* 4:3 pillarboxed by the height */
    fit(2560, 1080, 0, 1, 1, 1920, 1080, 1920, 810); /* 64:27 limited by the width */
    /* a phone held upright: 1920x1080 turned 90 or 270 is 1080x1920, the box turns too */
    fit(1920, 1080, 90, 1, 1, 1920, 1080, 1080, 1920);
    fit(1920, 1080, 270, 1, 1, 1280, 720, 720, 1280);
    fit(1920, 1080, 180, 1, 1, 1280, 720, 1280, 720);
    fit(1080, 1920, 0, 1, 1, 1280, 720, 720, 1280);
    fit(3840, 2160, 90, 1, 1, 1920, 1080, 1080, 1920);
    /* odd sizes: even, and never above the source */
    fit(1919, 1079, 0, 1, 1, 1920, 1080, 1918, 1078);
    fit(1921, 1081, 0, 1, 1, 1920, 1080, 1920, 1080); /* 0.1% down: aspect kept to a pixel */
    fit(1922, 1080, 0, 1, 1, 1920, 1080, 1920, 1078);
    fit(641, 361, 0, 1, 1, 1280, 720, 640, 360);
    fit(3, 3, 0, 1, 1, 1920, 1080, 2, 2);
    fit(1000, 1, 0, 1, 1, 640, 360, 640, 2);
    /* non-square pixels: PAL 4:3 (16:15) is 768x576, anamorphic 16:9 (64:45) 1024x576 */
    fit(720, 576, 0, 16, 15, 1920, 1080, 768, 576);
    fit(720, 576, 0, 64, 45, 1920, 1080, 1024, 576);
    fit(720, 576, 0, 64, 45, 640, 360, 640, 360);
    fit(1440, 1080, 0, 4, 3, 1920, 1080, 1920, 1080); /* HDV */
    /* square pictures keep the box as it is */
    fit(2000, 2000, 0, 1, 1, 1920, 1080, 1080, 1080);
    fit(0, 1080, 0, 1, 1, 1920, 1080, 0, 0);
}

static void test_rungs(void **state)
{
    const struct media_profile *p = profile("hls");
    struct media_source s = {.width = 1920, .height = 1080, .sar_num = 1, .sar_den = 1};
    struct media_hls_rung r[MEDIA_MAX_RUNGS];

    (void)state;
    assert_int_equal(media_hls_rungs(p, &s, r, MEDIA_MAX_RUNGS), 3);
    assert_int_equal(r[0].width, 1920);
    assert_int_equal(r[0].height, 1080);
    assert_int_equal(r[0].video_kbps, 5000);
    assert_int_equal(r[1].width, 1280);
    assert_int_equal(r[1].video_kbps, 2800);
    assert_int_equal(r[2].width, 640);
    assert_int_equal(r[2].height, 360);
    assert_int_equal(media_hls_rungs(p, &s, r, 2), 2); /* at most n */

    s.width = 1280;
    s.height = 720;
    assert_int_equal(media_hls_rungs(p, &s, r, MEDIA_MAX_RUNGS), 2);
    assert_int_equal(r[0].height, 720);
    assert_int_equal(r[0].video_kbps, 2800); /* the 1080 rung would be the same picture */
    assert_int_equal(r[1].height, 360);

    /* PAL 4:3 SD sits between rungs: 720's bitrate at its own size, and 360 */
    s.width = 720;
    s.height = 576;
    s.sar_num = 16;
    s.sar_den = 15;
    assert_int_equal(media_hls_rungs(p, &s, r, MEDIA_MAX_RUNGS), 2);
    assert_int_equal(r[0].width, 768);
    assert_int_equal(r[0].height, 576);
    assert_int_equal(r[0].video_kbps, 2800);
    assert_int_equal(r[1].width, 480);
    assert_int_equal(r[1].height, 360);

    /* smaller than the lowest rung: one rung, the source's size */
    s.width = 320;
    s.height = 240;
    s.sar_num = s.sar_den = 1;
    assert_int_equal(media_hls_rungs(p, &s, r, MEDIA_MAX_RUNGS), 1);
    assert_int_equal(r[0].width, 320);
    assert_int_equal(r[0].video_kbps, 800);

    /* portrait: the boxes turn */
    s.width = 1920;
    s.height = 1080;
    s.rotation = 90;
    assert_int_equal(media_hls_rungs(p, &s, r, MEDIA_MAX_RUNGS), 3);
    assert_int_equal(r[0].width, 1080);
    assert_int_equal(r[0].height, 1920);
    assert_int_equal(r[2].width, 360);
    assert_int_equal(r[2].height, 640);

    assert_int_equal(media_hls_rungs(profile("proxy"), &s, r, MEDIA_MAX_RUNGS), 0);
    s.width = 0;
    assert_int_equal(media_hls_rungs(p, &s, r, MEDIA_MAX_RUNGS), 0);
}

/* ---- command lines ----------------------------------------------------------------------------
 */

static struct media_source video_source(void)
{
    struct media_source s = {0};

    s.type = MEDIA_T_VIDEO;
    snprintf(s.format, sizeof(s.format), "mov");
    s.duration_s = 10;
    s.has_video = 1;
    s.video_index = 0;
    s.width = 1920;
    s.height = 1080;
    s.sar_num = s.sar_den = 1;
    s.bit_depth = 8;
    s.frame_rate = s.avg_frame_rate = 25;
    s.has_audio = 1;
    s.audio_index = 1;
    s.channels = 2;
    s.sample_rate = 48000;
    return s;
}

static char *argv_line(const char *profile_name, const struct media_source *s,
                       const struct media_clip *clip, char ***argv)
{
    struct err err = {0};

    if (media_encode_argv(profile(profile_name), s, FFMPEG, "/in/master file.mov", "/out/d", clip,
                          argv, &err) < 0)
        fail_msg("%s: %s", profile_name, err.msg);
    return joined(*argv);
}

static void expect_refused(const char *profile_name, const struct media_source *s,
                           const struct media_clip *clip, enum err_code code, const char *msg)
{
    struct err err = {0};
    char **argv = (char **)&err; /* must come back NULL */

    assert_int_equal(
        media_encode_argv(profile(profile_name), s, FFMPEG, "/in/m", "/out/d", clip, &argv, &err),
        -1);
    assert_null(argv);
    if (err.code != code || !strstr(err.msg, msg))
        fail_msg("%s: %s (%s), want %s (%s)", profile_name, err_code_name(err.code), err.msg,
                 err_code_name(code), msg);
}

static void test_argv(void **state)
{
    struct media_source s = video_source();
    struct media_clip clip = {2.5, 4};
    char **argv, *line;
    int i_input;

    (void)state;
    /* a plain 1080p25 source */
    line = argv_line("proxy", &s, NULL, &argv);
    assert_string_equal(argv[0], FFMPEG);
    assert_non_null(strstr(line, FFMPEG " -nostdin -hide_banner -loglevel error -y -progress "
                                        "pipe:1 -nostats "));
    i_input = arg_at(argv, "-i");
    assert_true(i_input > 0);
    assert_string_equal(argv[i_input + 1], "file:/in/master file.mov"); /* one argument */
    assert_string_equal(arg_after(argv, "-f"), "mov");
    assert_true(arg_at(argv, "-f") < i_input);
    assert_string_equal(arg_after(argv, "-protocol_whitelist"), "file");
    assert_int_equal(arg_at(argv, "-ss"), -1);
    assert_int_equal(arg_at(argv, "-t"), -1);
    assert_string_equal(arg_after(argv, "-vf"), "scale=1920:1080:flags=lanczos,setsar=1,"
                                                "format=yuv420p");
    assert_null(strstr(line, "bwdif"));
    assert_null(strstr(line, "zscale"));
    assert_string_equal(arg_after(argv, "-fps_mode:v"), "cfr");
    assert_string_equal(arg_after(argv, "-r:v"), "25");
    assert_string_equal(arg_after(argv, "-c:v"), "libx264");
    assert_string_equal(arg_after(argv, "-preset"), "veryfast");
    assert_string_equal(arg_after(argv, "-profile:v"), "high");
    assert_string_equal(arg_after(argv, "-b:v"), "5000k");
    assert_string_equal(arg_after(argv, "-maxrate:v"), "7500k");
    assert_string_equal(arg_after(argv, "-force_key_frames"), "expr:gte(t,n_forced*2)");
    assert_string_equal(arg_after(argv, "-metadata:s:v"), "rotate=0");
    assert_non_null(strstr(line, "-map 0:0 -map 0:1 "));
    assert_string_equal(arg_after(argv, "-c:a"), "aac");
    assert_string_equal(arg_after(argv, "-b:a"), "128k");
    assert_string_equal(arg_after(argv, "-ar"), "48000");
    assert_string_equal(arg_after(argv, "-ac"), "2");
    assert_string_equal(arg_after(argv, "-movflags"), "+faststart");
    assert_string_equal(arg_after(argv, "-map_metadata"), "-1");
    assert_int_equal(arg_at(argv, "-an"), -1);
    assert_string_equal(argv[arg_at(argv, "-movflags") + 6], "file:/out/d/proxy.mp4");
    assert_null(argv[arg_at(argv, "-movflags") + 7]);
    free(line);
    media_argv_free(argv);

    /* web_low: 720p, 1.5 Mbps, AAC 96k, medium */
    line = argv_line("web_low", &s, NULL, &argv);
    assert_non_null(strstr(line, "scale=1280:720:flags=lanczos"));
    assert_string_equal(arg_after(argv, "-b:v"), "1500k");
    assert_string_equal(arg_after(argv, "-b:a"), "96k");
    assert_string_equal(arg_after(argv, "-preset"), "medium");
    assert_non_null(strstr(line, "file:/out/d/web_low.mp4"));
    free(line);
    media_argv_free(argv);

    /* interlaced (top first), rotated, 10-bit, no audio, variable frame rate, a clip */
    s.interlaced = 1;
    s.top_field_first = 1;
    s.rotation = 90;
    s.bit_depth = 10;
    s.has_audio = 0;
    s.audio_index = -1;
    s.vfr = 1;
    s.frame_rate = 30;
    s.avg_frame_rate = 27.3;
    line = argv_line("proxy", &s, &clip, &argv);
    assert_string_equal(arg_after(argv, "-vf"), "bwdif=mode=send_frame:parity=tff:deint=all,"
                                                "scale=1080:1920:flags=lanczos,setsar=1,"
                                                "format=yuv420p");
    assert_null(strstr(line, "transpose")); /* ffmpeg turns it (autorotate), once */
    assert_string_equal(arg_after(argv, "-metadata:s:v"), "rotate=0");
    assert_string_equal(arg_after(argv, "-r:v"), "30"); /* the rate every timestamp fits */
    assert_string_equal(arg_after(argv, "-fps_mode:v"), "cfr");
    assert_true(arg_at(argv, "-an") > 0);
    assert_null(strstr(line, "-c:a"));
    assert_null(strstr(line, "0:-1"));
    assert_non_null(strstr(line, "-map 0:0 -vf"));
    /* accurate seek: both before -i, so only 1.5 s are decoded after the seek point */
    assert_string_equal(arg_after(argv, "-ss"), "2.500");
    assert_string_equal(arg_after(argv, "-t"), "1.500");
    assert_true(arg_at(argv, "-ss") < arg_at(argv, "-i"));
    assert_true(arg_at(argv, "-t") < arg_at(argv, "-i"));
    free(line);
    media_argv_free(argv);

    /* bottom field first; HDR (HLG) tone-mapped after scaling down */
    s.top_field_first = 0;
    s.rotation = 0;
    s.hdr = 1;
    snprintf(s.color_transfer, sizeof(s.color_transfer), "arib-std-b67");
    snprintf(s.color_primaries, sizeof(s.color_primaries), "bt2020");
    snprintf(s.color_space, sizeof(s.color_space), "bt2020nc");
    s.width = 3840;
    s.height = 2160;
    s.vfr = 0;
    s.frame_rate = s.avg_frame_rate = 29.97;
    line = argv_line("web_low", &s, NULL, &argv);
    assert_string_equal(arg_after(argv, "-vf"),
                        "bwdif=mode=send_frame:parity=bff:deint=all,scale=1280:720:flags=lanczos,"
                        "zscale=tin=arib-std-b67:min=2020_ncl:pin=2020:t=linear:npl=100,"
                        "format=gbrpf32le,zscale=p=709,tonemap=tonemap=hable:desat=0,"
                        "zscale=t=709:m=709:r=tv,format=yuv420p,"
                        "scale=1280:720:flags=lanczos,setsar=1,format=yuv420p");
    assert_string_equal(arg_after(argv, "-r:v"), "30000/1001");
    free(line);
    media_argv_free(argv);

    /* 120 fps slow motion plays at 60; an odd constant rate is kept */
    s = video_source();
    s.frame_rate = s.avg_frame_rate = 119.88;
    line = argv_line("proxy", &s, NULL, &argv);
    assert_string_equal(arg_after(argv, "-r:v"), "60000/1001");
    free(line);
    media_argv_free(argv);
    s.frame_rate = s.avg_frame_rate = 7.5;
    line = argv_line("proxy", &s, NULL, &argv);
    assert_string_equal(arg_after(argv, "-r:v"), "7.500");
    free(line);
    media_argv_free(argv);
    s.frame_rate = s.avg_frame_rate = 0;
    line = argv_line("proxy", &s, NULL, &argv);
    assert_int_equal(arg_at(argv, "-r:v"), -1);
    free(line);
    media_argv_free(argv);

    /* the poster: a window from 10% in, representative frame, fallback, no audio */
    s = video_source();
    s.duration_s = 60;
    line = argv_line("poster", &s, NULL, &argv);
    assert_string_equal(arg_after(argv, "-ss"), "6.000");
    assert_string_equal(arg_after(argv, "-t"), "10.000");
    assert_string_equal(
        arg_after(argv, "-filter_complex"),
        "[0:0]fps=2,scale=1920:1080:flags=lanczos,setsar=1,format=yuv420p,split[c][f];"
        "[c]signalstats,metadata=select:key=lavfi.signalstats.YAVG:value=32:function=greater,"
        "metadata=select:key=lavfi.signalstats.YAVG:value=224:function=less,thumbnail=n=20"
        "[best];[f]trim=end_frame=1[first];[best][first]concat=n=2:v=1:a=0,format=yuvj420p"
        "[poster]");
    assert_string_equal(arg_after(argv, "-map"), "[poster]");
    assert_string_equal(arg_after(argv, "-frames:v"), "1");
    assert_true(arg_at(argv, "-an") > 0);
    assert_non_null(strstr(line, "-f image2 file:/out/d/poster.jpg"));
    free(line);
    media_argv_free(argv);
    s.duration_s = 3600; /* skip at most 15 s */
    line = argv_line("poster", &s, NULL, &argv);
    assert_string_equal(arg_after(argv, "-ss"), "15.000");
    free(line);
    media_argv_free(argv);
    s.duration_s = 3; /* short: 0.3 s in, to the end */
    clip.in_s = 1;
    clip.out_s = 2;
    line = argv_line("poster", &s, &clip, &argv);
    assert_string_equal(arg_after(argv, "-ss"), "1.100");
    assert_string_equal(arg_after(argv, "-t"), "0.900");
    free(line);
    media_argv_free(argv);

    /* HLS: one decode, split to the rungs, dash muxer writing both manifests */
    s = video_source();
    line = argv_line("hls", &s, NULL, &argv);
    assert_string_equal(arg_after(argv, "-filter_complex"),
                        "[0:0]split=3[s0][s1][s2];"
                        "[s0]scale=1920:1080:flags=lanczos,setsar=1,format=yuv420p[v0];"
                        "[s1]scale=1280:720:flags=lanczos,setsar=1,format=yuv420p[v1];"
                        "[s2]scale=640:360:flags=lanczos,setsar=1,format=yuv420p[v2]");
    assert_non_null(strstr(line, "-map [v0] -map [v1] -map [v2] -map 0:1 "));
    assert_string_equal(arg_after(argv, "-b:v:0"), "5000k");
    assert_string_equal(arg_after(argv, "-b:v:1"), "2800k");
    assert_string_equal(arg_after(argv, "-b:v:2"), "800k");
    assert_string_equal(arg_after(argv, "-sc_threshold"), "0");
    assert_string_equal(arg_after(argv, "-seg_duration"), "6");
    assert_string_equal(arg_after(argv, "-hls_playlist"), "1");
    assert_string_equal(arg_after(argv, "-hls_master_name"), "master.m3u8");
    assert_string_equal(arg_after(argv, "-adaptation_sets"), "id=0,streams=v id=1,streams=a");
    assert_string_equal(arg_after(argv, "-f"), "mov");
    assert_non_null(strstr(line, "-f dash "));
    assert_non_null(strstr(line, " file:/out/d/manifest.mpd "));
    free(line);
    media_argv_free(argv);
    s.has_audio = 0;
    s.width = 320;
    s.height = 240;
    line = argv_line("hls", &s, NULL, &argv);
    assert_string_equal(arg_after(argv, "-filter_complex"),
                        "[0:0]scale=320:240:flags=lanczos,setsar=1,format=yuv420p[v0]");
    assert_string_equal(arg_after(argv, "-adaptation_sets"), "id=0,streams=v");
    assert_null(strstr(line, "0:1"));
    free(line);
    media_argv_free(argv);

    /* audio profiles take the audio of whatever they are given */
    s = video_source();
    s.audio_index = 3;
    line = argv_line("waveform", &s, NULL, &argv);
    assert_non_null(strstr(line, "-map 0:3 -vn "));
    assert_string_equal(arg_after(argv, "-ac"), "1");
    assert_string_equal(arg_after(argv, "-ar"), "8000");
    assert_non_null(strstr(line, "-f s16le file:/out/d/waveform.pcm "));
    free(line);
    media_argv_free(argv);
    s.type = MEDIA_T_AUDIO;
    s.has_video = 0;
    s.channels = 6;
    line = argv_line("preview", &s, NULL, &argv);
    assert_string_equal(arg_after(argv, "-c:a"), "libmp3lame");
    assert_string_equal(arg_after(argv, "-b:a"), "128k");
    assert_string_equal(arg_after(argv, "-ar"), "44100");
    assert_string_equal(arg_after(argv, "-ac"), "2"); /* 5.1 down to stereo */
    assert_true(arg_at(argv, "-vn") > 0);
    free(line);
    media_argv_free(argv);
    s.channels = 1;
    line = argv_line("preview", &s, NULL, &argv);
    assert_int_equal(arg_at(argv, "-ac"), -1); /* mono stays mono */
    free(line);
    media_argv_free(argv);
    s.channels = 6;
    line = argv_line("broadcast", &s, NULL, &argv);
    assert_string_equal(arg_after(argv, "-c:a"), "pcm_s24le");
    assert_string_equal(arg_after(argv, "-ar"), "48000");
    assert_int_equal(arg_at(argv, "-ac"), -1); /* every channel kept */
    assert_string_equal(arg_after(argv, "-rf64"), "auto");
    assert_non_null(strstr(line, "-f wav file:/out/d/broadcast.wav "));
    free(line);
    media_argv_free(argv);

    /* what does not apply is refused, with the reason */
    expect_refused("poster", &s, NULL, ERR_INVALID, "poster: not a profile for audio");
    expect_refused("thumbs", &s, NULL, ERR_UNSUPPORTED, "libvips");
    s = video_source();
    s.has_audio = 0;
    expect_refused("waveform", &s, NULL, ERR_INVALID, "waveform: the source has no audio stream");
    expect_refused("preview", &s, NULL, ERR_INVALID, "preview: not a profile for video");
    s.width = 20000;
    expect_refused("proxy", &s, NULL, ERR_UNSUPPORTED, "proxy: the video is 20000 x 1080");
    s = video_source();
    clip.in_s = 11;
    clip.out_s = 12;
    expect_refused("proxy", &s, &clip, ERR_INVALID, "after the end");
    clip.in_s = 3;
    clip.out_s = 2;
    expect_refused("proxy", &s, &clip, ERR_INVALID, "not a range");
    clip.in_s = -1;
    expect_refused("subclip", &s, &clip, ERR_INVALID, "not a range");
    clip.in_s = 9;
    clip.out_s = 30; /* past the end: to the end */
    line = argv_line("subclip", &s, &clip, &argv);
    assert_string_equal(arg_after(argv, "-t"), "1.000");
    free(line);
    media_argv_free(argv);
}

static void test_timeout(void **state)
{
    struct media_source s = video_source();
    double proxy, hls, web;

    (void)state;
    s.duration_s = 100;
    proxy = media_encode_timeout_s(profile("proxy"), &s);
    assert_near(proxy, 60 + 3 * 100 * (0.3 + 0.45), 0.01); /* 1080p25: 285 s */
    hls = media_encode_timeout_s(profile("hls"), &s);
    web = media_encode_timeout_s(profile("web_low"), &s);
    assert_true(hls > proxy);
    assert_true(web < hls);
    s.duration_s = 200;
    assert_near(media_encode_timeout_s(profile("proxy"), &s) - 60, 2 * (proxy - 60), 0.01);
    /* a 4K50 source costs more to decode and its 1080p50 output more to encode */
    s.width = 3840;
    s.height = 2160;
    s.frame_rate = s.avg_frame_rate = 50;
    assert_near(media_encode_timeout_s(profile("proxy"), &s), 60 + 3 * 200 * (0.3 * 8 + 0.45 * 2),
                0.01);
    s.interlaced = 1;
    s.hdr = 1;
    assert_near(media_encode_timeout_s(profile("proxy"), &s),
                60 + 3 * 200 * ((0.3 + 0.15) * 8 + (0.45 + 0.5) * 2), 0.01);
    /* the poster reads a bounded window, whatever the length */
    s.duration_s = 36000;
    assert_true(media_encode_timeout_s(profile("poster"), &s) < 1000);
    /* audio is cheap, but never under a minute */
    s.duration_s = 3600;
    assert_near(media_encode_timeout_s(profile("preview"), &s), 60 + 3 * 3600 * 0.05, 0.01);
    s.duration_s = 1;
    assert_true(media_encode_timeout_s(profile("waveform"), &s) >= 60);
    /* unknown duration: an hour's worth */
    s.duration_s = 0;
    assert_near(media_encode_timeout_s(profile("preview"), &s), 60 + 3 * 3600 * 0.05, 0.01);
}

/* ---- progress -----------------------------------------------------------------------------------
 */

static const char progress_text[] = "frame=0\nfps=0.00\nout_time_us=N/A\nout_time_ms=N/A\n"
                                    "out_time=N/A\nprogress=continue\n"
                                    "frame=25\nout_time_us=1000000\nout_time_ms=1000000\n"
                                    "progress=continue\n"
                                    "frame=50\nout_time_us=2500000\nprogress=continue\r\n"
                                    "frame=75\nout_time_us=1000000\n" /* backwards: ignored */
                                    "out_time_ms=3999999\nprogress=continue\n"
                                    "out_time_us=4200000\nprogress=continue\n" /* past: 99 */
                                    "progress=end\n";

static int feed(struct media_progress *p, const char *s)
{
    return media_progress_feed(p, s, strlen(s));
}

static void test_progress(void **state)
{
    struct media_progress p;
    int changes = 0, seen[8], n = 0;
    char long_line[300];

    (void)state;
    /* byte by byte: lines split anywhere */
    media_progress_init(&p, 4.0);
    for (size_t i = 0; i < strlen(progress_text); i++) {
        if (media_progress_feed(&p, progress_text + i, 1)) {
            changes++;
            if (n < 8)
                seen[n++] = p.percent;
        }
        assert_true(p.percent >= 0 && p.percent <= 100);
    }
    assert_int_equal(changes, 4);
    assert_int_equal(seen[0], 25);
    assert_int_equal(seen[1], 62);
    assert_int_equal(seen[2], 99); /* out_time_ms is microseconds: 3.999999 s */
    assert_int_equal(seen[3], 100);
    assert_true(p.ended);
    assert_int_equal(p.percent, 100);
    assert_false(feed(&p, "progress=end\n")); /* no change */

    /* all at once gives the same end */
    media_progress_init(&p, 4.0);
    assert_true(media_progress_feed(&p, progress_text, strlen(progress_text)));
    assert_int_equal(p.percent, 100);

    /* a chunk ending mid-line; the rest later */
    media_progress_init(&p, 10.0);
    assert_false(feed(&p, "out_time_us=50"));
    assert_int_equal(p.percent, 0);
    assert_true(feed(&p, "00000\n"));
    assert_int_equal(p.percent, 50);
    assert_near(p.out_s, 5.0, 1e-9);

    /* unknown duration: 0 until the end; negative times are 0; overlong lines ignored */
    media_progress_init(&p, 0);
    assert_false(feed(&p, "out_time_us=-5000\nout_time_us=9000000\n"));
    assert_int_equal(p.percent, 0);
    memset(long_line, 'x', sizeof(long_line));
    memcpy(long_line, "progress=end", 12);
    long_line[sizeof(long_line) - 1] = '\n';
    assert_false(media_progress_feed(&p, long_line, sizeof(long_line)));
    assert_false(p.ended);
    assert_true(feed(&p, "progress=end\n"));
    assert_int_equal(p.percent, 100);

    media_progress_init(&p, -3);
    assert_near(p.duration_s, 0, 0);
}

/* ---- waveform -----------------------------------------------------------------------------------
 */

static int pcm_file(const char *name, const int16_t *samples, size_t n, int extra_byte)
{
    char path[128];
    unsigned char b[2];
    FILE *f;

    fixture(path, sizeof(path), name);
    f = fopen(path, "wb");
    if (!f)
        return -1;
    for (size_t i = 0; i < n; i++) {
        b[0] = (unsigned char)((uint16_t)samples[i] & 0xff);
        b[1] = (unsigned char)((uint16_t)samples[i] >> 8);
        fwrite(b, 1, 2, f);
    }
    if (extra_byte)
        fputc(0x7f, f);
    fclose(f);
    return open(path, O_RDONLY);
}

static double peak(const json_t *doc, size_t i, int which)
{
    return json_number_value(
        json_array_get(json_array_get(json_object_get(doc, "peaks"), i), which));
}

static void test_waveform_peaks(void **state)
{
    /* 3 s at 8 kHz: a second of silence, a second of a 1000-sample ramp, a second at +-16384 */
    size_t n = 3 * MEDIA_WAVEFORM_RATE;
    int16_t *pcm = xcalloc(n, sizeof(*pcm));
    struct err err = {0};
    json_t *doc = NULL;
    char path[128];
    int fd;

    (void)state;
    for (size_t i = 8000; i < 16000; i++)
        pcm[i] = (int16_t)((int)(i % 1000) * 32 - 16000);
    pcm[12345] = -32768;
    pcm[12346] = 32767;
    for (size_t i = 16000; i < n; i++)
        pcm[i] = i % 2 ? 16384 : -16384;
    for (size_t i = 16000; i < 16800; i++) /* slice 20: a constant, above zero */
        pcm[i] = 1000;
    fd = pcm_file("w.pcm", pcm, n, 1); /* and a stray odd byte: ignored */
    assert_true(fd >= 0);
    assert_int_equal(media_waveform_peaks(fd, 3.0, 0, &doc, &err), 0);
    close(fd);
    assert_int_equal(jint(doc, "version", 0), 1);
    assert_int_equal(jint(doc, "sample_rate", 0), 8000);
    assert_int_equal(jint(doc, "points", 0), 30); /* 10 a second */
    assert_int_equal(jint(doc, "duration_ms", 0), 3000);
    assert_int_equal(json_array_size(json_object_get(doc, "peaks")), 30);
    assert_near(peak(doc, 0, 0), 0, 0);
    assert_near(peak(doc, 9, 1), 0, 0);
    assert_near(peak(doc, 10, 0), -16000 / 32768.0, 1e-4);
    assert_near(peak(doc, 10, 1), (799 * 32 - 16000) / 32768.0, 1e-4); /* 8000..8799 */
    assert_near(peak(doc, 20, 0), 1000 / 32768.0, 1e-4);               /* its min, not 0 */
    assert_near(peak(doc, 20, 1), 1000 / 32768.0, 1e-4);
    assert_near(peak(doc, 15, 0), -1.0, 0); /* full scale, sample 12345 is in slice 15 */
    assert_near(peak(doc, 15, 1), 1.0, 1e-4);
    assert_near(peak(doc, 29, 0), -0.5, 0);
    assert_near(peak(doc, 29, 1), 0.5, 0);
    json_decref(doc);

    /* explicit points, and every point a valid [min,max] */
    fd = pcm_file("w.pcm", pcm, n, 0);
    assert_int_equal(media_waveform_peaks(fd, 0, 3, &doc, &err), 0);
    close(fd);
    assert_int_equal(jint(doc, "points", 0), 3);
    assert_near(peak(doc, 0, 1), 0, 0);
    assert_near(peak(doc, 1, 0), -1.0, 0);
    assert_near(peak(doc, 2, 1), 0.5, 0);
    if (media_output_check(profile("waveform"), &(struct media_source){.duration_s = 3}, NULL, doc,
                           &err) < 0)
        fail_msg("%s", err.msg);
    assert_int_equal(media_output_check(profile("waveform"),
                                        &(struct media_source){.duration_s = 5}, NULL, doc, &err),
                     -1);
    assert_string_equal(err.msg,
                        "waveform: duration 3.00 s, source 5.00 s (more than 0.5 s apart)");
    json_decref(doc);
    free(pcm);

    /* fewer samples than points: one point a sample */
    {
        int16_t few[4] = {100, -100, 200, -200};

        fd = pcm_file("few.pcm", few, 4, 0);
        assert_int_equal(media_waveform_peaks(fd, 60, 0, &doc, &err), 0);
        close(fd);
        assert_int_equal(jint(doc, "points", 0), 4);
        assert_int_equal(jint(doc, "duration_ms", 0), 0);
        json_decref(doc);
    }

    /* long: capped at 10000 points, read in chunks (an hour of zeros, sparse) */
    fixture(path, sizeof(path), "long.pcm");
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)3600 * MEDIA_WAVEFORM_RATE * 2), 0);
    assert_int_equal(media_waveform_peaks(fd, 3600, 0, &doc, &err), 0);
    assert_int_equal(jint(doc, "points", 0), MEDIA_WAVEFORM_MAX_POINTS);
    assert_int_equal(jint(doc, "duration_ms", 0), 3600000);
    assert_near(peak(doc, 9999, 1), 0, 0);
    json_decref(doc);
    doc = NULL;
    assert_int_equal(media_waveform_peaks(fd, 3600, 10001, &doc, &err), -1);
    assert_int_equal(err.code, ERR_LIMIT);
    assert_null(doc);
    close(fd);

    fd = pcm_file("empty.pcm", NULL, 0, 1); /* one byte: no whole sample */
    assert_int_equal(media_waveform_peaks(fd, 1, 0, &doc, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    close(fd);
    assert_int_equal(media_waveform_peaks(-1, 1, 0, &doc, &err), -1);
    assert_int_equal(err.code, ERR_IO);
}

/* ---- checks on made-up probes -------------------------------------------------------------------
 */

static json_t *fake_mp4(int w, int h, int duration_ms, int with_audio)
{
    json_t *streams = json_array();

    json_array_append_new(streams,
                          json_pack("{s:s,s:s,s:i,s:i,s:s,s:i,s:f,s:f}", "type", "video", "codec",
                                    "h264", "width", w, "height", h, "pix_fmt", "yuv420p",
                                    "rotation", 0, "frame_rate", 25.0, "avg_frame_rate", 25.0));
    if (with_audio)
        json_array_append_new(streams, json_pack("{s:s,s:s,s:i,s:i}", "type", "audio", "codec",
                                                 "aac", "sample_rate", 48000, "channels", 2));
    return json_pack("{s:s,s:i,s:o,s:{s:s}}", "type", "video", "duration_ms", duration_ms,
                     "streams", streams, "summary", "container", "mp4");
}

static void want_check(const char *name, const struct media_source *s,
                       const struct media_clip *clip, json_t *o, const char *msg)
{
    struct err err = {0};
    int rc = media_output_check(profile(name), s, clip, o, &err);

    json_decref(o);
    if (!msg) {
        if (rc < 0)
            fail_msg("%s: %s", name, err.msg);
        return;
    }
    if (rc == 0)
        fail_msg("%s: passed, want \"%s\"", name, msg);
    assert_int_equal(err.code, ERR_UNSUPPORTED);
    if (strcmp(err.msg, msg) != 0)
        fail_msg("%s: \"%s\", want \"%s\"", name, err.msg, msg);
}

static void test_output_check(void **state)
{
    struct media_source s = video_source();
    struct media_clip clip = {1, 4};
    struct err err = {0};
    json_t *o;

    (void)state;
    want_check("proxy", &s, NULL, fake_mp4(1920, 1080, 10000, 1), NULL);
    want_check("proxy", &s, NULL, fake_mp4(1920, 1080, 9200, 1),
               "proxy: duration 9.20 s, source 10.00 s (more than 0.5 s apart)");
    want_check("proxy", &s, NULL, fake_mp4(1920, 1080, 10400, 1), NULL);
    want_check("subclip", &s, &clip, fake_mp4(1920, 1080, 3000, 1), NULL);
    want_check("subclip", &s, &clip, fake_mp4(1920, 1080, 10000, 1),
               "subclip: duration 10.00 s, clip 3.00 s (more than 0.5 s apart)");
    want_check("web_low", &s, NULL, fake_mp4(1920, 1080, 10000, 1),
               "web_low: picture 1920 x 1080, not 1280 x 720");
    want_check("proxy", &s, NULL, fake_mp4(1920, 1080, 10000, 0),
               "proxy: 0 audio streams, the source has audio");
    s.has_audio = 0;
    want_check("proxy", &s, NULL, fake_mp4(1920, 1080, 10000, 1),
               "proxy: 1 audio streams, the source has none");
    s.has_audio = 1;

    o = fake_mp4(1920, 1080, 10000, 1);
    json_object_set_new(json_array_get(json_object_get(o, "streams"), 0), "rotation",
                        json_integer(90));
    want_check("proxy", &s, NULL, o, "proxy: the output is still rotated 90 degrees");
    o = fake_mp4(1920, 1080, 10000, 1);
    json_object_set_new(json_array_get(json_object_get(o, "streams"), 0), "pix_fmt",
                        json_string("yuv420p10le"));
    want_check("proxy", &s, NULL, o, "proxy: pixel format yuv420p10le, not yuv420p");
    o = fake_mp4(1920, 1080, 10000, 1);
    json_object_set_new(json_array_get(json_object_get(o, "streams"), 0), "color_transfer",
                        json_string("smpte2084"));
    want_check("proxy", &s, NULL, o, "proxy: the output is still HDR (smpte2084)");
    o = fake_mp4(1920, 1080, 10000, 1);
    json_object_set_new(json_array_get(json_object_get(o, "streams"), 0), "avg_frame_rate",
                        json_real(21.5));
    want_check("proxy", &s, NULL, o, "proxy: variable frame rate (25.000, average 21.500)");
    o = fake_mp4(1920, 1080, 10000, 1);
    json_object_set_new(json_array_get(json_object_get(o, "streams"), 1), "sample_rate",
                        json_integer(44100));
    want_check("proxy", &s, NULL, o, "proxy: audio at 44100 Hz, not 48000 Hz");
    o = fake_mp4(1920, 1080, 10000, 1);
    json_object_set_new(json_array_get(json_object_get(o, "streams"), 0), "codec",
                        json_string("hevc"));
    want_check("proxy", &s, NULL, o, "proxy: video codec hevc, not h264");
    o = fake_mp4(1920, 1080, 10000, 1);
    json_object_set_new(json_object_get(o, "summary"), "container", json_string("mov"));
    want_check("proxy", &s, NULL, o, "proxy: the output is not an MP4 video");

    /* audio profiles: no video at all */
    s.type = MEDIA_T_AUDIO;
    s.channels = 1;
    o = json_pack("{s:s,s:i,s:[{s:s,s:s,s:i,s:i,s:i}]}", "type", "audio", "duration_ms", 10000,
                  "streams", "type", "audio", "codec", "pcm_s24le", "sample_rate", 48000,
                  "channels", 1, "bits_per_sample", 24);
    want_check("broadcast", &s, NULL, json_incref(o), NULL);
    s.channels = 2;
    want_check("broadcast", &s, NULL, json_incref(o), "broadcast: 1 audio channels, not 2");
    s.channels = 1;
    json_array_append_new(json_object_get(o, "streams"),
                          json_pack("{s:s,s:s}", "type", "video", "codec", "mjpeg"));
    want_check("broadcast", &s, NULL, o, "broadcast: the output is not audio only");
    o = json_pack("{s:s,s:i,s:[{s:s,s:s,s:i,s:i}]}", "type", "audio", "duration_ms", 10000,
                  "streams", "type", "audio", "codec", "mp3", "sample_rate", 48000, "channels", 1);
    want_check("preview", &s, NULL, o, "preview: audio at 48000 Hz, not 44100 Hz");

    /* the poster */
    s = video_source();
    want_check("poster", &s, NULL,
               json_pack("{s:s,s:s,s:i,s:i,s:i}", "type", "image", "format", "jpeg", "width", 1920,
                         "height", 1080, "orientation", 1),
               NULL);
    want_check("poster", &s, NULL,
               json_pack("{s:s,s:s,s:i,s:i}", "type", "image", "format", "png", "width", 1920,
                         "height", 1080),
               "poster: the output is not a JPEG image");
    want_check("poster", &s, NULL,
               json_pack("{s:s,s:s,s:i,s:i}", "type", "image", "format", "jpeg", "width", 1080,
                         "height", 1920),
               "poster: picture 1080 x 1920, not 1920 x 1080");

    o = json_object();
    assert_int_equal(media_output_check(profile("hls"), &s, NULL, o, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
    json_decref(o);
    assert_int_equal(media_output_check(profile("proxy"), &s, NULL, NULL, &err), -1);
    assert_int_equal(err.code, ERR_INVALID);
}

/* ---- real encodes
 * --------------------------------------------------------------------------------- */

static void test_encode_landscape(void **state)
{
    struct encoded e;
    const json_t *v, *a;
    char *data;
    size_t len;
    FILE *f;
    char *moov, *mdat;

    (void)state;
    if (!probe_bin)
        skip();
    /* the master as stdin, the way the worker gives it */
    encode("proxy", "land.mp4", NULL, 1, &e);
    v = stream_of(e.probe, "video");
    a = stream_of(e.probe, "audio");
    assert_string_equal(jstr(v, "codec"), "h264");
    assert_string_equal(jstr(v, "profile"), "High");
    assert_int_equal(jint(v, "width", 0), 1280); /* never upscaled */
    assert_int_equal(jint(v, "height", 0), 720);
    assert_string_equal(jstr(v, "pix_fmt"), "yuv420p");
    assert_near(jnum(v, "avg_frame_rate"), 25, 0.01);
    assert_string_equal(jstr(a, "codec"), "aac");
    assert_int_equal(jint(a, "sample_rate", 0), 48000); /* from 44.1 kHz */
    assert_int_equal(jint(a, "channels", 0), 2);
    assert_near(jint(e.probe, "duration_ms", 0), 3000, 100);
    assert_string_equal(jstr(json_object_get(e.probe, "summary"), "container"), "mp4");
    /* faststart: the index before the media */
    f = fopen(e.main, "rb");
    assert_non_null(f);
    data = xmalloc(8u << 20);
    len = fread(data, 1, 8u << 20, f);
    fclose(f);
    moov = memmem(data, len, "moov", 4);
    mdat = memmem(data, len, "mdat", 4);
    assert_non_null(moov);
    assert_non_null(mdat);
    assert_true(moov < mdat);
    free(data);
    json_decref(e.probe);

    encode("web_low", "land.mp4", NULL, 0, &e);
    v = stream_of(e.probe, "video");
    assert_int_equal(jint(v, "width", 0), 1280);
    assert_true(jint(json_object_get(e.probe, "summary"), "bitrate_kbps", 0) < 2500);
    json_decref(e.probe);

    /* 1080p, one second: the only full-size encode */
    encode("proxy", "big.mp4", NULL, 0, &e);
    v = stream_of(e.probe, "video");
    assert_int_equal(jint(v, "width", 0), 1920);
    assert_int_equal(jint(v, "height", 0), 1080);
    assert_null(stream_of(e.probe, "audio"));
    json_decref(e.probe);
}

static void test_encode_portrait(void **state)
{
    struct encoded e;
    const json_t *v;

    (void)state;
    if (!probe_bin)
        skip();
    encode("web_low", "portrait.mp4", NULL, 0, &e);
    assert_int_equal(e.src.rotation == 90 || e.src.rotation == 270, 1);
    v = stream_of(e.probe, "video");
    assert_int_equal(jint(v, "width", 0), 720); /* upright, in the turned 1280x720 box */
    assert_int_equal(jint(v, "height", 0), 1280);
    assert_int_equal(jint(v, "rotation", -1), 0); /* players must not turn it again */
    assert_near(jnum(v, "avg_frame_rate"), 30, 0.01);
    json_decref(e.probe);

    encode("poster", "portrait.mp4", NULL, 0, &e);
    assert_int_equal(jint(e.probe, "width", 0), 1080);
    assert_int_equal(jint(e.probe, "height", 0), 1920);
    assert_int_equal(jint(e.probe, "orientation", 0), 1);
    json_decref(e.probe);
}

static void test_encode_interlaced(void **state)
{
    struct encoded e;
    const json_t *v, *a;

    (void)state;
    if (!probe_bin)
        skip();
    encode("proxy", "sd.mp4", NULL, 0, &e);
    assert_true(e.src.interlaced);
    assert_true(e.src.top_field_first);
    assert_int_equal(e.src.sar_num, 16);
    v = stream_of(e.probe, "video");
    assert_int_equal(jint(v, "width", 0), 768); /* square pixels: 4:3 at 576 lines */
    assert_int_equal(jint(v, "height", 0), 576);
    assert_string_equal(jstr(v, "field_order"), "progressive");
    assert_near(jnum(v, "avg_frame_rate"), 25, 0.01);
    a = stream_of(e.probe, "audio");
    assert_int_equal(jint(a, "channels", 0), 2); /* mono to stereo */
    json_decref(e.probe);
}

static void test_encode_silent_and_vfr(void **state)
{
    struct encoded e;
    struct media_source s;
    struct err err = {0};
    char **argv = NULL;
    const json_t *v;

    (void)state;
    if (!probe_bin)
        skip();
    encode("proxy", "silent.mp4", NULL, 0, &e);
    assert_false(e.src.has_audio);
    assert_int_equal(count_of(e.probe, "audio"), 0);
    assert_int_equal(count_of(e.probe, "video"), 1);
    json_decref(e.probe);
    source_of("silent.mp4", &s);
    assert_int_equal(
        media_encode_argv(profile("waveform"), &s, FFMPEG, "x", dir, NULL, &argv, &err), -1);
    assert_null(argv);

    encode("proxy", "vfr.mp4", NULL, 0, &e);
    assert_true(e.src.vfr);
    v = stream_of(e.probe, "video");
    assert_near(jnum(v, "frame_rate"), 30, 0.01); /* constant, at the source's top rate */
    assert_near(jnum(v, "avg_frame_rate"), 30, 0.2);
    assert_near(jint(e.probe, "duration_ms", 0), e.src.duration_s * 1000, 150);
    json_decref(e.probe);
}

static void test_encode_hdr_10bit(void **state)
{
    struct encoded e;
    const json_t *v;

    (void)state;
    if (!probe_bin || !have_x265)
        skip();
    encode("proxy", "hlg.mp4", NULL, 0, &e);
    assert_int_equal(e.src.bit_depth, 10);
    assert_true(e.src.hdr);
    v = stream_of(e.probe, "video");
    assert_string_equal(jstr(v, "codec"), "h264");
    assert_string_equal(jstr(v, "pix_fmt"), "yuv420p");
    assert_string_equal(jstr(v, "color_transfer"), "bt709");
    assert_string_equal(jstr(v, "color_primaries"), "bt709");
    assert_int_equal(jint(v, "width", 0), 640);
    json_decref(e.probe);
}

static void test_encode_clip(void **state)
{
    struct media_clip clip = {0.5, 2.0};
    struct err err = {0};
    struct encoded e;

    (void)state;
    if (!probe_bin)
        skip();
    encode("subclip", "land.mp4", &clip, 0, &e);
    assert_near(jint(e.probe, "duration_ms", 0), 1500, 100);
    assert_int_equal(count_of(e.probe, "audio"), 1);
    /* the whole source's duration is not what was asked for */
    assert_int_equal(media_output_check(profile("subclip"), &e.src, NULL, e.probe, &err), -1);
    assert_non_null(strstr(err.msg, "subclip: duration 1.5"));
    assert_non_null(strstr(err.msg, ", source 3.00 s (more than 0.5 s apart)"));
    json_decref(e.probe);
}

static void test_encode_poster(void **state)
{
    struct encoded e;

    (void)state;
    if (!probe_bin)
        skip();
    /* black, then a fade: the poster is the picture, not the black nor the first fade frames */
    encode("poster", "fade.mp4", NULL, 0, &e);
    assert_string_equal(jstr(e.probe, "format"), "jpeg");
    assert_int_equal(jint(e.probe, "width", 0), 320);
    assert_int_equal(jint(e.probe, "height", 0), 240);
    assert_true(mean_luma(e.main) > 90); /* testsrc2 is ~120, black 0 (full range) */
    json_decref(e.probe);

    /* black for 2.2 s of 3: most candidates are black, and would be the most
     * representative frame; the dark ones are dropped first */
    encode("poster", "dark.mp4", NULL, 0, &e);
    assert_true(mean_luma(e.main) > 90);
    json_decref(e.probe);

    /* all black: still a poster (the first frame of the window) */
    encode("poster", "black.mp4", NULL, 0, &e);
    assert_true(mean_luma(e.main) < 10);
    json_decref(e.probe);
}

static void test_encode_hls(void **state)
{
    const struct media_profile *p = profile("hls");
    char path[256], *out, errtail[1024];
    struct err err = {0};
    struct encoded e;
    int st;

    (void)state;
    if (!probe_bin)
        skip();
    encode("hls", "land.mp4", NULL, 0, &e); /* 720p: rungs 720 and 360 */
    snprintf(path, sizeof(path), "%s/manifest.mpd", e.out_dir);
    assert_int_equal(access(path, R_OK), 0);
    snprintf(path, sizeof(path), "%s/init_0.m4s", e.out_dir);
    assert_int_equal(access(path, R_OK), 0);

    /* a player's view: ffmpeg reads master.m3u8 and decodes every rung's segments */
    snprintf(path, sizeof(path), "%s/master.m3u8", e.out_dir);
    {
        char *play[] = {
            (char *)FFMPEG, (char *)"-nostdin", (char *)"-v", (char *)"error", (char *)"-i", path,
            (char *)"-map", (char *)"0",        (char *)"-f", (char *)"null",  (char *)"-",  NULL};

        st = capture(play, -1, &out, errtail, sizeof(errtail));
    }
    free(out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || errtail[0])
        fail_msg("ffmpeg could not play %s: %s", path, errtail);

    /* a missing segment is found */
    snprintf(path, sizeof(path), "%s/seg_1_00001.m4s", e.out_dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(media_hls_check(p, &e.src, NULL, e.out_dir, &err), -1);
    assert_string_equal(err.msg, "hls: seg_1_00001.m4s is missing or empty");
    /* a ladder that does not match the source */
    e.src.width = 1920;
    e.src.height = 1080;
    assert_int_equal(media_hls_check(p, &e.src, NULL, e.out_dir, &err), -1);
    assert_string_equal(err.msg, "hls: variant 1 is 1280x720, not 1920x1080");

    /* no audio: no audio rendition */
    encode("hls", "silent.mp4", NULL, 0, &e);
    e.src.has_audio = 1;
    assert_int_equal(media_hls_check(p, &e.src, NULL, e.out_dir, &err), -1);
    assert_string_equal(err.msg, "hls: 0 audio renditions, the source has audio");
}

static void test_encode_audio(void **state)
{
    struct err err = {0};
    struct encoded e;
    const json_t *a;
    json_t *peaks = NULL;
    int fd;

    (void)state;
    if (!probe_bin)
        skip();
    encode("preview", "mono.wav", NULL, 0, &e);
    a = stream_of(e.probe, "audio");
    assert_string_equal(jstr(a, "codec"), "mp3");
    assert_int_equal(jint(a, "sample_rate", 0), 44100);
    assert_int_equal(jint(a, "channels", 0), 1);
    assert_int_equal(jint(a, "bit_rate", 0), 128000);
    assert_int_equal(count_of(e.probe, "video"), 0);
    json_decref(e.probe);

    encode("broadcast", "stereo.mp3", NULL, 0, &e);
    a = stream_of(e.probe, "audio");
    assert_string_equal(jstr(e.probe, "mime_type"), "audio/wav");
    assert_string_equal(jstr(a, "codec"), "pcm_s24le");
    assert_int_equal(jint(a, "sample_rate", 0), 48000);
    assert_int_equal(jint(a, "channels", 0), 2);
    assert_int_equal(jint(a, "bits_per_sample", 0), 24);
    json_decref(e.probe);

    /* the waveform of an audio file: a sine of amplitude 1/8 (lavfi's default) */
    encode("waveform", "mono.wav", NULL, 0, &e);
    fd = open(e.main, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(media_waveform_peaks(fd, e.src.duration_s, 0, &peaks, &err), 0);
    close(fd);
    assert_int_equal(jint(peaks, "points", 0), 30);
    assert_near(jint(peaks, "duration_ms", 0), 3000, 50);
    assert_near(peak(peaks, 15, 1), 0.125, 0.01);
    assert_near(peak(peaks, 15, 0), -0.125, 0.01);
    if (media_output_check(profile("waveform"), &e.src, NULL, peaks, &err) < 0)
        fail_msg("%s", err.msg);
    json_decref(peaks);

    /* and of a video's sound (stereo, mixed down) */
    encode("waveform", "land.mp4", NULL, 0, &e);
    fd = open(e.main, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(media_waveform_peaks(fd, e.src.duration_s, 0, &peaks, &err), 0);
    close(fd);
    assert_near(jint(peaks, "duration_ms", 0), 3000, 100);
    assert_true(peak(peaks, 15, 1) > 0.05);
    assert_true(peak(peaks, 15, 0) < -0.05);
    if (media_output_check(profile("waveform"), &e.src, NULL, peaks, &err) < 0)
        fail_msg("%s", err.msg);
    json_decref(peaks);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profiles),
        cmocka_unit_test(test_source_from_probe),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_rungs),
        cmocka_unit_test(test_argv),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_waveform_peaks),
        cmocka_unit_test(test_output_check),
        cmocka_unit_test(test_encode_landscape),
        cmocka_unit_test(test_encode_portrait),
        cmocka_unit_test(test_encode_interlaced),
        cmocka_unit_test(test_encode_silent_and_vfr),
        cmocka_unit_test(test_encode_hdr_10bit),
        cmocka_unit_test(test_encode_clip),
        cmocka_unit_test(test_encode_poster),
        cmocka_unit_test(test_encode_hls),
        cmocka_unit_test(test_encode_audio),
    };

    if (argc > 1)
        probe_bin = argv[1];
    return cmocka_run_group_tests(tests, setup, teardown);
}
