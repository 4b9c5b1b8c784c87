//! Tenants: creation with a first admin, unique slugs, settings, listing
//! and deletion with everything they own.

use super::*;
use forge::domain::mfa_policy::{DEFAULT_GRACE, MfaPolicy, MfaRequirement};

/// The `acme` tenant, signing up by domain, with `boss` as its first admin.
async fn create_acme(store: &Arc<dyn Store>) -> (Tenant, Option<User>, NewUser) {
    let acme = Uuid::now_v7();
    let mut boss = new_user("boss@acme.test", None, &["admin"]);
    boss.tenant_id = acme;
    let (tenant, first_admin) = store
        .create_tenant(
            NewTenant {
                id: acme,
                slug: TenantSlug::parse("acme").unwrap(),
                name: "Acme".into(),
                now: NOW,
                admin: Some(boss.clone()),
                settings: TenantSettings {
                    signup: Some(SignupPolicy::parse(SignupMode::Domains, &["acme.test".into()]).unwrap()),
                    ..TenantSettings::default()
                },
            },
            vec![audit("tenant_created", None)],
        )
        .await
        .unwrap();
    (tenant, first_admin, boss)
}

pub(super) async fn create_tenant_creates_its_admin_role_and_first_admin(store: Arc<dyn Store>) {
    let (tenant, first_admin, boss) = create_acme(&store).await;
    assert_eq!(tenant.slug.as_str(), "acme");
    assert_eq!(first_admin.unwrap().roles, ["admin"]);
    assert_eq!(
        store.access_of(tenant.id, boss.id).await.unwrap().unwrap().permissions,
        ["*"]
    );
}

pub(super) async fn create_tenant_with_a_taken_slug_conflicts_on_slug(store: Arc<dyn Store>) {
    create_acme(&store).await;
    let e = store
        .create_tenant(
            NewTenant {
                id: Uuid::now_v7(),
                slug: TenantSlug::parse("acme").unwrap(),
                name: "Again".into(),
                now: NOW,
                admin: None,
                settings: TenantSettings::default(),
            },
            vec![],
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_field(e), "slug");
}

pub(super) async fn tenant_settings_are_stored_as_created(store: Arc<dyn Store>) {
    let (acme, ..) = create_acme(&store).await;
    let stored = store.tenant_settings(acme.id).await.unwrap().unwrap();
    assert_eq!(stored.signup.as_ref().unwrap().domains, ["acme.test"]);
    assert_eq!(store.tenant_settings(T).await.unwrap(), Some(TenantSettings::default()));
    assert!(store.tenant_settings(Uuid::now_v7()).await.unwrap().is_none());
}

pub(super) async fn updating_tenant_settings_replaces_the_given_parts_and_keeps_the_rest(store: Arc<dyn Store>) {
    let (acme, ..) = create_acme(&store).await;
    let closed = TenantSettings {
        signup: Some(SignupPolicy::parse(SignupMode::Closed, &[]).unwrap()),
        ..TenantSettings::default()
    };
    let updated = store
        .update_tenant_settings(acme.id, closed.clone(), vec![audit("settings_updated", None)])
        .await
        .unwrap();
    assert_eq!(updated, closed);
    assert_eq!(store.tenant_settings(acme.id).await.unwrap(), Some(closed));
    let kept = store
        .update_tenant_settings(acme.id, TenantSettings::default(), vec![])
        .await
        .unwrap();
    assert_eq!(kept.signup.unwrap().mode, SignupMode::Closed, "an absent part is kept");
    // The mfa part is stored beside signup, neither undoing the other.
    let admins = MfaPolicy::parse(MfaRequirement::Roles, &["admin".into()], DEFAULT_GRACE)
        .unwrap()
        .changed_from(&MfaPolicy::default(), 1_000);
    let mfa = TenantSettings {
        mfa: Some(admins.clone()),
        ..TenantSettings::default()
    };
    let both = store.update_tenant_settings(acme.id, mfa, vec![]).await.unwrap();
    assert_eq!(both.signup.as_ref().unwrap().mode, SignupMode::Closed);
    assert_eq!(both.mfa.as_ref(), Some(&admins));
    let read = store.tenant_settings(acme.id).await.unwrap().unwrap();
    assert_eq!(read, both);
    assert_eq!(read.mfa_policy().since, Some(1_000));
    // So is the federation part.
    let federation = TenantSettings {
        federation: Some(FederationSettings {
            auto_link_verified_email: true,
        }),
        ..TenantSettings::default()
    };
    let all = store.update_tenant_settings(acme.id, federation, vec![]).await.unwrap();
    assert_eq!(all.parts(), ["signup", "mfa", "federation"]);
    let read = store.tenant_settings(acme.id).await.unwrap().unwrap();
    assert!(read.federation().auto_link_verified_email);
    assert_eq!(read.mfa.as_ref(), Some(&admins));
    assert!(matches!(
        store
            .update_tenant_settings(Uuid::now_v7(), TenantSettings::default(), vec![])
            .await,
        Err(StoreError::NotFound)
    ));
}

pub(super) async fn tenants_list_in_creation_order(store: Arc<dyn Store>) {
    create_acme(&store).await;
    let slugs: Vec<String> = store
        .list_tenants(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.slug.as_str().to_string())
        .collect();
    assert_eq!(slugs, ["default", "acme"]);
}

pub(super) async fn deleting_a_tenant_takes_everything_it_owns_but_not_the_default(store: Arc<dyn Store>) {
    let (acme, _, boss) = create_acme(&store).await;
    store
        .sign_in(
            acme.id,
            boss.id,
            SignIn {
                session: session("acme-boss"),
                rehash: None,
                verified: None,
            },
            NewAuditEvent {
                tenant_id: acme.id,
                ..audit("login", Some(boss.id))
            },
        )
        .await
        .unwrap();
    let deleted = store
        .delete_tenant("acme", audit("tenant_deleted", None))
        .await
        .unwrap();
    assert_eq!(deleted.live_sessions.len(), 1);
    assert!(store.tenant_by_slug("acme").await.unwrap().is_none());
    assert!(store.get_user(acme.id, boss.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_tenant("default", audit("tenant_deleted", None)).await,
        Err(StoreError::NotFound)
    ));
}
