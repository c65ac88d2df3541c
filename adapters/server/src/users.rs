//! Accounts: argon2 password hashing and the user operations shared by the
//! API and the `mediadl user …` commands.

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::Utc;
use mediadl::model::{NewUser, Role, User, UserPatch};
use mediadl::store::UserRepo;
use rand::distr::{Alphanumeric, SampleString};

use crate::config::AdminBootstrap;

/// Why a user operation failed.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A username or password does not meet the rules.
    #[error("{field}: {reason}")]
    Invalid {
        /// `username` or `password`.
        field: &'static str,
        /// The rule it breaks.
        reason: String,
    },
    /// No user has this username.
    #[error("user {0:?} not found")]
    UnknownUser(String),
    /// argon2 failed (out of memory, bad parameters).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The store failed or refused (a taken username is a conflict).
    #[error(transparent)]
    Store(#[from] mediadl::StoreError),
}

/// Shortest password accepted, in characters.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted, in bytes: argon2's input stays bounded, and
/// a login with a longer one is refused before it is hashed.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// Longest username, in characters (the server's rule is 64 bytes; the
/// stores allow 64 characters): a login with a longer one is refused
/// before any lookup.
pub const MAX_USERNAME_LEN: usize = 64;

/// An argon2id PHC string for `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, UserError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|err| UserError::Hash(err.to_string()))
}

/// Whether `password` matches the PHC string `hash` (false for a malformed hash).
pub fn verify_password(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Checks a username: 1–64 characters of letters, digits, `.`, `_`, `-`, `@`.
pub fn validate_username(username: &str) -> Result<(), UserError> {
    let ok = !username.is_empty()
        && username.len() <= MAX_USERNAME_LEN
        && username
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(UserError::Invalid {
            field: "username",
            reason: "1 to 64 letters, digits, '.', '_', '-' or '@'".into(),
        })
    }
}

/// Checks a password's length.
pub fn validate_password(password: &str) -> Result<(), UserError> {
    if password.chars().count() >= MIN_PASSWORD_LEN && password.len() <= MAX_PASSWORD_LEN {
        Ok(())
    } else {
        Err(UserError::Invalid {
            field: "password",
            reason: format!(
                "must be at least {MIN_PASSWORD_LEN} characters and at most {MAX_PASSWORD_LEN} bytes"
            ),
        })
    }
}

/// Creates an account (`Conflict` from the store when the name is taken).
pub async fn create_user(
    store: &dyn UserRepo,
    username: &str,
    password: &str,
    role: Role,
    email: Option<String>,
) -> Result<User, UserError> {
    validate_username(username)?;
    validate_password(password)?;
    let password_hash = hash_password(password)?;
    let user = store
        .create_user(
            NewUser {
                username: username.to_string(),
                email,
                role,
                password_hash,
            },
            Utc::now(),
        )
        .await?;
    Ok(user)
}

/// Sets a user's password and ends their sessions: refresh tokens are
/// revoked and the session version moves on, so access tokens end too (a
/// running server sees it within its user cache's lifetime).
pub async fn set_password(
    store: &dyn UserRepo,
    username: &str,
    password: &str,
) -> Result<User, UserError> {
    validate_password(password)?;
    let (user, _) = store
        .user_by_username(username)
        .await?
        .ok_or_else(|| UserError::UnknownUser(username.to_string()))?;
    let user = store
        .update_user(
            user.id,
            UserPatch {
                password_hash: Some(hash_password(password)?),
                ..UserPatch::default()
            },
        )
        .await?;
    store.revoke_refresh_tokens(user.id).await?;
    store.bump_session_version(user.id).await?;
    Ok(user)
}

/// Every account, ordered by id.
pub async fn list_users(store: &dyn UserRepo) -> Result<Vec<User>, UserError> {
    Ok(store.list_users().await?)
}

/// A random password of 20 letters and digits.
pub fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

/// On a store without users, creates the bootstrap admin. Returns the
/// generated password when none was given (the caller shows it once).
pub async fn bootstrap_admin(
    store: &dyn UserRepo,
    admin: &AdminBootstrap,
) -> Result<Option<(User, Option<String>)>, UserError> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let generated = admin.password.is_none().then(random_password);
    let password = admin
        .password
        .clone()
        .or_else(|| generated.clone())
        .unwrap_or_default();
    let user = create_user(store, &admin.username, &password, Role::Admin, None).await?;
    Ok(Some((user, generated)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let a = hash_password("correct horse").unwrap();
        let b = hash_password("correct horse").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &a));
        assert!(!verify_password("wrong horse", &a));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn usernames_and_passwords_are_checked() {
        assert!(validate_username("alice.b-2").is_ok());
        assert!(validate_username("../etc").is_err());
        assert!(validate_username("a b").is_err());
        assert!(validate_username("").is_err());
        assert!(validate_password("short").is_err());
        assert!(validate_password("long enough").is_ok());
        assert!(validate_password(&"é".repeat(512)).is_ok());
        assert!(validate_password(&"é".repeat(513)).is_err(), "1026 bytes");
        assert_eq!(random_password().len(), 20);
    }
}
