-- Job output (issue 10): each attempt of a job keeps its whole output up to a limit; beyond it the
-- head and the tail (services/monitoring/domain/output.py). Chunks are keyed by their raw position,
-- so a replayed chunk is stored once. One row per attempt says how far the output got and whether it
-- is complete (the agent's end of output, or the job's end on the job topic after a grace period).
CREATE TABLE job_output (
    job_id          UUID NOT NULL,
    attempt         INTEGER NOT NULL CHECK (attempt >= 0),
    organization_id UUID NOT NULL,
    head_bytes      BIGINT NOT NULL CHECK (head_bytes >= 1),   -- the limit in force for this attempt
    tail_bytes      BIGINT NOT NULL CHECK (tail_bytes >= 1),
    received_bytes  BIGINT NOT NULL DEFAULT 0 CHECK (received_bytes >= 0),  -- raw end so far
    eof             BOOLEAN NOT NULL DEFAULT false,   -- the agent said the output ends here
    ended_at        TIMESTAMPTZ,                      -- the attempt ended (job topic)
    complete        BOOLEAN NOT NULL DEFAULT false,
    incomplete      BOOLEAN NOT NULL DEFAULT false,   -- completed by ended_at without eof
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, attempt)
);
CREATE INDEX job_output_waiting_end ON job_output (ended_at) WHERE NOT complete AND ended_at IS NOT NULL;
CREATE INDEX job_output_updated ON job_output (updated_at);
SELECT enable_tenant_rls('job_output');

CREATE TABLE job_output_chunks (
    job_id          UUID NOT NULL,
    attempt         INTEGER NOT NULL,
    byte_offset     BIGINT NOT NULL CHECK (byte_offset >= 0),  -- raw position of the first byte
    organization_id UUID NOT NULL,
    data            BYTEA NOT NULL,
    PRIMARY KEY (job_id, attempt, byte_offset),
    FOREIGN KEY (job_id, attempt) REFERENCES job_output (job_id, attempt) ON DELETE CASCADE
);
SELECT enable_tenant_rls('job_output_chunks');
