//! Admission: a place within the per-user and total connection limits is taken before the
//! connection exists ([`Admission`]), becomes a registered connection the hub offers events to
//! ([`Registration`]), and is given back when either is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use vigia_domain::auth::Principal;
use vigia_domain::ids::EventId;

use super::Hub;
use super::conn::{Closing, Conn, ConnState, Outlet, Viewer};
use crate::realtime::protocol::Topics;

/// Connections admitted, in all and per user.
#[derive(Default)]
pub(super) struct Places {
    per_user: HashMap<String, usize>,
    total: usize,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    PerUser,
    Total,
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

impl Hub {
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
}
