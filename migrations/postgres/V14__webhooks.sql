-- forge schema, version 14: webhooks, the events that feed them and their
-- deliveries (see store/webhooks.rs).
--
-- webhooks: one endpoint a tenant registered. events is a JSON array of
--   event-type patterns (`user.*`, `*`), validated by domain::webhooks.
--   secret is sealed (crypto::seal, its own key, the tenant and webhook id
--   as associated data); during a rotation previous_secret signs as well
--   until previous_until. failing_since is when deliveries to it began to
--   fail without a success since (NULL when healthy); disabled_reason says
--   why enabled went false ('failing' when forge turned it off).
CREATE TABLE webhooks (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    description     TEXT,
    secret          BYTEA NOT NULL,
    previous_secret BYTEA,
    previous_until  BIGINT,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_reason TEXT,
    failing_since   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

-- webhook_events: what happened, written in the transaction of the change
-- itself (beside its audit row), only when an enabled endpoint of the
-- tenant wants it. payload is the JSON body every delivery sends, without
-- secrets. ordering_key is the user the event is about (the tenant when
-- none): deliveries of one key to one endpoint go out in order.
CREATE TABLE webhook_events (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    type         TEXT NOT NULL,
    ordering_key TEXT COLLATE "C" NOT NULL,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);

-- webhook_deliveries: one event on its way to one endpoint. status:
-- pending (due at next_attempt_at), sending (leased to a worker until
-- locked_until), delivered, failed.
CREATE TABLE webhook_deliveries (
    id               TEXT COLLATE "C" PRIMARY KEY,
    webhook_id       TEXT COLLATE "C" NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         TEXT COLLATE "C" NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    tenant_id        TEXT COLLATE "C" NOT NULL,
    ordering_key     TEXT COLLATE "C" NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT NOT NULL,
    locked_until     BIGINT,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, ordering_key, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
