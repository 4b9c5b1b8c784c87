//! Turning plain OAuth 2 userinfo documents (a [`ClaimMap`]) and GitHub's
//! user and emails documents into an [`UpstreamIdentity`].

use serde_json::Value;

use super::UpstreamIdentity;
use super::id_token::truthy;
use crate::domain::providers::ClaimMap;

/// Subjects longer than this are refused (they become part of a key).
pub const MAX_SUBJECT_LEN: usize = 255;

/// A subject is a non-empty string or an integer (GitHub's and several
/// OAuth 2 providers' ids are numbers), as its decimal text.
fn subject(value: Option<&Value>) -> Option<String> {
    let s = match value? {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return None,
    };
    (!s.is_empty() && s.len() <= MAX_SUBJECT_LEN).then_some(s)
}

fn text(doc: &Value, field: Option<&str>) -> Option<String> {
    let s = doc.get(field?)?.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Maps a userinfo document with the provider's claim map. Without an
/// `email_verified` field in the map, the email is never verified.
pub fn map_userinfo(doc: &Value, map: &ClaimMap) -> Result<UpstreamIdentity, &'static str> {
    if !doc.is_object() {
        return Err("userinfo is not an object");
    }
    let subject = subject(doc.get(&map.subject)).ok_or("no subject")?;
    let email = text(doc, map.email.as_deref());
    let email_verified = email.is_some() && map.email_verified.as_deref().is_some_and(|f| truthy(doc.get(f)));
    Ok(UpstreamIdentity {
        subject,
        email,
        email_verified,
        name: text(doc, map.name.as_deref()),
    })
}

/// GitHub's email: the primary address when GitHub has verified it, else
/// none (a secondary verified address is not the one the person chose, and
/// an unverified primary proves nothing).
pub fn github_primary_email(emails: &Value) -> Option<String> {
    emails.as_array()?.iter().find_map(|e| {
        let primary = e.get("primary").and_then(Value::as_bool) == Some(true);
        let verified = e.get("verified").and_then(Value::as_bool) == Some(true);
        let email = e.get("email")?.as_str()?.trim();
        (primary && verified && !email.is_empty()).then(|| email.to_owned())
    })
}

/// A GitHub identity from `GET /user` (numeric `id` as subject, since
/// logins can be renamed and reused) and the emails list when there is one.
pub fn github_identity(user: &Value, emails: Option<&Value>) -> Result<UpstreamIdentity, &'static str> {
    let subject = subject(user.get("id")).ok_or("no subject")?;
    let email = emails.and_then(github_primary_email);
    Ok(UpstreamIdentity {
        subject,
        email_verified: email.is_some(),
        email,
        name: text(user, Some("name")).or_else(|| text(user, Some("login"))),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn claim_map_reads_the_named_fields() {
        let map = ClaimMap {
            subject: "user_id".into(),
            email: Some("mail".into()),
            email_verified: Some("mail_ok".into()),
            name: Some("display".into()),
        };
        let doc = json!({"user_id": 42, "mail": "a@example.com", "mail_ok": "true", "display": "A"});
        let id = map_userinfo(&doc, &map).unwrap();
        assert_eq!(id.subject, "42");
        assert_eq!(id.email.as_deref(), Some("a@example.com"));
        assert!(id.email_verified);
        assert_eq!(id.name.as_deref(), Some("A"));

        let unverified = json!({"user_id": "x", "mail": "a@example.com", "mail_ok": false});
        assert!(!map_userinfo(&unverified, &map).unwrap().email_verified);
        let no_verification_field = ClaimMap {
            email_verified: None,
            ..map.clone()
        };
        assert!(!map_userinfo(&doc, &no_verification_field).unwrap().email_verified);
    }

    #[test]
    fn claim_map_needs_a_subject() {
        let map = ClaimMap::default();
        for doc in [
            json!({}),
            json!({"sub": ""}),
            json!({"sub": 1.5}),
            json!({"sub": null}),
            json!([1]),
        ] {
            assert!(map_userinfo(&doc, &map).is_err(), "{doc}");
        }
        let verified_without_email = json!({"sub": "s", "email_verified": true});
        let id = map_userinfo(&verified_without_email, &map).unwrap();
        assert_eq!(id.email, None);
        assert!(!id.email_verified);
    }

    #[test]
    fn github_email_is_the_verified_primary_only() {
        let emails = json!([
            {"email": "second@example.com", "primary": false, "verified": true, "visibility": null},
            {"email": "main@example.com", "primary": true, "verified": true, "visibility": "public"},
        ]);
        assert_eq!(github_primary_email(&emails).as_deref(), Some("main@example.com"));
        let unverified_primary = json!([
            {"email": "second@example.com", "primary": false, "verified": true, "visibility": null},
            {"email": "main@example.com", "primary": true, "verified": false, "visibility": "public"},
        ]);
        assert_eq!(github_primary_email(&unverified_primary), None);
        assert_eq!(github_primary_email(&json!([])), None);
        assert_eq!(github_primary_email(&json!({"message": "Not Found"})), None);
    }

    #[test]
    fn github_identity_uses_the_numeric_id() {
        let user = json!({"id": 583231, "login": "octocat", "name": null});
        let id = github_identity(&user, None).unwrap();
        assert_eq!(id.subject, "583231");
        assert_eq!(id.name.as_deref(), Some("octocat"));
        assert_eq!(id.email, None);
        assert!(!id.email_verified);
        assert!(github_identity(&json!({"login": "x"}), None).is_err());
    }
}
