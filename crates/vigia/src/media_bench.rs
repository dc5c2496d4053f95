//! `vigia media bench-faces`: verification quality and speed on the labelled photos the
//! package registries ship (`scripts/media-setup.sh` puts them in `$VIGIA_MODELS_DIR/test-images`).

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use vigia_media::image::{self, ImageFormat, RgbImage, imageops};
use vigia_media::verify::{self, Gates, Verdict};
use vigia_media::{DecodeLimits, DlibEngine, Embedding, FaceEngine, FacePool, ModelPaths, decode};

/// Each photo and who is on it. `32bit.png` (obama2 re-encoded) is left out: it would count a
/// file against its own copy.
const LABELLED: &[(&str, &str)] = &[
    ("obama.jpg", "obama"),
    ("obama2.jpg", "obama"),
    ("obama3.jpg", "obama"),
    ("obama_partial_face.jpg", "obama"),
    ("obama_partial_face2.jpg", "obama"),
    ("biden.jpg", "biden"),
    ("astronaut.png", "collins"),
];

struct Row {
    name: &'static str,
    who: &'static str,
    embedding: Option<Embedding>,
}

fn rate(hits: usize, of: usize) -> String {
    if of == 0 {
        "n/a".into()
    } else {
        format!("{:.1} % ({hits}/{of})", 100.0 * hits as f64 / of as f64)
    }
}

/// Same-person and different-people pairs under `threshold`.
fn pair_rates(rows: &[Row], threshold: f64) -> (usize, usize, usize, usize, f64, f64) {
    let (mut same, mut same_hit, mut diff, mut diff_hit) = (0, 0, 0, 0);
    let (mut max_same, mut min_diff) = (0.0f64, f64::MAX);
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            let (Some(ea), Some(eb)) = (&a.embedding, &b.embedding) else {
                continue;
            };
            let Some(d) = ea.distance(eb) else { continue };
            if a.who == b.who {
                same += 1;
                same_hit += usize::from(d < threshold);
                max_same = max_same.max(d);
            } else {
                diff += 1;
                diff_hit += usize::from(d < threshold);
                min_diff = min_diff.min(d);
            }
        }
    }
    (same_hit, same, diff_hit, diff, max_same, min_diff)
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
    println!(
        "\n{:<26} {:>11} {:>6} {:>10} {:>10}",
        "image", "size", "faces", "detect ms", "embed ms"
    );
    let mut rows = Vec::new();
    for (name, who) in LABELLED {
        let rgb = load(&images, name)?;
        let a = verify::analyze(&mut engine, &rgb, &gates);
        println!(
            "{:<26} {:>11} {:>6} {:>10.1} {:>10.1}",
            name,
            format!("{}x{}", a.width, a.height),
            a.faces.len(),
            a.detect_ms,
            a.embed_ms
        );
        rows.push(Row {
            name,
            who,
            embedding: a.embedding,
        });
    }
    let camera = verify::analyze(&mut engine, &load(&images, "camera.png")?, &gates);
    println!(
        "{:<26} {:>11} {:>6} {:>10.1} {:>10}",
        "camera.png (no face)",
        "512x512",
        camera.faces.len(),
        camera.detect_ms,
        "-"
    );
    let (sh, s, dh, d, max_same, min_diff) = pair_rates(&rows, threshold);
    println!(
        "\nthreshold {threshold}: true-match rate {}, false-match rate {}",
        rate(sh, s),
        rate(dh, d)
    );
    println!(
        "same person: largest distance {max_same:.3}; different people: smallest distance {min_diff:.3}"
    );
    let missing: Vec<&str> = rows
        .iter()
        .filter(|r| r.embedding.is_none())
        .map(|r| r.name)
        .collect();
    if !missing.is_empty() {
        println!("no embedding (no usable face) for: {}", missing.join(", "));
    }

    // Small faces: every photo shrunk so its face is ~50 px. Without the size gate their
    // embeddings would be compared; with it, no verdict is given.
    let mut small_rows = Vec::new();
    let mut refused = 0;
    for (name, who) in LABELLED {
        let rgb = load(&images, name)?;
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
            name,
            who,
            embedding,
        });
    }
    let (_, _, dh, d, _, min_diff) = pair_rates(&small_rows, threshold);
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
    for (name, _) in LABELLED {
        let mut out = Cursor::new(Vec::new());
        fit_640x480(&load(&images, name)?).write_to(&mut out, ImageFormat::Jpeg)?;
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
