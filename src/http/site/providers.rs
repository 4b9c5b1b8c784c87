//! Upstream identity providers of the tenant the pages show: list,
//! register, change and delete, all through `service::providers`, which
//! validates, seals the client secret and audits.
//!
//! Secrets. The client secret is write-only: the forms take it in a
//! password field and no page ever shows it, not even the form that comes
//! back with a validation error. On the edit page an empty secret keeps the
//! stored one.
//!
//! Forms. Scopes are separated by spaces (blank: the kind's defaults). A
//! registration or change that does not validate comes back as the same
//! form, filled in as sent (but the secret), with the failing field named
//! and marked (400), never a 500 and never half a change. Providers
//! declared in `forge.toml` are shown read-only (the file is their source of
//! truth), as is everything of another tenant an operator looks at.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::guard::{Admin, done};
use super::users::ConfirmPage;
use super::views::{self, Layout, PageError, PageForm, page, page_with};
use crate::domain::providers::{AppleKey, Provider, ProviderId, ProviderKind, ProviderPatch, ProviderSpec};
use crate::error::AppError;
use crate::http::extract::ClientMeta;
use crate::secret::Secret;
use crate::service::providers::Actor;
use crate::service::site::sessions::SiteAdmin;
use crate::state::AppState;

struct ProviderRow {
    id: String,
    name: String,
    kind: &'static str,
    enabled: bool,
    source: &'static str,
}

fn source(p: &Provider) -> &'static str {
    if p.from_config { "config" } else { "api" }
}

#[derive(Template)]
#[template(path = "site/providers.html")]
struct ProvidersPage {
    l: Layout,
    providers: Vec<ProviderRow>,
}

/// `GET /admin/providers`.
pub async fn list(State(state): State<AppState>, Admin(admin): Admin) -> Result<Response, PageError> {
    let providers = state.providers.list_as(Actor::user(admin.viewing())).await?;
    Ok(page(&ProvidersPage {
        l: Layout::new(&admin, "providers", "Identity providers"),
        providers: providers
            .iter()
            .map(|p| ProviderRow {
                id: p.id.to_string(),
                name: p.name.clone(),
                kind: p.kind.as_str(),
                enabled: p.enabled,
                source: source(p),
            })
            .collect(),
    }))
}

/// The registration and edit form as posted. The checkbox is sent only
/// when ticked, so it is an `Option`.
#[derive(Deserialize, Default)]
pub struct ProviderForm {
    /// Registration only: the id never changes.
    #[serde(default)]
    id: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    client_id: String,
    /// Write-only; empty on the edit form keeps the stored secret.
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    authorize_url: String,
    #[serde(default)]
    token_url: String,
    #[serde(default)]
    userinfo_url: String,
    #[serde(default)]
    scopes: String,
    #[serde(default)]
    team_id: String,
    #[serde(default)]
    key_id: String,
    enabled: Option<String>,
}

fn optional(s: &str) -> Option<String> {
    views::non_empty(s).map(str::to_owned)
}

impl ProviderForm {
    fn kind(&self) -> Result<ProviderKind, AppError> {
        ProviderKind::parse(&self.kind).map_err(|why| AppError::validation("kind", why))
    }

    /// Apple's key when either id is typed (validation names what is missing).
    fn apple(&self) -> Option<AppleKey> {
        (!self.team_id.trim().is_empty() || !self.key_id.trim().is_empty()).then(|| AppleKey {
            team_id: self.team_id.clone(),
            key_id: self.key_id.clone(),
        })
    }

    /// The registration it asks for (the service validates it).
    fn spec(&self) -> Result<ProviderSpec, AppError> {
        let mut spec = ProviderSpec::new(self.kind()?, self.name.clone(), self.client_id.clone());
        spec.issuer = optional(&self.issuer);
        spec.authorize_url = optional(&self.authorize_url);
        spec.token_url = optional(&self.token_url);
        spec.userinfo_url = optional(&self.userinfo_url);
        spec.scopes = self.scopes.split_whitespace().map(str::to_owned).collect();
        spec.apple = self.apple();
        spec.enabled = self.enabled.is_some();
        Ok(spec)
    }

    /// The change it asks for: every field of the form but the id.
    fn patch(&self) -> Result<ProviderPatch, AppError> {
        let spec = self.spec()?;
        Ok(ProviderPatch {
            kind: Some(spec.kind),
            name: Some(spec.name),
            client_id: Some(spec.client_id),
            issuer: Some(spec.issuer),
            authorize_url: Some(spec.authorize_url),
            token_url: Some(spec.token_url),
            userinfo_url: Some(spec.userinfo_url),
            scopes: Some(spec.scopes),
            claims: None,
            apple: Some(spec.apple),
            enabled: Some(spec.enabled),
        })
    }

    /// The secret typed, if any.
    fn secret(&self) -> Option<Secret> {
        views::non_empty(&self.client_secret).map(Secret::new)
    }
}

/// What the form shows: a provider's settings, or what was just posted
/// (never a secret).
struct FormValues {
    id: String,
    kind: String,
    name: String,
    client_id: String,
    issuer: String,
    authorize_url: String,
    token_url: String,
    userinfo_url: String,
    scopes: String,
    team_id: String,
    key_id: String,
    enabled: bool,
}

impl FormValues {
    fn blank() -> Self {
        Self {
            id: String::new(),
            kind: ProviderKind::Oidc.as_str().into(),
            name: String::new(),
            client_id: String::new(),
            issuer: String::new(),
            authorize_url: String::new(),
            token_url: String::new(),
            userinfo_url: String::new(),
            scopes: String::new(),
            team_id: String::new(),
            key_id: String::new(),
            enabled: true,
        }
    }

    fn of(p: &Provider) -> Self {
        let url = |u: &Option<url::Url>| u.as_ref().map(|u| u.to_string()).unwrap_or_default();
        Self {
            id: p.id.to_string(),
            kind: p.kind.as_str().into(),
            name: p.name.clone(),
            client_id: p.client_id.clone(),
            issuer: url(&p.issuer),
            authorize_url: url(&p.authorize_url),
            token_url: url(&p.token_url),
            userinfo_url: url(&p.userinfo_url),
            scopes: p.scopes.join(" "),
            team_id: p.apple.as_ref().map(|a| a.team_id.clone()).unwrap_or_default(),
            key_id: p.apple.as_ref().map(|a| a.key_id.clone()).unwrap_or_default(),
            enabled: p.enabled,
        }
    }

    fn posted(form: &ProviderForm, id: &str) -> Self {
        Self {
            id: id.into(),
            kind: form.kind.trim().into(),
            name: form.name.clone(),
            client_id: form.client_id.clone(),
            issuer: form.issuer.clone(),
            authorize_url: form.authorize_url.clone(),
            token_url: form.token_url.clone(),
            userinfo_url: form.userinfo_url.clone(),
            scopes: form.scopes.clone(),
            team_id: form.team_id.clone(),
            key_id: form.key_id.clone(),
            enabled: form.enabled.is_some(),
        }
    }
}

/// One option of the kind select.
struct KindOption {
    value: &'static str,
    selected: bool,
}

fn kinds(selected: &str) -> Vec<KindOption> {
    ProviderKind::ALL
        .iter()
        .map(|k| KindOption {
            value: k.as_str(),
            selected: k.as_str() == selected,
        })
        .collect()
}

/// A field that failed, as the form shows it.
struct FieldError {
    /// The API's field name (`issuer` ...), which the form marks.
    field: String,
    /// `Issuer: must be ...`.
    text: String,
}

impl FieldError {
    fn is(&self, field: &str) -> bool {
        self.field == field
    }
}

/// The form's label of an API field name.
fn label(field: &str) -> &str {
    match field {
        "id" => "ID",
        "kind" => "Kind",
        "name" => "Name",
        "client_id" => "Client ID",
        "client_secret" => "Client secret",
        "issuer" => "Issuer",
        "authorize_url" => "Authorize URL",
        "token_url" => "Token URL",
        "userinfo_url" => "Userinfo URL",
        "scopes" => "Scopes",
        "team_id" => "Team ID",
        "key_id" => "Key ID",
        "claims" => "Claims",
        other => other,
    }
}

/// The first invalid field of a validation error; `None` for any other error.
fn field_error(e: &AppError) -> Option<FieldError> {
    let AppError::Validation { fields, .. } = e else {
        return None;
    };
    let (field, reason) = fields.iter().next()?;
    Some(FieldError {
        text: format!("{}: {reason}", label(field)),
        field: field.clone(),
    })
}

#[derive(Template)]
#[template(path = "site/provider_new.html")]
struct NewProviderPage {
    l: Layout,
    f: FormValues,
    kinds: Vec<KindOption>,
    error: Option<FieldError>,
}

impl NewProviderPage {
    fn new(admin: &SiteAdmin, f: FormValues, error: Option<FieldError>) -> Self {
        Self {
            l: Layout::new(admin, "providers", "Add an identity provider"),
            kinds: kinds(&f.kind),
            f,
            error,
        }
    }
}

/// `GET /admin/providers/new`: the registration form.
pub async fn new_form(Admin(admin): Admin) -> Result<Response, PageError> {
    admin.acting()?;
    Ok(page(&NewProviderPage::new(&admin, FormValues::blank(), None)))
}

/// `POST /admin/providers`: registers the provider and goes to its page.
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<ProviderForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let by = Actor::user(admin.acting()?);
        let spec = form.spec()?;
        let secret = form
            .secret()
            .ok_or_else(|| AppError::validation("client_secret", "is required"))?;
        state.providers.create_as(by, form.id.trim(), spec, secret, &meta).await
    }
    .await;
    match outcome {
        Ok(p) => Ok(done(
            &state,
            &admin,
            &path_of(p.id.as_str()),
            Ok(format!("Provider {} added.", p.name)),
        )
        .await),
        Err(e) => match field_error(&e) {
            Some(error) => Ok(page_with(
                StatusCode::BAD_REQUEST,
                &NewProviderPage::new(&admin, FormValues::posted(&form, form.id.trim()), Some(error)),
            )),
            None => Ok(done(&state, &admin, "/admin/providers", Err(e)).await),
        },
    }
}

#[derive(Template)]
#[template(path = "site/provider.html")]
struct ProviderPage {
    l: Layout,
    id: String,
    kind: &'static str,
    source: &'static str,
    /// Declared in `forge.toml`, or another tenant's: no form.
    read_only: bool,
    from_config: bool,
    callback_url: String,
    created: String,
    updated: String,
    /// The provider's settings, read-only.
    p: FormValues,
    /// The edit form: the provider's settings, or what was just posted.
    f: FormValues,
    kinds: Vec<KindOption>,
    error: Option<FieldError>,
}

impl ProviderPage {
    fn new(
        state: &AppState,
        admin: &SiteAdmin,
        provider: &Provider,
        f: Option<FormValues>,
        error: Option<FieldError>,
    ) -> Self {
        let f = f.unwrap_or_else(|| FormValues::of(provider));
        Self {
            l: Layout::new(admin, "providers", format!("Provider {}", provider.name)),
            id: provider.id.to_string(),
            kind: provider.kind.as_str(),
            source: source(provider),
            read_only: provider.from_config || admin.switched(),
            from_config: provider.from_config,
            callback_url: format!(
                "{}/v1/auth/providers/{}/callback",
                state.config.server.public_url.trim_end_matches('/'),
                provider.id
            ),
            created: views::time(provider.created_at),
            updated: views::time(provider.updated_at),
            p: FormValues::of(provider),
            kinds: kinds(&f.kind),
            f,
            error,
        }
    }
}

/// A provider id from the path; anything that could not be one is a 404.
fn provider_id(raw: &str) -> Result<ProviderId, PageError> {
    ProviderId::parse(raw).map_err(|_| PageError(AppError::not_found("provider")))
}

fn path_of(id: &str) -> String {
    format!("/admin/providers/{id}")
}

/// `GET /admin/providers/{id}`: the provider and its edit form.
pub async fn show(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id = provider_id(&raw)?;
    let provider = state
        .providers
        .get_as(Actor::user(admin.viewing()), id.as_str())
        .await?;
    Ok(page(&ProviderPage::new(&state, &admin, &provider, None, None)))
}

/// `POST /admin/providers/{id}`: saves the edit form (an empty secret
/// keeps the stored one).
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
    PageForm(form): PageForm<ProviderForm>,
) -> Result<Response, PageError> {
    let id = provider_id(&raw)?;
    let to = path_of(id.as_str());
    let outcome = async {
        let by = Actor::user(admin.acting()?);
        let patch = form.patch()?;
        let saved = state
            .providers
            .update_as(by, id.as_str(), patch, form.secret(), &meta)
            .await?;
        Ok(format!("Provider {} saved.", saved.name))
    }
    .await;
    if let Err(e) = &outcome
        && let Some(error) = field_error(e)
    {
        let provider = state
            .providers
            .get_as(Actor::user(admin.viewing()), id.as_str())
            .await?;
        let posted = FormValues::posted(&form, id.as_str());
        return Ok(page_with(
            StatusCode::BAD_REQUEST,
            &ProviderPage::new(&state, &admin, &provider, Some(posted), Some(error)),
        ));
    }
    Ok(done(&state, &admin, &to, outcome).await)
}

/// `GET /admin/providers/{id}/delete`: asks first.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id = provider_id(&raw)?;
    let provider = state
        .providers
        .get_as(Actor::user(admin.viewing()), id.as_str())
        .await?;
    Ok(page(&ConfirmPage {
        l: Layout::new(&admin, "providers", "Delete identity provider"),
        heading: format!("Delete the provider {}?", provider.name),
        question: format!(
            "Provider {} will be deleted from tenant {}.",
            provider.id,
            admin.tenant().slug
        ),
        consequences: vec![
            "Its sign-in button disappears: nobody can sign in with it any more.".into(),
            "The identities users linked from it are removed; their accounts stay. This cannot be undone.".into(),
            "The audit log keeps its rows about it.".into(),
        ],
        action: format!("{}/delete", path_of(provider.id.as_str())),
        button: "Delete provider".into(),
        cancel: path_of(provider.id.as_str()),
    }))
}

/// `POST /admin/providers/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id = provider_id(&raw)?;
    let outcome = async {
        let by = Actor::user(admin.acting()?);
        let provider = state.providers.get_as(by, id.as_str()).await?;
        state.providers.delete_as(by, id.as_str(), &meta).await?;
        Ok(format!("Provider {} deleted.", provider.name))
    }
    .await;
    Ok(match outcome {
        Ok(text) => done(&state, &admin, "/admin/providers", Ok(text)).await,
        Err(e) => done(&state, &admin, &path_of(id.as_str()), Err(e)).await,
    })
}
