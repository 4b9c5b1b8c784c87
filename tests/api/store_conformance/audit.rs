//! The audit log and the dashboard counts read from it.

use super::*;

pub(super) async fn audit_lists_newest_first_by_event_and_pages_before_an_id(store: Arc<dyn Store>) {
    for event in ["role_assigned", "login", "role_assigned"] {
        store.record_audit(audit(event, None)).await.unwrap();
    }
    let assigned = store
        .list_audit(AuditQuery {
            tenant_id: T,
            user_id: None,
            event: Some("role_assigned".into()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(assigned.len(), 2);
    assert!(assigned[0].id > assigned[1].id);
    assert_eq!(assigned[0].detail["k"], "v");
    let older = store
        .list_audit(AuditQuery {
            tenant_id: T,
            user_id: None,
            event: Some("role_assigned".into()),
            before: Some(assigned[0].id),
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(older.len(), 1);
}

pub(super) async fn purging_audit_deletes_old_rows_in_batches(store: Arc<dyn Store>) {
    let mut old = audit("login", None);
    old.at = 10;
    for _ in 0..3 {
        store.record_audit(old.clone()).await.unwrap();
    }
    assert_eq!(store.purge_audit(11, 2).await.unwrap(), 2);
    assert_eq!(store.purge_audit(11, 2).await.unwrap(), 1);
    assert_eq!(store.purge_audit(11, 2).await.unwrap(), 0);
}

pub(super) async fn dashboard_counts_users_and_sign_ins_per_bucket(store: Arc<dyn Store>) {
    let cy = signed_up(&store, "cy@example.com", None).await;
    signed_up(&store, "dee@example.com", None).await;
    sign_in(&store, cy.id, "s0").await;
    sign_in(&store, cy.id, "s1").await;
    let counts = store.site_counts(T, NOW).await.unwrap();
    assert_eq!(counts.users, store.count_users().await.unwrap());
    let activity = store
        .activity(ActivityQuery {
            tenant_id: T,
            since: NOW - 10,
            bucket_secs: 3600,
            buckets: 2,
            successes: vec!["login"],
            failures: vec!["login_failed"],
        })
        .await
        .unwrap();
    assert_eq!(activity.len(), 1);
    assert_eq!(
        (activity[0].bucket, activity[0].successes, activity[0].failures),
        (0, 2, 0)
    );
}
