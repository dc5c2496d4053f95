//! The real-time metrics (`vigia_realtime_*`), registered in the server's registry.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

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
    pub(super) fn new(registry: &mut Registry) -> Self {
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
