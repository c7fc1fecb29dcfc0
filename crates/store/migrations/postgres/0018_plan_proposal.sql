-- roster schema, version 18 (postgres dialect): what a stored proposal is about.
-- Keep in step with the other dialect's 0018_plan_proposal.sql; only the
-- column types differ.
--
-- A plan proposed through roster_engine::proposals (an AI agent's, through
-- MCP, or anyone's with the propose scope) records here what it was asked
-- for, so its freshness check re-reads the same part of the apps it was
-- computed from: kind `offboarding` (one person as if terminated) or
-- `person` (one person's reconciliation), with that person's employee
-- ID; or `connections` (space-separated connection ids). note: free text
-- the proposer wrote, kept as written and only ever shown as untrusted
-- when an agent wrote it. proposed_by: the actor (`agent:claude`).
CREATE TABLE plan_proposal (
    plan_id     TEXT NOT NULL PRIMARY KEY,
    kind        TEXT NOT NULL,
    person      TEXT,
    connections TEXT,
    note        TEXT,
    proposed_by TEXT NOT NULL,
    created_ms  BIGINT NOT NULL
);
