-- People search on PostgreSQL (`Store::people_containing`, the REST API's
-- `GET /api/v1/people?q=`): a trigram index over the lower-cased record, so
-- the substring match `lower(data) LIKE '%…%'` reads the rows that contain
-- the needle instead of every record. SQLite has its FTS5 trigram table
-- (0016); this is its PostgreSQL counterpart.
--
-- pg_trgm ships with PostgreSQL's contrib modules and is a trusted
-- extension (PostgreSQL 13+), so a database owner may create it. Where it
-- cannot be created (a managed service that withholds it, a role without
-- CREATE on the database), search scans as before: the migration notes it
-- and goes on rather than leaving the store unopenable.
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'pg_trgm is not available (%): people search scans', SQLERRM;
END
$$;

-- The operator class is named with the extension's schema: it may live in
-- another schema of the database than this one (public, typically). If the
-- index cannot be built, search scans.
DO $$
DECLARE
    trgm_schema TEXT;
BEGIN
    SELECT n.nspname INTO trgm_schema FROM pg_extension e
        JOIN pg_namespace n ON n.oid = e.extnamespace
        WHERE e.extname = 'pg_trgm';
    IF trgm_schema IS NOT NULL THEN
        EXECUTE format(
            'CREATE INDEX IF NOT EXISTS person_data_trgm ON person '
            'USING gin (lower(data) %I.gin_trgm_ops)', trgm_schema);
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'no trigram index on person (%): people search scans', SQLERRM;
END
$$;
