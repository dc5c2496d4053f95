-- Durable jobs and schedules: the job queue, the dead-letter list (jobs in state `dead`), cron
-- schedules with their run history, the event relay's cursor, and SLA escalation marks.
-- Timestamps are Unix epoch milliseconds.

CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    -- queued: waiting; running: leased by a worker; failed: the last attempt failed and a retry
    -- waits for run_at; succeeded / dead / cancelled: finished.
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'failed', 'succeeded', 'dead', 'cancelled')),
    -- Enqueueing a key that exists adds nothing: "effects happen once".
    dedup_key TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- NULL: the workers' configured default.
    max_attempts INTEGER,
    -- queued / failed: when it may run; running: when its lease expires (then any worker may
    -- take it again). One column keeps the claim query on one index.
    run_at INTEGER NOT NULL,
    lease_owner TEXT,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER,
    CONSTRAINT jobs_dedup_key_key UNIQUE (dedup_key)
);
CREATE INDEX jobs_due_idx ON jobs (run_at, id) WHERE state IN ('queued', 'running', 'failed');
CREATE INDEX jobs_state_idx ON jobs (state, id);
CREATE INDEX jobs_kind_idx ON jobs (kind, id);
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE job_cursors (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
-- Events written before the queue existed are history, not news: the relay starts after them.
INSERT INTO job_cursors (name, position, updated_at)
    SELECT 'event_relay', COALESCE(MAX(id), 0), 0 FROM incident_events;

CREATE TABLE schedules (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    cron TEXT NOT NULL,
    -- From the configuration, rewritten at every start.
    enabled INTEGER NOT NULL,
    -- Set by an admin (API / CLI); survives restarts.
    paused INTEGER NOT NULL DEFAULT 0,
    next_run_at INTEGER NOT NULL,
    last_run_at INTEGER,
    updated_at INTEGER NOT NULL
);

CREATE TABLE schedule_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    schedule TEXT NOT NULL REFERENCES schedules (name) ON DELETE CASCADE,
    -- `cron` or `manual`.
    triggered_by TEXT NOT NULL,
    scheduled_for INTEGER NOT NULL,
    job_id INTEGER,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled')),
    started_at INTEGER,
    finished_at INTEGER,
    duration_ms INTEGER,
    error TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX schedule_runs_schedule_idx ON schedule_runs (schedule, id);
CREATE INDEX schedule_runs_job_idx ON schedule_runs (job_id);
CREATE INDEX schedule_runs_created_idx ON schedule_runs (created_at);

-- An SLA breach escalates once: these mark when each breach was escalated.
ALTER TABLE incidents ADD COLUMN sla_acknowledge_escalated_at INTEGER;
ALTER TABLE incidents ADD COLUMN sla_resolve_escalated_at INTEGER;
CREATE INDEX incidents_acknowledge_due_idx ON incidents (acknowledge_due_at) WHERE acknowledged_at IS NULL;
CREATE INDEX incidents_resolve_due_idx ON incidents (resolve_due_at) WHERE resolve_due_at IS NOT NULL;
CREATE INDEX incidents_unassigned_idx ON incidents (department_id) WHERE assignee_id IS NULL;
