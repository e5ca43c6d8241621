//! How a delivery ends: acknowledged (done, or a duplicate), returned to the queue (a transient
//! failure with deliveries left), or failed for good (recorded, announced, dead-lettered). The
//! decisions are plain functions over a job's outcome, tested without a broker; the `Worker`
//! methods below carry them out against PostgreSQL, the broker and the store.

use crate::event::ResultEvent;
use crate::worker::Worker;
use lapin::message::Delivery;
use lapin::options::{BasicNackOptions, BasicRejectOptions};
use lapin::Channel;
use radsam::error::Coded;
use radsam::job::text::printable;
use radsam::job::Job;
use radsam::model::ModelThreadStopped;
use radsam::storage::join_uri;
use std::time::Duration;
use tracing::{info, warn};

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

/// Why a step of a job failed. Every failure of the pipeline is one of these.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Waiting may help (a store, the database or the broker is down): retried, then requeued.
    Transient { code: String, message: String },
    /// The job cannot succeed as it is (a bad volume, prompt or model): recorded and dead-lettered.
    Permanent { code: String, message: String },
    /// Another delivery of this job claimed its row after this one did: its result is the job's.
    LostClaim,
}

impl Failure {
    pub fn transient(code: &str, message: impl ToString) -> Self {
        Self::Transient { code: code.into(), message: message.to_string() }
    }
    pub fn permanent(code: &str, message: impl ToString) -> Self {
        Self::Permanent { code: code.into(), message: message.to_string() }
    }
    /// A coded error, transient or permanent as it says.
    pub fn from_coded(e: &impl Coded) -> Self {
        if e.is_transient() {
            Self::transient(e.code(), e)
        } else {
            Self::permanent(e.code(), e)
        }
    }
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
    pub fn code(&self) -> &str {
        match self {
            Self::Transient { code, .. } | Self::Permanent { code, .. } => code,
            Self::LostClaim => "LOST_CLAIM",
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Self::Transient { message, .. } | Self::Permanent { message, .. } => message,
            Self::LostClaim => "another delivery of this job took it over",
        }
    }
}

impl From<radsam::storage::StorageError> for Failure {
    fn from(e: radsam::storage::StorageError) -> Self {
        Self::from_coded(&e)
    }
}

impl From<radsam::db::DbError> for Failure {
    fn from(e: radsam::db::DbError) -> Self {
        Self::from_coded(&e)
    }
}

impl From<radsam::queue::PublishError> for Failure {
    fn from(e: radsam::queue::PublishError) -> Self {
        Self::transient("BROKER_UNAVAILABLE", e)
    }
}

/// The model thread stopped under a job. The job whose task panicked is failed for good, since
/// it would stop every worker it reached; a job that only met an already stopped thread goes back
/// to the queue for a healthy worker.
pub fn model_stopped_failure(e: &ModelThreadStopped) -> Failure {
    match e {
        ModelThreadStopped::Panicked(message) => Failure::permanent(
            e.code(),
            format!("the model panicked on this job (the worker stops and restarts): {}", printable(message, 2000)),
        ),
        ModelThreadStopped::Stopped => {
            Failure::transient(e.code(), "the model thread had stopped before this job (the worker restarts)")
        }
    }
}

/// JOB_POISON when the attempts that ended with their worker dead (no outcome recorded) reached
/// the limit. Requeues on purpose (a store down) are not counted in `crashed`.
pub fn poison(crashed: i32, max_attempts: i32) -> Option<Failure> {
    (crashed >= max_attempts).then(|| {
        Failure::permanent(
            "JOB_POISON",
            format!("{crashed} earlier attempts of this job stopped their worker (limit {max_attempts})"),
        )
    })
}

/// Where a message stands in the queue's delivery count.
#[derive(Debug, Clone, Copy)]
pub struct Deliveries {
    /// Earlier deliveries of this message (the quorum queue's x-delivery-count).
    pub earlier: u32,
    /// The queue's delivery limit: past it the broker dead-letters the message unrecorded.
    pub limit: u32,
}

impl Deliveries {
    pub fn is_last(self) -> bool {
        self.earlier >= self.limit
    }
}

/// What becomes of a claimed job's delivery once its processing ended.
#[derive(Debug, PartialEq)]
pub enum Settlement {
    /// Committed: publish the success event and acknowledge.
    Succeeded,
    /// Another delivery owns the job: acknowledge this one, record nothing.
    Duplicate,
    /// A transient failure with deliveries left: release the claim and requeue.
    Requeue(Failure),
    /// Record the failure, announce it, dead-letter the message.
    Fail(Failure),
}

/// The decision after processing: a transient failure on the last delivery the queue allows is
/// failed (JOB_RETRIES_EXHAUSTED) rather than requeued, because the broker would dead-letter it
/// with its row still queued; so the row, the event and the dead-letter queue agree.
pub fn settlement(processed: Result<(), Failure>, deliveries: Deliveries) -> Settlement {
    match processed {
        Ok(()) => Settlement::Succeeded,
        Err(Failure::LostClaim) => Settlement::Duplicate,
        Err(f) if f.is_transient() && deliveries.is_last() => Settlement::Fail(Failure::permanent(
            "JOB_RETRIES_EXHAUSTED",
            format!(
                "all {} deliveries of this job met transient failures (the queue's delivery limit is {}); the last: [{}] {}",
                deliveries.earlier + 1,
                deliveries.limit,
                f.code(),
                f.message()
            ),
        )),
        Err(f) if f.is_transient() => Settlement::Requeue(f),
        Err(f) => Settlement::Fail(f),
    }
}

impl Worker {
    /// A message that is not a valid job: recorded in rejected_messages with the ids it seems to
    /// carry (never over the row of a job with that id: that belongs to the job's valid claim), a
    /// failure event published, and dead-lettered.
    pub(crate) async fn reject_invalid(
        &self,
        delivery: &Delivery,
        events: &Channel,
        body: &str,
        code: &str,
        message: &str,
    ) -> Outcome {
        let value: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let field = |k: &str| {
            value
                .as_ref()
                .and_then(|v| v.get(k))
                .and_then(serde_json::Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from)
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
            Err(f) if f.is_transient() => {
                // Without a record the message must not vanish: back to the queue until the database is back.
                warn!(code = f.code(), "cannot record the rejection ({}); requeueing", printable(f.message(), 4096));
                return self.requeue(delivery).await;
            }
            // Cannot happen with escaped, bounded text; if it does, the dead-letter queue keeps it.
            Err(f) => {
                warn!(
                    code = f.code(),
                    "cannot record the rejection ({}); dead-lettering it unrecorded",
                    printable(f.message(), 4096)
                )
            }
        }
        // Ids too long for anyone to match on are left out of the event.
        let short = |s: &Option<String>| s.clone().filter(|s| s.len() <= 255);
        let (job_id, correlation_id) = (short(&job_id), short(&correlation_id));
        let event = ResultEvent::failed(job_id.as_deref(), correlation_id.as_deref(), code, &message);
        let _ = self.publish_event(events, &event).await;
        let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
        Outcome::Rejected
    }

    pub(crate) async fn requeue(&self, delivery: &Delivery) -> Outcome {
        // A short pause so a job that meets a dead store does not spin through the queue.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = delivery.nack(BasicNackOptions { requeue: true, multiple: false }).await;
        Outcome::Requeued
    }

    /// A permanent failure: recorded, announced, dead-lettered.
    pub(crate) async fn fail(
        &self,
        delivery: &Delivery,
        events: &Channel,
        job: &Job,
        attempt: i32,
        f: Failure,
    ) -> Outcome {
        let (code, message) = (f.code(), f.message());
        warn!(code, "failed: {message}");
        let event = ResultEvent::failed(Some(&job.job_id), job.correlation_id.as_deref(), code, message);
        let event_json = event.to_json();
        let recorded = self
            .retry("recording the failure", || async {
                Ok::<_, Failure>(self.db.fail(&job.job_id, attempt, code, message, &event_json).await?)
            })
            .await;
        match recorded {
            Err(e) if e.is_transient() => return self.requeue(delivery).await,
            Err(e) => {
                // The row refuses this failure for good: the record goes with the rejected messages.
                warn!(code = e.code(), "cannot record the failure: {}", e.message());
                let body = serde_json::to_string(job).unwrap_or_default();
                if let Err(e) =
                    self.db.reject(Some(&job.job_id), job.correlation_id.as_deref(), None, &body, code, message).await
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
        let _ = self.publish_event(events, &event).await;
        let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
        Outcome::Failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Deliveries = Deliveries { earlier: 0, limit: 5 };
    const LAST: Deliveries = Deliveries { earlier: 5, limit: 5 };

    #[test]
    fn a_committed_job_is_acknowledged_on_any_delivery() {
        assert_eq!(settlement(Ok(()), FIRST), Settlement::Succeeded);
        assert_eq!(settlement(Ok(()), LAST), Settlement::Succeeded);
    }

    #[test]
    fn a_lost_claim_is_a_duplicate_never_a_failure() {
        assert_eq!(settlement(Err(Failure::LostClaim), FIRST), Settlement::Duplicate);
        assert_eq!(settlement(Err(Failure::LostClaim), LAST), Settlement::Duplicate);
    }

    #[test]
    fn a_transient_failure_requeues_while_deliveries_are_left() {
        let down = Failure::transient("STORAGE_UNAVAILABLE", "connection refused");
        assert_eq!(settlement(Err(down.clone()), FIRST), Settlement::Requeue(down.clone()));
        let before_last = Deliveries { earlier: 4, limit: 5 };
        assert_eq!(settlement(Err(down.clone()), before_last), Settlement::Requeue(down));
    }

    #[test]
    fn a_transient_failure_on_the_last_delivery_fails_with_retries_exhausted() {
        let down = Failure::transient("DB_UNAVAILABLE", "pool timed out");
        let Settlement::Fail(f) = settlement(Err(down), LAST) else { panic!("must fail") };
        assert!(!f.is_transient());
        assert_eq!(f.code(), "JOB_RETRIES_EXHAUSTED");
        assert!(f.message().contains("all 6 deliveries"), "{}", f.message());
        assert!(f.message().contains("[DB_UNAVAILABLE] pool timed out"), "{}", f.message());
    }

    #[test]
    fn a_permanent_failure_fails_at_once_and_keeps_its_code() {
        let bad = Failure::permanent("PROMPT_INVALID", "box outside the slice");
        assert_eq!(settlement(Err(bad.clone()), FIRST), Settlement::Fail(bad));
    }

    #[test]
    fn poison_counts_only_from_the_limit() {
        assert_eq!(poison(0, 3), None);
        assert_eq!(poison(2, 3), None);
        let f = poison(3, 3).expect("3 crashes of 3 allowed is poison");
        assert_eq!(f.code(), "JOB_POISON");
        assert!(!f.is_transient());
    }

    #[test]
    fn a_panic_fails_the_job_but_a_dead_thread_requeues_it() {
        let panicked = model_stopped_failure(&ModelThreadStopped::Panicked("shape mismatch".into()));
        assert!(!panicked.is_transient());
        assert!(panicked.message().contains("shape mismatch"));
        let stopped = model_stopped_failure(&ModelThreadStopped::Stopped);
        assert!(stopped.is_transient());
        assert_eq!(stopped.code(), ModelThreadStopped::Stopped.code());
    }

    #[test]
    fn coded_errors_keep_their_transience() {
        let missing = radsam::storage::StorageError::NotFound { uri: "s3://b/k".into() };
        let f = Failure::from(missing);
        assert!(!f.is_transient());
        assert_eq!(f.code(), "STORAGE_NOT_FOUND");
    }
}
