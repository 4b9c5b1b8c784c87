//! Tenants, users and their access: creation, conflicts, look-ups,
//! patches, and keyset listing.

use super::*;

pub(super) async fn a_fresh_store_answers_and_holds_only_the_default_tenant(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    let tenant = store.tenant_by_slug("default").await.unwrap().unwrap();
    assert_eq!(tenant.id, T);
    assert!(store.tenant_by_slug("nope").await.unwrap().is_none());
    assert_eq!(store.tenant_by_id(tenant.id).await.unwrap().unwrap().slug, tenant.slug);
    assert!(store.tenant_by_id(uuid::Uuid::now_v7()).await.unwrap().is_none());
}

pub(super) async fn create_user_returns_the_user_with_roles_and_metadata(store: Arc<dyn Store>) {
    let ann = new_user("ann@example.com", Some("+14155550100"), &["admin"]);
    let created = store
        .create_user(ann.clone(), None, audit("signup", Some(ann.id)))
        .await
        .unwrap();
    assert_eq!(created.roles, ["admin"]);
    assert_eq!(created.metadata["plan"], "pro");
    assert!(!created.disabled && !created.email_verified);
    assert_eq!(created.last_sign_in_at, None);
}

pub(super) async fn create_user_with_a_taken_email_or_phone_conflicts_on_that_field(store: Arc<dyn Store>) {
    let ann = new_user("ann@example.com", Some("+14155550100"), &["admin"]);
    store.create_user(ann, None, audit("signup", None)).await.unwrap();
    let dup = new_user("ann@example.com", None, &[]);
    let e = store.create_user(dup, None, audit("signup", None)).await.unwrap_err();
    assert_eq!(conflict_field(e), "email");
    let dup = new_user("other@example.com", Some("+14155550100"), &[]);
    let e = store.create_user(dup, None, audit("signup", None)).await.unwrap_err();
    assert_eq!(conflict_field(e), "phone");
    assert_eq!(store.count_users().await.unwrap(), 1, "failed creations left nothing");
}

pub(super) async fn create_user_with_an_unknown_role_is_not_found_and_leaves_nothing(store: Arc<dyn Store>) {
    let unknown_role = new_user("role@example.com", None, &["nosuchrole"]);
    assert!(matches!(
        store.create_user(unknown_role, None, audit("signup", None)).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.count_users().await.unwrap(), 0, "failed creations left nothing");
}

pub(super) async fn find_for_login_matches_the_email_in_any_case_and_the_phone(store: Arc<dyn Store>) {
    let ann = new_user("ann@example.com", Some("+14155550100"), &["admin"]);
    store
        .create_user(ann.clone(), None, audit("signup", Some(ann.id)))
        .await
        .unwrap();
    let found = store
        .find_for_login(T, &Identifier::parse("ANN@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.0.id, ann.id);
    assert_eq!(found.1.as_deref(), Some("$argon2id$hash"));
    let by_phone = store
        .find_for_login(T, &Identifier::parse("+14155550100").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_phone.0.id, ann.id);
}

pub(super) async fn get_user_finds_a_user_only_in_its_tenant(store: Arc<dyn Store>) {
    let ann = signed_up(&store, "ann@example.com", None).await;
    assert!(store.get_user(T, ann.id).await.unwrap().is_some());
    assert!(
        store.get_user(Uuid::now_v7(), ann.id).await.unwrap().is_none(),
        "tenant filter"
    );
}

pub(super) async fn update_user_applies_the_patch_and_the_new_password(store: Arc<dyn Store>) {
    let ann = signed_up(&store, "ann@example.com", None).await;
    let patched = store
        .update_user(
            T,
            ann.id,
            UserPatch {
                email_verified: Some(true),
                metadata: Some(serde_json::json!({"plan": "free"})),
                password_hash: Some(Some("$argon2id$new".into())),
                now: NOW + 5,
                ..Default::default()
            },
            audit("user_updated", Some(ann.id)),
        )
        .await
        .unwrap();
    assert!(patched.email_verified);
    assert_eq!(patched.updated_at, NOW + 5);
    assert_eq!(patched.metadata["plan"], "free");
    assert_eq!(
        store.password_hash(T, ann.id).await.unwrap().as_deref(),
        Some("$argon2id$new")
    );
}

pub(super) async fn update_user_to_a_taken_email_conflicts_on_email(store: Arc<dyn Store>) {
    signed_up(&store, "ann@example.com", None).await;
    let bob = signed_up(&store, "bob@example.com", None).await;
    let e = store
        .update_user(
            T,
            bob.id,
            UserPatch {
                email: Some(Some(Email::parse("ann@example.com").unwrap())),
                now: NOW,
                ..Default::default()
            },
            audit("user_updated", None),
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_field(e), "email");
}

pub(super) async fn update_user_of_an_unknown_user_is_not_found(store: Arc<dyn Store>) {
    assert!(matches!(
        store
            .update_user(T, Uuid::now_v7(), UserPatch::default(), audit("user_updated", None))
            .await,
        Err(StoreError::NotFound)
    ));
}

pub(super) async fn access_of_gives_the_roles_and_permissions_of_a_user(store: Arc<dyn Store>) {
    let ann = new_user("ann@example.com", None, &["admin"]);
    store
        .create_user(ann.clone(), None, audit("signup", Some(ann.id)))
        .await
        .unwrap();
    let bob = signed_up(&store, "bob@example.com", None).await;
    let access = store.access_of(T, ann.id).await.unwrap().unwrap();
    assert_eq!(access.roles, ["admin"]);
    assert_eq!(access.permissions, ["*"]);
    let none = store.access_of(T, bob.id).await.unwrap().unwrap();
    assert!(none.roles.is_empty() && none.permissions.is_empty());
    assert!(store.access_of(T, Uuid::now_v7()).await.unwrap().is_none());
}

/// Five users `page0..4@example.com` with phones `+14155550200..4`.
async fn five_pages(store: &Arc<dyn Store>) {
    for i in 0..5 {
        let u = new_user(&format!("page{i}@example.com"), Some(&format!("+1415555020{i}")), &[]);
        store.create_user(u, None, audit("signup", None)).await.unwrap();
    }
}

pub(super) async fn listing_all_users_pages_in_creation_order(store: Arc<dyn Store>) {
    five_pages(&store).await;
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_users(UserQuery {
                tenant_id: T,
                seek: UserSeek::All { after },
                limit: 3,
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|u| u.id);
        all.extend(page);
    }
    let ids: Vec<Uuid> = all.iter().map(|u| u.id).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    assert_eq!(ids.len() as u64, store.count_users().await.unwrap());
}

pub(super) async fn listing_by_email_prefix_pages_in_email_order(store: Arc<dyn Store>) {
    five_pages(&store).await;
    let page = store
        .list_users(UserQuery {
            tenant_id: T,
            seek: UserSeek::EmailPrefix {
                prefix: "page".into(),
                after: Some("page1@example.com".into()),
            },
            limit: 2,
        })
        .await
        .unwrap();
    let emails: Vec<&str> = page.iter().map(|u| u.email.as_ref().unwrap().as_str()).collect();
    assert_eq!(emails, ["page2@example.com", "page3@example.com"]);
}

pub(super) async fn listing_by_phone_prefix_is_in_phone_order(store: Arc<dyn Store>) {
    five_pages(&store).await;
    // Created last but sorted among the first.
    let eve = new_user("eve@example.com", Some("+14155550111"), &[]);
    store.create_user(eve, None, audit("signup", None)).await.unwrap();
    let page = store
        .list_users(UserQuery {
            tenant_id: T,
            seek: UserSeek::PhonePrefix {
                prefix: "+14155550".into(),
                after: None,
            },
            limit: 10,
        })
        .await
        .unwrap();
    let phones: Vec<&str> = page.iter().map(|u| u.phone.as_ref().unwrap().as_str()).collect();
    let mut sorted = phones.clone();
    sorted.sort();
    assert_eq!(phones, sorted);
    assert!(phones.contains(&"+14155550111"));
}
