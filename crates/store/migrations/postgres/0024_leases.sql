-- roster schema, version 23 (postgres dialect): leadership by leases with
-- fencing tokens, and the schedule every process shares. Keep in step with
-- the other dialect's 0024_leases.sql; only the integer column type differs.

-- One row per role only one process may hold at a time ('scheduler': the
-- process that starts full reconciliations, polls the sources, delivers
-- notifications and checkpoints the audit log). A process holds the role
-- while `expires_ms` is in the future and renews it well before then.
-- Taking the role over (after it expired) increments `token`: the fencing
-- token. Every write a holder makes on the role's behalf names its token,
-- and is refused once a newer holder exists, so a holder that was paused
-- (GC, SIGSTOP, a network partition) past its expiry cannot act on a
-- leadership it lost. Rows, not advisory locks: session-level locks do not
-- survive the transaction-mode poolers common on managed PostgreSQL.
CREATE TABLE lease (
    name        TEXT NOT NULL PRIMARY KEY,
    holder      TEXT NOT NULL,
    token       BIGINT NOT NULL,
    acquired_ms BIGINT NOT NULL,
    expires_ms  BIGINT NOT NULL
);

-- When each scheduled job is next due (unix ms), shared by every process so
-- a restart or a change of leader neither skips a run nor starts an extra
-- one. `token`: the fencing token of the lease that claimed the last run.
CREATE TABLE schedule (
    name       TEXT NOT NULL PRIMARY KEY,
    next_ms    BIGINT NOT NULL,
    token      BIGINT NOT NULL,
    started_ms BIGINT NOT NULL
);
