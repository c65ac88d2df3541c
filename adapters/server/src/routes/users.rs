//! `/users` (admin): list, create, change, delete accounts.

use http::StatusCode;
use mediadl::model::User;
use mediadl::model::{Role, UserPatch};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin, end_sessions};
use crate::error::{ApiError, ApiResult, ErrorBody, handle};
use crate::pagination::{self, PageInfo};
use crate::request::{json_body, query};
use crate::routes::auth::with;
use crate::routes::{endpoint, endpoint_with};
use crate::state::AppState;
use crate::users::{UserError, create_user, hash_password, validate_password};

/// The body of `POST /users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserRequest {
    /// Login name; must meet the username rules and not be taken.
    #[schema(min_length = 1, max_length = 64)]
    pub username: String,
    /// Initial password; must meet the password rules.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: String,
    /// What the account may do.
    pub role: Role,
    /// Contact address for notifications.
    #[serde(default)]
    pub email: Option<String>,
}

/// `null` for `email` clears it; an absent key leaves it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    /// New contact address; `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// New role; ends the user's sessions.
    pub role: Option<Role>,
    /// New password (hashed before it is stored); ends the user's sessions.
    #[schema(min_length = 8, max_length = 1024)]
    pub password: Option<String>,
    /// Disable or re-enable the account; disabling ends the user's sessions.
    pub disabled: Option<bool>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The query of `GET /users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page number, from 1.
    #[param(minimum = 1, maximum = 1_000_000)]
    page: Option<u32>,
    /// Page size, default 50.
    #[param(minimum = 1, maximum = 200)]
    per_page: Option<u32>,
}

/// `GET /users`: one page of the accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    /// The page's users.
    pub items: Vec<User>,
    /// Where the page is.
    #[serde(flatten)]
    pub page: PageInfo,
}

/// The collection's path (also the base of its `Link` headers).
const USERS: &str = "/api/v1/users";
/// One user.
const USER: &str = "/api/v1/users/{id}";

pub(crate) fn user_error(err: UserError) -> ApiError {
    match err {
        UserError::Invalid { field, reason } => ApiError::validation(field, reason),
        UserError::UnknownUser(name) => ApiError::not_found(format!("user {name:?} not found")),
        UserError::Hash(detail) => ApiError::internal(detail),
        UserError::Store(err) => err.into(),
    }
}

/// The `/users` routes; every one needs an `admin` token.
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let list = endpoint::<__path_list>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(query::<ListQuery>())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and_then(|_: AuthUser, state, q, raw| handle(list(state, q, raw)));
    let create = endpoint::<__path_create>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<NewUserRequest>())
        .and_then(|_: AuthUser, state, body| handle(create(state, body)));
    let update = endpoint_with::<__path_update, i64>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .and(json_body::<UserChange>())
        .and_then(|id, me, state, body| handle(update(id, me, state, body)));
    let delete = endpoint_with::<__path_delete, i64>()
        .and(admin(state.clone()))
        .and(with(state))
        .and_then(|id, me, state| handle(delete(id, me, state)));
    list.or(create)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .boxed()
}

/// List users
#[utoipa::path(get, path = USERS, tag = "users", security(("bearer" = ["admin"])),
    params(ListQuery),
    responses((status = 200, description = "One page of users", body = UserPage)))]
async fn list(state: AppState, q: ListQuery, raw: String) -> ApiResult {
    let page = pagination::page(q.page, q.per_page)?;
    let users = state.store.list_users().await?;
    let total = users.len() as u64;
    let items: Vec<_> = users
        .into_iter()
        .skip(page.offset() as usize)
        .take(page.per_page as usize)
        .collect();
    let body = UserPage {
        items,
        page: PageInfo::new(total, page),
    };
    Ok(pagination::paged_json(&body, total, page, USERS, &raw))
}

/// Create a user
#[utoipa::path(post, path = USERS, tag = "users", security(("bearer" = ["admin"])),
    request_body = NewUserRequest,
    responses(
        (status = 201, description = "Created", body = User),
        (status = 409, body = ErrorBody),
    ))]
async fn create(state: AppState, body: NewUserRequest) -> ApiResult {
    let user = create_user(
        state.store.as_ref(),
        &body.username,
        &body.password,
        body.role,
        body.email,
    )
    .await
    .map_err(user_error)?;
    tracing::info!(target: "mediadl_server::routes::users", username = %user.username, role = user.role.as_str(), "user created");
    Ok(warp::reply::with_status(warp::reply::json(&user), StatusCode::CREATED).into_response())
}

/// Change a user
#[utoipa::path(patch, path = USER, tag = "users", security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "numeric id")),
    request_body = UserChange,
    responses(
        (status = 200, description = "The changed user", body = User),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ))]
async fn update(id: i64, me: AuthUser, state: AppState, body: UserChange) -> ApiResult {
    if id == me.id()
        && (body.role.is_some_and(|role| role != Role::Admin) || body.disabled == Some(true))
    {
        return Err(ApiError::conflict(
            "you cannot demote or disable your own account",
        ));
    }
    let password_hash = match body.password {
        Some(password) => {
            validate_password(&password).map_err(user_error)?;
            Some(
                tokio::task::spawn_blocking(move || hash_password(&password))
                    .await
                    .map_err(ApiError::internal)?
                    .map_err(user_error)?,
            )
        }
        None => None,
    };
    let role_changes = match body.role {
        Some(role) => state.store.get_user(id).await?.role != role,
        None => false,
    };
    // A new password or role, or a disabled account, ends the sessions.
    let ends_sessions = password_hash.is_some() || body.disabled == Some(true) || role_changes;
    let user = state
        .store
        .update_user(
            id,
            UserPatch {
                email: body.email,
                role: body.role,
                password_hash,
                disabled: body.disabled,
            },
        )
        .await?;
    if ends_sessions {
        end_sessions(&state, id).await?;
    } else {
        state.auth.forget_user(id);
    }
    Ok(warp::reply::json(&user).into_response())
}

/// Delete a user (not oneself)
#[utoipa::path(delete, path = USER, tag = "users", security(("bearer" = ["admin"])),
    params(("id" = i64, Path, description = "numeric id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody),
    ))]
async fn delete(id: i64, me: AuthUser, state: AppState) -> ApiResult {
    if id == me.id() {
        return Err(ApiError::conflict("you cannot delete your own account"));
    }
    state.store.get_user(id).await?;
    state.store.revoke_refresh_tokens(id).await?;
    state.store.delete_user(id).await?;
    state.auth.forget_user(id);
    Ok(StatusCode::NO_CONTENT.into_response())
}
