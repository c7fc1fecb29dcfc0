-- roster schema, version 11 (postgres dialect): who proposed each plan, and
-- termination overrides from explicit offboardings.
-- Keep in step with the other dialect's 0011_principals.sql.

-- The principal that proposed the plan, as the audit log names it
-- (`user:alice`, `agent:claude`, `service:roster`); NULL for plans
-- made before this version. Separation of duties reads it.
ALTER TABLE plan ADD COLUMN proposed_by TEXT;
-- A person an authenticated principal offboarded: planned as terminated
-- whatever a slower source still says, so the next reconciliation does
-- not re-provision them. Lifted by a person (or when the source agrees).
CREATE TABLE person_override (
    employee_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_ms BIGINT NOT NULL
);
