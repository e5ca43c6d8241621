//! The project's one evaluation: the paper's protocol on one object with a reference mask
//! (protocol.rs, section 5 of the paper and the CVPR 2025 protocol), with the click simulation it
//! uses (clicks.rs). Every evaluator runs it:
//! - `radsam bench` (src/benchmark: the runner's CSV rows, the report) makes every run;
//! - `radsam bench-propagation` and the validation table summarise a fixed set of runs per object
//!   ([`evaluate_object`] -> [`ObjectEvaluation`]);
//! - the trainer's validation makes the runs of [`ValidationMeasure`] and averages them.

mod clicks;
mod protocol;

pub use clicks::{next_click, ClickMode};
pub use protocol::{
    object_seed, object_seed_prompt, run_object, run_object_with, DriftPoint, Level, Measurement, ObjectRun,
    PromptKind, PromptStyle, ProtocolSettings, RunSpec,
};

use crate::model::Sam;
use crate::segment::{Carry, MaskChoice, SegmentError, VolumeSession};
use crate::volume::Volume;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The object's slice range (first, last) and its largest slice, or None when the mask is empty.
pub fn extent(volume: &Volume, truth: &[u8]) -> Option<(usize, usize, usize)> {
    let per_slice: Vec<usize> =
        (0..volume.num_slices()).map(|s| volume.grid.extract(truth, s).iter().filter(|&&v| v != 0).count()).collect();
    let lo = per_slice.iter().position(|&c| c > 0)?;
    let hi = per_slice.iter().rposition(|&c| c > 0)?;
    let largest = (lo..=hi).max_by_key(|&s| (per_slice[s], std::cmp::Reverse(s)))?;
    Some((lo, hi, largest))
}

/// Settings of the fixed-prompt evaluations (bench-propagation, the validation table, the
/// trainer's validation): the exact box and the deepest point, the paper's uniform clicks; every
/// inference rule off (the negative erase too), so that their figures stay comparable across runs.
fn fixed_prompt_settings(seed: u64) -> ProtocolSettings {
    ProtocolSettings {
        prompts: PromptStyle::Tight,
        click_mode: ClickMode::Uniform,
        max_clicks: 0,
        oracle: false,
        seed,
        cvpr25_clicks: 0,
        guards: false,
        continuity: false,
        click_check: false,
        carry_cue: Default::default(),
        refine_passes: 0,
        correction_carry: false,
        click_settle: 0.0,
        negative_erase: false,
        point_start: Default::default(),
        keep_prompt_box: false,
    }
}

fn run(level: Level, prompt: PromptKind, carry: Carry, choice: MaskChoice, clicks: usize) -> RunSpec {
    RunSpec { level, prompt, carry, choice, clicks, click_mode: ClickMode::Uniform }
}

/// Click counts at which [`ObjectEvaluation`] reports Dice.
pub const CLICK_STEPS: [usize; 3] = [5, 10, 20];

/// One object's summary for bench-propagation and the validation table: volume-level Dice from a
/// box and a point on the largest slice with mask and box carry, slice-level Dice from a box and
/// a point on every slice, and Dice after 5, 10 and 20 uniform clicks from the box.
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

fn kind_name(kind: PromptKind) -> &'static str {
    match kind {
        PromptKind::Box => "box",
        PromptKind::Point => "point",
    }
}

/// Encodes the object's slices and summarises the protocol on it (see [`ObjectEvaluation`]);
/// `choice` answers every run (BestReference: the oracle throughout).
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
    let session =
        VolumeSession::new(sam, volume, (lo, hi), VolumeSession::default_batch(sam.device()), &mut |_, _| {})?;
    let settings = fixed_prompt_settings(seed);
    let mut runs = Vec::new();
    for kind in [PromptKind::Box, PromptKind::Point] {
        for carry in [Carry::Mask, Carry::Box] {
            runs.push(run(Level::Volume, kind, carry, choice, 0));
        }
    }
    for kind in [PromptKind::Box, PromptKind::Point] {
        runs.push(run(Level::Slice, kind, Carry::Box, choice, 0));
    }
    let Some(object) = run_object_with(&session, truth, &settings, &runs, seed)? else { return Ok(None) };
    let mut volume_level = BTreeMap::new();
    let mut slice_level = BTreeMap::new();
    for m in &object.measurements {
        match m.level {
            Level::Volume => {
                let carry = if m.carry == Carry::Mask { "mask carry" } else { "box carry" };
                volume_level.insert(format!("{}/{carry}", kind_name(m.prompt)), m.dice);
            }
            _ => {
                slice_level.insert(kind_name(m.prompt).to_string(), m.dice);
            }
        }
    }
    // Editing: the box run again (the same prompt: prompts depend on the seed alone), then clicks.
    let editing = [run(Level::Volume, PromptKind::Box, click_carry, choice, *CLICK_STEPS.last().expect("steps"))];
    let edited = run_object_with(&session, truth, &settings, &editing, seed)?;
    let clicks: BTreeMap<usize, f64> = edited
        .iter()
        .flat_map(|o| &o.measurements)
        .filter(|m| CLICK_STEPS.contains(&m.clicks))
        .map(|m| (m.clicks, m.dice))
        .collect();
    let box_carry_seconds = object
        .prompt_seconds
        .iter()
        .find(|(r, _)| r.level == Level::Volume && r.prompt == PromptKind::Box && r.carry == Carry::Box)
        .map_or(0.0, |(_, s)| *s);
    Ok(Some(ObjectEvaluation {
        name: name.to_string(),
        boundaries: (lo, hi),
        prompted_slice: start,
        reference_voxels: crate::mask_stats::voxel_count(truth),
        volume_level,
        slice_level,
        clicks,
        click_carry,
        encode_seconds: session.encode_seconds(),
        box_carry_seconds,
    }))
}

/// The measures of the trainer's validation, in percent of Dice. Their JSON names are those of
/// the training logs (log.jsonl) and of the trainer service's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ValidationMeasure {
    #[serde(rename = "volume box/mask carry")]
    VolumeBoxMaskCarry,
    #[serde(rename = "volume box/box carry")]
    VolumeBoxBoxCarry,
    #[serde(rename = "slice box")]
    SliceBox,
    #[serde(rename = "slice point")]
    SlicePoint,
    #[serde(rename = "volume box/mask carry + 5 clicks")]
    VolumeBoxMaskCarryFiveClicks,
}

impl ValidationMeasure {
    pub const ALL: [Self; 5] = [
        Self::VolumeBoxMaskCarry,
        Self::VolumeBoxBoxCarry,
        Self::SliceBox,
        Self::SlicePoint,
        Self::VolumeBoxMaskCarryFiveClicks,
    ];
    /// Correction clicks of the editing measure.
    pub const CLICKS: usize = 5;

    /// The name logs and tables use (the serde name).
    pub fn name(self) -> &'static str {
        match self {
            Self::VolumeBoxMaskCarry => "volume box/mask carry",
            Self::VolumeBoxBoxCarry => "volume box/box carry",
            Self::SliceBox => "slice box",
            Self::SlicePoint => "slice point",
            Self::VolumeBoxMaskCarryFiveClicks => "volume box/mask carry + 5 clicks",
        }
    }

    /// The measure a measurement of the validation's runs gives, if any.
    fn of(m: &Measurement) -> Option<Self> {
        match (m.level, m.prompt, m.carry, m.clicks) {
            (Level::Volume, PromptKind::Box, Carry::Mask, 0) => Some(Self::VolumeBoxMaskCarry),
            (Level::Volume, PromptKind::Box, Carry::Mask, Self::CLICKS) => Some(Self::VolumeBoxMaskCarryFiveClicks),
            (Level::Volume, PromptKind::Box, Carry::Box, 0) => Some(Self::VolumeBoxBoxCarry),
            (Level::Slice, PromptKind::Box, _, 0) => Some(Self::SliceBox),
            (Level::Slice, PromptKind::Point, _, 0) => Some(Self::SlicePoint),
            _ => None,
        }
    }
}

impl std::fmt::Display for ValidationMeasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Mean Dice (%) over validation objects, by measure; per object too. The trainer writes it to
/// its training log (log.jsonl) and the registry keeps it with each candidate: read back typed.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ValidationResult {
    pub mean: BTreeMap<ValidationMeasure, f64>,
    pub per_object: BTreeMap<String, BTreeMap<ValidationMeasure, f64>>,
}

/// The trainer's validation on one object (a box on its largest slice between its true
/// boundaries with mask carry, then 5 clicks; with box carry; slice-level from a box and from a
/// point on every slice), in percent. `session` covers at least the object's slices.
pub fn validation_scores(
    session: &VolumeSession,
    truth: &[u8],
    seed: u64,
) -> Result<BTreeMap<ValidationMeasure, f64>, SegmentError> {
    let runs = [
        run(Level::Volume, PromptKind::Box, Carry::Mask, MaskChoice::Primary, ValidationMeasure::CLICKS),
        run(Level::Volume, PromptKind::Box, Carry::Box, MaskChoice::Primary, 0),
        run(Level::Slice, PromptKind::Box, Carry::Box, MaskChoice::Primary, 0),
        run(Level::Slice, PromptKind::Point, Carry::Box, MaskChoice::Primary, 0),
    ];
    let object = run_object_with(session, truth, &fixed_prompt_settings(seed), &runs, seed)?;
    Ok(object
        .into_iter()
        .flat_map(|o| o.measurements)
        .filter_map(|m| ValidationMeasure::of(&m).map(|k| (k, 100.0 * m.dice)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_measures_keep_the_names_of_the_training_logs() {
        let names: Vec<String> =
            ValidationMeasure::ALL.iter().map(|m| serde_json::to_value(m).unwrap().as_str().unwrap().into()).collect();
        let displayed: Vec<String> = ValidationMeasure::ALL.iter().map(|m| m.to_string()).collect();
        assert_eq!(names, displayed);
        assert_eq!(
            names,
            [
                "volume box/mask carry",
                "volume box/box carry",
                "slice box",
                "slice point",
                "volume box/mask carry + 5 clicks"
            ]
        );
        // A log line's means read back into typed measures.
        let mean: BTreeMap<ValidationMeasure, f64> =
            serde_json::from_str(r#"{"volume box/mask carry": 71.5, "slice box": 80.0}"#).unwrap();
        assert_eq!(mean[&ValidationMeasure::VolumeBoxMaskCarry], 71.5);
    }

    #[test]
    fn only_the_validation_runs_give_validation_measures() {
        let m = |level, prompt, carry, clicks| Measurement { level, prompt, carry, oracle: false, clicks, dice: 0.5 };
        use ValidationMeasure as V;
        assert_eq!(V::of(&m(Level::Volume, PromptKind::Box, Carry::Mask, 0)), Some(V::VolumeBoxMaskCarry));
        assert_eq!(V::of(&m(Level::Volume, PromptKind::Box, Carry::Mask, 5)), Some(V::VolumeBoxMaskCarryFiveClicks));
        assert_eq!(V::of(&m(Level::Volume, PromptKind::Box, Carry::Mask, 3)), None);
        assert_eq!(V::of(&m(Level::Volume, PromptKind::Point, Carry::Mask, 0)), None);
        assert_eq!(V::of(&m(Level::Slice, PromptKind::Point, Carry::Box, 0)), Some(V::SlicePoint));
    }
}
