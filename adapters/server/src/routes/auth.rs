//! `/auth/*`: login, refresh (rotating), me, own password change, logout.

use http::StatusCode;
use mediadl::StoreError;
use mediadl::model::User;
use serde::{Deserialize, Serialize};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{ACCESS_TOKEN_TTL, AuthUser, TokenKind, authenticated};
use crate::error::{ApiError, ApiResult, codes, handle};
use crate::request::json_body;
use crate::state::AppState;
use crate::users::{hash_password, validate_password, verify_password};

/// A hash to verify against when the username is unknown, so both cases
/// take the same time.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    hash_password("no such user, no such password").unwrap_or_default()
});

/// The body of `POST /auth/login`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name (case-insensitive).
    pub username: String,
    /// The account's password.
    pub password: String,
}

/// The body of `POST /auth/refresh`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// A refresh token not used before; it is spent by this call.
    pub refresh_token: String,
}

/// The body of `POST /auth/password`: the caller's own password change.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    /// The password now, proving it is the account's owner.
    pub current_password: String,
    /// The password from now on; it must meet the password rules.
    #[schema(min_length = 8, max_length = 1024)]
    pub new_password: String,
}

/// The user as login returns it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserSummary {
    /// The account's id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Contact address, if given.
    pub email: Option<String>,
    /// What the account may do.
    pub role: mediadl::model::Role,
}

impl From<&User> for UserSummary {
    fn from(user: &User) -> Self {
        Self {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            role: user.role,
        }
    }
}

/// The `/auth/*` routes (login and refresh are public, the rest need a token).
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let login = warp::path!("auth" / "login")
        .and(warp::post())
        .and(with(state.clone()))
        .and(json_body::<LoginRequest>())
        .and_then(|state, body| handle(login(state, body)));
    let refresh = warp::path!("auth" / "refresh")
        .and(warp::post())
        .and(with(state.clone()))
        .and(json_body::<RefreshRequest>())
        .and_then(|state, body| handle(refresh(state, body)));
    let me = warp::path!("auth" / "me")
        .and(warp::get())
        .and(authenticated(state.clone()))
        .map(|user: AuthUser| warp::reply::json(&user.user).into_response());
    let password = warp::path!("auth" / "password")
        .and(warp::post())
        .and(authenticated(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<PasswordChange>())
        .and_then(|user, state, body| handle(change_password(user, state, body)));
    let logout = warp::path!("auth" / "logout")
        .and(warp::post())
        .and(authenticated(state.clone()))
        .and(with(state))
        .and_then(|user: AuthUser, state: AppState| {
            handle(async move {
                state.store.revoke_refresh_tokens(user.id()).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            })
        });
    login
        .or(refresh)
        .unify()
        .or(me)
        .unify()
        .or(password)
        .unify()
        .or(logout)
        .unify()
        .boxed()
}

/// Clones the state into a filter chain.
pub fn with(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

fn bad_credentials() -> ApiError {
    ApiError::unauthorized(codes::INVALID_CREDENTIALS, "Incorrect username or password")
}

async fn login(state: AppState, body: LoginRequest) -> ApiResult {
    state.auth.check_lockout(&body.username)?;
    let found = if body.username.len() <= 256 {
        state.store.user_by_username(&body.username).await?
    } else {
        None
    };
    // Hashing is slow on purpose: keep it off the async workers.
    let password = body.password.clone();
    let hash = found
        .as_ref()
        .map_or_else(|| DUMMY_HASH.clone(), |(_, hash)| hash.clone());
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(ApiError::internal)?;
    let user = match found {
        Some((user, _)) if matches => user,
        _ => {
            state.auth.record_failure(&body.username);
            tracing::info!(target: "mediadl_server::routes::auth", username = %body.username, "failed login");
            return Err(bad_credentials());
        }
    };
    if user.disabled {
        return Err(ApiError::unauthorized(
            codes::ACCOUNT_DISABLED,
            "the account is disabled",
        ));
    }
    state.auth.record_success(&body.username);
    let now = state.clock.now();
    state.store.record_login(user.id, now).await?;
    let access = state.auth.issue(&user, TokenKind::Access, now)?;
    let refresh = state.auth.issue_refresh(&state, &user).await?;
    Ok(warp::reply::json(&serde_json::json!({
        "access_token": access.token,
        "refresh_token": refresh,
        "token_type": "bearer",
        "expires_in": ACCESS_TOKEN_TTL.as_secs(),
        "user": UserSummary::from(&user),
    }))
    .into_response())
}

async fn refresh(state: AppState, body: RefreshRequest) -> ApiResult {
    let claims = state.auth.verify(&body.refresh_token, TokenKind::Refresh)?;
    let stored = match state
        .store
        .use_refresh_token(&claims.jti, state.clock.now())
        .await
    {
        Ok(stored) => stored,
        Err(StoreError::Invalid(_) | StoreError::NotFound { .. }) => {
            return Err(ApiError::unauthorized(
                codes::TOKEN_INVALID,
                "refresh token already used, revoked or unknown",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let user = match state.store.get_user(stored.user_id).await {
        Ok(user) if !user.disabled => user,
        Ok(_) => {
            return Err(ApiError::unauthorized(
                codes::ACCOUNT_DISABLED,
                "the account is disabled",
            ));
        }
        Err(StoreError::NotFound { .. }) => {
            return Err(ApiError::unauthorized(
                codes::TOKEN_INVALID,
                "the token's user no longer exists",
            ));
        }
        Err(err) => return Err(err.into()),
    };
    let access = state
        .auth
        .issue(&user, TokenKind::Access, state.clock.now())?;
    let rotated = state.auth.issue_refresh(&state, &user).await?;
    Ok(warp::reply::json(&serde_json::json!({
        "access_token": access.token,
        "refresh_token": rotated,
        "token_type": "bearer",
        "expires_in": ACCESS_TOKEN_TTL.as_secs(),
    }))
    .into_response())
}

async fn change_password(user: AuthUser, state: AppState, body: PasswordChange) -> ApiResult {
    validate_password(&body.new_password)
        .map_err(|err| ApiError::validation("new_password", err))?;
    let (_, hash) = state
        .store
        .user_by_username(&user.user.username)
        .await?
        .ok_or_else(|| ApiError::not_found("user not found"))?;
    let current = body.current_password.clone();
    let matches = tokio::task::spawn_blocking(move || verify_password(&current, &hash))
        .await
        .map_err(ApiError::internal)?;
    if !matches {
        return Err(ApiError::validation("current_password", "does not match"));
    }
    let new = body.new_password.clone();
    let new_hash = tokio::task::spawn_blocking(move || hash_password(&new))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    state
        .store
        .update_user(
            user.id(),
            mediadl::model::UserPatch {
                password_hash: Some(new_hash),
                ..Default::default()
            },
        )
        .await?;
    state.store.revoke_refresh_tokens(user.id()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
