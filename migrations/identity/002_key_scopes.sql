-- The scopes of shared/scopes.py (shared.contracts.limits.KEY_SCOPES): the database refuses any other.
-- Existing keys keep theirs; every earlier scope is still valid.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check CHECK (
    scopes <@ ARRAY[
        'admin', 'jobs:read', 'jobs:write', 'fleet:read', 'costs:read', 'metrics:read',
        'webhooks:read', 'webhooks:write', 'keys:read', 'keys:write'
    ]::TEXT[]
);
