-- What a node offers besides its GPUs, as its agent reports it at registration: schedulable CPU cores,
-- RAM, and fabric/placement labels (nvlink_domain, rack, ...) that multi-node gangs prefer to share.
-- 0 / {}: not reported (agents from before this version).
ALTER TABLE nodes
    ADD COLUMN cpu_cores INTEGER NOT NULL DEFAULT 0 CHECK (cpu_cores >= 0),
    ADD COLUMN ram_mb    BIGINT  NOT NULL DEFAULT 0 CHECK (ram_mb >= 0),
    ADD COLUMN labels    JSONB   NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object');
