//! The admin side of user accounts: the filtered user list, the account counts, and an
//! admin's changes to a user (audited; disabling revokes the user's sessions).

use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{DepartmentId, UserId};
use vigia_domain::users::{Locale, Role};

use super::{
    ADD_MEMBER, DEPARTMENTS_OF, SELECT_USER, User, departments_direct, find_direct, find_postgres,
    sorted, user_columns,
};
use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::catalog::{check_departments_direct, check_departments_postgres};
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, direct, direct_read, grouped_write};

/// What an admin may change about a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub locale: Option<Locale>,
    pub disabled: Option<bool>,
    pub away: Option<bool>,
    pub departments: Option<Vec<DepartmentId>>,
    pub notify_status_changes: Option<bool>,
}

/// Filters of the admin user list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub department: Option<DepartmentId>,
    /// Matches e-mail or display name, case-insensitively.
    pub q: Option<String>,
}

const COUNTS: &str = "SELECT COUNT(*) AS accounts, \
     COALESCE(SUM(CASE WHEN role = 'admin' AND NOT disabled THEN 1 ELSE 0 END), 0) AS admins \
     FROM users";
const UPDATE_USER: &str = "UPDATE users SET display_name = COALESCE($2, display_name), \
     role = COALESCE($3, role), locale = COALESCE($4, locale), disabled = COALESCE($5, disabled), \
     updated_at = $6, away = COALESCE($7, away), \
     notify_status_changes = COALESCE($8, notify_status_changes) WHERE id = $1";
const REMOVE_MEMBERSHIPS: &str = "DELETE FROM department_members WHERE user_id = $1";
const REVOKE_ALL_SESSIONS: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";

/// Users matching `filter`, by id.
pub async fn list(
    db: &Db,
    filter: &UserFilter,
    after: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<User>> {
    let mut sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id > $1").to_owned();
    let q = filter
        .q
        .as_ref()
        .map(|q| format!("%{}%", q.to_lowercase().replace(['%', '_'], "")));
    let mut n = 1;
    let mut next = || {
        n += 1;
        n
    };
    if filter.role.is_some() {
        sql += &format!(" AND role = ${}", next());
    }
    if filter.disabled.is_some() {
        sql += &format!(" AND disabled = ${}", next());
    }
    if filter.department.is_some() {
        sql += &format!(
            " AND id IN (SELECT user_id FROM department_members WHERE department_id = ${})",
            next()
        );
    }
    if q.is_some() {
        let i = next();
        sql += &format!(" AND (email LIKE ${i} OR LOWER(display_name) LIKE ${i})");
    }
    sql += " ORDER BY id";
    sql += &crate::sql::limit(limit + 1);
    let after = after.map_or(0, |c| c.0);
    let filter = filter.clone();
    let users: Vec<User> = direct_read!(db,
        sqlite: |conn| {
            // The same arguments, in the order of their placeholders.
            let mut args: Vec<rusqlite::types::Value> = vec![after.into()];
            if let Some(role) = filter.role {
                args.push(role.as_str().to_owned().into());
            }
            if let Some(disabled) = filter.disabled {
                args.push(disabled.into());
            }
            if let Some(department) = filter.department {
                args.push(department.0.into());
            }
            if let Some(q) = &q {
                args.push(q.clone().into());
            }
            let args: Vec<&dyn rusqlite::ToSql> =
                args.iter().map(|a| a as &dyn rusqlite::ToSql).collect();
            let mut users = direct::query(conn, &sql, &args, User::from_direct)?;
            for user in &mut users {
                user.departments = departments_direct(conn, user.id)?;
            }
            Ok(users)
        },
        postgres: |pool| {
            let mut query = sqlx::query_as(crate::composed(&sql)).bind(after);
            if let Some(role) = filter.role {
                query = query.bind(role.as_str());
            }
            if let Some(disabled) = filter.disabled {
                query = query.bind(disabled);
            }
            if let Some(department) = filter.department {
                query = query.bind(department.0);
            }
            if let Some(q) = &q {
                query = query.bind(q.clone());
            }
            let mut users: Vec<User> = query.fetch_all(pool).await?;
            for user in &mut users {
                let ids: Vec<i64> = sqlx::query_scalar(DEPARTMENTS_OF)
                    .bind(user.id.0)
                    .fetch_all(pool)
                    .await?;
                user.departments = ids.into_iter().map(DepartmentId).collect();
            }
            Ok(users)
        },
    )?;
    Ok(Page::from_rows(users, limit, |u| u.id.0))
}

/// Number of accounts, and of enabled admins.
pub async fn counts(db: &Db) -> StoreResult<(i64, i64)> {
    direct_read!(db,
        sqlite: |conn| {
            let counts = direct::query_optional(conn, COUNTS, &[], |r| {
                Ok((r.get("accounts")?, r.get("admins")?))
            })?;
            Ok(counts.unwrap_or_default())
        },
        postgres: |pool| Ok(sqlx::query_as(COUNTS).fetch_one(pool).await?),
    )
}

/// Applies an admin's changes to a user, audited with before and after (read in the same
/// transaction). Disabling a user revokes all their sessions in the same transaction.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn update(
    db: &Db,
    id: UserId,
    patch: &UserPatch,
    actor: &ChangeAuthor,
) -> StoreResult<User> {
    let now = Timestamp::now().millis();
    let (patch, actor) = (patch.clone(), actor.clone());
    let departments_after = move |patch: &UserPatch, before: &User| match &patch.departments {
        Some(departments) => sorted(departments),
        None => before.departments.clone(),
    };
    let audit = move |before: &User, after: &User| {
        AuditDraft::new(&actor, "user.updated", AuditEntity::User, Some(id.0))
            .before(before)
            .after(after)
    };
    grouped_write!(db,
        sqlite: |conn| {
            let before = find_direct(conn, id)?.ok_or(StoreError::NotFound)?;
            if let Some(departments) = &patch.departments {
                check_departments_direct(conn, departments)?;
            }
            direct::execute(
                conn,
                UPDATE_USER,
                &[
                    &id.0,
                    &patch.display_name,
                    &patch.role.map(Role::as_str),
                    &patch.locale.map(Locale::as_str),
                    &patch.disabled,
                    &now,
                    &patch.away,
                    &patch.notify_status_changes,
                ],
            )?;
            if let Some(departments) = &patch.departments {
                direct::execute(conn, REMOVE_MEMBERSHIPS, &[&id.0])?;
                for department in departments {
                    direct::execute(conn, ADD_MEMBER, &[&department.0, &id.0])?;
                }
            }
            if patch.disabled == Some(true) {
                direct::execute(conn, REVOKE_ALL_SESSIONS, &[&id.0, &now])?;
            }
            let mut after = direct::query_optional(conn, SELECT_USER, &[&id.0], User::from_direct)?
                .ok_or(StoreError::NotFound)?;
            after.departments = departments_after(&patch, &before);
            insert_audit_direct(conn, audit(&before, &after))?;
            Ok(after)
        },
        postgres: |tx| {
            let before = find_postgres(&mut *tx, id).await?.ok_or(StoreError::NotFound)?;
            if let Some(departments) = &patch.departments {
                check_departments_postgres(&mut *tx, departments).await?;
            }
            sqlx::query(UPDATE_USER)
                .bind(id.0)
                .bind(patch.display_name.as_deref())
                .bind(patch.role.map(Role::as_str))
                .bind(patch.locale.map(Locale::as_str))
                .bind(patch.disabled)
                .bind(now)
                .bind(patch.away)
                .bind(patch.notify_status_changes)
                .execute(&mut *tx)
                .await?;
            if let Some(departments) = &patch.departments {
                sqlx::query(REMOVE_MEMBERSHIPS)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                for department in departments {
                    sqlx::query(ADD_MEMBER)
                        .bind(department.0)
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            if patch.disabled == Some(true) {
                sqlx::query(REVOKE_ALL_SESSIONS)
                    .bind(id.0)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut after: User = sqlx::query_as(SELECT_USER)
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await?;
            after.departments = departments_after(&patch, &before);
            insert_audit!(&mut *tx, audit(&before, &after));
            Ok(after)
        },
    )
}
