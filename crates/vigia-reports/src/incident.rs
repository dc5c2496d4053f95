//! The report of one incident for the department it is routed to: the incident, its catalog
//! names and its complete history (internal events included — it is for the department),
//! written to `reports/incidents/{department id}/incident_{id}.json`. The department is named by
//! its numeric id: stable when the department is renamed, and always a safe key segment.

use anyhow::Context;
use bytes::Bytes;
use serde::Serialize;
use vigia_domain::Timestamp;
use vigia_domain::ids::{DepartmentId, IncidentId};
use vigia_domain::incidents::ReadScope;
use vigia_store::incidents::events::{self, StoredEvent};
use vigia_store::incidents::{self, Incident};
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

/// Writes and records the report of incident `id`. `Ok(None)` when the incident has no
/// department yet (there is no one to send it to). Running it again rewrites the same file and
/// updates the same record (under the incident's current department).
#[tracing::instrument(skip(db, objects))]
pub async fn run(
    db: &Db,
    objects: &Objects,
    id: IncidentId,
    created_by: &str,
) -> anyhow::Result<Option<ReportRecord>> {
    let incident = match incidents::find(db, &ReadScope::All, id).await {
        Ok(incident) => incident,
        Err(StoreError::NotFound) => anyhow::bail!("incident {} does not exist", id.0),
        Err(error) => return Err(error).context("loading the incident"),
    };
    let Some(department) = incident.department_id else {
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
