/*
 * cmd_catalog: the commands that read and edit the catalog through the REST API: login,
 * whoami, show, ls, search, edit, jobs. Each prints a table (or one JSON document with
 * --json) and returns an exit code (enum cli_exit).
 */
#include "cli/cli_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

/* ---- output helpers ---------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));

    return s ? s : "";
}

/* prints j as JSON on stdout (--json) */
static void print_json(const json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

    if (s) {
        fputs(s, stdout);
        fputc('\n', stdout);
    }
    free(s);
}

/* a title cut to w display columns (UTF-8 aware), padded when pad */
static void print_cut(const char *s, int w, int pad)
{
    int cols = 0;
    const unsigned char *p = (const unsigned char *)s;

    while (*p && cols < w) {
        int n = *p < 0x80 ? 1 : *p < 0xE0 ? 2 : *p < 0xF0 ? 3 : 4;

        if (*p == '\n' || *p == '\t' || *p < 0x20) {
            fputc(' ', stdout);
            p++;
        } else {
            fwrite(p, 1, strnlen((const char *)p, (size_t)n), stdout);
            p += strnlen((const char *)p, (size_t)n);
        }
        cols++;
    }
    while (pad && cols++ < w)
        fputc(' ', stdout);
}

static void print_asset_line(const json_t *a)
{
    printf("%-36s  %-5s  %-10s  %.10s  ", jstr(a, "id"), jstr(a, "type"), jstr(a, "status"),
           jstr(a, "created_at"));
    print_cut(json_string_value(json_object_get(a, "title")) ? jstr(a, "title")
                                                             : jstr(a, "original_filename"),
              60, 0);
    fputc('\n', stdout);
}

/* ---- login, whoami ------------------------------------------------------------------------ */

/* the key from the terminal (not echoed) or from the first line of stdin */
static int read_key(char *out, size_t cap, struct err *err)
{
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO);

    if (tty) {
        fputs("API key: ", stderr);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)ECHO;
            (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        } else {
            tty = 0;
        }
    }
    if (!fgets(out, (int)cap, stdin))
        out[0] = '\0';
    if (tty) {
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    out[strcspn(out, "\r\n")] = '\0';
    if (!out[0])
        return cli__bad(err, "no API key given (--key KEY, or type it when asked)");
    return 0;
}

int cli__cmd_login(struct cli *c, int argc, char **argv, struct err *err)
{
    char key[512];
    json_t *me = NULL;
    int rc;

    if (argc != 2)
        return cli__usage(err, "acervo login URL [--key KEY]");
    free(c->server);
    c->server = xstrdup(argv[1]);
    {
        size_t n = strlen(c->server);

        while (n > 0 && c->server[n - 1] == '/')
            c->server[--n] = '\0';
    }
    if (strncmp(c->server, "http://", 7) != 0 && strncmp(c->server, "https://", 8) != 0)
        return cli__bad(err, "'%.200s' is not an http:// or https:// URL", c->server);
    if (!c->key_from_flag) {
        if (read_key(key, sizeof(key), err) < 0)
            return CLI__USAGE_RC;
        free(c->key);
        c->key = xstrdup(key);
    }
    rc = cli_call(c, "GET", "/api/v1/me", NULL, &me, err);
    if (rc < 0)
        return -1;
    if (cli_save(c, err) < 0) {
        json_decref(me);
        return -1;
    }
    if (c->json)
        print_json(me);
    else
        printf("logged in to %s as user %s (%s); settings in %s\n", c->server, jstr(me, "user_id"),
               jstr(me, "role"), c->config);
    json_decref(me);
    return 0;
}

int cli__cmd_whoami(struct cli *c, int argc, char **argv, struct err *err)
{
    json_t *me = NULL;

    (void)argv;
    if (argc != 1)
        return cli__usage(err, "acervo whoami");
    if (cli_call(c, "GET", "/api/v1/me", NULL, &me, err) < 0)
        return -1;
    if (c->json)
        print_json(me);
    else
        printf("user %s, role %s, key %s, at %s\n", jstr(me, "user_id"), jstr(me, "role"),
               jstr(me, "key_id"), c->server);
    json_decref(me);
    return 0;
}

/* ---- show, ls, search ---------------------------------------------------------------------- */

static int check_id(const char *id, struct err *err)
{
    if (!util_uuid_valid(id))
        return cli__bad(err, "'%.64s' is not an asset id (a UUID)", id);
    return 0;
}

int cli__cmd_show(struct cli *c, int argc, char **argv, struct err *err)
{
    char path[128];
    json_t *a = NULL, *r = NULL;
    char size[32];

    if (argc != 2)
        return cli__usage(err, "acervo show ID");
    if (check_id(argv[1], err) < 0)
        return CLI__USAGE_RC;
    (void)snprintf(path, sizeof(path), "/api/v1/assets/%s", argv[1]);
    if (cli_call(c, "GET", path, NULL, &a, err) < 0)
        return -1;
    (void)snprintf(path, sizeof(path), "/api/v1/assets/%s/renditions", argv[1]);
    if (cli_call(c, "GET", path, NULL, &r, err) < 0) {
        json_decref(a);
        return -1;
    }
    if (c->json) {
        json_object_set(a, "renditions", json_object_get(r, "items"));
        print_json(a);
    } else {
        const char *k;
        json_t *v;
        size_t i;

        cli__human_bytes(size, sizeof(size),
                         (double)json_integer_value(json_object_get(a, "file_size_bytes")));
        printf("id           %s\ntitle        %s\ntype         %s\nstatus       %s\n"
               "file         %s (%s, %s)\ncreated      %s\n",
               jstr(a, "id"), jstr(a, "title"), jstr(a, "type"), jstr(a, "status"),
               jstr(a, "original_filename"), jstr(a, "mime_type"), size, jstr(a, "created_at"));
        if (json_string_value(json_object_get(a, "description")))
            printf("description  %s\n", jstr(a, "description"));
        if (json_array_size(json_object_get(a, "tags"))) {
            fputs("tags        ", stdout);
            json_array_foreach(json_object_get(a, "tags"), i, v)
                printf(" %s", json_string_value(v) ? json_string_value(v) : "");
            fputc('\n', stdout);
        }
        if (json_integer_value(json_object_get(a, "duration_ms")))
            printf("duration     %.1f s\n",
                   (double)json_integer_value(json_object_get(a, "duration_ms")) / 1000);
        if (json_string_value(json_object_get(a, "content_hash")))
            printf("sha256       %s\n", jstr(a, "content_hash"));
        json_object_foreach(json_object_get(a, "editorial_metadata"), k, v)
        {
            char *s = json_is_string(v) ? NULL : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

            printf("meta         %s = %s\n", k, s ? s : json_string_value(v));
            free(s);
        }
        json_array_foreach(json_object_get(r, "items"), i, v)
        {
            cli__human_bytes(size, sizeof(size),
                             (double)json_integer_value(json_object_get(v, "file_size_bytes")));
            printf("rendition    %-12s %-9s %s\n", jstr(v, "profile_name"), jstr(v, "status"),
                   json_integer_value(json_object_get(v, "file_size_bytes")) ? size : "");
        }
    }
    json_decref(a);
    json_decref(r);
    return 0;
}

int cli__cmd_ls(struct cli *c, int argc, char **argv, struct err *err)
{
    const char *type = NULL, *status = NULL;
    long limit = 50;
    struct buf path;
    json_t *page = NULL, *v;
    size_t i;
    int rc = -1;

    for (int i2 = 1; i2 < argc; i2++) {
        if (strcmp(argv[i2], "--type") == 0 && i2 + 1 < argc)
            type = argv[++i2];
        else if (strcmp(argv[i2], "--status") == 0 && i2 + 1 < argc)
            status = argv[++i2];
        else if (strcmp(argv[i2], "--limit") == 0 && i2 + 1 < argc &&
                 cli__parse_long(argv[++i2], 1, 1000, &limit) == 0)
            continue;
        else
            return cli__usage(err, "acervo ls [--type video|audio|image] [--status S] "
                                   "[--limit 1..1000]");
    }
    buf_init(&path, 0);
    buf_addf(&path, NULL, "/api/v1/assets?limit=%ld", limit);
    if ((type && cli_query_add(&path, "type", type, err) < 0) ||
        (status && cli_query_add(&path, "status", status, err) < 0))
        goto out;
    if (cli_call(c, "GET", path.buf, NULL, &page, err) < 0)
        goto out;
    if (c->json)
        print_json(page);
    else
        json_array_foreach(json_object_get(page, "items"), i, v) print_asset_line(v);
    rc = 0;
out:
    json_decref(page);
    buf_release(&path);
    return rc;
}

int cli__cmd_search(struct cli *c, int argc, char **argv, struct err *err)
{
    const char *q = NULL, *type = NULL, *scope = "assets";
    long limit = 20;
    json_t *body, *res = NULL, *hits, *h;
    size_t i;

    for (int k = 1; k < argc; k++) {
        if (strcmp(argv[k], "--type") == 0 && k + 1 < argc)
            type = argv[++k];
        else if (strcmp(argv[k], "--limit") == 0 && k + 1 < argc &&
                 cli__parse_long(argv[++k], 1, 100, &limit) == 0)
            continue;
        else if (strcmp(argv[k], "--transcript") == 0)
            scope = "transcript";
        else if (!q && (argv[k][0] != '-' || argv[k][1] == '\0' || strchr(argv[k], ' ')))
            q = argv[k];
        else
            return cli__usage(err, "acervo search QUERY [--type video|audio|image] "
                                   "[--limit 1..100] [--transcript]");
    }
    if (!q)
        return cli__usage(err, "acervo search QUERY [--type video|audio|image] "
                               "[--limit 1..100] [--transcript]");
    body = json_pack("{s:s, s:I, s:s}", "q", q, "size", (json_int_t)limit, "scope", scope);
    if (type)
        json_object_set_new(body, "filters", json_pack("{s:[s]}", "type", type));
    if (cli_call(c, "POST", "/api/v1/search", body, &res, err) < 0) {
        json_decref(body);
        return -1;
    }
    json_decref(body);
    if (c->json) {
        print_json(res);
        json_decref(res);
        return 0;
    }
    hits = json_object_get(res, "hits");
    json_array_foreach(hits, i, h)
    {
        const json_t *a = json_object_get(h, "asset");

        if (strcmp(scope, "transcript") == 0) {
            json_int_t ms = json_integer_value(json_object_get(h, "start_ms"));

            printf("%-36s  %02lld:%02lld:%02lld  ", jstr(a, "id"), (long long)(ms / 3600000),
                   (long long)(ms / 60000 % 60), (long long)(ms / 1000 % 60));
            print_cut(jstr(h, "text"), 80, 0);
            fputc('\n', stdout);
        } else {
            print_asset_line(a);
        }
    }
    {
        const json_t *t = json_object_get(res, "total");

        printf("%s%lld %s\n", json_is_false(json_object_get(t, "exact")) ? "about " : "",
               (long long)json_integer_value(json_object_get(t, "value")),
               strcmp(scope, "transcript") == 0 ? "moments" : "assets");
    }
    json_decref(res);
    return 0;
}

/* ---- edit ------------------------------------------------------------------------------- */

int cli__cmd_edit(struct cli *c, int argc, char **argv, struct err *err)
{
    static const char usage[] = "acervo edit ID [--title T] [--description D] [--tag T ...] "
                                "[--no-tags] [--meta KEY=VALUE ...] [--language L]";
    json_t *patch = json_object(), *tags = NULL, *meta = NULL, *res = NULL;
    char path[128];
    int rc = -1;

    if (argc < 2 || argv[1][0] == '-') {
        rc = cli__usage(err, usage);
        goto out;
    }
    if (check_id(argv[1], err) < 0) {
        rc = CLI__USAGE_RC;
        goto out;
    }
    for (int k = 2; k < argc; k++) {
        const char *v = k + 1 < argc ? argv[k + 1] : NULL;

        if (strcmp(argv[k], "--no-tags") == 0) {
            if (!tags)
                tags = json_array();
            continue;
        }
        if (!v) {
            rc = cli__usage(err, usage);
            goto out;
        }
        k++;
        if (strcmp(argv[k - 1], "--title") == 0) {
            json_object_set_new(patch, "title", json_string(v));
        } else if (strcmp(argv[k - 1], "--description") == 0) {
            json_object_set_new(patch, "description", json_string(v));
        } else if (strcmp(argv[k - 1], "--language") == 0) {
            json_object_set_new(patch, "language", v[0] ? json_string(v) : json_null());
        } else if (strcmp(argv[k - 1], "--tag") == 0) {
            if (!tags)
                tags = json_array();
            json_array_append_new(tags, json_string(v));
        } else if (strcmp(argv[k - 1], "--meta") == 0) {
            if (cli__meta_add(&meta, v, err) < 0) {
                rc = CLI__USAGE_RC;
                goto out;
            }
        } else {
            rc = cli__usage(err, usage);
            goto out;
        }
    }
    if (tags)
        json_object_set(patch, "tags", tags);
    if (meta)
        json_object_set(patch, "editorial_metadata", meta);
    if (json_object_size(patch) == 0) {
        rc = cli__usage(err, usage);
        goto out;
    }
    (void)snprintf(path, sizeof(path), "/api/v1/assets/%s", argv[1]);
    if (cli_call(c, "PATCH", path, patch, &res, err) < 0)
        goto out;
    if (c->json)
        print_json(res);
    else
        print_asset_line(res);
    rc = 0;
out:
    json_decref(patch);
    json_decref(tags);
    json_decref(meta);
    json_decref(res);
    return rc;
}

/* ---- jobs ------------------------------------------------------------------------------- */

int cli__cmd_jobs(struct cli *c, int argc, char **argv, struct err *err)
{
    struct buf path;
    json_t *list = NULL, *w;
    size_t i;
    int rc = -1;

    if (argc != 2)
        return cli__usage(err, "acervo jobs ID");
    if (check_id(argv[1], err) < 0)
        return CLI__USAGE_RC;
    buf_init(&path, 0);
    buf_adds(&path, "/api/v1/workflows?limit=100", NULL);
    if (cli_query_add(&path, "asset_id", argv[1], err) < 0 ||
        cli_call(c, "GET", path.buf, NULL, &list, err) < 0)
        goto out;
    if (c->json) {
        json_t *all = json_array();

        json_array_foreach(json_object_get(list, "items"), i, w)
        {
            char p[128];
            json_t *one = NULL;

            (void)snprintf(p, sizeof(p), "/api/v1/workflows/%s", jstr(w, "id"));
            if (cli_call(c, "GET", p, NULL, &one, err) < 0) {
                json_decref(all);
                goto out;
            }
            json_object_del(one, "history");
            json_array_append_new(all, one);
        }
        print_json(all);
        json_decref(all);
        rc = 0;
        goto out;
    }
    if (json_array_size(json_object_get(list, "items")) == 0)
        printf("no workflows for asset %s\n", argv[1]);
    json_array_foreach(json_object_get(list, "items"), i, w)
    {
        char p[128];
        json_t *one = NULL, *s;
        size_t k;

        (void)snprintf(p, sizeof(p), "/api/v1/workflows/%s", jstr(w, "id"));
        if (cli_call(c, "GET", p, NULL, &one, err) < 0)
            goto out;
        printf("%s  %-12s %-10s %s%s%s\n", jstr(one, "id"), jstr(one, "type"), jstr(one, "status"),
               jstr(one, "created_at"),
               json_string_value(json_object_get(one, "error")) ? "  " : "", jstr(one, "error"));
        json_array_foreach(json_object_get(one, "steps"), k, s)
            printf("    %-20s %-10s %lld/%lld\n", jstr(s, "name"), jstr(s, "status"),
                   (long long)json_integer_value(json_object_get(s, "jobs_done")),
                   (long long)json_integer_value(json_object_get(s, "jobs_total")));
        json_decref(one);
    }
    rc = 0;
out:
    json_decref(list);
    buf_release(&path);
    return rc;
}
