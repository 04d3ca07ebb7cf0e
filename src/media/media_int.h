/*
 * media internals shared by detect.c (libmagic, dispatch), av.c (libavformat), image.c
 * (libvips), exif.c (libexif) and probe.c (JSON). Nothing here is used outside src/media.
 */
#ifndef ACERVO_MEDIA_INT_H
#define ACERVO_MEDIA_INT_H

#include "media/media.h"

#include <libavformat/avformat.h>
#include <vips/vips.h>

/** Bytes libavformat may read to recognise the container (its format_probesize). */
#define MEDIA_FORMAT_PROBESIZE (1 << 20)
/** Bytes and microseconds avformat_find_stream_info may read and analyse. */
#define MEDIA_STREAM_PROBESIZE    (32 << 20)
#define MEDIA_ANALYZE_DURATION_US (10LL * 1000 * 1000)
/** Streams a demuxer may create before opening fails (its max_streams). */
#define MEDIA_MAX_AV_STREAMS 256
/** Tags copied into one "tags" object, and the longest key and value kept, in bytes. */
#define MEDIA_MAX_TAGS      64
#define MEDIA_MAX_TAG_KEY   64
#define MEDIA_MAX_TAG_VALUE 1024
/** Largest EXIF blob decoded, in bytes (a JPEG APP1 segment holds at most 64 KiB). */
#define MEDIA_MAX_EXIF (1 << 20)
/** Longest EXIF text field kept, in bytes. */
#define MEDIA_MAX_EXIF_TEXT 256

/** A file being detected or probed: its descriptor and the library handle that read it. */
struct media__src {
    const char *path;
    int fd;
    int64_t size;
    struct media_kind kind;
    char magic_mime[64];
    int64_t deadline_ms;  /* util_mono_ms() after which libavformat is interrupted */
    AVFormatContext *fmt; /* audio and video */
    AVIOContext *pb;
    VipsImage *img; /* images: the header, pixels never decoded */
};

/** The flat fields of "summary"; negative numbers and empty strings are absent (null). */
struct media__summary {
    int64_t duration_ms;
    int64_t width, height; /* display orientation */
    const char *video_codec, *audio_codec;
    double frame_rate; /* 0: absent */
    int64_t bitrate_kbps;
    int64_t audio_channels, sample_rate;
    char captured_at[40];
};

/** Opens path and finds its kind, keeping the library handle for probing. */
int media__src_open(struct media__src *src, const char *path, struct err *err);
/** Closes what media__src_open opened; safe on a zeroed src. */
void media__src_close(struct media__src *src);

/** Sets up the av_log capture (media_libs_init). */
void media__av_log_init(void);
/**
 * Confirms src as audio or video with libavformat and fills src->kind. A file libmagic
 * calls "data" needs a probe score over AVPROBE_SCORE_RETRY (data_only).
 */
int media__av_open(struct media__src *src, int data_only, struct err *err);
/** Adds the container and stream fields of an opened src to o, and fills sum. */
void media__av_json(struct media__src *src, json_t *o, struct media__summary *sum);

/** Captures libvips' GLib warnings instead of printing them (media_libs_init). */
void media__vips_log_init(void);
/** Confirms src as an image libvips reads (header only) and fills src->kind. */
int media__image_open(struct media__src *src, struct err *err);
/** Adds the image fields of an opened src to o, and fills sum. */
void media__image_json(struct media__src *src, json_t *o, struct media__summary *sum);

/**
 * Decodes an EXIF blob (with or without the "Exif\0\0" header) into the exif object of
 * docs/internals/media.md; capture_time receives DateTimeOriginal in ISO 8601 ("" if
 * absent). Returns a new object, or JSON null if the blob holds nothing readable.
 */
json_t *media__exif_json(const unsigned char *blob, size_t n, char capture_time[40]);

/**
 * Copies s into dst (n bytes, NUL-terminated) as valid UTF-8, up to len bytes or a NUL:
 * an invalid byte becomes '?', with one_line any control character a space, and a
 * character that does not fit is dropped whole.
 */
void media__text_copy(char *dst, size_t n, const char *s, size_t len, int one_line);
/** A JSON string of at most max bytes of s made valid UTF-8; JSON null if s is NULL. */
json_t *media__json_text(const char *s, size_t max);
/** A JSON integer, or null if v is negative. */
json_t *media__json_count(int64_t v);

/**
 * The path to give libvips for src: src->path, or /proc/self/fd/N (written into buf) when
 * the name ends in ']', which libvips would read as options. Valid while src is open.
 */
const char *media__image_path(const struct media__src *src, char *buf, size_t n);
/**
 * Copies the first line of libvips' error text (else its last GLib warning) into out,
 * "unknown error" if both are empty, and clears both: they are shared.
 */
void media__vips_error(char *out, size_t n);

#endif
