-- Artifacts the leading origin builds once for all (the recommendation model), stored as
-- content-addressed blobs; the others load the newest instead of building their own. The
-- predecessor is kept while readers may still be loading it.
CREATE TABLE published (
    name     TEXT COLLATE "C" PRIMARY KEY,
    blob     BYTEA NOT NULL CHECK (length(blob) = 32),
    built_ms BIGINT NOT NULL,
    bytes    BIGINT NOT NULL,
    previous BYTEA CHECK (length(previous) = 32)
);
