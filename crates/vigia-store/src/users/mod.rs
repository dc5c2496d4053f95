//! User accounts and department membership.
//!
//! This file holds the account itself: creating one, reading it (with its departments),
//! what login and request authentication read, and changing a password. `admin` holds
//! the admin side: the filtered user list, the account counts and an admin's audited
//! changes. Callers use the items re-exported here, as `users::update`.

mod admin;

pub use admin::{UserFilter, UserPatch, counts, list, update};

use serde::Serialize;
use sqlx::FromRow;
use vigia_domain::Timestamp;
use vigia_domain::audit::AuditEntity;
use vigia_domain::ids::{DepartmentId, SessionId, UserId};
use vigia_domain::users::{Email, Locale, Role};

use crate::audit::{AuditDraft, insert_audit, insert_audit_direct};
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
// By path as well, for `admin`, whose list query is built from it.
use user_columns;

const INSERT_USER: &str = concat!(
    "INSERT INTO users (email, display_name, password_hash, role, locale, disabled, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, FALSE, $6, $6) RETURNING ",
    user_columns!()
);
const ADD_MEMBER: &str = "INSERT INTO department_members (department_id, user_id) VALUES ($1, $2) \
     ON CONFLICT DO NOTHING";
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
