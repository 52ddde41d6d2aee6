-- Agents with their own identity (issue 9, docs/agent-identity.md): the shared agent token goes.
-- An operator creates a one-time, expiring join token that fixes what a node is; the node's first
-- registration exchanges it for a node credential bound to that node. Only SHA-256 hashes of either
-- secret are stored. Neither table is tenant data: only the service's system scope reads or writes them
-- (operator and agent calls), never a tenant's unit.

CREATE TABLE join_tokens (
    id              UUID PRIMARY KEY,
    token_hash      BYTEA NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    organization_id UUID,             -- NULL: the node joins the shared pool
    provider        TEXT NOT NULL CHECK (provider <> ''),
    is_spot         BOOLEAN NOT NULL,
    labels          JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    description     TEXT NOT NULL DEFAULT '' CHECK (char_length(description) <= 200),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at      TIMESTAMPTZ NOT NULL,
    used_at         TIMESTAMPTZ,
    node_id         UUID REFERENCES nodes(id) ON DELETE SET NULL,
    revoked_at      TIMESTAMPTZ,
    CHECK (expires_at > created_at)
);
CREATE INDEX join_tokens_active ON join_tokens (expires_at) WHERE used_at IS NULL AND revoked_at IS NULL;

CREATE TABLE node_credentials (
    id          UUID PRIMARY KEY,
    node_id     UUID NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,
    secret_hash BYTEA NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- NULL: valid until rotated or revoked; set by a rotation to the end of the overlap.
    expires_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX node_credentials_node ON node_credentials (node_id);

-- Set by an operator's decommission: the node's credentials are revoked, it and its GPUs are offline,
-- and its GPU UUIDs may be claimed by another node. A new join token re-commissions it (clears this).
ALTER TABLE nodes ADD COLUMN decommissioned_at TIMESTAMPTZ;

ALTER TABLE join_tokens ENABLE ROW LEVEL SECURITY; ALTER TABLE join_tokens FORCE ROW LEVEL SECURITY;
CREATE POLICY system_only ON join_tokens FOR ALL
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');
ALTER TABLE node_credentials ENABLE ROW LEVEL SECURITY; ALTER TABLE node_credentials FORCE ROW LEVEL SECURITY;
CREATE POLICY system_only ON node_credentials FOR ALL
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');

-- The labels the node's join token fixed (they win over the agent's labels of the same key at every
-- registration of that node).
ALTER TABLE nodes ADD COLUMN fixed_labels JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(fixed_labels) = 'object');
