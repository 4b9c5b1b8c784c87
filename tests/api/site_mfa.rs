//! The admin site's sign-in asks a user with a confirmed factor for it:
//! the password alone sets no session cookie (the MFA bypass this closes).
//! The user page lists a user's second factors (never a secret) and resets
//! them behind a confirmation page: audited, the user told, CSRF-protected,
//! never the administrator's own.

use forge::testing::TestServer;
use serde_json::Value;
use totp_rs::TOTP;

use crate::support::provision;
use crate::support::site_client::{Browser, Page};
use crate::{PASSWORD, access};

async fn server() -> TestServer {
    TestServer::start_with(|c| c.admin.insecure_cookies = true).await
}

fn code_at(s: &TestServer, app: &TOTP) -> String {
    app.generate(u64::try_from(s.clock().now()).unwrap())
}

/// An operator with a confirmed TOTP factor: (app, recovery codes).
async fn operator_with_totp(s: &TestServer) -> (TOTP, Vec<String>) {
    let root = s.admin("root@example.com", PASSWORD).await;
    let token = access(&root).to_string();
    let (_, confirmed, app) = crate::factors::enrol(s, &token, "phone").await;
    let codes = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c: &Value| c.as_str().unwrap().to_string())
        .collect();
    // The confirmation used this step's code: move on to a fresh step.
    s.clock().advance(30);
    (app, codes)
}

fn hidden(page: &Page, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = page.body.find(&marker).expect("the hidden field") + marker.len();
    let end = page.body[start..].find('"').unwrap();
    page.body[start..start + end].to_string()
}

fn has_session(page: &Page) -> bool {
    page.set_cookies()
        .iter()
        .any(|c| c.starts_with("forge_admin=") && !c.starts_with("forge_admin=;"))
}

async fn second_step(b: &mut Browser, step: &Page, code: &str) -> Page {
    let csrf = step.csrf();
    let challenge = hidden(step, "challenge");
    b.post(
        "/admin/login/mfa",
        &[
            ("csrf", &csrf),
            ("challenge", &challenge),
            ("code", code),
            ("tenant", ""),
            ("next", ""),
        ],
    )
    .await
}

#[tokio::test]
async fn the_password_alone_does_not_sign_a_user_with_a_factor_in() {
    let s = server().await;
    let (app, _) = operator_with_totp(&s).await;
    let mut b = Browser::new(&s);
    let step = b.sign_in_to("", "root@example.com", PASSWORD).await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert!(!has_session(&step), "{:?}", step.set_cookies());
    assert!(step.body.contains("/admin/login/mfa"));
    assert_eq!(b.get("/admin").await.status, 303);

    // A wrong code: refused, generic, no session, same step again.
    let now = code_at(&s, &app);
    let wrong = if now == "000000" { "000001" } else { "000000" };
    let refused = second_step(&mut b, &step, wrong).await;
    assert_eq!(refused.status, 401);
    assert!(!has_session(&refused));
    // The right code signs in.
    let ok = second_step(&mut b, &refused, &code_at(&s, &app)).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(has_session(&ok));
    assert_eq!(ok.location(), "/admin");
    assert_eq!(b.get("/admin").await.status, 200);

    // The same code again, in a new sign-in: a replay, refused.
    let mut other = Browser::new(&s);
    let step = other.sign_in_to("", "root@example.com", PASSWORD).await;
    assert_eq!(step.status, 200);
    let replay = second_step(&mut other, &step, &code_at(&s, &app)).await;
    assert_eq!(replay.status, 401);
    assert!(!has_session(&replay));
}

#[tokio::test]
async fn a_recovery_code_signs_in_once_and_five_wrong_codes_burn_the_attempt() {
    let s = server().await;
    let (_app, codes) = operator_with_totp(&s).await;
    let mut b = Browser::new(&s);
    let step = b.sign_in_to("", "root@example.com", PASSWORD).await;
    let ok = second_step(&mut b, &step, &codes[0]).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(has_session(&ok));

    let mut again = Browser::new(&s);
    let step = again.sign_in_to("", "root@example.com", PASSWORD).await;
    let reused = second_step(&mut again, &step, &codes[0]).await;
    assert_eq!(reused.status, 401);
    assert!(!has_session(&reused));

    // Five wrong codes (counted from the reuse above) burn the attempt:
    // even a right code then needs a new sign-in.
    let mut page = reused;
    for _ in 0..4 {
        page = second_step(&mut again, &page, "nope-nope").await;
        assert_eq!(page.status, 401);
    }
    assert!(page.body.contains("Sign in again"), "{}", page.body);
    assert!(!page.body.contains("name=\"challenge\""));
}

#[tokio::test]
async fn users_without_a_factor_sign_in_with_the_password() {
    let s = server().await;
    s.admin("root@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    let page = b.sign_in("root@example.com", PASSWORD).await;
    assert!(has_session(&page));
}

/// The user's factors as the API lists them (factors and the recovery-code
/// item).
async fn api_factors(s: &TestServer, admin: &str, user: &str) -> Vec<Value> {
    let (status, body) = s.as_user(admin).get(&format!("/v1/users/{user}/factors")).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn mfa_resets(s: &TestServer, admin: &str, user: &str) -> Vec<Value> {
    let (status, log) = s
        .as_user(admin)
        .get(&format!("/v1/audit?limit=200&user_id={user}&event=mfa_reset"))
        .await;
    assert_eq!(status, 200, "{log}");
    log["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_user_page_lists_factors_without_secrets_and_resets_them() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let root_id = root["user"]["id"].as_str().unwrap().to_string();
    let op = access(&root).to_string();
    let ann = s.signup_verified("ann@example.com", PASSWORD).await;
    let ann_id = ann["user"]["id"].as_str().unwrap().to_string();
    let (started, confirmed, _) = crate::factors::enrol(&s, access(&ann), "pixel phone").await;
    let secret = started["secret"].as_str().unwrap();
    let codes: Vec<&str> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;

    // The page: the factor by kind and name, the codes by count, no secret.
    let detail = format!("/admin/users/{ann_id}");
    let page = b.get(&detail).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Second factors"));
    assert_eq!(page.body.matches("class=\"factor\"").count(), 1);
    assert!(page.body.contains("pixel phone"));
    assert!(page.body.contains("TOTP"));
    assert!(page.body.contains(&format!("{} unused", codes.len())), "{}", page.body);
    assert!(!page.body.contains(secret), "the TOTP secret is on the page");
    assert!(!page.body.contains("otpauth"));
    for code in &codes {
        assert!(!page.body.contains(code), "a recovery code is on the page");
    }
    assert!(page.body.contains("id=\"reset-factors\""));

    // The reset asks first.
    let reset = format!("/admin/users/{ann_id}/factors/reset");
    let confirm = b.get(&reset).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm
            .body
            .contains("recovery code of ann@example.com will be removed")
    );
    assert!(confirm.body.contains(&format!("action=\"{reset}\"")));

    // Attack: a post without the session's token (or with a forged one)
    // is refused and changes nothing.
    let real = confirm.csrf();
    let forged = format!("{}x", &real[..real.len() - 1]);
    for fields in [vec![], vec![("csrf", "")], vec![("csrf", forged.as_str())]] {
        let page = b.post(&reset, &fields).await;
        assert_eq!(page.status, 403, "{fields:?}");
        assert!(page.body.contains("security token"));
    }
    // Another administrator's session token is no good either.
    provision(&s, &op, "second@example.com", &["admin"]).await;
    let mut other = Browser::new(&s);
    other.sign_in("second@example.com", PASSWORD).await;
    let theirs = other.get("/admin").await.csrf();
    assert_eq!(b.post(&reset, &[("csrf", &theirs)]).await.status, 403);
    assert_eq!(api_factors(&s, &op, &ann_id).await.len(), 2);
    assert!(mfa_resets(&s, &op, &ann_id).await.is_empty());
    let told =
        |m: &Value| m["kind"] == "factor_changed" && m["body"].as_str().unwrap().contains("An administrator removed");
    assert!(!s.outbox("ann@example.com").await.iter().any(told));

    // The confirmed reset: everything goes, audited, Ann is told.
    let done = b.act(&reset, &[]).await;
    assert_eq!((done.status.as_u16(), done.location()), (303, detail.as_str()));
    let flash = b.flash(&detail).await;
    assert!(flash.contains("Removed 1 second factor "), "{flash}");
    assert!(api_factors(&s, &op, &ann_id).await.is_empty());
    let rows = mfa_resets(&s, &op, &ann_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["actor_id"], root_id);
    let outbox = s.outbox("ann@example.com").await;
    let notice = outbox.iter().find(|m| told(m)).expect("a factor_changed notice");
    assert!(
        notice["body"]
            .as_str()
            .unwrap()
            .contains("An administrator removed the second factors"),
        "{notice}"
    );
    let page = b.get(&detail).await;
    assert!(page.body.contains("No second factors."));
    assert!(!page.body.contains("id=\"reset-factors\""));
    assert!(!page.body.contains("pixel phone"));

    // An unknown user: 404, as every user page.
    let ghost = format!("/admin/users/{}/factors/reset", uuid::Uuid::now_v7());
    assert_eq!(b.get(&ghost).await.status, 404);
    let page = b.act(&ghost, &[]).await;
    assert_eq!(page.status, 303);
    assert!(b.flash("/admin").await.contains("not found"));
}

#[tokio::test]
async fn administrators_cannot_reset_their_own_factors_on_the_site() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let root_id = root["user"]["id"].as_str().unwrap().to_string();
    let op = access(&root).to_string();
    let (_, _, app) = crate::factors::enrol(&s, &op, "phone").await;
    s.clock().advance(30);
    let mut b = Browser::new(&s);
    let step = b.sign_in_to("", "root@example.com", PASSWORD).await;
    let ok = second_step(&mut b, &step, &code_at(&s, &app)).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let own = format!("/admin/users/{root_id}");

    // Their own page lists the factor but offers no reset.
    let page = b.get(&own).await;
    assert_eq!(page.body.matches("class=\"factor\"").count(), 1);
    assert!(page.body.contains("phone"));
    assert!(!page.body.contains("id=\"reset-factors\""));
    // The confirmation page and the post refuse it too.
    let reset = format!("{own}/factors/reset");
    let confirm = b.get(&reset).await;
    assert_eq!(confirm.status, 403, "{}", confirm.body);
    assert!(confirm.body.contains("your own account"));
    let page = b.act(&reset, &[]).await;
    assert_eq!((page.status.as_u16(), page.location()), (303, own.as_str()));
    assert!(b.flash(&own).await.contains("your own account"));
    assert_eq!(api_factors(&s, &op, &root_id).await.len(), 2);
    assert!(mfa_resets(&s, &op, &root_id).await.is_empty());
}

// ---- first factor enrolment on the site (tenant policy) ----

/// The operator's token and `second@example.com`, an administrator without
/// a factor, under a policy requiring administrators to have one.
async fn admin_under_policy(s: &TestServer) -> (String, String) {
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let id = provision(s, &op, "second@example.com", &["admin"]).await;
    let (status, body) = s
        .as_user(&op)
        .patch(
            "/v1/tenant/settings",
            serde_json::json!({"mfa": {"policy": "roles", "roles": ["admin"]}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (op, id)
}

/// The text between `start` (its end) and the next `end` in `page`.
fn between<'a>(page: &'a Page, start: &str, end: &str) -> &'a str {
    let from = page
        .body
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {}", page.body))
        + start.len();
    let to = page.body[from..].find(end).unwrap();
    &page.body[from..from + to]
}

/// The authenticator app of the enrolment page, from its `otpauth://` link,
/// checked against the secret shown for manual entry and the QR code (an
/// SVG image).
fn enrolment_app(page: &Page) -> TOTP {
    use base64::Engine;
    let qr = between(page, "id=\"totp-qr\" src=\"data:image/svg+xml;base64,", "\"");
    let svg = base64::engine::general_purpose::STANDARD.decode(qr).unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    let uri = format!("otpauth{}", between(page, "<a href=\"otpauth", "\""))
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&#47;", "/");
    let app = TOTP::from_url(&uri).unwrap();
    let secret = between(page, "id=\"totp-secret\">", "</code>");
    let bytes = totp_rs::Secret::Encoded(secret.to_string()).to_bytes().unwrap();
    assert_eq!(app.secret, bytes, "the shown secret is the QR code's");
    app
}

/// A six-digit code that is not `app`'s around now.
fn wrong_code(s: &TestServer, app: &TOTP) -> String {
    let now = u64::try_from(s.clock().now()).unwrap();
    let near: Vec<String> = [now - 30, now, now + 30].iter().map(|t| app.generate(*t)).collect();
    (0..)
        .map(|n| format!("{:06}", 123_456 + n))
        .find(|c| !near.contains(c))
        .unwrap()
}

async fn enrol_step(b: &mut Browser, step: &Page, code: &str) -> Page {
    let csrf = step.csrf();
    let challenge = hidden(step, "challenge");
    let factor = hidden(step, "factor");
    b.post(
        "/admin/login/enrol",
        &[
            ("csrf", &csrf),
            ("challenge", &challenge),
            ("factor", &factor),
            ("code", code),
            ("tenant", ""),
            ("next", ""),
        ],
    )
    .await
}

async fn audit_rows(s: &TestServer, op: &str, query: &str) -> Vec<Value> {
    let (status, log) = s.as_user(op).get(&format!("/v1/audit?limit=200&{query}")).await;
    assert_eq!(status, 200, "{log}");
    log["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_administrator_under_the_policy_enrols_a_factor_on_the_site() {
    let s = server().await;
    let (op, id) = admin_under_policy(&s).await;
    let mut b = Browser::new(&s);
    let step = b.sign_in_to("", "second@example.com", PASSWORD).await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert!(!has_session(&step), "{:?}", step.set_cookies());
    assert!(step.body.contains("action=\"/admin/login/enrol\""), "{}", step.body);
    let app = enrolment_app(&step);
    assert_eq!(b.get("/admin").await.status, 303, "no session yet");

    // Attack: the step without the form's token, or with a forged one, or
    // from another site, is refused and confirms nothing.
    let challenge = hidden(&step, "challenge");
    let factor = hidden(&step, "factor");
    let code = code_at(&s, &app);
    let real = step.csrf();
    let forged = format!("{}x", &real[..real.len() - 1]);
    for csrf in ["", forged.as_str()] {
        let page = b
            .post(
                "/admin/login/enrol",
                &[
                    ("csrf", csrf),
                    ("challenge", &challenge),
                    ("factor", &factor),
                    ("code", &code),
                ],
            )
            .await;
        assert_eq!(page.status, 403, "{}", page.body);
        assert!(!has_session(&page));
    }
    let cross = b
        .request(reqwest::Method::POST, "/admin/login/enrol")
        .header("sec-fetch-site", "cross-site")
        .form(&[
            ("csrf", real.as_str()),
            ("challenge", &challenge),
            ("factor", &factor),
            ("code", &code),
        ]);
    let page = b.send(cross).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(!has_session(&page));
    assert!(api_factors(&s, &op, &id).await.is_empty(), "nothing confirmed");

    // A wrong code: the factor stays pending, no session.
    let refused = enrol_step(&mut b, &step, &wrong_code(&s, &app)).await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(!has_session(&refused), "{:?}", refused.set_cookies());
    assert!(refused.body.contains("Wrong or expired code"), "{}", refused.body);
    assert!(!refused.body.contains("totp-secret"), "the secret is shown once");
    assert!(api_factors(&s, &op, &id).await.is_empty(), "still pending");
    assert_eq!(b.get("/admin").await.status, 303);

    // The right code: the factor is confirmed, the recovery codes are shown
    // once and the session opens, at aal 2.
    let done = enrol_step(&mut b, &refused, &code_at(&s, &app)).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(has_session(&done), "{:?}", done.set_cookies());
    assert!(
        done.set_cookies().iter().any(|c| c.starts_with("forge_admin_login=;")),
        "the form's token is dropped"
    );
    let codes: Vec<String> = between(&done, "id=\"recovery-codes\">", "</ol>")
        .split("<li>")
        .skip(1)
        .map(|c| c.split("</li>").next().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10, "{}", done.body);
    assert_eq!(done.headers["cache-control"], "no-store", "the codes are not cached");
    assert!(done.body.contains("href=\"/admin\""));
    assert_eq!(b.get("/admin").await.status, 200);
    let factors = api_factors(&s, &op, &id).await;
    assert_eq!(factors.len(), 2, "the factor and the recovery codes: {factors:?}");
    let logins = audit_rows(&s, &op, &format!("user_id={id}&event=admin_login")).await;
    assert_eq!(logins.len(), 1);
    assert_eq!(logins[0]["detail"]["amr"], serde_json::json!(["mfa", "otp", "pwd"]));
    let enrolled = audit_rows(&s, &op, &format!("user_id={id}&event=mfa_enrolled")).await;
    assert_eq!(enrolled.len(), 1);
    assert!(
        audit_rows(&s, &op, &format!("user_id={id}&event=admin_login_denied"))
            .await
            .is_empty()
    );

    // The step is spent: the same form again opens nothing.
    let mut thief = Browser::new(&s);
    thief.cookies = b.cookies.clone();
    thief.cookies.remove("forge_admin");
    let form = thief.get("/admin/login").await;
    let replay = thief
        .post(
            "/admin/login/enrol",
            &[
                ("csrf", &form.csrf()),
                ("challenge", &challenge),
                ("factor", &factor),
                ("code", &code_at(&s, &app)),
                ("tenant", ""),
            ],
        )
        .await;
    assert_eq!(replay.status, 401, "{}", replay.body);
    assert!(replay.body.contains("Sign in again"));
    assert!(!has_session(&replay));

    // From now on the password leads to the second step; a recovery code
    // from the page passes it.
    let mut again = Browser::new(&s);
    let step = again.sign_in_to("", "second@example.com", PASSWORD).await;
    assert_eq!(step.status, 200);
    assert!(step.body.contains("action=\"/admin/login/mfa\""), "{}", step.body);
    let ok = second_step(&mut again, &step, &codes[0]).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert!(has_session(&ok));
}

#[tokio::test]
async fn five_wrong_enrolment_codes_burn_the_attempt() {
    let s = server().await;
    let (op, id) = admin_under_policy(&s).await;
    let mut b = Browser::new(&s);
    let step = b.sign_in_to("", "second@example.com", PASSWORD).await;
    let app = enrolment_app(&step);
    let mut page = step;
    for _ in 0..4 {
        page = enrol_step(&mut b, &page, &wrong_code(&s, &app)).await;
        assert_eq!(page.status, 401, "{}", page.body);
        assert!(page.body.contains("name=\"challenge\""));
    }
    let last = enrol_step(&mut b, &page, &wrong_code(&s, &app)).await;
    assert_eq!(last.status, 401);
    assert!(last.body.contains("Sign in again"), "{}", last.body);
    assert!(!last.body.contains("name=\"challenge\""));
    // Even the right code is too late now.
    let late = b
        .post(
            "/admin/login/enrol",
            &[
                ("csrf", &last.csrf()),
                ("challenge", &hidden(&page, "challenge")),
                ("factor", &hidden(&page, "factor")),
                ("code", &code_at(&s, &app)),
            ],
        )
        .await;
    assert_eq!(late.status, 401, "{}", late.body);
    assert!(late.body.contains("Sign in again"));
    assert!(!has_session(&late));
    assert!(api_factors(&s, &op, &id).await.is_empty(), "the factor stays pending");
}

#[tokio::test]
async fn the_site_enrolment_step_and_the_api_enrollment_token_do_not_mix() {
    let s = server().await;
    let (_, id) = admin_under_policy(&s).await;

    // Attack: the site's hidden challenge as the API's enrolment bearer.
    let mut b = Browser::new(&s);
    let step = b.sign_in_to("", "second@example.com", PASSWORD).await;
    let site_token = hidden(&step, "challenge");
    let (status, body) = s
        .as_user(&site_token)
        .post("/v1/users/me/factors/totp", serde_json::json!({}))
        .await;
    crate::assert_error(status, &body, 401, "invalid_token");
    let confirm = format!("/v1/users/me/factors/totp/{}/confirm", hidden(&step, "factor"));
    let app = enrolment_app(&step);
    let (status, body) = s
        .as_user(&site_token)
        .post(&confirm, serde_json::json!({"code": code_at(&s, &app)}))
        .await;
    crate::assert_error(status, &body, 401, "invalid_token");

    // Attack: an API enrollment_token (any client of a user the policy
    // covers gets one) in the site's form, with the right code of the
    // factor it started.
    let tenant = s.state().store.tenant_by_slug("default").await.unwrap().unwrap();
    let user = s
        .state()
        .store
        .get_user(tenant.id, uuid::Uuid::parse_str(&id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let api_token = s
        .state()
        .mfa_policies
        .enrollment_token(
            &tenant,
            &user,
            &forge::domain::Assurance::password(),
            &forge::service::RequestMeta::default(),
        )
        .await
        .unwrap();
    let api_token = api_token.expose().to_string();
    let (status, started) = s
        .as_user(&api_token)
        .post("/v1/users/me/factors/totp", serde_json::json!({}))
        .await;
    assert_eq!(status, 200, "{started}");
    let api_app = crate::factors::app(&started);
    let mut b = Browser::new(&s);
    let form = b.get("/admin/login").await;
    let page = b
        .post(
            "/admin/login/enrol",
            &[
                ("csrf", &form.csrf()),
                ("challenge", &api_token),
                ("factor", started["id"].as_str().unwrap()),
                ("code", &code_at(&s, &api_app)),
                ("tenant", ""),
                ("next", ""),
            ],
        )
        .await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("Sign in again"), "{}", page.body);
    assert!(!has_session(&page));
    // Untouched: the API token still completes its own enrolment.
    let confirm = format!("/v1/users/me/factors/totp/{}/confirm", started["id"].as_str().unwrap());
    let (status, done) = s
        .as_user(&api_token)
        .post(&confirm, serde_json::json!({"code": code_at(&s, &api_app)}))
        .await;
    assert_eq!(status, 200, "{done}");
}

#[tokio::test]
async fn a_non_admin_under_the_policy_is_never_offered_enrolment() {
    let s = server().await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let ann = provision(&s, &op, "ann@example.com", &[]).await;
    let (status, body) = s
        .as_user(&op)
        .patch("/v1/tenant/settings", serde_json::json!({"mfa": {"policy": "all"}}))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut b = Browser::new(&s);
    let page = b.sign_in_to("", "ann@example.com", PASSWORD).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert!(!has_session(&page));
    assert!(!page.body.contains("/admin/login/enrol"), "{}", page.body);
    assert!(!page.body.contains("totp-secret"));
    assert!(!page.body.contains("name=\"challenge\""));
    let denied = audit_rows(&s, &op, &format!("user_id={ann}&event=admin_login_denied")).await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0]["detail"]["reason"], "not_admin");
    // Not even a pending factor was started for her.
    let pending = s
        .state()
        .store
        .list_factors(forge::store::DEFAULT_TENANT_ID, uuid::Uuid::parse_str(&ann).unwrap())
        .await
        .unwrap();
    assert!(pending.is_empty(), "{pending:?}");
}

#[tokio::test]
async fn an_administrator_under_the_policy_may_enrol_a_passkey_instead() {
    use forge::testing::passkey::SoftPasskey;
    let s = server().await;
    let (op, id) = admin_under_policy(&s).await;
    let mut b = Browser::new(&s);
    let step = b.sign_in_to("", "second@example.com", PASSWORD).await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert!(step.body.contains("id=\"passkey-add\""), "{}", step.body);
    assert!(step.body.contains("<script nonce=\""));
    let csrf = step.csrf();
    let challenge = hidden(&step, "challenge");
    let factor = hidden(&step, "factor");

    // Attack: the options without the form's token.
    let refused = b
        .post(
            "/admin/login/enrol/passkey/options",
            &[("challenge", &challenge), ("tenant", "")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    let options = b
        .post(
            "/admin/login/enrol/passkey/options",
            &[("csrf", &csrf), ("challenge", &challenge), ("tenant", "")],
        )
        .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let options: Value = serde_json::from_str(&options.body).unwrap();
    let request_id = options["request_id"].as_str().unwrap();

    // A refused answer counts as a wrong attempt: no session.
    let bad = b
        .post(
            "/admin/login/enrol/passkey",
            &[
                ("csrf", &csrf),
                ("challenge", &challenge),
                ("factor", &factor),
                ("request_id", request_id),
                ("credential", "{\"id\": \"nope\"}"),
                ("tenant", ""),
                ("next", ""),
            ],
        )
        .await;
    assert_eq!(bad.status, 401, "{}", bad.body);
    assert!(!has_session(&bad));
    assert!(bad.body.contains("The passkey was not added"), "{}", bad.body);

    // The passkey: confirmed at once, the codes shown, the session open.
    let options = b
        .post(
            "/admin/login/enrol/passkey/options",
            &[("csrf", &bad.csrf()), ("challenge", &challenge), ("tenant", "")],
        )
        .await;
    assert_eq!(options.status, 200, "{}", options.body);
    let options: Value = serde_json::from_str(&options.body).unwrap();
    let mut key = SoftPasskey::new("http://localhost:8080");
    let credential = key.register(&options["publicKey"]);
    let done = b
        .post(
            "/admin/login/enrol/passkey",
            &[
                ("csrf", &bad.csrf()),
                ("challenge", &challenge),
                ("factor", &factor),
                ("request_id", options["request_id"].as_str().unwrap()),
                ("credential", &credential.to_string()),
                ("tenant", ""),
                ("next", ""),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(has_session(&done));
    assert_eq!(done.body.matches("<li>").count(), 10, "{}", done.body);
    assert_eq!(b.get("/admin").await.status, 200);
    let logins = audit_rows(&s, &op, &format!("user_id={id}&event=admin_login")).await;
    assert_eq!(logins.len(), 1);
    let amr = logins[0]["detail"]["amr"].as_array().unwrap();
    assert!(amr.contains(&serde_json::json!("mfa")), "{amr:?}");
    assert!(amr.contains(&serde_json::json!("pwd")), "{amr:?}");
    let enrolled = audit_rows(&s, &op, &format!("user_id={id}&event=mfa_enrolled")).await;
    assert_eq!(enrolled.len(), 1);
    assert_eq!(enrolled[0]["detail"]["type"], "webauthn", "{enrolled:?}");
}
