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
    let mut req = s
        .client()
        .post(s.url("/v1/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn login_per_ip_budget_with_retry_after() {
    let s = TestServer::start_with(|c| c.rate_limit.login_per_ip = rate("3/1m")).await;
    for _ in 0..3 {
        assert_eq!(login(&s, "x@example.com", PASSWORD, None).await, 401);
    }
    let resp = s
        .client()
        .post(s.url("/v1/auth/login"))
        .json(&json!({"email": "x@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
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
    // The owner, from another address, is not locked out by the attacker.
    assert_eq!(login(&s, "real@example.com", PASSWORD, Some("198.51.100.2")).await, 200);
}

#[tokio::test]
async fn signup_budget_and_switch_off() {
    let s = TestServer::start_with(|c| c.rate_limit.signup_per_ip = rate("2/1h")).await;
    s.signup("one@example.com", PASSWORD).await;
    s.signup("two@example.com", PASSWORD).await;
    let (status, _) = parts(
        s.client()
            .post(s.url("/v1/auth/signup"))
            .json(&json!({"email": "three@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap(),
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
        s.client()
            .post(s.url("/v1/auth/otp/verify"))
            .json(&json!({"email": "a@example.com", "code": "123456"}))
            .send()
    };
    assert_eq!(verify().await.unwrap().status(), 401);
    assert_eq!(verify().await.unwrap().status(), 401);
    assert_eq!(verify().await.unwrap().status(), 429);
    let refresh = || {
        s.client()
            .post(s.url("/v1/auth/refresh"))
            .json(&json!({"refresh_token": "x"}))
            .send()
    };
    assert_eq!(refresh().await.unwrap().status(), 401);
    assert_eq!(refresh().await.unwrap().status(), 401);
    assert_eq!(refresh().await.unwrap().status(), 429);
}
