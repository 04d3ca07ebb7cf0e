-- 0005: the search index, in the catalog (docs/internals/search.md). Triggers keep it in
-- step with assets and transcript_segments inside the writing transaction, so a commit is
-- searchable at once and no write path can forget it. The acervo_* functions are the
-- shared analyzer (src/search), registered on every catalog connection; a connection
-- without them cannot change what the index holds. ASCII only (embedded into the binary).

-- While 1, the asset's search document is out of the index: the transcript of its AI
-- column is being replaced (cat_asset_set_enrichment, asset deletion).
ALTER TABLE assets ADD COLUMN search_hold INTEGER NOT NULL DEFAULT 0
    CHECK (search_hold IN (0, 1));

-- A segment's id is its asset's seq * 131072 + idx: an asset's segments are stored together,
-- in time order. The asset reference is checked at commit, so a bulk import can write an
-- asset's transcript before the asset (whose insertion then indexes it whole).
CREATE TABLE transcript_segments_0005 (
    id         INTEGER PRIMARY KEY,
    asset_id   TEXT NOT NULL REFERENCES assets(id) ON DELETE CASCADE
               DEFERRABLE INITIALLY DEFERRED,
    idx        INTEGER NOT NULL CHECK (idx >= 0 AND idx < 131072),
    start_ms   INTEGER NOT NULL CHECK (start_ms >= 0),
    end_ms     INTEGER NOT NULL CHECK (end_ms >= start_ms),
    speaker    TEXT,
    confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    text       TEXT NOT NULL,
    UNIQUE (asset_id, idx)
) STRICT;
INSERT INTO transcript_segments_0005
    SELECT a.seq * 131072 + s.idx, s.asset_id, s.idx, s.start_ms, s.end_ms, s.speaker,
           s.confidence, s.text
    FROM transcript_segments s JOIN assets a ON a.id = s.asset_id;
DROP TABLE transcript_segments;
ALTER TABLE transcript_segments_0005 RENAME TO transcript_segments;

-- What each asset's search document holds, from its row as it is now (lang: the analysis
-- language, search_doc_lang).
CREATE VIEW search_src AS
SELECT seq, id, search_hold AS hold, lang, type, status, created_at, duration_ms,
       acervo_terms(lang, title) AS t_title,
       acervo_names(editorial_metadata, ai_metadata) AS t_names,
       acervo_body(lang, description, original_filename, editorial_metadata) AS t_body,
       acervo_ai(lang, ai_metadata,
                 (SELECT group_concat(s.text, ' ') FROM transcript_segments s
                  WHERE s.asset_id = x.id)) AS t_ai,
       acervo_keys(type, status, lang, created_at, editorial_metadata, ai_metadata,
                   video_codec, audio_codec, width, height) AS t_keys,
       acervo_facets(editorial_metadata, ai_metadata) AS facets
FROM (SELECT *, acervo_lang(language, title, description) AS lang FROM assets) AS x;

-- The asset index (rowid = seq) and the title index (title matches never lost behind the
-- candidate cap). Contentless: the text is in assets and transcript_segments; the terms are
-- made by acervo_*, so the tokenizer only splits on spaces ('=' and '_' belong to keys).
-- The transcript is the asset index's ai column; the segments that match are found when a
-- transcript search reads the candidates' transcripts (docs/internals/search.md).
CREATE VIRTUAL TABLE search_doc USING fts5(title, names, body, ai, keys, content = '',
    tokenize = "ascii tokenchars '=_'");
CREATE VIRTUAL TABLE search_title USING fts5(title, keys, content = '',
    tokenize = "ascii tokenchars '=_'");
-- pending terms are written out every 16 MiB (not 1 MiB): fewer, bigger segments to merge
-- when a bulk import writes a batch in one transaction
INSERT INTO search_doc (search_doc, rank) VALUES ('hashsize', 16777216);
INSERT INTO search_title (search_title, rank) VALUES ('hashsize', 16777216);

-- The vocabulary: every term indexed, with how many times a document holding it was indexed
-- (a measure of its frequency; never decremented). A prefix query (infla*) becomes its most
-- frequent terms ORed: FTS5's own prefix indexes would double the cost of indexing.
CREATE TABLE search_terms (
    term TEXT PRIMARY KEY,
    n    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Per asset, what the planner reads for every candidate: filters, recency, facets.
CREATE TABLE search_meta (
    seq         INTEGER PRIMARY KEY,
    asset_id    TEXT NOT NULL,
    type        TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    duration_ms INTEGER,
    facets      TEXT NOT NULL
) STRICT;

-- Per month of created_at (YYYYMM, UTC), the seq range of the assets created in it: a
-- created: filter becomes a seq range, and a candidate's age comes from its seq. created_at
-- never changes; a deleted asset leaves the range as it was (a range may only be wider).
CREATE TABLE search_months (
    month INTEGER PRIMARY KEY,
    lo    INTEGER NOT NULL,
    hi    INTEGER NOT NULL
) STRICT;

-- Suggestions for the search bar: tags, programs, categories and entities with the number
-- of assets that carry them; key is the folded value (prefix lookups).
CREATE TABLE search_suggest (
    kind  TEXT NOT NULL,
    value TEXT NOT NULL,
    key   TEXT NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
) STRICT, WITHOUT ROWID;
CREATE INDEX idx_search_suggest_key ON search_suggest(key, n);

-- (cat_import_analyze makes the same list for a bulk import: keep the two in step)
CREATE VIEW search_names AS
SELECT x.id, 'tag' AS kind, j.value AS value FROM assets x,
       json_each(x.editorial_metadata, '$.tags') j
WHERE json_type(x.editorial_metadata, '$.tags') = 'array' AND j.type = 'text'
UNION ALL
SELECT x.id, 'program', json_extract(x.editorial_metadata, '$.program') FROM assets x
WHERE json_type(x.editorial_metadata, '$.program') = 'text'
UNION ALL
SELECT x.id, 'category', json_extract(x.editorial_metadata, '$.category') FROM assets x
WHERE json_type(x.editorial_metadata, '$.category') = 'text'
UNION ALL
SELECT x.id, 'entity', coalesce(json_extract(j.value, '$.name'), j.value) FROM assets x,
       json_each(x.ai_metadata, '$.entities') j
WHERE json_type(x.ai_metadata, '$.entities') = 'array'
  AND (j.type = 'text' OR json_type(j.value, '$.name') = 'text');

-- ---- the index of what is there now ----
INSERT INTO search_doc (rowid, title, names, body, ai, keys)
    SELECT seq, t_title, t_names, t_body, t_ai, t_keys FROM search_src WHERE hold = 0;
INSERT INTO search_title (rowid, title, keys)
    SELECT seq, t_title, t_keys FROM search_src WHERE hold = 0;
INSERT INTO search_meta
    SELECT seq, id, type, status, created_at, duration_ms, facets FROM search_src;
INSERT INTO search_months (month, lo, hi)
    SELECT CAST(strftime('%Y%m', created_at / 1000, 'unixepoch') AS INTEGER), min(seq), max(seq)
    FROM assets GROUP BY 1;
INSERT INTO search_terms (term, n)
    SELECT j.value, count(*) FROM search_src x,
           json_each(acervo_vocab(x.t_title, x.t_names, x.t_body, x.t_ai)) j
    GROUP BY j.value;
INSERT INTO search_suggest (kind, value, key, n)
    SELECT kind, value, acervo_fold(value), count(*) FROM search_names
    WHERE length(value) BETWEEN 1 AND 200 GROUP BY kind, value;

-- ---- assets ----
-- acervo_bulk(): 1 on a connection of a bulk import, which indexes each batch in a few
-- statements itself (FTS5 flushes its pending terms at every trigger's savepoint: one tiny
-- segment per row otherwise).
CREATE TRIGGER search_asset_insert AFTER INSERT ON assets WHEN NOT acervo_bulk() BEGIN
    INSERT INTO search_doc (rowid, title, names, body, ai, keys)
        SELECT seq, t_title, t_names, t_body, t_ai, t_keys FROM search_src
        WHERE seq = new.seq AND hold = 0;
    INSERT INTO search_title (rowid, title, keys)
        SELECT seq, t_title, t_keys FROM search_src WHERE seq = new.seq AND hold = 0;
    INSERT INTO search_meta
        SELECT seq, id, type, status, created_at, duration_ms, facets FROM search_src
        WHERE seq = new.seq AND hold = 0;
    INSERT INTO search_terms (term, n)
        SELECT j.value, 1 FROM search_src x,
               json_each(acervo_vocab(x.t_title, x.t_names, x.t_body, x.t_ai)) j
        WHERE x.seq = new.seq AND x.hold = 0
        ON CONFLICT (term) DO UPDATE SET n = n + 1;
    INSERT INTO search_months (month, lo, hi)
        VALUES (CAST(strftime('%Y%m', new.created_at / 1000, 'unixepoch') AS INTEGER), new.seq,
                new.seq)
        ON CONFLICT (month) DO UPDATE SET lo = min(lo, excluded.lo), hi = max(hi, excluded.hi);
    INSERT INTO search_suggest (kind, value, key, n)
        SELECT DISTINCT kind, value, acervo_fold(value), 1 FROM search_names
        WHERE id = new.id AND length(value) BETWEEN 1 AND 200
        ON CONFLICT (kind, value) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER search_asset_before_update BEFORE UPDATE OF title, description,
    original_filename, editorial_metadata, ai_metadata, language, type, status, duration_ms,
    video_codec, audio_codec, width, height, search_hold ON assets BEGIN
    INSERT INTO search_doc (search_doc, rowid, title, names, body, ai, keys)
        SELECT 'delete', seq, t_title, t_names, t_body, t_ai, t_keys FROM search_src
        WHERE seq = old.seq AND hold = 0;
    INSERT INTO search_title (search_title, rowid, title, keys)
        SELECT 'delete', seq, t_title, t_keys FROM search_src WHERE seq = old.seq AND hold = 0;
END;

CREATE TRIGGER search_asset_after_update AFTER UPDATE OF title, description,
    original_filename, editorial_metadata, ai_metadata, language, type, status, duration_ms,
    video_codec, audio_codec, width, height, search_hold ON assets BEGIN
    INSERT INTO search_doc (rowid, title, names, body, ai, keys)
        SELECT seq, t_title, t_names, t_body, t_ai, t_keys FROM search_src
        WHERE seq = new.seq AND hold = 0;
    INSERT INTO search_title (rowid, title, keys)
        SELECT seq, t_title, t_keys FROM search_src WHERE seq = new.seq AND hold = 0;
    INSERT OR REPLACE INTO search_meta
        SELECT seq, id, type, status, created_at, duration_ms, facets FROM search_src
        WHERE seq = new.seq;
    INSERT INTO search_terms (term, n)
        SELECT j.value, 1 FROM search_src x,
               json_each(acervo_vocab(x.t_title, x.t_names, x.t_body, x.t_ai)) j
        WHERE x.seq = new.seq AND x.hold = 0
          AND (old.search_hold = 1 OR old.title IS NOT new.title OR old.description IS NOT new.description
               OR old.original_filename IS NOT new.original_filename
               OR old.editorial_metadata IS NOT new.editorial_metadata
               OR old.ai_metadata IS NOT new.ai_metadata OR old.language IS NOT new.language)
        ON CONFLICT (term) DO UPDATE SET n = n + 1;
END;

-- suggestions count assets per name (a name no asset carries any more stays with n = 0)
CREATE TRIGGER search_names_before_update BEFORE UPDATE OF editorial_metadata, ai_metadata
    ON assets BEGIN
    UPDATE search_suggest SET n = n - 1 WHERE (kind, value) IN
        (SELECT kind, value FROM search_names WHERE id = old.id);
END;

CREATE TRIGGER search_names_after_update AFTER UPDATE OF editorial_metadata, ai_metadata
    ON assets BEGIN
    INSERT INTO search_suggest (kind, value, key, n)
        SELECT DISTINCT kind, value, acervo_fold(value), 1 FROM search_names
        WHERE id = new.id AND length(value) BETWEEN 1 AND 200
        ON CONFLICT (kind, value) DO UPDATE SET n = n + 1;
END;

-- An asset with a transcript is deleted inside a hold (its segments first); without one,
-- the document goes here.
CREATE TRIGGER search_asset_delete BEFORE DELETE ON assets BEGIN
    INSERT INTO search_doc (search_doc, rowid, title, names, body, ai, keys)
        SELECT 'delete', seq, t_title, t_names, t_body, t_ai, t_keys FROM search_src
        WHERE seq = old.seq AND hold = 0;
    INSERT INTO search_title (search_title, rowid, title, keys)
        SELECT 'delete', seq, t_title, t_keys FROM search_src WHERE seq = old.seq AND hold = 0;
    DELETE FROM search_meta WHERE seq = old.seq;
    UPDATE search_suggest SET n = n - 1 WHERE (kind, value) IN
        (SELECT kind, value FROM search_names WHERE id = old.id);
END;

-- ---- transcript segments: only while their asset's document is held out of the index
-- (or before their asset exists: a bulk import) ----
CREATE TRIGGER search_segment_insert AFTER INSERT ON transcript_segments
    WHEN EXISTS (SELECT 1 FROM assets WHERE id = new.asset_id AND search_hold = 0) BEGIN
    SELECT RAISE(ABORT, 'transcript segments change only while the asset is held out of the search index');
END;

CREATE TRIGGER search_segment_delete BEFORE DELETE ON transcript_segments
    WHEN EXISTS (SELECT 1 FROM assets WHERE id = old.asset_id AND search_hold = 0) BEGIN
    SELECT RAISE(ABORT, 'transcript segments change only while the asset is held out of the search index');
END;

CREATE TRIGGER search_segment_update BEFORE UPDATE ON transcript_segments BEGIN
    SELECT RAISE(ABORT, 'transcript segments are replaced, not updated');
END;
