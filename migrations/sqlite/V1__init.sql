-- forge schema, version 1. Ids are UUID text, times are integer Unix seconds.
-- Every user-owned row carries tenant_id so every query can filter by it.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- The default tenant always exists; its id is fixed so code can name it.
INSERT INTO tenants (id, slug, name, created_at)
VALUES ('00000000-0000-7000-8000-000000000000', 'default', 'Default', 0);

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
);
CREATE UNIQUE INDEX users_tenant_email ON users (tenant_id, email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_tenant_phone ON users (tenant_id, phone) WHERE phone IS NOT NULL;
-- Keyset paging: ids are UUIDv7, so id order is creation order.
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
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- One row per refresh token ever issued, stored as SHA-256. A token is live
-- while rotated_at is NULL; rotation sets rotated_at in one UPDATE so two
-- concurrent refreshes cannot both succeed.
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
INSERT INTO roles (id, tenant_id, name, permissions, builtin, created_at, updated_at)
VALUES ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-000000000000',
        'admin', '["*"]', 1, 0, 0);

CREATE TABLE user_roles (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id     TEXT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);

-- Ed25519 signing keys. state: 'next' (published, not yet signing),
-- 'current' (signing), 'retired' (verify only until its tokens expire).
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

-- Server-side secrets created on first start (e.g. the key that derives a
-- refresh token's successor, so a retry inside the grace window gets the
-- same successor without storing it in plaintext).
CREATE TABLE server_secrets (
    name        TEXT PRIMARY KEY,
    value       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);

-- Append-only.
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
