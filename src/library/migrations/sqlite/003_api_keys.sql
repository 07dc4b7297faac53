-- API keys: only the SHA-256 of a key is kept. A name is unique among keys that are not revoked.
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  hash TEXT NOT NULL UNIQUE,
  admin INTEGER NOT NULL CHECK (admin IN (0, 1)),
  created TEXT NOT NULL,
  revoked TEXT
);

CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked IS NULL;
