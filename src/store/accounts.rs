//! The accounts port: tenants by slug, users and their credentials, sessions
//! and refresh tokens, signing keys, server secrets and audit writes.
//!
//! Written once, over either database (see `sql.rs`): `impl<D: Driver>
//! AccountStore for D`. Each method is one unit of work on one connection;
//! every write is one transaction that also appends its audit row, so an
//! action and its record land together or not at all. Every method that
//! touches user data takes a tenant id.
//!
//! The two reads every request makes when instances share state (a tenant
//! by slug, a user's access) are single statements outside an explicit
//! transaction: with the seam's typed parameters that is one round trip on
//! PostgreSQL. Races across instances are decided by single statements
//! (`UPDATE ... RETURNING` for refresh rotation, `ON CONFLICT` for
//! first-start secrets) or by `Conn::lock` where a check-then-insert must
//! run alone (the first signing key).
//!
//! The store keeps no business rule of its own. Refresh rotation is the
//! one place where a rule has to run between two statements of one
//! transaction: [`AccountStore::rotate_refresh`] claims the token with the
//! conditional `UPDATE`, passes what it found ([`RefreshClaim`]) to the
//! caller's [`RefreshRule`] (`service::sessions::decide_refresh`), and
//! applies the [`RefreshDecision`] before it commits. Which sessions a user
//! change ends is likewise said by the caller (`UserPatch::end_sessions`).
//!
//! The file is the whole accounts port (the trait, its rotation types and
//! the one implementation), hence its length; each part is short.

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::{
    KEY_COLUMNS, SESSION_COLUMNS, TENANT_COLUMNS, all_keys, bump_credential_epoch, insert_audit, load_user,
    session_from_row, tenant_from_row, user_columns, user_from_row,
};
use super::sql::{Conn, Driver, Row, args};
use super::{
    Access, EndSessions, IdentifierKind, NewAuditEvent, NewSession, NewUser, RotateRefresh, Session, SignIn,
    SigningKeyRecord, StoreError, StoreResult, Tenant, User, UserPatch,
};
use crate::domain::{Assurance, Identifier, RoleName, Timestamp};

/// What claiming a refresh token found, inside the rotation's transaction.
#[derive(Clone, Debug)]
pub enum RefreshClaim {
    /// No such token in the tenant, or it expired before it was rotated.
    Unknown,
    /// This call rotated the token: the conditional `UPDATE` matched it, so
    /// no concurrent call did.
    Won(ClaimedSession),
    /// The token was rotated before, at `rotated_at`. `successor_live` says
    /// whether the successor this call asks for is stored and still live.
    Spent {
        session: ClaimedSession,
        rotated_at: Timestamp,
        successor_live: bool,
    },
}

/// The session a refresh token belongs to, as the claim found it.
#[derive(Clone, Debug)]
pub struct ClaimedSession {
    pub session: Session,
    pub user_disabled: bool,
}

/// What the rotation does with a claim; the caller's [`RefreshRule`] says.
#[derive(Clone, Debug)]
pub enum RefreshDecision {
    /// Only after [`RefreshClaim::Won`]: store the successor, expiring at
    /// `expires_at`, slide the session to it, and record `audit`.
    Rotate {
        expires_at: Timestamp,
        audit: NewAuditEvent,
    },
    /// Only after [`RefreshClaim::Spent`]: hand back the successor already
    /// stored; nothing is written.
    Reissue,
    /// Revoke the session and record `audit`.
    Revoke { audit: NewAuditEvent },
    /// Nothing more is written (a won claim still leaves the token rotated).
    Refuse,
}

/// The use case's decision, run by the store between the claim and its
/// writes in one transaction. It may run more than once (PostgreSQL retries
/// a transaction that hit a serialization failure), so it must be pure.
pub type RefreshRule = Box<dyn Fn(&RefreshClaim) -> RefreshDecision + Send + Sync>;

/// What a refresh-token rotation did, for the caller to answer with.
#[derive(Debug)]
pub enum Rotation {
    /// [`RefreshDecision::Rotate`]: the successor is stored.
    Rotated { session: Session, user: User },
    /// [`RefreshDecision::Reissue`]: the caller gets that same successor again.
    WithinGrace { session: Session, user: User },
    /// [`RefreshDecision::Revoke`]: the session is now revoked.
    ReuseDetected { session_id: Uuid, user_id: Uuid },
    /// [`RefreshDecision::Refuse`].
    Invalid,
}

/// Tenants, users, credentials, sessions, keys and audit writes.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// A cheap round trip for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Connection pool state for `/metrics`: (open, idle).
    fn pool_state(&self) -> (u32, u32);

    // ---- tenants ----
    async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>>;
    /// The tenant with this id (an OAuth client names its tenant by id).
    async fn tenant_by_id(&self, tenant_id: Uuid) -> StoreResult<Option<Tenant>>;

    // ---- users and credentials ----
    /// Creates the user with its password, roles and (optionally) its first
    /// session, and writes the audit row. Conflict{email|phone} when taken.
    async fn create_user(&self, new: NewUser, session: Option<NewSession>, audit: NewAuditEvent) -> StoreResult<User>;
    async fn get_user(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<User>>;
    /// The user and their password hash (if they have one) for a sign-in.
    async fn find_for_login(
        &self,
        tenant_id: Uuid,
        identifier: &Identifier,
    ) -> StoreResult<Option<(User, Option<String>)>>;
    /// Records a successful sign-in: new session, last_sign_in_at, optional
    /// password rehash, audit row. Returns the updated user and when they
    /// signed in before this (`None` for a first sign-in).
    async fn sign_in(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        sign_in: SignIn,
        audit: NewAuditEvent,
    ) -> StoreResult<(User, Option<Timestamp>)>;
    /// Records a sign-in whose session lives outside the database (the
    /// hosted pages', the admin site's): last_sign_in_at and the audit row.
    /// Returns when the user signed in before this; `NotFound` without
    /// such a user.
    async fn record_sign_in(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Option<Timestamp>>;
    /// The user's password hash, if they have a password.
    async fn password_hash(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<String>>;
    /// Applies the patch, and ends the sessions `patch.end_sessions` names,
    /// in one transaction.
    async fn update_user(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        patch: UserPatch,
        audit: NewAuditEvent,
    ) -> StoreResult<User>;
    /// Deletes the user (sessions and credentials cascade); returns the ids of
    /// the sessions that were live so the caller can deny their access tokens.
    async fn delete_user(&self, tenant_id: Uuid, user_id: Uuid, audit: NewAuditEvent) -> StoreResult<Vec<Uuid>>;

    /// Current roles and permissions of a user; None if the user is gone.
    async fn access_of(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<Access>>;

    // ---- sessions and refresh tokens ----
    /// Claims the presented refresh token with one conditional `UPDATE`
    /// (which decides a concurrent refresh), asks `rule` what to do with
    /// what it found, and does it, all in one transaction.
    async fn rotate_refresh(&self, req: RotateRefresh, rule: RefreshRule) -> StoreResult<Rotation>;
    async fn session_by_refresh(&self, tenant_id: Uuid, token_hash: &str) -> StoreResult<Option<Session>>;
    async fn list_sessions(&self, tenant_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<Vec<Session>>;
    /// The live sessions opened from hosted (SSO) session `sso_id`: the
    /// client sessions an OpenID Connect logout of it ends.
    async fn sessions_of_sso(&self, tenant_id: Uuid, sso_id: Uuid, now: Timestamp) -> StoreResult<Vec<Session>>;
    /// Revokes one session of the user at `now`; false if it was not theirs
    /// or not live. (`now` is stored: the deny list is refilled from it.)
    async fn revoke_session(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        session_id: Uuid,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<bool>;
    /// Signs the user out everywhere: revokes all live sessions except
    /// `keep` and bumps the user's credential epoch (which ends their
    /// admin-site sessions) in one transaction; returns the revoked ids.
    /// Callers should use `service::sessions::sign_out_everywhere`, which
    /// also puts the revoked sessions on the deny list.
    async fn revoke_sessions(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<Vec<Uuid>>;
    /// One session of the user, if it is live at `now` (not revoked, not
    /// expired).
    async fn live_session(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        session_id: Uuid,
        now: Timestamp,
    ) -> StoreResult<Option<Session>>;
    /// Compare-and-set of a live session's assurance: sets it to `to` only
    /// if it still is `from` (so two concurrent step-ups never lose one
    /// another's methods: the loser sees `false`, reads again and retries),
    /// and writes `audit` in the same transaction. False when the session
    /// is not the user's, not live, or no longer at `from`. The refresh
    /// grant carries whatever was set into every later access token.
    #[allow(clippy::too_many_arguments)]
    async fn set_session_assurance(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        session_id: Uuid,
        from: Assurance,
        to: Assurance,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<bool>;
    /// Sessions revoked and users disabled since `since`, to rebuild the
    /// in-memory deny list after a restart.
    async fn revoked_since(&self, since: Timestamp) -> StoreResult<(Vec<Uuid>, Vec<Uuid>)>;

    // ---- keys and server secrets ----
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Inserts a key unless one of the same algorithm in the same state
    /// exists already (first start of several instances at once creates
    /// exactly one). Returns all keys.
    async fn insert_signing_key_if_absent(&self, key: SigningKeyRecord) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Returns the named secret, creating it from `candidate` if absent.
    async fn server_secret(&self, name: &str, candidate: Vec<u8>, now: Timestamp) -> StoreResult<Vec<u8>>;

    // ---- audit ----
    async fn record_audit(&self, event: NewAuditEvent) -> StoreResult<()>;
    async fn count_users(&self) -> StoreResult<u64>;
}

/// When the user last signed in, read inside the transaction that records
/// a new sign-in; `NotFound` without such a user.
fn previous_sign_in(c: &mut dyn Conn, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<Timestamp>> {
    c.query_opt_map(
        "SELECT last_sign_in_at FROM users WHERE tenant_id = $1 AND id = $2",
        &args![tenant_id, user_id],
        |r| r.at(0),
    )?
    .ok_or(StoreError::NotFound)
}

// ---- the one implementation, over either database (see `sql.rs`) ----

/// A user and their password hash by an identifier, for a sign-in.
macro_rules! find_by {
    ($column:literal) => {
        concat!(
            "SELECT ",
            user_columns!(),
            ", pc.hash FROM users u LEFT JOIN password_credentials pc ON pc.user_id = u.id \
             WHERE u.tenant_id = $1 AND u.",
            $column,
            " = $2"
        )
    };
}
const FIND_BY_EMAIL: &str = find_by!("email");
const FIND_BY_PHONE: &str = find_by!("phone");

/// One statement (one snapshot) on the hot path: no row when the user is
/// gone, one row with a NULL name when they hold no role.
const ACCESS_OF: &str = "SELECT r.name, r.permissions FROM users u \
     LEFT JOIN user_roles ur ON ur.user_id = u.id AND ur.tenant_id = u.tenant_id \
     LEFT JOIN roles r ON r.id = ur.role_id \
     WHERE u.tenant_id = $1 AND u.id = $2 ORDER BY r.name";

/// A user's access from the rows of [`ACCESS_OF`]; `None` when there are none.
fn access_from_rows(rows: &[Row]) -> StoreResult<Option<Access>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut access = Access::default();
    for row in rows {
        let Some(name) = row.get::<Option<String>>("name")? else {
            continue;
        };
        access.permissions.extend(row.json::<Vec<String>>("permissions")?);
        access.roles.push(name);
    }
    access.permissions.sort();
    access.permissions.dedup();
    Ok(Some(access))
}

/// A session with its user's `disabled` flag, from `sessions s JOIN users u`.
fn claimed_from_row(row: &Row) -> StoreResult<ClaimedSession> {
    Ok(ClaimedSession {
        session: session_from_row(row)?,
        user_disabled: row.get("user_disabled")?,
    })
}

/// The claim. The first statement decides who wins a concurrent refresh: on
/// PostgreSQL a second rotation waits for the row lock, then finds
/// `rotated_at` set and matches nothing; on SQLite the single writer runs
/// them one after the other. A loser (or a replayed token) reads what the
/// winner left: when the token was rotated and whether the successor lives.
/// Both statements match only a token of the presenting client's sessions
/// (`IS NOT DISTINCT FROM`: `NULL` for forge's own API), so checking the
/// client costs no read of its own.
fn claim_refresh(c: &mut dyn Conn, req: &RotateRefresh) -> StoreResult<RefreshClaim> {
    let won: Option<Uuid> = c.query_opt_map(
        "UPDATE refresh_tokens SET rotated_at = $3 \
         WHERE token_hash = $1 AND tenant_id = $2 AND rotated_at IS NULL AND expires_at > $3 \
         AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = refresh_tokens.session_id \
                     AND s.client_id IS NOT DISTINCT FROM $4) \
         RETURNING session_id",
        &args![&req.old_hash, req.tenant_id, req.now, &req.client_id],
        |r| r.get("session_id"),
    )?;
    if let Some(session_id) = won {
        let sql = format!(
            "SELECT {SESSION_COLUMNS}, u.disabled AS user_disabled FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.id = $1 AND s.tenant_id = $2"
        );
        let claimed = c.query_opt_map(&sql, &args![session_id, req.tenant_id], claimed_from_row)?;
        return Ok(claimed.map_or(RefreshClaim::Unknown, RefreshClaim::Won));
    }
    let sql = format!(
        "SELECT rt.rotated_at, {SESSION_COLUMNS}, u.disabled AS user_disabled, \
         EXISTS (SELECT 1 FROM refresh_tokens n WHERE n.token_hash = $3 AND n.session_id = s.id \
                 AND n.rotated_at IS NULL AND n.expires_at > $4) AS successor_live \
         FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id JOIN users u ON u.id = s.user_id \
         WHERE rt.token_hash = $1 AND rt.tenant_id = $2 AND rt.rotated_at IS NOT NULL \
         AND s.client_id IS NOT DISTINCT FROM $5"
    );
    let spent = c.query_opt_map(
        &sql,
        &args![&req.old_hash, req.tenant_id, &req.new_hash, req.now, &req.client_id],
        |r| {
            Ok(RefreshClaim::Spent {
                session: claimed_from_row(r)?,
                rotated_at: r.get("rotated_at")?,
                successor_live: r.get("successor_live")?,
            })
        },
    )?;
    Ok(spent.unwrap_or(RefreshClaim::Unknown))
}

/// Does what the rule decided, in the claim's transaction.
fn apply_refresh(
    c: &mut dyn Conn,
    req: &RotateRefresh,
    claim: RefreshClaim,
    decision: RefreshDecision,
) -> StoreResult<Rotation> {
    match (claim, decision) {
        (_, RefreshDecision::Refuse) => Ok(Rotation::Invalid),
        (RefreshClaim::Won(ClaimedSession { session, .. }), RefreshDecision::Rotate { expires_at, audit }) => {
            c.execute(
                "INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &args![&req.new_hash, session.id, req.tenant_id, req.now, expires_at],
            )?;
            c.execute(
                "UPDATE sessions SET last_used_at = $2, expires_at = $3, ip = COALESCE($4, ip), \
                 user_agent = COALESCE($5, user_agent) WHERE id = $1",
                &args![session.id, req.now, expires_at, &req.ip, &req.user_agent],
            )?;
            insert_audit(c, &audit)?;
            let user = load_user(c, req.tenant_id, session.user_id)?.ok_or(StoreError::NotFound)?;
            Ok(Rotation::Rotated { session, user })
        }
        (RefreshClaim::Spent { session, .. }, RefreshDecision::Reissue) => {
            let session = session.session;
            let user = load_user(c, req.tenant_id, session.user_id)?.ok_or(StoreError::NotFound)?;
            Ok(Rotation::WithinGrace { session, user })
        }
        (
            RefreshClaim::Won(ClaimedSession { session, .. })
            | RefreshClaim::Spent {
                session: ClaimedSession { session, .. },
                ..
            },
            RefreshDecision::Revoke { audit },
        ) => {
            c.execute(
                "UPDATE sessions SET revoked_at = $2 WHERE id = $1",
                &args![session.id, req.now],
            )?;
            insert_audit(c, &audit)?;
            Ok(Rotation::ReuseDetected {
                session_id: session.id,
                user_id: session.user_id,
            })
        }
        (claim, decision) => Err(StoreError::Internal(anyhow::anyhow!(
            "refresh rule answered {decision:?} to {claim:?}"
        ))),
    }
}

fn insert_session(c: &mut dyn Conn, tenant_id: Uuid, user_id: Uuid, s: &NewSession) -> StoreResult<()> {
    c.execute(
        "INSERT INTO sessions (id, tenant_id, user_id, created_at, last_used_at, expires_at, user_agent, ip, amr, aal, \
         client_id, sso_id, scope) VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &args![
            s.id,
            tenant_id,
            user_id,
            s.now,
            s.expires_at,
            &s.user_agent,
            &s.ip,
            s.assurance.amr_column(),
            i64::from(s.assurance.aal.as_u8()),
            &s.client_id,
            s.sso_id,
            &s.scope,
        ],
    )?;
    c.execute(
        "INSERT INTO refresh_tokens (token_hash, session_id, tenant_id, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
        &args![&s.refresh_hash, s.id, tenant_id, s.now, s.expires_at],
    )?;
    Ok(())
}

/// Grants the named roles; `NotFound` when one does not exist in the tenant
/// (or is listed twice: `ON CONFLICT DO NOTHING` then changes no row).
pub(super) fn set_roles(
    c: &mut dyn Conn,
    tenant_id: Uuid,
    user_id: Uuid,
    roles: &[RoleName],
    now: Timestamp,
) -> StoreResult<()> {
    for role in roles {
        let n = c.execute(
            "INSERT INTO user_roles (user_id, role_id, tenant_id, created_at) \
             SELECT $1, id, tenant_id, $3 FROM roles WHERE tenant_id = $2 AND name = $4 \
             ON CONFLICT DO NOTHING",
            &args![user_id, tenant_id, now, role.as_str()],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
    }
    Ok(())
}

/// Revokes the user's live sessions (all but `keep`); returns their ids.
fn revoke_where(
    c: &mut dyn Conn,
    tenant_id: Uuid,
    user_id: Uuid,
    keep: Option<Uuid>,
    now: Timestamp,
) -> StoreResult<Vec<Uuid>> {
    c.query_ids(
        "UPDATE sessions SET revoked_at = $3 \
         WHERE tenant_id = $1 AND user_id = $2 AND revoked_at IS NULL AND ($4 IS NULL OR id <> $4) \
         RETURNING id",
        &args![tenant_id, user_id, now, keep],
    )
}

#[async_trait]
impl<D: Driver> AccountStore for D {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query("SELECT 1", &[]).map(drop)).await
    }

    fn pool_state(&self) -> (u32, u32) {
        self.connections()
    }

    async fn tenant_by_slug(&self, slug: &str) -> StoreResult<Option<Tenant>> {
        let slug = slug.to_owned();
        self.lookup(move |c| {
            let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE slug = $1");
            c.query_opt_map(&sql, &args![&slug], tenant_from_row)
        })
        .await
    }

    async fn tenant_by_id(&self, tenant_id: Uuid) -> StoreResult<Option<Tenant>> {
        self.lookup(move |c| {
            let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
            c.query_opt_map(&sql, &args![tenant_id], tenant_from_row)
        })
        .await
    }

    async fn create_user(&self, new: NewUser, session: Option<NewSession>, audit: NewAuditEvent) -> StoreResult<User> {
        self.write(move |c| {
            c.execute(
                "INSERT INTO users (id, tenant_id, email, email_verified, phone, phone_verified, metadata, \
                 created_at, updated_at, last_sign_in_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)",
                &args![
                    new.id,
                    new.tenant_id,
                    new.email.as_ref().map(|e| e.as_str()),
                    new.email_verified,
                    new.phone.as_ref().map(|p| p.as_str()),
                    new.phone_verified,
                    &new.metadata,
                    new.now,
                    session.as_ref().map(|_| new.now),
                ],
            )?;
            if let Some(hash) = &new.password_hash {
                c.execute(
                    "INSERT INTO password_credentials (user_id, tenant_id, hash, updated_at) VALUES ($1, $2, $3, $4)",
                    &args![new.id, new.tenant_id, hash, new.now],
                )?;
            }
            set_roles(c, new.tenant_id, new.id, &new.roles, new.now)?;
            if let Some(s) = &session {
                insert_session(c, new.tenant_id, new.id, s)?;
            }
            insert_audit(c, &audit)?;
            load_user(c, new.tenant_id, new.id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn get_user(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<User>> {
        self.lookup(move |c| load_user(c, tenant_id, user_id)).await
    }

    async fn find_for_login(
        &self,
        tenant_id: Uuid,
        identifier: &Identifier,
    ) -> StoreResult<Option<(User, Option<String>)>> {
        let sql = match identifier {
            Identifier::Email(_) => FIND_BY_EMAIL,
            Identifier::Phone(_) => FIND_BY_PHONE,
        };
        let value = identifier.as_str().to_owned();
        self.read(move |c| {
            c.query_opt_map(sql, &args![tenant_id, &value], |row| {
                Ok((user_from_row(row)?, row.get("hash")?))
            })
        })
        .await
    }

    async fn sign_in(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        sign_in: SignIn,
        audit: NewAuditEvent,
    ) -> StoreResult<(User, Option<Timestamp>)> {
        self.write(move |c| {
            let SignIn {
                session,
                rehash,
                verified,
            } = &sign_in;
            let before = previous_sign_in(c, tenant_id, user_id)?;
            let email = *verified == Some(IdentifierKind::Email);
            let phone = *verified == Some(IdentifierKind::Phone);
            // A proof of an identifier marks it verified (and is a change of
            // the user); the sign-in alone is not.
            let n = c.execute(
                "UPDATE users SET last_sign_in_at = $3, \
                 email_verified = CASE WHEN $4 THEN TRUE ELSE email_verified END, \
                 phone_verified = CASE WHEN $5 THEN TRUE ELSE phone_verified END, \
                 updated_at = CASE WHEN $4 OR $5 THEN $3 ELSE updated_at END \
                 WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, user_id, session.now, email, phone],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            if let Some(hash) = rehash {
                c.execute(
                    "UPDATE password_credentials SET hash = $2, updated_at = $3 WHERE user_id = $1",
                    &args![user_id, hash, session.now],
                )?;
            }
            insert_session(c, tenant_id, user_id, session)?;
            insert_audit(c, &audit)?;
            let user = load_user(c, tenant_id, user_id)?.ok_or(StoreError::NotFound)?;
            Ok((user, before))
        })
        .await
    }

    async fn record_sign_in(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<Option<Timestamp>> {
        self.write(move |c| {
            let before = previous_sign_in(c, tenant_id, user_id)?;
            c.execute(
                "UPDATE users SET last_sign_in_at = $3 WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, user_id, now],
            )?;
            insert_audit(c, &audit)?;
            Ok(before)
        })
        .await
    }

    async fn password_hash(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<String>> {
        self.read(move |c| {
            c.query_opt_map(
                "SELECT hash FROM password_credentials WHERE tenant_id = $1 AND user_id = $2",
                &args![tenant_id, user_id],
                |r| r.get("hash"),
            )
        })
        .await
    }

    async fn update_user(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        patch: UserPatch,
        audit: NewAuditEvent,
    ) -> StoreResult<User> {
        self.write(move |c| {
            let bump = patch.end_sessions != EndSessions::None;
            // One statement: the row is locked for the rest of the
            // transaction, so concurrent patches of one user apply one after
            // the other. A field left alone keeps its value.
            let n = c.execute(
                "UPDATE users SET \
                 email = CASE WHEN $3 THEN $4 ELSE email END, \
                 email_verified = COALESCE($5, email_verified), \
                 phone = CASE WHEN $6 THEN $7 ELSE phone END, \
                 phone_verified = COALESCE($8, phone_verified), \
                 disabled = COALESCE($9, disabled), \
                 metadata = COALESCE($10, metadata), \
                 updated_at = $11, \
                 credential_epoch = credential_epoch + CASE WHEN $12 THEN 1 ELSE 0 END \
                 WHERE tenant_id = $1 AND id = $2",
                &args![
                    tenant_id,
                    user_id,
                    patch.email.is_some(),
                    patch.email.as_ref().and_then(|e| e.as_ref().map(|e| e.as_str())),
                    patch.email_verified,
                    patch.phone.is_some(),
                    patch.phone.as_ref().and_then(|p| p.as_ref().map(|p| p.as_str())),
                    patch.phone_verified,
                    patch.disabled,
                    &patch.metadata,
                    patch.now,
                    bump,
                ],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            match &patch.password_hash {
                Some(Some(hash)) => {
                    c.execute(
                        "INSERT INTO password_credentials (user_id, tenant_id, hash, updated_at) \
                         VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at",
                        &args![user_id, tenant_id, hash, patch.now],
                    )?;
                }
                Some(None) => {
                    c.execute(
                        "DELETE FROM password_credentials WHERE user_id = $1 AND tenant_id = $2",
                        &args![user_id, tenant_id],
                    )?;
                }
                None => {}
            }
            if patch.end_sessions == EndSessions::All {
                revoke_where(c, tenant_id, user_id, None, patch.now)?;
            }
            insert_audit(c, &audit)?;
            load_user(c, tenant_id, user_id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn delete_user(&self, tenant_id: Uuid, user_id: Uuid, audit: NewAuditEvent) -> StoreResult<Vec<Uuid>> {
        self.write(move |c| {
            let live = revoke_where(c, tenant_id, user_id, None, audit.at)?;
            let n = c.execute(
                "DELETE FROM users WHERE tenant_id = $1 AND id = $2",
                &args![tenant_id, user_id],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            // The cascade took the session rows: the tombstone is what keeps
            // the user's tokens denied after a restart (see `revoked_since`).
            c.execute(
                "INSERT INTO deleted_users (user_id, tenant_id, deleted_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (user_id) DO UPDATE SET deleted_at = excluded.deleted_at",
                &args![user_id, tenant_id, audit.at],
            )?;
            insert_audit(c, &audit)?;
            Ok(live)
        })
        .await
    }

    async fn access_of(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Option<Access>> {
        self.lookup(move |c| access_from_rows(&c.query(ACCESS_OF, &args![tenant_id, user_id])?))
            .await
    }

    async fn rotate_refresh(&self, req: RotateRefresh, rule: RefreshRule) -> StoreResult<Rotation> {
        self.write(move |c| {
            let claim = claim_refresh(c, &req)?;
            let decision = rule(&claim);
            apply_refresh(c, &req, claim, decision)
        })
        .await
    }

    async fn session_by_refresh(&self, tenant_id: Uuid, token_hash: &str) -> StoreResult<Option<Session>> {
        let token_hash = token_hash.to_owned();
        self.lookup(move |c| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM refresh_tokens rt JOIN sessions s ON s.id = rt.session_id \
                 WHERE rt.token_hash = $1 AND rt.tenant_id = $2"
            );
            c.query_opt_map(&sql, &args![&token_hash, tenant_id], session_from_row)
        })
        .await
    }

    async fn list_sessions(&self, tenant_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<Vec<Session>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s \
                 WHERE s.tenant_id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3 \
                 ORDER BY s.created_at DESC, s.id DESC"
            );
            c.query_map(&sql, &args![tenant_id, user_id, now], session_from_row)
        })
        .await
    }

    async fn sessions_of_sso(&self, tenant_id: Uuid, sso_id: Uuid, now: Timestamp) -> StoreResult<Vec<Session>> {
        self.read(move |c| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s \
                 WHERE s.tenant_id = $1 AND s.sso_id = $2 AND s.revoked_at IS NULL AND s.expires_at > $3 \
                 ORDER BY s.created_at, s.id"
            );
            c.query_map(&sql, &args![tenant_id, sso_id, now], session_from_row)
        })
        .await
    }

    async fn revoke_session(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        session_id: Uuid,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE sessions SET revoked_at = $4 \
                 WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND revoked_at IS NULL",
                &args![tenant_id, user_id, session_id, now],
            )?;
            if n > 0
                && let Some(a) = &audit
            {
                insert_audit(c, a)?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn revoke_sessions(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        keep: Option<Uuid>,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<Vec<Uuid>> {
        self.write(move |c| {
            let ids = revoke_where(c, tenant_id, user_id, keep, now)?;
            bump_credential_epoch(c, tenant_id, user_id)?;
            if let Some(a) = &audit {
                insert_audit(c, a)?;
            }
            Ok(ids)
        })
        .await
    }

    async fn live_session(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        session_id: Uuid,
        now: Timestamp,
    ) -> StoreResult<Option<Session>> {
        self.lookup(move |c| {
            let sql = format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s \
                 WHERE s.tenant_id = $1 AND s.user_id = $2 AND s.id = $3 \
                 AND s.revoked_at IS NULL AND s.expires_at > $4"
            );
            c.query_opt_map(&sql, &args![tenant_id, user_id, session_id, now], session_from_row)
        })
        .await
    }

    async fn set_session_assurance(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        session_id: Uuid,
        from: Assurance,
        to: Assurance,
        now: Timestamp,
        audit: Option<NewAuditEvent>,
    ) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE sessions SET amr = $5, aal = $6 \
                 WHERE tenant_id = $1 AND user_id = $2 AND id = $3 \
                 AND revoked_at IS NULL AND expires_at > $4 AND amr = $7 AND aal = $8",
                &args![
                    tenant_id,
                    user_id,
                    session_id,
                    now,
                    to.amr_column(),
                    i64::from(to.aal.as_u8()),
                    from.amr_column(),
                    i64::from(from.aal.as_u8()),
                ],
            )?;
            if n > 0
                && let Some(a) = &audit
            {
                insert_audit(c, a)?;
            }
            Ok(n > 0)
        })
        .await
    }

    async fn revoked_since(&self, since: Timestamp) -> StoreResult<(Vec<Uuid>, Vec<Uuid>)> {
        self.read(move |c| {
            let sessions = c.query_ids(
                "SELECT id FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at >= $1",
                &args![since],
            )?;
            let users = c.query_ids(
                "SELECT id FROM users WHERE disabled = TRUE AND updated_at >= $1 \
                 UNION SELECT user_id FROM deleted_users WHERE deleted_at >= $1",
                &args![since],
            )?;
            Ok((sessions, users))
        })
        .await
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        self.read(all_keys).await
    }

    async fn insert_signing_key_if_absent(&self, key: SigningKeyRecord) -> StoreResult<Vec<SigningKeyRecord>> {
        self.write(move |c| {
            // Instances starting together create exactly one key per
            // algorithm and state.
            c.lock("signing_keys")?;
            let exists: bool = c.query_value(
                "SELECT EXISTS (SELECT 1 FROM signing_keys WHERE state = $1 AND algorithm = $2)",
                &args![key.state.as_str(), &key.algorithm],
            )?;
            if !exists {
                let sql = format!("INSERT INTO signing_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
                c.execute(
                    &sql,
                    &args![
                        &key.kid,
                        &key.algorithm,
                        &key.private_key,
                        &key.public_key,
                        key.state.as_str(),
                        key.created_at,
                        key.activated_at,
                        key.retired_at,
                    ],
                )?;
            }
            all_keys(c)
        })
        .await
    }

    async fn server_secret(&self, name: &str, candidate: Vec<u8>, now: Timestamp) -> StoreResult<Vec<u8>> {
        let name = name.to_owned();
        self.write(move |c| {
            c.execute(
                "INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
                &args![&name, &candidate, now],
            )?;
            c.query_value("SELECT value FROM server_secrets WHERE name = $1", &args![&name])
        })
        .await
    }

    async fn record_audit(&self, event: NewAuditEvent) -> StoreResult<()> {
        self.write(move |c| insert_audit(c, &event)).await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.read(|c| c.query_value("SELECT COUNT(*) FROM users", &[])).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DEFAULT_TENANT_ID;
    use crate::store::sqlite::SqliteStore;

    /// A role whose permissions do not parse must not grant "nothing" (or
    /// anything): the request fails and the row is logged.
    #[tokio::test]
    async fn a_corrupt_permissions_list_is_an_error_not_an_empty_one() {
        let store = SqliteStore::open("sqlite::memory:", 2).unwrap();
        let user = Uuid::now_v7();
        store
            .write(move |c| {
                c.execute(
                    "INSERT INTO users (id, tenant_id, email, metadata, created_at, updated_at) \
                     VALUES ($1, $2, 'x@example.com', '{}', 0, 0)",
                    &args![user, DEFAULT_TENANT_ID],
                )?;
                c.execute(
                    "UPDATE roles SET permissions = '[\"users:read\"' WHERE tenant_id = $1 AND name = 'admin'",
                    &args![DEFAULT_TENANT_ID],
                )?;
                set_roles(c, DEFAULT_TENANT_ID, user, &[RoleName::parse("admin").unwrap()], 0)
            })
            .await
            .unwrap();
        assert!(store.access_of(DEFAULT_TENANT_ID, user).await.is_err());
        assert!(store.get_user(DEFAULT_TENANT_ID, user).await.unwrap().is_some());
    }
}
