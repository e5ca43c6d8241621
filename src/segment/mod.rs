//! The inference engine.
//! - slice_level.rs: one prompt per slice, each slice on its own;
//! - session.rs: a volume's slices between the object's boundaries, encoded once (batched);
//! - embedding_cache.rs: embeddings kept on disk by content, so no slice is encoded twice;
//! - propagate.rs: RadSAM's volume-level prompting (one prompt, the mask carried slice to slice
//!   up and down) and 3D editing with correction clicks;
//! - snapshot.rs: an editing session saved with a job's outputs, so a revision applies its new
//!   clicks alone;
//! - guard.rs: the propagation guards (leaks and collapsing slices, from the decoder's predicted
//!   IoU and secondary masks);
//! - negative_erase.rs: what a negative click takes out of its slice's mask prompt.

mod embedding_cache;
mod guard;
mod negative_erase;
mod propagate;
mod session;
mod slice_level;
mod snapshot;

pub use embedding_cache::{
    CacheConfigError, CacheStats, EmbeddingCache, RemoteTier, DEFAULT_MAX_MB as DEFAULT_EMBEDDING_CACHE_MB,
};
pub use guard::{GuardEvent, GuardReason, GuardSettings};
pub use propagate::{widened_box, Carry, CarryCue, PointStart, Segmenter, SliceState, Stop};
pub use session::{EncodeOptions, VolumeSession};
pub use slice_level::{predict_slices, MaskChoice, PredictError, SlicePrediction, SlicePredictions};
pub use snapshot::{Snapshot, SnapshotError};

use crate::prompt::PromptError;

/// Errors of volume-level segmentation, each with a stable code.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("boundary slice {slice} is outside the volume ({count} slices)")]
    BoundaryOutside { slice: usize, count: usize },
    #[error("slice {slice} is outside the boundaries {lo}..={hi}")]
    SliceOutsideBoundaries { slice: usize, lo: usize, hi: usize },
    #[error("invalid prompt on slice {slice}: {reason}")]
    Prompt { slice: usize, reason: PromptError },
    #[error("a correction click needs a segmentation to correct: run the initial prompt first")]
    NotStarted,
    #[error("the job's time budget ran out while {stage}")]
    DeadlinePassed { stage: String },
}

impl crate::error::Coded for SegmentError {
    fn code(&self) -> &'static str {
        match self {
            Self::BoundaryOutside { .. } => "PROMPT_BOUNDARY_OUTSIDE",
            Self::SliceOutsideBoundaries { .. } => "PROMPT_SLICE_OUTSIDE_BOUNDARIES",
            Self::Prompt { .. } => "PROMPT_INVALID",
            Self::NotStarted => "PROMPT_NOT_STARTED",
            Self::DeadlinePassed { .. } => "JOB_TIMEOUT",
        }
    }
}
