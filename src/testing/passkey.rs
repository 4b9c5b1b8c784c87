//! A software passkey authenticator for tests: it answers the options forge
//! sends (`publicKey` of `{request_id, publicKey}`) with the JSON a browser's
//! `PublicKeyCredential.toJSON()` gives, signing with a P-256 key it holds,
//! so registration and sign-in can be tested end to end without a browser.
//!
//! It behaves like a CTAP2 authenticator with attestation `none`: the
//! client data names the origin it is told (a browser would send the page's),
//! the authenticator data hashes the relying-party id of the options (or
//! the one it is told to lie about), and it reports user presence and user
//! verification. Knobs let tests play the attacker: another origin, another
//! relying party, an old counter (clone it, use both copies), no user
//! verification.
//!
//! ```no_run
//! # fn demo(options: &serde_json::Value) {
//! use forge::testing::passkey::SoftPasskey;
//! let mut authenticator = SoftPasskey::new("http://localhost:8080");
//! let credential = authenticator.register(options);
//! // POST /v1/users/me/factors/webauthn {request_id, name, credential}
//! # }
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::RngCore;
use rand::rngs::OsRng;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Authenticator-data flags (WebAuthn section 6.1).
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// One credential on a software authenticator. `Clone` copies the key and
/// the counter: the copy is a cloned authenticator.
#[derive(Clone)]
pub struct SoftPasskey {
    key: SigningKey,
    credential_id: Vec<u8>,
    user_handle: Option<Vec<u8>>,
    counter: u32,
    counts: bool,
    synced: bool,
    verifies_user: bool,
    origin: String,
    rp_id: Option<String>,
}

impl SoftPasskey {
    /// A device-bound authenticator with a signature counter, on a page of
    /// `origin` (e.g. `http://localhost:8080`).
    pub fn new(origin: &str) -> Self {
        let mut credential_id = vec![0u8; 32];
        OsRng.fill_bytes(&mut credential_id);
        Self {
            key: SigningKey::random(&mut OsRng),
            credential_id,
            user_handle: None,
            counter: 0,
            counts: true,
            synced: false,
            verifies_user: true,
            origin: origin.to_string(),
            rp_id: None,
        }
    }

    /// A synced passkey (a password manager's): backup eligible and backed
    /// up, and no counter (always 0), as synced passkeys report.
    pub fn synced(mut self) -> Self {
        self.synced = true;
        self.counts = false;
        self
    }

    /// From now on, answers as a page of `origin` would.
    pub fn set_origin(&mut self, origin: &str) {
        self.origin = origin.to_string();
    }

    /// From now on, signs for `rp_id` instead of the one in the options.
    pub fn set_rp_id(&mut self, rp_id: &str) {
        self.rp_id = Some(rp_id.to_string());
    }

    /// From now on, reports user presence only (no PIN, no biometric).
    pub fn skip_user_verification(&mut self) {
        self.verifies_user = false;
    }

    /// Sets the signature counter (the next use reports `counter + 1`).
    pub fn set_counter(&mut self, counter: u32) {
        self.counter = counter;
    }

    /// The credential id, base64url (the `id` of its answers).
    pub fn credential_id(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.credential_id)
    }

    /// The user handle it stored at registration.
    pub fn user_handle(&self) -> Option<&[u8]> {
        self.user_handle.as_deref()
    }

    /// Answers creation options (`publicKey`, or the whole
    /// `{publicKey}`) as `navigator.credentials.create()` would. Panics when
    /// the options exclude this credential, as an authenticator refuses to
    /// register twice.
    pub fn register(&mut self, options: &Value) -> Value {
        let options = options.get("publicKey").unwrap_or(options);
        let excluded = options["excludeCredentials"]
            .as_array()
            .is_some_and(|list| list.iter().any(|c| c["id"] == self.credential_id()));
        assert!(
            !excluded,
            "this authenticator already holds a credential for the account"
        );
        let rp_id = self
            .rp_id
            .clone()
            .unwrap_or_else(|| options["rp"]["id"].as_str().expect("rp.id").to_string());
        let user_id = options["user"]["id"].as_str().expect("user.id");
        self.user_handle = Some(decode(user_id));
        let client_data = self.client_data("webauthn.create", options);

        let point = self.key.verifying_key().to_encoded_point(false);
        let mut cose = Cbor::default();
        cose.map(5);
        cose.int(1).int(2); // kty: EC2
        cose.int(3).int(-7); // alg: ES256
        cose.int(-1).int(1); // crv: P-256
        cose.int(-2).bytes(point.x().expect("x"));
        cose.int(-3).bytes(point.y().expect("y"));

        let mut auth_data = self.auth_data(&rp_id, AT);
        auth_data.extend_from_slice(&[0u8; 16]); // AAGUID: none
        auth_data.extend_from_slice(&u16::try_from(self.credential_id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&self.credential_id);
        auth_data.extend_from_slice(&cose.0);

        let mut attestation = Cbor::default();
        attestation.map(3);
        attestation.text("fmt").text("none");
        attestation.text("attStmt").map(0);
        attestation.text("authData").bytes(&auth_data);

        json!({
            "id": self.credential_id(),
            "rawId": self.credential_id(),
            "type": "public-key",
            "response": {
                "clientDataJSON": URL_SAFE_NO_PAD.encode(&client_data),
                "attestationObject": URL_SAFE_NO_PAD.encode(&attestation.0),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
        })
    }

    /// Answers request options as `navigator.credentials.get()` would.
    /// Panics when the options allow only other credentials.
    pub fn sign_in(&mut self, options: &Value) -> Value {
        let options = options.get("publicKey").unwrap_or(options);
        if let Some(allowed) = options["allowCredentials"].as_array().filter(|l| !l.is_empty()) {
            assert!(
                allowed.iter().any(|c| c["id"] == self.credential_id()),
                "the options do not allow this credential"
            );
        }
        let rp_id = self
            .rp_id
            .clone()
            .unwrap_or_else(|| options["rpId"].as_str().expect("rpId").to_string());
        let client_data = self.client_data("webauthn.get", options);
        let auth_data = self.auth_data(&rp_id, 0);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let signature: Signature = self.key.sign(&signed);
        json!({
            "id": self.credential_id(),
            "rawId": self.credential_id(),
            "type": "public-key",
            "response": {
                "clientDataJSON": URL_SAFE_NO_PAD.encode(&client_data),
                "authenticatorData": URL_SAFE_NO_PAD.encode(&auth_data),
                "signature": URL_SAFE_NO_PAD.encode(signature.to_der().as_bytes()),
                "userHandle": self.user_handle.as_ref().map(|h| URL_SAFE_NO_PAD.encode(h)),
            },
            "clientExtensionResults": {},
        })
    }

    fn client_data(&self, kind: &str, options: &Value) -> Vec<u8> {
        let challenge = options["challenge"].as_str().expect("challenge");
        serde_json::to_vec(&json!({
            "type": kind,
            "challenge": challenge,
            "origin": self.origin,
            "crossOrigin": false,
        }))
        .unwrap()
    }

    /// rpIdHash, flags and the counter (bumped first when it counts).
    fn auth_data(&mut self, rp_id: &str, extra_flags: u8) -> Vec<u8> {
        if self.counts {
            self.counter += 1;
        }
        let mut flags = UP | extra_flags;
        if self.verifies_user {
            flags |= UV;
        }
        if self.synced {
            flags |= BE | BS;
        }
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        data.push(flags);
        data.extend_from_slice(&self.counter.to_be_bytes());
        data
    }
}

fn decode(b64: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(b64.trim_end_matches('='))
        .expect("base64url in the options")
}

/// Just enough CBOR (RFC 8949) to write an attestation object and a COSE
/// key: integers, byte and text strings, maps.
#[derive(Default)]
struct Cbor(Vec<u8>);

impl Cbor {
    fn head(&mut self, major: u8, n: u64) -> &mut Self {
        let major = major << 5;
        match n {
            0..=23 => self.0.push(major | n as u8),
            24..=0xff => self.0.extend_from_slice(&[major | 24, n as u8]),
            0x100..=0xffff => {
                self.0.push(major | 25);
                self.0.extend_from_slice(&(n as u16).to_be_bytes());
            }
            _ => {
                self.0.push(major | 27);
                self.0.extend_from_slice(&n.to_be_bytes());
            }
        }
        self
    }

    fn int(&mut self, n: i64) -> &mut Self {
        if n >= 0 {
            self.head(0, n as u64)
        } else {
            self.head(1, (-1 - n) as u64)
        }
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.head(2, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.head(3, s.len() as u64);
        self.0.extend_from_slice(s.as_bytes());
        self
    }

    fn map(&mut self, pairs: u64) -> &mut Self {
        self.head(5, pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbor_heads_follow_rfc_8949() {
        let mut c = Cbor::default();
        c.int(10).int(-7).int(500).text("a").bytes(&[1, 2]).map(0);
        assert_eq!(c.0, [0x0a, 0x26, 0x19, 0x01, 0xf4, 0x61, b'a', 0x42, 1, 2, 0xa0]);
    }
}
