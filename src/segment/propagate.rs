//! RadSAM volume-level prompting and 3D editing (paper section 4).
//!
//! One prompt on slice i, inside the object's boundaries: slice i is segmented, then the result is
//! carried slice by slice up to the upper boundary and down to the lower one. With mask carry
//! (RadSAM) each slice's prompt is the previous slice's predicted mask, binarised on the decoder's
//! low-resolution grid; with box carry (the baseline for models not trained on mask prompts, SAM,
//! MedSAM) it is the box around the previous slice's mask. Clicks stored on a slice join its
//! prompt as points.
//!
//! When a slice's mask comes out empty, propagation in that direction stops there: the object has
//! ended (or was lost), the further slices in that direction stay empty, and the stop is reported
//! (`stops`). With guards on (`with_guards`, guard.rs), a carried slice whose mask leaks (its area
//! jumps) or whose predicted IoU collapses takes one of the decoder's other masks instead, or, for a
//! leak with no acceptable mask, stops the propagation there; each firing is reported
//! (`guard_events`).
//!
//! Editing. The prompted slice and every clicked slice are *anchors*: they hold the user's own
//! input. A correction click refines its slice from that slice's current result in the carry's
//! form (the mask, or its box) plus all clicks on the slice, then re-propagates *downstream*: away
//! from the prompted slice, the way the carry flowed through the clicked slice, up to the next
//! anchor (exclusive) or the boundary, with the clicks stored on each slice it passes. Upstream,
//! between the clicked slice and the prompted one, the slices were carried from the user's prompt,
//! not through the clicked slice: they are kept, and only slices that propagation left empty (past
//! a stop) are filled from the click. Re-propagating upstream too let one boundary click overwrite
//! good slices next to the prompt (bench/results/radsam_validation.md, before and after). A click on
//! the prompted slice re-propagates both ways. Slices beyond an anchor derive from that anchor and
//! are unchanged. With mask carry and the negative erase on (`with_negative_erase`, on in jobs), a
//! negative click first takes its region out of its slice's mask prompt (negative_erase.rs). The
//! result depends only on the initial prompt and the sequence of clicks, so a stateless worker
//! replaying a job's clicks in order gets the mask of the interactive session.

use super::guard::{GuardEvent, GuardSettings, Verdict};
use super::negative_erase::erased_by_negative_clicks;
use super::session::VolumeSession;
use super::slice_level::{choose, prompt_batch, MaskChoice};
use super::snapshot::{SavedSlice, Snapshot, SnapshotError};
use super::SegmentError;
use crate::mask_stats::dice;
use crate::model::preprocess::{logits_to_slice, mask_to_prompt};
use crate::model::NUM_MASKS;
use crate::prompt::{bounding_box, Click, Point, SlicePrompt};
use std::collections::BTreeMap;
use std::time::Instant;
use tch::{Kind, Tensor};

/// Which of the model's decoders answers a slice (crate::model docs; one and the same for weights
/// without a correction head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// The prompted slice and every carried one.
    Propagation,
    /// A clicked slice.
    Correction,
}

/// How a slice's result becomes the prompt of its neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Carry {
    /// The binary mask (RadSAM).
    Mask,
    /// The box around the mask (baseline for SAM and MedSAM).
    Box,
    /// LiteMedSAM's reference 3D inference (MedSAM's CVPR 2024 code), the baseline the project
    /// must beat: the box of the previous slice's mask widened by 3 pixels of the 256-pixel model
    /// grid; after an empty slice, the prompted slice's box again (the propagation never stops).
    ReferenceBox,
}

impl Carry {
    /// The name jobs, flags and result rows use (as serde spells it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Mask => "mask",
            Self::Box => "box",
            Self::ReferenceBox => "reference_box",
        }
    }
}

/// How the user's slice is answered when its prompt is points alone, no box and no mask
/// (`Segmenter::with_point_start`). Why: one point is ambiguous (a part, the organ, the organ and
/// its neighbour) and the slice it is on is the one every carried slice inherits; a box is not
/// (the benchmark's slice-level box is 16 points above its point, bench/results/benchmark/). SAM
/// answers a lone point with the secondary mask it predicts best; or the point's own answer can
/// be turned into a box and decoded again with the point. Measured on unseen phantoms
/// (bench/results/point_start/, v7): both lose to the primary mask (volume point with mask carry
/// 73.7 -> 70.5 and 66.4), so jobs answer with the primary; the others are for benchmarks
/// (`radsam bench --point-start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointStart {
    /// The decoder's primary mask, as for any other prompt.
    #[default]
    Primary,
    /// The secondary mask (1..=3) with the best predicted IoU (SAM's answer to one point).
    BestIou,
    /// The primary mask's bounding box joins the points, and the slice is decoded again.
    Box,
    /// Another model answers the slice (the session's point assist,
    /// `VolumeSession::with_point_assist`: e.g. one fine-tuned from MobileSAM, which reads a lone
    /// point better) and this model carries its mask on; the primary mask without an assist.
    Assist,
    /// The assist answers the slice as for `Assist`, its mask's bounding box joins the points, and
    /// this model decodes the slice from both (it reads a box best); the primary mask without an
    /// assist, or when the assist's mask is empty.
    AssistBox,
}

impl PointStart {
    /// The name flags and reports use (as serde spells it).
    pub fn name(self) -> &'static str {
        match self {
            Self::Primary => "primary",
            Self::BestIou => "best_iou",
            Self::Box => "box",
            Self::Assist => "assist",
            Self::AssistBox => "assist_box",
        }
    }

    /// Whether a point alone is answered (in part) by the session's point assist.
    pub fn uses_assist(self) -> bool {
        matches!(self, Self::Assist | Self::AssistBox)
    }

    /// Parses a flag's value: `primary`, `best-iou`, `box`, `assist` or `assist-box` (`_` and `-`
    /// alike).
    pub fn by_name(name: &str) -> Option<Self> {
        match name.replace('-', "_").as_str() {
            "primary" => Some(Self::Primary),
            "best_iou" => Some(Self::BestIou),
            "box" => Some(Self::Box),
            "assist" => Some(Self::Assist),
            "assist_box" => Some(Self::AssistBox),
            _ => None,
        }
    }
}

/// What mask carry hands on besides the previous slice's binary mask (`Segmenter::with_carry_cue`).
/// Why: the mask alone lets a carried slice drift, leaking into a neighbour of the same density or
/// shrinking to nothing part-way (issue #17); a box or a positive point taken from the previous
/// slice's mask tells the decoder where the object is as well as what shape it had. Measured on
/// the training split (bench/results/carry_cue/, v1), neither cue beats the mask alone: each holds
/// large organs in place and drags small vessels into a neighbour. The ensemble (a second
/// decoding from the box, averaged) gains on the training split and the validation CT without
/// clicks and costs the CVPR 2025 protocol 0.7 points on unseen phantoms
/// (bench/results/carry_ensemble/). So the mask alone is the default; jobs may turn the ensemble
/// on (`ProcessOptions::carry_ensemble`), the others are for benchmarks (`radsam bench --carry-cue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CarryCue {
    /// The mask alone (the paper's RadSAM).
    #[default]
    MaskOnly,
    /// The mask plus the box around it, widened as the reference pipeline widens its box.
    Box,
    /// The mask plus a positive point at its deepest interior pixel (farthest from its outline).
    Centre,
    /// The mask alone, and the slice decoded a second time as the reference pipeline decodes it
    /// (the previous mask's widened box, or the prompted slice's box after an empty slice); the
    /// slice keeps the mean of the two answers' probabilities. Why: the two carries fail on
    /// different objects (bench/results/carry_cue/: a box holds large organs in place, the mask
    /// follows thin vessels), and averaging two answers keeps what both agree on; the decoder is
    /// cheap beside the encoder, whose embedding both decodings share.
    Ensemble,
}

impl CarryCue {
    /// The cue in words, for reports.
    pub fn description(self) -> &'static str {
        match self {
            Self::MaskOnly => "mask alone",
            Self::Box => "widened box as a cue",
            Self::Centre => "deepest point as a positive click",
            Self::Ensemble => "answer averaged with the reference pipeline's",
        }
    }

    /// Parses a flag's value: `mask-only`, `box`, `centre` or `ensemble` (`_` and `-` alike).
    pub fn by_name(name: &str) -> Option<Self> {
        match name.replace('-', "_").as_str() {
            "mask_only" => Some(Self::MaskOnly),
            "box" => Some(Self::Box),
            "centre" | "center" => Some(Self::Centre),
            "ensemble" => Some(Self::Ensemble),
            _ => None,
        }
    }
}

/// The reference pipeline's box margin, in pixels of its 256-pixel grid.
const REFERENCE_MARGIN_256: f64 = 3.0;

/// Propagation stopped early in one direction: `empty_slice` came out empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stop {
    /// +1 towards higher slice indices, -1 towards lower.
    pub direction: i8,
    pub empty_slice: usize,
}

/// The answer on one slice.
#[derive(Debug)]
pub struct SliceState {
    /// (1, 1, M, M) binary chosen mask on the decoder's low-resolution grid (the mask carry).
    pub low_res: Tensor,
    /// The chosen mask on the slice grid, row-major, 0/1.
    pub mask: Vec<u8>,
    pub iou: [f32; NUM_MASKS as usize],
    pub chosen: i64,
}

impl SliceState {
    /// The same decoding with another of its masks kept: mask `k` of its (1, 4, M, M) low-resolution
    /// `logits`, `mask` being that mask on the slice grid (guards, continuity, click check).
    fn switched(self, logits: &Tensor, k: i64, mask: Vec<u8>) -> Self {
        Self { low_res: logits.narrow(1, k, 1).gt(0.0).to_kind(Kind::Float), mask, iou: self.iou, chosen: k }
    }
}

impl Clone for SliceState {
    /// Shares the low-resolution tensor: states are replaced, never changed in place.
    fn clone(&self) -> Self {
        Self { low_res: self.low_res.shallow_clone(), mask: self.mask.clone(), iou: self.iou, chosen: self.chosen }
    }
}

/// A copy of a segmenter is an independent editing session from the same state (what-if clicks).
#[derive(Clone)]
pub struct Segmenter<'s, 'a> {
    session: &'s VolumeSession<'a>,
    carry: Carry,
    /// With mask carry: what a carried slice receives besides the mask.
    cue: CarryCue,
    /// Times a user-prompted slice is decoded again from its own mask (`with_refinement`).
    refine_passes: usize,
    /// How a user-prompted slice with points alone is answered (`with_point_start`).
    point_start: PointStart,
    choice: MaskChoice,
    /// Reference mask on the volume grid, for the BestReference oracle of benchmarks.
    reference: Option<&'s [u8]>,
    states: BTreeMap<usize, SliceState>,
    clicks: BTreeMap<usize, Vec<Point>>,
    /// Every click applied, in order (what a saved session records).
    click_order: Vec<Click>,
    /// The prompted slice and the clicked slices: propagation never overwrites them.
    anchors: std::collections::BTreeSet<usize>,
    /// Slice-level prompting: each slice's own prompt; clicks then refine their slice alone.
    slice_prompts: Option<BTreeMap<usize, SlicePrompt>>,
    /// The slice of the volume-level prompt: the carry flows outward from it.
    origin: usize,
    /// The volume-level prompt's box, which the reference pipeline falls back on after an empty slice.
    origin_box: Option<crate::prompt::BoxPrompt>,
    stops: Vec<Stop>,
    /// Propagation guards (guard.rs); None: off.
    guard: Option<GuardSettings>,
    /// Click check (`with_click_check`): a clicked slice keeps a mask that agrees with its clicks.
    click_check: bool,
    /// Which head carries the slices re-propagated from a click (`with_correction_carry`).
    click_carry: Head,
    /// Re-propagation from a click settles (`with_click_settle`): it stops at the first slice whose
    /// new mask has at least this Dice with its previous one; 0: off.
    click_settle: f64,
    /// Negative clicks take their region out of a clicked slice's mask prompt (`with_negative_erase`).
    negative_erase: bool,
    /// A click on the prompted slice decodes it with the user's box too (`with_prompt_box_kept`).
    keep_prompt_box: bool,
    /// The guards that fired, by slice: a slice's event goes when the slice is computed again.
    guard_events: BTreeMap<usize, GuardEvent>,
    started: bool,
    pub decode_seconds: f64,
    pub decoded_slices: usize,
    /// The slices decoded, in order (what the unit tests check propagation's order against).
    #[cfg(test)]
    decode_order: Vec<usize>,
    /// The box of each decoding's prompt, in the same order (unit tests).
    #[cfg(test)]
    decode_boxes: Vec<Option<crate::prompt::BoxPrompt>>,
}

impl<'s, 'a> Segmenter<'s, 'a> {
    pub fn new(session: &'s VolumeSession<'a>, carry: Carry, choice: MaskChoice, reference: Option<&'s [u8]>) -> Self {
        Self {
            session,
            carry,
            cue: CarryCue::MaskOnly,
            refine_passes: 0,
            point_start: PointStart::Primary,
            choice,
            reference,
            states: BTreeMap::new(),
            clicks: BTreeMap::new(),
            click_order: Vec::new(),
            anchors: Default::default(),
            slice_prompts: None,
            origin: 0,
            origin_box: None,
            stops: Vec::new(),
            guard: None,
            click_check: false,
            click_carry: Head::Propagation,
            click_settle: 0.0,
            negative_erase: false,
            keep_prompt_box: false,
            guard_events: BTreeMap::new(),
            started: false,
            decode_seconds: 0.0,
            decoded_slices: 0,
            #[cfg(test)]
            decode_order: Vec::new(),
            #[cfg(test)]
            decode_boxes: Vec::new(),
        }
    }

    /// Turns the propagation guards on (Some) or off (None, the default). They act on mask and box
    /// carry, never on the reference pipeline or the oracle's choice.
    pub fn with_guards(mut self, guard: Option<GuardSettings>) -> Self {
        self.guard = guard;
        self
    }

    /// With mask carry, what a carried slice receives besides the previous slice's mask (CarryCue;
    /// the mask alone by default). Box and reference carry ignore it.
    pub fn with_carry_cue(mut self, cue: CarryCue) -> Self {
        self.cue = cue;
        self
    }

    /// Decodes each user-prompted slice (the volume-level prompt's, each slice-level prompt's)
    /// `passes` more times, each from its previous binary mask plus the prompt's points (no box),
    /// before anything is carried from it (0, the default: once). Why: the fine-tune's edit steps
    /// teach the decoder to improve a mask handed back with the clicks (trainer/src/recipe.rs), and
    /// a mask-prompted slice is what every carried slice is; the first answer from a box or a single
    /// point is the one every other slice inherits. Box and reference carry also use it. Measured
    /// on the training split (bench/results/refinement/, v1), one pass loses 1.5 points from a
    /// box: off in jobs, for benchmarks only (`radsam bench --refine-passes`).
    pub fn with_refinement(mut self, passes: usize) -> Self {
        self.refine_passes = passes;
        self
    }

    /// How a user-prompted slice whose prompt is points alone is answered (PointStart; the
    /// primary mask by default). Box prompts, masks, clicks and carried slices are unchanged.
    pub fn with_point_start(mut self, start: PointStart) -> Self {
        self.point_start = start;
        self
    }

    /// The prompted slice's answer: decoded from `prompt` (`with_point_start`), then refined
    /// (`with_refinement`).
    fn decode_prompted(&mut self, slice: usize, prompt: &SlicePrompt) -> Result<SliceState, SegmentError> {
        let points_only = prompt.bbox.is_none() && prompt.mask.is_none() && !prompt.points.is_empty();
        let mut state = match self.point_start {
            // The oracle picks by the truth on every slice: nothing to choose before it.
            PointStart::BestIou if points_only && self.choice != MaskChoice::BestReference => {
                let (state, logits) = self.decode_with_logits(slice, prompt, None, Head::Propagation)?;
                let best = choose(&state.iou, MaskChoice::BestPredictedIou);
                if best == state.chosen {
                    state
                } else {
                    let mask = self.plane(&logits, best);
                    state.switched(&logits, best, mask)
                }
            }
            PointStart::Box if points_only => {
                let first = self.decode(slice, prompt, None)?;
                match bounding_box(&first.mask, self.plane_size().0) {
                    Some(bbox) => {
                        let with_box = SlicePrompt { points: prompt.points.clone(), bbox: Some(bbox), mask: None };
                        self.decode(slice, &with_box, None)?
                    }
                    None => first,
                }
            }
            PointStart::Assist if points_only && self.session.point_assist().is_some() => {
                self.decode_by_assist(slice, prompt)?
            }
            PointStart::AssistBox if points_only && self.session.point_assist().is_some() => {
                let assisted = self.decode_by_assist(slice, prompt)?;
                match bounding_box(&assisted.mask, self.plane_size().0) {
                    Some(bbox) => {
                        let with_box = SlicePrompt { points: prompt.points.clone(), bbox: Some(bbox), mask: None };
                        self.decode(slice, &with_box, None)?
                    }
                    None => self.decode(slice, prompt, None)?,
                }
            }
            _ => self.decode(slice, prompt, None)?,
        };
        let points_only = SlicePrompt { points: prompt.points.clone(), ..Default::default() };
        for _ in 0..self.refine_passes {
            if is_empty(&state.mask) {
                break;
            }
            state = self.decode(slice, &points_only, Some(&state.low_res))?;
        }
        Ok(state)
    }

    /// The session's point assist answers `slice` from `prompt` on its own session (its encoder,
    /// its input size); its binary low-resolution mask is on the grid this model's mask prompts
    /// use. Its decoding counts as this Segmenter's.
    fn decode_by_assist(&mut self, slice: usize, prompt: &SlicePrompt) -> Result<SliceState, SegmentError> {
        let assist = self.session.point_assist().expect("the caller checked for an assist");
        let mut helper = Segmenter::new(assist, self.carry, self.choice, self.reference);
        let state = helper.decode(slice, prompt, None)?;
        self.decode_seconds += helper.decode_seconds;
        self.decoded_slices += helper.decoded_slices;
        Ok(state)
    }

    /// Turns the click check on or off (the default). On: a clicked slice whose decoded mask
    /// contradicts one of the slice's clicks (a positive click outside it, a negative one inside)
    /// takes, of the decoder's four masks, one that agrees with more of them (the best predicted
    /// IoU among those agreeing with the most). Why: a click is the user saying what one pixel
    /// is; a result that ignores it is the "correction that does nothing" users see
    /// (bench/results/click_diagnosis/: a third to a half of single clicks leave their slice
    /// worse), while another of the decoder's masks often honours it.
    pub fn with_click_check(mut self, on: bool) -> Self {
        self.click_check = on;
        self
    }

    /// With a correction head: the slices re-propagated from a click are carried by it too (on),
    /// or by the propagation head as every other carried slice (off, the default; jobs'
    /// `correction_carry`, `radsam bench --correction-carry`); without a correction head it
    /// changes nothing.
    pub fn with_correction_carry(mut self, on: bool) -> Self {
        self.click_carry = if on { Head::Correction } else { Head::Propagation };
        self
    }

    /// Re-propagation from a click stops at the first carried slice whose new mask has at least
    /// `dice` (0..1) Dice with the mask it had: past a slice the change left as it was, the old
    /// chain is what the new one would be, and a chain carried on from an edited slice can drift
    /// where the old one held (bench/results/click_diagnosis_phantom_spleen: on unseen phantoms'
    /// spleens a positive click raises its slice and lowers the volume). 0, the default: every
    /// slice up to the next anchor or the boundary. For benchmarks (`radsam bench --click-settle`).
    pub fn with_click_settle(mut self, dice: f64) -> Self {
        self.click_settle = dice;
        self
    }

    /// With mask carry, a clicked slice's mask prompt loses the region each negative click on it
    /// points at (negative_erase.rs) before the slice is decoded (on), or is its mask as it was
    /// (off, the Segmenter's default and `radsam bench`'s; jobs turn it on unless told otherwise).
    /// Box and reference carry ignore it.
    pub fn with_negative_erase(mut self, on: bool) -> Self {
        self.negative_erase = on;
        self
    }

    /// A click on the volume-level prompt's slice decodes it from the user's box as well as from
    /// its current mask and clicks (on), or from these alone (off, the default), with mask carry.
    /// Why asked: alone, a positive click on the prompted slice cost 8.2 points of volume Dice on
    /// unseen phantoms, against +0.5 elsewhere (bench/results/negative_erase/diagnosis-on/); that
    /// slice is re-decoded without the box (a phantom lesion's slice 93.7 -> 80.8 after one) and
    /// every slice is carried again from it. Measured (bench/results/prompt_box/): single positive
    /// clicks there cost -2.9 instead of -8.2 (their slice +0.1 instead of -3.5), but after 20
    /// clicks +0.4 on 21 objects of unseen phantoms (one lesion +8.0), +0.0 on the benchmark's 21:
    /// not in jobs; for benchmarks (`radsam bench --keep-prompt-box`). With box carry, where the
    /// user's box would replace the box of the slice's mask, it lost (CVPR 2025 on the phantoms
    /// 86.1 -> 82.9) and is not applied.
    pub fn with_prompt_box_kept(mut self, on: bool) -> Self {
        self.keep_prompt_box = on;
        self
    }

    /// A clicked slice's mask prompt (mask carry): its current binary low-resolution mask, less
    /// what its negative clicks erase (`with_negative_erase`).
    fn clicked_mask_prompt(&self, slice: usize, state: &SliceState) -> Tensor {
        let clicks = self.clicks.get(&slice).map(Vec::as_slice).unwrap_or_default();
        let erased = self.negative_erase.then(|| erased_by_negative_clicks(&state.mask, self.plane_size().0, clicks));
        let Some(erased) = erased.flatten() else { return state.low_res.shallow_clone() };
        let geo = &self.session.geometry;
        let erased = Tensor::from_slice(&erased).view([1, geo.h, geo.w]).to_device(state.low_res.device());
        let erased = mask_to_prompt(&erased, geo, self.session.sam.mask_size());
        &state.low_res * (1.0 - erased)
    }

    fn check_slice(&self, slice: usize) -> Result<(), SegmentError> {
        if self.session.contains(slice) {
            Ok(())
        } else {
            Err(SegmentError::SliceOutsideBoundaries { slice, lo: self.session.lo, hi: self.session.hi })
        }
    }

    fn plane_size(&self) -> (usize, usize) {
        let (rows, cols) = self.session.volume.grid.plane_shape();
        (cols, rows)
    }

    /// Volume-level prompting: `prompt` on `slice`, propagated to both boundaries.
    pub fn start(&mut self, slice: usize, prompt: &SlicePrompt) -> Result<(), SegmentError> {
        self.check_slice(slice)?;
        let (w, h) = self.plane_size();
        prompt.validate(w, h).map_err(|reason| SegmentError::Prompt { slice, reason })?;
        self.states.clear();
        self.stops.clear();
        self.guard_events.clear();
        self.clicks.clear();
        self.click_order.clear();
        self.anchors = [slice].into();
        self.origin = slice;
        self.origin_box = prompt.bbox;
        self.slice_prompts = None;
        let state = self.decode_prompted(slice, prompt)?;
        self.states.insert(slice, state);
        self.started = true;
        self.propagate(slice, 1, Head::Propagation, 0.0)?;
        self.propagate(slice, -1, Head::Propagation, 0.0)?;
        Ok(())
    }

    /// Slice-level prompting: every given slice answered on its own prompt, no carry.
    pub fn slice_level(&mut self, prompts: &BTreeMap<usize, SlicePrompt>) -> Result<(), SegmentError> {
        let (w, h) = self.plane_size();
        for (&slice, prompt) in prompts {
            self.check_slice(slice)?;
            prompt.validate(w, h).map_err(|reason| SegmentError::Prompt { slice, reason })?;
        }
        self.states.clear();
        self.stops.clear();
        self.guard_events.clear();
        self.clicks.clear();
        self.click_order.clear();
        self.anchors.clear();
        self.slice_prompts = Some(prompts.clone());
        for (&slice, prompt) in prompts {
            let state = self.decode_prompted(slice, prompt)?;
            self.states.insert(slice, state);
        }
        self.started = true;
        Ok(())
    }

    /// A correction click: refine its slice, then re-propagate downstream from it and fill the
    /// empty slices upstream (module docs). After slice-level prompting, the click refines its
    /// slice alone: the slice's own prompt plus its clicks (and, with mask carry, the slice's
    /// current mask), as 2D SAM editing does.
    pub fn add_click(&mut self, click: Click) -> Result<(), SegmentError> {
        if !self.started {
            return Err(SegmentError::NotStarted);
        }
        self.check_slice(click.slice)?;
        let (w, h) = self.plane_size();
        let as_prompt = SlicePrompt { points: vec![click.point()], ..Default::default() };
        as_prompt.validate(w, h).map_err(|reason| SegmentError::Prompt { slice: click.slice, reason })?;
        self.clicks.entry(click.slice).or_default().push(click.point());
        self.click_order.push(click);
        self.anchors.insert(click.slice);
        // The clicked slice now holds the user's input: no guard judges it.
        self.guard_events.remove(&click.slice);
        if let Some(own) = self.slice_prompts.as_ref().map(|p| p.get(&click.slice).cloned().unwrap_or_default()) {
            let mut points = own.points;
            points.extend(self.clicks[&click.slice].iter().copied());
            let prompt = SlicePrompt { points, bbox: own.bbox, mask: None };
            let previous = match self.carry {
                Carry::Mask => self.states.get(&click.slice).map(|s| self.clicked_mask_prompt(click.slice, s)),
                Carry::Box | Carry::ReferenceBox => None,
            };
            let state = self.decode_clicked(click.slice, &prompt, previous.as_ref())?;
            self.states.insert(click.slice, state);
            return Ok(());
        }
        // The slice's current result, in the carry's form, plus all its clicks.
        let mut prompt = SlicePrompt { points: self.clicks[&click.slice].clone(), ..Default::default() };
        let mut previous = None;
        if let Some(state) = self.states.get(&click.slice) {
            match self.carry {
                Carry::Mask => previous = Some(self.clicked_mask_prompt(click.slice, state)),
                Carry::Box => prompt.bbox = bounding_box(&state.mask, w),
                Carry::ReferenceBox => prompt.bbox = widened_bounding_box(&state.mask, w, h),
            }
        }
        // On the prompted slice, the user's box stays in its prompt (`with_prompt_box_kept`).
        if self.keep_prompt_box && click.slice == self.origin && self.carry == Carry::Mask {
            prompt.bbox = self.origin_box.or(prompt.bbox);
        }
        let state = self.decode_clicked(click.slice, &prompt, previous.as_ref())?;
        self.states.insert(click.slice, state);
        for direction in [1i8, -1] {
            let towards_origin = click.slice != self.origin && (self.origin > click.slice) == (direction > 0);
            if towards_origin {
                self.fill_empty(click.slice, direction, self.click_carry)?;
            } else {
                self.propagate(click.slice, direction, self.click_carry, self.click_settle)?;
            }
        }
        // A stop is a slice that came out empty: one that a click has since filled is no stop.
        self.stops.retain(|s| self.states.get(&s.empty_slice).is_some_and(|state| is_empty(&state.mask)));
        Ok(())
    }

    /// The slices that a propagation from `from` in `direction` may (re)compute: up to the next
    /// anchor (exclusive) or the boundary.
    fn reach(&self, from: usize, direction: i8) -> Vec<usize> {
        let mut out = Vec::new();
        let mut s = from as i64 + direction as i64;
        while s >= self.session.lo as i64 && s <= self.session.hi as i64 && !self.anchors.contains(&(s as usize)) {
            out.push(s as usize);
            s += direction as i64;
        }
        out
    }

    /// Carries the result of `from` slice by slice in `direction`, up to the next anchor or the
    /// boundary, each slice decoded by `head`; stops at an empty slice, leaving the rest of that
    /// stretch empty, or (`settle` > 0) at a slice whose new mask has at least that Dice with the
    /// one it had, leaving the rest as it was.
    fn propagate(&mut self, from: usize, direction: i8, head: Head, settle: f64) -> Result<(), SegmentError> {
        let stretch = self.reach(from, direction);
        let (dropped, kept) = std::mem::take(&mut self.stops)
            .into_iter()
            .partition(|s| s.direction == direction && (s.empty_slice == from || stretch.contains(&s.empty_slice)));
        self.stops = kept;
        let mut current = from;
        for (n, &next) in stretch.iter().enumerate() {
            if is_empty(&self.states[&current].mask) && self.carry_prompt(current).is_none() {
                self.stops.push(Stop { direction, empty_slice: current });
                for s in &stretch[n..] {
                    self.states.remove(s);
                    self.guard_events.remove(s);
                }
                return Ok(());
            }
            let before = if settle > 0.0 {
                self.states.get(&next).map(|s| s.mask.clone()).filter(|m| !is_empty(m))
            } else {
                None
            };
            self.carry_to(current, next, direction, head)?;
            if before.is_some_and(|b| crate::mask_stats::dice(&b, &self.states[&next].mask) >= settle) {
                // The rest of the stretch keeps its masks, and the stops among them.
                let rest = &stretch[n + 1..];
                self.stops.extend(dropped.into_iter().filter(|s| rest.contains(&s.empty_slice)));
                return Ok(());
            }
            current = next;
        }
        Ok(())
    }

    /// Carries the result of `from` in `direction` over the slices that hold no mask (never
    /// reached, or past a stop), up to the first slice that holds one, the next anchor or the
    /// boundary; stops at an empty result.
    fn fill_empty(&mut self, from: usize, direction: i8, head: Head) -> Result<(), SegmentError> {
        let mut current = from;
        for next in self.reach(from, direction) {
            if is_empty(&self.states[&current].mask) && self.carry_prompt(current).is_none() {
                self.stops.push(Stop { direction, empty_slice: current });
                return Ok(());
            }
            if self.states.get(&next).is_some_and(|s| !is_empty(&s.mask)) {
                return Ok(());
            }
            self.carry_to(current, next, direction, head)?;
            current = next;
        }
        Ok(())
    }

    /// Decodes `next` (by `head`) from the result of its neighbour `from` in the carry's form, plus the clicks
    /// stored on `next`; then the guards, when on, judge it.
    fn carry_to(&mut self, from: usize, next: usize, direction: i8, head: Head) -> Result<(), SegmentError> {
        let mut prompt =
            SlicePrompt { points: self.clicks.get(&next).cloned().unwrap_or_default(), ..Default::default() };
        let low_res = match self.carry_prompt(from) {
            Some(CarriedPrompt { mask, bbox, point }) => {
                prompt.bbox = bbox;
                prompt.points.extend(point);
                mask
            }
            None => None,
        };
        let (state, logits) = self.decode_with_logits(next, &prompt, low_res.as_ref(), head)?;
        let state = match self.carry {
            Carry::Mask | Carry::Box if self.choice == MaskChoice::Continuity => self.continued(from, state, &logits),
            _ => state,
        };
        let state = match (self.carry, self.cue, head) {
            (Carry::Mask, CarryCue::Ensemble, Head::Propagation) => {
                self.averaged_with_reference(from, next, state, &logits)?
            }
            _ => state,
        };
        self.guard_events.remove(&next);
        let state = match self.guard {
            Some(guard)
                if matches!(self.carry, Carry::Mask | Carry::Box) && self.choice != MaskChoice::BestReference =>
            {
                self.guarded(guard, from, next, direction, state, &logits)
            }
            _ => state,
        };
        self.states.insert(next, state);
        Ok(())
    }

    /// CarryCue::Ensemble on the carried slice `next`: decodes it again from the reference
    /// pipeline's box (the widened box of `from`'s mask, else the prompted slice's box) and the
    /// slice's clicks, no mask, and keeps the mean of the two chosen masks' probabilities. The
    /// mask-carried answer's predicted IoUs stay with the state (guards read them). Without a box
    /// to decode from (a point prompt whose previous slice came out empty) `state` stays as it is.
    /// `logits`: the mask-carried decoding's four low-resolution maps, (1, 4, M, M).
    fn averaged_with_reference(
        &mut self,
        from: usize,
        next: usize,
        state: SliceState,
        logits: &Tensor,
    ) -> Result<SliceState, SegmentError> {
        let (w, h) = self.plane_size();
        let Some(bbox) = widened_bounding_box(&self.states[&from].mask, w, h).or(self.origin_box) else {
            return Ok(state);
        };
        let prompt = SlicePrompt {
            points: self.clicks.get(&next).cloned().unwrap_or_default(),
            bbox: Some(bbox),
            ..Default::default()
        };
        let (boxed, boxed_logits) = self.decode_with_logits(next, &prompt, None, Head::Propagation)?;
        let logits = mean_probability(&logits.narrow(1, state.chosen, 1), &boxed_logits.narrow(1, boxed.chosen, 1));
        let mask = self.plane(&logits, 0);
        Ok(SliceState { low_res: logits.gt(0.0).to_kind(Kind::Float), mask, ..state })
    }

    /// MaskChoice::Continuity on a carried slice: of the decoder's four masks (`logits`, (1, 4, M,
    /// M)), the one with the highest Dice against the mask of its neighbour `from`, compared on
    /// the decoder's low-resolution grid (cheap: no upsampling); the decoder's own choice on a
    /// tie. Why: the multimask outputs often hold the right cross-section when the primary leaks
    /// or shrinks (the benchmark's oracle, which picks among them by the truth, gains 5 to 9
    /// points at volume level), and the previous slice is the best stand-in for the truth that
    /// inference has: an object's cross-section changes little from one slice to the next.
    fn continued(&self, from: usize, state: SliceState, logits: &Tensor) -> SliceState {
        let previous = &self.states[&from].low_res;
        let candidates = logits.gt(0.0).to_kind(Kind::Float);
        let dims = [2i64, 3].as_slice();
        let overlap = (&candidates * previous).sum_dim_intlist(dims, false, Kind::Float);
        let sizes = candidates.sum_dim_intlist(dims, false, Kind::Float) + previous.sum(Kind::Float);
        let scores: Vec<f32> =
            Vec::try_from((overlap * 2.0 / sizes.clamp_min(1.0)).to_device(tch::Device::Cpu).flatten(0, -1))
                .expect("float Dice");
        let best = best_continuation(&scores, state.chosen);
        if best == state.chosen {
            return state;
        }
        let mask = self.plane(logits, best);
        state.switched(logits, best, mask)
    }

    /// The guards' verdict on the carried slice `next` (guard.rs): the state kept, and the event
    /// recorded when one fired.
    fn guarded(
        &mut self,
        guard: GuardSettings,
        from: usize,
        next: usize,
        direction: i8,
        state: SliceState,
        logits: &Tensor,
    ) -> SliceState {
        let previous = pixels(&self.states[&from].mask);
        let (ca, ra) = self.session.volume.grid.plane_axes();
        let spacing = self.session.volume.spacing;
        let limit = guard.area_limit(previous, spacing[ca] * spacing[ra]);
        let chosen_pixels = pixels(&state.mask);
        if !guard.suspicious(limit, chosen_pixels, state.iou[state.chosen as usize]) {
            return state;
        }
        let mut planes: Vec<Vec<u8>> = (0..NUM_MASKS)
            .map(|c| if c == state.chosen { state.mask.clone() } else { self.plane(logits, c) })
            .collect();
        let areas: Vec<u64> = planes.iter().map(|p| pixels(p)).collect();
        let (verdict, reason) = guard.judge(limit, &areas, &state.iou, state.chosen);
        let Some(reason) = reason else { return state };
        let kept = match verdict {
            Verdict::Keep => return state,
            Verdict::Switch(c) => Some(c),
            Verdict::Stop => None,
        };
        self.guard_events.insert(
            next,
            GuardEvent {
                slice: next,
                direction,
                reason,
                rejected_mask: state.chosen,
                kept_mask: kept,
                previous_pixels: previous,
                rejected_pixels: chosen_pixels,
                rejected_iou: state.iou[state.chosen as usize],
            },
        );
        match kept {
            Some(c) => state.switched(logits, c, std::mem::take(&mut planes[c as usize])),
            // An empty slice: the propagation stops on it, as on any empty slice.
            None => SliceState {
                low_res: state.low_res.zeros_like(),
                mask: vec![0; state.mask.len()],
                iou: state.iou,
                chosen: state.chosen,
            },
        }
    }

    /// What the result of `from` hands on: its mask (mask carry), its box (box carry), or, for the
    /// reference pipeline, its widened box or else the prompted slice's box. None: nothing to carry
    /// (the propagation stops there).
    fn carry_prompt(&self, from: usize) -> Option<CarriedPrompt> {
        let (w, h) = self.plane_size();
        let state = self.states.get(&from)?;
        let boxed = |b| CarriedPrompt { mask: None, bbox: Some(b), point: None };
        match self.carry {
            Carry::Mask if is_empty(&state.mask) => None,
            Carry::Mask => Some(CarriedPrompt {
                mask: Some(state.low_res.shallow_clone()),
                bbox: (self.cue == CarryCue::Box).then(|| widened_bounding_box(&state.mask, w, h)).flatten(),
                point: (self.cue == CarryCue::Centre).then(|| deepest_point(&state.mask, w)).flatten(),
            }),
            Carry::Box => bounding_box(&state.mask, w).map(boxed),
            // An empty slice hands on the prompted slice's box, as the reference code does.
            Carry::ReferenceBox => widened_bounding_box(&state.mask, w, h).or(self.origin_box).map(boxed),
        }
    }

    /// Decodes one slice: the prompt's points and box (slice coordinates), plus a low-resolution
    /// binary mask prompt when given.
    fn decode(
        &mut self,
        slice: usize,
        prompt: &SlicePrompt,
        low_res_mask: Option<&Tensor>,
    ) -> Result<SliceState, SegmentError> {
        Ok(self.decode_with_logits(slice, prompt, low_res_mask, Head::Propagation)?.0)
    }

    /// Decodes a clicked slice, by the model's correction head when it has one (crate::model docs:
    /// the decoder trained to read a mask with clicks); with the click check on, keeps a mask that
    /// agrees with the clicks stored on the slice (`with_click_check`). The slices re-propagated
    /// from it are carried by the propagation head, as every carried slice is (unless
    /// `with_correction_carry`).
    fn decode_clicked(
        &mut self,
        slice: usize,
        prompt: &SlicePrompt,
        low_res_mask: Option<&Tensor>,
    ) -> Result<SliceState, SegmentError> {
        let (state, logits) = self.decode_with_logits(slice, prompt, low_res_mask, Head::Correction)?;
        if !self.click_check || self.choice == MaskChoice::BestReference {
            return Ok(state);
        }
        let (w, _) = self.plane_size();
        let clicks = self.clicks.get(&slice).map(Vec::as_slice).unwrap_or_default();
        let agreeing = |mask: &[u8]| {
            clicks
                .iter()
                .filter(|p| {
                    let at = p.y.round().max(0.0) as usize * w + p.x.round().max(0.0) as usize;
                    mask.get(at).is_some_and(|&v| (v != 0) == p.positive)
                })
                .count()
        };
        if agreeing(&state.mask) == clicks.len() {
            return Ok(state);
        }
        let mut planes: Vec<Vec<u8>> = (0..NUM_MASKS)
            .map(|c| if c == state.chosen { state.mask.clone() } else { self.plane(&logits, c) })
            .collect();
        let agree: Vec<usize> = planes.iter().map(|p| agreeing(p)).collect();
        let kept = most_agreeing(&agree, &state.iou, state.chosen);
        if kept == state.chosen {
            return Ok(state);
        }
        Ok(state.switched(&logits, kept, std::mem::take(&mut planes[kept as usize])))
    }

    /// Mask `channel` of (1, 4, M, M) low-resolution logits on the slice grid, 0/1.
    fn plane(&self, logits: &Tensor, channel: i64) -> Vec<u8> {
        let logits = logits.narrow(1, channel, 1);
        Vec::try_from(
            logits_to_slice(&logits, &self.session.geometry)
                .gt(0.0)
                .to_kind(Kind::Uint8)
                .to_device(tch::Device::Cpu)
                .flatten(0, -1),
        )
        .expect("u8 mask")
    }

    /// `decode` by `head`, with the decoder's four low-resolution logits maps.
    fn decode_with_logits(
        &mut self,
        slice: usize,
        prompt: &SlicePrompt,
        low_res_mask: Option<&Tensor>,
        head: Head,
    ) -> Result<(SliceState, Tensor), SegmentError> {
        // Encoded now if the propagation is the first to reach it: the encoder's time, not the decoder's.
        let embedding = self.session.embedding(slice)?;
        let t0 = Instant::now();
        let sam = self.session.sam;
        let geo = &self.session.geometry;
        let mut batch = prompt_batch(&[prompt], geo, sam.mask_size(), sam.device());
        if let Some(m) = low_res_mask {
            batch.masks = Some(m.shallow_clone());
        }
        let pred = match head {
            Head::Propagation => sam.decode(&embedding, &batch),
            Head::Correction => sam.decode_correction(&embedding, &batch),
        };
        let iou: Vec<f32> = Vec::try_from(pred.iou.to_device(tch::Device::Cpu).flatten(0, -1)).expect("float IoU");
        let plane = |channel: i64| self.plane(&pred.low_res_logits, channel);
        let (chosen, mask) = match (self.choice, self.reference) {
            (MaskChoice::BestReference, Some(reference)) => {
                let truth = self.session.volume.grid.extract(reference, slice);
                (1..NUM_MASKS)
                    .map(|c| (c, plane(c)))
                    .max_by(|a, b| dice(&a.1, &truth).total_cmp(&dice(&b.1, &truth)))
                    .expect("three secondary masks")
            }
            (choice, _) => {
                let c = choose(&iou, choice);
                (c, plane(c))
            }
        };
        let low_res = pred.low_res_logits.narrow(1, chosen, 1).gt(0.0).to_kind(Kind::Float);
        self.decode_seconds += t0.elapsed().as_secs_f64();
        self.decoded_slices += 1;
        #[cfg(test)]
        {
            self.decode_order.push(slice);
            self.decode_boxes.push(prompt.bbox);
        }
        Ok((SliceState { low_res, mask, iou: iou.try_into().expect("4 masks"), chosen }, pred.low_res_logits))
    }

    /// The 3D mask on the volume's grid (0/1).
    pub fn mask(&self) -> Vec<u8> {
        let grid = &self.session.volume.grid;
        let mut out = vec![0u8; grid.len()];
        for (&slice, state) in &self.states {
            grid.insert(&mut out, slice, &state.mask);
        }
        out
    }

    pub fn states(&self) -> &BTreeMap<usize, SliceState> {
        &self.states
    }

    pub fn stops(&self) -> &[Stop] {
        &self.stops
    }

    /// The guards that fired on the current result, in slice order.
    pub fn guard_events(&self) -> Vec<GuardEvent> {
        self.guard_events.values().copied().collect()
    }

    pub fn clicks(&self) -> usize {
        self.clicks.values().map(Vec::len).sum()
    }

    /// The session after its prompt and clicks, for a revision to resume (snapshot.rs);
    /// `fingerprint` names everything it depends on besides the clicks. None before the prompt
    /// and after slice-level prompting (whose clicks touch their own slice alone: nothing to save).
    pub fn snapshot(&self, fingerprint: &str) -> Option<Snapshot> {
        if !self.started || self.slice_prompts.is_some() {
            return None;
        }
        let (rows, cols) = self.session.volume.grid.plane_shape();
        let slices = self
            .states
            .iter()
            .map(|(&slice, s)| SavedSlice {
                slice,
                low_res: Vec::try_from(s.low_res.to_device(tch::Device::Cpu).to_kind(Kind::Uint8).flatten(0, -1))
                    .expect("u8 mask"),
                mask: s.mask.clone(),
                iou: s.iou,
                chosen: s.chosen,
            })
            .collect();
        Some(Snapshot {
            fingerprint: fingerprint.to_string(),
            plane: (rows, cols),
            mask_size: self.session.sam.mask_size() as usize,
            origin: self.origin,
            origin_box: self.origin_box,
            anchors: self.anchors.iter().copied().collect(),
            clicks: self.click_order.clone(),
            stops: self.stops.clone(),
            guard_events: self.guard_events.values().copied().collect(),
            slices,
        })
    }

    /// Takes up a saved session (in place of [`start`](Self::start) and its clicks): what follows
    /// is what would have followed the prompt and clicks it saved. Refused when it does not fit
    /// this session's volume, boundaries or model (its inputs and clicks are the caller's to check
    /// first, with [`Snapshot::check`]).
    pub fn resume(&mut self, saved: &Snapshot) -> Result<(), SnapshotError> {
        let (rows, cols) = self.session.volume.grid.plane_shape();
        let m = self.session.sam.mask_size() as usize;
        let mismatch = |why: String| Err(SnapshotError::Mismatch(why));
        if saved.plane != (rows, cols) || saved.mask_size != m {
            return mismatch(format!(
                "slices {:?} and masks {} saved, {:?} and {m} here",
                saved.plane,
                saved.mask_size,
                (rows, cols)
            ));
        }
        let outside = saved
            .slices
            .iter()
            .map(|s| s.slice)
            .chain(saved.anchors.iter().copied())
            .chain(saved.clicks.iter().map(|c| c.slice))
            .chain([saved.origin])
            .find(|&s| !self.session.contains(s));
        if let Some(slice) = outside {
            return mismatch(format!(
                "slice {slice} lies outside the boundaries {}..={}",
                self.session.lo, self.session.hi
            ));
        }
        let device = self.session.sam.device();
        let mut states = BTreeMap::new();
        for s in &saved.slices {
            if !(0..NUM_MASKS).contains(&s.chosen) {
                return mismatch(format!("slice {}: mask {} chosen", s.slice, s.chosen));
            }
            let low_res: Vec<f32> = s.low_res.iter().map(|&v| v as f32).collect();
            let low_res = Tensor::from_slice(&low_res).view([1, 1, m as i64, m as i64]).to_device(device);
            states.insert(s.slice, SliceState { low_res, mask: s.mask.clone(), iou: s.iou, chosen: s.chosen });
        }
        self.states = states;
        self.clicks.clear();
        for c in &saved.clicks {
            self.clicks.entry(c.slice).or_default().push(c.point());
        }
        self.click_order = saved.clicks.clone();
        self.anchors = saved.anchors.iter().copied().collect();
        self.origin = saved.origin;
        self.origin_box = saved.origin_box;
        self.stops = saved.stops.clone();
        self.guard_events = saved.guard_events.iter().map(|e| (e.slice, *e)).collect();
        self.slice_prompts = None;
        self.started = true;
        Ok(())
    }
}

/// A carried prompt: a low-resolution binary mask (mask carry), a box, a positive point, or a mask
/// with its cue (CarryCue).
struct CarriedPrompt {
    mask: Option<Tensor>,
    bbox: Option<crate::prompt::BoxPrompt>,
    point: Option<Point>,
}

/// Two answers' logits averaged as probabilities (an ensemble's mean), given back as logits so that
/// the slice-grid mask is upsampled as every other answer is. Positive exactly where the two
/// logits sum above zero (sigmoid(a) + sigmoid(b) > 1 iff a > -b); the probabilities weigh in
/// where the low-resolution map is upsampled between pixels.
fn mean_probability(a: &Tensor, b: &Tensor) -> Tensor {
    let p = ((a.sigmoid() + b.sigmoid()) * 0.5).clamp(1e-6, 1.0 - 1e-6);
    let odds: Tensor = &p / (p.ones_like() - &p);
    odds.log()
}

/// The positive point of CarryCue::Centre: the foreground pixel of `mask` (row-major, `w` wide)
/// farthest from the background and the image border (a two-pass 3-4 chamfer distance), the first
/// in row-major order on a tie. Why the deepest pixel and not the centroid: a curved or hollow
/// cross-section (colon, a vessel bend) can have its centroid outside it. None: empty mask.
/// (crate::prompt::interior_point is the same idea with a chessboard distance; swapped in, it moves
/// the point enough to change the cue's measured Dice, 48.4 -> 45.6 from a box: merge the two only
/// with bench/results/carry_cue/ rerun.)
fn deepest_point(mask: &[u8], w: usize) -> Option<Point> {
    if w == 0 || is_empty(mask) {
        return None;
    }
    let h = mask.len() / w;
    const UNREACHED: u32 = u32::MAX / 2;
    let mut d: Vec<u32> = mask.iter().map(|&v| if v != 0 { UNREACHED } else { 0 }).collect();
    // Outside the image counts as background.
    let at = |d: &[u32], x: i64, y: i64| -> u32 {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            0
        } else {
            d[y as usize * w + x as usize]
        }
    };
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            let i = y as usize * w + x as usize;
            if d[i] != 0 {
                let best = (at(&d, x - 1, y) + 3)
                    .min(at(&d, x, y - 1) + 3)
                    .min(at(&d, x - 1, y - 1) + 4)
                    .min(at(&d, x + 1, y - 1) + 4);
                d[i] = d[i].min(best);
            }
        }
    }
    for y in (0..h as i64).rev() {
        for x in (0..w as i64).rev() {
            let i = y as usize * w + x as usize;
            if d[i] != 0 {
                let best = (at(&d, x + 1, y) + 3)
                    .min(at(&d, x, y + 1) + 3)
                    .min(at(&d, x + 1, y + 1) + 4)
                    .min(at(&d, x - 1, y + 1) + 4);
                d[i] = d[i].min(best);
            }
        }
    }
    let (i, _) = d.iter().enumerate().fold((0, 0), |best, (i, &v)| if v > best.1 { (i, v) } else { best });
    Some(Point { x: (i % w) as f64, y: (i / w) as f64, positive: true })
}

/// The box around `mask` (`w` x `h`), widened as the reference pipeline widens it; None: empty.
fn widened_bounding_box(mask: &[u8], w: usize, h: usize) -> Option<crate::prompt::BoxPrompt> {
    bounding_box(mask, w).map(|b| widened_box(b, w, h))
}

/// The reference pipeline's box: `b` widened by its margin (3 pixels of the 256-pixel grid, in
/// slice pixels), inside the slice. Also the box of `CarryCue::Box`, and of the trainer's
/// mask-with-box prompts, which teach a model that cue.
pub fn widened_box(b: crate::prompt::BoxPrompt, w: usize, h: usize) -> crate::prompt::BoxPrompt {
    let m = REFERENCE_MARGIN_256 * w.max(h) as f64 / 256.0;
    crate::prompt::BoxPrompt {
        x0: (b.x0 - m).max(0.0),
        y0: (b.y0 - m).max(0.0),
        x1: (b.x1 + m).min((w - 1) as f64),
        y1: (b.y1 + m).min((h - 1) as f64),
    }
}

/// The click check's pick: `chosen` unless another mask agrees with more clicks (`agree`: clicks
/// each mask agrees with); then, of those agreeing with the most, the best predicted IoU.
fn most_agreeing(agree: &[usize], iou: &[f32], chosen: i64) -> i64 {
    let most = agree.iter().copied().max().unwrap_or(0);
    if agree[chosen as usize] == most {
        return chosen;
    }
    (0..agree.len())
        .filter(|&k| agree[k] == most)
        .max_by(|&a, &b| iou[a].total_cmp(&iou[b]).then(b.cmp(&a)))
        .map_or(chosen, |k| k as i64)
}

/// The index of the highest score, `default` unless another is strictly higher (ties keep the
/// decoder's choice, and among the others the lowest index).
fn best_continuation(scores: &[f32], default: i64) -> i64 {
    let mut best = default;
    for (k, &score) in scores.iter().enumerate() {
        if score > scores[best as usize] {
            best = k as i64;
        }
    }
    best
}

fn pixels(mask: &[u8]) -> u64 {
    mask.iter().filter(|&&v| v != 0).count() as u64
}

fn is_empty(mask: &[u8]) -> bool {
    mask.iter().all(|&v| v == 0)
}

#[cfg(test)]
mod choice_tests {
    use super::best_continuation;

    #[test]
    fn the_best_continuation_keeps_the_decoders_choice_on_a_tie() {
        assert_eq!(best_continuation(&[0.5, 0.9, 0.2, 0.9], 0), 1);
        assert_eq!(best_continuation(&[0.9, 0.9, 0.2, 0.9], 0), 0);
        assert_eq!(best_continuation(&[0.1, 0.9, 0.2, 0.9], 3), 3);
        assert_eq!(best_continuation(&[0.0; 4], 2), 2);
    }

    #[test]
    fn the_click_check_keeps_the_decoders_choice_unless_another_agrees_with_more_clicks() {
        use super::most_agreeing;
        let iou = [0.9, 0.6, 0.8, 0.7];
        // The choice agrees with both clicks: kept, whatever the others.
        assert_eq!(most_agreeing(&[2, 2, 2, 1], &iou, 0), 0);
        // It agrees with one of two; masks 1 and 3 with both: the better predicted IoU, 3.
        assert_eq!(most_agreeing(&[1, 2, 0, 2], &iou, 0), 3);
        // As good as the best others (none agrees with all): kept.
        assert_eq!(most_agreeing(&[1, 1, 0, 1], &iou, 0), 0);
        // Equal predicted IoU: the lower index.
        assert_eq!(most_agreeing(&[0, 1, 1, 0], &[0.5, 0.7, 0.7, 0.9], 0), 1);
    }

    #[test]
    fn the_centre_cue_is_the_pixel_deepest_inside_the_mask() {
        use super::deepest_point;
        let w = 12;
        let draw = |cells: &[(usize, usize)]| {
            let mut m = vec![0u8; w * 10];
            for &(x, y) in cells {
                m[y * w + x] = 1;
            }
            m
        };
        assert!(deepest_point(&vec![0; w * 10], w).is_none());
        // A 5 x 5 square at x 2..=6, y 3..=7: its centre (4, 5).
        let square: Vec<(usize, usize)> = (2..=6).flat_map(|x| (3..=7).map(move |y| (x, y))).collect();
        let p = deepest_point(&draw(&square), w).unwrap();
        assert_eq!((p.x, p.y, p.positive), (4.0, 5.0, true));
        // An L: its centroid (about 3.2, 4.8) lies outside it; the deepest pixel is inside, in the
        // thicker leg.
        let mut l: Vec<(usize, usize)> = (1..=3).flat_map(|x| (1..=9).map(move |y| (x, y))).collect();
        l.extend((4..=10).flat_map(|x| (7..=9).map(move |y| (x, y))));
        let m = draw(&l);
        let p = deepest_point(&m, w).unwrap();
        assert_eq!(m[p.y as usize * w + p.x as usize], 1, "inside the L: ({}, {})", p.x, p.y);
        // The image border counts as outside: a mask filling the image peaks in its middle.
        let p = deepest_point(&vec![1; w * 10], w).unwrap();
        assert!((4.0..=7.0).contains(&p.x) && (4.0..=5.0).contains(&p.y), "({}, {})", p.x, p.y);
    }
}

#[cfg(test)]
mod tests {
    //! Propagation's order, anchors and stops on a stub model: LiteMedSAM's architecture with
    //! random weights whose decoder answers every prompt on every slice with the same mask, the
    //! whole slice (`FULL`) or nothing (`EMPTY`). What is decoded, in which order, then depends on
    //! the carry logic alone. (Two tests, one encoded session each: encoding is the slow part.)
    use super::*;
    use crate::model::{ModelConfig, Sam};
    use crate::prompt::BoxPrompt;
    use crate::segment::EncodeOptions;
    use crate::volume::Volume;

    const FULL: f64 = 1.0;
    const EMPTY: f64 = -1.0;
    /// Slices 0..10 of a 24 x 24 volume; the object spans slices 2..=8.
    const SLICES: usize = 10;
    const LO: usize = 2;
    const HI: usize = 8;

    /// The stub: the decoder's upscaled embedding is gelu(1) everywhere and each mask's
    /// hypernetwork output is `sign`, so every logit has the sign of `sign`. The weights are
    /// changed in place, so a session encoded once serves both answers.
    fn set_answer(sam: &Sam, sign: f64) {
        set_answer_where(sam, sign, |_| true);
    }

    /// `set_answer` for the correction head alone (`correction`) or the propagation head alone.
    fn set_head_answer(sam: &Sam, correction: bool, sign: f64) {
        set_answer_where(sam, sign, |name| name.starts_with(crate::model::CORRECTION_PREFIX) == correction);
    }

    fn set_answer_where(sam: &Sam, sign: f64, which: impl Fn(&str) -> bool) {
        tch::no_grad(|| {
            for (name, mut t) in sam.var_store().variables().into_iter().filter(|(n, _)| which(n)) {
                let hyper_out = name.contains("output_hypernetworks_mlps") && name.contains("layers.2.");
                let upscale_out = name.contains("output_upscaling.3.");
                match (hyper_out || upscale_out, name.ends_with("weight")) {
                    (true, true) => drop(t.zero_()),
                    (true, false) => drop(t.fill_(if upscale_out { 1.0 } else { sign })),
                    _ => {}
                }
            }
        });
    }

    fn stub_model() -> Sam {
        tch::manual_seed(0);
        Sam::new(ModelConfig::by_name("lite_medsam").unwrap(), tch::Device::Cpu)
    }

    fn volume() -> Volume {
        let identity = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        Volume::synthetic(vec![40.0; 24 * 24 * SLICES], [24, 24, SLICES], [1.0; 3], identity)
    }

    fn session<'a>(sam: &'a Sam, volume: &'a Volume) -> VolumeSession<'a> {
        VolumeSession::new(sam, volume, (LO, HI), 8, &mut |_, _| {}).unwrap()
    }

    fn boxed() -> SlicePrompt {
        SlicePrompt { bbox: Some(BoxPrompt { x0: 6.0, y0: 6.0, x1: 16.0, y1: 16.0 }), ..Default::default() }
    }

    fn click(slice: usize) -> Click {
        Click { slice, x: 12.0, y: 12.0, positive: true }
    }

    #[test]
    fn prompts_propagate_outward_and_clicks_re_propagate_away_from_the_prompt_up_to_the_next_anchor() {
        let (sam, volume) = (stub_model(), volume());
        set_answer(&sam, FULL);
        let session = session(&sam, &volume);

        // Refused before any decoding: a click before the prompt, a prompt outside the session.
        let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
        assert!(matches!(seg.add_click(click(5)), Err(SegmentError::NotStarted)));
        assert!(matches!(seg.start(9, &boxed()), Err(SegmentError::SliceOutsideBoundaries { slice: 9, lo: 2, hi: 8 })));
        assert!(seg.decode_order.is_empty());

        // The prompt: its slice, then up to the upper boundary, then down to the lower one.
        for carry in [Carry::Mask, Carry::Box, Carry::ReferenceBox] {
            let mut seg = Segmenter::new(&session, carry, MaskChoice::Primary, None);
            seg.start(5, &boxed()).unwrap();
            assert_eq!(seg.decode_order, vec![5, 6, 7, 8, 4, 3, 2], "{carry:?}");
            assert_eq!(seg.states().keys().copied().collect::<Vec<_>>(), (LO..=HI).collect::<Vec<_>>());
            assert_eq!(super::pixels(&seg.states()[&5].mask), 24 * 24, "the stub answers with the whole slice");
            assert!(seg.stops().is_empty());
            // Outside the object's boundaries nothing is decoded or written.
            let mask = seg.mask();
            for s in [0, 1, 9] {
                assert!(volume.grid.extract(&mask, s).iter().all(|&v| v == 0), "slice {s}");
            }
        }

        let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
        seg.start(4, &boxed()).unwrap();
        let mut after_click = |slice| {
            seg.decode_order.clear();
            seg.add_click(click(slice)).unwrap();
            seg.decode_order.clone()
        };
        // Above the prompt: the clicked slice, then onward to the boundary; towards the prompt
        // nothing (those slices hold masks; only empty ones are filled).
        assert_eq!(after_click(6), vec![6, 7, 8]);
        // Between the prompt and the first click: onward only up to that click, an anchor.
        assert_eq!(after_click(5), vec![5]);
        // Below the prompt: onward to the lower boundary.
        assert_eq!(after_click(3), vec![3, 2]);
        // A second click on an anchored slice: it and what lies beyond, never another anchor.
        assert_eq!(after_click(6), vec![6, 7, 8]);
        // Outside the session: refused, nothing decoded.
        seg.decode_order.clear();
        assert!(matches!(seg.add_click(click(1)), Err(SegmentError::SliceOutsideBoundaries { .. })));
        assert!(seg.decode_order.is_empty());
        assert_eq!(seg.clicks(), 4);
    }

    #[test]
    fn an_empty_answer_stops_the_carry_but_the_reference_box_never_stops() {
        let (sam, volume) = (stub_model(), volume());
        set_answer(&sam, EMPTY);
        let session = session(&sam, &volume);
        let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
        seg.start(5, &boxed()).unwrap();
        assert_eq!(super::pixels(&seg.states()[&5].mask), 0, "the stub answers with nothing");
        assert_eq!(seg.decode_order, vec![5], "nothing to carry from an empty slice");
        let stops: Vec<(i8, usize)> = seg.stops().iter().map(|s| (s.direction, s.empty_slice)).collect();
        assert_eq!(stops, vec![(1, 5), (-1, 5)]);
        // A click on the empty prompted slice is still empty: the stops stay.
        seg.add_click(click(5)).unwrap();
        assert_eq!(seg.stops().len(), 2);
        // Once the model answers again, a click beyond the stop: its slice, onward to the
        // boundary, then back over the empty slices towards the prompt, up to that anchor.
        set_answer(&sam, FULL);
        seg.decode_order.clear();
        seg.add_click(click(7)).unwrap();
        assert_eq!(seg.decode_order, vec![7, 8, 6]);
        // LiteMedSAM's reference pipeline falls back on the prompted slice's box: it reaches both
        // boundaries whatever the answers.
        set_answer(&sam, EMPTY);
        let mut reference = Segmenter::new(&session, Carry::ReferenceBox, MaskChoice::Primary, None);
        reference.start(5, &boxed()).unwrap();
        assert_eq!(reference.decode_order, vec![5, 6, 7, 8, 4, 3, 2]);
        assert!(reference.stops().is_empty());
    }

    #[test]
    fn mask_carry_hands_on_its_cue_and_prompted_slices_are_refined_from_their_own_mask() {
        let (sam, volume) = (stub_model(), volume());
        set_answer(&sam, FULL);
        let session = session(&sam, &volume);
        let carried = |carry, cue| {
            let mut seg = Segmenter::new(&session, carry, MaskChoice::Primary, None).with_carry_cue(cue);
            seg.start(5, &boxed()).unwrap();
            let c = seg.carry_prompt(6).expect("a full slice carries");
            (c.mask.is_some(), c.bbox, c.point.map(|p| (p.x, p.y, p.positive)))
        };
        let whole = Some(BoxPrompt { x0: 0.0, y0: 0.0, x1: 23.0, y1: 23.0 });
        assert_eq!(carried(Carry::Mask, CarryCue::MaskOnly), (true, None, None));
        // The whole slice's box, widened inside the slice: the whole slice.
        assert_eq!(carried(Carry::Mask, CarryCue::Box), (true, whole, None));
        let (mask, bbox, point) = carried(Carry::Mask, CarryCue::Centre);
        assert!(mask && bbox.is_none());
        let (x, y, positive) = point.unwrap();
        assert!(positive && (10.0..=13.0).contains(&x) && (10.0..=13.0).contains(&y), "({x}, {y})");
        assert_eq!(carried(Carry::Box, CarryCue::Centre), (false, whole, None));
        // Refinement decodes the prompted slice again before carrying from it...
        let mut refined = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_refinement(2);
        refined.start(5, &boxed()).unwrap();
        assert_eq!(refined.decode_order, vec![5, 5, 5, 6, 7, 8, 4, 3, 2]);
        // ...each slice-level prompt too, and a click does not refine again.
        let prompts: BTreeMap<usize, SlicePrompt> = [(3, boxed()), (6, boxed())].into();
        refined.decode_order.clear();
        refined.slice_level(&prompts).unwrap();
        refined.add_click(click(6)).unwrap();
        assert_eq!(refined.decode_order, vec![3, 3, 3, 6, 6, 6, 6]);
        // ...but not an empty answer: nothing to refine from.
        set_answer(&sam, EMPTY);
        refined.decode_order.clear();
        refined.start(5, &boxed()).unwrap();
        assert_eq!(refined.decode_order, vec![5]);
    }

    #[test]
    fn the_ensemble_decodes_each_carried_slice_again_from_the_reference_box_and_averages_probabilities() {
        let (sam, volume) = (stub_model(), volume());
        set_answer(&sam, FULL);
        let session = session(&sam, &volume);
        let mut seg =
            Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_carry_cue(CarryCue::Ensemble);
        seg.start(5, &boxed()).unwrap();
        // The prompted slice once, each carried slice twice: mask alone, then the widened box.
        assert_eq!(seg.decode_order, vec![5, 6, 6, 7, 7, 8, 8, 4, 4, 3, 3, 2, 2]);
        let whole = Some(BoxPrompt { x0: 0.0, y0: 0.0, x1: 23.0, y1: 23.0 });
        assert_eq!(&seg.decode_boxes[1..3], &[None, whole]);
        assert!(seg.states().values().all(|s| super::pixels(&s.mask) == 24 * 24), "two full answers stay full");
        // A click's slice is decoded once (the correction head's); the slices re-propagated from
        // it (away from the prompt) are averaged.
        seg.decode_order.clear();
        seg.add_click(click(7)).unwrap();
        assert_eq!(seg.decode_order, vec![7, 8, 8]);
        // The mean of probabilities as a logit (not the mean of the logits, 0.5 here):
        // logit((sigmoid(2) + sigmoid(-1)) / 2) = 0.3017.
        let mean = |a: f64, b: f64| {
            let t = |v: f64| Tensor::from_slice(&[v as f32]);
            f32::try_from(super::mean_probability(&t(a), &t(b))).unwrap()
        };
        assert!((mean(2.0, -1.0) - 0.3017).abs() < 1e-3, "{}", mean(2.0, -1.0));
        assert!((mean(0.5, 0.5) - 0.5).abs() < 1e-4, "two equal answers: the same logit");
    }

    #[test]
    fn slices_are_encoded_when_the_propagation_first_reaches_them_and_never_twice() {
        let (sam, volume) = (stub_model(), volume());
        let lazy = |batch, deadline, progress| {
            let options = EncodeOptions { batch, deadline, progress, ..Default::default() };
            VolumeSession::lazy(&sam, &volume, (LO, HI), options).unwrap()
        };
        // A propagation that stops on its first slice encodes that slice alone.
        set_answer(&sam, EMPTY);
        let session = lazy(1, None, None);
        let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
        seg.start(5, &boxed()).unwrap();
        assert_eq!((session.encoded_slices(), seg.stops().len()), (1, 2));
        // A click beyond the stop encodes what it reaches: 7 and 8 onward, 6 back towards the prompt.
        set_answer(&sam, FULL);
        seg.add_click(click(7)).unwrap();
        assert_eq!(session.encoded_slices(), 4);
        // Batches run ahead of the front in its direction of travel, within the session: up from
        // 5 (5, 6, 7), the last one up (8), then down from 4 (4, 3, 2).
        let reports = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let sink = reports.clone();
        let session = lazy(3, None, Some(Box::new(move |d, n| sink.borrow_mut().push((d, n)))));
        let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
        seg.start(5, &boxed()).unwrap();
        assert_eq!(*reports.borrow(), vec![(3, 7), (4, 7), (7, 7)]);
        assert_eq!(session.encoded_slices(), 7);
        // Another object's session on the same store (restrict) finds its slices filled.
        let other = session.restrict((LO, 4)).unwrap();
        let mut seg = Segmenter::new(&other, Carry::Mask, MaskChoice::Primary, None);
        seg.start(3, &boxed()).unwrap();
        assert_eq!((other.encoded_slices(), reports.borrow().len()), (7, 3), "nothing encoded again");
        // A job past its time budget stops before its next batch, with the stage in the error.
        let past = Some(Instant::now());
        let late = lazy(1, past, None);
        let mut seg = Segmenter::new(&late, Carry::Mask, MaskChoice::Primary, None);
        let err = seg.start(5, &boxed()).unwrap_err();
        assert!(
            matches!(&err, SegmentError::DeadlinePassed { stage } if stage == "encoding (0 of 7 slices done)"),
            "{err}"
        );
        assert_eq!(late.encoded_slices(), 0);
    }

    #[test]
    fn a_clicked_slice_is_answered_by_the_correction_head_and_carried_slices_by_the_other() {
        let (mut sam, volume) = (stub_model(), volume());
        sam.add_correction_head();
        set_head_answer(&sam, false, FULL);
        set_head_answer(&sam, true, EMPTY);
        let session = session(&sam, &volume);
        let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
        seg.start(4, &boxed()).unwrap();
        assert!((LO..=HI).all(|s| super::pixels(&seg.states()[&s].mask) == 24 * 24), "the first prompt and its carry");
        // The correction head answers the clicked slice (empty); nothing is carried from it.
        seg.add_click(click(6)).unwrap();
        assert_eq!(super::pixels(&seg.states()[&6].mask), 0);
        assert!(!seg.states().contains_key(&7), "past the emptied click, the stretch is cleared");
        // The other way round: the clicked slice full by the correction head, the slices carried
        // from it empty by the propagation head.
        set_head_answer(&sam, false, EMPTY);
        set_head_answer(&sam, true, FULL);
        seg.decode_order.clear();
        seg.add_click(click(6)).unwrap();
        assert_eq!(seg.decode_order, vec![6, 7]);
        assert_eq!(super::pixels(&seg.states()[&6].mask), 24 * 24);
        assert_eq!(super::pixels(&seg.states()[&7].mask), 0);
        // The slices the click does not reach keep the first prompt's answer.
        assert!((LO..=5).all(|s| super::pixels(&seg.states()[&s].mask) == 24 * 24));
        // With the correction carry, the slices carried from the click are the correction head's too.
        set_head_answer(&sam, false, FULL);
        let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_correction_carry(true);
        seg.start(4, &boxed()).unwrap();
        set_head_answer(&sam, false, EMPTY);
        seg.add_click(click(6)).unwrap();
        assert!((6..=HI).all(|s| super::pixels(&seg.states()[&s].mask) == 24 * 24));
    }

    #[test]
    fn with_the_negative_erase_a_negative_click_takes_its_region_out_of_the_clicked_slices_mask_prompt() {
        let (sam, volume) = (stub_model(), volume());
        set_answer(&sam, FULL);
        let session = session(&sam, &volume);
        let sum = |t: &Tensor| t.sum(Kind::Float).double_value(&[]);
        for (erase, positive) in [(false, false), (true, true), (true, false)] {
            let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_negative_erase(erase);
            seg.start(5, &boxed()).unwrap();
            seg.clicks.entry(5).or_default().push(Point { x: 12.0, y: 12.0, positive });
            let state = &seg.states()[&5];
            let prompt = seg.clicked_mask_prompt(5, state);
            let whole = sum(&state.low_res);
            assert!(whole > 0.0, "the stub answers with the whole slice");
            if erase && !positive {
                // The whole slice is one component: the disc around the click (radius 12 of 24, ~3/4 of it).
                assert_eq!(prompt.double_value(&[0, 0, 128, 128]), 0.0, "the clicked pixel is erased");
                let share = sum(&prompt) / whole;
                assert!((0.1..0.5).contains(&share), "kept {share}");
            } else {
                assert_eq!(sum(&prompt), whole, "erase {erase}, positive {positive}: the mask as it was");
            }
        }
        // Through a click: decoded as without the erase (the same slices, in the same order).
        let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_negative_erase(true);
        seg.start(4, &boxed()).unwrap();
        seg.decode_order.clear();
        seg.add_click(Click { slice: 6, x: 12.0, y: 12.0, positive: false }).unwrap();
        assert_eq!(seg.decode_order, vec![6, 7, 8]);
    }

    #[test]
    fn a_point_alone_is_answered_as_the_point_start_says_and_a_box_as_before() {
        let (sam, volume) = (stub_model(), volume());
        // The primary mask empty, the three secondary masks the whole slice.
        set_answer_where(&sam, FULL, |_| true);
        set_answer_where(&sam, EMPTY, |name| name.contains("output_hypernetworks_mlps.0."));
        let session = session(&sam, &volume);
        let point = SlicePrompt { points: vec![Point { x: 12.0, y: 12.0, positive: true }], ..Default::default() };
        let filled = |seg: &Segmenter| super::pixels(&seg.states()[&5].mask);
        let mut primary = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
        primary.start(5, &point).unwrap();
        assert_eq!(filled(&primary), 0, "the primary mask");
        let mut best =
            Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_point_start(PointStart::BestIou);
        best.start(5, &point).unwrap();
        assert_eq!(filled(&best), 24 * 24, "a secondary mask");
        assert!(best.states()[&5].chosen >= 1);
        // Carried from the chosen (full) mask; an empty start carries nothing. (The carried slices
        // are answered by the primary mask: empty, so each direction stops after one slice.)
        assert_eq!(primary.decode_order, vec![5]);
        assert_eq!(best.decode_order, vec![5, 6, 4]);
        // A box prompt is answered by the primary mask whatever the point start.
        let mut boxed_start =
            Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_point_start(PointStart::BestIou);
        boxed_start.start(5, &boxed()).unwrap();
        assert_eq!(filled(&boxed_start), 0);
        // Box: the point's answer (empty here) has no box, so it stands, decoded once; with a
        // non-empty primary the slice is decoded twice, the second time with its box.
        let mut with_box =
            Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_point_start(PointStart::Box);
        with_box.start(5, &point).unwrap();
        assert_eq!((filled(&with_box), with_box.decode_order.clone()), (0, vec![5]));
        set_answer(&sam, FULL);
        let mut with_box =
            Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_point_start(PointStart::Box);
        with_box.start(5, &point).unwrap();
        assert_eq!(with_box.decode_order[..2], [5, 5]);
        assert_eq!(with_box.decode_boxes[..2], [None, Some(BoxPrompt { x0: 0.0, y0: 0.0, x1: 23.0, y1: 23.0 })]);
        assert_eq!(filled(&with_box), 24 * 24);
        assert_eq!(PointStart::by_name("best-iou"), Some(PointStart::BestIou));
        assert_eq!(PointStart::by_name(PointStart::Box.name()), Some(PointStart::Box));
        assert_eq!(PointStart::by_name("centre"), None);
    }

    #[test]
    fn with_a_point_assist_the_assist_answers_a_point_alone_and_this_model_carries_it_on() {
        let (sam, assist_sam, volume) = (stub_model(), stub_model(), volume());
        // This model answers every slice with an empty mask, the assist with the whole slice.
        set_answer(&sam, EMPTY);
        set_answer(&assist_sam, FULL);
        let assist = VolumeSession::lazy(&assist_sam, &volume, (LO, HI), Default::default()).unwrap();
        let session = session(&sam, &volume).with_point_assist(assist).unwrap();
        let point = SlicePrompt { points: vec![Point { x: 12.0, y: 12.0, positive: true }], ..Default::default() };
        let filled = |seg: &Segmenter, s: usize| super::pixels(&seg.states()[&s].mask);
        let mut assisted =
            Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_point_start(PointStart::Assist);
        assisted.start(5, &point).unwrap();
        assert_eq!(filled(&assisted, 5), 24 * 24, "the assist's answer");
        // This model decoded the carried slices only (empty: each direction stops after one), and
        // the assist encoded the one slice it answered.
        assert_eq!(assisted.decode_order, vec![6, 4]);
        assert_eq!(filled(&assisted, 6), 0);
        assert_eq!(session.point_assist().unwrap().encoded_slices(), 1);
        assert_eq!(session.encoded_slices(), HI - LO + 2, "the session counts its assist's slices");
        assert_eq!(assisted.decoded_slices, 3, "the assist's decoding is counted");
        // A box is answered by this model; so is a point under any other point start.
        let mut boxed_start =
            Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_point_start(PointStart::Assist);
        boxed_start.start(5, &boxed()).unwrap();
        assert_eq!(filled(&boxed_start, 5), 0);
        let mut primary = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None);
        primary.start(5, &point).unwrap();
        assert_eq!(filled(&primary, 5), 0);
        // Assist-box: the assist answers (no new encoding: its slice is cached), then this model
        // decodes the slice itself from the point and the assist's box: its (empty) answer stands.
        let mut assist_box =
            Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_point_start(PointStart::AssistBox);
        assist_box.start(5, &point).unwrap();
        assert_eq!((filled(&assist_box, 5), assist_box.decode_order.clone()), (0, vec![5]));
        assert_eq!(assist_box.decoded_slices, 2, "the assist's decoding and this model's");
        assert_eq!(session.point_assist().unwrap().encoded_slices(), 1);
        assert!(PointStart::AssistBox.uses_assist() && !PointStart::Box.uses_assist());
        assert_eq!(PointStart::by_name("assist-box"), Some(PointStart::AssistBox));
        // An assist that does not cover the session's slices, or reads another volume, is refused.
        let short = VolumeSession::lazy(&assist_sam, &volume, (LO + 1, HI), Default::default()).unwrap();
        assert!(VolumeSession::lazy(&sam, &volume, (LO, HI), Default::default())
            .unwrap()
            .with_point_assist(short)
            .is_err());
        let other = self::volume();
        let elsewhere = VolumeSession::lazy(&assist_sam, &other, (LO, HI), Default::default()).unwrap();
        assert!(VolumeSession::lazy(&sam, &volume, (LO, HI), Default::default())
            .unwrap()
            .with_point_assist(elsewhere)
            .is_err());
        assert_eq!(PointStart::by_name("assist"), Some(PointStart::Assist));
    }

    #[test]
    fn with_the_prompt_box_kept_a_click_on_the_prompted_slice_decodes_it_with_the_users_box() {
        let (sam, volume) = (stub_model(), volume());
        set_answer(&sam, FULL);
        let session = session(&sam, &volume);
        let user_box = boxed().bbox;
        // The whole 24 x 24 slice: the box of the current mask, as box carry hands it on.
        let mask_box = Some(BoxPrompt { x0: 0.0, y0: 0.0, x1: 23.0, y1: 23.0 });
        for (carry, kept, expected) in [
            (Carry::Mask, false, None),
            (Carry::Mask, true, user_box),
            (Carry::Box, false, mask_box),
            (Carry::Box, true, mask_box),
        ] {
            let mut seg = Segmenter::new(&session, carry, MaskChoice::Primary, None).with_prompt_box_kept(kept);
            seg.start(5, &boxed()).unwrap();
            seg.decode_boxes.clear();
            seg.add_click(click(5)).unwrap();
            assert_eq!(seg.decode_boxes[0], expected, "{carry:?}, box kept {kept}: the prompted slice");
            // Elsewhere a click is decoded as before: from the current result in the carry's form.
            seg.decode_boxes.clear();
            seg.add_click(click(7)).unwrap();
            let elsewhere = if carry == Carry::Box { mask_box } else { None };
            assert_eq!(seg.decode_boxes[0], elsewhere, "{carry:?}, box kept {kept}: another slice");
        }
    }

    #[test]
    fn re_propagation_from_a_click_settles_at_the_first_slice_it_leaves_as_it_was() {
        let (sam, volume) = (stub_model(), volume());
        set_answer_where(&sam, FULL, |_| true);
        let session = session(&sam, &volume);
        for (settle, decoded) in [(0.0, (6..=HI).collect::<Vec<_>>()), (0.95, vec![6, 7])] {
            let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_click_settle(settle);
            seg.start(4, &boxed()).unwrap();
            seg.decode_order.clear();
            // Every slice answers full again: slice 7 is as it was, so a settling run stops there.
            seg.add_click(click(6)).unwrap();
            assert_eq!(seg.decode_order, decoded, "settle {settle}");
            assert!((LO..=HI).all(|s| super::pixels(&seg.states()[&s].mask) == 24 * 24));
        }
        // A slice the click changes does not settle: the clicked slice full (correction head), slice
        // 7 emptied by the propagation head is a stop, and the stretch past it is cleared, as
        // without settling.
        let mut sam = stub_model();
        sam.add_correction_head();
        set_answer_where(&sam, FULL, |_| true);
        let session = VolumeSession::new(&sam, &volume, (LO, HI), 8, &mut |_, _| {}).unwrap();
        let mut seg = Segmenter::new(&session, Carry::Mask, MaskChoice::Primary, None).with_click_settle(0.95);
        seg.start(4, &boxed()).unwrap();
        set_head_answer(&sam, false, EMPTY);
        seg.decode_order.clear();
        seg.add_click(click(6)).unwrap();
        assert_eq!(seg.decode_order, vec![6, 7]);
        assert!(seg.stops().contains(&Stop { direction: 1, empty_slice: 7 }), "{:?}", seg.stops());
        assert!(!seg.states().contains_key(&8));
    }
}
