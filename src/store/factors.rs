//! The second-factor port: TOTP and WebAuthn factors, recovery codes and the
//! moment an MFA policy first applied to a user.
//!
//! Written once, over either database (see `sql.rs`): `impl<D: Driver>
//! FactorStore for D`. The store keeps what the use cases must decide
//! atomically and nothing else:
//!
//! - **Replay.** [`FactorStore::advance_totp_step`] is one conditional
//!   `UPDATE ... WHERE totp_last_step IS NULL OR totp_last_step < $step`: of
//!   two concurrent sign-ins with the same code exactly one moves the step
//!   on, and a code of an earlier step never matches again.
//!   [`FactorStore::use_recovery_code`] is likewise one `UPDATE ... WHERE
//!   used_at IS NULL`.
//! - **First factor.** [`FactorStore::confirm_factor`] says whether the
//!   factor is the user's first confirmed one and, if so, stores the
//!   recovery codes in the same transaction, so the codes shown to the user
//!   are exactly the ones stored.
//! - **Last factor.** [`FactorStore::remove_factor`] counts and deletes in
//!   one transaction: under a policy that requires a factor (`keep_one`) the
//!   last confirmed factor is refused, even against a concurrent removal of
//!   the other one. Removing the last factor also deletes the recovery
//!   codes, which are worthless without one.
//!
//! These per-user decisions hold `Conn::lock("factors:<user>")` (a
//! PostgreSQL advisory lock; SQLite's single writer is alone already), so
//! two transactions of one user's factors never interleave.
//!
//! Secrets: the listing type [`Factor`] carries no secret; the sealed TOTP
//! secret and the WebAuthn credential come only from the methods that return
//! a [`FactorSecret`], whose `Debug` prints neither. The store never sees a
//! TOTP secret in clear (the caller seals it with `crypto::seal`, the factor
//! id as associated data) nor a recovery code (only its keyed hash, see
//! `crypto::recovery_codes`).

use async_trait::async_trait;
use uuid::Uuid;

use super::rows::{factor_columns, factor_from_row, factor_secret_columns, factor_secret_from_row, insert_audit};
use super::sql::{Conn, Driver, args};
use super::{NewAuditEvent, StoreError, StoreResult};
use crate::domain::Timestamp;

/// The kind of a second factor, as stored in `factors.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FactorKind {
    Totp,
    WebAuthn,
}

impl FactorKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            FactorKind::Totp => "totp",
            FactorKind::WebAuthn => "webauthn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "totp" => Some(FactorKind::Totp),
            "webauthn" => Some(FactorKind::WebAuthn),
            _ => None,
        }
    }
}

/// A factor as it may be listed: never a secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Factor {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub kind: FactorKind,
    pub name: String,
    pub created_at: Timestamp,
    /// `None`: a pending enrolment, not usable for sign-in.
    pub confirmed_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    /// A WebAuthn credential's id, base64url without padding (public: the
    /// browser sends it, `allowCredentials` lists it). `None` for TOTP.
    pub credential_id: Option<String>,
}

impl Factor {
    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

/// What verifying a factor needs: the sealed TOTP secret with the last step
/// accepted, or the WebAuthn credential.
#[derive(Clone)]
pub enum FactorMaterial {
    Totp {
        /// `crypto::seal` output, the factor id as associated data.
        sealed_secret: Vec<u8>,
        /// The newest time step ever accepted, if any.
        last_step: Option<i64>,
    },
    WebAuthn {
        /// The relying-party crate's serialised credential, opaque here.
        credential: serde_json::Value,
    },
}

/// A factor with what verifying it needs. `Debug` shows the factor only.
#[derive(Clone)]
pub struct FactorSecret {
    pub factor: Factor,
    pub material: FactorMaterial,
}

impl std::fmt::Debug for FactorSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactorSecret")
            .field("factor", &self.factor)
            .field("material", &"***")
            .finish()
    }
}

/// What a new factor is made of.
#[derive(Clone)]
pub enum NewFactorMaterial {
    Totp {
        sealed_secret: Vec<u8>,
    },
    WebAuthn {
        /// base64url without padding; unique per tenant
        /// (`Conflict{credential_id}` otherwise).
        credential_id: String,
        credential: serde_json::Value,
    },
}

/// A factor to store. The caller chooses the id, because the TOTP secret is
/// sealed with it as associated data before the row exists.
#[derive(Clone)]
pub struct NewFactor {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub now: Timestamp,
    pub material: NewFactorMaterial,
}

impl std::fmt::Debug for NewFactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewFactor")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("user_id", &self.user_id)
            .field("name", &self.name)
            .field("material", &"***")
            .finish()
    }
}

/// How a factor becomes usable.
#[derive(Clone, Debug)]
pub struct ConfirmFactor {
    pub now: Timestamp,
    /// For TOTP: the step of the code that confirmed it, recorded as used so
    /// that code cannot sign in afterwards.
    pub totp_step: Option<i64>,
    /// Keyed hashes of the recovery codes to store when this turns out to be
    /// the user's first confirmed factor (ignored otherwise). The caller
    /// generates them up front and shows them only when `first` comes back.
    pub recovery_code_hashes: Vec<String>,
    /// The `mfa_enrolled` row.
    pub audit: NewAuditEvent,
}

/// A confirmed factor, and whether it is the user's first.
#[derive(Clone, Debug)]
pub struct Confirmed {
    pub factor: Factor,
    /// The user had no other confirmed factor: the recovery codes were
    /// stored (replacing any left over) and are to be shown.
    pub first: bool,
}

/// What [`FactorStore::remove_factor`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Removal {
    /// Deleted; `was_last`: it was the user's last confirmed factor (the
    /// recovery codes went with it).
    Removed { was_last: bool },
    /// Refused: the last confirmed factor, and the caller said one must stay.
    RefusedLast,
}

/// The user's recovery codes at a glance (a listing's item).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryCodeSummary {
    /// Unused codes.
    pub remaining: u64,
    /// When the current set was stored (they are stored together).
    pub created_at: Option<Timestamp>,
    /// When a code of the current set was last spent.
    pub last_used_at: Option<Timestamp>,
}

/// Second factors, recovery codes and the policy's due date.
#[async_trait]
pub trait FactorStore: Send + Sync + 'static {
    // ---- enrolment ----
    /// Stores a pending factor (`confirmed_at` NULL, not usable). `NotFound`
    /// when the user does not exist in the tenant; `Conflict{credential_id}`
    /// when a WebAuthn credential is registered in the tenant already. Not
    /// audited: nothing changes for the user until it is confirmed.
    async fn create_factor(&self, new: NewFactor) -> StoreResult<Factor>;
    /// Confirms a pending factor of the user; see [`ConfirmFactor`] and
    /// [`Confirmed`]. `NotFound` when there is no such pending factor (also
    /// when a concurrent confirmation won).
    async fn confirm_factor(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        confirm: ConfirmFactor,
    ) -> StoreResult<Confirmed>;
    /// [`Self::create_factor`] and [`Self::confirm_factor`] in one
    /// transaction: a WebAuthn registration is verified before it is stored.
    async fn add_confirmed_factor(&self, new: NewFactor, confirm: ConfirmFactor) -> StoreResult<Confirmed>;

    // ---- reading ----
    /// The user's factors, pending ones included (see `confirmed_at`),
    /// oldest first.
    async fn list_factors(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Vec<Factor>>;
    /// One factor of the user with what verifying it needs, pending or not.
    async fn factor_secret(&self, tenant_id: Uuid, user_id: Uuid, factor_id: Uuid)
    -> StoreResult<Option<FactorSecret>>;
    /// The confirmed WebAuthn factor holding `credential_id` in the tenant,
    /// whoever its user (passwordless sign-in with a discoverable credential).
    async fn factor_by_credential_id(&self, tenant_id: Uuid, credential_id: &str) -> StoreResult<Option<FactorSecret>>;
    /// The user's confirmed WebAuthn factors with their credentials
    /// (`allowCredentials` for an assertion, `excludeCredentials` for a new
    /// registration), oldest first.
    async fn webauthn_credentials(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Vec<FactorSecret>>;

    // ---- changes ----
    /// Renames a factor of the user. `NotFound` when it is not theirs.
    async fn rename_factor(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        name: String,
        audit: NewAuditEvent,
    ) -> StoreResult<Factor>;
    /// Deletes a factor of the user, unless it is their last confirmed one
    /// and `keep_one` (a policy requires a factor): see [`Removal`]. The
    /// check and the delete are one transaction under the user's lock.
    /// `NotFound` when it is not theirs. The audit row is written only when
    /// something was deleted.
    async fn remove_factor(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        keep_one: bool,
        audit: NewAuditEvent,
    ) -> StoreResult<Removal>;
    /// Deletes the user's *pending* factors of `kind` (abandoned
    /// enrolments; confirmed ones are untouched) and returns how many went.
    /// Not audited: a pending factor never changed anything for the user.
    /// A new enrolment calls it first, so a user holds at most one pending
    /// factor of a kind however often they start one.
    async fn discard_pending_factors(&self, tenant_id: Uuid, user_id: Uuid, kind: FactorKind) -> StoreResult<u64>;
    /// Deletes all of the user's factors and recovery codes (an
    /// administrator's reset); returns how many factors went. Audited even
    /// when there were none (the administrator did act).
    async fn reset_factors(&self, tenant_id: Uuid, user_id: Uuid, audit: NewAuditEvent) -> StoreResult<u64>;

    // ---- use ----
    /// Records that a code of time step `step` signed in with the confirmed
    /// TOTP factor, in one conditional `UPDATE`: false when that step or a
    /// later one was accepted before (a replay, or a concurrent use of the
    /// same code), or when there is no such confirmed TOTP factor.
    async fn advance_totp_step(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        step: i64,
        now: Timestamp,
    ) -> StoreResult<bool>;
    /// Stores a WebAuthn factor's credential after a use (its sign counter
    /// moved) and its last use. False when there is no such confirmed
    /// WebAuthn factor in the tenant.
    async fn update_webauthn_credential(
        &self,
        tenant_id: Uuid,
        factor_id: Uuid,
        credential: serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<bool>;

    // ---- recovery codes ----
    /// Spends the unused recovery code with this hash, in one conditional
    /// `UPDATE`: false when there is none (wrong, or already used). The
    /// audit row is written only when a code was spent.
    async fn use_recovery_code(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        code_hash: &str,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<bool>;
    /// Replaces all of the user's recovery codes with these, in one
    /// transaction. False (and nothing written) when the user has no
    /// confirmed factor: codes without a factor would be worthless.
    async fn replace_recovery_codes(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        code_hashes: Vec<String>,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<bool>;
    async fn count_unused_recovery_codes(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<u64>;
    /// How many codes remain, when the set was stored and last used, in one
    /// statement (all zero and `None` without codes).
    async fn recovery_code_summary(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<RecoveryCodeSummary>;

    // ---- policy ----
    /// When a policy requiring a factor first applied to the user: stamps
    /// `now` the first time and returns the stored value ever after, in one
    /// statement (the grace period runs from it). `None` when the user does
    /// not exist. Resetting factors does not move it.
    async fn mfa_due_since(&self, tenant_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<Option<Timestamp>>;
}

// ---- the one implementation, over either database (see `sql.rs`) ----

/// Holds the user's factor lock for the rest of the transaction.
fn lock_user(c: &mut dyn Conn, user_id: Uuid) -> StoreResult<()> {
    c.lock(&format!("factors:{user_id}"))
}

fn insert_factor(c: &mut dyn Conn, new: &NewFactor) -> StoreResult<()> {
    let (kind, sealed, credential_id, credential) = match &new.material {
        NewFactorMaterial::Totp { sealed_secret } => (FactorKind::Totp, Some(sealed_secret), None, None),
        NewFactorMaterial::WebAuthn {
            credential_id,
            credential,
        } => (FactorKind::WebAuthn, None, Some(credential_id), Some(credential)),
    };
    // Through the user's row, so a factor is never stored for a user of
    // another tenant (or none): no row inserted means no such user.
    let n = c.execute(
        "INSERT INTO factors (id, tenant_id, user_id, kind, name, created_at, totp_secret, credential_id, credential) \
         SELECT $1, tenant_id, id, $4, $5, $6, $7, $8, $9 FROM users WHERE tenant_id = $2 AND id = $3",
        &args![
            new.id,
            new.tenant_id,
            new.user_id,
            kind.as_str(),
            &new.name,
            new.now,
            sealed,
            credential_id,
            credential,
        ],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

const LOAD_FACTOR: &str = concat!(
    "SELECT ",
    factor_columns!(),
    " FROM factors f WHERE f.tenant_id = $1 AND f.user_id = $2 AND f.id = $3"
);

const LIST_FACTORS: &str = concat!(
    "SELECT ",
    factor_columns!(),
    " FROM factors f WHERE f.tenant_id = $1 AND f.user_id = $2 ORDER BY f.created_at, f.id"
);

const FACTOR_SECRET: &str = concat!(
    "SELECT ",
    factor_secret_columns!(),
    " FROM factors f WHERE f.tenant_id = $1 AND f.user_id = $2 AND f.id = $3"
);

const FACTOR_BY_CREDENTIAL_ID: &str = concat!(
    "SELECT ",
    factor_secret_columns!(),
    " FROM factors f WHERE f.tenant_id = $1 AND f.credential_id = $2 AND f.kind = 'webauthn' \
     AND f.confirmed_at IS NOT NULL"
);

const WEBAUTHN_CREDENTIALS: &str = concat!(
    "SELECT ",
    factor_secret_columns!(),
    " FROM factors f WHERE f.tenant_id = $1 AND f.user_id = $2 AND f.kind = 'webauthn' \
     AND f.confirmed_at IS NOT NULL ORDER BY f.created_at, f.id"
);

fn load_factor(c: &mut dyn Conn, tenant_id: Uuid, user_id: Uuid, factor_id: Uuid) -> StoreResult<Option<Factor>> {
    c.query_opt_map(LOAD_FACTOR, &args![tenant_id, user_id, factor_id], factor_from_row)
}

/// How many confirmed factors the user holds, `except` one.
fn confirmed_count(c: &mut dyn Conn, tenant_id: Uuid, user_id: Uuid, except: Option<Uuid>) -> StoreResult<u64> {
    c.query_value(
        "SELECT COUNT(*) FROM factors WHERE tenant_id = $1 AND user_id = $2 AND ($3 IS NULL OR id <> $3) \
         AND confirmed_at IS NOT NULL",
        &args![tenant_id, user_id, except],
    )
}

fn delete_recovery_codes(c: &mut dyn Conn, tenant_id: Uuid, user_id: Uuid) -> StoreResult<()> {
    c.execute(
        "DELETE FROM recovery_codes WHERE tenant_id = $1 AND user_id = $2",
        &args![tenant_id, user_id],
    )?;
    Ok(())
}

/// Replaces all of the user's recovery codes with `hashes`.
fn store_recovery_codes(
    c: &mut dyn Conn,
    tenant_id: Uuid,
    user_id: Uuid,
    hashes: &[String],
    now: Timestamp,
) -> StoreResult<()> {
    delete_recovery_codes(c, tenant_id, user_id)?;
    for hash in hashes {
        // Two equal hashes (astronomically unlikely from random codes) keep one row.
        c.execute(
            "INSERT INTO recovery_codes (user_id, tenant_id, code_hash, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
            &args![user_id, tenant_id, hash, now],
        )?;
    }
    Ok(())
}

/// The confirmation, in the caller's transaction (see [`ConfirmFactor`]).
fn confirm(
    c: &mut dyn Conn,
    tenant_id: Uuid,
    user_id: Uuid,
    factor_id: Uuid,
    confirm: &ConfirmFactor,
) -> StoreResult<Confirmed> {
    lock_user(c, user_id)?;
    let n = c.execute(
        "UPDATE factors SET confirmed_at = $4, totp_last_step = COALESCE($5, totp_last_step) \
         WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND confirmed_at IS NULL",
        &args![tenant_id, user_id, factor_id, confirm.now, confirm.totp_step],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    let first = confirmed_count(c, tenant_id, user_id, Some(factor_id))? == 0;
    if first {
        store_recovery_codes(c, tenant_id, user_id, &confirm.recovery_code_hashes, confirm.now)?;
    }
    insert_audit(c, &confirm.audit)?;
    let factor = load_factor(c, tenant_id, user_id, factor_id)?.ok_or(StoreError::NotFound)?;
    Ok(Confirmed { factor, first })
}

#[async_trait]
impl<D: Driver> FactorStore for D {
    async fn create_factor(&self, new: NewFactor) -> StoreResult<Factor> {
        self.write(move |c| {
            insert_factor(c, &new)?;
            load_factor(c, new.tenant_id, new.user_id, new.id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn confirm_factor(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        confirm_with: ConfirmFactor,
    ) -> StoreResult<Confirmed> {
        self.write(move |c| confirm(c, tenant_id, user_id, factor_id, &confirm_with))
            .await
    }

    async fn add_confirmed_factor(&self, new: NewFactor, confirm_with: ConfirmFactor) -> StoreResult<Confirmed> {
        self.write(move |c| {
            insert_factor(c, &new)?;
            confirm(c, new.tenant_id, new.user_id, new.id, &confirm_with)
        })
        .await
    }

    async fn list_factors(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Vec<Factor>> {
        self.read(move |c| c.query_map(LIST_FACTORS, &args![tenant_id, user_id], factor_from_row))
            .await
    }

    async fn factor_secret(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
    ) -> StoreResult<Option<FactorSecret>> {
        self.read(move |c| {
            c.query_opt_map(
                FACTOR_SECRET,
                &args![tenant_id, user_id, factor_id],
                factor_secret_from_row,
            )
        })
        .await
    }

    async fn factor_by_credential_id(&self, tenant_id: Uuid, credential_id: &str) -> StoreResult<Option<FactorSecret>> {
        let credential_id = credential_id.to_owned();
        self.read(move |c| {
            c.query_opt_map(
                FACTOR_BY_CREDENTIAL_ID,
                &args![tenant_id, &credential_id],
                factor_secret_from_row,
            )
        })
        .await
    }

    async fn webauthn_credentials(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<Vec<FactorSecret>> {
        self.read(move |c| c.query_map(WEBAUTHN_CREDENTIALS, &args![tenant_id, user_id], factor_secret_from_row))
            .await
    }

    async fn rename_factor(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        name: String,
        audit: NewAuditEvent,
    ) -> StoreResult<Factor> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE factors SET name = $4 WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
                &args![tenant_id, user_id, factor_id, &name],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit(c, &audit)?;
            load_factor(c, tenant_id, user_id, factor_id)?.ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn remove_factor(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        keep_one: bool,
        audit: NewAuditEvent,
    ) -> StoreResult<Removal> {
        self.write(move |c| {
            lock_user(c, user_id)?;
            let factor = load_factor(c, tenant_id, user_id, factor_id)?.ok_or(StoreError::NotFound)?;
            let was_last = factor.is_confirmed() && confirmed_count(c, tenant_id, user_id, Some(factor_id))? == 0;
            if was_last && keep_one {
                return Ok(Removal::RefusedLast);
            }
            c.execute(
                "DELETE FROM factors WHERE tenant_id = $1 AND user_id = $2 AND id = $3",
                &args![tenant_id, user_id, factor_id],
            )?;
            if was_last {
                delete_recovery_codes(c, tenant_id, user_id)?;
            }
            insert_audit(c, &audit)?;
            Ok(Removal::Removed { was_last })
        })
        .await
    }

    async fn discard_pending_factors(&self, tenant_id: Uuid, user_id: Uuid, kind: FactorKind) -> StoreResult<u64> {
        self.write(move |c| {
            c.execute(
                "DELETE FROM factors WHERE tenant_id = $1 AND user_id = $2 AND kind = $3 AND confirmed_at IS NULL",
                &args![tenant_id, user_id, kind.as_str()],
            )
        })
        .await
    }

    async fn reset_factors(&self, tenant_id: Uuid, user_id: Uuid, audit: NewAuditEvent) -> StoreResult<u64> {
        self.write(move |c| {
            lock_user(c, user_id)?;
            let n = c.execute(
                "DELETE FROM factors WHERE tenant_id = $1 AND user_id = $2",
                &args![tenant_id, user_id],
            )?;
            delete_recovery_codes(c, tenant_id, user_id)?;
            insert_audit(c, &audit)?;
            Ok(n)
        })
        .await
    }

    async fn advance_totp_step(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        factor_id: Uuid,
        step: i64,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE factors SET totp_last_step = $4, last_used_at = $5 \
                 WHERE tenant_id = $1 AND user_id = $2 AND id = $3 AND kind = 'totp' \
                 AND confirmed_at IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $4)",
                &args![tenant_id, user_id, factor_id, step, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn update_webauthn_credential(
        &self,
        tenant_id: Uuid,
        factor_id: Uuid,
        credential: serde_json::Value,
        now: Timestamp,
    ) -> StoreResult<bool> {
        self.write(move |c| {
            let n = c.execute(
                "UPDATE factors SET credential = $3, last_used_at = $4 \
                 WHERE tenant_id = $1 AND id = $2 AND kind = 'webauthn' AND confirmed_at IS NOT NULL",
                &args![tenant_id, factor_id, &credential, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn use_recovery_code(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        code_hash: &str,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<bool> {
        let code_hash = code_hash.to_owned();
        self.write(move |c| {
            let n = c.execute(
                "UPDATE recovery_codes SET used_at = $4 \
                 WHERE tenant_id = $1 AND user_id = $2 AND code_hash = $3 AND used_at IS NULL",
                &args![tenant_id, user_id, &code_hash, now],
            )?;
            if n == 1 {
                insert_audit(c, &audit)?;
            }
            Ok(n == 1)
        })
        .await
    }

    async fn replace_recovery_codes(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        code_hashes: Vec<String>,
        now: Timestamp,
        audit: NewAuditEvent,
    ) -> StoreResult<bool> {
        self.write(move |c| {
            lock_user(c, user_id)?;
            if confirmed_count(c, tenant_id, user_id, None)? == 0 {
                return Ok(false);
            }
            store_recovery_codes(c, tenant_id, user_id, &code_hashes, now)?;
            insert_audit(c, &audit)?;
            Ok(true)
        })
        .await
    }

    async fn count_unused_recovery_codes(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<u64> {
        self.read(move |c| {
            c.query_value(
                "SELECT COUNT(*) FROM recovery_codes WHERE tenant_id = $1 AND user_id = $2 AND used_at IS NULL",
                &args![tenant_id, user_id],
            )
        })
        .await
    }

    async fn recovery_code_summary(&self, tenant_id: Uuid, user_id: Uuid) -> StoreResult<RecoveryCodeSummary> {
        self.read(move |c| {
            let summary = c.query_opt_map(
                "SELECT COALESCE(SUM(CASE WHEN used_at IS NULL THEN 1 ELSE 0 END), 0) AS remaining, \
                 MAX(created_at) AS created_at, MAX(used_at) AS last_used_at \
                 FROM recovery_codes WHERE tenant_id = $1 AND user_id = $2",
                &args![tenant_id, user_id],
                |r| {
                    Ok(RecoveryCodeSummary {
                        remaining: r.get("remaining")?,
                        created_at: r.get("created_at")?,
                        last_used_at: r.get("last_used_at")?,
                    })
                },
            )?;
            Ok(summary.unwrap_or_default())
        })
        .await
    }

    async fn mfa_due_since(&self, tenant_id: Uuid, user_id: Uuid, now: Timestamp) -> StoreResult<Option<Timestamp>> {
        self.write(move |c| {
            c.query_opt_map(
                "UPDATE users SET mfa_due_since = COALESCE(mfa_due_since, $3) \
                 WHERE tenant_id = $1 AND id = $2 RETURNING mfa_due_since",
                &args![tenant_id, user_id, now],
                |r| r.get("mfa_due_since"),
            )
        })
        .await
    }
}
