-- Costs grouped by day, GPU type and project (issue 10), including the cost so far of running jobs.
--
-- running_attempts: one row per GPU of an attempt that holds its GPUs now, from the job topic's
-- scheduled/started events (price fixed at allocation, held from scheduled_at). Its end (a terminal or
-- requeued event) sets ended_at in the same transaction as the attempt's cost lines, so an attempt is
-- either running here or billed in cost_tracking, never both. Ended rows stay as tombstones, so a
-- replayed scheduled event cannot bring an ended attempt back; they are pruned after the
-- processed-events ledger's window (8 days), past the outboxes' 7-day replay window.
CREATE TABLE running_attempts (
    organization_id UUID NOT NULL,
    user_id         UUID,
    job_id          UUID NOT NULL,
    attempt         INTEGER NOT NULL CHECK (attempt >= 1),
    gpu_id          UUID NOT NULL,
    gpu_type        TEXT NOT NULL,
    cost_per_hour   NUMERIC(10, 4) NOT NULL CHECK (cost_per_hour >= 0),
    start_time      TIMESTAMPTZ NOT NULL,   -- GPUs allocated
    ended_at        TIMESTAMPTZ,            -- NULL: still held
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt, gpu_id)
);
CREATE INDEX running_attempts_org_running ON running_attempts (organization_id, start_time)
    WHERE ended_at IS NULL;
CREATE INDEX running_attempts_ended ON running_attempts (ended_at) WHERE ended_at IS NOT NULL;
SELECT enable_tenant_rls('running_attempts');

-- The summary's window test is `end_time > from AND start_time < to`; for the usual recent window the
-- first is the selective one (the existing index leads with start_time).
CREATE INDEX cost_tracking_org_end ON cost_tracking (organization_id, end_time);
