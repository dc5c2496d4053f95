//! Webhook endpoints registered by admins: URL, subscribed event types, signing secrets (several
//! during a rotation), and their standing (enabled, why disabled, consecutive failures).
//! Admin changes are audited in their transaction; secrets never appear in the audit log.

use serde::{Deserialize, Serialize};
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;

use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, direct, direct_read, grouped_write};

/// One signing secret (`whsec_...`). Expired secrets no longer sign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSecret {
    pub secret: String,
    /// Milliseconds since the epoch; `None` for the current secret.
    pub expires_at: Option<i64>,
}

/// A registered receiver of webhooks.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookEndpoint {
    pub id: i64,
    pub url: String,
    pub description: String,
    /// Message types (`incident.created`, ...) or `*` for every type.
    pub event_types: Vec<String>,
    #[serde(skip)]
    pub secrets: Vec<EndpointSecret>,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    pub failure_streak: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl WebhookEndpoint {
    /// The secrets that sign a delivery made at `now`: the current one and any rotated-out
    /// secret still within its grace period.
    pub fn active_secrets(&self, now: Timestamp) -> Vec<&str> {
        self.secrets
            .iter()
            .filter(|s| s.expires_at.is_none_or(|at| at > now.millis()))
            .map(|s| s.secret.as_str())
            .collect()
    }

    /// True when the endpoint wants messages of `message_type`. Proctoring results name
    /// people and carry face-verification verdicts: they leave only to endpoints that chose
    /// their type by name, never through `*`.
    pub fn subscribes_to(&self, message_type: &str) -> bool {
        let wildcard = !crate::exam_events::WEBHOOK_TYPES.contains(&message_type);
        self.event_types
            .iter()
            .any(|t| (wildcard && t == "*") || t == message_type)
    }
}

#[derive(FromRow)]
struct EndpointRow {
    id: i64,
    url: String,
    description: String,
    event_types: String,
    secrets: String,
    enabled: bool,
    disabled_reason: Option<String>,
    failure_streak: i64,
    created_at: i64,
    updated_at: i64,
}

impl From<EndpointRow> for WebhookEndpoint {
    fn from(row: EndpointRow) -> Self {
        Self {
            id: row.id,
            url: row.url,
            description: row.description,
            event_types: serde_json::from_str(&row.event_types).unwrap_or_default(),
            secrets: serde_json::from_str(&row.secrets).unwrap_or_default(),
            enabled: row.enabled,
            disabled_reason: row.disabled_reason,
            failure_streak: row.failure_streak,
            created_at: Timestamp::from_millis(row.created_at),
            updated_at: Timestamp::from_millis(row.updated_at),
        }
    }
}

/// The columns of [`EndpointRow`], as a literal for the statements below.
macro_rules! columns {
    () => {
        "id, url, description, event_types, secrets, enabled, disabled_reason, failure_streak, \
         created_at, updated_at"
    };
}

impl EndpointRow {
    /// A row of `columns!()` read on a direct SQLite connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            url: row.get("url")?,
            description: row.get("description")?,
            event_types: row.get("event_types")?,
            secrets: row.get("secrets")?,
            enabled: row.get("enabled")?,
            disabled_reason: row.get("disabled_reason")?,
            failure_streak: row.get("failure_streak")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
        })
    }
}

const INSERT: &str = concat!(
    "INSERT INTO webhook_endpoints (url, description, event_types, secrets, enabled, \
     failure_streak, created_at, updated_at) VALUES ($1, $2, $3, $4, TRUE, 0, $5, $5) RETURNING ",
    columns!()
);
const LIST: &str = concat!("SELECT ", columns!(), " FROM webhook_endpoints ORDER BY id");
const FIND: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM webhook_endpoints WHERE id = $1"
);
const ENABLED: &str = concat!(
    "SELECT ",
    columns!(),
    " FROM webhook_endpoints WHERE enabled ORDER BY id"
);
/// `$6`: the endpoint is being re-enabled (its streak and reason are cleared).
const UPDATE: &str = concat!(
    "UPDATE webhook_endpoints SET url = COALESCE($2, url), \
     description = COALESCE($3, description), event_types = COALESCE($4, event_types), \
     enabled = COALESCE($5, enabled), \
     disabled_reason = CASE WHEN $6 THEN NULL WHEN $5 = FALSE THEN 'disabled by an administrator' \
     ELSE disabled_reason END, \
     failure_streak = CASE WHEN $6 THEN 0 ELSE failure_streak END, updated_at = $7 \
     WHERE id = $1 RETURNING ",
    columns!()
);
const SET_SECRETS: &str = concat!(
    "UPDATE webhook_endpoints SET secrets = $2, updated_at = $3 WHERE id = $1 RETURNING ",
    columns!()
);
const DELETE: &str = "DELETE FROM webhook_endpoints WHERE id = $1";
/// A delivery succeeded: the failure streak starts over (run by
/// [`crate::notifications::record_attempt`] with the attempt it ends on).
pub(crate) const RECORD_SUCCESS: &str =
    "UPDATE webhook_endpoints SET failure_streak = 0 WHERE id = $1 AND failure_streak <> 0";
/// `$2` the streak that disables, `$3` a reason that disables at once, `$4` the streak's reason.
const RECORD_FAILURE: &str = "UPDATE webhook_endpoints SET failure_streak = failure_streak + 1, \
     enabled = CASE WHEN $3 IS NOT NULL OR failure_streak + 1 >= $2 THEN FALSE ELSE enabled END, \
     disabled_reason = CASE WHEN NOT enabled THEN disabled_reason \
         WHEN $3 IS NOT NULL THEN $3 \
         WHEN failure_streak + 1 >= $2 THEN $4 ELSE disabled_reason END, \
     updated_at = $5 \
     WHERE id = $1 RETURNING enabled";

fn find_direct(conn: &direct::Conn, id: i64) -> StoreResult<WebhookEndpoint> {
    direct::query_optional(conn, FIND, &[&id], EndpointRow::from_direct)?
        .map(WebhookEndpoint::from)
        .ok_or(StoreError::NotFound)
}

async fn find_postgres(
    executor: impl sqlx::PgExecutor<'_>,
    id: i64,
) -> StoreResult<WebhookEndpoint> {
    let row: Option<EndpointRow> = sqlx::query_as(FIND)
        .bind(id)
        .fetch_optional(executor)
        .await?;
    row.map(WebhookEndpoint::from).ok_or(StoreError::NotFound)
}

/// What an admin registers.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub secret: String,
}

/// A partial change; `None` keeps the value.
#[derive(Debug, Clone, Default)]
pub struct EndpointPatch {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    /// Re-enabling also clears the failure streak and the reason.
    pub enabled: Option<bool>,
}

fn json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(e.into()))
}

pub async fn create(
    db: &Db,
    new: &NewEndpoint,
    actor: &ChangeAuthor,
) -> StoreResult<WebhookEndpoint> {
    let now = Timestamp::now().millis();
    let secrets = vec![EndpointSecret {
        secret: new.secret.clone(),
        expires_at: None,
    }];
    let (event_types, secrets) = (json(&new.event_types)?, json(&secrets)?);
    let (url, description) = (new.url.clone(), new.description.clone());
    let actor = actor.clone();
    let audit = move |endpoint: &WebhookEndpoint| {
        AuditDraft::new(
            &actor,
            "webhook_endpoint.created",
            AuditEntity::WebhookEndpoint,
            Some(endpoint.id),
        )
        .after(endpoint)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let endpoint = direct::query_optional(
                conn,
                INSERT,
                &[&url, &description, &event_types, &secrets, &now],
                EndpointRow::from_direct,
            )?
            .map(WebhookEndpoint::from)
            .ok_or(StoreError::NotFound)?;
            insert_audit_direct(conn, audit(&endpoint))?;
            Ok(endpoint)
        },
        postgres: |tx| {
            let row: EndpointRow = sqlx::query_as(INSERT)
                .bind(&url)
                .bind(&description)
                .bind(&event_types)
                .bind(&secrets)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            let endpoint = WebhookEndpoint::from(row);
            insert_audit!(&mut *tx, audit(&endpoint));
            Ok(endpoint)
        },
    )
}

pub async fn list(db: &Db) -> StoreResult<Vec<WebhookEndpoint>> {
    let rows: Vec<EndpointRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, LIST, &[], EndpointRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(LIST).fetch_all(pool).await?),
    )?;
    Ok(rows.into_iter().map(WebhookEndpoint::from).collect())
}

pub async fn find(db: &Db, id: i64) -> StoreResult<WebhookEndpoint> {
    direct_read!(db,
        sqlite: |conn| find_direct(conn, id),
        postgres: |pool| find_postgres(pool, id).await,
    )
}

/// Enabled endpoints subscribed to `message_type`.
pub async fn subscribed(db: &Db, message_type: &str) -> StoreResult<Vec<WebhookEndpoint>> {
    let rows: Vec<EndpointRow> = direct_read!(db,
        sqlite: |conn| direct::query(conn, ENABLED, &[], EndpointRow::from_direct),
        postgres: |pool| Ok(sqlx::query_as(ENABLED).fetch_all(pool).await?),
    )?;
    Ok(rows
        .into_iter()
        .map(WebhookEndpoint::from)
        .filter(|e| e.subscribes_to(message_type))
        .collect())
}

/// Changes an endpoint, audited with before and after (read in the same transaction).
pub async fn update(
    db: &Db,
    id: i64,
    patch: &EndpointPatch,
    actor: &ChangeAuthor,
) -> StoreResult<WebhookEndpoint> {
    let now = Timestamp::now().millis();
    let event_types = patch.event_types.as_ref().map(json).transpose()?;
    let (patch, actor) = (patch.clone(), actor.clone());
    let audit = move |before: &WebhookEndpoint, after: &WebhookEndpoint| {
        AuditDraft::new(
            &actor,
            "webhook_endpoint.updated",
            AuditEntity::WebhookEndpoint,
            Some(id),
        )
        .before(before)
        .after(after)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_direct(conn, id)?;
            let reenable = patch.enabled == Some(true) && !before.enabled;
            let after = direct::query_optional(
                conn,
                UPDATE,
                &[
                    &id,
                    &patch.url,
                    &patch.description,
                    &event_types,
                    &patch.enabled,
                    &reenable,
                    &now,
                ],
                EndpointRow::from_direct,
            )?
            .map(WebhookEndpoint::from)
            .ok_or(StoreError::NotFound)?;
            insert_audit_direct(conn, audit(&before, &after))?;
            Ok(after)
        },
        postgres: |tx| {
            let before = find_postgres(&mut *tx, id).await?;
            let reenable = patch.enabled == Some(true) && !before.enabled;
            let row: EndpointRow = sqlx::query_as(UPDATE)
                .bind(id)
                .bind(&patch.url)
                .bind(&patch.description)
                .bind(&event_types)
                .bind(patch.enabled)
                .bind(reenable)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            let after = WebhookEndpoint::from(row);
            insert_audit!(&mut *tx, audit(&before, &after));
            Ok(after)
        },
    )
}

/// The secrets after a rotation at `now`: `new_secret` first, then the ones still signing,
/// each expiring by `old_expires_at` at the latest; expired ones are dropped.
fn rotated(
    current: &[EndpointSecret],
    new_secret: &str,
    old_expires_at: i64,
    now: i64,
) -> StoreResult<String> {
    let mut secrets: Vec<EndpointSecret> = current
        .iter()
        .filter(|s| s.expires_at.is_none_or(|at| at > now))
        .map(|s| EndpointSecret {
            secret: s.secret.clone(),
            expires_at: Some(
                s.expires_at
                    .map_or(old_expires_at, |at| at.min(old_expires_at)),
            ),
        })
        .collect();
    secrets.insert(
        0,
        EndpointSecret {
            secret: new_secret.to_owned(),
            expires_at: None,
        },
    );
    json(&secrets)
}

/// Replaces the current secret with `new_secret`; the previous current secret keeps signing
/// until `old_expires_at` so receivers can switch without losing messages. Older expired
/// secrets are dropped. The secrets rotated are read in the same transaction.
pub async fn rotate_secret(
    db: &Db,
    id: i64,
    new_secret: &str,
    old_expires_at: Timestamp,
    actor: &ChangeAuthor,
) -> StoreResult<WebhookEndpoint> {
    let now = Timestamp::now().millis();
    let (new_secret, old_expires_at) = (new_secret.to_owned(), old_expires_at.millis());
    let actor = actor.clone();
    let audit = move |after: &WebhookEndpoint| {
        AuditDraft::new(
            &actor,
            "webhook_endpoint.secret_rotated",
            AuditEntity::WebhookEndpoint,
            Some(id),
        )
        .after(after)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_direct(conn, id)?;
            let secrets = rotated(&before.secrets, &new_secret, old_expires_at, now)?;
            let after = direct::query_optional(
                conn,
                SET_SECRETS,
                &[&id, &secrets, &now],
                EndpointRow::from_direct,
            )?
            .map(WebhookEndpoint::from)
            .ok_or(StoreError::NotFound)?;
            insert_audit_direct(conn, audit(&after))?;
            Ok(after)
        },
        postgres: |tx| {
            let before = find_postgres(&mut *tx, id).await?;
            let secrets = rotated(&before.secrets, &new_secret, old_expires_at, now)?;
            let row: EndpointRow = sqlx::query_as(SET_SECRETS)
                .bind(id)
                .bind(&secrets)
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            let after = WebhookEndpoint::from(row);
            insert_audit!(&mut *tx, audit(&after));
            Ok(after)
        },
    )
}

/// Deletes an endpoint (audited with what it was, read in the same transaction).
pub async fn delete(db: &Db, id: i64, actor: &ChangeAuthor) -> StoreResult<()> {
    let actor = actor.clone();
    let audit = move |before: &WebhookEndpoint| {
        AuditDraft::new(
            &actor,
            "webhook_endpoint.deleted",
            AuditEntity::WebhookEndpoint,
            Some(id),
        )
        .before(before)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_direct(conn, id)?;
            direct::execute(conn, DELETE, &[&id])?;
            insert_audit_direct(conn, audit(&before))
        },
        postgres: |tx| {
            let before = find_postgres(&mut *tx, id).await?;
            sqlx::query(DELETE).bind(id).execute(&mut *tx).await?;
            insert_audit!(&mut *tx, audit(&before));
            Ok(())
        },
    )
}

/// A delivery attempt failed. Disables the endpoint when `disable_reason` is given (e.g. 410
/// Gone) or when the streak reaches `disable_after`. Returns true if the endpoint is now
/// disabled.
pub async fn record_failure(
    db: &Db,
    id: i64,
    disable_after: i64,
    disable_reason: Option<&str>,
) -> StoreResult<bool> {
    let streak_reason = format!("disabled after {disable_after} consecutive failed attempts");
    let now = Timestamp::now().millis();
    let disable_reason = disable_reason.map(str::to_owned);
    let enabled: Option<bool> = grouped_write!(db,
        sqlite: |conn| direct::query_optional(
            conn,
            RECORD_FAILURE,
            &[&id, &disable_after, &disable_reason, &streak_reason, &now],
            |r| r.get("enabled"),
        ),
        postgres: |tx| Ok(sqlx::query_scalar(RECORD_FAILURE)
            .bind(id)
            .bind(disable_after)
            .bind(&disable_reason)
            .bind(&streak_reason)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?),
    )?;
    Ok(enabled == Some(false))
}
