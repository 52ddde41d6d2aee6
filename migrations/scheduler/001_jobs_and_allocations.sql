-- Scheduler: jobs and their status history (tenant data, RLS forced), the GPU inventory projected from
-- fleet events, and the allocations the placement loop makes.
-- Applied as gpufleet_scheduler with search_path = scheduler (no schema qualification on purpose).

-- Seed 000's jobs, adapted: a job asks for gpu_count GPUs (each with gpu_memory_mb) on one node instead
-- of naming one GPU; model_type/model_name/input/output became command/name/output_tail.
CREATE TABLE jobs (
    id                  UUID PRIMARY KEY,
    organization_id     UUID NOT NULL,
    user_id             UUID,
    name                TEXT CHECK (char_length(name) <= 200),
    command             TEXT NOT NULL CHECK (char_length(command) BETWEEN 1 AND 10000),
    gpu_count           INTEGER NOT NULL CHECK (gpu_count BETWEEN 1 AND 16),
    gpu_memory_mb       BIGINT NOT NULL DEFAULT 0 CHECK (gpu_memory_mb >= 0),  -- per GPU; 0 = any
    gpu_type            TEXT,                                                  -- NULL = any type
    priority            INTEGER NOT NULL DEFAULT 50 CHECK (priority BETWEEN 0 AND 100),
    status              TEXT NOT NULL DEFAULT 'queued'
                        CHECK (status IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    node_id             UUID,
    gpu_ids             UUID[] NOT NULL DEFAULT '{}',
    -- [{gpu_id, gpu_index, gpu_type, cost_per_hour}]: the prices are fixed when the GPUs are allocated.
    allocation          JSONB NOT NULL DEFAULT '[]',
    webhook_url         TEXT,
    exit_code           INTEGER,
    output_tail         TEXT,
    error_message       TEXT,
    idempotency_key     TEXT CHECK (char_length(idempotency_key) BETWEEN 1 AND 200),
    cancel_requested_at TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    scheduled_at        TIMESTAMPTZ,   -- GPUs allocated (held from here)
    started_at          TIMESTAMPTZ,
    finished_at         TIMESTAMPTZ,   -- GPUs released (held until here)
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Same key in the same organization = same job (NULL keys never collide).
    CONSTRAINT jobs_idempotency UNIQUE (organization_id, idempotency_key),
    -- Invariants of the life cycle, so that no code path can store an impossible job.
    CONSTRAINT jobs_placed_have_node CHECK (
        (status = 'queued' AND node_id IS NULL)
        OR (status IN ('scheduled', 'running', 'succeeded', 'failed') AND node_id IS NOT NULL AND scheduled_at IS NOT NULL)
        OR status = 'cancelled'),
    CONSTRAINT jobs_terminal_have_finished_at CHECK (
        (status IN ('succeeded', 'failed', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT jobs_released_after_allocated CHECK (
        finished_at IS NULL OR scheduled_at IS NULL OR finished_at >= scheduled_at)
);
-- The placement loop's queue: highest priority first, then first come first served.
CREATE INDEX jobs_queue ON jobs (priority DESC, created_at) WHERE status = 'queued';
-- Agents ask for the live jobs of their node.
CREATE INDEX jobs_live_on_node ON jobs (node_id) WHERE status IN ('scheduled', 'running');
-- ListJobs: newest first, keyset pagination on (created_at, id).
CREATE INDEX jobs_listing ON jobs (organization_id, created_at DESC, id DESC);

CREATE TABLE job_status_history (
    id              BIGSERIAL PRIMARY KEY,
    job_id          UUID NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    organization_id UUID NOT NULL,
    status          TEXT NOT NULL
                    CHECK (status IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled')),
    at              TIMESTAMPTZ NOT NULL,
    reason          TEXT
);
CREATE INDEX job_status_history_job ON job_status_history (job_id, id);

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY; ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs
  USING (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE job_status_history ENABLE ROW LEVEL SECURITY; ALTER TABLE job_status_history FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON job_status_history
  USING (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);

-- Projection of gpufleet.fleet.v1 (fleet owns the truth). Only the scheduler's system scope uses it;
-- no tenant reads it, so no RLS. organization_id NULL = shared pool.
CREATE TABLE gpu_inventory (
    gpu_id          UUID PRIMARY KEY,
    node_id         UUID NOT NULL,
    node_name       TEXT NOT NULL,
    device_index    INTEGER NOT NULL CHECK (device_index >= 0),
    gpu_type        TEXT NOT NULL,
    memory_total_mb BIGINT NOT NULL CHECK (memory_total_mb >= 0),
    cost_per_hour   NUMERIC(10,4) NOT NULL CHECK (cost_per_hour >= 0),
    organization_id UUID,
    status          TEXT NOT NULL
                    CHECK (status IN ('available', 'allocated', 'draining', 'unhealthy', 'offline')),
    revision        BIGINT NOT NULL,  -- the fleet revision of this row; older events are ignored
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX gpu_inventory_available ON gpu_inventory (node_id) WHERE status = 'available';

-- One row per GPU held by a live job. The primary key on gpu_id is what makes double-booking
-- impossible: a second allocation of the same GPU fails in the database, whatever the code does.
CREATE TABLE gpu_allocations (
    gpu_id       UUID PRIMARY KEY REFERENCES gpu_inventory(gpu_id),
    job_id       UUID NOT NULL REFERENCES jobs(id),
    node_id      UUID NOT NULL,
    allocated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX gpu_allocations_job ON gpu_allocations (job_id);
