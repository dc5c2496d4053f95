//! The audit log: written in the same transaction as the change it records.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;

use crate::composed;
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreResult, direct_read};

/// An audit entry being prepared inside a store function.
#[derive(Debug)]
pub struct AuditDraft {
    pub actor: String,
    pub request_id: Option<String>,
    pub action: &'static str,
    pub entity: AuditEntity,
    pub entity_id: Option<i64>,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl AuditDraft {
    pub fn new(
        actor: &ChangeAuthor,
        action: &'static str,
        entity: AuditEntity,
        entity_id: Option<i64>,
    ) -> Self {
        Self {
            actor: actor.label.clone(),
            request_id: actor.request_id.clone(),
            action,
            entity,
            entity_id,
            before: None,
            after: None,
        }
    }

    pub fn before(mut self, state: &impl Serialize) -> Self {
        self.before = serde_json::to_string(state).ok();
        self
    }

    pub fn after(mut self, state: &impl Serialize) -> Self {
        self.after = serde_json::to_string(state).ok();
        self
    }
}

/// Inserts an [`AuditDraft`] through `$executor` (a transaction of either backend).
macro_rules! insert_audit {
    ($executor:expr, $draft:expr) => {{
        let draft: $crate::audit::AuditDraft = $draft;
        sqlx::query($crate::audit::INSERT_AUDIT)
            .bind(vigia_domain::Timestamp::now().millis())
            .bind(draft.actor)
            .bind(draft.action)
            .bind(draft.entity.as_str())
            .bind(draft.entity_id)
            .bind(draft.before)
            .bind(draft.after)
            .bind(draft.request_id)
            .execute($executor)
            .await?;
    }};
}
pub(crate) use insert_audit;

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, actor, action, entity, entity_id, before, after, request_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// [`insert_audit!`] on a SQLite connection inside a grouped write.
pub(crate) fn insert_audit_direct(
    conn: &crate::direct::Conn,
    draft: AuditDraft,
) -> StoreResult<()> {
    crate::direct::execute(
        conn,
        INSERT_AUDIT,
        &[
            &Timestamp::now().millis(),
            &draft.actor,
            &draft.action,
            &draft.entity.as_str(),
            &draft.entity_id,
            &draft.before,
            &draft.after,
            &draft.request_id,
        ],
    )?;
    Ok(())
}

/// One entry of the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<i64>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub request_id: Option<String>,
}

#[derive(FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    entity: String,
    entity_id: Option<i64>,
    before: Option<String>,
    after: Option<String>,
    request_id: Option<String>,
}

impl AuditRow {
    /// A row of the list's SELECT read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            at: row.get("at")?,
            actor: row.get("actor")?,
            action: row.get("action")?,
            entity: row.get("entity")?,
            entity_id: row.get("entity_id")?,
            before: row.get("before")?,
            after: row.get("after")?,
            request_id: row.get("request_id")?,
        })
    }
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        let json = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        Self {
            id: row.id,
            at: Timestamp::from_millis(row.at),
            actor: row.actor,
            action: row.action,
            entity: row.entity,
            entity_id: row.entity_id,
            before: json(row.before),
            after: json(row.after),
            request_id: row.request_id,
        }
    }
}

/// Filters of the audit log list; every one is optional.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub entity: Option<String>,
    pub entity_id: Option<i64>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// Audit entries matching `filter`, newest first.
pub async fn list(
    db: &Db,
    filter: &AuditFilter,
    before: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<AuditEntry>> {
    let mut sql = String::from(
        "SELECT id, at, actor, action, entity, entity_id, before, after, request_id FROM audit_log WHERE id < $1",
    );
    let mut n = 1;
    let mut clause = |sql: &mut String, text: &str| {
        n += 1;
        sql.push_str(&text.replace('?', &format!("${n}")));
    };
    if filter.actor.is_some() {
        clause(&mut sql, " AND actor = ?");
    }
    if filter.action.is_some() {
        clause(&mut sql, " AND action = ?");
    }
    if filter.entity.is_some() {
        clause(&mut sql, " AND entity = ?");
    }
    if filter.entity_id.is_some() {
        clause(&mut sql, " AND entity_id = ?");
    }
    if filter.since.is_some() {
        clause(&mut sql, " AND at >= ?");
    }
    if filter.until.is_some() {
        clause(&mut sql, " AND at < ?");
    }
    sql.push_str(" ORDER BY id DESC");
    sql.push_str(&crate::sql::limit(limit + 1));
    let before = before.map_or(i64::MAX, |c| c.0);
    // The arguments in the order of their placeholders: the texts, then the numbers.
    let texts: Vec<String> = [&filter.actor, &filter.action, &filter.entity]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let numbers: Vec<i64> = [
        filter.entity_id,
        filter.since.map(Timestamp::millis),
        filter.until.map(Timestamp::millis),
    ]
    .into_iter()
    .flatten()
    .collect();
    let rows: Vec<AuditRow> = direct_read!(db,
        sqlite: |conn| {
            let mut args: Vec<&dyn rusqlite::ToSql> = vec![&before as &dyn rusqlite::ToSql];
            args.extend(texts.iter().map(|t| t as &dyn rusqlite::ToSql));
            args.extend(numbers.iter().map(|n| n as &dyn rusqlite::ToSql));
            crate::direct::query(conn, &sql, &args, AuditRow::from_direct)
        },
        postgres: |pool| {
            let mut query = sqlx::query_as(composed(&sql)).bind(before);
            for text in &texts {
                query = query.bind(text);
            }
            for number in &numbers {
                query = query.bind(number);
            }
            Ok(query.fetch_all(pool).await?)
        },
    )?;
    Ok(Page::from_rows(
        rows.into_iter().map(AuditEntry::from).collect(),
        limit,
        |e| e.id,
    ))
}
