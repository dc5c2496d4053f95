//! The report of one incident for a department it was routed to: the incident, its catalog
//! names, its history and its comments (internal ones included — the report goes to the
//! department's staff contacts), written to `reports/incidents/{department id}/incident_{id}.json`.
//! The department is named by its numeric id: stable when the department is renamed, and always
//! a safe key segment.
//!
//! Every department an incident was routed to gets its own report, even when the incident
//! moved on before the report was written. A department the incident has left sees the history
//! up to the event that moved it away: what its staff could see while they held it.

use anyhow::Context;
use bytes::Bytes;
use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId};
use vigia_domain::incidents::ReadScope;
use vigia_store::incidents::events::{self, StoredEvent};
use vigia_store::incidents::{self, Comment, Incident};
use vigia_store::reports::{self, NewReport, ReportKind, ReportRecord};
use vigia_store::{Db, ObjectKey, Objects, StoreError, catalog};

/// The report as written to `incident_{id}.json`.
#[derive(Debug, Serialize)]
pub struct IncidentReport {
    pub kind: &'static str,
    pub generated_at: Timestamp,
    pub incident: Incident,
    pub department_name: Option<String>,
    pub category_name: Option<String>,
    pub zone_name: Option<String>,
    /// Oldest first.
    pub events: Vec<StoredEvent>,
    /// The comments with their text, internal notes included, oldest first (each
    /// `comment_added` event names one by `comment_id`).
    pub comments: Vec<Comment>,
}

/// The object key of the report of incident `id` routed to `department`.
pub fn object_key(department: DepartmentId, id: IncidentId) -> ObjectKey {
    ObjectKey::join([
        "reports".to_owned(),
        "incidents".to_owned(),
        department.0.to_string(),
        format!("incident_{}.json", id.0),
    ])
}

/// Writes and records the report of incident `id` for `department` (`None`: its current
/// department). `Ok(None)` when it has no department (there is no one to send it to). Running it
/// again rewrites the same file and updates the same record: one per incident and department.
#[tracing::instrument(skip(db, objects))]
pub async fn run(
    db: &Db,
    objects: &Objects,
    id: IncidentId,
    department: Option<DepartmentId>,
    created_by: &str,
) -> anyhow::Result<Option<ReportRecord>> {
    let incident = match incidents::find(db, &ReadScope::All, id).await {
        Ok(incident) => incident,
        Err(StoreError::NotFound) => anyhow::bail!("incident {} does not exist", id.0),
        Err(error) => return Err(error).context("loading the incident"),
    };
    let Some(department) = department.or(incident.department_id) else {
        return Ok(None);
    };
    let mut history = Vec::new();
    let mut after = None;
    loop {
        let page = events::list_for_incident(db, id, true, after, 500).await?;
        history.extend(page.items);
        match page
            .next_cursor
            .as_deref()
            .and_then(vigia_store::Cursor::decode)
        {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    if incident.department_id != Some(department) {
        history.truncate(held_until(&history, department));
    }
    let kept: Vec<i64> = history
        .iter()
        .filter_map(|e| e.data["comment_id"].as_i64())
        .collect();
    let mut comments = incidents::list_comments(db, id, true)
        .await
        .context("loading the comments")?;
    comments.retain(|c| kept.contains(&c.id.0));
    let department_name = catalog::find_department(db, department)
        .await
        .ok()
        .map(|d| d.name);
    let category_name = catalog::find_category(db, incident.category_id)
        .await
        .ok()
        .map(|c| c.name_es);
    let zone_name = match incident.zone_id {
        Some(zone) => catalog::find_zone(db, zone).await.ok().map(|z| z.name),
        None => None,
    };
    let report = IncidentReport {
        kind: "incident",
        generated_at: Timestamp::now(),
        incident,
        department_name,
        category_name,
        zone_name,
        events: history,
        comments,
    };
    let key = object_key(department, id);
    let bytes = serde_json::to_vec_pretty(&report).context("encoding the incident report")?;
    objects.put(&key, Bytes::from(bytes)).await?;
    let summary = serde_json::json!({
        "code": report.incident.code,
        "status": report.incident.status.as_str(),
        "urgency": report.incident.urgency.as_str(),
        "events": report.events.len(),
        "department_name": report.department_name,
    });
    let record = reports::save(
        db,
        &NewReport {
            competition_id: None,
            kind: ReportKind::Incident,
            period_start: Some(report.incident.created_at),
            period_end: Some(report.generated_at),
            incident_id: Some(id),
            department_id: Some(department),
            objects: vec![("json".to_owned(), key.to_string())],
            summary,
            created_by: created_by.to_owned(),
        },
    )
    .await?;
    Ok(Some(record))
}

/// How many of `history`'s first events `department` saw: through the last event that moved the
/// incident away from it (all of them if none did).
fn held_until(history: &[StoredEvent], department: DepartmentId) -> usize {
    history
        .iter()
        .rposition(|e| {
            e.kind == "department_assigned" && e.data["from"].as_i64() == Some(department.0)
        })
        .map_or(history.len(), |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_names_the_department_and_the_incident() {
        assert_eq!(
            object_key(DepartmentId(3), IncidentId(42)).as_str(),
            "reports/incidents/3/incident_42.json"
        );
    }
}
