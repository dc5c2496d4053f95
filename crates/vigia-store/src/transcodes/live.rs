//! Videos whose processing may be news to the real-time hub: every row still `queued` or
//! `processing`, and those that changed within [`RECENT`] (a `ready` or `failed` the hub has
//! not seen yet), attachments with their incident's visibility facts, competition entries with
//! their author. The hub compares each read with the previous one and sends what changed; the
//! rows are the durable state, the messages only a view of them (see `docs/realtime.md`).

use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, UserId};
use vigia_domain::incidents::IncidentFacts;

use crate::{Db, StoreResult, direct, direct_read};

/// How far back a finished video is still read: longer than any clock skew between nodes
/// and any pause of a node's hub.
pub const RECENT: i64 = 5 * 60 * 1000;

/// Which video, and what its visibility depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LiveVideoOf {
    /// An incident attachment (`incident`, `attachment`).
    Attachment { incident: i64, attachment: i64 },
    /// A competition entry (`competition`, `entry`).
    Entry { competition: i64, entry: i64 },
}

/// One video's processing state as the hub reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveVideo {
    pub of: LiveVideoOf,
    /// `queued`, `processing`, `ready`, `failed`.
    pub status: String,
    pub reason: Option<String>,
    /// 0.0–1.0.
    pub progress: f64,
    /// An attachment's incident facts (who may see it).
    pub facts: IncidentFacts,
    /// An entry's author.
    pub author: Option<UserId>,
}

#[derive(FromRow)]
struct Row {
    kind: String,
    parent: i64,
    id: i64,
    status: String,
    reason: Option<String>,
    progress: f64,
    department_id: Option<i64>,
    reporter_id: Option<i64>,
    visibility: Option<String>,
    author: Option<i64>,
}

impl Row {
    /// A row of [`SQL`] read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            kind: row.get("kind")?,
            parent: row.get("parent")?,
            id: row.get("id")?,
            status: row.get("status")?,
            reason: row.get("reason")?,
            progress: row.get("progress")?,
            department_id: row.get("department_id")?,
            reporter_id: row.get("reporter_id")?,
            visibility: row.get("visibility")?,
            author: row.get("author")?,
        })
    }
}

const SQL: &str = "SELECT 'attachment' AS kind, t.incident_id AS parent, t.attachment_id AS id, \
     t.status, t.reason, t.progress, i.department_id, i.reporter_id, i.visibility, \
     CAST(NULL AS BIGINT) AS author \
     FROM media_transcodes t JOIN incidents i ON i.id = t.incident_id \
     WHERE t.status IN ('queued', 'processing') OR t.updated_at > $1 \
     UNION ALL \
     SELECT 'entry' AS kind, e.competition_id AS parent, e.id AS id, e.status, e.reason, \
     e.progress, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS TEXT), e.user_id \
     FROM competition_entries e \
     WHERE NOT e.uploading AND (e.status IN ('queued', 'processing') OR e.updated_at > $1)";

/// Videos not finished, or finished within [`RECENT`] of `now`.
pub async fn read(db: &Db, now: Timestamp) -> StoreResult<Vec<LiveVideo>> {
    let since = now.millis() - RECENT;
    let rows: Vec<Row> = direct_read!(db,
        sqlite: |conn| direct::query(conn, SQL, &[&since], Row::from_direct),
        postgres: |pool| Ok(sqlx::query_as(SQL).bind(since).fetch_all(pool).await?),
    )?;
    Ok(rows
        .into_iter()
        .map(|row| LiveVideo {
            of: if row.kind == "entry" {
                LiveVideoOf::Entry {
                    competition: row.parent,
                    entry: row.id,
                }
            } else {
                LiveVideoOf::Attachment {
                    incident: row.parent,
                    attachment: row.id,
                }
            },
            status: row.status,
            reason: row.reason,
            progress: row.progress,
            facts: IncidentFacts {
                department: row.department_id.map(DepartmentId),
                reporter: row.reporter_id.map(UserId),
                public: row.visibility.as_deref() == Some("public"),
            },
            author: row.author.map(UserId),
        })
        .collect())
}
