//! `vigia media bench-faces`: verification quality and speed on the labelled photos the
//! package registries ship (`scripts/media-setup.sh` puts them in `$VIGIA_MODELS_DIR/test-images`):
//! every same-person and different-people pair through the production gates
//! ([`vigia_media::labelled`]), small faces, and captures/s at 640x480.

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use vigia_media::image::{self, ImageFormat, RgbImage, imageops};
use vigia_media::verify::{self, Gates, Verdict};
use vigia_media::{
    DecodeLimits, DlibEngine, Embedding, FaceEngine, FacePool, ModelPaths, decode, labelled,
};

struct Row {
    who: String,
    embedding: Option<Embedding>,
}

fn rate(hits: usize, of: usize) -> String {
    if of == 0 {
        "n/a".into()
    } else {
        format!("{:.2} % ({hits}/{of})", 100.0 * hits as f64 / of as f64)
    }
}

/// Different-people pairs under `threshold`, and their smallest distance.
fn false_matches(rows: &[Row], threshold: f64) -> (usize, usize, f64) {
    let (mut diff, mut diff_hit, mut min_diff) = (0, 0, f64::MAX);
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            let (Some(ea), Some(eb)) = (&a.embedding, &b.embedding) else {
                continue;
            };
            let Some(d) = ea.distance(eb) else { continue };
            if a.who != b.who {
                diff += 1;
                diff_hit += usize::from(d < threshold);
                min_diff = min_diff.min(d);
            }
        }
    }
    (diff_hit, diff, min_diff)
}

/// `code ×count, …` of the codes, in order of first appearance.
fn summary<'a>(codes: impl Iterator<Item = &'a str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for code in codes {
        match counts.iter_mut().find(|(c, _)| *c == code) {
            Some((_, n)) => *n += 1,
            None => counts.push((code, 1)),
        }
    }
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(code, n)| format!("{code} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Smallest, median and largest of `values`.
fn spread(mut values: Vec<f64>) -> String {
    if values.is_empty() {
        return "-".into();
    }
    values.sort_by(f64::total_cmp);
    format!(
        "{:.1} / {:.1} / {:.1}",
        values[0],
        values[values.len() / 2],
        values[values.len() - 1]
    )
}

/// Every same-person and different-people pair of the labelled photos through the production
/// gates and verdict, with the distance distributions and a threshold sweep.
fn quality(evaluation: &labelled::Evaluation) {
    println!(
        "\n{:<42} {:>9} {:>5} {:>4} {:>5} {:>9} {:>9} {:>8}  gate (as reference)",
        "image", "size", "faces", "side", "sharp", "decode ms", "detect ms", "embed ms"
    );
    for a in &evaluation.photos {
        let first = a.analysis.faces.first();
        println!(
            "{:<42} {:>9} {:>5} {:>4} {:>5} {:>9.1} {:>9.1} {:>8.1}  {}",
            a.photo.name,
            format!("{}x{}", a.analysis.width, a.analysis.height),
            a.analysis.faces.len(),
            first.map_or("-".to_owned(), |f| f.bounding_box.min_side().to_string()),
            first.map_or("-".to_owned(), |f| format!("{:.0}", f.sharpness)),
            a.decode_ms,
            a.analysis.detect_ms,
            a.analysis.embed_ms,
            a.reference_gate
                .as_ref()
                .map_or_else(|r| r.code(), |()| "ok")
        );
    }
    let (chips, large): (Vec<_>, Vec<_>) = evaluation
        .photos
        .iter()
        .partition(|a| a.photo.name.starts_with(labelled::JOHNS));
    for (label, set) in [("150x150 crops", &chips), ("larger photos", &large)] {
        println!(
            "{label}: detect ms min/median/max {}; embed ms {}",
            spread(set.iter().map(|a| a.analysis.detect_ms).collect()),
            spread(
                set.iter()
                    .filter(|a| a.analysis.embedding.is_some())
                    .map(|a| a.analysis.embed_ms)
                    .collect()
            )
        );
    }
    let refused = evaluation.refused();
    let as_capture = refused.iter().filter(|(_, _, capture)| *capture).count();
    println!(
        "\n{} photos; {} refused as a reference ({} of them still pass as a capture): {}",
        evaluation.photos.len(),
        refused.len(),
        as_capture,
        summary(refused.iter().map(|(_, code, _)| *code))
    );
    println!(
        "judged: {} pairs over {} photos of {} people; refused (no photo of the pair usable as the reference, or the other not usable as a capture): {} same-person, {} different-people pairs",
        evaluation.pairs.len(),
        evaluation.photos_judged(),
        evaluation.people(),
        evaluation.refused_same,
        evaluation.refused_different
    );
    let (kept_out, of) = evaluation.refused_false_matches(evaluation.threshold);
    println!(
        "  of the refused different-people pairs, {kept_out}/{of} would have been false matches at {} without the gates",
        evaluation.threshold
    );
    for (a, b, d) in evaluation.near_identical(0.1) {
        println!("  closest same-person pair (distance {d:.3} < 0.1): {a} / {b}");
    }
    let r = evaluation.rates();
    println!(
        "\nthreshold {}: true-match rate {}, false-match rate {}",
        r.threshold,
        rate(r.true_matches, r.same_pairs),
        rate(r.false_matches, r.different_pairs)
    );
    let (max_same, min_diff) = evaluation.extremes();
    let describe = |p: Option<&labelled::Pair>| {
        p.map_or("-".to_owned(), |p| {
            format!(
                "{:.3} ({} / {})",
                p.distance, evaluation.photos[p.a].photo.name, evaluation.photos[p.b].photo.name
            )
        })
    };
    println!("same person, largest distance: {}", describe(max_same));
    println!(
        "different people, smallest distance: {}",
        describe(min_diff)
    );
    for (label, same) in [("same-person", true), ("different-people", false)] {
        let d = evaluation.distances(same);
        if d.is_empty() {
            continue;
        }
        let at = |q: f64| d[((d.len() - 1) as f64 * q).round() as usize];
        println!(
            "{label} distances: min {:.3}, 5 % {:.3}, median {:.3}, 95 % {:.3}, max {:.3}",
            at(0.0),
            at(0.05),
            at(0.5),
            at(0.95),
            at(1.0)
        );
    }
    println!("\nthreshold sweep (distance < threshold is a match):");
    for t in [0.40, 0.45, 0.50, 0.55, 0.60, 0.65] {
        let r = evaluation.rates_at(t);
        println!(
            "  {t:.2}: true-match rate {}, false-match rate {}",
            rate(r.true_matches, r.same_pairs),
            rate(r.false_matches, r.different_pairs)
        );
    }
}

fn fit_640x480(img: &RgbImage) -> RgbImage {
    let scale = (640.0 / f64::from(img.width())).min(480.0 / f64::from(img.height()));
    let (w, h) = (
        (f64::from(img.width()) * scale) as u32,
        (f64::from(img.height()) * scale) as u32,
    );
    let small = imageops::resize(img, w.max(1), h.max(1), imageops::FilterType::Triangle);
    let mut canvas = RgbImage::from_pixel(640, 480, image::Rgb([40, 40, 40]));
    imageops::replace(
        &mut canvas,
        &small,
        i64::from((640 - w) / 2),
        i64::from((480 - h) / 2),
    );
    canvas
}

pub async fn bench_faces(threshold: f64, rounds: usize) -> anyhow::Result<()> {
    let dir = ModelPaths::default_dir();
    let images = dir.join("test-images");
    let gates = Gates {
        threshold,
        ..Gates::default()
    };
    let started = Instant::now();
    let mut engine = DlibEngine::load(&ModelPaths::in_dir(&dir))?;
    println!(
        "models loaded in {:.0} ms from {}",
        started.elapsed().as_secs_f64() * 1000.0,
        dir.display()
    );
    println!(
        "detector: dlib HOG frontal (2x second look up to 1 MP); landmarks: 5-point; embedding: ResNet v1 128-d"
    );
    let set = labelled::labelled_photos(&images)?;
    for (copy, of) in &set.duplicates {
        println!("left out {copy}: the same file as {of}");
    }
    let photos = set.photos;
    let evaluation = labelled::evaluate(&mut engine, &photos, &gates)?;
    quality(&evaluation);
    let singles: Vec<&labelled::Photo> = photos
        .iter()
        .filter(|p| !p.name.starts_with(labelled::JOHNS))
        .collect();
    let rows: Vec<Row> = evaluation
        .photos
        .iter()
        .filter(|a| !a.photo.name.starts_with(labelled::JOHNS))
        .map(|a| Row {
            who: a.photo.who.clone(),
            embedding: a.analysis.embedding.clone(),
        })
        .collect();
    let camera = verify::analyze(&mut engine, &load(&images, "camera.png")?, &gates);
    println!(
        "\n{:<26} {:>11} {:>6} {:>10.1}",
        "camera.png (no face)",
        "512x512",
        camera.faces.len(),
        camera.detect_ms,
    );

    // Small faces: every photo shrunk so its face is ~50 px. Without the size gate their
    // embeddings would be compared; with it, no verdict is given.
    let mut small_rows = Vec::new();
    let mut refused = 0;
    for photo in &singles {
        let rgb = load(&images, &photo.name)?;
        let found = verify::analyze(&mut engine, &rgb, &gates);
        let Some(face) = found.faces.first() else {
            continue;
        };
        let factor = 50.0 / face.bounding_box.min_side().max(1) as f64;
        let small = imageops::resize(
            &rgb,
            ((f64::from(rgb.width()) * factor) as u32).max(1),
            ((f64::from(rgb.height()) * factor) as u32).max(1),
            imageops::FilterType::Triangle,
        );
        let a = verify::analyze(&mut engine, &small, &gates);
        let reference = rows[0].embedding.clone();
        if matches!(
            verify::verify(&a, reference.as_ref(), &gates),
            Verdict::Alert(verify::AlertReason::FaceTooSmall { .. })
        ) {
            refused += 1;
        }
        let prepared = vigia_media::face::Prepared::new(&small);
        let embedding = a
            .faces
            .first()
            .map(|f| engine.embed(&prepared, f.bounding_box));
        small_rows.push(Row {
            who: photo.who.clone(),
            embedding,
        });
    }
    let (dh, d, min_diff) = false_matches(&small_rows, threshold);
    println!(
        "\n~50 px faces: {refused}/{} refused as face_too_small by the {} px gate; without it, false-match rate would be {} (smallest different-people distance {min_diff:.3})",
        small_rows.len(),
        gates.min_face_px,
        rate(dh, d)
    );

    // Throughput: 640x480 JPEG captures (decode + detect + embed + compare) through the pool.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let pool = FacePool::start(threads, move || {
        Ok(Box::new(DlibEngine::load(&ModelPaths::in_dir(&dir))?) as Box<dyn FaceEngine>)
    })?;
    let mut captures = Vec::new();
    for photo in &singles {
        let mut out = Cursor::new(Vec::new());
        fit_640x480(&load(&images, &photo.name)?).write_to(&mut out, ImageFormat::Jpeg)?;
        captures.push(out.into_inner());
    }
    // Warm every thread's models first.
    let warm: Vec<_> = (0..threads)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { pool.run(|e| e.model_name()).await })
        })
        .collect();
    for task in warm {
        task.await.context("warm-up task")??;
    }
    let reference = rows[0].embedding.clone();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..rounds * captures.len() {
        let bytes = captures[i % captures.len()].clone();
        let (pool, reference) = (pool.clone(), reference.clone());
        tasks.push(tokio::spawn(async move {
            let a = pool
                .analyze(bytes, None, DecodeLimits::default(), gates)
                .await?;
            anyhow::Ok(
                a.map(|a| verify::verify(&a, reference.as_ref(), &gates))
                    .is_ok(),
            )
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += usize::from(task.await.context("analysis task")??);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "\nthroughput at 640x480: {} captures in {secs:.2} s on {threads} threads = {:.1} captures/s (decode + detect + embed + compare)",
        ok,
        ok as f64 / secs
    );
    Ok(())
}

fn load(dir: &Path, name: &str) -> anyhow::Result<RgbImage> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path)
        .with_context(|| format!("{}: run scripts/media-setup.sh", path.display()))?;
    Ok(decode::decode(&bytes, Some(name), DecodeLimits::default())
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        .rgb)
}

/// `vigia media transcode`: one video through the same FFmpeg calls as `media.transcode`.
pub async fn transcode(input: &Path, output: &Path) -> anyhow::Result<()> {
    let tools = vigia_media::ffmpeg::Tools::detect("ffmpeg", "ffprobe").await?;
    std::fs::create_dir_all(output)
        .with_context(|| format!("cannot create {}", output.display()))?;
    let timeout = std::time::Duration::from_secs(3600);
    let started = Instant::now();
    let info = tools.probe(input, timeout).await?;
    println!(
        "input: {:.1} s, {}x{}, {} / {}",
        info.duration_s,
        info.width,
        info.height,
        info.video_codec,
        info.audio_codec.as_deref().unwrap_or("no audio")
    );
    let done = tools
        .transcode(input, &info, output, timeout, |_| {})
        .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "output: {}x{} H.264/AAC in {secs:.1} s = {:.2}x real time ({} threads); {}, {}, {}",
        done.width,
        done.height,
        info.duration_s / secs,
        tools.threads,
        done.video.display(),
        done.poster.display(),
        done.strip.display()
    );
    Ok(())
}
