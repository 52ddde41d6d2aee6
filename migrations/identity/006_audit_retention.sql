-- Audit retention (docs/audit.md "Retention"): the hourly prune deletes the oldest records by time, a
-- chunk at a time; this index finds them without scanning the log.
CREATE INDEX audit_log_at ON audit_log (at);
