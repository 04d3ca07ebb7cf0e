/*
 * Fixture helpers shared by the media unit tests (static inline: each test file includes
 * this once and uses what it needs). The including file defines `static char dir[64]`, the
 * temporary directory the fixtures live in, before including it, after <cmocka.h> and
 * media/media_int.h.
 */
#ifndef ACERVO_TEST_MEDIA_FIXTURES_H
#define ACERVO_TEST_MEDIA_FIXTURES_H

/* Runs a shell command built from fmt; 0 if it exited 0. */
static inline int run(const char *fmt, ...) ATTR_PRINTF(1, 2);
static inline int run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "fixture command failed (%d): %s\n", rc, cmd);
    return rc == 0 ? 0 : -1;
}

/* The path of fixture name in dir. */
static inline void fixture(char *out, size_t n, const char *name)
{
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n)
        fail_msg("fixture path too long: %s", name);
}

/* The whole file at path, NUL-terminated (caller frees), or NULL. */
static inline char *slurp_path(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *p;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = xmalloc((size_t)n + 1);
    *len = fread(p, 1, (size_t)n, f);
    p[*len] = '\0';
    fclose(f);
    return p;
}

/* The whole fixture name (caller frees), or NULL. */
static inline char *slurp(const char *name, size_t *len)
{
    char path[128];

    fixture(path, sizeof(path), name);
    return slurp_path(path, len);
}

/* Writes fixture name. */
static inline int spit(const char *name, const void *data, size_t len)
{
    char path[128];
    FILE *f;
    size_t w;

    fixture(path, sizeof(path), name);
    f = fopen(path, "wb");
    if (!f)
        return -1;
    w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

static inline uint32_t crc32_png(const unsigned char *p, size_t n)
{
    uint32_t c = 0xffffffffu;

    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

static inline void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/*
 * A decompression bomb: a tiny, valid PNG (one small IDAT) whose header says width x
 * height pixels of 8-bit colour_type (0 greyscale, 2 RGB), written as fixture name.
 */
static inline int make_png_bomb(const char *name, uint32_t width, uint32_t height, int colour_type)
{
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    static const unsigned char idat[] = {0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01};
    unsigned char png[128];
    size_t n;

    memcpy(png, sig, 8);
    n = 8;
    put32(png + n, 13);
    memcpy(png + n + 4, "IHDR", 4);
    put32(png + n + 8, width);
    put32(png + n + 12, height);
    png[n + 16] = 8; /* bit depth */
    png[n + 17] = (unsigned char)colour_type;
    png[n + 18] = 0;
    png[n + 19] = 0;
    png[n + 20] = 0;
    put32(png + n + 21, crc32_png(png + n + 4, 17));
    n += 25;
    put32(png + n, sizeof(idat));
    memcpy(png + n + 4, "IDAT", 4);
    memcpy(png + n + 8, idat, sizeof(idat));
    put32(png + n + 8 + sizeof(idat), crc32_png(png + n + 4, 4 + sizeof(idat)));
    n += 12 + sizeof(idat);
    put32(png + n, 0);
    memcpy(png + n + 4, "IEND", 4);
    put32(png + n + 8, crc32_png(png + n + 4, 4));
    n += 12;
    return spit(name, png, n);
}

#endif
