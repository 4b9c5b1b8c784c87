//! Upstream identity providers of each tenant: the administrators' use
//! cases (register, list, change, delete) and what the sign-in flows need
//! (the enabled providers, a provider with its client secret).
//!
//! Who. The HTTP layer checks `providers:read` / `providers:write` through
//! `Rbac` before a use case runs (`RequirePermission`, as for clients); the
//! use cases act inside the caller's tenant ([`Actor`]), so another
//! tenant's provider is simply not found.
//!
//! Two sources. Providers registered through the API or the admin site are
//! stored, their client secret sealed ([`crate::crypto::seal`], its own key,
//! the tenant and provider id as associated data so a sealed secret copied
//! to another row does not open). Providers declared in `forge.toml`
//! (`[[providers]]`) are kept in memory, checked at load with the same
//! rules, marked `from_config`, merged into every listing and lookup, and
//! read-only through the API (409 `read_only`): the file is their source of
//! truth, and a change made elsewhere would be lost at the next start. A
//! configured provider shadows a stored one of the same id.
//!
//! Secrets are never returned by the administrators' use cases, never
//! logged and never audited; only [`Providers::resolve`] opens one, for the
//! flows that must send it upstream.

use std::sync::Arc;

use anyhow::Context;
use uuid::Uuid;

use super::RequestMeta;
use crate::clock::Clock;
use crate::config::{Config, trimmed_provider_secret};
use crate::crypto::seal::SealingKey;
use crate::domain::AuditEvent;
use crate::domain::providers::{Identity, InvalidProvider, Provider, ProviderId, ProviderPatch, ProviderSpec};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::store::{NewProvider, Store, StoreError};

pub use crate::service::clients::Actor;

/// A provider declared in the configuration file, with its secret.
#[derive(Clone, Debug)]
pub struct Configured {
    pub provider: Provider,
    pub secret: Secret,
}

/// The associated data a provider's sealed secret is bound to.
fn secret_aad(tenant_id: Uuid, id: &ProviderId) -> Vec<u8> {
    format!("{tenant_id}/{id}").into_bytes()
}

fn provider_not_found() -> AppError {
    AppError::not_found("provider")
}

fn not_found_as_provider(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound => provider_not_found(),
        other => other.into(),
    }
}

/// The API's answer to a registration that does not pass validation.
pub fn invalid_spec(e: InvalidProvider) -> AppError {
    AppError::validation(e.field, e.reason)
}

fn read_only(id: &ProviderId) -> AppError {
    AppError::conflict(
        ErrorCode::ReadOnly,
        format!("provider {id} is declared in the configuration file; change it there"),
    )
}

/// A client secret as given, trimmed ([`trimmed_provider_secret`]).
fn checked_secret(secret: &Secret) -> AppResult<Secret> {
    trimmed_provider_secret(secret.expose())
        .map(Secret::new)
        .map_err(|e| AppError::validation("client_secret", e))
}

/// The providers of every tenant.
#[derive(Clone)]
pub struct Providers {
    store: Arc<dyn Store>,
    clock: Clock,
    key: SealingKey,
    configured: Arc<Vec<Configured>>,
}

impl Providers {
    /// `key` seals client secrets ([`SealingKey::provider_secrets`]);
    /// `configured` are the file's providers ([`Providers::from_config`]).
    pub fn new(store: Arc<dyn Store>, clock: Clock, key: SealingKey, configured: Vec<Configured>) -> Self {
        Self {
            store,
            clock,
            key,
            configured: Arc::new(configured),
        }
    }

    /// The `[[providers]]` of the configuration (validated at load), with
    /// their tenants looked up: an entry naming a tenant that does not
    /// exist stops the start, naming the key.
    pub async fn from_config(config: &Config, store: &dyn Store, now: i64) -> anyhow::Result<Vec<Configured>> {
        let mut out = Vec::with_capacity(config.providers.len());
        for (i, entry) in config.providers.iter().enumerate() {
            let (slug, id, spec) = entry
                .to_spec()
                .map_err(|(field, why)| anyhow::anyhow!("providers[{i}].{field}: {why}"))?;
            let tenant = store
                .tenant_by_slug(slug.as_str())
                .await
                .context("cannot look up the tenants of [[providers]]")?
                .ok_or_else(|| anyhow::anyhow!("providers[{i}].tenant: no tenant {slug}"))?;
            let provider = Provider::from_spec(tenant.id, id, spec, true, now, now)
                .map_err(|e| anyhow::anyhow!("providers[{i}].{}: {}", e.field, e.reason))?;
            out.push(Configured {
                provider,
                secret: Secret::new(entry.client_secret.expose().trim()),
            });
        }
        Ok(out)
    }

    fn configured(&self, tenant_id: Uuid, id: &ProviderId) -> Option<&Configured> {
        self.configured
            .iter()
            .find(|c| c.provider.tenant_id == tenant_id && &c.provider.id == id)
    }

    /// The tenant's providers, configured and stored, by id (never a secret).
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id))]
    pub async fn list_as(&self, by: Actor) -> AppResult<Vec<Provider>> {
        let mut all: Vec<Provider> = self
            .configured
            .iter()
            .filter(|c| c.provider.tenant_id == by.tenant_id)
            .map(|c| c.provider.clone())
            .collect();
        for stored in self.store.list_providers(by.tenant_id).await? {
            if !all.iter().any(|p| p.id == stored.id) {
                all.push(stored);
            }
        }
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    /// One provider of the tenant; 404 `not_found` otherwise.
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, provider = %id))]
    pub async fn get_as(&self, by: Actor, id: &str) -> AppResult<Provider> {
        self.find(by.tenant_id, id).await?.ok_or_else(provider_not_found)
    }

    async fn find(&self, tenant_id: Uuid, id: &str) -> AppResult<Option<Provider>> {
        let Ok(id) = ProviderId::parse(id) else {
            return Ok(None);
        };
        if let Some(c) = self.configured(tenant_id, &id) {
            return Ok(Some(c.provider.clone()));
        }
        Ok(self.store.get_provider(tenant_id, &id).await?)
    }

    /// Registers a provider (`spec` is validated here; 400 names the
    /// field). 409 `conflict` when the tenant has one by that id, stored
    /// or configured.
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id))]
    pub async fn create_as(
        &self,
        by: Actor,
        id: &str,
        mut spec: ProviderSpec,
        client_secret: Secret,
        meta: &RequestMeta,
    ) -> AppResult<Provider> {
        let id = ProviderId::parse(id).map_err(|why| AppError::validation("id", why))?;
        spec.validate().map_err(invalid_spec)?;
        let secret = checked_secret(&client_secret)?;
        if self.configured(by.tenant_id, &id).is_some() {
            return Err(AppError::conflict(
                ErrorCode::Conflict,
                format!("provider {id} is declared in the configuration file"),
            ));
        }
        let sealed = self
            .key
            .seal(secret.expose().as_bytes(), &secret_aad(by.tenant_id, &id))
            .map_err(AppError::internal)?;
        let now = self.clock.now();
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::ProviderCreated, None, by.user_id);
        audit.detail = serde_json::json!({
            "provider": id.as_str(),
            "kind": spec.kind.as_str(),
            "name": spec.name,
            "client_id": spec.client_id,
            "enabled": spec.enabled,
        });
        let created = self
            .store
            .create_provider(
                NewProvider {
                    tenant_id: by.tenant_id,
                    id,
                    spec,
                    sealed_secret: sealed,
                    now,
                },
                audit,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => {
                    AppError::conflict(ErrorCode::Conflict, "a provider with that id exists")
                }
                other => other.into(),
            })?;
        Ok(created)
    }

    /// Changes what the provider declares (the whole result is validated
    /// again) and, when `client_secret` is given, its secret. 409
    /// `read_only` for a configured provider.
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, provider = %id))]
    pub async fn update_as(
        &self,
        by: Actor,
        id: &str,
        patch: ProviderPatch,
        client_secret: Option<Secret>,
        meta: &RequestMeta,
    ) -> AppResult<Provider> {
        let current = self.get_as(by, id).await?;
        if current.from_config {
            return Err(read_only(&current.id));
        }
        let mut fields = patch.fields();
        let mut spec = current.spec();
        patch.apply(&mut spec);
        spec.validate().map_err(invalid_spec)?;
        let sealed = match client_secret {
            Some(s) => {
                let s = checked_secret(&s)?;
                fields.push("client_secret");
                Some(
                    self.key
                        .seal(s.expose().as_bytes(), &secret_aad(by.tenant_id, &current.id))
                        .map_err(AppError::internal)?,
                )
            }
            None => None,
        };
        let mut unchanged = current.spec();
        // Compare like with like: both normalised.
        let _ = unchanged.validate();
        if sealed.is_none() && spec == unchanged {
            return Ok(current);
        }
        let now = self.clock.now();
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::ProviderUpdated, None, by.user_id);
        audit.detail = serde_json::json!({ "provider": current.id.as_str(), "fields": fields });
        self.store
            .update_provider(by.tenant_id, &current.id, spec, sealed, now, audit)
            .await
            .map_err(not_found_as_provider)
    }

    /// Deletes a stored provider and the identities linked from it. 409
    /// `read_only` for a configured provider.
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, provider = %id))]
    pub async fn delete_as(&self, by: Actor, id: &str, meta: &RequestMeta) -> AppResult<()> {
        let current = self.get_as(by, id).await?;
        if current.from_config {
            return Err(read_only(&current.id));
        }
        let now = self.clock.now();
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::ProviderDeleted, None, by.user_id);
        audit.detail = serde_json::json!({ "provider": current.id.as_str(), "name": current.name });
        self.store
            .delete_provider(by.tenant_id, &current.id, audit)
            .await
            .map_err(not_found_as_provider)?;
        Ok(())
    }

    /// A user's linked identities, for administrators (`users:read`); 404
    /// when the user is not the tenant's.
    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, user_id = %user_id))]
    pub async fn identities_as(&self, by: Actor, user_id: Uuid) -> AppResult<Vec<Identity>> {
        if self.store.get_user(by.tenant_id, user_id).await?.is_none() {
            return Err(AppError::not_found("user"));
        }
        Ok(self.store.list_identities(by.tenant_id, user_id).await?)
    }

    // ---- the sign-in flows ----

    /// The tenant's enabled providers, by id: the buttons to show.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id))]
    pub async fn enabled(&self, tenant_id: Uuid) -> AppResult<Vec<Provider>> {
        let mut all = self.list_as(Actor::operator(tenant_id)).await?;
        all.retain(|p| p.enabled);
        Ok(all)
    }

    /// A provider of the tenant (enabled or not: the caller decides) with
    /// its client secret in clear, to sign in with it. `None` when the
    /// tenant has no such provider. A stored secret that does not open
    /// (another server secret, a row copied elsewhere) is an internal
    /// error, logged without the secret.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, provider = %id))]
    pub async fn resolve(&self, tenant_id: Uuid, id: &str) -> AppResult<Option<(Provider, Secret)>> {
        let Ok(id) = ProviderId::parse(id) else {
            return Ok(None);
        };
        if let Some(c) = self.configured(tenant_id, &id) {
            return Ok(Some((c.provider.clone(), c.secret.clone())));
        }
        let Some(found) = self.store.provider_secret(tenant_id, &id).await? else {
            return Ok(None);
        };
        let opened = self
            .key
            .open(&found.sealed_secret, &secret_aad(tenant_id, &id))
            .map_err(|_| {
                tracing::error!("a provider's client secret cannot be opened");
                AppError::internal(anyhow::anyhow!("a provider's client secret cannot be opened"))
            })?;
        let secret = String::from_utf8(opened)
            .map_err(|_| AppError::internal(anyhow::anyhow!("a provider's client secret is not text")))?;
        Ok(Some((found.provider, Secret::new(secret))))
    }
}
