//! The audit log through HTTP: every event the administration features
//! write is there with the administrator as actor, none holds a secret,
//! filters and keyset paging work, and the retention sweep deletes old rows.

use std::collections::HashSet;

use forge::testing::TestServer;
use serde_json::{Value, json};

use crate::support::{login_in, make_role, server};
use crate::{PASSWORD, access, assert_error, refresh};

const HANK_PASSWORD: &str = "hank's own long passphrase";
const ACME_PASSWORD: &str = "the acme boss passphrase";
const WRONG_GUESS: &str = "a wrong guess at hank's password";

/// Every row of the caller's tenant's log, newest first, in pages of `limit`.
async fn whole_log(s: &TestServer, token: &str, query: &str, limit: u32) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/audit?limit={limit}{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = s.as_user(token).get(&path).await;
        assert_eq!(status, 200, "{page}");
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return items,
        }
    }
}

fn events(items: &[Value]) -> Vec<&str> {
    items.iter().map(|e| e["event"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn every_admin_event_is_audited_and_no_secret_is() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let root_id = root["user"]["id"].as_str().unwrap().to_string();
    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        HANK_PASSWORD.into(),
        ACME_PASSWORD.into(),
        WRONG_GUESS.into(),
        admin.clone(),
        refresh(&root).into(),
    ];

    make_role(&s, &admin, "support", &["users:read"]).await;
    let (status, _) = s
        .as_user(&admin)
        .put("/v1/roles/support", json!({"permissions": ["audit:read"]}))
        .await;
    assert_eq!(status, 200);
    let (status, hank) = s
        .as_user(&admin)
        .post(
            "/v1/users",
            json!({"email": "hank@example.com", "password": HANK_PASSWORD}),
        )
        .await;
    assert_eq!(status, 201);
    let hank_id = hank["id"].as_str().unwrap().to_string();
    let user_path = format!("/v1/users/{hank_id}");
    assert_eq!(
        s.as_user(&admin)
            .request(reqwest::Method::PUT, &format!("{user_path}/roles/support"))
            .await
            .0,
        204
    );
    assert_eq!(
        s.as_user(&admin).delete(&format!("{user_path}/roles/support")).await.0,
        204
    );
    let (status, _) = s
        .as_user(&admin)
        .patch(&user_path, json!({"metadata": {"tier": 2}}))
        .await;
    assert_eq!(status, 200);
    let (status, _) = s.as_user(&admin).patch(&user_path, json!({"disabled": true})).await;
    assert_eq!(status, 200);
    let (status, _) = s.as_user(&admin).patch(&user_path, json!({"disabled": false})).await;
    assert_eq!(status, 200);
    let hank_session = s.login("hank@example.com", HANK_PASSWORD).await;
    secrets.push(access(&hank_session).into());
    secrets.push(refresh(&hank_session).into());
    let (status, _) = s
        .post(
            "/v1/auth/login",
            json!({"email": "hank@example.com", "password": WRONG_GUESS}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(s.as_user(&admin).delete(&format!("{user_path}/sessions")).await.0, 204);
    assert_eq!(s.as_user(&admin).delete("/v1/roles/support").await.0, 204);
    let (status, _) = s
        .as_user(&admin)
        .post(
            "/v1/tenants",
            json!({"slug": "acme", "name": "Acme", "admin": {"email": "boss@acme.io", "password": ACME_PASSWORD}}),
        )
        .await;
    assert_eq!(status, 201);
    // The new tenant's log starts with its birth and its first admin.
    let boss = login_in(&s, "acme", "boss@acme.io", ACME_PASSWORD).await;
    secrets.push(access(&boss).into());
    secrets.push(refresh(&boss).into());
    let acme_log = whole_log(&s, access(&boss), "", 50).await;
    let acme_events: HashSet<&str> = events(&acme_log).into_iter().collect();
    for e in ["tenant_created", "user_created", "login"] {
        assert!(acme_events.contains(e), "acme log lacks {e}: {acme_events:?}");
    }
    assert_eq!(s.as_user(&admin).delete(&user_path).await.0, 204);
    assert_eq!(s.as_user(&admin).delete("/v1/tenants/acme").await.0, 204);

    let log = whole_log(&s, &admin, "", 4).await;
    let ids: Vec<&str> = log.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "paging repeated a row");
    let mut newest_first = ids.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first);

    for event in [
        "role_created",
        "role_updated",
        "user_created",
        "role_assigned",
        "role_removed",
        "user_updated",
        "user_disabled",
        "user_enabled",
        "session_revoked",
        "role_deleted",
        "tenant_created",
        "user_deleted",
        "tenant_deleted",
    ] {
        let row = log
            .iter()
            .find(|e| e["event"] == event)
            .unwrap_or_else(|| panic!("no {event} row in {:?}", events(&log)));
        assert_eq!(row["actor_id"], root_id.as_str(), "{event}: {row}");
        assert_eq!(row["ip"], "127.0.0.1", "{event}");
        assert!(row["at"].as_str().unwrap().ends_with('Z'), "{event}");
        assert!(row["detail"].is_object(), "{event}");
    }
    let about_hank = |event: &str| log.iter().find(|e| e["event"] == event).unwrap()["user_id"].clone();
    for event in [
        "user_created",
        "role_assigned",
        "user_disabled",
        "user_deleted",
        "session_revoked",
    ] {
        assert_eq!(about_hank(event), hank_id.as_str(), "{event}");
    }
    let assigned = log.iter().find(|e| e["event"] == "role_assigned").unwrap();
    assert_eq!(assigned["detail"]["role"], "support");
    let updated = log.iter().find(|e| e["event"] == "user_updated").unwrap();
    assert_eq!(updated["detail"]["fields"], json!(["metadata"]));
    assert!(events(&log).contains(&"login_failed"));

    // Filters.
    // (The first administrator's own role_assigned, from its creation, is the older one.)
    let only = whole_log(&s, &admin, "&event=role_assigned", 50).await;
    assert_eq!(events(&only), ["role_assigned", "role_assigned"]);
    assert_eq!(only[0]["user_id"], hank_id.as_str());
    assert_eq!(only[1]["user_id"], root_id.as_str());
    let hanks = whole_log(&s, &admin, &format!("&user_id={hank_id}"), 3).await;
    assert!(hanks.len() >= 8, "{hanks:?}");
    assert!(hanks.iter().all(|e| e["user_id"] == hank_id.as_str()));
    let both = whole_log(&s, &admin, &format!("&user_id={hank_id}&event=login"), 50).await;
    assert_eq!(events(&both), ["login"]);
    assert_eq!(both[0]["actor_id"], hank_id.as_str());

    // No secret anywhere, in either tenant's log.
    let text = serde_json::to_string(&(log, acme_log)).unwrap();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret leaked into the audit log");
    }

    // Bad filters are 400 with the one error shape.
    for (query, code) in [
        ("user_id=nope", "validation_failed"),
        ("event=Login!", "validation_failed"),
        ("limit=500", "validation_failed"),
        ("cursor=%%%", "invalid_cursor"),
        ("cursor=Zm9v", "invalid_cursor"),
    ] {
        let (status, body) = s.as_user(&admin).get(&format!("/v1/audit?{query}")).await;
        assert_error(status, &body, 400, code);
    }
}

#[tokio::test]
async fn retention_sweep_deletes_rows_older_than_the_retention() {
    let s = TestServer::start_with(|c| c.audit.retention = std::time::Duration::from_secs(90 * 86_400)).await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    make_role(&s, &admin, "old", &[]).await;
    let before = whole_log(&s, &admin, "", 50).await;
    assert!(events(&before).contains(&"role_created"));

    s.clock().advance(89 * 86_400);
    assert_eq!(s.state().audit.sweep().await.unwrap(), 0);
    s.clock().advance(2 * 86_400);
    // The old token expired long ago; sign in again (a new `login` row).
    let admin = access(&s.login("root@example.com", PASSWORD).await).to_string();
    make_role(&s, &admin, "new", &[]).await;
    let deleted = s.state().audit.sweep().await.unwrap();
    assert_eq!(deleted as usize, before.len());
    let after = whole_log(&s, &admin, "", 50).await;
    assert_eq!(events(&after), ["role_created", "login"]);
    assert_eq!(after[0]["detail"]["role"], "new");
}
