-- forge schema, version 3: indexes for user administration and tenants
-- (PostgreSQL twin of migrations/sqlite/V3__admin.sql).
--
-- Deleting a user (or a whole tenant, whose users cascade) looks up each
-- deleted user's sessions through the foreign key sessions.user_id;
-- sessions_user leads with tenant_id, so without this index every deleted
-- user costs a scan of the sessions table.
CREATE INDEX sessions_user_id ON sessions (user_id);
