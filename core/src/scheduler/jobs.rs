//! Job definitions as users write them: validation at create/update time
//! (so a bad job is a 422 with a reason, not a failed run at 3 a.m.), ids,
//! and the queue item a firing enqueues.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schedule::Schedule;
use crate::downloader::{Registry, Request};
use crate::error::Error;
use crate::model::{CatchUp, JobKind, JobSpec, Metadata, NewQueueItem, RequestOptions, Settings};

/// `POST /scheduler/jobs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewJob {
    /// Defaults to "`<platform> <source> <content type>`".
    pub name: Option<String>,
    /// Platform name, as in [`Registry`]; must be registered.
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

/// The `config` keys a job understands and their types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JobConfig {
    pub downloader: Option<String>,
    pub max_downloads: Option<u32>,
    pub days_back: Option<u32>,
    pub stop_after_known: Option<u32>,
    pub priority: Option<u8>,
    pub url: Option<String>,
}

fn config_u32(config: &Metadata, key: &str, min: u32) -> Result<Option<u32>, Error> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= min)
            .map(Some)
            .ok_or_else(|| {
                Error::invalid(
                    format!("config.{key}"),
                    format!("must be a whole number of at least {min}, not {value}"),
                )
            }),
    }
}

fn config_string(config: &Metadata, key: &str) -> Result<Option<String>, Error> {
    match config.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
        Some(value) => Err(Error::invalid(
            format!("config.{key}"),
            format!("must be a non-empty string, not {value}"),
        )),
    }
}

impl JobConfig {
    pub(crate) fn parse(config: &Metadata) -> Result<Self, Error> {
        let priority = config_u32(config, "priority", 1)?;
        if let Some(priority) = priority
            && priority > 10
        {
            return Err(Error::invalid(
                "config.priority",
                "must be between 1 (most urgent) and 10",
            ));
        }
        Ok(Self {
            downloader: config_string(config, "downloader")?,
            max_downloads: config_u32(config, "max_downloads", 1)?,
            days_back: config_u32(config, "days_back", 1)?,
            stop_after_known: config_u32(config, "stop_after_known", 0)?,
            priority: priority.map(|p| p as u8),
            url: config_string(config, "url")?,
        })
    }
}

/// Whether `platform` takes its target from a URL (`direct` files, `forum` threads).
fn takes_url(platform: &str) -> bool {
    matches!(platform, "direct" | "forum")
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
pub(crate) fn target_url(spec: &JobSpec, config: &JobConfig) -> Result<String, Error> {
    match (&config.url, takes_url(&spec.platform)) {
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

/// The queue item a firing of job `job_id` enqueues, linked to its history row.
pub(crate) fn queue_item_for(
    job_id: &str,
    spec: &JobSpec,
    run_id: Option<i64>,
) -> Result<NewQueueItem, Error> {
    let config = JobConfig::parse(&spec.config)?;
    let url = target_url(spec, &config)?;
    let mut metadata = Metadata::new();
    metadata.insert("job_id".into(), Value::String(job_id.to_owned()));
    if let Some(title) = spec.config.get("thread_title").filter(|v| v.is_string()) {
        metadata.insert("thread_title".into(), title.clone());
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
            downloader: config.downloader,
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
    let config = JobConfig::parse(&spec.config)?;
    let downloader = registry
        .find(&spec.platform, config.downloader.as_deref())
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
    if !info.content_types.contains(&spec.content_type) {
        return Err(Error::invalid(
            "content_type",
            format!(
                "{:?} is not a content type of {} (one of: {})",
                spec.content_type,
                spec.platform,
                info.content_types.join(", ")
            ),
        ));
    }
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
    /// The definition this request describes, before validation.
    pub(crate) fn into_spec(self) -> JobSpec {
        let name = self
            .name
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| format!("{} {} {}", self.platform, self.source, self.content_type))
            .trim()
            .to_owned();
        JobSpec {
            name,
            kind: JobKind::Download,
            platform: self.platform.trim().to_owned(),
            source: self.source.trim().to_owned(),
            content_type: self.content_type.trim().to_owned(),
            schedule: self.schedule,
            timezone: self.timezone.filter(|tz| !tz.trim().is_empty()),
            enabled: self.enabled.unwrap_or(true),
            catch_up: self.catch_up.unwrap_or_default(),
            config: self.config,
            monitor_until: None,
        }
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
            spec.config = config;
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
        let err = JobConfig::parse(&config).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "config.max_downloads"));
        let config: Metadata =
            serde_json::from_value(serde_json::json!({"downloader": 5})).unwrap();
        let err = JobConfig::parse(&config).unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "config.downloader"));
        let config: Metadata = serde_json::from_value(serde_json::json!({"priority": 11})).unwrap();
        assert!(JobConfig::parse(&config).is_err());
        let config: Metadata = serde_json::from_value(serde_json::json!({
            "max_downloads": 15, "downloader": "fastdl", "days_back": 7, "priority": 2
        }))
        .unwrap();
        let parsed = JobConfig::parse(&config).unwrap();
        assert_eq!(parsed.max_downloads, Some(15));
        assert_eq!(parsed.downloader.as_deref(), Some("fastdl"));
        assert_eq!(parsed.priority, Some(2));
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
