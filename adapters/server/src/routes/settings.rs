//! `/settings` (admin): the effective document with secrets masked, and
//! deep-merge PATCH that validates, saves and applies live. Program
//! settings (paths and `extra_args` of external downloaders) and keys the
//! config file, the environment or a flag sets are shown but read-only: a
//! PATCH changing one is refused with `READ_ONLY_SETTING`.

use mediadl::model::settings::mask_secrets;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin};
use crate::error::{ApiResult, ErrorBody, handle};
use crate::request::json_body;
use crate::routes::auth::with;
use crate::routes::endpoint;
use crate::state::AppState;

/// The settings in effect with every secret shown as `"***"`.
pub fn masked_settings(state: &AppState) -> Value {
    let mut document = state.settings.current().to_value();
    mask_secrets(&mut document);
    document
}

/// The sections of the settings document.
const SECTIONS: [&str; 7] = [
    "general",
    "downloads",
    "network",
    "platforms",
    "notifications",
    "logs",
    "backup",
];

/// The settings path.
const SETTINGS: &str = "/api/v1/settings";

/// `GET /settings`: the settings document, secrets shown as `"***"`.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct SettingsDocument(pub Value);

impl PartialSchema for SettingsDocument {
    fn schema() -> RefOr<Schema> {
        let object = SECTIONS.iter().fold(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some("The settings document, secrets shown as \"***\"")),
            |object, section| {
                object
                    .property(*section, Object::with_type(Type::Object))
                    .required(*section)
            },
        );
        Schema::Object(object.build()).into()
    }
}

impl ToSchema for SettingsDocument {}

/// `PATCH /settings`: merged into the settings.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct SettingsPatch(pub Value);

impl PartialSchema for SettingsPatch {
    fn schema() -> RefOr<Schema> {
        let nullable_object =
            || Object::with_type(SchemaType::from_iter([Type::Object, Type::Null]));
        let object = SECTIONS.iter().fold(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(
                    "Merged into the settings (RFC 7396: null removes a key, \
                     so a null for a key that is not there changes nothing)",
                ))
                .additional_properties(Some(ObjectBuilder::new().schema_type(Type::Null))),
            |object, section| object.property(*section, nullable_object()),
        );
        Schema::Object(object.build()).into()
    }
}

impl ToSchema for SettingsPatch {}

/// `PATCH /settings`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsUpdated {
    /// For people.
    pub message: String,
    /// Values changed by the merge.
    pub updated_fields: usize,
}

/// The `/settings` routes (`admin` only).
/// Mounted under `/api/v1` by [`router`](crate::router).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let get = endpoint::<__path_get>()
        .and(admin(state.clone()))
        .and(with(state.clone()))
        .map(|_: AuthUser, state: AppState| get(&state));
    let patch = endpoint::<__path_patch>()
        .and(admin(state.clone()))
        .and(with(state))
        .and(json_body::<SettingsPatch>())
        .and_then(|user, state, body| handle(patch(user, state, body)));
    get.or(patch).unify().boxed()
}

/// All settings, secrets masked
#[utoipa::path(get, path = SETTINGS, tag = "settings", security(("bearer" = ["admin"])),
    responses((status = 200, description = "The settings in effect", body = SettingsDocument)))]
fn get(state: &AppState) -> Response {
    warp::reply::json(&SettingsDocument(masked_settings(state))).into_response()
}

/// Deep-merge settings
#[utoipa::path(patch, path = SETTINGS, tag = "settings", security(("bearer" = ["admin"])),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "Saved and applied", body = SettingsUpdated),
        (status = 409, body = ErrorBody),
    ))]
async fn patch(user: AuthUser, state: AppState, patch: SettingsPatch) -> ApiResult {
    let update = state
        .settings
        .update(state.store.as_ref(), &patch.0)
        .await?;
    tracing::info!(
        target: "mediadl_server::routes::settings",
        user = %user.user.username, updated_fields = update.updated_fields,
        "settings updated"
    );
    Ok(warp::reply::json(&SettingsUpdated {
        message: "Settings updated successfully".into(),
        updated_fields: update.updated_fields,
    })
    .into_response())
}
