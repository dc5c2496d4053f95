//! The hub: one reader task per node tails the event log, renders each event once, and offers
//! it to every connection through a bounded queue. A connection whose queue is full is marked
//! for closing (slow consumer); nobody else waits for it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_domain::auth::Principal;
use vigia_domain::ids::{EventId, UserId};
use vigia_domain::incidents::{Audience, ReadScope, audience};
use vigia_store::Db;
use vigia_store::incidents::feed;

use super::RealtimeConfig;
use super::protocol::{Frame, Rendered, Topics};

/// How many events the reader takes from the log per query.
const BATCH: usize = 512;

/// Real-time metrics, registered in the server's registry.
#[derive(Clone)]
pub struct RealtimeMetrics {
    pub connections: Gauge,
    pub sent: Counter,
    pub dropped: Counter,
    pub slow_disconnects: Counter,
    pub rejected: Counter,
    pub lag: Histogram,
}

impl RealtimeMetrics {
    fn new(registry: &mut Registry) -> Self {
        let metrics = Self {
            connections: Gauge::default(),
            sent: Counter::default(),
            dropped: Counter::default(),
            slow_disconnects: Counter::default(),
            rejected: Counter::default(),
            lag: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
        };
        registry.register(
            "realtime_connections",
            "Open WebSocket and SSE connections",
            metrics.connections.clone(),
        );
        registry.register(
            "realtime_messages_sent",
            "Messages written to real-time connections",
            metrics.sent.clone(),
        );
        registry.register(
            "realtime_messages_dropped",
            "Messages not delivered because a connection's queue was full",
            metrics.dropped.clone(),
        );
        registry.register(
            "realtime_slow_consumer_disconnects",
            "Connections closed because they did not keep up",
            metrics.slow_disconnects.clone(),
        );
        registry.register(
            "realtime_connections_rejected",
            "Connections refused by the per-user or total limit",
            metrics.rejected.clone(),
        );
        registry.register(
            "realtime_fanout_lag_seconds",
            "Time from an event's commit to its fan-out by this node",
            metrics.lag.clone(),
        );
        metrics
    }
}

/// The node's real-time hub. Cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<HubInner>);

pub struct HubInner {
    pub(crate) db: Db,
    pub(crate) config: RealtimeConfig,
    pub(crate) metrics: RealtimeMetrics,
    conns: RwLock<HashMap<u64, Arc<Conn>>>,
    per_user: Mutex<HashMap<String, usize>>,
    next_id: AtomicU64,
    /// The newest event id offered to connections.
    cursor: AtomicI64,
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

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    PerUser,
    Total,
}

/// One connection as the hub sees it.
pub struct Conn {
    /// The user the connection was opened by (`None` for an API key); it never changes, only
    /// what they may see does.
    pub user: Option<UserId>,
    pub state: Mutex<ConnState>,
    tx: mpsc::Sender<Frame>,
    queue_capacity: usize,
    /// Notified once when the connection must close: a slow consumer, or the server stopping
    /// (see [`Conn::closing`]).
    pub kill: Notify,
    closing: AtomicU8,
    /// Notified when the caller's standing may have changed (signed out, disabled, new role or
    /// departments, key revoked): the connection checks its credentials again at once.
    pub recheck: Notify,
}

/// Who is watching, as visibility needs it; replaced when their credentials are checked again.
#[derive(Clone)]
pub struct Viewer {
    pub principal: Principal,
    pub scope: ReadScope,
}

impl Viewer {
    pub fn of(principal: Principal) -> Self {
        Self {
            scope: ReadScope::of(&principal),
            principal,
        }
    }
}

/// What a connection wants and where it stands; the hub and the connection's own task both
/// change it under the mutex, which is what makes replay-then-live gapless.
pub struct ConnState {
    pub viewer: Viewer,
    pub topics: Topics,
    /// While replaying missed events, live events wait here instead of in the queue.
    pub replay_buffer: Option<Vec<Frame>>,
    /// The newest event queued or written; older or equal ids are never sent again.
    pub last_id: EventId,
}

/// A registered connection; unregisters when dropped.
pub struct Registration {
    hub: Hub,
    id: u64,
    user_key: String,
    pub conn: Arc<Conn>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let removed = self
            .hub
            .conns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        if removed.is_some() {
            self.hub.metrics.connections.dec();
        }
        let mut per_user = self.hub.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = per_user.get_mut(&self.user_key) {
            *count -= 1;
            if *count == 0 {
                per_user.remove(&self.user_key);
            }
        }
    }
}

/// Why a connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    SlowConsumer = 1,
    Shutdown = 2,
}

impl Conn {
    /// Marks the connection as a slow consumer; its task closes it.
    pub fn kill(&self, metrics: &RealtimeMetrics) {
        if self.close(Closing::SlowConsumer) {
            metrics.slow_disconnects.inc();
        }
        metrics.dropped.inc();
    }

    /// Tells the connection's task to close for `why`, unless it was told already; true when
    /// this call did.
    fn close(&self, why: Closing) -> bool {
        let first = self
            .closing
            .compare_exchange(0, why as u8, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if first {
            self.kill.notify_one();
        }
        first
    }

    /// Why the connection must close, once it has been told to.
    pub fn closing(&self) -> Option<Closing> {
        match self.closing.load(Ordering::Acquire) {
            1 => Some(Closing::SlowConsumer),
            2 => Some(Closing::Shutdown),
            _ => None,
        }
    }

    /// The frame of `event` this connection may receive, if any (visibility, then topics).
    pub fn frame_for<'a>(
        event: &'a Rendered,
        viewer: &Viewer,
        topics: &Topics,
    ) -> Option<&'a Frame> {
        if !topics.wants(event.incident, &event.facts) {
            return None;
        }
        match audience(
            &viewer.principal,
            &viewer.scope,
            event.facts,
            event.internal,
        ) {
            Audience::Hidden => None,
            Audience::WithoutPeople => Some(&event.without_people),
            Audience::Full => Some(&event.full),
        }
    }

    /// Offers a live event: queued, buffered during a replay, or skipped.
    fn offer(&self, event: &Rendered, metrics: &RealtimeMetrics) {
        if self.closing().is_some() {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if event.id <= state.last_id {
            return;
        }
        let Some(frame) = Conn::frame_for(event, &state.viewer, &state.topics) else {
            return;
        };
        if let Some(buffer) = &mut state.replay_buffer {
            if buffer.len() >= self.queue_capacity {
                drop(state);
                self.kill(metrics);
            } else {
                buffer.push(frame.clone());
            }
            return;
        }
        match self.tx.try_send(frame.clone()) {
            Ok(()) => state.last_id = event.id,
            Err(mpsc::error::TrySendError::Full(_)) => {
                drop(state);
                self.kill(metrics);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    /// Queues a frame from the connection's own task (after a replay); false when full.
    pub fn enqueue(&self, frame: Frame) -> bool {
        self.tx.try_send(frame).is_ok()
    }
}

impl Hub {
    pub fn new(db: Db, config: RealtimeConfig, registry: &mut Registry) -> Self {
        Hub(Arc::new(HubInner {
            db,
            config,
            metrics: RealtimeMetrics::new(registry),
            conns: RwLock::new(HashMap::new()),
            per_user: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            cursor: AtomicI64::new(0),
            stopping: CancellationToken::new(),
        }))
    }

    /// Registers a connection of `principal`, within the per-user and total limits.
    pub fn register(
        &self,
        principal: Principal,
    ) -> Result<(Registration, mpsc::Receiver<Frame>), Refused> {
        let user_key = principal.label();
        {
            let mut per_user = self.per_user.lock().unwrap_or_else(|e| e.into_inner());
            let count = per_user.entry(user_key.clone()).or_insert(0);
            if *count >= self.config.max_connections_per_user {
                self.metrics.rejected.inc();
                return Err(Refused::PerUser);
            }
            if self.metrics.connections.get() >= self.config.max_connections as i64 {
                self.metrics.rejected.inc();
                return Err(Refused::Total);
            }
            *count += 1;
        }
        let (tx, rx) = mpsc::channel(self.config.queue_capacity);
        let conn = Arc::new(Conn {
            user: match &principal {
                Principal::User(user) => Some(user.user_id),
                Principal::ApiKey(_) => None,
            },
            state: Mutex::new(ConnState {
                viewer: Viewer::of(principal),
                topics: Topics::default(),
                replay_buffer: None,
                last_id: EventId(0),
            }),
            tx,
            queue_capacity: self.config.queue_capacity,
            kill: Notify::new(),
            closing: AtomicU8::new(0),
            recheck: Notify::new(),
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.conns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, conn.clone());
        self.metrics.connections.inc();
        // Registered after the hub stopped (and told every connection so): close at once.
        if self.stopping.is_cancelled() {
            conn.close(Closing::Shutdown);
        }
        Ok((
            Registration {
                hub: self.clone(),
                id,
                user_key,
                conn,
            },
            rx,
        ))
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
        let mut poll = tokio::time::interval(self.config.poll_interval);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wake.notified() => {}
                _ = poll.tick() => {}
            }
            self.db.settle_writes().await;
            loop {
                let batch = match feed::read_after(&self.db, cursor, BATCH).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        tracing::warn!(%error, "cannot read the event log");
                        break;
                    }
                };
                let full = batch.len() == BATCH;
                for item in &batch {
                    let event = Rendered::of(item);
                    self.fan_out(&event);
                    cursor = event.id;
                    self.cursor.store(cursor.0, Ordering::Release);
                    let lag = Timestamp::now().millis() - item.event.at.millis();
                    self.metrics.lag.observe(lag.max(0) as f64 / 1000.0);
                }
                if !full {
                    break;
                }
            }
        }
    }

    fn fan_out(&self, event: &Rendered) {
        let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
        for conn in conns.values() {
            conn.offer(event, &self.metrics);
        }
    }
}
