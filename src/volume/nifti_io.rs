//! NIfTI-1 reading and writing (.nii and .nii.gz) with the `nifti` crate.
//!
//! Reading is careful about what it allocates: only a regular file is opened; the header is read
//! and checked first (dimensions, voxel and byte limits, spacing, affine, slice shape), then
//! exactly the bytes the header announces are decompressed, a chunk at a time into the voxels, so
//! a truncated gzip, a gzip bomb, a header that promises more data than the file holds, or an
//! absurd header is a typed error before any large allocation. Scaling (scl_slope / scl_inter) is
//! applied, so CT voxels come out in HU; a voxel that is not finite afterwards (NaN data or
//! slope, infinities) refuses the volume (`VOLUME_NON_FINITE`). Writing keeps the input's header (grid, affine, data type), so a volume
//! read and written again is the same file content voxel for voxel.

use super::error::{ReadLimits, VolumeError};
use super::files::{check_affine, check_plane, open_regular};
use super::{superior_inferior_axis, Grid, Source, Volume};
use flate2::read::MultiGzDecoder;
use nifti::{NiftiHeader, NiftiType};
use std::io::{Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const HEADER_BYTES: usize = 348;

pub fn read_nifti(path: &Path) -> Result<Volume, VolumeError> {
    read_nifti_with_limits(path, &ReadLimits::default())
}

fn io_error(path: &Path, e: std::io::Error) -> VolumeError {
    let path = path.to_path_buf();
    match e.kind() {
        std::io::ErrorKind::NotFound => VolumeError::NotFound { path },
        std::io::ErrorKind::UnexpectedEof => VolumeError::Truncated { path, reason: e.to_string() },
        _ => VolumeError::Unreadable { path, reason: e.to_string() },
    }
}

/// Reads up to `n` bytes; fewer only at a clean end of stream.
fn read_up_to(reader: &mut impl Read, n: usize, path: &Path) -> Result<Vec<u8>, VolumeError> {
    let mut buf = Vec::new();
    reader.take(n as u64).read_to_end(&mut buf).map_err(|e| io_error(path, e))?;
    Ok(buf)
}

fn bytes_per_voxel(t: NiftiType) -> Option<usize> {
    Some(match t {
        NiftiType::Uint8 | NiftiType::Int8 => 1,
        NiftiType::Int16 | NiftiType::Uint16 => 2,
        NiftiType::Int32 | NiftiType::Uint32 | NiftiType::Float32 => 4,
        NiftiType::Int64 | NiftiType::Uint64 | NiftiType::Float64 => 8,
        _ => return None,
    })
}

pub fn read_nifti_with_limits(path: &Path, limits: &ReadLimits) -> Result<Volume, VolumeError> {
    // Only a regular file: a FIFO or a device (/dev/zero behind a symlink) is refused, not read.
    let mut file = open_regular(path)?;
    let mut magic = [0u8; 2];
    let gz = file.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    file.seek(SeekFrom::Start(0)).map_err(|e| io_error(path, e))?;
    let mut reader: Box<dyn Read> = if gz {
        Box::new(MultiGzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let unreadable = |reason: String| VolumeError::Unreadable { path: path.to_path_buf(), reason };

    let head = read_up_to(&mut reader, HEADER_BYTES, path)?;
    if head.len() < HEADER_BYTES {
        return Err(VolumeError::Truncated {
            path: path.to_path_buf(),
            reason: format!("{} of the 348 header bytes", head.len()),
        });
    }
    let header = NiftiHeader::from_reader(Cursor::new(&head)).map_err(|e| unreadable(e.to_string()))?;
    if &header.magic[..3] != b"n+1" {
        return Err(unreadable("not a single-file NIfTI-1 (magic is not n+1)".into()));
    }
    // Everything the header promises is checked before any data is inflated: voxels and
    // decompressed bytes against the limits (a 500 KB .nii.gz can announce gigabytes), spacing,
    // the affine and the slice shape.
    let grid_dims = check_dims(&header, path)?;
    let voxels: u64 = grid_dims.iter().map(|&d| d as u64).product();
    if voxels > limits.max_voxels {
        return Err(VolumeError::TooLarge { path: path.to_path_buf(), voxels, limit: limits.max_voxels });
    }
    let spacing = [header.pixdim[1] as f64, header.pixdim[2] as f64, header.pixdim[3] as f64];
    if spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(VolumeError::BadSpacing { path: path.to_path_buf(), spacing: spacing.to_vec() });
    }
    let datatype = header.data_type().map_err(|e| unreadable(e.to_string()))?;
    let bpv = bytes_per_voxel(datatype)
        .ok_or_else(|| unreadable(format!("data type {datatype:?} is not a scalar image type")))?;
    let needed = voxels * bpv as u64;
    if needed > limits.max_bytes {
        return Err(VolumeError::TooManyBytes {
            path: path.to_path_buf(),
            what: "voxel data (limit: RADSAM_MAX_VOLUME_BYTES)",
            bytes: needed,
            limit: limits.max_bytes,
        });
    }
    let affine = header_affine(&header);
    check_affine(&affine, path)?;
    let grid = Grid::new(grid_dims, superior_inferior_axis(&affine));
    check_plane(&grid, path)?;
    let vox_offset = header.vox_offset as usize;
    if !(header.vox_offset.is_finite() && vox_offset >= HEADER_BYTES && vox_offset <= 1 << 24) {
        return Err(unreadable(format!("vox_offset {} is invalid", header.vox_offset)));
    }
    let skipped = read_up_to(&mut reader, vox_offset - HEADER_BYTES, path)?;
    if skipped.len() < vox_offset - HEADER_BYTES {
        return Err(VolumeError::Dimensions {
            path: path.to_path_buf(),
            reason: format!("the file ends at byte {} of the header's extensions", HEADER_BYTES + skipped.len()),
        });
    }
    // The data, inflated a chunk at a time straight into the f32 voxels: never more than the
    // announced bytes are inflated, and no whole copy of the raw bytes is held beside the voxels.
    let mut data: Vec<f32> = Vec::with_capacity(voxels as usize);
    let (slope, inter) = (header.scl_slope, header.scl_inter);
    let big_endian = header.endianness == nifti::Endianness::Big;
    let chunk = (1 << 20) / bpv * bpv;
    let mut read = 0u64;
    while read < needed {
        let raw = read_up_to(&mut reader, chunk.min((needed - read) as usize), path)?;
        if raw.is_empty() {
            return Err(VolumeError::Dimensions {
                path: path.to_path_buf(),
                reason: format!(
                    "the header announces {grid_dims:?} voxels of {datatype:?} ({needed} bytes), the file holds {read}"
                ),
            });
        }
        read += raw.len() as u64;
        convert_voxels(&raw, datatype, big_endian, slope, inter, &mut data);
    }
    // Drain what follows (normally nothing) so that a gzip stream cut in its trailer, after the
    // data, still fails its length/CRC check. Bounded: trailing garbage is not read forever.
    if gz {
        std::io::copy(&mut reader.take(16 << 20), &mut std::io::sink()).map_err(|e| io_error(path, e))?;
    }
    let non_finite = data.iter().filter(|v| !v.is_finite()).count() as u64;
    if non_finite > 0 {
        return Err(VolumeError::NonFinite { path: path.to_path_buf(), count: non_finite, total: voxels });
    }
    Ok(Volume { data, grid, spacing, affine, source: Source::Nifti(Box::new(header)) })
}

/// Appends the voxels of `raw` (whole voxels of `datatype`, x-fastest as stored) to `out` as f32
/// with the NIfTI scaling applied exactly as the `nifti` crate does it (cast to f32, then
/// `v * scl_slope + scl_inter` in f32; a slope of 0 means no scaling).
fn convert_voxels(raw: &[u8], datatype: NiftiType, big_endian: bool, slope: f32, inter: f32, out: &mut Vec<f32>) {
    let scale = |v: f32| if slope == 0.0 { v } else { v * slope + inter };
    macro_rules! each {
        ($t:ty) => {{
            const N: usize = std::mem::size_of::<$t>();
            out.extend(raw.chunks_exact(N).map(|b| {
                let b: [u8; N] = b.try_into().expect("chunk of N bytes");
                scale((if big_endian { <$t>::from_be_bytes(b) } else { <$t>::from_le_bytes(b) }) as f32)
            }))
        }};
    }
    match datatype {
        NiftiType::Uint8 => each!(u8),
        NiftiType::Int8 => each!(i8),
        NiftiType::Uint16 => each!(u16),
        NiftiType::Int16 => each!(i16),
        NiftiType::Uint32 => each!(u32),
        NiftiType::Int32 => each!(i32),
        NiftiType::Uint64 => each!(u64),
        NiftiType::Int64 => each!(i64),
        NiftiType::Float32 => each!(f32),
        NiftiType::Float64 => each!(f64),
        other => unreachable!("{other:?} has no bytes_per_voxel"),
    }
}

fn check_dims(header: &NiftiHeader, path: &Path) -> Result<[usize; 3], VolumeError> {
    let d = header.dim;
    let bad = |reason: String| VolumeError::Dimensions { path: path.to_path_buf(), reason };
    let rank = d[0] as usize;
    if !(3..=7).contains(&rank) {
        return Err(bad(format!("dim[0] = {} (a 3D volume needs 3, or 4..7 with extra dimensions of size 1)", d[0])));
    }
    if d[1..=3].iter().any(|&v| v == 0) {
        return Err(bad(format!("zero-sized dimension in {:?}", &d[1..=3])));
    }
    if d[4..=rank].iter().any(|&v| v > 1) {
        return Err(bad(format!("{rank}D data with dimensions {:?}: expected one 3D volume", &d[1..=rank])));
    }
    Ok([d[1] as usize, d[2] as usize, d[3] as usize])
}

/// The voxel-to-RAS affine: sform when set, else qform, else the spacing alone (as nibabel does).
pub(super) fn header_affine(h: &NiftiHeader) -> [[f64; 4]; 4] {
    let f = |v: f32| v as f64;
    if h.sform_code > 0 {
        return [
            [f(h.srow_x[0]), f(h.srow_x[1]), f(h.srow_x[2]), f(h.srow_x[3])],
            [f(h.srow_y[0]), f(h.srow_y[1]), f(h.srow_y[2]), f(h.srow_y[3])],
            [f(h.srow_z[0]), f(h.srow_z[1]), f(h.srow_z[2]), f(h.srow_z[3])],
            [0.0, 0.0, 0.0, 1.0],
        ];
    }
    let (dx, dy, dz) = (f(h.pixdim[1]), f(h.pixdim[2]), f(h.pixdim[3]));
    if h.qform_code > 0 {
        let (b, c, d) = (f(h.quatern_b), f(h.quatern_c), f(h.quatern_d));
        let a = (1.0 - (b * b + c * c + d * d)).max(0.0).sqrt();
        let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
        let r = [
            [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
            [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
            [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
        ];
        let s = [dx, dy, dz * qfac];
        let o = [f(h.quatern_x), f(h.quatern_y), f(h.quatern_z)];
        let mut m = [[0.0; 4]; 4];
        for i in 0..3 {
            for j in 0..3 {
                m[i][j] = r[i][j] * s[j];
            }
            m[i][3] = o[i];
        }
        m[3][3] = 1.0;
        return m;
    }
    [[dx, 0.0, 0.0, 0.0], [0.0, dy, 0.0, 0.0], [0.0, 0.0, dz, 0.0], [0.0, 0.0, 0.0, 1.0]]
}

/// A NIfTI header for `volume`'s grid: the input's own header for NIfTI input, otherwise one
/// built from the affine (sform, scanner coordinates, mm).
fn grid_header(volume: &Volume) -> NiftiHeader {
    if let Source::Nifti(h) = &volume.source {
        return (**h).clone();
    }
    let mut h = NiftiHeader::default();
    let [nx, ny, nz] = volume.grid.dims;
    h.dim = [3, nx as u16, ny as u16, nz as u16, 1, 1, 1, 1];
    h.pixdim = [1.0, volume.spacing[0] as f32, volume.spacing[1] as f32, volume.spacing[2] as f32, 0.0, 0.0, 0.0, 0.0];
    let a = &volume.affine;
    h.srow_x = [a[0][0] as f32, a[0][1] as f32, a[0][2] as f32, a[0][3] as f32];
    h.srow_y = [a[1][0] as f32, a[1][1] as f32, a[1][2] as f32, a[1][3] as f32];
    h.srow_z = [a[2][0] as f32, a[2][1] as f32, a[2][2] as f32, a[2][3] as f32];
    h.sform_code = 1;
    h.qform_code = 0;
    h.xyzt_units = 2; // millimetres
    h
}

/// Writes to a temporary name beside `path`, then renames: never a half-written file at `path`.
fn write_atomically<T: nifti::DataElement + bytemuck::Pod>(
    path: &Path,
    header: &NiftiHeader,
    array: &ndarray::Array3<T>,
) -> Result<(), VolumeError> {
    let unwritable = |reason: String| VolumeError::Unwritable { path: path.to_path_buf(), reason };
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| unwritable("no file name".into()))?;
    // Same extension as the target (the writer picks compression from it), hidden name.
    let tmp: PathBuf = path.with_file_name(format!(".partial-{}-{name}", std::process::id()));
    let result = nifti::writer::WriterOptions::new(&tmp)
        .reference_header(header)
        .write_nifti(array)
        .map_err(|e| unwritable(e.to_string()));
    let result = result.and_then(|_| std::fs::rename(&tmp, path).map_err(|e| unwritable(e.to_string())));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn to_array<T: Clone>(values: Vec<T>, dims: [usize; 3]) -> ndarray::Array3<T> {
    ndarray::Array3::from_shape_vec((dims[2], dims[1], dims[0]), values).expect("dims match data").reversed_axes()
}

/// Writes a uint8 mask (x-fastest, on `reference`'s grid) with the reference's grid and affine.
pub fn write_mask_nifti(path: &Path, reference: &Volume, mask: &[u8]) -> Result<(), VolumeError> {
    if mask.len() != reference.grid.len() {
        return Err(VolumeError::Unwritable {
            path: path.to_path_buf(),
            reason: format!("mask has {} voxels, the volume {}", mask.len(), reference.grid.len()),
        });
    }
    let mut header = grid_header(reference);
    header.scl_slope = 1.0;
    header.scl_inter = 0.0;
    header.datatype = NiftiType::Uint8 as i16;
    header.bitpix = 8;
    write_atomically(path, &header, &to_array(mask.to_vec(), reference.grid.dims))
}

/// Writes a volume back as NIfTI in its original data type and scaling (NIfTI input), or as
/// float32 (other sources).
pub fn write_nifti(path: &Path, volume: &Volume) -> Result<(), VolumeError> {
    let header = grid_header(volume);
    let dims = volume.grid.dims;
    let (slope, inter) = (header.scl_slope as f64, header.scl_inter as f64);
    let scaled = slope != 0.0 && slope.is_finite() && inter.is_finite() && !(slope == 1.0 && inter == 0.0);
    // Inverse of the scaling applied on read; integers are rounded back exactly.
    let stored = |v: f32| if scaled { (v as f64 - inter) / slope } else { v as f64 };
    macro_rules! write_as {
        ($t:ty) => {
            write_atomically(
                path,
                &header,
                &to_array(volume.data.iter().map(|&v| stored(v).round() as $t).collect::<Vec<$t>>(), dims),
            )
        };
    }
    match (&volume.source, header.data_type()) {
        (Source::Nifti(_), Ok(NiftiType::Uint8)) => write_as!(u8),
        (Source::Nifti(_), Ok(NiftiType::Int8)) => write_as!(i8),
        (Source::Nifti(_), Ok(NiftiType::Int16)) => write_as!(i16),
        (Source::Nifti(_), Ok(NiftiType::Uint16)) => write_as!(u16),
        (Source::Nifti(_), Ok(NiftiType::Int32)) => write_as!(i32),
        (Source::Nifti(_), Ok(NiftiType::Uint32)) => write_as!(u32),
        (Source::Nifti(_), Ok(NiftiType::Int64)) => write_as!(i64),
        (Source::Nifti(_), Ok(NiftiType::Uint64)) => write_as!(u64),
        (Source::Nifti(_), Ok(NiftiType::Float64)) => write_atomically(
            path,
            &header,
            &to_array(volume.data.iter().map(|&v| stored(v)).collect::<Vec<f64>>(), dims),
        ),
        _ => {
            let mut header = header;
            header.datatype = NiftiType::Float32 as i16;
            header.bitpix = 32;
            header.scl_slope = 1.0;
            header.scl_inter = 0.0;
            let values: Vec<f32> = volume.data.iter().map(|&v| stored(v) as f32).collect();
            write_atomically(path, &header, &to_array(values, dims))
        }
    }
}
