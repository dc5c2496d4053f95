-- Hourly detection rollups, kept in the same write as the per-minute ones and shaped for the
-- dashboard's figures: `/detections/stats` reads whole hours here and only its partial edge
-- hours from `detection_rollups`, so its cost follows the hours and subjects it answers for,
-- not the detections stored. Hours are UTC hour starts in ms. subject_id 0 in
-- detection_hourly_subjects is the anonymous aggregate of erased subjects.

-- Per hour, department and label: the label mix and the per-hour chart.
CREATE TABLE detection_hourly_labels (
    hour BIGINT NOT NULL,
    department_id BIGINT NOT NULL,
    label TEXT NOT NULL,
    count BIGINT NOT NULL,
    confidence_sum BIGINT NOT NULL,
    PRIMARY KEY (hour, department_id, label)
);

-- Per hour, department and subject: the top subjects (stress: detections with a stress label).
CREATE TABLE detection_hourly_subjects (
    hour BIGINT NOT NULL,
    department_id BIGINT NOT NULL,
    subject_id BIGINT NOT NULL,
    count BIGINT NOT NULL,
    stress BIGINT NOT NULL,
    PRIMARY KEY (hour, department_id, subject_id)
);
CREATE INDEX detection_hourly_subjects_subject_idx ON detection_hourly_subjects (subject_id, hour);

-- Per hour, department and device.
CREATE TABLE detection_hourly_devices (
    hour BIGINT NOT NULL,
    department_id BIGINT NOT NULL,
    device_id BIGINT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (hour, department_id, device_id)
);

INSERT INTO detection_hourly_labels (hour, department_id, label, count, confidence_sum)
SELECT (minute / 3600000) * 3600000, department_id, label, SUM(count), SUM(confidence_sum)
FROM detection_rollups GROUP BY (minute / 3600000) * 3600000, department_id, label;

INSERT INTO detection_hourly_subjects (hour, department_id, subject_id, count, stress)
SELECT (minute / 3600000) * 3600000, department_id, subject_id, SUM(count),
       SUM(CASE WHEN label IN ('stress', 'sad') THEN count ELSE 0 END)
FROM detection_rollups GROUP BY (minute / 3600000) * 3600000, department_id, subject_id;

INSERT INTO detection_hourly_devices (hour, department_id, device_id, count)
SELECT (minute / 3600000) * 3600000, department_id, device_id, SUM(count)
FROM detection_rollups GROUP BY (minute / 3600000) * 3600000, department_id, device_id;
