//! Prompts of a training batch (paper section 3.3) in the model's input frame, and the correction
//! clicks of edit training.
//!
//! The first prompt of a batch is one kind for all its samples (a batch of prompts must share a
//! shape): a point, a jittered box, a noisy mask, or (off by default) a noisy mask with the box
//! around it widened as `CarryCue::Box` widens it at inference (radsam::segment::widened_box). The
//! noisy mask starts from the slice's own mask or, half of the time, from a neighbouring slice's
//! mask (what propagation actually hands over), before the random rotation, scaling, translation
//! and erosion/dilation.
//!
//! Clicks fall in the error region of the previous primary mask on the decoder's low-resolution
//! grid (inside the slice's valid area): a missed pixel gives a positive click, a false one a
//! negative click. A click is drawn uniformly over the error (the paper), or, for a fraction of the
//! clicks (`ClickDraw::centre`), placed at the centre of the largest error component, missed and
//! false pixels taken apart (the CVPR 2025 challenge's click, what a user aiming at the worst
//! error does). For a fraction of the clicks (`ClickDraw::negative`, off by default) the draw is
//! kept to the false pixels where there are any: a prediction's errors are mostly missed pixels,
//! so uniform clicks teach little about negative ones. A sample without error gets a padding point
//! (label -1).

use crate::examples::{ExampleSet, SliceView};
use radsam::benchmark::click_diagnosis::largest_component_centre;
use radsam::model::preprocess::{mask_to_prompt, SliceGeometry};
use radsam::model::PromptBatch;
use radsam::prompt::simulate::{jittered_box, noisy_mask, random_point, MaskNoise};
use radsam::prompt::{bounding_box, BoxPrompt};
use radsam::rng::SplitMix64;
use radsam::segment::widened_box;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptKind {
    Point,
    Box,
    Mask,
    /// A noisy mask and the widened box around it (the carry's `CarryCue::Box`).
    MaskBox,
}

/// The relative frequency of each first-prompt kind.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct PromptMix {
    pub point: f64,
    pub r#box: f64,
    pub mask: f64,
    /// Noisy masks with their widened box; absent from older runs' settings (0).
    #[serde(default)]
    pub mask_box: f64,
}

impl Default for PromptMix {
    /// Mask prompts are RadSAM's point: half of the batches; points and boxes share the rest.
    fn default() -> Self {
        Self { point: 0.25, r#box: 0.25, mask: 0.5, mask_box: 0.0 }
    }
}

impl PromptMix {
    /// The default mix with a share `fraction` of its mask prompts given their widened box too.
    pub fn with_mask_boxes(fraction: f64) -> Self {
        let d = Self::default();
        Self { mask: d.mask * (1.0 - fraction), mask_box: d.mask * fraction, ..d }
    }

    pub fn draw(&self, rng: &mut SplitMix64) -> PromptKind {
        // Mask-with-box comes last, so that a mix without it draws exactly as before it existed.
        let u = rng.uniform() * (self.point + self.r#box + self.mask + self.mask_box);
        if u < self.point {
            PromptKind::Point
        } else if u < self.point + self.r#box {
            PromptKind::Box
        } else if u < self.point + self.r#box + self.mask {
            PromptKind::Mask
        } else {
            PromptKind::MaskBox
        }
    }
}

/// The samples of one batch, their targets and valid areas on the low-resolution grid.
pub struct Batch {
    pub views: Vec<usize>,
    /// (B, 1, M, M) 0/1.
    pub targets: Tensor,
    /// (B, 1, M, M) 1 inside the slice's resized area, 0 on the padding.
    pub valid: Tensor,
    pub geometries: Vec<SliceGeometry>,
    /// Clicks so far, input-frame coordinates and labels (1, 0, or -1 for padding).
    clicks: Vec<Vec<(f32, f32, i64)>>,
}

fn low_res(mask: &[u8], geo: &SliceGeometry, m: i64) -> Tensor {
    mask_to_prompt(&Tensor::from_slice(mask).view([1, geo.h, geo.w]), geo, m)
}

impl Batch {
    /// Targets for the sampled (view, object) pairs.
    pub fn new(set: &ExampleSet, picks: &[(usize, u16)], mask_size: i64, device: Device) -> Self {
        let mut targets = Vec::new();
        let mut valid = Vec::new();
        let mut geometries = Vec::new();
        for &(v, id) in picks {
            let view = &set.views[v];
            let g = view.geometry;
            targets.push(low_res(&view.mask_of(id), &g, mask_size));
            valid.push(low_res(&vec![1u8; (g.h * g.w) as usize], &g, mask_size));
            geometries.push(g);
        }
        Self {
            views: picks.iter().map(|p| p.0).collect(),
            targets: Tensor::cat(&targets, 0).to_device(device),
            valid: Tensor::cat(&valid, 0).to_device(device),
            geometries,
            clicks: vec![Vec::new(); picks.len()],
        }
    }

    /// The first prompt: one `kind` for the whole batch.
    pub fn first_prompt(
        &self,
        set: &ExampleSet,
        picks: &[(usize, u16)],
        kind: PromptKind,
        mask_size: i64,
        rng: &mut SplitMix64,
    ) -> PromptBatch {
        let device = self.targets.device();
        let b = picks.len() as i64;
        match kind {
            PromptKind::Point => {
                let mut coords = Vec::new();
                for &(v, id) in picks {
                    let view = &set.views[v];
                    let p =
                        random_point(&view.mask_of(id), view.geometry.w as usize, rng).expect("samples have pixels");
                    let (x, y) = view.geometry.to_input(p.x, p.y);
                    coords.extend([x as f32, y as f32]);
                }
                let labels = Tensor::ones([b, 1], (Kind::Int64, device));
                PromptBatch {
                    points: Some((Tensor::from_slice(&coords).view([b, 1, 2]).to_device(device), labels)),
                    ..Default::default()
                }
            }
            PromptKind::Box => {
                let mut v4 = Vec::new();
                for &(v, id) in picks {
                    let view = &set.views[v];
                    let bx =
                        jittered_box(&view.mask_of(id), view.geometry.w as usize, rng).expect("samples have pixels");
                    v4.extend(box_in_input(&view.geometry, bx));
                }
                PromptBatch {
                    boxes: Some(Tensor::from_slice(&v4).view([b, 4]).to_device(device)),
                    ..Default::default()
                }
            }
            PromptKind::Mask | PromptKind::MaskBox => {
                let (mut masks, mut v4) = (Vec::new(), Vec::new());
                for &(v, id) in picks {
                    let view = &set.views[v];
                    let g = view.geometry;
                    let noisy = noisy_prompt_mask(view, id, rng);
                    if kind == PromptKind::MaskBox {
                        // Noise can erase a small object's mask; its own mask's box stands in.
                        let b = bounding_box(&noisy, g.w as usize)
                            .or_else(|| bounding_box(&view.mask_of(id), g.w as usize))
                            .expect("samples have pixels");
                        v4.extend(box_in_input(&g, widened_box(b, g.w as usize, g.h as usize)));
                    }
                    masks.push(low_res(&noisy, &g, mask_size));
                }
                PromptBatch {
                    masks: Some(Tensor::cat(&masks, 0).to_device(device)),
                    boxes: (!v4.is_empty()).then(|| Tensor::from_slice(&v4).view([b, 4]).to_device(device)),
                    ..Default::default()
                }
            }
        }
    }

    /// The box cue of a carry step: for each sample, the box around its carried binary mask
    /// ((B, 1, M, M), the low-resolution grid) widened as at inference, in the input frame. A
    /// sample whose mask is empty (inference would stop there) gets its whole slice.
    pub fn carried_boxes(&self, carried: &Tensor) -> Tensor {
        let m = carried.size()[3];
        let grid = carried.to_device(Device::Cpu).to_kind(Kind::Uint8);
        let mut v4 = Vec::new();
        for (i, g) in self.geometries.iter().enumerate() {
            let mask: Vec<u8> = Vec::try_from(grid.get(i as i64).flatten(0, -1)).expect("u8");
            // The slice's area on the grid (as mask_to_prompt sizes it): its long side is the
            // grid's, so the margin is the same share of it as in slice pixels at inference.
            let s = g.target as f64 / m as f64;
            let side = |scaled: i64| ((scaled as f64 / s).round() as usize).max(1);
            let (gw, gh) = (side(g.scaled_w), side(g.scaled_h));
            let whole = BoxPrompt { x0: 0.0, y0: 0.0, x1: (gw - 1) as f64, y1: (gh - 1) as f64 };
            let b = bounding_box(&mask, m as usize).map_or(whole, |b| widened_box(b, gw, gh));
            // Grid pixels to the input frame, as SliceGeometry::to_input maps slice pixels.
            v4.extend([b.x0, b.y0, b.x1, b.y1].map(|v| (v * s) as f32));
        }
        Tensor::from_slice(&v4).view([self.geometries.len() as i64, 4]).to_device(carried.device())
    }

    /// Adds one click per sample in the error region of `previous` ((B, 1, M, M) logits) and returns
    /// the next step's prompt: the previous binary mask and all clicks so far. Where a click falls:
    /// `ClickDraw` (module docs).
    pub fn click_prompt(&mut self, previous: &Tensor, draw: ClickDraw, rng: &mut SplitMix64) -> PromptBatch {
        let m = previous.size()[3];
        let pred = previous.gt(0.0).to_kind(Kind::Float);
        let error = (&pred - &self.targets).abs() * &self.valid;
        let error = error.to_device(Device::Cpu).to_kind(Kind::Uint8);
        let targets = self.targets.to_device(Device::Cpu).to_kind(Kind::Uint8);
        for (i, clicks) in self.clicks.iter_mut().enumerate() {
            let mut e: Vec<u8> = Vec::try_from(error.get(i as i64).flatten(0, -1)).expect("u8");
            if !e.iter().any(|&v| v != 0) {
                clicks.push((0.0, 0.0, -1));
                continue;
            }
            let t: Vec<u8> = Vec::try_from(targets.get(i as i64).flatten(0, -1)).expect("u8");
            // Each draw is made only when its fraction is on, so that runs without it keep their
            // batches.
            if draw.negative > 0.0 && rng.uniform() < draw.negative && e.iter().zip(&t).any(|(&e, &t)| e != 0 && t == 0)
            {
                for (e, &t) in e.iter_mut().zip(&t) {
                    if t != 0 {
                        *e = 0;
                    }
                }
            }
            let n = e.iter().filter(|&&v| v != 0).count();
            let centred = draw.centre > 0.0 && rng.uniform() < draw.centre;
            let idx = if centred {
                largest_error_centre(&e, &t, m as usize)
            } else {
                let k = rng.below(n);
                e.iter().enumerate().filter(|(_, &v)| v != 0).nth(k).map(|(i, _)| i).expect("k < n")
            };
            let (u, v) = ((idx as i64 % m) as f64, (idx as i64 / m) as f64);
            // Centre of low-res pixel (u, v) in the input frame; the encoder adds the half pixel.
            let s = self.geometries[i].target as f64 / m as f64;
            let positive = t[idx] == 1;
            clicks.push((((u + 0.5) * s - 0.5) as f32, ((v + 0.5) * s - 0.5) as f32, positive as i64));
        }
        let b = self.clicks.len() as i64;
        let n = self.clicks[0].len() as i64;
        let coords: Vec<f32> = self.clicks.iter().flat_map(|c| c.iter().flat_map(|&(x, y, _)| [x, y])).collect();
        let labels: Vec<i64> = self.clicks.iter().flat_map(|c| c.iter().map(|&(_, _, l)| l)).collect();
        let device = self.targets.device();
        PromptBatch {
            points: Some((
                Tensor::from_slice(&coords).view([b, n, 2]).to_device(device),
                Tensor::from_slice(&labels).view([b, n]).to_device(device),
            )),
            boxes: None,
            masks: Some(pred),
        }
    }
}

/// Where edit clicks fall (module docs): the fractions of clicks placed at the centre of the
/// largest error component (`centre`) and kept to the false pixels (`negative`); both 0: uniform
/// over the error, the paper.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClickDraw {
    pub centre: f64,
    pub negative: f64,
}

/// A box in slice pixels as the model's input-frame corners (x0, y0, x1, y1).
fn box_in_input(g: &SliceGeometry, b: BoxPrompt) -> [f32; 4] {
    let (x0, y0) = g.to_input(b.x0, b.y0);
    let (x1, y1) = g.to_input(b.x1, b.y1);
    [x0 as f32, y0 as f32, x1 as f32, y1 as f32]
}

/// The centre of the largest error component on an M x M grid: missed pixels (error on the target)
/// and false ones form components apart. `error` holds at least one pixel.
fn largest_error_centre(error: &[u8], target: &[u8], m: usize) -> usize {
    let missed: Vec<bool> = error.iter().zip(target).map(|(&e, &t)| e != 0 && t != 0).collect();
    let false_: Vec<bool> = error.iter().zip(target).map(|(&e, &t)| e != 0 && t == 0).collect();
    [missed, false_]
        .iter()
        .filter(|kind| kind.iter().any(|&v| v))
        .map(|kind| largest_component_centre(kind, m, m))
        .max_by_key(|&(_, size)| size)
        .expect("some error")
        .0
}

/// A noisy mask prompt for object `id` on `view` (module docs).
pub fn noisy_prompt_mask(view: &SliceView, id: u16, rng: &mut SplitMix64) -> Vec<u8> {
    let w = view.geometry.w as usize;
    let own = view.mask_of(id);
    let neighbours: Vec<Vec<u8>> = view
        .neighbours
        .iter()
        .flatten()
        .map(|l| l.iter().map(|&v| (v == id) as u8).collect::<Vec<u8>>())
        .filter(|m| m.iter().any(|&v| v != 0))
        .collect();
    let base = if !neighbours.is_empty() && rng.uniform() < 0.5 {
        neighbours[rng.below(neighbours.len())].clone()
    } else {
        own
    };
    noisy_mask(&base, w, &MaskNoise::default(), rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_draws_every_kind_in_proportion() {
        let mix = PromptMix::default();
        let mut rng = SplitMix64(5);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[mix.draw(&mut rng) as usize] += 1;
        }
        assert!(
            (800..1200).contains(&counts[0]) && (800..1200).contains(&counts[1]) && (1800..2200).contains(&counts[2]),
            "{counts:?}"
        );
        assert_eq!(counts[3], 0);
    }

    #[test]
    fn mask_boxes_take_their_share_of_the_masks_and_leave_the_default_draws_alone() {
        // Without mask boxes the mix draws exactly as the default (older runs keep their batches).
        let (mut a, mut b) = (SplitMix64(9), SplitMix64(9));
        let none = PromptMix::with_mask_boxes(0.0);
        assert!((0..500).all(|_| none.draw(&mut a) == PromptMix::default().draw(&mut b)));
        let half = PromptMix::with_mask_boxes(0.5);
        let mut rng = SplitMix64(5);
        let mut counts = [0usize; 4];
        for _ in 0..4000 {
            counts[half.draw(&mut rng) as usize] += 1;
        }
        assert!((800..1200).contains(&counts[2]) && (800..1200).contains(&counts[3]), "{counts:?}");
    }
}

#[cfg(test)]
mod click_tests {
    use super::*;
    use crate::examples::{ExampleSet, SliceView, ViewInputs};

    /// A 64x64 slice view (input 256 = low-res grid 256, 4 low-res pixels per slice pixel) with a
    /// square object.
    fn set() -> ExampleSet {
        let (h, w) = (64usize, 64usize);
        let mut labels = vec![0u16; h * w];
        for y in 20..40 {
            for x in 10..30 {
                labels[y * w + x] = 2;
            }
        }
        let geometry = SliceGeometry::new(h as i64, w as i64, 256);
        let view = SliceView { case: 0, slice: 0, view: 0, geometry, labels, neighbours: [None, None] };
        ExampleSet {
            views: vec![view],
            samples: vec![(0, 2)],
            inputs: ViewInputs::Embeddings(Tensor::zeros([1], (Kind::Float, Device::Cpu))),
            cases: vec!["t".into()],
            case_classes: vec![],
        }
    }

    #[test]
    fn clicks_fall_in_the_error_region_with_the_right_sign() {
        let set = set();
        let picks = [(0usize, 2u16), (0, 2), (0, 2)];
        let mut batch = Batch::new(&set, &picks, 256, Device::Cpu);
        let target = batch.targets.shallow_clone();
        // Sample 0 predicts nothing (only misses), sample 1 everything (only false pixels), sample 2
        // exactly the target (no error: a padding click).
        let prev = Tensor::cat(
            &[
                -target.get(0).unsqueeze(0).ones_like(),
                target.get(1).unsqueeze(0).ones_like(),
                &target.get(2).unsqueeze(0) * 2.0 - 1.0,
            ],
            0,
        );
        let mut rng = SplitMix64(11);
        for step in 1..=3 {
            let p = batch.click_prompt(&prev, ClickDraw::default(), &mut rng);
            let (coords, labels) = p.points.as_ref().unwrap();
            assert_eq!(coords.size(), vec![3, step, 2]);
            let l: Vec<i64> = Vec::try_from(labels.select(1, step - 1)).unwrap();
            assert_eq!(l, vec![1, 0, -1]);
            // The positive click lies on the object (low-res pixels 40..120 x 80..160).
            let (x, y) = (coords.double_value(&[0, step - 1, 0]), coords.double_value(&[0, step - 1, 1]));
            assert!((40.0..120.0).contains(&x) && (80.0..160.0).contains(&y), "({x}, {y})");
            let (x, y) = (coords.double_value(&[1, step - 1, 0]), coords.double_value(&[1, step - 1, 1]));
            assert!(!((40.0..120.0).contains(&x) && (80.0..160.0).contains(&y)), "negative click off the object");
            // The mask prompt is the previous binary mask.
            assert_eq!(
                p.masks.as_ref().unwrap().sum(Kind::Float).double_value(&[]),
                prev.gt(0.0).sum(Kind::Float).double_value(&[])
            );
        }
    }

    #[test]
    fn mask_box_prompts_hold_the_widened_box_around_their_own_mask() {
        let set = set();
        let picks = [(0usize, 2u16), (0, 2), (0, 2), (0, 2)];
        let batch = Batch::new(&set, &picks, 256, Device::Cpu);
        let mut rng = SplitMix64(7);
        let p = batch.first_prompt(&set, &picks, PromptKind::MaskBox, 256, &mut rng);
        let (masks, boxes) = (p.masks.as_ref().unwrap(), p.boxes.as_ref().unwrap());
        assert_eq!(boxes.size(), vec![4, 4]);
        for i in 0..4 {
            // Input frame = low-res grid here (256 both), 4 per slice pixel. The box is the mask's
            // slice-pixel box widened by 0.75 slice pixels (3 of 256) and scaled: 3 grid pixels
            // before the mask's first grid pixel; its far side, a pixel *index* plus 0.75, lands
            // on the mask's last grid pixel (4 x + 3), as at inference.
            let on = masks.get(i).get(0).nonzero();
            let (ys, xs) = (on.select(1, 0), on.select(1, 1));
            let b: Vec<f64> = (0..4).map(|k| boxes.double_value(&[i, k])).collect();
            let extent = [xs.min(), ys.min(), xs.max(), ys.max()].map(|t| t.double_value(&[]));
            assert_eq!(b, vec![extent[0] - 3.0, extent[1] - 3.0, extent[2], extent[3]]);
        }
        // A plain mask prompt has no box.
        assert!(batch.first_prompt(&set, &picks, PromptKind::Mask, 256, &mut rng).boxes.is_none());
    }

    #[test]
    fn carried_boxes_widen_the_carried_mask_or_take_the_whole_slice() {
        let set = set();
        let picks = [(0usize, 2u16), (0, 2)];
        let batch = Batch::new(&set, &picks, 256, Device::Cpu);
        // Sample 0 carries the object (grid x 40..120, y 80..160), sample 1 nothing.
        let carried =
            Tensor::cat(&[batch.targets.get(0).unsqueeze(0), batch.targets.get(1).unsqueeze(0).zeros_like()], 0);
        let boxes = batch.carried_boxes(&carried);
        let b = |i: i64| (0..4).map(|k| boxes.double_value(&[i, k])).collect::<Vec<_>>();
        assert_eq!(b(0), vec![37.0, 77.0, 122.0, 162.0]);
        assert_eq!(b(1), vec![0.0, 0.0, 255.0, 255.0]);
    }

    #[test]
    fn negative_clicks_keep_to_the_false_pixels_where_there_are_any() {
        let set = set();
        let picks = [(0usize, 2u16), (0, 2)];
        let batch0 = Batch::new(&set, &picks, 256, Device::Cpu);
        // Sample 0 predicts nothing (misses only); sample 1 misses the whole object (6400 low-res
        // pixels) and predicts a 10 x 10 false square at 200..210 (both axes): a uniform click is
        // nearly always positive, a negative draw must land in the square.
        let square = Tensor::zeros([1, 1, 256, 256], (Kind::Float, Device::Cpu));
        let _ = square.narrow(2, 200, 10).narrow(3, 200, 10).fill_(1.0);
        let none = -batch0.targets.get(0).unsqueeze(0).ones_like();
        let prev = Tensor::cat(&[none, &square * 2.0 - 1.0], 0);
        let labels_of = |draw: ClickDraw, seed: u64| {
            let mut batch = Batch::new(&set, &picks, 256, Device::Cpu);
            let mut rng = SplitMix64(seed);
            let p = batch.click_prompt(&prev, draw, &mut rng);
            let (coords, labels) = p.points.unwrap();
            let xy = (coords.double_value(&[1, 0, 0]), coords.double_value(&[1, 0, 1]));
            (Vec::<i64>::try_from(labels.select(1, 0)).unwrap(), xy)
        };
        for seed in 0..20 {
            let (labels, (x, y)) = labels_of(ClickDraw { centre: 0.0, negative: 1.0 }, seed);
            assert_eq!(labels, vec![1, 0], "seed {seed}: no false pixel keeps the positive click");
            assert!((200.0..210.0).contains(&x) && (200.0..210.0).contains(&y), "seed {seed}: ({x}, {y})");
            let (labels, (x, y)) = labels_of(ClickDraw { centre: 1.0, negative: 1.0 }, seed);
            assert_eq!(labels, vec![1, 0]);
            assert!((x - 204.5).abs() <= 1.5 && (y - 204.5).abs() <= 1.5, "centred negative click ({x}, {y})");
        }
        // Without the negative draw the same error gives positive clicks.
        let positives = (0..20).filter(|&seed| labels_of(ClickDraw::default(), seed).0 == vec![1, 1]).count();
        assert!(positives >= 15, "{positives} of 20 uniform clicks positive");
    }

    #[test]
    fn centred_clicks_hit_the_middle_of_the_largest_error_component() {
        let set = set();
        let picks = [(0usize, 2u16), (0, 2)];
        let mut batch = Batch::new(&set, &picks, 256, Device::Cpu);
        let target = batch.targets.shallow_clone();
        // Sample 0 predicts nothing: the missed region is the whole object (low-res 40..120 x
        // 80..160), its centre (80, 120) give or take a pixel. Sample 1 predicts the object plus a
        // 100 x 100 false square at low-res 140..240 (both axes): the false region is larger, so
        // the click is negative, at its centre (190, 190).
        let false_square = Tensor::zeros([1, 1, 256, 256], (Kind::Float, Device::Cpu));
        let _ = false_square.narrow(2, 140, 100).narrow(3, 140, 100).fill_(1.0);
        let prev = Tensor::cat(
            &[-target.get(0).unsqueeze(0).ones_like(), (&target.get(1).unsqueeze(0) + &false_square) * 2.0 - 1.0],
            0,
        );
        let mut rng = SplitMix64(3);
        let p = batch.click_prompt(&prev, ClickDraw { centre: 1.0, negative: 0.0 }, &mut rng);
        let (coords, labels) = p.points.as_ref().unwrap();
        assert_eq!(Vec::<i64>::try_from(labels.select(1, 0)).unwrap(), vec![1, 0]);
        let at = |i: i64| (coords.double_value(&[i, 0, 0]), coords.double_value(&[i, 0, 1]));
        let near = |(x, y): (f64, f64), (cx, cy): (f64, f64)| (x - cx).abs() <= 1.5 && (y - cy).abs() <= 1.5;
        assert!(near(at(0), (80.0, 120.0)), "{:?}", at(0));
        assert!(near(at(1), (190.0, 190.0)), "{:?}", at(1));
    }
}
