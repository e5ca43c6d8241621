//! Why do correction clicks not raise Dice? (issue #17, item 2.) One click at a time, each on a
//! fresh copy of the same propagated result: for every slice of an object that holds an error, a
//! positive click in its missed region and a negative click in its wrongly included region, each
//! placed two ways (a pixel drawn uniformly from that error on the slice, and the centre of the
//! slice's largest 4-connected component of it: its pixel farthest from the component's outside).
//! Each click is scored by the Dice of its slice and of the whole object, before and after.
//!
//! The starting result is the protocol's volume-level box prompt (the same jittered box on the
//! largest slice, from the same object seed as `run_object`), carried with mask or box carry. To
//! keep the cost of a run in minutes, at most `slices_per_object` slices of an object are clicked,
//! evenly spaced over its extent (its end slices included).

use crate::evaluate::{extent, object_seed_prompt, ProtocolSettings};
use crate::mask_stats::dice;
use crate::prompt::Click;
use crate::rng::SplitMix64;
use crate::segment::{Carry, MaskChoice, SegmentError, VolumeSession};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// A pixel drawn uniformly from the slice's error of the click's kind.
    Uniform,
    /// The centre of the slice's largest connected error of the click's kind.
    Centre,
}

/// The effect of one click (Dice 0..1).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClickEffect {
    pub carry: Carry,
    pub slice: usize,
    /// Slices from the prompted slice (0: the click is on the prompted slice).
    pub distance: usize,
    pub positive: bool,
    pub placement: Placement,
    /// Pixels of the error the click was drawn from.
    pub error_pixels: usize,
    pub slice_dice_before: f64,
    pub slice_dice_after: f64,
    pub volume_dice_before: f64,
    pub volume_dice_after: f64,
}

/// Every single click on every erroneous slice of one object (module docs), for each carry.
/// `truth` is the object's mask on the volume grid; `seed` its `object_seed`; `settings`: the
/// protocol's settings for propagation and editing (the negative erase, guards, ...;
/// ProtocolSettings::segmenter), with the primary mask.
pub fn diagnose_object(
    session: &VolumeSession,
    truth: &[u8],
    carries: &[Carry],
    seed: u64,
    slices_per_object: usize,
    settings: &ProtocolSettings,
) -> Result<Vec<ClickEffect>, SegmentError> {
    let volume = session.volume;
    let Some((lo, hi, largest)) = extent(volume, truth) else { return Ok(Vec::new()) };
    let session = session.restrict((lo, hi))?;
    let grid = &volume.grid;
    let (rows, cols) = grid.plane_shape();
    let Some(prompt) = object_seed_prompt(&grid.extract(truth, largest), cols, seed) else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    for &carry in carries {
        let mut start = settings.segmenter(&session, carry, MaskChoice::Primary, None);
        start.start(largest, &prompt)?;
        let before = start.mask();
        let volume_before = dice(&before, truth);
        let mut rng = SplitMix64(seed ^ 0xd1a6);
        let n = hi - lo + 1;
        let k = slices_per_object.clamp(1, n);
        let mut slices: Vec<usize> = (0..k).map(|i| lo + i * (n - 1) / (k - 1).max(1)).collect();
        slices.dedup();
        for s in slices {
            let (p, t) = (grid.extract(&before, s), grid.extract(truth, s));
            let slice_before = dice(&p, &t);
            for positive in [true, false] {
                // Missed pixels for a positive click, wrongly included ones for a negative.
                let error: Vec<bool> = p
                    .iter()
                    .zip(&t)
                    .map(|(&a, &b)| if positive { b != 0 && a == 0 } else { a != 0 && b == 0 })
                    .collect();
                let pixels: Vec<usize> = (0..error.len()).filter(|&i| error[i]).collect();
                if pixels.is_empty() {
                    continue;
                }
                for placement in [Placement::Uniform, Placement::Centre] {
                    let at = match placement {
                        Placement::Uniform => pixels[rng.below(pixels.len())],
                        Placement::Centre => largest_component_centre(&error, rows, cols).0,
                    };
                    let click = Click { slice: s, x: (at % cols) as f64, y: (at / cols) as f64, positive };
                    let mut edited = start.clone();
                    edited.add_click(click)?;
                    let after = edited.mask();
                    out.push(ClickEffect {
                        carry,
                        slice: s,
                        distance: s.abs_diff(largest),
                        positive,
                        placement,
                        error_pixels: pixels.len(),
                        slice_dice_before: slice_before,
                        slice_dice_after: dice(&grid.extract(&after, s), &t),
                        volume_dice_before: volume_before,
                        volume_dice_after: dice(&after, truth),
                    });
                }
            }
        }
    }
    Ok(out)
}

/// The pixel (row-major index) of the largest 4-connected component of `error` that lies farthest
/// (city-block steps) from the component's outside, and the component's size in pixels; ties go to
/// the first in index order. `error` must hold at least one pixel.
pub fn largest_component_centre(error: &[bool], rows: usize, cols: usize) -> (usize, usize) {
    let neighbours = |i: usize| {
        let (r, c) = (i / cols, i % cols);
        [
            (r > 0).then(|| i - cols),
            (r + 1 < rows).then(|| i + cols),
            (c > 0).then(|| i - 1),
            (c + 1 < cols).then(|| i + 1),
        ]
    };
    // The largest component, the first of those of its size.
    let (label, sizes) = crate::mask_stats::components4(error.len(), cols, |i| error[i]);
    let largest = *sizes.iter().max().expect("a non-empty error");
    let id = sizes.iter().position(|&s| s == largest).expect("its size");
    let inside = |i: usize| label[i] == id;
    let best: Vec<usize> = (0..error.len()).filter(|&i| inside(i)).collect();
    // Distance to the outside by breadth-first layers from the component's border (a pixel next to
    // a non-member, or on the image edge, is at distance 1).
    let mut distance = vec![0usize; error.len()];
    let mut layer: Vec<usize> =
        best.iter().copied().filter(|&i| neighbours(i).iter().any(|n| n.is_none_or(|n| !inside(n)))).collect();
    for &i in &layer {
        distance[i] = 1;
    }
    let mut d = 1;
    while !layer.is_empty() {
        d += 1;
        let mut next = Vec::new();
        for &i in &layer {
            for n in neighbours(i).into_iter().flatten() {
                if inside(n) && distance[n] == 0 {
                    distance[n] = d;
                    next.push(n);
                }
            }
        }
        layer = next;
    }
    let size = best.len();
    // `best` is in index order: ties go to the first pixel.
    (best.into_iter().max_by_key(|&i| (distance[i], std::cmp::Reverse(i))).expect("a non-empty component"), size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn centre_is_the_deepest_pixel_of_the_largest_component() {
        // 7x9: a 1x2 blob at the top left, a 5x5 square at rows 1..=5, cols 3..=7.
        let (rows, cols) = (7, 9);
        let mut e = vec![false; rows * cols];
        e[0] = true;
        e[1] = true;
        for r in 1..=5 {
            for c in 3..=7 {
                e[r * cols + c] = true;
            }
        }
        assert_eq!(largest_component_centre(&e, rows, cols), (3 * cols + 5, 25));
        // A 3x3 block in the corner of a 5x5 image: the image edge counts as outside, so the
        // block's middle pixel is the deepest.
        let mut e = vec![false; 25];
        for r in 0..3 {
            for c in 0..3 {
                e[r * 5 + c] = true;
            }
        }
        assert_eq!(largest_component_centre(&e, 5, 5), (5 + 1, 9));
    }
}
