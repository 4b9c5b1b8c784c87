//! Users of the tenant the pages show: search and keyset paging, creation,
//! and the detail page (profile, roles, sessions, second factors,
//! disable/enable, delete and the factor reset behind a confirmation page,
//! recent audit events).
//!
//! Every action calls the use case the API calls (`directory`, `roles`,
//! `factors`), so the same rules hold: nobody acts on a user holding
//! permissions they lack, changes are audited with the administrator as
//! actor, disabling and deleting end the user's tokens at once, a factor
//! reset tells the user. The page shows what a factor is (kind, name,
//! dates) and how many recovery codes are left, never a secret: the
//! listing it reads carries none. The site adds one rule of its own:
//! administrators cannot disable or delete themselves, take their own
//! `admin` role or reset their own second factors here, the classic way to
//! lock everyone out (the factor service refuses the last one as well).

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::guard::{Admin, done};
use super::records::{EventRow, event_rows};
use super::views::{self, Layout, PageError, PageForm, PageQuery, non_empty, page};
use crate::domain::{Email, Phone, RoleName};
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::secret::Secret;
use crate::service::audit;
use crate::service::directory::{AccountChange, NewAccount};
use crate::service::site::sessions::SiteAdmin;
use crate::state::AppState;
use crate::store::{Factor, FactorKind, User};

/// Users per page.
const PAGE: u32 = 50;

struct UserRow {
    id: String,
    email: String,
    email_verified: bool,
    phone: String,
    phone_verified: bool,
    roles: Vec<String>,
    disabled: bool,
    created: String,
    last_sign_in: String,
}

fn row(user: &User, now: i64) -> UserRow {
    UserRow {
        id: user.id.to_string(),
        email: user.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
        email_verified: user.email_verified,
        phone: user.phone.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        phone_verified: user.phone_verified,
        roles: user.roles.clone(),
        disabled: user.disabled,
        created: views::time(user.created_at),
        last_sign_in: user
            .last_sign_in_at
            .map(|t| views::relative(now, t))
            .unwrap_or_else(|| "never".into()),
    }
}

#[derive(Template)]
#[template(path = "site/users.html")]
struct UsersPage {
    l: Layout,
    q: String,
    users: Vec<UserRow>,
    roles: Vec<String>,
    next: Option<String>,
    first_page: bool,
    error: Option<String>,
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

/// `GET /admin/users?q=&cursor=`: everyone in creation order, or an email
/// (phone, with `+`) prefix search in address order.
pub async fn list(
    State(state): State<AppState>,
    Admin(admin): Admin,
    PageQuery(query): PageQuery<ListQuery>,
) -> Result<Response, PageError> {
    let principal = admin.viewing();
    let q = non_empty(&query.q).map(str::to_string);
    let outcome = state
        .directory
        .list(principal, q.as_deref(), Some(PAGE), query.cursor.as_deref())
        .await;
    let (users, next, error) = match outcome {
        Ok(p) => (p.items, p.next_cursor, None),
        Err(e @ (AppError::Validation { .. } | AppError::BadRequest { .. })) => {
            (Vec::new(), None, Some(views::describe(&e)))
        }
        Err(e) => return Err(e.into()),
    };
    let roles = state.roles.list(principal).await?.into_iter().map(|r| r.name).collect();
    let now = state.clock.now();
    let next = next.map(|cursor| {
        let mut params = vec![("cursor", cursor)];
        params.extend(q.clone().map(|q| ("q", q)));
        format!(
            "/admin/users?{}",
            serde_urlencoded::to_string(params).unwrap_or_default()
        )
    });
    Ok(page(&UsersPage {
        l: Layout::new(&admin, "users", "Users"),
        q: q.unwrap_or_default(),
        users: users.iter().map(|u| row(u, now)).collect(),
        roles,
        next,
        first_page: query.cursor.is_none(),
        error,
    }))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    email_verified: Option<String>,
}

fn new_account(form: &CreateForm) -> Result<NewAccount, AppError> {
    let email = non_empty(&form.email)
        .map(|e| Email::parse(e).map_err(|reason| AppError::validation("email", reason)))
        .transpose()?;
    let phone = non_empty(&form.phone)
        .map(|p| Phone::parse(p).map_err(|reason| AppError::validation("phone", reason)))
        .transpose()?;
    let roles = non_empty(&form.role)
        .map(|r| RoleName::parse(r).map_err(|reason| AppError::validation("role", reason)))
        .transpose()?
        .into_iter()
        .collect();
    Ok(NewAccount {
        email,
        phone,
        password: (!form.password.is_empty()).then(|| Secret::new(form.password.clone())),
        metadata: serde_json::json!({}),
        email_verified: form.email_verified.is_some(),
        phone_verified: false,
        roles,
    })
}

/// `POST /admin/users`: provisions a user, then shows them.
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<CreateForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let account = new_account(&form)?;
        let principal = admin.acting()?;
        state.directory.create(principal, account, &meta).await
    }
    .await;
    Ok(match outcome {
        Ok(user) => {
            let to = format!("/admin/users/{}", user.id);
            done(&state, &admin, &to, Ok("User created.".into())).await
        }
        Err(e) => done(&state, &admin, "/admin/users", Err(e)).await,
    })
}

struct SessionRow {
    id: String,
    created: String,
    last_used: String,
    expires: String,
    ip: String,
    user_agent: String,
}

/// A confirmed second factor as the page shows it: what it is, never its
/// secret or credential.
struct FactorRow {
    kind: &'static str,
    name: String,
    created: String,
    last_used: String,
}

fn factor_row(factor: &Factor, now: i64) -> FactorRow {
    FactorRow {
        kind: match factor.kind {
            FactorKind::Totp => "TOTP",
            FactorKind::WebAuthn => "Passkey",
        },
        name: factor.name.clone(),
        created: views::time(factor.created_at),
        last_used: factor
            .last_used_at
            .map(|t| views::relative(now, t))
            .unwrap_or_else(|| "never".into()),
    }
}

/// The user's recovery codes: how many are left, and when the set was made
/// and last used.
struct RecoveryRow {
    remaining: u64,
    created: String,
    last_used: String,
}

#[derive(Template)]
#[template(path = "site/user.html")]
struct UserPage {
    l: Layout,
    user: UserRow,
    updated: String,
    metadata: String,
    is_self: bool,
    sessions: Vec<SessionRow>,
    factors: Vec<FactorRow>,
    /// `None` when the user has neither a factor nor a recovery code.
    recovery_codes: Option<RecoveryRow>,
    assignable: Vec<String>,
    /// The upstream identities linked to the user (issue 13).
    identities: Vec<IdentityRow>,
    events: Vec<EventRow>,
}

/// A linked upstream identity, as the user page lists it.
struct IdentityRow {
    provider: String,
    subject: String,
    email: String,
    linked: String,
}

/// How many recent audit events the detail page shows.
const RECENT_EVENTS: u32 = 20;

/// `GET /admin/users/{id}`.
pub async fn show(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    let principal = admin.viewing();
    let user = state.directory.get(principal, id).await?;
    let sessions = state.directory.sessions(principal, id).await?;
    let factors = state.factors.list_for(principal, id).await?;
    let identities = state
        .providers
        .identities_as(crate::service::providers::Actor::user(principal), id)
        .await?
        .into_iter()
        .map(|i| IdentityRow {
            provider: i.provider.to_string(),
            subject: i.subject,
            email: i.email.unwrap_or_default(),
            linked: views::time(i.created_at),
        })
        .collect();
    let assignable = state
        .roles
        .list(principal)
        .await?
        .into_iter()
        .map(|r| r.name)
        .filter(|name| !user.roles.contains(name))
        .collect();
    let events = state
        .audit
        .list(
            principal,
            audit::Filter {
                user_id: Some(id),
                event: None,
            },
            Some(RECENT_EVENTS),
            None,
        )
        .await?
        .items;
    let now = state.clock.now();
    let title = display_name(&user);
    Ok(page(&UserPage {
        l: Layout::new(&admin, "users", title),
        updated: views::time(user.updated_at),
        metadata: serde_json::to_string_pretty(&user.metadata).unwrap_or_default(),
        is_self: is_self(&admin, id),
        user: row(&user, now),
        sessions: sessions
            .iter()
            .map(|s| SessionRow {
                id: s.id.to_string(),
                created: views::time(s.created_at),
                last_used: views::relative(now, s.last_used_at),
                expires: views::relative(now, s.expires_at),
                ip: s.ip.clone().unwrap_or_default(),
                user_agent: s.user_agent.clone().unwrap_or_default().chars().take(120).collect(),
            })
            .collect(),
        factors: factors.factors.iter().map(|f| factor_row(f, now)).collect(),
        identities,
        recovery_codes: (!factors.factors.is_empty() || factors.recovery_codes.remaining > 0).then(|| {
            let codes = &factors.recovery_codes;
            RecoveryRow {
                remaining: codes.remaining,
                created: views::time_or_dash(codes.created_at),
                last_used: codes
                    .last_used_at
                    .map(|t| views::relative(now, t))
                    .unwrap_or_else(|| "never".into()),
            }
        }),
        assignable,
        events: event_rows(&state, &admin, events).await?,
    }))
}

fn display_name(user: &User) -> String {
    user.email
        .as_ref()
        .map(|e| e.to_string())
        .or_else(|| user.phone.as_ref().map(|p| p.to_string()))
        .unwrap_or_else(|| user.id.to_string())
}

fn is_self(admin: &SiteAdmin, id: Uuid) -> bool {
    admin.user.id == id && !admin.switched()
}

fn not_yourself(what: &str) -> AppError {
    AppError::forbidden(
        ErrorCode::SelfAction,
        format!("you cannot {what} your own account from the admin site; ask another administrator"),
    )
}

#[derive(Deserialize)]
pub struct RoleForm {
    #[serde(default)]
    role: String,
}

fn role_name(form: &RoleForm) -> Result<RoleName, AppError> {
    RoleName::parse(form.role.trim()).map_err(|reason| AppError::validation("role", reason))
}

/// `POST /admin/users/{id}/roles`: gives the user a role.
pub async fn assign_role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    PageForm(form): PageForm<RoleForm>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    let outcome = async {
        let role = role_name(&form)?;
        state.roles.assign(admin.acting()?, id, &role, &meta).await?;
        Ok(format!("Role {role} assigned."))
    }
    .await;
    Ok(done(&state, &admin, &format!("/admin/users/{id}"), outcome).await)
}

/// `POST /admin/users/{id}/roles/remove`: takes a role away.
pub async fn remove_role(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    PageForm(form): PageForm<RoleForm>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    let outcome = async {
        let role = role_name(&form)?;
        if is_self(&admin, id) && role.as_str() == RoleName::ADMIN {
            return Err(not_yourself("take the admin role from"));
        }
        state.roles.remove(admin.acting()?, id, &role, &meta).await?;
        Ok(format!("Role {role} removed."))
    }
    .await;
    Ok(done(&state, &admin, &format!("/admin/users/{id}"), outcome).await)
}

#[derive(Deserialize)]
pub struct SessionForm {
    #[serde(default)]
    session: String,
}

/// `POST /admin/users/{id}/sessions/revoke`: ends one session.
pub async fn revoke_session(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
    PageForm(form): PageForm<SessionForm>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    let outcome = async {
        let session = Uuid::parse_str(form.session.trim()).map_err(|_| AppError::not_found("session"))?;
        state
            .directory
            .revoke_sessions(admin.acting()?, id, Some(session), &meta)
            .await?;
        Ok("Session revoked; its tokens stopped working.".to_string())
    }
    .await;
    Ok(done(&state, &admin, &format!("/admin/users/{id}"), outcome).await)
}

/// `POST /admin/users/{id}/sessions/revoke-all`.
pub async fn revoke_all_sessions(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    let outcome = async {
        state
            .directory
            .revoke_sessions(admin.acting()?, id, None, &meta)
            .await?;
        Ok("Every session of this user was revoked.".to_string())
    }
    .await;
    Ok(done(&state, &admin, &format!("/admin/users/{id}"), outcome).await)
}

async fn set_disabled(state: &AppState, admin: &SiteAdmin, id: Uuid, disabled: bool, meta: &ClientMeta) -> Response {
    let outcome = async {
        if disabled && is_self(admin, id) {
            return Err(not_yourself("disable"));
        }
        let change = AccountChange {
            disabled: Some(disabled),
            ..Default::default()
        };
        state.directory.update(admin.acting()?, id, change, &meta.0).await?;
        Ok(if disabled {
            "User disabled; their sessions were revoked.".to_string()
        } else {
            "User enabled.".to_string()
        })
    }
    .await;
    done(state, admin, &format!("/admin/users/{id}"), outcome).await
}

/// `POST /admin/users/{id}/disable`.
pub async fn disable(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    Ok(set_disabled(&state, &admin, id, true, &meta).await)
}

/// `POST /admin/users/{id}/enable`.
pub async fn enable(
    State(state): State<AppState>,
    Admin(admin): Admin,
    meta: ClientMeta,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    Ok(set_disabled(&state, &admin, id, false, &meta).await)
}

/// A confirmation page before something that cannot be undone.
#[derive(Template)]
#[template(path = "site/confirm.html")]
pub struct ConfirmPage {
    pub l: Layout,
    pub heading: String,
    pub question: String,
    pub consequences: Vec<String>,
    pub action: String,
    pub button: String,
    pub cancel: String,
}

/// `GET /admin/users/{id}/delete`: asks first.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    let user = state.directory.get(admin.viewing(), id).await?;
    let name = display_name(&user);
    Ok(page(&ConfirmPage {
        l: Layout::new(&admin, "users", "Delete user"),
        heading: "Delete this user?".into(),
        question: format!("{name} will be deleted from tenant {}.", admin.tenant().slug),
        consequences: vec![
            "Their sessions end and their access tokens stop working at once.".into(),
            "Their password, roles and profile are removed. This cannot be undone.".into(),
            "The audit log keeps its rows about them.".into(),
        ],
        action: format!("/admin/users/{id}/delete"),
        button: "Delete user".into(),
        cancel: format!("/admin/users/{id}"),
    }))
}

/// `POST /admin/users/{id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    let outcome = async {
        if is_self(&admin, id) {
            return Err(not_yourself("delete"));
        }
        state.directory.delete(admin.acting()?, id, &meta).await?;
        Ok("User deleted.".to_string())
    }
    .await;
    Ok(match outcome {
        Ok(text) => done(&state, &admin, "/admin/users", Ok(text)).await,
        Err(e) => done(&state, &admin, &format!("/admin/users/{id}"), Err(e)).await,
    })
}

/// `GET /admin/users/{id}/factors/reset`: asks first. The administrator's
/// own page offers no reset, and this page refuses it too (403 `self`):
/// one's own factors are removed through self-service, which asks for
/// fresh proof.
pub async fn confirm_reset_factors(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    let user = state.directory.get(admin.viewing(), id).await?;
    if is_self(&admin, id) {
        return Err(not_yourself("reset the second factors of").into());
    }
    Ok(page(&ConfirmPage {
        l: Layout::new(&admin, "users", "Reset second factors"),
        heading: "Reset this user's second factors?".into(),
        question: format!(
            "Every second factor and recovery code of {} will be removed.",
            display_name(&user)
        ),
        consequences: vec![
            "Their authenticator apps, passkeys and recovery codes stop working at once. This cannot be undone.".into(),
            "They sign in with their password alone until they enrol a factor again (or are asked to, where the \
             tenant requires one)."
                .into(),
            "They are told that an administrator removed their factors, and the reset is in the audit log with \
             you as the actor."
                .into(),
            "Do this only once you are sure the request comes from them (a lost device, not an attacker holding \
             their password)."
                .into(),
        ],
        action: format!("/admin/users/{id}/factors/reset"),
        button: "Reset second factors".into(),
        cancel: format!("/admin/users/{id}"),
    }))
}

/// `POST /admin/users/{id}/factors/reset`: removes every factor and
/// recovery code of the user (`Factors::reset`: audited `mfa_reset`, the
/// user is told).
pub async fn reset_factors(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id = views::parse_id(&id, "user")?;
    let outcome = async {
        if is_self(&admin, id) {
            return Err(not_yourself("reset the second factors of"));
        }
        let removed = state.factors.reset(admin.acting()?, id, &meta).await?;
        let factors = if removed == 1 { "factor" } else { "factors" };
        Ok(format!(
            "Removed {removed} second {factors} and the recovery codes; the user was told."
        ))
    }
    .await;
    Ok(done(&state, &admin, &format!("/admin/users/{id}"), outcome).await)
}
