//! The OAuth clients port: registered clients of a tenant, their secrets
//! (as hashes) and the consents users gave them.
//!
//! Written once, over either database (see `sql.rs`): `impl<D: Driver>
//! ClientStore for D`. What it keeps atomic:
//!
//! - **Revocation with the change.** Deleting a client, rotating its secret
//!   and revoking a user's consent each revoke the sessions opened for that
//!   client (all of them, or that user's) in the change's own transaction,
//!   and return their ids for the caller to put on the deny list (as
//!   signing out does). The session rows stay, revoked, so the deny list is
//!   refilled from them after a restart (`AccountStore::revoked_since`).
//! - **One client id, one tenant.** `client_id` is unique across tenants;
//!   [`ClientStore::find_client`] finds a client by it alone, with its
//!   tenant. Every other method names the tenant, so an administrator of one
//!   tenant can neither read nor change another tenant's client.
//! - **Secrets.** The store sees only the SHA-256 of a client secret. The
//!   listing type [`Client`] carries none; [`ClientSecret`], which does,
//!   comes only from `find_client` and prints no hash in `Debug`.
//!
//! Lists (URIs, grant types, scopes) are JSON arrays of strings; a stored
//! value that does not parse back (an unknown grant type or algorithm) is
//! an error naming the column, never a default.

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::insert_audit;
use super::sql::{Conn, Driver, Row, args, corrupt};
use super::{NewAuditEvent, StoreError, StoreResult};
use crate::domain::Timestamp;
use crate::domain::clients::{Client, ClientKind, ClientSpec, GrantType, IdTokenAlg};

/// A client to register: its validated spec, ids and secret hash.
#[derive(Clone)]
pub struct NewClient {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub client_id: String,
    pub spec: ClientSpec,
    /// The hex SHA-256 of the secret; `Some` exactly for confidential clients.
    pub secret_hash: Option<String>,
    pub now: Timestamp,
}

impl std::fmt::Debug for NewClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewClient")
            .field("client_id", &self.client_id)
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// A client with the hash of its secret, for authenticating it.
#[derive(Clone)]
pub struct ClientSecret {
    pub client: Client,
    /// `None` for a public client.
    pub secret_hash: Option<String>,
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSecret")
            .field("client", &self.client)
            .field("secret_hash", &self.secret_hash.as_ref().map(|_| "***"))
            .finish()
    }
}

/// What a user allowed a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A client a user consented to, as their account page lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// When the scopes now held were last granted.
    pub granted_at: Timestamp,
}

#[async_trait]
pub trait ClientStore: Send + Sync + 'static {
    /// Registers a client and writes `audit`. `Conflict{client_id}` if the
    /// id is taken (in any tenant).
    async fn create_client(&self, new: NewClient, audit: NewAuditEvent) -> StoreResult<Client>;
    /// The tenant's clients, oldest first.
    async fn list_clients(&self, tenant_id: Uuid) -> StoreResult<Vec<Client>>;
    async fn get_client(&self, tenant_id: Uuid, client_id: &str) -> StoreResult<Option<Client>>;
    /// A client of any tenant by its `client_id`, with its secret hash.
    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientSecret>>;
    /// Replaces what the client declares with `spec` (its kind stays),
    /// writes `audit`; `NotFound` when the tenant has no such client.
    async fn update_client(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        spec: ClientSpec,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Client>;
    /// Deletes the client (its consents go with it), revokes every live
    /// session opened for it and writes `audit`, in one transaction;
    /// returns the revoked session ids. `NotFound` when absent.
    async fn delete_client(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Vec<Uuid>>;
    /// Replaces a confidential client's secret hash, revokes every live
    /// session opened for it and writes `audit`, in one transaction; returns
    /// the revoked session ids. `NotFound` when absent or public.
    async fn rotate_client_secret(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        secret_hash: String,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Vec<Uuid>>;

    // ---- consents ----
    async fn consent(&self, tenant_id: Uuid, user_id: Uuid, client_id: &str) -> StoreResult<Option<Consent>>;
    /// Adds `scopes` to what the user allowed the client (creating the
    /// consent if needed) and writes `audit`; returns the consent.
    /// `NotFound` when the user or the client is not the tenant's.
    async fn grant_consent(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        client_id: &str,
        scopes: Vec<String>,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Consent>;
    /// The clients the user consented to, with their names, by name.
    async fn list_consents(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Vec<ConnectedApp>>;
    /// Deletes the user's consent to the client and revokes the user's live
    /// sessions of that client, writing `audit`, in one transaction. Returns
    /// the revoked session ids, or `None` (and writes nothing) when there
    /// was neither a consent nor a live session.
    async fn revoke_consent(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        client_id: &str,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Option<Vec<Uuid>>>;
}

const CLIENT_COLUMNS: &str = "id, tenant_id, client_id, name, kind, redirect_uris, post_logout_redirect_uris, \
     grant_types, scopes, first_party, backchannel_logout_uri, id_token_alg, created_at, updated_at";

fn client_from_row(row: &Row) -> StoreResult<Client> {
    let kind: String = row.get("kind")?;
    let alg: String = row.get("id_token_alg")?;
    let grants: Vec<String> = row.json("grant_types")?;
    let grant_types = grants
        .iter()
        .map(|g| GrantType::parse(g).map_err(|_| corrupt("grant_types", "unknown grant type")))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Client {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        client_id: row.get("client_id")?,
        name: row.get("name")?,
        kind: ClientKind::parse(&kind).map_err(|_| corrupt("kind", "unknown client kind"))?,
        redirect_uris: row.json("redirect_uris")?,
        post_logout_redirect_uris: row.json("post_logout_redirect_uris")?,
        grant_types,
        scopes: row.json("scopes")?,
        first_party: row.get("first_party")?,
        backchannel_logout_uri: row.get("backchannel_logout_uri")?,
        id_token_alg: IdTokenAlg::parse(&alg).map_err(|_| corrupt("id_token_alg", "unknown algorithm"))?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn consent_from_row(row: &Row) -> StoreResult<Consent> {
    Ok(Consent {
        tenant_id: row.get("tenant_id")?,
        user_id: row.get("user_id")?,
        client_id: row.get("client_id")?,
        scopes: row.json("scopes")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn json_list<T: serde::Serialize>(items: &[T]) -> serde_json::Value {
    serde_json::json!(items)
}

fn grant_names(grants: &[GrantType]) -> serde_json::Value {
    json_list(&grants.iter().map(|g| g.as_str()).collect::<Vec<_>>())
}

fn load_client(c: &mut dyn Conn, tenant_id: Uuid, client_id: &str) -> StoreResult<Option<Client>> {
    let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE tenant_id = $1 AND client_id = $2");
    c.query_opt_map(&sql, &args![tenant_id, client_id], client_from_row)
}

fn load_consent(c: &mut dyn Conn, tenant_id: Uuid, user_id: Uuid, client_id: &str) -> StoreResult<Option<Consent>> {
    c.query_opt_map(
        "SELECT tenant_id, user_id, client_id, scopes, created_at, updated_at FROM oauth_consents \
         WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3",
        &args![tenant_id, user_id, client_id],
        consent_from_row,
    )
}

/// Revokes the live sessions of a client (only `user_id`'s when given);
/// returns their ids.
fn revoke_client_sessions(
    c: &mut dyn Conn,
    tenant_id: Uuid,
    client_id: &str,
    user_id: Option<Uuid>,
    now: Timestamp,
) -> StoreResult<Vec<Uuid>> {
    c.query_ids(
        "UPDATE sessions SET revoked_at = $3 \
         WHERE tenant_id = $1 AND client_id = $2 AND revoked_at IS NULL AND ($4 IS NULL OR user_id = $4) \
         RETURNING id",
        &args![tenant_id, client_id, now, user_id],
    )
}

#[async_trait]
impl<D: Driver> ClientStore for D {
    async fn create_client(&self, new: NewClient, audit: NewAuditEvent) -> StoreResult<Client> {
        self.write(move |c| {
            let s = &new.spec;
            let sql = format!(
                "INSERT INTO oauth_clients ({CLIENT_COLUMNS}, secret_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14)"
            );
            c.execute(
                &sql,
                &args![
                    new.id,
                    new.tenant_id,
                    &new.client_id,
                    &s.name,
                    s.kind.as_str(),
                    json_list(&s.redirect_uris),
                    json_list(&s.post_logout_redirect_uris),
                    grant_names(&s.grant_types),
                    json_list(&s.scopes),
                    s.first_party,
                    &s.backchannel_logout_uri,
                    s.id_token_alg.as_str(),
                    new.now,
                    &new.secret_hash,
                ],
            )?;
            insert_audit(c, &audit)?;
            load_client(c, new.tenant_id, &new.client_id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn list_clients(&self, tenant_id: Uuid) -> StoreResult<Vec<Client>> {
        self.read(move |c| {
            let sql = format!("SELECT {CLIENT_COLUMNS} FROM oauth_clients WHERE tenant_id = $1 ORDER BY id");
            c.query_map(&sql, &args![tenant_id], client_from_row)
        })
        .await
    }

    async fn get_client(&self, tenant_id: Uuid, client_id: &str) -> StoreResult<Option<Client>> {
        let client_id = client_id.to_owned();
        self.read(move |c| load_client(c, tenant_id, &client_id)).await
    }

    async fn find_client(&self, client_id: &str) -> StoreResult<Option<ClientSecret>> {
        let client_id = client_id.to_owned();
        self.read(move |c| {
            let sql = format!("SELECT {CLIENT_COLUMNS}, secret_hash FROM oauth_clients WHERE client_id = $1");
            c.query_opt_map(&sql, &args![&client_id], |r| {
                Ok(ClientSecret {
                    client: client_from_row(r)?,
                    secret_hash: r.get("secret_hash")?,
                })
            })
        })
        .await
    }

    async fn update_client(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        spec: ClientSpec,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Client> {
        let client_id = client_id.to_owned();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE oauth_clients SET name = $3, redirect_uris = $4, post_logout_redirect_uris = $5, \
                 grant_types = $6, scopes = $7, first_party = $8, backchannel_logout_uri = $9, id_token_alg = $10, \
                 updated_at = $11 WHERE tenant_id = $1 AND client_id = $2",
                &args![
                    tenant_id,
                    &client_id,
                    &spec.name,
                    json_list(&spec.redirect_uris),
                    json_list(&spec.post_logout_redirect_uris),
                    grant_names(&spec.grant_types),
                    json_list(&spec.scopes),
                    spec.first_party,
                    &spec.backchannel_logout_uri,
                    spec.id_token_alg.as_str(),
                    now,
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit(c, &audit)?;
            load_client(c, tenant_id, &client_id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn delete_client(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Vec<Uuid>> {
        let client_id = client_id.to_owned();
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM oauth_clients WHERE tenant_id = $1 AND client_id = $2",
                &args![tenant_id, &client_id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let revoked = revoke_client_sessions(c, tenant_id, &client_id, None, now)?;
            insert_audit(c, &audit)?;
            Ok(revoked)
        })
        .await
    }

    async fn rotate_client_secret(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        secret_hash: String,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Vec<Uuid>> {
        let client_id = client_id.to_owned();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE oauth_clients SET secret_hash = $3, updated_at = $4 \
                 WHERE tenant_id = $1 AND client_id = $2 AND kind = 'confidential'",
                &args![tenant_id, &client_id, &secret_hash, now],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            let revoked = revoke_client_sessions(c, tenant_id, &client_id, None, now)?;
            insert_audit(c, &audit)?;
            Ok(revoked)
        })
        .await
    }

    async fn consent(&self, tenant_id: Uuid, user_id: Uuid, client_id: &str) -> StoreResult<Option<Consent>> {
        let client_id = client_id.to_owned();
        self.read(move |c| load_consent(c, tenant_id, user_id, &client_id))
            .await
    }

    async fn grant_consent(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        client_id: &str,
        scopes: Vec<String>,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Consent> {
        let client_id = client_id.to_owned();
        self.write(move |c| {
            // Both must be the tenant's: the foreign keys alone would take a
            // user or client of another tenant.
            let owned: bool = c.query_value(
                "SELECT EXISTS (SELECT 1 FROM users WHERE tenant_id = $1 AND id = $2) \
                 AND EXISTS (SELECT 1 FROM oauth_clients WHERE tenant_id = $1 AND client_id = $3)",
                &args![tenant_id, user_id, &client_id],
            )?;
            if !owned {
                return Err(StoreError::NotFound);
            }
            let mut all = load_consent(c, tenant_id, user_id, &client_id)?
                .map(|k| k.scopes)
                .unwrap_or_default();
            for scope in &scopes {
                if !all.contains(scope) {
                    all.push(scope.clone());
                }
            }
            c.execute(
                "INSERT INTO oauth_consents (tenant_id, user_id, client_id, scopes, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (user_id, client_id) DO UPDATE SET scopes = excluded.scopes, updated_at = excluded.updated_at",
                &args![tenant_id, user_id, &client_id, json_list(&all), now],
            )?;
            insert_audit(c, &audit)?;
            load_consent(c, tenant_id, user_id, &client_id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn list_consents(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Vec<ConnectedApp>> {
        self.read(move |c| {
            c.query_map(
                "SELECT k.client_id, o.name, k.scopes, k.updated_at FROM oauth_consents k \
                 JOIN oauth_clients o ON o.client_id = k.client_id AND o.tenant_id = k.tenant_id \
                 WHERE k.tenant_id = $1 AND k.user_id = $2 ORDER BY o.name, k.client_id",
                &args![tenant_id, user_id],
                |r| {
                    Ok(ConnectedApp {
                        client_id: r.get("client_id")?,
                        name: r.get("name")?,
                        scopes: r.json("scopes")?,
                        granted_at: r.get("updated_at")?,
                    })
                },
            )
        })
        .await
    }

    async fn revoke_consent(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        client_id: &str,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Option<Vec<Uuid>>> {
        let client_id = client_id.to_owned();
        self.write(move |c| {
            let deleted = c.execute(
                "DELETE FROM oauth_consents WHERE tenant_id = $1 AND user_id = $2 AND client_id = $3",
                &args![tenant_id, user_id, &client_id],
            )?;
            let revoked = revoke_client_sessions(c, tenant_id, &client_id, Some(user_id), now)?;
            if deleted == 0 && revoked.is_empty() {
                return Ok(None);
            }
            insert_audit(c, &audit)?;
            Ok(Some(revoked))
        })
        .await
    }
}
