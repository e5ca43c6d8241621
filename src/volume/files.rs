//! Opening input files safely, and the checks every reader applies to a volume's geometry.
//!
//! Only regular files are read. A FIFO would block `open` or `read` forever, a device such as
//! /dev/zero never ends, a socket is not data: each is refused naming the file, whatever symlink
//! led there. The file is opened without blocking (O_NONBLOCK: opening a FIFO for reading would
//! otherwise wait for a writer) and checked on the open descriptor, so the check and the read
//! see the same file.

use super::error::VolumeError;
use super::grid::Grid;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// The smallest slice side, in pixels, that the readers accept. Below it a slice is not an image
/// (a 1-pixel-wide row would resize to nothing before the encoder).
pub const MIN_PLANE_SIDE: usize = 8;
/// The largest ratio of a slice's longer side to its shorter one. Beyond it the shorter side
/// would shrink to a pixel or less on the model's low-resolution mask grid.
pub const MAX_PLANE_ASPECT: usize = 64;

fn unreadable(path: &Path, reason: impl Into<String>) -> VolumeError {
    VolumeError::Unreadable { path: path.to_path_buf(), reason: reason.into() }
}

/// Opens `path` for reading if it is a regular file (after following symlinks); anything else
/// (folder, FIFO, device, socket) is `VOLUME_UNREADABLE` naming the file.
pub fn open_regular(path: &Path) -> Result<File, VolumeError> {
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(|e| match e
        .kind()
    {
        std::io::ErrorKind::NotFound => VolumeError::NotFound { path: path.to_path_buf() },
        _ => unreadable(path, e.to_string()),
    })?;
    let kind = file.metadata().map_err(|e| unreadable(path, e.to_string()))?.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(unreadable(path, format!("{what}, not a regular file: only regular files are read")));
    }
    Ok(file)
}

/// The size of a regular file opened with [`open_regular`].
pub fn file_len(file: &File, path: &Path) -> Result<u64, VolumeError> {
    Ok(file.metadata().map_err(|e| unreadable(path, e.to_string()))?.len())
}

/// Refuses slices the model cannot take: a side under [`MIN_PLANE_SIDE`] (`VOLUME_TOO_SMALL`) or
/// one side more than [`MAX_PLANE_ASPECT`] times the other (`VOLUME_BAD_GEOMETRY`).
pub fn check_plane(grid: &Grid, path: &Path) -> Result<(), VolumeError> {
    let (rows, cols) = grid.plane_shape();
    if rows.min(cols) < MIN_PLANE_SIDE {
        return Err(VolumeError::TooSmall { path: path.to_path_buf(), rows, cols, min: MIN_PLANE_SIDE });
    }
    if rows.max(cols) > MAX_PLANE_ASPECT * rows.min(cols) {
        return Err(VolumeError::BadGeometry {
            path: path.to_path_buf(),
            reason: format!(
                "a slice of {rows} x {cols} pixels: one side is more than {MAX_PLANE_ASPECT} times the other"
            ),
        });
    }
    Ok(())
}

/// Refuses an affine that is not finite or whose voxel axes are degenerate (a zero axis, or axes
/// nearly parallel: `VOLUME_BAD_GEOMETRY`). The slice axis is chosen from the affine, so a zero
/// or NaN affine would silently change how the volume is sliced.
pub fn check_affine(affine: &[[f64; 4]; 4], path: &Path) -> Result<(), VolumeError> {
    let bad = |reason: String| VolumeError::BadGeometry { path: path.to_path_buf(), reason };
    if affine.iter().flatten().any(|v| !v.is_finite()) {
        return Err(bad(format!("the voxel-to-world affine is not finite: {affine:?}")));
    }
    let col = |c: usize| [affine[0][c], affine[1][c], affine[2][c]];
    let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let (a, b, c) = (col(0), col(1), col(2));
    let det =
        a[0] * (b[1] * c[2] - b[2] * c[1]) - b[0] * (a[1] * c[2] - a[2] * c[1]) + c[0] * (a[1] * b[2] - a[2] * b[1]);
    let scale = norm(a) * norm(b) * norm(c);
    // |det| / product of the axis lengths is 1 for perpendicular axes and 0 for a flat grid;
    // 1e-3 allows any real obliquity or shear.
    if scale == 0.0 || (det / scale).abs() < 1e-3 {
        return Err(bad(format!(
            "the voxel-to-world affine is singular (axes of zero length or parallel): {affine:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Coded;

    #[test]
    fn special_files_are_refused_and_regular_ones_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.nii");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert_eq!(e.code(), "VOLUME_UNREADABLE");
        assert!(e.to_string().contains("pipe.nii") && e.to_string().contains("FIFO"), "{e}");
        assert!(open_regular(Path::new("/dev/zero")).unwrap_err().to_string().contains("device"));
        assert_eq!(open_regular(dir.path()).unwrap_err().code(), "VOLUME_UNREADABLE");
        let f = dir.path().join("f");
        std::fs::write(&f, b"0123456789").unwrap();
        assert_eq!(file_len(&open_regular(&f).unwrap(), &f).unwrap(), 10);
        assert_eq!(open_regular(&dir.path().join("absent")).unwrap_err().code(), "VOLUME_NOT_FOUND");
    }

    #[test]
    fn degenerate_planes_and_affines_are_refused() {
        let p = Path::new("v.nii");
        assert_eq!(check_plane(&Grid::new([1, 2000, 3], 2), p).unwrap_err().code(), "VOLUME_TOO_SMALL");
        assert_eq!(check_plane(&Grid::new([8, 1000, 3], 2), p).unwrap_err().code(), "VOLUME_BAD_GEOMETRY");
        check_plane(&Grid::new([512, 512, 1], 2), p).unwrap();
        check_plane(&Grid::new([12, 10, 5], 2), p).unwrap();
        let eye = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.5, 0.0], [0.0, 0.0, 0.0, 1.0]];
        check_affine(&eye, p).unwrap();
        let mut zero = eye;
        zero[2][2] = 0.0;
        assert_eq!(check_affine(&zero, p).unwrap_err().code(), "VOLUME_BAD_GEOMETRY");
        let mut nan = eye;
        nan[0][3] = f64::NAN;
        assert_eq!(check_affine(&nan, p).unwrap_err().code(), "VOLUME_BAD_GEOMETRY");
        let mut parallel = eye;
        parallel[0][1] = 1.0;
        parallel[1][1] = 0.0;
        assert_eq!(check_affine(&parallel, p).unwrap_err().code(), "VOLUME_BAD_GEOMETRY");
    }
}
