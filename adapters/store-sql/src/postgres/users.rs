//! Accounts (argon2 hashes only) and refresh tokens.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mediadl::StoreError;
use mediadl::model::{NewUser, RefreshToken, User, UserPatch};
use mediadl::store::rules::{self, to_micros};
use mediadl::store::{StoreResult, UserRepo};
use sqlx::{Postgres, QueryBuilder};

use super::PgStore;
use super::error::{map_err, map_err_conflict};
use super::rows::{RefreshTokenRow, UserRow, convert_all, from_i64};

const USE_REFRESH_TOKEN: &str = include_str!("../../queries/postgres/use_refresh_token.sql");

fn user_not_found(id: i64) -> StoreError {
    StoreError::not_found("user", id)
}

impl PgStore {
    /// The session version `sql` (reading or bumping it for user `$1`) returns.
    async fn user_session_version(&self, sql: &'static str, user_id: i64) -> StoreResult<u64> {
        let version: i64 = sqlx::query_scalar(sql)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| user_not_found(user_id))?;
        from_i64("session version", version)
    }

    /// Revokes the live refresh tokens of a user or of one family.
    async fn revoke_refresh(
        &self,
        user_id: Option<i64>,
        family_id: Option<&str>,
    ) -> StoreResult<u64> {
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked = TRUE \
             WHERE (user_id = $1 OR family_id = $2) AND NOT revoked",
        )
        .bind(user_id)
        .bind(family_id)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(revoked.rows_affected())
    }
}

#[async_trait]
impl UserRepo for PgStore {
    async fn create_user(&self, new: NewUser, now: DateTime<Utc>) -> StoreResult<User> {
        rules::validate_new_user(&new)?;
        let row = sqlx::query_as::<_, UserRow>(
            "INSERT INTO users (username, email, role, password_hash, disabled, created_at) \
             VALUES ($1, $2, $3, $4, FALSE, $5) RETURNING *",
        )
        .bind(&new.username)
        .bind(&new.email)
        .bind(new.role.as_str())
        .bind(&new.password_hash)
        .bind(to_micros(now))
        .fetch_one(&self.pool)
        .await
        .map_err(|err| map_err_conflict(err, || format!("username {} is taken", new.username)))?;
        User::try_from(row)
    }

    async fn get_user(&self, id: i64) -> StoreResult<User> {
        sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| user_not_found(id))
            .and_then(User::try_from)
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<(User, String)>> {
        let row =
            sqlx::query_as::<_, UserRow>("SELECT * FROM users WHERE lower(username) = lower($1)")
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        match row {
            Some(row) => {
                let hash = row.password_hash.clone();
                Ok(Some((User::try_from(row)?, hash)))
            }
            None => Ok(None),
        }
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query_as::<_, UserRow>("SELECT * FROM users ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        convert_all(rows)
    }

    async fn update_user(&self, id: i64, patch: UserPatch) -> StoreResult<User> {
        rules::validate_user_patch(&patch)?;
        let mut query = QueryBuilder::<Postgres>::new("UPDATE users SET id = id");
        if let Some(email) = patch.email {
            query.push(", email = ").push_bind(email);
        }
        if let Some(role) = patch.role {
            query.push(", role = ").push_bind(role.as_str());
        }
        if let Some(disabled) = patch.disabled {
            query.push(", disabled = ").push_bind(disabled);
        }
        if let Some(hash) = patch.password_hash {
            query.push(", password_hash = ").push_bind(hash);
        }
        query
            .push(" WHERE id = ")
            .push_bind(id)
            .push(" RETURNING *");
        query
            .build_query_as::<UserRow>()
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .ok_or_else(|| user_not_found(id))
            .and_then(User::try_from)
    }

    async fn delete_user(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await.map_err(map_err)?;
        let deleted = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        if deleted.rows_affected() == 0 {
            return Err(user_not_found(id));
        }
        sqlx::query("DELETE FROM refresh_tokens WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn record_login(&self, id: i64, at: DateTime<Utc>) -> StoreResult<()> {
        let updated = sqlx::query("UPDATE users SET last_login = $2 WHERE id = $1")
            .bind(id)
            .bind(to_micros(at))
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        if updated.rows_affected() == 0 {
            return Err(user_not_found(id));
        }
        Ok(())
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        from_i64("user count", count)
    }

    async fn insert_refresh_token(&self, token: RefreshToken) -> StoreResult<()> {
        // The user must exist; checked in the same statement so a token is
        // never stored for an account deleted a moment before.
        let inserted = sqlx::query(
            "INSERT INTO refresh_tokens \
             (id, user_id, family_id, issued_at, expires_at, used_at, revoked) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM users WHERE id = $2)",
        )
        .bind(&token.id)
        .bind(token.user_id)
        .bind(&token.family_id)
        .bind(to_micros(token.issued_at))
        .bind(to_micros(token.expires_at))
        .bind(token.used_at.map(to_micros))
        .bind(token.revoked)
        .execute(&self.pool)
        .await
        .map_err(|err| map_err_conflict(err, || format!("refresh token {} exists", token.id)))?;
        if inserted.rows_affected() == 0 {
            return Err(user_not_found(token.user_id));
        }
        Ok(())
    }

    async fn use_refresh_token(&self, id: &str, now: DateTime<Utc>) -> StoreResult<RefreshToken> {
        sqlx::query_as::<_, RefreshTokenRow>(USE_REFRESH_TOKEN)
            .bind(id)
            .bind(to_micros(now))
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .map(RefreshToken::from)
            .ok_or_else(|| {
                StoreError::Invalid("refresh token is unknown, used, revoked or expired".into())
            })
    }

    async fn revoke_refresh_tokens(&self, user_id: i64) -> StoreResult<u64> {
        self.revoke_refresh(Some(user_id), None).await
    }

    async fn revoke_refresh_family(&self, family_id: &str) -> StoreResult<u64> {
        self.revoke_refresh(None, Some(family_id)).await
    }

    async fn session_version(&self, user_id: i64) -> StoreResult<u64> {
        self.user_session_version("SELECT session_version FROM users WHERE id = $1", user_id)
            .await
    }

    async fn bump_session_version(&self, user_id: i64) -> StoreResult<u64> {
        self.user_session_version(
            "UPDATE users SET session_version = session_version + 1 WHERE id = $1 \
             RETURNING session_version",
            user_id,
        )
        .await
    }
}
