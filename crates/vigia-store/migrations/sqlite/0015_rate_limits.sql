-- Rate limits kept in the database, so that every node of a cluster counts attempts against the
-- same budget. One row per limited key (e.g. `login:ip:203.0.113.7`): its theoretical arrival
-- time (GCRA) in ms. A row whose `tat` has passed says nothing more than a missing one.
CREATE TABLE rate_limits (
    key TEXT PRIMARY KEY,
    tat INTEGER NOT NULL
) WITHOUT ROWID;
