//! `vigia-loadtest paced` (see [`paced`]) creates incidents at a fixed rate.
//!
//! `vigia-loadtest alert-latency` (see [`alert`]) times alerts from detection to WebSocket.
//!
//! `vigia-loadtest sink` (see [`sink`]) receives webhooks and counts them.
//!
//! `vigia-loadtest ws`: opens many WebSocket clients against a running Vigía, makes incident
//! events through the REST API, and measures how they are delivered: per-delivery latency
//! (the event's server `ts` against the time it arrives; same machine, same clock), messages
//! per second in total, and the server's memory.
//!
//! Loopback only: the target must be a 127.0.0.1 / localhost URL.

mod alert;
mod client;
mod paced;
mod sink;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};

use client::{Client, Incoming};

#[derive(Parser)]
#[command(about = "Load clients for benchmarking Vigía")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// WebSocket fan-out: N clients subscribed to all incidents, events made over REST.
    Ws(WsArgs),
    /// Incidents created at a fixed rate for a fixed time (bench/sustained.sh).
    Paced(paced::PacedArgs),
    /// Detection that triggers an alert → `alert.raised` on a WebSocket (bench/detections.sh).
    AlertLatency(alert::AlertArgs),
    /// A webhook receiver that answers 204 and counts (bench/notify.sh).
    Sink(sink::SinkArgs),
}

#[derive(clap::Args)]
struct WsArgs {
    /// The server, e.g. http://127.0.0.1:8080 (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Account that connects every client and makes the events (an admin sees everything).
    #[arg(long, default_value = "admin@demo.vigia.local")]
    email: String,
    #[arg(long, default_value = "faro-norte-2026")]
    password: String,
    /// Concurrent WebSocket clients.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Handshakes in flight while connecting.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Single events, one at a time, to measure the latency of one broadcast.
    #[arg(long, default_value_t = 20)]
    probes: usize,
    /// Events per second during the broadcast phase.
    #[arg(long, default_value_t = 25)]
    rate: u32,
    /// Seconds of the broadcast phase.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// The server's process id, to report its memory.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// Delivery latencies in 100 µs buckets up to 10 s.
struct Latencies {
    buckets: Vec<AtomicU64>,
}

const BUCKET_US: u64 = 100;
const BUCKETS: usize = 100_000;

impl Latencies {
    fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn record(&self, micros: u64) {
        let i = ((micros / BUCKET_US) as usize).min(BUCKETS - 1);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the counts and resets them.
    fn take(&self) -> Vec<u64> {
        self.buckets
            .iter()
            .map(|b| b.swap(0, Ordering::Relaxed))
            .collect()
    }
}

fn percentile(counts: &[u64], p: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let target = (((total as f64) * p).ceil() as u64).max(1);
    let mut seen = 0;
    for (i, count) in counts.iter().enumerate() {
        seen += count;
        if seen >= target {
            return ((i as u64 + 1) * BUCKET_US) as f64 / 1000.0;
        }
    }
    f64::NAN
}

struct Shared {
    latencies: Latencies,
    messages: AtomicU64,
    connected: AtomicUsize,
    closed: AtomicUsize,
}

// One thread: the clients share the server's machine, and a client is a measuring instrument.
// On two worker threads the clients handed sockets between threads and woke each other, and
// took 13–16 ticks of CPU a second during single events against 8–11 on one thread; what
// the instrument uses is taken from the server it measures.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Ws(args) => ws(args).await,
        Command::Paced(args) => paced::paced(args).await,
        Command::AlertLatency(args) => alert::alert_latency(args).await,
        Command::Sink(args) => sink::sink(args).await,
    }
}

/// Refuses any target but this machine: the load clients never send traffic elsewhere.
fn require_loopback(url: &str) -> anyhow::Result<()> {
    let parsed = reqwest::Url::parse(url).context("invalid --url")?;
    let host = parsed.host_str().unwrap_or_default();
    if !["127.0.0.1", "localhost", "[::1]"].contains(&host) {
        bail!("the load client only targets loopback addresses, not {host}");
    }
    Ok(())
}

/// Signs in; returns the access token.
async fn login(
    http: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<String> {
    let login: Value = http
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await?
        .error_for_status()
        .context("login failed")?
        .json()
        .await?;
    Ok(login["access_token"]
        .as_str()
        .context("no access token")?
        .to_owned())
}

async fn ws(args: WsArgs) -> anyhow::Result<()> {
    require_loopback(&args.url)?;
    let http = reqwest::Client::new();
    let token = login(&http, &args.url, &args.email, &args.password).await?;
    let incident = make_incident(&http, &args.url, &token).await?;

    let shared = Arc::new(Shared {
        latencies: Latencies::new(),
        messages: AtomicU64::new(0),
        connected: AtomicUsize::new(0),
        closed: AtomicUsize::new(0),
    });
    println!("connecting {} WebSocket clients...", args.clients);
    let started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(args.connect_concurrency));
    let ws_url = format!("{}/ws", args.url.replacen("http://", "ws://", 1));
    for _ in 0..args.clients {
        let permit = permits.clone().acquire_owned().await?;
        let (shared, token, ws_url) = (shared.clone(), token.clone(), ws_url.clone());
        tokio::spawn(async move {
            match connect(&ws_url, &token, &["incidents"]).await {
                Ok(socket) => {
                    shared.connected.fetch_add(1, Ordering::Relaxed);
                    drop(permit);
                    read(socket, &shared).await;
                }
                Err(error) => {
                    drop(permit);
                    eprintln!("connect failed: {error}");
                }
            }
            shared.closed.fetch_add(1, Ordering::Relaxed);
        });
    }
    while shared.connected.load(Ordering::Relaxed) + shared.closed.load(Ordering::Relaxed)
        < args.clients
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connected = shared.connected.load(Ordering::Relaxed);
    println!(
        "connected {connected}/{} in {:.1} s",
        args.clients,
        started.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    report_memory(args.server_pid, "server memory with clients connected");

    // Phase 1: one event at a time, all clients idle.
    shared.latencies.take();
    let before = shared.messages.load(Ordering::Relaxed);
    for _ in 0..args.probes {
        comment(&http, &args.url, &token, incident).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let counts = shared.latencies.take();
    let delivered = shared.messages.load(Ordering::Relaxed) - before;
    println!(
        "single event to {connected} clients ({} events, {delivered} deliveries, expected {}): first {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.probes,
        args.probes * connected,
        percentile(&counts, 0.0),
        percentile(&counts, 0.50),
        percentile(&counts, 0.99),
        percentile(&counts, 1.0),
    );

    // Phase 2: a steady rate of events for a while.
    let before = shared.messages.load(Ordering::Relaxed);
    let started = Instant::now();
    let total = args.rate as u64 * args.duration;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    let mut writers = Vec::new();
    for _ in 0..total {
        ticker.tick().await;
        let (http, url, token) = (http.clone(), args.url.clone(), token.clone());
        writers.push(tokio::spawn(async move {
            comment(&http, &url, &token, incident).await
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let expected = total * connected as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    while shared.messages.load(Ordering::Relaxed) - before < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered = shared.messages.load(Ordering::Relaxed) - before;
    let counts = shared.latencies.take();
    println!(
        "broadcast: {total} events at {}/s to {connected} clients: {delivered}/{expected} delivered in {elapsed:.2} s = {:.0} messages/s; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.rate,
        delivered as f64 / elapsed,
        percentile(&counts, 0.50),
        percentile(&counts, 0.99),
        percentile(&counts, 1.0),
    );
    println!(
        "clients closed by the server: {}",
        shared.closed.load(Ordering::Relaxed)
    );
    report_memory(args.server_pid, "server memory after the broadcast");
    Ok(())
}

/// A WebSocket client subscribed to `topics`, once the server said so.
async fn connect(url: &str, token: &str, topics: &[&str]) -> anyhow::Result<Client> {
    let mut client = Client::connect(url, token).await?;
    client
        .send_text(&json!({ "type": "subscribe", "topics": topics }).to_string())
        .await?;
    loop {
        match client.next().await? {
            Incoming::Text(text) if text.contains("\"subscribed\"") => return Ok(client),
            Incoming::Text(_) | Incoming::Other => {}
            Incoming::Closed => bail!("closed before subscribing"),
        }
    }
}

async fn read(mut client: Client, shared: &Shared) {
    while let Ok(message) = client.next().await {
        let text = match message {
            Incoming::Text(text) => text,
            Incoming::Other => continue,
            Incoming::Closed => break,
        };
        if !text.starts_with("{\"type\":\"incident.") && !text.contains("\"type\":\"incident.") {
            continue;
        }
        let now = time::OffsetDateTime::now_utc();
        shared.messages.fetch_add(1, Ordering::Relaxed);
        if let Some(ts) = extract_ts(text) {
            let micros = (now - ts).whole_microseconds().max(0) as u64;
            shared.latencies.record(micros);
        }
    }
}

/// The envelope's `ts` without parsing the whole message.
fn extract_ts(text: &str) -> Option<time::OffsetDateTime> {
    let start = text.find("\"ts\":\"")? + 6;
    let end = start + text[start..].find('"')?;
    time::OffsetDateTime::parse(
        &text[start..end],
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
}

async fn make_incident(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<i64> {
    let categories: Value = http
        .get(format!("{url}/api/v1/categories"))
        .bearer_auth(token)
        .send()
        .await?
        .json()
        .await?;
    let category = categories["items"][0]["id"]
        .as_i64()
        .or_else(|| categories[0]["id"].as_i64())
        .context("no category: start the server with --demo")?;
    let created: Value = http
        .post(format!("{url}/api/v1/incidents"))
        .bearer_auth(token)
        .json(
            &json!({ "category_id": category, "title": "Prueba de carga en tiempo real",
                       "description": "Incidente para medir la entrega de eventos." }),
        )
        .send()
        .await?
        .error_for_status()
        .context("cannot create the incident")?
        .json()
        .await?;
    created["id"].as_i64().context("no incident id")
}

async fn comment(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    incident: i64,
) -> anyhow::Result<()> {
    http.post(format!("{url}/api/v1/incidents/{incident}/comments"))
        .bearer_auth(token)
        .json(&json!({ "body": "Evento de prueba de carga" }))
        .send()
        .await?
        .error_for_status()
        .context("comment failed")?;
    Ok(())
}

fn report_memory(pid: Option<u32>, what: &str) {
    let Some(pid) = pid else { return };
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return;
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l[name.len()..].trim().to_owned())
            .unwrap_or_default()
    };
    println!("{what}: RSS {} (peak {})", field("VmRSS:"), field("VmHWM:"));
}
