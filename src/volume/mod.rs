//! Volumes in, masks out. A [`Volume`] holds HU voxels on the input's own grid; [`preprocess`]
//! turns slices into the model's input and maps the model's masks back onto the slice grid.
//!
//! Convention: voxel data are stored x-fastest (NIfTI order). A slice at index k of the last axis
//! is a row-major image of `ny` rows and `nx` columns: x = column, y = row, as prompts give them.

mod nifti_io;
pub mod preprocess;

pub use nifti_io::{read_nifti, write_mask_nifti, VolumeError};

use tch::{Kind, Tensor};

#[derive(Debug, Clone)]
pub struct Volume {
    /// Voxel values (HU for CT), x fastest, then y, then z.
    pub data: Vec<f32>,
    /// (nx, ny, nz)
    pub dims: [usize; 3],
    /// Voxel size in mm along x, y, z.
    pub spacing: [f64; 3],
    /// The NIfTI header the volume came from, kept so that masks are written on the same grid.
    pub header: nifti::NiftiHeader,
}

impl Volume {
    pub fn num_slices(&self) -> usize {
        self.dims[2]
    }

    /// Slice k as a (ny, nx) float tensor (rows = y, columns = x).
    pub fn slice(&self, k: usize) -> Tensor {
        let [nx, ny, _] = self.dims;
        let plane = &self.data[k * nx * ny..(k + 1) * nx * ny];
        Tensor::from_slice(plane).view([ny as i64, nx as i64]).to_kind(Kind::Float)
    }

    /// Slices `ks` stacked as (len, ny, nx).
    pub fn slices(&self, ks: &[usize]) -> Tensor {
        let planes: Vec<Tensor> = ks.iter().map(|&k| self.slice(k)).collect();
        Tensor::stack(&planes, 0)
    }
}
