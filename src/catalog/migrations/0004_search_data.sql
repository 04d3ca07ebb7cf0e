-- 0004: what search needs from the catalog besides the asset's own fields: a document
-- number in creation order (the search index's id for the asset; newer is larger), the
-- language of the asset's text (which stemmer analyses it), the AI enrichment, and the
-- transcript as timestamped segments. ASCII only (embedded into the binary).

ALTER TABLE assets ADD COLUMN seq INTEGER;
UPDATE assets SET seq = r.n
    FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM assets) AS r
    WHERE assets.id = r.id;
CREATE UNIQUE INDEX ux_assets_seq ON assets(seq);

-- es, en ... (BCP 47 primary subtag); NULL: not known
ALTER TABLE assets ADD COLUMN language TEXT;

-- the analyzers' output: {"entities":[{"type","name"}],"objects":[...],"faces":[...],
-- "ocr_text":"...","topics":[...],"language":"es"} (docs/internals/search.md)
ALTER TABLE assets ADD COLUMN ai_metadata TEXT NOT NULL DEFAULT '{}'
    CHECK (json_valid(ai_metadata));

CREATE TABLE transcript_segments (
    id         INTEGER PRIMARY KEY,
    asset_id   TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL CHECK (idx >= 0),
    start_ms   INTEGER NOT NULL CHECK (start_ms >= 0),
    end_ms     INTEGER NOT NULL CHECK (end_ms >= start_ms),
    speaker    TEXT,
    confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    text       TEXT NOT NULL,
    UNIQUE (asset_id, idx)
) STRICT;
