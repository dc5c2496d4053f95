//! Reference photos enrolled by landing in storage as `reference/{user}.{jpg,jpeg,png}`:
//! [`scan`] (part of `media.scan`'s pass) records each new object version with its
//! `media.enroll` job; the job checks the photo once, as `PUT .../reference` does (one face,
//! minimum size, sharpness), and applies the outcome to the participants with that user id
//! (`vigia_store::proctoring::references`).

use vigia_domain::Timestamp;
use vigia_jobs::{BoxFuture, Handler, JobContext, JobError};
use vigia_media::verify::{self, Gates};
use vigia_store::jobs::{JobKind, Task};
use vigia_store::proctoring::landing::known_reference_versions;
use vigia_store::proctoring::references::{self, Check};
use vigia_store::{ObjectKey, Objects};

/// The extensions a reference object may have.
const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// The user id of a reference object's key, `reference/{user}.{jpg,jpeg,png}`; `None` for
/// other keys (among them the API's own copies, `reference/{exam}/{user}.jpg`).
pub fn user_of(key: &str) -> Option<&str> {
    let file = key.strip_prefix("reference/")?;
    if file.contains('/') {
        return None;
    }
    let (user, extension) = file.rsplit_once('.')?;
    let known = EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(extension));
    (known && !user.is_empty()).then_some(user)
}

/// One pass over `reference/` with the default landing rules: records each object version not
/// seen yet; returns how many.
pub async fn scan(db: &vigia_store::Db, objects: &Objects) -> anyhow::Result<usize> {
    scan_with(db, objects, &crate::landing::Rules::default()).await
}

/// One pass over `reference/`: records each object version not seen yet (a local file still
/// being written is left for later, as [`crate::media::scan_with`] does); returns how many.
pub async fn scan_with(
    db: &vigia_store::Db,
    objects: &Objects,
    rules: &crate::landing::Rules,
) -> anyhow::Result<usize> {
    let listed: Vec<_> = objects
        .list_versions("reference/")
        .await?
        .into_iter()
        .filter(|l| user_of(l.key.as_str()).is_some())
        .collect();
    let mut added = 0;
    for page in listed.chunks(1000) {
        let keys: Vec<&str> = page.iter().map(|l| l.key.as_str()).collect();
        let known = known_reference_versions(db, &keys).await?;
        for object in page {
            let key = object.key.as_str();
            if known.contains(&(key.to_owned(), object.version.clone()))
                || !crate::media::landed_whole(objects, object, rules).await
            {
                continue;
            }
            if crate::landing::record_reference(db, key, &object.version)
                .await?
                .is_new()
            {
                added += 1;
            }
        }
    }
    Ok(added)
}

/// `media.enroll`.
pub struct Enroll {
    pub objects: Objects,
}

impl Handler for Enroll {
    fn kind(&self) -> JobKind {
        JobKind::MediaEnroll
    }

    fn run<'a>(&'a self, ctx: &'a JobContext, task: Task) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let Task::MediaEnroll { reference_id } = task else {
                return Err(JobError::permanent(format!(
                    "not a media.enroll job: {task:?}"
                )));
            };
            enroll(ctx, &self.objects, reference_id).await
        })
    }
}

/// Checks one reference object (once) and applies the outcome; idempotent.
pub async fn enroll(ctx: &JobContext, objects: &Objects, id: i64) -> Result<(), JobError> {
    let object = match references::find_object(&ctx.db, id).await {
        Ok(object) => object,
        Err(vigia_store::StoreError::NotFound) => {
            return Err(JobError::permanent(format!(
                "reference object {id} does not exist"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let object = if object.status == "queued" {
        let key = ObjectKey::parse(&object.object_key)
            .map_err(|e| JobError::permanent(format!("bad object key: {e:#}")))?;
        let outcome = match objects.get(&key).await? {
            None => Err("image_unreadable: the file is no longer in storage".to_owned()),
            Some(bytes) => vigia_media::pool::shared()?
                .check_reference(bytes.to_vec(), Gates::default())
                .await?
                .map_err(|reason| verify::refusal(&reason)),
        };
        let now = Timestamp::now();
        match outcome {
            Ok(reference) => {
                let embedding = serde_json::to_string(&reference.embedding)
                    .map_err(|e| JobError::permanent(e.to_string()))?;
                let faces = reference.faces_json().to_string();
                let check = Check::Accepted {
                    embedding_json: &embedding,
                    faces_json: &faces,
                };
                references::record_check(&ctx.db, id, check, now).await?
            }
            Err(refusal) => {
                references::record_check(&ctx.db, id, Check::Refused(&refusal), now).await?
            }
        }
    } else {
        object
    };
    let changed = references::apply(&ctx.db, &object, None, Timestamp::now()).await?;
    tracing::info!(
        id,
        key = %object.object_key,
        status = %object.status,
        refusal = ?object.refusal,
        participants = changed,
        "reference from storage checked"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::user_of;

    #[test]
    fn only_reference_user_with_an_image_extension_is_a_reference_object() {
        assert_eq!(user_of("reference/user_456.jpg"), Some("user_456"));
        assert_eq!(user_of("reference/ana.PNG"), Some("ana"));
        assert_eq!(user_of("reference/a.b.jpeg"), Some("a.b"));
        assert_eq!(
            user_of("reference/EX1/user_456.jpg"),
            None,
            "the API's copy"
        );
        assert_eq!(user_of("reference/user_456.gif"), None);
        assert_eq!(user_of("reference/.jpg"), None);
        assert_eq!(user_of("images/EX1/u/c.jpg"), None);
    }
}
