-- Scheduling policy set through authorised admin calls (issue 8; docs/policy.md), applied on the next
-- cycle. The operator owns fair-share weights, the usage half-life, GPU-type weights, quotas and the
-- dedicated lending limit; an organization's admins own its per-user caps. Settings
-- (GPUFLEET_SCHEDULER_*) seed these tables once, on the first start after this migration; from then on
-- the tables are the truth.

-- The global values, the change counter every replica watches, and whether settings were seeded yet.
CREATE TABLE policy_settings (
    id                      SMALLINT PRIMARY KEY CHECK (id = 1),
    version                 BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0),
    half_life_seconds       DOUBLE PRECISION NOT NULL DEFAULT 604800
                            CHECK (half_life_seconds >= 60 AND half_life_seconds <= 31536000),
    dedicated_lending_limit INTEGER NOT NULL DEFAULT 0 CHECK (dedicated_lending_limit BETWEEN 0 AND 1000000),
    seeded_at               TIMESTAMPTZ,           -- NULL: settings not copied in yet
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO policy_settings (id) VALUES (1);

CREATE TABLE policy_fair_shares (
    organization_id UUID PRIMARY KEY,
    weight          DOUBLE PRECISION NOT NULL CHECK (weight > 0 AND weight <= 1000000),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
SELECT enable_tenant_rls('policy_fair_shares');

CREATE TABLE policy_gpu_type_weights (
    gpu_type   TEXT PRIMARY KEY CHECK (char_length(gpu_type) BETWEEN 1 AND 64),
    weight     DOUBLE PRECISION NOT NULL CHECK (weight > 0 AND weight <= 1000000),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Kueue's cohort model per (organization, GPU type); NULL limits: no limit / lends all its idle nominal.
CREATE TABLE policy_quotas (
    organization_id UUID NOT NULL,
    gpu_type        TEXT NOT NULL CHECK (char_length(gpu_type) BETWEEN 1 AND 64),
    nominal         INTEGER NOT NULL CHECK (nominal BETWEEN 0 AND 1000000),
    borrowing_limit INTEGER CHECK (borrowing_limit BETWEEN 0 AND 1000000),
    lending_limit   INTEGER CHECK (lending_limit BETWEEN 0 AND 1000000),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, gpu_type)
);
SELECT enable_tenant_rls('policy_quotas');

-- Per-user caps: user_id NULL is the organization's cap for each of its users; a row with a user_id
-- overrides it for that user. NULL caps: no cap.
CREATE TABLE policy_user_caps (
    organization_id  UUID NOT NULL,
    user_id          UUID,
    max_running_jobs INTEGER CHECK (max_running_jobs BETWEEN 0 AND 1000000),
    max_gpus         INTEGER CHECK (max_gpus BETWEEN 0 AND 1000000),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX policy_user_caps_one ON policy_user_caps
    (organization_id, coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid));
SELECT enable_tenant_rls('policy_user_caps');

-- The audit trail: who (the operator, or an organization's user through one of its keys), what (the
-- method, the value before and after as JSON) and when, written in the same transaction as the
-- change. organization_id is the organization the change concerns (NULL: a global setting); row-level
-- security shows an organization's admins only their own organization's entries.
CREATE TABLE policy_audit (
    id               BIGSERIAL PRIMARY KEY,
    at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor            TEXT NOT NULL CHECK (actor IN ('operator', 'member')),
    organization_id  UUID,
    actor_user_id    UUID,
    actor_api_key_id UUID,
    method           TEXT NOT NULL CHECK (char_length(method) BETWEEN 1 AND 100),
    target           JSONB NOT NULL DEFAULT '{}',
    before           JSONB,
    after            JSONB,
    CHECK (actor = 'operator' OR (organization_id IS NOT NULL AND actor_api_key_id IS NOT NULL))
);
CREATE INDEX policy_audit_organization ON policy_audit (organization_id, id);
SELECT enable_tenant_rls('policy_audit');

-- Append-only for the service: no UPDATE, DELETE or TRUNCATE. Grants belong to shared/migrate.py (which
-- gives every runtime role the same DML set), so triggers enforce it (the runtime role owns nothing, so
-- it cannot drop them).
CREATE FUNCTION policy_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'policy_audit is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER policy_audit_no_update BEFORE UPDATE OR DELETE ON policy_audit
    FOR EACH ROW EXECUTE FUNCTION policy_audit_append_only();
CREATE TRIGGER policy_audit_no_truncate BEFORE TRUNCATE ON policy_audit
    FOR EACH STATEMENT EXECUTE FUNCTION policy_audit_append_only();
