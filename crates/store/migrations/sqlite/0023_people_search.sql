-- People search on PostgreSQL gains a trigram index (../postgres/0023);
-- SQLite has had its FTS5 trigram table since 0016, so nothing changes
-- here. The file keeps the two dialects' versions in step.
SELECT 1;
