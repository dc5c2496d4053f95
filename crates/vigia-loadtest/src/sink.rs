//! `vigia-loadtest sink`: a webhook receiver that is not the bottleneck. It answers every
//! `POST` with `204` on keep-alive connections (plain HTTP/1.1 on tokio, no framework) and
//! counts them; any `GET` answers the counts as JSON: `{"received": n, "first_ms": t,
//! "last_ms": t}` (milliseconds since the Unix epoch), so a benchmark reads the delivery rate
//! from the receiver's own clock. Loopback only.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(clap::Args)]
pub struct SinkArgs {
    /// Where to listen, e.g. 127.0.0.1:9000 (loopback only).
    #[arg(long)]
    listen: String,
}

#[derive(Default)]
struct Counts {
    received: AtomicU64,
    first_ms: AtomicI64,
    last_ms: AtomicI64,
}

pub async fn sink(args: SinkArgs) -> anyhow::Result<()> {
    if !args.listen.starts_with("127.0.0.1:") && !args.listen.starts_with("localhost:") {
        bail!("the sink listens on loopback only, not {}", args.listen);
    }
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let counts = Arc::new(Counts::default());
    loop {
        let (stream, _) = listener.accept().await?;
        let counts = counts.clone();
        tokio::spawn(async move {
            let _ = serve(stream, &counts).await;
        });
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Serves one connection's requests in turn until the peer closes it.
async fn serve(mut stream: TcpStream, counts: &Counts) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut buffer = Vec::with_capacity(16 * 1024);
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if read_more(&mut stream, &mut buffer).await? == 0 {
                return Ok(());
            }
        };
        let head = std::str::from_utf8(&buffer[..head_end]).context("request head")?;
        let length = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .map_or(Ok(0), |(_, v)| v.trim().parse::<usize>())
            .context("content-length")?;
        let is_post = head.starts_with("POST ");
        while buffer.len() < head_end + length {
            if read_more(&mut stream, &mut buffer).await? == 0 {
                return Ok(());
            }
        }
        buffer.drain(..head_end + length);
        if is_post {
            let now = now_ms();
            let _ = counts
                .first_ms
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            counts.last_ms.fetch_max(now, Ordering::Relaxed);
            counts.received.fetch_add(1, Ordering::Relaxed);
            stream
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await?;
        } else {
            let body = format!(
                "{{\"received\":{},\"first_ms\":{},\"last_ms\":{}}}",
                counts.received.load(Ordering::Relaxed),
                counts.first_ms.load(Ordering::Relaxed),
                counts.last_ms.load(Ordering::Relaxed)
            );
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).await?;
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<usize> {
    let mut chunk = [0u8; 8192];
    let n = stream.read(&mut chunk).await?;
    buffer.extend_from_slice(&chunk[..n]);
    Ok(n)
}
