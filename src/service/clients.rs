//! OAuth clients and the consents users give them: the administrators' use
//! cases (register, list, change, delete, rotate a secret), the protocol
//! endpoints' helpers (find a client, authenticate it) and a user's
//! connected apps.
//!
//! Who. The HTTP layer checks `clients:read` / `clients:write` through
//! `Rbac` before a use case runs (`RequirePermission`, as for roles); the
//! use cases act inside the caller's tenant, so another tenant's client is
//! simply not found. The command line (`forge clients`) acts as the
//! operator, who holds the database: [`Actor::operator`].
//!
//! Secrets. A confidential client's secret is 256 bits from the OS CSPRNG,
//! base64url (URL-safe characters only, so `client_secret_basic` needs no
//! escaping); it is returned once, at registration and at rotation, and
//! stored only as its SHA-256 (a fast hash is right for a random secret of
//! that size, as for refresh tokens). [`Clients::authenticate`] compares
//! hashes in constant time and answers every failure (unknown client, wrong
//! or missing secret, a secret sent by a public client) with the same
//! RFC 6749 `invalid_client`. No secret reaches a log, an error or an audit
//! row.
//!
//! Revocation. Deleting a client, rotating its secret and a user revoking
//! their consent revoke the sessions opened for that client in the change's
//! transaction (see `store::clients`), and the revoked sessions go on the
//! deny list before the answer leaves, as signing out does, so access
//! tokens already out stop working at once.

use std::sync::Arc;

use uuid::Uuid;

use super::RequestMeta;
use crate::clock::Clock;
use crate::crypto::tokens::{constant_time_eq, hash_token, random_token, random_url_safe};
use crate::domain::AuditEvent;
use crate::domain::clients::{Client, ClientKind, ClientSpec, GrantType, IdTokenAlg, InvalidClient};
use crate::error::{AppError, AppResult, ErrorCode};
use crate::secret::Secret;
use crate::service::denylist::DenyList;
use crate::service::sessions::Principal;
use crate::store::{ConnectedApp, NewClient, Store, StoreError};

/// Bytes of randomness in a `client_id` (22 base64url characters).
const CLIENT_ID_BYTES: usize = 16;
/// The longest `client_id` looked up; anything longer is not one of ours.
const MAX_CLIENT_ID_LEN: usize = 64;
/// The longest client secret compared; anything longer is not one of ours.
const MAX_SECRET_LEN: usize = 256;

/// Who acts on a tenant's clients.
#[derive(Clone, Copy, Debug)]
pub struct Actor {
    pub tenant_id: Uuid,
    /// The administrator; `None` for the operator at the command line.
    pub user_id: Option<Uuid>,
}

impl Actor {
    /// A signed-in administrator of the principal's tenant.
    pub fn user(principal: &Principal) -> Self {
        Self {
            tenant_id: principal.tenant.id,
            user_id: Some(principal.user_id),
        }
    }

    /// The operator at the command line (`forge clients`).
    pub fn operator(tenant_id: Uuid) -> Self {
        Self {
            tenant_id,
            user_id: None,
        }
    }
}

/// A change to a client: `None` leaves a field alone. The kind never
/// changes (a public client would keep no secret, a confidential one would
/// need one): register a new client instead.
#[derive(Clone, Debug, Default)]
pub struct ClientChange {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<GrantType>>,
    pub scopes: Option<Vec<String>>,
    pub first_party: Option<bool>,
    /// `Some(None)` removes the URI.
    pub backchannel_logout_uri: Option<Option<String>>,
    pub id_token_alg: Option<IdTokenAlg>,
}

impl ClientChange {
    /// The names of the fields the change sets, for the audit row.
    fn fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut add = |set: bool, name| {
            if set {
                out.push(name);
            }
        };
        add(self.name.is_some(), "name");
        add(self.redirect_uris.is_some(), "redirect_uris");
        add(self.post_logout_redirect_uris.is_some(), "post_logout_redirect_uris");
        add(self.grant_types.is_some(), "grant_types");
        add(self.scopes.is_some(), "scopes");
        add(self.first_party.is_some(), "first_party");
        add(self.backchannel_logout_uri.is_some(), "backchannel_logout_uri");
        add(self.id_token_alg.is_some(), "id_token_signed_response_alg");
        out
    }

    /// Sets the fields the change names on `spec` (not validated).
    pub fn apply(self, spec: &mut ClientSpec) {
        if let Some(v) = self.name {
            spec.name = v;
        }
        if let Some(v) = self.redirect_uris {
            spec.redirect_uris = v;
        }
        if let Some(v) = self.post_logout_redirect_uris {
            spec.post_logout_redirect_uris = v;
        }
        if let Some(v) = self.grant_types {
            spec.grant_types = v;
        }
        if let Some(v) = self.scopes {
            spec.scopes = v;
        }
        if let Some(v) = self.first_party {
            spec.first_party = v;
        }
        if let Some(v) = self.backchannel_logout_uri {
            spec.backchannel_logout_uri = v;
        }
        if let Some(v) = self.id_token_alg {
            spec.id_token_alg = v;
        }
    }
}

/// A registered client and, for a confidential one, its secret: shown once.
#[derive(Debug)]
pub struct Registered {
    pub client: Client,
    pub secret: Option<Secret>,
}

fn client_not_found() -> AppError {
    AppError::not_found("client")
}

fn not_found_as_client(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound => client_not_found(),
        other => other.into(),
    }
}

/// The API's answer to a registration that does not pass validation.
pub fn invalid_spec(e: InvalidClient) -> AppError {
    AppError::validation(e.field, e.reason)
}

/// The one answer to every failed client authentication (RFC 6749 section
/// 5.2): it says nothing about whether the client exists.
pub fn invalid_client() -> AppError {
    AppError::OAuth {
        status: axum::http::StatusCode::UNAUTHORIZED,
        code: ErrorCode::InvalidClient,
        description: "client authentication failed".into(),
    }
}

/// Whether `s` could be a `client_id` forge issued (or an operator typed):
/// bounded, URL-safe characters only. Anything else is not looked up.
pub fn plausible_client_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_CLIENT_ID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The client credentials of a token-endpoint request, from HTTP Basic
/// (`client_secret_basic`: `basic` as `http::extract::basic_credentials`
/// read it) or the form (`client_secret_post`, or a public client's bare
/// `client_id`). Using both methods at once is refused (RFC 6749 section
/// 2.3: one method per request), as is Basic that does not decode. Client
/// ids and secrets are URL-safe, so the form-encoding RFC 6749 section
/// 2.3.1 asks for inside Basic changes nothing. `Ok(None)`: no client
/// named at all.
pub fn presented_credentials(
    basic: Option<Option<(String, String)>>,
    form_client_id: Option<&str>,
    form_client_secret: Option<&str>,
) -> AppResult<Option<(String, Option<String>)>> {
    let form_secret = form_client_secret.filter(|s| !s.is_empty());
    match basic {
        Some(Some((id, secret))) => {
            if form_secret.is_some() || form_client_id.is_some_and(|f| f != id) {
                return Err(AppError::OAuth {
                    status: axum::http::StatusCode::BAD_REQUEST,
                    code: ErrorCode::InvalidRequest,
                    description: "use one client authentication method, not two".into(),
                });
            }
            Ok(Some((id, Some(secret).filter(|s| !s.is_empty()))))
        }
        Some(None) => Err(invalid_client()),
        None => Ok(form_client_id
            .filter(|id| !id.is_empty())
            .map(|id| (id.to_owned(), form_secret.map(str::to_owned)))),
    }
}

/// The registered OAuth clients of each tenant.
#[derive(Clone)]
pub struct Clients {
    store: Arc<dyn Store>,
    clock: Clock,
    deny: DenyList,
}

impl Clients {
    pub fn new(store: Arc<dyn Store>, clock: Clock, deny: DenyList) -> Self {
        Self { store, clock, deny }
    }

    // ---- administrators ----

    /// The tenant's clients, oldest first.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn list(&self, principal: &Principal) -> AppResult<Vec<Client>> {
        self.list_as(Actor::user(principal)).await
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id))]
    pub async fn list_as(&self, by: Actor) -> AppResult<Vec<Client>> {
        Ok(self.store.list_clients(by.tenant_id).await?)
    }

    /// One client of the tenant; 404 `not_found` otherwise.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, client_id = %client_id))]
    pub async fn get(&self, principal: &Principal, client_id: &str) -> AppResult<Client> {
        self.get_as(Actor::user(principal), client_id).await
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, client_id = %client_id))]
    pub async fn get_as(&self, by: Actor, client_id: &str) -> AppResult<Client> {
        self.by_client_id(by.tenant_id, client_id)
            .await?
            .ok_or_else(client_not_found)
    }

    /// Registers a client (`spec` is validated here; 400 names the field).
    /// A confidential client's secret comes back once, in [`Registered`].
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn create(&self, principal: &Principal, spec: ClientSpec, meta: &RequestMeta) -> AppResult<Registered> {
        self.create_as(Actor::user(principal), spec, meta).await
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id))]
    pub async fn create_as(&self, by: Actor, mut spec: ClientSpec, meta: &RequestMeta) -> AppResult<Registered> {
        spec.validate().map_err(invalid_spec)?;
        let secret = (spec.kind == ClientKind::Confidential).then(|| Secret::new(random_token()));
        let now = self.clock.now();
        let client_id = random_url_safe(CLIENT_ID_BYTES);
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::ClientCreated, None, by.user_id);
        audit.detail = serde_json::json!({
            "client_id": client_id,
            "name": spec.name,
            "type": spec.kind.as_str(),
            "redirect_uris": spec.redirect_uris,
            "grant_types": spec.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
            "first_party": spec.first_party,
        });
        let client = self
            .store
            .create_client(
                NewClient {
                    id: Uuid::now_v7(),
                    tenant_id: by.tenant_id,
                    client_id,
                    spec,
                    secret_hash: secret.as_ref().map(|s| hash_token(s.expose())),
                    now,
                },
                audit,
            )
            .await?;
        Ok(Registered { client, secret })
    }

    /// Changes what the client declares; the whole result is validated again.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, client_id = %client_id))]
    pub async fn update(
        &self,
        principal: &Principal,
        client_id: &str,
        change: ClientChange,
        meta: &RequestMeta,
    ) -> AppResult<Client> {
        self.update_as(Actor::user(principal), client_id, change, meta).await
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, client_id = %client_id))]
    pub async fn update_as(
        &self,
        by: Actor,
        client_id: &str,
        change: ClientChange,
        meta: &RequestMeta,
    ) -> AppResult<Client> {
        let current = self.get_as(by, client_id).await?;
        let fields = change.fields();
        let mut spec = current.spec();
        change.apply(&mut spec);
        spec.validate().map_err(invalid_spec)?;
        if spec == current.spec() {
            return Ok(current);
        }
        let now = self.clock.now();
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::ClientUpdated, None, by.user_id);
        audit.detail = serde_json::json!({ "client_id": current.client_id, "fields": fields });
        self.store
            .update_client(by.tenant_id, &current.client_id, spec, now, audit)
            .await
            .map_err(not_found_as_client)
    }

    /// Deletes the client; its sessions are revoked and denied at once.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, client_id = %client_id))]
    pub async fn delete(&self, principal: &Principal, client_id: &str, meta: &RequestMeta) -> AppResult<()> {
        self.delete_as(Actor::user(principal), client_id, meta).await
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, client_id = %client_id))]
    pub async fn delete_as(&self, by: Actor, client_id: &str, meta: &RequestMeta) -> AppResult<()> {
        let current = self.get_as(by, client_id).await?;
        let now = self.clock.now();
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::ClientDeleted, None, by.user_id);
        audit.detail = serde_json::json!({ "client_id": current.client_id, "name": current.name });
        let revoked = self
            .store
            .delete_client(by.tenant_id, &current.client_id, now, audit)
            .await
            .map_err(not_found_as_client)?;
        self.deny.deny_sessions(&revoked).await?;
        Ok(())
    }

    /// A new secret for a confidential client (returned once); the old one
    /// stops working and the client's sessions are revoked and denied at
    /// once. 400 `invalid_request` for a public client.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, client_id = %client_id))]
    pub async fn rotate_secret(&self, principal: &Principal, client_id: &str, meta: &RequestMeta) -> AppResult<Secret> {
        self.rotate_secret_as(Actor::user(principal), client_id, meta).await
    }

    #[tracing::instrument(skip_all, fields(tenant_id = %by.tenant_id, client_id = %client_id))]
    pub async fn rotate_secret_as(&self, by: Actor, client_id: &str, meta: &RequestMeta) -> AppResult<Secret> {
        let current = self.get_as(by, client_id).await?;
        if current.kind == ClientKind::Public {
            return Err(AppError::bad_request(
                ErrorCode::InvalidRequest,
                "a public client has no secret to rotate",
            ));
        }
        let secret = Secret::new(random_token());
        let now = self.clock.now();
        let mut audit = meta.audit(by.tenant_id, now, AuditEvent::ClientSecretRotated, None, by.user_id);
        audit.detail = serde_json::json!({ "client_id": current.client_id });
        let revoked = self
            .store
            .rotate_client_secret(
                by.tenant_id,
                &current.client_id,
                hash_token(secret.expose()),
                now,
                audit,
            )
            .await
            .map_err(not_found_as_client)?;
        self.deny.deny_sessions(&revoked).await?;
        Ok(secret)
    }

    // ---- the protocol endpoints ----

    /// A client of the tenant, if it has one by that id.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, client_id = %client_id))]
    pub async fn by_client_id(&self, tenant_id: Uuid, client_id: &str) -> AppResult<Option<Client>> {
        if !plausible_client_id(client_id) {
            return Ok(None);
        }
        Ok(self.store.get_client(tenant_id, client_id).await?)
    }

    /// A client of any tenant (client ids are unique across tenants); its
    /// `tenant_id` says whose it is.
    #[tracing::instrument(skip_all, fields(client_id = %client_id))]
    pub async fn find_client(&self, client_id: &str) -> AppResult<Option<Client>> {
        if !plausible_client_id(client_id) {
            return Ok(None);
        }
        Ok(self.store.find_client(client_id).await?.map(|c| c.client))
    }

    /// Authenticates a client at the token endpoint: a confidential client
    /// by its secret (compared as SHA-256 hashes, in constant time), a
    /// public client by its id alone (it must not send a secret). Every
    /// failure is 401 `invalid_client`, whatever went wrong.
    #[tracing::instrument(skip_all, fields(client_id = %client_id))]
    pub async fn authenticate(&self, client_id: &str, secret: Option<&str>) -> AppResult<Client> {
        let found = if plausible_client_id(client_id) {
            self.store.find_client(client_id).await?
        } else {
            None
        };
        let presented = secret.filter(|s| s.len() <= MAX_SECRET_LEN).map(hash_token);
        let Some(found) = found else {
            // The same work as a wrong secret, so timing says nothing.
            let _ = constant_time_eq(presented.as_deref().unwrap_or("").as_bytes(), &[0u8; 64]);
            return Err(invalid_client());
        };
        let ok = match (&found.secret_hash, secret, &presented) {
            (Some(stored), Some(_), Some(given)) => constant_time_eq(stored.as_bytes(), given.as_bytes()),
            (None, None, _) => found.client.kind == ClientKind::Public,
            _ => false,
        };
        if ok {
            Ok(found.client)
        } else {
            tracing::debug!("client authentication failed");
            Err(invalid_client())
        }
    }
}

/// The consents users give clients, and their connected apps.
#[derive(Clone)]
pub struct Consents {
    store: Arc<dyn Store>,
    clock: Clock,
    deny: DenyList,
}

impl Consents {
    pub fn new(store: Arc<dyn Store>, clock: Clock, deny: DenyList) -> Self {
        Self { store, clock, deny }
    }

    /// Whether the user already allowed the client every scope in `scopes`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, user_id = %user_id, client_id = %client_id))]
    pub async fn covers(&self, tenant_id: Uuid, user_id: Uuid, client_id: &str, scopes: &[String]) -> AppResult<bool> {
        let Some(consent) = self.store.consent(tenant_id, user_id, client_id).await? else {
            return Ok(false);
        };
        Ok(scopes.iter().all(|s| consent.scopes.contains(s)))
    }

    /// Records that the user allowed the client `scopes` (added to what
    /// they allowed before), audited as `consent_granted`.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant_id, user_id = %user_id, client_id = %client_id))]
    pub async fn grant(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        client_id: &str,
        scopes: &[String],
        meta: &RequestMeta,
    ) -> AppResult<()> {
        let now = self.clock.now();
        let mut audit = meta.audit(tenant_id, now, AuditEvent::ConsentGranted, Some(user_id), Some(user_id));
        audit.detail = serde_json::json!({ "client_id": client_id, "scopes": scopes });
        self.store
            .grant_consent(tenant_id, user_id, client_id, scopes.to_vec(), now, audit)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => AppError::not_found("user or client"),
                other => other.into(),
            })?;
        Ok(())
    }

    /// The caller's connected apps, by name.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id))]
    pub async fn list(&self, principal: &Principal) -> AppResult<Vec<ConnectedApp>> {
        Ok(self.store.list_consents(principal.tenant.id, principal.user_id).await?)
    }

    /// Takes back the caller's consent to a client and ends their sessions
    /// of it (revoked and denied at once), audited as `consent_revoked`;
    /// 404 when there was nothing to take back.
    #[tracing::instrument(skip_all, fields(tenant_id = %principal.tenant.id, user_id = %principal.user_id, client_id = %client_id))]
    pub async fn revoke(&self, principal: &Principal, client_id: &str, meta: &RequestMeta) -> AppResult<()> {
        if !plausible_client_id(client_id) {
            return Err(AppError::not_found("consent"));
        }
        let (tenant_id, user_id) = (principal.tenant.id, principal.user_id);
        let now = self.clock.now();
        let mut audit = meta.audit(tenant_id, now, AuditEvent::ConsentRevoked, Some(user_id), Some(user_id));
        audit.detail = serde_json::json!({ "client_id": client_id });
        let revoked = self
            .store
            .revoke_consent(tenant_id, user_id, client_id, now, audit)
            .await?
            .ok_or_else(|| AppError::not_found("consent"))?;
        self.deny.deny_sessions(&revoked).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::test_ports;

    fn deny(store: &Arc<dyn Store>) -> DenyList {
        DenyList::new(
            store.clone(),
            test_ports::cache(),
            test_ports::clock(),
            crate::config::Config::default().jwt,
        )
    }

    fn web_app() -> ClientSpec {
        let mut spec = ClientSpec::new("Web app", ClientKind::Confidential);
        spec.redirect_uris = vec!["https://app.example.com/cb".into()];
        spec
    }

    #[tokio::test]
    async fn a_confidential_client_authenticates_with_its_current_secret_only() {
        let store = test_ports::store();
        let clients = Clients::new(store.clone(), test_ports::clock(), deny(&store));
        let admin = test_ports::principal(&store, &["admin"]).await;
        let meta = RequestMeta::default();
        let reg = clients.create(&admin, web_app(), &meta).await.unwrap();
        let id = reg.client.client_id.clone();
        let secret = reg.secret.unwrap();
        assert_eq!(secret.expose().len(), 43);
        assert_eq!(id.len(), 22);
        assert!(plausible_client_id(&id));
        let ok = clients.authenticate(&id, Some(secret.expose())).await.unwrap();
        assert_eq!(ok.client_id, id);
        for (who, secret) in [
            (id.as_str(), None),
            (id.as_str(), Some("wrong")),
            (id.as_str(), Some("")),
            ("unknown", Some(secret.expose())),
            ("bad id!", Some(secret.expose())),
        ] {
            let e = clients.authenticate(who, secret).await.unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidClient);
            assert_eq!(e.status(), 401);
        }
        let new = clients.rotate_secret(&admin, &id, &meta).await.unwrap();
        assert!(clients.authenticate(&id, Some(secret.expose())).await.is_err());
        clients.authenticate(&id, Some(new.expose())).await.unwrap();
    }

    #[tokio::test]
    async fn a_public_client_has_no_secret_and_must_not_send_one() {
        let store = test_ports::store();
        let clients = Clients::new(store.clone(), test_ports::clock(), deny(&store));
        let admin = test_ports::principal(&store, &["admin"]).await;
        let meta = RequestMeta::default();
        let mut spec = web_app();
        spec.kind = ClientKind::Public;
        let reg = clients.create(&admin, spec, &meta).await.unwrap();
        assert!(reg.secret.is_none());
        let id = reg.client.client_id;
        clients.authenticate(&id, None).await.unwrap();
        assert!(clients.authenticate(&id, Some("anything")).await.is_err());
        let e = clients.rotate_secret(&admin, &id, &meta).await.unwrap_err();
        assert_eq!(e.status(), 400);
    }

    #[tokio::test]
    async fn a_change_is_validated_whole_and_an_empty_one_writes_nothing() {
        let store = test_ports::store();
        let clients = Clients::new(store.clone(), test_ports::clock(), deny(&store));
        let admin = test_ports::principal(&store, &["admin"]).await;
        let meta = RequestMeta::default();
        let reg = clients.create(&admin, web_app(), &meta).await.unwrap();
        let id = reg.client.client_id.clone();
        let bad = ClientChange {
            redirect_uris: Some(vec![]),
            ..Default::default()
        };
        let e = clients.update(&admin, &id, bad, &meta).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::ValidationFailed);
        let same = clients
            .update(&admin, &id, ClientChange::default(), &meta)
            .await
            .unwrap();
        assert_eq!(same, reg.client);
        let renamed = clients
            .update(
                &admin,
                &id,
                ClientChange {
                    name: Some("Renamed".into()),
                    id_token_alg: Some(IdTokenAlg::RS256),
                    ..Default::default()
                },
                &meta,
            )
            .await
            .unwrap();
        assert_eq!(renamed.name, "Renamed");
        assert_eq!(renamed.id_token_alg, IdTokenAlg::RS256);
        assert_eq!(renamed.redirect_uris, reg.client.redirect_uris);
    }

    #[test]
    fn credentials_come_from_one_method() {
        let basic = |id: &str, s: &str| Some(Some((id.to_owned(), s.to_owned())));
        assert_eq!(
            presented_credentials(basic("c", "s"), None, None).unwrap(),
            Some(("c".into(), Some("s".into())))
        );
        assert_eq!(
            presented_credentials(basic("c", "s"), Some("c"), None).unwrap(),
            Some(("c".into(), Some("s".into())))
        );
        assert!(presented_credentials(basic("c", "s"), Some("d"), None).is_err());
        assert!(presented_credentials(basic("c", "s"), None, Some("s")).is_err());
        assert_eq!(
            presented_credentials(None, Some("c"), Some("s")).unwrap(),
            Some(("c".into(), Some("s".into())))
        );
        assert_eq!(
            presented_credentials(None, Some("c"), None).unwrap(),
            Some(("c".into(), None))
        );
        assert_eq!(presented_credentials(None, None, None).unwrap(), None);
        assert_eq!(
            presented_credentials(Some(None), None, None).unwrap_err().code(),
            ErrorCode::InvalidClient
        );
    }
}
