//! Identity integrity (issue 9, items 1-5): what forge asserts about a person
//! is proven and bound to the tenant; sign-up cannot pre-hijack an account;
//! a stolen access token cannot change how the account signs in. Each test
//! performs the attack that worked on 0.1.0.

use forge::testing::{Call, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{claims, forward_auth, login_in};
use crate::{PASSWORD, access, assert_error, parts, refresh};

const OTHER_PASSWORD: &str = "another good passphrase 7";

/// Signs in with a one-time code sent to `phone` (or email).
async fn otp_sign_in(s: &TestServer, tenant: Option<&str>, field: &str, address: &str) -> (StatusCode, Value) {
    let in_tenant = |call: Call| match tenant {
        Some(t) => call.tenant(t),
        None => call,
    };
    let (status, body) = in_tenant(s.post("/v1/auth/otp", json!({ field: address }))).await;
    assert_eq!(status, 202, "{body}");
    let code = s.last_code(address).await;
    in_tenant(s.post("/v1/auth/otp/verify", json!({ field: address, "code": code }))).await
}

/// The attacker's move: an account with someone else's email, the
/// attacker's phone and the attacker's password.
async fn pre_register(s: &TestServer, email: &str, phone: &str) -> Value {
    let body = json!({"email": email, "password": OTHER_PASSWORD, "phone": phone});
    let (status, body) = s.post("/v1/auth/signup", body).await;
    assert_eq!(status, 201, "{body}");
    body
}

/// The status of a password sign-in.
async fn password_login(s: &TestServer, email: &str, password: &str) -> StatusCode {
    let body = json!({"email": email, "password": password});
    s.post("/v1/auth/login", body).await.0
}

async fn make_tenant(s: &TestServer, operator: &str, slug: &str, admin_email: &str) {
    let (status, body) = s
        .as_user(operator)
        .post(
            "/v1/tenants",
            json!({"slug": slug, "name": slug, "admin": {"email": admin_email, "password": PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// Item 1 and 2: signing up in another tenant with the operator's address
/// gave a token whose forward-auth answer named the operator.
#[tokio::test]
async fn an_unproven_address_is_never_asserted_and_tenants_do_not_mix() {
    let s = TestServer::start().await;
    let root = s.admin("ops@example.com", PASSWORD).await;
    make_tenant(&s, access(&root), "acme", "boss@acme.io").await;

    let (status, mallory) = s
        .post(
            "/v1/auth/signup",
            json!({"email": "OPS@example.com", "password": OTHER_PASSWORD}),
        )
        .tenant("acme")
        .await;
    assert_eq!(status, 201, "{mallory}");
    let token = access(&mallory);
    let c = claims(token);
    assert!(c.get("email").is_none(), "an unverified email went into the token: {c}");
    assert_eq!(c["email_verified"], false);

    // The protected app is of the default tenant: a token of acme is nobody there.
    let (status, body) = parts(forward_auth(&s, token, "").await).await;
    assert_error(status, &body, 403, "wrong_tenant");
    // In its own tenant it is asserted by user id, not by the unproven address.
    let resp = forward_auth(&s, token, "tenant=acme").await;
    assert_eq!(resp.status(), 200);
    let user_id = mallory["user"]["id"].as_str().unwrap();
    assert_eq!(resp.headers()["remote-user"], user_id);
    assert!(resp.headers().get("remote-email").is_none());
    assert_eq!(resp.headers()["x-forge-tenant"], "acme");

    // The operator's own (verified) address is asserted, in the default tenant only.
    let resp = forward_auth(&s, access(&root), "role=admin").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["remote-user"], "ops@example.com");
    assert_eq!(resp.headers()["remote-email"], "ops@example.com");
    assert_eq!(claims(access(&root))["email_verified"], true);

    // An admin of acme is not an admin of the default tenant.
    let boss = login_in(&s, "acme", "boss@acme.io", PASSWORD).await;
    assert_eq!(forward_auth(&s, access(&boss), "role=admin").await.status(), 403);
    assert_eq!(
        forward_auth(&s, access(&boss), "permission=users:read").await.status(),
        403
    );
    assert_eq!(
        forward_auth(&s, access(&boss), "tenant=acme&role=admin").await.status(),
        200
    );
    let (status, body) = parts(forward_auth(&s, access(&boss), "tenant=Not%20A%20Slug").await).await;
    assert_error(status, &body, 400, "validation_failed");
}

/// Item 1: a proven phone is asserted when there is no proven email.
#[tokio::test]
async fn a_proven_phone_is_the_remote_user_without_a_proven_email() {
    let s = TestServer::start().await;
    let (status, session) = otp_sign_in(&s, None, "phone", "+14155550142").await;
    assert_eq!(status, 200, "{session}");
    let c = claims(access(&session));
    assert_eq!(c["phone"], "+14155550142");
    assert_eq!(c["phone_verified"], true);
    let resp = forward_auth(&s, access(&session), "").await;
    assert_eq!(resp.headers()["remote-user"], "+14155550142");
    assert!(resp.headers().get("remote-email").is_none());
}

/// Item 3: one person, one address.
#[tokio::test]
async fn look_alike_addresses_are_refused_and_domains_are_ascii() {
    let s = TestServer::start().await;
    s.signup_verified("ops@example.com", PASSWORD).await;
    // A fullwidth `ｏ`, a Cyrillic `а`: refused, not mapped and not stored raw.
    for spoof in [
        "\u{ff4f}ps@example.com",
        "\u{043e}ps@example.com",
        "op\u{0430}s@example.com",
    ] {
        let (status, body) = s
            .post("/v1/auth/signup", json!({"email": spoof, "password": OTHER_PASSWORD}))
            .await;
        if status == 400 {
            assert!(body["fields"]["email"].is_string(), "{body}");
        } else {
            // A whole-script Cyrillic local part is a different, honest address.
            assert_eq!(status, 201, "{spoof}: {body}");
            assert_ne!(body["user"]["email"], "ops@example.com");
        }
    }
    let (status, body) = s
        .post(
            "/v1/auth/signup",
            json!({"email": "\u{ff4f}ps@example.com", "password": OTHER_PASSWORD}),
        )
        .await;
    assert_error(status, &body, 400, "validation_failed");
    // Case and the domain's spelling do not make a second account.
    let (status, body) = s
        .post(
            "/v1/auth/signup",
            json!({"email": "OPS@EXAMPLE.COM", "password": OTHER_PASSWORD}),
        )
        .await;
    assert_error(status, &body, 409, "email_taken");
    // An internationalised domain is kept (and asserted) in punycode.
    let session = s.signup_verified("kai@bücher.example", PASSWORD).await;
    assert_eq!(session["user"]["email"], "kai@xn--bcher-kva.example");
    let resp = forward_auth(&s, access(&session), "").await;
    assert_eq!(resp.headers()["remote-email"], "kai@xn--bcher-kva.example");
}

/// Item 4, with `require_email_verification`: the attacker signs up with the
/// victim's email and their own phone, and the phone code must not open the
/// account; after the victim's reset the phone is gone.
#[tokio::test]
async fn pre_hijacking_through_a_phone_is_stopped() {
    // Rate limits off: the resend cooldown runs on the wall clock.
    let s = TestServer::start_with(|c| {
        c.signup.require_email_verification = true;
        c.rate_limit.enabled = false;
    })
    .await;
    let body = pre_register(&s, "victim@example.com", "+14155550177").await;
    let victim_id = body["user"]["id"].as_str().unwrap().to_string();
    let (status, body) = otp_sign_in(&s, None, "phone", "+14155550177").await;
    assert_error(status, &body, 403, "email_not_verified");

    // The victim takes the address back with a reset.
    let (status, _) = s
        .post("/v1/auth/password/forgot", json!({"email": "victim@example.com"}))
        .await;
    assert_eq!(status, 202);
    let code = s.last_code("victim@example.com").await;
    let (status, body) = s
        .post(
            "/v1/auth/password/reset",
            json!({"email": "victim@example.com", "code": code, "new_password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let victim = s.login("victim@example.com", PASSWORD).await;
    assert_eq!(
        victim["user"]["phone"],
        Value::Null,
        "the attacker's phone stayed: {victim}"
    );
    assert_eq!(victim["user"]["email_verified"], true);
    // The phone now reaches (at most) a new, empty account, never the victim's.
    let (status, body) = otp_sign_in(&s, None, "phone", "+14155550177").await;
    if status == 200 {
        assert_ne!(body["user"]["id"], victim_id.as_str());
    }
    assert_eq!(
        password_login(&s, "victim@example.com", OTHER_PASSWORD).await,
        401,
        "the attacker's password still works"
    );
}

/// Item 4, without `require_email_verification`: the attacker's session,
/// password and phone all die when the owner proves the address.
#[tokio::test]
async fn the_first_proof_of_an_address_evicts_the_pre_hijacker() {
    let s = TestServer::start().await;
    let attacker = pre_register(&s, "victim@example.com", "+14155550178").await;
    // The owner asks for a verification code and proves the address.
    let (status, _) = s
        .post("/v1/auth/email/verify/request", json!({"email": "victim@example.com"}))
        .await;
    assert_eq!(status, 202);
    let code = s.last_code("victim@example.com").await;
    let (status, victim) = s
        .post(
            "/v1/auth/email/verify",
            json!({"email": "victim@example.com", "code": code}),
        )
        .await;
    assert_eq!(status, 200, "{victim}");
    assert_eq!(victim["user"]["phone"], Value::Null);
    let (status, _) = s.as_user(access(&attacker)).get("/v1/users/me").await;
    assert_eq!(status, 401, "the attacker's session survived");
    let (status, _) = s
        .post("/v1/auth/refresh", json!({"refresh_token": refresh(&attacker)}))
        .await;
    assert_eq!(status, 401, "the attacker's refresh token survived");
    assert_eq!(
        password_login(&s, "victim@example.com", OTHER_PASSWORD).await,
        401,
        "the attacker's password survived"
    );
    // The owner's own session works.
    let (status, me) = s.as_user(access(&victim)).get("/v1/users/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["email_verified"], true);
}

/// Item 4: a phone proven first frees the unproven email someone typed.
#[tokio::test]
async fn a_phone_proven_first_drops_an_unproven_email() {
    let s = TestServer::start().await;
    pre_register(&s, "someone@example.com", "+14155550179").await;
    let (status, session) = otp_sign_in(&s, None, "phone", "+14155550179").await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["user"]["email"], Value::Null);
    // The address is free for its owner.
    s.signup("someone@example.com", PASSWORD).await;
}

/// Item 4: the owner who proves the address while signed in keeps the password.
#[tokio::test]
async fn the_owner_keeps_their_password() {
    let s = TestServer::start().await;
    let session = s.signup("owner@example.com", PASSWORD).await;
    let session = s.verify_email(&session).await;
    assert_eq!(session["user"]["email_verified"], true);
    s.login("owner@example.com", PASSWORD).await;
}

/// Item 5: a leaked access token alone cannot move the account to another
/// address (0.1.0: PATCH the email, then forgot + reset through it).
#[tokio::test]
async fn a_stolen_token_cannot_change_the_address() {
    let s = TestServer::start().await;
    let session = s.signup_verified("ann@example.com", PASSWORD).await;
    let token = access(&session);
    let patch = |body: Value| s.as_user(token).patch("/v1/users/me", body);
    let (status, body) = patch(json!({"email": "root@example.com"})).await;
    assert_error(status, &body, 401, "reauthentication_required");
    let (status, body) = patch(json!({"phone": "+14155550180"})).await;
    assert_error(status, &body, 401, "reauthentication_required");
    let (status, body) = patch(json!({"email": "root@example.com", "current_password": OTHER_PASSWORD})).await;
    assert_error(status, &body, 401, "invalid_credentials");
    let (_, me) = s.as_user(token).get("/v1/users/me").await;
    assert_eq!(me["email"], "ann@example.com");

    // With the password the change is pending until the new address answers.
    let (status, body) = patch(json!({"email": "ann.new@example.com", "current_password": PASSWORD})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["email"], "ann@example.com");
    assert_eq!(body["pending_email"], "ann.new@example.com");
    let resp = forward_auth(&s, token, "").await;
    assert_eq!(resp.headers()["remote-email"], "ann@example.com");
    let other = s.login("ann@example.com", PASSWORD).await;
    let (status, body) = s
        .as_user(token)
        .post("/v1/auth/email/verify", json!({"code": "000000"}))
        .await;
    assert_error(status, &body, 400, "invalid_code");
    let code = s.last_code("ann.new@example.com").await;
    let (status, me) = s
        .as_user(token)
        .post("/v1/auth/email/verify", json!({"code": code}))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "ann.new@example.com");
    assert_eq!(me["email_verified"], true);
    // The old address is told, with when and from where.
    let notice = &s.outbox("ann@example.com").await[0];
    assert_eq!(notice["kind"], "address_changed");
    assert_eq!(notice["code"], "");
    let body = notice["body"].as_str().unwrap();
    assert!(body.contains("127.0.0.1") && body.contains("email address"), "{body}");
    // Every other session ended.
    let (status, _) = s.as_user(access(&other)).get("/v1/users/me").await;
    assert_eq!(status, 401);
    s.login("ann.new@example.com", PASSWORD).await;
}

/// Item 5: an account without a password proves itself with a code sent to
/// its current address.
#[tokio::test]
async fn a_passwordless_account_reauthenticates_with_a_code() {
    // Rate limits off: the resend cooldown runs on the wall clock.
    let s = TestServer::start_with(|c| c.rate_limit.enabled = false).await;
    let (status, session) = otp_sign_in(&s, None, "phone", "+14155550181").await;
    assert_eq!(status, 200, "{session}");
    let token = access(&session);
    let (status, body) = s
        .as_user(token)
        .patch("/v1/users/me", json!({"email": "bo@example.com"}))
        .await;
    assert_error(status, &body, 401, "reauthentication_required");
    let (status, _) = s.as_user(token).post("/v1/auth/reauthenticate", json!({})).await;
    assert_eq!(status, 202);
    let code = s.last_code("+14155550181").await;
    let (status, body) = s
        .as_user(token)
        .patch("/v1/users/me", json!({"email": "bo@example.com", "code": code}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pending_email"], "bo@example.com");
    let code = s.last_code("bo@example.com").await;
    let (status, me) = s
        .as_user(token)
        .post("/v1/auth/email/verify", json!({"code": code}))
        .await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "bo@example.com");
    assert_eq!(me["phone"], "+14155550181");
}

/// Same class as item 2, found while hunting: tokens name their tenant by
/// slug, so after a tenant was deleted and created again under the same slug
/// (and a restart emptied the deny list), introspection called the old
/// tenant's tokens active for the new tenant.
#[tokio::test]
async fn a_recreated_tenant_does_not_honour_the_old_tenants_tokens() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef-integrity";
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("forge.db").display());
    let configure = |c: &mut forge::Config| {
        c.database.url = url.clone();
        c.introspection.secret = Some(forge::secret::Secret::new(SECRET));
    };
    let a = TestServer::start_with(configure).await;
    let root = a.admin("ops@example.com", PASSWORD).await;
    make_tenant(&a, access(&root), "acme", "boss@acme.io").await;
    let old = login_in(&a, "acme", "boss@acme.io", PASSWORD).await;
    let (status, _) = a.as_user(access(&root)).delete("/v1/tenants/acme").await;
    assert_eq!(status, 204);
    a.clock().advance(5);
    make_tenant(&a, access(&root), "acme", "new-boss@acme.io").await;
    a.stop().await;
    let b = TestServer::start_with(configure).await;
    let (status, body) = parts(
        b.client()
            .post(b.url("/v1/auth/introspect"))
            .basic_auth("introspect", Some(SECRET))
            .json(&json!({"token": access(&old)}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["active"], false,
        "a token of the deleted tenant speaks for its successor: {body}"
    );
    assert_eq!(forward_auth(&b, access(&old), "tenant=acme").await.status(), 401);
}
