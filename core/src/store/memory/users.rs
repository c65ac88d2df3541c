//! [`UserRepo`] of the [`MemoryStore`](super::MemoryStore): accounts, refresh tokens and sessions.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::error::StoreError;
use crate::model::{NewUser, RefreshToken, User, UserPatch};
use crate::store::rules::{self, to_micros};
use crate::store::{StoreResult, UserRepo};

#[async_trait]
impl UserRepo for MemoryStore {
    async fn create_user(&self, new: NewUser, now: DateTime<Utc>) -> StoreResult<User> {
        rules::validate_new_user(&new)?;
        let mut state = self.lock()?;
        let lower = new.username.to_lowercase();
        if state
            .users
            .values()
            .any(|(user, _)| user.username.to_lowercase() == lower)
        {
            return Err(StoreError::Conflict(format!(
                "username {} is taken",
                new.username
            )));
        }
        let id = state.next_id("users");
        let user = User {
            id,
            username: new.username,
            email: new.email,
            role: new.role,
            disabled: false,
            created_at: to_micros(now),
            last_login: None,
        };
        state.users.insert(id, (user.clone(), new.password_hash));
        Ok(user)
    }

    async fn get_user(&self, id: i64) -> StoreResult<User> {
        self.lock()?
            .users
            .get(&id)
            .map(|(user, _)| user.clone())
            .ok_or_else(|| StoreError::not_found("user", id))
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        let lower = username.to_lowercase();
        Ok(self
            .lock()?
            .users
            .values()
            .find(|(user, _)| user.username.to_lowercase() == lower)
            .cloned())
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        Ok(self
            .lock()?
            .users
            .values()
            .map(|(user, _)| user.clone())
            .collect())
    }

    async fn update_user(&self, id: i64, patch: UserPatch) -> StoreResult<User> {
        rules::validate_user_patch(&patch)?;
        let mut state = self.lock()?;
        let (user, hash) = state
            .users
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("user", id))?;
        if let Some(email) = patch.email {
            user.email = email;
        }
        if let Some(role) = patch.role {
            user.role = role;
        }
        if let Some(disabled) = patch.disabled {
            user.disabled = disabled;
        }
        if let Some(new_hash) = patch.password_hash {
            *hash = new_hash;
        }
        Ok(user.clone())
    }

    async fn delete_user(&self, id: i64) -> StoreResult<()> {
        let mut state = self.lock()?;
        state
            .users
            .remove(&id)
            .ok_or_else(|| StoreError::not_found("user", id))?;
        state.refresh_tokens.retain(|_, token| token.user_id != id);
        state.session_versions.remove(&id);
        Ok(())
    }

    async fn record_login(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        let mut state = self.lock()?;
        let (user, _) = state
            .users
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("user", id))?;
        user.last_login = Some(to_micros(at));
        Ok(())
    }

    async fn count_users(&self) -> StoreResult<u64> {
        Ok(self.lock()?.users.len() as u64)
    }

    async fn insert_refresh_token(&self, mut token: RefreshToken) -> StoreResult<()> {
        let mut state = self.lock()?;
        if !state.users.contains_key(&token.user_id) {
            return Err(StoreError::not_found("user", token.user_id));
        }
        if state.refresh_tokens.contains_key(&token.id) {
            return Err(StoreError::Conflict(format!(
                "refresh token {} exists",
                token.id
            )));
        }
        token.issued_at = to_micros(token.issued_at);
        token.expires_at = to_micros(token.expires_at);
        token.used_at = token.used_at.map(to_micros);
        state.refresh_tokens.insert(token.id.clone(), token);
        Ok(())
    }

    async fn use_refresh_token(&self, id: &str, now: DateTime<Utc>) -> StoreResult<RefreshToken> {
        let mut state = self.lock()?;
        match state.refresh_tokens.get_mut(id) {
            Some(token) if token.used_at.is_none() && !token.revoked && token.expires_at > now => {
                token.used_at = Some(to_micros(now));
                Ok(token.clone())
            }
            _ => Err(StoreError::Invalid(
                "refresh token is unknown, used, revoked or expired".into(),
            )),
        }
    }

    async fn revoke_refresh_tokens(&self, user_id: i64) -> StoreResult<u64> {
        Ok(self.lock()?.revoke_tokens(|token| token.user_id == user_id))
    }

    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<u64> {
        Ok(self
            .lock()?
            .revoke_tokens(|token| token.family_id == family_id))
    }

    async fn session_version(&self, user_id: i64) -> StoreResult<u64> {
        let state = self.lock()?;
        if !state.users.contains_key(&user_id) {
            return Err(StoreError::not_found("user", user_id));
        }
        Ok(state.session_versions.get(&user_id).copied().unwrap_or(0))
    }

    async fn bump_session_version(&self, user_id: i64) -> StoreResult<u64> {
        let mut state = self.lock()?;
        if !state.users.contains_key(&user_id) {
            return Err(StoreError::not_found("user", user_id));
        }
        let version = state.session_versions.entry(user_id).or_insert(0);
        *version += 1;
        Ok(*version)
    }
}
