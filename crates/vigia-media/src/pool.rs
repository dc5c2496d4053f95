//! Worker threads that each own one [`FaceEngine`] (dlib's models are not `Sync`), fed from
//! async code through a bounded channel. A thread loads its models on its first task, so a
//! node that never analyses a face never pays for them.

use std::sync::Arc;

use crate::decode::{self, DecodeError, DecodeLimits};
use crate::face::FaceEngine;
use crate::verify::{self, AlertReason, Gates, ImageAnalysis, Reference};

type Task = Box<dyn FnOnce(&mut dyn FaceEngine) + Send>;
type Factory = dyn Fn() -> anyhow::Result<Box<dyn FaceEngine>> + Send + Sync;

/// A fixed number of analysis threads.
#[derive(Clone)]
pub struct FacePool {
    tx: flume::Sender<Task>,
    threads: usize,
}

impl std::fmt::Debug for FacePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacePool")
            .field("threads", &self.threads)
            .finish()
    }
}

impl FacePool {
    /// Starts `threads` threads (at least one); each calls `factory` before its first task.
    pub fn start(
        threads: usize,
        factory: impl Fn() -> anyhow::Result<Box<dyn FaceEngine>> + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let threads = threads.max(1);
        let (tx, rx) = flume::bounded::<Task>(threads * 4);
        let factory: Arc<Factory> = Arc::new(factory);
        for n in 0..threads {
            let rx = rx.clone();
            let factory = Arc::clone(&factory);
            std::thread::Builder::new()
                .name(format!("vigia-faces-{n}"))
                .spawn(move || worker(&rx, &*factory))
                .map_err(|e| anyhow::anyhow!("cannot start a face analysis thread: {e}"))?;
        }
        Ok(Self { tx, threads })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on one of the threads with its engine.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn FaceEngine) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let task: Task = Box::new(move |engine| {
            let _ = reply.send(f(engine));
        });
        self.tx
            .send_async(task)
            .await
            .map_err(|_| anyhow::anyhow!("the face analysis threads have stopped"))?;
        answer.await.map_err(|_| {
            anyhow::anyhow!("face analysis failed: the models could not be loaded (see the log)")
        })
    }

    /// Decodes `bytes` and analyses the image on a pool thread.
    pub async fn analyze(
        &self,
        bytes: Vec<u8>,
        file_name: Option<String>,
        limits: DecodeLimits,
        gates: Gates,
    ) -> anyhow::Result<Result<ImageAnalysis, DecodeError>> {
        self.run(move |engine| {
            let decoded = decode::decode(&bytes, file_name.as_deref(), limits)?;
            Ok(verify::analyze(engine, &decoded.rgb, &gates))
        })
        .await
    }

    /// Checks a reference photo as every way of enrolling one does: an image Vigía can read,
    /// exactly one face, at least `gates.min_face_px`, sharp enough. `Err` only when the
    /// analysis itself could not run (models missing).
    pub async fn check_reference(
        &self,
        bytes: Vec<u8>,
        gates: Gates,
    ) -> anyhow::Result<Result<Reference, AlertReason>> {
        if decode::sniff(&bytes).is_none() {
            return Ok(Err(AlertReason::ImageUnreadable {
                message: "not an image Vigía can read (JPEG, PNG, GIF or WebP expected)".into(),
            }));
        }
        let analysis = match self
            .analyze(bytes, None, DecodeLimits::default(), gates)
            .await?
        {
            Ok(analysis) => analysis,
            Err(e) => {
                return Ok(Err(AlertReason::ImageUnreadable {
                    message: e.to_string(),
                }));
            }
        };
        Ok(
            verify::check_reference(&analysis, &gates).map(|embedding| Reference {
                embedding,
                analysis,
            }),
        )
    }
}

fn worker(rx: &flume::Receiver<Task>, factory: &Factory) {
    let mut engine: Option<Box<dyn FaceEngine>> = None;
    while let Ok(task) = rx.recv() {
        if engine.is_none() {
            match factory() {
                Ok(loaded) => engine = Some(loaded),
                Err(e) => {
                    // The task's reply is dropped: its caller gets an error naming the cause.
                    tracing::error!(error = %format!("{e:#}"), "cannot load the face models");
                    drop(task);
                    continue;
                }
            }
        }
        if let Some(engine) = engine.as_deref_mut() {
            task(engine);
        }
    }
}

static SHARED: std::sync::OnceLock<FacePool> = std::sync::OnceLock::new();

/// The process's one pool (dlib models are memory-hungry: bounded per process, not per
/// request): one thread per core, models from [`crate::ModelPaths::default_dir`]
/// (`$VIGIA_MODELS_DIR`, else `$HOME/.cache/vigia-models`), loaded on first use.
pub fn shared() -> anyhow::Result<&'static FacePool> {
    if let Some(pool) = SHARED.get() {
        return Ok(pool);
    }
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let dir = crate::ModelPaths::default_dir();
    let pool = FacePool::start(threads, move || {
        let engine = crate::DlibEngine::load(&crate::ModelPaths::in_dir(&dir))?;
        Ok(Box::new(engine) as Box<dyn FaceEngine>)
    })?;
    // A pool that lost a race to another caller stops: its sender is dropped here.
    Ok(SHARED.get_or_init(|| pool))
}
