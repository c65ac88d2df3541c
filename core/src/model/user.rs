use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What a user may do: `admin` everything, `user` read and queue, `viewer` read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Reads everything and queues downloads.
    User,
    /// Everything, including users and settings.
    Admin,
}

spellings! {
    Role, field "role", unknown "role", listing "(admin, user, viewer)";
    Viewer => "viewer",
    User => "user",
    Admin => "admin",
}

impl Role {
    /// Whether this role includes everything `required` may do.
    pub fn allows(self, required: Role) -> bool {
        self >= required
    }
}

/// An account. The password hash never travels with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    /// Store-assigned id.
    pub id: i64,
    /// Login name, unique.
    pub username: String,
    /// Contact address for notifications, if given.
    pub email: Option<String>,
    /// What the account may do.
    pub role: Role,
    /// Disabled accounts cannot log in or refresh tokens.
    pub disabled: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When the account last logged in successfully.
    pub last_login: Option<DateTime<Utc>>,
}

/// A new account with its argon2 PHC hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewUser {
    /// Login name; must not be taken.
    pub username: String,
    /// Contact address for notifications, if given.
    pub email: Option<String>,
    /// What the account may do.
    pub role: Role,
    /// argon2 PHC string of the password (never the password).
    pub password_hash: String,
}

/// A change to an account; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UserPatch {
    /// `Some(None)` clears the address, `Some(Some(_))` sets it.
    pub email: Option<Option<String>>,
    /// New role.
    pub role: Option<Role>,
    /// New argon2 PHC string.
    pub password_hash: Option<String>,
    /// Disable or re-enable the account.
    pub disabled: Option<bool>,
}

/// A stored refresh token (only its id is stored, never the token text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshToken {
    /// The token's `jti`.
    pub id: String,
    /// The account the token was issued to.
    pub user_id: i64,
    /// The login this token descends from: a login starts a family (its id
    /// is the first token's id) and every rotation stays in it, so reuse of
    /// a spent token can revoke everything issued after it.
    pub family_id: String,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for a new pair; a token is accepted once.
    pub used_at: Option<DateTime<Utc>>,
    /// Revoked tokens (logout, password change, a reused family) are refused.
    pub revoked: bool,
}
