-- Real-time fan-out across nodes: every committed event wakes the event readers of all nodes.
-- NOTIFY is delivered at commit (never for a rolled-back transaction) and carries only the id;
-- readers always read the rows from the table (`id > last seen`), so a lost or coalesced
-- notification delays an event by at most the readers' fallback poll, never loses it.
CREATE FUNCTION incident_events_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('vigia_events', NEW.id::text);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER incident_events_notify
    AFTER INSERT ON incident_events
    FOR EACH ROW EXECUTE FUNCTION incident_events_notify();
