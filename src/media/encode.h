/*
 * Encoding renditions: the ffmpeg command of each profile, its timeout and progress, the
 * waveform peaks, and the checks an output must pass before it counts. Pure C and jansson,
 * linked into acervod: workers run the `ffmpeg` program these functions describe as a
 * child process, and never link FFmpeg themselves (docs/internals/media.md, "Renditions").
 */
#ifndef ACERVO_MEDIA_ENCODE_H
#define ACERVO_MEDIA_ENCODE_H

#include "core/core.h"
#include "media/profile.h"

#include <jansson.h>

/** The raw audio a waveform encode writes into out_dir: s16le, mono, MEDIA_WAVEFORM_RATE. */
#define MEDIA_WAVEFORM_PCM "waveform.pcm"
/** Sample rate of MEDIA_WAVEFORM_PCM. */
#define MEDIA_WAVEFORM_RATE 8000
/** Default waveform resolution: points per second of audio. */
#define MEDIA_WAVEFORM_PER_S 10
/** Most points a waveform has. */
#define MEDIA_WAVEFORM_MAX_POINTS 10000
/** How far an output's duration may be from the source's (or the clip's). */
#define MEDIA_DURATION_TOLERANCE_S 0.5
/** Most rungs of an adaptive ladder. */
#define MEDIA_MAX_RUNGS 8

/** What an encode needs to know about a master, from acervo-probe's JSON. */
struct media_source {
    unsigned type;     /* MEDIA_T_VIDEO, MEDIA_T_AUDIO or MEDIA_T_IMAGE: the probe's "type" */
    char format[32];   /* the demuxer that probed it ("mov", "matroska"), forced on ffmpeg */
    double duration_s; /* 0 when unknown */

    int has_video;   /* a video stream that is not an attached picture (cover art) */
    int video_index; /* its index in the file */
    int width;       /* as stored (coded), before rotation and sample aspect ratio */
    int height;
    int sar_num; /* sample (pixel) aspect ratio; 1:1 when unknown */
    int sar_den;
    int rotation;            /* clockwise quarter turn for display: 0, 90, 180, 270 */
    int interlaced;          /* field_order tt, bb, tb or bt */
    int top_field_first;     /* displayed first: tt, bt */
    int bit_depth;           /* bits per sample of the picture (8, 10, 12...); 8 when unknown */
    int hdr;                 /* PQ (smpte2084) or HLG (arib-std-b67) transfer */
    char color_transfer[24]; /* FFmpeg's names, "" when unspecified */
    char color_space[24];
    char color_primaries[24];
    double frame_rate;     /* r_frame_rate; 0 when unknown */
    double avg_frame_rate; /* 0 when unknown */
    int vfr;               /* the two rates are more than 1% apart: variable frame rate */

    int has_audio;
    int audio_index;
    int channels;    /* 0 when unknown */
    int sample_rate; /* 0 when unknown */
};

/** A sub-clip of the source: seconds from its start, out_s > in_s. */
struct media_clip {
    double in_s;
    double out_s;
};

/** The picture size of one rung of an adaptive ladder, for a given source. */
struct media_hls_rung {
    int width;
    int height;
    int video_kbps;
};

/**
 * Fills out from acervo-probe's document tech (docs/internals/media.md): the first video
 * stream that is not an attached picture, the first audio stream, the duration. A
 * document that is not a probe (no known "type") fails with ERR_INVALID; values that are
 * missing are left unknown, and media_encode_argv refuses what it cannot encode.
 */
int media_source_from_probe(const json_t *tech, struct media_source *out, struct err *err);

/**
 * The size of s's picture fitted into a max_w x max_h box: display orientation (rotation
 * 90/270 swaps, a non-square sample aspect ratio is made square), aspect ratio kept, never
 * upscaled, even numbers (H.264 4:2:0). The box is landscape and is turned for a portrait
 * picture (1920x1080 fits a phone's 1080x1920 as 1080x1920), so a profile's box means the
 * same number of pixels whatever the orientation. 0 x 0 when s has no picture size.
 */
void media_fit(const struct media_source *s, int max_w, int max_h, int *w, int *h);

/**
 * The rungs of profile p's ladder for s, into out (at most n): each rung's box fitted with
 * media_fit, dropping a rung whose picture is the same size as a lower one's. Returns how
 * many; 0 when p has no ladder or s no picture.
 */
int media_hls_rungs(const struct media_profile *p, const struct media_source *s,
                    struct media_hls_rung *out, int n);

/**
 * The complete command that makes profile p of source s: *argv is a NULL-ended array,
 * argv[0] being ffmpeg (the program's path), to be freed with media_argv_free. input is
 * the master (a path; "/dev/stdin" works when stdin is the open file); outputs go into
 * out_dir under p->file (HLS: master.m3u8, manifest.mpd, media playlists, init and media
 * segments; waveform: MEDIA_WAVEFORM_PCM, which media_waveform_peaks turns into p->file).
 * clip, if not NULL, limits the output to that part of the source (accurate seek). ffmpeg
 * writes its progress as key=value lines on stdout (media_progress_feed) and only errors
 * on stderr. Fails with ERR_INVALID when p does not apply to s (a poster of an audio file,
 * a waveform of a silent video) or the clip is not inside the source, and with
 * ERR_UNSUPPORTED for a profile ffmpeg does not make (thumbs: libvips).
 */
int media_encode_argv(const struct media_profile *p, const struct media_source *s,
                      const char *ffmpeg, const char *input, const char *out_dir,
                      const struct media_clip *clip, char ***argv, struct err *err);

/** Frees an argv from media_encode_argv (NULL is fine). */
void media_argv_free(char **argv);

/**
 * Seconds the encode of p from s may take before it is killed: a fixed 60 s plus the
 * source's duration times the cost of decoding it and encoding each output picture
 * (measured at 2 cores, libx264), times 3 for a loaded machine and harder content.
 */
double media_encode_timeout_s(const struct media_profile *p, const struct media_source *s);

/** The state of ffmpeg's `-progress` output being read. */
struct media_progress {
    double duration_s; /* of the output; 0: unknown (percent stays 0 until the end) */
    double out_s;      /* output time reached */
    int percent;       /* 0..99 while running, 100 once ffmpeg wrote progress=end */
    int ended;         /* ffmpeg wrote progress=end */
    size_t len;        /* bytes of the line being read */
    int overlong;      /* the line being read is longer than line: ignored */
    char line[128];
};

/** Starts reading the progress of an encode whose output lasts duration_s seconds. */
void media_progress_init(struct media_progress *p, double duration_s);

/**
 * Feeds n bytes of ffmpeg's stdout (lines split anywhere). Reads out_time_us= and
 * out_time_ms= (microseconds too, in ffmpeg 5) and progress=end. Returns 1 when percent
 * changed, else 0.
 */
int media_progress_feed(struct media_progress *p, const char *data, size_t n);

/**
 * Reads the s16le mono PCM at fd_pcm (MEDIA_WAVEFORM_RATE) in fixed-size chunks and makes
 * the waveform document, *out being a new object the caller json_decref's:
 * {"version":1,"sample_rate":8000,"points":N,"duration_ms":D,"peaks":[[min,max],...]}
 * with min and max of each of the N equal slices of the audio in -1..1 (D from the
 * samples read). points <= 0 picks MEDIA_WAVEFORM_PER_S points per second of
 * duration_s (or of the samples, when duration_s is 0), capped at
 * MEDIA_WAVEFORM_MAX_POINTS; more than that fails with ERR_LIMIT. An empty file fails
 * with ERR_INVALID, a read error with ERR_IO.
 */
int media_waveform_peaks(int fd_pcm, double duration_s, int points, json_t **out, struct err *err);

/**
 * Checks an output of profile p from s (and clip, if any) against the profile, out_probe
 * being acervo-probe's document of p->file (for the waveform: the document
 * media_waveform_peaks made): the streams it must and must not have, codecs, sample
 * rate, picture size (media_fit of the profile's box), no rotation left, no HDR transfer,
 * a constant frame rate, and a duration within MEDIA_DURATION_TOLERANCE_S of the source's
 * (or clip's). Fails with ERR_UNSUPPORTED and a message naming the profile and what is
 * wrong: "proxy: duration 9.20 s, source 10.00 s (more than 0.5 s apart)". HLS packages
 * are checked by media_hls_check.
 */
int media_output_check(const struct media_profile *p, const struct media_source *s,
                       const struct media_clip *clip, const json_t *out_probe, struct err *err);

/**
 * Checks the HLS/DASH package an encode of p (MEDIA_OUT_HLS) wrote into out_dir, reading
 * only its playlists: master.m3u8 lists the rungs of media_hls_rungs (in that order, with
 * their RESOLUTION) and one audio rendition when s has audio; each media playlist is
 * complete (EXT-X-ENDLIST), its segments add up to the source's (or clip's) duration
 * within MEDIA_DURATION_TOLERANCE_S, and every file it names (init and media segments:
 * plain names, no path) exists and is not empty; manifest.mpd exists. Fails with
 * ERR_UNSUPPORTED (ERR_LIMIT for a playlist over 4 MiB).
 */
int media_hls_check(const struct media_profile *p, const struct media_source *s,
                    const struct media_clip *clip, const char *out_dir, struct err *err);

#endif
