-- 0006: transcript segments addressed by their id alone. A segment's id is its asset's
-- seq * 131072 + idx, so the asset's segments are one rowid range: the text asset_id column,
-- its unique index and the foreign key (a second B-tree write and two lookups per segment,
-- a quarter of a bulk import's writing) are gone. idx is computed from the id. An asset's
-- deletion removes its segments by trigger; the insert trigger checks that the asset
-- exists and is held out of the index (a bulk import, which writes a transcript just
-- before its asset in one transaction, is exempt). ASCII only (embedded into the binary).

DROP TRIGGER search_segment_insert;
DROP TRIGGER search_segment_delete;
DROP TRIGGER search_segment_update;
DROP VIEW search_src;

CREATE TABLE transcript_segments_0006 (
    id         INTEGER PRIMARY KEY CHECK (id >= 131072),
    idx        INTEGER GENERATED ALWAYS AS (id % 131072) VIRTUAL,
    start_ms   INTEGER NOT NULL CHECK (start_ms >= 0),
    end_ms     INTEGER NOT NULL CHECK (end_ms >= start_ms),
    speaker    TEXT,
    confidence REAL CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 1)),
    text       TEXT NOT NULL
) STRICT;
INSERT INTO transcript_segments_0006 (id, start_ms, end_ms, speaker, confidence, text)
    SELECT id, start_ms, end_ms, speaker, confidence, text FROM transcript_segments
    ORDER BY id;
DROP TABLE transcript_segments;
-- the asset triggers name search_src, made again below: the rename must not check them
PRAGMA legacy_alter_table = ON;
ALTER TABLE transcript_segments_0006 RENAME TO transcript_segments;
PRAGMA legacy_alter_table = OFF;

CREATE VIEW search_src AS
SELECT seq, id, search_hold AS hold, lang, type, status, created_at, duration_ms,
       acervo_terms(lang, title) AS t_title,
       acervo_names(editorial_metadata, ai_metadata) AS t_names,
       acervo_body(lang, description, original_filename, editorial_metadata) AS t_body,
       acervo_ai(lang, ai_metadata,
                 (SELECT group_concat(s.text, ' ') FROM transcript_segments s
                  WHERE s.id BETWEEN x.seq * 131072 AND x.seq * 131072 + 131071)) AS t_ai,
       acervo_keys(type, status, lang, created_at, editorial_metadata, ai_metadata,
                   video_codec, audio_codec, width, height) AS t_keys,
       acervo_facets(editorial_metadata, ai_metadata) AS facets
FROM (SELECT *, acervo_lang(language, title, description) AS lang FROM assets) AS x;

CREATE TRIGGER search_asset_segments_delete AFTER DELETE ON assets BEGIN
    DELETE FROM transcript_segments
    WHERE id BETWEEN old.seq * 131072 AND old.seq * 131072 + 131071;
END;

CREATE TRIGGER search_segment_insert AFTER INSERT ON transcript_segments
    WHEN NOT acervo_bulk() AND NOT EXISTS
        (SELECT 1 FROM assets WHERE seq = new.id / 131072 AND search_hold = 1) BEGIN
    SELECT RAISE(ABORT, 'transcript segments are written only for an existing asset held out of the search index');
END;

CREATE TRIGGER search_segment_delete BEFORE DELETE ON transcript_segments
    WHEN EXISTS (SELECT 1 FROM assets WHERE seq = old.id / 131072 AND search_hold = 0) BEGIN
    SELECT RAISE(ABORT, 'transcript segments change only while the asset is held out of the search index');
END;

CREATE TRIGGER search_segment_update BEFORE UPDATE ON transcript_segments BEGIN
    SELECT RAISE(ABORT, 'transcript segments are replaced, not updated');
END;
