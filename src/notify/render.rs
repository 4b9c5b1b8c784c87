//! Turns a code into the words a person reads: a subject and a body per
//! [`MessageKind`], long text for email (askama templates in
//! `templates/email/*.txt`, checked at compile time) and one short line for
//! SMS, which is billed per 160 characters and read on a lock screen.
//!
//! Invariants: the code appears in the body only, never in the subject
//! (subjects show up in notification previews and mail logs); rendering
//! cannot fail at run time — text templates over plain strings only fail on
//! a formatter error, and then a built-in sentence carries the code instead.

use askama::Template;

use crate::store::{MessageKind, OutboxChannel};

#[derive(Template)]
#[template(path = "email/otp.txt")]
struct OtpEmail<'a> {
    product: &'a str,
    code: &'a str,
    ttl: &'a str,
    public_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/email_verification.txt")]
struct VerificationEmail<'a> {
    product: &'a str,
    code: &'a str,
    ttl: &'a str,
    public_url: &'a str,
}

#[derive(Template)]
#[template(path = "email/password_reset.txt")]
struct ResetEmail<'a> {
    product: &'a str,
    code: &'a str,
    ttl: &'a str,
    public_url: &'a str,
}

/// Every security notice: the text (what, when, from where, then what to
/// do, as `service::notices` words it) carries it all.
#[derive(Template)]
#[template(path = "email/notice.txt")]
struct NoticeEmail<'a> {
    product: &'a str,
    notice: &'a str,
    public_url: &'a str,
}

/// "1 minute", "5 minutes".
fn minutes(n: u64) -> String {
    if n == 1 {
        "1 minute".to_owned()
    } else {
        format!("{n} minutes")
    }
}

/// Subject and body of a message.
///
/// For a notice ([`MessageKind::is_notice`]) `code` is the notice's text
/// (what happened, when, from where; then, after a blank line, what to do):
/// it carries no code. An SMS carries its first paragraph only.
///
/// `ttl_minutes` is how long the code stays valid, rounded up by the caller
/// (a 90 s code says "2 minutes": a short promise would be a lie the other
/// way round). `public_url` is `server.public_url`, named at the foot of
/// emails so the reader can tell where the message comes from.
pub fn render(
    kind: MessageKind,
    channel: OutboxChannel,
    product: &str,
    public_url: &str,
    code: &str,
    ttl_minutes: u64,
) -> (String, String) {
    let subject = match kind {
        MessageKind::Otp => format!("Your {product} sign-in code"),
        MessageKind::EmailVerification => format!("Verify your email address for {product}"),
        MessageKind::PasswordReset => format!("Reset your {product} password"),
        MessageKind::AddressChanged => format!("Your {product} sign-in address was changed"),
        MessageKind::RecoveryCodeUsed => format!("A {product} recovery code was used"),
        MessageKind::FactorChanged => format!("Your {product} second factors were changed"),
        MessageKind::PasswordChanged => format!("Your {product} password was changed"),
        MessageKind::NewDevice => format!("New sign-in to your {product} account"),
        MessageKind::AccountDisabled => format!("Your {product} account was disabled"),
        MessageKind::LogoutToken => "OpenID Connect back-channel logout".to_string(),
    };
    let ttl = minutes(ttl_minutes);
    let body = match channel {
        // The body is the signed logout token itself.
        OutboxChannel::Backchannel => code.to_string(),
        OutboxChannel::Sms => {
            let what = match kind {
                MessageKind::Otp => "code",
                MessageKind::EmailVerification => "verification code",
                MessageKind::PasswordReset => "password reset code",
                _ => {
                    let first = code.split("\n\n").next().unwrap_or(code);
                    return (subject, format!("{product}: {first}"));
                }
            };
            format!("Your {product} {what} is {code}. It expires in {ttl}.")
        }
        OutboxChannel::Email => {
            let rendered = match kind {
                MessageKind::Otp => OtpEmail {
                    product,
                    code,
                    ttl: &ttl,
                    public_url,
                }
                .render(),
                MessageKind::EmailVerification => VerificationEmail {
                    product,
                    code,
                    ttl: &ttl,
                    public_url,
                }
                .render(),
                MessageKind::PasswordReset => ResetEmail {
                    product,
                    code,
                    ttl: &ttl,
                    public_url,
                }
                .render(),
                MessageKind::LogoutToken => Ok(code.to_string()),
                _ => NoticeEmail {
                    product,
                    notice: code,
                    public_url,
                }
                .render(),
            };
            rendered.unwrap_or_else(|_| {
                format!("Your {product} code is {code}. It expires in {ttl}.\n\n{product} · {public_url}\n")
            })
        }
    };
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [MessageKind; 3] = [
        MessageKind::Otp,
        MessageKind::EmailVerification,
        MessageKind::PasswordReset,
    ];

    #[test]
    fn sms_is_one_short_line() {
        let (_, body) = render(MessageKind::Otp, OutboxChannel::Sms, "forge", "http://x", "123456", 5);
        assert_eq!(body, "Your forge code is 123456. It expires in 5 minutes.");
        for kind in KINDS {
            let (_, body) = render(kind, OutboxChannel::Sms, "forge", "http://x", "123456", 1);
            assert!(!body.contains('\n') && body.len() <= 160, "{body}");
            assert!(body.contains("123456") && body.contains("1 minute."), "{body}");
        }
    }

    #[test]
    fn email_carries_product_code_ttl_and_url_but_subject_has_no_code() {
        for kind in KINDS {
            let (subject, body) = render(
                kind,
                OutboxChannel::Email,
                "Acme ID",
                "https://id.acme.test",
                "987654",
                15,
            );
            assert!(subject.contains("Acme ID"), "{subject}");
            assert!(!subject.contains("987654"), "{subject}");
            for want in ["Acme ID", "987654", "15 minutes", "https://id.acme.test"] {
                assert!(body.contains(want), "{kind:?} body lacks {want}: {body}");
            }
        }
    }

    #[test]
    fn factor_notices_carry_their_sentence_and_no_code_in_the_subject() {
        for kind in [MessageKind::RecoveryCodeUsed, MessageKind::FactorChanged] {
            assert!(!kind.carries_code());
            assert_eq!(MessageKind::parse(kind.as_str()), Some(kind));
            let (subject, body) = render(
                kind,
                OutboxChannel::Email,
                "Acme ID",
                "https://id.acme.test",
                "It happened.",
                5,
            );
            assert!(
                subject.contains("Acme ID") && !subject.contains("It happened"),
                "{subject}"
            );
            assert!(
                body.contains("It happened.") && body.contains("https://id.acme.test"),
                "{body}"
            );
            let (_, sms) = render(
                kind,
                OutboxChannel::Sms,
                "Acme ID",
                "https://id.acme.test",
                "It happened.",
                5,
            );
            assert_eq!(sms, "Acme ID: It happened.");
        }
    }

    #[test]
    fn text_is_not_html_escaped() {
        let (_, body) = render(MessageKind::Otp, OutboxChannel::Email, "A&B <id>", "http://x", "1", 5);
        assert!(body.contains("A&B <id>"), "{body}");
    }
}
