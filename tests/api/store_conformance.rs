//! Store conformance: the same store-level checks on every compiled backend,
//! through the `Store` port alone. SQLite (in memory) always; PostgreSQL
//! too when the `postgres` feature is on (then `FORGE_TEST_DATABASE_URL` is
//! required, and the check runs in a fresh schema that is dropped after).
//!
//! What every adapter must agree on: conflicts name their field, the
//! single-statement races (refresh rotation, outbox claiming, first-start
//! keys and secrets) have exactly one winner under concurrency, secrets leave
//! the outbox when a message ends, listing pages by key, and the audit row of
//! a change lands with it.

use std::collections::HashSet;
use std::sync::Arc;

use forge::domain::settings::{SignupMode, SignupPolicy, TenantSettings};
use forge::domain::{Email, Identifier, Permission, Phone, RoleName, TenantSlug};
use forge::secret::Secret;
use forge::service::RequestMeta;
use forge::service::sessions::{RefreshPolicy, decide_refresh};
use forge::store::*;
use uuid::Uuid;

const T: Uuid = DEFAULT_TENANT_ID;
const NOW: i64 = 1_700_000_000;

fn audit(event: &'static str, user: Option<Uuid>) -> NewAuditEvent {
    NewAuditEvent {
        tenant_id: T,
        at: NOW,
        event,
        user_id: user,
        actor_id: user,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
        detail: serde_json::json!({"k": "v"}),
    }
}

fn new_user(email: &str, phone: Option<&str>, roles: &[&str]) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        tenant_id: T,
        email: Some(Email::parse(email).unwrap()),
        email_verified: false,
        phone: phone.map(|p| Phone::parse(p).unwrap()),
        phone_verified: false,
        password_hash: Some("$argon2id$hash".into()),
        metadata: serde_json::json!({"plan": "pro"}),
        roles: roles.iter().map(|r| RoleName::parse(r).unwrap()).collect(),
        now: NOW,
    }
}

fn session(refresh_hash: &str) -> NewSession {
    NewSession {
        id: Uuid::now_v7(),
        refresh_hash: refresh_hash.into(),
        now: NOW,
        expires_at: NOW + 3600,
        user_agent: Some("conformance".into()),
        ip: Some("127.0.0.1".into()),
    }
}

const MAX_AGE: i64 = 90 * 86_400;

/// Rotates `old` to `new` at `now` under the service's refresh rule: a
/// grace window of `grace` seconds, sessions that live `max_age` seconds.
async fn rotate(
    store: &Arc<dyn Store>,
    old: &str,
    new: &str,
    now: i64,
    grace: i64,
    max_age: i64,
) -> StoreResult<Rotation> {
    let req = RotateRefresh {
        tenant_id: T,
        old_hash: old.into(),
        new_hash: new.into(),
        now,
        ip: None,
        user_agent: None,
    };
    let policy = RefreshPolicy {
        now,
        grace_secs: grace,
        refresh_ttl: 3600,
        session_max_age: max_age,
    };
    let rule = Box::new(move |claim: &RefreshClaim| decide_refresh(claim, policy, &RequestMeta::default(), T));
    store.rotate_refresh(req, rule).await
}

fn key(kid: &str, state: KeyState) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        private_key: vec![1, 2, 3],
        public_key: vec![4, 5, 6],
        state,
        created_at: NOW,
        activated_at: None,
        retired_at: None,
    }
}

fn message(to: &str) -> NewOutboxMessage {
    NewOutboxMessage {
        tenant_id: T,
        channel: OutboxChannel::Sms,
        kind: MessageKind::Otp,
        recipient: to.into(),
        subject: "code".into(),
        body: Secret::new("your code is 123456"),
        code: Secret::new("123456"),
        next_attempt_at: NOW,
        created_at: NOW,
        expires_at: NOW + 300,
    }
}

fn conflict_field(e: StoreError) -> &'static str {
    match e {
        StoreError::Conflict { field } => field,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Every check, on one fresh store.
async fn conformance(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    accounts(&store).await;
    sessions(&store).await;
    admin(&store).await;
    outbox(&store).await;
    keys(&store).await;
}

async fn accounts(store: &Arc<dyn Store>) {
    assert_eq!(store.count_users().await.unwrap(), 0);
    let tenant = store.tenant_by_slug("default").await.unwrap().unwrap();
    assert_eq!(tenant.id, T);
    assert!(store.tenant_by_slug("nope").await.unwrap().is_none());

    let ann = new_user("ann@example.com", Some("+14155550100"), &["admin"]);
    let created = store
        .create_user(ann.clone(), None, audit("signup", Some(ann.id)))
        .await
        .unwrap();
    assert_eq!(created.roles, ["admin"]);
    assert_eq!(created.metadata["plan"], "pro");
    assert!(!created.disabled && !created.email_verified);
    assert_eq!(created.last_sign_in_at, None);

    let dup = new_user("ann@example.com", None, &[]);
    let e = store.create_user(dup, None, audit("signup", None)).await.unwrap_err();
    assert_eq!(conflict_field(e), "email");
    let dup = new_user("other@example.com", Some("+14155550100"), &[]);
    let e = store.create_user(dup, None, audit("signup", None)).await.unwrap_err();
    assert_eq!(conflict_field(e), "phone");
    let unknown_role = new_user("role@example.com", None, &["nosuchrole"]);
    assert!(matches!(
        store.create_user(unknown_role, None, audit("signup", None)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.count_users().await.unwrap(), 1, "failed creations left nothing");

    let found = store
        .find_for_login(T, &Identifier::parse("ANN@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.0.id, ann.id);
    assert_eq!(found.1.as_deref(), Some("$argon2id$hash"));
    let by_phone = store
        .find_for_login(T, &Identifier::parse("+14155550100").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_phone.0.id, ann.id);
    assert!(
        store.get_user(Uuid::now_v7(), ann.id).await.unwrap().is_none(),
        "tenant filter"
    );

    let patched = store
        .update_user(
            T,
            ann.id,
            UserPatch {
                email_verified: Some(true),
                metadata: Some(serde_json::json!({"plan": "free"})),
                password_hash: Some(Some("$argon2id$new".into())),
                now: NOW + 5,
                ..Default::default()
            },
            audit("user_updated", Some(ann.id)),
        )
        .await
        .unwrap();
    assert!(patched.email_verified);
    assert_eq!(patched.updated_at, NOW + 5);
    assert_eq!(patched.metadata["plan"], "free");
    assert_eq!(
        store.password_hash(T, ann.id).await.unwrap().as_deref(),
        Some("$argon2id$new")
    );

    let bob = new_user("bob@example.com", None, &[]);
    store
        .create_user(bob.clone(), None, audit("signup", None))
        .await
        .unwrap();
    let e = store
        .update_user(
            T,
            bob.id,
            UserPatch {
                email: Some(Some(Email::parse("ann@example.com").unwrap())),
                now: NOW,
                ..Default::default()
            },
            audit("user_updated", None),
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_field(e), "email");
    assert!(matches!(
        store
            .update_user(T, Uuid::now_v7(), UserPatch::default(), audit("x", None))
            .await,
        Err(StoreError::NotFound)
    ));

    let access = store.access_of(T, ann.id).await.unwrap().unwrap();
    assert_eq!(access.roles, ["admin"]);
    assert_eq!(access.permissions, ["*"]);
    let none = store.access_of(T, bob.id).await.unwrap().unwrap();
    assert!(none.roles.is_empty() && none.permissions.is_empty());
    assert!(store.access_of(T, Uuid::now_v7()).await.unwrap().is_none());
}

async fn sessions(store: &Arc<dyn Store>) {
    let cy = new_user("cy@example.com", None, &[]);
    store
        .create_user(cy.clone(), Some(session("r0")), audit("signup", None))
        .await
        .unwrap();
    let signed = store
        .sign_in(
            T,
            cy.id,
            SignIn {
                session: session("s0"),
                rehash: Some("$argon2id$rehashed".into()),
                verified: Some(IdentifierKind::Email),
            },
            audit("login", Some(cy.id)),
        )
        .await
        .unwrap();
    assert_eq!(signed.last_sign_in_at, Some(NOW));
    assert!(signed.email_verified);
    assert_eq!(
        store.password_hash(T, cy.id).await.unwrap().as_deref(),
        Some("$argon2id$rehashed")
    );
    assert_eq!(store.list_sessions(T, cy.id, NOW).await.unwrap().len(), 2);

    // Ten concurrent rotations of one token: exactly one wins.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            rotate(&store, "r0", "r1", NOW + 1, 10, MAX_AGE).await
        }));
    }
    let mut rotated = 0;
    for t in tasks {
        match t.await.unwrap().unwrap() {
            Rotation::Rotated { .. } => rotated += 1,
            Rotation::WithinGrace { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(rotated, 1);
    // Inside the grace window the same successor again; outside, reuse.
    assert!(matches!(
        rotate(store, "r0", "r1", NOW + 5, 10, MAX_AGE).await.unwrap(),
        Rotation::WithinGrace { .. }
    ));
    let Rotation::ReuseDetected { session_id, user_id } =
        rotate(store, "r0", "r1", NOW + 60, 10, MAX_AGE).await.unwrap()
    else {
        panic!("reuse not detected");
    };
    assert_eq!(user_id, cy.id);
    assert!(matches!(
        rotate(store, "r1", "r2", NOW + 61, 10, MAX_AGE).await.unwrap(),
        Rotation::Invalid
    ));
    assert!(matches!(
        rotate(store, "unknown", "x", NOW, 10, MAX_AGE).await.unwrap(),
        Rotation::Invalid
    ));
    let revoked = store.session_by_refresh(T, "r1").await.unwrap().unwrap();
    assert_eq!(revoked.id, session_id);
    assert!(revoked.revoked_at.is_some());

    let live = store.list_sessions(T, cy.id, NOW).await.unwrap();
    assert_eq!(live.len(), 1);
    assert!(
        !store.revoke_session(T, cy.id, session_id, NOW, None).await.unwrap(),
        "already revoked"
    );
    let mut a = audit("logout", Some(cy.id));
    a.at = NOW + 100;
    assert!(
        store
            .revoke_session(T, cy.id, live[0].id, a.at, Some(a.clone()))
            .await
            .unwrap()
    );
    let (sessions, _) = store.revoked_since(NOW + 100).await.unwrap();
    assert_eq!(sessions, [live[0].id]);

    // Disabling revokes every session and shows in `revoked_since`.
    store
        .sign_in(
            T,
            cy.id,
            SignIn {
                session: session("s1"),
                rehash: None,
                verified: None,
            },
            audit("login", Some(cy.id)),
        )
        .await
        .unwrap();
    let disabled = store
        .update_user(
            T,
            cy.id,
            UserPatch {
                disabled: Some(true),
                end_sessions: EndSessions::All,
                now: NOW + 200,
                ..Default::default()
            },
            audit("user_disabled", Some(cy.id)),
        )
        .await
        .unwrap();
    assert!(disabled.disabled);
    assert!(store.list_sessions(T, cy.id, NOW).await.unwrap().is_empty());
    let (_, users) = store.revoked_since(NOW + 200).await.unwrap();
    assert_eq!(users, [cy.id]);

    // The credential epoch moves with every change that says it ends
    // sessions, and with nothing else.
    let epoch = |u: Option<User>| u.unwrap().credential_epoch;
    let fay = new_user("fay@example.com", None, &[]);
    let created = store
        .create_user(fay.clone(), Some(session("f0")), audit("signup", None))
        .await
        .unwrap();
    assert_eq!(created.credential_epoch, 0);
    let patched = store
        .update_user(
            T,
            fay.id,
            UserPatch {
                metadata: Some(serde_json::json!({})),
                now: NOW,
                ..Default::default()
            },
            audit("user_updated", None),
        )
        .await
        .unwrap();
    assert_eq!(patched.credential_epoch, 0, "a profile change keeps sessions");
    assert!(
        store
            .revoke_session(T, fay.id, created_session_id(store, fay.id).await, NOW, None)
            .await
            .unwrap()
    );
    assert_eq!(
        epoch(store.get_user(T, fay.id).await.unwrap()),
        0,
        "one sign-out keeps the others"
    );
    store.revoke_sessions(T, fay.id, None, NOW, None).await.unwrap();
    assert_eq!(
        epoch(store.get_user(T, fay.id).await.unwrap()),
        1,
        "sign-out everywhere"
    );
    let new_password = UserPatch {
        password_hash: Some(Some("$argon2id$new".into())),
        end_sessions: EndSessions::Epoch,
        now: NOW,
        ..Default::default()
    };
    let changed = store
        .update_user(T, fay.id, new_password, audit("password_changed", None))
        .await
        .unwrap();
    assert_eq!(changed.credential_epoch, 2, "a new password");
    let disable = UserPatch {
        disabled: Some(true),
        end_sessions: EndSessions::All,
        now: NOW,
        ..Default::default()
    };
    let disabled = store
        .update_user(T, fay.id, disable, audit("user_disabled", None))
        .await
        .unwrap();
    assert_eq!(disabled.credential_epoch, 3, "disable");
    let enable = UserPatch {
        disabled: Some(false),
        now: NOW,
        ..Default::default()
    };
    let enabled = store
        .update_user(T, fay.id, enable, audit("user_enabled", None))
        .await
        .unwrap();
    assert_eq!(
        enabled.credential_epoch, 3,
        "enabling again does not revive old sessions"
    );

    // The absolute lifetime: past it a session does not refresh, and a
    // successor never outlives it.
    let gus = new_user("gus@example.com", None, &[]);
    store
        .create_user(gus.clone(), Some(session("g0")), audit("signup", None))
        .await
        .unwrap();
    let Rotation::Rotated { .. } = rotate(store, "g0", "g1", NOW + 10, 10, 100).await.unwrap() else {
        panic!("a session younger than its maximum age refreshes");
    };
    let live = store.list_sessions(T, gus.id, NOW + 10).await.unwrap();
    assert_eq!(live[0].expires_at, NOW + 100, "capped at created_at + max age");
    assert!(matches!(
        rotate(store, "g1", "g2", NOW + 60, 10, 50).await.unwrap(),
        Rotation::Invalid
    ));

    let dee = new_user("dee@example.com", None, &[]);
    store
        .create_user(dee.clone(), Some(session("d0")), audit("signup", None))
        .await
        .unwrap();
    let live = store.delete_user(T, dee.id, audit("user_deleted", None)).await.unwrap();
    assert_eq!(live.len(), 1);
    assert!(store.get_user(T, dee.id).await.unwrap().is_none());
    // The deletion outlives the cascade: the deny-list refill still sees it.
    let (_, users) = store.revoked_since(NOW).await.unwrap();
    assert!(users.contains(&dee.id), "{users:?}");
    assert!(matches!(
        store.delete_user(T, dee.id, audit("user_deleted", None)).await,
        Err(StoreError::NotFound)
    ));
}

async fn created_session_id(store: &Arc<dyn Store>, user: Uuid) -> Uuid {
    store.list_sessions(T, user, NOW).await.unwrap()[0].id
}

async fn admin(store: &Arc<dyn Store>) {
    let perms = |p: &[&str]| p.iter().map(|s| Permission::parse(s).unwrap()).collect::<Vec<_>>();
    let role = store
        .create_role(
            NewRole {
                id: Uuid::now_v7(),
                tenant_id: T,
                name: RoleName::parse("editor").unwrap(),
                permissions: perms(&["users:read"]),
                now: NOW,
            },
            audit("role_created", None),
        )
        .await
        .unwrap();
    assert_eq!(role.permissions, ["users:read"]);
    assert!(!role.builtin);
    let e = store
        .create_role(
            NewRole {
                id: Uuid::now_v7(),
                tenant_id: T,
                name: RoleName::parse("editor").unwrap(),
                permissions: vec![],
                now: NOW,
            },
            audit("role_created", None),
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_field(e), "name");
    assert!(matches!(
        store
            .set_role_permissions(T, "admin", perms(&["users:read"]), audit("role_updated", None))
            .await,
        Err(StoreError::NotFound)
    ));
    let names: Vec<String> = store.list_roles(T).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["admin", "editor"]);

    let eve = new_user("eve@example.com", Some("+14155550111"), &[]);
    store
        .create_user(eve.clone(), None, audit("signup", None))
        .await
        .unwrap();
    assert!(
        store
            .assign_role(T, eve.id, "editor", audit("role_assigned", None))
            .await
            .unwrap()
    );
    assert!(
        !store
            .assign_role(T, eve.id, "editor", audit("role_assigned", None))
            .await
            .unwrap()
    );
    assert!(matches!(
        store
            .assign_role(T, eve.id, "ghost", audit("role_assigned", None))
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .set_role_permissions(
            T,
            "editor",
            perms(&["users:read", "audit:read"]),
            audit("role_updated", None),
        )
        .await
        .unwrap();
    let access = store.access_of(T, eve.id).await.unwrap().unwrap();
    assert_eq!(access.permissions, ["audit:read", "users:read"]);
    assert!(
        store
            .remove_role(T, eve.id, "editor", audit("role_removed", None))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_role(T, eve.id, "editor", audit("role_removed", None))
            .await
            .unwrap()
    );
    store
        .assign_role(T, eve.id, "editor", audit("role_assigned", None))
        .await
        .unwrap();
    let holders = store
        .delete_role(T, "editor", audit("role_deleted", None))
        .await
        .unwrap();
    assert_eq!(holders, [eve.id]);
    assert!(store.access_of(T, eve.id).await.unwrap().unwrap().roles.is_empty());

    // Keyset listing: creation order, and prefix searches in key order.
    for i in 0..5 {
        let u = new_user(&format!("page{i}@example.com"), Some(&format!("+1415555020{i}")), &[]);
        store.create_user(u, None, audit("signup", None)).await.unwrap();
    }
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_users(UserQuery {
                tenant_id: T,
                seek: UserSeek::All { after },
                limit: 3,
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|u| u.id);
        all.extend(page);
    }
    let ids: Vec<Uuid> = all.iter().map(|u| u.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len() as u64, store.count_users().await.unwrap());
    let page = store
        .list_users(UserQuery {
            tenant_id: T,
            seek: UserSeek::EmailPrefix {
                prefix: "page".into(),
                after: Some("page1@example.com".into()),
            },
            limit: 2,
        })
        .await
        .unwrap();
    let emails: Vec<&str> = page.iter().map(|u| u.email.as_ref().unwrap().as_str()).collect();
    assert_eq!(emails, ["page2@example.com", "page3@example.com"]);
    let page = store
        .list_users(UserQuery {
            tenant_id: T,
            seek: UserSeek::PhonePrefix {
                prefix: "+14155550".into(),
                after: None,
            },
            limit: 10,
        })
        .await
        .unwrap();
    let phones: Vec<&str> = page.iter().map(|u| u.phone.as_ref().unwrap().as_str()).collect();
    let mut sorted = phones.clone();
    sorted.sort();
    assert_eq!(phones, sorted);
    assert!(phones.contains(&"+14155550111"));

    // Tenants: created with their admin role, unique slugs, deleted with
    // everything they own.
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
                },
            },
            vec![audit("tenant_created", None)],
        )
        .await
        .unwrap();
    assert_eq!(tenant.slug.as_str(), "acme");
    assert_eq!(first_admin.unwrap().roles, ["admin"]);
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
    // Settings: stored as created, parts replaced whole, others kept.
    let stored = store.tenant_settings(acme).await.unwrap().unwrap();
    assert_eq!(stored.signup.as_ref().unwrap().domains, ["acme.test"]);
    assert_eq!(store.tenant_settings(T).await.unwrap(), Some(TenantSettings::default()));
    assert!(store.tenant_settings(Uuid::now_v7()).await.unwrap().is_none());
    let closed = TenantSettings {
        signup: Some(SignupPolicy::parse(SignupMode::Closed, &[]).unwrap()),
    };
    let updated = store
        .update_tenant_settings(acme, closed.clone(), vec![audit("settings_updated", None)])
        .await
        .unwrap();
    assert_eq!(updated, closed);
    assert_eq!(store.tenant_settings(acme).await.unwrap(), Some(closed));
    let kept = store
        .update_tenant_settings(acme, TenantSettings::default(), vec![])
        .await
        .unwrap();
    assert_eq!(kept.signup.unwrap().mode, SignupMode::Closed, "an absent part is kept");
    assert!(matches!(
        store
            .update_tenant_settings(Uuid::now_v7(), TenantSettings::default(), vec![])
            .await,
        Err(StoreError::NotFound)
    ));
    let slugs: Vec<String> = store
        .list_tenants(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.slug.as_str().to_string())
        .collect();
    assert_eq!(slugs, ["default", "acme"]);
    assert_eq!(
        store.access_of(acme, boss.id).await.unwrap().unwrap().permissions,
        ["*"]
    );
    store
        .sign_in(
            acme,
            boss.id,
            SignIn {
                session: session("acme-boss"),
                rehash: None,
                verified: None,
            },
            NewAuditEvent {
                tenant_id: acme,
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
    assert!(store.get_user(acme, boss.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_tenant("default", audit("tenant_deleted", None)).await,
        Err(StoreError::NotFound)
    ));

    // Audit: newest first, filtered, paged, purged in batches.
    let logins = store
        .list_audit(AuditQuery {
            tenant_id: T,
            user_id: None,
            event: Some("role_assigned".into()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        logins.len(),
        2,
        "only the assignments that changed something were audited"
    );
    assert!(logins[0].id > logins[1].id);
    assert_eq!(logins[0].detail["k"], "v");
    let older = store
        .list_audit(AuditQuery {
            tenant_id: T,
            user_id: None,
            event: Some("role_assigned".into()),
            before: Some(logins[0].id),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
    let mut old = audit("ancient", None);
    old.at = 10;
    for _ in 0..3 {
        store.record_audit(old.clone()).await.unwrap();
    }
    assert_eq!(store.purge_audit(11, 2).await.unwrap(), 2);
    assert_eq!(store.purge_audit(11, 2).await.unwrap(), 1);
    assert_eq!(store.purge_audit(11, 2).await.unwrap(), 0);

    let counts = store.site_counts(T, NOW).await.unwrap();
    assert_eq!(counts.users, store.count_users().await.unwrap());
    let activity = store
        .activity(ActivityQuery {
            tenant_id: T,
            since: NOW - 10,
            bucket_secs: 3600,
            buckets: 2,
            successes: vec!["login"],
            failures: vec!["login_failed"],
        })
        .await
        .unwrap();
    assert_eq!(activity.len(), 1);
    assert_eq!(
        (activity[0].bucket, activity[0].successes, activity[0].failures),
        (0, 2, 0)
    );
}

async fn outbox(store: &Arc<dyn Store>) {
    for i in 0..30 {
        store.enqueue(message(&format!("+1415555{i:04}"))).await.unwrap();
    }
    assert_eq!(store.pending_count().await.unwrap(), 30);
    // Six claimers at once: every message leased exactly once.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due(NOW, 4, 60).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    assert_eq!(claimed.len(), 30, "no message claimed twice");
    assert_eq!(claimed.iter().collect::<HashSet<_>>().len(), 30);
    assert!(store.claim_due(NOW + 30, 10, 60).await.unwrap().is_empty(), "leased");

    let (first, second, third) = (claimed[0], claimed[1], claimed[2]);
    store.mark_delivered(first, NOW).await.unwrap();
    store.mark_failed(second, "refused", NOW).await.unwrap();
    store.release(third, NOW).await.unwrap();
    let page = store.list(T, None, 100, None).await.unwrap();
    let by_id = |id: Uuid| page.iter().find(|m| m.id == id).unwrap();
    assert_eq!(by_id(first).status, OutboxStatus::Delivered);
    assert!(by_id(first).body.is_none() && by_id(first).code.is_none(), "erased");
    assert_eq!(by_id(second).status, OutboxStatus::Failed);
    assert!(
        by_id(second).body.is_some(),
        "a failed message keeps its code until it expires"
    );
    assert_eq!(by_id(second).last_error.as_deref(), Some("refused"));
    assert_eq!(by_id(third).status, OutboxStatus::Pending);
    assert_eq!(by_id(third).attempts, 0, "a release does not count the attempt");
    assert_eq!(
        store
            .list(T, Some(OutboxStatus::Failed), 100, None)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store.resend(T, second, NOW).await.unwrap());
    assert!(
        !store.resend(T, second, NOW).await.unwrap(),
        "only a failed message is resent"
    );

    // A lease that ran out comes back; the claim counts another attempt.
    // This time a long lease: still held when the messages expire.
    let again = store.claim_due(NOW + 61, 100, 1000).await.unwrap();
    assert_eq!(again.len(), 29, "27 stale leases, the released one and the resent one");
    assert!(
        again
            .iter()
            .all(|m| m.attempts == if m.id == second || m.id == third { 1 } else { 2 })
    );
    store
        .mark_retry(again[0].id, NOW + 100, "timeout", NOW + 61)
        .await
        .unwrap();
    assert!(
        store
            .list(T, Some(OutboxStatus::Failed), 100, None)
            .await
            .unwrap()
            .is_empty()
    );
    let newest = store.list(T, None, 5, None).await.unwrap();
    let next = store.list(T, None, 5, Some(newest[4].id)).await.unwrap();
    assert!(newest.iter().zip(newest.iter().skip(1)).all(|(a, b)| a.id > b.id));
    assert!(next[0].id < newest[4].id);
    // Expiry fails and erases what no live lease holds.
    let expired = store.expire(NOW + 400).await.unwrap();
    assert_eq!(
        expired, 1,
        "the message waiting for its retry; the leased ones are their workers'"
    );
    let expired = store.expire(NOW + 1100).await.unwrap();
    assert_eq!(expired, 28, "their leases ran out too");
    assert_eq!(store.pending_count().await.unwrap(), 0);
    assert!(
        store
            .list(T, None, 100, None)
            .await
            .unwrap()
            .iter()
            .all(|m| m.body.is_none())
    );
}

async fn keys(store: &Arc<dyn Store>) {
    // Instances starting together: one key per state, one secret.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let keys = store
                .insert_signing_key_if_absent(key(&format!("current-{i}"), KeyState::Current))
                .await
                .unwrap();
            let secret = store.server_secret("shared", vec![i as u8], NOW).await.unwrap();
            (keys, secret)
        }));
    }
    let mut secrets = HashSet::new();
    for t in tasks {
        let (keys, secret) = t.await.unwrap();
        assert_eq!(keys.iter().filter(|k| k.state == KeyState::Current).count(), 1);
        secrets.insert(secret);
    }
    assert_eq!(secrets.len(), 1);
    store
        .insert_signing_key_if_absent(key("next-1", KeyState::Next))
        .await
        .unwrap();
    let stored = store.signing_keys().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored.iter().find(|k| k.state == KeyState::Next).unwrap().public_key,
        [4, 5, 6]
    );
    let KeyRotation::Rotated(rotated) = store
        .rotate_signing_keys(
            key("next-2", KeyState::Next),
            NOW + 10,
            Some(NOW + 5),
            audit("key_rotated", None),
        )
        .await
        .unwrap()
    else {
        panic!("not rotated");
    };
    let states: Vec<(String, KeyState)> = rotated.iter().map(|k| (k.kid.clone(), k.state.clone())).collect();
    assert!(states.contains(&("next-1".into(), KeyState::Current)));
    assert!(states.contains(&("next-2".into(), KeyState::Next)));
    assert_eq!(states.iter().filter(|(_, s)| *s == KeyState::Retired).count(), 1);
    assert!(matches!(
        store
            .rotate_signing_keys(
                key("next-3", KeyState::Next),
                NOW + 20,
                Some(NOW - 1),
                audit("key_rotated", None)
            )
            .await
            .unwrap(),
        KeyRotation::NextTooYoung { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_conforms() {
    let store = forge::store::sqlite::SqliteStore::open("sqlite::memory:", 4).unwrap();
    conformance(Arc::new(store)).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_conforms() {
    use forge::testing::{TestServer, shared};
    assert!(
        std::env::var(shared::DATABASE_ENV).is_ok(),
        "{} is needed for the PostgreSQL store tests",
        shared::DATABASE_ENV
    );
    let config = TestServer::config();
    let backing = shared::claim(&config).await;
    let url = config.database.url.clone();
    let store = tokio::task::spawn_blocking(move || forge::store::postgres::PgStore::open(&url, 8))
        .await
        .unwrap()
        .unwrap();
    conformance(Arc::new(store)).await;
    // The schema goes with the last handle, off the async workers.
    tokio::task::spawn_blocking(move || drop(backing)).await.unwrap();
}

/// `migrations/sqlite` and `migrations/postgres` hold the same versions
/// under the same names, so both backends are always at the same schema.
#[test]
fn migration_folders_match() {
    let names = |dir: &str| {
        let mut v: Vec<String> = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        v.sort();
        v
    };
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("postgres"));
}
