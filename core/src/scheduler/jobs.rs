//! Job definitions as users write them: validation at create/update time
//! (so a bad job is a 422 with a reason, not a failed run at 3 a.m.), ids,
//! and the queue item a firing enqueues.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schedule::Schedule;
use crate::downloader::{Registry, Request};
use crate::error::Error;
use crate::model::{
    CatchUp, JobConfig, JobKind, JobSpec, Metadata, NewQueueItem, RequestOptions, Settings,
};
use crate::queue::check_content_type;
use crate::recognise::is_auto;

/// `POST /scheduler/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewJob {
    /// Defaults to "`<platform> <source> <content type>`".
    pub name: Option<String>,
    /// Platform name, as in [`Registry`]; must be registered. Empty or
    /// `auto`: chosen from the URL (`config.url`, else the source).
    pub platform: String,
    /// The account, thread or URL to download from.
    pub source: String,
    /// The downloader's first content type when empty.
    pub content_type: String,
    /// Standard 5-field cron (see [`Schedule::parse`]).
    pub schedule: String,
    /// IANA zone the schedule is read in; UTC when absent.
    pub timezone: Option<String>,
    /// Defaults to true.
    pub enabled: Option<bool>,
    /// What happens to slots missed while no scheduler ran; `once` when absent.
    pub catch_up: Option<CatchUp>,
    /// `max_downloads`, `downloader`, `days_back`, `stop_after_known`,
    /// `priority`, `url`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Metadata,
}

/// `PATCH /scheduler/jobs/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobPatch {
    /// New display name.
    pub name: Option<String>,
    /// New source.
    pub source: Option<String>,
    /// New content type; must be one of the downloader's.
    pub content_type: Option<String>,
    /// New cron expression.
    pub schedule: Option<String>,
    /// `Some(None)` (JSON `null`) goes back to UTC.
    #[serde(deserialize_with = "double_option")]
    pub timezone: Option<Option<String>>,
    /// Enable or disable; a disabled job keeps its schedule but never fires.
    pub enabled: Option<bool>,
    /// New catch-up policy.
    pub catch_up: Option<CatchUp>,
    /// Replaces the whole config.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub config: Option<Metadata>,
}

fn double_option<'de, D>(deserializer: D) -> Result<Option<Option<String>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<String>::deserialize(deserializer).map(Some)
}

/// Whether `platform` takes its target from a URL (`direct` files, `forum`
/// threads, the pages of the general platforms `video` and `gallery`).
fn takes_url(platform: &str) -> bool {
    matches!(platform, "direct" | "forum") || crate::platforms::source_is_url(platform)
}

fn http_url(field: &str, value: &str) -> Result<String, Error> {
    match url::Url::parse(value.trim()) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => {
            Ok(url.to_string())
        }
        _ => Err(Error::invalid(
            field,
            format!("must be an http(s) URL, not {value:?}"),
        )),
    }
}

/// The URL a job's queue item fetches: `config.url` when given, else for
/// `direct` and `forum` the source itself (CONTRACT.md), else the source
/// as given (a username: the platform's downloader works from the source).
pub(crate) fn target_url(spec: &JobSpec) -> Result<String, Error> {
    match (&spec.config.url, takes_url(&spec.platform)) {
        (Some(url), _) => http_url("config.url", url),
        (None, true) => http_url("source", &spec.source).map_err(|_| {
            Error::invalid(
                "source",
                format!(
                    "a {} job needs config.url, or an http(s) URL as its source (got {:?})",
                    spec.platform, spec.source
                ),
            )
        }),
        (None, false) => Ok(spec.source.clone()),
    }
}

/// Chooses the platform of a job whose platform is empty or `auto` from
/// its URL (`config.url`, else the source): the platform, the source
/// (the username, a forum's label, or the URL) and an empty content type
/// are set from [`Registry::recognise`]; a forum or direct job keeps its
/// URL in `config.url`, and its source when `config.url` was given.
pub(crate) async fn recognise_platform(
    new: &mut NewJob,
    registry: &Registry,
    settings: &Settings,
) -> Result<(), Error> {
    if !is_auto(&new.platform) {
        return Ok(());
    }
    let config_url = new
        .config
        .get("url")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (field, target) = match &config_url {
        Some(url) => ("config.url", url.clone()),
        None => ("source", new.source.clone()),
    };
    let found = registry
        .recognise(&target, settings)
        .await
        .map_err(|err| match err {
            Error::Invalid { reason, .. } => Error::invalid(
                field,
                format!("platform \"auto\" picks the platform from a URL: {reason}"),
            ),
            other => other,
        })?;
    if takes_url(&found.platform) {
        if config_url.is_none() || new.source.trim().is_empty() {
            new.source = found.source;
        }
        new.config
            .insert("url".into(), Value::String(config_url.unwrap_or(found.url)));
    } else {
        new.source = found.source;
    }
    new.platform = found.platform;
    if new.content_type.trim().is_empty() {
        new.content_type = found.content_type;
    }
    Ok(())
}

/// The queue item a firing of job `job_id` enqueues, linked to its history row.
pub(crate) fn queue_item_for(
    job_id: &str,
    spec: &JobSpec,
    run_id: Option<i64>,
) -> Result<NewQueueItem, Error> {
    let config = &spec.config;
    let url = target_url(spec)?;
    let mut metadata = Metadata::new();
    metadata.insert("job_id".into(), Value::String(job_id.to_owned()));
    if let Some(title) = &config.thread_title {
        metadata.insert("thread_title".into(), Value::String(title.clone()));
    }
    // A job's own output templates travel with its items (kept in
    // `config` as given, checked when the job was saved).
    for key in crate::engine::placement::TEMPLATE_OVERRIDES {
        if let Some(template) = config.other.get(key) {
            metadata.insert(key.into(), template.clone());
        }
    }
    Ok(NewQueueItem {
        url,
        platform: spec.platform.clone(),
        source: spec.source.clone(),
        content_type: spec.content_type.clone(),
        referer: None,
        save_path: None,
        priority: config.priority.unwrap_or(0),
        max_attempts: 0,
        options: RequestOptions {
            downloader: config.downloader.clone(),
            max_downloads: config.max_downloads,
            days_back: config.days_back,
            stop_after_known: config.stop_after_known,
            job_id: Some(job_id.to_owned()),
            run_id,
        },
        metadata,
    })
}

/// Checks a download or forum job against the registry: platform,
/// downloader, content type (filled in when empty), config types, target
/// URL and the downloader's own validation. `check_available` also asks the
/// downloader whether it can run now (a missing program is a 422 at create
/// time rather than a failed run later).
pub(crate) async fn validate_job(
    spec: &mut JobSpec,
    registry: &Registry,
    settings: &Settings,
    now: DateTime<Utc>,
    check_available: bool,
) -> Result<Schedule, Error> {
    if spec.name.trim().is_empty() {
        return Err(Error::invalid("name", "must not be empty"));
    }
    let schedule = Schedule::parse(&spec.schedule, spec.timezone.as_deref())?;
    spec.schedule = schedule.expr().to_owned();
    if spec.kind == JobKind::Maintenance {
        return Ok(schedule);
    }
    if spec.platform.trim().is_empty() {
        return Err(Error::invalid("platform", "must not be empty"));
    }
    if spec.source.trim().is_empty() {
        return Err(Error::invalid("source", "must not be empty"));
    }
    let downloader = registry
        .find(&spec.platform, spec.config.downloader.as_deref())
        .map_err(|err| match err {
            Error::Invalid { field, reason } if field == "downloader" => {
                Error::invalid("config.downloader", reason)
            }
            other => other,
        })?;
    let info = downloader.info();
    if spec.content_type.trim().is_empty() {
        spec.content_type = info.content_types.first().cloned().unwrap_or_default();
    }
    check_content_type(&info, &spec.platform, &spec.content_type)?;
    // The probe needs no job id: validation looks at the target alone.
    let item = queue_item_for("", spec, None)?;
    let probe = Request::from_item(&item.into_item(0, now), settings, now);
    downloader.validate(&probe)?;
    if check_available && let Err(unavailable) = downloader.check(settings).await {
        return Err(Error::invalid(
            "config.downloader",
            format!(
                "{} downloader {:?} is unavailable: {}",
                spec.platform, info.name, unavailable.reason
            ),
        ));
    }
    Ok(schedule)
}

/// A lowercase slug of `parts` (`instagram-evalongoria-posts`), at most 64 characters.
pub(crate) fn slug(parts: &[&str]) -> String {
    let mut slug = String::new();
    for part in parts {
        for c in part.chars() {
            if c.is_ascii_alphanumeric() {
                slug.push(c.to_ascii_lowercase());
            } else if !slug.is_empty() && !slug.ends_with('-') {
                slug.push('-');
            }
        }
        if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let mut slug: String = slug.trim_matches('-').chars().take(64).collect();
    while slug.ends_with('-') {
        slug.pop();
    }
    if slug.is_empty() { "job".into() } else { slug }
}

impl NewJob {
    /// The definition this request describes, its config typed, before
    /// it is checked against the registry.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] naming the `config` key of the wrong type or range.
    pub(crate) fn into_spec(self) -> Result<JobSpec, Error> {
        let name = self
            .name
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| format!("{} {} {}", self.platform, self.source, self.content_type))
            .trim()
            .to_owned();
        Ok(JobSpec {
            name,
            kind: JobKind::Download,
            platform: self.platform.trim().to_owned(),
            source: self.source.trim().to_owned(),
            content_type: self.content_type.trim().to_owned(),
            schedule: self.schedule,
            timezone: self.timezone.filter(|tz| !tz.trim().is_empty()),
            enabled: self.enabled.unwrap_or(true),
            catch_up: self.catch_up.unwrap_or_default(),
            config: JobConfig::parse(JobKind::Download, &self.config)?,
            monitor_until: None,
        })
    }
}

impl JobPatch {
    /// Whether the patch changes when the job fires.
    pub(crate) fn touches_timing(&self) -> bool {
        self.schedule.is_some() || self.timezone.is_some() || self.enabled.is_some()
    }

    /// Applies the patch; built-in maintenance jobs only take timing,
    /// name and `enabled` changes.
    pub(crate) fn apply(self, spec: &mut JobSpec) -> Result<(), Error> {
        if spec.kind == JobKind::Maintenance {
            for (field, given) in [
                ("source", self.source.is_some()),
                ("content_type", self.content_type.is_some()),
                ("config", self.config.is_some()),
            ] {
                if given {
                    return Err(Error::invalid(
                        field,
                        "cannot be changed on a built-in maintenance job (see the settings instead)",
                    ));
                }
            }
        }
        if let Some(name) = self.name {
            spec.name = name.trim().to_owned();
        }
        if let Some(source) = self.source {
            spec.source = source.trim().to_owned();
        }
        if let Some(content_type) = self.content_type {
            spec.content_type = content_type.trim().to_owned();
        }
        if let Some(schedule) = self.schedule {
            spec.schedule = schedule;
        }
        if let Some(timezone) = self.timezone {
            spec.timezone = timezone.filter(|tz| !tz.trim().is_empty());
        }
        if let Some(enabled) = self.enabled {
            spec.enabled = enabled;
        }
        if let Some(catch_up) = self.catch_up {
            spec.catch_up = catch_up;
        }
        if let Some(config) = self.config {
            spec.config = JobConfig::parse(spec.kind, &config)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(
            slug(&["instagram", "evalongoria", "posts"]),
            "instagram-evalongoria-posts"
        );
        assert_eq!(
            slug(&["direct", "https://Example.com/a b.jpg", "file"]),
            "direct-https-example-com-a-b-jpg-file"
        );
        assert_eq!(slug(&["", "--", ""]), "job");
        assert!(slug(&[&"x".repeat(200)]).len() <= 64);
    }

    #[test]
    fn config_types_are_checked_by_field() {
        let config: Metadata =
            serde_json::from_value(serde_json::json!({"max_downloads": 0})).unwrap();
        let err = JobConfig::parse(JobKind::Download, &config).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "config.max_downloads"));
        let config: Metadata =
            serde_json::from_value(serde_json::json!({"downloader": 5})).unwrap();
        let err = JobConfig::parse(JobKind::Download, &config).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "config.downloader"));
        let config: Metadata = serde_json::from_value(serde_json::json!({"priority": 11})).unwrap();
        assert!(JobConfig::parse(JobKind::Download, &config).is_err());
        let config: Metadata = serde_json::from_value(serde_json::json!({
            "max_downloads": 15, "downloader": "fastdl", "days_back": 7, "priority": 2
        }))
        .unwrap();
        let parsed = JobConfig::parse(JobKind::Download, &config).unwrap();
        assert_eq!(parsed.max_downloads, Some(15));
        assert_eq!(parsed.downloader.as_deref(), Some("fastdl"));
        assert_eq!(parsed.priority, Some(2));
    }

    #[test]
    fn config_is_typed_per_kind_and_stored_as_given() {
        let given = serde_json::json!({
            "url": "https://forum.example/t/1", "thread_title": "Trip", "days_back": 3,
            "custom": {"a": [1, 2]}
        });
        let config = given.as_object().unwrap();
        let typed = JobConfig::parse(JobKind::ForumMonitor, config).unwrap();
        assert_eq!(typed.url.as_deref(), Some("https://forum.example/t/1"));
        assert_eq!(typed.thread_title.as_deref(), Some("Trip"));
        assert_eq!(typed.days_back, Some(3));
        assert_eq!(typed.other.len(), 1, "keys no kind reads are kept");
        assert_eq!(serde_json::to_value(&typed).unwrap(), given);
        let stored: JobConfig = serde_json::from_value(given.clone()).unwrap();
        assert_eq!(stored, typed);

        assert_eq!(
            JobConfig::parse(JobKind::Maintenance, &Metadata::new()).unwrap(),
            JobConfig::default()
        );
        let err = JobConfig::parse(JobKind::Maintenance, config).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "config"));
        let title: Metadata =
            serde_json::from_value(serde_json::json!({"thread_title": 7})).unwrap();
        let err = JobConfig::parse(JobKind::Download, &title).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "config.thread_title"));
    }

    #[test]
    fn general_platform_jobs_fetch_their_source_url() {
        let spec = |platform: &str, source: &str| JobSpec {
            name: "channel".into(),
            kind: JobKind::Download,
            platform: platform.into(),
            source: source.into(),
            content_type: String::new(),
            schedule: "0 */4 * * *".into(),
            timezone: None,
            enabled: true,
            catch_up: CatchUp::default(),
            config: JobConfig::default(),
            monitor_until: None,
        };
        let channel = "https://www.youtube.com/@someone/videos";
        assert_eq!(target_url(&spec("video", channel)).unwrap(), channel);
        let board = "https://www.pinterest.com/someone/board/";
        assert_eq!(target_url(&spec("gallery", board)).unwrap(), board);
        let err = target_url(&spec("video", "someone")).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "source"));
        assert_eq!(target_url(&spec("tiktok", "someone")).unwrap(), "someone");

        // A job's own output templates go with its items, checked first.
        let given: Metadata =
            serde_json::from_value(serde_json::json!({"directory_template": "yt/{source}"}))
                .unwrap();
        let mut job = spec("video", channel);
        job.config = JobConfig::parse(JobKind::Download, &given).unwrap();
        let item = queue_item_for("channel", &job, None).unwrap();
        assert_eq!(item.metadata["directory_template"], "yt/{source}");
        let climbing: Metadata =
            serde_json::from_value(serde_json::json!({"filename_template": "../../x"})).unwrap();
        let err = JobConfig::parse(JobKind::Download, &climbing).unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "config.filename_template")
        );
    }

    #[test]
    fn patch_timezone_null_resets_to_utc() {
        let patch: JobPatch = serde_json::from_str(r#"{"timezone": null}"#).unwrap();
        assert_eq!(patch.timezone, Some(None));
        let patch: JobPatch = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(patch.timezone, None);
        assert!(!patch.touches_timing());
    }
}
