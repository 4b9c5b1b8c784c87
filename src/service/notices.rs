//! Security notices: telling a person that something happened to their
//! account (a sign-in from a new device, a password or address change, a
//! factor added or removed, a recovery code used, the account disabled),
//! so that someone else in their account does not go unnoticed.
//!
//! One place words them, picks where they go and asks the tenant's switches
//! (`notices` in the tenant settings): every notice says what happened,
//! when, from which address and browser, and what to do if it was not the
//! reader. It goes to the account's verified email, else its verified
//! phone, else an unverified address (an address change tells the *old*
//! address instead, see [`Notices::send_to`]). A notice is queued on the
//! durable outbox after the change committed; it never carries a code.

use uuid::Uuid;

use super::RequestMeta;
use super::devices::Devices;
use crate::clock::Clock;
use crate::domain::settings::NoticeSettings;
use crate::domain::{Timestamp, rfc3339};
use crate::error::AppResult;
use crate::notify::{Content, NoticeText, Notifier, PartPreview, Recipient};
use crate::store::{MessageKind, OutboxChannel, Store, User};

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A sign-in from a device that never signed in to the account before.
    NewDevice,
    PasswordChanged,
    PasswordReset,
    /// The email address or phone number changed (`what` names which).
    AddressChanged {
        what: &'static str,
    },
    FactorAdded,
    FactorRemoved,
    /// An administrator removed every factor and the recovery codes.
    FactorsReset,
    RecoveryCodeUsed {
        remaining: u64,
    },
    /// An administrator disabled the account (no switch: always sent).
    AccountDisabled,
}

impl Notice {
    fn kind(self) -> MessageKind {
        match self {
            Notice::NewDevice => MessageKind::NewDevice,
            Notice::PasswordChanged | Notice::PasswordReset => MessageKind::PasswordChanged,
            Notice::AddressChanged { .. } => MessageKind::AddressChanged,
            Notice::FactorAdded | Notice::FactorRemoved | Notice::FactorsReset => MessageKind::FactorChanged,
            Notice::RecoveryCodeUsed { .. } => MessageKind::RecoveryCodeUsed,
            Notice::AccountDisabled => MessageKind::AccountDisabled,
        }
    }

    fn wanted(self, switches: &NoticeSettings) -> bool {
        match self {
            Notice::NewDevice => switches.new_device,
            Notice::PasswordChanged | Notice::PasswordReset => switches.password_changed,
            Notice::AddressChanged { .. } => switches.email_changed,
            Notice::FactorAdded | Notice::FactorRemoved | Notice::FactorsReset => switches.factor_changed,
            Notice::RecoveryCodeUsed { .. } => switches.recovery_code_used,
            Notice::AccountDisabled => true,
        }
    }

    /// The words: what, when, from where, and what to do.
    fn text(self, at: i64, meta: &RequestMeta) -> NoticeText {
        let what = match self {
            Notice::NewDevice => "Your account was signed in to from a device that had not signed in before".to_owned(),
            Notice::PasswordChanged => "The password of your account was changed".to_owned(),
            Notice::PasswordReset => "The password of your account was reset with a code sent to you".to_owned(),
            Notice::AddressChanged { what } => format!("The {what} of your account was changed"),
            Notice::FactorAdded => "A second factor was added to your account".to_owned(),
            Notice::FactorRemoved => "A second factor was removed from your account".to_owned(),
            Notice::FactorsReset => {
                "An administrator removed the second factors and recovery codes of your account".to_owned()
            }
            Notice::RecoveryCodeUsed { .. } => "A recovery code was used to sign in to your account".to_owned(),
            Notice::AccountDisabled => "An administrator disabled your account".to_owned(),
        };
        let when = rfc3339(at);
        let ip = meta.ip.clone().unwrap_or_default();
        let browser = meta.user_agent.as_deref().map(browser).unwrap_or_default();
        let from = if ip.is_empty() {
            "an unknown address"
        } else {
            ip.as_str()
        };
        let mut summary = format!("{what} on {when} from {from}");
        if !browser.is_empty() {
            summary.push_str(&format!(" ({browser})"));
        }
        summary.push('.');
        if let Notice::RecoveryCodeUsed { remaining } = self {
            let left = if remaining == 1 { "code is" } else { "codes are" };
            summary.push_str(&format!(" {remaining} unused {left} left."));
        }
        NoticeText {
            summary,
            advice: self.advice().to_owned(),
            when,
            ip,
            browser,
        }
    }
}

impl Notice {
    /// What to do about it: the second paragraph.
    fn advice(self) -> &'static str {
        const SOMEONE_ELSE: &str = "If this was you, there is nothing to do. If it was not, reset your password now \
             and tell your administrator: someone else may be signed in to your account.";
        match self {
            Notice::NewDevice | Notice::PasswordChanged | Notice::AddressChanged { .. } => SOMEONE_ELSE,
            Notice::PasswordReset => {
                "If this was you, there is nothing to do. If it was not, someone can read your messages: \
                 secure your email, reset your password again and tell your administrator."
            }
            Notice::FactorAdded | Notice::FactorRemoved => {
                "If this was you, there is nothing to do. If it was not, someone else is signed in to your \
                 account: reset your password now, check your second factors and tell your administrator."
            }
            Notice::FactorsReset => {
                "You can sign in with your password (or a one-time code) and set up a second factor again. \
                 If you did not ask for this, tell your administrator."
            }
            Notice::RecoveryCodeUsed { .. } => {
                "If this was you, there is nothing to do; when few codes remain, create new ones in your \
                 account settings. If it was not, someone knows your password and one of your recovery codes: \
                 reset your password now, create new recovery codes and tell your administrator."
            }
            Notice::AccountDisabled => "If you think this is a mistake, contact your administrator.",
        }
    }
}

/// The message of `kind` on `channel` as `tenant_id` would send it, part
/// by part with where each comes from, over sample values (the admin
/// site's template preview): a code `123456` valid 10 minutes, or the real
/// wording of a notice from a sample address and browser.
pub async fn preview(
    notifier: &Notifier,
    clock: &Clock,
    tenant_id: Uuid,
    kind: MessageKind,
    channel: OutboxChannel,
) -> AppResult<Vec<PartPreview>> {
    let to = match channel {
        OutboxChannel::Sms => "+14155550100",
        _ => "ada@example.com",
    };
    let notice = match kind {
        MessageKind::NewDevice => Notice::NewDevice,
        MessageKind::PasswordChanged => Notice::PasswordChanged,
        MessageKind::AddressChanged => Notice::AddressChanged { what: "email address" },
        MessageKind::FactorChanged => Notice::FactorAdded,
        MessageKind::RecoveryCodeUsed => Notice::RecoveryCodeUsed { remaining: 7 },
        _ => Notice::AccountDisabled,
    };
    let meta = RequestMeta {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Firefox/135.0".into()),
        device_token: None,
    };
    let text = match kind {
        MessageKind::WebhookDisabled => webhook_disabled_text(
            Uuid::nil(),
            "https://app.example.com/forge-events?token=x",
            std::time::Duration::from_secs(5 * 86_400),
            clock.now(),
        ),
        _ => notice.text(clock.now(), &meta),
    };
    let content = if kind.carries_code() {
        Content::Code {
            code: "123456",
            ttl_minutes: 10,
        }
    } else {
        Content::Notice(&text)
    };
    Ok(notifier.preview(tenant_id, kind, channel, to, &content).await?)
}

/// The words of a `webhook_disabled` notice.
fn webhook_disabled_text(webhook_id: Uuid, url: &str, failed_for: std::time::Duration, at: Timestamp) -> NoticeText {
    let origin = url::Url::parse(url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "(an invalid URL)".to_owned());
    let when = rfc3339(at);
    NoticeText {
        summary: format!(
            "The webhook endpoint {webhook_id} at {origin} was turned off on {when}: its deliveries \
             failed for {} without a single success.",
            span(failed_for)
        ),
        advice: format!(
            "Fix the receiver, then turn the endpoint on again on the admin site's Webhooks page (or \
             PATCH /v1/webhooks/{webhook_id} with {{\"enabled\": true}}): the events that waited are \
             delivered then, in order."
        ),
        when,
        ip: String::new(),
        browser: String::new(),
    }
}

/// A duration as a notice says it: "5 days", "36 hours", "90 minutes".
fn span(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = match secs {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3_600 && s % 3_600 == 0 => (s / 3_600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s => (s, "second"),
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// The browser as a notice names it: the user agent, printable and short.
fn browser(user_agent: &str) -> String {
    user_agent
        .chars()
        .filter(|c| !c.is_control())
        .take(120)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Where a notice about `user` goes: a proven address first.
fn recipient(user: &User) -> Option<Recipient> {
    let email = user.email.as_ref();
    let phone = user.phone.as_ref();
    match (email, phone) {
        (Some(e), _) if user.email_verified => Some(e.into()),
        (_, Some(p)) if user.phone_verified => Some(p.into()),
        (Some(e), _) => Some(e.into()),
        (None, Some(p)) => Some(p.into()),
        (None, None) => None,
    }
}

#[derive(Clone)]
pub struct Notices {
    notifier: Notifier,
    store: std::sync::Arc<dyn Store>,
    clock: Clock,
    devices: Devices,
}

impl Notices {
    pub fn new(notifier: Notifier, store: std::sync::Arc<dyn Store>, clock: Clock, devices: Devices) -> Self {
        Self {
            notifier,
            store,
            clock,
            devices,
        }
    }

    /// The end of every sign-in (the API's, the hosted pages', the admin
    /// site's, whatever the factors): tells `user` of a sign-in from a new
    /// device, and returns the device token the client gets so that its
    /// next sign-in is known. New means the account signed in before
    /// (`previous_sign_in_at`; a first sign-in has nothing to compare with)
    /// and the request carried no valid device token of this account.
    pub async fn signed_in(
        &self,
        tenant_id: Uuid,
        user: &User,
        previous_sign_in_at: Option<Timestamp>,
        meta: &RequestMeta,
    ) -> AppResult<String> {
        let known = meta
            .device_token
            .as_deref()
            .and_then(|token| self.devices.verify(token, tenant_id, user.id))
            .is_some();
        if previous_sign_in_at.is_some() && !known {
            self.send(tenant_id, user, Notice::NewDevice, meta).await?;
        }
        Ok(self.devices.issue(tenant_id, user.id))
    }

    /// Tells `user` of `tenant_id` what happened, if the tenant wants it
    /// and the account has somewhere to send it.
    pub async fn send(&self, tenant_id: Uuid, user: &User, notice: Notice, meta: &RequestMeta) -> AppResult<()> {
        match recipient(user) {
            Some(to) => self.send_to(tenant_id, to, notice, meta).await,
            None => Ok(()),
        }
    }

    /// Tells the administrators of `tenant_id` (its enabled users holding
    /// the `admin` role, twenty at most) that the webhook endpoint
    /// `webhook_id` at `url` was turned off after failing for `failed_for`.
    /// Always sent: only they can fix the receiver. The URL is named by its
    /// origin alone (its path or query may hold a token).
    pub async fn webhook_disabled(
        &self,
        tenant_id: Uuid,
        webhook_id: Uuid,
        url: &str,
        failed_for: std::time::Duration,
    ) -> AppResult<()> {
        let notice = webhook_disabled_text(webhook_id, url, failed_for, self.clock.now());
        for admin in self.store.users_with_role(tenant_id, "admin", 20).await? {
            if let Some(to) = recipient(&admin) {
                self.notifier
                    .notice(tenant_id, to, MessageKind::WebhookDisabled, &notice)
                    .await?;
            }
        }
        Ok(())
    }

    /// Tells `to` (the old address of an address change) what happened,
    /// if the tenant wants it.
    pub async fn send_to(&self, tenant_id: Uuid, to: Recipient, notice: Notice, meta: &RequestMeta) -> AppResult<()> {
        let switches = self
            .store
            .tenant_settings(tenant_id)
            .await?
            .unwrap_or_default()
            .notices();
        if !notice.wanted(&switches) {
            return Ok(());
        }
        let text = notice.text(self.clock.now(), meta);
        self.notifier.notice(tenant_id, to, notice.kind(), &text).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_says_what_when_where_and_what_to_do() {
        let meta = RequestMeta {
            ip: Some("198.51.100.7".into()),
            user_agent: Some("Mozilla/5.0 (X11)\u{7}\n".into()),
            device_token: None,
        };
        let text = Notice::NewDevice.text(1_795_430_000, &meta).text();
        assert!(text.contains("2026-11-23T10:33:20Z"), "{text}");
        assert!(text.contains("from 198.51.100.7 (Mozilla/5.0 (X11))."), "{text}");
        assert!(text.contains(".\n\nIf this was you, there is nothing to do."), "{text}");
        let text = Notice::RecoveryCodeUsed { remaining: 1 }
            .text(0, &RequestMeta::default())
            .text();
        assert!(
            text.contains("an unknown address") && text.contains("1 unused code is left"),
            "{text}"
        );
    }

    fn user(email: Option<(&str, bool)>, phone: Option<(&str, bool)>) -> User {
        User {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            email: email.map(|(e, _)| crate::domain::Email::parse(e).unwrap()),
            email_verified: email.is_some_and(|(_, v)| v),
            phone: phone.map(|(p, _)| crate::domain::Phone::parse(p).unwrap()),
            phone_verified: phone.is_some_and(|(_, v)| v),
            disabled: false,
            metadata: serde_json::json!({}),
            roles: vec![],
            created_at: 0,
            updated_at: 0,
            last_sign_in_at: None,
            credential_epoch: 0,
        }
    }

    /// A proven address first, so an unverified email someone else typed
    /// does not hear about the account when a verified phone exists; an
    /// account known only by phone is told by SMS.
    #[test]
    fn a_notice_goes_to_a_proven_address_first() {
        let both = user(Some(("ada@example.com", false)), Some(("+14155550100", true)));
        assert_eq!(recipient(&both), Some(Recipient::Phone("+14155550100".into())));
        let verified = user(Some(("ada@example.com", true)), Some(("+14155550100", true)));
        assert_eq!(recipient(&verified), Some(Recipient::Email("ada@example.com".into())));
        let unproven = user(Some(("ada@example.com", false)), None);
        assert_eq!(recipient(&unproven), Some(Recipient::Email("ada@example.com".into())));
        let phone_only = user(None, Some(("+14155550100", false)));
        assert_eq!(recipient(&phone_only), Some(Recipient::Phone("+14155550100".into())));
        assert_eq!(recipient(&user(None, None)), None);
    }

    #[test]
    fn a_disabled_webhook_is_named_by_its_origin_and_how_long_it_failed() {
        let n = webhook_disabled_text(
            Uuid::nil(),
            "https://hooks.example.com:8443/services/T0/B0/secret?token=abc",
            std::time::Duration::from_secs(5 * 86_400),
            0,
        );
        assert!(
            n.summary
                .contains("at https://hooks.example.com:8443 was turned off on 1970-01-01T00:00:00Z"),
            "{}",
            n.summary
        );
        assert!(n.summary.contains("failed for 5 days"), "{}", n.summary);
        assert!(
            !n.text().contains("secret") && !n.text().contains("abc"),
            "{}",
            n.text()
        );
        assert_eq!(span(std::time::Duration::from_secs(36 * 3600)), "36 hours");
        assert_eq!(span(std::time::Duration::from_secs(60)), "1 minute");
        assert_eq!(span(std::time::Duration::from_secs(90)), "90 seconds");
    }

    #[test]
    fn switches_decide_except_for_a_disabled_account() {
        let off = NoticeSettings {
            new_device: false,
            password_changed: false,
            email_changed: false,
            factor_changed: false,
            recovery_code_used: false,
        };
        assert!(!Notice::NewDevice.wanted(&off));
        assert!(!Notice::PasswordReset.wanted(&off));
        assert!(!Notice::FactorsReset.wanted(&off));
        assert!(Notice::AccountDisabled.wanted(&off));
        assert!(Notice::PasswordChanged.wanted(&NoticeSettings::default()));
    }
}
