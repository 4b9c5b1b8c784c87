//! Headless Chromium (Debian `chromium` and `chromium-driver`) driven over
//! WebDriver by `fantoccini`, shared by the suites that need a real browser
//! (`tests/browser.rs`, `tests/rp.rs`, `tests/upstream.rs`): a `chromedriver` on a free port,
//! fresh browser sessions, screenshots under `target/browser-screenshots/`,
//! and the few page actions the tests use.
//!
//! A missing `/usr/bin/chromedriver` is a failure, not a skip.

// Each suite uses its own subset of these helpers.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// A chromedriver process, killed (by its own pid) when dropped.
pub struct Driver {
    child: Child,
    pub url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn start_driver() -> Driver {
    assert!(
        Path::new(CHROMEDRIVER).exists() && Path::new(CHROMIUM).exists(),
        "the browser tests need {CHROMIUM} and {CHROMEDRIVER}: apt-get install chromium chromium-driver \
         (scripts/test does this)"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let url = format!("http://127.0.0.1:{port}");
    let driver = Driver { child, url };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return driver;
        }
        assert!(Instant::now() < deadline, "chromedriver did not start on port {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A fresh headless Chromium session with JavaScript switched off.
pub async fn browser(driver: &Driver, profile: &Path) -> Client {
    browser_with(driver, profile, false).await
}

/// A fresh headless Chromium session; `javascript` for the passkey pages,
/// the only ones with a script.
pub async fn browser_with(driver: &Driver, profile: &Path, javascript: bool) -> Client {
    let prefs = if javascript {
        json!({})
    } else {
        json!({ "profile.managed_default_content_settings.javascript": 2 })
    };
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": [
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-quic",
                "--no-first-run",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1440,900",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": prefs,
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

/// The current page's path and query.
pub async fn path_of(c: &Client) -> String {
    let url = c.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// Types into the form field `name` (clearing it first).
pub async fn fill(c: &Client, name: &str, value: &str) {
    let field = c.find(Locator::Css(&format!("[name=\"{name}\"]"))).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
}

/// Clicks an element that loads a page (every click on these sites does:
/// they have no JavaScript) and waits until the new page has replaced the
/// old one, so the next look at the URL or the DOM sees the new page.
pub async fn click(c: &Client, css: &str) {
    let element = c.find(Locator::Css(css)).await.unwrap();
    click_element(c, element, css).await;
}

pub async fn click_element(c: &Client, element: fantoccini::elements::Element, what: &str) {
    let before = c.find(Locator::Css("html")).await.unwrap();
    element.click().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // The old document's root goes stale once the new page is in.
    while before.tag_name().await.is_ok() {
        assert!(Instant::now() < deadline, "clicking {what} loaded no new page");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
