-- roster schema, version 10 (sqlite dialect): each plan records the policy it
-- was computed under, and when it was first applied.
-- Keep in step with the other dialect's 0010_plan_policy.sql.

-- policy_hash: SHA-256 (hex) of the policy file's text; policy_text: the text
-- itself, so a later plan can re-evaluate today's people and accounts under
-- it and say what a policy change alone causes. NULL for plans made before
-- this version, or from a policy built in code.
ALTER TABLE plan ADD COLUMN policy_hash TEXT;
ALTER TABLE plan ADD COLUMN policy_text TEXT;
-- When the plan was first handed to execution (apply or a worker's queue).
ALTER TABLE plan ADD COLUMN applied_ms INTEGER;
CREATE INDEX plan_applied ON plan (applied_ms);
