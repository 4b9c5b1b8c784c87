//! Signing keys and server secrets: one winner at first start, rotation
//! and its refusal of a too-young next key.

use super::*;

fn key(kid: &str, state: KeyState) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        algorithm: "EdDSA".into(),
        private_key: vec![1, 2, 3],
        public_key: vec![4, 5, 6],
        state,
        created_at: NOW,
        activated_at: None,
        retired_at: None,
    }
}

pub(super) async fn instances_starting_together_agree_on_one_current_key_and_one_secret(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let keys = store
                .insert_signing_key_if_absent(key(&format!("current-{i}"), KeyState::Current))
                .await
                .unwrap();
            let secret = store.server_secret("shared", vec![i as u8], NOW).await.unwrap();
            (keys, secret)
        }));
    }
    let mut secrets = HashSet::new();
    for t in tasks {
        let (keys, secret) = t.await.unwrap();
        assert_eq!(keys.iter().filter(|k| k.state == KeyState::Current).count(), 1);
        secrets.insert(secret);
    }
    assert_eq!(secrets.len(), 1);
}

/// A `current` key and, beside it, the `next` key `next-1`.
async fn current_and_next(store: &Arc<dyn Store>) {
    store
        .insert_signing_key_if_absent(key("current-0", KeyState::Current))
        .await
        .unwrap();
    store
        .insert_signing_key_if_absent(key("next-1", KeyState::Next))
        .await
        .unwrap();
}

pub(super) async fn a_next_key_is_added_beside_the_current_one(store: Arc<dyn Store>) {
    current_and_next(&store).await;
    let stored = store.signing_keys().await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored.iter().find(|k| k.state == KeyState::Next).unwrap().public_key,
        [4, 5, 6]
    );
}

pub(super) async fn rotation_promotes_next_retires_current_and_adds_a_new_next(store: Arc<dyn Store>) {
    current_and_next(&store).await;
    let KeyRotation::Rotated(rotated) = store
        .rotate_signing_keys(
            key("next-2", KeyState::Next),
            NOW + 10,
            Some(NOW + 5),
            audit("key_rotated", None),
        )
        .await
        .unwrap()
    else {
        panic!("not rotated");
    };
    let states: Vec<(String, KeyState)> = rotated.iter().map(|k| (k.kid.clone(), k.state.clone())).collect();
    assert!(states.contains(&("next-1".into(), KeyState::Current)));
    assert!(states.contains(&("next-2".into(), KeyState::Next)));
    assert_eq!(states.iter().filter(|(_, s)| *s == KeyState::Retired).count(), 1);
}

pub(super) async fn rotation_refuses_a_next_key_younger_than_not_after(store: Arc<dyn Store>) {
    current_and_next(&store).await;
    assert!(matches!(
        store
            .rotate_signing_keys(
                key("next-3", KeyState::Next),
                NOW + 20,
                Some(NOW - 1),
                audit("key_rotated", None)
            )
            .await
            .unwrap(),
        KeyRotation::NextTooYoung { .. }
    ));
}
