-- Video processing on the real-time stream: the hub reads unfinished and recently changed
-- videos after each wake-up (`transcodes::live`). A change of a video's status or progress
-- notifies the same channel as the event log (`vigia_events`, delivered at commit), so every
-- node's hub wakes; the payload is not an event id and is never read (readers read tables).
CREATE INDEX media_transcodes_live_idx ON media_transcodes (status, updated_at);
CREATE INDEX competition_entries_live_idx ON competition_entries (status, updated_at);

CREATE FUNCTION video_progress_notify() RETURNS trigger AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status OR NEW.progress IS DISTINCT FROM OLD.progress THEN
        PERFORM pg_notify('vigia_events', 'video');
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER media_transcodes_notify
    AFTER UPDATE ON media_transcodes
    FOR EACH ROW EXECUTE FUNCTION video_progress_notify();

CREATE TRIGGER competition_entries_notify
    AFTER UPDATE ON competition_entries
    FOR EACH ROW EXECUTE FUNCTION video_progress_notify();
