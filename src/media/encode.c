/*
 * Encoding renditions without linking FFmpeg: the command line of the ffmpeg program for
 * each profile, from what acervo-probe said about the master; the timeout and progress
 * of that child; the waveform peaks from its raw PCM; and the checks of what it wrote.
 */
#include "media/encode.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SIDE         16384 /* largest picture side an encode takes */
#define GOP_S            2     /* a keyframe every 2 s: seeking, and 6 s HLS segments */
#define HLS_SEGMENT_S    6
#define POSTER_SKIP      0.10 /* the poster's window starts 10% into the video... */
#define POSTER_SKIP_MAX  15.0 /* ...or 15 s in, whichever is first */
#define POSTER_WINDOW_S  10.0 /* and lasts at most 10 s */
#define POSTER_FPS       2    /* candidate frames per second of the window */
#define POSTER_DARK      32   /* mean luma (8-bit, limited range) of a black frame */
#define POSTER_BRIGHT    224  /* and of a white flash */
#define PLAYLIST_MAX     (4u << 20)
#define HLS_MAX_SEGMENTS 100000
#define PCM_CHUNK        (64u << 10)
#define UNIT_PIXELS      (1920.0 * 1080.0 * 25.0) /* pixel rate of 1080p25 */

/* ---- the source ------------------------------------------------------------------------ */

static const char *jstr(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static double jnum(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    double d = json_is_number(v) ? json_number_value(v) : 0;

    return isfinite(d) ? d : 0;
}

static int jint(const json_t *o, const char *key, int def)
{
    const json_t *v = json_object_get(o, key);
    json_int_t i;

    if (!json_is_integer(v))
        return def;
    i = json_integer_value(v);
    return i < -1000000000 || i > 1000000000 ? def : (int)i;
}

/* copies a name made of [A-Za-z0-9_.-] (a demuxer, a colour name); "" if it is anything else */
static void copy_name(char *dst, size_t n, const char *s)
{
    size_t len = s ? strlen(s) : 0;

    dst[0] = '\0';
    if (len == 0 || len >= n)
        return;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return;
    }
    memcpy(dst, s, len + 1);
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* bits per sample of an FFmpeg pixel format name: yuv420p10le 10, p010le 10, rgb48le 16 */
static int pix_fmt_depth(const char *f)
{
    char base[32];
    size_t len, d;

    if (!f || strlen(f) >= sizeof(base))
        return 8;
    memcpy(base, f, strlen(f) + 1);
    len = strlen(base);
    if (len > 2 && (strcmp(base + len - 2, "le") == 0 || strcmp(base + len - 2, "be") == 0))
        base[len -= 2] = '\0';
    if (len == 4 && (base[0] == 'p' || base[0] == 'y') && base[1] >= '0' && base[1] <= '4')
        return atoi(base + 2); /* p010, p016, p210, p416, y210, y212 */
    if (strstr(base, "48") || strstr(base, "64"))
        return strstr(base, "rgb") || strstr(base, "bgr") || strstr(base, "ayuv") ? 16 : 8;
    if (starts(base, "x2rgb10") || starts(base, "x2bgr10"))
        return 10;
    for (d = len; d > 0 && base[d - 1] >= '0' && base[d - 1] <= '9'; d--)
        ;
    if (d == len || d == 0)
        return 8;
    if (base[d - 1] == 'p' || base[d - 1] == 'f' || starts(base, "gray") || starts(base, "ya")) {
        int bits = atoi(base + d);
        return bits > 8 && bits <= 32 ? bits : 8;
    }
    return 8;
}

static void parse_sar(const char *s, int *num, int *den)
{
    int n = 0, d = 0, used = 0;

    *num = *den = 1;
    if (s && sscanf(s, "%d:%d%n", &n, &d, &used) == 2 && s[used] == '\0' && n > 0 && d > 0 &&
        n <= 1000 && d <= 1000) {
        *num = n;
        *den = d;
    }
}

static void video_from(const json_t *st, struct media_source *out)
{
    const char *fo = jstr(st, "field_order");
    int rot = jint(st, "rotation", 0), bits = jint(st, "bits_per_raw_sample", 0);

    out->has_video = 1;
    out->video_index = jint(st, "index", 0);
    out->width = jint(st, "width", 0);
    out->height = jint(st, "height", 0);
    parse_sar(jstr(st, "sample_aspect_ratio"), &out->sar_num, &out->sar_den);
    out->rotation = rot == 90 || rot == 180 || rot == 270 ? rot : 0;
    if (fo && (strcmp(fo, "tt") == 0 || strcmp(fo, "bb") == 0 || strcmp(fo, "tb") == 0 ||
               strcmp(fo, "bt") == 0)) {
        out->interlaced = 1;
        /* the second letter is the field displayed first (tb: top coded, bottom shown) */
        out->top_field_first = fo[1] == 't';
    }
    out->bit_depth = pix_fmt_depth(jstr(st, "pix_fmt"));
    if (bits > out->bit_depth && bits <= 32)
        out->bit_depth = bits;
    copy_name(out->color_transfer, sizeof(out->color_transfer), jstr(st, "color_transfer"));
    copy_name(out->color_space, sizeof(out->color_space), jstr(st, "color_space"));
    copy_name(out->color_primaries, sizeof(out->color_primaries), jstr(st, "color_primaries"));
    out->hdr = strcmp(out->color_transfer, "smpte2084") == 0 ||
               strcmp(out->color_transfer, "arib-std-b67") == 0;
    out->frame_rate = jnum(st, "frame_rate");
    out->avg_frame_rate = jnum(st, "avg_frame_rate");
    if (out->frame_rate > 0 && out->avg_frame_rate > 0)
        out->vfr = fabs(out->frame_rate - out->avg_frame_rate) >
                   0.01 * fmax(out->frame_rate, out->avg_frame_rate);
}

int media_source_from_probe(const json_t *tech, struct media_source *out, struct err *err)
{
    const json_t *streams, *st, *dur;
    const char *type, *format;
    size_t i;

    memset(out, 0, sizeof(*out));
    out->video_index = out->audio_index = -1;
    out->sar_num = out->sar_den = 1;
    out->bit_depth = 8;
    if (!json_is_object(tech))
        return err_set(err, ERR_INVALID, "the technical metadata is not a probe document");
    type = jstr(tech, "type");
    if (type && strcmp(type, "video") == 0)
        out->type = MEDIA_T_VIDEO;
    else if (type && strcmp(type, "audio") == 0)
        out->type = MEDIA_T_AUDIO;
    else if (type && strcmp(type, "image") == 0)
        out->type = MEDIA_T_IMAGE;
    else
        return err_set(err, ERR_INVALID, "the probe document has no known media type");

    /* "mov,mp4,m4a,3gp,3g2,mj2": ffmpeg takes any one name of the list */
    format = jstr(tech, "format");
    if (format) {
        char first[sizeof(out->format)];
        size_t n = strcspn(format, ",");

        if (n < sizeof(first)) {
            memcpy(first, format, n);
            first[n] = '\0';
            copy_name(out->format, sizeof(out->format), first);
        }
    }
    dur = json_object_get(tech, "duration_ms");
    if (!json_is_number(dur))
        dur = json_object_get(json_object_get(tech, "summary"), "duration_ms");
    if (json_is_number(dur) && json_number_value(dur) > 0 && isfinite(json_number_value(dur)))
        out->duration_s = json_number_value(dur) / 1000.0;

    if (out->type == MEDIA_T_IMAGE) {
        out->width = jint(tech, "width", 0);
        out->height = jint(tech, "height", 0);
        return 0;
    }
    streams = json_object_get(tech, "streams");
    json_array_foreach(streams, i, st)
    {
        const char *t = jstr(st, "type");

        if (!t || jint(st, "index", -1) < 0)
            continue; /* a stream ffmpeg could not be told to take */
        if (strcmp(t, "video") == 0 && !out->has_video &&
            !json_is_true(json_object_get(st, "attached_pic")) && out->type == MEDIA_T_VIDEO) {
            video_from(st, out);
        } else if (strcmp(t, "audio") == 0 && !out->has_audio) {
            out->has_audio = 1;
            out->audio_index = jint(st, "index", 0);
            out->channels = jint(st, "channels", 0);
            out->sample_rate = jint(st, "sample_rate", 0);
        }
    }
    return 0;
}

/* ---- picture sizes --------------------------------------------------------------------- */

/* v rounded to an even number, at most cap (rounded down to even), at least 2 */
static int even(double v, double cap)
{
    int r = 2 * (int)floor(v / 2.0 + 0.5), c = 2 * (int)floor(cap / 2.0);

    if (r > c)
        r = c;
    return r < 2 ? 2 : r;
}

void media_fit(const struct media_source *s, int max_w, int max_h, int *w, int *h)
{
    double dw, dh, f;

    *w = *h = 0;
    if (s->width <= 0 || s->height <= 0 || max_w <= 0 || max_h <= 0)
        return;
    dw = s->width;
    dh = s->height;
    if (s->sar_num > 0 && s->sar_den > 0 && s->sar_num != s->sar_den)
        dw = dw * s->sar_num / s->sar_den;
    if (s->rotation == 90 || s->rotation == 270) {
        double t = dw;
        dw = dh;
        dh = t;
    }
    if ((dh > dw) != (max_h > max_w)) { /* turn the box like the picture */
        int t = max_w;
        max_w = max_h;
        max_h = t;
    }
    f = fmin(1.0, fmin(max_w / dw, max_h / dh));
    *w = even(dw * f, fmin(max_w, floor(dw)));
    *h = even(dh * f, fmin(max_h, floor(dh)));
}

int media_hls_rungs(const struct media_profile *p, const struct media_source *s,
                    struct media_hls_rung *out, int n)
{
    struct media_hls_rung all[MEDIA_MAX_RUNGS];
    int count = 0, kept = 0;

    for (const struct media_rung *r = p->ladder; r && r->height > 0 && count < MEDIA_MAX_RUNGS;
         r++) {
        int box_w = ((r->height * 16 + 8) / 9) & ~1;

        media_fit(s, box_w, r->height, &all[count].width, &all[count].height);
        if (all[count].width == 0)
            return 0;
        all[count++].video_kbps = r->video_kbps;
    }
    for (int i = 0; i < count && kept < n; i++) {
        int dup = 0;

        for (int j = i + 1; j < count; j++)
            if (all[j].width == all[i].width && all[j].height == all[i].height)
                dup = 1;
        if (!dup)
            out[kept++] = all[i];
    }
    return kept;
}

/* ---- the command line ----------------------------------------------------------------- */

struct args {
    char **v;
    size_t n, cap;
};

static void arg(struct args *a, const char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    a->v[a->n++] = xstrdup(s);
    a->v[a->n] = NULL;
}

static void argf(struct args *a, const char *fmt, ...) ATTR_PRINTF(2, 3);
static void argf(struct args *a, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (len < 0)
        abort();
    s = xmalloc((size_t)len + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)len + 1, fmt, ap);
    va_end(ap);
    arg(a, s);
    free(s);
}

/* appends to a filter graph; graphs are short and built from our own numbers and names */
static void addf(struct buf *b, const char *fmt, ...) ATTR_PRINTF(2, 3);
static void addf(struct buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int len;

    va_start(ap, fmt);
    len = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (len < 0 || (size_t)len >= sizeof(tmp) || buf_add(b, tmp, (size_t)len, NULL) < 0)
        abort(); /* a bug: nothing here comes near these sizes */
}

void media_argv_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

/* the part of the source to encode: start and length (0: to the end, length unknown) */
static int clip_resolve(const struct media_profile *p, const struct media_source *s,
                        const struct media_clip *clip, double *in_s, double *len_s, struct err *err)
{
    double out;

    *in_s = 0;
    *len_s = s->duration_s;
    if (!clip)
        return 0;
    if (!isfinite(clip->in_s) || !isfinite(clip->out_s) || clip->in_s < 0 ||
        clip->out_s <= clip->in_s)
        return err_set(err, ERR_INVALID, "%s: clip %.3f-%.3f s is not a range of the source",
                       p->name, clip->in_s, clip->out_s);
    if (s->duration_s > 0 && clip->in_s >= s->duration_s)
        return err_set(err, ERR_INVALID, "%s: clip starts at %.3f s, after the end (%.3f s)",
                       p->name, clip->in_s, s->duration_s);
    out = s->duration_s > 0 ? fmin(clip->out_s, s->duration_s) : clip->out_s;
    *in_s = clip->in_s;
    *len_s = out - clip->in_s;
    return 0;
}

/* the standard rate nearest to r, in the form ffmpeg takes; *v its value */
static const char *std_rate(double r, double *v)
{
    static const struct {
        double v;
        const char *s;
    } std[] = {{10, "10"},
               {12, "12"},
               {12.5, "25/2"},
               {15, "15"},
               {20, "20"},
               {24000.0 / 1001, "24000/1001"},
               {24, "24"},
               {25, "25"},
               {30000.0 / 1001, "30000/1001"},
               {30, "30"},
               {48, "48"},
               {50, "50"},
               {60000.0 / 1001, "60000/1001"},
               {60, "60"}};
    size_t best = 0;

    for (size_t i = 1; i < ARRAY_LEN(std); i++)
        if (fabs(log(r / std[i].v)) < fabs(log(r / std[best].v)))
            best = i;
    *v = std[best].v;
    return std[best].s;
}

/*
 * The constant output frame rate. A variable frame rate source whose r_frame_rate (the
 * rate every timestamp fits) is a standard rate up to 60 keeps it: slow parts get
 * duplicated frames, cheap in H.264, and fast motion keeps every frame. Otherwise the
 * average rate, halved until it is at most 60 (120 fps slow motion plays at 60), and
 * made the nearest standard rate when within 0.5% of one (29.97 is 30000/1001) or when
 * the source is VFR. "" when unknown (ffmpeg keeps the rate it finds).
 */
static void out_rate(const struct media_source *s, char *out, size_t n)
{
    double r = s->avg_frame_rate > 0 ? s->avg_frame_rate : s->frame_rate, v;
    const char *name;

    out[0] = '\0';
    if (s->vfr && s->frame_rate > 0 && s->frame_rate <= 60.5) {
        name = std_rate(s->frame_rate, &v);
        if (fabs(s->frame_rate - v) / v < 0.005) {
            snprintf(out, n, "%s", name);
            return;
        }
    }
    if (!(r > 0) || !isfinite(r))
        return;
    while (r > 60.5)
        r /= 2;
    name = std_rate(r, &v);
    if (s->vfr || fabs(r - v) / v < 0.005)
        snprintf(out, n, "%s", name);
    else
        snprintf(out, n, "%.3f", r);
}

/* zscale's names for the colour of an HDR source */
static void tonemap(struct buf *b, const struct media_source *s)
{
    const char *pin = strcmp(s->color_primaries, "bt709") == 0      ? "709"
                      : strcmp(s->color_primaries, "smpte432") == 0 ? "smpte432"
                                                                    : "2020";
    const char *min = strcmp(s->color_space, "bt2020c") == 0 ? "2020_cl" : "2020_ncl";

    addf(b,
         "zscale=tin=%s:min=%s:pin=%s:t=linear:npl=100,format=gbrpf32le,zscale=p=709,"
         "tonemap=tonemap=hable:desat=0,zscale=t=709:m=709:r=tv,format=yuv420p,",
         s->color_transfer, min, pin);
}

/* filters from the decoded picture to a w x h one: deinterlace, then HDR to SDR (at w x h) */
static void vchain_pre(struct buf *b, const struct media_source *s, int w, int h)
{
    if (s->interlaced)
        addf(b, "bwdif=mode=send_frame:parity=%s:deint=all,", s->top_field_first ? "tff" : "bff");
    if (s->hdr) {
        addf(b, "scale=%d:%d:flags=lanczos,", w, h);
        tonemap(b, s);
    }
}

/* w x h, square pixels, 8-bit 4:2:0 (so 10-bit, 4:2:2 and 4:4:4 sources all play) */
static void vchain_post(struct buf *b, int w, int h)
{
    addf(b, "scale=%d:%d:flags=lanczos,setsar=1,format=yuv420p", w, h);
}

static void input_args(struct args *a, const struct media_source *s, const char *input, double in_s,
                       double len_s)
{
    if (in_s > 0) {
        arg(a, "-ss");
        argf(a, "%.3f", in_s);
    }
    if (len_s > 0) {
        arg(a, "-t");
        argf(a, "%.3f", len_s);
    }
    /* only local files, read by the demuxer acervo-probe validated: a master cannot make
     * ffmpeg open playlists, references or URLs */
    arg(a, "-protocol_whitelist");
    arg(a, "file");
    if (s->format[0]) {
        arg(a, "-f");
        arg(a, s->format);
    }
    arg(a, "-i");
    argf(a, "file:%s", input);
}

static void common_out(struct args *a)
{
    arg(a, "-map_metadata");
    arg(a, "-1");
    arg(a, "-map_chapters");
    arg(a, "-1");
    arg(a, "-sn");
    arg(a, "-dn");
}

static void h264_args(struct args *a, const struct media_profile *p, const struct media_source *s)
{
    char rate[32];

    out_rate(s, rate, sizeof(rate));
    arg(a, "-fps_mode:v");
    arg(a, "cfr");
    if (rate[0]) {
        arg(a, "-r:v");
        arg(a, rate);
    }
    arg(a, "-c:v");
    arg(a, "libx264");
    arg(a, "-preset");
    arg(a, p->preset ? p->preset : "medium");
    arg(a, "-profile:v");
    arg(a, "high");
    arg(a, "-force_key_frames");
    argf(a, "expr:gte(t,n_forced*%d)", GOP_S);
    arg(a, "-metadata:s:v");
    arg(a, "rotate=0");
}

static void aac_args(struct args *a, const struct media_profile *p)
{
    arg(a, "-c:a");
    arg(a, "aac");
    arg(a, "-b:a");
    argf(a, "%dk", p->audio_kbps);
    arg(a, "-ar");
    argf(a, "%d", p->audio_rate);
    arg(a, "-ac");
    arg(a, "2");
    /* timestamps kept: gaps filled with silence, a late start padded (A/V sync) */
    arg(a, "-af");
    arg(a, "aresample=async=1:first_pts=0");
}

static void mp4_args(struct args *a, const struct media_profile *p, const struct media_source *s,
                     const char *out_dir, int w, int h)
{
    struct buf g;

    buf_init(&g, 0);
    vchain_pre(&g, s, w, h);
    vchain_post(&g, w, h);
    arg(a, "-map");
    argf(a, "0:%d", s->video_index);
    if (s->has_audio) {
        arg(a, "-map");
        argf(a, "0:%d", s->audio_index);
    }
    arg(a, "-vf");
    arg(a, g.buf);
    buf_release(&g);
    h264_args(a, p, s);
    arg(a, "-b:v");
    argf(a, "%dk", p->video_kbps);
    arg(a, "-maxrate:v");
    argf(a, "%dk", p->video_kbps * 3 / 2);
    arg(a, "-bufsize:v");
    argf(a, "%dk", p->video_kbps * 2);
    if (s->has_audio)
        aac_args(a, p);
    else
        arg(a, "-an");
    common_out(a);
    arg(a, "-movflags");
    arg(a, "+faststart");
    arg(a, "-max_muxing_queue_size");
    arg(a, "4096");
    arg(a, "-f");
    arg(a, "mp4");
    argf(a, "file:%s/%s", out_dir, p->file);
}

/*
 * The poster: the candidates are POSTER_FPS frames a second of a window that starts a
 * little into the video (past a black leader, a fade-in, a slate); frames that are
 * nearly black or white (mean luma) are dropped, and ffmpeg's thumbnail filter picks the
 * one closest to the average colour histogram of the rest, the most representative
 * picture. When every candidate is dark (a night scene, a black video), the first frame
 * of the window is taken instead: the concat puts it after the chosen one, and only the
 * first frame out is written.
 */
static void poster_args(struct args *a, const struct media_profile *p, const struct media_source *s,
                        const char *out_dir, int w, int h, double window_s)
{
    int n = (int)ceil(window_s * POSTER_FPS);
    struct buf g;

    buf_init(&g, 0);
    addf(&g, "[0:%d]", s->video_index);
    vchain_pre(&g, s, w, h);
    addf(&g, "fps=%d,", POSTER_FPS);
    vchain_post(&g, w, h);
    addf(&g,
         ",split[c][f];[c]signalstats,"
         "metadata=select:key=lavfi.signalstats.YAVG:value=%d:function=greater,"
         "metadata=select:key=lavfi.signalstats.YAVG:value=%d:function=less,"
         "thumbnail=n=%d[best];[f]trim=end_frame=1[first];"
         "[best][first]concat=n=2:v=1:a=0,format=yuvj420p[poster]",
         POSTER_DARK, POSTER_BRIGHT, n < 2 ? 2 : n);
    arg(a, "-filter_complex");
    arg(a, g.buf);
    buf_release(&g);
    arg(a, "-map");
    arg(a, "[poster]");
    arg(a, "-frames:v");
    arg(a, "1");
    arg(a, "-q:v");
    arg(a, "2");
    arg(a, "-an");
    common_out(a);
    arg(a, "-update");
    arg(a, "1");
    arg(a, "-f");
    arg(a, "image2");
    argf(a, "file:%s/%s", out_dir, p->file);
}

/*
 * HLS and DASH from one encode: the dash muxer writes fragmented MP4 (CMAF-style)
 * segments once, and both manifest.mpd and the HLS playlists (master.m3u8, media_N.m3u8)
 * that point at the same segments. The rungs share one AAC rendition.
 */
static void hls_args(struct args *a, const struct media_profile *p, const struct media_source *s,
                     const char *out_dir, const struct media_hls_rung *r, int n)
{
    struct buf g;

    buf_init(&g, 0);
    addf(&g, "[0:%d]", s->video_index);
    vchain_pre(&g, s, r[0].width, r[0].height);
    if (n > 1) {
        addf(&g, "split=%d", n);
        for (int i = 0; i < n; i++)
            addf(&g, "[s%d]", i);
        addf(&g, ";");
    }
    for (int i = 0; i < n; i++) {
        if (n > 1)
            addf(&g, "[s%d]", i);
        vchain_post(&g, r[i].width, r[i].height);
        addf(&g, "[v%d]%s", i, i + 1 < n ? ";" : "");
    }
    arg(a, "-filter_complex");
    arg(a, g.buf);
    buf_release(&g);
    for (int i = 0; i < n; i++) {
        arg(a, "-map");
        argf(a, "[v%d]", i);
    }
    if (s->has_audio) {
        arg(a, "-map");
        argf(a, "0:%d", s->audio_index);
    }
    h264_args(a, p, s);
    /* the same keyframes in every rung, so segments align: no scene-cut keyframes */
    arg(a, "-sc_threshold");
    arg(a, "0");
    for (int i = 0; i < n; i++) {
        argf(a, "-b:v:%d", i);
        argf(a, "%dk", r[i].video_kbps);
        argf(a, "-maxrate:v:%d", i);
        argf(a, "%dk", r[i].video_kbps * 11 / 10);
        argf(a, "-bufsize:v:%d", i);
        argf(a, "%dk", r[i].video_kbps * 2);
    }
    if (s->has_audio)
        aac_args(a, p);
    common_out(a);
    arg(a, "-max_muxing_queue_size");
    arg(a, "4096");
    arg(a, "-f");
    arg(a, "dash");
    arg(a, "-seg_duration");
    argf(a, "%d", HLS_SEGMENT_S);
    arg(a, "-use_template");
    arg(a, "1");
    arg(a, "-use_timeline");
    arg(a, "1");
    arg(a, "-hls_playlist");
    arg(a, "1");
    arg(a, "-hls_master_name");
    arg(a, p->file);
    arg(a, "-adaptation_sets");
    arg(a, s->has_audio ? "id=0,streams=v id=1,streams=a" : "id=0,streams=v");
    arg(a, "-init_seg_name");
    arg(a, "init_$RepresentationID$.m4s");
    arg(a, "-media_seg_name");
    arg(a, "seg_$RepresentationID$_$Number%05d$.m4s");
    argf(a, "file:%s/manifest.mpd", out_dir);
}

static void audio_args(struct args *a, const struct media_profile *p, const struct media_source *s,
                       const char *out_dir)
{
    arg(a, "-map");
    argf(a, "0:%d", s->audio_index);
    arg(a, "-vn");
    common_out(a);
    arg(a, "-af");
    arg(a, "aresample=async=1");
    switch (p->output) {
    case MEDIA_OUT_MP3:
        arg(a, "-c:a");
        arg(a, "libmp3lame");
        arg(a, "-b:a");
        argf(a, "%dk", p->audio_kbps);
        arg(a, "-ar");
        argf(a, "%d", p->audio_rate);
        if (s->channels > 2) {
            arg(a, "-ac");
            arg(a, "2");
        }
        arg(a, "-f");
        arg(a, "mp3");
        argf(a, "file:%s/%s", out_dir, p->file);
        break;
    case MEDIA_OUT_WAV:
        arg(a, "-c:a");
        arg(a, "pcm_s24le");
        arg(a, "-ar");
        argf(a, "%d", p->audio_rate);
        /* Broadcast Wave (a bext chunk), RF64 past 4 GiB */
        arg(a, "-write_bext");
        arg(a, "1");
        arg(a, "-rf64");
        arg(a, "auto");
        arg(a, "-f");
        arg(a, "wav");
        argf(a, "file:%s/%s", out_dir, p->file);
        break;
    default: /* MEDIA_OUT_WAVEFORM */
        arg(a, "-c:a");
        arg(a, "pcm_s16le");
        arg(a, "-ac");
        arg(a, "1");
        arg(a, "-ar");
        argf(a, "%d", MEDIA_WAVEFORM_RATE);
        arg(a, "-f");
        arg(a, "s16le");
        argf(a, "file:%s/%s", out_dir, MEDIA_WAVEFORM_PCM);
        break;
    }
}

static const char *type_name(unsigned t)
{
    return t == MEDIA_T_VIDEO ? "video" : t == MEDIA_T_AUDIO ? "audio" : "image";
}

/* p applies to s: 0, else -1 with the reason */
static int applies(const struct media_profile *p, const struct media_source *s, struct err *err)
{
    if (p->output == MEDIA_OUT_WEBP_THUMBS)
        return err_set(err, ERR_UNSUPPORTED,
                       "%s: made by libvips (acervo-probe --thumbs), not "
                       "ffmpeg",
                       p->name);
    if (!(p->types & s->type))
        return err_set(err, ERR_INVALID, "%s: not a profile for %s", p->name, type_name(s->type));
    if (p->needs_video && !s->has_video)
        return err_set(err, ERR_INVALID, "%s: the source has no video stream", p->name);
    if (p->needs_audio && !s->has_audio)
        return err_set(err, ERR_INVALID, "%s: the source has no audio stream", p->name);
    if (p->needs_video && (s->width <= 0 || s->height <= 0 || s->width > MAX_SIDE ||
                           s->height > MAX_SIDE || s->video_index < 0))
        return err_set(err, ERR_UNSUPPORTED, "%s: the video is %d x %d pixels (1 to %d a side)",
                       p->name, s->width, s->height, MAX_SIDE);
    if (p->needs_audio && s->audio_index < 0)
        return err_set(err, ERR_INVALID, "%s: the audio stream has no index", p->name);
    return 0;
}

int media_encode_argv(const struct media_profile *p, const struct media_source *s,
                      const char *ffmpeg, const char *input, const char *out_dir,
                      const struct media_clip *clip, char ***argv, struct err *err)
{
    struct args a = {NULL, 0, 0};
    struct media_hls_rung rungs[MEDIA_MAX_RUNGS];
    double in_s, len_s;
    int w = 0, h = 0, n = 0;

    *argv = NULL;
    if (!ffmpeg || !input || !out_dir)
        return err_set(err, ERR_INVALID, "%s: no ffmpeg, input or output directory", p->name);
    if (applies(p, s, err) < 0 || clip_resolve(p, s, clip, &in_s, &len_s, err) < 0)
        return -1;
    if (p->output == MEDIA_OUT_MP4 || p->output == MEDIA_OUT_JPEG)
        media_fit(s, p->max_width, p->max_height, &w, &h);
    if (p->output == MEDIA_OUT_HLS) {
        n = media_hls_rungs(p, s, rungs, MEDIA_MAX_RUNGS);
        if (n == 0)
            return err_set(err, ERR_INVALID, "%s: no ladder rung for this source", p->name);
    }
    if (p->output == MEDIA_OUT_JPEG) {
        double skip = len_s > 0 ? fmin(len_s * POSTER_SKIP, POSTER_SKIP_MAX) : 0;

        in_s += skip;
        len_s = len_s > 0 ? fmin(len_s - skip, POSTER_WINDOW_S) : POSTER_WINDOW_S;
    }

    arg(&a, ffmpeg);
    arg(&a, "-nostdin");
    arg(&a, "-hide_banner");
    arg(&a, "-loglevel");
    arg(&a, "error");
    arg(&a, "-y");
    arg(&a, "-progress");
    arg(&a, "pipe:1");
    arg(&a, "-nostats");
    input_args(&a, s, input, in_s, clip || p->output == MEDIA_OUT_JPEG ? len_s : 0);
    switch (p->output) {
    case MEDIA_OUT_MP4:
        mp4_args(&a, p, s, out_dir, w, h);
        break;
    case MEDIA_OUT_JPEG:
        poster_args(&a, p, s, out_dir, w, h, len_s);
        break;
    case MEDIA_OUT_HLS:
        hls_args(&a, p, s, out_dir, rungs, n);
        break;
    case MEDIA_OUT_MP3:
    case MEDIA_OUT_WAV:
    case MEDIA_OUT_WAVEFORM:
        audio_args(&a, p, s, out_dir);
        break;
    case MEDIA_OUT_WEBP_THUMBS:
        break; /* refused by applies() */
    }
    *argv = a.v;
    return 0;
}

/* ---- timeouts ----------------------------------------------------------------------------- */

/*
 * Seconds of work per second of 1080p25 on 2 cores (libx264 at 5 Mbps), measured on a
 * noisy testsrc2 source: decoding H.264 at 20 Mbps 0.28 (HEVC 10-bit 4K 0.17 per 1080p25
 * of pixels), encoding veryfast 0.45, medium 1.2 (docs/internals/media.md).
 */
static double preset_cost(const char *preset)
{
    static const struct {
        const char *name;
        double cost;
    } t[] = {{"ultrafast", 0.2}, {"superfast", 0.3}, {"veryfast", 0.45},
             {"faster", 0.8},    {"fast", 1.0},      {"medium", 1.2},
             {"slow", 2.0},      {"slower", 4.0},    {"veryslow", 8.0}};

    for (size_t i = 0; preset && i < ARRAY_LEN(t); i++)
        if (strcmp(preset, t[i].name) == 0)
            return t[i].cost;
    return 1.2;
}

double media_encode_timeout_s(const struct media_profile *p, const struct media_source *s)
{
    double d = s->duration_s > 0 ? s->duration_s : 3600.0, fps, src_units, cost = 0;
    double w = s->width > 0 ? s->width : 1920, h = s->height > 0 ? s->height : 1080;
    struct media_hls_rung r[MEDIA_MAX_RUNGS];
    int fw, fh, n;

    fps = s->avg_frame_rate > 0 ? s->avg_frame_rate : s->frame_rate > 0 ? s->frame_rate : 25;
    fps = fmin(fps, 120);
    src_units = w * h * fps / UNIT_PIXELS;
    /* decoding, deinterlacing */
    if (p->output == MEDIA_OUT_MP4 || p->output == MEDIA_OUT_HLS || p->output == MEDIA_OUT_JPEG)
        cost = (0.3 + (s->interlaced ? 0.15 : 0)) * src_units;
    fps = fmin(fps, 60);
    switch (p->output) {
    case MEDIA_OUT_MP4:
        media_fit(s, p->max_width, p->max_height, &fw, &fh);
        cost += (preset_cost(p->preset) + (s->hdr ? 0.5 : 0)) * fw * fh * fps / UNIT_PIXELS;
        break;
    case MEDIA_OUT_HLS:
        n = media_hls_rungs(p, s, r, MEDIA_MAX_RUNGS);
        for (int i = 0; i < n; i++)
            cost += preset_cost(p->preset) * r[i].width * r[i].height * fps / UNIT_PIXELS;
        if (n > 0 && s->hdr)
            cost += 0.5 * r[0].width * r[0].height * fps / UNIT_PIXELS;
        break;
    case MEDIA_OUT_JPEG:
        /* at most the skip and the window are decoded, plus a GOP before them */
        d = fmin(d, POSTER_SKIP_MAX + POSTER_WINDOW_S + 10);
        cost += 0.1;
        break;
    default:
        /* audio: decoding and encoding are cheap (lame 0.02); the demuxer still reads a
         * video master whole */
        cost = 0.05;
        break;
    }
    return 60.0 + 3.0 * d * cost;
}

/* ---- progress ----------------------------------------------------------------------------- */

void media_progress_init(struct media_progress *p, double duration_s)
{
    memset(p, 0, sizeof(*p));
    p->duration_s = duration_s > 0 && isfinite(duration_s) ? duration_s : 0;
}

static int progress_line(struct media_progress *p)
{
    int64_t us;
    int pct = p->percent;

    if (p->len > 0 && p->line[p->len - 1] == '\r')
        p->line[p->len - 1] = '\0';
    if (starts(p->line, "out_time_us=") || starts(p->line, "out_time_ms=")) {
        /* "N/A" before the first frame; out_time_ms is microseconds too (an old bug kept) */
        if (util_parse_i64(p->line + strlen("out_time_us="), &us) == 0)
            p->out_s = us > 0 ? (double)us / 1e6 : 0;
    } else if (strcmp(p->line, "progress=end") == 0) {
        p->ended = 1;
    }
    if (p->ended)
        pct = 100;
    else if (p->duration_s > 0)
        pct = (int)fmin(99.0, floor(p->out_s / p->duration_s * 100.0));
    if (pct <= p->percent)
        return 0;
    p->percent = pct;
    return 1;
}

int media_progress_feed(struct media_progress *p, const char *data, size_t n)
{
    int changed = 0;

    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\n') {
            p->line[p->len] = '\0';
            if (!p->overlong && progress_line(p))
                changed = 1;
            p->len = 0;
            p->overlong = 0;
        } else if (p->len + 1 < sizeof(p->line)) {
            p->line[p->len++] = data[i];
        } else {
            p->overlong = 1;
        }
    }
    return changed;
}

/* ---- waveform ----------------------------------------------------------------------------- */

static json_t *peak_value(int v)
{
    return json_real(round(v / 32768.0 * 10000.0) / 10000.0);
}

int media_waveform_peaks(int fd_pcm, double duration_s, int points, json_t **out, struct err *err)
{
    unsigned char *chunk = NULL;
    int16_t *lo = NULL, *hi = NULL;
    uint64_t total, idx = 0;
    unsigned char carry = 0;
    int have_carry = 0, rc = -1;
    struct stat st;
    json_t *peaks, *doc;

    *out = NULL;
    if (fstat(fd_pcm, &st) < 0)
        return err_errno(err, ERR_IO, "waveform: cannot stat the PCM file");
    if (!S_ISREG(st.st_mode))
        return err_set(err, ERR_INVALID, "waveform: the PCM is not a regular file");
    total = (uint64_t)st.st_size / 2;
    if (total == 0)
        return err_set(err, ERR_INVALID, "waveform: no audio samples");
    if (points > MEDIA_WAVEFORM_MAX_POINTS)
        return err_set(err, ERR_LIMIT, "waveform: %d points, over the limit of %d", points,
                       MEDIA_WAVEFORM_MAX_POINTS);
    if (points <= 0) {
        double secs = duration_s > 0 && isfinite(duration_s) ? duration_s
                                                             : (double)total / MEDIA_WAVEFORM_RATE;
        points = (int)fmin(ceil(secs * MEDIA_WAVEFORM_PER_S), MEDIA_WAVEFORM_MAX_POINTS);
        if (points < 1)
            points = 1;
    }
    if ((uint64_t)points > total)
        points = (int)total;

    lo = xmalloc((size_t)points * sizeof(*lo));
    hi = xmalloc((size_t)points * sizeof(*hi));
    for (int i = 0; i < points; i++) {
        lo[i] = INT16_MAX;
        hi[i] = INT16_MIN;
    }
    chunk = xmalloc(PCM_CHUNK);
    while (idx < total) {
        ssize_t r = read(fd_pcm, chunk, PCM_CHUNK);
        size_t i = 0;

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err_errno(err, ERR_IO, "waveform: cannot read the PCM file");
            goto out;
        }
        if (r == 0)
            break; /* shorter than it was: the rest stays silent */
        if (have_carry) {
            int16_t v = (int16_t)(uint16_t)(carry | (unsigned)chunk[0] << 8);
            size_t slot = (size_t)(idx * (uint64_t)points / total);

            lo[slot] = v < lo[slot] ? v : lo[slot];
            hi[slot] = v > hi[slot] ? v : hi[slot];
            idx++;
            i = 1;
            have_carry = 0;
        }
        for (; i + 1 < (size_t)r && idx < total; i += 2, idx++) {
            int16_t v = (int16_t)(uint16_t)(chunk[i] | (unsigned)chunk[i + 1] << 8);
            size_t slot = (size_t)(idx * (uint64_t)points / total);

            if (v < lo[slot])
                lo[slot] = v;
            if (v > hi[slot])
                hi[slot] = v;
        }
        if (i < (size_t)r && idx < total) {
            carry = chunk[i];
            have_carry = 1;
        }
    }

    peaks = json_array();
    for (int i = 0; i < points; i++) {
        if (lo[i] > hi[i]) /* no sample: the file was shorter than it said */
            lo[i] = hi[i] = 0;
        json_array_append_new(peaks, json_pack("[oo]", peak_value(lo[i]), peak_value(hi[i])));
    }
    doc = json_pack("{s:i,s:i,s:i,s:I,s:o}", "version", 1, "sample_rate", MEDIA_WAVEFORM_RATE,
                    "points", points, "duration_ms",
                    (json_int_t)(total * 1000 / MEDIA_WAVEFORM_RATE), "peaks", peaks);
    if (!doc) {
        err_set(err, ERR_INTERNAL, "waveform: cannot build the document");
        goto out;
    }
    *out = doc;
    rc = 0;
out:
    free(chunk);
    free(lo);
    free(hi);
    return rc;
}

/* ---- checks ------------------------------------------------------------------------------- */

static int check_duration(const struct media_profile *p, double got_s, double want_s,
                          const struct media_clip *clip, struct err *err)
{
    if (want_s <= 0)
        return 0;
    if (got_s < 0)
        return err_set(err, ERR_UNSUPPORTED, "%s: the output has no duration", p->name);
    if (fabs(got_s - want_s) > MEDIA_DURATION_TOLERANCE_S)
        return err_set(err, ERR_UNSUPPORTED,
                       "%s: duration %.2f s, %s %.2f s (more than %.1f s "
                       "apart)",
                       p->name, got_s, clip ? "clip" : "source", want_s,
                       MEDIA_DURATION_TOLERANCE_S);
    return 0;
}

static int is_hdr_transfer(const char *t)
{
    return t && (strcmp(t, "smpte2084") == 0 || strcmp(t, "arib-std-b67") == 0);
}

static int check_video(const struct media_profile *p, const json_t *v, int want_w, int want_h,
                       const char *codec, struct err *err)
{
    const char *c = jstr(v, "codec"), *pix = jstr(v, "pix_fmt");
    int w = jint(v, "width", 0), h = jint(v, "height", 0), rot = jint(v, "rotation", 0);
    double r = jnum(v, "frame_rate"), avg = jnum(v, "avg_frame_rate");

    if (!c || strcmp(c, codec) != 0)
        return err_set(err, ERR_UNSUPPORTED, "%s: video codec %s, not %s", p->name,
                       c ? c : "unknown", codec);
    if (w != want_w || h != want_h)
        return err_set(err, ERR_UNSUPPORTED, "%s: picture %d x %d, not %d x %d", p->name, w, h,
                       want_w, want_h);
    if (rot != 0)
        return err_set(err, ERR_UNSUPPORTED, "%s: the output is still rotated %d degrees", p->name,
                       rot);
    if (is_hdr_transfer(jstr(v, "color_transfer")))
        return err_set(err, ERR_UNSUPPORTED, "%s: the output is still HDR (%s)", p->name,
                       jstr(v, "color_transfer"));
    if (strcmp(codec, "h264") == 0) {
        if (!pix || strcmp(pix, "yuv420p") != 0)
            return err_set(err, ERR_UNSUPPORTED, "%s: pixel format %s, not yuv420p", p->name,
                           pix ? pix : "unknown");
        if (r > 0 && avg > 0 && fabs(r - avg) > 0.01 * r)
            return err_set(err, ERR_UNSUPPORTED, "%s: variable frame rate (%.3f, average %.3f)",
                           p->name, r, avg);
    }
    return 0;
}

static int check_audio(const struct media_profile *p, const json_t *au, const char *codec, int rate,
                       int channels, struct err *err)
{
    const char *c = jstr(au, "codec");
    int r = jint(au, "sample_rate", 0), ch = jint(au, "channels", 0);

    if (!c || strcmp(c, codec) != 0)
        return err_set(err, ERR_UNSUPPORTED, "%s: audio codec %s, not %s", p->name,
                       c ? c : "unknown", codec);
    if (rate > 0 && r != rate)
        return err_set(err, ERR_UNSUPPORTED, "%s: audio at %d Hz, not %d Hz", p->name, r, rate);
    if (channels > 0 && ch != channels)
        return err_set(err, ERR_UNSUPPORTED, "%s: %d audio channels, not %d", p->name, ch,
                       channels);
    return 0;
}

static int check_waveform(const struct media_profile *p, const json_t *o, double want_s,
                          const struct media_clip *clip, struct err *err)
{
    const json_t *peaks = json_object_get(o, "peaks"), *pk;
    int points = jint(o, "points", -1);
    size_t i;

    if (jint(o, "version", 0) != 1 || jint(o, "sample_rate", 0) != MEDIA_WAVEFORM_RATE ||
        !json_is_array(peaks))
        return err_set(err, ERR_UNSUPPORTED, "%s: not a version 1 peaks document", p->name);
    if (points < 1 || (size_t)points != json_array_size(peaks))
        return err_set(err, ERR_UNSUPPORTED, "%s: %d points, %zu peaks", p->name, points,
                       json_array_size(peaks));
    json_array_foreach(peaks, i, pk)
    {
        double lo = json_number_value(json_array_get(pk, 0));
        double hi = json_number_value(json_array_get(pk, 1));

        if (json_array_size(pk) != 2 || !(lo >= -1.0 && lo <= hi && hi <= 1.0))
            return err_set(err, ERR_UNSUPPORTED, "%s: peak %zu is not [min,max] in -1..1", p->name,
                           i);
    }
    return check_duration(p, jnum(o, "duration_ms") / 1000.0, want_s, clip, err);
}

int media_output_check(const struct media_profile *p, const struct media_source *s,
                       const struct media_clip *clip, const json_t *out_probe, struct err *err)
{
    const json_t *streams, *st, *video = NULL, *audio = NULL, *dur;
    const char *type;
    int nvideo = 0, naudio = 0, w = 0, h = 0;
    double in_s, want_s;
    size_t i;

    if (!json_is_object(out_probe))
        return err_set(err, ERR_INVALID, "%s: no probe of the output", p->name);
    if (clip_resolve(p, s, clip, &in_s, &want_s, err) < 0)
        return -1;
    if (p->output == MEDIA_OUT_WAVEFORM)
        return check_waveform(p, out_probe, want_s, clip, err);
    if (p->output == MEDIA_OUT_HLS || p->output == MEDIA_OUT_WEBP_THUMBS)
        return err_set(err, ERR_INVALID, "%s: checked from its files, not from a probe", p->name);

    type = jstr(out_probe, "type");
    media_fit(s, p->max_width, p->max_height, &w, &h);
    if (p->output == MEDIA_OUT_JPEG) {
        const char *fmt = jstr(out_probe, "format");
        int gw = jint(out_probe, "width", 0), gh = jint(out_probe, "height", 0);

        if (!type || strcmp(type, "image") != 0 || !fmt || strcmp(fmt, "jpeg") != 0)
            return err_set(err, ERR_UNSUPPORTED, "%s: the output is not a JPEG image", p->name);
        if (gw != w || gh != h)
            return err_set(err, ERR_UNSUPPORTED, "%s: picture %d x %d, not %d x %d", p->name, gw,
                           gh, w, h);
        if (jint(out_probe, "orientation", 1) != 1)
            return err_set(err, ERR_UNSUPPORTED, "%s: the output has an EXIF orientation", p->name);
        return 0;
    }

    streams = json_object_get(out_probe, "streams");
    json_array_foreach(streams, i, st)
    {
        const char *t = jstr(st, "type");

        if (t && strcmp(t, "video") == 0) {
            nvideo++;
            video = video ? video : st;
        } else if (t && strcmp(t, "audio") == 0) {
            naudio++;
            audio = audio ? audio : st;
        }
    }
    if (p->output == MEDIA_OUT_MP4) {
        const char *container = jstr(json_object_get(out_probe, "summary"), "container");

        if (!type || strcmp(type, "video") != 0 || !container || strcmp(container, "mp4") != 0)
            return err_set(err, ERR_UNSUPPORTED, "%s: the output is not an MP4 video", p->name);
        if (nvideo != 1)
            return err_set(err, ERR_UNSUPPORTED, "%s: %d video streams, not 1", p->name, nvideo);
        if (naudio != (s->has_audio ? 1 : 0))
            return err_set(err, ERR_UNSUPPORTED, "%s: %d audio streams, the source has %s", p->name,
                           naudio, s->has_audio ? "audio" : "none");
        if (check_video(p, video, w, h, "h264", err) < 0)
            return -1;
        if (audio && check_audio(p, audio, "aac", p->audio_rate, 2, err) < 0)
            return -1;
    } else {
        int channels = s->channels;
        const char *codec = p->output == MEDIA_OUT_MP3 ? "mp3" : "pcm_s24le";

        if (p->output == MEDIA_OUT_MP3 && channels > 2)
            channels = 2;
        if (!type || strcmp(type, "audio") != 0 || nvideo != 0)
            return err_set(err, ERR_UNSUPPORTED, "%s: the output is not audio only", p->name);
        if (naudio != 1)
            return err_set(err, ERR_UNSUPPORTED, "%s: %d audio streams, not 1", p->name, naudio);
        if (check_audio(p, audio, codec, p->audio_rate, channels, err) < 0)
            return -1;
        if (p->output == MEDIA_OUT_WAV && jint(audio, "bits_per_sample", 0) != 24)
            return err_set(err, ERR_UNSUPPORTED, "%s: %d bits per sample, not 24", p->name,
                           jint(audio, "bits_per_sample", 0));
    }
    dur = json_object_get(out_probe, "duration_ms");
    return check_duration(p, json_is_number(dur) ? json_number_value(dur) / 1000.0 : -1, want_s,
                          clip, err);
}

/* ---- HLS packages ------------------------------------------------------------------------- */

/* a file name the packager writes: no directory, nothing hidden */
static int plain_name(const char *s)
{
    if (!*s || *s == '.' || strlen(s) > 255)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return 0;
    return 1;
}

static int read_small(const struct media_profile *p, const char *dir, const char *name,
                      struct buf *b, struct err *err)
{
    char path[4096], chunk[8192];
    ssize_t r;
    int fd;

    buf_reset(b);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno(err, ERR_UNSUPPORTED, "%s: cannot open %s", p->name, name);
    for (;;) {
        r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (buf_add(b, chunk, (size_t)r, NULL) < 0) {
            close(fd);
            return err_set(err, ERR_LIMIT, "%s: %s is over %u bytes", p->name, name, PLAYLIST_MAX);
        }
    }
    close(fd);
    if (r < 0)
        return err_errno(err, ERR_IO, "%s: cannot read %s", p->name, name);
    return 0;
}

static int file_present(const struct media_profile *p, const char *dir, const char *name,
                        struct err *err)
{
    char path[4096];
    struct stat st;

    if (!plain_name(name))
        return err_set(err, ERR_UNSUPPORTED,
                       "%s: a playlist names \"%.64s\", not a plain file "
                       "name",
                       p->name, name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
        return err_set(err, ERR_UNSUPPORTED, "%s: %s is missing or empty", p->name, name);
    return 0;
}

/* the value of attribute key (KEY=value or KEY="value") in an attribute list, into out */
static int attr(const char *list, const char *key, char *out, size_t n)
{
    size_t klen = strlen(key);
    const char *s = list;

    while ((s = strstr(s, key)) != NULL) {
        if ((s == list || s[-1] == ',' || s[-1] == ':') && s[klen] == '=') {
            const char *v = s + klen + 1;
            size_t len;

            if (*v == '"') {
                v++;
                len = strcspn(v, "\"");
            } else {
                len = strcspn(v, ",");
            }
            if (len >= n)
                return 0;
            memcpy(out, v, len);
            out[len] = '\0';
            return 1;
        }
        s += klen;
    }
    return 0;
}

/* next line of b from *pos (CR stripped) into line; 0 at the end */
static int next_line(const struct buf *b, size_t *pos, char *line, size_t n)
{
    size_t start = *pos, end, len;

    if (start >= b->len)
        return 0;
    end = start;
    while (end < b->len && b->buf[end] != '\n')
        end++;
    *pos = end < b->len ? end + 1 : end;
    len = end - start;
    if (len > 0 && b->buf[start + len - 1] == '\r')
        len--;
    if (len >= n)
        len = n - 1; /* longer lines are never ones we read */
    memcpy(line, b->buf + start, len);
    line[len] = '\0';
    return 1;
}

static int check_media_playlist(const struct media_profile *p, const char *dir, const char *name,
                                double want_s, const struct media_clip *clip, struct err *err)
{
    struct buf b;
    char line[1024], uri[256];
    size_t pos = 0;
    double total = 0;
    int ended = 0, segments = 0, rc = -1;

    buf_init(&b, PLAYLIST_MAX);
    if (file_present(p, dir, name, err) < 0 || read_small(p, dir, name, &b, err) < 0)
        goto out;
    while (next_line(&b, &pos, line, sizeof(line))) {
        if (starts(line, "#EXTINF:")) {
            total += strtod(line + strlen("#EXTINF:"), NULL);
        } else if (starts(line, "#EXT-X-MAP:")) {
            if (!attr(line + strlen("#EXT-X-MAP:"), "URI", uri, sizeof(uri))) {
                err_set(err, ERR_UNSUPPORTED, "%s: %s has an EXT-X-MAP without a URI", p->name,
                        name);
                goto out;
            }
            if (file_present(p, dir, uri, err) < 0)
                goto out;
        } else if (strcmp(line, "#EXT-X-ENDLIST") == 0) {
            ended = 1;
        } else if (line[0] && line[0] != '#') {
            if (++segments > HLS_MAX_SEGMENTS) {
                err_set(err, ERR_LIMIT, "%s: %s lists over %d segments", p->name, name,
                        HLS_MAX_SEGMENTS);
                goto out;
            }
            if (file_present(p, dir, line, err) < 0)
                goto out;
        }
    }
    if (!ended || segments == 0) {
        err_set(err, ERR_UNSUPPORTED, "%s: %s is not a complete playlist", p->name, name);
        goto out;
    }
    rc = check_duration(p, total, want_s, clip, err);
out:
    buf_release(&b);
    return rc;
}

int media_hls_check(const struct media_profile *p, const struct media_source *s,
                    const struct media_clip *clip, const char *out_dir, struct err *err)
{
    struct media_hls_rung want[MEDIA_MAX_RUNGS];
    char line[1024], res[64], uri[256], got[32], expect[32];
    char variants[MEDIA_MAX_RUNGS][256];
    int nwant, nvar = 0, naudio = 0, expect_uri = 0, rc = -1;
    double in_s, want_s;
    size_t pos = 0;
    struct buf b;

    if (p->output != MEDIA_OUT_HLS)
        return err_set(err, ERR_INVALID, "%s: not an HLS profile", p->name);
    if (clip_resolve(p, s, clip, &in_s, &want_s, err) < 0)
        return -1;
    nwant = media_hls_rungs(p, s, want, MEDIA_MAX_RUNGS);
    buf_init(&b, PLAYLIST_MAX);
    if (file_present(p, out_dir, "manifest.mpd", err) < 0 ||
        read_small(p, out_dir, p->file, &b, err) < 0)
        goto out;
    if (!starts(b.buf, "#EXTM3U")) {
        err_set(err, ERR_UNSUPPORTED, "%s: %s is not an HLS playlist", p->name, p->file);
        goto out;
    }
    while (next_line(&b, &pos, line, sizeof(line))) {
        if (starts(line, "#EXT-X-STREAM-INF:")) {
            if (nvar == MEDIA_MAX_RUNGS) {
                err_set(err, ERR_UNSUPPORTED, "%s: over %d variants", p->name, MEDIA_MAX_RUNGS);
                goto out;
            }
            if (!attr(line + strlen("#EXT-X-STREAM-INF:"), "RESOLUTION", res, sizeof(res)))
                res[0] = '\0';
            if (nvar < nwant) {
                snprintf(got, sizeof(got), "%.31s", res);
                snprintf(expect, sizeof(expect), "%dx%d", want[nvar].width, want[nvar].height);
                if (strcmp(got, expect) != 0) {
                    err_set(err, ERR_UNSUPPORTED, "%s: variant %d is %s, not %s", p->name, nvar + 1,
                            got[0] ? got : "without a resolution", expect);
                    goto out;
                }
            }
            expect_uri = 1;
        } else if (starts(line, "#EXT-X-MEDIA:") && strstr(line, "TYPE=AUDIO")) {
            if (!attr(line + strlen("#EXT-X-MEDIA:"), "URI", uri, sizeof(uri))) {
                err_set(err, ERR_UNSUPPORTED, "%s: an audio rendition without a URI", p->name);
                goto out;
            }
            if (check_media_playlist(p, out_dir, uri, want_s, clip, err) < 0)
                goto out;
            naudio++;
        } else if (expect_uri && line[0] && line[0] != '#') {
            size_t len = strlen(line);

            if (len >= sizeof(variants[0])) {
                err_set(err, ERR_UNSUPPORTED, "%s: variant %d has an overlong URI", p->name,
                        nvar + 1);
                goto out;
            }
            memcpy(variants[nvar++], line, len + 1);
            expect_uri = 0;
        }
    }
    if (nvar != nwant) {
        err_set(err, ERR_UNSUPPORTED, "%s: %d variants, not %d", p->name, nvar, nwant);
        goto out;
    }
    if (naudio != (s->has_audio ? 1 : 0)) {
        err_set(err, ERR_UNSUPPORTED, "%s: %d audio renditions, the source has %s", p->name, naudio,
                s->has_audio ? "audio" : "none");
        goto out;
    }
    for (int i = 0; i < nvar; i++)
        if (check_media_playlist(p, out_dir, variants[i], want_s, clip, err) < 0)
            goto out;
    rc = 0;
out:
    buf_release(&b);
    return rc;
}
