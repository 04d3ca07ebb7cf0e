#include "core.h"

#include <errno.h>
#include <string.h>

int err_vset(struct err *e, enum err_code c, const char *fmt, va_list ap)
{
    if (!e)
        return -1;
    e->code = c;
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    return -1;
}

int err_set(struct err *e, enum err_code c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    err_vset(e, c, fmt, ap);
    va_end(ap);
    return -1;
}

int err_errno(struct err *e, enum err_code c, const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    size_t len;

    if (!e)
        return -1;
    e->code = c;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    len = strlen(e->msg);
    if (len < sizeof(e->msg))
        snprintf(e->msg + len, sizeof(e->msg) - len, ": %s", strerror(saved));
    errno = saved;
    return -1;
}

void err_clear(struct err *e)
{
    e->code = ERR_OK;
    e->msg[0] = '\0';
}

const char *err_code_name(enum err_code c)
{
    switch (c) {
    case ERR_OK:
        return "ok";
    case ERR_INVALID:
        return "invalid";
    case ERR_UNAUTH:
        return "unauthenticated";
    case ERR_DENIED:
        return "denied";
    case ERR_NOTFOUND:
        return "not_found";
    case ERR_METHOD:
        return "method_not_allowed";
    case ERR_CONFLICT:
        return "conflict";
    case ERR_GONE:
        return "gone";
    case ERR_PRECONDITION:
        return "precondition_failed";
    case ERR_LIMIT:
        return "limit";
    case ERR_HEADERS:
        return "headers_too_large";
    case ERR_MEDIA_TYPE:
        return "unsupported_media_type";
    case ERR_UNPROCESSABLE:
        return "unprocessable";
    case ERR_RANGE:
        return "range";
    case ERR_UNSUPPORTED:
        return "unsupported";
    case ERR_IO:
        return "io";
    case ERR_BACKEND:
        return "backend";
    case ERR_NETWORK:
        return "network";
    case ERR_TIMEOUT:
        return "timeout";
    case ERR_VERSION:
        return "http_version";
    case ERR_BUSY:
        return "busy";
    case ERR_INTERNAL:
        return "internal";
    }
    return "internal";
}
