-- A reused Idempotency-Key is the same job only for the same request: keep a fingerprint of the request
-- (SHA-256 hex of the normalized spec, see services/scheduler/domain/spec.py) beside the key.
-- Nullable: jobs stored before this migration have none; the scheduler compares their own fields.
ALTER TABLE jobs
    ADD COLUMN idempotency_fingerprint TEXT
        CHECK (idempotency_fingerprint ~ '^[0-9a-f]{64}$');
