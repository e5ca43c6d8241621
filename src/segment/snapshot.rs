//! A volume-level editing session saved to a file, so that a revision resumes it (issue #20).
//!
//! A correction resubmitted by a dashboard is the parent job plus one more click. Replaying the
//! parent's prompt and every earlier click costs a whole propagation per click, most of a
//! correction's time once the embeddings come from the cache. What a segmenter knows after its
//! prompt and clicks is small: per slice, the carried low-resolution binary mask, the mask on the
//! slice grid, the four predicted IoUs and the mask chosen; plus its anchors, clicks, stops and
//! guard events. Saved with the job's outputs, it lets the next revision apply its new clicks
//! alone. Propagation is deterministic, so the result is the replay's, bit for bit (tested).
//!
//! The file: gzip of a magic line, a JSON header and the bit-packed planes. gzip's CRC and the
//! strict lengths below refuse a corrupt or truncated file; the caller then replays (a saved
//! session only ever saves time). The header carries the caller's fingerprint of everything the
//! session depends on besides the clicks (model, volume, prompt, boundaries, carry, guards), and
//! the clicks applied, in order: a revision resumes only a session whose fingerprint is its own
//! and whose clicks begin its own.

use super::guard::GuardEvent;
use super::propagate::Stop;
use crate::prompt::{BoxPrompt, Click};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::Path;

const MAGIC: &[u8] = b"radsam-session 1\n";

/// Past this many bytes unpacked, a file is no session this project wrote (1024 slices of
/// 1024 x 1024 pixels take about 140 MB).
const MAX_UNPACKED_BYTES: u64 = 256 << 20;

/// Why a saved session cannot be used (the caller replays instead).
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("reading the saved session: {0}")]
    Io(#[from] std::io::Error),
    #[error("the saved session is not one this version reads: {0}")]
    Format(String),
    #[error("the saved session belongs to other inputs (model, volume, prompt or settings)")]
    OtherInputs,
    #[error("the saved session's clicks are not the first clicks of this job")]
    OtherClicks,
    #[error("the saved session does not fit this volume or model: {0}")]
    Mismatch(String),
}

/// One slice's answer, as saved. The two planes are not in the JSON header: they follow it,
/// bit-packed, in the order of the slices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedSlice {
    pub slice: usize,
    /// The carried low-resolution mask (mask_size x mask_size), 0/1.
    #[serde(skip)]
    pub low_res: Vec<u8>,
    /// The mask on the slice grid, row-major, 0/1.
    #[serde(skip)]
    pub mask: Vec<u8>,
    pub iou: [f32; 4],
    pub chosen: i64,
}

/// What a volume-level segmenter knows after its prompt and clicks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub fingerprint: String,
    /// The slice grid (rows, cols) and the low-resolution grid's side.
    pub plane: (usize, usize),
    pub mask_size: usize,
    pub origin: usize,
    pub origin_box: Option<BoxPrompt>,
    pub anchors: Vec<usize>,
    /// Every click applied, in order.
    pub clicks: Vec<Click>,
    pub stops: Vec<Stop>,
    pub guard_events: Vec<GuardEvent>,
    pub slices: Vec<SavedSlice>,
}

impl Snapshot {
    /// Whether a target whose fingerprint is `fingerprint` and whose clicks are `clicks` can
    /// resume this session (then applying `clicks[self.clicks.len()..]`).
    pub fn check(&self, fingerprint: &str, clicks: &[Click]) -> Result<(), SnapshotError> {
        if self.fingerprint != fingerprint {
            return Err(SnapshotError::OtherInputs);
        }
        if !clicks.starts_with(&self.clicks) {
            return Err(SnapshotError::OtherClicks);
        }
        Ok(())
    }

    /// Writes the session to `path` (atomically: a temporary file renamed).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        // The header: everything but the planes (serde skips them).
        let json = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let tmp = path.with_extension("partial");
        let file = std::fs::File::create(&tmp)?;
        let mut gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
        gz.write_all(MAGIC)?;
        gz.write_all(&(json.len() as u64).to_le_bytes())?;
        gz.write_all(&json)?;
        for s in &self.slices {
            gz.write_all(&pack(&s.low_res))?;
            gz.write_all(&pack(&s.mask))?;
        }
        gz.finish()?.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)
    }

    /// Reads a session [`save`](Self::save) wrote; a corrupt, truncated or foreign file is an error.
    pub fn load(path: &Path) -> Result<Self, SnapshotError> {
        let format = |m: &str| SnapshotError::Format(m.to_string());
        let mut bytes = Vec::new();
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(path)?);
        gz.take(MAX_UNPACKED_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_UNPACKED_BYTES {
            return Err(format("larger than any saved session"));
        }
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(|| format("no radsam-session header"))?;
        let (len, rest) = rest.split_at_checked(8).ok_or_else(|| format("truncated"))?;
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let (json, mut planes) = rest.split_at_checked(len).ok_or_else(|| format("truncated header"))?;
        let mut saved: Self = serde_json::from_slice(json).map_err(|e| SnapshotError::Format(e.to_string()))?;
        let (rows, cols) = saved.plane;
        let (Some(low_len), Some(mask_len)) = (saved.mask_size.checked_mul(saved.mask_size), rows.checked_mul(cols))
        else {
            return Err(format("plane sizes overflow"));
        };
        for s in &mut saved.slices {
            let (low, rest) = planes.split_at_checked(low_len.div_ceil(8)).ok_or_else(|| format("truncated planes"))?;
            let (mask, rest) = rest.split_at_checked(mask_len.div_ceil(8)).ok_or_else(|| format("truncated planes"))?;
            planes = rest;
            (s.low_res, s.mask) = (unpack(low, low_len), unpack(mask, mask_len));
        }
        if !planes.is_empty() {
            return Err(format("bytes after the last plane"));
        }
        Ok(saved)
    }
}

/// 0/1 values, 8 to a byte (most significant bit first).
fn pack(values: &[u8]) -> Vec<u8> {
    values.chunks(8).map(|c| c.iter().enumerate().fold(0u8, |b, (i, &v)| b | (((v != 0) as u8) << (7 - i)))).collect()
}

fn unpack(bytes: &[u8], len: usize) -> Vec<u8> {
    (0..len).map(|i| (bytes[i / 8] >> (7 - i % 8)) & 1).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let plane = |seed: usize, n: usize| (0..n).map(|i| ((i * 7 + seed) % 3 == 0) as u8).collect::<Vec<u8>>();
        Snapshot {
            fingerprint: "abc".into(),
            plane: (5, 7),
            mask_size: 3,
            origin: 4,
            origin_box: Some(BoxPrompt { x0: 1.0, y0: 1.0, x1: 3.0, y1: 4.0 }),
            anchors: vec![4, 6],
            clicks: vec![Click { slice: 6, x: 2.0, y: 3.0, positive: false }],
            stops: vec![Stop { direction: -1, empty_slice: 2 }],
            guard_events: vec![],
            slices: (2..=7)
                .map(|s| SavedSlice {
                    slice: s,
                    low_res: plane(s, 9),
                    mask: plane(s + 1, 35),
                    iou: [0.1, 0.2, 0.3, s as f32],
                    chosen: (s % 4) as i64,
                })
                .collect(),
        }
    }

    #[test]
    fn a_saved_session_loads_as_it_was_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("liver.session.gz");
        let saved = snapshot();
        saved.save(&path).unwrap();
        assert_eq!(Snapshot::load(&path).unwrap(), saved);
        assert!(!dir.path().join("liver.session.partial").exists());

        let bytes = std::fs::read(&path).unwrap();
        // Truncated anywhere, or one byte changed inside the compressed data: refused.
        for cut in [0, 10, bytes.len() / 2, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            assert!(Snapshot::load(&path).is_err(), "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 0x40;
        std::fs::write(&path, &flipped).unwrap();
        assert!(Snapshot::load(&path).is_err());
        // Not a session at all.
        std::fs::write(&path, b"not gzip").unwrap();
        assert!(Snapshot::load(&path).is_err());
    }

    #[test]
    fn a_session_is_resumed_only_with_its_inputs_and_its_clicks_first() {
        let saved = snapshot();
        let first = saved.clicks[0];
        let next = Click { slice: 3, x: 1.0, y: 1.0, positive: true };
        assert!(saved.check("abc", &[first]).is_ok());
        assert!(saved.check("abc", &[first, next]).is_ok());
        assert!(matches!(saved.check("abd", &[first, next]), Err(SnapshotError::OtherInputs)));
        assert!(matches!(saved.check("abc", &[next, first]), Err(SnapshotError::OtherClicks)));
        assert!(matches!(saved.check("abc", &[]), Err(SnapshotError::OtherClicks)));
    }

    #[test]
    fn a_mangled_session_payload_is_an_error_never_a_panic() {
        // The payload inside a valid gzip (whose CRC then holds): bytes changed, cut or repeated,
        // the header's length field rewritten. Each load gives a session or an error.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.session.gz");
        snapshot().save(&path).unwrap();
        let mut payload = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&path).unwrap()).read_to_end(&mut payload).unwrap();
        let mut rng = crate::rng::SplitMix64(7);
        let (mut loaded, mut refused) = (0, 0);
        for _ in 0..3000 {
            let mut bytes = payload.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(bytes.len());
                match rng.below(4) {
                    0 => bytes[at] = rng.next_u64() as u8,
                    1 => bytes.truncate(at),
                    2 => bytes.extend_from_within(at..),
                    _ => {
                        let len = [0u64, 1, 1 << 40, u64::MAX, rng.next_u64() % 4096][rng.below(5)];
                        if bytes.len() >= MAGIC.len() + 8 {
                            bytes[MAGIC.len()..MAGIC.len() + 8].copy_from_slice(&len.to_le_bytes());
                        }
                    }
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            std::fs::write(&path, gz.finish().unwrap()).unwrap();
            match Snapshot::load(&path) {
                Ok(s) => {
                    loaded += 1;
                    let (rows, cols) = s.plane;
                    assert!(s.slices.iter().all(|p| p.mask.len() == rows * cols));
                }
                Err(_) => refused += 1,
            }
        }
        assert!(refused > 2000 && loaded + refused == 3000, "{loaded} loaded, {refused} refused");
    }

    #[test]
    fn bits_pack_and_unpack() {
        let values: Vec<u8> = (0..19).map(|i| (i % 3 == 1) as u8).collect();
        let packed = pack(&values);
        assert_eq!(packed.len(), 3);
        assert_eq!(packed[0], 0b0100_1001);
        assert_eq!(unpack(&packed, 19), values);
    }
}
