//! Row mapping and the statements every area shares, written once for both
//! databases (see `sql.rs`).
//!
//! One mapper per record type. A row that does not hold what the schema
//! promises (an unparsable id, slug, key state or JSON document) is an
//! error naming the column, logged where it is found, never a silent
//! default: a corrupt row must not turn into a different tenant, an empty
//! metadata object or a retired key without anyone noticing.

use uuid::Uuid;

use super::sql::{Conn, Row, args, corrupt};
use super::{
    Factor, FactorKind, FactorMaterial, FactorSecret, KeyState, NewAuditEvent, Session, SigningKeyRecord, StoreResult,
    Tenant, User,
};
use crate::domain::assurance::AssuranceError;
use crate::domain::{Assurance, Email, Phone, TenantSlug};

/// The user columns, with the user's role names as one comma-separated
/// list (role names cannot hold a comma). A macro so statements elsewhere
/// can be `concat!`ed into constants.
macro_rules! user_columns {
    () => {
        "u.id, u.tenant_id, u.email, u.email_verified, u.phone, u.phone_verified, u.disabled, \
         u.metadata, u.created_at, u.updated_at, u.last_sign_in_at, u.credential_epoch, \
         (SELECT string_agg(r.name, ',') FROM user_roles ur JOIN roles r ON r.id = ur.role_id \
          WHERE ur.user_id = u.id) AS roles"
    };
}
pub(super) use user_columns;

const LOAD_USER: &str = concat!(
    "SELECT ",
    user_columns!(),
    " FROM users u WHERE u.tenant_id = $1 AND u.id = $2"
);

pub(super) fn user_from_row(row: &Row) -> StoreResult<User> {
    let roles: Option<String> = row.get("roles")?;
    Ok(User {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        email: row.get::<Option<String>>("email")?.map(Email::from_trusted),
        email_verified: row.get("email_verified")?,
        phone: row.get::<Option<String>>("phone")?.map(Phone::from_trusted),
        phone_verified: row.get("phone_verified")?,
        disabled: row.get("disabled")?,
        metadata: row.json("metadata")?,
        roles: sorted_roles(roles),
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        last_sign_in_at: row.get("last_sign_in_at")?,
        credential_epoch: row.get("credential_epoch")?,
    })
}

/// The roles list, sorted here rather than in SQL: an `ORDER BY` inside the
/// aggregate costs SQLite a temporary b-tree per listed user.
fn sorted_roles(list: Option<String>) -> Vec<String> {
    let mut roles: Vec<String> = list
        .map(|r| r.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    roles.sort();
    roles
}

pub(super) const SESSION_COLUMNS: &str = "s.id, s.tenant_id, s.user_id, s.created_at, s.last_used_at, s.expires_at, s.revoked_at, s.user_agent, s.ip, \
     s.amr, s.aal, s.client_id, s.sso_id, s.scope";

pub(super) fn session_from_row(row: &Row) -> StoreResult<Session> {
    Ok(Session {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        user_id: row.get("user_id")?,
        created_at: row.get("created_at")?,
        last_used_at: row.get("last_used_at")?,
        expires_at: row.get("expires_at")?,
        revoked_at: row.get("revoked_at")?,
        user_agent: row.get("user_agent")?,
        ip: row.get("ip")?,
        assurance: Assurance::from_columns(&row.get::<String>("amr")?, row.get("aal")?).map_err(|e| {
            let column = match e {
                AssuranceError::UnknownLevel => "aal",
                AssuranceError::UnknownMethod => "amr",
            };
            corrupt(column, &e.to_string())
        })?,
        client_id: row.get("client_id")?,
        sso_id: row.get("sso_id")?,
        scope: row.get("scope")?,
    })
}

pub(super) const KEY_COLUMNS: &str =
    "kid, algorithm, private_key, public_key, state, created_at, activated_at, retired_at";

pub(super) fn key_from_row(row: &Row) -> StoreResult<SigningKeyRecord> {
    let state: String = row.get("state")?;
    Ok(SigningKeyRecord {
        kid: row.get("kid")?,
        algorithm: row.get("algorithm")?,
        private_key: row.get("private_key")?,
        public_key: row.get("public_key")?,
        state: KeyState::parse(&state).ok_or_else(|| corrupt("state", "unknown key state"))?,
        created_at: row.get("created_at")?,
        activated_at: row.get("activated_at")?,
        retired_at: row.get("retired_at")?,
    })
}

pub(super) const TENANT_COLUMNS: &str = "id, slug, name, created_at";

pub(super) fn tenant_from_row(row: &Row) -> StoreResult<Tenant> {
    let slug: String = row.get("slug")?;
    Ok(Tenant {
        id: row.get("id")?,
        slug: TenantSlug::parse(&slug).map_err(|_| corrupt("slug", "not a valid tenant slug"))?,
        name: row.get("name")?,
        created_at: row.get("created_at")?,
    })
}

/// The listable columns of `factors f` (never a secret), for `concat!`.
macro_rules! factor_columns {
    () => {
        "f.id, f.tenant_id, f.user_id, f.kind, f.name, f.created_at, f.confirmed_at, f.last_used_at, f.credential_id"
    };
}
pub(super) use factor_columns;

/// [`factor_columns`] and what verifying a factor needs, for `concat!`.
macro_rules! factor_secret_columns {
    () => {
        concat!(factor_columns!(), ", f.totp_secret, f.totp_last_step, f.credential")
    };
}
pub(super) use factor_secret_columns;

pub(super) fn factor_from_row(row: &Row) -> StoreResult<Factor> {
    let kind: String = row.get("kind")?;
    Ok(Factor {
        id: row.get("id")?,
        tenant_id: row.get("tenant_id")?,
        user_id: row.get("user_id")?,
        kind: FactorKind::parse(&kind).ok_or_else(|| corrupt("kind", "unknown factor kind"))?,
        name: row.get("name")?,
        created_at: row.get("created_at")?,
        confirmed_at: row.get("confirmed_at")?,
        last_used_at: row.get("last_used_at")?,
        credential_id: row.get("credential_id")?,
    })
}

/// The row of [`factor_secret_columns`].
/// A factor missing what its kind needs, or with a corrupt credential, is an
/// error: it must not verify as anything.
pub(super) fn factor_secret_from_row(row: &Row) -> StoreResult<FactorSecret> {
    let factor = factor_from_row(row)?;
    let material = match factor.kind {
        FactorKind::Totp => FactorMaterial::Totp {
            sealed_secret: row.get("totp_secret")?,
            last_step: row.get("totp_last_step")?,
        },
        FactorKind::WebAuthn => FactorMaterial::WebAuthn {
            credential: row.json("credential")?,
        },
    };
    Ok(FactorSecret { factor, material })
}

pub(super) fn load_user(c: &mut dyn Conn, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<User>> {
    c.query_opt_map(LOAD_USER, &args![tenant_id, user_id], user_from_row)
}

pub(super) fn all_keys(c: &mut dyn Conn) -> StoreResult<Vec<SigningKeyRecord>> {
    let sql = format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY created_at, kid");
    c.query_map(&sql, &[], key_from_row)
}

/// Appends an audit row in the caller's transaction, so the action and its
/// record land together or not at all; the webhook events the row
/// announces are written with it (`webhooks::record_events`).
pub(super) fn insert_audit(c: &mut dyn Conn, e: &NewAuditEvent) -> StoreResult<()> {
    c.execute(
        "INSERT INTO audit_events (id, tenant_id, at, event, user_id, actor_id, ip, user_agent, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &args![
            Uuid::now_v7(),
            e.tenant_id,
            e.at,
            e.event.as_str(),
            e.user_id,
            e.actor_id,
            &e.ip,
            &e.user_agent,
            &e.detail,
        ],
    )?;
    super::webhooks::record_events(c, e)
}

/// Moves the user's credential epoch on, ending every session that records
/// the old one (the admin site's). Call it inside the transaction of the
/// event that ends the user's sessions.
pub(super) fn bump_credential_epoch(c: &mut dyn Conn, tenant_id: Uuid, user_id: Uuid) -> StoreResult<()> {
    c.execute(
        "UPDATE users SET credential_epoch = credential_epoch + 1 WHERE tenant_id = $1 AND id = $2",
        &args![tenant_id, user_id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::Value;

    #[test]
    fn a_corrupt_slug_is_an_error_not_the_default_tenant() {
        let row = Row::new(
            vec!["id".into(), "slug".into(), "name".into(), "created_at".into()].into(),
            vec![
                Value::Text(Uuid::nil().to_string()),
                Value::Text("NOT A SLUG!".into()),
                Value::Text("x".into()),
                Value::Int(0),
            ],
        );
        assert!(tenant_from_row(&row).is_err());
    }

    fn factor_row(kind: &str, secret: Value, credential: Value) -> Row {
        let id = Value::Text(Uuid::now_v7().to_string());
        Row::new(
            [
                "id",
                "tenant_id",
                "user_id",
                "kind",
                "name",
                "created_at",
                "confirmed_at",
                "last_used_at",
                "credential_id",
                "totp_secret",
                "totp_last_step",
                "credential",
            ]
            .map(String::from)
            .to_vec()
            .into(),
            vec![
                id.clone(),
                id.clone(),
                id,
                Value::Text(kind.into()),
                Value::Text("phone".into()),
                Value::Int(1),
                Value::Int(2),
                Value::Null(crate::store::sql::Kind::Int),
                Value::Text("cred".into()),
                secret,
                Value::Null(crate::store::sql::Kind::Int),
                credential,
            ],
        )
    }

    #[test]
    fn factor_rows_map_by_kind_and_refuse_what_the_kind_lacks() {
        use crate::store::sql::Kind;
        let totp =
            factor_secret_from_row(&factor_row("totp", Value::Bytes(vec![1, 2]), Value::Null(Kind::Text))).unwrap();
        assert!(
            matches!(totp.material, FactorMaterial::Totp { ref sealed_secret, last_step: None } if sealed_secret == &[1, 2])
        );
        assert!(!format!("{totp:?}").contains("[1, 2]"));
        let webauthn = factor_secret_from_row(&factor_row(
            "webauthn",
            Value::Null(Kind::Bytes),
            Value::Text("{\"a\":1}".into()),
        ))
        .unwrap();
        assert_eq!(webauthn.factor.kind, FactorKind::WebAuthn);
        // Corrupt JSON, a missing secret or an unknown kind is an error.
        assert!(
            factor_secret_from_row(&factor_row(
                "webauthn",
                Value::Null(Kind::Bytes),
                Value::Text("{".into())
            ))
            .is_err()
        );
        assert!(
            factor_secret_from_row(&factor_row("totp", Value::Null(Kind::Bytes), Value::Null(Kind::Text))).is_err()
        );
        assert!(factor_from_row(&factor_row("sms", Value::Bytes(vec![1]), Value::Null(Kind::Text))).is_err());
    }

    #[test]
    fn roles_come_sorted_whatever_order_the_database_aggregates_them_in() {
        assert_eq!(
            sorted_roles(Some("viewer,admin,editor".into())),
            ["admin", "editor", "viewer"]
        );
        assert!(sorted_roles(None).is_empty());
    }
}
