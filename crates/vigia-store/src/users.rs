//! User accounts and department membership.

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{DepartmentId, SessionId, UserId};
use vigia_domain::users::{Email, Locale, Role};

use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
use crate::catalog::{check_departments_direct, check_departments_postgres};
use crate::page::{Cursor, Page};
use crate::{ChangeAuthor, Db, StoreError, StoreResult, direct, direct_read, grouped_write};

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

/// The columns of [`User`], as a literal for the statements below.
macro_rules! user_columns {
    () => {
        "id, email, display_name, role, locale, disabled, away, notify_status_changes, created_at, updated_at"
    };
}

const INSERT_USER: &str = concat!(
    "INSERT INTO users (email, display_name, password_hash, role, locale, disabled, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6) RETURNING ",
    user_columns!()
);
const ADD_MEMBER: &str = "INSERT INTO department_members (department_id, user_id) VALUES ($1, $2) \
     ON CONFLICT DO NOTHING";
const REMOVE_MEMBERSHIPS: &str = "DELETE FROM department_members WHERE user_id = $1";
const SELECT_USER: &str = concat!("SELECT ", user_columns!(), " FROM users WHERE id = $1");
/// A user and their memberships as a comma-separated list, in one statement.
const FIND_SQLITE: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", (SELECT group_concat(department_id, ',') FROM department_members WHERE user_id = users.id) \
     AS department_list FROM users WHERE id = $1"
);
const FIND_POSTGRES: &str = concat!(
    "SELECT ",
    user_columns!(),
    ", (SELECT string_agg(department_id::text, ',') FROM department_members WHERE user_id = users.id) \
     AS department_list FROM users WHERE id = $1"
);
const DEPARTMENTS_OF: &str =
    "SELECT department_id FROM department_members WHERE user_id = $1 ORDER BY department_id";
const CREDENTIALS: &str = "SELECT id, password_hash, disabled FROM users WHERE email = $1";
const PASSWORD_HASH: &str = "SELECT password_hash FROM users WHERE id = $1";
const AUTH_STATE: &str = "SELECT u.role, u.disabled, \
     (s.id IS NOT NULL AND s.revoked_at IS NULL AND s.expires_at > $3) AS session_active \
     FROM users u LEFT JOIN sessions s ON s.id = $2 AND s.user_id = u.id \
     WHERE u.id = $1";
const COUNTS: &str = "SELECT COUNT(*) AS accounts, \
     COALESCE(SUM(CASE WHEN role = 'admin' AND NOT disabled THEN 1 ELSE 0 END), 0) AS admins \
     FROM users";
const UPDATE_USER: &str = "UPDATE users SET display_name = COALESCE($2, display_name), \
     role = COALESCE($3, role), locale = COALESCE($4, locale), disabled = COALESCE($5, disabled), \
     updated_at = $6, away = COALESCE($7, away), \
     notify_status_changes = COALESCE($8, notify_status_changes) WHERE id = $1";
const REVOKE_ALL_SESSIONS: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1";
const REVOKE_OTHER_SESSIONS: &str =
    "UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL AND id <> $3";

/// Column `name` of `row`, a stored name parsed by `parse` (see [`direct::parsed`]).
fn parsed_column<T>(
    row: &rusqlite::Row<'_>,
    name: &str,
    parse: impl FnOnce(&str, &str) -> Result<T, vigia_domain::FieldError>,
) -> rusqlite::Result<T> {
    direct::parsed(row, row.as_ref().column_index(name)?, parse)
}

impl User {
    /// A row of `user_columns!()` read on a direct SQLite connection (departments left empty).
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: UserId(row.get("id")?),
            email: row.get("email")?,
            display_name: row.get("display_name")?,
            role: parsed_column(row, "role", Role::parse)?,
            locale: parsed_column(row, "locale", Locale::parse)?,
            disabled: row.get("disabled")?,
            away: row.get("away")?,
            notify_status_changes: row.get("notify_status_changes")?,
            departments: Vec::new(),
            created_at: Timestamp::from_millis(row.get("created_at")?),
            updated_at: Timestamp::from_millis(row.get("updated_at")?),
        })
    }
}

impl Credentials {
    fn from_direct(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: UserId(row.get("id")?),
            password_hash: row.get("password_hash")?,
            disabled: row.get("disabled")?,
        })
    }
}

/// `departments` sorted, without repeats: what a user's list of memberships looks like.
fn sorted(departments: &[DepartmentId]) -> Vec<DepartmentId> {
    let mut departments = departments.to_vec();
    departments.sort();
    departments.dedup();
    departments
}

/// A user read by [`FIND_SQLITE`] / [`FIND_POSTGRES`], with the memberships of its list.
fn with_departments((mut user, list): (User, Option<String>)) -> User {
    let mut departments: Vec<DepartmentId> = list
        .unwrap_or_default()
        .split(',')
        .filter_map(|d| d.trim().parse().ok())
        .map(DepartmentId)
        .collect();
    departments.sort();
    user.departments = departments;
    user
}

fn find_direct(conn: &direct::Conn, id: UserId) -> StoreResult<Option<User>> {
    let row = direct::query_optional(conn, FIND_SQLITE, &[&id.0], |r| {
        Ok((User::from_direct(r)?, r.get("department_list")?))
    })?;
    Ok(row.map(with_departments))
}

async fn find_postgres(
    executor: impl sqlx::PgExecutor<'_>,
    id: UserId,
) -> StoreResult<Option<User>> {
    let row = sqlx::query(FIND_POSTGRES)
        .bind(id.0)
        .fetch_optional(executor)
        .await?;
    match row {
        Some(row) => {
            let user = User::from_row(&row)?;
            let list: Option<String> = sqlx::Row::try_get(&row, "department_list")?;
            Ok(Some(with_departments((user, list))))
        }
        None => Ok(None),
    }
}

fn departments_direct(conn: &direct::Conn, user: UserId) -> StoreResult<Vec<DepartmentId>> {
    direct::query(conn, DEPARTMENTS_OF, &[&user.0], |r| {
        Ok(DepartmentId(r.get("department_id")?))
    })
}

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
    let (new, departments, actor) = (new.clone(), departments.to_vec(), actor.cloned());
    let audit = move |user: &User| {
        actor.map(|actor| {
            AuditDraft::new(&actor, "user.created", AuditEntity::User, Some(user.id.0)).after(user)
        })
    };
    grouped_write!(db,
        sqlite: |conn| {
            let mut user = direct::query_optional(
                conn,
                INSERT_USER,
                &[
                    &new.email.as_str(),
                    &new.display_name,
                    &new.password_hash,
                    &new.role.as_str(),
                    &new.locale.as_str(),
                    &now,
                ],
                User::from_direct,
            )
            .map_err(|e| StoreError::unique_direct(e, "email"))?
            .ok_or(StoreError::NotFound)?;
            for department in &departments {
                direct::execute(conn, ADD_MEMBER, &[&department.0, &user.id.0])?;
            }
            user.departments = sorted(&departments);
            if let Some(draft) = audit(&user) {
                insert_audit_direct(conn, draft)?;
            }
            Ok(user)
        },
        postgres: |tx| {
            let mut user: User = sqlx::query_as(INSERT_USER)
                .bind(new.email.as_str())
                .bind(&new.display_name)
                .bind(&new.password_hash)
                .bind(new.role.as_str())
                .bind(new.locale.as_str())
                .bind(now)
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| StoreError::unique(e, "users_email_key", "email"))?;
            for department in &departments {
                sqlx::query(ADD_MEMBER)
                    .bind(department.0)
                    .bind(user.id.0)
                    .execute(&mut *tx)
                    .await?;
            }
            user.departments = sorted(&departments);
            if let Some(draft) = audit(&user) {
                insert_audit!(&mut *tx, draft);
            }
            Ok(user)
        },
    )
}

/// A user by id, with their departments.
pub async fn find(db: &Db, id: UserId) -> StoreResult<User> {
    // One statement: the memberships come back as a comma-separated list.
    let user = direct_read!(db,
        sqlite: |conn| find_direct(conn, id),
        postgres: |pool| find_postgres(pool, id).await,
    )?;
    user.ok_or(StoreError::NotFound)
}

/// The departments `user` is a member of.
pub async fn departments_of(db: &Db, user: UserId) -> StoreResult<Vec<DepartmentId>> {
    direct_read!(db,
        sqlite: |conn| departments_direct(conn, user),
        postgres: |pool| {
            let ids: Vec<i64> = sqlx::query_scalar(DEPARTMENTS_OF)
                .bind(user.0)
                .fetch_all(pool)
                .await?;
            Ok(ids.into_iter().map(DepartmentId).collect())
        },
    )
}

/// The password hash and standing of the account with `email`, if any.
pub async fn credentials(db: &Db, email: &Email) -> StoreResult<Option<Credentials>> {
    let email = email.as_str().to_owned();
    direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, CREDENTIALS, &[&email], Credentials::from_direct),
        postgres: |pool| Ok(sqlx::query_as(CREDENTIALS)
            .bind(&email)
            .fetch_optional(pool)
            .await?),
    )
}

/// The password hash of a user, to confirm their current password.
pub async fn password_hash(db: &Db, id: UserId) -> StoreResult<String> {
    let hash: Option<String> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, PASSWORD_HASH, &[&id.0], |r| r.get("password_hash")),
        postgres: |pool| Ok(sqlx::query_scalar(PASSWORD_HASH)
            .bind(id.0)
            .fetch_optional(pool)
            .await?),
    )?;
    hash.ok_or(StoreError::NotFound)
}

/// The user's and session's standing, in one round trip per table. `None` if the user is gone.
pub async fn auth_state(
    db: &Db,
    user: UserId,
    session: SessionId,
    now: Timestamp,
) -> StoreResult<Option<AuthState>> {
    let now = now.millis();
    let row: Option<(String, bool, bool)> = direct_read!(db,
        sqlite: |conn| direct::query_optional(conn, AUTH_STATE, &[&user.0, &session.0, &now], |r| {
            Ok((r.get("role")?, r.get("disabled")?, r.get("session_active")?))
        }),
        postgres: |pool| Ok(sqlx::query_as(AUTH_STATE)
            .bind(user.0)
            .bind(session.0)
            .bind(now)
            .fetch_optional(pool)
            .await?),
    )?;
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

/// Replaces a user's password hash and revokes every session but `keep`.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn set_password(
    db: &Db,
    id: UserId,
    hash: &str,
    keep: Option<SessionId>,
) -> StoreResult<()> {
    let now = Timestamp::now().millis();
    let hash = hash.to_owned();
    let keep = keep.map_or(0, |s| s.0);
    grouped_write!(db,
        sqlite: |conn| {
            if direct::execute(conn, SET_PASSWORD, &[&id.0, &hash, &now])? == 0 {
                return Err(StoreError::NotFound);
            }
            direct::execute(conn, REVOKE_OTHER_SESSIONS, &[&id.0, &now, &keep])?;
            Ok(())
        },
        postgres: |tx| {
            let changed = sqlx::query(SET_PASSWORD)
                .bind(id.0)
                .bind(&hash)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound);
            }
            sqlx::query(REVOKE_OTHER_SESSIONS)
                .bind(id.0)
                .bind(now)
                .bind(keep)
                .execute(&mut *tx)
                .await?;
            Ok(())
        },
    )
}
