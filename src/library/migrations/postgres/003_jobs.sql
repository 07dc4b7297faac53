-- Batch jobs and their items: the source of truth for a job's progress. `done` and `failed` count the items
-- whose result is recorded; they only change together with an item's first result.
CREATE TABLE jobs (
  id text PRIMARY KEY,
  owner text,
  state text NOT NULL CHECK (state IN ('queued', 'running', 'completed', 'cancelled')),
  total integer NOT NULL,
  done integer NOT NULL DEFAULT 0,
  failed integer NOT NULL DEFAULT 0,
  created timestamptz NOT NULL DEFAULT now(),
  finished timestamptz,
  options jsonb NOT NULL
);

CREATE INDEX jobs_by_owner ON jobs (owner, created);

CREATE TABLE job_items (
  job_id text NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
  idx integer NOT NULL,
  source text NOT NULL,
  -- {"imageId"} or {"error": {"code", "message"}}; NULL while pending.
  result jsonb,
  PRIMARY KEY (job_id, idx)
);

CREATE INDEX job_items_pending ON job_items (job_id, idx) WHERE result IS NULL;
