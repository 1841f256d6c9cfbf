-- Each listener's player state (/v1/me/player): queue, place, device, and a version every
-- write bumps, so a stale device's write is refused.
CREATE TABLE players (
    account TEXT COLLATE "C" PRIMARY KEY,
    version BIGINT NOT NULL,
    record  JSONB NOT NULL
);
