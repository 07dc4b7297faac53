-- Which model wrote an image's captions ('' for images captioned before this was recorded), and which API keys
-- stored it. '' as owner: stored without a key (every image stored before keys existed).
ALTER TABLE images ADD COLUMN model TEXT NOT NULL DEFAULT '';

CREATE INDEX images_created ON images (created DESC, id);

CREATE TABLE image_owners (
  image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
  owner TEXT NOT NULL,
  PRIMARY KEY (image_id, owner)
) WITHOUT ROWID;

CREATE INDEX image_owners_by_owner ON image_owners (owner, image_id);

INSERT INTO image_owners (image_id, owner) SELECT id, '' FROM images;
