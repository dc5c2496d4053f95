//! `vigia-loadtest paced`: creates incidents at a fixed rate for a fixed time (an open-loop
//! load: requests are scheduled by the clock, not by the previous answer), so a benchmark can
//! ask whether the server — and everything an incident causes in the background — keeps up
//! with a given intake. Latency is measured from each request's scheduled time, so a server
//! that falls behind shows it instead of slowing the load down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::json;

use crate::{Latencies, percentile};

#[derive(clap::Args)]
pub struct PacedArgs {
    /// The server, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The account that reports the incidents.
    #[arg(long, default_value = "reporter@demo.vigia.local")]
    email: String,
    #[arg(long, default_value = "faro-este-2026")]
    password: String,
    /// Incidents per second.
    #[arg(long)]
    rate: u32,
    /// Seconds of load.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Concurrent connections (requests in flight at most).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// The category reported (the demo's first routes to a department with contacts).
    #[arg(long, default_value_t = 1)]
    category: i64,
}

pub async fn paced(args: PacedArgs) -> anyhow::Result<()> {
    crate::require_loopback(&args.url)?;
    if args.rate == 0 {
        bail!("--rate must be at least 1");
    }
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let token = crate::login(&http, &args.url, &args.email, &args.password)
        .await
        .context("check --email and --password")?;
    let body = json!({
        "category_id": args.category,
        "title": "Tubería rota en el baño",
        "description": "Sale agua sin parar desde la mañana en el tercer piso.",
        "location_text": "Pabellón A, 3er piso",
        "visibility": "public",
    })
    .to_string();
    let total = args.rate as u64 * args.duration;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let latencies = Arc::new(Latencies::new());
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (tx, rx) = async_channel(total as usize);
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.connections {
        let (http, rx, token, body, url) = (
            http.clone(),
            rx.clone(),
            token.clone(),
            body.clone(),
            args.url.clone(),
        );
        let (latencies, ok, failed) = (latencies.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while let Ok(due) = rx.recv().await {
                let reply = http
                    .post(format!("{url}/api/v1/incidents"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match reply {
                    Ok(r) if r.status().as_u16() == 201 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
                let late: Instant = due;
                latencies.record(late.elapsed().as_micros() as u64);
            }
        }));
    }
    // The pacer: every request has its due time; they wait in the channel for a free connection.
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        if tx.send(due).await.is_err() {
            break;
        }
    }
    tx.close();
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let counts = latencies.take();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "paced: asked {} incidents/s for {} s; created {ok} ({failed} failed) in {elapsed:.1} s = {:.0}/s; \
         latency from schedule p50 {:.1} ms, p99 {:.1} ms",
        args.rate,
        args.duration,
        ok as f64 / elapsed,
        percentile(&counts, 0.50),
        percentile(&counts, 0.99),
    );
    Ok(())
}

/// A multi-consumer channel of due times (tokio's mpsc has one consumer).
fn async_channel(capacity: usize) -> (Sender, Receiver) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    let rx = Receiver(Arc::new(tokio::sync::Mutex::new(rx)));
    (Sender(tx), rx)
}

struct Sender(tokio::sync::mpsc::Sender<Instant>);

impl Sender {
    async fn send(&self, due: Instant) -> Result<(), ()> {
        self.0.send(due).await.map_err(|_| ())
    }

    fn close(self) {
        drop(self);
    }
}

#[derive(Clone)]
struct Receiver(Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<Instant>>>);

impl Receiver {
    async fn recv(&self) -> Result<Instant, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}
