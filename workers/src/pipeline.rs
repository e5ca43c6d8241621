//! One delivery, start to finish: parse (once, into `Job`) -> claim the job row -> fetch the
//! inputs -> segment on the model thread -> upload masks to deterministic keys -> store the SEG
//! in the PACS when asked (its UIDs derived from the job: a retry stores the same instance) ->
//! commit results in one transaction -> settle (settle.rs). Transient failures are retried with backoff here;
//! what then becomes of the delivery is settle.rs's decision. Nothing here panics on bad input;
//! a panic on the model thread fails the job that caused it (MODEL_PANIC) and marks this worker
//! unhealthy, so the consume loop stops it. Every message ends in `jobs` (a valid job, owned by
//! its first claim) or `rejected_messages`.

use crate::event::{ProgressEvent, ProgressThrottle, ResultEvent};
use crate::models::LoadedModel;
use crate::settle::{model_stopped_failure, poison, settlement, Deliveries, Failure, Outcome, Settlement};
use crate::worker::Worker;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::Channel;
use radsam::db::{Claim, StageTimes, TargetRow};
use radsam::dicomweb::StoreReceipt;
use radsam::error::Coded;
use radsam::job::text::printable;
use radsam::job::{revision, Job, JobResult, ProcessError, ProcessOptions, TargetResult};
use radsam::storage::join_uri;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn, Instrument};

/// Why a delivery goes no further than its parent job.
enum Refusal {
    /// The database could not say (down): the delivery goes back to the queue.
    Retry(Failure),
    /// Not a job that can run (its parent missing, failed, unfinished): recorded, dead-lettered.
    Reject { body: String, code: String, message: String },
}

/// The parent of a revision, as the revision may reuse it: its id and its (complete) job.
struct Parent {
    id: String,
    job: Job,
}

/// What a revision takes from its parent: label -> the parent's mask file (an unchanged target),
/// and label -> the parent's saved editing session.
#[derive(Default)]
struct FromParent {
    masks: std::collections::HashMap<String, std::path::PathBuf>,
    sessions: std::collections::HashMap<String, std::path::PathBuf>,
}

/// Whether `child` is `parent` with clicks added after the parent's (as revision.rs merges a
/// correction): everything else equal.
fn only_clicks_added(parent: &radsam::job::Target, child: &radsam::job::Target) -> bool {
    let (mut p, mut c) = (parent.clone(), child.clone());
    let clicks_begin = c.correction_clicks.starts_with(&p.correction_clicks);
    p.correction_clicks.clear();
    c.correction_clicks.clear();
    clicks_begin && p == c
}

/// What a processed job produced: where its masks are, its rows, its event and its stage times.
struct JobOutputs {
    event: ResultEvent,
    times: StageTimes,
}

impl Worker {
    /// Handles one delivery and settles it (ack, reject to the dead-letter queue, or requeue).
    pub(crate) async fn handle(&self, delivery: &Delivery, events: &Channel) -> Outcome {
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
        // A correction that names its parent is completed from it first (revision.rs).
        let (body, parent) = match self.complete_revision(body).await {
            Ok(completed) => completed,
            Err(Refusal::Retry(f)) => {
                warn!(code = f.code(), "cannot read the parent job: {}", f.message());
                return self.requeue(delivery).await;
            }
            Err(Refusal::Reject { body, code, message }) => {
                return self.reject_invalid(delivery, events, &body, &code, &message).await
            }
        };
        let job = match Job::parse(&body, &self.config.job_limits) {
            Ok(job) => job,
            Err(e) => return self.reject_invalid(delivery, events, &body, e.code(), &e.to_string()).await,
        };
        // Valid ids hold no control characters; escaping still costs nothing and keeps it so.
        let span = tracing::info_span!("job", job_id = %printable(&job.job_id, 128), correlation_id = %printable(job.correlation_id.as_deref().unwrap_or("-"), 255));
        let outcome = self.run_job(delivery, events, &job, parent.as_ref(), &body, lag, started).instrument(span).await;
        self.metrics.job_seconds.observe(started.elapsed().as_secs_f64());
        outcome
    }

    /// `body` completed from the job it names as its parent (and that parent), or as it is when
    /// it names none (or is not even JSON: parsing says so next).
    async fn complete_revision(&self, body: String) -> Result<(String, Option<Parent>), Refusal> {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&body) else { return Ok((body, None)) };
        let Some(parent) = revision::parent_of(&message) else { return Ok((body, None)) };
        let stored = self
            .retry("reading the parent job", || async { Ok::<_, Failure>(self.db.job_payload(parent).await?) })
            .await;
        let mut parent_job = None;
        let completed = match stored {
            Ok(Some((status, payload))) => {
                // Stored complete and valid when it ran: kept to see what the revision leaves as it was.
                parent_job = serde_json::from_value::<Job>(payload.clone()).ok();
                revision::complete(parent, &status, &payload, &message)
            }
            Ok(None) => Err(revision::ParentError::NotFound(parent.to_string())),
            Err(f) if f.is_transient() => return Err(Refusal::Retry(f)),
            Err(f) => {
                return Err(Refusal::Reject { code: f.code().to_string(), message: f.message().to_string(), body })
            }
        };
        match completed {
            Ok(job) => Ok((job.to_string(), parent_job.map(|job| Parent { id: parent.to_string(), job }))),
            Err(e) => Err(Refusal::Reject { code: e.code().to_string(), message: e.to_string(), body }),
        }
    }

    async fn run_job(
        &self,
        delivery: &Delivery,
        events: &Channel,
        job: &Job,
        parent: Option<&Parent>,
        body: &str,
        lag: Option<f64>,
        started: Instant,
    ) -> Outcome {
        let claim = self
            .retry("claiming the job", || async { Ok::<_, Failure>(self.db.claim(job, body, &self.name, lag).await?) })
            .await;
        let (attempt, crashed) = match claim {
            Ok(Claim::Run { attempt, crashed }) => (attempt, crashed),
            Ok(Claim::Finished { status, event }) => {
                info!("already {status}: acknowledging the redelivered message");
                // The earlier run may have died between commit and publishing its event.
                if let Some(event) = event {
                    let _ = self
                        .publish_stored_event(events, &status, &job.job_id, job.correlation_id.as_deref(), &event)
                        .await;
                }
                let _ = delivery.ack(BasicAckOptions::default()).await;
                return Outcome::Duplicate;
            }
            Err(f) if f.is_transient() => {
                warn!(code = f.code(), "cannot claim the job: {}", f.message());
                return self.requeue(delivery).await;
            }
            // PostgreSQL refuses this job's row for good (a value it cannot store): no row can say
            // so, the rejected messages can.
            Err(f) => {
                let message = format!("cannot record the job: {}", f.message());
                return self.reject_invalid(delivery, events, body, f.code(), &message).await;
            }
        };
        if let Some(f) = poison(crashed, self.config.max_attempts) {
            return self.fail(delivery, events, job, attempt, f).await;
        }
        info!(attempt, "processing");
        let processed = self.process(job, parent, attempt, started, events).await;
        let deliveries = Deliveries {
            earlier: radsam::queue::delivery_count(&delivery.properties),
            limit: self.topology.delivery_limit,
        };
        let (outputs, processed) = match processed {
            Ok(outputs) => (Some(outputs), Ok(())),
            Err(f) => (None, Err(f)),
        };
        match settlement(processed, deliveries) {
            Settlement::Succeeded => {
                let JobOutputs { event, times } = outputs.expect("succeeded: outputs");
                for (stage, secs) in times.stages() {
                    self.metrics.stage_seconds.with_label_values(&[stage]).observe(secs);
                }
                if let Err(f) = self.publish_event(events, &event).await {
                    // The result is committed; a redelivery acks it and republishes the stored event.
                    warn!(code = f.code(), "result committed but its event not published: {}", f.message());
                }
                let _ = delivery.ack(BasicAckOptions::default()).await;
                info!(seconds = format!("{:.1}", times.total), "succeeded");
                Outcome::Succeeded
            }
            Settlement::Duplicate => {
                info!("another delivery of this job took it over; acknowledging this one");
                let _ = delivery.ack(BasicAckOptions::default()).await;
                Outcome::Duplicate
            }
            Settlement::Requeue(f) => {
                warn!(
                    code = f.code(),
                    "transient failure after retries, returning the job to the queue: {}",
                    f.message()
                );
                let _ = self.db.release(&job.job_id, attempt, f.code(), f.message()).await;
                self.requeue(delivery).await
            }
            Settlement::Fail(f) => self.fail(delivery, events, job, attempt, f).await,
        }
    }

    /// The work: fetch, segment, upload, commit.
    async fn process(
        &self,
        job: &Job,
        parent: Option<&Parent>,
        attempt: i32,
        started: Instant,
        events: &Channel,
    ) -> Result<JobOutputs, Failure> {
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
        let from_parent = match parent {
            Some(parent) => self.inherit_from_parent(job, parent, &model.version, scratch.path()).await,
            None => Default::default(),
        };
        let out = scratch.path().join("out");
        std::fs::create_dir_all(&out).map_err(|e| Failure::transient("SCRATCH_UNWRITABLE", e))?;
        let result = self.segment(local_job, &model, &out, deadline, &job.volume_uri, events, from_parent).await?;
        for t in &result.targets {
            match (t.clicks_resumed, &t.resume_refused) {
                (Some(n), _) => info!(label = %t.label, clicks_resumed = n, "resumed the parent's saved session"),
                (None, Some(why)) => {
                    warn!(label = %t.label, "the parent's saved session was not resumed ({why}); its clicks were replayed")
                }
                _ => {}
            }
        }

        let t = Instant::now();
        let base = join_uri(&self.config.results_uri, &job.job_id);
        self.retry("uploading the masks", || async {
            self.storage.ensure_bucket(&base).await?;
            Ok::<_, Failure>(self.storage.put_dir(&base, &out).await?)
        })
        .await?;
        let upload = t.elapsed().as_secs_f64() + result.write_seconds;
        // Before the commit: a SEG that reached the PACS and a job that then failed to commit is
        // stored again (the same instance) by the redelivery, which then commits.
        let t = Instant::now();
        let receipt = self.store_seg(job, &result, &out).await?;
        let upload = upload + t.elapsed().as_secs_f64();

        let seg_uri = result.seg_file.as_ref().map(|f| join_uri(&base, f));
        let rows: Vec<TargetRow> =
            result.targets.iter().map(|t| target_row(&base, t, seg_uri.as_deref(), receipt.as_ref())).collect();
        let mut times = stage_times(&result, fetch, upload);
        times.total = started.elapsed().as_secs_f64();
        let event = ResultEvent::succeeded(&job.job_id, job.correlation_id.as_deref(), &model.version, &base, &rows);
        let event_json = event.to_json();
        let t = Instant::now();
        let committed = self
            .retry("committing the results", || async {
                Ok::<_, Failure>(
                    self.db.commit(&job.job_id, attempt, &model.version, &rows, &times, &event_json).await?,
                )
            })
            .await?;
        if !committed {
            return Err(Failure::LostClaim);
        }
        times.commit = t.elapsed().as_secs_f64();
        times.total = started.elapsed().as_secs_f64();
        // The commit cannot time itself: its duration and the final total follow, best effort.
        if let Err(e) = self.db.record_commit_time(&job.job_id, times.commit, times.total).await {
            warn!("recording the commit time: {e}");
        }
        Ok(JobOutputs { event, times })
    }

    /// Runs the (localized) job on the model thread, its outputs into `out`; result.json names
    /// `volume_uri`, the job's own URI, not the scratch copy. Progress goes to the results
    /// exchange (routing key `progress`) as it happens, best effort.
    async fn segment(
        &self,
        local_job: Job,
        model: &Arc<LoadedModel>,
        out: &Path,
        deadline: Option<Instant>,
        volume_uri: &str,
        events: &Channel,
        from_parent: FromParent,
    ) -> Result<JobResult, Failure> {
        let opts = ProcessOptions {
            overlays: self.config.overlays,
            guards: self.config.guards.then(radsam::segment::GuardSettings::default),
            click_check: self.config.click_check,
            correction_carry: self.config.correction_carry,
            negative_erase: self.config.negative_erase,
            carry_ensemble: self.config.carry_ensemble,
            point_assist: self.config.point_assist,
            deadline,
            recorded_volume_uri: Some(volume_uri.to_string()),
            embedding_cache: self.embedding_cache.clone(),
            volume_memo: self.volume_memo.clone(),
            reuse: from_parent.masks,
            resume: from_parent.sessions,
            save_sessions: true,
            ..Default::default()
        };
        let (progress_tx, progress_rx) = tokio::sync::mpsc::unbounded_channel::<ProgressEvent>();
        let publisher = tokio::spawn(publish_progress(events.clone(), self.topology.clone(), progress_rx));
        let (thread, version, out_dir) = (model.thread.clone(), model.version.clone(), out.to_path_buf());
        let inject_panic = self.config.fault_panic_job.as_deref() == Some(local_job.job_id.as_str());
        let ran = tokio::task::spawn_blocking(move || {
            thread.run(move |sam| {
                if inject_panic {
                    panic!("RADSAM_FAULT_PANIC_JOB: a panic injected on the model thread");
                }
                let mut throttle = ProgressThrottle::new(PROGRESS_INTERVAL);
                let mut report = |stage: &str, done: usize, total: usize| {
                    if throttle.due(stage, done, total, Instant::now()) {
                        let _ = progress_tx.send(ProgressEvent {
                            job_id: local_job.job_id.clone(),
                            correlation_id: local_job.correlation_id.clone(),
                            status: "running",
                            stage: stage.to_string(),
                            done,
                            total,
                        });
                    }
                };
                radsam::job::process(&local_job, sam, &version, &out_dir, &opts, &mut report)
            })
        })
        .await
        .map_err(|e| Failure::transient("MODEL_THREAD", e))?;
        // The sender went with the model's task: the publisher ends after the last report (a
        // broker that does not answer must not hold the job).
        if tokio::time::timeout(Duration::from_secs(5), publisher).await.is_err() {
            warn!("progress events still unpublished after 5 s; dropped");
        }
        let processed = ran.map_err(|e| {
            // This worker is unhealthy from now on: the consume loop stops it after this delivery.
            self.health.set_model_stopped(&printable(&e.to_string(), 2000));
            model_stopped_failure(&e)
        })?;
        processed.map_err(|e| self.processing_failure(e))
    }

    /// What a revision takes from its parent (same volume, series and model version), fetched
    /// into `scratch`: the masks of the targets it leaves as they were (not segmented again), and
    /// the saved editing sessions of those and of the targets it only adds clicks to (which then
    /// apply their new clicks alone: segment/snapshot.rs). Best effort: whatever cannot be had
    /// here is segmented as usual.
    async fn inherit_from_parent(&self, job: &Job, parent: &Parent, model_version: &str, scratch: &Path) -> FromParent {
        let mut taken = FromParent::default();
        let same_inputs = job.volume_uri == parent.job.volume_uri
            && job.series_instance_uid == parent.job.series_instance_uid
            && job.model_version == parent.job.model_version;
        if !same_inputs {
            return taken;
        }
        // A mask file may have been rewritten at its URI since: such targets run again.
        let parents_target = |t: &&radsam::job::Target| {
            parent.job.targets.iter().find(|p| p.label == t.label).filter(|_| t.initial_prompt.mask_uri.is_none())
        };
        let unchanged: Vec<&str> = job
            .targets
            .iter()
            .filter(|t| parents_target(t).is_some_and(|p| p == *t))
            .map(|t| t.label.as_str())
            .collect();
        let more_clicks: Vec<&str> = job
            .targets
            .iter()
            .filter(|t| parents_target(t).is_some_and(|p| p != *t && only_clicks_added(p, t)))
            .map(|t| t.label.as_str())
            .collect();
        if unchanged.is_empty() && more_clicks.is_empty() {
            return taken;
        }
        let rows = match self.db.result_masks(&parent.id).await {
            Ok(rows) => rows,
            Err(e) => {
                warn!("cannot read the parent's results ({e}); segmenting every target");
                return taken;
            }
        };
        for (i, (label, mask_uri, version)) in rows.into_iter().enumerate() {
            let (keep, resume) = (unchanged.contains(&label.as_str()), more_clicks.contains(&label.as_str()));
            if version != model_version || !(keep || resume) {
                continue;
            }
            // The parent's session lies beside its masks (sessions/LABEL.session.gz); jobs from
            // before sessions were saved have none, and replay.
            if let Some((dir, _)) = mask_uri.rsplit_once('/') {
                let uri = format!("{dir}/sessions/{label}.session.gz");
                match self.storage.fetch(&uri, &scratch.join(format!("parent-session-{i}"))).await {
                    Ok(path) => {
                        taken.sessions.insert(label.clone(), path);
                    }
                    Err(e) => warn!(%label, "no saved session of the parent ({e}); its clicks are replayed"),
                }
            }
            if keep {
                match self.storage.fetch(&mask_uri, &scratch.join(format!("parent-{i}"))).await {
                    Ok(path) => {
                        taken.masks.insert(label, path);
                    }
                    Err(e) => warn!(%label, "cannot fetch the parent's mask ({e}); segmenting it again"),
                }
            }
        }
        taken
    }

    /// Stores the job's SEG with STOW-RS where the job (seg_store_uri) or the worker
    /// (RADSAM_SEG_STORE_URI) says; None when it goes nowhere.
    async fn store_seg(&self, job: &Job, result: &JobResult, out: &Path) -> Result<Option<StoreReceipt>, Failure> {
        let named_by_job = job.seg_store_uri.is_some();
        let destination = match job.seg_store_uri.as_deref().or(self.config.seg_store_uri.as_deref()) {
            None => return Ok(None),
            // The PACS the series came from, when it came from one.
            Some("source") => match radsam::dicomweb::SeriesUri::parse(&job.volume_uri) {
                Ok(series) => format!("dicomweb+{}", series.root),
                Err(_) => return Ok(None),
            },
            Some(uri) => uri.to_string(),
        };
        let (Some(file), Some(uids)) = (&result.seg_file, &result.seg) else {
            if named_by_job {
                return Err(Failure::permanent(
                    "DICOMWEB_NO_SEG",
                    "the job names a seg_store_uri, but its volume is not a DICOM series: there is no SEG to store",
                ));
            }
            info!("the volume is not DICOM: no SEG to store in the PACS");
            return Ok(None);
        };
        let bytes = tokio::fs::read(out.join(file)).await.map_err(|e| Failure::transient("SCRATCH_UNWRITABLE", e))?;
        let instance = radsam::dicomweb::Instance {
            study_uid: &uids.study_instance_uid,
            series_uid: &uids.series_instance_uid,
            sop_instance_uid: &uids.sop_instance_uid,
            bytes: &bytes,
        };
        let receipt = self
            .retry("storing the SEG in the PACS", || async {
                Ok::<_, Failure>(self.storage.store_dicom(&destination, &instance).await?)
            })
            .await?;
        match &receipt.warning {
            Some(w) => {
                warn!(url = %receipt.instance_url, "the PACS stored the SEG with a warning (DICOMWEB_STORE_WARNING): {w}")
            }
            None => info!(url = %receipt.instance_url, "SEG stored in the PACS"),
        }
        Ok(Some(receipt))
    }

    fn processing_failure(&self, e: ProcessError) -> Failure {
        match e.code() {
            "OUTPUT_UNWRITABLE" => Failure::transient(e.code(), &e),
            "JOB_TIMEOUT" => Failure::permanent(
                "JOB_TIMEOUT",
                format!("{e} (the budget is {} s, RADSAM_JOB_TIMEOUT_SECONDS)", self.config.job_timeout_seconds),
            ),
            code => Failure::permanent(code, &e),
        }
    }
}

/// At most one progress event a second per stage (and each stage's first and last).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Publishes the progress reports of one job until its model task ends (best effort: a report
/// that cannot be published is dropped, the job goes on).
async fn publish_progress(
    events: Channel,
    topology: radsam::queue::Topology,
    mut reports: tokio::sync::mpsc::UnboundedReceiver<ProgressEvent>,
) {
    while let Some(p) = reports.recv().await {
        if !events.status().connected() {
            continue;
        }
        let _ = radsam::queue::publish_result(
            &events,
            &topology,
            "progress",
            &p.job_id,
            p.correlation_id.as_deref(),
            &p.to_json(),
        )
        .await;
    }
}

/// A target's row in PostgreSQL, from its result, the job's results folder and its DICOM SEG.
fn target_row(base: &str, t: &TargetResult, seg_uri: Option<&str>, pacs: Option<&StoreReceipt>) -> TargetRow {
    TargetRow {
        label: t.label.clone(),
        mask_uri: join_uri(base, &t.mask_file),
        labels_uri: join_uri(base, "labels.nii.gz"),
        seg_uri: seg_uri.map(String::from),
        pacs_seg_uri: pacs.map(|p| p.instance_url.clone()),
        pacs_store_warning: pacs.and_then(|p| p.warning.as_ref().map(|w| format!("DICOMWEB_STORE_WARNING: {w}"))),
        voxels: t.voxels as i64,
        volume_ml: t.volume_ml,
        reference_ml: t.reference_ml,
        dice: t.dice,
        carry: t.carry.name().to_string(),
        initial_slice: t.initial_slice as i32,
        first_slice: t.boundaries.0 as i32,
        last_slice: t.boundaries.1 as i32,
        clicks_applied: t.clicks_applied as i32,
    }
}

/// The stage times of a job before its commit (committing is timed after it).
fn stage_times(result: &JobResult, fetch: f64, upload: f64) -> StageTimes {
    StageTimes {
        queue_lag: None,
        fetch,
        decode: result.read_seconds,
        encode: result.encode_seconds,
        propagate: (result.total_seconds - result.read_seconds - result.encode_seconds - result.write_seconds).max(0.0),
        upload,
        commit: 0.0,
        total: 0.0,
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
    // Mask prompts likewise (a label map shared by targets is fetched once).
    for (i, target) in local.targets.iter_mut().enumerate() {
        let Some(uri) = target.initial_prompt.mask_uri.clone() else { continue };
        if !fetched.contains_key(&uri) {
            let path = worker.storage.fetch(&uri, &scratch.join(format!("prompt-mask-{i}"))).await?;
            fetched.insert(uri.clone(), path.display().to_string());
        }
        target.initial_prompt.mask_uri = Some(fetched[&uri].clone());
    }
    Ok(local)
}
