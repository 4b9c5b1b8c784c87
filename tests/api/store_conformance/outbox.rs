//! The outbox: exclusive leases under concurrency, each outcome of a
//! delivery, resending, stale leases, expiry and listing.

use super::*;

fn message(to: &str) -> NewOutboxMessage {
    NewOutboxMessage {
        tenant_id: T,
        channel: OutboxChannel::Sms,
        kind: MessageKind::Otp,
        recipient: to.into(),
        subject: "code".into(),
        body: Secret::new("your code is 123456"),
        html: Some(Secret::new("<p>your code is 123456</p>")),
        code: Secret::new("123456"),
        next_attempt_at: NOW,
        created_at: NOW,
        expires_at: NOW + 300,
    }
}

/// Queues `n` messages and leases them all at `NOW` for `lease_secs`.
async fn claimed(store: &Arc<dyn Store>, n: u32, lease_secs: i64) -> Vec<OutboxMessage> {
    for i in 0..n {
        store.enqueue(message(&format!("+1415555{i:04}"))).await.unwrap();
    }
    let batch = store.claim_due(NOW, n, lease_secs).await.unwrap();
    assert_eq!(batch.len(), n as usize);
    batch
}

pub(super) async fn concurrent_claimers_lease_every_message_exactly_once(store: Arc<dyn Store>) {
    for i in 0..30 {
        store.enqueue(message(&format!("+1415555{i:04}"))).await.unwrap();
    }
    assert_eq!(store.pending_count().await.unwrap(), 30);
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = store.claim_due(NOW, 4, 60).await.unwrap();
                if batch.is_empty() {
                    return mine;
                }
                mine.extend(batch.into_iter().map(|m| m.id));
            }
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    assert_eq!(claimed.len(), 30, "no message claimed twice");
    assert_eq!(claimed.iter().collect::<HashSet<_>>().len(), 30);
    assert!(store.claim_due(NOW + 30, 10, 60).await.unwrap().is_empty(), "leased");
}

pub(super) async fn a_delivered_message_is_erased(store: Arc<dyn Store>) {
    let batch = claimed(&store, 1, 60).await;
    assert_eq!(
        batch[0].html.as_ref().map(Secret::expose),
        Some("<p>your code is 123456</p>"),
        "the HTML part is stored and claimed"
    );
    let first = batch[0].id;
    store.mark_delivered(first, NOW).await.unwrap();
    let page = store.list(T, None, 100, None).await.unwrap();
    assert_eq!(page[0].status, OutboxStatus::Delivered);
    assert!(
        page[0].body.is_none() && page[0].html.is_none() && page[0].code.is_none(),
        "erased"
    );
}

pub(super) async fn a_failed_message_keeps_its_code_and_error_until_it_expires(store: Arc<dyn Store>) {
    let batch = claimed(&store, 2, 60).await;
    let second = batch[1].id;
    store.mark_failed(second, "refused", NOW).await.unwrap();
    let page = store.list(T, None, 100, None).await.unwrap();
    let failed = page.iter().find(|m| m.id == second).unwrap();
    assert_eq!(failed.status, OutboxStatus::Failed);
    assert!(
        failed.body.is_some(),
        "a failed message keeps its code until it expires"
    );
    assert_eq!(failed.last_error.as_deref(), Some("refused"));
    assert_eq!(
        store
            .list(T, Some(OutboxStatus::Failed), 100, None)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub(super) async fn a_released_message_is_pending_again_without_the_attempt(store: Arc<dyn Store>) {
    let third = claimed(&store, 1, 60).await[0].id;
    store.release(third, NOW).await.unwrap();
    let page = store.list(T, None, 100, None).await.unwrap();
    assert_eq!(page[0].status, OutboxStatus::Pending);
    assert_eq!(page[0].attempts, 0, "a release does not count the attempt");
}

pub(super) async fn only_a_failed_message_is_resent(store: Arc<dyn Store>) {
    let second = claimed(&store, 1, 60).await[0].id;
    store.mark_failed(second, "refused", NOW).await.unwrap();
    assert!(store.resend(T, second, NOW).await.unwrap());
    assert!(
        !store.resend(T, second, NOW).await.unwrap(),
        "only a failed message is resent"
    );
    assert!(
        store
            .list(T, Some(OutboxStatus::Failed), 100, None)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn stale_leases_released_and_resent_messages_are_claimed_again(store: Arc<dyn Store>) {
    let batch = claimed(&store, 5, 60).await;
    let (second, third) = (batch[1].id, batch[2].id);
    store.mark_failed(second, "refused", NOW).await.unwrap();
    assert!(store.resend(T, second, NOW).await.unwrap());
    store.release(third, NOW).await.unwrap();
    // A lease that ran out comes back; the claim counts another attempt.
    let again = store.claim_due(NOW + 61, 100, 1000).await.unwrap();
    assert_eq!(again.len(), 5, "3 stale leases, the released one and the resent one");
    assert!(
        again
            .iter()
            .all(|m| m.attempts == if m.id == second || m.id == third { 1 } else { 2 })
    );
}

pub(super) async fn expiry_fails_and_erases_what_no_live_lease_holds(store: Arc<dyn Store>) {
    let batch = claimed(&store, 3, 1000).await;
    store.mark_delivered(batch[2].id, NOW).await.unwrap();
    store
        .mark_retry(batch[0].id, NOW + 100, "timeout", NOW + 61)
        .await
        .unwrap();
    assert!(
        store
            .list(T, Some(OutboxStatus::Failed), 100, None)
            .await
            .unwrap()
            .is_empty(),
        "a retry is not a failure"
    );
    let expired = store.expire(NOW + 400).await.unwrap();
    assert_eq!(
        expired, 1,
        "the message waiting for its retry; the leased one is its worker's"
    );
    let expired = store.expire(NOW + 1100).await.unwrap();
    assert_eq!(expired, 1, "its lease ran out too");
    assert_eq!(store.pending_count().await.unwrap(), 0);
    assert!(
        store
            .list(T, None, 100, None)
            .await
            .unwrap()
            .iter()
            .all(|m| m.body.is_none() && m.html.is_none())
    );
}

pub(super) async fn outbox_list_pages_newest_first(store: Arc<dyn Store>) {
    for i in 0..10 {
        store.enqueue(message(&format!("+1415555{i:04}"))).await.unwrap();
    }
    let newest = store.list(T, None, 5, None).await.unwrap();
    let next = store.list(T, None, 5, Some(newest[4].id)).await.unwrap();
    assert!(newest.iter().zip(newest.iter().skip(1)).all(|(a, b)| a.id > b.id));
    assert!(next[0].id < newest[4].id);
}
