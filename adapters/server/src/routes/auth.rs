//! `/auth/*`: login, refresh (rotating, in families), me, own password
//! change, logout.
//!
//! Wrong passwords (at login and as `current_password`) go through the
//! login throttle keyed by username and client network; over-long names
//! and passwords are refused before any lookup, hashing or log line.

use std::net::IpAddr;

use http::StatusCode;
use mediadl::StoreError;
use mediadl::model::User;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{
    ACCESS_TOKEN_TTL, AuthUser, Session, TokenKind, TokenPair, authenticated, end_sessions,
    load_session_user,
};
use crate::error::{ApiError, ApiResult, ErrorBody, codes, handle};
use crate::request::{RequestInfo, json_body, request_info};
use crate::routes::endpoint;
use crate::state::AppState;
use crate::users::{
    MAX_PASSWORD_LEN, MAX_USERNAME_LEN, hash_password, validate_password, verify_password,
};

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
    let login = endpoint::<__path_login>()
        .and(with(state.clone()))
        .and(client_ip())
        .and(json_body::<LoginRequest>())
        .and_then(|state, client, body| handle(login(state, client, body)));
    let refresh = endpoint::<__path_refresh>()
        .and(with(state.clone()))
        .and(json_body::<RefreshRequest>())
        .and_then(|state, body| handle(refresh(state, body)));
    let me = endpoint::<__path_me>()
        .and(authenticated(state.clone()))
        .map(me);
    let password = endpoint::<__path_change_password>()
        .and(authenticated(state.clone()))
        .and(with(state.clone()))
        .and(client_ip())
        .and(json_body::<PasswordChange>())
        .and_then(|user, state, client, body| handle(change_password(user, state, client, body)));
    let logout = endpoint::<__path_logout>()
        .and(authenticated(state.clone()))
        .and(with(state))
        .and_then(|user, state| handle(logout(user, state)));
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

/// The current user
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, description = "The caller's account", body = User)))]
fn me(user: AuthUser) -> Response {
    warp::reply::json(&user.user).into_response()
}

/// Revoke one's refresh tokens
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Logged out everywhere")))]
async fn logout(user: AuthUser, state: AppState) -> ApiResult {
    end_sessions(&state, user.id()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Clones the state into a filter chain.
pub fn with(
    state: AppState,
) -> impl Filter<Extract = (AppState,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// The peer address of the request (`None` outside a real connection).
fn client_ip() -> impl Filter<Extract = (Option<IpAddr>,), Error = std::convert::Infallible> + Clone
{
    request_info().map(|info: RequestInfo| info.client_addr.map(|addr| addr.ip()))
}

fn bad_credentials() -> ApiError {
    ApiError::unauthorized(codes::INVALID_CREDENTIALS, "Incorrect username or password")
}

/// 422 for a password longer than any account can have: refused before
/// argon2 sees it (hashing a megabyte is a denial of service).
fn check_password_size(field: &'static str, password: &str) -> Result<(), ApiError> {
    if password.len() > MAX_PASSWORD_LEN {
        return Err(ApiError::validation(
            field,
            format!("at most {MAX_PASSWORD_LEN} bytes"),
        ));
    }
    Ok(())
}

/// How an access token is sent.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TokenType {
    /// `Authorization: Bearer <access_token>`.
    Bearer,
}

/// The answer to a refresh: a new token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    /// Sent as `Authorization: Bearer`.
    pub access_token: String,
    /// Exchanged once for new tokens (`POST /auth/refresh`).
    pub refresh_token: String,
    /// Always `bearer`.
    pub token_type: TokenType,
    /// Seconds the access token is valid (900).
    pub expires_in: u64,
}

impl From<TokenPair> for Tokens {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access,
            refresh_token: pair.refresh,
            token_type: TokenType::Bearer,
            expires_in: ACCESS_TOKEN_TTL.as_secs(),
        }
    }
}

/// The answer to a login: the tokens and who logged in.
#[derive(Debug, Serialize, ToSchema)]
pub struct Login {
    /// The new token pair.
    #[serde(flatten)]
    pub tokens: Tokens,
    /// The account that logged in.
    pub user: UserSummary,
}

/// Log in with username and password
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = Login),
        (status = 401, body = ErrorBody),
    ))]
async fn login(state: AppState, client: Option<IpAddr>, body: LoginRequest) -> ApiResult {
    // No account has a longer name: refused before it is looked up,
    // counted or written to a log.
    if body.username.chars().count() > MAX_USERNAME_LEN {
        return Err(ApiError::validation(
            "username",
            format!("at most {MAX_USERNAME_LEN} characters"),
        ));
    }
    check_password_size("password", &body.password)?;
    let throttle = state.auth.throttle();
    throttle.check(&body.username, client)?;
    let found = state.store.user_by_username(&body.username).await?;
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
            throttle.record_failure(&body.username, client);
            tracing::info!(target: "mediadl_server::routes::auth", username = %body.username, client = ?client, "failed login");
            return Err(bad_credentials());
        }
    };
    if user.disabled {
        return Err(ApiError::unauthorized(
            codes::ACCOUNT_DISABLED,
            "the account is disabled",
        ));
    }
    throttle.record_success(&body.username, client);
    state.store.record_login(user.id, state.clock.now()).await?;
    let version = state.store.session_version(user.id).await?;
    let pair = state
        .auth
        .issue_pair(&state, &user, &Session::login(version))
        .await?;
    let body = Login {
        tokens: pair.into(),
        user: UserSummary::from(&user),
    };
    Ok(warp::reply::json(&body).into_response())
}

/// Exchange a refresh token (single use) for new tokens
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = Tokens),
        (status = 401, body = ErrorBody),
    ))]
async fn refresh(state: AppState, body: RefreshRequest) -> ApiResult {
    let claims = state.auth.verify(&body.refresh_token, TokenKind::Refresh)?;
    let user_id: i64 = claims
        .sub
        .parse()
        .map_err(|_| ApiError::unauthorized(codes::TOKEN_INVALID, "invalid token: bad subject"))?;
    match state
        .store
        .use_refresh_token(&claims.jti, state.clock.now())
        .await
    {
        Ok(_) => {}
        Err(StoreError::Invalid(_) | StoreError::NotFound { .. }) => {
            revoke_reused_family(&state, user_id, &claims.fam).await?;
            return Err(ApiError::unauthorized(
                codes::TOKEN_INVALID,
                "refresh token already used, revoked or unknown",
            ));
        }
        Err(err) => return Err(err.into()),
    }
    let (user, version) = load_session_user(&state, user_id).await?;
    if user.disabled {
        return Err(ApiError::unauthorized(
            codes::ACCOUNT_DISABLED,
            "the account is disabled",
        ));
    }
    let session = Session {
        version,
        family: claims.fam,
    };
    let pair = state.auth.issue_pair(&state, &user, &session).await?;
    Ok(warp::reply::json(&Tokens::from(pair)).into_response())
}

/// A refresh token was refused. When its family still had live tokens,
/// the refused one was spent and is being replayed: either its holder or
/// the one who rotated it is a thief, so the whole family is revoked and
/// the user's access tokens end.
async fn revoke_reused_family(
    state: &AppState,
    user_id: i64,
    family: &str,
) -> Result<(), ApiError> {
    if family.is_empty() || state.store.revoke_refresh_family(family).await? == 0 {
        return Ok(());
    }
    match state.store.bump_session_version(user_id).await {
        Ok(_) | Err(StoreError::NotFound { .. }) => {}
        Err(err) => return Err(err.into()),
    }
    state.auth.forget_user(user_id);
    tracing::warn!(
        target: "mediadl_server::routes::auth",
        user_id, "a spent refresh token was presented again; its login's tokens are revoked"
    );
    Ok(())
}

/// Change one's own password
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChange,
    responses(
        (status = 204, description = "Changed; the account's other sessions end"),
        (status = 404, body = ErrorBody),
    ))]
async fn change_password(
    user: AuthUser,
    state: AppState,
    client: Option<IpAddr>,
    body: PasswordChange,
) -> ApiResult {
    validate_password(&body.new_password)
        .map_err(|err| ApiError::validation("new_password", err))?;
    check_password_size("current_password", &body.current_password)?;
    let throttle = state.auth.throttle();
    let username = &user.user.username;
    throttle.check(username, client)?;
    let (_, hash) = state
        .store
        .user_by_username(username)
        .await?
        .ok_or_else(|| ApiError::not_found("user not found"))?;
    let current = body.current_password.clone();
    let matches = tokio::task::spawn_blocking(move || verify_password(&current, &hash))
        .await
        .map_err(ApiError::internal)?;
    if !matches {
        // Someone holding a stolen access token guesses the password here.
        throttle.record_failure(username, client);
        return Err(ApiError::validation("current_password", "does not match"));
    }
    throttle.record_success(username, client);
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
    // Every session ends, this one too: whoever knew the old password
    // is signed out.
    end_sessions(&state, user.id()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
