/*
 * Rendition profiles: the seed's rendition matrix as a const table. A profile has a
 * name, a version and the media types it applies to; its version is part of every
 * storage key it writes, so a new version never overwrites an old rendition. Pure data
 * and pure functions (no decoding library): linked into acervod, whose workers run the
 * encoders (the ffmpeg program, acervo-probe for images) as child processes.
 */
#ifndef ACERVO_MEDIA_PROFILE_H
#define ACERVO_MEDIA_PROFILE_H

#include "core/core.h"

#include <stddef.h>

/** What a profile produces. */
enum media_output {
    MEDIA_OUT_MP4,         /* H.264 + AAC MP4, faststart */
    MEDIA_OUT_JPEG,        /* one representative frame */
    MEDIA_OUT_HLS,         /* adaptive ladder: HLS master.m3u8 (and DASH manifest.mpd) */
    MEDIA_OUT_MP3,         /* audio preview */
    MEDIA_OUT_WAV,         /* broadcast PCM */
    MEDIA_OUT_WAVEFORM,    /* peaks JSON for the player */
    MEDIA_OUT_WEBP_THUMBS, /* WebP thumbnails, several sizes from one decode */
};

/** Media type bits of media_profile.types. */
#define MEDIA_T_VIDEO 1u
#define MEDIA_T_AUDIO 2u
#define MEDIA_T_IMAGE 4u

/**
 * One rung of an adaptive ladder. Its box is (height * 16 / 9) x height, turned for a
 * portrait picture as media_fit does; a rung whose picture would be the same size as a
 * lower rung's (the source is smaller than its box: never upscaled) is dropped. The rungs
 * share one audio rendition, at the profile's audio_kbps.
 */
struct media_rung {
    int height;     /* short side of the box */
    int video_kbps; /* target video bitrate */
};

/** A rendition profile. */
struct media_profile {
    const char *name;
    int version;
    unsigned types; /* MEDIA_T_* it applies to */
    enum media_output output;
    const char *bucket;    /* "proxies" or "delivery" */
    const char *mime_type; /* of the main file */
    const char *file;      /* the main file's name under the rendition's key prefix */
    int max_width;         /* landscape box the picture is fitted into (media_fit: turned */
    int max_height;        /* for a portrait picture, never upscaled); 0: n/a */
    int video_kbps;
    int audio_kbps;
    int audio_rate;     /* output sample rate, 0: keep */
    const char *preset; /* libx264 preset of the H.264 outputs */
    int needs_audio;    /* only for sources with an audio stream (waveform of a video) */
    int needs_video;    /* only for sources with a video stream */
    int on_demand;      /* only on request (POST /api/v1/assets/{id}/renditions) */
    const int *sizes;   /* MEDIA_OUT_WEBP_THUMBS: longest side of each thumbnail, 0-ended */
    const struct media_rung *ladder; /* MEDIA_OUT_HLS: rungs, height 0 ends */
};

/** The profiles, ending with a NULL name. */
extern const struct media_profile media_profiles[];

/** The profile named name, or NULL. */
const struct media_profile *media_profile_find(const char *name);

/**
 * The key prefix of a profile's rendition of a master, ending in '/':
 * proxies:  "proxies/{assetId}/{sha256}/{name}-v{version}/"
 * delivery: "web/{assetId}/{sha256}/{name}-v{version}/"
 * Files of the rendition are stored under it (proxy.mp4, master.m3u8, thumb_300.webp).
 */
void media_profile_prefix(const struct media_profile *p, const char *asset_id, const char *sha256,
                          char *out, size_t n);

#endif
