-- Where the S3 lister of captures and reference photos left off, per listed prefix (the
-- store's description and the prefix, so another bucket or storage prefix starts its own):
-- the store's name of the last key it recorded. Moved forward only, by compare-and-set, so two
-- nodes listing at once agree; a key that sorts before it is found by the reconciliation pass
-- (`media.scan`), and a capture is recorded once either way (unique object key).

CREATE TABLE landing_cursors (
    scope TEXT PRIMARY KEY,
    after_key TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
