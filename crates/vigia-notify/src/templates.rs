//! E-mail templates (minijinja): one plain-text and one HTML template per message and
//! language. Spanish is the default; English when the recipient's account says so. The first
//! line of the text template is the subject. HTML templates escape what they insert.

use minijinja::Environment;
use serde::Serialize;

/// A message's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Es,
    En,
}

impl Lang {
    /// `en` → English; anything else → Spanish.
    pub fn from_locale(locale: Option<&str>) -> Self {
        match locale {
            Some("en") => Lang::En,
            _ => Lang::Es,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Es => "es",
            Lang::En => "en",
        }
    }
}

/// Which message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// To a department's contacts: an incident was routed to them.
    IncidentAssigned,
    /// To the emergency recipients: a new emergency or high-urgency incident.
    IncidentUrgent,
    /// To the reporter who opted in: their incident changed status.
    StatusChanged,
    /// To a department's escalation contacts: an incident missed its SLA.
    IncidentEscalated,
    /// To a report's subscribers.
    Report,
    /// To a recipient over their rate: the e-mails held back, gathered into one.
    Digest,
    /// To the departments an alert rule tells: an alert was raised, acknowledged or resolved.
    Alert,
    /// To an exam department's contacts: proctoring gave a participant's final alert.
    ProctoringAlert,
}

impl Template {
    fn name(self) -> &'static str {
        match self {
            Template::IncidentAssigned => "incident_assigned",
            Template::IncidentUrgent => "incident_urgent",
            Template::StatusChanged => "status_changed",
            Template::IncidentEscalated => "incident_escalated",
            Template::Report => "report",
            Template::Digest => "digest",
            Template::Alert => "alert",
            Template::ProctoringAlert => "proctoring_alert",
        }
    }
}

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RenderedEmail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

macro_rules! templates {
    ($env:ident, $($name:literal),+ $(,)?) => {
        $(
            $env.add_template($name, include_str!(concat!("../templates/", $name)))?;
        )+
    };
}

/// The compiled templates.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    pub fn new() -> anyhow::Result<Self> {
        let mut env = Environment::new();
        templates!(
            env,
            "layout.html",
            "incident_assigned.es.txt",
            "incident_assigned.en.txt",
            "incident_assigned.es.html",
            "incident_assigned.en.html",
            "incident_urgent.es.txt",
            "incident_urgent.en.txt",
            "incident_urgent.es.html",
            "incident_urgent.en.html",
            "status_changed.es.txt",
            "status_changed.en.txt",
            "status_changed.es.html",
            "status_changed.en.html",
            "incident_escalated.es.txt",
            "incident_escalated.en.txt",
            "incident_escalated.es.html",
            "incident_escalated.en.html",
            "report.es.txt",
            "report.en.txt",
            "report.es.html",
            "report.en.html",
            "digest.es.txt",
            "digest.en.txt",
            "digest.es.html",
            "digest.en.html",
            "alert.es.txt",
            "alert.en.txt",
            "alert.es.html",
            "alert.en.html",
            "proctoring_alert.es.txt",
            "proctoring_alert.en.txt",
            "proctoring_alert.es.html",
            "proctoring_alert.en.html",
        );
        Ok(Self { env })
    }

    /// Renders `template` in `lang` with `context` (any serializable map).
    pub fn render(
        &self,
        template: Template,
        lang: Lang,
        context: serde_json::Value,
    ) -> anyhow::Result<RenderedEmail> {
        let base = format!("{}.{}", template.name(), lang.as_str());
        let mut context = context;
        if let Some(map) = context.as_object_mut() {
            map.insert("locale".into(), lang.as_str().into());
        }
        let text = self
            .env
            .get_template(&format!("{base}.txt"))?
            .render(minijinja::value::Serde(&context))?;
        let (subject, body) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        let subject = subject.trim().to_owned();
        if let Some(map) = context.as_object_mut() {
            map.insert("subject".into(), subject.clone().into());
        }
        let html = self
            .env
            .get_template(&format!("{base}.html"))?
            .render(minijinja::value::Serde(&context))?;
        Ok(RenderedEmail {
            text: body.trim_start_matches('\n').to_owned(),
            subject,
            html,
        })
    }
}

/// A human label for an urgency.
pub fn urgency_label(lang: Lang, urgency: &str) -> String {
    let label = match (lang, urgency) {
        (Lang::Es, "low") => "baja",
        (Lang::Es, "medium") => "media",
        (Lang::Es, "high") => "alta",
        (Lang::Es, "emergency") => "emergencia",
        (_, other) => other,
    };
    label.to_owned()
}

/// A human label for a status.
pub fn status_label(lang: Lang, status: &str) -> String {
    let label = match (lang, status) {
        (Lang::Es, "new") => "nuevo",
        (Lang::Es, "acknowledged") => "recibido",
        (Lang::Es, "in_progress") => "en curso",
        (Lang::Es, "on_hold") => "en espera",
        (Lang::Es, "resolved") => "resuelto",
        (Lang::Es, "closed") => "cerrado",
        (Lang::En, "in_progress") => "in progress",
        (Lang::En, "on_hold") => "on hold",
        (_, other) => other,
    };
    label.to_owned()
}

/// A human label for an alert's severity.
pub fn severity_label(lang: Lang, severity: &str) -> String {
    let label = match (lang, severity) {
        (Lang::Es, "low") => "baja",
        (Lang::Es, "medium") => "media",
        (Lang::Es, "high") => "alta",
        (_, other) => other,
    };
    label.to_owned()
}

/// A human label for an alert's status.
pub fn alert_status_label(lang: Lang, status: &str) -> String {
    let label = match (lang, status) {
        (Lang::Es, "pending") => "pendiente",
        (Lang::Es, "acknowledged") => "reconocida",
        (Lang::Es, "resolved") => "resuelta",
        (_, other) => other,
    };
    label.to_owned()
}

/// A human label for why a capture alerted (`face_mismatch`, `no_face`, ...).
pub fn proctoring_reason_label(lang: Lang, reason: &str) -> String {
    let label = match (lang, reason) {
        (Lang::Es, "face_mismatch") => "el rostro no coincide con el de referencia",
        (Lang::Es, "no_face") => "no se ve ningún rostro",
        (Lang::Es, "multiple_faces") => "hay más de un rostro",
        (Lang::Es, "face_too_small") => "el rostro es demasiado pequeño",
        (Lang::Es, "face_blurry") => "el rostro está borroso",
        (Lang::Es, "image_unreadable") => "la imagen no se puede leer",
        (Lang::Es, "reference_missing") => "no hay foto de referencia",
        (Lang::Es, "outside_window") => "captura fuera del horario del examen",
        (Lang::En, "face_mismatch") => "the face does not match the reference",
        (Lang::En, "no_face") => "no face in sight",
        (Lang::En, "multiple_faces") => "more than one face",
        (Lang::En, "face_too_small") => "the face is too small",
        (Lang::En, "face_blurry") => "the face is blurry",
        (Lang::En, "image_unreadable") => "the image cannot be read",
        (Lang::En, "reference_missing") => "no reference photo",
        (Lang::En, "outside_window") => "capture outside the exam window",
        (_, other) => other,
    };
    label.to_owned()
}

/// A human label for an SLA breach (`acknowledge` or `resolve`).
pub fn breach_label(lang: Lang, breach: &str) -> String {
    let label = match (lang, breach) {
        (Lang::Es, "acknowledge") => "nadie lo recibió a tiempo",
        (Lang::Es, "resolve") => "no se resolvió a tiempo",
        (Lang::En, "acknowledge") => "nobody acknowledged it in time",
        (Lang::En, "resolve") => "it was not resolved in time",
        (_, other) => other,
    };
    label.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> serde_json::Value {
        json!({
            "incident": {
                "code": "INC-000007", "title": "Fuga de agua <baño>", "description": "Mucha agua",
                "urgency_label": "alta", "status_label": "nuevo", "category": "Agua",
                "department": "Mantenimiento", "location": "Pabellón A",
            },
            "links": { "incident": "https://vigia.example/incidents/INC-000007",
                       "report": "https://vigia.example/api/v1/incidents/7/report",
                       "alert": "https://vigia.example/alerts/12" },
            "kind": "raised", "actor": "system", "department": "Mantenimiento",
            "alert": { "id": 12, "rule": "Estrés prolongado", "subject_code": "EMP001",
                       "subject_name": "Ana", "severity_label": "alta",
                       "status_label": "pendiente", "detection_count": 10,
                       "confidence": "0.87", "window_start": "10:00", "window_end": "10:15",
                       "notes": null },
            "exam": { "id": 3, "code": "EX1", "title": "Cálculo I" },
            "participant": { "name": "Ana", "user_id": "user_456" },
            "capture": { "id": 9, "file_name": "capture_003.jpg",
                         "distance": "0.71", "threshold": 0.6 },
            "reason_label": "el rostro no coincide con el de referencia",
        })
    }

    #[test]
    fn a_final_proctoring_alert_mail_names_exam_participant_and_reason_and_escapes_html() {
        let t = Templates::new().expect("templates compile");
        let context = |reason: &str| {
            json!({
                "department": "Académico",
                "exam": { "id": 3, "code": "EX1", "title": "Cálculo <I>" },
                "participant": { "name": "Ana", "user_id": "user_456" },
                "capture": { "id": 9, "file_name": "capture_003.jpg",
                             "distance": null, "threshold": 0.6 },
                "reason_label": reason,
                "links": { "exam": "https://vigia.example/proctoring/exams/3/live" },
            })
        };
        let es = t
            .render(
                Template::ProctoringAlert,
                Lang::Es,
                context("no se ve ningún rostro"),
            )
            .expect("renders");
        assert_eq!(es.subject, "[ALERTA FINAL] Examen EX1: Ana (user_456)");
        assert!(es.text.contains("no se ve ningún rostro"), "{}", es.text);
        assert!(
            es.text
                .contains("https://vigia.example/proctoring/exams/3/live")
        );
        assert!(
            !es.text.contains("Distancia"),
            "no distance without one: {}",
            es.text
        );
        assert!(es.html.contains("Cálculo &lt;I&gt;"), "{}", es.html);
        let en = t
            .render(
                Template::ProctoringAlert,
                Lang::En,
                context("no face in sight"),
            )
            .expect("renders");
        assert!(
            en.subject.starts_with("[FINAL ALERT] Exam EX1"),
            "{}",
            en.subject
        );
        assert!(
            en.text.contains("Capture: capture_003.jpg (no. 9)"),
            "{}",
            en.text
        );
    }

    #[test]
    fn every_template_renders_in_both_languages() {
        let t = Templates::new().expect("templates compile");
        for template in [
            Template::IncidentAssigned,
            Template::IncidentUrgent,
            Template::StatusChanged,
            Template::IncidentEscalated,
            Template::Report,
            Template::Digest,
            Template::Alert,
            Template::ProctoringAlert,
        ] {
            for lang in [Lang::Es, Lang::En] {
                let mail = t.render(template, lang, context()).expect("renders");
                assert!(!mail.subject.is_empty(), "{template:?} {lang:?}");
                assert!(mail.html.contains(&format!("lang=\"{}\"", lang.as_str())));
            }
        }
    }

    #[test]
    fn an_alert_mail_says_what_happened_in_each_language_and_escapes_html() {
        let t = Templates::new().expect("templates compile");
        let context = |kind: &str| {
            json!({
                "kind": kind, "actor": "user:4", "department": "Personas",
                "alert": { "id": 12, "rule": "Estrés prolongado", "subject_code": "EMP001",
                           "subject_name": "Ana <b>", "severity_label": "alta",
                           "status_label": "pendiente", "detection_count": 10,
                           "confidence": "0.87", "window_start": "10:00", "window_end": "10:15",
                           "notes": null },
                "links": { "alert": "https://vigia.example/alerts/12" },
            })
        };
        let raised = t
            .render(Template::Alert, Lang::Es, context("raised"))
            .expect("renders");
        assert_eq!(
            raised.subject,
            "[Alerta 12] Severidad alta: Estrés prolongado · EMP001"
        );
        assert!(raised.text.contains("https://vigia.example/alerts/12"));
        assert!(raised.html.contains("Ana &lt;b&gt;"), "{}", raised.html);
        let resolved = t
            .render(Template::Alert, Lang::En, context("resolved"))
            .expect("renders");
        assert!(
            resolved.subject.starts_with("[Alert 12] Resolved:"),
            "{}",
            resolved.subject
        );
        assert!(resolved.text.contains("user:4 resolved alert 12"));
    }

    #[test]
    fn the_assignment_mail_is_spanish_by_default_links_the_incident_and_escapes_html() {
        let t = Templates::new().expect("templates compile");
        let es = t
            .render(
                Template::IncidentAssigned,
                Lang::from_locale(None),
                context(),
            )
            .expect("renders");
        assert_eq!(
            es.subject,
            "[INC-000007] Nuevo incidente para Mantenimiento: Fuga de agua <baño>"
        );
        assert!(
            es.text
                .contains("Ver el incidente: https://vigia.example/incidents/INC-000007")
        );
        assert!(
            es.text
                .contains("https://vigia.example/api/v1/incidents/7/report")
        );
        assert!(es.html.contains("Fuga de agua &lt;baño&gt;"));
        let en = t
            .render(Template::IncidentAssigned, Lang::En, context())
            .expect("renders");
        assert!(en.text.contains("View the incident"));
    }
}
