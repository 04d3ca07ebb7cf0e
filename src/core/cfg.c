#include "core.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define S(field) offsetof(struct cfg, field), sizeof(((struct cfg *)0)->field)
#define L(field) offsetof(struct cfg, field), 0

const struct cfg_entry cfg_table[] = {
    {"config", "ACERVO_CONFIG", CFG_STR, "", S(config_file),
     "configuration file (key = value lines); default DATA_DIR/acervo.conf if present"},
    {"data_dir", "ACERVO_DATA_DIR", CFG_STR, "./var", S(data_dir),
     "directory holding the catalog and the object store"},
    {"listen", "ACERVO_LISTEN", CFG_STR, "127.0.0.1:8080", S(listen), "HOST:PORT of the REST API"},
    {"s3_listen", "ACERVO_S3_LISTEN", CFG_STR, "127.0.0.1:8081", S(s3_listen),
     "HOST:PORT of the S3-compatible endpoint"},
    {"public_url", "ACERVO_PUBLIC_URL", CFG_STR, "", S(public_url),
     "base URL clients reach the API at (default http://LISTEN)"},
    {"s3_public_url", "ACERVO_S3_PUBLIC_URL", CFG_STR, "", S(s3_public_url),
     "base URL presigned S3 URLs point at (default http://S3_LISTEN)"},
    {"s3_region", "ACERVO_S3_REGION", CFG_STR, "us-east-1", S(s3_region),
     "region name the S3 endpoint signs with"},
    {"log_level", "ACERVO_LOG_LEVEL", CFG_STR, "info", S(log_level), "debug, info, warn or error"},
    {"log_format", "ACERVO_LOG_FORMAT", CFG_STR, "json", S(log_format),
     "json (one object a line) or text"},
    {"role", "ACERVO_ROLE", CFG_STR, "all", S(role),
     "process role: all (supervisor + api + workers), api (one API process, no supervisor) "
     "or worker (supervisor + workers only)"},
    {"workers", "ACERVO_WORKERS", CFG_LONG, "1", L(workers),
     "worker processes the supervisor runs (role all or worker)"},
    {"queues", "ACERVO_QUEUES", CFG_STR,
     "ingest:8,transcode:1,transcode-interactive:1,ai-enrich:1,distribution:32", S(queues),
     "task queues each worker process serves, with its concurrency per queue"},
    {"job_lease", "ACERVO_JOB_LEASE", CFG_DURATION, "30s", L(job_lease),
     "lease of a running job; heartbeats renew it every tenth of it, and a job whose worker "
     "stops heartbeating runs again once it expires"},
    {"search_concurrency", "ACERVO_SEARCH_CONCURRENCY", CFG_LONG, "0", L(search_concurrency),
     "searches the API runs at once (0: one per CPU); more wait their turn, so many searching "
     "clients neither starve other requests of CPU nor multiply memory"},
    {"search_queue_timeout", "ACERVO_SEARCH_QUEUE_TIMEOUT", CFG_DURATION, "10s",
     L(search_queue_timeout),
     "longest a search waits for its turn; after that it is answered 503 with Retry-After"},
    {"worker_nice", "ACERVO_WORKER_NICE", CFG_LONG, "10", L(worker_nice),
     "niceness of worker processes and their media children (0..19): when both want the CPU, "
     "the API answers first and batch work takes what is left"},
    {"diagnostics", "ACERVO_DIAGNOSTICS", CFG_LONG, "0", L(diagnostics),
     "1 lets admins start diagnostic workflows (no-op, sleep, fail) to check the engine"},
    {"catalog_cache", "ACERVO_CATALOG_CACHE", CFG_SIZE, "256M", L(catalog_cache),
     "page cache of each catalog connection, filled as searches read the index (SQLite maps "
     "only the first 2 GiB of the catalog file)"},
    {"catalog_memory", "ACERVO_CATALOG_MEMORY", CFG_SIZE, "64M", L(catalog_memory),
     "memory SQLite may hold in each acervod process, the page caches of all its catalog "
     "connections together: near it, caches recycle their pages instead of growing (0: no "
     "limit); a catalog larger than the 2 GiB SQLite maps adds what lies past the map, up to "
     "catalog_cache"},
    {"probe_timeout", "ACERVO_PROBE_TIMEOUT", CFG_DURATION, "2m", L(probe_timeout),
     "longest a media probe of one file may run before it is killed"},
    {"probe_memory", "ACERVO_PROBE_MEMORY", CFG_SIZE, "2G", L(probe_memory),
     "address-space limit of a media probe process"},
    {"max_media_duration", "ACERVO_MAX_MEDIA_DURATION", CFG_DURATION, "24h", L(max_media_duration),
     "longest video or audio master accepted; a longer one fails its ingest at the probe"},
    {"max_video_pixels", "ACERVO_MAX_VIDEO_PIXELS", CFG_LONG, "35389440", L(max_video_pixels),
     "most pixels (width x height) of a video master's picture (default 8192x4320)"},
    {"max_image_pixels", "ACERVO_MAX_IMAGE_PIXELS", CFG_LONG, "1000000000", L(max_image_pixels),
     "most pixels (width x height) an image master may declare (decompression bombs are "
     "refused from the header, before any pixel is decoded); at most 1000000000"},
    {"ondemand_ttl", "ACERVO_ONDEMAND_TTL", CFG_DURATION, "2d", L(ondemand_ttl),
     "how long an on-demand rendition (POST /api/v1/assets/{id}/renditions) is kept"},
    {"max_connections", "ACERVO_MAX_CONNECTIONS", CFG_LONG, "1024", L(max_connections),
     "open connections per listener (each has its own thread); beyond it, and beyond the "
     "per-address limit, a connection is answered 503 with Retry-After"},
    {"max_connections_per_address", "ACERVO_MAX_CONNECTIONS_PER_ADDRESS", CFG_LONG, "256",
     L(max_connections_per_address),
     "open connections per listener from one client address (IPv6: one /64); the last "
     "eighth of max_connections goes only to addresses holding under an eighth of this"},
    {"header_timeout", "ACERVO_HEADER_TIMEOUT", CFG_DURATION, "20s", L(header_timeout),
     "time a client has to send a request's line and headers, from its first byte (from "
     "the connection's start for its first request), however it trickles them"},
    {"body_timeout", "ACERVO_BODY_TIMEOUT", CFG_DURATION, "20s", L(body_timeout),
     "grace a request body gets before it must keep up body_min_rate on average"},
    {"body_min_rate", "ACERVO_BODY_MIN_RATE", CFG_SIZE, "500", L(body_min_rate),
     "bytes per second a request body must average after body_timeout (408 otherwise)"},
    {"idle_timeout", "ACERVO_IDLE_TIMEOUT", CFG_DURATION, "60s", L(idle_timeout),
     "time a keep-alive connection waits for its next request, and the longest a body or "
     "a response may make no progress"},
    {"max_json_body", "ACERVO_MAX_JSON_BODY", CFG_SIZE, "1M", L(max_json_body),
     "largest JSON request body accepted"},
    {"max_header_bytes", "ACERVO_MAX_HEADER_BYTES", CFG_SIZE, "24K", L(max_header_bytes),
     "largest request line plus headers accepted"},
    {"max_object_size", "ACERVO_MAX_OBJECT_SIZE", CFG_SIZE, "5G", L(max_object_size),
     "largest single PUT or part accepted"},
    {"min_part_size", "ACERVO_MIN_PART_SIZE", CFG_SIZE, "5M", L(min_part_size),
     "smallest part allowed but the last in a multipart upload"},
    {"part_size", "ACERVO_PART_SIZE", CFG_SIZE, "16M", L(part_size),
     "part size the upload flow starts from (grown so no upload needs over 10000 parts)"},
    {"presign_ttl", "ACERVO_PRESIGN_TTL", CFG_DURATION, "15m", L(presign_ttl),
     "lifetime of presigned URLs"},
    {"clock_skew", "ACERVO_CLOCK_SKEW", CFG_DURATION, "15m", L(clock_skew),
     "largest difference allowed between a signature's time and ours"},
    {"upload_ttl", "ACERVO_UPLOAD_TTL", CFG_DURATION, "7d", L(upload_ttl),
     "how long an incomplete upload is kept before it is swept"},
    {"sweep_interval", "ACERVO_SWEEP_INTERVAL", CFG_DURATION, "1h", L(sweep_interval),
     "time between sweeps of expired incomplete uploads"},
    {"shutdown_grace", "ACERVO_SHUTDOWN_GRACE", CFG_DURATION, "30s", L(shutdown_grace),
     "time in-flight requests get to finish on SIGTERM"},
    {"restart_reset", "ACERVO_RESTART_RESET", CFG_DURATION, "30s", L(restart_reset),
     "time a restarted API or worker process must stay up before its restart delay goes back to "
     "1 s"},
    {"sendfile_threshold", "ACERVO_SENDFILE_THRESHOLD", CFG_SIZE, "64K", L(sendfile_threshold),
     "objects smaller than this are served from memory rather than with sendfile"},
};

const size_t cfg_table_len = ARRAY_LEN(cfg_table);

static const struct cfg_entry *cfg_find(const char *name)
{
    for (size_t i = 0; i < cfg_table_len; i++)
        if (strcmp(cfg_table[i].name, name) == 0)
            return &cfg_table[i];
    return NULL;
}

/* a unit a number may carry, and what it multiplies by */
struct cfg_unit {
    const char *suffix;
    long mult;
};

static const struct cfg_unit size_units[] = {
    {"", 1},           {"K", 1L << 10},   {"KB", 1L << 10},  {"KiB", 1L << 10}, {"k", 1L << 10},
    {"M", 1L << 20},   {"MB", 1L << 20},  {"MiB", 1L << 20}, {"m", 1L << 20},   {"G", 1L << 30},
    {"GB", 1L << 30},  {"GiB", 1L << 30}, {"g", 1L << 30},   {"T", 1L << 40},   {"TB", 1L << 40},
    {"TiB", 1L << 40}, {"t", 1L << 40},   {NULL, 0},
};

static const struct cfg_unit duration_units[] = {
    {"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {NULL, 0},
};

/* a non-negative decimal number followed by one of units; -1 if malformed or too big */
static int parse_scaled(const char *s, const struct cfg_unit *units, long *out)
{
    char *end;
    long v;

    errno = 0;
    if (!*s || !isdigit((unsigned char)*s))
        return -1;
    v = strtol(s, &end, 10);
    if (errno)
        return -1;
    for (const struct cfg_unit *u = units; u->suffix; u++) {
        if (strcmp(end, u->suffix) != 0)
            continue;
        if (v > LONG_MAX / u->mult)
            return -1;
        *out = v * u->mult;
        return 0;
    }
    return -1;
}

int cfg_parse_size(const char *s, long *out)
{
    return parse_scaled(s, size_units, out);
}

int cfg_parse_duration(const char *s, long *out)
{
    return parse_scaled(s, duration_units, out);
}

static int cfg_apply(struct cfg *c, const struct cfg_entry *e, const char *value, struct err *err)
{
    char *p = (char *)c + e->offset;
    long v;

    switch (e->type) {
    case CFG_STR:
        if (strlen(value) >= e->size)
            return err_set(err, ERR_INVALID, "%s: value longer than %zu bytes", e->name,
                           e->size - 1);
        memcpy(p, value, strlen(value) + 1);
        return 0;
    case CFG_LONG:
        if (cfg_parse_size(value, &v) < 0 || strpbrk(value, "KMGTkmgt"))
            return err_set(err, ERR_INVALID, "%s: '%s' is not a number", e->name, value);
        break;
    case CFG_SIZE:
        if (cfg_parse_size(value, &v) < 0)
            return err_set(err, ERR_INVALID, "%s: '%s' is not a size (like 64K, 5M, 1G)", e->name,
                           value);
        break;
    case CFG_DURATION:
        if (cfg_parse_duration(value, &v) < 0)
            return err_set(err, ERR_INVALID, "%s: '%s' is not a duration (like 30s, 15m, 7d)",
                           e->name, value);
        break;
    default:
        return err_set(err, ERR_INTERNAL, "%s: bad type", e->name);
    }
    memcpy(p, &v, sizeof(v));
    return 0;
}

int cfg_set(struct cfg *c, const char *name, const char *value, struct err *err)
{
    const struct cfg_entry *e = cfg_find(name);

    if (!e)
        return err_set(err, ERR_INVALID, "unknown setting '%s'", name);
    return cfg_apply(c, e, value, err);
}

void cfg_defaults(struct cfg *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < cfg_table_len; i++)
        cfg_apply(c, &cfg_table[i], cfg_table[i].def, NULL);
}

static char *trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static int cfg_load_file(struct cfg *c, const char *path, int must_exist, struct err *err)
{
    FILE *f = fopen(path, "r");
    char line[1024];
    int lineno = 0;

    if (!f) {
        if (!must_exist && errno == ENOENT)
            return 0;
        return err_errno(err, ERR_INVALID, "cannot read config file %s", path);
    }
    while (fgets(line, sizeof(line), f)) {
        char *s = trim(line), *eq, *key, *val;
        lineno++;
        if (*s == '\0' || *s == '#')
            continue;
        eq = strchr(s, '=');
        if (!eq) {
            fclose(f);
            return err_set(err, ERR_INVALID, "%s:%d: expected 'key = value'", path, lineno);
        }
        *eq = '\0';
        key = trim(s);
        val = trim(eq + 1);
        if (strcmp(key, "config") == 0 || cfg_set(c, key, val, err) < 0) {
            fclose(f);
            if (strcmp(key, "config") == 0)
                return err_set(err, ERR_INVALID, "%s:%d: 'config' cannot be set in a file", path,
                               lineno);
            {
                char msg[sizeof(err->msg)];
                snprintf(msg, sizeof(msg), "%s", err->msg);
                return err_set(err, ERR_INVALID, "%s:%d: %s", path, lineno, msg);
            }
        }
    }
    fclose(f);
    return 0;
}

/* matches argv[i] against --name / --name=value; returns the entry or NULL */
static const struct cfg_entry *flag_match(const char *arg, const char **value)
{
    char name[64];
    const char *eq;
    size_t n;

    if (strncmp(arg, "--", 2) != 0)
        return NULL;
    arg += 2;
    eq = strchr(arg, '=');
    n = eq ? (size_t)(eq - arg) : strlen(arg);
    if (n >= sizeof(name))
        return NULL;
    for (size_t i = 0; i < n; i++)
        name[i] = arg[i] == '-' ? '_' : arg[i];
    name[n] = '\0';
    *value = eq ? eq + 1 : NULL;
    return cfg_find(name);
}

int cfg_load(struct cfg *c, int argc, char **argv, int *optind, struct err *err)
{
    struct cfg flags;
    const char *file = NULL;
    int i;

    cfg_defaults(c);
    /* first pass: find --config and --data-dir so the file can be located */
    cfg_defaults(&flags);
    for (i = *optind; i < argc; i++) {
        const char *value;
        const struct cfg_entry *e = flag_match(argv[i], &value);
        if (!e)
            break;
        if (!value) {
            if (i + 1 >= argc)
                return err_set(err, ERR_INVALID, "%s needs a value", argv[i]);
            value = argv[++i];
        }
        if (cfg_apply(&flags, e, value, err) < 0)
            return -1;
    }

    if (flags.config_file[0])
        file = flags.config_file;
    else if (getenv("ACERVO_CONFIG") && *getenv("ACERVO_CONFIG"))
        file = getenv("ACERVO_CONFIG");
    if (file) {
        if (cfg_load_file(c, file, 1, err) < 0)
            return -1;
        snprintf(c->config_file, sizeof(c->config_file), "%s", file);
    }

    for (size_t k = 0; k < cfg_table_len; k++) {
        const char *v = getenv(cfg_table[k].env);
        if (v && *v && cfg_apply(c, &cfg_table[k], v, err) < 0)
            return -1;
    }

    /* second pass: flags win over everything */
    for (i = *optind; i < argc; i++) {
        const char *value;
        const struct cfg_entry *e = flag_match(argv[i], &value);
        if (!e)
            break;
        if (!value)
            value = argv[++i];
        cfg_apply(c, e, value, NULL);
    }
    *optind = i;

    if (!file) {
        /* the data dir's own file, read under environment and flags */
        char path[600];
        struct cfg over = *c;
        snprintf(path, sizeof(path), "%s/acervo.conf", c->data_dir);
        cfg_defaults(c);
        if (cfg_load_file(c, path, 0, err) < 0)
            return -1;
        for (size_t k = 0; k < cfg_table_len; k++) {
            const struct cfg_entry *e = &cfg_table[k];
            struct cfg def;
            cfg_defaults(&def);
            /* anything environment or flags set (differs from default) wins */
            if (e->type == CFG_STR) {
                if (strcmp((char *)&over + e->offset, (char *)&def + e->offset) != 0)
                    memcpy((char *)c + e->offset, (char *)&over + e->offset, e->size);
            } else if (memcmp((char *)&over + e->offset, (char *)&def + e->offset, sizeof(long)) !=
                       0) {
                memcpy((char *)c + e->offset, (char *)&over + e->offset, sizeof(long));
            }
        }
    }

    if (log_level_parse(c->log_level) < 0)
        return err_set(err, ERR_INVALID, "log_level: '%s' is not debug, info, warn or error",
                       c->log_level);
    if (strcmp(c->log_format, "json") != 0 && strcmp(c->log_format, "text") != 0)
        return err_set(err, ERR_INVALID, "log_format: '%s' is not json or text", c->log_format);
    if (strcmp(c->role, "all") != 0 && strcmp(c->role, "api") != 0 &&
        strcmp(c->role, "worker") != 0)
        return err_set(err, ERR_INVALID, "role: '%s' is not all, api or worker", c->role);
    if (c->workers < 0 || c->workers > 256)
        return err_set(err, ERR_INVALID, "workers: must be between 0 and 256");
    if (strcmp(c->role, "worker") == 0 && c->workers < 1)
        return err_set(err, ERR_INVALID, "workers: role worker needs at least 1");
    if (c->job_lease < 1)
        return err_set(err, ERR_INVALID, "job_lease: must be at least 1s");
    if (c->diagnostics != 0 && c->diagnostics != 1)
        return err_set(err, ERR_INVALID, "diagnostics: must be 0 or 1");
    if (c->search_concurrency < 0 || c->search_concurrency > 1024)
        return err_set(err, ERR_INVALID, "search_concurrency: must be between 0 and 1024");
    if (c->search_queue_timeout < 1)
        return err_set(err, ERR_INVALID, "search_queue_timeout: must be at least 1s");
    if (c->worker_nice < 0 || c->worker_nice > 19)
        return err_set(err, ERR_INVALID, "worker_nice: must be between 0 and 19");
    if (c->probe_timeout < 1)
        return err_set(err, ERR_INVALID, "probe_timeout: must be at least 1s");
    if (c->max_media_duration < 1)
        return err_set(err, ERR_INVALID, "max_media_duration: must be at least 1s");
    if (c->max_video_pixels < 1)
        return err_set(err, ERR_INVALID, "max_video_pixels: must be positive");
    if (c->max_image_pixels < 1 || c->max_image_pixels > 1000000000L)
        return err_set(err, ERR_INVALID, "max_image_pixels: must be between 1 and 1000000000");
    if (c->max_connections < 1 || c->max_connections > 65536)
        return err_set(err, ERR_INVALID, "max_connections: must be between 1 and 65536");
    if (c->idle_timeout < 1)
        return err_set(err, ERR_INVALID, "idle_timeout: must be at least 1s");
    if (c->max_connections_per_address < 1) /* above max_connections it is max_connections */
        return err_set(err, ERR_INVALID, "max_connections_per_address: must be at least 1");
    if (c->header_timeout < 1)
        return err_set(err, ERR_INVALID, "header_timeout: must be at least 1s");
    if (c->body_timeout < 1)
        return err_set(err, ERR_INVALID, "body_timeout: must be at least 1s");
    if (c->body_min_rate < 1)
        return err_set(err, ERR_INVALID, "body_min_rate: must be at least 1 byte per second");
    if (c->min_part_size < 1)
        return err_set(err, ERR_INVALID, "min_part_size: must be positive");
    if (c->part_size < c->min_part_size)
        return err_set(err, ERR_INVALID, "part_size: must be at least min_part_size");
    if (!c->public_url[0])
        snprintf(c->public_url, sizeof(c->public_url), "http://%s", c->listen);
    if (!c->s3_public_url[0])
        snprintf(c->s3_public_url, sizeof(c->s3_public_url), "http://%s", c->s3_listen);
    return 0;
}

static void flag_name(const char *name, char *out, size_t n)
{
    size_t i;

    for (i = 0; name[i] && i + 1 < n; i++)
        out[i] = name[i] == '_' ? '-' : name[i];
    out[i] = '\0';
}

static const char *type_hint(enum cfg_type t)
{
    switch (t) {
    case CFG_LONG:
        return "N";
    case CFG_SIZE:
        return "SIZE";
    case CFG_DURATION:
        return "DURATION";
    default:
        return "VALUE";
    }
}

void cfg_usage(FILE *out)
{
    for (size_t i = 0; i < cfg_table_len; i++) {
        const struct cfg_entry *e = &cfg_table[i];
        char flag[64], left[96];
        flag_name(e->name, flag, sizeof(flag));
        snprintf(left, sizeof(left), "--%s %s", flag, type_hint(e->type));
        fprintf(out, "  %-34s %s\n  %-34s [env %s; default '%s']\n", left, e->help, "", e->env,
                e->def);
    }
}

void cfg_markdown(FILE *out)
{
    fprintf(out, "| flag | environment | file key | default | meaning |\n");
    fprintf(out, "|---|---|---|---|---|\n");
    for (size_t i = 0; i < cfg_table_len; i++) {
        const struct cfg_entry *e = &cfg_table[i];
        char flag[64];
        flag_name(e->name, flag, sizeof(flag));
        fprintf(out, "| `--%s` | `%s` | `%s` | `%s` | %s |\n", flag, e->env, e->name, e->def,
                e->help);
    }
}
