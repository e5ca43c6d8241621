//! Errors of volume input and output. Each has a stable code (`code()`), which the job service
//! records and clients can match on; the message says what was wrong and where.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{path}: not found")]
    NotFound { path: PathBuf },
    #[error("{path}: the file ends early ({reason}): truncated download or copy?")]
    Truncated { path: PathBuf, reason: String },
    #[error("{path}: not a readable NIfTI-1 or DICOM file ({reason})")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: header and data disagree: {reason}")]
    Dimensions { path: PathBuf, reason: String },
    #[error("{path}: {voxels} voxels exceed the limit of {limit} (set a higher voxel limit if this volume is genuine)")]
    TooLarge { path: PathBuf, voxels: u64, limit: u64 },
    #[error("{path}: voxel spacing {spacing:?} is not positive and finite")]
    BadSpacing { path: PathBuf, spacing: Vec<f64> },
    #[error("{path}: modality is {modality}, not CT")]
    NotCt { path: PathBuf, modality: String },
    #[error("{path}: no DICOM files found")]
    EmptyFolder { path: PathBuf },
    #[error("{path}: holds {} series, choose one by SeriesInstanceUID: {}", .series.len(), .series.join("; "))]
    MultipleSeries { path: PathBuf, series: Vec<String> },
    #[error("{path}: no series with SeriesInstanceUID {uid}; present: {}", .present.join("; "))]
    SeriesNotFound { path: PathBuf, uid: String, present: Vec<String> },
    #[error("{path}: slices missing or unevenly spaced: {reason}")]
    SliceGaps { path: PathBuf, reason: String },
    #[error("{path}: inconsistent series: {reason}")]
    InconsistentSeries { path: PathBuf, reason: String },
    #[error("{path}: transfer syntax {uid} ({name}) cannot be decoded by the built-in decoders")]
    UnsupportedTransferSyntax { path: PathBuf, uid: String, name: String },
    #[error("{path}: cannot write ({reason})")]
    Unwritable { path: PathBuf, reason: String },
}

impl VolumeError {
    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "VOLUME_NOT_FOUND",
            Self::Truncated { .. } => "VOLUME_TRUNCATED",
            Self::Unreadable { .. } => "VOLUME_UNREADABLE",
            Self::Dimensions { .. } => "VOLUME_DIMENSIONS",
            Self::TooLarge { .. } => "VOLUME_TOO_LARGE",
            Self::BadSpacing { .. } => "VOLUME_BAD_SPACING",
            Self::NotCt { .. } => "VOLUME_NOT_CT",
            Self::EmptyFolder { .. } => "VOLUME_EMPTY_FOLDER",
            Self::MultipleSeries { .. } => "VOLUME_MULTIPLE_SERIES",
            Self::SeriesNotFound { .. } => "VOLUME_SERIES_NOT_FOUND",
            Self::SliceGaps { .. } => "VOLUME_SLICE_GAPS",
            Self::InconsistentSeries { .. } => "VOLUME_INCONSISTENT_SERIES",
            Self::UnsupportedTransferSyntax { .. } => "VOLUME_UNSUPPORTED_TRANSFER_SYNTAX",
            Self::Unwritable { .. } => "VOLUME_UNWRITABLE",
        }
    }
}

/// Limits checked before anything large is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    pub max_voxels: u64,
}

impl Default for ReadLimits {
    /// 1024 x 1024 x 1024 voxels (4 GiB as f32): beyond any clinical CT, far below absurd headers.
    fn default() -> Self {
        Self { max_voxels: 1 << 30 }
    }
}
