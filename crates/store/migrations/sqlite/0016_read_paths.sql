-- Read paths for the HTTP surface at 100,000 people × 20 apps (SQLite
-- dialect; keep ../postgres/0016_read_paths.sql in step).
--
-- 1. The source-change guard counts people and leavers before every plan,
--    one-person plans included (`Store::people_counts`): a covering index
--    lets the count read the index instead of every snapshot body.
CREATE INDEX person_status_end_date ON person (status, end_date);

-- 2. A leaver's plan re-points the accounts whose approver is the leaver
--    (`manager_email`, `approves_to`; roster_core::repoint). These copies
--    (trimmed, lower case, written by `Store::replace_accounts`) let it find
--    them by index instead of reading every stored account.
ALTER TABLE account ADD COLUMN manager_lc TEXT;
ALTER TABLE account ADD COLUMN approves_to_lc TEXT;
UPDATE account SET
    manager_lc = lower(trim(json_extract(data, '$.attributes.manager_email'))),
    approves_to_lc = lower(trim(json_extract(data, '$.attributes.approves_to')));
CREATE INDEX account_manager_lc ON account (manager_lc);
CREATE INDEX account_approves_to_lc ON account (approves_to_lc);

-- 3. People search (`Store::people_containing`, the REST API's
--    `GET /api/v1/people?q=`): a trigram full-text index over what a search
--    matches (name, employee ID, addresses), kept in step with `person` by
--    triggers, so a substring search reads the matching rows instead of
--    every snapshot body. SQLite only (FTS5); PostgreSQL scans as before,
--    which is why ../postgres/0016 has no counterpart.
CREATE VIRTUAL TABLE person_search USING fts5(body, tokenize = 'trigram');
INSERT INTO person_search (rowid, body)
    SELECT rowid,
        coalesce(json_extract(data, '$.first_name'), '') || ' ' ||
        coalesce(json_extract(data, '$.last_name'), '') || char(10) ||
        employee_id || char(10) || email_lc || char(10) ||
        coalesce(json_extract(data, '$.aliases'), '')
    FROM person;
CREATE TRIGGER person_search_insert AFTER INSERT ON person BEGIN
    INSERT INTO person_search (rowid, body) VALUES (new.rowid,
        coalesce(json_extract(new.data, '$.first_name'), '') || ' ' ||
        coalesce(json_extract(new.data, '$.last_name'), '') || char(10) ||
        new.employee_id || char(10) || new.email_lc || char(10) ||
        coalesce(json_extract(new.data, '$.aliases'), ''));
END;
CREATE TRIGGER person_search_delete AFTER DELETE ON person BEGIN
    DELETE FROM person_search WHERE rowid = old.rowid;
END;
CREATE TRIGGER person_search_update AFTER UPDATE ON person BEGIN
    DELETE FROM person_search WHERE rowid = old.rowid;
    INSERT INTO person_search (rowid, body) VALUES (new.rowid,
        coalesce(json_extract(new.data, '$.first_name'), '') || ' ' ||
        coalesce(json_extract(new.data, '$.last_name'), '') || char(10) ||
        new.employee_id || char(10) || new.email_lc || char(10) ||
        coalesce(json_extract(new.data, '$.aliases'), ''));
END;
