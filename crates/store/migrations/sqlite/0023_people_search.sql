-- People search pages in rowid order (SQLite dialect; ../postgres/0023
-- gives PostgreSQL its trigram index instead).
--
-- `Store::replace_people`, the only statement that writes `person` rows,
-- now inserts them in employee-ID order, so rowids follow employee IDs and
-- the FTS5 trigram index (0016), which hands matches out in rowid order,
-- yields a search's page without reading and sorting every match of a
-- common name. Rows written before this version are renumbered once in
-- that order: every new rowid lies above the old largest, so no two
-- collide, and the update trigger keeps `person_search` in step.
CREATE TEMP TABLE person_order (
    employee_id TEXT NOT NULL PRIMARY KEY,
    n           INTEGER NOT NULL
);
-- The base (the largest rowid before) is taken here, once: read during
-- the update it would grow with every row moved.
INSERT INTO person_order (employee_id, n)
    SELECT employee_id,
        (SELECT coalesce(max(rowid), 0) FROM person)
            + row_number() OVER (ORDER BY employee_id)
    FROM person;
UPDATE person SET rowid =
    (SELECT n FROM person_order o WHERE o.employee_id = person.employee_id);
DROP TABLE person_order;
