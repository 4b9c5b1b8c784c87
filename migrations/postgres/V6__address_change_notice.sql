-- forge schema, version 6 (PostgreSQL twin of the SQLite file): the outbox
-- carries a notice kind without a code ('address_changed': the old address
-- is told of an email or phone change).
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('otp', 'email_verification', 'password_reset', 'address_changed'));
