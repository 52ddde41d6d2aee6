-- The scheduler alone owns allocation (issue 8): fleet keeps inventory and health only. Its private
-- copy of allocations (built from job events by the retired "fleet.gpu-allocation" consumer) goes:
-- the columns that served only it, and the 'allocated' status. Who holds a GPU is answered by the
-- scheduler (JobService/ListAllocations), which the gateway merges into the REST views.

-- gpu_resources forces row-level security and only the system scope writes it; this transaction
-- (and only it: set_config(..., true) is transaction-local) acts as that scope for the rewrite.
SELECT set_config('app.system', 'on', true);
UPDATE gpu_resources SET status = 'available' WHERE status = 'allocated';
SELECT set_config('app.system', '', true);

ALTER TABLE gpu_resources DROP CONSTRAINT gpu_resources_status_check;
ALTER TABLE gpu_resources ADD CONSTRAINT gpu_resources_status_check
    CHECK (status IN ('available', 'draining', 'unhealthy', 'offline'));

-- The index on current_job_id and memory_allocated's CHECK go with their columns.
ALTER TABLE gpu_resources
    DROP COLUMN in_use,
    DROP COLUMN current_job_id,
    DROP COLUMN memory_allocated;

-- The retired consumer's ledger rows (they would expire after 8 days anyway).
DELETE FROM processed_events WHERE consumer = 'fleet.gpu-allocation';
