-- Projects inside an organization (issue 9; docs/projects.md) and container images (seed 003's
-- docker_image). A job belongs to at most one project (NULL: none) and may name a container image to
-- run in (NULL: the host sandbox); neither changes after submit. The scheduler cannot read identity's
-- projects: it takes a project id only once identity vouched for it (service_layer/projects.py).
ALTER TABLE jobs ADD COLUMN project_id UUID;
ALTER TABLE jobs ADD COLUMN image TEXT CHECK (image IS NULL OR char_length(image) BETWEEN 1 AND 512);
-- GET /v1/jobs?project_id= and a project-bound key's listing: newest first within one project.
CREATE INDEX jobs_org_project_created ON jobs (organization_id, project_id, created_at DESC, id DESC)
    WHERE project_id IS NOT NULL;

-- Per-project fair-share weights and caps, set by the organization's owners and admins through
-- PolicyService/SetProjectPolicy (audited in policy_audit like user caps). NULL: the default (weight 1,
-- no cap). Changes bump policy_settings.version like every policy change.
CREATE TABLE policy_project_policies (
    organization_id  UUID NOT NULL,
    project_id       UUID NOT NULL,
    weight           DOUBLE PRECISION CHECK (weight > 0 AND weight <= 1000000),
    max_running_jobs INTEGER CHECK (max_running_jobs BETWEEN 0 AND 1000000),
    max_gpus         INTEGER CHECK (max_gpus BETWEEN 0 AND 1000000),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, project_id)
);
SELECT enable_tenant_rls('policy_project_policies');
