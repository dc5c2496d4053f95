-- Attachments stream to object storage: the row is reserved first (its id names the object key)
-- and stays hidden from every read until the upload finished.
ALTER TABLE incident_attachments ADD COLUMN uploading BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX incident_attachments_uploading_idx ON incident_attachments (created_at) WHERE uploading;
