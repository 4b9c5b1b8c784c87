-- forge schema, version 16 (issue 16): an email may carry an HTML part
-- beside its text (message templates); like `body` it holds the code, so it
-- is erased together with it. And the outbox carries the notice to a
-- tenant's administrators that a failing webhook endpoint was turned off
-- ('webhook_disabled').
--
-- SQLite cannot alter a CHECK constraint, so the outbox is rebuilt with the
-- same indexes (V15), the new column and the wider list.
CREATE TABLE outbox_v16 (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'backchannel')),
    kind            TEXT NOT NULL
                    CHECK (kind IN ('otp', 'email_verification', 'password_reset', 'address_changed',
                                    'recovery_code_used', 'factor_changed', 'logout_token',
                                    'password_changed', 'new_device', 'account_disabled',
                                    'webhook_disabled')),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT,
    html            TEXT,
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
INSERT INTO outbox_v16 SELECT id, tenant_id, channel, kind, recipient, subject, body, NULL, code, status, attempts,
    next_attempt_at, locked_until, last_error, created_at, updated_at, expires_at FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_v16 RENAME TO outbox;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_tenant_id ON outbox (tenant_id, id);
CREATE INDEX outbox_live_expiry ON outbox (expires_at) WHERE body IS NOT NULL;
CREATE INDEX outbox_tenant_status ON outbox (tenant_id, status);
