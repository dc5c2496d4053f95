-- Detection window reports (issue 19): the `reports` table also records kind `detections`,
-- one per period end like the global report (`reports/detections/detections_YYYY-MM-DD_HH-MM.*`).

ALTER TABLE reports DROP CONSTRAINT reports_kind_check;
ALTER TABLE reports ADD CONSTRAINT reports_kind_check
    CHECK (kind IN ('global', 'incident', 'custom', 'detections'));
CREATE UNIQUE INDEX reports_detections_end_key ON reports (period_end) WHERE kind = 'detections';
