//! `radsam bench-model` and `radsam bench-propagation`: the measurements behind bench/.

use crate::common::{load_model, parse_choice, write_json, ModelArgs};
use anyhow::{bail, Context, Result};
use radsam::prompt::{bounding_box, SlicePrompt};
use radsam::segment::MaskChoice;
use radsam::volume::read_nifti;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;
use tch::Device;

#[derive(clap::Args)]
pub struct BenchPropagationArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Objects to evaluate as name=label value in the sample CT's label map (`none`: only the timing).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "liver=5,spleen=1,kidney_right=2,kidney_left=3,stomach=6,pancreas=7,aorta=52"
    )]
    objects: Vec<String>,
    /// Mask choice: primary, best-iou, best-reference (the paper's oracle), or 0..3.
    #[arg(long, default_value = "primary")]
    mask_choice: String,
    /// Carry used for the click experiment: box (baseline models) or mask (RadSAM).
    #[arg(long, default_value = "box")]
    click_carry: String,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The volume (NIfTI file or DICOM folder); default: the sample CT (training split).
    #[arg(long)]
    volume: Option<PathBuf>,
    /// Its label map (resampled onto the volume's grid when stored differently).
    #[arg(long)]
    labels: Option<PathBuf>,
    /// The timed object: label value, first and last slice (a 100-slice stretch of the colon);
    /// `none` skips the timing.
    #[arg(long, value_delimiter = ',', default_value = "20,12,111")]
    timing: Vec<String>,
    /// The PyTorch reference's run of the same timing (JSON and mask .npy of propagation_reference.py).
    #[arg(long, num_args = 2)]
    reference_run: Option<Vec<PathBuf>>,
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
pub struct BenchArgs {
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

fn median_ms(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2] * 1000.0
}

pub fn bench_model(args: BenchArgs) -> Result<()> {
    use radsam::model::preprocess;
    use radsam::model::PromptBatch;
    use tch::{Kind, Tensor};
    let sam = load_model(&args.model)?;
    let volume = read_nifti(&radsam::assets::sample_data_dir().join("example_ct.nii.gz"))?;
    if args.slices == 0 || args.slices > volume.num_slices() || args.repeats == 0 {
        bail!("--slices must be 1..={} and --repeats at least 1", volume.num_slices());
    }
    let mid = volume.num_slices() / 2;
    let ks: Vec<usize> = (0..args.slices).map(|i| mid - args.slices / 2 + i).collect();
    let hu = volume.slices(&ks).to_device(sam.device());
    let (input, geo) = preprocess::slices_to_input(&hu, &sam.config);
    let sync = |t: &Tensor| t.sum(Kind::Float).double_value(&[]);
    let n = ks.len() as i64;
    let bar =
        indicatif::ProgressBar::new(((args.repeats + 1) * 4) as u64).with_message(format!("bench {}", sam.config.name));
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
    let box_t = Tensor::from_slice(&[
        geo.scaled_w as f32 * 0.3,
        geo.scaled_h as f32 * 0.3,
        geo.scaled_w as f32 * 0.7,
        geo.scaled_h as f32 * 0.7,
    ])
    .view([1, 4])
    .repeat([n, 1])
    .to_device(sam.device());
    let dec_per_slice = time(&|| {
        let outs: Vec<Tensor> = (0..n)
            .map(|i| {
                sam.decode(
                    &embedding.narrow(0, i, 1),
                    &PromptBatch { boxes: Some(box_t.narrow(0, i, 1)), ..Default::default() },
                )
                .low_res_logits
            })
            .collect();
        Tensor::cat(&outs, 0)
    });
    let dec_batched = time(&|| {
        sam.decode(&embedding, &PromptBatch { boxes: Some(box_t.shallow_clone()), ..Default::default() }).low_res_logits
    });
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
        "half": sam.is_half(),
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

pub fn bench_propagation(args: BenchPropagationArgs) -> Result<()> {
    use radsam::segment::{Carry, Segmenter, VolumeSession};
    let sam = load_model(&args.model)?;
    let data = radsam::assets::sample_data_dir();
    let volume_path = args.volume.clone().unwrap_or_else(|| data.join("example_ct.nii.gz"));
    let labels_path = args.labels.clone().unwrap_or_else(|| data.join("example_seg_fast_force_split.nii.gz"));
    let volume = radsam::volume::Volume::open(&volume_path, None, &Default::default())?;
    let mut labels = read_nifti(&labels_path)?;
    if labels.grid != volume.grid || labels.affine != volume.affine {
        labels.data = radsam::volume::resample_nearest(&labels, &volume, 0.0);
    }
    let choice = match args.mask_choice.as_str() {
        "best-reference" => MaskChoice::BestReference,
        other => parse_choice(other)?,
    };
    let click_carry = if args.click_carry == "mask" { Carry::Mask } else { Carry::Box };
    let truth_of = |value: f32| -> Vec<u8> { labels.data.iter().map(|&v| (v == value) as u8).collect() };
    let bar = indicatif::ProgressBar::new(args.objects.len() as u64 + 1);
    bar.set_style(indicatif::ProgressStyle::with_template("{msg:20} [{bar:30}] {pos}/{len} {elapsed}").unwrap());
    let mut evaluations = Vec::new();
    // `--objects none`: the timing alone (the GPU bundle's quick check).
    for spec in args.objects.iter().filter(|s| s.as_str() != "none") {
        let (name, value) = spec.split_once('=').with_context(|| format!("--objects {spec}: expected name=value"))?;
        bar.set_message(name.to_string());
        let truth = truth_of(value.parse().with_context(|| format!("--objects {spec}"))?);
        if let Some(e) = radsam::evaluate::evaluate_object(&sam, &volume, name, &truth, choice, click_carry, args.seed)?
        {
            evaluations.push(e);
        }
        bar.inc(1);
    }

    if args.timing == ["none"] {
        bar.finish_and_clear();
        let report = json!({
            "model": sam.config.name, "volume": volume_path, "labels": labels_path, "threads": tch::get_num_threads(),
            "mask_choice": args.mask_choice, "click_carry": click_carry, "seed": args.seed, "objects": evaluations,
        });
        write_json(&args.out, &report)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    // The timing: a box-carry propagation over a 100-slice object, as the reference does it.
    bar.set_message("timing");
    let timing: Vec<usize> = args
        .timing
        .iter()
        .map(|v| v.parse())
        .collect::<Result<_, _>>()
        .context("--timing takes value,first,last or none")?;
    let [value, lo, hi] = timing.as_slice() else { bail!("--timing takes value,first,last or none") };
    let truth = truth_of(*value as f32);
    let (rows, cols) = volume.grid.plane_shape();
    let per_slice = |s: usize| volume.grid.extract(&truth, s).iter().filter(|&&v| v != 0).count();
    let start = (*lo..=*hi).max_by_key(|&s| (per_slice(s), std::cmp::Reverse(s))).unwrap();
    let session =
        VolumeSession::new(&sam, &volume, (*lo, *hi), VolumeSession::default_batch(sam.device()), &mut |_, _| {})?;
    let mut seg = Segmenter::new(&session, Carry::Box, MaskChoice::Primary, None);
    let t = Instant::now();
    seg.start(
        start,
        &SlicePrompt { bbox: bounding_box(&volume.grid.extract(&truth, start), cols), ..Default::default() },
    )?;
    let propagate_seconds = t.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let ours = seg.mask();
    let reference = match &args.reference_run {
        Some(paths) => {
            let run: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&paths[0])?)?;
            // (slices, rows, cols) in slice order: the same layout as our x-fastest data for axial slicing.
            let mask = tch::Tensor::read_npy(&paths[1])?;
            let theirs: Vec<u8> = Vec::try_from(mask.to_kind(tch::Kind::Uint8).flatten(0, -1))?;
            anyhow::ensure!(
                theirs.len() == ours.len() && rows * cols * volume.num_slices() == ours.len(),
                "reference mask shape differs"
            );
            json!({"run": run, "dice_rust_vs_reference": radsam::mask_stats::dice(&ours, &theirs)})
        }
        None => json!(null),
    };
    let report = json!({
        "model": sam.config.name,
        "device": format!("{:?}", sam.device()),
        "half": sam.is_half(),
        "threads": tch::get_num_threads(),
        "mask_choice": args.mask_choice,
        "click_carry": click_carry,
        "seed": args.seed,
        "volume": volume_path, "labels": labels_path,
        "objects": evaluations,
        "timing": {
            "object_label": value, "slices": hi - lo + 1, "prompted_slice": start,
            "encode_seconds": session.encode_seconds(), "propagate_seconds": propagate_seconds,
            "reference": reference,
        },
    });
    write_json(&args.out, &report)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
