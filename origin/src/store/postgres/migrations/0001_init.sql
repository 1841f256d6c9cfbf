-- Chorus origin metadata, first schema. Keys use the "C" collation so that keyset paging
-- (ORDER BY id, WHERE id > $after) is byte order, as in the embedded store.

CREATE TABLE accounts (
    id         TEXT COLLATE "C" PRIMARY KEY,
    username   TEXT COLLATE "C" NOT NULL UNIQUE,
    record     JSONB NOT NULL
);

CREATE TABLE tokens (
    hash          BYTEA PRIMARY KEY,
    expires_at_ms BIGINT NOT NULL,
    record        JSONB NOT NULL
);
CREATE INDEX tokens_by_expiry ON tokens (expires_at_ms);

CREATE TABLE tracks (
    id        TEXT COLLATE "C" PRIMARY KEY,
    artist_id TEXT COLLATE "C" NOT NULL,
    album_id  TEXT COLLATE "C",
    record    JSONB NOT NULL
);
CREATE INDEX tracks_by_artist ON tracks (artist_id, id);
CREATE INDEX tracks_by_album ON tracks (album_id, id) WHERE album_id IS NOT NULL;

CREATE TABLE renditions (
    id     TEXT COLLATE "C" PRIMARY KEY,
    track  TEXT COLLATE "C" NOT NULL,
    record JSONB NOT NULL
);

CREATE TABLE playlists (
    id      TEXT COLLATE "C" PRIMARY KEY,
    owner   TEXT COLLATE "C" NOT NULL,
    version BIGINT NOT NULL,
    record  JSONB NOT NULL
);
CREATE INDEX playlists_by_owner ON playlists (owner);

-- Who sees a playlist in their list: the owner and the collaborators.
CREATE TABLE playlist_access (
    account  TEXT COLLATE "C" NOT NULL,
    playlist TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (account, playlist)
);

-- kind 0: liked songs (item: track id); kind 1: followed artists (item: artist id).
CREATE TABLE library (
    kind        SMALLINT NOT NULL,
    account     TEXT COLLATE "C" NOT NULL,
    item        TEXT COLLATE "C" NOT NULL,
    added_at_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, account, item)
);

CREATE TABLE event_ids (
    account TEXT COLLATE "C" NOT NULL,
    id      TEXT COLLATE "C" NOT NULL,
    at_ms   BIGINT NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE INDEX event_ids_by_time ON event_ids (at_ms);

CREATE TABLE plays (
    account    TEXT COLLATE "C" NOT NULL,
    play_id    TEXT COLLATE "C" NOT NULL,
    last_at_ms BIGINT NOT NULL,
    state      JSONB NOT NULL,
    PRIMARY KEY (account, play_id)
);
CREATE INDEX plays_by_time ON plays (last_at_ms);

CREATE TABLE streams (
    at_ms   BIGINT NOT NULL,
    account TEXT COLLATE "C" NOT NULL,
    play_id TEXT COLLATE "C" NOT NULL,
    record  JSONB NOT NULL,
    PRIMARY KEY (at_ms, account, play_id)
);

CREATE TABLE play_counts (
    track TEXT COLLATE "C" PRIMARY KEY,
    count BIGINT NOT NULL
);

CREATE TABLE offline_devices (
    account       TEXT COLLATE "C" NOT NULL,
    node          TEXT COLLATE "C" NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    PRIMARY KEY (account, node)
);
