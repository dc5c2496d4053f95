//! The local directory's watcher: inotify (through `notify`) on `images/` and `reference/`,
//! recursive, so a capture is recorded as soon as its file is complete:
//!
//! - renamed into place (the safe way to land a file; also how the store's own `put` lands
//!   one): taken at once;
//! - written in place (a copy, an upload in several steps, with or without closing between
//!   them): taken once no event touched it for `settle`, if it ends like a whole image
//!   ([`vigia_media::whole`]); if it does not, it is looked at again every `settle`, and taken
//!   as it is after `incomplete_wait` (then its analysis says `image_unreadable`).
//!
//! Files the store itself writes (a capture sent to the API: a staging file `name#N` renamed
//! into place) are left to the request that wrote them, which records them.
//!
//! A directory created under the watch is walked once, for files that landed in it before its
//! own watch was set. When the kernel's queue overflowed (events lost), a reconciliation pass
//! runs at once. Temporary names ([`super::is_temporary`]) are never taken.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
use notify::{Event, EventKind, EventKindMask, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigia_media::whole::{self, HEAD_BYTES, TAIL_BYTES, Whole};
use vigia_store::Objects;

use super::{Exams, Landing, Rules, is_temporary};

/// The prefixes watched under the storage directory.
const WATCHED: [&str; 2] = ["images", "reference"];

/// A watch set on the storage directory; its events wait in a channel until [`Watcher::run`].
pub struct Watcher {
    /// Dropping it removes the watches.
    _inner: notify::RecommendedWatcher,
    events: mpsc::Receiver<notify::Result<Event>>,
}

impl Watcher {
    /// Creates `images/` and `reference/` if missing and watches both.
    pub fn start(objects: &Objects) -> anyhow::Result<Self> {
        use anyhow::Context;
        let root = objects
            .local_root()
            .context("not a local storage directory")?
            .to_path_buf();
        let (tx, events) = mpsc::channel(4096);
        let config = notify::Config::default()
            .with_event_kinds(EventKindMask::CORE | EventKindMask::ACCESS_CLOSE);
        let mut inner = notify::RecommendedWatcher::new(
            move |event| {
                // On notify's own thread: waiting here backs up into the kernel's queue, whose
                // overflow is reported and answered with a reconciliation pass.
                let _ = tx.blocking_send(event);
            },
            config,
        )
        .context("cannot start a file watcher")?;
        for prefix in WATCHED {
            let dir = root.join(prefix);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            inner
                .watch(&dir, RecursiveMode::Recursive)
                .with_context(|| format!("cannot watch {}", dir.display()))?;
        }
        tracing::info!(dir = %root.display(), "watching storage for captures and reference photos");
        Ok(Self {
            _inner: inner,
            events,
        })
    }

    /// Takes complete files as events come, until `shutdown`.
    pub async fn run(mut self, landing: &Landing, rules: Rules, shutdown: CancellationToken) {
        let mut pending = Pending::default();
        loop {
            let wait = pending.next_due().map_or(Duration::from_secs(3600), |due| {
                due.saturating_duration_since(Instant::now())
            });
            tokio::select! {
                event = self.events.recv() => match event {
                    Some(Ok(event)) => {
                        if event.need_rescan() {
                            tracing::warn!("file watcher lost events: reconciling now");
                            landing.catch_up(rules).await;
                        }
                        pending.note(&event, rules.settle);
                    }
                    Some(Err(error)) => {
                        tracing::warn!("file watcher error ({error}): reconciling now");
                        landing.catch_up(rules).await;
                    }
                    None => return,
                },
                () = tokio::time::sleep(wait) => {
                    // Each round reads exam codes afresh: an exam created since is known.
                    let mut exams = Exams::default();
                    for path in pending.take_due(Instant::now()) {
                        take(landing, &mut exams, &mut pending, path, rules).await;
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// Looks at one file whose time came: records it if complete, else waits for it again.
async fn take(
    landing: &Landing,
    exams: &mut Exams,
    pending: &mut Pending,
    path: PathBuf,
    rules: Rules,
) {
    let Some(key) = landing.objects.key_of_local_path(&path) else {
        return;
    };
    let first_seen = pending.forget_first_seen(&path);
    let ends = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || file_ends(&path)).await
    };
    match ends {
        Ok(Ok(Some(Whole::No))) if first_seen.elapsed() < rules.incomplete_wait => {
            pending.wait_again(path, first_seen, rules.settle);
            return;
        }
        Ok(Ok(Some(Whole::No))) => {
            tracing::warn!(
                key = key.as_str(),
                "file still incomplete after the wait: taken as it is"
            );
        }
        Ok(Ok(Some(_))) => {}
        // Gone, or a directory.
        Ok(Ok(None)) => return,
        Ok(Err(error)) => {
            tracing::warn!(key = key.as_str(), "cannot read a landed file: {error}");
            return;
        }
        Err(error) => {
            tracing::warn!("cannot check a landed file: {error}");
            return;
        }
    }
    match super::record(&landing.db, &landing.objects, exams, &key).await {
        Ok(landed) if landed.is_new() => {
            tracing::info!(key = key.as_str(), ?landed, "landed in storage: recorded");
            landing.wake.notify_one();
        }
        Ok(_) => {}
        Err(error) => {
            // The reconciliation pass finds it later.
            tracing::warn!(key = key.as_str(), "cannot record a landed file: {error:#}");
        }
    }
}

/// Whether a file looks whole; `None` when it is not a file (anymore).
pub fn file_ends(path: &Path) -> std::io::Result<Option<Whole>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    let len = meta.len();
    let mut head = vec![0; HEAD_BYTES.min(len as usize)];
    file.read_exact(&mut head)?;
    let tail_len = TAIL_BYTES.min(len as usize);
    file.seek(SeekFrom::Start(len - tail_len as u64))?;
    let mut tail = vec![0; tail_len];
    file.read_exact(&mut tail)?;
    Ok(Some(whole::looks_whole(&head, &tail, len)))
}

/// Files seen changing, each with when to look at it and when it was first seen.
#[derive(Default)]
struct Pending {
    files: HashMap<PathBuf, (Instant, Instant)>,
    /// Renames (by inotify cookie) whose source is the store's own staging file: Vigía's own
    /// writes (a capture sent to the API), recorded by the request that wrote them.
    own_writes: HashSet<usize>,
}

impl Pending {
    fn next_due(&self) -> Option<Instant> {
        self.files.values().map(|(due, _)| *due).min()
    }

    /// Looks at `path` after `delay` (a later event postpones it again).
    fn at(&mut self, path: PathBuf, delay: Duration) {
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or(".");
        if is_temporary(file) {
            return;
        }
        let now = Instant::now();
        let entry = self.files.entry(path).or_insert((now, now));
        entry.0 = now + delay;
    }

    fn note(&mut self, event: &Event, settle: Duration) {
        match event.kind {
            // Renamed into place: complete now.
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                let own = event
                    .tracker()
                    .is_some_and(|cookie| self.own_writes.remove(&cookie));
                if let (Some(to), false) = (event.paths.first(), own) {
                    self.at(to.clone(), Duration::ZERO);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                if let [from, to, ..] = event.paths.as_slice() {
                    self.files.remove(from);
                    if is_own_staging(from) {
                        self.files.remove(to);
                    } else {
                        self.at(to.clone(), Duration::ZERO);
                    }
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) | EventKind::Remove(_) => {
                for path in &event.paths {
                    self.files.remove(path);
                    if let (Some(cookie), true) = (event.tracker(), is_own_staging(path)) {
                        if self.own_writes.len() > 10_000 {
                            self.own_writes.clear();
                        }
                        self.own_writes.insert(cookie);
                    }
                }
            }
            EventKind::Create(CreateKind::Folder) => {
                // Files may have landed in it before its own watch was set.
                for dir in &event.paths {
                    for file in files_under(dir) {
                        self.at(file, settle);
                    }
                }
            }
            // Written (and perhaps closed): complete once it settles.
            EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write)) => {
                for path in &event.paths {
                    self.at(path.clone(), settle);
                }
            }
            _ => {}
        }
    }

    /// The files due at `now`, forgotten until noted again (their first sighting is kept for
    /// [`Pending::forget_first_seen`]).
    fn take_due(&mut self, now: Instant) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|(_, (due, _))| *due <= now)
            .map(|(path, _)| path.clone())
            .collect()
    }

    fn forget_first_seen(&mut self, path: &Path) -> Instant {
        self.files
            .remove(path)
            .map_or_else(Instant::now, |(_, first)| first)
    }

    fn wait_again(&mut self, path: PathBuf, first_seen: Instant, settle: Duration) {
        self.files
            .entry(path)
            .or_insert((Instant::now() + settle, first_seen));
    }
}

/// The store's own staging file (`name#N`, what `Objects::put` writes before renaming it).
fn is_own_staging(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.rsplit_once('#'))
        .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Every file below `dir` (a directory just created: small).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => dirs.push(entry.path()),
                Ok(t) if t.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RenameMode};
    use notify::{Event, EventKind};

    use super::*;

    const SETTLE: Duration = Duration::from_millis(200);

    fn rename(from: &str, to: &str, cookie: usize) -> [Event; 3] {
        let name = |mode| EventKind::Modify(ModifyKind::Name(mode));
        [
            Event::new(name(RenameMode::From))
                .add_path(from.into())
                .set_tracker(cookie),
            Event::new(name(RenameMode::To))
                .add_path(to.into())
                .set_tracker(cookie),
            Event::new(name(RenameMode::Both))
                .add_path(from.into())
                .add_path(to.into())
                .set_tracker(cookie),
        ]
    }

    #[test]
    fn a_file_renamed_into_place_is_due_at_once_and_one_written_in_place_after_it_settles() {
        let mut pending = Pending::default();
        for event in rename("/s/images/E/u/.c.jpg.tmp", "/s/images/E/u/c.jpg", 7) {
            pending.note(&event, SETTLE);
        }
        assert_eq!(
            pending.take_due(Instant::now()),
            vec![PathBuf::from("/s/images/E/u/c.jpg")]
        );
        let mut pending = Pending::default();
        let written = "/s/images/E/u/d.jpg";
        pending.note(
            &Event::new(EventKind::Create(CreateKind::File)).add_path(written.into()),
            SETTLE,
        );
        pending.note(
            &Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)))
                .add_path(written.into()),
            SETTLE,
        );
        assert!(
            pending.take_due(Instant::now()).is_empty(),
            "not settled yet"
        );
        assert_eq!(
            pending.take_due(Instant::now() + SETTLE),
            vec![PathBuf::from(written)]
        );
    }

    #[test]
    fn the_stores_own_writes_and_temporary_names_are_never_due() {
        let mut pending = Pending::default();
        for event in rename("/s/images/E/u/c.jpg#3", "/s/images/E/u/c.jpg", 9) {
            pending.note(&event, SETTLE);
        }
        pending.note(
            &Event::new(EventKind::Create(CreateKind::File))
                .add_path("/s/images/E/u/.c.jpg.swp".into()),
            SETTLE,
        );
        assert!(pending.take_due(Instant::now() + SETTLE).is_empty());
        assert!(
            pending.own_writes.is_empty(),
            "the rename's cookie is spent"
        );
    }
}
