//! One connection as the hub sees it: who is watching and what they asked for
//! ([`ConnState`]), where its frames go ([`Outlet`]: the WebSocket's socket, or an SSE task's
//! bounded queue), and what it receives — an event only if its viewer may see it and its topics
//! want it, never twice or out of order. Backpressure: an offer never waits; a connection that
//! cannot take a frame is marked to close as a slow consumer.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};
use vigia_domain::auth::Principal;
use vigia_domain::detections::AlertScope;
use vigia_domain::ids::{DepartmentId, EventId, IncidentId, UserId};
use vigia_domain::incidents::{Audience, ReadScope, audience};
use vigia_store::transcodes::live::LiveVideoOf;

use crate::realtime::metrics::RealtimeMetrics;
use crate::realtime::protocol::{Frame, Rendered, Subject, Topics};
use crate::realtime::socket::{Sent, Socket};
use crate::realtime::videos::VideoMessage;

/// One connection as the hub sees it.
pub struct Conn {
    /// The user the connection was opened by (`None` for an API key); it never changes, only
    /// what they may see does.
    pub user: Option<UserId>,
    pub state: Mutex<ConnState>,
    pub(super) outlet: Outlet,
    pub(super) queue_capacity: usize,
    /// Notified once when the connection must close: a slow consumer, or the server stopping
    /// (see [`Conn::closing`]).
    pub kill: Notify,
    pub(super) closing: AtomicU8,
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
    pub(super) fn close(&self, why: Closing) -> bool {
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
    pub(super) fn offer(&self, event: &Rendered, metrics: &RealtimeMetrics) -> bool {
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
    pub(super) fn offer_tick(
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
    pub(super) fn offer_video(&self, message: &VideoMessage, metrics: &RealtimeMetrics) -> bool {
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
