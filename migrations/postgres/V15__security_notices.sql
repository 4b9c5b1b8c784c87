-- forge schema, version 15 (PostgreSQL twin of the SQLite file): the outbox
-- carries the new security notices ('password_changed', 'new_device',
-- 'account_disabled').
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('otp', 'email_verification', 'password_reset', 'address_changed',
                    'recovery_code_used', 'factor_changed', 'logout_token',
                    'password_changed', 'new_device', 'account_disabled'));
