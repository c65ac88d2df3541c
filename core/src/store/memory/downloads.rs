//! [`DownloadRepo`] of the [`MemoryStore`](super::MemoryStore): the history, its look-ups and statistics.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::error::StoreError;
use crate::model::{
    Bucket, Download, DownloadFilter, DownloadStatus, DownloadTotals, GroupBy, GroupTotals,
    Metadata, NewDownload, Page, Paged, TimelinePoint, Window,
};
use crate::store::rules::{self, to_micros};
use crate::store::{DownloadRepo, StoreResult};

fn in_window(ts: DateTime<Utc>, window: Window) -> bool {
    window.from.is_none_or(|from| ts >= from) && window.to.is_none_or(|to| ts < to)
}

fn add_to_totals(totals: &mut DownloadTotals, download: &Download) {
    totals.total += 1;
    match download.status {
        DownloadStatus::Completed => totals.completed += 1,
        DownloadStatus::Failed => totals.failed += 1,
    }
    if owns_file(download) {
        totals.size_bytes += download.file_size.unwrap_or(0);
    }
}

fn normalize_download(mut new: NewDownload) -> NewDownload {
    new.download_date = to_micros(new.download_date);
    new.post_date = new.post_date.map(to_micros);
    new
}

#[async_trait]
impl DownloadRepo for MemoryStore {
    async fn insert_download(&self, new: NewDownload) -> StoreResult<Download> {
        rules::validate_new_download(&new)?;
        let mut state = self.lock()?;
        if state.download_id_by_key(&new.archive_key).is_some() {
            return Err(StoreError::Conflict(format!(
                "archive key {} is already recorded",
                new.archive_key
            )));
        }
        let id = state.next_id("downloads");
        let download = normalize_download(new).into_download(id);
        state.put_download(download.clone());
        Ok(download)
    }

    async fn replace_download(&self, id: i64, new: NewDownload) -> StoreResult<Download> {
        rules::validate_new_download(&new)?;
        let mut state = self.lock()?;
        if !state.downloads.contains_key(&id) {
            return Err(StoreError::not_found("download", id));
        }
        if state
            .download_id_by_key(&new.archive_key)
            .is_some_and(|owner| owner != id)
        {
            return Err(StoreError::Conflict(format!(
                "archive key {} is recorded by another download",
                new.archive_key
            )));
        }
        let download = normalize_download(new).into_download(id);
        state.put_download(download.clone());
        Ok(download)
    }

    async fn get_download(&self, id: i64) -> StoreResult<Download> {
        cloned_row(&self.lock()?.downloads, "download", &id)
    }

    async fn list_downloads(
        &self,
        filter: &DownloadFilter,
        page: Page,
    ) -> StoreResult<Paged<Download>> {
        let page = Page::new(page.page, page.per_page);
        let (from, to) = rules::download_date_range(filter);
        let search = filter.search.as_ref().map(|text| text.to_lowercase());
        let state = self.lock()?;
        let mut matching: Vec<&Download> = state
            .downloads
            .values()
            .filter(|d| filter.platform.as_ref().is_none_or(|p| &d.platform == p))
            .filter(|d| filter.source.as_ref().is_none_or(|s| &d.source == s))
            .filter(|d| filter.status.is_none_or(|s| d.status == s))
            .filter(|d| in_window(d.download_date, Window { from, to }))
            .filter(|d| {
                search.as_ref().is_none_or(|needle| {
                    contains_ignore_case(&d.url, needle)
                        || d.filename
                            .as_ref()
                            .is_some_and(|name| contains_ignore_case(name, needle))
                })
            })
            .collect();
        matching.sort_by(|a, b| {
            b.download_date
                .cmp(&a.download_date)
                .then_with(|| b.id.cmp(&a.id))
        });
        Ok(paged(matching, page))
    }

    async fn delete_download(&self, id: i64) -> StoreResult<Download> {
        self.lock()?
            .take_download(id)
            .ok_or_else(|| StoreError::not_found("download", id))
    }

    async fn download_by_archive_key(&self, archive_key: &str) -> StoreResult<Option<Download>> {
        let state = self.lock()?;
        Ok(state
            .download_id_by_key(archive_key)
            .and_then(|id| state.downloads.get(&id).cloned()))
    }

    async fn known_archive_keys(&self, archive_keys: &[String]) -> StoreResult<Vec<String>> {
        let state = self.lock()?;
        let completed = |key: &str| {
            state
                .download_id_by_key(key)
                .and_then(|id| state.downloads.get(&id))
                .is_some_and(|d| d.status == DownloadStatus::Completed)
        };
        let mut seen = HashSet::new();
        Ok(archive_keys
            .iter()
            .filter(|key| completed(key) && seen.insert(key.as_str()))
            .cloned()
            .collect())
    }

    async fn download_by_file_hash(&self, file_hash: &str) -> StoreResult<Option<Download>> {
        let state = self.lock()?;
        Ok(state
            .by_file_hash
            .get(file_hash)
            .and_then(|ids| ids.first())
            .and_then(|id| state.downloads.get(id))
            .cloned())
    }

    async fn update_download_metadata(&self, id: i64, patch: Metadata) -> StoreResult<Download> {
        let mut state = self.lock()?;
        let download = state
            .downloads
            .get_mut(&id)
            .ok_or_else(|| StoreError::not_found("download", id))?;
        download.metadata.extend(patch);
        Ok(download.clone())
    }

    async fn relocate_file(&self, from: &str, to: &str) -> StoreResult<u64> {
        let mut state = self.lock()?;
        let mut changed = 0;
        for download in state.downloads.values_mut() {
            if download.file_path.as_deref() == Some(from) {
                download.file_path = Some(to.to_owned());
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn downloads_before(
        &self,
        cutoff: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<Download>> {
        let state = self.lock()?;
        let mut old: Vec<&Download> = state
            .downloads
            .values()
            .filter(|d| d.download_date < cutoff)
            .collect();
        old.sort_by(|a, b| {
            a.download_date
                .cmp(&b.download_date)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(old.into_iter().take(limit as usize).cloned().collect())
    }

    async fn duplicates_of(&self, id: i64) -> StoreResult<Vec<Download>> {
        Ok(self
            .lock()?
            .downloads
            .values()
            .filter(|d| d.duplicate_of == Some(id))
            .cloned()
            .collect())
    }

    async fn download_totals(&self, window: Window) -> StoreResult<DownloadTotals> {
        let state = self.lock()?;
        let mut totals = DownloadTotals::default();
        for download in state
            .downloads
            .values()
            .filter(|d| in_window(d.download_date, window))
        {
            add_to_totals(&mut totals, download);
        }
        Ok(totals)
    }

    async fn download_totals_by(
        &self,
        group: GroupBy,
        window: Window,
    ) -> StoreResult<Vec<GroupTotals>> {
        let state = self.lock()?;
        let mut groups: BTreeMap<String, DownloadTotals> = BTreeMap::new();
        for download in state
            .downloads
            .values()
            .filter(|d| in_window(d.download_date, window))
        {
            let key = match group {
                GroupBy::Platform => &download.platform,
                GroupBy::Source => &download.source,
                GroupBy::ContentType => &download.content_type,
            };
            add_to_totals(groups.entry(key.clone()).or_default(), download);
        }
        let mut groups: Vec<GroupTotals> = groups
            .into_iter()
            .map(|(key, totals)| GroupTotals { key, totals })
            .collect();
        // Stable sort keeps the keys' alphabetical order among equal totals.
        groups.sort_by_key(|group| std::cmp::Reverse(group.totals.total));
        Ok(groups)
    }

    async fn download_timeline(
        &self,
        bucket: Bucket,
        window: Window,
    ) -> StoreResult<Vec<TimelinePoint>> {
        let state = self.lock()?;
        let mut points: BTreeMap<DateTime<Utc>, TimelinePoint> = BTreeMap::new();
        for download in state
            .downloads
            .values()
            .filter(|d| in_window(d.download_date, window))
        {
            let start = rules::bucket_start(bucket, download.download_date);
            let point = points.entry(start).or_insert(TimelinePoint {
                timestamp: start,
                downloads: 0,
                success: 0,
                failed: 0,
            });
            point.downloads += 1;
            match download.status {
                DownloadStatus::Completed => point.success += 1,
                DownloadStatus::Failed => point.failed += 1,
            }
        }
        Ok(points.into_values().collect())
    }

    async fn storage_used(&self) -> StoreResult<u64> {
        Ok(self
            .lock()?
            .downloads
            .values()
            .filter(|d| owns_file(d))
            .map(|d| d.file_size.unwrap_or(0))
            .sum())
    }

    async fn last_download_per_platform(&self) -> StoreResult<Vec<(String, DateTime<Utc>)>> {
        let state = self.lock()?;
        let mut latest: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        for download in state
            .downloads
            .values()
            .filter(|d| d.status == DownloadStatus::Completed)
        {
            let entry = latest
                .entry(download.platform.clone())
                .or_insert(download.download_date);
            *entry = (*entry).max(download.download_date);
        }
        Ok(latest.into_iter().collect())
    }
}
