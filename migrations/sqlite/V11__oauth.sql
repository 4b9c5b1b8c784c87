-- forge schema, version 11: OAuth clients, the consents users gave them, and
-- which client (and which hosted sign-in) a session belongs to.
--
-- oauth_clients: one registered application of a tenant. client_id is the
--   public identifier, random and unique across all tenants (the protocol
--   endpoints find the client, and so its tenant, by it alone). A
--   confidential client's secret is kept only as secret_hash, the hex
--   SHA-256 of a 256-bit random secret (nothing to brute-force, so a fast
--   hash is right, as for refresh tokens); a public client has none. The
--   lists (redirect_uris, post_logout_redirect_uris, grant_types, scopes)
--   are JSON arrays of strings, validated by domain::clients before they
--   are written. id_token_alg is the client's id_token_signed_response_alg.
CREATE TABLE oauth_clients (
    id                        TEXT PRIMARY KEY,
    tenant_id                 TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    client_id                 TEXT NOT NULL UNIQUE,
    name                      TEXT NOT NULL,
    kind                      TEXT NOT NULL CHECK (kind IN ('confidential', 'public')),
    secret_hash               TEXT,
    redirect_uris             TEXT NOT NULL DEFAULT '[]',
    post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]',
    grant_types               TEXT NOT NULL DEFAULT '[]',
    scopes                    TEXT NOT NULL DEFAULT '[]',
    first_party               INTEGER NOT NULL DEFAULT 0,
    backchannel_logout_uri    TEXT,
    id_token_alg              TEXT NOT NULL DEFAULT 'EdDSA' CHECK (id_token_alg IN ('EdDSA', 'RS256')),
    created_at                INTEGER NOT NULL,
    updated_at                INTEGER NOT NULL,
    CHECK ((kind = 'confidential' AND secret_hash IS NOT NULL) OR (kind = 'public' AND secret_hash IS NULL))
);
-- Listing a tenant's clients; ids are UUIDv7, so id order is creation order.
CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant_id, id);

-- oauth_consents: the scopes a user allowed a client (JSON array of
-- strings), so the consent page is not shown again for what they cover.
-- Goes with the user and with the client (revoking a consent or deleting
-- the client also revokes the sessions of that client: see store/clients.rs).
CREATE TABLE oauth_consents (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL REFERENCES oauth_clients(client_id) ON DELETE CASCADE,
    scopes     TEXT NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, client_id)
);
CREATE INDEX oauth_consents_client ON oauth_consents (client_id);

-- sessions.client_id: the OAuth client a session was opened for (NULL for
-- forge's own API sign-ins). No foreign key: a deleted client's sessions are
-- revoked, not deleted, so the deny list can be refilled from their rows.
-- sessions.sso_id: the hosted sign-in (SSO) session it came from, the `sid`
-- of its ID tokens.
ALTER TABLE sessions ADD COLUMN client_id TEXT;
ALTER TABLE sessions ADD COLUMN sso_id TEXT;
CREATE INDEX sessions_client ON sessions (client_id) WHERE client_id IS NOT NULL;
