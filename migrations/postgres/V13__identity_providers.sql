-- forge schema, version 13 (PostgreSQL twin of migrations/sqlite/V13__identity_providers.sql): upstream identity providers ("sign in with")
-- and the identities users linked from them.
--
-- identity_providers: one upstream provider a tenant registered through the
--   API or the admin site (providers declared in forge.toml live in memory
--   only, see service::providers). id is the tenant's slug for it (it
--   appears in URLs). client_secret is sealed (XChaCha20-Poly1305 under a
--   key of its own derived from a server secret, the tenant id and the
--   provider id as associated data, see crypto::seal), never in clear.
--   scopes is a JSON array of strings, claims a JSON object (the userinfo
--   field names of domain::providers::ClaimMap); both are validated by
--   domain::providers before they are written. team_id and key_id are Sign
--   in with Apple's (both or neither).
CREATE TABLE identity_providers (
    tenant_id     TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id            TEXT COLLATE "C" NOT NULL,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('oidc', 'oauth2', 'github', 'google', 'microsoft', 'gitlab', 'apple')),
    name          TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret BYTEA NOT NULL,
    issuer        TEXT,
    authorize_url TEXT,
    token_url     TEXT,
    userinfo_url  TEXT,
    scopes        TEXT NOT NULL DEFAULT '[]',
    claims        TEXT NOT NULL,
    team_id       TEXT,
    key_id        TEXT,
    enabled       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK ((team_id IS NULL) = (key_id IS NULL))
);

-- user_identities: a user's account at an upstream provider. (provider_id,
-- subject) is the key within a tenant, never the email (which is kept only
-- as the upstream last reported it). provider_id has no foreign key: a
-- provider may be declared in forge.toml rather than stored; deleting a
-- stored provider deletes its identities in the same transaction
-- (store/providers.rs).
CREATE TABLE user_identities (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id  TEXT COLLATE "C" NOT NULL,
    subject      TEXT COLLATE "C" NOT NULL,
    email        TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    CONSTRAINT user_identities_subject UNIQUE (tenant_id, provider_id, subject)
);
CREATE INDEX user_identities_user ON user_identities (tenant_id, user_id);
