//! Slice-level prediction: one prompt per slice, every slice answered on its own (slices encoded
//! in one batch). Also the prompt batching shared with the propagation engine.

use crate::model::preprocess;
use crate::model::{MaskPrediction, PromptBatch, Sam, NUM_MASKS};
use crate::prompt::{PromptError, SlicePrompt};
use crate::volume::Volume;
use std::time::Instant;
use tch::{Kind, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    #[error("slice {slice} is outside the volume (it has {count} slices)")]
    SliceOutside { slice: usize, count: usize },
    #[error("the reference oracle needs a reference mask: use the propagation engine")]
    NeedsReference,
    #[error("invalid prompt on slice {slice}")]
    Prompt { slice: usize, source: PromptError },
    #[error("{prompts} prompts for {slices} slices: give one prompt per slice")]
    Count { prompts: usize, slices: usize },
}

/// Which of the four decoder masks to report as the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskChoice {
    /// The primary (single-mask) output, index 0.
    Primary,
    /// The secondary mask (1..=3) with the best predicted IoU.
    BestPredictedIou,
    /// A fixed index 0..=3.
    Index(i64),
    /// The secondary mask (1..=3) closest to the reference (benchmarks: the paper's oracle).
    BestReference,
    /// On a carried slice, of the four masks the one that best continues the previous slice (the
    /// highest Dice with its mask, on the decoder's grid; the primary on a tie); on the user's
    /// own slices (the prompt, clicks, slice-level prompts), the primary. Chosen by the
    /// propagation engine (propagate.rs); elsewhere the primary.
    Continuity,
}

/// Predictions of one slice.
#[derive(Debug)]
pub struct SlicePrediction {
    pub slice: usize,
    /// Predicted IoU of the four masks (primary first).
    pub iou: [f32; NUM_MASKS as usize],
    /// The chosen mask index and the chosen mask on the slice grid (row-major, 0/1).
    pub chosen: i64,
    pub mask: Vec<u8>,
    /// Foreground pixels of each of the four masks on the slice grid.
    pub pixels: [u64; NUM_MASKS as usize],
}

#[derive(Debug)]
pub struct SlicePredictions {
    pub slices: Vec<SlicePrediction>,
    /// (S, 4, M, M) low-resolution logits, as the decoder produced them.
    pub low_res_logits: Tensor,
    pub encode_seconds: f64,
    pub decode_seconds: f64,
}

pub(super) fn choose(iou: &[f32], choice: MaskChoice) -> i64 {
    match choice {
        MaskChoice::Primary => 0,
        MaskChoice::Index(i) => i,
        MaskChoice::BestPredictedIou => {
            (1..NUM_MASKS).max_by(|&a, &b| iou[a as usize].total_cmp(&iou[b as usize])).unwrap()
        }
        // Needs the reference mask: chosen by the propagation engine, refused by predict_slices.
        MaskChoice::BestReference => 0,
        // Needs the previous slice: chosen by the propagation engine on carried slices.
        MaskChoice::Continuity => 0,
    }
}

/// Runs the model on `slices` of `volume`, prompt `prompts[i]` on slice `slices[i]`.
pub fn predict_slices(
    sam: &Sam,
    volume: &Volume,
    slices: &[usize],
    prompts: &[SlicePrompt],
    choice: MaskChoice,
) -> Result<SlicePredictions, PredictError> {
    if choice == MaskChoice::BestReference {
        return Err(PredictError::NeedsReference);
    }
    if prompts.len() != slices.len() {
        return Err(PredictError::Count { prompts: prompts.len(), slices: slices.len() });
    }
    let nz = volume.num_slices();
    let (rows, cols) = volume.grid.plane_shape();
    for (&slice, prompt) in slices.iter().zip(prompts) {
        if slice >= nz {
            return Err(PredictError::SliceOutside { slice, count: nz });
        }
        prompt.validate(cols, rows).map_err(|source| PredictError::Prompt { slice, source })?;
    }
    let device = sam.device();
    let t0 = Instant::now();
    let hu = volume.slices(slices).to_device(device);
    let (input, geo) = preprocess::slices_to_input(&hu, &sam.config);
    let embeddings = sam.encode(&input);
    let _ = embeddings.sum(Kind::Float).double_value(&[]); // wait for the device before timing
    let encode_seconds = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    // Slices whose prompts have the same shape (number of points, box or not, mask or not) are
    // decoded in one batch; different shapes go in different batches, so that no slice sees
    // padding tokens that it would not see alone.
    let mut groups: std::collections::BTreeMap<(usize, bool, bool), Vec<usize>> = Default::default();
    for (i, p) in prompts.iter().enumerate() {
        groups.entry((p.points.len(), p.bbox.is_some(), p.mask.is_some())).or_default().push(i);
    }
    let mut per_slice_logits: Vec<Option<Tensor>> = (0..slices.len()).map(|_| None).collect();
    let mut per_slice_iou: Vec<Option<Tensor>> = (0..slices.len()).map(|_| None).collect();
    for members in groups.values() {
        let idx = Tensor::from_slice(&members.iter().map(|&i| i as i64).collect::<Vec<_>>()).to_device(device);
        let group: Vec<&SlicePrompt> = members.iter().map(|&i| &prompts[i]).collect();
        let MaskPrediction { low_res_logits, iou } =
            sam.decode(&embeddings.index_select(0, &idx), &prompt_batch(&group, &geo, sam.mask_size(), device));
        for (j, &i) in members.iter().enumerate() {
            per_slice_logits[i] = Some(low_res_logits.get(j as i64));
            per_slice_iou[i] = Some(iou.get(j as i64));
        }
    }
    let low_res_logits = Tensor::stack(&per_slice_logits.into_iter().map(Option::unwrap).collect::<Vec<_>>(), 0);
    let iou = Tensor::stack(&per_slice_iou.into_iter().map(Option::unwrap).collect::<Vec<_>>(), 0)
        .to_device(tch::Device::Cpu);
    let masks =
        preprocess::logits_to_slice(&low_res_logits, &geo).gt(0.0).to_kind(Kind::Uint8).to_device(tch::Device::Cpu);
    let decode_seconds = t1.elapsed().as_secs_f64();

    let mut out = Vec::with_capacity(slices.len());
    for (i, &slice) in slices.iter().enumerate() {
        let ious: Vec<f32> = Vec::try_from(iou.get(i as i64)).expect("float IoU");
        let iou_arr: [f32; 4] = ious.clone().try_into().expect("4 masks");
        let chosen = choose(&ious, choice);
        let mask_t = masks.get(i as i64);
        let pixels: Vec<i64> =
            Vec::try_from(mask_t.to_kind(Kind::Int64).sum_dim_intlist([1, 2].as_slice(), false, Kind::Int64)).unwrap();
        let mask: Vec<u8> = Vec::try_from(mask_t.get(chosen).flatten(0, -1)).unwrap();
        out.push(SlicePrediction {
            slice,
            iou: iou_arr,
            chosen,
            mask,
            pixels: pixels.iter().map(|&p| p as u64).collect::<Vec<_>>().try_into().unwrap(),
        });
    }
    Ok(SlicePredictions { slices: out, low_res_logits, encode_seconds, decode_seconds })
}

/// Batches prompts of the same shape (same number of points, all or none with a box, all or
/// none with a mask) into model-frame tensors.
pub(super) fn prompt_batch(
    prompts: &[&SlicePrompt],
    geo: &preprocess::SliceGeometry,
    mask_size: i64,
    device: tch::Device,
) -> PromptBatch {
    let b = prompts.len() as i64;
    let n = prompts[0].points.len() as i64;
    let points = (n > 0).then(|| {
        let coords: Vec<f32> = prompts
            .iter()
            .flat_map(|p| {
                p.points.iter().flat_map(|pt| {
                    let (x, y) = geo.to_input(pt.x, pt.y);
                    [x as f32, y as f32]
                })
            })
            .collect();
        let labels: Vec<i64> = prompts.iter().flat_map(|p| p.points.iter().map(|pt| pt.positive as i64)).collect();
        (
            Tensor::from_slice(&coords).view([b, n, 2]).to_device(device),
            Tensor::from_slice(&labels).view([b, n]).to_device(device),
        )
    });
    let boxes = prompts[0].bbox.is_some().then(|| {
        let v: Vec<f32> = prompts
            .iter()
            .flat_map(|p| {
                let bx = p.bbox.expect("same-shape group");
                let (x0, y0) = geo.to_input(bx.x0, bx.y0);
                let (x1, y1) = geo.to_input(bx.x1, bx.y1);
                [x0 as f32, y0 as f32, x1 as f32, y1 as f32]
            })
            .collect();
        Tensor::from_slice(&v).view([b, 4]).to_device(device)
    });
    let masks = prompts[0].mask.is_some().then(|| {
        let flat: Vec<u8> =
            prompts.iter().flat_map(|p| p.mask.as_ref().expect("same-shape group").iter().copied()).collect();
        let m = Tensor::from_slice(&flat).view([b, geo.h, geo.w]).to_device(device);
        preprocess::mask_to_prompt(&m, geo, mask_size)
    });
    PromptBatch { points, boxes, masks }
}
