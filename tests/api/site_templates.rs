//! The admin site's Templates page: each message as it would go out now,
//! part by part with where it comes from; an override written while the
//! server runs shows at the next reload, a broken one names its error (and
//! the built-in shows instead), and the HTML part opens as its own
//! document under a policy that runs nothing.

use forge::testing::TestServer;

use crate::PASSWORD;
use crate::support::site_client::Browser;
use crate::templates::write;

/// A server with `templates_dir` (empty: none) and its operator signed in
/// to the admin site.
async fn signed_in(templates_dir: String) -> (TestServer, Browser) {
    let s = TestServer::start_with(|c| {
        c.admin.insecure_cookies = true;
        c.rate_limit.enabled = false;
        c.notify.templates_dir = templates_dir;
    })
    .await;
    s.admin("root@example.com", PASSWORD).await;
    let mut b = Browser::new(&s);
    b.sign_in("root@example.com", PASSWORD).await;
    (s, b)
}

#[tokio::test]
async fn the_preview_shows_built_ins_then_overrides_and_their_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, mut b) = signed_in(dir.path().to_str().unwrap().to_owned()).await;

    let page = b.get("/admin/templates").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("aria-current=\"page\">Templates</a>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<code>otp</code> by email"), "{}", page.body);
    assert!(page.body.contains("Your forge sign-in code is:"), "{}", page.body);
    assert!(!page.body.contains("notify.templates_dir is not set"));
    assert!(!page.body.contains("badge good"), "all built-in");

    let d = dir.path();
    write(d, "otp.txt", "Hi {{ tenant.name }}, code {{ code }}");
    write(d, "otp.html", "<p>{{ code }}</p><script>alert(1)</script>");
    let page = b.get("/admin/templates?kind=otp").await;
    assert!(page.body.contains("Hi Default, code 123456"), "{}", page.body);
    assert!(
        page.body.contains("<code class=\"muted small\">otp.txt</code>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("all tenants"), "{}", page.body);
    // The page shows the HTML as text; the script does not reach it.
    assert!(page.body.contains("&#60;script&#62;") || page.body.contains("&lt;script&gt;"));

    let doc = b.get("/admin/templates/html?kind=otp").await;
    assert_eq!(doc.status, 200);
    assert_eq!(doc.body, "<p>123456</p><script>alert(1)</script>");
    let csp = doc.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("sandbox"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");

    write(d, "tenants/default/otp.txt", "{{ no_such_value }}");
    let page = b.get("/admin/templates?kind=otp").await;
    assert!(
        page.body.contains("<code>tenants/default/otp.txt</code> is not used:"),
        "{}",
        page.body
    );
    assert!(page.body.contains("undefined"), "{}", page.body);
    assert!(
        page.body.contains("Your forge sign-in code is:"),
        "the built-in text instead"
    );

    let sms = b.get("/admin/templates?kind=otp&channel=sms").await;
    assert!(
        sms.body
            .contains("Your forge code is 123456. It expires in 10 minutes."),
        "{}",
        sms.body
    );
    let notice = b.get("/admin/templates?kind=new_device").await;
    assert!(notice.body.contains("from 203.0.113.7 (Mozilla/5.0"), "{}", notice.body);
    for bad in ["kind=logout_token", "kind=nope", "channel=fax"] {
        let page = b.get(&format!("/admin/templates?{bad}")).await;
        assert_eq!(page.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn without_a_templates_directory_the_page_says_so() {
    let (_s, mut b) = signed_in(String::new()).await;
    let page = b.get("/admin/templates?kind=password_reset").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("notify.templates_dir is not set"), "{}", page.body);
    assert!(page.body.contains("Your password reset code is:"), "{}", page.body);
}
