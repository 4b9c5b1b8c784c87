//! Roles of the tenant the pages show: list, create, edit permissions,
//! delete (never the built-in `admin`), all through `service::roles`, which
//! audits each change and invalidates cached permissions at once.
//!
//! Permissions are typed one per line (commas and spaces separate too), as
//! `resource:action` with `*` wildcards.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::guard::{Admin, done};
use super::users::ConfirmPage;
use super::views::{self, Layout, PageError, PageForm, page};
use crate::domain::RoleName;
use crate::error::{AppError, ErrorCode};
use crate::http::extract::ClientMeta;
use crate::service::roles;
use crate::state::AppState;

struct RoleRow {
    name: String,
    permissions: Vec<String>,
    builtin: bool,
    updated: String,
}

#[derive(Template)]
#[template(path = "site/roles.html")]
struct RolesPage {
    l: Layout,
    roles: Vec<RoleRow>,
}

/// `GET /admin/roles`.
pub async fn list(State(state): State<AppState>, Admin(admin): Admin) -> Result<Response, PageError> {
    let roles = state.roles.list(admin.viewing()).await?;
    Ok(page(&RolesPage {
        l: Layout::new(&admin, "roles", "Roles"),
        roles: roles
            .into_iter()
            .map(|r| RoleRow {
                name: r.name,
                permissions: r.permissions,
                builtin: r.builtin,
                updated: views::time(r.updated_at),
            })
            .collect(),
    }))
}

/// Splits the textarea into permission strings and parses them.
fn permissions(text: &str) -> Result<Vec<crate::domain::Permission>, AppError> {
    let items: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    roles::parse_permissions(&items)
}

fn name(raw: &str) -> Result<RoleName, AppError> {
    RoleName::parse(raw.trim()).map_err(|reason| AppError::validation("name", reason))
}

#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    permissions: String,
}

/// `POST /admin/roles`.
pub async fn create(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    PageForm(form): PageForm<CreateForm>,
) -> Result<Response, PageError> {
    let outcome = async {
        let name = name(&form.name)?;
        let permissions = permissions(&form.permissions)?;
        let role = state.roles.create(admin.acting()?, name, permissions, &meta).await?;
        Ok(role)
    }
    .await;
    Ok(match outcome {
        Ok(role) => {
            let to = format!("/admin/roles/{}", role.name);
            done(&state, &admin, &to, Ok(format!("Role {} created.", role.name))).await
        }
        Err(e) => done(&state, &admin, "/admin/roles", Err(e)).await,
    })
}

#[derive(Template)]
#[template(path = "site/role.html")]
struct RolePage {
    l: Layout,
    name: String,
    builtin: bool,
    permissions: String,
    created: String,
    updated: String,
}

/// `GET /admin/roles/{name}`: the role and its permissions form.
pub async fn show(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let role = state.roles.get(admin.viewing(), &raw).await?;
    Ok(page(&RolePage {
        l: Layout::new(&admin, "roles", format!("Role {}", role.name)),
        permissions: role.permissions.join("\n"),
        builtin: role.builtin,
        created: views::time(role.created_at),
        updated: views::time(role.updated_at),
        name: role.name,
    }))
}

#[derive(Deserialize)]
pub struct UpdateForm {
    #[serde(default)]
    permissions: String,
}

/// `POST /admin/roles/{name}`: replaces the role's permissions.
pub async fn update(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
    PageForm(form): PageForm<UpdateForm>,
) -> Result<Response, PageError> {
    let role = name(&raw).map_err(|_| AppError::not_found("role"))?;
    let outcome = async {
        let permissions = permissions(&form.permissions)?;
        state.roles.update(admin.acting()?, &role, permissions, &meta).await?;
        Ok(format!("Permissions of {role} saved; they apply at once."))
    }
    .await;
    Ok(done(&state, &admin, &format!("/admin/roles/{role}"), outcome).await)
}

/// `GET /admin/roles/{name}/delete`: asks first.
pub async fn confirm_delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let role = state.roles.get(admin.viewing(), &raw).await?;
    if role.builtin {
        return Err(PageError(AppError::forbidden(
            ErrorCode::BuiltinRole,
            format!("{} is a built-in role; it cannot be deleted", role.name),
        )));
    }
    Ok(page(&ConfirmPage {
        l: Layout::new(&admin, "roles", "Delete role"),
        heading: format!("Delete the role {}?", role.name),
        question: format!(
            "The role and its {} permission(s) will be deleted from tenant {}.",
            role.permissions.len(),
            admin.tenant().slug
        ),
        consequences: vec![
            "Every user holding it loses it, and its permissions, at once.".into(),
            "Access tokens already issued keep naming it until they expire, but forge no longer honours it.".into(),
        ],
        action: format!("/admin/roles/{}/delete", role.name),
        button: "Delete role".into(),
        cancel: format!("/admin/roles/{}", role.name),
    }))
}

/// `POST /admin/roles/{name}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Admin(admin): Admin,
    ClientMeta(meta): ClientMeta,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let role = name(&raw).map_err(|_| AppError::not_found("role"))?;
    let outcome = async {
        state.roles.delete(admin.acting()?, &role, &meta).await?;
        Ok(format!("Role {role} deleted."))
    }
    .await;
    Ok(match outcome {
        Ok(text) => done(&state, &admin, "/admin/roles", Ok(text)).await,
        Err(e) => done(&state, &admin, &format!("/admin/roles/{role}"), Err(e)).await,
    })
}
