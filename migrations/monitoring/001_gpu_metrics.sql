-- Monitoring: raw GPU metric samples (seed 000's gpu_metrics) tagged with the job and organization that
-- held the GPU when sampled. (gpu_id, timestamp) is the key: a redelivered sample is stored once.
CREATE TABLE gpu_metrics (
    gpu_id          UUID NOT NULL,
    timestamp       TIMESTAMPTZ NOT NULL,
    node_id         UUID NOT NULL,
    gpu_name        TEXT NOT NULL,
    gpu_type        TEXT NOT NULL,
    organization_id UUID,          -- NULL: the GPU was idle
    job_id          UUID,
    memory_used     BIGINT NOT NULL,   -- MB
    memory_total    BIGINT NOT NULL,   -- MB
    gpu_utilization NUMERIC(5, 2),     -- percent
    power_usage     NUMERIC(10, 2),    -- watts
    temperature     NUMERIC(5, 2),     -- Celsius
    PRIMARY KEY (gpu_id, timestamp)
);
CREATE INDEX gpu_metrics_org_time ON gpu_metrics (organization_id, timestamp) WHERE organization_id IS NOT NULL;
CREATE INDEX gpu_metrics_time ON gpu_metrics (timestamp);

ALTER TABLE gpu_metrics ENABLE ROW LEVEL SECURITY;
ALTER TABLE gpu_metrics FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON gpu_metrics
    USING (current_setting('app.system', true) = 'on'
           OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
    WITH CHECK (current_setting('app.system', true) = 'on'
           OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);
