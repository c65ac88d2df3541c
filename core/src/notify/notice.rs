//! What a notification says: [`Notice`]s derived from bus events and from
//! the scheduler's records, and how they read in an email.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{
    CompletedEvent, Event, EventKind, Job, JobRun, Notification, NotificationAction,
    NotificationLevel, NotificationTopic, QueueStatus,
};

use super::settings::NotificationSettings;

/// One thing worth telling a person, whatever the transport.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    /// What raised it; rules and webhooks filter on it.
    pub topic: NotificationTopic,
    /// How urgent it is.
    pub level: NotificationLevel,
    /// One-line heading (the toast's title, an email subject line).
    pub title: String,
    /// The body text.
    pub message: String,
    /// An optional link to act on it.
    pub action: Option<NotificationAction>,
    /// When the underlying event happened.
    pub timestamp: DateTime<Utc>,
    /// The event the notice comes from (`{type, timestamp, data}`), or the
    /// record (job run, job) it was derived from; webhooks carry it.
    pub data: Value,
    /// The event is itself the spec's `notification` event (the engine
    /// published it), so browsers have it already.
    #[serde(skip)]
    pub on_bus: bool,
}

impl Notice {
    /// The notice an event calls for, if any.
    ///
    /// Only the engine's own `notification` events (storage threshold,
    /// source needing attention) are notices; every other `notification`
    /// (those this notifier publishes for browsers among them) is ignored,
    /// so nothing is notified twice.
    pub fn from_event(event: &Event) -> Option<Self> {
        let data = serde_json::to_value(event).unwrap_or(Value::Null);
        match &event.kind {
            EventKind::DownloadCompleted(completed) => {
                Some(Self::from_completed(completed, event.timestamp, data))
            }
            EventKind::Notification(notification)
                if matches!(
                    notification.topic,
                    NotificationTopic::StorageThreshold | NotificationTopic::SourceNeedsAttention
                ) =>
            {
                Some(Self {
                    topic: notification.topic,
                    level: notification.level,
                    title: notification.title.clone(),
                    message: notification.message.clone(),
                    action: notification.action.clone(),
                    timestamp: event.timestamp,
                    data,
                    on_bus: true,
                })
            }
            _ => None,
        }
    }

    fn from_completed(completed: &CompletedEvent, timestamp: DateTime<Utc>, data: Value) -> Self {
        let what = format!(
            "{} {} ({})",
            completed.platform, completed.source, completed.content_type
        );
        let (topic, level, title, message, action) = match (completed.status, &completed.job_id) {
            (QueueStatus::Completed, _) => {
                let mut message =
                    format!("{what}: {} downloaded", items(completed.items_downloaded));
                if completed.items_failed > 0 {
                    message.push_str(&format!(", {} failed", items(completed.items_failed)));
                }
                message.push_str(&format!(" in {}.", duration(completed.duration_seconds)));
                (
                    NotificationTopic::DownloadCompleted,
                    if completed.items_failed > 0 {
                        NotificationLevel::Warning
                    } else {
                        NotificationLevel::Success
                    },
                    format!("Downloaded {}", completed.source),
                    message,
                    action("Downloads", "/downloads"),
                )
            }
            (_, Some(job_id)) => (
                NotificationTopic::ScheduledRunFailed,
                NotificationLevel::Error,
                format!("Scheduled run of {job_id} failed"),
                failure_message(&what, completed),
                action("Scheduler", "/scheduler"),
            ),
            (_, None) => (
                NotificationTopic::DownloadFailed,
                NotificationLevel::Error,
                format!("Download failed: {}", completed.source),
                failure_message(&what, completed),
                action("Queue", "/queue"),
            ),
        };
        Self {
            topic,
            level,
            title,
            message,
            action,
            timestamp,
            data,
            on_bus: false,
        }
    }

    /// A scheduled run that failed without a queue item (it could not be
    /// queued, a maintenance job failed, or it was interrupted).
    pub fn from_failed_run(run: &JobRun) -> Self {
        Self {
            topic: NotificationTopic::ScheduledRunFailed,
            level: NotificationLevel::Error,
            title: format!("Scheduled run of {} failed", run.job_id),
            message: format!(
                "{}: {}",
                run.job_id,
                run.error_message.as_deref().unwrap_or("no reason recorded")
            ),
            action: action("Scheduler", "/scheduler"),
            timestamp: run.completed_at.unwrap_or(run.started_at),
            data: serde_json::json!({ "type": "job_run", "data": run }),
            on_bus: false,
        }
    }

    /// A forum monitor that stops at `until`.
    pub fn monitor_expiring(job: &Job, until: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let thread = job.spec.config.url.as_deref().unwrap_or(&job.spec.source);
        let when = if until <= now {
            "has stopped".to_owned()
        } else {
            format!("stops in {}", duration((until - now).num_seconds() as f64))
        };
        Self {
            topic: NotificationTopic::ForumMonitorExpiring,
            level: NotificationLevel::Warning,
            title: format!("Forum monitor {} {when}", job.spec.name),
            message: format!(
                "Monitoring of {thread} {when} ({}). Post the thread to the forum monitor again to extend it.",
                until.format("%Y-%m-%d %H:%M UTC")
            ),
            action: action("Scheduler", "/scheduler"),
            timestamp: now,
            data: serde_json::json!({ "type": "job", "data": { "job_id": job.id, "monitor_until": until } }),
            on_bus: false,
        }
    }

    /// A test message.
    pub fn test(now: DateTime<Utc>) -> Self {
        Self {
            topic: NotificationTopic::System,
            level: NotificationLevel::Info,
            title: "mediadl test notification".into(),
            message: "This is a test message from mediadl: notifications reach you here.".into(),
            action: action("Settings", "/settings"),
            timestamp: now,
            data: serde_json::json!({ "type": "test" }),
            on_bus: false,
        }
    }

    /// The spec's `notification` event for browsers.
    pub fn to_notification(&self, auto_dismiss_seconds: u32) -> Notification {
        let dismiss = matches!(
            self.level,
            NotificationLevel::Info | NotificationLevel::Success
        ) && auto_dismiss_seconds > 0;
        Notification {
            level: self.level,
            title: self.title.clone(),
            message: self.message.clone(),
            action: self.action.clone(),
            auto_dismiss_seconds: dismiss.then_some(auto_dismiss_seconds),
            topic: self.topic,
        }
    }

    /// What a repeat of this notice looks like, for `repeat_after_minutes`:
    /// the storage warning is one notice whatever the figures; others
    /// repeat only word for word.
    pub fn repeat_key(&self) -> String {
        match self.topic {
            NotificationTopic::StorageThreshold => self.title.clone(),
            _ => format!("{}\n{}", self.title, self.message),
        }
    }
}

fn action(label: &str, link: &str) -> Option<NotificationAction> {
    Some(NotificationAction {
        label: label.into(),
        link: link.into(),
    })
}

fn failure_message(what: &str, completed: &CompletedEvent) -> String {
    let reason = completed
        .error_message
        .as_deref()
        .unwrap_or("no reason recorded");
    if completed.items_downloaded > 0 {
        format!(
            "{what}: {reason} (after {} downloaded).",
            items(completed.items_downloaded)
        )
    } else {
        format!("{what}: {reason}.")
    }
}

fn items(count: u32) -> String {
    if count == 1 {
        "1 item".into()
    } else {
        format!("{count} items")
    }
}

/// `42s`, `3m 20s`, `5h 3m`, `2d 4h`.
fn duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    let (days, hours, minutes, secs) = (
        total / 86_400,
        total % 86_400 / 3600,
        total % 3600 / 60,
        total % 60,
    );
    match (days, hours, minutes) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, _) => format!("{minutes}m {secs}s"),
        (0, _, _) => format!("{hours}h {minutes}m"),
        _ => format!("{days}d {hours}h"),
    }
}

/// An email's subject and its two bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body with the same content.
    pub html: String,
}

impl EmailContent {
    /// One email for `notices`: the notice itself when alone, a digest
    /// grouped by event kind otherwise. Empty `notices` is an empty digest.
    pub fn render(notices: &[Notice], settings: &NotificationSettings) -> Self {
        let subject = match notices {
            [one] => format!("[mediadl] {}", one.title),
            many => format!("[mediadl] {} notifications: {}", many.len(), summary(many)),
        };
        let mut text = String::new();
        let mut html =
            String::from("<!DOCTYPE html><html><body style=\"font-family:sans-serif\">\n");
        for (topic, group) in grouped(notices) {
            if notices.len() > 1 {
                let heading = format!("{} ({})", topic_heading(topic), group.len());
                text.push_str(&format!(
                    "{heading}\n{}\n",
                    "=".repeat(heading.chars().count())
                ));
                html.push_str(&format!(
                    "<h2>{}</h2>\n<ul>\n",
                    crate::markup::escape(&heading)
                ));
            }
            for notice in group {
                let time = notice.timestamp.format("%Y-%m-%d %H:%M:%S UTC");
                text.push_str(&format!(
                    "* {} ({time})\n  {}\n",
                    notice.title, notice.message
                ));
                let mut link_html = String::new();
                if let Some(action) = &notice.action {
                    let link = settings.absolute_link(&action.link);
                    text.push_str(&format!("  {}: {link}\n", action.label));
                    link_html = format!(
                        " <a href=\"{}\">{}</a>",
                        crate::markup::escape(&link),
                        crate::markup::escape(&action.label)
                    );
                }
                text.push('\n');
                let item = format!(
                    "<strong>{}</strong> <small>{time}</small><br>{}{link_html}",
                    crate::markup::escape(&notice.title),
                    crate::markup::escape(&notice.message)
                );
                if notices.len() > 1 {
                    html.push_str(&format!("<li>{item}</li>\n"));
                } else {
                    html.push_str(&format!("<p>{item}</p>\n"));
                }
            }
            if notices.len() > 1 {
                html.push_str("</ul>\n");
            }
        }
        text.push_str("-- \nmediadl: change these notifications under Settings > Notifications.\n");
        html.push_str("<p><small>mediadl: change these notifications under Settings &gt; Notifications.</small></p>\n</body></html>\n");
        Self {
            subject,
            text,
            html,
        }
    }
}

/// `35 downloads completed, 2 downloads failed`.
fn summary(notices: &[Notice]) -> String {
    grouped(notices)
        .into_iter()
        .map(|(topic, group)| format!("{} {}", group.len(), topic_noun(topic, group.len())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Notices by topic, topics in order of first appearance.
fn grouped(notices: &[Notice]) -> Vec<(NotificationTopic, Vec<&Notice>)> {
    let mut groups: Vec<(NotificationTopic, Vec<&Notice>)> = Vec::new();
    for notice in notices {
        match groups.iter_mut().find(|(topic, _)| *topic == notice.topic) {
            Some((_, group)) => group.push(notice),
            None => groups.push((notice.topic, vec![notice])),
        }
    }
    groups
}

fn topic_heading(topic: NotificationTopic) -> &'static str {
    match topic {
        NotificationTopic::DownloadCompleted => "Downloads completed",
        NotificationTopic::DownloadFailed => "Downloads failed",
        NotificationTopic::SourceNeedsAttention => "Sources needing attention",
        NotificationTopic::ScheduledRunFailed => "Scheduled runs failed",
        NotificationTopic::StorageThreshold => "Storage",
        NotificationTopic::ForumMonitorExpiring => "Forum monitors expiring",
        NotificationTopic::System => "System",
    }
}

fn topic_noun(topic: NotificationTopic, count: usize) -> &'static str {
    let (one, many) = match topic {
        NotificationTopic::DownloadCompleted => ("download completed", "downloads completed"),
        NotificationTopic::DownloadFailed => ("download failed", "downloads failed"),
        NotificationTopic::SourceNeedsAttention => {
            ("source needs attention", "sources need attention")
        }
        NotificationTopic::ScheduledRunFailed => ("scheduled run failed", "scheduled runs failed"),
        NotificationTopic::StorageThreshold => ("storage warning", "storage warnings"),
        NotificationTopic::ForumMonitorExpiring => {
            ("forum monitor expiring", "forum monitors expiring")
        }
        NotificationTopic::System => ("message", "messages"),
    };
    if count == 1 { one } else { many }
}

/// Wire name of a topic (`download_completed`).
pub fn topic_name(topic: NotificationTopic) -> String {
    match serde_json::to_value(topic) {
        Ok(Value::String(name)) => name,
        _ => format!("{topic:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(status: QueueStatus, job_id: Option<&str>, failed: u32) -> Event {
        Event::now(EventKind::DownloadCompleted(CompletedEvent {
            queue_id: 7,
            url: "https://example.org/a".into(),
            platform: "direct".into(),
            source: "example.org".into(),
            content_type: "file".into(),
            items_downloaded: 3,
            items_failed: failed,
            duration_seconds: 200.0,
            status,
            error_message: (status == QueueStatus::Failed).then(|| "HTTP 404".into()),
            job_id: job_id.map(Into::into),
        }))
    }

    #[test]
    fn completions_and_failures_map_to_their_topics() {
        let done = Notice::from_event(&completed(QueueStatus::Completed, None, 1)).unwrap();
        assert_eq!(done.topic, NotificationTopic::DownloadCompleted);
        assert_eq!(done.level, NotificationLevel::Warning);
        assert!(
            done.message
                .contains("3 items downloaded, 1 item failed in 3m 20s"),
            "{}",
            done.message
        );
        let failed = Notice::from_event(&completed(QueueStatus::Failed, None, 0)).unwrap();
        assert_eq!(failed.topic, NotificationTopic::DownloadFailed);
        assert!(failed.message.contains("HTTP 404"));
        let run = Notice::from_event(&completed(QueueStatus::Failed, Some("job-1"), 0)).unwrap();
        assert_eq!(run.topic, NotificationTopic::ScheduledRunFailed);
        assert!(run.title.contains("job-1"));
        assert_eq!(run.data["data"]["queue_id"], 7);
    }

    #[test]
    fn only_the_engines_notifications_are_notices() {
        let mut notice = Notice::test(Utc::now());
        for (topic, expected) in [
            (NotificationTopic::StorageThreshold, true),
            (NotificationTopic::SourceNeedsAttention, true),
            (NotificationTopic::DownloadCompleted, false),
            (NotificationTopic::System, false),
        ] {
            notice.topic = topic;
            let event = Event::now(EventKind::Notification(notice.to_notification(5)));
            let derived = Notice::from_event(&event);
            assert_eq!(derived.is_some(), expected, "{topic:?}");
            assert!(derived.is_none_or(|n| n.on_bus));
        }
    }

    #[test]
    fn digests_group_by_topic_and_escape_html() {
        let mut first = Notice::from_event(&completed(QueueStatus::Completed, None, 0)).unwrap();
        first.title = "Downloaded <b>x</b>".into();
        let second = Notice::from_event(&completed(QueueStatus::Failed, None, 0)).unwrap();
        let third = Notice::from_event(&completed(QueueStatus::Completed, None, 0)).unwrap();
        let content =
            EmailContent::render(&[first, second, third], &NotificationSettings::default());
        assert_eq!(
            content.subject,
            "[mediadl] 3 notifications: 2 downloads completed, 1 download failed"
        );
        assert!(content.html.contains("Downloaded &lt;b&gt;x&lt;/b&gt;"));
        assert!(content.text.contains("Downloads completed (2)"));
        let single = EmailContent::render(
            &[Notice::test(Utc::now())],
            &NotificationSettings::default(),
        );
        assert_eq!(single.subject, "[mediadl] mediadl test notification");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(42.4), "42s");
        assert_eq!(duration(3700.0), "1h 1m");
        assert_eq!(duration(2.0 * 86_400.0 + 7200.0), "2d 2h");
    }
}
