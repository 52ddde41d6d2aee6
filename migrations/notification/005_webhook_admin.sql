-- Webhook administration (issue 9): rotating a webhook's signing secret with an overlap, and
-- redelivering a delivery.
--
-- A rotation keeps the secret it replaced for an overlap (0 to 7 days, default 24 h): until
-- previous_secret_expires_at every delivery's webhook-signature header carries a signature with each
-- secret, so a receiver holding either one accepts it. Only one previous secret is kept: rotating again
-- during an overlap drops the oldest. An overlap of 0 keeps none.
ALTER TABLE webhooks ADD COLUMN previous_signing_secret TEXT
    CHECK (previous_signing_secret IS NULL OR previous_signing_secret LIKE 'whsec_%');
ALTER TABLE webhooks ADD COLUMN previous_secret_expires_at TIMESTAMPTZ;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_previous_secret_pair
    CHECK ((previous_signing_secret IS NULL) = (previous_secret_expires_at IS NULL));

-- A redelivered delivery starts a fresh retry schedule: attempts keep counting (the attempt log keeps
-- every one, numbered on), and the retry policy counts the attempts after schedule_start, the number of
-- attempts made before the latest redelivery (0: never redelivered).
ALTER TABLE webhook_deliveries ADD COLUMN schedule_start INTEGER NOT NULL DEFAULT 0
    CHECK (schedule_start >= 0 AND schedule_start <= attempts);

-- The organization's job webhook secret (signing jobs' own webhook_url) rotates the same way.
ALTER TABLE job_webhook_secrets ADD COLUMN previous_secret TEXT
    CHECK (previous_secret IS NULL OR previous_secret LIKE 'whsec_%');
ALTER TABLE job_webhook_secrets ADD COLUMN previous_expires_at TIMESTAMPTZ;
ALTER TABLE job_webhook_secrets ADD CONSTRAINT job_webhook_secrets_previous_pair
    CHECK ((previous_secret IS NULL) = (previous_expires_at IS NULL));
