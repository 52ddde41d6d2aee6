-- Projects in billing (issue 9): every cost line and every running attempt carries the project of its
-- job, as the job topic's events say it (JobSnapshotV1.project_id; NULL = no project, also for every
-- row from before this migration). A job's project never changes, so all lines of a job agree.
-- Project ids are identity's; billing never checks them against identity's tables (it cannot read
-- them): a filter on an unknown project simply finds nothing.
ALTER TABLE cost_tracking ADD COLUMN project_id UUID;
ALTER TABLE running_attempts ADD COLUMN project_id UUID;

-- GET /v1/costs?project_id= and project-bound keys page one project's costs newest first.
CREATE INDEX cost_tracking_org_project_created
    ON cost_tracking (organization_id, project_id, created_at DESC, job_id)
    WHERE project_id IS NOT NULL;
