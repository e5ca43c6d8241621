//! The result event: what the results exchange announces about a job (routing key = its status)
//! and what PostgreSQL keeps to announce it again on a redelivery. One type for both outcomes, so
//! a dashboard meets one shape.

use radsam::db::TargetRow;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Serialize)]
pub struct ResultEvent {
    pub job_id: Option<String>,
    pub correlation_id: Option<String>,
    /// succeeded or failed.
    pub status: &'static str,
    #[serde(flatten)]
    pub detail: EventDetail,
}

#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EventDetail {
    Succeeded {
        model_version: String,
        results_uri: String,
        /// The SEG in the PACS (its WADO-RS URL), when the job stored it there.
        #[serde(skip_serializing_if = "Option::is_none")]
        pacs_seg_uri: Option<String>,
        targets: Vec<TargetSummary>,
    },
    Failed {
        error: EventError,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct EventError {
    pub code: String,
    pub message: String,
}

/// A target as the event names it (the full row is in PostgreSQL).
#[derive(Debug, Clone, Serialize)]
pub struct TargetSummary {
    pub label: String,
    pub mask_uri: String,
    pub voxels: i64,
    pub volume_ml: f64,
    pub dice: Option<f64>,
}

impl From<&TargetRow> for TargetSummary {
    fn from(r: &TargetRow) -> Self {
        Self {
            label: r.label.clone(),
            mask_uri: r.mask_uri.clone(),
            voxels: r.voxels,
            volume_ml: r.volume_ml,
            dice: r.dice,
        }
    }
}

impl ResultEvent {
    pub fn succeeded(
        job_id: &str,
        correlation_id: Option<&str>,
        model_version: &str,
        results_uri: &str,
        rows: &[TargetRow],
    ) -> Self {
        Self {
            job_id: Some(job_id.into()),
            correlation_id: correlation_id.map(String::from),
            status: "succeeded",
            detail: EventDetail::Succeeded {
                model_version: model_version.into(),
                results_uri: results_uri.into(),
                pacs_seg_uri: rows.first().and_then(|r| r.pacs_seg_uri.clone()),
                targets: rows.iter().map(TargetSummary::from).collect(),
            },
        }
    }

    pub fn failed(job_id: Option<&str>, correlation_id: Option<&str>, code: &str, message: &str) -> Self {
        Self {
            job_id: job_id.map(String::from),
            correlation_id: correlation_id.map(String::from),
            status: "failed",
            detail: EventDetail::Failed { error: EventError { code: code.into(), message: message.into() } },
        }
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an event is plain data")
    }
}

/// How far a job is on the model thread: published on the results exchange with routing key
/// `progress` (at most one a second per stage, and the last of each stage), so a dashboard can
/// show a bar. Consumers of results alone bind `succeeded` and `failed`.
#[derive(Debug, Clone, Serialize)]
pub struct ProgressEvent {
    pub job_id: String,
    pub correlation_id: Option<String>,
    /// Always "running".
    pub status: &'static str,
    /// "encoding slices", or "LABEL: correction clicks".
    pub stage: String,
    pub done: usize,
    pub total: usize,
}

impl ProgressEvent {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("an event is plain data")
    }
}

/// Decides which progress reports become events: the first and the last of each stage, and
/// otherwise at most one per `interval`.
pub struct ProgressThrottle {
    interval: std::time::Duration,
    last: Option<(String, std::time::Instant)>,
}

impl ProgressThrottle {
    pub fn new(interval: std::time::Duration) -> Self {
        Self { interval, last: None }
    }

    /// True when the report (`stage`, `done` of `total`) is to be published now.
    pub fn due(&mut self, stage: &str, done: usize, total: usize, now: std::time::Instant) -> bool {
        let due = match &self.last {
            Some((s, t)) => s != stage || done >= total || now.duration_since(*t) >= self.interval,
            None => true,
        };
        if due {
            self.last = Some((stage.to_string(), now));
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn progress_is_throttled_but_keeps_each_stage_s_first_and_last_report() {
        use std::time::{Duration, Instant};
        let mut throttle = ProgressThrottle::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert!(throttle.due("encoding slices", 1, 40, at(0)), "the first");
        assert!(!throttle.due("encoding slices", 2, 40, at(300)));
        assert!(!throttle.due("encoding slices", 3, 40, at(900)));
        assert!(throttle.due("encoding slices", 4, 40, at(1000)), "a second later");
        assert!(!throttle.due("encoding slices", 5, 40, at(1500)));
        assert!(throttle.due("encoding slices", 40, 40, at(1600)), "the last");
        assert!(throttle.due("liver: correction clicks", 1, 3, at(1700)), "a new stage");
    }

    #[test]
    fn a_failure_event_has_the_shape_dashboards_read() {
        let e = ResultEvent::failed(Some("j1"), None, "PROMPT_INVALID", "box outside");
        assert_eq!(
            e.to_json(),
            json!({"job_id": "j1", "correlation_id": null, "status": "failed",
                   "error": {"code": "PROMPT_INVALID", "message": "box outside"}})
        );
    }

    #[test]
    fn a_success_event_names_each_target_and_where_the_masks_are() {
        let row = TargetRow {
            label: "liver".into(),
            mask_uri: "s3://r/j1/liver.nii.gz".into(),
            labels_uri: "s3://r/j1/labels.nii.gz".into(),
            seg_uri: None,
            pacs_seg_uri: None,
            pacs_store_warning: None,
            voxels: 10,
            volume_ml: 1.5,
            reference_ml: None,
            dice: Some(0.9),
            carry: "mask".into(),
            initial_slice: 3,
            first_slice: 1,
            last_slice: 5,
            clicks_applied: 0,
        };
        let e = ResultEvent::succeeded("j1", Some("c1"), "radsam@sha256:0123", "s3://r/j1", &[row]);
        assert_eq!(
            e.to_json(),
            json!({"job_id": "j1", "correlation_id": "c1", "status": "succeeded",
                   "model_version": "radsam@sha256:0123", "results_uri": "s3://r/j1",
                   "targets": [{"label": "liver", "mask_uri": "s3://r/j1/liver.nii.gz", "voxels": 10,
                                "volume_ml": 1.5, "dice": 0.9}]})
        );
    }
}
