//! The admin site's sign-in asks a user with a confirmed factor for it:
//! the password alone sets no session cookie (the MFA bypass this closes).

use forge::testing::TestServer;
use serde_json::Value;
use totp_rs::TOTP;

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
