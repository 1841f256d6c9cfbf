-- Pictures uploaded for albums and artists ('album/<id>', 'artist/<id>'): a set of JPEG sizes,
-- each a content-addressed blob in the object store.
CREATE TABLE images (
    key    TEXT COLLATE "C" PRIMARY KEY,
    record JSONB NOT NULL
);
