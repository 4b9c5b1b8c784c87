//! Passkeys as factors and as a way to sign in: the use cases around the
//! relying party ([`Passkeys`], which only checks ceremonies), its ceremony
//! state ([`Ceremonies`]) and the factors store.
//!
//! - **Registration** (`/v1/users/me/factors/webauthn/options`, then
//!   `/v1/users/me/factors/webauthn`): the options call is where the caller
//!   proves they own the account, as for TOTP
//!   ([`Factors::require_fresh_proof`]; an `enrollment_token` is proof
//!   enough). The ceremony is bound to the user, so another account's
//!   request id finishes nothing; the verified credential is stored
//!   confirmed at once ([`Factors::add_passkey`]: a first factor brings the
//!   recovery codes). The authenticator is asked not to make a second
//!   passkey where it holds one of the user's already.
//! - **Second factor and step-up**: [`PasskeyFactors::start_assertion`]
//!   names the user's passkeys; [`PasskeyFactors::verify_assertion`] checks
//!   the answer. Failures answer `invalid_mfa` and draw on the account's
//!   failure budget shared with passwords, exactly as a wrong TOTP code.
//! - **Passwordless sign-in** with a discoverable credential: the options
//!   name no user (and so say nothing about who has passkeys), are
//!   rate-limited per client address (each one holds ceremony state for
//!   five minutes), and the answer is checked against the credential the
//!   store holds under the id the browser names, which must also carry the
//!   user handle the authenticator returned. Every failure answers the same
//!   401 `invalid_credentials`.
//!
//! After each use the credential's signature counter (and backup flags) are
//! written back and its last use stamped; a counter that went backwards is
//! a cloned authenticator, refused and audited (`mfa_failed` with reason
//! `possibly_cloned`).
//!
//! Assurance: user verification (a PIN or biometric) is required by every
//! ceremony, so a passkey is two factors by itself. Its methods are `hwk`
//! (device-bound) or `swk` (synced) plus `user`; passwordless sign-in adds
//! `mfa` and opens the session at `aal` 2.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::RequestMeta;
use super::accounts;
use super::address::Reauthentication;
use super::factors::{Enrolled, Factors, parse_name};
use super::limits::{Limits, ip_key};
use super::passkeys::{
    AssertionResponse, AuthenticationState, Ceremonies, Ceremony, DiscoverableState, KeyStorage, PasskeyError,
    PasskeyUser, Passkeys, RegistrationResponse, RegistrationState, StoredPasskey, Verified,
};
use super::sessions::{Principal, SessionStart, Sessions, Tokens};
use crate::cache::RateBucket;
use crate::clock::Clock;
use crate::config::RateLimitConfig;
use crate::domain::{Aal, Amr, Assurance, AuditEvent};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::store::{FactorMaterial, FactorSecret, Store, Tenant, User};
use crate::telemetry::metrics::{Metrics, MfaMethod};

/// The name a passkey gets when the user gives none.
pub const DEFAULT_PASSKEY_NAME: &str = "Passkey";

/// What the browser needs for a ceremony: `public_key` is the `publicKey`
/// member of `navigator.credentials.create/get` (base64url JSON), and
/// `request_id` comes back with the answer.
#[derive(Debug)]
pub struct PasskeyOptions {
    pub request_id: String,
    pub public_key: Value,
}

/// A passkey that proved itself: which factor of which user, and the RFC
/// 8176 methods it adds to a session.
#[derive(Clone, Debug)]
pub struct PasskeyProof {
    pub factor_id: Uuid,
    pub methods: Vec<Amr>,
    /// The authenticator verified the user (PIN, biometric).
    pub user_verified: bool,
}

impl PasskeyProof {
    /// The assurance of a sign-in with this passkey alone: two factors when
    /// the user was verified (`mfa`, aal 2), possession only otherwise.
    pub fn assurance(&self) -> Assurance {
        if self.user_verified {
            Assurance::new(self.methods.iter().copied().chain([Amr::Mfa]), Aal::Two)
        } else {
            Assurance::new(self.methods.iter().copied(), Aal::One)
        }
    }
}

/// A registration in progress: the relying party's state and the name
/// asked for at the options call (the finish call may give another).
#[derive(Serialize, Deserialize)]
struct PendingRegistration {
    name: Option<String>,
    state: RegistrationState,
}

impl Ceremony for PendingRegistration {
    const KIND: &'static str = "passkey-reg";
}

/// Passkeys over the relying party, the ceremony state, the factors (proof
/// rules, storage, failure budget), sessions and the store.
#[derive(Clone)]
pub struct PasskeyFactors {
    store: Arc<dyn Store>,
    clock: Clock,
    passkeys: Passkeys,
    ceremonies: Ceremonies,
    factors: Arc<Factors>,
    sessions: Sessions,
    limits: Limits,
    metrics: Arc<Metrics>,
    rate_limit: RateLimitConfig,
}

impl PasskeyFactors {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        passkeys: Passkeys,
        ceremonies: Ceremonies,
        factors: Arc<Factors>,
        sessions: Sessions,
        limits: Limits,
        metrics: Arc<Metrics>,
        rate_limit: RateLimitConfig,
    ) -> Self {
        Self {
            store,
            clock,
            passkeys,
            ceremonies,
            factors,
            sessions,
            limits,
            metrics,
            rate_limit,
        }
    }

    /// Whether passkeys are on (`webauthn.rp_id` is set).
    pub fn is_enabled(&self) -> bool {
        self.passkeys.is_enabled()
    }

    // ---- registration ----

    /// `POST /v1/users/me/factors/webauthn/options`: creation options for a
    /// new passkey of the caller, after the same proof a TOTP enrolment
    /// asks for.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn start_registration(
        &self,
        principal: &Principal,
        name: Option<String>,
        proof: &Reauthentication,
    ) -> AppResult<PasskeyOptions> {
        let user = accounts::me(self.store.as_ref(), principal).await?;
        self.factors.require_fresh_proof(principal, &user, Some(proof)).await?;
        self.begin_registration(&user, name).await
    }

    /// [`Self::start_registration`] with an `enrollment_token` as the proof
    /// (see `service::mfa_policy`).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user_id))]
    pub async fn start_registration_enrolling(
        &self,
        tenant: &Tenant,
        user_id: Uuid,
        name: Option<String>,
    ) -> AppResult<PasskeyOptions> {
        let user = self
            .store
            .get_user(tenant.id, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))?;
        self.begin_registration(&user, name).await
    }

    async fn begin_registration(&self, user: &User, name: Option<String>) -> AppResult<PasskeyOptions> {
        let name = name.as_deref().map(parse_name).transpose()?;
        let exclude: Vec<String> = self
            .store
            .webauthn_credentials(user.tenant_id, user.id)
            .await?
            .into_iter()
            .filter_map(|f| f.factor.credential_id)
            .collect();
        let account = account_name(user);
        let who = PasskeyUser {
            user_handle: user.id,
            name: &account,
            display_name: &account,
        };
        let challenge = self
            .passkeys
            .start_registration(&who, &exclude)
            .map_err(registration_error)?;
        let pending = PendingRegistration {
            name,
            state: challenge.state,
        };
        let request_id = self.ceremonies.start(Some(user.id), &pending).await?;
        Ok(PasskeyOptions {
            request_id,
            public_key: challenge.options,
        })
    }

    /// `POST /v1/users/me/factors/webauthn`: checks the browser's answer to
    /// the registration `request_id` of this user and stores the passkey.
    /// Also answers the RFC 8176 methods the new passkey proves (its user
    /// was verified at registration), which an enrolment with an
    /// `enrollment_token` steps the sign-in up with. 400 for an unknown,
    /// spent or expired request id or a refused credential; 409 when the
    /// credential is registered already.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, user_id = %user_id))]
    pub async fn finish_registration(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        request_id: &str,
        name: Option<String>,
        credential: Value,
        meta: &RequestMeta,
    ) -> AppResult<(Enrolled, Vec<Amr>)> {
        let name = name.as_deref().map(parse_name).transpose()?;
        let Some(pending) = self
            .ceremonies
            .take::<PendingRegistration>(request_id, Some(user_id))
            .await?
        else {
            // Like a pending TOTP factor that is not there: nothing to finish.
            return Err(AppError::not_found(
                "registration request (unknown, used or expired: start again at \
                 POST /v1/users/me/factors/webauthn/options)",
            ));
        };
        let response = RegistrationResponse::from_json(credential).map_err(registration_error)?;
        let registered = self
            .passkeys
            .finish_registration(&pending.state, &response)
            .map_err(registration_error)?;
        let credential = registered.credential.to_value().map_err(passkey_fault)?;
        let name = name.or(pending.name).unwrap_or_else(|| DEFAULT_PASSKEY_NAME.to_owned());
        let proved = methods(registered.key_storage);
        let enrolled = self
            .factors
            .add_passkey(tenant_id, user_id, name, registered.credential_id, credential, meta)
            .await?;
        Ok((enrolled, proved))
    }

    // ---- second factor and step-up ----

    /// Request options naming the user's passkeys, for the second step of
    /// a sign-in or a step-up. 409 `no_factor` when the user has none.
    /// Each call keeps ceremony state for five minutes, so it spends the
    /// client address's sign-in budget (`rate_limit.login_per_ip`) like
    /// the passwordless options do.
    #[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id, user_id = %user.id))]
    pub async fn start_assertion(&self, user: &User, meta: &RequestMeta) -> AppResult<PasskeyOptions> {
        self.spend_options_budget(meta).await?;
        let stored = self.stored_passkeys(user).await?;
        if stored.is_empty() {
            return Err(AppError::conflict(
                ErrorCode::NoFactor,
                "this account has no passkey; use another factor",
            ));
        }
        let credentials: Vec<StoredPasskey> = stored.iter().map(|(_, p)| p.clone()).collect();
        let challenge = self
            .passkeys
            .start_authentication(&credentials)
            .map_err(assertion_error)?;
        let request_id = self.ceremonies.start(Some(user.id), &challenge.state).await?;
        Ok(PasskeyOptions {
            request_id,
            public_key: challenge.options,
        })
    }

    /// Checks an assertion of `user` against their assertion `request_id`.
    /// 401 `invalid_mfa` for any failure (counted on the account's failure
    /// budget), 400 for an answer that is not a WebAuthn credential, 429 once
    /// the budget is spent.
    #[tracing::instrument(skip_all, fields(tenant_id = %user.tenant_id, user_id = %user.id))]
    pub async fn verify_assertion(
        &self,
        user: &User,
        request_id: &str,
        credential: Value,
        meta: &RequestMeta,
    ) -> AppResult<PasskeyProof> {
        self.factors.check_budget(user.id).await?;
        // The ceremony first: an answer to no live ceremony is refused as
        // such, whatever it holds.
        let checked = match self
            .ceremonies
            .take::<AuthenticationState>(request_id, Some(user.id))
            .await?
        {
            Some(pending) => {
                let response = AssertionResponse::from_json(credential).map_err(assertion_error)?;
                let stored = self.stored_passkeys(user).await?;
                let credentials: Vec<StoredPasskey> = stored.iter().map(|(_, p)| p.clone()).collect();
                self.passkeys
                    .finish_authentication(&pending, &response, &credentials)
                    .map(|verified| (verified, stored))
            }
            None => Err(PasskeyError::Rejected("UnknownRequest".to_owned())),
        };
        match checked {
            Ok((verified, stored)) => {
                let proof = self.used(user, &stored, verified).await?;
                self.metrics.mfa(MfaMethod::WebAuthn, true);
                Ok(proof)
            }
            Err(e) => {
                self.metrics.mfa(MfaMethod::WebAuthn, false);
                self.refused(user, &e, meta).await?;
                self.factors.count_failure(user.id).await?;
                Err(assertion_error(e))
            }
        }
    }

    // ---- passwordless ----

    /// `POST /v1/auth/passkey/options`: options for a discoverable
    /// credential; no user is named. Rate-limited per client address with
    /// the sign-ins (`rate_limit.login_per_ip`).
    #[tracing::instrument(skip_all)]
    pub async fn start_sign_in(&self, meta: &RequestMeta) -> AppResult<PasskeyOptions> {
        self.spend_options_budget(meta).await?;
        let challenge = self.passkeys.start_discoverable().map_err(assertion_error)?;
        let request_id = self.ceremonies.start(None, &challenge.state).await?;
        Ok(PasskeyOptions {
            request_id,
            public_key: challenge.options,
        })
    }

    /// Checks a passwordless sign-in's answer and says whose passkey it
    /// was, without start a session (the admin site opens its own). 401
    /// `invalid_credentials` for every failure; 403 `user_disabled` for a
    /// disabled account whose passkey checked out.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn identify(
        &self,
        tenant: &Tenant,
        request_id: &str,
        credential: Value,
        meta: &RequestMeta,
    ) -> AppResult<(User, PasskeyProof)> {
        let refused = || {
            self.metrics.login("failure");
            AppError::invalid_credentials()
        };
        let Some(pending) = self.ceremonies.take::<DiscoverableState>(request_id, None).await? else {
            return Err(refused());
        };
        let response = AssertionResponse::from_json(credential).map_err(assertion_error)?;
        let claimed = match self.passkeys.identify(&response) {
            Ok(claimed) => claimed,
            Err(e @ (PasskeyError::Rejected(_) | PasskeyError::UnknownCredential)) => {
                tracing::info!(error = %e, "passkey sign-in refused");
                return Err(refused());
            }
            Err(e) => return Err(assertion_error(e)),
        };
        let Some(found) = self
            .store
            .factor_by_credential_id(tenant.id, &claimed.credential_id)
            .await?
        else {
            return Err(refused());
        };
        let Some(user) = self.store.get_user(tenant.id, found.factor.user_id).await? else {
            return Err(refused());
        };
        self.factors.check_budget(user.id).await?;
        let stored = stored_passkey(&found)?;
        match self.passkeys.finish_discoverable(pending, &response, &stored) {
            Ok(verified) => {
                let proof = self.used(&user, &[(found.factor.id, stored)], verified).await?;
                if user.disabled {
                    self.metrics.login("disabled");
                    return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
                }
                Ok((user, proof))
            }
            Err(e) => {
                self.refused(&user, &e, meta).await?;
                self.factors.count_failure(user.id).await?;
                Err(refused())
            }
        }
    }

    /// `POST /v1/auth/passkey/verify`: [`Self::identify`], then a session
    /// at the passkey's assurance (audited `login`, method `passkey`).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn sign_in(
        &self,
        tenant: &Tenant,
        request_id: &str,
        credential: Value,
        meta: &RequestMeta,
    ) -> AppResult<(User, Tokens)> {
        let (user, proof) = self.identify(tenant, request_id, credential, meta).await?;
        let start = SessionStart::new(
            proof.assurance(),
            serde_json::json!({ "method": "passkey", "factor_id": proof.factor_id }),
        );
        let signed_in = self.sessions.start(tenant, user.id, meta, start).await?;
        self.metrics.login("success");
        Ok(signed_in)
    }

    // ---- shared ----

    /// One sign-in's worth of the client address's budget: options calls
    /// hold cache state, so they must not be free.
    async fn spend_options_budget(&self, meta: &RequestMeta) -> AppResult<()> {
        let ip = ip_key(meta.ip.as_deref());
        self.limits
            .spend(RateBucket::LoginIp, &ip, self.rate_limit.login_per_ip)
            .await
    }

    /// The user's passkeys with their factor ids.
    async fn stored_passkeys(&self, user: &User) -> AppResult<Vec<(Uuid, StoredPasskey)>> {
        self.store
            .webauthn_credentials(user.tenant_id, user.id)
            .await?
            .iter()
            .map(|f| Ok((f.factor.id, stored_passkey(f)?)))
            .collect()
    }

    /// After a successful ceremony: writes the passkey back (new counter,
    /// flags) with its last use, and says what it proved.
    async fn used(&self, user: &User, stored: &[(Uuid, StoredPasskey)], verified: Verified) -> AppResult<PasskeyProof> {
        let Some((factor_id, passkey)) = stored.iter().find(|(_, p)| p.credential_id() == verified.credential_id)
        else {
            return Err(AppError::invalid_mfa());
        };
        let current = verified.updated.as_ref().unwrap_or(passkey);
        let value = current.to_value().map_err(passkey_fault)?;
        self.store
            .update_webauthn_credential(user.tenant_id, *factor_id, value, self.clock.now())
            .await?;
        Ok(PasskeyProof {
            factor_id: *factor_id,
            methods: methods(verified.key_storage),
            user_verified: verified.user_verified,
        })
    }

    /// Audits a refused assertion; a possibly cloned authenticator is named.
    async fn refused(&self, user: &User, error: &PasskeyError, meta: &RequestMeta) -> AppResult<()> {
        tracing::info!(user_id = %user.id, error = %error, "passkey refused");
        let mut audit = meta.audit(
            user.tenant_id,
            self.clock.now(),
            AuditEvent::MfaFailed,
            Some(user.id),
            Some(user.id),
        );
        let reason = match error {
            PasskeyError::PossiblyCloned => "possibly_cloned",
            _ => "refused",
        };
        audit.detail = serde_json::json!({ "method": "webauthn", "reason": reason });
        self.store.record_audit(audit).await?;
        Ok(())
    }
}

/// The RFC 8176 methods of a passkey with user verification: where the key
/// lives, and the user's presence.
fn methods(storage: KeyStorage) -> Vec<Amr> {
    let key = match storage {
        KeyStorage::DeviceBound => Amr::Hwk,
        KeyStorage::Synced => Amr::Swk,
    };
    vec![key, Amr::User]
}

fn stored_passkey(factor: &FactorSecret) -> AppResult<StoredPasskey> {
    match &factor.material {
        FactorMaterial::WebAuthn { credential } => StoredPasskey::from_value(credential.clone()).map_err(passkey_fault),
        FactorMaterial::Totp { .. } => Err(AppError::internal(anyhow::anyhow!(
            "factor {} is not a passkey",
            factor.factor.id
        ))),
    }
}

/// The name the browser's passkey picker shows: the email, else the phone
/// number, else the user id.
fn account_name(user: &User) -> String {
    user.email
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .or_else(|| user.phone.as_ref().map(|p| p.as_str().to_owned()))
        .unwrap_or_else(|| user.id.to_string())
}

fn unavailable() -> AppError {
    AppError::not_found("passkeys (webauthn.rp_id is not set)")
}

fn passkey_fault(e: PasskeyError) -> AppError {
    AppError::internal(anyhow::anyhow!("{e}"))
}

/// Registration failures: the caller's own (400), or the server's.
fn registration_error(e: PasskeyError) -> AppError {
    match e {
        PasskeyError::Unavailable => unavailable(),
        PasskeyError::Corrupt(_) => passkey_fault(e),
        PasskeyError::Malformed(_) => AppError::validation("credential", "is not a WebAuthn credential"),
        PasskeyError::Rejected(_) | PasskeyError::PossiblyCloned | PasskeyError::UnknownCredential => {
            AppError::validation("credential", "the passkey was refused")
        }
    }
}

/// Assertion failures: a malformed answer is 400; every refusal the same
/// `invalid_mfa` (the passwordless path maps it to `invalid_credentials`).
fn assertion_error(e: PasskeyError) -> AppError {
    match e {
        PasskeyError::Unavailable => unavailable(),
        PasskeyError::Corrupt(_) => passkey_fault(e),
        PasskeyError::Malformed(_) => AppError::validation("credential", "is not a WebAuthn credential"),
        PasskeyError::Rejected(_) | PasskeyError::PossiblyCloned | PasskeyError::UnknownCredential => {
            AppError::invalid_mfa()
        }
    }
}
