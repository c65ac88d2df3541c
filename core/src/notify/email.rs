//! The email transport: one SMTP conversation per message through lettre
//! (STARTTLS, implicit TLS or plain for a local relay; rustls), with a
//! plain-text and an HTML part.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::DeliveryError;
use super::notice::EmailContent;
use super::settings::{EmailSettings, SmtpSecurity};
use crate::error::error_chain;
use crate::fetch::guard::{AddressGuard, AddressRefused};

fn mailbox(field: &str, text: &str) -> Result<Mailbox, DeliveryError> {
    text.trim()
        .parse()
        .map_err(|err| DeliveryError::InvalidAddress {
            field: field.into(),
            reason: format!("{text:?}: {err}"),
        })
}

/// The message as it goes out.
pub fn build_message(
    settings: &EmailSettings,
    content: &EmailContent,
) -> Result<Message, DeliveryError> {
    let mut builder = Message::builder()
        .from(mailbox("notifications.email.from", &settings.from)?)
        .subject(content.subject.clone());
    for (index, to) in settings.to.iter().enumerate() {
        builder = builder.to(mailbox(&format!("notifications.email.to[{index}]"), to)?);
    }
    builder
        .multipart(MultiPart::alternative_plain_html(
            content.text.clone(),
            content.html.clone(),
        ))
        .map_err(|err| DeliveryError::InvalidAddress {
            field: "notifications.email".into(),
            reason: err.to_string(),
        })
}

/// Sends one email; the error carries the SMTP server's or the network's words.
///
/// The server's name is resolved here and lettre connects to an address
/// `guard` allowed (TLS still verifies the name), so a name that resolves
/// inside cannot slip past the guard between check and connect.
pub async fn send(
    settings: &EmailSettings,
    guard: AddressGuard,
    content: &EmailContent,
) -> Result<(), DeliveryError> {
    let message = build_message(settings, content)?;
    let host = settings.smtp_host.trim();
    if host.is_empty() {
        return Err(DeliveryError::NotConfigured(
            "notifications.email.smtp_host is not set".into(),
        ));
    }
    let timeout = Duration::from_secs(u64::from(settings.timeout_seconds.max(1)));
    let address = checked_address(host, settings.smtp_port, guard, timeout).await?;
    let tls_parameters = || {
        TlsParameters::new(host.to_owned()).map_err(|err| DeliveryError::Smtp {
            reason: error_chain(&err),
            permanent: true,
        })
    };
    let tls = match settings.security {
        SmtpSecurity::Tls => Tls::Wrapper(tls_parameters()?),
        SmtpSecurity::Starttls => Tls::Required(tls_parameters()?),
        SmtpSecurity::None => Tls::None,
    };
    let mut builder =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
            .port(settings.smtp_port)
            .tls(tls)
            .timeout(Some(timeout));
    if !settings.smtp_username.is_empty() {
        builder = builder.credentials(Credentials::new(
            settings.smtp_username.clone(),
            settings.smtp_password.clone(),
        ));
    }
    let transport = builder.build();
    // lettre's timeout covers each read and write; this bounds the whole
    // conversation so a server trickling bytes cannot hold a delivery.
    match tokio::time::timeout(timeout * 2, transport.send(message)).await {
        Ok(Ok(_response)) => Ok(()),
        Ok(Err(err)) => Err(DeliveryError::Smtp {
            reason: error_chain(&err),
            // 5xx answers (bad credentials, refused recipient) will not
            // change on a retry.
            permanent: err.is_permanent(),
        }),
        Err(_) => Err(DeliveryError::Timeout(timeout * 2)),
    }
}

/// The first address of `host` the guard allows.
async fn checked_address(
    host: &str,
    port: u16,
    guard: AddressGuard,
    timeout: Duration,
) -> Result<SocketAddr, DeliveryError> {
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        guard.check_ip(host, ip)?;
        return Ok(SocketAddr::new(ip, port));
    }
    let resolved = tokio::time::timeout(timeout, guard.resolve(host, port))
        .await
        .map_err(|_| DeliveryError::Timeout(timeout))?;
    match resolved {
        Ok(addresses) => addresses
            .into_iter()
            .next()
            .ok_or_else(|| DeliveryError::Network(format!("{host}: no addresses"))),
        Err(err) => match err.downcast::<AddressRefused>() {
            Ok(refused) => Err(DeliveryError::Refused(*refused)),
            Err(err) => Err(DeliveryError::Network(format!("{host}: {err}"))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_both_parts_and_every_recipient() {
        let settings = EmailSettings {
            from: "mediadl <m@example.org>".into(),
            to: vec!["a@example.org".into(), "b@example.org".into()],
            ..EmailSettings::default()
        };
        let content = EmailContent {
            subject: "Hello".into(),
            text: "plain body".into(),
            html: "<p>html body</p>".into(),
        };
        let message = build_message(&settings, &content).unwrap();
        let envelope = message.envelope();
        assert_eq!(envelope.to().len(), 2);
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(raw.contains("Subject: Hello"));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/plain"));
        assert!(raw.contains("text/html"));
    }

    #[test]
    fn a_bad_address_is_a_typed_error() {
        let settings = EmailSettings {
            from: "not an address".into(),
            to: vec!["a@example.org".into()],
            ..EmailSettings::default()
        };
        let content = EmailContent {
            subject: String::new(),
            text: String::new(),
            html: String::new(),
        };
        let err = build_message(&settings, &content).unwrap_err();
        assert!(
            matches!(err, DeliveryError::InvalidAddress { ref field, .. } if field == "notifications.email.from"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn smtp_servers_pass_the_address_guard() {
        let timeout = Duration::from_secs(5);
        let err = checked_address("127.0.0.1", 25, AddressGuard::new(true), timeout)
            .await
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Refused(_)), "{err}");
        let err = checked_address("localhost", 25, AddressGuard::new(true), timeout)
            .await
            .unwrap_err();
        assert!(matches!(err, DeliveryError::Refused(_)), "{err}");
        let err = checked_address("169.254.169.254", 25, AddressGuard::new(false), timeout)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("metadata"), "{err}");
        let open = checked_address("127.0.0.1", 2525, AddressGuard::new(false), timeout)
            .await
            .unwrap();
        assert_eq!(open, "127.0.0.1:2525".parse().unwrap());
    }
}
