-- 0003: renditions as the rendition work records them: a profile and its version, a
-- variant (on-demand requests), every file written, parameters, expiry and errors.
-- Nothing wrote the 0001 table, but its rows are carried over all the same.

CREATE TABLE renditions_v3 (
    id              TEXT PRIMARY KEY,
    asset_id        TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    profile_name    TEXT NOT NULL,
    profile_version INTEGER NOT NULL DEFAULT 1,
    variant         TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'ready', 'failed', 'expired')),
    storage_bucket  TEXT,
    storage_key     TEXT,
    mime_type       TEXT,
    file_size_bytes INTEGER,
    width           INTEGER,
    height          INTEGER,
    duration_ms     INTEGER,
    bitrate_kbps    INTEGER,
    files           TEXT CHECK (files IS NULL OR json_valid(files)),
    params          TEXT CHECK (params IS NULL OR json_valid(params)),
    workflow_id     TEXT,
    error           TEXT,
    expires_at      INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    UNIQUE (asset_id, profile_name, profile_version, variant)
) STRICT;

INSERT INTO renditions_v3 (id, asset_id, profile_name, status, storage_bucket, storage_key,
                           mime_type, file_size_bytes, width, height, duration_ms,
                           bitrate_kbps, created_at, updated_at)
    SELECT id, asset_id, profile_name,
           CASE WHEN status IN ('pending', 'running', 'ready', 'failed', 'expired')
                THEN status ELSE 'pending' END,
           storage_bucket, storage_key, mime_type, file_size_bytes, width, height,
           duration_ms, bitrate_kbps, created_at, created_at
    FROM renditions;

DROP TABLE renditions;
ALTER TABLE renditions_v3 RENAME TO renditions;

-- The expiry sweep's index: ready renditions with an expiry, soonest first. Only 'ready'
-- rows are in it, so renditions already expired (they keep expires_at) do not pile up in
-- front of the ones the sweep is looking for.
CREATE INDEX idx_renditions_expires ON renditions(expires_at)
    WHERE status = 'ready' AND expires_at IS NOT NULL;
