//! `vigia`: the command line. Thin: parse arguments, load configuration, call the library.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use vigia::config::{Config, Overrides};
use vigia::{Application, demo, open_database, telemetry};
use vigia_domain::users::Role;

#[derive(Parser)]
#[command(
    name = "vigia",
    version,
    about = "Vigía: report, route and resolve incidents"
)]
struct Cli {
    /// Configuration file (default: ./vigia.toml if present).
    #[arg(long, global = true, env = "VIGIA_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory for the embedded defaults (SQLite file, objects, signing key).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://...
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Object storage: a directory or s3://BUCKET/PREFIX.
    #[arg(long, global = true)]
    storage_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (API, docs, metrics) until SIGINT/SIGTERM.
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write a consistent copy of the SQLite database while the server runs.
    Backup {
        /// The file to write (must not exist).
        #[arg(long, short)]
        output: PathBuf,
    },
    /// Load synthetic data for load tests and demos.
    #[command(subcommand)]
    Seed(SeedCommand),
    /// Generate and list reports.
    #[command(subcommand)]
    Report(ReportCommand),
    /// Export incidents or their events to a file (CSV, NDJSON or XLSX).
    Export(ExportArgs),
    /// Inspect and steer background jobs (the dead-letter list is `--state dead`).
    #[command(subcommand)]
    Jobs(vigia::jobs_cli::JobsCommand),
    /// Inspect, run, pause and resume schedules.
    #[command(subcommand)]
    Schedules(vigia::jobs_cli::SchedulesCommand),
    /// Print the OpenAPI document of the API (the one served at /api/openapi.json).
    Openapi,
    /// Media pipeline tools.
    #[command(subcommand)]
    Media(MediaCommand),
    /// Run virtual devices that send detections (with stress episodes) to a running server.
    Simulate(SimulateArgs),
    /// Replace the SQLite database with a backup (stop the server first).
    Restore {
        /// The backup file to restore.
        #[arg(long, short)]
        input: PathBuf,
        /// Overwrite an existing database.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum MediaCommand {
    /// Measure face verification (true/false-match rates, timings, captures/s at 640x480) on
    /// the labelled photos scripts/media-setup.sh fetched.
    BenchFaces {
        /// Distance under which two faces are the same person.
        #[arg(long, default_value_t = 0.6)]
        threshold: f64,
        /// Passes over the photos for the throughput figure.
        #[arg(long, default_value_t = 20)]
        rounds: usize,
    },
    /// Measure how long after a capture lands in storage its result JSON is written, on a
    /// scratch node (watcher on a local directory, cursor lister on S3; media.scan off).
    BenchLanding {
        /// Captures to land, one at a time, a second apart.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// `s3://bucket/prefix` (credentials from AWS_*); default: a temporary directory.
        #[arg(long, default_value = "")]
        storage: String,
        /// S3-compatible endpoint, e.g. http://127.0.0.1:5000.
        #[arg(long, default_value = "")]
        s3_endpoint: String,
    },
    /// Transcode one video as the media.transcode job does (≤720p H.264/AAC MP4, poster,
    /// strip) into a directory, and print how fast it went.
    Transcode {
        /// The video to process.
        input: PathBuf,
        /// The directory to write video.mp4, poster.jpg and strip.jpg into (created).
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on, e.g. 0.0.0.0:8080.
    #[arg(long)]
    listen: Option<String>,
    /// Load a demo campus (departments, categories, zones, one account per role) into an empty database.
    #[arg(long)]
    demo: bool,
    /// Also run the device simulator against this server (3 devices, 12 subjects, 20/s).
    #[arg(long)]
    simulate: bool,
}

#[derive(Args)]
struct SimulateArgs {
    /// Virtual devices.
    #[arg(long, default_value_t = 3)]
    devices: usize,
    /// Monitored subjects (SIM-0001, …; created with consent if missing).
    #[arg(long, default_value_t = 12)]
    subjects: usize,
    /// Detections per second, all devices together.
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long)]
    duration: Option<u64>,
    /// Publish to the broker of `detections.mqtt_url` instead of the HTTP batch endpoint.
    #[arg(long)]
    mqtt: bool,
    /// The server's base URL (default: `http.public_url`).
    #[arg(long)]
    url: Option<String>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from the terminal or, with --password-stdin, standard input.
    Create {
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long, default_value = "Administrador")]
        name: String,
        /// reporter, staff or admin.
        #[arg(long, default_value = "admin")]
        role: String,
        /// Read the password from standard input (for scripts).
        #[arg(long)]
        password_stdin: bool,
        /// Make the account a member of this department, by id or name (repeat for several).
        #[arg(long = "department", value_name = "ID_OR_NAME")]
        departments: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SeedCommand {
    /// Load N synthetic incidents and their `created` events, spread over the last days
    /// (creates a small catalog first if there is none).
    Incidents {
        /// How many incidents to load.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: u64,
        /// Incidents per transaction.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        batch: u64,
        /// Spread creation times over this many days before now.
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(i64).range(1..=3650))]
        days: i64,
        /// Random seed: the same seed loads the same incidents.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Generate the global report of a period now (default: the last complete quarter hour);
    /// running it again for the same period replaces it.
    Run {
        /// Start (RFC 3339, inclusive). Default: 15 minutes before --to.
        #[arg(long)]
        from: Option<String>,
        /// End (RFC 3339, exclusive). Default: now when --from is given.
        #[arg(long)]
        to: Option<String>,
    },
    /// List the latest reports.
    List {
        /// global, incident or custom.
        #[arg(long)]
        kind: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Args)]
struct ExportArgs {
    /// incidents or events.
    #[arg(value_parser = ["incidents", "events"])]
    what: String,
    /// csv, ndjson or xlsx.
    #[arg(long, default_value = "csv")]
    format: String,
    /// The file to write (must not exist).
    #[arg(long, short)]
    output: PathBuf,
    /// The incident list's filters as a query string, e.g. "status=new,acknowledged&zone=3".
    #[arg(long, default_value = "")]
    filter: String,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the effective configuration (secrets redacted).
    Show,
    /// Print the built-in defaults, every key commented.
    Defaults,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let listen = match &cli.command {
        Command::Serve(args) => args.listen.clone(),
        _ => None,
    };
    let overrides = Overrides {
        data_dir: cli.data_dir,
        database_url: cli.database_url,
        storage_url: cli.storage_url,
        listen,
    };
    if let Command::Config(ConfigCommand::Defaults) = cli.command {
        print!("{}", vigia::config::DEFAULTS);
        return Ok(());
    }
    if let Command::Openapi = cli.command {
        print!("{}", vigia_http::openapi::document_json()?);
        return Ok(());
    }
    if let Command::Media(command) = cli.command {
        return match command {
            MediaCommand::BenchFaces { threshold, rounds } => {
                vigia::media_bench::bench_faces(threshold, rounds).await
            }
            MediaCommand::BenchLanding {
                rounds,
                storage,
                s3_endpoint,
            } => {
                let storage = vigia::landing_bench::BenchStorage {
                    url: storage,
                    s3_endpoint,
                };
                vigia::landing_bench::bench_landing(storage, rounds).await
            }
            MediaCommand::Transcode { input, output } => {
                vigia::media_bench::transcode(&input, &output).await
            }
        };
    }
    let config = Config::load(cli.config.as_deref(), &overrides)?;
    telemetry::init(&config.log);
    match cli.command {
        Command::Serve(args) => serve(&config, args.demo, args.simulate).await,
        Command::Simulate(args) => simulate(&config, args).await,
        Command::Migrate => {
            let db = open_database(&config).await?;
            println!(
                "database is up to date ({} migrations applied in total)",
                db.applied_migrations().await
            );
            Ok(())
        }
        Command::User(UserCommand::Create {
            email,
            name,
            role,
            password_stdin,
            departments,
        }) => {
            let role = Role::parse("role", &role).map_err(|e| anyhow::anyhow!("--{e}"))?;
            let password = read_password(password_stdin)?;
            let db = open_database(&config).await?;
            let user =
                vigia::create_user_in(&db, &email, &name, &password, role, &departments).await?;
            let member_of: Vec<String> = user.departments.iter().map(|d| d.0.to_string()).collect();
            println!(
                "created {} {} (id {}){}",
                user.role.as_str(),
                user.email,
                user.id,
                if member_of.is_empty() {
                    String::new()
                } else {
                    format!(" in departments {}", member_of.join(", "))
                }
            );
            Ok(())
        }
        Command::Config(ConfigCommand::Show) => {
            print!("{}", config.redacted_toml()?);
            Ok(())
        }
        Command::Config(ConfigCommand::Defaults) | Command::Openapi | Command::Media(_) => Ok(()),
        Command::Backup { output } => {
            let db = open_database(&config).await?;
            db.backup_sqlite(&output).await?;
            println!(
                "wrote a consistent copy of the database to {}",
                output.display()
            );
            Ok(())
        }
        Command::Restore { input, force } => restore(&config, &input, force),
        Command::Report(command) => {
            let db = open_database(&config).await?;
            match command {
                ReportCommand::Run { from, to } => {
                    let time = |name, raw: Option<String>| {
                        raw.map(|r| vigia::reports_cli::parse_time(name, &r))
                            .transpose()
                    };
                    let objects =
                        vigia_store::Objects::open(&config.storage_url(), &config.s3_options())?;
                    vigia::reports_cli::run(&db, &objects, time("from", from)?, time("to", to)?)
                        .await?
                }
                ReportCommand::List { kind, limit } => {
                    vigia::reports_cli::list(&db, kind.as_deref(), limit.clamp(1, 200)).await?
                }
            }
            db.close().await;
            Ok(())
        }
        Command::Export(args) => {
            let db = open_database(&config).await?;
            let kind = if args.what == "events" {
                vigia_reports::export::ExportKind::Events
            } else {
                vigia_reports::export::ExportKind::Incidents
            };
            let result = vigia::reports_cli::export_to_file(
                &db,
                kind,
                &args.format,
                &args.output,
                &args.filter,
            )
            .await;
            db.close().await;
            result
        }
        Command::Jobs(command) => vigia::jobs_cli::jobs(&config, command).await,
        Command::Schedules(command) => vigia::jobs_cli::schedules(&config, command).await,
        Command::Seed(SeedCommand::Incidents {
            count,
            batch,
            days,
            seed,
        }) => {
            let db = open_database(&config).await?;
            if let Some(done) = vigia::seed::ensure_catalog(&db).await? {
                println!("no categories yet: {done}");
            }
            let options = vigia::seed::SeedOptions {
                count,
                batch: usize::try_from(batch).unwrap_or(10_000),
                days,
                seed,
            };
            let (loaded, took) = vigia::seed::incidents(&db, &options).await?;
            println!(
                "loaded {loaded} incidents in {:.1} s ({:.0} per second)",
                took.as_secs_f64(),
                loaded as f64 / took.as_secs_f64().max(0.001)
            );
            db.close().await;
            Ok(())
        }
    }
}

async fn simulate(config: &Config, args: SimulateArgs) -> anyhow::Result<()> {
    let mqtt = if args.mqtt {
        if config.detections.mqtt_url.is_empty() {
            bail!(
                "--mqtt needs detections.mqtt_url (e.g. VIGIA_DETECTIONS__MQTT_URL=mqtt://127.0.0.1:1883)"
            );
        }
        Some(config.detections.mqtt_url.clone())
    } else {
        None
    };
    let db = open_database(config).await?;
    let options = vigia::simulate::Options {
        devices: args.devices,
        subjects: args.subjects,
        rate: args.rate,
        duration: args.duration.map(std::time::Duration::from_secs),
        url: args.url.unwrap_or_else(|| config.http.public_url.clone()),
        mqtt,
        progress: std::io::stderr().is_terminal(),
    };
    let stop = CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        vigia::shutdown_signal().await;
        trigger.cancel();
    });
    let started = std::time::Instant::now();
    let summary = vigia::simulate::run(&db, options, stop).await;
    db.close().await;
    let summary = summary?;
    println!("{}", summary.line(started.elapsed()));
    Ok(())
}

async fn serve(config: &Config, demo: bool, simulate: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let app = Application::build(config).await?;
    let seeded = demo && demo::seed(&app.state().db).await?;
    let url = app.state().config.public_url.clone();
    // The web UI first: it is what a newcomer opens.
    println!("Vigía web UI: {url}/");
    if seeded {
        println!("demo data loaded; sign in with:");
        for (email, password, role) in demo::ACCOUNTS {
            println!("  {:<9} {email}  /  {password}", role.as_str());
        }
    }
    let (users, _) = vigia_store::users::counts(&app.state().db).await?;
    println!("Vigía {} listening on {url}", env!("CARGO_PKG_VERSION"));
    println!("  API docs: {url}/api/docs   health: {url}/health   metrics: {url}/metrics");
    if users == 0 {
        println!(
            "  no accounts yet: create the first admin with `vigia user create --email you@example.org --role admin`\n  \
             (or start with VIGIA_BOOTSTRAP__ADMIN_EMAIL and VIGIA_BOOTSTRAP__ADMIN_PASSWORD set)"
        );
    }
    tracing::info!(ready_in_ms = started.elapsed().as_millis() as u64, %url, "ready");
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        vigia::shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests");
        trigger.cancel();
    });
    if simulate {
        let db = app.state().db.clone();
        let options = vigia::simulate::Options {
            devices: 3,
            subjects: 12,
            rate: 20,
            duration: None,
            url: format!("http://{}", app.local_addr()),
            mqtt: None,
            progress: false,
        };
        let stop = shutdown.clone();
        println!(
            "  simulator: 3 devices, 12 subjects, 20 detections/s, a stress episode every minute"
        );
        tokio::spawn(async move {
            if let Err(error) = vigia::simulate::run(&db, options, stop).await {
                tracing::error!(%error, "the simulator stopped");
            }
        });
    }
    app.run(shutdown).await
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    if from_stdin {
        let mut password = String::new();
        std::io::stdin()
            .read_to_string(&mut password)
            .context("cannot read the password from standard input")?;
        return Ok(password.trim_end_matches(['\r', '\n']).to_owned());
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to ask for the password: pass --password-stdin and pipe it in");
    }
    let first = rpassword::prompt_password("Password: ").context("cannot read the password")?;
    let second =
        rpassword::prompt_password("Repeat password: ").context("cannot read the password")?;
    if first != second {
        bail!("the passwords do not match");
    }
    Ok(first)
}

fn restore(config: &Config, input: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let url = config.database_url();
    let Some(path) = url.strip_prefix("sqlite://") else {
        bail!("restore is for SQLite; restore PostgreSQL with pg_restore or psql (see the README)");
    };
    let target = PathBuf::from(path.split('?').next().unwrap_or(path));
    if !input.is_file() {
        bail!("{} is not a file", input.display());
    }
    let header = std::fs::read(input)
        .map(|b| b.starts_with(b"SQLite format 3\0"))
        .unwrap_or(false);
    if !header {
        bail!("{} is not a SQLite database", input.display());
    }
    if target.exists() && !force {
        bail!(
            "{} exists: stop the server and pass --force to replace it",
            target.display()
        );
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let staging = target.with_extension("db.restoring");
    std::fs::copy(input, &staging).with_context(|| format!("cannot copy {}", input.display()))?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
    }
    std::fs::rename(&staging, &target)
        .with_context(|| format!("cannot replace {}", target.display()))?;
    println!("restored {} from {}", target.display(), input.display());
    Ok(())
}
