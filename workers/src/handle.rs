//! One delivery, start to finish: validate -> claim the job row -> fetch the volume -> segment on
//! the model thread -> upload masks to deterministic keys -> commit results in one transaction ->
//! publish the result event -> ack. Transient failures (store, database, broker) are retried with
//! backoff and then the job goes back to the queue (on the last delivery the queue allows, it is
//! failed with JOB_RETRIES_EXHAUSTED instead); permanent ones (bad job, bad volume, bad prompt) are
//! recorded with their code and dead-lettered. Nothing here panics on bad input; a panic on the
//! model thread fails the job that caused it (MODEL_PANIC) and then stops this worker, whose
//! model can no longer be trusted (service.rs exits so the supervisor starts a fresh one).
//! Every message ends in `jobs` (a valid job, owned by its first claim) or `rejected_messages`.

use crate::models::{self, LoadedModel};
use crate::Worker;
use backon::{ExponentialBuilder, Retryable};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::Channel;
use radsam::db::{Claim, StageTimes, TargetRow};
use radsam::error::Coded;
use radsam::job::text::printable;
use radsam::job::{Job, JobResult, ProcessOptions};
use radsam::model::ModelThreadStopped;
use radsam::storage::join_uri;
use serde_json::{json, Value};
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn, Instrument};

/// How a delivery ended (the label of radsam_jobs_total).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    Succeeded,
    Failed,
    Rejected,
    Duplicate,
    Requeued,
}

impl Outcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Duplicate => "duplicate",
            Self::Requeued => "requeued",
        }
    }
}

/// Why a step failed, and whether waiting could help.
#[derive(Debug)]
pub(crate) struct Failure {
    code: String,
    message: String,
    transient: bool,
}

impl Failure {
    fn permanent(code: &str, message: impl ToString) -> Self {
        Self { code: code.into(), message: message.to_string(), transient: false }
    }
    fn transient(code: &str, message: impl ToString) -> Self {
        Self { code: code.into(), message: message.to_string(), transient: true }
    }
}

impl From<radsam::storage::StorageError> for Failure {
    fn from(e: radsam::storage::StorageError) -> Self {
        Self { code: e.code().into(), message: e.to_string(), transient: e.is_transient() }
    }
}

impl From<radsam::db::DbError> for Failure {
    fn from(e: radsam::db::DbError) -> Self {
        Self { code: e.code().into(), message: e.to_string(), transient: e.is_transient() }
    }
}

impl From<radsam::queue::PublishError> for Failure {
    fn from(e: radsam::queue::PublishError) -> Self {
        Self::transient("BROKER_UNAVAILABLE", e)
    }
}

impl Worker {
    /// Runs `step` until it succeeds, fails permanently, or has failed transiently `retries` times.
    async fn retry<T, F, Fut>(&self, what: &str, step: F) -> Result<T, Failure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let schedule = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(Duration::from_secs(10))
            .with_max_times(self.config.retries);
        step.retry(schedule).when(|f: &Failure| f.transient).notify(|f: &Failure, wait: Duration| warn!(code = %f.code, "{what} failed ({}); retrying in {:.1} s", f.message, wait.as_secs_f64())).await
    }

    /// Publishes a result event (routing key = outcome), retried like any transient step while
    /// its channel is open. A channel closed under it (the broker restarted, the connection
    /// dropped) never reopens: that ends the retries at once, since the delivery in hand cannot
    /// be settled on it either; its redelivery finds the job final and republishes the stored
    /// event. (Retrying on the dead channel held a worker ~45 s after each broker restart.)
    async fn publish_event(
        &self,
        events: &Channel,
        outcome: &str,
        job_id: &str,
        correlation_id: Option<&str>,
        event: &Value,
    ) -> Result<(), Failure> {
        self.retry("publishing the result event", || async {
            if !events.status().connected() {
                return Err(Failure::permanent("BROKER_LOST", "the event channel is closed (broker connection lost)"));
            }
            Ok::<_, Failure>(
                radsam::queue::publish_result(events, &self.topology, outcome, job_id, correlation_id, event).await?,
            )
        })
        .await
    }

    /// Handles one delivery and settles it (ack, reject to the dead-letter queue, or requeue).
    pub async fn handle(&self, delivery: &Delivery, events: &Channel) -> Outcome {
        let started = Instant::now();
        let lag = radsam::queue::queue_lag_seconds(&delivery.properties);
        if let Some(l) = lag {
            self.metrics.queue_lag_seconds.observe(l);
        }
        // The size first: an oversized body is neither decoded nor parsed, only its head kept.
        let limit = self.config.job_limits.max_message_bytes;
        if delivery.data.len() > limit {
            let head = String::from_utf8_lossy(&delivery.data[..limit.min(64 << 10)]).into_owned();
            let e = radsam::job::JobError::MessageTooLarge { bytes: delivery.data.len(), max: limit };
            return self.reject_invalid(delivery, events, &head, e.code(), &e.to_string()).await;
        }
        let body = String::from_utf8_lossy(&delivery.data).into_owned();
        let job = match Job::parse(&body, &self.config.job_limits) {
            Ok(job) => job,
            Err(e) => return self.reject_invalid(delivery, events, &body, e.code(), &e.to_string()).await,
        };
        // Valid ids hold no control characters; escaping still costs nothing and keeps it so.
        let span = tracing::info_span!("job", job_id = %printable(&job.job_id, 128), correlation_id = %printable(job.correlation_id.as_deref().unwrap_or("-"), 255));
        let outcome = self.run_job(delivery, events, &job, &body, lag, started).instrument(span).await;
        self.metrics.job_seconds.observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// A message that is not a valid job: recorded in rejected_messages with the ids it seems to
    /// carry (never over the row of a job with that id: that belongs to the job's valid claim), a
    /// failure event published, and dead-lettered.
    async fn reject_invalid(
        &self,
        delivery: &Delivery,
        events: &Channel,
        body: &str,
        code: &str,
        message: &str,
    ) -> Outcome {
        let value: Option<Value> = serde_json::from_str(body).ok();
        let field = |k: &str| {
            value.as_ref().and_then(|v| v.get(k)).and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from)
        };
        let (job_id, correlation_id) = (field("job_id"), field("correlation_id"));
        let message_id = delivery.properties.message_id().as_ref().map(|m| m.to_string());
        // The error may quote the body (serde names an unknown field): bounded and escaped, it
        // is the same one line in the log, the row and the event.
        let message = printable(message, 4096);
        warn!(job_id = %printable(job_id.as_deref().unwrap_or("-"), 128), code, "rejected message: {message}");
        let recorded = self
            .retry("recording the rejection", || async {
                Ok::<_, Failure>(
                    self.db
                        .reject(
                            job_id.as_deref(),
                            correlation_id.as_deref(),
                            message_id.as_deref(),
                            body,
                            code,
                            &message,
                        )
                        .await?,
                )
            })
            .await;
        match recorded {
            Ok(()) => {}
            Err(f) if f.transient => {
                // Without a record the message must not vanish: back to the queue until the database is back.
                warn!(code = %f.code, "cannot record the rejection ({}); requeueing", printable(&f.message, 4096));
                return self.requeue(delivery).await;
            }
            // Cannot happen with escaped, bounded text; if it does, the dead-letter queue keeps it.
            Err(f) => {
                warn!(code = %f.code, "cannot record the rejection ({}); dead-lettering it unrecorded", printable(&f.message, 4096))
            }
        }
        // Ids too long for anyone to match on are left out of the event.
        let short = |s: &Option<String>| s.clone().filter(|s| s.len() <= 255);
        let event = json!({"job_id": short(&job_id), "correlation_id": short(&correlation_id), "status": "failed", "error": {"code": code, "message": message}});
        let _ = self
            .publish_event(
                events,
                "failed",
                short(&job_id).as_deref().unwrap_or(""),
                short(&correlation_id).as_deref(),
                &event,
            )
            .await;
        let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
        Outcome::Rejected
    }

    async fn requeue(&self, delivery: &Delivery) -> Outcome {
        // A short pause so a job that meets a dead store does not spin through the queue.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = delivery.nack(BasicNackOptions { requeue: true, multiple: false }).await;
        Outcome::Requeued
    }

    async fn run_job(
        &self,
        delivery: &Delivery,
        events: &Channel,
        job: &Job,
        body: &str,
        lag: Option<f64>,
        started: Instant,
    ) -> Outcome {
        let payload: Value = serde_json::from_str(body).expect("validated JSON");
        let claim = self
            .retry("claiming the job", || async {
                Ok::<_, Failure>(self.db.claim(&job.job_id, &payload, &self.name, lag).await?)
            })
            .await;
        let (attempt, crashed) = match claim {
            Ok(Claim::Run { attempt, crashed }) => (attempt, crashed),
            Ok(Claim::Finished { status, event }) => {
                info!("already {status}: acknowledging the redelivered message");
                // The earlier run may have died between commit and publishing its event.
                if let Some(event) = event {
                    let _ =
                        self.publish_event(events, &status, &job.job_id, job.correlation_id.as_deref(), &event).await;
                }
                let _ = delivery.ack(BasicAckOptions::default()).await;
                return Outcome::Duplicate;
            }
            Err(f) if f.transient => {
                warn!(code = %f.code, "cannot claim the job: {}", f.message);
                return self.requeue(delivery).await;
            }
            // PostgreSQL refuses this job's row for good (a value it cannot store): no row can say
            // so, the rejected messages can.
            Err(f) => {
                return self
                    .reject_invalid(delivery, events, body, &f.code, &format!("cannot record the job: {}", f.message))
                    .await
            }
        };
        // Only attempts that ended with no outcome (the worker died) count: a job requeued because
        // the store was down is not poison.
        if crashed >= self.config.max_attempts {
            let f = Failure::permanent(
                "JOB_POISON",
                format!(
                    "{crashed} earlier attempts of this job stopped their worker (limit {})",
                    self.config.max_attempts
                ),
            );
            return self.fail(delivery, events, job, attempt, f).await;
        }
        info!(attempt, "processing");
        match self.process(job, attempt, started).await {
            Ok((event, times)) => {
                for (stage, secs) in [
                    ("fetch", times.fetch),
                    ("decode", times.decode),
                    ("encode", times.encode),
                    ("propagate", times.propagate),
                    ("upload", times.upload),
                    ("commit", times.commit),
                ] {
                    self.metrics.stage_seconds.with_label_values(&[stage]).observe(secs);
                }
                let published =
                    self.publish_event(events, "succeeded", &job.job_id, job.correlation_id.as_deref(), &event).await;
                if let Err(f) = published {
                    // The result is committed; a redelivery acks it and republishes the stored event.
                    warn!(code = %f.code, "result committed but its event not published: {}", f.message);
                }
                let _ = delivery.ack(BasicAckOptions::default()).await;
                info!(seconds = format!("{:.1}", times.total), "succeeded");
                Outcome::Succeeded
            }
            Err(f) if f.code == "LOST_CLAIM" => {
                info!("another delivery of this job took it over; acknowledging this one");
                let _ = delivery.ack(BasicAckOptions::default()).await;
                Outcome::Duplicate
            }
            Err(f)
                if f.transient
                    && radsam::queue::is_last_delivery(&delivery.properties, self.topology.delivery_limit) =>
            {
                // Requeued now, the broker would dead-letter the job with its row still queued:
                // record the failure instead, so the row, the event and the dead-letter queue agree.
                let deliveries = radsam::queue::delivery_count(&delivery.properties) + 1;
                let f = Failure::permanent("JOB_RETRIES_EXHAUSTED", format!("all {deliveries} deliveries of this job met transient failures (the queue's delivery limit is {}); the last: [{}] {}", self.topology.delivery_limit, f.code, f.message));
                self.fail(delivery, events, job, attempt, f).await
            }
            Err(f) if f.transient => {
                warn!(code = %f.code, "transient failure after retries, returning the job to the queue: {}", f.message);
                let _ = self.db.release(&job.job_id, attempt, &f.code, &f.message).await;
                self.requeue(delivery).await
            }
            Err(f) => self.fail(delivery, events, job, attempt, f).await,
        }
    }

    /// A permanent failure: recorded, announced, dead-lettered.
    async fn fail(&self, delivery: &Delivery, events: &Channel, job: &Job, attempt: i32, f: Failure) -> Outcome {
        warn!(code = %f.code, "failed: {}", f.message);
        let event = json!({"job_id": job.job_id, "correlation_id": job.correlation_id, "status": "failed", "error": {"code": f.code, "message": f.message}});
        let recorded = self
            .retry("recording the failure", || async {
                Ok::<_, Failure>(self.db.fail(&job.job_id, attempt, &f.code, &f.message, &event).await?)
            })
            .await;
        match recorded {
            Err(e) if e.transient => return self.requeue(delivery).await,
            Err(e) => {
                // The row refuses this failure for good: the record goes with the rejected messages.
                warn!(code = %e.code, "cannot record the failure: {}", e.message);
                let body = serde_json::to_string(job).unwrap_or_default();
                if let Err(e) = self
                    .db
                    .reject(Some(&job.job_id), job.correlation_id.as_deref(), None, &body, &f.code, &f.message)
                    .await
                {
                    warn!(code = e.code(), "nor as a rejected message: {e}");
                }
            }
            Ok(true) => {
                // Masks uploaded before a failure that came after them (the commit) would lie in the
                // store with no row naming them. This attempt is the job's last word (no other
                // claimant can commit now), so its folder can go.
                let base = join_uri(&self.config.results_uri, &job.job_id);
                match self.storage.delete_prefix(&base).await {
                    Ok(0) => {}
                    Ok(n) => info!("removed {n} objects of the failed job under {base}"),
                    Err(e) => warn!(code = e.code(), "cannot remove the failed job's objects under {base}: {e}"),
                }
            }
            Ok(false) => {}
        }
        let _ = self.publish_event(events, "failed", &job.job_id, job.correlation_id.as_deref(), &event).await;
        let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
        Outcome::Failed
    }

    /// The work: fetch, segment, upload, commit. Returns the result event and the stage times.
    async fn process(&self, job: &Job, attempt: i32, started: Instant) -> Result<(Value, StageTimes), Failure> {
        let scratch = radsam::scratch::scratch_dir(radsam::scratch::JOB_SCRATCH_PREFIX)
            .map_err(|e| Failure::transient("SCRATCH_UNWRITABLE", e))?;
        // The job's time budget (JOB_TIMEOUT): the fetch is cut at its end, the model work checks
        // it between batches, targets and clicks. Uploading and committing finished masks are not
        // cut: they are bounded by the retries.
        let budget =
            (self.config.job_timeout_seconds > 0).then(|| Duration::from_secs(self.config.job_timeout_seconds));
        let deadline = budget.map(|b| started + b);
        let t = Instant::now();
        let fetching = self.retry("fetching the inputs", || localize(self, job, scratch.path()));
        let local_job = match deadline {
            Some(d) => tokio::time::timeout_at(d.into(), fetching).await.map_err(|_| {
                Failure::permanent(
                    "JOB_TIMEOUT",
                    format!(
                        "the job's time budget ({} s, RADSAM_JOB_TIMEOUT_SECONDS) ran out while fetching its inputs",
                        self.config.job_timeout_seconds
                    ),
                )
            })??,
            None => fetching.await?,
        };
        let fetch = t.elapsed().as_secs_f64();

        let model = self.model_for(job.model_version.as_deref()).await?;
        let out = scratch.path().join("out");
        std::fs::create_dir_all(&out).map_err(|e| Failure::transient("SCRATCH_UNWRITABLE", e))?;
        let opts = ProcessOptions {
            overlays: self.config.overlays,
            job_limits: self.config.job_limits,
            guards: self.config.guards.then(radsam::segment::GuardSettings::default),
            deadline,
            ..Default::default()
        };
        let (thread, version, out_dir) = (model.thread.clone(), model.version.clone(), out.clone());
        let inject_panic = self.config.fault_panic_job.as_deref() == Some(job.job_id.as_str());
        let result: JobResult = tokio::task::spawn_blocking(move || {
            thread.run(move |sam| {
                if inject_panic {
                    panic!("RADSAM_FAULT_PANIC_JOB: a panic injected on the model thread");
                }
                radsam::job::process(&local_job, sam, &version, &out_dir, &opts, &mut |_, _, _| {})
            })
        })
        .await
        .map_err(|e| Failure::transient("MODEL_THREAD", e))?
        .map_err(|e| self.model_stopped(e))?
        .map_err(|e| match e.code() {
            "OUTPUT_UNWRITABLE" => Failure::transient(e.code(), &e),
            "JOB_TIMEOUT" => Failure::permanent(
                "JOB_TIMEOUT",
                format!("{e} (the budget is {} s, RADSAM_JOB_TIMEOUT_SECONDS)", self.config.job_timeout_seconds),
            ),
            code => Failure::permanent(code, &e),
        })?;
        // result.json names the job's own URIs, not the scratch copies.
        restore_uris(&out.join("result.json"), job).map_err(|e| Failure::transient("SCRATCH_UNWRITABLE", e))?;

        let t = Instant::now();
        let base = join_uri(&self.config.results_uri, &job.job_id);
        self.retry("uploading the masks", || async {
            self.storage.ensure_bucket(&base).await?;
            Ok::<_, Failure>(self.storage.put_dir(&base, &out).await?)
        })
        .await?;
        let upload = t.elapsed().as_secs_f64() + result.write_seconds;

        let rows: Vec<TargetRow> = result
            .targets
            .iter()
            .map(|t| TargetRow {
                label: t.label.clone(),
                mask_uri: join_uri(&base, &t.mask_file),
                labels_uri: join_uri(&base, "labels.nii.gz"),
                seg_uri: result.outputs.iter().any(|o| o == "seg.dcm").then(|| join_uri(&base, "seg.dcm")),
                voxels: t.voxels as i64,
                volume_ml: t.volume_ml,
                reference_ml: t.reference_ml,
                dice: t.dice,
                carry: format!("{:?}", t.carry).to_lowercase(),
                initial_slice: t.initial_slice as i32,
                first_slice: t.boundaries.0 as i32,
                last_slice: t.boundaries.1 as i32,
                clicks_applied: t.clicks_applied as i32,
            })
            .collect();
        let mut times = StageTimes {
            queue_lag: None,
            fetch,
            decode: result.read_seconds,
            encode: result.encode_seconds,
            propagate: (result.total_seconds - result.read_seconds - result.encode_seconds - result.write_seconds)
                .max(0.0),
            upload,
            commit: 0.0,
            total: started.elapsed().as_secs_f64(),
        };
        let event = json!({
            "job_id": job.job_id, "correlation_id": job.correlation_id, "status": "succeeded",
            "model_version": model.version, "results_uri": base,
            "targets": rows.iter().map(|r| json!({"label": r.label, "mask_uri": r.mask_uri, "voxels": r.voxels, "volume_ml": r.volume_ml, "dice": r.dice})).collect::<Vec<_>>(),
        });
        let t = Instant::now();
        let committed = self
            .retry("committing the results", || async {
                Ok::<_, Failure>(self.db.commit(&job.job_id, attempt, &model.version, &rows, &times, &event).await?)
            })
            .await?;
        if !committed {
            return Err(Failure::permanent("LOST_CLAIM", "another delivery of this job took it over"));
        }
        times.commit = t.elapsed().as_secs_f64();
        times.total = started.elapsed().as_secs_f64();
        // The commit cannot time itself: its duration and the final total follow, best effort.
        if let Err(e) = self.db.record_commit_time(&job.job_id, times.commit, times.total).await {
            warn!("recording the commit time: {e}");
        }
        Ok((event, times))
    }

    /// The model thread has stopped: this worker is unhealthy from now on and stops after this
    /// delivery (service.rs). The job whose task panicked is failed for good, since it would
    /// stop every worker it reached; a job that only met an already stopped thread goes back to
    /// the queue for a healthy worker.
    fn model_stopped(&self, e: ModelThreadStopped) -> Failure {
        self.health.set_model_stopped(&printable(&e.to_string(), 2000));
        let code = e.code();
        match e {
            ModelThreadStopped::Panicked(message) => Failure::permanent(
                code,
                format!(
                    "the model panicked on this job (the worker stops and restarts): {}",
                    printable(&message, 2000)
                ),
            ),
            ModelThreadStopped::Stopped => {
                Failure::transient(code, "the model thread had stopped before this job (the worker restarts)")
            }
        }
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

/// The job with its volume and reference masks made local (downloaded from S3 into `scratch`, or
/// file:// paths checked against the allowed roots).
async fn localize(worker: &Worker, job: &Job, scratch: &Path) -> Result<Job, Failure> {
    let mut local = job.clone();
    let volume = worker.storage.fetch(&job.volume_uri, &scratch.join("volume")).await?;
    local.volume_uri = volume.display().to_string();
    // Targets usually share one reference label map: fetch each URI once.
    let mut fetched: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    for (i, target) in local.targets.iter_mut().enumerate() {
        let Some(uri) = target.reference_mask_uri.clone() else { continue };
        if !fetched.contains_key(&uri) {
            let path = worker.storage.fetch(&uri, &scratch.join(format!("reference-{i}"))).await?;
            fetched.insert(uri.clone(), path.display().to_string());
        }
        target.reference_mask_uri = Some(fetched[&uri].clone());
    }
    Ok(local)
}

fn restore_uris(result_json: &Path, job: &Job) -> std::io::Result<()> {
    let mut value: Value = serde_json::from_slice(&std::fs::read(result_json)?)?;
    value["volume_uri"] = json!(job.volume_uri);
    std::fs::write(result_json, serde_json::to_vec_pretty(&value)?)
}
