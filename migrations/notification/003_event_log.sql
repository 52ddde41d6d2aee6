-- The durable per-organization event log behind GET /v1/events (docs/events.md): every job and cost
-- event of a tenant as its CloudEvent (structured mode, one line of JSON), numbered per organization.
--
-- Why a per-organization counter and not one global bigserial: a sequence hands out numbers at insert
-- time, not at commit time, so with a global bigserial event 11 can commit before event 10; a stream
-- that already sent 11 and moved its cursor past 10 would never send 10. Here the counter row of the
-- organization is locked by the transaction that takes the next number until it commits, so within one
-- organization numbers commit in order: everything at or below a committed head is visible, and a
-- stream reads "seq > cursor" on the primary key (organization_id, seq) without gaps to wait out.
-- The counter also keeps an organization's numbering monotonic after retention pruned every row.

CREATE TABLE event_log_heads (
    organization_id UUID PRIMARY KEY,
    last_seq        BIGINT NOT NULL CHECK (last_seq >= 1)
);

CREATE TABLE event_log (
    organization_id UUID NOT NULL,
    seq             BIGINT NOT NULL CHECK (seq >= 1),
    -- The CloudEvent id: a replayed record (same id) is stored once.
    event_id        UUID NOT NULL UNIQUE,
    type            TEXT NOT NULL,
    job_id          UUID,
    occurred_at     TIMESTAMPTZ NOT NULL,   -- the CloudEvent time
    stored_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    cloudevent      TEXT NOT NULL,          -- exactly what the stream sends as SSE data
    PRIMARY KEY (organization_id, seq)
);
-- Streams filtered to one job.
CREATE INDEX event_log_job ON event_log (organization_id, job_id, seq);
-- Retention by age.
CREATE INDEX event_log_stored ON event_log (stored_at);

SELECT enable_tenant_rls('event_log_heads');
SELECT enable_tenant_rls('event_log');

-- Webhooks may subscribe to cost events (and to every job event type the job topic has): the list of
-- 001 is widened to shared/contracts/limits.py's WEBHOOK_EVENT_NAMES.
ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check CHECK (events <@ ARRAY[
    'job.submitted', 'job.scheduled', 'job.started', 'job.succeeded', 'job.failed', 'job.cancelled',
    'job.timed_out', 'job.requeued', 'job.pending', 'cost.recorded']::TEXT[]);
