/*
 * media: what an uploaded file really is, and its technical metadata. Depends on core
 * only (and on libmagic, libavformat/libavcodec/libavutil, libvips and libexif).
 *
 * Everything here reads untrusted bytes with libraries that have had their share of
 * crashes: the server never calls it in-process. Workers run `acervo-probe FILE`
 * as a child with rlimits and a timeout (docs/internals/media.md).
 */
#ifndef ACERVO_MEDIA_H
#define ACERVO_MEDIA_H

#include "core/core.h"

#include <jansson.h>

/** Most pixels (width x height) an image may declare in its header. */
#define MEDIA_MAX_PIXELS 1000000000LL
/** Streams listed in a probe; a file may hold more (stream_count says how many). */
#define MEDIA_MAX_STREAMS 64
/** Seconds libavformat may spend opening and analysing one file. */
#define MEDIA_PROBE_TIMEOUT_S 30

/*
 * Exit statuses of `acervo-probe`, which the worker that runs it reads: the JSON is
 * on stdout (OK); an internal failure such as I/O or a library that cannot start (ERROR);
 * bad arguments (USAGE); not supported media or over a limit, ERR_UNSUPPORTED or
 * ERR_LIMIT (UNSUPPORTED).
 */
#define MEDIA_EXIT_OK          0
#define MEDIA_EXIT_ERROR       1
#define MEDIA_EXIT_USAGE       2
#define MEDIA_EXIT_UNSUPPORTED 3

/** What a file is, at the coarsest level. */
enum media_type {
    MEDIA_VIDEO,
    MEDIA_AUDIO,
    MEDIA_IMAGE,
};

/** The real type of a file, found from its content (never its name). */
struct media_kind {
    enum media_type type;
    char mime_type[64];         /* "video/mp4", "audio/mpeg", "image/jpeg", ... */
    char format[64];            /* libavformat demuxer name or image format: "matroska,webm" */
    char format_long_name[128]; /* "QuickTime / MOV", "JPEG", ... */
    char container[16];         /* short container name for catalog columns: "mp4", "jpeg" */
    char magic[256];            /* libmagic's description */
};

/**
 * Initialises the libraries of the module for this process: libvips (argv0 is the
 * program name VIPS_INIT wants) and ffmpeg's log capture. Call once, before any other
 * media_* function, only in a process that probes (never in the server).
 */
int media_libs_init(const char *argv0, struct err *err);
/** Releases what media_libs_init set up (libvips' caches and threads). */
void media_libs_release(void);

/** "video", "audio" or "image". Static. */
const char *media_type_name(enum media_type t);

/**
 * Detects the real type of the file at path from its content. Content that is not
 * supported media fails with ERR_UNSUPPORTED and a reason naming what was found; an
 * image over MEDIA_MAX_PIXELS with ERR_LIMIT; a file that cannot be read with ERR_IO
 * (ERR_NOTFOUND if it does not exist).
 */
int media_kind_detect(const char *path, struct media_kind *out, struct err *err);

/** k as a JSON object {type, mime_type, format, format_long_name, magic}. Caller decrefs. */
json_t *media_kind_json(const struct media_kind *k);

/**
 * Probes the file at path: its kind plus the technical metadata ffprobe and exiftool
 * would give, and a flat "summary" object (fields in docs/internals/media.md). *out is
 * a new JSON object the caller json_decref's. Fails as media_kind_detect does.
 */
int media_file_probe(const char *path, json_t **out, struct err *err);

/** Most thumbnail sizes one media_thumbs_make call makes. */
#define MEDIA_MAX_THUMBS 8
/** Largest thumbnail size (longest side, pixels); WebP itself stops at 16383. */
#define MEDIA_MAX_THUMB_SIZE 4096

/**
 * Parses a thumbnail size list, "300,800,1200", into sizes (0-ended, so it holds
 * MEDIA_MAX_THUMBS + 1 ints). Each size is a decimal 1..MEDIA_MAX_THUMB_SIZE, sizes are
 * distinct, at most MEDIA_MAX_THUMBS of them; anything else fails with ERR_INVALID.
 */
int media_thumbs_sizes_parse(const char *list, int *sizes, struct err *err);

/**
 * Makes WebP thumbnails of the image at path: out_dir/thumb_<size>.webp for each size of
 * sizes (0-ended), whose longest side is size pixels, or the source's own size when that
 * is smaller (never upscaled; the file keeps the requested size's name). The source is
 * decoded once, shrunk on load to what the largest size needs; EXIF orientation applied,
 * colour converted to sRGB 8-bit, alpha kept, metadata stripped, first frame of animated
 * images. *out is a new object the caller json_decref's:
 * {"thumbs":[{"size","file","width","height","bytes"},...],
 *  "source":{"width","height","orientation","display_width","display_height"}}
 * (source dimensions as stored, as media_file_probe gives them). Fails as
 * media_kind_detect does (a file that is not an image with ERR_UNSUPPORTED, an image
 * over MEDIA_MAX_PIXELS with ERR_LIMIT before any pixel is decoded), with ERR_INVALID
 * for a bad size list and ERR_IO when out_dir cannot be written; files already written
 * are removed when it fails.
 */
int media_thumbs_make(const char *path, const int *sizes, const char *out_dir, json_t **out,
                      struct err *err);

#endif
