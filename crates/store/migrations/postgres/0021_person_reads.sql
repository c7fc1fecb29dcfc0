-- Reads of one person without scans (the person page, GET /api/v1/people/{id}).
--
-- Who each audit event mentions: the lower-cased tokens of its subject and
-- of its payload's string values (see roster_store::mentions), written in
-- the append's transaction.
CREATE TABLE audit_mention (
    term TEXT NOT NULL,
    seq  BIGINT NOT NULL,
    PRIMARY KEY (term, seq)
);
CREATE INDEX audit_mention_seq ON audit_mention (seq);

-- Events written before this migration are indexed once, up to the head
-- found here, by Store::backfill_audit_mentions (done_upto: how far).
CREATE TABLE audit_mention_backfill (
    id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    done_upto BIGINT NOT NULL,
    target    BIGINT NOT NULL
);
INSERT INTO audit_mention_backfill (id, done_upto, target)
    SELECT 1, 0, seq FROM audit_head WHERE id = 1;

-- One person's tasks.
CREATE INDEX human_task_employee ON human_task (employee_id);
CREATE INDEX human_task_subject ON human_task (lower(subject_email));
