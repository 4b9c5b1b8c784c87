//! Plain records that cross the store port, in domain types.

use uuid::Uuid;

use crate::domain::{Assurance, AuditEvent, Email, Phone, RoleName, TenantSlug, Timestamp};

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: Uuid,
    pub slug: TenantSlug,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: Option<Email>,
    pub email_verified: bool,
    pub phone: Option<Phone>,
    pub phone_verified: bool,
    pub disabled: bool,
    pub metadata: serde_json::Value,
    pub roles: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_sign_in_at: Option<Timestamp>,
    /// Bumped by every event that ends all of the user's sessions (password
    /// set or reset, sign-out everywhere, disable), in that event's
    /// transaction. Sessions kept outside the `sessions` table (the admin
    /// site's) record it when they open and end when it moves.
    pub credential_epoch: i64,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub email: Option<Email>,
    pub email_verified: bool,
    pub phone: Option<Phone>,
    pub phone_verified: bool,
    pub password_hash: Option<String>,
    pub metadata: serde_json::Value,
    pub roles: Vec<RoleName>,
    pub now: Timestamp,
}

/// A change to a user; `None` leaves a field alone. Which sessions the
/// change ends is the caller's decision, said in `end_sessions`.
#[derive(Clone, Debug, Default)]
pub struct UserPatch {
    pub email: Option<Option<Email>>,
    pub email_verified: Option<bool>,
    pub phone: Option<Option<Phone>>,
    pub phone_verified: Option<bool>,
    pub disabled: Option<bool>,
    pub metadata: Option<serde_json::Value>,
    /// `Some(None)` removes the password (the account then signs in only
    /// with codes until a new one is set).
    pub password_hash: Option<Option<String>>,
    pub end_sessions: EndSessions,
    pub now: Timestamp,
}

/// Which of the user's sessions a change ends, in the change's transaction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EndSessions {
    /// Every session stays (a profile change).
    #[default]
    None,
    /// Moves [`User::credential_epoch`] on, ending the sessions that record
    /// it (the admin site's); the API sessions are left to the caller, which
    /// may keep the current one (a new or removed password).
    Epoch,
    /// Revokes every live session as well as moving the epoch on (a
    /// disabled user keeps none).
    All,
}

#[derive(Clone, Debug)]
pub struct Session {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// How the session's holder signed in, and what it was raised to since;
    /// every access token of the session states it.
    pub assurance: Assurance,
    /// The OAuth client the session was opened for; None for forge's own
    /// API sign-ins. Deleting the client (or rotating its secret) revokes it.
    pub client_id: Option<String>,
    /// The hosted sign-in (SSO) session it came from: the `sid` of its ID tokens.
    pub sso_id: Option<Uuid>,
    /// The scopes granted to the client, space-separated (None without a
    /// client): every access token of the session states them.
    pub scope: Option<String>,
}

/// A session to open, with its first refresh token (hashed).
#[derive(Clone, Debug)]
pub struct NewSession {
    pub id: Uuid,
    pub refresh_hash: String,
    pub now: Timestamp,
    pub expires_at: Timestamp,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// What the first factor proved (see [`Session::assurance`]).
    pub assurance: Assurance,
    /// See [`Session::client_id`].
    pub client_id: Option<String>,
    /// See [`Session::sso_id`].
    pub sso_id: Option<Uuid>,
    /// The scopes granted to the client, space-separated (None without a
    /// client): every access token of the session states them.
    pub scope: Option<String>,
}

/// What a successful sign-in records besides the new session.
#[derive(Clone, Debug)]
pub struct SignIn {
    pub session: NewSession,
    /// A new hash when the stored one used outdated argon2 parameters.
    pub rehash: Option<String>,
    /// The identifier the user just proved they own with a code.
    pub verified: Option<IdentifierKind>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentifierKind {
    Email,
    Phone,
}

/// A refresh to claim: the presented token and the successor to store. The
/// limits (grace window, sliding and absolute lifetime) are the caller's
/// [`RefreshRule`](super::RefreshRule), not the store's.
#[derive(Clone, Debug)]
pub struct RotateRefresh {
    pub tenant_id: Uuid,
    /// The OAuth client presenting the token (`None`: forge's own API). A
    /// token of another client's session (or of an own-API session, for a
    /// client) is [`Unknown`](super::RefreshClaim::Unknown): the claim
    /// neither rotates nor revokes it.
    pub client_id: Option<String>,
    pub old_hash: String,
    pub new_hash: String,
    pub now: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyState {
    Next,
    Current,
    Retired,
}

impl KeyState {
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(KeyState::Next),
            "current" => Some(KeyState::Current),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub algorithm: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub state: KeyState,
    pub created_at: Timestamp,
    pub activated_at: Option<Timestamp>,
    pub retired_at: Option<Timestamp>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// An audit row to append. `detail` must never hold a secret: callers put
/// only ids, names and outcomes there.
#[derive(Clone, Debug)]
pub struct NewAuditEvent {
    pub tenant_id: Uuid,
    pub at: Timestamp,
    pub event: AuditEvent,
    pub user_id: Option<Uuid>,
    pub actor_id: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: serde_json::Value,
}

/// A user's current roles and the union of their permissions.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}
