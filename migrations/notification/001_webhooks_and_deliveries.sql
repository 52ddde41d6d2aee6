-- Signed webhooks: tenant-registered endpoints, the per-organization secret for jobs' own webhook_url,
-- one delivery per (event, url) and the log of every attempt to make it.
-- Applied as gpufleet_notification with search_path = notification (no schema qualification on purpose).

-- Seed 000's webhooks, plus description and the health that disables a failing target (seed 002).
CREATE TABLE webhooks (
    id                   UUID PRIMARY KEY,
    organization_id      UUID NOT NULL,
    url                  TEXT NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2048),
    -- Public event names; empty: every job event.
    events               TEXT[] NOT NULL DEFAULT '{}' CHECK (events <@ ARRAY[
                             'job.submitted', 'job.scheduled', 'job.started',
                             'job.succeeded', 'job.failed', 'job.cancelled']::TEXT[]),
    type                 TEXT NOT NULL DEFAULT 'job_status',
    status               TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    error_rate           DOUBLE PRECISION NOT NULL DEFAULT 0 CHECK (error_rate >= 0 AND error_rate <= 1),
    signing_secret       TEXT NOT NULL CHECK (signing_secret LIKE 'whsec_%'),
    is_active            BOOLEAN NOT NULL DEFAULT TRUE,
    last_used            TIMESTAMPTZ,
    description          TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    disabled_at          TIMESTAMPTZ,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Seed 000 has both columns; they must never disagree.
    CHECK (is_active = (status = 'active'))
);
CREATE INDEX webhooks_organization ON webhooks (organization_id, created_at);

-- Signs deliveries to the webhook_url a job was submitted with (one secret per organization).
CREATE TABLE job_webhook_secrets (
    organization_id UUID PRIMARY KEY,
    secret          TEXT NOT NULL CHECK (secret LIKE 'whsec_%'),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- id is the webhook-id header: the same on every attempt, so receivers can de-duplicate.
CREATE TABLE webhook_deliveries (
    id              UUID PRIMARY KEY,
    organization_id UUID NOT NULL,
    -- NULL for a job's own webhook_url. Deleting a webhook removes its deliveries and their log.
    webhook_id      UUID REFERENCES webhooks(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    job_id          UUID,
    payload         BYTEA NOT NULL,  -- the exact bytes signed and sent
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at TIMESTAMPTZ,
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ,
    UNIQUE (event_id, url),
    CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);
-- The worker's claim: due pending rows, oldest due first.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_organization ON webhook_deliveries (organization_id, created_at DESC);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at DESC);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (organization_id, job_id, created_at DESC);

CREATE TABLE webhook_attempts (
    delivery_id     UUID NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    organization_id UUID NOT NULL,
    attempt         INTEGER NOT NULL CHECK (attempt >= 1),
    at              TIMESTAMPTZ NOT NULL,
    response_status INTEGER,  -- NULL: no response (refused, unreachable, timed out)
    error           TEXT,
    duration_ms     INTEGER NOT NULL DEFAULT 0 CHECK (duration_ms >= 0),
    PRIMARY KEY (delivery_id, attempt)
);

ALTER TABLE webhooks ENABLE ROW LEVEL SECURITY; ALTER TABLE webhooks FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhooks
  USING (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE job_webhook_secrets ENABLE ROW LEVEL SECURITY; ALTER TABLE job_webhook_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON job_webhook_secrets
  USING (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY; ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_deliveries
  USING (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE webhook_attempts ENABLE ROW LEVEL SECURITY; ALTER TABLE webhook_attempts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_attempts
  USING (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);
