//! NIfTI-1 reading and mask writing (.nii and .nii.gz) with the `nifti` crate. Scaling
//! (scl_slope / scl_inter) is applied on read, so CT voxels come out in HU.

use super::Volume;
use nifti::{IntoNdArray, NiftiObject, NiftiVolume, ReaderOptions};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{path}: cannot read NIfTI ({reason})")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: expected a 3D volume, found dimensions {dims:?}")]
    NotThreeD { path: PathBuf, dims: Vec<u16> },
    #[error("{path}: cannot write NIfTI ({reason})")]
    Unwritable { path: PathBuf, reason: String },
}

pub fn read_nifti(path: &Path) -> Result<Volume, VolumeError> {
    let unreadable = |e: nifti::NiftiError| VolumeError::Unreadable { path: path.to_path_buf(), reason: e.to_string() };
    let obj = ReaderOptions::new().read_file(path).map_err(unreadable)?;
    let header = obj.header().clone();
    let vol = obj.into_volume();
    let dims: Vec<u16> = vol.dim().to_vec();
    let dims3 = match dims.as_slice() {
        [x, y, z] => [*x as usize, *y as usize, *z as usize],
        [x, y, z, 1] => [*x as usize, *y as usize, *z as usize],
        _ => return Err(VolumeError::NotThreeD { path: path.to_path_buf(), dims }),
    };
    let array = vol.into_ndarray::<f32>().map_err(unreadable)?;
    // Logical index order is [x, y, z]; reversing the axes and walking in logical order gives
    // x-fastest storage.
    let data: Vec<f32> = array.reversed_axes().iter().copied().collect();
    let p = header.pixdim;
    let spacing = [p[1] as f64, p[2] as f64, p[3] as f64];
    Ok(Volume { data, dims: dims3, spacing, header })
}

/// Writes a uint8 mask (x-fastest, same dims as `reference`) with the reference's header, so the
/// mask lies on the input's grid with the input's affine. Writes to a temporary name first and
/// renames, so a failure never leaves a half-written file at `path`.
pub fn write_mask_nifti(path: &Path, reference: &Volume, mask: &[u8]) -> Result<(), VolumeError> {
    let unwritable = |reason: String| VolumeError::Unwritable { path: path.to_path_buf(), reason };
    let [nx, ny, nz] = reference.dims;
    if mask.len() != nx * ny * nz {
        return Err(unwritable(format!("mask has {} voxels, the volume {}", mask.len(), nx * ny * nz)));
    }
    let array = ndarray::Array3::from_shape_vec((nz, ny, nx), mask.to_vec()).map_err(|e| unwritable(e.to_string()))?.reversed_axes();
    let mut header = reference.header.clone();
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("mask.nii.gz");
    let tmp = path.with_file_name(format!(".{file_name}.partial{}", if file_name.ends_with(".gz") { ".nii.gz" } else { ".nii" }));
    nifti::writer::WriterOptions::new(&tmp).reference_header(&header).write_nifti(&array).map_err(|e| unwritable(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| unwritable(e.to_string()))
}
