-- The one audit log of every service (docs/audit.md): identity keeps writing its own changes here, and
-- consumes every other service's from gpufleet.audit.v1 into the same rows.
--
-- * organization_id becomes nullable: NULL is a fleet-wide operator change (a join token, a node of the
--   shared pool). The tenant policy admits such rows to the system scope only (NULL never equals the
--   session's organization), so no organization ever reads them.
-- * actor_kind (user | operator | node | system), actor_node_id; actor_operator exists since 003.
-- * service, before/after (JSON, secrets redacted by the writer), request_id (the gateway's X-Request-ID).
-- * organization_id no longer references organizations (see below).
-- * event_id: the CloudEvent id of a consumed record (NULL: identity's own). Unique, so a record applied
--   twice is one row even without the consumer's ledger.
-- * details stays: identity's rows before this migration keep what they said.
-- * The audit:read scope.

ALTER TABLE audit_log ALTER COLUMN organization_id DROP NOT NULL;
-- A consumed record names the organization as its service saw it (the scheduler takes policy for any
-- organization id): the record is kept whether or not identity has that organization.
ALTER TABLE audit_log DROP CONSTRAINT audit_log_organization_id_fkey;
ALTER TABLE audit_log
    ADD COLUMN actor_kind TEXT NOT NULL DEFAULT 'system'
        CHECK (actor_kind IN ('user', 'operator', 'node', 'system')),
    ADD COLUMN actor_node_id UUID,
    ADD COLUMN service TEXT NOT NULL DEFAULT 'identity' CHECK (char_length(service) BETWEEN 1 AND 32),
    ADD COLUMN before JSONB,
    ADD COLUMN after JSONB,
    ADD COLUMN request_id TEXT CHECK (char_length(request_id) <= 200),
    ADD COLUMN event_id UUID UNIQUE;

-- Rows written before: a member when a user acted, an operator when one is named or no user is.
UPDATE audit_log SET actor_kind = CASE
    WHEN actor_user_id IS NOT NULL THEN 'user'
    ELSE 'operator'
END;

-- Listing is newest first by id, per organization (tenants) or across them (the operator).
CREATE INDEX audit_log_organization_id ON audit_log (organization_id, id DESC);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, id DESC);

-- The scopes of shared/scopes.py (shared.contracts.limits.KEY_SCOPES): the database refuses any other.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check CHECK (
    scopes <@ ARRAY[
        'admin', 'jobs:read', 'jobs:write', 'fleet:read', 'costs:read', 'metrics:read',
        'webhooks:read', 'webhooks:write', 'keys:read', 'keys:write', 'members:read', 'members:write',
        'projects:read', 'projects:write', 'audit:read'
    ]::TEXT[]
);
