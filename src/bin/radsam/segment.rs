//! `radsam segment`: whole 3D objects from one prompt plus boundaries (RadSAM propagation) and
//! correction clicks, from flags or a job file; the processing function does the work.

use crate::common::{parse_choice, parse_point, ModelArgs};
use anyhow::{bail, Context, Result};
use radsam::job::{Job, Staging};
use radsam::model::ModelThread;
use radsam::volume::ReadLimits;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct SegmentArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A job file (JSON, the queue's schema; see README). Without it, the flags below make a
    /// one-target job.
    #[arg(long, conflicts_with_all = ["volume", "slice", "mask"])]
    job: Option<PathBuf>,
    /// Input volume: NIfTI file or DICOM series folder.
    #[arg(long)]
    volume: Option<PathBuf>,
    /// With a DICOM folder holding several series: the SeriesInstanceUID to read.
    #[arg(long)]
    series_uid: Option<String>,
    /// Name of the target (output file names, SEG segment label).
    #[arg(long, default_value = "target")]
    target_name: String,
    /// The prompted slice.
    #[arg(long)]
    slice: Option<usize>,
    /// First and last slice of the object (either order), comma separated.
    #[arg(long, value_delimiter = ',', num_args = 1)]
    boundaries: Option<Vec<usize>>,
    /// Box on the prompted slice: x0,y0,x1,y1.
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    r#box: Option<Vec<f64>>,
    /// Point on the prompted slice: x,y,pos or x,y,neg (repeatable).
    #[arg(long = "point")]
    points: Vec<String>,
    /// A mask prompt from a file: FILE[:LABEL], a NIfTI label map on the volume's grid (LABEL: its
    /// value, default 1) or a DICOM SEG of the series (LABEL: the segment number).
    #[arg(long)]
    mask: Option<String>,
    /// propagate: the prompt on --slice carried to the boundaries; refine: every slice between
    /// the boundaries prompted with its own slice of --mask (refine another tool's segmentation).
    #[arg(long, default_value = "propagate")]
    mode: String,
    /// Correction click: slice,x,y,pos or slice,x,y,neg (repeatable, applied in order).
    #[arg(long = "click")]
    clicks: Vec<String>,
    /// mask (RadSAM), box (baseline for SAM / MedSAM) or reference_box (LiteMedSAM's own 3D inference).
    #[arg(long, default_value = "mask")]
    carry: String,
    /// Reference label map (NIfTI) for Dice, and the target's value in it.
    #[arg(long)]
    reference: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    reference_label: u32,
    /// primary, best-iou, continuity (on carried slices, the mask that best continues the previous
    /// slice), or 0..3.
    #[arg(long, default_value = "primary")]
    mask_choice: String,
    /// Slices encoded per batch (default: 1 on CPU, 8 on GPU).
    #[arg(long)]
    batch: Option<usize>,
    #[arg(long, default_value_t = ReadLimits::default().max_voxels)]
    max_voxels: u64,
    /// What one job may ask for: targets, clicks per target, slices, job file size.
    #[command(flatten)]
    job_limits: radsam::job::JobLimits,
    /// PNG overlays of the prompted and clicked slices into OUT/overlays/.
    #[arg(long)]
    overlays: bool,
    /// Propagation guards (src/segment/guard.rs): a carried slice that leaks or collapses takes
    /// another of the decoder's masks, or stops the propagation; firings are in result.json.
    #[arg(long)]
    guards: bool,
    /// The click check (src/segment/propagate.rs): a clicked slice keeps, of the decoder's four
    /// masks, one that agrees with its clicks.
    #[arg(long)]
    click_check: bool,
    /// Correction carry (src/segment/propagate.rs): the slices re-propagated from a click are
    /// carried by the model's correction head too, not only the clicked slice.
    #[arg(long)]
    correction_carry: bool,
    /// Negative erase (src/segment/negative_erase.rs): with mask carry, a negative click takes its
    /// region out of its slice's mask prompt before the slice is decoded; on by default,
    /// `--negative-erase false` turns it off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    negative_erase: bool,
    /// Carry ensemble (src/segment/propagate.rs, CarryCue::Ensemble): with mask carry, each carried
    /// slice is also decoded from the previous mask's widened box and keeps the mean of the two
    /// answers. Off by default (README, Benchmarks, carry ensemble).
    #[arg(long)]
    carry_ensemble: bool,
    /// Point assist: a slice prompted by points alone is answered by the model's point assist when
    /// its weights hold one (crate::model docs); on by default, `--point-assist false` turns it off.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    point_assist: bool,
    /// Encode every slice afresh: neither read nor store the embedding cache
    /// (RADSAM_CACHE_EMBEDDINGS, default $RADSAM_CACHE/embeddings; RADSAM_CACHE_EMBEDDINGS_MB).
    #[arg(long)]
    no_embedding_cache: bool,
    /// Output folder: TARGET.nii.gz per target, labels.nii.gz, seg.dcm (DICOM input), result.json.
    #[arg(long)]
    out: PathBuf,
}

/// A one-target job from the flags of `radsam segment`.
fn job_from_flags(args: &SegmentArgs) -> Result<Job> {
    use radsam::job::{Boundaries, InitialPrompt, Target};
    let volume = args.volume.as_ref().context("give --job, or --volume with --slice and --boundaries")?;
    let b = args.boundaries.as_deref().context("--boundaries top,bottom: the object's first and last slice")?;
    let [top, bottom] = b else { bail!("--boundaries takes two slice indices, got {}", b.len()) };
    let bbox = match args.r#box.as_deref() {
        None => None,
        Some([x0, y0, x1, y1]) => Some([*x0, *y0, *x1, *y1]),
        Some(other) => bail!("--box takes 4 numbers x0,y0,x1,y1, got {}", other.len()),
    };
    let clicks = args
        .clicks
        .iter()
        .map(|c| {
            let (slice, rest) =
                c.split_once(',').with_context(|| format!("--click {c}: expected slice,x,y,pos|neg"))?;
            let p = parse_point(rest)?;
            Ok(radsam::prompt::Click {
                slice: slice.trim().parse().with_context(|| format!("--click {c}: slice"))?,
                x: p.x,
                y: p.y,
                positive: p.positive,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let carry = match args.carry.as_str() {
        "mask" => radsam::segment::Carry::Mask,
        "box" => radsam::segment::Carry::Box,
        "reference_box" => radsam::segment::Carry::ReferenceBox,
        other => bail!("--carry {other}: expected mask, box or reference_box"),
    };
    let mode = match args.mode.as_str() {
        "propagate" => radsam::job::Mode::Propagate,
        "refine" => radsam::job::Mode::Refine,
        other => bail!("--mode {other}: expected propagate or refine"),
    };
    // Refining prompts every slice with its own mask: no slice is the prompted one.
    let slice = match (args.slice, mode) {
        (Some(s), _) => s,
        (None, radsam::job::Mode::Refine) => (*top).min(*bottom),
        (None, _) => bail!("--slice: the prompted slice"),
    };
    // FILE[:LABEL]; a colon inside the path with no number after it stays part of the path.
    let (mask_uri, mask_label) = match args.mask.as_deref() {
        None => (None, None),
        Some(m) => match m.rsplit_once(':') {
            Some((file, label)) if label.parse::<u32>().is_ok() => {
                (Some(file.to_string()), Some(label.parse::<u32>().expect("checked")))
            }
            _ => (Some(m.to_string()), None),
        },
    };
    let job = Job {
        schema_version: radsam::job::SCHEMA_VERSION,
        job_id: format!("cli-{}", std::process::id()),
        correlation_id: None,
        volume_uri: volume.display().to_string(),
        series_instance_uid: args.series_uid.clone(),
        model_version: None,
        priority: 0,
        parent_job_id: None,
        seg_store_uri: None,
        targets: vec![Target {
            label: args.target_name.clone(),
            initial_prompt: InitialPrompt {
                slice,
                points: args.points.iter().map(|p| parse_point(p)).collect::<Result<_>>()?,
                bbox,
                mask_uri,
                mask_label,
            },
            boundaries: Boundaries { top: *top, bottom: *bottom },
            correction_clicks: clicks,
            reference_mask_uri: args.reference.as_ref().map(|p| p.display().to_string()),
            reference_label: Some(args.reference_label),
            carry: Some(carry),
            mode: Some(mode),
        }],
    };
    job.validate_with(&args.job_limits).map_err(radsam::error::with_code)?;
    Ok(job)
}

pub fn segment(args: SegmentArgs) -> Result<()> {
    // A run killed earlier (SIGKILL, power cut) could not remove its staging folder
    // (.OUT.partial-PID beside --out, see job::Staging): remove those whose process is gone.
    if let Some(name) = args.out.file_name().and_then(|n| n.to_str()) {
        let parent = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        radsam::scratch::remove_stale(parent, &format!(".{name}.partial-"));
    }
    let job = match &args.job {
        Some(path) => radsam::job::read_job(path, &args.job_limits).map_err(radsam::error::with_code)?,
        None => job_from_flags(&args)?,
    };
    let mut spec = args.model.spec();
    if let Some(m) = &job.model_version {
        spec.name = m.clone();
    }
    let model = spec.resolve().map_err(radsam::error::with_code)?;
    let (version, _) = model.version().map_err(radsam::error::with_code)?;
    // The model lives on its own thread; this thread keeps the progress bar going.
    let model = ModelThread::spawn(move || model.load().map_err(radsam::error::with_code))?;
    let opts = radsam::job::ProcessOptions {
        limits: ReadLimits { max_voxels: args.max_voxels, ..ReadLimits::default() },
        batch: args.batch,
        choice: parse_choice(&args.mask_choice)?,
        overlays: args.overlays,
        guards: args.guards.then(radsam::segment::GuardSettings::default),
        click_check: args.click_check,
        correction_carry: args.correction_carry,
        negative_erase: args.negative_erase,
        carry_ensemble: args.carry_ensemble,
        point_assist: args.point_assist,
        // A person at the terminal is the CLI's time budget (Ctrl-C); workers set one.
        deadline: None,
        recorded_volume_uri: None,
        // A correction run again with one more click reads its slices back instead of encoding.
        embedding_cache: if args.no_embedding_cache {
            None
        } else {
            radsam::segment::EmbeddingCache::from_env().map_err(radsam::error::with_code)?.map(Arc::new)
        },
        // One job per process: nothing to remember between jobs, no parent to reuse.
        volume_memo: None,
        reuse: Default::default(),
        resume: Default::default(),
        // A saved session is for the queue's revisions (a parent job in PostgreSQL and S3).
        save_sessions: false,
    };
    let staging =
        Staging::new(&args.out).with_context(|| format!("creating a staging folder beside {}", args.out.display()))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(indicatif::ProgressStyle::with_template("{msg:28} [{bar:30}] {pos}/{len} {elapsed}").unwrap());
    let (staged, progress_bar) = (staging.dir.clone(), bar.clone());
    let result = model.run(move |sam| {
        radsam::job::process(&job, sam, &version, &staged, &opts, &mut |stage, done, total| {
            progress_bar.set_message(stage.to_string());
            progress_bar.set_length(total as u64);
            progress_bar.set_position(done as u64);
        })
    });
    let result = result.map_err(radsam::error::with_code)?;
    bar.finish_and_clear();
    let result = result.map_err(radsam::error::with_code)?;
    staging.publish().with_context(|| format!("moving outputs into {}", args.out.display()))?;
    for t in &result.targets {
        let dice = t.dice.map(|d| format!(", Dice {d:.3} vs reference")).unwrap_or_default();
        let stops = if t.stops.is_empty() {
            String::new()
        } else {
            format!(", stopped early at empty slice(s) {:?}", t.stops.iter().map(|s| s.empty_slice).collect::<Vec<_>>())
        };
        let guards = if t.guards.is_empty() {
            String::new()
        } else {
            format!(", guards fired on slice(s) {:?}", t.guards.iter().map(|g| g.slice).collect::<Vec<_>>())
        };
        eprintln!(
            "{}: {} voxels, {:.1} mL, slices {}..={}{dice}{stops}{guards}",
            t.label, t.voxels, t.volume_ml, t.boundaries.0, t.boundaries.1
        );
    }
    let cached = match result.cached_slices {
        0 => String::new(),
        n => format!(" ({n} more read from the embedding cache)"),
    };
    eprintln!(
        "{} slices encoded{cached} in {:.1} s; total {:.1} s; wrote {}/{{{}}}",
        result.encoded_slices,
        result.encode_seconds,
        result.total_seconds,
        args.out.display(),
        result.outputs.join(", ")
    );
    Ok(())
}
