-- The change feed origins sharing this database follow (search index, caches), and the
-- fingerprint of the keys they share. A writer
-- advances change_feed.head in the transaction of its change, so the row lock orders the
-- entries by commit: a reader that sees entry n has seen every entry before it.

CREATE TABLE change_feed (
    singleton      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    id             TEXT NOT NULL,
    head           BIGINT NOT NULL,
    pruned_through BIGINT NOT NULL,
    -- Fingerprint of the signing keys the origins serving this database share.
    service        TEXT
);
INSERT INTO change_feed (id, head, pruned_through)
VALUES (replace(gen_random_uuid()::text, '-', ''), 0, 0);

CREATE TABLE changes (
    seq   BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    kind  TEXT NOT NULL,
    id    TEXT COLLATE "C" NOT NULL
);
