-- roster schema, version 19 (postgres dialect): notifications.
-- Keep in step with the other dialect's 0019_notify.sql; only the column
-- types differ.
--
-- Notifications are read from the audit log (the one record of what
-- happened): each channel remembers the last audit event it has dealt
-- with (notify_cursor), so a crash or restart sends nothing twice that
-- was recorded as sent and loses nothing. notify_delivery is the delivery
-- log: one row per (channel, audit event) the channel routes, with its
-- outcome (sent | failed), attempts and the last error (never a secret).
-- Times are unix milliseconds chosen by the caller, as everywhere.
CREATE TABLE notify_cursor (
    channel TEXT NOT NULL PRIMARY KEY,
    seq     BIGINT NOT NULL
);
CREATE TABLE notify_delivery (
    channel    TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    event      TEXT NOT NULL,
    status     TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    last_error TEXT,
    at_ms      BIGINT NOT NULL,
    PRIMARY KEY (channel, seq)
);
