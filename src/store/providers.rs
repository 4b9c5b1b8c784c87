//! The upstream identity providers port: the providers a tenant registered
//! (with their client secrets, sealed) and the identities its users linked
//! from them.
//!
//! Written once, over either database (see `sql.rs`): `impl<D: Driver>
//! ProviderStore for D`. What it keeps atomic:
//!
//! - **One identity, one user.** `(tenant, provider, subject)` is unique
//!   (`user_identities_subject`): linking an identity that is already
//!   linked, to anyone, is `Conflict{subject}`.
//! - **No half-created account.** [`ProviderStore::create_user_with_identity`]
//!   inserts the user, their roles, the identity and the audit rows in one
//!   transaction: a conflict on either (email, subject) leaves nothing.
//! - **The last way in.** [`ProviderStore::unlink_identity`] decides and
//!   deletes in one transaction under `Conn::lock("identities:<user>")`:
//!   the identity goes only if something else would remain to sign in with
//!   (a password, a verified email or phone, a passkey, another identity).
//! - **A provider takes its identities along.** Deleting a provider deletes
//!   the identities linked from it in the same transaction.
//!
//! Secrets: the store sees a provider's client secret only sealed
//! (`crypto::seal`); the listing type [`Provider`] carries none, and
//! [`ProviderSecret`], which does, prints none in `Debug`.

use async_trait::async_trait;
use uuid::Uuid;

use super::accounts::set_roles;
use super::rows::{insert_audit, load_user};
use super::sql::{Conn, Driver, Row, args, corrupt};
use super::{NewAuditEvent, NewUser, StoreError, StoreResult, User};
use crate::domain::Timestamp;
use crate::domain::providers::{
    AppleKey, ClaimMap, Identity, NewIdentity, Provider, ProviderId, ProviderKind, ProviderSpec,
};

/// A provider to register: its id, validated spec and sealed secret.
#[derive(Clone)]
pub struct NewProvider {
    pub tenant_id: Uuid,
    pub id: ProviderId,
    pub spec: ProviderSpec,
    /// The client secret, sealed (`crypto::seal`, tenant and provider id
    /// as associated data).
    pub sealed_secret: Vec<u8>,
    pub now: Timestamp,
}

impl std::fmt::Debug for NewProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewProvider")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// A stored provider with its sealed client secret, for signing in with it.
#[derive(Clone)]
pub struct ProviderSecret {
    pub provider: Provider,
    pub sealed_secret: Vec<u8>,
}

impl std::fmt::Debug for ProviderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSecret")
            .field("provider", &self.provider)
            .field("sealed_secret", &"***")
            .finish()
    }
}

/// What [`ProviderStore::unlink_identity`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnlinkOutcome {
    Unlinked,
    /// The user has no such identity (nothing written).
    NotFound,
    /// Refused: nothing else would remain to sign in with (nothing written).
    LastSignInMethod,
}

#[async_trait]
pub trait ProviderStore: Send + Sync + 'static {
    /// Registers a provider and writes `audit`. `Conflict{id}` when the
    /// tenant has one by that id.
    async fn create_provider(&self, new: NewProvider, audit: NewAuditEvent) -> StoreResult<Provider>;
    /// The tenant's stored providers, by id.
    async fn list_providers(&self, tenant_id: Uuid) -> StoreResult<Vec<Provider>>;
    async fn get_provider(&self, tenant_id: Uuid, id: &ProviderId) -> StoreResult<Option<Provider>>;
    /// A provider with its sealed client secret.
    async fn provider_secret(&self, tenant_id: Uuid, id: &ProviderId) -> StoreResult<Option<ProviderSecret>>;
    /// Replaces what the provider declares with `spec` (and its secret when
    /// `sealed_secret` is given), writes `audit`; `NotFound` when absent.
    async fn update_provider(
        &self,
        tenant_id: Uuid,
        id: &ProviderId,
        spec: ProviderSpec,
        sealed_secret: Option<Vec<u8>>,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Provider>;
    /// Deletes the provider and every identity linked from it and writes
    /// `audit`, in one transaction; returns how many identities went.
    /// `NotFound` when absent.
    async fn delete_provider(&self, tenant_id: Uuid, id: &ProviderId, audit: NewAuditEvent) -> StoreResult<u64>;

    // ---- linked identities ----
    /// The identity `(provider, subject)` of the tenant, whoever it is linked to.
    async fn find_identity(
        &self,
        tenant_id: Uuid,
        provider: &ProviderId,
        subject: &str,
    ) -> StoreResult<Option<Identity>>;
    /// The user's identities, oldest first.
    async fn list_identities(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Vec<Identity>>;
    /// Links an identity to an existing user of the tenant and writes
    /// `audit`. `Conflict{subject}` when `(provider, subject)` is linked
    /// already (to anyone); `NotFound` when the user is not the tenant's.
    async fn link_identity(&self, new: NewIdentity, audit: NewAuditEvent) -> StoreResult<Identity>;
    /// Creates the user (with password, roles as `create_user` does) and
    /// links the identity to them, writing every row of `audit`, in one
    /// transaction: on any conflict (`email`, `phone`, `subject`) nothing is
    /// written. `identity.user_id` and `tenant_id` must be the user's.
    async fn create_user_with_identity(
        &self,
        user: NewUser,
        identity: NewIdentity,
        audit: Vec<NewAuditEvent>,
    ) -> StoreResult<(User, Identity)>;
    /// Records a sign-in with the identity: `last_used_at`, and the email
    /// the upstream now reports when `email` is given. False when the
    /// tenant has no such identity.
    async fn touch_identity(
        &self,
        tenant_id: Uuid,
        identity_id: Uuid,
        email: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Unlinks one of the user's identities unless nothing else would
    /// remain to sign in with; writes `audit` only when it unlinks.
    async fn unlink_identity(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        identity_id: Uuid,
        audit: NewAuditEvent,
    ) -> StoreResult<UnlinkOutcome>;
}

const PROVIDER_COLUMNS: &str = "tenant_id, id, kind, name, client_id, issuer, authorize_url, token_url, userinfo_url, \
     scopes, claims, team_id, key_id, enabled, created_at, updated_at";

const IDENTITY_COLUMNS: &str = "id, tenant_id, user_id, provider_id, subject, email, created_at, last_used_at";

/// The claim map as stored: a JSON object of its field names.
fn claims_json(c: &ClaimMap) -> serde_json::Value {
    serde_json::json!({
        "subject": c.subject,
        "email": c.email,
        "email_verified": c.email_verified,
        "name": c.name,
    })
}

fn claims_from(v: &serde_json::Value) -> StoreResult<ClaimMap> {
    let field = |name: &str| -> StoreResult<Option<String>> {
        match v.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(corrupt("claims", "a field name is not a string")),
        }
    };
    Ok(ClaimMap {
        subject: field("subject")?.ok_or_else(|| corrupt("claims", "no subject field"))?,
        email: field("email")?,
        email_verified: field("email_verified")?,
        name: field("name")?,
    })
}

fn url_column(row: &Row, name: &str) -> StoreResult<Option<url::Url>> {
    row.get::<Option<String>>(name)?
        .map(|s| url::Url::parse(&s).map_err(|_| corrupt(name, "not a URL")))
        .transpose()
}

fn provider_from_row(row: &Row) -> StoreResult<Provider> {
    let id: String = row.get("id")?;
    let kind: String = row.get("kind")?;
    let claims: serde_json::Value = row.json("claims")?;
    let apple = match (
        row.get::<Option<String>>("team_id")?,
        row.get::<Option<String>>("key_id")?,
    ) {
        (Some(team_id), Some(key_id)) => Some(AppleKey { team_id, key_id }),
        (None, None) => None,
        _ => return Err(corrupt("key_id", "team_id and key_id come together")),
    };
    Ok(Provider {
        tenant_id: row.get("tenant_id")?,
        id: ProviderId::parse(&id).map_err(|_| corrupt("id", "not a provider id"))?,
        kind: ProviderKind::parse(&kind).map_err(|_| corrupt("kind", "unknown provider kind"))?,
        name: row.get("name")?,
        client_id: row.get("client_id")?,
        issuer: url_column(row, "issuer")?,
        authorize_url: url_column(row, "authorize_url")?,
        token_url: url_column(row, "token_url")?,
        userinfo_url: url_column(row, "userinfo_url")?,
        scopes: row.json("scopes")?,
        claims: claims_from(&claims)?,
        apple,
        enabled: row.get("enabled")?,
        from_config: false,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn identity_from_row(row: &Row) -> StoreResult<Identity> {
    let provider: String = row.get("provider_id")?;
    Ok(Identity {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        user_id: row.get("user_id")?,
        provider: ProviderId::parse(&provider).map_err(|_| corrupt("provider_id", "not a provider id"))?,
        subject: row.get("subject")?,
        email: row.get("email")?,
        created_at: row.get("created_at")?,
        last_used_at: row.get("last_used_at")?,
    })
}

fn load_provider(c: &mut dyn Conn, tenant_id: Uuid, id: &str) -> StoreResult<Option<Provider>> {
    let sql = format!("SELECT {PROVIDER_COLUMNS} FROM identity_providers WHERE tenant_id = $1 AND id = $2");
    c.query_opt_map(&sql, &args![tenant_id, id], provider_from_row)
}

fn load_identity(c: &mut dyn Conn, tenant_id: Uuid, id: Uuid) -> StoreResult<Option<Identity>> {
    let sql = format!("SELECT {IDENTITY_COLUMNS} FROM user_identities WHERE tenant_id = $1 AND id = $2");
    c.query_opt_map(&sql, &args![tenant_id, id], identity_from_row)
}

/// Inserts the identity; `Conflict{subject}` when `(provider, subject)` is
/// linked already (checked first, so the answer does not depend on how a
/// driver names the constraint).
fn insert_identity(c: &mut dyn Conn, new: &NewIdentity) -> StoreResult<Identity> {
    let taken: bool = c.query_value(
        "SELECT EXISTS (SELECT 1 FROM user_identities WHERE tenant_id = $1 AND provider_id = $2 AND subject = $3)",
        &args![new.tenant_id, new.provider.as_str(), &new.subject],
    )?;
    if taken {
        return Err(StoreError::Conflict { field: "subject" });
    }
    c.execute(
        "INSERT INTO user_identities (id, tenant_id, user_id, provider_id, subject, email, created_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        &args![
            new.id,
            new.tenant_id,
            new.user_id,
            new.provider.as_str(),
            &new.subject,
            &new.email,
            new.now,
        ],
    )?;
    load_identity(c, new.tenant_id, new.id)?.ok_or(StoreError::NotFound)
}

fn apple_ids(spec: &ProviderSpec) -> (Option<String>, Option<String>) {
    spec.apple
        .as_ref()
        .map(|a| (Some(a.team_id.clone()), Some(a.key_id.clone())))
        .unwrap_or_default()
}

#[async_trait]
impl<D: Driver> ProviderStore for D {
    async fn create_provider(&self, new: NewProvider, audit: NewAuditEvent) -> StoreResult<Provider> {
        self.write(move |c| {
            let taken: bool = c.query_value(
                "SELECT EXISTS (SELECT 1 FROM identity_providers WHERE tenant_id = $1 AND id = $2)",
                &args![new.tenant_id, new.id.as_str()],
            )?;
            if taken {
                return Err(StoreError::Conflict { field: "id" });
            }
            let s = &new.spec;
            let (team_id, key_id) = apple_ids(s);
            let sql = format!(
                "INSERT INTO identity_providers ({PROVIDER_COLUMNS}, client_secret) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16)"
            );
            c.execute(
                &sql,
                &args![
                    new.tenant_id,
                    new.id.as_str(),
                    s.kind.as_str(),
                    &s.name,
                    &s.client_id,
                    &s.issuer,
                    &s.authorize_url,
                    &s.token_url,
                    &s.userinfo_url,
                    serde_json::json!(s.scopes),
                    claims_json(&s.claims),
                    team_id,
                    key_id,
                    s.enabled,
                    new.now,
                    &new.sealed_secret,
                ],
            )?;
            insert_audit(c, &audit)?;
            load_provider(c, new.tenant_id, new.id.as_str())?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn list_providers(&self, tenant_id: Uuid) -> StoreResult<Vec<Provider>> {
        self.read(move |c| {
            let sql = format!("SELECT {PROVIDER_COLUMNS} FROM identity_providers WHERE tenant_id = $1 ORDER BY id");
            c.query_map(&sql, &args![tenant_id], provider_from_row)
        })
        .await
    }

    async fn get_provider(&self, tenant_id: Uuid, id: &ProviderId) -> StoreResult<Option<Provider>> {
        let id = id.clone();
        self.read(move |c| load_provider(c, tenant_id, id.as_str())).await
    }

    async fn provider_secret(&self, tenant_id: Uuid, id: &ProviderId) -> StoreResult<Option<ProviderSecret>> {
        let id = id.clone();
        self.read(move |c| {
            let sql = format!(
                "SELECT {PROVIDER_COLUMNS}, client_secret FROM identity_providers WHERE tenant_id = $1 AND id = $2"
            );
            c.query_opt_map(&sql, &args![tenant_id, id.as_str()], |r| {
                Ok(ProviderSecret {
                    provider: provider_from_row(r)?,
                    sealed_secret: r.get("client_secret")?,
                })
            })
        })
        .await
    }

    async fn update_provider(
        &self,
        tenant_id: Uuid,
        id: &ProviderId,
        spec: ProviderSpec,
        sealed_secret: Option<Vec<u8>>,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Provider> {
        let id = id.clone();
        self.write(move |c| {
            let (team_id, key_id) = apple_ids(&spec);
            let n = c.execute(
                "UPDATE identity_providers SET kind = $3, name = $4, client_id = $5, issuer = $6, authorize_url = $7, \
                 token_url = $8, userinfo_url = $9, scopes = $10, claims = $11, team_id = $12, key_id = $13, \
                 enabled = $14, updated_at = $15, \
                 client_secret = CASE WHEN $16 IS NULL THEN client_secret ELSE $16 END \
                 WHERE tenant_id = $1 AND id = $2",
                &args![
                    tenant_id,
                    id.as_str(),
                    spec.kind.as_str(),
                    &spec.name,
                    &spec.client_id,
                    &spec.issuer,
                    &spec.authorize_url,
                    &spec.token_url,
                    &spec.userinfo_url,
                    serde_json::json!(spec.scopes),
                    claims_json(&spec.claims),
                    team_id,
                    key_id,
                    spec.enabled,
                    now,
                    &sealed_secret,
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit(c, &audit)?;
            load_provider(c, tenant_id, id.as_str())?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn delete_provider(&self, tenant_id: Uuid, id: &ProviderId, audit: NewAuditEvent) -> StoreResult<u64> {
        let id = id.clone();
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM identity_providers WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, id.as_str()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let gone = c.execute(
                "DELETE FROM user_identities WHERE tenant_id = $1 AND provider_id = $2",
                &args![tenant_id, id.as_str()],
            )?;
            insert_audit(c, &audit)?;
            Ok(gone)
        })
        .await
    }

    async fn find_identity(
        &self,
        tenant_id: Uuid,
        provider: &ProviderId,
        subject: &str,
    ) -> StoreResult<Option<Identity>> {
        let provider = provider.clone();
        let subject = subject.to_owned();
        self.read(move |c| {
            let sql = format!(
                "SELECT {IDENTITY_COLUMNS} FROM user_identities WHERE tenant_id = $1 AND provider_id = $2 AND subject = $3"
            );
            c.query_opt_map(&sql, &args![tenant_id, provider.as_str(), &subject], identity_from_row)
        })
        .await
    }

    async fn list_identities(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Vec<Identity>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {IDENTITY_COLUMNS} FROM user_identities WHERE tenant_id = $1 AND user_id = $2 \
                 ORDER BY created_at, id"
            );
            c.query_map(&sql, &args![tenant_id, user_id], identity_from_row)
        })
        .await
    }

    async fn link_identity(&self, new: NewIdentity, audit: NewAuditEvent) -> StoreResult<Identity> {
        self.write(move |c| {
            // The user must be the tenant's: the foreign key alone would
            // take a user of another tenant.
            if load_user(c, new.tenant_id, new.user_id)?.is_none() {
                return Err(StoreError::NotFound);
            }
            let identity = insert_identity(c, &new)?;
            insert_audit(c, &audit)?;
            Ok(identity)
        })
        .await
    }

    async fn create_user_with_identity(
        &self,
        user: NewUser,
        identity: NewIdentity,
        audit: Vec<NewAuditEvent>,
    ) -> StoreResult<(User, Identity)> {
        self.write(move |c| {
            if identity.user_id != user.id || identity.tenant_id != user.tenant_id {
                return Err(StoreError::Internal(anyhow::anyhow!(
                    "the identity must name the user being created"
                )));
            }
            c.execute(
                "INSERT INTO users (id, tenant_id, email, email_verified, phone, phone_verified, metadata, \
                 created_at, updated_at, last_sign_in_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)",
                &args![
                    user.id,
                    user.tenant_id,
                    user.email.as_ref().map(|e| e.as_str()),
                    user.email_verified,
                    user.phone.as_ref().map(|p| p.as_str()),
                    user.phone_verified,
                    &user.metadata,
                    user.now,
                ],
            )?;
            if let Some(hash) = &user.password_hash {
                c.execute(
                    "INSERT INTO password_credentials (user_id, tenant_id, hash, updated_at) VALUES ($1, $2, $3, $4)",
                    &args![user.id, user.tenant_id, hash, user.now],
                )?;
            }
            set_roles(c, user.tenant_id, user.id, &user.roles, user.now)?;
            let linked = insert_identity(c, &identity)?;
            for a in &audit {
                insert_audit(c, a)?;
            }
            let created = load_user(c, user.tenant_id, user.id)?.ok_or(StoreError::NotFound)?;
            Ok((created, linked))
        })
        .await
    }

    async fn touch_identity(
        &self,
        tenant_id: Uuid,
        identity_id: Uuid,
        email: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let email = email.map(str::to_owned);
        self.write(move |c| {
            let n = c.execute(
                "UPDATE user_identities SET last_used_at = $3, email = CASE WHEN $4 IS NULL THEN email ELSE $4 END \
                 WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, identity_id, now, &email],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn unlink_identity(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        identity_id: Uuid,
        audit: NewAuditEvent,
    ) -> StoreResult<UnlinkOutcome> {
        self.write(move |c| {
            c.lock(&format!("identities:{user_id}"))?;
            let Some(identity) = load_identity(c, tenant_id, identity_id)? else {
                return Ok(UnlinkOutcome::NotFound);
            };
            if identity.user_id != user_id {
                return Ok(UnlinkOutcome::NotFound);
            }
            // Every other way this user can sign in: a password, a verified
            // email or phone (codes and links), a passkey, another identity.
            let other_way: bool = c.query_value(
                "SELECT EXISTS (SELECT 1 FROM password_credentials WHERE user_id = $2) \
                 OR EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2 \
                            AND ((email IS NOT NULL AND email_verified) OR (phone IS NOT NULL AND phone_verified))) \
                 OR EXISTS (SELECT 1 FROM factors WHERE tenant_id = $1 AND user_id = $2 AND kind = 'webauthn' \
                            AND confirmed_at IS NOT NULL) \
                 OR EXISTS (SELECT 1 FROM user_identities WHERE tenant_id = $1 AND user_id = $2 AND id <> $3)",
                &args![tenant_id, user_id, identity_id],
            )?;
            if !other_way {
                return Ok(UnlinkOutcome::LastSignInMethod);
            }
            c.execute(
                "DELETE FROM user_identities WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, identity_id],
            )?;
            insert_audit(c, &audit)?;
            Ok(UnlinkOutcome::Unlinked)
        })
        .await
    }
}
