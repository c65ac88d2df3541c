//! What a running item reports: byte counters per transfer, and the
//! throttled progress events and store writes made from them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::downloader::{MediaItem, TransferProgress};
use crate::engine::Shared;
use crate::model::{EventKind, LeaseToken, ProgressEvent, QueueItem, QueueProgress, QueueStatus};

/// Counters the progress reporter reads while the run writes them.
#[derive(Debug)]
pub(super) struct LiveProgress {
    /// One byte counter per transfer running at once. A slot keeps its last
    /// file's count until the next file takes it, so with one file at a
    /// time the bytes are the current (or just finished) file's, and with
    /// several they are summed over them.
    slots: std::sync::Mutex<Vec<TransferSlot>>,
    pub(super) items_done: AtomicU32,
    items_total: Option<u32>,
    /// The file started or finished most recently.
    pub(super) current: std::sync::Mutex<Option<String>>,
}

#[derive(Debug)]
struct TransferSlot {
    progress: Arc<TransferProgress>,
    busy: bool,
}

impl LiveProgress {
    pub(super) fn new(items_total: Option<u32>) -> Self {
        Self {
            slots: std::sync::Mutex::new(Vec::new()),
            items_done: AtomicU32::new(0),
            items_total,
            current: std::sync::Mutex::new(None),
        }
    }

    /// A byte counter, reset, for a file starting now, and its slot number.
    pub(super) fn start(&self, media: &MediaItem) -> (usize, Arc<TransferProgress>) {
        *self.current.lock().expect("progress lock") = Some(media.url.to_string());
        let mut slots = self.slots.lock().expect("progress lock");
        let index = match slots.iter().position(|slot| !slot.busy) {
            Some(index) => index,
            None => {
                slots.push(TransferSlot {
                    progress: Arc::new(TransferProgress::new()),
                    busy: false,
                });
                slots.len() - 1
            }
        };
        let slot = &mut slots[index];
        slot.busy = true;
        slot.progress.set(0, None);
        (index, Arc::clone(&slot.progress))
    }

    /// Frees the slot of a file that ended.
    pub(super) fn finish(&self, index: usize) {
        self.slots.lock().expect("progress lock")[index].busy = false;
    }

    /// Bytes done over all slots, and their total when every slot knows its own.
    fn bytes(&self) -> (u64, Option<u64>) {
        let slots = self.slots.lock().expect("progress lock");
        slots.iter().fold((0, Some(0)), |(done, total), slot| {
            let (slot_done, slot_total) = slot.progress.get();
            (done + slot_done, total.zip(slot_total).map(|(a, b)| a + b))
        })
    }
}
/// Publishes progress at most `downloads.progress_events_per_second` times
/// a second while something changes, and writes it to the store about once
/// a second. The first report comes one period in: an item done sooner
/// (most small files) has only its start and its final 100 %.
pub(super) async fn report(
    shared: &Shared,
    item: &QueueItem,
    lease: &LeaseToken,
    live: &LiveProgress,
    stop: &CancellationToken,
) {
    let rate = shared
        .settings
        .current()
        .downloads
        .progress_events_per_second
        .max(1);
    let period = Duration::from_millis(1000 / u64::from(rate));
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last: Option<(u64, u32)> = None;
    let mut last_bytes = (0u64, Instant::now());
    let mut last_stored = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        let (bytes, total_bytes) = live.bytes();
        let done = live.items_done.load(Ordering::Relaxed);
        if last == Some((bytes, done)) {
            continue;
        }
        last = Some((bytes, done));
        let elapsed = last_bytes.1.elapsed().as_secs_f64().max(0.001);
        let speed = bytes.saturating_sub(last_bytes.0) as f64 / elapsed;
        last_bytes = (bytes, Instant::now());
        let fraction = total_bytes
            .filter(|t| *t > 0)
            .map_or(0.0, |t| (bytes as f64 / t as f64).min(1.0));
        let progress = match live.items_total {
            Some(total) if total > 0 => {
                ((f64::from(done) + fraction) / f64::from(total) * 100.0).min(99.0)
            }
            _ => (fraction * 100.0).min(99.0),
        } as u8;
        let eta = match (total_bytes, speed > 0.0) {
            (Some(total), true) if live.items_total == Some(1) => {
                Some((total.saturating_sub(bytes) as f64 / speed) as u64)
            }
            _ => None,
        };
        let current = live.current.lock().expect("progress lock").clone();
        shared
            .publish(EventKind::DownloadProgress(ProgressEvent {
                queue_id: item.id,
                url: item.url.clone(),
                platform: item.platform.clone(),
                source: item.source.clone(),
                status: QueueStatus::Downloading,
                progress,
                items_downloaded: done,
                items_total: live.items_total,
                current_item: current,
                speed_mbps: speed / 1_000_000.0,
                eta_seconds: eta,
                bytes_downloaded: bytes,
                bytes_total: total_bytes,
            }))
            .await;
        if last_stored.elapsed() >= Duration::from_secs(1) {
            last_stored = Instant::now();
            let estimated_completion =
                eta.map(|secs| shared.clock.now() + chrono::Duration::seconds(secs as i64));
            let _ = shared
                .store
                .record_progress(
                    lease,
                    QueueProgress {
                        progress,
                        items_downloaded: done,
                        items_total: live.items_total,
                        estimated_completion,
                    },
                )
                .await;
        }
    }
}
