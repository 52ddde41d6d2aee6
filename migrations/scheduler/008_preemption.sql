-- Preemption (docs/policy.md#preemption): a job running on borrowed capacity is asked to stop when
-- the organization that lent it wants it back, and is requeued once its agent reports it stopped.
-- preempted_at: when it was asked (NULL: not being preempted; cleared when it is requeued).
-- preemptions: how many of its attempts ended so; they do not count against the bounded
-- infrastructure requeues (attempt - preemptions is what is compared with the maximum).
ALTER TABLE jobs ADD COLUMN preempted_at TIMESTAMPTZ;
ALTER TABLE jobs ADD COLUMN preemptions INTEGER NOT NULL DEFAULT 0 CHECK (preemptions >= 0);

-- The operator's preemption settings (PolicyService/SetPreemption), audited like the others.
ALTER TABLE policy_settings ADD COLUMN reclaim_lent_capacity BOOLEAN NOT NULL DEFAULT true;
ALTER TABLE policy_settings ADD COLUMN preemption_grace_seconds INTEGER NOT NULL DEFAULT 0
    CHECK (preemption_grace_seconds BETWEEN 0 AND 86400);
