/*
 * The ingest workflow (seed 4.9 / 4.10.1), started by an upload's completion:
 *
 *   assemble -> detect -> probe -> renditions (fan-out) -> index -> asset ready
 *
 * assemble joins the parts and hashes them in one sequential pass, deduplicates and
 * commits the master under its immutable key; detect and probe run `acervo-probe` as a
 * child process with limits, so untrusted media is parsed by neither the API nor the
 * worker; renditions fans out over the profiles that apply to the
 * detected type; index writes the technical metadata into the catalog and makes the
 * asset ready. Any failure fails the asset with the reason (asset_fails).
 */
#include "jobs/workflows/workflows.h"
#include "store/store.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- assemble ------------------------------------------------------------------------------- */

/* The parts the client listed at completion, from the workflow input. */
static int refs_from_input(const json_t *in, struct store_part_ref **out, size_t *n,
                           struct err *err)
{
    json_t *parts = json_object_get(in, "parts"), *p;
    size_t i;

    if (!json_is_array(parts) || json_array_size(parts) == 0)
        return err_set(err, ERR_INVALID, "the ingest input lists no parts");
    *out = xcalloc(json_array_size(parts), sizeof(**out));
    json_array_foreach(parts, i, p)
    {
        (*out)[i].number = (int)json_integer_value(json_object_get(p, "number"));
        snprintf((*out)[i].etag, sizeof((*out)[i].etag), "%s",
                 json_string_value(json_object_get(p, "etag"))
                     ? json_string_value(json_object_get(p, "etag"))
                     : "");
    }
    *n = json_array_size(parts);
    return 0;
}

/* Marks the asset a duplicate of other and drops its upload. */
static int duplicate(struct jobs_act *act, const struct cat_asset *a, const char *upload_id,
                     const char *other, struct err *err)
{
    struct catalog *cat = jobs_act_catalog(act);
    char reason[160];
    struct err e;

    snprintf(reason, sizeof(reason), "duplicate: the content is already stored as asset %s", other);
    if (cat_asset_mark_duplicate(cat, a->id, other, reason, &e) < 0 && e.code != ERR_CONFLICT)
        return err_set(err, e.code, "%s", e.msg);
    if (upload_id && store_upload_abort(jobs_act_store(act), upload_id, &e) < 0 &&
        e.code != ERR_NOTFOUND)
        log_write(LOG_WARN, "ingest", "cannot drop upload %s of duplicate %s: %s", upload_id, a->id,
                  e.msg);
    if (cat_upload_delete(cat, a->id, &e) < 0 && e.code != ERR_NOTFOUND)
        log_write(LOG_WARN, "ingest", "cannot drop upload row of %s: %s", a->id, e.msg);
    jobs_act_permanent(act);
    return err_set(err, ERR_CONFLICT, "%s", reason);
}

static int act_assemble(struct jobs_act *act, struct err *err)
{
    const json_t *in = jobs_act_workflow_input(act);
    const char *upload_id = json_string_value(json_object_get(in, "upload_id"));
    const char *ext = json_string_value(json_object_get(in, "ext"));
    struct catalog *cat = jobs_act_catalog(act);
    struct store *store = jobs_act_store(act);
    struct store_part_ref *refs = NULL;
    struct store_staged *sg = NULL;
    const struct store_meta *m;
    struct store_meta cm;
    struct cat_asset a, dup;
    json_t *done = NULL;
    char key[256], sha[65];
    size_t n = 0;
    int rc = -1, have;

    memset(&a, 0, sizeof(a));
    memset(&dup, 0, sizeof(dup));
    have = jobs_act_effect_get(act, "master", &done, err);
    if (have < 0)
        return -1;
    if (have) {
        /* a crash after the master was recorded: that is the result */
        jobs_act_set_output(act, done);
        return 0;
    }
    if (cat_asset_get(cat, jobs_act_asset_id(act), &a, err) < 0)
        return -1;
    if (strcmp(a.status, ASSET_PROCESSING) != 0) {
        err_set(err, ERR_CONFLICT, "asset %s is %s, not processing", a.id, a.status);
        jobs_act_permanent(act);
        goto out;
    }
    if (a.master_storage_key && a.content_hash[0]) {
        /* the master was recorded before this ingest (an asset completed before the
         * workflow engine existed): that is the result */
        jobs_act_set_output(act,
                            json_pack("{s:s,s:s,s:I}", "master_key", a.master_storage_key, "sha256",
                                      a.content_hash, "size", (json_int_t)a.file_size_bytes));
        rc = 0;
        goto out;
    }
    if (!upload_id) {
        err_set(err, ERR_INVALID, "asset %s has no master and its ingest names no upload", a.id);
        goto out;
    }
    if (refs_from_input(in, &refs, &n, err) < 0)
        goto out;
    jobs_act_progress(act, 0, "assembling and hashing the master");
    if (store_upload_assemble(store, upload_id, refs, n, jobs_act_cfg(act)->min_part_size, &sg,
                              err) < 0) {
        if (err->code == ERR_INVALID || err->code == ERR_LIMIT || err->code == ERR_NOTFOUND)
            err_set(err, err->code, "the uploaded parts cannot be assembled: %s", err->msg);
        goto out;
    }
    m = store_staged_meta(sg);
    snprintf(sha, sizeof(sha), "%s", m->sha256);
    if (m->size != a.file_size_bytes) {
        err_set(err, ERR_INVALID, "the parts hold %lld bytes, not the declared %lld",
                (long long)m->size, (long long)a.file_size_bytes);
        goto out;
    }
    if (cat_asset_find_by_hash(cat, sha, &dup, err) == 0) {
        if (strcmp(dup.id, a.id) != 0) {
            rc = duplicate(act, &a, upload_id, dup.id, err);
            goto out;
        }
    } else if (err->code != ERR_NOTFOUND) {
        goto out;
    }
    snprintf(key, sizeof(key), "masters/%s/%s/original%s", a.id, sha, ext ? ext : "");
    jobs_act_progress(act, 90, "committing the master");
    if (store_staged_commit(sg, STORE_BUCKET_ARCHIVE, key, &cm, err) < 0)
        goto out;
    if (cat_asset_set_master(cat, a.id, sha, key, m->size, err) < 0) {
        struct err e2;

        cat_asset_release(&dup);
        /* another upload of the same bytes got there between our check and now */
        if (err->code == ERR_CONFLICT && cat_asset_find_by_hash(cat, sha, &dup, &e2) == 0 &&
            strcmp(dup.id, a.id) != 0) {
            if (store_object_delete(store, STORE_BUCKET_ARCHIVE, key, &e2) < 0)
                log_write(LOG_WARN, "ingest", "cannot remove orphan master %s: %s", key, e2.msg);
            rc = duplicate(act, &a, upload_id, dup.id, err);
        }
        goto out;
    }
    done =
        json_pack("{s:s,s:s,s:I}", "master_key", key, "sha256", sha, "size", (json_int_t)m->size);
    if (jobs_act_effect_put(act, "master", done, err) < 0 && err->code != ERR_CONFLICT) {
        json_decref(done);
        goto out;
    }
    {
        struct err e;

        /* the parts are no longer needed: the master is recorded */
        if (store_upload_abort(store, upload_id, &e) < 0 && e.code != ERR_NOTFOUND)
            log_write(LOG_WARN, "ingest", "cannot drop the parts of upload %s: %s", upload_id,
                      e.msg);
        if (cat_upload_delete(cat, a.id, &e) < 0 && e.code != ERR_NOTFOUND)
            log_write(LOG_WARN, "ingest", "cannot drop the upload row of %s: %s", a.id, e.msg);
    }
    jobs_act_set_output(act, done);
    rc = 0;
out:
    store_staged_free(sg);
    free(refs);
    cat_asset_release(&a);
    cat_asset_release(&dup);
    return rc;
}

/* ---- detect and probe: `acervo-probe` in a child ----------------------------------------------
 */

/* Runs acervo-probe (with --detect if detect) on the master; *out is its JSON. */
static int probe_run(struct jobs_act *act, int detect, json_t **out, struct err *err)
{
    char flag[] = "--detect", file[] = "/dev/stdin";
    char *args[3];
    int fd, rc, n = 0;

    *out = NULL;
    if (wf__master_open(act, &fd, err) < 0)
        return -1;
    if (detect)
        args[n++] = flag;
    args[n++] = file;
    args[n] = NULL;
    rc = wf__probe(act, args, fd, out, err);
    close(fd);
    return rc;
}

static int act_detect(struct jobs_act *act, struct err *err)
{
    json_t *kind;

    jobs_act_progress(act, 0, "detecting the type from the content");
    if (probe_run(act, 1, &kind, err) < 0)
        return -1;
    jobs_act_set_output(act, kind);
    return 0;
}

static void hms(long long s, char *out, size_t n)
{
    snprintf(out, n, "%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
}

/* The server's limits for hostile or unreasonable masters (max_media_duration,
 * max_video_pixels, max_image_pixels), checked on the probe's summary before any encode. */
static int limits_check(const struct cfg *cfg, const json_t *tech, struct err *err)
{
    const json_t *sum = json_object_get(tech, "summary");
    const char *type = json_string_value(json_object_get(sum, "type"));
    json_int_t w = json_integer_value(json_object_get(sum, "width"));
    json_int_t h = json_integer_value(json_object_get(sum, "height"));
    json_int_t ms = json_integer_value(json_object_get(sum, "duration_ms"));
    int video = type && strcmp(type, "video") == 0, image = type && strcmp(type, "image") == 0;
    long long max_px = image ? cfg->max_image_pixels : cfg->max_video_pixels;
    char a[32], b[32];

    if (!type)
        return 0;
    if ((video || image) && w > 0 && h > 0 && (long long)w * h > max_px)
        return err_set(err, ERR_LIMIT,
                       "the %s is %lldx%lld (%.1f Mpixel), over this server's limit of %.1f "
                       "Mpixel (%s)",
                       video ? "video picture" : "image", (long long)w, (long long)h,
                       (double)w * (double)h / 1e6, (double)max_px / 1e6,
                       video ? "max_video_pixels" : "max_image_pixels");
    if (!image && ms > (json_int_t)cfg->max_media_duration * 1000) {
        hms(ms / 1000, a, sizeof(a));
        hms(cfg->max_media_duration, b, sizeof(b));
        return err_set(err, ERR_LIMIT,
                       "the %s lasts %s, over this server's limit of %s (max_media_duration)", type,
                       a, b);
    }
    return 0;
}

static int act_probe(struct jobs_act *act, struct err *err)
{
    json_t *tech;

    jobs_act_progress(act, 0, "extracting technical metadata");
    if (probe_run(act, 0, &tech, err) < 0)
        return -1;
    if (limits_check(jobs_act_cfg(act), tech, err) < 0) {
        json_decref(tech);
        jobs_act_permanent(act);
        return -1;
    }
    jobs_act_set_output(act, tech);
    return 0;
}

/* ---- index --------------------------------------------------------------------------------------
 */

static int act_index(struct jobs_act *act, struct err *err)
{
    const json_t *outs = jobs_act_outputs(act);
    const json_t *kind = json_object_get(outs, "detect");
    json_t *tech = json_deep_copy(json_object_get(outs, "probe"));
    struct catalog *cat = jobs_act_catalog(act);
    const char *type, *mime;
    struct cat_asset a;
    char *text = NULL;
    int rc = -1;

    memset(&a, 0, sizeof(a));
    if (!json_is_object(tech) || !json_is_object(kind)) {
        json_decref(tech);
        return err_set(err, ERR_INTERNAL, "index runs without the outputs of detect and probe");
    }
    type = json_string_value(json_object_get(kind, "type"));
    mime = json_string_value(json_object_get(kind, "mime_type"));
    if (!type || !mime) {
        err_set(err, ERR_INTERNAL, "detect gave no type");
        goto out;
    }
    if (cat_asset_get(cat, jobs_act_asset_id(act), &a, err) < 0)
        goto out;
    if (strcmp(a.type, type) != 0 || strcmp(a.mime_type, mime) != 0)
        /* what the client declared, kept next to what the content is */
        json_object_set_new(tech, "declared",
                            json_pack("{s:s,s:s}", "type", a.type, "mime_type", a.mime_type));
    text = json_dumps(tech, JSON_COMPACT | JSON_REAL_PRECISION(15));
    if (cat_asset_set_technical(cat, a.id, type, mime, text, err) < 0)
        goto out;
    if (cat_asset_set_status(cat, a.id, ASSET_PROCESSING, ASSET_READY, NULL, err) < 0) {
        jobs_act_permanent(act);
        goto out;
    }
    jobs_act_set_output(act, json_pack("{s:s,s:s}", "status", ASSET_READY, "type", type));
    rc = 0;
out:
    free(text);
    json_decref(tech);
    cat_asset_release(&a);
    return rc;
}

/* ---- the definition -----------------------------------------------------------------------------
 */

const struct jobs_activity wf__act_assemble = {.name = "ingest.assemble", .run = act_assemble};
const struct jobs_activity wf__act_detect = {.name = "ingest.detect", .run = act_detect};
const struct jobs_activity wf__act_probe = {.name = "ingest.probe", .run = act_probe};
const struct jobs_activity wf__act_index = {.name = "ingest.index", .run = act_index};

static const struct jobs_step ingest_steps[] = {
    {.name = "assemble", .activity = "ingest.assemble", .queue = JOBS_Q_INGEST},
    {.name = "detect", .activity = "ingest.detect", .queue = JOBS_Q_INGEST},
    {.name = "probe", .activity = "ingest.probe", .queue = JOBS_Q_INGEST},
    {.name = "renditions",
     .activity = "media.rendition",
     .queue = JOBS_Q_TRANSCODE,
     .fanout = wf__renditions_fanout},
    {.name = "index", .activity = "ingest.index", .queue = JOBS_Q_INGEST},
};

const struct jobs_workflow_def wf__ingest = {"ingest", ingest_steps, ARRAY_LEN(ingest_steps), 1};
