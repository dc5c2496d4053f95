//! Reading incidents, always within the caller's [`ReadScope`].

use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::ids::{CategoryId, DepartmentId, IncidentId, UserId, ZoneId};
use vigia_domain::incidents::{ReadScope, Status};

use super::{INCIDENT_COLUMNS, Incident, IncidentRow};
use crate::page::{Cursor, Page};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreError, StoreResult, composed, direct};

/// Appends the scope restriction to `sql` (which already has a WHERE clause).
pub(crate) fn restrict(sql: &mut Sql, scope: &ReadScope) {
    restrict_as(sql, scope, Lookup::Indexed);
}

/// [`restrict`], its columns named as `lookup` says.
fn restrict_as(sql: &mut Sql, scope: &ReadScope, lookup: Lookup) {
    if let Some(alternatives) = Alternative::of(scope) {
        let terms: Vec<String> = alternatives
            .iter()
            .map(|a| a.condition(sql, lookup))
            .collect();
        sql.push(&format!(" AND ({})", terms.join(" OR ")));
    }
}

/// One of the alternatives a scope admits an incident by.
enum Alternative {
    Public,
    Department(DepartmentId),
    Reporter(UserId),
}

impl Alternative {
    /// The alternatives of `scope`; `None` when it admits every incident.
    fn of(scope: &ReadScope) -> Option<Vec<Self>> {
        match scope {
            ReadScope::All => None,
            ReadScope::PublicOnly => Some(vec![Self::Public]),
            ReadScope::Limited {
                departments,
                reporter,
                ..
            } => {
                let mut alternatives = vec![Self::Public];
                alternatives.extend(departments.iter().copied().map(Self::Department));
                alternatives.extend(reporter.iter().copied().map(Self::Reporter));
                Some(alternatives)
            }
        }
    }

    /// The alternatives by which `scope` sees who reported and who works an incident
    /// ([`ReadScope::sees_people`]); `None` when it sees everyone's.
    fn of_people(scope: &ReadScope) -> Option<Vec<Self>> {
        match scope {
            ReadScope::All => None,
            ReadScope::PublicOnly => Some(Vec::new()),
            ReadScope::Limited {
                departments,
                reporter,
                staff,
            } => {
                let mut alternatives = Vec::new();
                if *staff {
                    alternatives.extend(departments.iter().copied().map(Self::Department));
                }
                alternatives.extend(reporter.iter().copied().map(Self::Reporter));
                Some(alternatives)
            }
        }
    }

    /// The condition an incident meets by this alternative, its value bound in `sql`.
    fn condition(&self, sql: &mut Sql, lookup: Lookup) -> String {
        match self {
            Self::Public => format!("{} = 'public'", lookup.column("visibility")),
            Self::Department(d) => {
                let p = sql.arg(Arg::I64(d.0));
                format!("{} = {p}", lookup.column("department_id"))
            }
            Self::Reporter(u) => {
                let p = sql.arg(Arg::I64(u.0));
                format!("{} = {p}", lookup.column("reporter_id"))
            }
        }
    }
}

/// How a condition names its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    /// As is: the database may look the value up in an index on the column.
    Indexed,
    /// As an expression (`status || ''`, `category_id + 0`) that SQLite and PostgreSQL check on
    /// each row but look up in no index, so that another condition's index leads the query.
    Checked,
}

/// The incident columns of text, which [`Lookup::Checked`] concatenates rather than adds to.
const TEXT_COLUMNS: [&str; 3] = ["status", "urgency", "visibility"];

impl Lookup {
    fn column(self, name: &str) -> String {
        match self {
            Self::Indexed => name.to_owned(),
            Self::Checked if TEXT_COLUMNS.contains(&name) => format!("{name} || ''"),
            Self::Checked => format!("{name} + 0"),
        }
    }
}

/// One incident, if it exists and `scope` may see it (otherwise [`StoreError::NotFound`]: a
/// caller never learns that an incident it may not see exists).
pub async fn find(db: &Db, scope: &ReadScope, id: IncidentId) -> StoreResult<Incident> {
    let mut sql = Sql::new(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE id = "
    ));
    let p = sql.arg(Arg::I64(id.0));
    sql.push(&p);
    restrict(&mut sql, scope);
    // Hot: every request about one incident starts here.
    incident_rows(db, sql)
        .await?
        .into_iter()
        .next()
        .map(|r| r.into_incident(Timestamp::now()))
        .ok_or(StoreError::NotFound)
}

/// The incident rows `sql` selects ([`INCIDENT_COLUMNS`]). On SQLite through the direct
/// readers: rows are mapped where SQLite produces them.
async fn incident_rows(db: &Db, sql: Sql) -> StoreResult<Vec<IncidentRow>> {
    crate::direct_read!(db,
        sqlite: |conn| direct::query_sized(conn, &sql.text, &direct::args(&sql.args), sql.max_rows.unwrap_or(1), IncidentRow::from_direct),
        postgres: |pool| Ok(bind_args!(sqlx::query_as(composed(&sql.text)), &sql.args)
            .fetch_all(pool)
            .await?),
    )
}

/// How a list is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Most recent first (the default).
    #[default]
    Newest,
    Oldest,
}

/// Filters of the incident list; every one optional, all combined with AND.
#[derive(Debug, Clone, Default)]
pub struct IncidentFilter {
    pub status: Vec<Status>,
    pub category: Option<CategoryId>,
    pub urgency: Vec<Urgency>,
    pub department: Option<DepartmentId>,
    pub assignee: Option<UserId>,
    pub zone: Option<ZoneId>,
    pub reporter: Option<UserId>,
    pub created_from: Option<Timestamp>,
    pub created_to: Option<Timestamp>,
    pub updated_from: Option<Timestamp>,
    pub updated_to: Option<Timestamp>,
    /// Words searched in title and description, case-insensitively.
    pub q: Option<String>,
    pub public_only: bool,
    pub sort: Sort,
}

fn text_list<T>(sql: &mut Sql, column: &str, values: &[T], name: impl Fn(&T) -> &'static str) {
    if values.is_empty() {
        return;
    }
    let list: Vec<String> = values
        .iter()
        .map(|v| sql.arg(Arg::Text(name(v).to_owned())))
        .collect();
    sql.push(&format!(" AND {column} IN ({})", list.join(", ")));
}

/// Appends `filter`'s conditions (every one as `AND ...` on unqualified incident columns) to
/// `sql`, which already has a WHERE clause. Lists, exports and custom reports share it.
///
/// A filter on a person (reporter, assignee) matches only incidents whose people `scope` is
/// shown ([`ReadScope::sees_people`]): `reporter=3` must not list user 3's public incidents
/// to a caller who sees them with the reporter hidden.
pub(crate) fn filter_conditions(sql: &mut Sql, scope: &ReadScope, filter: &IncidentFilter) {
    filter_conditions_led_by(sql, scope, filter, None);
}

/// [`filter_conditions`], where only the equality on column `leader`, if any, may choose an
/// index: every other status, urgency and id equality is [`Lookup::Checked`]. Without statistics SQLite may otherwise walk a whole department's incidents in id
/// order looking for one reporter's (1.6 s on 1,000,000 incidents) instead of reading that
/// reporter's few.
fn filter_conditions_led_by(
    sql: &mut Sql,
    scope: &ReadScope,
    filter: &IncidentFilter,
    leader: Option<&str>,
) {
    let column = |name: &'static str| match leader {
        Some(leader) if leader != name => Lookup::Checked.column(name),
        _ => Lookup::Indexed.column(name),
    };
    if (filter.reporter.is_some() || filter.assignee.is_some())
        && let Some(alternatives) = Alternative::of_people(scope)
    {
        let lookup = match leader {
            Some(_) => Lookup::Checked,
            None => Lookup::Indexed,
        };
        let terms: Vec<String> = alternatives
            .iter()
            .map(|a| a.condition(sql, lookup))
            .collect();
        if terms.is_empty() {
            sql.push(" AND 1 = 0");
        } else {
            sql.push(&format!(" AND ({})", terms.join(" OR ")));
        }
    }
    text_list(sql, &column("status"), &filter.status, |s| s.as_str());
    text_list(sql, &column("urgency"), &filter.urgency, |u| u.as_str());
    let equals = |sql: &mut Sql, column: String, value: Option<i64>| {
        if let Some(v) = value {
            let p = sql.arg(Arg::I64(v));
            sql.push(&format!(" AND {column} = {p}"));
        }
    };
    equals(sql, column("category_id"), filter.category.map(|c| c.0));
    equals(sql, column("department_id"), filter.department.map(|d| d.0));
    equals(sql, column("assignee_id"), filter.assignee.map(|u| u.0));
    equals(sql, column("zone_id"), filter.zone.map(|z| z.0));
    equals(sql, column("reporter_id"), filter.reporter.map(|u| u.0));
    let range = |sql: &mut Sql, column: &str, op: &str, value: Option<Timestamp>| {
        if let Some(v) = value {
            let p = sql.arg(Arg::I64(v.millis()));
            sql.push(&format!(" AND {column} {op} {p}"));
        }
    };
    range(sql, "created_at", ">=", filter.created_from);
    range(sql, "created_at", "<", filter.created_to);
    range(sql, "updated_at", ">=", filter.updated_from);
    range(sql, "updated_at", "<", filter.updated_to);
    if filter.public_only {
        sql.push(" AND visibility = 'public'");
    }
    if let Some(q) = filter.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        for word in q.split_whitespace().take(8) {
            let pattern = format!("%{}%", like_literal(&word.to_lowercase()));
            let p = sql.arg(Arg::Text(pattern));
            sql.push(&format!(
                " AND (LOWER(title) LIKE {p} ESCAPE '\\' OR LOWER(description) LIKE {p} ESCAPE '\\')"
            ));
        }
    }
}

/// `text` as a LIKE pattern that matches itself only: its wildcards (`%`, `_`) and the escape
/// character (`\`) escaped, for `LIKE ... ESCAPE '\'` (the same on SQLite and PostgreSQL).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A page of incidents matching `filter` within `scope`.
pub async fn list(
    db: &Db,
    scope: &ReadScope,
    filter: &IncidentFilter,
    cursor: Option<Cursor>,
    limit: usize,
) -> StoreResult<Page<Incident>> {
    let rows = incident_rows(db, list_sql(scope, filter, cursor, limit + 1)).await?;
    let now = Timestamp::now();
    Ok(Page::from_rows(
        rows.into_iter().map(|r| r.into_incident(now)).collect(),
        limit,
        |i| i.id.0,
    ))
}

/// The SQL of a page of `rows` incidents.
///
/// A scope of alternatives (public, or one of my departments', or mine) is read as one branch
/// per alternative, each the newest `rows` incidents of that alternative that pass the filter, read
/// from an index in id order (`migrations/*/0013_list_indexes.sql`); the page is the newest
/// `rows` of their union, since the newest of a union are among the newest of each part. As a
/// single `OR`, SQLite (a multi-index OR) and PostgreSQL (a bitmap OR) collected every
/// incident the caller may see and sorted them all, for every page: 365 pages a second for a
/// staff member against 21,000 for an admin, on 8,500 incidents; 150 ms a page on 1,000,000.
///
/// A filter on a reporter, an assignee or a department keeps the plain query, led by that
/// column's index, which ends in the id and so reads the filtered incidents in order, the
/// scope and the rest of the filter checked on each (0.1–0.2 ms a page on 1,000,000).
/// Branches there made each alternative's index walk every incident of the alternative
/// looking for the filtered ones (90–480 ms).
fn list_sql(
    scope: &ReadScope,
    filter: &IncidentFilter,
    cursor: Option<Cursor>,
    rows: usize,
) -> Sql {
    let (after, order) = match filter.sort {
        Sort::Newest => ("<", "DESC"),
        Sort::Oldest => (">", "ASC"),
    };
    // A filter on an owner leads the plain query: the most selective of them, whose index
    // reads the page in id order (see above).
    let leader = if filter.reporter.is_some() {
        Some("reporter_id")
    } else if filter.assignee.is_some() {
        Some("assignee_id")
    } else if filter.department.is_some() {
        Some("department_id")
    } else {
        None
    };
    // The filter, the cursor and the order: the same for the page and for each branch.
    let page = |sql: &mut Sql| {
        filter_conditions_led_by(sql, scope, filter, leader);
        if let Some(cursor) = cursor {
            let p = sql.arg(Arg::I64(cursor.0));
            sql.push(&format!(" AND id {after} {p}"));
        }
        sql.push(&format!(" ORDER BY id {order}"));
    };
    let mut sql = Sql::new(&format!("SELECT {INCIDENT_COLUMNS} FROM incidents WHERE "));
    match Alternative::of(scope) {
        // One alternative alone (the public board) needs no union.
        Some(alternatives) if leader.is_none() && alternatives.len() > 1 => {
            sql.push("id IN (");
            for (n, alternative) in alternatives.iter().enumerate() {
                if n > 0 {
                    sql.push(" UNION ALL ");
                }
                let condition = alternative.condition(&mut sql, Lookup::Indexed);
                sql.push(&format!(
                    "SELECT id FROM (SELECT id FROM incidents WHERE {condition}"
                ));
                page(&mut sql);
                sql.push(&crate::sql::limit(rows));
                sql.push(&format!(") AS branch_{n}"));
            }
            sql.push(&format!(") ORDER BY id {order}"));
        }
        _ => {
            sql.push("1 = 1");
            let lookup = match leader {
                Some(_) => Lookup::Checked,
                None => Lookup::Indexed,
            };
            restrict_as(&mut sql, scope, lookup);
            page(&mut sql);
        }
    }
    sql.limit(rows);
    sql
}
