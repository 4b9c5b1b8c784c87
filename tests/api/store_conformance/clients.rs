//! OAuth clients and consents: registration, lookups inside and across
//! tenants, and the revocations that ride along with deleting a client,
//! rotating its secret and revoking a consent.

use super::*;
use forge::domain::clients::{ClientKind, ClientSpec, GrantType, IdTokenAlg};
use forge::domain::settings::TenantSettings as Settings;

fn spec(name: &str, kind: ClientKind) -> ClientSpec {
    let mut s = ClientSpec::new(name, kind);
    s.redirect_uris = vec!["https://app.example.com/cb".into(), "http://127.0.0.1/cb".into()];
    s.post_logout_redirect_uris = vec!["https://app.example.com/bye".into()];
    s.validate().unwrap();
    s
}

async fn register(
    store: &Arc<dyn Store>,
    tenant: Uuid,
    client_id: &str,
    kind: ClientKind,
) -> forge::domain::clients::Client {
    let secret_hash = (kind == ClientKind::Confidential).then(|| format!("hash-of-{client_id}"));
    let mut a = audit("client_created", None);
    a.tenant_id = tenant;
    store
        .create_client(
            NewClient {
                id: Uuid::now_v7(),
                tenant_id: tenant,
                client_id: client_id.into(),
                spec: spec(&format!("App {client_id}"), kind),
                secret_hash,
                now: NOW,
            },
            a,
        )
        .await
        .unwrap()
}

/// Another tenant, without users.
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
                settings: Settings::default(),
            },
            vec![],
        )
        .await
        .unwrap();
    id
}

/// Signs `user` in with a session of `client` (None: forge's own API).
async fn session_of(store: &Arc<dyn Store>, user: Uuid, client: Option<&str>, refresh: &str) -> Uuid {
    let mut s = session(refresh);
    s.client_id = client.map(str::to_owned);
    s.sso_id = client.map(|_| Uuid::now_v7());
    let id = s.id;
    store
        .sign_in(
            T,
            user,
            SignIn {
                session: s,
                rehash: None,
                verified: None,
            },
            audit("login", Some(user)),
        )
        .await
        .unwrap();
    id
}

fn live_ids(sessions: &[Session]) -> HashSet<Uuid> {
    sessions.iter().map(|s| s.id).collect()
}

pub(super) async fn a_registered_client_is_found_in_its_tenant_and_by_its_id_alone(store: Arc<dyn Store>) {
    let other = other_tenant(&store).await;
    let web = register(&store, T, "web-client", ClientKind::Confidential).await;
    let native = register(&store, T, "native-client", ClientKind::Public).await;
    register(&store, other, "elsewhere", ClientKind::Public).await;
    assert_eq!(web.tenant_id, T);
    assert_eq!(web.name, "App web-client");
    assert_eq!(web.kind, ClientKind::Confidential);
    assert_eq!(web.redirect_uris, ["https://app.example.com/cb", "http://127.0.0.1/cb"]);
    assert_eq!(web.post_logout_redirect_uris, ["https://app.example.com/bye"]);
    assert_eq!(web.grant_types, [GrantType::AuthorizationCode, GrantType::RefreshToken]);
    assert_eq!(web.scopes, ["openid", "profile", "email", "phone", "offline_access"]);
    assert_eq!(web.id_token_alg, IdTokenAlg::EdDSA);
    assert!(!web.first_party);
    assert_eq!((web.created_at, web.updated_at), (NOW, NOW));

    let listed: Vec<String> = store
        .list_clients(T)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(listed, ["web-client", "native-client"]);
    assert_eq!(store.get_client(T, "native-client").await.unwrap(), Some(native));
    assert_eq!(store.get_client(other, "web-client").await.unwrap(), None);
    assert_eq!(store.get_client(T, "elsewhere").await.unwrap(), None);

    let found = store.find_client("web-client").await.unwrap().unwrap();
    assert_eq!(found.client, web);
    assert_eq!(found.secret_hash.as_deref(), Some("hash-of-web-client"));
    assert!(!format!("{found:?}").contains("hash-of"));
    let public = store.find_client("elsewhere").await.unwrap().unwrap();
    assert_eq!(public.client.tenant_id, other);
    assert_eq!(public.secret_hash, None);
    assert!(store.find_client("nobody").await.unwrap().is_none());
}

pub(super) async fn a_taken_client_id_conflicts_on_client_id_in_any_tenant(store: Arc<dyn Store>) {
    let other = other_tenant(&store).await;
    register(&store, T, "taken", ClientKind::Public).await;
    let e = store
        .create_client(
            NewClient {
                id: Uuid::now_v7(),
                tenant_id: other,
                client_id: "taken".into(),
                spec: spec("Again", ClientKind::Public),
                secret_hash: None,
                now: NOW,
            },
            audit("client_created", None),
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_field(e), "client_id");
}

pub(super) async fn updating_a_client_replaces_its_spec_and_keeps_its_kind_and_secret(store: Arc<dyn Store>) {
    register(&store, T, "web", ClientKind::Confidential).await;
    let mut s = spec("Renamed", ClientKind::Confidential);
    s.redirect_uris = vec!["https://new.example.com/cb".into()];
    s.grant_types = vec![GrantType::AuthorizationCode, GrantType::ClientCredentials];
    s.scopes = vec!["openid".into(), "api:read".into()];
    s.first_party = true;
    s.backchannel_logout_uri = Some("https://new.example.com/logout".into());
    s.id_token_alg = IdTokenAlg::RS256;
    let updated = store
        .update_client(T, "web", s.clone(), NOW + 5, audit("client_updated", None))
        .await
        .unwrap();
    assert_eq!(updated.spec(), s);
    assert_eq!((updated.created_at, updated.updated_at), (NOW, NOW + 5));
    let found = store.find_client("web").await.unwrap().unwrap();
    assert_eq!(found.client, updated);
    assert_eq!(found.secret_hash.as_deref(), Some("hash-of-web"));
    let other = other_tenant(&store).await;
    assert!(matches!(
        store
            .update_client(other, "web", s, NOW, audit("client_updated", None))
            .await,
        Err(StoreError::NotFound)
    ));
}

pub(super) async fn deleting_a_client_revokes_its_sessions_and_takes_its_consents(store: Arc<dyn Store>) {
    register(&store, T, "doomed", ClientKind::Public).await;
    register(&store, T, "kept", ClientKind::Public).await;
    let ann = signed_up(&store, "ann@example.com", None).await;
    let of_doomed = session_of(&store, ann.id, Some("doomed"), "r-doomed").await;
    let of_kept = session_of(&store, ann.id, Some("kept"), "r-kept").await;
    let own = session_of(&store, ann.id, None, "r-own").await;
    store
        .grant_consent(
            T,
            ann.id,
            "doomed",
            vec!["openid".into()],
            NOW,
            audit("consent_granted", Some(ann.id)),
        )
        .await
        .unwrap();
    let other = other_tenant(&store).await;
    assert!(matches!(
        store
            .delete_client(other, "doomed", NOW + 10, audit("client_deleted", None))
            .await,
        Err(StoreError::NotFound)
    ));
    let revoked = store
        .delete_client(T, "doomed", NOW + 10, audit("client_deleted", None))
        .await
        .unwrap();
    assert_eq!(revoked, [of_doomed]);
    assert!(store.get_client(T, "doomed").await.unwrap().is_none());
    assert!(store.consent(T, ann.id, "doomed").await.unwrap().is_none());
    assert!(store.list_consents(T, ann.id).await.unwrap().is_empty());
    let live = live_ids(&store.list_sessions(T, ann.id, NOW + 11).await.unwrap());
    assert_eq!(live, HashSet::from([of_kept, own]));
    // The revoked row stays, so the deny list is refilled from it.
    let (denied, _) = store.revoked_since(NOW + 10).await.unwrap();
    assert_eq!(denied, [of_doomed]);
    assert!(matches!(
        store
            .delete_client(T, "doomed", NOW + 12, audit("client_deleted", None))
            .await,
        Err(StoreError::NotFound)
    ));
}

pub(super) async fn rotating_a_secret_replaces_the_hash_and_revokes_the_sessions(store: Arc<dyn Store>) {
    register(&store, T, "web", ClientKind::Confidential).await;
    register(&store, T, "native", ClientKind::Public).await;
    let ann = signed_up(&store, "ann@example.com", None).await;
    let bob = signed_up(&store, "bob@example.com", None).await;
    let a = session_of(&store, ann.id, Some("web"), "r-a").await;
    let b = session_of(&store, bob.id, Some("web"), "r-b").await;
    let n = session_of(&store, bob.id, Some("native"), "r-n").await;
    let mut revoked = store
        .rotate_client_secret(
            T,
            "web",
            "new-hash".into(),
            NOW + 10,
            audit("client_secret_rotated", None),
        )
        .await
        .unwrap();
    revoked.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(revoked, want);
    let found = store.find_client("web").await.unwrap().unwrap();
    assert_eq!(found.secret_hash.as_deref(), Some("new-hash"));
    assert_eq!(found.client.updated_at, NOW + 10);
    assert_eq!(
        live_ids(&store.list_sessions(T, bob.id, NOW + 11).await.unwrap()),
        HashSet::from([n])
    );
    // A public client has no secret to rotate; its sessions stay.
    assert!(matches!(
        store
            .rotate_client_secret(T, "native", "x".into(), NOW + 12, audit("client_secret_rotated", None))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .find_client("native")
            .await
            .unwrap()
            .unwrap()
            .secret_hash
            .is_none()
    );
    assert_eq!(store.list_sessions(T, bob.id, NOW + 13).await.unwrap().len(), 1);
}

pub(super) async fn consents_add_scopes_list_by_name_and_revoke_the_users_sessions(store: Arc<dyn Store>) {
    register(&store, T, "web", ClientKind::Confidential).await;
    let ann = signed_up(&store, "ann@example.com", None).await;
    let bob = signed_up(&store, "bob@example.com", None).await;
    let first = store
        .grant_consent(
            T,
            ann.id,
            "web",
            vec!["openid".into(), "email".into()],
            NOW,
            audit("consent_granted", Some(ann.id)),
        )
        .await
        .unwrap();
    assert_eq!(first.scopes, ["openid", "email"]);
    let more = store
        .grant_consent(
            T,
            ann.id,
            "web",
            vec!["email".into(), "profile".into()],
            NOW + 5,
            audit("consent_granted", Some(ann.id)),
        )
        .await
        .unwrap();
    assert_eq!(more.scopes, ["openid", "email", "profile"]);
    assert_eq!((more.created_at, more.updated_at), (NOW, NOW + 5));
    assert_eq!(store.consent(T, ann.id, "web").await.unwrap(), Some(more.clone()));
    assert!(store.consent(T, bob.id, "web").await.unwrap().is_none());
    let apps = store.list_consents(T, ann.id).await.unwrap();
    assert_eq!(
        apps,
        [ConnectedApp {
            client_id: "web".into(),
            name: "App web".into(),
            scopes: more.scopes.clone(),
            granted_at: NOW + 5,
        }]
    );

    let ann_web = session_of(&store, ann.id, Some("web"), "r-a").await;
    let ann_own = session_of(&store, ann.id, None, "r-o").await;
    let bob_web = session_of(&store, bob.id, Some("web"), "r-b").await;
    let revoked = store
        .revoke_consent(T, ann.id, "web", NOW + 10, audit("consent_revoked", Some(ann.id)))
        .await
        .unwrap();
    assert_eq!(revoked, Some(vec![ann_web]));
    assert!(store.consent(T, ann.id, "web").await.unwrap().is_none());
    assert_eq!(
        live_ids(&store.list_sessions(T, ann.id, NOW + 11).await.unwrap()),
        HashSet::from([ann_own])
    );
    assert_eq!(
        live_ids(&store.list_sessions(T, bob.id, NOW + 11).await.unwrap()),
        HashSet::from([bob_web])
    );
    // Nothing left to revoke.
    assert_eq!(
        store
            .revoke_consent(T, ann.id, "web", NOW + 12, audit("consent_revoked", Some(ann.id)))
            .await
            .unwrap(),
        None
    );
    // Only a live session of the client: revoking still ends it.
    assert_eq!(
        store
            .revoke_consent(T, bob.id, "web", NOW + 12, audit("consent_revoked", Some(bob.id)))
            .await
            .unwrap(),
        Some(vec![bob_web])
    );
}

pub(super) async fn a_consent_needs_a_user_and_a_client_of_the_tenant(store: Arc<dyn Store>) {
    let other = other_tenant(&store).await;
    register(&store, other, "foreign", ClientKind::Public).await;
    register(&store, T, "web", ClientKind::Public).await;
    let ann = signed_up(&store, "ann@example.com", None).await;
    for (tenant, user, client) in [
        (T, ann.id, "foreign"),
        (other, ann.id, "foreign"),
        (T, Uuid::now_v7(), "web"),
        (T, ann.id, "nobody"),
    ] {
        let e = store
            .grant_consent(
                tenant,
                user,
                client,
                vec!["openid".into()],
                NOW,
                audit("consent_granted", None),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound), "{client}: {e:?}");
    }
}

pub(super) async fn a_session_keeps_its_client_and_sso_ids_through_a_refresh(store: Arc<dyn Store>) {
    register(&store, T, "web", ClientKind::Public).await;
    let ann = signed_up(&store, "ann@example.com", None).await;
    let mut s = session("r1");
    s.client_id = Some("web".into());
    let sso = Uuid::now_v7();
    s.sso_id = Some(sso);
    store
        .sign_in(
            T,
            ann.id,
            SignIn {
                session: s,
                rehash: None,
                verified: None,
            },
            audit("login", Some(ann.id)),
        )
        .await
        .unwrap();
    let own = session_of(&store, ann.id, None, "r-own").await;
    let listed = store.list_sessions(T, ann.id, NOW).await.unwrap();
    let of_client = listed.iter().find(|x| x.id != own).unwrap();
    assert_eq!(of_client.client_id.as_deref(), Some("web"));
    assert_eq!(of_client.sso_id, Some(sso));
    let mine = listed.iter().find(|x| x.id == own).unwrap();
    assert_eq!((mine.client_id.as_deref(), mine.sso_id), (None, None));
    let rotation = store
        .rotate_refresh(
            RotateRefresh {
                tenant_id: T,
                client_id: Some("web".into()),
                old_hash: "r1".into(),
                new_hash: "r2".into(),
                now: NOW + 1,
                ip: None,
                user_agent: None,
            },
            Box::new(|_| RefreshDecision::Rotate {
                expires_at: NOW + 100,
                audit: audit("refresh", None),
            }),
        )
        .await
        .unwrap();
    let Rotation::Rotated { session, .. } = rotation else {
        panic!("not rotated: {rotation:?}");
    };
    assert_eq!(session.client_id.as_deref(), Some("web"));
    assert_eq!(session.sso_id, Some(sso));
    let by_refresh = store.session_by_refresh(T, "r2").await.unwrap().unwrap();
    assert_eq!(by_refresh.client_id.as_deref(), Some("web"));
}

/// A rule that rotates a won claim and revokes a spent one (no grace), so
/// any claim that matched would show: what a stranger must never reach.
fn rotate_or_revoke() -> RefreshRule {
    Box::new(|claim| match claim {
        RefreshClaim::Won(_) => RefreshDecision::Rotate {
            expires_at: NOW + 100,
            audit: audit("refresh", None),
        },
        RefreshClaim::Spent { .. } => RefreshDecision::Revoke {
            audit: audit("refresh_reuse_detected", None),
        },
        RefreshClaim::Unknown => RefreshDecision::Refuse,
    })
}

async fn rotate_as(store: &Arc<dyn Store>, client: Option<&str>, old: &str, new: &str) -> Rotation {
    let req = RotateRefresh {
        tenant_id: T,
        client_id: client.map(str::to_owned),
        old_hash: old.into(),
        new_hash: new.into(),
        now: NOW + 1,
        ip: None,
        user_agent: None,
    };
    store.rotate_refresh(req, rotate_or_revoke()).await.unwrap()
}

pub(super) async fn a_refresh_token_is_claimed_only_by_its_own_client(store: Arc<dyn Store>) {
    register(&store, T, "web", ClientKind::Public).await;
    register(&store, T, "other", ClientKind::Public).await;
    let ann = signed_up(&store, "ann@example.com", None).await;
    let web = session_of(&store, ann.id, Some("web"), "w1").await;
    let own = session_of(&store, ann.id, None, "o1").await;

    // A live token presented by a stranger: neither rotated nor touched.
    for (client, token) in [(None, "w1"), (Some("other"), "w1"), (Some("web"), "o1")] {
        let r = rotate_as(&store, client, token, "x").await;
        assert!(matches!(r, Rotation::Invalid), "{client:?} {token}: {r:?}");
    }
    assert!(matches!(
        rotate_as(&store, Some("web"), "w1", "w2").await,
        Rotation::Rotated { .. }
    ));
    assert!(matches!(
        rotate_as(&store, None, "o1", "o2").await,
        Rotation::Rotated { .. }
    ));

    // A spent token presented by a stranger: no reuse detected, the session lives.
    for (client, token) in [(None, "w1"), (Some("other"), "w1"), (Some("web"), "o1")] {
        let r = rotate_as(&store, client, token, "y").await;
        assert!(matches!(r, Rotation::Invalid), "{client:?} {token}: {r:?}");
    }
    let live: Vec<Uuid> = store
        .list_sessions(T, ann.id, NOW + 1)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert!(live.contains(&web) && live.contains(&own), "{live:?}");
    // Its own client's replay is still reuse.
    assert!(matches!(
        rotate_as(&store, Some("web"), "w1", "z").await,
        Rotation::ReuseDetected { .. }
    ));
}
