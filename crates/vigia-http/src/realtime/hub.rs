//! The hub: one reader task per node tails the event log, renders each event once, and offers
//! it to every connection: written straight into a WebSocket's socket (see [`super::socket`]),
//! or queued for an SSE connection's task. A connection that cannot take more (its pending
//! queue is full) is marked for closing as a slow consumer; nobody else waits for it.
//!
//! Here: the hub, its reader of the log and its per-second (`detections`) and video tasks.
//! [`admission`]: places within the connection limits, registration; [`conn`]: one connection,
//! what it may receive and its backpressure; [`fan_out`]: offering a batch of events to every
//! connection, in chunks on the runtime's workers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_domain::ids::{EventId, UserId};
use vigia_store::Db;
use vigia_store::incidents::feed;

use super::RealtimeConfig;
use super::detections::Tally;
pub use super::metrics::RealtimeMetrics;
use super::protocol::Rendered;
use super::videos::VideoWatch;

mod admission;
mod conn;
mod fan_out;

use admission::Places;
pub use admission::{Admission, Refused, Registration};
pub use conn::{Closing, Conn, ConnState, Outlet, Viewer};
use fan_out::FanOutList;

/// How many events the reader takes from the log per query.
const BATCH: usize = 512;

/// The node's real-time hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<HubInner>);

pub struct HubInner {
    pub(crate) db: Db,
    pub(crate) config: RealtimeConfig,
    pub(crate) metrics: RealtimeMetrics,
    conns: RwLock<HashMap<u64, Arc<Conn>>>,
    places: Mutex<Places>,
    next_id: AtomicU64,
    /// Bumped whenever a connection comes or goes: the fan-out's list of connections is
    /// rebuilt when it changed.
    generation: AtomicU64,
    /// Notified when a connection goes: the reader drops its fan-out list, whose reference to
    /// the connection would otherwise keep its socket (and descriptor) open until the next
    /// broadcast.
    left: Notify,
    /// The newest event id offered to connections.
    cursor: AtomicI64,
    /// Detections accepted by this node, published each second on `detections`.
    tally: Tally,
    /// Notified by the reader after each wake-up: the video task reads the videos' state.
    videos_wake: Notify,
    /// Cancelled when the server shuts down; every connection is then told to close with 1001
    /// (through its own [`Conn::kill`], not by waiting on this token: a token shared by every
    /// connection is one lock every connection takes each time it wakes to send).
    pub(crate) stopping: CancellationToken,
}

impl std::ops::Deref for Hub {
    type Target = HubInner;
    fn deref(&self) -> &HubInner {
        &self.0
    }
}

impl Hub {
    pub fn new(db: Db, config: RealtimeConfig, registry: &mut Registry, tally: Tally) -> Self {
        Hub(Arc::new(HubInner {
            tally,
            videos_wake: Notify::new(),
            db,
            config,
            metrics: RealtimeMetrics::new(registry),
            conns: RwLock::new(HashMap::new()),
            places: Mutex::new(Places::default()),
            next_id: AtomicU64::new(1),
            generation: AtomicU64::new(0),
            left: Notify::new(),
            cursor: AtomicI64::new(0),
            stopping: CancellationToken::new(),
        }))
    }

    /// Has every connection of `user` check its credentials again now.
    pub fn recheck_user(&self, user: UserId) {
        let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
        for conn in conns.values().filter(|c| c.user == Some(user)) {
            conn.recheck.notify_one();
        }
    }

    /// Has every connection check its credentials again now.
    pub fn recheck_all(&self) {
        let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
        for conn in conns.values() {
            conn.recheck.notify_one();
        }
    }

    /// The newest event id this node has offered to its connections.
    pub fn cursor(&self) -> EventId {
        EventId(self.cursor.load(Ordering::Acquire))
    }

    /// Starts the reader: from the current head of the log, woken by commits (and polling as a
    /// fallback), until `shutdown`. On PostgreSQL it also starts the LISTEN task.
    pub fn start(&self, shutdown: CancellationToken) {
        let listener = tokio::spawn(feed::listen(self.db.clone()));
        tokio::spawn(self.clone().ticks(shutdown.clone()));
        tokio::spawn(self.clone().videos(shutdown.clone()));
        let hub = self.clone();
        tokio::spawn(async move {
            hub.clone().run(shutdown).await;
            hub.stopping.cancel();
            let conns = hub.conns.read().unwrap_or_else(|e| e.into_inner());
            for conn in conns.values() {
                conn.close(Closing::Shutdown);
            }
            drop(conns);
            listener.abort();
        });
    }

    /// Every second, offers the detections counted since the last tick (see
    /// [`super::detections`]).
    async fn ticks(self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let frames = self.tally.take_frames(1);
            if frames.is_empty() {
                continue;
            }
            let conns: Vec<Arc<Conn>> = self
                .conns
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            let mut sent = 0;
            for (department, frame) in &frames {
                for conn in &conns {
                    sent += u64::from(conn.offer_tick(*department, frame, &self.metrics));
                }
            }
            self.metrics.sent.inc_by(sent);
        }
    }

    /// After each wake-up of the reader (at most four times a second), reads the videos'
    /// processing state and offers what changed (see [`super::videos`]).
    async fn videos(self, shutdown: CancellationToken) {
        let mut watch = VideoWatch::default();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.videos_wake.notified() => {}
            }
            match vigia_store::transcodes::live::read(&self.db, Timestamp::now()).await {
                Ok(read) => {
                    let messages = watch.changes(read);
                    if !messages.is_empty() {
                        let conns: Vec<Arc<Conn>> = self
                            .conns
                            .read()
                            .unwrap_or_else(|e| e.into_inner())
                            .values()
                            .cloned()
                            .collect();
                        let mut sent = 0;
                        for message in &messages {
                            for conn in &conns {
                                sent += u64::from(conn.offer_video(message, &self.metrics));
                            }
                        }
                        self.metrics.sent.inc_by(sent);
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot read the videos being processed"),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn run(self, shutdown: CancellationToken) {
        let mut cursor = loop {
            match feed::head(&self.db).await {
                Ok(head) => break head,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the event log head; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
        };
        self.cursor.store(cursor.0, Ordering::Release);
        let wake = self.db.events_committed().clone();
        let mut fan_out = FanOutList::default();
        let mut poll = tokio::time::interval(self.config.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wake.notified() => {}
                _ = poll.tick() => {}
                () = self.left.notified() => {
                    fan_out = FanOutList::default();
                    continue;
                }
            }
            self.db.settle_writes().await;
            self.videos_wake.notify_one();
            loop {
                let batch = match feed::read_after(&self.db, cursor, BATCH).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the event log");
                        break;
                    }
                };
                let full = batch.len() == BATCH;
                let Some(last) = batch.last() else {
                    break;
                };
                let last_id = last.id();
                let events: Arc<[Rendered]> = batch.iter().map(Rendered::of).collect();
                self.fan_out(&events, &mut fan_out).await;
                cursor = last_id;
                self.cursor.store(cursor.0, Ordering::Release);
                let now = Timestamp::now().millis();
                for item in &batch {
                    let lag = now - item.at().millis();
                    self.metrics.lag.observe(lag.max(0) as f64 / 1000.0);
                }
                if !full {
                    break;
                }
            }
        }
    }
}
