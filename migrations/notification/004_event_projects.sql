-- Projects in the event log and in deliveries (issue 9). Each logged event keeps the project of its
-- job as the job or cost event carried it (NULL: none, also for everything logged before this
-- migration). A project-bound API key streams only its project's events: the stream skips the others
-- (the per-organization numbering is unchanged, so resume cursors keep working), and lists only the
-- deliveries of its project's jobs to their own webhook_url (docs/projects.md, "Billing and events").
ALTER TABLE event_log ADD COLUMN project_id UUID;
-- A bound key's stream reads "seq > cursor" within its project.
CREATE INDEX event_log_project ON event_log (organization_id, project_id, seq) WHERE project_id IS NOT NULL;

ALTER TABLE webhook_deliveries ADD COLUMN project_id UUID;
