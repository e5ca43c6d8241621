//! The last decoded volume, kept by content (issue #20): a correction that follows its job on the
//! same worker reads the same series again, and decoding it (JPEG 2000 on the validation scan:
//! 0.7 s of a 3.5 s correction) is then skipped. One volume only, and only one small enough
//! (`max_bytes` of voxels), so an idle worker holds at most that much.
//!
//! The key is SHA-256 of the input's bytes (a file, or every file of a series folder with its
//! relative name, in name order) and the series asked for: a fresh download of the same series
//! under another scratch path hits, a changed byte misses. Inputs larger than the bound are
//! neither hashed nor kept.

use crate::volume::{ReadLimits, Volume, VolumeError};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// 512 MB of voxels: a 512 x 512 x 512 CT as f32.
pub const DEFAULT_VOLUME_MEMO_BYTES: u64 = 512 << 20;

pub struct VolumeMemo {
    max_bytes: u64,
    last: Mutex<Option<([u8; 32], Arc<Volume>)>>,
    hits: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for VolumeMemo {
    // Not the voxels.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeMemo").field("max_bytes", &self.max_bytes).field("hits", &self.hits()).finish()
    }
}

impl VolumeMemo {
    pub fn new(max_bytes: u64) -> Self {
        Self { max_bytes, last: Mutex::new(None), hits: Default::default() }
    }

    /// Volumes read from the memo so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The volume at `path` (as `Volume::open` reads it), from the memo when its bytes are the
    /// last volume's. Returns it and whether it came from the memo.
    pub fn open(
        &self,
        path: &Path,
        series_uid: Option<&str>,
        limits: &ReadLimits,
    ) -> Result<(Arc<Volume>, bool), VolumeError> {
        let key = match content_key(path, series_uid, self.max_bytes) {
            Ok(Some(key)) => key,
            // Too large to keep, or unreadable here: the reader decides (and names the problem).
            Ok(None) | Err(_) => return Ok((Arc::new(Volume::open(path, series_uid, limits)?), false)),
        };
        if let Some((k, v)) = self.last.lock().expect("memo lock").as_ref() {
            if *k == key {
                self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok((v.clone(), true));
            }
        }
        let volume = Arc::new(Volume::open(path, series_uid, limits)?);
        if (volume.data.len() as u64) * 4 <= self.max_bytes {
            *self.last.lock().expect("memo lock") = Some((key, volume.clone()));
        }
        Ok((volume, false))
    }
}

/// SHA-256 of the input's bytes and names; None when they exceed `max_bytes` (compressed inputs
/// decode to more, so the bound on the bytes read is a bound on the work, not on what is kept), or
/// when the input is anything but regular files and folders (a link inside a series, a FIFO, a
/// device): those are the reader's to judge, and hashing them could block or never end.
fn content_key(path: &Path, series_uid: Option<&str>, max_bytes: u64) -> std::io::Result<Option<[u8; 32]>> {
    let top = std::fs::metadata(path)?;
    let mut files: Vec<(PathBuf, u64)> = Vec::new();
    if top.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    files.push((entry.path(), entry.metadata()?.len()));
                } else {
                    return Ok(None);
                }
            }
        }
        files.sort();
    } else if top.is_file() {
        files.push((path.to_path_buf(), top.len()));
    } else {
        return Ok(None);
    }
    if files.iter().map(|(_, n)| n).sum::<u64>() > max_bytes {
        return Ok(None);
    }
    let mut h = Sha256::new();
    h.update(series_uid.unwrap_or("").as_bytes());
    for (f, len) in &files {
        let name = f.strip_prefix(path).unwrap_or(f).to_string_lossy();
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        let mut bytes = Vec::with_capacity(*len as usize);
        std::fs::File::open(f)?.take(len + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != *len {
            return Ok(None); // changing under us: not a key to trust
        }
        h.update(len.to_le_bytes());
        h.update(&bytes);
    }
    Ok(Some(h.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_volume(path: &Path, value: f32) {
        let affine = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        let v = Volume::synthetic(vec![value; 8 * 8 * 4], [8, 8, 4], [1.0, 1.0, 2.0], affine);
        crate::volume::write_nifti(path, &v).unwrap();
    }

    #[test]
    fn the_same_bytes_anywhere_hit_a_changed_byte_or_another_series_misses() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (dir.path().join("a.nii.gz"), dir.path().join("b.nii.gz"), dir.path().join("c.nii.gz"));
        write_volume(&a, 1.0);
        std::fs::copy(&a, &b).unwrap();
        write_volume(&c, 2.0);
        let memo = VolumeMemo::new(1 << 20);
        let limits = ReadLimits::default();
        let (first, hit) = memo.open(&a, None, &limits).unwrap();
        assert!(!hit);
        let (again, hit) = memo.open(&b, None, &limits).unwrap();
        assert!(hit && Arc::ptr_eq(&first, &again), "the same bytes under another path");
        let (other, hit) = memo.open(&c, None, &limits).unwrap();
        assert!(!hit && other.data[0] == 2.0);
        assert!(!memo.open(&c, Some("1.2.3"), &limits).unwrap().1, "another series asked for");
        assert_eq!(memo.hits(), 1);
        // Over the bound: read, never kept.
        let small = VolumeMemo::new(16);
        assert!(!small.open(&a, None, &limits).unwrap().1 && !small.open(&a, None, &limits).unwrap().1);
        // A link to a device and a FIFO are never read here (it would not end, or block): the
        // reader refuses them, as without the memo; a folder holding a link is not kept either.
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.nii")).unwrap();
        assert!(memo.open(&dir.path().join("zero.nii"), None, &limits).is_err());
        let fifo = dir.path().join("fifo.nii");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        assert!(memo.open(&fifo, None, &limits).is_err());
        let series = dir.path().join("series");
        std::fs::create_dir(&series).unwrap();
        std::os::unix::fs::symlink(&a, series.join("a.nii.gz")).unwrap();
        assert_eq!(content_key(&series, None, 1 << 20).unwrap(), None);
        // A missing input is the reader's error, as without the memo.
        assert_eq!(
            crate::error::Coded::code(&memo.open(&dir.path().join("none.nii.gz"), None, &limits).unwrap_err()),
            "VOLUME_NOT_FOUND"
        );
    }
}
