-- forge schema, version 1 (PostgreSQL twin of migrations/sqlite/V1__init.sql).
-- Ids are UUID text, times are BIGINT Unix seconds, JSON is text: records map
-- the same way on both backends. Text keys use the "C" collation so ordering
-- and prefix ranges compare bytes, exactly as SQLite does, whatever locale
-- the database was created with. Flags are BOOLEAN (SQLite stores 0/1; the
-- statements use TRUE/FALSE, which both dialects read).

CREATE TABLE tenants (
    id          TEXT COLLATE "C" PRIMARY KEY,
    slug        TEXT COLLATE "C" NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    CONSTRAINT tenants_slug_key UNIQUE (slug)
);

-- The default tenant always exists; its id is fixed so code can name it.
INSERT INTO tenants (id, slug, name, created_at)
VALUES ('00000000-0000-7000-8000-000000000000', 'default', 'Default', 0);

CREATE TABLE users (
    id              TEXT COLLATE "C" PRIMARY KEY,
    tenant_id       TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    email           TEXT COLLATE "C",
    email_verified  BOOLEAN NOT NULL DEFAULT FALSE,
    phone           TEXT COLLATE "C",
    phone_verified  BOOLEAN NOT NULL DEFAULT FALSE,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    metadata        TEXT NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_sign_in_at BIGINT
);
CREATE UNIQUE INDEX users_tenant_email ON users (tenant_id, email) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX users_tenant_phone ON users (tenant_id, phone) WHERE phone IS NOT NULL;
-- Keyset paging: ids are UUIDv7, so id order is creation order.
CREATE INDEX users_tenant_id ON users (tenant_id, id);

CREATE TABLE password_credentials (
    user_id     TEXT COLLATE "C" PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    hash        TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE sessions (
    id           TEXT COLLATE "C" PRIMARY KEY,
    tenant_id    TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    user_agent   TEXT,
    ip           TEXT
);
CREATE INDEX sessions_user ON sessions (tenant_id, user_id);
CREATE INDEX sessions_revoked ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

-- One row per refresh token ever issued, stored as SHA-256. A token is live
-- while rotated_at is NULL; rotation sets rotated_at in one UPDATE so two
-- concurrent refreshes cannot both succeed (the second waits for the first's
-- row lock, then finds rotated_at set).
CREATE TABLE refresh_tokens (
    token_hash  TEXT COLLATE "C" PRIMARY KEY,
    session_id  TEXT COLLATE "C" NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    rotated_at  BIGINT
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE roles (
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT COLLATE "C" NOT NULL,
    permissions TEXT NOT NULL DEFAULT '[]',
    builtin     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT roles_tenant_name_key UNIQUE (tenant_id, name)
);
INSERT INTO roles (id, tenant_id, name, permissions, builtin, created_at, updated_at)
VALUES ('00000000-0000-7000-8000-000000000001', '00000000-0000-7000-8000-000000000000',
        'admin', '["*"]', TRUE, 0, 0);

CREATE TABLE user_roles (
    user_id     TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id     TEXT COLLATE "C" NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, role_id)
);
CREATE INDEX user_roles_role ON user_roles (role_id);

-- Ed25519 signing keys. state: 'next' (published, not yet signing),
-- 'current' (signing), 'retired' (verify only until its tokens expire).
CREATE TABLE signing_keys (
    kid          TEXT COLLATE "C" PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    private_key  BYTEA NOT NULL,
    public_key   BYTEA NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('next', 'current', 'retired')),
    created_at   BIGINT NOT NULL,
    activated_at BIGINT,
    retired_at   BIGINT
);

-- Server-side secrets created on first start (e.g. the key that derives a
-- refresh token's successor). Several instances starting at once create
-- exactly one: INSERT ... ON CONFLICT DO NOTHING, then read.
CREATE TABLE server_secrets (
    name        TEXT COLLATE "C" PRIMARY KEY,
    value       BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

-- Append-only.
CREATE TABLE audit_events (
    id          TEXT COLLATE "C" PRIMARY KEY,
    tenant_id   TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    at          BIGINT NOT NULL,
    event       TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C",
    actor_id    TEXT COLLATE "C",
    ip          TEXT,
    user_agent  TEXT,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_tenant_user ON audit_events (tenant_id, user_id, id);
CREATE INDEX audit_tenant_event ON audit_events (tenant_id, event, id);
CREATE INDEX audit_at ON audit_events (at);
