//! OAuth clients of the tenant the pages show: list, register, change,
//! rotate a secret and delete, all through `service::clients`, which
//! validates, audits and revokes the client's sessions where it must.
//!
//! Secrets. A confidential client's secret is shown exactly once, in the
//! page that answers the registration (or the rotation) post itself, never
//! in a flash message, a redirect or any later page; that answer is
//! `Cache-Control: no-store` like every admin page, and says so explicitly.
//! Reloading it would post again (the browser asks first), which registers
//! another client or rotates again: it never shows the same secret twice.
//!
//! Forms. URI lists are typed one per line, scopes separated by spaces
//! (blank: the defaults), grant types are one checkbox each. A registration
//! or change that does not validate comes back as the same form, filled in
//! as sent, with the failing field named and marked (400), never a 500 and
//! never half a change. An operator looking at another tenant sees its
//! clients read-only (`admin.acting()` refuses every change).

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::guard::{Admin, done};
use super::users::ConfirmPage;
use super::views::{self, Layout, PageError, PageForm, page, page_with};
use crate::domain::clients::{Client, ClientKind, ClientSpec, DEFAULT_SCOPES, GrantType, IdTokenAlg, InvalidClient};
use crate::error::AppError;
use crate::http::extract::ClientMeta;
use crate::service::clients::{ClientChange, plausible_client_id};
use crate::service::site::sessions::SiteAdmin;
use crate::state::AppState;

struct ClientRow {
    client_id: String,
    name: String,
    kind: &'static str,
    first_party: bool,
    redirect_uris: usize,
    created: String,
}

#[derive(Template)]
#[template(path = "site/clients.html")]
struct ClientsPage {
    l: Layout,
    clients: Vec<ClientRow>,
}

/// `GET /admin/clients`.
pub async fn list(State(state): State<AppState>, Admin(admin): Admin) -> Result<Response, PageError> {
    let clients = state.clients.list(admin.viewing()).await?;
    Ok(page(&ClientsPage {
        l: Layout::new(&admin, "clients", "Clients"),
        clients: clients
            .into_iter()
            .map(|c| ClientRow {
                kind: c.kind.as_str(),
                first_party: c.first_party,
                redirect_uris: c.redirect_uris.len(),
                created: views::time(c.created_at),
                client_id: c.client_id,
                name: c.name,
            })
            .collect(),
    }))
}

/// The registration and edit form as posted. Checkboxes are sent only when
/// ticked, so each is an `Option`.
#[derive(Deserialize, Default)]
pub struct ClientForm {
    #[serde(default)]
    name: String,
    /// `confidential` or `public` (registration only: the type never changes).
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    redirect_uris: String,
    #[serde(default)]
    post_logout_redirect_uris: String,
    #[serde(default)]
    scopes: String,
    grant_authorization_code: Option<String>,
    grant_refresh_token: Option<String>,
    grant_client_credentials: Option<String>,
    first_party: Option<String>,
    #[serde(default)]
    backchannel_logout_uri: String,
    #[serde(default)]
    id_token_alg: String,
}

/// What the form parses into: everything but the name and type.
struct Parsed {
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    scopes: Vec<String>,
    grant_types: Vec<GrantType>,
    first_party: bool,
    backchannel_logout_uri: Option<String>,
    id_token_alg: IdTokenAlg,
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

impl ClientForm {
    fn parse(&self) -> Result<Parsed, InvalidClient> {
        let mut grant_types = Vec::new();
        for (ticked, grant) in [
            (&self.grant_authorization_code, GrantType::AuthorizationCode),
            (&self.grant_refresh_token, GrantType::RefreshToken),
            (&self.grant_client_credentials, GrantType::ClientCredentials),
        ] {
            if ticked.is_some() {
                grant_types.push(grant);
            }
        }
        let scopes: Vec<String> = self.scopes.split_whitespace().map(str::to_owned).collect();
        let scopes = if scopes.is_empty() {
            DEFAULT_SCOPES.iter().map(|s| (*s).to_owned()).collect()
        } else {
            scopes
        };
        let id_token_alg = IdTokenAlg::parse(self.id_token_alg.trim()).map_err(|reason| InvalidClient {
            field: "id_token_signed_response_alg",
            reason: reason.into(),
        })?;
        Ok(Parsed {
            redirect_uris: lines(&self.redirect_uris),
            post_logout_redirect_uris: lines(&self.post_logout_redirect_uris),
            scopes,
            grant_types,
            first_party: self.first_party.is_some(),
            backchannel_logout_uri: views::non_empty(&self.backchannel_logout_uri).map(str::to_owned),
            id_token_alg,
        })
    }

    /// The registration it asks for, validated (the service validates
    /// again; this gives the form its field).
    fn spec(&self) -> Result<ClientSpec, InvalidClient> {
        let kind = ClientKind::parse(self.kind.trim()).map_err(|reason| InvalidClient {
            field: "type",
            reason: reason.into(),
        })?;
        let p = self.parse()?;
        let mut spec = ClientSpec {
            name: self.name.clone(),
            kind,
            redirect_uris: p.redirect_uris,
            post_logout_redirect_uris: p.post_logout_redirect_uris,
            grant_types: p.grant_types,
            scopes: p.scopes,
            first_party: p.first_party,
            backchannel_logout_uri: p.backchannel_logout_uri,
            id_token_alg: p.id_token_alg,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The change it asks for: every field of the form, validated against
    /// `current` (the service validates again).
    fn change(&self, current: &Client) -> Result<ClientChange, InvalidClient> {
        let p = self.parse()?;
        let change = ClientChange {
            name: Some(self.name.clone()),
            redirect_uris: Some(p.redirect_uris),
            post_logout_redirect_uris: Some(p.post_logout_redirect_uris),
            grant_types: Some(p.grant_types),
            scopes: Some(p.scopes),
            first_party: Some(p.first_party),
            backchannel_logout_uri: Some(p.backchannel_logout_uri),
            id_token_alg: Some(p.id_token_alg),
        };
        let mut spec = current.spec();
        change.clone().apply(&mut spec);
        spec.validate()?;
        Ok(change)
    }
}

/// What the form shows: a client's settings, or what was just posted.
struct FormValues {
    name: String,
    kind: String,
    redirect_uris: String,
    post_logout_redirect_uris: String,
    scopes: String,
    authorization_code: bool,
    refresh_token: bool,
    client_credentials: bool,
    first_party: bool,
    backchannel_logout_uri: String,
    rs256: bool,
}

impl FormValues {
    /// An empty registration: confidential, the default grants, EdDSA.
    fn blank() -> Self {
        Self::of(&ClientSpec::new("", ClientKind::Confidential), true)
    }

    fn of(spec: &ClientSpec, blank_scopes: bool) -> Self {
        Self {
            name: spec.name.clone(),
            kind: spec.kind.as_str().into(),
            redirect_uris: spec.redirect_uris.join("\n"),
            post_logout_redirect_uris: spec.post_logout_redirect_uris.join("\n"),
            scopes: if blank_scopes {
                String::new()
            } else {
                spec.scopes.join(" ")
            },
            authorization_code: spec.grant_types.contains(&GrantType::AuthorizationCode),
            refresh_token: spec.grant_types.contains(&GrantType::RefreshToken),
            client_credentials: spec.grant_types.contains(&GrantType::ClientCredentials),
            first_party: spec.first_party,
            backchannel_logout_uri: spec.backchannel_logout_uri.clone().unwrap_or_default(),
            rs256: spec.id_token_alg == IdTokenAlg::RS256,
        }
    }

    fn posted(form: &ClientForm, kind: &str) -> Self {
        Self {
            name: form.name.clone(),
            kind: kind.into(),
            redirect_uris: form.redirect_uris.clone(),
            post_logout_redirect_uris: form.post_logout_redirect_uris.clone(),
            scopes: form.scopes.clone(),
            authorization_code: form.grant_authorization_code.is_some(),
            refresh_token: form.grant_refresh_token.is_some(),
            client_credentials: form.grant_client_credentials.is_some(),
            first_party: form.first_party.is_some(),
            backchannel_logout_uri: form.backchannel_logout_uri.clone(),
            rs256: form.id_token_alg.trim() == IdTokenAlg::RS256.as_str(),
        }
    }
}

/// A field that failed, as the form shows it.
struct FieldError {
    /// The API's field name (`redirect_uris` ...), which the form marks.
    field: String,
    /// `Redirect URIs: "http://x": ...`.
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
        "name" => "Name",
        "type" => "Type",
        "redirect_uris" => "Redirect URIs",
        "post_logout_redirect_uris" => "Post-logout redirect URIs",
        "grant_types" => "Grant types",
        "scopes" => "Scopes",
        "first_party" => "First-party",
        "backchannel_logout_uri" => "Back-channel logout URI",
        "id_token_signed_response_alg" => "ID token algorithm",
        other => other,
    }
}

impl From<InvalidClient> for FieldError {
    fn from(e: InvalidClient) -> Self {
        Self {
            text: format!("{}: {}", label(e.field), e.reason),
            field: e.field.into(),
        }
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
#[template(path = "site/client_new.html")]
struct NewClientPage {
    l: Layout,
    f: FormValues,
    error: Option<FieldError>,
}

/// `GET /admin/clients/new`: the registration form.
pub async fn new_form(Admin(admin): Admin) -> Result<Response, PageError> {
    admin.acting()?;
    Ok(page(&NewClientPage {
        l: Layout::new(&admin, "clients", "Register a client"),
        f: FormValues::blank(),
        error: None,
    }))
}

#[derive(Template)]
#[template(path = "site/client_secret.html")]
struct SecretPage {
    l: Layout,
    heading: String,
    client_id: String,
    name: String,
    /// The secret, this once; `None` for a public client.
    secret: Option<String>,
}

/// A page holding a secret: never stored by the browser or a proxy.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /admin/clients`: registers the client and shows its id and (for a
/// confidential client) its secret, this once.
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<ClientForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let by = admin.acting()?;
        let spec = form.spec().map_err(crate::service::clients::invalid_spec)?;
        state.clients.create(by, spec, &meta).await
    }
    .await;
    let registered = match outcome {
        Ok(registered) => registered,
        Err(e) => match field_error(&e) {
            Some(error) => {
                return Ok(page_with(
                    StatusCode::BAD_REQUEST,
                    &NewClientPage {
                        l: Layout::new(&admin, "clients", "Register a client"),
                        f: FormValues::posted(&form, form.kind.trim()),
                        error: Some(error),
                    },
                ));
            }
            None => return Ok(done(&state, &admin, "/admin/clients", Err(e)).await),
        },
    };
    let client = registered.client;
    Ok(no_store(page(&SecretPage {
        l: Layout::new(&admin, "clients", format!("Client {} registered", client.name)),
        heading: "Client registered".into(),
        client_id: client.client_id,
        name: client.name,
        secret: registered.secret.map(|s| s.expose().to_owned()),
    })))
}

#[derive(Template)]
#[template(path = "site/client.html")]
struct ClientPage {
    l: Layout,
    client_id: String,
    confidential: bool,
    kind: &'static str,
    auth_method: &'static str,
    created: String,
    updated: String,
    /// The client's settings, read-only.
    c: FormValues,
    /// The edit form: the client's settings, or what was just posted.
    f: FormValues,
    error: Option<FieldError>,
}

impl ClientPage {
    fn new(admin: &SiteAdmin, client: &Client, f: Option<FormValues>, error: Option<FieldError>) -> Self {
        let c = FormValues::of(&client.spec(), false);
        Self {
            l: Layout::new(admin, "clients", format!("Client {}", client.name)),
            client_id: client.client_id.clone(),
            confidential: client.kind == ClientKind::Confidential,
            kind: client.kind.as_str(),
            auth_method: match client.kind {
                ClientKind::Confidential => "client_secret_basic or client_secret_post",
                ClientKind::Public => "none (PKCE)",
            },
            created: views::time(client.created_at),
            updated: views::time(client.updated_at),
            f: f.unwrap_or_else(|| FormValues::of(&client.spec(), false)),
            c,
            error,
        }
    }
}

/// A `client_id` from the path; anything that could not be one is a 404.
fn client_id(raw: &str) -> Result<&str, PageError> {
    if plausible_client_id(raw) {
        Ok(raw)
    } else {
        Err(PageError(AppError::not_found("client")))
    }
}

fn path_of(client_id: &str) -> String {
    format!("/admin/clients/{client_id}")
}

/// `GET /admin/clients/{client_id}`: the client and its edit form.
pub async fn show(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let client = state.clients.get(admin.viewing(), client_id(&raw)?).await?;
    Ok(page(&ClientPage::new(&admin, &client, None, None)))
}

/// `POST /admin/clients/{client_id}`: saves the edit form.
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
    PageForm(form): PageForm<ClientForm>,
) -> Result<Response, PageError> {
    let id = client_id(&raw)?;
    let to = path_of(id);
    let outcome = async {
        let by = admin.acting()?;
        let current = state.clients.get(by, id).await?;
        let change = form.change(&current).map_err(crate::service::clients::invalid_spec)?;
        state.clients.update(by, id, change, &meta).await?;
        Ok(format!("Client {} saved.", form.name.trim()))
    }
    .await;
    if let Err(e) = &outcome
        && let Some(error) = field_error(e)
    {
        let client = state.clients.get(admin.viewing(), id).await?;
        let posted = FormValues::posted(&form, client.kind.as_str());
        return Ok(page_with(
            StatusCode::BAD_REQUEST,
            &ClientPage::new(&admin, &client, Some(posted), Some(error)),
        ));
    }
    Ok(done(&state, &admin, &to, outcome).await)
}

/// `GET /admin/clients/{client_id}/secret`: asks before rotating.
pub async fn confirm_rotate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let client = state.clients.get(admin.viewing(), client_id(&raw)?).await?;
    if client.kind == ClientKind::Public {
        return Err(PageError(AppError::bad_request(
            crate::error::ErrorCode::InvalidRequest,
            "a public client has no secret to rotate",
        )));
    }
    Ok(page(&ConfirmPage {
        l: Layout::new(&admin, "clients", "Rotate client secret"),
        heading: format!("Rotate the secret of {}?", client.name),
        question: format!(
            "A new secret replaces the current one of client {} at once; it is shown once, on the next page.",
            client.client_id
        ),
        consequences: vec![
            "The current secret stops working at once: the application fails to sign in until it has the new one."
                .into(),
            "Every session opened through this client ends, and its tokens stop working.".into(),
        ],
        action: format!("{}/secret", path_of(&client.client_id)),
        button: "Rotate secret".into(),
        cancel: path_of(&client.client_id),
    }))
}

/// `POST /admin/clients/{client_id}/secret`: rotates and shows the new
/// secret, this once.
pub async fn rotate(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id = client_id(&raw)?;
    let outcome = async {
        let by = admin.acting()?;
        let client = state.clients.get(by, id).await?;
        let secret = state.clients.rotate_secret(by, id, &meta).await?;
        Ok((client, secret))
    }
    .await;
    match outcome {
        Ok((client, secret)) => Ok(no_store(page(&SecretPage {
            l: Layout::new(&admin, "clients", format!("Client {}", client.name)),
            heading: "New secret".into(),
            client_id: client.client_id,
            name: client.name,
            secret: Some(secret.expose().to_owned()),
        }))),
        Err(e) => Ok(done(&state, &admin, &path_of(id), Err(e)).await),
    }
}

/// `GET /admin/clients/{client_id}/delete`: asks first.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let client = state.clients.get(admin.viewing(), client_id(&raw)?).await?;
    Ok(page(&ConfirmPage {
        l: Layout::new(&admin, "clients", "Delete client"),
        heading: format!("Delete the client {}?", client.name),
        question: format!(
            "Client {} will be deleted from tenant {}.",
            client.client_id,
            admin.tenant().slug
        ),
        consequences: vec![
            "Every session opened through it ends at once: its users are signed out of the application and its tokens stop working.".into(),
            "The consents users gave it are removed; its secret and client_id stop working. This cannot be undone.".into(),
            "The audit log keeps its rows about it.".into(),
        ],
        action: format!("{}/delete", path_of(&client.client_id)),
        button: "Delete client".into(),
        cancel: path_of(&client.client_id),
    }))
}

/// `POST /admin/clients/{client_id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id = client_id(&raw)?;
    let outcome = async {
        let by = admin.acting()?;
        let client = state.clients.get(by, id).await?;
        state.clients.delete(by, id, &meta).await?;
        Ok(format!("Client {} deleted; its sessions have ended.", client.name))
    }
    .await;
    Ok(match outcome {
        Ok(text) => done(&state, &admin, "/admin/clients", Ok(text)).await,
        Err(e) => done(&state, &admin, &path_of(id), Err(e)).await,
    })
}
