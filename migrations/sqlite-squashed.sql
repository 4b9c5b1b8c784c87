-- forge's SQLite schema after migration V16, generated from migrations/sqlite.
-- Do not edit: `FORGE_BLESS_SCHEMA=1 cargo test --lib store::sqlite::schema` rewrites it.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
, settings TEXT NOT NULL DEFAULT '{}');
CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email           TEXT,
    email_verified  INTEGER NOT NULL DEFAULT 0,
    phone           TEXT,
    phone_verified  INTEGER NOT NULL DEFAULT 0,
    disabled        INTEGER NOT NULL DEFAULT 0,
    metadata        TEXT NOT NULL DEFAULT '{}',
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_sign_in_at INTEGER
, credential_epoch INTEGER NOT NULL DEFAULT 0, mfa_due_since INTEGER);
CREATE UNIQUE INDEX users_tenant_email ON users (tenant_id, email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_tenant_phone ON users (tenant_id, phone) WHERE phone IS NOT NULL;
CREATE INDEX users_tenant_id ON users (tenant_id, id);
CREATE TABLE password_credentials (
    user_id     TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    hash        TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    user_agent   TEXT,
    ip           TEXT
, amr TEXT NOT NULL DEFAULT '', aal INTEGER NOT NULL DEFAULT 1 CHECK (aal IN (1, 2)), client_id TEXT, sso_id TEXT, scope TEXT);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);
CREATE TABLE roles (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    permissions TEXT NOT NULL DEFAULT '[]',
    builtin     INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE TABLE user_roles (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id     TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BLOB NOT NULL,
    public_key   BLOB NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    created_at   INTEGER NOT NULL,
    activated_at INTEGER,
    retired_at   INTEGER
);
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    event       TEXT NOT NULL,
    user_id     TEXT,
    actor_id    TEXT,
    ip          TEXT,
    user_agent  TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_tenant_user ON audit_events (tenant_id, user_id, id);
CREATE INDEX audit_tenant_event ON audit_events (tenant_id, event, id);
CREATE INDEX audit_at ON audit_events (at);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX audit_tenant_event_at ON audit_events (tenant_id, event, at);
CREATE INDEX sessions_live ON sessions (tenant_id, expires_at) WHERE revoked_at IS NULL;
CREATE TABLE deleted_users (
    user_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    deleted_at INTEGER NOT NULL
);
CREATE INDEX deleted_users_at ON deleted_users (deleted_at);
CREATE TABLE factors (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('totp', 'webauthn')),
    name           TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    confirmed_at   INTEGER,
    last_used_at   INTEGER,
    totp_secret    BLOB,
    totp_last_step INTEGER,
    credential_id  TEXT,
    credential     TEXT,
    CHECK ((kind = 'totp' AND totp_secret IS NOT NULL AND credential_id IS NULL AND credential IS NULL)
        OR (kind = 'webauthn' AND totp_secret IS NULL AND credential_id IS NOT NULL AND credential IS NOT NULL))
);
CREATE INDEX factors_user ON factors (tenant_id, user_id, created_at);
CREATE UNIQUE INDEX factors_credential ON factors (tenant_id, credential_id) WHERE credential_id IS NOT NULL;
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id  TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    used_at    INTEGER,
    PRIMARY KEY (user_id, code_hash)
);
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
CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant_id, id);
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
CREATE INDEX sessions_client ON sessions (client_id) WHERE client_id IS NOT NULL;
CREATE TABLE identity_providers (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id            TEXT NOT NULL,
    kind          TEXT NOT NULL
                  CHECK (kind IN ('oidc', 'oauth2', 'github', 'google', 'microsoft', 'gitlab', 'apple')),
    name          TEXT NOT NULL,
    client_id     TEXT NOT NULL,
    client_secret BLOB NOT NULL,
    issuer        TEXT,
    authorize_url TEXT,
    token_url     TEXT,
    userinfo_url  TEXT,
    scopes        TEXT NOT NULL DEFAULT '[]',
    claims        TEXT NOT NULL,
    team_id       TEXT,
    key_id        TEXT,
    enabled       INTEGER NOT NULL DEFAULT 1,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    CHECK ((team_id IS NULL) = (key_id IS NULL))
);
CREATE TABLE user_identities (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider_id  TEXT NOT NULL,
    subject      TEXT NOT NULL,
    email        TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    CONSTRAINT user_identities_subject UNIQUE (tenant_id, provider_id, subject)
);
CREATE INDEX user_identities_user ON user_identities (tenant_id, user_id);
CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    events          TEXT NOT NULL,
    description     TEXT,
    secret          BLOB NOT NULL,
    previous_secret BLOB,
    previous_until  INTEGER,
    enabled         INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    failing_since   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);
CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    type         TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL REFERENCES webhook_events(id) ON DELETE CASCADE,
    tenant_id        TEXT NOT NULL,
    ordering_key     TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    locked_until     INTEGER,
    last_status_code INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (webhook_id, ordering_key, id);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id);
CREATE TABLE "outbox" (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    channel         TEXT NOT NULL CHECK (channel IN ('email', 'sms', 'backchannel')),
    kind            TEXT NOT NULL
                    CHECK (kind IN ('otp', 'email_verification', 'password_reset', 'address_changed',
                                    'recovery_code_used', 'factor_changed', 'logout_token',
                                    'password_changed', 'new_device', 'account_disabled',
                                    'webhook_disabled')),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT,
    html            TEXT,
    code            TEXT,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'sending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_tenant_id ON outbox (tenant_id, id);
CREATE INDEX outbox_live_expiry ON outbox (expires_at) WHERE body IS NOT NULL;
CREATE INDEX outbox_tenant_status ON outbox (tenant_id, status);
INSERT INTO "tenants" VALUES ('00000000-0000-7000-8000-000000000000', 'default', 'Default', 0, '{}');
INSERT INTO "roles" VALUES ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-000000000000', 'admin', '["*"]', 1, 0, 0);
