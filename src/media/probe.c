/*
 * Probing: the kind, then the fields of the library that confirmed it, then the flat
 * summary. Every string from the file passes through media__text_copy on its way to JSON.
 */
#include "media/media_int.h"

#include <string.h>

void media__text_copy(char *dst, size_t n, const char *s, size_t len, int one_line)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;

    if (n == 0)
        return;
    while (i < len && p[i] != '\0') {
        size_t at = i;
        uint32_t cp;
        int ok = util_utf8_next(p, len, &i, &cp); /* a NUL ends a character too */
        size_t k = i - at;

        if (!ok || k == 1) {
            unsigned char c = ok ? p[at] : '?';
            if (one_line && (c < 0x20 || c == 0x7f))
                c = ' ';
            if (o + 1 >= n)
                break;
            dst[o++] = (char)c;
            continue;
        }
        if (o + k >= n)
            break;
        memcpy(dst + o, p + at, k);
        o += k;
    }
    dst[o] = '\0';
}

json_t *media__json_text(const char *s, size_t max)
{
    char *tmp;
    json_t *j;

    if (!s)
        return json_null();
    tmp = xmalloc(max + 1);
    media__text_copy(tmp, max + 1, s, max, 0);
    j = json_string(tmp);
    free(tmp);
    return j ? j : json_null();
}

json_t *media__json_count(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *summary_json(const struct media_kind *k, const struct media__summary *s)
{
    json_t *o = json_object();

    json_object_set_new(o, "type", json_string(media_type_name(k->type)));
    json_object_set_new(o, "mime_type", media__json_text(k->mime_type, sizeof(k->mime_type)));
    json_object_set_new(o, "duration_ms", media__json_count(s->duration_ms));
    json_object_set_new(o, "width", media__json_count(s->width));
    json_object_set_new(o, "height", media__json_count(s->height));
    json_object_set_new(o, "video_codec",
                        s->video_codec ? json_string(s->video_codec) : json_null());
    json_object_set_new(o, "audio_codec",
                        s->audio_codec ? json_string(s->audio_codec) : json_null());
    json_object_set_new(o, "frame_rate",
                        s->frame_rate > 0 ? json_real(s->frame_rate) : json_null());
    json_object_set_new(o, "bitrate_kbps", media__json_count(s->bitrate_kbps));
    json_object_set_new(o, "audio_channels", media__json_count(s->audio_channels));
    json_object_set_new(o, "sample_rate", media__json_count(s->sample_rate));
    json_object_set_new(o, "captured_at",
                        s->captured_at[0] ? json_string(s->captured_at) : json_null());
    json_object_set_new(o, "container", media__json_text(k->container, sizeof(k->container)));
    return o;
}

int media_file_probe(const char *path, json_t **out, struct err *err)
{
    struct media__summary sum = {-1, -1, -1, NULL, NULL, 0, -1, -1, -1, ""};
    struct media__src src;
    json_t *o;

    *out = NULL;
    if (media__src_open(&src, path, err) < 0)
        return -1;
    o = media_kind_json(&src.kind);
    json_object_set_new(o, "file_size_bytes", json_integer(src.size));
    if (src.kind.type == MEDIA_IMAGE)
        media__image_json(&src, o, &sum);
    else
        media__av_json(&src, o, &sum);
    json_object_set_new(o, "summary", summary_json(&src.kind, &sum));
    media__src_close(&src);
    *out = o;
    return 0;
}
