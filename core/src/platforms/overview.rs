//! [`Registry::overview`]: each platform's status, downloaders and cookies,
//! as `GET /platforms` and other front ends show them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::{platform_cookies, platform_enabled};
use crate::downloader::Registry;
use crate::error::Error;
use crate::fetch::parse_netscape_cookies;
use crate::model::{
    CookiesState, DownloaderOverview, DownloaderStatus, PlatformOverview, PlatformStatus, Settings,
};
use crate::store::Store;

impl Registry {
    /// Every platform in registration order, with whether it can be used
    /// under `settings`, its downloaders and why they cannot, its newest
    /// download in `store`, and its cookies' state at `now`.
    ///
    /// # Errors
    ///
    /// [`Error::Store`] when the newest downloads cannot be read.
    pub async fn overview(
        &self,
        settings: &Settings,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<Vec<PlatformOverview>, Error> {
        let statuses = self.statuses(settings).await;
        let last: BTreeMap<String, DateTime<Utc>> = store
            .last_download_per_platform()
            .await?
            .into_iter()
            .collect();
        Ok(self
            .platforms()
            .into_iter()
            .map(|platform| {
                let of: Vec<&DownloaderStatus> = statuses
                    .iter()
                    .filter(|status| status.info.platform == platform)
                    .collect();
                let last = last.get(&platform).copied();
                platform_overview(platform, &of, settings, last, now)
            })
            .collect())
    }
}

/// One platform's entry from the statuses of its downloaders (at least one).
fn platform_overview(
    name: String,
    of: &[&DownloaderStatus],
    settings: &Settings,
    last_successful_download: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> PlatformOverview {
    let mut content_types: Vec<String> = Vec::new();
    let mut features: Vec<String> = Vec::new();
    for status in of {
        for content_type in &status.info.content_types {
            if !content_types.contains(content_type) {
                content_types.push(content_type.clone());
            }
        }
        for feature in &status.info.features {
            if !features.contains(feature) {
                features.push(feature.clone());
            }
        }
    }
    let switched_on = platform_enabled(settings, &name);
    let usable = of.iter().any(|status| status.enabled);
    let status = match (switched_on, usable) {
        (false, _) => PlatformStatus::Disabled,
        (true, true) => PlatformStatus::Operational,
        (true, false) => PlatformStatus::Unavailable,
    };
    let cookies = of
        .iter()
        .any(|status| status.info.accepts_cookies)
        .then(|| cookies_state(settings, &name, now));
    PlatformOverview {
        display_name: of
            .first()
            .map(|status| status.info.platform_display_name.clone())
            .unwrap_or_default(),
        enabled: switched_on && usable,
        downloaders: of
            .iter()
            .map(|status| DownloaderOverview {
                name: status.info.name.clone(),
                display_name: status.info.display_name.clone(),
                enabled: status.enabled,
                reason: status.reason.clone(),
                aliases: status.info.aliases.clone(),
                default: status.info.is_default,
            })
            .collect(),
        content_types,
        features,
        status,
        last_successful_download,
        cookies,
        name,
    }
}

/// Whether `platform` has stored cookies, how many, and until when.
fn cookies_state(settings: &Settings, platform: &str, now: DateTime<Utc>) -> CookiesState {
    let absent = CookiesState {
        present: false,
        count: 0,
        expires_at: None,
        expired: None,
        error: None,
    };
    match platform_cookies(settings, platform).map(|text| parse_netscape_cookies(&text)) {
        Some(Ok(parsed)) => CookiesState {
            present: true,
            count: parsed.count,
            expires_at: parsed.earliest_expiry,
            expired: Some(parsed.earliest_expiry.is_some_and(|at| at < now)),
            error: None,
        },
        Some(Err(err)) => CookiesState {
            present: true,
            error: Some(err.to_string()),
            ..absent
        },
        None => absent,
    }
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use chrono::TimeZone;
    use futures::stream::{self, BoxStream};
    use serde_json::json;

    use super::*;
    use crate::downloader::{Context, Downloader, MediaItem, Request, Unavailable};
    use crate::error::DownloadError;
    use crate::model::{DownloaderInfo, ListingOrder};
    use crate::store::conformance::new_download;
    use crate::store::{DownloadRepo, MemoryStore};

    /// A downloader whose availability is fixed.
    #[derive(Debug)]
    struct Fixed {
        platform: &'static str,
        name: &'static str,
        usable: bool,
        cookies: bool,
    }

    #[async_trait]
    impl Downloader for Fixed {
        fn info(&self) -> DownloaderInfo {
            DownloaderInfo {
                platform: self.platform.into(),
                platform_display_name: self.platform.to_uppercase(),
                name: self.name.into(),
                display_name: self.name.to_uppercase(),
                aliases: vec![format!("{}-alias", self.name)],
                content_types: vec!["posts".into(), self.name.into()],
                features: vec!["date_filtering".into()],
                listing_order: ListingOrder::NewestFirst,
                accepts_cookies: self.cookies,
                is_default: self.name == "native",
            }
        }

        async fn check(&self, settings: &Settings) -> Result<(), Unavailable> {
            if !platform_enabled(settings, self.platform) {
                return Err(Unavailable::new("disabled in settings"));
            }
            if self.usable {
                Ok(())
            } else {
                Err(Unavailable::new(format!("{} is not installed", self.name)))
            }
        }

        fn validate(&self, _request: &Request) -> Result<(), Error> {
            Ok(())
        }

        fn discover(
            &self,
            _request: &Request,
            _cx: &Context,
        ) -> BoxStream<'static, Result<MediaItem, DownloadError>> {
            Box::pin(stream::empty())
        }
    }

    fn registry() -> Registry {
        let mut registry = Registry::new();
        for (platform, name, usable, cookies) in [
            ("social", "native", false, true),
            ("social", "tool", true, true),
            ("plain", "native", false, false),
            ("off", "native", true, false),
        ] {
            registry.register(Fixed {
                platform,
                name,
                usable,
                cookies,
            });
        }
        registry
    }

    fn cookies_txt(expires: i64) -> String {
        format!(".example.com\tTRUE\t/\tTRUE\t{expires}\tsession\tabc\n")
    }

    #[tokio::test]
    async fn each_platform_says_whether_it_works_and_why_not() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let store = MemoryStore::new();
        let mut saved = new_download("social:1", now);
        saved.platform = "social".into();
        store.insert_download(saved).await.unwrap();
        let mut settings = Settings::default();
        settings
            .platforms
            .insert("off".into(), json!({"enabled": false}));
        let expired = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        settings.platforms.insert(
            "social".into(),
            json!({"cookies": cookies_txt(expired.timestamp())}),
        );

        let overview = registry().overview(&settings, &store, now).await.unwrap();
        let names: Vec<&str> = overview.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["social", "plain", "off"]);

        let social = &overview[0];
        assert_eq!(social.status, PlatformStatus::Operational);
        assert!(social.enabled);
        assert_eq!(social.display_name, "SOCIAL");
        assert_eq!(social.content_types, ["posts", "native", "tool"]);
        assert_eq!(social.features, ["date_filtering"]);
        assert_eq!(social.last_successful_download, Some(now));
        assert_eq!(social.downloaders.len(), 2);
        assert!(social.downloaders[0].default && !social.downloaders[0].enabled);
        assert_eq!(
            social.downloaders[0].reason.as_deref(),
            Some("native is not installed")
        );
        assert_eq!(social.downloaders[1].reason, None);
        let cookies = social.cookies.as_ref().unwrap();
        assert!(cookies.present);
        assert_eq!(cookies.count, 1);
        assert_eq!(cookies.expires_at, Some(expired));
        assert_eq!(cookies.expired, Some(true));

        let plain = &overview[1];
        assert_eq!(plain.status, PlatformStatus::Unavailable);
        assert!(!plain.enabled);
        assert_eq!(plain.cookies, None);
        assert_eq!(plain.last_successful_download, None);

        let off = &overview[2];
        assert_eq!(off.status, PlatformStatus::Disabled);
        assert!(!off.enabled);
    }

    #[tokio::test]
    async fn cookies_are_absent_or_unreadable() {
        let now = Utc::now();
        let store = MemoryStore::new();
        let mut settings = Settings::default();
        let overview = registry().overview(&settings, &store, now).await.unwrap();
        let absent = overview[0].cookies.as_ref().unwrap();
        assert!(!absent.present && absent.count == 0 && absent.error.is_none());
        assert_eq!(
            serde_json::to_value(absent).unwrap(),
            json!({"present": false, "count": 0, "expires_at": null})
        );

        settings
            .platforms
            .insert("social".into(), json!({"cookies": "not a cookies file"}));
        let overview = registry().overview(&settings, &store, now).await.unwrap();
        let broken = overview[0].cookies.as_ref().unwrap();
        assert!(broken.present);
        assert_eq!(broken.count, 0);
        assert!(broken.error.is_some());
        assert_eq!(broken.expired, None);
    }
}
