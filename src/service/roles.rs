//! Roles of one tenant: create, read, change permissions, delete, and
//! assign to or remove from users.
//!
//! Invariants:
//! - A change is effective at once on forge's own endpoints and on
//!   `/v1/auth/verify`: the per-user access cache is invalidated for the
//!   user whose roles changed, and wholesale when a role's permissions
//!   change or a role disappears. Access tokens minted afterwards carry the
//!   new roles; older ones keep their `roles` claim until they expire, which
//!   is why forge itself never trusts that claim for authorization.
//! - The built-in `admin` role (`*`) can be neither changed nor deleted
//!   (403 `builtin_role`); the store refuses too.
//! - Nobody grants what they do not hold: creating, editing or deleting a
//!   role, and assigning or removing one, needs every permission the role
//!   carries (before and after an edit), so `roles:write` or `roles:assign`
//!   alone never leads to `*`, nor strips an administrator.
//! - Each change writes its audit row (`role_created`, `role_updated`,
//!   `role_deleted`, `role_assigned`, `role_removed`) in its transaction,
//!   with the acting administrator as actor.

use std::sync::Arc;

use uuid::Uuid;

use super::RequestMeta;
use crate::clock::Clock;
use crate::domain::{AuditEvent, Permission, RoleName};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::rbac::Rbac;
use crate::service::sessions::Principal;
use crate::store::{NewRole, Role, Store, StoreError};

/// A role may list at most this many permission strings.
pub const MAX_PERMISSIONS: usize = 100;

fn builtin(name: &str) -> AppError {
    AppError::forbidden(
        ErrorCode::BuiltinRole,
        format!("{name} is a built-in role; it cannot be changed or deleted"),
    )
}

fn role_not_found() -> AppError {
    AppError::not_found("role")
}

/// Parses, de-duplicates and orders permission strings; 400 naming the
/// first bad one.
pub fn parse_permissions(input: &[String]) -> AppResult<Vec<Permission>> {
    if input.len() > MAX_PERMISSIONS {
        return Err(AppError::validation(
            "permissions",
            format!("at most {MAX_PERMISSIONS} permissions"),
        ));
    }
    let mut out = Vec::with_capacity(input.len());
    for p in input {
        let parsed = Permission::parse(p.trim()).map_err(|e| {
            let shown: String = p.chars().take(64).collect();
            AppError::validation("permissions", format!("{shown:?} {e}"))
        })?;
        out.push(parsed);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn strings(permissions: &[Permission]) -> Vec<String> {
    permissions.iter().map(|p| p.as_str().to_string()).collect()
}

/// Roles over the store, invalidating the access cache of [`Rbac`] on
/// every change.
#[derive(Clone)]
pub struct Roles {
    store: Arc<dyn Store>,
    clock: Clock,
    rbac: Rbac,
}

impl Roles {
    pub fn new(store: Arc<dyn Store>, clock: Clock, rbac: Rbac) -> Self {
        Self { store, clock, rbac }
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn list(&self, principal: &Principal) -> AppResult<Vec<Role>> {
        Ok(self.store.list_roles(principal.tenant.id).await?)
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, role = %name))]
    pub async fn get(&self, principal: &Principal, name: &str) -> AppResult<Role> {
        self.store
            .get_role(principal.tenant.id, name)
            .await?
            .ok_or_else(role_not_found)
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, role = %name.as_str()))]
    pub async fn create(
        &self,
        principal: &Principal,
        name: RoleName,
        permissions: Vec<Permission>,
        meta: &RequestMeta,
    ) -> AppResult<Role> {
        self.rbac.require_covers(principal, &strings(&permissions)).await?;
        let now = self.clock.now();
        let mut audit = meta.audit(
            principal.tenant.id,
            now,
            AuditEvent::RoleCreated,
            None,
            Some(principal.user_id),
        );
        audit.detail = serde_json::json!({ "role": name.as_str(), "permissions": strings(&permissions) });
        Ok(self
            .store
            .create_role(
                NewRole {
                    id: Uuid::now_v7(),
                    tenant_id: principal.tenant.id,
                    name,
                    permissions,
                    now,
                },
                audit,
            )
            .await?)
    }

    /// Replaces a role's permissions. The caller must hold both what the role
    /// grants now (taking it from its holders) and what it will grant.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, role = %name.as_str()))]
    pub async fn update(
        &self,
        principal: &Principal,
        name: &RoleName,
        permissions: Vec<Permission>,
        meta: &RequestMeta,
    ) -> AppResult<Role> {
        let current = self.get(principal, name.as_str()).await?;
        if current.builtin {
            return Err(builtin(name.as_str()));
        }
        let mut wanted = strings(&permissions);
        wanted.extend(current.permissions.iter().cloned());
        self.rbac.require_covers(principal, &wanted).await?;
        let mut audit = meta.audit(
            principal.tenant.id,
            self.clock.now(),
            AuditEvent::RoleUpdated,
            None,
            Some(principal.user_id),
        );
        audit.detail = serde_json::json!({
            "role": name.as_str(),
            "permissions": strings(&permissions),
            "previous": current.permissions,
        });
        let role = self
            .store
            .set_role_permissions(principal.tenant.id, name.as_str(), permissions, audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => role_not_found(),
                other => other.into(),
            })?;
        self.rbac.changed().await?;
        Ok(role)
    }

    /// Deletes a role; its holders lose it at once.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, role = %name.as_str()))]
    pub async fn delete(&self, principal: &Principal, name: &RoleName, meta: &RequestMeta) -> AppResult<()> {
        let current = self.get(principal, name.as_str()).await?;
        if current.builtin {
            return Err(builtin(name.as_str()));
        }
        self.rbac.require_covers(principal, &current.permissions).await?;
        let mut audit = meta.audit(
            principal.tenant.id,
            self.clock.now(),
            AuditEvent::RoleDeleted,
            None,
            Some(principal.user_id),
        );
        audit.detail = serde_json::json!({ "role": name.as_str(), "permissions": current.permissions });
        self.store
            .delete_role(principal.tenant.id, name.as_str(), audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => role_not_found(),
                other => other.into(),
            })?;
        self.rbac.changed().await?;
        Ok(())
    }

    /// Gives `user_id` the role; assigning a role already held changes nothing.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %user_id, role = %name.as_str()))]
    pub async fn assign(
        &self,
        principal: &Principal,
        user_id: Uuid,
        name: &RoleName,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        self.change_assignment(principal, user_id, name, true, meta).await
    }

    /// Takes the role from `user_id`; removing a role not held changes nothing.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %user_id, role = %name.as_str()))]
    pub async fn remove(
        &self,
        principal: &Principal,
        user_id: Uuid,
        name: &RoleName,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        self.change_assignment(principal, user_id, name, false, meta).await
    }

    async fn change_assignment(
        &self,
        principal: &Principal,
        user_id: Uuid,
        name: &RoleName,
        grant: bool,
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let tenant_id = principal.tenant.id;
        // The user first, so that another tenant's user id is a plain 404 `user`
        // whatever role is named.
        if self.store.get_user(tenant_id, user_id).await?.is_none() {
            return Err(AppError::not_found("user"));
        }
        let role = self.get(principal, name.as_str()).await?;
        self.rbac.require_covers(principal, &role.permissions).await?;
        let event = if grant {
            AuditEvent::RoleAssigned
        } else {
            AuditEvent::RoleRemoved
        };
        let mut audit = meta.audit(
            tenant_id,
            self.clock.now(),
            event,
            Some(user_id),
            Some(principal.user_id),
        );
        audit.detail = serde_json::json!({ "role": name.as_str() });
        let result = if grant {
            self.store.assign_role(tenant_id, user_id, name.as_str(), audit).await
        } else {
            self.store.remove_role(tenant_id, user_id, name.as_str(), audit).await
        };
        result.map_err(|e| match e {
            StoreError::NotFound => AppError::not_found("user or role"),
            other => other.into(),
        })?;
        self.rbac.changed().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_ports;
    use crate::state::AppState;

    #[tokio::test]
    async fn an_assigned_role_counts_at_once_and_nobody_grants_what_they_lack() {
        let store = test_ports::store();
        let rbac = Rbac::new(
            store.clone(),
            AppState::access_cache(&crate::cache::epoch::Epoch::local(), 100),
        );
        let roles = Roles::new(store.clone(), test_ports::clock(), rbac.clone());
        let admin = test_ports::principal(&store, &["admin"]).await;
        let plain = test_ports::principal(&store, &[]).await;
        let meta = RequestMeta::default();
        let viewer = RoleName::parse("viewer").unwrap();

        let everything = parse_permissions(&["*".to_string()]).unwrap();
        let refused = roles.create(&plain, viewer.clone(), everything, &meta).await;
        assert!(refused.is_err());

        let read = parse_permissions(&["users:read".to_string()]).unwrap();
        roles.create(&admin, viewer.clone(), read, &meta).await.unwrap();
        assert!(!rbac.has_permission(&plain, "users:read").await.unwrap());
        roles.assign(&admin, plain.user_id, &viewer, &meta).await.unwrap();
        assert!(rbac.has_permission(&plain, "users:read").await.unwrap());
        roles.remove(&admin, plain.user_id, &viewer, &meta).await.unwrap();
        assert!(!rbac.has_permission(&plain, "users:read").await.unwrap());

        let admin_role = RoleName::parse("admin").unwrap();
        assert!(roles.delete(&admin, &admin_role, &meta).await.is_err());
    }

    #[test]
    fn permissions_are_parsed_sorted_and_deduplicated() {
        let input: Vec<String> = ["users:read", "*", "users:read", " roles:* "]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let parsed = parse_permissions(&input).unwrap();
        assert_eq!(strings(&parsed), vec!["*", "roles:*", "users:read"]);
        assert!(parse_permissions(&["users".to_string()]).is_err());
        assert!(parse_permissions(&vec!["a:b".to_string(); MAX_PERMISSIONS + 1]).is_err());
    }
}
