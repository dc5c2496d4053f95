-- Incidents by assignee again. Migration 0011 dropped the last indexes that led with
-- `assignee_id` (its staff-statistics indexes), which left the list's assignee filter and the
-- least-open auto-assignment's count of a member's open incidents walking the whole table.
-- Counting a member's open incidents: four short ranges of (assignee, status).
CREATE INDEX incidents_assignee_idx ON incidents (assignee_id, status, id);
-- A list filtered by assignee, newest or oldest first, read in id order without sorting.
CREATE INDEX incidents_assignee_list_idx ON incidents (assignee_id, id);
