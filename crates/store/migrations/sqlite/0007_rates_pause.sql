-- roster schema, version 7 (sqlite dialect): shared rate budgets and the kill
-- switch. Keep in step with the other dialect's 0007_rates_pause.sql; only
-- the integer column type differs.

-- One row per connection whose requests are paced. The row is what a
-- process locks while it takes a turn (the upsert that starts every turn
-- takes the row lock on PostgreSQL and the write lock on SQLite), so the
-- check and the record of a request are one atomic step for every process
-- sharing the database. `not_before_ms`: nobody sends before this (the app
-- asked: Retry-After, X-Rate-Limit-Remaining: 0).
CREATE TABLE rate_budget (
    connection    TEXT NOT NULL PRIMARY KEY,
    not_before_ms INTEGER NOT NULL
);

-- When recent requests of a connection were sent (unix ms, wall clock).
-- Rows older than the connection's longest window are pruned as turns are
-- taken.
CREATE TABLE rate_request (
    connection TEXT NOT NULL,
    at_ms      INTEGER NOT NULL
);
CREATE INDEX rate_request_connection ON rate_request (connection, at_ms);

-- The kill switch: a person stopped writes. `scope` is a connection id, or
-- '*' for every connection. Claims skip a paused connection's tasks in
-- every process until the row is removed (`roster resume`).
CREATE TABLE connection_pause (
    scope     TEXT NOT NULL PRIMARY KEY,
    actor     TEXT NOT NULL,
    reason    TEXT,
    paused_ms INTEGER NOT NULL
);
