//! [`PgEventBus`]: events crossing processes through PostgreSQL
//! `LISTEN`/`NOTIFY`, so a server sees the progress of `mediadl worker`s
//! running elsewhere.
//!
//! - Publishing hands the event to local subscribers at once and queues it
//!   for a background task that sends `pg_notify`; a full queue drops the
//!   event rather than slow the publisher (the bus contract).
//! - A listener task receives notifications and feeds the local broadcast
//!   channel. Events this bus published itself are recognised by an origin
//!   id and skipped, since local subscribers already have them.
//! - NOTIFY payloads are limited to 8000 bytes: a larger event's body is
//!   stored in `event_payloads` and the notification carries its row id.
//! - When the listener's connection drops it reconnects with exponential
//!   backoff and listens again; events sent while it was away are lost, as
//!   with any subscriber that falls behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::BoxStream;
use mediadl::StoreError;
use mediadl::events::{BroadcastBus, BusMessage, EventBus};
use mediadl::model::Event;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgListener, PgNotification, PgPoolOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::error::{map_err, map_migrate_err};
use super::{MIGRATOR, redact_url};

/// Largest notification payload sent inline. PostgreSQL refuses payloads of
/// 8000 bytes or more; the margin covers the origin prefix.
const INLINE_LIMIT: usize = 7900;
/// Large bodies older than this are removed: every listener has read them.
const PAYLOAD_RETENTION_SECS: i64 = 600;
/// How often the publisher removes old large bodies.
const CLEANUP_EVERY: Duration = Duration::from_secs(60);
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// How a [`PgEventBus`] is set up.
#[derive(Debug, Clone)]
pub struct PgEventBusOptions {
    /// The NOTIFY channel; every process of one installation uses the same.
    pub channel: String,
    /// Events a local subscriber may fall behind before it lags.
    pub capacity: usize,
    /// Events waiting to be sent to PostgreSQL before new ones are dropped.
    pub outbox: usize,
    /// `application_name` of the listening connection (visible in `pg_stat_activity`).
    pub listener_name: String,
}

impl Default for PgEventBusOptions {
    fn default() -> Self {
        Self {
            channel: "mediadl_events".into(),
            capacity: 4096,
            outbox: 4096,
            listener_name: "mediadl-events".into(),
        }
    }
}

/// The event bus shared by every process connected to one PostgreSQL database.
///
/// Cloning is cheap; the background tasks stop when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PgEventBus {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    local: BroadcastBus,
    outbox: mpsc::Sender<Event>,
    dropped: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
    listener_task: JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The publisher ends by itself once `outbox` is gone; the listener
        // would wait for notifications forever.
        self.listener_task.abort();
    }
}

/// What travels in a notification: `<origin>:i:<event JSON>` inline, or
/// `<origin>:r:<event_payloads id>` for a stored body.
#[derive(Debug, PartialEq)]
enum Payload<'a> {
    Inline(&'a str),
    Stored(i64),
}

fn encode_inline(origin: Uuid, json: &str) -> String {
    format!("{origin}:i:{json}")
}

fn encode_stored(origin: Uuid, id: i64) -> String {
    format!("{origin}:r:{id}")
}

fn decode(payload: &str) -> Option<(Uuid, Payload<'_>)> {
    let (origin, rest) = payload.split_once(':')?;
    let origin = Uuid::parse_str(origin).ok()?;
    let (kind, body) = rest.split_once(':')?;
    match kind {
        "i" => Some((origin, Payload::Inline(body))),
        "r" => Some((origin, Payload::Stored(body.parse().ok()?))),
        _ => None,
    }
}

impl PgEventBus {
    /// Connects with the default options. Makes sure the schema is migrated
    /// (the large-payload table), and listens before returning, so events
    /// published by others from now on arrive.
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        Self::connect_with(database_url, PgEventBusOptions::default()).await
    }

    /// Connects with `options`.
    pub async fn connect_with(
        database_url: &str,
        options: PgEventBusOptions,
    ) -> Result<Self, StoreError> {
        let connect: PgConnectOptions = database_url.parse().map_err(|err| {
            StoreError::Invalid(format!("invalid PostgreSQL URL {database_url:?}: {err}"))
        })?;
        let unavailable = |err: sqlx::Error| match map_err(err) {
            StoreError::Unavailable(message) => StoreError::Unavailable(format!(
                "event bus cannot reach PostgreSQL at {}: {message}",
                redact_url(database_url)
            )),
            other => other,
        };
        // Publishing and reading large bodies: two connections are plenty.
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(connect.clone().application_name("mediadl-events-publisher"))
            .await
            .map_err(unavailable)?;
        MIGRATOR.run(&pool).await.map_err(map_migrate_err)?;
        // The listener's own single connection, never recycled: recycling
        // would silently drop the LISTEN.
        let listen_pool = PgPoolOptions::new()
            .max_connections(1)
            .max_lifetime(None)
            .idle_timeout(None)
            .acquire_timeout(Duration::from_secs(10))
            .connect_lazy_with(connect.application_name(&options.listener_name));
        let listener = listen(&listen_pool, &options.channel)
            .await
            .map_err(unavailable)?;

        let origin = Uuid::new_v4();
        let local = BroadcastBus::new(options.capacity);
        let (outbox, outbox_rx) = mpsc::channel(options.outbox.max(1));
        let reconnects = Arc::new(AtomicU64::new(0));
        tokio::spawn(publish_loop(
            pool.clone(),
            options.channel.clone(),
            origin,
            outbox_rx,
        ));
        let listener_task = tokio::spawn(listen_loop(ListenLoop {
            pool,
            listen_pool,
            channel: options.channel,
            origin,
            local: local.clone(),
            reconnects: reconnects.clone(),
            listener: Some(listener),
        }));
        Ok(Self {
            inner: Arc::new(Inner {
                local,
                outbox,
                dropped: Arc::new(AtomicU64::new(0)),
                reconnects,
                listener_task,
            }),
        })
    }

    /// Events dropped because the outbox to PostgreSQL was full.
    pub fn dropped_events(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// How many times the listener re-established its connection.
    pub fn listener_reconnects(&self) -> u64 {
        self.inner.reconnects.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl EventBus for PgEventBus {
    async fn publish(&self, event: Event) {
        self.inner.local.send(event.clone());
        if self.inner.outbox.try_send(event).is_err() {
            let dropped = self.inner.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "event outbox to PostgreSQL is full; events dropped"
                );
            }
        }
    }

    fn subscribe(&self) -> BoxStream<'static, BusMessage> {
        self.inner.local.subscribe()
    }
}

async fn listen(pool: &PgPool, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.ignore_pool_close_event(true);
    listener.listen(channel).await?;
    Ok(listener)
}

/// Sends queued events until the bus is dropped, retrying a failed send
/// with backoff (new events meanwhile wait in, or overflow, the outbox).
async fn publish_loop(
    pool: PgPool,
    channel: String,
    origin: Uuid,
    mut outbox: mpsc::Receiver<Event>,
) {
    let mut last_cleanup = Instant::now();
    while let Some(event) = outbox.recv().await {
        let json = match serde_json::to_string(&event) {
            Ok(json) => json,
            Err(err) => {
                tracing::error!(%err, "event does not serialise; dropped");
                continue;
            }
        };
        let mut backoff = BACKOFF_START;
        loop {
            match send(&pool, &channel, origin, &json).await {
                Ok(()) => break,
                Err(err) => {
                    tracing::warn!(%err, retry_in = ?backoff, "cannot publish event to PostgreSQL");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        if last_cleanup.elapsed() >= CLEANUP_EVERY {
            last_cleanup = Instant::now();
            let removed = sqlx::query(
                "DELETE FROM event_payloads WHERE created_at < now() - make_interval(secs => $1)",
            )
            .bind(PAYLOAD_RETENTION_SECS as f64)
            .execute(&pool)
            .await;
            if let Err(err) = removed {
                tracing::warn!(%err, "cannot remove old event payloads");
            }
        }
    }
}

async fn send(pool: &PgPool, channel: &str, origin: Uuid, json: &str) -> Result<(), StoreError> {
    let payload = if json.len() <= INLINE_LIMIT {
        encode_inline(origin, json)
    } else {
        let id: i64 =
            sqlx::query_scalar("INSERT INTO event_payloads (body) VALUES ($1) RETURNING id")
                .bind(json)
                .fetch_one(pool)
                .await
                .map_err(map_err)?;
        encode_stored(origin, id)
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(channel)
        .bind(payload)
        .execute(pool)
        .await
        .map_err(map_err)?;
    Ok(())
}

struct ListenLoop {
    pool: PgPool,
    listen_pool: PgPool,
    channel: String,
    origin: Uuid,
    local: BroadcastBus,
    reconnects: Arc<AtomicU64>,
    listener: Option<PgListener>,
}

/// Receives notifications for the life of the bus, reconnecting with
/// backoff whenever the connection is lost or cannot be re-established.
async fn listen_loop(mut state: ListenLoop) {
    let mut backoff = BACKOFF_START;
    loop {
        let mut listener = match state.listener.take() {
            Some(listener) => listener,
            None => match listen(&state.listen_pool, &state.channel).await {
                Ok(listener) => {
                    state.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("event listener reconnected to PostgreSQL");
                    backoff = BACKOFF_START;
                    listener
                }
                Err(err) => {
                    tracing::warn!(%err, retry_in = ?backoff, "event listener cannot reconnect");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => deliver(&state, &notification).await,
                // The connection dropped; sqlx re-listened on a new one.
                Ok(None) => {
                    state.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("event listener lost its connection; listening again");
                }
                Err(err) => {
                    tracing::warn!(%err, "event listener failed; reconnecting");
                    break;
                }
            }
        }
        drop(listener);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn deliver(state: &ListenLoop, notification: &PgNotification) {
    let Some((origin, payload)) = decode(notification.payload()) else {
        tracing::warn!(
            payload = notification.payload(),
            "ignoring a notification that is not a mediadl event"
        );
        return;
    };
    if origin == state.origin {
        return;
    }
    let json = match payload {
        Payload::Inline(json) => json.to_owned(),
        Payload::Stored(id) => {
            let body: Result<Option<String>, _> =
                sqlx::query_scalar("SELECT body FROM event_payloads WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&state.pool)
                    .await;
            match body {
                Ok(Some(body)) => body,
                Ok(None) => {
                    tracing::warn!(id, "stored event payload is gone; event skipped");
                    return;
                }
                Err(err) => {
                    tracing::warn!(%err, id, "cannot read stored event payload; event skipped");
                    return;
                }
            }
        }
    };
    match serde_json::from_str::<Event>(&json) {
        Ok(event) => state.local.send(event),
        Err(err) => tracing::warn!(%err, "ignoring an event that does not parse"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let origin = Uuid::new_v4();
        let inline = encode_inline(origin, r#"{"type":"log"}"#);
        assert_eq!(
            decode(&inline),
            Some((origin, Payload::Inline(r#"{"type":"log"}"#)))
        );
        let stored = encode_stored(origin, 42);
        assert_eq!(decode(&stored), Some((origin, Payload::Stored(42))));
        assert_eq!(decode("hello"), None);
        assert_eq!(decode(&format!("{origin}:x:1")), None);
        assert_eq!(decode(&format!("{origin}:r:abc")), None);
    }
}
