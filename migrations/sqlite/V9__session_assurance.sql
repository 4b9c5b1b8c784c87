-- forge schema, version 9: a session remembers how strongly its holder
-- proved who they are, so every access token of the session (the refresh
-- grant's too) states it.
--
-- `amr`: the RFC 8176 method names, comma-separated in a fixed order
-- ('pwd', 'otp,sms', 'mfa,otp,pwd'); `aal`: 1, or 2 after a second factor.
-- Sessions opened before this version read as aal 1 with no methods, as
-- their access tokens (which carry neither claim) do.
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT '';
ALTER TABLE sessions ADD COLUMN aal INTEGER NOT NULL DEFAULT 1 CHECK (aal IN (1, 2));
