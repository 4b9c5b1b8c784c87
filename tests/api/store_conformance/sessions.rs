//! Sessions and refresh tokens: sign-in, the single-winner rotation, the
//! grace window and reuse detection, revocation, the credential epoch and
//! the absolute session lifetime.

use forge::service::RequestMeta;
use forge::service::sessions::{RefreshPolicy, decide_refresh};

use super::*;

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
        client_id: None,
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

async fn patch(store: &Arc<dyn Store>, user: Uuid, patch: UserPatch) -> User {
    store
        .update_user(T, user, patch, audit("user_updated", None))
        .await
        .unwrap()
}

async fn created_session_id(store: &Arc<dyn Store>, user: Uuid) -> Uuid {
    store.list_sessions(T, user, NOW).await.unwrap()[0].id
}

pub(super) async fn sign_in_records_the_time_the_verification_and_the_rehash(store: Arc<dyn Store>) {
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
    let (signed, before) = signed;
    assert_eq!(before, Some(NOW), "the sign-up opened a session");
    assert_eq!(signed.last_sign_in_at, Some(NOW));
    assert!(signed.email_verified);
    // The next sign-in learns when the last one was; one recorded without
    // a stored session (the hosted pages') too.
    let (_, before) = store
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
    assert_eq!(before, Some(NOW));
    let before = store
        .record_sign_in(T, cy.id, NOW + 60, audit("sso_login", Some(cy.id)))
        .await
        .unwrap();
    assert_eq!(before, Some(NOW));
    let user = store.get_user(T, cy.id).await.unwrap().unwrap();
    assert_eq!(user.last_sign_in_at, Some(NOW + 60));
    assert!(matches!(
        store
            .record_sign_in(T, Uuid::now_v7(), NOW, audit("sso_login", None))
            .await,
        Err(forge::store::StoreError::NotFound)
    ));
    assert_eq!(
        store.password_hash(T, cy.id).await.unwrap().as_deref(),
        Some("$argon2id$rehashed")
    );
    assert_eq!(store.list_sessions(T, cy.id, NOW).await.unwrap().len(), 3);
}

pub(super) async fn concurrent_refreshes_of_one_token_rotate_it_once(store: Arc<dyn Store>) {
    signed_up(&store, "cy@example.com", Some("r0")).await;
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
}

pub(super) async fn a_refresh_within_the_grace_window_gets_the_same_successor(store: Arc<dyn Store>) {
    signed_up(&store, "cy@example.com", Some("r0")).await;
    let Rotation::Rotated { session: successor, .. } = rotate(&store, "r0", "r1", NOW + 1, 10, MAX_AGE).await.unwrap()
    else {
        panic!("a live token rotates");
    };
    let Rotation::WithinGrace { session: again, .. } = rotate(&store, "r0", "r1", NOW + 5, 10, MAX_AGE).await.unwrap()
    else {
        panic!("not within the grace window");
    };
    assert_eq!(again.id, successor.id);
}

pub(super) async fn a_refresh_reused_after_the_grace_window_revokes_the_session(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", Some("r0")).await;
    sign_in(&store, cy.id, "s0").await;
    let Rotation::Rotated { .. } = rotate(&store, "r0", "r1", NOW + 1, 10, MAX_AGE).await.unwrap() else {
        panic!("a live token rotates");
    };
    let Rotation::ReuseDetected { session_id, user_id } =
        rotate(&store, "r0", "r1", NOW + 60, 10, MAX_AGE).await.unwrap()
    else {
        panic!("reuse not detected");
    };
    assert_eq!(user_id, cy.id);
    assert!(matches!(
        rotate(&store, "r1", "r2", NOW + 61, 10, MAX_AGE).await.unwrap(),
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

pub(super) async fn an_unknown_refresh_token_is_invalid(store: Arc<dyn Store>) {
    signed_up(&store, "cy@example.com", Some("r0")).await;
    assert!(matches!(
        rotate(&store, "unknown", "x", NOW, 10, MAX_AGE).await.unwrap(),
        Rotation::Invalid
    ));
}

pub(super) async fn revoking_a_session_counts_once_and_shows_in_revoked_since(store: Arc<dyn Store>) {
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

pub(super) async fn disabling_a_user_revokes_every_session(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", Some("r0")).await;
    sign_in(&store, cy.id, "s1").await;
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
}

fn epoch(user: Option<User>) -> i64 {
    user.unwrap().credential_epoch
}

pub(super) async fn profile_changes_and_single_sign_outs_keep_the_credential_epoch(store: Arc<dyn Store>) {
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

pub(super) async fn every_event_that_ends_all_sessions_moves_the_credential_epoch(store: Arc<dyn Store>) {
    let fay = signed_up(&store, "fay@example.com", Some("f0")).await;
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
}

/// Rotates `g0` to `g1` ten seconds in, under a maximum age of 100 s.
async fn refreshed_young(store: &Arc<dyn Store>) {
    let Rotation::Rotated { .. } = rotate(store, "g0", "g1", NOW + 10, 10, 100).await.unwrap() else {
        panic!("a session younger than its maximum age refreshes");
    };
}

pub(super) async fn a_refreshed_session_never_outlives_its_maximum_age(store: Arc<dyn Store>) {
    let gus = signed_up(&store, "gus@example.com", Some("g0")).await;
    refreshed_young(&store).await;
    let live = store.list_sessions(T, gus.id, NOW + 10).await.unwrap();
    assert_eq!(live[0].expires_at, NOW + 100, "capped at created_at + max age");
}

pub(super) async fn a_session_past_its_maximum_age_does_not_refresh(store: Arc<dyn Store>) {
    signed_up(&store, "gus@example.com", Some("g0")).await;
    refreshed_young(&store).await;
    assert!(matches!(
        rotate(&store, "g1", "g2", NOW + 60, 10, 50).await.unwrap(),
        Rotation::Invalid
    ));
}

pub(super) async fn deleting_a_user_returns_its_live_sessions_and_is_remembered(store: Arc<dyn Store>) {
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

/// Opens a session whose first factor proved `assurance`; returns its id.
async fn sign_in_with(store: &Arc<dyn Store>, user: Uuid, refresh: &str, assurance: Assurance) -> Uuid {
    let mut new = session(refresh);
    new.assurance = assurance;
    let id = new.id;
    store
        .sign_in(
            T,
            user,
            SignIn {
                session: new,
                rehash: None,
                verified: None,
            },
            audit("login", Some(user)),
        )
        .await
        .unwrap();
    id
}

async fn audit_count(store: &Arc<dyn Store>, event: &str) -> usize {
    store
        .list_audit(AuditQuery {
            tenant_id: T,
            user_id: None,
            event: Some(event.into()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap()
        .len()
}

pub(super) async fn a_session_keeps_its_assurance_through_every_rotation(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", Some("r0")).await;
    let first = store.session_by_refresh(T, "r0").await.unwrap().unwrap();
    assert_eq!(first.assurance, Assurance::password(), "as the sign-up stored it");
    let id = sign_in_with(&store, cy.id, "s0", Assurance::phone_code()).await;
    let live = store.live_session(T, cy.id, id, NOW).await.unwrap().unwrap();
    assert_eq!(live.assurance, Assurance::phone_code());
    let Rotation::Rotated { session, .. } = rotate(&store, "s0", "s1", NOW + 1, 10, MAX_AGE).await.unwrap() else {
        panic!("a live token rotates");
    };
    assert_eq!((session.id, &session.assurance), (id, &Assurance::phone_code()));
    let Rotation::WithinGrace { session, .. } = rotate(&store, "s0", "s1", NOW + 2, 10, MAX_AGE).await.unwrap() else {
        panic!("within the grace window");
    };
    assert_eq!(session.assurance, Assurance::phone_code());
    let listed = store.list_sessions(T, cy.id, NOW).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|s| s.id == id && s.assurance == Assurance::phone_code())
    );
}

pub(super) async fn setting_a_sessions_assurance_is_a_compare_and_set(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", None).await;
    let other = signed_up(&store, "di@example.com", None).await;
    let id = sign_in_with(&store, cy.id, "s0", Assurance::password()).await;
    let raised = Assurance::password().stepped_up([Amr::Otp]);
    let step_up = |from: Assurance, to: Assurance, user: Uuid, session: Uuid, at: i64| {
        let store = store.clone();
        async move {
            store
                .set_session_assurance(T, user, session, from, to, at, Some(audit("login", Some(user))))
                .await
                .unwrap()
        }
    };
    let logins = audit_count(&store, "login").await;
    assert!(
        !step_up(Assurance::password(), raised.clone(), other.id, id, NOW).await,
        "not the user's session"
    );
    assert!(
        !step_up(Assurance::phone_code(), raised.clone(), cy.id, id, NOW).await,
        "not at the expected assurance"
    );
    assert_eq!(audit_count(&store, "login").await, logins, "no audit without a change");
    assert!(step_up(Assurance::password(), raised.clone(), cy.id, id, NOW).await);
    assert_eq!(
        audit_count(&store, "login").await,
        logins + 1,
        "the audit row lands with it"
    );
    assert!(
        !step_up(Assurance::password(), raised.clone(), cy.id, id, NOW).await,
        "a stale read loses"
    );
    let live = store.live_session(T, cy.id, id, NOW).await.unwrap().unwrap();
    assert_eq!(live.assurance, raised);
    assert_eq!(live.assurance.aal, Aal::Two);

    // Every later refresh keeps it.
    let Rotation::Rotated { session, .. } = rotate(&store, "s0", "s1", NOW + 1, 10, MAX_AGE).await.unwrap() else {
        panic!("a live token rotates");
    };
    assert_eq!(session.assurance, raised);

    // Only a live session is raised or read.
    assert!(
        store.live_session(T, cy.id, id, NOW + 7200).await.unwrap().is_none(),
        "expired"
    );
    assert!(
        !step_up(raised.clone(), raised.clone(), cy.id, id, NOW + 7200).await,
        "expired"
    );
    assert!(store.revoke_session(T, cy.id, id, NOW + 2, None).await.unwrap());
    assert!(store.live_session(T, cy.id, id, NOW + 2).await.unwrap().is_none());
    assert!(!step_up(raised.clone(), raised.clone(), cy.id, id, NOW + 2).await);
    assert!(store.live_session(T, other.id, id, NOW).await.unwrap().is_none());
}

pub(super) async fn concurrent_step_ups_of_one_session_have_one_winner(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", None).await;
    let id = sign_in_with(&store, cy.id, "s0", Assurance::password()).await;
    let mut tasks = Vec::new();
    for method in [Amr::Otp, Amr::Hwk, Amr::Swk, Amr::Otp, Amr::Hwk, Amr::Swk] {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let to = Assurance::password().stepped_up([method]);
            store
                .set_session_assurance(T, cy.id, id, Assurance::password(), to, NOW, None)
                .await
                .unwrap()
        }));
    }
    let mut won = 0;
    for t in tasks {
        won += usize::from(t.await.unwrap());
    }
    assert_eq!(won, 1, "every other one read a stale assurance");
    let live = store.live_session(T, cy.id, id, NOW).await.unwrap().unwrap();
    assert_eq!(live.assurance.aal, Aal::Two);
}
