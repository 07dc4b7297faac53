-- Image–text matching: the best caption's confidence (the matcher's calibrated probability, NULL when captioned
-- without a matcher) and the image's embedding for search by meaning: float32 little-endian, unit length, with
-- the id of the matcher that made it (embeddings of different matchers are never compared). Searched by brute
-- force (every embedding of the current matcher is compared): fine for libraries of tens of thousands of images.
ALTER TABLE images ADD COLUMN confidence REAL;
ALTER TABLE images ADD COLUMN embedding BLOB;
ALTER TABLE images ADD COLUMN embedding_model TEXT;

CREATE INDEX images_embedding_model ON images (embedding_model) WHERE embedding_model IS NOT NULL;
