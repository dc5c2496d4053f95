//! FFmpeg run for real on clips it generates itself (lavfi test sources).

use std::path::Path;
use std::time::Duration;

use vigia_media::ffmpeg::{Tools, VideoError};

async fn tools() -> Tools {
    Tools::detect("ffmpeg", "ffprobe")
        .await
        .expect("ffmpeg installed (scripts/media-setup.sh)")
}

fn make_clip(path: &Path, size: &str, seconds: u32) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("sine=frequency=440:duration={seconds}"))
        .args(["-c:v", "mpeg4", "-c:a", "mp2", "-shortest"])
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
}

#[tokio::test]
async fn a_1080p_clip_becomes_a_720p_h264_aac_mp4_with_poster_and_strip() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.avi");
    make_clip(&input, "1920x1080", 2);
    let tools = tools().await;
    let info = tools
        .probe(&input, Duration::from_secs(30))
        .await
        .expect("probe");
    assert_eq!((info.width, info.height), (1920, 1080));
    assert!((info.duration_s - 2.0).abs() < 0.2, "{}", info.duration_s);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let mut seen = Vec::new();
    let done = tools
        .transcode(&input, &info, &out, Duration::from_secs(120), |p| {
            seen.push(p)
        })
        .await
        .expect("transcode");
    assert_eq!((done.width, done.height), (1280, 720));
    let result = tools
        .probe(&done.video, Duration::from_secs(30))
        .await
        .expect("probe output");
    assert_eq!(result.video_codec, "h264");
    assert_eq!(result.audio_codec.as_deref(), Some("aac"));
    assert_eq!((result.width, result.height), (1280, 720));
    // faststart: the index (moov) precedes the media data (mdat).
    let bytes = std::fs::read(&done.video).expect("read");
    let find = |tag: &[u8]| bytes.windows(4).position(|w| w == tag);
    assert!(find(b"moov") < find(b"mdat"), "moov before mdat");
    assert!(image::open(&done.poster).expect("poster").width() == 1280);
    let strip = image::open(&done.strip).expect("strip");
    assert_eq!(strip.width(), 160 * 5);
    assert_eq!(seen.last().copied(), Some(1.0));
}

#[tokio::test]
async fn a_text_file_named_mp4_is_not_a_video() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("movie.mp4");
    std::fs::write(&input, "this is not a video, just text\n").expect("write");
    let error = tools()
        .await
        .probe(&input, Duration::from_secs(30))
        .await
        .expect_err("refused");
    assert!(matches!(error, VideoError::NotAVideo(_)), "{error}");
}

#[tokio::test]
async fn a_missing_ffmpeg_is_reported_with_how_to_install_it() {
    let error = Tools::detect("/nonexistent/ffmpeg", "ffprobe")
        .await
        .expect_err("missing");
    assert!(
        error.to_string().contains("apt-get install ffmpeg"),
        "{error}"
    );
}
