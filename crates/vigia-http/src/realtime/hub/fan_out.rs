//! The fan-out of a batch of events: the list of connections (rebuilt when one comes or goes)
//! walked in chunks on the runtime's workers, so every core writes; the next batch starts when
//! the last chunk is done, which keeps each connection's events in order.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Hub;
use super::conn::{Conn, Outlet};
use crate::realtime::metrics::RealtimeMetrics;
use crate::realtime::protocol::Rendered;

/// Connections per fan-out task.
const CHUNK: usize = 256;

impl Hub {
    /// Offers `events`, in order, to every connection: chunks of connections run as tasks on
    /// the runtime's workers, and this returns when all of them are done.
    pub(super) async fn fan_out(&self, events: &Arc<[Rendered]>, list: &mut FanOutList) {
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
pub(super) struct FanOutList {
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
