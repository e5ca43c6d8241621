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
    #[error("{path}: {voxels} voxels exceed the limit of {limit} (RADSAM_MAX_VOXELS or --max-voxels, if this volume is genuine)")]
    TooLarge { path: PathBuf, voxels: u64, limit: u64 },
    /// `what` names the data and the setting of its limit.
    #[error("{path}: {bytes} bytes of {what} exceed the limit of {limit}")]
    TooManyBytes { path: PathBuf, what: &'static str, bytes: u64, limit: u64 },
    #[error("{path}: a slice of {rows} x {cols} pixels exceeds the limit of {limit} pixels per slice")]
    TooLargeSlice { path: PathBuf, rows: u64, cols: u64, limit: u64 },
    #[error(
        "{path}: a slice of {rows} x {cols} pixels is too small to segment (each side needs at least {min} pixels)"
    )]
    TooSmall { path: PathBuf, rows: usize, cols: usize, min: usize },
    #[error("{path}: bad geometry: {reason}")]
    BadGeometry { path: PathBuf, reason: String },
    #[error("{path}: {count} of {total} voxels are not finite (NaN or infinite) after rescaling")]
    NonFinite { path: PathBuf, count: u64, total: u64 },
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

impl crate::error::Coded for VolumeError {
    /// A stable, machine-readable code for this kind of error.
    fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "VOLUME_NOT_FOUND",
            Self::Truncated { .. } => "VOLUME_TRUNCATED",
            Self::Unreadable { .. } => "VOLUME_UNREADABLE",
            Self::Dimensions { .. } => "VOLUME_DIMENSIONS",
            Self::TooLarge { .. } => "VOLUME_TOO_LARGE",
            Self::TooManyBytes { .. } | Self::TooLargeSlice { .. } => "VOLUME_TOO_LARGE",
            Self::TooSmall { .. } => "VOLUME_TOO_SMALL",
            Self::BadGeometry { .. } => "VOLUME_BAD_GEOMETRY",
            Self::NonFinite { .. } => "VOLUME_NON_FINITE",
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

/// Limits checked before anything large is allocated (README, Configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Voxels of one volume (held as f32: 4 bytes each). `RADSAM_MAX_VOXELS`.
    pub max_voxels: u64,
    /// Bytes read for one volume: a NIfTI file's data once decompressed (checked against the
    /// header before inflating, and the inflate stream is cut there), a DICOM folder's files in
    /// total. `RADSAM_MAX_VOLUME_BYTES`.
    pub max_bytes: u64,
}

/// 2^28 voxels: 512 x 512 x 1024, 1 GiB as f32 (a whole-body thin-slice CT fits).
pub const DEFAULT_MAX_VOXELS: u64 = 1 << 28;
/// 2 GiB of data bytes.
pub const DEFAULT_MAX_VOLUME_BYTES: u64 = 2 << 30;

impl ReadLimits {
    /// The built-in limits, ignoring the environment.
    pub const BUILT_IN: Self = Self { max_voxels: DEFAULT_MAX_VOXELS, max_bytes: DEFAULT_MAX_VOLUME_BYTES };
}

impl Default for ReadLimits {
    /// The built-in limits, each overridden by its variable when set (`RADSAM_MAX_VOXELS`,
    /// `RADSAM_MAX_VOLUME_BYTES`, positive integers). A value that does not parse is reported on
    /// stderr and the built-in limit is kept: a typo must not lift a limit.
    fn default() -> Self {
        let var = |name: &str, default: u64| match std::env::var(name) {
            Ok(v) if !v.trim().is_empty() => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("warning: {name}={v:?} is not a positive integer; using {default}");
                    default
                }
            },
            _ => default,
        };
        Self {
            max_voxels: var("RADSAM_MAX_VOXELS", DEFAULT_MAX_VOXELS),
            max_bytes: var("RADSAM_MAX_VOLUME_BYTES", DEFAULT_MAX_VOLUME_BYTES),
        }
    }
}
