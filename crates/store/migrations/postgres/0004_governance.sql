-- roster schema, version 4 (postgres dialect): governance.
-- Keep in step with the other dialect's 0004_governance.sql.

-- Approvals and rejections, bound to the plan's content hash: an approval
-- of one plan can never be replayed on another. action_idx NULL means
-- "every action of the plan that needs approval".
CREATE TABLE approval (
    id         TEXT NOT NULL PRIMARY KEY,
    plan_id    TEXT NOT NULL,
    plan_hash  TEXT NOT NULL,
    action_idx BIGINT,
    decision   TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    at_ms      BIGINT NOT NULL
);
CREATE INDEX approval_plan ON approval (plan_id);

-- A person's decision about an account whose match was uncertain.
-- employee_id NULL means "not a person roster manages": leave it alone.
CREATE TABLE match_resolution (
    connection  TEXT NOT NULL,
    account_key TEXT NOT NULL,
    employee_id TEXT,
    actor       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at_ms       BIGINT NOT NULL,
    PRIMARY KEY (connection, account_key)
);

-- Human tasks: work only a person can do (manual offboarding, JIT
-- follow-ups), verified by the next read.
CREATE TABLE human_task (
    id            TEXT NOT NULL PRIMARY KEY,
    dedupe_key    TEXT NOT NULL UNIQUE,
    connection    TEXT NOT NULL,
    kind          TEXT NOT NULL,
    subject_email TEXT NOT NULL,
    employee_id   TEXT,
    account_key   TEXT,
    plan_id       TEXT,
    action_idx    BIGINT,
    title         TEXT NOT NULL,
    checklist     TEXT NOT NULL,
    assignee      TEXT,
    state         TEXT NOT NULL,
    flagged       BOOLEAN NOT NULL DEFAULT FALSE,
    note          TEXT,
    evidence      TEXT,
    due_ms        BIGINT,
    reminded_ms   BIGINT,
    escalated_ms  BIGINT,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL
);
CREATE INDEX human_task_state ON human_task (state);
CREATE INDEX human_task_connection ON human_task (connection);
