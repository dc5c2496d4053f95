//! Changes of a caller's standing (signed out, disabled, new role or departments, password
//! changed, key revoked) told to the other nodes of a cluster, so that each drops what it
//! cached about that caller and re-checks its open real-time connections at once.
//!
//! On PostgreSQL a change is a `NOTIFY` on [`CHANNEL`], sent by the node that committed it;
//! every node `LISTEN`s. SQLite has one node: there is no one to tell.

use std::time::Duration;

use vigia_domain::ids::UserId;

use crate::{Backend, Db, StoreResult};

/// The PostgreSQL notification channel of standing changes.
pub const CHANNEL: &str = "vigia_standing";

/// Whose standing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// One user's (their sessions, role, departments, account).
    User(UserId),
    /// Some session we cannot name cheaply (a reused refresh token revoked its family).
    AllSessions,
    /// Some API key's.
    Keys,
}

impl Change {
    /// The notification payload: the sending node, then the change.
    fn encode(self, node: u64) -> String {
        match self {
            Change::User(user) => format!("{node}:user:{user}"),
            Change::AllSessions => format!("{node}:sessions"),
            Change::Keys => format!("{node}:keys"),
        }
    }

    fn decode(payload: &str) -> Option<(u64, Change)> {
        let (node, change) = payload.split_once(':')?;
        let change = match change {
            "sessions" => Change::AllSessions,
            "keys" => Change::Keys,
            other => Change::User(UserId(other.strip_prefix("user:")?.parse().ok()?)),
        };
        Some((node.parse().ok()?, change))
    }
}

/// Tells the other nodes about `change`, made and committed through node `node`.
pub async fn announce(db: &Db, node: u64, change: Change) -> StoreResult<()> {
    if let Backend::Postgres { pool } = db.backend() {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(change.encode(node))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// On PostgreSQL, listens on [`CHANNEL`] and calls `on_change` with every change another node
/// announced, until the task is dropped; reconnects after failures. Whenever listening
/// (re)starts, changes may have been missed: `on_change` then gets both
/// [`Change::AllSessions`] and [`Change::Keys`]. Returns at once on SQLite.
pub async fn listen(db: Db, node: u64, on_change: impl Fn(Change) + Send) {
    let Backend::Postgres { pool } = db.backend() else {
        return;
    };
    // A listener keeps its connection: one of its own, not one of the pool's queries need.
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone());
    loop {
        let result: Result<(), sqlx::Error> = async {
            let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
            listener.listen(CHANNEL).await?;
            on_change(Change::AllSessions);
            on_change(Change::Keys);
            loop {
                let notification = listener.recv().await?;
                match Change::decode(notification.payload()) {
                    Some((from, _)) if from == node => {}
                    Some((_, change)) => on_change(change),
                    None => tracing::warn!(
                        payload = notification.payload(),
                        "unreadable standing change"
                    ),
                }
            }
        }
        .await;
        if let Err(error) = result {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(%error, "standing changes lost; listening again in 1 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_reads_back_as_written() {
        for change in [Change::User(UserId(42)), Change::AllSessions, Change::Keys] {
            assert_eq!(Change::decode(&change.encode(7)), Some((7, change)));
        }
        assert_eq!(Change::decode("7:user:x"), None);
        assert_eq!(Change::decode("nonsense"), None);
    }
}
