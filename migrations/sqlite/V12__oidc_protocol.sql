-- forge schema, version 13 (the OpenID Connect protocol):
--
-- 1. A session opened for an OAuth client remembers the scopes granted to
--    it (space-separated, NULL for forge's own API sign-ins), so every
--    access token of the session, after a refresh too, states them, and
--    userinfo answers by them.
-- 2. The outbox carries back-channel logout tokens (OpenID Connect
--    Back-Channel Logout 1.0): channel 'backchannel', kind 'logout_token',
--    the recipient is the client's backchannel_logout_uri and the body the
--    signed logout token, POSTed with the durable worker's retries.
--
-- SQLite cannot alter a CHECK constraint, so the outbox is rebuilt with the
-- same columns and indexes (V10) and the wider lists.
ALTER TABLE sessions ADD COLUMN scope TEXT;

CREATE TABLE outbox_v13 (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'backchannel')),
    kind            TEXT NOT NULL
                    CHECK (kind IN ('otp', 'email_verification', 'password_reset', 'address_changed',
                                    'recovery_code_used', 'factor_changed', 'logout_token')),
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
INSERT INTO outbox_v13 SELECT id, tenant_id, channel, kind, recipient, subject, body, code, status, attempts,
    next_attempt_at, locked_until, last_error, created_at, updated_at, expires_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v13 RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_tenant_id ON outbox (tenant_id, id);
CREATE INDEX outbox_live_expiry ON outbox (expires_at) WHERE body IS NOT NULL;
CREATE INDEX outbox_tenant_status ON outbox (tenant_id, status);
