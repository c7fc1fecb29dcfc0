-- Durable execution: the task queue (SQLite dialect).
--
-- Keep this file and ../postgres/0002_tasks.sql in step: same table, same
-- columns, same indexes; only the column types differ.
--
-- One row per plan action handed to a connector. The executor claims rows
-- with a lease (`lease_owner`, `lease_until_ms`), extends the lease while
-- it works (heartbeats), and finishes each row as `done`, `retry_wait`
-- (try again at `run_at_ms`) or `dead` (a dead letter, reason in
-- `last_error`). A reaper returns `running` rows whose lease expired (the
-- worker died) to `ready` and marks them `uncertain`: the vendor may or may
-- not have seen the call, so the next attempt checks before it acts.
--
-- `idempotency_key` is unique: enqueuing the same plan action twice
-- creates nothing new. States: ready | running | retry_wait | done | dead |
-- cancelled. Times are unix milliseconds chosen by the caller.
CREATE TABLE task (
    id              INTEGER NOT NULL PRIMARY KEY,
    plan_id         TEXT NOT NULL REFERENCES plan (id) ON DELETE CASCADE,
    action_idx      INTEGER NOT NULL,
    connection      TEXT NOT NULL,
    operation       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    max_attempts    INTEGER NOT NULL,
    run_at_ms       INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    uncertain       INTEGER NOT NULL,
    outcome         TEXT,
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
);
CREATE UNIQUE INDEX task_idempotency_key ON task (idempotency_key);
CREATE UNIQUE INDEX task_plan_action ON task (plan_id, action_idx);
-- The claim: due tasks of one connection, oldest first.
CREATE INDEX task_claim ON task (connection, state, run_at_ms);
-- The reaper: running tasks by lease expiry.
CREATE INDEX task_lease ON task (state, lease_until_ms);
