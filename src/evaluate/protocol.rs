//! The paper's protocol on one object of one volume, for one model; an evaluation chooses which
//! of its runs to make (`RunSpec`: the benchmark makes them all, `ProtocolSettings::benchmark_runs`):
//! - volume-level prompting: one box or one point on the object's largest slice plus its true top
//!   and bottom slices, the result carried slice to slice with mask carry and with box carry;
//! - slice-level prompting: one box or one point on every slice of the object, each slice alone;
//! - each followed by simulated correction clicks, Dice recorded after every click (0..=max);
//! - the reference pipeline (LiteMedSAM's own 3D inference: widened box carry through empty
//!   slices) from the same volume-level box, without clicks;
//! - optionally the oracle mask (of the 3 secondary masks, the one closest to the truth), without
//!   clicks, as in the paper's Table 6;
//! - optionally the CVPR 2025 interactive 3D segmentation challenge's protocol (`Level::Cvpr25`): a
//!   box on the object's middle slice plus its top and bottom slices, then clicks at the centre of
//!   the largest error component (whatever the run's own click mode), Dice after each; the report
//!   gives the final Dice and the area under the Dice-vs-clicks curve.
//!
//! Prompts follow the paper's section 3.3 (a box jittered by -5..+20 reference pixels per side, a
//! point at least 2 pixels inside the contour), seeded per object so that every model gets the same
//! prompts; `PromptStyle::Tight` uses the exact box and the deepest point instead.

use super::clicks::{next_click, ClickMode};
use super::extent;
use crate::mask_stats::dice;
use crate::prompt::simulate::{jittered_box, random_point};
use crate::prompt::{bounding_box, interior_point, SlicePrompt};
use crate::rng::SplitMix64;
use crate::segment::{Carry, CarryCue, GuardSettings, MaskChoice, PointStart, SegmentError, Segmenter, VolumeSession};
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    /// The paper's random prompts (section 3.3), seeded.
    Simulated,
    /// The exact box around the object and its deepest pixel.
    Tight,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Volume,
    Slice,
    /// The CVPR 2025 protocol (module docs): volume-level from a box on the middle slice, with
    /// centred clicks.
    Cvpr25,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    Box,
    Point,
}

/// Settings shared by every object of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProtocolSettings {
    pub prompts: PromptStyle,
    pub click_mode: ClickMode,
    pub max_clicks: usize,
    pub oracle: bool,
    pub seed: u64,
    /// Clicks of the CVPR 2025 protocol (0: not run). Runs saved before it existed read as 0.
    #[serde(default)]
    pub cvpr25_clicks: usize,
    /// Propagation guards (crate::segment::GuardSettings) on mask and box carry; off in runs saved
    /// before they existed.
    #[serde(default)]
    pub guards: bool,
    /// MaskChoice::Continuity instead of the primary mask on carried slices (every run but the
    /// oracle's and the reference pipeline's); off in runs saved before it existed.
    #[serde(default)]
    pub continuity: bool,
    /// The click check (Segmenter::with_click_check) on every run with clicks but the oracle's;
    /// off in runs saved before it existed.
    #[serde(default)]
    pub click_check: bool,
    /// What mask carry hands on besides the mask (crate::segment::CarryCue); the mask alone in
    /// runs saved before it existed.
    #[serde(default)]
    pub carry_cue: CarryCue,
    /// Extra decodings of each user-prompted slice from its own mask (Segmenter::with_refinement);
    /// 0 in runs saved before it existed.
    #[serde(default)]
    pub refine_passes: usize,
    /// The slices re-propagated from a click carried by the correction head too
    /// (Segmenter::with_correction_carry); off in runs saved before it existed.
    #[serde(default)]
    pub correction_carry: bool,
    /// Re-propagation from a click stops where a slice's mask is left as it was, at this Dice
    /// (Segmenter::with_click_settle); 0, off, in runs saved before it existed.
    #[serde(default)]
    pub click_settle: f64,
    /// Negative clicks take their region out of the clicked slice's mask prompt
    /// (Segmenter::with_negative_erase); off in runs saved before it existed.
    #[serde(default)]
    pub negative_erase: bool,
    /// How a user-prompted slice with a point alone is answered (Segmenter::with_point_start); the
    /// primary mask in runs saved before it existed.
    #[serde(default)]
    pub point_start: PointStart,
    /// A click on the prompted slice decodes it with the user's box too
    /// (Segmenter::with_prompt_box_kept); off in runs saved before it existed.
    #[serde(default)]
    pub keep_prompt_box: bool,
}

/// Dice of one (level, prompt, carry, mask) run after `clicks` correction clicks.
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub level: Level,
    pub prompt: PromptKind,
    /// Volume-level: how a slice's result prompts its neighbour. Slice-level: whether a correction
    /// also feeds the slice's current mask (mask) or only its prompt and clicks (box).
    pub carry: Carry,
    pub oracle: bool,
    pub clicks: usize,
    pub dice: f64,
}

/// Dice of one slice along a volume-level propagation (a drift curve's point).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DriftPoint {
    pub carry: Carry,
    /// Slices from the prompted slice: positive towards higher slice indices.
    pub offset: i64,
    /// 2D Dice of the slice, 0..1 (1 when prediction and truth are both empty).
    pub dice: f64,
}

#[derive(Debug, Clone)]
pub struct ObjectRun {
    pub measurements: Vec<Measurement>,
    /// Slice-by-slice Dice of the volume-level box prompt without clicks, for every carry.
    pub drift: Vec<DriftPoint>,
    /// Slices decoded and seconds spent decoding, over every run of the object.
    pub decoded_slices: usize,
    pub decode_seconds: f64,
    /// Seconds of the whole protocol for this object (decoding, prompts, clicks, Dice).
    pub seconds: f64,
    /// Seconds of each run's initial prompting (before any click), in the order of the runs made.
    pub prompt_seconds: Vec<(RunSpec, f64)>,
}

/// One run of the protocol: a level, a prompt, a carry, a mask choice, and the correction clicks
/// that follow (Dice is recorded after each, 0..=clicks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunSpec {
    pub level: Level,
    pub prompt: PromptKind,
    pub carry: Carry,
    /// BestReference is the paper's oracle (the secondary mask closest to the truth).
    pub choice: MaskChoice,
    pub clicks: usize,
    pub click_mode: ClickMode,
}

impl ProtocolSettings {
    /// A segmenter for one run with this protocol's settings for propagation and editing (guards,
    /// click check, carry cue, refinement, correction carry, click settle, negative erase, point
    /// start, prompt box): the protocols and the single-click diagnosis build theirs here, so that
    /// a setting given to `radsam bench` reaches both.
    pub fn segmenter<'s, 'a>(
        &self,
        session: &'s VolumeSession<'a>,
        carry: Carry,
        choice: MaskChoice,
        reference: Option<&'s [u8]>,
    ) -> Segmenter<'s, 'a> {
        Segmenter::new(session, carry, choice, reference)
            .with_guards(self.guards.then(GuardSettings::default))
            .with_click_check(self.click_check)
            .with_carry_cue(self.carry_cue)
            .with_refinement(self.refine_passes)
            .with_correction_carry(self.correction_carry)
            .with_click_settle(self.click_settle)
            .with_negative_erase(self.negative_erase)
            .with_point_start(self.point_start)
            .with_prompt_box_kept(self.keep_prompt_box)
    }

    /// Every run of the benchmark, in its order: volume- then slice-level, box then point, mask
    /// then box carry, each with `max_clicks` clicks and (with `oracle`) an oracle run without
    /// clicks (slice-level: one, the carry does not matter without clicks); then the CVPR 2025
    /// runs (mask, box carry) and LiteMedSAM's reference pipeline (volume-level box, no clicks).
    pub fn benchmark_runs(&self) -> Vec<RunSpec> {
        let mut runs = Vec::new();
        let model_choice = if self.continuity { MaskChoice::Continuity } else { MaskChoice::Primary };
        let run = |level, prompt, carry, choice, clicks, click_mode| RunSpec {
            level,
            prompt,
            carry,
            choice,
            clicks,
            click_mode,
        };
        for level in [Level::Volume, Level::Slice] {
            for kind in [PromptKind::Box, PromptKind::Point] {
                for carry in [Carry::Mask, Carry::Box] {
                    runs.push(run(level, kind, carry, model_choice, self.max_clicks, self.click_mode));
                    if self.oracle && !(level == Level::Slice && carry == Carry::Box) {
                        runs.push(run(level, kind, carry, MaskChoice::BestReference, 0, self.click_mode));
                    }
                }
            }
        }
        if self.cvpr25_clicks > 0 {
            for carry in [Carry::Mask, Carry::Box] {
                let centre = ClickMode::LargestErrorCentre;
                runs.push(run(Level::Cvpr25, PromptKind::Box, carry, model_choice, self.cvpr25_clicks, centre));
            }
        }
        runs.push(run(Level::Volume, PromptKind::Box, Carry::ReferenceBox, MaskChoice::Primary, 0, self.click_mode));
        runs
    }
}

/// A seed for one object, from the run's seed and the object's identity (same for every model).
pub fn object_seed(seed: u64, case: &str, class_id: u16) -> u64 {
    let mut h = SplitMix64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut acc = h.next_u64();
    for b in case.bytes().chain(class_id.to_le_bytes()) {
        acc = SplitMix64(acc ^ b as u64).next_u64();
    }
    acc
}

/// The prompt of `kind` on one slice of the truth, or None when the slice gives none (a box needs
/// positive area).
fn prompt_on(
    plane: &[u8],
    cols: usize,
    kind: PromptKind,
    style: PromptStyle,
    rng: &mut SplitMix64,
) -> Option<SlicePrompt> {
    let p = match (kind, style) {
        (PromptKind::Box, PromptStyle::Simulated) => {
            SlicePrompt { bbox: jittered_box(plane, cols, rng), ..Default::default() }
        }
        (PromptKind::Box, PromptStyle::Tight) => SlicePrompt { bbox: bounding_box(plane, cols), ..Default::default() },
        (PromptKind::Point, PromptStyle::Simulated) => {
            SlicePrompt { points: random_point(plane, cols, rng).into_iter().collect(), ..Default::default() }
        }
        (PromptKind::Point, PromptStyle::Tight) => {
            SlicePrompt { points: interior_point(plane, cols).into_iter().collect(), ..Default::default() }
        }
    };
    let usable = p.bbox.map_or(!p.points.is_empty(), |b| b.x0 < b.x1 && b.y0 < b.y1);
    usable.then_some(p)
}

/// The volume-level box prompt `run_object` draws for an object of seed `seed` on its largest
/// slice `plane` (the paper's jittered box: the first draw of the object's prompt stream).
pub fn object_seed_prompt(plane: &[u8], cols: usize, seed: u64) -> Option<SlicePrompt> {
    prompt_on(plane, cols, PromptKind::Box, PromptStyle::Simulated, &mut SplitMix64(seed))
}

/// Runs the benchmark's protocol on one object (every run of `settings.benchmark_runs()`).
pub fn run_object(
    session: &VolumeSession,
    truth: &[u8],
    settings: &ProtocolSettings,
    seed: u64,
) -> Result<Option<ObjectRun>, SegmentError> {
    run_object_with(session, truth, settings, &settings.benchmark_runs(), seed)
}

/// Makes `runs` on one object. `session` covers at least the object's slices; `truth` is the
/// object's mask on the volume grid. Prompts come from `settings.prompts`, drawn once per object in
/// a fixed order from `seed` (so every evaluation and every model gets the same ones); clicks from
/// one stream per run, the same for every model (the n-th click depends on the model's own errors).
/// A run whose prompt the object cannot give (a box of no area) is left out.
pub fn run_object_with(
    session: &VolumeSession,
    truth: &[u8],
    settings: &ProtocolSettings,
    runs: &[RunSpec],
    seed: u64,
) -> Result<Option<ObjectRun>, SegmentError> {
    let t0 = Instant::now();
    let volume = session.volume;
    let Some((lo, hi, largest)) = extent(volume, truth) else { return Ok(None) };
    let session = session.restrict((lo, hi))?;
    let cols = volume.grid.plane_shape().1;
    let plane = |s: usize| volume.grid.extract(truth, s);
    let mut measurements = Vec::new();
    let mut drift = Vec::new();
    let mut prompt_seconds = Vec::new();
    let (mut decoded_slices, mut decode_seconds) = (0, 0.0);
    // The drift curve of a volume-level box run: every slice's Dice against the truth.
    let drift_of = |seg: &Segmenter, carry: Carry| -> Vec<DriftPoint> {
        (lo..=hi)
            .map(|s| {
                let t = plane(s);
                // A slice the propagation never reached is an empty prediction (`dice` of two
                // empty masks is 1).
                let d = match seg.states().get(&s) {
                    Some(st) => dice(&st.mask, &t),
                    None if t.iter().all(|&v| v == 0) => 1.0,
                    None => 0.0,
                };
                DriftPoint { carry, offset: s as i64 - largest as i64, dice: d }
            })
            .collect()
    };

    // Prompts: drawn once per object, in a fixed order, from the object's seed.
    let mut rng = SplitMix64(seed);
    let mut initial = BTreeMap::new();
    let mut per_slice: BTreeMap<PromptKind, BTreeMap<usize, SlicePrompt>> = BTreeMap::new();
    for kind in [PromptKind::Box, PromptKind::Point] {
        initial.insert(kind, prompt_on(&plane(largest), cols, kind, settings.prompts, &mut rng));
        per_slice.insert(
            kind,
            (lo..=hi)
                .filter_map(|s| prompt_on(&plane(s), cols, kind, settings.prompts, &mut rng).map(|p| (s, p)))
                .collect(),
        );
    }
    // The CVPR 2025 protocol's box: on the middle slice, or the nearest slice holding the object,
    // drawn from its own stream, so that the other prompts stay those of runs without it.
    let cvpr25 = runs.iter().any(|r| r.level == Level::Cvpr25).then(|| {
        let middle = (lo + hi) / 2;
        let on_object = |s: &usize| plane(*s).iter().any(|&v| v != 0);
        let start = (0..=hi - lo)
            .flat_map(|d| [middle.checked_sub(d), Some(middle + d)])
            .flatten()
            .find(|s| (lo..=hi).contains(s) && on_object(s));
        let mut rng = SplitMix64(seed ^ 0xc7a2_5000);
        start.and_then(|s| prompt_on(&plane(s), cols, PromptKind::Box, settings.prompts, &mut rng).map(|p| (s, p)))
    });

    for &run in runs {
        let oracle = run.choice == MaskChoice::BestReference;
        let mut seg = settings.segmenter(&session, run.carry, run.choice, Some(truth));
        let t = Instant::now();
        match run.level {
            Level::Volume => match &initial[&run.prompt] {
                Some(p) => seg.start(largest, p)?,
                None => continue,
            },
            Level::Slice if per_slice[&run.prompt].is_empty() => continue,
            Level::Slice => seg.slice_level(&per_slice[&run.prompt])?,
            Level::Cvpr25 => match cvpr25.as_ref().and_then(Option::as_ref) {
                Some((start, p)) => seg.start(*start, p)?,
                None => continue,
            },
        }
        prompt_seconds.push((run, t.elapsed().as_secs_f64()));
        if run.level == Level::Volume && run.prompt == PromptKind::Box && !oracle {
            drift.extend(drift_of(&seg, run.carry));
        }
        let mut record = |clicks, dice| {
            measurements.push(Measurement {
                level: run.level,
                prompt: run.prompt,
                carry: run.carry,
                oracle,
                clicks,
                dice,
            })
        };
        // The 3D mask is built once per step: scored, then the next click reads it.
        let mut mask = seg.mask();
        record(0, dice(&mask, truth));
        let mut click_rng = SplitMix64(seed ^ 0xc1c4);
        for n in 1..=run.clicks {
            match next_click(run.click_mode, &mask, truth, &volume.grid, volume.spacing, (lo, hi), &mut click_rng) {
                Some(click) => {
                    seg.add_click(click)?;
                    mask = seg.mask();
                    record(n, dice(&mask, truth));
                }
                None => record(n, 1.0),
            }
        }
        decoded_slices += seg.decoded_slices;
        decode_seconds += seg.decode_seconds;
    }
    Ok(Some(ObjectRun {
        measurements,
        drift,
        decoded_slices,
        decode_seconds,
        seconds: t0.elapsed().as_secs_f64(),
        prompt_seconds,
    }))
}
