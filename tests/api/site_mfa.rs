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
    let told = |m: &Value| m["kind"] == "factor_changed";
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
