-- 0007: idempotency keys. A client that sends POST /api/v1/assets with an Idempotency-Key
-- and loses the answer (a dropped connection, a killed process) sends it again with the
-- same key and gets the same asset back instead of a second, empty one. A key belongs to
-- its user; the fingerprint (SHA-256 of the request) tells a retry from a different request
-- under the same key. A key is forgotten when it expires or when its asset is deleted.
-- ASCII only (embedded into the binary).

CREATE TABLE idempotency_keys (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key         TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    fingerprint TEXT NOT NULL,
    asset_id    TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX idx_idempotency_keys_asset ON idempotency_keys(asset_id);
CREATE INDEX idx_idempotency_keys_expires ON idempotency_keys(expires_at);
