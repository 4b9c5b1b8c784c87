//! Bulk import and export: batches in one transaction, idempotent re-runs,
//! conflicts named and never overwritten, dry runs that write nothing.

use super::*;

fn imported(email: Option<&str>, phone: Option<&str>, hash: Option<&str>, roles: &[&str]) -> ImportUser {
    ImportUser {
        id: Uuid::now_v7(),
        email: email.map(|e| Email::parse(e).unwrap()),
        email_verified: true,
        phone: phone.map(|p| Phone::parse(p).unwrap()),
        phone_verified: phone.is_some(),
        password_hash: hash.map(str::to_owned),
        metadata: serde_json::json!({"from": "old"}),
        roles: roles.iter().map(|r| RoleName::parse(r).unwrap()).collect(),
        created_at: NOW - 86_400,
    }
}

pub(super) async fn an_import_batch_creates_users_with_everything_carried_over(store: Arc<dyn Store>) {
    let ann = imported(
        Some("ann@example.com"),
        Some("+14155550100"),
        Some("$2b$04$hash"),
        &["admin"],
    );
    let bob = imported(None, Some("+14155550101"), None, &[]);
    let outcomes = store
        .import_users(T, vec![ann.clone(), bob.clone()], NOW, false)
        .await
        .unwrap();
    assert_eq!(outcomes, [ImportOutcome::Created, ImportOutcome::Created]);
    let user = store.get_user(T, ann.id).await.unwrap().unwrap();
    assert_eq!(user.roles, ["admin"]);
    assert!(user.email_verified && user.phone_verified);
    assert_eq!(user.metadata["from"], "old");
    assert_eq!(user.created_at, NOW - 86_400);
    assert_eq!(
        store.password_hash(T, ann.id).await.unwrap().as_deref(),
        Some("$2b$04$hash")
    );
    assert_eq!(store.password_hash(T, bob.id).await.unwrap(), None);
}

pub(super) async fn re_importing_skips_identical_users_and_reports_conflicts(store: Arc<dyn Store>) {
    let ann = imported(Some("ann@example.com"), None, Some("$2b$04$hash"), &[]);
    let cat = imported(None, Some("+14155550102"), Some("$2b$04$cat"), &[]);
    store
        .import_users(T, vec![ann.clone(), cat.clone()], NOW, false)
        .await
        .unwrap();
    let again = store
        .import_users(
            T,
            vec![
                imported(Some("ann@example.com"), None, Some("$2b$04$hash"), &[]),
                imported(Some("ann@example.com"), None, Some("$2b$04$other"), &[]),
                imported(Some("new@example.com"), Some("+14155550102"), None, &[]),
                // The same email twice in one batch: the second conflicts.
                imported(Some("twice@example.com"), None, None, &[]),
                imported(Some("twice@example.com"), None, Some("$2b$04$x"), &[]),
            ],
            NOW,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        [
            ImportOutcome::Unchanged,
            ImportOutcome::Conflict { field: "email" },
            ImportOutcome::Conflict { field: "phone" },
            ImportOutcome::Created,
            ImportOutcome::Conflict { field: "email" },
        ]
    );
    assert_eq!(
        store.password_hash(T, ann.id).await.unwrap().as_deref(),
        Some("$2b$04$hash"),
        "never overwritten"
    );
    assert_eq!(store.count_users().await.unwrap(), 3);
}

pub(super) async fn an_unknown_role_is_reported_and_writes_nothing_for_that_user(store: Arc<dyn Store>) {
    let outcomes = store
        .import_users(
            T,
            vec![
                imported(Some("ann@example.com"), None, None, &["nosuchrole"]),
                imported(Some("bob@example.com"), None, None, &["admin"]),
            ],
            NOW,
            false,
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [ImportOutcome::UnknownRole("nosuchrole".into()), ImportOutcome::Created]
    );
    assert_eq!(store.count_users().await.unwrap(), 1);
}

pub(super) async fn a_dry_run_finds_the_same_outcomes_and_writes_nothing(store: Arc<dyn Store>) {
    let batch = vec![
        imported(Some("ann@example.com"), None, None, &[]),
        imported(Some("ann@example.com"), None, Some("$2b$04$x"), &[]),
    ];
    let dry = store.import_users(T, batch.clone(), NOW, true).await.unwrap();
    assert_eq!(
        dry,
        [ImportOutcome::Created, ImportOutcome::Conflict { field: "email" }]
    );
    assert_eq!(store.count_users().await.unwrap(), 0);
    let real = store.import_users(T, batch, NOW, false).await.unwrap();
    assert_eq!(real, dry);
    assert_eq!(store.count_users().await.unwrap(), 1);
}

pub(super) async fn export_pages_users_in_id_order_with_their_hashes(store: Arc<dyn Store>) {
    let users: Vec<ImportUser> = (0..5)
        .map(|i| {
            imported(
                Some(&format!("u{i}@example.com")),
                None,
                Some(&format!("$2b$04$h{i}")),
                &[],
            )
        })
        .collect();
    store.import_users(T, users.clone(), NOW, false).await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.export_users(T, after, 2).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.id);
        seen.extend(page.into_iter().map(|(u, h)| (u.id, h.unwrap())));
    }
    let mut expected: Vec<(Uuid, String)> = users.iter().map(|u| (u.id, u.password_hash.clone().unwrap())).collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert!(
        store.export_users(Uuid::now_v7(), None, 10).await.unwrap().is_empty(),
        "tenant filter"
    );
}
