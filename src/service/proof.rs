//! Proving an identifier, and what the first proof of an account changes.
//!
//! Pre-hijacking (Sudhodanan & Paverd, "Pre-hijacked accounts", USENIX
//! Security 2022): anyone can sign up with an address they do not own, add
//! a phone of their own and set a password, then wait for the owner to
//! verify the address or reset the password, and keep a way in. So the
//! first proof of an account wins: when an account that had no proven
//! identifier proves one (email verification, an email or phone one-time
//! code, a password reset), every other identifier that was never proven
//! and the password set before the proof are dropped, unless the prover
//! showed that password too, and every session but the prover's own is
//! revoked (which also ends admin-site sessions). Whoever proves an address
//! ends up with an account that nobody else can enter.
//!
//! Proving a further identifier of an account that already has a proven
//! owner only marks it proven: that owner set up the rest.

use std::sync::Arc;

use uuid::Uuid;

use super::RequestMeta;
use crate::clock::Clock;
use crate::domain::AuditEvent;
use crate::error::AppResult;
use crate::service::sessions::Sessions;
use crate::store::{EndSessions, IdentifierKind, Store, Tenant, User, UserPatch};

/// What the prover keeps besides the identifier they proved.
#[derive(Clone, Copy, Debug, Default)]
pub struct Keep {
    /// The prover showed the current password (or set it themselves).
    pub password: bool,
    /// The session the proof was made in, when the prover was signed in.
    pub session: Option<Uuid>,
}

/// Whether the account has no proven identifier yet.
pub fn unowned(user: &User) -> bool {
    let email = user.email.is_some() && user.email_verified;
    let phone = user.phone.is_some() && user.phone_verified;
    !(email || phone)
}

/// Proving an identifier, over the store, the clock and the sessions a
/// first proof ends.
#[derive(Clone)]
pub struct Proof {
    store: Arc<dyn Store>,
    clock: Clock,
    sessions: Sessions,
}

impl Proof {
    pub fn new(store: Arc<dyn Store>, clock: Clock, sessions: Sessions) -> Self {
        Self { store, clock, sessions }
    }

    /// Marks `kind` of `user` proven and, on the first proof of the account,
    /// applies the rules above; nothing happens when it is proven already. The
    /// audit row is `email_verified` or `phone_verified`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant.id, user_id = %user.id, kind = ?kind))]
    pub async fn prove(
        &self,
        tenant: &Tenant,
        user: &User,
        kind: IdentifierKind,
        keep: Keep,
        meta: &RequestMeta,
    ) -> AppResult<User> {
        let (proven, event) = match kind {
            IdentifierKind::Email => (user.email.is_some() && user.email_verified, AuditEvent::EmailVerified),
            IdentifierKind::Phone => (user.phone.is_some() && user.phone_verified, AuditEvent::PhoneVerified),
        };
        if proven {
            return Ok(user.clone());
        }
        let first = unowned(user);
        let now = self.clock.now();
        let mut patch = UserPatch {
            now,
            ..Default::default()
        };
        let mut dropped = Vec::new();
        match kind {
            IdentifierKind::Email => patch.email_verified = Some(true),
            IdentifierKind::Phone => patch.phone_verified = Some(true),
        }
        if first {
            match kind {
                IdentifierKind::Email if user.phone.is_some() => {
                    patch.phone = Some(None);
                    patch.phone_verified = Some(false);
                    dropped.push("phone");
                }
                IdentifierKind::Phone if user.email.is_some() => {
                    patch.email = Some(None);
                    patch.email_verified = Some(false);
                    dropped.push("email");
                }
                _ => {}
            }
            if !keep.password && self.store.password_hash(tenant.id, user.id).await?.is_some() {
                patch.password_hash = Some(None);
                patch.end_sessions = EndSessions::Epoch;
                dropped.push("password");
            }
        }
        let mut audit = meta.audit(tenant.id, now, event, Some(user.id), Some(user.id));
        audit.detail = serde_json::json!({
            "identifier": match kind { IdentifierKind::Email => "email", IdentifierKind::Phone => "phone" },
            "first_proof": first,
            "dropped": dropped,
        });
        let user = self.store.update_user(tenant.id, user.id, patch, audit).await?;
        if first {
            self.sessions
                .sign_out_everywhere(tenant.id, user.id, keep.session, None)
                .await?;
            if !dropped.is_empty() {
                tracing::info!(user_id = %user.id, ?dropped, "first proof of the account: unproven credentials dropped");
            }
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, Phone};
    use crate::service::test_ports::{self, START};
    use crate::store::{DEFAULT_TENANT_ID, NewUser};

    #[tokio::test]
    async fn the_first_proof_drops_what_nobody_proved_and_a_later_one_keeps_it() {
        let (store, cache, clock) = (test_ports::store(), test_ports::cache(), test_ports::clock());
        let proof = Proof::new(
            store.clone(),
            clock.clone(),
            test_ports::sessions(&store, &cache, &clock).await,
        );
        let tenant = store.tenant_by_slug("default").await.unwrap().unwrap();
        let meta = RequestMeta::default();
        let new = |email: &str| NewUser {
            id: Uuid::now_v7(),
            tenant_id: DEFAULT_TENANT_ID,
            email: Some(Email::parse(email).unwrap()),
            email_verified: false,
            phone: Some(Phone::parse("+44 20 7946 0958").unwrap()),
            phone_verified: false,
            password_hash: Some("set by whoever signed up".to_string()),
            metadata: serde_json::json!({}),
            roles: vec![],
            now: START,
        };
        let audit = || meta.audit(DEFAULT_TENANT_ID, START, AuditEvent::UserCreated, None, None);

        let user = store.create_user(new("a@example.com"), None, audit()).await.unwrap();
        let proven = proof
            .prove(&tenant, &user, IdentifierKind::Email, Keep::default(), &meta)
            .await
            .unwrap();
        assert!(proven.email_verified);
        assert_eq!(proven.phone, None, "an unproven phone goes with the first proof");
        assert_eq!(store.password_hash(tenant.id, user.id).await.unwrap(), None);

        let user = store.create_user(new("b@example.com"), None, audit()).await.unwrap();
        let keep = Keep {
            password: true,
            session: None,
        };
        let proven = proof
            .prove(&tenant, &user, IdentifierKind::Phone, keep, &meta)
            .await
            .unwrap();
        assert!(proven.phone_verified);
        assert_eq!(proven.email, None);
        assert!(
            store.password_hash(tenant.id, user.id).await.unwrap().is_some(),
            "kept when shown"
        );
        let again = proof
            .prove(&tenant, &proven, IdentifierKind::Phone, Keep::default(), &meta)
            .await
            .unwrap();
        assert!(again.phone_verified);
        assert!(
            store.password_hash(tenant.id, user.id).await.unwrap().is_some(),
            "already proven: nothing happens"
        );
    }
}
