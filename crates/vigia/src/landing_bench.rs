//! `vigia media bench-landing`: how long after a capture lands in storage its result JSON is
//! written, on an idle node. It starts a scratch node (SQLite in a temporary directory; the
//! storage given, or a temporary directory) with background work on and the reconciliation
//! schedule off, so only the watcher (local directory) or the cursor lister (S3) can find the
//! captures; enrolls `obama.jpg`, then lands `obama2.jpg` captures one at a time, a second
//! apart, and times each from the moment it is in place (renamed into the directory, or the
//! S3 `PUT` answered) to the moment its result object can be read. The capture row's
//! `received_at` splits that into finding it and analysing it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;
use vigia_domain::Timestamp;
use vigia_media::Gates;
use vigia_store::proctoring::{self, NewExam};
use vigia_store::{ObjectKey, Objects, catalog};

use crate::config::{Config, Overrides};

/// Where the node stores objects in the bench.
#[derive(Debug, Clone, Default)]
pub struct BenchStorage {
    /// `s3://bucket/prefix`, or empty for a temporary directory.
    pub url: String,
    pub s3_endpoint: String,
}

/// Runs the bench and prints one line per capture, then the summary.
pub async fn bench_landing(storage: BenchStorage, rounds: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("cannot create a scratch directory")?;
    let empty = dir.path().join("bench.toml");
    std::fs::write(&empty, "").context("cannot write the scratch configuration")?;
    let overrides = Overrides {
        data_dir: Some(dir.path().to_path_buf()),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        )),
        storage_url: Some(if storage.url.is_empty() {
            dir.path().join("objects").display().to_string()
        } else {
            storage.url.clone()
        }),
        listen: Some("127.0.0.1:0".into()),
    };
    let mut config = Config::load(Some(&empty), &overrides)?;
    config.storage.s3_endpoint = storage.s3_endpoint.clone();
    config.storage.s3_allow_http = storage.s3_endpoint.starts_with("http://");
    if !storage.s3_endpoint.is_empty() && config.storage.s3_region.is_empty() {
        config.storage.s3_region = "us-east-1".into();
    }
    config.jobs.enabled = true;
    if let Some(scan) = config.schedules.get_mut("media_scan") {
        scan.enabled = false;
    }
    let app = crate::Application::build(&config).await?;
    let db = app.state().db.clone();
    let objects = Objects::open(&config.storage_url(), &config.s3_options())?;
    let (exam, user) = enrolled_exam(&db, &objects).await?;
    let shutdown = CancellationToken::new();
    let node = tokio::spawn(app.run(shutdown.clone()));
    let capture = vigia_media::ModelPaths::default_dir()
        .join("test-images")
        .join("obama2.jpg");
    let bytes = std::fs::read(&capture)
        .with_context(|| format!("{} (run scripts/media-setup.sh)", capture.display()))?;
    println!(
        "storage {}, {} poll {} ms, worker poll {} ms, media.scan off",
        objects.describe(),
        if objects.local_root().is_some() {
            "watcher settle"
        } else {
            "S3 lister"
        },
        if objects.local_root().is_some() {
            config.landing.settle_ms
        } else {
            config.landing.s3_poll_ms
        },
        config.jobs.poll_interval_ms
    );
    // The node's start (catch-up pass, each analysis thread loading its models on first use)
    // is not what is measured: two warm-up captures first, not counted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut totals = Vec::new();
    for round in 0..rounds + 2 {
        // Names in ascending order: on S3 each sorts after the lister's cursor (a name sorting
        // before it waits for the reconciliation pass, which is off here).
        let file = format!("capture_{round:03}.jpg");
        let key = format!("images/{}/{user}/{file}", exam.code);
        let landed_at = land(&objects, &key, &bytes).await?;
        let landed = Instant::now();
        let result = ObjectKey::parse(&format!("results/{}/{user}/{file}.json", exam.code))?;
        let total = loop {
            if objects.get(&result).await?.is_some() {
                break landed.elapsed();
            }
            if landed.elapsed() > Duration::from_secs(120) {
                bail!("no result for {key} after 120 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let row = proctoring::find_capture_by_key(&db, &key)
            .await?
            .context("the capture was not recorded")?;
        let found = row.received_at - landed_at.millis();
        println!(
            "{file}: result after {:>5} ms (recorded {found} ms after landing, status {}){}",
            total.as_millis(),
            row.status,
            if round < 2 {
                " — warm-up, not counted"
            } else {
                ""
            }
        );
        if round >= 2 {
            totals.push(total.as_millis());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    shutdown.cancel();
    let _ = node.await;
    totals.sort_unstable();
    if let (Some(min), Some(max)) = (totals.first(), totals.last()) {
        println!(
            "{} captures: min {min} ms, median {} ms, max {max} ms",
            totals.len(),
            totals[totals.len() / 2]
        );
    }
    Ok(())
}

/// Lands a capture: a temporary name renamed into place (local), or one `PUT` (S3). Returns
/// when it was in place.
async fn land(objects: &Objects, key: &str, bytes: &[u8]) -> anyhow::Result<Timestamp> {
    let key = ObjectKey::parse(key)?;
    match objects.local_path(&key) {
        Some(path) => {
            let dir = path.parent().map(PathBuf::from).context("no directory")?;
            std::fs::create_dir_all(&dir)?;
            let temporary = dir.join(".landing.tmp");
            std::fs::write(&temporary, bytes)?;
            std::fs::rename(&temporary, &path)?;
        }
        None => objects.put(&key, bytes.to_vec().into()).await?,
    }
    Ok(Timestamp::now())
}

/// An exam in progress with one participant enrolled from `obama.jpg`.
async fn enrolled_exam(
    db: &vigia_store::Db,
    objects: &Objects,
) -> anyhow::Result<(proctoring::Exam, String)> {
    crate::demo::seed(db).await?;
    let category = catalog::list_categories(db)
        .await?
        .into_iter()
        .next()
        .context("the demo catalog has no category")?;
    let now = Timestamp::now();
    let code = format!("BENCH{}", now.millis() % 100_000);
    let exam = proctoring::create_exam(
        db,
        &NewExam {
            code,
            title: "Landing bench".into(),
            category_id: category.id.0,
            department_id: None,
            starts_at: now.plus_seconds(-3600),
            ends_at: now.plus_seconds(3600),
            threshold: 0.6,
            captures_per_minute: 2,
            alerts_before_final: 3,
        },
        "bench",
    )
    .await?;
    let user = "user_456".to_owned();
    let participant = proctoring::add_participant(db, exam.id, &user, "Bench").await?;
    let photo = vigia_media::ModelPaths::default_dir()
        .join("test-images")
        .join("obama.jpg");
    let bytes = std::fs::read(&photo)
        .with_context(|| format!("{} (run scripts/media-setup.sh)", photo.display()))?;
    let reference = vigia_media::pool::shared()?
        .check_reference(bytes.clone(), Gates::default())
        .await?
        .map_err(|reason| anyhow::anyhow!("the reference photo is refused: {reason:?}"))?;
    let key = ObjectKey::parse(&format!("reference/{}/{user}.jpg", exam.code))?;
    objects.put(&key, bytes.into()).await?;
    proctoring::set_reference(
        db,
        participant.id,
        key.as_str(),
        &serde_json::to_string(&reference.embedding)?,
        &reference.faces_json().to_string(),
    )
    .await?;
    Ok((exam, user))
}
