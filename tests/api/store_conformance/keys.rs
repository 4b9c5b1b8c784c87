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
            vec![key("next-2", KeyState::Next)],
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
                vec![key("next-3", KeyState::Next)],
                NOW + 20,
                Some(NOW - 1),
                audit("key_rotated", None)
            )
            .await
            .unwrap(),
        KeyRotation::NextTooYoung { .. }
    ));
}

fn rsa_key(kid: &str, state: KeyState) -> SigningKeyRecord {
    SigningKeyRecord {
        algorithm: "RS256".into(),
        ..key(kid, state)
    }
}

pub(super) async fn each_algorithm_has_its_own_current_and_next_key_and_they_rotate_together(store: Arc<dyn Store>) {
    current_and_next(&store).await;
    // An RS256 current key is created although an EdDSA one exists; a second
    // RS256 current key is not.
    for kid in ["rsa-current-0", "rsa-current-x"] {
        store
            .insert_signing_key_if_absent(rsa_key(kid, KeyState::Current))
            .await
            .unwrap();
    }
    let stored = store
        .insert_signing_key_if_absent(rsa_key("rsa-next-1", KeyState::Next))
        .await
        .unwrap();
    assert_eq!(stored.len(), 4, "{stored:?}");

    let KeyRotation::Rotated(rotated) = store
        .rotate_signing_keys(
            vec![key("next-2", KeyState::Next), rsa_key("rsa-next-2", KeyState::Next)],
            NOW + 10,
            Some(NOW + 5),
            audit("key_rotated", None),
        )
        .await
        .unwrap()
    else {
        panic!("not rotated");
    };
    let state_of = |kid: &str| {
        let k = rotated.iter().find(|k| k.kid == kid).unwrap();
        (k.algorithm.clone(), k.state.clone())
    };
    assert_eq!(state_of("current-0"), ("EdDSA".into(), KeyState::Retired));
    assert_eq!(state_of("next-1"), ("EdDSA".into(), KeyState::Current));
    assert_eq!(state_of("next-2"), ("EdDSA".into(), KeyState::Next));
    assert_eq!(state_of("rsa-current-0"), ("RS256".into(), KeyState::Retired));
    assert_eq!(state_of("rsa-next-1"), ("RS256".into(), KeyState::Current));
    assert_eq!(state_of("rsa-next-2"), ("RS256".into(), KeyState::Next));

    // Rotating only EdDSA leaves the RS256 keys alone.
    let KeyRotation::Rotated(rotated) = store
        .rotate_signing_keys(
            vec![key("next-3", KeyState::Next)],
            NOW + 20,
            None,
            audit("key_rotated", None),
        )
        .await
        .unwrap()
    else {
        panic!("not rotated");
    };
    let rsa_current: Vec<&str> = rotated
        .iter()
        .filter(|k| k.algorithm == "RS256" && k.state == KeyState::Current)
        .map(|k| k.kid.as_str())
        .collect();
    assert_eq!(rsa_current, ["rsa-next-1"]);
}

pub(super) async fn rotation_changes_nothing_when_one_algorithm_has_no_next_key(store: Arc<dyn Store>) {
    current_and_next(&store).await;
    store
        .insert_signing_key_if_absent(rsa_key("rsa-current-0", KeyState::Current))
        .await
        .unwrap();
    let before = store.signing_keys().await.unwrap();
    assert!(matches!(
        store
            .rotate_signing_keys(
                vec![key("next-2", KeyState::Next), rsa_key("rsa-next-2", KeyState::Next)],
                NOW + 10,
                None,
                audit("key_rotated", None),
            )
            .await
            .unwrap(),
        KeyRotation::NoNextKey
    ));
    let after = store.signing_keys().await.unwrap();
    let states = |keys: &[SigningKeyRecord]| {
        keys.iter()
            .map(|k| (k.kid.clone(), k.state.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(states(&before), states(&after));
}
