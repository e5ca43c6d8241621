//! The paper's evaluation protocol on one object with a reference mask (section 5): from a box
//! or a point on the object's largest slice and its true boundaries, volume-level Dice with mask
//! carry and with box carry; slice-level Dice (a box or a point on every slice); Dice after 5,
//! 10 and 20 simulated correction clicks (uniform in the 3D error region).

use crate::metrics::dice;
use crate::model::Sam;
use crate::prompt::{bounding_box, interior_point, simulate_click, SlicePrompt};
use crate::rng::SplitMix64;
use crate::segment::{Carry, MaskChoice, SegmentError, Segmenter, VolumeSession};
use crate::volume::Volume;
use serde::Serialize;
use std::collections::BTreeMap;

/// Click counts at which Dice is reported.
pub const CLICK_STEPS: [usize; 3] = [5, 10, 20];

#[derive(Debug, Clone, Serialize)]
pub struct ObjectEvaluation {
    pub name: String,
    pub boundaries: (usize, usize),
    pub prompted_slice: usize,
    pub reference_voxels: u64,
    /// Volume-level Dice, keyed "box/mask carry", "box/box carry", "point/mask carry", "point/box carry".
    pub volume_level: BTreeMap<String, f64>,
    /// Slice-level Dice, keyed "box", "point".
    pub slice_level: BTreeMap<String, f64>,
    /// Dice after n clicks (CLICK_STEPS), starting from the box prompt with `click_carry`.
    pub clicks: BTreeMap<usize, f64>,
    pub click_carry: Carry,
    pub encode_seconds: f64,
    /// Seconds of the box-prompt, box-carry propagation alone (decoder, prompts, masks).
    pub box_carry_seconds: f64,
}

/// The object's slice range (first, last) and its largest slice, or None when the mask is empty.
pub fn extent(volume: &Volume, truth: &[u8]) -> Option<(usize, usize, usize)> {
    let per_slice: Vec<usize> =
        (0..volume.num_slices()).map(|s| volume.grid.extract(truth, s).iter().filter(|&&v| v != 0).count()).collect();
    let lo = per_slice.iter().position(|&c| c > 0)?;
    let hi = per_slice.iter().rposition(|&c| c > 0)?;
    let largest = (lo..=hi).max_by_key(|&s| (per_slice[s], std::cmp::Reverse(s)))?;
    Some((lo, hi, largest))
}

pub fn evaluate_object(
    sam: &Sam,
    volume: &Volume,
    name: &str,
    truth: &[u8],
    choice: MaskChoice,
    click_carry: Carry,
    seed: u64,
) -> Result<Option<ObjectEvaluation>, SegmentError> {
    let Some((lo, hi, start)) = extent(volume, truth) else { return Ok(None) };
    let cols = volume.grid.plane_shape().1;
    let session =
        VolumeSession::new(sam, volume, (lo, hi), VolumeSession::default_batch(sam.device()), &mut |_, _| {})?;
    let plane = |s: usize| volume.grid.extract(truth, s);
    let box_prompt = |s: usize| SlicePrompt { bbox: bounding_box(&plane(s), cols), ..Default::default() };
    let point_prompt =
        |s: usize| SlicePrompt { points: interior_point(&plane(s), cols).into_iter().collect(), ..Default::default() };
    let reference = Some(truth);

    let mut volume_level = BTreeMap::new();
    let mut box_carry_seconds = 0.0;
    for (pname, prompt) in [("box", box_prompt(start)), ("point", point_prompt(start))] {
        for (cname, carry) in [("mask carry", Carry::Mask), ("box carry", Carry::Box)] {
            let mut seg = Segmenter::new(&session, carry, choice, reference);
            let t = std::time::Instant::now();
            seg.start(start, &prompt)?;
            if pname == "box" && carry == Carry::Box {
                box_carry_seconds = t.elapsed().as_secs_f64();
            }
            volume_level.insert(format!("{pname}/{cname}"), dice(&seg.mask(), truth));
        }
    }

    let mut slice_level = BTreeMap::new();
    for (pname, make) in [("box", &box_prompt as &dyn Fn(usize) -> SlicePrompt), ("point", &point_prompt)] {
        // Slices where the object is a single row or column give no box of positive area: those
        // slices get no prompt (and count as missed).
        let usable = |p: &SlicePrompt| p.bbox.map_or(!p.points.is_empty(), |b| b.x0 < b.x1 && b.y0 < b.y1);
        let prompts: BTreeMap<usize, SlicePrompt> =
            (lo..=hi).map(|s| (s, make(s))).filter(|(_, p)| usable(p)).collect();
        let mut seg = Segmenter::new(&session, Carry::Box, choice, reference);
        seg.slice_level(&prompts)?;
        slice_level.insert(pname.to_string(), dice(&seg.mask(), truth));
    }

    let mut clicks = BTreeMap::new();
    let mut seg = Segmenter::new(&session, click_carry, choice, reference);
    seg.start(start, &box_prompt(start))?;
    let mut rng = SplitMix64(seed);
    for n in 1..=*CLICK_STEPS.last().unwrap() {
        if let Some(click) = simulate_click(&seg.mask(), truth, &volume.grid, (lo, hi), &mut rng) {
            seg.add_click(click)?;
        }
        if CLICK_STEPS.contains(&n) {
            clicks.insert(n, dice(&seg.mask(), truth));
        }
    }
    Ok(Some(ObjectEvaluation {
        name: name.to_string(),
        boundaries: (lo, hi),
        prompted_slice: start,
        reference_voxels: crate::metrics::voxel_count(truth),
        volume_level,
        slice_level,
        clicks,
        click_carry,
        encode_seconds: session.encode_seconds,
        box_carry_seconds,
    }))
}
