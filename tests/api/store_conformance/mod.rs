//! Store conformance: the same store-level checks on every compiled backend,
//! through the `Store` port alone. Each behaviour is its own test on a fresh
//! store, once per backend (`sqlite::<behaviour>`, `postgres::<behaviour>`),
//! so one failure hides none of the others. SQLite (in memory) always;
//! PostgreSQL too when the `postgres` feature is on (then
//! `FORGE_TEST_DATABASE_URL` is required, and each test runs in a fresh
//! schema that is dropped after).
//!
//! What every adapter must agree on: conflicts name their field, the
//! single-statement races (refresh rotation, outbox claiming, first-start
//! keys and secrets) have exactly one winner under concurrency, secrets leave
//! the outbox when a message ends, listing pages by key, and the audit row of
//! a change lands with it.

use std::collections::HashSet;
use std::sync::Arc;

use forge::domain::settings::{FederationSettings, SignupMode, SignupPolicy, TenantSettings};
use forge::domain::{Aal, Amr, Assurance, Email, Identifier, Permission, Phone, RoleName, TenantSlug};
use forge::secret::Secret;
use forge::store::*;
use uuid::Uuid;

const T: Uuid = DEFAULT_TENANT_ID;
const NOW: i64 = 1_700_000_000;

fn audit(event: &'static str, user: Option<Uuid>) -> NewAuditEvent {
    NewAuditEvent {
        tenant_id: T,
        at: NOW,
        event: event.parse().expect("an event forge writes"),
        user_id: user,
        actor_id: user,
        ip: Some("127.0.0.1".into()),
        user_agent: None,
        detail: serde_json::json!({"k": "v"}),
    }
}

fn new_user(email: &str, phone: Option<&str>, roles: &[&str]) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        tenant_id: T,
        email: Some(Email::parse(email).unwrap()),
        email_verified: false,
        phone: phone.map(|p| Phone::parse(p).unwrap()),
        phone_verified: false,
        password_hash: Some("$argon2id$hash".into()),
        metadata: serde_json::json!({"plan": "pro"}),
        roles: roles.iter().map(|r| RoleName::parse(r).unwrap()).collect(),
        now: NOW,
    }
}

fn session(refresh_hash: &str) -> NewSession {
    NewSession {
        id: Uuid::now_v7(),
        refresh_hash: refresh_hash.into(),
        now: NOW,
        expires_at: NOW + 3600,
        user_agent: Some("conformance".into()),
        ip: Some("127.0.0.1".into()),
        assurance: Assurance::password(),
        client_id: None,
        sso_id: None,
        scope: None,
    }
}

fn conflict_field(e: StoreError) -> &'static str {
    match e {
        StoreError::Conflict { field } => field,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Creates a user, with a first session holding `refresh` when given.
async fn signed_up(store: &Arc<dyn Store>, email: &str, refresh: Option<&str>) -> NewUser {
    let user = new_user(email, None, &[]);
    store
        .create_user(user.clone(), refresh.map(session), audit("signup", None))
        .await
        .unwrap();
    user
}

async fn sign_in(store: &Arc<dyn Store>, user: Uuid, refresh: &str) -> User {
    store
        .sign_in(
            T,
            user,
            SignIn {
                session: session(refresh),
                rehash: None,
                verified: None,
            },
            audit("login", Some(user)),
        )
        .await
        .unwrap()
        .0
}

mod audit;
mod clients;
mod factors;
mod import;
mod keys;
mod outbox;
mod providers;
mod roles;
mod sessions;
mod tenants;
mod users;

/// One test per behaviour and backend, so the first failure hides nothing:
/// `sqlite::<check>` always, `postgres::<check>` with the `postgres`
/// feature, each on a fresh store. The checks are plain async functions in
/// one file per area (so rustfmt and the compiler treat them as ordinary
/// code); one left out of this list is dead code, which clippy's
/// `-D warnings` refuses.
macro_rules! conformance {
    ($($area:ident::$check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_sqlite(super::$area::$check).await;
                }
            )*
        }

        #[cfg(feature = "postgres")]
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    super::on_postgres(super::$area::$check).await;
                }
            )*
        }
    };
}

conformance! {
    import::an_import_batch_creates_users_with_everything_carried_over,
    import::re_importing_skips_identical_users_and_reports_conflicts,
    import::an_unknown_role_is_reported_and_writes_nothing_for_that_user,
    import::a_dry_run_finds_the_same_outcomes_and_writes_nothing,
    import::export_pages_users_in_id_order_with_their_hashes,
    users::a_fresh_store_answers_and_holds_only_the_default_tenant,
    users::create_user_returns_the_user_with_roles_and_metadata,
    users::create_user_with_a_taken_email_or_phone_conflicts_on_that_field,
    users::create_user_with_an_unknown_role_is_not_found_and_leaves_nothing,
    users::find_for_login_matches_the_email_in_any_case_and_the_phone,
    users::get_user_finds_a_user_only_in_its_tenant,
    users::update_user_applies_the_patch_and_the_new_password,
    users::update_user_to_a_taken_email_conflicts_on_email,
    users::update_user_of_an_unknown_user_is_not_found,
    users::access_of_gives_the_roles_and_permissions_of_a_user,
    users::listing_all_users_pages_in_creation_order,
    users::listing_by_email_prefix_pages_in_email_order,
    users::listing_by_phone_prefix_is_in_phone_order,
    sessions::sign_in_records_the_time_the_verification_and_the_rehash,
    sessions::concurrent_refreshes_of_one_token_rotate_it_once,
    sessions::a_refresh_within_the_grace_window_gets_the_same_successor,
    sessions::a_refresh_reused_after_the_grace_window_revokes_the_session,
    sessions::an_unknown_refresh_token_is_invalid,
    sessions::revoking_a_session_counts_once_and_shows_in_revoked_since,
    sessions::disabling_a_user_revokes_every_session,
    sessions::profile_changes_and_single_sign_outs_keep_the_credential_epoch,
    sessions::every_event_that_ends_all_sessions_moves_the_credential_epoch,
    sessions::a_refreshed_session_never_outlives_its_maximum_age,
    sessions::a_session_past_its_maximum_age_does_not_refresh,
    sessions::deleting_a_user_returns_its_live_sessions_and_is_remembered,
    sessions::a_session_keeps_its_assurance_through_every_rotation,
    sessions::setting_a_sessions_assurance_is_a_compare_and_set,
    sessions::concurrent_step_ups_of_one_session_have_one_winner,
    roles::create_role_returns_a_custom_role,
    roles::create_role_with_a_taken_name_conflicts_on_name,
    roles::the_builtin_admin_role_cannot_be_changed,
    roles::assign_and_remove_role_report_whether_anything_changed,
    roles::assigning_an_unknown_role_is_not_found,
    roles::new_role_permissions_reach_its_holders,
    roles::deleting_a_role_returns_its_holders_and_takes_it_from_them,
    roles::only_role_assignments_that_change_something_are_audited,
    tenants::create_tenant_creates_its_admin_role_and_first_admin,
    tenants::create_tenant_with_a_taken_slug_conflicts_on_slug,
    tenants::tenant_settings_are_stored_as_created,
    tenants::updating_tenant_settings_replaces_the_given_parts_and_keeps_the_rest,
    tenants::tenants_list_in_creation_order,
    tenants::deleting_a_tenant_takes_everything_it_owns_but_not_the_default,
    audit::audit_lists_newest_first_by_event_and_pages_before_an_id,
    audit::purging_audit_deletes_old_rows_in_batches,
    audit::dashboard_counts_users_and_sign_ins_per_bucket,
    outbox::concurrent_claimers_lease_every_message_exactly_once,
    outbox::a_delivered_message_is_erased,
    outbox::a_failed_message_keeps_its_code_and_error_until_it_expires,
    outbox::a_released_message_is_pending_again_without_the_attempt,
    outbox::only_a_failed_message_is_resent,
    outbox::stale_leases_released_and_resent_messages_are_claimed_again,
    outbox::expiry_fails_and_erases_what_no_live_lease_holds,
    outbox::outbox_list_pages_newest_first,
    keys::instances_starting_together_agree_on_one_current_key_and_one_secret,
    keys::a_next_key_is_added_beside_the_current_one,
    keys::rotation_promotes_next_retires_current_and_adds_a_new_next,
    keys::rotation_refuses_a_next_key_younger_than_not_after,
    keys::each_algorithm_has_its_own_current_and_next_key_and_they_rotate_together,
    keys::rotation_changes_nothing_when_one_algorithm_has_no_next_key,
    factors::a_new_factor_is_pending_and_listed_without_its_secret,
    factors::the_first_confirmed_factor_stores_the_recovery_codes_and_later_ones_do_not,
    factors::concurrent_first_confirmations_store_one_set_of_codes,
    factors::a_totp_step_is_accepted_once_and_never_an_earlier_one,
    factors::concurrent_uses_of_one_totp_code_accept_it_once,
    factors::a_recovery_code_is_spent_once_and_audited_when_spent,
    factors::regenerated_recovery_codes_replace_all_the_old_ones,
    factors::the_last_factor_is_refused_under_a_policy_and_otherwise_takes_the_codes,
    factors::concurrent_removals_under_a_policy_leave_one_factor,
    factors::a_reset_removes_every_factor_and_code_of_the_user_only,
    factors::discarding_pending_factors_keeps_confirmed_ones_and_other_users,
    factors::the_recovery_code_summary_counts_and_dates_the_current_set,
    factors::a_factor_is_renamed_only_by_its_user,
    factors::webauthn_credentials_are_found_by_id_within_the_tenant_and_updated,
    factors::the_same_credential_may_be_registered_in_another_tenant,
    factors::deleting_a_user_takes_their_factors_and_codes,
    factors::the_mfa_due_date_is_stamped_once,
    clients::a_registered_client_is_found_in_its_tenant_and_by_its_id_alone,
    clients::a_taken_client_id_conflicts_on_client_id_in_any_tenant,
    clients::updating_a_client_replaces_its_spec_and_keeps_its_kind_and_secret,
    clients::deleting_a_client_revokes_its_sessions_and_takes_its_consents,
    clients::rotating_a_secret_replaces_the_hash_and_revokes_the_sessions,
    clients::consents_add_scopes_list_by_name_and_revoke_the_users_sessions,
    clients::a_consent_needs_a_user_and_a_client_of_the_tenant,
    clients::a_session_keeps_its_client_and_sso_ids_through_a_refresh,
    clients::a_refresh_token_is_claimed_only_by_its_own_client,
    providers::a_registered_provider_is_found_only_in_its_tenant_with_its_sealed_secret,
    providers::a_taken_provider_id_conflicts_on_id_and_writes_nothing,
    providers::updating_a_provider_replaces_its_spec_and_keeps_or_replaces_its_secret,
    providers::deleting_a_provider_takes_its_identities_and_no_others,
    providers::an_identity_is_linked_once_and_found_by_provider_and_subject,
    providers::touching_an_identity_records_its_use_and_the_new_email,
    providers::a_user_created_with_an_identity_is_all_or_nothing,
    providers::the_last_way_to_sign_in_cannot_be_unlinked,
    providers::a_password_a_verified_phone_or_a_passkey_each_allow_unlinking,
    providers::deleting_a_user_takes_their_identities,
}

pub(crate) async fn on_sqlite<F: Future<Output = ()>>(check: impl FnOnce(Arc<dyn Store>) -> F) {
    let store = forge::store::sqlite::SqliteStore::open("sqlite::memory:", 4).unwrap();
    check(Arc::new(store)).await;
}

/// Runs the check in a fresh schema. The check runs as a task of its own so
/// that, when it fails, the schema is still dropped (off the async workers,
/// where the sync client may not run) before the failure is passed on.
#[cfg(feature = "postgres")]
pub(crate) async fn on_postgres<F>(check: impl FnOnce(Arc<dyn Store>) -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    use forge::testing::{TestServer, shared};
    assert!(
        std::env::var(shared::DATABASE_ENV).is_ok(),
        "{} is needed for the PostgreSQL store tests",
        shared::DATABASE_ENV
    );
    let config = TestServer::config();
    let backing = shared::claim(&config).await;
    let url = config.database.url.clone();
    let store = tokio::task::spawn_blocking(move || forge::store::postgres::PgStore::open(&url, 8))
        .await
        .unwrap()
        .unwrap();
    let store: Arc<dyn Store> = Arc::new(store);
    let outcome = tokio::spawn(check(store.clone())).await;
    // The schema goes with the last handle, off the async workers.
    tokio::task::spawn_blocking(move || drop((store, backing)))
        .await
        .unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `migrations/sqlite` and `migrations/postgres` hold the same versions
/// under the same names, so both backends are always at the same schema.
#[test]
fn migration_folders_match() {
    let names = |dir: &str| {
        let mut v: Vec<String> = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        v.sort();
        v
    };
    let sqlite = names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, names("postgres"));
}
