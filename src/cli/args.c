/* args: command-line helpers shared by the acervo commands */
#include "cli/cli_int.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli__usage(struct err *err, const char *usage)
{
    err_set(err, ERR_INVALID, "usage: %s", usage);
    return CLI__USAGE_RC;
}

int cli__bad(struct err *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    err_vset(err, ERR_INVALID, fmt, ap);
    va_end(ap);
    return CLI__USAGE_RC;
}

int cli__parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int cli__meta_add(json_t **meta, const char *kv, struct err *err)
{
    const char *eq = strchr(kv, '=');
    char key[256];

    if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key))
        return err_set(err, ERR_INVALID, "--meta takes KEY=VALUE, not '%.100s'", kv);
    memcpy(key, kv, (size_t)(eq - kv));
    key[eq - kv] = '\0';
    if (!*meta)
        *meta = json_object();
    json_object_set_new(*meta, key, json_string(eq + 1));
    return 0;
}

int cli__parse_size(const char *s, int64_t *out)
{
    char *end;
    double v;
    int64_t mul = 1;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || v <= 0)
        return -1;
    if (*end == 'k' || *end == 'K')
        mul = 1024;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024;
    else if (*end == 'g' || *end == 'G')
        mul = 1024 * 1024 * 1024;
    if (mul > 1)
        end++;
    if (*end || v * (double)mul > 9e18)
        return -1;
    *out = (int64_t)(v * (double)mul);
    return *out > 0 ? 0 : -1;
}

/* n bytes for people: 1.5 GiB */
void cli__human_bytes(char *out, size_t cap, double n)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;

    while (n >= 1024 && u < 4) {
        n /= 1024;
        u++;
    }
    (void)snprintf(out, cap, u ? "%.1f %s" : "%.0f %s", n, unit[u]);
}

volatile sig_atomic_t cli__stop;

static void on_stop(int sig)
{
    (void)sig;
    cli__stop = 1;
}

void cli__catch_stop(void)
{
    struct sigaction sa = {0};

    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

void cli__bar_show(struct cli_bar *b, int64_t done, int final)
{
    int64_t now = util_now_ms();
    double secs = (double)(now - b->started_ms) / 1000;
    double rate = secs > 0 ? (double)(done - b->base) / secs : 0;
    char have[32], all[32], speed[32];
    int several = b->files > 1;
    int width = several ? 20 : 30;
    int fill = b->total ? (int)((double)done * width / (double)b->total) : width;

    if (!final && now - b->last_ms < 200)
        return;
    b->last_ms = now;
    cli__human_bytes(have, sizeof(have), (double)done);
    cli__human_bytes(all, sizeof(all), (double)b->total);
    cli__human_bytes(speed, sizeof(speed), rate > 0 ? rate : 0);
    fprintf(stderr, several ? "\r%-16.16s [" : "\r%-24.24s [", b->name);
    for (int i = 0; i < width; i++)
        fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %s / %s  %s/s", have, all, speed);
    if (several) {
        int64_t sum = b->files_before + done;

        cli__human_bytes(have, sizeof(have), (double)sum);
        cli__human_bytes(all, sizeof(all), (double)b->files_total);
        fprintf(stderr, "  total %s / %s (%d/%d)", have, all, b->file_no, b->files);
        if (!final && rate > 0 && sum < b->files_total)
            fprintf(stderr, "  ETA %lds   ", (long)((double)(b->files_total - sum) / rate));
        else
            fputs("          ", stderr);
    } else if (!final && rate > 0 && done < b->total) {
        fprintf(stderr, "  ETA %lds   ", (long)((double)(b->total - done) / rate));
    } else {
        fputs("          ", stderr);
    }
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}
