//! The job: what a PACS router (queue) or a user (CLI `segment --job`) asks for, as JSON.
//! Versioned; unknown fields are refused so typos do not pass silently. Validation gives each
//! problem a stable code. Geometry (slices, points inside the slice) is checked against the
//! volume when it has been read (PROMPT_* codes of segment::SegmentError).

use crate::prompt::{Click, Point};
use crate::segment::Carry;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub schema_version: u32,
    pub job_id: String,
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// s3://bucket/key (queue worker), file:///absolute/path (under the worker's RADSAM_FILE_ROOTS),
    /// or a plain path (CLI only): a NIfTI file, or a DICOM series folder / key prefix.
    pub volume_uri: String,
    /// With a DICOM folder holding several series: the one to read.
    #[serde(default)]
    pub series_instance_uid: Option<String>,
    /// Model name (see README, Models); default radsam.
    #[serde(default)]
    pub model_version: Option<String>,
    /// 0 (lowest) to 9; used by the queue.
    #[serde(default)]
    pub priority: u8,
    pub targets: Vec<Target>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Name of the structure (liver, lesion_1, ...): output file names and the SEG segment label.
    pub label: String,
    pub initial_prompt: InitialPrompt,
    /// First and last slice of the object (either order).
    pub boundaries: Boundaries,
    /// Applied in order after the initial propagation.
    #[serde(default)]
    pub correction_clicks: Vec<Click>,
    /// A reference label map (NIfTI) for Dice; resampled onto the volume's grid when needed.
    #[serde(default)]
    pub reference_mask_uri: Option<String>,
    /// The target's value in the reference label map (default 1).
    #[serde(default)]
    pub reference_label: Option<u32>,
    /// mask (RadSAM, default) or box (baseline).
    #[serde(default)]
    pub carry: Option<Carry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialPrompt {
    pub slice: usize,
    #[serde(default)]
    pub points: Vec<Point>,
    /// [x0, y0, x1, y1]
    #[serde(default, rename = "box")]
    pub bbox: Option<[f64; 4]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boundaries {
    pub top: usize,
    pub bottom: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("malformed job JSON: {0}")]
    Malformed(String),
    #[error("schema_version {found} is not supported (this build reads {SCHEMA_VERSION})")]
    SchemaVersion { found: u32 },
    #[error("job_id is empty")]
    EmptyJobId,
    #[error("job_id {0:?} is not usable as a storage key (1-128 letters, digits, _ - . : only)")]
    BadJobId(String),
    #[error("the job has no targets")]
    NoTargets,
    #[error("target {index}: label is empty or not a safe file name ({label:?}: letters, digits, _ - . only)")]
    BadLabel { index: usize, label: String },
    #[error("target label {0:?} appears twice")]
    DuplicateLabel(String),
    #[error("target {label}: the initial prompt has neither points nor a box")]
    EmptyPrompt { label: String },
    #[error("priority {0} is outside 0..=9")]
    Priority(u8),
    #[error("{uri}: {reason}")]
    BadUri { uri: String, reason: String },
}

impl JobError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "JOB_MALFORMED",
            Self::SchemaVersion { .. } => "JOB_SCHEMA_VERSION",
            Self::EmptyJobId => "JOB_EMPTY_ID",
            Self::BadJobId(_) => "JOB_BAD_ID",
            Self::NoTargets => "JOB_NO_TARGETS",
            Self::BadLabel { .. } => "JOB_BAD_LABEL",
            Self::DuplicateLabel(_) => "JOB_DUPLICATE_LABEL",
            Self::EmptyPrompt { .. } => "JOB_EMPTY_PROMPT",
            Self::Priority(_) => "JOB_PRIORITY",
            Self::BadUri { .. } => "JOB_BAD_URI",
        }
    }
}

impl Job {
    /// Parses and validates a job.
    pub fn from_json(text: &str) -> Result<Self, JobError> {
        let job: Job = serde_json::from_str(text).map_err(|e| JobError::Malformed(e.to_string()))?;
        job.validate()?;
        Ok(job)
    }

    pub fn validate(&self) -> Result<(), JobError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(JobError::SchemaVersion { found: self.schema_version });
        }
        if self.job_id.trim().is_empty() {
            return Err(JobError::EmptyJobId);
        }
        // The id names the job's result folder in S3: keep it a plain key segment.
        let id_ok = self.job_id.len() <= 128 && self.job_id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c)) && !self.job_id.starts_with('.');
        if !id_ok {
            return Err(JobError::BadJobId(self.job_id.clone()));
        }
        if self.priority > 9 {
            return Err(JobError::Priority(self.priority));
        }
        if self.targets.is_empty() {
            return Err(JobError::NoTargets);
        }
        let mut seen = std::collections::HashSet::new();
        for (index, t) in self.targets.iter().enumerate() {
            let safe = !t.label.is_empty() && t.label.len() <= 64 && t.label.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c)) && !t.label.starts_with('.');
            if !safe {
                return Err(JobError::BadLabel { index, label: t.label.clone() });
            }
            if !seen.insert(t.label.as_str()) {
                return Err(JobError::DuplicateLabel(t.label.clone()));
            }
            if t.initial_prompt.points.is_empty() && t.initial_prompt.bbox.is_none() {
                return Err(JobError::EmptyPrompt { label: t.label.clone() });
            }
        }
        Ok(())
    }
}

/// A local path from a file:// URI or a plain path. Other schemes (s3://) belong to the queue
/// service's storage and are refused here.
pub fn local_path(uri: &str) -> Result<PathBuf, JobError> {
    let bad = |reason: &str| JobError::BadUri { uri: uri.to_string(), reason: reason.to_string() };
    let path = match uri.split_once("://") {
        Some(("file", rest)) => PathBuf::from(rest),
        Some((scheme, _)) => return Err(bad(&format!("the {scheme}:// scheme needs the queue service's storage; here use a file path"))),
        None => PathBuf::from(uri),
    };
    if path.as_os_str().is_empty() {
        return Err(bad("empty path"));
    }
    Ok(path)
}

/// Reads a job file.
pub fn read_job(path: &Path) -> Result<Job, JobError> {
    let text = std::fs::read_to_string(path).map_err(|e| JobError::Malformed(format!("{}: {e}", path.display())))?;
    Job::from_json(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
        "schema_version": 1, "job_id": "job-1", "correlation_id": "study-42",
        "volume_uri": "file:///data/ct.nii.gz",
        "targets": [{
            "label": "liver",
            "initial_prompt": {"slice": 106, "box": [20, 30, 80, 75]},
            "boundaries": {"top": 111, "bottom": 69},
            "correction_clicks": [{"slice": 90, "x": 40, "y": 50, "positive": false}],
            "carry": "mask"
        }]
    }"#;

    #[test]
    fn the_readme_example_parses() {
        let job = Job::from_json(EXAMPLE).unwrap();
        assert_eq!(job.targets[0].boundaries, Boundaries { top: 111, bottom: 69 });
        assert_eq!(job.targets[0].correction_clicks[0].slice, 90);
        assert_eq!(local_path(&job.volume_uri).unwrap(), PathBuf::from("/data/ct.nii.gz"));
    }

    #[test]
    fn invalid_jobs_get_stable_codes() {
        let code = |text: &str| Job::from_json(text).unwrap_err().code();
        assert_eq!(code("{not json"), "JOB_MALFORMED");
        assert_eq!(code(&EXAMPLE.replace("\"schema_version\": 1", "\"schema_version\": 2")), "JOB_SCHEMA_VERSION");
        assert_eq!(code(&EXAMPLE.replace("\"job-1\"", "\" \"")), "JOB_EMPTY_ID");
        assert_eq!(code(&EXAMPLE.replace("\"liver\"", "\"../etc\"")), "JOB_BAD_LABEL");
        assert_eq!(code(&EXAMPLE.replace("\"job-1\"", "\"../../x\"")), "JOB_BAD_ID");
        assert_eq!(code(&EXAMPLE.replace("\"box\": [20, 30, 80, 75]", "\"points\": []")), "JOB_EMPTY_PROMPT");
        assert_eq!(code(&EXAMPLE.replace("\"carry\"", "\"cary\"")), "JOB_MALFORMED", "unknown fields are refused");
        assert_eq!(code(&EXAMPLE.replace("\"job_id\"", "\"priority\": 12, \"job_id\"")), "JOB_PRIORITY");
        let no_targets = r#"{"schema_version": 1, "job_id": "j", "volume_uri": "/x", "targets": []}"#;
        assert_eq!(code(no_targets), "JOB_NO_TARGETS");
        assert_eq!(local_path("s3://bucket/ct.nii.gz").unwrap_err().code(), "JOB_BAD_URI");
    }
}
