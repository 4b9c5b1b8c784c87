//! The tenant's second-factor policy, applied: what a sign-in whose first
//! factor succeeded must do ([`MfaPolicies::decide`]), whether a user may
//! remove their last factor ([`MfaPolicies::keep_one`]), whether the policy
//! requires a factor of someone at all ([`MfaPolicies::applies`], for the
//! admin site), and the enrolment token a sign-in past the grace hands out
//! instead of tokens ([`MfaPolicies::enrollment_token`]).
//!
//! The rule itself is `domain::mfa_policy::decide`, a pure function; this
//! module only reads its inputs: the policy (from the store on every call,
//! no cache, so a tightened policy holds at once on every instance), the
//! user's roles as stored (not as an older access token states them) and
//! `mfa_due_since`, which the store stamps once, the first time a sign-in
//! finds the policy applying to a user without a factor. A user holding a
//! factor is never stamped: their grace has nothing to run for.

use std::sync::Arc;

use uuid::Uuid;

use super::RequestMeta;
use super::challenges::{ChallengeKind, Challenges};
use super::sessions::{SessionStart, Sessions, Tokens};
use crate::clock::Clock;
use crate::domain::mfa_policy::{MfaDecision, MfaPolicy, decide};
use crate::domain::{Amr, Assurance};
use crate::error::{AppError, AppResult};
use crate::secret::Secret;
use crate::store::{Store, Tenant, User};

/// What the sign-in gate does about the policy once the first factor
/// succeeded.
#[derive(Debug)]
pub enum PolicyGate {
    /// Nothing: the second step if the user has a factor, else tokens.
    AsUsual,
    /// Tokens, with `"mfa_enrollment_due": true` in the token response (the
    /// grace runs until `until`).
    EnrollmentDue { until: crate::domain::Timestamp },
    /// No session, no tokens: 200 `{"mfa_enrollment_required": true,
    /// "enrollment_token": ...}` (the OAuth2 token endpoint: 403 with the
    /// same fields, as for `mfa_required`).
    EnrollmentRequired { enrollment_token: Secret },
}

/// The policy over the store (settings, roles, `mfa_due_since`), the clock
/// and the challenges (the enrolment token).
#[derive(Clone)]
pub struct MfaPolicies {
    store: Arc<dyn Store>,
    clock: Clock,
    challenges: Challenges,
    sessions: Sessions,
}

impl MfaPolicies {
    pub fn new(store: Arc<dyn Store>, clock: Clock, challenges: Challenges, sessions: Sessions) -> Self {
        Self {
            store,
            clock,
            challenges,
            sessions,
        }
    }

    /// Ends an enrolment made with an `enrollment_token` whose first factor
    /// was just confirmed with `methods` (`[otp]` for TOTP): spends the token
    /// (exactly once; 401 `invalid_token` when it was spent, expired or is
    /// unknown) and opens the session the sign-in could not, at the first
    /// factor's assurance stepped up (`aal` 2, `mfa` in `amr`), audited as a
    /// `login` with method `mfa_enrollment`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn finish_enrollment(
        &self,
        tenant: &Tenant,
        token: &str,
        methods: &[Amr],
        meta: &RequestMeta,
    ) -> AppResult<(User, Tokens)> {
        let challenge = self
            .challenges
            .consume(ChallengeKind::Enrollment, tenant.id, token)
            .await?
            .ok_or_else(AppError::invalid_token)?;
        let start = SessionStart::new(
            challenge.first_factor.stepped_up(methods.iter().copied()),
            serde_json::json!({ "method": "mfa_enrollment" }),
        );
        self.sessions
            .start(tenant, challenge.user_id, &challenge.meta(meta), start)
            .await
    }

    async fn policy(&self, tenant_id: Uuid) -> AppResult<MfaPolicy> {
        let settings = self
            .store
            .tenant_settings(tenant_id)
            .await?
            .ok_or_else(|| AppError::not_found("tenant"))?;
        Ok(settings.mfa_policy())
    }

    /// What the policy asks of a sign-in of `user` (whose first factor just
    /// succeeded); `has_factor`: the user holds a confirmed factor. Stamps
    /// `mfa_due_since` the first time the policy applies to the user without
    /// a factor.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn decide(&self, tenant: &Tenant, user: &User, has_factor: bool) -> AppResult<MfaDecision> {
        let policy = self.policy(tenant.id).await?;
        let now = self.clock.now();
        if !policy.applies_to(&user.roles) || has_factor {
            return Ok(decide(&policy, &user.roles, has_factor, None, now));
        }
        let due_since = self.store.mfa_due_since(tenant.id, user.id, now).await?;
        Ok(decide(&policy, &user.roles, false, due_since, now))
    }

    /// What the policy asks of an account created now (no roles yet, no
    /// factor), decided as its first sign-in would be, before there is a
    /// row to stamp: [`MfaDecision::Required`] when the policy applies to
    /// everyone with no grace, so the sign-up must not open a session.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id))]
    pub async fn for_new_account(&self, tenant: &Tenant) -> AppResult<MfaDecision> {
        let policy = self.policy(tenant.id).await?;
        Ok(decide(&policy, &[], false, None, self.clock.now()))
    }

    /// The whole hook for the sign-in gate (`service::sign_in`, after the
    /// first factor): [`Self::decide`], and for [`MfaDecision::Required`]
    /// the enrolment token too. `has_factor`: the user holds a confirmed
    /// factor (the gate knows already). See [`PolicyGate`].
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn gate(
        &self,
        tenant: &Tenant,
        user: &User,
        has_factor: bool,
        first: &Assurance,
        meta: &RequestMeta,
    ) -> AppResult<PolicyGate> {
        Ok(match self.decide(tenant, user, has_factor).await? {
            MfaDecision::NotRequired | MfaDecision::Satisfied => PolicyGate::AsUsual,
            MfaDecision::Due { until } => PolicyGate::EnrollmentDue { until },
            MfaDecision::Required => PolicyGate::EnrollmentRequired {
                enrollment_token: self.enrollment_token(tenant, user, first, meta).await?,
            },
        })
    }

    /// Whether the policy requires a factor of this user now, so their last
    /// one may not be removed (`FactorStore::remove_factor`'s `keep_one`).
    /// Reads the user's roles from the store; an unknown user is 404.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, user_id = %user_id))]
    pub async fn keep_one(&self, tenant_id: Uuid, user_id: Uuid) -> AppResult<bool> {
        let user = self
            .store
            .get_user(tenant_id, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))?;
        Ok(self.policy(tenant_id).await?.applies_to(&user.roles))
    }

    /// Whether the tenant's policy requires a factor of a holder of `roles`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
    pub async fn applies(&self, tenant_id: Uuid, roles: &[String]) -> AppResult<bool> {
        Ok(self.policy(tenant_id).await?.applies_to(roles))
    }

    /// The `enrollment_token` of a sign-in past the grace: a short-lived
    /// bearer the factor enrolment calls alone accept, bound to the user,
    /// the first factor's assurance and the request (for the session the
    /// first confirmed factor opens).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id))]
    pub async fn enrollment_token(
        &self,
        tenant: &Tenant,
        user: &User,
        first: &Assurance,
        meta: &RequestMeta,
    ) -> AppResult<Secret> {
        self.challenges
            .issue(ChallengeKind::Enrollment, tenant.id, user.id, first.clone(), meta)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mfa_policy::{MfaRequirement, parse_grace};
    use crate::domain::settings::TenantSettings;
    use crate::domain::{Email, RoleName};
    use crate::service::test_ports;
    use crate::store::NewUser;

    async fn setup() -> (Arc<dyn Store>, Clock, MfaPolicies, Tenant) {
        let (store, cache, clock) = (test_ports::store(), test_ports::cache(), test_ports::clock());
        let challenges = Challenges::new(cache.clone(), clock.clone(), Arc::new(b"k".to_vec()));
        let sessions = test_ports::sessions(&store, &cache, &clock).await;
        let policies = MfaPolicies::new(store.clone(), clock.clone(), challenges, sessions);
        let tenant = store.tenant_by_slug("default").await.unwrap().unwrap();
        (store, clock, policies, tenant)
    }

    async fn user(store: &Arc<dyn Store>, tenant: &Tenant, email: &str, roles: &[&str]) -> User {
        let new = NewUser {
            id: Uuid::now_v7(),
            tenant_id: tenant.id,
            email: Some(Email::parse(email).unwrap()),
            email_verified: true,
            phone: None,
            phone_verified: false,
            password_hash: None,
            metadata: serde_json::json!({}),
            roles: roles.iter().map(|r| RoleName::parse(r).unwrap()).collect(),
            now: test_ports::START,
        };
        let audit = RequestMeta::default().audit(
            tenant.id,
            test_ports::START,
            crate::domain::AuditEvent::UserCreated,
            None,
            None,
        );
        store.create_user(new, None, audit).await.unwrap()
    }

    async fn set(store: &Arc<dyn Store>, tenant: &Tenant, req: MfaRequirement, roles: &[&str], grace: &str, now: i64) {
        let policy = MfaPolicy::parse(
            req,
            &roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
            parse_grace(grace).unwrap(),
        )
        .unwrap()
        .changed_from(&MfaPolicy::default(), now);
        let parts = TenantSettings {
            mfa: Some(policy),
            ..TenantSettings::default()
        };
        store.update_tenant_settings(tenant.id, parts, vec![]).await.unwrap();
    }

    #[tokio::test]
    async fn the_grace_runs_from_the_first_sign_in_it_applies_to() {
        let (store, clock, p, tenant) = setup().await;
        let ann = user(&store, &tenant, "ann@example.com", &[]).await;
        let boss = user(&store, &tenant, "boss@example.com", &["admin"]).await;
        assert_eq!(p.decide(&tenant, &ann, false).await.unwrap(), MfaDecision::NotRequired);
        assert!(!p.keep_one(tenant.id, boss.id).await.unwrap());

        set(&store, &tenant, MfaRequirement::Roles, &["admin"], "1d", clock.now()).await;
        assert_eq!(p.decide(&tenant, &ann, false).await.unwrap(), MfaDecision::NotRequired);
        assert!(!p.keep_one(tenant.id, ann.id).await.unwrap());
        assert!(p.keep_one(tenant.id, boss.id).await.unwrap());
        assert!(p.applies(tenant.id, &["admin".into()]).await.unwrap());

        clock.advance(3_600);
        // A holder of a factor is satisfied and not stamped.
        assert_eq!(p.decide(&tenant, &boss, true).await.unwrap(), MfaDecision::Satisfied);
        clock.advance(3_600);
        let first = clock.now();
        let until = first + 86_400;
        assert_eq!(
            p.decide(&tenant, &boss, false).await.unwrap(),
            MfaDecision::Due { until }
        );
        clock.advance(86_399);
        assert_eq!(
            p.decide(&tenant, &boss, false).await.unwrap(),
            MfaDecision::Due { until },
            "the stamp does not move"
        );
        clock.advance(1);
        assert_eq!(p.decide(&tenant, &boss, false).await.unwrap(), MfaDecision::Required);
        assert_eq!(p.decide(&tenant, &boss, true).await.unwrap(), MfaDecision::Satisfied);
    }

    #[tokio::test]
    async fn the_gate_hands_out_an_enrollment_token_past_the_grace() {
        let (store, clock, p, tenant) = setup().await;
        let ann = user(&store, &tenant, "ann@example.com", &[]).await;
        let (first, meta) = (Assurance::password(), RequestMeta::default());
        let gate = p.gate(&tenant, &ann, false, &first, &meta).await.unwrap();
        assert!(matches!(gate, PolicyGate::AsUsual), "{gate:?}");
        set(&store, &tenant, MfaRequirement::All, &[], "1h", clock.now()).await;
        let gate = p.gate(&tenant, &ann, true, &first, &meta).await.unwrap();
        assert!(matches!(gate, PolicyGate::AsUsual), "{gate:?}");
        let gate = p.gate(&tenant, &ann, false, &first, &meta).await.unwrap();
        assert!(
            matches!(gate, PolicyGate::EnrollmentDue { until } if until == clock.now() + 3_600),
            "{gate:?}"
        );
        clock.advance(3_600);
        let PolicyGate::EnrollmentRequired { enrollment_token } =
            p.gate(&tenant, &ann, false, &first, &meta).await.unwrap()
        else {
            panic!("required after the grace");
        };
        let open = p
            .challenges
            .open(ChallengeKind::Enrollment, tenant.id, enrollment_token.expose())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((open.user_id, open.first_factor), (ann.id, first));
        let (user, tokens) = p
            .finish_enrollment(&tenant, enrollment_token.expose(), &[Amr::Otp], &RequestMeta::default())
            .await
            .unwrap();
        assert_eq!(user.id, ann.id);
        assert!(!tokens.access_token.is_empty());
        assert!(
            p.finish_enrollment(&tenant, enrollment_token.expose(), &[Amr::Otp], &RequestMeta::default())
                .await
                .is_err(),
            "single use"
        );
    }

    #[tokio::test]
    async fn an_enrollment_token_is_an_enrollment_challenge() {
        let (store, _clock, p, tenant) = setup().await;
        let ann = user(&store, &tenant, "ann@example.com", &[]).await;
        let token = p
            .enrollment_token(&tenant, &ann, &Assurance::password(), &RequestMeta::default())
            .await
            .unwrap();
        let open = p
            .challenges
            .open(ChallengeKind::Enrollment, tenant.id, token.expose())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(open.user_id, ann.id);
        assert!(
            p.challenges
                .open(ChallengeKind::SecondFactor, tenant.id, token.expose())
                .await
                .unwrap()
                .is_none()
        );
    }
}
