/*
 * Renditions: one activity (media.rendition) makes one profile of an asset's master —
 * the ingest's renditions step fans out over the profiles that apply to the detected
 * type, and the `rendition` workflow makes one on request (transcode-interactive). The
 * encoder (the ffmpeg program, or acervo-probe --thumbs for images) runs as a child with
 * the master as its stdin and a timeout derived from the source's duration; its progress
 * reaches the heartbeat; every output is probed and checked against the profile before
 * it is stored and recorded (docs/internals/media.md).
 */
#include "jobs/workflows/workflows.h"
#include "media/encode.h"
#include "media/profile.h"
#include "store/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FFMPEG      "/usr/bin/ffmpeg"
#define FILES_MAX   4096 /* files one rendition may write (HLS segments) */
#define COPY_BUF    (1u << 20)
#define STDOUT_KEEP 0

/* An integer member of o, or -1 (unknown) when absent or not an integer. */
static int64_t int_field(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);

    return json_is_integer(v) ? (int64_t)json_integer_value(v) : -1;
}

/* ---- the source ------------------------------------------------------------------------------ */

/* The technical metadata of the asset: the ingest's probe output, else the asset's. */
static json_t *source_tech(struct jobs_act *act, const struct cat_asset *a)
{
    const json_t *probe = json_object_get(jobs_act_outputs(act), "probe");

    if (json_is_object(probe))
        return json_deep_copy(probe);
    return a->technical_metadata ? json_loads(a->technical_metadata, 0, NULL) : NULL;
}

/* ---- progress ----------------------------------------------------------------------------------
 */

struct progress_ctx {
    struct jobs_act *act;
    struct media_progress p;
};

static void on_progress(void *ctx, const char *data, size_t n)
{
    struct progress_ctx *c = ctx;

    if (media_progress_feed(&c->p, data, n))
        jobs_act_progress(c->act, c->p.percent * 0.9, "encoding"); /* storing is the rest */
}

/* ---- storing -----------------------------------------------------------------------------------
 */

/* Copies the file at path into bucket/key; an unrecorded object left there by an attempt
 * that died is replaced (a recorded rendition is never rewritten: new versions get new keys). */
static int store_file(struct store *st, const char *path, const char *bucket, const char *key,
                      const char *mime, struct store_meta *m, struct err *err)
{
    for (int round = 0; round < 2; round++) {
        struct store_writer *w = NULL;
        char *buf;
        ssize_t r;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
            return err_errno(err, ERR_IO, "cannot open %s", path);
        if (store_object_writer(st, bucket, key, STORE_WRITER_SHA256, &w, err) < 0) {
            close(fd);
            return -1;
        }
        buf = xmalloc(COPY_BUF);
        while ((r = read(fd, buf, COPY_BUF)) > 0)
            if (store_writer_write(w, buf, (size_t)r, err) < 0)
                break;
        free(buf);
        close(fd);
        if (r < 0) {
            store_writer_abort(w);
            return err_errno(err, ERR_IO, "cannot read %s", path);
        }
        if (r > 0) {
            store_writer_abort(w);
            return -1;
        }
        if (store_writer_commit(w, mime, NULL, m, err) == 0)
            return 0;
        if (err->code != ERR_CONFLICT || round > 0)
            return -1;
        if (store_object_delete(st, bucket, key, err) < 0)
            return -1;
    }
    return -1;
}

static const char *mime_of(const char *name, const char *main_name, const char *main_mime)
{
    const char *dot = strrchr(name, '.');

    if (strcmp(name, main_name) == 0)
        return main_mime;
    if (!dot)
        return "application/octet-stream";
    if (strcmp(dot, ".m3u8") == 0)
        return "application/vnd.apple.mpegurl";
    if (strcmp(dot, ".mpd") == 0)
        return "application/dash+xml";
    if (strcmp(dot, ".m4s") == 0 || strcmp(dot, ".mp4") == 0)
        return "video/mp4";
    if (strcmp(dot, ".ts") == 0)
        return "video/mp2t";
    if (strcmp(dot, ".webp") == 0)
        return "image/webp";
    if (strcmp(dot, ".json") == 0)
        return "application/json";
    return "application/octet-stream";
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Stores every regular file of dir under prefix; *files receives [{name,key,bytes,etag}]. */
static int store_dir(struct jobs_act *act, const char *dir, const struct media_profile *p,
                     const char *prefix, json_t **files, struct err *err)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    *files = json_array();
    if (!d)
        return err_errno(err, ERR_IO, "cannot list %s", dir);
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.' || de->d_type != DT_REG || strcmp(de->d_name, "waveform.pcm") == 0)
            continue;
        if (n == FILES_MAX) {
            rc = err_set(err, ERR_LIMIT, "%s wrote more than %d files", p->name, FILES_MAX);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            names = xrealloc(names, cap * sizeof(*names));
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    if (rc == 0 && n)
        qsort(names, n, sizeof(*names), name_cmp);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char path[1024], key[1024];
        struct store_meta m;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        snprintf(key, sizeof(key), "%s%s", prefix, names[i]);
        rc = store_file(jobs_act_store(act), path, p->bucket, key,
                        mime_of(names[i], p->file, p->mime_type), &m, err);
        if (rc == 0)
            json_array_append_new(*files,
                                  json_pack("{s:s,s:s,s:I,s:s}", "name", names[i], "key", key,
                                            "bytes", (json_int_t)m.size, "etag", m.etag));
        jobs_act_progress(act, 90 + 10.0 * (double)(i + 1) / (double)n, "storing");
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* ---- encoding -----------------------------------------------------------------------------------
 */

/* Runs the ffmpeg command of profile p on the master (fd) into dir; *command receives it
 * (a JSON array of strings, for the job's output: how the rendition was made). */
static int encode(struct jobs_act *act, const struct media_profile *p,
                  const struct media_source *src, const struct media_clip *clip, int fd,
                  const char *dir, json_t **command, struct err *err)
{
    struct progress_ctx pc = {.act = act};
    struct jobs_spawn_opts o = {0};
    struct jobs_child ch;
    char **argv = NULL, reason[256];
    int rc = -1;

    if (media_encode_argv(p, src, FFMPEG, "/dev/stdin", dir, clip, &argv, err) < 0)
        return -1;
    *command = json_array();
    for (char **a = argv; *a; a++)
        json_array_append_new(*command, json_string(*a));
    media_progress_init(&pc.p, clip ? clip->out_s - clip->in_s : src->duration_s);
    o.timeout_ms = (int64_t)(media_encode_timeout_s(p, src) * 1000);
    o.use_stdin = 1;
    o.stdin_fd = fd;
    o.on_stdout = on_progress;
    o.on_stdout_ctx = &pc;
    if (jobs_act_spawn(act, argv, &o, &ch, err) < 0) {
        if (err->code == ERR_LIMIT)
            jobs_act_permanent(act); /* an encoder that hung will hang again */
        goto out;
    }
    free(ch.out);
    if (WIFSIGNALED(ch.status)) {
        char what[64];

        snprintf(what, sizeof(what), "ffmpeg making %s", p->name);
        wf__child_signalled(act, what, WTERMSIG(ch.status), err);
        goto out;
    }
    if (WEXITSTATUS(ch.status) != 0) {
        /* the same input fails the same way: no retry */
        jobs_act_permanent(act);
        wf__last_line(ch.err_tail, NULL, reason, sizeof(reason));
        err_set(err, ERR_UNSUPPORTED, "ffmpeg could not make %s (exit %d): %s", p->name,
                WEXITSTATUS(ch.status), reason);
        goto out;
    }
    rc = 0;
out:
    media_argv_free(argv);
    return rc;
}

/* Turns dir/waveform.pcm into dir/<p->file> after checking it against the profile. */
static int waveform(const struct media_profile *p, const struct media_source *src,
                    const struct media_clip *clip, const char *dir, struct err *err)
{
    char path[1024];
    json_t *peaks = NULL;
    char *text;
    int fd, rc;
    FILE *f;

    snprintf(path, sizeof(path), "%s/" MEDIA_WAVEFORM_PCM, dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_errno(err, ERR_IO, "ffmpeg wrote no %s", MEDIA_WAVEFORM_PCM);
    rc =
        media_waveform_peaks(fd, clip ? clip->out_s - clip->in_s : src->duration_s, 0, &peaks, err);
    close(fd);
    unlink(path);
    if (rc < 0)
        return -1;
    if (media_output_check(p, src, clip, peaks, err) < 0) {
        json_decref(peaks);
        return -1;
    }
    text = json_dumps(peaks, JSON_COMPACT | JSON_REAL_PRECISION(5));
    json_decref(peaks);
    snprintf(path, sizeof(path), "%s/%s", dir, p->file);
    f = fopen(path, "we");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
        if (f)
            fclose(f);
        free(text);
        return err_errno(err, ERR_IO, "cannot write %s", path);
    }
    free(text);
    return 0;
}

/* ---- the activity ---------------------------------------------------------------------------- */

/* Records the end of a failed attempt on the rendition row (best effort). */
static void row_failed(struct jobs_act *act, struct cat_rendition *row, const struct err *e)
{
    struct err e2;

    snprintf(row->status, sizeof(row->status), "%s", REND_FAILED);
    free(row->error);
    row->error = xstrdup(e->msg);
    if (cat_rendition_put(jobs_act_catalog(act), row, &e2) < 0)
        log_write(LOG_WARN, "renditions", "cannot record the failure of %s: %s", row->profile_name,
                  e2.msg);
}

static int act_rendition(struct jobs_act *act, struct err *err)
{
    const json_t *in = jobs_act_input(act);
    const char *name = json_string_value(json_object_get(in, "profile"));
    const char *variant = json_string_value(json_object_get(in, "variant"));
    json_int_t version = json_integer_value(json_object_get(in, "version"));
    const json_t *jclip = json_object_get(in, "clip");
    const struct media_profile *p = name ? media_profile_find(name) : NULL;
    struct media_clip clip, *cp = NULL;
    struct media_source src;
    struct cat_rendition row;
    struct cat_asset a;
    json_t *tech = NULL, *files = NULL, *out_probe = NULL, *command = NULL, *out;
    int64_t t0, t_encoded = 0, t_checked = 0, t_stored = 0;
    const char *dir;
    char prefix[512], main_path[1024];
    int fd = -1, rc = -1;

    memset(&a, 0, sizeof(a));
    memset(&row, 0, sizeof(row));
    if (!p || (version && version != p->version)) {
        jobs_act_permanent(act);
        return err_set(err, ERR_NOTFOUND, "no rendition profile %s version %lld in this build",
                       name ? name : "(none)", (long long)version);
    }
    if (jclip) {
        clip.in_s = json_number_value(json_object_get(jclip, "in_ms")) / 1000.0;
        clip.out_s = json_number_value(json_object_get(jclip, "out_ms")) / 1000.0;
        cp = &clip;
    }
    if (cat_asset_get(jobs_act_catalog(act), jobs_act_asset_id(act), &a, err) < 0)
        return -1;
    tech = source_tech(act, &a);
    if (!tech) {
        err_set(err, ERR_CONFLICT, "asset %s has no technical metadata to render from", a.id);
        goto out;
    }
    if (media_source_from_probe(tech, &src, err) < 0)
        goto out;

    /* the row: running, under this workflow */
    if (cat_rendition_find(jobs_act_catalog(act), a.id, p->name, p->version, variant ? variant : "",
                           &row, err) < 0) {
        if (err->code != ERR_NOTFOUND)
            goto out;
        memset(&row, 0, sizeof(row));
        snprintf(row.asset_id, sizeof(row.asset_id), "%s", a.id);
        snprintf(row.profile_name, sizeof(row.profile_name), "%s", p->name);
        row.profile_version = p->version;
        snprintf(row.variant, sizeof(row.variant), "%s", variant ? variant : "");
    }
    snprintf(row.status, sizeof(row.status), "%s", REND_RUNNING);
    snprintf(row.workflow_id, sizeof(row.workflow_id), "%s", jobs_act_workflow_id(act));
    row.file_size_bytes = row.width = row.height = row.duration_ms = row.bitrate_kbps = -1;
    free(row.error);
    row.error = NULL;
    if (jclip && !row.params)
        row.params = json_dumps(jclip, JSON_COMPACT);
    row.expires_at = json_integer_value(json_object_get(in, "expires_at"));
    if (cat_rendition_put(jobs_act_catalog(act), &row, err) < 0)
        goto out;

    dir = jobs_act_scratch(act, err);
    if (!dir || wf__master_open(act, &fd, err) < 0)
        goto out_failed;
    if (variant && *variant)
        snprintf(prefix, sizeof(prefix), "ondemand/%s/%s/%s-v%d/", a.id, variant, p->name,
                 p->version);
    else
        media_profile_prefix(p, a.id, a.content_hash, prefix, sizeof(prefix));

    jobs_act_progress(act, 0, "starting");
    t0 = util_mono_ms();
    if (p->output == MEDIA_OUT_WEBP_THUMBS) {
        char sizes[64] = "", flag[] = "--thumbs", file[] = "/dev/stdin", dirarg[640];
        char *args[5] = {flag, dirarg, sizes, file, NULL};
        size_t used = 0;

        snprintf(dirarg, sizeof(dirarg), "%s", dir);
        for (const int *s = p->sizes; s && *s && used < sizeof(sizes); s++)
            used +=
                (size_t)snprintf(sizes + used, sizeof(sizes) - used, "%s%d", used ? "," : "", *s);
        if (wf__probe(act, args, fd, &out_probe, err) < 0)
            goto out_failed;
        t_encoded = t_checked = util_mono_ms();
        {
            const json_t *first = json_array_get(json_object_get(out_probe, "thumbs"), 0);

            row.width = int_field(first, "width");
            row.height = int_field(first, "height");
        }
    } else {
        if (encode(act, p, &src, cp, fd, dir, &command, err) < 0)
            goto out_failed;
        t_encoded = util_mono_ms();
        if (p->output == MEDIA_OUT_WAVEFORM) {
            if (waveform(p, &src, cp, dir, err) < 0) {
                jobs_act_permanent(act);
                goto out_failed;
            }
        } else if (p->output == MEDIA_OUT_HLS) {
            if (media_hls_check(p, &src, cp, dir, err) < 0) {
                jobs_act_permanent(act);
                goto out_failed;
            }
        } else {
            /* every output is probed and checked against the profile before it counts */
            char file[] = "/dev/stdin";
            char *args[2] = {file, NULL};
            int ofd;

            snprintf(main_path, sizeof(main_path), "%s/%s", dir, p->file);
            ofd = open(main_path, O_RDONLY | O_CLOEXEC);
            if (ofd < 0) {
                err_errno(err, ERR_IO, "ffmpeg wrote no %s", p->file);
                goto out_failed;
            }
            rc = wf__probe(act, args, ofd, &out_probe, err);
            close(ofd);
            if (rc < 0)
                goto out_failed;
            rc = -1;
            if (media_output_check(p, &src, cp, out_probe, err) < 0) {
                jobs_act_permanent(act);
                goto out_failed;
            }
            {
                const json_t *sum = json_object_get(out_probe, "summary");

                row.width = int_field(sum, "width");
                row.height = int_field(sum, "height");
                row.duration_ms = int_field(sum, "duration_ms");
                row.bitrate_kbps = int_field(sum, "bitrate_kbps");
            }
        }
        t_checked = util_mono_ms();
    }
    if (store_dir(act, dir, p, prefix, &files, err) < 0)
        goto out_failed;
    t_stored = util_mono_ms();

    /* recorded: the main file and every file */
    snprintf(row.status, sizeof(row.status), "%s", REND_READY);
    snprintf(row.bucket, sizeof(row.bucket), "%s", p->bucket);
    free(row.storage_key);
    row.storage_key = NULL;
    {
        size_t i;
        json_t *f;

        json_array_foreach(files, i, f)
        {
            if (strcmp(json_string_value(json_object_get(f, "name")), p->file) == 0) {
                row.storage_key = xstrdup(json_string_value(json_object_get(f, "key")));
                row.file_size_bytes = int_field(f, "bytes");
            }
        }
    }
    if (!row.storage_key) {
        err_set(err, ERR_INTERNAL, "%s wrote no %s", p->name, p->file);
        goto out_failed;
    }
    free(row.mime_type);
    row.mime_type = xstrdup(p->mime_type);
    free(row.files);
    row.files = json_dumps(files, JSON_COMPACT);
    if (cat_rendition_put(jobs_act_catalog(act), &row, err) < 0)
        goto out;
    /* what was made, how, and where the time went */
    out = json_pack("{s:s,s:i,s:s,s:s,s:s}", "profile", p->name, "version", p->version,
                    "rendition_id", row.id, "bucket", p->bucket, "key", row.storage_key);
    json_object_set_new(out, "command", command ? json_incref(command) : json_null());
    json_object_set_new(out, "timings_ms",
                        json_pack("{s:I,s:I,s:I}", "encode", (json_int_t)(t_encoded - t0), "check",
                                  (json_int_t)(t_checked - t_encoded), "store",
                                  (json_int_t)(t_stored - t_checked)));
    jobs_act_set_output(act, out);
    rc = 0;
    goto out;

out_failed:
    row_failed(act, &row, err);
out:
    if (fd >= 0)
        close(fd);
    json_decref(tech);
    json_decref(files);
    json_decref(out_probe);
    json_decref(command);
    cat_rendition_release(&row);
    cat_asset_release(&a);
    return rc;
}

/* ---- fan-out and definitions ------------------------------------------------------------------
 */

int wf__renditions_fanout(const json_t *input, const json_t *outputs, json_t **items,
                          struct err *err)
{
    const char *type =
        json_string_value(json_object_get(json_object_get(outputs, "detect"), "type"));
    const json_t *probe = json_object_get(outputs, "probe");
    unsigned bit = 0;
    struct media_source src;

    (void)input;
    *items = json_array();
    if (!type || !json_is_object(probe))
        return 0;
    if (media_source_from_probe(probe, &src, err) < 0) {
        json_decref(*items);
        *items = NULL;
        return -1;
    }
    bit = strcmp(type, "video") == 0   ? MEDIA_T_VIDEO
          : strcmp(type, "audio") == 0 ? MEDIA_T_AUDIO
          : strcmp(type, "image") == 0 ? MEDIA_T_IMAGE
                                       : 0;
    for (const struct media_profile *p = media_profiles; p->name; p++) {
        if (p->on_demand || !(p->types & bit) || (p->needs_audio && !src.has_audio) ||
            (p->needs_video && !src.has_video))
            continue;
        json_array_append_new(*items,
                              json_pack("{s:s,s:i}", "profile", p->name, "version", p->version));
    }
    return 0;
}

const struct jobs_activity wf__act_rendition = {.name = "media.rendition", .run = act_rendition};

/* an editor's on-demand rendition: one job on transcode-interactive */
static const struct jobs_step rendition_steps[] = {
    {.name = "render", .activity = "media.rendition", .queue = JOBS_Q_TRANSCODE_INTERACTIVE},
};

const struct jobs_workflow_def wf__rendition = {"rendition", rendition_steps,
                                                ARRAY_LEN(rendition_steps), 0};
