-- roster schema, version 8 (sqlite dialect): payload hashes and witnessed
-- checkpoints for the audit log.
-- Keep in step with the other dialect's 0008_audit_anchor.sql.

-- Hash version 2 chains a salted hash of each event's payload instead of
-- the payload itself, so a payload can later be erased (replaced by a
-- tombstone) while the chain still verifies. Events written before this
-- migration keep version 1 (their hash covers the payload; data_hash and
-- data_salt stay NULL) and are verified as they were written.
-- An erased version-2 event has data_salt NULL: without the salt its
-- stored data_hash cannot be used to confirm a guess of the erased data.
ALTER TABLE audit_event ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;
ALTER TABLE audit_event ADD COLUMN data_hash TEXT;
ALTER TABLE audit_event ADD COLUMN data_salt TEXT;

-- Signed checkpoints of the chain head, one row per (checkpoint, witness),
-- queued here until the witness has it. `body` is the exact signed JSON
-- line sent to the witness. A row with delivered_ms NULL is pending; a
-- failing witness keeps failing_since_ms (first failure of the current
-- outage) and last_error. This table is a delivery queue, not evidence:
-- what protects the log is what the witness already holds.
CREATE TABLE audit_checkpoint (
    id               INTEGER NOT NULL PRIMARY KEY,
    witness          TEXT NOT NULL,
    seq              INTEGER NOT NULL,
    hash             TEXT NOT NULL,
    at_ms            INTEGER NOT NULL,
    body             TEXT NOT NULL,
    delivered_ms     INTEGER,
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    failing_since_ms INTEGER
);
CREATE INDEX audit_checkpoint_witness ON audit_checkpoint (witness, seq);
