//! Tenant isolation at the store: every statement filters by the tenant it
//! is given, so another tenant's ids find nothing, whatever the service
//! checked before (the dashboard's counts and activity included). Through
//! the `Store` port alone, on SQLite (in memory) always and on PostgreSQL
//! too when the `postgres` feature is on (in a fresh schema that is dropped
//! after).

use std::sync::Arc;

use forge::domain::{Email, Permission, TenantSlug};
use forge::store::*;
use uuid::Uuid;

fn audit(tenant_id: Uuid, event: &'static str) -> NewAuditEvent {
    NewAuditEvent {
        tenant_id,
        at: 100,
        event: event.parse().expect("an event forge writes"),
        user_id: None,
        actor_id: None,
        ip: None,
        user_agent: None,
        detail: serde_json::json!({}),
    }
}

fn new_user(tenant_id: Uuid, email: &str) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        tenant_id,
        email: Some(Email::parse(email).unwrap()),
        email_verified: false,
        phone: None,
        phone_verified: false,
        password_hash: None,
        metadata: serde_json::json!({}),
        roles: vec![],
        now: 100,
    }
}

fn all(tenant_id: Uuid) -> UserQuery {
    UserQuery {
        tenant_id,
        seek: UserSeek::All { after: None },
        limit: 10,
    }
}

fn ids(users: Vec<User>) -> Vec<Uuid> {
    users.into_iter().map(|u| u.id).collect()
}

async fn every_statement_is_tenant_scoped(store: Arc<dyn Store>) {
    const DEFAULT: Uuid = DEFAULT_TENANT_ID;
    let acme = Uuid::now_v7();
    let (tenant, _) = store
        .create_tenant(
            NewTenant {
                id: acme,
                slug: TenantSlug::parse("acme").unwrap(),
                name: "Acme".into(),
                now: 100,
                admin: None,
                settings: Default::default(),
            },
            vec![audit(DEFAULT, "tenant_created")],
        )
        .await
        .unwrap();
    assert_eq!(tenant.id, acme);
    let here = store
        .create_user(new_user(DEFAULT, "a@example.com"), None, audit(DEFAULT, "user_created"))
        .await
        .unwrap();
    let there = store
        .create_user(new_user(acme, "a@example.com"), None, audit(acme, "user_created"))
        .await
        .unwrap();
    assert_eq!(ids(store.list_users(all(DEFAULT)).await.unwrap()), [here.id]);
    assert_eq!(ids(store.list_users(all(acme)).await.unwrap()), [there.id]);
    // acme's admin role cannot be given to default's user, nor default's to acme's.
    let wrong = store
        .assign_role(acme, here.id, "admin", audit(acme, "role_assigned"))
        .await;
    assert!(matches!(wrong, Err(StoreError::NotFound)), "{wrong:?}");
    let wrong = store
        .assign_role(DEFAULT, there.id, "admin", audit(DEFAULT, "role_assigned"))
        .await;
    assert!(matches!(wrong, Err(StoreError::NotFound)), "{wrong:?}");
    let wrong = store
        .remove_role(acme, here.id, "admin", audit(acme, "role_removed"))
        .await;
    assert!(matches!(wrong, Err(StoreError::NotFound)), "{wrong:?}");
    assert!(
        store
            .assign_role(acme, there.id, "admin", audit(acme, "role_assigned"))
            .await
            .unwrap()
    );
    // Built-in roles are untouchable whatever the caller checked.
    let perms = vec![Permission::parse("users:read").unwrap()];
    let r = store
        .set_role_permissions(acme, "admin", perms, audit(acme, "role_updated"))
        .await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    let r = store.delete_role(acme, "admin", audit(acme, "role_deleted")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    // Audit rows stay in their tenant.
    let log = |tenant_id| AuditQuery {
        tenant_id,
        user_id: None,
        event: Some("role_assigned".into()),
        before: None,
        limit: 10,
    };
    assert_eq!(store.list_audit(log(acme)).await.unwrap().len(), 1);
    assert!(store.list_audit(log(DEFAULT)).await.unwrap().is_empty());
    // So do the dashboard's counts and its activity buckets.
    let activity = |tenant_id| ActivityQuery {
        tenant_id,
        since: 0,
        bucket_secs: 3600,
        buckets: 1,
        successes: vec!["role_assigned"],
        failures: vec!["user_created"],
    };
    let bucket = |successes, failures| ActivityCount {
        bucket: 0,
        successes,
        failures,
    };
    assert_eq!(store.activity(activity(acme)).await.unwrap(), [bucket(1, 1)]);
    assert_eq!(store.activity(activity(DEFAULT)).await.unwrap(), [bucket(0, 1)]);
    for tenant_id in [acme, DEFAULT] {
        let counts = store.site_counts(tenant_id, 100).await.unwrap();
        assert_eq!(
            counts,
            SiteCounts {
                users: 1,
                ..SiteCounts::default()
            }
        );
    }
    // The default tenant cannot be deleted; acme takes its users along.
    let r = store.delete_tenant("default", audit(DEFAULT, "tenant_deleted")).await;
    assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
    store
        .delete_tenant("acme", audit(DEFAULT, "tenant_deleted"))
        .await
        .unwrap();
    assert!(store.get_user(acme, there.id).await.unwrap().is_none());
    assert!(store.list_users(all(acme)).await.unwrap().is_empty());
    assert!(store.get_user(DEFAULT, here.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_is_tenant_scoped() {
    crate::store_conformance::on_sqlite(every_statement_is_tenant_scoped).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_is_tenant_scoped() {
    crate::store_conformance::on_postgres(every_statement_is_tenant_scoped).await;
}
