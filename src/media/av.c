/*
 * Audio and video through libavformat: the container is recognised from the bytes alone,
 * must be one of the table below, and is read through our own AVIOContext on the open
 * descriptor (no URL, no protocol, no second open) under a deadline.
 */
#include "media/media_int.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/display.h>
#include <libavutil/pixdesc.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define AV_IO_BUFFER (64 * 1024)

/** A container acervo accepts: its demuxer and what to call it. */
struct container {
    const char *demuxer;    /* AVInputFormat.name */
    const char *name;       /* summary "container" */
    const char *video_mime; /* NULL: an audio container, video streams do not make it video */
    const char *audio_mime;
    const char *label; /* in messages: "invalid MP4: ..." */
};

/* mov and matroska are refined by brand and by libmagic in container_mime() */
static const struct container containers[] = {
    {"mov,mp4,m4a,3gp,3g2,mj2", "mp4", "video/mp4", "audio/mp4", "MP4"},
    {"matroska,webm", "matroska", "video/x-matroska", "audio/x-matroska", "Matroska"},
    {"mpegts", "mpegts", "video/mp2t", "video/mp2t", "MPEG-TS"},
    {"mxf", "mxf", "application/mxf", "application/mxf", "MXF"},
    {"avi", "avi", "video/x-msvideo", "video/x-msvideo", "AVI"},
    {"mpeg", "mpeg", "video/mpeg", "video/mpeg", "MPEG-PS"},
    {"flv", "flv", "video/x-flv", "video/x-flv", "FLV"},
    {"asf", "asf", "video/x-ms-asf", "audio/x-ms-wma", "ASF"},
    {"dv", "dv", "video/x-dv", "video/x-dv", "DV"},
    {"ogg", "ogg", "video/ogg", "audio/ogg", "Ogg"},
    {"mp3", "mp3", NULL, "audio/mpeg", "MP3"},
    {"wav", "wav", NULL, "audio/wav", "WAV"},
    {"w64", "w64", NULL, "audio/x-w64", "Wave64"},
    {"aiff", "aiff", NULL, "audio/aiff", "AIFF"},
    {"flac", "flac", NULL, "audio/flac", "FLAC"},
    {"aac", "aac", NULL, "audio/aac", "AAC"},
    {"ac3", "ac3", NULL, "audio/ac3", "AC-3"},
    {"eac3", "eac3", NULL, "audio/eac3", "E-AC-3"},
    {"caf", "caf", NULL, "audio/x-caf", "CAF"},
    {"wv", "wavpack", NULL, "audio/x-wavpack", "WavPack"},
    {"amr", "amr", NULL, "audio/amr", "AMR"},
};

/* ---- av_log capture: the last error of this thread, never printed ---------------------- */

static _Thread_local char av_last_error[256];

static void av_log_capture(void *avcl, int level, const char *fmt, va_list vl)
{
    char line[256];
    size_t n;

    (void)avcl;
    if (level > AV_LOG_ERROR)
        return;
    vsnprintf(line, sizeof(line), fmt, vl);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' ' || line[n - 1] == '.'))
        line[--n] = '\0';
    if (n > 0)
        media__text_copy(av_last_error, sizeof(av_last_error), line, n, 1);
}

void media__av_log_init(void)
{
    av_log_set_callback(av_log_capture);
}

/* ---- I/O on the open descriptor, under the deadline -------------------------------------- */

static int av_interrupt(void *opaque)
{
    const struct media__src *src = opaque;

    return util_mono_ms() > src->deadline_ms;
}

static int av_read(void *opaque, uint8_t *p, int n)
{
    struct media__src *src = opaque;
    ssize_t r;

    if (av_interrupt(src))
        return AVERROR_EXIT;
    do
        r = read(src->fd, p, (size_t)n);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return AVERROR(errno);
    if (r == 0)
        return AVERROR_EOF;
    return (int)r;
}

static int64_t av_seek(void *opaque, int64_t offset, int whence)
{
    struct media__src *src = opaque;
    off_t r;

    if (whence & AVSEEK_SIZE)
        return src->size;
    r = lseek(src->fd, (off_t)offset, whence & ~AVSEEK_FORCE);
    return r < 0 ? AVERROR(errno) : (int64_t)r;
}

/* ---- open and classify ------------------------------------------------------------------ */

static const struct container *container_find(const char *demuxer)
{
    for (size_t i = 0; i < ARRAY_LEN(containers); i++)
        if (strcmp(containers[i].demuxer, demuxer) == 0)
            return &containers[i];
    return NULL;
}

/* what to call the file in a message: the container, told apart by libmagic when it can */
static const char *container_label(const struct container *c, const char *magic_mime)
{
    if (strcmp(c->name, "mp4") == 0 && strcmp(magic_mime, "video/quicktime") == 0)
        return "QuickTime";
    if (strcmp(c->name, "mp4") == 0 && strcmp(magic_mime, "video/3gpp") == 0)
        return "3GP";
    if (strcmp(c->name, "matroska") == 0 && strcmp(magic_mime, "video/webm") == 0)
        return "WebM";
    return c->label;
}

static void set_str(char *dst, size_t n, const char *s)
{
    media__text_copy(dst, n, s ? s : "", SIZE_MAX, 1);
}

/* MIME type and container name, refined by the ISO brand and libmagic's WebM check */
static void container_mime(struct media__src *src, const struct container *c)
{
    struct media_kind *k = &src->kind;
    int video = k->type == MEDIA_VIDEO;
    const char *mime = video ? c->video_mime : c->audio_mime;
    const char *name = c->name;

    if (strcmp(c->name, "mp4") == 0) {
        const AVDictionaryEntry *e = av_dict_get(src->fmt->metadata, "major_brand", NULL, 0);
        const char *brand = e ? e->value : "";

        if (strncmp(brand, "qt", 2) == 0 ||
            (!e && strcmp(src->magic_mime, "video/quicktime") == 0)) {
            mime = "video/quicktime";
            name = "mov";
        } else if (strncmp(brand, "3g", 2) == 0) {
            mime = video ? "video/3gpp" : "audio/3gpp";
            name = "3gp";
        } else if (strncmp(brand, "M4", 2) == 0 && !video) {
            name = "m4a";
        }
    } else if (strcmp(c->name, "matroska") == 0 && strcmp(src->magic_mime, "video/webm") == 0) {
        mime = video ? "video/webm" : "audio/webm";
        name = "webm";
    }
    set_str(k->mime_type, sizeof(k->mime_type), mime);
    set_str(k->container, sizeof(k->container), name);
}

static int is_picture(const AVStream *st)
{
    return (st->disposition & AV_DISPOSITION_ATTACHED_PIC) != 0;
}

static int fail_av(struct media__src *src, const char *label, int ret, struct err *err)
{
    char reason[256];

    if (ret == AVERROR_EXIT && util_mono_ms() > src->deadline_ms)
        return err_set(err, ERR_LIMIT, "probing took longer than %d s", MEDIA_PROBE_TIMEOUT_S);
    if (ret == AVERROR(ENOMEM))
        return err_set(err, ERR_LIMIT, "invalid %s: out of memory while reading it", label);
    if (ret == AVERROR(EIO))
        return err_set(err, ERR_IO, "cannot read the file: %s", av_err2str(ret));
    if (av_last_error[0])
        media__text_copy(reason, sizeof(reason), av_last_error, SIZE_MAX, 1);
    else
        av_strerror(ret, reason, sizeof(reason));
    return err_set(err, ERR_UNSUPPORTED, "invalid %s: %s", label, reason);
}

int media__av_open(struct media__src *src, int data_only, struct err *err)
{
    const AVInputFormat *ifmt = NULL;
    const struct container *c;
    AVDictionary *opts = NULL;
    unsigned char *iobuf;
    const char *label;
    int ret, video = 0, audio = 0;

    av_last_error[0] = '\0';
    src->deadline_ms = util_mono_ms() + (int64_t)MEDIA_PROBE_TIMEOUT_S * 1000;
    iobuf = av_malloc((size_t)AV_IO_BUFFER);
    if (!iobuf)
        return err_set(err, ERR_IO, "libavformat ran out of memory");
    src->pb = avio_alloc_context(iobuf, AV_IO_BUFFER, 0, src, av_read, NULL, av_seek);
    if (!src->pb) {
        av_free(iobuf);
        return err_set(err, ERR_IO, "libavformat ran out of memory");
    }
    /* the name is left out of probing: only the bytes count */
    ret = av_probe_input_buffer2(src->pb, &ifmt, "", NULL, 0, MEDIA_FORMAT_PROBESIZE);
    if (ret < 0 || !ifmt || (data_only && ret <= AVPROBE_SCORE_RETRY)) {
        if (ret == AVERROR_EXIT || ret == AVERROR(EIO) || ret == AVERROR(ENOMEM))
            return fail_av(src, "media", ret, err);
        if (data_only)
            return err_set(err, ERR_UNSUPPORTED, "unrecognised content (libmagic: %s)",
                           src->kind.magic);
        return err_set(err, ERR_UNSUPPORTED,
                       "invalid media: libavformat does not recognise the content (libmagic: %s)",
                       src->kind.magic);
    }
    c = container_find(ifmt->name);
    if (!c)
        return err_set(err, ERR_UNSUPPORTED, "unsupported container format %s (libmagic: %s)",
                       ifmt->name, src->kind.magic);
    label = container_label(c, src->magic_mime);

    src->fmt = avformat_alloc_context();
    if (!src->fmt)
        return err_set(err, ERR_IO, "libavformat ran out of memory");
    src->fmt->pb = src->pb;
    src->fmt->interrupt_callback.callback = av_interrupt;
    src->fmt->interrupt_callback.opaque = src;
    src->fmt->probesize = MEDIA_STREAM_PROBESIZE;
    src->fmt->max_analyze_duration = MEDIA_ANALYZE_DURATION_US;
    src->fmt->max_streams = MEDIA_MAX_AV_STREAMS;
    /* nothing may be opened besides this descriptor (external references, playlists) */
    av_dict_set(&opts, "protocol_whitelist", "none", 0);
    av_dict_set(&opts, "format_whitelist", ifmt->name, 0);
    ret = avformat_open_input(&src->fmt, "", ifmt, &opts);
    av_dict_free(&opts);
    if (ret < 0)
        return fail_av(src, label, ret, err); /* src->fmt was freed and set to NULL */
    ret = avformat_find_stream_info(src->fmt, NULL);
    if (ret < 0)
        return fail_av(src, label, ret, err);

    for (unsigned i = 0; i < src->fmt->nb_streams; i++) {
        const AVStream *st = src->fmt->streams[i];
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !is_picture(st))
            video = 1;
        else if (st->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
            audio = 1;
    }
    if (video && c->video_mime)
        src->kind.type = MEDIA_VIDEO;
    else if (audio)
        src->kind.type = MEDIA_AUDIO;
    else
        return err_set(err, ERR_UNSUPPORTED, "invalid %s: no audio or video stream", label);
    set_str(src->kind.format, sizeof(src->kind.format), ifmt->name);
    set_str(src->kind.format_long_name, sizeof(src->kind.format_long_name), ifmt->long_name);
    container_mime(src, c);
    return 0;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static json_t *tags_json(const AVDictionary *d)
{
    json_t *o = json_object();
    const AVDictionaryEntry *e;
    int n = 0;

    for (e = av_dict_get(d, "", NULL, AV_DICT_IGNORE_SUFFIX); e && n < MEDIA_MAX_TAGS;
         e = av_dict_get(d, "", e, AV_DICT_IGNORE_SUFFIX)) {
        char key[MEDIA_MAX_TAG_KEY + 1];

        media__text_copy(key, sizeof(key), e->key, SIZE_MAX, 1);
        if (!key[0] || json_object_get(o, key))
            continue;
        json_object_set_new(o, key, media__json_text(e->value, MEDIA_MAX_TAG_VALUE));
        n++;
    }
    return o;
}

static const char *tag(const AVDictionary *d, const char *key)
{
    const AVDictionaryEntry *e = av_dict_get(d, key, NULL, 0);

    return e && e->value[0] ? e->value : NULL;
}

/* ms in AV_TIME_BASE or time_base units; -1 if unknown */
static int64_t to_ms(int64_t t, AVRational tb)
{
    int64_t ms;

    if (t == AV_NOPTS_VALUE || tb.num <= 0 || tb.den <= 0)
        return -1;
    ms = av_rescale_q(t, tb, (AVRational){1, 1000});
    return ms == INT64_MIN ? -1 : ms;
}

static json_t *json_ms(int64_t t, AVRational tb, int allow_negative)
{
    int64_t ms;

    if (t == AV_NOPTS_VALUE || tb.num <= 0 || tb.den <= 0)
        return json_null();
    ms = av_rescale_q(t, tb, (AVRational){1, 1000});
    if (ms == INT64_MIN || (ms < 0 && !allow_negative))
        return json_null();
    return json_integer(ms);
}

/* r as a number with 3 decimals; 0 if absent */
static double rate3(AVRational r)
{
    if (r.num <= 0 || r.den <= 0)
        return 0;
    return (double)av_rescale(r.num, 1000, r.den) / 1000.0;
}

static json_t *json_rate(AVRational r)
{
    double v = rate3(r);

    return v > 0 ? json_real(v) : json_null();
}

static json_t *json_ratio(int64_t num, int64_t den)
{
    char s[48];
    int n, d;

    if (num <= 0 || den <= 0)
        return json_null();
    av_reduce(&n, &d, num, den, 1 << 20);
    snprintf(s, sizeof(s), "%d:%d", n, d);
    return json_string(s);
}

/*
 * "2024-05-01T10:00:00.000000Z", "2024-05-01 10:00:00", "2024-05-01T12:00:00+0200" as
 * UTC RFC 3339; 0 if s is none of those
 */
static int iso_utc(const char *s, char out[32])
{
    int y, mo, d, h, mi, sec, n = 0, oh = 0, om = 0, sign = 0;
    const char *p;
    struct tm tm;
    int64_t t;

    if (sscanf(s, "%4d-%2d-%2d%*1[T ]%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
        n != 19)
        return 0;
    p = s + n;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (strlen(p) == 5 && p[2] == ':' && sscanf(p, "%2d:%2d", &oh, &om) == 2)
            p += 5;
        else if (strlen(p) == 4 && sscanf(p, "%2d%2d", &oh, &om) == 2)
            p += 4;
        else
            return 0;
    } else if (*p == 'Z') {
        p++;
    }
    if (*p != '\0' || y < 1900 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60 || oh > 23 || om > 59)
        return 0;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    t = (int64_t)timegm(&tm) - (int64_t)sign * (oh * 3600 + om * 60);
    util_time_rfc3339(t, out);
    return 1;
}

/* clockwise degrees the picture is turned for display (the "rotate" tag's sense): 0..270 */
static int stream_rotation(const AVStream *st)
{
    size_t size = 0;
    const uint8_t *m = av_stream_get_side_data(st, AV_PKT_DATA_DISPLAYMATRIX, &size);
    double ccw;

    if (!m || size < 9 * sizeof(int32_t))
        return 0;
    ccw = av_display_rotation_get((const int32_t *)(const void *)m); /* -180..180 */
    if (!isfinite(ccw) || ccw < -180.0 || ccw > 180.0)
        return 0;
    return (int)((long)((-ccw + 720.0 + 45.0) / 90.0) % 4) * 90;
}

static const char *field_order_name(enum AVFieldOrder f)
{
    switch (f) {
    case AV_FIELD_PROGRESSIVE:
        return "progressive";
    case AV_FIELD_TT:
        return "tt";
    case AV_FIELD_BB:
        return "bb";
    case AV_FIELD_TB:
        return "tb";
    case AV_FIELD_BT:
        return "bt";
    case AV_FIELD_UNKNOWN:
        break;
    }
    return "unknown";
}

static json_t *json_name(const char *s)
{
    return s && strcmp(s, "unknown") != 0 ? json_string(s) : json_null();
}

static void video_json(AVFormatContext *fmt, AVStream *st, json_t *o)
{
    const AVCodecParameters *par = st->codecpar;
    AVRational sar = av_guess_sample_aspect_ratio(fmt, st, NULL);

    json_object_set_new(o, "width", media__json_count(par->width));
    json_object_set_new(o, "height", media__json_count(par->height));
    json_object_set_new(o, "sample_aspect_ratio", json_ratio(sar.num, sar.den));
    if (sar.num > 0 && sar.den > 0)
        json_object_set_new(
            o, "display_aspect_ratio",
            json_ratio((int64_t)par->width * sar.num, (int64_t)par->height * sar.den));
    else
        json_object_set_new(o, "display_aspect_ratio", json_ratio(par->width, par->height));
    json_object_set_new(o, "pix_fmt",
                        json_name(av_get_pix_fmt_name((enum AVPixelFormat)par->format)));
    json_object_set_new(o, "bits_per_raw_sample",
                        par->bits_per_raw_sample > 0 ? json_integer(par->bits_per_raw_sample)
                                                     : json_null());
    json_object_set_new(o, "frame_rate", json_rate(st->r_frame_rate));
    json_object_set_new(o, "avg_frame_rate", json_rate(st->avg_frame_rate));
    json_object_set_new(o, "field_order", json_string(field_order_name(par->field_order)));
    json_object_set_new(o, "color_space",
                        json_name(par->color_space == AVCOL_SPC_UNSPECIFIED
                                      ? NULL
                                      : av_color_space_name(par->color_space)));
    json_object_set_new(o, "color_range",
                        json_name(par->color_range == AVCOL_RANGE_UNSPECIFIED
                                      ? NULL
                                      : av_color_range_name(par->color_range)));
    json_object_set_new(o, "color_transfer",
                        json_name(par->color_trc == AVCOL_TRC_UNSPECIFIED
                                      ? NULL
                                      : av_color_transfer_name(par->color_trc)));
    json_object_set_new(o, "color_primaries",
                        json_name(par->color_primaries == AVCOL_PRI_UNSPECIFIED
                                      ? NULL
                                      : av_color_primaries_name(par->color_primaries)));
    json_object_set_new(o, "rotation", json_integer(stream_rotation(st)));
    json_object_set_new(o, "attached_pic", json_boolean(is_picture(st)));
}

static void audio_json(const AVStream *st, json_t *o)
{
    const AVCodecParameters *par = st->codecpar;
    int bits = av_get_bits_per_sample(par->codec_id);
    char layout[128];

    if (bits <= 0)
        bits = par->bits_per_raw_sample;
    json_object_set_new(o, "sample_rate",
                        media__json_count(par->sample_rate > 0 ? par->sample_rate : -1));
    json_object_set_new(
        o, "channels",
        media__json_count(par->ch_layout.nb_channels > 0 ? par->ch_layout.nb_channels : -1));
    if (par->ch_layout.order != AV_CHANNEL_ORDER_UNSPEC &&
        av_channel_layout_describe(&par->ch_layout, layout, sizeof(layout)) > 0)
        json_object_set_new(o, "channel_layout", media__json_text(layout, sizeof(layout)));
    else
        json_object_set_new(o, "channel_layout", json_null());
    json_object_set_new(o, "sample_fmt",
                        json_name(av_get_sample_fmt_name((enum AVSampleFormat)par->format)));
    json_object_set_new(o, "bits_per_sample", bits > 0 ? json_integer(bits) : json_null());
}

static json_t *stream_json(AVFormatContext *fmt, AVStream *st)
{
    const AVCodecParameters *par = st->codecpar;
    const AVCodecDescriptor *desc = avcodec_descriptor_get(par->codec_id);
    const char *type = av_get_media_type_string(par->codec_type);
    const char *profile = avcodec_profile_name(par->codec_id, par->profile);
    json_t *o = json_object();

    json_object_set_new(o, "index", json_integer(st->index));
    json_object_set_new(o, "type", json_string(type ? type : "unknown"));
    json_object_set_new(o, "codec",
                        par->codec_id == AV_CODEC_ID_NONE
                            ? json_null()
                            : json_string(avcodec_get_name(par->codec_id)));
    json_object_set_new(o, "codec_long_name",
                        desc && desc->long_name ? json_string(desc->long_name) : json_null());
    json_object_set_new(o, "profile", profile ? json_string(profile) : json_null());
    json_object_set_new(o, "bit_rate", media__json_count(par->bit_rate > 0 ? par->bit_rate : -1));
    json_object_set_new(o, "duration_ms", json_ms(st->duration, st->time_base, 0));
    json_object_set_new(o, "language", media__json_text(tag(st->metadata, "language"), 16));
    if (par->codec_type == AVMEDIA_TYPE_VIDEO)
        video_json(fmt, st, o);
    else if (par->codec_type == AVMEDIA_TYPE_AUDIO)
        audio_json(st, o);
    json_object_set_new(o, "tags", tags_json(st->metadata));
    return o;
}

/* the container's creation time, else the first stream's, as UTC RFC 3339 */
static int creation_time(const AVFormatContext *fmt, char out[32])
{
    const char *s = tag(fmt->metadata, "creation_time");

    if (s && iso_utc(s, out))
        return 1;
    s = tag(fmt->metadata, "com.apple.quicktime.creationdate");
    if (s && iso_utc(s, out))
        return 1;
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        s = tag(fmt->streams[i]->metadata, "creation_time");
        if (s && iso_utc(s, out))
            return 1;
    }
    return 0;
}

static const char *timecode(const AVFormatContext *fmt)
{
    const char *s = tag(fmt->metadata, "timecode");

    for (unsigned i = 0; !s && i < fmt->nb_streams; i++)
        s = tag(fmt->streams[i]->metadata, "timecode");
    return s;
}

void media__av_json(struct media__src *src, json_t *o, struct media__summary *sum)
{
    AVFormatContext *fmt = src->fmt;
    const AVStream *v = NULL, *a = NULL;
    json_t *streams = json_array();
    char when[32];

    json_object_set_new(o, "duration_ms", json_ms(fmt->duration, AV_TIME_BASE_Q, 0));
    json_object_set_new(o, "bit_rate", media__json_count(fmt->bit_rate > 0 ? fmt->bit_rate : -1));
    json_object_set_new(o, "start_time_ms", json_ms(fmt->start_time, AV_TIME_BASE_Q, 1));
    json_object_set_new(o, "creation_time",
                        creation_time(fmt, when) ? json_string(when) : json_null());
    json_object_set_new(o, "timecode", media__json_text(timecode(fmt), 32));
    json_object_set_new(o, "tags", tags_json(fmt->metadata));
    json_object_set_new(o, "stream_count", json_integer(fmt->nb_streams));
    for (unsigned i = 0; i < fmt->nb_streams; i++) {
        AVStream *st = fmt->streams[i];
        if (i < MEDIA_MAX_STREAMS)
            json_array_append_new(streams, stream_json(fmt, st));
        if (!v && st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !is_picture(st))
            v = st;
        if (!a && st->codecpar->codec_type == AVMEDIA_TYPE_AUDIO)
            a = st;
    }
    json_object_set_new(o, "streams", streams);

    sum->duration_ms = to_ms(fmt->duration, AV_TIME_BASE_Q);
    sum->bitrate_kbps = fmt->bit_rate > 0 ? (fmt->bit_rate + 500) / 1000 : -1;
    if (creation_time(fmt, when))
        snprintf(sum->captured_at, sizeof(sum->captured_at), "%s", when);
    if (v && src->kind.type == MEDIA_VIDEO) {
        int rot = stream_rotation(v);
        int64_t w = v->codecpar->width > 0 ? v->codecpar->width : -1;
        int64_t h = v->codecpar->height > 0 ? v->codecpar->height : -1;

        sum->width = rot == 90 || rot == 270 ? h : w;
        sum->height = rot == 90 || rot == 270 ? w : h;
        if (v->codecpar->codec_id != AV_CODEC_ID_NONE)
            sum->video_codec = avcodec_get_name(v->codecpar->codec_id);
        sum->frame_rate = rate3(v->avg_frame_rate);
        if (sum->frame_rate <= 0)
            sum->frame_rate = rate3(v->r_frame_rate);
    }
    if (a) {
        if (a->codecpar->codec_id != AV_CODEC_ID_NONE)
            sum->audio_codec = avcodec_get_name(a->codecpar->codec_id);
        sum->audio_channels =
            a->codecpar->ch_layout.nb_channels > 0 ? a->codecpar->ch_layout.nb_channels : -1;
        sum->sample_rate = a->codecpar->sample_rate > 0 ? a->codecpar->sample_rate : -1;
    }
}
