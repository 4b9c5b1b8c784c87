-- forge schema, version 5: credential epochs and tenant settings
-- (PostgreSQL twin of migrations/sqlite/V5__tenant_settings.sql).
--
-- users.credential_epoch counts the events that end every session of a user
-- (password set or reset, "sign out everywhere", disable). It is bumped in
-- the same transaction as the event; an admin-site session remembers the
-- epoch it was opened under and ends as soon as the two differ.
ALTER TABLE users ADD COLUMN credential_epoch BIGINT NOT NULL DEFAULT 0;
