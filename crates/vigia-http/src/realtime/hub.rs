//! The hub: one reader task per node tails the event log, renders each event once, and offers
//! it to every connection: written straight into a WebSocket's socket (see [`super::socket`]),
//! or queued for an SSE connection's task. A connection that cannot take more (its pending
//! queue is full) is marked for closing as a slow consumer; nobody else waits for it.
//!
//! The fan-out of a batch of events runs in chunks of connections on the runtime's workers,
//! so every core writes; the next batch starts when the last chunk is done, which keeps each
//! connection's events in order.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_domain::auth::Principal;
use vigia_domain::detections::AlertScope;
use vigia_domain::ids::{DepartmentId, EventId, IncidentId, UserId};
use vigia_domain::incidents::{Audience, ReadScope, audience};
use vigia_store::Db;
use vigia_store::incidents::feed;
use vigia_store::transcodes::live::LiveVideoOf;

use super::RealtimeConfig;
use super::detections::Tally;
pub use super::metrics::RealtimeMetrics;
use super::protocol::{Frame, Rendered, Subject, Topics};
use super::socket::{Sent, Socket};
use super::videos::{VideoMessage, VideoWatch};

/// How many events the reader takes from the log per query.
const BATCH: usize = 512;
/// Connections per fan-out task.
const CHUNK: usize = 256;

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

/// Connections admitted, in all and per user.
#[derive(Default)]
struct Places {
    per_user: HashMap<String, usize>,
    total: usize,
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
    outlet: Outlet,
    queue_capacity: usize,
    /// Notified once when the connection must close: a slow consumer, or the server stopping
    /// (see [`Conn::closing`]).
    pub kill: Notify,
    closing: AtomicU8,
    /// Notified when the caller's standing may have changed (signed out, disabled, new role or
    /// departments, key revoked): the connection checks its credentials again at once.
    pub recheck: Notify,
}

/// Where a connection's live events go.
pub enum Outlet {
    /// Written into the WebSocket's socket by the hub itself.
    Socket(Arc<Socket>),
    /// Queued for the connection's task (SSE).
    Queue(mpsc::Sender<Frame>),
}

impl Outlet {
    /// A queue for the connection's task, and its receiving end.
    pub fn queue(capacity: usize) -> (Self, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Outlet::Queue(tx), rx)
    }

    /// Hands over a frame without waiting: taken (written or queued), refused because the
    /// connection is full, or the connection is gone.
    fn offer(&self, frame: &Frame) -> Offered {
        match self {
            Outlet::Socket(socket) => match socket.send(&frame.wire) {
                Sent::Written | Sent::Queued => Offered::Taken,
                Sent::Full => Offered::Full,
                Sent::Broken => Offered::Gone,
            },
            Outlet::Queue(tx) => match tx.try_send(frame.clone()) {
                Ok(()) => Offered::Taken,
                Err(mpsc::error::TrySendError::Full(_)) => Offered::Full,
                Err(mpsc::error::TrySendError::Closed(_)) => Offered::Gone,
            },
        }
    }
}

/// What became of a frame offered to a connection.
enum Offered {
    Taken,
    Full,
    Gone,
}

/// Who is watching, as visibility needs it; replaced when their credentials are checked again.
#[derive(Clone)]
pub struct Viewer {
    pub principal: Principal,
    pub scope: ReadScope,
    /// Whose alerts (and detection aggregates) it may see.
    pub alerts: AlertScope,
}

impl Viewer {
    pub fn of(principal: Principal) -> Self {
        Self {
            scope: ReadScope::of(&principal),
            alerts: AlertScope::of(&principal),
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

/// A place taken within the per-user and total limits, before the connection exists (a
/// WebSocket's socket only does once the upgrade completes); gives the place back when dropped.
pub struct Admission {
    hub: Hub,
    user_key: String,
    principal: Principal,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut places = self.hub.places.lock().unwrap_or_else(|e| e.into_inner());
        places.total -= 1;
        if let Some(count) = places.per_user.get_mut(&self.user_key) {
            *count -= 1;
            if *count == 0 {
                places.per_user.remove(&self.user_key);
            }
        }
    }
}

impl Admission {
    /// Registers the connection: from now on the hub offers it live events through `outlet`.
    pub fn register(self, outlet: Outlet) -> Registration {
        let hub = self.hub.clone();
        let conn = Arc::new(Conn {
            user: match &self.principal {
                Principal::User(user) => Some(user.user_id),
                Principal::ApiKey(_) => None,
            },
            state: Mutex::new(ConnState {
                viewer: Viewer::of(self.principal.clone()),
                topics: Topics::default(),
                replay_buffer: None,
                last_id: EventId(0),
            }),
            outlet,
            queue_capacity: hub.config.queue_capacity,
            kill: Notify::new(),
            closing: AtomicU8::new(0),
            recheck: Notify::new(),
        });
        let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut conns = hub.conns.write().unwrap_or_else(|e| e.into_inner());
            conns.insert(id, conn.clone());
            hub.generation.fetch_add(1, Ordering::Release);
        }
        hub.metrics.connections.inc();
        // Registered after the hub stopped (and told every connection so): close at once.
        if hub.stopping.is_cancelled() {
            conn.close(Closing::Shutdown);
        }
        Registration {
            id,
            conn,
            admission: self,
        }
    }
}

/// A registered connection; unregisters when dropped.
pub struct Registration {
    id: u64,
    pub conn: Arc<Conn>,
    admission: Admission,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let hub = &self.admission.hub;
        let removed = {
            let mut conns = hub.conns.write().unwrap_or_else(|e| e.into_inner());
            hub.generation.fetch_add(1, Ordering::Release);
            conns.remove(&self.id)
        };
        if removed.is_some() {
            hub.metrics.connections.dec();
        }
        // A fan-out still holding the connection in its list skips it from now on.
        self.conn.close(Closing::Ended);
        hub.left.notify_one();
    }
}

/// Why a connection must close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    SlowConsumer = 1,
    Shutdown = 2,
    /// The connection's task has ended.
    Ended = 3,
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
            3 => Some(Closing::Ended),
            _ => None,
        }
    }

    /// The frame of `event` this connection may receive, if any (visibility, then topics).
    pub fn frame_for<'a>(
        event: &'a Rendered,
        viewer: &Viewer,
        topics: &Topics,
    ) -> Option<&'a Frame> {
        if event.subject == Subject::Alert {
            // Alerts are seen by the staff of their subject's department and by admins.
            let department = event.facts.department.unwrap_or(DepartmentId(0));
            return (topics.alerts && viewer.alerts.admits(department)).then_some(&event.full);
        }
        if !topics.wants(event.subject, &event.facts) {
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

    /// Offers a live event: written or queued, buffered during a replay, or skipped; true when
    /// it was handed to the connection.
    fn offer(&self, event: &Rendered, metrics: &RealtimeMetrics) -> bool {
        if self.closing().is_some() {
            return false;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if event.id <= state.last_id {
            return false;
        }
        let Some(frame) = Conn::frame_for(event, &state.viewer, &state.topics) else {
            return false;
        };
        if let Some(buffer) = &mut state.replay_buffer {
            if buffer.len() >= self.queue_capacity {
                drop(state);
                self.kill(metrics);
            } else {
                buffer.push(frame.clone());
            }
            return false;
        }
        match self.outlet.offer(frame) {
            Offered::Taken => {
                state.last_id = event.id;
                true
            }
            Offered::Full => {
                drop(state);
                self.kill(metrics);
                false
            }
            Offered::Gone => false,
        }
    }

    /// Offers a `detections.tick` about `department` (not an event of the log: no id, not
    /// buffered during a replay); true when it was handed to the connection.
    fn offer_tick(
        &self,
        department: DepartmentId,
        frame: &Frame,
        metrics: &RealtimeMetrics,
    ) -> bool {
        if self.closing().is_some() {
            return false;
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !state.topics.detections
            || !state.viewer.alerts.admits(department)
            || state.replay_buffer.is_some()
        {
            return false;
        }
        match self.outlet.offer(frame) {
            Offered::Taken => true,
            Offered::Full => {
                drop(state);
                self.kill(metrics);
                false
            }
            Offered::Gone => false,
        }
    }

    /// Offers a `video.*` message (not an event of the log: no id, not buffered during a
    /// replay) to a connection subscribed to its incident or competition that may see it; true
    /// when it was handed to the connection.
    fn offer_video(&self, message: &VideoMessage, metrics: &RealtimeMetrics) -> bool {
        if self.closing().is_some() {
            return false;
        }
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.replay_buffer.is_some() || !sees_video(&state.viewer, &state.topics, message) {
            return false;
        }
        match self.outlet.offer(&message.frame) {
            Offered::Taken => true,
            Offered::Full => {
                drop(state);
                self.kill(metrics);
                false
            }
            Offered::Gone => false,
        }
    }

    /// Hands over a frame from the connection's own task (after a replay); false when full.
    pub fn enqueue(&self, frame: &Frame) -> bool {
        matches!(self.outlet.offer(frame), Offered::Taken)
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

    /// Takes a place for a connection of `principal`, within the per-user and total limits.
    pub fn admit(&self, principal: Principal) -> Result<Admission, Refused> {
        let user_key = principal.label();
        let mut places = self.places.lock().unwrap_or_else(|e| e.into_inner());
        let total = places.total;
        let count = places.per_user.entry(user_key.clone()).or_insert(0);
        if *count >= self.config.max_connections_per_user {
            self.metrics.rejected.inc();
            return Err(Refused::PerUser);
        }
        if total >= self.config.max_connections {
            self.metrics.rejected.inc();
            return Err(Refused::Total);
        }
        *count += 1;
        places.total += 1;
        Ok(Admission {
            hub: self.clone(),
            user_key,
            principal,
        })
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

    /// Offers `events`, in order, to every connection: chunks of connections run as tasks on
    /// the runtime's workers, and this returns when all of them are done.
    async fn fan_out(&self, events: &Arc<[Rendered]>, list: &mut FanOutList) {
        let generation = self.generation.load(Ordering::Acquire);
        if list.generation != Some(generation) {
            let conns = self.conns.read().unwrap_or_else(|e| e.into_inner());
            list.conns = conns.values().cloned().collect();
            list.generation = Some(self.generation.load(Ordering::Acquire));
        }
        let chunks = list.conns.len().div_ceil(CHUNK);
        if chunks <= 1 {
            let sent = offer_all(&list.conns, events, &self.metrics);
            self.metrics.sent.inc_by(sent);
            return;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..chunks {
            let (conns, events, metrics) =
                (list.conns.clone(), events.clone(), self.metrics.clone());
            tasks.spawn(async move {
                let end = ((n + 1) * CHUNK).min(conns.len());
                offer_all(&conns[n * CHUNK..end], &events, &metrics)
            });
        }
        while let Some(done) = tasks.join_next().await {
            if let Ok(sent) = done {
                self.metrics.sent.inc_by(sent);
            }
        }
    }
}

/// The connections the fan-out walks, rebuilt when one comes or goes.
#[derive(Default)]
struct FanOutList {
    generation: Option<u64>,
    conns: Arc<[Arc<Conn>]>,
}

/// Offers each event to each connection; the number of frames handed to socket writes (SSE
/// connections count theirs when their task writes them).
fn offer_all(conns: &[Arc<Conn>], events: &[Rendered], metrics: &RealtimeMetrics) -> u64 {
    let mut sent = 0;
    for conn in conns {
        let direct = matches!(conn.outlet, Outlet::Socket(_));
        for event in events {
            if conn.offer(event, metrics) && direct {
                sent += 1;
            }
        }
    }
    sent
}

/// Whether a connection with `topics` receives `message`: an attachment's like an event of its
/// incident that is not internal, an entry's by [`vigia_domain::competitions::may_see_entry`].
pub(crate) fn sees_video(viewer: &Viewer, topics: &Topics, message: &VideoMessage) -> bool {
    let video = &message.video;
    match video.of {
        LiveVideoOf::Attachment { incident, .. } => {
            topics.wants(Subject::Incident(IncidentId(incident)), &video.facts)
                && audience(&viewer.principal, &viewer.scope, video.facts, false)
                    != Audience::Hidden
        }
        LiveVideoOf::Entry { competition, .. } => {
            topics.wants_competition(competition)
                && vigia_domain::competitions::may_see_entry(
                    Some(&viewer.principal),
                    video.author.unwrap_or(UserId(0)),
                    video.status == "ready",
                )
        }
    }
}
