-- Batch jobs and their items: the source of truth for a job's progress. `done` and `failed` count the items
-- whose result is recorded; they only change together with an item's first result.
CREATE TABLE jobs (
  id TEXT PRIMARY KEY,
  owner TEXT,
  state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'cancelled')),
  total INTEGER NOT NULL,
  done INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  created TEXT NOT NULL,
  finished TEXT,
  options_json TEXT NOT NULL
);

CREATE INDEX jobs_by_owner ON jobs (owner, created);

CREATE TABLE job_items (
  job_id TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  source TEXT NOT NULL,
  -- JSON: {"imageId"} or {"error": {"code", "message"}}; NULL while pending.
  result_json TEXT,
  PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;

CREATE INDEX job_items_pending ON job_items (job_id, idx) WHERE result_json IS NULL;
