-- forge schema, version 10 (PostgreSQL twin of the SQLite file): the outbox
-- carries two more notices without a code: 'recovery_code_used' (a recovery
-- code signed in) and 'factor_changed' (an administrator reset the second
-- factors).
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('otp', 'email_verification', 'password_reset', 'address_changed',
                    'recovery_code_used', 'factor_changed'));
