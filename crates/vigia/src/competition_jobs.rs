//! `competition.results`: when a competition's voting closes, its ranking is frozen (once:
//! a compare-and-set on `frozen_at`) and published as a report —
//! `reports/competitions/{id}/results.json` and `.csv`, a `competition` row in the reports
//! list. Enqueued with the competition for `voting_close_at`; a run that comes early (another
//! node's clock) waits for the rest of the window; a rerun publishes the same frozen ranking.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use vigia_domain::Timestamp;
use vigia_domain::ids::DepartmentId;
use vigia_jobs::{BoxFuture, Handler, JobContext, JobError, Registry};
use vigia_store::competitions::{self, Competition};
use vigia_store::jobs::{JobKind, Task};
use vigia_store::reports::{self, NewReport, ReportKind};
use vigia_store::{Db, ObjectKey, Objects, StoreError};

pub fn register(registry: &mut Registry, objects: &Objects) {
    registry.register(FreezeResults {
        objects: objects.clone(),
    });
}

pub struct FreezeResults {
    pub objects: Objects,
}

impl Handler for FreezeResults {
    fn kind(&self) -> JobKind {
        JobKind::CompetitionResults
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let Task::CompetitionResults { competition_id } = task else {
                return Err(JobError::permanent(format!(
                    "not a competition.results job: {task:?}"
                )));
            };
            let competition = match competitions::find(&ctx.db, competition_id).await {
                Ok(c) => c,
                Err(StoreError::NotFound) => return Ok(()), // deleted
                Err(e) => return Err(e.into()),
            };
            let close = competition.voting_close_at;
            if !competition.windows().is_over(ctx.now) {
                let wait = (close - ctx.now.millis()).max(0) as u64;
                return Err(JobError::Retry {
                    reason: format!("voting closes at {}", Timestamp::from_millis(close)),
                    after: Some(Duration::from_millis(wait)),
                });
            }
            publish(&ctx.db, &self.objects, competition, ctx.now)
                .await
                .map_err(|e| JobError::retry(format!("{e:#}")))?;
            Ok(())
        })
    }
}

/// Freezes the ranking (unless it already is) and writes the report's files and row.
pub async fn publish(
    db: &Db,
    objects: &Objects,
    competition: Competition,
    now: Timestamp,
) -> anyhow::Result<()> {
    let id = competition.id;
    let frozen = match competition.results {
        Some(_) => competition,
        None => {
            let document = results_document(db, &competition, now).await?;
            competitions::freeze(db, id, &document.to_string(), now).await?
        }
    };
    let document: Value = serde_json::from_str(frozen.results.as_deref().unwrap_or("null"))?;
    let json_key = ObjectKey::parse(&format!("reports/competitions/{id}/results.json"))?;
    let csv_key = ObjectKey::parse(&format!("reports/competitions/{id}/results.csv"))?;
    objects
        .put(
            &json_key,
            Bytes::from(serde_json::to_vec_pretty(&document)?),
        )
        .await?;
    objects
        .put(&csv_key, Bytes::from(results_csv(&document)))
        .await?;
    let ranking = document["ranking"].as_array().cloned().unwrap_or_default();
    let summary = json!({
        "competition_id": id,
        "title": frozen.title,
        "entries": ranking.len(),
        "votes": document["votes"],
        "winner": ranking.first().map(|w| json!({"entry_id": w["entry_id"], "title": w["title"], "author": w["author"], "votes": w["votes"]})),
        "frozen_at": document["frozen_at"],
    });
    reports::save(
        db,
        &NewReport {
            kind: ReportKind::Competition,
            period_start: Some(Timestamp::from_millis(frozen.voting_open_at)),
            period_end: Some(Timestamp::from_millis(frozen.voting_close_at)),
            incident_id: None,
            department_id: frozen.department_id.map(DepartmentId),
            competition_id: Some(id),
            objects: vec![
                ("json".into(), json_key.as_str().to_owned()),
                ("csv".into(), csv_key.as_str().to_owned()),
            ],
            summary,
            created_by: "system".into(),
        },
    )
    .await?;
    tracing::info!(competition_id = id, "competition results published");
    Ok(())
}

async fn results_document(
    db: &Db,
    competition: &Competition,
    now: Timestamp,
) -> anyhow::Result<Value> {
    let standings = competitions::standings(db, competition.id).await?;
    let votes: i64 = standings.iter().map(|s| s.entry.votes).sum();
    let ranking: Vec<Value> = standings
        .iter()
        .map(|s| {
            json!({
                "place": s.place,
                "entry_id": s.entry.id,
                "title": s.entry.title,
                "author": s.entry.author,
                "votes": s.entry.votes,
                "first_vote_at": s.entry.first_vote_at.map(|t| Timestamp::from_millis(t).to_rfc3339()),
            })
        })
        .collect();
    let at = |ms: i64| Timestamp::from_millis(ms).to_rfc3339();
    Ok(json!({
        "kind": "competition",
        "competition_id": competition.id,
        "title": competition.title,
        "description": competition.description,
        "department_id": competition.department_id,
        "voting_open_at": at(competition.voting_open_at),
        "voting_close_at": at(competition.voting_close_at),
        "frozen_at": now.to_rfc3339(),
        "votes": votes,
        "ranking": ranking,
    }))
}

fn csv_field(value: &Value) -> String {
    let text = match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// One line per ranked entry: `place,entry_id,title,author,votes,first_vote_at`.
pub fn results_csv(document: &Value) -> String {
    const COLUMNS: [&str; 6] = [
        "place",
        "entry_id",
        "title",
        "author",
        "votes",
        "first_vote_at",
    ];
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for row in document["ranking"].as_array().into_iter().flatten() {
        let line: Vec<String> = COLUMNS.iter().map(|c| csv_field(&row[*c])).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_quotes_titles_with_commas_and_quotes() {
        let doc = json!({"ranking": [{"place": 1, "entry_id": 4, "title": "Hola, \"mundo\"", "author": "Ana", "votes": 2, "first_vote_at": null}]});
        assert_eq!(
            results_csv(&doc),
            "place,entry_id,title,author,votes,first_vote_at\r\n1,4,\"Hola, \"\"mundo\"\"\",Ana,2,\r\n"
        );
    }
}
