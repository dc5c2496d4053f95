-- Event ids are the cursor that real-time clients and background relays resume from
-- (`id > last seen`), so an id must never become visible after a larger one. A sequence alone
-- does not promise that on PostgreSQL: a transaction that drew id 10 can commit after one that
-- drew id 11, and a reader that already passed 11 would skip 10 for good.
--
-- This trigger takes a transaction-scoped advisory lock and only then draws the id, so ids are
-- drawn in commit order: transactions that write events serialize from their first event to
-- their commit. Rule that keeps this free of deadlocks: write a transaction's events after its
-- other row changes (every store function does).
CREATE FUNCTION incident_events_commit_ordered_id() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7362019001);
    NEW.id := nextval(pg_get_serial_sequence('incident_events', 'id'));
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER incident_events_commit_order
    BEFORE INSERT ON incident_events
    FOR EACH ROW EXECUTE FUNCTION incident_events_commit_ordered_id();
