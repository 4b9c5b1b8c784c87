//! What can go wrong talking to an upstream provider, in words safe to log
//! and show: every message is a constant chosen by forge, never a token, a
//! code, a secret or a provider's response body.

use std::fmt;

/// Where in the exchange a failure happened: the `stage` label of
/// `forge_upstream_failures_total` (a closed set).
pub mod stage {
    pub const CONFIG: &str = "config";
    pub const DISCOVERY: &str = "discovery";
    pub const JWKS: &str = "jwks";
    pub const TOKEN: &str = "token";
    pub const ID_TOKEN: &str = "id_token";
    pub const USERINFO: &str = "userinfo";
    pub const EMAILS: &str = "emails";
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamError {
    /// The provider could not be reached or answered something unusable
    /// (network error, timeout, 5xx, a body that is not the JSON expected,
    /// too large): usually temporary, worth retrying later.
    Unavailable { stage: &'static str, reason: &'static str },
    /// The provider refused the authorization code (`invalid_grant`, a
    /// replayed or expired code, a PKCE mismatch): the person must start
    /// again.
    Denied { stage: &'static str, reason: &'static str },
    /// The ID token does not prove who the person is.
    InvalidIdToken(&'static str),
    /// The provider answered well-formed JSON that breaks the protocol (no
    /// subject, a userinfo `sub` that is not the ID token's).
    BadResponse { stage: &'static str, reason: &'static str },
    /// forge's registration of the provider is wrong or incomplete (no
    /// endpoint, an unusable Apple key, client credentials the provider
    /// refuses): an administrator must fix it.
    Misconfigured(&'static str),
}

impl UpstreamError {
    /// The stage label for metrics and logs.
    pub fn stage(&self) -> &'static str {
        match self {
            UpstreamError::Unavailable { stage, .. }
            | UpstreamError::Denied { stage, .. }
            | UpstreamError::BadResponse { stage, .. } => stage,
            UpstreamError::InvalidIdToken(_) => stage::ID_TOKEN,
            UpstreamError::Misconfigured(_) => stage::CONFIG,
        }
    }

    /// The constant reason.
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Unavailable { reason, .. }
            | UpstreamError::Denied { reason, .. }
            | UpstreamError::BadResponse { reason, .. }
            | UpstreamError::InvalidIdToken(reason)
            | UpstreamError::Misconfigured(reason) => reason,
        }
    }

    pub(crate) fn unavailable(stage: &'static str, reason: &'static str) -> Self {
        UpstreamError::Unavailable { stage, reason }
    }

    pub(crate) fn bad(stage: &'static str, reason: &'static str) -> Self {
        UpstreamError::BadResponse { stage, reason }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Unavailable { stage, reason } => {
                write!(f, "the provider is unavailable ({stage}: {reason})")
            }
            UpstreamError::Denied { stage, reason } => write!(f, "the provider refused ({stage}: {reason})"),
            UpstreamError::InvalidIdToken(reason) => write!(f, "invalid ID token: {reason}"),
            UpstreamError::BadResponse { stage, reason } => {
                write!(f, "the provider answered incorrectly ({stage}: {reason})")
            }
            UpstreamError::Misconfigured(reason) => write!(f, "the provider is misconfigured: {reason}"),
        }
    }
}

impl std::error::Error for UpstreamError {}
