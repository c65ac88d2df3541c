//! The event bus: how progress, queue changes, logs and notifications reach
//! WebSocket clients, notifiers and other processes.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::{BroadcastStream, errors::BroadcastStreamRecvError};

use crate::model::Event;

/// What a subscriber receives.
#[derive(Debug, Clone, PartialEq)]
pub enum BusMessage {
    /// The next event, shared by every subscriber.
    Event(Arc<Event>),
    /// The subscriber fell behind and this many events were dropped for it.
    Lagged(u64),
}

/// Publishes events to every subscriber.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait EventBus: Send + Sync + std::fmt::Debug {
    /// Never waits for subscribers: a slow subscriber loses events, the
    /// publisher never slows down.
    async fn publish(&self, event: Event);

    /// Events published from now on. A subscriber that falls behind gets a
    /// [`BusMessage::Lagged`] marker in place of what it missed.
    fn subscribe(&self) -> BoxStream<'static, BusMessage>;
}

/// The in-process bus: a `tokio::sync::broadcast` channel.
///
/// Clones share the channel. Each subscriber has its own window of the
/// bus's capacity; one that falls further behind receives
/// [`BusMessage::Lagged`] with the number of events it missed, then
/// continues with the newest.
///
/// ```
/// use futures::StreamExt;
/// use mediadl::model::{Event, EventKind, LogEvent, LogLevel};
/// use mediadl::{BroadcastBus, BusMessage, EventBus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bus = BroadcastBus::new(2);
/// let log = |message: &str| {
///     Event::now(EventKind::Log(LogEvent {
///         level: LogLevel::Info,
///         module: "example".into(),
///         message: message.into(),
///         metadata: Default::default(),
///     }))
/// };
///
/// let mut feed = bus.subscribe();
/// bus.publish(log("started")).await;
/// let Some(BusMessage::Event(event)) = feed.next().await else {
///     panic!("an event was published");
/// };
/// assert_eq!(event.type_name(), "log");
///
/// // Three more than the capacity of 2: the subscriber lagged by one.
/// for n in 0..3 {
///     bus.publish(log(&n.to_string())).await;
/// }
/// assert_eq!(feed.next().await, Some(BusMessage::Lagged(1)));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct BroadcastBus {
    sender: broadcast::Sender<Arc<Event>>,
}

impl BroadcastBus {
    /// A bus whose subscribers may fall `capacity` events behind before lagging.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// Publishes without `.await` (for synchronous callers such as a tracing layer).
    pub fn send(&self, event: Event) {
        // No subscribers is not an error: nobody is listening right now.
        let _ = self.sender.send(Arc::new(event));
    }
}

impl Default for BroadcastBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

#[async_trait]
impl EventBus for BroadcastBus {
    async fn publish(&self, event: Event) {
        self.send(event);
    }

    fn subscribe(&self) -> BoxStream<'static, BusMessage> {
        BroadcastStream::new(self.sender.subscribe())
            .map(|message| match message {
                Ok(event) => BusMessage::Event(event),
                Err(BroadcastStreamRecvError::Lagged(missed)) => BusMessage::Lagged(missed),
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventKind, LogEvent, LogLevel};

    fn log(message: &str) -> Event {
        Event::now(EventKind::Log(LogEvent {
            level: LogLevel::Info,
            module: "test".into(),
            message: message.into(),
            metadata: Default::default(),
        }))
    }

    #[tokio::test]
    async fn subscribers_receive_in_order_and_lag_is_reported() {
        let bus = BroadcastBus::new(2);
        let mut fast = bus.subscribe();
        bus.publish(log("one")).await;
        let BusMessage::Event(first) = fast.next().await.unwrap() else {
            panic!("expected event")
        };
        assert_eq!(first.type_name(), "log");

        let mut slow = bus.subscribe();
        for n in 0..5 {
            bus.publish(log(&n.to_string())).await;
        }
        assert_eq!(slow.next().await, Some(BusMessage::Lagged(3)));
    }

    #[test]
    fn events_serialize_with_the_spec_envelope() {
        let value = serde_json::to_value(log("hello")).unwrap();
        assert_eq!(value["type"], "log");
        assert_eq!(value["data"]["message"], "hello");
        assert!(value["timestamp"].is_string());
    }
}
