/*
 * api: API keys (provisioning and POST /api/v1/keys), the caller's identity (/me) and the
 * audit log. A key carries a bearer token (only its SHA-256 is stored) and an S3 access
 * key + secret the presigned URLs are signed with.
 */
#include "api/api_int.h"

#include <string.h>

/** Length of a random token in bytes (64 hex characters). */
#define KEY_TOKEN_BYTES 32
/** Bounds of a caller-supplied token. */
#define KEY_TOKEN_MIN 16
#define KEY_TOKEN_MAX 128
/** Longest user / key name in bytes (struct cat_user.name holds 127). */
#define KEY_NAME_MAX 127

/** A freshly provisioned key, secrets included (they are shown once). */
struct key_new {
    struct cat_user user;
    struct cat_key key;
    char token[KEY_TOKEN_MAX + 1];
};

/* n random characters of set (uniform: bytes past the largest multiple are redrawn) */
static void random_chars(char *out, size_t n, const char *set)
{
    size_t m = strlen(set), limit = 256 - 256 % m, i = 0;

    while (i < n) {
        unsigned char b[32];

        util_random(b, sizeof(b));
        for (size_t j = 0; j < sizeof(b) && i < n; j++)
            if (b[j] < limit)
                out[i++] = set[b[j] % m];
    }
    out[n] = '\0';
}

static int token_valid(const char *t, struct err *err)
{
    size_t n = strlen(t);

    if (n < KEY_TOKEN_MIN || n > KEY_TOKEN_MAX)
        return err_set(err, ERR_INVALID, "a token must have %d to %d characters", KEY_TOKEN_MIN,
                       KEY_TOKEN_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return err_set(err, ERR_INVALID,
                           "a token must consist of printable ASCII characters without spaces");
    return 0;
}

static int name_valid(const char *name, struct err *err)
{
    size_t n = strlen(name);

    if (n < 1 || n > KEY_NAME_MAX)
        return err_set(err, ERR_INVALID, "a key name must have 1 to %d bytes", KEY_NAME_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] == 0x7f)
            return err_set(err, ERR_INVALID, "a key name must not contain control characters");
    return 0;
}

static int key_provision(struct catalog *cat, enum cat_role role, const char *name,
                         const char *token_in, struct key_new *out, struct err *err)
{
    char genname[KEY_NAME_MAX + 1];
    unsigned char secret[30];

    memset(out, 0, sizeof(*out));
    if ((int)role < ROLE_VIEWER || (int)role > ROLE_ADMIN)
        return err_set(err, ERR_INVALID, "unknown role %d", (int)role);
    if (!name) {
        char tail[9];

        util_token_hex(tail, 4);
        snprintf(genname, sizeof(genname), "%s-%s", cat_role_name(role), tail);
        name = genname;
    }
    if (name_valid(name, err) < 0)
        return -1;
    if (token_in) {
        if (token_valid(token_in, err) < 0)
            return -1;
        snprintf(out->token, sizeof(out->token), "%s", token_in);
    } else {
        util_token_hex(out->token, KEY_TOKEN_BYTES);
    }

    if (cat_user_create(cat, name, role, &out->user, err) < 0)
        return -1;
    util_uuid7(out->key.id);
    snprintf(out->key.user_id, sizeof(out->key.user_id), "%s", out->user.id);
    snprintf(out->key.name, sizeof(out->key.name), "%s", name);
    out->key.role = role;
    util_sha256_hex(out->token, strlen(out->token), out->key.token_hash);
    memcpy(out->key.s3_access_key, "AK", 2);
    random_chars(out->key.s3_access_key + 2, 18, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789");
    util_random(secret, sizeof(secret));
    util_base64(secret, sizeof(secret), out->key.s3_secret); /* 40 characters */
    out->key.created_at = util_now_ms();
    if (cat_key_create(cat, &out->key, err) < 0) {
        log_write(LOG_WARN, "api", "user %s was created but its key was not", out->user.id);
        return -1;
    }
    return 0;
}

/* the provisioning result as the API shows it (secrets included). New reference. */
static json_t *key_new_json(const struct key_new *k)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "token", k->token, "s3_access_key",
                     k->key.s3_access_key, "s3_secret_key", k->key.s3_secret, "role",
                     cat_role_name(k->key.role), "name", k->user.name, "key_id", k->key.id,
                     "user_id", k->user.id);
}

int api_key_provision(struct catalog *cat, enum cat_role role, const char *name,
                      const char *token_in, char **out_json, struct err *err)
{
    struct key_new k;
    json_t *o;

    if (key_provision(cat, role, name, token_in, &k, err) < 0)
        return -1;
    o = key_new_json(&k);
    *out_json = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    memset(&k, 0, sizeof(k));
    if (!*out_json)
        return err_set(err, ERR_INTERNAL, "cannot encode the new key");
    return 0;
}

/* ---- POST /api/v1/keys -------------------------------------------------------------------- */

void api__keys_create(struct http_req *req, const char *const *params)
{
    static const char *const fields[] = {"role", "name", NULL};
    struct api_state *st = api__state(req);
    const char *role_s, *name;
    struct key_new k;
    int role;
    struct err e;

    (void)params;
    if (api__json_known(st->body, fields, "", &e) < 0 ||
        api__json_string(st->body, "role", 1, 16, 0, &role_s, &e) < 0 ||
        api__json_string(st->body, "name", 1, KEY_NAME_MAX, API_NULLABLE, &name, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (!role_s) {
        api__fail(req, ERR_INVALID, "field 'role' is required");
        return;
    }
    role = cat_role_parse(role_s);
    if (role < 0) {
        api__fail(req, ERR_INVALID, "field 'role' must be admin, editor or viewer");
        return;
    }
    if (name && strlen(name) > KEY_NAME_MAX) {
        api__fail(req, ERR_INVALID, "field 'name' must have at most %d bytes", KEY_NAME_MAX);
        return;
    }
    if (name && name_valid(name, &e) < 0) {
        api__fail(req, ERR_INVALID, "field 'name' must not contain control characters");
        return;
    }
    if (key_provision(st->ctx->cat, (enum cat_role)role, name, NULL, &k, &e) < 0) {
        if (e.code == ERR_CONFLICT)
            err_set(&e, ERR_CONFLICT, "a user with that name exists already");
        api__send_err(req, &e);
        return;
    }
    api__audit(req, "key.create", "key", k.key.id,
               json_pack("{s:s,s:s,s:s,s:s}", "role", cat_role_name(k.key.role), "name",
                         k.user.name, "user_id", k.user.id, "s3_access_key", k.key.s3_access_key));
    api__send_json(req, 201, key_new_json(&k));
    memset(&k, 0, sizeof(k));
}

/* ---- DELETE /api/v1/keys/{id} ---------------------------------------------------------------- */

void api__keys_revoke(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    struct err e;

    if (!util_uuid_valid(params[0])) {
        api__fail(req, ERR_NOTFOUND, "no key %s", params[0]);
        return;
    }
    /* an admin revoking the key in use would lock everyone out of an install with one
     * admin key; revoke it from another admin key */
    if (strcmp(params[0], st->who.key_id) == 0) {
        api__fail(req, ERR_CONFLICT, "a key cannot revoke itself; use another admin key");
        return;
    }
    if (cat_key_revoke(st->ctx->cat, params[0], &e) < 0) {
        if (e.code == ERR_NOTFOUND)
            err_set(&e, ERR_NOTFOUND, "no live key %s (unknown or already revoked)", params[0]);
        api__send_err(req, &e);
        return;
    }
    api__audit(req, "key.revoke", "key", params[0], NULL);
    http_send_empty(req, 204);
}

/* ---- GET /api/v1/me ------------------------------------------------------------------------- */

void api__me(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);

    (void)params;
    api__send_json(req, 200,
                   json_pack("{s:s,s:s,s:s}", "user_id", st->who.user_id, "key_id", st->who.key_id,
                             "role", cat_role_name(st->who.role)));
}

/* ---- GET /api/v1/audit -------------------------------------------------------------------- */

static int audit_one(void *p, const char *row)
{
    json_t *items = p;
    json_error_t je;
    json_t *o = json_loads(row, 0, &je);

    if (!o) {
        log_write(LOG_ERROR, "api", "audit row is not JSON: %s", je.text);
        return 0;
    }
    json_array_append_new(items, o);
    return 0;
}

void api__audit_list(struct http_req *req, const char *const *params)
{
    struct api_state *st = api__state(req);
    const char *target;
    json_t *items;
    int64_t limit;
    struct err e;

    (void)params;
    if (api__query_int(req, "limit", 1, 1000, 100, &limit, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (api__query_string(req, "target_id", 0, 128, 0, &target, &e) < 0) {
        api__send_err(req, &e);
        return;
    }
    if (target && (!*target || strlen(target) > 128)) {
        api__fail(req, ERR_INVALID, "query parameter 'target_id' must have 1 to 128 bytes");
        return;
    }
    items = json_array();
    if (cat_audit_list(st->ctx->cat, target, (int)limit, audit_one, items, &e) < 0) {
        json_decref(items);
        api__send_err(req, &e);
        return;
    }
    api__send_json(req, 200, json_pack("{s:o}", "items", items));
}
