//! Volumes in, masks out: NIfTI-1 and DICOM CT series read into one [`Volume`] type (HU voxels on
//! the input's own grid, its spacing and RAS affine), NIfTI masks and DICOM SEG written back on
//! that grid. (The model's input transform is the model's: crate::model::preprocess.) See grid.rs
//! for the slicing convention.

mod dicom_guard;
mod dicom_seg;
mod dicom_series;
mod error;
mod files;
mod grid;
mod mask_file;
mod nifti_io;
pub mod phantom;
mod resample;

pub use dicom_seg::{write_dicom_seg, SegMeta, SegUids, SegmentMask};
pub use dicom_series::{read_dicom_series, DicomSeries};
pub use error::{ReadLimits, VolumeError, DEFAULT_MAX_VOLUME_BYTES, DEFAULT_MAX_VOXELS};
pub use files::{MAX_PLANE_ASPECT, MIN_PLANE_SIDE};
pub use grid::{superior_inferior_axis, Grid};
pub use mask_file::{read_mask, MaskFileError};
pub use nifti_io::{read_nifti, read_nifti_with_limits, write_mask_nifti, write_nifti};
pub use resample::{invert_affine, resample_nearest};

use std::path::Path;
use tch::{Kind, Tensor};

/// Where a volume came from, kept so outputs can be written in kind.
#[derive(Debug, Clone)]
pub enum Source {
    /// The NIfTI header, with the on-disk data type and scaling of the voxels.
    Nifti(Box<nifti::NiftiHeader>),
    /// The DICOM series: identifiers and per-slice instances for DICOM SEG references.
    Dicom(Box<DicomSeries>),
    /// Built in memory (phantoms, tests).
    Synthetic,
}

#[derive(Debug, Clone)]
pub struct Volume {
    /// Voxel values (HU for CT), x-fastest (see grid.rs).
    pub data: Vec<f32>,
    pub grid: Grid,
    /// Voxel size in mm along i, j, k.
    pub spacing: [f64; 3],
    /// Voxel (i, j, k, 1) to RAS+ world millimetres (the NIfTI convention).
    pub affine: [[f64; 4]; 4],
    pub source: Source,
}

impl Volume {
    /// A volume built in memory; the slice axis follows the affine.
    pub fn synthetic(data: Vec<f32>, dims: [usize; 3], spacing: [f64; 3], affine: [[f64; 4]; 4]) -> Self {
        assert_eq!(data.len(), dims.iter().product::<usize>(), "data length");
        Self {
            data,
            grid: Grid::new(dims, superior_inferior_axis(&affine)),
            spacing,
            affine,
            source: Source::Synthetic,
        }
    }

    /// Reads a NIfTI file (.nii, .nii.gz) or a folder of DICOM files (one CT series; with several
    /// series in the folder, `series_uid` chooses one).
    pub fn open(path: &Path, series_uid: Option<&str>, limits: &ReadLimits) -> Result<Self, VolumeError> {
        if path.is_dir() {
            read_dicom_series(path, series_uid, limits)
        } else {
            read_nifti_with_limits(path, limits)
        }
    }

    pub fn dims(&self) -> [usize; 3] {
        self.grid.dims
    }

    pub fn num_slices(&self) -> usize {
        self.grid.num_slices()
    }

    /// Volume of one voxel in millilitres.
    pub fn voxel_ml(&self) -> f64 {
        self.spacing.iter().product::<f64>() / 1000.0
    }

    /// Slice `s` as a (rows, cols) float tensor.
    pub fn slice(&self, s: usize) -> Tensor {
        let (rows, cols) = self.grid.plane_shape();
        Tensor::from_slice(&self.grid.extract(&self.data, s)).view([rows as i64, cols as i64]).to_kind(Kind::Float)
    }

    /// Slices `ss` stacked as (len, rows, cols).
    pub fn slices(&self, ss: &[usize]) -> Tensor {
        let planes: Vec<Tensor> = ss.iter().map(|&s| self.slice(s)).collect();
        Tensor::stack(&planes, 0)
    }
}
