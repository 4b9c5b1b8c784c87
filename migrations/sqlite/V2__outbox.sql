-- forge schema, version 2: the notification outbox.
--
-- A message is written here in the request that asks for it and delivered
-- later by the outbox worker, so a crash or a slow mail server never loses a
-- code and never slows a request down (at-least-once delivery).
--
-- body and code hold the secret one-time code: they are erased (set NULL)
-- together as soon as the message is delivered, has failed for good, or has
-- expired (expires_at: after it the code is useless). last_error never holds
-- either. Claiming moves due 'pending' rows, and 'sending' rows whose lease
-- (locked_until) has run out because their worker died, to 'sending' in one
-- UPDATE, so two workers never send the same row at once while it is leased.
CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    kind            TEXT NOT NULL CHECK (kind IN ('otp', 'email_verification', 'password_reset')),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT,
    code            TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
-- Claiming: due pending rows by time.
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
-- Listing per tenant, newest first (ids are UUIDv7: id order is creation order).
CREATE INDEX outbox_tenant_id ON outbox (tenant_id, id);
-- Expiry: only rows still holding a code (undelivered, not yet failed).
CREATE INDEX outbox_live_expiry ON outbox (expires_at) WHERE body IS NOT NULL;
