/*
 * loadgen: many closed-loop clients against acervod's REST API, for bench/run load.
 *
 * Each client keeps one connection (libcurl, all clients in one multi handle on one
 * thread, so the generator costs little CPU beside the server) and, in a loop, picks an
 * operation by weight, sends it, waits for the answer and records its latency:
 *
 *   get       GET  /api/v1/assets/{id}              (a random asset of --assets)
 *   list      GET  /api/v1/assets?limit=20
 *   search    POST /api/v1/search {"q": WORD}       (a random word of --words)
 *   patch     PATCH /api/v1/assets/{id} {"description": ...}
 *   download  GET  /api/v1/assets/{id}/download     (whole master, body discarded)
 *   upload    POST /api/v1/assets/direct            (--upload's bytes + 16 random bytes
 *                                                    after them, so every upload is new)
 *
 * Prints one JSON object: per operation the count, errors, p50/p90/p99/max in ms, and the
 * first few errors. Usage:
 *
 *   loadgen --base URL --token T --assets FILE --words FILE --upload FILE
 *           [--clients 150] [--seconds 60] [--mix get=35,list=10,...]
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum op { OP_GET, OP_LIST, OP_SEARCH, OP_PATCH, OP_DOWNLOAD, OP_UPLOAD, OP_COUNT };

static const char *const op_names[OP_COUNT] = {"get",   "list",     "search",
                                               "patch", "download", "upload"};

#define MAX_ERRORS_SHOWN 5
#define URL_MAX          2048
#define BODY_MAX         512

/** Latencies and failures of one operation. */
struct op_stats {
    int64_t *us; /* latencies of the successful ones, microseconds */
    size_t n;
    size_t cap;
    long errors;
    char shown[MAX_ERRORS_SHOWN][400];
    int nshown;
};

/** One closed-loop client: one easy handle, one request in flight. */
struct client {
    CURL *h;
    struct curl_slist *headers;
    enum op op;
    char url[URL_MAX];
    char body[BODY_MAX];
    unsigned char *upload; /* the upload body (sample + 16 random bytes) */
    size_t upload_len;
    char errbuf[CURL_ERROR_SIZE];
    int64_t resp_bytes;
    char resp_head[256]; /* the first bytes of the answer, for error reports */
    size_t resp_head_len;
};

struct lines {
    char **v;
    size_t n;
};

static const char *base;
static char auth[512];
static struct lines assets;
static struct lines words;
static unsigned char *sample;
static size_t sample_len;
static int weights[OP_COUNT] = {35, 10, 20, 10, 15, 10};
static int weight_total;
static struct op_stats stats[OP_COUNT];
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static void die(const char *msg)
{
    fprintf(stderr, "loadgen: %s\n", msg);
    exit(2);
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);

    if (!q)
        die("out of memory");
    return q;
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void lines_read(const char *path, struct lines *out)
{
    FILE *f = fopen(path, "r");
    char line[512];

    if (!f) {
        fprintf(stderr, "loadgen: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    while (fgets(line, sizeof(line), f)) {
        size_t len = strcspn(line, "\r\n");

        if (len == 0)
            continue;
        line[len] = '\0';
        out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
        out->v[out->n] = strdup(line);
        if (!out->v[out->n])
            die("out of memory");
        out->n++;
    }
    fclose(f);
    if (out->n == 0) {
        fprintf(stderr, "loadgen: %s is empty\n", path);
        exit(2);
    }
}

static void sample_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n;

    if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) < 0) {
        fprintf(stderr, "loadgen: cannot read %s\n", path);
        exit(2);
    }
    sample_len = (size_t)n;
    sample = xrealloc(NULL, sample_len);
    if (fread(sample, 1, sample_len, f) != sample_len)
        die("short read of the upload sample");
    fclose(f);
}

static void mix_parse(const char *spec)
{
    char *copy = strdup(spec);
    char *save = NULL;

    if (!copy)
        die("out of memory");
    memset(weights, 0, sizeof(weights));
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        int found = 0;

        if (!eq)
            die("--mix wants name=weight,...");
        *eq = '\0';
        for (int i = 0; i < OP_COUNT; i++) {
            if (strcmp(tok, op_names[i]) == 0) {
                weights[i] = atoi(eq + 1);
                found = 1;
            }
        }
        if (!found)
            die("--mix: unknown operation");
    }
    free(copy);
}

static enum op op_pick(void)
{
    int r = (int)(rnd() % (uint64_t)weight_total);

    for (int i = 0; i < OP_COUNT; i++) {
        if (r < weights[i])
            return (enum op)i;
        r -= weights[i];
    }
    return OP_GET;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ctx)
{
    struct client *c = ctx;
    size_t n = size * nmemb;

    if (c->resp_head_len < sizeof(c->resp_head) - 1) {
        size_t k = sizeof(c->resp_head) - 1 - c->resp_head_len;

        if (k > n)
            k = n;
        memcpy(c->resp_head + c->resp_head_len, p, k);
        c->resp_head_len += k;
        c->resp_head[c->resp_head_len] = '\0';
    }
    c->resp_bytes += (int64_t)n;
    return n;
}

static void client_issue(CURLM *m, struct client *c)
{
    const char *id = assets.v[rnd() % assets.n];

    c->op = op_pick();
    c->resp_bytes = 0;
    c->resp_head_len = 0;
    c->resp_head[0] = '\0';
    c->errbuf[0] = '\0';
    curl_slist_free_all(c->headers);
    c->headers = curl_slist_append(NULL, auth);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    switch (c->op) {
    case OP_GET:
        snprintf(c->url, sizeof(c->url), "%s/api/v1/assets/%s", base, id);
        break;
    case OP_LIST:
        snprintf(c->url, sizeof(c->url), "%s/api/v1/assets?limit=20", base);
        break;
    case OP_DOWNLOAD:
        snprintf(c->url, sizeof(c->url), "%s/api/v1/assets/%s/download", base, id);
        break;
    case OP_SEARCH:
        snprintf(c->url, sizeof(c->url), "%s/api/v1/search", base);
        snprintf(c->body, sizeof(c->body), "{\"q\":\"%s\",\"size\":20}", words.v[rnd() % words.n]);
        c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
        break;
    case OP_PATCH:
        snprintf(c->url, sizeof(c->url), "%s/api/v1/assets/%s", base, id);
        snprintf(c->body, sizeof(c->body), "{\"description\":\"load %016llx\"}",
                 (unsigned long long)rnd());
        c->headers = curl_slist_append(c->headers, "Content-Type: application/json");
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, "PATCH");
        break;
    case OP_UPLOAD: {
        uint64_t tag = rnd();

        snprintf(c->url, sizeof(c->url),
                 "%s/api/v1/assets/direct?filename=load-%016llx.jpg&title=load", base,
                 (unsigned long long)tag);
        memcpy(c->upload, sample, sample_len);
        for (int i = 0; i < 2; i++) {
            uint64_t r = rnd();
            memcpy(c->upload + sample_len + 8 * (size_t)i, &r, 8);
        }
        c->headers = curl_slist_append(c->headers, "Content-Type: image/jpeg");
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, c->upload);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->upload_len);
        break;
    }
    case OP_COUNT:
        break;
    }
    if (c->op != OP_UPLOAD)
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
    /* libcurl would otherwise wait for a 100 Continue before sending upload bodies */
    c->headers = curl_slist_append(c->headers, "Expect:");
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_multi_add_handle(m, c->h);
}

static void stats_add(enum op op, int64_t us)
{
    struct op_stats *s = &stats[op];

    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->us = xrealloc(s->us, s->cap * sizeof(*s->us));
    }
    s->us[s->n++] = us;
}

static void stats_fail(enum op op, const char *what)
{
    struct op_stats *s = &stats[op];

    s->errors++;
    if (s->nshown < MAX_ERRORS_SHOWN) {
        snprintf(s->shown[s->nshown], sizeof(s->shown[0]), "%s", what);
        s->nshown++;
    }
}

static void client_done(struct client *c, CURLcode rc)
{
    long status = 0;
    curl_off_t t = 0;
    char what[400];

    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c->h, CURLINFO_TOTAL_TIME_T, &t);
    if (rc != CURLE_OK) {
        snprintf(what, sizeof(what), "%s", c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
        stats_fail(c->op, what);
        return;
    }
    if (status < 200 || status > 299) {
        snprintf(what, sizeof(what), "%ld %.200s", status, c->resp_head);
        stats_fail(c->op, what);
        return;
    }
    stats_add(c->op, (int64_t)t);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static double pct(const struct op_stats *s, double p)
{
    size_t i;

    if (s->n == 0)
        return 0;
    i = (size_t)(p * (double)(s->n - 1) + 0.5);
    return (double)s->us[i] / 1000.0;
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void report(double secs)
{
    printf("{\"seconds\": %.3f, \"ops\": {", secs);
    for (int i = 0; i < OP_COUNT; i++) {
        struct op_stats *s = &stats[i];

        qsort(s->us, s->n, sizeof(*s->us), cmp_i64);
        printf("%s\"%s\": {\"count\": %zu, \"errors\": %ld, \"p50\": %.2f, \"p90\": %.2f, "
               "\"p99\": %.2f, \"max\": %.2f, \"shown\": [",
               i ? ", " : "", op_names[i], s->n, s->errors, pct(s, 0.50), pct(s, 0.90),
               pct(s, 0.99), s->n ? (double)s->us[s->n - 1] / 1000.0 : 0.0);
        for (int k = 0; k < s->nshown; k++) {
            if (k)
                printf(", ");
            json_str(s->shown[k]);
        }
        printf("]}");
    }
    printf("}}\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"base", required_argument, NULL, 'b'},
        {"token", required_argument, NULL, 't'},
        {"assets", required_argument, NULL, 'a'},
        {"words", required_argument, NULL, 'w'},
        {"upload", required_argument, NULL, 'u'},
        {"clients", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'},
        {"mix", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    const char *token = NULL, *assets_path = NULL, *words_path = NULL, *upload_path = NULL;
    long nclients = 150;
    double seconds = 60;
    struct client *clients;
    int64_t start, stop;
    CURLM *m;
    int running;
    int ch;

    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'b':
            base = optarg;
            break;
        case 't':
            token = optarg;
            break;
        case 'a':
            assets_path = optarg;
            break;
        case 'w':
            words_path = optarg;
            break;
        case 'u':
            upload_path = optarg;
            break;
        case 'c':
            nclients = strtol(optarg, NULL, 10);
            break;
        case 's':
            seconds = strtod(optarg, NULL);
            break;
        case 'm':
            mix_parse(optarg);
            break;
        default:
            die("bad option (see the comment at the top of bench/load/loadgen.c)");
        }
    }
    if (!base || !token || !assets_path || !words_path || !upload_path)
        die("--base, --token, --assets, --words and --upload are required");
    if (nclients < 1 || nclients > 4096 || seconds <= 0)
        die("--clients must be 1..4096 and --seconds positive");
    for (int i = 0; i < OP_COUNT; i++)
        weight_total += weights[i];
    if (weight_total <= 0)
        die("--mix: the weights add up to nothing");
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    lines_read(assets_path, &assets);
    lines_read(words_path, &words);
    sample_read(upload_path);
    rng ^= (uint64_t)now_us() * 0x2545f4914f6cdd1dULL;
    if (rng == 0)
        rng = 1;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    m = curl_multi_init();
    clients = calloc((size_t)nclients, sizeof(*clients));
    if (!clients)
        die("out of memory");
    start = now_us();
    stop = start + (int64_t)(seconds * 1e6);
    for (long i = 0; i < nclients; i++) {
        struct client *c = &clients[i];

        c->h = curl_easy_init();
        c->upload_len = sample_len + 16;
        c->upload = xrealloc(NULL, c->upload_len);
        curl_easy_setopt(c->h, CURLOPT_PRIVATE, c);
        curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(c->h, CURLOPT_ERRORBUFFER, c->errbuf);
        curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 300L);
        curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
        client_issue(m, c);
    }
    do {
        CURLMsg *msg;
        int left;

        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left))) {
            struct client *c;
            char *priv = NULL;

            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            c = (struct client *)(void *)priv;
            curl_multi_remove_handle(m, c->h);
            client_done(c, msg->data.result);
            if (now_us() < stop)
                client_issue(m, c);
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
        curl_multi_perform(m, &running);
    } while (running || now_us() < stop);
    report((double)(now_us() - start) / 1e6);
    for (long i = 0; i < nclients; i++) {
        curl_slist_free_all(clients[i].headers);
        curl_easy_cleanup(clients[i].h);
        free(clients[i].upload);
    }
    free(clients);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    return 0;
}
