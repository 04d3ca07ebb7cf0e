/*
 * EXIF through libexif: a fixed set of fields is read from the blob libvips hands over,
 * each checked for its format and size; nothing else of the blob reaches the output.
 */
#include "media/media_int.h"

#include <libexif/exif-data.h>
#include <string.h>

struct exif_ctx {
    ExifData *ed;
    ExifByteOrder bo;
};

static ExifEntry *entry(const struct exif_ctx *x, ExifIfd ifd, unsigned tag)
{
    return exif_content_get_entry(x->ed->ifd[ifd], (ExifTag)tag);
}

/* an ASCII field, trimmed; 0 if absent or empty */
static int text(const struct exif_ctx *x, ExifIfd ifd, unsigned tag, char *out, size_t n)
{
    const ExifEntry *e = entry(x, ifd, tag);
    size_t len;

    out[0] = '\0';
    if (!e || !e->data || e->size == 0 ||
        (e->format != EXIF_FORMAT_ASCII && e->format != EXIF_FORMAT_UNDEFINED))
        return 0;
    media__text_copy(out, n, (const char *)e->data, e->size, 1);
    len = strlen(out);
    while (len > 0 && out[len - 1] == ' ')
        out[--len] = '\0';
    return len > 0;
}

static json_t *json_text(const struct exif_ctx *x, ExifIfd ifd, unsigned tag)
{
    char s[MEDIA_MAX_EXIF_TEXT + 1];

    return text(x, ifd, tag, s, sizeof(s)) ? json_string(s) : json_null();
}

/* component i of a RATIONAL field; 0 if absent or with a zero denominator */
static int rational(const struct exif_ctx *x, ExifIfd ifd, unsigned tag, unsigned i,
                    ExifRational *out)
{
    const ExifEntry *e = entry(x, ifd, tag);

    if (!e || !e->data || e->format != EXIF_FORMAT_RATIONAL || e->components <= i ||
        e->size < (i + 1) * 8)
        return 0;
    *out = exif_get_rational(e->data + (size_t)i * 8, x->bo);
    return out->denominator != 0;
}

static double ratio(ExifRational r)
{
    return (double)r.numerator / (double)r.denominator;
}

/* v rounded to places decimals, for numbers people read (2.8, not 2.7999999999999998) */
static double round_to(double v, int places)
{
    double scale = 1;

    while (places-- > 0)
        scale *= 10;
    return (double)(int64_t)(v * scale + (v < 0 ? -0.5 : 0.5)) / scale;
}

static json_t *json_rational(const struct exif_ctx *x, ExifIfd ifd, unsigned tag, int places)
{
    ExifRational r;

    return rational(x, ifd, tag, 0, &r) ? json_real(round_to(ratio(r), places)) : json_null();
}

/* a SHORT or LONG field's first value; -1 if absent */
static int64_t integer(const struct exif_ctx *x, ExifIfd ifd, unsigned tag)
{
    const ExifEntry *e = entry(x, ifd, tag);

    if (!e || !e->data || e->components == 0)
        return -1;
    if (e->format == EXIF_FORMAT_SHORT && e->size >= 2)
        return exif_get_short(e->data, x->bo);
    if (e->format == EXIF_FORMAT_LONG && e->size >= 4)
        return exif_get_long(e->data, x->bo);
    return -1;
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* "1/250", or "0.3" and "2" when the time is not a unit fraction */
static void exposure(const struct exif_ctx *x, json_t *o)
{
    ExifRational r;
    char s[32];

    if (!rational(x, EXIF_IFD_EXIF, EXIF_TAG_EXPOSURE_TIME, 0, &r) || r.numerator == 0) {
        json_object_set_new(o, "exposure_time", json_null());
        json_object_set_new(o, "exposure_time_s", json_null());
        return;
    }
    {
        uint32_t g = gcd(r.numerator, r.denominator);
        uint32_t num = r.numerator / g, den = r.denominator / g;

        if (num == 1 && den > 1)
            snprintf(s, sizeof(s), "1/%u", (unsigned)den);
        else
            snprintf(s, sizeof(s), "%g", round_to(ratio(r), 4));
    }
    json_object_set_new(o, "exposure_time", json_string(s));
    json_object_set_new(o, "exposure_time_s", json_real(ratio(r)));
}

static int digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* DateTimeOriginal "2024:05:01 10:00:00" (+ OffsetTimeOriginal) as ISO 8601 */
static int capture_time(const struct exif_ctx *x, char out[40])
{
    char dt[32], off[16];

    out[0] = '\0';
    if (!text(x, EXIF_IFD_EXIF, EXIF_TAG_DATE_TIME_ORIGINAL, dt, sizeof(dt)) || strlen(dt) != 19 ||
        !digits(dt, 4) || dt[4] != ':' || !digits(dt + 5, 2) || dt[7] != ':' ||
        !digits(dt + 8, 2) || dt[10] != ' ' || !digits(dt + 11, 2) || dt[13] != ':' ||
        !digits(dt + 14, 2) || dt[16] != ':' || !digits(dt + 17, 2) || strncmp(dt, "0000", 4) == 0)
        return 0;
    snprintf(out, 40, "%.4s-%.2s-%.2sT%.8s", dt, dt + 5, dt + 8, dt + 11);
    if (text(x, EXIF_IFD_EXIF, EXIF_TAG_OFFSET_TIME_ORIGINAL, off, sizeof(off)) &&
        strlen(off) == 6 && (off[0] == '+' || off[0] == '-') && digits(off + 1, 2) &&
        off[3] == ':' && digits(off + 4, 2))
        snprintf(out + 19, 21, "%s", off);
    return 1;
}

/* signed decimal degrees from degrees, minutes, seconds and the N/S or E/W reference */
static int gps_coord(const struct exif_ctx *x, unsigned tag, unsigned ref_tag, char negative,
                     double max, double *out)
{
    ExifRational d, m, s;
    char ref[8];

    if (!rational(x, EXIF_IFD_GPS, tag, 0, &d) || !rational(x, EXIF_IFD_GPS, tag, 1, &m) ||
        !rational(x, EXIF_IFD_GPS, tag, 2, &s))
        return 0;
    *out = ratio(d) + ratio(m) / 60.0 + ratio(s) / 3600.0;
    if (*out > max)
        return 0;
    if (text(x, EXIF_IFD_GPS, ref_tag, ref, sizeof(ref)) && ref[0] == negative)
        *out = -*out;
    *out = round_to(*out, 7);
    return 1;
}

static json_t *gps_json(const struct exif_ctx *x)
{
    double lat, lon;
    ExifRational alt;
    json_t *o;

    if (!gps_coord(x, EXIF_TAG_GPS_LATITUDE, EXIF_TAG_GPS_LATITUDE_REF, 'S', 90.0, &lat) ||
        !gps_coord(x, EXIF_TAG_GPS_LONGITUDE, EXIF_TAG_GPS_LONGITUDE_REF, 'W', 180.0, &lon))
        return json_null();
    o = json_object();
    json_object_set_new(o, "latitude", json_real(lat));
    json_object_set_new(o, "longitude", json_real(lon));
    if (rational(x, EXIF_IFD_GPS, EXIF_TAG_GPS_ALTITUDE, 0, &alt)) {
        const ExifEntry *ref = entry(x, EXIF_IFD_GPS, EXIF_TAG_GPS_ALTITUDE_REF);
        double m = round_to(ratio(alt), 2);
        if (ref && ref->data && ref->size >= 1 && ref->format == EXIF_FORMAT_BYTE &&
            ref->data[0] == 1)
            m = -m;
        json_object_set_new(o, "altitude_m", json_real(m));
    } else {
        json_object_set_new(o, "altitude_m", json_null());
    }
    return o;
}

json_t *media__exif_json(const unsigned char *blob, size_t n, char capture[40])
{
    static const unsigned char header[6] = {'E', 'x', 'i', 'f', 0, 0};
    unsigned char *copy = NULL;
    struct exif_ctx x;
    unsigned entries = 0;
    int64_t iso;
    json_t *o;

    capture[0] = '\0';
    if (n < 8 || n > MEDIA_MAX_EXIF)
        return json_null();
    /* PNG, WebP and HEIF hand over the TIFF structure alone; libexif wants the header */
    if (memcmp(blob, header, sizeof(header)) != 0) {
        copy = xmalloc(n + sizeof(header));
        memcpy(copy, header, sizeof(header));
        memcpy(copy + sizeof(header), blob, n);
        blob = copy;
        n += sizeof(header);
    }
    x.ed = exif_data_new();
    if (!x.ed) {
        free(copy);
        return json_null();
    }
    /* as read: no mandatory tags filled in with defaults, no unknown ones dropped */
    exif_data_unset_option(x.ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
    exif_data_unset_option(x.ed, EXIF_DATA_OPTION_IGNORE_UNKNOWN_TAGS);
    exif_data_load_data(x.ed, blob, (unsigned int)n);
    free(copy);
    x.bo = exif_data_get_byte_order(x.ed);
    for (int i = 0; i < EXIF_IFD_COUNT; i++)
        entries += x.ed->ifd[i] ? x.ed->ifd[i]->count : 0;
    if (entries == 0) {
        exif_data_unref(x.ed);
        return json_null();
    }

    o = json_object();
    json_object_set_new(o, "make", json_text(&x, EXIF_IFD_0, EXIF_TAG_MAKE));
    json_object_set_new(o, "model", json_text(&x, EXIF_IFD_0, EXIF_TAG_MODEL));
    json_object_set_new(o, "lens_model", json_text(&x, EXIF_IFD_EXIF, EXIF_TAG_LENS_MODEL));
    json_object_set_new(o, "software", json_text(&x, EXIF_IFD_0, EXIF_TAG_SOFTWARE));
    exposure(&x, o);
    json_object_set_new(o, "f_number", json_rational(&x, EXIF_IFD_EXIF, EXIF_TAG_FNUMBER, 2));
    iso = integer(&x, EXIF_IFD_EXIF, EXIF_TAG_ISO_SPEED_RATINGS);
    json_object_set_new(o, "iso", media__json_count(iso > 0 ? iso : -1));
    json_object_set_new(o, "focal_length_mm",
                        json_rational(&x, EXIF_IFD_EXIF, EXIF_TAG_FOCAL_LENGTH, 2));
    json_object_set_new(o, "capture_time",
                        capture_time(&x, capture) ? json_string(capture) : json_null());
    json_object_set_new(o, "gps", gps_json(&x));
    exif_data_unref(x.ed);
    return o;
}
