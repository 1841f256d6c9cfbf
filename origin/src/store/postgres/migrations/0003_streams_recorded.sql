-- When (by the database's clock) and by which origin instance each stream was recorded, so
-- every instance's trending also counts the streams the others took in.
-- (A constant default first: on PostgreSQL 11 and later, adding the column does not rewrite
-- the table; new rows then take the clock. The index is built inside the migration's
-- transaction, which holds the table's lock meanwhile: on a large `streams` table, run the
-- upgrade's first origin while listening events are few.)
ALTER TABLE streams ADD COLUMN recorded_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE streams ALTER COLUMN recorded_ms
    SET DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
ALTER TABLE streams ADD COLUMN recorded_by TEXT COLLATE "C" NOT NULL DEFAULT '';
CREATE INDEX streams_recorded ON streams (recorded_ms);
