//! User administration through HTTP: keyset paging (with inserts during the
//! walk), email and phone prefix search, provisioning, changes, disabling
//! (effective at once), deletion, and a user's sessions.

use std::collections::HashSet;

use forge::testing::TestServer;
use serde_json::{Value, json};

use crate::support::{provision, server};
use crate::{PASSWORD, access, assert_error, parts, refresh};

async fn create_bare(s: &TestServer, admin: &str, email: String) -> String {
    let (status, body) = s.as_user(admin).post("/v1/users", json!({ "email": email })).await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn paging_450_users_has_no_duplicates_or_gaps_under_concurrent_inserts() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let mut expected: HashSet<String> = HashSet::from([root["user"]["id"].as_str().unwrap().to_string()]);
    for chunk in (0..450).collect::<Vec<_>>().chunks(50) {
        let created = futures::future::join_all(
            chunk
                .iter()
                .map(|i| create_bare(&s, &admin, format!("user{i:03}@example.com"))),
        )
        .await;
        expected.extend(created);
    }
    assert_eq!(expected.len(), 451);

    // Walk in pages of 37 while another task keeps inserting users.
    let inserter = {
        let client = s.client().clone();
        let url = s.url("/v1/users");
        let admin = admin.clone();
        tokio::spawn(async move {
            let mut added = Vec::new();
            for i in 0..40 {
                let resp = client
                    .post(&url)
                    .bearer_auth(&admin)
                    .json(&json!({ "email": format!("late{i:02}@example.com") }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 201);
                let body: Value = resp.json().await.unwrap();
                added.push(body["id"].as_str().unwrap().to_string());
                tokio::task::yield_now().await;
            }
            added
        })
    };
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            None => "/v1/users?limit=37".to_string(),
            Some(c) => format!("/v1/users?limit=37&cursor={c}"),
        };
        let (status, page) = s.as_user(&admin).get(&path).await;
        assert_eq!(status, 200, "{page}");
        let got = ids(&page);
        assert!(got.len() <= 37);
        seen.extend(got);
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        if pages == 3 {
            // Make sure some inserts land mid-walk.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let late = inserter.await.unwrap();
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "duplicates in the walk");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen, "creation (id) order");
    for id in &expected {
        assert!(unique.contains(id), "gap: {id} missing");
    }
    // Users inserted during the walk have later ids than any cursor taken
    // before them, so the walk meets each one that existed when it passed.
    let seen_late = late.iter().filter(|id| unique.contains(id)).count();
    assert_eq!(seen.len(), 451 + seen_late);

    // The default page is 50; limits and cursors are checked.
    let (_, page) = s.as_user(&admin).get("/v1/users").await;
    assert_eq!(ids(&page).len(), 50);
    let (_, page) = s.as_user(&admin).get("/v1/users?limit=200").await;
    assert_eq!(ids(&page).len(), 200);
    for bad in ["limit=201", "limit=0", "limit=-1", "limit=ten"] {
        let (status, body) = s.as_user(&admin).get(&format!("/v1/users?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"].is_string());
    }
    for bad in [
        "garbage!",
        "dTpub3QtYS11dWlk",
        "YTowMTkwYTBiMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDE",
    ] {
        let (status, body) = s.as_user(&admin).get(&format!("/v1/users?cursor={bad}")).await;
        assert_error(status, &body, 400, "invalid_cursor");
    }
}

#[tokio::test]
async fn search_by_email_or_phone_prefix() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    for (email, phone) in [
        ("ann.a@example.com", "+14155550101"),
        ("Ann.B@example.com", "+14155550102"),
        ("anna@example.com", "+14155550103"),
        ("annex@example.org", "+442071838750"),
        ("bob@example.com", "+14155559999"),
        ("a_b@example.com", "+14155550104"),
        ("axb@example.com", "+14155550105"),
        ("a%b@example.com", "+14155550106"),
    ] {
        let (status, body) = s
            .as_user(&admin)
            .post("/v1/users", json!({"email": email, "phone": phone}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let emails = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_string())
            .collect()
    };
    let (status, page) = s.as_user(&admin).get("/v1/users?q=ANN").await;
    assert_eq!(status, 200);
    assert_eq!(
        emails(&page),
        [
            "ann.a@example.com",
            "ann.b@example.com",
            "anna@example.com",
            "annex@example.org"
        ]
    );
    // Paging through a search, in email order.
    let (_, first) = s.as_user(&admin).get("/v1/users?q=ann&limit=3").await;
    assert_eq!(emails(&first).len(), 3);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = s
        .as_user(&admin)
        .get(&format!("/v1/users?q=ann&limit=3&cursor={cursor}"))
        .await;
    assert_eq!(emails(&second), ["annex@example.org"]);
    assert!(second["next_cursor"].is_null());
    // A search cursor does not continue the plain list, nor the reverse.
    let (status, _) = s.as_user(&admin).get(&format!("/v1/users?cursor={cursor}")).await;
    assert_eq!(status, 400);
    // LIKE wildcards are plain characters.
    let (_, page) = s.as_user(&admin).get("/v1/users?q=a_").await;
    assert_eq!(emails(&page), ["a_b@example.com"]);
    let (_, page) = s.as_user(&admin).get("/v1/users?q=a%25").await;
    assert_eq!(emails(&page), ["a%b@example.com"]);
    let (_, page) = s.as_user(&admin).get("/v1/users?q=nobody").await;
    assert_eq!(page["items"], json!([]));
    assert!(page["next_cursor"].is_null());

    // Phones: a leading + searches the E.164 number; separators are ignored.
    let (_, page) = s.as_user(&admin).get("/v1/users?q=%2B1415555010").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 6);
    let (_, page) = s.as_user(&admin).get("/v1/users?q=%2B1%20(415)%20555-0103").await;
    assert_eq!(emails(&page), ["anna@example.com"]);
    let (_, page) = s.as_user(&admin).get("/v1/users?q=%2B44").await;
    assert_eq!(emails(&page), ["annex@example.org"]);
    let (_, first) = s.as_user(&admin).get("/v1/users?q=%2B1&limit=4").await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = s
        .as_user(&admin)
        .get(&format!("/v1/users?q=%2B1&limit=4&cursor={cursor}"))
        .await;
    let phones: Vec<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|u| u["phone"].as_str().unwrap())
        .collect();
    let mut sorted = phones.clone();
    sorted.sort();
    assert_eq!(phones, sorted);
    assert_eq!(phones.len(), 7);
    let (status, _) = s.as_user(&admin).get("/v1/users?q=%2B1abc").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn provision_read_change_and_delete_a_user() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    crate::support::make_role(&s, &admin, "support", &["users:read"]).await;

    let resp = s
        .as_user(&admin)
        .post(
            "/v1/users",
            json!({"email": " Dana@Example.com ", "phone": "+1 415 555 0142", "password": PASSWORD,
                      "metadata": {"plan": "pro"}, "email_verified": true, "roles": ["support"]}),
        )
        .response()
        .await;
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let (status, user) = parts(resp).await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().unwrap().to_string();
    assert_eq!(location, format!("/v1/users/{id}"));
    assert_eq!(user["email"], "dana@example.com");
    assert_eq!(user["phone"], "+14155550142");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["roles"], json!(["support"]));
    assert_eq!(user["metadata"]["plan"], "pro");
    assert_eq!(user["tenant"], "default");
    // The provisioned password works.
    let dana = s.login("dana@example.com", PASSWORD).await;

    let (status, got) = s.as_user(&admin).get(&format!("/v1/users/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(got["email"], "dana@example.com");

    // Bad input.
    for (bad, code) in [
        (
            json!({"email": "taken@example.com", "password": "short"}),
            "validation_failed",
        ),
        (json!({"metadata": {}}), "validation_failed"),
        (json!({"email": "nope"}), "validation_failed"),
        // An unknown role is 404, like assigning one by path.
        (json!({"email": "r@example.com", "roles": ["nope"]}), "unknown_role"),
        (
            json!({"email": "r@example.com", "roles": ["Bad Role"]}),
            "validation_failed",
        ),
        (json!({"email": "r@example.com", "admin": true}), "invalid_request"),
        (json!({"email": "DANA@example.com"}), "email_taken"),
        (json!({"phone": "+14155550142"}), "phone_taken"),
    ] {
        let (status, body) = s.as_user(&admin).post("/v1/users", bad.clone()).await;
        let want = match code {
            "email_taken" | "phone_taken" => 409,
            "unknown_role" => 404,
            _ => 400,
        };
        assert_error(status, &body, want, code);
    }

    // A new email is unverified unless said otherwise; the phone can go.
    let (status, user) = s
        .as_user(&admin)
        .patch(
            &format!("/v1/users/{id}"),
            json!({"email": "dana2@example.com", "phone": null, "metadata": {"plan": "team"}}),
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["email"], "dana2@example.com");
    assert_eq!(user["email_verified"], false);
    assert!(user["phone"].is_null());
    assert_eq!(user["metadata"], json!({"plan": "team"}));
    let (_, user) = s
        .as_user(&admin)
        .patch(&format!("/v1/users/{id}"), json!({"email_verified": true}))
        .await;
    assert_eq!(user["email_verified"], true);
    let (status, body) = s
        .as_user(&admin)
        .patch(&format!("/v1/users/{id}"), json!({"email": "root@example.com"}))
        .await;
    assert_error(status, &body, 409, "email_taken");
    let (status, _) = s
        .as_user(&admin)
        .patch(&format!("/v1/users/{id}"), json!({"disabled": "yes"}))
        .await;
    assert_eq!(status, 400);
    let (status, _) = s
        .as_user(&admin)
        .patch(&format!("/v1/users/{id}"), json!({"phone": "123"}))
        .await;
    assert_eq!(status, 400);

    // Unknown and malformed ids.
    let ghost = "0190a0b0-0000-7000-8000-000000000001";
    for path in [format!("/v1/users/{ghost}"), "/v1/users/not-a-uuid".to_string()] {
        assert_eq!(s.as_user(&admin).get(&path).await.0, 404);
        let (status, _) = s.as_user(&admin).patch(&path, json!({"disabled": true})).await;
        assert_eq!(status, 404);
        assert_eq!(s.as_user(&admin).delete(&path).await.0, 404);
    }

    // Deletion: gone, and the token dies at once.
    assert_eq!(s.as_user(&admin).delete(&format!("/v1/users/{id}")).await.0, 204);
    assert_eq!(s.as_user(&admin).get(&format!("/v1/users/{id}")).await.0, 404);
    assert_eq!(s.as_user(&admin).delete(&format!("/v1/users/{id}")).await.0, 404);
    assert_eq!(s.as_user(access(&dana)).get("/v1/users/me").await.0, 401);
    // A user without a password can be provisioned (signs in by code or reset).
    let (status, body) = s
        .as_user(&admin)
        .post("/v1/users", json!({"phone": "+14155550143"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert!(body["email"].is_null());
}

#[tokio::test]
async fn disabling_revokes_at_once_and_enabling_lets_the_user_back() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let session = s.signup("frank@example.com", PASSWORD).await;
    let other = s.login("frank@example.com", PASSWORD).await;
    let id = session["user"]["id"].as_str().unwrap().to_string();
    assert_eq!(s.as_user(access(&session)).get("/v1/users/me").await.0, 200);

    let (status, user) = s
        .as_user(&admin)
        .patch(&format!("/v1/users/{id}"), json!({"disabled": true}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(user["disabled"], true);
    for token in [access(&session), access(&other)] {
        assert_eq!(s.as_user(token).get("/v1/users/me").await.0, 401);
        assert_eq!(s.as_user(token).get("/v1/auth/verify").await.0, 401);
    }
    let (status, body) = s
        .post("/v1/auth/refresh", json!({"refresh_token": refresh(&session)}))
        .await;
    assert_error(status, &body, 401, "invalid_grant");
    let (status, body) = s
        .post(
            "/v1/auth/login",
            json!({"email": "frank@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, 403, "user_disabled");
    let (_, sessions) = s.as_user(&admin).get(&format!("/v1/users/{id}/sessions")).await;
    assert_eq!(sessions, json!([]));
    // Disabling twice changes nothing.
    let (status, _) = s
        .as_user(&admin)
        .patch(&format!("/v1/users/{id}"), json!({"disabled": true}))
        .await;
    assert_eq!(status, 200);

    // Enabled again: a new sign-in works; the old tokens stay dead.
    let (status, user) = s
        .as_user(&admin)
        .patch(&format!("/v1/users/{id}"), json!({"disabled": false}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(user["disabled"], false);
    let fresh = s.login("frank@example.com", PASSWORD).await;
    assert_eq!(s.as_user(access(&fresh)).get("/v1/users/me").await.0, 200);
    assert_eq!(s.as_user(access(&session)).get("/v1/users/me").await.0, 401);
    assert_eq!(s.as_user(access(&other)).get("/v1/users/me").await.0, 401);
}

#[tokio::test]
async fn administrators_see_and_end_a_users_sessions() {
    let s = server().await;
    let root = s.admin("root@example.com", PASSWORD).await;
    let admin = access(&root).to_string();
    let id = provision(&s, &admin, "gina@example.com", &[]).await;
    let a = s.login("gina@example.com", PASSWORD).await;
    let b = s.login("gina@example.com", PASSWORD).await;
    let c = s.login("gina@example.com", PASSWORD).await;
    let (status, list) = s.as_user(&admin).get(&format!("/v1/users/{id}/sessions")).await;
    assert_eq!(status, 200);
    let list = list.as_array().unwrap().clone();
    assert_eq!(list.len(), 3);
    assert!(list.iter().all(|x| x["current"] == false && x["ip"] == "127.0.0.1"));
    // The newest first: that is c's session.
    let newest = list[0]["id"].as_str().unwrap();
    let (status, _) = s
        .as_user(&admin)
        .delete(&format!("/v1/users/{id}/sessions/{newest}"))
        .await;
    assert_eq!(status, 204);
    assert_eq!(s.as_user(access(&c)).get("/v1/users/me").await.0, 401);
    assert_eq!(s.as_user(access(&a)).get("/v1/users/me").await.0, 200);
    let (status, body) = s
        .as_user(&admin)
        .delete(&format!("/v1/users/{id}/sessions/{newest}"))
        .await;
    assert_error(status, &body, 404, "not_found");
    // Another user's session id is not this user's.
    let root_sessions = s.as_user(&admin).get("/v1/users/me/sessions").await.1;
    let root_session = root_sessions[0]["id"].as_str().unwrap();
    let (status, _) = s
        .as_user(&admin)
        .delete(&format!("/v1/users/{id}/sessions/{root_session}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(s.as_user(&admin).get("/v1/users/me").await.0, 200);

    let (status, _) = s.as_user(&admin).delete(&format!("/v1/users/{id}/sessions")).await;
    assert_eq!(status, 204);
    for t in [&a, &b] {
        assert_eq!(s.as_user(access(t)).get("/v1/users/me").await.0, 401);
    }
    let (_, list) = s.as_user(&admin).get(&format!("/v1/users/{id}/sessions")).await;
    assert_eq!(list, json!([]));
    // The account itself is fine: sign in again.
    s.login("gina@example.com", PASSWORD).await;
}
