//! A browser without JavaScript for the admin site's tests: it keeps
//! cookies by hand and follows no redirects, so each test sees the exact
//! `Set-Cookie` and `Location` headers, and it posts forms the way a
//! browser does (same-origin Fetch Metadata, the session's CSRF token).

use std::collections::HashMap;

use forge::testing::TestServer;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// A cookie-keeping, non-redirecting client of one test server.
pub struct Browser {
    client: reqwest::Client,
    base: String,
    /// The cookies the next request sends; tests forge, drop or steal them.
    pub cookies: HashMap<String, String>,
}

/// One response: status, headers and body text.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_string))
            .collect()
    }

    /// The value of the first hidden `csrf` field.
    pub fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.body.find(marker).expect("a csrf field") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }
}

impl Browser {
    pub fn new(s: &TestServer) -> Self {
        Self {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: s.base_url().to_string(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// A bare request to the site, for tests that set what a browser
    /// would (Fetch Metadata) themselves; [`Browser::send`] it.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends `req` with the browser's cookies and keeps the ones it sets.
    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut req = req;
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let resp = req.send().await.unwrap();
        let page = Page {
            status: resp.status(),
            headers: resp.headers().clone(),
            body: String::new(),
        };
        let body = resp.text().await.unwrap();
        let page = Page { body, ..page };
        for c in page.set_cookies() {
            let first = c.split(';').next().unwrap_or_default();
            let (name, value) = first.split_once('=').unwrap();
            if c.contains("Max-Age=0") || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        page
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.request(reqwest::Method::GET, path);
        self.send(req).await
    }

    /// A same-origin form post, as a browser sends it.
    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self
            .request(reqwest::Method::POST, path)
            .header("sec-fetch-site", "same-origin")
            .form(form);
        self.send(req).await
    }

    /// Posts with the session's CSRF token added.
    pub async fn act(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let token = self.get("/admin").await.csrf();
        let mut fields = vec![("csrf", token.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    pub async fn sign_in_to(&mut self, tenant: &str, identifier: &str, password: &str) -> Page {
        let form = self.get("/admin/login").await;
        assert_eq!(form.status, 200);
        let token = form.csrf();
        self.post(
            "/admin/login",
            &[
                ("csrf", token.as_str()),
                ("identifier", identifier),
                ("password", password),
                ("tenant", tenant),
                ("next", ""),
            ],
        )
        .await
    }

    pub async fn sign_in(&mut self, identifier: &str, password: &str) -> Page {
        let page = self.sign_in_to("", identifier, password).await;
        assert_eq!(page.status, 303, "sign-in failed: {}", page.body);
        assert_eq!(page.location(), "/admin");
        page
    }

    /// The flash message the next page shows.
    pub async fn flash(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        let marker = "class=\"flash ";
        let Some(start) = page.body.find(marker) else {
            return String::new();
        };
        let rest = &page.body[start..];
        let open = rest.find('>').unwrap() + 1;
        let close = rest.find("</div>").unwrap();
        rest[open..close].to_string()
    }
}
