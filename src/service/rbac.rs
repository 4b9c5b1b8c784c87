//! Roles and permissions as they are right now, for forge's own endpoints and
//! forward-auth.
//!
//! Access tokens carry the roles they were minted with; forge's own checks
//! use the current roles instead, read through a per-user cache whose
//! copies stop counting, on every instance, as soon as any role change
//! commits ([`EpochCache`]): a revoked role stops working at once, without
//! a database round trip on every request.

use std::sync::Arc;

use crate::cache::epoch::EpochCache;
use crate::domain::Permission;
use crate::error::{AppError, AppResult, ErrorCode};
use crate::service::sessions::Principal;
use crate::store::{Access, Store};

/// Current roles and permissions, read from the store through the
/// per-user access cache.
#[derive(Clone)]
pub struct Rbac {
    store: Arc<dyn Store>,
    /// User id to current roles and permissions.
    access: EpochCache<uuid::Uuid, Arc<Access>>,
}

impl Rbac {
    pub fn new(store: Arc<dyn Store>, access: EpochCache<uuid::Uuid, Arc<Access>>) -> Self {
        Self { store, access }
    }

    /// The caller's current roles and permissions.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn access(&self, principal: &Principal) -> AppResult<Arc<Access>> {
        let epoch = match principal.epoch {
            Some(epoch) => epoch,
            None => self.access.epoch().current().await?,
        };
        self.access
            .get_or_load_at(epoch, &principal.user_id, || async {
                let found = self.store.access_of(principal.tenant.id, principal.user_id).await?;
                Ok::<_, AppError>(found.map(Arc::new))
            })
            .await?
            .ok_or_else(AppError::invalid_token)
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn effective_roles(&self, principal: &Principal) -> AppResult<Vec<String>> {
        Ok(self.access(principal).await?.roles.clone())
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, required = required))]
    pub async fn has_permission(&self, principal: &Principal, required: &str) -> AppResult<bool> {
        let access = self.access(principal).await?;
        Ok(access
            .permissions
            .iter()
            .filter_map(|p| Permission::parse(p).ok())
            .any(|p| p.grants(required)))
    }

    /// After a committed change to roles (a user's, or a role's
    /// permissions) or tenants: no copy of anyone's access counts any more,
    /// on any instance.
    pub async fn changed(&self) -> AppResult<()> {
        Ok(self.access.changed().await?)
    }

    /// Whether the caller is an operator holding `required`: an administrator
    /// (or any holder of the permission) of the `default` tenant. The same
    /// permission held in any other tenant, even through `*`, does not count:
    /// a tenant's admin manages its own tenant, never the set of tenants.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, required = required))]
    pub async fn is_operator(&self, principal: &Principal, required: &str) -> AppResult<bool> {
        Ok(principal.tenant.id == crate::store::DEFAULT_TENANT_ID && self.has_permission(principal, required).await?)
    }

    /// Refuses unless the caller holds every permission in `wanted`: nobody
    /// hands out (in a role they create, edit or assign) or takes away more
    /// than they hold, so `roles:assign` alone cannot make anyone an admin.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn require_covers(&self, principal: &Principal, wanted: &[String]) -> AppResult<()> {
        if covers(&self.access(principal).await?.permissions, wanted) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                ErrorCode::Forbidden,
                "that needs permissions you do not hold yourself",
            ))
        }
    }

    /// Refuses unless the caller holds every permission the target user holds,
    /// so a `users:write` holder cannot disable, delete, re-address or sign out
    /// an administrator (and so take over their account through a reset).
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, target_id = %target))]
    pub async fn require_covers_user(&self, principal: &Principal, target: uuid::Uuid) -> AppResult<()> {
        if target == principal.user_id {
            return Ok(());
        }
        let Some(theirs) = self.store.access_of(principal.tenant.id, target).await? else {
            return Err(AppError::not_found("user"));
        };
        if covers(&self.access(principal).await?.permissions, &theirs.permissions) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                ErrorCode::Forbidden,
                "that user holds permissions you do not hold yourself",
            ))
        }
    }
}

/// Whether `granted` covers every permission in `wanted`, wildcards included
/// (`users:*` is covered by `users:*` or `*`, not by `users:read`).
pub fn covers(granted: &[String], wanted: &[String]) -> bool {
    let granted: Vec<Permission> = granted.iter().filter_map(|p| Permission::parse(p).ok()).collect();
    wanted.iter().all(|w| granted.iter().any(|g| g.grants(w)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::epoch::Epoch;
    use crate::domain::AuditEvent;
    use crate::service::{RequestMeta, test_ports};
    use crate::state::AppState;

    async fn grant_admin(store: &Arc<dyn Store>, principal: &Principal) {
        let audit = RequestMeta::default().audit(principal.tenant.id, 0, AuditEvent::RoleAssigned, None, None);
        assert!(
            store
                .assign_role(principal.tenant.id, principal.user_id, "admin", audit)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_role_change_counts_once_announced() {
        let store = test_ports::store();
        let rbac = Rbac::new(store.clone(), AppState::access_cache(&Epoch::local(), 100));
        let principal = test_ports::principal(&store, &[]).await;
        assert!(!rbac.has_permission(&principal, "users:read").await.unwrap());
        grant_admin(&store, &principal).await;
        assert!(!rbac.has_permission(&principal, "users:read").await.unwrap(), "cached");
        rbac.changed().await.unwrap();
        assert!(rbac.has_permission(&principal, "users:read").await.unwrap());
        assert!(rbac.is_operator(&principal, "tenants:write").await.unwrap());
        assert_eq!(
            rbac.effective_roles(&principal).await.unwrap(),
            vec!["admin".to_string()]
        );
    }

    #[tokio::test]
    async fn a_role_change_on_one_instance_counts_on_another_at_its_next_check() {
        let store = test_ports::store();
        let redis = test_ports::cache();
        let a = Rbac::new(
            store.clone(),
            AppState::access_cache(&Epoch::shared(redis.clone()), 100),
        );
        let b = Rbac::new(store.clone(), AppState::access_cache(&Epoch::shared(redis), 100));
        let principal = test_ports::principal(&store, &[]).await;
        assert!(!b.has_permission(&principal, "users:read").await.unwrap());
        grant_admin(&store, &principal).await;
        assert!(!b.has_permission(&principal, "users:read").await.unwrap(), "b's copy");
        a.changed().await.unwrap();
        assert!(b.has_permission(&principal, "users:read").await.unwrap());
    }

    #[tokio::test]
    async fn a_check_reads_at_the_epoch_its_request_resolved_the_tenant_at() {
        let store = test_ports::store();
        let epoch = Epoch::local();
        let rbac = Rbac::new(store.clone(), AppState::access_cache(&epoch, 100));
        let mut principal = test_ports::principal(&store, &[]).await;
        let now = epoch.current().await.unwrap();
        principal.epoch = Some(now);
        assert!(!rbac.has_permission(&principal, "users:read").await.unwrap());
        // A role granted behind the cache's back (no `changed()`): at the
        // same epoch the copy stands...
        grant_admin(&store, &principal).await;
        assert!(!rbac.has_permission(&principal, "users:read").await.unwrap(), "copy");
        // ...and a request that read another epoch reads the row again,
        // without asking the shared epoch itself.
        principal.epoch = Some(now + 1);
        assert!(rbac.has_permission(&principal, "users:read").await.unwrap());
    }

    #[tokio::test]
    async fn nobody_acts_on_a_user_holding_more_than_they_do() {
        let store = test_ports::store();
        let rbac = Rbac::new(store.clone(), AppState::access_cache(&Epoch::local(), 100));
        let plain = test_ports::principal(&store, &[]).await;
        let admin = test_ports::principal(&store, &["admin"]).await;
        assert!(rbac.require_covers_user(&plain, admin.user_id).await.is_err());
        rbac.require_covers_user(&admin, plain.user_id).await.unwrap();
        rbac.require_covers_user(&plain, plain.user_id).await.unwrap();
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn coverage_respects_wildcards() {
        assert!(covers(&v(&["*"]), &v(&["*", "users:*", "roles:assign"])));
        assert!(covers(&v(&["users:*"]), &v(&["users:read", "users:*"])));
        assert!(!covers(&v(&["users:read"]), &v(&["users:*"])));
        assert!(!covers(&v(&["users:*", "roles:*"]), &v(&["*"])));
        assert!(!covers(&v(&["*:read"]), &v(&["users:*"])));
        assert!(covers(&v(&[]), &v(&[])));
        assert!(!covers(&v(&["roles:assign"]), &v(&["*"])));
    }
}
