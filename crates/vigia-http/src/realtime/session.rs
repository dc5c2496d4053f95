//! One connection's task, shared by WebSocket and SSE: subscribe (replaying missed events from
//! the log, then going live with no gap and no duplicate), write what the hub could not hand
//! over at once, send heartbeats, answer pings, and close slow consumers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde_json::json;
use tokio::sync::futures::Notified;
use vigia_domain::Timestamp;
use vigia_domain::ids::EventId;
use vigia_store::incidents::feed;

use super::Credential;
use super::hub::{Closing, Conn, Hub, Registration, Viewer};
use super::protocol::{ClientMessage, Frame, Rendered, Topics, control, parse_event_id};
use crate::auth::Standing;

/// How long a closing connection's last frames (what was queued, then the close) may take to
/// reach the client: a slow consumer that resumes reading within it learns why it was cut off
/// (4008) instead of finding its stream ended.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Close code for a connection that did not keep up; it may reconnect with its last id.
pub const SLOW_CONSUMER: (u16, &str) = (4008, "slow consumer, reconnect with last id");
/// Close code for a client message over the size limit.
pub const TOO_BIG: (u16, &str) = (1009, "message too big");
/// Close code when the server cannot read the event log.
pub const SERVER_ERROR: (u16, &str) = (1011, "cannot read the event log, reconnect with last id");

/// Close code when the server shuts down.
pub const GOING_AWAY: (u16, &str) = (1001, "server shutting down, reconnect with last id");
/// Close code when the access token or API key expires while the connection is open.
pub const EXPIRED: (u16, &str) = (
    4001,
    "credentials expired, reconnect with a new token and your last id",
);
/// Close code when the caller signs out, is disabled, or their key is revoked.
pub const REVOKED: (u16, &str) = (4003, "credentials revoked");

/// Events read per query while replaying.
const REPLAY_BATCH: usize = 256;

/// Where frames go: a WebSocket or an SSE body.
pub trait Transport: Send {
    /// Completes when frames the hub handed over wait for this task to write them; false when
    /// the connection is gone. Cancel-safe: nothing is lost if it is dropped.
    fn backlog(&mut self) -> impl Future<Output = bool> + Send;
    /// Writes the frames [`Transport::backlog`] found; how many of them the hub has not counted
    /// as sent.
    fn drain(&mut self) -> impl Future<Output = Result<u64, ()>> + Send;
    /// Writes frames from the connection's own task, after everything handed over before.
    fn write(&mut self, frames: Vec<Frame>) -> impl Future<Output = Result<(), ()>> + Send;
    /// Tells the client why the connection ends, best effort.
    fn close(&mut self, code: u16, reason: &'static str) -> impl Future<Output = ()> + Send;
}

/// What a client sent (WebSocket only; SSE clients send nothing).
pub enum Incoming {
    Text(String),
    /// A message over the size limit.
    TooBig,
    /// A binary frame.
    Binary,
}

/// Why the loop ended.
enum Stop {
    /// The client went away.
    Gone,
    Slow,
    TooBig,
    ServerError,
    Shutdown,
    Expired,
    Revoked,
}

/// A subscription request.
pub struct Subscribe {
    pub topics: Topics,
    pub last_event_id: Option<EventId>,
}

/// Runs a connection until the client leaves, is too slow, or the server stops.
pub async fn run<T: Transport, S: Stream<Item = Incoming> + Unpin + Send>(
    hub: Hub,
    registration: Registration,
    mut transport: T,
    mut incoming: S,
    initial: Option<Subscribe>,
    mut credential: Credential,
) {
    let conn = registration.conn.clone();
    // A standing forgotten between the credential's check and the registration asked no one
    // to re-check this connection, which was not registered yet: it checks now.
    if credential.outdated() {
        conn.recheck.notify_one();
    }
    let mut session = Session {
        hub: &hub,
        conn: &conn,
        transport: &mut transport,
        next_check: tokio::time::Instant::now(),
        credential: &mut credential,
        kill: Box::pin(conn.kill.notified()),
    };
    session.schedule_check();
    let mut stop = None;
    if let Some(subscribe) = initial
        && let Err(s) = session.subscribe(subscribe).await
    {
        stop = Some(s);
    }
    let period = hub.config.heartbeat;
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The timer and the wake-ups live as long as the connection: made afresh on every turn of
    // the loop, each would register (and unregister) a waiter per message sent — on the
    // shutdown token, one list shared by every connection.
    let check = tokio::time::sleep_until(session.next_check);
    tokio::pin!(check);
    let recheck = conn.recheck.notified();
    tokio::pin!(recheck);
    let stop = match stop {
        Some(stop) => stop,
        None => loop {
            if check.deadline() != session.next_check {
                check.as_mut().reset(session.next_check);
            }
            tokio::select! {
                biased;
                () = session.kill.as_mut() => break closing(&conn),
                () = &mut recheck => {
                    recheck.set(conn.recheck.notified());
                    if let Err(s) = session.recheck().await {
                        break s;
                    }
                }
                () = &mut check => {
                    if let Err(s) = session.recheck().await {
                        break s;
                    }
                }
                open = session.transport.backlog() => {
                    if !open {
                        break Stop::Gone;
                    }
                    match session.drain().await {
                        Ok(n) => {
                            hub.metrics.sent.inc_by(n);
                        }
                        Err(s) => break s,
                    }
                }
                message = incoming.next() => {
                    let result = match message {
                        None => Err(Stop::Gone),
                        Some(Incoming::TooBig) => Err(Stop::TooBig),
                        Some(Incoming::Binary) => session.error("send JSON text messages").await,
                        Some(Incoming::Text(text)) => session.handle(&text).await,
                    };
                    if let Err(s) = result {
                        break s;
                    }
                }
                _ = heartbeat.tick() => {
                    if let Err(s) = session.write(vec![control("heartbeat", None)]).await {
                        break s;
                    }
                }
            }
        },
    };
    drop(session);
    drop(registration);
    let (code, reason) = match stop {
        Stop::Gone => return,
        Stop::Slow => SLOW_CONSUMER,
        Stop::TooBig => TOO_BIG,
        Stop::ServerError => SERVER_ERROR,
        Stop::Shutdown => GOING_AWAY,
        Stop::Expired => EXPIRED,
        Stop::Revoked => REVOKED,
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, transport.close(code, reason)).await;
}

/// Why the hub told `conn` to close (once its `kill` has completed).
fn closing(conn: &Conn) -> Stop {
    match conn.closing() {
        Some(Closing::Shutdown) => Stop::Shutdown,
        _ => Stop::Slow,
    }
}

/// Runs a write to the transport, giving up as soon as the hub tells the connection to close.
async fn unless_killed<R>(
    kill: &mut Pin<Box<Notified<'_>>>,
    conn: &Conn,
    work: impl Future<Output = Result<R, ()>>,
) -> Result<R, Stop> {
    tokio::select! {
        biased;
        () = kill.as_mut() => Err(closing(conn)),
        result = work => result.map_err(|()| Stop::Gone),
    }
}

struct Session<'a, T> {
    hub: &'a Hub,
    conn: &'a Arc<Conn>,
    transport: &'a mut T,
    credential: &'a mut Credential,
    /// When the credential is checked again: the periodic check or its expiry, if sooner.
    next_check: tokio::time::Instant,
    /// Completes when the hub tells the connection to close (slow consumer or shutdown).
    kill: Pin<Box<Notified<'a>>>,
}

impl<T: Transport> Session<'_, T> {
    fn schedule_check(&mut self) {
        // Up to a tenth earlier, so connections opened together do not all check at once.
        let mut wait = self
            .hub
            .config
            .auth_recheck
            .mul_f64(1.0 - rand::random::<f64>() / 10.0);
        if let Some(expires) = self.credential.authenticated.expires_at {
            let left = expires.millis() - Timestamp::now().millis();
            wait = wait.min(Duration::from_millis(left.max(0) as u64));
        }
        self.next_check = tokio::time::Instant::now() + wait;
    }

    /// Makes the checked credential's caller the one whose visibility applies from now on, and
    /// schedules its next check.
    fn apply_credential(&mut self) {
        self.state().viewer = Viewer::of(self.credential.principal().clone());
        self.schedule_check();
    }

    /// Checks the credential again: closes on expiry or revocation, otherwise applies the
    /// caller's current role and departments to what they receive from now on.
    async fn recheck(&mut self) -> Result<(), Stop> {
        match self.credential.recheck().await {
            Standing::Valid(_) => {
                self.apply_credential();
                Ok(())
            }
            Standing::Expired => Err(Stop::Expired),
            Standing::Revoked => Err(Stop::Revoked),
        }
    }

    /// A fresh token for the same caller, sent before the current one expires.
    async fn authenticate(&mut self, token: &str) -> Result<(), Stop> {
        match self.credential.replace(token).await {
            Ok(()) => {
                self.apply_credential();
                let expires_at = self.credential.authenticated.expires_at;
                self.write(vec![control(
                    "authenticated",
                    Some(json!({ "expires_at": expires_at })),
                )])
                .await
            }
            Err(detail) => self.error(detail).await,
        }
    }
    /// Writes frames, giving up as soon as the hub tells the connection to close.
    async fn write(&mut self, frames: Vec<Frame>) -> Result<(), Stop> {
        unless_killed(&mut self.kill, self.conn, self.transport.write(frames)).await
    }

    /// Writes what the hub handed over, giving up as soon as the hub tells the connection to
    /// close; how many frames the hub had not counted.
    async fn drain(&mut self) -> Result<u64, Stop> {
        unless_killed(&mut self.kill, self.conn, self.transport.drain()).await
    }

    async fn error(&mut self, detail: &str) -> Result<(), Stop> {
        self.write(vec![control("error", Some(json!({ "detail": detail })))])
            .await
    }

    async fn handle(&mut self, text: &str) -> Result<(), Stop> {
        let message = match serde_json::from_str::<ClientMessage>(text) {
            Ok(message) => message,
            Err(error) => {
                let detail = format!(
                    "cannot read the message ({error}): send {{\"type\":\"subscribe\",\"topics\":[\"incidents\"]}}, \
                     {{\"type\":\"unsubscribe\",\"topics\":[...]}}, {{\"type\":\"authenticate\",\"token\":\"...\"}} \
                     or {{\"type\":\"ping\"}}"
                );
                return self.error(&detail).await;
            }
        };
        match message {
            ClientMessage::Ping => self.write(vec![control("pong", None)]).await,
            ClientMessage::Authenticate { token } => self.authenticate(&token).await,
            ClientMessage::Subscribe {
                topics,
                last_event_id,
            } => {
                let topics = match Topics::parse(&topics) {
                    Ok(topics) => topics,
                    Err(detail) => return self.error(&detail).await,
                };
                let last_event_id = match last_event_id.filter(|v| !v.is_null()) {
                    None => None,
                    Some(raw) => match parse_event_id(&raw) {
                        Some(id) => Some(id),
                        None => {
                            return self
                                .error("last_event_id must be an event id such as \"1234\"")
                                .await;
                        }
                    },
                };
                self.subscribe(Subscribe {
                    topics,
                    last_event_id,
                })
                .await
            }
            ClientMessage::Unsubscribe { topics } => {
                let result = {
                    let mut state = self.state();
                    let removed = state.topics.remove(&topics);
                    removed.map(|()| state.topics.names())
                };
                match result {
                    Err(detail) => self.error(&detail).await,
                    Ok(names) => {
                        self.write(vec![control(
                            "subscribed",
                            Some(json!({ "topics": names })),
                        )])
                        .await
                    }
                }
            }
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, super::hub::ConnState> {
        self.conn.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the topics; with a last event id, replays what was missed before going live.
    async fn subscribe(&mut self, subscribe: Subscribe) -> Result<(), Stop> {
        let names = subscribe.topics.names();
        let Some(last) = subscribe.last_event_id else {
            // Live from now: what was committed before the subscription is not sent, even if
            // the hub has not fanned it out yet.
            let head = feed::head(&self.hub.db)
                .await
                .map_err(|_| Stop::ServerError)?;
            {
                let mut state = self.state();
                state.topics = subscribe.topics;
                state.last_id = state.last_id.max(head);
            }
            return self
                .write(vec![control(
                    "subscribed",
                    Some(json!({ "topics": names })),
                )])
                .await;
        };
        let first_missed = feed::first_after(&self.hub.db, last)
            .await
            .map_err(|_| Stop::ServerError)?;
        let window_start =
            Timestamp::now().millis() - self.hub.config.replay_window.as_millis() as i64;
        if let Some((_, at)) = first_missed
            && at.millis() < window_start
        {
            {
                let mut state = self.state();
                state.topics = subscribe.topics;
                state.last_id = state.last_id.max(self.hub.cursor());
            }
            let window = self.hub.config.replay_window.as_secs();
            return self
                .write(vec![
                    control(
                        "resync_required",
                        Some(json!({
                            "last_event_id": last.0.to_string(),
                            "detail": format!(
                                "events after {last} are older than the replay window ({window} s): \
                                 reload the state over the REST API; live messages follow"
                            ),
                        })),
                    ),
                    control("subscribed", Some(json!({ "topics": names }))),
                ])
                .await;
        }
        let mut cursor = {
            let mut state = self.state();
            state.topics = subscribe.topics.clone();
            state.replay_buffer = Some(Vec::new());
            last.max(state.last_id)
        };
        self.write(vec![control(
            "subscribed",
            Some(json!({ "topics": names, "replay_from": last.0.to_string() })),
        )])
        .await?;
        let conn = self.conn.clone();
        loop {
            let batch = feed::read_after(&self.hub.db, cursor, REPLAY_BATCH)
                .await
                .map_err(|_| Stop::ServerError)?;
            let full = batch.len() == REPLAY_BATCH;
            let mut frames = Vec::new();
            let viewer = self.state().viewer.clone();
            for item in &batch {
                let event = Rendered::of(item);
                if let Some(frame) = Conn::frame_for(&event, &viewer, &subscribe.topics) {
                    frames.push(frame.clone());
                }
                cursor = event.id;
            }
            let n = frames.len() as u64;
            self.write(frames).await?;
            self.hub.metrics.sent.inc_by(n);
            if !full {
                break;
            }
        }
        let mut state = self.state();
        let buffered = state.replay_buffer.take().unwrap_or_default();
        state.last_id = state.last_id.max(cursor);
        for frame in buffered {
            if frame.id.is_some_and(|id| id > state.last_id) {
                let id = frame.id;
                if !conn.enqueue(&frame) {
                    drop(state);
                    conn.kill(&self.hub.metrics);
                    return Err(Stop::Slow);
                }
                if let Some(id) = id {
                    state.last_id = id;
                }
            }
        }
        Ok(())
    }
}
