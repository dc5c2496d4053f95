-- SQLite has one writer, so event ids already become visible in id order; the PostgreSQL
-- migration of the same number makes that true there. Kept so both backends share numbering.
SELECT 1;
