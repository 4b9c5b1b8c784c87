//! Where a webhook may go: the request side of the SSRF guard.
//!
//! `domain::webhooks::check_url` judges what a URL says. This module judges
//! where its host name leads, twice: at registration ([`Guard::admit`]
//! refuses a name that resolves to any forbidden address) and at every
//! connection (the delivery client's resolver drops forbidden addresses,
//! so a name re-pointed at an internal address after registration, or a
//! DNS-rebinding answer, reaches nothing). The delivery client follows no
//! redirect and ignores proxy variables: both would send the request
//! somewhere this guard never saw.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::domain::webhooks::{BadTarget, check_url, forbidden_ip};

/// How long a delivery may take, connection included.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long registration waits for DNS before accepting the name unchecked
/// (every delivery still checks it).
const ADMIT_DNS_TIMEOUT: Duration = Duration::from_secs(2);

/// The rules of one server: whether private targets are allowed and which
/// URL is forge itself.
#[derive(Clone, Debug)]
pub struct Guard {
    allow_private: bool,
    /// `server.public_url` (validated at load, so always there in practice).
    forge: Option<Url>,
}

impl Guard {
    pub fn new(allow_private: bool, public_url: &str) -> Self {
        Self {
            allow_private,
            forge: Url::parse(public_url).ok(),
        }
    }

    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The URL's own rules (see `check_url`).
    pub fn check(&self, raw: &str) -> Result<Url, BadTarget> {
        check_url(raw, self.allow_private, self.forge.as_ref())
    }

    /// [`Guard::check`], then the addresses the host resolves to: any
    /// forbidden one refuses the URL.
    pub async fn admit(&self, raw: &str) -> Result<Url, BadTarget> {
        let url = self.check(raw)?;
        if self.allow_private {
            return Ok(url);
        }
        if let Some(Host::Domain(domain)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            let lookup = tokio::net::lookup_host((domain.to_owned(), port));
            if let Ok(Ok(addrs)) = tokio::time::timeout(ADMIT_DNS_TIMEOUT, lookup).await {
                let addrs: Vec<SocketAddr> = addrs.collect();
                if addrs.iter().any(|a| forbidden_ip(a.ip())) {
                    return Err(BadTarget::Forbidden);
                }
            }
        }
        Ok(url)
    }

    /// The client deliveries go out with.
    pub fn client(&self) -> reqwest::Result<reqwest::Client> {
        let builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(DELIVERY_TIMEOUT)
            .connect_timeout(DELIVERY_TIMEOUT)
            .no_proxy()
            .user_agent(concat!("forge-webhooks/", env!("CARGO_PKG_VERSION")));
        if self.allow_private {
            builder.build()
        } else {
            builder.dns_resolver(Arc::new(PublicOnly)).build()
        }
    }
}

/// A resolver that answers only public addresses.
struct PublicOnly;

/// Every address the name resolved to is forbidden.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves only to addresses webhooks may not reach")]
struct ForbiddenTarget;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| !forbidden_ip(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(ForbiddenTarget) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_that_resolves_inside_is_refused_at_registration() {
        let guard = Guard::new(false, "https://auth.example.com");
        assert_eq!(guard.admit("https://localhost:9/x").await, Err(BadTarget::Forbidden));
        let open = Guard::new(true, "https://auth.example.com");
        assert!(open.admit("http://localhost:9/x").await.is_ok());
    }

    #[tokio::test]
    async fn the_delivery_client_cannot_connect_to_a_name_that_resolves_inside() {
        // `localhost` resolves to loopback only: the resolver leaves nothing.
        let client = Guard::new(false, "https://auth.example.com").client().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = client
            .post(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(
            err.is_connect() || err.to_string().contains("error sending request"),
            "{err}"
        );
    }
}
