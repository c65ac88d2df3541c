//! `/ws/downloads`: the event stream. A client authenticates with
//! `?token=` (checked before the upgrade: a bad token fails the handshake
//! with 401) or with a first message `{"type":"auth","token":…}` (a bad
//! one closes with 4401). Each user may hold a limited number of
//! connections; a client that falls behind is dropped (close 4408) instead
//! of slowing the others; pings keep idle connections alive and find dead
//! ones. A client message larger than [`MAX_CLIENT_MESSAGE_BYTES`] ends the
//! connection, and an unauthenticated one has `AUTH_TIMEOUT` in all to
//! authenticate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use mediadl::BusMessage;
use mediadl::model::Event;
use serde::Deserialize;
use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::ws::{Message, WebSocket, Ws};
use warp::{Filter, Rejection, Reply};

use crate::auth::{AuthUser, user_for_token};
use crate::error::{ApiError, codes};
use crate::request::query;
use crate::state::AppState;

/// Close code: authentication missing or refused.
pub const CLOSE_UNAUTHORIZED: u16 = 4401;
/// Close code: too many connections for this user.
pub const CLOSE_TOO_MANY: u16 = 4429;
/// Close code: the client did not keep up with the events.
pub const CLOSE_TOO_SLOW: u16 = 4408;

/// Seconds a client has to send its auth message.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest message (and frame) a client may send. Clients only send the
/// auth message (a token of a few hundred bytes) and pings, so a larger
/// one, before authentication or after, closes the socket before its
/// payload is buffered.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024;
/// Interval of pings; a client silent for two intervals is dropped.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Longest a single send may take before the client counts as too slow.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// Open connections per user.
#[derive(Debug, Default)]
pub struct Connections {
    per_user: Mutex<HashMap<i64, u32>>,
}

/// Holds one connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct ConnectionSlot {
    connections: Arc<Connections>,
    user_id: i64,
}

impl Connections {
    /// Takes a slot for `user_id` unless `limit` are open.
    pub fn acquire(self: &Arc<Self>, user_id: i64, limit: u32) -> Option<ConnectionSlot> {
        let mut per_user = self.per_user.lock().expect("connections lock");
        let open = per_user.entry(user_id).or_insert(0);
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(ConnectionSlot {
            connections: Arc::clone(self),
            user_id,
        })
    }

    /// Open connections of every user together.
    pub fn total(&self) -> u32 {
        self.per_user
            .lock()
            .expect("connections lock")
            .values()
            .sum()
    }

    /// Open connections of `user_id`.
    pub fn open(&self, user_id: i64) -> u32 {
        self.per_user
            .lock()
            .expect("connections lock")
            .get(&user_id)
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut per_user = self.connections.per_user.lock().expect("connections lock");
        if let Some(open) = per_user.get_mut(&self.user_id) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                per_user.remove(&self.user_id);
            }
        }
    }
}

/// The text frame of the latest event. The bus hands every connection the
/// same `Arc<Event>`, so the first connection to forward an event
/// serialises it and the others send the same bytes (a frame's payload is
/// reference-counted): one serialisation per event, not one per client.
#[derive(Debug, Default)]
pub struct EventFrames {
    latest: Mutex<Option<(Arc<Event>, Message)>>,
}

impl EventFrames {
    /// The frame of `event`, serialised at most once while it is the latest.
    pub fn frame(&self, event: &Arc<Event>) -> Option<Message> {
        let mut latest = self.latest.lock().expect("event frames lock");
        if let Some((cached, frame)) = latest.as_ref()
            && Arc::ptr_eq(cached, event)
        {
            return Some(frame.clone());
        }
        let frame = Message::text(serde_json::to_string(&**event).ok()?);
        *latest = Some((Arc::clone(event), frame.clone()));
        Some(frame)
    }
}

#[derive(Debug, Deserialize)]
struct WsQuery {
    token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    token: Option<String>,
}

/// The `/ws/downloads` route.
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("ws" / "downloads")
        .and(warp::get())
        .and(warp::ws())
        .and(query::<WsQuery>())
        .and_then(move |ws: Ws, params: WsQuery| {
            let state = state.clone();
            async move { upgrade(ws, params, state).await.map_err(Rejection::from) }
        })
        .boxed()
}

async fn upgrade(ws: Ws, params: WsQuery, state: AppState) -> Result<Response, ApiError> {
    let ws = ws
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES);
    let limit = state.rate_limits.websocket_per_user;
    match params.token {
        Some(token) => {
            let user = user_for_token(&state, &token).await?;
            let slot = state.connections.acquire(user.id(), limit).ok_or_else(|| {
                ApiError::too_many(
                    codes::TOO_MANY_CONNECTIONS,
                    format!("at most {limit} WebSocket connections per user"),
                    5,
                )
            })?;
            Ok(ws
                .on_upgrade(move |socket| serve_authenticated(socket, state, user, slot))
                .into_response())
        }
        None => Ok(ws
            .on_upgrade(move |socket| serve_unauthenticated(socket, state))
            .into_response()),
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::close_with(code, reason)).await;
    let _ = socket.close().await;
}

/// Waits for `{"type":"auth","token":…}` first.
async fn serve_unauthenticated(mut socket: WebSocket, state: AppState) {
    let first = tokio::time::timeout(AUTH_TIMEOUT, socket.next()).await;
    let token = match first {
        Ok(Some(Ok(message))) if message.is_text() => message
            .to_str()
            .ok()
            .and_then(|text| serde_json::from_str::<ClientMessage>(text).ok())
            .filter(|message| message.kind == "auth")
            .and_then(|message| message.token),
        _ => None,
    };
    let Some(token) = token else {
        return close(socket, CLOSE_UNAUTHORIZED, "authentication required").await;
    };
    let user = match user_for_token(&state, &token).await {
        Ok(user) => user,
        Err(_) => return close(socket, CLOSE_UNAUTHORIZED, "invalid token").await,
    };
    let limit = state.rate_limits.websocket_per_user;
    let Some(slot) = state.connections.acquire(user.id(), limit) else {
        return close(socket, CLOSE_TOO_MANY, "too many connections").await;
    };
    let ack = ControlFrame::AuthOk { user_id: user.id() };
    if socket.send(ack.message()).await.is_err() {
        return;
    }
    serve_authenticated(socket, state, user, slot).await;
}

/// The frames the socket sends of its own (events come from [`EventFrames`]).
#[derive(Debug, serde::Serialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
enum ControlFrame {
    /// `{"type":"auth_ok","data":{"user_id":…}}`: the token was accepted.
    AuthOk {
        /// The signed-in user.
        user_id: i64,
    },
    /// `{"type":"pong"}`: the answer to a client's `ping`.
    Pong,
}

impl ControlFrame {
    fn message(&self) -> Message {
        Message::text(serde_json::to_string(self).unwrap_or_default())
    }
}

/// Forwards bus events until the client leaves, falls behind, goes silent,
/// or the server shuts down.
async fn serve_authenticated(
    socket: WebSocket,
    state: AppState,
    user: AuthUser,
    _slot: ConnectionSlot,
) {
    let mut events = state.events.subscribe();
    let (mut sink, mut incoming) = socket.split();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.tick().await;
    let mut silent_intervals = 0u32;
    tracing::debug!(target: "mediadl_server::ws", user = user.id(), "websocket connected");
    let close_with = loop {
        tokio::select! {
            () = state.shutdown.cancelled() => break Some((1001, "server shutting down")),
            message = events.next() => match message {
                Some(BusMessage::Event(event)) => {
                    let Some(frame) = state.event_frames.frame(&event) else { continue };
                    match tokio::time::timeout(SEND_TIMEOUT, sink.send(frame)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => break None,
                        Err(_) => break Some((CLOSE_TOO_SLOW, "client too slow")),
                    }
                }
                Some(BusMessage::Lagged(_)) => break Some((CLOSE_TOO_SLOW, "client too slow")),
                None => break Some((1011, "event bus closed")),
            },
            received = incoming.next() => match received {
                Some(Ok(message)) => {
                    silent_intervals = 0;
                    if message.is_close() {
                        break None;
                    }
                    if message.is_text()
                        && is_ping_request(&message)
                        && sink.send(ControlFrame::Pong.message()).await.is_err()
                    {
                        break None;
                    }
                }
                Some(Err(_)) | None => break None,
            },
            _ = ping.tick() => {
                silent_intervals += 1;
                if silent_intervals > 2 {
                    break Some((1001, "no pong"));
                }
                if sink.send(Message::ping(Vec::new())).await.is_err() {
                    break None;
                }
            }
        }
    };
    if let Some((code, reason)) = close_with {
        let _ =
            tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::close_with(code, reason))).await;
    }
    let _ = tokio::time::timeout(SEND_TIMEOUT, sink.close()).await;
    tracing::debug!(target: "mediadl_server::ws", user = user.id(), "websocket closed");
}

fn is_ping_request(message: &Message) -> bool {
    message
        .to_str()
        .ok()
        .and_then(|text| serde_json::from_str::<ClientMessage>(text).ok())
        .is_some_and(|message| message.kind == "ping")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_per_user_and_freed_on_drop() {
        let connections = Arc::new(Connections::default());
        let a = connections.acquire(1, 2).unwrap();
        let _b = connections.acquire(1, 2).unwrap();
        assert!(connections.acquire(1, 2).is_none());
        assert!(connections.acquire(2, 2).is_some());
        drop(a);
        assert_eq!(connections.open(1), 1);
        assert!(connections.acquire(1, 2).is_some());
    }

    fn log_event(message: &str) -> Arc<Event> {
        Arc::new(Event {
            timestamp: chrono::Utc::now(),
            kind: mediadl::model::EventKind::Log(mediadl::model::LogEvent {
                level: mediadl::model::LogLevel::Info,
                module: "Server".into(),
                message: message.into(),
                metadata: Default::default(),
            }),
        })
    }

    #[test]
    fn each_event_is_framed_once_and_shared() {
        let frames = EventFrames::default();
        let first = log_event("first");
        let framed = frames.frame(&first).unwrap();
        let text = framed.to_str().unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(text).unwrap(),
            serde_json::to_value(&*first).unwrap()
        );
        let again = frames.frame(&first).unwrap();
        assert_eq!(
            again.as_bytes().as_ptr(),
            framed.as_bytes().as_ptr(),
            "the second connection sends the same bytes"
        );
        let second = log_event("second");
        let next = frames.frame(&second).unwrap();
        assert_ne!(next.to_str().unwrap(), text);
    }
}
