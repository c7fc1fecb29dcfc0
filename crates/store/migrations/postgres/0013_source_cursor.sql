-- roster schema, version 13 (postgres dialect): where each identity provider's
-- incremental read resumes. Keep in step with the other dialect's
-- 0013_source_cursor.sql; only the column types differ.
--
-- One row per source (`source.<name>`). cursor: the source's opaque
-- SyncCursor (an Okta System Log position, a Graph deltaLink, ...), taken
-- before the listing it came with, so nothing changed during that read is
-- missed. taken_ms: when roster stored it. full_read_ms: when the last
-- complete full read finished; the engine reads whole again once it is
-- older than the source's full_read_every (incremental feeds can miss).
-- Times are unix milliseconds chosen by the caller, as everywhere.
CREATE TABLE source_cursor (
    source       TEXT NOT NULL PRIMARY KEY,
    cursor       TEXT NOT NULL,
    taken_ms     BIGINT NOT NULL,
    full_read_ms BIGINT NOT NULL
);
