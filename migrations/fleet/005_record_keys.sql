-- Signed agent records (issue 9, docs/topics.md "Signed agent records"): the Ed25519 public key each
-- node signs its Kafka records (metric samples, job output) with, replaced at each registration. Not
-- tenant data: only the service's system scope writes it; consumers read it through GetRecordKeys.

CREATE TABLE node_record_keys (
    node_id    UUID PRIMARY KEY REFERENCES nodes(id) ON DELETE CASCADE,
    public_key BYTEA NOT NULL CHECK (length(public_key) = 32),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE node_record_keys ENABLE ROW LEVEL SECURITY; ALTER TABLE node_record_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY system_only ON node_record_keys FOR ALL
    USING (current_setting('app.system', true) = 'on')
    WITH CHECK (current_setting('app.system', true) = 'on');
