//! The `radsam` command line. Thin: parsing, then library calls.
//!   radsam predict      run a model on chosen slices with given prompts; masks + IoU out
//!   radsam bench-model  encoder/decoder timings on the sample CT (used by bench/)

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use radsam::job::{Job, Staging};
use radsam::model::{ModelConfig, Sam, MODEL_NAMES};
use radsam::prompt::{bounding_box, interior_point, BoxPrompt, Point, SlicePrompt};
use radsam::segment::{predict_slices, MaskChoice};
use radsam::volume::{read_dicom_series, read_nifti, resample_nearest, write_mask_nifti, ReadLimits, Volume};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

#[derive(Parser)]
#[command(name = "radsam", version, about = "RadSAM: 3D CT segmentation from one 2D prompt")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a model on chosen slices of a volume with given prompts; write the masks (NIfTI), the
    /// low-resolution logits (.npy) and the IoU predictions (JSON).
    Predict(PredictArgs),
    /// Segment whole 3D objects: one prompt on one slice plus the object's boundaries, the mask
    /// carried slice to slice (RadSAM), then correction clicks. Prompts from flags or a job file.
    Segment(SegmentArgs),
    /// Time the image encoder (per slice and batched) and the decoder on sample CT slices.
    BenchModel(BenchArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum FromReference {
    Box,
    Point,
    Mask,
}

#[derive(clap::Args)]
struct ModelArgs {
    /// Model: lite_medsam, mobile_sam, sam_vit_b, sam_vit_l, sam_vit_h, medsam_vit_b.
    #[arg(long, default_value = "lite_medsam")]
    model: String,
    /// Safetensors weights; default: the fetched weights of --model in $RADSAM_CACHE.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// cpu, cuda, or auto (cuda when available).
    #[arg(long, default_value = "auto")]
    device: String,
    /// Intra-op threads for libtorch on CPU (default: libtorch's choice).
    #[arg(long)]
    threads: Option<i32>,
}

#[derive(clap::Args)]
struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Input volume: a NIfTI file (.nii, .nii.gz) or a folder holding one DICOM CT series.
    #[arg(long)]
    volume: PathBuf,
    /// With a DICOM folder holding several series: the SeriesInstanceUID to read.
    #[arg(long)]
    series_uid: Option<String>,
    /// Refuse volumes with more voxels than this (checked before reading the data).
    #[arg(long, default_value_t = ReadLimits::default().max_voxels)]
    max_voxels: u64,
    /// Slice indices along the slice axis (the voxel axis nearest superior-inferior), comma separated.
    #[arg(long, value_delimiter = ',', required = true)]
    slices: Vec<usize>,
    /// Box on every chosen slice: x0,y0,x1,y1 in voxel indices (x = column, y = row of the slice).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    r#box: Option<Vec<f64>>,
    /// Point on every chosen slice: x,y,pos or x,y,neg (repeatable).
    #[arg(long = "point")]
    points: Vec<String>,
    /// Reference label volume (NIfTI); prompts can be derived from it and Dice is reported. On
    /// another grid than the volume it is resampled onto the volume's grid (nearest neighbour).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Label value of the target in --reference.
    #[arg(long)]
    label: Option<u32>,
    /// Derive each slice's prompt from the reference mask: its box, an interior point, or the mask.
    #[arg(long, value_enum)]
    prompt_from_reference: Option<FromReference>,
    /// Which mask to write: primary, best-iou (best predicted IoU among the 3 secondary), or 0..3.
    #[arg(long, default_value = "primary")]
    mask_choice: String,
    /// Name of the target (e.g. liver): the segment label in DICOM SEG and the JSON.
    #[arg(long, default_value = "target")]
    target_name: String,
    /// Also write a PNG per predicted slice (CT, predicted outline in orange, reference in green,
    /// prompt) into OUT/overlays/.
    #[arg(long)]
    overlays: bool,
    /// Output folder (created): mask.nii.gz, predictions.json, low_res_logits.npy, and seg.dcm
    /// (DICOM SEG) for DICOM input.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct SegmentArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// A job file (JSON, the queue's schema; see README). Without it, the flags below make a
    /// one-target job.
    #[arg(long, conflicts_with_all = ["volume", "slice"])]
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
    /// Correction click: slice,x,y,pos or slice,x,y,neg (repeatable, applied in order).
    #[arg(long = "click")]
    clicks: Vec<String>,
    /// mask (RadSAM) or box (baseline for SAM / MedSAM).
    #[arg(long, default_value = "mask")]
    carry: String,
    /// Reference label map (NIfTI) for Dice, and the target's value in it.
    #[arg(long)]
    reference: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    reference_label: u32,
    /// primary, best-iou, or 0..3.
    #[arg(long, default_value = "primary")]
    mask_choice: String,
    /// Slices encoded per batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    #[arg(long, default_value_t = ReadLimits::default().max_voxels)]
    max_voxels: u64,
    /// PNG overlays of the prompted and clicked slices into OUT/overlays/.
    #[arg(long)]
    overlays: bool,
    /// Output folder: TARGET.nii.gz per target, labels.nii.gz, seg.dcm (DICOM input), result.json.
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct BenchArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Number of slices (taken around the middle of the sample CT).
    #[arg(long, default_value_t = 4)]
    slices: usize,
    /// Timed repetitions (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Reference outputs to compare with (safetensors with `embedding`, `low_res`, `iou`).
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Write the timings as JSON here.
    #[arg(long)]
    out: PathBuf,
}

fn device(name: &str) -> Result<Device> {
    Ok(match name {
        "cpu" => Device::Cpu,
        "cuda" => {
            if !tch::Cuda::is_available() {
                bail!("--device cuda: no CUDA device is available to libtorch");
            }
            Device::Cuda(0)
        }
        "auto" => Device::cuda_if_available(),
        other => bail!("--device {other}: expected cpu, cuda or auto"),
    })
}

fn load_model(args: &ModelArgs) -> Result<Sam> {
    if let Some(n) = args.threads {
        tch::set_num_threads(n);
    }
    let config = ModelConfig::by_name(&args.model).with_context(|| format!("unknown model `{}`; known: {}", args.model, MODEL_NAMES.join(", ")))?;
    let weights = args.weights.clone().unwrap_or_else(|| radsam::assets::weights_path(&args.model));
    if !weights.exists() {
        bail!("weights {} not found: run `make setup`, or pass --weights", weights.display());
    }
    let (sam, _) = Sam::load(config, &weights, device(&args.device)?)?;
    Ok(sam)
}

fn parse_point(s: &str) -> Result<Point> {
    let parts: Vec<&str> = s.split(',').collect();
    let [x, y, l] = parts.as_slice() else { bail!("--point {s}: expected x,y,pos or x,y,neg") };
    let positive = match *l {
        "pos" | "1" | "+" => true,
        "neg" | "0" | "-" => false,
        _ => bail!("--point {s}: label must be pos or neg"),
    };
    Ok(Point { x: x.trim().parse().context("point x")?, y: y.trim().parse().context("point y")?, positive })
}

fn parse_choice(s: &str) -> Result<MaskChoice> {
    Ok(match s {
        "primary" => MaskChoice::Primary,
        "best-iou" => MaskChoice::BestPredictedIou,
        i => match i.parse::<i64>() {
            Ok(i @ 0..=3) => MaskChoice::Index(i),
            _ => bail!("--mask-choice {s}: expected primary, best-iou or 0..3"),
        },
    })
}

/// The reference mask of `label` on slice k, row-major (y rows, x columns).
fn reference_slice(reference: &Volume, label: u32, k: usize) -> Vec<u8> {
    reference.grid.extract(&reference.data, k).iter().map(|&v| (v.round() as i64 == label as i64) as u8).collect()
}

fn open_volume(path: &Path, series_uid: Option<&str>, limits: &ReadLimits) -> Result<Volume> {
    let v = if path.is_dir() { read_dicom_series(path, series_uid, limits) } else { Volume::open(path, limits) };
    v.map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))
}

fn predict(args: PredictArgs) -> Result<()> {
    let limits = ReadLimits { max_voxels: args.max_voxels };
    let volume = open_volume(&args.volume, args.series_uid.as_deref(), &limits)?;
    let reference = match &args.reference {
        Some(p) => {
            let r = open_volume(p, None, &limits)?;
            if r.grid == volume.grid && r.affine == volume.affine {
                Some(r)
            } else {
                eprintln!("reference {} is on another grid: resampled onto the volume's grid (nearest neighbour)", p.display());
                Some(Volume { data: resample_nearest(&r, &volume, 0.0), ..volume.clone() })
            }
        }
        None => None,
    };
    if reference.is_some() && args.label.is_none() {
        bail!("--reference needs --label (the target's label value)");
    }
    let nz = volume.num_slices();
    let (_, nx) = volume.grid.plane_shape();
    if let Some(&bad) = args.slices.iter().find(|&&k| k >= nz) {
        bail!("slice {bad} is outside the volume ({nz} slices, 0..{})", nz - 1);
    }
    let points = args.points.iter().map(|p| parse_point(p)).collect::<Result<Vec<_>>>()?;
    let bbox = match args.r#box.as_deref() {
        None => None,
        Some([x0, y0, x1, y1]) => Some(BoxPrompt { x0: *x0, y0: *y0, x1: *x1, y1: *y1 }),
        Some(other) => bail!("--box takes 4 numbers x0,y0,x1,y1, got {}", other.len()),
    };
    let mut prompts = Vec::new();
    for &k in &args.slices {
        let mut prompt = SlicePrompt { points: points.clone(), bbox, mask: None };
        if let (Some(from), Some(r), Some(label)) = (args.prompt_from_reference, &reference, args.label) {
            let m = reference_slice(r, label, k);
            match from {
                FromReference::Box => prompt.bbox = Some(bounding_box(&m, nx).with_context(|| format!("label {label} is absent from slice {k}: no box"))?),
                FromReference::Point => prompt.points.push(interior_point(&m, nx).with_context(|| format!("label {label} is absent from slice {k}: no point"))?),
                FromReference::Mask => prompt.mask = Some(m),
            }
        } else if args.prompt_from_reference.is_some() {
            bail!("--prompt-from-reference needs --reference and --label");
        }
        prompts.push(prompt);
    }
    let sam = load_model(&args.model)?;
    let preds = predict_slices(&sam, &volume, &args.slices, &prompts, parse_choice(&args.mask_choice)?)?;

    let mut mask = vec![0u8; volume.data.len()];
    let mut per_slice = Vec::new();
    for (p, prompt) in preds.slices.iter().zip(&prompts) {
        volume.grid.insert(&mut mask, p.slice, &p.mask);
        let dice = match (&reference, args.label) {
            (Some(r), Some(label)) => Some(radsam::metrics::dice(&p.mask, &reference_slice(r, label, p.slice))),
            _ => None,
        };
        per_slice.push(json!({
            "slice": p.slice,
            "iou_predictions": p.iou,
            "chosen_mask": p.chosen,
            "pixels_per_mask": p.pixels,
            "dice_vs_reference": dice,
            "prompt": {"points": prompt.points, "box": prompt.bbox, "mask": prompt.mask.is_some()},
        }));
    }
    // 3D figures over the predicted slices: the mask written out holds only those slices.
    let dice_3d = match (&reference, args.label) {
        (Some(r), Some(label)) => {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            for p in &preds.slices {
                ours.extend_from_slice(&p.mask);
                theirs.extend(reference_slice(r, label, p.slice));
            }
            Some(radsam::metrics::dice(&ours, &theirs))
        }
        _ => None,
    };
    // Everything is written to a staging folder beside OUT and moved into OUT at the end, so a
    // failure half-way leaves no partial output behind.
    let staging = Staging::new(&args.out).with_context(|| format!("creating a staging folder beside {}", args.out.display()))?;
    let out = staging.dir.clone();
    write_mask_nifti(&out.join("mask.nii.gz"), &volume, &mask)?;
    preds.low_res_logits.to_device(Device::Cpu).write_npy(out.join("low_res_logits.npy"))?;
    let mut outputs = vec!["mask.nii.gz", "predictions.json", "low_res_logits.npy"];
    if matches!(volume.source, radsam::volume::Source::Dicom(_)) {
        let meta = radsam::volume::SegMeta { algorithm_name: format!("RadSAM {}", sam.config.name), ..Default::default() };
        let segment = radsam::volume::SegmentMask { label: args.target_name.clone(), mask: &mask };
        radsam::volume::write_dicom_seg(&out.join("seg.dcm"), &volume, &[segment], &meta).map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
        outputs.push("seg.dcm");
    }
    if args.overlays {
        let dir = out.join("overlays");
        std::fs::create_dir_all(&dir)?;
        for (p, prompt) in preds.slices.iter().zip(&prompts) {
            let reference_plane = match (&reference, args.label) {
                (Some(r), Some(label)) => Some(reference_slice(r, label, p.slice)),
                _ => None,
            };
            let mut masks = vec![radsam::overlay::OverlayMask { plane: &p.mask, color: [255, 140, 0] }];
            if let Some(plane) = &reference_plane {
                masks.push(radsam::overlay::OverlayMask { plane, color: [0, 220, 0] });
            }
            let shown = SlicePrompt { mask: None, ..prompt.clone() };
            radsam::overlay::render_slice(&volume, p.slice, &masks, Some(&shown), &dir.join(format!("slice_{:04}.png", p.slice)))?;
        }
        outputs.push("overlays/");
    }
    let report = json!({
        "model": sam.config.name,
        "target": args.target_name,
        "device": format!("{:?}", sam.device()),
        "volume": args.volume,
        "dims": volume.dims(),
        "slice_axis": volume.grid.slice_axis,
        "slices": per_slice,
        "voxels": radsam::metrics::voxel_count(&mask),
        "volume_ml": radsam::metrics::volume_ml(&mask, volume.spacing),
        "dice_3d_on_predicted_slices": dice_3d,
        "encode_seconds": preds.encode_seconds,
        "decode_seconds": preds.decode_seconds,
        "outputs": {"mask": "mask.nii.gz", "low_res_logits": "low_res_logits.npy (slices, 4, 256, 256), slice order as above"},
    });
    std::fs::write(out.join("predictions.json"), serde_json::to_string_pretty(&report)?)?;
    staging.publish()?;
    for s in report["slices"].as_array().unwrap() {
        eprintln!("slice {:>4}: IoU predictions {}  chosen mask {}  Dice {}", s["slice"], s["iou_predictions"], s["chosen_mask"], s["dice_vs_reference"]);
    }
    eprintln!("wrote {}/{{{}}}", args.out.display(), outputs.join(", "));
    Ok(())
}

/// A one-target job from the flags of `radsam segment`.
fn job_from_flags(args: &SegmentArgs) -> Result<Job> {
    use radsam::job::{Boundaries, InitialPrompt, Target};
    let volume = args.volume.as_ref().context("give --job, or --volume with --slice and --boundaries")?;
    let slice = args.slice.context("--slice: the prompted slice")?;
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
            let (slice, rest) = c.split_once(',').with_context(|| format!("--click {c}: expected slice,x,y,pos|neg"))?;
            let p = parse_point(rest)?;
            Ok(radsam::prompt::Click { slice: slice.trim().parse().with_context(|| format!("--click {c}: slice"))?, x: p.x, y: p.y, positive: p.positive })
        })
        .collect::<Result<Vec<_>>>()?;
    let carry = match args.carry.as_str() {
        "mask" => radsam::segment::Carry::Mask,
        "box" => radsam::segment::Carry::Box,
        other => bail!("--carry {other}: expected mask or box"),
    };
    let job = Job {
        schema_version: radsam::job::SCHEMA_VERSION,
        job_id: format!("cli-{}", std::process::id()),
        correlation_id: None,
        volume_uri: volume.display().to_string(),
        series_instance_uid: args.series_uid.clone(),
        model_version: None,
        priority: 0,
        targets: vec![Target {
            label: args.target_name.clone(),
            initial_prompt: InitialPrompt { slice, points: args.points.iter().map(|p| parse_point(p)).collect::<Result<_>>()?, bbox },
            boundaries: Boundaries { top: *top, bottom: *bottom },
            correction_clicks: clicks,
            reference_mask_uri: args.reference.as_ref().map(|p| p.display().to_string()),
            reference_label: Some(args.reference_label),
            carry: Some(carry),
        }],
    };
    job.validate().map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
    Ok(job)
}

/// "name@sha256:<first 16 hex digits of the weights' SHA-256>": which weights made a result.
fn model_version(name: &str, weights: &Path) -> Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(weights)?, &mut hasher)?;
    let digest = hasher.finalize();
    Ok(format!("{name}@sha256:{}", digest.iter().take(8).map(|b| format!("{b:02x}")).collect::<String>()))
}

fn segment(args: SegmentArgs) -> Result<()> {
    let job = match &args.job {
        Some(path) => radsam::job::read_job(path).map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?,
        None => job_from_flags(&args)?,
    };
    let mut model_args = ModelArgs { model: args.model.model.clone(), weights: args.model.weights.clone(), device: args.model.device.clone(), threads: args.model.threads };
    if let Some(m) = &job.model_version {
        model_args.model = m.clone();
    }
    let sam = load_model(&model_args)?;
    let weights = model_args.weights.clone().unwrap_or_else(|| radsam::assets::weights_path(&model_args.model));
    let version = model_version(&sam.config.name, &weights)?;
    let opts = radsam::job::ProcessOptions { limits: ReadLimits { max_voxels: args.max_voxels }, batch: args.batch, choice: parse_choice(&args.mask_choice)?, overlays: args.overlays };
    let staging = Staging::new(&args.out).with_context(|| format!("creating a staging folder beside {}", args.out.display()))?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(indicatif::ProgressStyle::with_template("{msg:28} [{bar:30}] {pos}/{len} {elapsed}").unwrap());
    let result = radsam::job::process(&job, &sam, &version, &staging.dir, &opts, &mut |stage, done, total| {
        bar.set_message(stage.to_string());
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    bar.finish_and_clear();
    let result = result.map_err(|e| anyhow::anyhow!("[{}] {e}", e.code()))?;
    staging.publish().with_context(|| format!("moving outputs into {}", args.out.display()))?;
    for t in &result.targets {
        let dice = t.dice.map(|d| format!(", Dice {d:.3} vs reference")).unwrap_or_default();
        let stops = if t.stops.is_empty() { String::new() } else { format!(", stopped early at empty slice(s) {:?}", t.stops.iter().map(|s| s.empty_slice).collect::<Vec<_>>()) };
        eprintln!("{}: {} voxels, {:.1} mL, slices {}..={}{dice}{stops}", t.label, t.voxels, t.volume_ml, t.boundaries.0, t.boundaries.1);
    }
    eprintln!("{} slices encoded in {:.1} s; total {:.1} s; wrote {}/{{{}}}", result.encoded_slices, result.encode_seconds, result.total_seconds, args.out.display(), result.outputs.join(", "));
    Ok(())
}

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2] * 1000.0
}

fn bench_model(args: BenchArgs) -> Result<()> {
    use radsam::model::PromptBatch;
    use radsam::volume::preprocess;
    use tch::{Kind, Tensor};
    let sam = load_model(&args.model)?;
    let volume = read_nifti(&radsam::assets::sample_data_dir().join("example_ct.nii.gz"))?;
    if args.slices == 0 || args.slices > volume.num_slices() || args.repeats == 0 {
        bail!("--slices must be 1..={} and --repeats at least 1", volume.num_slices());
    }
    let mid = volume.num_slices() / 2;
    let ks: Vec<usize> = (0..args.slices).map(|i| mid - args.slices / 2 + i).collect();
    let hu = volume.slices(&ks).to_device(sam.device());
    let (input, geo) = preprocess::slices_to_input(&hu, sam.config.image_size, sam.config.normalization);
    let sync = |t: &Tensor| t.sum(Kind::Float).double_value(&[]);
    let n = ks.len() as i64;
    let bar = indicatif::ProgressBar::new(((args.repeats + 1) * 4) as u64).with_message(format!("bench {}", sam.config.name));
    bar.set_style(indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}").unwrap());

    let time = |f: &dyn Fn() -> Tensor| -> Vec<f64> {
        let mut v = Vec::new();
        for r in 0..=args.repeats {
            let t = Instant::now();
            sync(&f());
            if r > 0 {
                v.push(t.elapsed().as_secs_f64());
            }
            bar.inc(1);
        }
        v
    };
    let per_slice = time(&|| Tensor::cat(&(0..n).map(|i| sam.encode(&input.narrow(0, i, 1))).collect::<Vec<_>>(), 0));
    let batched = time(&|| sam.encode(&input));
    let embedding = sam.encode(&input);
    let box_t = Tensor::from_slice(&[geo.scaled_w as f32 * 0.3, geo.scaled_h as f32 * 0.3, geo.scaled_w as f32 * 0.7, geo.scaled_h as f32 * 0.7])
        .view([1, 4])
        .repeat([n, 1])
        .to_device(sam.device());
    let dec_per_slice = time(&|| {
        let outs: Vec<Tensor> = (0..n)
            .map(|i| sam.decode(&embedding.narrow(0, i, 1), &PromptBatch { boxes: Some(box_t.narrow(0, i, 1)), ..Default::default() }).low_res_logits)
            .collect();
        Tensor::cat(&outs, 0)
    });
    let dec_batched = time(&|| sam.decode(&embedding, &PromptBatch { boxes: Some(box_t.shallow_clone()), ..Default::default() }).low_res_logits);
    bar.finish();

    let pred = sam.decode(&embedding, &PromptBatch { boxes: Some(box_t.shallow_clone()), ..Default::default() });
    let diffs = match &args.compare {
        Some(path) => {
            let r: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)?.into_iter().collect();
            let d = |a: &Tensor, key: &str| -> Result<f64> {
                let b = r.get(key).with_context(|| format!("{}: no `{key}`", path.display()))?;
                Ok((a.to_device(Device::Cpu) - b).abs().max().double_value(&[]))
            };
            json!({"embedding": d(&embedding, "embedding")?, "low_res_logits": d(&pred.low_res_logits, "low_res")?, "iou": d(&pred.iou, "iou")?})
        }
        None => json!(null),
    };
    let nf = n as f64;
    let report = json!({
        "implementation": "rust-tch",
        "model": sam.config.name,
        "image_size": sam.config.image_size,
        "device": format!("{:?}", sam.device()),
        "threads": tch::get_num_threads(),
        "slices": ks,
        "encoder_ms_per_slice_one_by_one": median_ms(per_slice) / nf,
        "encoder_ms_per_slice_batched": median_ms(batched) / nf,
        "decoder_ms_per_slice_one_by_one": median_ms(dec_per_slice) / nf,
        "decoder_ms_per_slice_batched": median_ms(dec_batched) / nf,
        "max_abs_diff_vs_reference": diffs,
    });
    write_json(&args.out, &report)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(v)?).with_context(|| format!("writing {}", path.display()))
}

fn main() {
    radsam::allocator::keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Predict(a) => predict(a),
        Command::Segment(a) => segment(a),
        Command::BenchModel(a) => bench_model(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
