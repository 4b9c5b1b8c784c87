//! What forward auth answers a caller without a valid session: a 401 for
//! programs, a redirect to the sign-in page for a person in a browser.
//!
//! The rules follow Authelia's, which the reverse proxies' own
//! documentation is written against:
//!
//! - **A browser** is a request whose `Accept` header (the proxies copy the
//!   original request's headers onto the check) ranks `text/html` (or
//!   `application/xhtml+xml`) at least as high as anything else it lists,
//!   and which is not marked `X-Requested-With: XMLHttpRequest`. Unlike
//!   Authelia, a bare `*/*` is not a browser: curl and `fetch()` send it.
//! - **The page it asked for** is, in this order: the `rd` query parameter
//!   the proxy config may add; for nginx's `auth_request`
//!   (`mode=auth_request`) the `X-Original-URL` header its config sets;
//!   for the others (Caddy `forward_auth`, Traefik `forwardAuth`, the
//!   default) `X-Forwarded-Proto` + `X-Forwarded-Host` + `X-Forwarded-Uri`,
//!   which those proxies set themselves. Each mode reads only the header
//!   its proxy writes, so a header a client added on its own is not read.
//! - **The redirect** goes to `forward_auth.login_url` with that page as
//!   `?rd=`, only when the page passes [`RedirectPolicy`]; a page outside
//!   `server.allowed_redirects` is never passed on and the browser gets the
//!   plain 401. Without a known page the sign-in page is still offered,
//!   without `rd`. Without a `login_url`, nobody is redirected.
//! - nginx's `auth_request` treats anything but 2xx, 401 and 403 as an
//!   error, so in `mode=auth_request` the redirect is a 401 carrying the
//!   `Location`, which the nginx config turns into the 302.

use url::Url;

use crate::config::Config;
use crate::service::redirects::RedirectPolicy;

/// Which proxy asks (`?mode=`): it decides where the original URL is read
/// from and how a redirect is spelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Caddy `forward_auth`, Traefik `forwardAuth`: the answer reaches the
    /// client as it is, and the proxy sets `X-Forwarded-*`.
    #[default]
    ForwardAuth,
    /// nginx `auth_request`: only 2xx, 401 and 403 are understood, and the
    /// config sets `X-Original-URL`.
    AuthRequest,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, &'static str> {
        match text {
            "forward_auth" => Ok(Mode::ForwardAuth),
            "auth_request" => Ok(Mode::AuthRequest),
            _ => Err("must be forward_auth or auth_request"),
        }
    }
}

/// What the proxy told forge about the request it is checking, as text
/// taken from the check's query and headers.
#[derive(Clone, Copy, Debug, Default)]
pub struct OriginalRequest<'a> {
    pub mode: Mode,
    pub rd: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub requested_with: Option<&'a str>,
    /// `X-Forwarded-Method` or `X-Original-Method`.
    pub method: Option<&'a str>,
    pub original_url: Option<&'a str>,
    pub forwarded_proto: Option<&'a str>,
    pub forwarded_host: Option<&'a str>,
    pub forwarded_uri: Option<&'a str>,
}

/// The answer to a request without a valid session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// 401, nothing more.
    Unauthorized,
    /// Send the browser to `location`: 302 (303 after a method other than
    /// GET or HEAD, so the browser follows with a GET), or in
    /// [`Mode::AuthRequest`] a 401 carrying the `Location`.
    SignIn { location: Url, see_other: bool },
}

/// Decides the answer; see the module documentation for the rules.
pub fn challenge(config: &Config, request: &OriginalRequest<'_>) -> Challenge {
    let login_url = config.forward_auth.login_url.as_str();
    if login_url.is_empty() || !is_browser(request) {
        return Challenge::Unauthorized;
    }
    let Ok(mut location) = Url::parse(login_url) else {
        return Challenge::Unauthorized;
    };
    if let Some(target) = original_url(request) {
        let Some(allowed) = RedirectPolicy::new(&config.server).check(&target) else {
            tracing::warn!(
                "forward auth: the original URL is outside server.allowed_redirects; answering 401 instead of a redirect"
            );
            return Challenge::Unauthorized;
        };
        location.query_pairs_mut().append_pair("rd", allowed.as_str());
    }
    let see_other = request
        .method
        .is_some_and(|m| !m.eq_ignore_ascii_case("GET") && !m.eq_ignore_ascii_case("HEAD"));
    Challenge::SignIn { location, see_other }
}

fn is_browser(request: &OriginalRequest<'_>) -> bool {
    let xhr = request
        .requested_with
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("XMLHttpRequest"));
    !xhr && request.accept.is_some_and(prefers_html)
}

/// True when `accept` ranks an HTML type at least as high as every other
/// media range it lists (and above zero).
pub fn prefers_html(accept: &str) -> bool {
    let mut best_html = 0.0_f32;
    let mut best_other = 0.0_f32;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(0.0);
        if media == "text/html" || media == "application/xhtml+xml" {
            best_html = best_html.max(q);
        } else {
            best_other = best_other.max(q);
        }
    }
    best_html > 0.0 && best_html >= best_other
}

/// A header holding one value: a list (`a, b`, from a proxy chain or a
/// client that added its own) is not guessed at.
fn single(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty() && !v.contains(','))
}

/// The URL the client asked the proxy for, as text (not yet checked).
fn original_url(request: &OriginalRequest<'_>) -> Option<String> {
    if let Some(rd) = request.rd.map(str::trim).filter(|v| !v.is_empty()) {
        return Some(rd.to_owned());
    }
    match request.mode {
        Mode::AuthRequest => single(request.original_url).map(str::to_owned),
        Mode::ForwardAuth => {
            let proto = single(request.forwarded_proto)?;
            let host = single(request.forwarded_host)?;
            // A path, so the host cannot be extended (`@evil.example`).
            let uri = request.forwarded_uri.map(str::trim).filter(|u| u.starts_with('/'))?;
            matches!(proto, "http" | "https").then(|| format!("{proto}://{host}{uri}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";

    fn config(allowed: &[&str]) -> Config {
        let mut c = Config::for_tests();
        c.server.public_url = "https://auth.example.com".to_owned();
        c.server.allowed_redirects = allowed.iter().map(|s| (*s).to_owned()).collect();
        c.forward_auth.login_url = "https://auth.example.com/login?theme=dark".to_owned();
        c
    }

    fn browser<'a>() -> OriginalRequest<'a> {
        OriginalRequest {
            accept: Some(FIREFOX),
            forwarded_proto: Some("https"),
            forwarded_host: Some("app.example.com"),
            forwarded_uri: Some("/docs/a?b=c&d=e"),
            ..OriginalRequest::default()
        }
    }

    #[test]
    fn html_preference() {
        assert!(prefers_html(FIREFOX));
        assert!(prefers_html("text/html"));
        assert!(prefers_html("application/json;q=0.5, text/html"));
        for not_html in [
            "*/*",
            "application/json",
            "application/json, text/html;q=0.9",
            "text/html;q=0",
            "text/html;q=bogus",
            "",
        ] {
            assert!(!prefers_html(not_html), "{not_html:?}");
        }
    }

    #[test]
    fn a_browser_is_sent_to_sign_in_with_the_page_it_asked_for() {
        let c = config(&["https://app.example.com"]);
        let Challenge::SignIn { location, see_other } = challenge(&c, &browser()) else {
            panic!("expected a redirect")
        };
        assert!(!see_other);
        assert_eq!(
            location.as_str(),
            "https://auth.example.com/login?theme=dark&rd=https%3A%2F%2Fapp.example.com%2Fdocs%2Fa%3Fb%3Dc%26d%3De"
        );
        let post = OriginalRequest {
            method: Some("POST"),
            ..browser()
        };
        assert!(matches!(
            challenge(&c, &post),
            Challenge::SignIn { see_other: true, .. }
        ));
    }

    #[test]
    fn programs_and_scripts_get_401() {
        let c = config(&["https://app.example.com"]);
        for request in [
            OriginalRequest {
                accept: Some("application/json"),
                ..browser()
            },
            OriginalRequest {
                accept: None,
                ..browser()
            },
            OriginalRequest {
                requested_with: Some("XMLHttpRequest"),
                ..browser()
            },
        ] {
            assert_eq!(challenge(&c, &request), Challenge::Unauthorized);
        }
        // No sign-in page configured: nobody is redirected.
        let mut c = c;
        c.forward_auth.login_url.clear();
        assert_eq!(challenge(&c, &browser()), Challenge::Unauthorized);
    }

    /// Open redirect: a page outside the allow list never becomes `rd`,
    /// whichever way it arrives.
    #[test]
    fn a_target_outside_the_allow_list_is_never_passed_on() {
        let c = config(&[]);
        assert_eq!(challenge(&c, &browser()), Challenge::Unauthorized);
        let c = config(&["https://app.example.com"]);
        for request in [
            OriginalRequest {
                rd: Some("https://evil.example/"),
                ..browser()
            },
            OriginalRequest {
                forwarded_host: Some("app.example.com@evil.example"),
                ..browser()
            },
            OriginalRequest {
                forwarded_host: Some("evil.example"),
                ..browser()
            },
            OriginalRequest {
                forwarded_uri: Some("@evil.example/"),
                ..browser()
            },
            OriginalRequest {
                forwarded_proto: Some("javascript"),
                ..browser()
            },
            OriginalRequest {
                mode: Mode::AuthRequest,
                original_url: Some("https://evil.example/"),
                ..browser()
            },
        ] {
            match challenge(&c, &request) {
                Challenge::Unauthorized => {}
                Challenge::SignIn { location, .. } => {
                    assert!(!location.as_str().contains("evil"), "{request:?} -> {location}");
                }
            }
        }
    }

    #[test]
    fn each_mode_reads_its_own_proxys_header() {
        let c = config(&["https://app.example.com"]);
        let nginx = OriginalRequest {
            mode: Mode::AuthRequest,
            original_url: Some("https://app.example.com/x"),
            ..browser()
        };
        let Challenge::SignIn { location, .. } = challenge(&c, &nginx) else {
            panic!("expected a redirect")
        };
        assert!(
            location.as_str().ends_with("rd=https%3A%2F%2Fapp.example.com%2Fx"),
            "{location}"
        );
        // X-Original-URL means nothing to forward_auth mode; without the
        // X-Forwarded-* set the sign-in page comes without `rd`.
        let caddy = OriginalRequest {
            forwarded_host: None,
            original_url: Some("https://app.example.com/x"),
            ..browser()
        };
        let Challenge::SignIn { location, .. } = challenge(&c, &caddy) else {
            panic!("expected a redirect")
        };
        assert_eq!(location.as_str(), "https://auth.example.com/login?theme=dark");
    }
}
