-- Competition results are published as reports: one more kind, identified by its competition
-- (rerunning the freeze replaces the row).

ALTER TABLE reports DROP CONSTRAINT reports_kind_check;
ALTER TABLE reports ADD CONSTRAINT reports_kind_check
    CHECK (kind IN ('global', 'incident', 'custom', 'detections', 'competition'));
ALTER TABLE reports ADD COLUMN competition_id BIGINT REFERENCES competitions (id) ON DELETE CASCADE;
CREATE UNIQUE INDEX reports_competition_key ON reports (competition_id) WHERE kind = 'competition';
