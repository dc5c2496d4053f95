//! User accounts and department membership.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{DepartmentId, SessionId, UserId};
use vigia_domain::users::{Email, Locale, Role};

use crate::audit::{AuditDraft, insert_audit};
use crate::composed;
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, on_reader, on_writer};

/// A user as the rest of Vigía sees it (never the password hash).
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct User {
    #[sqlx(try_from = "i64")]
    pub id: UserId,
    pub email: String,
    pub display_name: String,
    #[sqlx(try_from = "String")]
    pub role: Role,
    #[sqlx(try_from = "String")]
    pub locale: Locale,
    pub disabled: bool,
    /// Staff marked away get no automatic assignments.
    pub away: bool,
    /// Wants an e-mail when an incident they reported changes status.
    pub notify_status_changes: bool,
    #[sqlx(skip)]
    pub departments: Vec<DepartmentId>,
    #[sqlx(try_from = "i64")]
    pub created_at: Timestamp,
    #[sqlx(try_from = "i64")]
    pub updated_at: Timestamp,
}

/// What a new account is made of.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub display_name: String,
    pub password_hash: String,
    pub role: Role,
    pub locale: Locale,
}

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

/// What login needs to check a password.
#[derive(Debug, Clone, FromRow)]
pub struct Credentials {
    #[sqlx(try_from = "i64")]
    pub id: UserId,
    pub password_hash: String,
    pub disabled: bool,
}

/// What authenticating one request needs: the user's standing and the session's.
#[derive(Debug, Clone)]
pub struct AuthState {
    pub role: Role,
    pub disabled: bool,
    pub session_active: bool,
    pub departments: Vec<DepartmentId>,
}

const USER_COLUMNS: &str = "id, email, display_name, role, locale, disabled, away, notify_status_changes, created_at, updated_at";

/// Creates an account (self-registration: not audited).
pub async fn create(db: &Db, new: &NewUser, actor: Option<&ChangeAuthor>) -> StoreResult<User> {
    create_with_departments_inner(db, new, &[], actor).await
}

/// Creates an account with department memberships on behalf of an admin (audited).
pub async fn create_with_departments(
    db: &Db,
    new: &NewUser,
    departments: &[DepartmentId],
    actor: &ChangeAuthor,
) -> StoreResult<User> {
    create_with_departments_inner(db, new, departments, Some(actor)).await
}

#[tracing::instrument(skip_all, fields(email = %new.email))]
async fn create_with_departments_inner(
    db: &Db,
    new: &NewUser,
    departments: &[DepartmentId],
    actor: Option<&ChangeAuthor>,
) -> StoreResult<User> {
    let now = Timestamp::now().millis();
    let sql = format!(
        "INSERT INTO users (email, display_name, password_hash, role, locale, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6) RETURNING {USER_COLUMNS}"
    );
    let user: User = on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let mut user: User = sqlx::query_as(composed(&sql))
            .bind(new.email.as_str())
            .bind(&new.display_name)
            .bind(&new.password_hash)
            .bind(new.role.as_str())
            .bind(new.locale.as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, "users_email_key", "email"))?;
        for department in departments {
            sqlx::query("INSERT INTO department_members (department_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(department.0)
                .bind(user.id.0)
                .execute(&mut *tx)
                .await?;
        }
        user.departments = departments.to_vec();
        user.departments.sort();
        user.departments.dedup();
        if let Some(actor) = actor {
            let draft = AuditDraft::new(actor, "user.created", AuditEntity::User, Some(user.id.0))
                .after(&user);
            insert_audit!(&mut *tx, draft);
        }
        tx.commit().await?;
        user
    });
    Ok(user)
}

/// A user by id, with their departments.
pub async fn find(db: &Db, id: UserId) -> StoreResult<User> {
    // One round trip: the memberships come back as a comma-separated list.
    let aggregate = if db.is_sqlite() {
        "(SELECT group_concat(department_id, ',') FROM department_members WHERE user_id = users.id)"
    } else {
        "(SELECT string_agg(department_id::text, ',') FROM department_members WHERE user_id = users.id)"
    };
    let sql =
        format!("SELECT {USER_COLUMNS}, {aggregate} AS department_list FROM users WHERE id = $1");
    let row: Option<(User, Option<String>)> = on_reader!(db, |pool| {
        let row = sqlx::query(composed(&sql))
            .bind(id.0)
            .fetch_optional(pool)
            .await?;
        match row {
            Some(row) => {
                let user = User::from_row(&row)?;
                let list: Option<String> = sqlx::Row::try_get(&row, "department_list")?;
                Some((user, list))
            }
            None => None,
        }
    });
    let (mut user, list) = row.ok_or(StoreError::NotFound)?;
    let mut departments: Vec<DepartmentId> = list
        .unwrap_or_default()
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .map(DepartmentId)
        .collect();
    departments.sort();
    user.departments = departments;
    Ok(user)
}

/// The departments `user` is a member of.
pub async fn departments_of(db: &Db, user: UserId) -> StoreResult<Vec<DepartmentId>> {
    let sql =
        "SELECT department_id FROM department_members WHERE user_id = $1 ORDER BY department_id";
    let ids: Vec<i64> = on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(user.0)
        .fetch_all(pool)
        .await?);
    Ok(ids.into_iter().map(DepartmentId).collect())
}

/// The password hash and standing of the account with `email`, if any.
pub async fn credentials(db: &Db, email: &Email) -> StoreResult<Option<Credentials>> {
    let sql = "SELECT id, password_hash, disabled FROM users WHERE email = $1";
    Ok(on_reader!(db, |pool| sqlx::query_as(sql)
        .bind(email.as_str())
        .fetch_optional(pool)
        .await?))
}

/// The password hash of a user, to confirm their current password.
pub async fn password_hash(db: &Db, id: UserId) -> StoreResult<String> {
    let sql = "SELECT password_hash FROM users WHERE id = $1";
    on_reader!(db, |pool| sqlx::query_scalar(sql)
        .bind(id.0)
        .fetch_optional(pool)
        .await?)
    .ok_or(StoreError::NotFound)
}

/// The user's and session's standing, in one round trip per table. `None` if the user is gone.
pub async fn auth_state(
    db: &Db,
    user: UserId,
    session: SessionId,
    now: Timestamp,
) -> StoreResult<Option<AuthState>> {
    let sql = "SELECT u.role, u.disabled, \
                 (s.id IS NOT NULL AND s.revoked_at IS NULL AND s.expires_at > $3) AS session_active \
               FROM users u LEFT JOIN sessions s ON s.id = $2 AND s.user_id = u.id \
               WHERE u.id = $1";
    let row: Option<(String, bool, bool)> = on_reader!(db, |pool| sqlx::query_as(sql)
        .bind(user.0)
        .bind(session.0)
        .bind(now.millis())
        .fetch_optional(pool)
        .await?);
    let Some((role, disabled, session_active)) = row else {
        return Ok(None);
    };
    let role = Role::try_from(role).map_err(|e| StoreError::Other(e.into()))?;
    let departments = departments_of(db, user).await?;
    Ok(Some(AuthState {
        role,
        disabled,
        session_active,
        departments,
    }))
}

/// Users matching `filter`, by id.
pub async fn list(
    db: &Db,
    filter: &UserFilter,
    after: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<User>> {
    let mut sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1");
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
    let mut users: Vec<User> = on_reader!(db, |pool| {
        let mut query = sqlx::query_as(composed(&sql)).bind(after.map_or(0, |c| c.0));
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
        query.fetch_all(pool).await?
    });
    for user in &mut users {
        user.departments = departments_of(db, user.id).await?;
    }
    Ok(Page::from_rows(users, limit, |u| u.id.0))
}

/// Number of accounts, and of enabled admins.
pub async fn counts(db: &Db) -> StoreResult<(i64, i64)> {
    let sql = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN role = 'admin' AND NOT disabled THEN 1 ELSE 0 END), 0) FROM users";
    Ok(on_reader!(db, |pool| sqlx::query_as(sql)
        .fetch_one(pool)
        .await?))
}

/// Applies an admin's changes to a user, audited with before and after. Disabling a user
/// revokes all their sessions in the same transaction.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn update(
    db: &Db,
    id: UserId,
    patch: &UserPatch,
    actor: &ChangeAuthor,
) -> StoreResult<User> {
    let before = find(db, id).await?;
    let now = Timestamp::now().millis();
    if let Some(departments) = &patch.departments {
        for (i, department) in departments.iter().enumerate() {
            if !crate::catalog::department_exists(db, *department).await? {
                return Err(StoreError::UnknownReference {
                    field: format!("departments[{i}]"),
                    entity: "department",
                });
            }
        }
    }
    let select = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query(
            "UPDATE users SET display_name = COALESCE($2, display_name), role = COALESCE($3, role), \
             locale = COALESCE($4, locale), disabled = COALESCE($5, disabled), updated_at = $6, \
             away = COALESCE($7, away), \
             notify_status_changes = COALESCE($8, notify_status_changes) WHERE id = $1",
        )
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
            sqlx::query("DELETE FROM department_members WHERE user_id = $1")
                .bind(id.0)
                .execute(&mut *tx)
                .await?;
            for department in departments {
                sqlx::query("INSERT INTO department_members (department_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(department.0)
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if patch.disabled == Some(true) {
            sqlx::query(
                "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
            )
            .bind(id.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let mut after: User = sqlx::query_as(composed(&select))
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await?;
        after.departments = match &patch.departments {
            Some(departments) => {
                let mut d = departments.clone();
                d.sort();
                d.dedup();
                d
            }
            None => before.departments.clone(),
        };
        let draft = AuditDraft::new(actor, "user.updated", AuditEntity::User, Some(id.0))
            .before(&before)
            .after(&after);
        insert_audit!(&mut *tx, draft);
        tx.commit().await?;
        Ok(after)
    })
}

/// Replaces a user's password hash and revokes every session but `keep`.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn set_password(
    db: &Db,
    id: UserId,
    hash: &str,
    keep: Option<SessionId>,
) -> StoreResult<()> {
    let now = Timestamp::now().millis();
    on_writer!(db, |pool| {
        let mut tx = pool.begin().await?;
        let changed =
            sqlx::query("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1")
                .bind(id.0)
                .bind(hash)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND id <> $3")
            .bind(id.0)
            .bind(now)
            .bind(keep.map_or(0, |s| s.0))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    })
}
