-- Issue 9: a sample's (and a job output chunk's) organization comes from the scheduler's allocations
-- on the job topic, not from the agent (docs/attribution.md). One row per GPU held by a job attempt;
-- ended_at NULL while held. node_id NULL: only a requeue's ended attempt told of it (that event names
-- the GPUs, not their node); such a hold closes a span but attributes no sample.
CREATE TABLE gpu_allocations (
    job_id          UUID NOT NULL,
    attempt         INTEGER NOT NULL CHECK (attempt >= 0),
    gpu_id          UUID NOT NULL,
    node_id         UUID,
    organization_id UUID NOT NULL,
    project_id      UUID,
    started_at      TIMESTAMPTZ NOT NULL,
    ended_at        TIMESTAMPTZ,
    PRIMARY KEY (job_id, attempt, gpu_id)
);
CREATE INDEX gpu_allocations_gpu_start ON gpu_allocations (gpu_id, started_at);
CREATE INDEX gpu_allocations_ended ON gpu_allocations (ended_at) WHERE ended_at IS NOT NULL;
SELECT enable_tenant_rls('gpu_allocations');

-- Output chunks that arrived before the job topic said where their attempt runs: applied (from a node
-- it was placed on) or dropped when the placement arrives; discarded after an hour by retention.
-- The node is part of the key, so a chunk from the wrong node cannot take the place of the right one.
CREATE TABLE job_output_unplaced (
    job_id      UUID NOT NULL,
    attempt     INTEGER NOT NULL CHECK (attempt >= 0),
    node_id     UUID NOT NULL,
    byte_offset BIGINT NOT NULL CHECK (byte_offset >= 0),
    data        BYTEA NOT NULL,
    eof         BOOLEAN NOT NULL DEFAULT false,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt, node_id, byte_offset)
);
CREATE INDEX job_output_unplaced_received ON job_output_unplaced (received_at);
-- No organization is known for these rows yet: only the service's own (system) scope reads or writes them.
ALTER TABLE job_output_unplaced ENABLE ROW LEVEL SECURITY;
ALTER TABLE job_output_unplaced FORCE ROW LEVEL SECURITY;
CREATE POLICY system_only ON job_output_unplaced
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');
