//! OAuth clients through HTTP: registration and its validation, secrets
//! shown once and never again, permissions, tenant isolation, and the
//! revocations that come with rotating a secret, deleting a client and a
//! user taking back their consent (the attack each one stops: a token of
//! the old secret's era, or of a removed app, still working).

use forge::domain::Assurance;
use forge::service::RequestMeta;
use forge::store::SignIn;
use forge::testing::TestServer;
use serde_json::{Value, json};

use crate::support::{login_in, server, user_with};
use crate::{PASSWORD, access, assert_error, parts, refresh};

fn web_app() -> Value {
    json!({
        "name": "Grafana",
        "type": "confidential",
        "redirect_uris": ["https://grafana.example.com/login/generic_oauth"],
    })
}

/// Registers a client as `admin`; returns the 201 body.
async fn register(s: &TestServer, admin: &str, body: Value) -> Value {
    let (status, created) = s.as_user(admin).post("/v1/clients", body).await;
    assert_eq!(status, 201, "{created}");
    created
}

/// Opens a session of `client_id` for the user of `session` (what the
/// authorization code flow will do), and returns its token response.
pub(crate) async fn client_session(s: &TestServer, session: &Value, client_id: &str) -> (String, String) {
    let state = s.state();
    let tenant = state.store.tenant_by_slug("default").await.unwrap().unwrap();
    let user_id: uuid::Uuid = session["user"]["id"].as_str().unwrap().parse().unwrap();
    let (mut new, refresh_token) = state
        .sessions
        .new_session_with(&RequestMeta::default(), Assurance::password());
    new.client_id = Some(client_id.to_owned());
    new.sso_id = Some(uuid::Uuid::now_v7());
    let audit = RequestMeta::default().audit(
        tenant.id,
        state.clock.now(),
        forge::domain::AuditEvent::Login,
        Some(user_id),
        Some(user_id),
    );
    let (user, _) = state
        .store
        .sign_in(
            tenant.id,
            user_id,
            SignIn {
                session: new.clone(),
                rehash: None,
                verified: None,
            },
            audit,
        )
        .await
        .unwrap();
    let tokens = state
        .sessions
        .session_tokens(&user, &new, &tenant, refresh_token)
        .unwrap();
    (tokens.access_token, tokens.refresh_token)
}

pub(crate) async fn works(s: &TestServer, access_token: &str) -> bool {
    s.as_user(access_token).get("/v1/users/me").await.0 == 200
}

pub(crate) async fn refreshes(s: &TestServer, refresh_token: &str) -> bool {
    s.post("/v1/auth/refresh", json!({"refresh_token": refresh_token}))
        .await
        .0
        == 200
}

#[tokio::test]
async fn an_admin_registers_reads_changes_and_deletes_a_client() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();

    let resp = s.as_user(&admin).post("/v1/clients", web_app()).response().await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let (status, created) = parts(resp).await;
    assert_eq!(status, 201, "{created}");
    let id = created["client_id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/clients/{id}"));
    assert_eq!(id.len(), 22);
    let secret = created["client_secret"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 43);
    assert!(
        secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "URL-safe: {secret}"
    );
    assert_eq!(created["name"], "Grafana");
    assert_eq!(created["type"], "confidential");
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(
        created["scopes"],
        json!(["openid", "profile", "email", "phone", "offline_access"])
    );
    assert_eq!(created["first_party"], false);
    assert_eq!(created["id_token_signed_response_alg"], "EdDSA");
    assert!(created["backchannel_logout_uri"].is_null());
    assert_eq!(created["post_logout_redirect_uris"], json!([]));

    // Never again: not in the list, not in the client.
    let (status, list) = s.as_user(&admin).get("/v1/clients").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (status, one) = s.as_user(&admin).get(&location).await;
    assert_eq!(status, 200);
    for body in [&list, &one] {
        assert!(!body.to_string().contains(&secret), "secret leaked: {body}");
        assert!(!body.to_string().contains("client_secret\""), "{body}");
    }
    assert_eq!(one["client_id"], id.as_str());

    let (status, changed) = s
        .as_user(&admin)
        .patch(
            &location,
            json!({
                "name": "Grafana (prod)",
                "scopes": ["openid", "email", "roles"],
                "post_logout_redirect_uris": ["https://grafana.example.com/login"],
                "backchannel_logout_uri": "https://grafana.example.com/logout",
                "id_token_signed_response_alg": "RS256",
                "first_party": true,
                "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            }),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["name"], "Grafana (prod)");
    assert_eq!(changed["scopes"], json!(["openid", "email", "roles"]));
    assert_eq!(changed["id_token_signed_response_alg"], "RS256");
    assert_eq!(changed["first_party"], true);
    assert_eq!(changed["backchannel_logout_uri"], "https://grafana.example.com/logout");
    assert_eq!(changed["redirect_uris"], created["redirect_uris"]);
    let (status, changed) = s
        .as_user(&admin)
        .patch(&location, json!({"backchannel_logout_uri": null}))
        .await;
    assert_eq!(status, 200);
    assert!(changed["backchannel_logout_uri"].is_null());
    // The secret survived the changes.
    s.state().clients.authenticate(&id, Some(&secret)).await.unwrap();

    let (status, _) = s.as_user(&admin).delete(&location).await;
    assert_eq!(status, 204);
    let (status, err) = s.as_user(&admin).get(&location).await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s.as_user(&admin).delete(&location).await;
    assert_error(status, &err, 404, "not_found");
    assert!(s.state().clients.authenticate(&id, Some(&secret)).await.is_err());

    // Audited, without the secret.
    let (status, log) = s.as_user(&admin).get("/v1/audit?limit=200").await;
    assert_eq!(status, 200);
    let events: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for event in ["client_created", "client_updated", "client_deleted"] {
        assert!(events.contains(&event), "{event} missing: {events:?}");
    }
    assert!(!log.to_string().contains(&secret));
}

#[tokio::test]
async fn a_public_client_has_no_secret_to_show_or_rotate() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let created = register(
        &s,
        &admin,
        json!({
            "name": "CLI",
            "type": "public",
            "redirect_uris": ["http://127.0.0.1/callback", "com.example.cli:/callback"],
        }),
    )
    .await;
    assert!(created.get("client_secret").is_none(), "{created}");
    assert_eq!(created["token_endpoint_auth_method"], "none");
    let id = created["client_id"].as_str().unwrap();
    let (status, err) = s
        .as_user(&admin)
        .request(reqwest::Method::POST, &format!("/v1/clients/{id}/secret"))
        .await;
    assert_error(status, &err, 400, "invalid_request");
    let client = s.state().clients.authenticate(id, None).await.unwrap();
    assert!(client.redirect_uri_allowed("http://127.0.0.1:49152/callback"));
    assert!(!client.redirect_uri_allowed("http://127.0.0.1:49152/other"));
    // A public client sending a secret is refused like a wrong one.
    let e = s.state().clients.authenticate(id, Some("guess")).await.unwrap_err();
    assert_eq!(e.code().as_str(), "invalid_client");
}

#[tokio::test]
async fn invalid_registrations_are_refused_naming_the_field() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let with = |patch: Value| {
        let mut body = web_app();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        (json!({"type": "secret"}), "type"),
        (json!({"name": "  "}), "name"),
        (
            json!({"redirect_uris": ["http://grafana.example.com/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"redirect_uris": ["https://grafana.example.com/cb#x"]}),
            "redirect_uris",
        ),
        (json!({"redirect_uris": ["https://*.example.com/cb"]}), "redirect_uris"),
        (json!({"redirect_uris": ["/relative"]}), "redirect_uris"),
        (json!({"redirect_uris": ["com.example.app:/cb"]}), "redirect_uris"),
        (json!({"redirect_uris": []}), "redirect_uris"),
        (
            json!({"post_logout_redirect_uris": ["javascript:alert(1)"]}),
            "post_logout_redirect_uris",
        ),
        (json!({"grant_types": ["password"]}), "grant_types"),
        (json!({"grant_types": ["implicit"]}), "grant_types"),
        (
            json!({"type": "public", "grant_types": ["authorization_code", "client_credentials"]}),
            "grant_types",
        ),
        (json!({"scopes": ["two words"]}), "scopes"),
        (
            json!({"backchannel_logout_uri": "http://grafana.example.com/logout"}),
            "backchannel_logout_uri",
        ),
        (
            json!({"id_token_signed_response_alg": "none"}),
            "id_token_signed_response_alg",
        ),
        (
            json!({"id_token_signed_response_alg": "HS256"}),
            "id_token_signed_response_alg",
        ),
    ];
    for (patch, field) in cases {
        let body = with(patch.clone());
        let (status, err) = s.as_user(&admin).post("/v1/clients", body).await;
        assert_error(status, &err, 400, "validation_failed");
        assert!(err["fields"][field].is_string(), "{patch}: {err}");
    }
    // Unknown fields (a client_secret chosen by the caller among them) are refused.
    let (status, err) = s
        .as_user(&admin)
        .post("/v1/clients", with(json!({"client_secret": "mine"})))
        .await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = s.as_user(&admin).post("/v1/clients", json!({"name": "x"})).await;
    assert_eq!(status, 400, "{err}");
    let (status, list) = s.as_user(&admin).get("/v1/clients").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"], json!([]), "nothing was registered");

    // A change is validated whole; the type never changes.
    let created = register(&s, &admin, web_app()).await;
    let path = format!("/v1/clients/{}", created["client_id"].as_str().unwrap());
    let (status, err) = s.as_user(&admin).patch(&path, json!({"redirect_uris": []})).await;
    assert_error(status, &err, 400, "validation_failed");
    let (status, err) = s.as_user(&admin).patch(&path, json!({"type": "public"})).await;
    assert_eq!(status, 400, "{err}");
    let (status, err) = s
        .as_user(&admin)
        .patch(&path, json!({"redirect_uris": ["https://evil.example/cb#"]}))
        .await;
    assert_error(status, &err, 400, "validation_failed");
    let (_, unchanged) = s.as_user(&admin).get(&path).await;
    assert_eq!(unchanged["redirect_uris"], created["redirect_uris"]);
    // A path that cannot be a client id is simply not found.
    let (status, err) = s.as_user(&admin).get("/v1/clients/not%20an%20id").await;
    assert_error(status, &err, 404, "not_found");
}

#[tokio::test]
async fn reading_and_changing_clients_need_their_permissions() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let created = register(&s, &admin, web_app()).await;
    let path = format!("/v1/clients/{}", created["client_id"].as_str().unwrap());
    let reader = user_with(&s, &admin, "client-reader", &["clients:read"]).await;
    let writer = user_with(&s, &admin, "client-writer", &["clients:*"]).await;
    let plain = s.signup("plain@example.com", PASSWORD).await;

    for token in [access(&plain), access(&reader)] {
        let (status, err) = s.as_user(token).post("/v1/clients", web_app()).await;
        assert_error(status, &err, 403, "forbidden");
        let (status, err) = s.as_user(token).patch(&path, json!({"name": "x"})).await;
        assert_error(status, &err, 403, "forbidden");
        let (status, err) = s.as_user(token).delete(&path).await;
        assert_error(status, &err, 403, "forbidden");
        let (status, err) = s
            .as_user(token)
            .request(reqwest::Method::POST, &format!("{path}/secret"))
            .await;
        assert_error(status, &err, 403, "forbidden");
    }
    let (status, err) = s.as_user(access(&plain)).get("/v1/clients").await;
    assert_error(status, &err, 403, "forbidden");
    let (status, err) = s.as_user(access(&plain)).get(&path).await;
    assert_error(status, &err, 403, "forbidden");
    assert_eq!(s.as_user(access(&reader)).get("/v1/clients").await.0, 200);
    assert_eq!(s.as_user(access(&reader)).get(&path).await.0, 200);
    let (status, _) = s.get("/v1/clients").await;
    assert_eq!(status, 401);

    let w = access(&writer);
    assert_eq!(s.as_user(w).post("/v1/clients", web_app()).await.0, 201);
    assert_eq!(s.as_user(w).patch(&path, json!({"name": "y"})).await.0, 200);
    let (status, rotated) = s
        .as_user(w)
        .request(reqwest::Method::POST, &format!("{path}/secret"))
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(s.as_user(w).delete(&path).await.0, 204);
}

#[tokio::test]
async fn another_tenants_client_is_not_found_even_for_its_admin_elsewhere() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let op = access(&root).to_string();
    let (status, body) = s
        .as_user(&op)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme", "admin": {"email": "boss@acme.test", "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let boss = login_in(&s, "acme", "boss@acme.test", PASSWORD).await;
    let acme_admin = access(&boss).to_string();
    let theirs = register(&s, &acme_admin, web_app()).await;
    let path = format!("/v1/clients/{}", theirs["client_id"].as_str().unwrap());
    let secret = theirs["client_secret"].as_str().unwrap();

    // The default tenant's admin (an operator, even) sees nothing of it.
    let (_, list) = s.as_user(&op).get("/v1/clients").await;
    assert_eq!(list["items"], json!([]));
    let (status, err) = s.as_user(&op).get(&path).await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s.as_user(&op).patch(&path, json!({"name": "pwned"})).await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s
        .as_user(&op)
        .request(reqwest::Method::POST, &format!("{path}/secret"))
        .await;
    assert_error(status, &err, 404, "not_found");
    let (status, err) = s.as_user(&op).delete(&path).await;
    assert_error(status, &err, 404, "not_found");
    // Still there, unchanged, with its secret.
    let (status, still) = s.as_user(&acme_admin).get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(still["name"], "Grafana");
    let id = theirs["client_id"].as_str().unwrap();
    let client = s.state().clients.authenticate(id, Some(secret)).await.unwrap();
    let acme = s.state().store.tenant_by_slug("acme").await.unwrap().unwrap();
    assert_eq!(client.tenant_id, acme.id);
    assert_eq!(
        s.state().clients.find_client(id).await.unwrap().map(|c| c.tenant_id),
        Some(acme.id)
    );
}

#[tokio::test]
async fn rotating_the_secret_stops_the_old_one_and_the_clients_sessions() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let created = register(&s, &admin, web_app()).await;
    let id = created["client_id"].as_str().unwrap().to_string();
    let old = created["client_secret"].as_str().unwrap().to_string();
    let ann = s.signup("ann@example.com", PASSWORD).await;
    let (client_access, client_refresh) = client_session(&s, &ann, &id).await;
    assert!(works(&s, &client_access).await);

    let resp = s
        .as_user(&admin)
        .request(reqwest::Method::POST, &format!("/v1/clients/{id}/secret"))
        .response()
        .await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let (status, rotated) = parts(resp).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new, old);

    // The attack: a leaked old secret, and tokens issued in its era.
    let e = s.state().clients.authenticate(&id, Some(&old)).await.unwrap_err();
    assert_eq!((e.status().as_u16(), e.code().as_str()), (401, "invalid_client"));
    s.state().clients.authenticate(&id, Some(new)).await.unwrap();
    assert!(!works(&s, &client_access).await, "the access token is denied at once");
    assert!(!refreshes(&s, &client_refresh).await);
    // The user's own API session is not the client's: it goes on.
    assert!(works(&s, access(&ann)).await);
    assert!(refreshes(&s, refresh(&ann)).await);
    let (_, log) = s.as_user(&admin).get("/v1/audit?event=client_secret_rotated").await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
    assert!(!log.to_string().contains(new) && !log.to_string().contains(&old));
}

#[tokio::test]
async fn deleting_a_client_ends_its_sessions_at_once() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let doomed = register(&s, &admin, web_app()).await;
    let kept = register(&s, &admin, web_app()).await;
    let doomed_id = doomed["client_id"].as_str().unwrap();
    let kept_id = kept["client_id"].as_str().unwrap();
    let ann = s.signup("ann@example.com", PASSWORD).await;
    let (doomed_access, doomed_refresh) = client_session(&s, &ann, doomed_id).await;
    let (kept_access, _) = client_session(&s, &ann, kept_id).await;

    let (status, _) = s.as_user(&admin).delete(&format!("/v1/clients/{doomed_id}")).await;
    assert_eq!(status, 204);
    assert!(!works(&s, &doomed_access).await);
    assert!(!refreshes(&s, &doomed_refresh).await);
    assert!(works(&s, &kept_access).await);
    assert!(works(&s, access(&ann)).await);
}

#[tokio::test]
async fn a_user_lists_and_takes_back_their_consents() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let created = register(&s, &admin, web_app()).await;
    let id = created["client_id"].as_str().unwrap();
    let ann = s.signup("ann@example.com", PASSWORD).await;
    let bob = s.signup("bob@example.com", PASSWORD).await;
    let ann_id: uuid::Uuid = ann["user"]["id"].as_str().unwrap().parse().unwrap();
    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let meta = RequestMeta::default();
    let consents = &s.state().consents;
    let scopes = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert!(
        !consents
            .covers(tenant.id, ann_id, id, &scopes(&["openid"]))
            .await
            .unwrap()
    );
    consents
        .grant(tenant.id, ann_id, id, &scopes(&["openid", "email"]), &meta)
        .await
        .unwrap();
    assert!(
        consents
            .covers(tenant.id, ann_id, id, &scopes(&["email"]))
            .await
            .unwrap()
    );
    assert!(
        !consents
            .covers(tenant.id, ann_id, id, &scopes(&["email", "phone"]))
            .await
            .unwrap()
    );
    let (ann_client, _) = client_session(&s, &ann, id).await;
    let (bob_client, _) = client_session(&s, &bob, id).await;

    let (status, list) = s.as_user(access(&ann)).get("/v1/users/me/consents").await;
    assert_eq!(status, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["client_id"], id);
    assert_eq!(list["items"][0]["name"], "Grafana");
    assert_eq!(list["items"][0]["scopes"], json!(["openid", "email"]));
    assert!(list["items"][0]["granted_at"].is_string());
    let (_, none) = s.as_user(access(&bob)).get("/v1/users/me/consents").await;
    assert_eq!(none["items"], json!([]));

    let path = format!("/v1/users/me/consents/{id}");
    let (status, _) = s.as_user(access(&ann)).delete(&path).await;
    assert_eq!(status, 204);
    assert!(!works(&s, &ann_client).await, "ann's session of the app ends");
    assert!(works(&s, &bob_client).await, "bob's does not");
    assert!(works(&s, access(&ann)).await, "nor ann's own");
    let (_, list) = s.as_user(access(&ann)).get("/v1/users/me/consents").await;
    assert_eq!(list["items"], json!([]));
    let (status, err) = s.as_user(access(&ann)).delete(&path).await;
    assert_error(status, &err, 404, "not_found");
    let (status, _) = s.delete(&path).await;
    assert_eq!(status, 401);
    let (_, log) = s.as_user(&admin).get("/v1/audit?event=consent_revoked").await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
    let (_, log) = s.as_user(&admin).get("/v1/audit?event=consent_granted").await;
    assert_eq!(log["items"][0]["detail"]["scopes"], json!(["openid", "email"]));
}
