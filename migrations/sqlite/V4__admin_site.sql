-- forge schema, version 4: indexes for the admin site's dashboard.
--
-- The sign-in chart counts a few events per hour or day over 30 days:
-- (tenant_id, event, at) turns that into one covering range scan per event
-- instead of a walk over every row of the tenant's log.
CREATE INDEX audit_tenant_event_at ON audit_events (tenant_id, event, at);
-- Live sessions: only rows not revoked are indexed, by expiry.
CREATE INDEX sessions_live ON sessions (tenant_id, expires_at) WHERE revoked_at IS NULL;
-- Pending and failed messages per tenant.
CREATE INDEX outbox_tenant_status ON outbox (tenant_id, status);
