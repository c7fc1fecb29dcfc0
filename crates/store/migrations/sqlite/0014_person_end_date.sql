-- A person's end date (YYYY-MM-DD) beside their status, so the
-- source-change guard counts someone whose end date has passed as
-- terminated without reading every snapshot body. NULL until the next
-- import rewrites the snapshot (until then the guard counts by status,
-- as before).
ALTER TABLE person ADD COLUMN end_date TEXT;
