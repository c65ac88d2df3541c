//! The typed `notifications` section of the settings document: rules per
//! event kind, the email (SMTP) transport, browser toasts and webhooks.
//!
//! The section is stored as free-form JSON in
//! [`Settings::notifications`](crate::model::Settings::notifications);
//! [`NotificationSettings::from_settings`] reads and validates it, naming
//! the offending field by its dotted path (`notifications.email.smtp_port`).
//!
//! Webhooks are an object keyed by a name the user picks, not a list, so
//! that secrets are masked (`"***"`) on the way out and a masked secret
//! written back keeps the stored one (both work on object keys).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fetch::AddressGuard;
use crate::model::NotificationTopic;
use crate::model::settings::{InvalidSetting, Settings};

/// Longest delivery history kept.
pub const MAX_HISTORY: u32 = 5000;

/// The whole `notifications` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotificationSettings {
    /// SMTP server, sender and recipients.
    pub email: EmailSettings,
    /// Toasts in the dashboard.
    pub browser: BrowserSettings,
    /// Webhooks by name.
    pub webhooks: BTreeMap<String, WebhookSettings>,
    /// How email and webhook deliveries are retried.
    pub retry: RetrySettings,
    /// Which events notify, and through which transports.
    pub rules: Rules,
    /// Public address of the dashboard (`https://media.example.org`), so
    /// links in emails and webhooks are absolute; empty keeps them relative.
    pub base_url: String,
    /// A forum monitor is announced this many hours before it stops.
    pub forum_monitor_warning_hours: u32,
    /// Deliveries kept in the history (`GET /notifications/deliveries`).
    pub history_limit: u32,
    /// The address guard webhook and SMTP connections pass: metadata
    /// endpoints always, private addresses under
    /// `network.block_private_addresses` (read from there, not from this section).
    #[serde(skip)]
    pub guard: AddressGuard,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            email: EmailSettings::default(),
            browser: BrowserSettings::default(),
            webhooks: BTreeMap::new(),
            retry: RetrySettings::default(),
            rules: Rules::default(),
            base_url: String::new(),
            forum_monitor_warning_hours: 24,
            history_limit: 200,
            guard: AddressGuard::default(),
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (refused if the server cannot).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

/// `notifications.email`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    /// Off: no email is sent, whatever the rules say.
    pub enabled: bool,
    /// Host name of the SMTP server.
    pub smtp_host: String,
    /// Port of the SMTP server (587 for STARTTLS, 465 for implicit TLS, 25 plain).
    pub smtp_port: u16,
    /// How the connection is encrypted.
    pub security: SmtpSecurity,
    /// Empty for a relay that needs no login.
    pub smtp_username: String,
    /// Password of `smtp_username`; shown as `***` by the API.
    pub smtp_password: String,
    /// Sender, `mediadl@example.org` or `mediadl <mediadl@example.org>`.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Longest an SMTP conversation may take.
    pub timeout_seconds: u32,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            smtp_host: String::new(),
            smtp_port: 587,
            security: SmtpSecurity::Starttls,
            smtp_username: String::new(),
            smtp_password: String::new(),
            from: String::new(),
            to: Vec::new(),
            timeout_seconds: 30,
        }
    }
}

impl EmailSettings {
    /// Whether enough is set to send (enabled or not): a host, a sender
    /// and a recipient.
    pub fn is_configured(&self) -> bool {
        !self.smtp_host.trim().is_empty() && !self.from.trim().is_empty() && !self.to.is_empty()
    }
}

/// `notifications.browser`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrowserSettings {
    /// Off: no toast is published, whatever the rules say.
    pub enabled: bool,
    /// Toasts of successes and information close after this many seconds;
    /// warnings and errors stay until dismissed. 0 keeps every toast.
    pub auto_dismiss_seconds: u32,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            auto_dismiss_seconds: 10,
        }
    }
}

/// Body a webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    /// mediadl's JSON: `{id, event, timestamp, level, title, message, action, data}`.
    #[default]
    Json,
    /// A Discord webhook message (`{"username", "embeds": [...]}`).
    Discord,
    /// An ntfy publish: the message as the body, `Title`, `Priority`,
    /// `Tags` and `Click` headers (the URL is the topic's).
    Ntfy,
}

/// One webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// Off: the hook receives nothing.
    pub enabled: bool,
    /// `http(s)://` address the events are POSTed to.
    pub url: String,
    /// Key of the `X-Mediadl-Signature` HMAC-SHA256; empty sends no signature.
    pub secret: String,
    /// Events this hook receives; empty means every event whose rule has
    /// the webhook transport on.
    pub events: Vec<NotificationTopic>,
    /// Body shape: mediadl's JSON, a Discord message or an ntfy publish.
    pub format: WebhookFormat,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            url: String::new(),
            secret: String::new(),
            events: Vec::new(),
            format: WebhookFormat::Json,
        }
    }
}

impl WebhookSettings {
    /// Whether this hook takes `topic`.
    pub fn wants(&self, topic: NotificationTopic) -> bool {
        self.enabled && (self.events.is_empty() || self.events.contains(&topic))
    }
}

/// `notifications.retry`: attempts with exponential backoff (email and webhooks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetrySettings {
    /// Attempts in all (1–10).
    pub max_attempts: u32,
    /// Wait before the second attempt; doubled for each further one.
    pub initial_backoff_seconds: f64,
    /// Longest wait between two attempts.
    pub max_backoff_seconds: f64,
    /// Longest one attempt may take (connect, send, answer).
    pub timeout_seconds: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff_seconds: 5.0,
            max_backoff_seconds: 600.0,
            timeout_seconds: 10,
        }
    }
}

impl RetrySettings {
    /// Wait after failed attempt number `attempt` (1-based).
    pub fn backoff(&self, attempt: u32) -> std::time::Duration {
        let factor = 2f64.powi(attempt.saturating_sub(1).min(30) as i32);
        let seconds = (self.initial_backoff_seconds * factor).min(self.max_backoff_seconds);
        std::time::Duration::from_secs_f64(seconds.max(0.0))
    }
}

/// Whether an event kind notifies, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rule {
    /// Off: the event notifies through no transport.
    pub enabled: bool,
    /// Send it by email.
    pub email: bool,
    /// Show it as a toast in the dashboard.
    pub browser: bool,
    /// Send it to the webhooks that take this event.
    pub webhook: bool,
    /// Emails of this rule wait up to this many minutes and go out grouped
    /// with every other event of that time in one digest; 0 sends each at once.
    pub digest_minutes: u32,
    /// The same notice (same event and title) is not repeated within this
    /// many minutes (a storage limit warned about once, not per item).
    pub repeat_after_minutes: u32,
}

impl Rule {
    fn new(email: bool, browser: bool, webhook: bool, digest_minutes: u32) -> Self {
        Self {
            enabled: true,
            email,
            browser,
            webhook,
            digest_minutes,
            repeat_after_minutes: 0,
        }
    }
}

impl Default for Rule {
    fn default() -> Self {
        Self::new(true, true, true, 0)
    }
}

/// `notifications.rules`: one rule per event kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Rules {
    /// A queue item finished (with the counts of items downloaded and failed).
    pub download_completed: Rule,
    /// A queue item failed after its last attempt.
    pub download_failed: Rule,
    /// A source needs cookies or a login (AuthRequired).
    pub source_needs_attention: Rule,
    /// A scheduled job's run failed.
    pub scheduled_run_failed: Rule,
    /// The download root is above `general.storage_limit_gb`.
    pub storage_threshold: Rule,
    /// A forum monitor stops soon.
    pub forum_monitor_expiring: Rule,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            // Completions are many: no email unless asked, and then grouped.
            download_completed: Rule::new(false, true, true, 15),
            download_failed: Rule::new(true, true, true, 15),
            source_needs_attention: Rule {
                repeat_after_minutes: 60,
                ..Rule::new(true, true, true, 0)
            },
            scheduled_run_failed: Rule::new(true, true, true, 15),
            storage_threshold: Rule {
                repeat_after_minutes: 360,
                ..Rule::new(true, true, true, 0)
            },
            forum_monitor_expiring: Rule::new(true, true, true, 0),
        }
    }
}

impl Rules {
    /// The rule of `topic`; `None` for [`NotificationTopic::System`]
    /// (test messages, which every transport sends).
    pub fn get(&self, topic: NotificationTopic) -> Option<&Rule> {
        match topic {
            NotificationTopic::DownloadCompleted => Some(&self.download_completed),
            NotificationTopic::DownloadFailed => Some(&self.download_failed),
            NotificationTopic::SourceNeedsAttention => Some(&self.source_needs_attention),
            NotificationTopic::ScheduledRunFailed => Some(&self.scheduled_run_failed),
            NotificationTopic::StorageThreshold => Some(&self.storage_threshold),
            NotificationTopic::ForumMonitorExpiring => Some(&self.forum_monitor_expiring),
            NotificationTopic::System => None,
        }
    }

    fn named(&self) -> [(&'static str, &Rule); 6] {
        [
            ("download_completed", &self.download_completed),
            ("download_failed", &self.download_failed),
            ("source_needs_attention", &self.source_needs_attention),
            ("scheduled_run_failed", &self.scheduled_run_failed),
            ("storage_threshold", &self.storage_threshold),
            ("forum_monitor_expiring", &self.forum_monitor_expiring),
        ]
    }
}

fn invalid(field: impl AsRef<str>, reason: impl Into<String>) -> InvalidSetting {
    InvalidSetting {
        field: format!("notifications.{}", field.as_ref()),
        reason: reason.into(),
    }
}

impl NotificationSettings {
    /// Reads and validates `settings.notifications`.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the first unacceptable field.
    pub fn from_settings(settings: &Settings) -> Result<Self, InvalidSetting> {
        let mut parsed = Self::from_value(&Value::Object(settings.notifications.clone()))?;
        parsed.guard = AddressGuard::new(settings.network.block_private_addresses);
        Ok(parsed)
    }

    /// Reads and validates a `notifications` section.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the first unacceptable field.
    pub fn from_value(value: &Value) -> Result<Self, InvalidSetting> {
        let parsed: Self = serde_path_to_error::deserialize(value).map_err(|err| {
            let path = err.path().to_string();
            invalid(path, err.into_inner().to_string())
        })?;
        parsed.validate()?;
        Ok(parsed)
    }

    /// Checks values serde cannot: ranges, addresses, URLs.
    ///
    /// # Errors
    ///
    /// [`InvalidSetting`] naming the first value out of range or malformed.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let email = &self.email;
        if email.enabled && email.smtp_host.trim().is_empty() {
            return Err(invalid(
                "email.smtp_host",
                "must be set when email is enabled",
            ));
        }
        if email
            .smtp_host
            .chars()
            .any(|c| c.is_whitespace() || c == '/')
        {
            return Err(invalid("email.smtp_host", "must be a host name or address"));
        }
        if email.smtp_port == 0 {
            return Err(invalid("email.smtp_port", "must be between 1 and 65535"));
        }
        if email.enabled && email.from.trim().is_empty() {
            return Err(invalid("email.from", "must be set when email is enabled"));
        }
        if !email.from.trim().is_empty() {
            check_mailbox("email.from", &email.from)?;
        }
        if email.enabled && email.to.is_empty() {
            return Err(invalid(
                "email.to",
                "needs at least one recipient when email is enabled",
            ));
        }
        for (index, to) in email.to.iter().enumerate() {
            check_mailbox(&format!("email.to[{index}]"), to)?;
        }
        if !email.smtp_username.is_empty() && email.smtp_password.is_empty() {
            return Err(invalid(
                "email.smtp_password",
                "must be set with email.smtp_username",
            ));
        }
        if !(1..=600).contains(&email.timeout_seconds) {
            return Err(invalid(
                "email.timeout_seconds",
                format!("must be between 1 and 600, got {}", email.timeout_seconds),
            ));
        }
        if self.browser.auto_dismiss_seconds > 3600 {
            return Err(invalid(
                "browser.auto_dismiss_seconds",
                "must be between 0 and 3600",
            ));
        }
        for (name, hook) in &self.webhooks {
            let field = format!("webhooks.{name}");
            if name.trim().is_empty() {
                return Err(invalid(&field, "webhook names must not be empty"));
            }
            check_http_url(&format!("{field}.url"), &hook.url)?;
        }
        let retry = &self.retry;
        if !(1..=10).contains(&retry.max_attempts) {
            return Err(invalid(
                "retry.max_attempts",
                format!("must be between 1 and 10, got {}", retry.max_attempts),
            ));
        }
        for (field, value) in [
            ("initial_backoff_seconds", retry.initial_backoff_seconds),
            ("max_backoff_seconds", retry.max_backoff_seconds),
        ] {
            if !(value.is_finite() && (0.01..=86_400.0).contains(&value)) {
                return Err(invalid(
                    format!("retry.{field}"),
                    "must be between 0.01 and 86400 seconds",
                ));
            }
        }
        if !(1..=300).contains(&retry.timeout_seconds) {
            return Err(invalid(
                "retry.timeout_seconds",
                "must be between 1 and 300",
            ));
        }
        for (name, rule) in self.rules.named() {
            if rule.digest_minutes > 1440 {
                return Err(invalid(
                    format!("rules.{name}.digest_minutes"),
                    "must be between 0 and 1440",
                ));
            }
            if rule.repeat_after_minutes > 10_080 {
                return Err(invalid(
                    format!("rules.{name}.repeat_after_minutes"),
                    "must be between 0 and 10080",
                ));
            }
        }
        if !self.base_url.is_empty() {
            check_http_url("base_url", &self.base_url)?;
        }
        if !(1..=720).contains(&self.forum_monitor_warning_hours) {
            return Err(invalid(
                "forum_monitor_warning_hours",
                "must be between 1 and 720",
            ));
        }
        if !(1..=MAX_HISTORY).contains(&self.history_limit) {
            return Err(invalid(
                "history_limit",
                format!("must be between 1 and {MAX_HISTORY}"),
            ));
        }
        Ok(())
    }

    /// `link` made absolute with [`base_url`](Self::base_url) when it is relative.
    pub fn absolute_link(&self, link: &str) -> String {
        if self.base_url.is_empty() || !link.starts_with('/') {
            link.to_owned()
        } else {
            format!("{}{link}", self.base_url.trim_end_matches('/'))
        }
    }
}

/// Checks a `Name <user@host>` or `user@host` address enough to catch
/// typos; the SMTP server has the last word.
///
/// # Errors
///
/// [`InvalidSetting`] for `field` when `text` is not such an address.
pub fn check_mailbox(field: &str, text: &str) -> Result<(), InvalidSetting> {
    let text = text.trim();
    let address = match (text.rfind('<'), text.strip_suffix('>')) {
        (Some(open), Some(inner)) => &inner[open + 1..],
        (None, None) => text,
        _ => return Err(invalid(field, format!("{text:?} is not an email address"))),
    };
    let valid = match address.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !address.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(invalid(field, format!("{text:?} is not an email address")))
    }
}

fn check_http_url(field: &str, text: &str) -> Result<(), InvalidSetting> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host_str().is_some() => Ok(()),
        Ok(url) => Err(invalid(
            field,
            format!("must be an http(s) URL, not {}", url.scheme()),
        )),
        Err(err) => Err(invalid(field, format!("not a URL: {err}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_of_the_settings_document_are_valid() {
        let parsed = NotificationSettings::from_settings(&Settings::default()).unwrap();
        assert!(!parsed.email.enabled);
        assert!(parsed.browser.enabled);
        assert_eq!(parsed.email.smtp_port, 587);
        assert!(parsed.rules.download_failed.email);
    }

    #[test]
    fn invalid_values_name_their_field() {
        let cases = [
            (
                json!({"email": {"smtp_port": "x"}}),
                "notifications.email.smtp_port",
            ),
            (
                json!({"email": {"enabled": true}}),
                "notifications.email.smtp_host",
            ),
            (
                json!({"email": {"enabled": true, "smtp_host": "mx", "from": "a@b", "to": ["nope"]}}),
                "notifications.email.to[0]",
            ),
            (
                json!({"email": {"security": "ssl"}}),
                "notifications.email.security",
            ),
            (
                json!({"webhooks": {"ci": {"url": "ftp://x/y"}}}),
                "notifications.webhooks.ci.url",
            ),
            (
                json!({"webhooks": {"ci": {"url": "http://x", "events": ["nope"]}}}),
                "notifications.webhooks.ci.events[0]",
            ),
            (
                json!({"webhooks": [{"url": "http://x"}]}),
                "notifications.webhooks",
            ),
            (
                json!({"rules": {"download_failed": {"digest_minutes": 5000}}}),
                "notifications.rules.download_failed.digest_minutes",
            ),
            (json!({"rules": {"nope": {}}}), "notifications.rules.nope"),
            (
                json!({"retry": {"max_attempts": 0}}),
                "notifications.retry.max_attempts",
            ),
        ];
        for (value, field) in cases {
            let err = NotificationSettings::from_value(&value).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
        }
    }

    #[test]
    fn mailboxes_with_and_without_names() {
        assert!(check_mailbox("f", "mediadl <m@example.org>").is_ok());
        assert!(check_mailbox("f", "m@example.org").is_ok());
        for bad in ["m@", "@x", "a b@x", "m@x>", "x", "m@@x"] {
            assert!(check_mailbox("f", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let retry = RetrySettings {
            initial_backoff_seconds: 2.0,
            max_backoff_seconds: 10.0,
            ..RetrySettings::default()
        };
        let waits: Vec<u64> = (1..=5).map(|n| retry.backoff(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 10, 10]);
    }

    #[test]
    fn links_become_absolute_with_a_base_url() {
        let mut settings = NotificationSettings::default();
        assert_eq!(settings.absolute_link("/queue"), "/queue");
        settings.base_url = "https://media.example.org/".into();
        assert_eq!(
            settings.absolute_link("/queue"),
            "https://media.example.org/queue"
        );
    }
}
