-- Projects inside an organization and their members (seed 004; docs/projects.md), and API keys bound
-- to a project.
--
-- * projects: seed 004's columns, `deleted_at` named `archived_at` (a project is archived, never deleted:
--   its jobs and costs stay readable). The slug is unique per organization, archived projects included.
--   UNIQUE (organization_id, id) lets the tables below reference a project *of the same organization*,
--   so no row can ever tie one organization's key or member to another's project.
-- * project_members: seed 004's roles. It carries organization_id (for row-level security) and
--   references the organization membership itself: leaving or being removed from the organization
--   removes every project membership there (ON DELETE CASCADE).
-- * api_keys.project_id: the project a key is bound to (NULL: none), of the key's own organization.
-- * The projects:read / projects:write scopes.

CREATE TABLE projects (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id UUID NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    slug            TEXT NOT NULL CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$'),
    description     TEXT NOT NULL DEFAULT '' CHECK (char_length(description) <= 2000),
    created_by      UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    archived_at     TIMESTAMPTZ,
    UNIQUE (organization_id, slug),
    UNIQUE (organization_id, id)
);
SELECT enable_tenant_rls('projects');

CREATE TABLE project_members (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id UUID NOT NULL,
    project_id      UUID NOT NULL,
    user_id         UUID NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('owner', 'contributor', 'viewer')),
    added_by        UUID REFERENCES users(id) ON DELETE SET NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (project_id, user_id),
    FOREIGN KEY (organization_id, project_id) REFERENCES projects (organization_id, id) ON DELETE CASCADE,
    FOREIGN KEY (user_id, organization_id)
        REFERENCES organization_members (user_id, organization_id) ON DELETE CASCADE
);
-- UNIQUE (project_id, user_id) serves "members of a project"; this one serves authentication's
-- "this user's roles in this organization's projects" and the cascade from organization_members.
CREATE INDEX project_members_user ON project_members (user_id, organization_id);
SELECT enable_tenant_rls('project_members');

ALTER TABLE api_keys ADD COLUMN project_id UUID;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_project_fk
    FOREIGN KEY (organization_id, project_id) REFERENCES projects (organization_id, id);

-- The scopes of shared/scopes.py (shared.contracts.limits.KEY_SCOPES): the database refuses any other.
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scopes_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scopes_check CHECK (
    scopes <@ ARRAY[
        'admin', 'jobs:read', 'jobs:write', 'fleet:read', 'costs:read', 'metrics:read',
        'webhooks:read', 'webhooks:write', 'keys:read', 'keys:write', 'members:read', 'members:write',
        'projects:read', 'projects:write'
    ]::TEXT[]
);
