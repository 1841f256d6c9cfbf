-- Albums read in disc and track order: each track's place in its album (disc, number, id;
-- see TrackRecord::album_place), indexed with the album. Tracks from before carry no numbers
-- and sort by id, as they did.
ALTER TABLE tracks ADD COLUMN album_place TEXT COLLATE "C";
UPDATE tracks SET album_place = '001.9999.' || id WHERE album_id IS NOT NULL;
DROP INDEX tracks_by_album;
CREATE INDEX tracks_by_album_place ON tracks (album_id, album_place) WHERE album_id IS NOT NULL;
