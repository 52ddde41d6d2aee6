-- Fleet inventory: the GPU type catalog, the nodes agents register, and their GPUs.
-- Applied as gpufleet_fleet with search_path = fleet (no schema qualification on purpose).

-- Reference data (upserted by fixtures/001_gpu_types.sql). Not tenant data: no RLS.
CREATE TABLE gpu_types (
    name                     TEXT PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9-]*$'),
    vendor                   TEXT NOT NULL,
    model                    TEXT NOT NULL,
    memory_mb                BIGINT NOT NULL CHECK (memory_mb > 0),
    -- Names the NVML driver reports for this type; matched case-insensitively.
    nvml_names               TEXT[] NOT NULL DEFAULT '{}',
    reference_price_per_hour NUMERIC(10,4) NOT NULL CHECK (reference_price_per_hour >= 0),
    spot_price_per_hour      NUMERIC(10,4) CHECK (spot_price_per_hour >= 0),
    tdp_watts                INTEGER CHECK (tdp_watts > 0),
    is_active                BOOLEAN NOT NULL DEFAULT TRUE,
    description              TEXT,
    created_at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at               TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    id              UUID PRIMARY KEY,
    hostname        TEXT NOT NULL UNIQUE CHECK (hostname <> ''),
    provider        TEXT NOT NULL,
    gpu_backend     TEXT NOT NULL CHECK (gpu_backend IN ('nvml', 'simulated')),
    driver_version  TEXT,
    agent_version   TEXT,
    organization_id UUID,  -- NULL: shared pool
    is_spot         BOOLEAN NOT NULL DEFAULT FALSE,
    status          TEXT NOT NULL DEFAULT 'online' CHECK (status IN ('online', 'offline')),
    last_heartbeat  TIMESTAMPTZ NOT NULL DEFAULT now(),
    registered_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- The offline sweep looks only at online nodes, oldest heartbeat first.
CREATE INDEX nodes_online_heartbeat ON nodes (last_heartbeat) WHERE status = 'online';
CREATE INDEX nodes_organization ON nodes (organization_id);

-- Seed 000's gpu_resources, tied to the node that reports it. organization_id NULL = shared pool
-- (seed 000 had NOT NULL; shared capacity is the default here).
CREATE TABLE gpu_resources (
    id               UUID PRIMARY KEY,
    node_id          UUID NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    uuid             TEXT NOT NULL UNIQUE CHECK (uuid <> ''),
    device_index     INTEGER NOT NULL CHECK (device_index >= 0),
    organization_id  UUID,
    name             TEXT NOT NULL,
    gpu_type         TEXT NOT NULL,
    provider         TEXT NOT NULL,
    provider_id      TEXT,
    status           TEXT NOT NULL DEFAULT 'available'
                     CHECK (status IN ('available', 'allocated', 'draining', 'unhealthy', 'offline')),
    memory_total     BIGINT NOT NULL CHECK (memory_total > 0),          -- MB
    memory_allocated BIGINT NOT NULL DEFAULT 0 CHECK (memory_allocated >= 0),  -- MB
    capabilities     JSONB NOT NULL DEFAULT '{}',
    cost_per_hour    NUMERIC(10,4) NOT NULL CHECK (cost_per_hour >= 0),
    is_spot          BOOLEAN NOT NULL DEFAULT FALSE,
    spot_request_id  TEXT,
    termination_time TIMESTAMPTZ,
    in_use           BOOLEAN NOT NULL DEFAULT FALSE,
    -- Internal bookkeeping for releasing on the job's terminal event; never exposed on any interface.
    current_job_id   UUID,
    metadata         JSONB,
    -- Increases with every published change (consumers drop revisions they have passed).
    revision         BIGINT NOT NULL DEFAULT 0,
    -- FALSE once its node re-registered without it: it stays offline whatever the heartbeats say.
    reported         BOOLEAN NOT NULL DEFAULT TRUE,
    last_active      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
    -- No UNIQUE (node_id, device_index): a replaced card keeps its old row (offline) at the same index.
);
CREATE INDEX gpu_resources_node ON gpu_resources (node_id, device_index);
CREATE INDEX gpu_resources_organization ON gpu_resources (organization_id);
CREATE INDEX gpu_resources_current_job ON gpu_resources (current_job_id) WHERE current_job_id IS NOT NULL;

-- Row-level security. A tenant reads the shared pool (organization_id IS NULL) and its own dedicated
-- capacity; only the service's system scope (agent calls, consumers, the sweeper) writes.
ALTER TABLE nodes ENABLE ROW LEVEL SECURITY; ALTER TABLE nodes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON nodes FOR SELECT
    USING (current_setting('app.system', true) = 'on'
           OR organization_id IS NULL
           OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY system_write ON nodes FOR ALL
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

ALTER TABLE gpu_resources ENABLE ROW LEVEL SECURITY; ALTER TABLE gpu_resources FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_read ON gpu_resources FOR SELECT
    USING (current_setting('app.system', true) = 'on'
           OR organization_id IS NULL
           OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);
CREATE POLICY system_write ON gpu_resources FOR ALL
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');
