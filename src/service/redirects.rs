//! Where forge may send a browser: the one check every `rd` (and, as they
//! come, every `redirect_to`) passes before it becomes a `Location`.
//!
//! The invariant: forge only ever redirects to a URL it parsed itself, whose
//! origin is in `server.allowed_redirects` (or which equals an exact URL
//! listed there), and it redirects to that parsed form, never to the text it
//! was given. Parsing first means the check and the browser agree on the
//! host: `https://good.example@evil.example` has the host `evil.example`
//! and user info, and user info is refused outright because people read
//! such a link the other way round. With an empty list only the origin of
//! `server.public_url` is allowed, so a fresh install is no open redirect.

use url::Url;

use crate::config::ServerConfig;

/// The allow list, normalised once: origins in their ASCII serialisation
/// (default ports dropped, host lower-cased, IDNA applied) and exact URLs in
/// their parsed serialisation.
#[derive(Clone, Debug)]
pub struct RedirectPolicy {
    origins: Vec<String>,
    exact: Vec<String>,
}

impl RedirectPolicy {
    /// Entries that do not parse are skipped (`Config::validate` refuses them
    /// at start-up, so none reach here in a running server).
    pub fn new(server: &ServerConfig) -> Self {
        let mut policy = RedirectPolicy {
            origins: Vec::new(),
            exact: Vec::new(),
        };
        if server.allowed_redirects.is_empty() {
            // The public URL may carry a path; its whole origin is forge's own.
            policy
                .origins
                .extend(parse_target(&server.public_url).map(|u| u.origin().ascii_serialization()));
            return policy;
        }
        for entry in &server.allowed_redirects {
            let Some(url) = parse_target(entry) else { continue };
            let origin = url.origin().ascii_serialization();
            // `https://app.example.com` (with or without the slash) names an
            // origin; anything with a path or query is one exact URL.
            if url.path() == "/" && url.query().is_none() {
                policy.origins.push(origin);
            } else {
                policy.exact.push(url.to_string());
            }
        }
        policy
    }

    /// The URL to redirect to, if `target` may be one: an absolute http(s)
    /// URL without user info, on an allowed origin or equal to an allowed
    /// exact URL. `None` otherwise: the caller must then not redirect there.
    pub fn check(&self, target: &str) -> Option<Url> {
        let url = parse_target(target)?;
        let allowed =
            self.origins.contains(&url.origin().ascii_serialization()) || self.exact.contains(&url.to_string());
        allowed.then_some(url)
    }
}

/// An absolute http(s) URL with a host and no user info. Text with
/// whitespace, control characters or backslashes is refused rather than
/// cleaned: the URL parser would drop tabs and newlines and read `\` as `/`,
/// and a target that needs repairs is not one a proxy sent honestly.
fn parse_target(text: &str) -> Option<Url> {
    if text.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\\') {
        return None;
    }
    let url = Url::parse(text).ok()?;
    let ok = matches!(url.scheme(), "http" | "https")
        && url.host().is_some()
        && url.username().is_empty()
        && url.password().is_none();
    ok.then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(public_url: &str, allowed: &[&str]) -> RedirectPolicy {
        RedirectPolicy::new(&ServerConfig {
            public_url: public_url.to_owned(),
            allowed_redirects: allowed.iter().map(|s| (*s).to_owned()).collect(),
            ..ServerConfig::default()
        })
    }

    #[test]
    fn an_empty_list_allows_only_the_public_origin() {
        let p = policy("https://auth.example.com", &[]);
        assert!(p.check("https://auth.example.com/anything?x=1").is_some());
        assert!(p.check("https://auth.example.com:443/").is_some());
        for bad in [
            "https://evil.example/",
            "http://auth.example.com/",
            "https://auth.example.com.evil.example/",
            "https://auth.example.com@evil.example/",
            "https://evil.example\\@auth.example.com/",
            "https://auth.example.com:8443/",
            "//evil.example/",
            "/relative",
            "javascript:alert(1)",
            "https://auth.example.com/\n",
            "",
        ] {
            assert!(p.check(bad).is_none(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn origins_allow_any_path_exact_urls_only_themselves() {
        let p = policy(
            "https://auth.example.com",
            &[
                "https://app.example.com",
                "https://wiki.example.com/",
                "https://docs.example.com/start",
            ],
        );
        assert!(p.check("https://app.example.com/a/b?c=d").is_some());
        assert!(p.check("https://wiki.example.com/page").is_some());
        assert!(p.check("https://docs.example.com/start").is_some());
        assert!(p.check("https://docs.example.com/other").is_none());
        // A list replaces the default: the public origin is then not implied.
        assert!(p.check("https://auth.example.com/").is_none());
        assert!(
            p.check("https://APP.example.com/x").is_some(),
            "hosts compare case-insensitively"
        );
    }

    #[test]
    fn the_checked_url_is_what_is_returned() {
        let p = policy("https://auth.example.com", &[]);
        let url = p.check("https://auth.example.com/a/../b?q=1").unwrap();
        assert_eq!(url.as_str(), "https://auth.example.com/b?q=1");
    }
}
