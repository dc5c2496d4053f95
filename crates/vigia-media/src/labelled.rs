//! Verification measured on labelled photos: every pair of photos of one person and every pair
//! of photos of two different people, through the production gates and verdict
//! ([`verify::check_reference`], [`verify::verify`]).
//!
//! The photos are the ones `scripts/media-setup.sh` puts in `$VIGIA_MODELS_DIR/test-images`:
//! the `face_recognition` 1.3.0 sdist's test photos, scikit-image's astronaut (Eileen Collins),
//! and `johns/<person>/*.jpg`, the labelled face set of dlib's `examples/johns` (Debian source
//! package `dlib`: five people, eleven 150×150 face crops each).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::face::{FaceEngine, ms_since};
use crate::verify::{self, AlertReason, Gates, ImageAnalysis, Verdict};
use crate::{DecodeLimits, decode};

/// One photo and who is on it (the name its package gives: a directory or a file name).
#[derive(Debug, Clone)]
pub struct Photo {
    /// Path under the images directory, e.g. `johns/John_Simm/000288_00470387.jpg`.
    pub name: String,
    pub who: String,
    pub path: PathBuf,
}

/// The single photos and who is on them. `32bit.png` (obama2 re-encoded) is left out: it would
/// count a file against its own copy.
const SINGLES: &[(&str, &str)] = &[
    ("obama.jpg", "Barack Obama"),
    ("obama2.jpg", "Barack Obama"),
    ("obama3.jpg", "Barack Obama"),
    ("obama_partial_face.jpg", "Barack Obama"),
    ("obama_partial_face2.jpg", "Barack Obama"),
    ("biden.jpg", "Joe Biden"),
    ("astronaut.png", "Eileen Collins"),
];

/// The directory of the labelled set of dlib's `examples/johns`, one sub-directory per person.
pub const JOHNS: &str = "johns";

/// The labelled photos, and the files left out because they are byte-for-byte copies of an
/// earlier one (dlib's set has one photo twice under two names: a pair of them would be a
/// free true match).
#[derive(Debug, Clone)]
pub struct LabelledSet {
    pub photos: Vec<Photo>,
    /// (left out, copy of)
    pub duplicates: Vec<(String, String)>,
}

/// Every labelled photo under `images` (`$VIGIA_MODELS_DIR/test-images`), in a stable order,
/// without byte-identical copies. Fails, saying what to run, when a file or the labelled set
/// is missing.
pub fn labelled_photos(images: &Path) -> anyhow::Result<LabelledSet> {
    let mut photos = Vec::new();
    for (name, who) in SINGLES {
        photos.push(Photo {
            name: (*name).to_owned(),
            who: (*who).to_owned(),
            path: images.join(name),
        });
    }
    let johns = images.join(JOHNS);
    let mut people: Vec<PathBuf> = std::fs::read_dir(&johns)
        .map_err(|e| {
            anyhow::anyhow!(
                "{}: {e} (run scripts/media-setup.sh: it fetches dlib's labelled photos)",
                johns.display()
            )
        })?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.is_dir())
        .collect();
    people.sort();
    for person in people {
        let who = person
            .file_name()
            .map(|n| n.to_string_lossy().replace('_', " "))
            .unwrap_or_default();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&person)?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|x| x == "jpg"))
            .collect();
        files.sort();
        for path in files {
            let name = path
                .strip_prefix(images)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            photos.push(Photo {
                name,
                who: who.clone(),
                path,
            });
        }
    }
    let mut seen: HashMap<Vec<u8>, String> = HashMap::new();
    let mut kept = Vec::with_capacity(photos.len());
    let mut duplicates = Vec::new();
    for photo in photos {
        let bytes = std::fs::read(&photo.path).map_err(|e| {
            anyhow::anyhow!("{}: {e} (run scripts/media-setup.sh)", photo.path.display())
        })?;
        match seen.get(&bytes) {
            Some(first) => duplicates.push((photo.name.clone(), first.clone())),
            None => {
                seen.insert(bytes, photo.name.clone());
                kept.push(photo);
            }
        }
    }
    Ok(LabelledSet {
        photos: kept,
        duplicates,
    })
}

/// One photo through the pipeline.
#[derive(Debug, Clone)]
pub struct Analysed {
    pub photo: Photo,
    pub analysis: ImageAnalysis,
    pub decode_ms: f64,
    /// The gates a capture must pass (one face, at least `min_face_px`).
    pub capture_gate: Result<(), AlertReason>,
    /// The gates a reference photo must pass (those, and sharp enough).
    pub reference_gate: Result<(), AlertReason>,
}

/// A pair of usable photos and the production verdict on it.
#[derive(Debug, Clone, Copy)]
pub struct Pair {
    pub a: usize,
    pub b: usize,
    pub same_person: bool,
    pub distance: f64,
    /// `verify::verify` said Match at the gates' threshold.
    pub matched: bool,
}

/// Every pair of a labelled set, judged.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub photos: Vec<Analysed>,
    pub pairs: Vec<Pair>,
    /// Pairs with no photo usable as the reference or no photo usable as the capture, same
    /// person and different people.
    pub refused_same: usize,
    pub refused_different: usize,
    /// Of the refused pairs where both photos have an embedding: what their distances were
    /// (same person?, distance), to show what the gates kept out.
    pub refused_distances: Vec<(bool, f64)>,
    pub threshold: f64,
}

/// Matches and totals at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rates {
    pub threshold: f64,
    pub true_matches: usize,
    pub same_pairs: usize,
    pub false_matches: usize,
    pub different_pairs: usize,
}

impl Rates {
    pub fn true_match_rate(&self) -> f64 {
        ratio(self.true_matches, self.same_pairs)
    }

    pub fn false_match_rate(&self) -> f64 {
        ratio(self.false_matches, self.different_pairs)
    }
}

fn ratio(hits: usize, of: usize) -> f64 {
    if of == 0 {
        f64::NAN
    } else {
        hits as f64 / of as f64
    }
}

/// Decodes and analyses every photo, then judges every pair with [`verify::verify`]. As in
/// production, one photo of a pair is the reference (it must pass [`verify::check_reference`]:
/// one face, large and sharp enough) and the other the capture (it must pass
/// [`verify::check_capture`]: one face, large enough); the first photo of the pair is the
/// reference when both could be. A pair where no such roles exist is refused, not judged.
pub fn evaluate(
    engine: &mut dyn FaceEngine,
    photos: &[Photo],
    gates: &Gates,
) -> anyhow::Result<Evaluation> {
    let mut analysed = Vec::with_capacity(photos.len());
    for photo in photos {
        let bytes = std::fs::read(&photo.path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", photo.path.display()))?;
        let started = Instant::now();
        let rgb = decode::decode(&bytes, Some(&photo.name), DecodeLimits::default())
            .map_err(|e| anyhow::anyhow!("{}: {e}", photo.path.display()))?
            .rgb;
        let decode_ms = ms_since(started);
        let analysis = verify::analyze(engine, &rgb, gates);
        let capture_gate = verify::check_capture(&analysis, gates).map(|_| ());
        let reference_gate = verify::check_reference(&analysis, gates).map(|_| ());
        analysed.push(Analysed {
            photo: photo.clone(),
            analysis,
            decode_ms,
            capture_gate,
            reference_gate,
        });
    }
    let (mut pairs, mut refused_same, mut refused_different) = (Vec::new(), 0, 0);
    let mut refused_distances = Vec::new();
    for (a, first) in analysed.iter().enumerate() {
        for (b, second) in analysed.iter().enumerate().skip(a + 1) {
            let same_person = first.photo.who == second.photo.who;
            let roles = if first.reference_gate.is_ok() && second.capture_gate.is_ok() {
                Some((first, second))
            } else if second.reference_gate.is_ok() && first.capture_gate.is_ok() {
                Some((second, first))
            } else {
                None
            };
            let Some((reference, capture)) = roles else {
                if same_person {
                    refused_same += 1;
                } else {
                    refused_different += 1;
                }
                if let (Some(x), Some(y)) = (&first.analysis.embedding, &second.analysis.embedding)
                    && let Some(distance) = x.distance(y)
                {
                    refused_distances.push((same_person, distance));
                }
                continue;
            };
            let Some(embedding) = &reference.analysis.embedding else {
                anyhow::bail!(
                    "{} passed the gates without an embedding",
                    reference.photo.name
                );
            };
            let (distance, matched) =
                match verify::verify(&capture.analysis, Some(embedding), gates) {
                    Verdict::Match { distance } => (distance, true),
                    Verdict::Alert(AlertReason::FaceMismatch { distance, .. }) => (distance, false),
                    Verdict::Alert(other) => anyhow::bail!(
                        "{} passed the gates but its verdict is {}",
                        capture.photo.name,
                        other.code()
                    ),
                };
            pairs.push(Pair {
                a,
                b,
                same_person,
                distance,
                matched,
            });
        }
    }
    Ok(Evaluation {
        photos: analysed,
        pairs,
        refused_same,
        refused_different,
        refused_distances,
        threshold: gates.threshold,
    })
}

impl Evaluation {
    /// The production verdicts at the gates' threshold.
    pub fn rates(&self) -> Rates {
        let mut rates = self.count(|p| p.matched);
        rates.threshold = self.threshold;
        rates
    }

    /// What the rates would be at another threshold (same rule: distance < threshold).
    pub fn rates_at(&self, threshold: f64) -> Rates {
        let mut rates = self.count(|p| p.distance < threshold);
        rates.threshold = threshold;
        rates
    }

    fn count(&self, matched: impl Fn(&Pair) -> bool) -> Rates {
        let mut rates = Rates {
            threshold: 0.0,
            true_matches: 0,
            same_pairs: 0,
            false_matches: 0,
            different_pairs: 0,
        };
        for pair in &self.pairs {
            if pair.same_person {
                rates.same_pairs += 1;
                rates.true_matches += usize::from(matched(pair));
            } else {
                rates.different_pairs += 1;
                rates.false_matches += usize::from(matched(pair));
            }
        }
        rates
    }

    /// The largest same-person distance and the smallest different-people one.
    pub fn extremes(&self) -> (Option<&Pair>, Option<&Pair>) {
        let max_same = self
            .pairs
            .iter()
            .filter(|p| p.same_person)
            .max_by(|x, y| x.distance.total_cmp(&y.distance));
        let min_different = self
            .pairs
            .iter()
            .filter(|p| !p.same_person)
            .min_by(|x, y| x.distance.total_cmp(&y.distance));
        (max_same, min_different)
    }

    /// Distances of one kind of pair, sorted.
    pub fn distances(&self, same_person: bool) -> Vec<f64> {
        let mut d: Vec<f64> = self
            .pairs
            .iter()
            .filter(|p| p.same_person == same_person)
            .map(|p| p.distance)
            .collect();
        d.sort_by(f64::total_cmp);
        d
    }

    /// The photos refused as a reference, with the reason's code, and whether they still pass
    /// as a capture.
    pub fn refused(&self) -> Vec<(&str, &'static str, bool)> {
        self.photos
            .iter()
            .filter_map(|a| {
                a.reference_gate
                    .as_ref()
                    .err()
                    .map(|reason| (a.photo.name.as_str(), reason.code(), a.capture_gate.is_ok()))
            })
            .collect()
    }

    /// How many different people the judged pairs show.
    pub fn people(&self) -> usize {
        let mut who: Vec<&str> = self
            .pairs
            .iter()
            .flat_map(|p| [p.a, p.b])
            .map(|i| self.photos[i].photo.who.as_str())
            .collect();
        who.sort_unstable();
        who.dedup();
        who.len()
    }

    /// How many photos appear in a judged pair.
    pub fn photos_judged(&self) -> usize {
        let mut used: Vec<usize> = self.pairs.iter().flat_map(|p| [p.a, p.b]).collect();
        used.sort_unstable();
        used.dedup();
        used.len()
    }

    /// Of the refused pairs with two embeddings, how many would have been false matches at
    /// `threshold`, and of how many different-people pairs.
    pub fn refused_false_matches(&self, threshold: f64) -> (usize, usize) {
        let different = self.refused_distances.iter().filter(|(same, _)| !same);
        let total = different.clone().count();
        (different.filter(|(_, d)| *d < threshold).count(), total)
    }

    /// Same-person pairs closer than `distance` (near-identical photos, e.g. crops of one shot).
    pub fn near_identical(&self, distance: f64) -> Vec<(&str, &str, f64)> {
        self.pairs
            .iter()
            .filter(|p| p.same_person && p.distance < distance)
            .map(|p| {
                (
                    self.photos[p.a].photo.name.as_str(),
                    self.photos[p.b].photo.name.as_str(),
                    p.distance,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evaluation(pairs: &[(bool, f64)], threshold: f64) -> Evaluation {
        Evaluation {
            photos: Vec::new(),
            pairs: pairs
                .iter()
                .enumerate()
                .map(|(i, (same_person, distance))| Pair {
                    a: i,
                    b: i + 1,
                    same_person: *same_person,
                    distance: *distance,
                    matched: *distance < threshold,
                })
                .collect(),
            refused_same: 0,
            refused_different: 0,
            refused_distances: vec![(false, 0.5), (false, 0.7), (true, 0.3)],
            threshold,
        }
    }

    #[test]
    fn rates_count_matches_by_kind_of_pair_and_move_with_the_threshold() {
        let e = evaluation(
            &[(true, 0.30), (true, 0.58), (false, 0.59), (false, 0.90)],
            0.6,
        );
        let at = e.rates();
        assert_eq!(
            (
                at.true_matches,
                at.same_pairs,
                at.false_matches,
                at.different_pairs
            ),
            (2, 2, 1, 2)
        );
        assert_eq!(at.false_match_rate(), 0.5);
        let stricter = e.rates_at(0.55);
        assert_eq!((stricter.true_matches, stricter.false_matches), (1, 0));
        let (max_same, min_different) = e.extremes();
        assert_eq!(max_same.map(|p| p.distance), Some(0.58));
        assert_eq!(min_different.map(|p| p.distance), Some(0.59));
        assert_eq!(e.distances(false), vec![0.59, 0.90]);
        assert_eq!(e.refused_false_matches(0.6), (1, 2));
    }
}
