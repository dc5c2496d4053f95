//! Custom reports: incidents matching a filter counted per combination of chosen
//! [`Dimension`]s, with their mean times.

use vigia_domain::ids::DepartmentId;
use vigia_domain::incidents::ReadScope;

use crate::incidents::{IncidentFilter, filter_conditions};
use crate::sql::{Arg, Sql, bind_args};
use crate::{Db, StoreResult, composed, direct, direct_read};

/// A dimension custom reports group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Status,
    Urgency,
    Category,
    Department,
    Zone,
    Assignee,
    Source,
    /// The UTC date of creation.
    Day,
}

impl Dimension {
    pub const ALL: [Dimension; 8] = [
        Dimension::Status,
        Dimension::Urgency,
        Dimension::Category,
        Dimension::Department,
        Dimension::Zone,
        Dimension::Assignee,
        Dimension::Source,
        Dimension::Day,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Status => "status",
            Dimension::Urgency => "urgency",
            Dimension::Category => "category",
            Dimension::Department => "department",
            Dimension::Zone => "zone",
            Dimension::Assignee => "assignee",
            Dimension::Source => "source",
            Dimension::Day => "day",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.as_str() == raw)
    }

    fn expression(self) -> &'static str {
        match self {
            Dimension::Status => "status",
            Dimension::Urgency => "urgency",
            Dimension::Category => "CAST(category_id AS TEXT)",
            Dimension::Department => "CAST(department_id AS TEXT)",
            Dimension::Zone => "CAST(zone_id AS TEXT)",
            Dimension::Assignee => "CAST(assignee_id AS TEXT)",
            Dimension::Source => "source",
            Dimension::Day => "CAST(created_at / 86400000 AS TEXT)",
        }
    }
}

/// One group of a custom report: the key per dimension (as text; `None` for no department,
/// zone or assignee; days as days since the epoch), its count and mean times.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub keys: Vec<Option<String>>,
    pub count: i64,
    pub mean_acknowledge_secs: Option<f64>,
    pub mean_resolve_secs: Option<f64>,
}

/// The most groups a custom report returns.
pub const MAX_GROUPS: usize = 10_000;

/// Incidents matching `filter` counted per combination of `dimensions` (ordered by the keys).
/// `departments` narrows the count as the statistics do: `None` counts everything, otherwise
/// only incidents routed to those departments.
#[tracing::instrument(skip_all)]
pub async fn grouped(
    db: &Db,
    departments: Option<&[DepartmentId]>,
    filter: &IncidentFilter,
    dimensions: &[Dimension],
) -> StoreResult<Vec<Group>> {
    let keys: Vec<String> = dimensions
        .iter()
        .enumerate()
        .map(|(n, d)| format!("{} AS k{n}", d.expression()))
        .collect();
    let mut sql = Sql::new("SELECT ");
    for key in &keys {
        sql.push(key);
        sql.push(", ");
    }
    sql.push(
        "COUNT(*) AS n, CAST(AVG(acknowledged_at - created_at) / 1000.0 AS DOUBLE PRECISION) AS mtta, \
         CAST(AVG(resolved_at - created_at) / 1000.0 AS DOUBLE PRECISION) AS mttr FROM incidents WHERE 1 = 1",
    );
    if let Some(departments) = departments {
        if departments.is_empty() {
            sql.push(" AND 1 = 0");
        } else {
            let list: Vec<String> = departments.iter().map(|d| sql.arg(Arg::I64(d.0))).collect();
            sql.push(&format!(" AND department_id IN ({})", list.join(", ")));
        }
    }
    // Counted as the departments' staff see them: with their people.
    let scope = match departments {
        None => ReadScope::All,
        Some(departments) => ReadScope::Limited {
            departments: departments.to_vec(),
            reporter: None,
            staff: true,
        },
    };
    filter_conditions(&mut sql, &scope, filter);
    if !dimensions.is_empty() {
        let positions: Vec<String> = (1..=dimensions.len()).map(|n| n.to_string()).collect();
        sql.push(&format!(
            " GROUP BY {list} ORDER BY {list}",
            list = positions.join(", ")
        ));
    }
    sql.limit(MAX_GROUPS);
    let n = dimensions.len();
    let groups = direct_read!(db,
        sqlite: |conn| direct::query(conn, &sql.text, &direct::args(&sql.args), |row| {
            let mut keys = Vec::with_capacity(n);
            for i in 0..n {
                keys.push(row.get::<_, Option<String>>(format!("k{i}").as_str())?);
            }
            Ok(Group {
                keys,
                count: row.get("n")?,
                mean_acknowledge_secs: row.get("mtta")?,
                mean_resolve_secs: row.get("mttr")?,
            })
        }),
        postgres: |pool| {
            use sqlx::Row;
            let rows = bind_args!(sqlx::query(composed(&sql.text)), &sql.args)
                .fetch_all(pool)
                .await?;
            let mut groups = Vec::with_capacity(rows.len());
            for row in rows {
                let mut keys = Vec::with_capacity(n);
                for i in 0..n {
                    keys.push(row.try_get::<Option<String>, _>(i)?);
                }
                groups.push(Group {
                    keys,
                    count: row.try_get(n)?,
                    mean_acknowledge_secs: row.try_get(n + 1)?,
                    mean_resolve_secs: row.try_get(n + 2)?,
                });
            }
            Ok(groups)
        },
    )?;
    // An empty selection still has one group (of zero incidents) when nothing is grouped.
    Ok(groups)
}
