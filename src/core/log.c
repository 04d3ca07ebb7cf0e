#include "core.h"

#include <pthread.h>
#include <string.h>
#include <unistd.h>

static enum log_level log_min = LOG_INFO;
static int log_json = 1;
static int log_fd = 2;
static _Thread_local char log_ctx[64];

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(enum log_level min, int json, int fd)
{
    log_min = min;
    log_json = json;
    log_fd = fd;
}

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < ARRAY_LEN(level_names); i++)
        if (strcmp(s, level_names[i]) == 0)
            return (int)i;
    return -1;
}

void log_ctx_set(const char *id)
{
    if (!id) {
        log_ctx[0] = '\0';
        return;
    }
    snprintf(log_ctx, sizeof(log_ctx), "%s", id);
}

const char *log_ctx_get(void)
{
    return log_ctx[0] ? log_ctx : NULL;
}

/* appends s JSON-escaped into out[*len..cap) */
static void json_escape(char *out, size_t *len, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    for (; *s && *len + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[(*len)++] = '\\';
            out[(*len)++] = (char)c;
        } else if (c == '\n') {
            out[(*len)++] = '\\';
            out[(*len)++] = 'n';
        } else if (c < 0x20) {
            out[(*len)++] = '\\';
            out[(*len)++] = 'u';
            out[(*len)++] = '0';
            out[(*len)++] = '0';
            out[(*len)++] = hex[c >> 4];
            out[(*len)++] = hex[c & 15];
        } else {
            out[(*len)++] = (char)c;
        }
    }
}

void log_write(enum log_level level, const char *module, const char *fmt, ...)
{
    char msg[1024];
    char line[2048];
    char ts[32];
    size_t len = 0;
    va_list ap;
    int n;

    if (level < log_min)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    util_time_rfc3339_ms(util_now_ms(), ts);

    if (log_json) {
        n = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"pid\":%d,\"module\":\"",
                     ts, level_names[level], (int)getpid());
        len = (size_t)n;
        json_escape(line, &len, sizeof(line), module);
        if (log_ctx[0]) {
            memcpy(line + len, "\",\"id\":\"", 8);
            len += 8;
            json_escape(line, &len, sizeof(line), log_ctx);
        }
        memcpy(line + len, "\",\"msg\":\"", 9);
        len += 9;
        json_escape(line, &len, sizeof(line) - 3, msg);
        line[len++] = '"';
        line[len++] = '}';
        line[len++] = '\n';
    } else {
        n = snprintf(line, sizeof(line), "%s %-5s %s%s%s%s: %s\n", ts, level_names[level], module,
                     log_ctx[0] ? " [" : "", log_ctx, log_ctx[0] ? "]" : "", msg);
        len = n < 0 ? 0 : (size_t)n;
        if (len >= sizeof(line)) {
            len = sizeof(line) - 1;
            line[len - 1] = '\n';
        }
    }
    /* one write(2) per line: lines from many threads and processes never interleave */
    ssize_t w = write(log_fd, line, len);
    (void)w;
}
