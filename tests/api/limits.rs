//! Rate limits: budgets per client IP and per account, and the trust in
//! `X-Forwarded-For`.

use forge::config::Rate;
use forge::testing::TestServer;
use serde_json::json;

use crate::{PASSWORD, assert_error, parts};

fn rate(s: &str) -> Rate {
    s.parse().unwrap()
}

async fn login(s: &TestServer, email: &str, password: &str, xff: Option<&str>) -> u16 {
    let mut call = s.post("/v1/auth/login", json!({"email": email, "password": password}));
    if let Some(x) = xff {
        call = call.header("x-forwarded-for", x);
    }
    call.await.0.as_u16()
}

#[tokio::test]
async fn login_per_ip_budget_with_retry_after() {
    let s = TestServer::start_with(|c| c.rate_limit.login_per_ip = rate("3/1m")).await;
    for _ in 0..3 {
        assert_eq!(login(&s, "x@example.com", PASSWORD, None).await, 401);
    }
    let resp = s
        .post(
            "/v1/auth/login",
            json!({"email": "x@example.com", "password": PASSWORD}),
        )
        .response()
        .await;
    let retry = resp.headers()["retry-after"].to_str().unwrap().parse::<u64>().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let (status, body) = parts(resp).await;
    assert_error(status, &body, 429, "rate_limited");
}

#[tokio::test]
async fn spoofed_forwarded_for_does_not_buy_a_fresh_bucket() {
    let s = TestServer::start_with(|c| c.rate_limit.login_per_ip = rate("3/1m")).await;
    for i in 0..3 {
        login(&s, "x@example.com", PASSWORD, Some(&format!("10.0.0.{i}"))).await;
    }
    assert_eq!(login(&s, "x@example.com", PASSWORD, Some("10.9.9.9")).await, 429);
}

#[tokio::test]
async fn trusted_proxies_forward_the_client_ip() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.login_per_ip = rate("3/1m");
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for _ in 0..3 {
        login(&s, "x@example.com", PASSWORD, Some("203.0.113.7")).await;
    }
    assert_eq!(login(&s, "x@example.com", PASSWORD, Some("203.0.113.7")).await, 429);
    assert_eq!(
        login(&s, "x@example.com", PASSWORD, Some("203.0.113.8")).await,
        401,
        "another client has its own budget"
    );
}

/// Behind a trusted proxy, a client controls every `X-Forwarded-For` entry
/// left of the one the proxy appends. Before, an entry that did not parse
/// (`ip:port`, garbage) was skipped, so "SPOOFED, garbage" made forge believe
/// SPOOFED and each made-up address bought a fresh budget. Now the walk stops
/// there and the client is the proxy that handed the entry over.
#[tokio::test]
async fn unparsable_forwarded_for_entries_do_not_buy_fresh_buckets() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.login_per_ip = rate("3/1m");
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    for i in 0..3 {
        let xff = format!("198.51.100.{i}, garbage-{i}");
        assert_eq!(login(&s, "x@example.com", PASSWORD, Some(&xff)).await, 401);
    }
    for xff in [
        "198.51.100.50, 203.0.113.9:4711",
        "198.51.100.51, unknown",
        "[2001:db8::1]:443",
    ] {
        assert_eq!(login(&s, "x@example.com", PASSWORD, Some(xff)).await, 429, "{xff}");
    }
}

#[tokio::test]
async fn failed_logins_per_account_answer_429_the_same_whether_it_exists_or_not() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.login_failures_per_account = rate("3/15m");
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    s.signup("real@example.com", PASSWORD).await;
    for email in ["real@example.com", "ghost@example.com"] {
        for _ in 0..3 {
            assert_eq!(login(&s, email, "wrong password here", Some("198.51.100.1")).await, 401);
        }
        // Past the budget: 429 even with the right password, for both.
        assert_eq!(login(&s, email, PASSWORD, Some("198.51.100.1")).await, 429, "{email}");
    }
}

/// Issue 9, item 8: a distributed guessing attack (every guess from a new
/// address, IPv4 and IPv6 alike) is stopped at the account's budget; before,
/// failures were counted per account and address, so each new address got
/// a fresh budget. The owner without a device token is locked out too...
#[tokio::test]
async fn a_distributed_guessing_attack_is_stopped_at_the_account_budget() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.login_failures_per_account = rate("4/15m");
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    s.signup("target@example.com", PASSWORD).await;
    let addresses = ["203.0.113.1", "2001:db8:1::1", "203.0.113.2", "2001:db8:2::1"];
    for xff in addresses {
        assert_eq!(
            login(&s, "target@example.com", "wrong password here", Some(xff)).await,
            401
        );
    }
    for xff in ["203.0.113.99", "2001:db8:99::1", "198.51.100.7"] {
        assert_eq!(
            login(&s, "target@example.com", "another wrong guess", Some(xff)).await,
            429,
            "a fresh address buys no fresh guesses"
        );
    }
    // ...and so is the owner signing in from anywhere without a device token.
    assert_eq!(login(&s, "target@example.com", PASSWORD, Some("192.0.2.50")).await, 429);
}

async fn login_with_device(s: &TestServer, password: &str, device: &Device<'_>, xff: &str) -> u16 {
    let mut body = json!({"email": "owner@example.com", "password": password});
    let mut call = s
        .request(reqwest::Method::POST, "/v1/auth/login")
        .header("x-forwarded-for", xff);
    call = match device {
        Device::Header(t) => call.header("x-forge-device", t),
        Device::Field(t) => {
            body["device_token"] = json!(t);
            call
        }
        Device::Cookie(t) => call.header("cookie", &format!("forge_device={t}")),
    };
    call.json(&body).await.0.as_u16()
}

enum Device<'a> {
    Header(&'a str),
    Field(&'a str),
    Cookie(&'a str),
}

/// ...but the owner's device that signed in before (OWASP device cookies)
/// still signs in while the account is locked, through the header, the
/// body field or the cookie; it has a small budget of its own; a device
/// token of another account, or a forged one, does not help.
#[tokio::test]
async fn the_owner_with_a_device_token_signs_in_while_the_account_is_locked() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.login_failures_per_account = rate("3/15m");
        c.rate_limit.login_failures_per_device = rate("2/15m");
        c.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    s.signup("owner@example.com", PASSWORD).await;
    s.signup("other@example.com", PASSWORD).await;
    let resp = s
        .post(
            "/v1/auth/login",
            json!({"email": "owner@example.com", "password": PASSWORD}),
        )
        .response()
        .await;
    assert_eq!(resp.status(), 200);
    let cookie = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("forge_device="))
        .expect("a forge_device cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Secure"),
        "{cookie}"
    );
    let (_, body) = parts(resp).await;
    let device = body["device_token"].as_str().expect("device_token").to_string();
    let other = s.login("other@example.com", PASSWORD).await;
    let other_device = other["device_token"].as_str().unwrap().to_string();

    // The attacker locks the account from a botnet.
    for i in 0..3 {
        login(
            &s,
            "owner@example.com",
            "wrong password here",
            Some(&format!("203.0.113.{i}")),
        )
        .await;
    }
    assert_eq!(login(&s, "owner@example.com", PASSWORD, Some("192.0.2.1")).await, 429);

    for d in [Device::Header(&device), Device::Field(&device), Device::Cookie(&device)] {
        assert_eq!(login_with_device(&s, PASSWORD, &d, "192.0.2.1").await, 200);
    }
    // Other accounts' tokens and forgeries count for nothing.
    let forged = format!("{}x", &device[..device.len() - 1]);
    for t in [other_device.as_str(), forged.as_str(), "fd1.AAAA.AAAA"] {
        assert_eq!(
            login_with_device(&s, PASSWORD, &Device::Header(t), "192.0.2.1").await,
            429
        );
    }
    // The device's own budget: two failures, then it is locked as well.
    for _ in 0..2 {
        assert_eq!(
            login_with_device(&s, "wrong password here", &Device::Header(&device), "192.0.2.1").await,
            401
        );
    }
    assert_eq!(
        login_with_device(&s, PASSWORD, &Device::Header(&device), "192.0.2.1").await,
        429
    );
}

#[tokio::test]
async fn signup_budget_and_switch_off() {
    let s = TestServer::start_with(|c| c.rate_limit.signup_per_ip = rate("2/1h")).await;
    s.signup("one@example.com", PASSWORD).await;
    s.signup("two@example.com", PASSWORD).await;
    let (status, _) = s
        .post(
            "/v1/auth/signup",
            json!({"email": "three@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 429);

    let s = TestServer::start_with(|c| {
        c.rate_limit.signup_per_ip = rate("1/1h");
        c.rate_limit.enabled = false;
    })
    .await;
    s.signup("one@example.com", PASSWORD).await;
    s.signup("two@example.com", PASSWORD).await;
}

#[tokio::test]
async fn otp_verify_and_refresh_budgets() {
    let s = TestServer::start_with(|c| {
        c.rate_limit.otp_verify_per_ip = rate("2/5m");
        c.rate_limit.refresh_per_ip = rate("2/1m");
    })
    .await;
    let verify = || {
        s.post(
            "/v1/auth/otp/verify",
            json!({"email": "a@example.com", "code": "123456"}),
        )
    };
    assert_eq!(verify().await.0, 401);
    assert_eq!(verify().await.0, 401);
    assert_eq!(verify().await.0, 429);
    let refresh = || s.post("/v1/auth/refresh", json!({"refresh_token": "x"}));
    assert_eq!(refresh().await.0, 401);
    assert_eq!(refresh().await.0, 401);
    assert_eq!(refresh().await.0, 429);
}
