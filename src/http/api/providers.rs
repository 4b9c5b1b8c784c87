//! `/v1/providers*`: the upstream identity providers of the caller's tenant
//! (`providers:read`, `providers:write`), and `GET /v1/users/{id}/identities`:
//! a user's linked identities, for administrators (`users:read`).
//!
//! A provider's `client_secret` is write-only: it is taken by `POST` and
//! `PATCH` and never appears in an answer (`has_secret` says one is kept).
//! Providers declared in `forge.toml` are listed with `source: "config"`
//! and are read-only here (409 `read_only`). An id of another tenant is
//! 404 like an unknown one. `PATCH` takes the fields it changes (`null`
//! removes an optional URL).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::dto::double_option;
use crate::domain::providers::{AppleKey, ClaimMap, Identity, Provider, ProviderKind, ProviderPatch, ProviderSpec};
use crate::domain::rfc3339;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::http::extract::{ClientMeta, Json};
use crate::http::permission::{ProvidersRead, ProvidersWrite, RequirePermission, UsersRead};
use crate::secret::Secret;
use crate::service::providers::Actor;
use crate::state::AppState;

/// Where a userinfo document keeps the person's subject, email, email
/// verification and name (top-level field names).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClaimsView {
    /// Default `sub`.
    pub subject: Option<String>,
    /// Default `email`; empty for none.
    pub email: Option<String>,
    /// Default `email_verified`; empty for none (no email counts as verified).
    pub email_verified: Option<String>,
    /// Default `name`; empty for none.
    pub name: Option<String>,
}

impl ClaimsView {
    /// The claim map this names: unnamed fields keep the OpenID Connect names.
    fn into_map(self) -> ClaimMap {
        let d = ClaimMap::default();
        ClaimMap {
            subject: self.subject.unwrap_or(d.subject),
            email: self.email.or(d.email),
            email_verified: self.email_verified.or(d.email_verified),
            name: self.name.or(d.name),
        }
    }
}

impl From<ClaimMap> for ClaimsView {
    fn from(c: ClaimMap) -> Self {
        Self {
            subject: Some(c.subject),
            email: c.email,
            email_verified: c.email_verified,
            name: c.name,
        }
    }
}

/// A registered provider; never its client secret.
#[derive(Serialize, ToSchema)]
pub struct ProviderView {
    pub id: String,
    /// `oidc`, `oauth2`, `github`, `google`, `microsoft`, `gitlab` or `apple`.
    pub kind: String,
    pub name: String,
    pub client_id: String,
    pub issuer: Option<String>,
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// As registered; empty means the kind's defaults.
    pub scopes: Vec<String>,
    pub claims: ClaimsView,
    /// Apple only.
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub enabled: bool,
    /// A client secret is kept (it is never shown).
    pub has_secret: bool,
    /// `api` (registered here or on the admin site) or `config` (declared
    /// in `forge.toml`: read-only here).
    pub source: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: String,
}

impl From<Provider> for ProviderView {
    fn from(p: Provider) -> Self {
        let (team_id, key_id) = p.apple.map(|a| (Some(a.team_id), Some(a.key_id))).unwrap_or_default();
        Self {
            id: p.id.as_str().to_owned(),
            kind: p.kind.as_str().to_owned(),
            name: p.name,
            client_id: p.client_id,
            issuer: p.issuer.map(String::from),
            authorize_url: p.authorize_url.map(String::from),
            token_url: p.token_url.map(String::from),
            userinfo_url: p.userinfo_url.map(String::from),
            scopes: p.scopes,
            claims: p.claims.into(),
            team_id,
            key_id,
            enabled: p.enabled,
            has_secret: true,
            source: if p.from_config { "config" } else { "api" }.to_owned(),
            created_at: rfc3339(p.created_at),
            updated_at: rfc3339(p.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ProviderList {
    pub items: Vec<ProviderView>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProviderRequest {
    /// 1 to 40 lower-case letters, digits, `-` or `_`, starting with a
    /// letter or digit (it appears in URLs).
    pub id: String,
    /// `oidc`, `oauth2`, `github`, `google`, `microsoft`, `gitlab` or `apple`.
    pub kind: String,
    /// 1 to 100 characters, shown on the sign-in button.
    pub name: String,
    pub client_id: String,
    /// Write-only. Apple: the PKCS#8 PEM private key.
    pub client_secret: String,
    /// `oidc`: required; other OpenID Connect kinds: overrides the preset.
    /// `https` (plain `http` only on 127.0.0.1, [::1] or localhost).
    pub issuer: Option<String>,
    /// `oauth2`: required; `github`: overrides the preset.
    pub authorize_url: Option<String>,
    pub token_url: Option<String>,
    pub userinfo_url: Option<String>,
    /// RFC 6749 scope tokens; default: the kind's.
    pub scopes: Option<Vec<String>>,
    pub claims: Option<ClaimsView>,
    /// `apple`: required, with `key_id`.
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchProviderRequest {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub client_id: Option<String>,
    /// A new secret; absent keeps the current one.
    pub client_secret: Option<String>,
    /// A URL, or `null` to remove it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub issuer: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub authorize_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub token_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub userinfo_url: Option<Option<String>>,
    pub scopes: Option<Vec<String>>,
    pub claims: Option<ClaimsView>,
    pub team_id: Option<String>,
    pub key_id: Option<String>,
    pub enabled: Option<bool>,
}

/// An upstream identity linked to a user.
#[derive(Serialize, ToSchema)]
pub struct IdentityView {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// The provider's id.
    pub provider: String,
    /// The upstream's stable id of the person.
    pub subject: String,
    /// The email the upstream last reported (never used as a key).
    pub email: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<String>,
}

impl From<Identity> for IdentityView {
    fn from(i: Identity) -> Self {
        Self {
            id: i.id,
            provider: i.provider.as_str().to_owned(),
            subject: i.subject,
            email: i.email,
            created_at: rfc3339(i.created_at),
            last_used_at: i.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct IdentityList {
    pub items: Vec<IdentityView>,
}

fn kind(raw: &str) -> AppResult<ProviderKind> {
    ProviderKind::parse(raw).map_err(|e| AppError::validation("kind", e))
}

/// Team and key id as given; the spec's validation checks them (and their
/// being both there for `apple`).
fn apple(team_id: Option<String>, key_id: Option<String>) -> Option<AppleKey> {
    match (team_id, key_id) {
        (None, None) => None,
        (team_id, key_id) => Some(AppleKey {
            team_id: team_id.unwrap_or_default(),
            key_id: key_id.unwrap_or_default(),
        }),
    }
}

/// The tenant's providers (configured and registered), by id.
#[utoipa::path(get, path = "/v1/providers", tag = "providers",
    responses((status = 200, body = ProviderList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_providers(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ProvidersRead>,
) -> AppResult<axum::Json<ProviderList>> {
    let items = state.providers.list_as(Actor::user(&caller)).await?;
    Ok(axum::Json(ProviderList {
        items: items.into_iter().map(ProviderView::from).collect(),
    }))
}

/// Register a provider; its `client_secret` is kept sealed and never shown.
#[utoipa::path(post, path = "/v1/providers", tag = "providers",
    request_body = CreateProviderRequest,
    responses(
        (status = 201, body = ProviderView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 409, description = "the tenant has a provider with that id", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn create_provider(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ProvidersWrite>,
    ClientMeta(meta): ClientMeta,
    Json(req): Json<CreateProviderRequest>,
) -> AppResult<Response> {
    let mut spec = ProviderSpec::new(kind(&req.kind)?, req.name, req.client_id);
    spec.issuer = req.issuer;
    spec.authorize_url = req.authorize_url;
    spec.token_url = req.token_url;
    spec.userinfo_url = req.userinfo_url;
    spec.scopes = req.scopes.unwrap_or_default();
    if let Some(claims) = req.claims {
        spec.claims = claims.into_map();
    }
    spec.apple = apple(req.team_id, req.key_id);
    spec.enabled = req.enabled.unwrap_or(true);
    let provider = state
        .providers
        .create_as(
            Actor::user(&caller),
            &req.id,
            spec,
            Secret::new(req.client_secret),
            &meta,
        )
        .await?;
    let location = HeaderValue::from_str(&format!("/v1/providers/{}", provider.id)).map_err(AppError::internal)?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(ProviderView::from(provider)),
    )
        .into_response())
}

/// One provider (never its secret).
#[utoipa::path(get, path = "/v1/providers/{id}", tag = "providers",
    params(("id" = String, Path, description = "the provider's id")),
    responses((status = 200, body = ProviderView), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_provider(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ProvidersRead>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<ProviderView>> {
    Ok(axum::Json(
        state.providers.get_as(Actor::user(&caller), &id).await?.into(),
    ))
}

/// Change a provider: only the fields sent (its id never changes).
#[utoipa::path(patch, path = "/v1/providers/{id}", tag = "providers",
    params(("id" = String, Path, description = "the provider's id")),
    request_body = PatchProviderRequest,
    responses(
        (status = 200, body = ProviderView),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "read_only: declared in the configuration file", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn patch_provider(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ProvidersWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    Json(req): Json<PatchProviderRequest>,
) -> AppResult<axum::Json<ProviderView>> {
    let by = Actor::user(&caller);
    let apple_patch = if req.team_id.is_some() || req.key_id.is_some() {
        // One half changes: the other stays as it is.
        let current = state.providers.get_as(by, &id).await?.apple;
        let (team, key) = current.map(|a| (Some(a.team_id), Some(a.key_id))).unwrap_or_default();
        Some(apple(req.team_id.or(team), req.key_id.or(key)))
    } else {
        None
    };
    let patch = ProviderPatch {
        kind: req.kind.as_deref().map(kind).transpose()?,
        name: req.name,
        client_id: req.client_id,
        issuer: req.issuer,
        authorize_url: req.authorize_url,
        token_url: req.token_url,
        userinfo_url: req.userinfo_url,
        scopes: req.scopes,
        claims: req.claims.map(ClaimsView::into_map),
        apple: apple_patch,
        enabled: req.enabled,
    };
    let provider = state
        .providers
        .update_as(by, &id, patch, req.client_secret.map(Secret::new), &meta)
        .await?;
    Ok(axum::Json(provider.into()))
}

/// Delete a provider; the identities linked from it go with it.
#[utoipa::path(delete, path = "/v1/providers/{id}", tag = "providers",
    params(("id" = String, Path, description = "the provider's id")),
    responses(
        (status = 204),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "read_only: declared in the configuration file", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn delete_provider(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<ProvidersWrite>,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> AppResult<StatusCode> {
    state.providers.delete_as(Actor::user(&caller), &id, &meta).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user's linked upstream identities, oldest first.
#[utoipa::path(get, path = "/v1/users/{id}/identities", tag = "admin",
    params(("id" = String, Path, description = "user id")),
    responses((status = 200, body = IdentityList), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_user_identities(
    State(state): State<AppState>,
    RequirePermission(caller, ..): RequirePermission<UsersRead>,
    Path(id): Path<String>,
) -> AppResult<axum::Json<IdentityList>> {
    let user_id = Uuid::parse_str(&id).map_err(|_| AppError::not_found("user"))?;
    let items = state.providers.identities_as(Actor::user(&caller), user_id).await?;
    Ok(axum::Json(IdentityList {
        items: items.into_iter().map(IdentityView::from).collect(),
    }))
}
