-- roster schema, version 9 (postgres dialect): the outcome of each connection's
-- last read. Keep in step with the sqlite dialect's 0009_read_health.sql.

-- One row per connection, replaced on every read: `outcome` is ok,
-- incomplete or failed; `failures_in_a_row` counts failed reads since the
-- last one that was not (the engine quarantines a connection whose reads
-- keep failing; `roster connections resume` sets it back to 0).
CREATE TABLE read_health (
    connection        TEXT NOT NULL PRIMARY KEY,
    at_ms             BIGINT NOT NULL,
    outcome           TEXT NOT NULL,
    detail            TEXT,
    failures_in_a_row BIGINT NOT NULL
);
