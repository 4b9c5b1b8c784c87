//! The names of the audit events forge writes.
//!
//! Every writer names its row with an [`AuditEvent`], so a typo cannot
//! create a new event name and the full list lives in one place (the admin
//! site offers it as filter suggestions). The snake_case strings are a
//! stored and published contract: rows hold them and `GET /v1/audit`
//! returns them, so a variant's name never changes once written. Readers
//! still accept any stored string, since rows outlive the code that wrote
//! them.

use std::fmt;
use std::str::FromStr;

/// Declares the enum, its names and [`AuditEvent::ALL`] from one table, so
/// the three cannot drift apart.
macro_rules! audit_events {
    ($($variant:ident => $name:literal,)+) => {
        /// One kind of audit row; see the module comment.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AuditEvent {
            $($variant,)+
        }

        impl AuditEvent {
            /// Every event, in the order of the names.
            pub const ALL: &'static [AuditEvent] = &[$(AuditEvent::$variant,)+];

            /// The stored and published name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(AuditEvent::$variant => $name,)+
                }
            }
        }

        impl FromStr for AuditEvent {
            type Err = UnknownAuditEvent;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(AuditEvent::$variant),)+
                    _ => Err(UnknownAuditEvent),
                }
            }
        }
    };
}

audit_events! {
    AdminLogin => "admin_login",
    AdminLoginDenied => "admin_login_denied",
    AdminLogout => "admin_logout",
    AdminTenantSwitched => "admin_tenant_switched",
    AuthorizationCodeIssued => "authorization_code_issued",
    ClientCreated => "client_created",
    ClientDeleted => "client_deleted",
    ClientSecretRotated => "client_secret_rotated",
    ClientUpdated => "client_updated",
    ConsentGranted => "consent_granted",
    ConsentRevoked => "consent_revoked",
    EmailChanged => "email_changed",
    EmailVerified => "email_verified",
    FederatedLogin => "federated_login",
    FederatedLoginFailed => "federated_login_failed",
    IdentityLinked => "identity_linked",
    IdentityUnlinked => "identity_unlinked",
    KeyRotated => "key_rotated",
    Login => "login",
    LoginFailed => "login_failed",
    Logout => "logout",
    MessageResent => "message_resent",
    MfaEnrolled => "mfa_enrolled",
    MfaFailed => "mfa_failed",
    MfaRemoved => "mfa_removed",
    MfaRenamed => "mfa_renamed",
    MfaReset => "mfa_reset",
    MfaStepUp => "mfa_step_up",
    OtpFailed => "otp_failed",
    OtpSent => "otp_sent",
    OtpVerified => "otp_verified",
    PasswordChanged => "password_changed",
    PasswordReset => "password_reset",
    PhoneChanged => "phone_changed",
    PhoneVerified => "phone_verified",
    ProviderCreated => "provider_created",
    ProviderDeleted => "provider_deleted",
    ProviderUpdated => "provider_updated",
    RecoveryCodeUsed => "recovery_code_used",
    RecoveryCodesRegenerated => "recovery_codes_regenerated",
    Refresh => "refresh",
    RefreshReuseDetected => "refresh_reuse_detected",
    RoleAssigned => "role_assigned",
    RoleCreated => "role_created",
    RoleDeleted => "role_deleted",
    RoleRemoved => "role_removed",
    RoleUpdated => "role_updated",
    SessionRevoked => "session_revoked",
    SettingsUpdated => "settings_updated",
    Signup => "signup",
    SsoLogin => "sso_login",
    SsoLogout => "sso_logout",
    TenantCreated => "tenant_created",
    TenantDeleted => "tenant_deleted",
    UserCreated => "user_created",
    UserDeleted => "user_deleted",
    UserDisabled => "user_disabled",
    UserEnabled => "user_enabled",
    UserUpdated => "user_updated",
    WebhookCreated => "webhook_created",
    WebhookDeleted => "webhook_deleted",
    WebhookDisabled => "webhook_disabled",
    WebhookReplayed => "webhook_replayed",
    WebhookSecretRotated => "webhook_secret_rotated",
    WebhookUpdated => "webhook_updated",
}

/// A name that is not one of [`AuditEvent::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not an audit event forge writes")]
pub struct UnknownAuditEvent;

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_round_trips_through_its_name() {
        for &event in AuditEvent::ALL {
            assert_eq!(event.as_str().parse::<AuditEvent>(), Ok(event));
            assert_eq!(event.to_string(), event.as_str());
        }
        assert_eq!("Login".parse::<AuditEvent>(), Err(UnknownAuditEvent));
        assert_eq!("".parse::<AuditEvent>(), Err(UnknownAuditEvent));
    }

    /// The names are a stored contract: this list changes only by adding.
    #[test]
    fn the_names_are_the_ones_rows_already_hold() {
        let names: Vec<&str> = AuditEvent::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            names,
            [
                "admin_login",
                "admin_login_denied",
                "admin_logout",
                "admin_tenant_switched",
                "authorization_code_issued",
                "client_created",
                "client_deleted",
                "client_secret_rotated",
                "client_updated",
                "consent_granted",
                "consent_revoked",
                "email_changed",
                "email_verified",
                "federated_login",
                "federated_login_failed",
                "identity_linked",
                "identity_unlinked",
                "key_rotated",
                "login",
                "login_failed",
                "logout",
                "message_resent",
                "mfa_enrolled",
                "mfa_failed",
                "mfa_removed",
                "mfa_renamed",
                "mfa_reset",
                "mfa_step_up",
                "otp_failed",
                "otp_sent",
                "otp_verified",
                "password_changed",
                "password_reset",
                "phone_changed",
                "phone_verified",
                "provider_created",
                "provider_deleted",
                "provider_updated",
                "recovery_code_used",
                "recovery_codes_regenerated",
                "refresh",
                "refresh_reuse_detected",
                "role_assigned",
                "role_created",
                "role_deleted",
                "role_removed",
                "role_updated",
                "session_revoked",
                "settings_updated",
                "signup",
                "sso_login",
                "sso_logout",
                "tenant_created",
                "tenant_deleted",
                "user_created",
                "user_deleted",
                "user_disabled",
                "user_enabled",
                "user_updated",
                "webhook_created",
                "webhook_deleted",
                "webhook_disabled",
                "webhook_replayed",
                "webhook_secret_rotated",
                "webhook_updated",
            ]
        );
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, names, "names are unique and kept sorted");
    }

    /// Every event the README and the API reference promise is one forge
    /// writes (the API reference lists them as "at least").
    #[test]
    fn the_documented_events_are_written() {
        let documented = [
            // API reference, "Audit log"
            "signup",
            "login",
            "login_failed",
            "otp_sent",
            "otp_verified",
            "otp_failed",
            "refresh",
            "refresh_reuse_detected",
            "logout",
            "password_changed",
            "password_reset",
            "email_verified",
            "user_updated",
            "user_disabled",
            "user_deleted",
            "role_created",
            "role_deleted",
            "role_assigned",
            "role_removed",
            "key_rotated",
            "admin_login",
            // API reference, "Tenant settings"
            "settings_updated",
            // README, "Extra audit events"
            "user_created",
            "user_enabled",
            "session_revoked",
            "role_updated",
            "tenant_created",
            "tenant_deleted",
        ];
        for name in documented {
            assert!(
                name.parse::<AuditEvent>().is_ok(),
                "{name} is documented but not an AuditEvent"
            );
        }
    }
}
