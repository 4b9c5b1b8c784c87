//! `/v1/clients*`: the OAuth clients of the caller's tenant (`clients:read`,
//! `clients:write`), and `/v1/users/me/consents*`: the caller's connected
//! apps.
//!
//! A confidential client's `client_secret` appears exactly twice: in the
//! answer to `POST /v1/clients` and in the answer to `POST
//! /v1/clients/{client_id}/secret`, both `Cache-Control: no-store`; no
//! other answer carries it. A `client_id` of another tenant, or one that
//! could not be a client id, is 404 like an unknown one. `PATCH` takes the
//! fields it changes (`backchannel_logout_uri: null` removes it); the type
//! of a client never changes.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::double_option;
use crate::domain::clients::{Client, ClientKind, ClientSpec, GrantType, IdTokenAlg};
use crate::domain::rfc3339;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::{Auth, ClientMeta, Json};
use crate::http::permission::{ClientsRead, ClientsWrite, RequirePermission};
use crate::service::clients::{ClientChange, plausible_client_id};
use crate::state::AppState;
use crate::store::ConnectedApp;

/// A registered client; never its secret.
#[derive(Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    /// `confidential` (authenticates with its secret) or `public` (PKCE only).
    #[serde(rename = "type")]
    pub kind: String,
    /// How the client authenticates at the token endpoint:
    /// `client_secret_basic` (or `client_secret_post`) for confidential
    /// clients, `none` for public ones.
    pub token_endpoint_auth_method: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    /// A first-party client skips the consent page.
    pub first_party: bool,
    pub backchannel_logout_uri: Option<String>,
    /// `EdDSA` or `RS256`.
    pub id_token_signed_response_alg: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        Self {
            token_endpoint_auth_method: match c.kind {
                ClientKind::Confidential => "client_secret_basic",
                ClientKind::Public => "none",
            }
            .into(),
            client_id: c.client_id,
            name: c.name,
            kind: c.kind.as_str().into(),
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            grant_types: c.grant_types.iter().map(|g| g.as_str().to_owned()).collect(),
            scopes: c.scopes,
            first_party: c.first_party,
            backchannel_logout_uri: c.backchannel_logout_uri,
            id_token_signed_response_alg: c.id_token_alg.as_str().into(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

/// A client just registered: with its secret, shown this once, for a
/// confidential client.
#[derive(Serialize, ToSchema)]
pub struct CreatedClientView {
    #[serde(flatten)]
    pub client: ClientView,
    /// Only for confidential clients, and only in this answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ClientList {
    pub items: Vec<ClientView>,
}

/// A new secret; the previous one no longer works.
#[derive(Serialize, ToSchema)]
pub struct ClientSecretView {
    pub client_secret: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientRequest {
    /// 1 to 100 characters, shown on the consent page.
    pub name: String,
    /// `confidential` or `public`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Absolute URIs without fragment, matched exactly: `https`, or `http`
    /// on 127.0.0.1 / [::1] (any port) / localhost; custom schemes for
    /// public clients. Needed for `authorization_code`.
    pub redirect_uris: Vec<String>,
    /// Where RP-initiated logout may send the user back to (same rules).
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Default `["authorization_code", "refresh_token"]`; confidential
    /// clients may add `client_credentials`.
    pub grant_types: Option<Vec<String>>,
    /// Scopes the client may ask for; default `openid profile email phone offline_access`.
    pub scopes: Option<Vec<String>>,
    /// Skip the consent page (default false).
    pub first_party: Option<bool>,
    /// OpenID Connect back-channel logout: `https` (or loopback `http`).
    pub backchannel_logout_uri: Option<String>,
    /// `EdDSA` (default) or `RS256`.
    pub id_token_signed_response_alg: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchClientRequest {
    pub name: Option<String>,
    pub redirect_uris: Option<Vec<String>>,
    pub post_logout_redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub scopes: Option<Vec<String>>,
    pub first_party: Option<bool>,
    /// A URI, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub backchannel_logout_uri: Option<Option<String>>,
    pub id_token_signed_response_alg: Option<String>,
}

/// An app the caller allowed to use their account.
#[derive(Serialize, ToSchema)]
pub struct ConsentView {
    pub client_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    #[schema(value_type = String, format = DateTime)]
    pub granted_at: String,
}

impl From<ConnectedApp> for ConsentView {
    fn from(a: ConnectedApp) -> Self {
        Self {
            client_id: a.client_id,
            name: a.name,
            scopes: a.scopes,
            granted_at: rfc3339(a.granted_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ConsentList {
    pub items: Vec<ConsentView>,
}

fn grant_types(raw: &[String]) -> AppResult<Vec<GrantType>> {
    raw.iter()
        .map(|g| GrantType::parse(g).map_err(|e| AppError::validation("grant_types", format!("{g:?} {e}"))))
        .collect()
}

fn id_token_alg(raw: &str) -> AppResult<IdTokenAlg> {
    IdTokenAlg::parse(raw).map_err(|e| AppError::validation("id_token_signed_response_alg", e))
}

fn client_id(raw: &str) -> AppResult<&str> {
    if plausible_client_id(raw) {
        Ok(raw)
    } else {
        Err(AppError::not_found("client"))
    }
}

/// An answer holding a secret: never cached (RFC 6749 section 5.1 asks the
/// same of token responses).
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The tenant's clients, oldest first.
#[utoipa::path(get, path = "/v1/clients", tag = "clients",
    responses((status = 200, body = ClientList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_clients(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ClientsRead>,
) -> AppResult<axum::Json<ClientList>> {
    let items = state.clients.list(&caller).await?;
    Ok(axum::Json(ClientList {
        items: items.into_iter().map(ClientView::from).collect(),
    }))
}

/// Register a client; a confidential client's `client_secret` is in this
/// answer only.
#[utoipa::path(post, path = "/v1/clients", tag = "clients",
    request_body = CreateClientRequest,
    responses(
        (status = 201, body = CreatedClientView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_client(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ClientsWrite>,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<CreateClientRequest>,
) -> AppResult<Response> {
    let kind = ClientKind::parse(&req.kind).map_err(|e| AppError::validation("type", e))?;
    let mut spec = ClientSpec::new(req.name, kind);
    spec.redirect_uris = req.redirect_uris;
    if let Some(v) = req.post_logout_redirect_uris {
        spec.post_logout_redirect_uris = v;
    }
    if let Some(v) = req.grant_types {
        spec.grant_types = grant_types(&v)?;
    }
    if let Some(v) = req.scopes {
        spec.scopes = v;
    }
    spec.first_party = req.first_party.unwrap_or(false);
    spec.backchannel_logout_uri = req.backchannel_logout_uri;
    if let Some(alg) = req.id_token_signed_response_alg {
        spec.id_token_alg = id_token_alg(&alg)?;
    }
    let registered = state.clients.create(&caller, spec, &meta).await?;
    let location =
        HeaderValue::from_str(&format!("/v1/clients/{}", registered.client.client_id)).map_err(AppError::internal)?;
    let body = CreatedClientView {
        client: registered.client.into(),
        client_secret: registered.secret.map(|s| s.expose().to_owned()),
    };
    Ok(no_store(
        (StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(body)).into_response(),
    ))
}

/// One client (never its secret).
#[utoipa::path(get, path = "/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "the client's client_id")),
    responses((status = 200, body = ClientView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_client(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ClientsRead>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<ClientView>> {
    Ok(axum::Json(state.clients.get(&caller, client_id(&id)?).await?.into()))
}

/// Change a client: only the fields sent (`type` never changes).
#[utoipa::path(patch, path = "/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "the client's client_id")),
    request_body = PatchClientRequest,
    responses(
        (status = 200, body = ClientView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch_client(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ClientsWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Json(req): Json<PatchClientRequest>,
) -> AppResult<axum::Json<ClientView>> {
    let change = ClientChange {
        name: req.name,
        redirect_uris: req.redirect_uris,
        post_logout_redirect_uris: req.post_logout_redirect_uris,
        grant_types: req.grant_types.as_deref().map(grant_types).transpose()?,
        scopes: req.scopes,
        first_party: req.first_party,
        backchannel_logout_uri: req.backchannel_logout_uri,
        id_token_alg: req
            .id_token_signed_response_alg
            .as_deref()
            .map(id_token_alg)
            .transpose()?,
    };
    let client = state.clients.update(&caller, client_id(&id)?, change, &meta).await?;
    Ok(axum::Json(client.into()))
}

/// Delete a client; every session (and token) of it is revoked at once.
#[utoipa::path(delete, path = "/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "the client's client_id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn delete_client(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ClientsWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    state.clients.delete(&caller, client_id(&id)?, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret for a confidential client, in this answer only; the old
/// one stops working and the client's sessions are revoked at once.
#[utoipa::path(post, path = "/v1/clients/{client_id}/secret", tag = "clients",
    params(("client_id" = String, Path, description = "the client's client_id")),
    responses(
        (status = 200, body = ClientSecretView),
        (status = 400, description = "invalid_request: a public client has no secret", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ClientsWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let secret = state.clients.rotate_secret(&caller, client_id(&id)?, &meta).await?;
    Ok(no_store(
        axum::Json(ClientSecretView {
            client_secret: secret.expose().to_owned(),
        })
        .into_response(),
    ))
}

/// The apps the caller allowed to use their account, by name.
#[utoipa::path(get, path = "/v1/users/me/consents", tag = "users",
    responses((status = 200, body = ConsentList), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_consents(State(state): State<AppState>, Auth(principal): Auth) -> AppResult<axum::Json<ConsentList>> {
    let items = state.consents.list(&principal).await?;
    Ok(axum::Json(ConsentList {
        items: items.into_iter().map(ConsentView::from).collect(),
    }))
}

/// Take back the caller's consent to an app; the caller's sessions of that
/// app end at once.
#[utoipa::path(delete, path = "/v1/users/me/consents/{client_id}", tag = "users",
    params(("client_id" = String, Path, description = "the app's client_id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_consent(
    State(state): State<AppState>,
    Auth(principal): Auth,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    state.consents.revoke(&principal, &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}
