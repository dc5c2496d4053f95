//! The verdict on one image: the gates a face must pass, then the comparison with a reference.

use std::time::Instant;

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::face::{BoundingBox, Embedding, FaceEngine, Prepared, ms_since};
use crate::quality;

/// The thresholds an image is judged by.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Gates {
    /// Distance under which two faces are the same person (dlib's usual 0.6).
    pub threshold: f64,
    /// Smallest face side, in pixels, on which a verdict is given: smaller faces verify
    /// unreliably (false "same person" matches on ~50 px faces) and are reported as too small.
    pub min_face_px: u32,
    /// Smallest sharpness ([`quality::sharpness`]) a reference photo must have.
    pub min_sharpness: f64,
}

impl Default for Gates {
    fn default() -> Self {
        Self {
            threshold: 0.6,
            min_face_px: 80,
            min_sharpness: 60.0,
        }
    }
}

/// One face found in an image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FaceReport {
    pub bounding_box: BoundingBox,
    /// Its sharpness measure.
    pub sharpness: f64,
}

/// Everything measured on one image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageAnalysis {
    pub width: u32,
    pub height: u32,
    /// Largest first.
    pub faces: Vec<FaceReport>,
    /// The embedding of the only face, when there is exactly one and it is large enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Embedding>,
    /// The faces were only found on a 2× upscaled copy.
    pub upscaled: bool,
    pub detect_ms: f64,
    pub embed_ms: f64,
    pub model: String,
}

/// Why an image did not pass, machine-readable (`reason`) with its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum AlertReason {
    NoFace,
    MultipleFaces { count: usize },
    FaceMismatch { distance: f64, threshold: f64 },
    FaceTooSmall { size_px: i64, min_px: u32 },
    FaceBlurry { sharpness: f64, min_sharpness: f64 },
    ImageUnreadable { message: String },
    ReferenceMissing,
}

impl AlertReason {
    /// The reason's code, e.g. `face_mismatch`.
    pub fn code(&self) -> &'static str {
        match self {
            AlertReason::NoFace => "no_face",
            AlertReason::MultipleFaces { .. } => "multiple_faces",
            AlertReason::FaceMismatch { .. } => "face_mismatch",
            AlertReason::FaceTooSmall { .. } => "face_too_small",
            AlertReason::FaceBlurry { .. } => "face_blurry",
            AlertReason::ImageUnreadable { .. } => "image_unreadable",
            AlertReason::ReferenceMissing => "reference_missing",
        }
    }

    /// A sentence for people (English; the seed's `reason` field).
    pub fn message(&self) -> String {
        match self {
            AlertReason::NoFace => "No face detected".to_owned(),
            AlertReason::MultipleFaces { count } => {
                format!("{count} faces detected, exactly one expected")
            }
            AlertReason::FaceMismatch {
                distance,
                threshold,
            } => {
                format!("Face does not match reference (distance {distance:.3} ≥ {threshold})")
            }
            AlertReason::FaceTooSmall { size_px, min_px } => {
                format!("Face too small to verify ({size_px} px, at least {min_px} px needed)")
            }
            AlertReason::FaceBlurry {
                sharpness,
                min_sharpness,
            } => {
                format!(
                    "Face too blurry (sharpness {sharpness:.0}, at least {min_sharpness:.0} needed)"
                )
            }
            AlertReason::ImageUnreadable { message } => format!("Image unreadable: {message}"),
            AlertReason::ReferenceMissing => {
                "No reference photo enrolled for this participant".to_owned()
            }
        }
    }
}

/// The verdict on a capture.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// One face, at `distance` from the reference, under the threshold.
    Match {
        distance: f64,
    },
    Alert(AlertReason),
}

/// Detects the faces of `rgb`, measures each, and embeds the only one when it is large enough.
pub fn analyze(engine: &mut dyn FaceEngine, rgb: &RgbImage, gates: &Gates) -> ImageAnalysis {
    let started = Instant::now();
    let prepared = Prepared::new(rgb);
    let detection = engine.detect(&prepared);
    let detect_ms = ms_since(started);
    let faces: Vec<FaceReport> = detection
        .faces
        .iter()
        .map(|b| FaceReport {
            bounding_box: *b,
            sharpness: quality::sharpness(rgb, *b),
        })
        .collect();
    let started = Instant::now();
    let embedding = match faces.as_slice() {
        [only] if only.bounding_box.min_side() >= i64::from(gates.min_face_px) => {
            Some(engine.embed(&prepared, only.bounding_box))
        }
        _ => None,
    };
    let embed_ms = if embedding.is_some() {
        ms_since(started)
    } else {
        0.0
    };
    ImageAnalysis {
        width: rgb.width(),
        height: rgb.height(),
        faces,
        embedding,
        upscaled: detection.upscaled,
        detect_ms,
        embed_ms,
        model: engine.model_name().to_owned(),
    }
}

/// The gates every verdict starts with: one face, large enough.
fn one_usable_face<'a>(
    analysis: &'a ImageAnalysis,
    gates: &Gates,
) -> Result<(&'a FaceReport, &'a Embedding), AlertReason> {
    let face = match analysis.faces.as_slice() {
        [] => return Err(AlertReason::NoFace),
        [only] => only,
        many => return Err(AlertReason::MultipleFaces { count: many.len() }),
    };
    let size = face.bounding_box.min_side();
    match &analysis.embedding {
        Some(embedding) if size >= i64::from(gates.min_face_px) => Ok((face, embedding)),
        _ => Err(AlertReason::FaceTooSmall {
            size_px: size,
            min_px: gates.min_face_px,
        }),
    }
}

/// Whether `analysis` passes the gates every capture must pass before it is compared (exactly
/// one face, at least `min_face_px`). Gives its embedding.
pub fn check_capture<'a>(
    analysis: &'a ImageAnalysis,
    gates: &Gates,
) -> Result<&'a Embedding, AlertReason> {
    one_usable_face(analysis, gates).map(|(_, embedding)| embedding)
}

/// Whether `analysis` may serve as a reference photo: exactly one face, large and sharp
/// enough. Gives its embedding.
pub fn check_reference(analysis: &ImageAnalysis, gates: &Gates) -> Result<Embedding, AlertReason> {
    let (face, embedding) = one_usable_face(analysis, gates)?;
    if face.sharpness < gates.min_sharpness {
        return Err(AlertReason::FaceBlurry {
            sharpness: face.sharpness,
            min_sharpness: gates.min_sharpness,
        });
    }
    Ok(embedding.clone())
}

/// A photo accepted as a reference: its embedding and what was measured on it.
#[derive(Debug, Clone)]
pub struct Reference {
    pub embedding: Embedding,
    pub analysis: ImageAnalysis,
}

impl Reference {
    /// What is kept of the analysis with the participant (face boxes, sharpness, size, model).
    pub fn faces_json(&self) -> serde_json::Value {
        let a = &self.analysis;
        serde_json::json!({
            "faces": a.faces, "width": a.width, "height": a.height, "model": a.model,
        })
    }
}

/// Why a reference photo was refused, as the API says it: `code: message`
/// (`"no_face: No face detected"`, `"image_unreadable: <the decoder's words>"`).
pub fn refusal(reason: &AlertReason) -> String {
    match reason {
        AlertReason::ImageUnreadable { message } => format!("image_unreadable: {message}"),
        other => format!("{}: {}", other.code(), other.message()),
    }
}

/// The verdict on a capture against the participant's reference embedding.
pub fn verify(analysis: &ImageAnalysis, reference: Option<&Embedding>, gates: &Gates) -> Verdict {
    let (_, embedding) = match one_usable_face(analysis, gates) {
        Ok(found) => found,
        Err(reason) => return Verdict::Alert(reason),
    };
    let Some(reference) = reference else {
        return Verdict::Alert(AlertReason::ReferenceMissing);
    };
    match embedding.distance(reference) {
        Some(distance) if distance < gates.threshold => Verdict::Match { distance },
        Some(distance) => Verdict::Alert(AlertReason::FaceMismatch {
            distance,
            threshold: gates.threshold,
        }),
        None => Verdict::Alert(AlertReason::ReferenceMissing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis(faces: &[i64], embedding: Option<Vec<f32>>) -> ImageAnalysis {
        ImageAnalysis {
            width: 640,
            height: 480,
            faces: faces
                .iter()
                .map(|side| FaceReport {
                    bounding_box: BoundingBox {
                        left: 0,
                        top: 0,
                        width: *side,
                        height: *side,
                    },
                    sharpness: 200.0,
                })
                .collect(),
            embedding: embedding.map(Embedding),
            upscaled: false,
            detect_ms: 0.0,
            embed_ms: 0.0,
            model: "test".into(),
        }
    }

    #[test]
    fn a_close_face_matches_and_a_far_one_is_a_mismatch_with_its_distance() {
        let gates = Gates::default();
        let reference = Embedding(vec![0.0; 128]);
        let mut near = vec![0.0; 128];
        near[0] = 0.5;
        let mut far = vec![0.0; 128];
        far[0] = 0.7;
        assert_eq!(
            verify(&analysis(&[100], Some(near)), Some(&reference), &gates),
            Verdict::Match { distance: 0.5 }
        );
        let Verdict::Alert(AlertReason::FaceMismatch { distance, .. }) =
            verify(&analysis(&[100], Some(far)), Some(&reference), &gates)
        else {
            panic!("expected a mismatch");
        };
        assert!((distance - 0.7).abs() < 1e-6);
    }

    #[test]
    fn no_face_two_faces_and_a_small_face_each_have_their_reason() {
        let gates = Gates::default();
        let reference = Embedding(vec![0.0; 128]);
        assert_eq!(
            verify(&analysis(&[], None), Some(&reference), &gates),
            Verdict::Alert(AlertReason::NoFace)
        );
        assert_eq!(
            verify(&analysis(&[120, 90], None), Some(&reference), &gates),
            Verdict::Alert(AlertReason::MultipleFaces { count: 2 })
        );
        assert_eq!(
            verify(
                &analysis(&[50], Some(vec![0.0; 128])),
                Some(&reference),
                &gates
            ),
            Verdict::Alert(AlertReason::FaceTooSmall {
                size_px: 50,
                min_px: 80
            })
        );
    }

    #[test]
    fn a_capture_without_a_reference_is_reference_missing() {
        assert_eq!(
            verify(
                &analysis(&[100], Some(vec![0.0; 128])),
                None,
                &Gates::default()
            ),
            Verdict::Alert(AlertReason::ReferenceMissing)
        );
    }

    #[test]
    fn a_blurry_reference_is_refused_with_its_sharpness() {
        let mut blurry = analysis(&[100], Some(vec![0.0; 128]));
        blurry.faces[0].sharpness = 12.0;
        let error = check_reference(&blurry, &Gates::default()).expect_err("blurry");
        assert_eq!(error.code(), "face_blurry");
        assert_eq!(
            error.message(),
            "Face too blurry (sharpness 12, at least 60 needed)"
        );
    }

    #[test]
    fn reasons_serialize_with_their_code_as_the_reason_field() {
        let json = serde_json::to_value(AlertReason::MultipleFaces { count: 3 }).expect("json");
        assert_eq!(
            json,
            serde_json::json!({"reason": "multiple_faces", "count": 3})
        );
    }
}
