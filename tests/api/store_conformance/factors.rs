//! Second factors: pending and confirmed factors, the first factor's
//! recovery codes, the single-winner TOTP step and recovery-code spending,
//! refusing the last factor under a policy, WebAuthn credentials by id, and
//! the policy's due date.

use forge::domain::settings::TenantSettings;

use super::*;

fn totp(user: Uuid, name: &str) -> NewFactor {
    NewFactor {
        id: Uuid::now_v7(),
        tenant_id: T,
        user_id: user,
        name: name.into(),
        now: NOW,
        material: NewFactorMaterial::Totp {
            sealed_secret: vec![1, 2, 3, 4],
        },
    }
}

fn webauthn(user: Uuid, credential_id: &str) -> NewFactor {
    NewFactor {
        id: Uuid::now_v7(),
        tenant_id: T,
        user_id: user,
        name: "key".into(),
        now: NOW,
        material: NewFactorMaterial::WebAuthn {
            credential_id: credential_id.into(),
            credential: serde_json::json!({"cred": credential_id, "counter": 0}),
        },
    }
}

fn confirmation(user: Uuid, step: Option<i64>, codes: &[&str]) -> ConfirmFactor {
    ConfirmFactor {
        now: NOW + 5,
        totp_step: step,
        recovery_code_hashes: codes.iter().map(|c| c.to_string()).collect(),
        audit: audit("mfa_enrolled", Some(user)),
    }
}

/// Ten code hashes named after `prefix`.
fn hashes(prefix: &str) -> Vec<String> {
    (0..10).map(|i| format!("{prefix}{i}")).collect()
}

/// A user with one confirmed TOTP factor (and ten recovery codes `h0..h9`).
async fn enrolled(store: &Arc<dyn Store>, email: &str) -> (Uuid, Factor) {
    let user = signed_up(store, email, None).await.id;
    let factor = store.create_factor(totp(user, "phone")).await.unwrap();
    let codes = hashes("h");
    let mut confirm = confirmation(user, Some(100), &[]);
    confirm.recovery_code_hashes = codes;
    let confirmed = store.confirm_factor(T, user, factor.id, confirm).await.unwrap();
    assert!(confirmed.first);
    (user, confirmed.factor)
}

async fn audit_count(store: &Arc<dyn Store>, event: &str, user: Uuid) -> usize {
    store
        .list_audit(AuditQuery {
            tenant_id: T,
            user_id: Some(user),
            event: Some(event.into()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap()
        .len()
}

pub(super) async fn a_new_factor_is_pending_and_listed_without_its_secret(store: Arc<dyn Store>) {
    let user = signed_up(&store, "cy@example.com", None).await.id;
    let new = totp(user, "phone");
    let factor = store.create_factor(new.clone()).await.unwrap();
    assert_eq!(
        (factor.id, factor.kind, factor.name.as_str()),
        (new.id, FactorKind::Totp, "phone")
    );
    assert_eq!(
        (factor.created_at, factor.confirmed_at, factor.last_used_at),
        (NOW, None, None)
    );
    assert_eq!(
        store.list_factors(T, user).await.unwrap(),
        std::slice::from_ref(&factor)
    );
    let secret = store.factor_secret(T, user, factor.id).await.unwrap().unwrap();
    assert_eq!(secret.factor, factor);
    assert!(!format!("{secret:?}").contains("[1, 2, 3, 4]"));
    match secret.material {
        FactorMaterial::Totp {
            sealed_secret,
            last_step,
        } => assert_eq!((sealed_secret, last_step), (vec![1, 2, 3, 4], None)),
        FactorMaterial::WebAuthn { .. } => panic!("a TOTP factor"),
    }
    // A pending factor signs nobody in.
    assert!(!store.advance_totp_step(T, user, factor.id, 1, NOW).await.unwrap());
    // No factor for a user that does not exist, nor one of another tenant.
    let e = store.create_factor(totp(Uuid::now_v7(), "x")).await.unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");
    let mut elsewhere = totp(user, "x");
    elsewhere.tenant_id = Uuid::now_v7();
    assert!(matches!(
        store.create_factor(elsewhere).await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .factor_secret(T, Uuid::now_v7(), factor.id)
            .await
            .unwrap()
            .is_none()
    );
}

pub(super) async fn the_first_confirmed_factor_stores_the_recovery_codes_and_later_ones_do_not(store: Arc<dyn Store>) {
    let (user, first) = enrolled(&store, "cy@example.com").await;
    assert_eq!(first.confirmed_at, Some(NOW + 5));
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 10);
    assert_eq!(audit_count(&store, "mfa_enrolled", user).await, 1);
    // The confirming code's step is spent.
    assert!(!store.advance_totp_step(T, user, first.id, 100, NOW).await.unwrap());
    let second = store.create_factor(totp(user, "tablet")).await.unwrap();
    let confirmed = store
        .confirm_factor(T, user, second.id, confirmation(user, None, &["other"]))
        .await
        .unwrap();
    assert!(!confirmed.first);
    assert!(confirmed.factor.is_confirmed());
    // The codes are still the first ones.
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 10);
    assert!(
        !store
            .use_recovery_code(T, user, "other", NOW, audit("recovery_code_used", Some(user)))
            .await
            .unwrap()
    );
    // Confirming twice, or another user's factor, finds nothing pending.
    let again = store
        .confirm_factor(T, user, second.id, confirmation(user, None, &[]))
        .await;
    assert!(matches!(again, Err(StoreError::NotFound)));
    let stranger = signed_up(&store, "dee@example.com", None).await.id;
    let pending = store.create_factor(totp(user, "pending")).await.unwrap();
    let theirs = store
        .confirm_factor(T, stranger, pending.id, confirmation(stranger, None, &[]))
        .await;
    assert!(matches!(theirs, Err(StoreError::NotFound)));
    assert_eq!(audit_count(&store, "mfa_enrolled", user).await, 2);
}

pub(super) async fn concurrent_first_confirmations_store_one_set_of_codes(store: Arc<dyn Store>) {
    let user = signed_up(&store, "cy@example.com", None).await.id;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let factor = store.create_factor(totp(user, &format!("f{i}"))).await.unwrap();
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let codes = hashes(&format!("set{i}-"));
            let mut confirm = confirmation(user, None, &[]);
            confirm.recovery_code_hashes = codes;
            store.confirm_factor(T, user, factor.id, confirm).await.unwrap().first
        }));
    }
    let firsts = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(firsts, 1, "exactly one confirmation is the first");
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 10);
}

pub(super) async fn a_totp_step_is_accepted_once_and_never_an_earlier_one(store: Arc<dyn Store>) {
    let (user, factor) = enrolled(&store, "cy@example.com").await;
    assert!(
        store
            .advance_totp_step(T, user, factor.id, 101, NOW + 30)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_totp_step(T, user, factor.id, 101, NOW + 31)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_totp_step(T, user, factor.id, 100, NOW + 31)
            .await
            .unwrap()
    );
    assert!(
        store
            .advance_totp_step(T, user, factor.id, 103, NOW + 90)
            .await
            .unwrap()
    );
    assert!(
        !store
            .advance_totp_step(T, user, factor.id, 102, NOW + 90)
            .await
            .unwrap()
    );
    let listed = &store.list_factors(T, user).await.unwrap()[0];
    assert_eq!(listed.last_used_at, Some(NOW + 90));
    match store.factor_secret(T, user, factor.id).await.unwrap().unwrap().material {
        FactorMaterial::Totp { last_step, .. } => assert_eq!(last_step, Some(103)),
        FactorMaterial::WebAuthn { .. } => panic!("a TOTP factor"),
    }
    // Only the user's own factor, in its own tenant.
    let stranger = signed_up(&store, "dee@example.com", None).await.id;
    assert!(!store.advance_totp_step(T, stranger, factor.id, 200, NOW).await.unwrap());
    assert!(
        !store
            .advance_totp_step(Uuid::now_v7(), user, factor.id, 200, NOW)
            .await
            .unwrap()
    );
}

pub(super) async fn concurrent_uses_of_one_totp_code_accept_it_once(store: Arc<dyn Store>) {
    let (user, factor) = enrolled(&store, "cy@example.com").await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.advance_totp_step(T, user, factor.id, 500, NOW).await.unwrap()
        }));
    }
    let wins = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
}

pub(super) async fn a_recovery_code_is_spent_once_and_audited_when_spent(store: Arc<dyn Store>) {
    let (user, _) = enrolled(&store, "cy@example.com").await;
    let used = || audit("recovery_code_used", Some(user));
    assert!(store.use_recovery_code(T, user, "h3", NOW, used()).await.unwrap());
    assert!(!store.use_recovery_code(T, user, "h3", NOW, used()).await.unwrap());
    assert!(!store.use_recovery_code(T, user, "nope", NOW, used()).await.unwrap());
    let stranger = signed_up(&store, "dee@example.com", None).await.id;
    assert!(!store.use_recovery_code(T, stranger, "h4", NOW, used()).await.unwrap());
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 9);
    assert_eq!(audit_count(&store, "recovery_code_used", user).await, 1);
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .use_recovery_code(T, user, "h7", NOW, audit("recovery_code_used", Some(user)))
                .await
                .unwrap()
        }));
    }
    let wins = futures::future::join_all(tasks)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(wins, 1);
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 8);
}

pub(super) async fn regenerated_recovery_codes_replace_all_the_old_ones(store: Arc<dyn Store>) {
    let (user, _) = enrolled(&store, "cy@example.com").await;
    let regen = || audit("recovery_codes_regenerated", Some(user));
    let used = || audit("recovery_code_used", Some(user));
    assert!(store.use_recovery_code(T, user, "h0", NOW, used()).await.unwrap());
    assert!(
        store
            .replace_recovery_codes(T, user, hashes("n"), NOW, regen())
            .await
            .unwrap()
    );
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 10);
    for old in ["h0", "h1", "h9"] {
        assert!(
            !store.use_recovery_code(T, user, old, NOW, used()).await.unwrap(),
            "{old}"
        );
    }
    assert!(store.use_recovery_code(T, user, "n5", NOW, used()).await.unwrap());
    assert_eq!(audit_count(&store, "recovery_codes_regenerated", user).await, 1);
    // Without a confirmed factor there is nothing to recover: nothing stored.
    let pending_only = signed_up(&store, "dee@example.com", None).await.id;
    store.create_factor(totp(pending_only, "pending")).await.unwrap();
    assert!(
        !store
            .replace_recovery_codes(T, pending_only, hashes("p"), NOW, regen())
            .await
            .unwrap()
    );
    assert_eq!(store.count_unused_recovery_codes(T, pending_only).await.unwrap(), 0);
    assert_eq!(audit_count(&store, "recovery_codes_regenerated", pending_only).await, 0);
}

pub(super) async fn the_last_factor_is_refused_under_a_policy_and_otherwise_takes_the_codes(store: Arc<dyn Store>) {
    let (user, first) = enrolled(&store, "cy@example.com").await;
    let removed = || audit("mfa_removed", Some(user));
    let pending = store.create_factor(totp(user, "pending")).await.unwrap();
    // A pending factor does not count as a factor that stays.
    assert_eq!(
        store.remove_factor(T, user, first.id, true, removed()).await.unwrap(),
        Removal::RefusedLast
    );
    assert_eq!(store.list_factors(T, user).await.unwrap().len(), 2);
    assert_eq!(audit_count(&store, "mfa_removed", user).await, 0);
    // Removing a pending factor is never the last one.
    assert_eq!(
        store.remove_factor(T, user, pending.id, true, removed()).await.unwrap(),
        Removal::Removed { was_last: false }
    );
    // Not the user's factor, or gone: not found.
    let stranger = signed_up(&store, "dee@example.com", None).await.id;
    let theirs = store.remove_factor(T, stranger, first.id, false, removed()).await;
    assert!(matches!(theirs, Err(StoreError::NotFound)));
    // Without the policy the last factor goes, and its recovery codes with it.
    assert_eq!(
        store.remove_factor(T, user, first.id, false, removed()).await.unwrap(),
        Removal::Removed { was_last: true }
    );
    assert!(store.list_factors(T, user).await.unwrap().is_empty());
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 0);
    assert_eq!(audit_count(&store, "mfa_removed", user).await, 2);
    let gone = store.remove_factor(T, user, first.id, false, removed()).await;
    assert!(matches!(gone, Err(StoreError::NotFound)));
}

pub(super) async fn concurrent_removals_under_a_policy_leave_one_factor(store: Arc<dyn Store>) {
    let (user, first) = enrolled(&store, "cy@example.com").await;
    let second = store.create_factor(totp(user, "second")).await.unwrap();
    store
        .confirm_factor(T, user, second.id, confirmation(user, None, &[]))
        .await
        .unwrap();
    let tasks = [first.id, second.id].map(|id| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .remove_factor(T, user, id, true, audit("mfa_removed", Some(user)))
                .await
                .unwrap()
        })
    });
    let outcomes: Vec<Removal> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(outcomes.contains(&Removal::Removed { was_last: false }), "{outcomes:?}");
    assert!(outcomes.contains(&Removal::RefusedLast), "{outcomes:?}");
    assert_eq!(store.list_factors(T, user).await.unwrap().len(), 1);
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 10);
}

pub(super) async fn a_reset_removes_every_factor_and_code_of_the_user_only(store: Arc<dyn Store>) {
    let (user, _) = enrolled(&store, "cy@example.com").await;
    store.create_factor(totp(user, "pending")).await.unwrap();
    store
        .add_confirmed_factor(webauthn(user, "cred-1"), confirmation(user, None, &[]))
        .await
        .unwrap();
    let (other, _) = enrolled(&store, "dee@example.com").await;
    assert_eq!(
        store
            .reset_factors(T, user, audit("mfa_reset", Some(user)))
            .await
            .unwrap(),
        3
    );
    assert!(store.list_factors(T, user).await.unwrap().is_empty());
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 0);
    assert_eq!(audit_count(&store, "mfa_reset", user).await, 1);
    assert_eq!(store.list_factors(T, other).await.unwrap().len(), 1);
    assert_eq!(store.count_unused_recovery_codes(T, other).await.unwrap(), 10);
    // The credential id is free again.
    store
        .add_confirmed_factor(webauthn(other, "cred-1"), confirmation(other, None, &[]))
        .await
        .unwrap();
}

pub(super) async fn a_factor_is_renamed_only_by_its_user(store: Arc<dyn Store>) {
    let (user, factor) = enrolled(&store, "cy@example.com").await;
    let renamed = store
        .rename_factor(
            T,
            user,
            factor.id,
            "work phone".into(),
            audit("mfa_renamed", Some(user)),
        )
        .await
        .unwrap();
    assert_eq!(renamed.name, "work phone");
    assert_eq!(renamed.confirmed_at, factor.confirmed_at);
    assert_eq!(store.list_factors(T, user).await.unwrap()[0].name, "work phone");
    let stranger = signed_up(&store, "dee@example.com", None).await.id;
    let theirs = store
        .rename_factor(
            T,
            stranger,
            factor.id,
            "mine".into(),
            audit("mfa_renamed", Some(stranger)),
        )
        .await;
    assert!(matches!(theirs, Err(StoreError::NotFound)));
    assert_eq!(audit_count(&store, "mfa_renamed", user).await, 1);
    assert_eq!(audit_count(&store, "mfa_renamed", stranger).await, 0);
}

pub(super) async fn webauthn_credentials_are_found_by_id_within_the_tenant_and_updated(store: Arc<dyn Store>) {
    let user = signed_up(&store, "cy@example.com", None).await.id;
    let confirmed = store
        .add_confirmed_factor(webauthn(user, "cred-1"), confirmation(user, None, &["w0"]))
        .await
        .unwrap();
    assert!(confirmed.first, "a passkey as the first factor brings the codes");
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 1);
    assert_eq!(confirmed.factor.kind, FactorKind::WebAuthn);
    assert_eq!(confirmed.factor.credential_id.as_deref(), Some("cred-1"));
    // A pending one (and a TOTP factor) is not offered.
    store.create_factor(webauthn(user, "cred-pending")).await.unwrap();
    store.create_factor(totp(user, "phone")).await.unwrap();
    assert!(
        store
            .factor_by_credential_id(T, "cred-pending")
            .await
            .unwrap()
            .is_none()
    );
    let listed = store.webauthn_credentials(T, user).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].factor.id, confirmed.factor.id);

    let found = store.factor_by_credential_id(T, "cred-1").await.unwrap().unwrap();
    assert_eq!(found.factor.user_id, user);
    match &found.material {
        FactorMaterial::WebAuthn { credential } => assert_eq!(credential["counter"], 0),
        FactorMaterial::Totp { .. } => panic!("a WebAuthn factor"),
    }
    assert!(
        store
            .factor_by_credential_id(Uuid::now_v7(), "cred-1")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.factor_by_credential_id(T, "cred-2").await.unwrap().is_none());

    let updated = serde_json::json!({"cred": "cred-1", "counter": 7});
    assert!(
        store
            .update_webauthn_credential(T, confirmed.factor.id, updated.clone(), NOW + 60)
            .await
            .unwrap()
    );
    let found = store.factor_by_credential_id(T, "cred-1").await.unwrap().unwrap();
    assert_eq!(found.factor.last_used_at, Some(NOW + 60));
    assert!(matches!(found.material, FactorMaterial::WebAuthn { credential } if credential == updated));
    assert!(
        !store
            .update_webauthn_credential(Uuid::now_v7(), confirmed.factor.id, updated, NOW)
            .await
            .unwrap()
    );

    // One credential is one factor in a tenant, whoever registers it.
    let dee = signed_up(&store, "dee@example.com", None).await.id;
    let e = store
        .add_confirmed_factor(webauthn(dee, "cred-1"), confirmation(dee, None, &[]))
        .await
        .unwrap_err();
    assert_eq!(conflict_field(e), "credential_id");
    assert!(store.list_factors(T, dee).await.unwrap().is_empty());
    assert_eq!(audit_count(&store, "mfa_enrolled", dee).await, 0);
}

pub(super) async fn the_same_credential_may_be_registered_in_another_tenant(store: Arc<dyn Store>) {
    let user = signed_up(&store, "cy@example.com", None).await.id;
    store
        .add_confirmed_factor(webauthn(user, "cred-1"), confirmation(user, None, &[]))
        .await
        .unwrap();
    let acme = Uuid::now_v7();
    let mut boss = new_user("boss@acme.test", None, &["admin"]);
    boss.tenant_id = acme;
    store
        .create_tenant(
            NewTenant {
                id: acme,
                slug: TenantSlug::parse("acme").unwrap(),
                name: "Acme".into(),
                now: NOW,
                admin: Some(boss.clone()),
                settings: TenantSettings::default(),
            },
            vec![],
        )
        .await
        .unwrap();
    let mut theirs = webauthn(boss.id, "cred-1");
    theirs.tenant_id = acme;
    let mut confirm = confirmation(boss.id, None, &[]);
    confirm.audit.tenant_id = acme;
    store.add_confirmed_factor(theirs, confirm).await.unwrap();
    let found = store.factor_by_credential_id(acme, "cred-1").await.unwrap().unwrap();
    assert_eq!(found.factor.user_id, boss.id);
    let here = store.factor_by_credential_id(T, "cred-1").await.unwrap().unwrap();
    assert_eq!(here.factor.user_id, user);
}

pub(super) async fn deleting_a_user_takes_their_factors_and_codes(store: Arc<dyn Store>) {
    let (user, factor) = enrolled(&store, "cy@example.com").await;
    store
        .add_confirmed_factor(webauthn(user, "cred-1"), confirmation(user, None, &[]))
        .await
        .unwrap();
    store.delete_user(T, user, audit("user_deleted", None)).await.unwrap();
    assert!(store.list_factors(T, user).await.unwrap().is_empty());
    assert!(store.factor_secret(T, user, factor.id).await.unwrap().is_none());
    assert!(store.factor_by_credential_id(T, "cred-1").await.unwrap().is_none());
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 0);
}

pub(super) async fn the_mfa_due_date_is_stamped_once(store: Arc<dyn Store>) {
    let user = signed_up(&store, "cy@example.com", None).await.id;
    assert_eq!(store.mfa_due_since(T, user, NOW).await.unwrap(), Some(NOW));
    assert_eq!(store.mfa_due_since(T, user, NOW + 100).await.unwrap(), Some(NOW));
    assert_eq!(store.mfa_due_since(T, Uuid::now_v7(), NOW).await.unwrap(), None);
    assert_eq!(store.mfa_due_since(Uuid::now_v7(), user, NOW).await.unwrap(), None);
}

pub(super) async fn discarding_pending_factors_keeps_confirmed_ones_and_other_users(store: Arc<dyn Store>) {
    let (user, confirmed) = enrolled(&store, "cy@example.com").await;
    let other = signed_up(&store, "di@example.com", None).await.id;
    store.create_factor(totp(user, "a")).await.unwrap();
    store.create_factor(totp(user, "b")).await.unwrap();
    let theirs = store.create_factor(totp(other, "c")).await.unwrap();
    // Another kind is left alone.
    assert_eq!(
        store
            .discard_pending_factors(T, user, FactorKind::WebAuthn)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.discard_pending_factors(T, user, FactorKind::Totp).await.unwrap(),
        2
    );
    assert_eq!(store.list_factors(T, user).await.unwrap(), vec![confirmed]);
    assert_eq!(store.list_factors(T, other).await.unwrap(), vec![theirs]);
    // Nothing was audited and the recovery codes stay.
    assert_eq!(audit_count(&store, "mfa_removed", user).await, 0);
    assert_eq!(store.count_unused_recovery_codes(T, user).await.unwrap(), 10);
}

pub(super) async fn the_recovery_code_summary_counts_and_dates_the_current_set(store: Arc<dyn Store>) {
    let (user, _) = enrolled(&store, "cy@example.com").await;
    let summary = store.recovery_code_summary(T, user).await.unwrap();
    assert_eq!(
        summary,
        RecoveryCodeSummary {
            remaining: 10,
            created_at: Some(NOW + 5),
            last_used_at: None
        }
    );
    assert!(
        store
            .use_recovery_code(T, user, "h3", NOW + 60, audit("recovery_code_used", Some(user)))
            .await
            .unwrap()
    );
    let summary = store.recovery_code_summary(T, user).await.unwrap();
    assert_eq!((summary.remaining, summary.last_used_at), (9, Some(NOW + 60)));
    let nobody = signed_up(&store, "di@example.com", None).await.id;
    assert_eq!(
        store.recovery_code_summary(T, nobody).await.unwrap(),
        RecoveryCodeSummary::default()
    );
}
