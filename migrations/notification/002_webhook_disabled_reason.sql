-- Why a webhook was switched off ("the endpoint answered 410 Gone", "10 consecutive failed attempts"):
-- shown to operators and copied into the deliveries it closes. Only a disabled webhook has one.
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT
    CHECK (disabled_reason IS NULL OR (status = 'disabled' AND length(disabled_reason) <= 1000));
