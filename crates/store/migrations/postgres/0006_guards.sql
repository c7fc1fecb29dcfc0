-- roster schema, version 6 (postgres dialect): what the safety guards remember.
-- Keep in step with the other dialect's 0006_guards.sql.

-- The last people snapshot a person (or the first import) accepted, by
-- source. The source-change guard compares each new snapshot with it: a
-- source that shrank or terminated many at once yields no deactivations
-- until someone accepts it (`roster plan --accept-source-change`).
CREATE TABLE source_baseline (
    source      TEXT NOT NULL PRIMARY KEY,
    people      BIGINT NOT NULL,
    terminated  BIGINT NOT NULL,
    accepted_ms BIGINT NOT NULL,
    accepted_by TEXT NOT NULL
);

-- Connections some applied plan has covered. Until then every removal in
-- the connection waits for approval (the first-plan guard).
CREATE TABLE connection_applied (
    connection TEXT NOT NULL PRIMARY KEY,
    plan_id    TEXT NOT NULL,
    applied_ms BIGINT NOT NULL
);

-- Deployments that already applied plans keep their connections
-- established: any connection with an action carried out counts.
INSERT INTO connection_applied (connection, plan_id, applied_ms)
SELECT connection, MIN(plan_id), MIN(updated_ms)
FROM plan_action
WHERE state = 'done'
GROUP BY connection;
