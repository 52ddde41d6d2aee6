-- Webhooks may subscribe to the job topic's new gpufleet.job.time_limit_warning (a running job nears its
-- time limit): the list of 003 is widened to shared/contracts/limits.py's WEBHOOK_EVENT_NAMES again.
ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check CHECK (events <@ ARRAY[
    'job.submitted', 'job.scheduled', 'job.started', 'job.succeeded', 'job.failed', 'job.cancelled',
    'job.timed_out', 'job.requeued', 'job.pending', 'job.time_limit_warning', 'cost.recorded']::TEXT[]);
