use std::fs;

use super::*;
use crate::domain::settings::Branding;
use crate::notify::render::{Content, Letterhead, NoticeText, builtin};

fn head(slug: &str) -> Letterhead {
    Letterhead {
        product: "Acme ID".into(),
        public_url: "https://id.acme.test".into(),
        tenant_slug: slug.into(),
        tenant_name: "Acme".into(),
        brand: Branding::default_for("Acme"),
    }
}

fn otp_vars(slug: &str) -> Vars {
    Vars::new(
        MessageKind::Otp,
        &head(slug),
        "ada@example.com",
        &Content::Code {
            code: "123456",
            ttl_minutes: 5,
        },
    )
}

/// `vars`' message of `kind` on `channel`, overrides applied.
fn apply(o: &Overrides, kind: MessageKind, channel: OutboxChannel, vars: &Vars) -> Message {
    o.apply(kind, channel, vars, builtin(kind, channel, vars))
}

fn otp(dir: &Path, slug: &str) -> Message {
    let o = Overrides::open(dir).unwrap();
    apply(&o, MessageKind::Otp, OutboxChannel::Email, &otp_vars(slug))
}

fn write(dir: &Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn a_missing_directory_is_refused() {
    let err = Overrides::open(Path::new("/nonexistent/forge-templates")).unwrap_err();
    assert!(err.contains("notify.templates_dir"), "{err}");
}

#[test]
fn without_files_the_built_ins_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let vars = otp_vars("acme");
    let base = builtin(MessageKind::Otp, OutboxChannel::Email, &vars);
    let m = otp(dir.path(), "acme");
    assert_eq!(m.subject, base.subject);
    assert_eq!(m.text, base.text);
    assert_eq!(m.html, base.html);
}

#[test]
fn the_tenant_file_wins_over_the_file_for_all_tenants() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "otp.subject", "{{ product }} code\nfor {{ tenant.name }}");
    write(dir.path(), "otp.txt", "All: {{ code }} ({{ ttl }})");
    write(dir.path(), "otp.html", "<p>All: {{ code }}</p>");
    write(dir.path(), "tenants/acme/otp.txt", "Acme: {{ code }} for {{ to }}");
    write(dir.path(), "tenants/acme/otp.html", "<b>Acme: {{ code }}</b>");

    let m = otp(dir.path(), "acme");
    assert_eq!(m.subject, "Acme ID code for Acme", "one line");
    assert_eq!(m.text, "Acme: 123456 for ada@example.com");
    assert_eq!(m.html.as_deref(), Some("<b>Acme: 123456</b>"));

    let m = otp(dir.path(), "other");
    assert_eq!(m.text, "All: 123456 (5 minutes)");
    assert_eq!(m.html.as_deref(), Some("<p>All: 123456</p>"));
}

#[test]
fn text_overridden_alone_goes_without_the_built_in_html() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "otp.txt", "Code {{ code }}");
    let m = otp(dir.path(), "acme");
    assert_eq!(m.text, "Code 123456");
    assert_eq!(m.html, None);
    // A tenant's own text is not paired with the HTML written for all.
    write(dir.path(), "otp.html", "<p>{{ code }}</p>");
    write(dir.path(), "tenants/acme/otp.txt", "Acme {{ code }}");
    assert_eq!(otp(dir.path(), "acme").html, None);
    assert_eq!(otp(dir.path(), "other").html.as_deref(), Some("<p>123456</p>"));
    // An empty HTML template turns the HTML part off.
    write(dir.path(), "tenants/acme/otp.html", "  \n");
    assert_eq!(otp(dir.path(), "acme").html, None);
}

#[test]
fn html_parts_escape_every_value_and_text_parts_do_not() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "otp.txt", "{{ product }} {{ brand.name }}");
    write(dir.path(), "otp.html", "<p>{{ product }}</p>");
    let mut h = head("acme");
    h.product = "A&B <script>".into();
    let vars = Vars::new(
        MessageKind::Otp,
        &h,
        "ada@example.com",
        &Content::Code {
            code: "1",
            ttl_minutes: 1,
        },
    );
    let o = Overrides::open(dir.path()).unwrap();
    let m = apply(&o, MessageKind::Otp, OutboxChannel::Email, &vars);
    assert_eq!(m.text, "A&B <script> Acme");
    let html = m.html.unwrap();
    assert!(
        !html.contains("<script>") && html.contains("A&amp;B &lt;script&gt;"),
        "{html}"
    );
}

#[test]
fn a_broken_template_falls_back_to_the_built_in_part() {
    let dir = tempfile::tempdir().unwrap();
    let vars = otp_vars("acme");
    let base = builtin(MessageKind::Otp, OutboxChannel::Email, &vars);
    for broken in [
        "{% if code %}unclosed",
        "{{ no_such_name }}",
        "{{ notice }}",
        "{% include 'otp.html' %}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
    ] {
        write(dir.path(), "otp.txt", broken);
        let m = otp(dir.path(), "acme");
        assert_eq!(m.text, base.text, "{broken}");
        assert_eq!(m.html, base.html, "{broken}");
    }
    let too_big = "x".repeat(MAX_TEMPLATE_BYTES as usize + 1);
    write(dir.path(), "otp.txt", &too_big);
    assert_eq!(otp(dir.path(), "acme").text, base.text);
}

#[test]
fn a_slug_cannot_leave_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    // Without the slug check, `tenants/../secret/otp.txt` is read.
    fs::create_dir_all(dir.path().join("tenants")).unwrap();
    write(dir.path(), "secret/otp.txt", "leaked {{ code }}");
    let m = otp(dir.path(), "../secret");
    assert!(!m.text.contains("leaked"), "{}", m.text);
}

#[test]
fn sms_and_notice_templates_see_their_own_variables() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "otp.sms", "  {{ code }} is your code\n");
    write(
        dir.path(),
        "new_device.txt",
        "{{ summary }}|{{ when }}|{{ ip }}|{{ browser }}|{{ advice }}",
    );
    let o = Overrides::open(dir.path()).unwrap();
    let vars = otp_vars("acme");
    let sms = apply(&o, MessageKind::Otp, OutboxChannel::Sms, &vars);
    assert_eq!(sms.text, "123456 is your code");

    let n = NoticeText {
        summary: "Signed in.".into(),
        advice: "Tell us.".into(),
        when: "2026-11-27T10:00:00Z".into(),
        ip: "198.51.100.7".into(),
        browser: "curl".into(),
    };
    let vars = Vars::new(
        MessageKind::NewDevice,
        &head("acme"),
        "ada@example.com",
        &Content::Notice(&n),
    );
    let m = apply(&o, MessageKind::NewDevice, OutboxChannel::Email, &vars);
    assert_eq!(m.text, "Signed in.|2026-11-27T10:00:00Z|198.51.100.7|curl|Tell us.");
}

#[test]
fn check_all_names_broken_and_unknown_files() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "otp.txt", "{{ code }}");
    write(dir.path(), "otp.html", "{% if %}");
    write(dir.path(), "tenants/acme/welcome.txt", "hi");
    let problems = Overrides::open(dir.path()).unwrap().check_all();
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].starts_with("otp.html:1: syntax error"), "{problems:?}");
    assert!(problems[1].contains("welcome.txt: not a template"), "{problems:?}");
}

/// The README's table lists every variable a template can use.
#[test]
fn the_readme_documents_every_variable() {
    let readme = include_str!("../../../README.md");
    for name in crate::notify::render::VARIABLES {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README lacks the template variable {name}"
        );
    }
    for kind in MessageKind::TO_PEOPLE {
        assert!(
            readme.contains(&format!("`{}`", kind.as_str())),
            "README lacks the kind {kind:?}"
        );
    }
}

/// The preview names a failing file below the templates directory, never
/// by the server's absolute path (tenant administrators read it).
#[test]
fn errors_name_files_below_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "tenants/acme/otp.txt",
        &"x".repeat(MAX_TEMPLATE_BYTES as usize + 1),
    );
    let vars = otp_vars("acme");
    let base = builtin(MessageKind::Otp, OutboxChannel::Email, &vars);
    let parts = Overrides::open(dir.path())
        .unwrap()
        .preview(MessageKind::Otp, OutboxChannel::Email, &vars, &base);
    let text = parts.iter().find(|p| p.part == Part::Text).unwrap();
    assert_eq!(text.file, "tenants/acme/otp.txt");
    assert_eq!(text.source, Source::BuiltIn);
    let error = text.error.as_deref().unwrap();
    assert!(error.starts_with("tenants/acme/otp.txt: larger than"), "{error}");
    assert!(!error.contains(dir.path().to_str().unwrap()), "{error}");
}

/// The README's example pair renders as it says.
#[test]
fn the_readme_example_renders() {
    let readme = include_str!("../../../README.md");
    let start = readme.find("For example, `tenants/acme/otp.txt`").expect("the example");
    let blocks: Vec<&str> = readme[start..]
        .split("```")
        .skip(1)
        .step_by(2)
        .take(2)
        .map(|b| b.split_once('\n').map_or("", |(_, body)| body))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tenants/acme/otp.txt", blocks[0]);
    write(dir.path(), "tenants/acme/otp.html", blocks[1]);
    let m = otp(dir.path(), "acme");
    assert_eq!(
        m.text.trim(),
        "Hi, your Acme sign-in code is 123456. It expires in 5 minutes."
    );
    let html = m.html.unwrap();
    assert!(html.contains("<b>123456</b>") && !html.contains("<img"), "{html}");
}

/// The code never reaches a subject, whatever the operator writes.
#[test]
fn a_subject_template_gets_no_code() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "otp.subject", "Your code: {{ code }}");
    let vars = otp_vars("acme");
    let base = builtin(MessageKind::Otp, OutboxChannel::Email, &vars);
    let m = otp(dir.path(), "acme");
    assert_eq!(m.subject, base.subject);
    assert!(!m.subject.contains("123456"));
}
