//! `/settings` (admin): the effective document with secrets masked, and
//! deep-merge PATCH that validates, saves and applies live. Program
//! settings (paths and `extra_args` of external downloaders) and keys the
//! config file, the environment or a flag sets are shown but read-only: a
//! PATCH changing one is refused with `READ_ONLY_SETTING`.

use mediadl::model::settings::mask_secrets;
use serde_json::{Value, json};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin};
use crate::error::handle;
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
                let update = state.settings.update(state.store.as_ref(), &patch).await?;
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
