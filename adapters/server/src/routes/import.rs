//! `POST /import` (admin): moving in from yt-dlp, gallery-dl and existing
//! media trees on the server's disk (`mediadl::ImportService`).
//!
//! Where it may read: only inside the download root in effect when the
//! server started and `<data dir>/imports` (a drop folder for archive
//! files), with symbolic links resolved before the check, so an admin
//! request can never read `/etc/shadow`, the database or the JWT secret
//! into records. Nothing of a refused or unreadable file is repeated in
//! the answer.
//!
//! Large imports do not hold the request: the import runs as a task of
//! its own and the request waits at most [`IMPORT_WAIT`]; then it answers
//! 202 with the counts so far, the import goes on, and its summary is
//! logged when it ends (`GET /logs`, module `Import`).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;
use mediadl::import::{
    DirectoryImport, ImportError, ImportProgress, ImportScope, ImportSource, ImportSummary,
    ProgressFn,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::auth::{AuthUser, admin};
use crate::error::{ApiError, ApiResult, ErrorBody, handle};
use crate::request::json_body;
use crate::routes::auth::with;
use crate::routes::endpoint;
use crate::state::AppState;

/// Longest a request waits for its import before answering 202.
pub const IMPORT_WAIT: Duration = Duration::from_secs(20);

/// The data directory's drop folder for archive files to import.
pub const IMPORTS_DIR: &str = "imports";

const IMPORT: &str = "/api/v1/import";

/// What an import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportKind {
    /// A yt-dlp `--download-archive` file.
    YtDlpArchive,
    /// A gallery-dl archive database (SQLite).
    GalleryDlArchive,
    /// A directory tree of media files, recorded where they are.
    Directory,
}

/// The body of `POST /import`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// What `path` is.
    pub kind: ImportKind,
    /// A path on the server, inside the download root or `<data dir>/imports`.
    #[schema(min_length = 1, max_length = 4096)]
    pub path: String,
    /// For a directory: the platform of files nothing else identifies
    /// (`direct` when absent).
    #[serde(default)]
    pub platform: Option<String>,
    /// For a directory: the source of every file (the file's directory
    /// name when absent).
    #[serde(default)]
    pub source: Option<String>,
}

/// The answer of `POST /import`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResponse {
    /// Whether the import has ended; `false` (status 202): it goes on in
    /// the background and `summary` holds the counts so far.
    pub finished: bool,
    /// What the import did (so far).
    pub summary: ImportSummary,
    /// The summary as a sentence.
    pub message: String,
}

/// The `/import` route (admin only).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    endpoint::<__path_import>()
        .and(admin(state.clone()))
        .and(with(state))
        .and(json_body::<ImportRequest>())
        .and_then(|_: AuthUser, state, body| handle(import(state, body)))
        .boxed()
}

/// Import archives or media
#[utoipa::path(post, path = IMPORT, tag = "import", security(("bearer" = ["admin"])),
    request_body = ImportRequest,
    responses(
        (status = 200, description = "The import ended", body = ImportResponse),
        (status = 202, description = "Still importing in the background; the counts so far", body = ImportResponse),
        (status = 403, body = ErrorBody),
        (status = 422, description = "The path is outside the allowed directories, missing, or not of its kind", body = ErrorBody),
    ))]
async fn import(state: AppState, body: ImportRequest) -> ApiResult {
    let source = source_of(&body)?;
    let scope = ImportScope::within(vec![
        state.download_root.clone(),
        state.data_dir.join(IMPORTS_DIR),
    ]);
    let latest = Arc::new(Mutex::new(ImportSummary::default()));
    let progress: ProgressFn = {
        let latest = Arc::clone(&latest);
        Arc::new(move |p: &ImportProgress| {
            *latest.lock().unwrap_or_else(PoisonError::into_inner) = p.summary.clone();
        })
    };
    let imports = state.imports.clone();
    let task = tokio::spawn(async move {
        let outcome = imports.import(&source, &scope, Some(progress)).await;
        if let Ok(summary) = &outcome {
            tracing::info!(target: "mediadl_server::routes::import", module = "Import",
                path = %source.path().display(), kind = source.kind(),
                imported = summary.imported, already_known = summary.already_known,
                skipped = summary.skipped, "Import of {}: {summary}", source.path().display());
        }
        outcome
    });
    let (finished, summary) = match tokio::time::timeout(IMPORT_WAIT, task).await {
        Ok(joined) => (
            true,
            joined.map_err(ApiError::internal)?.map_err(import_error)?,
        ),
        Err(_) => (
            false,
            latest
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        ),
    };
    let status = if finished {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let body = ImportResponse {
        finished,
        message: summary.to_string(),
        summary,
    };
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}

/// The core's import source for a request.
fn source_of(body: &ImportRequest) -> Result<ImportSource, ApiError> {
    let path = PathBuf::from(body.path.trim());
    if body.path.trim().is_empty() {
        return Err(ApiError::validation("path", "must not be empty"));
    }
    if !path.is_absolute() {
        return Err(ApiError::validation("path", "must be an absolute path"));
    }
    if body.kind != ImportKind::Directory && (body.platform.is_some() || body.source.is_some()) {
        return Err(ApiError::validation(
            "platform",
            "platform and source apply to directory imports only",
        ));
    }
    Ok(match body.kind {
        ImportKind::YtDlpArchive => ImportSource::YtDlpArchive(path),
        ImportKind::GalleryDlArchive => ImportSource::GalleryDlArchive(path),
        ImportKind::Directory => ImportSource::Directory(DirectoryImport {
            path,
            platform: body.platform.clone(),
            source: body.source.clone(),
        }),
    })
}

fn import_error(err: ImportError) -> ApiError {
    match err {
        ImportError::Input(reason) => ApiError::validation("path", reason),
        ImportError::Unsupported(reason) => ApiError::validation("kind", reason),
        ImportError::Store(err) => err.into(),
    }
}
