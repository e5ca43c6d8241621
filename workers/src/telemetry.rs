//! What operators watch: Prometheus metrics, the health state behind /healthz, the small HTTP
//! server that serves both, and the log (tracing, one line per event and per panic).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use radsam::segment::CacheStats;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub struct Metrics {
    registry: Registry,
    /// Jobs by outcome: succeeded, failed, rejected (not a valid job), duplicate (already
    /// finished), requeued (transient failure or shutdown).
    pub jobs: IntCounterVec,
    /// Seconds by stage: fetch, decode, encode, propagate, upload, commit.
    pub stage_seconds: HistogramVec,
    pub job_seconds: Histogram,
    /// Publish to start of processing.
    pub queue_lag_seconds: Histogram,
    pub broker_connections: IntCounter,
    pub in_flight: IntGauge,
    /// Jobs waiting in the queue (ready, not yet delivered to any worker), polled every few seconds.
    pub queue_depth: IntGauge,
    /// Workers consuming the queue.
    pub queue_consumers: IntGauge,
    /// Seconds a job submitted now would wait: depth x this worker's mean job seconds / consumers.
    pub estimated_wait_seconds: Gauge,
    /// The embedding cache's own counters, copied into the registry at each scrape.
    embedding_cache: std::sync::OnceLock<EmbeddingCacheMetrics>,
}

/// The embedding cache's counters as Prometheus series (radsam_embedding_cache_*).
struct EmbeddingCacheMetrics {
    stats: Arc<CacheStats>,
    events: IntCounterVec,
    bytes: IntCounterVec,
    stored_bytes: IntGauge,
}

impl EmbeddingCacheMetrics {
    fn new(registry: &Registry, stats: Arc<CacheStats>) -> Self {
        let events = IntCounterVec::new(
            Opts::new("radsam_embedding_cache_total", "Embedding cache lookups and removals, by event: hit, miss, corrupt (unusable entry deleted, also a miss), eviction, remote_hit (a local miss found in the S3 tier, also a hit), remote_error (the S3 tier failed; paused a minute)"),
            &["event"],
        )
        .unwrap();
        let bytes = IntCounterVec::new(
            Opts::new("radsam_embedding_cache_bytes_total", "Bytes read from and written to the embedding cache"),
            &["direction"],
        )
        .unwrap();
        let stored_bytes =
            IntGauge::new("radsam_embedding_cache_stored_bytes", "Bytes the embedding cache's folder holds").unwrap();
        registry.register(Box::new(events.clone())).unwrap();
        registry.register(Box::new(bytes.clone())).unwrap();
        registry.register(Box::new(stored_bytes.clone())).unwrap();
        Self { stats, events, bytes, stored_bytes }
    }

    /// Brings the series up to the cache's atomics (counters only ever grow: add the difference).
    fn refresh(&self) {
        let s = &self.stats;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        for (c, now) in [
            (self.events.with_label_values(&["hit"]), load(&s.hits)),
            (self.events.with_label_values(&["miss"]), load(&s.misses)),
            (self.events.with_label_values(&["corrupt"]), load(&s.corrupt)),
            (self.events.with_label_values(&["eviction"]), load(&s.evictions)),
            (self.events.with_label_values(&["remote_hit"]), load(&s.remote_hits)),
            (self.events.with_label_values(&["remote_error"]), load(&s.remote_errors)),
            (self.bytes.with_label_values(&["read"]), load(&s.bytes_read)),
            (self.bytes.with_label_values(&["written"]), load(&s.bytes_written)),
        ] {
            c.inc_by(now.saturating_sub(c.get()));
        }
        self.stored_bytes.set(load(&s.stored_bytes) as i64);
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let buckets = vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
        let jobs =
            IntCounterVec::new(Opts::new("radsam_jobs_total", "Jobs handled, by outcome"), &["outcome"]).unwrap();
        let stage_seconds = HistogramVec::new(
            HistogramOpts::new("radsam_stage_seconds", "Seconds per job stage").buckets(buckets.clone()),
            &["stage"],
        )
        .unwrap();
        let job_seconds = Histogram::with_opts(
            HistogramOpts::new("radsam_job_seconds", "Seconds per job, delivery to ack").buckets(buckets.clone()),
        )
        .unwrap();
        let queue_lag_seconds = Histogram::with_opts(
            HistogramOpts::new("radsam_queue_lag_seconds", "Seconds from publish to processing").buckets(buckets),
        )
        .unwrap();
        let broker_connections = IntCounter::new(
            "radsam_broker_connections_total",
            "Connections opened to the broker (more than one: reconnections)",
        )
        .unwrap();
        let in_flight = IntGauge::new("radsam_jobs_in_flight", "Jobs being processed").unwrap();
        let queue_depth =
            IntGauge::new("radsam_queue_depth", "Jobs waiting in the queue, not yet delivered to a worker").unwrap();
        let queue_consumers = IntGauge::new("radsam_queue_consumers", "Workers consuming the jobs queue").unwrap();
        let estimated_wait_seconds = Gauge::new(
            "radsam_estimated_wait_seconds",
            "Seconds a job submitted now would wait (queue depth x mean job seconds / consumers)",
        )
        .unwrap();
        for c in [
            Box::new(jobs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(stage_seconds.clone()),
            Box::new(job_seconds.clone()),
            Box::new(queue_lag_seconds.clone()),
            Box::new(broker_connections.clone()),
            Box::new(in_flight.clone()),
            Box::new(queue_depth.clone()),
            Box::new(queue_consumers.clone()),
            Box::new(estimated_wait_seconds.clone()),
        ] {
            registry.register(c).unwrap();
        }
        Self {
            registry,
            jobs,
            stage_seconds,
            job_seconds,
            queue_lag_seconds,
            broker_connections,
            in_flight,
            queue_depth,
            queue_consumers,
            estimated_wait_seconds,
            embedding_cache: Default::default(),
        }
    }

    /// Exports the embedding cache's counters from now on (once; a second call is ignored).
    pub fn watch_embedding_cache(&self, stats: Arc<CacheStats>) {
        let _ = self.embedding_cache.get_or_init(|| EmbeddingCacheMetrics::new(&self.registry, stats));
    }

    /// Records the queue as the broker reports it, and the wait it implies.
    pub fn set_queue(&self, depth: u32, consumers: u32) {
        self.queue_depth.set(depth as i64);
        self.queue_consumers.set(consumers as i64);
        let (count, sum) = (self.job_seconds.get_sample_count(), self.job_seconds.get_sample_sum());
        self.estimated_wait_seconds.set(estimated_wait(depth, consumers, count, sum));
    }

    fn render(&self) -> String {
        if let Some(cache) = self.embedding_cache.get() {
            cache.refresh();
        }
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

/// Seconds until a job submitted behind `depth` others starts, with `consumers` workers that took
/// `sum` seconds over `count` jobs so far (none yet: 0, nothing to go on).
fn estimated_wait(depth: u32, consumers: u32, count: u64, sum: f64) -> f64 {
    if count == 0 {
        return 0.0;
    }
    depth as f64 * (sum / count as f64) / consumers.max(1) as f64
}

/// What /healthz reports.
#[derive(Default)]
pub struct Health {
    pub broker_connected: AtomicBool,
    pub database_ok: AtomicBool,
    pub model: Mutex<Option<String>>,
    /// Why the model thread stopped, once it has: unhealthy for good (the process is ending).
    pub model_stopped: Mutex<Option<String>>,
    /// The embedding cache's folder, or why there is none ("off: ..."); the worker is healthy
    /// either way (an unusable cache costs time, never jobs).
    pub embedding_cache: Mutex<String>,
}

impl Health {
    pub fn set_model(&self, version: Option<String>) {
        *self.model.lock().unwrap() = version;
    }

    pub fn set_model_stopped(&self, why: &str) {
        *self.model_stopped.lock().unwrap() = Some(why.to_string());
    }

    pub fn model_stopped(&self) -> Option<String> {
        self.model_stopped.lock().unwrap().clone()
    }

    /// The /healthz answer: 200 only with the broker connected, the schema migrated and a model
    /// loaded whose thread still runs.
    fn report(&self) -> (StatusCode, serde_json::Value) {
        let broker = self.broker_connected.load(Ordering::Relaxed);
        let database = self.database_ok.load(Ordering::Relaxed);
        let model = self.model.lock().unwrap().clone();
        let stopped = self.model_stopped();
        let ok = broker && database && model.is_some() && stopped.is_none();
        let cache = self.embedding_cache.lock().unwrap().clone();
        let body = serde_json::json!({"status": if ok { "ok" } else { "unavailable" }, "broker_connected": broker, "database_ok": database, "model_version": model, "model_stopped": stopped, "embedding_cache": cache});
        (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    health: Arc<Health>,
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let (status, body) = s.health.report();
    (status, [("content-type", "application/json")], body.to_string())
}

async fn render_metrics(State(s): State<AppState>) -> impl IntoResponse {
    ([("content-type", "text/plain; version=0.0.4")], s.metrics.render())
}

/// Serves /healthz and /metrics on `addr` until the process ends; returns the bound address.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>, health: Arc<Health>) -> std::io::Result<SocketAddr> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState { metrics, health });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("the health/metrics server stopped: {e}");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimated_wait_is_the_queue_s_work_shared_by_its_consumers() {
        assert_eq!(estimated_wait(6, 2, 0, 0.0), 0.0, "no job done yet: no estimate");
        assert_eq!(estimated_wait(6, 2, 4, 40.0), 30.0, "6 jobs of 10 s on 2 workers");
        assert_eq!(estimated_wait(3, 0, 1, 10.0), 30.0, "no consumer counted as one");
        let m = Metrics::new();
        m.job_seconds.observe(20.0);
        m.set_queue(4, 2);
        let text = m.render();
        assert!(text.contains("radsam_queue_depth 4"), "{text}");
        assert!(text.contains("radsam_queue_consumers 2"), "{text}");
        assert!(text.contains("radsam_estimated_wait_seconds 40"), "{text}");
    }

    #[test]
    fn the_embedding_cache_counters_reach_metrics() {
        let m = Metrics::new();
        assert!(!m.render().contains("radsam_embedding_cache"), "no cache, no series");
        let stats = Arc::new(CacheStats::default());
        m.watch_embedding_cache(stats.clone());
        stats.hits.store(5, Ordering::Relaxed);
        stats.misses.store(2, Ordering::Relaxed);
        stats.bytes_written.store(4096, Ordering::Relaxed);
        stats.stored_bytes.store(4096, Ordering::Relaxed);
        let text = m.render();
        assert!(text.contains(r#"radsam_embedding_cache_total{event="hit"} 5"#), "{text}");
        assert!(text.contains(r#"radsam_embedding_cache_total{event="miss"} 2"#), "{text}");
        assert!(text.contains(r#"radsam_embedding_cache_bytes_total{direction="written"} 4096"#), "{text}");
        assert!(text.contains("radsam_embedding_cache_stored_bytes 4096"), "{text}");
        stats.hits.store(9, Ordering::Relaxed);
        assert!(m.render().contains(r#"radsam_embedding_cache_total{event="hit"} 9"#), "follows the cache");
    }

    #[test]
    fn a_stopped_model_thread_makes_the_worker_unhealthy() {
        let health = Health::default();
        health.broker_connected.store(true, Ordering::Relaxed);
        health.database_ok.store(true, Ordering::Relaxed);
        assert_eq!(health.report().0, StatusCode::SERVICE_UNAVAILABLE, "no model yet");
        health.set_model(Some("radsam@sha256:0".into()));
        assert_eq!(health.report().0, StatusCode::OK);
        health.set_model_stopped("the model panicked: resize to 0");
        let (status, body) = health.report();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a loaded model whose thread died is no model");
        assert_eq!(body["model_stopped"], "the model panicked: resize to 0");
    }
}

/// Log lines on stderr: text (coloured on a terminal) or JSON; RUST_LOG filters.
pub fn init_logging(format: &str) {
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
pub fn log_panics_as_lines() {
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let message = radsam::job::text::printable(&radsam::model::panic_message(info.payload()), 4000);
        tracing::error!(thread = std::thread::current().name().unwrap_or("-"), location, "panic: {message}");
    }));
}
