//! Tenants: the operator's view of the set of tenants: list, create (with
//! the tenant's built-in `admin` role and, optionally, its first
//! administrator), and delete with everything the tenant owns.
//!
//! Invariants:
//! - Only operators act here: callers whose token belongs to the `default`
//!   tenant and who hold `tenants:read` / `tenants:write` there (the
//!   operator's `admin` role covers both). Every function checks this itself,
//!   whatever the HTTP layer did; a tenant's own `admin` (`*` in tenant B)
//!   is refused, because `*` is scoped to the tenant that grants it.
//! - Operators manage tenants, not the users inside them: nothing here reads
//!   another tenant's users.
//! - `default` cannot be deleted. Deleting a tenant cascades in the store
//!   and then kills its live sessions' access tokens (deny list) and forgets
//!   the cached tenant, so its tokens stop working at once.
//! - `tenant_created` / `tenant_deleted` are audited in the operator's
//!   (`default`) log; the new tenant's log starts with its own
//!   `tenant_created` and the `user_created` of its first administrator.

use std::sync::Arc;

use uuid::Uuid;

use super::paging::{self, Page};
use super::settings::{self, SignupChange};
use super::{RequestMeta, accounts};
use crate::cache::epoch::EpochCache;
use crate::clock::Clock;
use crate::crypto::password::PasswordHasher;
use crate::domain::settings::{SignupPolicy, TenantSettings};
use crate::domain::{AuditEvent, Email, PasswordPolicy, RoleName, TenantSlug};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::service::denylist::DenyList;
use crate::service::rbac::Rbac;
use crate::service::sessions::Principal;
use crate::store::{NewTenant, NewUser, Store, StoreError, Tenant, User};

fn tenant_not_found() -> AppError {
    AppError::not_found("tenant")
}

/// The first administrator of a new tenant.
pub struct FirstAdmin {
    pub email: Email,
    pub password: Secret,
}

/// Tenants over the store, the operator check, the password rules a first
/// administrator meets, and the caches a deleted or re-created tenant must
/// leave: the tenant cache `Sessions` reads, the access cache and the deny
/// list.
#[derive(Clone)]
pub struct Tenants {
    store: Arc<dyn Store>,
    clock: Clock,
    rbac: Rbac,
    deny: DenyList,
    passwords: PasswordHasher,
    policy: Arc<PasswordPolicy>,
    /// The tenant cache, told of every tenant created or deleted.
    tenants: EpochCache<String, Tenant>,
    signup_enabled: bool,
}

impl Tenants {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        clock: Clock,
        rbac: Rbac,
        deny: DenyList,
        passwords: PasswordHasher,
        policy: Arc<PasswordPolicy>,
        tenants: EpochCache<String, Tenant>,
        signup_enabled: bool,
    ) -> Self {
        Self {
            store,
            clock,
            rbac,
            deny,
            passwords,
            policy,
            tenants,
            signup_enabled,
        }
    }

    async fn require_operator(&self, principal: &Principal, permission: &str) -> AppResult<()> {
        if self.rbac.is_operator(principal, permission).await? {
            Ok(())
        } else {
            Err(AppError::forbidden(
                ErrorCode::Forbidden,
                format!("only operators (holders of {permission} in the default tenant) manage tenants"),
            ))
        }
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn list(
        &self,
        principal: &Principal,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> AppResult<Page<Tenant>> {
        self.require_operator(principal, "tenants:read").await?;
        let limit = paging::limit(limit)?;
        let after = cursor.map(|c| paging::decode_uuid("t", c)).transpose()?;
        let rows = self.store.list_tenants(after, limit + 1).await?;
        Ok(paging::page(rows, limit, |t: &Tenant| {
            paging::encode("t", &t.id.to_string())
        }))
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, tenant = %slug))]
    pub async fn get(&self, principal: &Principal, slug: &str) -> AppResult<Tenant> {
        self.require_operator(principal, "tenants:read").await?;
        self.store.tenant_by_slug(slug).await?.ok_or_else(tenant_not_found)
    }

    /// Creates a tenant; 409 `tenant_exists` when the slug is taken. `signup`
    /// sets its signup policy (400 `fields` `signup.*` when invalid); without
    /// it the tenant follows `signup.enabled` until its administrators choose.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, tenant = %slug.as_str()))]
    pub async fn create(
        &self,
        principal: &Principal,
        slug: TenantSlug,
        name: String,
        admin: Option<FirstAdmin>,
        signup: Option<SignupChange>,
        meta: &RequestMeta,
    ) -> AppResult<(Tenant, Option<User>)> {
        self.require_operator(principal, "tenants:write").await?;
        let default_policy = SignupPolicy::default_for(self.signup_enabled);
        let settings = TenantSettings {
            signup: signup
                .map(|change| settings::signup_policy(&default_policy, change))
                .transpose()?,
            ..TenantSettings::default()
        };
        let now = self.clock.now();
        let tenant_id = Uuid::now_v7();
        let admin_user = match admin {
            None => None,
            Some(FirstAdmin { email, password }) => {
                let mut hints = vec!["forge".to_string(), slug.to_string(), name.clone(), email.to_string()];
                hints.extend(email.as_str().split_once('@').map(|(local, _)| local.to_string()));
                accounts::check_password(&self.policy, &password, hints).await?;
                let hash = self.passwords.hash(&password).await.map_err(AppError::internal)?;
                Some(NewUser {
                    id: Uuid::now_v7(),
                    tenant_id,
                    email: Some(email),
                    // The operator vouches for the address, as `forge admin create` does.
                    email_verified: true,
                    phone: None,
                    phone_verified: false,
                    password_hash: Some(hash),
                    metadata: serde_json::json!({}),
                    roles: vec![RoleName::admin()],
                    now,
                })
            }
        };
        let admin_id = admin_user.as_ref().map(|u| u.id);
        let detail = serde_json::json!({
            "tenant_id": tenant_id, "slug": slug.as_str(), "name": name, "admin_user_id": admin_id,
            "signup": settings.signup.as_ref().map(|p| p.mode.as_str()),
        });
        let mut audit = Vec::new();
        let mut at_operator = meta.audit(
            principal.tenant.id,
            now,
            AuditEvent::TenantCreated,
            None,
            Some(principal.user_id),
        );
        at_operator.detail = detail.clone();
        audit.push(at_operator);
        let mut at_tenant = meta.audit(tenant_id, now, AuditEvent::TenantCreated, None, Some(principal.user_id));
        at_tenant.detail = detail;
        audit.push(at_tenant);
        if let Some(id) = admin_id {
            let mut created = meta.audit(
                tenant_id,
                now,
                AuditEvent::UserCreated,
                Some(id),
                Some(principal.user_id),
            );
            created.detail =
                serde_json::json!({ "roles": [RoleName::ADMIN], "password": true, "via": "tenant_create" });
            audit.push(created);
        }
        let created = self
            .store
            .create_tenant(
                NewTenant {
                    id: tenant_id,
                    slug: slug.clone(),
                    name,
                    now,
                    admin: admin_user,
                    settings,
                },
                audit,
            )
            .await?;
        self.tenants.changed().await?;
        Ok(created)
    }

    /// Deletes a tenant other than `default`, with its users, sessions, roles
    /// and audit log.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, tenant = %slug))]
    pub async fn delete(&self, principal: &Principal, slug: &str, meta: &RequestMeta) -> AppResult<()> {
        self.require_operator(principal, "tenants:write").await?;
        let slug = TenantSlug::parse(slug).map_err(|_| tenant_not_found())?;
        if slug.is_default() {
            return Err(AppError::forbidden(
                ErrorCode::DefaultTenant,
                "the default tenant cannot be deleted",
            ));
        }
        let mut audit = meta.audit(
            principal.tenant.id,
            self.clock.now(),
            AuditEvent::TenantDeleted,
            None,
            Some(principal.user_id),
        );
        audit.detail = serde_json::json!({ "slug": slug.as_str() });
        let deleted = self
            .store
            .delete_tenant(slug.as_str(), audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => tenant_not_found(),
                other => other.into(),
            })?;
        // One epoch covers tenants and access: every copy of either reloads.
        self.tenants.changed().await?;
        self.deny.deny_sessions(&deleted.live_sessions).await?;
        tracing::info!(tenant = %deleted.tenant.slug, sessions = deleted.live_sessions.len(), "tenant deleted");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::epoch::Epoch;
    use crate::crypto::password::Argon2Params;
    use crate::service::test_ports;
    use crate::state::AppState;

    #[tokio::test]
    async fn a_deleted_tenant_leaves_the_tenant_cache_sessions_read() {
        let (store, cache, clock) = (test_ports::store(), test_ports::cache(), test_ports::clock());
        let epoch = Epoch::local();
        let tenant_cache = AppState::tenant_cache(&epoch, 100);
        let sessions = test_ports::sessions_over(&store, &cache, &clock, tenant_cache.clone()).await;
        let rbac = Rbac::new(store.clone(), AppState::access_cache(&epoch, 100));
        let deny = DenyList::new(store.clone(), cache, clock.clone(), Default::default());
        let passwords = PasswordHasher::new(Argon2Params::default(), 1).unwrap();
        let policy = Arc::new(PasswordPolicy::default());
        let tenants = Tenants::new(store.clone(), clock, rbac, deny, passwords, policy, tenant_cache, true);
        let operator = test_ports::principal(&store, &["admin"]).await;
        let meta = RequestMeta::default();
        let slug = TenantSlug::parse("acme").unwrap();

        tenants
            .create(&operator, slug.clone(), "Acme".into(), None, None, &meta)
            .await
            .unwrap();
        assert!(
            sessions.tenant("acme").await.unwrap().is_some(),
            "found, and now cached"
        );
        tenants.delete(&operator, "acme", &meta).await.unwrap();
        assert!(
            sessions.tenant("acme").await.unwrap().is_none(),
            "gone from the cache too"
        );
    }
}
