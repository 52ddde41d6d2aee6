-- Members and named operators (docs/members.md).
--
-- * organization_invites: seed 000's invites by email (a one-time token, max_uses = 1) and seed 003's
--   invite codes (multi-use, max_uses > 0), in one table. Like API keys, only the SHA-256 of the
--   token is stored (`token_hash`; seed 000's plain `token` column is deliberately absent).
-- * operators: named operator principals, each with its own token (hash only). The bootstrap
--   operator (GPUFLEET_ADMIN_TOKEN) is not a row: it is named "admin" by the service.
-- * audit_log.actor_operator: which operator made a change (NULL: a member, or an operator before names).
-- * The members:read / members:write scopes.

CREATE TABLE organization_invites (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id    UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind               TEXT NOT NULL CHECK (kind IN ('email', 'code')),
    -- Lowercased by the service. An email invite names its invitee; a code does not.
    email              TEXT CHECK (email = lower(email) AND email <> ''),
    role               TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'viewer')),
    prefix             TEXT NOT NULL CHECK (prefix ~ '^gp[ic]_'),  -- first characters, for recognition
    token_hash         TEXT NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    max_uses           INTEGER NOT NULL CHECK (max_uses BETWEEN 1 AND 10000),
    uses               INTEGER NOT NULL DEFAULT 0 CHECK (uses BETWEEN 0 AND max_uses),
    expires_at         TIMESTAMPTZ NOT NULL,
    revoked_at         TIMESTAMPTZ,
    created_by_user_id UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((kind = 'email') = (email IS NOT NULL)),
    CHECK (kind = 'code' OR max_uses = 1)
);
-- Accepting looks an invite up by token_hash (its UNIQUE index); listing is per organization.
CREATE INDEX organization_invites_organization ON organization_invites (organization_id, created_at);
SELECT enable_tenant_rls('organization_invites');

CREATE TABLE operators (
    id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name               TEXT NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,63}$' AND name <> 'admin'),
    prefix             TEXT NOT NULL CHECK (prefix LIKE 'gpo\_%'),
    token_hash         TEXT NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_by         TEXT NOT NULL,  -- the operator who created it
    revoked_by         TEXT,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    revoked_at         TIMESTAMPTZ,
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);
-- Not tenant data: no organization may read it, only the service's system scope (authentication and
-- operator calls). Fail closed like the tenant policy: a session without app.system sees no rows.
ALTER TABLE operators ENABLE ROW LEVEL SECURITY; ALTER TABLE operators FORCE ROW LEVEL SECURITY;
CREATE POLICY system_only ON operators
  USING (current_setting('app.system', true) = 'on')
  WITH CHECK (current_setting('app.system', true) = 'on');

ALTER TABLE audit_log ADD COLUMN actor_operator TEXT CHECK (char_length(actor_operator) BETWEEN 1 AND 64);

-- The scopes of shared/scopes.py (shared.contracts.limits.KEY_SCOPES): the database refuses any other.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check CHECK (
    scopes <@ ARRAY[
        'admin', 'jobs:read', 'jobs:write', 'fleet:read', 'costs:read', 'metrics:read',
        'webhooks:read', 'webhooks:write', 'keys:read', 'keys:write', 'members:read', 'members:write'
    ]::TEXT[]
);
-- A key created without scopes holds every scope, 'admin' among them, which already means everything
-- (shared.scopes.granted): it needs no update to reach the new pair.
