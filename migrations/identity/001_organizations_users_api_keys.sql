-- Identity: organizations, their users and members, API keys (hashes only) and the audit log.
-- Applied as gpufleet_identity with search_path = identity (no schema qualification on purpose).

CREATE TABLE organizations (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name               TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    stripe_customer_id TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Users are global (one person can belong to several organizations), so no RLS here: only the
-- service's system scope (operator calls, authentication) reads them.
CREATE TABLE users (
    id                      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Stored lowercased by the service; the CHECK keeps a stray writer honest.
    email                   TEXT NOT NULL UNIQUE CHECK (email = lower(email) AND email <> ''),
    name                    TEXT,
    avatar                  TEXT,
    -- Seed 000 had NOT NULL (Auth0); there is no external auth provider yet.
    auth_id                 TEXT UNIQUE,
    default_organization_id UUID REFERENCES organizations(id) ON DELETE SET NULL,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE organization_members (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    organization_id UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    role            TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, organization_id)
);
-- UNIQUE (user_id, organization_id) serves lookups by user; this one serves "members of an org".
CREATE INDEX organization_members_organization ON organization_members (organization_id);

-- Seed 000's `key` column (the plain secret) is deliberately absent: only its SHA-256 is stored.
CREATE TABLE api_keys (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id         UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix          TEXT NOT NULL CHECK (prefix LIKE 'gpf\_%'),  -- first 12 characters, for recognition
    key_hash        TEXT NOT NULL UNIQUE CHECK (key_hash ~ '^[0-9a-f]{64}$'),  -- sha256 hex of the key
    scopes          TEXT[] NOT NULL DEFAULT '{}'
                    CHECK (scopes <@ ARRAY['jobs:read', 'jobs:write', 'admin']::TEXT[]),
    last_used       TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ,
    revoked_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Authentication looks keys up by key_hash (its UNIQUE index); listing is per organization.
CREATE INDEX api_keys_organization ON api_keys (organization_id, created_at);

-- Who changed what, written in the same transaction as the change. Append-only by convention.
CREATE TABLE audit_log (
    id               BIGSERIAL PRIMARY KEY,
    organization_id  UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    actor_user_id    UUID,     -- NULL: the operator (admin token)
    actor_api_key_id UUID,
    action           TEXT NOT NULL,
    target_type      TEXT NOT NULL,
    target_id        TEXT NOT NULL,
    details          JSONB NOT NULL DEFAULT '{}',
    at               TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_organization_at ON audit_log (organization_id, at);

-- Row-level security (docs/architecture.md). Organizations are isolated by their own id.
ALTER TABLE organizations ENABLE ROW LEVEL SECURITY; ALTER TABLE organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organizations
  USING (current_setting('app.system', true) = 'on'
         OR id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR id = nullif(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE organization_members ENABLE ROW LEVEL SECURITY; ALTER TABLE organization_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organization_members
  USING (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY; ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
  USING (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);

ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY; ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_log
  USING (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid)
  WITH CHECK (current_setting('app.system', true) = 'on'
         OR organization_id = nullif(current_setting('app.org_id', true), '')::uuid);
