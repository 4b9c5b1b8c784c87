//! The admin site's Webhooks pages over HTTP, as a browser without
//! JavaScript uses them: adding an endpoint (its secret shown once, on the
//! answer only), a refused target named on the form, the deliveries with
//! status, attempts and last answer, replaying one, turning the endpoint off
//! and on, rotating its secret and deleting it after confirmation.

use std::time::{Duration, Instant};

use forge::testing::TestServer;

use crate::support::site_client::Browser;
use crate::webhooks::Receiver;
use crate::{PASSWORD, access};

/// The text between `marker` and the next `<` in `body`.
fn text_after<'a>(body: &'a str, marker: &str) -> &'a str {
    let start = body.find(marker).unwrap_or_else(|| panic!("no {marker} in {body}")) + marker.len();
    let rest = &body[start..];
    &rest[..rest.find('<').unwrap()]
}

#[tokio::test]
async fn an_endpoint_is_added_its_deliveries_listed_rotated_and_it_is_deleted() {
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.enabled = false;
    })
    .await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let _ = access(&root);
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;

    let list = b.get("/admin/webhooks").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains("href=\"/admin/webhooks\" aria-current=\"page\">Webhooks</a>")
    );
    assert!(list.body.contains("No endpoints yet."));

    // The SSRF guard speaks on the form, and nothing is created.
    let refused = b
        .act(
            "/admin/webhooks",
            &[
                ("url", "https://169.254.169.254/latest"),
                ("events", "user.*"),
                ("description", ""),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.body.contains("id=\"form-error\""), "{}", refused.body);
    assert!(refused.body.contains("value=\"https://169.254.169.254/latest\""));
    assert!(
        s.state()
            .store
            .list_webhooks(forge::store::DEFAULT_TENANT_ID)
            .await
            .unwrap()
            .is_empty()
    );

    // An endpoint nothing listens on: its deliveries fail and are retried.
    let added = b
        .act(
            "/admin/webhooks",
            &[
                ("url", "https://hooks.example.invalid/forge"),
                ("events", "user.* session.created"),
                ("description", "app"),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let secret = text_after(&added.body, "id=\"webhook-secret\">").to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let id = s
        .state()
        .store
        .list_webhooks(forge::store::DEFAULT_TENANT_ID)
        .await
        .unwrap()[0]
        .id;
    let list = b.get("/admin/webhooks").await;
    assert!(list.body.contains("https://hooks.example.invalid/forge"));
    assert!(!list.body.contains(&secret), "the secret is shown again");

    s.signup("ada@example.com", PASSWORD).await;
    let started = Instant::now();
    let detail = loop {
        let detail = b.get(&format!("/admin/webhooks/{id}")).await;
        assert_eq!(detail.status, 200);
        if detail.body.contains("next try") {
            break detail;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "no attempt: {}",
            detail.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!detail.body.contains(&secret));
    assert!(detail.body.contains("user.created"));
    assert!(detail.body.contains(">pending</span>"));
    // Pending: no replay yet.
    assert!(!detail.body.contains("/replay"));

    // Turning it off and on.
    let page = b.act(&format!("/admin/webhooks/{id}/enabled"), &[]).await;
    assert_eq!(page.status, 303);
    assert!(b.flash(&format!("/admin/webhooks/{id}")).await.contains("disabled"));
    let page = b.act(&format!("/admin/webhooks/{id}/enabled"), &[]).await;
    assert_eq!(page.status, 303);
    assert!(b.flash(&format!("/admin/webhooks/{id}")).await.contains("enabled"));

    // Rotation shows the new secret once.
    let rotated = b.act(&format!("/admin/webhooks/{id}/secret"), &[]).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let new_secret = text_after(&rotated.body, "id=\"webhook-secret\">").to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let detail = b.get(&format!("/admin/webhooks/{id}")).await;
    assert!(detail.body.contains("Previous secret signs until"));

    let confirm = b.get(&format!("/admin/webhooks/{id}/delete")).await;
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Delete endpoint"));
    let deleted = b.act(&format!("/admin/webhooks/{id}/delete"), &[]).await;
    assert_eq!(deleted.status, 303);
    assert_eq!(deleted.location(), "/admin/webhooks");
    assert!(b.flash("/admin/webhooks").await.contains("Endpoint deleted"));
    let gone = b.get(&format!("/admin/webhooks/{id}")).await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn a_delivered_event_is_replayed_from_its_page() {
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.enabled = false;
        c.webhooks.allow_private = true;
    })
    .await;
    s.admin("root@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    let hook = Receiver::start().await;
    let added = b
        .act(
            "/admin/webhooks",
            &[("url", hook.url.as_str()), ("events", "*"), ("description", "")],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    let id = s
        .state()
        .store
        .list_webhooks(forge::store::DEFAULT_TENANT_ID)
        .await
        .unwrap()[0]
        .id;
    s.signup("ada@example.com", PASSWORD).await;
    hook.wait_for(1).await;
    let started = Instant::now();
    let detail = loop {
        let detail = b.get(&format!("/admin/webhooks/{id}")).await;
        if detail.body.contains(">delivered</span>") {
            break detail;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{}", detail.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(detail.body.contains("<code>200</code>"), "{}", detail.body);
    let marker = format!("/admin/webhooks/{id}/deliveries/");
    let start = detail.body.find(&marker).unwrap();
    let action = &detail.body[start..start + detail.body[start..].find('"').unwrap()];
    let replay = b.act(action, &[]).await;
    assert_eq!(replay.status, 303);
    assert!(b.flash(&format!("/admin/webhooks/{id}")).await.contains("queued again"));
    let got = hook.wait_for(2).await;
    assert_eq!(got[0].id, got[1].id);
}
