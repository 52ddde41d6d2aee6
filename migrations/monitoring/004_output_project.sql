-- Projects in job output (issue 9): each attempt's output row keeps the project of its job, as the
-- job topic's events say it (JobSnapshotV1.project_id; NULL = no project). A job's project never
-- changes, so every attempt of a job agrees. A project-bound API key reads only the output of its
-- project's jobs; rows recorded before this migration have NULL until a later event of their job
-- names its project, and a bound key cannot read them meanwhile (docs/projects.md).
-- Utilization needs no column: a sample's job is its hold's, and gpu_allocations has the project.
ALTER TABLE job_output ADD COLUMN project_id UUID;
