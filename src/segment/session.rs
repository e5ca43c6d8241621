//! A volume session: the slices between the object's boundaries, each encoded at most once and
//! kept for every prompt and edit that follows (the image encoder does not depend on prompts).
//!
//! Encoding is lazy: a slice is encoded when the propagation first reaches it, together with the
//! next slices in its direction of travel (a batch, on a GPU), so a propagation that stops early
//! and a click that re-propagates a few slices encode only what they use (issue #20). Slices the
//! embedding cache holds are read from it instead. [`VolumeSession::new`] encodes every slice at
//! once, for the benchmarks that time the encoder on its own.
//!
//! Embeddings stay on the model's device: f32 on CPU, half precision on GPU to halve memory.

use super::embedding_cache::{EmbeddingCache, EncoderKey};
use super::SegmentError;
use crate::model::preprocess::{slices_to_input, SliceGeometry};
use crate::model::Sam;
use crate::volume::Volume;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;
use tch::{Kind, Tensor};

/// How a session fills itself.
#[derive(Default)]
pub struct EncodeOptions<'a> {
    /// Slices encoded per batch; 0: [`VolumeSession::default_batch`] for the model's device.
    pub batch: usize,
    /// Past this instant no further batch is encoded: [`SegmentError::DeadlinePassed`]. Encoding
    /// is the longest step of a job, and a job over its time budget must free the model thread for
    /// the next one (the worker's JOB_TIMEOUT).
    pub deadline: Option<Instant>,
    /// Embeddings are read from here when present and stored here when encoded.
    pub cache: Option<&'a EmbeddingCache>,
    /// `(slices filled, slices in the session)` after each batch.
    pub progress: Option<Box<dyn FnMut(usize, usize) + 'a>>,
}

pub struct VolumeSession<'a> {
    pub sam: &'a Sam,
    pub volume: &'a Volume,
    /// First and last slice of this session (inclusive, lo <= hi).
    pub lo: usize,
    pub hi: usize,
    pub geometry: SliceGeometry,
    /// Shared with the sessions [`restrict`](Self::restrict) makes: one store per volume range.
    store: Rc<Store<'a>>,
    /// A second model's session over the same slices, which answers a slice prompted by points
    /// alone (`PointStart::Assist`; [`with_point_assist`](Self::with_point_assist)). Lazy: it
    /// encodes only the slices it answers.
    point_assist: Option<Rc<VolumeSession<'a>>>,
}

/// The embeddings of the slices `lo..lo + n` and which of them are filled.
struct Store<'a> {
    lo: usize,
    /// (n, 256, E, E), filled slice by slice.
    embeddings: Tensor,
    filled: RefCell<Vec<bool>>,
    batch: usize,
    deadline: Option<Instant>,
    cache: Option<&'a EmbeddingCache>,
    /// The encoder's part of every slice's cache key (hashing the weights once per session).
    encoder_key: Option<EncoderKey>,
    progress: RefCell<Option<Box<dyn FnMut(usize, usize) + 'a>>>,
    /// The last slice asked for: the direction of travel is from it to the next one asked for.
    last_asked: Cell<Option<usize>>,
    encoded: Cell<usize>,
    cached: Cell<usize>,
    seconds: Cell<f64>,
}

impl<'a> VolumeSession<'a> {
    /// Encodes slices `a..=b` (either order) now, in batches of `batch`; `progress(done, total)`
    /// after each batch. On this project's 2-core CPU, batching gains nothing over one slice at a
    /// time (bench/results/model_bench.md), so [`default_batch`](Self::default_batch) is 1 there
    /// and 8 on a GPU.
    pub fn new(
        sam: &'a Sam,
        volume: &'a Volume,
        range: (usize, usize),
        batch: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, SegmentError> {
        let session = Self::lazy(sam, volume, range, EncodeOptions { batch, ..Default::default() })?;
        let missing: Vec<usize> = (session.lo..=session.hi).collect();
        for chunk in missing.chunks(session.store.batch) {
            session.store.fill(sam, volume, chunk)?;
            let (done, total) = session.store.counts();
            progress(done, total);
        }
        Ok(session)
    }

    /// A session over slices `a..=b` (either order) that encodes each slice when it is first
    /// asked for (see the module docs). Checks the boundaries; encodes nothing yet.
    pub fn lazy(
        sam: &'a Sam,
        volume: &'a Volume,
        (a, b): (usize, usize),
        options: EncodeOptions<'a>,
    ) -> Result<Self, SegmentError> {
        let count = volume.num_slices();
        for slice in [a, b] {
            if slice >= count {
                return Err(SegmentError::BoundaryOutside { slice, count });
            }
        }
        let (lo, hi) = (a.min(b), a.max(b));
        // A model with a point assist (crate::model docs) gets the assist's session too, lazy, on
        // the same cache and deadline: it encodes only the slices it answers.
        let point_assist = match sam.point_assist() {
            Some(assist) => {
                let options = EncodeOptions {
                    batch: options.batch,
                    deadline: options.deadline,
                    cache: options.cache,
                    progress: None,
                };
                Some(Rc::new(Self::lazy(assist, volume, (lo, hi), options)?))
            }
            None => None,
        };
        let device = sam.device();
        let store_kind = if device.is_cuda() { Kind::Half } else { Kind::Float };
        let (rows, cols) = volume.grid.plane_shape();
        let e = sam.config.embedding_size();
        let n = hi - lo + 1;
        let store = Store {
            lo,
            // One preallocated store: no concatenation copy, no reallocation as it fills.
            embeddings: Tensor::empty([n as i64, 256, e, e], (store_kind, device)),
            filled: RefCell::new(vec![false; n]),
            batch: if options.batch == 0 { Self::default_batch(device) } else { options.batch },
            deadline: options.deadline,
            cache: options.cache,
            encoder_key: options.cache.map(|_| EncoderKey::new(sam)),
            progress: RefCell::new(options.progress),
            last_asked: Cell::new(None),
            encoded: Cell::new(0),
            cached: Cell::new(0),
            seconds: Cell::new(0.0),
        };
        Ok(Self {
            sam,
            volume,
            lo,
            hi,
            geometry: SliceGeometry::new(rows as i64, cols as i64, sam.config.image_size),
            store: Rc::new(store),
            point_assist,
        })
    }

    /// Hands the slices prompted by points alone to `assist`, another model's session over the
    /// same volume and at least these slices (`PointStart::Assist`), instead of the model's own
    /// point assist if it has one: e.g. a model that reads a lone point better answers the user's
    /// slice, and this one carries its mask on (benchmarks try models this way). The two
    /// decoders must share the low-resolution mask grid (the carried mask prompt), which SAM-style
    /// models do whatever their input size (the padded square, at a quarter of SAM's 1024 px).
    pub fn with_point_assist(mut self, assist: VolumeSession<'a>) -> Result<Self, String> {
        let same_volume = std::ptr::eq(self.volume, assist.volume);
        if !same_volume || assist.lo > self.lo || assist.hi < self.hi || assist.sam.mask_size() != self.sam.mask_size()
        {
            return Err(format!(
                "the point assist must cover slices {}..={} of the same volume with {} px masks \
                 (it covers {}..={}{} with {} px masks)",
                self.lo,
                self.hi,
                self.sam.mask_size(),
                assist.lo,
                assist.hi,
                if same_volume { "" } else { " of another volume" },
                assist.sam.mask_size()
            ));
        }
        self.point_assist = Some(Rc::new(assist));
        Ok(self)
    }

    /// The point assist's session ([`with_point_assist`](Self::with_point_assist)), if any.
    pub fn point_assist(&self) -> Option<&VolumeSession<'a>> {
        self.point_assist.as_deref()
    }

    /// The same store, limited to slices `a..=b` (either order) inside this session: an object's
    /// boundaries within a volume whose slices other objects share (no copy, nothing encoded twice).
    pub fn restrict(&self, (a, b): (usize, usize)) -> Result<VolumeSession<'a>, SegmentError> {
        let (lo, hi) = (a.min(b), a.max(b));
        for slice in [lo, hi] {
            if !self.contains(slice) {
                return Err(SegmentError::SliceOutsideBoundaries { slice, lo: self.lo, hi: self.hi });
            }
        }
        Ok(Self { lo, hi, store: self.store.clone(), point_assist: self.point_assist.clone(), ..*self })
    }

    pub fn default_batch(device: tch::Device) -> usize {
        if device.is_cuda() {
            8
        } else {
            1
        }
    }

    pub fn contains(&self, slice: usize) -> bool {
        (self.lo..=self.hi).contains(&slice)
    }

    /// The embedding of one slice, (1, 256, E, E) in f32, encoded now if it is not yet (with the
    /// next slices in the direction of travel, up to a batch, within this session's range).
    pub fn embedding(&self, slice: usize) -> Result<Tensor, SegmentError> {
        assert!(self.contains(slice), "slice {slice} outside the session {}..={}", self.lo, self.hi);
        let store = &*self.store;
        let up = store.last_asked.get().is_none_or(|last| slice >= last);
        store.last_asked.set(Some(slice));
        if !store.is_filled(slice) {
            let ahead: Vec<usize> = if up {
                (slice..=self.hi).filter(|&s| !store.is_filled(s)).take(store.batch).collect()
            } else {
                (self.lo..=slice).rev().filter(|&s| !store.is_filled(s)).take(store.batch).collect()
            };
            store.fill(self.sam, self.volume, &ahead)?;
        }
        Ok(store.embeddings.narrow(0, (slice - store.lo) as i64, 1).to_kind(Kind::Float))
    }

    /// Slices run through the encoder so far (in every session sharing this one's store), its
    /// point assist's included.
    pub fn encoded_slices(&self) -> usize {
        self.store.encoded.get() + self.point_assist.as_ref().map_or(0, |a| a.encoded_slices())
    }

    /// Slices read from the embedding cache so far (ditto).
    pub fn cached_slices(&self) -> usize {
        self.store.cached.get() + self.point_assist.as_ref().map_or(0, |a| a.cached_slices())
    }

    /// Seconds spent filling the store so far: encoding, and reading the cache (ditto).
    pub fn encode_seconds(&self) -> f64 {
        self.store.seconds.get() + self.point_assist.as_ref().map_or(0.0, |a| a.encode_seconds())
    }
}

impl Store<'_> {
    fn is_filled(&self, slice: usize) -> bool {
        self.filled.borrow()[slice - self.lo]
    }

    fn set_filled(&self, slice: usize) {
        self.filled.borrow_mut()[slice - self.lo] = true;
    }

    /// Fills `slices` (not filled yet, at most a batch): from the cache where it has them, the
    /// rest encoded in one batch (and stored in the cache).
    fn fill(&self, sam: &Sam, volume: &Volume, slices: &[usize]) -> Result<(), SegmentError> {
        let t0 = Instant::now();
        let kind = self.embeddings.kind();
        let device = self.embeddings.device();
        let (rows, cols) = volume.grid.plane_shape();
        let shape = &self.embeddings.size()[1..];
        let mut to_encode = Vec::with_capacity(slices.len());
        for &s in slices {
            match (self.cache, &self.encoder_key) {
                (Some(cache), Some(encoder)) => {
                    let key = encoder.slice(&volume.grid.extract(&volume.data, s), rows, cols);
                    match cache.get(&key, shape) {
                        Some(hit) => {
                            self.embeddings.get((s - self.lo) as i64).copy_(&hit.to_device(device).to_kind(kind));
                            self.set_filled(s);
                            self.cached.set(self.cached.get() + 1);
                        }
                        None => to_encode.push((s, Some(key))),
                    }
                }
                _ => to_encode.push((s, None)),
            }
        }
        if !to_encode.is_empty() {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                let (done, total) = self.counts();
                return Err(SegmentError::DeadlinePassed {
                    stage: format!("encoding ({done} of {total} slices done)"),
                });
            }
            let numbers: Vec<usize> = to_encode.iter().map(|(s, _)| *s).collect();
            let (input, _) = slices_to_input(&volume.slices(&numbers).to_device(device), &sam.config);
            let mut encoded = sam.encode(&input);
            if let Some(cache) = self.cache {
                // What the cache keeps (half precision) is what this run uses too: a cold run and
                // every warm one give the same masks.
                let half = encoded.to_kind(Kind::Half);
                for (i, (_, key)) in to_encode.iter().enumerate() {
                    cache.put(key.as_ref().expect("keyed with a cache"), &half.get(i as i64));
                }
                encoded = half;
            }
            for (i, &s) in numbers.iter().enumerate() {
                self.embeddings.get((s - self.lo) as i64).copy_(&encoded.get(i as i64).to_kind(kind));
                self.set_filled(s);
            }
            self.encoded.set(self.encoded.get() + numbers.len());
        }
        if let tch::Device::Cuda(index) = device {
            tch::Cuda::synchronize(index as i64); // the time is the device's, not the launch's
        }
        self.seconds.set(self.seconds.get() + t0.elapsed().as_secs_f64());
        let (done, total) = self.counts();
        if let Some(progress) = self.progress.borrow_mut().as_mut() {
            progress(done, total);
        }
        Ok(())
    }

    /// (slices filled, slices in the store).
    fn counts(&self) -> (usize, usize) {
        let filled = self.filled.borrow();
        (filled.iter().filter(|&&f| f).count(), filled.len())
    }
}
