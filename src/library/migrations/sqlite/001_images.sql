-- The library as first released: one row per distinct image (keyed by the SHA-256 of its bytes) and an FTS5
-- index over every caption of it. IF NOT EXISTS: library files made before migrations were recorded already
-- hold these tables, exactly so.
CREATE TABLE IF NOT EXISTS images (
  id TEXT PRIMARY KEY,
  created TEXT NOT NULL,
  width INTEGER NOT NULL,
  height INTEGER NOT NULL,
  format TEXT NOT NULL,
  caption TEXT NOT NULL,
  captions_json TEXT NOT NULL,
  bytes BLOB NOT NULL,
  thumbnail BLOB NOT NULL
);

-- Porter stemming ("dogs" finds "dog"); unicode61 folds case and diacritics of any script.
CREATE VIRTUAL TABLE IF NOT EXISTS images_fts USING fts5(id UNINDEXED, text, tokenize = 'porter unicode61');
