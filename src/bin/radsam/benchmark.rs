//! `radsam bench`: the paper's benchmark over labelled CT (dataset folders, image/label pairs,
//! synthetic phantoms) for any set of models, resumable.
//!
//! The output folder holds `run.json` (the protocol settings), one file per finished (model,
//! volume) unit under `units/` (written atomically: a killed run loses at most the unit in hand and
//! resumes after the finished ones), and the report computed from the units: `cases.csv` (every
//! measurement), `speed.csv`, `report.md`, `clicks.png`, `classes.png`.

use crate::common::{load_model, ModelArgs};
use anyhow::{bail, Context, Result};
use radsam::benchmark::report::Report;
use radsam::benchmark::{object_seed, run_object, CaseRow, ClickMode, Level, PromptStyle, ProtocolSettings, SpeedRow};
use radsam::dataset::{self, LabeledVolume, Pair};
use radsam::evaluate::extent;
use radsam::segment::{CarryCue, PointStart, VolumeSession};
use radsam::volume::phantom::PhantomConfig;
use radsam::volume::ReadLimits;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// AMOS's 15 classes under TotalSegmentator's names: the paper's "known" classes for transfer
/// from AMOS to TotalSegmentator (Table 3).
const AMOS_CLASSES: [&str; 15] = [
    "spleen",
    "kidney_right",
    "kidney_left",
    "gallbladder",
    "esophagus",
    "liver",
    "stomach",
    "aorta",
    "inferior_vena_cava",
    "pancreas",
    "adrenal_gland_right",
    "adrenal_gland_left",
    "duodenum",
    "urinary_bladder",
    "prostate",
];

#[derive(clap::Args)]
pub struct BenchmarkArgs {
    /// Dataset folders: nnU-Net/MSD/AMOS (imagesTr/ + labelsTr/, names from dataset.json) or
    /// TotalSegmentator (<case>/ct.nii.gz + <case>/segmentations/). Repeatable.
    #[arg(long = "data")]
    data: Vec<PathBuf>,
    /// An image (NIfTI or DICOM folder) and its label map (NIfTI): IMAGE=LABELS. Repeatable.
    #[arg(long = "pair")]
    pairs: Vec<String>,
    /// Class names for pairs whose dataset names none: {"1": "spleen", ...} or a dataset.json.
    #[arg(long)]
    label_names: Option<PathBuf>,
    /// Synthetic abdominal phantoms added as cases.
    #[arg(long, default_value_t = 0)]
    phantoms: usize,
    /// Seed of the phantoms (phantom n is drawn from seed + 1000 + n, as in training): the default
    /// differs from training's default seed (1), so benchmark phantoms are never training phantoms.
    #[arg(long, default_value_t = 100)]
    phantom_seed: u64,
    /// Phantom grid: voxels along i, j, k (slices along k); the field of view stays 320 x 320 x 240 mm.
    #[arg(long, value_delimiter = ',', default_value = "128,128,48")]
    phantom_dims: Vec<usize>,
    /// Only these classes (names), comma separated; default: every class.
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// Objects smaller than this many voxels are skipped.
    #[arg(long, default_value_t = 100)]
    min_voxels: usize,
    /// Known classes for the transfer table (paper Table 3), comma separated, or `amos` (AMOS's
    /// 15 classes in TotalSegmentator's names). Default: no known/unknown split.
    #[arg(long, value_delimiter = ',')]
    known_classes: Vec<String>,
    /// Models: NAME or NAME=WEIGHTS.safetensors (radsam, lite_medsam, mobile_sam, sam_vit_b,
    /// sam_vit_l, sam_vit_h, medsam_vit_b), the name optionally with @LO,HI, an input window other
    /// than the model's own (e.g. lite_medsam@-160,240: MedSAM's soft-tissue window). Repeatable.
    #[arg(long = "model", default_values = ["radsam", "lite_medsam"])]
    models: Vec<String>,
    /// cpu, cuda, or auto (cuda when available).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Intra-op threads for libtorch on CPU (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
    /// simulated (paper section 3.3: jittered box, random interior point; seeded) or tight (exact
    /// box, deepest point).
    #[arg(long, default_value = "simulated")]
    prompts: String,
    /// uniform (the paper: a voxel drawn uniformly from the 3D error) or cvpr25 (the CVPR 2025
    /// challenge: the centre of the largest error component).
    #[arg(long, default_value = "uniform")]
    click_mode: String,
    /// Correction clicks per protocol run; Dice is recorded after each.
    #[arg(long, default_value_t = 20)]
    max_clicks: usize,
    /// Clicks of the CVPR 2025 challenge's protocol, run besides the paper's: a box on the object's
    /// middle slice plus its boundaries, then clicks at the centre of the largest error (0: off).
    #[arg(long, default_value_t = 5)]
    cvpr25_clicks: usize,
    /// Propagation guards on mask and box carry (src/segment/guard.rs): a leaking or collapsing
    /// carried slice takes another of the decoder's masks, or stops the propagation.
    #[arg(long)]
    guards: bool,
    /// Which of the decoder's masks a carried slice keeps: primary (the decoder's single-mask
    /// output) or continuity (of its four masks, the one that best continues the previous slice;
    /// src/segment/propagate.rs). The oracle and the reference pipeline keep theirs.
    #[arg(long, default_value = "primary")]
    mask_choice: String,
    /// The click check (src/segment/propagate.rs): a clicked slice keeps, of the decoder's masks,
    /// one that agrees with its clicks.
    #[arg(long)]
    click_check: bool,
    /// What mask carry hands on besides the previous slice's mask (src/segment/propagate.rs,
    /// CarryCue): mask-only (the paper), box (the box around it, widened), centre (a positive
    /// point at its deepest pixel) or ensemble (each carried slice also decoded as the reference
    /// pipeline decodes it, the two answers averaged).
    #[arg(long, default_value = "mask-only", value_parser = parse_carry_cue)]
    carry_cue: CarryCue,
    /// Extra decodings of each user-prompted slice from its own mask and the prompt's points,
    /// before anything is carried (src/segment/propagate.rs, Segmenter::with_refinement).
    #[arg(long, default_value_t = 0)]
    refine_passes: usize,
    /// After a click, carry the re-propagated slices by the model's correction head too, not only
    /// the clicked slice (src/segment/propagate.rs, Segmenter::with_correction_carry; the jobs'
    /// `correction_carry`); `--correction-carry false` (the default) by the model's own decoder.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    correction_carry: bool,
    /// Re-propagation from a click stops at the first slice whose new mask has at least this Dice
    /// (0..1) with its previous one, the rest left as it was (Segmenter::with_click_settle); 0: off.
    #[arg(long, default_value_t = 0.0)]
    click_settle: f64,
    /// With mask carry, a negative click takes its region out of its slice's mask prompt before the
    /// slice is decoded (src/segment/negative_erase.rs, Segmenter::with_negative_erase). Jobs have
    /// it on; here it is off unless asked for (`--negative-erase` or `--negative-erase true`), as
    /// every setting added to the protocol defaults to what runs saved before it did, so that the
    /// committed runs resume.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    negative_erase: bool,
    /// A click on the volume-level prompt's slice decodes it from the user's box too, with mask
    /// carry (src/segment/propagate.rs, Segmenter::with_prompt_box_kept); off unless asked for.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    keep_prompt_box: bool,
    /// How the user's slice is answered when its prompt is a point alone (src/segment/propagate.rs,
    /// PointStart): primary (the decoder's primary mask), best-iou (the secondary mask with the
    /// best predicted IoU), box (the primary mask's box joins the point, decoded again), assist
    /// (the model of --point-assist, or else the model's own point assist, answers it; each
    /// --model carries on from its mask) or assist-box (the assist's mask's box joins the point and
    /// each --model decodes the slice from both).
    #[arg(long, default_value = "primary", value_parser = parse_point_start)]
    point_start: PointStart,
    /// With --point-start assist or assist-box: the model (a --model spec, e.g.
    /// mobile_sam=models/radsam-mobile-v1.safetensors) that answers slices prompted by points alone,
    /// instead of each model's own point assist. It encodes only the slices it answers.
    #[arg(long)]
    point_assist: Option<String>,
    /// Skip the oracle-mask runs (paper Table 6).
    #[arg(long)]
    no_oracle: bool,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output folder (resumed when it holds a run with the same settings).
    #[arg(long)]
    out: PathBuf,
    /// Start over: remove the folder's previous units.
    #[arg(long)]
    fresh: bool,
    /// Only rebuild the report from the folder's finished units (with that run's settings).
    #[arg(long)]
    report_only: bool,
    /// Instead of the protocol: the single-click diagnosis (src/benchmark/click_diagnosis.rs): every
    /// positive and negative click on every slice's error, uniform and centred, each alone on the
    /// volume-level box result with mask and box carry; writes click_diagnosis.{csv,md} to --out.
    #[arg(long)]
    diagnose_clicks: bool,
    /// With --diagnose-clicks: slices of each object that get clicks, evenly spaced over it.
    #[arg(long, default_value_t = 6)]
    diagnose_slices: usize,
}

/// What must match for units to be merged into one report.
#[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
struct RunSettings {
    protocol: ProtocolSettings,
    classes: Vec<String>,
    min_voxels: usize,
    known_classes: Vec<String>,
    /// The --point-assist model spec (runs saved before it have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    point_assist: Option<String>,
}

/// One finished (model, volume): its measurements and timing.
#[derive(serde::Serialize, serde::Deserialize)]
struct Unit {
    speed: SpeedRow,
    rows: Vec<CaseRow>,
    /// Slice-by-slice Dice along the propagations (units written before drift curves have none).
    #[serde(default)]
    drift: Vec<radsam::benchmark::DriftRow>,
}

/// A case to load: a dataset pair or a phantom.
enum CaseSource {
    Pair { dataset: String, pair: Pair },
    Phantom { index: usize },
}

pub fn benchmark(args: BenchmarkArgs) -> Result<()> {
    let known: Vec<String> = if args.known_classes == ["amos"] {
        AMOS_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        args.known_classes.clone()
    };
    if args.point_assist.is_some() && !args.point_start.uses_assist() {
        bail!("--point-assist MODEL answers points with --point-start assist or assist-box only");
    }
    if !(0.0..=1.0).contains(&args.click_settle) {
        bail!("--click-settle {}: expected a Dice between 0 and 1 (0: off)", args.click_settle);
    }
    let settings = RunSettings {
        protocol: ProtocolSettings {
            prompts: match args.prompts.as_str() {
                "simulated" => PromptStyle::Simulated,
                "tight" => PromptStyle::Tight,
                p => bail!("--prompts {p}: expected simulated or tight"),
            },
            click_mode: ClickMode::by_name(&args.click_mode)
                .with_context(|| format!("--click-mode {}: expected uniform or cvpr25", args.click_mode))?,
            max_clicks: args.max_clicks,
            oracle: !args.no_oracle,
            seed: args.seed,
            cvpr25_clicks: args.cvpr25_clicks,
            guards: args.guards,
            continuity: match args.mask_choice.as_str() {
                "primary" => false,
                "continuity" => true,
                c => bail!("--mask-choice {c}: expected primary or continuity"),
            },
            click_check: args.click_check,
            carry_cue: args.carry_cue,
            refine_passes: args.refine_passes,
            correction_carry: args.correction_carry,
            click_settle: args.click_settle,
            negative_erase: args.negative_erase,
            point_start: args.point_start,
            keep_prompt_box: args.keep_prompt_box,
        },
        classes: args.classes.clone(),
        min_voxels: args.min_voxels,
        known_classes: known.clone(),
        point_assist: args.point_assist.clone(),
    };
    if args.diagnose_clicks {
        return diagnose_clicks(&args, &settings);
    }
    if args.report_only {
        // The report of the run in the folder, with that run's settings.
        let path = args.out.join("run.json");
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("{}: no benchmark run here", path.display()))?;
        let saved: RunSettings =
            serde_json::from_str(&text).with_context(|| format!("{}: not a benchmark run", path.display()))?;
        return write_report(&args.out, &saved);
    }
    prepare_out(&args.out, &settings, args.fresh)?;
    run(&args, &settings, &args.out.join("units"))?;
    write_report(&args.out, &settings)
}

/// Creates the output folder, or checks that the run in it has the same settings.
fn prepare_out(out: &Path, settings: &RunSettings, fresh: bool) -> Result<()> {
    let path = out.join("run.json");
    if fresh && out.join("units").exists() {
        std::fs::remove_dir_all(out.join("units"))
            .with_context(|| format!("removing {}", out.join("units").display()))?;
    }
    let same_run = !fresh && path.exists();
    if same_run {
        let previous: RunSettings = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("{}: not a benchmark run", path.display()))?;
        if &previous != settings {
            bail!(
                "{} holds a run with other settings ({}); use another --out, or --fresh to start over",
                out.display(),
                serde_json::to_string(&previous)?
            );
        }
    }
    // Also for a run resumed from a folder that holds its settings but not its units (a committed
    // run in a fresh clone: units are not committed).
    std::fs::create_dir_all(out.join("units")).with_context(|| format!("creating {}", out.join("units").display()))?;
    if !same_run {
        std::fs::write(&path, serde_json::to_string_pretty(settings)?)?;
    }
    Ok(())
}

fn sources(args: &BenchmarkArgs) -> Result<Vec<CaseSource>> {
    let names = match &args.label_names {
        Some(p) => dataset::read_label_names(p).map_err(radsam::error::with_code)?,
        None => BTreeMap::new(),
    };
    let mut out = Vec::new();
    for folder in &args.data {
        let dataset =
            folder.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| folder.display().to_string());
        for pair in dataset::gather(std::slice::from_ref(folder), &[], &names).map_err(radsam::error::with_code)? {
            out.push(CaseSource::Pair { dataset: dataset.clone(), pair });
        }
    }
    for pair in dataset::gather(&[], &args.pairs, &names).map_err(radsam::error::with_code)? {
        out.push(CaseSource::Pair { dataset: "pairs".into(), pair });
    }
    out.extend((0..args.phantoms).map(|index| CaseSource::Phantom { index }));
    if out.is_empty() {
        bail!("no cases: give --data, --pair or --phantoms");
    }
    Ok(out)
}

fn load_case(source: &CaseSource, args: &BenchmarkArgs) -> Result<(String, LabeledVolume)> {
    match source {
        CaseSource::Pair { dataset, pair } => {
            Ok((dataset.clone(), dataset::load(pair, &ReadLimits::default()).map_err(radsam::error::with_code)?))
        }
        CaseSource::Phantom { index } => {
            let [i, j, k] = args.phantom_dims[..] else { bail!("--phantom-dims takes i,j,k") };
            // The same field of view as the default phantom, on the chosen grid.
            let default = PhantomConfig::default();
            let spacing =
                std::array::from_fn(|a| default.dims[a] as f64 * default.spacing[a] / [i, j, k][a].max(1) as f64);
            let config = PhantomConfig { dims: [i, j, k], spacing, ..default };
            Ok(("phantoms".into(), dataset::phantom_case(*index, &config, args.phantom_seed)))
        }
    }
}

/// The key of a case source in unit file names: the image path, or what draws the phantom.
fn case_key(source: &CaseSource, args: &BenchmarkArgs) -> String {
    match source {
        CaseSource::Pair { pair, .. } => pair.image.display().to_string(),
        CaseSource::Phantom { index } => format!("phantom-{index}-seed{}-{:?}", args.phantom_seed, args.phantom_dims),
    }
}

/// The unit file of (model, dataset, case source): readable, and unique through a hash of the key.
fn unit_path(dir: &Path, model: &str, source_key: &str) -> PathBuf {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(format!("{model}\n{source_key}").as_bytes());
    let tail: String = source_key.chars().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    let clean = |s: &str| {
        s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect::<String>()
    };
    let hex = format!("{hash:x}");
    dir.join(format!("{}__{}__{}.json", clean(model), clean(&tail), &hex[..12]))
}

fn parse_carry_cue(s: &str) -> Result<CarryCue> {
    CarryCue::by_name(s).with_context(|| format!("--carry-cue {s}: expected mask-only, box, centre or ensemble"))
}

fn parse_point_start(s: &str) -> Result<PointStart> {
    PointStart::by_name(s)
        .with_context(|| format!("--point-start {s}: expected primary, best-iou, box, assist or assist-box"))
}

/// A model spec: NAME[@LO,HI][=WEIGHTS] (`@LO,HI`: the encoder's input window instead of the
/// model's own, e.g. `lite_medsam@-160,240`).
fn parse_model(spec: &str, args: &BenchmarkArgs) -> ModelArgs {
    let (name, weights) = match spec.split_once('=') {
        Some((n, w)) => (n.to_string(), Some(PathBuf::from(w))),
        None => (spec.to_string(), None),
    };
    let (name, window) = match name.split_once('@') {
        Some((n, w)) => (n.to_string(), Some(w.to_string())),
        None => (name, None),
    };
    ModelArgs { model: name, weights, device: args.device.clone(), threads: args.threads, window, half: false }
}

/// The model's label in the report: its name (with its window), with the weights' file stem when given.
fn model_label(spec: &str) -> String {
    match spec.split_once('=') {
        Some((n, w)) => {
            format!("{n}:{}", Path::new(w).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default())
        }
        None => spec.to_string(),
    }
}

fn run(args: &BenchmarkArgs, settings: &RunSettings, units_dir: &Path) -> Result<()> {
    // Every model must be loadable before hours of work start on the first.
    for spec in &args.models {
        let resolved = parse_model(spec, args).spec().resolve().map_err(|e| anyhow::anyhow!("--model {spec}: {e}"))?;
        // `--point-start assist(-box)` needs an assist: lent by --point-assist, or the model's own.
        if settings.protocol.point_start.uses_assist() && args.point_assist.is_none() {
            let meta = radsam::model::finetuned::read_metadata(&resolved.weights)
                .map_err(|e| anyhow::anyhow!("--model {spec}: {e}"))?;
            if !radsam::model::finetuned::has_point_assist(&meta) {
                bail!(
                    "--point-start {}: {} holds no point assist and no --point-assist was given",
                    settings.protocol.point_start.name().replace('_', "-"),
                    model_label(spec)
                );
            }
        }
    }
    let assist = match &args.point_assist {
        Some(spec) => Some(load_model(&parse_model(spec, args)).with_context(|| format!("--point-assist {spec}"))?),
        None => None,
    };
    let sources = sources(args)?;
    let todo: Vec<(&String, Vec<&CaseSource>)> = args
        .models
        .iter()
        .map(|m| {
            (
                m,
                sources
                    .iter()
                    .filter(|s| !unit_path(units_dir, &model_label(m), &case_key(s, args)).exists())
                    .collect(),
            )
        })
        .collect();
    let total: usize = todo.iter().map(|(_, s)| s.len()).sum();
    let done = args.models.len() * sources.len() - total;
    if done > 0 {
        eprintln!(
            "resuming: {done} of {} (model, volume) units already done in {}",
            args.models.len() * sources.len(),
            args.out.display()
        );
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>14} [{bar:30}] {pos}/{len} volumes {elapsed} (eta {eta}) {msg}",
        )
        .unwrap(),
    );
    // A volume that cannot be read is reported and skipped (retried by the next run), not fatal.
    let mut skipped: Vec<String> = Vec::new();
    for (spec, cases) in todo {
        if cases.is_empty() {
            continue;
        }
        let label = model_label(spec);
        bar.set_prefix(label.clone());
        bar.set_message("loading the model");
        let sam = load_model(&parse_model(spec, args))?;
        reset_peak_rss();
        for source in cases {
            bar.set_message(format!("reading {}", case_key(source, args)));
            let (dataset, case) = match load_case(source, args) {
                Ok(c) => c,
                Err(e) => {
                    bar.suspend(|| eprintln!("skipping {}: {e:#}", case_key(source, args)));
                    skipped.push(format!("{} ({label}): {e:#}", case_key(source, args)));
                    bar.inc(1);
                    continue;
                }
            };
            let unit = run_unit(&sam, assist.as_ref(), &label, &dataset, &case, settings, &bar)?;
            let path = unit_path(units_dir, &label, &case_key(source, args));
            write_atomically(&path, serde_json::to_string(&unit)?.as_bytes())?;
            bar.inc(1);
        }
    }
    bar.finish_with_message("done");
    // The report names what this run had to skip.
    std::fs::write(args.out.join("skipped.json"), serde_json::to_string_pretty(&skipped)?)?;
    Ok(())
}

/// The objects of a case the benchmark measures: every class present (or the chosen ones) with
/// enough voxels, as (id, mask, first slice, last slice).
fn objects_of(case: &LabeledVolume, settings: &RunSettings) -> Vec<(u16, Vec<u8>, usize, usize)> {
    let mut ids: Vec<u16> = case
        .labels
        .iter()
        .copied()
        .filter(|&v| v != 0)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    ids.retain(|&id| settings.classes.is_empty() || settings.classes.contains(&case.class_name(id)));
    let mut objects = Vec::new();
    for id in ids {
        let truth: Vec<u8> = case.labels.iter().map(|&v| (v == id) as u8).collect();
        if radsam::mask_stats::voxel_count(&truth) < settings.min_voxels as u64 {
            continue;
        }
        if let Some((lo, hi, _)) = extent(&case.volume, &truth) {
            objects.push((id, truth, lo, hi));
        }
    }
    objects
}

/// One row of click_diagnosis.csv (flat: CSV has no nested records).
#[derive(serde::Serialize)]
struct DiagnosisRow<'a> {
    model: &'a str,
    case: &'a str,
    class: &'a str,
    carry: radsam::segment::Carry,
    slice: usize,
    distance: usize,
    positive: bool,
    placement: radsam::benchmark::click_diagnosis::Placement,
    error_pixels: usize,
    slice_dice_before: f64,
    slice_dice_after: f64,
    volume_dice_before: f64,
    volume_dice_after: f64,
}

/// `--diagnose-clicks`: see the flag.
fn diagnose_clicks(args: &BenchmarkArgs, settings: &RunSettings) -> Result<()> {
    use radsam::benchmark::click_diagnosis::{diagnose_object, ClickEffect, Placement};
    use radsam::segment::Carry;
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    let sources = sources(args)?;
    let mut all: Vec<(String, String, String, ClickEffect)> = Vec::new();
    for spec in &args.models {
        let label = model_label(spec);
        let sam = load_model(&parse_model(spec, args))?;
        for source in &sources {
            let (dataset, case) = load_case(source, args)?;
            let objects = objects_of(&case, settings);
            if objects.is_empty() {
                continue;
            }
            let (lo, hi) = (
                objects.iter().map(|o| o.2).min().expect("objects"),
                objects.iter().map(|o| o.3).max().expect("objects"),
            );
            eprintln!("{label}: {}: encoding slices {lo}..={hi}", case.name);
            let session = VolumeSession::new(
                &sam,
                &case.volume,
                (lo, hi),
                VolumeSession::default_batch(sam.device()),
                &mut |_, _| {},
            )
            .map_err(radsam::error::with_code)?;
            let bar = indicatif::ProgressBar::new(objects.len() as u64).with_prefix(label.clone());
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} clicks [{bar:30}] {pos}/{len} objects {elapsed} {msg}",
                )
                .unwrap(),
            );
            for (id, truth, _, _) in &objects {
                let class = case.class_name(*id);
                bar.set_message(class.clone());
                let seed = object_seed(settings.protocol.seed, &format!("{dataset}/{}", case.name), *id);
                for effect in diagnose_object(
                    &session,
                    truth,
                    &[Carry::Mask, Carry::Box],
                    seed,
                    args.diagnose_slices,
                    &settings.protocol,
                )
                .map_err(radsam::error::with_code)?
                {
                    all.push((label.clone(), case.name.clone(), class.clone(), effect));
                }
                bar.inc(1);
            }
            bar.finish();
        }
    }
    let mut w = csv::Writer::from_path(args.out.join("click_diagnosis.csv"))?;
    for (model, case, class, effect) in &all {
        let e = effect;
        w.serialize(DiagnosisRow {
            model,
            case,
            class,
            carry: e.carry,
            slice: e.slice,
            distance: e.distance,
            positive: e.positive,
            placement: e.placement,
            error_pixels: e.error_pixels,
            slice_dice_before: e.slice_dice_before,
            slice_dice_after: e.slice_dice_after,
            volume_dice_before: e.volume_dice_before,
            volume_dice_after: e.volume_dice_after,
        })?;
    }
    w.flush()?;
    // The summary: per model, carry, kind and placement.
    let mut md = format!(
        "# Single-click diagnosis\n\nCommand: `{}`\n\nMachine: {}. Written {} UTC.\n\nEach click alone on the volume-level result of the protocol's jittered box (seed {}), on one slice's error: positive clicks in missed pixels, negative in wrongly included ones; uniform (a pixel drawn from that slice's error) or centre (the deepest pixel of the slice's largest error component). Dice %, mean over clicks; better/worse: share of clicks that raise/lower their slice's Dice by more than 0.5 points.\n\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        machine(),
        utc_now(),
        settings.protocol.seed
    );
    md.push_str("| model | carry | click | placement | clicks | slice Dice before | after | change | better | worse | volume Dice change | change on the prompted slice's neighbours (<= 2) | change farther |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mut keys: Vec<(String, Carry, bool, Placement)> =
        all.iter().map(|(m, _, _, e)| (m.clone(), e.carry, e.positive, e.placement)).collect();
    keys.dedup();
    keys.sort_by(|a, b| (&a.0, a.1 as u8, !a.2, a.3).cmp(&(&b.0, b.1 as u8, !b.2, b.3)));
    keys.dedup();
    for (model, carry, positive, placement) in keys {
        let e: Vec<&ClickEffect> = all
            .iter()
            .filter(|(m, _, _, e)| {
                *m == model && e.carry == carry && e.positive == positive && e.placement == placement
            })
            .map(|r| &r.3)
            .collect();
        let n = e.len() as f64;
        let mean = |f: &dyn Fn(&ClickEffect) -> f64, set: &[&ClickEffect]| {
            if set.is_empty() {
                f64::NAN
            } else {
                100.0 * set.iter().map(|x| f(x)).sum::<f64>() / set.len() as f64
            }
        };
        let change = |x: &ClickEffect| x.slice_dice_after - x.slice_dice_before;
        let near: Vec<&ClickEffect> = e.iter().copied().filter(|x| x.distance <= 2).collect();
        let far: Vec<&ClickEffect> = e.iter().copied().filter(|x| x.distance > 2).collect();
        md.push_str(&format!(
            "| {model} | {} | {} | {} | {} | {:.1} | {:.1} | {:+.1} | {:.0}% | {:.0}% | {:+.2} | {:+.1} | {:+.1} |\n",
            serde_json::to_string(&carry)?.trim_matches('"'),
            if positive { "positive" } else { "negative" },
            serde_json::to_string(&placement)?.trim_matches('"'),
            e.len(),
            mean(&|x| x.slice_dice_before, &e),
            mean(&|x| x.slice_dice_after, &e),
            mean(&change, &e),
            100.0 * e.iter().filter(|x| change(x) > 0.005).count() as f64 / n,
            100.0 * e.iter().filter(|x| change(x) < -0.005).count() as f64 / n,
            mean(&|x| x.volume_dice_after - x.volume_dice_before, &e),
            mean(&change, &near),
            mean(&change, &far),
        ));
    }
    std::fs::write(args.out.join("click_diagnosis.md"), &md)?;
    eprintln!("{}", md);
    Ok(())
}

fn run_unit(
    sam: &radsam::model::Sam,
    point_assist: Option<&radsam::model::Sam>,
    label: &str,
    dataset: &str,
    case: &LabeledVolume,
    settings: &RunSettings,
    bar: &indicatif::ProgressBar,
) -> Result<Unit> {
    let volume = &case.volume;
    let objects = objects_of(case, settings);
    let t0 = Instant::now();
    let device = format!("{:?}", sam.device());
    let mut speed = SpeedRow {
        model: label.into(),
        device: device.clone(),
        case: case.name.clone(),
        objects: objects.len(),
        encoded_slices: 0,
        encode_seconds: 0.0,
        decoded_slices: 0,
        decode_seconds: 0.0,
        seconds: 0.0,
        peak_rss_mib: 0.0,
        gpu_memory_mib: None,
    };
    let mut rows = Vec::new();
    let mut drift = Vec::new();
    if !objects.is_empty() {
        // Encode the slices every object needs, once.
        let lo = objects.iter().map(|o| o.2).min().expect("objects");
        let hi = objects.iter().map(|o| o.3).max().expect("objects");
        let n = hi - lo + 1;
        let session =
            VolumeSession::new(sam, volume, (lo, hi), VolumeSession::default_batch(sam.device()), &mut |done, _| {
                bar.set_message(format!("{}: encoding {done}/{n} slices", case.name))
            })
            .map_err(radsam::error::with_code)?;
        speed.encoded_slices = n;
        speed.encode_seconds = session.encode_seconds();
        let session = match point_assist {
            Some(assist) => session
                .with_point_assist(
                    VolumeSession::lazy(assist, volume, (lo, hi), Default::default())
                        .map_err(radsam::error::with_code)?,
                )
                .map_err(|e| anyhow::anyhow!("--point-assist: {e}"))?,
            None => session,
        };
        for (k, (id, truth, _, _)) in objects.iter().enumerate() {
            let class = case.class_name(*id);
            bar.set_message(format!("{}: {class} ({}/{})", case.name, k + 1, objects.len()));
            let seed = object_seed(settings.protocol.seed, &format!("{dataset}/{}", case.name), *id);
            let Some(run) = run_object(&session, truth, &settings.protocol, seed).map_err(radsam::error::with_code)?
            else {
                continue;
            };
            speed.decoded_slices += run.decoded_slices;
            speed.decode_seconds += run.decode_seconds;
            drift.extend(run.drift.iter().map(|d| radsam::benchmark::DriftRow {
                model: label.into(),
                dataset: dataset.into(),
                case: case.name.clone(),
                class: class.clone(),
                carry: d.carry,
                offset: d.offset,
                dice: d.dice,
            }));
            let (lo, hi, _) = extent(volume, truth).expect("objects are not empty");
            let known = match settings.known_classes.is_empty() {
                true => String::new(),
                false if settings.known_classes.contains(&class) => "known".into(),
                false => "unknown".into(),
            };
            for m in run.measurements {
                rows.push(CaseRow {
                    model: label.into(),
                    dataset: dataset.into(),
                    case: case.name.clone(),
                    class_id: *id,
                    class: class.clone(),
                    known: known.clone(),
                    level: m.level,
                    prompt: m.prompt,
                    carry: m.carry,
                    oracle: m.oracle,
                    click_mode: if m.level == Level::Cvpr25 {
                        ClickMode::LargestErrorCentre
                    } else {
                        settings.protocol.click_mode
                    },
                    clicks: m.clicks,
                    dice: m.dice,
                    slices: hi - lo + 1,
                    voxels: radsam::mask_stats::voxel_count(truth),
                });
            }
        }
        // With a point assist's slices and seconds (its decoding is in decode_seconds).
        speed.encoded_slices = session.encoded_slices();
        speed.encode_seconds = session.encode_seconds();
    }
    speed.seconds = t0.elapsed().as_secs_f64();
    speed.peak_rss_mib = peak_rss_mib();
    speed.gpu_memory_mib = if device.starts_with("Cuda") { gpu_memory_mib() } else { None };
    Ok(Unit { speed, rows, drift })
}

/// Writes through a temporary file and a rename: a unit file is whole or absent.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    std::io::Write::write_all(&mut f, bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Resets the kernel's peak-RSS counter of this process (VmHWM), so each model's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// GPU memory this process holds, from nvidia-smi; None when it cannot tell.
fn gpu_memory_mib() -> Option<f64> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    let pid = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (p, m) = l.split_once(',')?;
        (p.trim() == pid).then(|| m.trim().parse().ok()).flatten()
    })
}

/// Reads every finished unit and writes cases.csv, speed.csv, report.md and the plots.
fn write_report(out: &Path, settings: &RunSettings) -> Result<()> {
    let mut units = Vec::new();
    let dir = out.join("units");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    for p in paths {
        let unit: Unit = serde_json::from_str(&std::fs::read_to_string(&p)?)
            .with_context(|| format!("{}: not a benchmark unit", p.display()))?;
        units.push(unit);
    }
    if units.is_empty() {
        bail!("{}: no finished units to report", dir.display());
    }
    // Rows in a stable order: model order of first unit, then dataset, case, class, protocol.
    let mut rows: Vec<CaseRow> = units.iter().flat_map(|u| u.rows.iter().cloned()).collect();
    rows.sort_by(|a, b| {
        (&a.model, &a.dataset, &a.case, a.class_id, a.level, a.prompt, a.carry as u8, a.oracle, a.clicks).cmp(&(
            &b.model,
            &b.dataset,
            &b.case,
            b.class_id,
            b.level,
            b.prompt,
            b.carry as u8,
            b.oracle,
            b.clicks,
        ))
    });
    let drift: Vec<radsam::benchmark::DriftRow> = units.iter().flat_map(|u| u.drift.iter().cloned()).collect();
    let speed: Vec<SpeedRow> = units.into_iter().map(|u| u.speed).collect();
    let mut w = csv::Writer::from_path(out.join("drift.csv"))?;
    for d in &drift {
        w.serialize(d)?;
    }
    w.flush()?;
    let mut w = csv::Writer::from_path(out.join("cases.csv"))?;
    for r in &rows {
        w.serialize(r)?;
    }
    w.flush()?;
    let mut w = csv::Writer::from_path(out.join("speed.csv"))?;
    for s in &speed {
        w.serialize(s)?;
    }
    w.flush()?;
    let report = Report::new(&rows, &speed).with_drift(&drift);
    let header = format!(
        "# RadSAM benchmark\n\nCommand: `{}`\n\nMachine: {}; libtorch threads: {}. Written {} UTC.\n\nProtocol: prompts {}, clicks {} (up to {}), oracle {}, seed {}{}; objects of at least {} voxels{}{}.\n",
        std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect::<Vec<_>>().join(" "),
        machine(),
        tch::get_num_threads(),
        utc_now(),
        serde_json::to_string(&settings.protocol.prompts)?.trim_matches('"'),
        settings.protocol.click_mode.name(),
        settings.protocol.max_clicks,
        if settings.protocol.oracle { "on" } else { "off" },
        settings.protocol.seed,
        [
            (settings.protocol.cvpr25_clicks > 0)
                .then(|| format!(", CVPR 2025 protocol with {} clicks", settings.protocol.cvpr25_clicks)),
            settings.protocol.guards.then(|| ", propagation guards on".to_string()),
            settings.protocol.continuity.then(|| ", carried slices keep the mask that best continues the previous one".to_string()),
            settings.protocol.click_check.then(|| ", click check on".to_string()),
            (settings.protocol.carry_cue != CarryCue::MaskOnly)
                .then(|| format!(", mask carry with its {}", settings.protocol.carry_cue.description())),
            Some(format!(
                ", slices re-propagated from a click carried by {}",
                if settings.protocol.correction_carry { "the correction head" } else { "the model's own decoder" }
            )),
            (settings.protocol.click_settle > 0.0).then(|| {
                format!(
                    ", re-propagation from a click stopped where a slice's mask kept Dice {} with its previous one",
                    settings.protocol.click_settle
                )
            }),
            settings.protocol.negative_erase
                .then(|| ", negative clicks take their region out of the clicked slice's mask prompt".to_string()),
            settings.protocol.keep_prompt_box
                .then(|| ", a click on the prompted slice decodes it with the user's box too".to_string()),
            (settings.protocol.point_start != PointStart::Primary).then(|| {
                format!(
                    ", a slice prompted by a point alone answered by: {}{}",
                    settings.protocol.point_start.name(),
                    settings.point_assist.as_ref().map(|m| format!(" ({m})")).unwrap_or_default()
                )
            }),
            (settings.protocol.refine_passes > 0).then(|| {
                format!(", prompted slices refined {} time(s) from their own mask", settings.protocol.refine_passes)
            }),
        ]
        .into_iter()
        .flatten()
        .collect::<String>(),
        settings.min_voxels,
        if settings.classes.is_empty() { String::new() } else { format!(", classes {}", settings.classes.join(", ")) },
        if settings.known_classes.is_empty() { String::new() } else { format!("; known classes: {}", settings.known_classes.join(", ")) },
    );
    let skipped: Vec<String> = std::fs::read_to_string(out.join("skipped.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let header = match skipped.is_empty() {
        true => header,
        false => format!(
            "{header}\n**Skipped volumes** (unreadable in the last run; not in the tables):\n\n{}\n",
            skipped.iter().map(|s| format!("- {s}\n")).collect::<String>()
        ),
    };
    std::fs::write(out.join("report.md"), report.markdown(&header))?;
    report.plots(out).context("drawing the plots")?;
    eprintln!(
        "report: {} ({} measurements); plots: clicks.png, classes.png, drift.png",
        out.join("report.md").display(),
        rows.len()
    );
    Ok(())
}

/// CPU model and core count (from /proc/cpuinfo), and the GPU when CUDA is available.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let gpu = tch::Cuda::is_available().then(|| {
        let out =
            std::process::Command::new("nvidia-smi").args(["--query-gpu=name", "--format=csv,noheader"]).output().ok();
        out.map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_string()).unwrap_or_default()
    });
    match gpu {
        Some(g) => format!("{cpu}, {cores} cores; GPU {g}"),
        None => format!("{cpu}, {cores} cores; CPU only"),
    }
}

/// The current UTC time as YYYY-MM-DD HH:MM.
fn utc_now() -> String {
    let t = radsam::clock::utc_now();
    format!("{:04}-{:02}-{:02} {:02}:{:02}", t.year, t.month, t.day, t.hour, t.minute)
}
