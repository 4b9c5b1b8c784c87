-- forge schema, version 7: durable records the deny list is refilled from.
--
-- Deleting a user (or a tenant) cascades away the user's session rows, so
-- after a restart nothing said that their still-unexpired access tokens
-- are dead. A tombstone per deleted user, kept outside every cascade, lets
-- the start-up refill deny them. Rows older than the longest access-token
-- life are of no further use and may be pruned.
CREATE TABLE deleted_users (
    user_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    deleted_at INTEGER NOT NULL
);
CREATE INDEX deleted_users_at ON deleted_users (deleted_at);
