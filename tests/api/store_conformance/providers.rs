//! Upstream identity providers and linked identities: registration with a
//! sealed secret, per-tenant lookups, deletion taking the identities along,
//! the `(provider, subject)` uniqueness, the one-transaction account
//! creation, and the refusal to unlink the last way to sign in.

use super::*;
use forge::domain::providers::{
    AppleKey, NewIdentity, Provider, ProviderId, ProviderKind, ProviderPatch, ProviderSpec,
};

fn pid(s: &str) -> ProviderId {
    ProviderId::parse(s).unwrap()
}

fn oidc_spec(name: &str) -> ProviderSpec {
    let mut s = ProviderSpec::new(ProviderKind::Oidc, name, "client-1");
    s.issuer = Some("https://idp.example.com".into());
    s.scopes = vec!["openid".into(), "email".into()];
    s.validate().unwrap();
    s
}

fn audit_in(tenant: Uuid, event: &'static str, user: Option<Uuid>) -> NewAuditEvent {
    let mut a = audit(event, user);
    a.tenant_id = tenant;
    a
}

async fn register(store: &Arc<dyn Store>, tenant: Uuid, id: &str, spec: ProviderSpec) -> StoreResult<Provider> {
    store
        .create_provider(
            NewProvider {
                tenant_id: tenant,
                id: pid(id),
                spec,
                sealed_secret: format!("sealed-{id}").into_bytes(),
                now: NOW,
            },
            audit_in(tenant, "provider_created", None),
        )
        .await
}

async fn other_tenant(store: &Arc<dyn Store>) -> Uuid {
    let id = Uuid::now_v7();
    store
        .create_tenant(
            NewTenant {
                id,
                slug: TenantSlug::parse("other").unwrap(),
                name: "Other".into(),
                now: NOW,
                admin: None,
                settings: forge::domain::settings::TenantSettings::default(),
            },
            vec![],
        )
        .await
        .unwrap();
    id
}

fn identity(user: Uuid, provider: &str, subject: &str) -> NewIdentity {
    NewIdentity {
        id: Uuid::now_v7(),
        tenant_id: T,
        user_id: user,
        provider: pid(provider),
        subject: subject.into(),
        email: Some("up@example.com".into()),
        now: NOW,
    }
}

async fn audit_count(store: &Arc<dyn Store>, tenant: Uuid, event: &str) -> usize {
    store
        .list_audit(AuditQuery {
            tenant_id: tenant,
            user_id: None,
            event: Some(event.into()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap()
        .len()
}

/// A user with nothing to sign in with: no password, nothing verified.
fn bare_user(email: &str) -> NewUser {
    let mut u = new_user(email, None, &[]);
    u.password_hash = None;
    u
}

pub(super) async fn a_registered_provider_is_found_only_in_its_tenant_with_its_sealed_secret(store: Arc<dyn Store>) {
    let other = other_tenant(&store).await;
    let mut apple = ProviderSpec::new(ProviderKind::Apple, "Apple", "com.example.web");
    apple.apple = Some(AppleKey {
        team_id: "TEAM123".into(),
        key_id: "KEY456".into(),
    });
    apple.enabled = false;
    apple.validate().unwrap();
    let created = register(&store, T, "apple", apple.clone()).await.unwrap();
    assert_eq!(created.id.as_str(), "apple");
    assert_eq!(created.spec(), apple);
    assert!(!created.from_config);
    assert_eq!((created.created_at, created.updated_at), (NOW, NOW));
    let corp = register(&store, T, "corp", oidc_spec("Corp")).await.unwrap();
    assert_eq!(
        corp.issuer.as_ref().map(|u| u.host_str()),
        Some(Some("idp.example.com"))
    );
    assert_eq!(corp.claims, forge::domain::providers::ClaimMap::default());

    let listed = store.list_providers(T).await.unwrap();
    assert_eq!(
        listed.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["apple", "corp"]
    );
    assert_eq!(store.get_provider(T, &pid("corp")).await.unwrap(), Some(corp.clone()));
    let with_secret = store.provider_secret(T, &pid("corp")).await.unwrap().unwrap();
    assert_eq!(with_secret.sealed_secret, b"sealed-corp");
    assert!(!format!("{with_secret:?}").contains("sealed-corp"));
    assert_eq!(with_secret.provider, corp);

    // Another tenant sees none of it, and may use the same id.
    assert!(store.list_providers(other).await.unwrap().is_empty());
    assert_eq!(store.get_provider(other, &pid("corp")).await.unwrap(), None);
    assert!(store.provider_secret(other, &pid("corp")).await.unwrap().is_none());
    register(&store, other, "corp", oidc_spec("Theirs")).await.unwrap();
    assert_eq!(store.get_provider(T, &pid("corp")).await.unwrap().unwrap().name, "Corp");
    assert_eq!(audit_count(&store, T, "provider_created").await, 2);
}

pub(super) async fn a_taken_provider_id_conflicts_on_id_and_writes_nothing(store: Arc<dyn Store>) {
    register(&store, T, "corp", oidc_spec("Corp")).await.unwrap();
    let err = register(&store, T, "corp", oidc_spec("Again")).await.unwrap_err();
    assert_eq!(conflict_field(err), "id");
    assert_eq!(store.get_provider(T, &pid("corp")).await.unwrap().unwrap().name, "Corp");
    assert_eq!(audit_count(&store, T, "provider_created").await, 1);
}

pub(super) async fn updating_a_provider_replaces_its_spec_and_keeps_or_replaces_its_secret(store: Arc<dyn Store>) {
    let other = other_tenant(&store).await;
    register(&store, T, "corp", oidc_spec("Corp")).await.unwrap();
    let mut spec = oidc_spec("Corp");
    ProviderPatch {
        name: Some("Corp SSO".into()),
        enabled: Some(false),
        scopes: Some(vec!["openid".into()]),
        ..ProviderPatch::default()
    }
    .apply(&mut spec);
    spec.validate().unwrap();
    let updated = store
        .update_provider(
            T,
            &pid("corp"),
            spec.clone(),
            None,
            NOW + 5,
            audit("provider_updated", None),
        )
        .await
        .unwrap();
    assert_eq!(updated.spec(), spec);
    assert_eq!((updated.created_at, updated.updated_at), (NOW, NOW + 5));
    let kept = store.provider_secret(T, &pid("corp")).await.unwrap().unwrap();
    assert_eq!(kept.sealed_secret, b"sealed-corp");

    store
        .update_provider(
            T,
            &pid("corp"),
            spec.clone(),
            Some(b"new-sealed".to_vec()),
            NOW + 6,
            audit("provider_updated", None),
        )
        .await
        .unwrap();
    let replaced = store.provider_secret(T, &pid("corp")).await.unwrap().unwrap();
    assert_eq!(replaced.sealed_secret, b"new-sealed");

    // Not found elsewhere, and nothing written there.
    let err = store
        .update_provider(
            other,
            &pid("corp"),
            spec,
            None,
            NOW,
            audit_in(other, "provider_updated", None),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(audit_count(&store, T, "provider_updated").await, 2);
    assert_eq!(audit_count(&store, other, "provider_updated").await, 0);
}

pub(super) async fn deleting_a_provider_takes_its_identities_and_no_others(store: Arc<dyn Store>) {
    let other = other_tenant(&store).await;
    register(&store, T, "corp", oidc_spec("Corp")).await.unwrap();
    register(
        &store,
        T,
        "github",
        ProviderSpec::new(ProviderKind::Github, "GitHub", "gh"),
    )
    .await
    .unwrap();
    let user = signed_up(&store, "ann@example.com", None).await.id;
    store
        .link_identity(identity(user, "corp", "s-1"), audit("identity_linked", Some(user)))
        .await
        .unwrap();
    store
        .link_identity(identity(user, "github", "42"), audit("identity_linked", Some(user)))
        .await
        .unwrap();

    let err = store
        .delete_provider(other, &pid("corp"), audit_in(other, "provider_deleted", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let gone = store
        .delete_provider(T, &pid("corp"), audit("provider_deleted", None))
        .await
        .unwrap();
    assert_eq!(gone, 1);
    assert_eq!(store.get_provider(T, &pid("corp")).await.unwrap(), None);
    let left = store.list_identities(T, user).await.unwrap();
    assert_eq!(left.iter().map(|i| i.provider.as_str()).collect::<Vec<_>>(), ["github"]);
    assert_eq!(store.find_identity(T, &pid("corp"), "s-1").await.unwrap(), None);
    assert_eq!(audit_count(&store, T, "provider_deleted").await, 1);
    let err = store
        .delete_provider(T, &pid("corp"), audit("provider_deleted", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

pub(super) async fn an_identity_is_linked_once_and_found_by_provider_and_subject(store: Arc<dyn Store>) {
    let other = other_tenant(&store).await;
    let ann = signed_up(&store, "ann@example.com", None).await.id;
    let bob = signed_up(&store, "bob@example.com", None).await.id;
    let new = identity(ann, "corp", "s-1");
    let linked = store
        .link_identity(new.clone(), audit("identity_linked", Some(ann)))
        .await
        .unwrap();
    assert_eq!(
        (
            linked.id,
            linked.user_id,
            linked.provider.as_str(),
            linked.subject.as_str()
        ),
        (new.id, ann, "corp", "s-1")
    );
    assert_eq!(linked.email.as_deref(), Some("up@example.com"));
    assert_eq!(linked.created_at, NOW);
    assert_eq!(
        store.find_identity(T, &pid("corp"), "s-1").await.unwrap(),
        Some(linked.clone())
    );
    // Subjects are compared exactly; another provider is another key.
    assert_eq!(store.find_identity(T, &pid("corp"), "S-1").await.unwrap(), None);
    assert_eq!(store.find_identity(other, &pid("corp"), "s-1").await.unwrap(), None);

    // The same (provider, subject) cannot be linked again, to anyone.
    for user in [ann, bob] {
        let err = store
            .link_identity(identity(user, "corp", "s-1"), audit("identity_linked", Some(user)))
            .await
            .unwrap_err();
        assert_eq!(conflict_field(err), "subject");
    }
    store
        .link_identity(identity(bob, "github", "s-1"), audit("identity_linked", Some(bob)))
        .await
        .unwrap();
    assert_eq!(audit_count(&store, T, "identity_linked").await, 2);
    assert_eq!(store.list_identities(T, ann).await.unwrap(), vec![linked]);
    assert!(store.list_identities(other, ann).await.unwrap().is_empty());

    // A user of another tenant (or none) is not found, and nothing is written.
    let mut foreign = identity(ann, "corp", "s-2");
    foreign.tenant_id = other;
    let err = store
        .link_identity(foreign, audit_in(other, "identity_linked", Some(ann)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let err = store
        .link_identity(identity(Uuid::now_v7(), "corp", "s-3"), audit("identity_linked", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(audit_count(&store, T, "identity_linked").await, 2);
}

pub(super) async fn touching_an_identity_records_its_use_and_the_new_email(store: Arc<dyn Store>) {
    let ann = signed_up(&store, "ann@example.com", None).await.id;
    let linked = store
        .link_identity(identity(ann, "corp", "s-1"), audit("identity_linked", Some(ann)))
        .await
        .unwrap();
    assert!(store.touch_identity(T, linked.id, None, NOW + 10).await.unwrap());
    let found = store.find_identity(T, &pid("corp"), "s-1").await.unwrap().unwrap();
    assert_eq!(found.last_used_at, Some(NOW + 10));
    assert_eq!(found.email.as_deref(), Some("up@example.com"));
    assert!(
        store
            .touch_identity(T, linked.id, Some("new@example.com"), NOW + 20)
            .await
            .unwrap()
    );
    let found = store.find_identity(T, &pid("corp"), "s-1").await.unwrap().unwrap();
    assert_eq!(found.last_used_at, Some(NOW + 20));
    assert_eq!(found.email.as_deref(), Some("new@example.com"));
    assert!(!store.touch_identity(T, Uuid::now_v7(), None, NOW).await.unwrap());
    let other = other_tenant(&store).await;
    assert!(!store.touch_identity(other, linked.id, None, NOW).await.unwrap());
}

pub(super) async fn a_user_created_with_an_identity_is_all_or_nothing(store: Arc<dyn Store>) {
    let mut user = bare_user("fed@example.com");
    user.email_verified = true;
    let new = identity(user.id, "corp", "s-1");
    let (created, linked) = store
        .create_user_with_identity(
            user.clone(),
            new.clone(),
            vec![audit("signup", Some(user.id)), audit("identity_linked", Some(user.id))],
        )
        .await
        .unwrap();
    assert_eq!(created.id, user.id);
    assert!(created.email_verified);
    assert_eq!(linked.user_id, user.id);
    assert_eq!(store.find_identity(T, &pid("corp"), "s-1").await.unwrap(), Some(linked));
    assert_eq!(store.password_hash(T, user.id).await.unwrap(), None);
    assert_eq!(audit_count(&store, T, "identity_linked").await, 1);
    assert_eq!(audit_count(&store, T, "signup").await, 1);

    // The subject is taken: no user is left behind.
    let again = bare_user("again@example.com");
    let err = store
        .create_user_with_identity(
            again.clone(),
            identity(again.id, "corp", "s-1"),
            vec![audit("signup", Some(again.id))],
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_field(err), "subject");
    assert!(store.get_user(T, again.id).await.unwrap().is_none());
    let found = store
        .find_for_login(T, &Identifier::Email(Email::parse("again@example.com").unwrap()))
        .await
        .unwrap();
    assert!(found.is_none());

    // The email is taken: no identity is left behind.
    let dup = bare_user("fed@example.com");
    let err = store
        .create_user_with_identity(
            dup.clone(),
            identity(dup.id, "corp", "s-9"),
            vec![audit("signup", Some(dup.id))],
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_field(err), "email");
    assert_eq!(store.find_identity(T, &pid("corp"), "s-9").await.unwrap(), None);
    assert_eq!(audit_count(&store, T, "signup").await, 1);
}

pub(super) async fn the_last_way_to_sign_in_cannot_be_unlinked(store: Arc<dyn Store>) {
    // A user made from an identity alone: nothing else to sign in with.
    let user = bare_user("only@example.com");
    let first = identity(user.id, "corp", "s-1");
    store
        .create_user_with_identity(user.clone(), first.clone(), vec![audit("signup", Some(user.id))])
        .await
        .unwrap();
    let unlink = |id: Uuid| {
        let store = store.clone();
        let user_id = user.id;
        async move {
            store
                .unlink_identity(T, user_id, id, audit("identity_unlinked", Some(user_id)))
                .await
                .unwrap()
        }
    };
    assert_eq!(unlink(first.id).await, UnlinkOutcome::LastSignInMethod);
    assert_eq!(unlink(Uuid::now_v7()).await, UnlinkOutcome::NotFound);
    assert_eq!(audit_count(&store, T, "identity_unlinked").await, 0);

    // A second identity: either may go, then the other is the last.
    let second = identity(user.id, "github", "42");
    store
        .link_identity(second.clone(), audit("identity_linked", Some(user.id)))
        .await
        .unwrap();
    assert_eq!(unlink(first.id).await, UnlinkOutcome::Unlinked);
    assert_eq!(unlink(first.id).await, UnlinkOutcome::NotFound);
    assert_eq!(unlink(second.id).await, UnlinkOutcome::LastSignInMethod);
    assert_eq!(audit_count(&store, T, "identity_unlinked").await, 1);

    // An unverified email does not count; a verified one does.
    store
        .update_user(
            T,
            user.id,
            UserPatch {
                email_verified: Some(true),
                ..UserPatch::default()
            },
            audit("user_updated", Some(user.id)),
        )
        .await
        .unwrap();
    assert_eq!(unlink(second.id).await, UnlinkOutcome::Unlinked);
    assert!(store.list_identities(T, user.id).await.unwrap().is_empty());
}

pub(super) async fn a_password_a_verified_phone_or_a_passkey_each_allow_unlinking(store: Arc<dyn Store>) {
    // A password.
    let with_password = new_user("pw@example.com", None, &[]);
    let a = identity(with_password.id, "corp", "pw");
    store
        .create_user_with_identity(with_password.clone(), a.clone(), vec![])
        .await
        .unwrap();
    let outcome = store
        .unlink_identity(T, with_password.id, a.id, audit("identity_unlinked", None))
        .await
        .unwrap();
    assert_eq!(outcome, UnlinkOutcome::Unlinked);

    // A verified phone.
    let mut with_phone = bare_user("ph@example.com");
    with_phone.phone = Some(Phone::parse("+14155550123").unwrap());
    with_phone.phone_verified = true;
    let b = identity(with_phone.id, "corp", "ph");
    store
        .create_user_with_identity(with_phone.clone(), b.clone(), vec![])
        .await
        .unwrap();
    let outcome = store
        .unlink_identity(T, with_phone.id, b.id, audit("identity_unlinked", None))
        .await
        .unwrap();
    assert_eq!(outcome, UnlinkOutcome::Unlinked);

    // A passkey (a confirmed WebAuthn factor); a TOTP factor alone is no way in.
    let with_passkey = bare_user("pk@example.com");
    let c = identity(with_passkey.id, "corp", "pk");
    store
        .create_user_with_identity(with_passkey.clone(), c.clone(), vec![])
        .await
        .unwrap();
    let totp = NewFactor {
        id: Uuid::now_v7(),
        tenant_id: T,
        user_id: with_passkey.id,
        name: "phone".into(),
        now: NOW,
        material: NewFactorMaterial::Totp {
            sealed_secret: vec![1, 2, 3],
        },
    };
    let confirm = |user: Uuid| ConfirmFactor {
        now: NOW + 1,
        totp_step: None,
        recovery_code_hashes: vec![],
        audit: audit("mfa_enrolled", Some(user)),
    };
    store
        .add_confirmed_factor(totp, confirm(with_passkey.id))
        .await
        .unwrap();
    let outcome = store
        .unlink_identity(T, with_passkey.id, c.id, audit("identity_unlinked", None))
        .await
        .unwrap();
    assert_eq!(outcome, UnlinkOutcome::LastSignInMethod);
    let passkey = NewFactor {
        id: Uuid::now_v7(),
        tenant_id: T,
        user_id: with_passkey.id,
        name: "key".into(),
        now: NOW,
        material: NewFactorMaterial::WebAuthn {
            credential_id: "cred-pk".into(),
            credential: serde_json::json!({"cred": "cred-pk"}),
        },
    };
    store
        .add_confirmed_factor(passkey, confirm(with_passkey.id))
        .await
        .unwrap();
    let outcome = store
        .unlink_identity(T, with_passkey.id, c.id, audit("identity_unlinked", None))
        .await
        .unwrap();
    assert_eq!(outcome, UnlinkOutcome::Unlinked);

    // Another user's identity is not found.
    let d = identity(with_password.id, "corp", "pw2");
    store
        .link_identity(d.clone(), audit("identity_linked", None))
        .await
        .unwrap();
    let outcome = store
        .unlink_identity(T, with_phone.id, d.id, audit("identity_unlinked", None))
        .await
        .unwrap();
    assert_eq!(outcome, UnlinkOutcome::NotFound);
}

pub(super) async fn deleting_a_user_takes_their_identities(store: Arc<dyn Store>) {
    let ann = signed_up(&store, "ann@example.com", None).await.id;
    store
        .link_identity(identity(ann, "corp", "s-1"), audit("identity_linked", Some(ann)))
        .await
        .unwrap();
    store.delete_user(T, ann, audit("user_deleted", None)).await.unwrap();
    assert_eq!(store.find_identity(T, &pid("corp"), "s-1").await.unwrap(), None);
    // The subject is free again.
    let bob = signed_up(&store, "bob@example.com", None).await.id;
    store
        .link_identity(identity(bob, "corp", "s-1"), audit("identity_linked", Some(bob)))
        .await
        .unwrap();
}
