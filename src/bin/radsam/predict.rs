//! `radsam predict`: a model on chosen slices with given prompts (slice-level, no carry); masks,
//! logits, IoU predictions and Dice out, for checking the model from outside.

use crate::common::{load_model, open_volume, parse_choice, parse_point, reference_slice, ModelArgs};
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use radsam::job::Staging;
use radsam::prompt::{bounding_box, interior_point, BoxPrompt, SlicePrompt};
use radsam::segment::predict_slices;
use radsam::volume::{resample_nearest, write_mask_nifti, ReadLimits, Volume};
use serde_json::json;
use std::path::PathBuf;
use tch::Device;

#[derive(Clone, Copy, ValueEnum)]
enum FromReference {
    Box,
    Point,
    Mask,
}

#[derive(clap::Args)]
pub struct PredictArgs {
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

pub fn predict(args: PredictArgs) -> Result<()> {
    let limits = ReadLimits { max_voxels: args.max_voxels, ..ReadLimits::default() };
    let volume = open_volume(&args.volume, args.series_uid.as_deref(), &limits)?;
    let reference = match &args.reference {
        Some(p) => {
            let r = open_volume(p, None, &limits)?;
            if r.grid == volume.grid && r.affine == volume.affine {
                Some(r)
            } else {
                eprintln!(
                    "reference {} is on another grid: resampled onto the volume's grid (nearest neighbour)",
                    p.display()
                );
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
                FromReference::Box => {
                    prompt.bbox = Some(
                        bounding_box(&m, nx)
                            .with_context(|| format!("label {label} is absent from slice {k}: no box"))?,
                    )
                }
                FromReference::Point => prompt.points.push(
                    interior_point(&m, nx)
                        .with_context(|| format!("label {label} is absent from slice {k}: no point"))?,
                ),
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
            (Some(r), Some(label)) => Some(radsam::mask_stats::dice(&p.mask, &reference_slice(r, label, p.slice))),
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
            Some(radsam::mask_stats::dice(&ours, &theirs))
        }
        _ => None,
    };
    // Everything is written to a staging folder beside OUT and moved into OUT at the end, so a
    // failure half-way leaves no partial output behind.
    let staging =
        Staging::new(&args.out).with_context(|| format!("creating a staging folder beside {}", args.out.display()))?;
    let out = staging.dir.clone();
    write_mask_nifti(&out.join("mask.nii.gz"), &volume, &mask)?;
    preds.low_res_logits.to_device(Device::Cpu).write_npy(out.join("low_res_logits.npy"))?;
    let mut outputs = vec!["mask.nii.gz", "predictions.json", "low_res_logits.npy"];
    if matches!(volume.source, radsam::volume::Source::Dicom(_)) {
        let meta =
            radsam::volume::SegMeta { algorithm_name: format!("RadSAM {}", sam.config.name), ..Default::default() };
        let segment = radsam::volume::SegmentMask { label: args.target_name.clone(), mask: &mask };
        radsam::volume::write_dicom_seg(&out.join("seg.dcm"), &volume, &[segment], &meta)
            .map_err(radsam::error::with_code)?;
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
            radsam::overlay::render_slice(
                &volume,
                p.slice,
                &masks,
                Some(&shown),
                &dir.join(format!("slice_{:04}.png", p.slice)),
            )?;
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
        "voxels": radsam::mask_stats::voxel_count(&mask),
        "volume_ml": radsam::mask_stats::volume_ml(&mask, volume.spacing),
        "dice_3d_on_predicted_slices": dice_3d,
        "encode_seconds": preds.encode_seconds,
        "decode_seconds": preds.decode_seconds,
        "outputs": {"mask": "mask.nii.gz", "low_res_logits": "low_res_logits.npy (slices, 4, 256, 256), slice order as above"},
    });
    std::fs::write(out.join("predictions.json"), serde_json::to_string_pretty(&report)?)?;
    staging.publish()?;
    for s in report["slices"].as_array().unwrap() {
        eprintln!(
            "slice {:>4}: IoU predictions {}  chosen mask {}  Dice {}",
            s["slice"], s["iou_predictions"], s["chosen_mask"], s["dice_vs_reference"]
        );
    }
    eprintln!("wrote {}/{{{}}}", args.out.display(), outputs.join(", "));
    Ok(())
}
