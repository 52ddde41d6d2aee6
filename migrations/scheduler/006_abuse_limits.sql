-- Abuse limits per organization (docs/limits.md): a cap on queued jobs and a submit rate (token
-- bucket: rate per second and burst), tiered by plan (seed 002's tiers), set by operators through
-- PolicyService and audited in policy_audit like every other policy change. Changes bump
-- policy_settings.version, which every replica watches.

-- Plans: NULL limits are no limit. A rate and its burst come together.
CREATE TABLE policy_plans (
    name            TEXT PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
    max_queued_jobs INTEGER CHECK (max_queued_jobs BETWEEN 0 AND 1000000),
    submit_rate     DOUBLE PRECISION CHECK (submit_rate > 0 AND submit_rate <= 10000),
    submit_burst    INTEGER CHECK (submit_burst BETWEEN 1 AND 100000),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((submit_rate IS NULL) = (submit_burst IS NULL))
);
-- The tiers a fresh database starts with (shared/contracts/limits.py DEFAULT_PLANS says the same).
INSERT INTO policy_plans (name, max_queued_jobs, submit_rate, submit_burst) VALUES
    ('free', 10, 1, 5),
    ('individual', 100, 5, 20),
    ('professional', 1000, 20, 100),
    ('enterprise', NULL, NULL, NULL);

-- The plan of an organization without one of its own; NULL: such organizations have no limits.
ALTER TABLE policy_settings ADD COLUMN default_plan TEXT REFERENCES policy_plans (name);

-- One organization's plan (NULL: the default plan) and its overrides (NULL: the plan's value).
CREATE TABLE policy_organization_limits (
    organization_id UUID PRIMARY KEY,
    plan            TEXT REFERENCES policy_plans (name),
    max_queued_jobs INTEGER CHECK (max_queued_jobs BETWEEN 0 AND 1000000),
    submit_rate     DOUBLE PRECISION CHECK (submit_rate > 0 AND submit_rate <= 10000),
    submit_burst    INTEGER CHECK (submit_burst BETWEEN 1 AND 100000),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((submit_rate IS NULL) = (submit_burst IS NULL))
);
SELECT enable_tenant_rls('policy_organization_limits');

-- The queued-jobs cap counts an organization's queued jobs (held ones too) at submit: one index scan.
CREATE INDEX jobs_org_queued ON jobs (organization_id) WHERE status = 'queued';
