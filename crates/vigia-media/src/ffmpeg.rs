//! `ffprobe` and `ffmpeg` run as child processes — never through a shell — under `prlimit`
//! (address space and CPU time caps) with a wall-clock timeout; a process still running when
//! its future is dropped is killed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Where the tools are and what they may use.
#[derive(Debug, Clone)]
pub struct Tools {
    pub ffmpeg: PathBuf,
    pub ffprobe: PathBuf,
    /// `prlimit`, when present (util-linux): applies the caps below to the child.
    pub prlimit: Option<PathBuf>,
    /// Address-space cap per process, in bytes.
    pub max_memory: u64,
    /// CPU-seconds cap per process.
    pub max_cpu_secs: u64,
    /// Encoder threads.
    pub threads: u32,
}

/// Why a video could not be processed; the message is stored as the failure reason.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error(
        "{tool} not found at {path}: install FFmpeg (apt-get install ffmpeg) or set media.ffmpeg_path"
    )]
    Missing { tool: &'static str, path: String },
    #[error("not a video FFmpeg can read: {0}")]
    NotAVideo(String),
    #[error("video too long: {duration_s:.1} s exceeds the limit of {limit_s} s")]
    TooLong { duration_s: f64, limit_s: u64 },
    #[error("{tool} took longer than {secs} s and was stopped")]
    Timeout { tool: &'static str, secs: u64 },
    #[error("ffmpeg failed: {0}")]
    Failed(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// What `ffprobe` says about a file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoInfo {
    pub duration_s: f64,
    pub width: u32,
    pub height: u32,
    pub video_codec: String,
    pub audio_codec: Option<String>,
    pub format: String,
}

/// The files one transcode wrote into its output directory.
#[derive(Debug, Clone)]
pub struct Transcoded {
    pub video: PathBuf,
    pub poster: PathBuf,
    pub strip: PathBuf,
    pub width: u32,
    pub height: u32,
}

impl Tools {
    /// The tools on `PATH` (or at the given paths), checked by running `-version`.
    pub async fn detect(ffmpeg: &str, ffprobe: &str) -> Result<Self, VideoError> {
        for (tool, path) in [("ffmpeg", ffmpeg), ("ffprobe", ffprobe)] {
            let ok = Command::new(path)
                .arg("-version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .status()
                .await
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Err(VideoError::Missing {
                    tool,
                    path: path.to_owned(),
                });
            }
        }
        let prlimit = ["/usr/bin/prlimit", "/bin/prlimit"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file());
        Ok(Self {
            ffmpeg: PathBuf::from(ffmpeg),
            ffprobe: PathBuf::from(ffprobe),
            prlimit,
            max_memory: 2 << 30,
            max_cpu_secs: 1800,
            threads: 2,
        })
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = match &self.prlimit {
            Some(prlimit) => {
                let mut c = Command::new(prlimit);
                c.arg(format!("--as={}", self.max_memory))
                    .arg(format!("--cpu={}", self.max_cpu_secs))
                    .arg("--")
                    .arg(program);
                c
            }
            None => Command::new(program),
        };
        command.stdin(Stdio::null()).kill_on_drop(true);
        command
    }

    /// Reads a file's container and streams; a file with no video stream is [`VideoError::NotAVideo`].
    pub async fn probe(&self, input: &Path, timeout: Duration) -> Result<VideoInfo, VideoError> {
        let mut command = self.command(&self.ffprobe);
        command
            .args([
                "-v",
                "error",
                "-print_format",
                "json",
                "-show_format",
                "-show_streams",
            ])
            .arg(input)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = tokio::time::timeout(timeout, command.output())
            .await
            .map_err(|_| VideoError::Timeout {
                tool: "ffprobe",
                secs: timeout.as_secs(),
            })??;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(VideoError::NotAVideo(last_line(&stderr)));
        }
        parse_probe(&output.stdout)
    }

    /// Transcodes `input` into `out_dir`: `video.mp4` (H.264/AAC, shorter side at most 720,
    /// `faststart`), `poster.jpg` and `strip.jpg` (5 frames side by side). `progress` is
    /// called with 0.0–1.0 as FFmpeg reports it. Files are written under `out_dir` only; the
    /// caller uploads them and removes the directory.
    pub async fn transcode(
        &self,
        input: &Path,
        info: &VideoInfo,
        out_dir: &Path,
        timeout: Duration,
        mut progress: impl FnMut(f64) + Send,
    ) -> Result<Transcoded, VideoError> {
        let video = out_dir.join("video.mp4");
        let poster = out_dir.join("poster.jpg");
        let strip = out_dir.join("strip.jpg");
        let (width, height) = fit_720(info.width, info.height);
        let scale = format!("scale={width}:{height}");
        let mut command = self.command(&self.ffmpeg);
        command
            .args(["-hide_banner", "-nostdin", "-y", "-v", "error", "-i"])
            .arg(input)
            .args(["-map", "0:v:0", "-map", "0:a:0?", "-vf", &scale])
            .args([
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p",
            ])
            .args(["-threads", &self.threads.to_string()])
            .args(["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart"])
            .args(["-progress", "pipe:1", "-nostats"])
            .arg(&video)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let total_us = (info.duration_s * 1_000_000.0).max(1.0);
        let run = async {
            let mut child = command.spawn()?;
            let stderr = child.stderr.take();
            let stderr_task = tokio::spawn(async move {
                let mut text = String::new();
                if let Some(stderr) = stderr {
                    let mut lines = BufReader::new(stderr).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        text = line;
                    }
                }
                text
            });
            if let Some(stdout) = child.stdout.take() {
                let mut lines = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(us) = line
                        .strip_prefix("out_time_us=")
                        .and_then(|v| v.trim().parse::<f64>().ok())
                    {
                        progress((us / total_us).clamp(0.0, 1.0));
                    }
                }
            }
            let status = child.wait().await?;
            let last = stderr_task.await.unwrap_or_default();
            if status.success() {
                Ok(())
            } else {
                Err(VideoError::Failed(if last.is_empty() {
                    format!("exit status {status}")
                } else {
                    last
                }))
            }
        };
        tokio::time::timeout(timeout, run)
            .await
            .map_err(|_| VideoError::Timeout {
                tool: "ffmpeg",
                secs: timeout.as_secs(),
            })??;
        let at = format!("{:.3}", (info.duration_s * 0.1).min(10.0));
        self.still(
            &["-ss", &at, "-i"],
            input,
            &format!("scale={width}:{height}"),
            &poster,
            timeout,
        )
        .await?;
        let every = (info.duration_s / 5.0).max(0.04);
        let tile = format!("fps=1/{every:.3},scale=160:-2,tile=5x1");
        self.still(&["-i"], input, &tile, &strip, timeout).await?;
        progress(1.0);
        Ok(Transcoded {
            video,
            poster,
            strip,
            width,
            height,
        })
    }

    async fn still(
        &self,
        before: &[&str],
        input: &Path,
        filter: &str,
        out: &Path,
        timeout: Duration,
    ) -> Result<(), VideoError> {
        let mut command = self.command(&self.ffmpeg);
        command
            .args(["-hide_banner", "-nostdin", "-y", "-v", "error"])
            .args(before)
            .arg(input)
            .args(["-vf", filter, "-frames:v", "1", "-q:v", "4"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let output = tokio::time::timeout(timeout, command.output())
            .await
            .map_err(|_| VideoError::Timeout {
                tool: "ffmpeg",
                secs: timeout.as_secs(),
            })??;
        if output.status.success() && out.is_file() {
            Ok(())
        } else {
            Err(VideoError::Failed(last_line(&String::from_utf8_lossy(
                &output.stderr,
            ))))
        }
    }
}

/// The output size: the shorter side at most 720, both even, aspect kept.
pub fn fit_720(width: u32, height: u32) -> (u32, u32) {
    let even = |v: f64| ((v / 2.0).round() as u32).max(1) * 2;
    let short = width.min(height);
    if short <= 720 {
        return (even(f64::from(width)), even(f64::from(height)));
    }
    let factor = 720.0 / f64::from(short);
    (
        even(f64::from(width) * factor),
        even(f64::from(height) * factor),
    )
}

fn last_line(text: &str) -> String {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim()
        .to_owned()
}

fn parse_probe(json: &[u8]) -> Result<VideoInfo, VideoError> {
    let value: serde_json::Value = serde_json::from_slice(json)
        .map_err(|e| VideoError::NotAVideo(format!("unreadable ffprobe output: {e}")))?;
    let streams = value["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video" && s["disposition"]["attached_pic"] != 1)
        .ok_or_else(|| VideoError::NotAVideo("no video stream".to_owned()))?;
    let audio = streams.iter().find(|s| s["codec_type"] == "audio");
    let duration_s = value["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse::<f64>().ok())
        .or_else(|| {
            video["duration"]
                .as_str()
                .and_then(|d| d.parse::<f64>().ok())
        })
        .ok_or_else(|| VideoError::NotAVideo("no duration".to_owned()))?;
    let format = value["format"]["format_name"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    // Image formats probe as one-frame "videos"; they are not videos.
    if format.contains("image2") || format.ends_with("_pipe") {
        return Err(VideoError::NotAVideo(format!("{format} is a still image")));
    }
    Ok(VideoInfo {
        duration_s,
        width: video["width"].as_u64().unwrap_or(0) as u32,
        height: video["height"].as_u64().unwrap_or(0) as u32,
        video_codec: video["codec_name"].as_str().unwrap_or("unknown").to_owned(),
        audio_codec: audio
            .and_then(|a| a["codec_name"].as_str())
            .map(str::to_owned),
        format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_1080p_frame_fits_to_720_keeping_aspect_and_even_sides() {
        assert_eq!(fit_720(1920, 1080), (1280, 720));
        assert_eq!(fit_720(1080, 1920), (720, 1280));
        assert_eq!(fit_720(640, 480), (640, 480));
        assert_eq!(fit_720(641, 361), (642, 362));
    }

    #[test]
    fn a_probe_without_a_video_stream_is_not_a_video() {
        let json = br#"{"streams":[{"codec_type":"audio","codec_name":"mp3"}],"format":{"duration":"3.0","format_name":"mp3"}}"#;
        assert!(matches!(parse_probe(json), Err(VideoError::NotAVideo(_))));
    }
}
