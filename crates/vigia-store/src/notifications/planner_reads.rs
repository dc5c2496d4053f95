//! What the notification planner reads besides the log: an incident's summary, a department's
//! addresses, who opted in to status changes, and the account (language, role, departments)
//! behind an address. Read without a caller scope: only the planner uses these, never a
//! request handler.

use serde::Serialize;
use sqlx::FromRow;

use crate::{Db, StoreError, StoreResult, direct, direct_read};

/// What a notification says about an incident. Read without a caller scope: only the
/// notification planner uses it, never a request handler.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct IncidentBrief {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub status: String,
    pub urgency: String,
    pub department_id: Option<i64>,
    pub department_name: Option<String>,
    pub category_es: String,
    pub category_en: String,
    pub location_text: Option<String>,
    pub reporter_id: Option<i64>,
    pub visibility: String,
    pub created_at: i64,
}

const INCIDENT_BRIEF: &str = "SELECT i.id, i.title, i.description, i.status, i.urgency, i.department_id, \
     d.name AS department_name, c.name_es AS category_es, c.name_en AS category_en, \
     i.location_text, i.reporter_id, i.visibility, i.created_at \
     FROM incidents i JOIN categories c ON c.id = i.category_id \
     LEFT JOIN departments d ON d.id = i.department_id WHERE i.id = $1";

impl IncidentBrief {
    /// A row of [`INCIDENT_BRIEF`] read on a direct connection.
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get("id")?,
            title: row.get("title")?,
            description: row.get("description")?,
            status: row.get("status")?,
            urgency: row.get("urgency")?,
            department_id: row.get("department_id")?,
            department_name: row.get("department_name")?,
            category_es: row.get("category_es")?,
            category_en: row.get("category_en")?,
            location_text: row.get("location_text")?,
            reporter_id: row.get("reporter_id")?,
            visibility: row.get("visibility")?,
            created_at: row.get("created_at")?,
        })
    }
}

/// Hot: every `event.dispatch` job reads its incident here.
pub async fn incident_brief(db: &Db, incident_id: i64) -> StoreResult<IncidentBrief> {
    let row: Option<IncidentBrief> = crate::direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, INCIDENT_BRIEF, &[&incident_id], IncidentBrief::from_direct),
        postgres: |pool| Ok(sqlx::query_as(INCIDENT_BRIEF)
            .bind(incident_id)
            .fetch_optional(pool)
            .await?),
    )?;
    row.ok_or(StoreError::NotFound)
}

/// A department's addresses for notifications.
#[derive(Debug, Clone)]
pub struct DepartmentContacts {
    pub name: String,
    pub contact_emails: Vec<String>,
    pub escalation_emails: Vec<String>,
}

pub async fn department_contacts(db: &Db, department_id: i64) -> StoreResult<DepartmentContacts> {
    let sql = "SELECT name, contact_emails, escalation_emails FROM departments WHERE id = $1";
    let row: Option<(String, String, String)> = crate::direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, sql, &[&department_id], |r| {
            Ok((r.get("name")?, r.get("contact_emails")?, r.get("escalation_emails")?))
        }),
        postgres: |pool| Ok(sqlx::query_as(sql)
            .bind(department_id)
            .fetch_optional(pool)
            .await?),
    )?;
    let (name, contacts, escalation) = row.ok_or(StoreError::NotFound)?;
    Ok(DepartmentContacts {
        name,
        contact_emails: serde_json::from_str(&contacts).unwrap_or_default(),
        escalation_emails: serde_json::from_str(&escalation).unwrap_or_default(),
    })
}

/// A user who asked to hear about status changes: their address and language, if they are
/// enabled and opted in.
pub async fn status_change_subscriber(
    db: &Db,
    user_id: i64,
) -> StoreResult<Option<(String, String)>> {
    const SUBSCRIBER: &str =
        "SELECT email, locale FROM users WHERE id = $1 AND notify_status_changes AND NOT disabled";
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, SUBSCRIBER, &[&user_id], |r| {
            Ok((r.get("email")?, r.get("locale")?))
        }),
        postgres: |pool| Ok(sqlx::query_as(SUBSCRIBER)
            .bind(user_id)
            .fetch_optional(pool)
            .await?),
    )
}

/// The language of the account with this address (`es` or `en`), if there is one.
pub async fn locale_of_email(db: &Db, email: &str) -> StoreResult<Option<String>> {
    const LOCALE: &str = "SELECT locale FROM users WHERE LOWER(email) = LOWER($1)";
    let email = email.to_owned();
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, LOCALE, &[&email], |r| r.get("locale")),
        postgres: |pool| Ok(sqlx::query_scalar(LOCALE)
            .bind(&email)
            .fetch_optional(pool)
            .await?),
    )
}

/// The account behind an address, as far as who may receive what cares.
#[derive(Debug, Clone)]
pub struct AddressAccount {
    pub user_id: vigia_domain::ids::UserId,
    pub disabled: bool,
    pub role: vigia_domain::users::Role,
    pub departments: Vec<vigia_domain::ids::DepartmentId>,
}

/// The account with this address, if there is one.
pub async fn account_of_email(db: &Db, email: &str) -> StoreResult<Option<AddressAccount>> {
    const ACCOUNT: &str = "SELECT id, role, disabled FROM users WHERE LOWER(email) = LOWER($1)";
    const DEPARTMENTS: &str =
        "SELECT department_id FROM department_members WHERE user_id = $1 ORDER BY department_id";
    let email = email.to_owned();
    let row: Option<(i64, String, bool)> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, ACCOUNT, &[&email], |r| {
            Ok((r.get("id")?, r.get("role")?, r.get("disabled")?))
        }),
        postgres: |pool| Ok(sqlx::query_as(ACCOUNT)
            .bind(&email)
            .fetch_optional(pool)
            .await?),
    )?;
    let Some((id, role, disabled)) = row else {
        return Ok(None);
    };
    let departments: Vec<i64> = direct_read!(db,
        sqlite: |conn| direct::query(conn, DEPARTMENTS, &[&id], |r| r.get("department_id")),
        postgres: |pool| Ok(sqlx::query_scalar(DEPARTMENTS).bind(id).fetch_all(pool).await?),
    )?;
    Ok(Some(AddressAccount {
        user_id: vigia_domain::ids::UserId(id),
        disabled,
        role: vigia_domain::users::Role::parse("role", &role)
            .unwrap_or(vigia_domain::users::Role::Reporter),
        departments: departments
            .into_iter()
            .map(vigia_domain::ids::DepartmentId)
            .collect(),
    }))
}
