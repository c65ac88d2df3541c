//! Accounts and refresh tokens on SQLite.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{NewUser, RefreshToken, User, UserPatch};
use mediadl::store::rules;
use mediadl::store::{StoreResult, UserRepo};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::rows::{self, micros, opt_micros};
use super::{SqliteStore, change_existing, map_err};

/// The unique, case-insensitive form of a username.
fn username_key(username: &str) -> String {
    username.to_lowercase()
}

#[async_trait]
impl UserRepo for SqliteStore {
    async fn create_user(&self, new: NewUser, now: DateTime<Utc>) -> StoreResult<User> {
        rules::validate_new_user(&new)?;
        let mut conn = self.write_conn().await?;
        let row = sqlx::query(
            "INSERT INTO users (username, username_key, email, role, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(new.username.clone())
        .bind(username_key(&new.username))
        .bind(new.email.clone())
        .bind(new.role.as_str())
        .bind(new.password_hash.clone())
        .bind(micros(now))
        .fetch_one(&mut *conn)
        .await
        .map_err(|err| match map_err(err) {
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("username {} is taken", new.username))
            }
            other => other,
        })?;
        rows::user(&row)
    }

    async fn get_user(&self, id: i64) -> StoreResult<User> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("user", id))?;
        rows::user(&row)
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        let Some(row) = sqlx::query("SELECT * FROM users WHERE username_key = $1")
            .bind(username_key(username))
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        let hash: String = row.try_get("password_hash").map_err(map_err)?;
        Ok(Some((rows::user(&row)?, hash)))
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        sqlx::query("SELECT * FROM users ORDER BY id")
            .fetch_all(&self.reader)
            .await
            .map_err(map_err)?
            .iter()
            .map(rows::user)
            .collect()
    }

    async fn update_user(&self, id: i64, patch: UserPatch) -> StoreResult<User> {
        rules::validate_user_patch(&patch)?;
        let mut qb = QueryBuilder::<Sqlite>::new("UPDATE users SET id = id");
        if let Some(email) = patch.email {
            qb.push(", email = ").push_bind(email);
        }
        if let Some(role) = patch.role {
            qb.push(", role = ").push_bind(role.as_str());
        }
        if let Some(hash) = patch.password_hash {
            qb.push(", password_hash = ").push_bind(hash);
        }
        if let Some(disabled) = patch.disabled {
            qb.push(", disabled = ").push_bind(disabled);
        }
        qb.push(" WHERE id = ").push_bind(id).push(" RETURNING *");
        let mut conn = self.write_conn().await?;
        let row = qb
            .build()
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("user", id))?;
        rows::user(&row)
    }

    async fn delete_user(&self, id: i64) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        // Refresh tokens go with the user (ON DELETE CASCADE).
        change_existing(
            sqlx::query("DELETE FROM users WHERE id = $1").bind(id),
            &mut conn,
            "user",
            id,
        )
        .await
    }

    async fn record_login(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        change_existing(
            sqlx::query("UPDATE users SET last_login = $2 WHERE id = $1")
                .bind(id)
                .bind(micros(at)),
            &mut conn,
            "user",
            id,
        )
        .await
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.reader)
            .await
            .map_err(map_err)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn insert_refresh_token(&self, token: RefreshToken) -> StoreResult<()> {
        let mut conn = self.write_conn().await?;
        sqlx::query(
            "INSERT INTO refresh_tokens \
             (id, user_id, family_id, issued_at, expires_at, used_at, revoked) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(token.id.clone())
        .bind(token.user_id)
        .bind(token.family_id.clone())
        .bind(micros(token.issued_at))
        .bind(micros(token.expires_at))
        .bind(opt_micros(token.used_at))
        .bind(token.revoked)
        .execute(&mut *conn)
        .await
        .map_err(|err| match map_err(err) {
            StoreError::NotFound { .. } => StoreError::not_found("user", token.user_id),
            StoreError::Conflict(_) => {
                StoreError::Conflict(format!("refresh token {} exists", token.id))
            }
            other => other,
        })?;
        Ok(())
    }

    async fn use_refresh_token(&self, id: &str, now: DateTime<Utc>) -> StoreResult<RefreshToken> {
        let mut conn = self.write_conn().await?;
        let row = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1 AND used_at IS NULL \
             AND revoked = 0 AND expires_at > $2 RETURNING *",
        )
        .bind(id.to_string())
        .bind(micros(now))
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .ok_or_else(|| {
            StoreError::Invalid("refresh token is unknown, used, revoked or expired".into())
        })?;
        rows::refresh_token(&row)
    }

    async fn revoke_refresh_tokens(&self, user_id: i64) -> StoreResult<u64> {
        let mut conn = self.write_conn().await?;
        Ok(
            sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE user_id = $1 AND revoked = 0")
                .bind(user_id)
                .execute(&mut *conn)
                .await
                .map_err(map_err)?
                .rows_affected(),
        )
    }

    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<u64> {
        let mut conn = self.write_conn().await?;
        Ok(sqlx::query(
            "UPDATE refresh_tokens SET revoked = 1 WHERE family_id = $1 AND revoked = 0",
        )
        .bind(family_id.to_string())
        .execute(&mut *conn)
        .await
        .map_err(map_err)?
        .rows_affected())
    }

    async fn session_version(&self, user_id: i64) -> StoreResult<u64> {
        let version: i64 = sqlx::query_scalar("SELECT session_version FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await
            .map_err(map_err)?
            .ok_or_else(|| StoreError::not_found("user", user_id))?;
        Ok(u64::try_from(version).unwrap_or(0))
    }

    async fn bump_session_version(&self, user_id: i64) -> StoreResult<u64> {
        let mut conn = self.write_conn().await?;
        let version: i64 = sqlx::query_scalar(
            "UPDATE users SET session_version = session_version + 1 WHERE id = $1 \
             RETURNING session_version",
        )
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(map_err)?
        .ok_or_else(|| StoreError::not_found("user", user_id))?;
        Ok(u64::try_from(version).unwrap_or(0))
    }
}
