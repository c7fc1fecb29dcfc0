-- roster schema, version 1 (PostgreSQL dialect).
--
-- Keep this file and ../sqlite/0001_init.sql in step: same tables, same
-- columns, same indexes. Only the column types differ (Postgres BIGINT and
-- BOOLEAN where SQLite has INTEGER).
--
-- Times are unix milliseconds chosen by the caller, never SQL clock
-- functions. JSON is stored as TEXT exactly as roster wrote it.

-- People: the source-of-truth snapshot. `data` is the full Person as JSON;
-- the other columns are copies kept for lookups.
CREATE TABLE person (
    employee_id TEXT NOT NULL PRIMARY KEY,
    email_lc    TEXT NOT NULL,
    status      TEXT NOT NULL,
    data        TEXT NOT NULL
);
CREATE INDEX person_email_lc ON person (email_lc);
CREATE INDEX person_status ON person (status);

-- Secondary addresses that also identify a person.
CREATE TABLE person_alias (
    email_lc    TEXT NOT NULL,
    employee_id TEXT NOT NULL,
    PRIMARY KEY (email_lc, employee_id)
);
CREATE INDEX person_alias_employee ON person_alias (employee_id);

-- Connections: configured app instances.
CREATE TABLE connection (
    id            TEXT NOT NULL PRIMARY KEY,
    app           TEXT NOT NULL,
    settings_json TEXT NOT NULL,
    status        TEXT NOT NULL,
    status_reason TEXT
);
CREATE INDEX connection_status ON connection (status);

-- The last read of each connection. `generation` counts reads; the
-- accounts the last read returned carry it in `seen_gen`.
CREATE TABLE observation (
    connection        TEXT NOT NULL PRIMARY KEY,
    generation        BIGINT NOT NULL,
    read_ms           BIGINT NOT NULL,
    complete          BOOLEAN NOT NULL,
    incomplete_reason TEXT,
    account_count     BIGINT NOT NULL
);

-- Accounts as last read. An account whose `seen_gen` is older than its
-- connection's `generation` was not returned by an incomplete read: it is
-- kept (with its last_seen_ms) rather than forgotten, and left out of the
-- observed state.
CREATE TABLE account (
    connection    TEXT NOT NULL,
    account_key   TEXT NOT NULL,
    ord           BIGINT NOT NULL,
    email_lc      TEXT,
    employee_id   TEXT,
    active        BOOLEAN NOT NULL,
    seen_gen      BIGINT NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL,
    data          TEXT NOT NULL,
    PRIMARY KEY (connection, account_key)
);
CREATE INDEX account_email_lc ON account (email_lc);
CREATE INDEX account_employee_id ON account (employee_id);
CREATE INDEX account_connection_active ON account (connection, active);

-- Plans and the execution state of each action.
CREATE TABLE plan (
    id         TEXT NOT NULL PRIMARY KEY,
    hash       TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    data       TEXT NOT NULL
);
CREATE INDEX plan_created ON plan (created_ms);

CREATE TABLE plan_action (
    plan_id    TEXT NOT NULL REFERENCES plan (id) ON DELETE CASCADE,
    idx        BIGINT NOT NULL,
    connection TEXT NOT NULL,
    operation  TEXT NOT NULL,
    action_key TEXT NOT NULL,
    state      TEXT NOT NULL,
    detail     TEXT,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (plan_id, idx)
);
CREATE INDEX plan_action_state ON plan_action (plan_id, state);
CREATE INDEX plan_action_key ON plan_action (action_key);

-- The audit log: append-only, each event hash-chained to the one before.
CREATE TABLE audit_event (
    seq       BIGINT NOT NULL PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX audit_event_at ON audit_event (at_ms);

-- The chain head: one row, updated in the same transaction as each append.
-- Appends lock it first, which serializes them.
CREATE TABLE audit_head (
    id   BIGINT NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
