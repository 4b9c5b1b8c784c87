//! Turns a code or a notice into the words a person reads: a subject, a
//! plain text body and, for email, an HTML body per [`MessageKind`] (askama
//! templates in `templates/email/`, checked at compile time), or one short
//! line for SMS, which is billed per 160 characters and read on a lock
//! screen. An operator may replace any part with a file of their own
//! ([`super::overrides`]); these built-ins are what is sent otherwise, and
//! what an override that fails falls back to.
//!
//! Invariants: the code appears in the bodies only, never in the subject
//! (subjects show up in notification previews and mail logs); rendering
//! cannot fail at run time — templates over plain strings only fail on a
//! formatter error, and then a built-in sentence carries the code instead;
//! [`Vars`] holds the code in the clear, so it has no `Debug`.

use askama::Template;
use serde::Serialize;

use crate::domain::settings::Branding;
use crate::store::{MessageKind, OutboxChannel};

/// A rendered message.
pub struct Message {
    /// One line, without the code.
    pub subject: String,
    /// The plain text body (the whole SMS on that channel).
    pub text: String,
    /// The HTML alternative of an email; `None` for SMS or when an operator
    /// sends text only.
    pub html: Option<String>,
}

/// What a message says besides who it goes to.
pub enum Content<'a> {
    /// A one-time code, valid for `ttl_minutes` (rounded up by the caller:
    /// a 90 s code says "2 minutes", as a short promise would be a lie the
    /// other way round).
    Code { code: &'a str, ttl_minutes: u64 },
    /// A security notice.
    Notice(&'a NoticeText),
}

/// A security notice's words, as `service::notices` composes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoticeText {
    /// What happened, when and from where: one paragraph.
    pub summary: String,
    /// What to do if it was not the reader: one paragraph.
    pub advice: String,
    /// When it happened, RFC 3339.
    pub when: String,
    /// The client's IP address; empty when unknown.
    pub ip: String,
    /// The client's user agent, printable and short; empty when unknown.
    pub browser: String,
}

impl NoticeText {
    /// Both paragraphs, as the built-in text shows them.
    pub fn text(&self) -> String {
        format!("{}\n\n{}", self.summary, self.advice)
    }
}

/// Who a message comes from: the product and the tenant, as every template
/// sees them.
#[derive(Clone, Debug)]
pub struct Letterhead {
    /// `notify.product_name`.
    pub product: String,
    /// `server.public_url`.
    pub public_url: String,
    pub tenant_slug: String,
    pub tenant_name: String,
    pub brand: Branding,
}

#[derive(Clone, Serialize)]
pub struct TenantVars {
    pub slug: String,
    pub name: String,
}

#[derive(Clone, Serialize)]
pub struct BrandVars {
    pub name: String,
    /// Empty when the tenant has no logo.
    pub logo_url: String,
    /// `#rrggbb`.
    pub accent: String,
}

/// The values a template may use (documented in the README's "Message
/// templates" table, which a test keeps in step). Fields of the other
/// content are absent, so a notice template that names `code` fails (and
/// falls back) instead of printing nothing.
#[derive(Clone, Serialize)]
pub struct Vars {
    pub kind: &'static str,
    pub product: String,
    pub public_url: String,
    /// The recipient's address or number.
    pub to: String,
    pub tenant: TenantVars,
    pub brand: BrandVars,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// "1 minute", "5 minutes".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl_minutes: Option<u64>,
    /// `summary`, a blank line, `advice`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
}

/// The names a template can use, in the order the README lists them.
pub const VARIABLES: [&str; 18] = [
    "kind",
    "product",
    "public_url",
    "to",
    "tenant.slug",
    "tenant.name",
    "brand.name",
    "brand.logo_url",
    "brand.accent",
    "code",
    "ttl",
    "ttl_minutes",
    "notice",
    "summary",
    "advice",
    "when",
    "ip",
    "browser",
];

impl Vars {
    pub fn new(kind: MessageKind, head: &Letterhead, to: &str, content: &Content<'_>) -> Self {
        let mut vars = Vars {
            kind: kind.as_str(),
            product: head.product.clone(),
            public_url: head.public_url.clone(),
            to: to.to_owned(),
            tenant: TenantVars {
                slug: head.tenant_slug.clone(),
                name: head.tenant_name.clone(),
            },
            brand: BrandVars {
                name: head.brand.name.clone(),
                logo_url: head.brand.logo_url.clone().unwrap_or_default(),
                accent: head.brand.accent.clone(),
            },
            code: None,
            ttl: None,
            ttl_minutes: None,
            notice: None,
            summary: None,
            advice: None,
            when: None,
            ip: None,
            browser: None,
        };
        match content {
            Content::Code { code, ttl_minutes } => {
                vars.code = Some((*code).to_owned());
                vars.ttl = Some(minutes(*ttl_minutes));
                vars.ttl_minutes = Some(*ttl_minutes);
            }
            Content::Notice(n) => {
                vars.notice = Some(n.text());
                vars.summary = Some(n.summary.clone());
                vars.advice = Some(n.advice.clone());
                vars.when = Some(n.when.clone());
                vars.ip = Some(n.ip.clone());
                vars.browser = Some(n.browser.clone());
            }
        }
        vars
    }
}

/// The built-in bodies of a code email: one text and one HTML template per
/// kind, over the same fields (askama picks the escaping from the path, so
/// each part is its own type).
macro_rules! code_email {
    ($text_ty:ident, $text:tt, $html_ty:ident, $html:tt) => {
        #[derive(Template)]
        #[template(path = $text)]
        struct $text_ty<'a> {
            product: &'a str,
            code: &'a str,
            ttl: &'a str,
            public_url: &'a str,
        }

        #[derive(Template)]
        #[template(path = $html)]
        struct $html_ty<'a> {
            product: &'a str,
            code: &'a str,
            ttl: &'a str,
            public_url: &'a str,
            accent: &'a str,
        }

        impl $text_ty<'_> {
            fn pair(v: &Vars) -> (askama::Result<String>, askama::Result<String>) {
                let (product, public_url) = (v.product.as_str(), v.public_url.as_str());
                let code = v.code.as_deref().unwrap_or_default();
                let ttl = v.ttl.as_deref().unwrap_or_default();
                let text = $text_ty {
                    product,
                    code,
                    ttl,
                    public_url,
                }
                .render();
                let html = $html_ty {
                    product,
                    code,
                    ttl,
                    public_url,
                    accent: &v.brand.accent,
                }
                .render();
                (text, html)
            }
        }
    };
}

code_email!(OtpEmail, "email/otp.txt", OtpHtml, "email/otp.html");
code_email!(
    VerificationEmail,
    "email/email_verification.txt",
    VerificationHtml,
    "email/email_verification.html"
);
code_email!(
    ResetEmail,
    "email/password_reset.txt",
    ResetHtml,
    "email/password_reset.html"
);

/// Every security notice: the text (what, when, from where, then what to
/// do, as `service::notices` words it) carries it all.
#[derive(Template)]
#[template(path = "email/notice.txt")]
struct NoticeEmail<'a> {
    product: &'a str,
    notice: &'a str,
    public_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/notice.html")]
struct NoticeHtml<'a> {
    product: &'a str,
    summary: &'a str,
    advice: &'a str,
    public_url: &'a str,
    accent: &'a str,
}

/// "1 minute", "5 minutes".
fn minutes(n: u64) -> String {
    if n == 1 {
        "1 minute".to_owned()
    } else {
        format!("{n} minutes")
    }
}

/// The subject of a message (the logout token's names the protocol).
pub(super) fn subject(kind: MessageKind, product: &str) -> String {
    match kind {
        MessageKind::Otp => format!("Your {product} sign-in code"),
        MessageKind::EmailVerification => format!("Verify your email address for {product}"),
        MessageKind::PasswordReset => format!("Reset your {product} password"),
        MessageKind::AddressChanged => format!("Your {product} sign-in address was changed"),
        MessageKind::RecoveryCodeUsed => format!("A {product} recovery code was used"),
        MessageKind::FactorChanged => format!("Your {product} second factors were changed"),
        MessageKind::PasswordChanged => format!("Your {product} password was changed"),
        MessageKind::NewDevice => format!("New sign-in to your {product} account"),
        MessageKind::AccountDisabled => format!("Your {product} account was disabled"),
        MessageKind::WebhookDisabled => format!("A {product} webhook endpoint was turned off"),
        MessageKind::LogoutToken => "OpenID Connect back-channel logout".to_string(),
    }
}

/// The built-in message of `kind` on `channel`.
pub fn builtin(kind: MessageKind, channel: OutboxChannel, v: &Vars) -> Message {
    let product = v.product.as_str();
    let subject = subject(kind, product);
    let code = v.code.as_deref().unwrap_or_default();
    let ttl = v.ttl.as_deref().unwrap_or_default();
    if channel != OutboxChannel::Email {
        let text = match kind {
            MessageKind::Otp => format!("Your {product} code is {code}. It expires in {ttl}."),
            MessageKind::EmailVerification => {
                format!("Your {product} verification code is {code}. It expires in {ttl}.")
            }
            MessageKind::PasswordReset => format!("Your {product} password reset code is {code}. It expires in {ttl}."),
            _ => format!("{product}: {}", v.summary.as_deref().unwrap_or_default()),
        };
        return Message {
            subject,
            text,
            html: None,
        };
    }
    let (text, html) = match kind {
        MessageKind::Otp => OtpEmail::pair(v),
        MessageKind::EmailVerification => VerificationEmail::pair(v),
        MessageKind::PasswordReset => ResetEmail::pair(v),
        _ => {
            let text = NoticeEmail {
                product,
                notice: v.notice.as_deref().unwrap_or_default(),
                public_url: &v.public_url,
            }
            .render();
            let html = NoticeHtml {
                product,
                summary: v.summary.as_deref().unwrap_or_default(),
                advice: v.advice.as_deref().unwrap_or_default(),
                public_url: &v.public_url,
                accent: &v.brand.accent,
            }
            .render();
            (text, html)
        }
    };
    let fallback = || match &v.notice {
        Some(notice) => format!("{notice}\n\n{product} · {}\n", v.public_url),
        None => format!(
            "Your {product} code is {code}. It expires in {ttl}.\n\n{product} · {}\n",
            v.public_url
        ),
    };
    Message {
        subject,
        text: text.unwrap_or_else(|_| fallback()),
        html: html.ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [MessageKind; 3] = [
        MessageKind::Otp,
        MessageKind::EmailVerification,
        MessageKind::PasswordReset,
    ];

    fn head(product: &str) -> Letterhead {
        Letterhead {
            product: product.into(),
            public_url: "https://id.acme.test".into(),
            tenant_slug: "default".into(),
            tenant_name: "Default".into(),
            brand: Branding::default_for("Default"),
        }
    }

    fn code(kind: MessageKind, channel: OutboxChannel, product: &str, ttl_minutes: u64) -> Message {
        let v = Vars::new(
            kind,
            &head(product),
            "ada@example.com",
            &Content::Code {
                code: "987654",
                ttl_minutes,
            },
        );
        builtin(kind, channel, &v)
    }

    fn notice() -> NoticeText {
        NoticeText {
            summary: "It happened <here>.".into(),
            advice: "Do this & that.".into(),
            ..Default::default()
        }
    }

    #[test]
    fn sms_is_one_short_line() {
        let m = code(MessageKind::Otp, OutboxChannel::Sms, "forge", 5);
        assert_eq!(m.text, "Your forge code is 987654. It expires in 5 minutes.");
        assert!(m.html.is_none());
        for kind in KINDS {
            let m = code(kind, OutboxChannel::Sms, "forge", 1);
            assert!(!m.text.contains('\n') && m.text.len() <= 160, "{}", m.text);
            assert!(m.text.contains("987654") && m.text.contains("1 minute."), "{}", m.text);
        }
    }

    #[test]
    fn email_carries_product_code_ttl_and_url_in_both_parts_but_subject_has_no_code() {
        for kind in KINDS {
            let m = code(kind, OutboxChannel::Email, "Acme ID", 15);
            assert!(m.subject.contains("Acme ID"), "{}", m.subject);
            assert!(!m.subject.contains("987654"), "{}", m.subject);
            let html = m.html.expect("an HTML part");
            for want in ["Acme ID", "987654", "15 minutes", "https://id.acme.test"] {
                assert!(m.text.contains(want), "{kind:?} text lacks {want}: {}", m.text);
                assert!(html.contains(want), "{kind:?} html lacks {want}: {html}");
            }
        }
    }

    #[test]
    fn notices_carry_their_paragraphs_and_no_code_in_the_subject() {
        let n = notice();
        let v = Vars::new(
            MessageKind::FactorChanged,
            &head("Acme ID"),
            "ada@example.com",
            &Content::Notice(&n),
        );
        let m = builtin(MessageKind::FactorChanged, OutboxChannel::Email, &v);
        assert!(m.subject.contains("Acme ID") && !m.subject.contains("It happened"));
        assert!(m.text.contains("It happened <here>.\n\nDo this & that."), "{}", m.text);
        let html = m.html.expect("an HTML part");
        assert!(
            html.contains("It happened &#60;here&#62;.") && html.contains("Do this &#38; that."),
            "{html}"
        );
        let sms = builtin(MessageKind::FactorChanged, OutboxChannel::Sms, &v);
        assert_eq!(sms.text, "Acme ID: It happened <here>.");
    }

    #[test]
    fn text_is_not_html_escaped_and_html_is() {
        let m = code(MessageKind::Otp, OutboxChannel::Email, "A&B <id>", 5);
        assert!(m.text.contains("A&B <id>"), "{}", m.text);
        let html = m.html.unwrap_or_default();
        assert!(
            !html.contains("A&B <id>") && html.contains("A&#38;B &#60;id&#62;"),
            "{html}"
        );
    }
}
