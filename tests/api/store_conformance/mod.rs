//! Store conformance: the same store-level checks on every compiled backend,
//! through the `Store` port alone. Each behaviour is its own test on a fresh
//! store, once per backend (`sqlite::<behaviour>`, `postgres::<behaviour>`),
//! so one failure hides none of the others. SQLite (in memory) always;
//! PostgreSQL too when the `postgres` feature is on (then
//! `FORGE_TEST_DATABASE_URL` is required, and each test runs in a fresh
//! schema that is dropped after).
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

fn rotate(old: &str, new: &str, now: i64, grace: i64) -> RotateRefresh {
    RotateRefresh {
        tenant_id: T,
        old_hash: old.into(),
        new_hash: new.into(),
        now,
        grace_secs: grace,
        new_expires_at: now + 3600,
        session_max_age: 90 * 86_400,
        ip: None,
        user_agent: None,
    }
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

fn perms(p: &[&str]) -> Vec<Permission> {
    p.iter().map(|s| Permission::parse(s).unwrap()).collect()
}

/// Creates a user, with a first session holding `refresh` when given.
async fn signed_up(store: &Arc<dyn Store>, email: &str, refresh: Option<&str>) -> NewUser {
    let user = new_user(email, None, &[]);
    store
        .create_user(user.clone(), refresh.map(session), audit("signup", None))
        .await
        .unwrap();
    user
}

async fn sign_in(store: &Arc<dyn Store>, user: Uuid, refresh: &str) -> User {
    store
        .sign_in(
            T,
            user,
            SignIn {
                session: session(refresh),
                rehash: None,
                verified: None,
            },
            audit("login", Some(user)),
        )
        .await
        .unwrap()
}

async fn patch(store: &Arc<dyn Store>, user: Uuid, patch: UserPatch) -> User {
    store
        .update_user(T, user, patch, audit("user_updated", None))
        .await
        .unwrap()
}

async fn created_session_id(store: &Arc<dyn Store>, user: Uuid) -> Uuid {
    store.list_sessions(T, user, NOW).await.unwrap()[0].id
}

async fn create_editor(store: &Arc<dyn Store>) -> Role {
    store
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
        .unwrap()
}

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
                },
            },
            vec![audit("tenant_created", None)],
        )
        .await
        .unwrap();
    (tenant, first_admin, boss)
}

/// Queues `n` messages and leases them all at `NOW` for `lease_secs`.
async fn claimed(store: &Arc<dyn Store>, n: u32, lease_secs: i64) -> Vec<OutboxMessage> {
    for i in 0..n {
        store.enqueue(message(&format!("+1415555{i:04}"))).await.unwrap();
    }
    let batch = store.claim_due(NOW, n, lease_secs).await.unwrap();
    assert_eq!(batch.len(), n as usize);
    batch
}

/// One test per behaviour and backend, so the first failure hides nothing:
/// `sqlite::<check>` always, `postgres::<check>` with the `postgres`
/// feature, each on a fresh store. The checks are plain async functions
/// below (so rustfmt and the compiler treat them as ordinary code); one left
/// out of this list is dead code, which clippy's `-D warnings` refuses.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_sqlite(super::$check).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_postgres(super::$check).await;
                }
            )*
        }
    };
}

conformance! {
    // tenants, users, access
    a_fresh_store_answers_and_holds_only_the_default_tenant,
    create_user_returns_the_user_with_roles_and_metadata,
    create_user_with_a_taken_email_or_phone_conflicts_on_that_field,
    create_user_with_an_unknown_role_is_not_found_and_leaves_nothing,
    find_for_login_matches_the_email_in_any_case_and_the_phone,
    get_user_finds_a_user_only_in_its_tenant,
    update_user_applies_the_patch_and_the_new_password,
    update_user_to_a_taken_email_conflicts_on_email,
    update_user_of_an_unknown_user_is_not_found,
    access_of_gives_the_roles_and_permissions_of_a_user,
    // sessions and refresh tokens
    sign_in_records_the_time_the_verification_and_the_rehash,
    concurrent_refreshes_of_one_token_rotate_it_once,
    a_refresh_within_the_grace_window_gets_the_same_successor,
    a_refresh_reused_after_the_grace_window_revokes_the_session,
    an_unknown_refresh_token_is_invalid,
    revoking_a_session_counts_once_and_shows_in_revoked_since,
    disabling_a_user_revokes_every_session,
    profile_changes_and_single_sign_outs_keep_the_credential_epoch,
    every_event_that_ends_all_sessions_moves_the_credential_epoch,
    a_refreshed_session_never_outlives_its_maximum_age,
    a_session_past_its_maximum_age_does_not_refresh,
    deleting_a_user_returns_its_live_sessions_and_is_remembered,
    // roles
    create_role_returns_a_custom_role,
    create_role_with_a_taken_name_conflicts_on_name,
    the_builtin_admin_role_cannot_be_changed,
    assign_and_remove_role_report_whether_anything_changed,
    assigning_an_unknown_role_is_not_found,
    new_role_permissions_reach_its_holders,
    deleting_a_role_returns_its_holders_and_takes_it_from_them,
    only_role_assignments_that_change_something_are_audited,
    // user listing
    listing_all_users_pages_in_creation_order,
    listing_by_email_prefix_pages_in_email_order,
    listing_by_phone_prefix_is_in_phone_order,
    // tenants
    create_tenant_creates_its_admin_role_and_first_admin,
    create_tenant_with_a_taken_slug_conflicts_on_slug,
    tenant_settings_are_stored_as_created,
    updating_tenant_settings_replaces_the_given_parts_and_keeps_the_rest,
    tenants_list_in_creation_order,
    deleting_a_tenant_takes_everything_it_owns_but_not_the_default,
    // audit and dashboard
    audit_lists_newest_first_by_event_and_pages_before_an_id,
    purging_audit_deletes_old_rows_in_batches,
    dashboard_counts_users_and_sign_ins_per_bucket,
    // outbox
    concurrent_claimers_lease_every_message_exactly_once,
    a_delivered_message_is_erased,
    a_failed_message_keeps_its_code_and_error_until_it_expires,
    a_released_message_is_pending_again_without_the_attempt,
    only_a_failed_message_is_resent,
    stale_leases_released_and_resent_messages_are_claimed_again,
    expiry_fails_and_erases_what_no_live_lease_holds,
    outbox_list_pages_newest_first,
    // signing keys and server secrets
    instances_starting_together_agree_on_one_current_key_and_one_secret,
    a_next_key_is_added_beside_the_current_one,
    rotation_promotes_next_retires_current_and_adds_a_new_next,
    rotation_refuses_a_next_key_younger_than_not_after,
}

async fn on_sqlite<F: Future<Output = ()>>(check: impl FnOnce(Arc<dyn Store>) -> F) {
    let store = forge::store::sqlite::SqliteStore::open("sqlite::memory:", 4).unwrap();
    check(Arc::new(store)).await;
}

/// Runs the check in a fresh schema. The check runs as a task of its own so
/// that, when it fails, the schema is still dropped (off the async workers,
/// where the sync client may not run) before the failure is passed on.
#[cfg(feature = "postgres")]
async fn on_postgres<F>(check: impl FnOnce(Arc<dyn Store>) -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
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
    let store: Arc<dyn Store> = Arc::new(store);
    let outcome = tokio::spawn(check(store.clone())).await;
    // The schema goes with the last handle, off the async workers.
    tokio::task::spawn_blocking(move || drop((store, backing)))
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

// ---- tenants, users, access ----

async fn a_fresh_store_answers_and_holds_only_the_default_tenant(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    let tenant = store.tenant_by_slug("default").await.unwrap().unwrap();
    assert_eq!(tenant.id, T);
    assert!(store.tenant_by_slug("nope").await.unwrap().is_none());
}

async fn create_user_returns_the_user_with_roles_and_metadata(store: Arc<dyn Store>) {
    let ann = new_user("ann@example.com", Some("+14155550100"), &["admin"]);
    let created = store
        .create_user(ann.clone(), None, audit("signup", Some(ann.id)))
        .await
        .unwrap();
    assert_eq!(created.roles, ["admin"]);
    assert_eq!(created.metadata["plan"], "pro");
    assert!(!created.disabled && !created.email_verified);
    assert_eq!(created.last_sign_in_at, None);
}

async fn create_user_with_a_taken_email_or_phone_conflicts_on_that_field(store: Arc<dyn Store>) {
    let ann = new_user("ann@example.com", Some("+14155550100"), &["admin"]);
    store.create_user(ann, None, audit("signup", None)).await.unwrap();
    let dup = new_user("ann@example.com", None, &[]);
    let e = store.create_user(dup, None, audit("signup", None)).await.unwrap_err();
    assert_eq!(conflict_field(e), "email");
    let dup = new_user("other@example.com", Some("+14155550100"), &[]);
    let e = store.create_user(dup, None, audit("signup", None)).await.unwrap_err();
    assert_eq!(conflict_field(e), "phone");
    assert_eq!(store.count_users().await.unwrap(), 1, "failed creations left nothing");
}

async fn create_user_with_an_unknown_role_is_not_found_and_leaves_nothing(store: Arc<dyn Store>) {
    let unknown_role = new_user("role@example.com", None, &["nosuchrole"]);
    assert!(matches!(
        store.create_user(unknown_role, None, audit("signup", None)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.count_users().await.unwrap(), 0, "failed creations left nothing");
}

async fn find_for_login_matches_the_email_in_any_case_and_the_phone(store: Arc<dyn Store>) {
    let ann = new_user("ann@example.com", Some("+14155550100"), &["admin"]);
    store
        .create_user(ann.clone(), None, audit("signup", Some(ann.id)))
        .await
        .unwrap();
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
}

async fn get_user_finds_a_user_only_in_its_tenant(store: Arc<dyn Store>) {
    let ann = signed_up(&store, "ann@example.com", None).await;
    assert!(store.get_user(T, ann.id).await.unwrap().is_some());
    assert!(
        store.get_user(Uuid::now_v7(), ann.id).await.unwrap().is_none(),
        "tenant filter"
    );
}

async fn update_user_applies_the_patch_and_the_new_password(store: Arc<dyn Store>) {
    let ann = signed_up(&store, "ann@example.com", None).await;
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
}

async fn update_user_to_a_taken_email_conflicts_on_email(store: Arc<dyn Store>) {
    signed_up(&store, "ann@example.com", None).await;
    let bob = signed_up(&store, "bob@example.com", None).await;
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
}

async fn update_user_of_an_unknown_user_is_not_found(store: Arc<dyn Store>) {
    assert!(matches!(
        store
            .update_user(T, Uuid::now_v7(), UserPatch::default(), audit("x", None))
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn access_of_gives_the_roles_and_permissions_of_a_user(store: Arc<dyn Store>) {
    let ann = new_user("ann@example.com", None, &["admin"]);
    store
        .create_user(ann.clone(), None, audit("signup", Some(ann.id)))
        .await
        .unwrap();
    let bob = signed_up(&store, "bob@example.com", None).await;
    let access = store.access_of(T, ann.id).await.unwrap().unwrap();
    assert_eq!(access.roles, ["admin"]);
    assert_eq!(access.permissions, ["*"]);
    let none = store.access_of(T, bob.id).await.unwrap().unwrap();
    assert!(none.roles.is_empty() && none.permissions.is_empty());
    assert!(store.access_of(T, Uuid::now_v7()).await.unwrap().is_none());
}

// ---- sessions and refresh tokens ----

async fn sign_in_records_the_time_the_verification_and_the_rehash(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", Some("r0")).await;
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
}

async fn concurrent_refreshes_of_one_token_rotate_it_once(store: Arc<dyn Store>) {
    signed_up(&store, "cy@example.com", Some("r0")).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.rotate_refresh(rotate("r0", "r1", NOW + 1, 10)).await
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
}

async fn a_refresh_within_the_grace_window_gets_the_same_successor(store: Arc<dyn Store>) {
    signed_up(&store, "cy@example.com", Some("r0")).await;
    let Rotation::Rotated { session: successor, .. } =
        store.rotate_refresh(rotate("r0", "r1", NOW + 1, 10)).await.unwrap()
    else {
        panic!("a live token rotates");
    };
    let Rotation::WithinGrace { session: again, .. } =
        store.rotate_refresh(rotate("r0", "r1", NOW + 5, 10)).await.unwrap()
    else {
        panic!("not within the grace window");
    };
    assert_eq!(again.id, successor.id);
}

async fn a_refresh_reused_after_the_grace_window_revokes_the_session(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", Some("r0")).await;
    sign_in(&store, cy.id, "s0").await;
    let Rotation::Rotated { .. } = store.rotate_refresh(rotate("r0", "r1", NOW + 1, 10)).await.unwrap() else {
        panic!("a live token rotates");
    };
    let Rotation::ReuseDetected { session_id, user_id } =
        store.rotate_refresh(rotate("r0", "r1", NOW + 60, 10)).await.unwrap()
    else {
        panic!("reuse not detected");
    };
    assert_eq!(user_id, cy.id);
    assert!(matches!(
        store.rotate_refresh(rotate("r1", "r2", NOW + 61, 10)).await.unwrap(),
        Rotation::Invalid
    ));
    let revoked = store.session_by_refresh(T, "r1").await.unwrap().unwrap();
    assert_eq!(revoked.id, session_id);
    assert!(revoked.revoked_at.is_some());
    assert_eq!(store.list_sessions(T, cy.id, NOW).await.unwrap().len(), 1);
    assert!(
        !store.revoke_session(T, cy.id, session_id, NOW, None).await.unwrap(),
        "already revoked"
    );
}

async fn an_unknown_refresh_token_is_invalid(store: Arc<dyn Store>) {
    signed_up(&store, "cy@example.com", Some("r0")).await;
    assert!(matches!(
        store.rotate_refresh(rotate("unknown", "x", NOW, 10)).await.unwrap(),
        Rotation::Invalid
    ));
}

async fn revoking_a_session_counts_once_and_shows_in_revoked_since(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", Some("r0")).await;
    sign_in(&store, cy.id, "s0").await;
    let earlier = store.session_by_refresh(T, "r0").await.unwrap().unwrap().id;
    let later = store.session_by_refresh(T, "s0").await.unwrap().unwrap().id;
    assert!(store.revoke_session(T, cy.id, earlier, NOW + 50, None).await.unwrap());
    assert!(
        !store.revoke_session(T, cy.id, earlier, NOW + 100, None).await.unwrap(),
        "already revoked"
    );
    let mut a = audit("logout", Some(cy.id));
    a.at = NOW + 100;
    assert!(
        store
            .revoke_session(T, cy.id, later, a.at, Some(a.clone()))
            .await
            .unwrap()
    );
    let (sessions, _) = store.revoked_since(NOW + 100).await.unwrap();
    assert_eq!(sessions, [later]);
}

async fn disabling_a_user_revokes_every_session(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", Some("r0")).await;
    sign_in(&store, cy.id, "s1").await;
    let disabled = store
        .update_user(
            T,
            cy.id,
            UserPatch {
                disabled: Some(true),
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
}

fn epoch(user: Option<User>) -> i64 {
    user.unwrap().credential_epoch
}

async fn profile_changes_and_single_sign_outs_keep_the_credential_epoch(store: Arc<dyn Store>) {
    let fay = new_user("fay@example.com", None, &[]);
    let created = store
        .create_user(fay.clone(), Some(session("f0")), audit("signup", None))
        .await
        .unwrap();
    assert_eq!(created.credential_epoch, 0);
    let profile = UserPatch {
        metadata: Some(serde_json::json!({})),
        now: NOW,
        ..Default::default()
    };
    let patched = patch(&store, fay.id, profile).await;
    assert_eq!(patched.credential_epoch, 0, "a profile change keeps sessions");
    assert!(
        store
            .revoke_session(T, fay.id, created_session_id(&store, fay.id).await, NOW, None)
            .await
            .unwrap()
    );
    assert_eq!(
        epoch(store.get_user(T, fay.id).await.unwrap()),
        0,
        "one sign-out keeps the others"
    );
}

async fn every_event_that_ends_all_sessions_moves_the_credential_epoch(store: Arc<dyn Store>) {
    let fay = signed_up(&store, "fay@example.com", Some("f0")).await;
    store.revoke_sessions(T, fay.id, None, NOW, None).await.unwrap();
    assert_eq!(
        epoch(store.get_user(T, fay.id).await.unwrap()),
        1,
        "sign-out everywhere"
    );
    let new_password = UserPatch {
        password_hash: Some(Some("$argon2id$new".into())),
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
}

/// Rotates `g0` to `g1` ten seconds in, under a maximum age of 100 s.
async fn refreshed_young(store: &Arc<dyn Store>) {
    let Rotation::Rotated { .. } = store
        .rotate_refresh(RotateRefresh {
            session_max_age: 100,
            ..rotate("g0", "g1", NOW + 10, 10)
        })
        .await
        .unwrap()
    else {
        panic!("a session younger than its maximum age refreshes");
    };
}

async fn a_refreshed_session_never_outlives_its_maximum_age(store: Arc<dyn Store>) {
    let gus = signed_up(&store, "gus@example.com", Some("g0")).await;
    refreshed_young(&store).await;
    let live = store.list_sessions(T, gus.id, NOW + 10).await.unwrap();
    assert_eq!(live[0].expires_at, NOW + 100, "capped at created_at + max age");
}

async fn a_session_past_its_maximum_age_does_not_refresh(store: Arc<dyn Store>) {
    signed_up(&store, "gus@example.com", Some("g0")).await;
    refreshed_young(&store).await;
    let too_old = RotateRefresh {
        session_max_age: 50,
        ..rotate("g1", "g2", NOW + 60, 10)
    };
    assert!(matches!(
        store.rotate_refresh(too_old).await.unwrap(),
        Rotation::Invalid
    ));
}

async fn deleting_a_user_returns_its_live_sessions_and_is_remembered(store: Arc<dyn Store>) {
    let dee = signed_up(&store, "dee@example.com", Some("d0")).await;
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

// ---- roles ----

async fn create_role_returns_a_custom_role(store: Arc<dyn Store>) {
    let role = create_editor(&store).await;
    assert_eq!(role.permissions, ["users:read"]);
    assert!(!role.builtin);
    let names: Vec<String> = store.list_roles(T).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["admin", "editor"]);
}

async fn create_role_with_a_taken_name_conflicts_on_name(store: Arc<dyn Store>) {
    create_editor(&store).await;
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
}

async fn the_builtin_admin_role_cannot_be_changed(store: Arc<dyn Store>) {
    assert!(matches!(
        store
            .set_role_permissions(T, "admin", perms(&["users:read"]), audit("role_updated", None))
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn assign_and_remove_role_report_whether_anything_changed(store: Arc<dyn Store>) {
    create_editor(&store).await;
    let eve = signed_up(&store, "eve@example.com", None).await;
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
}

async fn assigning_an_unknown_role_is_not_found(store: Arc<dyn Store>) {
    let eve = signed_up(&store, "eve@example.com", None).await;
    assert!(matches!(
        store
            .assign_role(T, eve.id, "ghost", audit("role_assigned", None))
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn new_role_permissions_reach_its_holders(store: Arc<dyn Store>) {
    create_editor(&store).await;
    let eve = signed_up(&store, "eve@example.com", None).await;
    store
        .assign_role(T, eve.id, "editor", audit("role_assigned", None))
        .await
        .unwrap();
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
}

async fn deleting_a_role_returns_its_holders_and_takes_it_from_them(store: Arc<dyn Store>) {
    create_editor(&store).await;
    let eve = signed_up(&store, "eve@example.com", None).await;
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
}

async fn only_role_assignments_that_change_something_are_audited(store: Arc<dyn Store>) {
    create_editor(&store).await;
    let eve = signed_up(&store, "eve@example.com", None).await;
    for changes in [true, false] {
        let changed = store
            .assign_role(T, eve.id, "editor", audit("role_assigned", None))
            .await
            .unwrap();
        assert_eq!(changed, changes);
    }
    assert!(
        store
            .assign_role(T, eve.id, "ghost", audit("role_assigned", None))
            .await
            .is_err()
    );
    store
        .remove_role(T, eve.id, "editor", audit("role_removed", None))
        .await
        .unwrap();
    store
        .assign_role(T, eve.id, "editor", audit("role_assigned", None))
        .await
        .unwrap();
    let assigned = store
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
        assigned.len(),
        2,
        "only the assignments that changed something were audited"
    );
}

// ---- user listing ----

/// Five users `page0..4@example.com` with phones `+14155550200..4`.
async fn five_pages(store: &Arc<dyn Store>) {
    for i in 0..5 {
        let u = new_user(&format!("page{i}@example.com"), Some(&format!("+1415555020{i}")), &[]);
        store.create_user(u, None, audit("signup", None)).await.unwrap();
    }
}

async fn listing_all_users_pages_in_creation_order(store: Arc<dyn Store>) {
    five_pages(&store).await;
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
}

async fn listing_by_email_prefix_pages_in_email_order(store: Arc<dyn Store>) {
    five_pages(&store).await;
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
}

async fn listing_by_phone_prefix_is_in_phone_order(store: Arc<dyn Store>) {
    five_pages(&store).await;
    // Created last but sorted among the first.
    let eve = new_user("eve@example.com", Some("+14155550111"), &[]);
    store.create_user(eve, None, audit("signup", None)).await.unwrap();
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
}

// ---- tenants ----

async fn create_tenant_creates_its_admin_role_and_first_admin(store: Arc<dyn Store>) {
    let (tenant, first_admin, boss) = create_acme(&store).await;
    assert_eq!(tenant.slug.as_str(), "acme");
    assert_eq!(first_admin.unwrap().roles, ["admin"]);
    assert_eq!(
        store.access_of(tenant.id, boss.id).await.unwrap().unwrap().permissions,
        ["*"]
    );
}

async fn create_tenant_with_a_taken_slug_conflicts_on_slug(store: Arc<dyn Store>) {
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

async fn tenant_settings_are_stored_as_created(store: Arc<dyn Store>) {
    let (acme, ..) = create_acme(&store).await;
    let stored = store.tenant_settings(acme.id).await.unwrap().unwrap();
    assert_eq!(stored.signup.as_ref().unwrap().domains, ["acme.test"]);
    assert_eq!(store.tenant_settings(T).await.unwrap(), Some(TenantSettings::default()));
    assert!(store.tenant_settings(Uuid::now_v7()).await.unwrap().is_none());
}

async fn updating_tenant_settings_replaces_the_given_parts_and_keeps_the_rest(store: Arc<dyn Store>) {
    let (acme, ..) = create_acme(&store).await;
    let closed = TenantSettings {
        signup: Some(SignupPolicy::parse(SignupMode::Closed, &[]).unwrap()),
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
    assert!(matches!(
        store
            .update_tenant_settings(Uuid::now_v7(), TenantSettings::default(), vec![])
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn tenants_list_in_creation_order(store: Arc<dyn Store>) {
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

async fn deleting_a_tenant_takes_everything_it_owns_but_not_the_default(store: Arc<dyn Store>) {
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

// ---- audit and dashboard ----

async fn audit_lists_newest_first_by_event_and_pages_before_an_id(store: Arc<dyn Store>) {
    for event in ["role_assigned", "login", "role_assigned"] {
        store.record_audit(audit(event, None)).await.unwrap();
    }
    let assigned = store
        .list_audit(AuditQuery {
            tenant_id: T,
            user_id: None,
            event: Some("role_assigned".into()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(assigned.len(), 2);
    assert!(assigned[0].id > assigned[1].id);
    assert_eq!(assigned[0].detail["k"], "v");
    let older = store
        .list_audit(AuditQuery {
            tenant_id: T,
            user_id: None,
            event: Some("role_assigned".into()),
            before: Some(assigned[0].id),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
}

async fn purging_audit_deletes_old_rows_in_batches(store: Arc<dyn Store>) {
    let mut old = audit("ancient", None);
    old.at = 10;
    for _ in 0..3 {
        store.record_audit(old.clone()).await.unwrap();
    }
    assert_eq!(store.purge_audit(11, 2).await.unwrap(), 2);
    assert_eq!(store.purge_audit(11, 2).await.unwrap(), 1);
    assert_eq!(store.purge_audit(11, 2).await.unwrap(), 0);
}

async fn dashboard_counts_users_and_sign_ins_per_bucket(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", None).await;
    signed_up(&store, "dee@example.com", None).await;
    sign_in(&store, cy.id, "s0").await;
    sign_in(&store, cy.id, "s1").await;
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

// ---- outbox ----

async fn concurrent_claimers_lease_every_message_exactly_once(store: Arc<dyn Store>) {
    for i in 0..30 {
        store.enqueue(message(&format!("+1415555{i:04}"))).await.unwrap();
    }
    assert_eq!(store.pending_count().await.unwrap(), 30);
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
}

async fn a_delivered_message_is_erased(store: Arc<dyn Store>) {
    let first = claimed(&store, 1, 60).await[0].id;
    store.mark_delivered(first, NOW).await.unwrap();
    let page = store.list(T, None, 100, None).await.unwrap();
    assert_eq!(page[0].status, OutboxStatus::Delivered);
    assert!(page[0].body.is_none() && page[0].code.is_none(), "erased");
}

async fn a_failed_message_keeps_its_code_and_error_until_it_expires(store: Arc<dyn Store>) {
    let batch = claimed(&store, 2, 60).await;
    let second = batch[1].id;
    store.mark_failed(second, "refused", NOW).await.unwrap();
    let page = store.list(T, None, 100, None).await.unwrap();
    let failed = page.iter().find(|m| m.id == second).unwrap();
    assert_eq!(failed.status, OutboxStatus::Failed);
    assert!(
        failed.body.is_some(),
        "a failed message keeps its code until it expires"
    );
    assert_eq!(failed.last_error.as_deref(), Some("refused"));
    assert_eq!(
        store
            .list(T, Some(OutboxStatus::Failed), 100, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn a_released_message_is_pending_again_without_the_attempt(store: Arc<dyn Store>) {
    let third = claimed(&store, 1, 60).await[0].id;
    store.release(third, NOW).await.unwrap();
    let page = store.list(T, None, 100, None).await.unwrap();
    assert_eq!(page[0].status, OutboxStatus::Pending);
    assert_eq!(page[0].attempts, 0, "a release does not count the attempt");
}

async fn only_a_failed_message_is_resent(store: Arc<dyn Store>) {
    let second = claimed(&store, 1, 60).await[0].id;
    store.mark_failed(second, "refused", NOW).await.unwrap();
    assert!(store.resend(T, second, NOW).await.unwrap());
    assert!(
        !store.resend(T, second, NOW).await.unwrap(),
        "only a failed message is resent"
    );
    assert!(
        store
            .list(T, Some(OutboxStatus::Failed), 100, None)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn stale_leases_released_and_resent_messages_are_claimed_again(store: Arc<dyn Store>) {
    let batch = claimed(&store, 5, 60).await;
    let (second, third) = (batch[1].id, batch[2].id);
    store.mark_failed(second, "refused", NOW).await.unwrap();
    assert!(store.resend(T, second, NOW).await.unwrap());
    store.release(third, NOW).await.unwrap();
    // A lease that ran out comes back; the claim counts another attempt.
    let again = store.claim_due(NOW + 61, 100, 1000).await.unwrap();
    assert_eq!(again.len(), 5, "3 stale leases, the released one and the resent one");
    assert!(
        again
            .iter()
            .all(|m| m.attempts == if m.id == second || m.id == third { 1 } else { 2 })
    );
}

async fn expiry_fails_and_erases_what_no_live_lease_holds(store: Arc<dyn Store>) {
    let batch = claimed(&store, 3, 1000).await;
    store.mark_delivered(batch[2].id, NOW).await.unwrap();
    store
        .mark_retry(batch[0].id, NOW + 100, "timeout", NOW + 61)
        .await
        .unwrap();
    assert!(
        store
            .list(T, Some(OutboxStatus::Failed), 100, None)
            .await
            .unwrap()
            .is_empty(),
        "a retry is not a failure"
    );
    let expired = store.expire(NOW + 400).await.unwrap();
    assert_eq!(
        expired, 1,
        "the message waiting for its retry; the leased one is its worker's"
    );
    let expired = store.expire(NOW + 1100).await.unwrap();
    assert_eq!(expired, 1, "its lease ran out too");
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

async fn outbox_list_pages_newest_first(store: Arc<dyn Store>) {
    for i in 0..10 {
        store.enqueue(message(&format!("+1415555{i:04}"))).await.unwrap();
    }
    let newest = store.list(T, None, 5, None).await.unwrap();
    let next = store.list(T, None, 5, Some(newest[4].id)).await.unwrap();
    assert!(newest.iter().zip(newest.iter().skip(1)).all(|(a, b)| a.id > b.id));
    assert!(next[0].id < newest[4].id);
}

// ---- signing keys and server secrets ----

async fn instances_starting_together_agree_on_one_current_key_and_one_secret(store: Arc<dyn Store>) {
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
}

/// A `current` key and, beside it, the `next` key `next-1`.
async fn current_and_next(store: &Arc<dyn Store>) {
    store
        .insert_signing_key_if_absent(key("current-0", KeyState::Current))
        .await
        .unwrap();
    store
        .insert_signing_key_if_absent(key("next-1", KeyState::Next))
        .await
        .unwrap();
}

async fn a_next_key_is_added_beside_the_current_one(store: Arc<dyn Store>) {
    current_and_next(&store).await;
    let stored = store.signing_keys().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored.iter().find(|k| k.state == KeyState::Next).unwrap().public_key,
        [4, 5, 6]
    );
}

async fn rotation_promotes_next_retires_current_and_adds_a_new_next(store: Arc<dyn Store>) {
    current_and_next(&store).await;
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
}

async fn rotation_refuses_a_next_key_younger_than_not_after(store: Arc<dyn Store>) {
    current_and_next(&store).await;
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
