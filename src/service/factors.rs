//! Second factors as a user and an administrator see them: enrolling,
//! confirming, listing, renaming and removing TOTP factors, the recovery
//! codes, an administrator's reset, and the checks the sign-in second step
//! and step-up run ([`Factors::verify`], [`Factors::verify_totp`],
//! [`Factors::use_recovery_code`]).
//!
//! Rules this module keeps:
//!
//! - **A factor counts only once confirmed.** Enrolment stores a *pending*
//!   factor; only a first correct code confirms it, and that code's time
//!   step is spent at once (it cannot sign in afterwards). A user holds at
//!   most one pending TOTP enrolment: starting another discards the old one.
//!   Listings leave pending factors out (they are an enrolment in progress,
//!   not a way to sign in), so a list never shows a factor that cannot be
//!   used.
//! - **Recovery codes** are generated for the *first* confirmed factor,
//!   shown once (in the confirmation's answer) and stored only as keyed
//!   hashes; regenerating replaces all of them and needs a confirmed factor
//!   (409 `no_factor` otherwise: codes without a factor would be worthless).
//! - **Replay.** A TOTP code is accepted only when the store moves the
//!   factor's last accepted step forward in one conditional `UPDATE`
//!   (`FactorStore::advance_totp_step`); a recovery code only when one
//!   conditional `UPDATE` spends it.
//! - **Throttling.** Wrong second factors draw on the *same* per-account
//!   failure budget as wrong passwords (`RateBucket::LoginFail` keyed by the
//!   user id), checked before any verification and counted on failure, so a
//!   second factor adds no fresh guesses.
//! - **Proof for changes.** Adding a factor and regenerating the codes need
//!   the current password (or a reauthentication code) through
//!   [`Address::reauthenticate`]; all of it goes through one function,
//!   [`Factors::require_fresh_proof`], which is where the session's
//!   assurance level (`aal` 2 for a user who has a factor) will be checked.
//! - **Secrets.** A TOTP secret is sealed (`crypto::seal`, the factor id as
//!   associated data) before it is stored, leaves the server only in the
//!   enrolment answer, and is never in a log line, an error or the audit
//!   log. Failures of every check answer the same `invalid_mfa`.
//!
//! Passkeys fit the same shape (`service::passkey_factors` runs their
//! ceremonies): the options call is the "start" ([`Factors::require_fresh_proof`]),
//! and the verified credential is stored confirmed at once by
//! [`Factors::add_passkey`], with the first factor's recovery codes as TOTP
//! confirmation gives them.

use std::sync::Arc;

use uuid::Uuid;

use super::RequestMeta;
use super::accounts;
use super::address::{Address, Reauthentication};
use super::notices::{Notice, Notices};
use crate::cache::RateBucket;
use crate::clock::Clock;
use crate::config::RateLimitConfig;
use crate::crypto::FactorKeys;
use crate::crypto::recovery_codes::{self, RecoveryCode};
use crate::crypto::totp::{self, TotpParams, TotpSecret};
use crate::domain::{Aal, AuditEvent};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::limits::Limits;
use crate::service::rbac::Rbac;
use crate::service::sessions::Principal;
use crate::store::{
    ConfirmFactor, Confirmed, Factor, FactorKind, FactorMaterial, NewFactor, NewFactorMaterial, RecoveryCodeSummary,
    Removal, Store, StoreError, Tenant, User,
};
use crate::telemetry::metrics::{Metrics, MfaMethod};

/// The most factors (confirmed and pending) one user may hold: enough for
/// every device a person owns, and a bound on what one account can store.
pub const MAX_FACTORS: usize = 20;
/// The longest factor name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The name a TOTP factor gets when the user gives none.
pub const DEFAULT_TOTP_NAME: &str = "Authenticator app";

/// A factor's name: at most [`MAX_NAME_CHARS`] characters as sent, no
/// control characters (it is shown in lists and in e-mails), not only white
/// space; stored trimmed. The OpenAPI schema states exactly this rule (a
/// length and a pattern over the name as sent), so the document and the
/// server never disagree about a name.
pub fn parse_name(raw: &str) -> AppResult<String> {
    if raw.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::validation(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(AppError::validation("name", "must not contain control characters"));
    }
    let name = raw.trim();
    if name.is_empty() {
        return Err(AppError::validation("name", "must not be empty"));
    }
    Ok(name.to_owned())
}

/// What a user sees of their second factors: the usable (confirmed) ones,
/// oldest first, and how many unused recovery codes they hold.
#[derive(Clone, Debug)]
pub struct FactorList {
    pub factors: Vec<Factor>,
    /// The recovery codes; `remaining` 0 when there are none (then no
    /// `recovery_codes` item is listed).
    pub recovery_codes: RecoveryCodeSummary,
}

/// A started TOTP enrolment: everything the authenticator app needs. The
/// secret is shown here once and never again.
pub struct TotpEnrolment {
    pub factor: Factor,
    pub secret: TotpSecret,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// A confirmed factor, with the recovery codes when it was the first one
/// (shown once, formatted `xxxxx-xxxxx`).
pub struct Enrolled {
    pub factor: Factor,
    pub recovery_codes: Option<Vec<String>>,
}

impl Enrolled {
    fn new(Confirmed { factor, first }: Confirmed, codes: &[RecoveryCode]) -> Self {
        Self {
            factor,
            recovery_codes: first.then(|| codes.iter().map(RecoveryCode::expose_formatted).collect()),
        }
    }
}

/// A second factor offered at sign-in or step-up.
pub enum MfaProof<'a> {
    Totp(&'a str),
    RecoveryCode(&'a str),
}

/// Second factors over the store, the factor keys, the shared failure
/// budget, the security notices (factor changes, recovery codes used), the
/// reauthentication rules ([`Address`]), the permission checks ([`Rbac`],
/// for administrators) and the MFA metrics.
#[derive(Clone)]
pub struct Factors {
    store: Arc<dyn Store>,
    clock: Clock,
    keys: Arc<FactorKeys>,
    limits: Limits,
    notices: Notices,
    address: Address,
    rbac: Rbac,
    metrics: Arc<Metrics>,
    rate_limit: RateLimitConfig,
    /// The `issuer` of `otpauth://` URIs (`notify.product_name`, "forge" by
    /// default) until tenants have a branding name.
    product: String,
}

impl Factors {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        keys: Arc<FactorKeys>,
        limits: Limits,
        notices: Notices,
        address: Address,
        rbac: Rbac,
        metrics: Arc<Metrics>,
        rate_limit: RateLimitConfig,
        product: String,
    ) -> Self {
        Self {
            store,
            clock,
            keys,
            limits,
            notices,
            address,
            rbac,
            metrics,
            rate_limit,
            product,
        }
    }

    // ---- self-service ----

    /// `GET /v1/users/me/factors`: the caller's confirmed factors and their
    /// recovery-code count.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn list(&self, principal: &Principal) -> AppResult<FactorList> {
        self.list_of(principal.tenant.id, principal.user_id).await
    }

    async fn list_of(&self, tenant_id: Uuid, user_id: Uuid) -> AppResult<FactorList> {
        let factors: Vec<Factor> = self
            .store
            .list_factors(tenant_id, user_id)
            .await?
            .into_iter()
            .filter(Factor::is_confirmed)
            .collect();
        let recovery_codes = self.store.recovery_code_summary(tenant_id, user_id).await?;
        Ok(FactorList {
            factors,
            recovery_codes,
        })
    }

    /// The one check every change of the caller's factors goes through:
    /// adding a factor and regenerating recovery codes need the current
    /// password (or a reauthentication code, `POST /v1/auth/reauthenticate`)
    /// today. When tokens carry an assurance level this is where a user who
    /// already has a factor is asked for `aal` 2 instead (403
    /// `mfa_required`), and where removal (which carries no body) is checked.
    pub async fn require_fresh_proof(
        &self,
        principal: &Principal,
        user: &User,
        proof: Option<&Reauthentication>,
    ) -> AppResult<()> {
        // A user who has a factor changes factors only from a session that
        // used one (aal 2), so a stolen password cannot swap them.
        if !principal.assurance().meets(Aal::Two) && self.has_factor(principal.tenant.id, user.id).await? {
            return Err(AppError::forbidden(
                ErrorCode::MfaRequired,
                "changing second factors needs a second factor: step up at POST /v1/auth/mfa/verify, then retry with the new token",
            ));
        }
        match proof {
            Some(proof) => self.address.reauthenticate(&principal.tenant, user, proof).await,
            // Removal: the bearer alone, until the assurance level is known.
            None => Ok(()),
        }
    }

    /// `POST /v1/users/me/factors/totp`: a pending TOTP factor and what the
    /// authenticator app needs. The caller proves they own the account
    /// first. `Conflict too_many_factors` past [`MAX_FACTORS`].
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn start_totp(
        &self,
        principal: &Principal,
        name: Option<String>,
        proof: &Reauthentication,
    ) -> AppResult<TotpEnrolment> {
        let user = accounts::me(self.store.as_ref(), principal).await?;
        self.require_fresh_proof(principal, &user, Some(proof)).await?;
        self.create_totp(&principal.tenant, &user, name).await
    }

    /// `POST /v1/users/me/factors/totp` with an `enrollment_token` (see
    /// `service::mfa_policy`): the token is the proof (its first factor
    /// succeeded moments ago, and only the enrolment calls accept it), so
    /// no password is asked again.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user_id))]
    pub async fn start_totp_enrolling(
        &self,
        tenant: &Tenant,
        user_id: Uuid,
        name: Option<String>,
    ) -> AppResult<TotpEnrolment> {
        let user = self
            .store
            .get_user(tenant.id, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))?;
        self.create_totp(tenant, &user, name).await
    }

    async fn create_totp(&self, tenant: &Tenant, user: &User, name: Option<String>) -> AppResult<TotpEnrolment> {
        let name = match name {
            Some(n) => parse_name(&n)?,
            None => DEFAULT_TOTP_NAME.to_owned(),
        };
        self.store
            .discard_pending_factors(tenant.id, user.id, FactorKind::Totp)
            .await?;
        self.require_room(tenant.id, user.id).await?;
        let id = Uuid::now_v7();
        let secret = TotpSecret::generate();
        let sealed_secret = self
            .keys
            .seal
            .seal(secret.expose(), id.as_bytes())
            .map_err(AppError::internal)?;
        let factor = self
            .store
            .create_factor(NewFactor {
                id,
                tenant_id: tenant.id,
                user_id: user.id,
                name,
                now: self.clock.now(),
                material: NewFactorMaterial::Totp { sealed_secret },
            })
            .await?;
        let account = user
            .email
            .as_ref()
            .map(|e| e.as_str().to_owned())
            .or_else(|| user.phone.as_ref().map(|p| p.as_str().to_owned()))
            .unwrap_or_else(|| user.id.to_string());
        let otpauth_uri = totp::otpauth_uri(self.issuer(tenant), &account, &secret, &TotpParams::default());
        let qr_svg = totp::qr_svg(&otpauth_uri).map_err(AppError::internal)?;
        Ok(TotpEnrolment {
            factor,
            secret,
            otpauth_uri,
            qr_svg,
        })
    }

    /// The `issuer` authenticator apps show beside the account.
    fn issuer(&self, _tenant: &Tenant) -> &str {
        &self.product
    }

    /// `POST /v1/users/me/factors/totp/{id}/confirm`: the first correct code
    /// makes the pending factor usable. 404 for no such pending factor of
    /// the caller; 400 `invalid_code` for a wrong code (the factor stays
    /// pending; the caller holds the secret, so guessing gains nothing).
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, factor_id = %factor_id))]
    pub async fn confirm_totp(
        &self,
        principal: &Principal,
        factor_id: Uuid,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<Enrolled> {
        self.confirm_totp_of(principal.tenant.id, principal.user_id, factor_id, code, meta)
            .await
    }

    /// [`Self::confirm_totp`] for `user_id` of `tenant_id`, whoever is
    /// asking: the caller has checked the bearer (an access token, or an
    /// `enrollment_token`).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, user_id = %user_id, factor_id = %factor_id))]
    pub async fn confirm_totp_of(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<Enrolled> {
        let not_found = || AppError::not_found("pending factor");
        let stored = self
            .store
            .factor_secret(tenant_id, user_id, factor_id)
            .await?
            .ok_or_else(not_found)?;
        let FactorMaterial::Totp { sealed_secret, .. } = &stored.material else {
            return Err(not_found());
        };
        if stored.factor.is_confirmed() {
            return Err(not_found());
        }
        let secret = self.open(factor_id, sealed_secret)?;
        let Some(step) = totp::verify(secret.expose(), code.trim(), self.clock.now(), &TotpParams::default()) else {
            return Err(AppError::bad_request(
                ErrorCode::InvalidCode,
                "the code is wrong or expired",
            ));
        };
        self.enrolled(tenant_id, user_id, factor_id, Some(step), FactorKind::Totp, meta)
            .await
    }

    /// Confirms a stored factor (`totp_step`: the confirming code's step,
    /// spent with it) and, when it is the user's first, returns the fresh
    /// recovery codes the store kept.
    async fn enrolled(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        totp_step: Option<i64>,
        kind: FactorKind,
        meta: &RequestMeta,
    ) -> AppResult<Enrolled> {
        let (codes, confirm) = self.confirmation(tenant_id, user_id, factor_id, kind, totp_step, meta);
        let confirmed = self
            .store
            .confirm_factor(tenant_id, user_id, factor_id, confirm)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("pending factor"),
                other => other.into(),
            })?;
        self.tell_factor_added(tenant_id, user_id, meta).await?;
        Ok(Enrolled::new(confirmed, &codes))
    }

    /// The notice of a factor the user added.
    async fn tell_factor_added(&self, tenant_id: Uuid, user_id: Uuid, meta: &RequestMeta) -> AppResult<()> {
        match self.store.get_user(tenant_id, user_id).await? {
            Some(user) => self.notices.send(tenant_id, &user, Notice::FactorAdded, meta).await,
            None => Ok(()),
        }
    }

    /// Stores a passkey whose registration the relying party verified, as a
    /// confirmed factor in one step, and (for the user's first factor) the
    /// recovery codes, like [`Self::confirm_totp`]. 409 `too_many_factors`
    /// past [`MAX_FACTORS`]; 409 `conflict` when the credential is
    /// registered in the tenant already (to anyone).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, user_id = %user_id))]
    pub async fn add_passkey(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        name: String,
        credential_id: String,
        credential: serde_json::Value,
        meta: &RequestMeta,
    ) -> AppResult<Enrolled> {
        self.require_room(tenant_id, user_id).await?;
        let id = Uuid::now_v7();
        let now = self.clock.now();
        let (codes, confirm) = self.confirmation(tenant_id, user_id, id, FactorKind::WebAuthn, None, meta);
        let new = NewFactor {
            id,
            tenant_id,
            user_id,
            name,
            now,
            material: NewFactorMaterial::WebAuthn {
                credential_id,
                credential,
            },
        };
        let confirmed = self
            .store
            .add_confirmed_factor(new, confirm)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("user"),
                StoreError::Conflict { .. } => {
                    AppError::conflict(ErrorCode::Conflict, "this passkey is registered already")
                }
                other => other.into(),
            })?;
        self.tell_factor_added(tenant_id, user_id, meta).await?;
        Ok(Enrolled::new(confirmed, &codes))
    }

    /// What confirming a factor stores: fresh recovery codes (kept only
    /// when it is the user's first factor) and the `mfa_enrolled` audit row.
    fn confirmation(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        kind: FactorKind,
        totp_step: Option<i64>,
        meta: &RequestMeta,
    ) -> (Vec<RecoveryCode>, ConfirmFactor) {
        let now = self.clock.now();
        let codes = recovery_codes::generate();
        let hashes = codes.iter().map(|c| self.keys.recovery.hash(c)).collect();
        let mut audit = meta.audit(tenant_id, now, AuditEvent::MfaEnrolled, Some(user_id), Some(user_id));
        audit.detail = serde_json::json!({ "factor_id": factor_id, "type": kind.as_str() });
        let confirm = ConfirmFactor {
            now,
            totp_step,
            recovery_code_hashes: hashes,
            audit,
        };
        (codes, confirm)
    }

    /// 409 `too_many_factors` once the user holds [`MAX_FACTORS`].
    async fn require_room(&self, tenant_id: Uuid, user_id: Uuid) -> AppResult<()> {
        if self.store.list_factors(tenant_id, user_id).await?.len() >= MAX_FACTORS {
            return Err(AppError::conflict(
                ErrorCode::TooManyFactors,
                format!("a user holds at most {MAX_FACTORS} second factors; remove one first"),
            ));
        }
        Ok(())
    }

    /// `PATCH /v1/users/me/factors/{id}`: audited `mfa_renamed`.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, factor_id = %factor_id))]
    pub async fn rename(
        &self,
        principal: &Principal,
        factor_id: Uuid,
        name: &str,
        meta: &RequestMeta,
    ) -> AppResult<Factor> {
        let name = parse_name(name)?;
        let tenant_id = principal.tenant.id;
        let user_id = principal.user_id;
        let mut audit = meta.audit(
            tenant_id,
            self.clock.now(),
            AuditEvent::MfaRenamed,
            Some(user_id),
            Some(user_id),
        );
        audit.detail = serde_json::json!({ "factor_id": factor_id });
        self.store
            .rename_factor(tenant_id, user_id, factor_id, name, audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("factor"),
                other => other.into(),
            })
    }

    /// `DELETE /v1/users/me/factors/{id}`: audited `mfa_removed`. With
    /// `keep_one` (a tenant policy requires a second factor) the last
    /// confirmed factor is refused with 409 `last_factor_required`. Removing
    /// the last factor takes the recovery codes with it.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, factor_id = %factor_id))]
    pub async fn remove(
        &self,
        principal: &Principal,
        factor_id: Uuid,
        keep_one: bool,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let tenant_id = principal.tenant.id;
        let user_id = principal.user_id;
        let user = accounts::me(self.store.as_ref(), principal).await?;
        self.require_fresh_proof(principal, &user, None).await?;
        let mut audit = meta.audit(
            tenant_id,
            self.clock.now(),
            AuditEvent::MfaRemoved,
            Some(user_id),
            Some(user_id),
        );
        audit.detail = serde_json::json!({ "factor_id": factor_id });
        match self
            .store
            .remove_factor(tenant_id, user_id, factor_id, keep_one, audit)
            .await
        {
            Ok(Removal::Removed { .. }) => self.notices.send(tenant_id, &user, Notice::FactorRemoved, meta).await,
            Ok(Removal::RefusedLast) => Err(AppError::conflict(
                ErrorCode::LastFactorRequired,
                "the tenant requires a second factor: add another before removing this one",
            )),
            Err(StoreError::NotFound) => Err(AppError::not_found("factor")),
            Err(other) => Err(other.into()),
        }
    }

    /// `POST /v1/users/me/recovery-codes`: ten new codes replace all the old
    /// ones (audited `recovery_codes_regenerated`). 409 `no_factor` when the
    /// user has no confirmed factor.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        proof: &Reauthentication,
        meta: &RequestMeta,
    ) -> AppResult<Vec<String>> {
        let tenant_id = principal.tenant.id;
        let user = accounts::me(self.store.as_ref(), principal).await?;
        self.require_fresh_proof(principal, &user, Some(proof)).await?;
        let now = self.clock.now();
        let codes = recovery_codes::generate();
        let hashes = codes.iter().map(|c| self.keys.recovery.hash(c)).collect();
        let audit = meta.audit(
            tenant_id,
            now,
            AuditEvent::RecoveryCodesRegenerated,
            Some(user.id),
            Some(user.id),
        );
        if !self
            .store
            .replace_recovery_codes(tenant_id, user.id, hashes, now, audit)
            .await?
        {
            return Err(no_factor());
        }
        Ok(codes.iter().map(RecoveryCode::expose_formatted).collect())
    }

    // ---- administrators ----

    /// `GET /v1/users/{id}/factors`: a user's factors in the caller's
    /// tenant (404 for anyone else's). Never a secret.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %user_id))]
    pub async fn list_for(&self, principal: &Principal, user_id: Uuid) -> AppResult<FactorList> {
        let tenant_id = principal.tenant.id;
        if self.store.get_user(tenant_id, user_id).await?.is_none() {
            return Err(AppError::not_found("user"));
        }
        self.list_of(tenant_id, user_id).await
    }

    /// `DELETE /v1/users/{id}/factors`: removes every factor and recovery
    /// code of a user of the caller's tenant, audited `mfa_reset` with the
    /// administrator as actor, and tells the user. Only for users whose
    /// permissions the administrator holds (a reset is half of an account
    /// takeover), and never for the caller (403 `self`). Returns how many
    /// factors went.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %user_id))]
    pub async fn reset(&self, principal: &Principal, user_id: Uuid, meta: &RequestMeta) -> AppResult<u64> {
        let tenant_id = principal.tenant.id;
        let Some(user) = self.store.get_user(tenant_id, user_id).await? else {
            return Err(AppError::not_found("user"));
        };
        if user_id == principal.user_id {
            // Otherwise the administrator's own factors would go without the
            // fresh proof self-service removal asks for.
            return Err(AppError::forbidden(
                ErrorCode::SelfAction,
                "reset someone else's factors; remove your own with DELETE /v1/users/me/factors/{id}",
            ));
        }
        self.rbac.require_covers_user(principal, user_id).await?;
        let now = self.clock.now();
        let mut audit = meta.audit(
            tenant_id,
            now,
            AuditEvent::MfaReset,
            Some(user_id),
            Some(principal.user_id),
        );
        let before = self.store.list_factors(tenant_id, user_id).await?;
        audit.detail = serde_json::json!({
            "factors": before.iter().filter(|f| f.is_confirmed()).count(),
        });
        let removed = self.store.reset_factors(tenant_id, user_id, audit).await?;
        self.notices.send(tenant_id, &user, Notice::FactorsReset, meta).await?;
        Ok(removed)
    }

    // ---- the sign-in second step and step-up ----

    /// Checks a second factor of `user` for sign-in or step-up and answers
    /// which kind passed, or 401 `invalid_mfa` for any failure (429 once the
    /// account's failure budget, shared with passwords, is spent). The one
    /// entry point a sign-in flow needs; see [`Self::verify_totp`] and
    /// [`Self::use_recovery_code`] for what each kind does.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn verify(
        &self,
        tenant: &Tenant,
        user: &User,
        proof: MfaProof<'_>,
        meta: &RequestMeta,
    ) -> AppResult<MfaMethod> {
        match proof {
            MfaProof::Totp(code) => match self.verify_totp(tenant, user.id, code).await? {
                Some(_) => Ok(MfaMethod::Totp),
                None => Err(AppError::invalid_mfa()),
            },
            MfaProof::RecoveryCode(code) => {
                if self.use_recovery_code(tenant, user, code, meta).await? {
                    Ok(MfaMethod::RecoveryCode)
                } else {
                    Err(AppError::invalid_mfa())
                }
            }
        }
    }

    /// Whether the user has a confirmed factor (a sign-in then needs a
    /// second step).
    pub async fn has_factor(&self, tenant_id: Uuid, user_id: Uuid) -> AppResult<bool> {
        Ok(self
            .store
            .list_factors(tenant_id, user_id)
            .await?
            .iter()
            .any(Factor::is_confirmed))
    }

    /// Tries `code` against each confirmed TOTP factor of the user and
    /// returns the factor it signed in with: accepted only when the store
    /// moves that factor's last step forward, so a code (or any code of an
    /// earlier step) is never accepted twice. `Ok(None)` for a wrong,
    /// replayed or malformed code, or a user without a TOTP factor: one
    /// failure counted against the account's budget (the caller answers
    /// [`AppError::invalid_mfa`]). 429 before any check once the budget is
    /// spent.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user_id))]
    pub async fn verify_totp(&self, tenant: &Tenant, user_id: Uuid, code: &str) -> AppResult<Option<Factor>> {
        let (key, budget) = self.failure_budget(user_id);
        self.limits.check_failures(RateBucket::LoginFail, &key, budget).await?;
        let now = self.clock.now();
        let code = code.trim();
        for factor in self.store.list_factors(tenant.id, user_id).await? {
            if factor.kind != FactorKind::Totp || !factor.is_confirmed() {
                continue;
            }
            let Some(stored) = self.store.factor_secret(tenant.id, user_id, factor.id).await? else {
                continue;
            };
            let FactorMaterial::Totp { sealed_secret, .. } = &stored.material else {
                continue;
            };
            let secret = self.open(factor.id, sealed_secret)?;
            let Some(step) = totp::verify(secret.expose(), code, now, &TotpParams::default()) else {
                continue;
            };
            if self
                .store
                .advance_totp_step(tenant.id, user_id, factor.id, step, now)
                .await?
            {
                self.metrics.mfa(MfaMethod::Totp, true);
                return Ok(Some(Factor {
                    last_used_at: Some(now),
                    ..factor
                }));
            }
        }
        self.metrics.mfa(MfaMethod::Totp, false);
        self.limits.record_failure(RateBucket::LoginFail, &key, budget).await?;
        Ok(None)
    }

    /// Spends one of the user's recovery codes: true when `code` was an
    /// unused one (audited `recovery_code_used`, and the user is told by
    /// email or SMS with the time, the address and how many codes remain).
    /// False for anything else, one failure counted against the account's
    /// budget (the caller answers [`AppError::invalid_mfa`]); 429 before any
    /// check once it is spent.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn use_recovery_code(
        &self,
        tenant: &Tenant,
        user: &User,
        code: &str,
        meta: &RequestMeta,
    ) -> AppResult<bool> {
        let (key, budget) = self.failure_budget(user.id);
        self.limits.check_failures(RateBucket::LoginFail, &key, budget).await?;
        let now = self.clock.now();
        let spent = match RecoveryCode::parse(code) {
            Some(code) => {
                let hash = self.keys.recovery.hash(&code);
                let audit = meta.audit(
                    tenant.id,
                    now,
                    AuditEvent::RecoveryCodeUsed,
                    Some(user.id),
                    Some(user.id),
                );
                self.store
                    .use_recovery_code(tenant.id, user.id, &hash, now, audit)
                    .await?
            }
            None => false,
        };
        self.metrics.mfa(MfaMethod::RecoveryCode, spent);
        if !spent {
            self.limits.record_failure(RateBucket::LoginFail, &key, budget).await?;
            return Ok(false);
        }
        let remaining = self.store.count_unused_recovery_codes(tenant.id, user.id).await?;
        self.notices
            .send(tenant.id, user, Notice::RecoveryCodeUsed { remaining }, meta)
            .await?;
        Ok(true)
    }

    /// 429 once the account's failure budget (shared with passwords) is
    /// spent: checked before any second factor is looked at.
    pub(crate) async fn check_budget(&self, user_id: Uuid) -> AppResult<()> {
        let (key, budget) = self.failure_budget(user_id);
        self.limits.check_failures(RateBucket::LoginFail, &key, budget).await
    }

    /// Counts a wrong second factor on the account's failure budget.
    pub(crate) async fn count_failure(&self, user_id: Uuid) -> AppResult<()> {
        let (key, budget) = self.failure_budget(user_id);
        self.limits.record_failure(RateBucket::LoginFail, &key, budget).await
    }

    /// The per-account failure budget passwords use (see
    /// `accounts::check_password_sign_in`): the same bucket and key, so
    /// wrong passwords and wrong second factors add up.
    fn failure_budget(&self, user_id: Uuid) -> (String, crate::config::Rate) {
        (user_id.to_string(), self.rate_limit.login_failures_per_account)
    }

    fn open(&self, factor_id: Uuid, sealed: &[u8]) -> AppResult<TotpSecret> {
        self.keys
            .seal
            .open(sealed, factor_id.as_bytes())
            .map(TotpSecret::from_bytes)
            .map_err(|e| AppError::internal(anyhow::anyhow!("factor {factor_id}: {e}")))
    }
}

fn no_factor() -> AppError {
    AppError::conflict(
        ErrorCode::NoFactor,
        "recovery codes need a confirmed second factor; add one first",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(parse_name("  Work phone ").unwrap(), "Work phone");
        assert_eq!(parse_name(&"é".repeat(MAX_NAME_CHARS)).unwrap().chars().count(), 64);
        for bad in ["", " \t ", "a\u{0}b", "tab\there", "\u{9f}"] {
            assert!(parse_name(bad).is_err(), "{bad:?}");
        }
        // The limit is on the name as sent, as the OpenAPI schema says.
        assert!(parse_name(&format!(" {}", "x".repeat(MAX_NAME_CHARS))).is_err());
    }
}
