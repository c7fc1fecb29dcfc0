-- Read paths for the HTTP surface at 100,000 people × 20 apps (PostgreSQL
-- dialect; keep ../sqlite/0016_read_paths.sql in step).
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
    manager_lc = lower(trim((data::jsonb -> 'attributes') ->> 'manager_email')),
    approves_to_lc = lower(trim((data::jsonb -> 'attributes') ->> 'approves_to'));
CREATE INDEX account_manager_lc ON account (manager_lc);
CREATE INDEX account_approves_to_lc ON account (approves_to_lc);

-- 3. The SQLite dialect also adds a trigram full-text index for people
--    search (FTS5, `person_search`); PostgreSQL has no built-in
--    equivalent without an extension, so its search scans as before.
