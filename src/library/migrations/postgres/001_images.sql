-- One row per distinct image, keyed by the SHA-256 of its bytes: the bytes, a JPEG thumbnail, and the captions
-- of the model that wrote them, with full-text search over every caption (english stemming: "dogs" finds
-- "dog"). image_owners: which API keys stored it ('' = stored without a key).
CREATE TABLE images (
  id text PRIMARY KEY,
  created timestamptz NOT NULL DEFAULT now(),
  width integer NOT NULL,
  height integer NOT NULL,
  format text NOT NULL,
  caption text NOT NULL,
  captions jsonb NOT NULL,
  -- Every caption, one per line: what the search indexes.
  captions_text text NOT NULL,
  model text NOT NULL DEFAULT '',
  bytes bytea NOT NULL,
  thumbnail bytea NOT NULL,
  search tsvector GENERATED ALWAYS AS (to_tsvector('english', captions_text)) STORED
);

CREATE INDEX images_search ON images USING gin (search);
CREATE INDEX images_created ON images (created DESC, id);

CREATE TABLE image_owners (
  image_id text NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  owner text NOT NULL,
  PRIMARY KEY (image_id, owner)
);

CREATE INDEX image_owners_by_owner ON image_owners (owner, image_id);
