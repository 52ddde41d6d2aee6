-- Billing per attempt (issue 8): a job requeued after its node or agent was lost runs again as attempt
-- n+1, and each attempt is billed on its own. An attempt lost to infrastructure is recorded like any
-- other, so the tenant sees the GPU time it held, with a credit of the same amount on each line (net 0).
-- Rows from before this migration are attempt 1, uncredited, with no outcome recorded (NULL).
ALTER TABLE cost_tracking
    ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    ADD COLUMN outcome TEXT
        CHECK (outcome IN ('succeeded', 'failed', 'cancelled', 'timed_out', 'requeued')),
    ADD COLUMN credit  NUMERIC(20, 8) NOT NULL DEFAULT 0 CHECK (credit >= 0 AND credit <= total_cost),
    -- Only GPU time lost to infrastructure is given back, and then all of it.
    ADD CONSTRAINT cost_tracking_credit_only_when_lost
        CHECK (credit = CASE WHEN outcome = 'requeued' THEN total_cost ELSE 0 END);

-- Exactly once per attempt: the same attempt under another event id inserts nothing.
ALTER TABLE cost_tracking DROP CONSTRAINT cost_tracking_job_id_gpu_id_key;
ALTER TABLE cost_tracking ADD CONSTRAINT cost_tracking_job_attempt_gpu UNIQUE (job_id, attempt, gpu_id);
