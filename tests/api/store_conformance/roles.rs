//! Roles: custom and built-in, assignment, permissions reaching holders,
//! and auditing only what changed.

use super::*;

fn perms(p: &[&str]) -> Vec<Permission> {
    p.iter().map(|s| Permission::parse(s).unwrap()).collect()
}

async fn create_editor(store: &Arc<dyn Store>) -> Role {
    store
        .create_role(
            NewRole {
                id: Uuid::now_v7(),
                tenant_id: T,
                name: RoleName::parse("editor").unwrap(),
                permissions: perms(&["users:read"]),
                now: NOW,
            },
            audit("role_created", None),
        )
        .await
        .unwrap()
}

pub(super) async fn create_role_returns_a_custom_role(store: Arc<dyn Store>) {
    let role = create_editor(&store).await;
    assert_eq!(role.permissions, ["users:read"]);
    assert!(!role.builtin);
    let names: Vec<String> = store.list_roles(T).await.unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["admin", "editor"]);
}

pub(super) async fn create_role_with_a_taken_name_conflicts_on_name(store: Arc<dyn Store>) {
    create_editor(&store).await;
    let e = store
        .create_role(
            NewRole {
                id: Uuid::now_v7(),
                tenant_id: T,
                name: RoleName::parse("editor").unwrap(),
                permissions: vec![],
                now: NOW,
            },
            audit("role_created", None),
        )
        .await
        .unwrap_err();
    assert_eq!(conflict_field(e), "name");
}

pub(super) async fn the_builtin_admin_role_cannot_be_changed(store: Arc<dyn Store>) {
    assert!(matches!(
        store
            .set_role_permissions(T, "admin", perms(&["users:read"]), audit("role_updated", None))
            .await,
        Err(StoreError::NotFound)
    ));
}

pub(super) async fn assign_and_remove_role_report_whether_anything_changed(store: Arc<dyn Store>) {
    create_editor(&store).await;
    let eve = signed_up(&store, "eve@example.com", None).await;
    assert!(
        store
            .assign_role(T, eve.id, "editor", audit("role_assigned", None))
            .await
            .unwrap()
    );
    assert!(
        !store
            .assign_role(T, eve.id, "editor", audit("role_assigned", None))
            .await
            .unwrap()
    );
    assert!(
        store
            .remove_role(T, eve.id, "editor", audit("role_removed", None))
            .await
            .unwrap()
    );
    assert!(
        !store
            .remove_role(T, eve.id, "editor", audit("role_removed", None))
            .await
            .unwrap()
    );
}

pub(super) async fn assigning_an_unknown_role_is_not_found(store: Arc<dyn Store>) {
    let eve = signed_up(&store, "eve@example.com", None).await;
    assert!(matches!(
        store
            .assign_role(T, eve.id, "ghost", audit("role_assigned", None))
            .await,
        Err(StoreError::NotFound)
    ));
}

pub(super) async fn new_role_permissions_reach_its_holders(store: Arc<dyn Store>) {
    create_editor(&store).await;
    let eve = signed_up(&store, "eve@example.com", None).await;
    store
        .assign_role(T, eve.id, "editor", audit("role_assigned", None))
        .await
        .unwrap();
    store
        .set_role_permissions(
            T,
            "editor",
            perms(&["users:read", "audit:read"]),
            audit("role_updated", None),
        )
        .await
        .unwrap();
    let access = store.access_of(T, eve.id).await.unwrap().unwrap();
    assert_eq!(access.permissions, ["audit:read", "users:read"]);
}

pub(super) async fn deleting_a_role_returns_its_holders_and_takes_it_from_them(store: Arc<dyn Store>) {
    create_editor(&store).await;
    let eve = signed_up(&store, "eve@example.com", None).await;
    store
        .assign_role(T, eve.id, "editor", audit("role_assigned", None))
        .await
        .unwrap();
    let holders = store
        .delete_role(T, "editor", audit("role_deleted", None))
        .await
        .unwrap();
    assert_eq!(holders, [eve.id]);
    assert!(store.access_of(T, eve.id).await.unwrap().unwrap().roles.is_empty());
}

pub(super) async fn only_role_assignments_that_change_something_are_audited(store: Arc<dyn Store>) {
    create_editor(&store).await;
    let eve = signed_up(&store, "eve@example.com", None).await;
    for changes in [true, false] {
        let changed = store
            .assign_role(T, eve.id, "editor", audit("role_assigned", None))
            .await
            .unwrap();
        assert_eq!(changed, changes);
    }
    assert!(
        store
            .assign_role(T, eve.id, "ghost", audit("role_assigned", None))
            .await
            .is_err()
    );
    store
        .remove_role(T, eve.id, "editor", audit("role_removed", None))
        .await
        .unwrap();
    store
        .assign_role(T, eve.id, "editor", audit("role_assigned", None))
        .await
        .unwrap();
    let assigned = store
        .list_audit(AuditQuery {
            tenant_id: T,
            user_id: None,
            event: Some("role_assigned".into()),
            before: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(
        assigned.len(),
        2,
        "only the assignments that changed something were audited"
    );
}
