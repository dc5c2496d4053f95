//! Captures (`images/{exam code}/{user}/{file}`) and reference photos (`reference/{user}.jpg`)
//! found as they land in storage, and recorded once each with their job (`media.analyze`,
//! `media.enroll`) in the same transaction.
//!
//! - a local directory: [`watch`] follows `images/` and `reference/` with inotify (the `notify`
//!   crate) and takes a file when it is complete: at once when it was renamed into place, else
//!   once nothing touched it for `landing.settle_ms` and it ends like a whole image
//!   ([`vigia_media::whole`]).
//! - S3: [`lister`] lists the keys after a durable cursor (`landing_cursors`) every
//!   `landing.s3_poll_ms`; keys do not land in key order, so one that sorts before the cursor
//!   is found by the reconciliation pass instead.
//! - both: the reconciliation pass, `media.scan` ([`crate::media::scan_with`], every 10 s by
//!   default and once when a node starts), lists everything: the safety net for events lost
//!   (watcher overflow, files landed while no node ran) and for keys behind the cursor.
//!
//! The unique object key (a capture) or key and version (a reference) is the only guard
//! against recording an object twice: watchers, listers and scans on any number of nodes may
//! race, and restarts may see an object again; the loser's insert changes nothing.

pub mod lister;
pub mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_store::proctoring::{self, Exam, NewCapture};
use vigia_store::{Db, ObjectKey, Objects, StoreError};

use crate::config::LandingSection;

/// When a local file is complete enough to take.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// Nothing touched it for this long.
    pub settle: Duration,
    /// It does not look whole, but it has waited this long: taken as it is (and analysed as
    /// unreadable if it really is cut short).
    pub incomplete_wait: Duration,
}

impl Default for Rules {
    fn default() -> Self {
        Self::from(&LandingSection::default())
    }
}

impl From<&LandingSection> for Rules {
    fn from(section: &LandingSection) -> Self {
        Self {
            settle: Duration::from_millis(section.settle_ms),
            incomplete_wait: Duration::from_secs(section.incomplete_wait_secs),
        }
    }
}

/// A node's landing: its watcher or lister, started beside the job workers.
pub struct Landing {
    pub db: Db,
    pub objects: Objects,
    pub section: LandingSection,
    /// Wakes this node's idle worker when something was recorded.
    pub wake: Arc<Notify>,
}

impl Landing {
    /// Catches up once (what landed while no node ran), then watches (local directory) or
    /// lists (S3) until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let rules = Rules::from(&self.section);
        if self.objects.local_root().is_some() {
            // The watch is set before the catch-up pass, so nothing lands unseen in between.
            let watcher = match watch::Watcher::start(&self.objects) {
                Ok(watcher) => Some(watcher),
                Err(error) => {
                    tracing::warn!(
                        "cannot watch the storage directory ({error:#}); captures are found by media.scan only"
                    );
                    None
                }
            };
            self.catch_up(rules).await;
            if let Some(watcher) = watcher {
                watcher.run(&self, rules, shutdown).await;
            }
        } else {
            self.catch_up(rules).await;
            lister::run(&self, shutdown).await;
        }
    }

    async fn catch_up(&self, rules: Rules) {
        match crate::media::reconcile(&self.db, &self.objects, &rules).await {
            Ok(found) if found > 0 => {
                tracing::info!(found, "captures and reference photos found at start");
                self.wake.notify_one();
            }
            Ok(_) => {}
            Err(error) => tracing::warn!("catch-up pass failed: {error:#}"),
        }
    }
}

/// What recording one object did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landed {
    /// A new capture, with its `media.analyze` job.
    Capture(i64),
    /// A new reference object version, with its `media.enroll` job.
    Reference(i64),
    /// Already recorded (by this node before, or by another).
    Known,
    /// Not a capture or a reference (another key, a temporary name, an unknown exam, gone).
    Skipped,
}

impl Landed {
    pub fn is_new(self) -> bool {
        matches!(self, Self::Capture(_) | Self::Reference(_))
    }
}

/// The exams a pass has looked up by code (`None`: no such exam), so a pass over many
/// captures of one exam asks once.
#[derive(Default)]
pub struct Exams(HashMap<String, Option<Exam>>);

impl Exams {
    async fn by_code(&mut self, db: &Db, code: &str) -> anyhow::Result<Option<Exam>> {
        if let Some(known) = self.0.get(code) {
            return Ok(known.clone());
        }
        let exam = match proctoring::find_exam_by_code(db, code).await {
            Ok(exam) => Some(exam),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        self.0.insert(code.to_owned(), exam.clone());
        Ok(exam)
    }
}

/// A name written while a file is on its way: hidden files (`.name`, rsync's `.name.XXXXXX`),
/// `*.tmp`, `*.part`, `*.partial`, `*.crdownload`, `*~`, and the store's own staging files
/// (`name#N`). Never a capture or a reference; the file renamed from it is.
pub fn is_temporary(file: &str) -> bool {
    let lower = file.to_ascii_lowercase();
    let staging = file
        .rsplit_once('#')
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    file.starts_with('.')
        || file.ends_with('~')
        || staging
        || [".tmp", ".part", ".partial", ".crdownload", ".filepart"]
            .iter()
            .any(|ext| lower.ends_with(ext))
}

/// The parts of a capture's key, `images/{exam code}/{user}/{file}`.
pub fn capture_parts(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix("images/")?;
    let mut parts = rest.split('/');
    let (code, user, file) = (parts.next()?, parts.next()?, parts.next()?);
    (parts.next().is_none() && !is_temporary(file)).then_some((code, user, file))
}

/// Records `key` as a capture if it is one: files under an unknown exam code are skipped
/// (logged), those of an unknown user in a known exam recorded (analysed as
/// `reference_missing`).
pub async fn record_capture(db: &Db, exams: &mut Exams, key: &str) -> anyhow::Result<Landed> {
    let Some((code, user, file)) = capture_parts(key) else {
        return Ok(Landed::Skipped);
    };
    let Some(exam) = exams.by_code(db, code).await? else {
        tracing::debug!(key, "no exam with this code: object skipped");
        return Ok(Landed::Skipped);
    };
    let participant = proctoring::find_participant_by_external(db, exam.id, user).await?;
    let new = NewCapture {
        exam_id: exam.id,
        participant_id: participant.map(|p| p.id),
        external_id: user.to_owned(),
        object_key: key.to_owned(),
        file_name: file.to_owned(),
        origin: "storage",
    };
    Ok(
        match proctoring::insert_capture(db, &new, Timestamp::now()).await? {
            Some(capture) => Landed::Capture(capture.id),
            None => Landed::Known,
        },
    )
}

/// Records this version of `key` as a reference object if it is one.
pub async fn record_reference(db: &Db, key: &str, version: &str) -> anyhow::Result<Landed> {
    let Some(user) = crate::media_reference::user_of(key) else {
        return Ok(Landed::Skipped);
    };
    if is_temporary(key.rsplit('/').next().unwrap_or(key)) {
        return Ok(Landed::Skipped);
    }
    let recorded =
        proctoring::references::record_object(db, key, version, user, Timestamp::now()).await?;
    Ok(recorded.map_or(Landed::Known, |r| Landed::Reference(r.id)))
}

/// Records one object that landed, whichever it is; a reference's version is read from the
/// store.
pub async fn record(
    db: &Db,
    objects: &Objects,
    exams: &mut Exams,
    key: &ObjectKey,
) -> anyhow::Result<Landed> {
    if key.as_str().starts_with("images/") {
        record_capture(db, exams, key.as_str()).await
    } else if crate::media_reference::user_of(key.as_str()).is_some() {
        match objects.head(key).await? {
            Some(listed) => record_reference(db, key.as_str(), &listed.version).await,
            None => Ok(Landed::Skipped),
        }
    } else {
        Ok(Landed::Skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_are_never_captures() {
        for name in [
            ".cap.jpg.Xy12Ab",
            "cap.jpg.tmp",
            "cap.jpg.part",
            "cap.jpg~",
            "cap.jpg#3",
            "cap.JPG.crdownload",
        ] {
            assert!(is_temporary(name), "{name}");
            assert_eq!(
                capture_parts(&format!("images/EX1/u/{name}")),
                None,
                "{name}"
            );
        }
        assert!(!is_temporary("cap#final.jpg"));
        assert_eq!(
            capture_parts("images/EX1/user_456/capture_001.jpg"),
            Some(("EX1", "user_456", "capture_001.jpg"))
        );
        assert_eq!(capture_parts("images/EX1/user_456"), None);
        assert_eq!(capture_parts("images/EX1/u/deeper/c.jpg"), None);
    }
}
