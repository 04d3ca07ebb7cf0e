#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void util_random(void *p, size_t n)
{
    unsigned char *q = p;

    while (n > 0) {
        ssize_t r = getrandom(q, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            abort();
        }
        q += r;
        n -= (size_t)r;
    }
}

int util_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void util_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void util_token_hex(char *out, size_t nbytes)
{
    unsigned char raw[64];

    if (nbytes > sizeof(raw))
        nbytes = sizeof(raw);
    util_random(raw, nbytes);
    util_hex(raw, nbytes, out);
}

void util_uuid7(char out[37])
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static uint64_t last_ms;
    static unsigned seq;
    unsigned char b[16];
    uint64_t ms = (uint64_t)util_now_ms();
    unsigned mine;
    char hex[33];

    /* monotonic within the process: ids made in the same millisecond count up in the
     * 12-bit rand_a field (RFC 9562 method 1), so id order is creation order */
    pthread_mutex_lock(&lock);
    if (ms <= last_ms) {
        seq++;
        if (seq > 0xfff) {
            last_ms++;
            seq = 0;
        }
        ms = last_ms;
    } else {
        last_ms = ms;
        seq = 0;
    }
    mine = seq; /* read under the lock: another thread may bump it right after */
    pthread_mutex_unlock(&lock);
    util_random(b, sizeof(b));
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | ((mine >> 8) & 0x0f));
    b[7] = (unsigned char)(mine & 0xff);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    util_hex(b, 16, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

int util_uuid_valid(const char *s)
{
    size_t i;

    for (i = 0; s[i]; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return i == 36;
}

int util_streq_ct(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = (unsigned char)(la != lb);
    size_t n = la < lb ? la : lb;

    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int64_t util_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void to_tm(int64_t t, struct tm *tm)
{
    time_t tt = (time_t)t;

    gmtime_r(&tt, tm);
}

void util_time_rfc3339(int64_t t, char out[32])
{
    struct tm tm;

    to_tm(t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void util_time_rfc3339_ms(int64_t ms, char out[32])
{
    struct tm tm;
    char base[24];

    to_tm(ms / 1000, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}

static const char *const wdays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

void util_time_http(int64_t t, char out[40])
{
    struct tm tm;

    to_tm(t, &tm);
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

int util_time_http_parse(const char *s, int64_t *out)
{
    char wd[4], mon[4], zone[4];
    int day, year, h, m, sec, consumed = 0;
    struct tm tm;

    if (sscanf(s, "%3s, %d %3s %d %d:%d:%d %3s%n", wd, &day, mon, &year, &h, &m, &sec, zone,
               &consumed) != 8 ||
        strcmp(zone, "GMT") != 0 || s[consumed] != '\0')
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_mon = -1;
    for (int i = 0; i < 12; i++)
        if (strcmp(mon, months[i]) == 0)
            tm.tm_mon = i;
    if (tm.tm_mon < 0 || day < 1 || day > 31 || h > 23 || m > 59 || sec > 60 || year < 1970)
        return -1;
    tm.tm_mday = day;
    tm.tm_year = year - 1900;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    *out = (int64_t)timegm(&tm);
    return 0;
}

int util_time_iso_parse(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, sec, n = 0;
    struct tm tm;

    if (sscanf(s, "%4d%2d%2dT%2d%2d%2dZ%n", &y, &mo, &d, &h, &mi, &sec, &n) == 6 && n == 16 &&
        s[n] == '\0')
        goto ok;
    n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) == 6 && n == 19) {
        const char *rest = s + n;
        if (*rest == '.') {
            rest++;
            while (*rest >= '0' && *rest <= '9')
                rest++;
        }
        if (strcmp(rest, "Z") == 0 || strcmp(rest, "+00:00") == 0)
            goto ok;
    }
    return -1;
ok:
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -1;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *out = (int64_t)timegm(&tm);
    return 0;
}

int util_parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

int util_utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
    unsigned char c = s[*i];
    size_t n;
    uint32_t v, min;

    if (c < 0x80) {
        *cp = c;
        (*i)++;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        goto bad;
    }
    if (*i + n > len)
        goto bad;
    for (size_t k = 1; k < n; k++) {
        if ((s[*i + k] & 0xc0) != 0x80)
            goto bad;
        v = (v << 6) | (s[*i + k] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        goto bad;
    *cp = v;
    *i += n;
    return 1;
bad:
    (*i)++;
    return 0;
}

int util_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    uint32_t cp;

    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if (!util_utf8_next(p, n, &i, &cp))
            return 0;
    }
    return 1;
}

void util_sha256_hex(const void *data, size_t n, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;

    EVP_Digest(data, n, md, &len, EVP_sha256(), NULL);
    util_hex(md, 32, out);
}

void util_hmac_sha256(const void *key, size_t klen, const void *data, size_t n,
                      unsigned char out[32])
{
    unsigned int len = 32;

    HMAC(EVP_sha256(), key, (int)klen, data, n, out, &len);
}

void util_base64(const unsigned char *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

int util_write_all(int fd, const void *p, size_t n, struct err *err)
{
    const char *q = p;

    while (n > 0) {
        ssize_t w = write(fd, q, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return err_errno(err, ERR_IO, "write failed");
        }
        q += w;
        n -= (size_t)w;
    }
    return 0;
}

int util_fsync_dir(const char *path, struct err *err)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return err_errno(err, ERR_IO, "open directory %s", path);
    if (fsync(fd) < 0) {
        err_errno(err, ERR_IO, "fsync directory %s", path);
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int util_mkdirs(const char *path, struct err *err)
{
    char tmp[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(tmp))
        return err_set(err, ERR_INVALID, "bad directory path");
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
            return err_errno(err, ERR_IO, "mkdir %s", tmp);
        *p = '/';
    }
    if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
        return err_errno(err, ERR_IO, "mkdir %s", tmp);
    return 0;
}

/* ---- the process title --------------------------------------------------------------------
 *
 * As PostgreSQL's ps_status.c does: `ps` reads the command line from the memory that held
 * argv's strings, so a title written there shows as the whole command line. The
 * environment's strings usually follow argv's; they are copied to the heap so their room
 * can hold a longer title.
 */

extern char **environ;

static char *title_area;  /* argv[0] .. the end of the last contiguous string */
static size_t title_size; /* bytes there */

void util_proc_title_init(int argc, char **argv)
{
    char *end;

    if (argc < 1 || !argv || !argv[0])
        return;
    end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc; i++) {
        if (argv[i] != end)
            break;
        end = argv[i] + strlen(argv[i]) + 1;
    }
    for (size_t i = 0; environ && environ[i]; i++) {
        if (environ[i] != end)
            break;
        end = environ[i] + strlen(environ[i]) + 1;
    }
    if (environ && end > argv[argc - 1] + strlen(argv[argc - 1]) + 1) {
        /* the environment shares the area: give it a home of its own first */
        size_t n = 0;
        char **copy;

        while (environ[n])
            n++;
        copy = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            copy[i] = xstrdup(environ[i]);
        environ = copy;
    }
    title_area = argv[0];
    title_size = (size_t)(end - argv[0]);
}

void util_proc_title_set(const char *title, const char *comm)
{
    char name[16];

    if (title_area && title_size > 1) {
        size_t n = strlen(title);

        if (n > title_size - 1)
            n = title_size - 1;
        memcpy(title_area, title, n);
        /* the rest zeroed: ps shows no trace of the old arguments */
        memset(title_area + n, 0, title_size - n);
    }
    snprintf(name, sizeof(name), "%s", comm ? comm : title);
    prctl(PR_SET_NAME, name, 0, 0, 0);
}
