-- 0001: the initial catalog schema (the seed's data model, adapted to SQLite).
-- Ids are UUID text (UUIDv7 for rows acervo creates); times are INTEGER milliseconds
-- since the epoch; JSON is TEXT checked with json_valid(). ASCII only: this file is
-- embedded into the binary as a C char array.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    password_hash TEXT,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'editor', 'admin')),
    token_hash    TEXT NOT NULL UNIQUE,
    s3_access_key TEXT UNIQUE,
    s3_secret     TEXT,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
) STRICT;

CREATE INDEX idx_api_keys_user ON api_keys(user_id);

CREATE TABLE assets (
    id                 TEXT PRIMARY KEY,
    external_id        TEXT UNIQUE,
    type               TEXT NOT NULL CHECK (type IN ('video', 'audio', 'image')),
    status             TEXT NOT NULL DEFAULT 'uploading'
                       CHECK (status IN ('uploading', 'processing', 'ready', 'failed', 'archived')),
    title              TEXT,
    description        TEXT,
    original_filename  TEXT NOT NULL,
    mime_type          TEXT NOT NULL,
    file_size_bytes    INTEGER NOT NULL CHECK (file_size_bytes >= 0),
    content_hash       TEXT,
    master_storage_key TEXT,
    technical_metadata TEXT CHECK (technical_metadata IS NULL OR json_valid(technical_metadata)),
    editorial_metadata TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(editorial_metadata)),
    failure_reason     TEXT,
    created_by         TEXT REFERENCES users(id),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

-- The seed's indexes. Secondary indexes of a rowid table do not carry the TEXT primary
-- key, so the filter indexes end in id: a filtered list walks them in id (time) order.
CREATE INDEX idx_assets_status ON assets(status, id);
CREATE INDEX idx_assets_type ON assets(type, id);
CREATE INDEX idx_assets_created_by ON assets(created_by, id);
CREATE INDEX idx_assets_created_at ON assets(created_at DESC);
CREATE INDEX idx_assets_content_hash ON assets(content_hash);

-- One live asset per master content: of two concurrent completes of the same bytes,
-- exactly one commits. Failed assets do not count (their content may be uploaded again).
CREATE UNIQUE INDEX ux_assets_live_content_hash ON assets(content_hash)
    WHERE status NOT IN ('failed') AND content_hash IS NOT NULL;

CREATE TABLE renditions (
    id              TEXT PRIMARY KEY,
    asset_id        TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    profile_name    TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    storage_key     TEXT,
    storage_bucket  TEXT,
    mime_type       TEXT,
    file_size_bytes INTEGER,
    width           INTEGER,
    height          INTEGER,
    duration_ms     INTEGER,
    bitrate_kbps    INTEGER,
    created_at      INTEGER NOT NULL,
    UNIQUE (asset_id, profile_name)
) STRICT;

CREATE TABLE asset_distributions (
    id              TEXT PRIMARY KEY,
    asset_id        TEXT NOT NULL REFERENCES assets(id),
    channel_type    TEXT NOT NULL,
    channel_id      TEXT NOT NULL,
    rendition_key   TEXT NOT NULL,
    external_id     TEXT,
    status          TEXT NOT NULL DEFAULT 'pending',
    error_message   TEXT,
    started_at      INTEGER,
    completed_at    INTEGER,
    created_by      TEXT REFERENCES users(id),
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL
) STRICT;

CREATE INDEX idx_distributions_asset ON asset_distributions(asset_id);
CREATE INDEX idx_distributions_status ON asset_distributions(status);

-- Append-only; actors and targets are plain text, not foreign keys, so the trail
-- outlives what it describes.
CREATE TABLE audit_log (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ts            INTEGER NOT NULL,
    actor_user_id TEXT,
    actor_key_id  TEXT,
    action        TEXT NOT NULL,
    target_type   TEXT,
    target_id     TEXT,
    detail        TEXT CHECK (detail IS NULL OR json_valid(detail)),
    request_id    TEXT
) STRICT;

CREATE INDEX idx_audit_log_target ON audit_log(target_id, id);
CREATE INDEX idx_audit_log_ts ON audit_log(ts);

-- The store multipart upload carrying an asset's master while it is 'uploading'.
CREATE TABLE uploads (
    asset_id   TEXT PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
    upload_id  TEXT NOT NULL UNIQUE,
    bucket     TEXT NOT NULL,
    key        TEXT NOT NULL,
    part_size  INTEGER NOT NULL,
    part_count INTEGER NOT NULL,
    created_by TEXT REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX idx_uploads_expires ON uploads(expires_at, asset_id);
