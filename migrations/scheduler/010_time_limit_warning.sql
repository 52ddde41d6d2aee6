-- The time-limit warning (gpufleet.job.time_limit_warning): a running job with a time limit is announced
-- once per attempt when its end nears. The leader writes the attempt it warned in the same fenced
-- transaction as the event's outbox row, so a leader that takes over (or restarts) knows what was sent
-- and sends nothing twice; a requeued job's next attempt is warned again. 0: no attempt warned yet, so
-- a job running when this is applied is warned (late, once) by the next leader.
-- Not a scheduling change: the change-number trigger (009) ignores it, and the leader's reads of
-- changes never re-read a row for it.
ALTER TABLE jobs ADD COLUMN time_limit_warned_attempt INTEGER NOT NULL DEFAULT 0
    CHECK (time_limit_warned_attempt >= 0 AND time_limit_warned_attempt <= attempt);
