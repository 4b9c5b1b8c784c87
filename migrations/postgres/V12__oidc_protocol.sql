-- forge schema, version 13 (PostgreSQL twin of the SQLite file): sessions
-- of OAuth clients remember their granted scopes, and the outbox carries
-- back-channel logout tokens (channel 'backchannel', kind 'logout_token').
ALTER TABLE sessions ADD COLUMN scope TEXT;
ALTER TABLE outbox DROP CONSTRAINT outbox_channel_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_channel_check
    CHECK (channel IN ('email', 'sms', 'backchannel'));
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('otp', 'email_verification', 'password_reset', 'address_changed',
                    'recovery_code_used', 'factor_changed', 'logout_token'));
