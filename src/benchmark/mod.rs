//! The paper's benchmark for single-prompt 3D segmentation and editing (`radsam bench`), over
//! the project's one evaluation (crate::evaluate: the protocol on one object, click simulation):
//! - click_diagnosis.rs: the effect of single clicks on one slice's error (why clicks help or not);
//! - kind.rs: kinds of object (organ, vessel, bone, muscle, lesion) from class names;
//! - stats.rs: means with 95% confidence intervals;
//! - report.rs: the Markdown report (tables shaped like the paper's Tables 2, 3, 5, 6, per-class
//!   results and results by kind of object, speed and memory) and its plots (plot.rs).
//!
//! Every measurement is one CSV row (`CaseRow`), every (model, volume) one timing row
//! (`SpeedRow`); the report is computed from those files alone, so a resumed or merged run
//! reports the same as one uninterrupted run.

pub mod click_diagnosis;
pub mod kind;
pub mod plot;
pub mod report;
pub mod stats;

pub use crate::evaluate::{
    object_seed, run_object, ClickMode, DriftPoint, Level, Measurement, ObjectRun, PromptKind, PromptStyle,
    ProtocolSettings,
};

use crate::segment::Carry;
use serde::{Deserialize, Serialize};

/// One measurement: a model on one object, one protocol, after `clicks` clicks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRow {
    pub model: String,
    pub dataset: String,
    pub case: String,
    pub class_id: u16,
    pub class: String,
    /// "known" / "unknown" when the run names the known classes, else empty.
    pub known: String,
    pub level: Level,
    pub prompt: PromptKind,
    pub carry: Carry,
    pub oracle: bool,
    pub click_mode: ClickMode,
    pub clicks: usize,
    /// 3D Dice over the whole object, 0..1.
    pub dice: f64,
    pub slices: usize,
    pub voxels: u64,
}

/// One point of a drift curve: a model's Dice on one slice of one object, `offset` slices from the
/// prompted slice, along the volume-level box run without clicks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftRow {
    pub model: String,
    pub dataset: String,
    pub case: String,
    pub class: String,
    pub carry: Carry,
    pub offset: i64,
    pub dice: f64,
}

/// Speed and memory of one model on one volume (the whole protocol over its objects).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeedRow {
    pub model: String,
    pub device: String,
    pub case: String,
    pub objects: usize,
    /// Slices encoded (the union of the objects' slice ranges) and the seconds it took.
    pub encoded_slices: usize,
    pub encode_seconds: f64,
    /// Slices decoded over every protocol run, and the seconds of decoding.
    pub decoded_slices: usize,
    pub decode_seconds: f64,
    /// Seconds of the whole volume: reading excluded, encoding and every protocol run included.
    pub seconds: f64,
    /// Peak resident memory of the process while this model ran (MiB).
    pub peak_rss_mib: f64,
    /// On CUDA, the GPU memory the process holds after this volume (MiB, from nvidia-smi): libtorch's
    /// caching allocator keeps what it reached, so this is the peak so far in the process. Empty
    /// on CPU or without nvidia-smi.
    pub gpu_memory_mib: Option<f64>,
}
