#include "http/http_int.h"

#include <string.h>

/* matches path against pattern; fills params; 1 on match */
static int match(struct http_req *req, const char *pattern, const char *path, const char **params)
{
    int np = 0;

    while (*pattern && *path) {
        if (*pattern != '/' || *path != '/')
            return 0;
        pattern++;
        path++;
        {
            const char *pe = strchr(pattern, '/');
            const char *se = strchr(path, '/');
            size_t pl = pe ? (size_t)(pe - pattern) : strlen(pattern);
            size_t sl = se ? (size_t)(se - path) : strlen(path);

            if (pl >= 2 && pattern[0] == '{' && pattern[pl - 1] == '}') {
                char *v;
                if (sl == 0 || np >= 4)
                    return 0;
                v = http__pct_decode(&req->arena, path, sl, HTTP_PCT_SEGMENT);
                if (!v)
                    return 0;
                params[np++] = v;
            } else if (pl != sl || memcmp(pattern, path, pl) != 0) {
                return 0;
            }
            pattern += pl;
            path += sl;
        }
    }
    return *pattern == '\0' && *path == '\0';
}

const struct http_route *http_route_find(struct http_req *req, const struct http_route *routes,
                                         size_t n, const char **params, int *path_matched)
{
    *path_matched = 0;
    for (size_t i = 0; i < n; i++) {
        const char *tmp[4] = {0};
        if (!match(req, routes[i].pattern, req->path, tmp))
            continue;
        *path_matched = 1;
        if (strcmp(routes[i].method, req->method) == 0 ||
            (strcmp(routes[i].method, "GET") == 0 && strcmp(req->method, "HEAD") == 0)) {
            memcpy(params, tmp, sizeof(tmp));
            return &routes[i];
        }
    }
    return NULL;
}

char *http__pct_decode(struct arena *a, const char *s, size_t n, enum http__pct_mode mode)
{
    char *out = arena_alloc(a, n + 1);
    size_t j = 0;

    for (size_t i = 0; i < n; i++) {
        int h, l;

        if (s[i] == '+' && mode == HTTP_PCT_FORM) {
            out[j++] = ' ';
            continue;
        }
        if (s[i] != '%') {
            out[j++] = s[i];
            continue;
        }
        if (i + 2 >= n)
            return NULL;
        h = util_hexval((unsigned char)s[i + 1]);
        l = util_hexval((unsigned char)s[i + 2]);
        if (h < 0 || l < 0 || (h == 0 && l == 0))
            return NULL;
        out[j] = (char)(h * 16 + l);
        if (out[j] == '/' && mode == HTTP_PCT_SEGMENT)
            return NULL;
        j++;
        i += 2;
    }
    out[j] = '\0';
    return out;
}
