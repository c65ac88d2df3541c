//! `/settings` (admin): the document with secrets masked, and deep-merge
//! PATCH that validates, saves and applies live. Program settings (paths
//! and `extra_args` of external downloaders) are shown but read-only: a
//! PATCH changing one is refused with `READ_ONLY_SETTING`.

use mediadl::model::settings::{is_program_field, mask_secrets};
use serde_json::{Value, json};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin};
use crate::error::{ApiError, codes, handle};
use crate::request::json_body;
use crate::routes::auth::with;
use crate::state::AppState;

/// The settings in effect with every secret shown as `"***"`.
pub fn masked_settings(state: &AppState) -> Value {
    let mut document = state.settings.current().to_value();
    mask_secrets(&mut document);
    document
}

/// The `/settings` routes (`admin` only).
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let get = warp::path!("settings")
        .and(warp::get())
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .map(|_: AuthUser, state: AppState| {
            warp::reply::json(&masked_settings(&state)).into_response()
        });
    let patch = warp::path!("settings")
        .and(warp::patch())
        .and(admin(state.clone()))
        .and(with(state))
        .and(json_body::<Value>())
        .and_then(|user: AuthUser, state: AppState, patch: Value| {
            handle(async move {
                let update = state
                    .settings
                    .update(state.store.as_ref(), &patch)
                    .await
                    .map_err(read_only_refusal)?;
                tracing::info!(
                    target: "mediadl_server::routes::settings",
                    user = %user.user.username, updated_fields = update.updated_fields,
                    "settings updated"
                );
                Ok(warp::reply::json(&json!({
                    "message": "Settings updated successfully",
                    "updated_fields": update.updated_fields,
                }))
                .into_response())
            })
        });
    get.or(patch).unify().boxed()
}

/// A refused change of a program setting gets its own stable code.
fn read_only_refusal(err: mediadl::Error) -> ApiError {
    match err {
        mediadl::Error::Invalid { field, reason } if is_program_field(&field) => ApiError {
            code: codes::READ_ONLY_SETTING,
            ..ApiError::validation(field, reason)
        },
        other => other.into(),
    }
}
