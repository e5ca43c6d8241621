//! The job: what a PACS router (queue) or a user (CLI `segment --job`) asks for, as JSON.
//! Versioned; unknown fields are refused so typos do not pass silently. Validation gives each
//! problem a stable code. Geometry (slices, points inside the slice) is checked against the
//! volume when it has been read (PROMPT_* codes of segment::SegmentError). Every job is bounded
//! here, before any fetch or model work: message size, targets, clicks per target and slices to
//! encode (JobLimits, the JOB_LIMIT_* codes), and text fields without control characters.

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
    /// The job this one corrects (a revision, issue #20): the worker completes this job from its
    /// parent's (revision.rs), so a correction may name only what changes, e.g. one more click.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_job_id: Option<String>,
    /// A DICOMweb service (dicomweb+http(s)://HOST/PATH, its STOW-RS root) to store the job's
    /// DICOM SEG into, in the source study (issue #21); the worker's RADSAM_SEG_STORE_URI when
    /// absent. Only DICOM volumes have a SEG.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seg_store_uri: Option<String>,
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
    /// propagate (default): the initial prompt on its slice, carried to the boundaries; refine:
    /// every slice between the boundaries prompted with its own slice of the prompt's mask file
    /// (refining another tool's 3D segmentation), then the clicks, each on its own slice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

/// How a target's initial prompt is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Propagate,
    Refine,
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
    /// A mask prompt from a file (RadSAM's mask prompt): a NIfTI label map on the volume's grid, or
    /// a DICOM SEG of the volume's series (file://, s3://, or a DICOMweb series holding the SEG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_uri: Option<String>,
    /// The value in the label map, or the segment number in the SEG (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_label: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boundaries {
    pub top: usize,
    pub bottom: usize,
}

/// Caps on what one job may ask for, so that no message can hold a worker for unbounded time or
/// memory. The CLI and the worker take them as flags / RADSAM_* variables (README, Configuration).
#[derive(clap::Args, Debug, Clone, Copy, PartialEq)]
pub struct JobLimits {
    /// Largest job message (bytes), checked before it is parsed (JOB_LIMIT_MESSAGE).
    #[arg(long, env = "RADSAM_MAX_MESSAGE_BYTES", default_value_t = JobLimits::DEFAULT.max_message_bytes)]
    pub max_message_bytes: usize,
    /// Most targets in one job (JOB_LIMIT_TARGETS).
    #[arg(long, env = "RADSAM_MAX_TARGETS", default_value_t = JobLimits::DEFAULT.max_targets)]
    pub max_targets: usize,
    /// Most correction clicks on one target (JOB_LIMIT_CLICKS).
    #[arg(long, env = "RADSAM_MAX_CLICKS", default_value_t = JobLimits::DEFAULT.max_clicks)]
    pub max_clicks: usize,
    /// Most slices between the job's lowest and highest boundary, i.e. slices encoded
    /// (JOB_LIMIT_SLICES).
    #[arg(long, env = "RADSAM_MAX_SLICES", default_value_t = JobLimits::DEFAULT.max_slices)]
    pub max_slices: usize,
}

impl JobLimits {
    /// 1 MiB holds thousands of targets' prompts; 64 targets cover a whole-abdomen job; 100 clicks
    /// are more than anyone corrects by hand; 1024 slices are a whole CT at 1 mm.
    pub const DEFAULT: Self = Self { max_message_bytes: 1 << 20, max_targets: 64, max_clicks: 100, max_slices: 1024 };
}

impl Default for JobLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Longest correlation id: it travels as an AMQP short string (255 bytes) and is indexed.
const MAX_ID_BYTES: usize = 255;
/// Longest URI: S3 keys stop at 1024 bytes, local paths at PATH_MAX.
const MAX_URI_BYTES: usize = 4096;

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
    #[error("parent_job_id {0:?} names no other job (1-128 letters, digits, _ - . : only, not the job itself)")]
    BadParent(String),
    #[error("the job has no targets")]
    NoTargets,
    #[error("target {index}: label is empty or not a safe file name ({label:?}: letters, digits, _ - . only)")]
    BadLabel { index: usize, label: String },
    #[error("target label {0:?} appears twice")]
    DuplicateLabel(String),
    #[error("target {label}: the initial prompt has no points, box or mask_uri")]
    EmptyPrompt { label: String },
    #[error(
        "target {label}: mode refine prompts each slice with its own slice of a mask: it needs initial_prompt.mask_uri"
    )]
    RefineWithoutMask { label: String },
    #[error("priority {0} is outside 0..=9")]
    Priority(u8),
    #[error("{uri}: {reason}")]
    BadUri { uri: String, reason: String },
    #[error("{field} {reason}")]
    BadText { field: String, reason: String },
    #[error("the message is {bytes} bytes long; the limit is {max} (RADSAM_MAX_MESSAGE_BYTES)")]
    MessageTooLarge { bytes: usize, max: usize },
    #[error("the job has {found} targets; the limit is {max} (RADSAM_MAX_TARGETS)")]
    TooManyTargets { found: usize, max: usize },
    #[error("target {label}: {found} correction clicks; the limit is {max} (RADSAM_MAX_CLICKS)")]
    TooManyClicks { label: String, found: usize, max: usize },
    #[error(
        "the boundaries span slices {lo}..={hi} ({found} slices to encode); the limit is {max} (RADSAM_MAX_SLICES)"
    )]
    TooManySlices { lo: usize, hi: usize, found: usize, max: usize },
}

impl crate::error::Coded for JobError {
    fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "JOB_MALFORMED",
            Self::SchemaVersion { .. } => "JOB_SCHEMA_VERSION",
            Self::EmptyJobId => "JOB_EMPTY_ID",
            Self::BadJobId(_) => "JOB_BAD_ID",
            Self::BadParent(_) => "JOB_PARENT_INVALID",
            Self::NoTargets => "JOB_NO_TARGETS",
            Self::BadLabel { .. } => "JOB_BAD_LABEL",
            Self::DuplicateLabel(_) => "JOB_DUPLICATE_LABEL",
            Self::EmptyPrompt { .. } => "JOB_EMPTY_PROMPT",
            Self::RefineWithoutMask { .. } => "PROMPT_MASK_MISSING",
            Self::Priority(_) => "JOB_PRIORITY",
            Self::BadUri { .. } => "JOB_BAD_URI",
            Self::BadText { .. } => "JOB_BAD_TEXT",
            Self::MessageTooLarge { .. } => "JOB_LIMIT_MESSAGE",
            Self::TooManyTargets { .. } => "JOB_LIMIT_TARGETS",
            Self::TooManyClicks { .. } => "JOB_LIMIT_CLICKS",
            Self::TooManySlices { .. } => "JOB_LIMIT_SLICES",
        }
    }
}

/// What can be checked of a correction (a job naming `parent_job_id`) before the worker completes
/// it from its parent (revision.rs): its size, ids, caller's id and priority. `radsam submit`
/// checks this much; the completed job is validated in full by the worker.
#[derive(Debug, Clone, Deserialize)]
pub struct CorrectionHead {
    pub job_id: String,
    pub parent_job_id: String,
    #[serde(default)]
    pub correlation_id: Option<String>,
    #[serde(default)]
    pub priority: u8,
}

impl CorrectionHead {
    pub fn parse(text: &str, limits: &JobLimits) -> Result<Self, JobError> {
        if text.len() > limits.max_message_bytes {
            return Err(JobError::MessageTooLarge { bytes: text.len(), max: limits.max_message_bytes });
        }
        let head: Self = serde_json::from_str(text).map_err(|e| JobError::Malformed(e.to_string()))?;
        if !is_key_safe_id(&head.job_id) {
            return Err(JobError::BadJobId(head.job_id.chars().take(140).collect()));
        }
        if !is_key_safe_id(&head.parent_job_id) || head.parent_job_id == head.job_id {
            return Err(JobError::BadParent(head.parent_job_id.chars().take(140).collect()));
        }
        if head.priority > 9 {
            return Err(JobError::Priority(head.priority));
        }
        check_text("correlation_id", head.correlation_id.as_deref().unwrap_or(""), MAX_ID_BYTES)?;
        Ok(head)
    }
}

/// A job id that can name a result folder in S3: a plain key segment.
fn is_key_safe_id(id: &str) -> bool {
    id.len() <= 128 && id.chars().all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c)) && !id.starts_with('.')
}

/// Text fields come from outside and end up in log lines, PostgreSQL text (which cannot hold NUL)
/// and AMQP properties: refuse control characters and unbounded lengths at the door.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), JobError> {
    let bad = |reason: String| Err(JobError::BadText { field: field.to_string(), reason });
    if value.len() > max {
        return bad(format!("is {} bytes long (at most {max})", value.len()));
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return bad(format!("holds the control character U+{:04X}", c as u32));
    }
    Ok(())
}

impl Job {
    /// Parses and validates a job under the default limits.
    pub fn from_json(text: &str) -> Result<Self, JobError> {
        Self::parse(text, &JobLimits::default())
    }

    /// Parses and validates a job: the size is checked before parsing, the rest after.
    pub fn parse(text: &str, limits: &JobLimits) -> Result<Self, JobError> {
        if text.len() > limits.max_message_bytes {
            return Err(JobError::MessageTooLarge { bytes: text.len(), max: limits.max_message_bytes });
        }
        let job: Job = serde_json::from_str(text).map_err(|e| JobError::Malformed(e.to_string()))?;
        job.validate_with(limits)?;
        Ok(job)
    }

    /// Validates under the default limits.
    pub fn validate(&self) -> Result<(), JobError> {
        self.validate_with(&JobLimits::default())
    }

    pub fn validate_with(&self, limits: &JobLimits) -> Result<(), JobError> {
        if self.schema_version != SCHEMA_VERSION {
            return Err(JobError::SchemaVersion { found: self.schema_version });
        }
        if self.job_id.trim().is_empty() {
            return Err(JobError::EmptyJobId);
        }
        // The id names the job's result folder in S3: keep it a plain key segment.
        let id_ok = is_key_safe_id(&self.job_id);
        if !id_ok {
            // Quoted in the error (escaped by {:?}), so kept short: the id may be megabytes.
            return Err(JobError::BadJobId(self.job_id.chars().take(140).collect()));
        }
        if let Some(parent) = &self.parent_job_id {
            if !is_key_safe_id(parent) || parent == &self.job_id {
                return Err(JobError::BadParent(parent.chars().take(140).collect()));
            }
        }
        if self.priority > 9 {
            return Err(JobError::Priority(self.priority));
        }
        check_text("correlation_id", self.correlation_id.as_deref().unwrap_or(""), MAX_ID_BYTES)?;
        check_text("volume_uri", &self.volume_uri, MAX_URI_BYTES)?;
        check_text("series_instance_uid", self.series_instance_uid.as_deref().unwrap_or(""), MAX_ID_BYTES)?;
        check_text("model_version", self.model_version.as_deref().unwrap_or(""), MAX_ID_BYTES)?;
        if let Some(uri) = &self.seg_store_uri {
            check_text("seg_store_uri", uri, MAX_URI_BYTES)?;
            if !(uri.starts_with("dicomweb+http://") || uri.starts_with("dicomweb+https://")) {
                return Err(JobError::BadUri {
                    uri: uri.chars().take(200).collect(),
                    reason: "seg_store_uri names a DICOMweb service: dicomweb+http(s)://HOST/PATH".into(),
                });
            }
        }
        if self.targets.is_empty() {
            return Err(JobError::NoTargets);
        }
        if self.targets.len() > limits.max_targets {
            return Err(JobError::TooManyTargets { found: self.targets.len(), max: limits.max_targets });
        }
        let mut seen = std::collections::HashSet::new();
        for (index, t) in self.targets.iter().enumerate() {
            let safe = !t.label.is_empty()
                && t.label.len() <= 64
                && t.label.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                && !t.label.starts_with('.');
            if !safe {
                return Err(JobError::BadLabel { index, label: t.label.chars().take(80).collect() });
            }
            if !seen.insert(t.label.as_str()) {
                return Err(JobError::DuplicateLabel(t.label.clone()));
            }
            let p = &t.initial_prompt;
            if p.points.is_empty() && p.bbox.is_none() && p.mask_uri.is_none() {
                return Err(JobError::EmptyPrompt { label: t.label.clone() });
            }
            if t.mode == Some(Mode::Refine) && p.mask_uri.is_none() {
                return Err(JobError::RefineWithoutMask { label: t.label.clone() });
            }
            check_text(
                &format!("targets[{index}].initial_prompt.mask_uri"),
                p.mask_uri.as_deref().unwrap_or(""),
                MAX_URI_BYTES,
            )?;
            if t.correction_clicks.len() > limits.max_clicks {
                return Err(JobError::TooManyClicks {
                    label: t.label.clone(),
                    found: t.correction_clicks.len(),
                    max: limits.max_clicks,
                });
            }
            check_text(
                &format!("targets[{index}].reference_mask_uri"),
                t.reference_mask_uri.as_deref().unwrap_or(""),
                MAX_URI_BYTES,
            )?;
        }
        // One session encodes every slice from the lowest boundary to the highest (process.rs).
        let lo = self
            .targets
            .iter()
            .map(|t| t.boundaries.top.min(t.boundaries.bottom))
            .min()
            .expect("targets checked above");
        let hi = self
            .targets
            .iter()
            .map(|t| t.boundaries.top.max(t.boundaries.bottom))
            .max()
            .expect("targets checked above");
        let found = (hi - lo).saturating_add(1);
        if found > limits.max_slices {
            return Err(JobError::TooManySlices { lo, hi, found, max: limits.max_slices });
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
        Some((scheme, _)) => {
            return Err(bad(&format!("the {scheme}:// scheme needs the queue service's storage; here use a file path")))
        }
        None => PathBuf::from(uri),
    };
    if path.as_os_str().is_empty() {
        return Err(bad("empty path"));
    }
    Ok(path)
}

/// Reads a job file.
pub fn read_job(path: &Path, limits: &JobLimits) -> Result<Job, JobError> {
    let size = std::fs::metadata(path).map_err(|e| JobError::Malformed(format!("{}: {e}", path.display())))?.len();
    if size > limits.max_message_bytes as u64 {
        return Err(JobError::MessageTooLarge {
            bytes: size.min(usize::MAX as u64) as usize,
            max: limits.max_message_bytes,
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| JobError::Malformed(format!("{}: {e}", path.display())))?;
    Job::parse(&text, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Coded;

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
        // A mask file alone is a prompt; refining needs one; the SEG goes to DICOMweb only.
        let mask_only =
            EXAMPLE.replace("\"box\": [20, 30, 80, 75]", "\"mask_uri\": \"file:///data/ts.nii.gz\", \"mask_label\": 5");
        assert!(Job::from_json(&mask_only).is_ok());
        assert!(Job::from_json(&mask_only.replace("\"carry\"", "\"mode\": \"refine\", \"carry\"")).is_ok());
        assert_eq!(code(&EXAMPLE.replace("\"carry\"", "\"mode\": \"refine\", \"carry\"")), "PROMPT_MASK_MISSING");
        assert_eq!(code(&EXAMPLE.replace("\"carry\"", "\"mode\": \"sideways\", \"carry\"")), "JOB_MALFORMED");
        let store = |uri: &str| EXAMPLE.replace("\"targets\"", &format!("\"seg_store_uri\": \"{uri}\", \"targets\""));
        assert!(Job::from_json(&store("dicomweb+https://pacs/dicom-web")).is_ok());
        assert_eq!(code(&store("s3://bucket/segs")), "JOB_BAD_URI");
    }

    #[test]
    fn control_characters_and_oversized_text_are_refused() {
        let code = |text: &str| Job::from_json(text).unwrap_err().code();
        // What JSON escapes let through: NUL (PostgreSQL text refuses it), a newline (a forged log
        // line), an escape sequence; and in each free-text field.
        for bad in ["\\u0000", "\\n", "\\u001b[31m", "\\r", "\\u0085"] {
            let with = |field: &str| EXAMPLE.replace(&format!("\"{field}\": \""), &format!("\"{field}\": \"a{bad}"));
            assert_eq!(code(&with("correlation_id")), "JOB_BAD_TEXT", "{bad}");
            assert_eq!(code(&with("volume_uri")), "JOB_BAD_TEXT", "{bad}");
            assert_eq!(code(&EXAMPLE.replace("\"job-1\"", &format!("\"job{bad}\""))), "JOB_BAD_ID", "{bad}");
        }
        let long = "x".repeat(256);
        assert_eq!(code(&EXAMPLE.replace("study-42", &long)), "JOB_BAD_TEXT");
        assert!(
            Job::from_json(&EXAMPLE.replace("study-42", &long[..255])).is_ok(),
            "255 bytes fit an AMQP short string"
        );
        assert!(Job::from_json(&EXAMPLE.replace("study-42", "étude-42 ✓")).is_ok(), "non-ASCII text is fine");
        let err = Job::from_json(&EXAMPLE.replace("\"study-42\"", "\"a\\u0000b\"")).unwrap_err();
        assert!(err.to_string().contains("correlation_id") && err.to_string().contains("U+0000"), "{err}");
    }

    #[test]
    fn limits_have_codes_and_are_checked_at_parse_time() {
        let limits = JobLimits { max_message_bytes: 4096, max_targets: 2, max_clicks: 3, max_slices: 50 };
        let code = |text: &str| Job::parse(text, &limits).unwrap_err().code();
        assert!(Job::parse(EXAMPLE, &limits).is_ok());
        // Size: checked before parsing, so even garbage of that size gets this code.
        assert_eq!(code(&"{".repeat(4097)), "JOB_LIMIT_MESSAGE");
        let mut job: Job = serde_json::from_str(EXAMPLE).unwrap();
        let click = job.targets[0].correction_clicks[0];
        job.targets[0].correction_clicks = vec![click; 4];
        assert_eq!(code(&serde_json::to_string(&job).unwrap()), "JOB_LIMIT_CLICKS");
        job.targets[0].correction_clicks.truncate(3);
        assert!(Job::parse(&serde_json::to_string(&job).unwrap(), &limits).is_ok());
        let mut second = job.targets[0].clone();
        second.label = "spleen".into();
        second.boundaries = Boundaries { top: 60, bottom: 62 };
        job.targets.push(second.clone());
        // 60..=111: 52 slices to encode over the two targets, though each alone has fewer than 50.
        assert_eq!(code(&serde_json::to_string(&job).unwrap()), "JOB_LIMIT_SLICES");
        job.targets[1].boundaries = Boundaries { top: 70, bottom: 72 };
        assert!(Job::parse(&serde_json::to_string(&job).unwrap(), &limits).is_ok(), "69..=111: 43 slices");
        second.label = "kidney".into();
        job.targets.push(second);
        assert_eq!(code(&serde_json::to_string(&job).unwrap()), "JOB_LIMIT_TARGETS");
        // Boundaries at the far end of usize do not wrap the count around.
        job.targets.truncate(1);
        job.targets[0].boundaries = Boundaries { top: usize::MAX, bottom: 0 };
        assert_eq!(job.validate_with(&limits).unwrap_err().code(), "JOB_LIMIT_SLICES");
        // The defaults bound every job too.
        assert_eq!(job.validate().unwrap_err().code(), "JOB_LIMIT_SLICES");
        assert_eq!(Job::from_json(&" ".repeat((1 << 20) + 1)).unwrap_err().code(), "JOB_LIMIT_MESSAGE");
    }
}
