/* Internals shared by the files of the http module. */
#ifndef ACERVO_HTTP_INT_H
#define ACERVO_HTTP_INT_H

#include "http/http.h"

/** How http__pct_decode treats the text. */
enum http__pct_mode {
    HTTP_PCT_SEGMENT, /* a path segment: a decoded '/' is refused */
    HTTP_PCT_FORM,    /* a query value: '+' is a space */
    HTTP_PCT_QUERY,   /* a query value: '+' is a plus */
};

/**
 * Percent-decodes n bytes of s into the arena. NULL on a malformed escape or a decoded
 * NUL (and, for a path segment, a decoded '/'). Valid until the arena is released.
 */
char *http__pct_decode(struct arena *a, const char *s, size_t n, enum http__pct_mode mode);

#endif
