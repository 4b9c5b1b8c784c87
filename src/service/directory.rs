//! The directory (user administration): listing and searching a tenant's users, provisioning
//! accounts, changing, disabling and deleting them, and seeing and ending a
//! user's sessions on their behalf.
//!
//! Everything acts inside the caller's token tenant; the store filters every
//! statement by it, so another tenant's user id is simply not found. An
//! administrator acts only on users whose permissions they hold themselves
//! ([`super::rbac::Rbac::require_covers_user`]), so `users:write` cannot be used to take
//! over an `admin` account. Disabling is immediate: the store revokes the
//! sessions in the same transaction, and the user and those sessions go on
//! the deny list before the answer leaves, so access tokens already out stop
//! working at once (`/v1/users/me`, `/v1/auth/verify`).

use std::sync::Arc;

use uuid::Uuid;

use super::notices::{Notice, Notices};
use super::paging::{self, Page};
use super::{RequestMeta, accounts};
use crate::clock::Clock;
use crate::crypto::password::PasswordHasher;
use crate::domain::{AuditEvent, Email, PasswordPolicy, Phone, RoleName};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::service::denylist::DenyList;
use crate::service::rbac::Rbac;
use crate::service::sessions::{Principal, Sessions};
use crate::store::{EndSessions, NewUser, Session, Store, StoreError, User, UserPatch, UserQuery, UserSeek};

/// What `q` searches: a leading `+` means a phone prefix (spaces, dashes,
/// dots and parentheses are ignored, as people type them), anything else an
/// email prefix (trimmed and lowercased, as emails are stored).
fn seek(q: Option<&str>, cursor: Option<&str>) -> AppResult<(UserSeek, &'static str)> {
    let q = q.map(str::trim).filter(|q| !q.is_empty());
    let Some(q) = q else {
        let after = cursor.map(|c| paging::decode_uuid("u", c)).transpose()?;
        return Ok((UserSeek::All { after }, "u"));
    };
    if q.len() > 254 {
        return Err(AppError::validation("q", "must be at most 254 characters"));
    }
    if q.starts_with('+') {
        let prefix: String = q.chars().filter(|c| !" -().".contains(*c)).collect();
        if !prefix[1..].chars().all(|c| c.is_ascii_digit()) {
            return Err(AppError::validation("q", "a phone prefix is '+' followed by digits"));
        }
        let after = cursor.map(|c| paging::decode("p", c)).transpose()?;
        return Ok((UserSeek::PhonePrefix { prefix, after }, "p"));
    }
    let after = cursor.map(|c| paging::decode("e", c)).transpose()?;
    Ok((
        UserSeek::EmailPrefix {
            prefix: q.to_lowercase(),
            after,
        },
        "e",
    ))
}

/// An account an administrator provisions.
pub struct NewAccount {
    pub email: Option<Email>,
    pub phone: Option<Phone>,
    /// Without one the user signs in with a one-time code or sets a password
    /// through the reset flow.
    pub password: Option<Secret>,
    pub metadata: serde_json::Value,
    pub email_verified: bool,
    pub phone_verified: bool,
    pub roles: Vec<RoleName>,
}

/// A change an administrator makes; `None` leaves a field alone.
#[derive(Default)]
pub struct AccountChange {
    pub disabled: Option<bool>,
    pub email: Option<Email>,
    /// `Some(None)` removes the phone number.
    pub phone: Option<Option<Phone>>,
    pub metadata: Option<serde_json::Value>,
    /// With a new email, defaults to false (the new address is unproven).
    pub email_verified: Option<bool>,
    /// With a new phone, defaults to false.
    pub phone_verified: Option<bool>,
}

/// The tenant's user directory over the store, the permission checks, the
/// password rules, and what ends a user's sessions (`sign_outs`, `deny`).
#[derive(Clone)]
pub struct Directory {
    store: Arc<dyn Store>,
    clock: Clock,
    rbac: Rbac,
    deny: DenyList,
    passwords: PasswordHasher,
    policy: Arc<PasswordPolicy>,
    sign_outs: Sessions,
    /// Tells a person their account was disabled.
    notices: Notices,
}

impl Directory {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        rbac: Rbac,
        deny: DenyList,
        passwords: PasswordHasher,
        policy: Arc<PasswordPolicy>,
        sign_outs: Sessions,
        notices: Notices,
    ) -> Self {
        Self {
            notices,
            store,
            clock,
            rbac,
            deny,
            passwords,
            policy,
            sign_outs,
        }
    }

    /// One page of the caller's tenant's users: all of them in creation order,
    /// or those matching `q` in email (or phone) order.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn list(
        &self,
        principal: &Principal,
        q: Option<&str>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> AppResult<Page<User>> {
        let limit = paging::limit(limit)?;
        let (seek, kind) = seek(q, cursor)?;
        let rows = self
            .store
            .list_users(UserQuery {
                tenant_id: principal.tenant.id,
                seek,
                limit: limit + 1,
            })
            .await?;
        Ok(paging::page(rows, limit, |u: &User| {
            let key = match kind {
                "e" => u.email.as_ref().map(|e| e.to_string()),
                "p" => u.phone.as_ref().map(|p| p.to_string()),
                _ => None,
            };
            paging::encode(kind, &key.unwrap_or_else(|| u.id.to_string()))
        }))
    }

    /// A user of the caller's tenant; 404 for anyone else's.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %user_id))]
    pub async fn get(&self, principal: &Principal, user_id: Uuid) -> AppResult<User> {
        self.store
            .get_user(principal.tenant.id, user_id)
            .await?
            .ok_or_else(|| AppError::not_found("user"))
    }

    /// Provisions an account. Handing out roles needs `roles:assign` and every
    /// permission those roles grant, as assigning them afterwards would.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn create(&self, principal: &Principal, new: NewAccount, meta: &RequestMeta) -> AppResult<User> {
        let tenant = &principal.tenant;
        if new.email.is_none() && new.phone.is_none() {
            return Err(AppError::validation("email", "give an email or a phone number"));
        }
        let mut roles = new.roles;
        roles.sort();
        roles.dedup();
        if !roles.is_empty() {
            if !self.rbac.has_permission(principal, "roles:assign").await? {
                return Err(AppError::forbidden(
                    ErrorCode::Forbidden,
                    "giving roles requires permission roles:assign",
                ));
            }
            let known = self.store.list_roles(tenant.id).await?;
            let mut wanted = Vec::new();
            for role in &roles {
                let found = known
                    .iter()
                    .find(|r| r.name == role.as_str())
                    // Like `PUT /v1/users/{id}/roles/{role}`: an unknown role is 404.
                    .ok_or_else(|| AppError::NotFound {
                        code: ErrorCode::UnknownRole,
                        message: format!("no role named {role}"),
                    })?;
                wanted.extend(found.permissions.iter().cloned());
            }
            self.rbac.require_covers(principal, &wanted).await?;
        }
        let password_hash = match &new.password {
            None => None,
            Some(password) => {
                let mut hints = vec!["forge".to_string()];
                if let Some(e) = &new.email {
                    hints.push(e.to_string());
                    hints.extend(e.as_str().split_once('@').map(|(local, _)| local.to_string()));
                }
                accounts::check_password(&self.policy, password, hints).await?;
                Some(self.passwords.hash(password).await.map_err(AppError::internal)?)
            }
        };
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let mut audit = meta.audit(
            tenant.id,
            now,
            AuditEvent::UserCreated,
            Some(id),
            Some(principal.user_id),
        );
        audit.detail = serde_json::json!({
            "roles": roles.iter().map(RoleName::as_str).collect::<Vec<_>>(),
            "password": password_hash.is_some(),
        });
        let user = self
            .store
            .create_user(
                NewUser {
                    id,
                    tenant_id: tenant.id,
                    email: new.email,
                    email_verified: new.email_verified,
                    phone: new.phone,
                    phone_verified: new.phone_verified,
                    password_hash,
                    metadata: new.metadata,
                    roles,
                    now,
                },
                None,
                audit,
            )
            .await
            .map_err(|e| match e {
                // A role deleted between the check above and the insert.
                StoreError::NotFound => AppError::validation("roles", "a role no longer exists"),
                other => other.into(),
            })?;
        Ok(user)
    }

    /// Changes a user. The audit event says what happened: `user_disabled`,
    /// `user_enabled`, or `user_updated` with the changed fields' names.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %user_id))]
    pub async fn update(
        &self,
        principal: &Principal,
        user_id: Uuid,
        change: AccountChange,
        meta: &RequestMeta,
    ) -> AppResult<User> {
        let tenant_id = principal.tenant.id;
        let current = self.get(principal, user_id).await?;
        self.rbac.require_covers_user(principal, user_id).await?;
        let now = self.clock.now();
        let mut patch = UserPatch {
            now,
            ..Default::default()
        };
        let mut fields = Vec::new();
        let new_email = change.email.filter(|e| Some(e) != current.email.as_ref());
        if let Some(email) = new_email {
            patch.email = Some(Some(email));
            patch.email_verified = Some(change.email_verified.unwrap_or(false));
            fields.push("email");
        } else if let Some(v) = change.email_verified.filter(|v| *v != current.email_verified) {
            patch.email_verified = Some(v);
            fields.push("email_verified");
        }
        let new_phone = change.phone.filter(|p| p.as_ref() != current.phone.as_ref());
        if let Some(phone) = new_phone {
            if phone.is_none() && current.email.is_none() && patch.email.is_none() {
                // State, not syntax: the same body is fine for a user with an email.
                return Err(AppError::conflict(
                    ErrorCode::LastIdentifier,
                    "a user without an email needs a phone number",
                ));
            }
            patch.phone_verified = Some(phone.is_some() && change.phone_verified.unwrap_or(false));
            patch.phone = Some(phone);
            fields.push("phone");
        } else if let Some(v) = change.phone_verified.filter(|v| *v != current.phone_verified) {
            if v && current.phone.is_none() {
                return Err(AppError::conflict(ErrorCode::NoPhone, "the user has no phone number"));
            }
            patch.phone_verified = Some(v);
            fields.push("phone_verified");
        }
        if let Some(metadata) = change.metadata {
            patch.metadata = Some(metadata);
            fields.push("metadata");
        }
        let toggled = change.disabled.filter(|d| *d != current.disabled);
        if let Some(d) = toggled {
            patch.disabled = Some(d);
            if d {
                patch.end_sessions = EndSessions::All;
            }
            fields.push("disabled");
        }
        if fields.is_empty() {
            return Ok(current);
        }
        let event = match toggled {
            Some(true) => AuditEvent::UserDisabled,
            Some(false) => AuditEvent::UserEnabled,
            None => AuditEvent::UserUpdated,
        };
        let mut audit = meta.audit(tenant_id, now, event, Some(user_id), Some(principal.user_id));
        audit.detail = serde_json::json!({ "fields": fields });
        // The store revokes the sessions with the change; their ids are read
        // first so their access tokens can be denied one by one, which keeps
        // them dead after the user is enabled again.
        let live = if toggled == Some(true) {
            self.store.list_sessions(tenant_id, user_id, now).await?
        } else {
            Vec::new()
        };
        let user = self.store.update_user(tenant_id, user_id, patch, audit).await?;
        match toggled {
            Some(true) => {
                let ids: Vec<Uuid> = live.iter().map(|s| s.id).collect();
                self.deny.deny_user(user_id).await?;
                self.deny.deny_sessions(&ids).await?;
                self.notices
                    .send(tenant_id, &user, Notice::AccountDisabled, meta)
                    .await?;
            }
            Some(false) => self.deny.allow_user(user_id).await?,
            None => {}
        }
        Ok(user)
    }

    /// Deletes a user of the caller's tenant; their tokens die at once.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %user_id))]
    pub async fn delete(&self, principal: &Principal, user_id: Uuid, meta: &RequestMeta) -> AppResult<()> {
        let tenant_id = principal.tenant.id;
        self.rbac.require_covers_user(principal, user_id).await?;
        let audit = meta.audit(
            tenant_id,
            self.clock.now(),
            AuditEvent::UserDeleted,
            Some(user_id),
            Some(principal.user_id),
        );
        let sessions = self
            .store
            .delete_user(tenant_id, user_id, audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("user"),
                other => other.into(),
            })?;
        self.deny.deny_sessions(&sessions).await?;
        self.deny.deny_user(user_id).await?;
        self.rbac.changed().await?;
        Ok(())
    }

    /// A user's live sessions, newest first.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %user_id))]
    pub async fn sessions(&self, principal: &Principal, user_id: Uuid) -> AppResult<Vec<Session>> {
        self.get(principal, user_id).await?;
        Ok(self
            .store
            .list_sessions(principal.tenant.id, user_id, self.clock.now())
            .await?)
    }

    /// Ends one of a user's sessions (`session_id`), or all of them (`None`).
    /// Audited as `session_revoked` with the administrator as actor.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %user_id, session_id = ?session_id))]
    pub async fn revoke_sessions(
        &self,
        principal: &Principal,
        user_id: Uuid,
        session_id: Option<Uuid>,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let tenant_id = principal.tenant.id;
        self.get(principal, user_id).await?;
        self.rbac.require_covers_user(principal, user_id).await?;
        let now = self.clock.now();
        let mut audit = meta.audit(
            tenant_id,
            now,
            AuditEvent::SessionRevoked,
            Some(user_id),
            Some(principal.user_id),
        );
        let revoked = match session_id {
            Some(id) => {
                audit.detail = serde_json::json!({ "session_id": id });
                if !self
                    .store
                    .revoke_session(tenant_id, user_id, id, now, Some(audit))
                    .await?
                {
                    return Err(AppError::not_found("session"));
                }
                vec![id]
            }
            None => {
                audit.detail = serde_json::json!({ "scope": "all" });
                // Admin-site sessions of the user end too (credential epoch).
                return self
                    .sign_outs
                    .sign_out_everywhere(tenant_id, user_id, None, Some(audit))
                    .await
                    .map(drop);
            }
        };
        self.deny.deny_sessions(&revoked).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_picks_the_index() {
        let (s, k) = seek(Some("  Ann@Ex "), None).unwrap();
        assert!(matches!(s, UserSeek::EmailPrefix { ref prefix, .. } if prefix == "ann@ex"));
        assert_eq!(k, "e");
        let (s, _) = seek(Some("+1 (415) 555"), None).unwrap();
        assert!(matches!(s, UserSeek::PhonePrefix { ref prefix, .. } if prefix == "+1415555"));
        assert!(seek(Some("+1x"), None).is_err());
        let (s, k) = seek(Some(" "), None).unwrap();
        assert!(matches!(s, UserSeek::All { after: None }));
        assert_eq!(k, "u");
        // A listing cursor does not continue a search.
        let c = paging::encode("u", &Uuid::now_v7().to_string());
        assert!(seek(Some("ann"), Some(&c)).is_err());
        assert!(seek(None, Some(&c)).is_ok());
    }
}
