-- forge schema, version 2: the notification outbox (PostgreSQL twin of
-- migrations/sqlite/V2__outbox.sql).
--
-- A message is written here in the request that asks for it and delivered
-- later by an outbox worker (at-least-once). body and code hold the secret
-- one-time code: they are erased (set NULL) together as soon as the message
-- is delivered, has failed for good, or has expired. Claiming moves due
-- 'pending' rows, and 'sending' rows whose lease ran out, to 'sending' in one
-- UPDATE whose row choice is `FOR UPDATE SKIP LOCKED`: several workers on
-- several instances claim disjoint batches and never wait on each other.
CREATE TABLE outbox (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
    kind            TEXT NOT NULL CHECK (kind IN ('otp', 'email_verification', 'password_reset')),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT,
    code            TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
-- Claiming: due pending rows by time.
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
-- Listing per tenant, newest first (ids are UUIDv7: id order is creation order).
CREATE INDEX outbox_tenant_id ON outbox (tenant_id, id);
-- Expiry: only rows still holding a code (undelivered, not yet failed).
CREATE INDEX outbox_live_expiry ON outbox (expires_at) WHERE body IS NOT NULL;
