//! Passkeys: the WebAuthn relying party. It checks registration and
//! authentication ceremonies and nothing else: it holds no store and serves
//! no route. The endpoints keep the ceremony state ([`ceremonies`]), the
//! factors store keeps each passkey as a credential id plus the opaque JSON
//! of [`StoredPasskey`], and they call one method per step:
//!
//! - registration: [`Passkeys::start_registration`] then
//!   [`Passkeys::finish_registration`];
//! - a passkey as the second factor of a known user:
//!   [`Passkeys::start_authentication`] with their passkeys, then
//!   [`Passkeys::finish_authentication`];
//! - passwordless sign-in with a discoverable credential:
//!   [`Passkeys::start_discoverable`], then [`Passkeys::identify`] to learn
//!   which credential (and user handle) the browser chose, then
//!   [`Passkeys::finish_discoverable`] with that stored credential.
//!
//! The checks are webauthn-rs's (the relying party Kanidm and vaultwarden
//! run): challenge, origin (one of `webauthn.origins`), relying-party id
//! hash, user presence *and* user verification (a PIN or biometric, so a
//! passkey alone is two factors), signature, and the signature counter: a
//! counter that does not grow on an authenticator that keeps one means a
//! cloned authenticator, and the assertion is refused
//! ([`PasskeyError::PossiblyCloned`]).
//!
//! Options go to the browser as the `publicKey` member of
//! `navigator.credentials.create/get` with binary fields in base64url, the
//! JSON form standard browser libraries (and `PublicKeyCredential.
//! parseCreationOptionsFromJSON`) take; the browser's answer comes back as
//! its `toJSON()` form.
//!
//! Registration asks for a discoverable credential (`residentKey:
//! "preferred"`), so the same passkey works for passwordless sign-in where
//! the authenticator can store it, and security keys without storage still
//! register as a second factor.

pub mod ceremonies;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use webauthn_rs::prelude::{
    AuthenticationResult, Credential, CredentialID, DiscoverableAuthentication, DiscoverableKey, Passkey,
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Webauthn,
    WebauthnBuilder, WebauthnError,
};

use crate::config::WebauthnConfig;

pub use ceremonies::{Ceremonies, Ceremony};

/// How long a ceremony may take: the timeout the browser is given, and the
/// lifetime of its state on the server ([`Ceremonies`]).
pub const CEREMONY_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// Why a ceremony step failed. Nothing here carries a secret; the reason in
/// [`PasskeyError::Rejected`] is webauthn-rs's name for the failed check,
/// for logs and tests, not for the client.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// `webauthn.rp_id` is empty (the public URL's host is an IP address).
    #[error("passkeys are off: webauthn.rp_id is not set")]
    Unavailable,
    /// The browser's answer is not a WebAuthn credential in JSON form (400).
    #[error("not a WebAuthn credential: {0}")]
    Malformed(String),
    /// A check failed: wrong challenge, origin or relying party, no user
    /// verification, bad signature, a state from another ceremony (401 for
    /// sign-in, 400 for registration).
    #[error("the passkey was refused ({0})")]
    Rejected(String),
    /// The signature counter did not grow: the authenticator may have been
    /// cloned. Refused; worth an audit event.
    #[error("the passkey's signature counter went backwards; it may have been cloned")]
    PossiblyCloned,
    /// The assertion names a credential that is not among the ones given.
    #[error("the passkey is not registered to this account")]
    UnknownCredential,
    /// A stored passkey (or ceremony state) does not parse: a server-side
    /// fault (500), never treated as absent.
    #[error("stored passkey data is unreadable: {0}")]
    Corrupt(String),
}

impl From<WebauthnError> for PasskeyError {
    fn from(e: WebauthnError) -> Self {
        match e {
            WebauthnError::CredentialPossibleCompromise => PasskeyError::PossiblyCloned,
            WebauthnError::ParseBase64Failure(_)
            | WebauthnError::ParseCBORFailure(_)
            | WebauthnError::ParseJSONFailure(_)
            | WebauthnError::ParseNOMFailure
            | WebauthnError::ParseInsufficientBytesAvailable => PasskeyError::Malformed(format!("{e:?}")),
            other => PasskeyError::Rejected(format!("{other:?}")),
        }
    }
}

pub type PasskeyResult<T> = Result<T, PasskeyError>;

/// Whose passkey is being registered. `user_handle` is what the
/// authenticator stores and returns on passwordless sign-in; `name` (an
/// email, a phone number) and `display_name` are shown by the browser's
/// passkey picker.
#[derive(Clone, Copy, Debug)]
pub struct PasskeyUser<'a> {
    pub user_handle: Uuid,
    pub name: &'a str,
    pub display_name: &'a str,
}

/// What the browser needs (`options`, the `publicKey` member) and what the
/// server keeps until the answer comes (`state`, for [`Ceremonies`]).
#[derive(Debug)]
pub struct Challenge<S> {
    pub options: Value,
    pub state: S,
}

/// Where the key lives, as far as the authenticator says: RFC 8176 `hwk`
/// for a device-bound credential (the authenticator reports it cannot be
/// backed up or synced), `swk` for one that may be copied (a synced passkey
/// in a password manager or a platform keychain). Without attestation this
/// is the authenticator's claim, not a proof.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyStorage {
    DeviceBound,
    Synced,
}

impl KeyStorage {
    fn from_backup_eligible(backup_eligible: bool) -> Self {
        if backup_eligible {
            KeyStorage::Synced
        } else {
            KeyStorage::DeviceBound
        }
    }

    /// The RFC 8176 `amr` value.
    pub fn amr(self) -> &'static str {
        match self {
            KeyStorage::DeviceBound => "hwk",
            KeyStorage::Synced => "swk",
        }
    }
}

/// A passkey as the factors store keeps it: the public key, the signature
/// counter and flags webauthn-rs needs, and the user handle it was made
/// for. Its JSON ([`StoredPasskey::to_value`]) is versioned (`v`) so a later
/// change of library can migrate it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredPasskey {
    v: u8,
    user_handle: Uuid,
    passkey: Passkey,
}

const STORED_VERSION: u8 = 1;

impl StoredPasskey {
    /// Reads what the factors store keeps; anything else is
    /// [`PasskeyError::Corrupt`].
    pub fn from_value(value: Value) -> PasskeyResult<Self> {
        let stored: StoredPasskey = serde_json::from_value(value).map_err(|e| PasskeyError::Corrupt(e.to_string()))?;
        if stored.v != STORED_VERSION {
            return Err(PasskeyError::Corrupt(format!("unknown version {}", stored.v)));
        }
        Ok(stored)
    }

    /// The JSON the factors store keeps (and gives back to
    /// [`StoredPasskey::from_value`]).
    pub fn to_value(&self) -> PasskeyResult<Value> {
        serde_json::to_value(self).map_err(|e| PasskeyError::Corrupt(e.to_string()))
    }

    /// The credential id, base64url without padding (the browser's `id`).
    pub fn credential_id(&self) -> String {
        encode_id(self.passkey.cred_id())
    }

    /// The user handle the credential was registered with.
    pub fn user_handle(&self) -> Uuid {
        self.user_handle
    }

    /// Where the key lives, as of the last ceremony.
    pub fn key_storage(&self) -> KeyStorage {
        KeyStorage::from_backup_eligible(Credential::from(self.passkey.clone()).backup_eligible)
    }

    /// The signature counter as last seen (0: the authenticator keeps none).
    pub fn counter(&self) -> u32 {
        Credential::from(self.passkey.clone()).counter
    }
}

/// A freshly registered passkey, for the factors store.
#[derive(Clone, Debug)]
pub struct RegisteredPasskey {
    /// base64url without padding; unique across all users (the endpoint must
    /// refuse one that is already registered, to anyone).
    pub credential_id: String,
    pub credential: StoredPasskey,
    /// Whether the user proved themselves to the authenticator (PIN,
    /// biometric). Always true today: registration requires it.
    pub user_verified: bool,
    pub key_storage: KeyStorage,
}

/// The outcome of a successful authentication.
#[derive(Clone, Debug)]
pub struct Verified {
    pub credential_id: String,
    /// The stored passkey with its new counter or backup flags: write it
    /// back when `Some` (most synced passkeys never change).
    pub updated: Option<StoredPasskey>,
    /// Always true today: authentication requires user verification, so the
    /// passkey alone is a multi-factor authentication (aal 2).
    pub user_verified: bool,
    pub key_storage: KeyStorage,
}

/// Which credential a discoverable assertion is made with, and the user
/// handle the authenticator returned; look the credential up by id, then
/// call [`Passkeys::finish_discoverable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identified {
    pub credential_id: String,
    pub user_handle: Uuid,
}

/// The browser's answer to `navigator.credentials.create()`, parsed.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct RegistrationResponse(RegisterPublicKeyCredential);

impl RegistrationResponse {
    pub fn from_json(value: Value) -> PasskeyResult<Self> {
        serde_json::from_value(value).map_err(|e| PasskeyError::Malformed(e.to_string()))
    }
}

/// The browser's answer to `navigator.credentials.get()`, parsed.
#[derive(Clone, Debug, Deserialize)]
#[serde(transparent)]
pub struct AssertionResponse(PublicKeyCredential);

impl AssertionResponse {
    pub fn from_json(value: Value) -> PasskeyResult<Self> {
        serde_json::from_value(value).map_err(|e| PasskeyError::Malformed(e.to_string()))
    }

    /// The credential id the browser names, base64url (unverified until
    /// the ceremony finishes).
    pub fn credential_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.get_credential_id())
    }
}

/// A registration under way.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegistrationState {
    user_handle: Uuid,
    state: PasskeyRegistration,
}

/// A second-factor authentication under way.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthenticationState(PasskeyAuthentication);

/// A passwordless (discoverable) sign-in under way.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DiscoverableState(DiscoverableAuthentication);

impl Ceremony for RegistrationState {
    const KIND: &'static str = "reg";
}

impl Ceremony for AuthenticationState {
    const KIND: &'static str = "auth";
}

impl Ceremony for DiscoverableState {
    const KIND: &'static str = "disc";
}

fn encode_id(id: &CredentialID) -> String {
    URL_SAFE_NO_PAD.encode(id.as_ref())
}

fn options_json(options: &impl Serialize) -> PasskeyResult<Value> {
    let mut value = serde_json::to_value(options).map_err(|e| PasskeyError::Corrupt(e.to_string()))?;
    // webauthn-rs answers `{publicKey, mediation?}`; the API hands out the
    // `publicKey` member and leaves mediation (autofill or a button) to the page.
    if let Some(inner) = value.get_mut("publicKey") {
        return Ok(inner.take());
    }
    Ok(value)
}

/// The relying party, built once from `webauthn.*`.
#[derive(Clone)]
pub struct Passkeys {
    /// `None` when `webauthn.rp_id` is empty: every ceremony then answers
    /// [`PasskeyError::Unavailable`].
    webauthn: Option<std::sync::Arc<Webauthn>>,
}

impl Passkeys {
    /// Builds the relying party. Fails on origins that are not URLs or not
    /// on `rp_id` (the config validation refuses those first).
    pub fn new(config: &WebauthnConfig) -> anyhow::Result<Self> {
        if config.rp_id.is_empty() {
            return Ok(Self { webauthn: None });
        }
        let origins = config
            .origins
            .iter()
            .map(|o| Url::parse(o).map_err(|e| anyhow::anyhow!("webauthn.origins: {o}: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let Some((first, rest)) = origins.split_first() else {
            anyhow::bail!("webauthn.origins: at least one origin is needed");
        };
        let mut builder = WebauthnBuilder::new(&config.rp_id, first)
            .map_err(|e| anyhow::anyhow!("webauthn: {first} is not on {}: {e}", config.rp_id))?
            .timeout(CEREMONY_TTL);
        for origin in rest {
            builder = builder.append_allowed_origin(origin);
        }
        let webauthn = builder.build().map_err(|e| anyhow::anyhow!("webauthn: {e}"))?;
        Ok(Self {
            webauthn: Some(std::sync::Arc::new(webauthn)),
        })
    }

    /// Whether passkeys can be used at all (`webauthn.rp_id` is set).
    pub fn is_enabled(&self) -> bool {
        self.webauthn.is_some()
    }

    fn rp(&self) -> PasskeyResult<&Webauthn> {
        self.webauthn.as_deref().ok_or(PasskeyError::Unavailable)
    }

    /// Starts registering a passkey for `user`. `exclude` lists the user's
    /// registered credential ids (base64url), so the authenticator refuses
    /// to make a second passkey where it already holds one.
    pub fn start_registration(
        &self,
        user: &PasskeyUser<'_>,
        exclude: &[String],
    ) -> PasskeyResult<Challenge<RegistrationState>> {
        let exclude = exclude
            .iter()
            .map(|id| {
                URL_SAFE_NO_PAD
                    .decode(id)
                    .map(CredentialID::from)
                    .map_err(|_| PasskeyError::Corrupt("a stored credential id is not base64url".to_string()))
            })
            .collect::<PasskeyResult<Vec<_>>>()?;
        let (options, state) = self
            .rp()?
            .start_passkey_registration(
                user.user_handle,
                user.name,
                user.display_name,
                (!exclude.is_empty()).then_some(exclude),
            )
            .map_err(|e| match e {
                WebauthnError::InvalidUsername => PasskeyError::Malformed("the user name is not usable".to_string()),
                other => PasskeyError::from(other),
            })?;
        let mut options = options_json(&options)?;
        // Ask for a discoverable credential where the authenticator can
        // keep one (see the module doc); nothing on the server depends on it.
        if let Some(selection) = options.get_mut("authenticatorSelection").and_then(Value::as_object_mut) {
            selection.insert("residentKey".to_string(), Value::from("preferred"));
            selection.insert("requireResidentKey".to_string(), Value::from(false));
        }
        Ok(Challenge {
            options,
            state: RegistrationState {
                user_handle: user.user_handle,
                state,
            },
        })
    }

    /// Checks the browser's answer against the registration's state.
    pub fn finish_registration(
        &self,
        state: &RegistrationState,
        response: &RegistrationResponse,
    ) -> PasskeyResult<RegisteredPasskey> {
        let passkey = self.rp()?.finish_passkey_registration(&response.0, &state.state)?;
        let credential = Credential::from(passkey.clone());
        let stored = StoredPasskey {
            v: STORED_VERSION,
            user_handle: state.user_handle,
            passkey,
        };
        Ok(RegisteredPasskey {
            credential_id: stored.credential_id(),
            credential: stored,
            user_verified: credential.user_verified,
            key_storage: KeyStorage::from_backup_eligible(credential.backup_eligible),
        })
    }

    /// Starts a second-factor authentication with any of `credentials` (the
    /// user's passkeys; at least one).
    pub fn start_authentication(&self, credentials: &[StoredPasskey]) -> PasskeyResult<Challenge<AuthenticationState>> {
        let rp = self.rp()?;
        if credentials.is_empty() {
            return Err(PasskeyError::UnknownCredential);
        }
        let passkeys: Vec<Passkey> = credentials.iter().map(|c| c.passkey.clone()).collect();
        let (options, state) = rp.start_passkey_authentication(&passkeys)?;
        Ok(Challenge {
            options: options_json(&options)?,
            state: AuthenticationState(state),
        })
    }

    /// Checks an assertion against the authentication's state. `credentials`
    /// are the user's stored passkeys (to find the one used and update its
    /// counter); the state alone decides which credentials are acceptable.
    pub fn finish_authentication(
        &self,
        state: &AuthenticationState,
        response: &AssertionResponse,
        credentials: &[StoredPasskey],
    ) -> PasskeyResult<Verified> {
        let result = self.rp()?.finish_passkey_authentication(&response.0, &state.0)?;
        let stored = credentials
            .iter()
            .find(|c| c.passkey.cred_id() == result.cred_id())
            .ok_or(PasskeyError::UnknownCredential)?;
        Ok(verified(stored, &result))
    }

    /// Starts a passwordless sign-in: no user yet, the browser offers the
    /// passkeys it holds for this relying party.
    pub fn start_discoverable(&self) -> PasskeyResult<Challenge<DiscoverableState>> {
        let (options, state) = self.rp()?.start_discoverable_authentication()?;
        Ok(Challenge {
            options: options_json(&options)?,
            state: DiscoverableState(state),
        })
    }

    /// Reads which credential and user handle a discoverable assertion
    /// names, so the caller can load that credential. Nothing is verified
    /// yet: treat both as claims until [`Passkeys::finish_discoverable`].
    pub fn identify(&self, response: &AssertionResponse) -> PasskeyResult<Identified> {
        let (user_handle, credential_id) = self.rp()?.identify_discoverable_authentication(&response.0)?;
        Ok(Identified {
            credential_id: URL_SAFE_NO_PAD.encode(credential_id),
            user_handle,
        })
    }

    /// Checks a discoverable assertion against the sign-in's state and the
    /// credential [`Passkeys::identify`] pointed at, which must also have
    /// been registered with the user handle the authenticator returned.
    pub fn finish_discoverable(
        &self,
        state: DiscoverableState,
        response: &AssertionResponse,
        credential: &StoredPasskey,
    ) -> PasskeyResult<Verified> {
        let rp = self.rp()?;
        let (user_handle, credential_id) = rp.identify_discoverable_authentication(&response.0)?;
        if credential_id != credential.passkey.cred_id().as_ref() {
            return Err(PasskeyError::UnknownCredential);
        }
        if user_handle != credential.user_handle {
            return Err(PasskeyError::Rejected("UserHandleMismatch".to_string()));
        }
        let key = DiscoverableKey::from(&credential.passkey);
        let result = rp.finish_discoverable_authentication(&response.0, state.0, &[key])?;
        Ok(verified(credential, &result))
    }
}

fn verified(stored: &StoredPasskey, result: &AuthenticationResult) -> Verified {
    let mut updated = stored.clone();
    let changed = updated.passkey.update_credential(result).unwrap_or(false);
    Verified {
        credential_id: stored.credential_id(),
        updated: changed.then_some(updated),
        user_verified: result.user_verified(),
        key_storage: KeyStorage::from_backup_eligible(result.backup_eligible()),
    }
}

#[cfg(test)]
mod tests;
