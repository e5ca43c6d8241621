//! radsam-worker: the queue service's worker process. One model per process (GPU when present),
//! jobs from RabbitMQ, masks to S3, results to PostgreSQL, /healthz and /metrics for operators.
//! Run more processes to scale (one GPU each): the queue spreads the jobs.

use radsam::error::Coded;
mod config;
mod handle;
mod models;
mod service;
mod telemetry;

use anyhow::{Context, Result};
use clap::Parser;
use config::Config;
use radsam::db::Db;
use radsam::queue::Topology;
use radsam::storage::{Storage, StorageConfig};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use telemetry::{Health, Metrics};
use tracing::info;

/// Everything a worker holds while it runs.
pub struct Worker {
    config: Config,
    /// host:pid, the consumer tag and the jobs.worker column.
    name: String,
    db: Db,
    storage: Storage,
    topology: Topology,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    model: tokio::sync::Mutex<Arc<models::LoadedModel>>,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,lapin=warn,aws=warn,sqlx=warn,jpeg2k=warn".into());
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if format == "json" {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}

/// One log line per panic, never a backtrace (even with RUST_BACKTRACE set): the panics a worker
/// meets are caught and become a job's error (a decoder on a corrupt DICOM, libtorch on the model
/// thread), their message says what happened, and a multi-line dump per bad input would bury the
/// log and forge lines in it.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let message = radsam::job::text::printable(&radsam::model::panic_message(info.payload()), 4000);
        tracing::error!(thread = std::thread::current().name().unwrap_or("-"), location, "panic: {message}");
    }));
}

fn main() -> Result<()> {
    radsam::allocator::keep_freed_memory();
    let config = Config::parse();
    init_logging(&config.log_format);
    log_panics();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> Result<()> {
    // A job whose worker keeps dying must meet JOB_POISON before the broker dead-letters it unrecorded.
    let limit = config.connection.delivery_limit;
    anyhow::ensure!(
        config.max_attempts >= 1 && config.max_attempts as i64 <= limit as i64,
        "[CONFIG_INVALID] RADSAM_MAX_ATTEMPTS ({}) must be between 1 and RADSAM_DELIVERY_LIMIT ({limit})",
        config.max_attempts
    );
    // Scratch folders of workers that were killed (SIGKILL, OOM) are named by their PID: remove
    // those whose process is gone, so a crash loop cannot fill the temp dir.
    for prefix in [radsam::scratch::JOB_SCRATCH_PREFIX, radsam::scratch::WEIGHTS_SCRATCH_PREFIX] {
        let removed = radsam::scratch::remove_stale_scratch(prefix);
        if removed > 0 {
            info!(removed, prefix, "removed scratch folders of dead workers");
        }
    }
    let host =
        std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "worker".into());
    let name = format!("{host}:{}", std::process::id());
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let bound = telemetry::serve(config.http_addr, metrics.clone(), health.clone())
        .await
        .with_context(|| format!("listening on {}", config.http_addr))?;
    info!(worker = %name, "health and metrics on http://{bound}/healthz, /metrics");

    let db = Db::connect_lazy(&config.connection.database_url).map_err(radsam::error::with_code)?;
    // The schema must exist before the first job; wait for PostgreSQL rather than crash.
    let mut wait = std::time::Duration::from_millis(500);
    loop {
        match db.migrate().await {
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                tracing::warn!("PostgreSQL not ready ({e}); retrying in {:.1} s", wait.as_secs_f64());
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(10));
            }
            Err(e) => return Err(radsam::error::with_code(e)),
        }
    }
    health.database_ok.store(true, Ordering::Relaxed);

    let storage = Storage::new(&StorageConfig::from_env());
    // The results bucket must exist before the first upload; a store that is down now is retried per job.
    if let Err(e) = storage.ensure_bucket(&config.results_uri).await {
        tracing::warn!("cannot make sure {} exists yet: [{}] {e}", config.results_uri, e.code());
    }
    let (model_name, weights, device, threads) =
        (config.model.clone(), config.weights.clone(), config.device.clone(), config.threads);
    let model = tokio::task::spawn_blocking(move || models::load(&model_name, weights, &device, threads)).await??;
    db.register_model_version(&model.version, &model.name, Some(&model.sha256))
        .await
        .map_err(radsam::error::with_code)?;
    info!(model = %model.version, device = %config.device, "model loaded");
    health.set_model(Some(model.version.clone()));

    let topology = Topology::new(&config.connection.queue_prefix, config.connection.delivery_limit);
    let (tx, rx) = tokio::sync::watch::channel(false);
    service::on_signals(tx);
    let worker = Worker {
        config,
        name,
        db,
        storage,
        topology,
        metrics,
        health,
        model: tokio::sync::Mutex::new(Arc::new(model)),
    };
    // A version promoted by the trainer service replaces the configured model before the first job.
    match worker.model_for(None).await {
        Ok(m) => info!(model = %m.version, "serving"),
        Err(e) => tracing::warn!("cannot load the promoted version now ({e:?}); jobs will try again"),
    }
    worker.run(rx).await;
    Ok(())
}
