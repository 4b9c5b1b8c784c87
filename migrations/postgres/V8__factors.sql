-- forge schema, version 8: second factors (TOTP, passkeys) and recovery codes
-- (PostgreSQL twin of migrations/sqlite/V8__factors.sql).
--
-- factors: one row per enrolled (or enrolling) second factor of a user.
--   confirmed_at NULL = a pending enrolment (a TOTP secret handed out whose
--   first code has not been shown yet): never usable for sign-in.
--   kind 'totp': totp_secret is the secret sealed by crypto::seal (XChaCha20-
--   Poly1305, the factor id as associated data, so a sealed secret copied to
--   another row does not open); totp_last_step is the newest time step ever
--   accepted: a code of that step or an earlier one is refused (replay
--   protection, decided by one conditional UPDATE).
--   kind 'webauthn': credential_id is the credential's id, base64url without
--   padding (unique per tenant: one authenticator credential is one factor);
--   credential is the relying-party crate's serialised credential (JSON,
--   opaque to the store), rewritten after each use for its sign counter.
--   The WebAuthn user handle is the user's id (its 16 UUID bytes), so
--   discoverable sign-in needs no column of its own.
CREATE TABLE factors (
    id             TEXT COLLATE "C" PRIMARY KEY,
    tenant_id      TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    user_id        TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind           TEXT NOT NULL CHECK (kind IN ('totp', 'webauthn')),
    name           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    confirmed_at   BIGINT,
    last_used_at   BIGINT,
    totp_secret    BYTEA,
    totp_last_step BIGINT,
    credential_id  TEXT COLLATE "C",
    credential     TEXT,
    CHECK ((kind = 'totp' AND totp_secret IS NOT NULL AND credential_id IS NULL AND credential IS NULL)
        OR (kind = 'webauthn' AND totp_secret IS NULL AND credential_id IS NOT NULL AND credential IS NOT NULL))
);
CREATE INDEX factors_user ON factors (tenant_id, user_id, created_at);
CREATE UNIQUE INDEX factors_credential ON factors (tenant_id, credential_id) WHERE credential_id IS NOT NULL;

-- recovery_codes: a user's single-use recovery codes, as keyed hashes
-- (HMAC-SHA256 under a server key; see crypto::recovery_codes). All of a
-- user's codes are replaced together, in one transaction.
CREATE TABLE recovery_codes (
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tenant_id  TEXT COLLATE "C" NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    code_hash  TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);

-- users.mfa_due_since: when a tenant's "second factor required" policy first
-- applied to the user (stamped once, by the first sign-in that finds the
-- policy applies and no factor); the grace period runs from it. NULL = never
-- due. A column rather than a table: one value per user, read with the user.
ALTER TABLE users ADD COLUMN mfa_due_since BIGINT;
