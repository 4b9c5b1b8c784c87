-- forge schema, version 5: credential epochs and tenant settings.
--
-- users.credential_epoch counts the events that end every session of a user
-- (password set or reset, "sign out everywhere", disable). It is bumped in
-- the same transaction as the event; an admin-site session remembers the
-- epoch it was opened under and ends as soon as the two differ.
ALTER TABLE users ADD COLUMN credential_epoch INTEGER NOT NULL DEFAULT 0;

-- tenants.settings is the tenant's settings document (JSON): only the parts
-- an administrator set (`signup`, ...); a part never set is absent and its
-- default applies (see src/domain/settings.rs). Parts are validated into
-- typed values before they are written.
ALTER TABLE tenants ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
