-- 0002: the workflow engine (workflows, their steps, jobs, history, effects, workers)
-- and the technical columns an ingest fills. See docs/internals/jobs.md.

-- A workflow: one run of a definition (src/jobs/workflows/) for an asset or none.
CREATE TABLE workflows (
    id              TEXT PRIMARY KEY,
    type            TEXT NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('running', 'completed', 'failed', 'cancelling', 'cancelled')),
    asset_id        TEXT,
    created_by      TEXT,
    input           TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(input)),
    error           TEXT,
    idempotency_key TEXT UNIQUE,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER
) STRICT;

CREATE INDEX idx_workflows_asset ON workflows(asset_id, id);
CREATE INDEX idx_workflows_type ON workflows(type, id);
CREATE INDEX idx_workflows_status ON workflows(status, id);
CREATE INDEX idx_workflows_created_by ON workflows(created_by, id);

-- The steps of a workflow that have started: a step is one activity fanned out over
-- jobs_total jobs; the next steps start when jobs_done reaches jobs_total.
CREATE TABLE workflow_steps (
    workflow_id TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    step        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'cancelled')),
    jobs_total  INTEGER NOT NULL,
    jobs_done   INTEGER NOT NULL DEFAULT 0,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    PRIMARY KEY (workflow_id, step)
) STRICT, WITHOUT ROWID;

-- A job: one activity run (with its attempts) on a task queue.
CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY,
    workflow_id      TEXT NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    step             TEXT NOT NULL,
    item             INTEGER NOT NULL DEFAULT 0,
    activity         TEXT NOT NULL,
    queue            TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('ready', 'leased', 'completed', 'failed', 'cancelled')),
    priority         INTEGER NOT NULL DEFAULT 0,
    run_after        INTEGER NOT NULL,
    attempt          INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    input            TEXT CHECK (input IS NULL OR json_valid(input)),
    output           TEXT CHECK (output IS NULL OR json_valid(output)),
    progress         REAL,
    progress_detail  TEXT,
    error            TEXT,
    error_class      TEXT,
    idempotency_key  TEXT NOT NULL UNIQUE,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    heartbeat_at     INTEGER,
    finished_at      INTEGER,
    UNIQUE (workflow_id, step, item)
) STRICT;

-- what a worker leases: highest priority first, then oldest
CREATE INDEX idx_jobs_ready ON jobs(queue, priority DESC, id) WHERE status = 'ready';
-- when a worker's next delayed job comes due
CREATE INDEX idx_jobs_due ON jobs(queue, run_after) WHERE status = 'ready';
-- what the reaper looks at: leases by expiry
CREATE INDEX idx_jobs_leased ON jobs(lease_until) WHERE status = 'leased';
CREATE INDEX idx_jobs_owner ON jobs(lease_owner) WHERE status = 'leased';

-- Every state change of a workflow and its jobs, in order (the history).
CREATE TABLE workflow_events (
    id          INTEGER PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    job_id      INTEGER,
    ts          INTEGER NOT NULL,
    type        TEXT NOT NULL,
    step        TEXT,
    attempt     INTEGER,
    worker      TEXT,
    detail      TEXT CHECK (detail IS NULL OR json_valid(detail))
) STRICT;

CREATE INDEX idx_workflow_events_workflow ON workflow_events(workflow_id, id);

-- Side effects already done, by idempotency key: an activity retried after a crash
-- finds its effect here instead of doing it twice.
CREATE TABLE activity_effects (
    idempotency_key TEXT PRIMARY KEY,
    job_id          INTEGER,
    result          TEXT CHECK (result IS NULL OR json_valid(result)),
    created_at      INTEGER NOT NULL
) STRICT;

-- Live worker processes and their queue slots (for queue depths and capacity).
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    host         TEXT NOT NULL,
    pid          INTEGER NOT NULL,
    queues       TEXT NOT NULL CHECK (json_valid(queues)),
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
) STRICT;

-- Technical columns for filtering, filled from technical_metadata by the ingest.
ALTER TABLE assets ADD COLUMN duration_ms INTEGER;
ALTER TABLE assets ADD COLUMN width INTEGER;
ALTER TABLE assets ADD COLUMN height INTEGER;
ALTER TABLE assets ADD COLUMN video_codec TEXT;
ALTER TABLE assets ADD COLUMN audio_codec TEXT;
ALTER TABLE assets ADD COLUMN frame_rate REAL;
ALTER TABLE assets ADD COLUMN bitrate_kbps INTEGER;
ALTER TABLE assets ADD COLUMN container TEXT;
ALTER TABLE assets ADD COLUMN captured_at TEXT;
ALTER TABLE assets ADD COLUMN duplicate_of TEXT;

CREATE INDEX idx_assets_duration ON assets(type, duration_ms);
CREATE INDEX idx_assets_captured ON assets(captured_at);
