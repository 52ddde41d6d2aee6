-- Billing: what every finished job cost. Seed 000's cost_tracking, one row per (job, GPU) so a multi-GPU
-- job whose GPUs had different prices is exact, and per-GPU-type reports need no join.
CREATE TABLE cost_tracking (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    user_id         UUID,
    job_id          UUID NOT NULL,
    gpu_id          UUID NOT NULL,
    gpu_type        TEXT NOT NULL,
    start_time      TIMESTAMPTZ NOT NULL,   -- GPUs allocated to the job
    end_time        TIMESTAMPTZ NOT NULL,   -- GPUs released
    seconds         NUMERIC(20, 6) NOT NULL CHECK (seconds >= 0),
    cost_per_hour   NUMERIC(10, 4) NOT NULL CHECK (cost_per_hour >= 0),
    total_cost      NUMERIC(20, 8) NOT NULL CHECK (total_cost >= 0),
    currency        TEXT NOT NULL DEFAULT 'USD',
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (end_time >= start_time),
    UNIQUE (job_id, gpu_id)
);
CREATE INDEX cost_tracking_org_time ON cost_tracking (organization_id, start_time);
CREATE INDEX cost_tracking_org_created ON cost_tracking (organization_id, created_at DESC, job_id);

ALTER TABLE cost_tracking ENABLE ROW LEVEL SECURITY;
ALTER TABLE cost_tracking FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON cost_tracking
    USING (current_setting('app.system', true) = 'on'
           OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (current_setting('app.system', true) = 'on'
           OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);
