-- Image–text matching: the best caption's confidence (the matcher's calibrated probability, NULL when captioned
-- without a matcher) and the image's embedding for search by meaning, a pgvector `vector` with the id of the
-- matcher that made it (embeddings of different matchers are never compared). The column has no fixed dimension:
-- D comes from the matcher, which can change under a running library; a search compares only embeddings of the
-- current matcher (ORDER BY embedding <=> query, cosine distance; exact, no approximate index). pgvector must be
-- installed on the server (scripts/setup.sh builds it; images: pgvector/pgvector).
CREATE EXTENSION IF NOT EXISTS vector;

ALTER TABLE images
  ADD COLUMN confidence double precision,
  ADD COLUMN embedding vector,
  ADD COLUMN embedding_model text;

CREATE INDEX images_embedding_model ON images (embedding_model) WHERE embedding_model IS NOT NULL;
