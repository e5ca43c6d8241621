//! A volume session: the slices between the object's boundaries encoded once, in batches, and
//! kept for every prompt and edit that follows (the image encoder does not depend on prompts).
//! Embeddings stay on the model's device: f32 on CPU, half precision on GPU to halve memory.

use super::embedding_cache::{EmbeddingCache, EncoderKey, SliceKey};
use super::SegmentError;
use crate::model::preprocess::{slices_to_input, SliceGeometry};
use crate::model::Sam;
use crate::volume::Volume;
use std::time::Instant;
use tch::{Kind, Tensor};

pub struct VolumeSession<'a> {
    pub sam: &'a Sam,
    pub volume: &'a Volume,
    /// First and last encoded slice (inclusive, lo <= hi).
    pub lo: usize,
    pub hi: usize,
    pub geometry: SliceGeometry,
    /// (hi - lo + 1, 256, E, E)
    embeddings: Tensor,
    /// Seconds spent filling the session: encoding, and reading the cache.
    pub encode_seconds: f64,
    /// Slices read from the embedding cache rather than encoded.
    pub cached_slices: usize,
}

impl<'a> VolumeSession<'a> {
    /// Encodes slices `a..=b` (either order) in batches of `batch`; `progress(done, total)` after
    /// each batch. On this project's 2-core CPU, batching gains nothing over one slice at a time
    /// (bench/results/model_bench.md), so [`default_batch`] is 1 there and 8 on a GPU.
    pub fn new(
        sam: &'a Sam,
        volume: &'a Volume,
        range: (usize, usize),
        batch: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, SegmentError> {
        Self::new_until(sam, volume, range, batch, None, None, progress)
    }

    /// As [`new`](Self::new), giving up with [`SegmentError::DeadlinePassed`] when `deadline`
    /// has passed before a batch (encoding is the longest step of a job, and a job over its time
    /// budget must free the model thread for the next one: the worker's JOB_TIMEOUT), and reading
    /// every slice it can from `cache` (storing what it had to encode there).
    pub fn new_until(
        sam: &'a Sam,
        volume: &'a Volume,
        (a, b): (usize, usize),
        batch: usize,
        deadline: Option<Instant>,
        cache: Option<&EmbeddingCache>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self, SegmentError> {
        let count = volume.num_slices();
        for slice in [a, b] {
            if slice >= count {
                return Err(SegmentError::BoundaryOutside { slice, count });
            }
        }
        let (lo, hi) = (a.min(b), a.max(b));
        let t0 = Instant::now();
        let device = sam.device();
        let store_kind = if device.is_cuda() { Kind::Half } else { Kind::Float };
        let total = hi - lo + 1;
        let (rows, cols) = volume.grid.plane_shape();
        let geometry = SliceGeometry::new(rows as i64, cols as i64, sam.config.image_size);
        // One preallocated store, filled slice by slice from the cache and batch by batch from
        // the encoder: no concatenation copy at the end.
        let e = sam.config.embedding_size();
        let shape = [256, e, e];
        let embeddings = Tensor::empty([total as i64, 256, e, e], (store_kind, device));
        let mut done = 0;
        // Slices the cache does not hold, with their keys when there is a cache.
        let mut to_encode: Vec<(usize, Option<SliceKey>)> = Vec::with_capacity(total);
        match cache {
            None => to_encode.extend((lo..=hi).map(|s| (s, None))),
            Some(cache) => {
                let encoder = EncoderKey::new(sam);
                for s in lo..=hi {
                    let key = encoder.slice(&volume.grid.extract(&volume.data, s), rows, cols);
                    match cache.get(&key, &shape) {
                        Some(hit) => {
                            embeddings.get((s - lo) as i64).copy_(&hit.to_device(device).to_kind(store_kind));
                            done += 1;
                        }
                        None => to_encode.push((s, Some(key))),
                    }
                }
                if done > 0 {
                    progress(done, total);
                }
            }
        }
        let cached_slices = done;
        for chunk in to_encode.chunks(batch.max(1)) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(SegmentError::DeadlinePassed {
                    stage: format!("encoding ({done} of {total} slices done)"),
                });
            }
            let slices: Vec<usize> = chunk.iter().map(|(s, _)| *s).collect();
            let hu = volume.slices(&slices).to_device(device);
            let (input, _) = slices_to_input(&hu, &sam.config);
            let mut encoded = sam.encode(&input);
            if let Some(cache) = cache {
                // What the cache keeps (half precision) is what this run uses too: a cold run and
                // every warm one give the same masks.
                let half = encoded.to_kind(Kind::Half);
                for (i, (_, key)) in chunk.iter().enumerate() {
                    cache.put(key.as_ref().expect("keyed with a cache"), &half.get(i as i64));
                }
                encoded = half;
            }
            for (i, s) in slices.iter().enumerate() {
                embeddings.get((s - lo) as i64).copy_(&encoded.get(i as i64).to_kind(store_kind));
            }
            done += chunk.len();
            progress(done, total);
        }
        let _ = embeddings.sum(Kind::Float).double_value(&[]); // wait for the device before timing
        Ok(Self {
            sam,
            volume,
            lo,
            hi,
            geometry,
            embeddings,
            encode_seconds: t0.elapsed().as_secs_f64(),
            cached_slices,
        })
    }

    /// The same embeddings, limited to slices `a..=b` (either order) inside this session: an
    /// object's boundaries within a volume encoded once (no copy, no encoding).
    pub fn restrict(&self, (a, b): (usize, usize)) -> Result<VolumeSession<'a>, SegmentError> {
        let (lo, hi) = (a.min(b), a.max(b));
        for slice in [lo, hi] {
            if !self.contains(slice) {
                return Err(SegmentError::SliceOutsideBoundaries { slice, lo: self.lo, hi: self.hi });
            }
        }
        let embeddings = self.embeddings.narrow(0, (lo - self.lo) as i64, (hi - lo + 1) as i64);
        Ok(Self {
            sam: self.sam,
            volume: self.volume,
            lo,
            hi,
            geometry: self.geometry,
            embeddings,
            encode_seconds: 0.0,
            cached_slices: 0,
        })
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

    /// The embedding of one slice, (1, 256, E, E) in f32.
    pub fn embedding(&self, slice: usize) -> Tensor {
        self.embeddings.narrow(0, (slice - self.lo) as i64, 1).to_kind(Kind::Float)
    }
}
