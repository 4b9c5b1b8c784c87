//! Email verification and password recovery.
//!
//! Requests that name an address (`{email}` without a bearer) answer the same
//! whether or not an account exists, and are budgeted per address
//! (`rate_limit.recovery_per_identifier`) and per IP. A reset revokes every
//! session of the user; a change revokes every session but the caller's.

use std::time::Duration;

use super::codes::{Check, Purpose};
use super::limits::ip_key;
use super::{RequestMeta, accounts, proof, sessions};
use crate::cache::RateBucket;
use crate::crypto::password::Verification;
use crate::domain::{AuditEvent, Email, Identifier};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::notify::{MessageKind, Recipient};
use crate::secret::Secret;
use crate::state::AppState;
use crate::store::{EndSessions, IdentifierKind, SignIn, Tenant, User, UserPatch};

/// Verification and reset codes travel by email and may sit unread for a
/// while, so they live longer than a sign-in code.
pub const RECOVERY_CODE_TTL: Duration = Duration::from_secs(15 * 60);

fn invalid_code() -> AppError {
    AppError::bad_request(ErrorCode::InvalidCode, "the code is wrong or expired")
}

fn burned(state: &AppState) -> AppError {
    AppError::RateLimited {
        retry_after_secs: state.config.otp.attempt_window.as_secs(),
    }
}

async fn budget(state: &AppState, tenant: &Tenant, email: &Email, meta: &RequestMeta) -> AppResult<()> {
    let rl = &state.config.rate_limit;
    state
        .limits
        .spend(RateBucket::OtpSendIp, &ip_key(meta.ip.as_deref()), rl.otp_send_per_ip)
        .await?;
    // The cooldown before the address's budget: see `otp::request`.
    state.otp.cooldown(tenant, email.as_str()).await?;
    state
        .limits
        .spend(
            RateBucket::Recovery,
            &format!("{}:{email}", tenant.id),
            rl.recovery_per_identifier,
        )
        .await
}

async fn find_by_email(state: &AppState, tenant: &Tenant, email: &Email) -> AppResult<Option<User>> {
    Ok(state
        .store
        .find_for_login(tenant.id, &Identifier::Email(email.clone()))
        .await?
        .map(|(u, _)| u))
}

async fn send(state: &AppState, tenant: &Tenant, email: &Email, purpose: Purpose, kind: MessageKind) -> AppResult<()> {
    let code = state
        .codes
        .issue(purpose, tenant.id, email.as_str(), RECOVERY_CODE_TTL)
        .await?;
    state
        .notifier
        .send(tenant.id, Recipient::from(email), kind, &code, RECOVERY_CODE_TTL)
        .await?;
    Ok(())
}

/// Sends a verification code to an unverified user's email. Used after
/// sign-up and by `POST /v1/auth/email/verify/request`.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
pub async fn send_verification(state: &AppState, tenant: &Tenant, user: &User) -> AppResult<()> {
    match &user.email {
        Some(email) if !user.email_verified && !user.disabled => {
            send(
                state,
                tenant,
                email,
                Purpose::EmailVerification,
                MessageKind::EmailVerification,
            )
            .await
        }
        _ => Ok(()),
    }
}

/// `POST /v1/auth/email/verify/request` with `{email}` and no bearer.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
pub async fn request_verification(
    state: &AppState,
    tenant: &Tenant,
    email: &Email,
    meta: &RequestMeta,
) -> AppResult<()> {
    budget(state, tenant, email, meta).await?;
    if let Some(user) = find_by_email(state, tenant, email).await? {
        send_verification(state, tenant, &user).await?;
    }
    Ok(())
}

/// `POST /v1/auth/email/verify/request` with a bearer.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
pub async fn request_own_verification(
    state: &AppState,
    principal: &sessions::Principal,
    meta: &RequestMeta,
) -> AppResult<()> {
    let user = accounts::me(state.store.as_ref(), principal).await?;
    if let Some(email) = &user.email {
        budget(state, &principal.tenant, email, meta).await?;
        send_verification(state, &principal.tenant, &user).await?;
    }
    Ok(())
}

async fn consume(state: &AppState, tenant: &Tenant, email: &Email, purpose: Purpose, code: &str) -> AppResult<()> {
    match state.codes.consume(purpose, tenant.id, email.as_str(), code).await? {
        Check::Valid => Ok(()),
        Check::Invalid => Err(invalid_code()),
        Check::Burned => Err(burned(state)),
    }
}

/// `POST /v1/auth/email/verify` with a bearer: marks the caller's email verified.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
pub async fn confirm_own(
    state: &AppState,
    principal: &sessions::Principal,
    code: &str,
    meta: &RequestMeta,
) -> AppResult<User> {
    let user = accounts::me(state.store.as_ref(), principal).await?;
    let email = user.email.clone().ok_or_else(invalid_code)?;
    consume(state, &principal.tenant, &email, Purpose::EmailVerification, code).await?;
    // The prover is signed in to this account and received the code: they
    // own the address, and (having a session) set or know the password.
    let keep = proof::Keep {
        password: true,
        session: Some(principal.session_id),
    };
    state
        .proof
        .prove(&principal.tenant, &user, IdentifierKind::Email, keep, meta)
        .await
}

/// `POST /v1/auth/email/verify` with `{email, code}`: verifies and signs in
/// (the way in when sign-up requires a verified email).
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
pub async fn confirm_and_sign_in(
    state: &AppState,
    tenant: &Tenant,
    email: &Email,
    code: &str,
    password: Option<&Secret>,
    meta: &RequestMeta,
) -> AppResult<(User, sessions::Tokens)> {
    consume(state, tenant, email, Purpose::EmailVerification, code).await?;
    let user = find_by_email(state, tenant, email).await?.ok_or_else(invalid_code)?;
    if user.disabled {
        return Err(AppError::forbidden(ErrorCode::UserDisabled, "this account is disabled"));
    }
    // Whoever reads the mailbox proves the address, not that they chose
    // the password it was signed up with: that password survives the first
    // proof only if the prover shows it here.
    // Only a first proof can drop the password: spend an argon2 check on
    // the shown password only then.
    let shows_password = match password {
        Some(password) if proof::unowned(&user) => {
            let stored = state.store.password_hash(tenant.id, user.id).await?;
            stored.is_some()
                && matches!(
                    state
                        .passwords
                        .verify(password, stored.as_deref())
                        .await
                        .map_err(AppError::internal)?,
                    Verification::Match { .. }
                )
        }
        _ => false,
    };
    let keep = proof::Keep {
        password: shows_password,
        session: None,
    };
    let user = state
        .proof
        .prove(tenant, &user, IdentifierKind::Email, keep, meta)
        .await?;
    let (session, refresh) = state.sessions.new_session(meta);
    let mut audit = meta.audit(
        tenant.id,
        state.clock.now(),
        AuditEvent::Login,
        Some(user.id),
        Some(user.id),
    );
    audit.detail = serde_json::json!({ "method": "email_code", "session_id": session.id });
    let sign_in = SignIn {
        session: session.clone(),
        rehash: None,
        verified: Some(IdentifierKind::Email),
    };
    let user = state.store.sign_in(tenant.id, user.id, sign_in, audit).await?;
    let tokens = state.sessions.tokens_for(&user, session.id, tenant, refresh)?;
    Ok((user, tokens))
}

/// `POST /v1/auth/password/forgot`.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
pub async fn forgot(state: &AppState, tenant: &Tenant, email: &Email, meta: &RequestMeta) -> AppResult<()> {
    budget(state, tenant, email, meta).await?;
    if let Some(user) = find_by_email(state, tenant, email).await?
        && !user.disabled
    {
        send(state, tenant, email, Purpose::PasswordReset, MessageKind::PasswordReset).await?;
    }
    Ok(())
}

/// Stores a new password hash and signs the user out everywhere (all
/// sessions, or all but `keep`); the admin site's sessions end as well,
/// since the patch moves the credential epoch on with the new password.
async fn set_password(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    password: &Secret,
    keep: Option<uuid::Uuid>,
    event: AuditEvent,
    meta: &RequestMeta,
) -> AppResult<()> {
    let hash = state.passwords.hash(password).await.map_err(AppError::internal)?;
    let now = state.clock.now();
    let patch = UserPatch {
        password_hash: Some(Some(hash)),
        end_sessions: EndSessions::Epoch,
        now,
        ..Default::default()
    };
    let audit = meta.audit(tenant.id, now, event, Some(user.id), Some(user.id));
    state.store.update_user(tenant.id, user.id, patch, audit).await?;
    state
        .sessions
        .sign_out_everywhere(tenant.id, user.id, keep, None)
        .await?;
    Ok(())
}

/// `POST /v1/auth/password/reset`: the weak-password check comes first so a
/// rejected password does not use up the code.
#[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
pub async fn reset(
    state: &AppState,
    tenant: &Tenant,
    email: &Email,
    code: &str,
    new_password: &Secret,
    meta: &RequestMeta,
) -> AppResult<()> {
    accounts::check_password(&state.policy, new_password, vec![email.to_string()]).await?;
    consume(state, tenant, email, Purpose::PasswordReset, code).await?;
    let user = find_by_email(state, tenant, email).await?.ok_or_else(invalid_code)?;
    // A reset code arrived by email: the address is proven, and the new
    // password is the prover's own.
    let keep = proof::Keep {
        password: true,
        session: None,
    };
    let user = state
        .proof
        .prove(tenant, &user, IdentifierKind::Email, keep, meta)
        .await?;
    set_password(
        state,
        tenant,
        &user,
        new_password,
        None,
        AuditEvent::PasswordReset,
        meta,
    )
    .await
}

/// `POST /v1/auth/password/change`: proves the current password, then
/// revokes every other session.
#[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
pub async fn change(
    state: &AppState,
    principal: &sessions::Principal,
    current: &Secret,
    new_password: &Secret,
    meta: &RequestMeta,
) -> AppResult<()> {
    let tenant = &principal.tenant;
    let user = accounts::me(state.store.as_ref(), principal).await?;
    let stored = state.store.password_hash(tenant.id, user.id).await?;
    if state
        .passwords
        .verify(current, stored.as_deref())
        .await
        .map_err(AppError::internal)?
        == Verification::Mismatch
    {
        return Err(AppError::invalid_credentials());
    }
    let hints = user.email.iter().map(|e| e.to_string()).collect();
    accounts::check_password(&state.policy, new_password, hints).await?;
    set_password(
        state,
        tenant,
        &user,
        new_password,
        Some(principal.session_id),
        AuditEvent::PasswordChanged,
        meta,
    )
    .await
}
