-- forge schema, version 16 (PostgreSQL twin of the SQLite file): the
-- outbox's HTML part, erased with the body, and the 'webhook_disabled'
-- notice to a tenant's administrators.
ALTER TABLE outbox ADD COLUMN html TEXT;
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('otp', 'email_verification', 'password_reset', 'address_changed',
                    'recovery_code_used', 'factor_changed', 'logout_token',
                    'password_changed', 'new_device', 'account_disabled',
                    'webhook_disabled'));
