//! Message templates over HTTP: an operator's files in
//! `notify.templates_dir` replace the built-in texts, for every tenant or
//! for one, at the next message and without a restart; a broken file falls
//! back to the built-in and the code still goes out. Read from the dev
//! outbox as the person would get them (subject, text and HTML parts).

use std::path::Path;

use forge::testing::TestServer;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{PASSWORD, access};

pub(crate) fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Signs `email` up in `tenant`, asks for a verification code and returns
/// the email that carries it.
async fn verification(s: &TestServer, tenant: Option<&str>, email: &str) -> Value {
    let session = s.signup_in(tenant, email, PASSWORD).await;
    let mut call = s
        .as_user(access(&session))
        .request(Method::POST, "/v1/auth/email/verify/request");
    if let Some(t) = tenant {
        call = call.tenant(t);
    }
    let (status, body) = call.await;
    assert_eq!(status, 202, "{body}");
    s.outbox(email)
        .await
        .into_iter()
        .find(|m| m["kind"] == "email_verification")
        .unwrap_or_else(|| panic!("no verification email to {email}"))
}

fn text<'a>(m: &'a Value, field: &str) -> &'a str {
    m[field].as_str().unwrap_or_else(|| panic!("no {field} in {m}"))
}

#[tokio::test]
async fn overrides_apply_per_tenant_at_the_next_message_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap().to_owned();
    let s = TestServer::start_with(|c| {
        c.notify.templates_dir = root;
        c.rate_limit.enabled = false;
    })
    .await;
    let op = access(&s.admin("root@example.com", PASSWORD).await).to_string();
    let (status, body) = s
        .as_user(&op)
        .post("/v1/tenants", json!({"slug": "acme", "name": "Acme"}))
        .await;
    assert_eq!(status, 201, "{body}");

    // An empty directory: the built-ins, with an HTML part.
    let m = verification(&s, None, "one@example.com").await;
    let code = text(&m, "code").to_owned();
    assert_eq!(text(&m, "subject"), "Verify your email address for forge");
    assert!(text(&m, "body").contains("Please confirm that this email address is yours"));
    assert!(text(&m, "html").contains(&code), "{m}");

    // Files for every tenant, written while the server runs.
    let d = dir.path();
    write(
        d,
        "email_verification.subject",
        "Confirm {{ to }}\nfor {{ tenant.name }}",
    );
    write(d, "email_verification.txt", "Code: {{ code }} ({{ ttl }})");
    write(
        d,
        "email_verification.html",
        "<p>Code <b>{{ code }}</b> for {{ brand.name }}</p>",
    );
    let m = verification(&s, None, "two@example.com").await;
    let code = text(&m, "code");
    assert_eq!(text(&m, "subject"), "Confirm two@example.com for Default");
    assert_eq!(text(&m, "body"), format!("Code: {code} (15 minutes)"));
    assert_eq!(text(&m, "html"), format!("<p>Code <b>{code}</b> for Default</p>"));

    // One tenant's own text: its people get it, without the HTML written
    // for everyone; the other tenants keep the shared files.
    write(d, "tenants/acme/email_verification.txt", "Acme code {{ code }}");
    let m = verification(&s, Some("acme"), "three@example.com").await;
    assert_eq!(text(&m, "body"), format!("Acme code {}", text(&m, "code")));
    assert_eq!(text(&m, "subject"), "Confirm three@example.com for Acme");
    assert!(m.get("html").is_none(), "text only: {m}");
    let m = verification(&s, None, "four@example.com").await;
    assert_eq!(text(&m, "body"), format!("Code: {} (15 minutes)", text(&m, "code")));

    // A broken file: the built-in part, and the code still goes out.
    write(d, "email_verification.txt", "Code: {{ code ");
    let m = verification(&s, None, "five@example.com").await;
    let code = text(&m, "code");
    assert!(
        text(&m, "body").contains("Please confirm") && text(&m, "body").contains(code),
        "{m}"
    );
    // Each part stands alone: the HTML file still renders.
    assert_eq!(text(&m, "html"), format!("<p>Code <b>{code}</b> for Default</p>"));
}

#[tokio::test]
async fn notices_and_sms_use_their_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_owned();
    write(&d, "password_changed.txt", "{{ summary }} | {{ ip }} | {{ advice }}");
    write(&d, "password_changed.html", "");
    write(
        &d,
        "otp.sms",
        "{{ code }} is your {{ product }} code, {{ ttl_minutes }} min",
    );
    let root = d.to_str().unwrap().to_owned();
    let s = TestServer::start_with(|c| {
        c.notify.templates_dir = root;
        c.rate_limit.enabled = false;
    })
    .await;

    let session = s.signup("ada@example.com", PASSWORD).await;
    let (status, body) = s
        .as_user(access(&session))
        .post(
            "/v1/auth/password/change",
            json!({"current_password": PASSWORD, "new_password": "another correct horse battery staple"}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let m = s
        .outbox("ada@example.com")
        .await
        .into_iter()
        .find(|m| m["kind"] == "password_changed")
        .expect("a notice");
    let body = text(&m, "body");
    assert!(
        body.starts_with("The password of your account was changed on "),
        "{body}"
    );
    assert!(body.contains(" | 127.0.0.1 | If this was you"), "{body}");
    assert!(m.get("html").is_none(), "an empty HTML file sends text only: {m}");

    let (status, body) = s.post("/v1/auth/otp", json!({"phone": "+14155550123"})).await;
    assert_eq!(status, 202, "{body}");
    let m = &s.outbox("+14155550123").await[0];
    assert_eq!(
        text(m, "body"),
        format!("{} is your forge code, 5 min", text(m, "code"))
    );
}
