-- API keys: only the SHA-256 of a key is kept. A name is unique among keys that are not revoked.
CREATE TABLE api_keys (
  id text PRIMARY KEY,
  name text NOT NULL,
  hash text NOT NULL UNIQUE,
  admin boolean NOT NULL,
  created timestamptz NOT NULL DEFAULT now(),
  revoked timestamptz
);

CREATE UNIQUE INDEX api_keys_active_name ON api_keys (name) WHERE revoked IS NULL;
