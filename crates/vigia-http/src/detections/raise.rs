//! Raising one alert: stored with its history; a `high` alert of a rule that says so opens an
//! incident (source `rule`) in the subject's department, linked both ways.

use vigia_domain::Timestamp;
use vigia_domain::catalog::Urgency;
use vigia_domain::detections::{Candidate, Severity};
use vigia_domain::ids::DepartmentId;
use vigia_domain::incidents::{
    IncidentDescription, IncidentTitle, IncidentVisibility, NewIncident, Source,
};
use vigia_store::detections::alerts::{self, Alert};
use vigia_store::detections::devices::Device;
use vigia_store::detections::ingest::Accepted;
use vigia_store::detections::rules::AlertRule;
use vigia_store::incidents::{self, Reporter};
use vigia_store::{Db, StoreResult};

pub(super) async fn raise(
    db: &Db,
    rule: &AlertRule,
    detection: &Accepted,
    device: &Device,
    candidate: &Candidate,
) -> StoreResult<Alert> {
    let mut alert = alerts::raise(
        db,
        rule.id,
        detection.subject,
        detection.department,
        device.id,
        candidate,
    )
    .await?;
    tracing::info!(alert_id = %alert.id, rule_id = %rule.id, subject_id = %detection.subject,
        severity = candidate.severity.as_str(), "alert raised");
    if candidate.severity == Severity::High
        && rule.open_incident
        && let Some(category) = rule.incident_category_id
    {
        match open_incident(db, rule, &alert, detection.department, category).await {
            Ok(incident) => {
                alerts::link_incident(db, alert.id, incident).await?;
                alert.incident_id = Some(incident);
            }
            Err(error) => {
                tracing::error!(%error, alert_id = %alert.id, "the alert could not open its incident");
            }
        }
    }
    Ok(alert)
}

async fn open_incident(
    db: &Db,
    rule: &AlertRule,
    alert: &Alert,
    department: DepartmentId,
    category: vigia_domain::ids::CategoryId,
) -> StoreResult<vigia_domain::ids::IncidentId> {
    let title = format!("Alerta: {} (sujeto {})", rule.name, alert.subject_id);
    let description = format!(
        "Alerta {} de la regla «{}»: {} detecciones con confianza media {:.2} entre {} y {}.",
        alert.id,
        rule.name,
        alert.detection_count,
        alert.confidence_avg as f64 / 1e6,
        alert.window_start,
        alert.window_end
    );
    let invalid =
        |e: vigia_domain::FieldError| vigia_store::StoreError::Other(anyhow::anyhow!("{e}"));
    let new = NewIncident {
        title: IncidentTitle::parse("title", &title).map_err(invalid)?,
        description: IncidentDescription::parse("description", &description).map_err(invalid)?,
        category_id: category,
        urgency: Some(Urgency::High),
        department_id: Some(department),
        location: None,
        visibility: IncidentVisibility::Private,
        source: Source::Rule,
    };
    let reporter = Reporter {
        user: None,
        label: format!("alert_rule:{}", rule.id),
    };
    let incident = incidents::create(db, &new, &reporter, None, Timestamp::now()).await?;
    Ok(incident.id)
}
