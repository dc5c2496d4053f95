-- Digest e-mails: beyond a recipient's rate, an e-mail is held (still `pending`, no attempt
-- made) and carried by one `notification.digest` delivery to the same recipient, named here.
-- When the digest is delivered, the e-mails it carried are marked delivered with it.
ALTER TABLE notification_deliveries ADD COLUMN digest_id BIGINT REFERENCES notification_deliveries (id) ON DELETE SET NULL;
CREATE INDEX notification_deliveries_digest_idx ON notification_deliveries (digest_id);
