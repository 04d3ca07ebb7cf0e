/*
 * The rendition profiles: ARCHITECTURE.md's rendition matrix as one const table. A
 * change to what a profile produces (size, bitrate, preset, filters) is a new version of
 * it, so the new rendition gets new storage keys and never overwrites the old one.
 */
#include "media/profile.h"

#include <stdio.h>
#include <string.h>

static const int thumb_sizes[] = {300, 800, 1200, 0};

/* 1080p, 720p, 360p (H.264 High, 2 s GOPs, 6 s segments) */
static const struct media_rung hls_ladder[] = {
    {1080, 5000},
    {720, 2800},
    {360, 800},
    {0, 0},
};

const struct media_profile media_profiles[] = {
    /* video */
    {.name = "proxy",
     .version = 1,
     .types = MEDIA_T_VIDEO,
     .output = MEDIA_OUT_MP4,
     .bucket = "proxies",
     .mime_type = "video/mp4",
     .file = "proxy.mp4",
     .max_width = 1920,
     .max_height = 1080,
     .video_kbps = 5000,
     .audio_kbps = 128,
     .audio_rate = 48000,
     .preset = "veryfast",
     .needs_video = 1},
    {.name = "web_low",
     .version = 1,
     .types = MEDIA_T_VIDEO,
     .output = MEDIA_OUT_MP4,
     .bucket = "proxies",
     .mime_type = "video/mp4",
     .file = "web_low.mp4",
     .max_width = 1280,
     .max_height = 720,
     .video_kbps = 1500,
     .audio_kbps = 96,
     .audio_rate = 48000,
     .preset = "medium",
     .needs_video = 1},
    {.name = "poster",
     .version = 1,
     .types = MEDIA_T_VIDEO,
     .output = MEDIA_OUT_JPEG,
     .bucket = "proxies",
     .mime_type = "image/jpeg",
     .file = "poster.jpg",
     .max_width = 1920,
     .max_height = 1080,
     .needs_video = 1},
    {.name = "hls",
     .version = 1,
     .types = MEDIA_T_VIDEO,
     .output = MEDIA_OUT_HLS,
     .bucket = "delivery",
     .mime_type = "application/vnd.apple.mpegurl",
     .file = "master.m3u8",
     .max_width = 1920,
     .max_height = 1080,
     .audio_kbps = 128,
     .audio_rate = 48000,
     .preset = "medium",
     .needs_video = 1,
     .ladder = hls_ladder},
    /* an editor's sub-clip (in and out points): the proxy's spec, on request only */
    {.name = "subclip",
     .version = 1,
     .types = MEDIA_T_VIDEO,
     .output = MEDIA_OUT_MP4,
     .bucket = "proxies",
     .mime_type = "video/mp4",
     .file = "subclip.mp4",
     .max_width = 1920,
     .max_height = 1080,
     .video_kbps = 5000,
     .audio_kbps = 128,
     .audio_rate = 48000,
     .preset = "veryfast",
     .needs_video = 1,
     .on_demand = 1},
    /* audio */
    {.name = "preview",
     .version = 1,
     .types = MEDIA_T_AUDIO,
     .output = MEDIA_OUT_MP3,
     .bucket = "proxies",
     .mime_type = "audio/mpeg",
     .file = "preview.mp3",
     .audio_kbps = 128,
     .audio_rate = 44100,
     .needs_audio = 1},
    {.name = "broadcast",
     .version = 1,
     .types = MEDIA_T_AUDIO,
     .output = MEDIA_OUT_WAV,
     .bucket = "proxies",
     .mime_type = "audio/wav",
     .file = "broadcast.wav",
     .audio_rate = 48000,
     .needs_audio = 1},
    /* audio and video: only a video with sound has a waveform */
    {.name = "waveform",
     .version = 1,
     .types = MEDIA_T_VIDEO | MEDIA_T_AUDIO,
     .output = MEDIA_OUT_WAVEFORM,
     .bucket = "proxies",
     .mime_type = "application/json",
     .file = "waveform.json",
     .needs_audio = 1},
    /* images: libvips (acervo-probe --thumbs), not ffmpeg */
    {.name = "thumbs",
     .version = 1,
     .types = MEDIA_T_IMAGE,
     .output = MEDIA_OUT_WEBP_THUMBS,
     .bucket = "proxies",
     .mime_type = "image/webp",
     .file = "thumb_300.webp",
     .sizes = thumb_sizes},
    {.name = NULL},
};

const struct media_profile *media_profile_find(const char *name)
{
    if (!name)
        return NULL;
    for (const struct media_profile *p = media_profiles; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return p;
    return NULL;
}

void media_profile_prefix(const struct media_profile *p, const char *asset_id, const char *sha256,
                          char *out, size_t n)
{
    int delivery = strcmp(p->bucket, "delivery") == 0;

    snprintf(out, n, "%s/%s/%s/%s-v%d/", delivery ? "web" : "proxies", asset_id, sha256, p->name,
             p->version);
}
