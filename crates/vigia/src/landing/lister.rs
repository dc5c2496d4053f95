//! The S3 lister: every `landing.s3_poll_ms`, for `images/` and `reference/`, one
//! `ListObjectsV2` request for the keys after the prefix's cursor (`start-after`), which
//! records the new ones and moves the cursor to the last key listed (compare-and-set, in the
//! `landing_cursors` table: durable across restarts, shared by the nodes). A full page is
//! followed at once by the next.
//!
//! S3 lists in key order, but keys do not land in that order: a capture of user `ana` landing
//! after one of `zoe` sorts before the cursor and is not listed here. That one is found by the
//! reconciliation pass (`media.scan`, every 10 s by default), as is a replaced reference photo
//! (same key, new version). So the delay is one poll interval for a key that sorts after every
//! key listed before it, and one reconciliation period for the others.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_store::proctoring::landing;
use vigia_store::{Db, Objects};

use super::{Exams, Landed, Landing};

/// The prefixes listed after a cursor.
pub const PREFIXES: [&str; 2] = ["images/", "reference/"];

/// What one pass over one prefix did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Keys listed after the cursor.
    pub listed: usize,
    /// New captures or reference versions recorded.
    pub recorded: usize,
}

/// Lists every prefix after its cursor every `landing.s3_poll_ms`, until `shutdown`.
pub async fn run(landing: &Landing, shutdown: CancellationToken) {
    let every = Duration::from_millis(landing.section.s3_poll_ms);
    loop {
        for prefix in PREFIXES {
            match pass(
                &landing.db,
                &landing.objects,
                prefix,
                landing.section.s3_page,
            )
            .await
            {
                Ok(done) if done.recorded > 0 => {
                    tracing::info!(
                        prefix,
                        recorded = done.recorded,
                        "landed in storage: recorded"
                    );
                    landing.wake.notify_one();
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(prefix, "listing after the cursor failed: {error:#}"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Lists `prefix` after its cursor, page by page while pages are full, recording what is new
/// and moving the cursor past each page once it is recorded. Another node moving the cursor
/// first ends the pass (that node records the page; the inserts of both are safe).
pub async fn pass(db: &Db, objects: &Objects, prefix: &str, page: usize) -> anyhow::Result<Pass> {
    let scope = objects.scope(prefix);
    let mut done = Pass::default();
    let mut exams = Exams::default();
    loop {
        let cursor = landing::cursor(db, &scope).await?;
        let listed = objects.list_page(prefix, cursor.as_deref(), page).await?;
        let Some(last) = listed.last.as_deref() else {
            return Ok(done);
        };
        done.listed += listed.objects.len();
        let keys: Vec<&str> = listed.objects.iter().map(|o| o.key.as_str()).collect();
        if prefix == "images/" {
            let known = landing::known_capture_keys(db, &keys).await?;
            for key in keys.iter().filter(|k| !known.contains(**k)) {
                if let Landed::Capture(_) = super::record_capture(db, &mut exams, key).await? {
                    done.recorded += 1;
                }
            }
        } else {
            let known = landing::known_reference_versions(db, &keys).await?;
            for object in &listed.objects {
                let key = object.key.as_str();
                if known.contains(&(key.to_owned(), object.version.clone())) {
                    continue;
                }
                if super::record_reference(db, key, &object.version)
                    .await?
                    .is_new()
                {
                    done.recorded += 1;
                }
            }
        }
        let moved =
            landing::advance_cursor(db, &scope, cursor.as_deref(), last, Timestamp::now()).await?;
        if !moved || !listed.full {
            return Ok(done);
        }
    }
}
