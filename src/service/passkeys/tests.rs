//! The ceremonies end to end against the software authenticator of
//! [`crate::testing::passkey`], and each way an answer must be refused.

use serde_json::json;

use super::*;
use crate::service::test_ports;
use crate::testing::passkey::SoftPasskey;

const ORIGIN: &str = "https://auth.example.com";

fn passkeys() -> Passkeys {
    Passkeys::new(&WebauthnConfig {
        rp_id: "example.com".to_string(),
        origins: vec![ORIGIN.to_string(), "https://app.example.com".to_string()],
    })
    .unwrap()
}

fn ann() -> PasskeyUser<'static> {
    PasskeyUser {
        user_handle: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_00aa),
        name: "ann@example.com",
        display_name: "Ann",
    }
}

/// Registers `authenticator` for Ann and answers what the store keeps.
fn register(rp: &Passkeys, authenticator: &mut SoftPasskey) -> RegisteredPasskey {
    let challenge = rp.start_registration(&ann(), &[]).unwrap();
    let answer = authenticator.register(&challenge.options);
    rp.finish_registration(&challenge.state, &RegistrationResponse::from_json(answer).unwrap())
        .unwrap()
}

/// A second-factor sign-in with `authenticator` against `stored`.
fn second_factor(rp: &Passkeys, authenticator: &mut SoftPasskey, stored: &[StoredPasskey]) -> PasskeyResult<Verified> {
    let challenge = rp.start_authentication(stored).unwrap();
    let answer = authenticator.sign_in(&challenge.options);
    rp.finish_authentication(&challenge.state, &AssertionResponse::from_json(answer)?, stored)
}

#[test]
fn register_then_authenticate_as_a_second_factor_and_passwordless() {
    let rp = passkeys();
    let mut authenticator = SoftPasskey::new(ORIGIN);
    let challenge = rp.start_registration(&ann(), &[]).unwrap();
    let options = &challenge.options;
    assert_eq!(options["rp"]["id"], "example.com");
    assert_eq!(options["user"]["name"], "ann@example.com");
    assert_eq!(options["user"]["displayName"], "Ann");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "preferred");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    assert!(
        options["challenge"].as_str().is_some_and(|c| c.len() >= 43),
        "{options}"
    );
    assert!(options.get("publicKey").is_none(), "the publicKey member itself");
    // The state round-trips through JSON, as the cache keeps it.
    let state: RegistrationState = serde_json::from_value(serde_json::to_value(&challenge.state).unwrap()).unwrap();
    let answer = authenticator.register(options);
    let registered = rp
        .finish_registration(&state, &RegistrationResponse::from_json(answer).unwrap())
        .unwrap();
    assert_eq!(registered.credential_id, authenticator.credential_id());
    assert_eq!(registered.credential.credential_id(), authenticator.credential_id());
    assert_eq!(registered.credential.user_handle(), ann().user_handle);
    assert_eq!(
        authenticator.user_handle(),
        Some(ann().user_handle.as_bytes().as_slice())
    );
    assert!(registered.user_verified);
    assert_eq!(registered.key_storage, KeyStorage::DeviceBound);
    assert_eq!(registered.key_storage.amr(), "hwk");
    assert_eq!(registered.credential.counter(), 1);

    // What the factors store keeps comes back intact.
    let json = registered.credential.to_value().unwrap();
    let stored = StoredPasskey::from_value(json).unwrap();
    assert_eq!(stored.credential_id(), registered.credential_id);

    // Second factor: the options name the user's credentials.
    let challenge = rp.start_authentication(std::slice::from_ref(&stored)).unwrap();
    assert_eq!(challenge.options["rpId"], "example.com");
    assert_eq!(challenge.options["allowCredentials"][0]["id"], stored.credential_id());
    let answer = authenticator.sign_in(&challenge.options);
    let verified = rp
        .finish_authentication(
            &challenge.state,
            &AssertionResponse::from_json(answer).unwrap(),
            std::slice::from_ref(&stored),
        )
        .unwrap();
    assert_eq!(verified.credential_id, stored.credential_id());
    assert!(verified.user_verified);
    assert_eq!(verified.key_storage.amr(), "hwk");
    let stored = verified.updated.expect("the counter moved");
    assert_eq!(stored.counter(), 2);

    // Passwordless: no user named; the assertion says who.
    let challenge = rp.start_discoverable().unwrap();
    assert!(
        challenge.options["allowCredentials"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    let answer = AssertionResponse::from_json(authenticator.sign_in(&challenge.options)).unwrap();
    assert_eq!(answer.credential_id(), stored.credential_id());
    let identified = rp.identify(&answer).unwrap();
    assert_eq!(
        identified,
        Identified {
            credential_id: stored.credential_id(),
            user_handle: ann().user_handle,
        }
    );
    let verified = rp.finish_discoverable(challenge.state, &answer, &stored).unwrap();
    assert!(verified.user_verified);
    assert_eq!(verified.updated.expect("counter").counter(), 3);
}

#[test]
fn every_configured_origin_works_and_no_other() {
    let rp = passkeys();
    let mut authenticator = SoftPasskey::new("https://app.example.com");
    let stored = register(&rp, &mut authenticator).credential;
    assert!(second_factor(&rp, &mut authenticator, std::slice::from_ref(&stored)).is_ok());

    for origin in [
        "https://evil.example.net",
        "http://auth.example.com",
        "https://auth.example.com:8443",
        "https://other.example.com",
    ] {
        authenticator.set_origin(origin);
        let err = second_factor(&rp, &mut authenticator, std::slice::from_ref(&stored)).unwrap_err();
        assert!(
            matches!(&err, PasskeyError::Rejected(why) if why.contains("Origin")),
            "{origin}: {err:?}"
        );

        let mut phished = SoftPasskey::new(origin);
        let challenge = rp.start_registration(&ann(), &[]).unwrap();
        let answer = RegistrationResponse::from_json(phished.register(&challenge.options)).unwrap();
        let err = rp.finish_registration(&challenge.state, &answer).unwrap_err();
        assert!(
            matches!(&err, PasskeyError::Rejected(why) if why.contains("Origin")),
            "{err:?}"
        );
    }
}

#[test]
fn a_signature_for_another_relying_party_is_refused() {
    let rp = passkeys();
    let mut authenticator = SoftPasskey::new(ORIGIN);
    let stored = register(&rp, &mut authenticator).credential;
    authenticator.set_rp_id("evil.example.net");
    let err = second_factor(&rp, &mut authenticator, std::slice::from_ref(&stored)).unwrap_err();
    assert!(
        matches!(&err, PasskeyError::Rejected(why) if why.contains("RPIDHash")),
        "{err:?}"
    );

    let mut other = SoftPasskey::new(ORIGIN);
    other.set_rp_id("auth.example.com");
    let challenge = rp.start_registration(&ann(), &[]).unwrap();
    let answer = RegistrationResponse::from_json(other.register(&challenge.options)).unwrap();
    let err = rp.finish_registration(&challenge.state, &answer).unwrap_err();
    assert!(
        matches!(&err, PasskeyError::Rejected(why) if why.contains("RPIDHash")),
        "{err:?}"
    );
}

#[test]
fn an_answer_to_another_challenge_is_refused() {
    let rp = passkeys();
    let mut authenticator = SoftPasskey::new(ORIGIN);
    let stored = vec![register(&rp, &mut authenticator).credential];
    let first = rp.start_authentication(&stored).unwrap();
    let second = rp.start_authentication(&stored).unwrap();
    let answer = AssertionResponse::from_json(authenticator.sign_in(&first.options)).unwrap();
    let err = rp.finish_authentication(&second.state, &answer, &stored).unwrap_err();
    assert!(
        matches!(&err, PasskeyError::Rejected(why) if why.contains("Challenge")),
        "{err:?}"
    );

    // The same goes for registration and passwordless sign-in.
    let mut fresh = SoftPasskey::new(ORIGIN);
    let first = rp.start_registration(&ann(), &[]).unwrap();
    let second = rp.start_registration(&ann(), &[]).unwrap();
    let answer = RegistrationResponse::from_json(fresh.register(&first.options)).unwrap();
    assert!(matches!(
        rp.finish_registration(&second.state, &answer),
        Err(PasskeyError::Rejected(_))
    ));
    let first = rp.start_discoverable().unwrap();
    let second = rp.start_discoverable().unwrap();
    let answer = AssertionResponse::from_json(authenticator.sign_in(&first.options)).unwrap();
    assert!(matches!(
        rp.finish_discoverable(second.state, &answer, &stored[0]),
        Err(PasskeyError::Rejected(_))
    ));
}

/// The state lives in the cache once: the answer replayed against the same
/// request id finds nothing to finish.
#[tokio::test]
async fn a_replayed_answer_finds_no_ceremony() {
    let rp = passkeys();
    let ceremonies = Ceremonies::new(test_ports::cache());
    let user = Some(ann().user_handle);
    let mut authenticator = SoftPasskey::new(ORIGIN);
    let stored = vec![register(&rp, &mut authenticator).credential];

    let challenge = rp.start_authentication(&stored).unwrap();
    let request_id = ceremonies.start(user, &challenge.state).await.unwrap();
    let answer = AssertionResponse::from_json(authenticator.sign_in(&challenge.options)).unwrap();
    let state: AuthenticationState = ceremonies.take(&request_id, user).await.unwrap().unwrap();
    rp.finish_authentication(&state, &answer, &stored).unwrap();
    let again: Option<AuthenticationState> = ceremonies.take(&request_id, user).await.unwrap();
    assert!(again.is_none(), "single use");
    // A registration id does not finish a sign-in either.
    let reg = rp.start_registration(&ann(), &[]).unwrap();
    let reg_id = ceremonies.start(user, &reg.state).await.unwrap();
    let wrong_kind: Option<AuthenticationState> = ceremonies.take(&reg_id, user).await.unwrap();
    assert!(wrong_kind.is_none());
    let disc = rp.start_discoverable().unwrap();
    let disc_id = ceremonies.start(None, &disc.state).await.unwrap();
    let disc_state: DiscoverableState = ceremonies.take(&disc_id, None).await.unwrap().unwrap();
    let answer = AssertionResponse::from_json(authenticator.sign_in(&disc.options)).unwrap();
    rp.finish_discoverable(disc_state, &answer, &stored[0]).unwrap();
}

/// webauthn-rs's policy: an authenticator that keeps a counter must show
/// a larger one each time; a copy still at an older value is refused.
#[test]
fn a_cloned_authenticator_whose_counter_goes_back_is_refused() {
    let rp = passkeys();
    let mut original = SoftPasskey::new(ORIGIN);
    let mut stored = register(&rp, &mut original).credential;
    let mut clone = original.clone();
    for _ in 0..3 {
        let verified = second_factor(&rp, &mut original, std::slice::from_ref(&stored)).unwrap();
        stored = verified.updated.unwrap();
    }
    assert_eq!(stored.counter(), 4);
    let err = second_factor(&rp, &mut clone, std::slice::from_ref(&stored)).unwrap_err();
    assert!(matches!(err, PasskeyError::PossiblyCloned), "{err:?}");
    // Equal is not enough either.
    clone.set_counter(3);
    let err = second_factor(&rp, &mut clone, std::slice::from_ref(&stored)).unwrap_err();
    assert!(matches!(err, PasskeyError::PossiblyCloned), "{err:?}");
    // The original carries on.
    assert!(second_factor(&rp, &mut original, std::slice::from_ref(&stored)).is_ok());
}

#[test]
fn a_synced_passkey_without_a_counter_is_software_backed_and_never_needs_an_update() {
    let rp = passkeys();
    let mut authenticator = SoftPasskey::new(ORIGIN).synced();
    let registered = register(&rp, &mut authenticator);
    assert_eq!(registered.key_storage, KeyStorage::Synced);
    assert_eq!(registered.key_storage.amr(), "swk");
    assert_eq!(registered.credential.key_storage(), KeyStorage::Synced);
    let stored = [registered.credential];
    for _ in 0..2 {
        let verified = second_factor(&rp, &mut authenticator, &stored).unwrap();
        assert_eq!(verified.key_storage.amr(), "swk");
        assert!(
            verified.updated.is_none(),
            "counter 0 and the same flags: nothing to write"
        );
    }
}

#[test]
fn user_verification_is_required() {
    let rp = passkeys();
    let mut authenticator = SoftPasskey::new(ORIGIN);
    let stored = register(&rp, &mut authenticator).credential;
    authenticator.skip_user_verification();
    let err = second_factor(&rp, &mut authenticator, std::slice::from_ref(&stored)).unwrap_err();
    assert!(
        matches!(&err, PasskeyError::Rejected(why) if why.contains("UserNotVerified")),
        "{err:?}"
    );

    let mut lazy = SoftPasskey::new(ORIGIN);
    lazy.skip_user_verification();
    let challenge = rp.start_registration(&ann(), &[]).unwrap();
    let answer = RegistrationResponse::from_json(lazy.register(&challenge.options)).unwrap();
    assert!(rp.finish_registration(&challenge.state, &answer).is_err());
}

#[test]
fn credentials_are_matched_to_their_owner() {
    let rp = passkeys();
    let mut anns = SoftPasskey::new(ORIGIN);
    let ann_key = register(&rp, &mut anns).credential;
    let mut bobs = SoftPasskey::new(ORIGIN);
    let bob = PasskeyUser {
        user_handle: Uuid::new_v4(),
        name: "bob@example.com",
        display_name: "Bob",
    };
    let challenge = rp.start_registration(&bob, &[]).unwrap();
    let answer = RegistrationResponse::from_json(bobs.register(&challenge.options)).unwrap();
    let bob_key = rp.finish_registration(&challenge.state, &answer).unwrap().credential;

    // Ann's second factor does not take Bob's passkey.
    let challenge = rp.start_authentication(std::slice::from_ref(&ann_key)).unwrap();
    let mut options = challenge.options.clone();
    options["allowCredentials"] = json!([]);
    let answer = AssertionResponse::from_json(bobs.sign_in(&options)).unwrap();
    assert!(
        rp.finish_authentication(&challenge.state, &answer, &[ann_key.clone(), bob_key.clone()])
            .is_err()
    );

    // Passwordless: finishing with a credential other than the one named fails.
    let challenge = rp.start_discoverable().unwrap();
    let answer = AssertionResponse::from_json(bobs.sign_in(&challenge.options)).unwrap();
    assert_eq!(rp.identify(&answer).unwrap().user_handle, bob.user_handle);
    assert!(matches!(
        rp.finish_discoverable(challenge.state, &answer, &ann_key),
        Err(PasskeyError::UnknownCredential)
    ));
}

#[test]
fn registration_excludes_the_users_passkeys() {
    let rp = passkeys();
    let mut authenticator = SoftPasskey::new(ORIGIN);
    let stored = register(&rp, &mut authenticator).credential;
    let challenge = rp.start_registration(&ann(), &[stored.credential_id()]).unwrap();
    assert_eq!(challenge.options["excludeCredentials"][0]["id"], stored.credential_id());
    assert!(matches!(
        rp.start_registration(&ann(), &["not base64url!".to_string()]),
        Err(PasskeyError::Corrupt(_))
    ));
}

#[test]
fn malformed_answers_and_stored_data_are_told_apart() {
    for junk in [
        json!({}),
        json!("x"),
        json!({"id": "a", "rawId": "a", "type": "public-key"}),
    ] {
        assert!(matches!(
            RegistrationResponse::from_json(junk.clone()),
            Err(PasskeyError::Malformed(_))
        ));
        assert!(matches!(
            AssertionResponse::from_json(junk),
            Err(PasskeyError::Malformed(_))
        ));
    }
    for corrupt in [
        json!(""),
        json!({}),
        json!(null),
        json!({"v": 2, "user_handle": null, "passkey": null}),
    ] {
        assert!(
            matches!(
                StoredPasskey::from_value(corrupt.clone()),
                Err(PasskeyError::Corrupt(_))
            ),
            "{corrupt}"
        );
    }
    // A well-formed answer whose binary parts are garbage.
    let rp = passkeys();
    let challenge = rp.start_registration(&ann(), &[]).unwrap();
    let garbage = RegistrationResponse::from_json(json!({
        "id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"},
    }))
    .unwrap();
    assert!(rp.finish_registration(&challenge.state, &garbage).is_err());
}

#[test]
fn without_a_relying_party_id_passkeys_are_off() {
    let rp = Passkeys::new(&WebauthnConfig::default()).unwrap();
    assert!(!rp.is_enabled());
    assert!(matches!(
        rp.start_registration(&ann(), &[]),
        Err(PasskeyError::Unavailable)
    ));
    assert!(matches!(rp.start_discoverable(), Err(PasskeyError::Unavailable)));
    assert!(passkeys().is_enabled());
    // The loader's default for a local trial works.
    assert!(
        Passkeys::new(&crate::config::Config::for_tests().webauthn)
            .unwrap()
            .is_enabled()
    );
    // An origin off the relying party is refused at start-up.
    assert!(
        Passkeys::new(&WebauthnConfig {
            rp_id: "example.com".to_string(),
            origins: vec!["https://example.org".to_string()],
        })
        .is_err()
    );
}
