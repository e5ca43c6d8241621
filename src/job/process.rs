//! The processing function: one job in, masks and results out. It knows nothing of queues: the
//! CLI (`radsam segment`) and the worker call it with their own transports.

use super::schema::{local_path, Job, JobError, Mode, Target};
use crate::mask_stats::{dice, volume_ml, voxel_count};
use crate::model::Sam;
use crate::prompt::{BoxPrompt, SlicePrompt};
use crate::segment::{
    Carry, CarryCue, EmbeddingCache, EncodeOptions, GuardEvent, GuardSettings, MaskChoice, PointStart, SegmentError,
    Segmenter, Snapshot, Stop, VolumeSession,
};
use crate::volume::{
    read_mask, resample_nearest, write_dicom_seg, write_mask_nifti, MaskFileError, ReadLimits, SegMeta, SegUids,
    SegmentMask, Source, Volume, VolumeError,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct ProcessOptions {
    pub limits: ReadLimits,
    /// Slices encoded per batch; None: VolumeSession::default_batch for the model's device.
    pub batch: Option<usize>,
    pub choice: MaskChoice,
    /// Write PNG overlays (initial slice and each clicked slice) into OUT/overlays.
    pub overlays: bool,
    /// Propagation guards (crate::segment::GuardSettings); None: off.
    pub guards: Option<GuardSettings>,
    /// The click check (Segmenter::with_click_check): a clicked slice keeps a mask that agrees
    /// with its clicks.
    pub click_check: bool,
    /// Correction carry (Segmenter::with_correction_carry): the slices re-propagated from a click
    /// are carried by the model's correction head too, not only the clicked slice (a model without
    /// one carries with its own decoder either way). Off by default: it gained on the validation
    /// CT and lost on unseen phantoms (README, Benchmarks, v7).
    pub correction_carry: bool,
    /// Negative erase (Segmenter::with_negative_erase): with mask carry, a negative click takes
    /// its region out of its slice's mask prompt before the slice is decoded. On by default: it
    /// raised 20 clicks' gain on unseen phantoms and on the validation CT (README, Benchmarks).
    pub negative_erase: bool,
    /// Carry ensemble (CarryCue::Ensemble): with mask carry, each carried slice is also decoded
    /// as LiteMedSAM's reference pipeline decodes it (the previous mask's widened box) and keeps
    /// the mean of the two answers' probabilities. Off by default: it raised single prompts on the
    /// training split and on the validation CT, and cost the CVPR 2025 protocol 0.7 points on
    /// unseen phantoms (README, Benchmarks, carry ensemble).
    pub carry_ensemble: bool,
    /// Point assist (crate::model docs, PointStart::Assist): a slice prompted by points alone is
    /// answered by the model's point assist when its weights hold one. On by default: it raised
    /// volume-level point prompts on the validation CT (README, Benchmarks).
    pub point_assist: bool,
    /// The job's time budget ends here (JOB_TIMEOUT): checked before each encoding batch, each
    /// target and each correction click, so the model thread is free soon after; None: no bound.
    pub deadline: Option<Instant>,
    /// The volume URI result.json records, when the job reads a copy of it (the worker reads a
    /// scratch copy of an s3:// volume); None: the job's own `volume_uri`.
    pub recorded_volume_uri: Option<String>,
    /// Embeddings read from and stored into this cache (segment/embedding_cache.rs); None: every
    /// slice encoded afresh.
    pub embedding_cache: Option<Arc<EmbeddingCache>>,
    /// The last decoded volume, reused when the same bytes come again (volume_memo.rs); None:
    /// every job decodes its volume.
    pub volume_memo: Option<Arc<super::VolumeMemo>>,
    /// Targets whose result is their parent job's (a revision that does not change them, with the
    /// same volume and model: issue #20): label -> the parent's mask file, read instead of
    /// segmenting again. Empty: every target is segmented.
    pub reuse: std::collections::HashMap<String, std::path::PathBuf>,
    /// Saved editing sessions of the parent job (segment/snapshot.rs): label -> its file. A
    /// revision's target whose inputs are its parent's and whose clicks begin with the parent's
    /// resumes it and applies its new clicks alone; otherwise it replays them all.
    pub resume: std::collections::HashMap<String, std::path::PathBuf>,
    /// Save each volume-level target's editing session into OUT/sessions/ (for the worker: the
    /// next revision resumes it).
    pub save_sessions: bool,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        Self {
            limits: ReadLimits::default(),
            batch: None,
            choice: MaskChoice::Primary,
            overlays: false,
            guards: None,
            click_check: false,
            correction_carry: false,
            negative_erase: true,
            carry_ensemble: false,
            point_assist: true,
            deadline: None,
            recorded_volume_uri: None,
            embedding_cache: None,
            volume_memo: None,
            reuse: Default::default(),
            resume: Default::default(),
            save_sessions: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Job(#[from] JobError),
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("target {label}: {source}")]
    Segment { label: String, source: SegmentError },
    #[error("target {label}: the reference has no voxel of label {value}")]
    EmptyReference { label: String, value: u32 },
    #[error("target {label}: mask prompt {source}")]
    PromptMask { label: String, source: MaskFileError },
    #[error("target {label}: the mask prompt is empty {detail}")]
    PromptMaskEmpty { label: String, detail: String },
    #[error("cannot write outputs: {0}")]
    Output(String),
}

impl crate::error::Coded for ProcessError {
    fn code(&self) -> &'static str {
        match self {
            Self::Job(e) => e.code(),
            Self::Volume(e) => e.code(),
            Self::Segment { source, .. } => source.code(),
            Self::EmptyReference { .. } => "REFERENCE_EMPTY",
            Self::PromptMask { source, .. } => source.code(),
            Self::PromptMaskEmpty { .. } => "PROMPT_MASK_EMPTY",
            Self::Output(_) => "OUTPUT_UNWRITABLE",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetResult {
    pub label: String,
    pub carry: Carry,
    pub mode: Mode,
    pub initial_slice: usize,
    pub boundaries: (usize, usize),
    pub voxels: u64,
    pub volume_ml: f64,
    /// Dice against the reference mask, when one was given.
    pub dice: Option<f64>,
    pub reference_ml: Option<f64>,
    pub clicks_applied: usize,
    /// A revision that resumed its parent's saved editing session (segment/snapshot.rs): how
    /// many of its clicks came with it (their propagation, and the prompt's, did not run again:
    /// only the clicks after them were applied here). None: the prompt and every click ran here.
    pub clicks_resumed: Option<usize>,
    /// Why the parent's saved session could not be resumed, when a revision had one (the clicks
    /// were then replayed: the same mask, more time).
    pub resume_refused: Option<String>,
    /// This target's saved editing session (OUT/sessions/LABEL.session.gz), for its next revision.
    pub session_file: Option<String>,
    /// Directions where propagation stopped on an empty slice before the boundary.
    pub stops: Vec<Stop>,
    /// Propagation guards that fired (when on): a leaking or collapsing slice that took another of
    /// the decoder's masks, or stopped the propagation.
    pub guards: Vec<GuardEvent>,
    pub decode_seconds: f64,
    /// Slices this target's propagation and clicks were the first to reach: encoded, or read
    /// from the embedding cache, and the seconds that took (slices an earlier target of the job
    /// already filled cost it nothing). Slices its propagation never reached are in neither.
    pub encoded_slices: usize,
    pub cached_slices: usize,
    pub encode_seconds: f64,
    /// The parent job's mask, unchanged by this revision (stops and guards are then the parent's,
    /// in its result.json).
    pub reused_from_parent: bool,
    pub mask_file: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    pub job_id: String,
    pub correlation_id: Option<String>,
    pub model: String,
    pub model_version: String,
    pub volume_uri: String,
    pub dims: [usize; 3],
    pub spacing: [f64; 3],
    pub slice_axis: usize,
    /// Slices run through the image encoder in this job.
    pub encoded_slices: usize,
    /// Slices whose embeddings came from the embedding cache instead (encoded by an earlier job).
    pub cached_slices: usize,
    /// The decoded volume came from the worker's memo (the same bytes as its last job's).
    pub volume_reused: bool,
    /// Reading and decoding the volume and the reference masks.
    pub read_seconds: f64,
    /// Encoding and reading the embedding cache.
    pub encode_seconds: f64,
    /// Writing the mask files (NIfTI, DICOM SEG, overlays).
    pub write_seconds: f64,
    pub total_seconds: f64,
    pub targets: Vec<TargetResult>,
    pub outputs: Vec<String>,
    /// The DICOM SEG of all targets (written when the volume was a DICOM series).
    pub seg_file: Option<String>,
    /// Its UIDs: derived from the job id and model, so the same job's SEG is the same instance.
    pub seg: Option<SegUids>,
    /// The editing settings the masks were made with (ProcessOptions), so that a mask can be
    /// traced to them: the click check, the correction carry, the negative erase and the carry
    /// ensemble.
    pub click_check: bool,
    pub correction_carry: bool,
    pub negative_erase: bool,
    pub carry_ensemble: bool,
    /// Slices prompted by points alone were answered by the model's point assist (the option on
    /// and the model holding one).
    pub point_assist: bool,
}

fn open_volume(uri: &str, series_uid: Option<&str>, limits: &ReadLimits) -> Result<Volume, ProcessError> {
    let path = local_path(uri)?;
    Ok(Volume::open(&path, series_uid, limits)?)
}

/// The target's reference mask on the volume's grid (0/1), if the target has one.
fn reference_mask(target: &Target, volume: &Volume, limits: &ReadLimits) -> Result<Option<Vec<u8>>, ProcessError> {
    let Some(uri) = &target.reference_mask_uri else { return Ok(None) };
    let labels = open_volume(uri, None, limits)?;
    let on_grid = if labels.grid == volume.grid && labels.affine == volume.affine {
        labels.data
    } else {
        resample_nearest(&labels, volume, 0.0)
    };
    let value = target.reference_label.unwrap_or(1);
    let mask: Vec<u8> = on_grid.iter().map(|&v| (v.round() as i64 == value as i64) as u8).collect();
    if voxel_count(&mask) == 0 {
        return Err(ProcessError::EmptyReference { label: target.label.clone(), value });
    }
    Ok(Some(mask))
}

/// A target's segmentation: its mask, the prompt on its initial slice (for the overlay) and what
/// the propagation reported.
struct Segmented {
    mask: Vec<u8>,
    prompt: SlicePrompt,
    clicks_applied: usize,
    clicks_resumed: Option<usize>,
    resume_refused: Option<String>,
    stops: Vec<Stop>,
    guards: Vec<GuardEvent>,
    decode_seconds: f64,
}

/// The parent job's mask file of a target (a revision's unchanged target) on `volume`'s grid, 0/1;
/// None when it cannot be read or lies on another grid (the target is then segmented again).
fn parent_mask(path: &Path, volume: &Volume) -> Option<Vec<u8>> {
    let parent = Volume::open(path, None, &ReadLimits::default()).ok()?;
    (parent.grid == volume.grid).then(|| parent.data.iter().map(|&v| (v > 0.5) as u8).collect())
}

/// What a target's editing session depends on besides its clicks, hashed: the model, the voxels
/// between its boundaries and the volume's geometry, the prompt's slice, points and box, the
/// boundaries, the carry, the mask choice, the guards, the click check and the correction carry.
/// (Not its URIs: a worker reads copies of them under other names.) A saved session resumes only
/// under the same.
fn session_fingerprint(target: &Target, model_version: &str, volume: &Volume, opts: &ProcessOptions) -> String {
    use sha2::{Digest, Sha256};
    let p = &target.initial_prompt;
    let (lo, hi) =
        (target.boundaries.top.min(target.boundaries.bottom), target.boundaries.top.max(target.boundaries.bottom));
    let prompt = (p.slice, &p.points, p.bbox, (lo, hi), target.carry.unwrap_or(Carry::Mask));
    let settings = (model_version, format!("{:?}", opts.choice), &opts.guards);
    let geometry = (volume.dims(), volume.spacing, volume.affine, volume.grid.slice_axis);
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(&(prompt, settings, geometry)).expect("serialisable"));
    // Only when on, so that sessions saved before the check existed keep their fingerprint.
    if opts.click_check {
        h.update(b"click_check");
    }
    // Only when on, as the click check.
    if opts.correction_carry {
        h.update(b"correction_carry");
    }
    // Only when on, as the click check (sessions saved before it existed were made without it).
    if opts.negative_erase {
        h.update(b"negative_erase");
    }
    // Only when off (the model version already tells whether there is an assist to use).
    if !opts.point_assist {
        h.update(b"no_point_assist");
    }
    // Only when on, as the click check (sessions saved before it existed were made without it).
    if opts.carry_ensemble {
        h.update(b"carry_ensemble");
    }
    for k in lo..=hi {
        let plane = volume.grid.extract(&volume.data, k);
        h.update(plane.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>());
    }
    format!("{:x}", h.finalize())
}

/// Where a target's saved session goes, under the job's output folder.
fn session_path(label: &str) -> std::path::PathBuf {
    Path::new("sessions").join(format!("{label}.session.gz"))
}

fn save_session(out: &Path, label: &str, write: impl FnOnce(&Path) -> std::io::Result<()>) -> Result<(), ProcessError> {
    let path = out.join(session_path(label));
    std::fs::create_dir_all(path.parent().expect("sessions/")).map_err(|e| ProcessError::Output(e.to_string()))?;
    write(&path).map_err(|e| ProcessError::Output(format!("saving {}: {e}", path.display())))
}

/// Takes up the saved session at `path` when it belongs to these inputs and its clicks begin
/// `clicks`: the number of clicks it holds (the rest are the caller's to apply).
fn resume(
    segmenter: &mut Segmenter,
    path: &Path,
    fingerprint: &str,
    clicks: &[crate::prompt::Click],
) -> Result<usize, crate::segment::SnapshotError> {
    let saved = Snapshot::load(path)?;
    saved.check(fingerprint, clicks)?;
    segmenter.resume(&saved)?;
    Ok(saved.clicks.len())
}

/// The initial prompt's points and box as the segmenter takes them (a mask file is added by
/// `initial_prompts`).
fn slice_prompt(target: &Target) -> SlicePrompt {
    SlicePrompt {
        points: target.initial_prompt.points.clone(),
        bbox: target.initial_prompt.bbox.map(|[x0, y0, x1, y1]| BoxPrompt { x0, y0, x1, y1 }),
        mask: None,
    }
}

/// The target's mask prompt (from `mask_uri`) on the volume's grid, if it has one.
fn prompt_mask(target: &Target, volume: &Volume, limits: &ReadLimits) -> Result<Option<Vec<u8>>, ProcessError> {
    let Some(uri) = &target.initial_prompt.mask_uri else { return Ok(None) };
    let path = local_path(uri)?;
    let label = target.initial_prompt.mask_label.unwrap_or(1);
    read_mask(&path, label, volume, limits)
        .map(Some)
        .map_err(|source| ProcessError::PromptMask { label: target.label.clone(), source })
}

/// The slices a target is prompted on, each with its prompt: the initial slice (points, box and
/// its slice of the mask file) when propagating; when refining, every slice between the
/// boundaries where the mask file has voxels, with that slice of it (and the points and box on
/// the initial slice).
fn initial_prompts(
    target: &Target,
    mask: Option<&[u8]>,
    volume: &Volume,
    (lo, hi): (usize, usize),
) -> Result<BTreeMap<usize, SlicePrompt>, ProcessError> {
    let slice = target.initial_prompt.slice;
    let empty = |detail: String| ProcessError::PromptMaskEmpty { label: target.label.clone(), detail };
    let covered = |m: &[u8]| {
        let planes: Vec<usize> =
            (0..volume.num_slices()).filter(|&k| volume.grid.extract(m, k).iter().any(|&v| v != 0)).collect();
        match (planes.first(), planes.last()) {
            (Some(a), Some(b)) => format!("(the mask covers slices {a}..={b})"),
            _ => "(the mask has no voxel)".to_string(),
        }
    };
    let mut prompts = BTreeMap::new();
    match (target.mode.unwrap_or_default(), mask) {
        (Mode::Propagate, mask) => {
            let mut prompt = slice_prompt(target);
            if let Some(m) = mask {
                let plane = volume.grid.extract(m, slice);
                if !plane.iter().any(|&v| v != 0) {
                    return Err(empty(format!("on the prompted slice {slice} {}", covered(m))));
                }
                prompt.mask = Some(plane);
            }
            prompts.insert(slice, prompt);
        }
        (Mode::Refine, Some(m)) => {
            for k in lo..=hi {
                let plane = volume.grid.extract(m, k);
                if plane.iter().any(|&v| v != 0) {
                    prompts.insert(k, SlicePrompt { mask: Some(plane), ..Default::default() });
                }
            }
            if prompts.is_empty() {
                return Err(empty(format!("between the boundaries {lo}..={hi} {}", covered(m))));
            }
            let own = slice_prompt(target);
            if !own.points.is_empty() || own.bbox.is_some() {
                let p = prompts.entry(slice).or_default();
                p.points = own.points;
                p.bbox = own.bbox;
            }
        }
        (Mode::Refine, None) => {
            return Err(ProcessError::Job(JobError::RefineWithoutMask { label: target.label.clone() }))
        }
    }
    Ok(prompts)
}

/// Every target's boundaries, prompted slice, box, points and clicks against the volume's slices
/// and slice size: the checks the segmenter makes, all made before any model work.
fn check_prompts(job: &Job, volume: &Volume) -> Result<(), ProcessError> {
    let count = volume.num_slices();
    let (rows, cols) = volume.grid.plane_shape();
    for t in &job.targets {
        let err = |source| ProcessError::Segment { label: t.label.clone(), source };
        for slice in [t.boundaries.top, t.boundaries.bottom] {
            if slice >= count {
                return Err(err(SegmentError::BoundaryOutside { slice, count }));
            }
        }
        let (lo, hi) = (t.boundaries.top.min(t.boundaries.bottom), t.boundaries.top.max(t.boundaries.bottom));
        let slice = t.initial_prompt.slice;
        if !(lo..=hi).contains(&slice) {
            return Err(err(SegmentError::SliceOutsideBoundaries { slice, lo, hi }));
        }
        // Points and box here; a mask file is checked against the volume when it is read.
        let own = slice_prompt(t);
        if !(own.points.is_empty() && own.bbox.is_none() && t.initial_prompt.mask_uri.is_some()) {
            own.validate(cols, rows).map_err(|reason| err(SegmentError::Prompt { slice, reason }))?;
        }
        for click in &t.correction_clicks {
            if !(lo..=hi).contains(&click.slice) {
                return Err(err(SegmentError::SliceOutsideBoundaries { slice: click.slice, lo, hi }));
            }
            let as_prompt = SlicePrompt { points: vec![click.point()], ..Default::default() };
            as_prompt
                .validate(cols, rows)
                .map_err(|reason| err(SegmentError::Prompt { slice: click.slice, reason }))?;
        }
    }
    Ok(())
}

/// Runs `job` with `sam`, writing its outputs into `out` (an existing, empty folder: the caller
/// stages and publishes). `progress(stage, done, total)` reports long steps. The job must have
/// been validated (`Job::parse`, `read_job` or `validate_with`: each caller validates once, where
/// the job enters); its prompts are checked here against the volume.
pub fn process(
    job: &Job,
    sam: &Sam,
    model_version: &str,
    out: &Path,
    opts: &ProcessOptions,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<JobResult, ProcessError> {
    let t0 = Instant::now();
    let (volume, volume_reused) = match &opts.volume_memo {
        Some(memo) => memo.open(&local_path(&job.volume_uri)?, job.series_instance_uid.as_deref(), &opts.limits)?,
        None => (Arc::new(open_volume(&job.volume_uri, job.series_instance_uid.as_deref(), &opts.limits)?), false),
    };
    let volume: &Volume = &volume;
    // Every prompt against the volume before the references are read and any slice is encoded:
    // a bad prompt is the caller's to fix and must not cost minutes of encoding first.
    check_prompts(job, volume)?;
    let references =
        job.targets.iter().map(|t| reference_mask(t, volume, &opts.limits)).collect::<Result<Vec<_>, _>>()?;
    let prompt_masks =
        job.targets.iter().map(|t| prompt_mask(t, volume, &opts.limits)).collect::<Result<Vec<_>, _>>()?;
    let read_seconds = t0.elapsed().as_secs_f64();
    let mut write_seconds = 0.0;

    // One store over the union of the targets' ranges: a slice two targets share is encoded once,
    // and only when a propagation first reaches it (session.rs).
    let lo = job.targets.iter().map(|t| t.boundaries.top.min(t.boundaries.bottom)).min().expect("validated: targets");
    let hi = job.targets.iter().map(|t| t.boundaries.top.max(t.boundaries.bottom)).max().expect("validated: targets");
    // The session reports its encoding and the click loop its clicks, one at a time.
    let progress = std::cell::RefCell::new(progress);
    let session = VolumeSession::lazy(
        sam,
        volume,
        (lo, hi),
        EncodeOptions {
            batch: opts.batch.unwrap_or(0),
            deadline: opts.deadline,
            cache: opts.embedding_cache.as_deref(),
            progress: Some(Box::new(|d, n| (progress.borrow_mut())("encoding slices", d, n))),
        },
    )
    .map_err(|source| ProcessError::Segment { label: job.targets[0].label.clone(), source })?;
    let check_deadline = |label: &str, stage: String| match opts.deadline {
        Some(d) if Instant::now() >= d => {
            Err(ProcessError::Segment { label: label.to_string(), source: SegmentError::DeadlinePassed { stage } })
        }
        _ => Ok(()),
    };

    let mut results = Vec::new();
    let mut masks = Vec::new();
    let mut overlay_slices = Vec::new();
    for (i, ((target, reference), mask_prompt)) in job.targets.iter().zip(&references).zip(&prompt_masks).enumerate() {
        let seg_err = |source| ProcessError::Segment { label: target.label.clone(), source };
        let (t_lo, t_hi) =
            (target.boundaries.top.min(target.boundaries.bottom), target.boundaries.top.max(target.boundaries.bottom));
        let carry = target.carry.unwrap_or(Carry::Mask);
        let mode = target.mode.unwrap_or_default();
        let slice = target.initial_prompt.slice;
        let before = (session.encoded_slices(), session.cached_slices(), session.encode_seconds());
        // A target the revision leaves as its parent had it: the parent's mask (the same inputs and
        // model give the same mask), unless it cannot be read, when it is segmented again.
        let reused = opts.reuse.get(&target.label).and_then(|path| parent_mask(path, volume));
        let reused_from_parent = reused.is_some();
        let done = match reused {
            Some(mask) => Segmented {
                mask,
                prompt: slice_prompt(target),
                clicks_applied: target.correction_clicks.len(),
                clicks_resumed: None,
                resume_refused: None,
                stops: Vec::new(),
                guards: Vec::new(),
                decode_seconds: 0.0,
            },
            None => {
                // The target's own slices of the shared session: its propagation, stops and clicks
                // never leave its boundaries (another target's range is not its business).
                let own = session.restrict((t_lo, t_hi)).map_err(seg_err)?;
                // A saved session is volume-level editing from points and a box: a mask file may
                // have changed at its URI since, refinement has no propagation to save, and the
                // benchmarks' oracle choice depends on the reference.
                let resumable = mode == Mode::Propagate
                    && target.initial_prompt.mask_uri.is_none()
                    && opts.choice != MaskChoice::BestReference;
                let fingerprint = (resumable && (opts.save_sessions || opts.resume.contains_key(&target.label)))
                    .then(|| session_fingerprint(target, model_version, volume, opts));
                let mut segmenter = Segmenter::new(&own, carry, opts.choice, reference.as_deref())
                    .with_guards(opts.guards)
                    .with_click_check(opts.click_check)
                    .with_correction_carry(opts.correction_carry)
                    .with_negative_erase(opts.negative_erase)
                    .with_carry_cue(if opts.carry_ensemble { CarryCue::Ensemble } else { CarryCue::MaskOnly })
                    .with_point_start(if opts.point_assist { PointStart::Assist } else { PointStart::Primary });
                let mut prompts = initial_prompts(target, mask_prompt.as_deref(), volume, (t_lo, t_hi))?;
                // A revision takes up its parent's session where it can (snapshot.rs).
                let (clicks_resumed, resume_refused) = match (opts.resume.get(&target.label), &fingerprint) {
                    (Some(path), Some(fingerprint)) => {
                        match resume(&mut segmenter, path, fingerprint, &target.correction_clicks) {
                            Ok(n) => (Some(n), None),
                            Err(why) => (None, Some(why.to_string())),
                        }
                    }
                    (Some(_), None) => (None, Some("only a propagated target without a mask file resumes".into())),
                    _ => (None, None),
                };
                // check_prompts kept slices and clicks inside the target's own boundaries; the
                // segmenter validates again against its session.
                let prompt = match mode {
                    Mode::Propagate if clicks_resumed.is_some() => {
                        prompts.remove(&slice).expect("the initial slice's prompt")
                    }
                    Mode::Propagate => {
                        check_deadline(&target.label, "propagating the initial prompt".into())?;
                        let prompt = prompts.remove(&slice).expect("the initial slice's prompt");
                        segmenter.start(slice, &prompt).map_err(seg_err)?;
                        prompt
                    }
                    Mode::Refine => {
                        check_deadline(&target.label, "refining the mask prompt".into())?;
                        segmenter.slice_level(&prompts).map_err(seg_err)?;
                        prompts.remove(&slice).unwrap_or_else(|| slice_prompt(target))
                    }
                };
                for (n, click) in target.correction_clicks.iter().enumerate().skip(clicks_resumed.unwrap_or(0)) {
                    check_deadline(
                        &target.label,
                        format!("applying correction click {} of {}", n + 1, target.correction_clicks.len()),
                    )?;
                    segmenter.add_click(*click).map_err(seg_err)?;
                    (progress.borrow_mut())(
                        &format!("{}: correction clicks", target.label),
                        n + 1,
                        target.correction_clicks.len(),
                    );
                }
                if let (true, Some(fingerprint)) = (opts.save_sessions, &fingerprint) {
                    let saved = segmenter.snapshot(fingerprint).expect("a propagated target");
                    save_session(out, &target.label, |path| saved.save(path))?;
                }
                Segmented {
                    mask: segmenter.mask(),
                    prompt,
                    clicks_applied: segmenter.clicks(),
                    clicks_resumed,
                    resume_refused,
                    stops: segmenter.stops().to_vec(),
                    guards: segmenter.guard_events(),
                    decode_seconds: segmenter.decode_seconds,
                }
            }
        };
        let Segmented { mask, prompt, clicks_applied, clicks_resumed, resume_refused, stops, guards, decode_seconds } =
            done;
        // An unchanged target's session is its parent's: handed on for the next revision.
        if let (true, true, Some(path)) = (opts.save_sessions, reused_from_parent, opts.resume.get(&target.label)) {
            save_session(out, &target.label, |to| std::fs::copy(path, to).map(drop))?;
        }
        let session_file = Some(session_path(&target.label))
            .filter(|f| opts.save_sessions && out.join(f).exists())
            .map(|f| f.to_string_lossy().into_owned());
        let mask_file = format!("{}.nii.gz", target.label);
        let t_write = Instant::now();
        write_mask_nifti(&out.join(&mask_file), volume, &mask)?;
        write_seconds += t_write.elapsed().as_secs_f64();
        results.push(TargetResult {
            label: target.label.clone(),
            carry,
            mode,
            initial_slice: slice,
            boundaries: (t_lo, t_hi),
            voxels: voxel_count(&mask),
            volume_ml: volume_ml(&mask, volume.spacing),
            dice: reference.as_ref().map(|r| dice(&mask, r)),
            reference_ml: reference.as_ref().map(|r| volume_ml(r, volume.spacing)),
            clicks_applied,
            clicks_resumed,
            resume_refused,
            session_file,
            stops,
            guards,
            decode_seconds,
            encoded_slices: session.encoded_slices() - before.0,
            cached_slices: session.cached_slices() - before.1,
            encode_seconds: session.encode_seconds() - before.2,
            reused_from_parent,
            mask_file,
        });
        overlay_slices.push((i, slice, prompt, target.correction_clicks.clone()));
        masks.push(mask);
    }

    let t_write = Instant::now();
    let mut outputs: Vec<String> = results.iter().map(|r| r.mask_file.clone()).collect();
    if results.iter().any(|r| r.session_file.is_some()) {
        outputs.push("sessions/".into());
    }
    // All targets in one label map: target i has value i + 1 (a later target wins on overlap).
    let mut labels = vec![0u8; volume.grid.len()];
    for (i, m) in masks.iter().enumerate() {
        labels.iter_mut().zip(m).filter(|(_, &v)| v != 0).for_each(|(l, _)| *l = (i + 1).min(255) as u8);
    }
    write_mask_nifti(&out.join("labels.nii.gz"), volume, &labels)?;
    outputs.push("labels.nii.gz".into());
    let mut seg_file = None;
    let mut seg = None;
    if matches!(volume.source, Source::Dicom(_)) {
        let segments: Vec<SegmentMask> =
            job.targets.iter().zip(&masks).map(|(t, m)| SegmentMask { label: t.label.clone(), mask: m }).collect();
        let meta = SegMeta {
            algorithm_name: format!("RadSAM {}", sam.config.name),
            algorithm_version: model_version.chars().take(64).collect(),
            // The same job and model, the same SEG instance: a PACS that receives it again (a
            // redelivered job) keeps one.
            uid_seed: Some(format!("{}\u{0}{model_version}", job.job_id)),
            ..Default::default()
        };
        seg = Some(write_dicom_seg(&out.join("seg.dcm"), volume, &segments, &meta)?);
        outputs.push("seg.dcm".into());
        seg_file = Some("seg.dcm".to_string());
    }
    if opts.overlays {
        let dir = out.join("overlays");
        std::fs::create_dir_all(&dir).map_err(|e| ProcessError::Output(e.to_string()))?;
        for (i, slice, prompt, clicks) in overlay_slices {
            let label = &job.targets[i].label;
            let mut shown: Vec<(usize, SlicePrompt)> = vec![(slice, prompt)];
            shown.extend(
                clicks.iter().map(|c| (c.slice, SlicePrompt { points: vec![c.point()], ..Default::default() })),
            );
            for (s, p) in shown {
                let plane = volume.grid.extract(&masks[i], s);
                let truth = references[i].as_ref().map(|r| volume.grid.extract(r, s));
                let mut layers = vec![crate::overlay::OverlayMask { plane: &plane, color: [255, 140, 0] }];
                if let Some(t) = &truth {
                    layers.push(crate::overlay::OverlayMask { plane: t, color: [0, 220, 0] });
                }
                let path = dir.join(format!("{label}_slice_{s:04}.png"));
                crate::overlay::render_slice(volume, s, &layers, Some(&p), &path)
                    .map_err(|e| ProcessError::Output(e.to_string()))?;
            }
        }
        outputs.push("overlays/".into());
    }
    outputs.push("result.json".into());
    write_seconds += t_write.elapsed().as_secs_f64();
    let result = JobResult {
        job_id: job.job_id.clone(),
        correlation_id: job.correlation_id.clone(),
        model: sam.config.name.clone(),
        model_version: model_version.to_string(),
        volume_uri: opts.recorded_volume_uri.clone().unwrap_or_else(|| job.volume_uri.clone()),
        dims: volume.dims(),
        spacing: volume.spacing,
        slice_axis: volume.grid.slice_axis,
        encoded_slices: session.encoded_slices(),
        cached_slices: session.cached_slices(),
        volume_reused,
        read_seconds,
        encode_seconds: session.encode_seconds(),
        write_seconds,
        total_seconds: t0.elapsed().as_secs_f64(),
        targets: results,
        outputs,
        seg_file,
        seg,
        click_check: opts.click_check,
        correction_carry: opts.correction_carry,
        negative_erase: opts.negative_erase,
        carry_ensemble: opts.carry_ensemble,
        point_assist: opts.point_assist && sam.point_assist().is_some(),
    };
    let json = serde_json::to_string_pretty(&result).map_err(|e| ProcessError::Output(e.to_string()))?;
    std::fs::write(out.join("result.json"), json).map_err(|e| ProcessError::Output(e.to_string()))?;
    Ok(result)
}
