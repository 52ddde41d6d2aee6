-- Scheduler engine (issue 8): the leader lease with its fencing token, the job shape (gangs of nodes,
-- CPU, RAM, time limit, hold, opt-out of requeue), attempts, the persisted "why pending" answer, and a
-- change sequence on jobs and on the GPU projection so that the leader updates its in-memory state
-- incrementally instead of re-reading everything per cycle.

-- timed_out: a terminal status (the agent ended the job at its time limit; billed like any end).
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check CHECK (
    status IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out'));
ALTER TABLE jobs DROP CONSTRAINT jobs_placed_have_node;
ALTER TABLE jobs ADD CONSTRAINT jobs_placed_have_node CHECK (
    (status = 'queued' AND node_id IS NULL)
    OR (status IN ('scheduled', 'running', 'succeeded', 'failed', 'timed_out')
        AND node_id IS NOT NULL AND scheduled_at IS NOT NULL)
    OR status = 'cancelled');
ALTER TABLE jobs DROP CONSTRAINT jobs_terminal_have_finished_at;
ALTER TABLE jobs ADD CONSTRAINT jobs_terminal_have_finished_at CHECK (
    (status IN ('succeeded', 'failed', 'cancelled', 'timed_out')) = (finished_at IS NOT NULL));
ALTER TABLE job_status_history DROP CONSTRAINT job_status_history_status_check;
ALTER TABLE job_status_history ADD CONSTRAINT job_status_history_status_check CHECK (
    status IN ('queued', 'scheduled', 'running', 'succeeded', 'failed', 'cancelled', 'timed_out'));
ALTER TABLE job_status_history ADD COLUMN attempt INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1);

ALTER TABLE jobs
    ADD COLUMN nodes              INTEGER NOT NULL DEFAULT 1 CHECK (nodes BETWEEN 1 AND 64),
    ADD COLUMN cpu_cores          INTEGER NOT NULL DEFAULT 0 CHECK (cpu_cores BETWEEN 0 AND 1024),
    ADD COLUMN ram_mb             BIGINT  NOT NULL DEFAULT 0 CHECK (ram_mb >= 0),
    ADD COLUMN time_limit_seconds BIGINT CHECK (time_limit_seconds > 0),   -- NULL: no limit
    ADD COLUMN held               BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN no_requeue         BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN attempt            INTEGER NOT NULL DEFAULT 1 CHECK (attempt >= 1),
    -- every node of the current placement (rank order) and [{node_id, rank, gpu_ids}]
    ADD COLUMN node_ids           UUID[] NOT NULL DEFAULT '{}',
    ADD COLUMN placements         JSONB NOT NULL DEFAULT '[]',
    -- why it waits (the leader writes only changes); estimated_start only where computable
    ADD COLUMN pending_code       TEXT CHECK (char_length(pending_code) <= 64),
    ADD COLUMN pending_message    TEXT CHECK (char_length(pending_message) <= 1000),
    ADD COLUMN estimated_start    TIMESTAMPTZ;
ALTER TABLE jobs ADD CONSTRAINT jobs_only_queued_held CHECK (NOT held OR status = 'queued');

UPDATE jobs SET node_ids = ARRAY[node_id],
                placements = jsonb_build_array(jsonb_build_object(
                    'node_id', node_id, 'rank', 0, 'gpu_ids', to_jsonb(gpu_ids)))
 WHERE node_id IS NOT NULL;

-- The change watermark: every write that matters to scheduling takes the next number. Only the
-- scheduling fields bump it, so the leader's own pending-reason writes do not come back to it.
CREATE SEQUENCE jobs_change_seq;
ALTER TABLE jobs ADD COLUMN change_seq BIGINT NOT NULL DEFAULT nextval('jobs_change_seq');
CREATE FUNCTION jobs_bump_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.status, NEW.held, NEW.priority, NEW.attempt, NEW.node_ids)
       IS DISTINCT FROM (OLD.status, OLD.held, OLD.priority, OLD.attempt, OLD.node_ids) THEN
        NEW.change_seq := nextval('jobs_change_seq');
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER jobs_change_seq BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION jobs_bump_change_seq();
CREATE INDEX jobs_changes ON jobs (change_seq);

-- Position among the organization's waiting jobs, in queue order, counted at read time.
CREATE INDEX jobs_org_queue ON jobs (organization_id, priority DESC, created_at, id)
    WHERE status = 'queued' AND NOT held;
DROP INDEX jobs_live_on_node;
CREATE INDEX jobs_live_on_nodes ON jobs USING gin (node_ids) WHERE status IN ('scheduled', 'running');

-- The projection carries the node's capacity and fabric labels (0 / empty: the agent did not say).
ALTER TABLE gpu_inventory
    ADD COLUMN node_cpu_cores INTEGER NOT NULL DEFAULT 0 CHECK (node_cpu_cores >= 0),
    ADD COLUMN node_ram_mb    BIGINT  NOT NULL DEFAULT 0 CHECK (node_ram_mb >= 0),
    ADD COLUMN node_labels    JSONB   NOT NULL DEFAULT '{}';
CREATE SEQUENCE gpu_inventory_change_seq;
ALTER TABLE gpu_inventory ADD COLUMN change_seq BIGINT NOT NULL DEFAULT nextval('gpu_inventory_change_seq');
CREATE FUNCTION gpu_inventory_bump_change_seq() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_seq := nextval('gpu_inventory_change_seq');
    RETURN NEW;
END $$;
CREATE TRIGGER gpu_inventory_change_seq BEFORE UPDATE ON gpu_inventory
    FOR EACH ROW EXECUTE FUNCTION gpu_inventory_bump_change_seq();
CREATE INDEX gpu_inventory_changes ON gpu_inventory (change_seq);

-- One active scheduler: whoever holds this row's lease. ``token`` grows at every take-over and every
-- cycle's transaction locks the row and checks holder and token first, so a deposed leader (paused,
-- partitioned, slow) can never commit a decision. System scope only; no tenant reads it.
CREATE TABLE scheduler_lease (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    holder     TEXT NOT NULL,
    token      BIGINT NOT NULL CHECK (token >= 0),
    expires_at TIMESTAMPTZ NOT NULL
);
INSERT INTO scheduler_lease (id, holder, token, expires_at) VALUES (1, '', 0, '-infinity');
