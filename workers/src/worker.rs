//! The worker: what it holds while it runs, how it starts (schema, store, model, then the consume
//! loop), and the helpers every stage shares: retrying a transient step, publishing a result
//! event, and swapping the model between jobs.

use crate::cache_tier::S3Tier;
use crate::config::Config;
use crate::consume::{requested, Stopped};
use crate::event::ResultEvent;
use crate::models::{self, LoadedModel};
use crate::settle::Failure;
use crate::telemetry::{self, Health, Metrics};
use anyhow::{Context, Result};
use backon::{ExponentialBuilder, Retryable};
use lapin::Channel;
use radsam::db::Db;
use radsam::error::Coded;
use radsam::queue::Topology;
use radsam::segment::EmbeddingCache;
use radsam::storage::{Storage, StorageConfig};
use serde_json::Value;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Everything a worker holds while it runs.
pub struct Worker {
    pub(crate) config: Config,
    /// host:pid, the consumer tag and the jobs.worker column.
    pub(crate) name: String,
    pub(crate) db: Db,
    pub(crate) storage: Storage,
    pub(crate) topology: Topology,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) health: Arc<Health>,
    /// Embeddings by content on local disk, shared by every job of this worker.
    pub(crate) embedding_cache: Option<Arc<EmbeddingCache>>,
    /// The last decoded volume (a correction right after its job skips the decoding); None: off.
    pub(crate) volume_memo: Option<Arc<radsam::job::VolumeMemo>>,
    model: tokio::sync::Mutex<Arc<LoadedModel>>,
}

/// Starts a worker and runs it until `shutdown` turns true or its model thread stops; the
/// returned reason tells the binary how to exit.
pub async fn run(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<Stopped> {
    // A job whose worker keeps dying must meet JOB_POISON before the broker dead-letters it unrecorded.
    let limit = config.endpoints.delivery_limit;
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

    // A cache folder this worker cannot use costs time, never jobs: it runs uncached and says so.
    let embedding_cache = match EmbeddingCache::configure(config.embedding_cache.as_deref(), config.embedding_cache_mb)
    {
        Ok(Some(mut c)) => {
            info!(dir = %c.dir().display(), max_mb = c.max_bytes() >> 20, "embedding cache");
            let mut description = c.dir().display().to_string();
            if let Some(base) = &config.embedding_cache_s3 {
                let storage = Arc::new(Storage::new(&StorageConfig::from_env()));
                // A store that is down now is the tier's to survive (it pauses), not the start's.
                if let Err(e) = storage.ensure_bucket(base).await {
                    warn!("cannot make sure {base} exists yet: [{}] {e}", e.code());
                }
                c = c.with_remote(Box::new(S3Tier::new(storage, base, tokio::runtime::Handle::current())));
                info!(tier = %base, "embedding cache: second tier in the S3 store");
                description = format!("{description} + {base}");
            }
            *health.embedding_cache.lock().unwrap() = description;
            metrics.watch_embedding_cache(c.stats());
            Some(Arc::new(c))
        }
        Ok(None) => {
            info!("embedding cache off: every slice is encoded afresh");
            *health.embedding_cache.lock().unwrap() = "off".into();
            None
        }
        Err(e) => {
            warn!("embedding cache off: {e}; every slice is encoded afresh");
            *health.embedding_cache.lock().unwrap() = format!("off: {e}");
            None
        }
    };

    let db = Db::connect_lazy(&config.endpoints.database_url).map_err(radsam::error::with_code)?;
    // The schema must exist before the first job; wait for PostgreSQL rather than crash.
    let mut wait = Duration::from_millis(500);
    loop {
        match db.migrate().await {
            Ok(()) => break,
            Err(e) if e.is_transient() => {
                warn!("PostgreSQL not ready ({e}); retrying in {:.1} s", wait.as_secs_f64());
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = requested(&mut shutdown) => return Ok(Stopped::Shutdown),
                }
                wait = (wait * 2).min(Duration::from_secs(10));
            }
            Err(e) => return Err(radsam::error::with_code(e)),
        }
    }
    health.database_ok.store(true, Ordering::Relaxed);

    let storage = Storage::new(&StorageConfig::from_env());
    // The results bucket must exist before the first upload; a store that is down now is retried per job.
    if let Err(e) = storage.ensure_bucket(&config.results_uri).await {
        warn!("cannot make sure {} exists yet: [{}] {e}", config.results_uri, e.code());
    }
    let (model_name, weights, device, threads) =
        (config.model.clone(), config.weights.clone(), config.device.clone(), config.threads);
    let model = tokio::task::spawn_blocking(move || models::load(&model_name, weights, &device, threads)).await??;
    db.register_model_version(&model.version, &model.name, Some(&model.sha256))
        .await
        .map_err(radsam::error::with_code)?;
    info!(model = %model.version, device = %config.device, "model loaded");
    health.set_model(Some(model.version.clone()));

    let topology = Topology::new(&config.endpoints.queue_prefix, config.endpoints.delivery_limit);
    let config_volume_memo_mb = config.volume_memo_mb;
    let worker = Worker {
        config,
        name,
        db,
        storage,
        topology,
        metrics,
        health,
        embedding_cache,
        volume_memo: (config_volume_memo_mb > 0)
            .then(|| Arc::new(radsam::job::VolumeMemo::new(config_volume_memo_mb.saturating_mul(1 << 20)))),
        model: tokio::sync::Mutex::new(Arc::new(model)),
    };
    // A version promoted by the trainer service replaces the configured model before the first job.
    match worker.model_for(None).await {
        Ok(m) => info!(model = %m.version, "serving"),
        Err(e) => warn!("cannot load the promoted version now ({e:?}); jobs will try again"),
    }
    Ok(worker.consume(shutdown).await)
}

impl Worker {
    /// Runs `step` until it succeeds, fails permanently, or has failed transiently `retries` times.
    pub(crate) async fn retry<T, F, Fut>(&self, what: &str, step: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let schedule = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.config.retries);
        step.retry(schedule)
            .when(Failure::is_transient)
            .notify(|f: &Failure, wait: Duration| {
                warn!(code = f.code(), "{what} failed ({}); retrying in {:.1} s", f.message(), wait.as_secs_f64())
            })
            .await
    }

    /// Publishes a result event (routing key = its status).
    pub(crate) async fn publish_event(&self, events: &Channel, event: &ResultEvent) -> Result<(), Failure> {
        let job_id = event.job_id.as_deref().unwrap_or("");
        self.publish_stored_event(events, event.status, job_id, event.correlation_id.as_deref(), &event.to_json()).await
    }

    /// Publishes an event as PostgreSQL keeps it, retried like any transient step while its
    /// channel is open. A channel closed under it (the broker restarted, the connection dropped)
    /// never reopens: that ends the retries at once, since the delivery in hand cannot be settled
    /// on it either; its redelivery finds the job final and republishes the stored event.
    /// (Retrying on the dead channel held a worker ~45 s after each broker restart.)
    pub(crate) async fn publish_stored_event(
        &self,
        events: &Channel,
        status: &str,
        job_id: &str,
        correlation_id: Option<&str>,
        event: &Value,
    ) -> Result<(), Failure> {
        self.retry("publishing the result event", || async {
            if !events.status().connected() {
                return Err(Failure::permanent("BROKER_LOST", "the event channel is closed (broker connection lost)"));
            }
            Ok::<_, Failure>(
                radsam::queue::publish_result(events, &self.topology, status, job_id, correlation_id, event).await?,
            )
        })
        .await
    }

    /// The model for this job, loaded between jobs when it differs from the one in hand: the
    /// job's `model_version` (a model name, or a registry version), else the promoted registry
    /// version, else the worker's configured model.
    pub(crate) async fn model_for(&self, requested: Option<&str>) -> Result<Arc<LoadedModel>, Failure> {
        let wanted = match requested {
            Some(name) if models::is_known(name) => Err(name.to_string()),
            Some(version) => {
                let found = self
                    .retry("reading the model registry", || async {
                        Ok::<_, Failure>(self.db.model_version(version).await?)
                    })
                    .await?
                    .filter(|v| v.weights_uri.is_some());
                Ok(found.ok_or_else(|| Failure::permanent("JOB_UNKNOWN_MODEL", format!("model_version {version:?} is neither a model name ({}) nor a registered version with weights", radsam::model::MODEL_NAMES.join(", "))))?)
            }
            None => match self
                .retry("reading the promoted version", || async { Ok::<_, Failure>(self.db.promoted_version().await?) })
                .await?
            {
                Some(v) => Ok(v),
                None => Err(self.config.model.clone()),
            },
        };
        let source = match &wanted {
            Ok(v) => v.version.clone(),
            Err(name) => name.clone(),
        };
        let mut slot = self.model.lock().await;
        if slot.source == source {
            return Ok(slot.clone());
        }
        info!(model = %source, "loading the model for this job (between jobs)");
        let (device, threads) = (self.config.device.clone(), self.config.threads);
        let loaded = match wanted {
            Err(name) => {
                let weights = (name == self.config.model).then(|| self.config.weights.clone()).flatten();
                tokio::task::spawn_blocking(move || models::load(&name, weights, &device, threads))
                    .await
                    .map_err(|e| Failure::transient("MODEL_LOAD", e))?
                    .map_err(|e| Failure::permanent("MODEL_LOAD", format!("{e:#}")))?
            }
            Ok(v) => {
                let uri = v.weights_uri.clone().expect("registry versions with weights only");
                // A folder of this process's own: workers sharing a host never read each other's half-written copy.
                let dir = radsam::scratch::scratch_dir(radsam::scratch::WEIGHTS_SCRATCH_PREFIX)
                    .map_err(|e| Failure::transient("SCRATCH_UNWRITABLE", e))?;
                let path = self
                    .retry("fetching the model's weights", || async {
                        Ok::<_, Failure>(self.storage.fetch(&uri, dir.path()).await?)
                    })
                    .await?;
                let model = v.model.clone();
                let mut loaded =
                    tokio::task::spawn_blocking(move || models::load(&model, Some(path), &device, threads))
                        .await
                        .map_err(|e| Failure::transient("MODEL_LOAD", e))?
                        .map_err(|e| Failure::permanent("MODEL_LOAD", format!("{e:#}")))?;
                if loaded.version != v.version {
                    return Err(Failure::permanent(
                        "MODEL_LOAD",
                        format!("the weights at {uri} hash to {}, not to the registered {}", loaded.version, v.version),
                    ));
                }
                loaded.source = v.version.clone();
                loaded
            }
        };
        self.retry("registering the model version", || async {
            Ok::<_, Failure>(self.db.register_model_version(&loaded.version, &loaded.name, Some(&loaded.sha256)).await?)
        })
        .await?;
        self.health.set_model(Some(loaded.version.clone()));
        *slot = Arc::new(loaded);
        Ok(slot.clone())
    }
}
