//! Conformance checks of accounts, refresh tokens and session versions.

use std::sync::Arc;

use crate::model::{NewUser, Role, UserPatch};
use crate::store::Store;

use super::*;

/// The users checks, expanded by
/// [`store_conformance_suite!`](crate::store_conformance_suite). A new
/// check of this file goes in this list (a test fails when one is missing).
#[doc(hidden)]
#[macro_export]
macro_rules! conformance_users_cases {
    ($factory:path) => {
        $crate::store_conformance_suite!(@cases $factory; users_accounts, users_refresh_tokens, users_refresh_families_and_session_versions);
    };
}

/// Accounts: unique case-insensitive names, argon2 hashes only.
pub async fn users_accounts(store: Arc<dyn Store>) {
    assert_eq!(store.count_users().await.expect("count"), 0);
    let admin = store
        .create_user(
            NewUser {
                username: "Admin".into(),
                email: Some("admin@example.com".into()),
                role: Role::Admin,
                password_hash: argon2_hash("A"),
            },
            at(0),
        )
        .await
        .expect("create");
    assert_eq!(
        (
            admin.username.as_str(),
            admin.role,
            admin.disabled,
            admin.created_at,
            admin.last_login
        ),
        ("Admin", Role::Admin, false, at(0), None)
    );
    expect_conflict(
        store
            .create_user(
                NewUser {
                    username: "admin".into(),
                    email: None,
                    role: Role::User,
                    password_hash: argon2_hash("B"),
                },
                at(1),
            )
            .await,
        "same name in another case",
    );
    expect_invalid(
        store
            .create_user(
                NewUser {
                    username: "plain".into(),
                    email: None,
                    role: Role::User,
                    password_hash: "hunter2".into(),
                },
                at(1),
            )
            .await,
        "a plain password as hash",
    );
    expect_invalid(
        store
            .create_user(
                NewUser {
                    username: String::new(),
                    email: None,
                    role: Role::User,
                    password_hash: argon2_hash("C"),
                },
                at(1),
            )
            .await,
        "empty username",
    );
    let viewer = store
        .create_user(
            NewUser {
                username: "viewer".into(),
                email: None,
                role: Role::Viewer,
                password_hash: argon2_hash("V"),
            },
            at(2),
        )
        .await
        .expect("viewer");

    let (found, hash) = store
        .user_by_username("ADMIN")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!((found, hash), (admin.clone(), argon2_hash("A")));
    assert_eq!(
        store.user_by_username("nobody").await.expect("lookup"),
        None
    );
    assert_eq!(store.get_user(viewer.id).await.expect("get"), viewer);
    expect_not_found(store.get_user(999_999).await, "missing user");
    assert_eq!(
        store.list_users().await.expect("list"),
        vec![admin.clone(), viewer.clone()]
    );
    assert_eq!(store.count_users().await.expect("count"), 2);

    let updated = store
        .update_user(
            viewer.id,
            UserPatch {
                email: Some(Some("v@example.com".into())),
                role: Some(Role::User),
                password_hash: Some(argon2_hash("V2")),
                disabled: Some(true),
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (updated.email.as_deref(), updated.role, updated.disabled),
        (Some("v@example.com"), Role::User, true)
    );
    let (_, new_hash) = store
        .user_by_username("viewer")
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(new_hash, argon2_hash("V2"));
    let cleared = store
        .update_user(
            viewer.id,
            UserPatch {
                email: Some(None),
                ..Default::default()
            },
        )
        .await
        .expect("clear email");
    assert_eq!((cleared.email, cleared.role), (None, Role::User));
    expect_invalid(
        store
            .update_user(
                viewer.id,
                UserPatch {
                    password_hash: Some("plain".into()),
                    ..Default::default()
                },
            )
            .await,
        "plain password in a patch",
    );
    expect_not_found(
        store.update_user(999_999, UserPatch::default()).await,
        "update missing",
    );

    store.record_login(admin.id, at(500)).await.expect("login");
    assert_eq!(
        store.get_user(admin.id).await.expect("get").last_login,
        Some(at(500))
    );
    expect_not_found(store.record_login(999_999, at(1)).await, "login of missing");

    store.delete_user(viewer.id).await.expect("delete");
    expect_not_found(store.get_user(viewer.id).await, "deleted user");
    expect_not_found(store.delete_user(viewer.id).await, "delete twice");
    assert_eq!(store.count_users().await.expect("count"), 1);
}

/// Refresh tokens work once, and never when revoked or expired.
pub async fn users_refresh_tokens(store: Arc<dyn Store>) {
    let user = store
        .create_user(
            NewUser {
                username: "u".into(),
                email: None,
                role: Role::User,
                password_hash: argon2_hash("U"),
            },
            at(0),
        )
        .await
        .expect("user");
    let token = |id: &str, expires: i64| refresh_token(id, user.id, id, expires);
    store
        .insert_refresh_token(token("t1", 1000))
        .await
        .expect("insert");
    expect_conflict(
        store.insert_refresh_token(token("t1", 1000)).await,
        "duplicate token id",
    );
    let mut orphan = token("t-orphan", 1000);
    orphan.user_id = 999_999;
    expect_not_found(
        store.insert_refresh_token(orphan).await,
        "token of a missing user",
    );

    let used = store.use_refresh_token("t1", at(10)).await.expect("use");
    assert_eq!(used.used_at, Some(at(10)));
    assert_eq!((used.user_id, used.expires_at), (user.id, at(1000)));
    expect_invalid(store.use_refresh_token("t1", at(11)).await, "used twice");
    expect_invalid(
        store.use_refresh_token("unknown", at(11)).await,
        "unknown token",
    );

    store
        .insert_refresh_token(token("t2", 100))
        .await
        .expect("insert");
    expect_invalid(
        store.use_refresh_token("t2", at(100)).await,
        "expired at its expiry instant",
    );

    store
        .insert_refresh_token(token("t3", 1000))
        .await
        .expect("insert");
    store
        .insert_refresh_token(token("t4", 1000))
        .await
        .expect("insert");
    assert_eq!(
        store.revoke_refresh_tokens(user.id).await.expect("revoke"),
        4,
        "every token not yet revoked"
    );
    assert_eq!(
        store
            .revoke_refresh_tokens(user.id)
            .await
            .expect("revoke again"),
        0
    );
    expect_invalid(store.use_refresh_token("t3", at(20)).await, "revoked");

    store
        .insert_refresh_token(token("t5", 1000))
        .await
        .expect("insert");
    store.delete_user(user.id).await.expect("delete user");
    expect_invalid(
        store.use_refresh_token("t5", at(20)).await,
        "token of a deleted user",
    );
}

/// A reused refresh token revokes its family and no other; session
/// versions start at 0, only grow, and belong to one account.
pub async fn users_refresh_families_and_session_versions(store: Arc<dyn Store>) {
    let mut users = Vec::new();
    for name in ["fam-a", "fam-b"] {
        let user = store
            .create_user(
                NewUser {
                    username: name.into(),
                    email: None,
                    role: Role::User,
                    password_hash: argon2_hash(name),
                },
                at(0),
            )
            .await
            .expect("user");
        users.push(user);
    }
    let (alice, bob) = (&users[0], &users[1]);
    // Alice logs in twice (two families); Bob once.
    for (id, user_id, family) in [
        ("a1", alice.id, "login-1"),
        ("a2", alice.id, "login-1"),
        ("a3", alice.id, "login-1"),
        ("b1", alice.id, "login-2"),
        ("c1", bob.id, "login-3"),
    ] {
        store
            .insert_refresh_token(refresh_token(id, user_id, family, 1000))
            .await
            .expect("insert");
    }
    let used = store.use_refresh_token("a1", at(5)).await.expect("use");
    assert_eq!(used.family_id, "login-1");
    store.use_refresh_token("a2", at(6)).await.expect("use");
    assert_eq!(
        store
            .revoke_refresh_family("login-1")
            .await
            .expect("revoke family"),
        3,
        "every token of the family not yet revoked, used ones included"
    );
    assert_eq!(
        store
            .revoke_refresh_family("login-1")
            .await
            .expect("revoke again"),
        0
    );
    expect_invalid(store.use_refresh_token("a3", at(7)).await, "revoked family");
    // The other login of the same user and other users keep working.
    store
        .use_refresh_token("b1", at(7))
        .await
        .expect("other family");
    store
        .use_refresh_token("c1", at(7))
        .await
        .expect("other user");
    assert_eq!(
        store
            .revoke_refresh_family("no-such-family")
            .await
            .expect("unknown family"),
        0
    );

    assert_eq!(store.session_version(alice.id).await.expect("version"), 0);
    assert_eq!(store.bump_session_version(alice.id).await.expect("bump"), 1);
    assert_eq!(store.bump_session_version(alice.id).await.expect("bump"), 2);
    assert_eq!(store.session_version(alice.id).await.expect("version"), 2);
    assert_eq!(
        store.session_version(bob.id).await.expect("version"),
        0,
        "versions are per account"
    );
    // A change to the account itself leaves the version alone.
    store
        .update_user(
            alice.id,
            UserPatch {
                role: Some(Role::Viewer),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert_eq!(store.session_version(alice.id).await.expect("version"), 2);
    expect_not_found(store.session_version(999_999).await, "version of missing");
    expect_not_found(store.bump_session_version(999_999).await, "bump of missing");
    store.delete_user(alice.id).await.expect("delete");
    expect_not_found(
        store.session_version(alice.id).await,
        "version of a deleted user",
    );
}
