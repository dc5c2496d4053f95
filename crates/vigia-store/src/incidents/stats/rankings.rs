//! The public rankings: the most voted public incidents per zone and per category.

use super::*;

/// A public incident in a ranking: nothing personal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranked {
    pub id: IncidentId,
    pub code: IncidentCode,
    pub title: String,
    pub votes: i64,
    pub status: Status,
    pub zone_id: Option<ZoneId>,
    pub category_id: CategoryId,
}

/// The most voted public incidents of every zone and every category (groups without public
/// incidents are left out), most voted first.
#[derive(Debug, Clone, Default)]
pub struct Rankings {
    pub by_zone: Vec<(ZoneId, Vec<Ranked>)>,
    pub by_category: Vec<(CategoryId, Vec<Ranked>)>,
}

type RankedRow = (String, i64, i64, String, i64, String, Option<i64>, i64);

/// A [`RankedRow`] read on a direct SQLite connection, each column by its name.
fn ranked_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RankedRow> {
    Ok((
        r.get("group_name")?,
        r.get("group_id")?,
        r.get("id")?,
        r.get("title")?,
        r.get("votes")?,
        r.get("status")?,
        r.get("zone_id")?,
        r.get("category_id")?,
    ))
}

/// The top `limit` public incidents by votes per zone and per category: one statement, an
/// index range of `limit` entries per group.
#[tracing::instrument(skip(db))]
pub async fn rankings(db: &Db, limit: u32) -> StoreResult<Rankings> {
    const COLUMNS: &str = "i.id, i.title, i.votes, i.status, i.zone_id, i.category_id";
    let top = |group: &str, table: &str, alias: &str, column: &str| {
        let most_voted = |columns: &str| {
            format!(
                "SELECT {columns} FROM incidents j WHERE j.{column} = {alias}.id AND j.visibility = 'public' \
                 ORDER BY j.votes DESC, j.id DESC{}",
                crate::sql::limit(limit as usize)
            )
        };
        // SQLite has no LATERAL: a correlated `IN` list of ids, then a rowid lookup per id.
        if db.is_sqlite() {
            let ids = most_voted("j.id");
            format!(
                "SELECT '{group}' AS group_name, {alias}.id AS group_id, {COLUMNS} FROM {table} {alias} \
                 JOIN incidents i ON i.id IN ({ids})"
            )
        } else {
            let rows = most_voted("j.id, j.title, j.votes, j.status, j.zone_id, j.category_id");
            format!(
                "SELECT '{group}' AS group_name, {alias}.id AS group_id, {COLUMNS} FROM {table} {alias} \
                 CROSS JOIN LATERAL ({rows}) i"
            )
        }
    };
    let sql = format!(
        "{} UNION ALL {} ORDER BY 1, 2, 5 DESC, 3 DESC",
        top("zone", "zones", "z", "zone_id"),
        top("category", "categories", "c", "category_id")
    );
    let rows: Vec<RankedRow> = fetch_rows(db, Sql::new(&sql), ranked_row).await?;
    let mut out = Rankings::default();
    for (group, key, id, title, votes, status, zone, category) in rows {
        let ranked = Ranked {
            id: IncidentId(id),
            code: IncidentCode::from_sequence(id.max(0) as u64),
            title,
            votes,
            status: Status::parse("status", &status).unwrap_or(Status::New),
            zone_id: zone.map(ZoneId),
            category_id: CategoryId(category),
        };
        if group == "zone" {
            push_grouped(&mut out.by_zone, ZoneId(key), ranked);
        } else {
            push_grouped(&mut out.by_category, CategoryId(key), ranked);
        }
    }
    Ok(out)
}

/// Appends to the last group when it is `key`'s (rows arrive ordered by group), else opens one.
fn push_grouped<K: PartialEq>(groups: &mut Vec<(K, Vec<Ranked>)>, key: K, item: Ranked) {
    match groups.last_mut() {
        Some((last, items)) if *last == key => items.push(item),
        _ => groups.push((key, vec![item])),
    }
}
