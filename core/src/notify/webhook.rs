//! The webhook transport: a POST per notice with an HMAC-SHA256 signature
//! of the body in `X-Mediadl-Signature` (`sha256=<hex>`), retried with
//! exponential backoff, every attempt written to the delivery history.
//!
//! Receivers verify by computing HMAC-SHA256 of the raw body with the
//! hook's secret and comparing hex digests in constant time.

use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::DeliveryError;
use super::history::{Delivery, DeliveryAttempt, DeliveryLog, DeliveryTransport};
use super::notice::{Notice, topic_name};
use super::settings::{NotificationSettings, WebhookFormat, WebhookSettings};
use crate::clock::Clock;
use crate::error::error_chain;
use crate::model::NotificationLevel;
use crate::model::settings::Redactor;

/// Header with the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Mediadl-Signature";
/// Header naming the event kind (`download_completed`).
pub const EVENT_HEADER: &str = "X-Mediadl-Event";
/// Header with the delivery id (the same on every retry).
pub const DELIVERY_HEADER: &str = "X-Mediadl-Delivery";

/// Most of a failing answer's body kept as its reason.
const ERROR_BODY_LIMIT: usize = 300;

/// `sha256=<hex>` of HMAC-SHA256 over `body` keyed with `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `signature` (`sha256=<hex>`) is `body`'s under `secret`,
/// compared in constant time (for receivers and tests).
pub fn verify(secret: &str, body: &[u8], signature: &str) -> bool {
    let Some(digest) = signature
        .strip_prefix("sha256=")
        .and_then(|hex_text| hex::decode(hex_text).ok())
    else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

/// The request a webhook gets: where to, the body and its content type.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookRequest {
    /// The webhook's address.
    pub url: String,
    /// The request body, exactly as signed.
    pub body: Vec<u8>,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
}

fn truncated(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// The body in the hook's format.
pub fn build_request(
    hook: &WebhookSettings,
    notice: &Notice,
    delivery_id: &str,
    settings: &NotificationSettings,
) -> WebhookRequest {
    let link = notice
        .action
        .as_ref()
        .map(|action| settings.absolute_link(&action.link));
    let absolute = link.clone().filter(|l| l.starts_with("http"));
    let event = topic_name(notice.topic);
    let (url, body) = match hook.format {
        WebhookFormat::Json => (
            hook.url.clone(),
            json!({
                "id": delivery_id,
                "event": event,
                "timestamp": notice.timestamp,
                "level": notice.level,
                "title": notice.title,
                "message": notice.message,
                "action": notice.action.as_ref().map(|action| json!({
                    "label": action.label,
                    "link": link,
                })),
                "data": notice.data,
            }),
        ),
        WebhookFormat::Discord => {
            let color = match notice.level {
                NotificationLevel::Info => 0x3498db,
                NotificationLevel::Success => 0x2ecc71,
                NotificationLevel::Warning => 0xf1c40f,
                NotificationLevel::Error => 0xe74c3c,
            };
            let mut embed = json!({
                "title": truncated(&notice.title, 256),
                "description": truncated(&notice.message, 4096),
                "color": color,
                "timestamp": notice.timestamp,
                "footer": { "text": format!("mediadl · {event}") },
            });
            if let Some(link) = &absolute {
                embed["url"] = Value::String(link.clone());
            }
            (
                hook.url.clone(),
                json!({ "username": "mediadl", "embeds": [embed] }),
            )
        }
        WebhookFormat::Ntfy => {
            // ntfy's JSON publishing: POST to the server root, topic in the
            // body (titles in JSON need no header encoding).
            let (base, topic) = split_ntfy_url(&hook.url);
            let priority = match notice.level {
                NotificationLevel::Error => 4,
                NotificationLevel::Warning => 3,
                NotificationLevel::Info | NotificationLevel::Success => 2,
            };
            let tag = match notice.level {
                NotificationLevel::Error => "rotating_light",
                NotificationLevel::Warning => "warning",
                NotificationLevel::Success => "white_check_mark",
                NotificationLevel::Info => "information_source",
            };
            let mut body = json!({
                "topic": topic,
                "title": notice.title,
                "message": notice.message,
                "priority": priority,
                "tags": [tag, event],
            });
            if let Some(link) = &absolute {
                body["click"] = Value::String(link.clone());
            }
            (base, body)
        }
    };
    WebhookRequest {
        url,
        body: serde_json::to_vec(&body).unwrap_or_default(),
        content_type: "application/json",
    }
}

/// `https://ntfy.sh/alerts` → (`https://ntfy.sh/`, `alerts`).
fn split_ntfy_url(raw: &str) -> (String, String) {
    match url::Url::parse(raw) {
        Ok(mut url) => {
            let mut segments: Vec<String> = url
                .path_segments()
                .map(|s| s.filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default();
            let topic = segments.pop().unwrap_or_default();
            let path = if segments.is_empty() {
                "/".to_owned()
            } else {
                format!("/{}/", segments.join("/"))
            };
            url.set_path(&path);
            url.set_query(None);
            (url.to_string(), topic)
        }
        Err(_) => (raw.to_owned(), String::new()),
    }
}

/// One attempt: `Ok(status)` for a 2xx. Error texts never carry the
/// hook's URL (Discord and ntfy keep their token in it): they reach the
/// delivery history and the logs.
async fn attempt(
    client: &reqwest::Client,
    request: &WebhookRequest,
    hook: &WebhookSettings,
    event: &str,
    delivery_id: &str,
    settings: &NotificationSettings,
) -> Result<u16, (Option<u16>, DeliveryError)> {
    let timeout = Duration::from_secs(u64::from(settings.retry.timeout_seconds.max(1)));
    // Literal addresses never reach the client's resolver: checked here.
    if let Ok(url) = url::Url::parse(&request.url) {
        settings
            .guard
            .check_url(&url)
            .map_err(|err| (None, err.into()))?;
    }
    let mut builder = client
        .post(&request.url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, request.content_type)
        .header(EVENT_HEADER, event)
        .header(DELIVERY_HEADER, delivery_id)
        .body(request.body.clone());
    if !hook.secret.is_empty() {
        builder = builder.header(SIGNATURE_HEADER, sign(&hook.secret, &request.body));
    }
    // The client's own timeout covers the whole exchange; this one also
    // covers a body that never ends.
    let exchange = async {
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let text = if response.status().is_success() {
            String::new()
        } else {
            response.text().await.unwrap_or_default()
        };
        Ok::<_, reqwest::Error>((status, text))
    };
    match tokio::time::timeout(timeout + Duration::from_secs(1), exchange).await {
        Err(_) => Err((None, DeliveryError::Timeout(timeout))),
        Ok(Err(err)) if err.is_timeout() => Err((None, DeliveryError::Timeout(timeout))),
        Ok(Err(err)) => Err((
            None,
            DeliveryError::Network(error_chain(&err.without_url())),
        )),
        Ok(Ok((status, _))) if (200..300).contains(&status) => Ok(status),
        Ok(Ok((status, body))) => Err((
            Some(status),
            DeliveryError::HttpStatus {
                status,
                body: truncated(body.trim(), ERROR_BODY_LIMIT),
            },
        )),
    }
}

/// Delivers `notice` to one hook, retrying as `settings.retry`
/// says, and records the delivery (with every attempt) in `log`.
#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    client: &reqwest::Client,
    name: &str,
    hook: &WebhookSettings,
    notice: &Notice,
    settings: &NotificationSettings,
    log: &DeliveryLog,
    clock: &dyn Clock,
    test: bool,
) -> Delivery {
    let mut delivery = Delivery::new(
        DeliveryTransport::Webhook,
        name.to_owned(),
        vec![notice.topic],
        notice.title.clone(),
        1,
        clock.now(),
    );
    delivery.test = test;
    let request = build_request(hook, notice, &delivery.id, settings);
    let event = topic_name(notice.topic);
    // A receiver's error page may quote the URL it was called at.
    let mut redactor = Redactor::default();
    redactor.add_url(&hook.url);
    redactor.add(&hook.secret);
    let retry = &settings.retry;
    let attempts = if test { 1 } else { retry.max_attempts.max(1) };
    for number in 1..=attempts {
        let started = Instant::now();
        let at = clock.now();
        let result = attempt(client, &request, hook, &event, &delivery.id, settings).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (success, status_code, error, again) = match result {
            Ok(status) => (true, Some(status), None, false),
            Err((status, err)) => (
                false,
                status,
                Some(redactor.redact(&err.to_string())),
                err.is_retryable(),
            ),
        };
        let attempt = DeliveryAttempt {
            attempt: number,
            at,
            success,
            status_code,
            error: error.clone(),
            duration_ms,
        };
        let last = delivery.add_attempt(attempt, again, number == attempts, clock.now());
        if let Err(err) = log.record(&delivery, settings.history_limit).await {
            tracing::warn!(target: "mediadl::notify", error = %err, "cannot record a webhook delivery");
        }
        if success {
            tracing::debug!(target: "mediadl::notify", webhook = name, attempt = number, "webhook delivered");
            break;
        }
        if last {
            tracing::warn!(target: "mediadl::notify", webhook = name, attempts = number, error = error.as_deref().unwrap_or_default(), "webhook delivery failed");
            break;
        }
        tokio::time::sleep(retry.backoff(number)).await;
    }
    delivery
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn signatures_verify_and_detect_tampering() {
        let signature = sign("s3cret", b"{\"a\":1}");
        assert!(signature.starts_with("sha256="));
        assert_eq!(signature.len(), 7 + 64);
        assert!(verify("s3cret", b"{\"a\":1}", &signature));
        assert!(!verify("s3cret", b"{\"a\":2}", &signature));
        assert!(!verify("other", b"{\"a\":1}", &signature));
        assert!(!verify("s3cret", b"{\"a\":1}", "md5=00"));
    }

    #[test]
    fn known_hmac_vector() {
        // RFC 4231 test case 2.
        let signature = sign("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            signature,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn formats_carry_the_notice() {
        let settings = NotificationSettings {
            base_url: "https://media.example.org".into(),
            ..NotificationSettings::default()
        };
        let notice = Notice::test(Utc::now());
        let mut hook = WebhookSettings {
            url: "https://ntfy.example.org/alerts".into(),
            ..WebhookSettings::default()
        };
        let body =
            |request: &WebhookRequest| -> Value { serde_json::from_slice(&request.body).unwrap() };

        let json_request = build_request(&hook, &notice, "d1", &settings);
        let value = body(&json_request);
        assert_eq!(value["event"], "system");
        assert_eq!(value["id"], "d1");
        assert_eq!(
            value["action"]["link"],
            "https://media.example.org/settings"
        );

        hook.format = WebhookFormat::Discord;
        let value = body(&build_request(&hook, &notice, "d1", &settings));
        assert_eq!(value["embeds"][0]["title"], notice.title);
        assert_eq!(
            value["embeds"][0]["url"],
            "https://media.example.org/settings"
        );

        hook.format = WebhookFormat::Ntfy;
        let request = build_request(&hook, &notice, "d1", &settings);
        assert_eq!(request.url, "https://ntfy.example.org/");
        let value = body(&request);
        assert_eq!(value["topic"], "alerts");
        assert_eq!(value["click"], "https://media.example.org/settings");
    }

    fn hook_for(url: &str) -> (WebhookRequest, WebhookSettings) {
        let hook = WebhookSettings {
            url: url.into(),
            ..WebhookSettings::default()
        };
        let request = WebhookRequest {
            url: url.into(),
            body: b"{}".to_vec(),
            content_type: "application/json",
        };
        (request, hook)
    }

    #[tokio::test]
    async fn a_failed_connection_does_not_quote_the_url() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let (request, hook) = hook_for(&format!("http://127.0.0.1:{port}/hooks/T0KEN-123?key=K3Y"));
        let settings = NotificationSettings::default();
        let client = reqwest::Client::new();
        let (_, err) = attempt(&client, &request, &hook, "system", "d1", &settings)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, DeliveryError::Network(_)), "{text}");
        assert!(!text.contains("T0KEN") && !text.contains("K3Y"), "{text}");
    }

    #[tokio::test]
    async fn the_guard_refuses_before_connecting() {
        let client = reqwest::Client::new();
        let mut settings = NotificationSettings::default();
        let (request, hook) = hook_for("http://169.254.169.254/latest/meta-data/");
        let (_, err) = attempt(&client, &request, &hook, "system", "d1", &settings)
            .await
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Refused(_)), "{err}");
        assert!(!err.is_retryable());
        settings.guard = crate::fetch::AddressGuard::new(true);
        let (request, hook) = hook_for("http://[::ffff:127.0.0.1]:9/hooks/T0KEN");
        let (_, err) = attempt(&client, &request, &hook, "system", "d1", &settings)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("private"), "{err}");
        assert!(!err.to_string().contains("T0KEN"), "{err}");
    }
}
