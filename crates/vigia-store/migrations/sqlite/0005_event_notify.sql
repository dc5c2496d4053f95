-- SQLite is single-node: the writer connection's commit hook wakes the event reader (see
-- `Db::events_committed`). The PostgreSQL migration of the same number adds LISTEN/NOTIFY;
-- this one keeps both backends' numbering aligned.
SELECT 1;
