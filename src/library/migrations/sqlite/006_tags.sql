-- ImageNet-guided tags (src/encoder/tags.ts): the caption words the encoder's ImageNet classifier was confident
-- about when the image was captioned, as JSON [{"word", "probability"}], most probable first. Images stored before
-- have none ('[]'). The tag words are indexed for search with the captions (images_fts.text: the captions, then
-- the tags, one per line); rows stored before keep their caption-only text until captioned again.
ALTER TABLE images ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';
