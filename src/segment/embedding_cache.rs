//! A content-addressed cache of image embeddings on local disk, so that a correction (the same
//! volume resubmitted with one more click) or a second target on the same slices never pays the
//! encoder twice (issue #20).
//!
//! **Key.** An embedding is a function of one slice's voxels, its size and the model's input
//! transform and encoder weights, nothing else (preprocess.rs; spacing and position play no
//! part). So each slice is addressed by SHA-256 of exactly those: the encoder's weights (hashed
//! once per loaded model, [`EncoderKey`]), the window, image size and normalisation, the slice's
//! rows and columns and its f32 voxels. A volume is therefore cached slice by slice: a partial
//! encoding (a job stopped by its deadline, a narrower target) is reused as far as it went, and
//! the same series under another URI (a copy in S3, a DICOM folder and its NIfTI) hits as well.
//!
//! **Value.** The (256, E, E) embedding in half precision (2 MB per LiteMedSAM slice), with a
//! SHA-256 of its bytes: an entry that is truncated, corrupt or of another shape is reported,
//! deleted and recomputed, never used. Entries are written to a temporary file and renamed, so a
//! killed process leaves no half-written entry under a real name.
//!
//! **Bound.** The folder is kept under `max_bytes`: when a write takes it over, the least recently
//! used entries (file modification time, refreshed on every hit) go first, down to 90%.
//!
//! **Second tier.** Optionally a [`RemoteTier`] (the worker's: a prefix of the S3 store) is read on
//! a local miss and written behind every local store, so any worker can pick up what another one
//! encoded. What comes from it is checked like a local entry before it is kept and used. A tier
//! that fails is left alone for a minute (a store that is down must not cost every slice a timeout).
//!
//! A session that uses the cache rounds fresh embeddings through half precision as well, so the
//! first (cold) run of a job and every later (warm) run return the same masks to the voxel.

use crate::model::{InputNormalization, Sam};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tch::{Kind, Tensor};

/// The first bytes of every entry (format version 1).
const MAGIC: &[u8; 8] = b"RSEMB\x01\0\0";
/// Entry files end in this; anything else in the folder is not ours (temporary files aside).
const ENTRY_EXT: &str = "emb";
/// Default bound of the local tier (`RADSAM_CACHE_EMBEDDINGS_MB`): about 2000 LiteMedSAM slices.
pub const DEFAULT_MAX_MB: u64 = 4096;

/// What the cache did, for /metrics and for tests (monotonic counters; `stored_bytes` is a gauge).
#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Entries found unreadable (truncated, corrupt, wrong shape): deleted, counted as misses too.
    pub corrupt: AtomicU64,
    pub evictions: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Bytes in the folder as this process last counted them.
    pub stored_bytes: AtomicU64,
    /// Local misses found in the second tier (counted as hits too).
    pub remote_hits: AtomicU64,
    /// Reads of the second tier that failed (store down, refused).
    pub remote_errors: AtomicU64,
}

/// The cache's second tier, shared by every worker: entries by name (`<hex key>.emb`).
pub trait RemoteTier: Send + Sync + std::fmt::Debug {
    /// The entry's bytes, None when the tier has no such entry.
    fn fetch(&self, name: &str) -> Result<Option<Vec<u8>>, String>;
    /// Stores the entry; may return before the upload is done (a failure is the tier's to report).
    fn store(&self, name: &str, bytes: Vec<u8>);
}

/// How long a failed second tier is left alone.
const REMOTE_BACKOFF: std::time::Duration = std::time::Duration::from_secs(60);

/// Where an embedding lives: SHA-256 of the encoder, the input transform and the slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SliceKey([u8; 32]);

impl SliceKey {
    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Everything of a model that an embedding depends on besides the slice: its encoder's weights
/// and its input transform. Build one per session (the weights' hash is computed once per model).
#[derive(Debug, Clone)]
pub struct EncoderKey {
    prefix: Sha256,
}

impl EncoderKey {
    pub fn new(sam: &Sam) -> Self {
        let c = &sam.config;
        let mut prefix = Sha256::new();
        prefix.update(b"radsam-embedding-v1");
        prefix.update(sam.encoder_fingerprint());
        // A grey window hashes as before multi-channel windows existed: its cached embeddings stay valid.
        match c.window.as_grey() {
            Some(w) => {
                prefix.update(w.lo.to_le_bytes());
                prefix.update(w.hi.to_le_bytes());
            }
            None => {
                prefix.update(b"rgb");
                for w in c.window.channels {
                    prefix.update(w.lo.to_le_bytes());
                    prefix.update(w.hi.to_le_bytes());
                }
            }
        }
        prefix.update(c.image_size.to_le_bytes());
        prefix.update(match c.normalization {
            InputNormalization::UnitRange => [0u8],
            InputNormalization::SamPixel => [1u8],
        });
        Self { prefix }
    }

    /// The key of one slice: `plane` holds its `rows` x `cols` voxels, row-major.
    pub fn slice(&self, plane: &[f32], rows: usize, cols: usize) -> SliceKey {
        let mut h = self.prefix.clone();
        h.update((rows as u64).to_le_bytes());
        h.update((cols as u64).to_le_bytes());
        h.update(bytemuck::cast_slice::<f32, u8>(plane));
        SliceKey(h.finalize().into())
    }
}

/// Why the cache could not be set up (CONFIG_INVALID in the worker and the CLI).
#[derive(Debug, thiserror::Error)]
pub enum CacheConfigError {
    #[error("RADSAM_CACHE_EMBEDDINGS_MB={0:?} is not a whole number of megabytes")]
    BadSize(String),
    #[error("cannot use {dir} for the embedding cache (RADSAM_CACHE_EMBEDDINGS): {source}")]
    Folder { dir: PathBuf, source: io::Error },
}

impl crate::error::Coded for CacheConfigError {
    fn code(&self) -> &'static str {
        "CONFIG_INVALID"
    }
}

#[derive(Debug)]
pub struct EmbeddingCache {
    dir: PathBuf,
    max_bytes: u64,
    stats: Arc<CacheStats>,
    /// One eviction at a time in this process (workers sharing a folder each evict on their own;
    /// a file another one removed first is simply skipped).
    evicting: Mutex<()>,
    /// Names temporary files uniquely within this process.
    sequence: AtomicU64,
    remote: Option<Box<dyn RemoteTier>>,
    /// Until when the second tier is not asked (after a failure).
    remote_paused_until: Mutex<Option<std::time::Instant>>,
}

impl EmbeddingCache {
    /// A cache in `dir` (created if missing) bounded to `max_bytes`; counts what `dir` holds.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> Result<Self, CacheConfigError> {
        let dir = dir.into();
        let unusable = |source| CacheConfigError::Folder { dir: dir.clone(), source };
        fs::create_dir_all(&dir).map_err(unusable)?;
        // A folder it cannot write to is no cache: say so now, not at every job.
        tempfile::NamedTempFile::new_in(&dir).map_err(unusable)?;
        let cache = Self {
            dir,
            max_bytes,
            stats: Arc::default(),
            evicting: Mutex::new(()),
            sequence: AtomicU64::new(0),
            remote: None,
            remote_paused_until: Mutex::new(None),
        };
        let stored: u64 = cache.entries().iter().map(|e| e.bytes).sum();
        cache.stats.stored_bytes.store(stored, Ordering::Relaxed);
        Ok(cache)
    }

    /// The cache the environment asks for: `RADSAM_CACHE_EMBEDDINGS` (a folder, default
    /// `$RADSAM_CACHE/embeddings`; `off` for none) bounded by `RADSAM_CACHE_EMBEDDINGS_MB`
    /// (default [`DEFAULT_MAX_MB`]; 0 also turns it off).
    pub fn from_env() -> Result<Option<Self>, CacheConfigError> {
        let mb = match std::env::var("RADSAM_CACHE_EMBEDDINGS_MB") {
            Ok(v) => v.trim().parse::<u64>().map_err(|_| CacheConfigError::BadSize(v))?,
            Err(_) => DEFAULT_MAX_MB,
        };
        Self::configure(std::env::var("RADSAM_CACHE_EMBEDDINGS").ok().as_deref(), mb)
    }

    /// The cache in `dir` (None or empty: `$RADSAM_CACHE/embeddings`; `off`: none) bounded to
    /// `max_mb` megabytes (0: none).
    pub fn configure(dir: Option<&str>, max_mb: u64) -> Result<Option<Self>, CacheConfigError> {
        let dir = dir.filter(|d| !d.is_empty());
        if dir == Some("off") || max_mb == 0 {
            return Ok(None);
        }
        let dir = dir.map(PathBuf::from).unwrap_or_else(|| crate::assets::cache_dir().join("embeddings"));
        Self::open(dir, max_mb * 1024 * 1024).map(Some)
    }

    /// The same cache with a second tier behind it.
    pub fn with_remote(mut self, remote: Box<dyn RemoteTier>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// The second tier, unless it failed within the last minute.
    fn remote(&self) -> Option<&dyn RemoteTier> {
        let paused = self.remote_paused_until.lock().unwrap_or_else(|p| p.into_inner());
        match *paused {
            Some(until) if std::time::Instant::now() < until => None,
            _ => self.remote.as_deref(),
        }
    }

    fn remote_failed(&self, why: &str) {
        self.stats.remote_errors.fetch_add(1, Ordering::Relaxed);
        eprintln!("warning: the embedding cache's second tier failed ({why}); not asked again for a minute");
        *self.remote_paused_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(std::time::Instant::now() + REMOTE_BACKOFF);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    fn path(&self, key: &SliceKey) -> PathBuf {
        self.dir.join(&key.hex()[..2]).join(self.name(key))
    }

    fn name(&self, key: &SliceKey) -> String {
        format!("{}.{ENTRY_EXT}", key.hex())
    }

    /// The embedding stored under `key`, (shape) in half precision on the CPU, if there is a
    /// sound one of that shape. A damaged entry is reported, deleted and counted as a miss.
    pub fn get(&self, key: &SliceKey, shape: &[i64]) -> Option<Tensor> {
        let path = self.path(key);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(_) => return self.get_remote(key, shape),
        };
        match decode_entry(&bytes, shape) {
            Ok(payload) => {
                // Refresh its place in the least-recently-used order (best effort).
                if let Ok(f) = fs::File::options().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                self.stats.hits.fetch_add(1, Ordering::Relaxed);
                self.stats.bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Some(Tensor::from_data_size(payload, shape, Kind::Half))
            }
            Err(why) => {
                eprintln!(
                    "warning: embedding cache entry {} is unusable ({why}); deleted, recomputing",
                    path.display()
                );
                if fs::remove_file(&path).is_ok() {
                    self.stats.stored_bytes.fetch_sub(
                        (bytes.len() as u64).min(self.stats.stored_bytes.load(Ordering::Relaxed)),
                        Ordering::Relaxed,
                    );
                }
                self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// A local miss asked of the second tier: a sound entry there is kept locally and used.
    fn get_remote(&self, key: &SliceKey, shape: &[i64]) -> Option<Tensor> {
        let miss = || {
            self.stats.misses.fetch_add(1, Ordering::Relaxed);
            None
        };
        let Some(remote) = self.remote() else { return miss() };
        let name = self.name(key);
        let bytes = match remote.fetch(&name) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return miss(),
            Err(why) => {
                self.remote_failed(&why);
                return miss();
            }
        };
        let payload = match decode_entry(&bytes, shape) {
            Ok(p) => p,
            Err(why) => {
                eprintln!("warning: the second tier's embedding {name} is unusable ({why}); recomputing");
                self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                return miss();
            }
        };
        let tensor = Tensor::from_data_size(payload, shape, Kind::Half);
        if self.write_atomically(&self.path(key), &bytes).is_ok() {
            self.note_stored(bytes.len() as u64);
        }
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        self.stats.remote_hits.fetch_add(1, Ordering::Relaxed);
        self.stats.bytes_read.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Some(tensor)
    }

    /// Counts `bytes` more in the folder, evicting when that passes the bound.
    fn note_stored(&self, bytes: u64) {
        let stored = self.stats.stored_bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if stored > self.max_bytes {
            self.evict();
        }
    }

    /// Stores `embedding` (any kind and device; kept in half precision) under `key`. A cache that
    /// cannot write (a full disk) only warns: the job it serves goes on without it.
    pub fn put(&self, key: &SliceKey, embedding: &Tensor) {
        let half = embedding.to_kind(Kind::Half).to_device(tch::Device::Cpu).contiguous();
        let numel = half.numel();
        let mut payload = vec![0u8; numel * 2];
        half.copy_data_u8(&mut payload, numel);
        let entry = encode_entry(&half.size(), &payload);
        let path = self.path(key);
        if let Err(e) = self.write_atomically(&path, &entry) {
            eprintln!("warning: cannot store an embedding in {}: {e}", self.dir.display());
            return;
        }
        self.stats.bytes_written.fetch_add(entry.len() as u64, Ordering::Relaxed);
        self.note_stored(entry.len() as u64);
        if let Some(remote) = self.remote() {
            remote.store(&self.name(key), entry);
        }
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let parent = path.parent().expect("entries live in a sub-folder");
        fs::create_dir_all(parent)?;
        let n = self.sequence.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".tmp-{}-{n}", std::process::id()));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            fs::rename(&tmp, path)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }

    /// Removes the least recently used entries until the folder holds at most 90% of the bound
    /// (so that the next few writes do not each trigger a scan).
    fn evict(&self) {
        let _one_at_a_time = self.evicting.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.bytes).sum();
        let goal = self.max_bytes / 10 * 9;
        entries.sort_by_key(|e| e.used);
        for e in entries {
            if total <= goal {
                break;
            }
            if fs::remove_file(&e.path).is_ok() {
                total -= e.bytes;
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.stats.stored_bytes.store(total, Ordering::Relaxed);
    }

    /// Every entry file with its size and last use. Temporary files a killed process left behind
    /// for over an hour are removed on the way.
    fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        let Ok(shards) = fs::read_dir(&self.dir) else { return out };
        for shard in shards.flatten() {
            let Ok(files) = fs::read_dir(shard.path()) else { continue };
            for file in files.flatten() {
                let path = file.path();
                let Ok(meta) = file.metadata() else { continue };
                let used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                if path.extension().is_some_and(|x| x == ENTRY_EXT) {
                    out.push(Entry { path, bytes: meta.len(), used });
                } else if file.file_name().to_string_lossy().starts_with(".tmp-")
                    && used.elapsed().is_ok_and(|age| age.as_secs() > 3600)
                {
                    let _ = fs::remove_file(&path);
                }
            }
        }
        out
    }
}

struct Entry {
    path: PathBuf,
    bytes: u64,
    used: SystemTime,
}

/// MAGIC, the number of dimensions (u32), the dimensions (i64 each), SHA-256 of the payload, the
/// payload (little-endian f16).
fn encode_entry(shape: &[i64], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + 4 + 8 * shape.len() + 32 + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(shape.len() as u32).to_le_bytes());
    for d in shape {
        out.extend_from_slice(&d.to_le_bytes());
    }
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(payload);
    out
}

/// The payload of a sound entry of `shape`, or why it is not one.
fn decode_entry<'a>(bytes: &'a [u8], shape: &[i64]) -> Result<&'a [u8], String> {
    let mut r = bytes;
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| "shorter than its header".to_string())?;
    if &magic != MAGIC {
        return Err("not an embedding entry of this version".into());
    }
    let mut word = [0u8; 4];
    r.read_exact(&mut word).map_err(|_| "shorter than its header".to_string())?;
    let ndim = u32::from_le_bytes(word) as usize;
    if ndim != shape.len() {
        return Err(format!("{ndim} dimensions, expected {}", shape.len()));
    }
    let mut stored = Vec::with_capacity(ndim);
    for _ in 0..ndim {
        let mut d = [0u8; 8];
        r.read_exact(&mut d).map_err(|_| "shorter than its header".to_string())?;
        stored.push(i64::from_le_bytes(d));
    }
    if stored != shape {
        return Err(format!("shape {stored:?}, expected {shape:?}"));
    }
    let mut digest = [0u8; 32];
    r.read_exact(&mut digest).map_err(|_| "shorter than its header".to_string())?;
    let expected = shape.iter().product::<i64>() as usize * 2;
    if r.len() != expected {
        return Err(format!("{} payload bytes, expected {expected} (truncated?)", r.len()));
    }
    if Sha256::digest(r).as_slice() != digest {
        return Err("its checksum does not match its bytes".into());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SliceKey {
        SliceKey([n; 32])
    }

    fn entry_files(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for shard in fs::read_dir(dir).unwrap().flatten() {
            for f in fs::read_dir(shard.path()).unwrap().flatten() {
                out.push(f.path());
            }
        }
        out
    }

    #[test]
    fn an_entry_comes_back_as_stored_in_half_precision() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddingCache::open(dir.path(), 1 << 30).unwrap();
        let t = Tensor::arange(24, (Kind::Float, tch::Device::Cpu)).view([2, 3, 4]) / 7.0;
        assert!(cache.get(&key(1), &[2, 3, 4]).is_none(), "empty cache");
        cache.put(&key(1), &t);
        let back = cache.get(&key(1), &[2, 3, 4]).expect("a hit");
        assert_eq!(back.kind(), Kind::Half);
        assert!(back.to_kind(Kind::Float).equal(&t.to_kind(Kind::Half).to_kind(Kind::Float)));
        let s = cache.stats();
        assert_eq!((s.hits.load(Ordering::Relaxed), s.misses.load(Ordering::Relaxed)), (1, 1));
        assert!(s.bytes_written.load(Ordering::Relaxed) > 48);
        // Another shape under the same key is not this entry: refused, deleted, a miss.
        assert!(cache.get(&key(1), &[4, 3, 2]).is_none());
        assert_eq!(s.corrupt.load(Ordering::Relaxed), 1);
        assert!(entry_files(dir.path()).is_empty(), "the mismatched entry is gone");
        // A reopened cache counts what the folder holds.
        cache.put(&key(2), &t);
        let reopened = EmbeddingCache::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(
            reopened.stats().stored_bytes.load(Ordering::Relaxed),
            encode_entry(&[2, 3, 4], &[0; 48]).len() as u64
        );
    }

    #[test]
    fn truncated_or_flipped_entries_are_detected_deleted_and_never_used() {
        let dir = tempfile::tempdir().unwrap();
        let cache = EmbeddingCache::open(dir.path(), 1 << 30).unwrap();
        let t = Tensor::ones([64], (Kind::Float, tch::Device::Cpu));
        type Damage = fn(&mut Vec<u8>);
        let damages: [(&str, Damage); 4] = [
            ("truncated", |b| b.truncate(b.len() - 3)),
            ("one payload bit", |b| *b.last_mut().unwrap() ^= 1),
            ("empty", |b| b.clear()),
            ("another format", |b| b[5] = 9),
        ];
        for (i, (what, damage)) in damages.iter().enumerate() {
            let k = key(10 + i as u8);
            cache.put(&k, &t);
            let path = cache.path(&k);
            let mut bytes = fs::read(&path).unwrap();
            damage(&mut bytes);
            fs::write(&path, &bytes).unwrap();
            assert!(cache.get(&k, &[64]).is_none(), "{what}: a damaged entry must not be used");
            assert!(!path.exists(), "{what}: a damaged entry is deleted");
            cache.put(&k, &t);
            assert!(cache.get(&k, &[64]).is_some(), "{what}: recomputed and stored again");
        }
        assert_eq!(cache.stats().corrupt.load(Ordering::Relaxed), 4);
    }

    #[test]
    fn the_least_recently_used_entries_go_first_when_the_bound_is_passed() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tensor::zeros([1000], (Kind::Float, tch::Device::Cpu));
        let size = encode_entry(&[1000], &[0; 2000]).len() as u64;
        let cache = EmbeddingCache::open(dir.path(), 3 * size + size / 2).unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(100);
        for n in 0..3 {
            cache.put(&key(n), &t);
            // Distinct, known ages: 0 oldest, then 1, then 2.
            let f = fs::File::options().write(true).open(cache.path(&key(n))).unwrap();
            f.set_modified(old + std::time::Duration::from_secs(n as u64 * 10)).unwrap();
        }
        assert!(cache.get(&key(0), &[1000]).is_some(), "a hit makes 0 the most recently used");
        cache.put(&key(3), &t); // 4 entries > 3.5: down to 90% (3.15), so one goes: 1, the least recent
        assert_eq!(cache.stats().evictions.load(Ordering::Relaxed), 1);
        assert!(cache.get(&key(1), &[1000]).is_none(), "the least recently used was evicted");
        for n in [0, 2, 3] {
            assert!(cache.get(&key(n), &[1000]).is_some(), "entry {n} kept");
        }
        assert_eq!(cache.stats().stored_bytes.load(Ordering::Relaxed), 3 * size);
        assert_eq!(entry_files(dir.path()).len(), 3, "no temporary file left");
    }

    #[test]
    fn writers_racing_on_one_entry_and_a_killed_writer_leave_no_bad_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(EmbeddingCache::open(dir.path(), 1 << 30).unwrap());
        let t = Tensor::arange(100_000, (Kind::Float, tch::Device::Cpu)) / 1000.0;
        // Two workers (here: four threads with caches of their own on one folder) store the same
        // slice at once: each renames a complete file over the name, so the entry stays sound.
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dir = dir.path().to_path_buf();
                let t = t.shallow_clone();
                std::thread::spawn(move || {
                    let own = EmbeddingCache::open(dir, 1 << 30).unwrap();
                    for _ in 0..10 {
                        own.put(&key(7), &t);
                    }
                })
            })
            .collect();
        for th in threads {
            th.join().unwrap();
        }
        assert!(cache.get(&key(7), &[100_000]).is_some());
        assert_eq!(cache.stats().corrupt.load(Ordering::Relaxed), 0);
        // A writer killed mid-write leaves only its temporary file, which is never read as an entry.
        let shard = cache.path(&key(8)).parent().unwrap().to_path_buf();
        fs::create_dir_all(&shard).unwrap();
        fs::write(shard.join(".tmp-99999-0"), &encode_entry(&[2], &[0; 4])[..10]).unwrap();
        assert!(cache.get(&key(8), &[2]).is_none());
        assert_eq!(cache.entries().len(), 1, "the temporary file is not an entry");
    }

    /// A second tier in memory, that can be made to fail.
    #[derive(Debug, Default)]
    struct MemoryTier {
        entries: Mutex<std::collections::HashMap<String, Vec<u8>>>,
        down: std::sync::atomic::AtomicBool,
        reads: AtomicU64,
    }

    #[derive(Debug)]
    struct Shared(Arc<MemoryTier>);

    impl RemoteTier for Shared {
        fn fetch(&self, name: &str) -> Result<Option<Vec<u8>>, String> {
            self.0.reads.fetch_add(1, Ordering::Relaxed);
            if self.0.down.load(Ordering::Relaxed) {
                return Err("connection refused".into());
            }
            Ok(self.0.entries.lock().unwrap().get(name).cloned())
        }
        fn store(&self, name: &str, bytes: Vec<u8>) {
            self.0.entries.lock().unwrap().insert(name.to_string(), bytes);
        }
    }

    #[test]
    fn a_second_tier_serves_another_workers_entries_checked_and_a_failing_one_is_left_alone() {
        let tier = Arc::new(MemoryTier::default());
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = EmbeddingCache::open(a_dir.path(), 1 << 30).unwrap().with_remote(Box::new(Shared(tier.clone())));
        let b = EmbeddingCache::open(b_dir.path(), 1 << 30).unwrap().with_remote(Box::new(Shared(tier.clone())));
        let t = Tensor::arange(64, (Kind::Float, tch::Device::Cpu));
        a.put(&key(1), &t);
        // Worker b has never seen it: the tier has, and b keeps it locally from then on.
        assert!(b.get(&key(1), &[64]).is_some());
        assert_eq!(b.stats().remote_hits.load(Ordering::Relaxed), 1);
        assert!(b.path(&key(1)).exists(), "kept in b's own folder");
        let reads = tier.reads.load(Ordering::Relaxed);
        assert!(b.get(&key(1), &[64]).is_some());
        assert_eq!(tier.reads.load(Ordering::Relaxed), reads, "a local hit does not ask the tier");
        // A damaged entry in the tier is not used.
        a.put(&key(2), &t);
        tier.entries.lock().unwrap().values_mut().for_each(|v| *v.last_mut().unwrap() ^= 1);
        assert!(b.get(&key(2), &[64]).is_none());
        assert!(!b.path(&key(2)).exists());
        // A tier that fails is asked once, then left alone: the next misses cost nothing.
        tier.down.store(true, Ordering::Relaxed);
        let reads = tier.reads.load(Ordering::Relaxed);
        assert!(b.get(&key(3), &[64]).is_none());
        assert!(b.get(&key(4), &[64]).is_none());
        assert_eq!(tier.reads.load(Ordering::Relaxed), reads + 1);
        assert_eq!(b.stats().remote_errors.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn the_environment_chooses_the_folder_and_the_bound() {
        // One test owns these variables (tests of this binary run in parallel).
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("RADSAM_CACHE_EMBEDDINGS", dir.path());
        std::env::set_var("RADSAM_CACHE_EMBEDDINGS_MB", "12");
        let c = EmbeddingCache::from_env().unwrap().expect("on");
        assert_eq!((c.dir(), c.max_bytes()), (dir.path(), 12 << 20));
        std::env::set_var("RADSAM_CACHE_EMBEDDINGS_MB", "lots");
        assert!(matches!(EmbeddingCache::from_env(), Err(CacheConfigError::BadSize(_))));
        std::env::set_var("RADSAM_CACHE_EMBEDDINGS_MB", "0");
        assert!(EmbeddingCache::from_env().unwrap().is_none());
        std::env::set_var("RADSAM_CACHE_EMBEDDINGS", "off");
        std::env::remove_var("RADSAM_CACHE_EMBEDDINGS_MB");
        assert!(EmbeddingCache::from_env().unwrap().is_none());
        // A folder that cannot be made is refused now, by name, not at the first job.
        std::env::set_var("RADSAM_CACHE_EMBEDDINGS", "/dev/null/embeddings");
        let e = EmbeddingCache::from_env().unwrap_err();
        assert!(matches!(e, CacheConfigError::Folder { .. }) && e.to_string().contains("/dev/null/embeddings"), "{e}");
        std::env::remove_var("RADSAM_CACHE_EMBEDDINGS");
    }
}
